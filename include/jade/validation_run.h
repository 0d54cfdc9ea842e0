/* jade validation run: calibration of a trained model's posteriors over held-out simulations
 * (the library behind `jade validate`; spec validation.md, docs/validation.md).
 *
 * For each of the first n_obs simulations t of a `jade simulate` dataset that the model never
 * saw:
 *  1. the observation: kappa_t + sigma_b n, n ~ N(0, 1) from Philox (seed,
 *     JADE_STREAM(JADE_RNG_VALIDATE, JADE_VALIDATE_ID(0, t))), element b n^2 + i for pixel i
 *     of bin b, sigma_b the dataset's noise.npy (the model's training noise model:
 *     convergence plus white noise); with `masks` set, a random mask and noise map too;
 *  2. `draws` posterior samples with the posterior library (Heun, `steps` steps), sampling
 *     seed (seed << 32) | t, i.e. `jade sample --seed` of that value reproduces them;
 *  3. per-observation statistics with jade/validate.h: MIRA p and TARP counts of the joint
 *     vector (all map pixels then the 6 parameters), the parameters alone and the maps alone,
 *     in the model's normalised units (kappa / map_std per bin, (theta - theta_mean) /
 *     theta_std); SBC ranks, 68/95% coverage and standardised offsets of the 6 parameters,
 *     Omega_m and S_8 (physical units); per-pixel coverage of the maps; binned auto and cross
 *     power spectra of the draws (mean, 16/84%) and of the truth; one-point histograms and
 *     moments of draws and truth.
 * Each observation's statistics are written to OUT.partial/records/obs_<t>.npy as soon as they
 * are complete, so an interrupted run continues where it stopped (records already present are
 * skipped); observations are split over MPI ranks (t = rank + k size) and over OpenMP threads
 * (whole observations per thread with a model copy each when the rank has at least as many
 * observations as threads, else threads inside the sampler). The summary is computed from the
 * records in index order, so it does not depend on ranks, threads or interruptions (sampling
 * itself is rank-independent; see jade/posterior.h about threads). When every record exists,
 * rank 0 writes the tables, summary.json, the figures and report.html, and renames OUT.partial
 * to OUT. */
#ifndef JADE_VALIDATION_RUN_H
#define JADE_VALIDATION_RUN_H
#include <stdint.h>

#include "jade/dist.h"
#include "jade/mask.h"
#include "jade/model.h"
#include "jade/progress.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  const char *model_path; /* MODELDIR of jade train or a .safetensors file */
  const char *data_dir;   /* held-out dataset of jade simulate */
  const char *out_dir;    /* OUT; must not exist (OUT.partial is resumed) */
  long n_obs;             /* the first n_obs simulations (default 100; >= 2) */
  long draws;             /* posterior draws per observation (default 100) */
  int steps;              /* solver steps (default 32) */
  jade_solver solver;     /* ODE solver (default JADE_SOLVER_HEUN) */
  int batch;              /* draws integrated together (default 64) */
  uint64_t seed;          /* < 2^31 (default 0) */
  int keep_draws;         /* also write the truths, observations and draws as .npy */
  long max_obs;           /* > 0: return after this many new observations on each rank
                             (result->finished = 0; run again to resume) */
  int n_boot;             /* bootstrap replicates of MIRA and TARP (default 100) */
  int n_hist;             /* one-point histogram bins (default 40) */
  int threads;            /* 0 auto (see above); 1: threads inside the sampler only */
  double noise_rtol;      /* dataset noise vs training noise tolerance (0.01; < 0: not checked) */
  int no_report;          /* skip the figures and report.html */
  const jade_dist *dist;  /* NULL: one process */
  /* on rank 0 once the inputs are checked, before the first observation: observations this
   * rank still has to do (of n_mine) and the worker threads */
  void (*start)(long todo, long n_mine, int workers, void *user);
  /* progress on rank 0 after every sampling step and every finished observation of this
   * rank (include/jade/progress.h: tasks are observations), from one thread at a time */
  jade_progress_fn progress;
  void *user;
  /* masked observations (a model trained with model.condition = masked; jade/mask.h): all
   * zero (the default) gives full maps at the dataset's noise. Otherwise observation t has
   * the mask and ln noise ratio of jade_random_mask_noise(&masks, n, seed,
   * JADE_STREAM(JADE_RNG_VALIDATE, JADE_VALIDATE_ID(JADE_VALTAG_MASK, t)), 0) in every bin and
   * is m (kappa_t + sigma_b e^lnr n) with the same n as above, masked pixels 0. */
  jade_mask_config masks;
} jade_validation_options;

void jade_validation_options_default(jade_validation_options *o);
/* sizeof of jade_validation_options, jade_validation_result and the option and result
 * structs of jade/validate.h (jade_mira_opts, jade_mira_result, jade_tarp_opts,
 * jade_tarp_result, jade_coverage_result) by type name (0: unknown name), so bindings in
 * other languages (python/jade) can check their copies of the layouts. */
size_t jade_validate_struct_size(const char *name);

typedef struct {
  int finished;       /* OUT written */
  long n_done;        /* observations with a record (all ranks) */
  long n_obs;
  double mira_joint, mira_joint_err, mira_expected;
  double seconds;     /* wall time of this call */
} jade_validation_result;

jade_status jade_validation_run(const jade_validation_options *o, jade_validation_result *res);

#ifdef __cplusplus
}
#endif
#endif
