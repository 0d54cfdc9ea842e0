#!/usr/bin/env bash
# The Python package python/jade (ctypes over this build's libjade.so) against the CLI:
# python/tests/*.py under pytest when Debian's python3-pytest is installed, else each file
# run as a script (its own runner); test_example.py runs docs/examples/python_example.py
# --quick when matplotlib is installed. Skipped (77) without /usr/bin/python3 + numpy, and in
# sanitizer builds (an ASan libjade.so cannot be loaded into an uninstrumented python3).
set -u
JADE=${JADE:?}
SRC=${JADE_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
PY=/usr/bin/python3
LIB=$(dirname "$JADE")/libjade.so
if ! $PY -c 'import numpy' 2>/dev/null; then echo "SKIP: /usr/bin/python3 with numpy (Debian python3-numpy) not available"; exit 77; fi
[ -e "$LIB" ] || { echo "FAILED: $LIB not built"; exit 1; }
if ldd "$LIB" | grep -q 'libasan\|libubsan'; then echo "SKIP: $LIB is a sanitizer build"; exit 77; fi
export JADE JADE_LIB=$LIB PYTHONPATH=$SRC/python${PYTHONPATH:+:$PYTHONPATH} PYTHONDONTWRITEBYTECODE=1
if $PY -c 'import pytest' 2>/dev/null; then
  exec $PY -m pytest -q -p no:cacheprovider "$SRC/python/tests"
fi
echo "(python3-pytest not installed: running the test files as scripts)"
fail=0
for f in "$SRC"/python/tests/test_*.py; do
  $PY "$f" || { echo "FAILED: $f"; fail=1; }
done
exit $fail
