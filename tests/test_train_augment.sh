#!/usr/bin/env bash
# Training data paths of jade train (tiny 16x16x5 problem, 10 steps each):
# - a float16 dataset (jade simulate --dtype f16) trains bit-identically to the float32 dataset
#   holding the same (float16-rounded) values, and its maps are the float32 ones rounded;
# - train.rot90 (random transposes) changes nothing on transpose-symmetric maps (without flips) and changes
#   the run on real maps; train.roll (random periodic shifts) changes nothing on constant maps
#   and changes the run on real maps: the augmentations permute pixels by exact symmetries;
# - checkpoints written by wall time (--checkpoint-minutes) leave the run unchanged; a MODELDIR
#   holding only a killed writer's temporary resumes as a fresh start;
# - --init-from starts from a model's weights (with lr 0 they stay exactly those weights), a
#   stopped --init-from run resumes bit-identically, and a resume with another starting model
#   or a different network is refused.
set -u
JADE=${JADE:?}
BUILD=$(dirname "$JADE")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
check() { if ! eval "$1"; then echo "FAILED: $2"; fail=1; fi; }
export OMP_NUM_THREADS=1

"$JADE" simulate --n 48 --seed 5 --set n_pix=16 --quiet --out "$T/d32" || { echo "simulate failed"; exit 1; }
"$JADE" simulate --n 48 --seed 5 --set n_pix=16 --quiet --dtype f16 --out "$T/d16" || { echo "simulate f16 failed"; exit 1; }
check "grep -q '\"kappa_dtype\": \"float16\"' $T/d16/meta.json" "meta.json of the f16 dataset does not say float16"
check "[ \$(stat -c %s $T/d16/kappa.npy) = \$((128 + 48 * 5 * 16 * 16 * 2)) ]" "f16 kappa.npy size"
check "cmp -s $T/d32/theta.npy $T/d16/theta.npy" "theta differs between the f32 and f16 datasets"
# the f16 maps are the f32 maps rounded: |difference| <= 2^-11 |kappa| (checked in C on the arrays)
"$BUILD/test_train" --npy-edit f32 "$T/d16/kappa.npy" "$T/k16as32.npy" || { echo "npy-edit failed"; exit 1; }
check "$BUILD/test_train --npy-close $T/d32/kappa.npy $T/k16as32.npy" "f16 maps are not the f32 maps rounded to half precision"

mk() { # mk NAME MODE SRC: a copy of dataset SRC with kappa.npy rewritten by MODE
  cp -r "$T/$3" "$T/$1" && "$BUILD/test_train" --npy-edit "$2" "$T/$3/kappa.npy" "$T/$1/kappa.npy" || { echo "mk $1 failed"; exit 1; }
}
mk c32 f32 d16
mk sym transpose-sym d32
mk const const d32
TINY=(--set model.patch=4 --set model.depth=1 --set model.width=32 --set model.heads=2
      --set model.n_cosmo_tokens=2 --set model.bottleneck=16 --set train.batch=8 --set train.micro_batch=8
      --set train.warmup=2 --set train.val_fraction=0.25 --set train.val_max=8 --set train.log_every=5
      --set train.val_every=5 --set train.checkpoint_every=10 --steps 10 --quiet)
train() { local d=$1 o=$2; shift 2; "$JADE" train --data "$T/$d" --out "$T/$o" "${TINY[@]}" "$@" || { echo "train $o failed"; exit 1; }; }
same() { "$BUILD/test_train" --compare "$T/$1/model.safetensors" "$T/$2/model.safetensors" 0 >/dev/null; } # weights, bit for bit

train d16 m16
train c32 m32
check "same m16 m32" "float16 dataset trains differently from its float32 copy"

# (flips off here: a transpose after a flip is a rotation, which moves a symmetric map)
train sym s0 --set train.rot90=0 --set train.flip=0
train sym s1 --set train.rot90=1 --set train.flip=0
check "same s0 s1" "rot90 changed training on transpose-symmetric maps"
train d32 r0 --set train.rot90=0
train d32 r1 --set train.rot90=1
check "! same r0 r1" "rot90 = 1 did not change training on real maps"

train const c0 --set train.roll=0
train const c1 --set train.roll=1 --set train.rot90=1
check "same c0 c1" "roll / rot90 changed training on constant maps"
train d32 q1 --set train.roll=1
check "! same r0 q1" "roll = 1 did not change training on real maps"
# validation rows are never augmented: the first validation loss (step 5) of a run does not
# depend on the augmentation of the 5 training steps before it beyond their weight updates;
# with lr 0 the weights never move, so the validation losses must agree exactly
train d32 z0 --set train.lr_peak=0 --set train.lr_end=0
train d32 z1 --set train.lr_peak=0 --set train.lr_end=0 --set train.rot90=1 --set train.roll=1
check "diff <(cut -d, -f8-10 $T/z0/loss.csv) <(cut -d, -f8-10 $T/z1/loss.csv) >/dev/null" "augmentation reached the validation rows"
# time-based checkpoints (--checkpoint-minutes; here after every step) change nothing
train d32 k0 --checkpoint-minutes 0.000001
check "same r0 k0 && cmp -s $T/r0/state.safetensors $T/k0/state.safetensors" "--checkpoint-minutes changed the run"
check "diff <(cut -d, -f1-10 $T/r0/loss.csv) <(cut -d, -f1-10 $T/k0/loss.csv) >/dev/null" "--checkpoint-minutes changed loss.csv"
# --init-from
train d32 i0 --init-from "$T/r0" --set train.lr_peak=0 --set train.lr_end=0
check "same r0 i0" "--init-from with lr 0 did not keep the starting weights"
train d32 i1 --init-from "$T/r0" --set train.seed=2
check "! same r0 i1" "--init-from run did not train"
"$JADE" train --data "$T/d32" --out "$T/i2" "${TINY[@]}" --init-from "$T/r0" --set train.seed=2 --stop-after 5 2>/dev/null
check "[ \$? = 3 ]" "--stop-after 5 did not stop with code 3"
check "! \"$JADE\" train --data $T/d32 --out $T/i2 ${TINY[*]} --init-from $T/q1 --set train.seed=2 --resume 2>$T/err" \
  "resume with another starting model accepted"
check "grep -q 'different configuration' $T/err" "resume with another starting model: unclear message ($(cat "$T/err"))"
train d32 i2 --init-from "$T/r0" --set train.seed=2 --resume
check "same i1 i2 && cmp -s $T/i1/state.safetensors $T/i2/state.safetensors" "stopped --init-from run did not resume bit-identically"
check "! \"$JADE\" train --data $T/d32 --out $T/i3 ${TINY[*]} --init-from $T/r0 --set model.width=64 2>$T/err" \
  "--init-from a different network accepted"
check "grep -q 'network differs' $T/err && [ ! -e $T/i3/model.safetensors ]" "--init-from a different network: $(cat "$T/err")"
# a run killed while writing its first file left only a temporary: --resume starts it afresh
mkdir -p "$T/k1" && echo partial > "$T/k1/config.ini.tmp.4242"
train d32 k1 --resume
check "same r0 k1 && [ ! -e $T/k1/config.ini.tmp.4242 ]" "--resume over a killed writer's temporary"
exit $fail
