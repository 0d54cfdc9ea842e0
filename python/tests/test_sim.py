"""jade.Simulator, jade.observe, jade.read_observation / read_truth against the CLI on the
same configuration and seed: `jade simulate`'s theta.npy, kappa.npy, lambda.npy and noise.npy
and `jade observe`'s files are reproduced bit for bit (the same C functions on the same
inputs); invalid theta and missing files raise JadeError with jade's message. Runs under
pytest or as a script (tests/test_python.sh)."""
import os
import subprocess
import sys
import tempfile

import numpy as np

import jade
from _runner import expect_error

JADE = os.environ.get("JADE", "jade")
SETS = ["n_pix=16", "n_bins=3"]


def run_cli(*args):
    cmd = [JADE] + list(args)
    for s in SETS:
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, "%s: %s" % (" ".join(cmd), r.stderr)


def bits(a):
    """the bytes of a, which must be finite (NaN bytes would compare equal)"""
    a = np.ascontiguousarray(a)
    assert np.all(np.isfinite(a)), "non-finite values"
    return a.view(np.uint8)


def test_simulate_matches_cli():
    with tempfile.TemporaryDirectory() as d:
        run_cli("simulate", "--n", "3", "--seed", "5", "--quiet", "--out", d + "/sims")
        theta, kappa = np.load(d + "/sims/theta.npy"), np.load(d + "/sims/kappa.npy")
        lam, noise = np.load(d + "/sims/lambda.npy"), np.load(d + "/sims/noise.npy")
    sim = jade.Simulator(jade.Config("small", SETS))
    assert (sim.n_bins, sim.n_pix) == (3, 16) and kappa.shape == (3, 3, 16, 16)
    for i in range(3):
        th = sim.prior_draw(5, i)
        assert np.array_equal(bits(th), bits(theta[i])), "theta %d: %s vs %s" % (i, th, theta[i])
        assert np.isfinite(sim.prior_logpdf(th))
        k, l = sim.run(th, 5, i)
        assert k.dtype == np.float32 and k.shape == (3, 16, 16)
        assert np.array_equal(bits(k), bits(kappa[i])), "kappa %d differs" % i
        assert np.array_equal(bits(l), bits(lam[i])), "lambda %d differs" % i
    assert np.array_equal(bits(sim.noise()), bits(np.asarray(noise, dtype=np.float64).ravel()))
    # another seed or index gives other maps
    assert not np.array_equal(sim.run(theta[0], 5, 1)[0], kappa[0])


def test_observe_matches_cli():
    with tempfile.TemporaryDirectory() as d:
        run_cli("observe", "--seed", "3", "--out", d + "/a.fits")
        jade.observe(jade.Config("small", SETS), 3, d + "/b.fits")
        a, b = jade.read_observation(d + "/a.fits"), jade.read_observation(d + "/b.fits")
        ta, ka = jade.read_truth(d + "/a_truth.fits")
        tb, kb = jade.read_truth(d + "/b_truth.fits")
    assert a["kappa"].shape == (3, 16, 16) and a["from_shear"] and a["mask"] is None
    for k in ("kappa", "noise"):
        assert np.array_equal(bits(a[k]), bits(b[k])), k
    assert a["size_deg"] == b["size_deg"] == 5.0
    assert np.array_equal(bits(ta), bits(tb)) and np.array_equal(bits(ka), bits(kb)) and kb.shape == (3, 16, 16)
    assert np.array_equal(ta, jade.Simulator(jade.Config("small", SETS)).fiducial)
    # the observation is the truth plus noise of the stated size: residual rms within 4 sigma / sqrt(npix)
    # of the per-bin noise (Kaiser-Squires of shear noise keeps its rms on a periodic grid)
    for i in range(3):
        r = float(np.std(a["kappa"][i] - ka[i], dtype=np.float64))
        assert abs(r / a["noise"][i] - 1) < 4 / np.sqrt(2 * 256), (i, r, a["noise"][i])


def test_errors():
    sim = jade.Simulator()
    th = sim.fiducial
    th[1] = 0.0
    expect_error(lambda: sim.run(th, 0, 0), "Omega_b")
    expect_error(lambda: jade.read_observation("/nonexistent/obs.fits"), "/nonexistent/obs.fits")
    expect_error(lambda: jade.read_truth("/nonexistent/obs_truth.fits"), "/nonexistent/obs_truth.fits")
    try:
        sim.run([0.3, 0.05], 0, 0)
    except ValueError:
        pass
    else:
        raise AssertionError("theta of 2 values accepted")


if __name__ == "__main__":
    import _runner
    _runner.main(globals())
