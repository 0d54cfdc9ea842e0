/* Private (not installed): the survey's internal n(z) grid and the line-of-sight quadrature
 * with tabulated lensing kernels, shared by limber.c (C_ell) and shift.c (lambda). */
#ifndef JADE_COSMO_LOS_H
#define JADE_COSMO_LOS_H
#include "jade/cosmo.h"

/* The survey's n(z) on its internal grid (non-decreasing z; a z value may repeat at a bin
 * edge, holding the left and right limits of n). nz[b * n + k] has unit integral per bin.
 * *smooth = 1 when n is smooth between repeated points (Smail, or the C1 cubic spline of a
 * table: higher-order rules apply), 0 when n is the linear interpolant of a table (the
 * trapezoid rule is exact). Returns n. */
int jade_survey_grid_(const jade_survey *s, const double **z, const double **nz, int *smooth);

/* Line-of-sight quadrature: nodes z_j in (0, z_max) with weights w_j so that
 * int_0^{chi(z_max)} f(chi) dchi ~= sum_j w_j f(chi_j), and the lensing efficiency of every
 * bin at each node,
 *   q_i(chi) = (3/2) Omega_m (H0/c)^2 (chi/a) int_{z(chi)} dz' n_i(z') (chi(z') - chi)/chi(z')
 * (e.g. Bartelmann & Schneider 2001, Eq. 6.21; Kilbinger 2015, Eq. 9), in h/Mpc. */
typedef struct {
  int n, n_bins;
  double *z, *a, *chi, *w; /* [n] */
  double *q;               /* [n_bins][n] */
} jade_los;

/* Quadrature rule: Gauss-Legendre of `order` points on panels of width du in
 * u(z) = ln(1+z) + c ln(1 + z/zs). */
typedef struct {
  double du;
  int order;
  double c, zs;
} jade_los_rule;
#define JADE_LOS_RULE_DEFAULT {0.2, 8, 0.3, 0.01}
#define JADE_LOS_RULE_SHIFT {0.2, 6, 0.0, 1.0}
jade_status jade_los_build(const jade_cosmo *c, const jade_survey *s, jade_los *los);
/* Same with an explicit rule; z_max <= 0 means the survey's z_max. */
jade_status jade_los_build_res_(const jade_cosmo *c, const jade_survey *s, const jade_los_rule *rule,
                                double z_max, jade_los *los);
void jade_los_free(jade_los *los);

/* C_ell on a given line-of-sight rule (jade_cosmo_limber_cl without argument checks). */
jade_status jade_limber_cl_los_(const jade_cosmo *c, const jade_los *los, int n_ell, const double *ell,
                                jade_cl_kind kind, int nonlinear, double *cl);

/* jade_cosmo_lognormal_shift on a given rule; also returns <kappa^2> and <kappa^3> per bin
 * when var / third are not NULL. */
jade_status jade_lognormal_shift_rule_(const jade_cosmo *c, const jade_survey *s, double theta_arcmin,
                                       const jade_los_rule *rule, double *lambda, double *var, double *third);

/* mu(a) = 1 - D2/D1^2 of second-order perturbation theory (5/7 in Einstein-de Sitter). */
double jade_growth2_mu_(const jade_cosmo *c, double a);

/* n-point Gauss-Legendre nodes and weights on [-1, 1], n <= 64. */
void jade_gauss_legendre_(int n, double *x, double *w);

#endif
