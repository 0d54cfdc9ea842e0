/* jade cosmology: flat (w0, wa) CDM background, linear growth, Eisenstein-Hu / BBKS linear
 * P(k), halofit (Takahashi et al. 2012), tomographic Smail n(z), lensing kernels, Limber
 * C_ell, and the log-normal shift parameter lambda of each bin.
 *
 * Units: k in h/Mpc, P in (Mpc/h)^3, distances in Mpc/h, angles in arcmin where named.
 * A jade_cosmo is immutable after creation, so its functions may be called from any number
 * of threads at once. */
#ifndef JADE_COSMO_H
#define JADE_COSMO_H
#include "jade/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define JADE_C_HMPC 2997.92458 /* c/H0 in Mpc/h */
#define JADE_MAX_BINS 10

typedef enum {
  JADE_TRANSFER_EH = 0,          /* Eisenstein & Hu 1998 with baryon wiggles (default) */
  JADE_TRANSFER_EH_NOWIGGLE = 1, /* Eisenstein & Hu 1998 zero-baryon-oscillation shape */
  JADE_TRANSFER_BBKS = 2         /* Bardeen et al. 1986 with the Sugiyama 1995 shape */
} jade_transfer;

typedef struct {
  double Omega_c, Omega_b; /* today's CDM and baryon densities */
  double h;                /* H0 / (100 km/s/Mpc) */
  double n_s;              /* primordial spectral index */
  double sigma_8;          /* rms linear fluctuation in 8 Mpc/h spheres at z = 0 */
  double w_0, w_a;         /* CPL dark energy w(a) = w_0 + w_a (1 - a) */
  double T_cmb;            /* K; enters the EH transfer function and the photon density */
  double N_eff;            /* massless neutrino species (used when radiation = 1) */
  int radiation;           /* 1: photons + massless neutrinos in E(a) (as CCL); 0: none */
  double Omega_k;          /* curvature (0: flat; Omega_de closes the budget) */
  jade_transfer transfer;
} jade_cosmo_params;

/* The defaults of the spec's fiducial column (Planck15-like, jax_cosmo), radiation as CCL:
 * T_cmb = 2.726, N_eff = 3.044. */
jade_cosmo_params jade_cosmo_params_fiducial(void);

typedef struct jade_cosmo jade_cosmo;

/* Validate the parameters (finite, physical ranges; clear message naming the bad one),
 * tabulate background, growth, sigma_8 normalisation and halofit. */
jade_status jade_cosmo_create(const jade_cosmo_params *p, jade_cosmo **out);
void jade_cosmo_free(jade_cosmo *c);
const jade_cosmo_params *jade_cosmo_get_params(const jade_cosmo *c);

double jade_cosmo_Omega_m(const jade_cosmo *c);   /* Omega_c + Omega_b */
double jade_cosmo_E(const jade_cosmo *c, double a);        /* H(a)/H0 */
double jade_cosmo_chi(const jade_cosmo *c, double a);      /* comoving radial distance, Mpc/h */
double jade_cosmo_a_of_chi(const jade_cosmo *c, double chi);
double jade_cosmo_growth(const jade_cosmo *c, double a);   /* D(a), D(1) = 1 */
double jade_cosmo_growth_unnorm(const jade_cosmo *c, double a); /* D -> a in matter domination */
double jade_cosmo_growth_rate(const jade_cosmo *c, double a);   /* f = dlnD/dlna */
double jade_cosmo_pk_lin(const jade_cosmo *c, double k, double a);
double jade_cosmo_pk_nl(const jade_cosmo *c, double k, double a);
/* rms of the linear density in a top-hat sphere of radius R [Mpc/h] at scale factor a. */
double jade_cosmo_sigma_R(const jade_cosmo *c, double R, double a);

/* ---- survey: tomographic source redshift distributions ------------------------------ */
typedef struct {
  int n_bins;
  double z_max;                        /* parent n(z) support [0, z_max] */
  double smail_alpha, smail_beta, smail_z0; /* n(z) ∝ z^alpha exp(-(z/z0)^beta) */
  double sigma_z;                      /* photo-z scatter sigma_z (1+z) */
  double n_gal;                        /* total galaxies per arcmin^2 */
  double sigma_e;                      /* intrinsic ellipticity dispersion per component */
  /* "" (all zero): the Smail bins above. Otherwise the path of an n(z) table
   * (jade_survey_read_nz): its bins replace the Smail ones (smail_*, sigma_z and z_max are
   * not used) and hold n_gal / n_bins galaxies per arcmin^2 each. */
  char nz_file[1024];
} jade_survey_params;

typedef struct jade_survey jade_survey;

/* Equal-number bins of the parent Smail n(z), each convolved with the Gaussian photo-z; or,
 * when p->nz_file is set, the bins of that table (jade_survey_read_nz). */
jade_status jade_survey_create(const jade_survey_params *p, jade_survey **out);

/* How a tabulated n(z) is interpolated between its nodes (zero outside [z_0, z_last]). */
typedef enum {
  JADE_NZ_LINEAR = 0, /* piecewise linear */
  JADE_NZ_SPLINE = 1  /* GSL's Steffen (1990, A&A 239, 443) monotone cubic: C1, no overshoot, so
                         n(z) >= 0 between non-negative nodes; needs >= 3 nodes */
} jade_nz_interp;
/* Bins given as tables n_i(z) on a common z grid (any normalisation: each bin is divided by
 * the exact integral of its interpolant). _tabulated is _interp with JADE_NZ_LINEAR. */
jade_status jade_survey_create_interp(int n_bins, int n_z, const double *z,
                                      const double *nz /* [n_bins][n_z] */, jade_nz_interp interp,
                                      jade_survey **out);
jade_status jade_survey_create_tabulated(int n_bins, int n_z, const double *z,
                                         const double *nz /* [n_bins][n_z] */, jade_survey **out);
/* n(z) per tomographic bin from a table file (jade_table_read: text with a header line, CSV,
 * or a FITS table - the NZ_SOURCE extension of a 2pt FITS file if present, else the first
 * table): a redshift column `z` (or `z_mid`) and one column per bin `bin1` .. `binN` (or
 * `bin_1` ..), names case-insensitive, N = n_bins; jade's bin i is column bin<i+1>. z
 * increasing, >= 3 rows, n >= 0 and not all zero per bin; splined (JADE_NZ_SPLINE) and
 * normalised. Errors name the file, the column and the row at fault. No shape noise is set
 * (jade_survey_set_shape_noise). */
jade_status jade_survey_read_nz(const char *path, int n_bins, jade_survey **out);
void jade_survey_free(jade_survey *s);
int jade_survey_n_bins(const jade_survey *s);
double jade_survey_nz(const jade_survey *s, int bin, double z); /* unit integral */
/* true-z bin edges (n_bins + 1 values), for Smail surveys. */
void jade_survey_edges(const jade_survey *s, double *edges);
double jade_survey_z_max(const jade_survey *s);
/* Shape noise of a survey: galaxies per arcmin^2 in each bin (n_bins values > 0) and the
 * ellipticity dispersion per component. Needed for tabulated surveys (NaN noise before);
 * on a Smail survey only the total of n_gal_bin is used (its bins hold equal numbers). */
jade_status jade_survey_set_shape_noise(jade_survey *s, const double *n_gal_bin, double sigma_e);
/* galaxies per arcmin^2 in a bin; per-pixel convergence noise sigma_e / sqrt(n_i A_pix). */
double jade_survey_bin_density(const jade_survey *s, int bin);
double jade_survey_pixel_noise(const jade_survey *s, int bin, double pixel_arcmin);

/* Number of bin pairs n(n+1)/2, ordered 00 01 .. 0n 11 12 .. nn. */
static inline int jade_n_pairs(int n_bins) { return n_bins * (n_bins + 1) / 2; }
static inline int jade_pair_index(int n_bins, int i, int j) {
  if (i > j) { int t = i; i = j; j = t; }
  return i * n_bins - i * (i - 1) / 2 + (j - i);
}

typedef enum {
  JADE_CL_SHEAR = 0,       /* shear E-mode: (l+2)!/(l-2)! / (l+1/2)^4 prefactor (as CCL) */
  JADE_CL_CONVERGENCE = 1  /* bare Limber convergence integral */
} jade_cl_kind;

/* Limber C_ell, k = (ell + 1/2)/chi, for every bin pair (LoVerde & Afshordi 2008):
 * cl[i_ell * n_pairs + pair]. nonlinear = 1 uses halofit, 0 the linear P(k). */
jade_status jade_cosmo_limber_cl(const jade_cosmo *c, const jade_survey *s, int n_ell,
                                 const double *ell, jade_cl_kind kind, int nonlinear, double *cl);

/* Log-normal shift lambda_i per bin for the convergence smoothed with a top-hat of radius
 * theta_arcmin (pixel side / sqrt(pi) for square pixels): the lambda whose zero-mean shifted
 * log-normal has the perturbation-theory variance and skewness of the smoothed convergence. */
jade_status jade_cosmo_lognormal_shift(const jade_cosmo *c, const jade_survey *s,
                                       double theta_arcmin, double *lambda);

#ifdef __cplusplus
}
#endif
#endif
