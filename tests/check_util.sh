# Numeric checks for the shell tests (sourced; not a test itself), the shell side of
# test_util.h: they fail on NaN, Inf and anything that is not a finite decimal number.
# Plain awk does not: `awk "BEGIN{exit !($x < 0.05)}"` with x=nan reads an unset variable (0)
# and passes, and `if (d > mx) mx = d` skips a NaN d.
#
# JADE_AWK_NUM defines num(x) for awk programs: x as a number if it is a finite decimal
# number, else a message on stderr and exit 2 (1e999 overflows to Inf: rejected; mawk's own
# comparisons cannot be trusted with NaN, it has nan == 0 true). awk still runs END after
# exit: begin it with `if (num_bad) exit 2`.
# Use: awk "$JADE_AWK_NUM"' {s += num($2)} END {if (num_bad) exit 2; ...}'.
JADE_AWK_NUM='function num(x) {
  if (x !~ /^[ \t]*[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?[ \t]*$/ || x + 0 > 1.79e308 || x + 0 < -1.79e308) {
    printf "not a finite number: \"%s\"\n", x > "/dev/stderr"; num_bad = 1; exit 2
  }
  return x + 0
}
'
# num_check 'COND' name=value ...: true when every value is a finite number and the awk
# condition COND on the names holds, e.g. num_check 'a < 0.85 * b' a="$last" b="$first".
num_check() {
  local cond=$1 prog="" kv
  shift
  local args=()
  for kv in "$@"; do
    args+=(-v "$kv")
    prog+="${kv%%=*} = num(${kv%%=*}); "
  done
  awk "${args[@]}" "$JADE_AWK_NUM"" BEGIN { $prog exit !($cond) }"
}
