/* jade sed: galaxy SED fitting under a diffusion-model population prior (pop-cosmos).
 *   jade sed train-prior  train jade's own population prior (denoising score matching)
 *   jade sed distil-prior a fast surrogate of a diffusion prior's log-density
 *   jade sed mock         mock catalogue: prior -> emulators -> uncertainty model
 *   jade sed fit          catalogue -> chains and per-galaxy summaries
 *   jade sed convert-pt   a published pop-cosmos population model (.pt) -> jade's prior format */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "jade/dist.h"
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

/* What parse_prior loaded (freed by prior_owned_free). */
typedef struct {
  jade_sed_score *score;
  jade_sed_surrogate *surrogate;
} prior_owned;

static void prior_owned_free(prior_owned *o) {
  jade_sed_score_free(o->score);
  jade_sed_surrogate_free(o->surrogate);
}

/* --prior box | PRIOR.safetensors | SURROGATE.safetensors, --n-range LO,HI, --ode-tol */
static jade_status parse_prior(jade_option *opts, jade_sed_prior *pr, prior_owned *owned) {
  const char *v = jade_cli_opt(opts, "prior")->value;
  memset(owned, 0, sizeof *owned);
  jade_sed_prior_default(pr);
  double tol;
  jade_status st = jade_cli_double(opts, "ode-tol", 1e-12, 1.0, &tol);
  if (st) return st;
  pr->ode.atol = pr->ode.rtol = tol;
  const char *nr = jade_cli_opt(opts, "n-range")->value;
  if (nr && (sscanf(nr, "%lf,%lf", &pr->N_lo, &pr->N_hi) != 2 || !(pr->N_hi > pr->N_lo)))
    return jade_error(JADE_ERR_INVALID, "--n-range '%s': expected LO,HI with LO < HI", nr);
  if (!v || !strcmp(v, "box")) return JADE_OK;
  if (jade_sed_is_surrogate_file(v)) {
    st = jade_sed_surrogate_load(v, &owned->surrogate);
    if (st) return st;
    pr->kind = JADE_SED_PRIOR_SURROGATE;
    pr->surrogate = owned->surrogate;
    return JADE_OK;
  }
  st = jade_sed_score_load(v, &owned->score);
  if (st) return st;
  if (jade_sed_score_get_config(owned->score)->dim != 16 || jade_sed_score_get_config(owned->score)->n_cond)
    return jade_error(JADE_ERR_INVALID, "--prior %s: not a 16-parameter unconditional score model", v);
  pr->kind = JADE_SED_PRIOR_DIFFUSION;
  pr->score = owned->score;
  return JADE_OK;
}

#define PRIOR_OPTIONS                                                                                          \
  {"prior", "box|PRIOR.safetensors", "prior: the box (uniform parameters, N uniform in --n-range), a "       \
                                     "diffusion prior from `jade sed train-prior` or its surrogate from "      \
                                     "`jade sed distil-prior` (fast)", "box", 0, 0, NULL, 0},                  \
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
  prior_owned owned;
  memset(&owned, 0, sizeof owned);
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
  prior_owned_free(&owned);
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
      {"prior-check", "PRIOR.safetensors", "with a surrogate --prior: the exact diffusion prior, to check per galaxy "
       "by importance weights on --check-draws chain points (columns PRIOR_ESS, PRIOR_DZ, PRIOR_DLOGM)", NULL, 0, 0,
       NULL, 0},
      {"check-draws", "K", "chain points per galaxy for --prior-check", "64", 0, 0, NULL, 0},
      {"anneal", "S", "stages of tempered sampling before the burn-in (a global search; 0: none)", "0", 0, 0, NULL, 0},
      {"anneal-iters", "N", "iterations per annealing stage", "50", 0, 0, NULL, 0},
      {"anneal-beta0", "B", "likelihood power of the first annealing stage (geometric to 1)", "0.01", 0, 0, NULL, 0},
      {"sampler", "ensemble|hmc|smc", "ensemble (affine-invariant, any prior), hmc (exact gradients, box or surrogate "
       "prior: --walkers chains per galaxy, --burn warm-up, --steps kept; e.g. --walkers 4 --burn 300 --steps 400) or "
       "smc (sequential Monte Carlo from a reference density (--smc-reference), tempered to the posterior: mode "
       "weights right; --walkers particles per galaxy, --steps kept HMC transitions of each; e.g. --walkers 128 "
       "--steps 8)",
       "ensemble", 0, 0, NULL, 0},
      {"smc-mutations", "M", "SMC: HMC transitions per tempering stage", "4", 0, 0, NULL, 0},
      {"smc-broad", "W", "SMC: weight of the broad (prior-like) component of the reference density", "0.2", 0, 0,
       NULL, 0},
      {"smc-reference", "optima|prior", "SMC: the reference density: a mixture at the optimiser's optima and the "
       "redshift profile (plus --smc-broad), or the box prior itself (no optimiser; the tempering searches the whole "
       "prior)", "prior", 0, 0, NULL, 0},
      {"smc-rounds", "R", "SMC: up to R rounds of --smc-mutations transitions per stage, another while the particles "
       "have moved less than one sd per coordinate on average since the stage began", "1", 0, 0, NULL, 0},
      {"smc-runs", "K", "SMC: K independent runs per galaxy (--walkers particles each), pooled by their evidence; "
       "column LOGZ_SPREAD (max - min of their log Z, > 1: the runs found different mass) flags galaxies to look at",
       "1", 0, 0, NULL, 0},
      {"smc-ess", "F", "SMC: each stage's temperature step keeps this fraction of the particles' ESS", "0.5", 0, 0,
       NULL, 0},
      {"leapfrog", "L", "leapfrog steps per HMC transition", "16", 0, 0, NULL, 0},
      {"temps", "T", "HMC parallel tempering: temperatures per galaxy (1: none)", "1", 0, 0, NULL, 0},
      {"beta-min", "B", "likelihood power of the hottest temperature (geometric ladder to 1)", "0.1", 0, 0, NULL, 0},
      {"ridge-every", "J", "HMC: iterations between ridge moves along each galaxy's redshift profile (they cross "
       "between redshift modes; 0: none)", "1", 0, 0, NULL, 0},
      {"metric", "diag|dense", "HMC metric (mass matrix): diagonal, or dense (for correlated parameters): --sampler hmc "
       "adapts it in warm-up from the draws' covariance, --sampler smc takes it at every stage from the particles' "
       "covariance", "diag", 0, 0, NULL, 0},
      {"emulators", "f32|f64", "arithmetic of the photometry emulators in the chains (f32: an AVX-512 kernel, ~10x "
       "faster; f64: the reference)", "f32", 0, 0, NULL, 0},
      PRIOR_OPTIONS,
      END_OPT};
  jade_dist dist;
  int r = jade_cli_start(&argc, &argv, "sed fit", "jade sed fit --catalogue CAT --out PREFIX [options]",
                         "Fit every galaxy of a catalogue: the 16 pop-cosmos parameters under the prior, emulated\n"
                         "photometry, Student-t (nu 2) likelihood; affine-invariant ensemble over many galaxies.\n"
                         "Blocks are written as they finish: an interrupted run resumes (same options); under\n"
                         "mpirun the blocks are split over the ranks.",
                         opts, &dist);
  if (r >= 0) return r;
  jade_sed_fit_run_options o;
  jade_sed_fit_run_options_default(&o);
  o.models = jade_cli_opt(opts, "models")->value;
  o.catalogue = jade_cli_opt(opts, "catalogue")->value;
  o.out_prefix = jade_cli_opt(opts, "out")->value;
  long w, steps, burn, ct, block, ni, no, mg, seed, ns, nlm;
  double bt = 0, pde = 0;
  prior_owned owned;
  memset(&owned, 0, sizeof owned);
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
  long ans = 0, ani = 50;
  double anb = 0.01;
  if (!st) st = jade_cli_long(opts, "anneal", 0, 1000, &ans);
  if (!st) st = jade_cli_long(opts, "anneal-iters", 1, 1000000, &ani);
  if (!st) st = jade_cli_double(opts, "anneal-beta0", 1e-12, 0.999999, &anb);
  o.fit.anneal_stages = (int)ans;
  o.fit.anneal_iters = (int)ani;
  o.fit.anneal_beta0 = anb;
  const char *smp = jade_cli_opt(opts, "sampler")->value;
  long lf = 16;
  if (!st) st = jade_cli_long(opts, "leapfrog", 1, 100000, &lf);
  o.fit.hmc_leapfrog = (int)lf;
  long nt = 1;
  double bmin = 0.1;
  if (!st) st = jade_cli_long(opts, "temps", 1, 64, &nt);
  if (!st) st = jade_cli_double(opts, "beta-min", 1e-6, 0.999999, &bmin);
  o.fit.hmc_temps = (int)nt;
  o.fit.hmc_beta_min = bmin;
  long je = 1;
  if (!st) st = jade_cli_long(opts, "ridge-every", 0, 1000000, &je);
  o.fit.hmc_ridge_every = (int)je;
  const char *met = jade_cli_opt(opts, "metric")->value;
  if (!st && !strcmp(met, "dense")) o.fit.hmc_dense_metric = 1;
  else if (!st && strcmp(met, "diag")) st = jade_error(JADE_ERR_INVALID, "--metric %s: expected diag or dense", met);
  if (!st && !strcmp(smp, "ensemble")) o.fit.sampler = JADE_SED_SAMPLER_ENSEMBLE;
  else if (!st && !strcmp(smp, "hmc")) o.fit.sampler = JADE_SED_SAMPLER_HMC;
  else if (!st && !strcmp(smp, "smc")) o.fit.sampler = JADE_SED_SAMPLER_SMC;
  else if (!st) st = jade_error(JADE_ERR_INVALID, "--sampler %s: expected ensemble, hmc or smc", smp);
  long smm = 4;
  double sme = 0.5;
  if (!st) st = jade_cli_long(opts, "smc-mutations", 1, 100000, &smm);
  if (!st) st = jade_cli_double(opts, "smc-ess", 0.01, 0.99, &sme);
  o.fit.smc_mutations = (int)smm;
  o.fit.smc_ess = sme;
  double smb = 0.2;
  if (!st) st = jade_cli_double(opts, "smc-broad", 0, 0.99, &smb);
  o.fit.smc_broad = smb;
  long smr_rounds = 1;
  if (!st) st = jade_cli_long(opts, "smc-rounds", 1, 1000, &smr_rounds);
  o.fit.smc_rounds = (int)smr_rounds;
  long smc_runs = 1;
  if (!st) st = jade_cli_long(opts, "smc-runs", 1, 64, &smc_runs);
  o.fit.smc_runs = (int)smc_runs;
  const char *smr = jade_cli_opt(opts, "smc-reference")->value;
  if (!st && !strcmp(smr, "optima")) o.fit.smc_reference = JADE_SED_SMC_REF_OPTIMA;
  else if (!st && !strcmp(smr, "prior")) o.fit.smc_reference = JADE_SED_SMC_REF_PRIOR;
  else if (!st) st = jade_error(JADE_ERR_INVALID, "--smc-reference %s: expected optima or prior", smr);
  const char *emu = jade_cli_opt(opts, "emulators")->value;
  if (!st && !strcmp(emu, "f32")) o.fit.emulators = JADE_SED_EMU_F32;
  else if (!st && !strcmp(emu, "f64")) o.fit.emulators = JADE_SED_EMU_F64;
  else if (!st) st = jade_error(JADE_ERR_INVALID, "--emulators %s: expected f32 or f64", emu);
  /* --prior-check: the exact prior, with the same ODE options */
  const char *pc = jade_cli_opt(opts, "prior-check")->value;
  jade_sed_score *check_score = NULL;
  jade_sed_prior check;
  long cd = 64;
  if (!st) st = jade_cli_long(opts, "check-draws", 2, 1000000, &cd);
  if (!st && pc) {
    if (o.prior.kind != JADE_SED_PRIOR_SURROGATE)
      st = jade_error(JADE_ERR_INVALID, "--prior-check %s: needs a surrogate --prior (from jade sed distil-prior)", pc);
    if (!st) st = jade_sed_score_load(pc, &check_score);
    if (!st && (jade_sed_score_get_config(check_score)->dim != 16 || jade_sed_score_get_config(check_score)->n_cond))
      st = jade_error(JADE_ERR_INVALID, "--prior-check %s: not a 16-parameter unconditional score model", pc);
    if (!st) {
      check = o.prior;
      check.kind = JADE_SED_PRIOR_DIFFUSION;
      check.score = check_score;
      o.fit.check_prior = &check;
      o.fit.check_draws = (int)cd;
    }
  }
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
    o.max_galaxies = (size_t)mg;
    o.prior_name = jade_cli_opt(opts, "prior")->value;
    o.dist = &dist;
    o.fit.verbose = dist.rank == 0;
    st = jade_sed_fit_run(&o, &rep);
  }
  prior_owned_free(&owned);
  jade_sed_score_free(check_score);
  jade_cli_free(opts);
  if (st) {
    r = jade_cli_fail("sed fit");
    jade_dist_finalize(&dist);
    return r;
  }
  jade_dist_finalize(&dist);
  if (dist.rank != 0) return 0;
  printf("galaxies %zu  wall %.1f s (%.3f s per galaxy; prior %.1f s, likelihood %.1f s)\n", rep.n_gal, rep.seconds,
         rep.seconds / (rep.n_gal ? rep.n_gal : 1), rep.t_prior, rep.t_like);
  printf("median acceptance %.3f  median max-over-parameters tau %.1f steps\n", rep.accept_median, rep.tau_max_median);
  if (rep.n_short)
    fprintf(stderr,
            "jade sed fit: warning: %zu of %zu galaxies kept fewer than 50 tau_max iterations (emcee's criterion): "
            "their tau and intervals are not reliable; fit again with more --steps\n",
            rep.n_short, rep.n_gal);
  if (rep.n_rhat)
    fprintf(stderr,
            "jade sed fit: warning: %zu of %zu galaxies have chains that disagree (R-hat of z or log10 M* > 1.01; median "
            "%.3f; column RHAT): their chains sit in different modes or have not mixed, so their intervals are not "
            "reliable\n",
            rep.n_rhat, rep.n_gal, rep.rhat_median);
  if (rep.n_missed)
    fprintf(stderr,
            "jade sed fit: note: for %zu of %zu mock galaxies the truth's log posterior is > 2 above the best point "
            "the fit found (LOGP_TRUE > max(LOGP_START, LOGP_MAX) + 2): the fit missed the main mode there\n",
            rep.n_missed, rep.n_gal);
  if (!isnan(rep.cov_z))
    printf("68%% coverage of the truth: z %.3f  log10 M* %.3f\n95%% coverage of the truth: z %.3f  log10 M* %.3f\n",
           rep.cov_z, rep.cov_m, rep.cov95_z, rep.cov95_m);
  if (!isnan(rep.check_ess_median))
    printf("surrogate prior vs exact (importance weights on %ld draws per galaxy): median ESS/draws %.3f, rms shift "
           "of the mean z %.3f sd, log10 M* %.3f sd\n", cd, rep.check_ess_median, rep.check_dz_rms, rep.check_dm_rms);
  return 0;
}

static int cmd_distil_prior(int argc, char **argv) {
  jade_option opts[] = {
      {"prior", "PRIOR.safetensors", "diffusion prior (from `jade sed train-prior` or `convert-pt`)", NULL, 0, 0, NULL,
       0},
      {"out", "SURROGATE.safetensors", "output surrogate (use it with --prior in `jade sed fit`)", NULL, 0, 0, NULL, 0},
      {"labels", "FILE.npy", "label cache, resumed when present [default: OUT.labels.npy]", NULL, 0, 0, NULL, 0},
      {"n-train", "N", "training points", "20000", 0, 0, NULL, 0},
      {"n-test", "N", "held-out points", "2000", 0, 0, NULL, 0},
      {"tail-frac", "F", "fraction of points moved into the prior's tails", "0.5", 0, 0, NULL, 0},
      {"sigma-range", "LO,HI", "tail moves: sigma log-uniform in LO..HI (units of the prior's sd)", "0.05,1", 0, 0,
       NULL, 0},
      {"label-tol", "TOL", "atol = rtol of the labels' PF-ODE (Dormand-Prince, exact trace)", "1e-6", 0, 0, NULL, 0},
      {"grad-copies", "K", "gradient points per training point, labelled by the score at t = eps (0: none; see "
       "docs/sed.md before using it)", "0", 0, 0, NULL, 0},
      {"grad-weight", "W", "weight of the gradient term in the loss", "1", 0, 0, NULL, 0},
      {"width", "W", "hidden units", "128", 0, 0, NULL, 0},
      {"layers", "L", "hidden layers", "3", 0, 0, NULL, 0},
      {"steps", "N", "Adam steps", "30000", 0, 0, NULL, 0},
      {"batch", "B", "batch size", "256", 0, 0, NULL, 0},
      {"lr", "LR", "Adam learning rate (cosine decay to lr/50)", "0.002", 0, 0, NULL, 0},
      {"seed", "S", "random seed", "1", 0, 0, NULL, 0},
      END_OPT};
  int r = jade_cli_parse(argc, argv, "jade sed distil-prior --prior PRIOR.safetensors --out SURROGATE.safetensors",
                         "Fit a fast surrogate of a diffusion prior's log-density (a Gaussian plus an MLP, least\n"
                         "squares on exact PF-ODE log-densities of prior draws and tail points), so that fits need\n"
                         "no ODE solve per likelihood evaluation; prints its held-out error.",
                         opts, NULL, 0, NULL);
  if (r) {
    jade_cli_free(opts);
    return r > 0 ? 0 : 2;
  }
  jade_sed_distil_options o;
  jade_sed_distil_options_default(&o);
  o.prior = jade_cli_opt(opts, "prior")->value;
  o.out = jade_cli_opt(opts, "out")->value;
  o.labels = jade_cli_opt(opts, "labels")->value;
  long ntr, nte, width, layers, steps, batch, seed;
  double tol;
  const char *sr = jade_cli_opt(opts, "sigma-range")->value;
  jade_status st = o.prior && o.out ? JADE_OK : jade_error(JADE_ERR_INVALID, "--prior and --out are required");
  if (!st) st = jade_cli_long(opts, "n-train", 100, 100000000, &ntr);
  if (!st) st = jade_cli_long(opts, "n-test", 0, 100000000, &nte);
  if (!st) st = jade_cli_double(opts, "tail-frac", 0, 1, &o.tail_frac);
  if (!st && (sscanf(sr, "%lf,%lf", &o.sigma_lo, &o.sigma_hi) != 2 || !(o.sigma_lo > 0) || !(o.sigma_hi >= o.sigma_lo)))
    st = jade_error(JADE_ERR_INVALID, "--sigma-range '%s': expected LO,HI with 0 < LO <= HI", sr);
  if (!st) st = jade_cli_double(opts, "label-tol", 1e-12, 1.0, &tol);
  if (!st) st = jade_cli_long(opts, "width", 1, 8192, &width);
  if (!st) st = jade_cli_long(opts, "layers", 1, 10, &layers);
  if (!st) st = jade_cli_long(opts, "steps", 0, 100000000, &steps);
  if (!st) st = jade_cli_long(opts, "batch", 1, 65536, &batch);
  if (!st) st = jade_cli_double(opts, "lr", 1e-8, 1.0, &o.fit.lr);
  if (!st) st = jade_cli_long(opts, "seed", 0, 0x7fffffffffffffffL, &seed);
  long gc = 0;
  if (!st) st = jade_cli_long(opts, "grad-copies", 0, 1000, &gc);
  if (!st) st = jade_cli_double(opts, "grad-weight", 0, 1e6, &o.fit.grad_weight);
  o.grad_copies = (size_t)gc;
  jade_sed_distil_report rep;
  if (!st) {
    o.n_train = (size_t)ntr;
    o.n_test = (size_t)nte;
    o.ode.atol = o.ode.rtol = tol;
    o.width = (int)width;
    o.layers = (int)layers;
    o.fit.steps = steps;
    o.fit.batch = (int)batch;
    o.fit.seed = o.seed = (uint64_t)seed;
    o.verbose = 1;
    st = jade_sed_distil_prior(&o, &rep);
  }
  jade_cli_free(opts);
  if (st) return jade_cli_fail("sed distil-prior");
  printf("labels: %.1f s (%.4f s per point); fit: %.1f s; %zu of %zu training points in the domain, rms %.4f nats\n",
         rep.seconds_labels, rep.label_seconds_per_point, rep.seconds_fit, rep.n_fit, rep.n_train, rep.train_rms);
  if (rep.n_test_prior + rep.n_test_tail)
    printf("held-out error (nats): prior draws (%zu) mean %+.4f sd %.4f max|e-mean| %.4f; tails (%zu) mean %+.4f sd "
           "%.4f max %.4f\n  the Gaussian alone: sd %.4f (prior draws), %.4f (tails)\n",
           rep.n_test_prior, rep.prior_mean, rep.prior_sd, rep.prior_max, rep.n_test_tail, rep.tail_mean, rep.tail_sd,
           rep.tail_max, rep.gauss_prior_sd, rep.gauss_tail_sd);
  if (rep.n_test_outside) printf("  %zu held-out points outside the domain (not counted)\n", rep.n_test_outside);
  if (rep.n_grad)
    printf("gradient labels: %zu points; held-out rms of d log q/dx - score %.4f (rms of the score %.4f)\n",
           rep.n_grad, rep.grad_rms, rep.grad_norm_rms);
  printf("wrote %s\n", o.out);
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
    fprintf(f, "usage: jade sed <train-prior|distil-prior|mock|fit|convert-pt> [options]   (jade sed <sub> --help)\n"
               "  train-prior  train jade's own population prior (denoising score matching)\n"
               "  distil-prior a fast surrogate of a diffusion prior's log-density for fits\n"
               "  mock         mock catalogue: prior -> pop-cosmos emulators -> uncertainty model\n"
               "  fit          catalogue -> chains and per-galaxy summaries (affine-invariant ensemble)\n"
               "  convert-pt   a published pop-cosmos population model (.pt) -> jade's prior format\n");
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "train-prior")) return cmd_train_prior(argc - 1, argv + 1);
  if (!strcmp(argv[1], "distil-prior")) return cmd_distil_prior(argc - 1, argv + 1);
  if (!strcmp(argv[1], "mock")) return cmd_mock(argc - 1, argv + 1);
  if (!strcmp(argv[1], "fit")) return cmd_fit(argc - 1, argv + 1);
  if (!strcmp(argv[1], "convert-pt")) return cmd_convert_pt(argc - 1, argv + 1);
  fprintf(stderr, "jade sed: unknown subcommand '%s'\n", argv[1]);
  return 2;
}
