/* jade sed: galaxy SED fitting under a diffusion-model population prior (pop-cosmos).
 *   jade sed train-prior  train jade's own population prior (denoising score matching)
 *   jade sed mock         mock catalogue: prior -> emulators -> uncertainty model
 *   jade sed fit          catalogue -> chains and per-galaxy summaries
 *   jade sed convert-pt   a published pop-cosmos population model (.pt) -> jade's prior format */
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

/* --prior box | PRIOR.safetensors, --n-range LO,HI, --ode-tol */
static jade_status parse_prior(jade_option *opts, jade_sed_prior *pr, jade_sed_score **owned) {
  const char *v = jade_cli_opt(opts, "prior")->value;
  *owned = NULL;
  jade_sed_prior_default(pr);
  double tol;
  jade_status st = jade_cli_double(opts, "ode-tol", 1e-12, 1.0, &tol);
  if (st) return st;
  pr->ode.atol = pr->ode.rtol = tol;
  const char *nr = jade_cli_opt(opts, "n-range")->value;
  if (nr && (sscanf(nr, "%lf,%lf", &pr->N_lo, &pr->N_hi) != 2 || !(pr->N_hi > pr->N_lo)))
    return jade_error(JADE_ERR_INVALID, "--n-range '%s': expected LO,HI with LO < HI", nr);
  if (!v || !strcmp(v, "box")) return JADE_OK;
  st = jade_sed_score_load(v, owned);
  if (st) return st;
  if (jade_sed_score_get_config(*owned)->dim != 16 || jade_sed_score_get_config(*owned)->n_cond)
    return jade_error(JADE_ERR_INVALID, "--prior %s: not a 16-parameter unconditional score model", v);
  pr->kind = JADE_SED_PRIOR_DIFFUSION;
  pr->score = *owned;
  return JADE_OK;
}

#define PRIOR_OPTIONS                                                                                          \
  {"prior", "box|PRIOR.safetensors", "prior: the box (uniform parameters, N uniform in --n-range) or a "      \
                                     "diffusion prior from `jade sed train-prior`", "box", 0, 0, NULL, 0},    \
  {"n-range", "LO,HI", "range of N for the box prior", "10,25", 0, 0, NULL, 0},                               \
  {"ode-tol", "TOL", "atol = rtol of the diffusion prior's PF-ODE (Dormand-Prince)", "1e-5", 0, 0, NULL, 0}

static int cmd_mock(int argc, char **argv) {
  jade_option opts[] = {
      {"models", "DIR", "folder with the pop-cosmos networks", "models/popcosmos", 0, 0, NULL, 0},
      {"out", "CAT.fits", "output catalogue (FITS table; a .txt twin is written beside it)", NULL, 0, 0, NULL, 0},
      {"n", "N", "galaxies", "1000", 0, 0, NULL, 0},
      {"source", "population|prior", "draw parameters from jade's population (IRAC ch1 < mag-limit) or the --prior",
       "population", 0, 0, NULL, 0},
      {"mag-limit", "M", "population selection limit (IRAC ch1)", "26", 0, 0, NULL, 0},
      {"error-floor", "F", "fractional error floor added in quadrature to the modelled errors", "0", 0, 0, NULL, 0},
      {"seed", "S", "random seed", "1", 0, 0, NULL, 0},
      PRIOR_OPTIONS,
      END_OPT};
  int r = jade_cli_parse(argc, argv, "jade sed mock --out CAT.fits [options]",
                         "Mock catalogue: parameters -> pop-cosmos photometry emulators (26 COSMOS2020 bands) ->\n"
                         "pop-cosmos uncertainty model (PF-ODE sample of the errors, Student-t noise).",
                         opts, NULL, 0, NULL);
  if (r) {
    jade_cli_free(opts);
    return r > 0 ? 0 : 2;
  }
  jade_sed_mock_options o;
  jade_sed_mock_options_default(&o);
  o.models = jade_cli_opt(opts, "models")->value;
  o.out = jade_cli_opt(opts, "out")->value;
  long n, seed;
  jade_sed_score *owned = NULL;
  jade_status st = o.out ? JADE_OK : jade_error(JADE_ERR_INVALID, "--out CAT.fits is required");
  if (!st) st = jade_cli_long(opts, "n", 1, 100000000, &n);
  if (!st) st = jade_cli_long(opts, "seed", 0, 0x7fffffffffffffffL, &seed);
  if (!st) st = jade_cli_double(opts, "mag-limit", 0, 100, &o.mag_limit);
  if (!st) st = jade_cli_double(opts, "error-floor", 0, 10, &o.dm.error_floor);
  if (!st) st = parse_prior(opts, &o.prior, &owned);
  const char *src = jade_cli_opt(opts, "source")->value;
  if (!st) {
    if (!strcmp(src, "population")) o.source = JADE_SED_SOURCE_POPULATION;
    else if (!strcmp(src, "prior")) o.source = JADE_SED_SOURCE_PRIOR;
    else st = jade_error(JADE_ERR_INVALID, "--source '%s': expected population or prior", src);
  }
  if (!st) {
    o.n = (size_t)n;
    o.seed = (uint64_t)seed;
    st = jade_sed_mock(&o);
  }
  jade_sed_score_free(owned);
  jade_cli_free(opts);
  if (st) return jade_cli_fail("sed mock");
  fprintf(stderr, "jade sed mock: wrote %s (%zu galaxies)\n", o.out, o.n);
  return 0;
}

static int cmd_fit(int argc, char **argv) {
  jade_option opts[] = {
      {"models", "DIR", "folder with the pop-cosmos networks", "models/popcosmos", 0, 0, NULL, 0},
      {"catalogue", "CAT", "catalogue: FITS table or CSV with F_<band>, E_<band> columns (nanomaggies)", NULL, 0, 0,
       NULL, 0},
      {"out", "PREFIX", "outputs PREFIX_summary.{fits,txt,npy}, PREFIX_chains.npy", NULL, 0, 0, NULL, 0},
      {"walkers", "W", "walkers per galaxy (even)", "32", 0, 0, NULL, 0},
      {"steps", "N", "iterations after burn-in", "1000", 0, 0, NULL, 0},
      {"burn", "N", "burn-in iterations (with --burn-tau > 0: the cap)", "3000", 0, 0, NULL, 0},
      {"burn-tau", "K", "adaptive burn-in: until >= K tau_max and tau settled (0: exactly --burn)", "10", 0, 0, NULL,
       0},
      {"p-de", "P", "fraction of differential-evolution moves (rest: stretch)", "0.5", 0, 0, NULL, 0},
      {"n-starts", "K", "independent optimisations per galaxy (distinct redshifts)", "6", 0, 0, NULL, 0},
      {"chain-thin", "K", "keep every K-th step in PREFIX_chains.npy (0: no chain file)", "10", 0, 0, NULL, 0},
      {"block", "B", "galaxies sampled together", "16", 0, 0, NULL, 0},
      {"n-init", "N", "candidate starts per galaxy", "512", 0, 0, NULL, 0},
      {"n-opt", "N", "hill-climbing iterations towards the MAP from each start", "300", 0, 0, NULL, 0},
      {"n-lm", "N", "then Levenberg-Marquardt iterations from each start", "40", 0, 0, NULL, 0},
      {"max-galaxies", "N", "fit only the first N galaxies (0: all)", "0", 0, 0, NULL, 0},
      {"seed", "S", "random seed", "1", 0, 0, NULL, 0},
      PRIOR_OPTIONS,
      END_OPT};
  int r = jade_cli_parse(argc, argv, "jade sed fit --catalogue CAT --out PREFIX [options]",
                         "Fit every galaxy of a catalogue: the 16 pop-cosmos parameters under the prior, emulated\n"
                         "photometry, Student-t (nu 2) likelihood; affine-invariant ensemble over many galaxies.",
                         opts, NULL, 0, NULL);
  if (r) {
    jade_cli_free(opts);
    return r > 0 ? 0 : 2;
  }
  jade_sed_fit_run_options o;
  jade_sed_fit_run_options_default(&o);
  o.models = jade_cli_opt(opts, "models")->value;
  o.catalogue = jade_cli_opt(opts, "catalogue")->value;
  o.out_prefix = jade_cli_opt(opts, "out")->value;
  long w, steps, burn, ct, block, ni, no, mg, seed, ns, nlm;
  double bt = 0, pde = 0;
  jade_sed_score *owned = NULL;
  jade_status st = o.catalogue && o.out_prefix ? JADE_OK
                                               : jade_error(JADE_ERR_INVALID, "--catalogue CAT and --out PREFIX are required");
  if (!st) st = jade_cli_long(opts, "walkers", 4, 100000, &w);
  if (!st && w % 2) st = jade_error(JADE_ERR_INVALID, "--walkers %ld: must be even", w);
  if (!st) st = jade_cli_long(opts, "steps", 1, 100000000, &steps);
  if (!st) st = jade_cli_long(opts, "burn", 0, 100000000, &burn);
  if (!st) st = jade_cli_long(opts, "chain-thin", 0, 100000000, &ct);
  if (!st) st = jade_cli_long(opts, "block", 1, 100000, &block);
  if (!st) st = jade_cli_long(opts, "n-init", 1, 10000000, &ni);
  if (!st) st = jade_cli_long(opts, "n-opt", 0, 10000000, &no);
  if (!st) st = jade_cli_long(opts, "n-starts", 1, 32, &ns);
  if (!st) st = jade_cli_long(opts, "n-lm", 0, 1000000, &nlm);
  if (!st) st = jade_cli_double(opts, "burn-tau", 0, 1e6, &bt);
  if (!st) st = jade_cli_double(opts, "p-de", 0, 1, &pde);
  if (!st) st = jade_cli_long(opts, "max-galaxies", 0, 0x7fffffffffffffffL, &mg);
  if (!st) st = jade_cli_long(opts, "seed", 0, 0x7fffffffffffffffL, &seed);
  if (!st) st = parse_prior(opts, &o.prior, &owned);
  jade_sed_fit_report rep;
  if (!st) {
    o.fit.ens.n_walkers = (int)w;
    o.fit.ens.n_steps = steps;
    o.fit.ens.n_burn = burn;
    o.fit.ens.seed = (uint64_t)seed;
    o.chain_thin = (int)ct;
    o.fit.block = (size_t)block;
    o.fit.n_init = (int)ni;
    o.fit.n_opt = (int)no;
    o.fit.n_starts = (int)ns;
    o.fit.n_lm = (int)nlm;
    o.fit.ens.burn_tau = bt;
    o.fit.ens.p_de = pde;
    o.fit.verbose = 1;
    o.max_galaxies = (size_t)mg;
    st = jade_sed_fit_run(&o, &rep);
  }
  jade_sed_score_free(owned);
  jade_cli_free(opts);
  if (st) return jade_cli_fail("sed fit");
  printf("galaxies %zu  wall %.1f s (%.3f s per galaxy; prior %.1f s, likelihood %.1f s)\n", rep.n_gal, rep.seconds,
         rep.seconds / (rep.n_gal ? rep.n_gal : 1), rep.t_prior, rep.t_like);
  printf("median acceptance %.3f  median max-over-parameters tau %.1f steps\n", rep.accept_median, rep.tau_max_median);
  if (!isnan(rep.cov_z))
    printf("68%% coverage of the truth: z %.3f  log10 M* %.3f\n95%% coverage of the truth: z %.3f  log10 M* %.3f\n",
           rep.cov_z, rep.cov_m, rep.cov95_z, rep.cov95_m);
  return 0;
}

static int cmd_convert_pt(int argc, char **argv) {
  jade_option opts[] = {{"out", "PRIOR.safetensors", "output prior (jade's score-model format)", NULL, 0, 0, NULL, 0},
                        END_OPT};
  const char *pos[1] = {NULL};
  int npos = 0;
  int r = jade_cli_parse(argc, argv, "jade sed convert-pt IN.pt --out PRIOR.safetensors",
                         "Convert a published pop-cosmos population model (catalogueModel*.pt: a torch.save zip of a\n"
                         "CatalogueGenerator, or of a flowfusion PopulationModelDiffusion) into jade's prior format,\n"
                         "reading its tensors without executing its pickle. Use the result with --prior.",
                         opts, pos, 1, &npos);
  const char *in = npos == 1 ? pos[0] : NULL, *outp = jade_cli_opt(opts, "out")->value;
  if (!r && (!in || !outp)) {
    fprintf(stderr, "jade sed convert-pt: expected IN.pt and --out PRIOR.safetensors (see --help)\n");
    r = -1;
  }
  if (r) { /* --help (0) or a usage error (2) */
    jade_cli_free(opts);
    return r > 0 ? 0 : 2;
  }
  jade_sed_score *s = NULL;
  jade_sed_pt_info info;
  jade_status st = jade_sed_score_from_pt(in, &s, &info);
  if (!st) {
    char desc[512];
    snprintf(desc, sizeof desc, "converted by jade sed convert-pt from %s (%s)", in,
             info.prefix[0] ? "population_model of a pop_cosmos CatalogueGenerator" : "flowfusion population model");
    st = jade_sed_score_save(s, outp, desc);
  }
  if (!st) {
    const jade_sed_score_config *c = jade_sed_score_get_config(s);
    printf("read %s%s%s\n", in, info.prefix[0] ? ": " : "", info.prefix);
    printf("  network: %d Linear layers, %d -> %d x %d -> %d (time embedding %d frequencies), activation %s\n",
           info.n_layers, info.in_features, c->n_hidden, c->width, c->dim, c->n_freq, info.activation);
    printf("  SDE: %s beta_min %.17g beta_max %.17g T %.17g epsilon %.17g; no_sigma %s\n", info.sde, c->sde.beta_min,
           c->sde.beta_max, c->sde.T, c->sde.eps, c->no_sigma ? "True" : "False");
    printf("wrote %s\n", outp);
  }
  jade_sed_score_free(s);
  jade_cli_free(opts);
  if (st) return jade_cli_fail("sed convert-pt");
  return 0;
}

int jade_cmd_sed(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    FILE *f = argc < 2 ? stderr : stdout;
    fprintf(f, "usage: jade sed <train-prior|mock|fit|convert-pt> [options]   (jade sed <sub> --help)\n"
               "  train-prior  train jade's own population prior (denoising score matching)\n"
               "  mock         mock catalogue: prior -> pop-cosmos emulators -> uncertainty model\n"
               "  fit          catalogue -> chains and per-galaxy summaries (affine-invariant ensemble)\n"
               "  convert-pt   a published pop-cosmos population model (.pt) -> jade's prior format\n");
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "train-prior")) return cmd_train_prior(argc - 1, argv + 1);
  if (!strcmp(argv[1], "mock")) return cmd_mock(argc - 1, argv + 1);
  if (!strcmp(argv[1], "fit")) return cmd_fit(argc - 1, argv + 1);
  if (!strcmp(argv[1], "convert-pt")) return cmd_convert_pt(argc - 1, argv + 1);
  fprintf(stderr, "jade sed: unknown subcommand '%s'\n", argv[1]);
  return 2;
}
