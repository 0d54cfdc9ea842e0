"""jade from Python: numpy arrays in and out over libjade.so (ctypes; no compiled extension).

    import jade
    c = jade.Cosmology("small", sigma_8=0.8)         # a preset or INI file, with overrides
    s = jade.Survey("small")
    pk = c.pk(np.logspace(-3, 1, 100), z=0.5)
    cl = c.cl(s, np.geomspace(10, 5000, 50))         # (n_ell, n_pairs), columns s.pairs
    post = jade.Model("models/small").sample("obs.fits", draws=64, steps=16, solver="dpm2m")
    jade.mira(truths, draws), jade.tarp(truths, draws), jade.coverage(truths, draws)
    jade.validate(model, "held", "val"), jade.mcmc("small", "obs.fits", "nuts")

Errors of the library raise jade.JadeError carrying jade's message. The library is found
through JADE_LIB, then this source tree's build/ folder, then the system (python/jade/_lib.py)."""
from ._lib import JadeError, library_path
from ._lib import version as __version__
from .chains import read_chain, write_chain
from .cosmo import Config, Cosmology, Survey
from .mcmc import mcmc
from .model import COLUMNS, Model, Posterior, matmul, set_matmul
from .sim import THETA_NAMES, Simulator, observe, read_observation, read_truth
from .validate import coverage, mira, mira_expected, tarp, validate

__all__ = ["JadeError", "Config", "Cosmology", "Survey", "library_path", "read_chain", "write_chain", "THETA_NAMES", "Simulator",
           "observe", "read_observation", "read_truth", "COLUMNS", "Model", "Posterior", "matmul",
           "set_matmul", "mcmc", "coverage", "mira", "mira_expected", "tarp", "validate"]
