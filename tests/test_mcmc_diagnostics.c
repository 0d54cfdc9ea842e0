/* MCMC diagnostics against known answers:
 *  - reference values of the R package posterior 1.4.0 (Vehtari et al.'s implementation) on
 *    fixed Philox data sets, to 1e-12 relative (run `test_mcmc_diagnostics --dump DIR` to write
 *    the data sets as CSV, one column per chain, then in R:
 *      library(posterior); x <- as.matrix(read.csv("DIR/d1.csv", header = FALSE))
 *      print(c(rhat(x), rhat_basic(x), ess_bulk(x), ess_tail(x), ess_mean(x),
 *              ess_quantile(x, 0.3), mcse_mean(x), mcse_sd(x)), digits = 17));
 *  - split R-hat ~ 1 for iid chains, > 1.1 for shifted means and (through folding) for
 *    chains of different scales;
 *  - ESS of Gaussian AR(1) chains against the exact N (1 - rho) / (1 + rho), and tail-ESS
 *    against the exact indicator autocorrelations (Plackett's identity);
 *  - quantiles, NaN conventions, argument checks, summarize_draws. */
#include "jade/mcmc.h"
#include "test_util.h"

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEED 2021

/* Stationary Gaussian AR(1): x_0 ~ N(0,1), x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t, one
 * Philox stream per (data set, chain). */
static void ar1(double *x, int m, size_t n, double rho, uint64_t set) {
  double *e = malloc(n * sizeof(double));
  for (int c = 0; c < m; c++) {
    jade_rng_normal_fill(SEED, JADE_STREAM(JADE_RNG_TEST, set * 64 + (uint64_t)c), 0, n, e);
    double *y = x + (size_t)c * n;
    y[0] = e[0];
    for (size_t t = 1; t < n; t++) y[t] = rho * y[t - 1] + sqrt(1.0 - rho * rho) * e[t];
  }
  free(e);
}

typedef struct {
  const char *name;
  int m;
  size_t n;
  double *x;
} dataset;

/* d1: AR(1) rho 0.7, 4 x 1000. d2: exp(d1) + 0.3 c (skewed, shifted). d3: 3 x 501 heavy
 * tails rounded to 0.1 (ties, odd length). d4: AR(1) rho 0.99, 2 x 3000 (long
 * autocorrelation: FFT path). */
static void make_datasets(dataset ds[4]) {
  ds[0] = (dataset){"d1", 4, 1000, NULL};
  ds[1] = (dataset){"d2", 4, 1000, NULL};
  ds[2] = (dataset){"d3", 3, 501, NULL};
  ds[3] = (dataset){"d4", 2, 3000, NULL};
  for (int k = 0; k < 4; k++) ds[k].x = malloc(sizeof(double) * (size_t)ds[k].m * ds[k].n);
  ar1(ds[0].x, 4, 1000, 0.7, 1);
  for (int c = 0; c < 4; c++)
    for (size_t i = 0; i < 1000; i++) ds[1].x[c * 1000 + i] = exp(ds[0].x[c * 1000 + i]) + 0.3 * c;
  ar1(ds[2].x, 3, 501, 0.3, 3);
  double *u = malloc(sizeof(double) * 3 * 501);
  jade_rng_uniform_fill(SEED, JADE_STREAM(JADE_RNG_TEST, 999), 0, 3 * 501, u);
  for (size_t i = 0; i < 3 * 501; i++) ds[2].x[i] = round(10.0 * ds[2].x[i] / sqrt(u[i])) / 10.0;
  free(u);
  ar1(ds[3].x, 2, 3000, 0.99, 4);
}

static void dump(const char *dir) {
  dataset ds[4];
  make_datasets(ds);
  for (int k = 0; k < 4; k++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.csv", dir, ds[k].name);
    FILE *f = fopen(path, "w");
    if (!f) {
      perror(path);
      exit(1);
    }
    for (size_t i = 0; i < ds[k].n; i++)
      for (int c = 0; c < ds[k].m; c++)
        fprintf(f, "%.17g%s", ds[k].x[(size_t)c * ds[k].n + i], c + 1 < ds[k].m ? "," : "\n");
    fclose(f);
    free(ds[k].x);
  }
}

/* posterior 1.4.0: rhat, rhat_basic, ess_bulk, ess_tail, ess_mean, ess_quantile(0.3),
 * mcse_mean, mcse_sd. */
static const double reference[4][8] = {
    {1.0040450716384923, 1.0041731606372697, 776.56298148426595, 1301.3861682003389,
     773.15321485064283, 962.6627023743979, 0.035492557912183552, 0.017576097083323045},
    {1.1109672835288644, 1.029799652268435, 27.429833473969463, 37.841182767034617,
     156.30296535323046, 24.526473792648002, 0.15218755727541575, 0.13634527371648159},
    {1.0007106774863246, 0.99925213380199085, 880.61050442489886, 1192.1448096605845,
     1175.7917026598768, 969.60838533555807, 0.091208213537873686, 0.55734447415925614},
    {1.0612987483227356, 1.0615807842862408, 27.433562391787394, 97.188651793162123,
     28.00093332535171, 27.825984851002801, 0.1745551195705678, 0.075111127591724947},
};

static void test_reference(void) {
  double worst = 0.0;
  dataset ds[4];
  make_datasets(ds);
  static const char *names[8] = {"rhat",         "rhat_basic", "ess_bulk",  "ess_tail",
                                 "ess_mean",     "ess_q0.3",   "mcse_mean", "mcse_sd"};
  for (int k = 0; k < 4; k++) {
    const double *x = ds[k].x;
    int m = ds[k].m;
    size_t n = ds[k].n;
    double v[8];
    jade_mcmc_summary s;
    CHECK_OK(jade_mcmc_rhat(x, m, n, &v[0]));
    CHECK_OK(jade_mcmc_rhat_basic(x, m, n, &v[1]));
    CHECK_OK(jade_mcmc_ess_bulk(x, m, n, &v[2]));
    CHECK_OK(jade_mcmc_ess_tail(x, m, n, &v[3]));
    CHECK_OK(jade_mcmc_ess_mean(x, m, n, &v[4]));
    CHECK_OK(jade_mcmc_ess_quantile(x, m, n, 0.3, &v[5]));
    CHECK_OK(jade_mcmc_summarize(x, m, n, &s));
    v[6] = s.mcse_mean;
    v[7] = s.mcse_sd;
    CHECK(s.rhat == v[0] && s.ess_bulk == v[2] && s.ess_tail == v[3] && s.ess_mean == v[4],
          "summary disagrees with the single diagnostics");
    printf("%s:", ds[k].name);
    for (int j = 0; j < 8; j++) printf(" %s %.10g", names[j], v[j]);
    printf("\n");
    for (int j = 0; j < 8; j++) {
      double rel = fabs(v[j] - reference[k][j]) / fabs(reference[k][j]);
      jade_test_max_err(&worst, rel);
      CHECK_LE(rel, 1e-12, "%s %s = %.17g, posterior %.17g", ds[k].name, names[j], v[j],
            reference[k][j]);
    }
    free(ds[k].x);
  }
  printf("largest relative difference to posterior 1.4.0: %.2e\n", worst);
}

static void normals(double *x, size_t n, uint64_t set) {
  jade_rng_normal_fill(SEED, JADE_STREAM(JADE_RNG_TEST, set), 0, n, x);
}

static void test_rhat(void) {
  const int m = 4;
  const size_t n = 1000;
  double *x = malloc(sizeof(double) * m * n), r, rb;
  normals(x, m * n, 100);
  CHECK_OK(jade_mcmc_rhat(x, m, n, &r));
  CHECK_OK(jade_mcmc_rhat_basic(x, m, n, &rb));
  printf("iid chains: R-hat %.4f (basic %.4f)\n", r, rb);
  CHECK(jade_test_lt_ok(r, 1.01) && jade_test_lt_ok(rb, 1.01), "iid R-hat %.4f / %.4f", r, rb);
  /* one chain shifted by 2 sd */
  for (size_t i = 0; i < n; i++) x[3 * n + i] += 2.0;
  CHECK_OK(jade_mcmc_rhat(x, m, n, &r));
  CHECK_OK(jade_mcmc_rhat_basic(x, m, n, &rb));
  printf("one chain shifted by 2 sd: R-hat %.4f (basic %.4f)\n", r, rb);
  CHECK(jade_test_gt_ok(r, 1.1) && jade_test_gt_ok(rb, 1.1), "shifted R-hat %.4f / %.4f", r, rb);
  /* same mean, one chain 3x wider: only the folded (tail) R-hat sees it */
  normals(x, m * n, 100);
  for (size_t i = 0; i < n; i++) x[3 * n + i] *= 3.0;
  CHECK_OK(jade_mcmc_rhat(x, m, n, &r));
  CHECK_OK(jade_mcmc_rhat_basic(x, m, n, &rb));
  printf("one chain 3x wider: R-hat %.4f (basic %.4f)\n", r, rb);
  CHECK(jade_test_gt_ok(r, 1.1) && jade_test_lt_ok(rb, 1.02), "scale R-hat %.4f / basic %.4f", r, rb);
  /* every chain drifts the same way: only splitting sees it */
  normals(x, m * n, 100);
  for (int c = 0; c < m; c++)
    for (size_t i = 0; i < n; i++) x[c * n + i] += 3.0 * ((double)i / (double)n - 0.5);
  CHECK_OK(jade_mcmc_rhat(x, m, n, &r));
  printf("drifting chains: split R-hat %.4f\n", r);
  CHECK_GT(r, 1.1, "drift R-hat %.4f", r);
  free(x);
}

/* Exact integrated autocorrelation time of the indicator 1{x <= q} of a stationary Gaussian
 * AR(1) chain: corr_k = (Phi2(q, q; rho^k) - p^2) / (p (1 - p)) with, by Plackett's identity,
 * Phi2(q, q; r) - p^2 = int_0^r exp(-q^2 / (1 + t)) / (2 pi sqrt(1 - t^2)) dt (Simpson). */
static double indicator_tau(double rho, double prob) {
  double q = gsl_cdf_ugaussian_Pinv(prob), tau = 1.0;
  for (double r = rho; r > 1e-14; r *= rho) {
    const int K = 400;
    double h = r / K, s = 0.0;
    for (int i = 0; i <= K; i++) {
      double t = i * h, w = (i == 0 || i == K) ? 1 : (i % 2 ? 4 : 2);
      s += w * exp(-q * q / (1.0 + t)) / (6.283185307179586 * sqrt(1.0 - t * t));
    }
    tau += 2.0 * (s * h / 3.0) / (prob * (1.0 - prob));
  }
  return tau;
}

static void test_ess_ar1(void) {
  const int m = 4;
  const size_t n = 50000;
  double *x = malloc(sizeof(double) * m * n);
  const double rhos[3] = {0.0, 0.5, 0.9};
  for (int k = 0; k < 3; k++) {
    double rho = rhos[k];
    ar1(x, m, n, rho, 10 + (uint64_t)k);
    double total = (double)m * (double)n;
    double exact = total * (1.0 - rho) / (1.0 + rho);
    double exact_tail = total / indicator_tau(rho, 0.05);
    double em, eb, et, e30;
    CHECK_OK(jade_mcmc_ess_mean(x, m, n, &em));
    CHECK_OK(jade_mcmc_ess_bulk(x, m, n, &eb));
    CHECK_OK(jade_mcmc_ess_tail(x, m, n, &et));
    CHECK_OK(jade_mcmc_ess_quantile(x, m, n, 0.3, &e30));
    double exact30 = total / indicator_tau(rho, 0.3);
    printf("AR(1) rho %.1f, %d x %zu: ESS mean %.0f bulk %.0f (exact %.0f), tail %.0f (exact "
           "%.0f), q0.3 %.0f (exact %.0f)\n",
           rho, m, n, em, eb, exact, et, exact_tail, e30, exact30);
    CHECK_LT(fabs(em / exact - 1), 0.1, "rho %.1f: ESS %.0f vs exact %.0f", rho, em, exact);
    CHECK_LT(fabs(eb / exact - 1), 0.1, "rho %.1f: bulk ESS %.0f vs exact %.0f", rho, eb, exact);
    CHECK_LT(fabs(et / exact_tail - 1), 0.1, "rho %.1f: tail ESS %.0f vs exact %.0f", rho, et,
          exact_tail);
    CHECK_LT(fabs(e30 / exact30 - 1), 0.1, "rho %.1f: q0.3 ESS %.0f vs exact %.0f", rho, e30,
          exact30);
  }
  free(x);
}

static void test_misc(void) {
  double x4[4] = {4, 1, 3, 2}, probs[4] = {0.0, 0.1, 0.5, 1.0}, q[4];
  CHECK_OK(jade_mcmc_quantiles(x4, 4, probs, 4, q));
  CHECK(q[0] == 1 && jade_test_lt_ok(fabs(q[1] - 1.3), 1e-15) && q[2] == 2.5 && q[3] == 4,
        "quantiles %g %g %g %g", q[0], q[1], q[2], q[3]);
  double mean, sd;
  jade_mcmc_mean_sd(x4, 4, &mean, &sd);
  CHECK(mean == 2.5 && jade_test_lt_ok(fabs(sd - sqrt(5.0 / 3.0)), 1e-15), "mean %g sd %g", mean, sd);

  /* NaN conventions */
  double c8[8] = {1, 1, 1, 1, 1, 1, 1, 1}, v;
  CHECK_OK(jade_mcmc_rhat(c8, 2, 4, &v));
  CHECK(isnan(v), "constant chains: R-hat %g", v);
  CHECK_OK(jade_mcmc_ess_bulk(c8, 2, 4, &v));
  CHECK(isnan(v), "constant chains: ESS %g", v);
  double y[6] = {0.1, 0.5, -0.2, 0.3, 0.9, -1.0};
  CHECK_OK(jade_mcmc_ess_mean(y, 2, 3, &v));
  CHECK(isnan(v), "3 draws per chain: ESS %g", v);
  double z[8] = {0.1, 0.5, -0.2, 0.3, 0.9, -1.0, INFINITY, 2.0};
  CHECK_OK(jade_mcmc_rhat(z, 2, 4, &v));
  CHECK(isnan(v), "infinite draw: R-hat %g", v);
  CHECK(jade_mcmc_rhat(y, 0, 3, &v) == JADE_ERR_INVALID, "m = 0 accepted");
  CHECK(jade_mcmc_ess_quantile(y, 2, 3, 0.0, &v) == JADE_ERR_INVALID, "prob 0 accepted");
  CHECK(jade_mcmc_quantiles(y, 6, (double[]){1.5}, 1, &v) == JADE_ERR_INVALID, "prob 1.5");

  /* summarize_draws == summarize of each extracted coordinate */
  const int m = 3;
  const size_t n = 400, d = 5;
  double *dr = malloc(sizeof(double) * m * n * d), *col = malloc(sizeof(double) * m * n);
  normals(dr, m * n * d, 200);
  for (size_t k = 0; k < m * n * d; k++) dr[k] = dr[k] * (1.0 + (double)(k % d)) + (double)(k % d);
  jade_mcmc_summary all[5], one;
  CHECK_OK(jade_mcmc_summarize_draws(dr, m, n, d, all));
  for (size_t j = 0; j < d; j++) {
    jade_mcmc_extract(dr, m, n, d, j, col);
    CHECK_OK(jade_mcmc_summarize(col, m, n, &one));
    CHECK(memcmp(&one, &all[j], sizeof one) == 0, "coordinate %zu differs", j);
    CHECK_LT(fabs(one.mean - (double)j), 5 * one.mcse_mean, "coordinate %zu mean %g", j, one.mean);
    CHECK_LT(fabs(one.sd - (1.0 + (double)j)), 5 * one.mcse_sd, "coordinate %zu sd %g", j, one.sd);
    CHECK(jade_test_lt_ok(one.q05, one.q50) && jade_test_lt_ok(one.q50, one.q95), "quantile order");
  }
  free(dr);
  free(col);
}

/* Usability verdict: each criterion alone fails; NaN fails; exactly at the thresholds. */
static void test_health_verdict(void) {
  char msg[512];
  jade_mcmc_health h = {1.005, 450, 420, "sigma_8", "S_8", 0, 4000, 4, 0.0};
  CHECK(jade_mcmc_health_verdict(&h, msg, sizeof msg) == 0 && strstr(msg, "usable"), "good chains: %s", msg);
  h.max_rhat = 1.01;
  CHECK(jade_mcmc_health_verdict(&h, msg, sizeof msg) == 1 && strstr(msg, "R-hat 1.010") && strstr(msg, "sigma_8"),
        "R-hat at 1.01: %s", msg);
  h.max_rhat = NAN;
  CHECK(jade_mcmc_health_verdict(&h, msg, sizeof msg) == 1, "NaN R-hat: %s", msg);
  h.max_rhat = 1.0;
  h.min_ess_tail = 399;
  CHECK(jade_mcmc_health_verdict(&h, msg, sizeof msg) == 1 && strstr(msg, "ESS 399 < 400"), "tail ESS: %s", msg);
  h.min_ess_tail = 400;
  h.divergent = 3;
  CHECK(jade_mcmc_health_verdict(&h, msg, sizeof msg) == 1 && strstr(msg, "3 divergent"), "divergences: %s", msg);
  h.max_rhat = 2.28;
  h.min_ess_bulk = 7;
  CHECK(jade_mcmc_health_verdict(&h, msg, sizeof msg) == 3, "all three: %s", msg);
  printf("health verdict: %s\n", msg);
  /* importance weights: 4 chains x 1000 draws, 350 of weight 1 and the rest 0 have Kish ESS
   * (sum w)^2 / sum w^2 = 350 < 400; 0 means unweighted (not checked) */
  jade_mcmc_health g = {1.005, 450, 420, "sigma_8", "S_8", 0, 4000, 4, 0.0};
  CHECK(jade_mcmc_health_verdict(&g, msg, sizeof msg) == 0, "unweighted: %s", msg);
  double sw = 0, sw2 = 0;
  for (int i = 0; i < 4000; i++) {
    double w = i < 350 ? 1.0 : 0.0;
    sw += w;
    sw2 += w * w;
  }
  g.weight_ess = sw * sw / sw2;
  CHECK(jade_mcmc_health_verdict(&g, msg, sizeof msg) == 1 && strstr(msg, "Kish ESS 350 < 400"), "weights: %s", msg);
  g.weight_ess = 400;
  CHECK(jade_mcmc_health_verdict(&g, msg, sizeof msg) == 0, "Kish ESS at 400: %s", msg);
  g.weight_ess = 4000; /* all weights equal */
  g.divergent = 1;
  CHECK(jade_mcmc_health_verdict(&g, msg, sizeof msg) == 1 && !strstr(msg, "Kish"), "equal weights: %s", msg);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--dump") == 0) {
    dump(argv[2]);
    return 0;
  }
  test_reference();
  test_rhat();
  test_ess_ar1();
  test_misc();
  test_health_verdict();
  TEST_RETURN();
}
