/* .npy: round trips of every dtype in 1-4 dims (bytes compared, header parsed here and, when
 * python3 exists, by Python's own literal parser), 64-byte alignment, map == read, headers as
 * other NumPy versions write them (16-byte alignment, v2.0/3.0), error cases, NaN/Inf checks,
 * the preallocated writer filled over two sessions, and no temporaries after failures. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jade/io.h"
#include "test_files.h"
#include "test_util.h"

static void write_raw(const char *p, int major, const char *dict, size_t align, const void *data,
                      size_t n) {
  unsigned char buf[4096];
  size_t pre = major == 1 ? 10 : 12;
  size_t dl = strlen(dict);
  size_t total = (pre + dl + 1 + align - 1) / align * align;
  size_t hlen = total - pre;
  memcpy(buf, "\x93NUMPY", 6);
  buf[6] = (unsigned char)major;
  buf[7] = 0;
  buf[8] = (unsigned char)(hlen & 0xff);
  buf[9] = (unsigned char)((hlen >> 8) & 0xff);
  if (major != 1) {
    buf[10] = 0;
    buf[11] = 0;
  }
  memcpy(buf + pre, dict, dl);
  memset(buf + pre + dl, ' ', total - pre - dl);
  buf[total - 1] = '\n';
  memcpy(buf + total, data, n);
  test_write_bytes(p, buf, total + n);
}

static void fill(jade_dtype t, size_t n, void *data) {
  for (size_t i = 0; i < n; i++) {
    switch (t) {
      case JADE_F32: ((float *)data)[i] = 0.5f * (float)i - 3.25f; break;
      case JADE_F64: ((double *)data)[i] = sin((double)i) * 1e10; break;
      case JADE_I64: ((int64_t *)data)[i] = (int64_t)i * 123456789123LL - 5000000000LL; break;
      case JADE_U8: ((uint8_t *)data)[i] = (uint8_t)(i * 7 + 3); break;
      case JADE_F16: ((uint16_t *)data)[i] = (uint16_t)(0x3c00u + 37u * i); break; /* 1 + ... */
    }
  }
}

static const char *descr_of(jade_dtype t) {
  return t == JADE_F32 ? "<f4" : t == JADE_F64 ? "<f8" : t == JADE_I64 ? "<i8" : t == JADE_F16 ? "<f2" : "|u1";
}

/* Python repr of a shape */
static void shape_str(char *b, size_t n, int ndim, const size_t *s) {
  size_t k = (size_t)snprintf(b, n, "(");
  for (int i = 0; i < ndim; i++) k += (size_t)snprintf(b + k, n - k, i ? ", %zu" : "%zu", s[i]);
  snprintf(b + k, n - k, ndim == 1 ? ",)" : ")");
}

/* Parse the file written by jade_npy_write: returns data offset or 0 on a check failure. */
static size_t check_header(const unsigned char *b, size_t n, jade_dtype t, int ndim,
                           const size_t *shape) {
  if (n < 10 || memcmp(b, "\x93NUMPY", 6) != 0) return 0;
  if (b[6] != 1 || b[7] != 0) return 0;
  size_t hlen = (size_t)b[8] | ((size_t)b[9] << 8);
  size_t off = 10 + hlen;
  if (off % 64 != 0 || off > n || b[off - 1] != '\n') return 0;
  char expect[256], shp[128];
  shape_str(shp, sizeof shp, ndim, shape);
  snprintf(expect, sizeof expect, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
           descr_of(t), shp);
  size_t el = strlen(expect);
  if (hlen < el + 1 || memcmp(b + 10, expect, el) != 0) return 0;
  for (size_t i = 10 + el; i < off - 1; i++)
    if (b[i] != ' ') return 0;
  return off;
}

static const char *py_script =
    "import ast, struct, sys\n"
    "ok = True\n"
    "for arg in sys.argv[1:]:\n"
    "    path, descr, shp = arg.split('#')\n"
    "    shape = tuple(int(x) for x in shp.split('x')) if shp else ()\n"
    "    b = open(path, 'rb').read()\n"
    "    assert b[:6] == b'\\x93NUMPY' and b[6] == 1 and b[7] == 0, path\n"
    "    hlen = struct.unpack('<H', b[8:10])[0]\n"
    "    d = ast.literal_eval(b[10:10 + hlen].decode('latin1'))\n"
    "    n = 1\n"
    "    for s in shape: n *= s\n"
    "    size = {'<f2': 2, '<f4': 4, '<f8': 8, '<i8': 8, '|u1': 1}[descr]\n"
    "    good = (sorted(d) == ['descr', 'fortran_order', 'shape'] and d['descr'] == descr\n"
    "            and d['fortran_order'] is False and d['shape'] == shape\n"
    "            and (10 + hlen) % 64 == 0 and len(b) == 10 + hlen + n * size)\n"
    "    if not good:\n"
    "        print('python check failed:', path, d)\n"
    "        ok = False\n"
    "print('python validated', len(sys.argv) - 1, 'files')\n"
    "sys.exit(0 if ok else 1)\n";

static void expect_err(jade_status got, jade_status want, const char *path, const char *needle) {
  CHECK(got == want, "status %d, expected %d (%s)", (int)got, (int)want, jade_last_error());
  CHECK(strstr(jade_last_error(), path) != NULL, "message names '%s': %s", path,
        jade_last_error());
  CHECK(!needle || strstr(jade_last_error(), needle) != NULL, "message has '%s': %s",
        needle ? needle : "", jade_last_error());
  CHECK(strchr(jade_last_error(), '\n') == NULL, "one line: %s", jade_last_error());
}

int main(void) {
  test_dir_create("test_io_npy");
  char p[1024], q[1024];
  static const size_t shapes[4][4] = {{5}, {3, 7}, {2, 3, 5}, {2, 1, 3, 4}};
  char py_args[8192] = "";
  size_t py_len = 0;

  /* ---- round trips ---- */
  for (int t = 0; t < 5; t++) {
    jade_dtype dt = (jade_dtype)t;
    for (int nd = 1; nd <= 4; nd++) {
      const size_t *shape = shapes[nd - 1];
      size_t n = 1;
      for (int i = 0; i < nd; i++) n *= shape[i];
      size_t bytes = n * jade_dtype_size(dt);
      void *data = malloc(bytes);
      fill(dt, n, data);
      snprintf(p, sizeof p, "%s/rt_%d_%d.npy", test_dir, t, nd);
      CHECK_OK(jade_npy_write(p, dt, nd, shape, data));

      size_t fn;
      unsigned char *file = test_slurp(p, &fn);
      CHECK(file != NULL, "read back %s", p);
      size_t off = check_header(file, fn, dt, nd, shape);
      CHECK_GT(off, 0, "%s: header as NumPy writes it", p);
      CHECK(jade_test_gt_ok(off, 0) && fn == off + bytes && !memcmp(file + off, data, bytes),
            "%s: data bytes", p);
      free(file);

      jade_npy a, m;
      CHECK_OK(jade_npy_read(p, 1, &a));
      CHECK(a.dtype == dt && a.ndim == nd, "%s: dtype/ndim", p);
      for (int i = 0; i < nd; i++) CHECK(a.shape[i] == shape[i], "%s: shape[%d]", p, i);
      CHECK(jade_npy_count(&a) == n && !memcmp(a.data, data, bytes), "%s: read data", p);
      CHECK(((uintptr_t)a.data % 64) == 0, "read buffer aligned");
      CHECK_OK(jade_npy_map(p, &m));
      CHECK(m.dtype == dt && m.ndim == nd && jade_npy_count(&m) == n, "%s: map header", p);
      CHECK(!memcmp(m.data, a.data, bytes), "%s: map == read", p);
      CHECK(((uintptr_t)m.data % 64) == 0, "mapped data 64-byte aligned");
      jade_npy_release(&a);
      jade_npy_release(&m);
      CHECK(a.data == NULL && m.map_base == NULL, "release clears");
      free(data);

      char sh[64] = "";
      size_t k = 0;
      for (int i = 0; i < nd; i++) k += (size_t)snprintf(sh + k, sizeof sh - k, i ? "x%zu" : "%zu", shape[i]);
      py_len += (size_t)snprintf(py_args + py_len, sizeof py_args - py_len, " '%s#%s#%s'", p,
                                 descr_of(dt), sh);
    }
  }
  /* 0-d and empty arrays */
  {
    double v = 2.5;
    snprintf(p, sizeof p, "%s/scalar.npy", test_dir);
    CHECK_OK(jade_npy_write(p, JADE_F64, 0, NULL, &v));
    jade_npy a;
    CHECK_OK(jade_npy_read(p, 1, &a));
    CHECK(a.ndim == 0 && jade_npy_count(&a) == 1 && ((double *)a.data)[0] == 2.5, "scalar");
    jade_npy_release(&a);
    py_len += (size_t)snprintf(py_args + py_len, sizeof py_args - py_len, " '%s#<f8#'", p);
    size_t shp[2] = {0, 3};
    snprintf(p, sizeof p, "%s/empty.npy", test_dir);
    CHECK_OK(jade_npy_write(p, JADE_F32, 2, shp, NULL));
    CHECK_OK(jade_npy_map(p, &a));
    CHECK(a.ndim == 2 && a.shape[0] == 0 && a.shape[1] == 3 && jade_npy_count(&a) == 0, "empty");
    jade_npy_release(&a);
    py_len += (size_t)snprintf(py_args + py_len, sizeof py_args - py_len, " '%s#<f4#0x3'", p);
  }

  /* Python's own parser, when available (numpy itself is not needed) */
  if (system("python3 -c pass >/dev/null 2>&1") == 0) {
    snprintf(q, sizeof q, "%s/check.py", test_dir);
    test_write_bytes(q, py_script, strlen(py_script));
    char *cmd = malloc(sizeof py_args + 2048);
    sprintf(cmd, "python3 '%s'%s", q, py_args);
    int rc = system(cmd);
    CHECK(rc == 0, "python validation of the .npy files (rc %d)", rc);
    free(cmd);
    unlink(q);
  } else {
    printf("python3 not available: skipping Python validation\n");
  }

  /* ---- headers as other writers produce them ---- */
  {
    double d6[6] = {1, 2, 3, 4, 5, 6};
    jade_npy a;
    snprintf(p, sizeof p, "%s/old.npy", test_dir);
    /* NumPy < 1.24: 16-byte alignment; also other key order, double quotes, no final comma */
    write_raw(p, 1, "{\"shape\": (2, 3), \"fortran_order\": False, \"descr\": \"<f8\"}", 16, d6,
              sizeof d6);
    CHECK_OK(jade_npy_read(p, 1, &a));
    CHECK(a.dtype == JADE_F64 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3 &&
              !memcmp(a.data, d6, sizeof d6), "16-byte aligned header");
    jade_npy_release(&a);
    CHECK_OK(jade_npy_map(p, &a));
    CHECK(!memcmp(a.data, d6, sizeof d6), "map of 16-byte aligned header");
    jade_npy_release(&a);
    snprintf(p, sizeof p, "%s/v2.npy", test_dir);
    write_raw(p, 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (6,), }", 64, d6, sizeof d6);
    CHECK_OK(jade_npy_read(p, 0, &a));
    CHECK(a.ndim == 1 && a.shape[0] == 6 && !memcmp(a.data, d6, sizeof d6), "v2.0 header");
    jade_npy_release(&a);
    snprintf(p, sizeof p, "%s/v3.npy", test_dir);
    write_raw(p, 3, "{'descr': '|u1', 'fortran_order': False, 'shape': (3L, 2L), }", 64,
              "abcdef", 6);
    CHECK_OK(jade_npy_read(p, 0, &a));
    CHECK(a.dtype == JADE_U8 && a.shape[0] == 3 && a.shape[1] == 2 && !memcmp(a.data, "abcdef", 6),
          "v3.0 header, Python 2 longs");
    jade_npy_release(&a);
  }

  /* ---- errors ---- */
  {
    double d6[6] = {0};
    jade_npy a;
    memset(&a, 0x5a, sizeof a);
    snprintf(p, sizeof p, "%s/none.npy", test_dir);
    expect_err(jade_npy_read(p, 0, &a), JADE_ERR_IO, p, strerror(ENOENT));
    CHECK(a.data == NULL && a.map_base == NULL, "output cleared on failure");
    jade_npy_release(&a); /* safe on a failed read */
    expect_err(jade_npy_map(p, &a), JADE_ERR_IO, p, NULL);

    snprintf(p, sizeof p, "%s/short.npy", test_dir);
    test_write_bytes(p, "\x93NUM", 4);
    expect_err(jade_npy_read(p, 0, &a), JADE_ERR_FORMAT, p, "not a .npy");

    snprintf(p, sizeof p, "%s/magic.npy", test_dir);
    static const char zip[] = "PK\x03\x04 this is a zip file, not an npy file";
    test_write_bytes(p, zip, sizeof zip - 1);
    expect_err(jade_npy_read(p, 0, &a), JADE_ERR_FORMAT, p, "magic");

    snprintf(p, sizeof p, "%s/fortran.npy", test_dir);
    write_raw(p, 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", 64, d6, 48);
    expect_err(jade_npy_read(p, 0, &a), JADE_ERR_FORMAT, p, "Fortran");
    expect_err(jade_npy_map(p, &a), JADE_ERR_FORMAT, p, "Fortran");

    snprintf(p, sizeof p, "%s/bigend.npy", test_dir);
    write_raw(p, 1, "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 3), }", 64, d6, 48);
    expect_err(jade_npy_read(p, 0, &a), JADE_ERR_FORMAT, p, "big-endian");

    snprintf(p, sizeof p, "%s/i4.npy", test_dir);
    write_raw(p, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", 64, d6, 24);
    expect_err(jade_npy_read(p, 0, &a), JADE_ERR_FORMAT, p, "unsupported dtype '<i4'");

    snprintf(p, sizeof p, "%s/struct.npy", test_dir);
    write_raw(p, 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 64,
              d6, 8);
    expect_err(jade_npy_read(p, 0, &a), JADE_ERR_FORMAT, p, "structured");

    snprintf(p, sizeof p, "%s/nokey.npy", test_dir);
    write_raw(p, 1, "{'descr': '<f8', 'shape': (2, 3), }", 64, d6, 48);
    expect_err(jade_npy_read(p, 0, &a), JADE_ERR_FORMAT, p, "missing key 'fortran_order'");

    snprintf(p, sizeof p, "%s/garbled.npy", test_dir);
    write_raw(p, 1, "{'descr': '<f8' 'fortran_order': False, 'shape': (2, 3), }", 64, d6, 48);
    expect_err(jade_npy_read(p, 0, &a), JADE_ERR_FORMAT, p, "garbled");

    snprintf(p, sizeof p, "%s/garbled2.npy", test_dir);
    write_raw(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, -3), }", 64, d6, 48);
    expect_err(jade_npy_read(p, 0, &a), JADE_ERR_FORMAT, p, "garbled");

    snprintf(p, sizeof p, "%s/extra.npy", test_dir);
    write_raw(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (6,), 'x': 1}", 64, d6, 48);
    expect_err(jade_npy_read(p, 0, &a), JADE_ERR_FORMAT, p, "unexpected key 'x'");

    snprintf(p, sizeof p, "%s/version.npy", test_dir);
    write_raw(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (6,), }", 64, d6, 48);
    {
      size_t fn;
      unsigned char *b = test_slurp(p, &fn);
      b[6] = 4;
      test_write_bytes(p, b, fn);
      free(b);
    }
    expect_err(jade_npy_read(p, 0, &a), JADE_ERR_FORMAT, p, "version 4.0");

    /* truncated header: header length says more than the file holds */
    snprintf(p, sizeof p, "%s/trunchdr.npy", test_dir);
    static const char th[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f8', 'fortr";
    test_write_bytes(p, th, sizeof th - 1);
    expect_err(jade_npy_read(p, 0, &a), JADE_ERR_FORMAT, p, "truncated .npy header");

    /* truncated data */
    size_t shp[2] = {2, 3};
    snprintf(p, sizeof p, "%s/trunc.npy", test_dir);
    CHECK_OK(jade_npy_write(p, JADE_F64, 2, shp, d6));
    struct stat st;
    CHECK(stat(p, &st) == 0, "stat");
    CHECK(truncate(p, st.st_size - 8) == 0, "truncate");
    expect_err(jade_npy_read(p, 0, &a), JADE_ERR_FORMAT, p,
               "truncated (expected 48 bytes of data, found 40)");
    expect_err(jade_npy_map(p, &a), JADE_ERR_FORMAT, p, "truncated");

    /* trailing garbage */
    snprintf(p, sizeof p, "%s/trail.npy", test_dir);
    CHECK_OK(jade_npy_write(p, JADE_F64, 2, shp, d6));
    FILE *f = fopen(p, "ab");
    fputs("junk", f);
    fclose(f);
    expect_err(jade_npy_read(p, 0, &a), JADE_ERR_FORMAT, p, "unexpected bytes");

    /* bad arguments */
    snprintf(p, sizeof p, "%s/bad.npy", test_dir);
    expect_err(jade_npy_write(p, (jade_dtype)9, 2, shp, d6), JADE_ERR_INVALID, p, "dtype");
    expect_err(jade_npy_write(p, JADE_F64, 9, shp, d6), JADE_ERR_INVALID, p, "ndim");
    expect_err(jade_npy_write(p, JADE_F64, 2, shp, NULL), JADE_ERR_INVALID, p, "NULL");
    CHECK(access(p, F_OK) != 0, "nothing written on bad arguments");
  }

  /* ---- NaN / Inf ---- */
  {
    float f6[6] = {1, 2, 3, 4, 5, NAN};
    size_t shp[2] = {2, 3};
    jade_npy a;
    snprintf(p, sizeof p, "%s/nan.npy", test_dir);
    CHECK_OK(jade_npy_write(p, JADE_F32, 2, shp, f6));
    expect_err(jade_npy_read(p, 1, &a), JADE_ERR_NUMERIC, p, "element (1, 2) is NaN");
    CHECK(a.data == NULL, "no data after NaN error");
    CHECK_OK(jade_npy_read(p, 0, &a));
    CHECK(isnan(((float *)a.data)[5]), "NaN kept without the check");
    jade_npy_release(&a);
    CHECK_OK(jade_npy_map(p, &a));
    jade_npy_release(&a);
    double d4[4] = {0, -INFINITY, 1, 2};
    size_t n4 = 4;
    snprintf(p, sizeof p, "%s/inf.npy", test_dir);
    CHECK_OK(jade_npy_write(p, JADE_F64, 1, &n4, d4));
    expect_err(jade_npy_read(p, 1, &a), JADE_ERR_NUMERIC, p, "element (1,) is Inf");
    int64_t i4[4] = {0, -1, INT64_MAX, INT64_MIN};
    snprintf(p, sizeof p, "%s/int.npy", test_dir);
    CHECK_OK(jade_npy_write(p, JADE_I64, 1, &n4, i4));
    CHECK_OK(jade_npy_read(p, 1, &a)); /* finiteness does not apply to integers */
    CHECK(!memcmp(a.data, i4, sizeof i4), "i64 extremes");
    jade_npy_release(&a);
  }

  /* ---- preallocated writer over two sessions ---- */
  {
    size_t shp[3] = {6, 2, 3};
    float all[36], row[6 * 2];
    for (int i = 0; i < 36; i++) all[i] = (float)(i + 1) * 0.25f;
    snprintf(p, sizeof p, "%s/ds.npy", test_dir);
    jade_npy_writer *w;
    expect_err(jade_npy_writer_open(p, JADE_F32, 3, shp, 0, &w), JADE_ERR_IO, p, NULL);
    CHECK(w == NULL && access(p, F_OK) != 0, "create=0 creates nothing");
    CHECK_OK(jade_npy_writer_open(p, JADE_F32, 3, shp, 1, &w));
    CHECK_OK(jade_npy_writer_put_rows(w, 4, 1, all + 4 * 6));
    CHECK_OK(jade_npy_writer_put_rows(w, 0, 2, all));
    expect_err(jade_npy_writer_put_rows(w, 5, 2, all), JADE_ERR_INVALID, p, "out of range");
    expect_err(jade_npy_writer_put_rows(w, 7, 0, all), JADE_ERR_INVALID, p, "out of range");
    CHECK_OK(jade_npy_writer_close(w));
    CHECK(test_count_tmp(test_dir) == 0, "no temporary after creating the dataset");

    jade_npy a;
    CHECK_OK(jade_npy_read(p, 1, &a)); /* full-size, valid file after session 1 */
    const float *x = a.data;
    for (int r = 0; r < 6; r++)
      for (int k = 0; k < 6; k++) {
        float want = (r == 0 || r == 1 || r == 4) ? all[r * 6 + k] : 0.0f;
        CHECK(x[r * 6 + k] == want, "session 1 row %d elem %d: %g vs %g", r, k, x[r * 6 + k],
              want);
      }
    jade_npy_release(&a);
    size_t fn;
    unsigned char *b = test_slurp(p, &fn);
    CHECK_GT(check_header(b, fn, JADE_F32, 3, shp), 0, "writer header as NumPy writes it");
    free(b);

    /* mismatching reopen */
    size_t bad[3] = {6, 2, 4};
    expect_err(jade_npy_writer_open(p, JADE_F32, 3, bad, 1, &w), JADE_ERR_FORMAT, p,
               "existing file has dtype <f4 and shape (6, 2, 3), expected <f4 and (6, 2, 4)");
    expect_err(jade_npy_writer_open(p, JADE_F64, 3, shp, 0, &w), JADE_ERR_FORMAT, p, "<f8");
    size_t bad2[2] = {6, 6};
    expect_err(jade_npy_writer_open(p, JADE_F32, 2, bad2, 0, &w), JADE_ERR_FORMAT, p, "(6, 6)");

    /* session 2: the rest, reopened with create=1 (must not wipe session 1) */
    CHECK_OK(jade_npy_writer_open(p, JADE_F32, 3, shp, 1, &w));
    CHECK_OK(jade_npy_writer_put_rows(w, 5, 1, all + 5 * 6));
    memcpy(row, all + 2 * 6, sizeof row);
    CHECK_OK(jade_npy_writer_put_rows(w, 2, 2, row));
    CHECK_OK(jade_npy_writer_put_rows(w, 3, 0, NULL));
    CHECK_OK(jade_npy_writer_close(w));
    CHECK_OK(jade_npy_read(p, 1, &a));
    CHECK(!memcmp(a.data, all, sizeof all), "dataset complete after two sessions");
    jade_npy_release(&a);
    CHECK_OK(jade_npy_writer_close(NULL));

    /* a truncated dataset is refused on reopen */
    struct stat st;
    CHECK(stat(p, &st) == 0 && truncate(p, st.st_size - 4) == 0, "truncate dataset");
    expect_err(jade_npy_writer_open(p, JADE_F32, 3, shp, 1, &w), JADE_ERR_FORMAT, p, "truncated");
    expect_err(jade_npy_writer_open(p, JADE_F32, 0, shp, 1, &w), JADE_ERR_INVALID, p, "ndim");
  }

  /* ---- float16: conversions (IEEE 754 binary16) and jade_npy_to_f32 ---- */
  {
    /* every finite half survives f16 -> f32 -> f16, and f16 -> f32 is monotone */
    long bad = 0;
    for (uint32_t h = 0; h < 0x10000u; h++) {
      float f = jade_f16_to_f32((uint16_t)h);
      if ((h & 0x7c00u) == 0x7c00u) {
        if ((h & 0x3ffu) ? !isnan(f) : !isinf(f)) bad++;
        continue;
      }
      if (jade_f32_to_f16(f) != h && !(f == 0.0f && (h & 0x7fffu) == 0 && jade_f32_to_f16(f) == h)) bad++;
      if ((h & 0x7fffu) < 0x7bffu && !(jade_f16_to_f32((uint16_t)(h + 1)) != f)) bad++;
    }
    CHECK(bad == 0, "f16 round trip and monotonicity: %ld failures", bad);
    CHECK(jade_f16_to_f32(0x3c00) == 1.0f && jade_f16_to_f32(0x7bff) == 65504.0f &&
              jade_f16_to_f32(0x0001) == ldexpf(1.0f, -24) && jade_f16_to_f32(0x0400) == ldexpf(1.0f, -14) &&
              jade_f16_to_f32(0xc000) == -2.0f,
          "f16 decoding of 1, max, smallest subnormal/normal, -2");
    /* f32 -> f16 is the nearest half (ties to even mantissa), checked against the two
     * neighbouring halves for 2^20 floats spread over the whole binary16 range */
    long far = 0, tie = 0;
    for (uint32_t k = 0; k < (1u << 20); k++) {
      uint32_t u = 0x33000000u + k * (uint32_t)((0x47800000u - 0x33000000u) >> 20) + (k * 2654435761u & 0xfffu);
      float x;
      memcpy(&x, &u, 4);
      uint16_t h = jade_f32_to_f16(x);
      double v = jade_f16_to_f32(h), d = fabs(v - x);
      double lo = h > 0 ? jade_f16_to_f32((uint16_t)(h - 1)) : -1.0, hi = jade_f16_to_f32((uint16_t)(h + 1));
      if (h == 0x7c00u) { /* Inf only at or beyond 65520 = 65504 + half an ulp (32) */
        if (x < 65520.0f) far++;
        continue;
      }
      if (fabs(lo - x) < d || fabs(hi - x) < d) far++;
      if ((fabs(lo - x) == d || fabs(hi - x) == d) && (h & 1u)) tie++;
      if (jade_f32_to_f16(-x) != (h | 0x8000u)) far++;
    }
    CHECK(far == 0 && tie == 0, "f32 -> f16 nearest, ties to even: %ld not nearest, %ld odd ties", far, tie);
    CHECK(jade_f32_to_f16(65519.0f) == 0x7bff && jade_f32_to_f16(65520.0f) == 0x7c00 &&
              jade_f32_to_f16(ldexpf(1.0f, -25)) == 0 && jade_f32_to_f16(ldexpf(1.5f, -25)) == 1 &&
              jade_f32_to_f16(ldexpf(3.0f, -25)) == 2 && jade_f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3c00 &&
              jade_f32_to_f16(1.0f + ldexpf(3.0f, -11)) == 0x3c02 && isnan(jade_f16_to_f32(jade_f32_to_f16(NAN))),
          "f16 rounding edge cases (overflow, subnormal ties, normal ties, NaN)");

    /* an f16 file converts to f32 (mapped and read), NaN/Inf in f16 data are refused */
    float src[6] = {0.0123f, -0.5f, 1e-6f, 3.0f, -0.0071f, 100.25f};
    uint16_t hsrc[6];
    jade_f32_to_f16_array(hsrc, src, 6);
    size_t sh2[2] = {2, 3};
    snprintf(p, sizeof p, "%s/half.npy", test_dir);
    CHECK_OK(jade_npy_write(p, JADE_F16, 2, sh2, hsrc));
    for (int mapped = 0; mapped < 2; mapped++) {
      jade_npy a;
      if (mapped)
        CHECK_OK(jade_npy_map(p, &a));
      else
        CHECK_OK(jade_npy_read(p, 1, &a));
      CHECK(a.dtype == JADE_F16, "f16 dtype read");
      CHECK_OK(jade_npy_to_f32(p, &a));
      CHECK(a.dtype == JADE_F32 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3 && !a.map_base, "converted header");
      for (int i = 0; i < 6; i++)
        CHECK(fabsf(((float *)a.data)[i] - src[i]) <= fabsf(src[i]) * ldexpf(1.0f, -11) + ldexpf(1.0f, -25),
              "f16 value %d: %g vs %g", i, ((float *)a.data)[i], src[i]);
      jade_npy_release(&a);
    }
    hsrc[4] = 0x7c00; /* +Inf */
    CHECK_OK(jade_npy_write(p, JADE_F16, 2, sh2, hsrc));
    jade_npy a;
    expect_err(jade_npy_read(p, 1, &a), JADE_ERR_NUMERIC, p, "Inf");
    CHECK_OK(jade_npy_map(p, &a));
    expect_err(jade_npy_to_f32(p, &a), JADE_ERR_NUMERIC, p, "Inf");
    jade_npy_release(&a);
  }

  /* ---- failures leave nothing behind ---- */
  {
    double d = 1;
    size_t one = 1;
    snprintf(q, sizeof q, "%s/nodir", test_dir);
    snprintf(p, sizeof p, "%s/nodir/x.npy", test_dir);
    expect_err(jade_npy_write(p, JADE_F64, 1, &one, &d), JADE_ERR_IO, p, strerror(ENOENT));
    jade_npy_writer *w = (jade_npy_writer *)&d;
    expect_err(jade_npy_writer_open(p, JADE_F64, 1, &one, 1, &w), JADE_ERR_IO, p,
               strerror(ENOENT));
    CHECK(w == NULL, "writer NULL on failure");
    CHECK(access(q, F_OK) != 0, "no directory created");
    CHECK(test_count_tmp(test_dir) == 0, "no temporaries left in %s", test_dir);
  }

  TEST_RETURN();
}
