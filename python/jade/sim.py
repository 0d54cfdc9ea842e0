"""Simulation and mock observations from Python: prior draws of theta = (Omega_c, Omega_b,
sigma_8, h, n_s, w_0), noise-free log-normal convergence maps (include/jade/sim.h: the
functions `jade simulate` runs, so the same seed and index give the same bytes), and
observation files (include/jade/observation.h: `jade observe` writes them, `jade sample` and
`jade mcmc` read them)."""
import ctypes

import numpy as np

from ._lib import JADE_N_THETA, Observation, check, lib, libc
from .cosmo import _as_config, _Handle

__all__ = ["THETA_NAMES", "Simulator", "observe", "read_observation", "read_truth"]

THETA_NAMES = ("Omega_c", "Omega_b", "sigma_8", "h", "n_s", "w_0")
_dp = ctypes.POINTER(ctypes.c_double)
_fp = ctypes.POINTER(ctypes.c_float)


def _theta(theta):
    t = np.ascontiguousarray(theta, dtype=np.float64)
    if t.shape != (JADE_N_THETA,):
        raise ValueError("theta: expected %d values %s, got shape %s" % (JADE_N_THETA, THETA_NAMES, t.shape))
    return t


class Simulator(_Handle):
    """The config's simulator (survey, map geometry, prior): Simulator(config) with config a
    preset name, an INI file or a jade.Config. One Simulator per thread."""

    _free = "jade_simulator_free"

    def __init__(self, config=None):
        self._sc = _as_config(config)._sim()
        self._create(lambda out: lib.jade_simulator_create(ctypes.byref(self._sc), out))

    @property
    def n_bins(self):
        return self._sc.geom.n_bins

    @property
    def n_pix(self):
        return self._sc.geom.n_pix

    @property
    def size_deg(self):
        return self._sc.geom.size_deg

    @property
    def fiducial(self):
        """The config's cosmology as theta."""
        c = self._sc.cosmo
        return np.array([getattr(c, n) for n in THETA_NAMES])

    def prior_draw(self, seed, index):
        """theta number `index` of the prior for `seed` (jade_prior_draw: what `jade simulate
        --seed SEED` draws for its simulation `index`)."""
        th = np.empty(JADE_N_THETA)
        lib.jade_prior_draw(ctypes.byref(self._sc), int(seed), int(index), th.ctypes.data_as(_dp))
        return th

    def prior_logpdf(self, theta):
        """log prior density (-inf outside the support; not renormalised)."""
        t = _theta(theta)
        return lib.jade_prior_logpdf(ctypes.byref(self._sc), t.ctypes.data_as(_dp))

    def run(self, theta, seed, index):
        """Noise-free convergence maps float32 (n_bins, n_pix, n_pix) at theta with the white
        noise of (seed, index), and the log-normal shifts lambda (n_bins,)."""
        t = _theta(theta)
        check(lib.jade_theta_check(t.ctypes.data_as(_dp)))
        kappa = np.empty((self.n_bins, self.n_pix, self.n_pix), dtype=np.float32)
        lam = np.empty(self.n_bins)
        check(lib.jade_simulator_run(self.handle, t.ctypes.data_as(_dp), int(seed), int(index), kappa.ctypes.data_as(_fp),
                                     lam.ctypes.data_as(_dp), None, None))
        return kappa, lam

    def noise(self):
        """Per-pixel convergence noise sigma of each bin."""
        s = np.empty(self.n_bins)
        lib.jade_simulator_noise(self.handle, s.ctypes.data_as(_dp))
        return s


def observe(config, seed, path):
    """Simulate at the config's cosmology with `seed` and write the observation FITS file at
    path and its truth file (as `jade observe --seed SEED --out PATH`)."""
    sc = _as_config(config)._sim()
    check(lib.jade_observation_make(ctypes.byref(sc), int(seed), str(path).encode()))


def _array(ptr, shape):
    return np.ctypeslib.as_array(ptr, shape=shape).copy() if ptr else None


def read_observation(path):
    """An observation file (shear, converted with Kaiser-Squires, or convergence) as a dict:
    kappa float32 (n_bins, n, n), noise (n_bins,), size_deg, from_shear, mask and noise_map
    (float32 arrays or None), masked_fraction."""
    o = Observation()
    check(lib.jade_observation_read(str(path).encode(), ctypes.byref(o)))
    try:
        shape = (o.n_bins, o.n_pix, o.n_pix)
        return {"kappa": _array(o.kappa, shape), "noise": np.array(o.noise[:o.n_bins]), "size_deg": o.size_deg,
                "from_shear": bool(o.from_shear), "mask": _array(o.mask, shape), "noise_map": _array(o.noise_map, shape),
                "masked_fraction": o.masked_fraction}
    finally:
        lib.jade_observation_free(ctypes.byref(o))


def read_truth(path):
    """theta (6,) and the noise-free kappa float32 (n_bins, n, n) of a truth file
    (OBS_truth.fits, written beside OBS.fits by observe)."""
    th = np.empty(JADE_N_THETA)
    k = _fp()
    nb, n = ctypes.c_int(), ctypes.c_int()
    check(lib.jade_observation_read_truth(str(path).encode(), th.ctypes.data_as(_dp), ctypes.byref(k), ctypes.byref(nb),
                                          ctypes.byref(n)))
    try:
        return th, _array(k, (nb.value, n.value, n.value))
    finally:
        libc.free(ctypes.cast(k, ctypes.c_void_p))
