/* jade_chains_write (include/jade/chains.h): the names line, the provenance lines, every
 * value of ROOT.txt read back with strtod equal (same bits) to ROOT.npy's and to the input,
 * ROOT.paramnames exactly, the defaults (weight 1, minuslogpost 0), the stride; bad input
 * (NaN / Inf value, negative weight, bad or duplicate or reserved name, multi-line label)
 * is an error naming the culprit that writes no file at all. With /usr/bin/python3 and numpy:
 * tests/check_chains.py reads the chain as a user would (numpy.genfromtxt(names=True)). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "jade/chains.h"
#include "jade/io.h"
#include "test_files.h"
#include "test_util.h"

enum { NP = 3, NDRAW = 6, STRIDE = 4 };
static const char *const names[NP] = {"a", "b_2", "c"};
static const char *const latex[NP] = {"\\alpha", "b_{2}", "c"};

static int same_bits(double x, double y) { return memcmp(&x, &y, sizeof x) == 0; }

static int file_exists(const char *root, const char *ext) {
  char p[512];
  snprintf(p, sizeof p, "%s%s", root, ext);
  return access(p, F_OK) == 0;
}

/* ROOT.txt against ROOT.npy and the expected rows exp[NDRAW][2 + NP] */
static void check_chain(const char *root, const char *first, const char *comment_lines, double exp[][2 + NP]) {
  char p[512];
  size_t len;
  snprintf(p, sizeof p, "%s.txt", root);
  char *txt = (char *)test_slurp(p, &len);
  CHECK(txt != NULL, "%s not written", p);
  if (!txt) return;
  /* (a) the names line, then the provenance lines */
  size_t fl = strlen(first), cl = strlen(comment_lines);
  CHECK(len > fl + cl && !strncmp(txt, first, fl) && !strncmp(txt + fl, comment_lines, cl), "%s: header is\n%.300s", p, txt);
  /* (b) every value round-trips exactly, and equals the .npy's */
  jade_npy a;
  snprintf(p, sizeof p, "%s.npy", root);
  CHECK_OK(jade_npy_read(p, 1, &a));
  CHECK(a.dtype == JADE_F64 && a.ndim == 2 && a.shape[0] == NDRAW && a.shape[1] == 2 + NP, "%s: wrong dtype or shape", p);
  const double *d = a.data;
  char *s = txt + fl + cl;
  int rows = 0;
  for (int i = 0; i < NDRAW && *s; i++, rows++) {
    for (int j = 0; j < 2 + NP; j++) {
      char *e;
      double v = strtod(s, &e);
      CHECK(e != s && (*e == ' ' || *e == '\n'), "%s.txt: row %d column %d does not parse", root, i + 1, j + 1);
      CHECK(*e == (j == 1 + NP ? '\n' : ' '), "%s.txt: row %d: wrong number of columns", root, i + 1);
      CHECK(same_bits(v, exp[i][j]), "%s.txt: row %d column %d: %.17g, expected %.17g", root, i + 1, j + 1, v, exp[i][j]);
      CHECK(same_bits(d[i * (2 + NP) + j], exp[i][j]), "%s.npy: [%d, %d] = %.17g, expected %.17g", root, i, j, d[i * (2 + NP) + j],
            exp[i][j]);
      s = e + 1;
    }
  }
  CHECK(rows == NDRAW && *s == 0, "%s.txt: %d rows, expected %d and nothing after", root, rows, NDRAW);
  jade_npy_release(&a);
  free(txt);
  /* (c) .paramnames: 'name latex', '*' after the derived one */
  snprintf(p, sizeof p, "%s.paramnames", root);
  char *pn = (char *)test_slurp(p, &len);
  CHECK(pn && !strcmp(pn, "a  \\alpha\nb_2  b_{2}\nc*  c\n"), "%s is\n%s", p, pn ? pn : "(missing)");
  free(pn);
}

/* python3 + numpy read the chain (skipped with a message when numpy is missing) */
static void check_numpy(const char *root) {
  if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
    printf("SKIP numpy check: /usr/bin/python3 with numpy not available\n");
    return;
  }
  const char *data = getenv("JADE_TEST_DATA");
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/../check_chains.py %s a b_2 c", data ? data : "tests/data", root);
  CHECK(system(cmd) == 0, "%s", cmd);
}

/* a call that must fail with a message containing msg and leave the directory empty */
#define BAD(msg, ...)                                                                                                   \
  do {                                                                                                                  \
    jade_status s_ = jade_chains_write(__VA_ARGS__);                                                                    \
    CHECK(s_ != JADE_OK, "accepted: %s", msg);                                                                          \
    if (s_) CHECK(strstr(jade_last_error(), msg) != NULL, "error '%s' does not say '%s'", jade_last_error(), msg);        \
    CHECK(!file_exists(bad, ".txt") && !file_exists(bad, ".paramnames") && !file_exists(bad, ".npy") &&                 \
              test_count_tmp(test_dir) == 0,                                                                            \
          "files left after: %s", msg);                                                                                 \
  } while (0)

int main(void) {
  test_dir_create("chains");
  /* values that %.6g or %.15g would not keep; column 3 of each stride-4 row is padding (NaN,
   * never read) */
  double vals[NDRAW * STRIDE] = {0.1, 1.0 / 3.0, 2.0 / 3.0, NAN,
                                 -0.0, 1.7976931348623157e308, -2.5e-310, NAN,
                                 123456789.12345679, 4.9406564584124654e-324, 3.141592653589793, NAN,
                                 -1e-300, 0.30000000000000004, 1e22, NAN,
                                 1.0, 2.0, 3.0, NAN,
                                 -7.25, 0.7071067811865476, 6.02214076e23, NAN};
  double w[NDRAW] = {1.0, 0.5, 0.0, 2.25, 1e-300, 1.0 / 7.0};
  double mlp[NDRAW] = {12.5, -3.0000000000000004, 0.0, 1e5 / 3.0, -1e-17, 42.0};
  double exp[NDRAW][2 + NP];
  for (int i = 0; i < NDRAW; i++) {
    exp[i][0] = w[i];
    exp[i][1] = mlp[i];
    for (int j = 0; j < NP; j++) exp[i][2 + j] = vals[i * STRIDE + j];
  }
  char root[300], bad[300];
  snprintf(root, sizeof root, "%s/chain", test_dir);
  CHECK_OK(jade_chains_write(root, "line one\nline two", NP, names, latex, 1, NDRAW, w, mlp, vals, STRIDE));
  check_chain(root, "# weight minuslogpost a b_2 c\n", "# line one\n# line two\n", exp);
  CHECK(test_count_tmp(test_dir) == 0, "temporaries left in %s", test_dir);
  check_numpy(root);

  /* defaults: weight 1, minuslogpost 0; no comment; rewriting replaces the files */
  for (int i = 0; i < NDRAW; i++) {
    exp[i][0] = 1.0;
    exp[i][1] = 0.0;
  }
  CHECK_OK(jade_chains_write(root, NULL, NP, names, latex, 1, NDRAW, NULL, NULL, vals, STRIDE));
  check_chain(root, "# weight minuslogpost a b_2 c\n", "", exp);
  check_numpy(root);

  /* bad input: an error naming the culprit, no file */
  snprintf(bad, sizeof bad, "%s/bad", test_dir);
  double v2[NDRAW * STRIDE], w2[NDRAW], m2[NDRAW];
  memcpy(v2, vals, sizeof v2);
  v2[2 * STRIDE + 1] = NAN;
  BAD("draw 3: b_2 = nan is not finite", bad, NULL, NP, names, latex, 1, NDRAW, NULL, NULL, v2, STRIDE);
  v2[2 * STRIDE + 1] = -INFINITY;
  BAD("draw 3: b_2 = -inf is not finite", bad, NULL, NP, names, latex, 1, NDRAW, NULL, NULL, v2, STRIDE);
  memcpy(w2, w, sizeof w2);
  w2[4] = -1.0;
  BAD("draw 5: weight -1", bad, NULL, NP, names, latex, 1, NDRAW, w2, mlp, vals, STRIDE);
  w2[4] = NAN;
  BAD("draw 5: weight nan", bad, NULL, NP, names, latex, 1, NDRAW, w2, mlp, vals, STRIDE);
  memcpy(m2, mlp, sizeof m2);
  m2[5] = INFINITY;
  BAD("draw 6: minuslogpost inf", bad, NULL, NP, names, latex, 1, NDRAW, w, m2, vals, STRIDE);
  const char *sp[NP] = {"a", "b 2", "c"};
  BAD("parameter 2: name 'b 2' is not an identifier", bad, NULL, NP, sp, latex, 1, NDRAW, w, mlp, vals, STRIDE);
  const char *dig[NP] = {"a", "2b", "c"};
  BAD("name '2b' is not an identifier", bad, NULL, NP, dig, latex, 1, NDRAW, w, mlp, vals, STRIDE);
  const char *dup[NP] = {"a", "c", "c"};
  BAD("parameter name 'c' given twice", bad, NULL, NP, dup, latex, 1, NDRAW, w, mlp, vals, STRIDE);
  const char *res[NP] = {"a", "weight", "c"};
  BAD("name 'weight' is reserved", bad, NULL, NP, res, latex, 1, NDRAW, w, mlp, vals, STRIDE);
  const char *lab[NP] = {"\\alpha", "b\n2", "c"};
  BAD("parameter 'b_2': LaTeX label", bad, NULL, NP, names, lab, 1, NDRAW, w, mlp, vals, STRIDE);
  BAD("invalid arguments", bad, NULL, NP, names, latex, NP + 1, NDRAW, w, mlp, vals, STRIDE);
  BAD("invalid arguments", bad, NULL, NP, names, latex, 1, NDRAW, w, mlp, vals, NP - 1);
  /* the good chain written before is untouched by the failures */
  check_chain(root, "# weight minuslogpost a b_2 c\n", "", exp);
  TEST_RETURN();
}
