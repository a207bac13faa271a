#!/usr/bin/env bash
# it_fuzz.sh - a short libFuzzer round (FUZZ_TIME seconds per target, 5 by
# default) over every target in tests/fuzz/, built with clang + ASan +
# UBSan. `make fuzz` runs the same targets longer (120 s each by default).
source "$(dirname "$0")/lib.sh"
FB=${FUZZ_BUILD:-$ROOT/build-fuzz}
check "fuzz targets build" make -s -C "$ROOT" fuzz-build FUZZ_BUILD="$FB" -j2
out=$(FUZZ_BUILD="$FB" FUZZ_TIME=${FUZZ_TIME:-5} "$ROOT/tests/fuzz/run.sh" 2>&1); rc=$?
echo "$out"
for t in "$ROOT"/tests/fuzz/fuzz_*.c; do
  name=$(basename "$t" .c); name=${name#fuzz_}
  execs=$(echo "$out" | awk -v n="$name" '$1==n {print $2}')
  check "fuzz_$name ran (executions: ${execs:-none})" test "${execs:-0}" -gt 0 2>/dev/null
  check_eq "fuzz_$name crashes" 0 "$(echo "$out" | awk -v n="$name" '$1==n {print $4}')"
done
check_eq "fuzz run exit status" 0 "$rc"
finish
