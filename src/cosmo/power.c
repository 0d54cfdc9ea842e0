/* Linear matter power spectrum: P(k, a) = A k^n_s T(k)^2 D(a)^2, A fixed by sigma_8.
 *
 * Transfer functions (k in h/Mpc throughout, as in CCL's ccl_eh.c):
 *  - Eisenstein & Hu 1998 (ApJ 496, 605) baryons + CDM with acoustic oscillations,
 *    Eqs. 2-24, exact sound horizon Eq. 6, following the authors' tf_fit.c conventions
 *    (R_d = R(1 + z_d), y = z_eq / (1 + z_d)).
 *  - Eisenstein & Hu 1998 zero-baryon-oscillation shape, Eqs. 26 and 28-31.
 *  - BBKS (Bardeen et al. 1986, Eq. G3) with the Sugiyama (1995) shape parameter
 *    Gamma = Omega_m h exp(-Omega_b (1 + sqrt(2h)/Omega_m)), q = Theta_2.7^2 k / Gamma.
 * sigma_R: top-hat W(x) = 3 (sin x - x cos x) / x^3, sigma^2 = int dlnk Delta^2(k) W^2(kR)
 * (Peebles 1980), evaluated with the trapezoid rule on the uniform ln k grid of the table,
 * which converges geometrically for these smooth integrands that vanish at both ends (accurate
 * to ~1e-8 for 1e-3 <= R <= 1e3 Mpc/h; the grid ends at k = JADE_PK_KMAX).
 *
 * ln P(k, a=1) is tabulated on a uniform ln k grid (JADE_PK_*) with a natural cubic spline;
 * outside the grid it is evaluated directly. */
#include "cosmo/cosmo_internal.h"

#include <math.h>
#include <stdlib.h>

/* ---- Eisenstein & Hu 1998 --------------------------------------------------------------- */
static void eh_init(jade_cosmo *c) {
  const jade_cosmo_params *p = &c->p;
  jade_eh98 *e = &c->eh;
  double h = p->h;
  double omh2 = c->Om * h * h, obh2 = p->Omega_b * h * h;
  double th = p->T_cmb / 2.7, th4 = th * th * th * th;
  e->th27 = th;
  e->fb = p->Omega_b / c->Om;
  e->zeq = 2.5e4 * omh2 / th4;                 /* Eq. 2 */
  e->keq = 0.0746 * omh2 / (h * th * th);      /* Eq. 3, h/Mpc */
  double b1 = 0.313 * pow(omh2, -0.419) * (1 + 0.607 * pow(omh2, 0.674)); /* Eq. 4 */
  double b2 = 0.238 * pow(omh2, 0.223);
  e->zdrag = 1291 * pow(omh2, 0.251) * (1 + b1 * pow(obh2, b2)) / (1 + 0.659 * pow(omh2, 0.828));
  double req = 31.5 * obh2 * 1000.0 / (e->zeq * th4);          /* Eq. 5 */
  double rd = 31.5 * obh2 * 1000.0 / ((1 + e->zdrag) * th4);
  if (obh2 > 0)                                                 /* Eq. 6 */
    e->rsound = 2.0 / (3.0 * e->keq) * sqrt(6.0 / req) *
                log((sqrt(1 + rd) + sqrt(rd + req)) / (1 + sqrt(req)));
  else
    e->rsound = 0;
  e->ksilk = 1.6 * pow(obh2, 0.52) * pow(omh2, 0.73) * (1 + pow(10.4 * omh2, -0.95)) / h; /* Eq. 7 */
  double a1 = pow(46.9 * omh2, 0.670) * (1 + pow(32.1 * omh2, -0.532)); /* Eq. 11 */
  double a2 = pow(12.0 * omh2, 0.424) * (1 + pow(45.0 * omh2, -0.582));
  double fb = e->fb;
  e->alphac = pow(a1, -fb) * pow(a2, -fb * fb * fb);
  double bb1 = 0.944 / (1 + pow(458 * omh2, -0.708)); /* Eq. 12 */
  double bb2 = pow(0.395 * omh2, -0.0266);
  e->betac = 1.0 / (1 + bb1 * (pow(1 - fb, bb2) - 1));
  double y = e->zeq / (1 + e->zdrag);                 /* Eq. 15 */
  double sqy = sqrt(1 + y);
  double gy = y * (-6 * sqy + (2 + 3 * y) * log((sqy + 1) / (sqy - 1)));
  e->alphab = 2.07 * e->keq * e->rsound * pow(1 + rd, -0.75) * gy;         /* Eq. 14 */
  e->betab = 0.5 + fb + (3 - 2 * fb) * sqrt(pow(17.2 * omh2, 2) + 1);        /* Eq. 24 */
  e->bnode = 8.41 * pow(omh2, 0.435);                                         /* Eq. 23 */
  e->rsound_approx = h * 44.5 * log(9.83 / omh2) / sqrt(1 + 10 * pow(obh2, 0.75)); /* Eq. 26 */
  e->alpha_gamma = 1 - 0.328 * log(431 * omh2) * fb + 0.38 * log(22.3 * omh2) * fb * fb; /* Eq. 31 */
  e->bbks_shape = c->Om * h * exp(-p->Omega_b * (1.0 + sqrt(2.0 * h) / c->Om));
}

/* EH98 Eqs. 10 and 16-24 (T0 of Eqs. 19-20 evaluated for (1, beta_c), (alpha_c, beta_c) and
 * (1, 1) with the shared q^1.08 and logarithms computed once). */
static double eh_wiggle_tk(const jade_eh98 *e, double k) {
  double q = k / (13.41 * e->keq);                                 /* Eq. 10 */
  double c386 = 386.0 / (1 + 69.9 * exp(1.08 * log(q)));           /* Eq. 20, second term */
  double q2 = q * q;
  double lbc = log(M_E + 1.8 * e->betac * q);                      /* Eq. 19 */
  double l11 = log(M_E + 1.8 * q);
  double t0_1bc = lbc / (lbc + (14.2 + c386) * q2);                /* T0(k, 1, beta_c) */
  double t0_acbc = lbc / (lbc + (14.2 / e->alphac + c386) * q2);   /* T0(k, alpha_c, beta_c) */
  double t0_11 = l11 / (l11 + (14.2 + c386) * q2);                 /* T0(k, 1, 1) */
  double ks = k * e->rsound;
  double ks4 = (ks / 5.4) * (ks / 5.4);
  ks4 *= ks4;
  double f = 1.0 / (1.0 + ks4);                                    /* Eq. 18 */
  double tc = f * t0_1bc + (1 - f) * t0_acbc;                      /* Eq. 17 */
  double tb;
  if (k > 0) {                                                     /* Eqs. 21-22 */
    double bn = e->bnode / ks;
    double stilde_k = ks / cbrt(1.0 + bn * bn * bn);
    double x52 = ks / 5.2;
    double part1 = t0_11 / (1 + x52 * x52);
    double bb = e->betab / ks;
    double part2 = e->alphab / (1 + bb * bb * bb) * exp(-exp(1.4 * log(k / e->ksilk)));
    double x2 = stilde_k * stilde_k;
    double j0 = (x2 < 1e-4) ? 1 - x2 * (1 - x2 / 20.0) / 6.0 : sin(stilde_k) / stilde_k;
    tb = j0 * (part1 + part2);
  } else {
    tb = 1.0;
  }
  return e->fb * tb + (1 - e->fb) * tc; /* Eq. 16 */
}

static double eh_nowiggle_tk(const jade_cosmo *c, double k) {
  const jade_eh98 *e = &c->eh;
  double x = 0.43 * k * e->rsound_approx;
  double x2 = x * x;
  double gamma_eff = c->Om * c->p.h * (e->alpha_gamma + (1 - e->alpha_gamma) / (1 + x2 * x2)); /* Eq. 30 */
  double q = k * e->th27 * e->th27 / gamma_eff;  /* Eq. 28 */
  double l0 = log(2 * M_E + 1.8 * q);            /* Eq. 29 */
  double c0 = 14.2 + 731.0 / (1 + 62.5 * q);
  return l0 / (l0 + c0 * q * q);
}

static double bbks_tk2(const jade_cosmo *c, double k) {
  double q = c->eh.th27 * c->eh.th27 * k / c->eh.bbks_shape;
  if (q < 1e-8) return 1.0;
  double l = log(1 + 2.34 * q) / (2.34 * q);
  double poly = 1 + 3.89 * q + pow(16.1 * q, 2) + pow(5.46 * q, 3) + pow(6.71 * q, 4);
  return l * l / sqrt(poly);
}

double jade_cosmo_priv_tk2(const jade_cosmo *c, double k) {
  switch (c->p.transfer) {
  case JADE_TRANSFER_EH: {
    double t = eh_wiggle_tk(&c->eh, k);
    return t * t;
  }
  case JADE_TRANSFER_EH_NOWIGGLE: {
    double t = eh_nowiggle_tk(c, k);
    return t * t;
  }
  case JADE_TRANSFER_BBKS:
  default:
    return bbks_tk2(c, k);
  }
}

/* ---- table ------------------------------------------------------------------------------ */
static inline double tophat(double x) {
  if (x < 1e-3) {
    double x2 = x * x;
    return 1.0 - x2 / 10.0 + x2 * x2 / 280.0;
  }
  return 3.0 * (sin(x) - x * cos(x)) / (x * x * x);
}

/* natural cubic spline second derivatives for a uniform grid (tridiagonal solve) */
static void spline_uniform(int n, double h, const double *y, double *d2, double *work) {
  d2[0] = 0;
  work[0] = 0;
  for (int i = 1; i < n - 1; i++) {
    double pp = 0.5 * d2[i - 1] + 2.0;
    d2[i] = -0.5 / pp;
    double rhs = (y[i + 1] - 2 * y[i] + y[i - 1]) / h;
    work[i] = (6.0 * rhs / (2.0 * h) - 0.5 * work[i - 1]) / pp;
  }
  d2[n - 1] = 0;
  for (int i = n - 2; i >= 0; i--) d2[i] = d2[i] * d2[i + 1] + work[i];
}

jade_status jade_cosmo_priv_power_init(jade_cosmo *c) {
  eh_init(c);
  int nk = (int)ceil((log(JADE_PK_KMAX) - log(JADE_PK_KMIN)) / JADE_PK_DLNK) + 1;
  c->nk = nk;
  c->lnk_min = log(JADE_PK_KMIN);
  c->dlnk = JADE_PK_DLNK;
  double *buf = jade_alloc(4 * (size_t)nk * sizeof(double));
  if (!buf) return JADE_ERR_NOMEM;
  c->lnp = buf;
  c->lnp_d2 = buf + nk;
  c->d2 = buf + 2 * nk;
  double *work = buf + 3 * nk;
  double ns = c->p.n_s;
  double s2 = 0;
  for (int i = 0; i < nk; i++) {
    double lk = c->lnk_min + i * c->dlnk;
    double k = exp(lk);
    double t2 = jade_cosmo_priv_tk2(c, k);
    if (!(t2 > 0) || !isfinite(t2))
      return jade_error(JADE_ERR_NUMERIC, "cosmology: transfer function T(k = %g)^2 = %g is not positive",
                        k, t2);
    c->lnp[i] = ns * lk + log(t2);
    double d2 = exp(c->lnp[i] + 3 * lk) / (2 * M_PI * M_PI);
    c->d2[i] = d2;
    double w = tophat(8.0 * k);
    s2 += (i == 0 || i == nk - 1 ? 0.5 : 1.0) * d2 * w * w;
  }
  s2 *= c->dlnk;
  if (!(s2 > 0) || !isfinite(s2))
    return jade_error(JADE_ERR_NUMERIC, "cosmology: unnormalised sigma_8^2 = %g", s2);
  /* sigma_8 normalisation */
  c->amp = c->p.sigma_8 * c->p.sigma_8 / s2;
  double lamp = log(c->amp);
  for (int i = 0; i < nk; i++) {
    c->lnp[i] += lamp;
    c->d2[i] *= c->amp;
  }
  spline_uniform(nk, c->dlnk, c->lnp, c->lnp_d2, work);
  return JADE_OK;
}

void jade_cosmo_priv_power_free(jade_cosmo *c) {
  free(c->lnp);
  c->lnp = NULL;
}

double jade_cosmo_priv_pk0(const jade_cosmo *c, double k) {
  double lk = log(k);
  double u = (lk - c->lnk_min) / c->dlnk;
  if (u >= 0 && u <= c->nk - 1) {
    int i = (int)u;
    if (i >= c->nk - 1) i = c->nk - 2;
    double b = u - i, a = 1 - b;
    double h2 = c->dlnk * c->dlnk / 6.0;
    double y = a * c->lnp[i] + b * c->lnp[i + 1] +
               ((a * a * a - a) * c->lnp_d2[i] + (b * b * b - b) * c->lnp_d2[i + 1]) * h2;
    return exp(y);
  }
  return c->amp * pow(k, c->p.n_s) * jade_cosmo_priv_tk2(c, k);
}

double jade_cosmo_pk_lin(const jade_cosmo *c, double k, double a) {
  if (!(k > 0) || !isfinite(k)) return NAN;
  double d = jade_cosmo_growth(c, a);
  return jade_cosmo_priv_pk0(c, k) * d * d;
}

double jade_cosmo_sigma_R(const jade_cosmo *c, double R, double a) {
  if (!(R > 0) || !isfinite(R)) return NAN;
  double d = jade_cosmo_growth(c, a);
  /* trapezoid in ln k over the tabulated grid; stop once (kR)^-4 Delta^2 is negligible */
  double s = 0;
  for (int i = 0; i < c->nk; i++) {
    double k = exp(c->lnk_min + i * c->dlnk);
    double x = k * R;
    if (x > 2e3) break;
    double w = tophat(x);
    s += c->d2[i] * w * w;
  }
  return d * sqrt(s * c->dlnk);
}
