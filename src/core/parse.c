/* Strict number parsing for untrusted text: see include/jade/core.h. */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "jade/core.h"

jade_status jade_parse_u64(const char *what, const char *s, uint64_t max, uint64_t *out) {
  if (!s || !isdigit((unsigned char)s[0]))  /* strtoull would accept " -1" and wrap it */
    return jade_error(JADE_ERR_INVALID, "%s: '%s' is not a non-negative integer", what, s ? s : "");
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (*end || errno == ERANGE || v > max)
    return jade_error(JADE_ERR_INVALID, "%s: '%s' is not an integer in [0, %llu]", what, s,
                      (unsigned long long)max);
  *out = (uint64_t)v;
  return JADE_OK;
}

jade_status jade_parse_double_prefix(const char *what, const char *s, double *out, char **end) {
  errno = 0;
  double v = strtod(s, end);
  if (*end == s) return jade_error(JADE_ERR_INVALID, "%s: '%s' is not a number", what, s);
  if (!isfinite(v) || (errno == ERANGE && fabs(v) > 1.0))
    return jade_error(JADE_ERR_INVALID, "%s: '%s' is not finite", what, s);
  /* underflow: a non-zero literal read as 0 or a subnormal loses its value */
  if ((errno == ERANGE || (v != 0 && fabs(v) < DBL_MIN)))
    return jade_error(JADE_ERR_INVALID, "%s: '%s' underflows (magnitude below %g)", what, s, DBL_MIN);
  *out = v;
  return JADE_OK;
}

jade_status jade_parse_double(const char *what, const char *s, double *out) {
  if (!s || !s[0] || isspace((unsigned char)s[0]))
    return jade_error(JADE_ERR_INVALID, "%s: '%s' is not a number", what, s ? s : "");
  char *end;
  double v;
  jade_status st = jade_parse_double_prefix(what, s, &v, &end);
  if (st) return st;
  if (*end) return jade_error(JADE_ERR_INVALID, "%s: '%s' is not a number", what, s);
  *out = v;
  return JADE_OK;
}
