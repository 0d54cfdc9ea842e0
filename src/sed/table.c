/* Catalogue tables for `jade sed`: FITS binary tables (CFITSIO; Pence et al. 2010 A&A 524:A42),
 * whitespace text and CSV. Writers go through a temporary file and a rename. */
#include <ctype.h>
#include <fitsio.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "jade/io.h"
#include "jade/sed.h"

void jade_sed_table_free(jade_sed_table *t) {
  if (!t) return;
  for (int c = 0; c < t->n_cols; c++) {
    if (t->names) free(t->names[c]);
    if (t->col) free(t->col[c]);
  }
  free(t->names);
  free(t->col);
  memset(t, 0, sizeof *t);
}

static void fits_name(const char *in, char *out, size_t n) {
  snprintf(out, n, "%s", in);
  for (char *p = out; *p; p++)
    if (*p == '.') *p = '_';
}

jade_status jade_sed_table_write_fits(const char *path, const char *extname, const jade_sed_table *t) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
  char fn[4300];
  snprintf(fn, sizeof fn, "!%s", tmp); /* '!' = overwrite */
  fitsfile *f = NULL;
  int status = 0;
  char **ttype = calloc((size_t)t->n_cols + 1, sizeof(char *)), **tform = calloc((size_t)t->n_cols + 1, sizeof(char *));
  char (*names)[72] = calloc((size_t)t->n_cols + 1, 72);
  if (!ttype || !tform || !names) {
    free(ttype);
    free(tform);
    free(names);
    return jade_error(JADE_ERR_NOMEM, "%s: out of memory", path);
  }
  for (int c = 0; c < t->n_cols; c++) {
    fits_name(t->names[c], names[c], 72);
    ttype[c] = names[c];
    tform[c] = "1D";
  }
  fits_create_file(&f, fn, &status);
  fits_create_tbl(f, BINARY_TBL, (LONGLONG)t->n_rows, t->n_cols, ttype, tform, NULL, extname, &status);
  for (int c = 0; c < t->n_cols && !status; c++)
    if (t->n_rows) fits_write_col(f, TDOUBLE, c + 1, 1, 1, (LONGLONG)t->n_rows, t->col[c], &status);
  fits_write_chksum(f, &status);
  int cs = 0;
  if (f) fits_close_file(f, &cs);
  free(ttype);
  free(tform);
  free(names);
  if (status || cs) {
    char msg[FLEN_ERRMSG];
    fits_get_errstatus(status ? status : cs, msg);
    unlink(tmp);
    return jade_error(JADE_ERR_IO, "%s: cannot write FITS table: %s", path, msg);
  }
  if (rename(tmp, path)) {
    unlink(tmp);
    return jade_error(JADE_ERR_IO, "%s: cannot rename the temporary file into place", path);
  }
  return JADE_OK;
}

jade_status jade_sed_table_write_text(const char *path, const jade_sed_table *t) {
  jade_text_file tf;
  jade_status st = jade_text_open(path, &tf);
  if (st) return st;
  fprintf(tf.f, "#");
  for (int c = 0; c < t->n_cols; c++) fprintf(tf.f, " %s", t->names[c]);
  fprintf(tf.f, "\n");
  for (size_t i = 0; i < t->n_rows; i++) {
    for (int c = 0; c < t->n_cols; c++) fprintf(tf.f, c ? " %.17g" : "%.17g", t->col[c][i]);
    fprintf(tf.f, "\n");
  }
  return jade_text_commit(&tf);
}

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcasecmp(s + a - b, suf);
}

static jade_status table_alloc(jade_sed_table *t, int nc, size_t nr) {
  t->n_cols = nc;
  t->n_rows = nr;
  t->names = calloc((size_t)nc, sizeof(char *));
  t->col = calloc((size_t)nc, sizeof(double *));
  if (!t->names || !t->col) return JADE_ERR_NOMEM;
  for (int c = 0; c < nc; c++)
    if (!(t->col[c] = malloc((nr ? nr : 1) * sizeof(double)))) return JADE_ERR_NOMEM;
  return JADE_OK;
}

static jade_status read_fits(const char *path, jade_sed_table *t) {
  fitsfile *f = NULL;
  int status = 0, hdutype, ncols = 0;
  long nrows = 0;
  jade_status hs = jade_fits_check_headers(path);
  if (hs) return hs;
  fits_open_diskfile(&f, path, READONLY, &status);
  if (!status) fits_movabs_hdu(f, 2, &hdutype, &status);
  if (!status && hdutype != BINARY_TBL && hdutype != ASCII_TBL) status = NOT_TABLE;
  if (!status) fits_get_num_rows(f, &nrows, &status);
  if (!status) fits_get_num_cols(f, &ncols, &status);
  if (status) {
    char msg[FLEN_ERRMSG];
    fits_get_errstatus(status, msg);
    int s2 = 0;
    if (f) fits_close_file(f, &s2);
    return jade_error(JADE_ERR_FORMAT, "%s: cannot read a table in HDU 2: %s", path, msg);
  }
  jade_status st = table_alloc(t, ncols, (size_t)nrows);
  for (int c = 0; c < ncols && !st; c++) {
    char key[16], name[FLEN_VALUE] = "";
    snprintf(key, sizeof key, "TTYPE%d", c + 1);
    fits_read_key(f, TSTRING, key, name, NULL, &status);
    t->names[c] = strdup(name);
    int anynul = 0;
    double nul = NAN;
    if (nrows) fits_read_col(f, TDOUBLE, c + 1, 1, 1, nrows, &nul, t->col[c], &anynul, &status);
    if (status) {
      char msg[FLEN_ERRMSG];
      fits_get_errstatus(status, msg);
      st = jade_error(JADE_ERR_FORMAT, "%s: column %d (%s): %s", path, c + 1, name, msg);
    }
  }
  int s2 = 0;
  fits_close_file(f, &s2);
  if (st) jade_sed_table_free(t);
  return st;
}

static jade_status read_csv(const char *path, jade_sed_table *t) {
  char *text = jade_read_text_file(path);
  if (!text) return jade_error(JADE_ERR_IO, "%s: cannot read", path);
  char *save = NULL, *line = strtok_r(text, "\n", &save);
  while (line && (*line == '#' || *line == '\r' || !*line)) line = strtok_r(NULL, "\n", &save);
  if (!line) {
    free(text);
    return jade_error(JADE_ERR_FORMAT, "%s: no header row", path);
  }
  /* header */
  int nc = 1;
  for (char *p = line; *p; p++) nc += *p == ',';
  size_t cap = 1024, nr = 0;
  jade_status st = table_alloc(t, nc, cap);
  char *hs = NULL, *h = strtok_r(line, ",", &hs);
  for (int c = 0; c < nc && !st; c++) {
    while (h && isspace((unsigned char)*h)) h++;
    char *e = h ? h + strlen(h) : NULL;
    while (e && e > h && isspace((unsigned char)e[-1])) *--e = 0;
    t->names[c] = strdup(h ? h : "");
    h = strtok_r(NULL, ",", &hs);
  }
  for (line = strtok_r(NULL, "\n", &save); line && !st; line = strtok_r(NULL, "\n", &save)) {
    if (*line == '#' || *line == '\r' || !*line) continue;
    if (nr == cap) {
      cap *= 2;
      for (int c = 0; c < nc; c++) {
        double *q = realloc(t->col[c], cap * sizeof(double));
        if (!q) {
          st = JADE_ERR_NOMEM;
          break;
        }
        t->col[c] = q;
      }
      if (st) break;
    }
    char *p = line;
    for (int c = 0; c < nc; c++) {
      char *end;
      double v = strtod(p, &end);
      while (*end == ' ' || *end == '\t' || *end == '\r') end++;
      if (end == p || (c < nc - 1 && *end != ',') || (c == nc - 1 && *end)) {
        st = jade_error(JADE_ERR_FORMAT, "%s: row %zu, column %d (%s): not a number", path, nr + 1, c + 1, t->names[c]);
        break;
      }
      t->col[c][nr] = v;
      p = end + (c < nc - 1);
    }
    nr++;
  }
  t->n_rows = nr;
  free(text);
  if (st) jade_sed_table_free(t);
  return st;
}

jade_status jade_sed_table_read(const char *path, jade_sed_table *t) {
  memset(t, 0, sizeof *t);
  if (ends_with(path, ".fits") || ends_with(path, ".fit") || ends_with(path, ".fz")) return read_fits(path, t);
  return read_csv(path, t);
}

static int name_eq(const char *a, const char *b) {
  for (; *a && *b; a++, b++) {
    char x = (char)tolower((unsigned char)*a), y = (char)tolower((unsigned char)*b);
    if (x == '.') x = '_';
    if (y == '.') y = '_';
    if (x != y) return 0;
  }
  return !*a && !*b;
}

const double *jade_sed_table_column(const jade_sed_table *t, const char *name) {
  for (int c = 0; c < t->n_cols; c++)
    if (name_eq(t->names[c], name)) return t->col[c];
  return NULL;
}
