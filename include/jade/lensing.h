/* jade lensing maps on a periodic flat-sky grid: correlated multi-bin log-normal
 * convergence fields (the sbi_lens algorithm), shape noise, Kaiser-Squires, and summary
 * statistics (binned auto/cross power spectra, one-point histograms).
 *
 * Maps are float32, row-major [bin][y][x], n_pix x n_pix per bin, side size_deg degrees.
 * Fourier conventions: ell = 2 pi |k| / L with L in radians; a map's power spectrum
 * estimate is C_ell = A |FFT(map)|^2 / N^4 with A = L^2 (pixel solid angle normalisation). */
#ifndef JADE_LENSING_H
#define JADE_LENSING_H
#include "jade/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int n_pix;       /* pixels per side (even) */
  double size_deg; /* side of the square patch in degrees */
  int n_bins;      /* tomographic bins = map channels */
} jade_map_geometry;

static inline double jade_pixel_arcmin(const jade_map_geometry *g) {
  return g->size_deg * 60.0 / g->n_pix;
}

typedef enum {
  JADE_LN_VARIANCE_THEORY = 0,   /* var_i = xi_G^{ii}(0): E[kappa] = 0 exactly */
  JADE_LN_VARIANCE_EMPIRICAL = 1 /* each map's own pixel variance of g_i (sbi_lens) */
} jade_ln_variance;

/* A simulator plan for one geometry: FFTW plans (FFTW_ESTIMATE, so results do not depend on
 * timing) and work buffers. One plan per thread; create/free are serialised internally. */
typedef struct jade_lognormal jade_lognormal;

jade_status jade_lognormal_create(const jade_map_geometry *g, jade_ln_variance variance,
                                  jade_lognormal **out);
void jade_lognormal_free(jade_lognormal *ln);
/* Set the theory for the next draws: C_ell tabulated at n_ell >= 2 increasing multipoles > 0
 * for every bin pair (cl[i_ell * n_pairs + pair], pair order of jade_pair_index), and lambda
 * per bin (> 0). Each Fourier mode gets C at its exact l = 2 pi |k| / L (jade_cl_interp:
 * log-log, cl[0] below ell[0], 0 above the table; no pixel window). Builds the per-mode
 * symmetric square roots of the Gaussian-field power matrices (negative eigenvalues clipped).
 * Errors: NaN/Inf anywhere, negative auto C_ell, lambda <= 0 (JADE_ERR_INVALID / NUMERIC),
 * and a correlation xi^{ij} <= -lambda_i lambda_j somewhere on the grid (JADE_ERR_NUMERIC: no
 * shifted log-normal field has it). Conventions and the differences from sbi_lens are in
 * src/lensing/lognormal.c. */
jade_status jade_lognormal_prepare(jade_lognormal *ln, int n_ell, const double *ell,
                                   const double *cl, const double *lambda);
/* One draw: the white noise is element i of Philox (seed, stream) for i in [0, n_bins N^2),
 * so the map depends only on (theory, seed, stream). kappa: [n_bins][N][N]. */
jade_status jade_lognormal_draw(jade_lognormal *ln, uint64_t seed, uint64_t stream, float *kappa);
/* The variance of the Gaussian field g_i as drawn after the last prepare, (1/N^2) sum_k
 * [R(k)^2]_ii: xi_G^{ii}(0) with the l = 0 mode zeroed and negative eigenvalues clipped (the
 * var_i of JADE_LN_VARIANCE_THEORY). NaN before a successful prepare or for a bad bin. */
double jade_lognormal_gaussian_variance(const jade_lognormal *ln, int bin);
/* Diagnostics of the last prepare: the fraction of sum_k tr P_G(k) removed by clipping negative
 * eigenvalues (0 when every per-mode matrix is positive semi-definite; the maps' power then
 * exceeds C_ell where it is not), and the factor a_ij applied to C^{ij} so that zeroing the
 * l = 0 mode of P_G leaves the other modes' power unchanged (lognormal.c). NaN if unprepared. */
double jade_lognormal_clipped_fraction(const jade_lognormal *ln);
double jade_lognormal_cl_scale(const jade_lognormal *ln, int i, int j);

/* Kaiser & Squires (1993) on the periodic grid, Fourier space: gamma = D kappa with
 * D = ((l1^2 - l2^2) + 2i l1 l2) / l^2, l1 along x (columns), l2 along y (rows); the inverse
 * applies D*: kappa_E + i kappa_B = D* (gamma1 + i gamma2). The l = 0 mode is zero. On the
 * Nyquist row and column the 2 l1 l2 term is set to 0 (+N/2 and -N/2 are one grid point), so
 * gamma2 has no power there and the round trip multiplies those modes by
 * ((l1^2 - l2^2)/l^2)^2; it is exact on every other non-zero mode. All arrays n x n (even n),
 * float in and out, double inside. kappa_b (B-mode) may be NULL. NaN/Inf input is an error. */
jade_status jade_ks_kappa_to_shear(int n, const float *kappa, float *gamma1, float *gamma2);
jade_status jade_ks_shear_to_kappa(int n, const float *gamma1, const float *gamma2,
                                   float *kappa_e, float *kappa_b);

/* Add Gaussian noise sigma * N(0,1) (Philox (seed, stream), elements offset..offset+n-1). */
void jade_add_noise(float *map, size_t n, double sigma, uint64_t seed, uint64_t stream,
                    uint64_t offset);

/* Binned cross power spectrum of two n x n maps of side size_deg (a == b for auto):
 * n_bands bands, edges log-spaced (log_bins = 1) or linear in ell between ell_min and
 * ell_max (a mode is in band b if edge_b <= l < edge_{b+1}; ell_max belongs to the last band);
 * outputs the mean ell of the modes in each band, the mean C_ell and the number of modes
 * (a band with no modes gets count 0 and cl 0). Modes are counted over the full Fourier plane
 * (k and -k both, so about count/2 are independent), l = 0 excluded. Each mode's estimate
 * L^2 Re(A_k B_k*) / N^4 is unbiased for C(l_k), so the band value's expectation is the mean
 * of C over the band's modes: jade_power_spectrum_theory. */
jade_status jade_power_spectrum(int n, double size_deg, const float *a, const float *b,
                                int n_bands, double ell_min, double ell_max, int log_bins,
                                double *ell_mean, double *cl, long *count);
/* The power-spectrum bands jade validate and jade report use for n x n maps of side size_deg:
 * log-spaced from the fundamental 2 pi / L to the axis Nyquist pi n / L, n/4 bands (at least
 * 4, at most 20). */
void jade_power_spectrum_bands(int n_pix, double size_deg, int *n_bands, double *ell_min, double *ell_max);

/* Histogram of n values into n_edges-1 bins with the given increasing edges; counts as
 * doubles (values outside, and NaN, are not counted; the last edge is included, as numpy).
 * jade_moments: mean, population variance (ddof 0) and skewness m3 / m2^1.5 (double
 * accumulation; any output pointer may be NULL). */
void jade_histogram(const float *x, size_t n, int n_edges, const double *edges, double *counts);
void jade_moments(const float *x, size_t n, double *mean, double *var, double *skew);

/* The C_ell interpolation the simulator uses: table (ell[k], cl[k * stride]), k < n_ell,
 * ell > 0 increasing; log-log between nodes of the same sign (linear in ln ell otherwise),
 * cl[0] below ell[0], 0 above ell[n_ell-1]. */
double jade_cl_interp(int n_ell, const double *ell, const double *cl, size_t stride, double l);
/* The expectation of jade_power_spectrum for maps whose power is the tabulated C_ell sampled
 * on the grid (as jade_lognormal draws them): the interpolated C_ell averaged over exactly the
 * Fourier modes of each band, with the same band edges, ell means and mode counts. Compare
 * simulated band powers with this, not with C_ell at the band centre (steep spectra). */
jade_status jade_power_spectrum_theory(int n, double size_deg, int n_ell, const double *ell,
                                       const double *cl, size_t stride, int n_bands,
                                       double ell_min, double ell_max, int log_bins,
                                       double *ell_mean, double *cl_band, long *count);

#ifdef __cplusplus
}
#endif
#endif
