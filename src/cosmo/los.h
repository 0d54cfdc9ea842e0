/* Private (not installed): the survey's internal n(z) grid and the line-of-sight quadrature
 * with tabulated lensing kernels, shared by limber.c (C_ell) and shift.c (lambda). */
#ifndef JADE_COSMO_LOS_H
#define JADE_COSMO_LOS_H
#include "jade/cosmo.h"

/* The survey's n(z) on its internal grid (non-decreasing z; a z value may repeat at a bin
 * edge when sigma_z = 0, with the left and right limits of n). nz[b * n + k] has unit
 * integral per bin under the trapezoid rule on this grid. Returns n. */
int jade_survey_grid_(const jade_survey *s, const double **z, const double **nz);

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

jade_status jade_los_build(const jade_cosmo *c, const jade_survey *s, jade_los *los);
void jade_los_free(jade_los *los);

#endif
