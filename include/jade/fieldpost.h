/* jade field-level posterior on the explicit log-normal model (spec mcmc.md): the
 * non-centred log-density of (theta, white-noise maps z) given an observed convergence map,
 * and its gradient, for NUTS (jade/mcmc.h).
 *
 *   log p(u, z | d) = log prior(theta(u)) + log |dtheta/du| - |z|^2 / 2
 *                     - sum_i sum_x m_i(x) (d_i(x) - kappa_i(x; z, theta))^2 / (2 sigma_i(x)^2)
 *
 * kappa(z, theta) is the simulator's map (jade_lngrad, identical to jade_lognormal_draw for
 * the same white noise) made from the C_ell table and the log-normal shifts lambda of the
 * simulator's cosmology at theta; sigma_i the per-pixel noise of the observation (constants
 * of the Gaussian likelihood are dropped). Only the free components of theta are sampled
 * (the others keep the config's values), each mapped to an unconstrained u as Stan does
 * (Stan Reference Manual, "Constraint transforms"): normal prior theta = mean + sd u; a lower
 * bound theta = lo + sd e^u; an upper bound theta = hi - sd e^u; two bounds
 * theta = lo + (hi - lo) logistic(u). The position vector is x = (u[n_free], z[n_bins N^2]).
 *
 * Theory (theta -> C_ell table, lambda) and its Jacobian, three modes:
 *  EXACT     the cosmology at every evaluation (jade_cosmo_limber_cl + jade_cosmo_lognormal_shift
 *            exactly as jade_simulator_run); Jacobian by central finite differences of the
 *            cosmology (2 n_free more calls). Exact but ~(1 + 2 n_free) x 8 ms per gradient.
 *  EMULATOR  a polynomial emulator of ln C_ell and ln lambda (jade_emulator, fitted by least
 *            squares to exact cosmology runs around the posterior) for the value and its
 *            analytic gradient: a smooth target whose gradient is exact, costing the map part
 *            only. jade mcmc corrects the small emulation error by importance weights
 *            exp(log p_exact - log p_emulated) at every draw.
 *  HYBRID    exact value (one cosmology per evaluation), emulator Jacobian for the theta part
 *            of the gradient: the leapfrog integrator stays reversible and volume-preserving
 *            with any position-dependent force, so NUTS targets the exact posterior; only the
 *            energy error (hence the step size) feels the approximation.
 * Model parameters outside the support of the log-normal model (a correlation below
 * -lambda_i lambda_j, a cosmology that cannot be computed) give log p = -inf (a divergence
 * for NUTS), not an error. */
#ifndef JADE_FIELDPOST_H
#define JADE_FIELDPOST_H
#include "jade/dist.h"
#include "jade/sim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- theory: theta -> (C_ell table on a fixed ell grid, lambda per bin) ---------------- */

/* User theory for tests: cl[i_ell * n_pairs + pair] at the table's ell, lambda[n_bins]. A
 * non-OK status means theta is outside the model (log p = -inf). Must be thread-safe. */
typedef jade_status (*jade_theory_fn)(void *ctx, const double theta[JADE_N_THETA], double *cl,
                                      double *lambda);

typedef struct jade_theory jade_theory;
/* The simulator's theory for sc (ell grid of jade_simulator_cl_table, convergence Limber
 * C_ell with halofit, lambda for a top-hat of radius pixel / sqrt(pi)). Thread-safe. */
jade_status jade_theory_create_cosmo(const jade_sim_config *sc, jade_theory **out);
jade_status jade_theory_create_fn(int n_bins, int n_ell, const double *ell, jade_theory_fn fn,
                                  void *ctx, jade_theory **out);
void jade_theory_free(jade_theory *t);
int jade_theory_n_ell(const jade_theory *t);
const double *jade_theory_ell(const jade_theory *t);
int jade_theory_n_bins(const jade_theory *t);
jade_status jade_theory_eval(const jade_theory *t, const double theta[JADE_N_THETA], double *cl,
                             double *lambda);

/* ---- emulator of ln C_ell(theta) and ln lambda(theta) --------------------------------- */

typedef struct jade_emulator jade_emulator;
typedef struct {
  int degree;       /* total degree of the polynomial in the whitened free parameters (4) */
  int pure_degree;  /* plus the pure powers w_i^p up to this degree (4: none) */
  int n_design;     /* exact theory runs for the fit (0: 3 x the number of coefficients) */
  int n_check;      /* further runs held out to measure the emulation error (24) */
  double spread;    /* design: N(mean, spread^2 cov), cut at 3 spread (1.5) */
  uint64_t seed;    /* Philox seed of the design */
  double range;     /* the emulator is valid within this many design standard deviations of
                       the design's centre in every whitened coordinate (5; the design reaches
                       3): beyond, the emulated density is -inf, so a chain cannot wander into
                       a spurious region of the extrapolated polynomial */
} jade_emulator_config;
void jade_emulator_config_default(jade_emulator_config *cfg);

/* Fit around `mean` (n_free values) with covariance `cov` (n_free x n_free, positive
 * definite), both in the unconstrained coordinates u of the free parameters (the transforms
 * of the posterior below, from sc's prior: ln C_ell is much closer to a low-degree
 * polynomial in ln Omega_c than in Omega_c); design points where the theory fails are
 * dropped. The exact theory runs are split over OpenMP threads
 * and, when dist is not NULL, MPI ranks; the fit depends on neither. Every C_ell and lambda
 * must be > 0 (convergence spectra are). */
jade_status jade_emulator_fit(const jade_theory *t, const jade_sim_config *sc, int n_free,
                              const int *free_idx, const double *mean, const double *cov,
                              const jade_emulator_config *cfg, const jade_dist *dist,
                              jade_emulator **out);
void jade_emulator_free(jade_emulator *e);
/* Value at theta (the fixed components are ignored: the emulator's own fixed values hold);
 * JADE_ERR_NUMERIC outside the emulator's range. */
jade_status jade_emulator_eval(const jade_emulator *e, const double theta[JADE_N_THETA], double *cl,
                               double *lambda);
/* dL/dtheta_free (n_free) from dL/dcl (n_ell x n_pairs) and dL/dlambda at theta, through the
 * emulator's derivative of C = exp(poly) and lambda = exp(poly). */
jade_status jade_emulator_vjp(const jade_emulator *e, const double theta[JADE_N_THETA],
                              const double *cl_bar, const double *lambda_bar, double *theta_bar);
/* Held-out check of the last fit: max and rms |ln emulated - ln exact| over the check points
 * for C_ell and for lambda; the number of design points used; the fit's centre. */
typedef struct {
  double max_err_cl, rms_err_cl, max_err_lambda;
  int n_design, n_check, n_terms;
} jade_emulator_info;
void jade_emulator_get_info(const jade_emulator *e, jade_emulator_info *info);
/* Serialisation (for resumable runs): size, write, read back (allocated). */
size_t jade_emulator_serial_size(const jade_emulator *e);
jade_status jade_emulator_serialize(const jade_emulator *e, void *buf, size_t size);
jade_status jade_emulator_deserialize(jade_emulator **out, const void *buf, size_t size);

/* ---- the posterior --------------------------------------------------------------------- */

typedef enum { JADE_FP_EXACT = 0, JADE_FP_EMULATOR = 1, JADE_FP_HYBRID = 2 } jade_fp_mode;

typedef struct {
  const jade_sim_config *sc;  /* geometry, variance option, prior, fixed parameter values */
  int n_free;                 /* 1..6 */
  int free_idx[JADE_N_THETA]; /* theta components sampled, increasing */
  const float *kappa_obs;     /* [n_bins][N][N] observed (noisy) convergence (copied) */
  const double *noise;        /* [n_bins] per-pixel noise sigma_i (> 0) */
  const float *mask;          /* [n_bins][N][N] 1 observed / 0 masked, or NULL (all observed):
                                 masked pixels drop out of the likelihood (their data unread) */
  const float *noise_map;     /* [n_bins][N][N] per-pixel noise sigma (> 0 where observed), or
                                 NULL: noise[i] everywhere in bin i */
  const jade_theory *theory;  /* exact theory (shared; must outlive the posterior) */
  double fd_step;             /* EXACT Jacobian step in units of each prior sd (1e-4 if 0) */
} jade_fieldpost_setup;

typedef struct jade_fieldpost jade_fieldpost;
/* One per thread (work buffers, FFT plans). */
jade_status jade_fieldpost_create(const jade_fieldpost_setup *s, jade_fieldpost **out);
void jade_fieldpost_free(jade_fieldpost *fp);
/* EMULATOR and HYBRID need an emulator of the same free parameters (not copied). */
jade_status jade_fieldpost_set_mode(jade_fieldpost *fp, jade_fp_mode mode, const jade_emulator *em);
size_t jade_fieldpost_dim(const jade_fieldpost *fp);
int jade_fieldpost_n_free(const jade_fieldpost *fp);

/* jade_logp_fn: log density at x and its gradient (grad may be NULL: value only). */
jade_status jade_fieldpost_logp(void *fp, const double *x, double *logp, double *grad);
/* A constant added to jade_fieldpost_logp's value (0 by default; not to eval_exact's): when the
 * emulator is refitted between warm-up iterations, a chain's cached density at its current
 * position stays consistent with the new target if the offset makes the two agree there (a
 * constant does not change the distribution). */
void jade_fieldpost_set_offset(jade_fieldpost *fp, double offset);
double jade_fieldpost_offset(const jade_fieldpost *fp);
/* Exact log density (the EXACT mode's value, whatever the mode) at x, and the noise-free map
 * kappa (float, [n_bins][N][N], may be NULL). */
jade_status jade_fieldpost_eval_exact(jade_fieldpost *fp, const double *x, double *logp, float *kappa);

/* theta (all six, fixed ones from the config) of a position x (only x[0..n_free) is read). */
void jade_fieldpost_theta(const jade_fieldpost *fp, const double *x, double theta[JADE_N_THETA]);
/* u[n_free] of theta (strictly inside the support, else JADE_ERR_INVALID naming the value). */
jade_status jade_fieldpost_unconstrain(const jade_fieldpost *fp, const double theta[JADE_N_THETA],
                                       double *u);

typedef struct {
  uint64_t n_eval;         /* log-density evaluations */
  uint64_t n_theory;       /* exact theory (cosmology) runs, finite differences included */
  uint64_t n_emulated;     /* emulator evaluations */
  uint64_t n_outside;      /* evaluations outside the model's support (-inf) */
  uint64_t n_nonfinite;    /* of which: finite density but a non-finite gradient (treated as -inf) */
  double t_theory, t_maps; /* seconds in the exact theory and in everything else */
} jade_fieldpost_counters;
void jade_fieldpost_get_counters(const jade_fieldpost *fp, jade_fieldpost_counters *c);

#ifdef __cplusplus
}
#endif
#endif
