"""jade.mcmc against `jade mcmc` with the same options on a tiny problem (8 x 8 pixels, 2 bins,
sigma_8 and Omega_c free, hybrid theory, the sizes of tests/test_mcmc_cli.sh cut down): the
chain files are byte-identical, the FITS maps and diagnostics equal but for dates and wall
times; the result carries the health verdict and the chain; progress and message callbacks
are called; settings come from the config's [mcmc] keys as in the CLI; bad options raise
JadeError with jade's message. Runs under pytest or as a script (tests/test_python.sh)."""
import os
import subprocess
import tempfile

import numpy as np

import jade
from _runner import expect_error

JADE = os.environ.get("JADE", "jade")
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETS = ["n_pix=8", "n_bins=2"]
OPTS = ["--free", "sigma_8,Omega_c", "--chains", "2", "--warmup", "8", "--samples", "4", "--max-depth", "3", "--theory", "hybrid"]


def cli(*args):
    cmd = [JADE] + list(args)
    for s in SETS:
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, "%s: %s" % (" ".join(cmd), r.stderr)


def fits_cards_blanked(raw):
    """FITS bytes with the CHECKSUM and DATASUM cards (they carry a date) blanked"""
    b = bytearray(raw)
    for i in range(0, len(b) - 80, 80):
        if b[i:i + 8] in (b"CHECKSUM", b"DATASUM "):
            b[i:i + 80] = b" " * 80
    return bytes(b)


def test_mcmc_matches_cli():
    with tempfile.TemporaryDirectory() as d:
        matches_cli(d)


def matches_cli(d):
    obs = os.path.join(d, "obs.fits")
    cli("observe", "--seed", "1", "--out", obs)
    cli("mcmc", "--obs", obs, "--out", os.path.join(d, "m1"), "--quiet", *OPTS)
    events, notes = [], []
    r = jade.mcmc(jade.Config("small", SETS), obs, os.path.join(d, "m2"), free=["sigma_8", "Omega_c"], chains=2, warmup=8,
                  samples=4, max_depth=3, theory="hybrid", progress=events.append, message=notes.append)
    a, b = os.path.join(d, "m1"), os.path.join(d, "m2")
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b)) and "chain.npy" in names and "diagnostics.txt" in names, names
    for f in names:
        x, y = open(os.path.join(a, f), "rb").read(), open(os.path.join(b, f), "rb").read()
        if f.endswith(".fits"):
            x, y = fits_cards_blanked(x), fits_cards_blanked(y)
        elif f == "diagnostics.txt":  # wall times
            x, y = [b"\n".join(ln for ln in z.split(b"\n") if b"wall time" not in ln) for z in (x, y)]
        assert x == y, "%s differs from jade mcmc's" % f
    c = np.load(os.path.join(a, "chain.npy"))
    assert c.shape == (8, 10) and np.all(np.isfinite(c))
    ch = r["chain"]
    assert np.array_equal(np.column_stack([ch["weight"], ch["minuslogpost"]] + [ch[n] for n in jade.COLUMNS]).view(np.uint64),
                          c.view(np.uint64))
    assert r["finished"] and r["iteration"] == 12 and r["seconds"] > 0
    h = r["health"]
    assert h["draws"] == 8 and h["chains"] == 2 and h["max_rhat"] >= 1 and h["divergent"] >= 0
    assert r["usable"] is False and "ESS" in r["verdict"]  # 4 draws per chain: too few, and said so
    assert events[-1]["iteration"] == 12 and events[-1]["n_chains"] == 2 and events[-1]["rate"] > 0
    assert any("emulator" in n for n in notes), notes
    # [mcmc] keys of the config are the defaults, as for the CLI: the same chain
    ini = os.path.join(d, "m.ini")
    with open(os.path.join(SRC, "configs", "small.ini")) as f, open(ini, "w") as g:
        for ln in f:
            g.write("n_pix = 8\n" if ln.startswith("n_pix =") else "n_bins = 2\n" if ln.startswith("n_bins =") else ln)
        g.write("[mcmc]\nfree = sigma_8,Omega_c\nchains = 2\nwarmup = 8\nsamples = 4\nmax_depth = 3\ntheory = hybrid\n")
    r3 = jade.mcmc(ini, obs, os.path.join(d, "m3"))
    assert np.array_equal(np.load(os.path.join(d, "m3", "chain.npy")).view(np.uint64), c.view(np.uint64))
    assert r3["health"]["draws"] == 8
    expect_error(lambda: jade.mcmc(jade.Config("small", SETS), obs, b), "already exists")


def test_mcmc_errors():
    with tempfile.TemporaryDirectory() as d:
        cfg = jade.Config("small", SETS)
        obs = os.path.join(d, "none.fits")
        out = os.path.join(d, "o")
        expect_error(lambda: jade.mcmc(cfg, obs, out, theory="fast"), "theory: 'fast'")
        expect_error(lambda: jade.mcmc(cfg, obs, out, free="sigma_8,Omega_x"), "Omega_x")
        expect_error(lambda: jade.mcmc(cfg, obs, out, samples=2), "samples: 2 is out of range")
        expect_error(lambda: jade.mcmc(cfg, obs, out, chains=1, warmup=1, samples=4), obs)
        expect_error(lambda: jade.mcmc("small", obs, out, sets=["mcmc.colour=red"]), "mcmc.colour")
        assert os.listdir(d) == [], os.listdir(d)


if __name__ == "__main__":
    import _runner
    _runner.main(globals())
