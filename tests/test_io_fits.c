/* FITS: round trip of a 3-D cube and a 2-D map with keys, key reading, missing HDU/key,
 * corrupt / truncated / non-FITS files (one-line errors, nothing printed by CFITSIO), checksum
 * detection of a flipped byte, NaN/Inf rejection naming file and HDU, abort and failures leave
 * no file, names with CFITSIO's special characters. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jade/io.h"
#include "test_files.h"
#include "test_util.h"

static int saved_stderr = -1;
static char err_path[512];
static void capture_stderr(void) {
  fflush(stderr);
  snprintf(err_path, sizeof err_path, "%s/stderr.txt", test_dir);
  int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  saved_stderr = dup(2);
  dup2(fd, 2);
  close(fd);
}
static size_t release_stderr(void) {
  fflush(stderr);
  dup2(saved_stderr, 2);
  close(saved_stderr);
  struct stat st;
  size_t n = stat(err_path, &st) == 0 ? (size_t)st.st_size : 0;
  unlink(err_path);
  return n;
}

static void expect_err(jade_status got, jade_status want, const char *path, const char *n1,
                       const char *n2) {
  CHECK(got == want, "status %d, expected %d (%s)", (int)got, (int)want, jade_last_error());
  CHECK(strstr(jade_last_error(), path) != NULL, "message names '%s': %s", path,
        jade_last_error());
  CHECK(!n1 || strstr(jade_last_error(), n1), "message has '%s': %s", n1, jade_last_error());
  CHECK(!n2 || strstr(jade_last_error(), n2), "message has '%s': %s", n2, jade_last_error());
  CHECK(strchr(jade_last_error(), '\n') == NULL, "one line: %s", jade_last_error());
}

static jade_fits_key dkey(const char *name, double v, const char *comment) {
  jade_fits_key k;
  memset(&k, 0, sizeof k);
  snprintf(k.name, sizeof k.name, "%s", name);
  k.type = JADE_KEY_DOUBLE;
  k.d = v;
  snprintf(k.comment, sizeof k.comment, "%s", comment);
  return k;
}

int main(void) {
  test_dir_create("test_io_fits");
  char p[1024], q[1024];
  const long nx = 16, ny = 12, nz = 3;
  size_t n = (size_t)(nx * ny * nz);
  float *cube = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) cube[i] = (float)sin(0.37 * (double)i) * 1e-3f + (float)i;
  float map2[6 * 4];
  for (int i = 0; i < 24; i++) map2[i] = -(float)i / 7.0f;

  /* ---- round trip ---- */
  snprintf(p, sizeof p, "%s/obs.fits", test_dir);
  jade_fits_key keys[4];
  keys[0] = dkey("OMEGA_M", 0.3089, "matter density");
  keys[1] = dkey("sigma8", 0.1 + 0.2, "lower case name, non-short double");
  memset(&keys[2], 0, sizeof keys[2]);
  snprintf(keys[2].name, sizeof keys[2].name, "NSIDE");
  keys[2].type = JADE_KEY_LONG;
  keys[2].l = 1234567890123L;
  memset(&keys[3], 0, sizeof keys[3]);
  snprintf(keys[3].name, sizeof keys[3].name, "UNIT");
  keys[3].type = JADE_KEY_STRING;
  snprintf(keys[3].s, sizeof keys[3].s, "it's dimensionless");
  jade_fits_writer *w;
  CHECK_OK(jade_fits_writer_open(p, &w));
  long d3[3] = {nx, ny, nz}, d2[2] = {6, 4};
  CHECK_OK(jade_fits_writer_add_image(w, "GAMMA", 3, d3, cube, keys, 4));
  CHECK(access(p, F_OK) != 0, "nothing at the final name before close");
  CHECK_OK(jade_fits_writer_add_image(w, "KAPPA", 2, d2, map2, NULL, 0));
  expect_err(jade_fits_writer_add_image(w, "kappa", 2, d2, map2, NULL, 0), JADE_ERR_INVALID, p,
             "twice", NULL);
  jade_fits_key bad = dkey("NAXIS1", 1, "");
  expect_err(jade_fits_writer_add_image(w, "X", 2, d2, map2, &bad, 1), JADE_ERR_INVALID, p,
             "reserved", NULL);
  bad = dkey("TOOLONGNAME", 1, "");
  expect_err(jade_fits_writer_add_image(w, "X", 2, d2, map2, &bad, 1), JADE_ERR_INVALID, p,
             "invalid FITS keyword", NULL);
  bad = dkey("BADVAL", NAN, "");
  expect_err(jade_fits_writer_add_image(w, "X", 2, d2, map2, &bad, 1), JADE_ERR_NUMERIC, p,
             "BADVAL", NULL);
  long d0[2] = {6, 0};
  expect_err(jade_fits_writer_add_image(w, "X", 2, d0, map2, NULL, 0), JADE_ERR_INVALID, p,
             "NAXIS2", NULL);
  CHECK_OK(jade_fits_writer_close(w)); /* rejected calls did not spoil the writer */
  CHECK(test_count_tmp(test_dir) == 0, "no temporary after close");

  int naxis;
  long dims[3];
  float *data;
  CHECK_OK(jade_fits_read_image(p, "GAMMA", &naxis, dims, &data));
  CHECK(naxis == 3 && dims[0] == nx && dims[1] == ny && dims[2] == nz, "cube dims %d %ld %ld %ld",
        naxis, dims[0], dims[1], dims[2]);
  CHECK(!memcmp(data, cube, n * sizeof(float)), "cube bitwise equal");
  free(data);
  CHECK_OK(jade_fits_read_image(p, "kappa", &naxis, dims, &data)); /* case-insensitive */
  CHECK(naxis == 2 && dims[0] == 6 && dims[1] == 4 && dims[2] == 1, "map dims");
  CHECK(!memcmp(data, map2, sizeof map2), "map bitwise equal");
  free(data);
  double v;
  CHECK_OK(jade_fits_read_key_double(p, "GAMMA", "OMEGA_M", &v));
  CHECK(v == 0.3089, "OMEGA_M %.17g", v);
  CHECK_OK(jade_fits_read_key_double(p, "GAMMA", "SIGMA8", &v));
  CHECK(v == 0.1 + 0.2, "SIGMA8 exact %.17g", v);
  CHECK_OK(jade_fits_read_key_double(p, "GAMMA", "NSIDE", &v));
  CHECK(v == 1234567890123.0, "NSIDE %.17g", v);
  CHECK_OK(jade_fits_read_key_double(p, "GAMMA", "NAXIS3", &v));
  CHECK(v == 3, "NAXIS3");
  char s[72];
  CHECK_OK(jade_fits_read_key_string(p, "GAMMA", "UNIT", s, sizeof s));
  CHECK(!strcmp(s, "it's dimensionless"), "UNIT '%s'", s);
  CHECK_OK(jade_fits_read_key_string(p, "KAPPA", "EXTNAME", s, sizeof s));
  CHECK(!strcmp(s, "KAPPA"), "EXTNAME '%s'", s);
  char tiny[4];
  expect_err(jade_fits_read_key_string(p, "GAMMA", "UNIT", tiny, sizeof tiny), JADE_ERR_INVALID,
             p, "too long", NULL);
  CHECK(jade_fits_has_hdu(p, "GAMMA") == 1 && jade_fits_has_hdu(p, "KAPPA") == 1,
        "has_hdu finds both");
  CHECK(jade_fits_has_hdu(p, "GAMMA1") == 0, "has_hdu missing");
  snprintf(q, sizeof q, "%s/none.fits", test_dir);
  CHECK(jade_fits_has_hdu(q, "GAMMA") == 0, "has_hdu on missing file");

  /* file layout: empty primary HDU, image extensions */
  {
    size_t fn;
    unsigned char *b = test_slurp(p, &fn);
    CHECK(fn % 2880 == 0, "FITS size multiple of 2880 (%zu)", fn);
    CHECK(!memcmp(b, "SIMPLE  =                    T", 30), "primary header");
    CHECK(!memcmp(b + 80 * 2, "NAXIS   =                    0", 30), "empty primary");
    CHECK(!memcmp(b + 2880, "XTENSION= 'IMAGE   '", 20), "first HDU is an IMAGE extension");
    free(b);
  }

  /* ---- errors (and CFITSIO prints nothing) ---- */
  capture_stderr();
  jade_status st = jade_fits_read_image(p, "GAMMA1", &naxis, dims, &data);
  size_t printed = release_stderr();
  expect_err(st, JADE_ERR_FORMAT, p, "HDU 'GAMMA1' not found", NULL);
  CHECK(data == NULL, "no data on error");
  CHECK(printed == 0, "nothing printed for a missing HDU (%zu bytes)", printed);

  expect_err(jade_fits_read_image(p, NULL, &naxis, dims, &data), JADE_ERR_FORMAT, p,
             "primary HDU has no image data", NULL);
  expect_err(jade_fits_read_key_double(p, "GAMMA", "H0", &v), JADE_ERR_FORMAT, p,
             "HDU 'GAMMA'", "key 'H0' not found");
  expect_err(jade_fits_read_key_double(p, "GAMMA", "UNIT", &v), JADE_ERR_FORMAT, p, "UNIT",
             "CFITSIO status");
  expect_err(jade_fits_read_key_string(p, "NOPE", "UNIT", s, sizeof s), JADE_ERR_FORMAT, p,
             "HDU 'NOPE' not found", NULL);
  expect_err(jade_fits_read_image(q, "GAMMA", &naxis, dims, &data), JADE_ERR_IO, q,
             strerror(ENOENT), NULL);

  /* not a FITS file */
  snprintf(q, sizeof q, "%s/text.fits", test_dir);
  char junk[4000];
  memset(junk, 'x', sizeof junk);
  memcpy(junk, "hello, this is not FITS\n", 24);
  test_write_bytes(q, junk, sizeof junk);
  capture_stderr();
  st = jade_fits_read_image(q, "GAMMA", &naxis, dims, &data);
  printed = release_stderr();
  expect_err(st, JADE_ERR_FORMAT, q, "not a readable FITS file", "CFITSIO status");
  CHECK(printed == 0, "nothing printed for a non-FITS file (%zu bytes)", printed);
  CHECK(jade_fits_has_hdu(q, "GAMMA") == 0, "has_hdu on non-FITS file");
  test_write_bytes(q, "", 0);
  expect_err(jade_fits_read_image(q, "GAMMA", &naxis, dims, &data), JADE_ERR_FORMAT, q,
             "CFITSIO status", NULL);

  /* truncated FITS file: the data of the last HDU missing */
  size_t fn;
  unsigned char *whole = test_slurp(p, &fn);
  snprintf(q, sizeof q, "%s/trunc.fits", test_dir);
  test_write_bytes(q, whole, fn - 2880);
  capture_stderr();
  st = jade_fits_read_image(q, "KAPPA", &naxis, dims, &data);
  printed = release_stderr();
  expect_err(st, JADE_ERR_FORMAT, q, "HDU 'KAPPA'", "CFITSIO status");
  CHECK(printed == 0, "nothing printed for a truncated file");
  /* corrupt header (first card) */
  memcpy(whole, "SIMPLX", 6);
  snprintf(q, sizeof q, "%s/badhdr.fits", test_dir);
  test_write_bytes(q, whole, fn);
  expect_err(jade_fits_read_image(q, "GAMMA", &naxis, dims, &data), JADE_ERR_FORMAT, q,
             "CFITSIO status", NULL);
  memcpy(whole, "SIMPLE", 6);
  /* one flipped byte in the cube's data: checksum mismatch */
  whole[2 * 2880 + 100] ^= 0x10;
  snprintf(q, sizeof q, "%s/flip.fits", test_dir);
  test_write_bytes(q, whole, fn);
  expect_err(jade_fits_read_image(q, "GAMMA", &naxis, dims, &data), JADE_ERR_FORMAT, q,
             "HDU 'GAMMA'", "checksum mismatch");
  CHECK_OK(jade_fits_read_image(q, "KAPPA", &naxis, dims, &data)); /* other HDU intact */
  free(data);
  free(whole);

  /* ---- NaN / Inf ---- */
  snprintf(q, sizeof q, "%s/nan.fits", test_dir);
  CHECK_OK(jade_fits_writer_open(q, &w));
  float m[24];
  memcpy(m, map2, sizeof m);
  m[2 * 6 + 3] = NAN;
  CHECK_OK(jade_fits_writer_add_image(w, "GAMMA1", 2, d2, m, NULL, 0));
  m[2 * 6 + 3] = 1;
  m[5] = -INFINITY;
  CHECK_OK(jade_fits_writer_add_image(w, "GAMMA2", 2, d2, m, NULL, 0));
  CHECK_OK(jade_fits_writer_close(w));
  expect_err(jade_fits_read_image(q, "GAMMA1", &naxis, dims, &data), JADE_ERR_NUMERIC, q,
             "HDU 'GAMMA1'", "pixel (x=3, y=2, z=0; 0-based) is NaN");
  CHECK(data == NULL, "no data after NaN");
  expect_err(jade_fits_read_image(q, "GAMMA2", &naxis, dims, &data), JADE_ERR_NUMERIC, q,
             "HDU 'GAMMA2'", "is Inf");

  /* ---- abort, failures, special characters ---- */
  snprintf(q, sizeof q, "%s/aborted.fits", test_dir);
  CHECK_OK(jade_fits_writer_open(q, &w));
  CHECK_OK(jade_fits_writer_add_image(w, "GAMMA", 3, d3, cube, NULL, 0));
  jade_fits_writer_abort(w);
  CHECK(access(q, F_OK) != 0, "aborted file absent");
  jade_fits_writer_abort(NULL);
  CHECK_OK(jade_fits_writer_close(NULL));

  snprintf(q, sizeof q, "%s/nodir/x.fits", test_dir);
  w = (jade_fits_writer *)&st;
  capture_stderr();
  st = jade_fits_writer_open(q, &w);
  printed = release_stderr();
  expect_err(st, JADE_ERR_IO, q, strerror(ENOENT), NULL);
  CHECK(w == NULL, "writer NULL on failure");
  CHECK(printed == 0, "nothing printed");
  snprintf(q, sizeof q, "%s/nodir", test_dir);
  CHECK(access(q, F_OK) != 0, "no directory created");

  /* a name CFITSIO would otherwise parse as extended syntax */
  snprintf(q, sizeof q, "%s/!odd[1].fits", test_dir);
  CHECK_OK(jade_fits_writer_open(q, &w));
  CHECK_OK(jade_fits_writer_add_image(w, "KAPPA", 2, d2, map2, NULL, 0));
  CHECK_OK(jade_fits_writer_close(w));
  CHECK(access(q, F_OK) == 0, "file with special characters written under its own name");
  CHECK_OK(jade_fits_read_image(q, "KAPPA", &naxis, dims, &data));
  CHECK(!memcmp(data, map2, sizeof map2), "special-name round trip");
  free(data);

  /* overwrite an existing file atomically */
  CHECK_OK(jade_fits_writer_open(p, &w));
  CHECK_OK(jade_fits_writer_add_image(w, "OTHER", 2, d2, map2, NULL, 0));
  CHECK(jade_fits_has_hdu(p, "GAMMA") == 1, "old file intact until close");
  CHECK_OK(jade_fits_writer_close(w));
  CHECK(jade_fits_has_hdu(p, "GAMMA") == 0 && jade_fits_has_hdu(p, "OTHER") == 1, "replaced");
  CHECK(test_count_tmp(test_dir) == 0, "no temporaries left");

  free(cube);
  TEST_RETURN();
}
