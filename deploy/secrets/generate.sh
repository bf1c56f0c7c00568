#!/bin/sh
# Creates the secret files docker-compose.production.yml reads, with fresh random values. Files that exist are
# kept, so running it again changes nothing; delete a file to rotate that secret (and see docs/runbook.md for what
# else must change with it). Needs openssl.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
cd "$dir"
# The folder keeps other users of this host out; the files themselves must be readable by the containers' users
# (compose bind-mounts them as they are).
chmod 0700 .

put() { # name value
  if [ -e "$1" ]; then echo "kept      deploy/secrets/$1"; return; fi
  printf '%s\n' "$2" > "$1"
  chmod 0644 "$1"
  echo "created   deploy/secrets/$1"
}
pw() { openssl rand -hex 24; }

put postgres_password "$(pw)"
put agentry_db_password "$(pw)"
put temporal_db_password "$(pw)"
put exporter_db_password "$(pw)"
put redis_password "$(pw)"
put grafana_admin_password "$(pw)"
put jwt_secret "$(openssl rand -base64 48 | tr -d '\n')"
put payload_keys "k1:$(openssl rand -base64 32 | tr -d '\n')"
put audit_seal_keys "s1:$(openssl rand -base64 32 | tr -d '\n')"

# Derived files: rebuilt from the passwords above whenever they are missing.
put agentry_database_url "postgres://agentry:$(cat agentry_db_password)@postgres:5432/agentry"
put agentry_redis_url "redis://:$(cat redis_password)@redis:6379"
put temporal.env "POSTGRES_PWD=$(cat temporal_db_password)"
