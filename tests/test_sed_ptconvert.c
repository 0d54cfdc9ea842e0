/* jade sed convert-pt: the restricted torch.save reader (jade/torchpt.h) and the pop-cosmos
 * population-model converter, on fake .pt files written without PyTorch by
 * tests/data/popcosmos/make_fake_pt.py (pickle with fake torch / flowfusion / pop_cosmos
 * modules, zip with stored entries). Checks: every tensor and scalar read and converted equals
 * the script's values exactly (float32 and float64 storages, a transposed view, views sharing
 * one storage, 0-d tensors), scores of the saved-and-reloaded jade model equal the script's
 * plain-math scores (no_sigma True and False), and bad files fail with a clear message:
 * truncated, compressed entry, missing tensor, storage shorter than the tensor, unknown
 * opcode, unsupported SDE / activation, CRC mismatch, and every single-byte mutation of
 * data.pkl (with the CRC patched) fails cleanly or parses (never crashes). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jade/safetensors.h"
#include "jade/sed.h"
#include "jade/torchpt.h"
#include "test_util.h"

/* abort on the first failure (later steps use what failed) */
#define REQ(cond, ...)                                                       \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: failed: %s: ", __FILE__, __LINE__, #cond);    \
      fprintf(stderr, __VA_ARGS__);                                          \
      fprintf(stderr, "\n");                                                 \
      exit(1);                                                               \
    }                                                                        \
  } while (0)

static char dir[512], tmpdir[600];

typedef struct {
  char name[64];
  int ndim;
  size_t shape[4];
  size_t n;
  double *v;
} ex_tensor;

typedef struct {
  ex_tensor t[16];
  int nt;
  char sname[16][32];
  double sval[16];
  int ns;
  double st[8], sx[8][16], ss[8][16];
  int np;
} expected;

static void read_expected(const char *path, expected *e) {
  memset(e, 0, sizeof *e);
  FILE *f = fopen(path, "r");
  REQ(f, "%s", path);
  char kind[16];
  while (fscanf(f, "%15s", kind) == 1) {
    if (kind[0] == '#') {
      int c;
      while ((c = fgetc(f)) != '\n' && c != EOF) {}
    } else if (!strcmp(kind, "tensor")) {
      ex_tensor *t = &e->t[e->nt++];
      REQ(fscanf(f, "%63s %d", t->name, &t->ndim) == 2, "-");
      t->n = 1;
      for (int k = 0; k < t->ndim; k++) {
        REQ(fscanf(f, "%zu", &t->shape[k]) == 1, "-");
        t->n *= t->shape[k];
      }
      t->v = malloc(t->n * sizeof(double));
      for (size_t i = 0; i < t->n; i++) REQ(fscanf(f, "%lf", &t->v[i]) == 1, "-");
    } else if (!strcmp(kind, "scalar")) {
      REQ(fscanf(f, "%31s %lf", e->sname[e->ns], &e->sval[e->ns]) == 2, "-");
      e->ns++;
    } else if (!strcmp(kind, "score")) {
      REQ(fscanf(f, "%lf", &e->st[e->np]) == 1, "-");
      for (int j = 0; j < 16; j++) REQ(fscanf(f, "%lf", &e->sx[e->np][j]) == 1, "-");
      for (int j = 0; j < 16; j++) REQ(fscanf(f, "%lf", &e->ss[e->np][j]) == 1, "-");
      e->np++;
    } else
      REQ(0, "bad line kind %s", kind);
  }
  fclose(f);
}

static void free_expected(expected *e) {
  for (int i = 0; i < e->nt; i++) free(e->t[i].v);
}

static double scalar(const expected *e, const char *name) {
  for (int i = 0; i < e->ns; i++)
    if (!strcmp(e->sname[i], name)) return e->sval[i];
  REQ(0, "scalar %s missing", name);
  return NAN;
}

/* the reader alone: paths through modules, parameters, buffers, views */
static void check_reader(const char *pt_path, const char *pre, const expected *e) {
  jade_torchpt *pt;
  CHECK_OK(jade_torchpt_open(pt_path, &pt));
  char path[256];
  for (int i = 0; i < e->nt; i++) {
    const ex_tensor *t = &e->t[i];
    const char *sub = !strcmp(t->name, "shift") || !strcmp(t->name, "scale") ? "" : "model.";
    snprintf(path, sizeof path, "%s%s%s%s", pre, *pre ? "." : "", sub, t->name);
    int nd;
    size_t sh[JADE_TORCHPT_MAX_DIM];
    double *d;
    CHECK_OK(jade_torchpt_tensor(pt, path, &nd, sh, &d));
    REQ(nd == t->ndim, "%s ndim %d", path, nd);
    for (int k = 0; k < nd; k++) REQ(sh[k] == t->shape[k], "%s shape", path);
    for (size_t j = 0; j < t->n; j++) REQ(d[j] == t->v[j], "%s[%zu] %.17g != %.17g", path, j, d[j], t->v[j]);
    free(d);
  }
  double v;
  snprintf(path, sizeof path, "%s%ssde.beta_max", pre, *pre ? "." : "");
  CHECK_OK(jade_torchpt_number(pt, path, &v));
  REQ(v == scalar(e, "beta_max"), "-");
  snprintf(path, sizeof path, "%s%ssde.epsilon", pre, *pre ? "." : ""); /* a 0-d float tensor */
  CHECK_OK(jade_torchpt_number(pt, path, &v));
  REQ(v == scalar(e, "eps"), "-");
  snprintf(path, sizeof path, "%s%smodel.NN.0", pre, *pre ? "." : "");
  char cls[128];
  CHECK_OK(jade_torchpt_class(pt, path, cls, sizeof cls));
  REQ(!strcmp(cls, "torch.nn.modules.linear.Linear"), "%s", cls);
  snprintf(path, sizeof path, "%s%smodel.NN.3", pre, *pre ? "." : "");
  REQ(!jade_torchpt_has(pt, path), "-");
  REQ(!jade_torchpt_has(pt, "no.such.path"), "-");
  REQ(jade_torchpt_tensor(pt, "no.such.path", &(int){0}, (size_t[8]){0}, &(double *){NULL}) != JADE_OK, "-");
  REQ(strstr(jade_last_error(), "no.such.path"), "%s", jade_last_error());
  if (*pre) { /* the CatalogueGenerator's other attributes: plain values, a list, a tuple */
    CHECK_OK(jade_torchpt_number(pt, "n_bands", &v));
    REQ(v == 26, "-");
    CHECK_OK(jade_torchpt_number(pt, "flags.3.0", &v));
    REQ(v == 3.5, "-");
    REQ(jade_torchpt_number(pt, "name", &v) != JADE_OK, "-"); /* a string */
    REQ(jade_torchpt_number(pt, "zero_points", &v) != JADE_OK, "-"); /* 26 elements */
    int nd;
    size_t sh[8];
    double *d;
    CHECK_OK(jade_torchpt_tensor(pt, "zero_points", &nd, sh, &d));
    REQ(nd == 1 && sh[0] == 26 && d[25] == (double)(float)1.25, "-");
    free(d);
  }
  jade_torchpt_free(pt);
}

/* converter -> save -> load: tensors in the file and scores */
static void check_convert(const char *name, int want_act, int want_no_sigma) {
  char pt_path[700], ex_path[700], out[700];
  snprintf(pt_path, sizeof pt_path, "%s/%s.pt", dir, name);
  snprintf(ex_path, sizeof ex_path, "%s/%s_expected.txt", dir, name);
  snprintf(out, sizeof out, "%s/%s.safetensors", tmpdir, name);
  expected *e = malloc(sizeof *e);
  read_expected(ex_path, e);
  REQ(e->nt == 9 && e->np == 4, "%s: %d tensors, %d points", ex_path, e->nt, e->np);
  jade_sed_score *s;
  jade_sed_pt_info info;
  CHECK_OK(jade_sed_score_from_pt(pt_path, &s, &info));
  check_reader(pt_path, info.prefix, e);
  const jade_sed_score_config *c = jade_sed_score_get_config(s);
  REQ(c->dim == 16 && c->n_cond == 0 && c->n_freq == 4 && c->n_hidden == 2 && c->width == 8 && info.n_layers == 3, "-");
  REQ((int)c->act == want_act && c->no_sigma == want_no_sigma && c->sde.type == JADE_SDE_VP, "-");
  REQ(c->sde.beta_min == scalar(e, "beta_min") && c->sde.beta_max == scalar(e, "beta_max") &&
        c->sde.T == scalar(e, "T") && c->sde.eps == scalar(e, "eps"), "-");
  CHECK_OK(jade_sed_score_save(s, out, "test"));
  jade_sed_score_free(s);
  /* the written file: every tensor equals the source exactly */
  jade_safetensors *st;
  CHECK_OK(jade_safetensors_read(out, &st));
  for (int i = 0; i < e->nt; i++) {
    const ex_tensor *t = &e->t[i];
    const jade_st_tensor *w = jade_safetensors_find(st, !strcmp(t->name, "W") ? "time_W" : t->name);
    REQ(w && w->dtype == JADE_F64 && w->ndim == t->ndim, "%s", t->name);
    for (int k = 0; k < t->ndim; k++) REQ(w->shape[k] == t->shape[k], "-");
    for (size_t j = 0; j < t->n; j++) {
      double v;
      memcpy(&v, (const char *)w->data + 8 * j, 8);
      REQ(v == t->v[j], "%s[%zu] %.17g != %.17g", t->name, j, v, t->v[j]);
    }
  }
  REQ(atof(jade_safetensors_meta(st, "pi")) == scalar(e, "pi"), "-");
  REQ(atoi(jade_safetensors_meta(st, "no_sigma")) == want_no_sigma, "-");
  jade_safetensors_free(st);
  /* the reloaded model scores the script's points */
  CHECK_OK(jade_sed_score_load(out, &s));
  double err = 0;
  for (int p = 0; p < e->np; p++) {
    double sc[16];
    CHECK_OK(jade_sed_score_eval(s, 1, &e->st[p], e->sx[p], NULL, sc));
    for (int j = 0; j < 16; j++) err = fmax(err, fabs(sc[j] - e->ss[p][j]) / (1 + fabs(e->ss[p][j])));
    for (int j = 0; j < 16; j++) REQ(isfinite(sc[j]), "-");
  }
  printf("%s: converted tensors exact; score max rel. error %.2e vs the script's float64 math\n", name, err);
  REQ(err < 1e-13, "score error %g", err);
  jade_sed_score_free(s);
  unlink(out);
  free_expected(e);
  free(e);
}

static void expect_fail(const char *file, const char *what) {
  char p[700];
  snprintf(p, sizeof p, "%s", file);
  jade_sed_score *s = NULL;
  jade_clear_error();
  jade_status st = jade_sed_score_from_pt(p, &s, NULL);
  REQ(st != JADE_OK && !s, "%s accepted", file);
  const char *msg = jade_last_error();
  REQ(strstr(msg, what) && strstr(msg, file) && !strchr(msg, '\n'), "%s: message '%s' lacks '%s'", file, msg, what);
  printf("  refused: %s\n", msg);
}

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  REQ(f, "-");
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  REQ(*n > 64 && *n < (1u << 20), "%s: %zu bytes", path, *n);
  unsigned char *b = malloc(*n);
  REQ(b && fread(b, 1, *n, f) == *n, "-");
  fclose(f);
  return b;
}
static void spit(const char *path, const unsigned char *b, size_t n) {
  unlink(path); /* a new file: rewriting one in place makes ext4 flush it on close (auto_da_alloc) */
  FILE *f = fopen(path, "wb");
  REQ(f && fwrite(b, 1, n, f) == n, "-");
  fclose(f);
}
static uint32_t rd32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void wr32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t crc32(const unsigned char *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return c ^ 0xFFFFFFFFu;
}

static void check_bad_files(void) {
  char p[700];
#define BAD(f, what)                                     \
  do {                                                   \
    snprintf(p, sizeof p, "%s/%s", dir, f);              \
    expect_fail(p, what);                                \
  } while (0)
  BAD("bad_deflate.pt", "compressed");
  BAD("bad_missing.pt", "population_model.model.NN.1.bias not found");
  BAD("bad_short.pt", "exceeds its storage");
  BAD("bad_opcode.pt", "unsupported opcode 0xff");
  BAD("bad_sde.pt", "only VPSDE");
  BAD("bad_act.pt", "ReLU is not supported");
  snprintf(p, sizeof p, "%s/none.pt", tmpdir);
  expect_fail(p, "cannot open");
  size_t n;
  snprintf(p, sizeof p, "%s/fake_tanh.pt", dir);
  unsigned char *b = slurp(p, &n);
  snprintf(p, sizeof p, "%s/cut.pt", tmpdir);
  spit(p, b, n / 2);
  expect_fail(p, "end-of-central-directory");
  /* every truncation fails cleanly */
  for (size_t k = 0; k < n; k += 7) {
    spit(p, b, k);
    jade_sed_score *s = NULL;
    REQ(jade_sed_score_from_pt(p, &s, NULL) != JADE_OK && !s, "truncated to %zu accepted", k);
  }
  /* a flipped storage byte: CRC */
  unsigned char *c = malloc(n);
  REQ(c && n > 64, "-");
  memcpy(c, b, n);
  c[n / 2] ^= 0x40;
  spit(p, c, n);
  expect_fail(p, "CRC-32");
  /* single-byte mutations of data.pkl with both CRCs patched: parse or fail, never crash */
  const char *nm = "archive/data.pkl";
  size_t nl = strlen(nm), loc = 0, cen = 0;
  for (size_t i = 0; i + 46 + nl <= n; i++) {
    if (rd32(b + i) == 0x04034b50u && !memcmp(b + i + 30, nm, nl)) loc = i + 1;
    if (rd32(b + i) == 0x02014b50u && !memcmp(b + i + 46, nm, nl)) cen = i + 1;
  }
  REQ(loc && cen, "-");
  loc--, cen--;
  size_t data = loc + 30 + nl + (b[loc + 28] | b[loc + 29] << 8), size = rd32(b + loc + 22);
  REQ(data + size <= n, "-");
  int ok = 0, failed = 0;
  const unsigned char vals[] = {0x00, 0xff, 0x7f, 0x80, '.', '(', 'h', 'q', 'R', 'b', 0x85};
  for (size_t i = 0; i < size; i++)
    for (size_t v = 0; v < sizeof vals + 1; v++) {
      memcpy(c, b, n);
      c[data + i] = v < sizeof vals ? vals[v] : (unsigned char)(b[data + i] ^ 0x01);
      uint32_t crc = crc32(c + data, size);
      wr32(c + loc + 14, crc);
      wr32(c + cen + 16, crc);
      spit(p, c, n);
      jade_sed_score *s = NULL;
      if (jade_sed_score_from_pt(p, &s, NULL) == JADE_OK) {
        ok++;
        jade_sed_score_free(s);
      } else {
        failed++;
        REQ(!s && jade_last_error()[0] && !strchr(jade_last_error(), '\n'), "-");
      }
    }
  printf("data.pkl mutations (%zu bytes x %zu): %d converted, %d refused, none crashed\n", size, sizeof vals + 1, ok,
         failed);
  REQ(failed > 0, "-");
  unlink(p);
  free(b);
  free(c);
}

int main(void) {
  const char *td = getenv("JADE_TEST_DATA");
  snprintf(dir, sizeof dir, "%s/popcosmos", td ? td : "tests/data");
  snprintf(tmpdir, sizeof tmpdir, "%s/jade_ptconvert_%ld", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid());
  mkdir(tmpdir, 0700);
  check_convert("fake_tanh", JADE_ACT_TANH, 1);
  check_convert("fake_silu", JADE_ACT_SILU, 0);
  check_bad_files();
  rmdir(tmpdir);
  TEST_RETURN();
}
