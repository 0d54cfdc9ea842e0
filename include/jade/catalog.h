/* Shear catalogues onto the survey grid (jade catalog): a real survey's galaxies (ra, dec,
 * e1, e2, weight, tomographic bin) become an observation file that jade reads like a mock:
 * weighted mean shear per pixel and bin, the mask of observed pixels and the per-pixel noise.
 *
 * Geometry: gnomonic (TAN) projection about the patch centre (ra0, dec0) (Calabretta &
 * Greisen 2002, A&A 395, 1077, eqs. 54-55); n_pix x n_pix pixels of size_deg / n_pix
 * degrees, CDELT1 < 0 (east to the left, as every FITS image of the sky), so the first
 * array axis x runs towards decreasing RA.
 * Shear frame: the catalogue's (e1, e2) are taken with respect to the local (east, north)
 * axes, e1 > 0 along east-west. jade's maps use the pixel frame (x, y); x points west, a
 * reflection, which flips the sign of e2 (flip_e2 = 1, the default). Catalogues already in
 * the pixel frame (x along +RA) pass flip_e2 = 0.
 * Per pixel p of bin b with galaxies i (weights w_i):
 *   g_p = sum w_i e_i / sum w_i;
 *   sigma_p = sigma_e,b sqrt(sum w_i^2) / sum w_i   (noise per shear component),
 * with sigma_e,b the per-component shape noise of bin b, estimated from the catalogue as
 * sigma_e,b^2 = sum w_i^2 (e1_i^2 + e2_i^2) / (2 sum w_i^2) unless given (the shear
 * signal adds ~1e-3 to sigma_e^2 ~ 0.07: negligible). A pixel with no galaxy is masked. */
#ifndef JADE_CATALOG_H
#define JADE_CATALOG_H
#include <stddef.h>

#include "jade/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define JADE_CATALOG_MAX_BINS 16

typedef struct {
  size_t n;
  double *ra, *dec; /* degrees */
  double *e1, *e2;  /* ellipticity components in the (east, north) frame */
  double *w;        /* weights (1 when the catalogue has no weight column) */
  int *bin;         /* tomographic bin, 0-based after reading */
} jade_shear_catalog;

/* Read a catalogue: a FITS binary table (first table HDU) or a CSV / whitespace text table
 * whose first non-comment line names the columns. Columns (case-insensitive): ra, dec, e1,
 * e2, weight (optional), bin; bin values start at bin_base (0 or 1, e.g. KiDS' TOMO_BIN
 * is 1-based) and must be below bin_base + n_bins. NaN/Inf, negative weights, |e1| or |e2| > 10 and
 * |dec| > 90 are errors naming the file, column and row. */
jade_status jade_shear_catalog_read(const char *path, int bin_base, int n_bins, jade_shear_catalog *cat);
void jade_shear_catalog_free(jade_shear_catalog *cat);

typedef struct {
  int n_bins, n_pix;
  double size_deg;
  double ra0, dec0;  /* patch centre in degrees; NaN: centre of the catalogue */
  int flip_e2;       /* 1: catalogue in the (east, north) frame (default), 0: pixel frame */
  double sigma_e[JADE_CATALOG_MAX_BINS]; /* <= 0: estimate from the catalogue */
} jade_catalog_binning;

void jade_catalog_binning_default(jade_catalog_binning *b, int n_bins, int n_pix, double size_deg);

typedef struct {
  int n_bins, n_pix;
  double size_deg, ra0, dec0;
  float *g1, *g2;     /* [bin][y][x] weighted mean shear, 0 where masked */
  float *mask;        /* [bin][y][x] 1 observed, 0 masked */
  float *noise;       /* [bin][y][x] per-component noise sigma, 0 where masked */
  double sigma_e[JADE_CATALOG_MAX_BINS];   /* used per bin */
  double noise_median[JADE_CATALOG_MAX_BINS]; /* median of noise over observed pixels */
  double masked_fraction[JADE_CATALOG_MAX_BINS];
  size_t n_used, n_outside; /* galaxies on the grid / outside it */
  const char *source;       /* the catalogue's path, for the CATFILE key (NULL: none); not owned */
} jade_binned_shear;

/* Bin a catalogue onto the grid. Errors: no galaxy on the grid, a bin with no galaxy. */
jade_status jade_shear_catalog_bin(const jade_shear_catalog *cat, const jade_catalog_binning *b,
                                   jade_binned_shear *out);
void jade_binned_shear_free(jade_binned_shear *m);

/* Gnomonic projection: (ra, dec) -> (x, y) in degrees on the tangent plane at (ra0, dec0), x
 * towards east. Returns 0 for points on the far hemisphere (cos c <= 0). */
int jade_gnomonic(double ra0, double dec0, double ra, double dec, double *x, double *y);
/* Its inverse. */
void jade_gnomonic_inverse(double ra0, double dec0, double x, double y, double *ra, double *dec);

/* Write a binned catalogue as an observation file: GAMMA1, GAMMA2, MASK and NOISEMAP cubes
 * with the geometry keys of jade observations (CTYPE RA---TAN / DEC--TAN, CRVAL = centre),
 * NOISE<i> = the median per-pixel noise of bin i and NGALUSED. Atomic (temporary + rename);
 * refuses an existing path unless overwrite. */
jade_status jade_binned_shear_write(const jade_binned_shear *m, const char *path, int overwrite);

#ifdef __cplusplus
}
#endif
#endif
