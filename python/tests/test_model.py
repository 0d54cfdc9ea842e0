"""jade.Model and Model.sample against `jade sample` on the shipped small model: the same seed
and settings give byte-identical output files and the same theta and map bits (read back from
the CLI's theta.npy and maps.fits with numpy alone), from a FITS path, from an array and from
the config's [sample] defaults; the model's properties against the safetensors header; the
summary against numpy; progress callbacks from OpenMP threads; an exception in a callback is
raised after the call; bad inputs raise JadeError with jade's message. Runs under pytest or as
a script (tests/test_python.sh)."""
import json
import os
import struct
import subprocess
import tempfile
import threading

import numpy as np

import jade
from _runner import expect_error

JADE = os.environ.get("JADE", "jade")
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(SRC, "models", "small")
FAST = dict(draws=4, steps=2, solver="dpm2m", seed=3)  # 8 draw-evaluations: about a second
_tmp = tempfile.TemporaryDirectory()
TMP = _tmp.name
_state = {}


def run(*args, cwd=None):
    r = subprocess.run([JADE] + list(args), capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, "jade %s: %s" % (" ".join(args), r.stderr)


def bits(a):
    """the bytes of a, which must be finite (NaN bytes would compare equal)"""
    a = np.ascontiguousarray(a)
    assert np.all(np.isfinite(a)), "non-finite values"
    return a.view(np.uint8)


def obs_path():
    """an observation of the small preset (the model's geometry and noise), made once"""
    p = os.path.join(TMP, "obs.fits")
    if not os.path.exists(p):
        run("observe", "--seed", "1", "--out", p)
    return p


def model():
    if "model" not in _state:
        _state["model"] = jade.Model(MODEL)
    return _state["model"]


def cli_sample():
    """`jade sample` with FAST into TMP/cli (once)"""
    out = os.path.join(TMP, "cli")
    if not os.path.exists(out):
        run("sample", "--model", MODEL, "--obs", obs_path(), "--out", out, "--draws", "4", "--steps", "2", "--solver", "dpm2m",
            "--seed", "3", "--quiet")
    return out


def fits_primary(path):
    """header cards and the big-endian float32 data of a FITS file's primary image (numpy only)"""
    raw = open(path, "rb").read()
    cards, off = {}, 0
    while True:
        block = raw[off:off + 2880]
        off += 2880
        for i in range(0, 2880, 80):
            c = block[i:i + 80].decode("ascii")
            if c.startswith("END "):
                naxis = [int(cards["NAXIS%d" % (k + 1)]) for k in range(int(cards["NAXIS"]))]
                data = np.frombuffer(raw, dtype=">f4", count=int(np.prod(naxis)), offset=off)
                return cards, data.reshape(naxis[::-1]).astype(np.float32)
            if "=" in c[:10]:
                cards[c[:8].strip()] = c[10:].split("/")[0].strip().strip("'").strip()


def test_sample_matches_cli():
    cli = cli_sample()
    m = model()
    out = os.path.join(TMP, "py")
    p = m.sample(obs_path(), out=out, **FAST)
    names = sorted(os.listdir(cli))
    assert names == sorted(os.listdir(out)) and "maps.fits" in names and "chain.npy" in names, (names, os.listdir(out))
    for f in names:
        with open(os.path.join(cli, f), "rb") as a, open(os.path.join(out, f), "rb") as b:
            assert a.read() == b.read(), "%s differs from jade sample's" % f
    # the arrays returned are the CLI's, read back independently
    th = np.load(os.path.join(cli, "theta.npy"))
    assert p.theta.shape == (4, 8) and p.theta.dtype == np.float64 and np.array_equal(bits(p.theta), bits(th))
    cards, maps = fits_primary(os.path.join(cli, "maps.fits"))
    assert p.maps.shape == (4, 5, 32, 32) and p.maps.dtype == np.float32 and np.array_equal(bits(p.maps), bits(maps))
    assert int(cards["TRSTEP"]) == m.step and int(cards["SEED"]) == 3 and int(cards["NDRAWS"]) == 4
    assert p.columns == jade.COLUMNS == ("Omega_c", "Omega_b", "sigma_8", "h", "n_s", "w_0", "Omega_m", "S_8")
    assert (p.draws, p.steps, p.solver, p.seed, p.batch) == (4, 2, "dpm2m", 3, 64)
    # derived columns and the summary against numpy
    om = p["Omega_c"] + p["Omega_b"]
    assert np.array_equal(bits(p["Omega_m"]), bits(om))
    assert np.all(np.abs(p["S_8"] / (p["sigma_8"] * np.sqrt(om / 0.3)) - 1) <= 1e-15)
    for j, nm in enumerate(p.columns):
        s, x = p.summary[nm], p.theta[:, j]
        exp = [x.mean(), x.std(ddof=1)] + list(np.quantile(x, [0.16, 0.5, 0.84]))
        got = [s["mean"], s["std"], s["q16"], s["q50"], s["q84"]]
        assert np.all(np.abs(np.subtract(got, exp)) <= 1e-12 * np.abs(exp) + 1e-15), (nm, got, exp)
    mean, sd = p.map_moments()
    assert np.all(np.abs(mean - p.maps.mean(axis=0, dtype=np.float64)) <= 1e-6 * np.abs(p.maps).max())
    assert np.all(np.abs(sd - p.maps.std(axis=0, ddof=1, dtype=np.float64)) <= 1e-6 * np.abs(p.maps).max())
    expect_error(lambda: p.write(out), "already exists")


def test_array_input_and_config_defaults():
    """the observation as an array (the model's patch and noise) or as read_observation's dict,
    and draws / steps / seed from [sample] keys, give the CLI's bits"""
    th = np.load(os.path.join(cli_sample(), "theta.npy"))
    m = model()
    o = jade.read_observation(obs_path())
    p = m.sample(o["kappa"], noise=o["noise"], **FAST)
    assert np.array_equal(bits(p.theta), bits(th))
    p = m.sample(o, keep_maps=False, solver="dpm2m", sets=["sample.draws=4", "sample.steps=2", "sample.seed=3"])
    assert p.maps is None and (p.draws, p.steps, p.seed) == (4, 2, 3) and np.array_equal(bits(p.theta), bits(th))


def test_model_properties():
    m = model()
    with open(os.path.join(MODEL, "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    shapes = {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
    assert m.tensors() == shapes
    assert m.num_params == sum(int(np.prod(s)) for s in shapes.values()) > 1000000
    assert (m.n_bins, m.n_pix, m.size_deg) == (5, 32, 5.0)
    net = m.network
    assert (net["img_size"], net["channels"], net["n_params"], net["depth"], net["width"]) == (32, 5, 6, 6, 192)
    assert m.path == os.path.join(MODEL, "model.safetensors") and m.step > 0
    noise = jade.read_observation(obs_path())["noise"]
    assert np.all(np.abs(m.noise / noise - 1) < 0.01), (m.noise, noise)
    assert np.all(m.map_std > 0) and np.all(m.theta_std > 0) and m.theta_mean.shape == (6,)
    assert "model.depth" in m.config_text and 0 < m.flow["t_eps"] < 1


def test_progress_from_openmp_threads():
    """two batches of 2 draws: with 2 OpenMP threads each integrates one, and both call the
    Python callback (ctypes takes the GIL on the library's thread)"""
    events, threads = [], set()

    def cb(p):
        events.append(p)
        threads.add(threading.get_ident())

    p = model().sample(obs_path(), draws=4, steps=2, solver="dpm2m", seed=5, batch=2, keep_maps=False, progress=cb)
    assert np.all(np.isfinite(p.theta))
    last = events[-1]
    assert last["tasks_done"] == last["tasks_total"] == 2 and last["steps_done"] == last["steps_total"] == 4, last
    assert last["work_done"] == last["work_total"] == 8.0 and last["eta"] == 0.0, last
    done = [e["steps_done"] for e in events]
    assert done == sorted(done) and all(e["elapsed"] >= 0 and e["work_done"] <= e["work_total"] for e in events)
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if len(os.sched_getaffinity(0)) >= 2 and omp in ("", "2"):
        assert len(threads) == 2, "callbacks came from %d threads" % len(threads)


def test_callback_exception():
    calls = []

    def bad(p):
        calls.append(p)
        raise KeyError("stop here")

    try:
        model().sample(obs_path(), draws=2, steps=1, solver="dpm2m", progress=bad)
    except KeyError as e:
        assert "stop here" in str(e)
    else:
        raise AssertionError("the callback's exception was not raised")
    assert len(calls) == 1  # not called again after it raised
    assert model().sample(obs_path(), draws=2, steps=1, solver="dpm2m").theta.shape == (2, 8)


def test_errors():
    m = model()
    k = jade.read_observation(obs_path())["kappa"]
    expect_error(lambda: m.sample(k[0], draws=2, steps=1), "(bins, n, n)")
    expect_error(lambda: m.sample(k[:3], draws=2, steps=1), "observation has 3 bins of 32x32 pixels but the model")
    bad = k.copy()
    bad[2, 5, 7] = np.nan
    expect_error(lambda: m.sample(bad, draws=2, steps=1), "convergence of bin 2 is nan at pixel (y 5, x 7)")
    expect_error(lambda: m.sample(k, noise=2 * m.noise, draws=2, steps=1), "noise of bin 0 is")
    expect_error(lambda: m.sample(k, draws=2, steps=1, solver="euler"), "euler")
    expect_error(lambda: m.sample(k, draws=0), "draws: 0 is out of range")
    expect_error(lambda: jade.Model(os.path.join(TMP, "nope")), os.path.join(TMP, "nope"))
    small = os.path.join(TMP, "obs16.fits")
    run("observe", "--seed", "1", "--set", "n_pix=16", "--out", small)
    expect_error(lambda: m.sample(small, draws=2, steps=1), small + ": observation has 5 bins of 16x16 pixels")
    expect_error(lambda: m.sample(os.path.join(TMP, "none.fits")), os.path.join(TMP, "none.fits"))
    expect_error(lambda: m.sample(k, draws=2, steps=1, out=cli_sample()), "already exists")
    m2 = jade.Model(MODEL)
    m2.close()
    expect_error(lambda: m2.n_bins, "used after close()")


if __name__ == "__main__":
    import _runner
    _runner.main(globals())
