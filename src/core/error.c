/* The error channel: one message buffer per thread. */
#include "jade/core.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char jade_error_message[1024];

/* Messages quote untrusted text (config values, file contents): keep them on one line. */
static void one_line(char *m) {
  for (; *m; m++)
    if ((unsigned char)*m < 32 || *m == 127) *m = '?';
}

jade_status jade_error(jade_status code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(jade_error_message, sizeof jade_error_message, fmt, ap);
  va_end(ap);
  one_line(jade_error_message);
  return code;
}

jade_status jade_error_context(jade_status code, const char *fmt, ...) {
  char prefix[512], old[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, jade_error_message, sizeof old);
  if (old[0])
    snprintf(jade_error_message, sizeof jade_error_message, "%.500s: %.520s", prefix, old);
  else
    snprintf(jade_error_message, sizeof jade_error_message, "%s", prefix);
  one_line(jade_error_message);
  return code;
}

const char *jade_last_error(void) {
  return jade_error_message[0] ? jade_error_message : "unknown error";
}

void jade_clear_error(void) { jade_error_message[0] = 0; }

void *jade_alloc(size_t bytes) {
  void *p = NULL;
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  if (posix_memalign(&p, 64, rounded) != 0) {
    jade_error(JADE_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
    return NULL;
  }
  return p;
}

void *jade_calloc(size_t n, size_t size) {
  if (size && n > (size_t)-1 / size) {
    jade_error(JADE_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", n, size);
    return NULL;
  }
  void *p = jade_alloc(n * size);
  if (p) memset(p, 0, n * size);
  return p;
}

double jade_time_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void jade_format_duration(double s, char *out, size_t n) {
  if (!isfinite(s) || s < 0) {
    snprintf(out, n, "?");
    return;
  }
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(out, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    snprintf(out, n, "%ldm%02lds", t / 60, t % 60);
  else
    snprintf(out, n, "%lds", t);
}
