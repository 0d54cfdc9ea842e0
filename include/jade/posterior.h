/* Posterior sampling with a trained JADE model: joint draws of (convergence maps, theta)
 * given one observation, by the Heun probability-flow ODE sampler (spec/model.md "Sampler").
 *
 * Draw d starts from Philox noise (seed, JADE_STREAM(JADE_RNG_SAMPLE, d)): elements
 * 0 .. C*H*W-1 for the maps, the next P for theta. Draws are integrated in fixed batches
 * [k B, (k+1) B) (batch k on MPI rank k mod R, on whichever OpenMP thread), so the result
 * depends on (model, observation, seed, steps, batch) only, not on the number of ranks or
 * threads (threads inside the network may change float rounding, see jade_gemm). */
#ifndef JADE_POSTERIOR_H
#define JADE_POSTERIOR_H
#include "jade/dist.h"
#include "jade/observation.h"
#include "jade/progress.h"
#include "jade/trained_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Columns of the theta outputs: the six parameters, then Omega_m and S_8 (jade/sim.h's
 * jade_param_names, jade_param_latex). */
#define JADE_POSTERIOR_COLS JADE_N_PARAM_COLS
extern const char *const *const jade_posterior_col_names; /* = jade_param_names */

typedef struct {
  long n_draws;      /* default 256 */
  int n_steps;       /* solver steps (Heun: 2 n_steps - 1 network evaluations); default 128 */
  jade_solver solver; /* JADE_SOLVER_HEUN (default, the paper's) or JADE_SOLVER_DPM2M */
  int batch;         /* draws integrated together; default 64 */
  uint64_t seed;
  int threads;       /* 0 (default): whole batches on separate OpenMP threads (each with its
                        own model copy) when there are enough batches, else threads inside
                        the network; 1: always inside the network; n > 1: at most n workers */
  /* optional progress on rank 0 after every integration step of every batch of this rank
   * and at the end of each batch (include/jade/progress.h: steps, draw-evaluations, time
   * left), called from one thread at a time */
  jade_progress_fn progress;
  void *user;
  /* lower level (used by jade_validation_run): after every step, from the thread that
   * integrated it (not serialised), with its draw-evaluations (network evaluations x draws) */
  void (*on_step)(double work, void *step_user);
  void *step_user;
  /* the effective configuration (jade_config_dump), written by jade_posterior_write as
   * DIR/config.ini (prior and survey for jade report); NULL: not written */
  const char *config_text;
  /* the observation's mask and per-pixel noise (bins, n, n) and per-bin noise (bins)
   * (jade/observation.h), or NULL: all observed / noise[] / the training noise. A model with
   * model.condition = masked conditions on them (jade/condition.h); a convergence-only model
   * refuses masked pixels and ignores the noise. */
  const float *mask;
  const float *noise_map;
  const double *noise;
} jade_posterior_options;

void jade_posterior_options_default(jade_posterior_options *o);
/* sizeof of jade_posterior_options, jade_progress, jade_trained_model, jade_norm,
 * jade_flow_config, jade_model_config, jade_summary_stat or jade_tensor_info by type name
 * (0: unknown name), so
 * bindings in other languages (python/jade) can check their copies of the layouts. */
size_t jade_posterior_struct_size(const char *name);

/* Checks that an observation suits the model: same bins, pixels and patch size (relative
 * 1e-6), finite convergence in every pixel (when obs->kappa is set), no masked pixels unless
 * the model is masked, and the noise: per bin within noise_rtol of the training noise, or for
 * a masked model every observed pixel's noise within the training range of ratios
 * (jade/condition.h; noise_rtol < 0: not checked). Errors name both files and the mismatch. */
jade_status jade_posterior_check(const jade_trained_model *tm, const jade_observation *obs,
                                 const char *obs_path, double noise_rtol);

/* Draw from p(maps, theta | observation). obs_kappa (bins, n, n) physical convergence. On
 * return every rank holds all draws: maps (n_draws, bins, n, n) physical convergence (may be
 * NULL: not kept) and theta (n_draws, JADE_POSTERIOR_COLS) physical units. d may be NULL. */
jade_status jade_posterior_sample(jade_trained_model *tm, const float *obs_kappa,
                                  const jade_posterior_options *o, const jade_dist *d,
                                  float *maps, double *theta);

/* Mean, standard deviation and the 16/50/84% quantiles (linear interpolation between order
 * statistics, numpy's default) of x[i * stride], i < n. */
typedef struct {
  double mean, std, q16, q50, q84;
} jade_summary_stat;
void jade_posterior_summary(const double *x, long n, int stride, jade_summary_stat *out);
/* Mean and standard deviation (ddof 1; 0 for one draw) over D draws of every element of
 * x (D, n), summed in double. */
void jade_draw_moments(const float *x, size_t D, size_t n, float *mean, float *sd);

/* Write DIR/maps.fits (4-D float32 (n_draws, bins, n, n), the observation's WCS-like keys),
 * DIR/theta.txt, DIR/theta.npy (n_draws, JADE_POSTERIOR_COLS) float64, DIR/chain.txt,
 * DIR/chain.paramnames, DIR/chain.npy (jade/chains.h: weight 1, minuslogpost 0, the same
 * columns; the layout of jade mcmc), DIR/summary.txt and
 * (o->config_text) DIR/config.ini, each atomically, the text files under '#' lines naming the
 * jade version and the inputs. maps may be NULL (no maps.fits). */
jade_status jade_posterior_write(const char *dir, const jade_trained_model *tm,
                                 const jade_observation *obs, const char *obs_path,
                                 const jade_posterior_options *o, const float *maps,
                                 const double *theta);

/* The whole `jade sample` pipeline: read the observation file (jade/observation.h),
 * check it against the model (noise_rtol as in jade_posterior_check), sample with o (its
 * mask / noise_map / noise are taken from the observation), and write out_dir with
 * jade_posterior_write (maps.fits only if keep_maps) into out_dir.tmp.<pid>, renamed to
 * out_dir when complete and removed on failure: out_dir must not exist. message (may be NULL;
 * rank 0) receives one line describing the run before the sampling starts. theta_out (may be
 * NULL) receives a malloc'd copy of the draws (n_draws, JADE_POSTERIOR_COLS) on every rank;
 * the caller frees it. Collective over d. */
jade_status jade_posterior_run(jade_trained_model *tm, const char *obs_path, const char *out_dir, double noise_rtol,
                               int keep_maps, const jade_posterior_options *o, const jade_dist *d,
                               void (*message)(const char *text, void *user), void *user, double **theta_out);

#ifdef __cplusplus
}
#endif
#endif
