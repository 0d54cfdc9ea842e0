/* Cost of the field-level posterior (jade/fieldpost.h) on one thread, for the small preset
 * (or any config given as argument):
 *   - log posterior + gradient per second in the emulator, hybrid and exact modes, and the
 *     parts of one emulator-mode gradient (emulator, theory part of the maps = prepare,
 *     forward map, reverse pass);
 *   - the FFTs one gradient needs (jade_lngrad_fft_count real n x n transforms, planned as
 *     the map code plans them), timed in the same run: the ratio (gradient time) / (FFT time)
 *     says how far the gradient is from the FFT-bound ideal;
 *   - optionally (argument nuts_iter > 0) a short NUTS run of two chains in emulator mode,
 *     started at the truth, with jade mcmc's emulator refits in warm-up: wall time per
 *     effective sample of S_8 (bulk ESS). The chains are short, so this is indicative only;
 *     jade mcmc's diagnostics.txt gives the figure of a real run.
 * Micro-benchmarks report the fastest of 5 batches in CPU time of the calling thread (the
 * machine is shared).
 * usage: bench_fieldpost [config|preset] [n_grad] [nuts_iter]   (small, 200, 0) */
#include <fftw3.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jade/config.h"
#include "jade/fieldpost.h"
#include "jade/lognormal_grad.h"
#include "jade/mcmc.h"

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "bench_fieldpost: %s: %s\n", what, jade_last_error());
  exit(1);
}

/* fastest of 5 batches of n calls of logp (with gradient unless grad is NULL), seconds/call */
static double time_logp(jade_fieldpost *fp, double *x, double *grad, int n) {
  double best = INFINITY, lp;
  for (int b = 0; b < 5; b++) {
    double t0 = cpu_now();
    for (int i = 0; i < n; i++) {
      x[0] += 1e-9 * ((i & 1) ? 1 : -1); /* a new theta every call (no cache hit) */
      if (jade_fieldpost_logp(fp, x, &lp, grad)) die("logp");
    }
    double dt = (cpu_now() - t0) / n;
    if (dt < best) best = dt;
  }
  return best;
}

int main(int argc, char **argv) {
  const char *cfg_name = argc > 1 ? argv[1] : "small";
  int n_grad = argc > 2 ? atoi(argv[2]) : 200;
  long nuts_iter = argc > 3 ? atol(argv[3]) : 0;
  if (n_grad < 5) n_grad = 5;
  jade_config *cfg;
  jade_sim_config sc;
  if (jade_config_create(&cfg)) die("config");
  if ((jade_config_preset_text(cfg_name) ? jade_config_load_preset(cfg, cfg_name) : jade_config_load_file(cfg, cfg_name)) ||
      jade_sim_config_read(cfg, &sc))
    die(cfg_name);
  int nb = sc.geom.n_bins, n = sc.geom.n_pix;
  size_t nmap = (size_t)nb * n * n;
  jade_simulator *sim;
  jade_theory *th;
  if (jade_simulator_create(&sc, &sim) || jade_theory_create_cosmo(&sc, &th)) die("set-up");
  double noise[JADE_MAX_BINS], theta[JADE_N_THETA];
  float *obs = malloc(sizeof(float) * nmap);
  jade_simulator_noise(sim, noise);
  jade_theta_from_params(&sc.cosmo, theta);
  if (jade_simulator_run(sim, theta, 1, 0, obs, NULL, NULL, NULL)) die("simulate");
  for (int b = 0; b < nb; b++) jade_add_noise(obs + (size_t)b * n * n, (size_t)n * n, noise[b], 1, JADE_STREAM(JADE_RNG_SHAPE, b), 0);
  jade_fieldpost_setup fs = {.sc = &sc, .n_free = 6, .free_idx = {0, 1, 2, 3, 4, 5}, .kappa_obs = obs, .noise = noise, .theory = th};
  jade_fieldpost *fp;
  if (jade_fieldpost_create(&fs, &fp)) die("posterior");
  size_t d = jade_fieldpost_dim(fp);
  double *x = malloc(8 * d), *g = malloc(8 * d);
  if (jade_fieldpost_unconstrain(fp, theta, x)) die("unconstrain");
  jade_rng_normal_fill(1, JADE_STREAM(JADE_RNG_FIELD, 0), 0, nmap, x + 6);
  printf("bench_fieldpost: %s, %d bins x %d x %d pixels, dimension %zu, 1 thread\n", cfg_name, nb, n, n, d);

  /* emulator around the truth (u coordinates: about the posterior width of the small preset) */
  double mean[6], cov[36] = {0}, usd[6] = {0.25, 1.0, 0.5, 1.0, 0.9, 1.0};
  for (int i = 0; i < 6; i++) {
    mean[i] = x[i];
    cov[i * 7] = usd[i] * usd[i];
  }
  jade_emulator_config ec;
  jade_emulator_config_default(&ec);
  if (getenv("BENCH_RANGE")) ec.range = atof(getenv("BENCH_RANGE"));
  jade_emulator *em;
  double t0 = jade_time_now();
  if (jade_emulator_fit(th, &sc, 6, fs.free_idx, mean, cov, &ec, NULL, &em)) die("emulator fit");
  double t_fit = jade_time_now() - t0;
  jade_emulator_info inf;
  jade_emulator_get_info(em, &inf);
  printf("emulator fit: %d design points (%d terms) in %.1f s wall; held-out max|ln C err| %.2g, rms %.2g\n", inf.n_design,
         inf.n_terms, t_fit, inf.max_err_cl, inf.rms_err_cl);

  if (jade_fieldpost_set_mode(fp, JADE_FP_EMULATOR, em)) die("mode");
  double t_emu = time_logp(fp, x, g, n_grad), t_emu_v = time_logp(fp, x, NULL, n_grad);
  if (jade_fieldpost_set_mode(fp, JADE_FP_HYBRID, em)) die("mode");
  double t_hyb = time_logp(fp, x, g, n_grad / 20 + 2);
  if (jade_fieldpost_set_mode(fp, JADE_FP_EXACT, NULL)) die("mode");
  double t_exact = time_logp(fp, x, g, n_grad / 100 + 2), t_exact_v = time_logp(fp, x, NULL, n_grad / 20 + 2);

  /* parts of one emulator-mode gradient */
  int n_ell = jade_theory_n_ell(th), np = nb * (nb + 1) / 2;
  double *cl = malloc(8 * n_ell * np), *clb = malloc(8 * n_ell * np), lam[JADE_MAX_BINS], lb[JADE_MAX_BINS], tb[6];
  double *kap = malloc(8 * nmap), *kb = malloc(8 * nmap), *zb = malloc(8 * nmap);
  jade_lngrad *lg;
  if (jade_lngrad_create(&sc.geom, sc.variance, &lg)) die("lngrad");
  if (jade_emulator_eval(em, theta, cl, lam)) die("emulator");
  for (size_t m = 0; m < nmap; m++) kb[m] = obs[m] * 1e3;
  double best[4] = {INFINITY, INFINITY, INFINITY, INFINITY};
  for (int b = 0; b < 5; b++) {
    double a0 = cpu_now();
    for (int i = 0; i < n_grad; i++)
      if (jade_emulator_eval(em, theta, cl, lam) || jade_emulator_vjp(em, theta, clb, lb, tb)) die("emulator");
    double a1 = cpu_now();
    for (int i = 0; i < n_grad; i++)
      if (jade_lngrad_prepare(lg, n_ell, jade_theory_ell(th), cl, lam)) die("prepare");
    double a2 = cpu_now();
    for (int i = 0; i < n_grad; i++)
      if (jade_lngrad_forward(lg, x + 6, kap)) die("forward");
    double a3 = cpu_now();
    for (int i = 0; i < n_grad; i++)
      if (jade_lngrad_backward(lg, kb, zb, clb, lb)) die("backward");
    double a4 = cpu_now();
    double t[4] = {(a1 - a0) / n_grad, (a2 - a1) / n_grad, (a3 - a2) / n_grad, (a4 - a3) / n_grad};
    for (int k = 0; k < 4; k++)
      if (t[k] < best[k]) best[k] = t[k];
  }

  /* the FFTs of one gradient, planned as the map code plans them */
  int n_fft = jade_lngrad_fft_count(lg), nc = n / 2 + 1;
  double *rb = fftw_malloc(sizeof(double) * n * n);
  fftw_complex *cb = fftw_malloc(sizeof(fftw_complex) * n * nc);
  fftw_plan r2c = fftw_plan_dft_r2c_2d(n, n, rb, cb, FFTW_ESTIMATE), c2r = fftw_plan_dft_c2r_2d(n, n, cb, rb, FFTW_ESTIMATE);
  for (int i = 0; i < n * n; i++) rb[i] = obs[i];
  double t_fft = INFINITY;
  int reps = 2000;
  for (int b = 0; b < 5; b++) {
    double a0 = cpu_now();
    for (int i = 0; i < reps; i++) {
      fftw_execute(r2c);
      fftw_execute(c2r);
      rb[0] *= 1.0 / ((double)n * n); /* keep the values bounded */
    }
    double dt = (cpu_now() - a0) / (2.0 * reps);
    if (dt < t_fft) t_fft = dt;
  }
  double t_ffts = n_fft * t_fft;
  printf("\nper evaluation (CPU time, fastest of 5 batches):\n");
  printf("  emulator mode: log p + gradient %8.3f ms  (%7.0f gradients/s); log p only %.3f ms\n", 1e3 * t_emu, 1.0 / t_emu,
         1e3 * t_emu_v);
  printf("  hybrid mode:   log p + gradient %8.3f ms  (%7.0f gradients/s)\n", 1e3 * t_hyb, 1.0 / t_hyb);
  printf("  exact mode:    log p + gradient %8.3f ms  (%7.1f gradients/s); log p only %.3f ms (one cosmology)\n", 1e3 * t_exact,
         1.0 / t_exact, 1e3 * t_exact_v);
  printf("  parts of an emulator-mode gradient: emulator value + vjp %.3f ms, prepare (C_ell -> R(k)) %.3f ms,\n"
         "    forward map %.3f ms, reverse pass %.3f ms\n", 1e3 * best[0], 1e3 * best[1], 1e3 * best[2], 1e3 * best[3]);
  printf("  FFTs of one gradient: %d real %dx%d transforms x %.2f us = %.3f ms\n", n_fft, n, n, 1e6 * t_fft, 1e3 * t_ffts);
  printf("  gradient / FFT cost = %.1f   (FFT-bound rate %.0f gradients/s; achieved %.0f)\n", t_emu / t_ffts, 1.0 / t_ffts, 1.0 / t_emu);

  if (nuts_iter > 0) {
    /* Two chains at the truth with jade mcmc's protocol in brief: a first emulator around the
     * start (u sd 0.25), refits to the chains' pooled warm-up draws at 10%, 30% and 50% of
     * the warm-up (each chain's density kept continuous by a constant offset), then frozen. */
    jade_fieldpost *f2[2];
    jade_nuts_chain *ch[2];
    jade_nuts_config nc2;
    jade_nuts_config_default(&nc2);
    long W = nuts_iter / 2, ns = nuts_iter - W;
    nc2.n_warmup = W;
    nc2.max_depth = 8;
    double cov0[36] = {0};
    for (int i = 0; i < 6; i++) cov0[i * 7] = 0.0625;
    jade_emulator *e2;
    double w0 = jade_time_now();
    if (jade_emulator_fit(th, &sc, 6, fs.free_idx, mean, cov0, &ec, NULL, &e2)) die("emulator fit");
    for (int c = 0; c < 2; c++) {
      if (jade_fieldpost_create(&fs, &f2[c]) || jade_fieldpost_set_mode(f2[c], JADE_FP_EMULATOR, e2)) die("posterior");
      if (jade_nuts_chain_create(&ch[c], d, &nc2, 3, (uint64_t)c, x, NULL)) die("chain");
    }
    long stops[4] = {W / 10, 3 * W / 10, W / 2, W}, done = 0;
    size_t seg_max = (size_t)(W / 2 + 1);
    double *seg = malloc(8 * d * seg_max * 2);
    for (int r = 0; r < 4; r++) {
      long n_it = stops[r] - done;
      if (n_it <= 0) continue;
      if (jade_nuts_run_chains(ch, 2, jade_fieldpost_logp, (void *const *)f2, n_it, seg, NULL, 1)) die("nuts");
      done = stops[r];
      if (r == 3) break;
      double m[6] = {0}, cv[36] = {0}, cnt = 2.0 * n_it;
      for (long i = 0; i < 2 * n_it; i++)
        for (int a = 0; a < 6; a++) {
          m[a] += seg[(size_t)i * d + a] / cnt;
          for (int b2 = 0; b2 < 6; b2++) cv[a * 6 + b2] += seg[(size_t)i * d + a] * seg[(size_t)i * d + b2] / cnt;
        }
      for (int a = 0; a < 6; a++) {
        for (int b2 = 0; b2 < 6; b2++) cv[a * 6 + b2] -= m[a] * m[b2];
        cv[a * 7] += 1e-6;
      }
      jade_emulator *ne;
      if (jade_emulator_fit(th, &sc, 6, fs.free_idx, m, cv, &ec, NULL, &ne)) die("emulator refit");
      for (int c = 0; c < 2; c++) {
        double lo, ln;
        const double *pos = jade_nuts_chain_position(ch[c]);
        if (jade_fieldpost_logp(f2[c], pos, &lo, NULL) || jade_fieldpost_set_mode(f2[c], JADE_FP_EMULATOR, ne)) die("switch");
        jade_fieldpost_set_offset(f2[c], 0.0);
        if (jade_fieldpost_logp(f2[c], pos, &ln, NULL)) die("switch");
        if (isfinite(lo) && isfinite(ln)) jade_fieldpost_set_offset(f2[c], lo - ln);
      }
      jade_emulator_free(e2);
      e2 = ne;
    }
    double w_warm = jade_time_now() - w0;
    double *dr = malloc(8 * d * ns * 2), *s8 = malloc(8 * ns * 2);
    if (jade_nuts_run_chains(ch, 2, jade_fieldpost_logp, (void *const *)f2, ns, dr, NULL, 1)) die("nuts");
    double wall = jade_time_now() - w0;
    for (int c = 0; c < 2; c++)
      for (long i = 0; i < ns; i++) {
        double t[JADE_N_THETA];
        jade_fieldpost_theta(f2[c], dr + ((size_t)c * ns + i) * d, t);
        s8[c * ns + i] = jade_theta_s8(t);
      }
    jade_mcmc_summary sm;
    if (jade_mcmc_summarize(s8, 2, (size_t)ns, &sm)) die("summary");
    for (int c = 0; c < 2; c++) {
      double mm = 0.0;
      for (long i = 0; i < ns; i++) mm += s8[c * ns + i] / ns;
      printf("  chain %d: mean S_8 %.4f, step size %.4g\n", c, mm, jade_nuts_chain_step_size(ch[c]));
    }
    jade_nuts_totals t0t, t1t;
    jade_nuts_chain_totals(ch[0], &t0t);
    jade_nuts_chain_totals(ch[1], &t1t);
    printf("\nNUTS, 2 chains x (%ld warm-up + %ld draws), emulator mode with 4 fits, 1 thread: %.1f s wall (warm-up %.1f s),\n"
           "  %llu gradients, S_8 = %.4f +- %.4f, bulk ESS %.0f, R-hat %.4f\n"
           "  -> wall time per effective sample of S_8 %.3f s (without the exact re-evaluation of each draw)\n",
           W, ns, wall, w_warm, (unsigned long long)(t0t.grad_evals + t1t.grad_evals), sm.mean, sm.sd, sm.ess_bulk, sm.rhat,
           wall / sm.ess_bulk);
    for (int c = 0; c < 2; c++) {
      jade_nuts_chain_free(ch[c]);
      jade_fieldpost_free(f2[c]);
    }
    jade_emulator_free(e2);
    free(seg);
    free(dr);
    free(s8);
  }
  fftw_destroy_plan(r2c);
  fftw_destroy_plan(c2r);
  fftw_free(rb);
  fftw_free(cb);
  jade_lngrad_free(lg);
  jade_emulator_free(em);
  jade_fieldpost_free(fp);
  jade_theory_free(th);
  jade_simulator_free(sim);
  jade_config_free(cfg);
  free(obs);
  free(x);
  free(g);
  free(cl);
  free(clb);
  free(kap);
  free(kb);
  free(zb);
  return 0;
}
