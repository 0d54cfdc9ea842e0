/* jade mcmc: the traditional baseline (docs/mcmc.md): field-level NUTS on the explicit
 * log-normal model for one observation, and its comparison with diffusion samples (library:
 * src/mcmc/run.c, include/jade/mcmc_run.h, where the outputs and the theory modes are
 * described). Settings come from the command line, else the config's [mcmc] section. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "jade/dist.h"
#include "jade/io.h"
#include "jade/mcmc_run.h"

/* Command-line value if given, else the config's [mcmc] key if present, else the default. */
static jade_status opt_value(jade_option *opts, jade_config *cfg, const char *name, const char *key,
                             const char **out) {
  jade_option *o = jade_cli_opt(opts, name);
  *out = o->value;
  if (!cfg || !jade_config_has(cfg, key)) return JADE_OK;
  const char *cv;
  jade_status st = jade_config_get_string(cfg, key, &cv); /* (also marks the key as used) */
  if (!st && !o->seen) *out = cv;
  return st;
}

static jade_status parse_long(const char *what, const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = s ? strtol(s, &end, 10) : 0;
  if (!s || end == s || *end || errno) return jade_error(JADE_ERR_INVALID, "%s: '%s' is not an integer", what, s ? s : "");
  if (v < lo || v > hi) return jade_error(JADE_ERR_INVALID, "%s: %ld is out of range [%ld, %ld]", what, v, lo, hi);
  *out = v;
  return JADE_OK;
}

static jade_status parse_double(const char *what, const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = s ? strtod(s, &end) : 0;
  if (!s || end == s || *end || errno || !isfinite(v)) return jade_error(JADE_ERR_INVALID, "%s: '%s' is not a number", what, s ? s : "");
  if (v < lo || v > hi) return jade_error(JADE_ERR_INVALID, "%s: %g is out of range [%g, %g]", what, v, lo, hi);
  *out = v;
  return JADE_OK;
}

typedef struct {
  double t0, t_last;
  int tty, printed;
} progress_state;

static void message(const char *text, void *user) {
  const progress_state *p = user;
  fprintf(stderr, "%sjade mcmc: %s\n", p->tty && p->printed ? "\r" : "", text);
}

static void progress(const jade_mcmc_progress *g, void *user) {
  progress_state *p = user;
  double now = jade_time_now();
  const long total = g->warmup + g->samples, it = g->iteration;
  if (!(now - p->t_last > (p->tty ? 0.5 : 30.0) || it == total)) return;
  p->t_last = now;
  p->printed = 1;
  char eta[32];
  jade_format_duration((total - it) / g->rate, eta, sizeof eta);
  fprintf(stderr, "%smcmc: %s %ld/%ld, %d chains (%d on rank 0 of %d), %.2f it/s, %.0f grad/it, %ld divergent, %s left%s",
          p->tty ? "\r" : "", it <= g->warmup ? "warm-up" : "sampling", it <= g->warmup ? it : it - g->warmup,
          it <= g->warmup ? g->warmup : g->samples, g->n_chains, g->n_local, g->ranks, g->rate, g->grad_per_iteration, g->divergent, eta,
          p->tty ? "   " : "\n");
}

/* The [mcmc] settings: command line, else config, else the option's default. */
static jade_status read_settings(jade_option *opts, jade_config *cfg, jade_mcmc_run_options *o) {
  long chains = 0, max_depth = 0, seed = 0, em_degree = 4, ckpt = 60;
  const char *v = NULL;
  jade_status st = JADE_OK;
  if (!st) st = opt_value(opts, cfg, "chains", "mcmc.chains", &v);
  if (!st) st = parse_long("--chains", v, 1, 4096, &chains);
  if (!st) st = opt_value(opts, cfg, "warmup", "mcmc.warmup", &v);
  if (!st) st = parse_long("--warmup", v, 0, 1000000, &o->warmup);
  if (!st) st = opt_value(opts, cfg, "samples", "mcmc.samples", &v);
  if (!st) st = parse_long("--samples", v, 4, 1000000, &o->samples);
  if (!st) st = opt_value(opts, cfg, "max-depth", "mcmc.max_depth", &v);
  if (!st) st = parse_long("--max-depth", v, 1, 16, &max_depth);
  if (!st) st = opt_value(opts, cfg, "target-accept", "mcmc.target_accept", &v);
  if (!st) st = parse_double("--target-accept", v, 0.05, 0.999, &o->target_accept);
  if (!st) st = opt_value(opts, cfg, "seed", "mcmc.seed", &v);
  if (!st) st = parse_long("--seed", v, 0, 0x7fffffffffffffffL, &seed);
  if (!st) st = opt_value(opts, cfg, "emulator-degree", "mcmc.emulator_degree", &v);
  if (!st) st = parse_long("--emulator-degree", v, 1, 8, &em_degree);
  if (!st) st = parse_long("--checkpoint", jade_cli_opt(opts, "checkpoint")->value, 1, 1000000, &ckpt);
  if (!st) st = parse_long("--max-iterations", jade_cli_opt(opts, "max-iterations")->value, 0, 1L << 40, &o->max_iterations);
  if (!st) st = opt_value(opts, cfg, "init", "mcmc.init", &v);
  if (!st) {
    if (!strcmp(v, "truth")) o->init_truth = 1;
    else if (!strcmp(v, "prior")) o->init_truth = 0;
    else st = jade_error(JADE_ERR_INVALID, "--init: '%s' (expected truth or prior)", v);
  }
  if (!st) st = opt_value(opts, cfg, "free", "mcmc.free", &v);
  if (!st) st = jade_mcmc_parse_free(v, &o->n_free, o->free_idx);
  if (!st) st = opt_value(opts, cfg, "theory", "mcmc.theory", &v);
  if (!st) {
    if (!strcmp(v, "emulator")) o->theory = JADE_FP_EMULATOR;
    else if (!strcmp(v, "hybrid")) o->theory = JADE_FP_HYBRID;
    else if (!strcmp(v, "exact")) o->theory = JADE_FP_EXACT;
    else st = jade_error(JADE_ERR_INVALID, "--theory: '%s' (expected emulator, hybrid or exact)", v);
  }
  o->n_chains = (int)chains;
  o->max_depth = (int)max_depth;
  o->seed = (uint64_t)seed;
  o->emulator_degree = (int)em_degree;
  o->checkpoint_seconds = (double)ckpt;
  return st;
}

int jade_cmd_mcmc(int argc, char **argv) {
  jade_option opts[] = {
      JADE_CONFIG_OPTIONS,
      {"obs", "OBS.fits", "observation (GAMMA1/GAMMA2 shear, converted by Kaiser-Squires, or KAPPA)", NULL, 0, 0, NULL, 0},
      {"out", "DIR", "output directory (must not exist; DIR.partial is resumed)", NULL, 0, 0, NULL, 0},
      {"chains", "C", "number of chains (config key mcmc.chains)", "4", 0, 0, NULL, 0},
      {"warmup", "W", "warm-up iterations per chain (mcmc.warmup)", "500", 0, 0, NULL, 0},
      {"samples", "S", "post-warm-up draws per chain (mcmc.samples)", "1000", 0, 0, NULL, 0},
      {"max-depth", "D", "maximum NUTS tree depth (mcmc.max_depth; the paper used 6)", "8", 0, 0, NULL, 0},
      {"target-accept", "A", "dual-averaging target acceptance (mcmc.target_accept)", "0.8", 0, 0, NULL, 0},
      {"seed", "S", "random seed of the chains (mcmc.seed)", "0", 0, 0, NULL, 0},
      {"init", "prior|truth", "start every chain at a prior draw (real data has no truth) or at the observation's "
                              "truth (free parameters and white noise, as the paper) (mcmc.init)", "prior", 0, 0, NULL, 0},
      {"strict", NULL, "exit with status 4 when the chains are not usable (R-hat >= 1.01, ESS < 100 per chain or "
                       "divergences after warm-up); a warning is printed either way", NULL, 0, 0, NULL, 0},
      {"free", "LIST", "parameters to sample, comma-separated; the others keep the config's values (mcmc.free)",
       "Omega_c,Omega_b,sigma_8,h,n_s,w_0", 0, 0, NULL, 0},
      {"theory", "MODE", "emulator (polynomial emulator of ln C_ell, ln lambda refitted in warm-up, importance weights "
                         "from the exact cosmology), hybrid (exact density, emulator gradient) or exact "
                         "(finite-difference Jacobian; slow) (mcmc.theory)", "emulator", 0, 0, NULL, 0},
      {"emulator-degree", "D", "total polynomial degree of the emulator (mcmc.emulator_degree)", "4", 0, 0, NULL, 0},
      {"compare", "SAMPLE_DIR", "write DIR/compare.txt: these NUTS draws vs a 'jade sample' output (its theta.txt); "
                                "with a finished DIR only the comparison is made", NULL, 0, 0, NULL, 0},
      {"checkpoint", "SEC", "seconds between checkpoints of the chains", "60", 0, 0, NULL, 0},
      {"max-iterations", "K", "stop after K iterations per chain in this run (exit code 3; rerun to resume); 0 = no limit",
       "0", 0, 0, NULL, 0},
      {"quiet", NULL, "no progress line", NULL, 0, 0, NULL, 0},
      {NULL, NULL, NULL, NULL, 0, 0, NULL, 0}};
  jade_dist dist;
  int pr = jade_cli_start(&argc, &argv, "mcmc", "jade mcmc --obs OBS.fits --out DIR [options]",
                          "Field-level NUTS on the explicit log-normal model (the paper's baseline): samples the\n"
                          "white-noise maps and the cosmological parameters given an observation. Chains run in\n"
                          "parallel over OpenMP threads and MPI ranks (chain c on rank c % size); an interrupted\n"
                          "run resumes when the same command is rerun. Outputs: DIR/chain.txt (getdist and numpy\n"
                          "ready, with chain.paramnames, chain.npy), theta.txt, mean.fits, std.fits, diagnostics.txt\n"
                          "(and compare.txt with --compare).",
                          opts, &dist);
  if (pr >= 0) return pr;
  const int quiet = jade_cli_opt(opts, "quiet")->seen, strict = jade_cli_opt(opts, "strict")->seen;
  jade_mcmc_run_options o;
  jade_mcmc_run_options_default(&o);
  o.out_dir = jade_cli_path(opts, "out");
  o.obs_path = jade_cli_opt(opts, "obs")->value;
  o.compare_dir = jade_cli_opt(opts, "compare")->value;
  o.dist = &dist;
  jade_config *cfg = NULL;
  jade_sim_config sc;
  char *dump = NULL;
  int rc = 1;
  jade_status st = JADE_OK;
  if (!o.out_dir) st = jade_error(JADE_ERR_INVALID, "--out DIR is required");
  /* comparison with a finished run only */
  if (!st && o.compare_dir && jade_path_exists(o.out_dir)) {
    st = jade_mcmc_compare(o.out_dir, o.compare_dir, &dist);
    if (!st && dist.rank == 0 && !quiet) fprintf(stderr, "jade mcmc: wrote %s/compare.txt\n", o.out_dir);
    if (!st) rc = 0;
    goto done;
  }
  if (!st && jade_path_exists(o.out_dir)) st = jade_error(JADE_ERR_IO, "%s: already exists (choose another --out or remove it)", o.out_dir);
  if (!st && !o.obs_path) st = jade_error(JADE_ERR_INVALID, "--obs OBS.fits is required");
  if (!st) st = jade_cli_load_config(opts, &cfg);
  if (!st) st = jade_sim_config_read(cfg, &sc);
  if (!st) st = read_settings(opts, cfg, &o);
  if (!st) st = jade_config_check_unused(cfg, (const char *const[]){"", "mcmc", NULL});
  if (!st && !(dump = jade_config_dump(cfg))) st = jade_error(JADE_ERR_NOMEM, "out of memory");
  if (st) goto done;
  o.sim = &sc;
  o.config_text = dump;
  progress_state ps = {jade_time_now(), 0, isatty(2), 0};
  if (dist.rank == 0 && !quiet) {
    o.message = message;
    o.progress = progress;
    o.user = &ps;
  }
  jade_mcmc_run_result res;
  st = jade_mcmc_run(&o, &res);
  if (dist.rank == 0 && !quiet && ps.tty && ps.printed) fprintf(stderr, "\n");
  if (st) goto done;
  rc = 0;
  if (!res.finished) {
    if (dist.rank == 0 && !quiet)
      fprintf(stderr, "jade mcmc: stopped after --max-iterations; rerun the same command to resume %s.partial\n", o.out_dir);
    rc = 3;
  } else if (dist.rank == 0) {
    if (!quiet) fprintf(stderr, "jade mcmc: wrote %s (%.1f s)\n", o.out_dir, res.seconds);
    char verdict[512];
    if (jade_mcmc_health_verdict(&res.health, verdict, sizeof verdict)) {
      fprintf(stderr, "jade mcmc: WARNING: the chains are not usable: %s (%s/diagnostics.txt; run longer, "
                      "raise --target-accept or check the model)\n", verdict, o.out_dir);
      if (strict) rc = 4;
    } else if (!quiet) {
      fprintf(stderr, "jade mcmc: chains %s\n", verdict);
    }
  }
done:
  if (st) rc = jade_cli_fail("mcmc");
  free(dump);
  jade_config_free(cfg);
  jade_cli_free(opts);
  jade_dist_finalize(&dist);
  return rc;
}
