/* jade train: train the JADE model on a dataset of jade simulate (library: src/diffusion/train.c).
 *
 * Configuration: --config FILE (or preset) if given; else the built-in 'small' preset with the
 * top-level keys (geometry, cosmology, prior) of the dataset's own DIR/config.ini, so that the
 * geometry and prior match the data; then --set and --steps. Keys used: the top level,
 * [model] and [train] (docs/model.md, docs/config.md).
 *
 * MODELDIR: model.safetensors (EMA weights + metadata), state.safetensors (everything to
 * resume), loss.csv, config.ini. Ctrl-C / SIGTERM (batch-queue time limits) checkpoint and exit
 * with code 3; rerunning with --resume continues bit-identically. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "jade/dist.h"
#include "jade/sim.h"
#include "jade/train.h"

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
  stop_requested = 1;
  signal(sig, SIG_DFL); /* a second signal ends the process at once */
}

/* The top-level keys (cosmology, survey, map, prior) of the dataset's config.ini over the
 * preset: the geometry and prior of the data, the [model] / [train] of the preset. */
static jade_status load_top_level(jade_config *cfg, const char *path) {
  jade_config *ds;
  jade_status st = jade_config_create(&ds);
  if (st) return st;
  struct stat sb;
  if (stat(path, &sb) != 0) {
    jade_config_free(ds);
    return JADE_OK; /* a dataset without config.ini: the preset alone */
  }
  st = jade_config_load_file(ds, path);
  char *dump = st ? NULL : jade_config_dump(ds);
  if (!st && !dump) st = JADE_ERR_NOMEM;
  if (!st) {
    /* keep "key = value" lines whose key has no section prefix */
    char *w = dump;
    for (char *line = dump; *line;) {
      char *e = strchr(line, '\n');
      size_t len = e ? (size_t)(e - line + 1) : strlen(line);
      char *eq = memchr(line, '=', len);
      if (!memchr(line, '.', eq ? (size_t)(eq - line) : len)) {
        memmove(w, line, len);
        w += len;
      }
      line += len;
    }
    *w = 0;
    st = jade_config_load_string(cfg, dump, path);
  }
  free(dump);
  jade_config_free(ds);
  return st;
}

/* The run's configuration: --config (a preset or a file; default the 'small' preset with the
 * dataset's top-level keys), then every --set, then --steps. */
static jade_status assemble_config(const char *cfg_path, const char *data, const jade_option *sets, long steps,
                                   jade_config **out) {
  jade_config *cfg = NULL;
  jade_status st = jade_config_create(&cfg);
  if (st) return st;
  if (cfg_path && jade_config_preset_text(cfg_path)) {
    st = jade_config_load_preset(cfg, cfg_path);
  } else if (cfg_path) {
    st = jade_config_load_file(cfg, cfg_path);
  } else {
    char p[4200];
    snprintf(p, sizeof p, "%s/config.ini", data);
    st = jade_config_load_preset(cfg, "small");
    if (!st) st = load_top_level(cfg, p);
  }
  for (int i = 0; !st && sets && i < sets->n_values; i++) st = jade_config_set(cfg, sets->values[i]);
  if (!st && steps) {
    char a[64];
    snprintf(a, sizeof a, "train.steps=%ld", steps);
    st = jade_config_set(cfg, a);
  }
  *out = cfg;
  return st;
}

int jade_cmd_train(int argc, char **argv) {
  jade_option opts[] = {
      {"config", "FILE", "configuration file or preset name (default: the built-in 'small' preset with the "
                         "top-level keys - geometry, prior - of DIR/config.ini)", NULL, 0, 0, NULL, 0},
      {"set", "KEY=VALUE", "override one config key, e.g. train.lr_peak=1e-3", NULL, 1, 0, NULL, 0},
      {"data", "DIR", "dataset directory written by jade simulate", NULL, 0, 0, NULL, 0},
      {"out", "MODELDIR", "output directory (model.safetensors, state.safetensors, loss.csv, config.ini)", NULL, 0, 0, NULL, 0},
      {"steps", "N", "optimiser steps in total (overrides train.steps)", NULL, 0, 0, NULL, 0},
      {"resume", NULL, "continue the training in MODELDIR from its last checkpoint (an error if it has none, unless the run was killed before its first checkpoint: then it starts at step 0)", NULL, 0, 0, NULL, 0},
      {"stop-after", "K", "checkpoint and stop after step K (exit code 3; rerun with --resume to continue)", NULL, 0, 0, NULL, 0},
      {"workers", "N", "threads running whole micro-batches on their own model copy (0 = auto: OMP_NUM_THREADS, at most "
                       "the micro-batches per rank; 1 = threads inside the network)", "0", 0, 0, NULL, 0},
      {"checkpoint-minutes", "M", "also checkpoint whenever M minutes have passed since the last checkpoint "
                                  "(0 = only every train.checkpoint_every steps)", "0", 0, 0, NULL, 0},
      {"init-from", "MODEL", "start from this trained model's weights and normalisation (the same network): "
                             "longer training with a new schedule, or fine-tuning (give it again with --resume)",
       NULL, 0, 0, NULL, 0},
      {"quiet", NULL, "no progress line", NULL, 0, 0, NULL, 0},
      {NULL, NULL, NULL, NULL, 0, 0, NULL, 0}};
  jade_dist dist;
  int r = jade_cli_start(&argc, &argv, "train", "jade train --data DIR --out MODELDIR [options]",
                         "Train the JADE flow-matching transformer on (theta, kappa) pairs: each step draws fresh\n"
                         "condition noise, flips and times, and updates by AdamW; EMA weights go to\n"
                         "MODELDIR/model.safetensors. Data-parallel over MPI ranks (mpirun -np R) with the same\n"
                         "global batch; threads via OMP_NUM_THREADS. Ctrl-C or SIGTERM checkpoint and stop (exit 3).",
                         opts, &dist);
  if (r >= 0) return r;
  const char *data = jade_cli_path(opts, "data"), *out = jade_cli_path(opts, "out");
  const char *cfg_path = jade_cli_opt(opts, "config")->value;
  jade_option *sets = jade_cli_opt(opts, "set");
  int quiet = jade_cli_opt(opts, "quiet")->seen;
  jade_config *cfg = NULL;
  char *dump = NULL;
  long steps = 0, stop_after = 0, workers = 0;
  jade_sim_config sc;
  jade_model_config mc;
  jade_train_config tc;
  jade_train_result res;
  int rc = 1;
  jade_status st = JADE_OK;

  if (!data) st = jade_error(JADE_ERR_INVALID, "--data DIR is required");
  if (!st && !out) st = jade_error(JADE_ERR_INVALID, "--out MODELDIR is required");
  if (!st && !jade_path_is_dir(data)) st = jade_error(JADE_ERR_IO, "%s: dataset directory not found (make one with jade simulate)", data);
  if (!st && jade_cli_same_file(data, out))
    st = jade_error(JADE_ERR_INVALID, "--out %s is the dataset directory --data %s: choose another --out", out, data);
  if (!st && jade_cli_opt(opts, "steps")->value) st = jade_cli_long(opts, "steps", 1, 1L << 38, &steps);
  if (!st && jade_cli_opt(opts, "stop-after")->value) st = jade_cli_long(opts, "stop-after", 1, 1L << 38, &stop_after);
  if (!st) st = jade_cli_long(opts, "workers", 0, 64, &workers);
  double ckpt_min = 0;
  if (!st) st = jade_cli_double(opts, "checkpoint-minutes", 0, 1e6, &ckpt_min);
  if (!st) st = assemble_config(cfg_path, data, sets, steps, &cfg);
  if (!st) st = jade_sim_config_read(cfg, &sc);
  if (!st) st = jade_model_config_read(cfg, &mc);
  if (!st) st = jade_train_config_read(cfg, &tc);
  if (!st) st = jade_config_check_unused(cfg, (const char *const[]){"", "model", "train", NULL});
  if (!st && !(dump = jade_config_dump(cfg))) st = JADE_ERR_NOMEM;
  if (st) goto done;

  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  jade_train_options o = {data, out, jade_cli_opt(opts, "resume")->seen, stop_after, quiet, dump, &sc, &dist, &stop_requested,
                          (int)workers, ckpt_min * 60.0, jade_cli_path(opts, "init-from")};
  st = jade_train(&mc, &tc, &o, &res);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  if (st) goto done;
  if (res.finished) {
    if (dist.rank == 0 && !quiet) {
      fprintf(stderr, "jade train: %s/model.safetensors at step %ld: loss %.4f", out, res.step, res.loss);
      if (res.val_loss == res.val_loss) fprintf(stderr, ", validation loss (EMA) %.4f", res.val_loss);
      fprintf(stderr, " (%.1f s)\n", res.seconds);
    }
    rc = 0;
  } else {
    if (dist.rank == 0 && !quiet)
      fprintf(stderr, "jade train: stopped at step %ld of %ld; checkpoint in %s (continue with --resume)\n", res.step,
              tc.steps, out);
    rc = 3;
  }
done:
  if (st) rc = jade_cli_fail("train");
  free(dump);
  jade_config_free(cfg);
  jade_cli_free(opts);
  jade_dist_finalize(&dist);
  return rc;
}
