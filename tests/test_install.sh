#!/usr/bin/env bash
# cmake --install into a temporary prefix, then a small C program compiled and linked against
# the installed libjade with pkg-config, once with the shared library and once with the static
# one, and run. The program checks the library against things it does not compute itself:
# the version of the headers against the version of the library and pkg-config's, the
# comoving distance of an Einstein-de Sitter universe against its closed form
# chi(a) = 2 c/H0 (1 - sqrt a), and the error channel (NaN input: an error naming Omega_c).
# Also: libjade.so carries the soname libjade.so.MAJOR.MINOR (0.x) and exports only jade_*.
set -u
JADE=${JADE:?}
BUILD=$(dirname "$JADE")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
check() { if ! eval "$1"; then echo "FAILED: $2"; fail=1; fi; }
SRC=${JADE_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
# the build's compiler (OpenMP runtimes differ between gcc and clang) and sanitizer flags
CC=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
[ -n "$CC" ] || CC=cc
CFLAGS=(-std=c11)
grep -q '^JADE_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" && CFLAGS+=(-fsanitize=address,undefined)
command -v pkg-config >/dev/null || { echo "pkg-config not found"; exit 1; }

cmake --install "$BUILD" --prefix "$T/prefix" >/dev/null || { echo "cmake --install failed"; exit 1; }
P=$T/prefix
LIBDIR=$(ls -d "$P"/lib*/pkgconfig/.. 2>/dev/null | head -1)
check "[ -x $P/bin/jade ]" "jade CLI not installed"
for h in "$SRC"/include/jade/*.h version.h; do
  check "[ -f $P/include/jade/$(basename "$h") ]" "include/jade/$(basename "$h") not installed"
done
check "[ -f $LIBDIR/libjade.a ] && [ -f $LIBDIR/libjade.so ]" "libjade.a / libjade.so not installed"
export PKG_CONFIG_PATH=$LIBDIR/pkgconfig
ver=$(pkg-config --modversion jade) || { echo "pkg-config does not find jade.pc"; exit 1; }
check "[ \"$("$P/bin/jade" --version)\" = \"jade $ver\" ]" "installed CLI version differs from jade.pc ($ver)"
# soname: libjade.so.MAJOR.MINOR while the major version is 0
major=${ver%%.*}; rest=${ver#*.}; minor=${rest%%.*}
want=libjade.so.$major; [ "$major" = 0 ] && want=libjade.so.$major.$minor
soname=$(objdump -p "$LIBDIR/libjade.so" | awk '$1 == "SONAME" {print $2}')
check "[ \"$soname\" = $want ]" "soname '$soname', expected $want"
check "[ -f $LIBDIR/libjade.so.$ver ] && [ -L $LIBDIR/libjade.so ]" "libjade.so.$ver missing or libjade.so not a link"
# only the public names are exported
bad=$(nm -D --defined-only "$LIBDIR/libjade.so" | awk '$2 ~ /^[TDRB]$/ && $3 !~ /^jade_/ {print $3}' | head -5)
check "[ -z \"$bad\" ]" "libjade.so exports non-jade symbols: $bad"
check "nm -D --defined-only $LIBDIR/libjade.so | grep -q ' T jade_version$'" "libjade.so does not export jade_version"

cat > "$T/prog.c" <<'EOF'
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jade/core.h>
#include <jade/cosmo.h>
#include <jade/version.h>

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  int bad = 0;
  if (strcmp(jade_version(), JADE_VERSION_STRING) || strcmp(jade_version(), argv[1])) {
    printf("version: library %s, headers %s, pkg-config %s\n", jade_version(), JADE_VERSION_STRING, argv[1]);
    bad = 1;
  }
  /* Einstein-de Sitter: Omega_m = 1, no dark energy, no radiation */
  jade_cosmo_params p = jade_cosmo_params_fiducial();
  p.Omega_c = 0.95;
  p.Omega_b = 0.05;
  p.radiation = 0;
  p.Omega_k = 0.0;
  jade_cosmo *c = NULL;
  if (jade_cosmo_create(&p, &c) != JADE_OK) {
    printf("jade_cosmo_create: %s\n", jade_last_error());
    return 1;
  }
  for (double a = 0.2; a < 1.0; a += 0.2) {
    double chi = jade_cosmo_chi(c, a), ref = 2.0 * JADE_C_HMPC * (1.0 - sqrt(a));
    if (!(fabs(chi - ref) <= 1e-6 * ref)) {
      printf("chi(%g) = %.10g, closed form %.10g\n", a, chi, ref);
      bad = 1;
    }
  }
  jade_cosmo_free(c);
  /* the error channel: NaN is refused with a message naming the parameter */
  p.Omega_c = NAN;
  c = NULL;
  if (jade_cosmo_create(&p, &c) == JADE_OK || !strstr(jade_last_error(), "Omega_c")) {
    printf("NaN Omega_c: not refused (%s)\n", jade_last_error());
    bad = 1;
  }
  jade_cosmo_free(c);
  if (!bad) printf("ok %s\n", jade_version());
  return bad;
}
EOF

# shared: pkg-config's default flags
if $CC "${CFLAGS[@]}" -o "$T/prog_shared" "$T/prog.c" $(pkg-config --cflags --libs jade) -lm 2> "$T/cc.log"; then
  out=$(LD_LIBRARY_PATH=$LIBDIR "$T/prog_shared" "$ver"); rc=$?
  check "[ $rc = 0 ] && [ \"$out\" = \"ok $ver\" ]" "shared-linked program: rc=$rc: $out"
  check "objdump -p $T/prog_shared | grep -q 'NEEDED *$want'" "shared-linked program does not need $want"
else
  echo "FAILED: compiling against the shared library:"; cat "$T/cc.log"; fail=1
fi
# static: libjade.a, with the private dependencies of pkg-config --static
libs=$(pkg-config --static --libs jade | sed 's/\(^\| \)-ljade\( \|$\)/ -Wl,-Bstatic -ljade -Wl,-Bdynamic /')
if $CC "${CFLAGS[@]}" -o "$T/prog_static" "$T/prog.c" $(pkg-config --cflags jade) $libs -lm 2> "$T/cc.log"; then
  out=$("$T/prog_static" "$ver"); rc=$?
  check "[ $rc = 0 ] && [ \"$out\" = \"ok $ver\" ]" "static-linked program: rc=$rc: $out"
  check "! objdump -p $T/prog_static | grep -q 'NEEDED *libjade'" "static-linked program needs libjade.so"
else
  echo "FAILED: compiling against the static library:"; cat "$T/cc.log"; fail=1
fi
# the Python package: installed beside the library, it loads the installed libjade.so (not
# this build's) without JADE_LIB; skipped without numpy and for a sanitizer build
PYDIR=$P/lib/python3/dist-packages
check "[ -f $PYDIR/jade/__init__.py ] && [ -f $PYDIR/jade/_install.py ]" "Python package not installed in $PYDIR"
if /usr/bin/python3 -c 'import numpy' 2>/dev/null && ! grep -q '^JADE_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt"; then
  out=$(cd "$T" && env -u JADE_LIB -u JADE_BUILD_DIR PYTHONPATH="$PYDIR" PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -c '
import os, sys, jade
c = jade.Cosmology(Omega_c=0.95, Omega_b=0.05, radiation=0)
chi, ref = c.chi(0.25), 2 * 2997.92458 * (1 - 0.25 ** 0.5)
print(os.path.realpath(jade.library_path), jade.__version__, abs(chi - ref) <= 1e-6 * ref)' 2>&1)
  [ "$out" = "$(realpath "$LIBDIR/libjade.so") $ver True" ] || { echo "FAILED: installed Python package: $out"; fail=1; }
else
  echo "SKIP: the installed Python package (no numpy, or a sanitizer build)"
fi
exit $fail
