/* Atomic text files, jade_write_file_atomic, jade_mkdir_p, dtype sizes. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jade/io.h"
#include "test_util.h"

static char dir[256];

static void rm_rf(const char *p) {
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
        rm_rf(sub);
      }
      closedir(d);
    }
    rmdir(p);
  } else {
    unlink(p);
  }
}

static void cleanup(void) { rm_rf(dir); }

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
  snprintf(dir, sizeof dir, "/tmp/jade_test_io_files_XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  atexit(cleanup); /* also after a CHECK_OK failure */
  char p[1024], q[1024];
  int ntmp;

  /* dtype sizes */
  CHECK(jade_dtype_size(JADE_F32) == 4, "f32");
  CHECK(jade_dtype_size(JADE_F64) == 8, "f64");
  CHECK(jade_dtype_size(JADE_I64) == 8, "i64");
  CHECK(jade_dtype_size(JADE_U8) == 1, "u8");
  CHECK(jade_dtype_size((jade_dtype)42) == 0, "unknown dtype");

  /* whole-file write, overwrite */
  snprintf(p, sizeof p, "%s/a.txt", dir);
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
  CHECK(count_entries(dir, &ntmp) == 1 && ntmp == 0, "one file, no temporaries");

  /* text file: commit */
  jade_text_file t;
  snprintf(p, sizeof p, "%s/b.txt", dir);
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
  snprintf(p, sizeof p, "%s/c.txt", dir);
  CHECK_OK(jade_text_open(p, &t));
  fprintf(t.f, "partial");
  jade_text_abort(&t);
  CHECK(!exists(p), "aborted file absent");
  snprintf(p, sizeof p, "%s/b.txt", dir);
  CHECK_OK(jade_text_open(p, &t));
  fprintf(t.f, "replacement");
  jade_text_abort(&t);
  s = slurp(p);
  CHECK(s && !strcmp(s, "x=42\n"), "abort keeps the old content");
  free(s);
  CHECK(count_entries(dir, &ntmp) == 2 && ntmp == 0, "no temporaries after abort");

  /* non-existent directory: error naming the path and strerror; nothing created */
  snprintf(p, sizeof p, "%s/missing/sub/x.txt", dir);
  jade_status st = jade_write_file_atomic(p, "x");
  CHECK(st == JADE_ERR_IO, "missing dir status %d", (int)st);
  CHECK(strstr(jade_last_error(), p) != NULL, "message names path: %s", jade_last_error());
  CHECK(strstr(jade_last_error(), strerror(ENOENT)) != NULL, "message has strerror: %s",
        jade_last_error());
  snprintf(q, sizeof q, "%s/missing", dir);
  CHECK(!exists(q), "no directory created");
  CHECK(jade_text_open(p, &t) == JADE_ERR_IO, "text_open into missing dir");
  CHECK(t.f == NULL, "no FILE on failure");

  /* commit failure (rename onto a directory): temporary removed, directory untouched */
  snprintf(p, sizeof p, "%s/adir", dir);
  CHECK(mkdir(p, 0700) == 0, "mkdir");
  snprintf(q, sizeof q, "%s/adir/inner", dir);
  CHECK(mkdir(q, 0700) == 0, "mkdir inner");
  CHECK_OK(jade_text_open(p, &t));
  fprintf(t.f, "data");
  st = jade_text_commit(&t);
  CHECK(st == JADE_ERR_IO, "commit onto a non-empty directory fails (%d)", (int)st);
  CHECK(strstr(jade_last_error(), p) != NULL, "message names path: %s", jade_last_error());
  CHECK(count_entries(dir, &ntmp) == 3 && ntmp == 0, "no temporary left after failed commit");
  CHECK(jade_text_commit(&t) == JADE_ERR_INVALID, "second commit rejected");

  /* a "directory" that is a regular file: fails even for root */
  snprintf(q, sizeof q, "%s/a.txt", dir);
  snprintf(p, sizeof p, "%s/a.txt/x.txt", dir);
  st = jade_write_file_atomic(p, "x");
  CHECK(st == JADE_ERR_IO && strstr(jade_last_error(), p) &&
            strstr(jade_last_error(), strerror(ENOTDIR)),
        "parent is a file: %s", jade_last_error());

  /* unwritable directory (skipped as root, where permissions do not apply) */
  if (geteuid() != 0) {
    snprintf(q, sizeof q, "%s/ro", dir);
    CHECK(mkdir(q, 0500) == 0, "mkdir ro");
    snprintf(p, sizeof p, "%s/ro/x.txt", dir);
    st = jade_write_file_atomic(p, "x");
    CHECK(st == JADE_ERR_IO, "read-only dir status %d", (int)st);
    CHECK(strstr(jade_last_error(), p) && strstr(jade_last_error(), strerror(EACCES)),
          "message: %s", jade_last_error());
    CHECK(count_entries(q, NULL) == 0, "nothing created in read-only dir");
    snprintf(p, sizeof p, "%s/ro/newdir/deeper", dir);
    st = jade_mkdir_p(p);
    CHECK(st == JADE_ERR_IO && strstr(jade_last_error(), p), "mkdir_p in read-only dir: %s",
          jade_last_error());
  }

  /* mkdir_p */
  snprintf(p, sizeof p, "%s/m/n//o/p/", dir);
  CHECK_OK(jade_mkdir_p(p));
  snprintf(q, sizeof q, "%s/m/n/o/p", dir);
  struct stat sb;
  CHECK(stat(q, &sb) == 0 && S_ISDIR(sb.st_mode), "nested dirs created");
  CHECK_OK(jade_mkdir_p(p)); /* idempotent */
  CHECK_OK(jade_mkdir_p(dir));
  snprintf(q, sizeof q, "%s/m/n/o/p/file", dir);
  CHECK_OK(jade_write_file_atomic(q, "f"));
  snprintf(p, sizeof p, "%s/m/n/o/p/file/sub", dir);
  st = jade_mkdir_p(p);
  CHECK(st == JADE_ERR_IO, "mkdir through a file fails (%d)", (int)st);
  CHECK(strstr(jade_last_error(), "not a directory") && strstr(jade_last_error(), q),
        "message names the file: %s", jade_last_error());
  CHECK(jade_mkdir_p("") == JADE_ERR_INVALID, "empty path");
  /* relative path */
  char cwd[4096];
  CHECK(getcwd(cwd, sizeof cwd) != NULL, "getcwd");
  CHECK(chdir(dir) == 0, "chdir");
  CHECK_OK(jade_mkdir_p("rel/a"));
  CHECK_OK(jade_write_file_atomic("rel/a/r.txt", "r"));
  CHECK(chdir(cwd) == 0, "chdir back");
  snprintf(q, sizeof q, "%s/rel/a/r.txt", dir);
  CHECK(exists(q), "relative write");

  TEST_RETURN();
}
