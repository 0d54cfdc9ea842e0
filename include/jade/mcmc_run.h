/* jade mcmc run: the traditional baseline (docs/mcmc.md), field-level NUTS on the explicit
 * log-normal model for one observation, and its comparison with diffusion samples; the
 * library behind `jade mcmc`.
 *
 * Target: jade/fieldpost.h (white noise z and the free parameters, non-centred, Gaussian pixel
 * noise sigma_i of the observation on the convergence). Sampler: jade's NUTS (jade/mcmc.h),
 * chains in parallel over OpenMP threads and MPI ranks (chain c on rank c % size), each
 * chain's randomness keyed by its global index only, so the draws depend on neither the thread
 * nor the rank count.
 *
 * Theory modes: JADE_FP_EMULATOR (warm-up refits a polynomial emulator of ln C_ell, ln lambda
 * around the chains, then it is frozen; every post-warm-up draw gets the importance weight
 * exp(log p_exact - log p_emulated), computed with the exact cosmology), JADE_FP_HYBRID
 * (exact density, emulator gradient: exact NUTS) or JADE_FP_EXACT (finite-difference
 * cosmology Jacobian: for small checks only).
 *
 * OUT/ (written into OUT.partial/, renamed when complete; a run with the same options over an
 * existing OUT.partial resumes from its last checkpoint, bit-identically):
 *   chain.txt        post-warm-up draws of all chains, chain after chain, in the layout of
 *                    `jade sample` (include/jade/chains.h): weight (importance weight, mean 1)
 *                    minuslogpost (-log exact density of the sampled position, up to a
 *                    constant) Omega_c Omega_b sigma_8 h n_s w_0 Omega_m S_8; chain.paramnames,
 *                    chain.npy. Draws with a non-finite density (weight 0) are left out.
 *   theta.txt        the same draws with the chain index: chain weight log_post Omega_c ...
 *                    S_8 (first line '# ' + names)
 *   mean.fits        posterior mean of the noise-free convergence (weighted), [bin][y][x]
 *   std.fits         posterior standard deviation of the convergence
 *   diagnostics.txt  per parameter mean, sd, R-hat, bulk/tail ESS; divergences, tree depths,
 *                    step sizes, gradient evaluations, wall time per effective sample of S_8
 *   compare.txt      with compare_dir: NUTS vs diffusion samples
 *   config.ini       the effective configuration
 * OUT.partial/state.bin (the checkpoint) holds every chain's sampler state, statistics and
 * draws so far and the emulator (format in src/mcmc/run_state.c). */
#ifndef JADE_MCMC_RUN_H
#define JADE_MCMC_RUN_H
#include "jade/dist.h"
#include "jade/fieldpost.h"
#include "jade/mcmc.h"
#include "jade/sim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Progress after each block of iterations (rank 0). */
typedef struct {
  long iteration, warmup, samples; /* iterations done per chain (warm-up included) */
  int n_chains, n_local, ranks;    /* chains in all, on rank 0, MPI ranks */
  double rate;                     /* iterations per second in this call */
  double grad_per_iteration;       /* gradient evaluations per iteration (rank 0's chains) */
  long divergent;                  /* divergent transitions so far (rank 0's chains) */
} jade_mcmc_progress;

typedef struct {
  const jade_sim_config *sim;    /* geometry, cosmology (the fixed parameters), prior */
  const char *config_text;       /* effective configuration: config.ini and the run identity */
  const char *obs_path;          /* observation FITS (jade/observation.h) */
  const char *out_dir;           /* OUT; must not exist (OUT.partial is resumed) */
  int n_chains;                  /* default 4 */
  long warmup, samples;          /* iterations per chain: 500, 1000 */
  int max_depth;                 /* NUTS tree depth: 8 (the paper used 6) */
  double target_accept;          /* dual averaging: 0.8 */
  uint64_t seed;                 /* < 2^63 */
  int init_truth;                /* start at the observation's truth (free parameters and white
                                    noise, as the paper; needs a `jade observe` observation)
                                    instead of prior draws */
  int n_free, free_idx[JADE_N_THETA]; /* the sampled parameters, increasing (default: all) */
  jade_fp_mode theory;           /* default JADE_FP_EMULATOR */
  int emulator_degree;           /* total degree of the emulator polynomial: 4 */
  double checkpoint_seconds;     /* between checkpoints: 60 */
  long max_iterations;           /* > 0: return after this many iterations per chain in this
                                    call (result.finished = 0; run again to resume) */
  const char *compare_dir;       /* a `jade sample` output to compare with (NULL: none) */
  const jade_dist *dist;         /* NULL: one process */
  /* rank 0: one-line notes (resuming, emulator fits, observation vs config), no newline */
  void (*message)(const char *text, void *user);
  void (*progress)(const jade_mcmc_progress *p, void *user);
  void *user;
} jade_mcmc_run_options;

typedef struct {
  int finished;            /* OUT written; else stopped by max_iterations */
  long iteration;          /* iterations per chain done */
  jade_mcmc_health health; /* of the finished run (rank 0): jade_mcmc_health_verdict */
  double seconds;          /* wall time of the run, all calls together */
} jade_mcmc_run_result;

void jade_mcmc_run_options_default(jade_mcmc_run_options *o);
/* sizeof of jade_mcmc_run_options, jade_mcmc_run_result, jade_mcmc_health or
 * jade_mcmc_progress by type name (0: unknown name), so bindings in other languages
 * (python/jade) can check their copies of the layouts. */
size_t jade_mcmc_struct_size(const char *name);
/* "Omega_c,sigma_8" (commas or spaces) -> increasing parameter indices. */
jade_status jade_mcmc_parse_free(const char *list, int *n_free, int idx[JADE_N_THETA]);
/* Run (or resume) the chains and write OUT (collective over o->dist). */
jade_status jade_mcmc_run(const jade_mcmc_run_options *o, jade_mcmc_run_result *res);
/* Write MCMC_DIR/compare.txt: the draws of a finished run (its theta.txt) against a
 * `jade sample` output (SAMPLE_DIR/theta.txt): per parameter the means, standard deviations,
 * offset (mean_sample - mean_mcmc) / sd_mcmc and sd ratio. Rank 0 writes (collective). */
jade_status jade_mcmc_compare(const char *mcmc_dir, const char *sample_dir, const jade_dist *dist);

#ifdef __cplusplus
}
#endif
#endif
