/* The simulator end to end at the fiducial cosmology of the small preset (32 x 32 pixels over
 * 5 x 5 deg, 5 bins, halofit C_ell and jade's own lambda): the mean auto and cross power
 * spectra of 300 maps agree with the input C_ell (band-averaged over the same Fourier modes)
 * within their statistical error, the maps have zero mean, and their third moment is the
 * shifted log-normal's, 3 var^2/lambda + var^3/lambda^3, not the Gaussian's 0. Also: the prior
 * draws follow the configured priors (moments and truncation). */
#include <math.h>
#include <string.h>

#include "jade/config.h"
#include "jade/sim.h"
#include "test_util.h"

enum { NSIM = 300, NBANDS = 8 };

static void load(jade_sim_config *sc) {
  jade_config *cfg;
  CHECK_OK(jade_config_create(&cfg));
  CHECK_OK(jade_config_load_preset(cfg, "small"));
  CHECK_OK(jade_sim_config_read(cfg, sc));
  jade_config_free(cfg);
}

static void test_power_and_pdf(void) {
  jade_sim_config sc;
  load(&sc);
  jade_simulator *sim;
  CHECK_OK(jade_simulator_create(&sc, &sim));
  const int nb = sc.geom.n_bins, n = sc.geom.n_pix, np = jade_n_pairs(nb);
  const size_t npix = (size_t)n * n;
  const double L = sc.geom.size_deg * M_PI / 180;
  const double lmin = 2 * M_PI / L, lmax = M_PI * n / L; /* fundamental mode .. Nyquist */
  float *k = malloc(sizeof(float) * nb * npix);
  static double sum[15][NBANDS], sum2[15][NBANDS];
  double m1[5] = {0}, m1s[5] = {0}, m2[5] = {0}, m3[5] = {0}, m3s[5] = {0}, lambda[5];
  double theta[JADE_N_THETA];
  jade_theta_from_params(&sc.cosmo, theta);
  for (int s = 0; s < NSIM; s++) {
    CHECK_OK(jade_simulator_run(sim, theta, 11, (uint64_t)s, k, lambda, NULL, NULL));
    for (int i = 0; i < nb; i++)
      for (int j = i; j < nb; j++) {
        double ell[NBANDS], cl[NBANDS];
        long cnt[NBANDS];
        CHECK_OK(jade_power_spectrum(n, sc.geom.size_deg, k + i * npix, k + j * npix, NBANDS, lmin, lmax, 1, ell,
                                     cl, cnt));
        int p = jade_pair_index(nb, i, j);
        for (int b = 0; b < NBANDS; b++) {
          sum[p][b] += cl[b];
          sum2[p][b] += cl[b] * cl[b];
        }
      }
    for (int i = 0; i < nb; i++) {
      double a = 0, b2 = 0, c3 = 0;
      for (size_t q = 0; q < npix; q++) {
        double x = k[i * npix + q];
        a += x;
        b2 += x * x;
        c3 += x * x * x;
      }
      a /= npix;
      b2 /= npix;
      c3 /= npix;
      m1[i] += a;
      m1s[i] += a * a;
      m2[i] += b2;
      m3[i] += c3;
      m3s[i] += c3 * c3;
    }
  }
  /* Theory: the C_ell table the simulator used (same cosmology every run). */
  const double *tell, *tcl;
  int nell = jade_simulator_cl_table(sim, &tell, &tcl);
  double chi2 = 0, zmax = 0;
  int nz = 0;
  for (int p = 0; p < np; p++) {
    double ell[NBANDS], th[NBANDS];
    long cnt[NBANDS];
    CHECK_OK(jade_power_spectrum_theory(n, sc.geom.size_deg, nell, tell, tcl + p, (size_t)np, NBANDS, lmin, lmax, 1,
                                        ell, th, cnt));
    for (int b = 0; b < NBANDS; b++) {
      if (!cnt[b]) continue;
      double mean = sum[p][b] / NSIM, var = sum2[p][b] / NSIM - mean * mean;
      double z = (mean - th[b]) / sqrt(var / (NSIM - 1));
      chi2 += z * z;
      nz++;
      jade_test_max_err(&zmax, fabs(z));
      CHECK_LT(fabs(z), 4.5, "pair %d band %d (ell %.0f): mean %.4g vs theory %.4g, z = %.2f", p, b, ell[b], mean, th[b], z);
    }
  }
  printf("power spectra: %d bands (15 pairs), chi2 = %.1f, max |z| = %.2f\n", nz, chi2, zmax);
  /* Bands are correlated across pairs, so chi2 is only loosely chi2_nz; a 3% amplitude error
   * would give chi2 in the thousands. */
  CHECK_LT(chi2, 2.0 * nz, "chi2 %.1f for %d bands", chi2, nz);
  for (int i = 0; i < nb; i++) {
    double mean = m1[i] / NSIM, se_mean = sqrt((m1s[i] / NSIM - mean * mean) / (NSIM - 1));
    double var = m2[i] / NSIM, third = m3[i] / NSIM;
    double se3 = sqrt((m3s[i] / NSIM - third * third) / (NSIM - 1));
    double lam = lambda[i];
    /* Shifted log-normal kappa = lambda (exp(g - s^2/2) - 1): E[k^3] = 3 var^2/lambda + var^3/lambda^3. */
    double pred = 3 * var * var / lam + var * var * var / (lam * lam * lam);
    printf("bin %d: lambda %.4f, std %.4f, <k> = %.2e +- %.1e, <k^3> = %.3e +- %.1e (log-normal %.3e)\n", i, lam,
           sqrt(var), mean, se_mean, third, se3, pred);
    CHECK_LT(fabs(mean), 4.5 * se_mean, "bin %d mean %g (se %g)", i, mean, se_mean);
    CHECK_LT(fabs(third - pred), 4.5 * se3 + 0.02 * pred, "bin %d third moment %g vs %g (se %g)", i, third, pred, se3);
    CHECK_GT(third, 8 * se3, "bin %d: no detectable skewness (%g, se %g)", i, third, se3);
  }
  free(k);
  jade_simulator_free(sim);
}

static void test_prior(void) {
  jade_sim_config sc;
  load(&sc);
  enum { N = 20000 };
  double s[JADE_N_THETA] = {0}, s2[JADE_N_THETA] = {0};
  double wmin = 0, wmax = -3;
  for (int i = 0; i < N; i++) {
    double th[JADE_N_THETA];
    jade_prior_draw(&sc, 3, (uint64_t)i, th);
    for (int j = 0; j < JADE_N_THETA; j++) {
      s[j] += th[j];
      s2[j] += th[j] * th[j];
    }
    wmin = jade_test_min(wmin, th[5]);
    wmax = jade_test_max(wmax, th[5]);
    CHECK_GE(th[0], 0, "Omega_c %g below its truncation", th[0]);
    CHECK(isfinite(jade_prior_logpdf(&sc, th)), "draw outside the prior support");
  }
  CHECK(jade_test_ge_ok(wmin, -2) && jade_test_le_ok(wmax, -0.3), "w_0 outside [-2, -0.3]: %g %g", wmin, wmax);
  /* Normal priors: mean and sd within 5 standard errors. */
  for (int j = 1; j <= 4; j++) {
    double m = s[j] / N, sd = sqrt(s2[j] / N - m * m);
    CHECK_LT(fabs(m - sc.prior[j].mean), 5 * sc.prior[j].sd / sqrt(N), "%s mean %g", jade_theta_names[j], m);
    CHECK_LT(fabs(sd / sc.prior[j].sd - 1), 5 * sqrt(0.5 / N), "%s sd %g", jade_theta_names[j], sd);
  }
  /* Truncated normal w_0 ~ TN(-1, 0.9; [-2, -0.3]): mean from the closed form
   * mu + sd (phi(a) - phi(b)) / (Phi(b) - Phi(a)). */
  double a = (-2 + 1) / 0.9, b = (-0.3 + 1) / 0.9;
  double phia = exp(-a * a / 2) / sqrt(2 * M_PI), phib = exp(-b * b / 2) / sqrt(2 * M_PI);
  double mass = 0.5 * (erf(b / sqrt(2)) - erf(a / sqrt(2)));
  double want = -1 + 0.9 * (phia - phib) / mass;
  CHECK_LT(fabs(s[5] / N - want), 0.01, "w_0 mean %g vs truncated-normal %g", s[5] / N, want);
  double outside[JADE_N_THETA] = {0.25, 0.05, 0.8, 0.7, 0.96, -2.5};
  CHECK(isinf(jade_prior_logpdf(&sc, outside)), "w_0 = -2.5 should be outside the prior");
}

int main(void) {
  test_prior();
  test_power_and_pdf();
  TEST_RETURN();
}
