"""libjade.so through ctypes: finding the library, the struct layouts jade's public headers
define (checked against the library's own sizeof), function signatures, and the error
channel (a failed call raises JadeError with jade_last_error()'s message).

Library search order: the environment variable JADE_LIB (a path to libjade.so); then, for a
package installed by `cmake --install`, the installed library (jade/_install.py), or in the
source tree its build folders (JADE_BUILD_DIR, build/); then the system's loader path.
ctypes releases the GIL during every foreign call."""
import ctypes
import ctypes.util
import os

__all__ = ["JadeError", "lib", "check", "library_path", "version"]

# status codes of include/jade/core.h
_STATUS = {1: "invalid", 2: "io", 3: "format", 4: "nomem", 5: "numeric", 6: "config", 7: "internal"}


class JadeError(Exception):
    """A libjade call failed. str(e) is jade's message (it names the file, key or value at
    fault); e.code is the jade_status number and e.kind its name ('invalid', 'io', ...)."""

    def __init__(self, message, code=0):
        super().__init__(message)
        self.code = code
        self.kind = _STATUS.get(code, "unknown")


def _candidates():
    env = os.environ.get("JADE_LIB")
    if env:
        return [env], True
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))  # python/jade -> the source tree
    out = []
    try:  # written by cmake --install
        from ._install import LIBDIR
        out.append(os.path.normpath(os.path.join(here, LIBDIR, "libjade.so")))
    except ImportError:
        pass
    bd = os.environ.get("JADE_BUILD_DIR")
    for d in ([bd] if bd else []) + [os.path.join(root, "build")]:
        out.append(os.path.join(d, "libjade.so"))
    found = ctypes.util.find_library("jade")
    if found:
        out.append(found)
    out.append("libjade.so")
    return out, False


def _load():
    cands, explicit = _candidates()
    errors = []
    for c in cands:
        if os.sep in c and not os.path.exists(c):
            errors.append("%s: no such file" % c)
            continue
        try:
            return ctypes.CDLL(c), c
        except OSError as e:
            errors.append(str(e))
            if explicit:
                break
    raise ImportError("jade: cannot load libjade.so (set JADE_LIB to its path, or build the project "
                      "with scripts/build.sh); tried: " + "; ".join(errors))


lib, library_path = _load()

lib.jade_last_error.restype = ctypes.c_char_p
lib.jade_last_error.argtypes = []
lib.jade_version.restype = ctypes.c_char_p
lib.jade_version.argtypes = []
version = lib.jade_version().decode()


def check(status):
    """Raise JadeError(jade_last_error()) for a non-zero jade_status."""
    if status:
        msg = lib.jade_last_error()
        raise JadeError(msg.decode("utf-8", "replace") if msg else "jade error %d" % status, status)


# ---- struct layouts (include/jade/cosmo.h, lensing.h, sim.h) -------------------------------
c_double, c_int, c_void_p, c_char_p = ctypes.c_double, ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
JADE_N_THETA = 6
JADE_MAX_BINS = 10


class CosmoParams(ctypes.Structure):
    _fields_ = [("Omega_c", c_double), ("Omega_b", c_double), ("h", c_double), ("n_s", c_double),
                ("sigma_8", c_double), ("w_0", c_double), ("w_a", c_double), ("T_cmb", c_double),
                ("N_eff", c_double), ("radiation", c_int), ("Omega_k", c_double), ("transfer", c_int)]


class SurveyParams(ctypes.Structure):
    _fields_ = [("n_bins", c_int), ("z_max", c_double), ("smail_alpha", c_double), ("smail_beta", c_double),
                ("smail_z0", c_double), ("sigma_z", c_double), ("n_gal", c_double), ("sigma_e", c_double),
                ("nz_file", ctypes.c_char * 1024)]


class MapGeometry(ctypes.Structure):
    _fields_ = [("n_pix", c_int), ("size_deg", c_double), ("n_bins", c_int)]


class Prior1d(ctypes.Structure):
    _fields_ = [("kind", c_int), ("mean", c_double), ("sd", c_double), ("lo", c_double), ("hi", c_double)]


class Observation(ctypes.Structure):
    _fields_ = [("n_bins", c_int), ("n_pix", c_int), ("size_deg", c_double), ("noise", c_double * JADE_MAX_BINS),
                ("kappa", ctypes.POINTER(ctypes.c_float)), ("from_shear", c_int), ("mask", ctypes.POINTER(ctypes.c_float)),
                ("noise_map", ctypes.POINTER(ctypes.c_float)), ("masked_fraction", c_double)]


class SimConfig(ctypes.Structure):
    _fields_ = [("cosmo", CosmoParams), ("survey", SurveyParams), ("geom", MapGeometry), ("variance", c_int),
                ("prior", Prior1d * JADE_N_THETA)]


lib.jade_sim_struct_size.restype = ctypes.c_size_t
lib.jade_sim_struct_size.argtypes = [c_char_p]
for _name, _cls in (("jade_cosmo_params", CosmoParams), ("jade_survey_params", SurveyParams),
                    ("jade_map_geometry", MapGeometry), ("jade_prior1d", Prior1d), ("jade_sim_config", SimConfig),
                    ("jade_observation", Observation)):
    _n = lib.jade_sim_struct_size(_name.encode())
    if _n != ctypes.sizeof(_cls):
        raise ImportError("jade: %s is %d bytes in %s but %d in python/jade/_lib.py: the package does not match "
                          "the library" % (_name, _n, library_path, ctypes.sizeof(_cls)))

# ---- signatures ----------------------------------------------------------------------------
_P = ctypes.POINTER
_dp = _P(c_double)


def _sig(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)


_sig("jade_config_create", c_int, _P(c_void_p))
_sig("jade_config_free", None, c_void_p)
_sig("jade_config_load_string", c_int, c_void_p, c_char_p, c_char_p)
_sig("jade_config_load_file", c_int, c_void_p, c_char_p)
_sig("jade_config_load_preset", c_int, c_void_p, c_char_p)
_sig("jade_config_preset_text", c_char_p, c_char_p)
_sig("jade_config_set", c_int, c_void_p, c_char_p)
_sig("jade_sim_config_read", c_int, c_void_p, _P(SimConfig))
_sig("jade_cosmo_params_fiducial", CosmoParams)
_sig("jade_cosmo_create", c_int, _P(CosmoParams), _P(c_void_p))
_sig("jade_cosmo_free", None, c_void_p)
for _f in ("jade_cosmo_E", "jade_cosmo_chi", "jade_cosmo_a_of_chi", "jade_cosmo_growth", "jade_cosmo_growth_rate"):
    _sig(_f, c_double, c_void_p, c_double)
_sig("jade_cosmo_Omega_m", c_double, c_void_p)
for _f in ("jade_cosmo_pk_lin", "jade_cosmo_pk_nl", "jade_cosmo_sigma_R"):
    _sig(_f, c_double, c_void_p, c_double, c_double)
_sig("jade_survey_create", c_int, _P(SurveyParams), _P(c_void_p))
_sig("jade_survey_read_nz", c_int, c_char_p, c_int, _P(c_void_p))
_sig("jade_survey_free", None, c_void_p)
_sig("jade_survey_n_bins", c_int, c_void_p)
_sig("jade_survey_nz", c_double, c_void_p, c_int, c_double)
_sig("jade_survey_z_max", c_double, c_void_p)
_sig("jade_survey_bin_density", c_double, c_void_p, c_int)
_sig("jade_survey_pixel_noise", c_double, c_void_p, c_int, c_double)
_sig("jade_cosmo_limber_cl", c_int, c_void_p, c_void_p, c_int, _dp, c_int, c_int, _dp)
_sig("jade_cosmo_lognormal_shift", c_int, c_void_p, c_void_p, c_double, _dp)
_fp = _P(ctypes.c_float)
_sig("jade_simulator_create", c_int, _P(SimConfig), _P(c_void_p))
_sig("jade_simulator_free", None, c_void_p)
_sig("jade_simulator_run", c_int, c_void_p, _dp, ctypes.c_uint64, ctypes.c_uint64, _fp, _dp, _dp, _dp)
_sig("jade_simulator_noise", None, c_void_p, _dp)
_sig("jade_prior_draw", None, _P(SimConfig), ctypes.c_uint64, ctypes.c_uint64, _dp)
_sig("jade_prior_logpdf", c_double, _P(SimConfig), _dp)
_sig("jade_theta_check", c_int, _dp)
_sig("jade_observation_make", c_int, _P(SimConfig), ctypes.c_uint64, c_char_p)
_sig("jade_observation_read", c_int, c_char_p, _P(Observation))
_sig("jade_observation_free", None, _P(Observation))
_sig("jade_observation_read_truth", c_int, c_char_p, _dp, _P(_fp), _P(c_int), _P(c_int))
_sig("jade_observation_truth_path", None, c_char_p, c_char_p, ctypes.c_size_t)
libc = ctypes.CDLL(None)  # free() of the buffers the library hands over (same malloc)
libc.free.restype = None
libc.free.argtypes = [c_void_p]
_sig("jade_chains_write", c_int, c_char_p, c_char_p, c_int, _P(c_char_p), _P(c_char_p), c_int, ctypes.c_long, _dp, _dp, _dp,
     ctypes.c_size_t)

# ---- trained models and posterior sampling (include/jade/model.h, train.h, progress.h,
# posterior.h), checked against jade_posterior_struct_size ------------------------------------
c_float, c_long, c_size_t, c_uint64 = ctypes.c_float, ctypes.c_long, ctypes.c_size_t, ctypes.c_uint64
JADE_POSTERIOR_COLS = JADE_N_THETA + 2


class ModelConfig(ctypes.Structure):
    _fields_ = [(n, c_int) for n in ("img_size", "channels", "cond_channels", "patch", "cond_patch", "depth", "width", "heads",
                                     "n_cosmo_tokens", "n_params", "mlp_hidden", "bottleneck", "cond_bottleneck", "time_freq")] + \
               [(n, c_float) for n in ("max_period", "rope_theta", "norm_eps", "dropout")]


class Norm(ctypes.Structure):
    _fields_ = [("n_bins", c_int), ("n_pix", c_int), ("size_deg", c_double), ("theta_mean", c_double * JADE_N_THETA),
                ("theta_std", c_double * JADE_N_THETA), ("map_std", c_double * JADE_MAX_BINS),
                ("noise", c_double * JADE_MAX_BINS), ("theta_norm_dataset", c_int), ("masked", c_int),
                ("noise_ln_max", c_double)]


class FlowConfig(ctypes.Structure):
    _fields_ = [("mu", c_float), ("sigma", c_float), ("t_eps", c_float)]


class TrainedModel(ctypes.Structure):
    _fields_ = [("model", c_void_p), ("norm", Norm), ("flow", FlowConfig), ("step", c_long), ("config_text", c_char_p),
                ("path", ctypes.c_char * 4200)]


class Progress(ctypes.Structure):
    _fields_ = [("steps_done", c_long), ("steps_total", c_long), ("tasks_done", c_long), ("tasks_total", c_long),
                ("work_done", c_double), ("work_total", c_double), ("elapsed", c_double), ("rate", c_double), ("eta", c_double)]


PROGRESS_FN = ctypes.CFUNCTYPE(None, ctypes.POINTER(Progress), c_void_p)
STEP_FN = ctypes.CFUNCTYPE(None, c_double, c_void_p)


class PosteriorOptions(ctypes.Structure):
    _fields_ = [("n_draws", c_long), ("n_steps", c_int), ("solver", c_int), ("batch", c_int), ("seed", c_uint64),
                ("threads", c_int), ("progress", PROGRESS_FN), ("user", c_void_p), ("on_step", STEP_FN),
                ("step_user", c_void_p), ("config_text", c_char_p), ("mask", ctypes.POINTER(ctypes.c_float)),
                ("noise_map", ctypes.POINTER(ctypes.c_float)), ("noise", ctypes.POINTER(c_double))]


class TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 64), ("ndim", c_int), ("shape", c_int * 4), ("offset", c_size_t), ("numel", c_size_t),
                ("decay", c_int)]


class SummaryStat(ctypes.Structure):
    _fields_ = [(n, c_double) for n in ("mean", "std", "q16", "q50", "q84")]


# ---- validation metrics and runs (include/jade/validate.h, validation_run.h) ----------------
_dptr = ctypes.POINTER(c_double)


class MiraOpts(ctypes.Structure):
    _fields_ = [("seed", c_uint64), ("norm", c_int), ("metric", c_int), ("n_boot", c_int)]


class MiraResult(ctypes.Structure):
    _fields_ = [("T", c_size_t), ("S", c_size_t), ("score", c_double), ("err", c_double), ("expected", c_double), ("p", _dptr),
                ("n_boot", c_int), ("boot", _dptr)]


class TarpOpts(ctypes.Structure):
    _fields_ = [("seed", c_uint64), ("norm", c_int), ("metric", c_int), ("n_boot", c_int), ("n_alpha", c_int)]


class TarpResult(ctypes.Structure):
    _fields_ = [("T", c_size_t), ("S", c_size_t), ("n_alpha", c_int), ("n_boot", c_int)] + \
               [(n, _dptr) for n in ("alpha", "ecp", "lo68", "hi68", "lo95", "hi95")] + [("count", ctypes.POINTER(c_long))] + \
               [(n, c_double) for n in ("max_dev", "area", "signed_area", "max_dev_err", "area_err", "signed_area_err")]


class CoverageResult(ctypes.Structure):
    _fields_ = [("T", c_size_t), ("S", c_size_t), ("nd", c_size_t), ("dims", ctypes.POINTER(c_size_t)),
                ("rank", ctypes.POINTER(c_int)), ("in68", ctypes.POINTER(ctypes.c_ubyte)), ("in95", ctypes.POINTER(ctypes.c_ubyte)),
                ("z", _dptr)] + [(n, _dptr) for n in ("cov68", "cov68_se", "cov95", "cov95_se", "offset", "offset_se", "z2", "z2_se")] + \
               [("n_rank_bins", c_int), ("rank_chi2", _dptr), ("rank_pvalue", _dptr)]


START_FN = ctypes.CFUNCTYPE(None, c_long, c_long, c_int, c_void_p)


class MaskConfig(ctypes.Structure):  # jade/mask.h
    _fields_ = [("mask_prob", c_double), ("mask_max", c_double), ("noise_ln_scale", c_double), ("noise_ln_field", c_double)]


class ValidationOptions(ctypes.Structure):
    _fields_ = [("model_path", c_char_p), ("data_dir", c_char_p), ("out_dir", c_char_p), ("n_obs", c_long), ("draws", c_long),
                ("steps", c_int), ("solver", c_int), ("batch", c_int), ("seed", c_uint64), ("keep_draws", c_int),
                ("max_obs", c_long), ("n_boot", c_int), ("n_hist", c_int), ("threads", c_int), ("noise_rtol", c_double),
                ("no_report", c_int), ("dist", c_void_p), ("start", START_FN), ("progress", PROGRESS_FN), ("user", c_void_p),
                ("masks", MaskConfig)]


class ValidationResult(ctypes.Structure):
    _fields_ = [("finished", c_int), ("n_done", c_long), ("n_obs", c_long), ("mira_joint", c_double),
                ("mira_joint_err", c_double), ("mira_expected", c_double), ("seconds", c_double)]


# ---- the NUTS baseline (include/jade/mcmc.h, mcmc_run.h) -------------------------------------
class McmcProgress(ctypes.Structure):
    _fields_ = [("iteration", c_long), ("warmup", c_long), ("samples", c_long), ("n_chains", c_int), ("n_local", c_int),
                ("ranks", c_int), ("rate", c_double), ("grad_per_iteration", c_double), ("divergent", c_long)]


class McmcHealth(ctypes.Structure):
    _fields_ = [("max_rhat", c_double), ("min_ess_bulk", c_double), ("min_ess_tail", c_double), ("worst_rhat_name", c_char_p),
                ("min_ess_name", c_char_p), ("divergent", c_long), ("draws", c_long), ("chains", c_int),
                ("weight_ess", c_double)]


MESSAGE_FN = ctypes.CFUNCTYPE(None, c_char_p, c_void_p)
MCMC_PROGRESS_FN = ctypes.CFUNCTYPE(None, ctypes.POINTER(McmcProgress), c_void_p)


class McmcRunOptions(ctypes.Structure):
    _fields_ = [("sim", ctypes.POINTER(SimConfig)), ("config_text", c_char_p), ("obs_path", c_char_p), ("out_dir", c_char_p),
                ("n_chains", c_int), ("warmup", c_long), ("samples", c_long), ("max_depth", c_int), ("target_accept", c_double),
                ("seed", c_uint64), ("init_truth", c_int), ("n_free", c_int), ("free_idx", c_int * JADE_N_THETA),
                ("theory", c_int), ("emulator_degree", c_int), ("checkpoint_seconds", c_double), ("max_iterations", c_long),
                ("compare_dir", c_char_p), ("dist", c_void_p), ("message", MESSAGE_FN), ("progress", MCMC_PROGRESS_FN),
                ("user", c_void_p)]


class McmcRunResult(ctypes.Structure):
    _fields_ = [("finished", c_int), ("iteration", c_long), ("health", McmcHealth), ("seconds", c_double)]


for _fn, _structs in (("jade_posterior_struct_size", (("jade_model_config", ModelConfig), ("jade_norm", Norm),
                                                      ("jade_flow_config", FlowConfig), ("jade_trained_model", TrainedModel),
                                                      ("jade_progress", Progress), ("jade_posterior_options", PosteriorOptions),
                                                      ("jade_summary_stat", SummaryStat), ("jade_tensor_info", TensorInfo))),
                      ("jade_validate_struct_size", (("jade_mira_opts", MiraOpts), ("jade_mira_result", MiraResult),
                                                     ("jade_tarp_opts", TarpOpts), ("jade_tarp_result", TarpResult),
                                                     ("jade_coverage_result", CoverageResult),
                                                     ("jade_validation_options", ValidationOptions),
                                                     ("jade_validation_result", ValidationResult))),
                      ("jade_mcmc_struct_size", (("jade_mcmc_progress", McmcProgress), ("jade_mcmc_health", McmcHealth),
                                                 ("jade_mcmc_run_options", McmcRunOptions),
                                                 ("jade_mcmc_run_result", McmcRunResult)))):
    _f = getattr(lib, _fn, None)
    if _f is None:
        raise ImportError("jade: %s lacks %s: the package does not match the library (rebuild it)" % (library_path, _fn))
    _f.restype = ctypes.c_size_t
    _f.argtypes = [c_char_p]
    for _name, _cls in _structs:
        _n = _f(_name.encode())
        if _n != ctypes.sizeof(_cls):
            raise ImportError("jade: %s is %d bytes in %s but %d in python/jade/_lib.py: the package does not match "
                              "the library" % (_name, _n, library_path, ctypes.sizeof(_cls)))

_sig("jade_config_get_int", c_int, c_void_p, c_char_p, c_long, c_long, _P(c_long))
_sig("jade_config_get_string", c_int, c_void_p, c_char_p, _P(c_char_p))
_sig("jade_config_has", c_int, c_void_p, c_char_p)
_sig("jade_config_check_unused", c_int, c_void_p, _P(c_char_p))
_sig("jade_config_dump", c_void_p, c_void_p)  # malloc'd text: read with string_at, then libc.free
_sig("jade_trained_model_load", c_int, c_char_p, _P(c_void_p))
_sig("jade_trained_model_free", None, c_void_p)
_sig("jade_model_num_params", c_size_t, c_void_p)
_sig("jade_model_get_config", _P(ModelConfig), c_void_p)
_sig("jade_model_num_tensors", c_int, c_void_p)
_sig("jade_model_tensor", _P(TensorInfo), c_void_p, c_int)
_sig("jade_solver_parse", c_int, c_char_p, _P(c_int))
_sig("jade_solver_evals", c_int, c_int, c_int)
_sig("jade_posterior_options_default", None, _P(PosteriorOptions))
_sig("jade_posterior_check", c_int, c_void_p, _P(Observation), c_char_p, c_double)
_sig("jade_posterior_sample", c_int, c_void_p, _fp, _P(PosteriorOptions), c_void_p, _fp, _dp)
_sig("jade_posterior_summary", None, _dp, c_long, c_int, _P(SummaryStat))
_sig("jade_draw_moments", None, _fp, c_size_t, c_size_t, _fp, _fp)
_sig("jade_posterior_write", c_int, c_char_p, c_void_p, _P(Observation), c_char_p, _P(PosteriorOptions), _fp, _dp)
_sig("jade_mira_opts_default", None, _P(MiraOpts))
_sig("jade_mira_expected", c_double, c_size_t)
_sig("jade_mira", c_int, _fp, _fp, c_size_t, c_size_t, c_size_t, _P(MiraOpts), _P(MiraResult))
_sig("jade_mira_result_free", None, _P(MiraResult))
_sig("jade_tarp_opts_default", None, _P(TarpOpts))
_sig("jade_tarp", c_int, _fp, _fp, c_size_t, c_size_t, c_size_t, _P(TarpOpts), _P(TarpResult))
_sig("jade_tarp_result_free", None, _P(TarpResult))
_sig("jade_coverage", c_int, _fp, _fp, c_size_t, c_size_t, c_size_t, _P(c_size_t), c_size_t, c_int, _P(CoverageResult))
_sig("jade_coverage_result_free", None, _P(CoverageResult))
_sig("jade_validation_options_default", None, _P(ValidationOptions))
_sig("jade_validation_run", c_int, _P(ValidationOptions), _P(ValidationResult))
_sig("jade_mcmc_run_options_default", None, _P(McmcRunOptions))
_sig("jade_mcmc_parse_free", c_int, c_char_p, _P(c_int), _P(c_int))
_sig("jade_mcmc_run", c_int, _P(McmcRunOptions), _P(McmcRunResult))
_sig("jade_mcmc_health_verdict", c_int, _P(McmcHealth), c_char_p, c_size_t)


class Callback:
    """A Python callable called by the library (progress, messages) through a ctypes
    function pointer: ctypes takes the GIL for the call, also on a thread the library started
    (OpenMP; the library calls one at a time). convert turns the C arguments into what fn
    receives. An exception of fn cannot cross the C code: the first one is kept, fn is not
    called again, and raise_pending() (after the library call returned) raises it."""

    def __init__(self, fn, convert, cfunctype):
        if fn is not None and not callable(fn):
            raise TypeError("expected a callable, got %r" % (fn,))
        self.fn, self.convert, self.error = fn, convert, None
        self.c = cfunctype(self._call) if fn is not None else cfunctype()

    def _call(self, *args):
        if self.error is not None:
            return
        try:
            self.fn(self.convert(*args[:-1]))
        except BaseException as e:  # noqa: B902 - re-raised after the C call returns
            self.error = e

    def raise_pending(self):
        if self.error is not None:
            e, self.error = self.error, None
            raise e


def struct_dict(s):
    """The fields of a ctypes structure (numbers and strings) as a dict."""
    out = {}
    for name, _ in s._fields_:
        v = getattr(s, name)
        out[name] = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
    return out


def invalid(message):
    """JadeError of kind 'invalid' for a check done on the Python side."""
    return JadeError(message, 1)


def config_dump(handle):
    p = lib.jade_config_dump(handle)
    if not p:
        raise JadeError("out of memory", 4)
    try:
        return ctypes.string_at(p)
    finally:
        libc.free(p)
