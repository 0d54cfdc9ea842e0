/* Shared by the libFuzzer harnesses: the input written to a per-process temporary file (the
 * readers take paths), and splitting one input into several files at a separator. */
#ifndef JADE_FUZZ_UTIL_H
#define JADE_FUZZ_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jade/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A directory of our own under $TMPDIR (or /tmp), made once per process. */
static inline const char *fuzz_dir(void) {
  static char dir[512];
  if (!dir[0]) {
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/jade_fuzz_%ld", t && t[0] ? t : "/tmp", (long)getpid());
    mkdir(dir, 0777);
  }
  return dir;
}

static inline const char *fuzz_path(const char *name) {
  static char p[4][700];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", fuzz_dir(), name);
  return p[k];
}

/* Write bytes to dir/name; returns the path (or NULL). */
static inline const char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
  const char *path = fuzz_path(name);
  FILE *f = fopen(path, "wb");
  if (!f) return NULL;
  if (size && fwrite(data, 1, size, f) != size) {
    fclose(f);
    return NULL;
  }
  fclose(f);
  return path;
}

/* The separator between files in multi-file inputs (see scripts/fuzz_corpus.sh). */
#define FUZZ_SEP "\n--JADE-FUZZ-FILE--\n"

/* Split [data, data+size) at FUZZ_SEP into at most max parts; returns the count. */
static inline int fuzz_split(const uint8_t *data, size_t size, const uint8_t **part, size_t *len, int max) {
  const size_t sl = strlen(FUZZ_SEP);
  int n = 0;
  size_t start = 0;
  for (size_t i = 0; n < max - 1 && i + sl <= size; i++)
    if (!memcmp(data + i, FUZZ_SEP, sl)) {
      part[n] = data + start;
      len[n++] = i - start;
      start = i + sl;
      i += sl - 1;
    }
  part[n] = data + start;
  len[n++] = size - start;
  return n;
}

/* An invariant the reader must keep: abort (a crash libFuzzer reports) if it does not. */
#define FUZZ_ASSERT(c)                                                              \
  do {                                                                              \
    if (!(c)) {                                                                     \
      fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); \
      abort();                                                                      \
    }                                                                               \
  } while (0)

/* Every failure must leave a one-line message. */
static inline void fuzz_check_error(jade_status st) {
  if (st) {
    const char *m = jade_last_error();
    FUZZ_ASSERT(m && m[0]);
    FUZZ_ASSERT(!strchr(m, '\n'));
  }
  jade_clear_error();
}
#endif
