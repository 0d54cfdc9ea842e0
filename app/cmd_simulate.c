/* jade simulate: a dataset of (theta, noise-free kappa) pairs drawn from the prior (or at the
 * config's cosmology), split over OpenMP threads and MPI ranks, resumable (library:
 * src/dataset/simulate.c; the layout of OUT/ in include/jade/dataset.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "jade/dataset.h"
#include "jade/dist.h"
#include "jade/io.h"

typedef struct {
  const char *partial;
  double t_last;
  int tty, printed;
  const jade_dist *dist;
} progress_state;

static void start(long already, long n, void *user) {
  const progress_state *p = user;
  fprintf(stderr, "jade simulate: resuming %s: %ld of %ld simulations already done\n", p->partial, already, n);
}

static void progress(long done, long todo, double sec, double cosmo_fraction, void *user) {
  progress_state *p = user;
  double now = jade_time_now();
  if (!(now - p->t_last > (p->tty ? 0.5 : 10.0) || done == todo)) return;
  p->t_last = now;
  p->printed = 1;
  double rate = done / sec;
  char eta[32];
  jade_format_duration((todo - done) / rate, eta, sizeof eta);
  fprintf(stderr, "%ssimulate: %ld/%ld (rank 0 of %d), %.1f sims/s, %.0f%% of time in cosmology, %s left%s", p->tty ? "\r" : "", done,
          todo, p->dist->size, rate, 100 * cosmo_fraction, eta, p->tty ? "   " : "\n");
}

int jade_cmd_simulate(int argc, char **argv) {
  jade_option opts[] = {
      JADE_CONFIG_OPTIONS,
      {"n", "N", "number of simulations", NULL, 0, 0, NULL, 0},
      {"seed", "S", "random seed (theta and maps depend only on seed and index)", "1", 0, 0, NULL, 0},
      {"fixed", NULL, "simulate at the config's cosmology instead of drawing theta from the prior", NULL, 0, 0, NULL, 0},
      {"out", "DIR", "output dataset directory (must not exist; OUT.partial is resumed)", NULL, 0, 0, NULL, 0},
      {"chunk", "K", "simulations per work unit (a unit is written at once)", "32", 0, 0, NULL, 0},
      {"max-chunks", "K", "stop after K work units on each rank (exit code 3; rerun to resume), e.g. for "
                          "batch-queue time limits; 0 = no limit", "0", 0, 0, NULL, 0},
      {"dtype", "T", "storage of kappa.npy: f32, or f16 (IEEE half, numpy float16: half the size, "
                     "relative rounding error <= 2^-11, readers convert to float32)", "f32", 0, 0, NULL, 0},
      {"quiet", NULL, "no progress line", NULL, 0, 0, NULL, 0},
      {NULL, NULL, NULL, NULL, 0, 0, NULL, 0}};
  jade_dist dist;
  int r = jade_cli_start(&argc, &argv, "simulate", "jade simulate --n N --out DIR [options]",
                         "Simulate noise-free log-normal convergence maps (and their theta) into a dataset\n"
                         "that numpy opens directly. Splits over OpenMP threads (OMP_NUM_THREADS) and MPI\n"
                         "ranks (mpirun -np R); interrupted runs resume when the same command is rerun.",
                         opts, &dist);
  if (r >= 0) return r;
  jade_config *cfg = NULL;
  jade_sim_config sc;
  char *dump = NULL, partial[4200] = "";
  jade_dataset_simulate_options o;
  jade_dataset_simulate_options_default(&o);
  o.out_dir = jade_cli_path(opts, "out");
  o.fixed = jade_cli_opt(opts, "fixed")->seen;
  o.dist = &dist;
  int quiet = jade_cli_opt(opts, "quiet")->seen;
  jade_status st = JADE_OK;
  if (!o.out_dir) st = jade_error(JADE_ERR_INVALID, "--out DIR is required");
  if (!st) st = jade_cli_long(opts, "n", 1, 100000000L, &o.n);
  if (!st) st = jade_cli_long(opts, "chunk", 1, 100000, &o.chunk);
  if (!st) st = jade_cli_long(opts, "max-chunks", 0, 1L << 40, &o.max_chunks);
  if (!st) {
    const char *s = jade_cli_opt(opts, "dtype")->value;
    if (!strcmp(s, "f16"))
      o.f16 = 1;
    else if (strcmp(s, "f32"))
      st = jade_error(JADE_ERR_INVALID, "--dtype: '%s' is not f32 or f16", s);
  }
  if (!st) st = jade_parse_u64("--seed", jade_cli_opt(opts, "seed")->value, UINT64_MAX, &o.seed);
  if (!st) st = jade_cli_load_config(opts, &cfg);
  if (!st) st = jade_sim_config_read(cfg, &sc);
  if (!st) st = jade_config_check_unused(cfg, (const char *const[]){"", NULL});
  if (!st && !(dump = jade_config_dump(cfg))) st = JADE_ERR_NOMEM;
  jade_dataset_simulate_result res;
  memset(&res, 0, sizeof res);
  progress_state ps = {partial, 0, isatty(2), 0, &dist};
  if (!st) {
    snprintf(partial, sizeof partial, "%s.partial", o.out_dir);
    o.sim = &sc;
    o.config_text = dump;
    if (!quiet && dist.rank == 0) {
      o.start = start;
      o.progress = progress;
      o.user = &ps;
    }
    st = jade_dataset_simulate(&o, &res);
    if (ps.printed && ps.tty) fprintf(stderr, "\n");
  }
  int rc = 0;
  if (st)
    rc = jade_cli_fail("simulate");
  else if (!res.finished) {
    if (dist.rank == 0 && !quiet) fprintf(stderr, "jade simulate: stopped after --max-chunks; rerun the same command to resume %s\n", partial);
    rc = 3;
  } else if (dist.rank == 0 && !quiet)
    fprintf(stderr, "jade simulate: wrote %ld simulations to %s (%.1f s)\n", o.n, o.out_dir, res.seconds);
  free(dump);
  jade_config_free(cfg);
  jade_cli_free(opts);
  jade_dist_finalize(&dist);
  return rc;
}
