/* Map statistics: shape noise, binned auto/cross power spectra (and their expectation for a
 * tabulated C_ell on the same grid), one-point histograms and moments.
 *
 * Power spectrum normalisation (lensing.h): for an N x N periodic map of side L radians with
 * discrete FFT K(k) = sum_x kappa(x) exp(-2 pi i k.x / N), the continuous Fourier transform is
 * approximated by (L/N)^2 K and <kappa~(l) kappa~*(l')> = (2 pi)^2 delta_D(l - l') C_l, whose
 * discrete form on an area A = L^2 is <|(L/N)^2 K|^2> = A C_l. Hence the unbiased per-mode
 * estimator C_hat(l_k) = L^2 Re(A_k B_k*) / N^4 (e.g. Schneider, Kilbinger & Lombardi 2010,
 * or any flat-sky pseudo-C_l text without mask). */
#include "jade/lensing.h"

#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- shape noise ------------------------------------------------------------------------ */

void jade_add_noise(float *map, size_t n, double sigma, uint64_t seed, uint64_t stream,
                    uint64_t offset) {
  enum { CHUNK = 2048 };
  double z[CHUNK];
  for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
    size_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
    jade_rng_normal_fill(seed, stream, offset + i0, m, z);
    for (size_t i = 0; i < m; i++) map[i0 + i] = (float)((double)map[i0 + i] + sigma * z[i]);
  }
}

/* ---- one-point statistics ---------------------------------------------------------------- */

void jade_histogram(const float *x, size_t n, int n_edges, const double *edges, double *counts) {
  if (n_edges < 2) return;
  int nb = n_edges - 1;
  for (int b = 0; b < nb; b++) counts[b] = 0.0;
  double lo = edges[0], hi = edges[nb];
  for (size_t i = 0; i < n; i++) {
    double v = x[i];
    if (!(v >= lo && v <= hi)) continue; /* outside, or NaN */
    /* largest b with edges[b] <= v; the right edge of the last bin is included (as numpy). */
    int a = 0, c = nb;
    while (c - a > 1) {
      int m = (a + c) / 2;
      if (edges[m] <= v) a = m;
      else c = m;
    }
    counts[a] += 1.0;
  }
}

/* Population moments (ddof = 0), two passes in double precision; skewness m3 / m2^{3/2}
 * (0 for a constant sample, NaN for an empty one). */
void jade_moments(const float *x, size_t n, double *mean, double *var, double *skew) {
  if (n == 0) {
    if (mean) *mean = NAN;
    if (var) *var = NAN;
    if (skew) *skew = NAN;
    return;
  }
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += x[i];
  double mu = s / (double)n;
  double m2 = 0.0, m3 = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = x[i] - mu;
    m2 += d * d;
    m3 += d * d * d;
  }
  m2 /= (double)n;
  m3 /= (double)n;
  if (mean) *mean = mu;
  if (var) *var = m2;
  if (skew) *skew = m2 > 0.0 ? m3 / (m2 * sqrt(m2)) : 0.0;
}

/* ---- C_ell table interpolation ----------------------------------------------------------- */

double jade_cl_interp(int n_ell, const double *ell, const double *cl, size_t stride, double l) {
  if (n_ell < 1) return 0.0;
  if (l <= ell[0]) return cl[0];
  if (l > ell[n_ell - 1]) return 0.0;
  if (n_ell == 1) return cl[0];
  int a = 0, c = n_ell - 1; /* ell[a] < l <= ell[c] */
  while (c - a > 1) {
    int m = (a + c) / 2;
    if (ell[m] < l) a = m;
    else c = m;
  }
  double ya = cl[(size_t)a * stride], yc = cl[(size_t)c * stride];
  if (l == ell[c]) return yc;
  /* (lognormal.c evaluates the same expressions from tabulated logs: keep them identical.) */
  double la = log(ell[a]), t = (log(l) - la) / (log(ell[c]) - la);
  if (ya > 0.0 && yc > 0.0) {
    double lya = log(ya);
    return exp(lya + t * (log(yc) - lya));
  }
  if (ya < 0.0 && yc < 0.0) {
    double lya = log(-ya);
    return -exp(lya + t * (log(-yc) - lya));
  }
  return ya + t * (yc - ya);
}

/* ---- binned power spectra ----------------------------------------------------------------- */

static jade_status check_band_args(int n, double size_deg, int n_bands, double ell_min,
                                   double ell_max, int log_bins) {
  if (n < 2 || n % 2) return jade_error(JADE_ERR_INVALID, "power spectrum: n_pix = %d must be even and >= 2", n);
  if (!(size_deg > 0.0) || !isfinite(size_deg))
    return jade_error(JADE_ERR_INVALID, "power spectrum: size_deg = %g must be finite and > 0", size_deg);
  if (n_bands < 1) return jade_error(JADE_ERR_INVALID, "power spectrum: n_bands = %d must be >= 1", n_bands);
  if (!isfinite(ell_min) || !isfinite(ell_max) || !(ell_max > ell_min) || ell_min < 0.0 ||
      (log_bins && !(ell_min > 0.0)))
    return jade_error(JADE_ERR_INVALID,
                      "power spectrum: ell range [%g, %g] invalid (need 0 <= ell_min < ell_max, "
                      "ell_min > 0 for log bins)", ell_min, ell_max);
  return JADE_OK;
}

/* Band of multipole l, -1 if outside [ell_min, ell_max] (ell_max belongs to the last band). */
static int band_of(double l, int n_bands, double lmin, double lmax, int log_bins) {
  if (!(l >= lmin) || l > lmax) return -1;
  double f = log_bins ? log(l / lmin) / log(lmax / lmin) : (l - lmin) / (lmax - lmin);
  int b = (int)floor(f * n_bands);
  if (b >= n_bands) b = n_bands - 1;
  if (b < 0) b = 0;
  return b;
}

/* Visit every non-zero Fourier mode of the r2c half plane (rows ky = j, columns kx = 0..n/2)
 * with its multiplicity in the full plane: 1 on the kx = 0 and kx = n/2 columns (their
 * partner -k is another row of the same column), 2 elsewhere (the partner -k is not stored).
 * Adds w * value(k) into the band sums. value == NULL means the theory callback. */
typedef double (*mode_value_fn)(void *ctx, size_t idx, double l);

static void accumulate_bands(int n, double L, int n_bands, double ell_min, double ell_max,
                             int log_bins, mode_value_fn fn, void *ctx, double *ell_sum,
                             double *val_sum, long *count) {
  int nc = n / 2 + 1;
  double dl = 2.0 * M_PI / L;
  for (int b = 0; b < n_bands; b++) {
    ell_sum[b] = 0.0;
    val_sum[b] = 0.0;
    count[b] = 0;
  }
  for (int j = 0; j < n; j++) {
    int ky = j <= n / 2 ? j : j - n;
    for (int i = 0; i < nc; i++) {
      if (i == 0 && j == 0) continue;
      double l = dl * sqrt((double)i * i + (double)ky * ky);
      int b = band_of(l, n_bands, ell_min, ell_max, log_bins);
      if (b < 0) continue;
      int w = (i == 0 || i == n / 2) ? 1 : 2;
      ell_sum[b] += w * l;
      val_sum[b] += w * fn(ctx, (size_t)j * nc + i, l);
      count[b] += w;
    }
  }
  for (int b = 0; b < n_bands; b++) {
    if (count[b] > 0) {
      ell_sum[b] /= (double)count[b];
      val_sum[b] /= (double)count[b];
    }
  }
}

typedef struct {
  const fftw_complex *fa, *fb;
  double norm;
} cross_ctx;

static double cross_value(void *vctx, size_t idx, double l) {
  (void)l;
  const cross_ctx *c = vctx;
  return c->norm * (c->fa[idx][0] * c->fb[idx][0] + c->fa[idx][1] * c->fb[idx][1]);
}

jade_status jade_power_spectrum(int n, double size_deg, const float *a, const float *b,
                                int n_bands, double ell_min, double ell_max, int log_bins,
                                double *ell_mean, double *cl, long *count) {
  jade_status st = check_band_args(n, size_deg, n_bands, ell_min, ell_max, log_bins);
  if (st) return st;
  size_t npix = (size_t)n * n;
  for (size_t i = 0; i < npix; i++) {
    if (!isfinite(a[i]))
      return jade_error(JADE_ERR_NUMERIC, "power spectrum: map a pixel %zu (row %zu, col %zu) is %g",
                        i, i / n, i % n, (double)a[i]);
    if (b != a && !isfinite(b[i]))
      return jade_error(JADE_ERR_NUMERIC, "power spectrum: map b pixel %zu (row %zu, col %zu) is %g",
                        i, i / n, i % n, (double)b[i]);
  }
  size_t nc = (size_t)n * (n / 2 + 1);
  double *in = fftw_malloc(sizeof(double) * npix);
  fftw_complex *fa = fftw_malloc(sizeof(fftw_complex) * nc);
  fftw_complex *fb = b != a ? fftw_malloc(sizeof(fftw_complex) * nc) : fa;
  if (!in || !fa || !fb) {
    fftw_free(in);
    fftw_free(fa);
    if (fb != fa) fftw_free(fb);
    return jade_error(JADE_ERR_NOMEM, "power spectrum: out of memory for n_pix = %d", n);
  }
  fftw_plan p;
#pragma omp critical(jade_fftw_plan)
  p = fftw_plan_dft_r2c_2d(n, n, in, fa, FFTW_ESTIMATE);
  if (!p) {
    fftw_free(in);
    fftw_free(fa);
    if (fb != fa) fftw_free(fb);
    return jade_error(JADE_ERR_INTERNAL, "power spectrum: FFTW could not plan a %d x %d r2c", n, n);
  }
  for (size_t i = 0; i < npix; i++) in[i] = a[i];
  fftw_execute_dft_r2c(p, in, fa);
  if (b != a) {
    for (size_t i = 0; i < npix; i++) in[i] = b[i];
    fftw_execute_dft_r2c(p, in, fb);
  }
  double L = size_deg * M_PI / 180.0;
  double n2 = (double)n * n;
  cross_ctx ctx = {fa, fb, L * L / (n2 * n2)};
  accumulate_bands(n, L, n_bands, ell_min, ell_max, log_bins, cross_value, &ctx, ell_mean, cl, count);
#pragma omp critical(jade_fftw_plan)
  fftw_destroy_plan(p);
  fftw_free(in);
  fftw_free(fa);
  if (fb != fa) fftw_free(fb);
  return JADE_OK;
}

typedef struct {
  int n_ell;
  const double *ell, *cl;
  size_t stride;
} theory_ctx;

static double theory_value(void *vctx, size_t idx, double l) {
  (void)idx;
  const theory_ctx *c = vctx;
  return jade_cl_interp(c->n_ell, c->ell, c->cl, c->stride, l);
}

jade_status jade_power_spectrum_theory(int n, double size_deg, int n_ell, const double *ell,
                                       const double *cl, size_t stride, int n_bands,
                                       double ell_min, double ell_max, int log_bins,
                                       double *ell_mean, double *cl_band, long *count) {
  jade_status st = check_band_args(n, size_deg, n_bands, ell_min, ell_max, log_bins);
  if (st) return st;
  if (n_ell < 1 || !ell || !cl || stride < 1)
    return jade_error(JADE_ERR_INVALID, "power spectrum theory: empty C_ell table (n_ell = %d)", n_ell);
  for (int k = 0; k < n_ell; k++) {
    if (!isfinite(ell[k]) || !(ell[k] > 0.0) || (k && !(ell[k] > ell[k - 1])))
      return jade_error(JADE_ERR_INVALID, "power spectrum theory: ell[%d] = %g (need finite, > 0, increasing)",
                        k, ell[k]);
    if (!isfinite(cl[(size_t)k * stride]))
      return jade_error(JADE_ERR_NUMERIC, "power spectrum theory: cl[%d] = %g", k, cl[(size_t)k * stride]);
  }
  theory_ctx ctx = {n_ell, ell, cl, stride};
  accumulate_bands(n, size_deg * M_PI / 180.0, n_bands, ell_min, ell_max, log_bins, theory_value,
                   &ctx, ell_mean, cl_band, count);
  return JADE_OK;
}

void jade_power_spectrum_bands(int n_pix, double size_deg, int *n_bands, double *ell_min, double *ell_max) {
  const double L = size_deg * M_PI / 180.0;
  int nb = n_pix / 4;
  if (nb < 4) nb = 4;
  if (nb > 20) nb = 20;
  *n_bands = nb;
  *ell_min = 2 * M_PI / L;
  *ell_max = M_PI * n_pix / L;
}
