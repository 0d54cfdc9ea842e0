#!/usr/bin/env bash
# The module map of libjade has no cycle (docs/architecture.md). A module is a folder src/M/
# with the public headers it implements (the table below). Two graphs are checked:
#  - includes: module A -> module B when a file of src/A/ or a public header of A includes a
#    header of B (public include/jade/X.h, or B's private src/B/*.h);
#  - symbols: module A -> module B when an object file of src/A/ uses a jade_* symbol defined
#    by an object file of src/B/ (nm on the compiled objects), so that a dependency hidden
#    behind a header declared elsewhere is caught too.
# Fails on a cycle (printing it), on a public header no module owns, and when the symbol
# graph has an edge the include graph lacks (a function used without including its header).
# With --print: prints the include graph as "A -> B C" lines (for docs/architecture.md).
set -u
SRC=${JADE_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${JADE_BUILD_DIR:-$(dirname "${JADE:-$SRC/build/jade}")}
fail=0

# module: the public headers it implements
OWNERS="
core:      core.h config.h dist.h version.h progress.h
io:        io.h safetensors.h chains.h torchpt.h
cosmo:     cosmo.h
lensing:   lensing.h lognormal_grad.h sim.h observation.h catalog.h mask.h
dataset:   dataset.h
nn:        nn.h
diffusion: model.h trained_model.h condition.h train.h posterior.h
mcmc:      mcmc.h fieldpost.h mcmc_run.h
validate:  validate.h validation_run.h
report:    plot.h report.h
sed:       sed.h
"
declare -A owner
while read -r mod hdrs; do
  [ -n "$mod" ] || continue
  for h in $hdrs; do owner[$h]=${mod%:}; done
done <<< "$OWNERS"

for h in "$SRC"/include/jade/*.h; do
  b=$(basename "$h")
  if [ -z "${owner[$b]:-}" ]; then echo "FAILED: include/jade/$b belongs to no module (add it to OWNERS in $0)"; fail=1; fi
done
for d in "$SRC"/src/*/; do
  m=$(basename "$d")
  if ! grep -q "^$m:" <<< "$OWNERS"; then echo "FAILED: src/$m/ is not a module of the table in $0"; fail=1; fi
done

# ---- include graph: "A B" edges ----
inc_edges() {
  local f mod inc tgt
  for f in "$SRC"/src/*/*.[ch] "$SRC"/src/*/*.c.in "$SRC"/include/jade/*.h; do
    [ -e "$f" ] || continue
    case $f in
      "$SRC"/include/jade/*) mod=${owner[$(basename "$f")]:-?} ;;
      *) mod=$(basename "$(dirname "$f")") ;;
    esac
    sed -n 's/^[ \t]*#[ \t]*include[ \t]*"\([^"]*\)".*/\1/p' "$f" | while read -r inc; do
      case $inc in
        jade/*) tgt=${owner[${inc#jade/}]:-?} ;;
        */*) tgt=${inc%%/*} ;;           # "nn/nn_internal.h": private header of src/nn
        *) tgt=$mod ;;                   # "los.h": beside the including file
      esac
      [ "$tgt" = "$mod" ] || echo "$mod $tgt"
    done
  done | sort -u
}

# ---- symbol graph: "A B" edges from the compiled objects ----
sym_edges() {
  local objs
  # the library's object files (target jade_objects; objects left by an older layout of the
  # build tree in other target folders are ignored)
  objs=$(find "$BUILD/CMakeFiles/jade_objects.dir" -path '*/src/*/*.c.o' 2>/dev/null)
  if [ -z "$objs" ]; then echo "NOOBJ"; return; fi
  # module of an object: the folder under src/ in its path
  for o in $objs; do
    m=$(sed 's|.*/src/\([^/]*\)/[^/]*\.c\.o$|\1|' <<< "$o")
    nm "$o" 2>/dev/null | awk -v m="$m" '$2 ~ /^[TDRBC]$/ && $3 ~ /^jade_/ {print "D", m, $3} $1 == "U" && $2 ~ /^jade_/ {print "U", m, $2}'
  done | awk '$1 == "D" {def[$3] = $2} $1 == "U" {use[NR] = $2 " " $3}
              END {for (i in use) {split(use[i], a, " "); if ((a[2] in def) && def[a[2]] != a[1]) print a[1], def[a[2]]}}' | sort -u
}

# cycle check of "A B" edges on stdin; prints "CYCLE a -> b -> ... -> a" if any
find_cycle() {
  awk '{adj[$1] = adj[$1] " " $2; nodes[$1]; nodes[$2]}
       function dfs(u,   n, k, v, i, path) {
         color[u] = 1; stack[++top] = u
         n = split(adj[u], k, " ")
         for (i = 1; i <= n; i++) {
           v = k[i]
           if (color[v] == 1) {
             path = v; for (j = top; j >= 1 && stack[j] != v; j--) path = stack[j] " -> " path
             cycle = v " -> " path; return 1
           }
           if (!color[v] && dfs(v)) return 1
         }
         color[u] = 2; top--; return 0
       }
       END {for (u in nodes) if (!color[u] && dfs(u)) {print "CYCLE " cycle; exit} }'
}

INC=$(inc_edges)
if [ "${1:-}" = --print ]; then
  awk '{a[$1] = a[$1] " " $2} END {for (m in a) print m " ->" a[m]}' <<< "$INC" | sort
  exit 0
fi
if grep -q '?' <<< "$INC"; then echo "FAILED: includes of a header no module owns:"; grep '?' <<< "$INC"; fail=1; fi
c=$(find_cycle <<< "$INC")
if [ -n "$c" ]; then echo "FAILED: include graph has a cycle: ${c#CYCLE }"; fail=1; fi

SYM=$(sym_edges)
if [ "$SYM" = NOOBJ ]; then
  echo "FAILED: no object files of libjade under $BUILD/CMakeFiles (build first)"; fail=1
else
  c=$(find_cycle <<< "$SYM")
  if [ -n "$c" ]; then echo "FAILED: symbol graph has a cycle: ${c#CYCLE }"; fail=1; fi
  # every symbol dependency must be visible as an include dependency (direct or through a
  # header chain): A uses B's functions => A reaches B in the include graph
  while read -r a b; do
    [ -n "$a" ] || continue
    reach=$(awk -v s="$a" '{adj[$1] = adj[$1] " " $2}
      END {q[1] = s; seen[s] = 1; h = 1; t = 1
           while (h <= t) {u = q[h++]; n = split(adj[u], k, " "); for (i = 1; i <= n; i++) if (!seen[k[i]]) {seen[k[i]] = 1; q[++t] = k[i]}}
           for (v in seen) print v}' <<< "$INC")
    if ! grep -qx "$b" <<< "$reach"; then echo "FAILED: src/$a uses symbols of src/$b without including its headers"; fail=1; fi
  done <<< "$SYM"
fi

echo "module include graph:"
awk '{a[$1] = a[$1] " " $2} END {for (m in a) print "  " m " ->" a[m]}' <<< "$INC" | sort
exit $fail
