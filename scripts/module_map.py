#!/usr/bin/env python3
"""Draw libjade's module map (docs/figures/architecture.svg) from the include graph that
tests/test_module_graph.sh --print prints ("A -> B C" lines on stdin). Each module sits one
layer above the highest module it depends on; arrows point from a module to what it uses.
Standard library only.  Usage:
  JADE=build/jade bash tests/test_module_graph.sh --print | python3 scripts/module_map.py OUT.svg
"""
import sys

deps = {}
for line in sys.stdin:
    if "->" not in line:
        continue
    a, b = line.split("->")
    deps[a.strip()] = [m for m in b.split() if m != "?"]
for ms in list(deps.values()):
    for m in ms:
        deps.setdefault(m, [])
deps["app (CLI)"] = sorted(m for m in deps if m not in ("app (CLI)",))  # the CLI calls every module

layer = {}
def depth(m, seen=()):
    if m in layer:
        return layer[m]
    if m in seen:
        raise SystemExit("cycle through " + m)
    layer[m] = 1 + max((depth(d, seen + (m,)) for d in deps[m]), default=-1)
    return layer[m]
for m in deps:
    depth(m)

W, H, BW, BH, GAP = 760, 0, 96, 30, 70
rows = {}
for m, l in layer.items():
    rows.setdefault(l, []).append(m)
nl = max(rows) + 1
H = nl * GAP + 30
pos = {}
for l, ms in rows.items():
    ms.sort()
    for i, m in enumerate(ms):
        x = (i + 1) * W / (len(ms) + 1)
        y = H - 30 - l * GAP
        pos[m] = (x, y)
out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="13">' % (W, H),
       '<defs><marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto">'
       '<path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker></defs>',
       '<rect width="100%" height="100%" fill="white"/>']
for m, ds in deps.items():
    if m == "app (CLI)":
        continue
    x0, y0 = pos[m]
    for d in ds:
        x1, y1 = pos[d]
        out.append('<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#aaa" marker-end="url(#a)"/>'
                   % (x0, y0 + BH / 2, x1, y1 - BH / 2))
for m, (x, y) in pos.items():
    fill = "#fde9c8" if m == "app (CLI)" else "#dbe8f6"
    out.append('<rect x="%.0f" y="%.0f" width="%d" height="%d" rx="5" fill="%s" stroke="#456"/>' % (x - BW / 2, y - BH / 2, BW, BH, fill))
    out.append('<text x="%.0f" y="%.0f" text-anchor="middle">%s</text>' % (x, y + 4, m))
out.append('<text x="8" y="16" fill="#555">libjade modules (src/&lt;module&gt;/): arrows point to the modules each one uses; the CLI (app/) uses them all</text>')
out.append("</svg>")
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    f.write("\n".join(out) + "\n")
import os
os.replace(tmp, sys.argv[1])
