#!/usr/bin/env bash
# The bf16 matmul backend end to end on the shipped model: the probability-flow ODE is
# deterministic given the initial noise, so draws made with the same seed through fp32 and
# through the AVX512-BF16 kernel must be the same draws up to the bf16 rounding of the
# matmul operands. Requires every parameter (and S_8, Omega_m) of every draw to agree within
# 5% of the posterior standard deviation (measured: 0.9% at 16 draws x 8 steps, 1.1% at 32 x
# 16), and the two runs to differ at all (the bf16 path really ran). Also: a bad JADE_MATMUL value is a one-line error.
# Skipped (77) on CPUs without AVX512-BF16.
set -u
JADE=${JADE:?}
SRC=${JADE_SOURCE_DIR:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
check() { if ! eval "$1"; then echo "FAILED: $2"; fail=1; fi; }
. "$(dirname "$0")/check_util.sh"

out=$(JADE_MATMUL=fp16 "$JADE" sample --help 2>&1); rc=$?
check "[ $rc = 2 ] && [ \$(printf '%s\n' \"\$out\" | wc -l) = 1 ] && printf '%s' \"\$out\" | grep -q JADE_MATMUL" \
  "bad JADE_MATMUL: rc $rc, '$out'"
if ! JADE_MATMUL=bf16 "$JADE" cosmo shift > /dev/null 2>&1; then
  echo "no AVX512-BF16 on this CPU: bf16 sampling test skipped"
  exit $((fail ? 1 : 77))
fi

"$JADE" observe --seed 7 --out "$T/obs.fits" > /dev/null || { echo "observe failed"; exit 1; }
for b in f32 bf16; do
  JADE_MATMUL=$b "$JADE" sample --model "$SRC/models/small" --obs "$T/obs.fits" --draws 16 --steps 8 \
    --seed 3 --quiet --out "$T/$b" || { echo "sample ($b) failed"; exit 1; }
done
# per column: rms and max |bf16 - f32| / sd(f32 draws)
report=$(awk "$JADE_AWK_NUM"'FNR==1{f++} /^#/{next}
  f==1{for(i=1;i<=NF;i++)a[FNR,i]=num($i); n=NF}
  f==2{r++; for(i=1;i<=NF;i++){d=num($i)-a[FNR,i]; if(d<0)d=-d; if(d>mx[i])mx[i]=d; tot+=d; m[i]+=a[FNR,i]; q[i]+=a[FNR,i]^2}}
  END{if (num_bad) exit 2; w=0; for(i=1;i<=n;i++){mu=m[i]/r; sd=sqrt(q[i]/r-mu*mu); x=mx[i]/sd; if(x>w)w=x}
      printf "%.5f %.3g\n", w, tot}' "$T/f32/theta.txt" "$T/bf16/theta.txt")
worst=${report% *}; total=${report#* }
echo "bf16 vs f32, same noise: largest |difference| / posterior sd over 8 columns x 16 draws = $worst"
check "num_check 'w < 0.05' w='$worst'" "bf16 draws differ from fp32 by $worst posterior sd"
check "num_check 't > 0' t='$total'" "bf16 and fp32 draws identical: the bf16 kernel did not run"
exit $fail
