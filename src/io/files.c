/* Atomic whole-file output ("<path>.tmp.<pid>", fflush + fsync, rename), mkdir -p, and
 * dtype sizes. On any failure the temporary is removed and nothing appears at <path>. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "jade/io.h"

size_t jade_dtype_size(jade_dtype t) {
  switch (t) {
    case JADE_F32: return 4;
    case JADE_F64: return 8;
    case JADE_I64: return 8;
    case JADE_U8: return 1;
    case JADE_F16: return 2;
  }
  return 0;
}

void jade_sync_parent_dir(const char *path) {
  char dir[4096];
  const char *slash = strrchr(path, '/');
  if (!slash) {
    strcpy(dir, ".");
  } else if (slash == path) {
    strcpy(dir, "/");
  } else {
    size_t n = (size_t)(slash - path);
    if (n >= sizeof dir) return;
    memcpy(dir, path, n);
    dir[n] = 0;
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  (void)fsync(fd);
  close(fd);
}

jade_status jade_text_open(const char *path, jade_text_file *t) {
  if (!t) return jade_error(JADE_ERR_INVALID, "jade_text_open: NULL file handle");
  memset(t, 0, sizeof *t);
  if (!path || !path[0]) return jade_error(JADE_ERR_INVALID, "jade_text_open: empty path");
  size_t len = strlen(path);
  if (len >= sizeof t->path)
    return jade_error(JADE_ERR_INVALID, "%.200s...: path too long (%zu characters)", path, len);
  if (path[len - 1] == '/')
    return jade_error(JADE_ERR_INVALID, "%s: is a directory name, not a file", path);
  memcpy(t->path, path, len + 1);
  snprintf(t->tmp, sizeof t->tmp, "%s.tmp.%ld", path, (long)getpid());
  t->f = fopen(t->tmp, "wb");
  if (!t->f) {
    int e = errno;
    t->tmp[0] = 0;
    return jade_error(JADE_ERR_IO, "%s: cannot create file: %s", path, strerror(e));
  }
  return JADE_OK;
}

void jade_text_abort(jade_text_file *t) {
  if (!t) return;
  if (t->f) fclose(t->f);
  t->f = NULL;
  if (t->tmp[0]) unlink(t->tmp);
  t->tmp[0] = 0;
}

jade_status jade_text_commit(jade_text_file *t) {
  if (!t || !t->f || !t->tmp[0])
    return jade_error(JADE_ERR_INVALID, "jade_text_commit: file is not open");
  const char *what = NULL;
  int e = 0;
  if (fflush(t->f) != 0 || ferror(t->f)) {
    e = errno ? errno : EIO;
    what = "write failed";
  } else if (fsync(fileno(t->f)) != 0 && errno != EINVAL && errno != EROFS) {
    e = errno;  /* EINVAL: the file does not support syncing (e.g. a pipe); not an error */
    what = "fsync failed";
  }
  int rc = fclose(t->f);
  t->f = NULL;
  if (!what && rc != 0) {
    e = errno;
    what = "close failed";
  }
  if (!what && rename(t->tmp, t->path) != 0) {
    e = errno;
    what = "cannot rename temporary file into place";
  }
  if (what) {
    unlink(t->tmp);
    t->tmp[0] = 0;
    return jade_error(JADE_ERR_IO, "%s: %s: %s", t->path, what, strerror(e));
  }
  t->tmp[0] = 0;
  jade_sync_parent_dir(t->path);
  return JADE_OK;
}

jade_status jade_write_file_atomic(const char *path, const char *text) {
  jade_text_file t;
  jade_status s = jade_text_open(path, &t);
  if (s) return s;
  size_t n = text ? strlen(text) : 0;
  if (n && fwrite(text, 1, n, t.f) != n) {
    int e = errno;
    jade_text_abort(&t);
    return jade_error(JADE_ERR_IO, "%s: write failed: %s", path, strerror(e));
  }
  return jade_text_commit(&t);
}

jade_status jade_mkdir_p(const char *path) {
  if (!path || !path[0]) return jade_error(JADE_ERR_INVALID, "jade_mkdir_p: empty path");
  char buf[4096];
  size_t len = strlen(path);
  if (len >= sizeof buf)
    return jade_error(JADE_ERR_INVALID, "%.200s...: path too long (%zu characters)", path, len);
  memcpy(buf, path, len + 1);
  while (len > 1 && buf[len - 1] == '/') buf[--len] = 0;  /* trailing slashes */
  for (size_t i = 1; i <= len; i++) {
    if (buf[i] != '/' && buf[i] != 0) continue;
    if (buf[i - 1] == '/') continue;  /* "a//b" */
    char saved = buf[i];
    buf[i] = 0;
    if (mkdir(buf, 0777) != 0) {
      int e = errno;
      struct stat st;
      if (stat(buf, &st) != 0) {
        return jade_error(JADE_ERR_IO, "%s: cannot create directory '%s': %s", path, buf,
                          strerror(e));
      }
      if (!S_ISDIR(st.st_mode)) {
        return jade_error(JADE_ERR_IO, "%s: cannot create directory: '%s' exists and is not "
                          "a directory", path, buf);
      }
    }
    buf[i] = saved;
  }
  return JADE_OK;
}

char *jade_read_text_file(const char *path) {
  /* only regular files: a FIFO would block (O_NONBLOCK: not even on open) */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat sb;
  int st = fstat(fd, &sb);
  if (st != 0 || !S_ISREG(sb.st_mode)) {
    int e = st != 0 ? errno : S_ISDIR(sb.st_mode) ? EISDIR : EINVAL;
    close(fd);
    errno = e;
    return NULL;
  }
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    close(fd);
    return NULL;
  }
  size_t cap = 4096, n = 0;
  char *b = malloc(cap);
  while (b) {
    if (n + 1 == cap) {
      char *nb = realloc(b, cap *= 2);
      if (!nb) {
        free(b);
        b = NULL;
        break;
      }
      b = nb;
    }
    size_t r = fread(b + n, 1, cap - n - 1, f);
    n += r;
    if (r == 0) break;
  }
  if (b && ferror(f)) {
    free(b);
    b = NULL;
  }
  if (b) b[n] = 0;
  fclose(f);
  return b;
}

int jade_path_exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

int jade_path_is_dir(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

double jade_json_number(const char *text, const char *key) {
  char pat[128];
  snprintf(pat, sizeof pat, "\"%s\"", key);
  const char *p = text ? strstr(text, pat) : NULL;
  if (!p) return NAN;
  p = strchr(p + strlen(pat), ':');
  if (!p) return NAN;
  char *end;
  double v = strtod(p + 1, &end);
  return end == p + 1 ? NAN : v;
}

/* "<name>.tmp.<digits>": the temporary of an atomic writer (jade_text_open, the npy and FITS
 * writers) */
int jade_is_temporary_name(const char *name) {
  const char *t = strstr(name, ".tmp.");
  if (!t || t == name) return 0;
  const char *d = t + 5;
  while (t) { /* the last ".tmp." */
    d = t + 5;
    t = strstr(d, ".tmp.");
  }
  if (!*d) return 0;
  for (; *d; d++)
    if (*d < '0' || *d > '9') return 0;
  return 1;
}

jade_status jade_remove_temporaries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return jade_error(JADE_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
  struct dirent *e;
  char path[4400];
  jade_status st = JADE_OK;
  while ((e = readdir(d)))
    if (jade_is_temporary_name(e->d_name)) {
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      struct stat sb;
      if (lstat(path, &sb) == 0 && S_ISREG(sb.st_mode) && unlink(path) != 0 && !st)
        st = jade_error(JADE_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    }
  closedir(d);
  return st;
}

jade_status jade_remove_file(const char *path) {
  if (unlink(path) != 0) return jade_error(JADE_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
  return JADE_OK;
}

jade_status jade_publish_dir(const char *partial, const char *out_dir) {
  jade_status st = jade_remove_temporaries(partial); /* of killed runs */
  char path[4400];
  snprintf(path, sizeof path, "%s/run.txt", partial); /* last: until here the run stays resumable */
  if (!st) st = jade_remove_file(path);
  if (!st && rename(partial, out_dir) != 0)
    st = jade_error(JADE_ERR_IO, "%s: cannot rename to %s: %s", partial, out_dir, strerror(errno));
  if (!st) jade_sync_parent_dir(out_dir);
  return st;
}

/* Does dir hold nothing but temporaries of killed writers? */
static int only_temporaries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  struct dirent *e;
  int only = 1;
  while (only && (e = readdir(d)))
    only = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || jade_is_temporary_name(e->d_name);
  closedir(d);
  return only;
}

jade_status jade_run_dir_check(const char *partial, const char *ident, const char *what_differs, int *exists) {
  *exists = 0;
  if (!jade_path_exists(partial)) return JADE_OK;
  char path[4400];
  snprintf(path, sizeof path, "%s/run.txt", partial);
  char *prev = jade_read_text_file(path);
  jade_status st = JADE_OK;
  if (!prev && only_temporaries(partial)) /* killed while being created: start afresh */
    return jade_remove_dir(partial);
  if (!prev || strcmp(prev, ident) != 0)
    st = jade_error(JADE_ERR_IO, "%s: exists from a different run (%s differ); remove it to start over", partial, what_differs);
  else
    *exists = 1;
  free(prev);
  return st;
}

jade_status jade_run_dir_create(const char *partial, const char *ident) {
  char path[4400];
  snprintf(path, sizeof path, "%s/run.txt", partial);
  jade_status st = jade_mkdir_p(partial);
  if (!st) st = jade_write_file_atomic(path, ident);
  return st;
}

jade_status jade_remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return jade_error(JADE_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
  struct dirent *e;
  char path[4400];
  jade_status st = JADE_OK;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (unlink(path) != 0 && !st) st = jade_error(JADE_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
  }
  closedir(d);
  if (!st && rmdir(dir) != 0) st = jade_error(JADE_ERR_IO, "%s: cannot remove: %s", dir, strerror(errno));
  return st;
}
