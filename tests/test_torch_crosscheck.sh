#!/usr/bin/env bash
# jade's network against an independent implementation: bench/torch_jade.py (PyTorch, float64)
# loads the shipped model's safetensors and runs the inputs that build/bench_nn_dump fed jade;
# outputs (training and inference forward) and the gradients of all 105 parameter tensors
# must agree within 10x the rounding error of PyTorch's own float32 run (measured: jade's
# errors are 1-3x PyTorch's, ~5e-7 relative; a sign flip in RoPE gives 1e-1 to 1e0). With
# AVX512-BF16 the bf16 backend is checked the same way against PyTorch's bf16 autocast.
# Optional: skipped (77) when /usr/bin/python3 has no torch (Debian python3-torch).
set -u
JADE=${JADE:?}
SRC=${JADE_SOURCE_DIR:?}
DUMP=$(dirname "$JADE")/bench_nn_dump
PY=/usr/bin/python3
if ! [ -x "$PY" ] || ! "$PY" -c "import torch, numpy" > /dev/null 2>&1; then
  echo "no PyTorch for /usr/bin/python3 (Debian python3-torch): cross-check skipped"
  exit 77
fi
[ -x "$DUMP" ] || { echo "FAILED: $DUMP not built"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
mkdir -p "$T/f32" "$T/bf16"
"$DUMP" "$SRC/models/small" "$T/f32" --matmul f32 || { echo "FAILED: bench_nn_dump f32"; exit 1; }
"$PY" "$SRC/bench/torch_jade.py" check "$T/f32" "$SRC/models/small/model.safetensors" || { echo "FAILED: fp32 cross-check"; fail=1; }
if JADE_MATMUL=bf16 "$JADE" cosmo shift > /dev/null 2>&1; then
  "$DUMP" "$SRC/models/small" "$T/bf16" --matmul bf16 || { echo "FAILED: bench_nn_dump bf16"; exit 1; }
  "$PY" "$SRC/bench/torch_jade.py" check "$T/bf16" "$SRC/models/small/model.safetensors" --bf16 || { echo "FAILED: bf16 cross-check"; fail=1; }
else
  echo "no AVX512-BF16: bf16 cross-check skipped"
fi
exit $fail
