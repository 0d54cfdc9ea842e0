#!/usr/bin/env bash
# Install the Debian packages jade builds and runs with. Idempotent: only missing packages
# are installed. Run as root (or with sudo) on Debian 12.
set -euo pipefail
pkgs=(build-essential cmake pkg-config
      libfftw3-dev libopenblas-openmp-dev libgsl-dev libcfitsio-dev
      libopenmpi-dev openmpi-bin libpng-dev
      python3 python3-numpy python3-pytest   # the Python package python/jade and its tests
      python3-matplotlib)                    # its worked example (docs/python_example.md)
# Optional extras: chromium for the report screenshot test (JADE_WITH_CHROMIUM=1).
if [ "${JADE_WITH_CHROMIUM:-0}" = 1 ]; then pkgs+=(chromium); fi
# For scripts/fuzz.sh (JADE_WITH_FUZZ=1): clang with libFuzzer and the sanitizer runtimes,
# and LLVM's OpenMP runtime.
if [ "${JADE_WITH_FUZZ:-0}" = 1 ]; then pkgs+=(clang-14 libclang-rt-14-dev libomp-14-dev); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Never link the slow reference BLAS: make OpenBLAS (OpenMP build) the alternative.
if command -v update-alternatives >/dev/null; then
  for alt in libblas.so.3-x86_64-linux-gnu liblapack.so.3-x86_64-linux-gnu; do
    cand=$(update-alternatives --list "$alt" 2>/dev/null | grep openblas-openmp | head -1 || true)
    [ -n "$cand" ] && ${SUDO:-} update-alternatives --set "$alt" "$cand" >/dev/null 2>&1 || true
  done
fi
echo "jade setup: dependencies present"
