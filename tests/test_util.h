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
