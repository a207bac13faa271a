#!/usr/bin/env bash
# tests/fuzz/run.sh - runs every libFuzzer target in $FUZZ_BUILD for
# $FUZZ_TIME seconds each ($FUZZ_JOBS at a time, default the cores), on a scratch copy of its committed corpus
# (tests/fuzz/corpus/<name>, new inputs are not written back). Prints a
# table (target, executions, corpus size, crashes) and "N passed, N failed".
# A crash leaves its input in $FUZZ_BUILD/artifacts/<target>/.
set -u
cd "$(dirname "$0")/../.." && ROOT=$PWD
FUZZ_BUILD=$(cd "${FUZZ_BUILD:-build-fuzz}" && pwd)
FUZZ_TIME=${FUZZ_TIME:-120}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
passed=0; failed=0; total=0
# one target: runs it (its output in its log, its exit status in .rc)
run_target() { # bin name
  local work="$FUZZ_BUILD/work/$2" art="$FUZZ_BUILD/artifacts/$2/"
  rm -rf "$work" "$art"; mkdir -p "$work" "$art"
  cp "$ROOT"/tests/fuzz/corpus/"$2"/* "$work"/ 2>/dev/null
  "$1" -max_total_time="$FUZZ_TIME" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$art" "$work" </dev/null >"$FUZZ_BUILD/$2.log" 2>&1
  echo $? >"$FUZZ_BUILD/$2.rc"
}
# FUZZ_JOBS targets at a time (each fuzzer is one thread; default: the cores)
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
names=()
for bin in "$FUZZ_BUILD"/fuzz_*; do
  [ -x "$bin" ] || continue
  t=$(basename "$bin"); names+=("${t#fuzz_}")
  run_target "$bin" "${t#fuzz_}" &
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
done
wait
printf '%-14s %12s %8s %8s\n' target executions corpus crashes
for name in "${names[@]}"; do
  work="$FUZZ_BUILD/work/$name"; art="$FUZZ_BUILD/artifacts/$name/"; log="$FUZZ_BUILD/$name.log"
  rc=$(cat "$FUZZ_BUILD/$name.rc" 2>/dev/null || echo 1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  crashes=$(find "$art" -type f | wc -l)
  printf '%-14s %12s %8s %8s\n' "$name" "${execs:-?}" "$(ls "$work" | wc -l)" "$crashes"
  total=$((total + ${execs:-0}))
  if [ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ]; then passed=$((passed+1))
  else failed=$((failed+1)); echo "  $name: exit $rc, see $log"; grep -m5 -A15 "ERROR\|==ERROR\|runtime error\|deadly signal" "$log" | head -40
  fi
done
echo "fuzz executions: $total"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
