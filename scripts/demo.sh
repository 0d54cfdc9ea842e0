#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build, then run jade on the
# built-in default configuration (the 'small' preset) with the shipped pretrained model:
# a mock observation at the fiducial cosmology, joint posterior draws of maps and cosmology,
# and the HTML report. Outputs go to ./demo-out (OUT=... to change). DRAWS/STEPS to change
# the sampling (default 128 draws x 64 Heun steps: about a minute or two on 2 cores).
# JADE=path/to/jade uses that binary instead of building (tests/test_docs.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${JADE:-}" ]; then
  bash scripts/build.sh
  JADE=./build/jade
fi
OUT=${OUT:-demo-out}
rm -rf "$OUT" && mkdir -p "$OUT"
echo "== the fiducial cosmology's log-normal shifts (jade cosmo shift)"
$JADE cosmo shift
echo "== mock observation: noisy shear in 5 tomographic bins (jade observe)"
$JADE observe --seed 42 --out "$OUT/obs.fits"
echo "== joint posterior of maps and cosmology with the shipped model (jade sample)"
$JADE sample --model models/small --obs "$OUT/obs.fits" --draws "${DRAWS:-128}" --steps "${STEPS:-64}" \
  --seed 1 --out "$OUT/posterior"
$JADE report "$OUT/posterior"
