#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run):
#   1. scripts/bootstrap.sh --test  (Debian packages: sip-tester, baresip, postgresql...; the venv)
#   2. a PostgreSQL server from scripts/ensure-postgres.sh (or SOFTSWITCH_TEST_PG_URL if already set);
#      no server = failure: half the suite runs on PostgreSQL
#   3. .venv/bin/pytest -q -n <cores> --dist load [your arguments]: pytest-xdist runs one worker
#      per core (SOFTSWITCH_TEST_WORKERS=N to choose, at most the core count; 0 = no xdist, one
#      process): the ~4,450 tests took 12 min 49 s on a fresh clone with 2 cores (budget: well
#      under 15). --dist load, not loadscope/loadfile/loadgroup: those queue tests by node id, and
#      schemathesis gives all 67 items of the OpenAPI fuzz test one id (only one of them would run);
#      with pytest 9.2, xdist 3.8's xdist_group marks are ignored anyway.
# Exit status is pytest's, except that "no tests collected" (5) counts as a failure. A skipped or
# xfailed test fails the run unless tests/conftest_skips.py allow-lists it (CI has every dependency).
# The last line is always a one-line summary with the counts.
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

# The skip policy (tests/conftest_skips.py) writes the counts here; any skip or xfail not on its
# allow-list makes pytest exit 1, and the list of every skip is printed before the summary.
report=$(mktemp "${TMPDIR:-/tmp}/softswitch-test-report.XXXXXX")
trap 'rm -f "$report"' EXIT
# One xdist worker per core: every test is parallel-safe (free ports from harness/ports.py, a database
# per test and a template per worker, tmp_path dirs, private network namespaces); more workers than
# cores only makes the timing-bounded tests (switch start, SIPp, baresip) wait for a CPU.
cores=$(nproc 2>/dev/null || echo 1)
workers=${SOFTSWITCH_TEST_WORKERS:-$cores}
if ! [[ "$workers" =~ ^[0-9]+$ ]]; then
  echo "TEST SUMMARY: FAILED (SOFTSWITCH_TEST_WORKERS=$workers is not a number) in $(( $(date +%s) - started ))s"
  exit 1
fi
[ "$workers" -gt "$cores" ] && workers=$cores
xdist=()
[ "$workers" -ge 1 ] && xdist=(-n "$workers" --dist load)
echo "test.sh: ${workers} pytest-xdist worker(s) on ${cores} core(s)" >&2
# --durations: the slowest tests are printed, so a suite creeping towards its time budget shows where.
SOFTSWITCH_TEST_REPORT="$report" .venv/bin/pytest -q "${xdist[@]}" --durations=25 "$@"
rc=$?
elapsed=$(( $(date +%s) - started ))
count() { local v; v=$(grep -m1 "^$1=" "$report" 2>/dev/null | cut -d= -f2); echo "${v:-0}"; }
counts="$(count passed) passed, $(count failed) failed, $(count errors) errors, $(count skipped) skipped, $(count xfailed) xfailed"
refused=$(count skips_refused)
if [ -s "$report" ] && [ "$(count skips_allowed)" != 0 ]; then
  counts="$counts; $(count skips_allowed) of the skips allowed by tests/conftest_skips.py"
fi
case $rc in
  0) echo "TEST SUMMARY: PASSED ($counts) in ${elapsed}s" ;;
  5) echo "TEST SUMMARY: FAILED (no tests were collected) in ${elapsed}s"; rc=1 ;;
  1) if [ "$refused" != 0 ] && [ "$(count failed)" = 0 ] && [ "$(count errors)" = 0 ]; then
       echo "TEST SUMMARY: FAILED ($refused skips/xfails not on the allow-list, see above; $counts) in ${elapsed}s"
     else
       echo "TEST SUMMARY: FAILED (some tests failed, see above; $counts) in ${elapsed}s"
     fi ;;
  2) echo "TEST SUMMARY: FAILED (interrupted; $counts) in ${elapsed}s" ;;
  *) echo "TEST SUMMARY: FAILED (pytest exit $rc) in ${elapsed}s" ;;
esac
exit $rc
