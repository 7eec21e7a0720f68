#!/usr/bin/env bash
# setup_peers.sh [kamailio] [sippy] -- install what bench/bench_calls.py --with-peers (both peers, the
# default) or bench/bench_register.py --with-kamailio (`setup_peers.sh kamailio`) needs, if missing:
#   * SIPp (Debian sip-tester) and Kamailio 5.6 (Debian kamailio; the packaged service is not started:
#     the bench runs its own Kamailio in the foreground on a free loopback port);
#   * sippy/b2bua 2.5 (PyPI "sippy") in a throwaway venv OUTSIDE the repository
#     ($SIPPY_VENV, default /tmp/softswitch-peers-venv): nothing of sippy is copied into the project.
# Prints the paths it found, one "name=path" per line. Exit status 0 when every requested peer is usable.
set -u
want=" ${*:-kamailio sippy} "
case "$want" in *" kamailio "*) want_kamailio=1 ;; *) want_kamailio=0 ;; esac
case "$want" in *" sippy "*) want_sippy=1 ;; *) want_sippy=0 ;; esac
SIPPY_VENV=${SIPPY_VENV:-/tmp/softswitch-peers-venv}
SIPPY_SPEC=${SIPPY_SPEC:-"sippy>=2.5,<2.6"}

need=""
command -v sipp >/dev/null || need="$need sip-tester"
[ $want_kamailio = 1 ] && ! command -v kamailio >/dev/null && need="$need kamailio"
[ $want_sippy = 1 ] && ! python3 -c 'import ensurepip' 2>/dev/null && need="$need python3-venv"
if [ -n "$need" ]; then
  if [ "$(id -u)" != 0 ]; then echo "setup_peers: need root to install:$need" >&2; exit 1; fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null \
    || { echo "setup_peers: apt-get install$need failed" >&2; exit 1; }
fi
rc=0
echo "sipp=$(command -v sipp)"
if [ $want_kamailio = 1 ]; then
  for m in auth_db db_text registrar usrloc tm rr; do
    if [ ! -f "/usr/lib/x86_64-linux-gnu/kamailio/modules/$m.so" ]; then
      echo "setup_peers: kamailio module $m missing" >&2; rc=1
    fi
  done
  echo "kamailio=$(command -v kamailio)"
fi
if [ $want_sippy = 1 ]; then
  if [ ! -x "$SIPPY_VENV/bin/b2bua_radius" ]; then
    python3 -m venv "$SIPPY_VENV" && "$SIPPY_VENV/bin/pip" install -q "$SIPPY_SPEC" 2>&1 | grep -v "^WARNING: Location" >&2
  fi
  [ -x "$SIPPY_VENV/bin/b2bua_radius" ] || { echo "setup_peers: pip install $SIPPY_SPEC failed" >&2; rc=1; }
  echo "b2bua_radius=$SIPPY_VENV/bin/b2bua_radius"
  echo "sippy_version=$("$SIPPY_VENV/bin/pip" show sippy 2>/dev/null | awk '/^Version:/{print $2}')"
fi
exit $rc
