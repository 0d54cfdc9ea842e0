/* The surrogate of a diffusion prior's log-density: its least-squares gradient against central
 * finite differences, its Gaussian part against the exact Gaussian of the points' moments, a fit
 * of an exact non-Gaussian log-density (a two-component mixture) on held-out points, bit-identical
 * fits with 1 and 2 threads, the save/load round trip, bad files, the prior dispatch, and the
 * distil pipeline (labels resumed from the cache; a cache of other options refused). */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jade/safetensors.h"
#include "jade/sed.h"
#include "test_util.h"

#define D 16

static double normal(uint64_t s, uint64_t i) { return jade_rng_normal(7, JADE_STREAM(JADE_RNG_TEST, s), i); }

/* An exact non-Gaussian density in phi: 0.6 N(a, I) + 0.4 N(-a, diag(0.5^2)), a = 1.2 e_0 + 0.8 e_3. */
static double mixture_logp(const double *x) {
  double q1 = 0, q2 = 0;
  for (int j = 0; j < D; j++) {
    double a = j == 0 ? 1.2 : j == 3 ? 0.8 : 0.0;
    q1 += (x[j] - a) * (x[j] - a);
    q2 += (x[j] + a) * (x[j] + a) / 0.25;
  }
  double l1 = log(0.6) - 0.5 * q1 - 0.5 * D * log(2 * M_PI);
  double l2 = log(0.4) - 0.5 * q2 - 0.5 * D * log(2 * M_PI) - D * log(0.5);
  double m = fmax(l1, l2);
  return m + log(exp(l1 - m) + exp(l2 - m));
}

/* d log p / dx of the mixture (responsibility-weighted component scores) */
static void mixture_grad(const double *x, double *g) {
  double q1 = 0, q2 = 0;
  for (int j = 0; j < D; j++) {
    double a = j == 0 ? 1.2 : j == 3 ? 0.8 : 0.0;
    q1 += (x[j] - a) * (x[j] - a);
    q2 += (x[j] + a) * (x[j] + a) / 0.25;
  }
  double l1 = log(0.6) - 0.5 * q1, l2 = log(0.4) - 0.5 * q2 - D * log(0.5), m = fmax(l1, l2);
  double r1 = exp(l1 - m) / (exp(l1 - m) + exp(l2 - m)), r2 = 1 - r1;
  for (int j = 0; j < D; j++) {
    double a = j == 0 ? 1.2 : j == 3 ? 0.8 : 0.0;
    g[j] = -r1 * (x[j] - a) - r2 * (x[j] + a) / 0.25;
  }
}

static void mixture_points(uint64_t stream, size_t n, double *x, double *lp) {
  for (size_t i = 0; i < n; i++) {
    int comp = jade_rng_uniform(7, JADE_STREAM(JADE_RNG_TEST, stream), 1000000 + i) < 0.6;
    for (int j = 0; j < D; j++) {
      double a = j == 0 ? 1.2 : j == 3 ? 0.8 : 0.0, e = normal(stream, i * D + j);
      x[i * D + j] = comp ? a + e : -a + 0.5 * e;
    }
    lp[i] = mixture_logp(x + i * D);
  }
}

/* the loss gradient (value and gradient terms) against central finite differences, and
 * d log q / d phi against finite differences of log q */
static void test_gradient(void) {
  jade_sed_surrogate *s;
  CHECK_OK(jade_sed_surrogate_create(12, 2, 3, &s));
  enum { B = 10, BG = 7, NF = 40 };
  double x[NF * D], y[NF], xg[BG * D], tg[BG * D], yg[BG];
  mixture_points(1, NF, x, y);
  mixture_points(5, BG, xg, yg);
  for (int i = 0; i < BG; i++) mixture_grad(xg + i * D, tg + i * D);
  double shift[D], scale[D];
  for (int j = 0; j < D; j++) {
    shift[j] = 0.1 * j;
    scale[j] = 1.0 + 0.05 * j;
  }
  jade_sed_surrogate_fit_options fo;
  jade_sed_surrogate_fit_options_default(&fo);
  fo.steps = 20; /* moves the output layer away from zero, so every gradient is non-trivial */
  fo.batch = 8;
  fo.batch_grad = 4;
  jade_sed_surrogate_data dat = {NF, x, y, BG, xg, tg};
  CHECK_OK(jade_sed_surrogate_fit(s, &dat, shift, scale, &fo, NULL, NULL));
  size_t P = jade_sed_surrogate_n_params(s);
  double *p = malloc(P * sizeof(double)), *g = malloc(P * sizeof(double)), loss;
  jade_sed_surrogate_get_params(s, p);
  CHECK_OK(jade_sed_surrogate_loss(s, B, x, y, BG, xg, tg, 0.7, &loss, g));
  double emax = 0;
  const double h = 1e-6;
  for (size_t q = 0; q < P; q += 3) {
    double keep = p[q], lp, lm;
    p[q] = keep + h;
    jade_sed_surrogate_set_params(s, p);
    CHECK_OK(jade_sed_surrogate_loss(s, B, x, y, BG, xg, tg, 0.7, &lp, NULL));
    p[q] = keep - h;
    jade_sed_surrogate_set_params(s, p);
    CHECK_OK(jade_sed_surrogate_loss(s, B, x, y, BG, xg, tg, 0.7, &lm, NULL));
    p[q] = keep;
    double fd = (lp - lm) / (2 * h);
    /* central differences: truncation ~h^2 |f'''| (relative ~1e-10), rounding ~eps loss / h
     * (each loss carries ~1e3 eps relative error from its sums): the error in units of that */
    double bound = 1e-6 * fabs(fd) + 1e3 * DBL_EPSILON * fabs(loss) / h;
    jade_test_max_err(&emax, fabs(fd - g[q]) / bound);
  }
  jade_sed_surrogate_set_params(s, p);
  printf("surrogate loss gradient (value + gradient terms): max |finite difference - gradient| / (1e-6 |fd| + 1e3 eps "
         "loss / h) = %.2g over %zu of %zu parameters (loss %.3f)\n", emax, (P + 2) / 3, P, loss);
  CHECK_LT(emax, 1.0, "surrogate gradient");
  /* d log q / d phi */
  double lq[2], gq[2 * D], e2 = 0;
  CHECK_OK(jade_sed_surrogate_grad(s, 2, x, lq, gq));
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < D; j++) {
      double xp[D], xm[D], lpp, lmm;
      memcpy(xp, x + i * D, sizeof xp);
      memcpy(xm, x + i * D, sizeof xm);
      xp[j] += 1e-5;
      xm[j] -= 1e-5;
      CHECK_OK(jade_sed_surrogate_logp(s, 1, xp, &lpp));
      CHECK_OK(jade_sed_surrogate_logp(s, 1, xm, &lmm));
      double fd = (lpp - lmm) / 2e-5;
      jade_test_max_err(&e2, fabs(fd - gq[i * D + j]) / (1e-6 * fabs(fd) + 1e3 * DBL_EPSILON * (1 + fabs(lq[i])) / 1e-5));
    }
  printf("d log q / d phi vs finite differences: max error %.2g (same units)\n", e2);
  CHECK_LT(e2, 1.0, "surrogate input gradient");
  free(p);
  free(g);
  jade_sed_surrogate_free(s);
}

/* A zero-step fit is log N(x; mean, cov) of the points' moments: compared with the same density
 * from an independent Gaussian elimination. */
static void test_gaussian_part(void) {
  enum { N = 400 };
  static double x[N * D], y[N];
  mixture_points(2, N, x, y);
  double shift[D], scale[D];
  for (int j = 0; j < D; j++) {
    shift[j] = -0.3 + 0.02 * j;
    scale[j] = 0.7 + 0.1 * j;
  }
  jade_sed_surrogate *s;
  CHECK_OK(jade_sed_surrogate_create(8, 1, 1, &s));
  jade_sed_surrogate_fit_options fo;
  jade_sed_surrogate_fit_options_default(&fo);
  fo.steps = 0;
  jade_sed_surrogate_data dat = {N, x, y, 0, NULL, NULL};
  CHECK_OK(jade_sed_surrogate_fit(s, &dat, shift, scale, &fo, NULL, NULL));
  /* moments in phi, and log N(phi) via the inverse by Gauss-Jordan */
  double mu[D] = {0}, C[D][D] = {{0}}, A[D][2 * D];
  for (int i = 0; i < N; i++)
    for (int j = 0; j < D; j++) mu[j] += x[i * D + j] / N;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < D; j++)
      for (int k = 0; k < D; k++) C[j][k] += (x[i * D + j] - mu[j]) * (x[i * D + k] - mu[k]) / (N - 1);
  for (int j = 0; j < D; j++)
    for (int k = 0; k < 2 * D; k++) A[j][k] = k < D ? C[j][k] : (k - D == j);
  double logdet = 0;
  for (int c = 0; c < D; c++) {
    logdet += log(A[c][c]);
    for (int r = 0; r < D; r++) {
      if (r == c) continue;
      double f = A[r][c] / A[c][c];
      for (int k = 0; k < 2 * D; k++) A[r][k] -= f * A[c][k];
    }
  }
  double worst = 0, lq[8];
  CHECK_OK(jade_sed_surrogate_logp(s, 8, x, lq));
  for (int i = 0; i < 8; i++) {
    double q = 0;
    for (int j = 0; j < D; j++)
      for (int k = 0; k < D; k++) q += (x[i * D + j] - mu[j]) * A[j][D + k] / A[j][j] * (x[i * D + k] - mu[k]);
    double ref = -0.5 * q - 0.5 * logdet - 0.5 * D * log(2 * M_PI);
    jade_test_max_err(&worst, fabs(lq[i] - ref));
  }
  printf("Gaussian part: max |log q - log N(moments)| %.2g nats\n", worst);
  CHECK_LT(worst, 1e-10, "the surrogate's Gaussian");
  jade_sed_surrogate_free(s);
}

/* Fit the mixture's exact log-density; held-out error against it, 1 vs 2 threads, save/load. */
static void test_fit_mixture(void) {
  enum { N = 1000, M = 500 };
  double *x = malloc(N * D * sizeof(double)), *y = malloc(N * sizeof(double));
  double *xt = malloc(M * D * sizeof(double)), *yt = malloc(M * sizeof(double));
  mixture_points(3, N, x, y);
  mixture_points(4, M, xt, yt);
  /* gradient labels at more points (exact here; the score at t = eps in the pipeline) */
  enum { NG = 8000 };
  double *xg = malloc(NG * D * sizeof(double)), *tg = malloc(NG * D * sizeof(double)), *yg = malloc(NG * sizeof(double));
  mixture_points(6, NG, xg, yg);
  for (int i = 0; i < NG; i++) mixture_grad(xg + i * D, tg + i * D);
  jade_sed_surrogate_data dat = {N, x, y, NG, xg, tg}, dat0 = {N, x, y, 0, NULL, NULL};
  double shift[D] = {0}, scale[D];
  for (int j = 0; j < D; j++) scale[j] = 1;
  jade_sed_surrogate_fit_options fo;
  jade_sed_surrogate_fit_options_default(&fo);
  fo.steps = 3000;
  fo.batch = 128;
  fo.batch_grad = 128;
  jade_sed_surrogate *s[2], *g;
  double rms[2];
  for (int t = 0; t < 2; t++) {
    omp_set_num_threads(t + 1);
    CHECK_OK(jade_sed_surrogate_create(64, 2, 5, &s[t]));
    CHECK_OK(jade_sed_surrogate_fit(s[t], &dat, shift, scale, &fo, &rms[t], NULL));
  }
  size_t P = jade_sed_surrogate_n_params(s[0]);
  double *p0 = malloc(P * sizeof(double)), *p1 = malloc(P * sizeof(double));
  jade_sed_surrogate_get_params(s[0], p0);
  jade_sed_surrogate_get_params(s[1], p1);
  CHECK(!memcmp(p0, p1, P * sizeof(double)), "surrogate fit differs between 1 and 2 threads");
  fo.steps = 0;
  CHECK_OK(jade_sed_surrogate_create(64, 2, 5, &g));
  CHECK_OK(jade_sed_surrogate_fit(g, &dat0, shift, scale, &fo, NULL, NULL));
  double *q = malloc(M * sizeof(double)), *qg = malloc(M * sizeof(double));
  CHECK_OK(jade_sed_surrogate_logp(s[0], M, xt, q));
  CHECK_OK(jade_sed_surrogate_logp(g, M, xt, qg));
  double e = 0, eg = 0, m = 0, mg = 0;
  for (int i = 0; i < M; i++) {
    m += (q[i] - yt[i]) / M;
    mg += (qg[i] - yt[i]) / M;
  }
  for (int i = 0; i < M; i++) {
    e += (q[i] - yt[i] - m) * (q[i] - yt[i] - m) / (M - 1);
    eg += (qg[i] - yt[i] - mg) * (qg[i] - yt[i] - mg) / (M - 1);
  }
  e = sqrt(e);
  eg = sqrt(eg);
  printf("mixture: training rms %.3f nats; held-out error sd %.3f nats (the Gaussian alone %.3f), mean %+.3f\n", rms[0],
         e, eg, m);
  /* the mixture's log-density is far from quadratic (the Gaussian's error sd ~2 nats); a
   * working fit removes most of it (measured: 0.27 nats), a broken one stays near the Gaussian */
  CHECK_LT(e, 0.2 * eg, "surrogate fit of the mixture");
  /* save / load: identical log-densities */
  char path[] = "/tmp/jade_test_surrogate_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0, "mkstemp");
  close(fd);
  CHECK_OK(jade_sed_surrogate_save(s[0], path, "test"));
  CHECK(jade_sed_is_surrogate_file(path) == 1, "format metadata");
  jade_sed_surrogate *r;
  CHECK_OK(jade_sed_surrogate_load(path, &r));
  double *q2 = malloc(M * sizeof(double));
  CHECK_OK(jade_sed_surrogate_logp(r, M, xt, q2));
  CHECK(!memcmp(q, q2, M * sizeof(double)), "save/load changed the log-densities");
  /* dispatch through the prior, and non-finite points */
  jade_sed_prior pr;
  jade_sed_prior_default(&pr);
  pr.kind = JADE_SED_PRIOR_SURROGATE;
  pr.surrogate = r;
  double lp[3], bad[3 * D];
  memcpy(bad, xt, sizeof bad);
  bad[D + 4] = NAN;
  bad[2 * D] = INFINITY;
  CHECK_OK(jade_sed_prior_logp(&pr, 3, bad, lp));
  CHECK(lp[0] == q[0] && lp[1] == -INFINITY && lp[2] == -INFINITY, "prior dispatch (%g %g %g)", lp[0], lp[1], lp[2]);
  double th[D];
  CHECK(jade_sed_prior_sample(&pr, 1, 0, 1, th) != JADE_OK, "a surrogate cannot be sampled");
  /* bad files: a score-model format, and an L_inv with an upper element */
  jade_st_tensor t[1] = {{.name = "x", .dtype = JADE_F64, .ndim = 1, .shape = {1}, .data = lp}};
  jade_st_meta meta[1] = {{"format", "jade-sed-score-1"}};
  CHECK_OK(jade_safetensors_write(path, t, 1, meta, 1));
  jade_sed_surrogate *b = NULL;
  CHECK(jade_sed_surrogate_load(path, &b) != JADE_OK && !b, "a score model is not a surrogate");
  printf("  refused: %s\n", jade_last_error());
  CHECK(jade_sed_is_surrogate_file(path) == 0, "format metadata of a score model");
  unlink(path);
  free(x);
  free(y);
  free(xg);
  free(tg);
  free(yg);
  free(xt);
  free(yt);
  free(p0);
  free(p1);
  free(q);
  free(qg);
  free(q2);
  jade_sed_surrogate_free(s[0]);
  jade_sed_surrogate_free(s[1]);
  jade_sed_surrogate_free(g);
  jade_sed_surrogate_free(r);
}

/* The pipeline on a small untrained score model: a second run reuses every label (none
 * computed) and writes the same surrogate; a cache of other options is refused. */
static void test_distil_pipeline(void) {
  char dir[] = "/tmp/jade_test_distil_XXXXXX";
  CHECK(mkdtemp(dir) != NULL, "mkdtemp");
  char prior[256], out[256], out2[256], cache[256];
  snprintf(prior, sizeof prior, "%s/prior.safetensors", dir);
  snprintf(out, sizeof out, "%s/s.safetensors", dir);
  snprintf(out2, sizeof out2, "%s/s2.safetensors", dir);
  snprintf(cache, sizeof cache, "%s/labels.npy", dir);
  jade_sed_score_config cfg = {.dim = D, .n_cond = 0, .n_freq = 4, .n_hidden = 1, .width = 16, .act = JADE_ACT_SILU,
                               .no_sigma = 0, .freq_std = 4.0};
  jade_sde_default(&cfg.sde, JADE_SDE_VP);
  jade_sed_score *sc;
  CHECK_OK(jade_sed_score_create(&cfg, 9, &sc));
  CHECK_OK(jade_sed_score_save(sc, prior, "untrained test prior"));
  jade_sed_score_free(sc);
  jade_sed_distil_options o;
  jade_sed_distil_options_default(&o);
  o.prior = prior;
  o.out = out;
  o.labels = cache;
  o.n_train = 300;
  o.n_test = 100;
  o.ode.atol = o.ode.rtol = 1e-4;
  o.width = 16;
  o.layers = 1;
  o.fit.steps = 200;
  jade_sed_distil_report r1, r2;
  CHECK_OK(jade_sed_distil_prior(&o, &r1));
  CHECK(isfinite(r1.label_seconds_per_point) && r1.n_test_prior + r1.n_test_tail == 100, "first run computes labels");
  o.out = out2;
  CHECK_OK(jade_sed_distil_prior(&o, &r2));
  CHECK(isnan(r2.label_seconds_per_point), "second run must reuse the cached labels");
  jade_sed_surrogate *a, *b;
  CHECK_OK(jade_sed_surrogate_load(out, &a));
  CHECK_OK(jade_sed_surrogate_load(out2, &b));
  double pts[4 * D], la[4], lb[4];
  for (int i = 0; i < 4 * D; i++) pts[i] = 0.3 * normal(20, (uint64_t)i);
  CHECK_OK(jade_sed_surrogate_logp(a, 4, pts, la));
  CHECK_OK(jade_sed_surrogate_logp(b, 4, pts, lb));
  CHECK(!memcmp(la, lb, sizeof la), "resumed run gives another surrogate");
  printf("distil pipeline: held-out sd %.3f nats (prior draws), %.3f (tails); Gaussian alone %.3f, %.3f\n", r1.prior_sd,
         r1.tail_sd, r1.gauss_prior_sd, r1.gauss_tail_sd);
  o.ode.atol = o.ode.rtol = 2e-4; /* another tolerance (other PF-ODE samples, other labels): refused */
  CHECK(jade_sed_distil_prior(&o, &r2) != JADE_OK, "a cache of another tolerance must be refused");
  printf("  refused: %s\n", jade_last_error());
  o.ode.atol = o.ode.rtol = 1e-4;
  o.seed = 2; /* other points: the cache must be refused */
  CHECK(jade_sed_distil_prior(&o, &r2) != JADE_OK, "a cache of other options must be refused");
  printf("  refused: %s\n", jade_last_error());
  jade_sed_surrogate_free(a);
  jade_sed_surrogate_free(b);
  unlink(prior);
  unlink(out);
  unlink(out2);
  unlink(cache);
  rmdir(dir);
}

int main(void) {
  test_gradient();
  test_gaussian_part();
  test_fit_mixture();
  test_distil_pipeline();
  if (jade_test_failures) {
    fprintf(stderr, "%d check(s) failed\n", jade_test_failures);
    return 1;
  }
  printf("all surrogate tests passed\n");
  return 0;
}
