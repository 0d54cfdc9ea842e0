/* Minimal test helpers shared by the C tests: CHECK aborts the test with file:line and a
 * message; CHECK_CLOSE compares with a relative tolerance. */
#ifndef JADE_TEST_UTIL_H
#define JADE_TEST_UTIL_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int jade_test_failures = 0;

#define CHECK(cond, ...)                                                        \
  do {                                                                          \
    if (!(cond)) {                                                              \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);  \
      fprintf(stderr, __VA_ARGS__);                                             \
      fprintf(stderr, "\n");                                                    \
      jade_test_failures++;                                                     \
    }                                                                           \
  } while (0)

#define CHECK_OK(expr)                                                          \
  do {                                                                          \
    jade_status s_ = (expr);                                                    \
    if (s_ != JADE_OK) {                                                        \
      fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr,      \
              jade_last_error());                                               \
      exit(1);                                                                  \
    }                                                                           \
  } while (0)

#define CHECK_CLOSE(a, b, rtol)                                                 \
  do {                                                                          \
    double a_ = (a), b_ = (b);                                                  \
    if (!(fabs(a_ - b_) <= (rtol) * fabs(b_))) {                                \
      fprintf(stderr, "%s:%d: %s = %.10g vs %s = %.10g (rel %.3g > %.3g)\n",    \
              __FILE__, __LINE__, #a, a_, #b, b_, fabs(a_ - b_) / fabs(b_),     \
              (double)(rtol));                                                  \
      jade_test_failures++;                                                     \
    }                                                                           \
  } while (0)

/* Whitespace table at path, '#' and blank lines skipped: fills out (row-major, ncol per row)
 * with up to max_rows rows and returns their number; exits with a message naming the file
 * if it cannot be read or a field is not a number. */
static inline int test_read_table(const char *path, int ncol, double *out, int max_rows) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    exit(1);
  }
  size_t cap = 1 << 16;
  char *line = malloc(cap);
  int n = 0;
  while (n < max_rows && fgets(line, (int)cap, f)) {
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '#' || *p == '\n' || *p == 0) continue;
    for (int c = 0; c < ncol; c++) {
      char *end;
      out[(size_t)n * ncol + c] = strtod(p, &end);
      if (end == p) {
        fprintf(stderr, "%s: bad number in row %d, column %d\n", path, n, c);
        exit(1);
      }
      p = end;
    }
    n++;
  }
  free(line);
  fclose(f);
  return n;
}

static inline double test_relerr(double a, double b) { return fabs(a / b - 1.0); }

/* Path of a file under tests/data (JADE_TEST_DATA set by CTest). */
static inline const char *jade_test_data(const char *rel) {
  static char buf[4096];
  const char *root = getenv("JADE_TEST_DATA");
  snprintf(buf, sizeof buf, "%s/%s", root ? root : "tests/data", rel);
  return buf;
}

#define TEST_RETURN()                                                           \
  do {                                                                          \
    if (jade_test_failures) {                                                   \
      fprintf(stderr, "%d check(s) failed\n", jade_test_failures);              \
      return 1;                                                                 \
    }                                                                           \
    printf("all checks passed\n");                                              \
    return 0;                                                                   \
  } while (0)
#endif
