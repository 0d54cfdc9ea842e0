#!/usr/bin/env bash
# Regression tests (issue 10) for faults of the readers reached through the CLI, each input
# used to crash, over-read or be accepted silently:
# - an mcmc state file whose record size x chain count wraps (over-read on resume);
# - kappa of 3e38 in training data (non-finite in network units);
# - an edited normalisation in a training state (resumed with it);
# - Omega_b = 0, --seed " -1", a FIFO as --config, a --set value with '#'.
# Each must give a one-line error, a non-zero exit, no sanitizer report and no output.
set -u
JADE=${JADE:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
export OMP_NUM_THREADS=2
check() { if ! eval "$1"; then echo "FAILED: $2"; fail=1; fi; }
# bad WHAT PATTERN cmd...: non-zero exit (not a signal), one stderr line matching PATTERN,
# nothing at $T/bad or $T/bad.partial
bad() {
  local what=$1 pat=$2; shift 2
  local out rc lines
  out=$(timeout 120 "$JADE" "$@" 2>&1 >/dev/null); rc=$?
  lines=$(printf '%s\n' "$out" | grep -c .)
  if [ $rc = 0 ] || [ $rc -ge 124 ] || [ "$lines" != 1 ] || ! printf '%s' "$out" | grep -q -- "$pat"; then
    echo "FAILED: $what: rc=$rc, stderr: $out"; fail=1
  fi
  if [ -e "$T/bad" ] || [ -e "$T/bad.partial" ]; then echo "FAILED: $what left output"; fail=1; rm -rf "$T"/bad*; fi
  printf '  %-30s -> %s\n' "$what" "$out"
}
# put_hex FILE OFFSET HEX: overwrite bytes in place
put_hex() { printf "$(printf '%s' "$3" | sed 's/../\\x&/g')" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
G=(--set n_pix=8 --set n_bins=2)

# ---- configuration and options: refused before any output exists
bad "Omega_b = 0" "Omega_b" simulate "${G[@]}" --n 2 --set Omega_b=0 --out "$T/bad"
bad "--seed ' -1'" "seed" simulate "${G[@]}" --n 2 --seed " -1" --out "$T/bad"
bad "--seed -1 (validate)" "seed" validate --model "$T/none" --data "$T/none" --seed -1 --out "$T/bad"
mkfifo "$T/fifo.ini"
bad "FIFO as --config" "not a regular file" simulate --config "$T/fifo.ini" --n 2 --out "$T/bad"
bad "--set value with '#'" "#" simulate "${G[@]}" --n 2 --set "sigma_e=0.26#x" --out "$T/bad"
bad "prior with junk" "prior_h" simulate "${G[@]}" --n 2 --set "prior_h=normal 0.7 0.06 x" --out "$T/bad"
bad "1e-400" "underflows" simulate "${G[@]}" --n 2 --set "sigma_z=1e-400" --out "$T/bad"

# ---- mcmc: a state file whose rec_size x n_chains wraps to 8 bytes
"$JADE" observe "${G[@]}" --seed 1 --out "$T/obs.fits" 2>/dev/null || { echo "observe failed"; exit 1; }
M=(mcmc "${G[@]}" --obs "$T/obs.fits" --free sigma_8,Omega_c --chains 3 --warmup 6 --samples 4 --seed 4 --quiet)
"$JADE" "${M[@]}" --out "$T/mc" --max-iterations 2 --checkpoint 1; rc=$?
check "[ $rc = 3 ] && [ -s $T/mc.partial/state.bin ]" "interrupted mcmc: rc=$rc, no state.bin"
cp -r "$T/mc.partial" "$T/mc_ok.partial"
# header: "JADEMCS1" then int64 n_chains (= 3), rec_size at byte 16: 0x5555555555555558 x 3 = 2^64 + 8
put_hex "$T/mc.partial/state.bin" 16 5855555555555555
bad "mcmc state: wrapped size" "state" "${M[@]}" --out "$T/mc"
check "[ -d $T/mc.partial ] && [ ! -e $T/mc ]" "a refused resume must keep the partial run and write nothing"
# a truncated state (one record short)
cp "$T/mc_ok.partial/state.bin" "$T/st"
head -c $(( $(stat -c %s "$T/st") - 8 )) "$T/st" > "$T/mc.partial/state.bin"
bad "mcmc state: truncated" "state" "${M[@]}" --out "$T/mc"
# (a truth map of another NAXIS2: tests/test_readers.c, through jade_observation_read_truth)

# ---- train: kappa of 3e38; an edited normalisation in the state
"$JADE" simulate "${G[@]}" --n 4 --seed 2 --quiet --out "$T/data" || { echo "simulate failed"; exit 1; }
TINY=(--set model.patch=4 --set model.depth=1 --set model.width=16 --set model.heads=1 --set model.n_cosmo_tokens=2
      --set model.bottleneck=8 --set model.time_freq=8 --set train.batch=2 --set train.micro_batch=2 --set train.warmup=1
      --set train.val_fraction=0.5 --set train.checkpoint_every=1 --quiet)
cp -r "$T/data" "$T/big"
k="$T/big/kappa.npy"
put_hex "$k" $(( $(stat -c %s "$k") - 4 * 2 * 8 * 8 )) e6b1617f   # first pixel of the last map: 3e38
bad "kappa of 3e38" "kappa.npy" train --data "$T/big" "${TINY[@]}" --steps 2 --out "$T/bad"
"$JADE" train --data "$T/data" "${TINY[@]}" --steps 4 --stop-after 2 --out "$T/m"; rc=$?
check "[ $rc = 3 ] && [ -s $T/m/state.safetensors ]" "train --stop-after: rc=$rc"
cp -r "$T/m" "$T/m_ok"
s="$T/m/state.safetensors"
off=$(grep -a -b -o '"norm.map_std":"0\.' "$s" | head -1 | cut -d: -f1)
if [ -n "$off" ]; then
  printf '1' | dd of="$s" bs=1 seek=$(( off + 16 )) conv=notrunc status=none   # 0.00xx -> 1.00xx
  out=$("$JADE" train --data "$T/data" "${TINY[@]}" --steps 4 --out "$T/m" --resume 2>&1 >/dev/null); rc=$?
  check "[ $rc != 0 ] && [ $rc -lt 124 ] && printf '%s' \"\$out\" | grep -q normalisation" "edited normalisation accepted: rc=$rc: $out"
  printf '  %-30s -> %s\n' "edited normalisation" "$out"
  # the unedited state resumes (the recomputed normalisation equals the saved one)
  "$JADE" train --data "$T/data" "${TINY[@]}" --steps 4 --out "$T/m_ok" --resume || { echo "FAILED: resume of an intact state"; fail=1; }
else
  echo "FAILED: no norm.map_std in $s"; fail=1
fi
exit $fail
