"""jade.mira / tarp / coverage on exact cases and jade.validate against `jade validate`.

Calibrated case: per truth t a centre m_t, the truth and the S draws all independent
N(m_t, 1) in q dimensions, so the truth is exchangeable with the draws: E[MIRA] is exactly
jade_mira_expected(S) and E[ECP(alpha)] = alpha. Per-truth terms lie in [0, 1], so by
Hoeffding's inequality a mean over T truths is within sqrt(ln(2 k / delta) / (2 T)) of its
expectation for all k grid points at once, except with probability delta = 1e-6: the bounds
used. A 5-sigma shift of the draws must fail them. The per-truth outputs are checked against
numpy recomputations (ranks, intervals from type-6 quantiles, the ECP formula), and the
metrics of `jade validate --keep-draws`'s draws against its summary.json (as
tests/test_validation_run.c --recompute does in C). jade.validate writes what the CLI writes
(timings aside). Runs under pytest or as a script (tests/test_python.sh)."""
import json
import math
import os
import subprocess
import tempfile

import numpy as np

import jade
from _runner import expect_error

JADE = os.environ.get("JADE", "jade")
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(SRC, "models", "small")
T, S, Q = 1000, 50, 3
DELTA = 1e-6


def hoeffding(k=1):
    """bound on |mean - expectation| of T terms in [0, 1], jointly for k means, probability 1 - DELTA"""
    return math.sqrt(math.log(2 * k / DELTA) / (2 * T))


def cases():
    rng = np.random.default_rng(11)
    m = rng.standard_normal((T, 1, Q)) * 2
    truths = (m[:, 0] + rng.standard_normal((T, Q))).astype(np.float32)
    draws = (m + rng.standard_normal((T, S, Q))).astype(np.float32)
    return truths, draws, (draws + 5).astype(np.float32)


def test_mira_exact():
    truths, draws, shifted = cases()
    exp = jade.mira_expected(S)
    n = S - 1
    assert abs(exp - (2 * n + 3) / (3 * (n + 1))) <= 1e-15
    r = jade.mira(truths, draws)
    assert r["p"].shape == (T,) and r["boot"].shape == (100,) and (r["T"], r["S"]) == (T, S)
    assert abs(r["score"] - np.mean(r["p"]) / ((n + 1) / (n + 2))) <= 1e-12, r["score"]
    bound = hoeffding() / ((n + 1) / (n + 2))
    assert abs(r["score"] - exp) <= bound, (r["score"], exp, bound)
    assert r["expected"] == exp and 0 < r["err"] < 0.05
    s = jade.mira(truths, shifted)
    assert s["score"] < exp - bound, (s["score"], exp, bound)  # biased: towards 1/2
    assert abs(jade.mira(truths, draws, seed=5, n_boot=0)["score"] - exp) <= bound
    assert jade.mira(truths, draws, n_boot=0)["boot"] is None


def test_tarp_exact():
    truths, draws, shifted = cases()
    r = jade.tarp(truths, draws)
    a, ecp, count = r["alpha"], r["ecp"], r["count"]
    assert a.shape == ecp.shape == (101,) and count.shape == (T,) and np.all((count >= 0) & (count <= S))
    # the ECP formula of validate.h from the per-truth counts
    mine = np.clip(a[:, None] * (S + 1) - count[None, :], 0, 1).mean(axis=1)
    assert np.all(np.abs(ecp - mine) <= 1e-12), np.abs(ecp - mine).max()
    bound = hoeffding(len(a))
    dev = np.abs(ecp - a)
    assert np.all(dev <= bound) and abs(r["max_dev"] - dev.max()) <= 1e-12, (dev.max(), bound)
    assert np.all(r["lo95"] <= r["lo68"]) and np.all(r["lo68"] <= r["hi68"]) and np.all(r["hi68"] <= r["hi95"])
    s = jade.tarp(truths, shifted)
    assert s["max_dev"] > bound and s["signed_area"] > 0, (s["max_dev"], s["signed_area"], bound)  # bias in 3-D: above
    assert jade.tarp(truths, draws, n_boot=0)["lo68"] is None


def test_coverage_exact():
    truths, draws, shifted = cases()
    r = jade.coverage(truths, draws)
    assert r["rank"].shape == r["z"].shape == (T, Q) and list(r["dims"]) == [0, 1, 2]
    assert np.array_equal(r["rank"], np.sum(draws < truths[:, None, :], axis=1))
    d64 = draws.astype(np.float64)
    z = (d64.mean(axis=1) - truths) / d64.std(axis=1, ddof=1)
    assert np.all(np.abs(r["z"] - z) <= 1e-9 * (1 + np.abs(z)))
    half = math.erf(1 / math.sqrt(2)) / 2
    for key, p in (("in68", half), ("in95", 0.475)):
        lo, hi = np.quantile(d64, [0.5 - p, 0.5 + p], axis=1, method="weibull")  # type 6
        mine = (truths >= lo) & (truths <= hi)
        assert np.sum(mine != r[key]) == 0, key
    b = hoeffding(2 * Q)
    assert np.all(np.abs(r["cov68"] - 2 * half) <= b) and np.all(np.abs(r["cov95"] - 0.95) <= b), (r["cov68"], r["cov95"])
    assert np.all(np.abs(r["offset"]) <= 0.2) and np.all(r["rank_pvalue"] > DELTA)
    s = jade.coverage(truths, shifted, dims=[1])
    assert s["rank"].shape == (T, 1) and s["cov68"][0] < 0.1 and s["offset"][0] > 2 and s["rank_pvalue"][0] < DELTA


def test_metric_errors():
    truths, draws, _ = cases()
    expect_error(lambda: jade.mira(truths, draws[:, :, :2]), "truths (T, q) and draws (T, S, q)")
    expect_error(lambda: jade.tarp(truths[:5], draws), "truths (T, q) and draws (T, S, q)")
    expect_error(lambda: jade.tarp(truths, draws, norm="box"), "norm: 'box'")
    expect_error(lambda: jade.coverage(truths, draws, dims=[3]), "dims")


def run(args, cwd):
    r = subprocess.run([JADE] + args, capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, "jade %s: %s" % (" ".join(args), r.stderr)


TIMING_KEYS = ("sampling_seconds", "seconds_per_obs", "wall_seconds_last_run")


def same_outputs(a, b):
    """every file of the two output folders equal, the wall times aside"""
    names = sorted(os.path.relpath(os.path.join(d, f), a) for d, _, fs in os.walk(a) for f in fs)
    assert names == sorted(os.path.relpath(os.path.join(d, f), b) for d, _, fs in os.walk(b) for f in fs)
    assert "summary.json" in names and "report.html" in names and "records/obs_000003.npy" in names, names
    for f in names:
        pa, pb = os.path.join(a, f), os.path.join(b, f)
        if f == "summary.json":
            ja, jb = json.load(open(pa)), json.load(open(pb))
            for k in TIMING_KEYS:
                assert ja.pop(k) >= 0 and jb.pop(k) >= 0
            assert ja == jb
        elif f == "per_obs.txt":  # column 2: seconds
            la, lb = open(pa).read().splitlines(), open(pb).read().splitlines()
            cut = [[ln if ln.startswith("#") else ln.split(" ", 2)[0] + ln.split(" ", 2)[2] for ln in x] for x in (la, lb)]
            assert cut[0] == cut[1] and len(la) == 6
        elif f.startswith("records/"):  # element 1: seconds
            ra, rb = np.load(pa), np.load(pb)
            ra[1] = rb[1] = 0
            assert ra.shape == rb.shape and ra.view(np.uint64).tobytes() == rb.view(np.uint64).tobytes(), f
        else:
            assert open(pa, "rb").read() == open(pb, "rb").read(), "%s differs" % f


def test_validate_matches_cli():
    with tempfile.TemporaryDirectory() as d:
        validate_matches_cli(d)


def validate_matches_cli(d):
    run(["simulate", "--n", "4", "--seed", "9", "--quiet", "--out", "held"], d)
    held = os.path.join(d, "held")
    os.mkdir(os.path.join(d, "a"))
    os.mkdir(os.path.join(d, "b"))
    # the same relative OUT in two folders: figures and report name the run by its folder
    run(["validate", "--model", MODEL, "--data", held, "--out", "v", "--n-obs", "4", "--draws", "8", "--steps", "2", "--solver",
         "dpm2m", "--keep-draws", "--quiet"], os.path.join(d, "a"))
    events, starts = [], []
    cwd = os.getcwd()
    os.chdir(os.path.join(d, "b"))
    try:
        r = jade.validate(MODEL, held, "v", n_obs=4, draws=8, steps=2, solver="dpm2m", keep_draws=True, progress=events.append,
                          start=starts.append)
    finally:
        os.chdir(cwd)
    same_outputs(os.path.join(d, "a", "v"), os.path.join(d, "b", "v"))
    js = r["summary"]
    assert r["finished"] and r["n_done"] == r["n_obs"] == 4 and js["n_obs"] == 4 and js["draws"] == 8
    assert r["mira_joint"] == js["mira_joint"] or abs(r["mira_joint"] - js["mira_joint"]) <= 1e-8
    assert r["mira_expected"] == jade.mira_expected(8) and r["seconds"] > 0
    assert starts == [{"todo": 4, "n_mine": 4, "workers": starts[0]["workers"]}] and starts[0]["workers"] >= 1
    assert events[-1]["tasks_done"] == events[-1]["tasks_total"] == 4 and events[-1]["work_done"] == events[-1]["work_total"]
    recompute(os.path.join(d, "b", "v"), js)
    expect_error(lambda: jade.validate(MODEL, held, os.path.join(d, "c"), n_obs=5, draws=2, steps=1), "fewer than --n-obs 5")
    expect_error(lambda: jade.validate(os.path.join(d, "nope"), held, os.path.join(d, "c"), n_obs=2), os.path.join(d, "nope"))


def recompute(out, js):
    """the metrics on all kept draws at once (normalised units of summary.json) equal the
    streamed per-observation records' summary"""
    tt, tm = np.load(out + "/truth_theta.npy"), np.load(out + "/truth_maps.npy")
    dt, dm = np.load(out + "/draws_theta.npy"), np.load(out + "/draws_maps.npy")
    n_t, n_s = tt.shape[0], dt.shape[1]
    ms = np.array(js["map_std"])[None, :, None, None]
    mu, sd = np.array(js["theta_mean"]), np.array(js["theta_std"])
    truths = np.concatenate([(tm / ms).reshape(n_t, -1), (tt[:, :6] - mu) / sd], axis=1).astype(np.float32)
    draws = np.concatenate([(dm / ms[:, None]).reshape(n_t, n_s, -1), (dt[:, :, :6] - mu) / sd], axis=2).astype(np.float32)
    m = jade.mira(truths, draws, seed=js["mira_joint_seed"], n_boot=js["n_boot"])
    t = jade.tarp(truths, draws, seed=js["mira_joint_seed"], n_boot=js["n_boot"])
    assert abs(m["score"] - js["mira_joint"]) <= 1e-8 and abs(m["err"] - js["mira_joint_err"]) <= 1e-8, (m["score"], js["mira_joint"])
    assert abs(t["area"] - js["tarp_joint_area"]) <= 1e-6 and abs(t["signed_area"] - js["tarp_joint_signed_area"]) <= 1e-9
    c = jade.coverage(tt.astype(np.float32), dt.astype(np.float32))
    cov = js["coverage"] if "coverage" in js else js
    for k, nm in enumerate(jade.COLUMNS):
        e = cov[nm]
        assert abs(c["cov68"][k] - e["cov68"]) <= 1e-9 and abs(c["cov95"][k] - e["cov95"]) <= 1e-9, nm
        assert abs(c["offset"][k] - e["mean_offset"]) <= 1e-8 and abs(c["rank_pvalue"][k] - e["rank_chi2_p"]) <= 1e-8, nm


if __name__ == "__main__":
    import _runner
    _runner.main(globals())
