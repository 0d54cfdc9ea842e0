#!/usr/bin/env bash
# The main job on a fresh machine: install, build, then run jade on the built-in default
# configuration (the 'small' preset): print the fiducial cosmology's lensing spectra and
# shifts, make a mock observation, and simulate a small dataset. Outputs go to ./demo-out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
JADE=./build/jade
OUT=${OUT:-demo-out}
rm -rf "$OUT" && mkdir -p "$OUT"
echo "== log-normal shift per tomographic bin (jade cosmo shift)"
$JADE cosmo shift | tee "$OUT/shift.txt"
$JADE cosmo cl --n-ell 20 > "$OUT/cl.txt" && echo "== C_ell table written to $OUT/cl.txt"
echo "== mock observation (jade observe)"
$JADE observe --seed 42 --out "$OUT/obs.fits"
echo "== 64 simulations from the prior (jade simulate)"
$JADE simulate --n 64 --seed 1 --out "$OUT/sims"
echo "demo outputs in $OUT/"
