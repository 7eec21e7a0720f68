#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian/Ubuntu machine, idempotently:
# Debian packages only when missing, and a virtualenv in .venv with the project installed.
# Usage: scripts/bootstrap.sh [--test]   (--test adds the test-only system packages and extras)
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
have_cmd python3 || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# A C compiler and the Python headers: scripts/build_core.py compiles the SIP core with mypyc.
have_cmd gcc || need+=(gcc)
python3 -c 'import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  2>/dev/null || need+=(python3-dev)
if [ $want_test = 1 ]; then
  have_cmd sipp || need+=(sip-tester)
  have_cmd baresip || need+=(baresip-core)
  have_cmd espeak-ng || need+=(espeak-ng)
  have_cmd sox || need+=(sox)
  have_cmd ip || need+=(iproute2)
  # The web UI's browser tests drive Debian's Chromium (never a downloaded browser).
  [ -x /usr/bin/chromium ] || need+=(chromium)
  # A PostgreSQL server: the tests run on it as well as on SQLite.
  if ! have_cmd pg_ctl && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then need+=(postgresql); fi
fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "bootstrap: installing Debian packages: ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)-$want_test
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >&2
  if [ $want_test = 1 ]; then .venv/bin/pip install -q -e '.[test,compile]' >&2; else .venv/bin/pip install -q -e '.[fast,compile]' >&2; fi
  rm -f .venv/.installed-*; touch "$stamp"
fi
# Compile the SIP core with mypyc when its sources changed since the last build (a hash check
# when they did not). A failed build is not fatal: the pure-Python core is the same code.
.venv/bin/python scripts/build_core.py >&2 || echo "bootstrap: running the pure-Python SIP core" >&2
