#!/usr/bin/env bash
# jade validate / jade report end to end on a tiny problem (16x16x5 maps, a 2-block model
# trained for 30 steps): output files and summary.json keys, metrics recomputed from the kept
# draws, resume after --max-obs giving the identical summary, the same results with 2 threads
# and 2 MPI ranks, reports of a sample, a validation and an MCMC output (and a sample with an
# MCMC overlay) and a training run, bad input (one-line errors, non-zero exit, nothing written), and a headless
# Chromium check of the pages when Chromium is installed (scripts/screenshot.sh).
set -u
JADE=${JADE:?}
BUILD=$(dirname "$JADE")
SRC=${JADE_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
check() { if ! eval "$1"; then echo "FAILED: $2"; fail=1; fi; }
. "$(dirname "$0")/check_util.sh"
. "$(dirname "$0")/check_chains.sh"
export OMP_NUM_THREADS=1
cd "$T" || exit 1

# ---- a tiny trained model, a held-out dataset, an observation and its posterior ----
"$JADE" simulate --n 48 --seed 5 --set n_pix=16 --quiet --out data || { echo "simulate failed"; exit 1; }
"$JADE" simulate --n 10 --seed 77 --set n_pix=16 --quiet --out held || { echo "simulate failed"; exit 1; }
"$JADE" train --data data --out m --steps 30 --set model.patch=4 --set model.depth=2 --set model.width=64 --set model.heads=2 \
  --set model.n_cosmo_tokens=4 --set model.bottleneck=32 --set train.batch=16 --set train.micro_batch=8 --set train.warmup=5 \
  --set train.lr_peak=3e-3 --set train.ema_start=10 --set train.val_fraction=0.25 --set train.log_every=10 \
  --set train.val_every=10 --set train.checkpoint_every=20 --quiet || { echo "train failed"; exit 1; }
"$JADE" observe --seed 3 --set n_pix=16 --out obs.fits 2>/dev/null || { echo "observe failed"; exit 1; }
"$JADE" sample --model m --obs obs.fits --draws 24 --steps 4 --seed 1 --quiet --out s || { echo "sample failed"; exit 1; }

# ---- jade validate ----
V=(--model m --data held --n-obs 8 --draws 16 --steps 4)
"$JADE" validate "${V[@]}" --keep-draws --out v1 > v1.log 2>&1 || { echo "validate failed: $(cat v1.log)"; exit 1; }
check "grep -q 'MIRA joint' v1.log" "validate prints the MIRA score"
check "[ ! -e v1.partial ]" "v1.partial left behind"
for f in summary.json tarp_joint.txt tarp_theta.txt tarp_maps.txt coverage.txt per_obs.txt power.txt pdf.txt report.html \
         tarp.png ranks.png recovery.png power.png pdf.png example_maps.png example_corner.png example_maps.npy example_theta.npy \
         truth_theta.npy truth_maps.npy obs_maps.npy draws_theta.npy draws_maps.npy records/obs_000007.npy; do
  check "[ -s v1/$f ]" "validate output $f missing"
done
for k in mira_joint mira_joint_err mira_theta mira_theta_err mira_maps mira_maps_err mira_expected tarp_joint_max_dev \
         tarp_joint_area tarp_theta_signed_area tarp_maps_area coverage cov68 cov95 mean_offset rank_chi2_p n_obs draws steps \
         pixel_cov68 map_std theta_std; do
  check "grep -q '\"$k\"' v1/summary.json" "summary.json lacks $k"
done
for c in Omega_c Omega_b sigma_8 h n_s w_0 Omega_m S_8; do
  check "grep -q '\"$c\": {\"cov68\"' v1/summary.json" "summary.json lacks the coverage of $c"
done
check "grep -q '\"n_obs\": 8,' v1/summary.json && grep -q '\"draws\": 16,' v1/summary.json && grep -q '\"steps\": 4,' v1/summary.json" "summary.json sizes"
check "awk \"\$JADE_AWK_NUM\"'/\"mira_joint\"/{v=\$2; sub(/,\$/, \"\", v); v=num(v); exit !(v >= 0.45 && v <= 1)}' v1/summary.json" "mira_joint out of range"
check "[ \$(grep -vc '^#' v1/tarp_joint.txt) = 101 ]" "tarp_joint.txt should have 101 rows"
check "grep -q '^# alpha ecp lo68 hi68 lo95 hi95$' v1/tarp_joint.txt" "tarp_joint.txt header"
check "[ \$(grep -vc '^#' v1/coverage.txt) = 8 ]" "coverage.txt should have 8 rows"
check "[ \$(grep -vc '^#' v1/per_obs.txt) = 8 ]" "per_obs.txt should have 8 rows"
check "[ \$(stat -c %s v1/draws_maps.npy) = \$((128 + 8 * 16 * 5 * 16 * 16 * 4)) ]" "draws_maps.npy size"
check "[ \$(stat -c %s v1/draws_theta.npy) = \$((128 + 8 * 16 * 8 * 8)) ]" "draws_theta.npy size"
echo -n "metrics from the kept draws: "
check "$BUILD/test_validation_run --recompute v1 | head -1" "metrics recomputed from the kept draws differ from summary.json"

# resume: --max-obs stops (exit 3, OUT.partial only), the rerun completes with the same numbers
"$JADE" validate "${V[@]}" --max-obs 3 --out v2 --quiet; rc=$?
check "[ $rc = 3 ]" "--max-obs should exit with 3 (got $rc)"
check "[ -d v2.partial ] && [ ! -e v2 ] && [ \$(ls v2.partial/records | wc -l) = 3 ]" "after --max-obs: v2.partial with 3 records, no v2"
"$JADE" validate "${V[@]}" --out v2 --quiet || { echo "FAILED: resumed validate"; fail=1; }
same() { # the results of two runs agree (timings aside)
  diff <(grep -v seconds "$1/summary.json" | grep -v '"model"\|"data"') <(grep -v seconds "$2/summary.json" | grep -v '"model"\|"data"') >/dev/null &&
    for f in tarp_joint.txt tarp_theta.txt tarp_maps.txt coverage.txt power.txt pdf.txt; do cmp -s "$1/$f" "$2/$f" || return 1; done &&
    diff <(cut -d' ' -f1,3- "$1/per_obs.txt") <(cut -d' ' -f1,3- "$2/per_obs.txt") >/dev/null
}
check "same v1 v2" "resumed validation differs from the straight run"
OMP_NUM_THREADS=2 "$JADE" validate "${V[@]}" --out v3 --quiet || { echo "FAILED: validate with 2 threads"; fail=1; }
check "same v1 v3" "2-thread validation differs from 1 thread"
if [ "${JADE_WITH_MPI:-0}" = 1 ] && command -v mpirun >/dev/null; then
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 mpirun --allow-run-as-root --oversubscribe -np 2 "$JADE" validate "${V[@]}" --max-obs 1 --out v4 --quiet 2>/dev/null; rc=$?
  check "[ $rc = 3 ] && [ \$(ls v4.partial/records | wc -l) = 2 ]" "2-rank --max-obs 1 should leave 2 records (rc $rc)"
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 mpirun --allow-run-as-root --oversubscribe -np 2 "$JADE" validate "${V[@]}" --out v4 --quiet || { echo "FAILED: mpirun validate"; fail=1; }
  check "same v1 v4" "2-rank validation differs from 1 rank"
else
  echo "note: MPI not available, 2-rank check skipped"
fi

# ---- jade report ----
"$JADE" report s > r.log || { echo "FAILED: report of a sample"; fail=1; }
check "grep -q 's/report.html' r.log" "report prints where the page is"
for f in report.html maps.png corner.png power.png pdf.png; do check "[ -s s/$f ]" "sample report: $f missing"; done
imgs() { grep -o '<img ' "$1" | wc -l; }
check "[ \$(imgs s/report.html) = 4 ] && [ \$(grep -o 'src=\"data:image/png;base64,' s/report.html | wc -l) = 4 ]" "sample report should embed 4 images"
check "! grep -q 'src=\"http\\|href=\"http' s/report.html" "the report refers to the network"
check "grep -q 'truth known' s/report.html" "sample report did not find the truth of the recorded observation"
# issue 15: prior overlay, theory and noise on every auto/cross spectrum, residual maps in degrees,
# the version and the inputs in every output
VER=$("$JADE" --version | cut -d' ' -f2)
check "grep -q \"^project(jade VERSION $VER \" '$SRC/CMakeLists.txt'" "jade --version ($VER) differs from CMakeLists.txt's project(VERSION)"
check "[ -s s/config.ini ] && grep -q '^prior_sigma_8 = ' s/config.ini" "sample wrote no config.ini"
check "head -1 s/theta.txt | grep -q \"^# jade $VER sample\" && head -1 s/summary.txt | grep -q \"^# jade $VER sample\"" "sample text outputs lack the version"
# the chain layout shared with jade mcmc (include/jade/chains.h): weight 1, minuslogpost 0
check_chain s/chain s/theta.txt 9 sample
check "sed -n 2p s/chain.txt | grep -q \"^# jade $VER sample\"" "chain.txt lacks the version line"
check "grep -aq \"CREATOR = 'jade $VER'\" s/maps.fits && grep -aq \"CREATOR = 'jade $VER'\" obs.fits" "FITS outputs lack CREATOR"
check "grep -q \"content=\\\"jade $VER\\\"\" s/report.html && grep -q \"id=\\\"provenance\\\">jade $VER; inputs: .*observation .*obs.fits.*configuration s/config.ini\" s/report.html" "report.html lacks the version / inputs"
for f in maps corner power pdf; do
  check "grep -aq \"jade $VER\" s/$f.png && grep -aq 'obs.fits' s/$f.png" "$f.png has no Software / Source text"
done
check "grep -q \"prior's marginal density\" s/report.html && grep -q '<th>prior sd</th>' s/report.html" "corner plot / table without the prior"
check "grep -q 'Scott' s/report.html" "the corner plot's caption does not name the kernel bandwidth"
check "grep -q 'every bin pair (15 panels' s/report.html" "power figure should have all 15 auto and cross spectra"
check "grep -q 'theory at the posterior mean' s/report.html && grep -q 'white-noise level' s/report.html" "power figure lacks theory / noise"
check "grep -q 'Axes in degrees' s/report.html && grep -q 'residual (mean - truth) / sd' s/report.html" "maps figure lacks degrees / residuals"
# the pixels: prior curves (grey 7F7F7F) on the corner plot's diagonal, theory (green) and noise
# (purple) lines on the spectra, residual maps (RdBu ends) on the maps
count() { "$BUILD/test_plot" --count "$@"; }
check "[ \$(count s/corner.png 7F7F7F) -gt 100 ]" "no prior curves on the corner plot"
check "[ \$(count s/power.png 2CA02C) -gt 200 ] && [ \$(count s/power.png 9467BD) -gt 50 ]" "no theory / noise lines on the spectra"
check "[ \$(count s/maps.png 053061) -gt 0 ] || [ \$(count s/maps.png 67001F) -gt 0 ]" "no residual map"
rm v1/*.png v1/report.html
"$JADE" report v1 --quiet || { echo "FAILED: report of a validation"; fail=1; }
check "[ \$(imgs v1/report.html) = 7 ] && [ -s v1/tarp.png ]" "validation report should embed 7 images"
check "grep -q 'MIRA' v1/report.html && grep -q 'rank' v1/report.html" "validation report lacks MIRA / coverage"
check "[ -s v1/config.ini ] && grep -q '\"jade_version\": \"'$VER'\"' v1/summary.json && head -1 v1/power.txt | grep -q \"^# jade $VER validate\"" "validation outputs lack the version / config.ini"
check "[ \$(count v1/example_corner.png 7F7F7F) -gt 100 ] && grep -q '(mean-truth)/sd\|residual (mean' v1/report.html" "validation example without prior / residuals"
# a non-square example_maps.npy (4, 1, 16, 8) used to be read as 16 x 16 (heap over-read):
# the report must skip the example figure, not crash
cp -r v1 v1ns && rm -f v1ns/*.png v1ns/report.html
{ dict="{'descr': '<f4', 'fortran_order': False, 'shape': (4, 1, 16, 8), }"
  pad=$(( 64 - (10 + ${#dict} + 1) % 64 )); [ $pad = 64 ] && pad=0
  printf '\x93NUMPY\x01\x00'; printf "\\x$(printf %02x $(( (${#dict} + pad + 1) % 256 )))\\x$(printf %02x $(( (${#dict} + pad + 1) / 256 )))"
  printf '%s%*s\n' "$dict" $pad ''; head -c $(( 4 * 16 * 8 * 4 )) /dev/zero; } > v1ns/example_maps.npy
"$JADE" report v1ns --quiet || { echo "FAILED: report of a validation with a non-square example_maps.npy"; fail=1; }
check "[ ! -e v1ns/example_maps.png ] && [ -s v1ns/report.html ]" "non-square example maps must be skipped"
# an MCMC run of the same observation (jade mcmc when available, else a stand-in theta.txt)
if "$JADE" mcmc --obs obs.fits --set n_pix=16 --out mc --chains 2 --warmup 10 --samples 10 --max-depth 3 --free sigma_8,Omega_c \
     --quiet > /dev/null 2>&1; then :; else
  mkdir -p mc && { echo "# chain weight Omega_c Omega_b sigma_8 h n_s w_0 Omega_m S_8"
    grep -v '^#' s/theta.txt | awk '{print NR % 2, 1, $0}'; } > mc/theta.txt
fi
[ -e mc/chain.txt ] && check_chain mc/chain mc/theta.txt 10 mcmc
"$JADE" report mc --obs obs.fits --quiet || { echo "FAILED: report of an MCMC run"; fail=1; }
check "[ -s mc/report.html ] && [ -s mc/corner.png ] && [ -s mc/trace.png ]" "MCMC report files"
"$JADE" report s --mcmc mc --quiet || { echo "FAILED: report with an MCMC overlay"; fail=1; }
check "grep -q 'MCMC mean' s/report.html && [ -s s/trace.png ]" "MCMC overlay missing from the sample report"
# one importance weight dominates: the resample repeats one draw, so no corner plot, with a note why
mkdir -p mcw && { echo "# chain weight Omega_c Omega_b sigma_8 h n_s w_0 Omega_m S_8"
  grep -v '^#' s/theta.txt | awk '{print NR % 2, (NR == 3 ? 1e300 : 1e-300), $0}'; } > mcw/theta.txt
"$JADE" report mcw --quiet || { echo "FAILED: report of an MCMC run with one dominant weight"; fail=1; }
check "[ ! -e mcw/corner.png ] && grep -q 'No corner plot: no parameter varies' mcw/report.html" "degenerate weights: corner note"
# a training report of the tiny model: loss curves, config, numbers from loss.csv
"$JADE" report m --quiet || { echo "FAILED: report of a training run"; fail=1; }
check "[ -s m/loss.png ] && [ \$(imgs m/report.html) = 1 ] && grep -q 'train.steps = 30' m/report.html" "training report files"
last_loss=$(tail -1 m/loss.csv | cut -d, -f4)
check "grep -q \"last training loss</td><td>\$(printf '%.4f' $last_loss)<\" m/report.html" "training report's last loss ($last_loss)"
# --obs instead of the recorded path
cp -r s s_moved && cp obs.fits obs_copy.fits && cp obs_truth.fits obs_copy_truth.fits
"$JADE" report s_moved --obs obs_copy.fits --quiet || { echo "FAILED: report --obs"; fail=1; }
check "grep -q 'obs_copy.fits' s_moved/report.html" "report --obs not used"

# ---- bad input: one line on stderr, non-zero exit, nothing written ----
bad() {
  local what=$1; shift
  local out
  out=$("$JADE" "$@" 2>&1 >/dev/null); local rc=$?
  local lines; lines=$(printf '%s\n' "$out" | grep -c .)
  if [ $rc = 0 ] || [ "$lines" != 1 ]; then echo "FAILED: $what: rc=$rc, stderr: $out"; fail=1; fi
  if [ -e bad ] || [ -e bad.partial ]; then echo "FAILED: $what left output"; fail=1; rm -rf bad bad.partial; fi
  printf '  %-32s -> %s\n' "$what" "$out"
}
"$JADE" simulate --n 4 --seed 9 --quiet --out held32 || { echo "simulate failed"; exit 1; }
mkdir empty
printf '# Omega_c Omega_b\n1 2 3\n' > empty/theta.txt.bad
mkdir garbled && printf '# Omega_c Omega_b sigma_8 h n_s w_0\n0.3 0.05 0.8\n' > garbled/theta.txt
mkdir badloss && cp m/model.safetensors badloss/ && printf 'step,loss\n10,1.5\n20\n' > badloss/loss.csv
bad "validate: no --model"          validate --data held --out bad
bad "validate: missing dataset"     validate --model m --data nope --out bad
bad "validate: missing model"       validate --model nope --data held --out bad
bad "validate: --n-obs > dataset"   validate --model m --data held --n-obs 11 --out bad
bad "validate: --n-obs 1"           validate --model m --data held --n-obs 1 --out bad
bad "validate: bad --draws"         validate --model m --data held --draws x --out bad
bad "validate: seed too large"      validate --model m --data held --seed 4294967296 --out bad
bad "validate: dataset geometry"    validate --model m --data held32 --n-obs 2 --out bad
bad "validate: existing output"     validate "${V[@]}" --out v1
"$JADE" validate "${V[@]}" --max-obs 1 --out v5 --quiet >/dev/null 2>&1
bad "validate: other run's partial" validate --model m --data held --n-obs 8 --draws 12 --steps 4 --out v5
rm -rf v5.partial
bad "report: no such directory"     report nope
bad "report: not an output"         report empty
bad "report: garbled theta.txt"     report garbled
bad "report: missing --obs file"    report s --obs nope.fits
bad "report: --mcmc on validation"  report v1 --mcmc mc
bad "report: two directories"       report s v1
bad "report: ragged loss.csv"       report badloss

# ---- the pages in a real browser ----
for d in s v1 m; do
  bash "$SRC/scripts/screenshot.sh" "$d/report.html" "$T/$d.png" "$BUILD/test_plot --png-stats"; rc=$?
  if [ $rc = 77 ]; then break; fi
  check "[ $rc = 0 ]" "headless Chromium check of $d/report.html"
done
exit $fail
