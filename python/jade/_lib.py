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
