#!/bin/sh
# The official postgres image's first start, as far as compose.yaml uses it: on an empty PGDATA, a cluster
# whose superuser is POSTGRES_USER with the password in POSTGRES_PASSWORD_FILE, and the database
# POSTGRES_DB. Then the command, the server itself.
set -eu

if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    user="${POSTGRES_USER:-postgres}"
    database="${POSTGRES_DB:-$user}"
    if [ ! -r "${POSTGRES_PASSWORD_FILE:-}" ]; then
        echo "POSTGRES_PASSWORD_FILE must name a readable file holding the password." >&2
        exit 1
    fi
    initdb --username="$user" --pwfile="$POSTGRES_PASSWORD_FILE" --auth-local=trust --auth-host=scram-sha-256
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [ "$database" != postgres ]; then
        # A private socket and no TCP: pg_isready, the health check, says nothing until the real server runs.
        socket="$(mktemp -d)"
        pg_ctl --silent --wait -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$socket" start
        psql --quiet -v ON_ERROR_STOP=1 --host="$socket" --username="$user" --dbname=postgres --set=name="$database" \
            <<'SQL'
CREATE DATABASE :"name";
SQL
        pg_ctl --silent --wait -D "$PGDATA" -m fast stop
        rmdir "$socket"
    fi
fi
exec "$@"
