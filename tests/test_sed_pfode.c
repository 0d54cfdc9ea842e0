/* PF-ODE log-densities against exact ones: a Gaussian mixture's score is analytic under the
 * linear SDEs (every marginal is again a mixture: means m(t) mu_k, variances m(t)^2 v + s(t)^2),
 * so log p_eps(x) is known exactly. Checks VP, sub-VP and VE with Dormand-Prince (default
 * atol = rtol = 1e-5) and RK4, Hutchinson's estimator (unbiased: its mean over probes matches the
 * exact trace), and the score network's forward-mode divergence against finite differences. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/sed.h"
#include "test_util.h"

#define D 4
#define NK 3
typedef struct {
  const jade_sde *sde;
  double w[NK], mu[NK][D], v[NK][D];
} gmm;

static void gmm_eval(const gmm *g, double t, const double *x, double *score, int K, const double *V, double *div,
                     double *logp) {
  double m, s;
  jade_sde_marginal(g->sde, t, &m, &s);
  double lw[NK], gk[NK][D], var[NK][D], mx = -INFINITY;
  for (int k = 0; k < NK; k++) {
    double l = log(g->w[k]);
    for (int j = 0; j < D; j++) {
      var[k][j] = m * m * g->v[k][j] + s * s;
      double r = x[j] - m * g->mu[k][j];
      gk[k][j] = -r / var[k][j];
      l += -0.5 * r * r / var[k][j] - 0.5 * log(2 * M_PI * var[k][j]);
    }
    lw[k] = l;
    if (l > mx) mx = l;
  }
  double z = 0;
  for (int k = 0; k < NK; k++) z += exp(lw[k] - mx);
  double r[NK], gbar[D] = {0};
  for (int k = 0; k < NK; k++) {
    r[k] = exp(lw[k] - mx) / z;
    for (int j = 0; j < D; j++) gbar[j] += r[k] * gk[k][j];
  }
  if (logp) *logp = mx + log(z);
  if (score) memcpy(score, gbar, sizeof gbar);
  if (div) {
    /* V.J V with J = sum_k r_k (-diag(1/var_k) + g_k g_k^T) - gbar gbar^T */
    double acc = 0;
    for (int q = 0; q < K; q++) {
      const double *vq = V + q * D;
      double gb = 0;
      for (int j = 0; j < D; j++) gb += gbar[j] * vq[j];
      for (int k = 0; k < NK; k++) {
        double a = 0, gv = 0;
        for (int j = 0; j < D; j++) {
          a -= vq[j] * vq[j] / var[k][j];
          gv += gk[k][j] * vq[j];
        }
        acc += r[k] * (a + gv * gv);
      }
      acc -= gb * gb;
    }
    *div = acc;
  }
}

static jade_status gmm_field(void *ctx, size_t n, const size_t *idx, const double *t, const double *x, int K,
                             const double *V, double *score, double *div) {
  (void)idx;
  for (size_t i = 0; i < n; i++)
    gmm_eval(ctx, t[i], x + i * D, score + i * D, K, V ? V + i * (size_t)K * D : NULL, div ? div + i : NULL, NULL);
  return JADE_OK;
}

static void setup(gmm *g, const jade_sde *sde) {
  static const double w[NK] = {0.5, 0.3, 0.2};
  static const double mu[NK][D] = {{1.5, -1.0, 0.5, 0.0}, {-1.5, 1.0, 0.0, 1.0}, {0.0, 0.0, -2.0, -1.0}};
  static const double v[NK][D] = {{0.3, 0.5, 0.2, 1.0}, {0.4, 0.1, 0.6, 0.3}, {0.2, 0.8, 0.3, 0.25}};
  g->sde = sde;
  memcpy(g->w, w, sizeof w);
  memcpy(g->mu, mu, sizeof mu);
  memcpy(g->v, v, sizeof v);
}

#define NP 12
static void points(double *x) {
  /* points near and between the modes */
  for (int i = 0; i < NP; i++)
    for (int j = 0; j < D; j++) x[i * D + j] = 1.5 * jade_rng_normal(7, JADE_STREAM(JADE_RNG_TEST, 1), (uint64_t)(i * D + j));
}

static void test_sde(jade_sde_type type, jade_ode_method method, double tol_lp) {
  jade_sde sde;
  jade_sde_default(&sde, type);
  gmm g;
  setup(&g, &sde);
  double x[NP * D], lp[NP], xT[NP * D];
  points(x);
  jade_pfode_options o;
  jade_pfode_options_default(&o);
  o.method = method;
  o.n_steps = 200;
  o.batch = 5; /* several batches, step sizes per point */
  uint64_t nfe;
  CHECK_OK(jade_pfode_logp(&sde, D, gmm_field, &g, NP, x, &o, lp, xT, &nfe));
  /* The solver's error: swap the base density N(0, ps^2) for the exact p_T(x(T)). The raw value
   * keeps the base mismatch (~ m(T) x(T).mu: VP 0.01 here, VE mu.x/sigma_max^2 ~ 0.007). */
  double emax = 0, eraw = 0, ps = jade_sde_prior_std(&sde);
  for (int i = 0; i < NP; i++) {
    double ex, lT, q = 0;
    gmm_eval(&g, sde.eps, x + i * D, NULL, 0, NULL, NULL, &ex);
    gmm_eval(&g, sde.T, xT + i * D, NULL, 0, NULL, NULL, &lT);
    for (int j = 0; j < D; j++) q += xT[i * D + j] * xT[i * D + j];
    double lbase = -0.5 * q / (ps * ps) - D * (log(ps) + 0.5 * log(2 * M_PI));
    double e = fabs(lp[i] - lbase + lT - ex);
    if (!(e <= emax)) emax = isnan(e) ? INFINITY : e;
    eraw = fmax(eraw, fabs(lp[i] - ex));
  }
  printf("GMM %-5s %-6s: max |log p - exact| = %.3g over %d points with p_T exact (%.3g with the N(0,I) base; "
         "%.0f evaluations per point)\n",
         jade_sde_name(type), method == JADE_ODE_DOPRI5 ? "dopri5" : "rk4", emax, NP, eraw, (double)nfe / NP);
  CHECK(emax < tol_lp, "GMM log-density error %g", emax);

  /* sampling inverts the log-density map: x(eps) -> x(T) -> back to x(eps) */
  if (method == JADE_ODE_DOPRI5) {
    jade_pfode_options o2 = o;
    o2.atol = o2.rtol = 1e-9;
    double xb[NP * D];
    for (int i = 0; i < NP * D; i++) xT[i] = jade_sde_prior_std(&sde) * jade_rng_normal(9, JADE_STREAM(JADE_RNG_TEST, 2), (uint64_t)i);
    CHECK_OK(jade_pfode_sample(&sde, D, gmm_field, &g, NP, xT, &o2, xb, NULL));
    for (int i = 0; i < NP * D; i++) CHECK(isfinite(xb[i]), "sample finite");
  }
}

/* Hutchinson: mean over probes of the estimated log p equals the exact-trace value (the estimator
 * of the divergence is unbiased and the ODE path does not depend on it). */
static void test_hutchinson(void) {
  jade_sde sde;
  jade_sde_default(&sde, JADE_SDE_VP);
  gmm g;
  setup(&g, &sde);
  double x[D] = {0.7, -0.3, 0.2, 0.4}, xs[64 * D], lp[64], exact;
  for (int i = 0; i < 64; i++) memcpy(xs + i * D, x, sizeof x);
  jade_pfode_options o;
  jade_pfode_options_default(&o);
  CHECK_OK(jade_pfode_logp(&sde, D, gmm_field, &g, 1, x, &o, &exact, NULL, NULL));
  o.trace = JADE_TRACE_HUTCHINSON;
  o.seed = 11;
  o.batch = 8;
  CHECK_OK(jade_pfode_logp(&sde, D, gmm_field, &g, 64, xs, &o, lp, NULL, NULL));
  double mean, sd;
  mean = 0;
  for (int i = 0; i < 64; i++) mean += lp[i] / 64;
  sd = 0;
  for (int i = 0; i < 64; i++) sd += (lp[i] - mean) * (lp[i] - mean) / 63;
  sd = sqrt(sd);
  printf("Hutchinson (Rademacher, one probe per solve): mean %.4f +- %.4f (sd %.3f) vs exact trace %.4f\n", mean,
         sd / 8, sd, exact);
  CHECK(fabs(mean - exact) < 4 * sd / 8 && sd > 0, "Hutchinson mean");
}

/* The network's forward-mode divergence against central finite differences of the score. */
static void test_network_divergence(void) {
  jade_sed_score_config cfg = {.dim = 5, .n_cond = 2, .n_freq = 4, .n_hidden = 3, .width = 32, .act = JADE_ACT_SILU,
                               .no_sigma = 0, .freq_std = 16.0};
  jade_sde_default(&cfg.sde, JADE_SDE_SUBVP);
  for (int a = 0; a < 2; a++) {
    cfg.act = a ? JADE_ACT_TANH : JADE_ACT_SILU;
    jade_sed_score *s;
    CHECK_OK(jade_sed_score_create(&cfg, 3, &s));
    double c[2 * 3] = {0.3, -0.5, 1.0, 0.2, -0.7, 0.1};
    jade_sed_score_field_ctx fc = {.score = s, .cond = c};
    size_t idx[3] = {0, 1, 2};
    double t[3] = {0.01, 0.4, 0.9}, x[15], V[3 * 25], sc[15], div[3];
    for (int i = 0; i < 15; i++) x[i] = jade_rng_normal(5, JADE_STREAM(JADE_RNG_TEST, 3), (uint64_t)i);
    memset(V, 0, sizeof V);
    for (int i = 0; i < 3; i++)
      for (int j = 0; j < 5; j++) V[i * 25 + j * 5 + j] = 1.0;
    CHECK_OK(jade_sed_score_field(&fc, 3, idx, t, x, 5, V, sc, div));
    for (int i = 0; i < 3; i++) {
      double fd = 0, h = 1e-5;
      for (int j = 0; j < 5; j++) {
        double xp[5], xm[5], sp[5], sm[5];
        memcpy(xp, x + i * 5, sizeof xp);
        memcpy(xm, x + i * 5, sizeof xm);
        xp[j] += h;
        xm[j] -= h;
        CHECK_OK(jade_sed_score_field(&fc, 1, idx + i, t + i, xp, 0, NULL, sp, NULL));
        CHECK_OK(jade_sed_score_field(&fc, 1, idx + i, t + i, xm, 0, NULL, sm, NULL));
        fd += (sp[j] - sm[j]) / (2 * h);
      }
      /* central differences: truncation ~h^2 |s'''| and rounding ~1e-16 |s| / h */
      CHECK(fabs(fd - div[i]) < 1e-6 * (1 + fabs(fd)), "divergence %g vs finite differences %g", div[i], fd);
    }
    jade_sed_score_free(s);
  }
}

int main(void) {
  test_sde(JADE_SDE_VP, JADE_ODE_DOPRI5, 1e-3);
  test_sde(JADE_SDE_SUBVP, JADE_ODE_DOPRI5, 1e-3);
  test_sde(JADE_SDE_VE, JADE_ODE_DOPRI5, 1e-3);
  test_sde(JADE_SDE_VP, JADE_ODE_RK4, 1e-3);
  test_hutchinson();
  test_network_divergence();
  if (jade_test_failures) fprintf(stderr, "%d failures\n", jade_test_failures);
  return jade_test_failures ? 1 : 0;
}
