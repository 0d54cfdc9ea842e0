#!/usr/bin/env bash
# Bad input for every jade command and every file it reads (issue 10, item 4): missing, empty,
# truncated, wrong magic, sizes declared beyond the file, NaN/Inf values, out-of-range
# options, unknown keys/options, unwritable outputs, output equal to an input, outputs that
# exist. Each case must give exactly one line on stderr that names the file / key / value,
# exit with 1 or 2 (not a crash; under ASan/UBSan a report would add lines), and leave every
# file under the test folder as it was (nothing new, nothing changed: no partial output).
# A few "good" cases check that the fixes did not refuse legitimate input.
set -u
JADE=${JADE:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=1
F=$T/f # fixtures
O=$T/o # outputs of the cases (must stay empty)
mkdir -p "$F" "$O"
fail=0
n_cases=0

# ---- fixtures: tiny dataset, model, observations and outputs (a few seconds in all) ----
die() { echo "fixture failed: $*"; exit 1; }
"$JADE" simulate --n 8 --seed 5 --set n_pix=16 --quiet --out "$F/data" || die simulate
TINY=(--set model.patch=4 --set model.depth=1 --set model.width=32 --set model.heads=2 --set model.n_cosmo_tokens=2
      --set model.bottleneck=16 --set train.batch=4 --set train.micro_batch=4 --set train.warmup=1
      --set train.val_fraction=0.25 --set train.log_every=1 --set train.val_every=2 --set train.checkpoint_every=2 --quiet)
"$JADE" train --data "$F/data" "${TINY[@]}" --steps 4 --out "$F/m" || die train
"$JADE" observe --seed 3 --set n_pix=16 --out "$F/obs.fits" 2>/dev/null || die observe
"$JADE" sample --model "$F/m" --obs "$F/obs.fits" --draws 2 --steps 2 --quiet --out "$F/s" || die sample
"$JADE" observe --seed 1 --set n_pix=8 --set n_bins=2 --out "$F/o8.fits" 2>/dev/null || die observe
MC=(--set n_pix=8 --set n_bins=2 --free sigma_8 --chains 1 --warmup 4 --samples 4 --quiet)
"$JADE" mcmc "${MC[@]}" --obs "$F/o8.fits" --out "$F/mc" || die mcmc
VAL=(--n-obs 2 --draws 2 --steps 1 --batch 2 --bootstrap 2 --quiet)
cp "$JADE_SOURCE_DIR/configs/small.ini" "$F/small.ini"

# configs
: > "$F/empty.ini"
head -c 700 "$F/small.ini" > "$F/trunc.ini"                  # cut in the middle of the file
head -c 3000 /dev/urandom > "$F/garbage.ini"
sed 's/^sigma_8 = .*/sigma_8 = nan/' "$F/small.ini" > "$F/nan.ini"
sed 's/^h = .*/h = inf/' "$F/small.ini" > "$F/inf.ini"
sed 's/^n_gal = .*/n_gal = -3/' "$F/small.ini" > "$F/range.ini"
{ cat "$F/small.ini"; echo "[train]"; echo "lr_pek = 1e-3"; } > "$F/unknown.ini"
{ echo "sigma8 = 0.8"; cat "$F/small.ini"; } > "$F/typo.ini"
mkdir "$F/dir.ini"

# npy edits: replace text in the 128-byte header (same total length), patch data bytes
npy_hdr() { # FILE SED-EXPR OUT
  { head -c 128 "$1" | LC_ALL=C sed -E "$2"; tail -c +129 "$1"; } > "$3"
}
patch_bytes() { # FILE OFFSET OCTAL-ESCAPES
  printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
dcopy() { mkdir -p "$F/$1"; cp "$F"/data/* "$F/$1/"; }
dcopy d_notheta; rm "$F/d_notheta/theta.npy"
dcopy d_empty; : > "$F/d_empty/theta.npy"
dcopy d_trunc; head -c 200 "$F/data/kappa.npy" > "$F/d_trunc/kappa.npy"
dcopy d_magic; patch_bytes "$F/d_magic/theta.npy" 1 'NUMPX'
dcopy d_beyond; npy_hdr "$F/data/theta.npy" 's/\(8, 6\)/(9, 6)/' "$F/d_beyond/theta.npy"
dcopy d_huge; npy_hdr "$F/data/kappa.npy" 's/\(8, 5, 16, 16\), \} {14}/(8, 5, 16, 1600000000000000), }/' "$F/d_huge/kappa.npy"
dcopy d_shape; npy_hdr "$F/data/kappa.npy" 's/\(8, 5, 16, 16\)/(8, 5, 16, 32)/' "$F/d_shape/kappa.npy"
head -c $((8 * 5 * 16 * 16 * 4)) /dev/zero >> "$F/d_shape/kappa.npy"
dcopy d_n8; npy_hdr "$F/data/kappa.npy" 's/\(8, 5, 16, 16\), \}/(8, 5, 8, 8), }  /' "$F/d_n8/kappa.npy"
truncate -s $((128 + 8 * 5 * 8 * 8 * 4)) "$F/d_n8/kappa.npy"
dcopy d_nantheta; patch_bytes "$F/d_nantheta/theta.npy" $((128 + 8 * 9)) '\0\0\0\0\0\0\370\177'   # NaN
dcopy d_infkappa; patch_bytes "$F/d_infkappa/kappa.npy" $((128 + 4 * 77)) '\0\0\200\177'      # +Inf
dcopy d_negnoise; patch_bytes "$F/d_negnoise/noise.npy" 128 '\0\0\0\0\0\0\360\277'            # -1.0
dcopy d_nannoise; patch_bytes "$F/d_nannoise/noise.npy" 136 '\0\0\0\0\0\0\370\177'
dcopy d_otherkappa; patch_bytes "$F/d_otherkappa/kappa.npy" $((128 + 4 * 1000)) '\1'          # same theta, one map differs
mkdir "$F/d_nodir_files"

# models
m_copy() { mkdir -p "$F/$1"; cp "$F"/m/* "$F/$1/"; }
: > "$F/empty.safetensors"
head -c 1000 "$F/m/model.safetensors" > "$F/trunc.safetensors"
cp "$F/m/model.safetensors" "$F/beyond.safetensors"; patch_bytes "$F/beyond.safetensors" 0 '\377\377\377\377\377\0\0\0'
cp "$F/m/model.safetensors" "$F/garbled.safetensors"; patch_bytes "$F/garbled.safetensors" 20 'XXXX'
m_copy m_nostate; rm "$F/m_nostate/state.safetensors"
m_copy m_editnorm; LC_ALL=C sed -i 's/"norm.map_std":"0.00238/"norm.map_std":"0.00239/' "$F/m_editnorm/state.safetensors"
m_copy m_oldstate; LC_ALL=C sed -i 's/"data.hash"/"data.hask"/' "$F/m_oldstate/state.safetensors"

# FITS edits: drop CHECKSUM / DATASUM (so the edit is what the reader sees), then edit cards
fits_edit() { # FILE SED-EXPR OUT
  LC_ALL=C sed -E -e "s/CHECKSUM= .{70}/COMMENT $(printf '%72s')/g" -e "s/DATASUM = .{70}/COMMENT $(printf '%72s')/g" \
    -e "$2" "$1" > "$3"
}
: > "$F/empty.fits"
head -c 4000 "$F/obs.fits" > "$F/trunc.fits"
printf 'SIMPLE  =                    T' > "$F/short.fits"
cp "$F/obs.fits" "$F/magic.fits"; patch_bytes "$F/magic.fits" 0 'SIMPLX'
fits_edit "$F/obs.fits" 's/(NOISE0  = )-?[0-9.]{8}/\1-0.00597/g' "$F/negnoise.fits"
fits_edit "$F/obs.fits" 's/(NAXIS1  = {18}) 16/\1 96/; s/(NAXIS2  = {18}) 16/\1 96/' "$F/beyond.fits" # GAMMA1: 96 x 96
fits_edit "$F/obs.fits" 's/(SIZEDEG = )[ 0-9.]{20}/\1                 nan/g' "$F/nansize.fits"
# a NaN pixel in GAMMA1: its data begin at the first 2880-byte block after its END card
fits_edit "$F/obs.fits" 's/^//' "$F/nanpix.fits"
end2=$(LC_ALL=C grep -boaE 'END {77}' "$F/nanpix.fits" | sed -n 2p | cut -d: -f1)
patch_bytes "$F/nanpix.fits" $(( (end2 + 80 + 2879) / 2880 * 2880 + 4 * 40 )) '\177\300\0\0'
cp "$F/obs.fits" "$F/notruth.fits"
cp "$F/o8.fits" "$F/o8_badtruth.fits"; cp "$F/obs_truth.fits" "$F/o8_badtruth_truth.fits" # truth of another geometry

# mcmc: an interrupted run whose state file is then truncated
"$JADE" mcmc "${MC[@]}" --obs "$F/o8.fits" --max-iterations 3 --checkpoint 1 --out "$F/mcp"; rc=$?
[ $rc = 3 ] && [ -s "$F/mcp.partial/state.bin" ] || die "mcmc --max-iterations (rc $rc)"
truncate -s $(( $(stat -c %s "$F/mcp.partial/state.bin") / 2 )) "$F/mcp.partial/state.bin"
# simulate: an interrupted run whose kappa.npy is then truncated
"$JADE" simulate --n 8 --seed 5 --set n_pix=16 --chunk 2 --max-chunks 1 --quiet --out "$F/sp"; rc=$?
[ $rc = 3 ] || die "simulate --max-chunks (rc $rc)"
truncate -s 1000 "$F/sp.partial/kappa.npy"

# ---- the table ----
# every path; size, time and mode of files (a directory's time changes when a temporary
# inside it comes and goes: only what is left counts)
snap() { find "$T" \( -type d -printf '%P/\n' \) -o -printf '%P %s %T@ %m\n' | LC_ALL=C sort; }
# bad NAME PATTERN jade-args...: PATTERN (fixed string) must appear in the one-line message.
# SNAP caches the snapshot after the last case; anything else that changes files resets it.
SNAP=
bad() {
  local name=$1 pat=$2; shift 2
  n_cases=$((n_cases + 1))
  local before after err rc lines why=""
  before=${SNAP:-$(snap)}
  err=$("$JADE" "$@" 2>&1 >"${BAD_STDOUT:-/dev/null}"); rc=$?
  after=$(snap)
  lines=$(printf '%s' "$err" | grep -c '')
  [ $rc = 1 ] || [ $rc = 2 ] || why+=" exit code $rc;"
  [ "$lines" = 1 ] || why+=" $lines lines on stderr;"
  printf '%s' "$err" | grep -qF -- "$pat" || why+=" message does not name '$pat';"
  if [ "$before" != "$after" ]; then
    why+=" files changed: $(diff <(echo "$before") <(echo "$after") | grep '^[<>]' | head -4 | tr '\n' ' ')"
    # remove what the case created, so later cases start from the fixtures
    comm -13 <(echo "$before" | cut -d' ' -f1 | LC_ALL=C sort) <(echo "$after" | cut -d' ' -f1 | LC_ALL=C sort) | sort -r | while read -r p; do
      rm -rf "${T:?}/$p"; done
    SNAP=
  else
    SNAP=$after
  fi
  if [ -n "$why" ]; then
    echo "FAILED: $name:$why"
    printf '%s\n' "$err" | head -20 | sed 's/^/    /'
    fail=1
  else
    printf '  %-44s -> %s\n' "$name" "$err"
  fi
}
# good NAME FILE jade-args...: must succeed and create FILE
good() {
  local name=$1 file=$2; shift 2
  n_cases=$((n_cases + 1))
  SNAP=
  local err rc
  err=$("$JADE" "$@" 2>&1 >/dev/null); rc=$?
  if [ $rc != 0 ] || [ ! -e "$file" ]; then
    echo "FAILED: $name: exit code $rc, $file $( [ -e "$file" ] && echo exists || echo missing)"
    printf '%s\n' "$err" | head -20 | sed 's/^/    /'
    fail=1
  else
    printf '  %-44s -> ok\n' "$name"
  fi
}

echo "== options and configs (every command) =="
for cmd in cosmo simulate observe train sample validate report mcmc model; do
  bad "$cmd: unknown option" "--frobnicate" $cmd --frobnicate
done
bad "no command" "unknown command 'frob'" frob
bad "cosmo: what" "pk, cl, shift" cosmo power
bad "cosmo: missing config" "$F/none.ini" cosmo pk --config "$F/none.ini"
bad "cosmo: empty config" "$F/empty.ini" cosmo pk --config "$F/empty.ini"
bad "cosmo: truncated config" "$F/trunc.ini" cosmo pk --config "$F/trunc.ini"
bad "cosmo: binary config" "$F/garbage.ini" cosmo pk --config "$F/garbage.ini"
bad "cosmo: config is a directory" "$F/dir.ini" cosmo pk --config "$F/dir.ini"
bad "cosmo: NaN value" "sigma_8" cosmo pk --config "$F/nan.ini"
bad "cosmo: Inf value" "'h'" cosmo pk --config "$F/inf.ini"
bad "cosmo: out-of-range value" "n_gal" cosmo cl --config "$F/range.ini"
bad "cosmo: unknown key" "sigma8" cosmo pk --set sigma8=0.8
bad "cosmo: --set without =" "h" cosmo pk --set h
bad "cosmo: --z -1" "--z" cosmo pk --z -1
bad "cosmo: --k-min nan" "--k-min" cosmo pk --k-min nan
bad "cosmo: --k-max < --k-min" "--k-max" cosmo pk --k-min 1 --k-max 0.1
bad "cosmo: --n-k 0" "--n-k" cosmo pk --n-k 0
bad "cosmo: --ell-max inf" "--ell-max" cosmo cl --ell-max inf
bad "cosmo: --pixel x" "--pixel" cosmo shift --pixel x
BAD_STDOUT=/dev/full bad "cosmo: stdout on a full disk" "writing the output" cosmo pk --n-k 10000

echo "== simulate =="
bad "simulate: no --out" "--out" simulate --n 2
bad "simulate: --n 0" "--n" simulate --n 0 --out "$O/x"
bad "simulate: --n 1e3" "--n" simulate --n 1e3 --out "$O/x"
bad "simulate: --chunk 0" "--chunk" simulate --n 2 --chunk 0 --out "$O/x"
bad "simulate: --seed x" "--seed" simulate --n 2 --seed x --out "$O/x"
bad "simulate: unknown key in the file" "sigma8" simulate --n 2 --config "$F/typo.ini" --out "$O/x"
good "simulate: ignores [train] (other commands' keys)" "$O/x/theta.npy" simulate --n 2 --set n_pix=16 --config "$F/unknown.ini" --quiet --out "$O/x"
rm -rf "$O/x"
bad "simulate: NaN config value" "sigma_8" simulate --n 2 --config "$F/nan.ini" --out "$O/x"
bad "simulate: existing --out" "$F/data" simulate --n 2 --set n_pix=16 --out "$F/data"
bad "simulate: --out = --config" "$F/small.ini" simulate --n 2 --config "$F/small.ini" --out "$F/small.ini"
bad "simulate: unwritable --out" "/proc/jade_x" simulate --n 2 --out /proc/jade_x
bad "simulate: --out under a file" "$F/small.ini" simulate --n 2 --out "$F/small.ini/x"
bad "simulate: other run's partial" "$F/sp.partial" simulate --n 8 --seed 6 --set n_pix=16 --out "$F/sp"
bad "simulate: truncated partial kappa.npy" "$F/sp.partial/kappa.npy" simulate --n 8 --seed 5 --set n_pix=16 --chunk 2 --out "$F/sp"
bad "simulate: Omega_b = 0 (fails at simulation 0)" "Omega_b" simulate --n 2 --set Omega_b=0 --set n_pix=16 --fixed --out "$O/x"
good "simulate: --out DIR/ (trailing slash)" "$O/slash/theta.npy" simulate --n 2 --set n_pix=16 --quiet --out "$O/slash/"
rm -rf "$O/slash"

echo "== observe =="
bad "observe: no --out" "--out" observe
bad "observe: existing --out" "$F/obs.fits" observe --set n_pix=16 --out "$F/obs.fits"
cp "$F/obs_truth.fits" "$F/lonely_truth.fits"; SNAP=
bad "observe: existing truth" "$F/lonely_truth.fits" observe --out "$F/lonely.fits"
bad "observe: --out = --config" "$F/small.ini" observe --config "$F/small.ini" --out "$F/small.ini"
bad "observe: unwritable --out" "/proc/jade_x.fits" observe --out /proc/jade_x.fits
bad "observe: --out is a directory" "$F/data" observe --out "$F/data"
bad "observe: --seed -1" "--seed" observe --seed -1 --out "$O/x.fits"
bad "observe: bad prior" "prior_h" observe --out "$O/x.fits" --set "prior_h=normal 0.7 -1"
cp "$F/obs.fits" "$O/force.fits"; SNAP=
good "observe: --force overwrites" "$O/force_truth.fits" observe --set n_pix=16 --seed 9 --force --out "$O/force.fits"
rm -f "$O"/force*

echo "== train: dataset files =="
TR=(train "${TINY[@]}" --steps 2)
bad "train: no --data" "--data" "${TR[@]}" --out "$O/x"
bad "train: missing --data" "$F/none" "${TR[@]}" --data "$F/none" --out "$O/x"
bad "train: empty dataset dir" "$F/d_nodir_files/theta.npy" "${TR[@]}" --data "$F/d_nodir_files" --out "$O/x"
bad "train: no theta.npy" "$F/d_notheta/theta.npy" "${TR[@]}" --data "$F/d_notheta" --out "$O/x"
bad "train: empty theta.npy" "$F/d_empty/theta.npy" "${TR[@]}" --data "$F/d_empty" --out "$O/x"
bad "train: truncated kappa.npy" "$F/d_trunc/kappa.npy" "${TR[@]}" --data "$F/d_trunc" --out "$O/x"
bad "train: wrong magic" "$F/d_magic/theta.npy" "${TR[@]}" --data "$F/d_magic" --out "$O/x"
bad "train: shape beyond the file" "$F/d_beyond/theta.npy" "${TR[@]}" --data "$F/d_beyond" --out "$O/x"
bad "train: shape beyond memory" "$F/d_huge/kappa.npy" "${TR[@]}" --data "$F/d_huge" --out "$O/x"
bad "train: kappa.npy not (N, bins, n, n)" "$F/d_shape/kappa.npy" "${TR[@]}" --data "$F/d_shape" --out "$O/x"
bad "train: maps of another n_pix" "n_pix" "${TR[@]}" --data "$F/d_n8" --out "$O/x"
bad "train: NaN in theta.npy" "$F/d_nantheta/theta.npy" "${TR[@]}" --data "$F/d_nantheta" --out "$O/x"
bad "train: Inf in kappa.npy" "$F/d_infkappa/kappa.npy" "${TR[@]}" --data "$F/d_infkappa" --out "$O/x"
bad "train: negative noise" "$F/d_negnoise/noise.npy" "${TR[@]}" --data "$F/d_negnoise" --out "$O/x"
bad "train: NaN noise" "$F/d_nannoise/noise.npy" "${TR[@]}" --data "$F/d_nannoise" --out "$O/x"
echo "== train: options and outputs =="
bad "train: --steps 0" "--steps" "${TR[@]}" --data "$F/data" --steps 0 --out "$O/x"
bad "train: --workers 65" "--workers" "${TR[@]}" --data "$F/data" --workers 65 --out "$O/x"
bad "train: unknown [train] key" "train.lr_pek" "${TR[@]}" --data "$F/data" --set train.lr_pek=1 --out "$O/x"
bad "train: NaN [train] value" "train.lr_peak" "${TR[@]}" --data "$F/data" --set train.lr_peak=nan --out "$O/x"
bad "train: --out = --data" "$F/data" "${TR[@]}" --data "$F/data" --out "$F/data"
bad "train: --out = --data/" "$F/data" "${TR[@]}" --data "$F/data" --out "$F/data/"
bad "train: existing --out" "$F/s" "${TR[@]}" --data "$F/data" --out "$F/s"
bad "train: unwritable --out" "/proc/jade_x" "${TR[@]}" --data "$F/data" --out /proc/jade_x
bad "train: --resume, no such dir" "$O/none" "${TR[@]}" --data "$F/data" --resume --out "$O/none"
bad "train: --resume, no state" "$F/m_nostate" "${TR[@]}" --data "$F/data" --steps 4 --resume --out "$F/m_nostate"
bad "train: --resume into a non-model dir" "$F/s" "${TR[@]}" --data "$F/data" --resume --out "$F/s"
bad "train: --resume, other maps" "different dataset" "${TR[@]}" --data "$F/d_otherkappa" --steps 4 --resume --out "$F/m"
bad "train: --resume, edited normalisation" "$F/m_editnorm/state.safetensors" "${TR[@]}" --data "$F/data" --steps 4 --resume --out "$F/m_editnorm"
bad "train: --resume, state without data.hash" "data.hash" "${TR[@]}" --data "$F/data" --steps 4 --resume --out "$F/m_oldstate"
bad "train: --resume, other config" "train.lr_peak" "${TR[@]}" --data "$F/data" --steps 4 --set train.lr_peak=1e-2 --resume --out "$F/m"
bad "train: --init-from missing" "$F/none" "${TR[@]}" --data "$F/data" --steps 4 --init-from "$F/none" --out "$O/x"
bad "train: --init-from other network" "network differs" "${TR[@]}" --data "$F/data" --steps 4 --set model.depth=2 --init-from "$F/m" --out "$O/x"

echo "== model =="
bad "model: missing file" "$F/none" model "$F/none"
bad "model: not a model" "$F/garbage.ini" model "$F/garbage.ini"
bad "model: --dtype" "'f8'" model "$F/m" --out "$O/x.safetensors" --dtype f8
bad "model: --out exists" "$F/m/model.safetensors" model "$F/m" --out "$F/m/model.safetensors"

echo "== sample =="
SA=(sample --draws 2 --steps 2)
bad "sample: no --model" "--model" "${SA[@]}" --obs "$F/obs.fits" --out "$O/x"
bad "sample: missing model" "$F/none.safetensors" "${SA[@]}" --model "$F/none.safetensors" --obs "$F/obs.fits" --out "$O/x"
bad "sample: empty model" "$F/empty.safetensors" "${SA[@]}" --model "$F/empty.safetensors" --obs "$F/obs.fits" --out "$O/x"
bad "sample: truncated model" "$F/trunc.safetensors" "${SA[@]}" --model "$F/trunc.safetensors" --obs "$F/obs.fits" --out "$O/x"
bad "sample: header beyond the file" "$F/beyond.safetensors" "${SA[@]}" --model "$F/beyond.safetensors" --obs "$F/obs.fits" --out "$O/x"
bad "sample: garbled model" "$F/garbled.safetensors" "${SA[@]}" --model "$F/garbled.safetensors" --obs "$F/obs.fits" --out "$O/x"
bad "sample: dir without a model" "$F/data" "${SA[@]}" --model "$F/data" --obs "$F/obs.fits" --out "$O/x"
bad "sample: missing obs" "$F/none.fits" "${SA[@]}" --model "$F/m" --obs "$F/none.fits" --out "$O/x"
bad "sample: empty obs" "$F/empty.fits" "${SA[@]}" --model "$F/m" --obs "$F/empty.fits" --out "$O/x"
bad "sample: truncated obs" "$F/trunc.fits" "${SA[@]}" --model "$F/m" --obs "$F/trunc.fits" --out "$O/x"
bad "sample: short obs" "$F/short.fits" "${SA[@]}" --model "$F/m" --obs "$F/short.fits" --out "$O/x"
bad "sample: wrong magic obs" "$F/magic.fits" "${SA[@]}" --model "$F/m" --obs "$F/magic.fits" --out "$O/x"
bad "sample: obs NAXIS2 beyond the file" "$F/beyond.fits" "${SA[@]}" --model "$F/m" --obs "$F/beyond.fits" --out "$O/x"
bad "sample: NaN pixel" "$F/nanpix.fits" "${SA[@]}" --model "$F/m" --obs "$F/nanpix.fits" --out "$O/x"
bad "sample: NaN SIZEDEG" "SIZEDEG" "${SA[@]}" --model "$F/m" --obs "$F/nansize.fits" --out "$O/x"
bad "sample: negative noise" "NOISE0" "${SA[@]}" --model "$F/m" --obs "$F/negnoise.fits" --out "$O/x"
bad "sample: negative noise, --ignore-noise" "NOISE0" "${SA[@]}" --model "$F/m" --obs "$F/negnoise.fits" --ignore-noise --out "$O/x"
bad "sample: other geometry" "$F/o8.fits" "${SA[@]}" --model "$F/m" --obs "$F/o8.fits" --out "$O/x"
bad "sample: --draws 0" "--draws" "${SA[@]}" --model "$F/m" --obs "$F/obs.fits" --draws 0 --out "$O/x"
bad "sample: --steps x" "--steps" "${SA[@]}" --model "$F/m" --obs "$F/obs.fits" --steps x --out "$O/x"
bad "sample: --batch -1" "--batch" "${SA[@]}" --model "$F/m" --obs "$F/obs.fits" --batch -1 --out "$O/x"
bad "sample: unknown [sample] key" "sample.drawz" "${SA[@]}" --model "$F/m" --obs "$F/obs.fits" --set sample.drawz=3 --out "$O/x"
bad "sample: --config missing" "$F/none.ini" "${SA[@]}" --model "$F/m" --obs "$F/obs.fits" --config "$F/none.ini" --out "$O/x"
bad "sample: existing --out" "$F/s" "${SA[@]}" --model "$F/m" --obs "$F/obs.fits" --out "$F/s"
bad "sample: --out = --obs" "$F/obs.fits" "${SA[@]}" --model "$F/m" --obs "$F/obs.fits" --out "$F/obs.fits"
bad "sample: --out = --model" "$F/m" "${SA[@]}" --model "$F/m" --obs "$F/obs.fits" --out "$F/m/"
bad "sample: unwritable --out" "/proc/jade_x" "${SA[@]}" --model "$F/m" --obs "$F/obs.fits" --out /proc/jade_x
bad "sample: --out under a file" "$F/obs.fits" "${SA[@]}" --model "$F/m" --obs "$F/obs.fits" --out "$F/obs.fits/x"
good "sample: '[' and '!' in --out" "$O/a[1]!b/maps.fits" "${SA[@]}" --model "$F/m" --obs "$F/obs.fits" --quiet --out "$O/a[1]!b"
rm -rf "$O/a[1]!b"

echo "== validate =="
VA=(validate "${VAL[@]}")
bad "validate: no --data" "--data" "${VA[@]}" --model "$F/m" --out "$O/x"
bad "validate: missing model" "$F/none" "${VA[@]}" --model "$F/none" --data "$F/data" --out "$O/x"
bad "validate: truncated model" "$F/trunc.safetensors" "${VA[@]}" --model "$F/trunc.safetensors" --data "$F/data" --out "$O/x"
bad "validate: missing data" "$F/none" "${VA[@]}" --model "$F/m" --data "$F/none" --out "$O/x"
bad "validate: no theta.npy" "$F/d_notheta/theta.npy" "${VA[@]}" --model "$F/m" --data "$F/d_notheta" --out "$O/x"
bad "validate: truncated kappa.npy" "$F/d_trunc/kappa.npy" "${VA[@]}" --model "$F/m" --data "$F/d_trunc" --out "$O/x"
bad "validate: wrong magic" "$F/d_magic/theta.npy" "${VA[@]}" --model "$F/m" --data "$F/d_magic" --out "$O/x"
bad "validate: shape beyond the file" "$F/d_beyond/theta.npy" "${VA[@]}" --model "$F/m" --data "$F/d_beyond" --out "$O/x"
bad "validate: shape beyond memory" "$F/d_huge/kappa.npy" "${VA[@]}" --model "$F/m" --data "$F/d_huge" --out "$O/x"
bad "validate: NaN in theta.npy" "$F/d_nantheta/theta.npy" "${VA[@]}" --model "$F/m" --data "$F/d_nantheta" --out "$O/x"
bad "validate: Inf in kappa.npy" "$F/d_infkappa/kappa.npy" "${VA[@]}" --model "$F/m" --data "$F/d_infkappa" --out "$O/x"
bad "validate: negative noise, --ignore-noise" "$F/d_negnoise/noise.npy" "${VA[@]}" --model "$F/m" --data "$F/d_negnoise" --ignore-noise --out "$O/x"
bad "validate: NaN noise" "$F/d_nannoise/noise.npy" "${VA[@]}" --model "$F/m" --data "$F/d_nannoise" --out "$O/x"
bad "validate: --n-obs > N" "--n-obs 9" "${VA[@]}" --model "$F/m" --data "$F/data" --n-obs 9 --out "$O/x"
bad "validate: --n-obs 1" "--n-obs" "${VA[@]}" --model "$F/m" --data "$F/data" --n-obs 1 --out "$O/x"
bad "validate: --seed 2^31" "--seed" "${VA[@]}" --model "$F/m" --data "$F/data" --seed 2147483648 --out "$O/x"
bad "validate: --hist-bins 1000" "--hist-bins" "${VA[@]}" --model "$F/m" --data "$F/data" --hist-bins 1000 --out "$O/x"
bad "validate: existing --out" "$F/s" "${VA[@]}" --model "$F/m" --data "$F/data" --out "$F/s"
bad "validate: --out = --data" "$F/data" "${VA[@]}" --model "$F/m" --data "$F/data" --out "$F/data/"
bad "validate: unwritable --out" "/proc/jade_x" "${VA[@]}" --model "$F/m" --data "$F/data" --out /proc/jade_x

echo "== mcmc =="
bad "mcmc: missing obs" "$F/none.fits" mcmc "${MC[@]}" --obs "$F/none.fits" --out "$O/x"
bad "mcmc: empty obs" "$F/empty.fits" mcmc "${MC[@]}" --obs "$F/empty.fits" --out "$O/x"
bad "mcmc: truncated obs" "$F/trunc.fits" mcmc "${MC[@]}" --obs "$F/trunc.fits" --out "$O/x"
bad "mcmc: wrong magic obs" "$F/magic.fits" mcmc "${MC[@]}" --obs "$F/magic.fits" --out "$O/x"
bad "mcmc: NaN pixel" "$F/nanpix.fits" mcmc --set n_pix=16 --free sigma_8 --chains 1 --warmup 4 --samples 4 --obs "$F/nanpix.fits" --out "$O/x"
bad "mcmc: negative noise" "NOISE0" mcmc --set n_pix=16 --free sigma_8 --chains 1 --warmup 4 --samples 4 --obs "$F/negnoise.fits" --out "$O/x"
bad "mcmc: no truth file" "$F/notruth_truth.fits" mcmc --init truth --set n_pix=16 --free sigma_8 --chains 1 --warmup 4 --samples 4 --obs "$F/notruth.fits" --out "$O/x"
bad "mcmc: truth of another geometry" "$F/o8_badtruth_truth.fits" mcmc --init truth "${MC[@]}" --obs "$F/o8_badtruth.fits" --out "$O/x"
bad "mcmc: --free sigma8" "sigma8" mcmc "${MC[@]}" --obs "$F/o8.fits" --free sigma8 --out "$O/x"
bad "mcmc: --target-accept 1" "--target-accept" mcmc "${MC[@]}" --obs "$F/o8.fits" --target-accept 1 --out "$O/x"
bad "mcmc: --warmup nan" "--warmup" mcmc "${MC[@]}" --obs "$F/o8.fits" --warmup nan --out "$O/x"
bad "mcmc: existing --out" "$F/mc" mcmc "${MC[@]}" --obs "$F/o8.fits" --out "$F/mc"
bad "mcmc: --out = --obs" "$F/o8.fits" mcmc "${MC[@]}" --obs "$F/o8.fits" --out "$F/o8.fits"
bad "mcmc: unwritable --out" "/proc/jade_x" mcmc "${MC[@]}" --obs "$F/o8.fits" --out /proc/jade_x
bad "mcmc: truncated state.bin" "$F/mcp.partial/state.bin" mcmc "${MC[@]}" --obs "$F/o8.fits" --checkpoint 1 --out "$F/mcp"
bad "mcmc: --compare missing dir" "$F/none" mcmc --compare "$F/none" --out "$F/mc"

echo "== report =="
bad "report: no DIR" "jade report DIR" report
bad "report: missing DIR" "$F/none" report "$F/none"
bad "report: empty DIR" "$F/d_nodir_files" report "$F/d_nodir_files"
bad "report: missing --obs" "$F/none.fits" report "$F/s" --obs "$F/none.fits"
bad "report: truncated --obs" "$F/trunc.fits" report "$F/s" --obs "$F/trunc.fits"
bad "report: --max-draws 0" "--max-draws" report "$F/s" --max-draws 0
bad "report: --mcmc missing" "$F/none" report "$F/s" --mcmc "$F/none"
mkdir -p "$F/s_html"; cp "$F"/s/* "$F/s_html/"; rm -f "$F"/s_html/*.png "$F/s_html/report.html"; mkdir "$F/s_html/report.html"; SNAP=
bad "report: report.html unwritable" "$F/s_html/report.html" report "$F/s_html"

# Not here: the reader findings of issue 10 that branch h/fuzz fixes, each with its own
# regression test there (FITS NAXIS products that overflow, a truth map with another NAXIS2,
# a non-square example_maps.npy, MCMC state record sizes that wrap, huge img_size / patch in
# safetensors metadata, a FIFO as config path, --seed " -1", junk after a prior's numbers,
# 1e-400, norm_eps 1e300, kappa 3e38, '#' in a --set value, Omega_c > 1 from the prior).
echo "$n_cases cases"
exit $fail
