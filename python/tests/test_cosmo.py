"""jade.Cosmology / jade.Survey against the C command line on the same configuration: the
tables of `jade cosmo pk|cl|nz|shift` (printed with %.10e) must be reproduced character for
character by formatting the Python results the same way (the same C functions on the same
inputs: any difference is a binding error: a struct layout, an argument order, a unit).
Distances against a direct quadrature of 1/E(z); errors raise jade.JadeError with jade's
message. Runs under pytest, or as a script (python3 test_cosmo.py) when pytest is missing.
Needs JADE (the CLI) in the environment and the package on PYTHONPATH (tests/test_python.sh)."""
import math
import os
import subprocess
import sys

import numpy as np

import jade

JADE = os.environ.get("JADE", "jade")


def cli(*args):
    r = subprocess.run([JADE, "cosmo"] + list(args), capture_output=True, text=True)
    assert r.returncode == 0, "jade cosmo %s: %s" % (" ".join(args), r.stderr)
    return [ln for ln in r.stdout.splitlines() if not ln.startswith("#") and not ln.startswith("z ")]


def rows(*cols):
    for c in cols:  # NaN in both would print the same: the comparison must not pass on it
        assert np.all(np.isfinite(c)), "non-finite values: %s" % (c,)
    return [" ".join("%.10e" % v for v in row) for row in zip(*cols)]


def assert_same(py, c, what):
    assert len(py) == len(c), "%s: %d rows from Python, %d from the CLI" % (what, len(py), len(c))
    for i, (a, b) in enumerate(zip(py, c)):
        assert a == b, "%s: row %d differs:\n python %s\n cli    %s" % (what, i, a, b)


SETS = ["sigma_8=0.9", "Omega_c=0.27", "w_0=-0.9", "n_bins=3"]


def cli_sets():
    out = []
    for s in SETS:
        out += ["--set", s]
    return out


def logspace_c(lo, hi, n):
    """the CLI's grid: lo * pow(hi / lo, i / (n - 1)) (Python's ** is C's pow)"""
    return [lo if n == 1 else lo * math.pow(hi / lo, i / (n - 1)) for i in range(n)]


def test_pk_matches_cli():
    c = jade.Cosmology(jade.Config("small", SETS))
    k = logspace_c(1e-4, 20.0, 60)
    for linear in (False, True):
        args = ["pk", "--z", "0.5", "--n-k", "60"] + (["--linear"] if linear else []) + cli_sets()
        assert_same(rows(k, c.pk(np.array(k), z=0.5, linear=linear)), cli(*args), "pk linear=%s" % linear)


def test_cl_matches_cli():
    cfg = jade.Config("small", SETS)
    c, s = jade.Cosmology(cfg), jade.Survey(cfg)
    assert s.n_bins == 3 and s.pairs == [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    ell = np.array(logspace_c(10.0, 5000.0, 40))
    for conv, linear in ((False, False), (True, True)):
        cl = c.cl(s, ell, convergence=conv, linear=linear)
        assert cl.shape == (40, 6) and cl.dtype == np.float64 and cl.flags.c_contiguous
        args = ["cl", "--ell-min", "10", "--ell-max", "5000", "--n-ell", "40"] + cli_sets()
        args += (["--convergence"] if conv else []) + (["--linear"] if linear else [])
        assert_same(rows(ell, *cl.T), cli(*args), "cl convergence=%s linear=%s" % (conv, linear))


def test_nz_and_shift_match_cli():
    cfg = jade.Config("small", SETS)
    c, s = jade.Cosmology(cfg), jade.Survey(cfg)
    z = np.array([s.z_max * k / 100 for k in range(101)])
    assert_same(rows(z, *s.nz(z)), cli("nz", "--n-z", "101", *cli_sets()), "nz")
    g = cfg._sim().geom
    pix = g.size_deg * 60.0 / g.n_pix
    lam = c.lognormal_shift(s, pix / math.sqrt(math.pi))
    assert lam.shape == (3,)
    assert_same(["%d %.10e" % (i, v) for i, v in enumerate(lam)], cli("shift", *cli_sets()), "shift")


def test_distance_quadrature():
    # chi(z) = c/H0 int_0^z dz'/E(z') by Simpson's rule on 4001 points of jade's own E: the
    # quadrature error (~h^4 E'''' ~ 1e-13) is far below the 1e-5 the library's tabulated
    # chi is tested to (tests/test_cosmo_background.c)
    c = jade.Cosmology("small")
    for zmax in (0.3, 1.0, 3.0):
        z = np.linspace(0.0, zmax, 4001)
        f = 1.0 / c.E(1.0 / (1.0 + z))
        h = z[1] - z[0]
        ref = 2997.92458 * h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())
        got = c.comoving_distance(zmax)
        assert isinstance(got, float) and math.isfinite(got)
        assert abs(got / ref - 1) < 1e-5, "chi(z=%g) = %.10g, quadrature %.10g" % (zmax, got, ref)
    a = np.array([0.3, 0.6, 1.0])
    assert np.all(np.abs(c.a_of_chi(c.chi(a)) - a) < 1e-6)


def test_overrides_match_config():
    # every keyword override (written by field name into the ctypes mirror of the struct)
    # gives what the same value as a config key (read by C) gives: checks the mirror's layout
    cos = {"Omega_c": 0.27, "Omega_b": 0.045, "sigma_8": 0.9, "h": 0.7, "n_s": 0.95, "w_0": -0.9, "T_cmb": 2.7,
           "N_eff": 3.1, "radiation": 0}
    for k, v in cos.items():
        a, b = jade.Cosmology("small", **{k: v}), jade.Cosmology(jade.Config("small", {k: v}))
        kk = np.geomspace(1e-3, 10, 20)
        assert a.params == b.params and a.params[k] == v, k
        assert np.array_equal(a.pk(kk), b.pk(kk)) and not np.array_equal(a.pk(kk), jade.Cosmology().pk(kk)), k
    sur = {"n_bins": ("n_bins", 3), "z_max": ("z_max", 4.0), "smail_alpha": ("nz_alpha", 1.5),
           "smail_beta": ("nz_beta", 0.8), "smail_z0": ("nz_z0", 0.2), "sigma_z": ("sigma_z", 0.08)}
    z = np.linspace(0.0, 3.0, 31)
    c = jade.Cosmology()
    for field, (key, v) in sur.items():
        a, b = jade.Survey("small", **{field: v}), jade.Survey(jade.Config("small", {key: v}))
        assert np.array_equal(a.nz(z), b.nz(z)) and a.n_bins == b.n_bins, field
        assert a.n_bins != 5 or not np.array_equal(a.nz(z), jade.Survey().nz(z)), field
    assert np.array_equal(c.lognormal_shift(jade.Survey("small", n_bins=3), 3.0),
                          c.lognormal_shift(jade.Survey(jade.Config("small", ["n_bins=3"])), 3.0))
    # shape noise: per-pixel noise sigma_e / sqrt(n_i A_pix)
    ref = jade.Survey().pixel_noise(9.375)
    for field, v in (("n_gal", 10.0), ("sigma_e", 0.3)):
        a, b = jade.Survey("small", **{field: v}), jade.Survey(jade.Config("small", {field: v}))
        assert np.array_equal(a.pixel_noise(9.375), b.pixel_noise(9.375)) and not np.array_equal(a.pixel_noise(9.375), ref), field
    s = jade.Survey()
    assert np.allclose(s.bin_density(), 27.0 / 5, rtol=1e-12, atol=0)


def expect_error(fn, *words, kind=None):
    try:
        fn()
    except jade.JadeError as e:
        for w in words:
            assert w in str(e), "message %r lacks %r" % (str(e), w)
        if kind:
            assert e.kind == kind, "kind %s, expected %s" % (e.kind, kind)
        return
    raise AssertionError("no JadeError raised (expected one naming %s)" % (words,))


def test_errors():
    expect_error(lambda: jade.Config("/nonexistent/x.ini"), "/nonexistent/x.ini", kind="io")
    expect_error(lambda: jade.Config("small", ["no_equals_sign"]), "no_equals_sign")
    expect_error(lambda: jade.Cosmology("small", Omega_b=-1.0), "Omega_b", kind="invalid")
    expect_error(lambda: jade.Cosmology(jade.Config("small", ["sigma_8=abc"])), "sigma_8")
    c, s = jade.Cosmology(), jade.Survey()
    expect_error(lambda: c.cl(s, [100.0, -5.0]), "ell[1]", kind="invalid")
    expect_error(lambda: jade.Survey.from_nz_file("/nonexistent/nz.txt", 2), "/nonexistent/nz.txt")
    for bad in (lambda: c.pk([0.1, float("nan")]), lambda: c.chi(float("inf")), lambda: c.lognormal_shift(s, float("nan"))):
        try:
            bad()
        except ValueError:
            continue
        raise AssertionError("non-finite input accepted")
    with jade.Cosmology() as c2:
        assert c2.Omega_m > 0
    expect_error(lambda: c2.chi(0.5), "used after close()")
    s.close()
    expect_error(lambda: c.cl(s, [100.0]), "jade.Survey: used after close()")
    try:
        jade.Cosmology(Omega_x=1)
    except TypeError:
        pass
    else:
        raise AssertionError("unknown parameter accepted")


if __name__ == "__main__":
    import _runner
    _runner.main(globals())
