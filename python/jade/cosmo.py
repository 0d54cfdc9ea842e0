"""Cosmology from Python: jade's configuration (presets, files, key=value overrides),
background distances and growth, the linear and halofit P(k), tomographic n(z) and Limber
C_ell, the log-normal shift - the same C functions `jade cosmo pk|cl|shift|nz` prints
(include/jade/cosmo.h). Arrays in and out are float64 numpy arrays; a failed call raises
jade.JadeError with jade's message."""
import ctypes
import math

import numpy as np

from ._lib import JADE_MAX_BINS, CosmoParams, JadeError, SimConfig, SurveyParams, check, lib

__all__ = ["Config", "Cosmology", "Survey"]

_TRANSFER = {"eh": 0, "eh_nowiggle": 1, "bbks": 2}


class _Handle:
    """Owner of one libjade object: created by a jade_*_create call, freed by close() (also
    at garbage collection and at the end of a with block); use after close() raises."""

    _free = None  # name of the jade_*_free function
    _h = None

    def _create(self, create):
        h = ctypes.c_void_p()
        check(create(ctypes.byref(h)))
        self._h = h

    @property
    def handle(self):
        if not self._h:
            raise JadeError("jade.%s: used after close()" % type(self).__name__)
        return self._h

    def close(self):
        if self._h:
            getattr(lib, self._free)(self._h)
            self._h = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _as_config(config):
    if config is None or isinstance(config, str):
        return Config(config)
    if isinstance(config, Config):
        return config
    raise TypeError("config: expected a preset name, a file path or a jade.Config, got %r" % (config,))


class Config(_Handle):
    """A jade configuration: a built-in preset ('small' (the default), 'paper', ...) or an INI
    file, then overrides, as `--config` and `--set` of the command line: sets is a list of
    'key=value' strings or a dict."""

    _free = "jade_config_free"

    def __init__(self, source=None, sets=()):
        self._create(lib.jade_config_create)
        h = self._h
        try:
            name = (source or "small").encode()
            if source is None or lib.jade_config_preset_text(name):
                check(lib.jade_config_load_preset(h, name))
            else:
                check(lib.jade_config_load_file(h, name))
            items = ["%s=%s" % kv for kv in sets.items()] if isinstance(sets, dict) else list(sets)
            for s in items:
                check(lib.jade_config_set(h, str(s).encode()))
        except BaseException:
            self.close()
            raise

    def _sim(self):
        """The simulator's reading of the keys (jade_sim_config_read): cosmology, survey, map."""
        sc = SimConfig()
        check(lib.jade_sim_config_read(self.handle, ctypes.byref(sc)))
        return sc


def _vectorize(f, h, x, *extra):
    """f(h, x_i, *extra) over an array (float for a scalar x)."""
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError("non-finite input: %r" % (x,))
    out = np.fromiter((f(h, float(v), *extra) for v in a.ravel()), dtype=np.float64, count=a.size).reshape(a.shape)
    return float(out) if out.ndim == 0 else out


class Survey(_Handle):
    """Tomographic source bins: the config's Smail n(z) or its nz_file (Survey(config)), or a
    table file (Survey.from_nz_file). Overrides of the survey fields (n_bins, z_max,
    smail_alpha, smail_beta, smail_z0, sigma_z, n_gal, sigma_e) as keywords."""

    _free = "jade_survey_free"

    def __init__(self, config=None, **overrides):
        p = _as_config(config)._sim().survey
        for k, v in overrides.items():
            if k not in dict(SurveyParams._fields_) or k == "nz_file":
                raise TypeError("jade.Survey: unknown field %r" % k)
            setattr(p, k, v)
        self._create(lambda out: lib.jade_survey_create(ctypes.byref(p), out))

    @classmethod
    def from_nz_file(cls, path, n_bins):
        """Bins from an n(z) table file (text, CSV or FITS; jade_survey_read_nz)."""
        s = cls.__new__(cls)
        s._create(lambda out: lib.jade_survey_read_nz(str(path).encode(), int(n_bins), out))
        return s

    @property
    def n_bins(self):
        return lib.jade_survey_n_bins(self.handle)

    @property
    def z_max(self):
        return lib.jade_survey_z_max(self.handle)

    @property
    def pairs(self):
        """Bin pairs in the order of the C_ell columns: (0,0) (0,1) .. (0,n-1) (1,1) .. ."""
        n = self.n_bins
        return [(i, j) for i in range(n) for j in range(i, n)]

    def bin_density(self):
        """Galaxies per arcmin^2 in each bin."""
        return np.array([lib.jade_survey_bin_density(self.handle, b) for b in range(self.n_bins)])

    def pixel_noise(self, pixel_arcmin):
        """Per-pixel convergence noise sigma_e / sqrt(n_i A_pix) of each bin."""
        return np.array([lib.jade_survey_pixel_noise(self.handle, b, float(pixel_arcmin)) for b in range(self.n_bins)])

    def nz(self, z):
        """n_i(z) of every bin (unit integral), shape (n_bins,) + shape(z)."""
        return np.array([_vectorize(lambda h, v, b=b: lib.jade_survey_nz(h, b, v), self.handle, z) for b in range(self.n_bins)])


class Cosmology(_Handle):
    """Flat (w0, wa)CDM cosmology (jade_cosmo): the config's (Cosmology(config)) with
    keyword overrides of jade_cosmo_params fields (Omega_c, Omega_b, h, n_s, sigma_8, w_0,
    w_a, T_cmb, N_eff, radiation, Omega_k, transfer = 'eh' | 'eh_nowiggle' | 'bbks').
    Units: k in h/Mpc, P in (Mpc/h)^3, distances in Mpc/h."""

    _free = "jade_cosmo_free"

    def __init__(self, config=None, **params):
        p = _as_config(config)._sim().cosmo
        for k, v in params.items():
            if k not in dict(CosmoParams._fields_):
                raise TypeError("jade.Cosmology: unknown parameter %r" % k)
            if k == "transfer" and isinstance(v, str):
                if v not in _TRANSFER:
                    raise ValueError("transfer: %r is not one of %s" % (v, ", ".join(_TRANSFER)))
                v = _TRANSFER[v]
            setattr(p, k, v)
        self._create(lambda out: lib.jade_cosmo_create(ctypes.byref(p), out))
        self._p = p

    @classmethod
    def fiducial(cls, **params):
        """The spec's fiducial parameters (jade_cosmo_params_fiducial) with overrides."""
        p = lib.jade_cosmo_params_fiducial()
        base = {k: getattr(p, k) for k, _ in CosmoParams._fields_}
        base.update(params)
        return cls(Config("small"), **base)

    @property
    def params(self):
        return {k: getattr(self._p, k) for k, _ in CosmoParams._fields_}

    @property
    def Omega_m(self):
        return lib.jade_cosmo_Omega_m(self.handle)

    def E(self, a):
        """H(a) / H0."""
        return _vectorize(lib.jade_cosmo_E, self.handle, a)

    def chi(self, a):
        """Comoving radial distance to scale factor a [Mpc/h]."""
        return _vectorize(lib.jade_cosmo_chi, self.handle, a)

    def comoving_distance(self, z):
        """Comoving radial distance to redshift z [Mpc/h]."""
        return self.chi(1.0 / (1.0 + np.asarray(z, dtype=np.float64)))

    def a_of_chi(self, chi):
        return _vectorize(lib.jade_cosmo_a_of_chi, self.handle, chi)

    def growth(self, a):
        """Linear growth D(a), D(1) = 1."""
        return _vectorize(lib.jade_cosmo_growth, self.handle, a)

    def growth_rate(self, a):
        """f = d ln D / d ln a."""
        return _vectorize(lib.jade_cosmo_growth_rate, self.handle, a)

    def pk(self, k, z=0.0, linear=False):
        """Matter power spectrum P(k, z) [(Mpc/h)^3] at k [h/Mpc]: halofit (Takahashi et al.
        2012) unless linear (Eisenstein & Hu 1998 / BBKS)."""
        f = lib.jade_cosmo_pk_lin if linear else lib.jade_cosmo_pk_nl
        return _vectorize(f, self.handle, k, 1.0 / (1.0 + float(z)))

    def sigma_R(self, R, z=0.0):
        """rms linear density in top-hat spheres of radius R [Mpc/h]."""
        return _vectorize(lib.jade_cosmo_sigma_R, self.handle, R, 1.0 / (1.0 + float(z)))

    def cl(self, survey, ell, convergence=False, linear=False):
        """Limber C_ell of every bin pair, shape (len(ell), n_pairs), columns in
        survey.pairs order: shear E-mode (or the bare convergence integral with
        convergence=True), halofit P(k) unless linear."""
        ell = np.ascontiguousarray(ell, dtype=np.float64)
        if ell.ndim != 1 or ell.size < 1:
            raise ValueError("ell: expected a non-empty 1-D array")
        npairs = len(survey.pairs)
        out = np.empty((ell.size, npairs), dtype=np.float64)
        dp = ctypes.POINTER(ctypes.c_double)
        check(lib.jade_cosmo_limber_cl(self.handle, survey.handle, ell.size, ell.ctypes.data_as(dp), 1 if convergence else 0,
                                       0 if linear else 1, out.ctypes.data_as(dp)))
        return out

    def lognormal_shift(self, survey, theta_arcmin):
        """Log-normal shift lambda of each bin for the convergence smoothed with a top-hat of
        radius theta_arcmin (jade cosmo shift uses the pixel side / sqrt(pi))."""
        if not (isinstance(theta_arcmin, (int, float)) and math.isfinite(theta_arcmin)):
            raise ValueError("theta_arcmin: expected a finite number")
        out = np.empty(JADE_MAX_BINS, dtype=np.float64)
        check(lib.jade_cosmo_lognormal_shift(self.handle, survey.handle, float(theta_arcmin),
                                             out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))))
        return out[:survey.n_bins].copy()
