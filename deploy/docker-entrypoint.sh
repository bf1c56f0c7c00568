#!/bin/sh
# Entry point of the agentry images. Container platforms deliver secrets as files (Docker secrets under
# /run/secrets, Kubernetes secret volumes); the processes read environment variables only. For each secret
# setting below, NAME_FILE=/path exports NAME with the file's content (trailing newlines removed). Only these names
# are mapped: other settings that end in _FILE (CLASSIFIER_TRAIN_FILE, LLM_API_KEY_FILE) are paths the processes
# read themselves.
set -eu

for name in DATABASE_URL REDIS_URL JWT_SECRET PAYLOAD_KEYS AUDIT_SEAL_KEYS; do
  file=$(printenv "${name}_FILE" || true)
  [ -n "$file" ] || continue
  if [ -n "$(printenv "$name" || true)" ]; then
    echo "agentry-entrypoint: set $name or ${name}_FILE, not both" >&2
    exit 64
  fi
  if [ ! -r "$file" ]; then
    echo "agentry-entrypoint: ${name}_FILE: cannot read $file" >&2
    exit 66
  fi
  value=$(cat "$file")
  export "$name=$value"
  unset "${name}_FILE"
done
unset name file value 2>/dev/null || true

exec "$@"
