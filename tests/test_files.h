/* File helpers shared by the tests that write files: a private temporary directory removed
 * at exit (also after a failed CHECK_OK), whole-file read/write, counting leftover
 * temporaries of the atomic writers. */
#ifndef JADE_TEST_FILES_H
#define JADE_TEST_FILES_H
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char test_dir[256];

/* rm -r (making read-only directories writable first) */
static void test_rm_rf(const char *p) {
  struct stat st;
  if (lstat(p, &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    chmod(p, 0700);
    DIR *d = opendir(p);
    if (d) {
      struct dirent *e;
      while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", p, e->d_name);
        test_rm_rf(sub);
      }
      closedir(d);
    }
    rmdir(p);
  } else {
    unlink(p);
  }
}

static void test_dir_cleanup(void) { test_rm_rf(test_dir); }

/* Creates /tmp/jade_<name>_XXXXXX as test_dir, removed at exit; exits on failure. */
static void test_dir_create(const char *name) {
  snprintf(test_dir, sizeof test_dir, "/tmp/jade_%s_XXXXXX", name);
  if (!mkdtemp(test_dir)) {
    perror("mkdtemp");
    exit(1);
  }
  atexit(test_dir_cleanup);
}

/* Entries of directory p whose names contain ".tmp." (-1 if p cannot be read). */
static inline int test_count_tmp(const char *p) {
  int n = 0;
  DIR *d = opendir(p);
  if (!d) return -1;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strstr(e->d_name, ".tmp.")) n++;
  closedir(d);
  return n;
}

/* Whole file (malloc'd, NUL-terminated), its size in *n; NULL if unreadable. */
static inline unsigned char *test_slurp(const char *p, size_t *n) {
  *n = 0;
  FILE *f = fopen(p, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *s = malloc((size_t)len + 1);
  *n = fread(s, 1, (size_t)len, f);
  s[*n] = 0;
  fclose(f);
  return s;
}

static inline void test_write_bytes(const char *p, const void *b, size_t n) {
  FILE *f = fopen(p, "wb");
  if (!f || fwrite(b, 1, n, f) != n) {
    perror(p);
    exit(1);
  }
  fclose(f);
}
#endif
