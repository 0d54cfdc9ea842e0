/* jade simulation set-up: the config keys for cosmology, survey, map and prior turned into
 * structs, the prior over theta = (Omega_c, Omega_b, sigma_8, h, n_s, w_0), and one-call
 * simulation of noise-free log-normal convergence maps at a given theta. */
#ifndef JADE_SIM_H
#define JADE_SIM_H
#include "jade/config.h"
#include "jade/cosmo.h"
#include "jade/lensing.h"

#ifdef __cplusplus
extern "C" {
#endif

#define JADE_N_THETA 6
/* Names of the theta components (config keys and table columns). */
extern const char *const jade_theta_names[JADE_N_THETA];
/* The parameter columns of the posterior outputs (jade sample, jade mcmc, jade validate):
 * the six theta components, then the derived Omega_m = Omega_c + Omega_b and S_8 =
 * sigma_8 sqrt(Omega_m / 0.3); their names and LaTeX labels (getdist .paramnames, no '$'). */
#define JADE_N_PARAM_COLS (JADE_N_THETA + 2)
extern const char *const jade_param_names[JADE_N_PARAM_COLS];
extern const char *const jade_param_latex[JADE_N_PARAM_COLS];

typedef enum { JADE_PRIOR_NORMAL, JADE_PRIOR_TRUNCNORMAL, JADE_PRIOR_UNIFORM } jade_prior_kind;
typedef struct {
  jade_prior_kind kind;
  double mean, sd;   /* normal / truncnormal */
  double lo, hi;     /* truncnormal / uniform bounds (may be +-inf for truncnormal) */
} jade_prior1d;

typedef struct {
  jade_cosmo_params cosmo;   /* the config's cosmology (fixed-cosmology runs, observations) */
  jade_survey_params survey;
  jade_map_geometry geom;
  jade_ln_variance variance;
  jade_prior1d prior[JADE_N_THETA];
} jade_sim_config;

/* Read every top-level key the simulator needs (errors name key and file). */
jade_status jade_sim_config_read(jade_config *cfg, jade_sim_config *out);
/* sizeof of a public struct by name: "jade_sim_config", "jade_cosmo_params",
 * "jade_survey_params", "jade_map_geometry", "jade_prior1d", "jade_observation"
 * (jade/observation.h); 0 for any other name. Lets a
 * binding that mirrors these layouts (python/jade) check them against the library. */
size_t jade_sim_struct_size(const char *name);

void jade_theta_from_params(const jade_cosmo_params *p, double theta[JADE_N_THETA]);
/* The config's cosmology with theta's six values substituted. */
jade_cosmo_params jade_params_from_theta(const jade_sim_config *sc, const double theta[JADE_N_THETA]);
/* Omega_m and S_8 = sigma_8 sqrt(Omega_m / 0.3). */
double jade_theta_omega_m(const double theta[JADE_N_THETA]);
double jade_theta_s8(const double theta[JADE_N_THETA]);

/* The validity rule for theta used everywhere (config check, prior draws, prior density):
 * Omega_c in [0, 1], Omega_b in (0, 0.3], sigma_8 in [0.05, 3], h in [0.2, 1.5],
 * n_s in [0.5, 1.5], w_0 in [-3, 0], Omega_c + Omega_b < 1. Error names the parameter. */
jade_status jade_theta_check(const double theta[JADE_N_THETA]);
/* Draw theta number `index` from the prior (inverse-CDF of Philox uniforms, stream
 * JADE_STREAM(JADE_RNG_PRIOR, index)): depends only on (seed, index). The prior is
 * restricted to the valid region of jade_theta_check: an invalid draw is redrawn from the
 * next six uniforms of the same stream. */
void jade_prior_draw(const jade_sim_config *sc, uint64_t seed, uint64_t index, double theta[JADE_N_THETA]);
/* log prior density (-inf outside the support or the valid region; not renormalised). */
double jade_prior_logpdf(const jade_sim_config *sc, const double theta[JADE_N_THETA]);

/* Per-thread simulator: survey, FFT plans, buffers. */
typedef struct jade_simulator jade_simulator;
jade_status jade_simulator_create(const jade_sim_config *sc, jade_simulator **out);
void jade_simulator_free(jade_simulator *s);
/* Noise-free maps kappa [n_bins][N][N] at theta, white noise from Philox (seed,
 * JADE_STREAM(JADE_RNG_FIELD, index)); lambda (n_bins) may be NULL. Timings of the
 * cosmology part and the map part are accumulated in *t_cosmo, *t_maps if not NULL. */
jade_status jade_simulator_run(jade_simulator *s, const double theta[JADE_N_THETA], uint64_t seed,
                               uint64_t index, float *kappa, double *lambda, double *t_cosmo,
                               double *t_maps);
/* Per-pixel convergence noise sigma_i of each bin for this geometry and survey. */
void jade_simulator_noise(const jade_simulator *s, double *sigma);
/* The C_ell table (ell grid and values) used by the last run, for diagnostics. */
int jade_simulator_cl_table(const jade_simulator *s, const double **ell, const double **cl);

#ifdef __cplusplus
}
#endif
#endif
