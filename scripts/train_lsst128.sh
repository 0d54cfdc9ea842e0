#!/usr/bin/env bash
# The lsst128 main training run (issue 11; docs/lsst128.md), started or resumed idempotently:
#
#   bash scripts/train_lsst128.sh            # start, or resume from the last checkpoint; no-op if running
#   bash scripts/train_lsst128.sh status     # the live progress file
#   bash scripts/train_lsst128.sh stop       # checkpoint and stop (SIGTERM; exit code 3 in the log)
#
# Paths (environment): LSST128_DATA (dataset of jade simulate, default /work/data/lsst128_train),
# LSST128_RUN (run directory, default /work/data/lsst128_run), JADE (binary used for the first
# start, default build/jade). The first start copies the binary into RUN/jade and every resume
# uses that copy, so a rebuilt worktree cannot change the run: resumes are bit-identical.
# RUN/model holds the jade train output (model.safetensors = EMA weights, state.safetensors,
# loss.csv); RUN/PROGRESS.txt (step, loss, samples/s, time left) is rewritten every minute
# while the run is alive; RUN/train.log is the jade train log.
# LSST128_EXTRA (first start only): more jade train arguments, saved in RUN/extra_args and used
# by every resume; the continuation run (docs/lsst128.md) is
#   LSST128_RUN=/work/data/lsst128_run2 LSST128_EXTRA="--init-from /work/data/lsst128_run/model \
#     --set train.steps=2500 --set train.warmup=100 --set train.lr_peak=6e-4 --set train.seed=2" \
#     bash scripts/train_lsst128.sh
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
DATA=${LSST128_DATA:-/work/data/lsst128_train}
RUN=${LSST128_RUN:-/work/data/lsst128_run}
JADE_SRC=${JADE:-$HERE/build/jade}
PIDF=$RUN/train.pid
cmd=${1:-start}

alive() { [ -s "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null && grep -q "train" "/proc/$(cat "$PIDF")/cmdline" 2>/dev/null; }

progress() { # one snapshot of the run's state into RUN/PROGRESS.txt (atomic rename)
  local last csv state
  last=$(grep '^train: step' "$RUN/train.log" 2>/dev/null | tail -1)
  csv=$(tail -1 "$RUN/model/loss.csv" 2>/dev/null)
  if alive; then state="running (pid $(cat "$PIDF"))"; else state="not running"; fi
  grep -q "finished\|already finished" "$RUN/train.log" 2>/dev/null && ! alive && state="finished or stopped (see train.log)"
  {
    echo "# lsst128 main run: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $state"
    echo "# resume / restart (idempotent): bash scripts/train_lsst128.sh   (from a jade checkout)"
    echo "# or by hand: cd $RUN && OMP_NUM_THREADS=2 nohup nice -n 10 ./jade train --config lsst128 --data $DATA --out $RUN/model --workers 2 --checkpoint-minutes 8 --resume $(cat "$RUN/extra_args" 2>/dev/null) >> train.log 2>&1 &"
    echo "last progress line: ${last:-none yet}"
    echo "last loss.csv row (step,epoch,lr,loss,loss_map,loss_theta,grad_norm,val_loss,val_loss_ema,val_theta_ema,elapsed_s):"
    echo "  ${csv:-none yet}"
  } > "$RUN/PROGRESS.txt.tmp" && mv "$RUN/PROGRESS.txt.tmp" "$RUN/PROGRESS.txt"
}

case $cmd in
  status)
    progress
    cat "$RUN/PROGRESS.txt"
    exit 0 ;;
  stop)
    if alive; then kill -TERM "$(cat "$PIDF")" && echo "sent SIGTERM to $(cat "$PIDF"): it checkpoints and exits"; else echo "not running"; fi
    exit 0 ;;
  start) ;;
  *) echo "usage: $0 [start|status|stop]" >&2; exit 2 ;;
esac

if alive; then
  echo "already running (pid $(cat "$PIDF")); progress: $RUN/PROGRESS.txt"
  exit 0
fi
[ -d "$DATA" ] || { echo "$DATA: dataset not found (jade simulate --config lsst128 --n 50000 --seed 11 --dtype f16 --out $DATA)" >&2; exit 1; }
mkdir -p "$RUN/model"   # --resume on an empty MODELDIR starts at step 0
if [ ! -x "$RUN/jade" ]; then
  [ -x "$JADE_SRC" ] || { echo "$JADE_SRC: no jade binary (bash scripts/build.sh)" >&2; exit 1; }
  cp "$JADE_SRC" "$RUN/jade.tmp" && mv "$RUN/jade.tmp" "$RUN/jade"
fi
[ -e "$RUN/extra_args" ] || { echo "${LSST128_EXTRA:-}" > "$RUN/extra_args.tmp" && mv "$RUN/extra_args.tmp" "$RUN/extra_args"; }
read -r -a EXTRA < "$RUN/extra_args" || EXTRA=()
cd "$RUN" || exit 1
# --resume continues from model/state.safetensors when it exists, else starts from scratch;
# 2 worker threads (one model copy each), niced: the machine is shared.
OMP_NUM_THREADS=2 setsid nohup nice -n 10 ./jade train --config lsst128 --data "$DATA" --out "$RUN/model" \
  --workers 2 --checkpoint-minutes 8 --resume "${EXTRA[@]}" >> "$RUN/train.log" 2>&1 < /dev/null &
echo $! > "$PIDF"
# the progress file follows the run while it is alive
( trap "" HUP; while kill -0 "$(cat "$PIDF")" 2>/dev/null; do progress; sleep 60; done; progress ) > /dev/null 2>&1 < /dev/null &
disown -a
echo "started jade train (pid $(cat "$PIDF")) in $RUN; progress: $RUN/PROGRESS.txt"
