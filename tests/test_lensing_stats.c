/* Map statistics (src/lensing/stats.c):
 * 1. moments: exact values on small samples; exponential samples (mean 1, var 1, skew 2) within
 *    their batch-estimated error;
 * 2. histogram: exact counts and edge rules; Gaussian samples vs the normal CDF (chi-square);
 * 3. add_noise: offsets address the same Philox sequence; mean/variance of the noise;
 * 4. power spectrum: white noise gives sigma^2 * pixel solid angle in every band (unbiased,
 *    log and linear bands); a single cosine gives exactly L^2 / (2 count) in its band and 0
 *    elsewhere; cross-spectrum symmetries; the theory band average of a constant C_ell is that
 *    constant with the same modes; all N^2 - 1 non-zero modes are counted once;
 * 5. C_ell interpolation exact for power laws; errors. */
#include "jade/lensing.h"
#include "test_util.h"

#include <string.h>

static void check_moments(void) {
  const float bern[4] = {0, 0, 0, 1};
  double mu, v, sk;
  jade_moments(bern, 4, &mu, &v, &sk);
  CHECK_CLOSE(mu, 0.25, 1e-12);
  CHECK_CLOSE(v, 3.0 / 16.0, 1e-12);
  CHECK_CLOSE(sk, 2.0 / sqrt(3.0), 1e-12); /* Bernoulli(p): (1 - 2p) / sqrt(p (1 - p)) */
  const float sym[5] = {-2, -1, 0, 1, 2};
  jade_moments(sym, 5, &mu, &v, &sk);
  CHECK(jade_test_lt_ok(fabs(mu), 1e-15) && jade_test_lt_ok(fabs(sk), 1e-15), "symmetric sample: mean %g skew %g", mu, sk);
  CHECK_CLOSE(v, 2.0, 1e-12);
  const float cst[3] = {4, 4, 4};
  jade_moments(cst, 3, &mu, &v, &sk);
  CHECK(mu == 4.0 && v == 0.0 && sk == 0.0, "constant: %g %g %g", mu, v, sk);
  jade_moments(cst, 0, &mu, &v, &sk);
  CHECK(isnan(mu) && isnan(v) && isnan(sk), "empty sample should give NaN");
  /* Exponential(1): mean 1, variance 1, skewness 2. 20 batches of 20000. */
  enum { NBATCH = 20, PER = 20000 };
  float *x = malloc(sizeof(float) * PER);
  double *u = malloc(sizeof(double) * PER);
  double s[3] = {0}, s2[3] = {0};
  for (int b = 0; b < NBATCH; b++) {
    jade_rng_uniform_fill(3, JADE_STREAM(JADE_RNG_TEST, 1), (uint64_t)b * PER, PER, u);
    for (int i = 0; i < PER; i++) x[i] = (float)(-log(u[i]));
    jade_moments(x, PER, &mu, &v, &sk);
    double d[3] = {mu - 1, v - 1, sk - 2};
    for (int k = 0; k < 3; k++) {
      s[k] += d[k];
      s2[k] += d[k] * d[k];
    }
  }
  const char *name[3] = {"mean", "variance", "skewness"};
  for (int k = 0; k < 3; k++) {
    double m = s[k] / NBATCH, se = sqrt((s2[k] / NBATCH - m * m) / (NBATCH - 1));
    printf("  exponential %s: offset %+.4f +- %.4f\n", name[k], m, se);
    CHECK_LT(fabs(m), 4 * se, "exponential %s offset %g +- %g", name[k], m, se);
  }
  free(x);
  free(u);
}

static void check_histogram(void) {
  const float x[9] = {-1, 0, 0.5f, 1, 1.5f, 2, 2, 3, NAN};
  const double edges[3] = {0, 1, 2};
  double c[2];
  jade_histogram(x, 9, 3, edges, c);
  CHECK(c[0] == 2 && c[1] == 4, "counts %g %g (expected 2 4: [0,1) and [1,2] with the last edge included)", c[0], c[1]);
  /* 100000 standard normals in 12 bins on [-3, 3] vs the normal CDF. */
  enum { N = 100000, NB = 12 };
  double *z = malloc(sizeof(double) * N);
  float *f = malloc(sizeof(float) * N);
  jade_rng_normal_fill(4, JADE_STREAM(JADE_RNG_TEST, 2), 0, N, z);
  for (int i = 0; i < N; i++) f[i] = (float)z[i];
  double e[NB + 1], cnt[NB], chi2 = 0, tot = 0;
  for (int b = 0; b <= NB; b++) e[b] = -3.0 + 6.0 * b / NB;
  jade_histogram(f, N, NB + 1, e, cnt);
  for (int b = 0; b < NB; b++) {
    double p = 0.5 * (erfc(-e[b + 1] / sqrt(2.0)) - erfc(-e[b] / sqrt(2.0)));
    double ex = N * p;
    chi2 += (cnt[b] - ex) * (cnt[b] - ex) / ex;
    tot += cnt[b];
  }
  double inside = N * 0.5 * (erfc(-3 / sqrt(2.0)) - erfc(3 / sqrt(2.0)));
  printf("  Gaussian histogram: chi2 = %.1f for %d bins; %g counted (expected %.0f)\n", chi2, NB, tot, inside);
  CHECK_LT(chi2, NB + 4 * sqrt(2.0 * NB), "chi2 %g", chi2);
  CHECK_LT(fabs(tot - inside), 4 * sqrt(N * 0.0027), "count inside [-3,3] %g vs %g", tot, inside);
  free(z);
  free(f);
}

static void check_noise(void) {
  enum { N = 100000 };
  float *a = calloc(N, sizeof(float)), *b = calloc(N, sizeof(float));
  const double sigma = 0.05;
  jade_add_noise(a, N, sigma, 9, 17, 1000);
  jade_add_noise(b, 30001, sigma, 9, 17, 1000);
  jade_add_noise(b + 30001, N - 30001, sigma, 9, 17, 1000 + 30001);
  CHECK(memcmp(a, b, sizeof(float) * N) == 0, "noise depends on how the range was split");
  double mu, v;
  jade_moments(a, N, &mu, &v, NULL);
  printf("  noise: mean %.2e, std %.5f (sigma %g)\n", mu, sqrt(v), sigma);
  CHECK_LT(fabs(mu), 4 * sigma / sqrt(N), "noise mean %g", mu);
  CHECK_LT(fabs(v / (sigma * sigma) - 1), 4 * sqrt(2.0 / N), "noise variance %g", v);
  memcpy(b, a, sizeof(float) * N);
  jade_add_noise(b, N, 0.0, 9, 18, 0);
  CHECK(memcmp(a, b, sizeof(float) * N) == 0, "sigma = 0 changed the map");
  free(a);
  free(b);
}

static void check_power(void) {
  const int n = 64;
  const double size = 4.0, L = size * M_PI / 180.0, dl = 2 * M_PI / L;
  const size_t npix = (size_t)n * n;
  float *a = malloc(sizeof(float) * npix), *b = malloc(sizeof(float) * npix);
  enum { NB = 10 };
  double ell[NB], cl[NB], ell2[NB], cl2[NB];
  long cnt[NB], cnt2[NB];
  double lmin = dl, lmax = dl * n / 2 * sqrt(2.0);
  /* (a) white noise: C = sigma^2 (L/N)^2 on every mode. */
  const double sigma = 0.02, cw = sigma * sigma * (L / n) * (L / n);
  for (int lin = 0; lin <= 1; lin++) {
    double s[NB] = {0}, s2[NB] = {0};
    const int n_maps = 200;
    for (int m = 0; m < n_maps; m++) {
      memset(a, 0, sizeof(float) * npix);
      jade_add_noise(a, npix, sigma, 6, JADE_STREAM(JADE_RNG_TEST, 100 + m), 0);
      CHECK_OK(jade_power_spectrum(n, size, a, a, NB, lmin, lmax, !lin, ell, cl, cnt));
      for (int k = 0; k < NB; k++) {
        s[k] += cl[k] / cw;
        s2[k] += cl[k] / cw * cl[k] / cw;
      }
    }
    double zmax = 0;
    for (int k = 0; k < NB; k++) {
      double m = s[k] / n_maps, se = sqrt((s2[k] / n_maps - m * m) / (n_maps - 1));
      double z = (m - 1) / se;
      jade_test_max_err(&zmax, fabs(z));
      CHECK_LT(fabs(z), 4, "%s band %d (ell %.0f, %ld modes): C / C_white = %g +- %g",
            lin ? "linear" : "log", k, ell[k], cnt[k], m, se);
      CHECK(jade_test_ge_ok(ell[k], lmin) && jade_test_le_ok(ell[k], lmax), "band ell %g outside range", ell[k]);
    }
    printf("  white noise, %s bands: mean C / (sigma^2 A_pix) within %.2f sigma of 1 in all %d bands\n",
           lin ? "linear" : "log", zmax, NB);
  }
  /* (b) one cosine of wave vector (3, 4): |k| = 5 fundamentals. */
  for (int y = 0; y < n; y++)
    for (int x = 0; x < n; x++) a[y * n + x] = (float)cos(2 * M_PI * (3 * x + 4 * y) / n);
  CHECK_OK(jade_power_spectrum(n, size, a, a, NB, lmin, lmax, 1, ell, cl, cnt));
  double l0 = 5 * dl;
  for (int k = 0; k < NB; k++) {
    double lo = lmin * pow(lmax / lmin, (double)k / NB), hi = lmin * pow(lmax / lmin, (double)(k + 1) / NB);
    if (l0 >= lo && l0 < hi) {
      CHECK_CLOSE(cl[k], L * L / (2.0 * cnt[k]), 1e-6);
      printf("  cosine: band %d (%ld modes) C = %.6e, exact L^2/(2 count) = %.6e\n", k, cnt[k], cl[k],
             L * L / (2.0 * cnt[k]));
    } else {
      CHECK_LT(fabs(cl[k]), 1e-12 * L * L, "cosine leaked into band %d: %g", k, cl[k]);
    }
  }
  /* (c) cross-spectrum algebra. */
  double *zz = malloc(sizeof(double) * npix);
  jade_rng_normal_fill(8, 1, 0, npix, zz);
  for (size_t i = 0; i < npix; i++) a[i] = (float)zz[i];
  jade_rng_normal_fill(8, 2, 0, npix, zz);
  for (size_t i = 0; i < npix; i++) b[i] = (float)(0.5 * a[i] + zz[i]);
  CHECK_OK(jade_power_spectrum(n, size, a, b, NB, lmin, lmax, 1, ell, cl, cnt));
  CHECK_OK(jade_power_spectrum(n, size, b, a, NB, lmin, lmax, 1, ell2, cl2, cnt2));
  for (int k = 0; k < NB; k++) CHECK(cl[k] == cl2[k] && cnt[k] == cnt2[k], "P(a,b) != P(b,a) in band %d", k);
  CHECK_OK(jade_power_spectrum(n, size, a, a, NB, lmin, lmax, 1, ell, cl, cnt));
  for (size_t i = 0; i < npix; i++) b[i] = -2.0f * a[i];
  CHECK_OK(jade_power_spectrum(n, size, a, b, NB, lmin, lmax, 1, ell2, cl2, cnt2));
  for (int k = 0; k < NB; k++) CHECK_CLOSE(cl2[k], -2.0 * cl[k], 1e-12);
  /* (d) theory band average of a constant C_ell, and the mode census. */
  const double tl[3] = {1.0, 100.0, 1e5}, tc[3] = {7e-9, 7e-9, 7e-9};
  CHECK_OK(jade_power_spectrum_theory(n, size, 3, tl, tc, 1, NB, lmin, lmax, 1, ell2, cl2, cnt2));
  for (int k = 0; k < NB; k++) {
    CHECK(cnt2[k] == cnt[k] && ell2[k] == ell[k], "theory band %d: %ld modes vs %ld", k, cnt2[k], cnt[k]);
    if (cnt2[k]) CHECK_CLOSE(cl2[k], 7e-9, 1e-12);
  }
  long total = 0;
  CHECK_OK(jade_power_spectrum(n, size, a, a, 7, 0.0, lmax * 1.0001, 0, ell, cl, cnt));
  for (int k = 0; k < 7; k++) total += cnt[k];
  CHECK(total == (long)npix - 1, "%ld modes counted, expected N^2 - 1 = %zu", total, npix - 1);
  /* Parseval: sum_{k != 0} |A_k|^2 = N^4 var, so sum over all modes of C_k = L^2 var. */
  double mu, v, sum = 0;
  jade_moments(a, npix, &mu, &v, NULL);
  for (int k = 0; k < 7; k++) sum += cl[k] * cnt[k];
  CHECK_CLOSE(sum / (L * L), v, 1e-9);
  /* (e) errors. */
  CHECK(jade_power_spectrum(63, size, a, a, NB, lmin, lmax, 1, ell, cl, cnt) == JADE_ERR_INVALID, "odd n");
  CHECK(jade_power_spectrum(n, size, a, a, NB, 0.0, lmax, 1, ell, cl, cnt) == JADE_ERR_INVALID, "log from 0");
  CHECK(jade_power_spectrum(n, size, a, a, NB, lmax, lmin, 0, ell, cl, cnt) == JADE_ERR_INVALID, "reversed");
  b[77] = INFINITY;
  CHECK(jade_power_spectrum(n, size, a, b, NB, lmin, lmax, 1, ell, cl, cnt) == JADE_ERR_NUMERIC, "Inf pixel");
  printf("  rejected: %s\n", jade_last_error());
  free(zz);
  free(a);
  free(b);
}

static void check_interp(void) {
  double l[6], c[12];
  for (int k = 0; k < 6; k++) {
    l[k] = 10.0 * pow(3.0, k);
    c[2 * k] = 3e-9 * pow(l[k] / 100.0, -1.3);   /* positive power law */
    c[2 * k + 1] = -2e-10 * pow(l[k] / 100.0, 0.7); /* negative power law */
  }
  double worst = 0;
  for (double x = 10.0; x <= l[5]; x *= 1.137) {
    double p = jade_cl_interp(6, l, c, 2, x), q = jade_cl_interp(6, l, c + 1, 2, x);
    jade_test_max_err(&worst, fabs(p / (3e-9 * pow(x / 100.0, -1.3)) - 1));
    jade_test_max_err(&worst, fabs(q / (-2e-10 * pow(x / 100.0, 0.7)) - 1));
  }
  CHECK_LT(worst, 1e-12, "power laws not exact under log-log interpolation: %g", worst);
  CHECK(jade_cl_interp(6, l, c, 2, 1.0) == c[0], "below the table: hold the first value");
  CHECK(jade_cl_interp(6, l, c, 2, l[5] * 1.01) == 0.0, "above the table: zero");
  CHECK(jade_cl_interp(6, l, c, 2, l[5]) == c[10], "last node");
  /* Sign change: linear in ln(ell). */
  const double sl[2] = {10, 1000}, sc[2] = {-1, 3};
  CHECK_CLOSE(jade_cl_interp(2, sl, sc, 1, 100.0), 1.0, 1e-12);
}

int main(void) {
  printf("moments:\n");
  check_moments();
  printf("histogram:\n");
  check_histogram();
  printf("noise:\n");
  check_noise();
  printf("power spectra:\n");
  check_power();
  check_interp();
  TEST_RETURN();
}
