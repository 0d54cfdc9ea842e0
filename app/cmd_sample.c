/* jade sample: posterior draws of (maps, theta) for one observation with a trained model
 * (library: src/diffusion/posterior.c).
 *
 * OUT/: maps.fits   float32 (draws, bins, n, n) convergence, WCS-like keys of the observation
 *       theta.txt   one draw per row: Omega_c Omega_b sigma_8 h n_s w_0 Omega_m S_8
 *       theta.npy   float64 (draws, 8), same columns
 *       chain.txt, chain.paramnames, chain.npy: the same draws with weight (1) and
 *                   minuslogpost (0: no density) columns, the layout of jade mcmc
 *                   (include/jade/chains.h; numpy genfromtxt names=True, getdist)
 *       summary.txt mean, std, 16/50/84% quantiles per column (also printed)
 *       config.ini  the effective configuration (prior, survey: jade report's overlays)
 * OUT must not exist: everything is written into OUT.tmp.<pid>, renamed to OUT when complete
 * (and removed on failure), so a failed run leaves nothing behind (jade_posterior_run). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "jade/nn.h"
#include "jade/dist.h"
#include "jade/io.h"
#include "jade/observation.h"
#include "jade/posterior.h"

typedef struct {
  double t0, t_last;
  int tty;
} progress_state;

/* one stderr line per 0.5 s on a terminal (overwritten), per 30 s otherwise, and the last */
static void progress(const jade_progress *p, void *user) {
  progress_state *ps = user;
  double now = jade_time_now();
  if (now - ps->t_last < (ps->tty ? 0.5 : 30.0) && p->tasks_done < p->tasks_total) return;
  ps->t_last = now;
  char left[32];
  jade_format_duration(p->eta, left, sizeof left);
  fprintf(stderr, "%ssample: step %ld/%ld (%.0f%%), batch %ld/%ld done, %.3g draw-evaluations/s, %s left%s", ps->tty ? "\r" : "",
          p->steps_done, p->steps_total, 100.0 * p->work_done / p->work_total, p->tasks_done, p->tasks_total, p->rate, left,
          ps->tty ? "   " : "\n");
}

static void print_start(const char *text, void *user) {
  (void)user;
  fprintf(stderr, "jade sample: %s\n", text);
}

/* --config FILE / preset, else the config stored in the model over the 'small' preset (so
 * [sample] keys are always defined); then --set. */
static jade_status load_config(jade_option *opts, const jade_trained_model *tm, jade_config **out) {
  const char *path = jade_cli_opt(opts, "config")->value;
  jade_option *sets = jade_cli_opt(opts, "set");
  jade_config *cfg;
  jade_status st = jade_config_create(&cfg);
  if (st) return st;
  if (path && jade_config_preset_text(path))
    st = jade_config_load_preset(cfg, path);
  else if (path)
    st = jade_config_load_file(cfg, path);
  else {
    st = jade_config_load_preset(cfg, "small");
    if (!st && tm->config_text[0]) st = jade_config_load_string(cfg, tm->config_text, tm->path);
  }
  for (int i = 0; !st && sets && i < sets->n_values; i++) st = jade_config_set(cfg, sets->values[i]);
  if (st) {
    jade_config_free(cfg);
    return st;
  }
  *out = cfg;
  return JADE_OK;
}

int jade_cmd_sample(int argc, char **argv) {
  jade_option opts[] = {
      {"model", "M", "trained model: a jade train MODELDIR or a .safetensors file", NULL, 0, 0, NULL, 0},
      {"obs", "OBS.fits", "observation (GAMMA1/GAMMA2 shear, converted by Kaiser-Squires, or KAPPA)", NULL, 0, 0, NULL, 0},
      {"out", "DIR", "output directory (maps.fits, chain.txt, chain.paramnames, chain.npy, theta.txt, theta.npy, summary.txt); must not exist", NULL, 0, 0, NULL, 0},
      {"config", "FILE", "configuration file or preset name for the [sample] defaults (default: the config stored "
                         "in the model over the built-in 'small' preset)", NULL, 0, 0, NULL, 0},
      {"set", "KEY=VALUE", "override one config key, e.g. sample.batch=32", NULL, 1, 0, NULL, 0},
      {"draws", "N", "posterior draws (default: sample.draws, 256 in the presets)", NULL, 0, 0, NULL, 0},
      {"steps", "S", "solver steps (Heun: 2S-1 network evaluations per draw) (default: sample.steps, 128 = the paper's "
                     "calibration setting)", NULL, 0, 0, NULL, 0},
      {"solver", "heun|dpm2m", "ODE solver: heun (the paper's; 2S-1 evaluations per draw) or dpm2m "
                               "(DPM-Solver++(2M), S evaluations; 16-32 steps match Heun's 128, docs/model.md)",
       "heun", 0, 0, NULL, 0},
      {"seed", "S", "random seed; draw d uses Philox stream (SAMPLE, d), so results do not depend on ranks "
                    "(default: sample.seed)", NULL, 0, 0, NULL, 0},
      {"batch", "B", "draws integrated together; memory ~ B x activations (default: sample.batch)", NULL, 0, 0, NULL, 0},
      {"inner-threads", NULL, "use the threads inside the network for one batch at a time, instead of integrating "
                               "whole batches on separate threads (each with a model copy)", NULL, 0, 0, NULL, 0},
      {"no-maps", NULL, "do not write maps.fits (theta only)", NULL, 0, 0, NULL, 0},
      {"ignore-noise", NULL, "sample even if the observation's noise differs from the training noise", NULL, 0, 0, NULL, 0},
      {"quiet", NULL, "no progress line or summary", NULL, 0, 0, NULL, 0},
      {NULL, NULL, NULL, NULL, 0, 0, NULL, 0}};
  jade_dist dist;
  int r = jade_cli_start(&argc, &argv, "sample", "jade sample --model M --obs OBS.fits --out DIR [options]",
                         "Draw joint posterior samples of the convergence maps and cosmology given one\n"
                         "observation, with the Heun ODE sampler of a trained JADE model. Draws are split over\n"
                         "MPI ranks (mpirun -np R); each batch uses the threads of OMP_NUM_THREADS.",
                         opts, &dist);
  if (r >= 0) return r;
  const char *model_path = jade_cli_opt(opts, "model")->value, *obs_path = jade_cli_opt(opts, "obs")->value;
  const char *out = jade_cli_path(opts, "out");
  int quiet = jade_cli_opt(opts, "quiet")->seen, no_maps = jade_cli_opt(opts, "no-maps")->seen;
  jade_posterior_options po;
  jade_posterior_options_default(&po);
  long draws, steps, seed, batch;
  jade_trained_model *tm = NULL;
  jade_config *cfg = NULL;
  double *theta = NULL;
  char *cfg_text = NULL;
  jade_status st = JADE_OK;
  if (!model_path) st = jade_error(JADE_ERR_INVALID, "--model M is required");
  if (!st && !obs_path) st = jade_error(JADE_ERR_INVALID, "--obs OBS.fits is required");
  if (!st && !out) st = jade_error(JADE_ERR_INVALID, "--out DIR is required");
  if (!st && jade_path_exists(out)) st = jade_error(JADE_ERR_IO, "%s: already exists (choose another --out or remove it)", out);
  if (!st) st = jade_trained_model_load(model_path, &tm);
  if (!st) st = load_config(opts, tm, &cfg);
  /* [sample] keys give the defaults; explicit options win */
  if (!st) st = jade_config_get_int(cfg, "sample.draws", 1, 100000000L, &draws);
  if (!st) st = jade_config_get_int(cfg, "sample.steps", 1, 1000000L, &steps);
  if (!st) st = jade_config_get_int(cfg, "sample.seed", 0, 0x7fffffffffffffffL, &seed);
  if (!st) st = jade_config_get_int(cfg, "sample.batch", 1, 1000000L, &batch);
  if (!st) st = jade_config_check_unused(cfg, (const char *const[]){"sample", NULL});
  if (!st && jade_cli_opt(opts, "draws")->value) st = jade_cli_long(opts, "draws", 1, 100000000L, &draws);
  if (!st && jade_cli_opt(opts, "steps")->value) st = jade_cli_long(opts, "steps", 1, 1000000L, &steps);
  if (!st && jade_cli_opt(opts, "seed")->value) st = jade_cli_long(opts, "seed", 0, 0x7fffffffffffffffL, &seed);
  if (!st && jade_cli_opt(opts, "batch")->value) st = jade_cli_long(opts, "batch", 1, 1000000L, &batch);
  if (!st) st = jade_solver_parse(jade_cli_opt(opts, "solver")->value, &po.solver);
  if (!st && !(cfg_text = jade_config_dump(cfg))) st = jade_error(JADE_ERR_NOMEM, "out of memory");
  if (st) goto done;
  po.n_draws = draws;
  po.n_steps = (int)steps;
  po.seed = (uint64_t)seed;
  po.batch = (int)batch;
  po.threads = jade_cli_opt(opts, "inner-threads")->seen ? 1 : 0;
  po.config_text = cfg_text;
  progress_state ps = {jade_time_now(), 0, isatty(2)};
  if (!quiet && dist.rank == 0) {
    po.progress = progress;
    po.user = &ps;
  }
  st = jade_posterior_run(tm, obs_path, out, jade_cli_opt(opts, "ignore-noise")->seen ? -1.0 : 0.01, !no_maps, &po, &dist,
                          quiet ? NULL : print_start, NULL, &theta);
  if (!quiet && dist.rank == 0 && ps.tty) fprintf(stderr, "\n");
  if (st) goto done;
  if (!quiet && dist.rank == 0) {
    double dt = jade_time_now() - ps.t0;
    printf("jade sample: %ld draws in %.1f s (%.2f draws/s) -> %s\n%-8s %11s %11s %11s %11s %11s\n", draws, dt, draws / dt, out,
           "", "mean", "std", "16%", "50%", "84%");
    for (int j = 0; j < JADE_POSTERIOR_COLS; j++) {
      jade_summary_stat s;
      jade_posterior_summary(theta + j, draws, JADE_POSTERIOR_COLS, &s);
      printf("%-8s %11.5g %11.5g %11.5g %11.5g %11.5g\n", jade_posterior_col_names[j], s.mean, s.std, s.q16, s.q50, s.q84);
    }
  }
done:;
  int rc = st ? jade_cli_fail("sample") : 0;
  free(theta);
  free(cfg_text);
  jade_trained_model_free(tm);
  jade_config_free(cfg);
  jade_cli_free(opts);
  jade_dist_finalize(&dist);
  return rc;
}
