/* jade validate: calibration of a trained model over held-out simulations (library:
 * src/validate/run.c, include/jade/validation_run.h; metrics in docs/validation.md).
 *
 * OUT/: summary.json, tarp_joint.txt, tarp_theta.txt, tarp_maps.txt, coverage.txt, per_obs.txt,
 *       power.txt, pdf.txt, records/obs_<t>.npy, example_maps.npy, example_theta.npy, the
 *       figures (*.png) and report.html; with --keep-draws also truth_theta.npy,
 *       truth_maps.npy, obs_maps.npy, draws_theta.npy, draws_maps.npy.
 * While running everything lives in OUT.partial (rerun the same command to resume). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "jade/nn.h"
#include "jade/dist.h"
#include "jade/validation_run.h"

typedef struct {
  double t_last;
  int tty;
  const jade_validation_options *vo;
} progress_state;

static void start(long todo, long n_mine, int workers, void *user) {
  const progress_state *p = user;
  const jade_validation_options *o = p->vo;
  fprintf(stderr, "jade validate: %ld observations x %ld draws x %d %s steps, model %s, data %s; %ld of %ld to do on rank 0 (%d worker%s, matmul %s)\n",
          o->n_obs, o->draws, o->steps, jade_solver_name(o->solver), o->model_path, o->data_dir, todo, n_mine, workers, workers == 1 ? "" : "s",
          jade_matmul_backend_name(jade_matmul_get_backend()));
}

/* one stderr line per 0.5 s on a terminal (overwritten), per 30 s otherwise, and the last */
static void progress(const jade_progress *p, void *user) {
  progress_state *ps = user;
  double now = jade_time_now();
  if (now - ps->t_last < (ps->tty ? 0.5 : 30.0) && p->tasks_done < p->tasks_total) return;
  ps->t_last = now;
  char left[32];
  jade_format_duration(p->eta, left, sizeof left);
  fprintf(stderr, "%svalidate: step %ld/%ld (%.0f%%), %ld/%ld observations (this rank), %.3g draw-evaluations/s, %s left%s",
          ps->tty ? "\r" : "", p->steps_done, p->steps_total, 100.0 * p->work_done / p->work_total, p->tasks_done,
          p->tasks_total, p->rate, left, ps->tty ? "   " : "\n");
}

static jade_status parse_seed(jade_option *opts, uint64_t *seed) {
  return jade_parse_u64("--seed", jade_cli_opt(opts, "seed")->value, (1ull << 31) - 1, seed);
}

int jade_cmd_validate(int argc, char **argv) {
  jade_option opts[] = {
      {"model", "M", "trained model: a jade train MODELDIR or a .safetensors file", NULL, 0, 0, NULL, 0},
      {"data", "DIR", "held-out dataset of jade simulate, never seen in training (a separate run, other seed)", NULL, 0, 0, NULL, 0},
      {"out", "OUT", "output directory (must not exist; OUT.partial is resumed)", NULL, 0, 0, NULL, 0},
      {"n-obs", "N", "observations: the first N simulations of --data", "100", 0, 0, NULL, 0},
      {"draws", "D", "posterior draws per observation", "100", 0, 0, NULL, 0},
      {"steps", "S", "solver steps per draw (Heun: 2S-1 network evaluations)", "32", 0, 0, NULL, 0},
      {"solver", "heun|dpm2m", "ODE solver: heun (the paper's) or dpm2m (DPM-Solver++(2M), S evaluations per draw)",
       "heun", 0, 0, NULL, 0},
      {"batch", "B", "draws integrated together", "64", 0, 0, NULL, 0},
      {"seed", "S", "seed of the observation noise, sampling and metrics (< 2^31)", "0", 0, 0, NULL, 0},
      {"bootstrap", "B", "bootstrap replicates for the MIRA error bars and TARP bands", "100", 0, 0, NULL, 0},
      {"hist-bins", "H", "bins of the one-point histograms", "40", 0, 0, NULL, 0},
      {"keep-draws", NULL, "also write truths, observations and all draws (theta and maps) as .npy", NULL, 0, 0, NULL, 0},
      {"max-obs", "K", "stop after K new observations on each rank (exit code 3; rerun to resume); 0 = no limit", "0", 0, 0, NULL, 0},
      {"inner-threads", NULL, "threads inside the sampler instead of whole observations per thread", NULL, 0, 0, NULL, 0},
      {"mask-prob", "P", "masked observations (a model with model.condition = masked): fraction with a random mask", NULL, 0, 0, NULL, 0},
      {"mask-max", "F", "largest masked fraction of an observation (0-0.9; default 0.3 with --mask-prob)", NULL, 0, 0, NULL, 0},
      {"noise-ln-scale", "S", "per-observation noise scale e^U(-S, S) around the dataset's noise", NULL, 0, 0, NULL, 0},
      {"noise-ln-field", "A", "smooth noise variation over the field, ln amplitude U(0, A)", NULL, 0, 0, NULL, 0},
      {"ignore-noise", NULL, "validate even if the dataset's noise differs from the training noise", NULL, 0, 0, NULL, 0},
      {"no-report", NULL, "do not draw the figures and report.html", NULL, 0, 0, NULL, 0},
      {"quiet", NULL, "no progress line or summary", NULL, 0, 0, NULL, 0},
      {NULL, NULL, NULL, NULL, 0, 0, NULL, 0}};
  jade_dist dist;
  int r = jade_cli_start(&argc, &argv, "validate", "jade validate --model M --data DIR --out OUT [options]",
                         "Calibration of a trained model over held-out simulations: for each of the first N\n"
                         "simulations, a noisy observation, D posterior draws, then MIRA (joint, parameters, maps),\n"
                         "TARP, per-parameter coverage and ranks, power spectra and one-point PDFs of the maps.\n"
                         "Observations are split over MPI ranks and threads; an interrupted run resumes.",
                         opts, &dist);
  if (r >= 0) return r;
  jade_validation_options vo;
  jade_validation_options_default(&vo);
  vo.model_path = jade_cli_opt(opts, "model")->value;
  vo.data_dir = jade_cli_path(opts, "data");
  vo.out_dir = jade_cli_path(opts, "out");
  const int quiet = jade_cli_opt(opts, "quiet")->seen;
  long n_obs, draws, steps, batch, boot, hist, max_obs;
  jade_status st = JADE_OK;
  if (!vo.model_path) st = jade_error(JADE_ERR_INVALID, "--model M is required");
  if (!st && !vo.data_dir) st = jade_error(JADE_ERR_INVALID, "--data DIR is required");
  if (!st && !vo.out_dir) st = jade_error(JADE_ERR_INVALID, "--out OUT is required");
  if (!st) st = jade_cli_long(opts, "n-obs", 2, 100000000L, &n_obs);
  if (!st) st = jade_cli_long(opts, "draws", 2, 100000000L, &draws);
  if (!st) st = jade_cli_long(opts, "steps", 1, 1000000L, &steps);
  if (!st) st = jade_cli_long(opts, "batch", 1, 1000000L, &batch);
  if (!st) st = jade_cli_long(opts, "bootstrap", 0, 100000L, &boot);
  if (!st) st = jade_cli_long(opts, "hist-bins", 2, 128, &hist);
  if (!st) st = jade_cli_long(opts, "max-obs", 0, 100000000L, &max_obs);
  if (!st) st = parse_seed(opts, &vo.seed);
  if (!st) st = jade_solver_parse(jade_cli_opt(opts, "solver")->value, &vo.solver);
  if (st) goto done;
  vo.n_obs = n_obs;
  vo.draws = draws;
  vo.steps = (int)steps;
  vo.batch = (int)batch;
  vo.n_boot = (int)boot;
  vo.n_hist = (int)hist;
  vo.max_obs = max_obs;
  vo.keep_draws = jade_cli_opt(opts, "keep-draws")->seen;
  vo.threads = jade_cli_opt(opts, "inner-threads")->seen ? 1 : 0;
  vo.noise_rtol = jade_cli_opt(opts, "ignore-noise")->seen ? -1.0 : 0.01;
  vo.no_report = jade_cli_opt(opts, "no-report")->seen;
  if (jade_cli_opt(opts, "mask-prob")->seen) {
    vo.masks.mask_max = 0.3;
    if (!st) st = jade_cli_double(opts, "mask-prob", 0.0, 1.0, &vo.masks.mask_prob);
  }
  if (!st && jade_cli_opt(opts, "mask-max")->seen) st = jade_cli_double(opts, "mask-max", 0.0, 0.9, &vo.masks.mask_max);
  if (!st && jade_cli_opt(opts, "noise-ln-scale")->seen) st = jade_cli_double(opts, "noise-ln-scale", 0.0, 3.0, &vo.masks.noise_ln_scale);
  if (!st && jade_cli_opt(opts, "noise-ln-field")->seen) st = jade_cli_double(opts, "noise-ln-field", 0.0, 3.0, &vo.masks.noise_ln_field);
  vo.dist = &dist;
  progress_state ps = {0, isatty(2), &vo};
  if (!quiet && dist.rank == 0) {
    vo.start = start;
    vo.progress = progress;
    vo.user = &ps;
  }
  jade_validation_result res;
  st = jade_validation_run(&vo, &res);
  if (!quiet && dist.rank == 0 && ps.tty) fprintf(stderr, "\n");
  if (st) goto done;
  if (!res.finished) {
    if (!quiet && dist.rank == 0)
      fprintf(stderr, "jade validate: stopped after --max-obs with %ld of %ld observations done; rerun the same command to resume %s.partial\n",
              res.n_done, res.n_obs, vo.out_dir);
    jade_cli_free(opts);
    jade_dist_finalize(&dist);
    return 3;
  }
  if (!quiet && dist.rank == 0)
    printf("jade validate: %ld observations in %.1f s; MIRA joint %.4f +- %.4f (calibrated: %.4f) -> %s/summary.json, report %s/report.html\n",
           res.n_obs, res.seconds, res.mira_joint, res.mira_joint_err, res.mira_expected, vo.out_dir, vo.out_dir);
done:;
  int rc = st ? jade_cli_fail("validate") : 0;
  jade_cli_free(opts);
  jade_dist_finalize(&dist);
  return rc;
}
