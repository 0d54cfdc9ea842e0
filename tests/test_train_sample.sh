#!/usr/bin/env bash
# jade train / jade sample end to end on a tiny problem (16x16x5 maps, a 2-block model):
# outputs and shapes, the validation loss going down, bit-identical resume after a stop,
# data-parallel MPI equivalence (2 ranks vs 1, same global batch), rank-independent sampling,
# and bad input: one-line errors, non-zero exit, no outputs.
set -u
JADE=${JADE:?}
BUILD=$(dirname "$JADE")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
check() { if ! eval "$1"; then echo "FAILED: $2"; fail=1; fi; }
. "$(dirname "$0")/check_util.sh"
# The tiny model is overhead-bound: one thread is fastest and keeps the test short.
export OMP_NUM_THREADS=1

"$JADE" simulate --n 64 --seed 5 --set n_pix=16 --quiet --out "$T/data" || { echo "simulate failed"; exit 1; }
TINY=(--set model.patch=4 --set model.depth=2 --set model.width=64 --set model.heads=2
      --set model.n_cosmo_tokens=4 --set model.bottleneck=32 --set train.batch=16 --set train.micro_batch=8
      --set train.warmup=5 --set train.lr_peak=3e-3 --set train.ema_start=10 --set train.val_fraction=0.5
      --set train.log_every=10 --set train.val_every=10 --set train.checkpoint_every=20 --quiet)
train() { "$JADE" train --data "$T/data" "${TINY[@]}" "$@"; }

# ---- training: files, loss going down ----
train --out "$T/m" --steps 60 || { echo "train failed"; exit 1; }
for f in model.safetensors state.safetensors loss.csv config.ini; do check "[ -s $T/m/$f ]" "missing $f"; done
rows=$(($(wc -l < "$T/m/loss.csv") - 1))
check "[ $rows = 6 ]" "loss.csv has $rows rows, expected 6"
check "head -1 $T/m/loss.csv | grep -q '^step,epoch,lr,loss,loss_map,loss_theta,grad_norm,val_loss,val_loss_ema,val_theta_ema,elapsed_s$'" "loss.csv header"
v_first=$(sed -n 2p "$T/m/loss.csv" | cut -d, -f8); v_last=$(tail -1 "$T/m/loss.csv" | cut -d, -f8)
echo "validation loss: step 10 $v_first -> step 60 $v_last"
check "num_check 'l < 0.85 * f' l='$v_last' f='$v_first'" "validation loss did not go down ($v_first -> $v_last)"
t_first=$(sed -n 2p "$T/m/loss.csv" | cut -d, -f4); t_last=$(tail -1 "$T/m/loss.csv" | cut -d, -f4)
check "num_check 'l < f' l='$t_last' f='$t_first'" "training loss did not go down ($t_first -> $t_last)"

# ---- resume: 60 straight == 23 + stop + resume to 60, bit for bit ----
train --out "$T/r" --steps 60 --stop-after 23; rc=$?
check "[ $rc = 3 ]" "--stop-after should exit with 3 (got $rc)"
check "[ -s $T/r/state.safetensors ]" "no checkpoint after --stop-after"
train --out "$T/r" --steps 60 --resume || { echo "resume failed"; exit 1; }
check "cmp -s $T/m/model.safetensors $T/r/model.safetensors" "resumed model.safetensors differs"
check "cmp -s $T/m/state.safetensors $T/r/state.safetensors" "resumed state.safetensors differs"
check "diff <(cut -d, -f1-10 $T/m/loss.csv) <(cut -d, -f1-10 $T/r/loss.csv) >/dev/null" "resumed loss.csv differs"
# resuming a finished run does nothing and succeeds
train --out "$T/r" --steps 60 --resume || { echo "resume of a finished run failed"; fail=1; }
check "cmp -s $T/m/model.safetensors $T/r/model.safetensors" "finished run changed by --resume"

# ---- data parallel: 2 worker threads or 2 MPI ranks x 1 micro-batch == 1 x 2 micro-batches ----
# In fp32: the layouts differ only in the order the micro-batch gradients are summed (~1e-7).
# With the bf16 matmul backend that last-bit difference flips the bf16 rounding of some
# operands in later steps, and the runs drift apart at bf16 precision (measured 1.4e-4 after
# 20 steps), which says nothing about the reduction being right; so this check runs in fp32.
export JADE_MATMUL=f32
train --out "$T/p1" --steps 20 || { echo "train failed"; exit 1; }
OMP_NUM_THREADS=2 train --out "$T/w2" --steps 20 --workers 2 || { echo "train with 2 workers failed"; exit 1; }
echo -n "2 worker threads vs 1 after 20 steps: "
check "$BUILD/test_train --compare $T/p1/model.safetensors $T/w2/model.safetensors 1e-5" "2-worker training differs from 1 worker"
if [ "${JADE_WITH_MPI:-0}" = 1 ] && command -v mpirun >/dev/null; then
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 mpirun --allow-run-as-root --oversubscribe -np 2 "$JADE" train --data "$T/data" "${TINY[@]}" --out "$T/p2" --steps 20 \
    || { echo "mpirun train failed"; exit 1; }
  # gradients are summed in a different order: equal to float rounding (Adam amplifies it a little)
  echo -n "MPI 2 ranks vs 1 after 20 steps: "
  check "$BUILD/test_train --compare $T/p1/model.safetensors $T/p2/model.safetensors 1e-5" "2-rank training differs from 1-rank"
  check "diff <(cut -d, -f1-3 $T/p1/loss.csv) <(cut -d, -f1-3 $T/p2/loss.csv) >/dev/null" "2-rank loss.csv steps differ"
else
  echo "note: MPI not available, 2-rank check skipped"
fi
unset JADE_MATMUL

# ---- sampling ----
"$JADE" observe --seed 3 --set n_pix=16 --out "$T/obs.fits" 2>/dev/null || { echo "observe failed"; exit 1; }
"$JADE" sample --model "$T/m" --obs "$T/obs.fits" --draws 6 --steps 3 --batch 4 --seed 1 --out "$T/s" > "$T/s.log" 2>&1 \
  || { echo "sample failed: $(cat "$T/s.log")"; exit 1; }
for f in maps.fits theta.txt theta.npy summary.txt; do check "[ -s $T/s/$f ]" "missing sample output $f"; done
check "[ \$(grep -vc '^#' $T/s/theta.txt) = 6 ]" "theta.txt should have 6 rows"
check "grep -q '^# Omega_c Omega_b sigma_8 h n_s w_0 Omega_m S_8$' $T/s/theta.txt" "theta.txt column header"
check "[ \$(grep -v '^#' $T/s/theta.txt | awk '{print NF}' | sort -u) = 8 ]" "theta.txt should have 8 columns"
check "[ \$(grep -vc '^#' $T/s/summary.txt) = 8 ]" "summary.txt should have 8 rows"
check "[ \$(stat -c %s $T/s/theta.npy) = \$((128 + 6 * 8 * 8)) ]" "theta.npy size"
hdr=$(head -c 2880 "$T/s/maps.fits")
for kv in "NAXIS  *= *4" "NAXIS1 *= *16" "NAXIS2 *= *16" "NAXIS3 *= *5" "NAXIS4 *= *6" "CDELT1" "CRPIX1" "NDRAWS *= *6"; do
  check "echo \"\$hdr\" | grep -q '$kv'" "maps.fits header lacks $kv"
done
# maps data: 6 x 5 x 16 x 16 floats after the header, padded to 2880-byte blocks
check "[ \$(stat -c %s $T/s/maps.fits) -ge \$((2880 + 6 * 5 * 16 * 16 * 4)) ]" "maps.fits too small"
check "grep -q 'Omega_m' $T/s.log" "printed summary"
# the same draws with a different batch split / on 2 ranks: same initial noise per draw
"$JADE" sample --model "$T/m/model.safetensors" --obs "$T/obs.fits" --draws 6 --steps 3 --batch 4 --seed 1 --quiet --out "$T/s2" \
  || { echo "sample from a .safetensors file failed"; fail=1; }
check "cmp -s $T/s/theta.npy $T/s2/theta.npy" "sampling is not reproducible"
OMP_NUM_THREADS=2 "$JADE" sample --model "$T/m" --obs "$T/obs.fits" --draws 6 --steps 3 --batch 4 --seed 1 --quiet --out "$T/s6" \
  || { echo "sample with 2 threads failed"; fail=1; }
check "cmp -s $T/s/theta.npy $T/s6/theta.npy && cmp -s $T/s/maps.fits $T/s6/maps.fits" "2-thread sampling differs from 1 thread"
if [ "${JADE_WITH_MPI:-0}" = 1 ] && command -v mpirun >/dev/null; then
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 mpirun --allow-run-as-root --oversubscribe -np 2 "$JADE" sample --model "$T/m" --obs "$T/obs.fits" --draws 6 --steps 3 \
    --batch 4 --seed 1 --quiet --out "$T/s3" || { echo "mpirun sample failed"; fail=1; }
  check "cmp -s $T/s/theta.npy $T/s3/theta.npy && cmp -s $T/s/maps.fits $T/s3/maps.fits" "2-rank sampling differs from 1-rank"
fi
"$JADE" sample --model "$T/m" --obs "$T/obs.fits" --draws 6 --steps 3 --batch 6 --seed 1 --quiet --out "$T/s4" || fail=1
paste <(grep -v '^#' "$T/s/theta.txt") <(grep -v '^#' "$T/s4/theta.txt") | awk "$JADE_AWK_NUM"'{for(i=1;i<=8;i++){d=num($i)-num($(i+8)); if(d<0)d=-d; if(d>1e-4*($i<0?-$i:$i)+1e-7){print "FAILED: batch 4 vs 6 draw differs: " $0; exit 1}}}' || fail=1

# ---- bad input: one line on stderr, non-zero exit, nothing written ----
bad() {
  local what=$1; shift
  local out
  out=$("$JADE" "$@" 2>&1 >/dev/null); local rc=$?
  local lines; lines=$(printf '%s\n' "$out" | grep -c .)
  if [ $rc = 0 ] || [ "$lines" != 1 ]; then echo "FAILED: $what: rc=$rc, stderr: $out"; fail=1; fi
  if [ -e "$T/bad" ]; then echo "FAILED: $what left output"; fail=1; rm -rf "$T/bad"; fi
  printf '  %-30s -> %s\n' "$what" "$out"
}
"$JADE" observe --seed 3 --out "$T/obs32.fits" 2>/dev/null || { echo "observe failed"; exit 1; }
"$JADE" observe --seed 3 --set n_pix=16 --set n_gal=5 --out "$T/obs_noisy.fits" 2>/dev/null || { echo "observe failed"; exit 1; }
"$JADE" simulate --n 8 --seed 6 --set n_pix=16 --quiet --out "$T/data2" || { echo "simulate failed"; exit 1; }
head -c 1000 "$T/m/model.safetensors" > "$T/trunc.safetensors"
cp "$T/m/model.safetensors" "$T/garbled.safetensors"; printf 'XXXX' | dd of="$T/garbled.safetensors" bs=1 seek=20 conv=notrunc 2>/dev/null
printf 'not a fits file' > "$T/garbage.fits"
# ---- masks: a masked model fine-tuned from the full-map one samples masked observations and
# validates on masked ones; the full-map model refuses both ----
train --out "$T/mm" --steps 20 --init-from "$T/m" --set model.condition=masked --set train.mask_prob=0.7 \
  --set train.noise_ln_scale=0.1 --set train.noise_ln_field=0.1 || { echo "masked fine-tune failed"; exit 1; }
"$JADE" observe --seed 3 --set n_pix=16 --mask-max 0.3 --noise-ln-field 0.15 --out "$T/mobs.fits" 2>/dev/null \
  || { echo "observe --mask-max failed"; exit 1; }
"$JADE" sample --model "$T/mm" --obs "$T/mobs.fits" --draws 6 --steps 3 --batch 4 --seed 1 --quiet --out "$T/ms" \
  || { echo "FAILED: masked sample"; fail=1; }
check "[ -s $T/ms/theta.txt ]" "masked sample: no theta.txt"
"$JADE" validate --model "$T/mm" --data "$T/data" --n-obs 4 --draws 8 --steps 3 --mask-prob 1 --noise-ln-field 0.15 \
  --no-report --quiet --out "$T/mv" || { echo "FAILED: masked validate"; fail=1; }
check "grep -q '\"pixel_cov68_masked\": 0\.[0-9]' $T/mv/summary.json && grep -q '\"masked_fraction\": 0\.[0-9]' $T/mv/summary.json" \
  "masked validate: summary.json lacks the masked coverage"
bad "masked obs, full-map model" sample --model "$T/m" --obs "$T/mobs.fits" --draws 2 --steps 2 --out "$T/bad"
bad "masked validate, full model" validate --model "$T/m" --data "$T/data" --n-obs 2 --draws 4 --mask-prob 1 --out "$T/bad"
bad "noise beyond the training"  validate --model "$T/mm" --data "$T/data" --n-obs 2 --draws 4 --noise-ln-field 0.5 --out "$T/bad"

bad "missing --data dir"         train --data "$T/nope" --out "$T/bad"
bad "no --out"                   train --data "$T/data"
bad "unknown [train] key"        train --data "$T/data" --out "$T/bad" --set train.lr=1
bad "bad [train] value"          train --data "$T/data" --out "$T/bad" --set train.batch=0
bad "geometry vs dataset"        train --data "$T/data" --out "$T/bad" --config small
bad "bad model shape"            train --data "$T/data" --out "$T/bad" --set model.patch=5
bad "existing output"            train --data "$T/data" "${TINY[@]}" --out "$T/m" --steps 60
bad "resume, other config"       train --data "$T/data" "${TINY[@]}" --out "$T/m" --steps 60 --resume --set train.lr_peak=1e-3
bad "resume, other dataset"      train --data "$T/data2" "${TINY[@]}" --out "$T/m" --steps 60 --resume
bad "wrong-geometry observation" sample --model "$T/m" --obs "$T/obs32.fits" --draws 2 --steps 2 --out "$T/bad"
bad "noise differs from training" sample --model "$T/m" --obs "$T/obs_noisy.fits" --draws 2 --steps 2 --out "$T/bad"
bad "truncated model file"       sample --model "$T/trunc.safetensors" --obs "$T/obs.fits" --draws 2 --steps 2 --out "$T/bad"
bad "corrupt model file"         sample --model "$T/garbled.safetensors" --obs "$T/obs.fits" --draws 2 --steps 2 --out "$T/bad"
bad "model dir without a model"  sample --model "$T/data" --obs "$T/obs.fits" --draws 2 --steps 2 --out "$T/bad"
bad "corrupt observation"        sample --model "$T/m" --obs "$T/garbage.fits" --draws 2 --steps 2 --out "$T/bad"
bad "bad --draws"                sample --model "$T/m" --obs "$T/obs.fits" --draws 0 --out "$T/bad"
bad "unknown [sample] key"       sample --model "$T/m" --obs "$T/obs.fits" --set sample.drawz=3 --out "$T/bad"
"$JADE" sample --model "$T/m" --obs "$T/obs_noisy.fits" --draws 2 --steps 2 --ignore-noise --quiet --out "$T/s5" \
  || { echo "FAILED: --ignore-noise"; fail=1; }
exit $fail
