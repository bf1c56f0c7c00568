#!/usr/bin/env bash
# Validates what deploys and watches agentry, with real tools and no Docker engine or cluster:
#   monitoring/      promtool (config, rules, rule unit tests), alert metadata and runbook links, dashboards
#                    (JSON, PromQL parsed by promtool, metric names), Grafana provisioning
#   compose          compose-spec schema (check-jsonschema's vendored copy), wiring and secrets, nginx -t,
#                    `docker compose config` when a compose CLI is present
#   images           hadolint and structural checks of deploy/Dockerfile, shellcheck of the scripts
#   Kubernetes       kustomize builds of base and overlays, strict Kubernetes schemas (kubernetes-validate),
#                    KEDA's CRD schema (@kubernetes-models/keda), wiring and policy
#   CI               GitHub workflow schema, and that it mirrors .ci/run
# Installs its tools, pinned, into .tools/deploy-validate (once; later runs reuse them) from PyPI, the npm
# registry and Debian's packages. Prints every check and ends with "deploy-validate: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=${AGENTRY_DEPLOY_TOOLS:-$ROOT/.tools/deploy-validate}
V=$ROOT/deploy/validate

log() { printf '%s\n' "$*"; }

# ---- tools --------------------------------------------------------------------------------------------------------
mkdir -p "$TOOLS"
log "== deploy validation: tools in ${TOOLS#"$ROOT"/} =="

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

py_stamp=$(sha256sum "$V/requirements.txt" | cut -d' ' -f1)
if ! stamp_ok "$TOOLS/venv/.stamp" "$py_stamp"; then
  log "installing Python tools (deploy/validate/requirements.txt)"
  rm -rf "$TOOLS/venv"
  python3 -m venv "$TOOLS/venv"
  if ! "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check --require-virtualenv \
    -r "$V/requirements.txt" > "$TOOLS/pip.log" 2>&1; then
    cat "$TOOLS/pip.log"
    exit 1
  fi
  echo "$py_stamp" > "$TOOLS/venv/.stamp"
fi
PY=$TOOLS/venv/bin/python
export PATH="$TOOLS/venv/bin:$PATH"

node_stamp=$(cat "$V/package.json" "$V/package-lock.json" | sha256sum | cut -d' ' -f1)
if ! stamp_ok "$TOOLS/node/.stamp" "$node_stamp"; then
  log "installing npm tools (deploy/validate/package-lock.json)"
  rm -rf "$TOOLS/node"
  mkdir -p "$TOOLS/node"
  cp "$V/package.json" "$V/package-lock.json" "$TOOLS/node/"
  (cd "$TOOLS/node" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
  echo "$node_stamp" > "$TOOLS/node/.stamp"
fi

# Debian (bookworm) packages whose binaries are used as they are: extracted, not installed, so no service starts.
# The pins live in .ci/debian-tool.sh, shared with `npm run setup`.
deb() { bash "$ROOT/.ci/debian-tool.sh" "$1" "$TOOLS/deb"; }

if command -v promtool >/dev/null 2>&1; then PROMTOOL=$(command -v promtool); else PROMTOOL=$(deb prometheus); fi
if command -v nginx >/dev/null 2>&1; then NGINX=$(command -v nginx); else NGINX=$(deb nginx); fi
if command -v shellcheck >/dev/null 2>&1; then SHELLCHECK=$(command -v shellcheck); else SHELLCHECK=$(deb shellcheck); fi
KUBECTL=$TOOLS/venv/bin/kubectl

log "promtool    $("$PROMTOOL" --version 2>&1 | head -1)"
log "nginx       $("$NGINX" -v 2>&1)"
log "shellcheck  $("$SHELLCHECK" --version | sed -n 's/^version: //p')"
log "kubectl     $("$KUBECTL" version --client 2>/dev/null | tr '\n' ' ')"
log "python      check-jsonschema $("$PY" -c 'import importlib.metadata as m; print(m.version("check-jsonschema"))'), kubernetes-validate $("$PY" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))'), $(hadolint --version), yamllint $("$PY" -c 'import importlib.metadata as m; print(m.version("yamllint"))')"
log "node        $(node --version), @kubernetes-models/keda $(node -p "require('$TOOLS/node/node_modules/@kubernetes-models/keda/package.json').version")"

# ---- checks -------------------------------------------------------------------------------------------------------
passed=0
failed=0
failures=()
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

check() { # TITLE COMMAND...: runs one check, prints its output indented
  local title=$1
  shift
  log ""
  log "-- $title"
  if "$@" > "$WORK/out" 2>&1; then
    sed 's/^/   /' "$WORK/out" | grep -v '^ *$' || true
    log "   ok"
    passed=$((passed + 1))
  else
    sed 's/^/   /' "$WORK/out" | grep -v '^ *$' || true
    log "   FAILED"
    failed=$((failed + 1))
    failures+=("$title")
  fi
}

# monitoring
check "Prometheus config (promtool check config monitoring/prometheus.yml)" \
  "$PROMTOOL" check config monitoring/prometheus.yml
check "alert rules parse and lint (promtool check rules monitoring/alerts.yml)" \
  "$PROMTOOL" check rules monitoring/alerts.yml
check "alert rule unit tests (promtool test rules monitoring/alerts.test.yml)" \
  "$PROMTOOL" test rules monitoring/alerts.test.yml
check "alerts: severity, annotations, runbook anchors, tested firing and quiet, known metrics" \
  "$PY" "$V/check_monitoring.py" alerts
dashboards() {
  "$PY" "$V/check_monitoring.py" dashboards "$WORK/dashboard-queries.yml" &&
    "$PROMTOOL" check rules "$WORK/dashboard-queries.yml"
}
check "Grafana dashboards: JSON, panels, metric names; every query parsed by promtool" dashboards
check "Grafana provisioning (datasources, dashboard provider)" \
  "$PY" "$V/check_monitoring.py" grafana
yaml_files=(monitoring/*.yml monitoring/grafana/provisioning/*/*.yml docker-compose.production.yml
  deploy/temporal/dynamicconfig/*.yaml .github/workflows/ci.yml)
while IFS= read -r f; do yaml_files+=("$f"); done < <(find deploy/k8s -name '*.yaml' | sort)
check "YAML syntax and duplicate keys (yamllint, relaxed) in ${#yaml_files[@]} files" \
  yamllint -f parsable -d '{extends: relaxed, rules: {line-length: {max: 160}, truthy: disable}}' "${yaml_files[@]}"

# compose
check "docker-compose.production.yml against the compose-spec schema (check-jsonschema vendor.compose-spec)" \
  check-jsonschema --builtin-schema vendor.compose-spec docker-compose.production.yml
check "compose wiring: dependencies, healthchecks, secrets, settings, facades = nginx = Prometheus, limits" \
  "$PY" "$V/check_compose.py"
compose_config() {
  # `docker compose config` needs no engine, but it reads env files: resolve the relative paths against a scratch
  # project folder holding stand-ins for the secret files, so the repository's deploy/secrets is never touched.
  local proj=$WORK/compose-project f
  while IFS= read -r f; do
    mkdir -p "$proj/$(dirname "$f")"
    printf 'PLACEHOLDER=x\n' > "$proj/$f"
  done < <(sed -n 's#^ *\(- \)\{0,1\}\(file: \)\{0,1\}\./\(deploy/secrets/[a-z_.]*\).*#\3#p' docker-compose.production.yml | sort -u)
  docker compose -f docker-compose.production.yml --project-directory "$proj" config --quiet
}
if docker compose version >/dev/null 2>&1; then
  check "docker compose config --quiet ($(docker compose version --short))" compose_config
else
  log ""
  log "-- docker compose config: skipped, no compose CLI here (the docker CLI has no compose plugin)"
fi
nginx_test() {
  # The upstream host names exist only on the compose network: test a copy that points them at loopback, with
  # its temporary paths in a scratch folder.
  mkdir -p "$WORK/nginx"
  sed -e 's/server facade-[0-9]*:3000/server 127.0.0.1:3000/' -e "s#/tmp/#$WORK/nginx/#g" \
    deploy/nginx/nginx.conf > "$WORK/nginx/nginx.conf"
  "$NGINX" -t -q -e stderr -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
}
check "nginx configuration (nginx -t, upstream hosts mapped to loopback)" nginx_test

# images and scripts
check "Dockerfile lint (hadolint deploy/Dockerfile)" hadolint deploy/Dockerfile
check "Dockerfile structure: base, npm ci, non-root, healthchecks, commands, no secrets, build context" \
  "$PY" "$V/check_dockerfile.py"
scripts=(deploy/docker-entrypoint.sh deploy/postgres/init-roles.sh deploy/temporal/register-search-attributes.sh
  deploy/secrets/generate.sh .ci/validate-deploy.sh .ci/debian-tool.sh)
check "shell scripts (shellcheck)" "$SHELLCHECK" "${scripts[@]}"
check "container health probe script (node --check deploy/healthcheck.mjs)" node --check deploy/healthcheck.mjs

# Kubernetes
for k in base overlays/staging overlays/production; do
  out=$WORK/k8s-$(basename "$k").yaml
  check "kustomize build deploy/k8s/$k (kubectl kustomize)" \
    sh -c "\"$KUBECTL\" kustomize deploy/k8s/$k > \"$out\" && grep -c '^kind:' \"$out\" | sed 's/\$/ resources/'"
done
check "rendered overlays: strict Kubernetes schemas, wiring, probes, security, secrets, settings, limits" \
  "$PY" "$V/check_k8s.py" "$WORK/k8s-staging.yaml" "$WORK/k8s-production.yaml"
# Run from the tools folder, where its imports resolve (ES modules ignore NODE_PATH).
cp "$V/check-keda.mjs" "$TOOLS/node/check-keda.mjs"
check "KEDA ScaledObject: CRD schema (@kubernetes-models/keda), temporal and cpu triggers" \
  node "$TOOLS/node/check-keda.mjs" "$WORK/k8s-staging.yaml" "$WORK/k8s-production.yaml"

# CI
check "GitHub workflow schema (check-jsonschema vendor.github-workflows)" \
  check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/ci.yml
check "GitHub workflow mirrors .ci/run, runs replay tests and builds both images" "$PY" "$V/check_ci.py"

log ""
if [ "$failed" -gt 0 ]; then
  log "failed checks:"
  printf '  %s\n' "${failures[@]}"
fi
log "deploy-validate: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
