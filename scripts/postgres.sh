#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for the test suite and print its URL.
# Usage: scripts/postgres.sh start|stop   (data in ${VA_PG_DIR:-/tmp/va-postgres}, port ${VA_PG_PORT:-55432})
set -euo pipefail
PGDIR="${VA_PG_DIR:-/tmp/va-postgres}"
PORT="${VA_PG_PORT:-55432}"
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
if [ -z "$BIN" ]; then
  echo "PostgreSQL is not installed: run 'apt-get install -y postgresql' (scripts/bootstrap.sh does)." >&2
  exit 1
fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "${1:-start}" in
  start)
    if [ ! -s "$PGDIR/PG_VERSION" ]; then
      mkdir -p "$PGDIR"
      [ "$(id -u)" = 0 ] && chown postgres "$PGDIR"
      as_pg "$BIN/initdb" -D "$PGDIR" -A trust -U postgres >/dev/null
    fi
    if ! as_pg "$BIN/pg_ctl" -D "$PGDIR" status >/dev/null 2>&1; then
      as_pg "$BIN/pg_ctl" -D "$PGDIR" -l "$PGDIR/server.log" -w \
        -o "-h 127.0.0.1 -p $PORT -k /tmp -c fsync=off -c max_connections=200" start >/dev/null
    fi
    as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='va_test'" \
      | grep -q 1 || as_pg "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres va_test
    echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/va_test"
    ;;
  stop)
    as_pg "$BIN/pg_ctl" -D "$PGDIR" stop -m fast >/dev/null || true
    ;;
esac
