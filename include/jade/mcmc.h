/* jade MCMC: a model-agnostic No-U-Turn sampler and convergence diagnostics.
 *
 * Sampler: the multinomial ("efficient") NUTS of Hoffman & Gelman (2014, JMLR 15:1593) as
 * refined by Betancourt (2017, arXiv:1701.02434, Sec. A.4): multinomial sampling of the
 * trajectory (biased progressive sampling between the old tree and a new subtree, uniform
 * progressive sampling inside subtrees), the generalised U-turn criterion on the summed
 * momenta rho with the extra checks across merged subtrees (as in Stan >= 2.26),
 * divergences when H - H0 > max_energy_error. Step size by dual averaging (Hoffman & Gelman
 * 2014, Sec. 3.2, Nesterov 2009); diagonal inverse metric from Stan-style warm-up windows
 * (75 fast / 25 doubling slow windows / 50 fast; regularised variance
 * n/(n+5) var + 1e-3 * 5/(n+5)).
 *
 * Randomness: only Philox (jade_rng_*) keyed by (seed, JADE_STREAM(JADE_RNG_MCMC, chain_id),
 * index) with index = (iteration << 40) | offset, so a chain's draws depend neither on the
 * thread that runs it nor on how its iterations are split between calls.
 *
 * Resumable: the whole chain state (position, step size, dual-averaging and window state,
 * Welford accumulators, inverse metric, iteration counter) serialises to bytes; running
 * W+S iterations at once or in pieces with serialise/deserialise in between gives
 * bit-identical draws.
 *
 * Diagnostics: Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021, Bayesian Analysis
 * 16:667), rank-normalised split R-hat (max of bulk and folded), bulk-ESS and tail-ESS with
 * Geyer's initial monotone sequence. */
#ifndef JADE_MCMC_H
#define JADE_MCMC_H
#include "jade/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Log target density at x (dimension d fixed by the chain) and its gradient (grad[d]).
 * Outside the support return JADE_OK with *logp = -INFINITY (the trajectory then counts as
 * divergent); a non-OK status aborts the run and is propagated. */
typedef jade_status (*jade_logp_fn)(void *ctx, const double *x, double *logp, double *grad);

typedef struct {
  long n_warmup;            /* warm-up (adaptation) iterations, counted from iteration 0
                               (1000) */
  int max_depth;            /* maximum tree depth, 1..30 (10; the paper's NumPyro run used 6);
                               a transition takes at most 2^max_depth - 1 leapfrog steps */
  double max_energy_error;  /* divergence when H - H0 exceeds this (1000) */
  double step_size;         /* initial step size (1); with adapt_step refined first by the
                               doubling/halving heuristic (Hoffman & Gelman Alg. 4) */
  int adapt_step;           /* dual averaging during warm-up (1) */
  int adapt_metric;         /* diagonal inverse-metric windows during warm-up (1) */
  double target_accept;     /* dual-averaging target delta (0.8) */
  double gamma;             /* 0.05 */
  double t0;                /* 10 */
  double kappa;             /* 0.75 */
  long init_buffer;         /* initial fast window (75) */
  long term_buffer;         /* terminal fast window (50) */
  long base_window;         /* first slow window, doubled after each (25) */
} jade_nuts_config;

/* Fills the defaults listed above. */
void jade_nuts_config_default(jade_nuts_config *cfg);
/* Checks ranges (max_depth 1..30, 0 < target_accept < 1, step_size > 0, ...). */
jade_status jade_nuts_config_check(const jade_nuts_config *cfg);

/* End iterations (0-based, within warm-up) of the slow windows at which the inverse metric
 * is re-estimated, after Stan's rules (windows shrunk to 15%/75%/10% of n_warmup when the
 * three defaults do not fit; none when n_warmup < 20 or adapt_metric == 0). Writes at most
 * max entries and returns the total number. n_warmup 1000 -> 99 149 249 449 949. */
int jade_nuts_metric_windows(const jade_nuts_config *cfg, long *ends, int max);

/* Per-draw statistics (Stan's names in brackets). */
typedef struct {
  double step_size;    /* step size used [stepsize__] */
  double accept_stat;  /* mean Metropolis acceptance over the trajectory [accept_stat__] */
  double energy;       /* Hamiltonian at the selected point [energy__] */
  double logp;         /* log density at the draw [lp__] */
  int tree_depth;      /* [treedepth__] */
  int n_leapfrog;      /* [n_leapfrog__] */
  int divergent;       /* [divergent__] */
  int warmup;          /* 1 during warm-up */
} jade_nuts_stats;

typedef struct {
  uint64_t grad_evals;      /* all target evaluations, including the step-size heuristic */
  long divergent_warmup;    /* divergent transitions during warm-up */
  long divergent;           /* divergent transitions after warm-up */
} jade_nuts_totals;

typedef struct jade_nuts_chain jade_nuts_chain;

/* A chain of dimension dim (1 .. 2^32) at iteration 0. x0: initial position (copied), or
 * NULL for Stan's uniform(-2, 2) initialisation (redrawn up to 100 times until the density
 * and gradient are finite). inv_metric0: initial diagonal inverse metric (NULL = ones).
 * The target is not evaluated until the first jade_nuts_run. */
jade_status jade_nuts_chain_create(jade_nuts_chain **out, size_t dim, const jade_nuts_config *cfg,
                                   uint64_t seed, uint64_t chain_id, const double *x0,
                                   const double *inv_metric0);
void jade_nuts_chain_free(jade_nuts_chain *c);

/* Runs n_iter iterations (warm-up while the chain's iteration counter < n_warmup; at the
 * first post-warm-up iteration the step size becomes exp(x_bar) of dual averaging).
 * draws: n_iter * dim doubles (row per iteration) or NULL; stats: n_iter entries or NULL.
 * On error the chain stays at the last completed iteration. */
jade_status jade_nuts_run(jade_nuts_chain *c, jade_logp_fn fn, void *ctx, long n_iter,
                          double *draws, jade_nuts_stats *stats);

/* Runs n_iter iterations of each of n_chains chains (all of one dimension d), one chain per
 * OpenMP thread (n_threads <= 0: omp_get_max_threads()). ctx[c] is passed to chain c (give
 * the same pointer to all when the target is thread-safe); ctx NULL passes NULL.
 * draws[(c * n_iter + i) * d + j], stats[c * n_iter + i] (either may be NULL). The result
 * does not depend on n_threads. The first failing chain's error is reported. */
jade_status jade_nuts_run_chains(jade_nuts_chain *const *chains, int n_chains, jade_logp_fn fn,
                                 void *const *ctx, long n_iter, double *draws,
                                 jade_nuts_stats *stats, int n_threads);

size_t jade_nuts_chain_dim(const jade_nuts_chain *c);
long jade_nuts_chain_iteration(const jade_nuts_chain *c);   /* iterations completed */
const double *jade_nuts_chain_position(const jade_nuts_chain *c);
const double *jade_nuts_chain_inv_metric(const jade_nuts_chain *c);
double jade_nuts_chain_step_size(const jade_nuts_chain *c); /* step size of the next iteration
                                                               (after warm-up: the final one) */
const jade_nuts_config *jade_nuts_chain_config(const jade_nuts_chain *c);
void jade_nuts_chain_totals(const jade_nuts_chain *c, jade_nuts_totals *out);

/* Serialisation (host byte order, versioned, with a checksum): size in bytes, write into
 * buf[size], and rebuild a chain (allocated) from bytes. */
size_t jade_nuts_chain_serial_size(const jade_nuts_chain *c);
jade_status jade_nuts_chain_serialize(const jade_nuts_chain *c, void *buf, size_t size);
jade_status jade_nuts_chain_deserialize(jade_nuts_chain **out, const void *buf, size_t size);
/* The same to/from a file (written to path.tmp then renamed). */
jade_status jade_nuts_chain_save(const jade_nuts_chain *c, const char *path);
jade_status jade_nuts_chain_load(jade_nuts_chain **out, const char *path);

/* Energy Bayesian fraction of missing information of one chain (Betancourt 2016,
 * arXiv:1604.00695): sum (E_i - E_{i-1})^2 / sum (E_i - mean E)^2 over n >= 3 stats;
 * values below ~0.3 flag poor exploration. NaN when undefined. */
double jade_nuts_ebfmi(const jade_nuts_stats *stats, long n);

/* ---------------------------------------------------------------------------------------
 * Diagnostics of one scalar quantity from m chains of n draws each, x[c * n + i]. They split
 * every chain in halves (dropping the middle draw when n is odd) and agree with the R package
 * posterior 1.4.0 to ~1e-14. Undefined results (n < 4 draws per chain, constant or
 * non-finite draws) are NaN with JADE_OK; bad arguments give JADE_ERR_INVALID. Cost: one
 * sort of the m n draws plus O(m n L) for autocorrelations up to the truncation lag L (FFT
 * beyond lag 128).
 * ------------------------------------------------------------------------------------- */

/* Rank-normalised split R-hat: max of the bulk (rank-normalised draws) and tail
 * (rank-normalised |x - median|) R-hats (Vehtari et al. 2021, Sec. 4.2). */
jade_status jade_mcmc_rhat(const double *x, int m, size_t n, double *rhat);
/* Classic split R-hat on the raw draws (Gelman et al., BDA3, eq. 11.4 on split chains). */
jade_status jade_mcmc_rhat_basic(const double *x, int m, size_t n, double *rhat);
/* Lower Cholesky factor l (k x k, row major, upper triangle set to 0) of the symmetric
 * positive-definite a, A = L L^T; 0 on success, 1 when a is not numerically positive definite
 * (a non-positive or non-finite pivot; l is then incomplete). */
int jade_cholesky(int k, const double *a, double *l);
/* Bulk-ESS: ESS of the rank-normalised split chains. */
jade_status jade_mcmc_ess_bulk(const double *x, int m, size_t n, double *ess);
/* Tail-ESS: min of the ESS of the indicators x <= q05 and x <= q95. */
jade_status jade_mcmc_ess_tail(const double *x, int m, size_t n, double *ess);
/* ESS of the indicator x <= q_prob (empirical quantile over all draws), 0 < prob < 1. */
jade_status jade_mcmc_ess_quantile(const double *x, int m, size_t n, double prob, double *ess);
/* ESS for the mean: split chains, raw values (Geyer's initial monotone sequence on the
 * multi-chain autocorrelation, Vehtari et al. 2021 eqs. 10-11). */
jade_status jade_mcmc_ess_mean(const double *x, int m, size_t n, double *ess);

/* Mean and standard deviation (n - 1 denominator) of x[0..n). */
void jade_mcmc_mean_sd(const double *x, size_t n, double *mean, double *sd);
/* Sample quantiles of x[0..n) (linear interpolation, Hyndman & Fan type 7) at probs[k]. */
jade_status jade_mcmc_quantiles(const double *x, size_t n, const double *probs, int k,
                                double *out);

typedef struct {
  double mean, sd;
  double mcse_mean;   /* sd / sqrt(ess_mean) */
  double mcse_sd;     /* delta method on the variance with the ESS of (x - mean)^2:
                         sqrt((E c^4 - (E c^2)^2) / ess / (4 E c^2)), c = x - mean */
  double q05, q50, q95;
  double ess_bulk, ess_tail, ess_mean;
  double rhat;        /* rank-normalised split R-hat */
} jade_mcmc_summary;

jade_status jade_mcmc_summarize(const double *x, int m, size_t n, jade_mcmc_summary *out);
/* Summaries of all d coordinates of multi-chain draws in jade_nuts_run_chains' layout
 * draws[(c * n + i) * d + j]; out[d]. Parallel over coordinates (OpenMP). */
jade_status jade_mcmc_summarize_draws(const double *draws, int m, size_t n, size_t d,
                                      jade_mcmc_summary *out);
/* Whether chains are usable, by the published criteria: rank-normalised split R-hat < 1.01
 * and bulk and tail ESS >= 100 per chain (Vehtari et al. 2021, Bayesian Analysis 16, 667,
 * sec. 4), no divergent transition after warm-up (Betancourt 2017, arXiv:1701.02434, sec.
 * 6.2), and, for importance-weighted draws, Kish's effective sample size of the weights
 * (sum w)^2 / sum w^2 >= the same 100 per chain (Kish 1965, Survey Sampling, sec. 11.7: a
 * weighted mean has at most that many effective draws). Fill the worst values over the
 * parameters that were sampled. */
typedef struct {
  double max_rhat, min_ess_bulk, min_ess_tail;
  const char *worst_rhat_name, *min_ess_name; /* the parameters they belong to (may be NULL) */
  long divergent, draws;                      /* after warm-up, all chains */
  int chains;
  double weight_ess; /* Kish ESS of the importance weights; <= 0: unweighted draws, not checked */
} jade_mcmc_health;
/* Returns the number of failed criteria (0: usable) and a one-line verdict in msg. */
int jade_mcmc_health_verdict(const jade_mcmc_health *h, char *msg, size_t len);
/* Copies coordinate j of such draws into out[c * n + i]. */
void jade_mcmc_extract(const double *draws, int m, size_t n, size_t d, size_t j, double *out);

#ifdef __cplusplus
}
#endif
#endif
