/* NUTS: moments of known targets within Monte Carlo error (ESS-based standard errors),
 * the warm-up window schedule, divergence and tree-depth limits, reproducibility across
 * thread counts, bit-identical resumption after serialise/deserialise, error propagation. */
#include "jade/mcmc.h"
#include "test_util.h"

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZTOL 4.5 /* |estimate - truth| < ZTOL * MCSE */

/* ---------------------------------------------------------------------------- targets */

/* 10-d Gaussian N(mu, D R D): scales 10^(-2 .. 2), R_ij = 0.8^|i-j| (Kac-Murdock-Szego). */
#define GD 10
typedef struct {
  double mu[GD], cov[GD][GD], prec[GD][GD];
} gauss;

static void gauss_init(gauss *g) {
  const double r = 0.8;
  double s[GD];
  for (int i = 0; i < GD; i++) {
    s[i] = pow(10.0, -2.0 + 4.0 * i / (GD - 1));
    g->mu[i] = (i - 4.5) * s[i];
  }
  /* R^-1 of the KMS matrix is tridiagonal: (1/(1-r^2)) [1, -r; -r, 1+r^2, ...]. */
  for (int i = 0; i < GD; i++)
    for (int j = 0; j < GD; j++) {
      g->cov[i][j] = s[i] * s[j] * pow(r, abs(i - j));
      double rinv = 0.0;
      if (i == j) rinv = (i == 0 || i == GD - 1) ? 1.0 : 1.0 + r * r;
      if (abs(i - j) == 1) rinv = -r;
      g->prec[i][j] = rinv / (1.0 - r * r) / (s[i] * s[j]);
    }
}

static jade_status gauss_logp(void *ctx, const double *x, double *logp, double *grad) {
  const gauss *g = ctx;
  double lp = 0.0;
  for (int i = 0; i < GD; i++) {
    double gi = 0.0;
    for (int j = 0; j < GD; j++) gi -= g->prec[i][j] * (x[j] - g->mu[j]);
    grad[i] = gi;
    lp += 0.5 * gi * (x[i] - g->mu[i]);
  }
  *logp = lp;
  return JADE_OK;
}

/* Neal's funnel, 4-d: v ~ N(0, 1.5^2), x_i | v ~ N(0, e^v), i = 1..3. */
#define FUN_SV 1.5
static jade_status funnel_centred(void *ctx, const double *y, double *logp, double *grad) {
  (void)ctx;
  double v = y[0], ev = exp(-y[0]);
  double lp = -0.5 * v * v / (FUN_SV * FUN_SV) - 1.5 * v, gv = -v / (FUN_SV * FUN_SV) - 1.5;
  for (int i = 1; i < 4; i++) {
    lp -= 0.5 * y[i] * y[i] * ev;
    gv += 0.5 * y[i] * y[i] * ev;
    grad[i] = -y[i] * ev;
  }
  grad[0] = gv;
  *logp = lp;
  return JADE_OK;
}

/* Non-centred: y = (v, z_1..z_3) with x_i = exp(v/2) z_i; a product of normals. */
static jade_status funnel_noncentred(void *ctx, const double *y, double *logp, double *grad) {
  (void)ctx;
  double lp = -0.5 * y[0] * y[0] / (FUN_SV * FUN_SV);
  grad[0] = -y[0] / (FUN_SV * FUN_SV);
  for (int i = 1; i < 4; i++) {
    lp -= 0.5 * y[i] * y[i];
    grad[i] = -y[i];
  }
  *logp = lp;
  return JADE_OK;
}

static jade_status std_normal(void *ctx, const double *x, double *logp, double *grad) {
  (void)ctx;
  *logp = -0.5 * x[0] * x[0];
  grad[0] = -x[0];
  return JADE_OK;
}

/* Exponential(1) on x > 0 (logp = -inf outside the support). */
static jade_status exponential(void *ctx, const double *x, double *logp, double *grad) {
  (void)ctx;
  *logp = x[0] > 0 ? -x[0] : -INFINITY;
  grad[0] = -1.0;
  return JADE_OK;
}

typedef struct {
  long calls, fail_at;
} failing;
static jade_status failing_normal(void *ctx, const double *x, double *logp, double *grad) {
  failing *f = ctx;
  if (++f->calls == f->fail_at) return jade_error(JADE_ERR_NUMERIC, "synthetic failure");
  return std_normal(NULL, x, logp, grad);
}

/* ---------------------------------------------------------------------------- helpers */

/* Runs m chains (m <= 8) of n_warm + n_draw iterations; returns the post-warm-up draws
 * (m * n_draw * d, chain-major) and their stats. */
static void run_chains(jade_logp_fn fn, void *ctx, size_t d, const jade_nuts_config *cfg, int m,
                       long n_draw, uint64_t seed, const double *x0, int threads, double **draws,
                       jade_nuts_stats **stats, jade_nuts_chain **keep) {
  jade_nuts_chain *ch[8];
  void *ctxs[8];
  for (int c = 0; c < m; c++) {
    CHECK_OK(jade_nuts_chain_create(&ch[c], d, cfg, seed, (uint64_t)c, x0, NULL));
    ctxs[c] = ctx;
  }
  long nw = cfg->n_warmup;
  jade_nuts_stats *ws = malloc(sizeof *ws * (size_t)(m * nw + 1));
  CHECK_OK(jade_nuts_run_chains(ch, m, fn, ctxs, nw, NULL, ws, threads));
  for (size_t k = 0; k < (size_t)(m * nw); k++) CHECK(ws[k].warmup == 1, "warm-up flag");
  free(ws);
  *draws = malloc(sizeof(double) * (size_t)m * (size_t)n_draw * d);
  *stats = malloc(sizeof(jade_nuts_stats) * (size_t)m * (size_t)n_draw);
  CHECK_OK(jade_nuts_run_chains(ch, m, fn, ctxs, n_draw, *draws, *stats, threads));
  for (int c = 0; c < m; c++) {
    if (keep)
      keep[c] = ch[c];
    else
      jade_nuts_chain_free(ch[c]);
  }
}

/* Mean of f over m x n values and its MCSE sd/sqrt(ESS_mean). */
static void mean_mcse(const double *f, int m, size_t n, double *mean, double *mcse) {
  double sd, ess;
  jade_mcmc_mean_sd(f, (size_t)m * n, mean, &sd);
  CHECK_OK(jade_mcmc_ess_mean(f, m, n, &ess));
  *mcse = sd / sqrt(ess);
}

static int count_divergent(const jade_nuts_stats *s, size_t n) {
  int k = 0;
  for (size_t i = 0; i < n; i++) k += s[i].divergent;
  return k;
}

/* Fraction of v below its exact quantiles vs p, error in units of sqrt(p(1-p)/ESS). */
static double quantile_check(const double *v, int m, size_t n, double sd_true, const char *name,
                             int strict) {
  static const double probs[5] = {0.05, 0.25, 0.5, 0.75, 0.95};
  size_t total = (size_t)m * n;
  double *ind = malloc(total * sizeof(double)), worst = 0.0;
  for (int k = 0; k < 5; k++) {
    double q = sd_true * gsl_cdf_ugaussian_Pinv(probs[k]);
    for (size_t i = 0; i < total; i++) ind[i] = v[i] <= q ? 1.0 : 0.0;
    double frac, mcse;
    mean_mcse(ind, m, n, &frac, &mcse);
    double z = (frac - probs[k]) / mcse;
    printf("  %s: P(v <= q_%.2f) = %.4f +- %.4f (z = %+.2f)\n", name, probs[k], frac, mcse, z);
    if (strict)
      CHECK_LT(fabs(z), ZTOL, "%s: fraction below the %.2f quantile %.4f, z = %.2f", name,
            probs[k], frac, z);
    jade_test_max_err(&worst, fabs(z));
  }
  free(ind);
  return worst;
}

/* ------------------------------------------------------------------------------ tests */

static void test_windows(void) {
  jade_nuts_config cfg;
  jade_nuts_config_default(&cfg);
  long ends[16];
  int n = jade_nuts_metric_windows(&cfg, ends, 16);
  long want[5] = {99, 149, 249, 449, 949};
  CHECK(n == 5, "1000 warm-up iterations: %d windows, want 5", n);
  for (int i = 0; i < 5 && i < n; i++) CHECK(ends[i] == want[i], "window %d ends at %ld", i, ends[i]);
  cfg.n_warmup = 200; /* 75 + 25 + 50 fits: windows end at 99, then stretched to 149 */
  n = jade_nuts_metric_windows(&cfg, ends, 16);
  CHECK(n == 2 && ends[0] == 99 && ends[1] == 149, "200: %d windows (%ld, %ld)", n, ends[0],
        ends[1]);
  cfg.n_warmup = 100; /* shrunk to 15 / 75 / 10: one window ending at 89 */
  n = jade_nuts_metric_windows(&cfg, ends, 16);
  CHECK(n == 1 && ends[0] == 89, "100: %d windows, first %ld", n, ends[0]);
  cfg.n_warmup = 19;
  CHECK(jade_nuts_metric_windows(&cfg, ends, 16) == 0, "no metric adaptation below 20");
  cfg.n_warmup = 1000;
  cfg.adapt_metric = 0;
  CHECK(jade_nuts_metric_windows(&cfg, ends, 16) == 0, "adapt_metric = 0");
}

static void test_gaussian(void) {
  gauss g;
  gauss_init(&g);
  jade_nuts_config cfg;
  jade_nuts_config_default(&cfg);
  const int m = 4;
  const long n = 2000;
  double *dr;
  jade_nuts_stats *st;
  jade_nuts_chain *ch[4];
  double t0 = jade_time_now();
  run_chains(gauss_logp, &g, GD, &cfg, m, n, 42, NULL, 2, &dr, &st, ch);
  double elapsed = jade_time_now() - t0;
  size_t total = (size_t)m * (size_t)n;
  double *col = malloc(total * sizeof(double)), *f = malloc(total * sizeof(double));
  double *col2 = malloc(total * sizeof(double));
  double worst = 0.0, min_ess = 1e300, max_rhat = 0.0;
  for (int i = 0; i < GD; i++) {
    jade_mcmc_extract(dr, m, (size_t)n, GD, (size_t)i, col);
    jade_mcmc_summary s;
    CHECK_OK(jade_mcmc_summarize(col, m, (size_t)n, &s));
    double zm = (s.mean - g.mu[i]) / s.mcse_mean;
    /* variance: mean of (x - xbar)^2 with its own ESS */
    for (size_t k = 0; k < total; k++) f[k] = (col[k] - s.mean) * (col[k] - s.mean);
    double var, mcse_var;
    mean_mcse(f, m, (size_t)n, &var, &mcse_var);
    var *= (double)total / (double)(total - 1);
    double zv = (var - g.cov[i][i]) / mcse_var;
    printf("  x%d: mean %+.5g (true %+.5g, z %+.2f)  var %.5g (true %.5g, z %+.2f)  "
           "ess bulk %.0f tail %.0f  rhat %.4f\n",
           i, s.mean, g.mu[i], zm, var, g.cov[i][i], zv, s.ess_bulk, s.ess_tail, s.rhat);
    CHECK_LT(fabs(zm), ZTOL, "x%d mean %.6g vs %.6g: z = %.2f", i, s.mean, g.mu[i], zm);
    CHECK_LT(fabs(zv), ZTOL, "x%d variance %.6g vs %.6g: z = %.2f", i, var, g.cov[i][i], zv);
    jade_test_max_err(&worst, jade_test_max(fabs(zm), fabs(zv)));
    jade_test_min_acc(&min_ess, jade_test_min(s.ess_bulk, s.ess_tail));
    jade_test_max_err(&max_rhat, s.rhat);
  }
  /* covariances of neighbours with scales 10^(4/9) apart and of the first two */
  for (int i = 0; i < GD - 1; i += 4) {
    jade_mcmc_extract(dr, m, (size_t)n, GD, (size_t)i, col);
    jade_mcmc_extract(dr, m, (size_t)n, GD, (size_t)i + 1, col2);
    double m1, m2, cv, mcse;
    jade_mcmc_mean_sd(col, total, &m1, NULL);
    jade_mcmc_mean_sd(col2, total, &m2, NULL);
    for (size_t k = 0; k < total; k++) f[k] = (col[k] - m1) * (col2[k] - m2);
    mean_mcse(f, m, (size_t)n, &cv, &mcse);
    double zc = (cv - g.cov[i][i + 1]) / mcse;
    printf("  cov(x%d, x%d) = %.5g (true %.5g, z %+.2f)\n", i, i + 1, cv, g.cov[i][i + 1], zc);
    CHECK_LT(fabs(zc), ZTOL, "cov(x%d,x%d) %.6g vs %.6g: z = %.2f", i, i + 1, cv, g.cov[i][i + 1],
          zc);
    jade_test_max_err(&worst, fabs(zc));
  }
  int ndiv = count_divergent(st, total);
  double acc = 0.0, depth = 0.0, nleap = 0.0;
  for (size_t k = 0; k < total; k++) {
    acc += st[k].accept_stat;
    depth += st[k].tree_depth;
    nleap += st[k].n_leapfrog;
    CHECK(st[k].warmup == 0, "draw flagged warm-up");
  }
  acc /= (double)total;
  /* the inverse metric from the last slow window (iterations 450..949, n = 500 draws) is
   * the regularised variance n/(n+5) var + 1e-3 * 5/(n+5); one window's estimate scatters by
   * ~10% (ESS ~ 200), the mean over 4 chains by ~5%: allow 4 sigma */
  double max_metric_err = 0.0;
  for (int i = 0; i < GD; i++) {
    double expect = 500.0 / 505.0 * g.cov[i][i] + 1e-3 * 5.0 / 505.0, ratio = 0.0;
    for (int c = 0; c < m; c++) ratio += jade_nuts_chain_inv_metric(ch[c])[i] / expect / m;
    jade_test_max_err(&max_metric_err, fabs(ratio - 1.0));
  }
  for (int c = 0; c < m; c++) {
    CHECK(jade_nuts_chain_iteration(ch[c]) == cfg.n_warmup + n, "iteration counter");
    jade_nuts_totals tot;
    jade_nuts_chain_totals(ch[c], &tot);
    CHECK(tot.divergent == 0, "chain %d: %ld divergences after warm-up", c, tot.divergent);
    double bfmi = jade_nuts_ebfmi(st + (size_t)c * (size_t)n, n);
    CHECK_GT(bfmi, 0.5, "chain %d: E-BFMI %.3f", c, bfmi);
  }
  printf("gaussian 10-d: %d chains x %ld draws in %.2f s, worst |z| %.2f, min ESS %.0f, max "
         "R-hat %.4f,\n  mean accept %.3f, mean depth %.2f, mean leapfrogs %.1f, step %.4g, "
         "divergences %d, max inverse-metric error %.1f%%\n",
         m, n, elapsed, worst, min_ess, max_rhat, acc, depth / (double)total,
         nleap / (double)total, jade_nuts_chain_step_size(ch[0]), ndiv, 100 * max_metric_err);
  CHECK_LT(max_rhat, 1.01, "max R-hat %.4f", max_rhat);
  CHECK_GT(min_ess, 1500, "min ESS %.0f of %zu draws", min_ess, total);
  CHECK(jade_test_gt_ok(acc, 0.7) && jade_test_lt_ok(acc, 0.95), "mean accept stat %.3f, target 0.8", acc);
  CHECK(ndiv == 0, "%d divergences", ndiv);
  CHECK_LT(max_metric_err, 0.2, "inverse metric off by %.1f%%", 100 * max_metric_err);
  for (int c = 0; c < m; c++) jade_nuts_chain_free(ch[c]);
  free(col);
  free(col2);
  free(f);
  free(dr);
  free(st);
}

/* strict: assert the moments and quantiles of v and x1. The centred funnel at the default
 * delta 0.8 under-samples the neck (v << 0) in some seeds (about 1 in 10: P(v <= q_0.05)
 * ~0.025 instead of 0.05), the pathology its divergences flag; it is only reported, and its
 * divergences must be detected. At delta 0.95 it passes (max |z| 2.7 over 30 seeds). */
static void test_funnel(int centred, double target_accept, int strict, int *divergences) {
  jade_nuts_config cfg;
  jade_nuts_config_default(&cfg);
  cfg.target_accept = target_accept;
  const int m = 4;
  const long n = 5000;
  double *dr;
  jade_nuts_stats *st;
  double x0[4] = {0.5, 0.3, -0.2, 0.1};
  run_chains(centred ? funnel_centred : funnel_noncentred, NULL, 4, &cfg, m, n, 7, x0, 2, &dr, &st,
             NULL);
  size_t total = (size_t)m * (size_t)n;
  double *v = malloc(total * sizeof(double)), *f = malloc(total * sizeof(double));
  jade_mcmc_extract(dr, m, (size_t)n, 4, 0, v);
  const char *name = centred ? "centred" : "non-centred";
  double mean, mcse, rhat;
  mean_mcse(v, m, (size_t)n, &mean, &mcse);
  for (size_t k = 0; k < total; k++) f[k] = v[k] * v[k];
  double ev2, mcse2;
  mean_mcse(f, m, (size_t)n, &ev2, &mcse2);
  CHECK_OK(jade_mcmc_rhat(v, m, (size_t)n, &rhat));
  int ndiv = count_divergent(st, total);
  printf("funnel %s (target accept %.2f): E[v] = %+.4f +- %.4f, E[v^2] = %.4f +- %.4f (true "
         "2.25), R-hat(v) %.4f, divergences %d / %zu\n",
         name, target_accept, mean, mcse, ev2, mcse2, rhat, ndiv, total);
  if (strict) {
    CHECK_LT(fabs(mean / mcse), ZTOL, "%s funnel: E[v] = %.4f, z = %.2f", name, mean, mean / mcse);
    CHECK_LT(fabs((ev2 - FUN_SV * FUN_SV) / mcse2), ZTOL, "%s funnel: E[v^2] = %.4f, z = %.2f",
          name, ev2, (ev2 - FUN_SV * FUN_SV) / mcse2);
    CHECK_LT(rhat, 1.02, "%s funnel: R-hat(v) %.4f", name, rhat);
  }
  quantile_check(v, m, (size_t)n, FUN_SV, name, strict);
  /* x_1 = exp(v/2) z_1 (non-centred) or y_1 (centred): E[x] = 0, E[x^2] = exp(sv^2/2) */
  jade_mcmc_extract(dr, m, (size_t)n, 4, 1, f);
  if (!centred)
    for (size_t k = 0; k < total; k++) f[k] *= exp(0.5 * v[k]);
  double mx, mcx;
  mean_mcse(f, m, (size_t)n, &mx, &mcx);
  for (size_t k = 0; k < total; k++) f[k] *= f[k];
  double mx2, mcx2, ex2 = exp(0.5 * FUN_SV * FUN_SV);
  mean_mcse(f, m, (size_t)n, &mx2, &mcx2);
  printf("  E[x1] = %+.4f +- %.4f, E[x1^2] = %.4f +- %.4f (true %.4f)\n", mx, mcx, mx2, mcx2, ex2);
  if (strict) {
    CHECK_LT(fabs(mx / mcx), ZTOL, "%s funnel: E[x1] = %.4f, z = %.2f", name, mx, mx / mcx);
    CHECK_LT(fabs((mx2 - ex2) / mcx2), ZTOL, "%s funnel: E[x1^2] = %.4f, z = %.2f", name, mx2,
          (mx2 - ex2) / mcx2);
  }
  if (!centred) CHECK(ndiv == 0, "non-centred funnel: %d divergences", ndiv);
  if (centred && !strict) CHECK_GT(ndiv, 0, "centred funnel at delta %.2f: no divergence flagged",
                                target_accept);
  *divergences = ndiv;
  free(v);
  free(f);
  free(dr);
  free(st);
}

/* Large fixed step on iid N(0, 1) in 50-d (mean accept ~0.5): big energy errors, so the multinomial weights
 * exp(H0 - H) matter; E[x^2] pooled over coordinates must still be 1. */
#define SD 50
static jade_status iid_normal(void *ctx, const double *x, double *logp, double *grad) {
  (void)ctx;
  double lp = 0.0;
  for (int i = 0; i < SD; i++) {
    lp -= 0.5 * x[i] * x[i];
    grad[i] = -x[i];
  }
  *logp = lp;
  return JADE_OK;
}

static void test_large_step(void) {
  jade_nuts_config cfg;
  jade_nuts_config_default(&cfg);
  cfg.n_warmup = 0;
  cfg.adapt_step = cfg.adapt_metric = 0;
  cfg.step_size = 1.0;
  const int m = 4;
  const long n = 4000;
  double *dr;
  jade_nuts_stats *st;
  run_chains(iid_normal, NULL, SD, &cfg, m, n, 21, NULL, 2, &dr, &st, NULL);
  size_t total = (size_t)m * (size_t)n;
  double *f = malloc(total * sizeof(double)), *g = malloc(total * sizeof(double));
  double acc = 0.0;
  for (size_t k = 0; k < total; k++) {
    double s2 = 0.0, s4 = 0.0;
    for (int j = 0; j < SD; j++) {
      double x = dr[k * SD + j];
      s2 += x * x;
      s4 += x * x * x * x;
    }
    f[k] = s2 / SD;
    g[k] = s4 / SD;
    acc += st[k].accept_stat;
  }
  double m2, e2, m4, e4;
  mean_mcse(f, m, (size_t)n, &m2, &e2);
  mean_mcse(g, m, (size_t)n, &m4, &e4);
  printf("iid 50-d, fixed step 1.0: mean accept %.3f, E[x^2] = %.4f +- %.4f (z %+.2f), E[x^4] = "
         "%.4f +- %.4f (z %+.2f)\n",
         acc / (double)total, m2, e2, (m2 - 1) / e2, m4, e4, (m4 - 3) / e4);
  CHECK_LT(fabs(m2 - 1), ZTOL * e2, "E[x^2] = %.4f, z = %.2f", m2, (m2 - 1) / e2);
  CHECK_LT(fabs(m4 - 3), ZTOL * e4, "E[x^4] = %.4f, z = %.2f", m4, (m4 - 3) / e4);
  free(f);
  free(g);
  free(dr);
  free(st);
}

static void test_reproducible(void) {
  gauss g;
  gauss_init(&g);
  jade_nuts_config cfg;
  jade_nuts_config_default(&cfg);
  cfg.n_warmup = 150;
  const int m = 3;
  const long n = 100;
  double *d1, *d2, *d3;
  jade_nuts_stats *s1, *s2, *s3;
  run_chains(gauss_logp, &g, GD, &cfg, m, n, 99, NULL, 1, &d1, &s1, NULL);
  run_chains(gauss_logp, &g, GD, &cfg, m, n, 99, NULL, 2, &d2, &s2, NULL);
  run_chains(gauss_logp, &g, GD, &cfg, m, n, 100, NULL, 2, &d3, &s3, NULL);
  size_t nd = (size_t)m * (size_t)n * GD;
  CHECK(memcmp(d1, d2, nd * sizeof(double)) == 0, "draws differ between 1 and 2 threads");
  CHECK(memcmp(s1, s2, (size_t)m * (size_t)n * sizeof *s1) == 0, "stats differ (threads)");
  CHECK(memcmp(d1, d3, nd * sizeof(double)) != 0, "another seed gave the same draws");
  /* chains differ from each other */
  CHECK(memcmp(d1, d1 + (size_t)n * GD, (size_t)n * GD * sizeof(double)) != 0,
        "chains 0 and 1 identical");
  free(d1);
  free(d2);
  free(d3);
  free(s1);
  free(s2);
  free(s3);
}

static void test_resume(void) {
  gauss g;
  gauss_init(&g);
  jade_nuts_config cfg;
  jade_nuts_config_default(&cfg);
  cfg.n_warmup = 300; /* windows end at 99, 149, 249 */
  const long total = 500;
  jade_nuts_chain *a, *b;
  CHECK_OK(jade_nuts_chain_create(&a, GD, &cfg, 5, 3, NULL, NULL));
  double *da = malloc(sizeof(double) * total * GD), *db = malloc(sizeof(double) * total * GD);
  jade_nuts_stats *sa = malloc(sizeof *sa * total), *sb = malloc(sizeof *sb * total);
  CHECK_OK(jade_nuts_run(a, gauss_logp, &g, total, da, sa));

  /* pieces ending at 0 (before the first evaluation), 137 (inside a slow window), 250 (just
   * after the window end at 249, step-size heuristic pending), 300 (end of warm-up), 500 */
  long cut[5] = {0, 137, 113, 50, 200};
  CHECK_OK(jade_nuts_chain_create(&b, GD, &cfg, 5, 3, NULL, NULL));
  long done = 0;
  const char *path = "test_mcmc_nuts_chain.bin";
  for (int k = 0; k < 5; k++) {
    CHECK_OK(jade_nuts_run(b, gauss_logp, &g, cut[k], db + done * GD, sb + done));
    done += cut[k];
    if (k % 2 == 0) {
      size_t sz = jade_nuts_chain_serial_size(b);
      unsigned char *buf = malloc(sz);
      CHECK_OK(jade_nuts_chain_serialize(b, buf, sz));
      jade_nuts_chain_free(b);
      CHECK_OK(jade_nuts_chain_deserialize(&b, buf, sz));
      /* corruption and truncation are detected */
      jade_nuts_chain *bad = NULL;
      buf[sz / 2] ^= 1;
      CHECK(jade_nuts_chain_deserialize(&bad, buf, sz) == JADE_ERR_FORMAT && !bad,
            "corrupt blob accepted");
      buf[sz / 2] ^= 1;
      CHECK(jade_nuts_chain_deserialize(&bad, buf, sz - 8) == JADE_ERR_FORMAT && !bad,
            "truncated blob accepted");
      free(buf);
    } else {
      CHECK_OK(jade_nuts_chain_save(b, path));
      jade_nuts_chain_free(b);
      CHECK_OK(jade_nuts_chain_load(&b, path));
    }
  }
  remove(path);
  CHECK(done == total, "pieces");
  CHECK(memcmp(da, db, sizeof(double) * total * GD) == 0, "resumed draws differ");
  CHECK(memcmp(sa, sb, sizeof *sa * total) == 0, "resumed stats differ");
  jade_nuts_totals ta, tb;
  jade_nuts_chain_totals(a, &ta);
  jade_nuts_chain_totals(b, &tb);
  CHECK(ta.grad_evals == tb.grad_evals && ta.divergent == tb.divergent, "totals differ");
  CHECK(jade_nuts_chain_step_size(a) == jade_nuts_chain_step_size(b), "step sizes differ");
  CHECK(memcmp(jade_nuts_chain_inv_metric(a), jade_nuts_chain_inv_metric(b), GD * sizeof(double)) ==
            0,
        "metrics differ");
  /* warm-up flags and the fixed post-warm-up step size */
  for (long i = 0; i < total; i++) CHECK(sa[i].warmup == (i < cfg.n_warmup), "warm-up flag %ld", i);
  for (long i = cfg.n_warmup + 1; i < total; i++)
    CHECK(sa[i].step_size == sa[cfg.n_warmup].step_size, "step size changed after warm-up");
  printf("resume: %ld iterations in 5 pieces bit-identical; %llu gradient evaluations\n", total,
         (unsigned long long)ta.grad_evals);
  jade_nuts_chain_free(a);
  jade_nuts_chain_free(b);
  free(da);
  free(db);
  free(sa);
  free(sb);
}

static void test_limits(void) {
  jade_nuts_config cfg;
  jade_nuts_config_default(&cfg);
  cfg.adapt_step = cfg.adapt_metric = 0;
  cfg.n_warmup = 0;
  double x0 = 0.5;
  /* tree depth limit: a tiny step never U-turns, 2^4 - 1 leapfrogs per transition */
  cfg.max_depth = 4;
  cfg.step_size = 1e-3;
  jade_nuts_chain *c;
  jade_nuts_stats st[20];
  CHECK_OK(jade_nuts_chain_create(&c, 1, &cfg, 1, 0, &x0, NULL));
  CHECK_OK(jade_nuts_run(c, std_normal, NULL, 20, NULL, st));
  for (int i = 0; i < 20; i++)
    CHECK(st[i].tree_depth == 4 && st[i].n_leapfrog == 15 && !st[i].divergent,
          "depth %d leapfrogs %d", st[i].tree_depth, st[i].n_leapfrog);
  jade_nuts_chain_free(c);
  /* divergences: leapfrog on N(0,1) is unstable for eps > 2; eps = 10 blows the energy up */
  cfg.max_depth = 10;
  cfg.step_size = 10.0;
  CHECK_OK(jade_nuts_chain_create(&c, 1, &cfg, 1, 0, &x0, NULL));
  CHECK_OK(jade_nuts_run(c, std_normal, NULL, 20, NULL, st));
  int ndiv = 0;
  for (int i = 0; i < 20; i++) ndiv += st[i].divergent;
  jade_nuts_totals tot;
  jade_nuts_chain_totals(c, &tot);
  CHECK(jade_test_ge_ok(ndiv, 18) && tot.divergent == ndiv && tot.divergent_warmup == 0,
        "%d divergent of 20 (totals %ld)", ndiv, tot.divergent);
  jade_nuts_chain_free(c);
  /* a stable step never diverges */
  cfg.step_size = 0.9;
  CHECK_OK(jade_nuts_chain_create(&c, 1, &cfg, 1, 0, &x0, NULL));
  CHECK_OK(jade_nuts_run(c, std_normal, NULL, 20, NULL, st));
  for (int i = 0; i < 20; i++) CHECK(!st[i].divergent, "stable step flagged divergent");
  jade_nuts_chain_free(c);

  /* random initialisation on a constrained support, and draws stay in it */
  jade_nuts_config_default(&cfg);
  cfg.n_warmup = 200;
  CHECK_OK(jade_nuts_chain_create(&c, 1, &cfg, 3, 0, NULL, NULL));
  double xs[600];
  CHECK_OK(jade_nuts_run(c, exponential, NULL, 600, xs, NULL));
  int inside = 1;
  for (int i = 0; i < 600; i++) inside &= xs[i] > 0;
  CHECK(inside, "a draw left the support x > 0");
  jade_nuts_chain_free(c);

  /* target errors propagate; the chain keeps its last completed iteration */
  failing f = {0, 0};
  cfg.n_warmup = 10;
  CHECK_OK(jade_nuts_chain_create(&c, 1, &cfg, 1, 0, &x0, NULL));
  CHECK_OK(jade_nuts_run(c, failing_normal, &f, 5, NULL, NULL));
  long it = jade_nuts_chain_iteration(c);
  f.fail_at = f.calls + 1; /* the first leapfrog of the next iteration */
  jade_status s = jade_nuts_run(c, failing_normal, &f, 5, NULL, NULL);
  CHECK(s == JADE_ERR_NUMERIC, "failure status %d", (int)s);
  CHECK(strstr(jade_last_error(), "synthetic failure") != NULL, "message: %s", jade_last_error());
  CHECK(jade_nuts_chain_iteration(c) == it, "iteration advanced on failure");
  jade_nuts_chain_free(c);

  /* argument checks */
  jade_nuts_config_default(&cfg);
  cfg.max_depth = 0;
  CHECK(jade_nuts_chain_create(&c, 1, &cfg, 1, 0, NULL, NULL) == JADE_ERR_INVALID, "max_depth 0");
  jade_nuts_config_default(&cfg);
  cfg.target_accept = 1.0;
  CHECK(jade_nuts_chain_create(&c, 1, &cfg, 1, 0, NULL, NULL) == JADE_ERR_INVALID, "delta 1");
}

int main(void) {
  test_windows();
  test_limits();
  test_reproducible();
  test_resume();
  test_large_step();
  test_gaussian();
  int div_nc, div_c, div_c95;
  test_funnel(0, 0.8, 1, &div_nc);
  test_funnel(1, 0.8, 0, &div_c);
  test_funnel(1, 0.95, 1, &div_c95);
  printf("funnel divergences after warm-up: non-centred %d, centred %d (delta 0.8), centred %d "
         "(delta 0.95)\n",
         div_nc, div_c, div_c95);
  TEST_RETURN();
}
