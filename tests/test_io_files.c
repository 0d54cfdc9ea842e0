/* Atomic text files, jade_write_file_atomic, jade_mkdir_p, dtype sizes. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jade/io.h"
#include "test_files.h"
#include "test_util.h"

/* Number of entries in a directory (excluding . and ..); with names containing ".tmp." */
static int count_entries(const char *p, int *n_tmp) {
  int n = 0;
  if (n_tmp) *n_tmp = 0;
  DIR *d = opendir(p);
  if (!d) return -1;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    n++;
    if (n_tmp && strstr(e->d_name, ".tmp.")) (*n_tmp)++;
  }
  closedir(d);
  return n;
}

static char *slurp(const char *p) {
  FILE *f = fopen(p, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  size_t got = fread(s, 1, (size_t)n, f);
  s[got] = 0;
  fclose(f);
  return s;
}

static int exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

int main(void) {
  test_dir_create("test_io_files");
  char p[1024], q[1024];
  int ntmp;

  /* dtype sizes */
  CHECK(jade_dtype_size(JADE_F32) == 4, "f32");
  CHECK(jade_dtype_size(JADE_F64) == 8, "f64");
  CHECK(jade_dtype_size(JADE_I64) == 8, "i64");
  CHECK(jade_dtype_size(JADE_U8) == 1, "u8");
  CHECK(jade_dtype_size((jade_dtype)42) == 0, "unknown dtype");

  /* whole-file write, overwrite */
  snprintf(p, sizeof p, "%s/a.txt", test_dir);
  CHECK_OK(jade_write_file_atomic(p, "hello\nworld\n"));
  char *s = slurp(p);
  CHECK(s && !strcmp(s, "hello\nworld\n"), "content '%s'", s ? s : "(null)");
  free(s);
  CHECK_OK(jade_write_file_atomic(p, "second"));
  s = slurp(p);
  CHECK(s && !strcmp(s, "second"), "overwritten content '%s'", s ? s : "(null)");
  free(s);
  CHECK_OK(jade_write_file_atomic(p, ""));
  s = slurp(p);
  CHECK(s && s[0] == 0, "empty content");
  free(s);
  CHECK(count_entries(test_dir, &ntmp) == 1 && ntmp == 0, "one file, no temporaries");

  /* text file: commit */
  jade_text_file t;
  snprintf(p, sizeof p, "%s/b.txt", test_dir);
  CHECK_OK(jade_text_open(p, &t));
  CHECK(!exists(p), "nothing at the final name before commit");
  fprintf(t.f, "x=%d\n", 42);
  CHECK_OK(jade_text_commit(&t));
  s = slurp(p);
  CHECK(s && !strcmp(s, "x=42\n"), "text content");
  free(s);
  jade_text_abort(&t); /* harmless after commit */
  CHECK(exists(p), "abort after commit keeps the file");

  /* text file: abort leaves nothing (and does not touch an existing file) */
  snprintf(p, sizeof p, "%s/c.txt", test_dir);
  CHECK_OK(jade_text_open(p, &t));
  fprintf(t.f, "partial");
  jade_text_abort(&t);
  CHECK(!exists(p), "aborted file absent");
  snprintf(p, sizeof p, "%s/b.txt", test_dir);
  CHECK_OK(jade_text_open(p, &t));
  fprintf(t.f, "replacement");
  jade_text_abort(&t);
  s = slurp(p);
  CHECK(s && !strcmp(s, "x=42\n"), "abort keeps the old content");
  free(s);
  CHECK(count_entries(test_dir, &ntmp) == 2 && ntmp == 0, "no temporaries after abort");

  /* non-existent directory: error naming the path and strerror; nothing created */
  snprintf(p, sizeof p, "%s/missing/sub/x.txt", test_dir);
  jade_status st = jade_write_file_atomic(p, "x");
  CHECK(st == JADE_ERR_IO, "missing test_dir status %d", (int)st);
  CHECK(strstr(jade_last_error(), p) != NULL, "message names path: %s", jade_last_error());
  CHECK(strstr(jade_last_error(), strerror(ENOENT)) != NULL, "message has strerror: %s",
        jade_last_error());
  snprintf(q, sizeof q, "%s/missing", test_dir);
  CHECK(!exists(q), "no directory created");
  CHECK(jade_text_open(p, &t) == JADE_ERR_IO, "text_open into missing test_dir");
  CHECK(t.f == NULL, "no FILE on failure");

  /* commit failure (rename onto a directory): temporary removed, directory untouched */
  snprintf(p, sizeof p, "%s/adir", test_dir);
  CHECK(mkdir(p, 0700) == 0, "mkdir");
  snprintf(q, sizeof q, "%s/adir/inner", test_dir);
  CHECK(mkdir(q, 0700) == 0, "mkdir inner");
  CHECK_OK(jade_text_open(p, &t));
  fprintf(t.f, "data");
  st = jade_text_commit(&t);
  CHECK(st == JADE_ERR_IO, "commit onto a non-empty directory fails (%d)", (int)st);
  CHECK(strstr(jade_last_error(), p) != NULL, "message names path: %s", jade_last_error());
  CHECK(count_entries(test_dir, &ntmp) == 3 && ntmp == 0, "no temporary left after failed commit");
  CHECK(jade_text_commit(&t) == JADE_ERR_INVALID, "second commit rejected");

  /* a "directory" that is a regular file: fails even for root */
  snprintf(q, sizeof q, "%s/a.txt", test_dir);
  snprintf(p, sizeof p, "%s/a.txt/x.txt", test_dir);
  st = jade_write_file_atomic(p, "x");
  CHECK(st == JADE_ERR_IO && strstr(jade_last_error(), p) &&
            strstr(jade_last_error(), strerror(ENOTDIR)),
        "parent is a file: %s", jade_last_error());

  /* unwritable directory (skipped as root, where permissions do not apply) */
  if (geteuid() != 0) {
    snprintf(q, sizeof q, "%s/ro", test_dir);
    CHECK(mkdir(q, 0500) == 0, "mkdir ro");
    snprintf(p, sizeof p, "%s/ro/x.txt", test_dir);
    st = jade_write_file_atomic(p, "x");
    CHECK(st == JADE_ERR_IO, "read-only test_dir status %d", (int)st);
    CHECK(strstr(jade_last_error(), p) && strstr(jade_last_error(), strerror(EACCES)),
          "message: %s", jade_last_error());
    CHECK(count_entries(q, NULL) == 0, "nothing created in read-only test_dir");
    snprintf(p, sizeof p, "%s/ro/newdir/deeper", test_dir);
    st = jade_mkdir_p(p);
    CHECK(st == JADE_ERR_IO && strstr(jade_last_error(), p), "mkdir_p in read-only test_dir: %s",
          jade_last_error());
  }

  /* mkdir_p */
  snprintf(p, sizeof p, "%s/m/n//o/p/", test_dir);
  CHECK_OK(jade_mkdir_p(p));
  snprintf(q, sizeof q, "%s/m/n/o/p", test_dir);
  struct stat sb;
  CHECK(stat(q, &sb) == 0 && S_ISDIR(sb.st_mode), "nested dirs created");
  CHECK_OK(jade_mkdir_p(p)); /* idempotent */
  CHECK_OK(jade_mkdir_p(test_dir));
  snprintf(q, sizeof q, "%s/m/n/o/p/file", test_dir);
  CHECK_OK(jade_write_file_atomic(q, "f"));
  snprintf(p, sizeof p, "%s/m/n/o/p/file/sub", test_dir);
  st = jade_mkdir_p(p);
  CHECK(st == JADE_ERR_IO, "mkdir through a file fails (%d)", (int)st);
  CHECK(strstr(jade_last_error(), "not a directory") && strstr(jade_last_error(), q),
        "message names the file: %s", jade_last_error());
  CHECK(jade_mkdir_p("") == JADE_ERR_INVALID, "empty path");
  /* relative path */
  char cwd[4096];
  CHECK(getcwd(cwd, sizeof cwd) != NULL, "getcwd");
  CHECK(chdir(test_dir) == 0, "chdir");
  CHECK_OK(jade_mkdir_p("rel/a"));
  CHECK_OK(jade_write_file_atomic("rel/a/r.txt", "r"));
  CHECK(chdir(cwd) == 0, "chdir back");
  snprintf(q, sizeof q, "%s/rel/a/r.txt", test_dir);
  CHECK(exists(q), "relative write");

  TEST_RETURN();
}
