"""Calibration metrics on numpy arrays (include/jade/validate.h: MIRA, TARP, per-dimension
coverage and SBC ranks) and the validation run of `jade validate`
(include/jade/validation_run.h). Inputs: truths (T, q) and draws (T, S, q), float32 (other
dtypes are converted), C order; results are dicts of numpy arrays and floats."""
import ctypes
import json
import os

import numpy as np

from ._lib import (START_FN, Callback, CoverageResult, MiraOpts, MiraResult, TarpOpts, TarpResult, ValidationOptions,
                   ValidationResult, check, invalid, lib, struct_dict)
from .model import Model, _int, _solver, progress_callback

__all__ = ["mira", "mira_expected", "tarp", "coverage", "validate"]

_NORM = {"none": 0, "truths": 1, "all": 2, "truths_inclusive": 3}
_METRIC = {"euclidean": 0, "manhattan": 1}
_fp = ctypes.POINTER(ctypes.c_float)


def _inputs(truths, draws):
    t = np.ascontiguousarray(truths, dtype=np.float32)
    d = np.ascontiguousarray(draws, dtype=np.float32)
    if t.ndim != 2 or d.ndim != 3 or d.shape[0] != t.shape[0] or d.shape[2] != t.shape[1] or t.size == 0 or d.size == 0:
        raise invalid("truths (T, q) and draws (T, S, q) expected, got shapes %s and %s" % (np.shape(truths), np.shape(draws)))
    return t, d, t.shape[0], d.shape[1], t.shape[1]


def _choice(what, table, v):
    if v not in table:
        raise invalid("%s: %r is not one of %s" % (what, v, ", ".join(table)))
    return table[v]


def _vec(ptr, n, dtype=np.float64):
    return np.ctypeslib.as_array(ptr, shape=(n,)).astype(dtype, copy=True) if ptr and n else None


def mira_expected(S):
    """Exact expected MIRA score of a calibrated posterior with S draws per truth
    ((2N + 3) / (3 (N + 1)), N = S - 1)."""
    return lib.jade_mira_expected(int(S))


def mira(truths, draws, seed=None, norm="none", metric="euclidean", n_boot=100):
    """MIRA of the joint posterior (jade_mira): {'score', 'err' (bootstrap sd), 'expected'
    (calibrated), 'p' (T,) per-truth values, 'boot' (n_boot,) or None, 'T', 'S'}. seed None:
    the library's (0x4d495241); norm 'none' (the paper's), 'truths', 'all' or
    'truths_inclusive'; metric 'euclidean' or 'manhattan'."""
    t, d, T, S, q = _inputs(truths, draws)
    o = MiraOpts()
    lib.jade_mira_opts_default(ctypes.byref(o))
    if seed is not None:
        o.seed = _int("seed", seed, 0, (1 << 64) - 1)
    o.norm, o.metric = _choice("norm", _NORM, norm), _choice("metric", _METRIC, metric)
    o.n_boot = _int("n_boot", n_boot, 0, 1 << 30)
    r = MiraResult()
    check(lib.jade_mira(t.ctypes.data_as(_fp), d.ctypes.data_as(_fp), T, S, q, ctypes.byref(o), ctypes.byref(r)))
    try:
        return {"score": r.score, "err": r.err, "expected": r.expected, "p": _vec(r.p, T), "boot": _vec(r.boot, r.n_boot),
                "T": T, "S": S}
    finally:
        lib.jade_mira_result_free(ctypes.byref(r))


def tarp(truths, draws, seed=None, norm="truths", metric="euclidean", n_boot=100, n_alpha=101):
    """TARP expected coverage (jade_tarp): {'alpha', 'ecp' (n_alpha,), 'lo68', 'hi68', 'lo95',
    'hi95' (bootstrap bands, None without bootstrap), 'count' (T,) draws nearer the reference
    than the truth, 'max_dev', 'area', 'signed_area' and their bootstrap sds '*_err', 'T',
    'S'}. seed None: the library's (0x54415250); norm 'truths' (leave-one-out, the default),
    'all', 'truths_inclusive' (the tarp package's box) or 'none'."""
    t, d, T, S, q = _inputs(truths, draws)
    o = TarpOpts()
    lib.jade_tarp_opts_default(ctypes.byref(o))
    if seed is not None:
        o.seed = _int("seed", seed, 0, (1 << 64) - 1)
    o.norm, o.metric = _choice("norm", _NORM, norm), _choice("metric", _METRIC, metric)
    o.n_boot = _int("n_boot", n_boot, 0, 1 << 30)
    o.n_alpha = _int("n_alpha", n_alpha, 2, 1 << 24)
    r = TarpResult()
    check(lib.jade_tarp(t.ctypes.data_as(_fp), d.ctypes.data_as(_fp), T, S, q, ctypes.byref(o), ctypes.byref(r)))
    try:
        out = {k: _vec(getattr(r, k), r.n_alpha) for k in ("alpha", "ecp", "lo68", "hi68", "lo95", "hi95")}
        out["count"] = _vec(r.count, T, np.int64)
        for k in ("max_dev", "area", "signed_area", "max_dev_err", "area_err", "signed_area_err"):
            out[k] = getattr(r, k)
        out["T"], out["S"] = T, S
        return out
    finally:
        lib.jade_tarp_result_free(ctypes.byref(r))


def coverage(truths, draws, dims=None, n_rank_bins=0):
    """Per-dimension calibration (jade_coverage) of the dimensions dims (default all q):
    per truth 'rank' (T, nd) int (draws below the truth), 'in68', 'in95' (T, nd) bool, 'z'
    (T, nd) standardised offsets; per dimension 'cov68', 'cov95' and their binomial standard
    errors '*_se', 'offset' (mean z), 'z2' (mean z^2) with '*_se', 'rank_chi2' and
    'rank_pvalue' of the rank histogram in 'n_rank_bins' bins (0: min(20, S + 1)); 'dims'."""
    t, d, T, S, q = _inputs(truths, draws)
    if dims is None:
        dd = np.arange(q, dtype=np.uintp)
    else:
        dd = np.asarray(dims)
        if dd.ndim != 1 or dd.size == 0 or not np.issubdtype(dd.dtype, np.integer) or np.any(dd < 0) or np.any(dd >= q):
            raise invalid("dims: a non-empty list of dimensions in [0, %d) expected, got %r" % (q, dims))
        dd = np.ascontiguousarray(dd, dtype=np.uintp)
    nd = dd.size
    r = CoverageResult()
    check(lib.jade_coverage(t.ctypes.data_as(_fp), d.ctypes.data_as(_fp), T, S, q, dd.ctypes.data_as(ctypes.POINTER(ctypes.c_size_t)),
                            nd, _int("n_rank_bins", n_rank_bins, -1 << 30, 1 << 30), ctypes.byref(r)))
    try:
        out = {"dims": dd.astype(np.int64), "n_rank_bins": r.n_rank_bins, "T": T, "S": S}
        out["rank"] = _vec(r.rank, T * nd, np.int64).reshape(T, nd)
        out["in68"] = _vec(r.in68, T * nd, bool).reshape(T, nd)
        out["in95"] = _vec(r.in95, T * nd, bool).reshape(T, nd)
        out["z"] = _vec(r.z, T * nd).reshape(T, nd)
        for k in ("cov68", "cov68_se", "cov95", "cov95_se", "offset", "offset_se", "z2", "z2_se", "rank_chi2", "rank_pvalue"):
            out[k] = _vec(getattr(r, k), nd)
        return out
    finally:
        lib.jade_coverage_result_free(ctypes.byref(r))


def validate(model, data_dir, out_dir, n_obs=100, draws=100, steps=32, solver="heun", batch=64, seed=0, n_boot=100,
             hist_bins=40, keep_draws=False, max_obs=0, threads=0, noise_rtol=0.01, no_report=False, progress=None, start=None,
             masks=None):
    """The validation run of `jade validate` (jade_validation_run) with the CLI's defaults:
    model a MODELDIR / .safetensors path or a jade.Model (its file), data_dir a held-out
    `jade simulate` dataset, out_dir the output (must not exist; out_dir.partial is resumed;
    max_obs > 0 stops after that many new observations); threads 1 is --inner-threads,
    noise_rtol < 0 --ignore-noise. progress: a callable receiving the dict of
    jade_progress (tasks are observations); start: a callable receiving {'todo', 'n_mine',
    'workers'} once the inputs are checked. masks: None (full maps) or a dict of
    jade_mask_config's mask_prob, mask_max, noise_ln_scale, noise_ln_field (masked observations
    for a model trained with model.condition = masked; `jade validate --mask-prob ...`). Returns {'finished', 'n_done', 'n_obs',
    'mira_joint', 'mira_joint_err', 'mira_expected', 'seconds', 'summary' (summary.json as a
    dict, None unless finished)}."""
    mp = model.path if isinstance(model, Model) else os.fspath(model)
    o = ValidationOptions()
    lib.jade_validation_options_default(ctypes.byref(o))
    o.model_path, o.data_dir, o.out_dir = os.fsencode(mp), os.fsencode(data_dir), os.fsencode(out_dir)
    o.n_obs = _int("n_obs", n_obs, 2, 100000000)
    o.draws = _int("draws", draws, 2, 100000000)
    o.steps = _int("steps", steps, 1, 1000000)
    o.batch = _int("batch", batch, 1, 1000000)
    o.n_boot = _int("n_boot", n_boot, 0, 100000)
    o.n_hist = _int("hist_bins", hist_bins, 2, 128)
    o.max_obs = _int("max_obs", max_obs, 0, 100000000)
    o.seed = _int("seed", seed, 0, (1 << 31) - 1)
    o.solver = _solver(solver)
    o.keep_draws, o.no_report = int(bool(keep_draws)), int(bool(no_report))
    o.threads = _int("threads", threads, 0, 1 << 30)
    o.noise_rtol = float(noise_rtol)
    for key, value in (masks or {}).items():
        if key not in ("mask_prob", "mask_max", "noise_ln_scale", "noise_ln_field"):
            raise invalid("masks: unknown key %r (mask_prob, mask_max, noise_ln_scale, noise_ln_field)" % key)
        setattr(o.masks, key, float(value))
    pcb = progress_callback(progress)
    scb = _start_callback(start)
    if progress is not None:
        o.progress = pcb.c
    if start is not None:
        o.start = scb.c
    r = ValidationResult()
    st = lib.jade_validation_run(ctypes.byref(o), ctypes.byref(r))
    scb.raise_pending()
    pcb.raise_pending()
    check(st)
    out = struct_dict(r)
    out["finished"] = bool(r.finished)
    out["summary"] = None
    if r.finished:
        with open(os.path.join(os.fspath(out_dir), "summary.json")) as f:
            out["summary"] = json.load(f)
    return out


def _start_callback(fn):
    return Callback(fn, lambda todo, n_mine, workers: {"todo": todo, "n_mine": n_mine, "workers": workers}, START_FN)
