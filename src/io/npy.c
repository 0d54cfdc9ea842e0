/* NumPy .npy files: writer (format 1.0, byte-identical to NumPy >= 1.24's np.save for the
 * supported dtypes), reader for format 1.0 / 2.0 / 3.0 headers, read-only memory map, and a
 * preallocated writer filled row by row with pwrite.
 *
 * Header: "\x93NUMPY" major minor, a little-endian header length (uint16 for 1.0, uint32 for
 * 2.0/3.0), then a Python dict literal {'descr': '<f4', 'fortran_order': False,
 * 'shape': (3, 4), } padded with spaces and a final '\n' so the data start at a multiple of
 * 64 bytes. Only little-endian C-order arrays of <f4, <f8, <i8 and |u1 are supported. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "jade/io.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "jade's .npy I/O assumes a little-endian host"
#endif

#define NPY_ALIGN 64
#define NPY_GROWTH_AXIS_MAX_DIGITS 21 /* NumPy's spare room for growing shape[0] in place */
#define NPY_MAX_HEADER (1u << 20)     /* larger headers are treated as garbage */

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

static const char *dtype_descr(jade_dtype t) {
  switch (t) {
    case JADE_F32: return "<f4";
    case JADE_F64: return "<f8";
    case JADE_I64: return "<i8";
    case JADE_U8: return "|u1";
    case JADE_F16: return "<f2";
  }
  return "?";
}

/* ---- binary16 ------------------------------------------------------------------------- */
/* IEEE 754-2008 binary16: 1 sign, 5 exponent (bias 15), 10 fraction bits; binary32 has bias
 * 127, so normal numbers rebias by (127 - 15) << 23 = 0x38000000. */
uint16_t jade_f32_to_f16(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  const uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) /* Inf, or NaN kept quiet with the top fraction bits */
    return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u | ((a >> 13) & 0x3ffu) : 0));
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to Inf */
  if (a >= 0x38800000u) {                                   /* normal binary16, >= 2^-14 */
    uint32_t r = a + 0x0fffu + ((a >> 13) & 1u);            /* round to nearest, ties to even */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
  }
  /* subnormal binary16 (units of 2^-24) or zero: value = mant 2^(e - 23), e <= -15 */
  const int e = (int)(a >> 23) - 127, s = -(e + 1); /* value / 2^-24 = mant >> s */
  if (a < 0x00800000u || s > 24) return (uint16_t)sign;
  const uint32_t mant = (a & 0x7fffffu) | 0x800000u, half = 1u << (s - 1);
  uint32_t q = mant >> s, rem = mant & ((1u << s) - 1u);
  if (rem > half || (rem == half && (q & 1u))) q++;
  return (uint16_t)(sign | q);
}

float jade_f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  uint32_t u;
  float f;
  if (e == 0x1f) {
    u = sign | 0x7f800000u | (m << 13);
  } else if (e) {
    u = sign | ((e + 112u) << 23) | (m << 13);
  } else {
    f = (float)m * 5.9604644775390625e-8f; /* m 2^-24, exact */
    memcpy(&u, &f, 4);
    u |= sign;
  }
  memcpy(&f, &u, 4);
  return f;
}

void jade_f32_to_f16_array(uint16_t *dst, const float *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = jade_f32_to_f16(src[i]);
}

void jade_f16_to_f32_array(float *dst, const uint16_t *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = jade_f16_to_f32(src[i]);
}

/* Python repr of a shape tuple: "()", "(5,)", "(3, 4)". */
static void shape_repr(char *buf, size_t n, int ndim, const size_t *shape) {
  size_t k = 0;
  k += (size_t)snprintf(buf + k, n - k, "(");
  for (int i = 0; i < ndim && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, i ? ", %zu" : "%zu", shape[i]);
  if (k < n) snprintf(buf + k, n - k, ndim == 1 ? ",)" : ")");
}

/* Number of bytes of data, or an error on overflow. */
static jade_status data_bytes(const char *path, jade_status code, jade_dtype dtype, int ndim,
                              const size_t *shape, size_t *out) {
  size_t n = jade_dtype_size(dtype);
  for (int i = 0; i < ndim; i++) {
    if (shape[i] && n > SIZE_MAX / shape[i])
      return jade_error(code, "%s: array size overflows", path);
    n *= shape[i];
  }
  if (n > (size_t)INT64_MAX / 2) return jade_error(code, "%s: array too large", path);
  *out = n;
  return JADE_OK;
}

static jade_status check_args(const char *path, jade_dtype dtype, int ndim, int min_ndim,
                              const size_t *shape) {
  if (!path || !path[0]) return jade_error(JADE_ERR_INVALID, "npy: empty path");
  if (jade_dtype_size(dtype) == 0)
    return jade_error(JADE_ERR_INVALID, "%s: unknown dtype code %d", path, (int)dtype);
  if (ndim < min_ndim || ndim > JADE_NPY_MAX_DIM)
    return jade_error(JADE_ERR_INVALID, "%s: ndim %d out of range [%d, %d]", path, ndim,
                      min_ndim, JADE_NPY_MAX_DIM);
  if (ndim > 0 && !shape) return jade_error(JADE_ERR_INVALID, "%s: NULL shape", path);
  return JADE_OK;
}

/* Build the full header (magic .. final '\n'); returns its length (a multiple of 64). */
static size_t build_header(char *buf, size_t cap, jade_dtype dtype, int ndim,
                           const size_t *shape) {
  char shp[JADE_NPY_MAX_DIM * 24 + 8];
  shape_repr(shp, sizeof shp, ndim, shape);
  char dict[512];
  int dl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                    dtype_descr(dtype), shp);
  size_t len = (size_t)dl;
  if (ndim > 0) {
    char d0[32];
    int digits = snprintf(d0, sizeof d0, "%zu", shape[0]);
    for (int i = digits; i < NPY_GROWTH_AXIS_MAX_DIGITS; i++) dict[len++] = ' ';
  }
  size_t hlen = len + 1; /* + '\n' */
  size_t pad = NPY_ALIGN - ((10 + hlen) % NPY_ALIGN); /* 1..64, as NumPy does */
  size_t total = 10 + hlen + pad;
  if (total > cap) return 0;
  memcpy(buf, npy_magic, 6);
  buf[6] = 1;
  buf[7] = 0;
  uint16_t hl = (uint16_t)(hlen + pad);
  buf[8] = (char)(hl & 0xff);
  buf[9] = (char)(hl >> 8);
  memcpy(buf + 10, dict, len);
  memset(buf + 10 + len, ' ', pad);
  buf[total - 1] = '\n';
  return total;
}

/* ---- header parsing ------------------------------------------------------------------ */
typedef struct {
  jade_dtype dtype;
  int ndim;
  size_t shape[JADE_NPY_MAX_DIM];
  size_t offset; /* data start */
  size_t bytes;  /* data size */
} npy_info;

typedef struct {
  const char *s;
  size_t n, i;
  const char *path;
} hparser;

static void hp_ws(hparser *p) {
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                         p->s[p->i] == '\r'))
    p->i++;
}

static jade_status hp_fail(hparser *p, const char *what) {
  return jade_error(JADE_ERR_FORMAT, "%s: garbled .npy header: %s at header byte %zu", p->path,
                    what, p->i);
}

static jade_status hp_string(hparser *p, char *out, size_t cap) {
  hp_ws(p);
  if (p->i >= p->n || (p->s[p->i] != '\'' && p->s[p->i] != '"'))
    return hp_fail(p, "expected a quoted string");
  char q = p->s[p->i++];
  size_t k = 0;
  while (p->i < p->n && p->s[p->i] != q) {
    if (p->s[p->i] == '\\' || p->s[p->i] == '\n') return hp_fail(p, "unsupported string");
    if (k + 1 >= cap) return hp_fail(p, "string too long");
    out[k++] = p->s[p->i++];
  }
  if (p->i >= p->n) return hp_fail(p, "unterminated string");
  p->i++;
  out[k] = 0;
  return JADE_OK;
}

static jade_status hp_expect(hparser *p, char c) {
  hp_ws(p);
  if (p->i >= p->n || p->s[p->i] != c) {
    char what[32];
    snprintf(what, sizeof what, "expected '%c'", c);
    return hp_fail(p, what);
  }
  p->i++;
  return JADE_OK;
}

static jade_status hp_shape(hparser *p, npy_info *info) {
  jade_status s = hp_expect(p, '(');
  if (s) return s;
  info->ndim = 0;
  for (;;) {
    hp_ws(p);
    if (p->i < p->n && p->s[p->i] == ')') {
      p->i++;
      return JADE_OK;
    }
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
      return hp_fail(p, "expected a non-negative integer in 'shape'");
    size_t v = 0;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
      unsigned d = (unsigned)(p->s[p->i++] - '0');
      if (v > (SIZE_MAX - d) / 10) return hp_fail(p, "dimension too large");
      v = v * 10 + d;
    }
    if (p->i < p->n && p->s[p->i] == 'L') p->i++; /* Python 2 long */
    if (info->ndim >= JADE_NPY_MAX_DIM)
      return jade_error(JADE_ERR_FORMAT, "%s: .npy array has more than %d dimensions", p->path,
                        JADE_NPY_MAX_DIM);
    info->shape[info->ndim++] = v;
    hp_ws(p);
    if (p->i < p->n && p->s[p->i] == ',') {
      p->i++;
    } else if (p->i < p->n && p->s[p->i] == ')') {
      if (info->ndim == 1) return hp_fail(p, "1-element shape without trailing comma");
    } else {
      return hp_fail(p, "expected ',' or ')' in 'shape'");
    }
  }
}

static jade_status parse_dict(hparser *p, npy_info *info) {
  int have_descr = 0, have_fortran = 0, have_shape = 0;
  char descr[64] = {0};
  jade_status s = hp_expect(p, '{');
  if (s) return s;
  for (;;) {
    hp_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
      p->i++;
      break;
    }
    char key[64];
    if ((s = hp_string(p, key, sizeof key))) return s;
    if ((s = hp_expect(p, ':'))) return s;
    hp_ws(p);
    if (!strcmp(key, "descr")) {
      if (have_descr++) return hp_fail(p, "duplicate key 'descr'");
      if (p->i < p->n && p->s[p->i] == '[')
        return jade_error(JADE_ERR_FORMAT, "%s: structured .npy arrays are not supported",
                          p->path);
      if ((s = hp_string(p, descr, sizeof descr))) return s;
    } else if (!strcmp(key, "fortran_order")) {
      if (have_fortran++) return hp_fail(p, "duplicate key 'fortran_order'");
      if (p->n - p->i >= 5 && !memcmp(p->s + p->i, "False", 5)) {
        p->i += 5;
      } else if (p->n - p->i >= 4 && !memcmp(p->s + p->i, "True", 4)) {
        return jade_error(JADE_ERR_FORMAT,
                          "%s: Fortran-order .npy arrays are not supported (save a "
                          "C-contiguous array)", p->path);
      } else {
        return hp_fail(p, "expected True or False for 'fortran_order'");
      }
    } else if (!strcmp(key, "shape")) {
      if (have_shape++) return hp_fail(p, "duplicate key 'shape'");
      if ((s = hp_shape(p, info))) return s;
    } else {
      return jade_error(JADE_ERR_FORMAT, "%s: garbled .npy header: unexpected key '%s'",
                        p->path, key);
    }
    hp_ws(p);
    if (p->i < p->n && p->s[p->i] == ',') {
      p->i++;
    } else if (!(p->i < p->n && p->s[p->i] == '}')) {
      return hp_fail(p, "expected ',' or '}'");
    }
  }
  hp_ws(p);
  if (p->i != p->n) return hp_fail(p, "unexpected text after the dict");
  if (!have_descr || !have_fortran || !have_shape)
    return jade_error(JADE_ERR_FORMAT, "%s: garbled .npy header: missing key '%s'", p->path,
                      !have_descr ? "descr" : !have_fortran ? "fortran_order" : "shape");
  if (!strcmp(descr, "<f4")) {
    info->dtype = JADE_F32;
  } else if (!strcmp(descr, "<f2")) {
    info->dtype = JADE_F16;
  } else if (!strcmp(descr, "<f8")) {
    info->dtype = JADE_F64;
  } else if (!strcmp(descr, "<i8")) {
    info->dtype = JADE_I64;
  } else if (!strcmp(descr, "|u1") || !strcmp(descr, "<u1") || !strcmp(descr, ">u1")) {
    info->dtype = JADE_U8;
  } else if (descr[0] == '>') {
    return jade_error(JADE_ERR_FORMAT, "%s: big-endian dtype '%s' is not supported", p->path,
                      descr);
  } else {
    return jade_error(JADE_ERR_FORMAT,
                      "%s: unsupported dtype '%s' (supported: <f2, <f4, <f8, <i8, |u1)", p->path,
                      descr);
  }
  return JADE_OK;
}

static jade_status read_full(int fd, const char *path, void *buf, size_t n, size_t off) {
  char *b = buf;
  while (n > 0) {
    size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
    ssize_t r = pread(fd, b, chunk, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return jade_error(JADE_ERR_IO, "%s: read failed: %s", path, strerror(errno));
    }
    if (r == 0) return jade_error(JADE_ERR_FORMAT, "%s: truncated (unexpected end of file)", path);
    b += r;
    off += (size_t)r;
    n -= (size_t)r;
  }
  return JADE_OK;
}

static jade_status write_full(int fd, const char *path, const void *buf, size_t n, size_t off) {
  const char *b = buf;
  while (n > 0) {
    size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
    ssize_t r = pwrite(fd, b, chunk, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return jade_error(JADE_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    b += r;
    off += (size_t)r;
    n -= (size_t)r;
  }
  return JADE_OK;
}

/* Parse the header of an open file and check the file size matches exactly. */
static jade_status read_header(int fd, const char *path, npy_info *info) {
  memset(info, 0, sizeof *info);
  struct stat st;
  if (fstat(fd, &st) != 0)
    return jade_error(JADE_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode)) return jade_error(JADE_ERR_IO, "%s: not a regular file", path);
  size_t fsize = (size_t)st.st_size;
  unsigned char pre[12];
  if (fsize < 10)
    return jade_error(JADE_ERR_FORMAT, "%s: not a .npy file (only %zu bytes)", path, fsize);
  jade_status s = read_full(fd, path, pre, fsize < 12 ? 10 : 12, 0);
  if (s) return s;
  if (memcmp(pre, npy_magic, 6) != 0)
    return jade_error(JADE_ERR_FORMAT, "%s: not a .npy file (bad magic string)", path);
  int major = pre[6], minor = pre[7];
  size_t hstart, hlen;
  if (major == 1) {
    hstart = 10;
    hlen = (size_t)pre[8] | ((size_t)pre[9] << 8);
  } else if (major == 2 || major == 3) {
    if (fsize < 12) return jade_error(JADE_ERR_FORMAT, "%s: truncated .npy header", path);
    hstart = 12;
    hlen = (size_t)pre[8] | ((size_t)pre[9] << 8) | ((size_t)pre[10] << 16) |
           ((size_t)pre[11] << 24);
  } else {
    return jade_error(JADE_ERR_FORMAT, "%s: unsupported .npy format version %d.%d", path, major,
                      minor);
  }
  if (hlen > NPY_MAX_HEADER)
    return jade_error(JADE_ERR_FORMAT, "%s: garbled .npy header (header length %zu)", path, hlen);
  if (hstart + hlen > fsize)
    return jade_error(JADE_ERR_FORMAT,
                      "%s: truncated .npy header (header needs %zu bytes, file has %zu)", path,
                      hstart + hlen, fsize);
  char *h = malloc(hlen + 1);
  if (!h) return jade_error(JADE_ERR_NOMEM, "%s: out of memory reading header", path);
  s = read_full(fd, path, h, hlen, hstart);
  if (s) {
    free(h);
    return s;
  }
  h[hlen] = 0;
  if (hlen == 0 || h[hlen - 1] != '\n') {
    free(h);
    return jade_error(JADE_ERR_FORMAT, "%s: garbled .npy header (does not end in a newline)",
                      path);
  }
  hparser p = {h, hlen, 0, path};
  s = parse_dict(&p, info);
  free(h);
  if (s) return s;
  info->offset = hstart + hlen;
  s = data_bytes(path, JADE_ERR_FORMAT, info->dtype, info->ndim, info->shape, &info->bytes);
  if (s) return s;
  size_t have = fsize - info->offset;
  if (have < info->bytes)
    return jade_error(JADE_ERR_FORMAT, "%s: truncated (expected %zu bytes of data, found %zu)",
                      path, info->bytes, have);
  if (have > info->bytes)
    return jade_error(JADE_ERR_FORMAT,
                      "%s: %zu unexpected bytes after the data (expected %zu bytes of data)",
                      path, have - info->bytes, info->bytes);
  return JADE_OK;
}

static jade_status open_read(const char *path, int *fd) {
  if (!path || !path[0]) return jade_error(JADE_ERR_INVALID, "npy: empty path");
  *fd = open(path, O_RDONLY | O_CLOEXEC);
  if (*fd < 0) return jade_error(JADE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  return JADE_OK;
}

/* NaN/Inf check of float data: error names the file and the element. */
static jade_status check_finite_data(const char *path, const jade_npy *a) {
  size_t n = jade_npy_count(a), bad = (size_t)-1;
  double v = 0;
  if (a->dtype == JADE_F32) {
    const float *x = a->data;
    for (size_t i = 0; i < n; i++)
      if (!isfinite(x[i])) {
        bad = i;
        v = x[i];
        break;
      }
  } else if (a->dtype == JADE_F16) {
    const uint16_t *x = a->data;
    for (size_t i = 0; i < n; i++)
      if ((x[i] & 0x7c00u) == 0x7c00u) {
        bad = i;
        v = jade_f16_to_f32(x[i]);
        break;
      }
  } else if (a->dtype == JADE_F64) {
    const double *x = a->data;
    for (size_t i = 0; i < n; i++)
      if (!isfinite(x[i])) {
        bad = i;
        v = x[i];
        break;
      }
  }
  if (bad == (size_t)-1) return JADE_OK;
  size_t idx[JADE_NPY_MAX_DIM], r = bad;
  for (int d = a->ndim - 1; d >= 0; d--) {
    idx[d] = a->shape[d] ? r % a->shape[d] : 0;
    r = a->shape[d] ? r / a->shape[d] : 0;
  }
  char where[JADE_NPY_MAX_DIM * 24 + 8];
  shape_repr(where, sizeof where, a->ndim, idx);
  return jade_error(JADE_ERR_NUMERIC, "%s: element %s is %s", path, where,
                    isnan(v) ? "NaN" : "Inf");
}

void jade_npy_release(jade_npy *a) {
  if (!a) return;
  if (a->map_base) {
    munmap(a->map_base, a->map_len);
  } else {
    free(a->data);
  }
  memset(a, 0, sizeof *a);
}

static void fill_out(jade_npy *out, const npy_info *info) {
  out->dtype = info->dtype;
  out->ndim = info->ndim;
  for (int i = 0; i < info->ndim; i++) out->shape[i] = info->shape[i];
}

jade_status jade_npy_read(const char *path, int check_finite, jade_npy *out) {
  if (!out) return jade_error(JADE_ERR_INVALID, "jade_npy_read: NULL output");
  memset(out, 0, sizeof *out);
  int fd = -1;
  jade_status s = open_read(path, &fd);
  if (s) return s;
  npy_info info;
  s = read_header(fd, path, &info);
  if (s) {
    close(fd);
    return s;
  }
  void *data = jade_alloc(info.bytes);
  if (!data) {
    close(fd);
    return jade_error(JADE_ERR_NOMEM, "%s: out of memory (%zu bytes of data)", path, info.bytes);
  }
  s = read_full(fd, path, data, info.bytes, info.offset);
  close(fd);
  if (s) {
    free(data);
    return s;
  }
  fill_out(out, &info);
  out->data = data;
  if (check_finite && (s = check_finite_data(path, out))) {
    jade_npy_release(out);
    return s;
  }
  return JADE_OK;
}

jade_status jade_npy_map(const char *path, jade_npy *out) {
  if (!out) return jade_error(JADE_ERR_INVALID, "jade_npy_map: NULL output");
  memset(out, 0, sizeof *out);
  int fd = -1;
  jade_status s = open_read(path, &fd);
  if (s) return s;
  npy_info info;
  s = read_header(fd, path, &info);
  if (s) {
    close(fd);
    return s;
  }
  if (info.offset % jade_dtype_size(info.dtype) != 0) {
    close(fd);
    return jade_error(JADE_ERR_FORMAT,
                      "%s: data offset %zu is not aligned for memory mapping (use jade_npy_read)",
                      path, info.offset);
  }
  size_t len = info.offset + info.bytes;
  void *base = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (base == MAP_FAILED)
    return jade_error(JADE_ERR_IO, "%s: mmap failed: %s", path, strerror(e));
  fill_out(out, &info);
  out->map_base = base;
  out->map_len = len;
  out->data = (char *)base + info.offset;
  return JADE_OK;
}

jade_status jade_npy_to_f32(const char *path, jade_npy *a) {
  if (a->dtype == JADE_F32) return JADE_OK;
  if (a->dtype != JADE_F16)
    return jade_error(JADE_ERR_FORMAT, "%s: expected float16 or float32 data, found '%s'", path,
                      dtype_descr(a->dtype));
  jade_status s = check_finite_data(path, a);
  if (s) return s;
  size_t n = jade_npy_count(a);
  float *f = jade_alloc(n * sizeof(float) + 1);
  if (!f) return jade_error(JADE_ERR_NOMEM, "%s: out of memory converting %zu float16 values", path, n);
  jade_f16_to_f32_array(f, a->data, n);
  jade_npy b = *a;
  b.map_base = NULL;
  b.map_len = 0;
  a->data = NULL;  /* released below without touching f */
  if (a->map_base) {
    jade_npy_release(a);
  } else {
    free(b.data);
    memset(a, 0, sizeof *a);
  }
  a->dtype = JADE_F32;
  a->ndim = b.ndim;
  memcpy(a->shape, b.shape, sizeof b.shape);
  a->data = f;
  return JADE_OK;
}

jade_status jade_npy_write(const char *path, jade_dtype dtype, int ndim, const size_t *shape,
                           const void *data) {
  jade_status s = check_args(path, dtype, ndim, 0, shape);
  if (s) return s;
  size_t bytes = 0;
  if ((s = data_bytes(path, JADE_ERR_INVALID, dtype, ndim, shape, &bytes))) return s;
  if (bytes && !data) return jade_error(JADE_ERR_INVALID, "%s: NULL data", path);
  char hdr[1024];
  size_t hn = build_header(hdr, sizeof hdr, dtype, ndim, shape);
  if (!hn) return jade_error(JADE_ERR_INTERNAL, "%s: .npy header too long", path);
  jade_text_file t;
  if ((s = jade_text_open(path, &t))) return s;
  if (fwrite(hdr, 1, hn, t.f) != hn || (bytes && fwrite(data, 1, bytes, t.f) != bytes)) {
    int e = errno;
    jade_text_abort(&t);
    return jade_error(JADE_ERR_IO, "%s: write failed: %s", path, strerror(e));
  }
  return jade_text_commit(&t);
}

/* ---- preallocated writer -------------------------------------------------------------- */
struct jade_npy_writer {
  int fd;
  jade_dtype dtype;
  int ndim;
  size_t shape[JADE_NPY_MAX_DIM];
  size_t offset, row_bytes;
  char path[4096];
};

/* Create "<path>" at full size (header + zeros) through a temporary, never replacing a file
 * that appeared meanwhile (link fails with EEXIST; the caller then validates it). */
static jade_status create_prealloc(const char *path, jade_dtype dtype, int ndim,
                                   const size_t *shape, size_t bytes) {
  char hdr[1024], tmp[4200];
  size_t hn = build_header(hdr, sizeof hdr, dtype, ndim, shape);
  if (!hn) return jade_error(JADE_ERR_INTERNAL, "%s: .npy header too long", path);
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return jade_error(JADE_ERR_IO, "%s: cannot create file: %s", path, strerror(errno));
  jade_status s = write_full(fd, path, hdr, hn, 0);
  if (!s && ftruncate(fd, (off_t)(hn + bytes)) != 0)
    s = jade_error(JADE_ERR_IO, "%s: cannot allocate %zu bytes: %s", path, hn + bytes,
                   strerror(errno));
  if (!s && fsync(fd) != 0)
    s = jade_error(JADE_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
  if (close(fd) != 0 && !s)
    s = jade_error(JADE_ERR_IO, "%s: close failed: %s", path, strerror(errno));
  if (s) {
    unlink(tmp);
    return s;
  }
  if (link(tmp, path) != 0) {
    int e = errno;
    if (e == EEXIST) {
      unlink(tmp); /* someone else created it: use theirs */
      return JADE_OK;
    }
    /* file systems without hard links: plain rename */
    if (rename(tmp, path) != 0) {
      e = errno;
      unlink(tmp);
      return jade_error(JADE_ERR_IO, "%s: cannot rename temporary file into place: %s", path,
                        strerror(e));
    }
    return JADE_OK;
  }
  unlink(tmp);
  return JADE_OK;
}

jade_status jade_npy_writer_open(const char *path, jade_dtype dtype, int ndim,
                                 const size_t *shape, int create, jade_npy_writer **out) {
  if (!out) return jade_error(JADE_ERR_INVALID, "jade_npy_writer_open: NULL output");
  *out = NULL;
  jade_status s = check_args(path, dtype, ndim, 1, shape);
  if (s) return s;
  if (strlen(path) >= sizeof(((jade_npy_writer *)0)->path))
    return jade_error(JADE_ERR_INVALID, "%.200s...: path too long", path);
  size_t bytes = 0;
  if ((s = data_bytes(path, JADE_ERR_INVALID, dtype, ndim, shape, &bytes))) return s;
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT && create) {
    if ((s = create_prealloc(path, dtype, ndim, shape, bytes))) return s;
    fd = open(path, O_RDWR | O_CLOEXEC);
  }
  if (fd < 0) return jade_error(JADE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  npy_info info;
  if ((s = read_header(fd, path, &info))) {
    close(fd);
    return s;
  }
  int same = info.dtype == dtype && info.ndim == ndim;
  for (int i = 0; same && i < ndim; i++) same = info.shape[i] == shape[i];
  if (!same) {
    char have[JADE_NPY_MAX_DIM * 24 + 8], want[JADE_NPY_MAX_DIM * 24 + 8];
    shape_repr(have, sizeof have, info.ndim, info.shape);
    shape_repr(want, sizeof want, ndim, shape);
    close(fd);
    return jade_error(JADE_ERR_FORMAT,
                      "%s: existing file has dtype %s and shape %s, expected %s and %s", path,
                      dtype_descr(info.dtype), have, dtype_descr(dtype), want);
  }
  jade_npy_writer *w = calloc(1, sizeof *w);
  if (!w) {
    close(fd);
    return jade_error(JADE_ERR_NOMEM, "%s: out of memory", path);
  }
  w->fd = fd;
  w->dtype = dtype;
  w->ndim = ndim;
  memcpy(w->shape, shape, (size_t)ndim * sizeof *shape);
  w->offset = info.offset;
  w->row_bytes = shape[0] ? bytes / shape[0] : 0;
  strcpy(w->path, path);
  *out = w;
  return JADE_OK;
}

jade_status jade_npy_writer_put_rows(jade_npy_writer *w, size_t first_row, size_t n_rows,
                                     const void *data) {
  if (!w) return jade_error(JADE_ERR_INVALID, "jade_npy_writer_put_rows: NULL writer");
  if (first_row > w->shape[0] || n_rows > w->shape[0] - first_row)
    return jade_error(JADE_ERR_INVALID, "%s: %zu rows from row %zu out of range (file has %zu rows)",
                      w->path, n_rows, first_row, w->shape[0]);
  if (n_rows == 0) return JADE_OK;
  if (!data) return jade_error(JADE_ERR_INVALID, "%s: NULL data", w->path);
  return write_full(w->fd, w->path, data, n_rows * w->row_bytes,
                    w->offset + first_row * w->row_bytes);
}

jade_status jade_npy_writer_close(jade_npy_writer *w) {
  if (!w) return JADE_OK;
  jade_status s = JADE_OK;
  if (fsync(w->fd) != 0)
    s = jade_error(JADE_ERR_IO, "%s: fsync failed: %s", w->path, strerror(errno));
  if (close(w->fd) != 0 && !s)
    s = jade_error(JADE_ERR_IO, "%s: close failed: %s", w->path, strerror(errno));
  free(w);
  return s;
}

jade_status jade_npy_check_finite(const char *path, const jade_npy *a) {
  if (!a) return jade_error(JADE_ERR_INVALID, "jade_npy_check_finite: NULL array");
  return check_finite_data(path, a);
}
