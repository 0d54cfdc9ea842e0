#!/usr/bin/env bash
# Build jade and run the whole test suite (installs missing Debian packages first).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh "$@"
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j 2
