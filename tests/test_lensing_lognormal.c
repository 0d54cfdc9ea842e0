/* Correlated multi-bin log-normal maps (src/lensing/lognormal.c), acceptance criteria:
 * 1. the mean auto and cross power spectra of many maps equal the input C_ell averaged over
 *    the same Fourier modes, within their statistical error, for both variance options;
 * 2. the one-point skewness is the shifted log-normal one given the measured variance,
 *    skew = 3 s/lambda + (s/lambda)^3 (from E[k^3] = 3 var^2/lambda + var^3/lambda^3), and ~0
 *    for a large lambda; E[kappa] = 0 with the theory variance;
 * 3. maps depend only on (seed, stream): byte-identical with 1 and 2 threads;
 * 4. bad inputs are rejected with a message. */
#include "jade/cosmo.h"
#include "jade/lensing.h"
#include "test_util.h"

#include <omp.h>
#include <string.h>

#define NB 3
#define NP 6
#define N_ELL 200
#define NBANDS 8

static double ell_tab[N_ELL], cl_tab[N_ELL * NP];

/* A smooth broken power law of realistic convergence amplitude (l^2 C / 2 pi ~ 1e-4 at
 * l = 1000), three bins of growing amplitude, cross-correlation coefficient 0.9^|i-j|. */
static double base_cl(double l) {
  double x = l / 1000.0;
  return 2e-9 * pow(x, -0.8) / (1.0 + pow(x, 1.5));
}
static const double amp[NB] = {0.3, 0.6, 1.0};

static void make_table(void) {
  for (int k = 0; k < N_ELL; k++) {
    double l = 10.0 * pow(1000.0, (double)k / (N_ELL - 1)); /* 10 .. 1e4 */
    ell_tab[k] = l;
    for (int i = 0; i < NB; i++)
      for (int j = i; j < NB; j++)
        cl_tab[k * NP + jade_pair_index(NB, i, j)] =
            pow(0.9, j - i) * sqrt(amp[i] * amp[j]) * base_cl(l);
  }
}

/* xi(0) = (1/L^2) sum over grid modes k != 0 of C(l_k), computed directly. */
static double xi0(int n, double size_deg, int pair) {
  double L = size_deg * M_PI / 180.0, s = 0.0;
  for (int y = 0; y < n; y++)
    for (int x = 0; x < n; x++) {
      int ky = y <= n / 2 ? y : y - n, kx = x <= n / 2 ? x : x - n;
      if (!kx && !ky) continue;
      s += jade_cl_interp(N_ELL, ell_tab, cl_tab + pair, NP, 2 * M_PI / L * sqrt(kx * kx + ky * ky));
    }
  return s / (L * L);
}

/* Mean power spectra of n_maps maps vs the band-averaged theory. Returns max |z|. */
static double check_power(jade_ln_variance var, const double *lambda, int n_maps, uint64_t seed) {
  const int n = 64;
  const double size = 5.0;
  jade_map_geometry g = {n, size, NB};
  jade_lognormal *ln;
  CHECK_OK(jade_lognormal_create(&g, var, &ln));
  CHECK_OK(jade_lognormal_prepare(ln, N_ELL, ell_tab, cl_tab, lambda));
  /* With these shifts every per-mode matrix is positive definite: nothing is clipped, so the
   * mean power must equal C_ell exactly (the a_ij factor handles the zeroed l = 0 mode). */
  CHECK(jade_lognormal_clipped_fraction(ln) == 0.0, "clipped fraction %g", jade_lognormal_clipped_fraction(ln));
  double L = size * M_PI / 180.0;
  double lmin = 2 * M_PI / L * 0.99, lmax = 2 * M_PI / L * n / 2 * sqrt(2.0) * 1.01;
  static double sum[NP][NBANDS], sum2[NP][NBANDS];
  memset(sum, 0, sizeof sum);
  memset(sum2, 0, sizeof sum2);
  size_t npix = (size_t)n * n;
  float *kappa = malloc(sizeof(float) * npix * NB);
  double ellm[NBANDS], cl[NBANDS];
  long cnt[NBANDS];
  for (int m = 0; m < n_maps; m++) {
    CHECK_OK(jade_lognormal_draw(ln, seed, JADE_STREAM(JADE_RNG_TEST, m), kappa));
    for (int i = 0; i < NB; i++)
      for (int j = i; j < NB; j++) {
        int p = jade_pair_index(NB, i, j);
        CHECK_OK(jade_power_spectrum(n, size, kappa + i * npix, kappa + j * npix, NBANDS, lmin, lmax, 1,
                                     ellm, cl, cnt));
        for (int b = 0; b < NBANDS; b++) {
          sum[p][b] += cl[b];
          sum2[p][b] += cl[b] * cl[b];
        }
      }
  }
  double zmax = 0.0, chi2 = 0.0;
  int dof = 0;
  printf("  %s variance, %d maps of %d^2 x %d bins, lambda = %g %g %g\n",
         var == JADE_LN_VARIANCE_THEORY ? "theory" : "empirical", n_maps, n, NB, lambda[0], lambda[1], lambda[2]);
  for (int i = 0; i < NB; i++)
    for (int j = i; j < NB; j++) {
      int p = jade_pair_index(NB, i, j);
      double th[NBANDS], thl[NBANDS];
      long thc[NBANDS];
      CHECK_OK(jade_power_spectrum_theory(n, size, N_ELL, ell_tab, cl_tab + p, NP, NBANDS, lmin, lmax, 1,
                                          thl, th, thc));
      printf("  pair %d%d  (mean-theory)/sigma_mean per band:", i, j);
      for (int b = 0; b < NBANDS; b++) {
        CHECK(thc[b] == cnt[b], "mode counts differ in band %d: %ld vs %ld", b, thc[b], cnt[b]);
        CHECK_LT(fabs(thl[b] - ellm[b]), 1e-9 * ellm[b], "band ell differ %g %g", thl[b], ellm[b]);
        if (!thc[b]) continue;
        double mean = sum[p][b] / n_maps;
        double sd = sqrt((sum2[p][b] / n_maps - mean * mean) / (n_maps - 1));
        double z = (mean - th[b]) / sd;
        printf(" %+.2f", z);
        jade_test_max_err(&zmax, fabs(z));
        chi2 += z * z;
        dof++;
        CHECK_LT(fabs(z), 4.0, "pair %d%d band %d (ell %.0f, %ld modes): mean %g vs theory %g, sigma_mean %g",
              i, j, b, ellm[b], cnt[b], mean, th[b], sd);
      }
      printf("\n");
    }
  printf("  chi2 = %.1f for %d bands (diagonal errors), max |z| = %.2f\n", chi2, dof, zmax);
  /* Bands are correlated (log-normal mode coupling, auto and cross of the same maps), so this is
   * only a loose guard: a systematic 1-sigma bias everywhere would give chi2 ~ 2 dof. */
  CHECK_LT(chi2, 2.0 * dof + 30.0, "chi2 = %g for %d bands", chi2, dof);
  free(kappa);
  jade_lognormal_free(ln);
  return zmax;
}

/* Pixel skewness vs the shifted log-normal prediction, in batches (error from their scatter).
 * Returns the measured skewness of bin `bin`. */
static double check_skew(jade_ln_variance var, const double *lambda, int bin, int n_batch, int per_batch,
                         double *pred_out) {
  const int n = 64;
  jade_map_geometry g = {n, 5.0, NB};
  jade_lognormal *ln;
  CHECK_OK(jade_lognormal_create(&g, var, &ln));
  CHECK_OK(jade_lognormal_prepare(ln, N_ELL, ell_tab, cl_tab, lambda));
  size_t npix = (size_t)n * n;
  float *kappa = malloc(sizeof(float) * npix * NB);
  float *pool = malloc(sizeof(float) * npix * per_batch);
  double sd_sum = 0, sd_sum2 = 0, sk_sum = 0, mean_sum = 0, mean_sum2 = 0, pr_sum = 0;
  for (int b = 0; b < n_batch; b++) {
    for (int m = 0; m < per_batch; m++) {
      CHECK_OK(jade_lognormal_draw(ln, 99, JADE_STREAM(JADE_RNG_TEST, 1000 + b * per_batch + m), kappa));
      memcpy(pool + m * npix, kappa + bin * npix, sizeof(float) * npix);
    }
    double mu, v, sk;
    jade_moments(pool, npix * per_batch, &mu, &v, &sk);
    double r = sqrt(v) / lambda[bin];
    double pred = 3 * r + r * r * r;
    double d = sk - pred;
    sd_sum += d;
    sd_sum2 += d * d;
    sk_sum += sk;
    pr_sum += pred;
    mean_sum += mu;
    mean_sum2 += mu * mu;
  }
  double dm = sd_sum / n_batch, dse = sqrt((sd_sum2 / n_batch - dm * dm) / (n_batch - 1));
  double mm = mean_sum / n_batch, mse = sqrt((mean_sum2 / n_batch - mm * mm) / (n_batch - 1));
  double skew = sk_sum / n_batch, pred = pr_sum / n_batch;
  printf("  %s variance, bin %d, lambda %g: skewness %.4f, predicted %.4f, difference %+.4f +- %.4f; "
         "mean kappa %.2e +- %.2e\n",
         var == JADE_LN_VARIANCE_THEORY ? "theory" : "empirical", bin, lambda[bin], skew, pred, dm, dse, mm, mse);
  CHECK_LT(fabs(dm), 4 * dse, "skewness %g vs shifted log-normal %g: difference %g > 4 x %g", skew, pred, dm, dse);
  if (var == JADE_LN_VARIANCE_THEORY)
    CHECK_LT(fabs(mm), 4 * mse, "E[kappa] = %g +- %g, expected 0", mm, mse);
  free(pool);
  free(kappa);
  jade_lognormal_free(ln);
  *pred_out = pred;
  return skew;
}

static void check_determinism(void) {
  const int n = 32, n_maps = 6;
  jade_map_geometry g = {n, 4.0, NB};
  const double lambda[NB] = {0.02, 0.04, 0.08};
  size_t sz = (size_t)n * n * NB;
  float *ref = malloc(sizeof(float) * sz * n_maps), *out = malloc(sizeof(float) * sz * n_maps);
  /* Reference: one plan, serial, outside any parallel region. */
  jade_lognormal *ln;
  CHECK_OK(jade_lognormal_create(&g, JADE_LN_VARIANCE_EMPIRICAL, &ln));
  CHECK_OK(jade_lognormal_prepare(ln, N_ELL, ell_tab, cl_tab, lambda));
  for (int m = 0; m < n_maps; m++) CHECK_OK(jade_lognormal_draw(ln, 7, JADE_STREAM(JADE_RNG_FIELD, m), ref + m * sz));
  for (int nt = 1; nt <= 2; nt++) {
    memset(out, 0, sizeof(float) * sz * n_maps);
    int fails = 0;
#pragma omp parallel num_threads(nt) reduction(+ : fails)
    {
      jade_lognormal *mine = NULL;
      if (jade_lognormal_create(&g, JADE_LN_VARIANCE_EMPIRICAL, &mine) ||
          jade_lognormal_prepare(mine, N_ELL, ell_tab, cl_tab, lambda))
        fails++;
#pragma omp for schedule(dynamic, 1)
      for (int m = n_maps - 1; m >= 0; m--)
        if (!fails && jade_lognormal_draw(mine, 7, JADE_STREAM(JADE_RNG_FIELD, m), out + m * sz)) fails++;
      jade_lognormal_free(mine);
    }
    CHECK(fails == 0, "%d failures in the parallel region", fails);
    CHECK(memcmp(ref, out, sizeof(float) * sz * n_maps) == 0, "maps differ with %d thread(s)", nt);
  }
  /* Different streams and seeds give different maps; the same ones give the same map again. */
  CHECK(memcmp(ref, ref + sz, sizeof(float) * sz) != 0, "streams 0 and 1 gave the same map");
  CHECK_OK(jade_lognormal_draw(ln, 8, JADE_STREAM(JADE_RNG_FIELD, 0), out));
  CHECK(memcmp(ref, out, sizeof(float) * sz) != 0, "seeds 7 and 8 gave the same map");
  CHECK_OK(jade_lognormal_draw(ln, 7, JADE_STREAM(JADE_RNG_FIELD, 0), out));
  CHECK(memcmp(ref, out, sizeof(float) * sz) == 0, "redraw of (7, 0) differs");
  jade_lognormal_free(ln);
  free(ref);
  free(out);
  printf("  determinism: %d maps byte-identical serial / 1 thread / 2 threads\n", n_maps);
}

static void check_errors(void) {
  jade_map_geometry g = {32, 4.0, NB};
  jade_lognormal *ln = NULL;
  jade_map_geometry bad = {31, 4.0, NB};
  CHECK(jade_lognormal_create(&bad, JADE_LN_VARIANCE_THEORY, &ln) == JADE_ERR_INVALID, "odd n accepted");
  CHECK(ln == NULL, "out set on failure");
  bad = (jade_map_geometry){32, NAN, NB};
  CHECK(jade_lognormal_create(&bad, JADE_LN_VARIANCE_THEORY, &ln) == JADE_ERR_INVALID, "NaN size accepted");
  CHECK_OK(jade_lognormal_create(&g, JADE_LN_VARIANCE_THEORY, &ln));
  float kappa[32 * 32 * NB];
  CHECK(jade_lognormal_draw(ln, 1, 1, kappa) == JADE_ERR_INVALID, "draw before prepare accepted");
  double lam[NB] = {0.02, 0.0, 0.08};
  CHECK(jade_lognormal_prepare(ln, N_ELL, ell_tab, cl_tab, lam) == JADE_ERR_INVALID, "lambda 0 accepted");
  CHECK(strstr(jade_last_error(), "lambda[1]") != NULL, "message: %s", jade_last_error());
  lam[1] = 0.04;
  double save = cl_tab[5 * NP + 4];
  cl_tab[5 * NP + 4] = NAN;
  CHECK(jade_lognormal_prepare(ln, N_ELL, ell_tab, cl_tab, lam) == JADE_ERR_NUMERIC, "NaN C_ell accepted");
  CHECK(strstr(jade_last_error(), "pair 4") != NULL, "message: %s", jade_last_error());
  cl_tab[5 * NP + 4] = save;
  /* A correlation below -lambda_i lambda_j cannot be log-normal: strongly anti-correlated
   * bins with tiny shifts. */
  static double cl_anti[N_ELL * NP];
  memcpy(cl_anti, cl_tab, sizeof cl_anti);
  for (int k = 0; k < N_ELL; k++) cl_anti[k * NP + jade_pair_index(NB, 0, 2)] *= -1.0;
  double tiny[NB] = {0.002, 0.04, 0.002};
  CHECK(jade_lognormal_prepare(ln, N_ELL, ell_tab, cl_anti, tiny) == JADE_ERR_NUMERIC,
        "correlation below -lambda_i lambda_j accepted");
  printf("  rejected: %s\n", jade_last_error());
  CHECK(isnan(jade_lognormal_gaussian_variance(ln, 0)), "variance reported after failed prepare");
  CHECK_OK(jade_lognormal_prepare(ln, N_ELL, ell_tab, cl_tab, lam));
  CHECK_OK(jade_lognormal_draw(ln, 1, 1, kappa));
  jade_lognormal_free(ln);
  /* n = 10 (n/2 odd: per-bin buffers are padded for alignment) draws finite, repeatable maps. */
  jade_map_geometry g10 = {10, 1.0, NB};
  float k1[10 * 10 * NB], k2[10 * 10 * NB];
  for (int rep = 0; rep < 2; rep++) {
    CHECK_OK(jade_lognormal_create(&g10, JADE_LN_VARIANCE_THEORY, &ln));
    CHECK_OK(jade_lognormal_prepare(ln, N_ELL, ell_tab, cl_tab, lam));
    CHECK_OK(jade_lognormal_draw(ln, 3, 4, rep ? k2 : k1));
    jade_lognormal_free(ln);
  }
  int finite = 1;
  for (int i = 0; i < 10 * 10 * NB; i++) finite &= isfinite(k1[i]);
  CHECK(finite && memcmp(k1, k2, sizeof k1) == 0, "n = 10 maps not finite or not repeatable");
}

int main(void) {
  make_table();
  double t0 = jade_time_now();
  const double lambda[NB] = {0.015, 0.025, 0.04};
  {
    /* The Gaussian variance is ln(1 + xi(0)/lambda^2) up to the zeroed l = 0 mode of P_G. */
    jade_map_geometry g = {64, 5.0, NB};
    jade_lognormal *ln;
    CHECK_OK(jade_lognormal_create(&g, JADE_LN_VARIANCE_THEORY, &ln));
    CHECK_OK(jade_lognormal_prepare(ln, N_ELL, ell_tab, cl_tab, lambda));
    for (int i = 0; i < NB; i++) {
      double x0 = xi0(64, 5.0, jade_pair_index(NB, i, i));
      double vg = log1p(x0 / (lambda[i] * lambda[i]));
      double v = jade_lognormal_gaussian_variance(ln, i);
      printf("  bin %d: xi(0) = %.3e (std %.4f, std/lambda %.3f), var_G = %.5f vs ln(1+xi/lambda^2) = %.5f\n",
             i, x0, sqrt(x0), sqrt(x0) / lambda[i], v, vg);
      CHECK_CLOSE(v, vg, 0.02);
    }
    CHECK(isnan(jade_lognormal_gaussian_variance(ln, NB)), "bin out of range");
    printf("  C_ell scale a_ij (l = 0 mode correction): a_00 = %.6f a_02 = %.6f a_22 = %.6f\n",
           jade_lognormal_cl_scale(ln, 0, 0), jade_lognormal_cl_scale(ln, 0, 2), jade_lognormal_cl_scale(ln, 2, 2));
    for (int i = 0; i < NB; i++)
      for (int j = 0; j < NB; j++) {
        double a = jade_lognormal_cl_scale(ln, i, j);
        CHECK(jade_test_gt_ok(a, 0.99) && jade_test_le_ok(a, 1.0), "a_%d%d = %g", i, j, a);
      }
    /* Extreme shifts (std(kappa) > lambda with 0.9 cross-correlation) make some per-mode
     * matrices indefinite: the clipped fraction reports it. */
    const double extreme[NB] = {0.003, 0.005, 0.008};
    CHECK_OK(jade_lognormal_prepare(ln, N_ELL, ell_tab, cl_tab, extreme));
    double fc = jade_lognormal_clipped_fraction(ln);
    printf("  extreme lambda %g %g %g: clipped fraction of tr P_G = %.2e\n", extreme[0], extreme[1], extreme[2], fc);
    CHECK(jade_test_gt_ok(fc, 0.0) && jade_test_lt_ok(fc, 0.5), "clipped fraction %g", fc);
    jade_lognormal_free(ln);
  }
  printf("power spectra:\n");
  check_power(JADE_LN_VARIANCE_THEORY, lambda, 800, 11);
  check_power(JADE_LN_VARIANCE_EMPIRICAL, lambda, 800, 12);
  const double gauss[NB] = {1e3, 1e3, 1e3};
  check_power(JADE_LN_VARIANCE_THEORY, gauss, 200, 13);
  printf("one-point skewness:\n");
  double pred;
  for (int bin = 0; bin < NB; bin++) {
    double sk = check_skew(JADE_LN_VARIANCE_THEORY, lambda, bin, 20, 10, &pred);
    CHECK_GT(sk, 0.5, "bin %d skewness %g: expected clearly positive", bin, sk);
  }
  check_skew(JADE_LN_VARIANCE_EMPIRICAL, lambda, 0, 20, 10, &pred);
  double sk = check_skew(JADE_LN_VARIANCE_THEORY, gauss, 2, 20, 10, &pred);
  CHECK(jade_test_lt_ok(fabs(sk), 0.02) && jade_test_lt_ok(pred, 1e-3), "large lambda: skewness %g (predicted %g) should be ~0", sk, pred);
  printf("determinism:\n");
  check_determinism();
  printf("errors:\n");
  check_errors();
  printf("total %.2f s\n", jade_time_now() - t0);
  TEST_RETURN();
}
