/* FITS images through CFITSIO.
 *
 * Layout written by jade_fits_writer: an empty primary HDU (NAXIS = 0, EXTEND = T, CREATOR =
 * 'jade <version>', no user keys), then one IMAGE extension per jade_fits_writer_add_image
 * call, BITPIX = -32, with EXTNAME, CREATOR, the user keys, and CHECKSUM/DATASUM. The file is built under "<path>.tmp.<pid>"
 * and renamed into place on close (abort deletes it).
 *
 * Readers verify CHECKSUM/DATASUM when present, convert any image BITPIX to float32 and reject
 * NaN/Inf. Files are opened with fits_open_diskfile / fits_create_diskfile so that names are
 * never parsed with CFITSIO's extended filename syntax ("[...]", "!", "mem://"). CFITSIO's
 * error stack is turned into one-line jade messages and cleared; nothing is printed. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fitsio.h>

#include "jade/io.h"

/* Message "<prefix>: <CFITSIO status text> (CFITSIO status N[: first stack message])"; the
 * CFITSIO message stack is cleared. */
static jade_status fits_fail(jade_status code, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static jade_status fits_fail(jade_status code, int status, const char *fmt, ...) {
  char prefix[600], text[FLEN_STATUS] = "", detail[FLEN_ERRMSG] = "";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  fits_get_errstatus(status, text);
  fits_read_errmsg(detail);
  fits_clear_errmsg();
  for (char *c = detail; *c; c++)
    if (*c < 32 || *c > 126) *c = '?';
  /* "Error reading data buffer from file:" is followed by the file name: drop the colon */
  size_t dl = strlen(detail);
  while (dl > 0 && (detail[dl - 1] == ' ' || detail[dl - 1] == ':')) detail[--dl] = 0;
  if (detail[0])
    return jade_error(code, "%s: %s (CFITSIO status %d: %s)", prefix, text, status, detail);
  return jade_error(code, "%s: %s (CFITSIO status %d)", prefix, text, status);
}

static void hdu_label(char *buf, size_t n, const char *extname) {
  if (extname)
    snprintf(buf, n, "HDU '%s'", extname);
  else
    snprintf(buf, n, "primary HDU");
}

/* ---- header pre-scan ---------------------------------------------------------------- */
/* FITS 4.0 (Pence et al. 2010, A&A 524, A42) sec. 3.3 and 4: a header is 2880-byte blocks of
 * 80-byte cards of printable ASCII ending at END; the data that follow take
 * |BITPIX|/8 * GCOUNT * (PCOUNT + NAXIS1 * ... * NAXISn) bytes (NAXIS1 = 0: random groups,
 * the product starts at NAXIS2), rounded up to whole blocks. */
enum { FITS_BLOCK = 2880, FITS_CARD = 80, FITS_MAX_HDUS = 1000 };

static int card_is(const char *card, const char *key) {
  size_t n = strlen(key);
  if (memcmp(card, key, n)) return 0;
  for (size_t i = n; i < 8; i++)
    if (card[i] != ' ') return 0;
  return 1;
}

/* The integer value of a "KEY     = value" card; 0 if it has none. */
static int card_integer(const char *card, long long *v) {
  if (card[8] != '=') return 0;
  char buf[FITS_CARD];
  memcpy(buf, card + 10, FITS_CARD - 10);
  buf[FITS_CARD - 10] = 0;
  char *end;
  errno = 0;
  long long x = strtoll(buf, &end, 10);
  if (end == buf || errno) return 0;
  *v = x;
  return 1;
}

jade_status jade_fits_check_headers(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return jade_error(JADE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  char block[FITS_BLOCK];
  long long pos = 0;
  jade_status s = JADE_OK;
  for (int hdu = 1; hdu <= FITS_MAX_HDUS && !s; hdu++) {
    long long bitpix = 0, naxis = 0, pcount = 0, gcount = 1, product = 1, naxis1 = -1;
    int ended = 0;
    long card_no = 0;
    while (!ended && !s) {
      if (fseeko(fp, (off_t)pos, SEEK_SET) || fread(block, 1, FITS_BLOCK, fp) != FITS_BLOCK) goto done;
      if (card_no == 0 && memcmp(block, hdu == 1 ? "SIMPLE  " : "XTENSION", 8)) goto done; /* not FITS: CFITSIO says so */
      pos += FITS_BLOCK;
      for (int c = 0; c < FITS_BLOCK / FITS_CARD && !ended && !s; c++) {
        const char *card = block + c * FITS_CARD;
        card_no++;
        for (int i = 0; i < FITS_CARD; i++)
          if ((unsigned char)card[i] < 32 || (unsigned char)card[i] > 126) {
            s = jade_error(JADE_ERR_FORMAT, "%s: HDU %d header card %ld has byte 0x%02x at column %d (FITS headers are printable ASCII)",
                           path, hdu, card_no, (unsigned char)card[i], i + 1);
            break;
          }
        if (s) break;
        long long v;
        if (card_is(card, "END")) ended = 1;
        else if (card_is(card, "BITPIX") && card_integer(card, &v)) bitpix = v;
        else if (card_is(card, "NAXIS") && card_integer(card, &v)) naxis = v;
        else if (card_is(card, "PCOUNT") && card_integer(card, &v)) pcount = v;
        else if (card_is(card, "GCOUNT") && card_integer(card, &v)) gcount = v;
        else if (!memcmp(card, "NAXIS", 5) && isdigit((unsigned char)card[5]) && card_integer(card, &v)) {
          if (v < 0 || (v > 0 && product > (1LL << 50) / v)) goto done; /* CFITSIO refuses it */
          if (card_is(card, "NAXIS1")) naxis1 = v;
          if (!(card_is(card, "NAXIS1") && v == 0)) product *= v;
        } else if (!memcmp(card, "TTYPE", 5) && card[8] == '=') {
          int i = 10;
          while (i < FITS_CARD && card[i] == ' ') i++;
          if (i < FITS_CARD && card[i] != '\'' && card[i] != '/')
            s = jade_error(JADE_ERR_FORMAT, "%s: HDU %d header card %ld: %.8s is not a quoted string (column names are 'text')",
                           path, hdu, card_no, card);
        }
      }
    }
    if (s) break;
    if (naxis <= 0) product = 0;
    else if (naxis1 == 0 && naxis == 1) product = 0;
    long long bytes_per = bitpix < 0 ? -bitpix / 8 : bitpix / 8;
    if (pcount < 0 || gcount < 0 || pcount > (1LL << 50) || gcount > (1LL << 20)) goto done;
    long long data = bytes_per * gcount * (pcount + product);
    if (data < 0 || data > (1LL << 60)) goto done;
    pos += (data + FITS_BLOCK - 1) / FITS_BLOCK * FITS_BLOCK;
  }
done:
  fclose(fp);
  return s;
}

/* Open path read-only and move to the HDU (primary if extname is NULL). */
static jade_status open_hdu(const char *path, const char *extname, fitsfile **f) {
  *f = NULL;
  if (!path || !path[0]) return jade_error(JADE_ERR_INVALID, "fits: empty path");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return jade_error(JADE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  int isreg = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  close(fd);
  if (!isreg) return jade_error(JADE_ERR_IO, "%s: not a regular file", path);
  jade_status hs = jade_fits_check_headers(path);
  if (hs) return hs;
  int status = 0;
  fits_clear_errmsg();
  if (fits_open_diskfile(f, path, READONLY, &status)) {
    *f = NULL;
    return fits_fail(JADE_ERR_FORMAT, status, "%s: not a readable FITS file", path);
  }
  if (extname) {
    char name[FLEN_VALUE];
    snprintf(name, sizeof name, "%s", extname);
    if (fits_movnam_hdu(*f, ANY_HDU, name, 0, &status)) {
      jade_status s;
      if (status == BAD_HDU_NUM) {
        fits_clear_errmsg();
        s = jade_error(JADE_ERR_FORMAT, "%s: HDU '%s' not found", path, extname);
      } else {
        s = fits_fail(JADE_ERR_FORMAT, status, "%s: looking for HDU '%s'", path, extname);
      }
      int st2 = 0;
      fits_close_file(*f, &st2);
      fits_clear_errmsg();
      *f = NULL;
      return s;
    }
  }
  return JADE_OK;
}

static void close_quiet(fitsfile *f) {
  int status = 0;
  if (f) fits_close_file(f, &status);
  fits_clear_errmsg();
}

jade_status jade_fits_read_image(const char *path, const char *extname, int *naxis,
                                 long dims[3], float **data) {
  if (!naxis || !dims || !data)
    return jade_error(JADE_ERR_INVALID, "jade_fits_read_image: NULL output");
  *data = NULL;
  *naxis = 0;
  dims[0] = dims[1] = dims[2] = 1;
  fitsfile *f;
  jade_status s = open_hdu(path, extname, &f);
  if (s) return s;
  char hdu[120];
  hdu_label(hdu, sizeof hdu, extname);
  int status = 0, type = 0, nax = 0;
  long d[3] = {1, 1, 1};
  if (fits_get_hdu_type(f, &type, &status)) {
    s = fits_fail(JADE_ERR_FORMAT, status, "%s: %s", path, hdu);
    goto done;
  }
  if (type != IMAGE_HDU) {
    s = jade_error(JADE_ERR_FORMAT, "%s: %s is a table, not an image", path, hdu);
    goto done;
  }
  if (fits_get_img_dim(f, &nax, &status)) {
    s = fits_fail(JADE_ERR_FORMAT, status, "%s: %s: cannot read NAXIS", path, hdu);
    goto done;
  }
  if (nax == 0) {
    s = jade_error(JADE_ERR_FORMAT, "%s: %s has no image data (NAXIS = 0)", path, hdu);
    goto done;
  }
  if (nax > 3) {
    s = jade_error(JADE_ERR_FORMAT, "%s: %s has NAXIS = %d (at most 3 supported)", path, hdu,
                   nax);
    goto done;
  }
  if (fits_get_img_size(f, nax, d, &status)) {
    s = fits_fail(JADE_ERR_FORMAT, status, "%s: %s: cannot read image size", path, hdu);
    goto done;
  }
  size_t sd[3] = {1, 1, 1};
  for (int i = 0; i < nax; i++) {
    if (d[i] <= 0) {
      s = jade_error(JADE_ERR_FORMAT, "%s: %s: empty image (NAXIS%d = %ld)", path, hdu, i + 1,
                     d[i]);
      goto done;
    }
    sd[i] = (size_t)d[i];
  }
  /* The header's sizes are untrusted: the pixel count must not overflow, and the data it
   * declares must fit in the file (a header cannot make us allocate more than that). */
  int bitpix = 0;
  if (fits_get_img_type(f, &bitpix, &status)) {
    s = fits_fail(JADE_ERR_FORMAT, status, "%s: %s: cannot read BITPIX", path, hdu);
    goto done;
  }
  size_t n = 0, disk = 0;
  struct stat fst;
  if (stat(path, &fst) != 0) {
    s = jade_error(JADE_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    goto done;
  }
  /* tile-compressed images (fpack) hold less than their pixels: there, a fixed cap of 2^32
   * pixels (16 GiB of float32) */
  int compressed = fits_is_compressed_image(f, &status);
  status = 0;
  size_t on_disk = compressed ? ((size_t)1 << 32) * (size_t)(bitpix < 0 ? -bitpix : bitpix) / 8
                              : (size_t)fst.st_size;
  if (jade_size_product(sd, nax, 1, SIZE_MAX / sizeof(float), &n) ||
      jade_size_mul(n, (size_t)(bitpix < 0 ? -bitpix : bitpix) / 8, &disk) || disk > on_disk) {
    s = jade_error(JADE_ERR_FORMAT,
                   "%s: %s: image of %ld x %ld x %ld pixels (BITPIX %d) is larger than the file "
                   "(%lld bytes): corrupt header", path, hdu, d[0], d[1], d[2], bitpix,
                   (long long)fst.st_size);
    goto done;
  }
  int dataok = 0, hduok = 0;
  if (fits_verify_chksum(f, &dataok, &hduok, &status)) {
    s = fits_fail(JADE_ERR_FORMAT, status, "%s: %s: cannot read data", path, hdu);
    goto done;
  }
  if (dataok < 0 || hduok < 0) {
    s = jade_error(JADE_ERR_FORMAT, "%s: %s: %s checksum mismatch (file corrupted)", path, hdu,
                   dataok < 0 ? "DATASUM" : "CHECKSUM");
    goto done;
  }
  float *buf = jade_alloc(n * sizeof(float));
  if (!buf) {
    s = jade_error(JADE_ERR_NOMEM, "%s: %s: out of memory for %zu pixels", path, hdu, n);
    goto done;
  }
  int anynul = 0;
  if (fits_read_img(f, TFLOAT, 1, (LONGLONG)n, NULL, buf, &anynul, &status)) {
    free(buf);
    s = fits_fail(JADE_ERR_FORMAT, status, "%s: %s: cannot read image data", path, hdu);
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(buf[i])) {
      size_t x = i % (size_t)d[0], y = (i / (size_t)d[0]) % (size_t)d[1];
      size_t z = i / ((size_t)d[0] * (size_t)d[1]);
      s = jade_error(JADE_ERR_NUMERIC, "%s: %s: pixel (x=%zu, y=%zu, z=%zu; 0-based) is %s",
                     path, hdu, x, y, z, isnan(buf[i]) ? "NaN" : "Inf");
      free(buf);
      goto done;
    }
  }
  *data = buf;
  *naxis = nax;
  for (int i = 0; i < nax; i++) dims[i] = d[i];
  s = JADE_OK;
done:
  close_quiet(f);
  return s;
}

jade_status jade_fits_read_key_double(const char *path, const char *extname, const char *key,
                                      double *out) {
  if (!key || !out) return jade_error(JADE_ERR_INVALID, "jade_fits_read_key_double: NULL argument");
  fitsfile *f;
  jade_status s = open_hdu(path, extname, &f);
  if (s) return s;
  char hdu[120];
  hdu_label(hdu, sizeof hdu, extname);
  int status = 0;
  double v = 0;
  if (fits_read_key(f, TDOUBLE, key, &v, NULL, &status)) {
    if (status == KEY_NO_EXIST) {
      fits_clear_errmsg();
      s = jade_error(JADE_ERR_FORMAT, "%s: %s: key '%s' not found", path, hdu, key);
    } else {
      s = fits_fail(JADE_ERR_FORMAT, status, "%s: %s: key '%s'", path, hdu, key);
    }
  } else {
    *out = v;
  }
  close_quiet(f);
  return s;
}

int jade_fits_has_key(const char *path, const char *extname, const char *key) {
  fitsfile *f;
  if (!key || open_hdu(path, extname, &f)) return 0;
  char card[FLEN_CARD];
  int status = 0;
  fits_read_card(f, (char *)key, card, &status);
  fits_clear_errmsg();
  close_quiet(f);
  return status == 0;
}

jade_status jade_fits_read_key_string(const char *path, const char *extname, const char *key,
                                      char *out, size_t out_len) {
  if (!key || !out || out_len == 0)
    return jade_error(JADE_ERR_INVALID, "jade_fits_read_key_string: NULL argument");
  fitsfile *f;
  jade_status s = open_hdu(path, extname, &f);
  if (s) return s;
  char hdu[120];
  hdu_label(hdu, sizeof hdu, extname);
  int status = 0;
  char v[FLEN_VALUE] = "";
  if (fits_read_key(f, TSTRING, key, v, NULL, &status)) {
    if (status == KEY_NO_EXIST) {
      fits_clear_errmsg();
      s = jade_error(JADE_ERR_FORMAT, "%s: %s: key '%s' not found", path, hdu, key);
    } else {
      s = fits_fail(JADE_ERR_FORMAT, status, "%s: %s: key '%s'", path, hdu, key);
    }
  } else if (strlen(v) >= out_len) {
    s = jade_error(JADE_ERR_INVALID, "%s: %s: key '%s' value too long (%zu characters)", path,
                   hdu, key, strlen(v));
  } else {
    memcpy(out, v, strlen(v) + 1);
  }
  close_quiet(f);
  return s;
}

int jade_fits_has_hdu(const char *path, const char *extname) {
  if (!path || !extname) return 0;
  if (jade_fits_check_headers(path)) {
    jade_clear_error();
    return 0;
  }
  int status = 0;
  fitsfile *f = NULL;
  fits_clear_errmsg();
  if (fits_open_diskfile(&f, path, READONLY, &status)) {
    fits_clear_errmsg();
    return 0;
  }
  char name[FLEN_VALUE];
  snprintf(name, sizeof name, "%s", extname);
  int found = fits_movnam_hdu(f, ANY_HDU, name, 0, &status) == 0;
  close_quiet(f);
  return found;
}

jade_status jade_fits_list_images(const char *path, char *out, size_t len) {
  if (!out || len == 0) return jade_error(JADE_ERR_INVALID, "jade_fits_list_images: NULL output");
  out[0] = 0;
  fitsfile *f;
  jade_status s = open_hdu(path, NULL, &f);
  if (s) return s;
  int status = 0, n = 0;
  size_t used = 0;
  fits_get_num_hdus(f, &n, &status);
  for (int k = 1; k <= n && !status; k++) {
    int type = 0, naxis = 0;
    long d[3] = {0, 0, 0};
    if (fits_movabs_hdu(f, k, &type, &status) || type != IMAGE_HDU) continue;
    if (fits_get_img_param(f, 3, (int[]){0}, &naxis, d, &status) || naxis == 0) continue;
    char name[FLEN_VALUE] = "";
    if (fits_read_key(f, TSTRING, "EXTNAME", name, NULL, &status)) {
      status = 0;
      snprintf(name, sizeof name, "#%d", k - 1);
    }
    char dims[64];
    if (naxis >= 3) snprintf(dims, sizeof dims, "%ldx%ldx%ld%s", d[0], d[1], d[2], naxis > 3 ? "x..." : "");
    else snprintf(dims, sizeof dims, naxis == 2 ? "%ldx%ld" : "%ld", d[0], d[1]);
    if (used < len) used += (size_t)snprintf(out + used, len - used, "%s%s (%s)", used ? ", " : "", name, dims);
  }
  if (status) s = fits_fail(JADE_ERR_FORMAT, status, "%s: listing its HDUs", path);
  else if (!out[0]) snprintf(out, len, "none");
  close_quiet(f);
  return s;
}

/* ---- writer ------------------------------------------------------------------------- */
struct jade_fits_writer {
  fitsfile *f;
  int failed;
  char path[4096];
  char tmp[4200];
  char (*names)[FLEN_VALUE];
  int n_names, cap_names;
};

jade_status jade_fits_writer_open(const char *path, jade_fits_writer **out) {
  if (!out) return jade_error(JADE_ERR_INVALID, "jade_fits_writer_open: NULL output");
  *out = NULL;
  if (!path || !path[0]) return jade_error(JADE_ERR_INVALID, "fits: empty path");
  jade_fits_writer *w = calloc(1, sizeof *w);
  if (!w) return jade_error(JADE_ERR_NOMEM, "%s: out of memory", path);
  size_t len = strlen(path);
  if (len >= sizeof w->path) {
    free(w);
    return jade_error(JADE_ERR_INVALID, "%.200s...: path too long", path);
  }
  memcpy(w->path, path, len + 1);
  snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%ld", path, (long)getpid());
  /* Create the temporary ourselves first: a real errno for unwritable directories. */
  unlink(w->tmp);
  int fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) {
    int e = errno;
    free(w);
    return jade_error(JADE_ERR_IO, "%s: cannot create file: %s", path, strerror(e));
  }
  close(fd);
  unlink(w->tmp);
  int status = 0;
  fits_clear_errmsg();
  if (fits_create_diskfile(&w->f, w->tmp, &status) || fits_create_img(w->f, BYTE_IMG, 0, NULL, &status) ||
      fits_write_key_str(w->f, "CREATOR", "jade " JADE_VERSION, "software that wrote this file", &status)) {
    jade_status s = fits_fail(JADE_ERR_IO, status, "%s: cannot create FITS file", path);
    jade_fits_writer_abort(w);
    return s;
  }
  *out = w;
  return JADE_OK;
}

static int reserved_key(const char *k) {
  static const char *const reserved[] = {"SIMPLE", "BITPIX", "EXTEND", "XTENSION", "EXTNAME",
                                         "PCOUNT", "GCOUNT", "END", "CHECKSUM", "DATASUM",
                                         "BSCALE", "BZERO", "BLANK", "CONTINUE", "COMMENT",
                                         "HISTORY", "CREATOR"};
  for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
    if (!strcmp(k, reserved[i])) return 1;
  return !strncmp(k, "NAXIS", 5);
}

static int printable(const char *s) {
  for (; *s; s++)
    if (*s < 32 || *s > 126) return 0;
  return 1;
}

jade_status jade_fits_writer_add_image(jade_fits_writer *w, const char *extname, int naxis,
                                       const long *dims, const float *data,
                                       const jade_fits_key *keys, int n_keys) {
  if (!w) return jade_error(JADE_ERR_INVALID, "jade_fits_writer_add_image: NULL writer");
  const char *path = w->path;
  if (w->failed || !w->f)
    return jade_error(JADE_ERR_INVALID, "%s: writer unusable after an earlier error", path);
  if (!extname || !extname[0] || strlen(extname) > 68 || !printable(extname))
    return jade_error(JADE_ERR_INVALID, "%s: invalid EXTNAME '%s'", path,
                      extname ? extname : "(null)");
  for (int i = 0; i < w->n_names; i++)
    if (!strcasecmp(w->names[i], extname))
      return jade_error(JADE_ERR_INVALID, "%s: HDU '%s' written twice", path, extname);
  if (naxis < 1 || naxis > 3 || !dims)
    return jade_error(JADE_ERR_INVALID, "%s: HDU '%s': naxis %d not in 1..3", path, extname,
                      naxis);
  long d[3] = {1, 1, 1};
  size_t n = 1;
  for (int i = 0; i < naxis; i++) {
    if (dims[i] <= 0)
      return jade_error(JADE_ERR_INVALID, "%s: HDU '%s': NAXIS%d = %ld", path, extname, i + 1,
                        dims[i]);
    d[i] = dims[i];
    n *= (size_t)dims[i];
  }
  if (!data) return jade_error(JADE_ERR_INVALID, "%s: HDU '%s': NULL data", path, extname);
  if (n_keys < 0 || (n_keys > 0 && !keys))
    return jade_error(JADE_ERR_INVALID, "%s: HDU '%s': bad key list", path, extname);
  /* Validate keys before touching the file. */
  for (int k = 0; k < n_keys; k++) {
    const jade_fits_key *key = &keys[k];
    size_t kl = strnlen(key->name, sizeof key->name);
    int ok = kl >= 1 && kl <= 8;
    for (size_t c = 0; ok && c < kl; c++) {
      char ch = (char)toupper((unsigned char)key->name[c]);
      ok = (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
    }
    if (!ok)
      return jade_error(JADE_ERR_INVALID, "%s: HDU '%s': invalid FITS keyword '%.16s'", path,
                        extname, key->name);
    char up[16];
    for (size_t c = 0; c <= kl; c++) up[c] = (char)toupper((unsigned char)key->name[c]);
    if (reserved_key(up))
      return jade_error(JADE_ERR_INVALID, "%s: HDU '%s': keyword '%s' is reserved", path,
                        extname, up);
    if (key->type == JADE_KEY_DOUBLE && !isfinite(key->d))
      return jade_error(JADE_ERR_NUMERIC, "%s: HDU '%s': key '%s' is not finite", path,
                        extname, up);
    if (key->type == JADE_KEY_STRING &&
        (strnlen(key->s, sizeof key->s) > 68 || !printable(key->s)))
      return jade_error(JADE_ERR_INVALID,
                        "%s: HDU '%s': key '%s': string value longer than 68 characters or "
                        "not printable ASCII", path, extname, up);
    if (key->type != JADE_KEY_DOUBLE && key->type != JADE_KEY_LONG &&
        key->type != JADE_KEY_STRING)
      return jade_error(JADE_ERR_INVALID, "%s: HDU '%s': key '%s': unknown type %d", path,
                        extname, up, (int)key->type);
    if (strnlen(key->comment, sizeof key->comment) >= sizeof key->comment ||
        !printable(key->comment))
      return jade_error(JADE_ERR_INVALID, "%s: HDU '%s': key '%s': bad comment", path, extname,
                        up);
  }
  if (w->n_names == w->cap_names) {
    int cap = w->cap_names ? 2 * w->cap_names : 8;
    void *p = realloc(w->names, (size_t)cap * sizeof *w->names);
    if (!p) return jade_error(JADE_ERR_NOMEM, "%s: out of memory", path);
    w->names = p;
    w->cap_names = cap;
  }
  int status = 0;
  fits_clear_errmsg();
  if (fits_create_img(w->f, FLOAT_IMG, naxis, d, &status) ||
      fits_write_key_str(w->f, "EXTNAME", extname, NULL, &status) ||
      fits_write_key_str(w->f, "CREATOR", "jade " JADE_VERSION, "software that wrote this file", &status))
    goto fail;
  for (int k = 0; k < n_keys; k++) {
    const jade_fits_key *key = &keys[k];
    char up[16];
    size_t kl = strnlen(key->name, sizeof key->name);
    for (size_t c = 0; c <= kl; c++) up[c] = (char)toupper((unsigned char)key->name[c]);
    const char *comment = key->comment[0] ? key->comment : NULL;
    if (key->type == JADE_KEY_DOUBLE) {
      /* shortest %G precision that reads back exactly */
      int prec = 15;
      for (; prec < 17; prec++) {
        char b[40];
        snprintf(b, sizeof b, "%.*G", prec, key->d);
        if (strtod(b, NULL) == key->d) break;
      }
      fits_write_key_dbl(w->f, up, key->d, -prec, comment, &status);
    } else if (key->type == JADE_KEY_LONG) {
      fits_write_key_lng(w->f, up, (LONGLONG)key->l, comment, &status);
    } else {
      fits_write_key_str(w->f, up, key->s, comment, &status);
    }
    if (status) goto fail;
  }
  if (fits_write_img(w->f, TFLOAT, 1, (LONGLONG)n, (float *)data, &status) ||
      fits_write_chksum(w->f, &status))
    goto fail;
  snprintf(w->names[w->n_names++], FLEN_VALUE, "%s", extname);
  return JADE_OK;
fail:
  w->failed = 1;
  return fits_fail(JADE_ERR_IO, status, "%s: writing HDU '%s'", path, extname);
}

jade_status jade_fits_writer_close(jade_fits_writer *w) {
  if (!w) return JADE_OK;
  if (w->failed || !w->f) {
    jade_status s = jade_error(JADE_ERR_IO, "%s: not written (an earlier write failed)", w->path);
    jade_fits_writer_abort(w);
    return s;
  }
  int status = 0;
  fits_close_file(w->f, &status);
  w->f = NULL;
  jade_status s = JADE_OK;
  if (status) s = fits_fail(JADE_ERR_IO, status, "%s: closing FITS file", w->path);
  if (!s) {
    int fd = open(w->tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL && errno != EROFS))
      s = jade_error(JADE_ERR_IO, "%s: fsync failed: %s", w->path, strerror(errno));
    if (fd >= 0) close(fd);
  }
  if (!s && rename(w->tmp, w->path) != 0)
    s = jade_error(JADE_ERR_IO, "%s: cannot rename temporary file into place: %s", w->path,
                   strerror(errno));
  if (s) {
    unlink(w->tmp);
  } else {
    jade_sync_parent_dir(w->path);
  }
  free(w->names);
  free(w);
  return s;
}

void jade_fits_writer_abort(jade_fits_writer *w) {
  if (!w) return;
  close_quiet(w->f);
  w->f = NULL;
  unlink(w->tmp);
  free(w->names);
  free(w);
}
