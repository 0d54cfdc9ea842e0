/* Shear catalogues onto the grid (src/lensing/catalog.c, src/io/table.c):
 *  - gnomonic projection: a known value (tan 1 deg) and forward/inverse round trips;
 *  - noise-free round trip: galaxies placed at random inside each pixel with the pixel's
 *    shear (in the (east, north) frame: e2 flipped) give back the map exactly, and the noise
 *    map equals sigma_e sqrt(sum w^2) / sum w computed from the placed weights;
 *  - with shape noise: the estimated sigma_e and chi^2 of (binned - truth) / noise map
 *    against their exact distributions; a hole gives exactly the masked pixels;
 *  - the CSV and FITS-table readers agree; bad catalogues are refused naming the file;
 *  - the written observation reads back through jade_observation_read (MASK, NOISEMAP,
 *    CDELT-only geometry, kappa cube in the primary HDU). */
#include <float.h>
#include <math.h>
#include <string.h>

#include <fitsio.h>

#include "jade/catalog.h"
#include "jade/config.h"
#include "jade/core.h"
#include "jade/io.h"
#include "jade/observation.h"
#include "test_files.h"
#include "test_util.h"

#define DEG (M_PI / 180.0)

static void test_gnomonic(void) {
  double x, y, ra, dec;
  CHECK(jade_gnomonic(10.0, 0.0, 11.0, 0.0, &x, &y), "projection failed");
  /* on the equator 1 deg east of the centre: x = tan(1 deg) in degrees, y = 0 */
  CHECK(fabs(x - tan(DEG) / DEG) < 1e-12 && fabs(y) < 1e-12, "x = %.15g (%.15g), y = %g", x, tan(DEG) / DEG, y);
  CHECK(!jade_gnomonic(0.0, 0.0, 180.0, 0.0, &x, &y), "far hemisphere accepted");
  double worst = 0;
  for (int i = 0; i < 2000; i++) {
    double ra0 = 360.0 * jade_rng_uniform(1, 1, (uint64_t)i), dec0 = -80.0 + 160.0 * jade_rng_uniform(1, 2, (uint64_t)i);
    double xi = -3.0 + 6.0 * jade_rng_uniform(1, 3, (uint64_t)i), yi = -3.0 + 6.0 * jade_rng_uniform(1, 4, (uint64_t)i);
    jade_gnomonic_inverse(ra0, dec0, xi, yi, &ra, &dec);
    CHECK(jade_gnomonic(ra0, dec0, ra, dec, &x, &y), "round trip point on the far side");
    double e = fmax(fabs(x - xi), fabs(y - yi));
    if (!(e <= worst)) worst = e;
  }
  CHECK(worst < 1e-9, "gnomonic round trip error %.3g deg", worst);
  printf("gnomonic: tan(1 deg) exact, 2000 round trips max error %.2g deg\n", worst);
}

typedef struct {
  int B, n, per_pix;
  double size, ra0, dec0;
  float *g1, *g2;   /* [B][n][n] truth (pixel frame) */
  double *sw, *sw2; /* per pixel sums of the placed weights */
} truth_maps;

/* A catalogue with per_pix galaxies per pixel and bin (none inside the hole of radius
 * hole_deg around hole centre, if > 0), e = truth shear (sky frame) + sigma_e noise. */
static void make_catalogue(truth_maps *t, double sigma_e, double hole_deg, jade_shear_catalog *cat) {
  const int B = t->B, n = t->n;
  const size_t np = (size_t)n * n, N = np * B * t->per_pix;
  memset(cat, 0, sizeof *cat);
  cat->ra = jade_alloc(sizeof(double) * N);
  cat->dec = jade_alloc(sizeof(double) * N);
  cat->e1 = jade_alloc(sizeof(double) * N);
  cat->e2 = jade_alloc(sizeof(double) * N);
  cat->w = jade_alloc(sizeof(double) * N);
  cat->bin = jade_alloc(sizeof(int) * N);
  t->sw = calloc(np * B, sizeof(double));
  t->sw2 = calloc(np * B, sizeof(double));
  const double pix = t->size / n;
  size_t k = 0;
  for (int b = 0; b < B; b++)
    for (int iy = 0; iy < n; iy++)
      for (int ix = 0; ix < n; ix++)
        for (int g = 0; g < t->per_pix; g++) {
          uint64_t id = (((uint64_t)b * n + iy) * n + ix) * 64 + g;
          /* position inside the pixel, away from its edges by 1e-6 of a pixel */
          double ux = 1e-6 + (1 - 2e-6) * jade_rng_uniform(2, 1, id), uy = 1e-6 + (1 - 2e-6) * jade_rng_uniform(2, 2, id);
          double x = (n / 2.0 - ix - ux) * pix, y = (iy + uy - n / 2.0) * pix; /* x east */
          if (hole_deg > 0 && hypot(x - 0.7, y + 0.4) < hole_deg) continue;
          size_t p = (size_t)b * np + (size_t)iy * n + ix;
          double w = 0.5 + jade_rng_uniform(2, 3, id);
          jade_gnomonic_inverse(t->ra0, t->dec0, x, y, &cat->ra[k], &cat->dec[k]);
          cat->e1[k] = t->g1[p] + sigma_e * jade_rng_normal(2, 4, id);
          cat->e2[k] = -(t->g2[p] + sigma_e * jade_rng_normal(2, 5, id)); /* sky frame: x east */
          cat->w[k] = w;
          cat->bin[k] = b;
          t->sw[p] += w;
          t->sw2[p] += w * w;
          k++;
        }
  cat->n = k;
}

static void truth_init(truth_maps *t, int B, int n, int per_pix) {
  memset(t, 0, sizeof *t);
  t->B = B;
  t->n = n;
  t->per_pix = per_pix;
  t->size = 2.0;
  t->ra0 = 359.5; /* the patch straddles RA = 0 */
  t->dec0 = -31.0;
  size_t tot = (size_t)B * n * n;
  t->g1 = jade_alloc(sizeof(float) * tot);
  t->g2 = jade_alloc(sizeof(float) * tot);
  for (size_t i = 0; i < tot; i++) {
    t->g1[i] = (float)(0.03 * jade_rng_normal(3, 1, i));
    t->g2[i] = (float)(0.03 * jade_rng_normal(3, 2, i));
  }
}

static void truth_free(truth_maps *t) {
  free(t->g1);
  free(t->g2);
  free(t->sw);
  free(t->sw2);
}

static void test_noise_free_round_trip(void) {
  truth_maps t;
  truth_init(&t, 3, 16, 3);
  jade_shear_catalog cat;
  make_catalogue(&t, 0.0, 0.0, &cat);
  jade_catalog_binning b;
  jade_catalog_binning_default(&b, t.B, t.n, t.size);
  b.ra0 = t.ra0;
  b.dec0 = t.dec0;
  for (int i = 0; i < t.B; i++) b.sigma_e[i] = 0.25;
  jade_binned_shear m;
  CHECK_OK(jade_shear_catalog_bin(&cat, &b, &m));
  CHECK(m.n_used == cat.n && m.n_outside == 0, "%zu used, %zu outside of %zu", m.n_used, m.n_outside, cat.n);
  double eg = 0, en = 0;
  size_t tot = (size_t)t.B * t.n * t.n;
  for (size_t p = 0; p < tot; p++) {
    double e = fmax(fabs(m.g1[p] - t.g1[p]), fabs(m.g2[p] - t.g2[p]));
    if (!(e <= eg)) eg = e;
    double sn = 0.25 * sqrt(t.sw2[p]) / t.sw[p];
    double r = fabs(m.noise[p] / sn - 1.0);
    if (!(r <= en)) en = r;
    CHECK(m.mask[p] == 1.0f, "pixel %zu masked", p);
  }
  /* weighted means of identical float values: exact up to float rounding of the output */
  CHECK(eg <= 4 * FLT_EPSILON * 0.2, "binned shear differs from the map by %.3g", eg);
  CHECK(en <= 2 * FLT_EPSILON, "noise map off by %.3g (relative)", en);
  printf("noise-free round trip (%zu galaxies, RA = 0 inside the patch): max shear error %.2g, noise map %.2g\n",
         cat.n, eg, en);
  jade_binned_shear_free(&m);
  /* pixel frame: no sign flip of e2 -> g2 comes back negated */
  b.flip_e2 = 0;
  CHECK_OK(jade_shear_catalog_bin(&cat, &b, &m));
  CHECK(m.g2[5] == -t.g2[5] || fabs(m.g2[5] + t.g2[5]) < 1e-7, "pixel frame did not keep e2");
  jade_binned_shear_free(&m);
  jade_shear_catalog_free(&cat);
  truth_free(&t);
}

static void test_noisy_and_mask(void) {
  truth_maps t;
  truth_init(&t, 2, 24, 12);
  const double se = 0.26;
  jade_shear_catalog cat;
  make_catalogue(&t, se, 0.35, &cat);
  jade_catalog_binning b;
  jade_catalog_binning_default(&b, t.B, t.n, t.size);
  b.ra0 = t.ra0;
  b.dec0 = t.dec0;
  jade_binned_shear m;
  CHECK_OK(jade_shear_catalog_bin(&cat, &b, &m));
  const size_t np = (size_t)t.n * t.n;
  for (int k = 0; k < t.B; k++) {
    /* exact expectation of the estimator: E[w^2 (e1^2+e2^2)/2] / E[w^2] with the signal */
    double num = 0, den = 0, w4 = 0;
    size_t masked = 0, empty = 0;
    double chi2 = 0;
    size_t n_obs = 0;
    for (size_t q = 0; q < np; q++) {
      size_t p = (size_t)k * np + q;
      if (t.sw[p] == 0) empty++;
      if (m.mask[p] == 0.0f) {
        masked++;
        continue;
      }
      num += t.sw2[p] * (se * se + 0.5 * ((double)t.g1[p] * t.g1[p] + (double)t.g2[p] * t.g2[p]));
      den += t.sw2[p];
      double d1 = (m.g1[p] - t.g1[p]) / m.noise[p], d2 = (m.g2[p] - t.g2[p]) / m.noise[p];
      chi2 += d1 * d1 + d2 * d2;
      n_obs++;
    }
    for (size_t i = 0; i < cat.n; i++)
      if (cat.bin[i] == k) w4 += pow(cat.w[i], 4);
    double expect = sqrt(num / den);
    /* sd of the sigma^2 estimate: sigma^2 sqrt(sum w^4) / sum w^2 (Gaussian components) */
    double sd = expect * 0.5 * sqrt(w4) / den;
    double z = (m.sigma_e[k] - expect) / sd;
    double zc = (chi2 - 2.0 * n_obs) / sqrt(4.0 * n_obs);
    printf("bin %d: sigma_e %.5f (expected %.5f, z = %+.2f); chi2 %.1f for %zu dof (z = %+.2f); masked %zu\n", k,
           m.sigma_e[k], expect, z, chi2, 2 * n_obs, zc, masked);
    CHECK(fabs(z) < 4.0, "bin %d: sigma_e %.5f vs %.5f (z = %.2f)", k, m.sigma_e[k], expect, z);
    CHECK(fabs(zc) < 4.0, "bin %d: chi2 %.1f for %zu dof", k, chi2, 2 * n_obs);
    CHECK(masked == empty && masked > 10, "bin %d: %zu masked pixels, %zu without galaxies", k, masked, empty);
    CHECK(fabs(m.masked_fraction[k] - (double)masked / np) < 1e-12, "masked fraction");
  }
  jade_binned_shear_free(&m);
  /* a patch centred elsewhere sees no galaxy */
  b.ra0 = 120.0;
  b.dec0 = 10.0;
  CHECK(jade_shear_catalog_bin(&cat, &b, &m) != JADE_OK, "empty grid accepted");
  jade_shear_catalog_free(&cat);
  truth_free(&t);
}

static void write_text(const char *path, const char *s) { test_write_bytes(path, s, strlen(s)); }

static void write_fits_table(const char *path, const jade_shear_catalog *cat, int bin_base) {
  fitsfile *f;
  int status = 0;
  char fname[4200];
  snprintf(fname, sizeof fname, "!%s", path);
  char *ttype[] = {"RA", "DEC", "E1", "E2", "WEIGHT", "TOMO_BIN"};
  char *tform[] = {"1D", "1D", "1E", "1E", "1E", "1J"};
  fits_create_file(&f, fname, &status);
  fits_create_tbl(f, BINARY_TBL, 0, 6, ttype, tform, NULL, "CATALOG", &status);
  int *bins = jade_alloc(sizeof(int) * cat->n);
  for (size_t i = 0; i < cat->n; i++) bins[i] = cat->bin[i] + bin_base;
  fits_write_col(f, TDOUBLE, 1, 1, 1, (LONGLONG)cat->n, cat->ra, &status);
  fits_write_col(f, TDOUBLE, 2, 1, 1, (LONGLONG)cat->n, cat->dec, &status);
  fits_write_col(f, TDOUBLE, 3, 1, 1, (LONGLONG)cat->n, cat->e1, &status);
  fits_write_col(f, TDOUBLE, 4, 1, 1, (LONGLONG)cat->n, cat->e2, &status);
  fits_write_col(f, TDOUBLE, 5, 1, 1, (LONGLONG)cat->n, cat->w, &status);
  fits_write_col(f, TINT, 6, 1, 1, (LONGLONG)cat->n, bins, &status);
  fits_close_file(f, &status);
  free(bins);
  CHECK(status == 0, "writing the FITS table failed (%d)", status);
}

static void test_readers(void) {
  char p[4096];
  jade_shear_catalog cat, a;
  /* CSV with a comment, 1-based bins, no weight column */
  snprintf(p, sizeof p, "%s/cat.csv", test_dir);
  write_text(p, "# a test catalogue\nra,dec,e1,e2,bin\n10.5,-2.25,0.1,-0.2,1\n10.25, -2.5, 0.0,0.05,2\n");
  CHECK_OK(jade_shear_catalog_read(p, 1, 2, &cat));
  CHECK(cat.n == 2 && cat.ra[1] == 10.25 && cat.dec[1] == -2.5 && cat.e2[0] == -0.2 && cat.bin[0] == 0 &&
            cat.bin[1] == 1 && cat.w[0] == 1.0,
        "CSV read wrongly");
  /* the same rows through a FITS binary table (float32 e columns, an int bin column named TOMO_BIN is
   * not 'bin': rename by writing our own) */
  jade_shear_catalog_free(&cat);
  truth_maps t;
  truth_init(&t, 2, 8, 2);
  make_catalogue(&t, 0.2, 0.0, &cat);
  snprintf(p, sizeof p, "%s/cat.fits", test_dir);
  write_fits_table(p, &cat, 1);
  CHECK(jade_shear_catalog_read(p, 1, 2, &a) != JADE_OK && strstr(jade_last_error(), "'bin'"),
        "a table without a 'bin' column was accepted: %s", jade_last_error());
  /* headers CFITSIO must never see (it overflows a 70-byte column-name field on an unquoted
   * 70-character TTYPEn, found by fuzz_catalog): an unquoted TTYPE1, a non-ASCII byte */
  {
    FILE *in = fopen(p, "rb");
    CHECK(in != NULL, "cannot reopen %s", p);
    static char buf[5760];
    size_t len = fread(buf, 1, sizeof buf, in);
    fclose(in);
    char *card = NULL;
    for (size_t c = 0; c + 80 <= len; c += 80)
      if (!memcmp(buf + c, "TTYPE1  = ", 10)) card = buf + c;
    CHECK(card != NULL, "no TTYPE1 card in %s", p);
    const struct {
      const char *name, *expect;
      int col, byte, span;
    } edit[] = {{"cat_ttype.fits", "not a quoted string", 10, 'A', 70}, {"cat_byte.fits", "printable ASCII", 40, 0xFF, 1}};
    for (int e = 0; e < 2; e++) {
      char q[600], saved[80];
      memcpy(saved, card, 80);
      memset(card + edit[e].col, edit[e].byte, (size_t)edit[e].span);
      snprintf(q, sizeof q, "%s/%s", test_dir, edit[e].name);
      FILE *out = fopen(q, "wb");
      CHECK(out && fwrite(buf, 1, len, out) == len, "cannot write %s", q);
      fclose(out);
      memcpy(card, saved, 80);
      jade_status st = jade_shear_catalog_read(q, 1, 2, &a);
      CHECK(st != JADE_OK && strstr(jade_last_error(), q) && strstr(jade_last_error(), edit[e].expect),
            "%s: '%s'", edit[e].name, st ? jade_last_error() : "accepted");
      jade_clear_error();
    }
  }
  /* whitespace text with all columns, then FITS with the right names */
  snprintf(p, sizeof p, "%s/cat.txt", test_dir);
  FILE *f = fopen(p, "w");
  fprintf(f, "ra dec e1 e2 weight bin\n");
  for (size_t i = 0; i < cat.n; i++)
    fprintf(f, "%.17g %.17g %.17g %.17g %.17g %d\n", cat.ra[i], cat.dec[i], cat.e1[i], cat.e2[i], cat.w[i], cat.bin[i]);
  fclose(f);
  CHECK_OK(jade_shear_catalog_read(p, 0, 2, &a));
  int same = a.n == cat.n;
  for (size_t i = 0; same && i < cat.n; i++)
    same = a.ra[i] == cat.ra[i] && a.dec[i] == cat.dec[i] && a.e1[i] == cat.e1[i] && a.w[i] == cat.w[i] &&
           a.bin[i] == cat.bin[i];
  CHECK(same, "text catalogue does not round-trip");
  jade_shear_catalog_free(&a);
  /* bad catalogues: each error names the file */
  struct {
    const char *text, *expect;
  } bad[] = {
      {"ra,dec,e1,bin\n1,2,0.1,0\n", "'e2'"},
      {"ra,dec,e1,e2,bin\n1,2,nan,0.1,0\n", "not a finite number"},
      {"ra,dec,e1,e2,bin\n1,2,0.1,0.1,5\n", "bin = 5"},
      {"ra,dec,e1,e2,bin\n1,2,12,0.9,0\n", "not an ellipticity"},
      {"ra,dec,e1,e2,bin\n1,95,0.1,0.1,0\n", "dec = 95"},
      {"ra,dec,e1,e2,weight,bin\n1,2,0.1,0.1,-1,0\n", "weight"},
      {"ra,dec,e1,e2,bin\n1,2,0.1,0.1\n", "fields"},
      {"ra,dec,e1,e2,bin\n", "no rows"},
      {"", "empty"},
      {"ra,dec,e1,e2,bin\n1,2,0.1x,0.1,0\n", "0.1x"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    snprintf(p, sizeof p, "%s/bad%zu.csv", test_dir, i);
    write_text(p, bad[i].text);
    jade_status st = jade_shear_catalog_read(p, 0, 2, &a);
    CHECK(st != JADE_OK && strstr(jade_last_error(), p) && strstr(jade_last_error(), bad[i].expect),
          "bad catalogue %zu: '%s'", i, st ? jade_last_error() : "accepted");
  }
  jade_shear_catalog_free(&cat);
  truth_free(&t);
  printf("readers: CSV / text / FITS tables, %zu bad catalogues refused naming the file\n", sizeof bad / sizeof *bad);
}

/* jade_binned_shear_write -> jade_observation_read: MASK, NOISEMAP, noise from keys. Then a
 * user's own kappa cube in the primary HDU with only CDELT keys and a NOISEMAP. */
static void test_observation_files(void) {
  truth_maps t;
  truth_init(&t, 2, 16, 4);
  jade_shear_catalog cat;
  make_catalogue(&t, 0.26, 0.3, &cat);
  jade_catalog_binning b;
  jade_catalog_binning_default(&b, t.B, t.n, t.size);
  jade_binned_shear m;
  CHECK_OK(jade_shear_catalog_bin(&cat, &b, &m));
  char p[4096];
  snprintf(p, sizeof p, "%s/obs.fits", test_dir);
  m.source = "/data/survey/a_catalogue_path_longer_than_the_68_characters_of_a_fits_string.csv";
  CHECK_OK(jade_binned_shear_write(&m, p, 0));
  CHECK(jade_binned_shear_write(&m, p, 0) != JADE_OK, "existing output overwritten");
  char src[72];
  CHECK_OK(jade_fits_read_key_string(p, "GAMMA1", "CATFILE", src, sizeof src));
  CHECK(strlen(src) == 68 && !strncmp(src, m.source, 68), "CATFILE = '%s'", src);
  jade_observation obs;
  CHECK_OK(jade_observation_read(p, &obs));
  const size_t tot = (size_t)t.B * t.n * t.n;
  CHECK(obs.n_bins == t.B && obs.n_pix == t.n && fabs(obs.size_deg - t.size) < 1e-12 && obs.from_shear, "geometry");
  CHECK(obs.mask && obs.noise_map && memcmp(obs.mask, m.mask, sizeof(float) * tot) == 0 &&
            memcmp(obs.noise_map, m.noise, sizeof(float) * tot) == 0,
        "MASK / NOISEMAP do not round-trip");
  CHECK(obs.noise[0] == m.noise_median[0] && obs.masked_fraction > 0, "noise keys");
  jade_observation_free(&obs);
  /* a user's convergence cube in the primary HDU: CDELT in arcmin, NOISEMAP, no jade keys */
  snprintf(p, sizeof p, "%s/user.fits", test_dir);
  fitsfile *f;
  int status = 0;
  char fname[4200];
  snprintf(fname, sizeof fname, "!%s", p);
  long naxes[3] = {t.n, t.n, t.B};
  fits_create_file(&f, fname, &status);
  fits_create_img(f, FLOAT_IMG, 3, naxes, &status);
  double cd = -t.size / t.n * 60.0, cd2 = -cd;
  fits_write_key(f, TSTRING, "CTYPE1", "RA---TAN", NULL, &status);
  fits_write_key(f, TSTRING, "CUNIT1", "arcmin", NULL, &status);
  fits_write_key(f, TDOUBLE, "CDELT1", &cd, NULL, &status);
  fits_write_key(f, TDOUBLE, "CDELT2", &cd2, NULL, &status);
  fits_write_img(f, TFLOAT, 1, (LONGLONG)tot, t.g1, &status);
  fits_create_img(f, FLOAT_IMG, 3, naxes, &status);
  fits_write_key(f, TSTRING, "EXTNAME", "NOISEMAP", NULL, &status);
  float *nm = jade_alloc(sizeof(float) * tot);
  for (size_t i = 0; i < tot; i++) nm[i] = (float)(0.01 + 0.001 * (i % 7));
  fits_write_img(f, TFLOAT, 1, (LONGLONG)tot, nm, &status);
  fits_close_file(f, &status);
  CHECK(status == 0, "writing the user file failed (%d)", status);
  CHECK_OK(jade_observation_read(p, &obs));
  CHECK(!obs.from_shear && fabs(obs.size_deg - t.size) < 1e-12 && obs.noise[1] == 0.013f &&
            memcmp(obs.kappa, t.g1, sizeof(float) * tot) == 0 && obs.masked_fraction == 0,
        "primary-HDU kappa cube: size %g, noise %g", obs.size_deg, obs.noise[1]);
  jade_observation_free(&obs);
  free(nm);
  jade_binned_shear_free(&m);
  jade_shear_catalog_free(&cat);
  truth_free(&t);
  printf("observation files: MASK/NOISEMAP round trip; primary-HDU kappa cube with CDELT (arcmin) and NOISEMAP\n");
}

/* A masked mock (jade observe --mask-max): one mask and one noise pattern in every bin, noise
 * ratios within the drawn range and varying over the field, masked convergence 0, and the
 * observed pixels' noise consistent with the noise map (chi^2 per pixel ~ 1). */
static void test_masked_mock(void) {
  jade_config *cfg;
  CHECK_OK(jade_config_create(&cfg));
  CHECK_OK(jade_config_load_preset(cfg, "small"));
  jade_sim_config sc;
  CHECK_OK(jade_sim_config_read(cfg, &sc));
  jade_config_free(cfg);
  jade_mask_config mc = {.mask_prob = 1, .mask_max = 0.3, .noise_ln_scale = 0.2, .noise_ln_field = 0.2};
  char p[4200], tp[4300];
  snprintf(p, sizeof p, "%s/masked.fits", test_dir);
  uint64_t seed = 11;
  jade_observation obs;
  double theta[JADE_N_THETA];
  float *truth = NULL;
  int nb, n;
  for (;; seed++) { /* a seed whose drawn masked fraction is not tiny */
    CHECK_OK(jade_observation_make_masked(&sc, seed, &mc, p));
    CHECK_OK(jade_observation_read(p, &obs));
    if (obs.masked_fraction > 0.03) break;
    jade_observation_free(&obs);
  }
  jade_observation_truth_path(p, tp, sizeof tp);
  CHECK_OK(jade_observation_read_truth(tp, theta, &truth, &nb, &n));
  const size_t npix = (size_t)n * n;
  CHECK(obs.mask && obs.noise_map && !obs.from_shear && nb == obs.n_bins, "masked mock: MASK / NOISEMAP / KAPPA expected");
  double lo = INFINITY, hi = -INFINITY, chi2 = 0, n_obs = 0, dev = 0;
  for (int b = 0; b < nb; b++)
    for (size_t i = 0; i < npix; i++) {
      const size_t k = b * npix + i;
      CHECK(obs.mask[k] == obs.mask[i], "bin %d pixel %zu: the mask differs from bin 0's", b, i);
      const double lr = log(obs.noise_map[k] / obs.noise[b]), lr0 = log(obs.noise_map[i] / obs.noise[0]);
      jade_test_max_err(&dev, fabs(lr - lr0));
      lo = fmin(lo, lr);
      hi = fmax(hi, lr);
      if (obs.mask[k] == 0) {
        CHECK(obs.kappa[k] == 0, "masked pixel %zu holds %g", k, obs.kappa[k]);
        continue;
      }
      const double r = (obs.kappa[k] - truth[k]) / obs.noise_map[k];
      chi2 += r * r;
      n_obs++;
    }
  /* float rounding of sigma: ln ratios agree across bins to ~1e-7 */
  CHECK_LE(dev, 1e-6, "the noise pattern differs between bins by %g in ln sigma", dev);
  CHECK(lo >= -0.4 - 1e-6 && hi <= 0.4 + 1e-6 && hi - lo > 0.02, "ln noise ratios in [%g, %g]: expected a varying field within +-0.4",
        lo, hi);
  /* chi^2 / n of n_obs ~ 25,000 unit normals: 1 +- sqrt(2 / n) = 0.009; 5 sigma */
  CHECK_LE(fabs(chi2 / n_obs - 1), 5 * sqrt(2 / n_obs), "chi^2 per observed pixel %g (noise map inconsistent with the noise)",
           chi2 / n_obs);
  jade_observation_free(&obs);
  free(truth);
}

/* A user's map file: a 16 x 16 x 2 convergence cube in the primary HDU (ext NULL) or in an
 * extension named ext after an empty primary, with the header cards in keys ("NAME=value":
 * numbers as doubles, values in quotes as strings) and NOISE0/NOISE1 = 0.01. */
static void write_user_map(const char *p, const char *ext, const char *const *keys, int nkeys) {
  fitsfile *f;
  int status = 0;
  char fname[4200];
  snprintf(fname, sizeof fname, "!%s", p);
  long naxes[3] = {16, 16, 2};
  float data[512];
  for (int i = 0; i < 512; i++) data[i] = (float)(0.001 * (i % 13) - 0.006);
  fits_create_file(&f, fname, &status);
  if (ext) {
    fits_create_img(f, FLOAT_IMG, 0, naxes, &status);
    fits_create_img(f, FLOAT_IMG, 3, naxes, &status);
    fits_write_key(f, TSTRING, "EXTNAME", (void *)ext, NULL, &status);
  } else {
    fits_create_img(f, FLOAT_IMG, 3, naxes, &status);
  }
  double noise = 0.01;
  fits_write_key(f, TDOUBLE, "NOISE0", &noise, NULL, &status);
  fits_write_key(f, TDOUBLE, "NOISE1", &noise, NULL, &status);
  for (int k = 0; k < nkeys; k++) {
    char name[16], val[72];
    if (!strcmp(keys[k], "NaN pixel")) { /* not a key: a NaN in the data */
      data[37] = NAN;
      continue;
    }
    const char *eq = strchr(keys[k], '=');
    snprintf(name, sizeof name, "%.*s", (int)(eq - keys[k]), keys[k]);
    if (eq[1] == '\'') {
      snprintf(val, sizeof val, "%.*s", (int)strlen(eq + 2) - 1, eq + 2);
      fits_write_key(f, TSTRING, name, val, NULL, &status);
    } else {
      double d = atof(eq + 1);
      fits_write_key(f, TDOUBLE, name, &d, NULL, &status);
    }
  }
  fits_write_img(f, TFLOAT, 1, 512, data, &status);
  fits_close_file(f, &status);
  CHECK(status == 0, "writing %s failed (%d)", p, status);
}

/* Maps with standard WCS keys (Greisen & Calabretta 2002: CDi_j = CDELTi PCi_j, CUNITi): the
 * patch side is 16 pixels x the length of a pixel's world step, computed here by hand for a
 * rotated CD matrix, a PC matrix and mixed units; bad headers are refused saying what the
 * file needs. */
static void test_wcs_maps(void) {
  char p[4096];
  snprintf(p, sizeof p, "%s/wcs.fits", test_dir);
  jade_observation obs;
  /* rotated by 30 deg, 0.3 deg pixels: CD = 0.3 [[-cos, sin], [sin, cos]] */
  const double c30 = 0.3 * cos(30 * DEG), s30 = 0.3 * sin(30 * DEG);
  char k1[40], k2[40], k3[40], k4[40];
  snprintf(k1, sizeof k1, "CD1_1=%.17g", -c30);
  snprintf(k2, sizeof k2, "CD1_2=%.17g", s30);
  snprintf(k3, sizeof k3, "CD2_1=%.17g", s30);
  snprintf(k4, sizeof k4, "CD2_2=%.17g", c30);
  const char *rot[] = {k1, k2, k3, k4, "CTYPE1='RA---TAN'", "CTYPE2='DEC--TAN'", "BUNIT=''"};
  write_user_map(p, NULL, rot, 7);
  CHECK_OK(jade_observation_read(p, &obs));
  CHECK(fabs(obs.size_deg - 16 * 0.3) < 1e-12, "rotated CD: size %.15g, expected 4.8", obs.size_deg);
  jade_observation_free(&obs);
  /* CDELT x PC (a 90 deg rotation), CUNIT1 arcmin and CUNIT2 arcsec: 0.25 deg pixels */
  const char *pcm[] = {"CDELT1=-15", "CDELT2=900", "CUNIT1='arcmin'", "CUNIT2='arcsec'", "PC1_1=0", "PC1_2=1",
                       "PC2_1=1", "PC2_2=0", "CTYPE1='GLON-CAR'", "CTYPE2='GLAT-CAR'", "BUNIT='dimensionless'"};
  write_user_map(p, "KAPPA", pcm, 11);
  CHECK_OK(jade_observation_read(p, &obs));
  CHECK(fabs(obs.size_deg - 4.0) < 1e-12, "CDELT x PC, arcmin/arcsec: size %.15g, expected 4", obs.size_deg);
  jade_observation_free(&obs);
  /* refusals: each names the key and what jade needs */
  struct {
    const char *what, *ext, *keys[4], *expect;
    int nk;
  } bad[] = {
      {"no scale", NULL, {"CTYPE1='RA---TAN'"}, "add the WCS keys CDELT1 and CDELT2", 1},
      {"rectangular pixels", NULL, {"CDELT1=-0.3", "CDELT2=0.25"}, "square pixels", 2},
      {"units differ", NULL, {"CDELT1=-0.3", "CDELT2=0.3", "CUNIT1='deg'", "CUNIT2='arcmin'"}, "square pixels", 4},
      {"skewed", NULL, {"CD1_1=-0.3", "CD1_2=0.05209445330007912", "CD2_2=0.2954423259036624"}, "not perpendicular", 3},
      {"spectral axis", NULL, {"CDELT1=-0.3", "CDELT2=0.3", "CTYPE1='FREQ'"}, "CTYPE1 = 'FREQ' is not a sky axis", 3},
      {"unit", NULL, {"CDELT1=-0.3", "CDELT2=0.3", "BUNIT='K'"}, "BUNIT = 'K'", 3},
      {"CUNIT", NULL, {"CDELT1=-0.3", "CDELT2=0.3", "CUNIT1='pixel'"}, "CUNIT1 = 'pixel'", 3},
      {"other extension", "CONVERGENCE", {"CDELT1=-0.3", "CDELT2=0.3"}, "image HDUs: CONVERGENCE (16x16x2)", 2},
      {"NaN in the primary cube", NULL, {"CDELT1=-0.3", "CDELT2=0.3", "NaN pixel"}, "primary HDU: pixel (x=5, y=2, z=0; 0-based) is NaN", 3},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    write_user_map(p, bad[i].ext, bad[i].keys, bad[i].nk);
    jade_status st = jade_observation_read(p, &obs);
    CHECK(st != JADE_OK && strstr(jade_last_error(), bad[i].expect) && strstr(jade_last_error(), p),
          "%s: %s", bad[i].what, st ? jade_last_error() : "accepted");
    if (!st) jade_observation_free(&obs);
  }
  printf("WCS maps: rotated CD, CDELT x PC in arcmin/arcsec; %zu bad headers refused\n", sizeof bad / sizeof *bad);
}

int main(void) {
  test_dir_create("catalog");
  test_gnomonic();
  test_noise_free_round_trip();
  test_noisy_and_mask();
  test_readers();
  test_observation_files();
  test_wcs_maps();
  test_masked_mock();
  TEST_RETURN();
}
