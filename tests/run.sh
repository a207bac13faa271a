#!/usr/bin/env bash
# Runs the whole suite: every unit test binary (cmocka) in $BUILD/tests and
# every integration script tests/it_*.sh. Prints one line per test program
# and ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD SLUICE_BIN="$PWD/$BUILD/sluice" SLUICE_BUILD="$PWD/$BUILD" SLUICE_ROOT="$PWD"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
# it_fuzz's targets one at a time when another test runs beside it
[ "${TEST_JOBS:-2}" -gt 1 ] && export FUZZ_JOBS=${FUZZ_JOBS:-1}
only=${1:-}
passed=0; failed=0; failures=()
logdir=$(mktemp -d "${TMPDIR:-/tmp}/sluice-tests.XXXXXX")
report() { # name, exit status, seconds
  if [ "$2" = 0 ]; then
    passed=$((passed+1)); printf 'PASS  %-32s %3ss\n' "$1" "$3"
  else
    failed=$((failed+1)); failures+=("$1")
    printf 'FAIL  %-32s %3ss\n' "$1" "$3"
    sed 's/^/    | /' "$logdir/$1.log" | tail -60
  fi
}
run_one() { # name, command...
  local name=$1; shift
  [ -n "$only" ] && [[ "$name" != *"$only"* ]] && return
  local start=$(date +%s) rc=0
  "$@" >"$logdir/$name.log" 2>&1 || rc=$?
  report "$name" "$rc" $(( $(date +%s)-start ))
}
# The integration tests run TEST_JOBS at a time (default 2): each one mostly
# waits (group joins, session timeouts, polling), so two share the 2 cores
# and the suite takes half the time. Each has its own temp dir, loopback
# servers on ephemeral ports and its own log; a result is printed when its
# test ends. TEST_JOBS=1 runs them one after another.
jobs=${TEST_JOBS:-2}
declare -A job_name=() job_start=()
run_bg() { # name, command...
  local name=$1; shift
  [ -n "$only" ] && [[ "$name" != *"$only"* ]] && return
  while [ "${#job_name[@]}" -ge "$jobs" ]; do reap; done
  ( "$@" >"$logdir/$name.log" 2>&1 ) &
  job_name[$!]=$name; job_start[$!]=$(date +%s)
}
reap() { # waits for one test to end and reports it
  local pid rc=0
  wait -n -p pid "${!job_name[@]}" || rc=$?
  if [ -z "${pid:-}" ]; then # no status left to collect: fail them, never loop
    for pid in "${!job_name[@]}"; do echo "lost: no exit status" >>"$logdir/${job_name[$pid]}.log"; report "${job_name[$pid]}" 127 0; done
    job_name=(); job_start=(); return
  fi
  report "${job_name[$pid]}" "$rc" $(( $(date +%s) - ${job_start[$pid]} ))
  unset "job_name[$pid]" "job_start[$pid]"
}
# VALGRIND=1: the unit tests under valgrind memcheck (any error or definite
# leak fails the test), and no integration tests (`make test-valgrind`).
vg=()
[ "${VALGRIND:-0}" = 1 ] && vg=(valgrind -q --error-exitcode=99 --leak-check=full
  --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-origins=yes)
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] && run_one "$(basename "$t")${vg:+ (valgrind)}" "${vg[@]}" "$t"
done
[ "${VALGRIND:-0}" = 1 ] || for t in tests/it_*.sh; do
  # the fuzz targets are their own ASan + UBSan build (build-fuzz): the
  # sanitizer suite would only run the same binaries again
  [ "${SANITIZE:-0}" = 1 ] && [ "$t" = tests/it_fuzz.sh ] && { echo "(it_fuzz: run by the plain suite)"; continue; }
  [ -f "$t" ] && run_bg "$(basename "$t" .sh)" bash "$t"
done
while [ "${#job_name[@]}" -gt 0 ]; do reap; done
echo "logs: $logdir"
# the failed checks again, last, so that a truncated CI log still shows them
for f in "${failures[@]}"; do
  echo "failed: $f"
  { grep -E '^(not ok|FAIL|ERROR|==[0-9]+==ERROR)' "$logdir/$f.log" || tail -3 "$logdir/$f.log"; } |
    head -10 | sed 's/^/    > /'
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
