"""Trained models and posterior sampling from Python: jade.Model loads a `jade train` MODELDIR
or .safetensors file (include/jade/train.h), Model.sample draws joint posterior samples of
(convergence maps, theta) for one observation (include/jade/posterior.h) - the C functions
`jade sample` runs, with its defaults, so the same seed gives the same bytes - and
Posterior.write writes the files of `jade sample --out`."""
import ctypes
import os
import shutil

import numpy as np

from ._lib import (JADE_MAX_BINS, JADE_POSTERIOR_COLS, PROGRESS_FN, Callback, JadeError, Observation, PosteriorOptions, SummaryStat,
                   TrainedModel, check, config_dump, invalid, lib, struct_dict)
from .cosmo import Config, _Handle

__all__ = ["COLUMNS", "Model", "Posterior", "matmul", "set_matmul"]

# the theta columns of the outputs (jade_posterior_col_names): the six parameters, Omega_m, S_8
COLUMNS = tuple(ctypes.cast(ctypes.c_void_p.in_dll(lib, "jade_posterior_col_names"), ctypes.POINTER(ctypes.c_char_p))[i].decode()
                for i in range(JADE_POSTERIOR_COLS))
_dp = ctypes.POINTER(ctypes.c_double)
_fp = ctypes.POINTER(ctypes.c_float)
_PROGRESS_KEYS = ("steps_done", "steps_total", "tasks_done", "tasks_total", "work_done", "work_total", "elapsed", "rate", "eta")


_MATMUL = {"auto": 0, "f32": 1, "bf16": 2}
lib.jade_matmul_set_backend.restype = ctypes.c_int
lib.jade_matmul_set_backend.argtypes = [ctypes.c_int]
lib.jade_matmul_get_backend.restype = ctypes.c_int
lib.jade_matmul_get_backend.argtypes = []
lib.jade_matmul_backend_name.restype = ctypes.c_char_p
lib.jade_matmul_backend_name.argtypes = [ctypes.c_int]


def set_matmul(backend):
    """The matmul backend of every later network evaluation (process-wide): 'auto' (the bf16
    AVX512-BF16 kernel when the CPU has it, else fp32), 'f32' (bitwise the same on every
    machine) or 'bf16'. At import the package sets JADE_MATMUL's value (default auto), as the
    CLI does, so that sampling gives the CLI's bytes."""
    if backend not in _MATMUL:
        raise invalid("matmul backend %r: expected auto, f32 or bf16" % (backend,))
    check(lib.jade_matmul_set_backend(_MATMUL[backend]))


def matmul():
    """The matmul backend in use: 'f32-cblas' or 'bf16'."""
    return lib.jade_matmul_backend_name(lib.jade_matmul_get_backend()).decode()


_env = os.environ.get("JADE_MATMUL") or "auto"
if _env not in _MATMUL:
    raise ImportError("jade: JADE_MATMUL='%s': expected auto, f32 or bf16" % _env)
try:
    set_matmul(_env)
except JadeError as e:
    raise ImportError("jade: JADE_MATMUL=%s: %s" % (_env, e)) from None


def progress_callback(fn):
    """Callback over jade_progress_fn: fn receives a dict of the jade_progress fields."""
    return Callback(fn, lambda p: {k: getattr(p.contents, k) for k in _PROGRESS_KEYS}, PROGRESS_FN)


def _solver(name):
    s = ctypes.c_int()
    check(lib.jade_solver_parse(str(name).encode(), ctypes.byref(s)))
    return s.value


def _int(name, v, lo, hi):
    """An integer option in [lo, hi] (a JadeError naming it otherwise), as the CLI checks it."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise invalid("%s: %r is not an integer" % (name, v))
    if not lo <= v <= hi:
        raise invalid("%s: %d is out of range [%d, %d]" % (name, v, lo, hi))
    return int(v)


class _Obs:
    """An observation for the sampler: a jade_observation (owned by the library when read from
    a file) and the path or label that names it in messages and output headers."""

    def __init__(self, obs, model, noise=None, size_deg=None):
        self.st = Observation()
        self.owned = False
        self._keep = None
        if isinstance(obs, (str, bytes, os.PathLike)):
            self.path = os.fsdecode(obs)
            check(lib.jade_observation_read(self.path.encode(), ctypes.byref(self.st)))
            self.owned = True
            return
        if isinstance(obs, dict):  # what jade.read_observation returns
            self.path = obs.get("path", "<observation>")
            kappa, noise = obs["kappa"], obs["noise"] if noise is None else noise
            size_deg = obs["size_deg"] if size_deg is None else size_deg
            mask, noise_map = obs.get("mask"), obs.get("noise_map")
        else:
            self.path, kappa, mask, noise_map = "<array>", obs, None, None
        k = np.asarray(kappa)
        if k.ndim != 3 or k.shape[1] != k.shape[2] or not 1 <= k.shape[0] <= JADE_MAX_BINS:
            raise invalid("%s: convergence maps of shape (bins, n, n) with 1 to %d bins expected, got shape %s"
                          % (self.path, JADE_MAX_BINS, k.shape))
        k = np.ascontiguousarray(k, dtype=np.float32)
        nb, n = k.shape[0], k.shape[1]
        if noise is None:  # the training noise (bins the model lacks fail the geometry check)
            noise = np.concatenate([model.noise, np.zeros(JADE_MAX_BINS)])[:nb]
        nz = np.asarray(noise, dtype=np.float64).ravel()
        if nz.size != nb:
            raise invalid("%s: %d noise levels given for %d bins" % (self.path, nz.size, nb))
        self.st.n_bins, self.st.n_pix = nb, n
        self.st.size_deg = float(model.size_deg if size_deg is None else size_deg)
        for i in range(nb):
            self.st.noise[i] = nz[i]
        self.st.kappa = k.ctypes.data_as(_fp)
        keep = [k]
        if mask is not None:
            m = np.ascontiguousarray(mask, dtype=np.float32)
            if m.shape != k.shape:
                raise invalid("%s: mask of shape %s for maps of shape %s" % (self.path, m.shape, k.shape))
            self.st.mask = m.ctypes.data_as(_fp)
            self.st.masked_fraction = float(np.mean(m == 0))
            keep.append(m)
        if noise_map is not None:
            s = np.ascontiguousarray(noise_map, dtype=np.float32)
            if s.shape != k.shape:
                raise invalid("%s: noise map of shape %s for maps of shape %s" % (self.path, s.shape, k.shape))
            self.st.noise_map = s.ctypes.data_as(_fp)
            keep.append(s)
        self._keep = keep

    @property
    def kappa_ptr(self):
        return self.st.kappa

    def info(self):
        """A copy of what jade_posterior_write reads (geometry and noise; no pixels)."""
        o = Observation()
        o.n_bins, o.n_pix, o.size_deg, o.from_shear = self.st.n_bins, self.st.n_pix, self.st.size_deg, self.st.from_shear
        for i in range(self.st.n_bins):
            o.noise[i] = self.st.noise[i]
        return o

    def close(self):
        if self.owned:
            lib.jade_observation_free(ctypes.byref(self.st))
            self.owned = False
        self._keep = None


def _write_dir(out, write):
    """Create out atomically: write(tmp) fills out.tmp.<pid>, renamed to out when complete and
    removed on failure (as `jade sample`); out must not exist."""
    out = os.fspath(out)
    if os.path.lexists(out):
        raise JadeError("%s: already exists (choose another out or remove it)" % out, 2)
    tmp = "%s.tmp.%d" % (out, os.getpid())
    try:
        write(tmp)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class Model(_Handle):
    """A trained JADE model: Model(path) with path a `jade train` MODELDIR or a .safetensors
    file (jade_trained_model_load). Properties describe what it was trained on; sample()
    draws posterior samples. One sample() at a time per Model (threads run inside it)."""

    _free = "jade_trained_model_free"

    def __init__(self, path):
        self._create(lambda out: lib.jade_trained_model_load(os.fsencode(path), out))
        self._tm = ctypes.cast(self._h, ctypes.POINTER(TrainedModel)).contents

    @property
    def _st(self):
        self.handle  # raises after close()
        return self._tm

    @property
    def path(self):
        """The .safetensors file read."""
        return self._st.path.decode()

    @property
    def n_bins(self):
        return self._st.norm.n_bins

    @property
    def n_pix(self):
        return self._st.norm.n_pix

    @property
    def size_deg(self):
        return self._st.norm.size_deg

    @property
    def noise(self):
        """Per-pixel convergence noise sigma of each bin in the training data."""
        return np.array(self._st.norm.noise[:self.n_bins])

    @property
    def map_std(self):
        return np.array(self._st.norm.map_std[:self.n_bins])

    @property
    def theta_mean(self):
        return np.array(self._st.norm.theta_mean[:])

    @property
    def theta_std(self):
        return np.array(self._st.norm.theta_std[:])

    @property
    def step(self):
        """Training steps done."""
        return self._st.step

    @property
    def num_params(self):
        """Number of network weights (the sum over tensors())."""
        return sum(int(np.prod(shape)) for shape in self.tensors().values())

    def tensors(self):
        """The network's named weight tensors: {name: shape}, in the model's order."""
        mp = self._st.model
        out = {}
        for i in range(lib.jade_model_num_tensors(mp)):
            t = lib.jade_model_tensor(mp, i).contents
            out[t.name.decode()] = tuple(t.shape[:t.ndim])
        return out

    @property
    def network(self):
        """The network's configuration (jade_model_config: img_size, channels, depth, width, ...)."""
        return struct_dict(lib.jade_model_get_config(self._st.model).contents)

    @property
    def flow(self):
        return struct_dict(self._st.flow)

    @property
    def config_text(self):
        """The configuration stored in the model ('' if none)."""
        t = self._st.config_text
        return t.decode() if t else ""

    def config(self, config=None, sets=()):
        """The configuration `jade sample` reads its [sample] defaults from: config (a preset,
        an INI file or a jade.Config) if given, else the model's stored config over the 'small'
        preset; then the overrides sets ('key=value' strings or a dict)."""
        if isinstance(config, Config):
            if sets:
                raise TypeError("sets: apply them to the jade.Config given")
            return config
        if config is not None:
            return Config(config, sets)
        c = Config("small")
        if self.config_text:
            check(lib.jade_config_load_string(c.handle, self._st.config_text, self._st.path))
        items = ["%s=%s" % kv for kv in sets.items()] if isinstance(sets, dict) else list(sets)
        for s in items:
            check(lib.jade_config_set(c.handle, str(s).encode()))
        return c

    def check(self, obs, noise_rtol=0.01, noise=None, size_deg=None):
        """Raise JadeError unless obs suits the model (jade_posterior_check: bins, pixels, patch
        size, per-bin noise within noise_rtol of the training noise (< 0: not checked), finite
        pixels); obs as in sample()."""
        o = _Obs(obs, self, noise, size_deg)
        try:
            check(lib.jade_posterior_check(self.handle, ctypes.byref(o.st), o.path.encode(), float(noise_rtol)))
        finally:
            o.close()

    def sample(self, obs, draws=None, steps=None, solver="heun", seed=None, batch=None, threads=0, progress=None,
               keep_maps=True, out=None, noise_rtol=0.01, noise=None, size_deg=None, config=None, sets=()):
        """Posterior draws of (maps, theta) given one observation, as `jade sample`.

        obs: an observation FITS path, the dict of jade.read_observation, or a float32 array
        (bins, n, n) of convergence (then the patch is size_deg (default the model's) and the
        noise noise (default the model's training noise)). draws, steps, seed, batch: None
        takes the config's [sample] keys as the CLI does (256, 128, 0, 64 in the presets);
        solver 'heun' (the paper's, 2 steps - 1 network evaluations per draw) or 'dpm2m';
        threads 0 (whole batches per OpenMP thread when there are enough), 1 (threads inside
        the network, the CLI's --inner-threads) or a maximum; progress: a callable receiving
        a dict (steps_done, steps_total, tasks_done, tasks_total, work_done, work_total,
        elapsed, rate, eta) after every step of every batch, from one thread at a time;
        keep_maps False keeps theta only (--no-maps); out: also write the directory of
        `jade sample --out` (must not exist); noise_rtol < 0: accept any observation noise
        (--ignore-noise). Returns a jade.Posterior."""
        cfg = self.config(config, sets)
        n = ctypes.c_long()
        defaults = {}
        for key, lo, hi in (("draws", 1, 100000000), ("steps", 1, 1000000), ("seed", 0, 0x7fffffffffffffff),
                            ("batch", 1, 1000000)):
            check(lib.jade_config_get_int(cfg.handle, ("sample." + key).encode(), lo, hi, ctypes.byref(n)))
            defaults[key] = (n.value, lo, hi)
        check(lib.jade_config_check_unused(cfg.handle, (ctypes.c_char_p * 2)(b"sample", None)))
        given = {"draws": draws, "steps": steps, "seed": seed, "batch": batch}
        val = {k: (d[0] if given[k] is None else _int(k, given[k], d[1], d[2])) for k, d in defaults.items()}
        po = PosteriorOptions()
        lib.jade_posterior_options_default(ctypes.byref(po))
        po.n_draws, po.n_steps, po.seed, po.batch = val["draws"], val["steps"], val["seed"], val["batch"]
        po.solver = _solver(solver)
        po.threads = _int("threads", threads, 0, 1 << 30)
        text = config_dump(cfg.handle)
        po.config_text = text
        if out is not None and os.path.lexists(os.fspath(out)):
            raise JadeError("%s: already exists (choose another out or remove it)" % os.fspath(out), 2)
        o = _Obs(obs, self, noise, size_deg)
        try:
            check(lib.jade_posterior_check(self.handle, ctypes.byref(o.st), o.path.encode(), float(noise_rtol)))
            nb, npx = o.st.n_bins, o.st.n_pix
            theta = np.empty((po.n_draws, JADE_POSTERIOR_COLS), dtype=np.float64)
            maps = np.empty((po.n_draws, nb, npx, npx), dtype=np.float32) if keep_maps else None
            cb = progress_callback(progress)
            if progress is not None:
                po.progress = cb.c
            # the observation's mask and noise: a masked model conditions on them
            po.mask, po.noise_map = o.st.mask, o.st.noise_map
            po.noise = ctypes.cast(ctypes.addressof(o.st) + Observation.noise.offset, _dp)
            st = lib.jade_posterior_sample(self.handle, o.kappa_ptr, ctypes.byref(po), None,
                                           maps.ctypes.data_as(_fp) if maps is not None else None, theta.ctypes.data_as(_dp))
            po.progress = PROGRESS_FN()
            cb.raise_pending()
            check(st)
            post = Posterior(self, o.info(), o.path, po, text, theta, maps)
        finally:
            o.close()
        if out is not None:
            post.write(out)
        return post


class Posterior:
    """Posterior draws of one observation (Model.sample): theta float64 (draws, 8) with columns
    COLUMNS (Omega_c Omega_b sigma_8 h n_s w_0 Omega_m S_8), maps float32 (draws, bins, n, n)
    convergence (None with keep_maps=False), summary {column: {mean, std, q16, q50, q84}}
    (jade_posterior_summary), and the settings used (draws, steps, solver, seed, batch).
    p['S_8'] is a column of theta."""

    columns = COLUMNS

    def __init__(self, model, obs_info, obs_path, po, config_text, theta, maps):
        self.model, self._obs, self.obs_path, self._po, self._text = model, obs_info, obs_path, po, config_text
        self.theta, self.maps = theta, maps
        self.draws, self.steps, self.seed, self.batch = po.n_draws, po.n_steps, po.seed, po.batch
        self.solver = ("heun", "dpm2m")[po.solver]
        self.summary = {}
        for j, name in enumerate(COLUMNS):
            s = SummaryStat()
            lib.jade_posterior_summary(theta[:, j:].ctypes.data_as(_dp), po.n_draws, JADE_POSTERIOR_COLS, ctypes.byref(s))
            self.summary[name] = struct_dict(s)

    def __getitem__(self, name):
        return self.theta[:, COLUMNS.index(name)]

    def __len__(self):
        return self.draws

    def map_moments(self):
        """Mean and standard deviation (ddof 1) over the draws of every pixel, float32
        (bins, n, n) each (jade_draw_moments: summed in double)."""
        if self.maps is None:
            raise invalid("posterior: the maps were not kept (keep_maps=False)")
        shape = self.maps.shape[1:]
        mean, sd = np.empty(shape, dtype=np.float32), np.empty(shape, dtype=np.float32)
        lib.jade_draw_moments(self.maps.ctypes.data_as(_fp), self.draws, mean.size, mean.ctypes.data_as(_fp),
                              sd.ctypes.data_as(_fp))
        return mean, sd

    def write(self, out):
        """Write the directory of `jade sample --out` (maps.fits when the maps were kept,
        theta.txt, theta.npy, chain.txt, chain.paramnames, chain.npy, summary.txt,
        config.ini; jade_posterior_write): byte for byte what the CLI writes for the same
        model path, observation path and settings. out must not exist; it appears complete
        or not at all."""
        self.model.handle  # raises after the model's close()

        def write(tmp):
            check(lib.jade_posterior_write(tmp.encode(), self.model.handle, ctypes.byref(self._obs), self.obs_path.encode(),
                                           ctypes.byref(self._po), self.maps.ctypes.data_as(_fp) if self.maps is not None else None,
                                           self.theta.ctypes.data_as(_dp)))
        _write_dir(out, write)
