#!/usr/bin/env bash
# PostgreSQL for the ledger's tests: a throwaway cluster that listens on 127.0.0.1 only (Debian's
# `postgresql` package, which scripts/install-deps.sh installs). PostgreSQL refuses to run as root:
# as root, the cluster belongs to the `postgres` user and runs as it.
#
#   scripts/postgres.sh check            exit 0 when initdb, pg_ctl and psql are found
#   scripts/postgres.sh start PORT DIR   a cluster in DIR/data (made if missing) on 127.0.0.1:PORT
#                                        (trust auth, user postgres, its socket and log in DIR);
#                                        waits until up. As root, DIR must be reachable by the
#                                        postgres user (a folder right under /tmp is).
#   scripts/postgres.sh stop DIR         stops it (fast shutdown); resume with `restart DIR`
#   scripts/postgres.sh restart DIR      starts a stopped cluster again on its port
#   (DIR/tls/server.crt and server.key, when there at start: TLS on, with that certificate)
#
# fsync is off: a test cluster lives for one test run, and what the tests check is the ledger's
# transactions, not the disk's durability. SD_POSTGRES_FSYNC=on turns it on (the ledger benchmark,
# to compare with SQLite's synchronous=FULL).
set -euo pipefail

find_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/$1" ]; then
      echo "$dir/$1"
      return
    fi
  done
  command -v "$1" || true
}

initdb=$(find_bin initdb)
pg_ctl=$(find_bin pg_ctl)

# Runs a command as the cluster's owner.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "${1:-}" in
  check)
    [ -n "$initdb" ] && [ -n "$pg_ctl" ] && command -v psql >/dev/null
    ;;
  start)
    port=${2:?port}
    dir=${3:?dir}
    [ -n "$initdb" ] || { echo "initdb not found: install postgresql (scripts/install-deps.sh)" >&2; exit 1; }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" -eq 0 ]; then
      chown postgres "$dir"
      runuser -u postgres -- test -w "$dir" \
        || { echo "$dir: the postgres user cannot reach it (a parent folder is closed to it)" >&2; exit 1; }
    fi
    if [ ! -d "$dir/data" ]; then
      as_owner "$initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    echo "$port" >"$dir/port"
    # TLS when the caller put a certificate and its key in DIR/tls (the ledger's TLS test).
    tls=""
    if [ -f "$dir/tls/server.crt" ] && [ -f "$dir/tls/server.key" ]; then
      chmod 600 "$dir/tls/server.key"
      [ "$(id -u)" -eq 0 ] && chown -R postgres "$dir/tls"
      tls="-c ssl=on -c ssl_cert_file='$dir/tls/server.crt' -c ssl_key_file='$dir/tls/server.key'"
    fi
    echo "$tls" >"$dir/tls-options"
    as_owner "$pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k '$dir' -c fsync=${SD_POSTGRES_FSYNC:-off} -c max_connections=200 $tls" start >/dev/null \
      || { cat "$dir/postgres.log" >&2; exit 1; }
    ;;
  stop)
    dir=${2:?dir}
    as_owner "$pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
  restart)
    dir=${2:?dir}
    port=$(cat "$dir/port")
    tls=$(cat "$dir/tls-options" 2>/dev/null || true)
    as_owner "$pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k '$dir' -c fsync=${SD_POSTGRES_FSYNC:-off} -c max_connections=200 $tls" start >/dev/null \
      || { cat "$dir/postgres.log" >&2; exit 1; }
    ;;
  *)
    echo "usage: scripts/postgres.sh check | start PORT DIR | stop DIR | restart DIR" >&2
    exit 2
    ;;
esac
