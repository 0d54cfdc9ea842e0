/* Score-model training: the DSM gradient against central finite differences, a save/load round
 * trip (bit-identical scores), the pop-cosmos parameter transform (round trip and its Jacobian
 * against finite differences), and a trained model's PF-ODE density of a correlated Gaussian
 * against the exact one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jade/sed.h"
#include "test_util.h"

static void test_gradient(void) {
  for (int a = 0; a < 2; a++)
    for (int ns = 0; ns < 2; ns++) {
      jade_sed_score_config cfg = {.dim = 3, .n_cond = 0, .n_freq = 4, .n_hidden = 2, .width = 16,
                                   .act = a ? JADE_ACT_TANH : JADE_ACT_SILU, .no_sigma = ns, .freq_std = 4.0};
      jade_sde_default(&cfg.sde, a ? JADE_SDE_VP : JADE_SDE_VE);
      jade_sed_score *s;
      CHECK_OK(jade_sed_score_create(&cfg, 2, &s));
      enum { B = 6 };
      double x0[B * 3], t[B], nz[B * 3];
      for (int i = 0; i < B * 3; i++) {
        x0[i] = jade_rng_normal(1, JADE_STREAM(JADE_RNG_TEST, 10), (uint64_t)i);
        nz[i] = jade_rng_normal(1, JADE_STREAM(JADE_RNG_TEST, 11), (uint64_t)i);
      }
      for (int i = 0; i < B; i++) t[i] = 0.05 + 0.15 * i;
      size_t P = jade_sed_score_n_params(s);
      double *p = malloc(P * sizeof(double)), *g = malloc(P * sizeof(double)), loss;
      jade_sed_score_get_params(s, p);
      CHECK_OK(jade_dsm_loss(s, B, x0, t, nz, &loss, g));
      double emax = 0;
      for (size_t q = 0; q < P; q += 7) {
        double keep = p[q], h = 1e-6, lp, lm;
        p[q] = keep + h;
        jade_sed_score_set_params(s, p);
        CHECK_OK(jade_dsm_loss(s, B, x0, t, nz, &lp, NULL));
        p[q] = keep - h;
        jade_sed_score_set_params(s, p);
        CHECK_OK(jade_dsm_loss(s, B, x0, t, nz, &lm, NULL));
        p[q] = keep;
        double fd = (lp - lm) / (2 * h);
        /* central differences: truncation ~h^2, rounding ~1e-16 loss / h */
        double e = fabs(fd - g[q]) / (1e-6 + fabs(fd));
        if (!(e <= emax)) emax = isnan(e) ? INFINITY : e;
      }
      jade_sed_score_set_params(s, p);
      printf("DSM gradient (%s, %s, no_sigma %d): max rel. error vs finite differences %.2g (loss %.4f)\n",
             a ? "tanh" : "silu", jade_sde_name(cfg.sde.type), ns, emax, loss);
      CHECK(emax < 1e-5, "DSM gradient");
      free(p);
      free(g);
      jade_sed_score_free(s);
    }
}

static void test_transform(void) {
  double lo[16], hi[16];
  jade_sed_param_bounds(lo, hi);
  double th[16], ph[16], back[16];
  for (int j = 0; j < 16; j++) th[j] = lo[j] + (hi[j] - lo[j]) * (0.001 + 0.998 * (j + 0.5) / 16.0);
  th[0] = 20.0;
  jade_sed_theta_to_phi(th, ph);
  jade_sed_phi_to_theta(ph, back);
  double e = 0;
  for (int j = 0; j < 16; j++) e = fmax(e, fabs(back[j] - th[j]) / (hi[j] - lo[j]));
  CHECK(e < 1e-13, "theta -> phi -> theta round trip %g", e);
  /* log |dphi/dtheta| against finite differences (diagonal map) */
  double lj = jade_sed_log_jac_phi_theta(ph), fd = 0;
  for (int j = 1; j < 16; j++) {
    double h = 1e-6 * (hi[j] - lo[j]), tp[16], tm[16], pp[16], pm[16];
    memcpy(tp, th, sizeof th);
    memcpy(tm, th, sizeof th);
    tp[j] += h;
    tm[j] -= h;
    jade_sed_theta_to_phi(tp, pp);
    jade_sed_theta_to_phi(tm, pm);
    fd += log((pp[j] - pm[j]) / (2 * h));
  }
  CHECK(fabs(fd - lj) < 1e-6, "log Jacobian %g vs finite differences %g", lj, fd);
}

/* Train on a correlated 2-d Gaussian; compare PF-ODE log p with the exact density. */
static void test_train_gaussian(void) {
  enum { N = 20000 };
  double *y = malloc(N * 2 * sizeof(double));
  for (int i = 0; i < N; i++) {
    double a = jade_rng_normal(3, JADE_STREAM(JADE_RNG_TEST, 20), (uint64_t)(2 * i));
    double b = jade_rng_normal(3, JADE_STREAM(JADE_RNG_TEST, 20), (uint64_t)(2 * i + 1));
    y[2 * i] = 1.0 + 2.0 * a;                  /* sd 2 */
    y[2 * i + 1] = -0.5 + 0.8 * a + 0.6 * b;   /* sd 1, corr 0.8 */
  }
  /* low time frequencies (std 2): with 4 features of std 16 a small net learns the smooth
   * t-dependence of this score slowly */
  jade_sed_score_config cfg = {.dim = 2, .n_cond = 0, .n_freq = 4, .n_hidden = 2, .width = 64, .act = JADE_ACT_SILU,
                               .no_sigma = 0, .freq_std = 2.0};
  jade_sde_default(&cfg.sde, JADE_SDE_VP);
  jade_sed_score *s;
  CHECK_OK(jade_sed_score_create(&cfg, 5, &s));
  jade_dsm_options o;
  jade_dsm_options_default(&o);
  o.steps = 3000;
  o.batch = 128;
  o.lr = 3e-3;
  double loss;
  double t0 = jade_time_now();
  CHECK_OK(jade_dsm_train(s, y, N, &o, &loss));
  double ttrain = jade_time_now() - t0;
  /* exact log density of y, mapped to the normalised x: log p_x = log p_y + sum log scale */
  const double *shift = jade_sed_score_shift(s), *scale = jade_sed_score_scale(s);
  double pts[5][2] = {{1, -0.5}, {3, 0.3}, {-1, -1.3}, {1, 0.5}, {2.5, -0.2}};
  double x[10], lp[5];
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 2; j++) x[2 * i + j] = (pts[i][j] - shift[j]) / scale[j];
  jade_sed_score_field_ctx fc = {.score = s};
  jade_pfode_options po;
  jade_pfode_options_default(&po);
  CHECK_OK(jade_pfode_logp(&cfg.sde, 2, jade_sed_score_field, &fc, 5, x, &po, lp, NULL, NULL));
  double emax = 0;
  for (int i = 0; i < 5; i++) {
    /* Sigma = [[4, 1.6], [1.6, 1]], det = 1.44 */
    double u = pts[i][0] - 1.0, v = pts[i][1] + 0.5;
    double q = (1.0 * u * u - 2 * 1.6 * u * v + 4.0 * v * v) / 1.44;
    double ly = -0.5 * q - log(2 * M_PI) - 0.5 * log(1.44);
    double lx = ly + log(scale[0]) + log(scale[1]);
    emax = fmax(emax, fabs(lp[i] - lx));
  }
  printf("DSM on a correlated Gaussian (3000 steps, %.1f s, loss %.3f): max |log p - exact| = %.3f at 5 points\n",
         ttrain, loss, emax);
  /* learning error, not solver error: a 2-d Gaussian is learnt to a few 0.01 in log p */
  CHECK(emax < 0.1, "trained density");

  /* save / load: identical scores */
  char path[256];
  snprintf(path, sizeof path, "/tmp/jade_test_sed_prior_%d.safetensors", (int)getpid());
  CHECK_OK(jade_sed_score_save(s, path, "test"));
  jade_sed_score *s2;
  CHECK_OK(jade_sed_score_load(path, &s2));
  double t[5] = {0.001, 0.1, 0.3, 0.7, 1.0}, a[10], b[10];
  CHECK_OK(jade_sed_score_eval(s, 5, t, x, NULL, a));
  CHECK_OK(jade_sed_score_eval(s2, 5, t, x, NULL, b));
  CHECK(!memcmp(a, b, sizeof a), "scores after save/load");
  CHECK(!memcmp(jade_sed_score_scale(s2), scale, 2 * sizeof(double)), "scale after save/load");
  unlink(path);
  jade_sed_score_free(s2);
  jade_sed_score_free(s);
  free(y);
}

int main(void) {
  test_gradient();
  test_transform();
  test_train_gaussian();
  if (jade_test_failures) fprintf(stderr, "%d failures\n", jade_test_failures);
  return jade_test_failures ? 1 : 0;
}
