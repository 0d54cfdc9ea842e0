/* Shear catalogues onto the survey grid: reading, gnomonic projection, weighted binning with
 * mask and per-pixel noise, and the observation file (formulas in include/jade/catalog.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/catalog.h"
#include "jade/io.h"

#define DEG (M_PI / 180.0)

void jade_shear_catalog_free(jade_shear_catalog *cat) {
  free(cat->ra);
  free(cat->dec);
  free(cat->e1);
  free(cat->e2);
  free(cat->w);
  free(cat->bin);
  memset(cat, 0, sizeof *cat);
}

jade_status jade_shear_catalog_read(const char *path, int bin_base, int n_bins, jade_shear_catalog *cat) {
  memset(cat, 0, sizeof *cat);
  if (n_bins < 1 || n_bins > JADE_CATALOG_MAX_BINS)
    return jade_error(JADE_ERR_INVALID, "catalogue: %d bins (1 to %d)", n_bins, JADE_CATALOG_MAX_BINS);
  static const char *const names[6] = {"ra", "dec", "e1", "e2", "weight", "bin"};
  static const int required[6] = {1, 1, 1, 1, 0, 1};
  double *col[6];
  size_t n = 0;
  jade_status st = jade_table_read(path, 6, names, required, col, &n);
  if (st) return jade_error_context(st, "reading the shear catalogue");
  if (!n) st = jade_error(JADE_ERR_FORMAT, "%s: the catalogue has no rows", path);
  cat->bin = st ? NULL : malloc(sizeof(int) * n);
  if (!st && !cat->bin) st = jade_error(JADE_ERR_NOMEM, "%s: out of memory", path);
  for (size_t i = 0; i < n && !st; i++) {
    double b = col[5][i] - bin_base;
    if (b != floor(b) || b < 0 || b >= n_bins)
      st = jade_error(JADE_ERR_FORMAT, "%s: row %zu: bin = %g; expected an integer from %d to %d", path, i + 1,
                      col[5][i], bin_base, bin_base + n_bins - 1);
    else if (fabs(col[1][i]) > 90.0)
      st = jade_error(JADE_ERR_FORMAT, "%s: row %zu: dec = %g is not a declination in degrees", path, i + 1, col[1][i]);
    else if (fabs(col[2][i]) > 10.0 || fabs(col[3][i]) > 10.0) /* estimators may exceed 1, not 10 */
      st = jade_error(JADE_ERR_FORMAT, "%s: row %zu: (e1, e2) = (%g, %g) is not an ellipticity", path, i + 1,
                      col[2][i], col[3][i]);
    else if (col[4] && !(col[4][i] >= 0.0))
      st = jade_error(JADE_ERR_FORMAT, "%s: row %zu: weight = %g is negative", path, i + 1, col[4][i]);
    else
      cat->bin[i] = (int)b;
  }
  if (!st && !col[4]) {
    col[4] = malloc(sizeof(double) * n);
    if (!col[4]) st = jade_error(JADE_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n && !st; i++) col[4][i] = 1.0;
  }
  free(col[5]);
  cat->ra = col[0];
  cat->dec = col[1];
  cat->e1 = col[2];
  cat->e2 = col[3];
  cat->w = col[4];
  cat->n = n;
  if (st) jade_shear_catalog_free(cat);
  return st;
}

void jade_catalog_binning_default(jade_catalog_binning *b, int n_bins, int n_pix, double size_deg) {
  memset(b, 0, sizeof *b);
  b->n_bins = n_bins;
  b->n_pix = n_pix;
  b->size_deg = size_deg;
  b->ra0 = NAN;
  b->dec0 = NAN;
  b->flip_e2 = 1;
}

/* Calabretta & Greisen 2002, eqs. 54-55 (TAN), in the (east, north) orientation. */
int jade_gnomonic(double ra0, double dec0, double ra, double dec, double *x, double *y) {
  double d0 = dec0 * DEG, d = dec * DEG, da = (ra - ra0) * DEG;
  double cosc = sin(d0) * sin(d) + cos(d0) * cos(d) * cos(da);
  if (!(cosc > 0.0)) return 0;
  *x = cos(d) * sin(da) / cosc / DEG;
  *y = (cos(d0) * sin(d) - sin(d0) * cos(d) * cos(da)) / cosc / DEG;
  return 1;
}

void jade_gnomonic_inverse(double ra0, double dec0, double x, double y, double *ra, double *dec) {
  double d0 = dec0 * DEG, X = x * DEG, Y = y * DEG;
  double rho = hypot(X, Y);
  if (rho == 0.0) {
    *ra = ra0;
    *dec = dec0;
    return;
  }
  double c = atan(rho);
  *dec = asin(cos(c) * sin(d0) + Y * sin(c) * cos(d0) / rho) / DEG;
  *ra = ra0 + atan2(X * sin(c), rho * cos(d0) * cos(c) - Y * sin(d0) * sin(c)) / DEG;
  if (*ra < 0) *ra += 360.0;
  if (*ra >= 360.0) *ra -= 360.0;
}

/* Centre of a catalogue: direction of the mean unit vector (robust across RA = 0). */
static void catalog_centre(const jade_shear_catalog *cat, double *ra0, double *dec0) {
  double sx = 0, sy = 0, sz = 0;
  for (size_t i = 0; i < cat->n; i++) {
    double a = cat->ra[i] * DEG, d = cat->dec[i] * DEG;
    sx += cos(d) * cos(a);
    sy += cos(d) * sin(a);
    sz += sin(d);
  }
  *ra0 = atan2(sy, sx) / DEG;
  if (*ra0 < 0) *ra0 += 360.0;
  *dec0 = atan2(sz, hypot(sx, sy)) / DEG;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void jade_binned_shear_free(jade_binned_shear *m) {
  free(m->g1);
  free(m->g2);
  free(m->mask);
  free(m->noise);
  memset(m, 0, sizeof *m);
}

jade_status jade_shear_catalog_bin(const jade_shear_catalog *cat, const jade_catalog_binning *b,
                                   jade_binned_shear *out) {
  memset(out, 0, sizeof *out);
  if (b->n_bins < 1 || b->n_bins > JADE_CATALOG_MAX_BINS || b->n_pix < 2 || !(b->size_deg > 0 && b->size_deg < 90))
    return jade_error(JADE_ERR_INVALID, "catalogue binning: %d bins, %d pixels, %g deg", b->n_bins, b->n_pix,
                      b->size_deg);
  const int B = b->n_bins, n = b->n_pix;
  const size_t np = (size_t)n * n, tot = np * B;
  double ra0 = b->ra0, dec0 = b->dec0;
  if (!isfinite(ra0) || !isfinite(dec0)) catalog_centre(cat, &ra0, &dec0);
  if (fabs(dec0) > 90.0) return jade_error(JADE_ERR_INVALID, "centre dec = %g", dec0);
  double *sw = calloc(tot, sizeof(double)), *sw2 = calloc(tot, sizeof(double));
  double *s1 = calloc(tot, sizeof(double)), *s2 = calloc(tot, sizeof(double));
  out->g1 = malloc(sizeof(float) * tot);
  out->g2 = malloc(sizeof(float) * tot);
  out->mask = malloc(sizeof(float) * tot);
  out->noise = malloc(sizeof(float) * tot);
  double *med = malloc(sizeof(double) * np);
  jade_status st = JADE_OK;
  if (!sw || !sw2 || !s1 || !s2 || !out->g1 || !out->g2 || !out->mask || !out->noise || !med)
    st = jade_error(JADE_ERR_NOMEM, "catalogue binning: out of memory");
  double ew2[JADE_CATALOG_MAX_BINS] = {0}, w2[JADE_CATALOG_MAX_BINS] = {0};
  const double pix = b->size_deg / n, sign2 = b->flip_e2 ? -1.0 : 1.0;
  for (size_t i = 0; i < cat->n && !st; i++) {
    double x, y;
    int k = cat->bin[i];
    const double w = cat->w[i];
    if (k < 0 || k >= B) {
      st = jade_error(JADE_ERR_INVALID, "catalogue row %zu: bin %d of %d", i + 1, k, B);
      break;
    }
    /* first array axis runs west (CDELT1 < 0): ix = n/2 - x/pix, iy = n/2 + y/pix */
    if (!jade_gnomonic(ra0, dec0, cat->ra[i], cat->dec[i], &x, &y)) {
      out->n_outside++;
      continue;
    }
    double fx = n / 2.0 - x / pix, fy = n / 2.0 + y / pix;
    if (!(fx >= 0 && fx < n && fy >= 0 && fy < n)) {
      out->n_outside++;
      continue;
    }
    size_t p = (size_t)k * np + (size_t)(int)fy * n + (size_t)(int)fx;
    sw[p] += w;
    sw2[p] += w * w;
    s1[p] += w * cat->e1[i];
    s2[p] += w * sign2 * cat->e2[i];
    ew2[k] += w * w * 0.5 * (cat->e1[i] * cat->e1[i] + cat->e2[i] * cat->e2[i]);
    w2[k] += w * w;
    out->n_used++;
  }
  if (!st && !out->n_used)
    st = jade_error(JADE_ERR_INVALID, "no galaxy of the catalogue falls on the %g x %g deg grid centred at (%g, %g)",
                    b->size_deg, b->size_deg, ra0, dec0);
  for (int k = 0; k < B && !st; k++) {
    double se = b->sigma_e[k] > 0 ? b->sigma_e[k] : (w2[k] > 0 ? sqrt(ew2[k] / w2[k]) : 0.0);
    if (!(se > 0))
      st = jade_error(JADE_ERR_INVALID, "tomographic bin %d has no galaxy with non-zero weight on the grid", k);
    out->sigma_e[k] = se;
    size_t n_obs = 0;
    for (size_t q = 0; q < np && !st; q++) {
      size_t p = (size_t)k * np + q;
      if (sw[p] > 0) {
        out->g1[p] = (float)(s1[p] / sw[p]);
        out->g2[p] = (float)(s2[p] / sw[p]);
        out->mask[p] = 1.0f;
        out->noise[p] = (float)(se * sqrt(sw2[p]) / sw[p]);
        med[n_obs++] = out->noise[p];
      } else {
        out->g1[p] = out->g2[p] = out->mask[p] = out->noise[p] = 0.0f;
      }
    }
    if (!st) {
      qsort(med, n_obs, sizeof(double), cmp_double);
      out->noise_median[k] = n_obs % 2 ? med[n_obs / 2] : 0.5 * (med[n_obs / 2 - 1] + med[n_obs / 2]);
      out->masked_fraction[k] = 1.0 - (double)n_obs / np;
    }
  }
  free(sw);
  free(sw2);
  free(s1);
  free(s2);
  free(med);
  if (st) {
    jade_binned_shear_free(out);
    return st;
  }
  out->n_bins = B;
  out->n_pix = n;
  out->size_deg = b->size_deg;
  out->ra0 = ra0;
  out->dec0 = dec0;
  return JADE_OK;
}

static jade_fits_key key_d(const char *name, double v, const char *comment) {
  jade_fits_key k;
  memset(&k, 0, sizeof k);
  snprintf(k.name, sizeof k.name, "%s", name);
  k.type = JADE_KEY_DOUBLE;
  k.d = v;
  snprintf(k.comment, sizeof k.comment, "%s", comment);
  return k;
}

static jade_fits_key key_l(const char *name, long v, const char *comment) {
  jade_fits_key k = key_d(name, 0, comment);
  k.type = JADE_KEY_LONG;
  k.l = v;
  return k;
}

static jade_fits_key key_s(const char *name, const char *v, const char *comment) {
  jade_fits_key k = key_d(name, 0, comment);
  k.type = JADE_KEY_STRING;
  snprintf(k.s, sizeof k.s, "%s", v);
  return k;
}

jade_status jade_binned_shear_write(const jade_binned_shear *m, const char *path, int overwrite) {
  if (!overwrite && jade_path_exists(path))
    return jade_error(JADE_ERR_IO, "%s exists (remove it or choose another --out)", path);
  jade_fits_key k[24 + 2 * JADE_CATALOG_MAX_BINS];
  int nk = 0;
  const double pix = m->size_deg / m->n_pix;
  k[nk++] = key_l("NBINS", m->n_bins, "tomographic bins (cube axis 3)");
  k[nk++] = key_l("NPIX", m->n_pix, "pixels per side");
  k[nk++] = key_d("SIZEDEG", m->size_deg, "[deg] side of the square patch");
  k[nk++] = key_d("PIXARCM", pix * 60.0, "[arcmin] pixel side");
  k[nk++] = key_s("CTYPE1", "RA---TAN", "gnomonic projection");
  k[nk++] = key_s("CTYPE2", "DEC--TAN", "");
  k[nk++] = key_s("CUNIT1", "deg", "");
  k[nk++] = key_s("CUNIT2", "deg", "");
  k[nk++] = key_d("CDELT1", -pix, "[deg] pixel scale");
  k[nk++] = key_d("CDELT2", pix, "[deg] pixel scale");
  k[nk++] = key_d("CRPIX1", m->n_pix / 2.0 + 0.5, "reference pixel: patch centre");
  k[nk++] = key_d("CRPIX2", m->n_pix / 2.0 + 0.5, "");
  k[nk++] = key_d("CRVAL1", m->ra0, "[deg] RA of the patch centre");
  k[nk++] = key_d("CRVAL2", m->dec0, "[deg] Dec of the patch centre");
  k[nk++] = key_l("NGALUSED", (long)m->n_used, "catalogue galaxies on the grid");
  if (m->source) {
    char src[69];
    snprintf(src, sizeof src, "%.68s", m->source); /* a FITS string value holds 68 characters */
    k[nk++] = key_s("CATFILE", src, "shear catalogue (first 68 characters)");
  }
  for (int i = 0; i < m->n_bins; i++) {
    char name[16];
    snprintf(name, sizeof name, "NOISE%d", i);
    k[nk++] = key_d(name, m->noise_median[i], "median per-pixel noise sigma (each comp.)");
    snprintf(name, sizeof name, "SIGE%d", i);
    k[nk++] = key_d(name, m->sigma_e[i], "shape noise per component used");
  }
  jade_fits_writer *w;
  jade_status st = jade_fits_writer_open(path, &w);
  if (st) return st;
  const long dims[3] = {m->n_pix, m->n_pix, m->n_bins};
  st = jade_fits_writer_add_image(w, "GAMMA1", 3, dims, m->g1, k, nk);
  if (!st) st = jade_fits_writer_add_image(w, "GAMMA2", 3, dims, m->g2, k, nk);
  if (!st) st = jade_fits_writer_add_image(w, "MASK", 3, dims, m->mask, k, nk);
  if (!st) st = jade_fits_writer_add_image(w, "NOISEMAP", 3, dims, m->noise, k, nk);
  if (st) {
    jade_fits_writer_abort(w);
    return st;
  }
  return jade_fits_writer_close(w);
}
