/* Minimal test helpers shared by the C tests: CHECK aborts the test with file:line and a
 * message; CHECK_ABS / CHECK_REL / CHECK_LT / CHECK_LE / CHECK_GT / CHECK_GE / CHECK_IN
 * compare numbers and fail on NaN/Inf;
 * jade_test_max_err accumulates a worst error with NaN/Inf sticky. */
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

/* NaN/Inf-aware comparisons. Every numeric assertion in tests/ goes through these: a plain
 * `err = fmax(err, e); CHECK(err < tol)` passes when e is NaN (fmax drops NaN), and
 * `if (e > worst) worst = e` skips it. Each predicate is false when a value or the tolerance
 * is NaN or +-Inf; the accumulators make NaN/Inf sticky. */
/* |a - b| <= atol */
static inline int jade_test_abs_ok(double a, double b, double atol) {
  return isfinite(a) && isfinite(b) && isfinite(atol) && fabs(a - b) <= atol;
}
/* |a - b| <= rtol |b| */
static inline int jade_test_rel_ok(double a, double b, double rtol) {
  return isfinite(a) && isfinite(b) && isfinite(rtol) && fabs(a - b) <= rtol * fabs(b);
}
/* v < t, v <= t, v > t, v >= t with both finite; lo <= v <= hi with all finite. */
static inline int jade_test_lt_ok(double v, double t) { return isfinite(v) && isfinite(t) && v < t; }
static inline int jade_test_le_ok(double v, double t) { return isfinite(v) && isfinite(t) && v <= t; }
static inline int jade_test_gt_ok(double v, double t) { return isfinite(v) && isfinite(t) && v > t; }
static inline int jade_test_ge_ok(double v, double t) { return isfinite(v) && isfinite(t) && v >= t; }
static inline int jade_test_in_ok(double v, double lo, double hi) {
  return jade_test_ge_ok(v, lo) && jade_test_le_ok(v, hi);
}
/* NaN-propagating max/min: the result is NaN if either is NaN (fmax/fmin drop NaN). */
static inline double jade_test_max(double a, double b) { return (isnan(a) || isnan(b)) ? NAN : (a > b ? a : b); }
static inline double jade_test_min(double a, double b) { return (isnan(a) || isnan(b)) ? NAN : (a < b ? a : b); }
/* Running max of errors: *worst = max(*worst, v), where a NaN v (or a NaN *worst) makes
 * *worst NaN for good and +-Inf gives +Inf. Returns 1 when v became the new worst (so a
 * caller can record where), 0 otherwise. */
static inline int jade_test_max_err(double *worst, double v) {
  if (isnan(*worst)) return 0;
  if (isnan(v) || isinf(v)) {
    if (isinf(*worst) && !isnan(v)) return 0;
    *worst = isnan(v) ? NAN : INFINITY;
    return 1;
  }
  if (v > *worst) {
    *worst = v;
    return 1;
  }
  return 0;
}
/* Running min (e.g. of effective sample sizes): NaN sticky, -Inf/+Inf recorded as NaN. */
static inline void jade_test_min_acc(double *least, double v) {
  if (isnan(*least)) return;
  if (!isfinite(v)) *least = NAN;
  else if (v < *least) *least = v;
}

#define JADE_TEST_FAIL_(...)                                                    \
  do {                                                                          \
    fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                            \
    fprintf(stderr, __VA_ARGS__);                                               \
    fprintf(stderr, "\n");                                                      \
    jade_test_failures++;                                                       \
  } while (0)

/* CHECK_REL(a, b, rtol): |a - b| <= rtol |b|, both finite (CHECK_CLOSE is the same check). */
#define CHECK_REL(a, b, rtol)                                                   \
  do {                                                                          \
    double a_ = (a), b_ = (b), t_ = (rtol);                                     \
    if (!jade_test_rel_ok(a_, b_, t_))                                          \
      JADE_TEST_FAIL_("%s = %.10g vs %s = %.10g (rel %.3g > %.3g)", #a, a_, #b, \
                      b_, fabs(a_ - b_) / fabs(b_), t_);                         \
  } while (0)
#define CHECK_CLOSE(a, b, rtol) CHECK_REL(a, b, rtol)

/* CHECK_ABS(a, b, atol): |a - b| <= atol, both finite. */
#define CHECK_ABS(a, b, atol)                                                   \
  do {                                                                          \
    double a_ = (a), b_ = (b), t_ = (atol);                                     \
    if (!jade_test_abs_ok(a_, b_, t_))                                          \
      JADE_TEST_FAIL_("%s = %.10g vs %s = %.10g (abs %.3g > %.3g)", #a, a_, #b, \
                      b_, fabs(a_ - b_), t_);                                   \
  } while (0)

/* CHECK_LT(v, t, fmt, ...): v < t with v and t finite (an error bound); likewise CHECK_LE,
 * CHECK_GT, CHECK_GE; CHECK_IN(v, lo, hi, fmt, ...): finite and lo <= v <= hi. The message
 * follows the values. */
#define JADE_CHECK_CMP_(ok, v, op, t, ...)                                      \
  do {                                                                          \
    double v_ = (v), t_ = (t);                                                  \
    if (!ok(v_, t_)) {                                                          \
      fprintf(stderr, "%s:%d: CHECK failed: %s %s %s (%.6g vs %.6g): ",         \
              __FILE__, __LINE__, #v, #op, #t, v_, t_);                         \
      fprintf(stderr, __VA_ARGS__);                                             \
      fprintf(stderr, "\n");                                                    \
      jade_test_failures++;                                                     \
    }                                                                           \
  } while (0)
#define CHECK_LT(v, t, ...) JADE_CHECK_CMP_(jade_test_lt_ok, v, <, t, __VA_ARGS__)
#define CHECK_LE(v, t, ...) JADE_CHECK_CMP_(jade_test_le_ok, v, <=, t, __VA_ARGS__)
#define CHECK_GT(v, t, ...) JADE_CHECK_CMP_(jade_test_gt_ok, v, >, t, __VA_ARGS__)
#define CHECK_GE(v, t, ...) JADE_CHECK_CMP_(jade_test_ge_ok, v, >=, t, __VA_ARGS__)
#define CHECK_IN(v, lo, hi, ...)                                                \
  do {                                                                          \
    double w_ = (v), l_ = (lo), h_ = (hi);                                      \
    if (!jade_test_in_ok(w_, l_, h_)) {                                         \
      fprintf(stderr, "%s:%d: CHECK failed: %s = %.6g not in [%.6g, %.6g]: ",   \
              __FILE__, __LINE__, #v, w_, l_, h_);                              \
      fprintf(stderr, __VA_ARGS__);                                             \
      fprintf(stderr, "\n");                                                    \
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
