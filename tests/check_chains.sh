# Shell checks of a jade chain ROOT (include/jade/chains.h) written by jade sample / jade mcmc
# (sourced by the shell tests after check_util.sh; not a test itself). check_chain ROOT
# THETA_TXT PREC MODE: ROOT.txt's names line, ROOT.paramnames exactly, as many rows as
# ROOT.npy's shape, 10 finite numbers per row, and the rows equal to THETA_TXT's (the older
# output of the same run, printed with %.PRECg): MODE sample (theta.txt columns = the
# parameters; weight 1, minuslogpost 0) or mcmc (theta.txt: chain weight log_post params).
# With /usr/bin/python3 and numpy, tests/check_chains.py also reads the chain with
# numpy.genfromtxt(names=True) and compares every value with ROOT.npy's bits.
JADE_CHAIN_NAMES="Omega_c Omega_b sigma_8 h n_s w_0 Omega_m S_8"
check_chain() {
  local root=$1 theta=$2 prec=$3 mode=$4 f
  for f in txt paramnames npy; do check "[ -s $root.$f ]" "missing $root.$f"; done
  check "[ \"\$(head -1 $root.txt)\" = '# weight minuslogpost $JADE_CHAIN_NAMES' ]" "$root.txt: names line $(head -1 "$root.txt")"
  check "[ \"\$(cat $root.paramnames)\" = \"\$(printf '%s\n' 'Omega_c  \\Omega_{\\rm c}' 'Omega_b  \\Omega_{\\rm b}' \
'sigma_8  \\sigma_8' 'h  h' 'n_s  n_{\\rm s}' 'w_0  w_0' 'Omega_m*  \\Omega_{\\rm m}' 'S_8*  S_8')\" ]" "$root.paramnames: $(cat "$root.paramnames")"
  local rows
  rows=$(grep -vc '^#' "$root.txt")
  check "head -c 128 $root.npy | grep -aq \"'descr': '<f8', 'fortran_order': False, 'shape': ($rows, 10)\"" "$root.npy: not float64 ($rows, 10)"
  check "awk \"\$JADE_AWK_NUM\"'!/^#/ {if (NF != 10) bad = 1; for (i = 1; i <= NF; i++) num(\$i)} END {if (num_bad) exit 2; exit bad}' $root.txt" \
    "$root.txt: rows must have 10 finite numbers"
  # the same draws as theta.txt, to its printed precision
  check "[ $rows = \$(grep -vc '^#' $theta) ]" "$root.txt: $rows rows, $theta: $(grep -vc '^#' "$theta")"
  check "paste -d ' ' <(grep -v '^#' $root.txt) <(grep -v '^#' $theta) | awk -v p=$prec -v mode=$mode '
    function g(x) { return sprintf(\"%.\" p \"g\", x) }
    { o = 10
      if (mode == \"sample\") { if (\$1 != 1 || \$2 != 0) bad = 1 }
      else { if (g(\$1) != \$(o + 2) || g(-\$2) != \$(o + 3)) bad = 1; o += 3 }
      for (j = 3; j <= 10; j++) if (g(\$j) != \$(o + j - 2)) bad = 1 }
    END {exit bad}'" "$root.txt: rows differ from $theta"
  if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    check "/usr/bin/python3 $(dirname "${BASH_SOURCE[0]}")/check_chains.py $root $JADE_CHAIN_NAMES" "numpy reading of $root"
  else
    echo "SKIP numpy check of $root: /usr/bin/python3 with numpy not available"
  fi
}
