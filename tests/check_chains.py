"""Check a jade chain ROOT (include/jade/chains.h) with numpy, the way a cosmologist reads it:
numpy.genfromtxt(ROOT.txt, names=True) must give the columns weight, minuslogpost and the
expected parameter names in order, and every value must equal ROOT.npy's exactly (same bits);
ROOT.paramnames must list the parameters in the same order ('*' after derived ones).
Usage: python3 check_chains.py ROOT NAME... (exit 0 when all hold; a message per failure)."""
import sys

import numpy as np


def main():
    root, names = sys.argv[1], sys.argv[2:]
    fails = []
    t = np.genfromtxt(root + ".txt", names=True)
    if t.ndim == 0:  # a single draw
        t = t.reshape(1)
    want = ["weight", "minuslogpost"] + names
    got = list(t.dtype.names)
    if got != want:
        fails.append("genfromtxt(names=True) names %s, expected %s" % (got, want))
    a = np.load(root + ".npy")
    if a.dtype != np.float64 or a.ndim != 2 or a.shape != (len(t), len(want)):
        fails.append("%s.npy: dtype %s shape %s, expected float64 (%d, %d)" % (root, a.dtype, a.shape, len(t), len(want)))
    else:
        for j, nm in enumerate(got):
            col = np.ascontiguousarray(t[nm], dtype=np.float64)
            if not np.all(np.isfinite(col)):
                fails.append("column %s: not finite" % nm)
            if col.view(np.uint64).tolist() != np.ascontiguousarray(a[:, j]).view(np.uint64).tolist():
                fails.append("column %s: the text and the .npy differ" % nm)
    pn = [ln.split(None, 1)[0] for ln in open(root + ".paramnames") if ln.strip()]
    if [p.rstrip("*") for p in pn] != names:
        fails.append("%s.paramnames names %s, expected %s" % (root, pn, names))
    for f in fails:
        print("FAILED: %s: %s" % (root, f))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
