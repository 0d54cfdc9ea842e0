/* Background cosmology of a (w0, wa) CDM universe: E(a), comoving distance, linear growth.
 *
 * E(a)^2 = Omega_m a^-3 + (Omega_g + Omega_nu,rel) a^-4 + Omega_k a^-2
 *          + Omega_de a^(-3(1+w0+wa)) exp(3 wa (a-1))          (Chevallier & Polarski 2001,
 *          Linder 2003 CPL dark energy; CCL paper, Chisari et al. 2019, Eq. 2)
 * chi(a)   = (c/H0) int_a^1 da' / (a'^2 E(a'))                  (Hogg 1999, Eq. 15)
 * growth:  y0 = D, y1 = a^3 E dD/da,
 *          dy0/da = y1 / (a^3 E),  dy1/da = 1.5 Omega_m D / (a^2 E)
 *          i.e. d/da(a^3 E dD/da) = 1.5 Omega_m(a) a E D (linear perturbation theory for
 *          pressureless matter, valid for any w(a); as CCL's growth_ode_system), started at
 *          a = 1e-6 with D = a and dD/da = 1.
 *
 * Everything is tabulated at creation on a uniform grid in ln a, with the exact first and
 * second derivatives (from the equations above) stored alongside, and read back with quintic
 * Hermite interpolation (error ~ h^6). */
#include "cosmo/cosmo_internal.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Physical constants (CODATA 2022, as used by CCL v3) */
#define SIGMA_SB 5.670374419e-8       /* W m^-2 K^-4 */
#define C_LIGHT 299792458.0           /* m/s */
#define G_NEWTON 6.67430e-11          /* m^3 kg^-1 s^-2 */
#define MPC_M 3.085677581491367e22    /* m */

jade_cosmo_params jade_cosmo_params_fiducial(void) {
  jade_cosmo_params p;
  memset(&p, 0, sizeof p);
  /* simulator.md fiducial column (Planck15-like, as jax_cosmo), radiation as CCL */
  p.Omega_c = 0.2589;
  p.Omega_b = 0.0486;
  p.h = 0.6774;
  p.n_s = 0.9667;
  p.sigma_8 = 0.8159;
  p.w_0 = -1.0;
  p.w_a = 0.0;
  p.T_cmb = 2.726;
  p.N_eff = 3.044;
  p.radiation = 1;
  p.Omega_k = 0.0;
  p.transfer = JADE_TRANSFER_EH;
  return p;
}

/* ---- E(a) ------------------------------------------------------------------------------ */
static inline double de_scaling(const jade_cosmo *c, double a) {
  if (c->de_is_lambda) return 1.0;
  return pow(a, -3.0 * (1.0 + c->p.w_0 + c->p.w_a)) * exp(3.0 * c->p.w_a * (a - 1.0));
}

double jade_cosmo_priv_E2(const jade_cosmo *c, double a) {
  double ia = 1.0 / a;
  double ia2 = ia * ia;
  return c->Om * ia2 * ia + c->Or * ia2 * ia2 + c->Ok * ia2 + c->Ode * de_scaling(c, a);
}

double jade_cosmo_priv_Ode_a(const jade_cosmo *c, double a) {
  return c->Ode * de_scaling(c, a) / jade_cosmo_priv_E2(c, a);
}

/* E^2 and its first two derivatives with respect to ln a; for dark energy
 * d ln(rho_de)/dlna = -3 (1 + w(a)), w = w0 + wa (1 - a), dw/dlna = -wa a. */
static void e2_derivs(const jade_cosmo *c, double a, double *e2, double *s1, double *s2) {
  double ia = 1.0 / a, ia2 = ia * ia;
  double rm = c->Om * ia2 * ia, rr = c->Or * ia2 * ia2, rk = c->Ok * ia2;
  double rde = c->Ode * de_scaling(c, a);
  double n = -3.0 * (1.0 + c->p.w_0 + c->p.w_a * (1.0 - a));
  *e2 = rm + rr + rk + rde;
  *s1 = -3.0 * rm - 4.0 * rr - 2.0 * rk + n * rde;
  *s2 = 9.0 * rm + 16.0 * rr + 4.0 * rk + (n * n + 3.0 * c->p.w_a * a) * rde;
}

double jade_cosmo_priv_dlnE(const jade_cosmo *c, double a) {
  double e2, s1, s2;
  e2_derivs(c, a, &e2, &s1, &s2);
  return 0.5 * s1 / e2;
}

double jade_cosmo_E(const jade_cosmo *c, double a) {
  if (!(a > 0) || !isfinite(a)) return NAN;
  double e2 = jade_cosmo_priv_E2(c, a);
  return e2 > 0 ? sqrt(e2) : NAN;
}

double jade_cosmo_Omega_m(const jade_cosmo *c) { return c->Om; }

const jade_cosmo_params *jade_cosmo_get_params(const jade_cosmo *c) { return &c->p; }

/* ---- parameter checks ------------------------------------------------------------------ */
static jade_status check_range(const char *name, double v, double lo, double hi) {
  if (!isfinite(v)) return jade_error(JADE_ERR_INVALID, "cosmology: %s = %g is not finite", name, v);
  if (v < lo || v > hi)
    return jade_error(JADE_ERR_INVALID, "cosmology: %s = %g outside the allowed range [%g, %g]",
                      name, v, lo, hi);
  return JADE_OK;
}

static jade_status validate(const jade_cosmo_params *p) {
  jade_status s;
  if ((s = check_range("Omega_c", p->Omega_c, 0.0, 5.0))) return s;
  if ((s = check_range("Omega_b", p->Omega_b, 0.0, 5.0))) return s;
  if (!(p->Omega_c + p->Omega_b > 1e-4))
    return jade_error(JADE_ERR_INVALID, "cosmology: Omega_m = Omega_c + Omega_b = %g must be > 1e-4",
                      p->Omega_c + p->Omega_b);
  if ((s = check_range("h", p->h, 0.05, 5.0))) return s;
  if ((s = check_range("n_s", p->n_s, -1.0, 4.0))) return s;
  if ((s = check_range("sigma_8", p->sigma_8, 1e-4, 20.0))) return s;
  if ((s = check_range("w_0", p->w_0, -10.0, 3.0))) return s;
  if ((s = check_range("w_a", p->w_a, -20.0, 20.0))) return s;
  if ((s = check_range("T_cmb", p->T_cmb, 0.1, 100.0))) return s;
  if ((s = check_range("N_eff", p->N_eff, 0.0, 100.0))) return s;
  if ((s = check_range("Omega_k", p->Omega_k, -1.0, 1.0))) return s;
  if (p->radiation != 0 && p->radiation != 1)
    return jade_error(JADE_ERR_INVALID, "cosmology: radiation = %d must be 0 or 1", p->radiation);
  if (p->transfer != JADE_TRANSFER_EH && p->transfer != JADE_TRANSFER_EH_NOWIGGLE &&
      p->transfer != JADE_TRANSFER_BBKS)
    return jade_error(JADE_ERR_INVALID, "cosmology: transfer = %d is not a known transfer function",
                      (int)p->transfer);
  if (p->transfer == JADE_TRANSFER_EH && !(p->Omega_b > 0))
    return jade_error(JADE_ERR_INVALID,
                      "cosmology: Omega_b = %g: the Eisenstein-Hu wiggle transfer needs Omega_b > 0",
                      p->Omega_b);
  return JADE_OK;
}

/* ---- tabulation ------------------------------------------------------------------------- */
/* 6-point Gauss-Legendre nodes/weights on [-1, 1] (exact to degree 11; with d ln a = 0.02
 * the error per interval is far below double rounding) */
static const double GL_X[3] = {0.2386191860831969, 0.6612093864662645, 0.9324695142031521};
static const double GL_W[3] = {0.4679139345726910, 0.3607615730481386, 0.1713244923791704};

/* integrand of chi in ln a: c/H0 / (a E) */
static inline double chi_integrand_lna(const jade_cosmo *c, double lna) {
  double a = exp(lna);
  return JADE_C_HMPC / (a * sqrt(jade_cosmo_priv_E2(c, a)));
}

typedef struct {
  const jade_cosmo *c;
} ode_ctx;

/* growth ODE in x = ln a: dy0/dx = y1/(a^2 E), dy1/dx = 1.5 Omega_m D / (a E) */
static int growth_rhs(double x, const double y[], double dydx[], void *params) {
  const jade_cosmo *c = ((const ode_ctx *)params)->c;
  double a = exp(x);
  double e2 = jade_cosmo_priv_E2(c, a);
  if (!(e2 > 0)) return GSL_EBADFUNC;
  double e = sqrt(e2);
  dydx[0] = y[1] / (a * a * e);
  dydx[1] = 1.5 * c->Om * y[0] / (a * e);
  return GSL_SUCCESS;
}

static jade_status tabulate_background(jade_cosmo *c) {
  int n = JADE_BG_NINT;
  c->nbg = n;
  c->lna_min = log(JADE_BG_AMIN);
  c->dlna = -c->lna_min / n;
  double h = c->dlna;
  size_t sz = (size_t)(n + 1);
  double *buf = jade_alloc(7 * sz * sizeof(double));
  if (!buf) return JADE_ERR_NOMEM;
  c->chi = buf;
  c->dchi = buf + sz;
  c->Du = buf + 2 * sz;
  c->fg = buf + 3 * sz;
  c->dfg = buf + 4 * sz;
  c->d2chi = buf + 5 * sz;
  c->d2fg = buf + 6 * sz;

  /* E^2 > 0 on every node (a negative E^2 between nodes shows up as a NaN chi or a failed
   * growth step below) */
  for (int i = 0; i <= n; i++) {
    double a = exp(c->lna_min + i * h);
    double e2 = jade_cosmo_priv_E2(c, a);
    if (!(e2 > 0) || !isfinite(e2))
      return jade_error(JADE_ERR_INVALID,
                        "cosmology: E^2(a = %g) = %g <= 0 (Omega_de = %g, Omega_k = %g): the "
                        "universe does not expand monotonically",
                        a, e2, c->Ode, c->Ok);
    c->dchi[i] = -JADE_C_HMPC / (a * sqrt(e2));
    c->d2chi[i] = -c->dchi[i] * (1.0 + jade_cosmo_priv_dlnE(c, a));
  }
  /* chi by 6-point Gauss-Legendre on each interval, accumulated from a = 1 down */
  c->chi[n] = 0.0;
  for (int i = n - 1; i >= 0; i--) {
    double mid = c->lna_min + (i + 0.5) * h, half = 0.5 * h, s = 0;
    for (int q = 0; q < 3; q++)
      s += GL_W[q] * (chi_integrand_lna(c, mid - half * GL_X[q]) +
                      chi_integrand_lna(c, mid + half * GL_X[q]));
    double v = c->chi[i + 1] + s * half;
    if (!isfinite(v)) return jade_error(JADE_ERR_NUMERIC, "cosmology: chi(a = %g) is not finite", exp(mid));
    c->chi[i] = v;
  }
  c->chi_max = c->chi[0];

  /* growth: GSL Runge-Kutta-Prince-Dormand 8(9), relative tolerance 1e-11 */
  ode_ctx ctx = {c};
  gsl_odeiv2_system sys = {growth_rhs, NULL, 2, &ctx};
  gsl_odeiv2_driver *d = gsl_odeiv2_driver_alloc_y_new(&sys, gsl_odeiv2_step_rk8pd, 0.5 * h, 0.0, 1e-11);
  if (!d) return jade_error(JADE_ERR_NOMEM, "cosmology: cannot allocate the growth ODE driver");
  double amin = JADE_BG_AMIN;
  double y[2] = {amin, amin * amin * amin * sqrt(jade_cosmo_priv_E2(c, amin))};
  double x = c->lna_min;
  jade_status st = JADE_OK;
  for (int i = 0; i <= n; i++) {
    double xi = (i == n) ? 0.0 : c->lna_min + i * h;
    if (i > 0) {
      int gs = gsl_odeiv2_driver_apply(d, &x, xi, y);
      if (gs != GSL_SUCCESS || !isfinite(y[0]) || !isfinite(y[1]) || !(y[0] > 0)) {
        st = jade_error(JADE_ERR_NUMERIC, "cosmology: growth ODE failed at a = %g (gsl status %d)",
                        exp(xi), gs);
        break;
      }
    }
    double a = exp(xi);
    double e2, s1, s2;
    e2_derivs(c, a, &e2, &s1, &s2);
    double e = sqrt(e2);
    c->Du[i] = y[0];
    double f = y[1] / (a * a * e * y[0]);
    c->fg[i] = f;
    /* From the ODE, with eps = dlnE/dlna and Omega_m(a) = Omega_m a^-3 / E^2:
     *   f'  = 1.5 Omega_m(a) - f (2 + eps) - f^2
     *   f'' = 1.5 Omega_m(a) (-3 - 2 eps) - f' (2 + eps) - f eps' - 2 f f'
     *   eps' = S2 / (2 E^2) - 2 eps^2,  S2 = d^2 E^2 / dlna^2 */
    double om_a = c->Om / (a * a * a * e2);
    double eps = 0.5 * s1 / e2, deps = 0.5 * s2 / e2 - 2.0 * eps * eps;
    double fp = 1.5 * om_a - f * (2.0 + eps) - f * f;
    c->dfg[i] = fp;
    c->d2fg[i] = 1.5 * om_a * (-3.0 - 2.0 * eps) - fp * (2.0 + eps) - f * deps - 2.0 * f * fp;
  }
  gsl_odeiv2_driver_free(d);
  if (st) return st;
  c->D1 = c->Du[n];
  return JADE_OK;
}

/* ---- lifetime --------------------------------------------------------------------------- */
jade_status jade_cosmo_create(const jade_cosmo_params *p, jade_cosmo **out) {
  if (!p || !out) return jade_error(JADE_ERR_INVALID, "jade_cosmo_create: NULL argument");
  *out = NULL;
  jade_status s = validate(p);
  if (s) return s;
  jade_cosmo *c = jade_calloc(1, sizeof *c);
  if (!c) return JADE_ERR_NOMEM;
  c->p = *p;
  c->Om = p->Omega_c + p->Omega_b;
  c->Ok = p->Omega_k;
  if (p->radiation) {
    /* Omega_g = (4 sigma_SB T^4 / c^3) / rho_crit, rho_crit = 3 H0^2 / (8 pi G);
     * Omega_nu,rel = N_eff (7/8) (4/11)^(4/3) Omega_g (as CCL ccl_parameters_fill_initial) */
    double H0 = 1e5 * p->h / MPC_M;
    double rho_crit = 3.0 * H0 * H0 / (8.0 * M_PI * G_NEWTON);
    double rho_g = 4.0 * SIGMA_SB / (C_LIGHT * C_LIGHT * C_LIGHT) * pow(p->T_cmb, 4);
    c->Og = rho_g / rho_crit;
    c->Onu = p->N_eff * 7.0 / 8.0 * pow(4.0 / 11.0, 4.0 / 3.0) * c->Og;
  }
  c->Or = c->Og + c->Onu;
  c->Ode = 1.0 - c->Om - c->Or - c->Ok;
  c->de_is_lambda = (p->w_0 == -1.0 && p->w_a == 0.0);

  if ((s = tabulate_background(c)) || (s = jade_cosmo_priv_power_init(c)) ||
      (s = jade_cosmo_priv_halofit_init(c))) {
    jade_cosmo_free(c);
    return s;
  }
  *out = c;
  return JADE_OK;
}

void jade_cosmo_free(jade_cosmo *c) {
  if (!c) return;
  jade_cosmo_priv_halofit_free(c);
  jade_cosmo_priv_power_free(c);
  free(c->chi);
  free(c);
}

/* ---- table lookups ---------------------------------------------------------------------- */
/* Locate ln a in the table: returns 0 and sets (i, t) when inside, -1 below a_min, 1 above 1
 * (a in (1, 1 + 1e-9] is clamped to 1). */
static inline int locate(const jade_cosmo *c, double a, int *i, double *t) {
  if (!(a > 0) || !isfinite(a)) return 1;
  if (a >= 1.0) {
    if (a > 1.0 + 1e-9) return 1;
    *i = c->nbg - 1; /* exactly the last node: D(1) = 1 and chi(1) = 0 without rounding */
    *t = 1.0;
    return 0;
  }
  double u = (log(a) - c->lna_min) / c->dlna;
  if (u < 0) {
    if (u > -1e-9) u = 0;
    else return -1;
  }
  int k = (int)u;
  if (k >= c->nbg) k = c->nbg - 1;
  *i = k;
  *t = u - k;
  return 0;
}

double jade_cosmo_chi(const jade_cosmo *c, double a) {
  int i;
  double t;
  if (locate(c, a, &i, &t)) return NAN;
  double h = c->dlna, h2 = h * h;
  return jade_hermite5(t, c->chi[i], c->dchi[i] * h, c->d2chi[i] * h2, c->chi[i + 1],
                       c->dchi[i + 1] * h, c->d2chi[i + 1] * h2);
}

double jade_cosmo_a_of_chi(const jade_cosmo *c, double chi) {
  if (!isfinite(chi)) return NAN;
  if (chi <= 0) return chi > -1e-9 ? 1.0 : NAN;
  if (chi > c->chi_max) return NAN;
  /* chi decreases with the index: find i with chi[i] >= chi > chi[i+1] */
  int lo = 0, hi = c->nbg;
  while (hi - lo > 1) {
    int mid = (lo + hi) >> 1;
    if (c->chi[mid] >= chi) lo = mid;
    else hi = mid;
  }
  int i = lo;
  double h = c->dlna, h2 = h * h;
  double y0 = c->chi[i], y1 = c->chi[i + 1], m0 = c->dchi[i] * h, m1 = c->dchi[i + 1] * h;
  double s0 = c->d2chi[i] * h2, s1 = c->d2chi[i + 1] * h2;
  /* safeguarded Newton on the Hermite quintic, which is monotone on the interval */
  double tl = 0, tr = 1;
  double t = (y0 - chi) / (y0 - y1);
  for (int it = 0; it < 40; it++) {
    double g = jade_hermite5(t, y0, m0, s0, y1, m1, s1) - chi;
    if (g > 0) tl = t;
    else tr = t;
    double dg = jade_hermite5_d(t, y0, m0, s0, y1, m1, s1);
    double tn = (dg < 0) ? t - g / dg : 0.5 * (tl + tr);
    if (!(tn > tl && tn < tr)) tn = 0.5 * (tl + tr);
    if (fabs(tn - t) < 1e-15) {
      t = tn;
      break;
    }
    t = tn;
  }
  return exp(c->lna_min + (i + t) * h);
}

double jade_cosmo_growth_unnorm(const jade_cosmo *c, double a) {
  int i;
  double t;
  int r = locate(c, a, &i, &t);
  if (r < 0) return a; /* deep in the early universe D = a (the ODE's initial condition) */
  if (r > 0) return NAN;
  /* quintic Hermite: D' = f D, D'' = (f' + f^2) D */
  double h = c->dlna, h2 = h * h;
  double D0 = c->Du[i], D1 = c->Du[i + 1], f0 = c->fg[i], f1 = c->fg[i + 1];
  return jade_hermite5(t, D0, f0 * D0 * h, (c->dfg[i] + f0 * f0) * D0 * h2, D1, f1 * D1 * h,
                       (c->dfg[i + 1] + f1 * f1) * D1 * h2);
}

double jade_cosmo_growth(const jade_cosmo *c, double a) {
  return jade_cosmo_growth_unnorm(c, a) / c->D1;
}

double jade_cosmo_growth_rate(const jade_cosmo *c, double a) {
  int i;
  double t;
  int r = locate(c, a, &i, &t);
  if (r < 0) return 1.0;
  if (r > 0) return NAN;
  double h = c->dlna, h2 = h * h;
  return jade_hermite5(t, c->fg[i], c->dfg[i] * h, c->d2fg[i] * h2, c->fg[i + 1], c->dfg[i + 1] * h,
                       c->d2fg[i + 1] * h2);
}
