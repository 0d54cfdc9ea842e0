#!/usr/bin/env bash
# jade against PyTorch, side by side, in one run: for each configuration, training samples/s
# and seconds per posterior draw (128 Heun steps) of jade (fp32 = OpenBLAS sgemm, bf16 =
# jade's AVX512-BF16 kernel) and of the PyTorch reference bench/torch_jade.py (fp32, bf16
# autocast), their ratios, the achieved GFLOP/s as a fraction of the GEMM rate measured in
# the same run on the same shapes (sgemm / jade's bf16 GEMM) and as a fraction of the CPU's
# peak measured in the same run by build/bench_peak (register-only FMA / VDPBF16PS loops).
# Everything is repeated --runs times (default 2) and every figure printed as a range.
#
# Usage: bench/compare.sh [--runs N] [--build DIR] [--clock wall|cpu] [--no-torch] [CASE ...]
#   --clock cpu: every program times by process CPU time / threads instead of wall time (on a
#   machine shared with other jobs wall times measure the neighbours; see docs/speed_progress.md).
#   CASE = NAME[:TRAIN_BATCH[:SAMPLE_BATCH]], NAME a preset (configs/NAME.ini) or an .ini path.
#   Defaults: small:64:128 and paper:1:1, plus lsst128:16:32 when configs/lsst128.ini exists.
# Needs /usr/bin/python3 with Debian's python3-torch for the PyTorch columns (else "-").
set -u
cd "$(dirname "$0")/.."
RUNS=2
BUILD=build
TORCH=1
CLOCK=wall
CASES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --no-torch) TORCH=0; shift ;;
    --clock) CLOCK=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
    *) CASES+=("$1"); shift ;;
  esac
done
if [ ${#CASES[@]} = 0 ]; then
  CASES=(small:64:128 paper:1:1)
  [ -f configs/lsst128.ini ] && CASES+=(lsst128:16:32)
fi
for b in bench_nn bench_peak; do
  [ -x "$BUILD/$b" ] || { echo "compare.sh: $BUILD/$b not built (bash scripts/build.sh)" >&2; exit 2; }
done
PY=/usr/bin/python3
if [ $TORCH = 1 ] && ! "$PY" -c "import torch" > /dev/null 2>&1; then
  echo "compare.sh: no PyTorch for $PY (apt-get install python3-torch): PyTorch columns skipped" >&2
  TORCH=0
fi
BF16=0
"$BUILD/bench_nn" --matmul bf16 --only none > /dev/null 2>&1 && BF16=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
# CPU-time clock: idle OpenMP threads must sleep rather than spin, or the spinning is counted
[ "$CLOCK" = cpu ] && export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
R=$OUT/results.txt
: > "$R"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $cpu, $OMP_NUM_THREADS threads, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $RUNS runs, clock $CLOCK"

# $1 run, $2 case, $3 impl, rest: command; keeps its RESULT line (key=value pairs)
record() {
  local run=$1 case=$2 impl=$3 line
  shift 3
  if line=$("$@" 2> "$OUT/err" | grep '^RESULT' | tail -1) && [ -n "$line" ]; then
    echo "run=$run case=$case impl=$impl ${line#RESULT }" >> "$R"
  else
    echo "compare.sh: $case $impl failed: $(tail -1 "$OUT/err")" >&2
  fi
}

for run in $(seq 1 "$RUNS"); do
  record "$run" - peak "$BUILD/bench_peak" --clock "$CLOCK"
  for c in "${CASES[@]}"; do
    IFS=: read -r name tb sb <<< "$c"
    ini=$name
    [ -f "$ini" ] || ini=configs/$name.ini
    [ -f "$ini" ] || { echo "compare.sh: no configuration $name (configs/$name.ini)" >&2; exit 2; }
    case $name in small) d=64:128 ;; paper) d=1:1 ;; *) d=16:32 ;; esac
    tb=${tb:-${d%%:*}}
    sb=${sb:-${d##*:}}
    steps=5
    evals=4
    [ "$tb" -le 2 ] && steps=3 && evals=2
    echo "# run $run: $name (train batch $tb, sample batch $sb)" >&2
    backends="f32"
    [ $BF16 = 1 ] && backends="f32 bf16"
    for mm in $backends; do
      record "$run" "$name" "jade-$mm" "$BUILD/bench_nn" --preset "$ini" --batch "$tb" --steps "$steps" \
        --sample-batch "$sb" --sample-steps $((evals / 2)) --matmul "$mm" --clock "$CLOCK"
      if [ $TORCH = 1 ]; then
        t=fp32
        [ "$mm" = bf16 ] && t=bf16
        record "$run" "$name" "torch-$t" "$PY" bench/torch_jade.py bench --config "$ini" --batch "$tb" \
          --dtype "$t" --steps "$steps" --sample-batch "$sb" --sample-evals "$evals" --clock "$CLOCK"
      fi
    done
  done
done

# Table: every figure as min-max over the runs.
awk -v cases="$(printf '%s ' "${CASES[@]}")" -v bf16=$BF16 '
function kv(line, k,   a, i, n, p) {
  n = split(line, a, " ")
  for (i = 1; i <= n; i++) { split(a[i], p, "="); if (p[1] == k) return p[2] }
  return ""
}
function add(key, v) {
  if (v == "" || v + 0 <= 0) return
  if (!(key in lo) || v < lo[key]) lo[key] = v
  if (!(key in hi) || v > hi[key]) hi[key] = v
}
function rng(key, fmt) {
  if (!(key in lo)) return "-"
  if (sprintf(fmt, lo[key]) == sprintf(fmt, hi[key])) return sprintf(fmt, lo[key])
  return sprintf(fmt "-" fmt, lo[key], hi[key])
}
{
  run = kv($0, "run"); c = kv($0, "case"); im = kv($0, "impl")
  if (im == "peak") { P32[run] = kv($0, "peak_fp32"); PBF[run] = kv($0, "peak_bf16")
    add("peak32", P32[run]); add("peakbf", PBF[run]); next }
  sps[run, c, im] = kv($0, "train_sps"); gfl[run, c, im] = kv($0, "train_gflops")
  drw[run, c, im] = kv($0, "draw_s"); egf[run, c, im] = kv($0, "eval_gflops")
  if (im ~ /^jade/) { sg[run, c] = kv($0, "sgemm_gflops"); if (im == "jade-bf16") bg[run, c] = kv($0, "gemm_gflops") }
  runs[run] = 1
}
END {
  n = split(cases, cl, " ")
  for (r in runs) for (i = 1; i <= n; i++) {
    split(cl[i], q, ":"); c = q[1]
    for (pi = 1; pi <= 2; pi++) {
      j = pi == 1 ? "jade-f32" : "jade-bf16"; t = pi == 1 ? "torch-fp32" : "torch-bf16"
      gemm = pi == 1 ? sg[r, c] : bg[r, c]; pk = pi == 1 ? P32[r] : PBF[r]
      add(c j "sps", sps[r, c, j]); add(c t "sps", sps[r, c, t])
      if (sps[r, c, t] > 0) add(c j "tr", sps[r, c, j] / sps[r, c, t])
      add(c j "gf", gfl[r, c, j]); add(c t "gf", gfl[r, c, t])
      if (gemm > 0) { add(c j "fg", gfl[r, c, j] / gemm); add(c j "efg", egf[r, c, j] / gemm); add(c j "gemm", gemm) }
      if (pk > 0) { add(c j "fp", gfl[r, c, j] / pk); add(c j "efp", egf[r, c, j] / pk); add(c t "fp", gfl[r, c, t] / pk)
        if (gemm > 0) add(c j "gp", gemm / pk) }
      add(c j "drw", drw[r, c, j]); add(c t "drw", drw[r, c, t])
      if (drw[r, c, j] > 0) add(c j "dr", drw[r, c, t] / drw[r, c, j])
    }
  }
  printf "peak (register-only loops, all threads): fp32 FMA %s GFLOP/s, bf16 VDPBF16PS %s GFLOP/s\n\n", rng("peak32", "%.0f"), rng("peakbf", "%.0f")
  printf "%-8s %-5s | %-13s %-13s %-11s | %-11s %-11s %-11s %-11s | %-11s %-11s %-11s %-11s\n", "config", "prec", "train jade/s", "torch/s", "jade/torch", "GFLOP/s", "of GEMM", "of peak", "GEMM/peak", "draw jade s", "torch s", "torch/jade", "eval/GEMM"
  for (i = 1; i <= n; i++) {
    split(cl[i], q, ":"); c = q[1]
    for (pi = 1; pi <= (bf16 ? 2 : 1); pi++) {
      j = pi == 1 ? "jade-f32" : "jade-bf16"; t = pi == 1 ? "torch-fp32" : "torch-bf16"
      printf "%-8s %-5s | %-13s %-13s %-11s | %-11s %-11s %-11s %-11s | %-11s %-11s %-11s %-11s\n", c, pi == 1 ? "fp32" : "bf16",
        rng(c j "sps", "%.2f"), rng(c t "sps", "%.2f"), rng(c j "tr", "%.2f"),
        rng(c j "gf", "%.0f"), rng(c j "fg", "%.2f"), rng(c j "fp", "%.2f"), rng(c j "gp", "%.2f"),
        rng(c j "drw", "%.3f"), rng(c t "drw", "%.3f"), rng(c j "dr", "%.2f"), rng(c j "efg", "%.2f")
    }
  }
  printf "\nGFLOP/s = matmul + attention FLOPs of a training step (backward = 2x forward) / best step time.\n"
  printf "of GEMM = jade training GFLOP/s / the same-run GEMM rate of its backend on the block linear shapes\n"
  printf "(fp32: OpenBLAS sgemm, bf16: jade_gemm bf16); of peak = / bench_peak; eval/GEMM = sampler evaluation GFLOP/s / GEMM rate.\n"
  printf "PyTorch GFLOP/s and fraction of peak (same definitions):"
  for (i = 1; i <= n; i++) { split(cl[i], q, ":"); c = q[1]
    printf " %s fp32 %s (%s), bf16 %s (%s);", c, rng(c "torch-fp32gf", "%.0f"), rng(c "torch-fp32fp", "%.2f"), rng(c "torch-bf16gf", "%.0f"), rng(c "torch-bf16fp", "%.2f") }
  printf "\n"
}' "$R"
