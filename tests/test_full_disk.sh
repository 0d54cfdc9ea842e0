#!/usr/bin/env bash
# A full disk (issue 10, item 5): jade simulate, train and sample writing to a small tmpfs
# that fills up mid-run must stop with a one-line error naming the file and the cause, leave
# nothing under the final name (sample: nothing at all), and, once there is room again, a
# rerun (simulate: the same command; train: --resume) must not trust the files cut short by
# the full disk: its outputs are byte-identical to a run that had room (loss.csv: all but
# the wall-clock column). Needs root to mount a tmpfs: skipped (exit 77) otherwise.
set -u
JADE=${JADE:?}
T=$(mktemp -d)
D=$T/disk
mkdir -p "$D"
mounted=0
cleanup() { [ $mounted = 1 ] && umount "$D"; rm -rf "$T"; }
trap cleanup EXIT
mount -t tmpfs -o size=4m tmpfs "$D" 2>/dev/null || { echo "cannot mount a tmpfs (not root?): skipped"; exit 77; }
mounted=1
export OMP_NUM_THREADS=2
fail=0

# fill DISK leaving about KB kilobytes free
fill() { rm -f "$D/filler"; local free; free=$(df -k --output=avail "$D" | tail -1)
         [ "$free" -gt "$1" ] && head -c $(( (free - $1) * 1024 )) /dev/zero > "$D/filler" 2>/dev/null; true; }
# full NAME CMD...: must fail with one line naming "No space left on device"
full() {
  local name=$1; shift
  local err rc lines
  err=$("$@" 2>&1 >/dev/null); rc=$?
  lines=$(printf '%s' "$err" | grep -c '')
  if [ $rc != 1 ] || [ "$lines" != 1 ] || ! printf '%s' "$err" | grep -q 'No space left on device'; then
    echo "FAILED: $name on a full disk: exit code $rc, stderr:"; printf '%s\n' "$err" | head -10 | sed 's/^/    /'; fail=1
  else
    echo "  $name -> $err"
  fi
}

# ---- simulate: kappa.npy (320 KiB) does not fit; the rerun with room completes it ----
SIM=(simulate --n 64 --seed 4 --set n_pix=16 --chunk 4 --quiet)
"$JADE" "${SIM[@]}" --out "$T/sim_ref" || { echo "simulate failed"; exit 1; }
fill 150
full "simulate" "$JADE" "${SIM[@]}" --out "$D/sim"
[ ! -e "$D/sim" ] || { echo "FAILED: simulate published $D/sim after the failure"; fail=1; }
rm -f "$D/filler"
"$JADE" "${SIM[@]}" --out "$D/sim" || { echo "FAILED: simulate rerun with room failed"; fail=1; }
for f in theta.npy kappa.npy lambda.npy noise.npy meta.json config.ini; do
  cmp -s "$T/sim_ref/$f" "$D/sim/$f" || { echo "FAILED: simulate after a full disk: $f differs"; fail=1; }
done
rm -rf "$D/sim"

# ---- train: the state (4 x the parameters) does not fit at the first checkpoint ----
"$JADE" simulate --n 16 --seed 5 --set n_pix=16 --quiet --out "$T/data" || { echo "simulate failed"; exit 1; }
TRAIN=(train --data "$T/data" --steps 12 --quiet --set model.patch=4 --set model.depth=1 --set model.width=32
       --set model.heads=2 --set model.n_cosmo_tokens=2 --set model.bottleneck=16 --set train.batch=4
       --set train.micro_batch=4 --set train.warmup=2 --set train.val_fraction=0.25 --set train.log_every=2
       --set train.val_every=4 --set train.checkpoint_every=4)
"$JADE" "${TRAIN[@]}" --out "$T/m_ref" || { echo "train failed"; exit 1; }
state_kb=$(( $(stat -c %s "$T/m_ref/state.safetensors") / 1024 ))
fill $(( state_kb / 2 ))
full "train" "$JADE" "${TRAIN[@]}" --out "$D/m"
[ ! -e "$D/m/model.safetensors" ] && [ ! -e "$D/m/state.safetensors" ] \
  || { echo "FAILED: train left a model or state after the failed checkpoint: $(ls "$D/m")"; fail=1; }
rm -f "$D/filler"
"$JADE" "${TRAIN[@]}" --out "$D/m" --resume || { echo "FAILED: train --resume with room failed"; fail=1; }
for f in model.safetensors state.safetensors config.ini; do
  cmp -s "$T/m_ref/$f" "$D/m/$f" || { echo "FAILED: train after a full disk: $f differs"; fail=1; }
done
cmp -s <(cut -d, -f1-10 "$T/m_ref/loss.csv") <(cut -d, -f1-10 "$D/m/loss.csv") \
  || { echo "FAILED: train after a full disk: loss.csv differs"; fail=1; }
[ -z "$(ls "$D/m" | grep '\.tmp\.')" ] || { echo "FAILED: temporaries left in $D/m: $(ls "$D/m")"; fail=1; }
rm -rf "$D/m"

# ---- sample: theta files fit, maps.fits (64 draws: 320 KiB) does not: nothing left ----
"$JADE" observe --seed 3 --set n_pix=16 --out "$T/obs.fits" 2>/dev/null || { echo "observe failed"; exit 1; }
fill 100
full "sample" "$JADE" sample --model "$T/m_ref" --obs "$T/obs.fits" --draws 64 --steps 2 --batch 32 --quiet --out "$D/s"
left=$(ls -A "$D" | grep -v '^filler$')
[ -z "$left" ] || { echo "FAILED: sample left $left on the full disk"; fail=1; }
rm -f "$D/filler"
"$JADE" sample --model "$T/m_ref" --obs "$T/obs.fits" --draws 64 --steps 2 --batch 32 --quiet --out "$D/s" \
  || { echo "FAILED: sample with room failed"; fail=1; }
exit $fail
