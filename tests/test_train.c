/* safetensors round trip and corrupt-file errors, prior moments (against the paper's
 * normalisation constants), model checkpoint round trip.
 *
 * Also a helper for tests/test_train_sample.sh:
 *   test_train --compare A.safetensors B.safetensors ATOL
 * prints the largest absolute difference over all F32 tensors of two files with the same
 * tensors and exits 1 if it exceeds ATOL.
 * and for tests/test_train_augment.sh:
 *   test_train --npy-edit MODE IN.npy OUT.npy
 * rewrites a (N, C, n, n) kappa.npy: f32 (float16 or float32 in, float32 out, values exact),
 * transpose-sym (k -> (k + k^T) / 2, exactly symmetric), const (every map set to its first
 * pixel). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jade/io.h"
#include "jade/safetensors.h"
#include "jade/train.h"
#include "test_util.h"

static int compare(const char *a, const char *b, double atol) {
  jade_safetensors *A, *B;
  if (jade_safetensors_read(a, &A) || jade_safetensors_read(b, &B)) {
    fprintf(stderr, "compare: %s\n", jade_last_error());
    return 2;
  }
  if (jade_safetensors_count(A) != jade_safetensors_count(B)) {
    fprintf(stderr, "compare: different tensor counts\n");
    return 1;
  }
  double worst = 0, scale = 0;
  const char *where = "";
  for (int i = 0; i < jade_safetensors_count(A); i++) {
    const jade_st_tensor *ta = jade_safetensors_tensor(A, i), *tb = jade_safetensors_find(B, ta->name);
    if (!tb || ta->dtype != JADE_F32 || tb->dtype != JADE_F32 || ta->ndim != tb->ndim) {
      fprintf(stderr, "compare: tensor %s differs in presence/dtype/shape\n", ta->name);
      return 1;
    }
    size_t n = 1;
    for (int d = 0; d < ta->ndim; d++) {
      if (ta->shape[d] != tb->shape[d]) {
        fprintf(stderr, "compare: tensor %s shapes differ\n", ta->name);
        return 1;
      }
      n *= ta->shape[d];
    }
    for (size_t k = 0; k < n; k++) {
      float x, y;
      memcpy(&x, (const char *)ta->data + 4 * k, 4);
      memcpy(&y, (const char *)tb->data + 4 * k, 4);
      double dlt = fabs((double)x - (double)y);
      jade_test_max_err(&scale, fabs(x));
      if (jade_test_max_err(&worst, dlt)) where = ta->name;
    }
  }
  printf("max |difference| %.3g (in %s; largest |weight| %.3g)\n", worst, where, scale);
  jade_safetensors_free(A);
  jade_safetensors_free(B);
  return jade_test_le_ok(worst, atol) ? 0 : 1;
}

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) exit(2);
  fwrite(data, 1, n, f);
  fclose(f);
}

static unsigned char *read_bytes(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) exit(2);
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  rewind(f);
  unsigned char *b = malloc(*n + 1);
  if (fread(b, 1, *n, f) != *n) exit(2);
  fclose(f);
  return b;
}

/* A file with a hand-written header: 8-byte length + header + data bytes. */
static void write_raw(const char *path, const char *header, size_t data_bytes) {
  size_t hl = strlen(header);
  unsigned char *b = calloc(1, 8 + hl + data_bytes);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(b + 8, header, hl);
  write_bytes(path, b, 8 + hl + data_bytes);
  free(b);
}

static void expect_fail(const char *path, const char *what, const char *needle) {
  jade_safetensors *st = NULL;
  jade_status s = jade_safetensors_read(path, &st);
  CHECK(s != JADE_OK, "%s: corrupt file accepted", what);
  if (s != JADE_OK) {
    const char *msg = jade_last_error();
    CHECK(strstr(msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, msg, needle);
    CHECK(strchr(msg, '\n') == NULL, "%s: message not one line", what);
    printf("  %-26s -> %s\n", what, msg);
  }
  jade_safetensors_free(st);
}

static void test_safetensors(const char *dir) {
  char path[512], bad[600];
  snprintf(path, sizeof path, "%s/a.safetensors", dir);
  snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
  float w[6] = {1, -2, 3.5f, 4, 5, 1e-30f};
  double dd[3] = {0.1, -0.2, 1e300};
  unsigned char u[3] = {1, 2, 3};
  float scalar = 7;
  jade_st_tensor t[4] = {{"blocks.0.w", JADE_F32, 2, {2, 3}, w},
                         {"d", JADE_F64, 1, {3}, dd},
                         {"u8 with \"quote\"", JADE_U8, 1, {3}, u},
                         {"s", JADE_F32, 0, {0}, &scalar}};
  const char *cfgtext = "a = 1\n[train]\nb = \"x\\y\"\ttab\n\x01 ctrl \xc3\xa9";
  jade_st_meta meta[2] = {{"format", "test"}, {"config", cfgtext}};
  CHECK_OK(jade_safetensors_write(path, t, 4, meta, 2));
  jade_safetensors *st;
  CHECK_OK(jade_safetensors_read(path, &st));
  CHECK(jade_safetensors_count(st) == 4, "count %d", jade_safetensors_count(st));
  CHECK(!strcmp(jade_safetensors_meta(st, "config"), cfgtext), "metadata round trip: '%s'", jade_safetensors_meta(st, "config"));
  CHECK(jade_safetensors_meta(st, "nope") == NULL, "missing meta");
  float back[6];
  size_t sh[2] = {2, 3};
  CHECK_OK(jade_safetensors_copy_f32(st, "blocks.0.w", 2, sh, back));
  CHECK(!memcmp(back, w, sizeof w), "F32 data round trip");
  const jade_st_tensor *td = jade_safetensors_find(st, "d");
  CHECK(td && td->dtype == JADE_F64 && td->ndim == 1 && td->shape[0] == 3 && !memcmp(td->data, dd, sizeof dd), "F64 round trip");
  const jade_st_tensor *tu = jade_safetensors_find(st, "u8 with \"quote\"");
  CHECK(tu && tu->dtype == JADE_U8 && !memcmp(tu->data, u, 3), "U8 + escaped name round trip");
  const jade_st_tensor *ts = jade_safetensors_find(st, "s");
  CHECK(ts && ts->ndim == 0, "scalar");
  size_t wrong[2] = {3, 2};
  CHECK(jade_safetensors_copy_f32(st, "blocks.0.w", 2, wrong, back) == JADE_ERR_FORMAT, "shape mismatch accepted");
  printf("  %-26s -> %s\n", "shape mismatch", jade_last_error());
  CHECK(jade_safetensors_copy_f32(st, "d", 1, (size_t[]){3}, back) == JADE_ERR_FORMAT, "dtype mismatch accepted");
  CHECK(jade_safetensors_copy_f32(st, "missing", 1, (size_t[]){3}, back) == JADE_ERR_FORMAT, "missing tensor accepted");
  jade_safetensors_free(st);

  /* header padding: data starts 8-byte aligned */
  size_t n;
  unsigned char *b = read_bytes(path, &n);
  uint64_t hl = 0;
  for (int i = 0; i < 8; i++) hl |= (uint64_t)b[i] << (8 * i);
  CHECK((8 + hl) % 8 == 0, "data offset %llu not aligned", (unsigned long long)(8 + hl));

  /* corruptions */
  write_bytes(bad, b, n - 1);
  expect_fail(bad, "truncated by one byte", "truncated");
  write_bytes(bad, b, 5);
  expect_fail(bad, "5-byte file", "too short");
  unsigned char *c = malloc(n);
  memcpy(c, b, n);
  c[7] = 0x40;
  write_bytes(bad, c, n);
  expect_fail(bad, "huge header length", "header length");
  memcpy(c, b, n);
  c[8] = '[';
  write_bytes(bad, c, n);
  expect_fail(bad, "header not an object", "does not start with '{'");
  memcpy(c, b, n);
  c[8 + hl / 2] = '\x01';
  write_bytes(bad, c, n);
  expect_fail(bad, "garbage in header", "corrupt safetensors header");
  write_bytes(bad, "hello world, this is not a model file at all", 44);
  expect_fail(bad, "text file", "not a safetensors file");
  free(c);
  free(b);
  write_raw(bad, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12);
  expect_fail(bad, "shape vs offsets", "data_offsets span");
  write_raw(bad, "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4);
  expect_fail(bad, "unsupported dtype", "unsupported dtype");
  write_raw(bad, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
  expect_fail(bad, "hole", "hole");
  write_raw(bad, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
  expect_fail(bad, "overlap", "overlap");
  write_raw(bad, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
  expect_fail(bad, "duplicate name", "twice");
  write_raw(bad, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8);
  expect_fail(bad, "data shorter than offsets", "truncated");
  write_raw(bad, "{\"__metadata__\":{\"k\":1}}", 0);
  expect_fail(bad, "non-string metadata", "must be strings");
  write_raw(bad, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4);
  expect_fail(bad, "negative shape", "bad shape");
  write_raw(bad, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4);
  expect_fail(bad, "trailing bytes", "trailing");
  /* valid minimal files */
  write_raw(bad, "{}      ", 0);
  jade_safetensors *e = NULL;
  CHECK(jade_safetensors_read(bad, &e) == JADE_OK && jade_safetensors_count(e) == 0, "empty file: %s", jade_last_error());
  jade_safetensors_free(e);
  /* a NaN in F32 data is refused by copy_f32 */
  float nanv[2] = {1, NAN};
  jade_st_tensor tn = {"x", JADE_F32, 1, {2}, nanv};
  CHECK_OK(jade_safetensors_write(bad, &tn, 1, NULL, 0));
  CHECK_OK(jade_safetensors_read(bad, &e));
  CHECK(jade_safetensors_copy_f32(e, "x", 1, (size_t[]){2}, nanv) == JADE_ERR_NUMERIC, "NaN accepted");
  jade_safetensors_free(e);
  /* the writer refuses bad input and leaves nothing behind */
  char nothing[600];
  snprintf(nothing, sizeof nothing, "%s/none.safetensors", dir);
  jade_st_tensor dup[2] = {{"x", JADE_F32, 1, {1}, w}, {"x", JADE_F32, 1, {1}, w}};
  CHECK(jade_safetensors_write(nothing, dup, 2, NULL, 0) == JADE_ERR_INVALID, "duplicate names written");
  CHECK(access(nothing, F_OK) != 0, "file left after a refused write");
  unlink(path);
  unlink(bad);
}

static void test_prior_moments(void) {
  /* The paper's THETA_MEAN / THETA_STD (jade/init.py) are the moments of the sbi_lens prior
   * (jade_paper_config.md section 3); our configs use the same priors. */
  jade_prior1d oc = {JADE_PRIOR_TRUNCNORMAL, 0.2664, 0.2, 0.0, INFINITY};
  jade_prior1d w0 = {JADE_PRIOR_TRUNCNORMAL, -1.0, 0.9, -2.0, -0.3};
  jade_prior1d ob = {JADE_PRIOR_NORMAL, 0.0492, 0.006, 0, 0};
  jade_prior1d un = {JADE_PRIOR_UNIFORM, 0, 0, 1, 3};
  double m, s;
  jade_prior_moments(&oc, &m, &s);
  CHECK_CLOSE(m, 0.30303165, 3e-3);
  CHECK_CLOSE(s, 0.17090547, 5e-3);
  jade_prior_moments(&w0, &m, &s);
  CHECK_CLOSE(m, -1.1082776, 1e-2);
  CHECK_CLOSE(s, 0.46022922, 2e-2);
  jade_prior_moments(&ob, &m, &s);
  CHECK(m == 0.0492 && s == 0.006, "normal moments");
  jade_prior_moments(&un, &m, &s);
  CHECK_CLOSE(m, 2.0, 1e-15);
  CHECK_CLOSE(s, 2.0 / sqrt(12.0), 1e-15);
}

static void test_model_checkpoint(const char *dir) {
  jade_model_config mc;
  memset(&mc, 0, sizeof mc);
  mc.img_size = 16;
  mc.channels = 2;
  mc.cond_channels = 2;
  mc.patch = 4;
  mc.depth = 2;
  mc.width = 32;
  mc.heads = 2;
  mc.n_cosmo_tokens = 2;
  mc.n_params = JADE_N_THETA;
  mc.bottleneck = 16;
  mc.time_freq = 32;
  mc.max_period = 1e4f;
  mc.rope_theta = 1e4f;
  mc.norm_eps = 1e-6f;
  CHECK_OK(jade_model_config_check(&mc));
  jade_model *m;
  CHECK_OK(jade_model_create(&m, &mc));
  jade_model_init(m, 5);
  float *p = jade_model_params(m);
  size_t n = jade_model_num_params(m);
  for (int k = 0; k < jade_model_num_tensors(m); k++) { /* non-zero heads too (padding stays 0) */
    const jade_tensor_info *ti = jade_model_tensor(m, k);
    for (size_t i = 0; i < ti->numel; i++) p[ti->offset + i] += 1e-3f * (float)(i % 7);
  }
  jade_norm norm;
  memset(&norm, 0, sizeof norm);
  norm.n_bins = 2;
  norm.n_pix = 16;
  norm.size_deg = 5;
  for (int i = 0; i < JADE_N_THETA; i++) {
    norm.theta_mean[i] = 0.1 * i + 1.0 / 3.0;
    norm.theta_std[i] = 0.01 + i;
  }
  norm.map_std[0] = 0.0123456789012345;
  norm.map_std[1] = 0.02;
  norm.noise[0] = 0.05;
  norm.noise[1] = 0.06;
  jade_flow_config fc;
  jade_flow_config_default(&fc);
  char path[512];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  CHECK_OK(jade_checkpoint_write_model(path, m, NULL, &norm, &fc, 123, "x = 1\n"));
  jade_trained_model *tm;
  CHECK_OK(jade_trained_model_load(dir, &tm));
  CHECK(tm->step == 123, "step");
  CHECK(!memcmp(jade_model_params(tm->model), p, n * sizeof(float)), "weights round trip");
  CHECK(!memcmp(tm->norm.theta_mean, norm.theta_mean, sizeof norm.theta_mean) &&
            !memcmp(tm->norm.map_std, norm.map_std, 2 * sizeof(double)) && tm->norm.size_deg == 5,
        "normalisation round trip exact");
  CHECK(tm->flow.t_eps == fc.t_eps && !strcmp(tm->config_text, "x = 1\n"), "flow/config round trip");
  const jade_model_config *c2 = jade_model_get_config(tm->model);
  CHECK(c2->depth == 2 && c2->width == 32 && c2->patch == 4 && c2->bottleneck == 16, "model config round trip");
  { /* F16 copy: every weight within half an F16 spacing (relative 2^-11 for normal halves,
       absolute 2^-25 below 2^-14), metadata unchanged; a weight beyond 65504 is refused */
    char ph[600];
    snprintf(ph, sizeof ph, "%s/half.safetensors", dir);
    double err = -1;
    CHECK_OK(jade_trained_model_write(tm, ph, JADE_F16, &err));
    CHECK(err >= 0 && err <= 0x1p-11, "reported F16 rounding %g", err);
    jade_trained_model *th;
    CHECK_OK(jade_trained_model_load(ph, &th));
    const float *wh = jade_model_params(th->model);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
      const double bound = fabs((double)p[i]) >= 0x1p-14 ? 0x1p-11 * fabs((double)p[i]) : 0x1p-25;
      const double e = fabs((double)wh[i] - p[i]) / bound;
      if (!(e <= worst)) worst = e; /* NaN propagates */
    }
    CHECK(worst <= 1.0, "F16 weights: worst error / bound %g", worst);
    CHECK(th->step == 123 && !memcmp(th->norm.map_std, norm.map_std, 2 * sizeof(double)) &&
              !strcmp(th->config_text, "x = 1\n"),
          "F16 file metadata round trip");
    jade_trained_model_free(th);
    unlink(ph);
    float *w0 = jade_model_params(tm->model);
    const float keep = w0[3];
    w0[3] = 1e5f;
    CHECK(jade_trained_model_write(tm, ph, JADE_F16, NULL) == JADE_ERR_NUMERIC, "1e5 written as F16");
    printf("  %-26s -> %s\n", "weight beyond F16", jade_last_error());
    CHECK(access(ph, F_OK) != 0, "refused F16 file left behind");
    w0[3] = keep;
  }
  jade_trained_model_free(tm);
  /* a model file with a tensor missing is refused */
  jade_safetensors *sf;
  CHECK_OK(jade_safetensors_read(path, &sf));
  int nt = jade_safetensors_count(sf);
  jade_st_tensor *t = malloc((size_t)nt * sizeof *t);
  jade_st_meta *mm = malloc((size_t)jade_safetensors_meta_count(sf) * sizeof *mm);
  for (int i = 0; i < nt; i++) t[i] = *jade_safetensors_tensor(sf, i);
  for (int i = 0; i < jade_safetensors_meta_count(sf); i++) jade_safetensors_meta_at(sf, i, &mm[i].key, &mm[i].value);
  char p2[600];
  snprintf(p2, sizeof p2, "%s/missing.safetensors", dir);
  CHECK_OK(jade_safetensors_write(p2, t + 1, nt - 1, mm, jade_safetensors_meta_count(sf)));
  CHECK(jade_trained_model_load(p2, &tm) == JADE_ERR_FORMAT, "model with a missing tensor loaded");
  printf("  %-26s -> %s\n", "model missing a tensor", jade_last_error());
  free(t);
  free(mm);
  jade_safetensors_free(sf);
  unlink(p2);
  unlink(path);
  jade_model_free(m);
}

static int npy_edit(const char *mode, const char *in, const char *out) {
  jade_npy a;
  if (jade_npy_read(in, 1, &a) || jade_npy_to_f32(in, &a) || a.ndim != 4 || a.shape[2] != a.shape[3]) {
    fprintf(stderr, "%s: %s\n", in, a.ndim != 4 ? "expected (N, C, n, n)" : jade_last_error());
    return 2;
  }
  const size_t nm = a.shape[0] * a.shape[1], n = a.shape[2];
  float *k = a.data;
  for (size_t m = 0; m < nm; m++) {
    float *x = k + m * n * n;
    if (!strcmp(mode, "transpose-sym")) {
      for (size_t y = 0; y < n; y++)
        for (size_t i = y + 1; i < n; i++) x[y * n + i] = x[i * n + y] = (x[y * n + i] + x[i * n + y]) * 0.5f;
    } else if (!strcmp(mode, "const")) {
      for (size_t i = 1; i < n * n; i++) x[i] = x[0];
    } else if (strcmp(mode, "f32")) {
      fprintf(stderr, "unknown mode %s\n", mode);
      return 2;
    }
  }
  int rc = jade_npy_write(out, JADE_F32, 4, a.shape, a.data) != JADE_OK;
  jade_npy_release(&a);
  return rc;
}

/* Every element of B (float32 from float16) is the float32 element of A rounded to float16:
 * |a - b| <= 2^-11 |a| + 2^-25 (half an ulp, subnormal spacing 2^-24), and B is exactly
 * representable in float16. */
static int npy_close(const char *pa, const char *pb) {
  jade_npy a, b;
  if (jade_npy_read(pa, 1, &a) || jade_npy_read(pb, 1, &b) || a.dtype != JADE_F32 || b.dtype != JADE_F32 ||
      jade_npy_count(&a) != jade_npy_count(&b)) {
    fprintf(stderr, "npy-close: %s\n", jade_last_error());
    return 2;
  }
  const float *x = a.data, *y = b.data;
  size_t n = jade_npy_count(&a), bad = 0;
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)x[i] - y[i]), r = d / (fabs(x[i]) + 1e-30);
    if (!(d <= ldexp(fabs(x[i]), -11) + ldexp(1.0, -25)) || jade_f16_to_f32(jade_f32_to_f16(y[i])) != y[i]) bad++;
    if (fabs(x[i]) > 1e-4 && r > worst) worst = r;
  }
  printf("float16 maps: %zu values, largest relative rounding error %.3g (bound 2^-11 = %.3g), %zu outside\n", n,
         worst, ldexp(1.0, -11), bad);
  jade_npy_release(&a);
  jade_npy_release(&b);
  return bad != 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && !strcmp(argv[1], "--npy-close")) return npy_close(argv[2], argv[3]);
  if (argc == 5 && !strcmp(argv[1], "--compare")) return compare(argv[2], argv[3], atof(argv[4]));
  if (argc == 5 && !strcmp(argv[1], "--npy-edit")) return npy_edit(argv[2], argv[3], argv[4]);
  char dir[] = "/tmp/jade_test_train_XXXXXX";
  if (!mkdtemp(dir)) return 2;
  test_safetensors(dir);
  test_prior_moments();
  test_model_checkpoint(dir);
  rmdir(dir);
  TEST_RETURN();
}
