/* Tables of named numeric columns from a FITS binary/ASCII table or a text file (CSV or
 * whitespace separated, '#' comments, the first non-comment line names the columns). Used
 * for shear catalogues and n(z) tables. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <fitsio.h>

#include "jade/io.h"

#define TABLE_MAX_COLS 64
#define TABLE_MAX_ROWS ((size_t)1 << 34) /* 1.7e10 rows: beyond any catalogue, below overflow */

static int is_fits_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  char head[9] = {0};
  size_t n = fread(head, 1, 9, f);
  fclose(f);
  return n == 9 && !memcmp(head, "SIMPLE  =", 9);
}

static void free_cols(int n, double **cols) {
  for (int i = 0; i < n; i++) {
    free(cols[i]);
    cols[i] = NULL;
  }
}

/* Check every value is finite; names the column and the (1-based) row. */
static jade_status check_finite(const char *path, const char *name, const double *c, size_t n) {
  for (size_t r = 0; r < n; r++)
    if (!isfinite(c[r]))
      return jade_error(JADE_ERR_FORMAT, "%s: column '%s' row %zu is %g (NaN/Inf are not allowed)", path, name,
                        r + 1, c[r]);
  return JADE_OK;
}

static jade_status read_fits_table(const char *path, const char *extname, int n_cols, const char *const *names,
                                   const int *required, double **cols, size_t *n_rows) {
  fitsfile *f = NULL;
  int status = 0, hdutype = 0;
  char msg[FLEN_STATUS];
  jade_status hs = jade_fits_check_headers(path);
  if (hs) return hs;
  if (fits_open_diskfile(&f, path, READONLY, &status)) {
    fits_get_errstatus(status, msg);
    return jade_error(JADE_ERR_IO, "%s: cannot open as FITS (%s)", path, msg);
  }
  /* the HDU named extname if there is one, else the first table HDU */
  int n_hdu = 0;
  fits_get_num_hdus(f, &n_hdu, &status);
  int found = 0;
  if (extname && !status) {
    if (!fits_movnam_hdu(f, ANY_HDU, (char *)extname, 0, &status) && !fits_get_hdu_type(f, &hdutype, &status) &&
        (hdutype == BINARY_TBL || hdutype == ASCII_TBL))
      found = 1;
    status = 0;
    fits_clear_errmsg();
  }
  for (int h = 1; h <= n_hdu && !status && !found; h++) {
    fits_movabs_hdu(f, h, &hdutype, &status);
    if (!status && (hdutype == BINARY_TBL || hdutype == ASCII_TBL)) found = 1;
  }
  if (status || !found) {
    fits_close_file(f, &status);
    return jade_error(JADE_ERR_FORMAT, "%s: no FITS table HDU (a catalogue needs a binary table with named columns)",
                      path);
  }
  long nrows = 0;
  fits_get_num_rows(f, &nrows, &status);
  if (status || nrows < 0 || (size_t)nrows > TABLE_MAX_ROWS) {
    fits_close_file(f, &status);
    return jade_error(JADE_ERR_FORMAT, "%s: unreadable row count", path);
  }
  jade_status st = JADE_OK;
  for (int c = 0; c < n_cols && !st; c++) {
    int colnum = 0;
    status = 0;
    if (fits_get_colnum(f, CASEINSEN, (char *)names[c], &colnum, &status)) {
      status = 0;
      if (required[c]) st = jade_error(JADE_ERR_FORMAT, "%s: table has no column '%s'", path, names[c]);
      continue;
    }
    int typecode = 0;
    long repeat = 0, width = 0;
    fits_get_coltype(f, colnum, &typecode, &repeat, &width, &status);
    if (status || repeat != 1 || typecode == TSTRING || typecode == TLOGICAL) {
      st = jade_error(JADE_ERR_FORMAT, "%s: column '%s' is not a scalar numeric column", path, names[c]);
      break;
    }
    cols[c] = malloc(sizeof(double) * (size_t)(nrows ? nrows : 1));
    if (!cols[c]) {
      st = jade_error(JADE_ERR_NOMEM, "%s: out of memory for %ld rows", path, nrows);
      break;
    }
    int anynul = 0;
    double nulval = NAN;
    if (nrows && fits_read_col(f, TDOUBLE, colnum, 1, 1, nrows, &nulval, cols[c], &anynul, &status)) {
      fits_get_errstatus(status, msg);
      st = jade_error(JADE_ERR_FORMAT, "%s: reading column '%s': %s", path, names[c], msg);
      break;
    }
    st = check_finite(path, names[c], cols[c], (size_t)nrows);
  }
  status = 0;
  fits_close_file(f, &status);
  if (st) {
    free_cols(n_cols, cols);
    return st;
  }
  *n_rows = (size_t)nrows;
  return JADE_OK;
}

/* Split a line at commas or whitespace (in place). Returns the field count (<= max). */
static int split_fields(char *line, char **fields, int max) {
  int n = 0;
  char *p = line;
  int csv = strchr(line, ',') != NULL;
  while (*p && n < max + 1) {
    while (*p == ' ' || *p == '\t') p++;
    if (!*p || *p == '\n' || *p == '\r') break;
    char *start = p;
    if (csv) {
      while (*p && *p != ',' && *p != '\n' && *p != '\r') p++;
    } else {
      while (*p && !isspace((unsigned char)*p)) p++;
    }
    char *end = p;
    while (end > start && isspace((unsigned char)end[-1])) end--;
    int more = *p == ',';
    if (*p) *p++ = 0;
    *end = 0;
    if (n < max) fields[n] = start;
    n++;
    if (csv && !more) break;
  }
  return n;
}

static jade_status read_text_table(const char *path, int n_cols, const char *const *names, const int *required,
                                   double **cols, size_t *n_rows) {
  FILE *f = fopen(path, "r");
  if (!f) return jade_error(JADE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int index[TABLE_MAX_COLS];
  int n_fields = -1;
  size_t rows = 0, row_cap = 0, line_no = 0;
  jade_status st = JADE_OK;
  char *fields[TABLE_MAX_COLS + 1];
  while (!st && (len = getline(&line, &cap, f)) >= 0) {
    line_no++;
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '#' || *p == '\n' || *p == '\r' || !*p) continue;
    int nf = split_fields(p, fields, TABLE_MAX_COLS);
    if (n_fields < 0) { /* header */
      if (nf > TABLE_MAX_COLS) {
        st = jade_error(JADE_ERR_FORMAT, "%s:%zu: more than %d columns", path, line_no, TABLE_MAX_COLS);
        break;
      }
      n_fields = nf;
      for (int c = 0; c < n_cols && !st; c++) {
        index[c] = -1;
        for (int k = 0; k < nf; k++)
          if (!strcasecmp(fields[k], names[c])) index[c] = k;
        if (index[c] < 0 && required[c])
          st = jade_error(JADE_ERR_FORMAT, "%s:%zu: header has no column '%s' (the first line names the columns)",
                          path, line_no, names[c]);
      }
      continue;
    }
    if (nf != n_fields) {
      st = jade_error(JADE_ERR_FORMAT, "%s:%zu: %d fields where the header has %d", path, line_no, nf, n_fields);
      break;
    }
    if (rows == row_cap) {
      size_t nc = row_cap ? 2 * row_cap : 1024;
      if (nc > TABLE_MAX_ROWS) {
        st = jade_error(JADE_ERR_FORMAT, "%s: too many rows", path);
        break;
      }
      for (int c = 0; c < n_cols && !st; c++) {
        if (index[c] < 0) continue;
        double *q = realloc(cols[c], sizeof(double) * nc);
        if (!q)
          st = jade_error(JADE_ERR_NOMEM, "%s: out of memory at row %zu", path, rows);
        else
          cols[c] = q;
      }
      row_cap = nc;
    }
    for (int c = 0; c < n_cols && !st; c++) {
      if (index[c] < 0) continue;
      const char *s = fields[index[c]];
      char *end;
      errno = 0;
      double v = strtod(s, &end);
      if (end == s || *end || errno == ERANGE || !isfinite(v))
        st = jade_error(JADE_ERR_FORMAT, "%s:%zu: column '%s' value '%s' is not a finite number", path, line_no,
                        names[c], s);
      else
        cols[c][rows] = v;
    }
    rows++;
  }
  if (!st && ferror(f)) st = jade_error(JADE_ERR_IO, "%s: read error", path);
  if (!st && n_fields < 0) st = jade_error(JADE_ERR_FORMAT, "%s: empty table (no header line)", path);
  free(line);
  fclose(f);
  if (st) {
    free_cols(n_cols, cols);
    return st;
  }
  *n_rows = rows;
  return JADE_OK;
}

jade_status jade_table_read(const char *path, int n_cols, const char *const *names, const int *required,
                            double **cols, size_t *n_rows) {
  return jade_table_read_hdu(path, NULL, n_cols, names, required, cols, n_rows);
}

jade_status jade_table_read_hdu(const char *path, const char *extname, int n_cols, const char *const *names,
                                const int *required, double **cols, size_t *n_rows) {
  if (n_cols < 1 || n_cols > TABLE_MAX_COLS) return jade_error(JADE_ERR_INVALID, "table: bad column count");
  for (int c = 0; c < n_cols; c++) cols[c] = NULL;
  *n_rows = 0;
  struct stat sb;
  if (stat(path, &sb)) return jade_error(JADE_ERR_IO, "%s: %s", path, strerror(errno));
  if (!S_ISREG(sb.st_mode)) return jade_error(JADE_ERR_IO, "%s: not a regular file", path);
  return is_fits_file(path) ? read_fits_table(path, extname, n_cols, names, required, cols, n_rows)
                            : read_text_table(path, n_cols, names, required, cols, n_rows);
}
