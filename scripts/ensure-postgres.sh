#!/usr/bin/env bash
# Make sure a PostgreSQL server is reachable for the test suite, and print its base URL.
#
#   scripts/ensure-postgres.sh          → last stdout line: postgresql+asyncpg://postgres@127.0.0.1:PORT/postgres
#   scripts/ensure-postgres.sh --stop   → stop the private cluster this script started (if any)
#   scripts/ensure-postgres.sh --private → skip the shared server on 5432 (tests this script's own path)
#   export SOFTSWITCH_TEST_PG_URL="$(scripts/ensure-postgres.sh | tail -n 1)"
#
# Order of preference:
#   1. a server on 127.0.0.1:5432 that lets user "postgres" in without a password (trust);
#   2. the private cluster this script started earlier (reused: fast on the next run);
#   3. a new private cluster: initdb -A trust into ${TMPDIR:-/tmp}/softswitch-pg-<uid>,
#      started with pg_ctl on a free port, listening on 127.0.0.1 and a socket in its dir.
# Installs the Debian "postgresql" package when no server binaries exist (needs root or sudo).
# Exits non-zero, with the reason on stderr, when it cannot provide a server.
set -euo pipefail

say() { echo "ensure-postgres: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

STATE_DIR="${SOFTSWITCH_PG_DIR:-${TMPDIR:-/tmp}/softswitch-pg-$(id -u)}"
DATA_DIR="$STATE_DIR/data"
PORT_FILE="$STATE_DIR/port"
LOG_FILE="$STATE_DIR/server.log"

find_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/pg_ctl" ]; then pg_config --bindir; return 0; fi
  if command -v pg_ctl >/dev/null 2>&1; then dirname "$(command -v pg_ctl)"; return 0; fi
  return 1
}

# Run a server binary as the cluster owner: initdb/postgres refuse to run as root.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Can we log in as postgres without a password on 127.0.0.1:$1?
trust_ok() {
  local port=$1 bindir=${2:-}
  local psql=psql isready=pg_isready
  if [ -n "$bindir" ]; then psql="$bindir/psql"; isready="$bindir/pg_isready"; fi
  command -v "$isready" >/dev/null 2>&1 || [ -x "$isready" ] || return 1
  "$isready" -q -h 127.0.0.1 -p "$port" -U postgres -t 3 || return 1
  if command -v "$psql" >/dev/null 2>&1 || [ -x "$psql" ]; then
    PGPASSWORD= PGCONNECT_TIMEOUT=5 "$psql" -w -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1
  else
    return 0  # no client to check with: assume trust, the tests will say otherwise
  fi
}

url_for() { echo "postgresql+asyncpg://postgres@127.0.0.1:$1/postgres"; }

stop_private() {
  local bindir
  if [ -f "$DATA_DIR/postmaster.pid" ] && bindir=$(find_bindir); then
    as_owner "$bindir/pg_ctl" -D "$DATA_DIR" -m fast -w stop >&2 || true
  fi
}

USE_SHARED=1
case "${1:-}" in
  --stop) stop_private; exit 0 ;;
  --private) USE_SHARED=0 ;;
  "") ;;
  *) die "unknown option $1 (use --stop or --private)" ;;
esac

BINDIR=$(find_bindir || true)

# 1. A shared server on the standard port.
if [ $USE_SHARED = 1 ] && trust_ok 5432 "$BINDIR"; then
  say "using the server on 127.0.0.1:5432"
  url_for 5432
  exit 0
fi

# Server binaries: install them if missing (idempotent: apt-get skips installed packages).
if [ -z "$BINDIR" ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    die "no PostgreSQL server binaries and no apt-get to install them; install PostgreSQL or set SOFTSWITCH_TEST_PG_URL"
  fi
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
      die "PostgreSQL is not installed and installing it needs root (sudo without password is not available)"
    fi
  fi
  say "installing the postgresql package"
  $SUDO apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >&2 \
    || die "apt-get install postgresql failed"
  BINDIR=$(find_bindir) || die "postgresql installed but pg_ctl not found"
  # The Debian package may have started its own cluster on 5432.
  if [ $USE_SHARED = 1 ] && trust_ok 5432 "$BINDIR"; then
    say "using the server on 127.0.0.1:5432"
    url_for 5432
    exit 0
  fi
fi

if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  die "running as root but there is no 'postgres' user to own the cluster (initdb refuses root)"
fi

# 2. Our private cluster from an earlier run.
if [ -f "$PORT_FILE" ] && [ -f "$DATA_DIR/postmaster.pid" ]; then
  PORT=$(cat "$PORT_FILE")
  if trust_ok "$PORT" "$BINDIR"; then
    say "reusing the private cluster on 127.0.0.1:$PORT ($DATA_DIR)"
    url_for "$PORT"
    exit 0
  fi
  say "stale private cluster in $DATA_DIR: restarting it"
  as_owner "$BINDIR/pg_ctl" -D "$DATA_DIR" -m immediate -w stop >/dev/null 2>&1 || true
fi

# 3. A new (or stopped) private cluster.
free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

mkdir -p "$STATE_DIR"
chmod 700 "$STATE_DIR"
[ "$(id -u)" = 0 ] && chown postgres "$STATE_DIR"
if [ ! -f "$DATA_DIR/PG_VERSION" ]; then
  rm -rf "$DATA_DIR"
  say "initdb $DATA_DIR"
  as_owner "$BINDIR/initdb" -D "$DATA_DIR" -A trust -U postgres -E UTF8 --no-sync >"$STATE_DIR/initdb.log" 2>&1 \
    || { cat "$STATE_DIR/initdb.log" >&2; die "initdb failed"; }
fi
PORT=$(free_port) || die "could not find a free TCP port"
echo "$PORT" >"$PORT_FILE"
[ "$(id -u)" = 0 ] && chown postgres "$PORT_FILE"
say "starting a private cluster on 127.0.0.1:$PORT (log: $LOG_FILE)"
# fsync off: a throwaway test cluster; nothing in it must survive a power cut.
if ! as_owner "$BINDIR/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -w -t 60 \
    -o "-k $STATE_DIR -c listen_addresses=127.0.0.1 -p $PORT -c fsync=off -c full_page_writes=off -c max_connections=200" \
    start >&2; then
  tail -n 20 "$LOG_FILE" >&2 || true
  die "pg_ctl start failed"
fi
trust_ok "$PORT" "$BINDIR" || die "the private cluster started but does not accept user postgres on 127.0.0.1:$PORT"
say "stop it with: $0 --stop   (PID file: $DATA_DIR/postmaster.pid)"
url_for "$PORT"
