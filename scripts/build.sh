#!/usr/bin/env bash
# Install missing Debian packages, then configure and build jade in ./build (Release).
# Extra CMake arguments are passed through, e.g. scripts/build.sh -DJADE_SANITIZE=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
