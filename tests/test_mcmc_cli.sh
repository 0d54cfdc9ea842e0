#!/usr/bin/env bash
# jade mcmc end to end on a tiny problem (8 x 8 pixels, 2 bins, sigma_8 and Omega_c free):
# outputs and their formats; bit-identical draws with 1 and 2 threads, with 1 and 2 MPI ranks,
# and after an interruption + resume; --compare with a sample directory; bad input gives a
# one-line error, a non-zero exit and no output.
set -u
JADE=${JADE:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
check() { if ! eval "$1"; then echo "FAILED: $2"; fail=1; fi; }
. "$(dirname "$0")/check_util.sh"
. "$(dirname "$0")/check_chains.sh"
GEOM=(--set n_pix=8 --set n_bins=2)
run() { "$JADE" mcmc "${GEOM[@]}" --obs "$T/obs.fits" --free sigma_8,Omega_c --chains 3 --warmup 40 --samples 30 \
          --seed 4 --quiet "$@"; }

"$JADE" observe "${GEOM[@]}" --seed 1 --out "$T/obs.fits" 2>/dev/null || { echo "observe failed"; exit 1; }

OMP_NUM_THREADS=2 run --out "$T/m1" || { echo "mcmc failed"; exit 1; }
for f in chain.txt chain.paramnames chain.npy theta.txt mean.fits std.fits diagnostics.txt config.ini; do
  check "[ -s $T/m1/$f ]" "missing output $f"
done
check "[ ! -e $T/m1.partial ] && [ ! -e $T/m1/state.bin ]" "partial state left behind"
hdr=$(sed -n 2p "$T/m1/theta.txt")
check "[ \"$hdr\" = '# chain weight log_post Omega_c Omega_b sigma_8 h n_s w_0 Omega_m S_8' ]" "theta.txt header: $hdr"
hdr=$(head -1 "$T/m1/theta.txt")
check "echo \"\$hdr\" | grep -q '^# jade [0-9.]* mcmc: 3 chains x 30 .*observation $T/obs.fits'" "theta.txt provenance: $hdr"
hdr=$(head -1 "$T/m1/config.ini")
check "echo \"\$hdr\" | grep -q '^# jade [0-9.]* mcmc: the effective configuration (observation $T/obs.fits)'" "config.ini provenance: $hdr"
hdr=$(head -1 "$T/m1/diagnostics.txt")
check "echo \"\$hdr\" | grep -q '^# jade [0-9.]* mcmc diagnostics'" "diagnostics.txt provenance: $hdr"
for f in mean std; do
  check "grep -q \"OBSFILE = '$T/obs.fits\" $T/m1/$f.fits && grep -q \"CDELT1  = *-\" $T/m1/$f.fits && grep -q \"CREATOR = 'jade\" $T/m1/$f.fits" \
    "$f.fits: provenance and WCS keys"
done
rows=$(grep -vc '^#' "$T/m1/theta.txt")
check "[ $rows = 90 ]" "theta.txt has $rows rows (expected 3 chains x 30)"
check "awk '!/^#/ && NF != 11 {bad=1} END {exit bad}' $T/m1/theta.txt" "theta.txt rows must have 11 columns"
check "awk '!/^#/ && (\$5 != 0.0486 || \$7 != 0.6774 || \$9 != -1) {bad=1} END {exit bad}' $T/m1/theta.txt" \
  "fixed parameters must keep the config's values"
check "awk \"\$JADE_AWK_NUM\"'!/^#/ {s += num(\$2); n++} END {if (num_bad) exit 2; exit !(s / n > 0.999 && s / n < 1.001)}' $T/m1/theta.txt" "weights must average to 1"
for key in 'sigma_8 ' 'S_8 ' 'max R-hat' 'ess_bulk' 'divergences:' 'tree depth counts' 'step_size' \
           'gradient evaluations' 'wall time per effective sample of S_8' 'importance weights'; do
  check "grep -q '$key' $T/m1/diagnostics.txt" "diagnostics.txt lacks '$key'"
done
# chain.*: the layout of jade sample (include/jade/chains.h), the same draws as theta.txt,
# -log posterior finite and weights averaging 1
check_chain "$T/m1/chain" "$T/m1/theta.txt" 10 mcmc
check "sed -n 2p $T/m1/chain.txt | grep -q '^# jade .* mcmc: 3 chains x 30 post-warm-up NUTS draws'" "chain.txt provenance line"
check "grep -q '(fixed)' $T/m1/diagnostics.txt" "fixed parameters not marked in diagnostics.txt"
# 3 chains x 30 draws cannot reach ESS 100 per chain: the verdict says so, the run warns, and
# --strict turns it into exit status 4 with the outputs still written.
check "grep -q '^verdict = NOT USABLE: .*ESS' $T/m1/diagnostics.txt" "diagnostics.txt lacks the NOT USABLE verdict"
err=$(OMP_NUM_THREADS=2 run --out "$T/st" --strict 2>&1); rc=$?
check "[ $rc = 4 ] && [ -s $T/st/theta.txt ] && echo \"\$err\" | grep -q 'WARNING: the chains are not usable: .*ESS'" \
  "--strict on unusable chains: rc=$rc, $err"

# Same draws with one thread.
OMP_NUM_THREADS=1 run --out "$T/m2" || { echo "mcmc (1 thread) failed"; exit 1; }
check "cmp -s $T/m1/theta.txt $T/m2/theta.txt" "1 vs 2 threads: theta.txt differs"
check "cmp -s $T/m1/chain.npy $T/m2/chain.npy && cmp -s $T/m1/chain.txt $T/m2/chain.txt" "1 vs 2 threads: chain.* differs"
# (FITS headers carry the checksum's time stamp: compare the data block)
fdata() { tail -c 2880 "$1"; }
check "cmp -s <(fdata $T/m1/mean.fits) <(fdata $T/m2/mean.fits)" "1 vs 2 threads: mean.fits data differs"

# Interrupted twice (exit code 3: in warm-up, then in sampling), resumed: the same draws.
OMP_NUM_THREADS=2 run --out "$T/r" --max-iterations 23; rc=$?
check "[ $rc = 3 ] && [ -d $T/r.partial ] && [ ! -e $T/r ]" "--max-iterations: rc=$rc, only r.partial expected"
OMP_NUM_THREADS=1 run --out "$T/r" --max-iterations 30; rc=$?
check "[ $rc = 3 ]" "second interruption: rc=$rc"
OMP_NUM_THREADS=2 run --out "$T/r" || { echo "resume failed"; exit 1; }
check "cmp -s $T/m1/theta.txt $T/r/theta.txt" "resumed run: theta.txt differs"
check "cmp -s $T/m1/chain.npy $T/r/chain.npy" "resumed run: chain.npy differs"
check "cmp -s <(fdata $T/m1/std.fits) <(fdata $T/r/std.fits)" "resumed run: std.fits data differs"
# A different run must not resume someone else's partial output.
OMP_NUM_THREADS=2 run --out "$T/x" --max-iterations 5 >/dev/null 2>&1
err=$(OMP_NUM_THREADS=2 run --out "$T/x" --target-accept 0.9 2>&1); rc=$?
check "[ $rc != 0 ] && echo \"\$err\" | grep -q 'different run'" "mismatched resume not refused: $err"

if [ "${JADE_WITH_MPI:-0}" = 1 ] && command -v mpirun >/dev/null; then
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe -np 2 \
    "$JADE" mcmc "${GEOM[@]}" --obs "$T/obs.fits" --free sigma_8,Omega_c --chains 3 --warmup 40 --samples 30 --seed 4 --quiet \
    --out "$T/mp" || { echo "mpirun mcmc failed"; exit 1; }
  check "cmp -s $T/m1/theta.txt $T/mp/theta.txt" "1 vs 2 MPI ranks: theta.txt differs"
else
  echo "note: MPI not available, 2-rank check skipped"
fi

# --compare: a 'jade sample'-style directory (here: the same draws, unweighted, without the
# derived columns) next to the NUTS run.
mkdir -p "$T/samp"
{ echo "# Omega_c Omega_b sigma_8 h n_s w_0"; awk '!/^#/ {print $4, $5, $6, $7, $8, $9}' "$T/m1/theta.txt"; } > "$T/samp/theta.txt"
"$JADE" mcmc --compare "$T/samp" --out "$T/m1" --quiet || { echo "compare failed"; exit 1; }
check "[ -s $T/m1/compare.txt ]" "compare.txt missing"
check "[ \$(grep -vc '^#' $T/m1/compare.txt) = 8 ]" "compare.txt must have 8 parameter rows"
# its numbers against an independent computation: S_8 weighted mean / population sd of the
# NUTS draws, mean / sample sd of the 'sample' draws (S_8 from the six parameters)
ref=$(awk "$JADE_AWK_NUM"'!/^#/ {w=num($2); x=num($11); sw+=w; s+=w*x; s2+=w*x*x} END {if (num_bad) exit 2; m=s/sw; printf "%.6g %.6g", m, sqrt(s2/sw-m*m)}' "$T/m1/theta.txt")
ref2=$(awk "$JADE_AWK_NUM"'!/^#/ {x=num($3)*sqrt((num($1)+num($2))/0.3); n++; s+=x; s2+=x*x} END {if (num_bad) exit 2; m=s/n; printf "%.6g %.6g", m, sqrt((s2-n*m*m)/(n-1))}' "$T/samp/theta.txt")
got=$(awk "$JADE_AWK_NUM"'$1 == "S_8" {printf "%.6g %.6g %.6g %.6g", num($2), num($3), num($4), num($5)}' "$T/m1/compare.txt")
check "[ \"$got\" = \"$ref $ref2\" ]" "compare.txt S_8 row '$got' vs independent '$ref $ref2'"
check "grep -q '^h .*fixed' $T/m1/compare.txt" "fixed parameters not marked in compare.txt"
# comparison requested together with the run
OMP_NUM_THREADS=2 run --out "$T/m3" --compare "$T/samp" || { echo "mcmc --compare failed"; exit 1; }
check "cmp -s <(grep -v '^#' $T/m1/compare.txt) <(grep -v '^#' $T/m3/compare.txt)" "compare.txt from the run differs from the one made afterwards"
check "grep -q 'm3/theta.txt' $T/m3/compare.txt && ! grep -q partial $T/m3/compare.txt" "compare.txt names the wrong directory"

# Other modes: prior starting points; hybrid theory (exact density: all weights exactly 1);
# settings from a config file's [mcmc] section (the command line wins).
OMP_NUM_THREADS=2 run --out "$T/p" --init prior --max-depth 6 || { echo "mcmc --init prior failed"; exit 1; }
check "grep -q 'init = prior' $T/p/diagnostics.txt" "--init prior not recorded"
OMP_NUM_THREADS=2 "$JADE" mcmc "${GEOM[@]}" --obs "$T/obs.fits" --free sigma_8 --chains 1 --warmup 10 --samples 4 \
  --theory hybrid --max-depth 4 --quiet --out "$T/hy" || { echo "mcmc --theory hybrid failed"; exit 1; }
check "awk '!/^#/ && \$2 != 1 {bad=1} END {exit bad}' $T/hy/theta.txt" "hybrid mode: weights must all be 1"
{ sed -e 's/^n_pix = .*/n_pix = 8/' -e 's/^n_bins = .*/n_bins = 2/' "$JADE_SOURCE_DIR/configs/small.ini"
  printf '[mcmc]\nchains = 2\nsamples = 6\nwarmup = 30\nfree = sigma_8\n'; } > "$T/m.ini"
OMP_NUM_THREADS=2 "$JADE" mcmc --config "$T/m.ini" --obs "$T/obs.fits" --samples 5 --quiet --out "$T/cf" \
  || { echo "mcmc with an [mcmc] section failed"; exit 1; }
check "[ \$(grep -vc '^#' $T/cf/theta.txt) = 10 ]" "[mcmc] chains = 2 with --samples 5 should give 10 rows"
check "grep -q '^free = sigma_8$' $T/cf/diagnostics.txt" "[mcmc] free not applied"
printf 'typo = 1\n' >> "$T/m.ini"

# A masked observation with a noise map (jade observe --mask-max): the likelihood uses them
# (the observation hash covers them), the run says so, and the same seed gives the same draws.
"$JADE" observe "${GEOM[@]}" --seed 1 --mask-max 0.4 --noise-ln-field 0.3 --out "$T/mobs.fits" 2>/dev/null \
  || { echo "observe --mask-max failed"; exit 1; }
mrun() { "$JADE" mcmc "${GEOM[@]}" --obs "$T/mobs.fits" --free sigma_8 --chains 2 --warmup 20 --samples 8 --seed 4 "$@"; }
err=$(OMP_NUM_THREADS=2 mrun --out "$T/mk" 2>&1) || { echo "mcmc on a masked observation failed: $err"; exit 1; }
check "echo \"\$err\" | grep -q 'pixels masked, per-pixel noise map'" "masked run: no note about the mask: $err"
OMP_NUM_THREADS=1 mrun --quiet --out "$T/mk1" || { echo "masked mcmc (1 thread) failed"; exit 1; }
check "cmp -s $T/mk/theta.txt $T/mk1/theta.txt" "masked: 1 vs 2 threads differ"
h1=$(grep observation_hash "$T/cf/diagnostics.txt"); h2=$(grep observation_hash "$T/mk/diagnostics.txt")
check "[ -n \"$h2\" ] && [ \"$h1\" != \"$h2\" ]" "masked observation hash: $h1 vs $h2"

# Bad input: one line on stderr, non-zero exit, nothing written.
bad() {
  local what=$1; shift
  local out
  out=$("$JADE" "$@" 2>&1 >/dev/null); local rc=$?
  local lines; lines=$(printf '%s\n' "$out" | grep -c .)
  if [ $rc = 0 ] || [ "$lines" != 1 ]; then echo "FAILED: $what: rc=$rc, stderr: $out"; fail=1; fi
  if [ -e "$T/bad" ] || [ -e "$T/bad.partial" ]; then echo "FAILED: $what left output"; fail=1; rm -rf "$T"/bad*; fi
  printf '  %-28s -> %s\n' "$what" "$out"
}
bad "no --obs" mcmc "${GEOM[@]}" --out "$T/bad"
bad "no --out" mcmc "${GEOM[@]}" --obs "$T/obs.fits"
bad "missing observation" mcmc "${GEOM[@]}" --obs "$T/none.fits" --out "$T/bad"
bad "geometry mismatch" mcmc --obs "$T/obs.fits" --out "$T/bad"
bad "unknown parameter" mcmc "${GEOM[@]}" --obs "$T/obs.fits" --free sigma8 --out "$T/bad"
bad "bad --init" mcmc "${GEOM[@]}" --obs "$T/obs.fits" --init middle --out "$T/bad"
bad "bad --theory" mcmc "${GEOM[@]}" --obs "$T/obs.fits" --theory fast --out "$T/bad"
bad "bad --chains" mcmc "${GEOM[@]}" --obs "$T/obs.fits" --chains 0 --out "$T/bad"
bad "bad --samples" mcmc "${GEOM[@]}" --obs "$T/obs.fits" --samples x --out "$T/bad"
bad "existing --out" mcmc "${GEOM[@]}" --obs "$T/obs.fits" --out "$T/m2"
bad "missing compare dir" mcmc --compare "$T/nosuch" --out "$T/m2"
mkdir -p "$T/empty"
bad "compare dir w/o theta.txt" mcmc "${GEOM[@]}" --obs "$T/obs.fits" --compare "$T/empty" --out "$T/bad"
printf '# Omega_c sigma_8\n0.2 0.8\n' > "$T/samp/theta.txt"
bad "compare: columns" mcmc --compare "$T/samp" --out "$T/m2"
check "[ ! -e $T/m2/compare.txt ]" "failed compare left compare.txt"
bad "unknown [mcmc] key" mcmc --config "$T/m.ini" --obs "$T/obs.fits" --out "$T/bad"
# --init truth needs the truth file
cp "$T/obs.fits" "$T/notruth.fits"
bad "no truth file" mcmc "${GEOM[@]}" --obs "$T/notruth.fits" --init truth --out "$T/bad"
exit $fail
