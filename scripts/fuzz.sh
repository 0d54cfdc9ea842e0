#!/usr/bin/env bash
# Fuzz every file reader of jade with libFuzzer (clang, -fsanitize=fuzzer,address,undefined):
# builds the harnesses of fuzz/ in $BUILD_DIR (default build-fuzz, -DJADE_FUZZ=ON), makes
# the seed corpora (scripts/fuzz_corpus.sh), replays the saved crash reproducers of
# fuzz/regressions/<harness>/, then runs each harness for FUZZ_TIME seconds (default 60),
# FUZZ_JOBS at a time (default 2), or until FUZZ_RUNS executions (FUZZ_SEED fixes the
# mutations: CI replays the same inputs every time; sessions explore with new seeds). Exits non-zero if any harness crashes, leaks memory, hits
# a sanitizer report or an invariant; the reproducer is left in $BUILD_DIR/fuzz-crashes/.
# Usage: scripts/fuzz.sh [harness ...]     (default: all fuzz/fuzz_*.c)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
B=${BUILD_DIR:-build-fuzz}
FUZZ_TIME=${FUZZ_TIME:-60}
FUZZ_JOBS=${FUZZ_JOBS:-2}
FUZZ_RUNS=${FUZZ_RUNS:--1}   # stop a harness after this many executions (-1: only FUZZ_TIME)
FUZZ_SEED=${FUZZ_SEED:-0}    # libFuzzer's random seed (0: a new one each run); with FUZZ_RUNS a repeatable run
JADE_WITH_FUZZ=1 bash scripts/setup.sh
CC=${FUZZ_CC:-$(command -v clang || command -v clang-14)} cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DJADE_FUZZ=ON >/dev/null
cmake --build "$B" -j "$(nproc)" --target fuzz_all jade_cli
if [ $# -gt 0 ]; then harnesses=("$@"); else
  harnesses=(); for f in fuzz/fuzz_*.c; do harnesses+=("$(basename "$f" .c)"); done
fi
export TMPDIR=${FUZZ_TMPDIR:-$([ -w /dev/shm ] && echo /dev/shm || echo /tmp)}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:quarantine_size_mb=16:malloc_context_size=10}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1
[ -d "$B/fuzz-corpus" ] || bash scripts/fuzz_corpus.sh "$B/jade" "$B/fuzz-corpus"
mkdir -p "$B/fuzz-crashes" "$B/fuzz-logs"
fail=0
# 1. saved reproducers: each must now run cleanly
for h in "${harnesses[@]}"; do
  if [ -d "fuzz/regressions/$h" ] && [ -n "$(ls -A "fuzz/regressions/$h")" ]; then
    if ! "$B/$h" -runs=1 fuzz/regressions/"$h"/* > "$B/fuzz-logs/$h.regressions.log" 2>&1; then
      echo "FAILED: $h crashes on a saved reproducer (see $B/fuzz-logs/$h.regressions.log)"; fail=1
    fi
  fi
done
# 2. fuzzing, FUZZ_JOBS harnesses at a time
run_one() {
  local h=$1 work="$B/fuzz-work/$1"
  mkdir -p "$work"
  "$B/$h" -max_total_time="$FUZZ_TIME" -runs="$FUZZ_RUNS" -seed="$FUZZ_SEED" -timeout=30 -rss_limit_mb=3072 -malloc_limit_mb=3072 -print_final_stats=1 \
    -artifact_prefix="$B/fuzz-crashes/$h-" "$work" "$B/fuzz-corpus/$h" > "$B/fuzz-logs/$h.log" 2>&1
}
pids=(); names=()
for h in "${harnesses[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$FUZZ_JOBS" ]; do sleep 1; done
  run_one "$h" & pids+=($!); names+=("$h")
done
printf '%-20s %12s %10s  %s\n' harness executions exec/s result
for i in "${!pids[@]}"; do
  h=${names[$i]}
  if wait "${pids[$i]}"; then res=ok; else res="CRASH (see $B/fuzz-logs/$h.log, $B/fuzz-crashes/)"; fail=1; fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$B/fuzz-logs/$h.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$B/fuzz-logs/$h.log" | tail -1)
  printf '%-20s %12s %10s  %s\n' "$h" "${runs:-?}" "${rate:-?}" "$res"
done
if [ $fail != 0 ]; then
  for h in "${harnesses[@]}"; do grep -m3 -E "ERROR|SUMMARY|invariant" "$B/fuzz-logs/$h.log" 2>/dev/null | sed "s/^/$h: /"; done
  exit 1
fi
echo "fuzz: all ${#harnesses[@]} harnesses ran (${FUZZ_TIME} s or $FUZZ_RUNS executions each) without a crash"
