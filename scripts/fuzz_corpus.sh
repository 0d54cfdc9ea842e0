#!/usr/bin/env bash
# Seed corpora for the libFuzzer harnesses of fuzz/, made with the jade CLI from the same
# tiny problems the tests use (8x8 maps, 2 bins): configs, .npy arrays, FITS observations,
# safetensors model + training state, a dataset, an mcmc state. Usage:
#   scripts/fuzz_corpus.sh JADE OUTDIR      (OUTDIR/<harness>/ are filled)
set -euo pipefail
JADE=${1:?usage: fuzz_corpus.sh JADE OUTDIR}
OUT=${2:?usage: fuzz_corpus.sh JADE OUTDIR}
SRC=$(cd "$(dirname "$0")/.." && pwd)
SEP=$'\n--JADE-FUZZ-FILE--\n'
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 OMP_NUM_THREADS=1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$OUT"/{fuzz_config,fuzz_npy,fuzz_fits,fuzz_safetensors,fuzz_dataset,fuzz_mcmc_state}
G=(--set n_pix=8 --set n_bins=2)

# data: observation + truth, a dataset, a tiny trained model with its state, an mcmc state
"$JADE" observe "${G[@]}" --seed 1 --out "$W/obs.fits" 2>/dev/null
"$JADE" simulate "${G[@]}" --n 4 --seed 2 --quiet --out "$W/data"
"$JADE" train --data "$W/data" --out "$W/m" --steps 2 --set model.patch=4 --set model.depth=1 --set model.width=16 \
  --set model.heads=1 --set model.n_cosmo_tokens=2 --set model.bottleneck=8 --set model.time_freq=8 --set train.batch=2 \
  --set train.micro_batch=2 --set train.warmup=1 --set train.val_fraction=0.5 --set train.checkpoint_every=1 --quiet
"$JADE" mcmc "${G[@]}" --obs "$W/obs.fits" --free sigma_8,Omega_c --chains 2 --warmup 4 --samples 4 --seed 4 --quiet \
  --out "$W/mc" --max-iterations 2 --checkpoint 1 || [ $? = 3 ]

# fuzz_config: the presets, then with --set overrides
cp "$SRC/configs/small.ini" "$OUT/fuzz_config/small.ini"
cp "$SRC/configs/paper.ini" "$OUT/fuzz_config/paper.ini"
{ cat "$SRC/configs/small.ini"; printf '%s' "$SEP" "n_pix=16" "$SEP" "train.lr_peak=1e-3" "$SEP" \
    "prior_h=uniform 0.5 0.9"; } > "$OUT/fuzz_config/small_set"
printf 'Omega_c = 0.25 # comment\n[train]\nsteps = 10\n' > "$OUT/fuzz_config/tiny.ini"

# fuzz_npy: every array of the dataset
for f in theta kappa noise; do cp "$W/data/$f.npy" "$OUT/fuzz_npy/$f.npy"; done

# fuzz_fits: observation and truth
cp "$W/obs.fits" "$OUT/fuzz_fits/obs.fits"
cp "$W/obs_truth.fits" "$OUT/fuzz_fits/obs_truth.fits"

# fuzz_safetensors: model and training state
cp "$W/m/model.safetensors" "$OUT/fuzz_safetensors/model.safetensors"
cp "$W/m/state.safetensors" "$OUT/fuzz_safetensors/state.safetensors"

# fuzz_dataset: theta.npy, kappa.npy, noise.npy, meta.json in one input
{ cat "$W/data/theta.npy"; printf '%s' "$SEP"; cat "$W/data/kappa.npy"; printf '%s' "$SEP"; cat "$W/data/noise.npy"
  printf '%s' "$SEP"; cat "$W/data/meta.json"; } > "$OUT/fuzz_dataset/data"

# fuzz_mcmc_state: the state file
cp "$W/mc.partial/state.bin" "$OUT/fuzz_mcmc_state/state.bin"
echo "fuzz corpora in $OUT: $(find "$OUT" -type f | wc -l) files"
