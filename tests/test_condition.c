/* The condition image and the random masks / noise maps of masked training
 * (include/jade/condition.h): bounds that hold by construction, reproducibility, the layout
 * against a direct computation, and the refusals. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jade/condition.h"
#include "test_util.h"

static void test_random_masks(void) {
  const int n = 32;
  const size_t np = (size_t)n * n;
  float *mask = malloc(np * sizeof *mask), *lnr = malloc(np * sizeof *lnr);
  float *mask2 = malloc(np * sizeof *mask2), *lnr2 = malloc(np * sizeof *lnr2);
  const jade_mask_config mc = {0.7, 0.3, 0.2, 0.25};
  /* one hole can overshoot the drawn fraction by at most its area: pi (3 n/32 + 1)^2 pixels
   * (the +1: pixel centres within r of the centre, a disc of radius r + 1/sqrt 2 covers them) */
  const double r_max = 3.0 * n / 32.0, overshoot = M_PI * (r_max + 1) * (r_max + 1) / (double)np;
  const int n_maps = 400;
  int n_masked = 0;
  double sum_frac = 0, worst_ln = 0, max_ln_seen = 0;
  for (int k = 0; k < n_maps; k++) {
    const double f = jade_random_mask_noise(&mc, n, 7, 99, (uint64_t)k * JADE_MASK_DRAWS, mask, lnr);
    size_t zeros = 0;
    int binary = 1;
    for (size_t i = 0; i < np; i++) {
      zeros += mask[i] == 0;
      binary &= mask[i] == 0 || mask[i] == 1;
      jade_test_max_err(&worst_ln, fabs(lnr[i]));
    }
    CHECK(binary, "map %d: mask values other than 0 and 1", k);
    CHECK_ABS(f, (double)zeros / (double)np, 1e-12);
    CHECK_LE(f, mc.mask_max + overshoot, "map %d: masked fraction", k);
    n_masked += zeros > 0;
    sum_frac += f;
    if (worst_ln > max_ln_seen) max_ln_seen = worst_ln;
    /* the same numbers give the same bytes */
    jade_random_mask_noise(&mc, n, 7, 99, (uint64_t)k * JADE_MASK_DRAWS, mask2, lnr2);
    CHECK(!memcmp(mask, mask2, np * sizeof *mask) && !memcmp(lnr, lnr2, np * sizeof *lnr), "map %d not reproducible", k);
  }
  /* |ln ratio| <= noise_ln_scale + noise_ln_field by construction (float rounding: 1e-6) */
  CHECK_LE(worst_ln, mc.noise_ln_scale + mc.noise_ln_field + 1e-6, "largest |ln noise ratio|");
  /* a masked map is drawn with probability 0.7 (a map whose drawn fraction rounds to no pixel
   * stays unmasked: fraction < 1 / np, probability ~ 1 / (np mask_max)); 400 Bernoulli
   * draws: 5 sigma = 5 sqrt(0.7 0.3 / 400) = 0.115 */
  CHECK_IN((double)n_masked / n_maps, 0.7 - 0.115, 0.7 + 0.115, "fraction of masked maps");
  /* mean masked fraction: 0.7 E[U(0, 0.3)] = 0.105 plus at most the overshoot of one hole;
   * sd of one map's fraction <= 0.3 + overshoot, 5 sigma over 400 maps */
  const double mean_frac = sum_frac / n_maps, tol = 5 * (0.3 + overshoot) / sqrt((double)n_maps);
  CHECK_IN(mean_frac, 0.105 - tol, 0.105 + overshoot + tol, "mean masked fraction");
  /* the field reaches its amplitude: some map has |ln ratio| above half the bound */
  CHECK_GT(max_ln_seen, 0.5 * (mc.noise_ln_scale + mc.noise_ln_field), "noise variation never large");

  /* no masks, no noise variation: all observed, ratio exactly 0 */
  const jade_mask_config none = {0, 0.3, 0, 0};
  const double f0 = jade_random_mask_noise(&none, n, 7, 99, 0, mask, lnr);
  int ones = 1, zero_ln = 1;
  for (size_t i = 0; i < np; i++) {
    ones &= mask[i] == 1;
    zero_ln &= lnr[i] == 0;
  }
  CHECK(f0 == 0 && ones && zero_ln, "mask_prob = 0 and no noise variation must give a full map at the survey noise");
  free(mask);
  free(lnr);
  free(mask2);
  free(lnr2);
}

static void test_condition_layout(void) {
  const int B = 2, n = 8;
  const size_t np = (size_t)n * n, nx = (size_t)B * np;
  jade_norm norm;
  memset(&norm, 0, sizeof norm);
  norm.n_bins = B;
  norm.n_pix = n;
  norm.map_std[0] = 0.01;
  norm.map_std[1] = 0.02;
  norm.noise[0] = 0.005;
  norm.noise[1] = 0.006;
  norm.masked = 1;
  norm.noise_ln_max = 0.3;
  float *d = malloc(nx * sizeof *d), *mask = malloc(nx * sizeof *mask), *sigma = malloc(nx * sizeof *sigma);
  float *cond = malloc(3 * nx * sizeof *cond);
  for (size_t k = 0; k < nx; k++) {
    const int i = (int)(k / np);
    d[k] = (float)(0.01 * sin(0.37 * (double)k));
    mask[k] = (k % 7 == 3) ? 0.0f : 1.0f;
    sigma[k] = (float)(norm.noise[i] * exp(0.25 * cos(0.11 * (double)k)));
    if (mask[k] == 0) d[k] = NAN; /* masked pixels may hold anything */
  }
  CHECK_OK(jade_condition_build(&norm, d, mask, sigma, NULL, 1, "test", cond));
  double err = 0;
  for (size_t k = 0; k < nx; k++) {
    const int i = (int)(k / np), m = mask[k] == 1;
    const double want_d = m ? (double)d[k] / norm.map_std[i] : 0.0;
    const double want_r = m ? log((double)sigma[k] / norm.noise[i]) : 0.0;
    jade_test_max_err(&err, fabs(cond[k] - want_d) / (fabs(want_d) + 1e-30) * (want_d != 0) + fabs(cond[k] - want_d) * (want_d == 0));
    jade_test_max_err(&err, fabs(cond[nx + k] - (1.0 - m)));
    jade_test_max_err(&err, fabs(cond[2 * nx + k] - want_r));
  }
  /* float32 rounding of one product / log: a few ulp of 1 */
  CHECK_LE(err, 1e-6, "masked condition layout");

  /* uniform noise: per-bin noise[] where there is no noise map; the training noise by default */
  const double obs_noise[2] = {0.005 * exp(0.1), 0.006 * exp(-0.2)};
  CHECK_OK(jade_condition_build(&norm, d, mask, NULL, obs_noise, 1, "test", cond));
  err = 0;
  for (size_t k = 0; k < nx; k++) {
    const int i = (int)(k / np), m = mask[k] == 1;
    jade_test_max_err(&err, fabs(cond[2 * nx + k] - (m ? (i ? -0.2 : 0.1) : 0.0)));
  }
  CHECK_LE(err, 1e-6, "ln noise ratio from per-bin noise");
  CHECK_OK(jade_condition_build(&norm, d, NULL, NULL, NULL, 1, "test", cond));
  err = 0;
  for (size_t k = nx; k < 3 * nx; k++) jade_test_max_err(&err, fabs(cond[k]));
  CHECK(err == 0, "a full map at the training noise must give zero mask and noise channels (got %g)", err);

  /* refusals: noise beyond the training range (unless not checked), non-positive noise */
  sigma[5] = (float)(norm.noise[0] * exp(0.5));
  CHECK(jade_condition_build(&norm, d, mask, sigma, NULL, 1, "obs.fits", cond) != JADE_OK, "noise ratio e^0.5 > e^0.3 accepted");
  CHECK(strstr(jade_last_error(), "obs.fits") && strstr(jade_last_error(), "training noise"), "message: %s", jade_last_error());
  CHECK_OK(jade_condition_build(&norm, d, mask, sigma, NULL, 0, "obs.fits", cond));
  sigma[5] = 0;
  CHECK(jade_condition_build(&norm, d, mask, sigma, NULL, 0, "obs.fits", cond) != JADE_OK, "zero noise accepted");
  sigma[5] = NAN;
  CHECK(jade_condition_build(&norm, d, mask, sigma, NULL, 0, "obs.fits", cond) != JADE_OK, "NaN noise accepted");
  /* ... but at a masked pixel the noise map is not used */
  mask[5] = 0;
  CHECK_OK(jade_condition_build(&norm, d, mask, sigma, NULL, 1, "obs.fits", cond));

  /* a convergence-only model: masked pixels refused, full maps = d / map_std */
  norm.masked = 0;
  CHECK(jade_condition_build(&norm, d, mask, NULL, NULL, 1, "obs.fits", cond) != JADE_OK, "mask accepted by a kappa model");
  CHECK(strstr(jade_last_error(), "model.condition = masked") != NULL, "message: %s", jade_last_error());
  for (size_t k = 0; k < nx; k++) d[k] = (float)k;
  CHECK_OK(jade_condition_build(&norm, d, NULL, NULL, NULL, 1, "obs.fits", cond));
  err = 0;
  for (size_t k = 0; k < nx; k++) jade_test_max_err(&err, fabs(cond[k] - (double)k / norm.map_std[k / np]) / (1.0 + k / norm.map_std[k / np]));
  CHECK_LE(err, 1e-6, "kappa condition");
  CHECK(jade_condition_channels(&norm) == B, "channels");
  norm.masked = 1;
  CHECK(jade_condition_channels(&norm) == 3 * B, "masked channels");
  free(d);
  free(mask);
  free(sigma);
  free(cond);
}

int main(void) {
  test_random_masks();
  test_condition_layout();
  if (jade_test_failures) {
    fprintf(stderr, "%d check(s) failed\n", jade_test_failures);
    return 1;
  }
  printf("test_condition: all checks passed\n");
  return 0;
}
