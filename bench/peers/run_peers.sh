#!/usr/bin/env bash
# run_peers.sh [bench_calls.py options] -- measure only the peers (Kamailio, sippy/b2bua) with the
# project's SIPp scenarios: installs them if missing (setup_peers.sh), then
# bench/bench_calls.py --db none --with-peers. To compare with the switch, run
# bench/bench_calls.py --with-peers instead: the switch and the peers in one invocation.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
"$here/setup_peers.sh" >/dev/null || exit 1
py="$root/.venv/bin/python"
[ -x "$py" ] || py=python3
exec "$py" "$root/bench/bench_calls.py" --db none --with-peers "$@"
