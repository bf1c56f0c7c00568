#!/usr/bin/env bash
# debian-tool.sh NAME DIR: extracts the pinned Debian (bookworm) package NAME into DIR/NAME and prints the path of
# its binary. Extracted, not installed: no service starts, and nothing outside DIR changes (apart from a refresh of
# the package lists when the archive has moved on). A second call finds the extracted copy and downloads nothing.
# Used by .ci/validate-deploy.sh (promtool, nginx -t, shellcheck) and by `npm run setup` (nginx for the topology
# test). If the archive no longer has the pinned version, the current one is taken, with a warning.
set -euo pipefail

# The pins, one place for all callers.
declare -A VERSION=([prometheus]=2.42.0+ds-5+deb12u1 [nginx]=1.22.1-9+deb12u11 [shellcheck]=0.9.0-1)
declare -A BINARY=([prometheus]=usr/bin/promtool [nginx]=usr/sbin/nginx [shellcheck]=usr/bin/shellcheck)

name=${1:?usage: debian-tool.sh NAME DIR}
root=${2:?usage: debian-tool.sh NAME DIR}
version=${VERSION[$name]:-}
[ -n "$version" ] || { echo "debian-tool.sh: no pin for $name (known: ${!VERSION[*]})" >&2; exit 2; }
dir=$root/$name
bin=$dir/${BINARY[$name]}

log() { printf '%s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }

if [ -f "$dir/.version" ] && [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
  log "debian-tool.sh: apt-get and dpkg-deb are needed to fetch $name"
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
download() { (cd "$tmp" && apt-get download "$@" >/dev/null 2>&1); }
log "fetching Debian package $name=$version"
if ! download "$name=$version"; then
  log "refreshing the package lists (apt-get update)"
  as_root apt-get update -qq >/dev/null 2>&1 || true
  if ! download "$name=$version"; then
    log "WARNING: $name $version is not available here; using the archive's current version"
    download "$name" || { log "cannot download $name"; exit 1; }
  fi
fi
rm -rf "$dir" && mkdir -p "$dir"
dpkg-deb -x "$tmp"/"$name"_*.deb "$dir"
dpkg-deb -f "$tmp"/"$name"_*.deb Version > "$dir/.version"
[ -x "$bin" ] || { log "debian-tool.sh: $name has no $bin"; exit 1; }
echo "$bin"
