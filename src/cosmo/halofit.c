/* Nonlinear matter power spectrum: halofit, Takahashi et al. 2012 (ApJ 761, 152), Appendix
 * Eqs. A1-A13, with the Omega_de(z) (1 + w) terms, mu_n = 0, nu_n = 10^(5.2105 + 3.6902 n),
 * and the f1, f2, f3 exponents of Smith et al. 2003 (MNRAS 341, 1311) Eqs. C17-C18
 * interpolated in Omega_de(z) / (1 - Omega_m(z)) (as CCL's ccl_halofit.c: w = w0, and
 * f1 = f2 = f3 = 1 when |1 - Omega_m(z)| <= 0.01).
 *
 * The nonlinear scale solves sigma^2_G(R_sigma, a) = 1 for the Gaussian-filtered linear
 * variance sigma^2_G(R) = int dlnk Delta^2_L(k) exp(-k^2 R^2) (Takahashi Eq. A4);
 * n_eff + 3 = -dln sigma^2/dlnR and C = -d^2 ln sigma^2/dlnR^2 at R_sigma (Eq. A5).
 *
 * Because P_lin(k, a) = D(a)^2 P_lin(k, 1), sigma^2_G(R, a) = D^2 sigma^2_G(R, 1): the moments
 *   I_n(R) = int dlnk Delta^2(k) (kR)^{2n} exp(-k^2 R^2),  n = 0..3,
 * are computed once, on a ln R grid whose step is a multiple of the ln k step, so that kR
 * depends only on the index sum and the trapezoid sums need no exponentials. From them,
 * L = ln I_0 and its exact ln R derivatives:
 *   L' = -2 I1/I0, L'' = (4 I2 - 4 I1)/I0 - L'^2,
 *   L''' = (-8 I1 + 24 I2 - 8 I3)/I0 - 3 L' (4 I2 - 4 I1)/I0 + 2 L'^3.
 * R_sigma(a) is the root of L(ln R) = -2 ln D(a) on a quintic Hermite interpolant; n_eff and
 * C are cubic Hermite interpolants of L' and L''.
 *
 * The coefficients (R_sigma, a_n, b_n, ...) are smooth in a; they are computed exactly on a
 * uniform ln a grid and read back with 4-point Lagrange interpolation, so an evaluation costs
 * only the few powers of Eqs. A1-A3. The f1-f3 switch is applied at the exact Omega_m(a).
 *
 * Early times / no nonlinear scale: when sigma_G(R_min) D(a) < 1 (a < hf_amin, z > ~20 for
 * usual cosmologies, or always for baryon-dominated ones with Omega_c -> 0 whose sigma_G(R)
 * saturates below 1), R_sigma is clamped to R_min = 1e-5 Mpc/h with n_eff and C taken there,
 * and the coefficients are computed at the exact a. Then k_sigma = 1e5 h/Mpc, the halo term
 * vanishes on all scales of interest and P_nl -> P_lin (1 + (beta_n - alpha_n) Delta_L):
 * continuous in a and in the parameters. (CCL instead searches R_sigma down to 1e-64.) */
#include "cosmo/cosmo_internal.h"

#include <math.h>
#include <stdlib.h>

/* layout of one coefficient node */
enum { HC_LNR = 0, HC_AN, HC_BN, HC_LNCN, HC_GAM, HC_ALPHA, HC_BETA, HC_NU, HC_G1, HC_G2, HC_LNG3 };

/* Exact halofit coefficients at a, growth D(a). R_sigma is clamped to R_min when
 * sigma_G(R_min) D < 1 (see above). Returns -1 if D is not finite and positive or R_sigma >
 * R_max (impossible for a <= 1 once create has checked sigma_G(R_max) < 1). alpha is stored
 * before its absolute value, g1-g3 without the switch. */
static int hf_node(const jade_cosmo *c, double a, double D, double *o) {
  int nr = c->nr;
  const double *L = c->hL;
  if (!(D > 0) || !isfinite(D)) return -1;
  double target = -2.0 * log(D);
  if (target > L[0]) target = L[0];
  if (!(target >= L[nr - 1])) return -1;
  int lo = 0, hi = nr - 1;
  while (hi - lo > 1) {
    int mid = (lo + hi) >> 1;
    if (L[mid] >= target) lo = mid;
    else hi = mid;
  }
  int j = lo;
  double h = c->dlnr, h2 = h * h;
  double y0 = L[j], y1 = L[j + 1], d0 = c->hL1[j] * h, d1 = c->hL1[j + 1] * h;
  double s0 = c->hL2[j] * h2, s1 = c->hL2[j + 1] * h2;
  double tl = 0, tr = 1, t = (y0 - target) / (y0 - y1);
  for (int it = 0; it < 60; it++) {
    double gv = jade_hermite5(t, y0, d0, s0, y1, d1, s1) - target;
    if (gv > 0) tl = t;
    else tr = t;
    double dg = jade_hermite5_d(t, y0, d0, s0, y1, d1, s1);
    double tn = dg < 0 ? t - gv / dg : 0.5 * (tl + tr);
    if (!(tn >= tl && tn <= tr)) tn = 0.5 * (tl + tr);
    if (fabs(tn - t) < 1e-14) {
      t = tn;
      break;
    }
    t = tn;
  }
  double l1 = jade_hermite3(t, c->hL1[j], c->hL1[j + 1], c->hL2[j] * h, c->hL2[j + 1] * h);
  double l2 = jade_hermite3(t, c->hL2[j], c->hL2[j + 1], c->hL3[j] * h, c->hL3[j + 1] * h);
  double n = -3.0 - l1; /* Takahashi Eq. A5 */
  double C = -l2;
  o[HC_LNR] = c->lnr_min + (j + t) * h;

  double e2 = jade_cosmo_priv_E2(c, a);
  double om = c->Om / (a * a * a * e2);
  double ode = jade_cosmo_priv_Ode_a(c, a);
  double w = c->p.w_0;
  double n2 = n * n, n3 = n2 * n, n4 = n3 * n;
  /* Takahashi et al. 2012 Eqs. A6-A13 */
  o[HC_AN] = pow(10.0, 1.5222 + 2.8553 * n + 2.3706 * n2 + 0.9903 * n3 + 0.2250 * n4 -
                           0.6038 * C + 0.1749 * ode * (1.0 + w));
  o[HC_BN] = pow(10.0, -0.5642 + 0.5864 * n + 0.5716 * n2 - 1.5474 * C + 0.2279 * ode * (1.0 + w));
  o[HC_LNCN] = M_LN10 * (0.3698 + 2.0404 * n + 0.8161 * n2 + 0.5869 * C);
  o[HC_GAM] = 0.1971 - 0.0843 * n + 0.8460 * C;
  o[HC_ALPHA] = 6.0835 + 1.3373 * n - 0.1959 * n2 - 5.5274 * C; /* |.| taken at use */
  o[HC_BETA] = 2.0379 - 0.7354 * n + 0.3157 * n2 + 1.2490 * n3 + 0.3980 * n4 - 0.1682 * C;
  o[HC_NU] = pow(10.0, 5.2105 + 3.6902 * n);
  /* Smith et al. 2003 Eqs. C17-C18, interpolated between open and flat */
  double lom = log(om);
  double fr = ode / (1.0 - om);
  if (!isfinite(fr)) fr = 1.0; /* om == 1 exactly: the switch below gives f = 1 anyway */
  o[HC_G1] = fr * exp(-0.0307 * lom) + (1.0 - fr) * exp(-0.0732 * lom);
  o[HC_G2] = fr * exp(-0.0585 * lom) + (1.0 - fr) * exp(-0.1423 * lom);
  o[HC_LNG3] = log(fr * exp(0.0743 * lom) + (1.0 - fr) * exp(0.0725 * lom));
  return 0;
}

/* Takahashi et al. 2012 Eqs. A1-A3 with mu_n = 0; om = Omega_m(a) for the f switch. */
static double hf_power(const double *o, double om, double k, double lnk, double plin) {
  double norm = k * k * k / (2.0 * M_PI * M_PI);
  double dl = plin * norm;
  double lny = lnk + o[HC_LNR];
  double y = exp(lny);
  double f1 = 1, f2 = 1, lf3 = 0;
  if (fabs(1.0 - om) > 0.01) {
    f1 = o[HC_G1];
    f2 = o[HC_G2];
    lf3 = o[HC_LNG3];
  }
  double fy = 0.25 * y + 0.125 * y * y;
  double dq = dl * exp(o[HC_BETA] * log1p(dl) - fy) / (1.0 + fabs(o[HC_ALPHA]) * dl);
  double dhp = o[HC_AN] * exp(3.0 * f1 * lny) /
               (1.0 + o[HC_BN] * exp(f2 * lny) + exp((3.0 - o[HC_GAM]) * (o[HC_LNCN] + lf3 + lny)));
  double dh = dhp / (1.0 + o[HC_NU] / (y * y));
  return (dq + dh) / norm;
}

jade_status jade_cosmo_priv_halofit_init(jade_cosmo *c) {
  const int m = JADE_HF_RSTEP, ks = JADE_HF_KSTRIDE;
  double hr = m * c->dlnk;
  int nr = (int)ceil((log(JADE_HF_RMAX) - log(JADE_HF_RMIN)) / hr) + 1;
  c->nr = nr;
  c->lnr_min = log(JADE_HF_RMIN);
  c->dlnr = hr;
  int ns = c->nk + m * (nr - 1);
  double *buf = jade_alloc(4 * (size_t)nr * sizeof(double));
  if (!buf) return JADE_ERR_NOMEM;
  c->hL = buf;
  c->hL1 = buf + nr;
  c->hL2 = buf + 2 * nr;
  c->hL3 = buf + 3 * nr;
  double *y2 = jade_alloc(2 * (size_t)ns * sizeof(double)); /* scratch: (kR)^2, exp(-(kR)^2) */
  if (!y2) return JADE_ERR_NOMEM;
  double *g = y2 + ns;
  int smax = ns;
  double y2_0 = exp(2.0 * (c->lnk_min + c->lnr_min)), ratio = exp(2.0 * c->dlnk);
  for (int s = 0; s < ns; s++) {
    y2[s] = (s % 256 == 0) ? y2_0 * exp(2.0 * s * c->dlnk) : y2[s - 1] * ratio;
    if (y2[s] > 500.0 && smax == ns) smax = s; /* exp(-500) ~ 1e-217: negligible */
    g[s] = (s < smax) ? exp(-y2[s]) : 0.0;
  }
  for (int j = 0; j < nr; j++) {
    double i0 = 0, i1 = 0, i2 = 0, i3 = 0;
    int off = m * j;
    int iend = smax - off;
    if (iend > c->nk) iend = c->nk;
    for (int i = 0; i < iend; i += ks) {
      double x = y2[i + off];
      double w = c->d2[i] * g[i + off];
      double wx = w * x;
      double wx2 = wx * x;
      i0 += w;
      i1 += wx;
      i2 += wx2;
      i3 += wx2 * x;
    }
    if (!(i0 > 0) || !isfinite(i0)) {
      free(y2);
      return jade_error(JADE_ERR_NUMERIC, "halofit: sigma_G^2(R = %g) = %g", exp(c->lnr_min + j * hr),
                        i0 * ks * c->dlnk);
    }
    double r1 = i1 / i0, r2 = i2 / i0, r3 = i3 / i0;
    double l1 = -2.0 * r1;
    double b2 = 4.0 * r2 - 4.0 * r1;
    c->hL[j] = log(i0 * ks * c->dlnk);
    c->hL1[j] = l1;
    c->hL2[j] = b2 - l1 * l1;
    c->hL3[j] = (-8.0 * r1 + 24.0 * r2 - 8.0 * r3) - 3.0 * l1 * b2 + 2.0 * l1 * l1 * l1;
  }
  free(y2);
  if (!(c->hL[nr - 1] < 0))
    return jade_error(JADE_ERR_NUMERIC,
                      "halofit: sigma_G(R = %g Mpc/h) = %g >= 1 today (sigma_8 = %g too large)",
                      JADE_HF_RMAX, exp(0.5 * c->hL[nr - 1]), c->p.sigma_8);
  for (int j = 1; j < nr; j++) /* flat (saturated) is allowed, increasing is not */
    if (!(c->hL[j] <= c->hL[j - 1]))
      return jade_error(JADE_ERR_NUMERIC, "halofit: sigma_G(R) increases with R at R = %g",
                        exp(c->lnr_min + j * hr));

  /* smallest a with R_sigma >= R_min: D(a) = exp(-L_0 / 2), bisection in ln a */
  double dt = exp(-0.5 * c->hL[0]);
  double lo = log(JADE_BG_AMIN), hi = 0.0;
  c->nha = 0;
  if (dt >= 1.0) { /* no nonlinear scale even today: clamped R_sigma at every a */
    c->hf_amin = 1.0;
    return JADE_OK;
  }
  if (jade_cosmo_growth(c, JADE_BG_AMIN) >= dt) {
    hi = lo;
  } else {
    for (int it = 0; it < 100 && hi - lo > 1e-13; it++) {
      double mid = 0.5 * (lo + hi);
      if (jade_cosmo_growth(c, exp(mid)) < dt) lo = mid;
      else hi = mid;
    }
  }
  c->hf_amin = exp(hi);
  if (hi > -1e-3) { /* less than 0.1% of expansion with a nonlinear scale: no table */
    c->hf_amin = 1.0;
    return JADE_OK;
  }

  /* coefficient nodes on [ln hf_amin, 0] */
  int nint = (int)ceil(-hi / JADE_HF_DLNA);
  if (nint < 3) nint = 3;
  c->lna_hf_min = hi;
  c->dlna_hf = -hi / nint;
  c->hcoef = jade_alloc((size_t)(nint + 1) * JADE_HF_NCOEF * sizeof(double));
  if (!c->hcoef) return JADE_ERR_NOMEM;
  for (int j = 0; j <= nint; j++) {
    double lna = (j == nint) ? 0.0 : c->lna_hf_min + j * c->dlna_hf;
    double a = exp(lna);
    double D = jade_cosmo_growth(c, a);
    double *o = c->hcoef + (size_t)j * JADE_HF_NCOEF;
    if (hf_node(c, a, D, o))
      return jade_error(JADE_ERR_NUMERIC, "halofit: no nonlinear scale at a = %g (D = %g)", a, D);
    for (int q = 0; q < JADE_HF_NCOEF; q++)
      if (!isfinite(o[q]))
        return jade_error(JADE_ERR_NUMERIC, "halofit: coefficient %d not finite at a = %g", q, a);
  }
  c->nha = nint + 1;
  return JADE_OK;
}

void jade_cosmo_priv_halofit_free(jade_cosmo *c) {
  free(c->hL);
  c->hL = NULL;
  free(c->hcoef);
  c->hcoef = NULL;
}

/* 4-point Lagrange interpolation of the coefficient nodes at ln a (inside the grid). */
static void hf_interp(const jade_cosmo *c, double lna, double *o) {
  double u = (lna - c->lna_hf_min) / c->dlna_hf;
  int i = (int)floor(u);
  if (i < 1) i = 1;
  if (i > c->nha - 3) i = c->nha - 3;
  double t = u - i;
  double wm = -t * (t - 1) * (t - 2) / 6.0;
  double w0 = (t + 1) * (t - 1) * (t - 2) / 2.0;
  double w1 = -(t + 1) * t * (t - 2) / 2.0;
  double w2 = (t + 1) * t * (t - 1) / 6.0;
  const double *p = c->hcoef + (size_t)(i - 1) * JADE_HF_NCOEF;
  for (int q = 0; q < JADE_HF_NCOEF; q++)
    o[q] = wm * p[q] + w0 * p[q + JADE_HF_NCOEF] + w1 * p[q + 2 * JADE_HF_NCOEF] +
           w2 * p[q + 3 * JADE_HF_NCOEF];
}

static double pk_nl_impl(const jade_cosmo *c, double k, double a, int exact) {
  if (!(k > 0) || !isfinite(k)) return NAN;
  double D = jade_cosmo_growth(c, a);
  if (!(D > 0) || !isfinite(D)) return NAN;
  double lnk = log(k);
  double p0 = jade_cosmo_priv_pk0(c, k);
  double o[JADE_HF_NCOEF];
  if (exact || a < c->hf_amin || c->nha == 0) {
    if (hf_node(c, a, D, o)) return NAN;
  } else {
    hf_interp(c, log(a), o);
  }
  double om = c->Om / (a * a * a * jade_cosmo_priv_E2(c, a));
  return hf_power(o, om, k, lnk, p0 * D * D);
}

double jade_cosmo_pk_nl(const jade_cosmo *c, double k, double a) { return pk_nl_impl(c, k, a, 0); }

double jade_cosmo_priv_pk_nl_exact(const jade_cosmo *c, double k, double a) {
  return pk_nl_impl(c, k, a, 1);
}
