/* The batched affine-invariant ensemble sampler against exact answers: moments of correlated
 * Gaussians and of a banana (x2 | x1 Gaussian around b (x1^2 - a^2): E x2 = 0, Var x2 = 2 b^2 a^4
 * + 1) within Monte Carlo error (the error from the measured autocorrelation time), the
 * autocorrelation-time estimator on AR(1) series (exact tau = (1 + phi)/(1 - phi)), NaN
 * densities as -inf (a NaN region is never entered), and batch independence (a galaxy's chain
 * is bit-identical alone or among others); the same for the sampler mixing stretch and
 * differential-evolution moves with the adaptive burn-in, and mode weights of a bimodal target
 * (exact) recovered by the DE mode-hopping moves. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/mcmc.h"
#include "jade/sed.h"
#include "test_util.h"

#define D 3
#define NG 6
typedef struct {
  double mu[NG][D], L[NG][D][D]; /* Cholesky factors of the covariances */
  double prec[NG][D][D];
  int banana, nan_cut;
} target;

static jade_status logp_fn(void *ctx, size_t n, const size_t *gal, const double *x, double *lp) {
  const target *t = ctx;
  for (size_t i = 0; i < n; i++) {
    const double *xi = x + i * D;
    size_t g = gal[i];
    if (t->banana) {
      /* 2-d banana in the first two coordinates (a = 1, b = 0.5), third N(0,1) */
      double a = 1.0, b = 0.5, r = xi[1] - b * (xi[0] * xi[0] - a * a);
      lp[i] = -0.5 * xi[0] * xi[0] / (a * a) - 0.5 * r * r - 0.5 * xi[2] * xi[2];
      continue;
    }
    double q = 0;
    for (int j = 0; j < D; j++)
      for (int k = 0; k < D; k++) q += (xi[j] - t->mu[g][j]) * t->prec[g][j][k] * (xi[k] - t->mu[g][k]);
    lp[i] = -0.5 * q;
    if (t->nan_cut && xi[0] > t->mu[g][0] + 0.5) lp[i] = NAN;
  }
  return JADE_OK;
}

static void make_target(target *t) {
  memset(t, 0, sizeof *t);
  for (int g = 0; g < NG; g++) {
    double rho = -0.9 + 0.35 * g, s0 = 1.0 + g, s1 = 0.1 * (g + 1), s2 = 3.0;
    t->mu[g][0] = g;
    t->mu[g][1] = -2.0 * g;
    t->mu[g][2] = 0.5;
    /* covariance [[s0^2, rho s0 s1, 0], [rho s0 s1, s1^2, 0], [0, 0, s2^2]] */
    double C[D][D] = {{s0 * s0, rho * s0 * s1, 0}, {rho * s0 * s1, s1 * s1, 0}, {0, 0, s2 * s2}};
    double det2 = C[0][0] * C[1][1] - C[0][1] * C[0][1];
    t->prec[g][0][0] = C[1][1] / det2;
    t->prec[g][1][1] = C[0][0] / det2;
    t->prec[g][0][1] = t->prec[g][1][0] = -C[0][1] / det2;
    t->prec[g][2][2] = 1.0 / C[2][2];
    memcpy(t->L[g], C, sizeof C); /* keep the covariance here */
  }
}

static void start(double *x0, size_t n_gal, int W, const target *t) {
  for (size_t g = 0; g < n_gal; g++)
    for (int w = 0; w < W; w++)
      for (int j = 0; j < D; j++)
        x0[(g * W + w) * D + j] = (t->banana ? 0 : t->mu[g][j]) +
                                  0.1 * jade_rng_normal(2, JADE_STREAM(JADE_RNG_TEST, 30), (g * W + w) * D + j);
}

/* p_de = 0: pure stretch, fixed burn-in; p_de > 0: mixed moves with the adaptive burn-in */
static void test_gaussians(double p_de) {
  target t;
  make_target(&t);
  jade_ens_options o;
  jade_ens_options_default(&o);
  o.n_walkers = 32;
  o.n_steps = 3000;
  o.n_burn = 1000;
  o.p_de = p_de;
  if (p_de > 0) o.burn_tau = 10;
  printf("-- correlated Gaussians, p_de %.2f%s\n", p_de, p_de > 0 ? ", adaptive burn-in" : "");
  int W = o.n_walkers;
  double *x0 = malloc(NG * W * D * sizeof(double)), acc[NG];
  jade_ens_stats es[NG];
  size_t nk = (size_t)o.n_steps;
  double *ch = malloc(NG * nk * W * D * sizeof(double));
  start(x0, NG, W, &t);
  CHECK_OK(jade_ens_run_stats(logp_fn, &t, NG, D, x0, &o, ch, NULL, es));
  for (int g = 0; g < NG; g++) {
    acc[g] = es[g].accept;
    if (p_de > 0) {
      /* every move kind used and accepted sometimes; burn-in ended at a check within the cap */
      CHECK(jade_test_in_ok(es[g].accept_stretch, 0.05, 0.95) && jade_test_in_ok(es[g].accept_de, 0.05, 0.95) &&
                jade_test_in_ok(es[g].accept_hop, 0.0, 1.0),
            "galaxy %d acceptance stretch %g de %g hop %g", g, es[g].accept_stretch, es[g].accept_de, es[g].accept_hop);
      CHECK(es[g].n_burn >= o.burn_check && es[g].n_burn <= o.n_burn &&
                (es[g].n_burn % o.burn_check == 0 || es[g].n_burn == o.n_burn),
            "galaxy %d burn-in %ld", g, es[g].n_burn);
      CHECK(es[g].n_burn == o.n_burn || jade_test_ge_ok((double)es[g].n_burn, o.burn_tau * es[g].tau_burn),
            "galaxy %d burn-in %ld < %g tau (%g)", g, es[g].n_burn, o.burn_tau, es[g].tau_burn);
      if (g == 0 || g == NG - 1)
        printf("gaussian %d: burn-in %ld (tau %.1f), acceptance stretch %.2f de %.2f hop %.2f\n", g, es[g].n_burn,
               es[g].tau_burn, es[g].accept_stretch, es[g].accept_de, es[g].accept_hop);
    } else {
      CHECK(es[g].n_burn == o.n_burn && isnan(es[g].accept_de) && jade_test_abs_ok(es[g].accept_stretch, es[g].accept, 0),
            "pure stretch stats");
    }
  }
  double worst = 0;
  for (int g = 0; g < NG; g++) {
    const double *c = ch + (size_t)g * nk * W * D;
    for (int j = 0; j < D; j++) {
      double tau = jade_ens_autocorr_time(c + j, nk, W, D, 5.0);
      double m = 0, v = 0, N = (double)nk * W;
      for (size_t i = 0; i < nk * W; i++) m += c[i * D + j] / N;
      for (size_t i = 0; i < nk * W; i++) v += (c[i * D + j] - m) * (c[i * D + j] - m) / (N - 1);
      double var = t.L[g][j][j], neff = N / tau;
      /* z-scores: mean error / (sd / sqrt(neff)); variance error / (var sqrt(2/neff)) */
      double zm = fabs(m - t.mu[g][j]) / sqrt(var / neff), zv = fabs(v - var) / (var * sqrt(2.0 / neff));
      worst = jade_test_max(worst, jade_test_max(zm, zv));
      if (g == 0 || g == NG - 1)
        printf("gaussian %d dim %d: mean %.4f (exact %.4f) var %.4f (exact %.4f) tau %.1f acc %.2f z %.2f %.2f\n", g,
               j, m, t.mu[g][j], v, var, tau, acc[g], zm, zv);
      CHECK(tau > 1 && tau < 200, "tau %g", tau);
    }
    /* correlation of dims 0,1 */
    CHECK(jade_test_in_ok(acc[g], 0.2, 0.8), "acceptance %g", acc[g]);
  }
  printf("correlated Gaussians: worst z-score of means and variances over %d x %d = %.2f\n", NG, D, worst);
  /* 36 z-scores: max |z| < 4.5 fails with probability < 3e-4 if the sampler is right */
  CHECK(jade_test_lt_ok(worst, 4.5), "moments");

  /* batch independence: galaxy 3 alone (first_id = 3) gives the same bytes */
  jade_ens_options o1 = o;
  o1.first_id = 3;
  target t1 = t;
  memcpy(t1.mu[0], t.mu[3], sizeof t.mu[3]);
  memcpy(t1.prec[0], t.prec[3], sizeof t.prec[3]);
  double *ch1 = malloc(nk * W * D * sizeof(double));
  CHECK_OK(jade_ens_run_stats(logp_fn, &t1, 1, D, x0 + 3 * W * D, &o1, ch1, NULL, NULL));
  CHECK(!memcmp(ch1, ch + 3 * nk * W * D, nk * W * D * sizeof(double)), "galaxy 3 alone differs from in batch");
  free(ch1);

  /* NaN region (x0 > mu0 + 0.5) is never entered */
  t.nan_cut = 1;
  o.n_steps = 300;
  o.n_burn = 0;
  CHECK_OK(jade_ens_run(logp_fn, &t, NG, D, x0, &o, ch, NULL, NULL));
  int bad = 0;
  for (int g = 0; g < NG; g++)
    for (size_t i = 0; i < (size_t)o.n_steps * W; i++) bad += ch[((size_t)g * o.n_steps * W + i) * D] > t.mu[g][0] + 0.5;
  CHECK(bad == 0, "%d draws in the NaN region", bad);
  free(x0);
  free(ch);
}

static void test_banana(double p_de) {
  target t;
  make_target(&t);
  t.banana = 1;
  jade_ens_options o;
  jade_ens_options_default(&o);
  o.n_walkers = 32;
  o.n_steps = 4000;
  o.n_burn = 1000;
  o.p_de = p_de;
  if (p_de > 0) o.burn_tau = 10;
  printf("-- banana, p_de %.2f\n", p_de);
  int W = o.n_walkers, NB = 4;
  double *x0 = malloc(NB * W * D * sizeof(double));
  size_t nk = (size_t)o.n_steps;
  double *ch = malloc(NB * nk * W * D * sizeof(double));
  start(x0, NB, W, &t);
  CHECK_OK(jade_ens_run_stats(logp_fn, &t, NB, D, x0, &o, ch, NULL, NULL));
  const double ex_m[2] = {0, 0}, ex_v[2] = {1.0, 2 * 0.25 + 1};
  /* fourth central moments for the variance error: x1 ~ N(0,1): 3; x2 = b(x1^2-1) + e:
   * E x2^4 = b^4 E(x1^2-1)^4 + 6 b^2 E(x1^2-1)^2 + 3 = 60 b^4 + 12 b^2 + 3 */
  const double ex_m4[2] = {3.0, 60 * 0.0625 + 12 * 0.25 + 3};
  double worst = 0;
  for (int g = 0; g < NB; g++) {
    const double *c = ch + (size_t)g * nk * W * D;
    for (int j = 0; j < 2; j++) {
      double tau = jade_ens_autocorr_time(c + j, nk, W, D, 5.0);
      double m = 0, v = 0, N = (double)nk * W;
      for (size_t i = 0; i < nk * W; i++) m += c[i * D + j] / N;
      for (size_t i = 0; i < nk * W; i++) v += (c[i * D + j] - m) * (c[i * D + j] - m) / (N - 1);
      double neff = N / tau;
      double zm = fabs(m - ex_m[j]) / sqrt(ex_v[j] / neff);
      double zv = fabs(v - ex_v[j]) / sqrt((ex_m4[j] - ex_v[j] * ex_v[j]) / neff);
      worst = jade_test_max(worst, jade_test_max(zm, zv));
      if (g == 0) printf("banana dim %d: mean %.4f (exact 0) var %.4f (exact %.4f) tau %.1f\n", j, m, v, ex_v[j], tau);
    }
  }
  printf("banana: worst z-score over %d ensembles x 2 moments x 2 dims = %.2f\n", NB, worst);
  CHECK(jade_test_lt_ok(worst, 4.0), "banana moments");
  free(x0);
  free(ch);
}

static void test_ar1(void) {
  /* W independent AR(1) series x_{i+1} = phi x_i + sqrt(1 - phi^2) e: tau = (1 + phi)/(1 - phi) */
  const double phis[2] = {0.5, 0.9};
  for (int k = 0; k < 2; k++) {
    double phi = phis[k];
    int W = 32;
    size_t n = 20000;
    double *x = malloc(n * W * sizeof(double));
    for (int w = 0; w < W; w++) {
      double v = jade_rng_normal(4, JADE_STREAM(JADE_RNG_TEST, 40 + k), (uint64_t)w * n);
      for (size_t i = 0; i < n; i++) {
        x[i * W + w] = v;
        v = phi * v + sqrt(1 - phi * phi) * jade_rng_normal(4, JADE_STREAM(JADE_RNG_TEST, 40 + k), (uint64_t)w * n + i + 1);
      }
    }
    double tau = jade_ens_autocorr_time(x, n, W, 1, 5.0), exact = (1 + phi) / (1 - phi);
    /* estimator sd ~ tau sqrt(2 (2M + 1) / (n W)) with M ~ 5 tau: 1% at phi = 0.9 */
    printf("AR(1) phi %.1f: tau %.3f exact %.3f\n", phi, tau, exact);
    CHECK(jade_test_rel_ok(tau, exact, 0.05), "AR(1) tau %g vs %g", tau, exact);
    free(x);
  }
}

/* Bimodal target: weights (w, 1 - w) on two unit Gaussians in d = 2 whose means are 10 apart
 * (x_0 = -5 and +5), so the mass of the right mode is exactly 1 - w (up to Phi(-5) ~ 3e-7 of
 * overlap). The walkers start split evenly between the modes: stretch moves cannot cross the
 * gap except through rare acceptances near x_0 = 0 (density e^-12.5), DE moves with gamma = 1 (x_k + x_i - x_j, x_i and x_j in different modes) can, so the
 * mixed sampler must move the right share of walkers: the fraction of draws with x_0 > 0 equals
 * 1 - w within Monte Carlo error (from the autocorrelation time of the indicator). */
static jade_status bimodal_fn(void *ctx, size_t n, const size_t *gal, const double *x, double *lp) {
  const double *w = ctx;
  for (size_t i = 0; i < n; i++) {
    double a = x[i * 2] + 5, b = x[i * 2] - 5, y2 = x[i * 2 + 1] * x[i * 2 + 1];
    double la = log(w[gal[i]]) - 0.5 * (a * a + y2), lb = log(1 - w[gal[i]]) - 0.5 * (b * b + y2);
    lp[i] = fmax(la, lb) + log1p(exp(-fabs(la - lb)));
  }
  return JADE_OK;
}

static void test_bimodal(void) {
  enum { NBI = 3 };
  const double w[NBI] = {0.2, 0.5, 0.75};
  jade_ens_options o;
  jade_ens_options_default(&o);
  o.n_walkers = 32;
  o.n_steps = 20000;
  o.n_burn = 2000;
  o.p_de = 0.5;
  o.p_hop = 0.2;
  int W = o.n_walkers;
  size_t nk = (size_t)o.n_steps;
  double *x0 = malloc(NBI * W * 2 * sizeof(double)), *ch = malloc(NBI * nk * W * 2 * sizeof(double));
  double *ind = malloc(nk * W * sizeof(double));
  for (int g = 0; g < NBI; g++)
    for (int k = 0; k < W; k++) {
      /* walker k: mode by its position in the two halves (both halves hold both modes) */
      double m = (k % (W / 2)) % 2 ? 5.0 : -5.0;
      for (int j = 0; j < 2; j++)
        x0[(g * W + k) * 2 + j] = (j ? 0 : m) + jade_rng_normal(3, JADE_STREAM(JADE_RNG_TEST, 50), (g * W + k) * 2 + j);
    }
  jade_ens_stats es[NBI];
  CHECK_OK(jade_ens_run_stats(bimodal_fn, (void *)w, NBI, 2, x0, &o, ch, NULL, es));
  double worst = 0;
  for (int g = 0; g < NBI; g++) {
    const double *c = ch + (size_t)g * nk * W * 2;
    double f = 0, N = (double)nk * W;
    for (size_t i = 0; i < nk * W; i++) {
      ind[i] = c[i * 2] > 0;
      f += ind[i] / N;
    }
    double tau = jade_ens_autocorr_time(ind, nk, W, 1, 5.0), ex = 1 - w[g];
    double se = sqrt(ex * (1 - ex) * tau / N), z = fabs(f - ex) / se;
    printf("bimodal: weight of x0 > 0 %.4f (exact %.4f) +- %.4f (tau %.0f, hop acceptance %.3f) z %.2f\n", f, ex, se,
           tau, es[g].accept_hop, z);
    CHECK(jade_test_lt_ok(tau, 2000), "indicator tau %g: the modes are not mixing", tau);
    worst = jade_test_max(worst, z);
  }
  /* 3 z-scores: max |z| < 3.5 fails with probability < 1.5e-3 if the sampler is right */
  CHECK(jade_test_lt_ok(worst, 3.5), "bimodal weights");
  /* pure stretch from the same start, for comparison (printed, not asserted): crossings are rare */
  o.p_de = 0;
  o.n_steps = 2000;
  CHECK_OK(jade_ens_run_stats(bimodal_fn, (void *)w, NBI, 2, x0, &o, ch, NULL, NULL));
  double f0 = 0;
  for (size_t i = 0; i < (size_t)o.n_steps * W; i++) f0 += (ch[i * 2] > 0) / ((double)o.n_steps * W);
  printf("bimodal, pure stretch (w = 0.2): weight of x0 > 0 %.4f (exact 0.8; the start split 0.5; 4000 iterations)\n", f0);
  free(x0);
  free(ch);
  free(ind);
}

/* gradient of the correlated-Gaussian targets (and of the banana), batched for jade_hmc_run */
static jade_status grad_fn(void *ctx, size_t n, const size_t *gal, const double *x, double *lp, double *grad) {
  const target *t = ctx;
  jade_status st = logp_fn(ctx, n, gal, x, lp);
  for (size_t i = 0; i < n && !st; i++) {
    const double *xi = x + i * D;
    double *gi = grad + i * D;
    if (t->banana) {
      double b = 0.5, r = xi[1] - b * (xi[0] * xi[0] - 1.0);
      gi[0] = -xi[0] + r * 2 * b * xi[0];
      gi[1] = -r;
      gi[2] = -xi[2];
      continue;
    }
    size_t g = gal[i];
    for (int j = 0; j < D; j++) {
      gi[j] = 0;
      for (int k = 0; k < D; k++) gi[j] -= t->prec[g][j][k] * (xi[k] - t->mu[g][k]);
    }
  }
  return st;
}

/* HMC in lockstep: moments of the 6 correlated Gaussians (scales 0.1 to 6, rho -0.9 to 0.85)
 * and of the banana against the exact values, with the walkers' autocorrelation time for the
 * Monte Carlo error; a problem alone gives the same bytes as in the batch. */
static void test_hmc(void) {
  target t;
  make_target(&t);
  jade_hmc_options o;
  jade_hmc_options_default(&o);
  o.n_chains = 8;
  o.n_warmup = 500;
  o.n_steps = 1500;
  o.n_leapfrog = 8;
  o.target_accept = 0.9;
  int C = o.n_chains;
  size_t nk = (size_t)o.n_steps;
  double *x0 = malloc(NG * C * D * sizeof(double)), *ch = malloc(NG * nk * C * D * sizeof(double));
  jade_hmc_stats hs[NG];
  double worst = 0, step_g0[2] = {0, 0};
  for (int dn = 0; dn < 2; dn++)
  for (int ban = 0; ban < 2; ban++) {
    t.banana = ban;
    o.dense_metric = dn;
    start(x0, NG, C, &t);
    CHECK_OK(jade_hmc_run(grad_fn, &t, NG, D, x0, NULL, &o, ch, hs));
    for (int g = 0; g < NG; g++) {
      const double *c = ch + (size_t)g * nk * C * D;
      for (int j = 0; j < D; j++) {
        /* exact moments; banana (a = 1, b = 0.5): x0 ~ N(0, 1), x1 = b (x0^2 - 1) + N(0, 1):
         * mean 0, var b^2 Var(x0^2) + 1 = 2 b^2 + 1 */
        double mu = ban ? 0.0 : t.mu[g][j], var = ban ? (j == 1 ? 1.5 : 1.0) : t.L[g][j][j];
        double tau = jade_ens_autocorr_time(c + j, nk, C, D, 5.0);
        double m = 0, v = 0, N = (double)nk * C;
        for (size_t i = 0; i < nk * C; i++) m += c[i * D + j] / N;
        for (size_t i = 0; i < nk * C; i++) v += (c[i * D + j] - m) * (c[i * D + j] - m) / (N - 1);
        /* HMC draws can be anti-correlated in x (tau < 1) and correlated in x^2 (energy): the
         * variance's error comes from the series (x - m)^2 and its own autocorrelation time;
         * tau >= 1 is taken for both (conservative) */
        double *sq = malloc(nk * C * sizeof(double)), vs = 0, ms = 0;
        for (size_t i = 0; i < nk * C; i++) ms += (sq[i] = (c[i * D + j] - m) * (c[i * D + j] - m)) / N;
        for (size_t i = 0; i < nk * C; i++) vs += (sq[i] - ms) * (sq[i] - ms) / (N - 1);
        double tau2 = jade_ens_autocorr_time(sq, nk, C, 1, 5.0);
        free(sq);
        double neff = N / fmax(tau, 1.0), neff2 = N / fmax(tau2, 1.0);
        double zm = fabs(m - mu) / sqrt(var / neff), zv = fabs(v - var) / sqrt(vs / neff2);
        worst = jade_test_max(worst, jade_test_max(zm, zv));
        if (g == 0 || g == NG - 1)
          printf("hmc (%s metric) %s %d dim %d: mean %.4f (exact %.4f) var %.4f (exact %.4f) tau %.1f (x^2: %.1f) acc %.2f "
                 "step %.3g z %.2f %.2f\n", dn ? "dense" : "diagonal",
                 ban ? "banana" : "gaussian", g, j, m, mu, v, var, tau, tau2, hs[g].accept, hs[g].step_size, zm, zv);
        if (!ban && g == 0) step_g0[dn] = hs[g].step_size;
        CHECK(jade_test_lt_ok(tau, 50) && jade_test_lt_ok(tau2, 50), "hmc tau %g, of x^2 %g", tau, tau2);
      }
      /* no divergence on a Gaussian; the banana's tails (gradient ~ x0^3) allow a few */
      CHECK(jade_test_in_ok(hs[g].accept, 0.6, 0.99) && hs[g].divergent <= (ban ? (long)(0.02 * C * nk) : 0),
            "hmc problem %d acceptance %g, %ld divergent", g, hs[g].accept, hs[g].divergent);
    }
  }
  printf("hmc: worst z-score of means and variances over 2 x 2 x %d x %d = %.2f\n", NG, D, worst);
  /* 72 z-scores: max |z| < 4.5 fails with probability < 6e-4 if the sampler is right */
  CHECK(jade_test_lt_ok(worst, 4.5), "hmc moments");
  /* the dense metric undoes the correlation (rho -0.9, scales 1 and 0.1) that limits the
   * diagonal metric's step size: after the diagonal scaling the two principal widths are
   * sqrt(1 + 0.9) and sqrt(1 - 0.9), 4.4x apart, and the step follows the narrow one; the dense
   * metric whitens both to 1 */
  printf("hmc: adapted step size on the rho = -0.9 Gaussian: diagonal metric %.3f, dense %.3f\n", step_g0[0],
         step_g0[1]);
  CHECK(jade_test_gt_ok(step_g0[1], 1.8 * step_g0[0]), "dense metric step %g not above 1.8 x the diagonal's %g",
        step_g0[1], step_g0[0]);
  o.dense_metric = 0;
  /* batch independence: problem 3 alone (first_id 3) gives the same bytes */
  t.banana = 0;
  start(x0, NG, C, &t);
  CHECK_OK(jade_hmc_run(grad_fn, &t, NG, D, x0, NULL, &o, ch, NULL));
  jade_hmc_options o1 = o;
  o1.first_id = 3;
  target t1 = t;
  memcpy(t1.mu[0], t.mu[3], sizeof t.mu[3]);
  memcpy(t1.prec[0], t.prec[3], sizeof t.prec[3]);
  double *ch1 = malloc(nk * C * D * sizeof(double));
  CHECK_OK(jade_hmc_run(grad_fn, &t1, 1, D, x0 + 3 * C * D, NULL, &o1, ch1, NULL));
  CHECK(!memcmp(ch1, ch + 3 * nk * C * D, nk * C * D * sizeof(double)), "hmc: problem 3 alone differs from in batch");
  free(ch1);
  free(x0);
  free(ch);
}

/* Tempered bimodal target for the HMC hook test: problem p = g T + k is weight w[g] of the
 * mixture w N((-5, 0), I) + (1 - w) N((5, 0), I) raised to beta_k (the whole density tempered). */
typedef struct {
  const double *w;
  int T;
  double beta[4];
} pt_target;

static void bimodal_parts(const pt_target *t, size_t g, const double *x, double *lp, double *gr) {
  double a = x[0] + 5, b = x[0] - 5, y2 = x[1] * x[1];
  double la = log(t->w[g]) - 0.5 * (a * a + y2), lb = log(1 - t->w[g]) - 0.5 * (b * b + y2);
  double m = fmax(la, lb), pa = exp(la - m), pb = exp(lb - m);
  *lp = m + log(pa + pb);
  gr[0] = (-a * pa - b * pb) / (pa + pb);
  gr[1] = -x[1];
}

static jade_status pt_target_grad(void *ctx, size_t n, const size_t *prob, const double *x, double *lp, double *grad) {
  const pt_target *t = ctx;
  for (size_t i = 0; i < n; i++) {
    double l, g[2], b = t->beta[prob[i] % (size_t)t->T];
    bimodal_parts(t, prob[i] / (size_t)t->T, x + i * 2, &l, g);
    lp[i] = b * l;
    grad[i * 2] = b * g[0];
    grad[i * 2 + 1] = b * g[1];
  }
  return JADE_OK;
}

/* replica exchange between neighbouring temperatures (chain c with chain c), alternating pairs */
static jade_status pt_target_swap(void *ctx, long it, size_t n_prob, int C, int d, double *X, double *LPX, double *G) {
  const pt_target *t = ctx;
  int T = t->T;
  for (size_t g = 0; g < n_prob / (size_t)T; g++)
    for (int k = (int)(it % 2); k + 1 < T; k += 2)
      for (int c = 0; c < C; c++) {
        size_t i = (g * T + k) * (size_t)C + c, j = (g * T + k + 1) * (size_t)C + c;
        double li, lj, gi[2], gj[2];
        bimodal_parts(t, g, X + i * d, &li, gi);
        bimodal_parts(t, g, X + j * d, &lj, gj);
        double u = jade_rng_uniform(7, JADE_STREAM(JADE_RNG_TEST, 40 + g), ((uint64_t)it * T + k) * C + c);
        if (!(log(u) < (t->beta[k] - t->beta[k + 1]) * (lj - li))) continue;
        for (int q = 0; q < d; q++) {
          double tmp = X[i * d + q];
          X[i * d + q] = X[j * d + q];
          X[j * d + q] = tmp;
        }
        LPX[i] = t->beta[k] * lj;
        LPX[j] = t->beta[k + 1] * li;
        for (int q = 0; q < d; q++) {
          G[i * d + q] = t->beta[k] * gj[q];
          G[j * d + q] = t->beta[k + 1] * gi[q];
        }
      }
  return JADE_OK;
}

/* HMC alone cannot cross between modes 10 sd apart; with 4 temperatures (beta 1 .. 0.02) and
 * exchanges through the hook, the beta = 1 chains recover the mode weights 0.8, 0.5, 0.25. */
static void test_hmc_tempering(void) {
  const double w[3] = {0.8, 0.5, 0.25};
  pt_target t = {.w = w, .T = 4, .beta = {1.0, 0.27, 0.074, 0.02}};
  jade_hmc_options o;
  jade_hmc_options_default(&o);
  o.n_chains = 4;
  o.n_warmup = 400;
  o.n_steps = 3000;
  o.n_leapfrog = 8;
  o.hook = pt_target_swap;
  o.hook_ctx = &t;
  int C = o.n_chains, T = t.T;
  size_t np = 3 * (size_t)T, nk = (size_t)o.n_steps;
  double *x0 = malloc(np * C * 2 * sizeof(double)), *ch = malloc(np * nk * C * 2 * sizeof(double));
  for (size_t p = 0; p < np; p++)
    for (int c = 0; c < C; c++) { /* half the chains in each mode */
      x0[(p * C + c) * 2] = c % 2 ? 5.0 : -5.0;
      x0[(p * C + c) * 2 + 1] = 0.1 * c;
    }
  CHECK_OK(jade_hmc_run(pt_target_grad, &t, np, 2, x0, NULL, &o, ch, NULL));
  for (int g = 0; g < 3; g++) {
    const double *c = ch + (size_t)g * T * nk * C * 2; /* problem g T: beta = 1 */
    double *ind = malloc(nk * C * sizeof(double)), f = 0;
    for (size_t i = 0; i < nk * C; i++) f += (ind[i] = c[i * 2] < 0) / (double)(nk * C);
    double tau = fmax(1.0, jade_ens_autocorr_time(ind, nk, C, 1, 5.0)), se = sqrt(f * (1 - f) * tau / (nk * C));
    printf("hmc + tempering, weight %.2f: fraction in the left mode %.4f +- %.4f (indicator tau %.1f)\n", w[g], f, se, tau);
    CHECK(jade_test_lt_ok(fabs(f - w[g]), 4.5 * se) && se < 0.05, "tempered HMC mode weight %g vs %g", f, w[g]);
    free(ind);
  }
  free(x0);
  free(ch);
}

/* Ridge target for the HMC's ridge moves: z = x[3] ~ w N(-2, 0.3^2) + (1 - w) N(2, 0.3^2) and
 * psi_j | z ~ N(f_j(z), s_j^2), f = (3 sin z, z^2 / 2, -z), s = (0.1, 0.2, 0.05): two thin curved
 * ridges 13 sd apart in z. Exact: P(z < 0) = w, E psi_0 = 3 sin(2) exp(-0.045) (1 - 2 w),
 * E psi_1 = (4 + 0.09) / 2. */
static const double ridge_s[3] = {0.1, 0.2, 0.05};
static void ridge_f(double z, double *f, double *df) {
  f[0] = 3 * sin(z), df[0] = 3 * cos(z);
  f[1] = 0.5 * z * z, df[1] = z;
  f[2] = -z, df[2] = -1;
}

static jade_status ridge_grad(void *ctx, size_t n, const size_t *prob, const double *x, double *lp, double *grad) {
  const double *w = ctx;
  for (size_t i = 0; i < n; i++) {
    const double *xi = x + i * 4;
    double z = xi[3], a = (z + 2) / 0.3, b = (z - 2) / 0.3, wg = w[prob[i]];
    double la = log(wg) - 0.5 * a * a, lb = log(1 - wg) - 0.5 * b * b, m = fmax(la, lb);
    double pa = exp(la - m), pb = exp(lb - m), f[3], df[3];
    lp[i] = m + log(pa + pb);
    grad[i * 4 + 3] = (-a / 0.3 * pa - b / 0.3 * pb) / (pa + pb);
    ridge_f(z, f, df);
    for (int j = 0; j < 3; j++) {
      double r = (xi[j] - f[j]) / (ridge_s[j] * ridge_s[j]);
      lp[i] -= 0.5 * (xi[j] - f[j]) * r;
      grad[i * 4 + j] = -r;
      grad[i * 4 + 3] += r * df[j];
    }
  }
  return JADE_OK;
}

/* HMC alone keeps the chains in the ridge they start on; with ridge moves along a deliberately
 * imperfect profile (every node off by 0.05) and a uniform q, translations or affine maps with
 * wrong precision factors, the mode weights and moments are exact within Monte Carlo error. */
static void test_hmc_ridge(void) {
  const double w[2] = {0.3, 0.6};
  enum { G = 41 };
  double node[2 * G * 4], lq[2 * G];
  for (int p = 0; p < 2; p++)
    for (int k = 0; k < G; k++) {
      double z = -4 + 8.0 * k / (G - 1), f[3], df[3];
      ridge_f(z, f, df);
      for (int j = 0; j < 3; j++) node[(p * G + k) * 4 + j] = f[j] + 0.05;
      node[(p * G + k) * 4 + 3] = z;
      lq[p * G + k] = log(1.0 / (G * 8.0 / (G - 1))); /* uniform over the cells [-4.1, 4.1] */
    }
  /* affine variant: precision factors that are neither right nor constant (diagonal scaled by
   * 1 + 0.3 sin z, an off-diagonal term), row and column 3 left at garbage values */
  double *chol = malloc(2 * G * 16 * sizeof(double));
  for (int p = 0; p < 2; p++)
    for (int k = 0; k < G; k++) {
      double z = -4 + 8.0 * k / (G - 1), *L = chol + (p * G + k) * 16;
      for (int q = 0; q < 16; q++) L[q] = q / 4 >= q % 4 ? 7.0 : 0.0; /* lower triangle */
      for (int j = 0; j < 3; j++) L[j * 5] = (1 + 0.3 * sin(z)) / ridge_s[j];
      L[1 * 4 + 0] = 2.0;
      L[2 * 4 + 1] = 0;
      L[2 * 4 + 0] = -1.0;
    }
  jade_hmc_ridge ridge = {.coord = 3, .n_nodes = G, .lo = -4, .hi = 4, .per_profile = 1, .node = node, .lq = lq};
  jade_hmc_options o;
  jade_hmc_options_default(&o);
  o.n_chains = 8;
  o.n_warmup = 300;
  o.n_steps = 2500;
  o.n_leapfrog = 8;
  int C = o.n_chains;
  size_t nk = (size_t)o.n_steps;
  double *x0 = malloc(2 * C * 4 * sizeof(double)), *ch = malloc(2 * nk * C * 4 * sizeof(double));
  for (int i = 0; i < 2 * C; i++) { /* every chain on the left ridge */
    double f[3], df[3], z = -2 + 0.05 * (i % C);
    ridge_f(z, f, df);
    memcpy(x0 + i * 4, f, sizeof f);
    x0[i * 4 + 3] = z;
  }
  jade_hmc_stats hs[2];
  for (int with = 0; with < 3; with++) {
    o.ridge = with ? &ridge : NULL;
    ridge.chol = with == 2 ? chol : NULL;
    CHECK_OK(jade_hmc_run(ridge_grad, (void *)w, 2, 4, x0, NULL, &o, ch, hs));
    for (int p = 0; p < 2; p++) {
      const double *c = ch + (size_t)p * nk * C * 4;
      double *ser = malloc(nk * C * sizeof(double)), fl = 0, m0 = 0, m1 = 0;
      for (size_t i = 0; i < nk * C; i++) {
        fl += (ser[i] = c[i * 4 + 3] < 0) / (double)(nk * C);
        m0 += c[i * 4] / (double)(nk * C);
        m1 += c[i * 4 + 1] / (double)(nk * C);
      }
      double tf = fmax(1.0, jade_ens_autocorr_time(ser, nk, C, 1, 5.0)), se = sqrt(fl * (1 - fl) * tf / (nk * C));
      if (!with) {
        printf("hmc without ridge moves, w %.1f: fraction on the left ridge %.4f\n", w[p], fl);
        CHECK(jade_test_gt_ok(fl, 0.999), "hmc alone crossed between ridges (%g)", fl);
        free(ser);
        continue;
      }
      /* moments with their autocorrelation times; exact values above */
      double e0 = 3 * sin(2.0) * exp(-0.045) * (1 - 2 * w[p]), e1 = 0.5 * (4 + 0.09), v0 = 0, v1 = 0;
      for (size_t i = 0; i < nk * C; i++) {
        v0 += (c[i * 4] - m0) * (c[i * 4] - m0) / (double)(nk * C);
        v1 += (c[i * 4 + 1] - m1) * (c[i * 4 + 1] - m1) / (double)(nk * C);
      }
      double t0 = fmax(1.0, jade_ens_autocorr_time(c, nk, C, 4, 5.0));
      double t1 = fmax(1.0, jade_ens_autocorr_time(c + 1, nk, C, 4, 5.0));
      double z0 = (m0 - e0) / sqrt(v0 * t0 / (nk * C)), z1 = (m1 - e1) / sqrt(v1 * t1 / (nk * C)), zf = (fl - w[p]) / se;
      printf("hmc + %s ridge moves, w %.1f: left %.4f +- %.4f (tau %.1f), E psi_0 %.4f (exact %.4f, z %.2f), E psi_1 %.4f "
             "(exact %.4f, z %.2f), ridge acceptance %.3f\n",
             with == 2 ? "affine" : "translation", w[p], fl, se, tf, m0, e0, z0, m1, e1, z1, hs[p].ridge_accept);
      CHECK(jade_test_lt_ok(fabs(zf), 4.5) && jade_test_lt_ok(fabs(z0), 4.5) && jade_test_lt_ok(fabs(z1), 4.5) && se < 0.05,
            "ridge moves: weight %g (%g), z-scores %g %g %g", fl, w[p], zf, z0, z1);
      CHECK(jade_test_in_ok(hs[p].ridge_accept, 0.02, 1.0), "ridge acceptance %g", hs[p].ridge_accept);
      free(ser);
    }
  }
  /* a bad ridge is refused */
  jade_hmc_ridge bad = ridge;
  bad.coord = 4;
  o.ridge = &bad;
  CHECK(jade_hmc_run(ridge_grad, (void *)w, 2, 4, x0, NULL, &o, ch, hs) == JADE_ERR_INVALID, "bad ridge accepted");
  free(chol);
  free(x0);
  free(ch);
}

int main(void) {
  test_hmc();
  test_hmc_tempering();
  test_hmc_ridge();
  test_ar1();
  test_gaussians(0.0);
  test_gaussians(0.5);
  test_banana(0.0);
  test_banana(0.5);
  test_bimodal();
  if (jade_test_failures) fprintf(stderr, "%d failures\n", jade_test_failures);
  return jade_test_failures ? 1 : 0;
}
