#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run):
#   1. scripts/bootstrap.sh --test  (Debian packages: sip-tester, baresip, postgresql...; the venv)
#   2. a PostgreSQL server from scripts/ensure-postgres.sh (or SOFTSWITCH_TEST_PG_URL if already set);
#      no server = failure: half the suite runs on PostgreSQL
#   3. .venv/bin/pytest -q [your arguments]
# Exit status is pytest's, except that "no tests collected" (5) counts as a failure.
# The last line is always a one-line summary.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
started=$(date +%s)


if ! scripts/bootstrap.sh --test; then
  echo "TEST SUMMARY: FAILED (bootstrap failed) in $(( $(date +%s) - started ))s"
  exit 1
fi

if [ -z "${SOFTSWITCH_TEST_PG_URL:-}" ]; then
  if ! pg_out=$(bash scripts/ensure-postgres.sh); then
    echo "TEST SUMMARY: FAILED (no PostgreSQL: scripts/ensure-postgres.sh failed) in $(( $(date +%s) - started ))s"
    exit 1
  fi
  SOFTSWITCH_TEST_PG_URL=$(printf '%s\n' "$pg_out" | tail -n 1)
  if [ -z "$SOFTSWITCH_TEST_PG_URL" ]; then
    echo "TEST SUMMARY: FAILED (scripts/ensure-postgres.sh printed no URL) in $(( $(date +%s) - started ))s"
    exit 1
  fi
fi
export SOFTSWITCH_TEST_PG_URL
echo "test.sh: PostgreSQL at $SOFTSWITCH_TEST_PG_URL" >&2

.venv/bin/pytest -q "$@"
rc=$?
elapsed=$(( $(date +%s) - started ))
case $rc in
  0) echo "TEST SUMMARY: PASSED in ${elapsed}s" ;;
  5) echo "TEST SUMMARY: FAILED (no tests were collected) in ${elapsed}s"; rc=1 ;;
  1) echo "TEST SUMMARY: FAILED (some tests failed, see above) in ${elapsed}s" ;;
  2) echo "TEST SUMMARY: FAILED (interrupted) in ${elapsed}s" ;;
  *) echo "TEST SUMMARY: FAILED (pytest exit $rc) in ${elapsed}s" ;;
esac
exit $rc
