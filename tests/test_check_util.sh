#!/usr/bin/env bash
# The shell tests' numeric checks (tests/check_util.sh) must fail on NaN, Inf and non-numbers
# whatever the comparison (plain awk passes `nan < 0.05`: an unset variable), and pass on
# finite numbers that meet the condition. The shell side of test_checks.c.
set -u
. "$(dirname "$0")/check_util.sh"
fail=0
for v in nan NaN -nan inf -inf +inf Infinity 1e999 "" abc 0x10 "1 2" "0.01,"; do
  for cond in "x < 0.05" "x > 0.05" "x != 0.05" "!(x >= 0.05)"; do
    if num_check "$cond" x="$v" 2>/dev/null; then echo "FAILED: num_check '$cond' passed with x='$v'"; fail=1; fi
  done
  if num_check "a < b" a=0 b="$v" 2>/dev/null; then echo "FAILED: num_check 'a < b' passed with b='$v'"; fail=1; fi
  [ "$v" = "1 2" ] && continue # one awk field each: not a bad field
  # in a program: the running max must not skip the bad value, and END must not report
  out=$(printf '0.1\n%s\n0.2\n' "$v" | awk "$JADE_AWK_NUM"'{x = num($1); if (x > m) m = x} END {if (num_bad) exit 2; print m}' 2>/dev/null)
  rc=$?
  if [ $rc = 0 ] || [ -n "$out" ]; then echo "FAILED: awk num() accepted '$v' (rc $rc, output '$out')"; fail=1; fi
done
[ "$(awk 'BEGIN{exit !(nan < 0.05)}'; echo $?)" = 0 ] || { echo "FAILED: plain awk no longer passes nan < 0.05: the contrast is gone"; fail=1; }
for ok in "0.01" "1e-3" "-2.5E+1" ".04" "0." " 0.04 "; do
  num_check "x < 0.05" x="$ok" || { echo "FAILED: num_check rejected '$ok'"; fail=1; }
done
num_check "a < 0.85 * b" a=0.8 b=1 || { echo "FAILED: 0.8 < 0.85 * 1 rejected"; fail=1; }
num_check "a < 0.85 * b" a=0.9 b=1 && { echo "FAILED: 0.9 < 0.85 * 1 accepted"; fail=1; }
[ $fail = 0 ] && echo "all checks passed"
exit $fail
