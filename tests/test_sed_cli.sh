#!/usr/bin/env bash
# jade sed mock / fit end to end on a tiny catalogue (seconds): files written, shapes, the fit's
# redshift medians inside the box, the same catalogue as CSV gives the same summary, and bad
# input fails with a one-line error and no output; convert-pt, distil-prior (resumed labels)
# and a fit under the surrogate with its importance-weight check.
set -euo pipefail
JADE=${JADE:-build/jade}
SRC=${JADE_SOURCE_DIR:-.}
M="$SRC/models/popcosmos"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$JADE" sed mock --models "$M" --out "$T/cat.fits" --n 3 --source prior --n-range 14,18 --seed 4
test -s "$T/cat.fits" && test -s "$T/cat.txt"
FIT=(--models "$M" --walkers 8 --steps 20 --burn 10 --n-init 64 --n-opt 20 --n-range 14,18 --chain-thin 5)
"$JADE" sed fit "${FIT[@]}" --catalogue "$T/cat.fits" --out "$T/f" > "$T/log" 2> "$T/warn"
cat "$T/log" "$T/warn"
# 20 kept iterations are far fewer than 50 tau: the fit says so
grep -q "fewer than 50 tau_max" "$T/warn" || { echo "no warning about short chains"; exit 1; }
for f in f_summary.fits f_summary.txt f_summary.npy f_chains.npy; do test -s "$T/$f"; done
rows=$(grep -vc '^#' "$T/f_summary.txt")
[ "$rows" = 3 ] || { echo "summary rows $rows"; exit 1; }
grep -q "68% coverage" "$T/log"
# z median (column z_MED) within [0, 6]
awk 'NR==1{for(i=2;i<=NF;i++) if($i=="z_MED") c=i-1} NR>1{ if(!($c>=0 && $c<=6)) {print "z_MED " $c; exit 1}}' "$T/f_summary.txt"
# CSV version of the same catalogue (header from the text twin) -> identical summary
awk 'NR==1{sub(/^# /,""); gsub(/ /,","); print; next}{gsub(/ /,","); print}' "$T/cat.txt" > "$T/cat.csv"
"$JADE" sed fit "${FIT[@]}" --catalogue "$T/cat.csv" --out "$T/g" > /dev/null
cmp "$T/f_summary.txt" "$T/g_summary.txt" || { echo "CSV and FITS catalogues give different fits"; exit 1; }
# float64 emulators: the same fit runs (float32 is the default); an unknown arithmetic is refused
"$JADE" sed fit "${FIT[@]}" --catalogue "$T/cat.fits" --out "$T/d" --emulators f64 > /dev/null
test -s "$T/d_summary.txt"
if "$JADE" sed fit "${FIT[@]}" --catalogue "$T/cat.fits" --out "$T/e" --emulators f16 2> "$T/err"; then
  echo "--emulators f16 accepted"; exit 1; fi
[ "$(wc -l < "$T/err")" = 1 ] && grep -q "f16" "$T/err" && [ ! -e "$T/e_summary.txt" ]
# HMC (exact gradients): runs, medians inside the box, acceptance and the ridge moves' acceptance
# reported (NaN when they are off)
"$JADE" sed fit "${FIT[@]}" --catalogue "$T/cat.fits" --out "$T/h" --sampler hmc --leapfrog 3 > "$T/hlog" 2> /dev/null
awk 'NR==1{for(i=2;i<=NF;i++){ if($i=="z_MED") c=i-1; if($i=="ACCEPT") a=i-1; if($i=="ACCEPT_RIDGE") r=i-1; if($i=="RHAT") h=i-1 }}
     NR>1{ if(!($c>=0 && $c<=6) || !($a>0 && $a<=1) || !($r>=0 && $r<=1) || !($h>0.9 && $h<1e6)) {
       print "hmc z_MED " $c " ACCEPT " $a " RIDGE " $r " RHAT " $h; exit 1}}' "$T/h_summary.txt"
# (this run also with the dense metric)
"$JADE" sed fit "${FIT[@]}" --catalogue "$T/cat.fits" --out "$T/h0" --sampler hmc --leapfrog 3 --ridge-every 0 \
  --metric dense > /dev/null 2>&1
awk 'NR==1{for(i=2;i<=NF;i++){ if($i=="ACCEPT_RIDGE") r=i-1; if($i=="ACCEPT") a=i-1 }}
     NR>1{ if($r!="nan" || !($a>0 && $a<=1)) {print "ridge off: " $r " dense metric ACCEPT " $a; exit 1}}' "$T/h0_summary.txt"
if "$JADE" sed fit "${FIT[@]}" --catalogue "$T/cat.fits" --out "$T/e" --sampler hmc --metric full 2> "$T/err"; then
  echo "--metric full accepted"; exit 1; fi
[ "$(wc -l < "$T/err")" = 1 ] && grep -q "metric full" "$T/err"
# with parallel tempering (2 temperatures; no profile, to keep the test short): the exchange rate
# is reported in ACCEPT_HOP
"$JADE" sed fit "${FIT[@]}" --catalogue "$T/cat.fits" --out "$T/pt" --sampler hmc --leapfrog 3 --temps 2 --ridge-every 0 \
  > /dev/null 2>&1
awk 'NR==1{for(i=2;i<=NF;i++) if($i=="ACCEPT_HOP") a=i-1} NR>1{ if(!($a>=0 && $a<=1)) {print "swap rate " $a; exit 1}}' \
  "$T/pt_summary.txt"
if "$JADE" sed fit "${FIT[@]}" --catalogue "$T/cat.fits" --out "$T/e" --sampler hmc --temps 2 --emulators f64 2> "$T/err"; then
  echo "tempering with float64 emulators accepted"; exit 1; fi
[ "$(wc -l < "$T/err")" = 1 ]
# SMC (without the redshift profile, which the hmc runs above cover): runs; LOG_Z finite, N_BURN (stages) >= 1, RHAT NaN (particles in several modes are the
# point), LOGP_TRUE (the mock's truth) finite; no short-chain warning; SMC with tempering refused
"$JADE" sed fit "${FIT[@]}" --catalogue "$T/cat.fits" --out "$T/s" --sampler smc --walkers 16 --steps 2 --leapfrog 3 \
  --smc-mutations 2 --ridge-every 0 --smc-reference optima > "$T/slog" 2> "$T/swarn"
awk 'NR==1{for(i=2;i<=NF;i++){ if($i=="z_MED") c=i-1; if($i=="LOG_Z") z=i-1; if($i=="N_BURN") b=i-1; if($i=="RHAT") h=i-1;
       if($i=="LOGP_TRUE") t=i-1 }}
     NR>1{ if(!($c>=0 && $c<=6) || !($z>-1e6 && $z<1e6) || !($b>=1) || $h!="nan" || !($t>-1e9 && $t<1e9)) {
       print "smc z_MED " $c " LOG_Z " $z " stages " $b " RHAT " $h " LOGP_TRUE " $t; exit 1}}' "$T/s_summary.txt"
if grep -q "fewer than 50 tau_max" "$T/swarn"; then echo "short-chain warning with smc"; exit 1; fi
# SMC from the prior reference (the default; no optimiser): runs; LOGP_MAX (the best particle) finite and LOG_Z
# finite; an unknown reference is refused; the HMC's LOGP_MAX is NaN
"$JADE" sed fit "${FIT[@]}" --catalogue "$T/cat.fits" --out "$T/sp" --sampler smc --walkers 16 --steps 2 --leapfrog 3 \
  --smc-mutations 2 --ridge-every 0 --smc-reference prior > /dev/null 2>&1
awk 'NR==1{for(i=2;i<=NF;i++){ if($i=="LOG_Z") z=i-1; if($i=="LOGP_MAX") m=i-1; if($i=="N_MODES") k=i-1 }}
     NR>1{ if(!($z>-1e6 && $z<1e6) || !($m>-1e9 && $m<1e9) || $k!=1) {print "smc prior LOG_Z " $z " LOGP_MAX " $m " N_MODES " $k; exit 1}}' \
  "$T/sp_summary.txt"
awk 'NR==1{for(i=2;i<=NF;i++) if($i=="LOGP_MAX") m=i-1} NR>1{ if($m!="nan") {print "hmc LOGP_MAX " $m; exit 1}}' "$T/h_summary.txt"
# two SMC runs per galaxy pooled by their evidence: LOGZ_SPREAD (max - min of the runs' log Z) finite and >= 0,
# NaN for one run; the pooled LOG_Z >= the single run's - log 2 (run 0 of the two is that run, and log mean Z of
# two runs >= log Z_0 - log 2); --smc-runs 0 refused. (Data rows have no "#": file 2's fields start at n - 1.)
"$JADE" sed fit "${FIT[@]}" --catalogue "$T/cat.fits" --out "$T/sp2" --sampler smc --walkers 16 --steps 2 --leapfrog 3 \
  --smc-mutations 2 --ridge-every 0 --smc-runs 2 > /dev/null 2>&1
awk 'NR==1{for(i=2;i<=NF;i++) if($i=="LOGZ_SPREAD") s=i-1} NR>1{ if($s!="nan") {print "one run: LOGZ_SPREAD " $s; exit 1}}' "$T/sp_summary.txt"
paste -d' ' "$T/sp_summary.txt" "$T/sp2_summary.txt" | awk 'NR==1{n=NF/2; for(i=2;i<=n;i++){ if($i=="LOGZ_SPREAD") s=i-1; if($i=="LOG_Z") z=i-1 }}
     NR>1{ sp=$(s+n-1); z1=$z; z2=$(z+n-1); if(!(sp>=0 && sp<1e6) || !(z2 >= z1 - log(2) - 1e-9)) {print "two runs: LOGZ_SPREAD " sp " LOG_Z " z2 " one run " z1; exit 1}}'
if "$JADE" sed fit "${FIT[@]}" --catalogue "$T/cat.fits" --out "$T/e" --sampler smc --smc-runs 0 2> "$T/err"; then
  echo "--smc-runs 0 accepted"; exit 1; fi
[ "$(wc -l < "$T/err")" = 1 ] && grep -q "smc-runs" "$T/err" && [ ! -e "$T/e_summary.txt" ]
if "$JADE" sed fit "${FIT[@]}" --catalogue "$T/cat.fits" --out "$T/e" --sampler smc --smc-reference flat 2> "$T/err"; then
  echo "--smc-reference flat accepted"; exit 1; fi
[ "$(wc -l < "$T/err")" = 1 ] && grep -q "flat" "$T/err" && [ ! -e "$T/e_summary.txt" ]
if "$JADE" sed fit "${FIT[@]}" --catalogue "$T/cat.fits" --out "$T/e" --sampler smc --temps 2 2> "$T/err"; then
  echo "smc with --temps accepted"; exit 1; fi
[ "$(wc -l < "$T/err")" = 1 ] && [ ! -e "$T/e_summary.txt" ]
if "$JADE" sed fit "${FIT[@]}" --catalogue "$T/cat.fits" --out "$T/e" --sampler gibbs 2> "$T/err"; then
  echo "--sampler gibbs accepted"; exit 1; fi
[ "$(wc -l < "$T/err")" = 1 ] && grep -q "gibbs" "$T/err"
# a catalogue without the flux columns: clear error, non-zero exit, no outputs
printf 'ID,x\n0,1\n' > "$T/bad.csv"
if "$JADE" sed fit "${FIT[@]}" --catalogue "$T/bad.csv" --out "$T/bad" 2> "$T/err"; then echo "bad catalogue accepted"; exit 1; fi
grep -q "bad.csv" "$T/err"
[ ! -e "$T/bad_summary.fits" ]
# convert-pt: a (fake, tests/data/popcosmos/make_fake_pt.py) published population model -> a
# jade prior that mock and fit load with --prior
D=${JADE_TEST_DATA:-$SRC/tests/data}/popcosmos
"$JADE" sed convert-pt "$D/fake_tanh.pt" --out "$T/conv.safetensors" > "$T/conv.log"
grep -q "3 Linear layers, 24 -> 2 x 8 -> 16" "$T/conv.log" && grep -q "VPSDE beta_min 0.1" "$T/conv.log"
"$JADE" sed mock --models "$M" --out "$T/cm.fits" --n 2 --source prior --prior "$T/conv.safetensors" --seed 3
test -s "$T/cm.fits"
# bad input: one line naming the file and what is missing, exit 1, nothing written
if "$JADE" sed convert-pt "$D/bad_missing.pt" --out "$T/bad.safetensors" 2> "$T/err"; then echo "bad .pt accepted"; exit 1; fi
[ "$(wc -l < "$T/err")" = 1 ] && grep -q "bad_missing.pt: population_model.model.NN.1.bias not found" "$T/err"
[ ! -e "$T/bad.safetensors" ] && ! ls "$T" | grep -q "bad.safetensors"
set +e; "$JADE" sed convert-pt --out "$T/bad.safetensors" 2> /dev/null; rc=$?; set -e
[ "$rc" = 2 ] || { echo "convert-pt without IN.pt: exit $rc"; exit 1; }
# distil-prior: a surrogate of that prior; fit with it and check it against the exact prior by
# importance weights (columns PRIOR_ESS, PRIOR_DZ, PRIOR_DLOGM); a second run reuses the labels
DIS=(--prior "$T/conv.safetensors" --n-train 200 --n-test 50 --label-tol 1e-4 --width 16 --layers 1 --steps 100)
"$JADE" sed distil-prior "${DIS[@]}" --out "$T/sur.safetensors" > "$T/dis.log"
cat "$T/dis.log"
test -s "$T/sur.safetensors.labels.npy" && grep -q "held-out error" "$T/dis.log"
"$JADE" sed distil-prior "${DIS[@]}" --out "$T/sur2.safetensors" --labels "$T/sur.safetensors.labels.npy" > "$T/dis2.log"
grep -q "(nan s per point)" "$T/dis2.log" || { echo "labels were not reused"; cat "$T/dis2.log"; exit 1; }
cmp "$T/sur.safetensors" "$T/sur2.safetensors"
"$JADE" sed fit "${FIT[@]}" --catalogue "$T/cat.fits" --out "$T/s" --prior "$T/sur.safetensors" \
  --prior-check "$T/conv.safetensors" --check-draws 8 --n-starts 2 --n-lm 5 --max-galaxies 2 > "$T/slog"
grep -q "surrogate prior vs exact" "$T/slog"
awk 'NR==1{for(i=2;i<=NF;i++) if($i=="PRIOR_ESS") c=i-1} NR>1{ if(!($c>0 && $c<=1)) {print "PRIOR_ESS " $c; exit 1}}' "$T/s_summary.txt"
# --prior-check needs a surrogate prior; a surrogate cannot draw mocks
if "$JADE" sed fit "${FIT[@]}" --catalogue "$T/cat.fits" --out "$T/bad" --prior-check "$T/conv.safetensors" 2> "$T/err"; then
  echo "--prior-check with the box prior accepted"; exit 1; fi
[ "$(wc -l < "$T/err")" = 1 ] && grep -q "needs a surrogate --prior" "$T/err"
if "$JADE" sed mock --models "$M" --out "$T/bad.fits" --n 2 --source prior --prior "$T/sur.safetensors" 2> "$T/err"; then
  echo "mock from a surrogate accepted"; exit 1; fi
[ "$(wc -l < "$T/err")" = 1 ] && [ ! -e "$T/bad.fits" ]
# blocks of one galaxy (with annealing stages): the same outputs with 2 MPI ranks; an
# interrupted run (the partial files of its first block only) resumes to the same outputs; a
# partial fit of other options is refused
FB=(--models "$M" --walkers 8 --steps 20 --burn 10 --n-init 64 --n-opt 20 --n-lm 5 --n-starts 2 --n-range 14,18
    --chain-thin 5 --block 1 --anneal 2 --anneal-iters 4 --catalogue "$T/cat.fits")
OMP_NUM_THREADS=1 "$JADE" sed fit "${FB[@]}" --out "$T/b1" > /dev/null 2>&1
ls "$T" | grep -q "b1_.*partial" && { echo "partial files left"; exit 1; }
if [ "${JADE_WITH_MPI:-0}" = 1 ] && command -v mpirun >/dev/null; then
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe \
    -np 2 "$JADE" sed fit "${FB[@]}" --out "$T/b2" > /dev/null 2>&1 || { echo "mpirun sed fit failed"; exit 1; }
  for f in summary.txt summary.npy chains.npy; do cmp "$T/b1_$f" "$T/b2_$f" || { echo "1 vs 2 ranks: $f differs"; exit 1; }; done
else
  echo "note: MPI not available, 2-rank check skipped"
fi
# a run stopped after its first block: keep only that block's rows (the others zeroed = not done)
OMP_NUM_THREADS=1 "$JADE" sed fit "${FB[@]}" --out "$T/b3" > /dev/null 2>&1 &
pid=$!
# the done flag of galaxy 0: the first float64 after the .npy header (10 + HEADER_LEN bytes)
flag0() {
  local f=$1 hl
  [ -s "$f" ] || { echo 0; return; }
  hl=$(od -A n -t u2 -j 8 -N 2 "$f" | tr -d ' ')
  od -A n -t f8 -j $((10 + hl)) -N 8 "$f" | tr -d ' '
}
for i in $(seq 1 1200); do
  [ "$(flag0 "$T/b3_summary.partial.npy")" = 1 ] && break
  sleep 0.05
done
kill -9 $pid 2> /dev/null; wait $pid 2> /dev/null || true
if [ -e "$T/b3_summary.partial.npy" ]; then
  echo "resuming a fit stopped with galaxy 0 done (flag $(flag0 "$T/b3_summary.partial.npy"))"
  OMP_NUM_THREADS=1 "$JADE" sed fit "${FB[@]}" --out "$T/b3" > /dev/null 2>&1
  for f in summary.txt summary.npy chains.npy; do cmp "$T/b1_$f" "$T/b3_$f" || { echo "resumed fit: $f differs"; exit 1; }; done
else
  echo "note: the fit finished before it could be interrupted"
fi
# the HTML report of a fit: table, truths figure, a corner plot and photometry per galaxy
mkdir "$T/rep" && cp "$T"/b1_summary.fits "$T"/b1_chains.npy "$T/rep/"
"$JADE" report "$T/rep" --catalogue "$T/cat.fits" --models "$M" --quiet
for f in report.html sed_truth.png sed_galaxy0.png sed_galaxy2.png; do test -s "$T/rep/$f" || { echo "report: $f missing"; exit 1; }; done
[ "$(grep -o 'data:image/png;base64' "$T/rep/report.html" | wc -l)" = 4 ] || { echo "report: expected 4 figures"; exit 1; }
grep -q "coverage of the true z" "$T/rep/report.html"
# a partial fit made with other options: refused with one line naming the file
printf 'other\n' > "$T/b4_fit.partial.txt"
if "$JADE" sed fit "${FB[@]}" --out "$T/b4" 2> "$T/err"; then echo "foreign partial fit accepted"; exit 1; fi
[ "$(wc -l < "$T/err")" = 1 ] && grep -q "b4_fit.partial.txt: a partial fit with other options" "$T/err"
echo ok
