/* jade sed: galaxy SED fitting under a diffusion-model population prior (pop-cosmos).
 *   jade sed train-prior  train jade's own population prior (denoising score matching)
 *   jade sed mock         mock catalogue: prior -> emulators -> uncertainty model
 *   jade sed fit          catalogue -> chains and per-galaxy summaries */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "jade/sed.h"

#define END_OPT {NULL, NULL, NULL, NULL, 0, 0, NULL, 0}

static int cmd_train_prior(int argc, char **argv) {
  jade_option opts[] = {
      {"models", "DIR", "folder with the pop-cosmos networks", "models/popcosmos", 0, 0, NULL, 0},
      {"out", "PRIOR.safetensors", "output prior", NULL, 0, 0, NULL, 0},
      {"n-train", "N", "population rows", "100000", 0, 0, NULL, 0},
      {"steps", "N", "optimiser steps", "20000", 0, 0, NULL, 0},
      {"batch", "B", "batch size", "256", 0, 0, NULL, 0},
      {"lr", "LR", "Adam learning rate (cosine decay to lr/20)", "0.001", 0, 0, NULL, 0},
      {"width", "W", "hidden units", "128", 0, 0, NULL, 0},
      {"layers", "L", "hidden layers", "3", 0, 0, NULL, 0},
      {"freq-std", "S", "std of the Gaussian Fourier time frequencies", "16", 0, 0, NULL, 0},
      {"sde", "vp|subvp|ve", "SDE", "vp", 0, 0, NULL, 0},
      {"mag-limit", "M", "IRAC ch1 selection limit", "26", 0, 0, NULL, 0},
      {"seed", "S", "random seed", "1", 0, 0, NULL, 0},
      {"table", "FILE.npy", "also write the training population (theta, n x 16)", NULL, 0, 0, NULL, 0},
      END_OPT};
  int r = jade_cli_parse(argc, argv, "jade sed train-prior --out PRIOR.safetensors [options]",
                         "Train jade's own 16-parameter population prior (NOT the published pop-cosmos prior) by\n"
                         "denoising score matching on a Prospector-alpha-like population selected by IRAC ch1.",
                         opts, NULL, 0, NULL);
  if (r) {
    jade_cli_free(opts);
    return r > 0 ? 0 : 2;
  }
  jade_sed_train_prior_options o;
  jade_sed_train_prior_options_default(&o);
  char phot[4096];
  snprintf(phot, sizeof phot, "%s/photulator_cosmos26.safetensors", jade_cli_opt(opts, "models")->value);
  o.photulator = phot;
  o.out = jade_cli_opt(opts, "out")->value;
  o.table_out = jade_cli_opt(opts, "table")->value;
  long n, steps, batch, width, layers, seed;
  double lr, fs, ml;
  jade_status st = o.out ? JADE_OK : jade_error(JADE_ERR_INVALID, "--out PRIOR.safetensors is required");
  if (!st) st = jade_cli_long(opts, "n-train", 100, 100000000, &n);
  if (!st) st = jade_cli_long(opts, "steps", 1, 100000000, &steps);
  if (!st) st = jade_cli_long(opts, "batch", 1, 65536, &batch);
  if (!st) st = jade_cli_long(opts, "width", 1, 8192, &width);
  if (!st) st = jade_cli_long(opts, "layers", 1, 10, &layers);
  if (!st) st = jade_cli_long(opts, "seed", 0, 0x7fffffffffffffffL, &seed);
  if (!st) st = jade_cli_double(opts, "lr", 1e-8, 1.0, &lr);
  if (!st) st = jade_cli_double(opts, "freq-std", 0.0, 1e4, &fs);
  if (!st) st = jade_cli_double(opts, "mag-limit", 0.0, 100.0, &ml);
  const char *sde = jade_cli_opt(opts, "sde")->value;
  if (!st) {
    if (!strcmp(sde, "vp")) jade_sde_default(&o.net.sde, JADE_SDE_VP);
    else if (!strcmp(sde, "subvp")) jade_sde_default(&o.net.sde, JADE_SDE_SUBVP);
    else if (!strcmp(sde, "ve")) jade_sde_default(&o.net.sde, JADE_SDE_VE);
    else st = jade_error(JADE_ERR_INVALID, "--sde '%s': expected vp, subvp or ve", sde);
  }
  double loss = NAN;
  if (!st) {
    o.n_train = (size_t)n;
    o.dsm.steps = steps;
    o.dsm.batch = (int)batch;
    o.dsm.lr = lr;
    o.dsm.seed = (uint64_t)seed;
    o.dsm.verbose = 1;
    o.seed = (uint64_t)seed;
    o.net.width = (int)width;
    o.net.n_hidden = (int)layers;
    o.net.freq_std = fs;
    o.mag_limit = ml;
    st = jade_sed_train_prior(&o, &loss);
  }
  jade_cli_free(opts);
  if (st) return jade_cli_fail("sed train-prior");
  fprintf(stderr, "jade sed train-prior: wrote %s (final loss %.4f)\n", o.out, loss);
  return 0;
}

int jade_cmd_sed(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    FILE *f = argc < 2 ? stderr : stdout;
    fprintf(f, "usage: jade sed <train-prior|mock|fit> [options]   (jade sed <sub> --help)\n"
               "  train-prior  train jade's own population prior (denoising score matching)\n"
               "  mock         mock catalogue: prior -> pop-cosmos emulators -> uncertainty model\n"
               "  fit          catalogue -> chains and per-galaxy summaries (affine-invariant ensemble)\n");
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "train-prior")) return cmd_train_prior(argc - 1, argv + 1);
  fprintf(stderr, "jade sed: unknown subcommand '%s'\n", argv[1]);
  return 2;
}
