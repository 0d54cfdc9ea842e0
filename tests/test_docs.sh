#!/usr/bin/env bash
# Documentation that runs (issue 10, item 6). Every command of the ```sh blocks of README.md
# and docs/*.md is run as written, one block after the other each in a fresh folder laid out
# like a clone (build/jade, models/, scripts/; `jade` on PATH), the commands of a block in
# order in one shell. Only sizes are made small, by the table in shrink() below: a documented
# option's value is replaced, or the option appended when the line does not give it (README
# says so). Also:
# - every fenced block names its language (sh = commands, text/python = not run);
# - no doc cites the spec/ or reference/ folders, which are not in this repository, and
#   every repository path a doc cites (src/..., include/..., tests/..., docs/..., ...) exists;
# - no `jade [command] --help` text has a doubled word ("the the"), option names and their
#   metavariables ("--n N") and the command column of `jade --help` aside.
set -u
JADE=${JADE:?}
SRC=${JADE_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
DOCS=("$SRC/README.md" "$SRC"/docs/*.md)

# ---- the small sizes: "subcommand|option value ..." (appended when absent) ----
SHRINK=(
  "simulate|--n 8"
  "train|--steps 2 --set train.batch=4 --set train.micro_batch=4 --set train.val_fraction=0.25 --set train.warmup=1 --set train.log_every=1 --set train.val_every=1"
  "sample|--draws 2 --steps 2"
  "validate|--n-obs 2 --draws 2 --steps 2"
  "mcmc --obs|--chains 1 --warmup 4 --samples 4 --max-depth 3"
)
# shrink LINE: LINE with the sizes above for its jade subcommand
shrink() {
  local line=$1 entry key opts sub opt val
  sub=$(sed -nE 's/.*(^|[ /])(jade|\$J|"\$J")[ ]+([a-z]+).*/\3/p' <<< "$line")
  for entry in "${SHRINK[@]}"; do
    key=${entry%%|*}; opts=${entry#*|}
    [ "${key%% *}" = "$sub" ] || continue
    [ "$key" = "${key#* }" ] || [[ "$line" == *"${key#* }"* ]] || continue
    set -- $opts
    while [ $# -ge 2 ]; do
      opt=$1 val=$2; shift 2
      if [ "$opt" = --set ]; then line+=" --set $val"
      elif [[ "$line" =~ (^|[ ])$opt[\ =][^\ ]+ ]]; then
        line=$(sed -E "s/(^| )$opt[ =][^ ]+/\1$opt $val/" <<< "$line")
      else line+=" $opt $val"; fi
    done
  done
  printf '%s' "$line"
}

# ---- fenced blocks: every one names its language; sh blocks to $T/blocks/<n>.sh ----
mkdir -p "$T/blocks"
nb=0
for f in "${DOCS[@]}"; do
  rel=${f#"$SRC"/}
  if ! awk -v rel="$rel" '/^```/ { if (!inb) { inb = 1; if ($0 == "```") { print rel ":" NR ": a fenced block without a language (sh, text or python)"; bad = 1 } } else inb = 0 }
       END { exit bad }' "$f"; then fail=1; fi
  # sh blocks, continuation lines joined, comments and blank lines dropped
  awk -v rel="$rel" -v dir="$T/blocks" -v start="$nb" '
    /^```sh$/ { inb = 1; n++; out = sprintf("%s/%03d.sh", dir, start + n); print "# " rel ":" NR > out; next }
    /^```/ { if (inb) close(out); inb = 0; next }
    inb { line = cont $0; cont = ""; if (line ~ /\\$/) { cont = substr(line, 1, length(line) - 1); next }
          sub(/[ \t]+#.*$/, "", line); if (line ~ /^[ \t]*(#|$)/) next; print line > out }' "$f"
  nb=$(ls "$T/blocks" | wc -l)
done
echo "$nb sh blocks in ${#DOCS[@]} files"
[ "$nb" -ge 5 ] || { echo "FAILED: only $nb sh blocks found"; fail=1; }

# ---- run them ----
mkdir -p "$T/bin" && ln -s "$JADE" "$T/bin/jade"
for b in "$T"/blocks/*.sh; do
  where=$(head -1 "$b" | cut -c3-)
  R="$T/run_$(basename "$b" .sh)"
  mkdir -p "$R/build" && ln -s "$JADE" "$R/build/jade" && ln -s "$SRC/models" "$R/models" && ln -s "$SRC/scripts" "$R/scripts"
  echo "== $where"
  if ! (
    cd "$R" && export PATH="$T/bin:$PATH"
    while IFS= read -r line; do
      case "$line" in
        "bash scripts/test.sh"*)  # the suite this test is part of: CI runs it (.ci/run)
          grep -q "^bash scripts/test.sh" "$SRC/.ci/run" || { echo "FAILED: .ci/run does not run $line"; exit 1; }
          echo "  (run by CI: $line)"; continue ;;
        "bash scripts/demo.sh"*)  # demo.sh uses $JADE instead of building; DRAWS/STEPS are its sizes
          cmd="DRAWS=2 STEPS=2 $line" ;;
        mpirun*)
          if [ "${JADE_WITH_MPI:-0}" != 1 ] || ! command -v mpirun > /dev/null; then echo "  (no MPI: skipped $line)"; continue; fi
          # as README says: root adds --allow-run-as-root; OpenMPI leaks at exit (no leak check)
          cmd=$(shrink "$line"); [ "$(id -u)" = 0 ] && cmd="mpirun --allow-run-as-root${cmd#mpirun}"
          cmd="ASAN_OPTIONS=\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}detect_leaks=0 $cmd" ;;
        *) cmd=$(shrink "$line") ;;
      esac
      t0=$SECONDS
      if ! eval "$cmd" > cmd.log 2>&1 < /dev/null; then
        echo "FAILED: $line"; sed "s/^/    /" cmd.log | tail -5; exit 1
      fi
      echo "  \$ $cmd   ($((SECONDS - t0)) s)"
    done < <(tail -n +2 "$b")
  ); then fail=1; fi
done

# ---- citations: nothing from spec/ or reference/; repository paths exist ----
for f in "${DOCS[@]}"; do
  rel=${f#"$SRC"/}
  if grep -nE '(^|[^/a-z_])(spec|reference)/[A-Za-z_]+\.md|\bspec `|[(`]spec\b' "$f" | grep -v 'tests/data/reference' | sed "s|^|$rel:|" | grep .; then
    echo "FAILED: $rel cites spec/ or reference/ files that are not in this repository"; fail=1
  fi
  for p in $(grep -oE '(^|[ `(])(src|include|tests|docs|bench|app|scripts|configs|models)/[A-Za-z0-9_./-]*[A-Za-z0-9_/]' "$f" | sed -E 's/^[ `(]//' | sort -u); do
    [ -e "$SRC/$p" ] || { echo "FAILED: $rel cites $p, which is not in the repository"; fail=1; }
  done
done

# ---- --help texts: no doubled words ----
for c in "" cosmo simulate observe train sample validate report mcmc; do
  "$JADE" $c --help > "$T/help.txt" 2>&1 || { echo "FAILED: jade $c --help exits non-zero"; fail=1; }
  d=$(sed -E 's/--[a-z0-9-]+( [A-Z][A-Za-z0-9_.,=]*)?//g; s/^  [a-z]+ {2,}//' "$T/help.txt" | tr -s ' \n\t' ' ' |
      grep -oiE '\b([A-Za-z]+) \1\b')
  [ -z "$d" ] || { echo "FAILED: jade $c --help has a doubled word: $d"; fail=1; }
done
# the check itself must see one
[ -n "$(printf 'a model\nmodel  trained\n' | tr -s ' \n\t' ' ' | grep -oiE '\b([A-Za-z]+) \1\b')" ] ||
  { echo "FAILED: the doubled-word check misses 'model model' across a line break"; fail=1; }
[ $fail = 0 ] && echo "all checks passed"
exit $fail
