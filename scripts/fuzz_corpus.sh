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
mkdir -p "$OUT"/{fuzz_config,fuzz_npy,fuzz_fits,fuzz_safetensors,fuzz_dataset,fuzz_mcmc_state,fuzz_catalog,fuzz_torchpt}
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

# fuzz_torchpt: the fake pop-cosmos torch.save files of the tests (tests/data/popcosmos/make_fake_pt.py)
cp "$SRC"/tests/data/popcosmos/fake_*.pt "$OUT/fuzz_torchpt/"

# fuzz_mcmc_state: the state file
cp "$W/mc.partial/state.bin" "$OUT/fuzz_mcmc_state/state.bin"
# fuzz_catalog: a CSV catalogue (1-based bins, no weights) and a whitespace one with weights;
# the observation written by jade catalog from it is a FITS seed too
{ echo "# ra dec e1 e2 bin"; echo "ra,dec,e1,e2,bin"
  for i in $(seq 0 39); do echo "$(( 10 + i % 7 )).$(( i * 37 % 100 )),-2.$(( i * 13 % 100 )),0.0$(( i % 9 )),-0.0$(( i % 5 )),$(( 1 + i % 5 ))"; done
} > "$OUT/fuzz_catalog/cat.csv"
{ echo "ra dec e1 e2 weight bin"
  for i in $(seq 0 19); do echo "$(( 200 + i % 3 )).$(( i * 41 % 100 )) 30.$(( i * 7 % 100 )) -0.1$(( i % 3 )) 0.0$(( i % 7 )) 1.$(( i % 4 )) $(( i % 5 ))"; done
} > "$OUT/fuzz_catalog/cat.txt"
# a FITS binary table (RA, DEC 1D; E1, E2, WEIGHT 1E; TOMO_BIN 1J, 1-based), by hand
if command -v python3 >/dev/null; then
  python3 - "$OUT/fuzz_catalog/cat.fits" <<'PY'
import struct, sys
def block(cards):
    b = b"".join(c.ljust(80).encode() for c in cards + ["END"])
    return b + b" " * (-len(b) % 2880)
rows = [(10 + 0.1 * i, -2 + 0.07 * i, 0.01 * (i % 9), -0.02 * (i % 5), 1.0, 1 + i % 5) for i in range(30)]
data = b"".join(struct.pack(">ddfffi", *r) for r in rows)
cols = [("RA", "1D"), ("DEC", "1D"), ("E1", "1E"), ("E2", "1E"), ("WEIGHT", "1E"), ("TOMO_BIN", "1J")]
prim = ["SIMPLE  =                    T", "BITPIX  =                    8", "NAXIS   =                    0",
        "EXTEND  =                    T"]
ext = ["XTENSION= 'BINTABLE'", "BITPIX  =                    8", "NAXIS   =                    2",
       "NAXIS1  = %20d" % 32, "NAXIS2  = %20d" % len(rows), "PCOUNT  =                    0",
       "GCOUNT  =                    1", "TFIELDS =                    6"]
for i, (n, f) in enumerate(cols, 1):
    ext += ["TTYPE%-3d= '%-8s'" % (i, n), "TFORM%-3d= '%-8s'" % (i, f)]
ext.append("EXTNAME = 'CATALOG '")
open(sys.argv[1], "wb").write(block(prim) + block(ext) + data + b"\0" * (-len(data) % 2880))
PY
fi
if "$JADE" catalog --help >/dev/null 2>&1; then
  "$JADE" catalog "${G[@]}" --set n_bins=5 --cat "$OUT/fuzz_catalog/cat.csv" --bin-base 1 --out "$W/cat_obs.fits" 2>/dev/null \
    && cp "$W/cat_obs.fits" "$OUT/fuzz_fits/catalog_obs.fits" || true
fi

echo "fuzz corpora in $OUT: $(find "$OUT" -type f | wc -l) files"
