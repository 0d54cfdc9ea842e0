#!/usr/bin/env bash
# Killed runs (issue 10, item 5): jade simulate, train, validate and mcmc are killed with
# SIGKILL at >= 3 seeded random points each, resumed by rerunning the command, and their final
# outputs are compared with an uninterrupted run of the same seed: byte for byte, except the
# fields that record wall-clock times (listed at each comparison). No temporary file may be
# left in the final outputs, and nothing may appear under the final name before the run is
# complete (simulate / validate / mcmc publish OUT by one rename).
#
# Kill points: fractions (seeded: KILL_SEED) of the uninterrupted run's wall time, so they
# fall at different stages on fast and slow (sanitizer) builds alike; a chain in which a run
# finishes before its kill is retried with earlier points, so that >= 3 kills really happen.
set -u
JADE=${JADE:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=2
RANDOM=${KILL_SEED:-20261205}
fail=0
now() { date +%s.%N; }

# run_chain NAME DIR RESUME-FN CMD...: in DIR (a fresh folder), kill CMD at 3 points, resuming
# in between with RESUME-FN (which prints the command line to rerun), then run to the end.
# Returns non-zero if fewer than 3 runs were really killed.
run_chain() {
  local name=$1 dir=$2 resume=$3 tref=$4 scale=$5; shift 5
  local kills=0 attempt rc d u
  mkdir -p "$dir"
  for attempt in 1 2 3; do
    u=$((RANDOM % 1000))
    # delay in [0.05, 0.30] x the uninterrupted wall time (x scale on retries)
    d=$(awk -v t="$tref" -v u="$u" -v s="$scale" 'BEGIN {printf "%.3f", t * s * (0.05 + 0.25 * u / 1000)}')
    (cd "$dir" && timeout -s KILL "$d" $($resume "$@") >/dev/null 2>&1) 2>/dev/null; rc=$?
    if [ $rc = 137 ]; then
      kills=$((kills + 1))
      echo "  $name: killed after ${d}s"
    else
      echo "  $name: finished before the kill at ${d}s (exit code $rc)"
      break
    fi
  done
  (cd "$dir" && $($resume "$@") >"$T/$name.log" 2>&1) || { echo "FAILED: $name: resumed run failed: $(tail -3 "$T/$name.log")"; fail=1; }
  [ $kills -ge 3 ]
}

# same_files REF NEW [EXCLUDED-REGEX]: the same file names (no temporaries left) and the same
# bytes, except the files matching EXCLUDED-REGEX (compared by the caller)
same_files() {
  local ref=$1 new=$2 skip=${3:-'^$'} f
  if ! diff <(cd "$ref" && find . | sort) <(cd "$new" && find . | sort) >/dev/null; then
    echo "FAILED: $new: other files than $ref: $(diff <(cd "$ref" && find . | sort) <(cd "$new" && find . | sort) | grep '^[<>]' | head -5 | tr '\n' ' ')"
    fail=1
  fi
  for f in $(cd "$ref" && find . -type f | sort | grep -Ev "$skip"); do
    cmp -s "$ref/$f" "$new/$f" || { echo "FAILED: $new/$f differs from the uninterrupted run"; fail=1; }
  done
}

# chain NAME DIR RESUME-FN TREF CMD...: run_chain with earlier kill points until 3 kills happen
# (a fresh folder each time)
chain() {
  local name=$1 dir=$2 resume=$3 tref=$4 scale
  shift 4
  for scale in 1 0.5 0.25; do
    rm -rf "$dir"
    run_chain "$name" "$dir" "$resume" "$tref" "$scale" "$@" && return 0
  done
  echo "FAILED: $name: fewer than 3 runs were killed (the runs finished too fast)"
  fail=1
}

# ---- jade simulate: rerunning the same command resumes OUT.partial ----
SIM=(simulate --n 96 --seed 11 --set n_pix=16 --chunk 2 --quiet --out out)
same_cmd() { echo "$JADE" "$@"; }
mkdir -p "$T/sim_ref"
t0=$(now); (cd "$T/sim_ref" && "$JADE" "${SIM[@]}") || { echo "simulate failed"; exit 1; }
tref=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}')
echo "simulate: uninterrupted run ${tref}s"
chain sim "$T/sim_kill" same_cmd "$tref" "${SIM[@]}"
same_files "$T/sim_ref/out" "$T/sim_kill/out"

# ---- jade train: rerun with --resume (without it if MODELDIR was never created) ----
"$JADE" simulate --n 32 --seed 5 --set n_pix=16 --quiet --out "$T/data" || { echo "simulate failed"; exit 1; }
TRAIN=(train --data "$T/data" --steps 40 --quiet --set model.patch=4 --set model.depth=1 --set model.width=32
       --set model.heads=2 --set model.n_cosmo_tokens=2 --set model.bottleneck=16 --set train.batch=8
       --set train.micro_batch=4 --set train.warmup=5 --set train.val_fraction=0.25 --set train.log_every=2
       --set train.val_every=4 --set train.checkpoint_every=3 --out m)
train_cmd() { if [ -d m ]; then echo "$JADE" "$@" --resume; else echo "$JADE" "$@"; fi; }
mkdir -p "$T/train_ref"
t0=$(now); (cd "$T/train_ref" && "$JADE" "${TRAIN[@]}") || { echo "train failed"; exit 1; }
tref=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}')
echo "train: uninterrupted run ${tref}s"
chain train "$T/train_kill" train_cmd "$tref" "${TRAIN[@]}"
# loss.csv: all but its last column (elapsed_s, wall-clock)
same_files "$T/train_ref/m" "$T/train_kill/m" 'loss.csv'
cmp -s <(cut -d, -f1-10 "$T/train_ref/m/loss.csv") <(cut -d, -f1-10 "$T/train_kill/m/loss.csv") \
  || { echo "FAILED: train: loss.csv differs from the uninterrupted run"; fail=1; }

# ---- jade validate: rerunning the same command resumes OUT.partial ----
VAL=(validate --model "$T/train_ref/m" --data "$T/data" --n-obs 24 --draws 8 --steps 4 --batch 8 --bootstrap 8 --quiet --out out)
mkdir -p "$T/val_ref"
t0=$(now); (cd "$T/val_ref" && "$JADE" "${VAL[@]}") || { echo "validate failed"; exit 1; }
tref=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}')
echo "validate: uninterrupted run ${tref}s"
chain val "$T/val_kill" same_cmd "$tref" "${VAL[@]}"
# records/*.npy and per_obs.txt hold each observation's seconds, summary.json the run's
same_files "$T/val_ref/out" "$T/val_kill/out" '^\./records/|per_obs.txt|summary.json'
cmp -s <(cut -d' ' -f1,3- "$T/val_ref/out/per_obs.txt") <(cut -d' ' -f1,3- "$T/val_kill/out/per_obs.txt") \
  || { echo "FAILED: validate: per_obs.txt differs from the uninterrupted run"; fail=1; }
cmp -s <(grep -v seconds "$T/val_ref/out/summary.json") <(grep -v seconds "$T/val_kill/out/summary.json") \
  || { echo "FAILED: validate: summary.json differs from the uninterrupted run"; fail=1; }

# A run killed after its summary and report but before the rename (the window is short in
# time, so the random kills above rarely hit it): OUT.partial holds every output and run.txt;
# rerunning the same command must finish it.
mkdir -p "$T/val_pub"
(cd "$T/val_pub" && "$JADE" "${VAL[@]}" --max-obs 2 >/dev/null 2>&1); cp "$T/val_pub/out.partial/run.txt" "$T/run_id.txt"
(cd "$T/val_pub" && "$JADE" "${VAL[@]}") || { echo "FAILED: validate: resume after --max-obs"; fail=1; }
mv "$T/val_pub/out" "$T/val_pub/out.partial" && cp "$T/run_id.txt" "$T/val_pub/out.partial/run.txt"
(cd "$T/val_pub" && "$JADE" "${VAL[@]}") || { echo "FAILED: validate: a run killed before its rename does not resume"; fail=1; }
same_files "$T/val_ref/out" "$T/val_pub/out" '^\./records/|per_obs.txt|summary.json'
# A run killed while creating OUT.partial (before its run.txt): only a temporary is there, so
# the next run starts afresh; a directory with other files and no run.txt is refused.
rm -rf "$T/val_new" && mkdir -p "$T/val_new/out.partial" && echo x > "$T/val_new/out.partial/run.txt.tmp.12345"
(cd "$T/val_new" && "$JADE" "${VAL[@]}") || { echo "FAILED: validate: a run killed while creating OUT.partial does not restart"; fail=1; }
same_files "$T/val_ref/out" "$T/val_new/out" '^\./records/|per_obs.txt|summary.json'
rm -rf "$T/sim_new" && mkdir -p "$T/sim_new/out.partial" && echo x > "$T/sim_new/out.partial/run.txt.tmp.12345"
(cd "$T/sim_new" && "$JADE" "${SIM[@]}") || { echo "FAILED: simulate: a run killed while creating OUT.partial does not restart"; fail=1; }
same_files "$T/sim_ref/out" "$T/sim_new/out"
rm -rf "$T/val_other" && mkdir -p "$T/val_other/out.partial" && echo x > "$T/val_other/out.partial/notes.txt"
msg=$(cd "$T/val_other" && "$JADE" "${VAL[@]}" 2>&1) && { echo "FAILED: validate: accepted a foreign out.partial"; fail=1; }
case $msg in *"exists from a different run"*) ;; *) echo "FAILED: validate: foreign out.partial: '$msg'"; fail=1 ;; esac

# ---- jade mcmc: rerunning the same command resumes OUT.partial ----
"$JADE" observe --set n_pix=8 --set n_bins=2 --seed 1 --out "$T/o8.fits" 2>/dev/null || { echo "observe failed"; exit 1; }
MCMC=(mcmc --set n_pix=8 --set n_bins=2 --obs "$T/o8.fits" --free sigma_8,Omega_c --chains 2 --warmup 60 --samples 40
      --seed 3 --checkpoint 1 --quiet --out out)
mkdir -p "$T/mc_ref"
t0=$(now); (cd "$T/mc_ref" && "$JADE" "${MCMC[@]}") || { echo "mcmc failed"; exit 1; }
tref=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}')
echo "mcmc: uninterrupted run ${tref}s"
chain mcmc "$T/mc_kill" same_cmd "$tref" "${MCMC[@]}"
# diagnostics.txt: its wall times; FITS: the header's CHECKSUM carries a date (data compared)
same_files "$T/mc_ref/out" "$T/mc_kill/out" 'diagnostics.txt|\.fits$'
cmp -s <(grep -v 'wall time' "$T/mc_ref/out/diagnostics.txt") <(grep -v 'wall time' "$T/mc_kill/out/diagnostics.txt") \
  || { echo "FAILED: mcmc: diagnostics.txt differs from the uninterrupted run"; fail=1; }
for f in mean.fits std.fits; do
  cmp -s <(tail -c 2880 "$T/mc_ref/out/$f") <(tail -c 2880 "$T/mc_kill/out/$f") \
    || { echo "FAILED: mcmc: $f data differ from the uninterrupted run"; fail=1; }
done
exit $fail
