#!/usr/bin/env bash
# One throw-away PostgreSQL server for a test run (ctest fixture "postgres").
#   tools/pg-test-server.sh start STATE_DIR   initdb + start; writes STATE_DIR/uri
#   tools/pg-test-server.sh stop STATE_DIR    stop it and delete its data
#   tools/pg-test-server.sh restart STATE_DIR crash it (immediate stop: no
#                                             checkpoint, WAL recovery) and start it again
#   tools/pg-test-server.sh start-pair STATE_DIR  a primary and a synchronous
#       standby (streaming replication); STATE_DIR/uri is a multi-host URI
#       with target_session_attrs=read-write
#   tools/pg-test-server.sh fail-primary STATE_DIR  crash the primary, promote
#       the standby
# The server listens on 127.0.0.1 on a free port, its socket in its own temp
# dir; its data dir is a temp dir owned by the user that runs it (PostgreSQL
# refuses to run as root: as root, it runs as user postgres). Tests read the
# base URI from STATE_DIR/uri and create a database each.
# Without PostgreSQL installed: exit 0 with STATE_DIR/uri absent (tests skip
# with a reason), except in CI (CI=true), where that is a failure.
set -euo pipefail
cmd=${1:?start|stop}
state=${2:?state dir}
mkdir -p "$state"

as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)

# A port nothing listens on (bash only: no python in the base packages).
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  return 1
}

case $cmd in
start)
  rm -f "$state/uri"
  if [[ -z "$bindir" || ! -x "$bindir/initdb" ]]; then
    echo "pg-test-server: PostgreSQL is not installed (tools/install-deps.sh installs it)" >&2
    [[ "${CI:-}" == "true" ]] && exit 1
    exit 0
  fi
  # A previous run's server, if any, goes first.
  "$0" stop "$state" || true
  tmp=$(mktemp -d /tmp/courier-pg.XXXXXX)
  chmod 0700 "$tmp"
  [[ $(id -u) -eq 0 ]] && chown postgres: "$tmp"
  echo "$tmp" >"$state/datadir"
  port=$(free_port)
  as_pg "$bindir/initdb" -D "$tmp/data" -U courier -A trust -E UTF8 --locale=C.UTF-8 \
    --no-sync >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; exit 1; }
  # fsync off: this server holds test data only (Courier's own durability
  # setting, synchronous_commit, is what the tests check).
  # PG_BENCH=1 (benchmarks): fsync on and a bigger cache, as in production.
  if [[ -n "${PG_BENCH:-}" ]]; then
    opts="-c shared_buffers=512MB -c max_wal_size=4GB"
  else
    opts="-c fsync=off -c full_page_writes=off -c shared_buffers=64MB"
  fi
  # PG_EXTRA_OPTS: more server options for an experiment (e.g. "-c
  # shared_preload_libraries=pg_stat_statements").
  opts="$opts ${PG_EXTRA_OPTS:-}"
  as_pg "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 60 start -o \
    "-c listen_addresses=127.0.0.1 -p $port -k $tmp -c max_connections=300 $opts" >/dev/null \
    || { cat "$tmp/server.log" >&2; exit 1; }
  echo "postgresql://courier@127.0.0.1:$port/postgres" >"$state/uri"
  echo "pg-test-server: $(cat "$state/uri") (data $tmp)"
  ;;
stop)
  [[ -f "$state/datadir" ]] || exit 0
  tmp=$(cat "$state/datadir")
  for d in "$tmp/standby" "$tmp/data"; do
    if [[ -n "$bindir" && -d "$d" ]]; then
      as_pg "$bindir/pg_ctl" -D "$d" -w -t 60 stop -m fast >/dev/null 2>&1 || true
    fi
  done
  rm -rf "$tmp"
  rm -f "$state/datadir" "$state/uri"
  ;;
start-pair)
  [[ -n "$bindir" && -x "$bindir/initdb" ]] || { echo "pg-test-server: no PostgreSQL" >&2; exit 1; }
  "$0" stop "$state" || true
  tmp=$(mktemp -d /tmp/courier-pg.XXXXXX)
  chmod 0700 "$tmp"
  [[ $(id -u) -eq 0 ]] && chown postgres: "$tmp"
  echo "$tmp" >"$state/datadir"
  p1=$(free_port); p2=$(free_port)
  as_pg "$bindir/initdb" -D "$tmp/data" -U courier -A trust -E UTF8 --locale=C.UTF-8 \
    --no-sync >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; exit 1; }
  echo "host replication courier 127.0.0.1/32 trust" | as_pg tee -a "$tmp/data/pg_hba.conf" >/dev/null
  # The primary waits for the standby's flush before a commit returns
  # (synchronous_commit on, the default, with a synchronous standby).
  as_pg "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 60 start -o \
    "-c listen_addresses=127.0.0.1 -p $p1 -k $tmp -c wal_level=replica -c max_wal_senders=4 \
     -c synchronous_standby_names=standby -c max_connections=100" >/dev/null \
    || { cat "$tmp/server.log" >&2; exit 1; }
  as_pg "$bindir/pg_basebackup" -h 127.0.0.1 -p "$p1" -U courier -D "$tmp/standby" -R \
    -X stream -d "application_name=standby" >"$tmp/basebackup.log" 2>&1 \
    || { cat "$tmp/basebackup.log" >&2; exit 1; }
  as_pg "$bindir/pg_ctl" -D "$tmp/standby" -l "$tmp/standby.log" -w -t 60 start -o \
    "-c listen_addresses=127.0.0.1 -p $p2 -k $tmp -c synchronous_standby_names= \
     -c max_connections=100" >/dev/null || { cat "$tmp/standby.log" >&2; exit 1; }
  echo "postgresql://courier@127.0.0.1:$p1,127.0.0.1:$p2/postgres?target_session_attrs=read-write" \
    >"$state/uri"
  echo "pg-test-server: $(cat "$state/uri") (data $tmp)"
  ;;
fail-primary)
  tmp=$(cat "$state/datadir")
  as_pg "$bindir/pg_ctl" -D "$tmp/data" -w -t 60 stop -m immediate >/dev/null
  as_pg "$bindir/pg_ctl" -D "$tmp/standby" -w -t 60 promote >/dev/null
  ;;
restart)
  tmp=$(cat "$state/datadir")
  # pg_ctl restart keeps the options the server was started with.
  as_pg "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 60 restart -m immediate \
    >/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
  ;;
*)
  echo "usage: $0 start|stop|restart|start-pair|fail-primary STATE_DIR" >&2
  exit 2
  ;;
esac
