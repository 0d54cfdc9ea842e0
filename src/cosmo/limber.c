/* Lensing efficiency kernels and Limber C_ell for every pair of tomographic bins.
 *
 * Kernel (Bartelmann & Schneider 2001, Phys. Rep. 340, 291, Sec. 6; Kilbinger 2015, Rep.
 * Prog. Phys. 78, 086901, Sec. 2), flat universe:
 *   q_i(chi) = (3/2) Omega_m (H0/c)^2 (chi/a) int_{z(chi)}^{z_max} dz' n_i(z') (chi' - chi)/chi'
 * computed once per call from two cumulative integrals of the survey's n(z) grid,
 *   N_i(z) = int_z n_i,  M_i(z) = int_z n_i/chi,   q_i = (3/2) Omega_m/R_H^2 chi/a (N_i - chi M_i).
 * Limber with k = (l + 1/2)/chi (LoVerde & Afshordi 2008, PRD 78, 123506):
 *   C_ij(l) = F_l int_0^{chi_max} dchi q_i q_j / chi^2 P(k = (l+1/2)/chi, z(chi)),
 * with F_l = (l+2)!/((l-2)! (l+1/2)^4) for the shear E-mode (Kitching et al. 2017, MNRAS 469,
 * 2737; Kilbinger et al. 2017, MNRAS 472, 2126; CCL's WeakLensingTracer uses an approximation
 * of it) or F_l = 1 for the bare convergence integral.
 * The chi integral uses a fixed Gauss-Legendre rule on panels uniform in
 * u = ln(1+z) + 0.3 ln(1 + z/0.01), so one call costs n_ell x n_nodes power-spectrum
 * evaluations and nothing adaptive (~2e-5 quadrature error for 10 <= l <= 1e4). */
#include "los.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Gauss-Legendre nodes/weights on [-1, 1]: Newton iteration on the Legendre polynomial P_n
 * from the usual cosine initial guess, w_i = 2 / ((1 - x_i^2) P_n'(x_i)^2) (Abramowitz &
 * Stegun 25.4.29). */
void jade_gauss_legendre_(int n, double *x, double *w) {
  for (int i = 0; i < (n + 1) / 2; i++) {
    double t = cos(M_PI * (i + 0.75) / (n + 0.5)), dp = 1.0;
    for (int it = 0; it < 100; it++) {
      double p0 = 1.0, p1 = t;
      for (int k = 2; k <= n; k++) {
        double p2 = ((2.0 * k - 1.0) * t * p1 - (k - 1.0) * p0) / k;
        p0 = p1;
        p1 = p2;
      }
      if (n == 1) p0 = 1.0, p1 = t;
      dp = n * (t * p1 - p0) / (t * t - 1.0);
      double dt = p1 / dp;
      t -= dt;
      if (fabs(dt) < 1e-16) break;
    }
    {
      double p0 = 1.0, p1 = t;
      for (int k = 2; k <= n; k++) {
        double p2 = ((2.0 * k - 1.0) * t * p1 - (k - 1.0) * p0) / k;
        p0 = p1;
        p1 = p2;
      }
      if (n == 1) p0 = 1.0, p1 = t;
      dp = n * (t * p1 - p0) / (t * t - 1.0);
    }
    x[i] = -t;
    x[n - 1 - i] = t;
    w[i] = w[n - 1 - i] = 2.0 / ((1.0 - t * t) * dp * dp);
  }
}

void jade_los_free(jade_los *los) {
  if (!los) return;
  free(los->z);
  free(los->a);
  free(los->chi);
  free(los->w);
  free(los->q);
  memset(los, 0, sizeof *los);
}

/* Quadrature variable u(z) = ln(1+z) + c ln(1 + z/z_s): ln(1+z) at high z, and denser at low z
 * where, at low ell, k = (l+1/2)/chi sweeps through the BAO wiggles quickly. */
static double u_of_z(const jade_los_rule *r, double z) { return log1p(z) + r->c * log1p(z / r->zs); }
static double dudz(const jade_los_rule *r, double z) { return 1.0 / (1.0 + z) + r->c / (r->zs + z); }
static double z_of_u(const jade_los_rule *r, double u, double zmax) {
  double lo = 0.0, hi = zmax, z = 0.5 * zmax;
  for (int it = 0; it < 200; it++) { /* safeguarded Newton on the monotone u(z) */
    double f = u_of_z(r, z) - u;
    if (f > 0) hi = z;
    else lo = z;
    double zn = z - f / dudz(r, z);
    if (!(zn > lo && zn < hi)) zn = 0.5 * (lo + hi);
    if (fabs(zn - z) <= 1e-15 * (1.0 + z)) return zn;
    z = zn;
  }
  return z;
}

jade_status jade_los_build_res_(const jade_cosmo *c, const jade_survey *s, const jade_los_rule *rule,
                                double z_max, jade_los *los) {
  memset(los, 0, sizeof *los);
  if (!c || !s) return jade_error(JADE_ERR_INVALID, "lensing kernels: cosmology or survey is NULL");
  double du = rule->du;
  int order = rule->order;
  if (!(du > 0.0) || order < 1 || order > 64 || !(rule->c >= 0.0) || !(rule->zs > 0.0))
    return jade_error(JADE_ERR_INVALID, "lensing kernels: bad quadrature (du %g, order %d)", du, order);
  const double *zg, *nzg;
  int smooth;
  int ng = jade_survey_grid_(s, &zg, &nzg, &smooth);
  int nb = jade_survey_n_bins(s);
  if (!(z_max > 0.0)) z_max = zg[ng - 1];
  double umax = u_of_z(rule, z_max);
  int npan = (int)ceil(umax / du - 1e-9);
  if (npan < 1) npan = 1;
  int n = npan * order;
  los->n = n;
  los->n_bins = nb;
  los->z = jade_alloc(sizeof(double) * (size_t)n);
  los->a = jade_alloc(sizeof(double) * (size_t)n);
  los->chi = jade_alloc(sizeof(double) * (size_t)n);
  los->w = jade_alloc(sizeof(double) * (size_t)n);
  los->q = jade_alloc(sizeof(double) * (size_t)n * (size_t)nb);
  /* grid work arrays: chi, N, M (per bin) */
  double *chig = jade_alloc(sizeof(double) * (size_t)ng);
  double *cumN = jade_alloc(sizeof(double) * (size_t)ng * (size_t)nb);
  double *cumM = jade_alloc(sizeof(double) * (size_t)ng * (size_t)nb);
  if (!los->z || !los->a || !los->chi || !los->w || !los->q || !chig || !cumN || !cumM) {
    free(chig), free(cumN), free(cumM);
    jade_los_free(los);
    return JADE_ERR_NOMEM;
  }
  jade_status st = JADE_OK;
  /* chi on the survey grid (repeated z values reuse the previous chi) */
  for (int k = 0; k < ng; k++) {
    chig[k] = (k > 0 && zg[k] == zg[k - 1]) ? chig[k - 1] : jade_cosmo_chi(c, 1.0 / (1.0 + zg[k]));
    if (chig[k] < 0.0 && chig[k] > -1e-6) chig[k] = 0.0; /* rounding at z = 0 */
    if (!isfinite(chig[k]) || chig[k] < 0.0) {
      st = jade_error(JADE_ERR_NUMERIC, "lensing kernels: chi(z = %g) = %g", zg[k], chig[k]);
      goto done;
    }
  }
  /* cumulative integrals from the top of the grid. Smooth n: each interval with the
   * third-order 3-point rule h/12 (5 f_k + 8 f_k+1 - f_k+2) (or its mirror image) on uniformly
   * spaced neighbours; otherwise (linear interpolant of a table, or no such neighbours) the
   * trapezoid rule. n/chi at chi = 0 is set to 0: M[0] is then never used (below). */
  for (int b = 0; b < nb; b++) {
    const double *nzb = nzg + (size_t)b * ng;
    double *N = cumN + (size_t)b * ng, *M = cumM + (size_t)b * ng;
    N[ng - 1] = M[ng - 1] = 0.0;
#define GM(i) (chig[i] > 0.0 ? nzb[i] / chig[i] : 0.0)
    for (int k = ng - 2; k >= 0; k--) {
      double h = zg[k + 1] - zg[k], dN, dM;
      if (smooth && h > 0.0 && k + 2 < ng && fabs(zg[k + 2] - zg[k + 1] - h) < 1e-9 * h && chig[k] > 0.0) {
        dN = h / 12.0 * (5.0 * nzb[k] + 8.0 * nzb[k + 1] - nzb[k + 2]);
        dM = h / 12.0 * (5.0 * GM(k) + 8.0 * GM(k + 1) - GM(k + 2));
      } else if (smooth && h > 0.0 && k >= 1 && fabs(zg[k] - zg[k - 1] - h) < 1e-9 * h && chig[k - 1] > 0.0) {
        dN = h / 12.0 * (-nzb[k - 1] + 8.0 * nzb[k] + 5.0 * nzb[k + 1]);
        dM = h / 12.0 * (-GM(k - 1) + 8.0 * GM(k) + 5.0 * GM(k + 1));
      } else {
        dN = 0.5 * h * (nzb[k] + nzb[k + 1]);
        dM = 0.5 * h * (GM(k) + GM(k + 1));
      }
      N[k] = N[k + 1] + dN;
      M[k] = M[k + 1] + dM;
    }
#undef GM
  }
  /* nodes: Gauss-Legendre on panels uniform in u; dchi = R_H/E(z) dz/du du */
  double gx[64], gw[64];
  jade_gauss_legendre_(order, gx, gw);
  const double pref = 1.5 * jade_cosmo_Omega_m(c) / (JADE_C_HMPC * JADE_C_HMPC);
  int kk = 0; /* grid interval pointer: last k with zg[k] <= z (or -1 below the grid) */
  if (zg[0] > 0.0) kk = -1;
  for (int p = 0; p < npan; p++) {
    double u0 = umax * p / npan, u1 = umax * (p + 1) / npan, hu = 0.5 * (u1 - u0);
    for (int g = 0; g < order; g++) {
      int j = p * order + g;
      double u = u0 + hu * (1.0 + gx[g]);
      double z = z_of_u(rule, u, z_max), a = 1.0 / (1.0 + z);
      double chi = jade_cosmo_chi(c, a), E = jade_cosmo_E(c, a);
      if (!isfinite(chi) || !(chi > 0.0) || !isfinite(E) || !(E > 0.0)) {
        st = jade_error(JADE_ERR_NUMERIC, "lensing kernels: chi = %g, E = %g at z = %g", chi, E, z);
        goto done;
      }
      los->z[j] = z;
      los->a[j] = a;
      los->chi[j] = chi;
      los->w[j] = hu * gw[g] / dudz(rule, z) * JADE_C_HMPC / E;
      while (kk + 1 < ng && zg[kk + 1] <= z) kk++;
      for (int b = 0; b < nb; b++) {
        const double *nzb = nzg + (size_t)b * ng;
        const double *N = cumN + (size_t)b * ng, *M = cumM + (size_t)b * ng;
        double integral; /* int_z dz' n(z') (1 - chi/chi(z')) */
        if (kk < 0) {
          integral = N[0] - chi * M[0];
        } else if (kk >= ng - 1) {
          integral = 0.0;
        } else {
          /* whole intervals above k+1, plus the trapezoid over [z, z_k+1] (integrand 0 at z) */
          integral = (N[kk + 1] - chi * M[kk + 1]) +
                     0.5 * (zg[kk + 1] - z) * nzb[kk + 1] * (1.0 - chi / chig[kk + 1]);
        }
        if (integral < 0.0) integral = 0.0; /* rounding at the top of the distribution */
        los->q[(size_t)b * n + j] = pref * chi / a * integral;
      }
    }
  }
done:
  free(chig);
  free(cumN);
  free(cumM);
  if (st) jade_los_free(los);
  return st;
}

jade_status jade_los_build(const jade_cosmo *c, const jade_survey *s, jade_los *los) {
  const jade_los_rule rule = JADE_LOS_RULE_DEFAULT;
  return jade_los_build_res_(c, s, &rule, 0.0, los);
}

/* Shear E-mode prefactor (l+2)!/(l-2)! / (l+1/2)^4 for real l, zero below l = 1. */
static double shear_prefactor(double l) {
  double f = (l + 2.0) * (l + 1.0) * l * (l - 1.0);
  double h = l + 0.5;
  return f > 0.0 ? f / (h * h * h * h) : 0.0;
}

jade_status jade_limber_cl_los_(const jade_cosmo *c, const jade_los *los, int n_ell, const double *ell,
                                jade_cl_kind kind, int nonlinear, double *cl) {
  int nb = los->n_bins, np = jade_n_pairs(nb), n = los->n;
  jade_status st = JADE_OK;
  int bad = -1;
  double badk = 0.0, bada = 0.0;
#pragma omp parallel for schedule(dynamic, 4) if (n_ell >= 8)
  for (int il = 0; il < n_ell; il++) {
    double acc[JADE_MAX_BINS * (JADE_MAX_BINS + 1) / 2];
    for (int p = 0; p < np; p++) acc[p] = 0.0;
    double lh = ell[il] + 0.5;
    int ok = 1;
    for (int j = 0; j < n; j++) {
      double k = lh / los->chi[j];
      double P = nonlinear ? jade_cosmo_pk_nl(c, k, los->a[j]) : jade_cosmo_pk_lin(c, k, los->a[j]);
      if (!isfinite(P)) {
        ok = 0;
#pragma omp critical(jade_limber_err)
        if (bad < 0 || il < bad) bad = il, badk = k, bada = los->a[j];
        break;
      }
      double wp = los->w[j] * P / (los->chi[j] * los->chi[j]);
      int p = 0;
      for (int b1 = 0; b1 < nb; b1++) {
        double t = wp * los->q[(size_t)b1 * n + j];
        for (int b2 = b1; b2 < nb; b2++) acc[p++] += t * los->q[(size_t)b2 * n + j];
      }
    }
    double F = (kind == JADE_CL_SHEAR) ? shear_prefactor(ell[il]) : 1.0;
    for (int p = 0; p < np; p++) cl[(size_t)il * np + p] = ok ? F * acc[p] : NAN;
  }
  if (bad >= 0)
    st = jade_error(JADE_ERR_NUMERIC, "Limber C_ell: P(k = %g h/Mpc, a = %g) is not finite (ell = %g)", badk, bada,
                    ell[bad]);
  return st;
}

jade_status jade_cosmo_limber_cl(const jade_cosmo *c, const jade_survey *s, int n_ell, const double *ell,
                                 jade_cl_kind kind, int nonlinear, double *cl) {
  if (!c || !s || !ell || !cl) return jade_error(JADE_ERR_INVALID, "jade_cosmo_limber_cl: NULL argument");
  if (n_ell < 1) return jade_error(JADE_ERR_INVALID, "jade_cosmo_limber_cl: n_ell = %d must be >= 1", n_ell);
  if (kind != JADE_CL_SHEAR && kind != JADE_CL_CONVERGENCE)
    return jade_error(JADE_ERR_INVALID, "jade_cosmo_limber_cl: unknown kind %d", (int)kind);
  if (nonlinear != 0 && nonlinear != 1)
    return jade_error(JADE_ERR_INVALID, "jade_cosmo_limber_cl: nonlinear = %d must be 0 or 1", nonlinear);
  for (int i = 0; i < n_ell; i++)
    if (!isfinite(ell[i]) || ell[i] < 0.0)
      return jade_error(JADE_ERR_INVALID, "jade_cosmo_limber_cl: ell[%d] = %g must be finite and >= 0", i, ell[i]);
  jade_los los;
  jade_status st = jade_los_build(c, s, &los);
  if (st) return jade_error_context(st, "Limber C_ell");
  st = jade_limber_cl_los_(c, &los, n_ell, ell, kind, nonlinear, cl);
  jade_los_free(&los);
  return st;
}
