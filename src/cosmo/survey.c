/* Tomographic source redshift distributions.
 *
 * Parent: Smail et al. (1994) n(z) ∝ z^alpha exp(-(z/z0)^beta) on [0, z_max] (the LSST DESC
 * SRD form, Mandelbaum et al. 2018; sbi_lens / jax_cosmo `smail_nz`). Its cumulative integral is a regularised incomplete
 * gamma function: with x = (z/z0)^beta and s = (alpha+1)/beta,
 *   int_0^z n = (z0^(alpha+1)/beta) gamma(s, x),
 * so the equal-number edges solve P(s, x(z_k)) = (k/n_bins) P(s, x(z_max)) exactly.
 * Each bin is the parent times the probability that a Gaussian photo-z with scatter
 * sigma_z (1+z) falls inside the true-z edges (Ma, Hu & Huterer 2006, ApJ 636, 21; as in
 * sbi_lens and the CCL reference): n_i(z) = n(z) · ½[erf((z_hi-z)/(√2 s)) - erf((z_lo-z)/(√2 s))].
 * With sigma_z = 0 the bins are the hard top-hat slices of the parent. */
#include "los.h"

#include "jade/io.h"

#include <gsl/gsl_interp.h>
#include <gsl/gsl_sf_gamma.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SURVEY_DZ_MAX 0.002 /* internal grid spacing for the kernel integrals */

struct jade_survey {
  int n_bins;
  int smail; /* 1: Smail parent with photo-z; 0: tabulated */
  jade_survey_params p;
  double edges[JADE_MAX_BINS + 1];
  double norm[JADE_MAX_BINS]; /* Smail: n_i = norm_i · parent · prob_i */
  double density[JADE_MAX_BINS]; /* galaxies per arcmin^2 per bin (NaN: not given) */
  /* tabulated input (normalised), Smail: unused */
  int n_tab;
  double *z_tab, *nz_tab;
  jade_nz_interp interp;
  gsl_interp *spline[JADE_MAX_BINS]; /* JADE_NZ_SPLINE: one per bin, on z_tab / nz_tab */
  /* internal grid used by the line-of-sight integrals */
  int n_grid;
  double *z_grid, *nz_grid;
};

static double smail_parent(const jade_survey_params *p, double z) {
  if (z <= 0.0 || z > p->z_max) return 0.0;
  return pow(z, p->smail_alpha) * exp(-pow(z / p->smail_z0, p->smail_beta));
}

/* Photo-z probability that a galaxy at true z lands in [lo, hi). */
static double photoz_prob(double sigma_z, double lo, double hi, double z) {
  double s = sigma_z * (1.0 + z) * M_SQRT2;
  return 0.5 * (erf((hi - z) / s) - erf((lo - z) / s));
}

static double smail_cdf_unnorm(const jade_survey_params *p, double z) {
  if (z <= 0.0) return 0.0;
  double s = (p->smail_alpha + 1.0) / p->smail_beta;
  return gsl_sf_gamma_inc_P(s, pow(z / p->smail_z0, p->smail_beta));
}

/* Keys every survey needs (and, with smail = 1, those of the Smail bins). */
static jade_status validate_params(const jade_survey_params *p, int smail) {
  if (!p) return jade_error(JADE_ERR_INVALID, "survey parameters are NULL");
  if (p->n_bins < 1 || p->n_bins > JADE_MAX_BINS)
    return jade_error(JADE_ERR_INVALID, "survey n_bins = %d must be in [1, %d]", p->n_bins, JADE_MAX_BINS);
  if (!isfinite(p->n_gal) || !(p->n_gal > 0.0))
    return jade_error(JADE_ERR_INVALID, "survey n_gal = %g must be positive", p->n_gal);
  if (!isfinite(p->sigma_e) || p->sigma_e < 0.0)
    return jade_error(JADE_ERR_INVALID, "survey sigma_e = %g must be >= 0", p->sigma_e);
  if (!smail) return JADE_OK;
  if (!isfinite(p->z_max) || !(p->z_max > 0.0) || p->z_max > 100.0)
    return jade_error(JADE_ERR_INVALID, "survey z_max = %g must be in (0, 100]", p->z_max);
  if (!isfinite(p->smail_alpha) || !(p->smail_alpha > -1.0) || p->smail_alpha > 50.0)
    return jade_error(JADE_ERR_INVALID, "survey Smail alpha = %g must be in (-1, 50]", p->smail_alpha);
  if (!isfinite(p->smail_beta) || !(p->smail_beta > 0.01) || p->smail_beta > 50.0)
    return jade_error(JADE_ERR_INVALID, "survey Smail beta = %g must be in (0.01, 50]", p->smail_beta);
  if (!isfinite(p->smail_z0) || !(p->smail_z0 > 0.0))
    return jade_error(JADE_ERR_INVALID, "survey Smail z0 = %g must be positive", p->smail_z0);
  if (!isfinite(p->sigma_z) || p->sigma_z < 0.0 || p->sigma_z > 10.0)
    return jade_error(JADE_ERR_INVALID, "survey sigma_z = %g must be in [0, 10]", p->sigma_z);
  double s = (p->smail_alpha + 1.0) / p->smail_beta;
  if (s > 1e4) return jade_error(JADE_ERR_INVALID, "survey Smail (alpha+1)/beta = %g is too large", s);
  return JADE_OK;
}

/* Equal-number edges: bisection on the monotone incomplete-gamma CDF to machine precision. */
static jade_status smail_edges(const jade_survey_params *p, double *edges) {
  int n = p->n_bins;
  double total = smail_cdf_unnorm(p, p->z_max);
  if (!(total > 0.0) || !isfinite(total))
    return jade_error(JADE_ERR_NUMERIC, "Smail n(z) has no weight on [0, z_max = %g] (alpha %g beta %g z0 %g)",
                      p->z_max, p->smail_alpha, p->smail_beta, p->smail_z0);
  edges[0] = 0.0;
  edges[n] = p->z_max;
  for (int k = 1; k < n; k++) {
    double target = total * (double)k / n;
    double lo = edges[k - 1], hi = p->z_max;
    for (int it = 0; it < 200 && hi - lo > 4e-16 * p->z_max; it++) {
      double mid = 0.5 * (lo + hi);
      if (smail_cdf_unnorm(p, mid) < target) lo = mid;
      else hi = mid;
    }
    edges[k] = 0.5 * (lo + hi);
    if (!(edges[k] > edges[k - 1]))
      return jade_error(JADE_ERR_NUMERIC, "Smail bin edge %d (%g) not above edge %d (%g): n(z) too concentrated",
                        k, edges[k], k - 1, edges[k - 1]);
  }
  return JADE_OK;
}

static jade_survey *survey_alloc(void) {
  jade_survey *s = jade_calloc(1, sizeof *s);
  return s;
}

void jade_survey_free(jade_survey *s) {
  if (!s) return;
  for (int b = 0; b < JADE_MAX_BINS; b++) gsl_interp_free(s->spline[b]);
  free(s->z_tab);
  free(s->nz_tab);
  free(s->z_grid);
  free(s->nz_grid);
  free(s);
}

jade_status jade_survey_create(const jade_survey_params *p, jade_survey **out) {
  if (!out) return jade_error(JADE_ERR_INVALID, "jade_survey_create: out is NULL");
  *out = NULL;
  const int from_file = p && memchr(p->nz_file, 0, sizeof p->nz_file) && p->nz_file[0];
  if (p && !memchr(p->nz_file, 0, sizeof p->nz_file))
    return jade_error(JADE_ERR_INVALID, "survey nz_file is not a terminated string");
  jade_status st = validate_params(p, !from_file);
  if (st) return st;
  if (from_file) { /* the table's bins, n_gal / n_bins galaxies per arcmin^2 each */
    jade_survey *t = NULL;
    if ((st = jade_survey_read_nz(p->nz_file, p->n_bins, &t))) return st;
    double dens[JADE_MAX_BINS];
    for (int b = 0; b < p->n_bins; b++) dens[b] = p->n_gal / p->n_bins;
    if ((st = jade_survey_set_shape_noise(t, dens, p->sigma_e))) {
      jade_survey_free(t);
      return st;
    }
    memcpy(t->p.nz_file, p->nz_file, sizeof t->p.nz_file);
    *out = t;
    return JADE_OK;
  }
  jade_survey *s = survey_alloc();
  if (!s) return JADE_ERR_NOMEM;
  s->n_bins = p->n_bins;
  s->smail = 1;
  s->p = *p;
  if ((st = smail_edges(p, s->edges))) {
    jade_survey_free(s);
    return st;
  }
  int nb = p->n_bins;
  /* Internal grid: each true-z slice [e_k, e_k+1] gets an even number of uniform intervals
   * (both end points stored, so a jump of n_i at an edge is kept exactly when sigma_z = 0). */
  int m[JADE_MAX_BINS], n_grid = 0;
  for (int k = 0; k < nb; k++) {
    double w = s->edges[k + 1] - s->edges[k];
    int mk = 2 * (int)ceil(w / (2.0 * SURVEY_DZ_MAX));
    if (mk < 2) mk = 2;
    m[k] = mk;
    n_grid += mk + 1;
  }
  s->n_grid = n_grid;
  s->z_grid = jade_alloc(sizeof(double) * (size_t)n_grid);
  s->nz_grid = jade_alloc(sizeof(double) * (size_t)n_grid * (size_t)nb);
  if (!s->z_grid || !s->nz_grid) {
    jade_survey_free(s);
    return JADE_ERR_NOMEM;
  }
  double integral[JADE_MAX_BINS] = {0};
  int off = 0;
  for (int k = 0; k < nb; k++) {
    double lo = s->edges[k], h = (s->edges[k + 1] - lo) / m[k];
    for (int j = 0; j <= m[k]; j++) {
      double z = (j == m[k]) ? s->edges[k + 1] : lo + h * j;
      double par = smail_parent(p, z);
      s->z_grid[off + j] = z;
      /* composite Simpson weight within this slice */
      double sw = (j == 0 || j == m[k]) ? 1.0 : ((j & 1) ? 4.0 : 2.0);
      for (int b = 0; b < nb; b++) {
        double prob = p->sigma_z > 0.0 ? photoz_prob(p->sigma_z, s->edges[b], s->edges[b + 1], z)
                                        : (b == k ? 1.0 : 0.0);
        double v = par * prob;
        s->nz_grid[(size_t)b * n_grid + off + j] = v;
        integral[b] += sw * h / 3.0 * v;
      }
    }
    off += m[k] + 1;
  }
  for (int b = 0; b < nb; b++) {
    if (!(integral[b] > 0.0) || !isfinite(integral[b])) {
      jade_survey_free(s);
      return jade_error(JADE_ERR_NUMERIC, "survey bin %d has zero weight (integral %g)", b, integral[b]);
    }
    s->norm[b] = 1.0 / integral[b];
    for (int j = 0; j < n_grid; j++) s->nz_grid[(size_t)b * n_grid + j] *= s->norm[b];
  }
  *out = s;
  return JADE_OK;
}

jade_status jade_survey_create_interp(int n_bins, int n_z, const double *z, const double *nz, jade_nz_interp interp,
                                      jade_survey **out) {
  if (!out) return jade_error(JADE_ERR_INVALID, "jade_survey_create_interp: out is NULL");
  *out = NULL;
  if (n_bins < 1 || n_bins > JADE_MAX_BINS)
    return jade_error(JADE_ERR_INVALID, "tabulated survey n_bins = %d must be in [1, %d]", n_bins, JADE_MAX_BINS);
  if (interp != JADE_NZ_LINEAR && interp != JADE_NZ_SPLINE)
    return jade_error(JADE_ERR_INVALID, "tabulated survey: unknown interpolation %d", (int)interp);
  const int min_z = interp == JADE_NZ_SPLINE ? 3 : 2;
  if (n_z < min_z)
    return jade_error(JADE_ERR_INVALID, "tabulated survey needs at least %d redshifts (got %d)", min_z, n_z);
  if (!z || !nz) return jade_error(JADE_ERR_INVALID, "tabulated survey: z or nz is NULL");
  for (int k = 0; k < n_z; k++) {
    if (!isfinite(z[k]) || z[k] < 0.0 || z[k] > 100.0)
      return jade_error(JADE_ERR_INVALID, "tabulated survey z[%d] = %g must be in [0, 100]", k, z[k]);
    if (k > 0 && !(z[k] > z[k - 1]))
      return jade_error(JADE_ERR_INVALID, "tabulated survey z[%d] = %g is not above z[%d] = %g", k, z[k], k - 1,
                        z[k - 1]);
  }
  for (int b = 0; b < n_bins; b++)
    for (int k = 0; k < n_z; k++) {
      double v = nz[(size_t)b * n_z + k];
      if (!isfinite(v) || v < 0.0)
        return jade_error(JADE_ERR_INVALID, "tabulated survey n_%d(z[%d] = %g) = %g must be finite and >= 0", b, k,
                          z[k], v);
    }
  jade_survey *s = survey_alloc();
  if (!s) return JADE_ERR_NOMEM;
  s->n_bins = n_bins;
  s->smail = 0;
  s->interp = interp;
  s->p.n_bins = n_bins;
  s->p.z_max = z[n_z - 1];
  s->p.n_gal = NAN;
  s->p.sigma_e = NAN;
  for (int b = 0; b < JADE_MAX_BINS; b++) s->density[b] = NAN;
  s->p.smail_alpha = s->p.smail_beta = s->p.smail_z0 = s->p.sigma_z = NAN;
  for (int k = 0; k <= n_bins; k++) s->edges[k] = NAN;
  s->n_tab = n_z;
  s->z_tab = jade_alloc(sizeof(double) * (size_t)n_z);
  s->nz_tab = jade_alloc(sizeof(double) * (size_t)n_z * (size_t)n_bins);
  if (!s->z_tab || !s->nz_tab) {
    jade_survey_free(s);
    return JADE_ERR_NOMEM;
  }
  memcpy(s->z_tab, z, sizeof(double) * (size_t)n_z);
  memcpy(s->nz_tab, nz, sizeof(double) * (size_t)n_z * (size_t)n_bins);
  /* Normalise each bin by the exact integral of its interpolant: the trapezoid rule for the
   * linear one, GSL's integral of the cubic pieces for the spline. Steffen's interpolant is
   * homogeneous in the data (its slopes are min/sign combinations of secant slopes), so the
   * spline of the scaled nodes is the scaled spline and integrates to 1. */
  for (int b = 0; b < n_bins; b++) {
    double *v = s->nz_tab + (size_t)b * n_z, integral = 0.0;
    if (interp == JADE_NZ_LINEAR) {
      for (int k = 0; k + 1 < n_z; k++) integral += 0.5 * (z[k + 1] - z[k]) * (v[k] + v[k + 1]);
    } else {
      s->spline[b] = gsl_interp_alloc(gsl_interp_steffen, (size_t)n_z);
      if (!s->spline[b] || gsl_interp_init(s->spline[b], s->z_tab, v, (size_t)n_z)) {
        jade_survey_free(s);
        return jade_error(JADE_ERR_NOMEM, "tabulated survey: cannot set up the spline of bin %d", b);
      }
      integral = gsl_interp_eval_integ(s->spline[b], s->z_tab, v, z[0], z[n_z - 1], NULL);
    }
    if (!(integral > 0.0) || !isfinite(integral)) {
      jade_survey_free(s);
      return jade_error(JADE_ERR_INVALID, "tabulated survey bin %d has zero integral", b);
    }
    for (int k = 0; k < n_z; k++) v[k] /= integral;
    if (interp == JADE_NZ_SPLINE && gsl_interp_init(s->spline[b], s->z_tab, v, (size_t)n_z)) {
      jade_survey_free(s);
      return jade_error(JADE_ERR_NUMERIC, "tabulated survey: cannot set up the spline of bin %d", b);
    }
  }
  /* Internal grid: every input interval split into enough equal pieces that dz <= SURVEY_DZ_MAX,
   * the nodes included. Linear: the grid values are the interpolant and the trapezoid rule of
   * the kernels is exact. Spline: C1 cubic pieces, where the kernels' third-order rule applies. */
  int n_grid = 1;
  for (int k = 0; k + 1 < n_z; k++) n_grid += (int)ceil((z[k + 1] - z[k]) / SURVEY_DZ_MAX * (1.0 - 1e-9));
  s->n_grid = n_grid;
  s->z_grid = jade_alloc(sizeof(double) * (size_t)n_grid);
  s->nz_grid = jade_alloc(sizeof(double) * (size_t)n_grid * (size_t)n_bins);
  if (!s->z_grid || !s->nz_grid) {
    jade_survey_free(s);
    return JADE_ERR_NOMEM;
  }
  int g = 0;
  for (int k = 0; k + 1 < n_z; k++) {
    int mk = (int)ceil((z[k + 1] - z[k]) / SURVEY_DZ_MAX * (1.0 - 1e-9));
    for (int j = 0; j < mk; j++) s->z_grid[g++] = z[k] + (double)j / mk * (z[k + 1] - z[k]);
  }
  s->z_grid[g] = z[n_z - 1];
  for (int b = 0; b < n_bins; b++)
    for (int j = 0; j < n_grid; j++) s->nz_grid[(size_t)b * n_grid + j] = jade_survey_nz(s, b, s->z_grid[j]);
  *out = s;
  return JADE_OK;
}

jade_status jade_survey_create_tabulated(int n_bins, int n_z, const double *z, const double *nz,
                                         jade_survey **out) {
  return jade_survey_create_interp(n_bins, n_z, z, nz, JADE_NZ_LINEAR, out);
}

/* Column names of an n(z) table: the redshift, then bin1..binM and bin_1..bin_M with one more
 * than the maximum (so a table with too many bins is recognised). */
#define NZ_MAX_COLS (2 + 2 * (JADE_MAX_BINS + 1))

/* The columns of an n(z) table: the redshift column and the bins' columns in order. */
typedef struct {
  const double *z, *bin[JADE_MAX_BINS + 1];
  const char *zname, *binname[JADE_MAX_BINS + 1];
} nz_columns;

/* Pick the redshift column ('z' or 'z_mid') and the bin columns ('binN' or 'bin_N', numbered
 * from 1 without gaps, exactly n_bins of them) among the columns read. */
static jade_status match_nz_columns(const char *path, int n_bins, double *const *cols, const char *const *names,
                                    nz_columns *nc) {
  memset(nc, 0, sizeof *nc);
  if (cols[0] && cols[1])
    return jade_error(JADE_ERR_FORMAT, "n(z) table %s: has both a 'z' and a 'z_mid' column (keep one)", path);
  nc->z = cols[0] ? cols[0] : cols[1];
  nc->zname = cols[0] ? names[0] : names[1];
  if (!nc->z)
    return jade_error(JADE_ERR_FORMAT, "n(z) table %s: no redshift column: name it 'z' (or 'z_mid'), with one column "
                      "per bin named bin1 .. bin%d", path, n_bins);
  int n_found = 0;
  for (int b = 0; b <= JADE_MAX_BINS; b++) {
    double *a = cols[2 + b], *u = cols[3 + JADE_MAX_BINS + b];
    if (a && u)
      return jade_error(JADE_ERR_FORMAT, "n(z) table %s: has both '%s' and '%s' (keep one)", path, names[2 + b],
                        names[3 + JADE_MAX_BINS + b]);
    nc->bin[b] = a ? a : u;
    nc->binname[b] = a ? names[2 + b] : names[3 + JADE_MAX_BINS + b];
    if (nc->bin[b]) {
      if (b > n_found)
        return jade_error(JADE_ERR_FORMAT, "n(z) table %s: has a column '%s' but no 'bin%d' (bins are numbered from 1)",
                          path, nc->binname[b], n_found + 1);
      n_found++;
    }
  }
  if (n_found == 0)
    return jade_error(JADE_ERR_FORMAT, "n(z) table %s: no n(z) columns: name them bin1 .. bin%d (n_bins = %d)", path,
                      n_bins, n_bins);
  if (n_found != n_bins)
    return jade_error(JADE_ERR_FORMAT, "n(z) table %s has %d bin column%s (bin1%s%.0d) but the config has n_bins = %d",
                      path, n_found, n_found == 1 ? "" : "s", n_found == 1 ? "" : " .. bin", n_found == 1 ? 0 : n_found,
                      n_bins);
  return JADE_OK;
}

/* Rows: at least 3 (the spline), at most 1e7; z in [0, 100] and increasing. */
static jade_status check_nz_redshifts(const char *path, const nz_columns *nc, size_t rows) {
  if (rows < 3)
    return jade_error(JADE_ERR_FORMAT, "n(z) table %s: %zu row%s; the spline needs at least 3 redshifts", path, rows,
                      rows == 1 ? "" : "s");
  if (rows > 10000000)
    return jade_error(JADE_ERR_FORMAT, "n(z) table %s: %zu rows, more than the 1e7 an n(z) can need", path, rows);
  const double *zc = nc->z;
  for (size_t r = 0; r < rows; r++) {
    if (!(zc[r] >= 0.0 && zc[r] <= 100.0))
      return jade_error(JADE_ERR_FORMAT, "n(z) table %s: column '%s' row %zu: z = %g must be in [0, 100]", path,
                        nc->zname, r + 1, zc[r]);
    if (r > 0 && !(zc[r] > zc[r - 1]))
      return jade_error(JADE_ERR_FORMAT, "n(z) table %s: column '%s' row %zu: z = %g is not above the previous row's %g "
                        "(z must increase)", path, nc->zname, r + 1, zc[r], zc[r - 1]);
  }
  return JADE_OK;
}

/* nz[b * rows + r] = the bins' values, each non-negative and not zero everywhere. */
static jade_status copy_nz_bins(const char *path, const nz_columns *nc, int n_bins, size_t rows, double *nz) {
  for (int b = 0; b < n_bins; b++) {
    double sum = 0.0;
    for (size_t r = 0; r < rows; r++) {
      double v = nc->bin[b][r];
      if (v < 0.0)
        return jade_error(JADE_ERR_FORMAT, "n(z) table %s: column '%s' row %zu (z = %g): n(z) = %g is negative", path,
                          nc->binname[b], r + 1, nc->z[r], v);
      sum += v;
      nz[(size_t)b * rows + r] = v;
    }
    if (!(sum > 0.0)) return jade_error(JADE_ERR_FORMAT, "n(z) table %s: column '%s' is zero in every row", path, nc->binname[b]);
  }
  return JADE_OK;
}

jade_status jade_survey_read_nz(const char *path, int n_bins, jade_survey **out) {
  if (!out) return jade_error(JADE_ERR_INVALID, "jade_survey_read_nz: out is NULL");
  *out = NULL;
  if (!path || !*path) return jade_error(JADE_ERR_INVALID, "n(z) table: no file name");
  if (n_bins < 1 || n_bins > JADE_MAX_BINS)
    return jade_error(JADE_ERR_INVALID, "n(z) table %s: n_bins = %d must be in [1, %d]", path, n_bins, JADE_MAX_BINS);
  char namebuf[NZ_MAX_COLS][16];
  const char *names[NZ_MAX_COLS];
  int required[NZ_MAX_COLS] = {0};
  snprintf(namebuf[0], sizeof namebuf[0], "z");
  snprintf(namebuf[1], sizeof namebuf[1], "z_mid");
  for (int b = 0; b <= JADE_MAX_BINS; b++) {
    snprintf(namebuf[2 + b], sizeof namebuf[0], "bin%d", b + 1);
    snprintf(namebuf[3 + JADE_MAX_BINS + b], sizeof namebuf[0], "bin_%d", b + 1);
  }
  for (int c = 0; c < NZ_MAX_COLS; c++) names[c] = namebuf[c];
  double *cols[NZ_MAX_COLS];
  size_t rows = 0;
  jade_status st = jade_table_read_hdu(path, "NZ_SOURCE", NZ_MAX_COLS, names, required, cols, &rows);
  if (st) return jade_error_context(st, "n(z) table");
  nz_columns nc;
  double *nz = NULL;
  st = match_nz_columns(path, n_bins, cols, names, &nc);
  if (!st) st = check_nz_redshifts(path, &nc, rows);
  if (!st) {
    nz = malloc(sizeof(double) * rows * (size_t)n_bins);
    if (!nz) st = jade_error(JADE_ERR_NOMEM, "n(z) table %s: out of memory", path);
  }
  if (!st) st = copy_nz_bins(path, &nc, n_bins, rows, nz);
  if (!st) {
    st = jade_survey_create_interp(n_bins, (int)rows, nc.z, nz, JADE_NZ_SPLINE, out);
    if (st) st = jade_error_context(st, "n(z) table %s", path);
  }
  free(nz);
  for (int c = 0; c < NZ_MAX_COLS; c++) free(cols[c]);
  return st;
}

int jade_survey_n_bins(const jade_survey *s) { return s ? s->n_bins : 0; }

double jade_survey_z_max(const jade_survey *s) { return s ? s->p.z_max : NAN; }

void jade_survey_edges(const jade_survey *s, double *edges) {
  if (!s || !edges) return;
  for (int k = 0; k <= s->n_bins; k++) edges[k] = s->edges[k];
}

double jade_survey_nz(const jade_survey *s, int bin, double z) {
  if (!s || bin < 0 || bin >= s->n_bins || isnan(z)) return NAN;
  if (s->smail) {
    const jade_survey_params *p = &s->p;
    if (z <= 0.0 || z > p->z_max) return 0.0;
    double prob;
    if (p->sigma_z > 0.0) prob = photoz_prob(p->sigma_z, s->edges[bin], s->edges[bin + 1], z);
    else prob = (z >= s->edges[bin] && (z < s->edges[bin + 1] || bin == s->n_bins - 1)) ? 1.0 : 0.0;
    return s->norm[bin] * smail_parent(p, z) * prob;
  }
  const double *zt = s->z_tab, *v = s->nz_tab + (size_t)bin * s->n_tab;
  int n = s->n_tab;
  if (z < zt[0] || z > zt[n - 1]) return 0.0;
  if (s->interp == JADE_NZ_SPLINE) { /* no accelerator: thread-safe; >= 0 by monotonicity */
    double y = gsl_interp_eval(s->spline[bin], zt, v, z, NULL);
    return y > 0.0 ? y : 0.0;
  }
  int lo = 0, hi = n - 1; /* zt[lo] <= z <= zt[hi] */
  while (hi - lo > 1) {
    int mid = (lo + hi) / 2;
    if (zt[mid] <= z) lo = mid;
    else hi = mid;
  }
  double t = (z - zt[lo]) / (zt[hi] - zt[lo]);
  return (1.0 - t) * v[lo] + t * v[hi];
}

/* Smail: equal-number bins, each n_gal / n_bins galaxies per arcmin^2 (spec simulator.md);
 * tabulated: what jade_survey_set_shape_noise gave (NaN before). */
double jade_survey_bin_density(const jade_survey *s, int bin) {
  if (!s || bin < 0 || bin >= s->n_bins) return NAN;
  return s->smail ? s->p.n_gal / s->n_bins : s->density[bin];
}

jade_status jade_survey_set_shape_noise(jade_survey *s, const double *n_gal_bin, double sigma_e) {
  if (!s || !n_gal_bin) return jade_error(JADE_ERR_INVALID, "survey shape noise: survey or densities NULL");
  if (!isfinite(sigma_e) || sigma_e < 0.0)
    return jade_error(JADE_ERR_INVALID, "survey sigma_e = %g must be finite and >= 0", sigma_e);
  for (int b = 0; b < s->n_bins; b++)
    if (!isfinite(n_gal_bin[b]) || !(n_gal_bin[b] > 0.0))
      return jade_error(JADE_ERR_INVALID, "survey galaxy density of bin %d = %g must be positive", b, n_gal_bin[b]);
  double total = 0.0;
  for (int b = 0; b < s->n_bins; b++) {
    s->density[b] = n_gal_bin[b];
    total += n_gal_bin[b];
  }
  s->p.n_gal = total;
  s->p.sigma_e = sigma_e;
  if (s->smail) /* equal-number bins by construction: keep that, with the given total */
    for (int b = 0; b < s->n_bins; b++) s->density[b] = total / s->n_bins;
  return JADE_OK;
}

/* Shape noise of the mean convergence in a pixel of area A_pix = pixel_arcmin^2:
 * sigma_e / sqrt(n_i A_pix) (e.g. Kaiser & Squires 1993; sbi_lens). */
double jade_survey_pixel_noise(const jade_survey *s, int bin, double pixel_arcmin) {
  if (!(pixel_arcmin > 0.0) || !isfinite(pixel_arcmin)) return NAN;
  double n = jade_survey_bin_density(s, bin);
  return s->p.sigma_e / sqrt(n * pixel_arcmin * pixel_arcmin);
}

int jade_survey_grid_(const jade_survey *s, const double **z, const double **nz, int *smooth) {
  if (z) *z = s->z_grid;
  if (nz) *nz = s->nz_grid;
  if (smooth) *smooth = s->smail || s->interp == JADE_NZ_SPLINE;
  return s->n_grid;
}
