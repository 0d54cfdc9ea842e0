/* Private definition of struct jade_cosmo and the helpers shared by background.c, power.c
 * and halofit.c. Everything here is filled once by jade_cosmo_create and never written
 * afterwards, so a jade_cosmo may be read by any number of threads. */
#ifndef JADE_COSMO_INTERNAL_H
#define JADE_COSMO_INTERNAL_H
#include "jade/cosmo.h"

/* Background table: uniform grid in ln a over [ln JADE_BG_AMIN, 0]. */
#define JADE_BG_AMIN 1e-6
#define JADE_BG_NINT 700 /* intervals, d ln a = 0.0197 */

/* Eisenstein & Hu (1998) derived constants, all in h/Mpc or Mpc/h (as CCL's ccl_eh.c). */
typedef struct {
  double th27;       /* Theta_2.7 = T_cmb / 2.7 */
  double zeq, keq;   /* EH98 Eqs. 2-3 (keq in h/Mpc) */
  double zdrag;      /* Eq. 4 */
  double rsound;     /* Eq. 6, Mpc/h */
  double ksilk;      /* Eq. 7, h/Mpc */
  double alphac, betac; /* Eqs. 11-12 */
  double alphab, betab; /* Eqs. 14, 24 */
  double bnode;      /* Eq. 23 */
  double rsound_approx; /* Eq. 26, Mpc/h */
  double fb;         /* Omega_b / Omega_m */
  double alpha_gamma; /* Eq. 31 */
  double bbks_shape; /* BBKS/Sugiyama Gamma in h/Mpc: Omega_m h exp(-Omega_b (1 + sqrt(2h)/Omega_m)) */
} jade_eh98;

struct jade_cosmo {
  jade_cosmo_params p;
  /* densities today */
  double Om, Og, Onu, Or, Ode, Ok;
  int de_is_lambda; /* w0 = -1 and wa = 0 */

  /* background table on lna_i = lna_min + i dlna, i = 0..nbg (nbg + 1 nodes) */
  int nbg;
  double lna_min, dlna;
  double *chi;    /* comoving radial distance, Mpc/h */
  double *dchi;   /* d chi / d ln a */
  double *Du;     /* unnormalised growth, D -> a at early times */
  double *fg;     /* f = dlnD/dlna */
  double *dfg;    /* df/dlna */
  double D1;      /* Du(a = 1) */
  double chi_max; /* chi at a_min */

  /* linear power today: P0(k) = A k^n_s T(k)^2 (D(1) = 1), tabulated as ln P0 on a uniform
   * ln k grid with a natural cubic spline (second derivatives lnp_d2). */
  jade_eh98 eh;
  double amp;       /* A */
  int nk;
  double lnk_min, dlnk;
  double *lnp, *lnp_d2;

  /* halofit: Gaussian-filtered sigma^2(R) today on a uniform ln R grid; L = ln sigma^2 and
   * its first three derivatives with respect to ln R. */
  int nr;
  double lnr_min, dlnr;
  double *hL, *hL1, *hL2, *hL3;
};

/* E(a)^2 = H^2/H0^2 (CCL paper Eq. 2 / Chisari et al. 2019) */
double jade_cosmo_priv_E2(const jade_cosmo *c, double a);
/* dln E / dln a */
double jade_cosmo_priv_dlnE(const jade_cosmo *c, double a);
/* Omega_DE(a) = rho_de(a) / rho_crit(a) */
double jade_cosmo_priv_Ode_a(const jade_cosmo *c, double a);

/* power.c: EH/BBKS setup, sigma_8 normalisation and the ln P0 table. */
jade_status jade_cosmo_priv_power_init(jade_cosmo *c);
/* T(k)^2 for the selected transfer function, k in h/Mpc (evaluated directly). */
double jade_cosmo_priv_tk2(const jade_cosmo *c, double k);
/* P_lin(k, a = 1) */
double jade_cosmo_priv_pk0(const jade_cosmo *c, double k);

/* halofit.c */
jade_status jade_cosmo_priv_halofit_init(jade_cosmo *c);
void jade_cosmo_priv_halofit_free(jade_cosmo *c);
void jade_cosmo_priv_power_free(jade_cosmo *c);

/* Cubic Hermite interpolation on [0,1] with values y0,y1 and derivatives m0,m1 already
 * multiplied by the interval width. */
static inline double jade_hermite3(double t, double y0, double y1, double m0, double m1) {
  double t2 = t * t, t3 = t2 * t;
  return (2 * t3 - 3 * t2 + 1) * y0 + (t3 - 2 * t2 + t) * m0 + (-2 * t3 + 3 * t2) * y1 +
         (t3 - t2) * m1;
}
static inline double jade_hermite3_d(double t, double y0, double y1, double m0, double m1) {
  double t2 = t * t;
  return (6 * t2 - 6 * t) * y0 + (3 * t2 - 4 * t + 1) * m0 + (-6 * t2 + 6 * t) * y1 +
         (3 * t2 - 2 * t) * m1;
}

#endif
