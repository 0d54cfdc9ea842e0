/* The comparison helpers of test_util.h must fail on NaN and +-Inf (issue 10, item 2): every
 * predicate is called with NaN/Inf in each position and must return false; the running max
 * must keep NaN/Inf once seen (fmax would drop it); each CHECK_* macro is run on NaN/Inf and
 * must count one failure (the count is then taken back, so this binary still exits 0), and on
 * finite values at the tolerance's edge must pass. */
#include <float.h>
#include <math.h>
#include <stdio.h>

#include "test_util.h"

static int failed_checks_since(int before) { return jade_test_failures - before; }

int main(void) {
  const double bad[] = {NAN, INFINITY, -INFINITY};
  int expected_failures = 0;
  for (int k = 0; k < 3; k++) {
    double x = bad[k];
    /* predicates: false whichever operand is not finite, even when the finite rule holds */
    int any = jade_test_abs_ok(x, 0, 1) || jade_test_abs_ok(0, x, 1) || jade_test_abs_ok(0, 0, x) ||
              jade_test_abs_ok(x, x, 1) || jade_test_rel_ok(x, 1, 1) || jade_test_rel_ok(1, x, 1) ||
              jade_test_rel_ok(1, 1, x) || jade_test_rel_ok(x, x, 1) || jade_test_lt_ok(x, 1) ||
              jade_test_lt_ok(0, x) || jade_test_le_ok(x, DBL_MAX) || jade_test_le_ok(0, x) ||
              jade_test_gt_ok(x, -DBL_MAX) || jade_test_gt_ok(0, x) || jade_test_ge_ok(x, 0) ||
              jade_test_ge_ok(0, x) || jade_test_in_ok(x, -DBL_MAX, DBL_MAX) ||
              jade_test_in_ok(0, x, 1) || jade_test_in_ok(0, -1, x);
    CHECK(!any, "a predicate accepted %g", x);

    /* running max: the bad value wins, stays, and is reported as the new worst */
    double worst = 0.5;
    CHECK(jade_test_max_err(&worst, x) == 1, "max_err(%g) not flagged as the new worst", x);
    jade_test_max_err(&worst, 2.0);
    jade_test_max_err(&worst, 1e300);
    CHECK(!jade_test_le_ok(worst, 1e308), "running max forgot %g: %g", x, worst);
    CHECK(isnan(x) ? isnan(worst) : worst == INFINITY, "running max of %g is %g", x, worst);
    /* ... also when the bad value comes last, and with fmax for contrast */
    double w2 = 0.0, wf = 0.0;
    for (int i = 0; i < 4; i++) {
      double v = i == 3 ? x : 0.1 * i;
      jade_test_max_err(&w2, v);
      wf = fmax(wf, v);
    }
    CHECK(!jade_test_le_ok(w2, 1e308), "running max with %g last: %g", x, w2);
    if (isnan(x)) CHECK(jade_test_le_ok(wf, 1.0), "fmax keeps NaN here: the contrast does not hold");
    double least = 1.0;
    jade_test_min_acc(&least, x);
    jade_test_min_acc(&least, 0.5);
    CHECK(isnan(least), "running min of %g is %g", x, least);
    CHECK(!jade_test_le_ok(jade_test_max(x, 0), DBL_MAX) || !isnan(x), "jade_test_max drops NaN");
    CHECK(isnan(jade_test_max(0, x)) || !isnan(x), "jade_test_max(0, NaN) not NaN");
    CHECK(isnan(jade_test_min(x, 0)) || !isnan(x), "jade_test_min(NaN, 0) not NaN");

    /* the macros: each must count exactly one failure (messages expected on stderr) */
    int before = jade_test_failures;
    CHECK_ABS(x, 0.0, 1.0);
    CHECK_REL(x, 1.0, 1.0);
    CHECK_CLOSE(1.0, x, 1.0);
    CHECK_LT(x, 1.0, "expected failure");
    CHECK_LE(x, 1.0, "expected failure");
    CHECK_GT(x, 0.0, "expected failure");
    CHECK_GE(x, 0.0, "expected failure");
    CHECK_IN(x, -1.0, 1.0, "expected failure");
    CHECK_LE(0.0, x, "expected failure: non-finite tolerance");
    int got = failed_checks_since(before);
    jade_test_failures = before; /* the failures above were the point */
    expected_failures += 9;
    CHECK(got == 9, "%d of 9 macro checks failed on %g", got, x);
  }
  printf("the helpers rejected NaN/+Inf/-Inf in %d macro checks\n", expected_failures);

  /* finite values: exact edges pass, just beyond fails */
  CHECK(jade_test_abs_ok(1.0, 1.5, 0.5) && !jade_test_abs_ok(1.0, 1.5, 0.4999), "abs edge");
  CHECK(jade_test_rel_ok(1.1, 1.0, 0.11) && !jade_test_rel_ok(1.1, 1.0, 0.09), "rel edge");
  CHECK(jade_test_lt_ok(1, 2) && !jade_test_lt_ok(2, 2) && jade_test_le_ok(2, 2), "lt/le edge");
  CHECK(jade_test_gt_ok(3, 2) && !jade_test_gt_ok(2, 2) && jade_test_ge_ok(2, 2), "gt/ge edge");
  CHECK(jade_test_in_ok(0, 0, 1) && jade_test_in_ok(1, 0, 1) && !jade_test_in_ok(1.01, 0, 1), "in edge");
  double w = 0;
  CHECK(jade_test_max_err(&w, 0.25) == 1 && jade_test_max_err(&w, 0.125) == 0 && w == 0.25, "max_err finite");
  int before = jade_test_failures;
  CHECK_ABS(1.0, 1.5, 0.5);
  CHECK_REL(1.1, 1.0, 0.11);
  CHECK_LT(1.0, 2.0, "unexpected");
  CHECK_LE(2.0, 2.0, "unexpected");
  CHECK_GT(3.0, 2.0, "unexpected");
  CHECK_GE(2.0, 2.0, "unexpected");
  CHECK_IN(0.5, 0.0, 1.0, "unexpected");
  CHECK(jade_test_failures == before, "a finite check within its tolerance failed");
  TEST_RETURN();
}
