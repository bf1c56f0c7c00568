#!/bin/sh
# First start of the compose PostgreSQL (docker-entrypoint-initdb.d): one role per client, each with its own
# password from a Docker secret. `agentry` owns the audit database. `temporal` owns the database `temporal`, made
# here because auto-setup skips creating a database named like its user, and may create `temporal_visibility`,
# which auto-setup does. `postgres_exporter` only reads statistics.
set -eu

secret() { cat "${SECRETS_DIR:-/run/secrets}/$1"; }

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v agentry_password="$(secret agentry_db_password)" \
  -v temporal_password="$(secret temporal_db_password)" \
  -v exporter_password="$(secret exporter_db_password)" <<'SQL'
CREATE ROLE agentry LOGIN PASSWORD :'agentry_password';
CREATE DATABASE agentry OWNER agentry;
REVOKE ALL ON DATABASE agentry FROM PUBLIC;

CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';
CREATE DATABASE temporal OWNER temporal;

CREATE ROLE postgres_exporter LOGIN PASSWORD :'exporter_password';
GRANT pg_monitor TO postgres_exporter;
SQL
