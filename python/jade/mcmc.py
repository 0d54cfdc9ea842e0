"""The traditional baseline from Python: field-level NUTS on the explicit log-normal model for
one observation (include/jade/mcmc_run.h), the library behind `jade mcmc`, with its settings
and defaults (arguments, else the config's [mcmc] keys, else the CLI's defaults), so the same
options give the same chain bytes."""
import ctypes
import math
import os

from ._lib import (MCMC_PROGRESS_FN, MESSAGE_FN, JADE_N_THETA, Callback, JadeError, McmcRunOptions, McmcRunResult, check, config_dump, invalid,
                   lib, struct_dict)
from .chains import read_chain
from .cosmo import _as_config

__all__ = ["mcmc"]

_THEORY = {"exact": 0, "emulator": 1, "hybrid": 2}
# option: (config key, the CLI's default)
_DEFAULTS = {"chains": ("mcmc.chains", "4"), "warmup": ("mcmc.warmup", "500"), "samples": ("mcmc.samples", "1000"),
             "max_depth": ("mcmc.max_depth", "8"), "target_accept": ("mcmc.target_accept", "0.8"), "seed": ("mcmc.seed", "0"),
             "emulator_degree": ("mcmc.emulator_degree", "4"), "init": ("mcmc.init", "prior"),
             "free": ("mcmc.free", "Omega_c,Omega_b,sigma_8,h,n_s,w_0"), "theory": ("mcmc.theory", "emulator")}
_PROGRESS_KEYS = ("iteration", "warmup", "samples", "n_chains", "n_local", "ranks", "rate", "grad_per_iteration", "divergent")


def _long(what, v, lo, hi):
    try:
        if isinstance(v, str):
            x = int(v.strip(), 10)
        elif isinstance(v, bool) or int(v) != v:
            raise ValueError
        else:
            x = int(v)
    except (TypeError, ValueError):
        raise invalid("%s: '%s' is not an integer" % (what, v)) from None
    if not lo <= x <= hi:
        raise invalid("%s: %d is out of range [%d, %d]" % (what, x, lo, hi))
    return x


def _double(what, v, lo, hi):
    try:
        if isinstance(v, bool):
            raise ValueError
        x = float(v)
    except (TypeError, ValueError):
        raise invalid("%s: '%s' is not a number" % (what, v)) from None
    if not math.isfinite(x):
        raise invalid("%s: '%s' is not a number" % (what, v))
    if not lo <= x <= hi:
        raise invalid("%s: %g is out of range [%g, %g]" % (what, x, lo, hi))
    return x


def mcmc(config, obs, out, chains=None, warmup=None, samples=None, max_depth=None, target_accept=None, seed=None, init=None,
         free=None, theory=None, emulator_degree=None, checkpoint=60, max_iterations=0, compare=None, progress=None,
         message=None, sets=()):
    """Run (or resume) `jade mcmc`: NUTS chains on the field-level posterior of the observation
    obs (FITS path), written into out (must not exist; out.partial is resumed).

    config: a preset name, an INI file or a jade.Config (with sets, 'key=value' overrides),
    giving the geometry, the fixed parameters and the prior. Every setting left None takes
    the config's [mcmc] key when present, else the CLI's default: chains 4, warmup 500,
    samples 1000, max_depth 8, target_accept 0.8, seed 0, init 'prior' (or 'truth'), free
    'Omega_c,Omega_b,sigma_8,h,n_s,w_0' (a comma-separated string or a list), theory
    'emulator' ('hybrid', 'exact'), emulator_degree 4. checkpoint: seconds between
    checkpoints; max_iterations > 0 stops after that many iterations per chain (finished
    False; call again to resume); compare: a `jade sample` output to compare with.
    progress: a callable receiving a dict (iteration, warmup, samples, n_chains, n_local,
    ranks, rate, grad_per_iteration, divergent) after each block of iterations; message: a
    callable receiving the library's one-line notes (str).

    Returns {'finished', 'iteration', 'seconds', 'health' (max_rhat, min_ess_bulk,
    min_ess_tail, worst_rhat_name, min_ess_name, divergent, draws, chains, weight_ess), 'usable' (the
    chains pass R-hat < 1.01, ESS >= 100 per chain, no divergence and a Kish ESS of the importance
    weights >= 100 per chain), 'verdict' (one line),
    'chain' (jade.read_chain of out/chain, None unless finished)}."""
    cfg = _as_config(config) if not sets else _as_config_sets(config, sets)
    out = os.fspath(out)
    if os.path.lexists(out):
        raise JadeError("%s: already exists (choose another out or remove it)" % out, 2)
    sc = cfg._sim()
    given = {"chains": chains, "warmup": warmup, "samples": samples, "max_depth": max_depth, "target_accept": target_accept,
             "seed": seed, "emulator_degree": emulator_degree, "init": init, "free": free, "theory": theory}
    v = {}
    for name, (key, dflt) in _DEFAULTS.items():  # as the CLI: the argument, else the config's key, else the default
        val = given[name]
        if lib.jade_config_has(cfg.handle, key.encode()):
            s = ctypes.c_char_p()
            check(lib.jade_config_get_string(cfg.handle, key.encode(), ctypes.byref(s)))  # (marks the key as used)
            if val is None:
                val = s.value.decode()
        v[name] = dflt if val is None else val
    o = McmcRunOptions()
    lib.jade_mcmc_run_options_default(ctypes.byref(o))
    o.n_chains = _long("chains", v["chains"], 1, 4096)
    o.warmup = _long("warmup", v["warmup"], 0, 1000000)
    o.samples = _long("samples", v["samples"], 4, 1000000)
    o.max_depth = _long("max_depth", v["max_depth"], 1, 16)
    o.target_accept = _double("target_accept", v["target_accept"], 0.05, 0.999)
    o.seed = _long("seed", v["seed"], 0, 0x7fffffffffffffff)
    o.emulator_degree = _long("emulator_degree", v["emulator_degree"], 1, 8)
    o.checkpoint_seconds = float(_long("checkpoint", checkpoint, 1, 1000000))
    o.max_iterations = _long("max_iterations", max_iterations, 0, 1 << 40)
    if v["init"] not in ("truth", "prior"):
        raise invalid("init: '%s' (expected truth or prior)" % (v["init"],))
    o.init_truth = 1 if v["init"] == "truth" else 0
    fr = v["free"] if isinstance(v["free"], str) else ",".join(v["free"])
    n_free, idx = ctypes.c_int(), (ctypes.c_int * JADE_N_THETA)()
    check(lib.jade_mcmc_parse_free(fr.encode(), ctypes.byref(n_free), idx))
    o.n_free = n_free.value
    for i in range(JADE_N_THETA):
        o.free_idx[i] = idx[i]
    if v["theory"] not in _THEORY:
        raise invalid("theory: '%s' (expected emulator, hybrid or exact)" % (v["theory"],))
    o.theory = _THEORY[v["theory"]]
    check(lib.jade_config_check_unused(cfg.handle, (ctypes.c_char_p * 3)(b"", b"mcmc", None)))
    text = config_dump(cfg.handle)
    o.sim = ctypes.pointer(sc)
    o.config_text = text
    o.obs_path = os.fsencode(obs)
    o.out_dir = os.fsencode(out)
    o.compare_dir = os.fsencode(compare) if compare is not None else None
    pcb = Callback(progress, lambda p: {k: getattr(p.contents, k) for k in _PROGRESS_KEYS}, MCMC_PROGRESS_FN)
    mcb = Callback(message, lambda t: t.decode("utf-8", "replace"), MESSAGE_FN)
    if progress is not None:
        o.progress = pcb.c
    if message is not None:
        o.message = mcb.c
    r = McmcRunResult()
    st = lib.jade_mcmc_run(ctypes.byref(o), ctypes.byref(r))
    mcb.raise_pending()
    pcb.raise_pending()
    check(st)
    res = {"finished": bool(r.finished), "iteration": r.iteration, "seconds": r.seconds, "health": struct_dict(r.health),
           "usable": None, "verdict": None, "chain": None}
    if r.finished:
        msg = ctypes.create_string_buffer(512)
        res["usable"] = lib.jade_mcmc_health_verdict(ctypes.byref(r.health), msg, len(msg)) == 0
        res["verdict"] = msg.value.decode()
        res["chain"] = read_chain(os.path.join(out, "chain"))
    return res


def _as_config_sets(config, sets):
    from .cosmo import Config
    if isinstance(config, Config):
        raise TypeError("sets: apply them to the jade.Config given")
    return Config(config, sets)
