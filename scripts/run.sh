#!/usr/bin/env bash
# Run the softswitch: installs what is missing (scripts/bootstrap.sh), then
# `softswitch run` with your arguments, e.g.
#   ./scripts/run.sh                 # SIP on 127.0.0.1:5060 (UDP+TCP), HTTP on 127.0.0.1:8080,
#                                    # database and key in the state directory (~/.local/state/softswitch)
#   ./scripts/run.sh --sip 0.0.0.0:5060 --http 0.0.0.0:8080 --domain sip.example.net
#   ./scripts/run.sh --database postgresql+asyncpg://softswitch@db/softswitch --sip 0.0.0.0:5060
# The global options (--state-dir, --database, --key-file, --log-level, --log-format) may be
# given anywhere (environment: SOFTSWITCH_STATE_DIR, SOFTSWITCH_DATABASE_URL, SOFTSWITCH_KEY_FILE).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/bootstrap.sh"

global=() rest=()
while [ $# -gt 0 ]; do
  case "$1" in
    --database|--key-file|--log-level)
      [ $# -ge 2 ] || { echo "run.sh: $1 needs a value" >&2; exit 2; }
      global+=("$1" "$2"); shift 2 ;;
    --database=*|--key-file=*|--log-level=*) global+=("$1"); shift ;;
    *) rest+=("$1"); shift ;;
  esac
done
exec "$root/.venv/bin/softswitch" ${global[@]+"${global[@]}"} run ${rest[@]+"${rest[@]}"}
