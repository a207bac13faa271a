# Integration: the drop-in plugin developer path of docs/writing-plugins.md.
# `make install` into a private prefix, then build the guide's complete
# minimal plugin (§10, extracted from the markdown, so the listing in the
# guide is what is tested) out of tree against ONLY the installed header and
# sluice.pc, list it with the installed worker, and run it in a pipeline
# (source-counter -> transform-tag -> Kafka -> sink-file) with the installed
# worker and bundled plugins.
. "$(dirname "$0")/lib.sh"

# Sanitizer reports must fail the test even where the exit code is expected
# to be non-zero anyway.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp:print_suppressions=0}
no_sanitizer_reports() { ! grep -lE 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|Sanitizer:DEADLYSIGNAL|Sanitizer has encountered a fatal error' "$@"; }
show() { sed 's/^/    | /' "$1" | tail -${2:-20}; }

P=$T/prefix
DOC=$ROOT/docs/writing-plugins.md
# The Makefile takes BUILD relative to the repo (build or build-san); a build
# dir elsewhere is passed as an absolute path. build-san needs SANITIZE=1 or a
# rebuild there would drop the sanitizer flags.
MK_BUILD=${BUILD#"$ROOT"/}
case $(basename "$BUILD") in build-san*) san=1 ;; *) san=0 ;; esac
san=${SANITIZE:-$san}

# --- 1. make install -----------------------------------------------------
rc=0
make -C "$ROOT" --no-print-directory install PREFIX="$P" BUILD="$MK_BUILD" SANITIZE="$san" \
  >"$T/install.log" 2>&1 || rc=$?
check_eq "make install PREFIX=\$T/prefix BUILD=$MK_BUILD exits 0" 0 "$rc"
[ "$rc" = 0 ] || show "$T/install.log"
check "installed bin/sluice (executable)" test -x "$P/bin/sluice"
check "installed include/sluice/plugin.h, identical to the repo's" cmp -s "$P/include/sluice/plugin.h" "$ROOT/include/sluice/plugin.h"
check "installed lib/sluice/plugins/source-counter.so" test -f "$P/lib/sluice/plugins/source-counter.so"
check "installed lib/sluice/plugins/sink-file.so" test -f "$P/lib/sluice/plugins/sink-file.so"
check_eq "installed one .so per bundled plugin" "$(cd "$BUILD/plugins" && ls *.so | sort | tr '\n' ' ')" \
  "$(cd "$P/lib/sluice/plugins" 2>/dev/null && ls *.so | sort | tr '\n' ' ')"
check "installed lib/pkgconfig/sluice.pc" test -f "$P/lib/pkgconfig/sluice.pc"
check "installed share/sluice/schemas/ with the repo's schemas" bash -c \
  "[ -d '$P/share/sluice/schemas' ] && [ \"\$(cd '$ROOT/schemas' && ls *.avsc 2>/dev/null)\" = \"\$(cd '$P/share/sluice/schemas' && ls *.avsc 2>/dev/null)\" ]"
VERSION=$(cat "$ROOT/VERSION")
pc() { PKG_CONFIG_PATH=$P/lib/pkgconfig pkg-config "$@"; }
check_eq "pkg-config --modversion sluice = VERSION" "$VERSION" "$(pc --modversion sluice 2>&1)"
check_eq "pkg-config plugindir = the installed plugin dir" "$P/lib/sluice/plugins" "$(pc --variable=plugindir sluice 2>&1)"
CFLAGS_SL=$(pc --cflags sluice 2>"$T/pc.err")
check "pkg-config --cflags sluice points at the prefix, never the repo" \
  bash -c "[[ ' $CFLAGS_SL ' == *' -I$P/include '* && ' $CFLAGS_SL ' != *'$ROOT'* ]]"
timeout 30 "$P/bin/sluice" version >"$T/version.out" 2>"$T/version.err"
check_eq "installed sluice version" "sluice $VERSION" "$(cut -d' ' -f1,2 "$T/version.out")"
ABI=$(sed -n 's/.*plugin ABI \([0-9]*\.[0-9]*\).*/\1/p' "$T/version.out")

# --- 2. the guide's complete minimal plugin, built out of tree ------------
mkdir -p "$T/src" "$T/myplugins" "$T/elsewhere"
awk '/^## 10\./ {s = 1} s && /^```c$/ {c = 1; next} c && /^```$/ {exit} c' "$DOC" >"$T/src/tag.c"
check "extracted the §10 listing from docs/writing-plugins.md" \
  bash -c "grep -q 'SLUICE_PLUGIN_ENTRY' '$T/src/tag.c' && grep -q '\"transform-tag\"' '$T/src/tag.c' && [ \$(wc -l < '$T/src/tag.c') -gt 40 ]"
# Only the installed SDK: no -I to the repo, no include paths from the
# environment, not run from inside the repo.
cc_env() { env -u CPATH -u C_INCLUDE_PATH -u CPLUS_INCLUDE_PATH -u OBJC_INCLUDE_PATH "$@"; }
rc=0
(cd "$T/elsewhere" && cc_env cc -std=c11 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden \
  $CFLAGS_SL ../src/tag.c -o "$T/myplugins/x.so" $(pc --libs avro-c)) >"$T/cc.log" 2>&1 || rc=$?
check_eq "the listing compiles cleanly (-std=c11 -Wall -Wextra -Werror) against the installed SDK" 0 "$rc"
[ "$rc" = 0 ] || show "$T/cc.log"
(cd "$T/elsewhere" && cc_env cc -std=c11 $CFLAGS_SL -M ../src/tag.c) >"$T/deps.txt" 2>&1
check "the compile used the installed plugin.h" grep -q "$P/include/sluice/plugin.h" "$T/deps.txt"
check "the compile read nothing from the repo" bash -c "! grep -q '$ROOT' '$T/deps.txt'"
check_eq "only the entry function is exported (nm -D)" "sluice_plugin_entry_v${ABI%%.*}" \
  "$(nm -D --defined-only "$T/myplugins/x.so" 2>&1 | awk '{print $NF}' | tr '\n' ' ' | sed 's/ $//')"
# The guide's own build command (§11 step 2), run as written.
DOC_CC=$(awk '/^## 11\./ {s = 1} s && /^cc / {print; exit}' "$DOC")
rc=0
(cd "$T/src" && export PKG_CONFIG_PATH="$P/lib/pkgconfig" && cc_env bash -c "$DOC_CC") >"$T/doccc.log" 2>&1 || rc=$?
check_eq "the guide's build command works as written: $DOC_CC" 0 "$rc"
[ "$rc" = 0 ] || show "$T/doccc.log"
check "... and makes transform-tag.so" test -f "$T/src/transform-tag.so"

# --- 3. the installed worker lists it -------------------------------------
rc=0
timeout 30 "$P/bin/sluice" plugins --plugin-path "$T/myplugins,$P/lib/sluice/plugins" >"$T/plugins.out" 2>"$T/plugins.err" || rc=$?
check_eq "sluice plugins exits 0" 0 "$rc"
check "lists transform-tag: kind transform, version 1.0.0, ABI $ABI, file x.so" \
  grep -Eq "^transform-tag +transform +1\.0\.0 +${ABI//./\\.} +$T/myplugins/x\.so\$" "$T/plugins.out"
check "lists the installed source-counter" grep -Eq "^source-counter +source .* $P/lib/sluice/plugins/source-counter\.so\$" "$T/plugins.out"
check "lists the installed sink-file" grep -Eq "^sink-file +sink .* $P/lib/sluice/plugins/sink-file\.so\$" "$T/plugins.out"
check "refuses nothing" bash -c "! grep -q refused '$T/plugins.err'"
[ "$rc" = 0 ] || show "$T/plugins.err"

# --- 4. and runs it --------------------------------------------------------
cat >"$T/worker.json" <<JSON
{
  "bootstrap.servers": "embedded",
  "embedded.brokers": 3,
  "embedded.bootstrap.file": "$T/bootstrap",
  "plugin.path": "$T/myplugins,$P/lib/sluice/plugins",
  "schemas.path": "$P/share/sluice/schemas",
  "offset.storage.file.filename": "$T/offsets.json",
  "offset.flush.interval.ms": 500,
  "rest.port": 0
}
JSON
export SL_IT_TAG_VALUE="built-out-of-tree"
# transform-tag on the source side (headers reach Kafka: kcat sees them) and
# on the sink side (the sink-file format has no headers; it must pass every
# record on unchanged otherwise).
cat >"$T/counter.json" <<JSON
{"name": "counter-tagged", "config": {"connector.class": "source-counter", "tasks.max": "2",
 "topic": "tagged", "count": "300", "batch.size": "50",
 "transforms": "tag", "transforms.tag.type": "transform-tag",
 "transforms.tag.header": "origin", "transforms.tag.value": "\${env:SL_IT_TAG_VALUE}"}}
JSON
cat >"$T/file.json" <<JSON
{"name": "to-file", "config": {"connector.class": "sink-file", "tasks.max": "1",
 "topics": "tagged", "file": "$T/out.jsonl",
 "transforms": "seen", "transforms.seen.type": "transform-tag", "transforms.seen.header": "seen-by"}}
JSON
cat >"$T/bad-tag.json" <<JSON
{"name": "bad-tag", "config": {"connector.class": "source-counter", "topic": "x",
 "transforms": "tag", "transforms.tag.type": "transform-tag", "transforms.tag.value": "v"}}
JSON
rc=0
timeout 30 "$P/bin/sluice" validate "$T/worker.json" "$T/counter.json" "$T/file.json" >"$T/validate.out" 2>"$T/validate.err" || rc=$?
check_eq "installed sluice validates the pipeline" "0 2 connector config(s) valid" "$rc $(cat "$T/validate.out")"
[ "$rc" = 0 ] || show "$T/validate.err"
rc=0
timeout 30 "$P/bin/sluice" validate "$T/worker.json" "$T/bad-tag.json" >/dev/null 2>"$T/bad-tag.err" || rc=$?
check_eq "the plugin's REQUIRED key is enforced: exit 1" 1 "$rc"
check "... naming transforms.tag.header" grep -q "'transforms.tag.header': missing required value" "$T/bad-tag.err"

lines() { [ -f "$T/out.jsonl" ] && wc -l <"$T/out.jsonl" || echo 0; }
lines_at_least() { [ "$(lines)" -ge "$1" ]; }
# `sluice validate` above started an embedded cluster too and wrote its (now
# dead) addresses to the bootstrap file: wait for the running worker's.
rm -f "$T/bootstrap"
start_bg "$P/bin/sluice" standalone "$T/worker.json" "$T/counter.json" "$T/file.json" 2>"$T/run.log"
W=$LAST_PID
check "worker writes the embedded bootstrap file" wait_for 10 test -s "$T/bootstrap"
BS=$(cat "$T/bootstrap" 2>/dev/null)
check "sink wrote 600 lines" wait_for 30 lines_at_least 600
kc() { kcat -b "$BS" -C -t tagged -o beginning -e -q -f "$1" 2>/dev/null; }
tagged_count() { [ "$(kc '%h\n' | grep -cx 'origin=built-out-of-tree')" -eq 600 ]; }
check "kcat: all 600 records carry the header origin=\${env:SL_IT_TAG_VALUE} added by transform-tag" wait_for 20 tagged_count
check_eq "kcat: no record without it" 0 "$(kc '%h\n' | grep -cvx 'origin=built-out-of-tree')"
stop_worker "$W"
check_eq "SIGTERM: worker exits 0" 0 "$STOP_RC"
check_eq "exactly 600 lines in the sink file" 600 "$(lines)"
check_eq "600 distinct (task, n), all from topic 'tagged'" "600 {'tagged'}" "$(python3 -c '
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
print(len({(r["value"]["task"], r["value"]["n"]) for r in rs}), {r["topic"] for r in rs})' "$T/out.jsonl" 2>&1)"
check "the transform chain started on both connectors" bash -c \
  "grep -q 'started 2 source task(s) of plugin source-counter' '$T/run.log' && grep -q 'started 1 sink task(s) of plugin sink-file' '$T/run.log'"
check "no errors or warnings logged" bash -c "! grep -E ' (ERROR|WARN) ' '$T/run.log'"
grep -E ' (ERROR|WARN) ' "$T/run.log" | head -5 | sed 's/^/    | /'
check "no sanitizer reports" no_sanitizer_reports "$T"/*.log "$T"/*.err
finish
