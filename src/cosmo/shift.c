/* Log-normal shift lambda_i of the convergence of each tomographic bin, smoothed with a
 * circular top-hat of angular radius theta.
 *
 * Moments (tree-level perturbation theory in the Limber / long-cylinder approximation, as in
 * CosMomentum, Friedrich et al. 2020, arXiv:1912.06621; Bernardeau 1995 for the
 * cylinder; Bernardeau et al. 2002, Phys. Rep. 367, 1):
 *   <kappa^2> = int dchi q_i(chi)^2 sigma^2_NL(R = chi theta, z(chi))
 *   <kappa^3> = int dchi q_i(chi)^3 S3(R, z) sigma^4_NL(R, z)
 *   sigma^2(R, z) = int k dk / (2 pi) P(k, z) W(kR)^2,  W(x) = 2 J1(x)/x,
 *   S3 = 3 (1 + mu(z)) + (3/2) dln sigma^2_L / dln R     (2-D tree-level skewness of a long
 *        cylinder, 36/7 - 3(n+2)/2 in Einstein-de Sitter: Bernardeau 1995, A&A 301, 309),
 *   mu = 1 - D2/D1^2, with D2 the second-order growth, D2'' + (2 + dlnE/dlna) D2'
 *        - (3/2) Omega_m(a) D2 = D1'^2 (' = d/dlna; the conformal-time equation of CosMomentum's
 *        growth_factor_to_second_order, cf. Bouchet et al. 1995, A&A 296, 575), with
 *        D2 = (2/7) D1^2 in matter domination.
 * sigma_NL uses the halofit P, the logarithmic slope the linear P (both as CosMomentum).
 *
 * Shift: the zero-mean shifted log-normal kappa = lambda [exp(g - s^2/2) - 1] has
 * <kappa^2> = lambda^2 (e^{s^2} - 1) and <kappa^3> = 3 <kappa^2>^2/lambda + <kappa^2>^3/lambda^3
 * (Hilbert, Hartlap & Schneider 2011, A&A 536, A85, App. B; Xavier, Abdalla & Joachimi 2016,
 * MNRAS 459, 3693), so lambda is the positive root of
 * S3 lambda^3 - 3 lambda^2 - <kappa^2> = 0, S3 = <kappa^3>/<kappa^2>^2.
 *
 * Numerics: fixed rules only. The k integral at each line-of-sight node is a product
 * integration in u = ln(kR): P is sampled at a fixed set of u (4-point Lagrange interpolation
 * in u between samples) and integrated against W^2 and dW^2/dlnR with weights computed once
 * (exact Bessel functions up to x = 60, their mean envelope beyond). */
#include "los.h"

#include <gsl/gsl_sf_bessel.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- product-integration weights in u = ln x, x = kR ------------------------------------ */
#define SH_XLO 1e-3  /* samples x_m = SH_XLO exp(m SH_DU), m < SH_M: x up to 3.3e3 */
#define SH_DU 0.12
#define SH_M 126
#define SH_XENV 60.0 /* above: mean of W^2 = 4/(pi x^3), of dW^2/dlnx = -12/(pi x^3) */
/* Below x = SH_XLO (small R: k^2 P_NL is nearly flat at high k, so the integral is wide in
 * ln k) a separate Gauss-Legendre rule in ln k from SH_KMIN, with W^2 = 1 - x^2/4. */
#define SH_KMIN 1e-5
#define SH_NLOW 8   /* points per panel */
#define SH_PLOW 2.0 /* panel width in ln k */

static double sh_x[SH_M], sh_w2[SH_M], sh_dw2[SH_M], sh_glx[SH_NLOW], sh_glw[SH_NLOW];
static pthread_once_t sh_once = PTHREAD_ONCE_INIT;

static void window(double x, double *w2, double *dw2) {
  if (x >= SH_XENV) {
    double e = 4.0 / (M_PI * x * x * x);
    *w2 = e;
    *dw2 = -3.0 * e;
    return;
  }
  double W, J2;
  if (x < 1e-4) {
    W = 1.0 - x * x / 8.0;
    J2 = x * x / 8.0;
  } else {
    W = 2.0 * gsl_sf_bessel_J1(x) / x;
    J2 = gsl_sf_bessel_Jn(2, x);
  }
  *w2 = W * W;
  *dw2 = -4.0 * W * J2; /* dW/dlnx = -2 J2(x) */
}

static void sh_init(void) {
  double gx[64], gw[64];
  jade_gauss_legendre_(SH_NLOW, sh_glx, sh_glw);
  for (int m = 0; m < SH_M; m++) sh_x[m] = SH_XLO * exp(m * SH_DU);
  memset(sh_w2, 0, sizeof sh_w2);
  memset(sh_dw2, 0, sizeof sh_dw2);
  double u0 = log(SH_XLO);
  for (int m = 0; m + 1 < SH_M; m++) {
    double ua = u0 + m * SH_DU, ub = ua + SH_DU, xa = exp(ua), xb = exp(ub);
    int ng = xa >= SH_XENV ? 12 : 12 + 6 * (int)ceil((fmin(xb, SH_XENV) - xa) / M_PI);
    if (ng > 64) ng = 64;
    jade_gauss_legendre_(ng, gx, gw);
    int s0 = m - 1; /* 4-point stencil s0..s0+3 around the interval */
    if (s0 < 0) s0 = 0;
    if (s0 + 3 > SH_M - 1) s0 = SH_M - 4;
    for (int g = 0; g < ng; g++) {
      double u = 0.5 * (ua + ub) + 0.5 * SH_DU * gx[g], wq = 0.5 * SH_DU * gw[g];
      double w2, dw2;
      window(exp(u), &w2, &dw2);
      double t = (u - (u0 + s0 * SH_DU)) / SH_DU; /* position in stencil units */
      for (int i = 0; i < 4; i++) {
        double L = 1.0;
        for (int j = 0; j < 4; j++)
          if (j != i) L *= (t - j) / (double)(i - j);
        sh_w2[s0 + i] += wq * L * w2;
        sh_dw2[s0 + i] += wq * L * dw2;
      }
    }
  }
}

/* ---- second-order growth: mu(a) = 1 - D2/D1^2 -------------------------------------------- */
#define MU_AMIN 1e-3
#define MU_N 200

static double dlnE(const jade_cosmo *c, double lna) {
  const double h = 1e-4;
  return (log(jade_cosmo_E(c, exp(lna + h))) - log(jade_cosmo_E(c, exp(lna - h)))) / (2.0 * h);
}

/* y = (D1, D1', D2, D2'), ' = d/dlna */
static void growth_rhs(const jade_cosmo *c, double lna, const double *y, double *dy) {
  double a = exp(lna), E = jade_cosmo_E(c, a);
  double om = jade_cosmo_Omega_m(c) / (a * a * a * E * E);
  double fr = 2.0 + dlnE(c, lna);
  dy[0] = y[1];
  dy[1] = -fr * y[1] + 1.5 * om * y[0];
  dy[2] = y[3];
  dy[3] = -fr * y[3] + 1.5 * om * y[2] + y[1] * y[1];
}

/* mu on lna_i = ln(MU_AMIN) (1 - i/MU_N), i = 0..MU_N, by classical RK4. */
static jade_status mu_table(const jade_cosmo *c, double *mu) {
  double l0 = log(MU_AMIN), h = -l0 / MU_N, a0 = MU_AMIN;
  double y[4] = {a0, a0, 2.0 / 7.0 * a0 * a0, 4.0 / 7.0 * a0 * a0};
  mu[0] = 1.0 - y[2] / (y[0] * y[0]);
  for (int i = 0; i < MU_N; i++) {
    double l = l0 + i * h, k1[4], k2[4], k3[4], k4[4], t[4];
    growth_rhs(c, l, y, k1);
    for (int j = 0; j < 4; j++) t[j] = y[j] + 0.5 * h * k1[j];
    growth_rhs(c, l + 0.5 * h, t, k2);
    for (int j = 0; j < 4; j++) t[j] = y[j] + 0.5 * h * k2[j];
    growth_rhs(c, l + 0.5 * h, t, k3);
    for (int j = 0; j < 4; j++) t[j] = y[j] + h * k3[j];
    growth_rhs(c, l + h, t, k4);
    for (int j = 0; j < 4; j++) y[j] += h / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j]);
    mu[i + 1] = 1.0 - y[2] / (y[0] * y[0]);
    if (!isfinite(mu[i + 1]))
      return jade_error(JADE_ERR_NUMERIC, "second-order growth diverged at a = %g", exp(l + h));
  }
  return JADE_OK;
}

static double mu_at(const double *mu, double a) {
  double l0 = log(MU_AMIN), h = -l0 / MU_N, t = (log(a) - l0) / h;
  if (t <= 0.0) return mu[0];
  int i = (int)t;
  if (i >= MU_N) return mu[MU_N];
  t -= i;
  return (1.0 - t) * mu[i] + t * mu[i + 1];
}

double jade_growth2_mu_(const jade_cosmo *c, double a) {
  double mu[MU_N + 1];
  if (mu_table(c, mu)) return NAN;
  return mu_at(mu, a);
}

/* ---- the shift ------------------------------------------------------------------------- */
/* Solve S3 l^3 - 3 l^2 - var = 0 for its single positive root: Newton from
 * l0 = 3/S3 + (var/S3)^(1/3) >= root, where f is increasing and convex (monotone descent). */
static double solve_shift(double var, double S3) {
  double l = 3.0 / S3 + cbrt(var / S3);
  for (int it = 0; it < 200; it++) {
    double f = S3 * l * l * l - 3.0 * l * l - var, fp = 3.0 * S3 * l * l - 6.0 * l;
    double dl = f / fp;
    l -= dl;
    if (fabs(dl) <= 1e-15 * l) break;
  }
  return l;
}

jade_status jade_lognormal_shift_rule_(const jade_cosmo *c, const jade_survey *s, double theta_arcmin,
                                       const jade_los_rule *rule, double *lambda, double *var_out,
                                       double *third_out) {
  pthread_once(&sh_once, sh_init);
  jade_los los;
  jade_status st = jade_los_build_res_(c, s, rule, 0.0, &los);
  if (st) return jade_error_context(st, "log-normal shift");
  double mu[MU_N + 1];
  if ((st = mu_table(c, mu))) {
    jade_los_free(&los);
    return st;
  }
  const double theta = theta_arcmin * M_PI / (180.0 * 60.0);
  int nb = los.n_bins, n = los.n;
  double var[JADE_MAX_BINS] = {0}, third[JADE_MAX_BINS] = {0};
  double *sig2 = jade_alloc(sizeof(double) * (size_t)n * 2);
  if (!sig2) {
    jade_los_free(&los);
    return JADE_ERR_NOMEM;
  }
  double *s3 = sig2 + n;
  int bad = -1;
#pragma omp parallel for schedule(static) if (n >= 32)
  for (int j = 0; j < n; j++) {
    double R = los.chi[j] * theta, a = los.a[j];
    double snl = 0.0, sl = 0.0, dsl = 0.0;
    for (int m = 0; m < SH_M; m++) {
      double x = sh_x[m], k = x / R;
      double pnl = jade_cosmo_pk_nl(c, k, a), pl = jade_cosmo_pk_lin(c, k, 1.0);
      if (!isfinite(pnl) || !isfinite(pl)) {
#pragma omp critical(jade_shift_err)
        bad = j;
        continue;
      }
      double f = x * x;
      snl += sh_w2[m] * f * pnl;
      sl += sh_w2[m] * f * pl;
      dsl += sh_dw2[m] * f * pl;
    }
    double norm = 1.0 / (2.0 * M_PI * R * R);
    snl *= norm, sl *= norm, dsl *= norm;
    /* k from SH_KMIN to SH_XLO/R: int dlnk k^2 P W^2 / (2 pi), W^2 = 1 - x^2/4,
     * dW^2/dlnx = -x^2/2 (series of 2 J1(x)/x) */
    double lk0 = log(SH_KMIN), lk1 = log(SH_XLO / R);
    if (lk1 > lk0) {
      int np = (int)ceil((lk1 - lk0) / SH_PLOW);
      double hp = (lk1 - lk0) / np;
      for (int ip = 0; ip < np; ip++)
        for (int g = 0; g < SH_NLOW; g++) {
          double lk = lk0 + hp * (ip + 0.5 * (1.0 + sh_glx[g])), wq = 0.5 * hp * sh_glw[g] / (2.0 * M_PI);
          double k = exp(lk), x2 = k * k * R * R;
          double pnlv = jade_cosmo_pk_nl(c, k, a), pl = jade_cosmo_pk_lin(c, k, 1.0);
          if (!isfinite(pnlv) || !isfinite(pl)) {
#pragma omp critical(jade_shift_err)
            bad = j;
            continue;
          }
          snl += wq * k * k * pnlv * (1.0 - 0.25 * x2);
          sl += wq * k * k * pl * (1.0 - 0.25 * x2);
          dsl += wq * k * k * pl * (-0.5 * x2);
        }
    }
    sig2[j] = snl;
    s3[j] = 3.0 * (1.0 + mu_at(mu, a)) + 1.5 * dsl / sl;
  }
  if (bad >= 0) {
    st = jade_error(JADE_ERR_NUMERIC, "log-normal shift: P(k) not finite at z = %g", los.z[bad]);
    goto done;
  }
  /* line-of-sight sums in node order (deterministic whatever the thread count) */
  for (int j = 0; j < n; j++)
    for (int b = 0; b < nb; b++) {
      double q = los.q[(size_t)b * n + j];
      var[b] += los.w[j] * q * q * sig2[j];
      third[b] += los.w[j] * q * q * q * s3[j] * sig2[j] * sig2[j];
    }
  for (int b = 0; b < nb; b++) {
    double S3 = third[b] / (var[b] * var[b]);
    if (!(var[b] > 0.0) || !(S3 > 0.0) || !isfinite(S3)) {
      st = jade_error(JADE_ERR_NUMERIC, "log-normal shift of bin %d: variance %g, S3 %g (need both > 0)", b, var[b],
                      S3);
      goto done;
    }
    lambda[b] = solve_shift(var[b], S3);
    if (var_out) var_out[b] = var[b];
    if (third_out) third_out[b] = third[b];
  }
done:
  free(sig2);
  jade_los_free(&los);
  return st;
}

jade_status jade_cosmo_lognormal_shift(const jade_cosmo *c, const jade_survey *s, double theta_arcmin,
                                       double *lambda) {
  if (!c || !s || !lambda) return jade_error(JADE_ERR_INVALID, "jade_cosmo_lognormal_shift: NULL argument");
  if (!isfinite(theta_arcmin) || !(theta_arcmin > 0.0) || theta_arcmin > 600.0)
    return jade_error(JADE_ERR_INVALID, "log-normal shift: smoothing radius theta = %g arcmin must be in (0, 600]",
                      theta_arcmin);
  const jade_los_rule rule = JADE_LOS_RULE_SHIFT;
  return jade_lognormal_shift_rule_(c, s, theta_arcmin, &rule, lambda, NULL, NULL);
}
