"""jade.write_chain / jade.read_chain (include/jade/chains.h through ctypes) and a real
`jade mcmc` chain: what is written is read back bit for bit by numpy.genfromtxt(names=True),
numpy.load and jade.read_chain; a column slice of a wider array is written without a copy;
bad input raises JadeError with jade's message and writes no file; the derived columns of
the CLI's chain satisfy Omega_m = Omega_c + Omega_b and S_8 = sigma_8 sqrt(Omega_m / 0.3).
Runs under pytest or as a script (tests/test_python.sh)."""
import os
import subprocess
import sys
import tempfile

import numpy as np

import jade
from _runner import expect_error

JADE = os.environ.get("JADE", "jade")


def bits(x):
    """the bits of x, which must be finite (NaN bits would compare equal)"""
    x = np.ascontiguousarray(x, dtype=np.float64)
    assert np.all(np.isfinite(x)), "non-finite values"
    return x.view(np.uint64)


def test_write_read_round_trip():
    with tempfile.TemporaryDirectory() as d:
        round_trip(d)


def round_trip(d):
    rng = np.random.default_rng(3)
    wide = rng.standard_normal((7, 5)) * np.array([1e-300, 1.0, 1e300, 3.0, 0.1])
    vals = wide[:, 1:4]  # a strided view: 3 of 5 columns
    w = rng.uniform(0, 2, 7)
    mlp = rng.standard_normal(7) * 100
    root = os.path.join(d, "c")
    jade.write_chain(root, vals, ["a", "b_1", "c"], [r"\alpha", "b_1", "c"], n_derived=1, weight=w, minuslogpost=mlp,
                     comment="test\nsecond line")
    t = np.genfromtxt(root + ".txt", names=True)
    assert list(t.dtype.names) == ["weight", "minuslogpost", "a", "b_1", "c"]
    a = np.load(root + ".npy")
    exp = np.column_stack([w, mlp, vals])
    assert np.array_equal(bits(a), bits(exp))
    for j, nm in enumerate(t.dtype.names):
        assert np.array_equal(bits(t[nm]), bits(exp[:, j])), nm
    r = jade.read_chain(root)
    assert r["labels"] == {"a": r"\alpha", "b_1": "b_1", "c": "c"} and r["derived"] == ["c"]
    assert np.array_equal(bits(r["b_1"]), bits(vals[:, 1])) and np.array_equal(bits(r["weight"]), bits(w))
    with open(root + ".txt") as f:
        assert f.read().split("\n")[1:3] == ["# test", "# second line"]
    # defaults: weight 1, minuslogpost 0
    jade.write_chain(root, vals, ["a", "b_1", "c"], ["a", "b", "c"])
    r = jade.read_chain(root)
    assert np.all(r["weight"] == 1.0) and np.all(r["minuslogpost"] == 0.0) and r["derived"] == []


def test_bad_input_writes_nothing():
    with tempfile.TemporaryDirectory() as d:
        bad_input(d)


def bad_input(d):
    root = os.path.join(d, "bad")
    vals = np.ones((4, 2))
    vals[2, 1] = np.nan
    expect_error(lambda: jade.write_chain(root, vals, ["a", "b"], ["a", "b"]), "draw 3: b = nan is not finite")
    expect_error(lambda: jade.write_chain(root, np.ones((4, 2)), ["a", "b c"], ["a", "b"]), "name 'b c' is not an identifier")
    expect_error(lambda: jade.write_chain(root, np.ones((4, 2)), ["a", "b"], ["a", "b"], weight=-np.ones(4)), "draw 1: weight -1")
    assert os.listdir(d) == [], os.listdir(d)


def test_mcmc_chain():
    with tempfile.TemporaryDirectory() as d:
        mcmc_chain(d)


def mcmc_chain(d):
    geom = ["--set", "n_pix=8", "--set", "n_bins=2"]
    obs = os.path.join(d, "obs.fits")
    r = subprocess.run([JADE, "observe", "--seed", "1", "--out", obs] + geom, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = os.path.join(d, "m")
    r = subprocess.run([JADE, "mcmc", "--obs", obs, "--out", out, "--free", "sigma_8,Omega_c", "--chains", "2", "--warmup", "10",
                        "--samples", "6", "--max-depth", "4", "--theory", "hybrid", "--quiet"] + geom, capture_output=True, text=True)
    assert os.path.exists(out + "/chain.npy"), r.stderr
    c = jade.read_chain(out + "/chain")
    assert len(c["weight"]) == 12 and np.all(c["weight"] == 1.0), c["weight"]  # hybrid: exact NUTS, weights 1
    assert np.all(np.isfinite(c["minuslogpost"]))
    assert c["derived"] == ["Omega_m", "S_8"] and c["labels"]["sigma_8"] == r"\sigma_8"
    om = c["Omega_c"] + c["Omega_b"]
    assert np.array_equal(bits(c["Omega_m"]), bits(om))
    s8 = c["sigma_8"] * np.sqrt(om / 0.3)
    assert np.all(np.abs(c["S_8"] - s8) <= 4 * np.finfo(float).eps * s8)
    # the same draws as theta.txt (its log_post = -minuslogpost), to its printed precision
    th = np.loadtxt(out + "/theta.txt")
    assert np.allclose(th[:, 2], -c["minuslogpost"], rtol=1e-9, atol=0) and np.allclose(th[:, 3:], np.column_stack(
        [c[n] for n in ("Omega_c", "Omega_b", "sigma_8", "h", "n_s", "w_0", "Omega_m", "S_8")]), rtol=1e-9, atol=0)


if __name__ == "__main__":
    import _runner
    _runner.main(globals())
