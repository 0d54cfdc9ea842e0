"""Posterior chains in jade's layout (include/jade/chains.h), the files `jade sample` and
`jade mcmc` write as OUT/chain.*: ROOT.txt (first line '# weight minuslogpost NAME ...'),
ROOT.paramnames (getdist: 'NAME  LATEX', '*' after derived names) and ROOT.npy (float64,
the same columns)."""
import ctypes

import numpy as np

from ._lib import check, lib

__all__ = ["read_chain", "write_chain"]


def read_chain(root):
    """ROOT.npy and ROOT.paramnames as a dict: 'weight', 'minuslogpost' and one float64 array
    per parameter (views of one array, no copies), plus 'labels' {name: LaTeX} and 'derived'
    (the derived names). root: e.g. 'post/chain'."""
    names, labels, derived = [], {}, []
    with open(str(root) + ".paramnames") as f:
        for ln in f:
            if not ln.strip():
                continue
            parts = ln.split(None, 1)
            nm = parts[0]
            if nm.endswith("*"):
                nm = nm[:-1]
                derived.append(nm)
            names.append(nm)
            labels[nm] = parts[1].strip() if len(parts) > 1 else nm
    a = np.load(str(root) + ".npy", mmap_mode="r")
    if a.dtype != np.float64 or a.ndim != 2 or a.shape[1] != 2 + len(names):
        raise ValueError("%s.npy: float64 (n, %d) expected (weight, minuslogpost and the %d parameters of %s.paramnames), "
                         "got %s %s" % (root, 2 + len(names), len(names), root, a.dtype, a.shape))
    out = {"weight": a[:, 0], "minuslogpost": a[:, 1]}
    for j, nm in enumerate(names):
        out[nm] = a[:, 2 + j]
    out["labels"] = labels
    out["derived"] = derived
    return out


def write_chain(root, values, names, latex, n_derived=0, weight=None, minuslogpost=None, comment=None):
    """Write ROOT.txt, ROOT.paramnames, ROOT.npy (jade_chains_write) from values (n, n_params)
    float64 (any row stride: a column slice of a wider C-order array is passed without a
    copy); weight (n,) defaults to 1, minuslogpost (n,) to 0 (for samplers without a density:
    say so in comment). The last n_derived parameters are derived. Non-finite values, negative
    weights and names that are not identifiers raise JadeError and write nothing."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or len(names) != v.shape[1] or len(latex) != v.shape[1]:
        raise ValueError("values: expected (n, %d) for %d names and labels" % (len(names), len(names)))
    if v.strides[1] != 8 or v.strides[0] % 8 or v.strides[0] < 8 * v.shape[1]:
        v = np.ascontiguousarray(v)
    dp = ctypes.POINTER(ctypes.c_double)

    def vec(x):
        if x is None:
            return None, None
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.shape != (v.shape[0],):
            raise ValueError("weight / minuslogpost: expected shape (%d,), got %s" % (v.shape[0], x.shape))
        return x, x.ctypes.data_as(dp)

    w, wp = vec(weight)
    m, mp = vec(minuslogpost)
    n_params = v.shape[1]
    cn = (ctypes.c_char_p * n_params)(*[str(s).encode() for s in names])
    cl = (ctypes.c_char_p * n_params)(*[str(s).encode() for s in latex])
    check(lib.jade_chains_write(str(root).encode(), comment.encode() if comment else None, n_params, cn, cl, int(n_derived),
                                v.shape[0], wp, mp, v.ctypes.data_as(dp), v.strides[0] // 8 if v.shape[0] else n_params))
    del w, m  # kept alive until the call returned
