/* Private definition of struct jade_cosmo and the helpers shared by background.c, power.c
 * and halofit.c. Everything here is filled once by jade_cosmo_create and never written
 * afterwards, so a jade_cosmo may be read by any number of threads. */
#ifndef JADE_COSMO_INTERNAL_H
#define JADE_COSMO_INTERNAL_H
#include "jade/cosmo.h"

/* Background table: uniform grid in ln a over [ln JADE_BG_AMIN, 0]. */
#define JADE_BG_AMIN 1e-6
#define JADE_BG_NINT 200 /* intervals, d ln a = 0.069 */

/* Linear P(k, a=1) table and sigma integrals: uniform ln k grid, k in h/Mpc. */
#define JADE_PK_KMIN 1e-5
#define JADE_PK_KMAX 3e6
#define JADE_PK_DLNK 0.01

/* Halofit sigma_G(R) moments: trapezoid on every JADE_HF_KSTRIDE-th point of the k grid;
 * ln R grid with step JADE_HF_RSTEP * JADE_PK_DLNK, R in Mpc/h. Halofit coefficients are
 * tabulated on a uniform ln a grid over [hf_amin, 1] with step <= JADE_HF_DLNA. */
#define JADE_HF_KSTRIDE 2
#define JADE_HF_RMIN 1e-5
#define JADE_HF_RMAX 20.0
#define JADE_HF_RSTEP 8
#define JADE_HF_DLNA 0.02
#define JADE_HF_NCOEF 11

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
  double *d2chi;  /* d^2 chi / d ln a^2 */
  double *Du;     /* unnormalised growth, D -> a at early times */
  double *fg;     /* f = dlnD/dlna */
  double *dfg;    /* df/dlna */
  double *d2fg;   /* d^2 f/dlna^2 */
  double D1;      /* Du(a = 1) */
  double chi_max; /* chi at a_min */

  /* linear power today: P0(k) = A k^n_s T(k)^2 (D(1) = 1), tabulated as ln P0 on a uniform
   * ln k grid with a natural cubic spline (second derivatives lnp_d2). */
  jade_eh98 eh;
  double amp;       /* A */
  int nk;
  double lnk_min, dlnk;
  double *lnp, *lnp_d2;
  double *d2; /* Delta^2(k_i) = k^3 P0 / (2 pi^2) on the same grid */

  /* halofit: Gaussian-filtered sigma^2(R) today on a uniform ln R grid; L = ln sigma^2 and
   * its first three derivatives with respect to ln R. */
  int nr;
  double lnr_min, dlnr;
  double *hL, *hL1, *hL2, *hL3;
  double hf_amin; /* below this a, R_sigma is clamped to R_min (see halofit.c); 1 if never */
  int nha;        /* coefficient nodes lna_j = ln hf_amin + j dlna_hf, j < nha (0: none) */
  double lna_hf_min, dlna_hf;
  double *hcoef;  /* [nha][JADE_HF_NCOEF], see halofit.c */
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
/* P_nl with the halofit coefficients computed exactly at a (no a-grid interpolation); for
 * tests of the tabulation. */
double jade_cosmo_priv_pk_nl_exact(const jade_cosmo *c, double k, double a);
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

/* Quintic Hermite on [0,1]: values y, first derivatives d (times h) and second derivatives s
 * (times h^2) at both ends; error ~ h^6. */
static inline double jade_hermite5(double t, double y0, double d0, double s0, double y1,
                                   double d1, double s1) {
  double t2 = t * t, t3 = t2 * t, t4 = t3 * t, t5 = t4 * t;
  return y0 * (1 - 10 * t3 + 15 * t4 - 6 * t5) + d0 * (t - 6 * t3 + 8 * t4 - 3 * t5) +
         s0 * 0.5 * (t2 - 3 * t3 + 3 * t4 - t5) + s1 * 0.5 * (t3 - 2 * t4 + t5) +
         d1 * (-4 * t3 + 7 * t4 - 3 * t5) + y1 * (10 * t3 - 15 * t4 + 6 * t5);
}
static inline double jade_hermite5_d(double t, double y0, double d0, double s0, double y1,
                                     double d1, double s1) {
  double t2 = t * t, t3 = t2 * t, t4 = t3 * t;
  return y0 * (-30 * t2 + 60 * t3 - 30 * t4) + d0 * (1 - 18 * t2 + 32 * t3 - 15 * t4) +
         s0 * (t - 4.5 * t2 + 6 * t3 - 2.5 * t4) + s1 * (1.5 * t2 - 4 * t3 + 2.5 * t4) +
         d1 * (-12 * t2 + 28 * t3 - 15 * t4) + y1 * (30 * t2 - 60 * t3 + 30 * t4);
}

#endif
