/* jade report: figures and a self-contained HTML page for sample, validate and mcmc outputs
 * (include/jade/report.h). */
#include "jade/report.h"

#include <dirent.h>
#include <errno.h>
#include <fitsio.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jade/io.h"
#include "jade/lensing.h"
#include "jade/observation.h"
#include "jade/plot.h"
#include "jade/posterior.h"
#include "jade/sed.h"
#include "jade/sim.h"

#define NCOL JADE_POSTERIOR_COLS
#define PRIOR_DRAWS 20000 /* prior draws behind the corner plot's prior curves and the table */
static const jade_rgb C_JADE = 0x1F77B4, C_MCMC = 0xE8710A, C_TRUTH = 0x111111, C_OBS = 0x8C8C8C;
static const jade_rgb C_THEORY = 0x2CA02C, C_NOISE = 0x9467BD, C_PRIOR = 0x7F7F7F;
/* corner-plot labels of the posterior columns (UTF-8: Omega, sigma) */
static const char *const col_label[NCOL] = {"\xCE\xA9" "c", "\xCE\xA9" "b", "\xCF\x83" "8", "h", "ns", "w0", "\xCE\xA9" "m", "S8"};

void jade_report_options_default(jade_report_options *o) {
  memset(o, 0, sizeof *o);
  o->max_draws = 256;
}

/* ---------------------------------------------------------------- strings and files */

typedef struct {
  char *s;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_grow(sbuf *b, size_t extra) {
  if (b->oom || b->n + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->n + extra + 1) cap *= 2;
  char *s = realloc(b->s, cap);
  if (!s) {
    b->oom = 1;
    return;
  }
  b->s = s;
  b->cap = cap;
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int need = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (need < 0) return;
  sb_grow(b, (size_t)need);
  if (b->oom) return;
  va_start(ap, fmt);
  vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
  va_end(ap);
  b->n += (size_t)need;
}

static void sb_html(sbuf *b, const char *t) {
  for (; t && *t; t++) {
    switch (*t) {
      case '<': sb_printf(b, "&lt;"); break;
      case '>': sb_printf(b, "&gt;"); break;
      case '&': sb_printf(b, "&amp;"); break;
      case '"': sb_printf(b, "&quot;"); break;
      default: sb_printf(b, "%c", *t);
    }
  }
}

static int exists(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0;
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  rewind(f);
  char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  if (b) b[n] = 0;
  if (len) *len = b ? (size_t)n : 0;
  fclose(f);
  return b;
}

char *jade_base64(const unsigned char *d, size_t n) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *out = malloc(4 * ((n + 2) / 3) + 1);
  if (!out) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)d[i] << 16 | (i + 1 < n ? (unsigned)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
    out[o++] = tab[v >> 18 & 63];
    out[o++] = tab[v >> 12 & 63];
    out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? tab[v & 63] : '=';
  }
  out[o] = 0;
  return out;
}

/* ---------------------------------------------------------------- whitespace tables */

#define TMAXCOL 128
typedef struct {
  int ncol;
  int nhead;               /* names on the last '#' line before the data */
  char names[TMAXCOL][40]; /* from that line when it names every column ("" otherwise) */
  size_t nrow;
  double *v; /* nrow x ncol; non-numeric fields are NaN */
  sbuf comments; /* every '#' line */
} table;

static void table_free(table *t) {
  free(t->v);
  free(t->comments.s);
  memset(t, 0, sizeof *t);
}

/* Appends a row of k values (k must equal t->ncol); cap is the row capacity of t->v. */
static jade_status table_append(table *t, const double *row, int k, size_t *cap, const char *path) {
  if (k != t->ncol)
    return jade_error(JADE_ERR_FORMAT, "%s: row %zu has %d columns, expected %d", path, t->nrow + 1, k, t->ncol);
  if (t->nrow == *cap) {
    *cap = *cap ? 2 * *cap : 256;
    double *nv = realloc(t->v, *cap * (size_t)t->ncol * sizeof(double));
    if (!nv) return jade_error(JADE_ERR_NOMEM, "out of memory reading %s", path);
    t->v = nv;
  }
  memcpy(t->v + t->nrow * t->ncol, row, (size_t)k * sizeof(double));
  t->nrow++;
  return JADE_OK;
}

static jade_status table_read(const char *path, table *t) {
  memset(t, 0, sizeof *t);
  char *text = slurp(path, NULL);
  if (!text) return jade_error(JADE_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
  char header[8192] = "";
  size_t cap = 0;
  jade_status st = JADE_OK;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line && !st; line = strtok_r(NULL, "\n", &save)) {
    while (*line == ' ' || *line == '\t') line++;
    if (!*line || *line == '\r') continue;
    if (*line == '#') {
      sb_printf(&t->comments, "%s\n", line);
      if (!t->nrow) snprintf(header, sizeof header, "%s", line + 1);
      continue;
    }
    double row[TMAXCOL];
    int k = 0;
    char *s2 = NULL;
    for (char *tok = strtok_r(line, " \t\r", &s2); tok; tok = strtok_r(NULL, " \t\r", &s2)) {
      if (k == TMAXCOL) {
        st = jade_error(JADE_ERR_FORMAT, "%s: more than %d columns", path, TMAXCOL);
        break;
      }
      char *end;
      double v = strtod(tok, &end);
      row[k++] = *end ? NAN : v;
    }
    if (st) break;
    if (!t->nrow) {
      t->ncol = k;
      int h = 0;
      char *s3 = NULL;
      for (char *tok = strtok_r(header, " \t\r", &s3); tok && h < TMAXCOL; tok = strtok_r(NULL, " \t\r", &s3))
        snprintf(t->names[h++], sizeof t->names[0], "%s", tok);
      t->nhead = h;
      if (h != k) /* not a column header */
        for (int i = 0; i < TMAXCOL; i++) t->names[i][0] = 0;
    }
    st = table_append(t, row, k, &cap, path);
  }
  free(text);
  if (!st && !t->nrow) st = jade_error(JADE_ERR_FORMAT, "%s: no data rows", path);
  if (st) table_free(t);
  return st;
}

static int table_col(const table *t, const char *name) {
  for (int i = 0; i < t->ncol; i++)
    if (!strcmp(t->names[i], name)) return i;
  return -1;
}

/* Posterior columns (NCOL) of a table with named columns; Omega_m and S_8 derived when
 * absent. Rows with a non-finite parameter are dropped. */
static jade_status table_theta(const table *t, const char *path, double **out, double **wout, size_t *n) {
  int idx[NCOL];
  for (int j = 0; j < NCOL; j++) idx[j] = table_col(t, jade_posterior_col_names[j]);
  for (int j = 0; j < JADE_N_THETA; j++)
    if (idx[j] < 0) {
      if (t->ncol == NCOL && !t->names[0][0]) { /* no header: the standard order */
        for (int k = 0; k < NCOL; k++) idx[k] = k;
        break;
      }
      if (!t->names[0][0] && t->nhead > 1)
        return jade_error(JADE_ERR_FORMAT, "%s: the '#' header line names %d columns but the rows have %d", path, t->nhead, t->ncol);
      return jade_error(JADE_ERR_FORMAT, "%s: no column '%s' in the '#' header line", path, jade_posterior_col_names[j]);
    }
  const int wcol = table_col(t, "weight");
  double *x = malloc(t->nrow * NCOL * sizeof(double)), *w = malloc(t->nrow * sizeof(double));
  if (!x || !w) {
    free(x);
    free(w);
    return jade_error(JADE_ERR_NOMEM, "out of memory");
  }
  size_t m = 0;
  for (size_t r = 0; r < t->nrow; r++) {
    double *row = x + m * NCOL;
    int ok = 1;
    for (int j = 0; j < JADE_N_THETA; j++) ok &= isfinite(row[j] = t->v[r * t->ncol + idx[j]]);
    if (!ok) continue;
    row[6] = idx[6] >= 0 ? t->v[r * t->ncol + idx[6]] : jade_theta_omega_m(row);
    row[7] = idx[7] >= 0 ? t->v[r * t->ncol + idx[7]] : jade_theta_s8(row);
    w[m] = wcol >= 0 ? t->v[r * t->ncol + wcol] : 1.0;
    if (!(w[m] >= 0) || !isfinite(w[m])) w[m] = 0;
    m++;
  }
  if (!m) {
    free(x);
    free(w);
    return jade_error(JADE_ERR_FORMAT, "%s: no finite parameter rows", path);
  }
  *out = x;
  *wout = w;
  *n = m;
  return JADE_OK;
}

/* ---------------------------------------------------------------- FITS images */

/* The first image HDU with at least 2 axes, as float (dims[0] fastest, up to 4 axes; missing
 * axes 1); size_deg from its SIZEDEG key (NaN if absent). */
static jade_status fits_read_any(const char *path, int *naxis_out, long dims[4], float **data, double *size_deg) {
  fitsfile *f = NULL;
  int status = 0, nhdu = 0;
  char msg[FLEN_STATUS] = "";
  *data = NULL;
  jade_status hs = jade_fits_check_headers(path);
  if (hs) return hs;
  if (fits_open_diskfile(&f, path, READONLY, &status)) goto fail;
  fits_get_num_hdus(f, &nhdu, &status);
  for (int h = 1; h <= nhdu && !status; h++) {
    int type = 0, bitpix = 0, naxis = 0;
    long ax[4] = {1, 1, 1, 1};
    if (fits_movabs_hdu(f, h, &type, &status)) break;
    if (type != IMAGE_HDU) continue;
    if (fits_get_img_param(f, 4, &bitpix, &naxis, ax, &status)) break;
    if (naxis < 2 || naxis > 4) continue;
    size_t n = 1;
    for (int i = 0; i < 4; i++) n *= (size_t)ax[i];
    float *buf = malloc(n * sizeof(float));
    if (!buf) {
      fits_close_file(f, &status);
      return jade_error(JADE_ERR_NOMEM, "%s: out of memory", path);
    }
    int anynul = 0;
    if (fits_read_img(f, TFLOAT, 1, (LONGLONG)n, NULL, buf, &anynul, &status)) {
      free(buf);
      break;
    }
    double sd = NAN;
    int s2 = 0;
    if (fits_read_key(f, TDOUBLE, "SIZEDEG", &sd, NULL, &s2)) sd = NAN;
    if (size_deg) *size_deg = sd;
    for (int i = 0; i < 4; i++) dims[i] = ax[i];
    *naxis_out = naxis;
    *data = buf;
    fits_close_file(f, &status);
    return JADE_OK;
  }
  if (!status) {
    fits_close_file(f, &status);
    return jade_error(JADE_ERR_FORMAT, "%s: no image HDU with 2 to 4 axes", path);
  }
fail:
  fits_get_errstatus(status, msg);
  if (f) {
    int s3 = 0;
    fits_close_file(f, &s3);
  }
  fits_clear_errmsg();
  return jade_error(JADE_ERR_FORMAT, "%s: FITS error: %s", path, msg);
}

/* ---------------------------------------------------------------- the page */

typedef struct {
  const char *dir;
  sbuf body;
  int nfig;
  jade_status st;
  char written[32][32]; /* the PNG files written, removed again if the report fails */
  int n_written;
  sbuf inputs;          /* provenance: the inputs, in the HTML header and every PNG's tEXt */
} page;

/* Record one input of the report ("observation /path/obs.fits"). */
static void page_input(page *pg, const char *what, const char *value) {
  if (!value || !*value) return;
  sb_printf(&pg->inputs, "%s%s %s", pg->inputs.n ? "; " : "", what, value);
}

/* A failed report leaves no figures behind (report.html is atomic). */
static void page_discard(page *pg) {
  char path[4400];
  for (int i = 0; i < pg->n_written; i++) {
    snprintf(path, sizeof path, "%s/%s", pg->dir, pg->written[i]);
    unlink(path);
  }
  pg->n_written = 0;
}

static void fig_embed(page *pg, const char *file, const char *caption) {
  char path[4400];
  snprintf(path, sizeof path, "%s/%s", pg->dir, file);
  size_t n;
  unsigned char *png = (unsigned char *)slurp(path, &n);
  if (!png) {
    if (!pg->st) pg->st = jade_error(JADE_ERR_IO, "%s: cannot read back: %s", path, strerror(errno));
    return;
  }
  char *b64 = jade_base64(png, n);
  free(png);
  if (!b64) {
    if (!pg->st) pg->st = jade_error(JADE_ERR_NOMEM, "out of memory");
    return;
  }
  pg->nfig++;
  sb_printf(&pg->body, "<figure><img alt=\"%s\" src=\"data:image/png;base64,%s\"><figcaption><b>Figure %d</b> (%s). ", file, b64,
            pg->nfig, file);
  sb_html(&pg->body, caption);
  sb_printf(&pg->body, "</figcaption></figure>\n");
  free(b64);
}

static void save_fig(page *pg, jade_image *im, const char *file, const char *caption) {
  char path[4400];
  snprintf(path, sizeof path, "%s/%s", pg->dir, file);
  const char *kv[6] = {"Software", "jade " JADE_VERSION, "Source", pg->inputs.s ? pg->inputs.s : pg->dir, "Title", file};
  jade_status st = jade_image_write_png_text(im, path, kv, 3);
  jade_image_free(im);
  if (st) {
    if (!pg->st) pg->st = st;
    return;
  }
  if (pg->n_written < 32) snprintf(pg->written[pg->n_written++], sizeof pg->written[0], "%s", file);
  fig_embed(pg, file, caption);
}

static const char *CSS =
    "body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0 auto;max-width:1360px;padding:16px 24px;"
    "color:#222;background:#fff}h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;border-bottom:1px solid #ddd;"
    "padding-bottom:4px;margin-top:1.6em}figure{margin:12px 0}figure img{max-width:100%;height:auto;border:1px solid #eee}"
    "figcaption{font-size:.9em;color:#444;margin-top:4px}table{border-collapse:collapse;margin:8px 0;font-size:.92em}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f5f8}td:first-child,th:first-child"
    "{text-align:left}pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:.85em}.note{color:#666;font-size:.9em}"
    ".good{color:#1a7f37}.bad{color:#b42318}code{background:#f3f3f3;padding:0 3px}";

static jade_status page_write(page *pg, const char *title, const char *subtitle, char *html_path, size_t n) {
  char path[4400];
  snprintf(path, sizeof path, "%s/report.html", pg->dir);
  if (html_path) snprintf(html_path, n, "%s", path);
  if (pg->st) return pg->st;
  if (pg->body.oom) return jade_error(JADE_ERR_NOMEM, "out of memory building %s", path);
  jade_text_file f;
  jade_status st = jade_text_open(path, &f);
  if (st) return st;
  sbuf h = {0};
  sb_printf(&h, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"generator\" content=\"jade %s\">"
               "<title>", JADE_VERSION);
  sb_html(&h, title);
  sb_printf(&h, "</title>\n<style>%s</style></head>\n<body>\n<h1>", CSS);
  sb_html(&h, title);
  sb_printf(&h, "</h1>\n<p class=\"note\">");
  sb_html(&h, subtitle);
  sb_printf(&h, "</p>\n<p class=\"note\" id=\"provenance\">jade %s; inputs: ", JADE_VERSION);
  sb_html(&h, pg->inputs.s ? pg->inputs.s : pg->dir);
  sb_printf(&h, "</p>\n");
  fputs(h.s ? h.s : "", f.f);
  free(h.s);
  fwrite(pg->body.s, 1, pg->body.n, f.f);
  fprintf(f.f, "<p class=\"note\">Written by jade report; the figures are also PNG files in this directory.</p>\n</body></html>\n");
  return jade_text_commit(&f);
}

/* ---------------------------------------------------------------- figures */

typedef struct {
  const char *title;
  const float *data; /* (bins, n, n) */
  int group;         /* 0 convergence (shared scale), 1 observation (own), 2 standard deviation,
                        3 standardised residual (fixed scale -3 .. 3) */
} map_col;

/* Maps in rows of bins; row 0 of a map (y = 0) at the bottom, as FITS viewers show it; axes in
 * degrees from the patch corner when size_deg > 0. */
static void maps_figure(page *pg, const char *file, const char *caption, int nb, int np, double size_deg, const map_col *cols,
                        int nc) {
  const size_t npix = (size_t)np * np;
  int P = 6 * np;
  if (P < 110) P = 110;
  if (P > 150) P = 150;
  const int deg = size_deg > 0, cw = P + 70, top = 34, left = deg ? 64 : 34, rh = P + (deg ? 22 : 14);
  jade_image im;
  if (jade_image_init(&im, left + nc * cw + 8, top + nb * rh + (deg ? 30 : 8), 0xFFFFFF)) {
    if (!pg->st) pg->st = JADE_ERR_NOMEM;
    return;
  }
  double *tmp = malloc(npix * (size_t)nc * sizeof(double));
  float *flip = malloc(npix * sizeof(float));
  if (!tmp || !flip) {
    free(tmp);
    free(flip);
    jade_image_free(&im);
    return;
  }
  for (int c = 0; c < nc; c++) jade_draw_text(&im, left + c * cw + P / 2.0, top - 10, cols[c].title, 2, 0, 0, 1, 0);
  for (int b = 0; b < nb; b++) {
    double y0 = top + b * rh;
    char lab[32];
    snprintf(lab, sizeof lab, "bin %d", b + 1);
    jade_draw_text(&im, 12, y0 + P / 2.0, lab, 2, 0, 0, 0, 1);
    /* ranges: group 0 pooled over its columns (0.5-99.5%), group 2 from 0, group 1 own */
    double lo[3], hi[3];
    for (int g = 0; g < 3; g++) {
      size_t m = 0;
      for (int c = 0; c < nc; c++)
        if (cols[c].group == g && cols[c].data)
          for (size_t i = 0; i < npix; i++) tmp[m++] = cols[c].data[b * npix + i];
      lo[g] = m ? jade_plot_quantile(tmp, m, 1, 0.005) : 0;
      hi[g] = m ? jade_plot_quantile(tmp, m, 1, 0.995) : 1;
      if (g == 2) lo[g] = 0;
    }
    for (int c = 0; c < nc; c++) {
      if (!cols[c].data) continue;
      double vlo = cols[c].group == 3 ? -3 : lo[cols[c].group], vhi = cols[c].group == 3 ? 3 : hi[cols[c].group];
      if (cols[c].group == 1) {
        for (size_t i = 0; i < npix; i++) tmp[i] = cols[c].data[b * npix + i];
        vlo = jade_plot_quantile(tmp, npix, 1, 0.005);
        vhi = jade_plot_quantile(tmp, npix, 1, 0.995);
      }
      if (!(vhi > vlo)) vhi = vlo + 1e-6;
      jade_cmap cm = cols[c].group == 2 ? JADE_CMAP_MAGMA : cols[c].group == 3 ? JADE_CMAP_RDBU : JADE_CMAP_VIRIDIS;
      for (int y = 0; y < np; y++) memcpy(flip + (size_t)y * np, cols[c].data + b * npix + (size_t)(np - 1 - y) * np, np * sizeof(float));
      jade_axes ax;
      double x0 = left + c * cw, L = deg ? size_deg : 1;
      jade_axes_init(&ax, &im, x0, y0, P, P, 0, L, 0, L, 0, 0);
      jade_axes_image(&ax, flip, np, np, vlo, vhi, cm);
      if (deg) {
        ax.scale = 1;
        unsigned fl = (b == nb - 1 ? 0 : JADE_AX_NO_XLABELS) | (c == 0 ? 0 : JADE_AX_NO_YLABELS);
        jade_axes_decorate(&ax, NULL, b == nb - 1 ? "x [deg]" : NULL, c == 0 ? "y [deg]" : NULL, fl);
      }
      jade_colorbar(&im, x0 + P + 4, y0, 9, P, vlo, vhi, cm, NULL, 1);
    }
  }
  free(tmp);
  free(flip);
  save_fig(pg, &im, file, caption);
}

/* (mean - truth) / sd per pixel (NaN where sd = 0, drawn grey); malloc'd. */
static float *residual_maps(const float *mean, const float *truth, const float *sd, size_t n) {
  float *r = malloc(n * sizeof(float));
  for (size_t i = 0; r && i < n; i++) r[i] = sd[i] > 0 ? (mean[i] - truth[i]) / sd[i] : NAN;
  return r;
}

/* Corner plot of the posterior columns that vary in at least one set. */
static void corner_figure(page *pg, const char *file, const char *caption, const jade_corner_set *sets, int nsets,
                          const double *truth) {
  int cols[NCOL], nd = 0;
  const char *names[NCOL];
  double tr[NCOL];
  for (int j = 0; j < NCOL; j++) {
    if (j == 6) continue; /* Omega_m: derived, shown through S_8 */
    int varies = 0;
    for (int s = 0; s < nsets; s++)
      for (size_t i = 1; i < sets[s].n && !varies && sets[s].style != JADE_CORNER_PRIOR; i++)
        varies = sets[s].x[i * sets[s].stride + j] != sets[s].x[j];
    if (!varies) continue;
    cols[nd] = j;
    names[nd] = col_label[j];
    tr[nd++] = truth ? truth[j] : NAN;
  }
  if (nd == 0) { /* say why the figure is missing */
    sb_printf(&pg->body, "<p class=\"note\">No corner plot: no parameter varies among the draws (after a resample by "
                         "importance weight, a few heavy draws can take every place: see the verdict in diagnostics.txt).</p>\n");
    return;
  }
  double size = 120 + 128.0 * nd;
  jade_image im;
  if (jade_image_init(&im, (int)size + 10, (int)size + 10, 0xFFFFFF)) return;
  jade_corner_plot(&im, 4, 6, size, nd, cols, names, sets, nsets, truth ? tr : NULL);
  save_fig(pg, &im, file, caption);
}

/* Spectra panels: n_series lines / bands per panel, one panel per bin pair (i <= j). */
typedef struct {
  char title[64];
  int nb, pi, pj;  /* bands; the bin pair, placed at row pi, column pj */
  double ell[64], mean[64], lo[64], hi[64], truth[64], obs[64], mcmc[64], theory[64];
  double noise;    /* white-noise power of an auto spectrum (NaN: none) */
} spec_panel;

/* Panels in the upper triangle of an n_bins x n_bins grid (auto spectra on the diagonal).
 * Spectra: l(l+1)C/2pi on a log axis, or a symmetric-log one when a value is negative (cross
 * spectra of noisy maps), linear scale L = 1e-3 of the panel's largest |value|. Ratios: linear, clipped to [-2, 4]. */
static void spectra_figure(page *pg, const char *file, const char *caption, const spec_panel *sp, int n, int n_bins,
                           int have_truth, int have_obs, int have_mcmc, int have_theory, int ratio) {
  const int per_row = n_bins > 0 ? n_bins : 1, rows = per_row;
  const int pw = n_bins > 3 ? 210 : 250, ph = n_bins > 3 ? 160 : 190, mx = 110, my = 40, gx = 84, gy = 62;
  jade_image im;
  if (jade_image_init(&im, mx + per_row * (pw + gx) + 10, my + rows * (ph + gy) + 40, 0xFFFFFF)) return;
  /* the legend: in the empty lower triangle (row 1, column 0) when there is one, so that it
   * hides no curve; else in the first panel */
  jade_legend_entry le[6];
  int m = 0, noise_any = 0;
  for (int k = 0; k < n; k++) noise_any |= isfinite(sp[k].noise);
  le[m++] = (jade_legend_entry){ratio ? "mean, sd" : "draws", C_JADE, 0, 1};
  if (have_truth && !ratio) le[m++] = (jade_legend_entry){"truth", C_TRUTH, 6, 0};
  if (have_obs) le[m++] = (jade_legend_entry){"observed", C_OBS, 3, 0};
  if (have_mcmc) le[m++] = (jade_legend_entry){"MCMC mean", C_MCMC, 0, 0};
  if (have_theory) le[m++] = (jade_legend_entry){"theory", C_THEORY, 0, 0};
  if (noise_any) le[m++] = (jade_legend_entry){"noise (auto spectra)", C_NOISE, 4, 0};
  int first = n_bins < 2;
  if (!first) {
    jade_axes lax;
    jade_axes_init(&lax, &im, mx, my + ph + gy, pw, ph, 0, 1, 0, 1, 0, 0);
    lax.scale = 1;
    jade_axes_legend(&lax, le, m, 1);
  }
  for (int k = 0; k < n; k++) {
    const spec_panel *s = &sp[k];
    double x0 = mx + s->pj * (pw + gx), y0 = my + s->pi * (ph + gy);
    double y[64], lo[64], hi[64], tr[64], ob[64], mc[64], th[64], nl[64];
    double ymin = INFINITY, ymax = -INFINITY, xmin = INFINITY, xmax = -INFINITY;
    for (int b = 0; b < s->nb; b++) {
      double f = ratio ? 1 : s->ell[b] * (s->ell[b] + 1) / (2 * M_PI);
      y[b] = s->mean[b] * f;
      lo[b] = s->lo[b] * f;
      hi[b] = s->hi[b] * f;
      tr[b] = have_truth ? s->truth[b] * f : NAN;
      ob[b] = have_obs ? s->obs[b] * f : NAN;
      mc[b] = have_mcmc ? s->mcmc[b] * f : NAN;
      th[b] = have_theory ? s->theory[b] * f : NAN;
      nl[b] = s->noise * f;
      const double cand[7] = {lo[b], hi[b], tr[b], mc[b], th[b], nl[b], ob[b]};
      for (int q = 0; q < 7; q++)
        if (isfinite(cand[q]) && isfinite(s->ell[b])) ymin = fmin(ymin, cand[q]), ymax = fmax(ymax, cand[q]);
      if (isfinite(s->ell[b])) xmin = fmin(xmin, s->ell[b]), xmax = fmax(xmax, s->ell[b]);
    }
    if (!isfinite(xmin)) continue;
    jade_axes ax;
    if (ratio) {
      ymin = fmax(fmin(ymin, 0.8), -2);
      ymax = fmin(fmax(ymax, 1.2), 4);
      double pad = 0.08 * (ymax - ymin);
      jade_axes_init(&ax, &im, x0, y0, pw, ph, xmin / 1.15, xmax * 1.15, ymin - pad, ymax + pad, 1, 0);
    } else if (ymin > 0) { /* all positive (auto spectra, usually): a log axis */
      jade_axes_init(&ax, &im, x0, y0, pw, ph, xmin / 1.15, xmax * 1.15, ymin / 1.5, ymax * 1.5, 1, 1);
    } else {
      double top = fmax(fabs(ymin), fabs(ymax)), L = top > 0 ? 1e-3 * top : 1;
      double a = jade_symlog(fmin(ymin, 0), L), c = jade_symlog(ymax, L), pad = 0.06 * (c - a);
      jade_axes_init(&ax, &im, x0, y0, pw, ph, xmin / 1.15, xmax * 1.15, jade_symlog_inv(a - pad, L), jade_symlog_inv(c + pad, L), 1, 0);
      jade_axes_symlog_y(&ax, L);
    }
    ax.scale = 1;
    jade_axes_band(&ax, s->ell, lo, hi, s->nb, C_JADE, 0.25);
    if (ratio || ymin < 0) jade_axes_hline(&ax, ratio ? 1.0 : 0.0, C_TRUTH, 1, ratio ? 5 : 0);
    jade_axes_plot(&ax, s->ell, y, s->nb, C_JADE, 2, 0);
    jade_axes_scatter(&ax, s->ell, y, s->nb, 2.2, C_JADE, 1);
    if (have_obs) jade_axes_plot(&ax, s->ell, ob, s->nb, C_OBS, 1.5, 3);
    if (have_mcmc) jade_axes_plot(&ax, s->ell, mc, s->nb, C_MCMC, 2, 0);
    if (have_truth && !ratio) jade_axes_plot(&ax, s->ell, tr, s->nb, C_TRUTH, 1.6, 6);
    if (have_theory) jade_axes_plot(&ax, s->ell, th, s->nb, C_THEORY, 1.8, 0);
    if (isfinite(s->noise)) jade_axes_plot(&ax, s->ell, nl, s->nb, C_NOISE, 1.4, 4);
    jade_axes_decorate(&ax, s->title, s->pi == s->pj ? "\xE2\x84\x93" : NULL,
                       s->pi == s->pj ? (ratio ? "C(draws)/C(truth)" : "\xE2\x84\x93(\xE2\x84\x93+1)C/2\xCF\x80") : NULL,
                       JADE_AX_GRID);
    if (first) {
      first = 0;
      jade_axes_legend(&ax, le, m, 3);
    }
  }
  save_fig(pg, &im, file, caption);
}

typedef struct {
  char title[32];
  int nh;
  double edges[129], mean[128], lo[128], hi[128], truth[128];
} pdf_panel;

static void pdf_figure(page *pg, const char *file, const char *caption, const pdf_panel *pp, int n, int have_truth, int have_band) {
  const int per_row = n < 5 ? n : 5, rows = (n + per_row - 1) / per_row;
  const int pw = 210, ph = 170, mx = 110, my = 40, gx = 84, gy = 62;
  jade_image im;
  if (jade_image_init(&im, mx + per_row * (pw + gx) + 10, my + rows * (ph + gy) + 20, 0xFFFFFF)) return;
  for (int k = 0; k < n; k++) {
    const pdf_panel *p = &pp[k];
    double x0 = mx + (k % per_row) * (pw + gx), y0 = my + (k / per_row) * (ph + gy);
    double ymax = 0, ymin = INFINITY, xc[128];
    for (int h = 0; h < p->nh; h++) {
      xc[h] = 0.5 * (p->edges[h] + p->edges[h + 1]);
      const double cand[3] = {p->mean[h], have_band ? p->hi[h] : NAN, have_truth ? p->truth[h] : NAN};
      for (int q = 0; q < 3; q++)
        if (isfinite(cand[q]) && cand[q] > 0) ymax = fmax(ymax, cand[q]), ymin = fmin(ymin, cand[q]);
    }
    if (!(ymax > 0)) ymax = 1, ymin = 0.1;
    ymin = fmax(ymin, ymax * 1e-4);
    jade_axes ax;
    jade_axes_init(&ax, &im, x0, y0, pw, ph, p->edges[0], p->edges[p->nh], ymin / 2, ymax * 2, 0, 1);
    if (have_band) jade_axes_band(&ax, xc, p->lo, p->hi, p->nh, C_JADE, 0.25);
    jade_axes_stairs(&ax, p->edges, p->mean, p->nh, C_JADE, 2, 0);
    if (have_truth) jade_axes_stairs(&ax, p->edges, p->truth, p->nh, C_TRUTH, 1.3, 0);
    jade_axes_decorate(&ax, p->title, "\xCE\xBA", k % per_row == 0 ? "density" : NULL, JADE_AX_GRID);
    if (k == 0) {
      jade_legend_entry le[2] = {{"draws", C_JADE, 0, have_band}, {"truth", C_TRUTH, 0, 0}};
      ax.scale = 1;
      jade_axes_legend(&ax, le, have_truth ? 2 : 1, 0);
    }
  }
  save_fig(pg, &im, file, caption);
}

/* ---------------------------------------------------------------- posterior statistics */

/* Every bin pair i <= j (auto and cross spectra), in jade_pair_index order. */
static int choose_pairs(int nb, int *pi, int *pj) {
  int n = 0;
  for (int i = 0; i < nb; i++)
    for (int j = i; j < nb; j++) pi[n] = i, pj[n] = j, n++;
  return n;
}

/* Places panel s at bin pair (i, j) and titles it ("bin 1", "bins 1 x 2"). */
static void spec_panel_pair(spec_panel *s, int i, int j) {
  s->pi = i;
  s->pj = j;
  if (i == j)
    snprintf(s->title, sizeof s->title, "bin %d", i + 1);
  else
    snprintf(s->title, sizeof s->title, "bins %d x %d", i + 1, j + 1);
}

/* Everything a posterior report (sample or mcmc) shows. */
typedef struct {
  const char *dir;
  int nb, np;
  double size_deg;
  const float *draws;   /* (D, nb, n, n) or NULL */
  size_t D;
  const float *mean, *sd; /* (nb, n, n) or NULL */
  const float *obs;     /* or NULL */
  const float *truth;   /* or NULL */
  const double *truth_theta; /* NCOL or NULL */
  const float *mc_mean, *mc_sd; /* MCMC overlay maps */
  const char *label;    /* "JADE" or "MCMC" */
  const jade_sim_config *sc; /* the run's configuration (theory C_ell) or NULL */
  double theta_mean[JADE_N_THETA]; /* posterior mean: the theory's cosmology */
  const double *noise;  /* per-pixel noise sigma of each bin (the observation's) or NULL */
} post_maps;

/* Band powers of the Limber convergence C_ell (halofit, as the simulator) at the posterior
 * mean, averaged over each band's Fourier modes exactly as the estimator
 * (jade_power_spectrum_theory), for every pair: th[pair * NB + band]. 0 on success. */
static int theory_bands(const post_maps *m, int NB, double lmin, double lmax, double *th, sbuf *note) {
  enum { NL = 64 };
  const int nb = m->nb, npairs = jade_n_pairs(nb);
  if (m->sc->geom.n_bins != nb) {
    sb_printf(note, "Theory C_ell skipped: the configuration has %d bins, the maps %d. ", m->sc->geom.n_bins, nb);
    return 1;
  }
  const double L = m->size_deg * M_PI / 180.0, l0 = 0.5 * 2 * M_PI / L, l1 = 1.5 * sqrt(2.0) * M_PI * m->np / L;
  double ell[NL], em[64];
  long cnt[64];
  for (int i = 0; i < NL; i++) ell[i] = l0 * pow(l1 / l0, (double)i / (NL - 1));
  double *cl = malloc(sizeof(double) * NL * (size_t)npairs);
  jade_cosmo_params cp = jade_params_from_theta(m->sc, m->theta_mean);
  jade_cosmo *c = NULL;
  jade_survey *sv = NULL;
  jade_status st = cl ? jade_cosmo_create(&cp, &c) : JADE_ERR_NOMEM;
  if (!st) st = jade_survey_create(&m->sc->survey, &sv);
  if (!st) st = jade_cosmo_limber_cl(c, sv, NL, ell, JADE_CL_CONVERGENCE, 1, cl);
  for (int p = 0; p < npairs && !st; p++)
    st = jade_power_spectrum_theory(m->np, m->size_deg, NL, ell, cl + p, (size_t)npairs, NB, lmin, lmax, 1, em, th + (size_t)p * NB, cnt);
  if (st) {
    sb_printf(note, "Theory C_ell skipped: %s. ", jade_last_error());
    jade_clear_error();
  }
  jade_survey_free(sv);
  jade_cosmo_free(c);
  free(cl);
  return st != JADE_OK;
}

static void power_section(page *pg, const post_maps *m, long max_draws) {
  if (!m->draws && !m->mean) return;
  if (!(m->size_deg > 0)) {
    sb_printf(&pg->body, "<p class=\"note\">Power spectra skipped: the patch size is unknown (no SIZEDEG key).</p>\n");
    return;
  }
  int NB;
  double lmin, lmax;
  jade_power_spectrum_bands(m->np, m->size_deg, &NB, &lmin, &lmax);
  const size_t npix = (size_t)m->np * m->np, nx = (size_t)m->nb * npix;
  int pi[JADE_MAX_BINS * (JADE_MAX_BINS + 1) / 2], pj[JADE_MAX_BINS * (JADE_MAX_BINS + 1) / 2];
  int npairs = choose_pairs(m->nb, pi, pj);
  size_t D = m->draws ? m->D : 0;
  if (D > (size_t)max_draws) D = (size_t)max_draws;
  spec_panel *sp = calloc((size_t)npairs, sizeof *sp);
  double *v = malloc((D ? D : 1) * (size_t)NB * sizeof(double)), ell[64], cl[64];
  double *th = malloc(sizeof(double) * (size_t)npairs * NB);
  long cnt[64];
  sbuf note = {0};
  if (!sp || !v || !th) {
    free(sp);
    free(v);
    free(th);
    return;
  }
  const int have_theory = m->sc && !theory_bands(m, NB, lmin, lmax, th, &note);
  /* white noise of sigma per pixel: C_N = sigma^2 x pixel solid angle, flat in ell */
  const double pix_sr = pow(m->size_deg * M_PI / 180.0 / m->np, 2);
  for (int k = 0; k < npairs; k++) {
    spec_panel *s = &sp[k];
    s->nb = NB;
    spec_panel_pair(s, pi[k], pj[k]);
    s->noise = m->noise && pi[k] == pj[k] ? m->noise[pi[k]] * m->noise[pi[k]] * pix_sr : NAN;
    const size_t oi = (size_t)pi[k] * npix, oj = (size_t)pj[k] * npix;
    for (size_t d = 0; d < D; d++) {
      jade_power_spectrum(m->np, m->size_deg, m->draws + d * nx + oi, m->draws + d * nx + oj, NB, lmin, lmax, 1, ell, cl, cnt);
      for (int b = 0; b < NB; b++) v[(size_t)b * D + d] = cl[b];
    }
    for (int b = 0; b < NB; b++) {
      s->ell[b] = ell[b];
      s->theory[b] = have_theory ? th[(size_t)jade_pair_index(m->nb, pi[k], pj[k]) * NB + b] : NAN;
      if (D) {
        double sum = 0;
        for (size_t d = 0; d < D; d++) sum += v[(size_t)b * D + d];
        s->mean[b] = sum / (double)D;
        s->lo[b] = jade_plot_quantile(v + (size_t)b * D, D, 1, 0.16);
        s->hi[b] = jade_plot_quantile(v + (size_t)b * D, D, 1, 0.84);
      }
    }
    if (!D) { /* MCMC: the spectrum of the posterior mean map */
      jade_power_spectrum(m->np, m->size_deg, m->mean + oi, m->mean + oj, NB, lmin, lmax, 1, ell, cl, cnt);
      for (int b = 0; b < NB; b++) s->ell[b] = ell[b], s->mean[b] = s->lo[b] = s->hi[b] = cl[b];
    }
    if (m->truth) {
      jade_power_spectrum(m->np, m->size_deg, m->truth + oi, m->truth + oj, NB, lmin, lmax, 1, ell, cl, cnt);
      for (int b = 0; b < NB; b++) s->truth[b] = cl[b];
    }
    if (m->obs) {
      jade_power_spectrum(m->np, m->size_deg, m->obs + oi, m->obs + oj, NB, lmin, lmax, 1, ell, cl, cnt);
      for (int b = 0; b < NB; b++) s->obs[b] = cl[b];
    }
    if (m->mc_mean) {
      jade_power_spectrum(m->np, m->size_deg, m->mc_mean + oi, m->mc_mean + oj, NB, lmin, lmax, 1, ell, cl, cnt);
      for (int b = 0; b < NB; b++) s->mcmc[b] = cl[b];
    }
    for (int b = 0; b < NB; b++)
      if (!cnt[b]) s->ell[b] = NAN;
  }
  char cap[1400];
  snprintf(cap, sizeof cap,
           "Binned power spectra l(l+1)C_l/2pi of every bin pair (%d panels: auto spectra on the diagonal, cross spectra above "
           "it), %d log bands from l = %.0f to %.0f, on a log axis, or a symmetric-log one where a value is negative (linear within 1e-3 of "
           "the panel's largest value, so negative cross spectra show): %s%s%s%s%s%s.",
           npairs, NB, lmin, lmax, D ? "posterior draws' mean (line) and 16-84% range (band)" : "the MCMC posterior-mean map (line)",
           m->truth ? ", the truth (dashed black)" : "", m->obs ? ", the noisy observation (dotted grey: noise dominates at high l)" : "",
           m->mc_mean ? ", the MCMC posterior-mean map (orange; smoother than a draw, so below the truth at high l)" : "",
           have_theory ? ", the theory at the posterior mean (green: Limber halofit convergence C_l of the configuration's survey, "
                         "averaged over each band's modes)" : "",
           m->noise ? ", the observation's white-noise level sigma^2 x pixel solid angle (dashed purple, auto spectra)" : "");
  if (note.n) {
    sb_printf(&pg->body, "<p class=\"note\">");
    sb_html(&pg->body, note.s);
    sb_printf(&pg->body, "</p>\n");
  }
  spectra_figure(pg, "power.png", cap, sp, npairs, m->nb, m->truth != NULL, m->obs != NULL, m->mc_mean != NULL, have_theory, 0);
  free(note.s);
  free(sp);
  free(v);
  free(th);
}

static void pdf_section(page *pg, const post_maps *m, long max_draws) {
  if (!m->draws) return;
  const size_t npix = (size_t)m->np * m->np, nx = (size_t)m->nb * npix;
  size_t D = m->D < (size_t)max_draws ? m->D : (size_t)max_draws;
  const int NH = 40;
  pdf_panel *pp = calloc((size_t)m->nb, sizeof *pp);
  double *pool = malloc((D + 1) * npix * sizeof(double)), *v = malloc(D * NH * sizeof(double)), cnts[128];
  if (!pp || !pool || !v) {
    free(pp);
    free(pool);
    free(v);
    return;
  }
  for (int b = 0; b < m->nb; b++) {
    pdf_panel *p = &pp[b];
    p->nh = NH;
    snprintf(p->title, sizeof p->title, "bin %d", b + 1);
    size_t k = 0;
    for (size_t d = 0; d < D; d++)
      for (size_t i = 0; i < npix; i++) pool[k++] = m->draws[d * nx + b * npix + i];
    if (m->truth)
      for (size_t i = 0; i < npix; i++) pool[k++] = m->truth[b * npix + i];
    double lo = jade_plot_quantile(pool, k, 1, 0.0005), hi = jade_plot_quantile(pool, k, 1, 0.9995);
    double pad = 0.03 * (hi - lo);
    if (!(pad > 0)) pad = 1e-4;
    lo -= pad;
    hi += pad;
    for (int h = 0; h <= NH; h++) p->edges[h] = lo + (hi - lo) * h / NH;
    const double norm = (double)npix * (hi - lo) / NH;
    for (size_t d = 0; d < D; d++) {
      jade_histogram(m->draws + d * nx + b * npix, npix, NH + 1, p->edges, cnts);
      for (int h = 0; h < NH; h++) v[(size_t)h * D + d] = cnts[h] / norm;
    }
    for (int h = 0; h < NH; h++) {
      double s = 0;
      for (size_t d = 0; d < D; d++) s += v[(size_t)h * D + d];
      p->mean[h] = s / (double)D;
      p->lo[h] = jade_plot_quantile(v + (size_t)h * D, D, 1, 0.16);
      p->hi[h] = jade_plot_quantile(v + (size_t)h * D, D, 1, 0.84);
    }
    if (m->truth) {
      jade_histogram(m->truth + b * npix, npix, NH + 1, p->edges, cnts);
      for (int h = 0; h < NH; h++) p->truth[h] = cnts[h] / norm;
    }
  }
  char cap[400];
  snprintf(cap, sizeof cap,
           "One-point PDF of the convergence per bin (%d bins in kappa, log scale): posterior draws' mean histogram and its 16-84%% "
           "range over %zu draws%s.",
           NH, D, m->truth ? ", and the truth's histogram (black)" : "");
  pdf_figure(pg, "pdf.png", cap, pp, m->nb, m->truth != NULL, 1);
  free(pp);
  free(pool);
  free(v);
}

/* Parameter table: posterior mean, sd, 16/50/84%, truth and (mean - truth)/sd, MCMC columns. */
static void theta_table(page *pg, const double *th, size_t n, const double *truth, const double *mc, size_t nmc, const char *label,
                        const double *prior) {
  sbuf *b = &pg->body;
  sb_printf(b, "<table><tr><th>parameter</th><th>%s mean</th><th>sd</th><th>16%%</th><th>50%%</th><th>84%%</th>", label);
  if (prior) sb_printf(b, "<th>prior sd</th><th>sd / prior sd</th>");
  if (truth) sb_printf(b, "<th>truth</th><th>(mean &minus; truth)/sd</th>");
  if (mc) sb_printf(b, "<th>MCMC mean</th><th>MCMC sd</th><th>offset / MCMC sd</th><th>sd ratio</th>");
  sb_printf(b, "</tr>\n");
  for (int j = 0; j < NCOL; j++) {
    jade_summary_stat s, t;
    jade_posterior_summary(th + j, (long)n, NCOL, &s);
    sb_printf(b, "<tr><td>%s</td><td>%.5g</td><td>%.3g</td><td>%.5g</td><td>%.5g</td><td>%.5g</td>", jade_posterior_col_names[j], s.mean,
              s.std, s.q16, s.q50, s.q84);
    if (prior) {
      jade_summary_stat ps;
      jade_posterior_summary(prior + j, PRIOR_DRAWS, NCOL, &ps);
      double r = ps.std > 0 ? s.std / ps.std : NAN;
      sb_printf(b, "<td>%.3g</td><td class=\"%s\">%.2f</td>", ps.std, r < 0.7 ? "good" : "note", r);
    }
    if (truth) {
      double z = s.std > 0 ? (s.mean - truth[j]) / s.std : NAN;
      sb_printf(b, "<td>%.5g</td><td class=\"%s\">%+.2f</td>", truth[j], fabs(z) < 2 ? "good" : "bad", z);
    }
    if (mc) {
      jade_posterior_summary(mc + j, (long)nmc, NCOL, &t);
      if (t.std > 1e-12 * fabs(t.mean))
        sb_printf(b, "<td>%.5g</td><td>%.3g</td><td>%+.2f</td><td>%.2f</td>", t.mean, t.std, (s.mean - t.mean) / t.std, s.std / t.std);
      else
        sb_printf(b, "<td>%.5g</td><td>0</td><td colspan=\"2\">fixed in the MCMC</td>", t.mean);
    }
    sb_printf(b, "</tr>\n");
  }
  sb_printf(b, "</table>\n");
  if (prior)
    sb_printf(b, "<p class=\"note\">sd / prior sd near 1 (grey): the data add little to the prior for that parameter; the "
                 "corner plot shows the prior's marginal beside the posterior.</p>\n");
}

/* ---------------------------------------------------------------- inputs of sample / mcmc */

typedef struct {
  double *theta; /* (n, NCOL), rows of theta.txt */
  double *weight; /* (n) importance weights (1 without a weight column) */
  double *theta_w; /* (n, NCOL) systematic resample by weight (NULL if the weights are equal) */
  size_t n;
  table tab;
  float *maps; /* draws (D, nb, n, n) (sample) */
  size_t D;
  float *mean, *sd; /* (nb, n, n) */
  int nb, np;
  double size_deg;
  char obs_recorded[4096];
  char model_recorded[4096];
} post_dir;

static void post_dir_free(post_dir *p) {
  free(p->theta);
  free(p->weight);
  free(p->theta_w);
  table_free(&p->tab);
  free(p->maps);
  free(p->mean);
  free(p->sd);
  memset(p, 0, sizeof *p);
}

static jade_status read_maps3(const char *path, int *nb, int *np, float **out, double *size_deg) {
  int naxis;
  long dims[4];
  jade_status st = fits_read_any(path, &naxis, dims, out, size_deg);
  if (st) return st;
  if (dims[0] != dims[1] || dims[3] != 1 || (*nb && dims[2] != *nb) || (*np && dims[0] != *np)) {
    free(*out);
    *out = NULL;
    return jade_error(JADE_ERR_FORMAT, "%s: image of %ldx%ldx%ldx%ld does not match (bins, n, n) maps", path, dims[0], dims[1], dims[2],
                      dims[3]);
  }
  *np = (int)dims[0];
  *nb = (int)dims[2];
  return JADE_OK;
}

/* theta.txt (+ maps.fits for a sample, mean.fits / std.fits for an MCMC run). */
static jade_status post_dir_read(const char *dir, int mcmc, post_dir *p) {
  memset(p, 0, sizeof *p);
  p->size_deg = NAN;
  char path[4400];
  snprintf(path, sizeof path, "%s/theta.txt", dir);
  jade_status st = table_read(path, &p->tab);
  if (!st) st = table_theta(&p->tab, path, &p->theta, &p->weight, &p->n);
  if (st) return st;
  /* importance weights (jade mcmc --theory emulator): a systematic resample of the same size
   * (Kitagawa 1996) stands for the weighted draws in the corner plot and the table */
  double wsum = 0;
  int equal = 1;
  for (size_t i = 0; i < p->n; i++) wsum += p->weight[i], equal &= p->weight[i] == p->weight[0];
  if (!equal && wsum > 0) {
    p->theta_w = malloc(p->n * NCOL * sizeof(double));
    if (!p->theta_w) return jade_error(JADE_ERR_NOMEM, "out of memory");
    double cum = 0;
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++) {
      cum += p->weight[i] / wsum * (double)p->n;
      while (k < p->n && (double)k + 0.5 < cum) memcpy(p->theta_w + k++ * NCOL, p->theta + i * NCOL, NCOL * sizeof(double));
    }
    for (; k < p->n; k++) memcpy(p->theta_w + k * NCOL, p->theta + (p->n - 1) * NCOL, NCOL * sizeof(double));
  }
  /* "# observation PATH" (jade sample) */
  const char *c = p->tab.comments.s;
  for (const char *l = c; l && *l;) {
    const char *e = strchr(l, '\n');
    size_t len = e ? (size_t)(e - l) : strlen(l);
    if (len > 14 && !strncmp(l, "# observation ", 14)) snprintf(p->obs_recorded, sizeof p->obs_recorded, "%.*s", (int)(len - 14), l + 14);
    if (len > 8 && !strncmp(l, "# model ", 8)) snprintf(p->model_recorded, sizeof p->model_recorded, "%.*s", (int)(len - 8), l + 8);
    l = e ? e + 1 : l + len;
  }
  if (mcmc) { /* jade mcmc: "observation = PATH" in diagnostics.txt */
    snprintf(path, sizeof path, "%s/diagnostics.txt", dir);
    char *dg = slurp(path, NULL);
    const char *l = dg ? strstr(dg, "observation = ") : NULL;
    if (l && (l == dg || l[-1] == '\n')) {
      l += 14;
      size_t len = strcspn(l, "\r\n");
      snprintf(p->obs_recorded, sizeof p->obs_recorded, "%.*s", (int)len, l);
    }
    free(dg);
  }
  if (!mcmc) {
    snprintf(path, sizeof path, "%s/maps.fits", dir);
    if (exists(path)) {
      int naxis;
      long dims[4];
      if ((st = fits_read_any(path, &naxis, dims, &p->maps, &p->size_deg))) return st;
      if (dims[0] != dims[1] || naxis < 3) return jade_error(JADE_ERR_FORMAT, "%s: expected (draws, bins, n, n) maps", path);
      p->np = (int)dims[0];
      p->nb = (int)dims[2];
      p->D = (size_t)dims[3];
      const size_t nx = (size_t)p->nb * p->np * p->np;
      p->mean = malloc(nx * sizeof(float));
      p->sd = malloc(nx * sizeof(float));
      if (!p->mean || !p->sd) return jade_error(JADE_ERR_NOMEM, "out of memory");
      jade_draw_moments(p->maps, p->D, nx, p->mean, p->sd);
    }
  } else {
    snprintf(path, sizeof path, "%s/mean.fits", dir);
    if (exists(path) && (st = read_maps3(path, &p->nb, &p->np, &p->mean, &p->size_deg))) return st;
    snprintf(path, sizeof path, "%s/std.fits", dir);
    double sd2;
    if (exists(path) && (st = read_maps3(path, &p->nb, &p->np, &p->sd, &sd2))) return st;
  }
  return JADE_OK;
}

/* The observation (and its truth when present). */
typedef struct {
  int have_obs, have_truth;
  jade_observation obs;
  float *truth;
  double truth_theta[NCOL];
  char path[4400];
} obs_info;

static void obs_info_free(obs_info *o) {
  if (o->have_obs) jade_observation_free(&o->obs);
  free(o->truth);
  memset(o, 0, sizeof *o);
}

static jade_status obs_load(const char *explicit_path, const char *recorded, const char *dir, obs_info *oi, sbuf *notes) {
  memset(oi, 0, sizeof *oi);
  const char *p = explicit_path;
  char alt[4400];
  if (!p && recorded && *recorded) {
    if (exists(recorded))
      p = recorded;
    else {
      /* relative to the output directory's parent (the usual layout: run/obs.fits, run/post) */
      snprintf(alt, sizeof alt, "%s/../%s", dir, recorded);
      if (recorded[0] != '/' && exists(alt)) p = alt;
      else sb_printf(notes, "The recorded observation %s was not found; run jade report with --obs OBS.fits. ", recorded);
    }
  }
  if (!p) return JADE_OK;
  if (explicit_path && !exists(p)) return jade_error(JADE_ERR_IO, "%s: no such observation file", p);
  jade_status st = jade_observation_read(p, &oi->obs);
  if (st) {
    if (explicit_path) return st;
    sb_printf(notes, "The observation %s could not be read (%s). ", p, jade_last_error());
    jade_clear_error();
    return JADE_OK;
  }
  oi->have_obs = 1;
  snprintf(oi->path, sizeof oi->path, "%s", p);
  char tpath[4400];
  jade_observation_truth_path(p, tpath, sizeof tpath);
  if (exists(tpath)) {
    int nb = 0, np = 0;
    st = jade_observation_read_truth(tpath, oi->truth_theta, &oi->truth, &nb, &np);
    if (st || nb != oi->obs.n_bins || np != oi->obs.n_pix) {
      sb_printf(notes, "The truth file %s could not be used. ", tpath);
      jade_clear_error();
      free(oi->truth);
      oi->truth = NULL;
    } else {
      oi->have_truth = 1;
      oi->truth_theta[6] = jade_theta_omega_m(oi->truth_theta);
      oi->truth_theta[7] = jade_theta_s8(oi->truth_theta);
    }
  }
  return JADE_OK;
}

/* ---------------------------------------------------------------- the run's configuration */

/* DIR/config.ini (written by jade sample, validate, mcmc and train): the prior for the corner
 * plot's overlay and the survey and cosmology for the theory C_ell. ok = 0 without it. */
typedef struct {
  int ok;
  jade_sim_config sc;
} run_cfg;

static void run_cfg_load(const char *dir, run_cfg *rc, page *pg, sbuf *notes) {
  memset(rc, 0, sizeof *rc);
  char path[4400];
  snprintf(path, sizeof path, "%s/config.ini", dir);
  if (!exists(path)) {
    sb_printf(notes, "No config.ini in %s: no prior overlay or theory C_ell. ", dir);
    return;
  }
  jade_config *cfg = NULL;
  jade_status st = jade_config_create(&cfg);
  if (!st) st = jade_config_load_file(cfg, path);
  if (!st) st = jade_sim_config_read(cfg, &rc->sc);
  jade_config_free(cfg);
  if (st) {
    sb_printf(notes, "%s could not be used (%s): no prior overlay or theory C_ell. ", path, jade_last_error());
    jade_clear_error();
    return;
  }
  rc->ok = 1;
  page_input(pg, "configuration", path);
}

/* n draws of the prior (rows of NCOL: theta, Omega_m, S_8), seed fixed: the report is
 * reproducible. malloc'd. */
static double *prior_rows(const jade_sim_config *sc) {
  double *r = malloc(sizeof(double) * PRIOR_DRAWS * NCOL);
  for (size_t i = 0; r && i < PRIOR_DRAWS; i++) {
    double *row = r + i * NCOL;
    jade_prior_draw(sc, 20240601, i, row);
    row[JADE_N_THETA] = jade_theta_omega_m(row);
    row[JADE_N_THETA + 1] = jade_theta_s8(row);
  }
  return r;
}

/* ---------------------------------------------------------------- sample and mcmc reports */

/* The draws that stand for the posterior: the resample by weight when the draws carry unequal
 * importance weights, the rows of theta.txt otherwise (NULL when there are none). */
static const double *post_theta(const post_dir *p) {
  return p->theta_w ? p->theta_w : p->theta;
}

/* Reads the posterior output dir, the --mcmc overlay (M stays empty without one) and the
 * observation, and checks that their maps agree; P's patch size falls back to the observation's. */
static jade_status posterior_load(const char *dir, const jade_report_options *o, int mcmc, post_dir *P, post_dir *M,
                                  obs_info *oi, sbuf *notes) {
  jade_status st = post_dir_read(dir, mcmc, P);
  if (!st && o->mcmc_dir) st = jade_error_context(post_dir_read(o->mcmc_dir, 1, M), "--mcmc %s", o->mcmc_dir);
  if (!st) st = obs_load(o->obs_path, P->obs_recorded, dir, oi, notes);
  if (st) return st;
  if (oi->have_obs && P->nb && (oi->obs.n_bins != P->nb || oi->obs.n_pix != P->np))
    return jade_error(JADE_ERR_INVALID, "%s: observation has %d bins of %d pixels but the posterior maps in %s have %d of %d",
                      oi->path, oi->obs.n_bins, oi->obs.n_pix, dir, P->nb, P->np);
  if (M->nb && P->nb && (M->nb != P->nb || M->np != P->np))
    return jade_error(JADE_ERR_INVALID, "%s: MCMC maps have %d bins of %d pixels, the posterior %d of %d", o->mcmc_dir, M->nb,
                      M->np, P->nb, P->np);
  if (!(P->size_deg > 0) && oi->have_obs) P->size_deg = oi->obs.size_deg;
  return JADE_OK;
}

/* The overview: how many draws and maps, the observation, the notes so far and theta.txt's
 * comment lines. */
static void posterior_overview(page *pg, const post_dir *P, const obs_info *oi, const sbuf *notes, int mcmc) {
  sbuf *b = &pg->body;
  sb_printf(b, "<h2>Overview</h2>\n<p>%zu posterior %s", P->n, mcmc ? "draws (all chains)" : "draws");
  if (P->maps) sb_printf(b, " with maps of %d bins x %d x %d pixels", P->nb, P->np, P->np);
  sb_printf(b, ". Observation: ");
  if (oi->have_obs) {
    sb_printf(b, "<code>");
    sb_html(b, oi->path);
    sb_printf(b, "</code>%s", oi->have_truth ? " (truth known)" : " (no truth file beside it)");
  } else
    sb_printf(b, "not available");
  sb_printf(b, ".</p>\n");
  if (notes->n) {
    sb_printf(b, "<p class=\"note\">");
    sb_html(b, notes->s);
    sb_printf(b, "</p>\n");
  }
  if (P->tab.comments.s) {
    sb_printf(b, "<pre>");
    sb_html(b, P->tab.comments.s);
    sb_printf(b, "</pre>\n");
  }
}

/* The maps figure (when there are posterior maps): truth, observation, posterior mean and std,
 * the standardised residual, the MCMC overlay's mean and std, and up to three draws. */
static void posterior_maps(page *pg, const post_dir *P, const post_dir *M, const obs_info *oi, int mcmc) {
  if (!P->mean) return;
  const size_t nx = (size_t)P->nb * P->np * P->np;
  float *resid = NULL;
  map_col cols[13];
  int nc = 0;
  if (oi->have_truth) cols[nc++] = (map_col){"truth", oi->truth, 0};
  if (oi->have_obs) cols[nc++] = (map_col){"observation", oi->obs.kappa, 1};
  cols[nc++] = (map_col){mcmc ? "MCMC mean" : "posterior mean", P->mean, 0};
  if (P->sd) cols[nc++] = (map_col){mcmc ? "MCMC std" : "posterior std", P->sd, 2};
  if (P->sd && oi->have_truth) resid = residual_maps(P->mean, oi->truth, P->sd, nx);
  if (resid) cols[nc++] = (map_col){"(mean-truth)/sd", resid, 3};
  if (M->mean) cols[nc++] = (map_col){"MCMC mean", M->mean, 0};
  if (M->sd) cols[nc++] = (map_col){"MCMC std", M->sd, 2};
  for (size_t d = 0; P->maps && d < P->D && d < 3; d++) {
    static const char *const dn[3] = {"draw 1", "draw 2", "draw 3"};
    cols[nc++] = (map_col){dn[d], P->maps + d * nx, 0};
  }
  sb_printf(&pg->body, "<h2>Convergence maps</h2>\n");
  maps_figure(pg, "maps.png",
              "Rows: tomographic bins. Truth, posterior mean and draws share one colour scale per bin (viridis, 0.5-99.5% of "
              "their pixels); the observation (noisy, Kaiser-Squires convergence) has its own; standard deviations use magma "
              "from 0; the residual (mean - truth) / sd (when the truth is known) RdBu from -3 to 3 (about 68% of the pixels "
              "within +-1 for a calibrated posterior). Axes in degrees from the patch corner, y = 0 at the bottom.",
              P->nb, P->np, P->size_deg, cols, nc);
  free(resid);
}

/* The parameter table and the corner plot: the posterior (or MCMC) draws, the MCMC overlay and
 * the prior (NULL: none). */
static void posterior_parameters(page *pg, const post_dir *P, const post_dir *M, const double *truth, const double *prior,
                                 int mcmc) {
  sbuf *b = &pg->body;
  const char *who = mcmc ? "MCMC" : "JADE";
  sb_printf(b, "<h2>Cosmological parameters</h2>\n");
  const double *Pth = post_theta(P), *Mth = post_theta(M);
  theta_table(pg, Pth, P->n, truth, Mth, M->n, who, prior);
  if (P->theta_w || M->theta_w)
    sb_printf(b, "<p class=\"note\">MCMC draws carry importance weights (weight column): the table and corner plot use a "
                 "systematic resample by weight.</p>\n");
  jade_corner_set sets[3] = {{Pth, P->n, NCOL, mcmc ? C_MCMC : C_JADE, who, JADE_CORNER_FILLED}};
  int nsets = 1;
  if (M->theta) sets[nsets++] = (jade_corner_set){Mth, M->n, NCOL, C_MCMC, "MCMC", JADE_CORNER_FILLED};
  if (prior) sets[nsets++] = (jade_corner_set){prior, PRIOR_DRAWS, NCOL, C_PRIOR, "prior", JADE_CORNER_PRIOR};
  char cap[1200];
  snprintf(cap, sizeof cap,
           "Corner plot: 1-D histograms and 2-D 68%%/95%% highest-density regions of %s%s%s%s. The regions are those of an "
           "adaptive Gaussian kernel density (Scott's rule, Scott 1992: kernel covariance n^(-1/3) times the draws' covariance, "
           "each kernel scaled by Abramson's square-root law, wider in the tails), which does not break into islands at a "
           "hundred draws. Omega_m is left out (it follows from Omega_c and Omega_b; S8 = sigma8 sqrt(Omega_m/0.3) is shown); "
           "constant columns are skipped.",
           mcmc ? "the MCMC draws" : "the JADE posterior draws", M->theta ? " and the MCMC draws (orange)" : "",
           truth ? ", truth in red" : "",
           prior ? "; the prior's marginal density (dashed grey: a kernel density of 20000 prior draws; where the posterior follows "
                   "it, the data do not constrain the parameter)" : "");
  corner_figure(pg, "corner.png", cap, sets, nsets, truth);
}

/* MCMC traces per chain of every sampled parameter (C: an MCMC run's draws, theta.txt with a
 * chain column); nothing when the chains cannot be told apart. */
static void trace_figure(page *pg, const post_dir *C, const double *truth) {
  int chain_col = table_col(&C->tab, "chain");
  if (chain_col < 0 || C->n != C->tab.nrow) return;
  int nshow = 0, show[NCOL];
  for (int j = 0; j < NCOL; j++) {
    if (j == 6) continue;
    int varies = 0;
    for (size_t i = 1; i < C->n && !varies; i++) varies = C->theta[i * NCOL + j] != C->theta[j];
    if (varies) show[nshow++] = j;
  }
  int nchains = 0;
  for (size_t i = 0; i < C->n; i++) {
    int ch = (int)C->tab.v[i * C->tab.ncol + chain_col];
    if (ch + 1 > nchains) nchains = ch + 1;
  }
  if (!nshow || nchains <= 0 || nchains >= 1000) return;
  jade_image im;
  const int pw = 1000, ph = 90, mx = 90, gy = 22;
  if (jade_image_init(&im, mx + pw + 20, 20 + nshow * (ph + gy) + 30, 0xFFFFFF)) return;
  static const jade_rgb pal[8] = {0x1F77B4, 0xFF7F0E, 0x2CA02C, 0xD62728, 0x9467BD, 0x8C564B, 0xE377C2, 0x7F7F7F};
  double *xs = malloc(C->n * sizeof(double)), *ys = malloc(C->n * sizeof(double));
  long maxlen = 0;
  for (int ch = 0; ch < nchains; ch++) {
    long len = 0;
    for (size_t i = 0; i < C->n; i++) len += (int)C->tab.v[i * C->tab.ncol + chain_col] == ch;
    if (len > maxlen) maxlen = len;
  }
  for (int k = 0; xs && ys && k < nshow; k++) {
    int j = show[k];
    double lo = jade_plot_quantile(C->theta + j, C->n, NCOL, 0.0), hi = jade_plot_quantile(C->theta + j, C->n, NCOL, 1.0);
    double pad = 0.05 * (hi - lo) + 1e-12;
    jade_axes ax;
    jade_axes_init(&ax, &im, mx, 12 + k * (ph + gy), pw, ph, 0, (double)maxlen, lo - pad, hi + pad, 0, 0);
    for (int ch = 0; ch < nchains; ch++) {
      int m = 0;
      for (size_t i = 0; i < C->n; i++)
        if ((int)C->tab.v[i * C->tab.ncol + chain_col] == ch) xs[m] = m, ys[m] = C->theta[i * NCOL + j], m++;
      jade_axes_plot(&ax, xs, ys, m, pal[ch % 8], 1, 0);
    }
    if (truth) jade_axes_hline(&ax, truth[j], 0xC0392B, 1.5, 6);
    jade_axes_decorate(&ax, NULL, k == nshow - 1 ? "draw within chain" : NULL, col_label[j], k == nshow - 1 ? 0 : JADE_AX_NO_XLABELS);
  }
  free(xs);
  free(ys);
  char cap[1200];
  snprintf(cap, sizeof cap, "MCMC traces of every sampled parameter, one colour per chain (%d chains)%s.", nchains,
           truth ? "; truth dashed red" : "");
  save_fig(pg, &im, "trace.png", cap);
}

/* The MCMC run's diagnostics.txt and compare.txt (in mdir), verbatim, where they exist. */
static void mcmc_files(page *pg, const char *mdir) {
  static const char *const extra[2] = {"diagnostics.txt", "compare.txt"};
  for (int k = 0; k < 2; k++) {
    char cpath[4400];
    snprintf(cpath, sizeof cpath, "%s/%s", mdir, extra[k]);
    char *ct = slurp(cpath, NULL);
    if (!ct) continue;
    sb_printf(&pg->body, "<h3>MCMC %s</h3>\n<pre>", extra[k]);
    sb_html(&pg->body, ct);
    sb_printf(&pg->body, "</pre>\n");
    free(ct);
  }
}

/* Two-point (power spectra) and one-point (PDF) statistics of the posterior maps, with the
 * observation's, the truth's, the MCMC overlay's and the theory at the posterior mean. */
static void posterior_statistics(page *pg, const post_dir *P, const post_dir *M, const obs_info *oi, const run_cfg *rc,
                                 int mcmc, long max_draws) {
  post_maps pm = {pg->dir, P->nb, P->np, P->size_deg, P->maps, P->D, P->mean, P->sd, oi->have_obs ? oi->obs.kappa : NULL,
                  oi->have_truth ? oi->truth : NULL, oi->have_truth ? oi->truth_theta : NULL, M->mean, M->sd,
                  mcmc ? "MCMC" : "JADE", rc->ok ? &rc->sc : NULL, {0}, oi->have_obs ? oi->obs.noise : NULL};
  const double *Pth = post_theta(P);
  for (int j = 0; j < JADE_N_THETA; j++) {
    jade_summary_stat ss;
    jade_posterior_summary(Pth + j, (long)P->n, NCOL, &ss);
    pm.theta_mean[j] = ss.mean;
  }
  if (P->maps || P->mean) {
    sb_printf(&pg->body, "<h2>Two-point statistics</h2>\n");
    power_section(pg, &pm, max_draws);
  }
  if (P->maps) {
    sb_printf(&pg->body, "<h2>One-point statistics</h2>\n");
    pdf_section(pg, &pm, max_draws);
  }
}

static jade_status report_posterior(const char *dir, const jade_report_options *o, int mcmc, char *html_path, size_t hn) {
  post_dir P, M;
  obs_info oi;
  double *prior = NULL;
  run_cfg rc;
  memset(&rc, 0, sizeof rc);
  memset(&M, 0, sizeof M);
  memset(&oi, 0, sizeof oi);
  page pg = {.dir = dir, .st = JADE_OK};
  sbuf notes = {0};
  jade_status st = posterior_load(dir, o, mcmc, &P, &M, &oi, &notes);
  if (st) goto out;
  const double *truth = oi.have_truth ? oi.truth_theta : NULL;
  /* provenance (before the first figure: every PNG records it) */
  page_input(&pg, mcmc ? "MCMC run" : "posterior draws", dir);
  page_input(&pg, "model", P.model_recorded);
  if (oi.have_obs) page_input(&pg, "observation", oi.path);
  if (oi.have_truth) page_input(&pg, "truth", "beside the observation");
  page_input(&pg, "MCMC overlay", o->mcmc_dir);
  run_cfg_load(dir, &rc, &pg, &notes);
  if (rc.ok && !(prior = prior_rows(&rc.sc))) {
    st = jade_error(JADE_ERR_NOMEM, "out of memory");
    goto out;
  }
  posterior_overview(&pg, &P, &oi, &notes, mcmc);
  posterior_maps(&pg, &P, &M, &oi, mcmc);
  posterior_parameters(&pg, &P, &M, truth, prior, mcmc);
  if (mcmc || M.theta) {
    trace_figure(&pg, mcmc ? &P : &M, truth);
    mcmc_files(&pg, mcmc ? dir : o->mcmc_dir);
  }
  posterior_statistics(&pg, &P, &M, &oi, &rc, mcmc, o->max_draws);
  char title[300], sub[8800];
  snprintf(title, sizeof title, "jade %s report", mcmc ? "MCMC" : "posterior");
  snprintf(sub, sizeof sub, "%s%s%s", o->name ? o->name : dir, o->mcmc_dir ? " with MCMC overlay " : "", o->mcmc_dir ? o->mcmc_dir : "");
  st = page_write(&pg, title, sub, html_path, hn);
out:
  if (st) page_discard(&pg);
  free(pg.body.s);
  free(pg.inputs.s);
  free(notes.s);
  post_dir_free(&P);
  post_dir_free(&M);
  obs_info_free(&oi);
  free(prior);
  return st;
}

/* ---------------------------------------------------------------- validation report */

/* A string value of a small JSON text (malloc'd; NULL if absent). */
static char *json_string(const char *text, const char *key) {
  char pat[128];
  snprintf(pat, sizeof pat, "\"%s\"", key);
  const char *p = text ? strstr(text, pat) : NULL;
  if (!p || !(p = strchr(p + strlen(pat), ':')) || !(p = strchr(p, '"'))) return NULL;
  p++;
  sbuf b = {0};
  for (; *p && *p != '"'; p++) {
    if (*p == '\\' && p[1]) p++;
    sb_printf(&b, "%c", *p);
  }
  return b.s;
}

/* The TARP / MIRA vectors of jade validate: tarp_PART.txt and the mira_PART keys of summary.json. */
static const char *const tarp_part[3] = {"joint", "theta", "maps"};

/* The files of a jade validate output the report reads. */
typedef struct {
  char *js;               /* summary.json */
  table tarp[3];          /* tarp_joint.txt, tarp_theta.txt, tarp_maps.txt */
  table cov, po, pw, pdf; /* coverage.txt, per_obs.txt, power.txt, pdf.txt */
} val_dir;

static void val_dir_free(val_dir *v) {
  free(v->js);
  for (int k = 0; k < 3; k++) table_free(&v->tarp[k]);
  table_free(&v->cov);
  table_free(&v->po);
  table_free(&v->pw);
  table_free(&v->pdf);
  memset(v, 0, sizeof *v);
}

/* summary.json and the tables of a validation output; the first file missing or malformed is
 * the error (v is freed by the caller either way). */
static jade_status val_dir_read(const char *dir, val_dir *v) {
  char path[4400];
  memset(v, 0, sizeof *v);
  snprintf(path, sizeof path, "%s/summary.json", dir);
  v->js = slurp(path, NULL);
  jade_status st = v->js ? JADE_OK : jade_error(JADE_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
  for (int k = 0; k < 3 && !st; k++) {
    snprintf(path, sizeof path, "%s/tarp_%s.txt", dir, tarp_part[k]);
    st = table_read(path, &v->tarp[k]);
    if (!st && v->tarp[k].ncol != 6) st = jade_error(JADE_ERR_FORMAT, "%s: expected 6 columns", path);
  }
  snprintf(path, sizeof path, "%s/coverage.txt", dir);
  if (!st) st = table_read(path, &v->cov);
  if (!st && (v->cov.ncol != 11 || v->cov.nrow != NCOL))
    st = jade_error(JADE_ERR_FORMAT, "%s: expected %d rows of 11 columns", path, NCOL);
  snprintf(path, sizeof path, "%s/per_obs.txt", dir);
  if (!st) st = table_read(path, &v->po);
  snprintf(path, sizeof path, "%s/power.txt", dir);
  if (!st) st = table_read(path, &v->pw);
  snprintf(path, sizeof path, "%s/pdf.txt", dir);
  if (!st) st = table_read(path, &v->pdf);
  return st;
}

/* The headline numbers: observations and draws, and the MIRA scores of the joint vector, the
 * parameters and the maps against the calibrated expectation. */
static void mira_section(page *pg, const char *js) {
  sbuf *b = &pg->body;
  const double T = jade_json_number(js, "n_obs"), S = jade_json_number(js, "draws");
  sb_printf(b, "<h2>Calibration over held-out simulations</h2>\n<p>%.0f observations x %.0f posterior draws (%.0f Heun steps); "
               "model step %.0f.</p>\n",
            T, S, jade_json_number(js, "steps"), jade_json_number(js, "model_step"));
  sb_printf(b, "<table><tr><th>MIRA</th><th>score</th><th>bootstrap sd</th><th>calibrated expectation</th></tr>\n");
  const double mexp = jade_json_number(js, "mira_expected");
  for (int k = 0; k < 3; k++) {
    char key[64], kerr[64];
    snprintf(key, sizeof key, "mira_%s", tarp_part[k]);
    snprintf(kerr, sizeof kerr, "mira_%s_err", tarp_part[k]);
    double v = jade_json_number(js, key), e = jade_json_number(js, kerr);
    sb_printf(b, "<tr><td>%s</td><td class=\"%s\">%.4f</td><td>%.4f</td><td>%.4f</td></tr>\n",
              k == 0 ? "joint (maps + parameters)" : k == 1 ? "parameters" : "maps", fabs(v - mexp) <= 2 * e + 1e-9 ? "good" : "bad", v,
              e, mexp);
  }
  sb_printf(b, "</table>\n<p class=\"note\">MIRA (Sharief, Zeghal et al. 2026): about 2/3 for a calibrated posterior (%.4f for %.0f "
               "draws); the paper's joint score is 0.635 &plusmn; 0.017. Lower means over- or under-confident or biased. ",
            mexp, S);
  const char *units = strstr(js, "\"units\"");
  if (units) {
    const char *q0 = strchr(units + 7, '"'), *q1 = q0 ? strchr(q0 + 1, '"') : NULL;
    if (q0 && q1) {
      sb_printf(b, "Units: ");
      for (const char *c = q0 + 1; c < q1; c++) sb_printf(b, "%c", *c == '<' ? ' ' : *c);
    }
  }
  sb_printf(b, "</p>\n");
}

/* The TARP expected-coverage curves of the three vectors with their bootstrap bands. */
static void tarp_figure(page *pg, const table tt[3], const char *js) {
  jade_image im;
  const int pw_ = 300, ph = 300, mx = 80, gx = 60;
  if (jade_image_init(&im, mx + 3 * (pw_ + gx), ph + 110, 0xFFFFFF)) return;
  for (int k = 0; k < 3; k++) {
    const table *t = &tt[k];
    size_t n = t->nrow;
    double *a = malloc(6 * n * sizeof(double));
    if (!a) break;
    for (size_t r = 0; r < n; r++)
      for (int c = 0; c < 6; c++) a[c * n + r] = t->v[r * 6 + c];
    jade_axes ax;
    jade_axes_init(&ax, &im, mx + k * (pw_ + gx), 40, pw_, ph, 0, 1, 0, 1, 0, 0);
    jade_axes_band(&ax, a, a + 4 * n, a + 5 * n, (int)n, C_JADE, 0.15);
    jade_axes_band(&ax, a, a + 2 * n, a + 3 * n, (int)n, C_JADE, 0.3);
    double d[2] = {0, 1};
    jade_axes_plot(&ax, d, d, 2, C_TRUTH, 1.2, 6);
    jade_axes_plot(&ax, a, a + n, (int)n, C_JADE, 2, 0);
    char key[64], kerr[64], title[96];
    snprintf(key, sizeof key, "mira_%s", tarp_part[k]);
    snprintf(kerr, sizeof kerr, "mira_%s_err", tarp_part[k]);
    snprintf(title, sizeof title, "%s: MIRA %.3f\xC2\xB1%.3f", tarp_part[k], jade_json_number(js, key), jade_json_number(js, kerr));
    jade_axes_decorate(&ax, title, "credibility level \xCE\xB1", k == 0 ? "expected coverage" : NULL, JADE_AX_GRID);
    if (k == 0) {
      jade_legend_entry le[3] = {{"TARP ECP", C_JADE, 0, 0}, {"68%/95% bootstrap", C_JADE, 0, 1}, {"calibrated", C_TRUTH, 6, 0}};
      ax.scale = 1;
      jade_axes_legend(&ax, le, 3, 1);
    }
    free(a);
  }
  char cap[1200];
  snprintf(cap, sizeof cap,
           "TARP expected coverage (Lemos et al. 2023) of the joint vector, the parameters alone and the maps alone, with 68%% "
           "and 95%% bootstrap bands over the truths; the diagonal is calibrated, above it under-confident, below "
           "over-confident. Titles give the MIRA score of the same vector. Max deviation (joint): %.3f, signed area %.3f.",
           jade_json_number(js, "tarp_joint_max_dev"), jade_json_number(js, "tarp_joint_signed_area"));
  save_fig(pg, &im, "tarp.png", cap);
}

/* The per-parameter coverage table (coverage.txt) and the maps' pixel coverage. */
static void coverage_table(page *pg, const table *cov, const char *js) {
  sbuf *b = &pg->body;
  sb_printf(b, "<h2>Per-parameter calibration</h2>\n<table><tr><th>parameter</th><th>68%% coverage</th><th>95%% coverage</th>"
               "<th>mean offset (sd)</th><th>mean z&sup2;</th><th>rank &chi;&sup2; p-value</th></tr>\n");
  for (int j = 0; j < NCOL; j++) {
    const double *r = cov->v + (size_t)j * 11;
    int ok68 = fabs(r[1] - 0.6827) <= 2 * r[2] + 1e-9, ok95 = fabs(r[3] - 0.95) <= 2 * r[4] + 1e-9;
    sb_printf(b, "<tr><td>%s</td><td class=\"%s\">%.3f &plusmn; %.3f</td><td class=\"%s\">%.3f &plusmn; %.3f</td><td>%+.3f &plusmn; %.3f</td>"
                 "<td>%.2f</td><td class=\"%s\">%.3g</td></tr>\n",
              jade_posterior_col_names[j], ok68 ? "good" : "bad", r[1], r[2], ok95 ? "good" : "bad", r[3], r[4], r[5], r[6], r[7],
              r[10] > 0.01 ? "good" : "bad", r[10]);
  }
  sb_printf(b, "</table>\n<p class=\"note\">Coverage of the central 68.27%% / 95%% intervals of the draws (binomial standard errors); "
               "offset = mean over observations of (posterior mean &minus; truth) / posterior sd; mean z&sup2; about 1 + 3/S when "
               "calibrated (above: too narrow); SBC rank histogram &chi;&sup2; (Talts et al. 2018). Maps: per-pixel 68%% coverage "
               "%.3f, 95%% coverage %.3f.</p>\n",
            jade_json_number(js, "pixel_cov68"), jade_json_number(js, "pixel_cov95"));
}

/* Columns of per_obs.txt per parameter j: c[0][j] truth, c[1][j] posterior mean, c[2][j] sd,
 * c[3][j] rank of the truth among the draws; ok when every one is there. */
typedef struct {
  int ok;
  int c[4][NCOL];
} po_cols;

static void po_cols_find(const table *po, po_cols *pc) {
  for (int j = 0; j < NCOL; j++) {
    static const char *const grp[4] = {"truth", "mean", "std", "rank"};
    for (int g = 0; g < 4; g++) {
      char nm[64];
      snprintf(nm, sizeof nm, "%s_%s", grp[g], jade_posterior_col_names[j]);
      pc->c[g][j] = table_col(po, nm);
    }
  }
  pc->ok = 1;
  for (int g = 0; g < 4; g++)
    for (int j = 0; j < NCOL; j++) pc->ok &= pc->c[g][j] >= 0;
}

/* Layout of the 2 x 4 grids of per-parameter panels (rank histograms, recovery). */
enum { GRID_PW = 230, GRID_PH = 150, GRID_MX = 110, GRID_GX = 90, GRID_GY = 70 };

/* SBC rank histograms of every parameter (S draws per observation). */
static void ranks_figure(page *pg, const table *po, const po_cols *pc, double S) {
  const size_t n = po->nrow;
  const int pw_ = GRID_PW, ph = GRID_PH, mx = GRID_MX, gx = GRID_GX, gy = GRID_GY;
  jade_image im;
  if (jade_image_init(&im, mx + 4 * (pw_ + gx), 30 + 2 * (ph + gy), 0xFFFFFF)) return;
  int nbins = (int)(S + 1 < 20 ? S + 1 : 20);
  for (int j = 0; j < NCOL; j++) {
    double edges[21], cnt[20] = {0}, hmax = 0;
    for (int k = 0; k <= nbins; k++) edges[k] = (S + 1) * k / nbins;
    for (size_t r = 0; r < n; r++) {
      double rk = po->v[r * po->ncol + pc->c[3][j]];
      int k = (int)floor(rk * nbins / (S + 1));
      if (k >= 0 && k < nbins) cnt[k]++;
    }
    for (int k = 0; k < nbins; k++) hmax = fmax(hmax, cnt[k]);
    double expc = (double)n / nbins, sdc = sqrt(expc * (1 - 1.0 / nbins));
    jade_axes ax;
    jade_axes_init(&ax, &im, mx + (j % 4) * (pw_ + gx), 26 + (j / 4) * (ph + gy), pw_, ph, 0, S + 1, 0,
                   fmax(hmax, expc + 2.5 * sdc) * 1.1, 0, 0);
    double xb[2] = {0, S + 1}, lo[2] = {expc - 2 * sdc, expc - 2 * sdc}, hi[2] = {expc + 2 * sdc, expc + 2 * sdc};
    jade_axes_band(&ax, xb, lo, hi, 2, 0x999999, 0.25);
    jade_axes_hline(&ax, expc, 0x555555, 1, 5);
    jade_axes_stairs(&ax, edges, cnt, nbins, C_JADE, 1.5, 0.3);
    jade_axes_decorate(&ax, col_label[j], j >= 4 ? "rank of the truth" : NULL, j % 4 == 0 ? "observations" : NULL, 0);
  }
  char cap[1200];
  snprintf(cap, sizeof cap,
           "SBC rank histograms (Talts et al. 2018): rank of the truth among the %.0f draws of each observation; uniform (dashed, "
           "grey band 2 sd) when calibrated; U-shaped: too narrow; hump: too wide; sloped: biased.",
           S);
  save_fig(pg, &im, "ranks.png", cap);
}

/* Posterior mean +- sd against the truth of every parameter, one point per observation. */
static void recovery_figure(page *pg, const table *po, const po_cols *pc) {
  const size_t n = po->nrow;
  const int pw_ = GRID_PW, ph = GRID_PH, mx = GRID_MX, gx = GRID_GX, gy = GRID_GY;
  jade_image im;
  if (jade_image_init(&im, mx + 4 * (pw_ + gx), 30 + 2 * (ph + 60 + gy), 0xFFFFFF)) return;
  double *x = malloc(4 * n * sizeof(double));
  for (int j = 0; x && j < NCOL; j++) {
    double *y = x + n, *lo = y + n, *hi = lo + n, mn = INFINITY, mxv = -INFINITY;
    for (size_t r = 0; r < n; r++) {
      const double *row = po->v + r * po->ncol;
      x[r] = row[pc->c[0][j]];
      y[r] = row[pc->c[1][j]];
      lo[r] = y[r] - row[pc->c[2][j]];
      hi[r] = y[r] + row[pc->c[2][j]];
      mn = fmin(mn, fmin(x[r], lo[r]));
      mxv = fmax(mxv, fmax(x[r], hi[r]));
    }
    double pad = 0.05 * (mxv - mn);
    jade_axes ax;
    jade_axes_init(&ax, &im, mx + (j % 4) * (pw_ + gx), 26 + (j / 4) * (ph + 60 + gy), pw_, ph + 40, mn - pad, mxv + pad, mn - pad,
                   mxv + pad, 0, 0);
    double d[2] = {mn - pad, mxv + pad};
    jade_axes_plot(&ax, d, d, 2, C_TRUTH, 1, 6);
    jade_axes_errorbars(&ax, x, y, lo, hi, (int)n, C_JADE, 1);
    jade_axes_scatter(&ax, x, y, (int)n, 2.2, C_JADE, 0.9);
    jade_axes_decorate(&ax, col_label[j], "truth", j % 4 == 0 ? "posterior mean" : NULL, JADE_AX_GRID);
  }
  free(x);
  save_fig(pg, &im, "recovery.png", "Posterior mean +- 1 sd against the truth for every held-out observation; dashed: equality. "
                                    "Parameters the data do not constrain stay near the prior mean (flat rows).");
}

/* Power spectra of the draws relative to the truth's (power.txt: 10 columns) over the T
 * observations, every pair of the nb bins. */
static void power_ratio_section(page *pg, const table *pw, int nb, double T) {
  int pi[JADE_MAX_BINS * (JADE_MAX_BINS + 1) / 2], pj[JADE_MAX_BINS * (JADE_MAX_BINS + 1) / 2], npairs = choose_pairs(nb, pi, pj);
  spec_panel *sp = calloc((size_t)npairs, sizeof *sp);
  if (!sp) return;
  double in68 = 0;
  long nin = 0;
  for (int k = 0; k < npairs; k++) {
    spec_panel *s = &sp[k];
    spec_panel_pair(s, pi[k], pj[k]);
    s->noise = NAN;
    for (size_t r = 0; r < pw->nrow && s->nb < 64; r++) {
      const double *row = pw->v + r * 10;
      if ((int)row[0] != pi[k] || (int)row[1] != pj[k]) continue;
      s->ell[s->nb] = row[3];
      s->mean[s->nb] = row[6];
      s->lo[s->nb] = row[6] - row[7];
      s->hi[s->nb] = row[6] + row[7];
      in68 += row[9];
      nin++;
      s->nb++;
    }
  }
  sb_printf(&pg->body, "<h2>Two-point statistics</h2>\n");
  char cap[1200];
  snprintf(cap, sizeof cap,
           "Power spectra of the posterior draws relative to the truth: per observation, the draws' mean C_l divided by the "
           "truth's, averaged over the %.0f observations (line) with the spread over observations (band, 1 sd); 1 (dashed) is "
           "unbiased. The truth lies inside the draws' 16-84%% range in %.1f%% of (observation, band) cases shown (68%% "
           "expected for calibrated draws; power.txt has every pair).",
           T, nin ? 100 * in68 / nin : NAN);
  spectra_figure(pg, "power.png", cap, sp, npairs, nb, 0, 0, 0, 0, 1);
  free(sp);
}

/* The one-point PDF of draws and truths (pdf.txt: 5 columns) pooled over the T observations,
 * one panel per bin. */
static void pdf_pooled_section(page *pg, const table *pdf, int nb, double T) {
  pdf_panel *pp = calloc((size_t)nb, sizeof *pp);
  if (!pp) return;
  for (int bb = 0; bb < nb; bb++) {
    pdf_panel *p = &pp[bb];
    snprintf(p->title, sizeof p->title, "bin %d", bb + 1);
    for (size_t r = 0; r < pdf->nrow && p->nh < 128; r++) {
      const double *row = pdf->v + r * 5;
      if ((int)row[0] != bb) continue;
      p->edges[p->nh] = row[1];
      p->edges[p->nh + 1] = row[2];
      p->truth[p->nh] = row[3];
      p->mean[p->nh] = row[4];
      p->nh++;
    }
  }
  sb_printf(&pg->body, "<h2>One-point statistics</h2>\n");
  char cap[1200];
  snprintf(cap, sizeof cap, "One-point PDF of the convergence pooled over the %.0f observations: posterior draws (blue) vs the truths "
                            "(black), log scale. pdf.txt also lists the variance and skewness of draws and truths.",
           T);
  pdf_figure(pg, "pdf.png", cap, pp, nb, 1, 0);
  free(pp);
}

/* Held-out observation 0 (example_maps.npy: truth, observation, mean, std, draws; when its shape
 * is sound): its maps, and the corner plot of its draws (example_theta.npy) against its truth
 * (row 0 of per_obs.txt, pc) and the prior (NULL: none). */
static void example_section(page *pg, const char *js, const table *po, const po_cols *pc, const double *prior) {
  char path[4400], tpath[4400];
  jade_npy exm, ext;
  memset(&exm, 0, sizeof exm);
  memset(&ext, 0, sizeof ext);
  snprintf(path, sizeof path, "%s/example_maps.npy", pg->dir);
  snprintf(tpath, sizeof tpath, "%s/example_theta.npy", pg->dir);
  if (exists(path) && !jade_npy_read(path, 1, &exm) && exm.ndim == 4 && exm.dtype == JADE_F32 && exm.shape[0] >= 4 &&
      exm.shape[1] >= 1 && exm.shape[1] <= JADE_MAX_BINS && exm.shape[2] == exm.shape[3] && exm.shape[2] >= 1 &&
      exm.shape[2] <= 65536) {
    const int enb = (int)exm.shape[1], enp = (int)exm.shape[2];
    const size_t nx = (size_t)enb * enp * enp;
    const float *e = exm.data;
    map_col cols[8];
    int nc = 0;
    cols[nc++] = (map_col){"truth", e, 0};
    cols[nc++] = (map_col){"observation", e + nx, 1};
    cols[nc++] = (map_col){"posterior mean", e + 2 * nx, 0};
    cols[nc++] = (map_col){"posterior std", e + 3 * nx, 2};
    float *resid = residual_maps(e + 2 * nx, e, e + 3 * nx, nx);
    if (resid) cols[nc++] = (map_col){"(mean-truth)/sd", resid, 3};
    static const char *const dn[3] = {"draw 1", "draw 2", "draw 3"};
    for (size_t d = 4; d < exm.shape[0] && d < 7; d++) cols[nc++] = (map_col){dn[d - 4], e + d * nx, 0};
    sb_printf(&pg->body, "<h2>Example: held-out observation 0</h2>\n");
    maps_figure(pg, "example_maps.png",
                "The first held-out simulation: truth, its noisy observation, posterior mean, standard deviation, the residual (mean "
                "- truth) / sd (RdBu, -3 to 3: about 68% of the pixels within +-1 for a calibrated posterior) and draws (one row "
                "per bin; shared colour scale for truth, mean and draws; axes in degrees, y = 0 at the bottom).",
                enb, enp, jade_json_number(js, "size_deg"), cols, nc);
    free(resid);
    if (exists(tpath) && !jade_npy_read(tpath, 1, &ext) && ext.ndim == 2 && ext.dtype == JADE_F64 && ext.shape[1] == NCOL && pc->ok) {
      double truth[NCOL];
      for (int j = 0; j < NCOL; j++) truth[j] = po->v[pc->c[0][j]];
      jade_corner_set set[2] = {{ext.data, ext.shape[0], NCOL, C_JADE, "JADE", JADE_CORNER_FILLED},
                                {prior, PRIOR_DRAWS, NCOL, C_PRIOR, "prior", JADE_CORNER_PRIOR}};
      corner_figure(pg, "example_corner.png",
                    "Corner plot of the posterior draws of held-out observation 0 (truth in red; prior marginals dashed grey when "
                    "the run's config.ini is there; 2-D regions of an adaptive Gaussian kernel density, Scott's rule).",
                    set, prior ? 2 : 1, truth);
    }
  }
  jade_npy_release(&exm);
  jade_npy_release(&ext);
}

static jade_status report_validation(const char *dir, const jade_report_options *o, char *html_path, size_t hn) {
  page pg = {.dir = dir, .st = JADE_OK};
  double *prior = NULL;
  char *model = NULL, *data = NULL;
  val_dir v;
  jade_status st = val_dir_read(dir, &v);
  if (st) goto out;
  model = json_string(v.js, "model");
  data = json_string(v.js, "data");
  page_input(&pg, "validation run", dir);
  page_input(&pg, "model", model);
  page_input(&pg, "held-out data", data);
  sbuf vnotes = {0};
  run_cfg rc;
  run_cfg_load(dir, &rc, &pg, &vnotes);
  free(vnotes.s);
  prior = rc.ok ? prior_rows(&rc.sc) : NULL;
  const double T = jade_json_number(v.js, "n_obs"), S = jade_json_number(v.js, "draws");
  const int nb = (int)jade_json_number(v.js, "n_bins");
  mira_section(&pg, v.js);
  tarp_figure(&pg, v.tarp, v.js);
  coverage_table(&pg, &v.cov, v.js);
  /* rank histograms and recovery */
  po_cols pc;
  po_cols_find(&v.po, &pc);
  if (pc.ok) {
    ranks_figure(&pg, &v.po, &pc, S);
    recovery_figure(&pg, &v.po, &pc);
  }
  if (v.pw.ncol == 10 && nb > 0) power_ratio_section(&pg, &v.pw, nb, T);
  if (v.pdf.ncol == 5 && nb > 0) pdf_pooled_section(&pg, &v.pdf, nb, T);
  example_section(&pg, v.js, &v.po, &pc, prior);
  jade_clear_error();
  char sub[4400];
  snprintf(sub, sizeof sub, "%s: model %s, held-out data %s", o->name ? o->name : dir, model ? model : "?", data ? data : "?");
  st = page_write(&pg, "jade validation report", sub, html_path, hn);
out:
  if (st) page_discard(&pg);
  val_dir_free(&v);
  free(model);
  free(data);
  free(pg.body.s);
  free(pg.inputs.s);
  free(prior);
  return st;
}

/* ---------------------------------------------------------------- training (jade train) */

/* loss.csv of jade train: a header of column names, then comma-separated rows; empty fields
 * (validation columns between validations) are NaN. */
static jade_status csv_read(const char *path, table *t) {
  memset(t, 0, sizeof *t);
  char *text = slurp(path, NULL);
  if (!text) return jade_error(JADE_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
  jade_status st = JADE_OK;
  size_t cap = 0;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line && !st; line = strtok_r(NULL, "\n", &save)) {
    size_t len = strlen(line);
    if (len && line[len - 1] == '\r') line[--len] = 0;
    if (!len) continue;
    double row[TMAXCOL];
    int k = 0;
    for (char *f = line, *next; f; f = next, k++) {
      next = strchr(f, ',');
      if (next) *next++ = 0;
      if (k == TMAXCOL) {
        st = jade_error(JADE_ERR_FORMAT, "%s: more than %d columns", path, TMAXCOL);
        break;
      }
      if (!t->ncol && !t->nhead) { /* the header */
        snprintf(t->names[k], sizeof t->names[0], "%s", f);
        continue;
      }
      char *end;
      double v = strtod(f, &end);
      row[k] = (*f && !*end) ? v : NAN;
    }
    if (st) break;
    if (!t->nhead) {
      t->nhead = t->ncol = k;
      continue;
    }
    st = table_append(t, row, k, &cap, path);
  }
  free(text);
  if (!st && !t->nrow) st = jade_error(JADE_ERR_FORMAT, "%s: no data rows", path);
  if (st) table_free(t);
  return st;
}

typedef struct {
  const char *col, *label;
  jade_rgb color;
  double dash;
} loss_curve;

/* One panel of loss curves against the step (points where the column is finite). */
static void loss_panel(jade_image *im, const table *t, double x0, double y0, double w, double h, const loss_curve *c, int nc,
                       int logy, const char *title, const char *ylabel) {
  int is = table_col(t, "step");
  double xmax = is >= 0 ? t->v[(t->nrow - 1) * t->ncol + is] : (double)t->nrow;
  double ymin = INFINITY, ymax = -INFINITY;
  for (int k = 0; k < nc; k++) {
    int j = table_col(t, c[k].col);
    if (j < 0) continue;
    for (size_t r = 0; r < t->nrow; r++) {
      double v = t->v[r * t->ncol + j];
      if (isfinite(v) && (!logy || v > 0)) ymin = fmin(ymin, v), ymax = fmax(ymax, v);
    }
  }
  if (!(ymax >= ymin)) ymin = 0.1, ymax = 1;
  if (ymax == ymin) ymax = ymin * 1.1 + 1e-12;
  jade_axes ax;
  if (logy)
    jade_axes_init(&ax, im, x0, y0, w, h, 0, xmax, ymin / 1.1, ymax * 1.1, 0, 1);
  else
    jade_axes_init(&ax, im, x0, y0, w, h, 0, xmax, ymin - 0.05 * (ymax - ymin), ymax + 0.05 * (ymax - ymin), 0, 0);
  jade_legend_entry le[8];
  int m = 0;
  double *x = malloc(sizeof(double) * t->nrow), *y = malloc(sizeof(double) * t->nrow);
  for (int k = 0; k < nc && x && y; k++) {
    int j = table_col(t, c[k].col);
    if (j < 0) continue;
    int n = 0;
    for (size_t r = 0; r < t->nrow; r++) {
      double v = t->v[r * t->ncol + j];
      if (!isfinite(v) || (logy && v <= 0)) continue;
      x[n] = is >= 0 ? t->v[r * t->ncol + is] : (double)r;
      y[n++] = v;
    }
    if (!n) continue;
    jade_axes_plot(&ax, x, y, n, c[k].color, 1.8, c[k].dash);
    if (n < 40) jade_axes_scatter(&ax, x, y, n, 2.4, c[k].color, 1);
    if (m < 8) le[m++] = (jade_legend_entry){c[k].label, c[k].color, c[k].dash, 0};
  }
  free(x);
  free(y);
  jade_axes_decorate(&ax, title, "step", ylabel, JADE_AX_GRID);
  ax.scale = 1;
  if (m) jade_axes_legend(&ax, le, m, 1);
}

static jade_status report_training(const char *dir, const jade_report_options *o, char *html_path, size_t hn) {
  char path[4400];
  snprintf(path, sizeof path, "%s/loss.csv", dir);
  table t;
  jade_status st = csv_read(path, &t);
  if (st) return st;
  if (table_col(&t, "step") < 0 || table_col(&t, "loss") < 0) {
    table_free(&t);
    return jade_error(JADE_ERR_FORMAT, "%s: no step and loss columns (not a jade train loss.csv)", path);
  }
  page pg = {.dir = dir, .st = JADE_OK};
  page_input(&pg, "training run", dir);
  page_input(&pg, "loss curves", path);
  const double *last = t.v + (t.nrow - 1) * t.ncol;
  int jv = table_col(&t, "val_loss_ema"), jvt = table_col(&t, "val_theta_ema"), je = table_col(&t, "elapsed_s");
  double best = INFINITY, best_step = NAN, val_last = NAN, vt_last = NAN;
  for (size_t r = 0; r < t.nrow && jv >= 0; r++) {
    double v = t.v[r * t.ncol + jv];
    if (!isfinite(v)) continue;
    val_last = v;
    if (jvt >= 0) vt_last = t.v[r * t.ncol + jvt];
    if (v < best) best = v, best_step = t.v[r * t.ncol + table_col(&t, "step")];
  }
  sb_printf(&pg.body, "<h2>Training</h2>\n<table><tr><th>quantity</th><th>value</th></tr>\n");
  sb_printf(&pg.body, "<tr><td>steps logged</td><td>%.0f</td></tr>\n", last[table_col(&t, "step")]);
  int jep = table_col(&t, "epoch");
  if (jep >= 0) sb_printf(&pg.body, "<tr><td>epochs</td><td>%.2f</td></tr>\n", last[jep]);
  if (je >= 0) sb_printf(&pg.body, "<tr><td>training time</td><td>%.1f h</td></tr>\n", last[je] / 3600.0);
  sb_printf(&pg.body, "<tr><td>last training loss</td><td>%.4f</td></tr>\n", last[table_col(&t, "loss")]);
  if (isfinite(val_last)) {
    sb_printf(&pg.body, "<tr><td>last validation loss (EMA weights)</td><td>%.4f</td></tr>\n", val_last);
    sb_printf(&pg.body, "<tr><td>lowest validation loss (EMA weights)</td><td>%.4f at step %.0f</td></tr>\n", best, best_step);
  }
  if (isfinite(vt_last)) sb_printf(&pg.body, "<tr><td>last validation theta loss (EMA)</td><td>%.4f</td></tr>\n", vt_last);
  sb_printf(&pg.body, "</table>\n");

  const int pw = 380, ph = 250, mx = 90, my = 40, gx = 110;
  jade_image im;
  if ((st = jade_image_init(&im, mx + 3 * (pw + gx), my + ph + 70, 0xFFFFFF))) {
    table_free(&t);
    free(pg.body.s);
    free(pg.inputs.s);
    return st;
  }
  const loss_curve total[] = {{"loss", "train", C_JADE, 0}, {"val_loss", "validation (live)", C_MCMC, 5},
                              {"val_loss_ema", "validation (EMA)", C_TRUTH, 0}};
  const loss_curve parts[] = {{"loss_map", "maps (per pixel)", C_JADE, 0}, {"loss_theta", "theta (per parameter)", C_MCMC, 0},
                              {"val_theta_ema", "theta, validation (EMA)", C_TRUTH, 5}};
  const loss_curve opt[] = {{"grad_norm", "gradient norm", C_JADE, 0}, {"lr", "learning rate x 1000", C_MCMC, 0}};
  loss_panel(&im, &t, mx, my, pw, ph, total, 3, 1, "objective", "loss");
  loss_panel(&im, &t, mx + (pw + gx), my, pw, ph, parts, 3, 1, "velocity error per term", "mean squared error");
  int jl = table_col(&t, "lr");
  if (jl >= 0)
    for (size_t r = 0; r < t.nrow; r++) t.v[r * t.ncol + jl] *= 1000.0;
  loss_panel(&im, &t, mx + 2 * (pw + gx), my, pw, ph, opt, 2, 0, "optimiser", NULL);
  save_fig(&pg, &im, "loss.png",
           "Training curves from loss.csv. Left: the objective on the training batches (means over the logging interval) "
           "and on the held-out validation split with the live and the EMA weights (model.safetensors holds the EMA). "
           "Middle: its map and parameter parts. Right: the gradient norm before clipping and the learning rate.");
  snprintf(path, sizeof path, "%s/config.ini", dir);
  char *cfg = slurp(path, NULL);
  if (cfg) {
    sb_printf(&pg.body, "<h2>Configuration (config.ini)</h2>\n<pre>");
    sb_html(&pg.body, cfg);
    sb_printf(&pg.body, "</pre>\n");
    free(cfg);
  }
  table_free(&t);
  char sub[4600];
  snprintf(sub, sizeof sub, "jade train output %s", o->name ? o->name : dir);
  st = page_write(&pg, "jade training report", sub, html_path, hn);
  if (st) page_discard(&pg);
  free(pg.body.s);
  free(pg.inputs.s);
  return st;
}

/* ---------------------------------------------------------------- jade sed fit */

/* DIR/NAME of the first (by name) NAME_summary.fits in dir, or "" */
static void sed_prefix(const char *dir, char *prefix, size_t n) {
  static const char suf[] = "_summary.fits";
  const size_t ls = sizeof suf - 1;
  char best[256] = "";
  prefix[0] = 0;
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l > ls && l < sizeof best && !strcmp(e->d_name + l - ls, suf) && (!best[0] || strcmp(e->d_name, best) < 0))
      snprintf(best, sizeof best, "%s", e->d_name);
  }
  closedir(d);
  if (!best[0]) return;
  best[strlen(best) - ls] = 0;
  snprintf(prefix, n, "%s/%s", dir, best);
}

/* Medians with 68% intervals against the truths: z (left) and log10 M* (right). */
static void sed_truth_figure(page *pg, const jade_sed_table *t) {
  const char *q[2] = {"z", "logM"}, *tn[2] = {"TRUE_Z", "TRUE_LOGM"}, *lab[2] = {"true z", "true log10 M* [Msun]"};
  const size_t n = t->n_rows;
  jade_image im;
  if (jade_image_init(&im, 1060, 500, 0xFFFFFF)) return;
  for (int k = 0; k < 2; k++) {
    char c[3][64];
    snprintf(c[0], 64, "%s_MED", q[k]);
    snprintf(c[1], 64, "%s_LO68", q[k]);
    snprintf(c[2], 64, "%s_HI68", q[k]);
    const double *tr = jade_sed_table_column(t, tn[k]), *m = jade_sed_table_column(t, c[0]);
    const double *lo = jade_sed_table_column(t, c[1]), *hi = jade_sed_table_column(t, c[2]);
    double a = INFINITY, b = -INFINITY;
    for (size_t i = 0; i < n; i++)
      if (isfinite(tr[i]) && isfinite(lo[i]) && isfinite(hi[i])) {
        a = fmin(a, fmin(tr[i], lo[i]));
        b = fmax(b, fmax(tr[i], hi[i]));
      }
    if (!(b > a)) {
      a = 0;
      b = 1;
    }
    double pad = 0.05 * (b - a), line[2] = {a - pad, b + pad};
    jade_axes ax;
    jade_axes_init(&ax, &im, 90 + k * 520, 40, 400, 380, line[0], line[1], line[0], line[1], 0, 0);
    jade_axes_decorate(&ax, k ? "stellar mass" : "redshift", lab[k], "posterior median, 68% interval", JADE_AX_GRID);
    jade_axes_plot(&ax, line, line, 2, C_TRUTH, 1.0, 4);
    jade_axes_errorbars(&ax, tr, m, lo, hi, (int)n, C_JADE, 1.2);
    jade_axes_scatter(&ax, tr, m, (int)n, 3.0, C_JADE, 0.9);
  }
  save_fig(pg, &im, "sed_truth.png",
           "Recovery on a mock catalogue: each galaxy's posterior median and 68% interval against its true redshift "
           "(left) and surviving stellar mass (right); dashed: equality. About 68% of the bars should cross the line.");
}

/* Galaxy g: a corner plot of z, log10 M*, dust2 and log10 Z from the chains (float32, n x nk x
 * W x 17) with the truths, and its photometry (AB magnitudes with 1-sigma errors) against the
 * emulators at the posterior medians (when the catalogue and the emulators are given). */
static void sed_galaxy_figure(page *pg, const jade_sed_table *t, const jade_npy *ch, size_t g,
                              const jade_sed_table *cat, const jade_sed_photulator *ph) {
  static const int cols[4] = {15, 16, 8, 1};
  static const char *const names[4] = {"z", "log M*", "dust2", "log Z"};
  static const char *const truths[4] = {"TRUE_Z", "TRUE_LOGM", "TRUE_dust2", "TRUE_log10Z"};
  size_t rows = ch->shape[1] * ch->shape[2];
  double *x = jade_alloc(rows * JADE_SED_NQ * sizeof(double) + 8);
  if (!x) return;
  const float *src = (const float *)ch->data + g * rows * JADE_SED_NQ;
  for (size_t q = 0; q < rows * JADE_SED_NQ; q++) x[q] = src[q];
  double tr[JADE_SED_NQ];
  for (int j = 0; j < JADE_SED_NQ; j++) tr[j] = NAN;
  for (int k = 0; k < 4; k++) {
    const double *c = cat ? jade_sed_table_column(cat, truths[k]) : NULL;
    if (!c) c = jade_sed_table_column(t, truths[k]);
    tr[cols[k]] = c ? c[g] : NAN;
  }
  const double size = 120 + 128.0 * 4;
  jade_image im;
  if (jade_image_init(&im, (int)size + 640, (int)size + 10, 0xFFFFFF)) {
    free(x);
    return;
  }
  jade_corner_set set = {x, rows, JADE_SED_NQ, C_JADE, "posterior", JADE_CORNER_FILLED};
  double trc[4];
  for (int k = 0; k < 4; k++) trc[k] = tr[cols[k]];
  jade_corner_plot(&im, 4, 6, size, 4, cols, names, &set, 1, trc);
  free(x);
  if (cat && ph) {
    int nb = jade_sed_photulator_n_bands(ph);
    double th[16], mag[JADE_SED_MAX_BANDS], bi[JADE_SED_MAX_BANDS], mo[JADE_SED_MAX_BANDS], lo[JADE_SED_MAX_BANDS],
        hi[JADE_SED_MAX_BANDS], mm[JADE_SED_MAX_BANDS], a = INFINITY, b = -INFINITY;
    for (int j = 0; j < 16; j++) {
      char name[64];
      snprintf(name, sizeof name, "%s_MED", jade_sed_param_name(j));
      th[j] = jade_sed_table_column(t, name)[g];
    }
    int ok = jade_sed_photulator_mags(ph, th, 1, mag, NULL) == JADE_OK;
    for (int b2 = 0; b2 < nb && ok; b2++) {
      char fn[128], en[128];
      snprintf(fn, sizeof fn, "F_%s", jade_sed_photulator_band(ph, b2));
      snprintf(en, sizeof en, "E_%s", jade_sed_photulator_band(ph, b2));
      const double *f = jade_sed_table_column(cat, fn), *e = jade_sed_table_column(cat, en);
      bi[b2] = b2;
      mm[b2] = mag[b2];
      mo[b2] = lo[b2] = hi[b2] = NAN;
      if (f && e && f[g] > 0 && e[g] > 0) { /* AB magnitudes of nanomaggies: 22.5 - 2.5 log10 f */
        mo[b2] = 22.5 - 2.5 * log10(f[g]);
        lo[b2] = mo[b2] - 1.0857 * e[g] / f[g];
        hi[b2] = mo[b2] + 1.0857 * e[g] / f[g];
      }
      a = fmin(a, fmin(mm[b2], isfinite(lo[b2]) ? lo[b2] : mm[b2]));
      b = fmax(b, fmax(mm[b2], isfinite(hi[b2]) ? fmin(hi[b2], mm[b2] + 3) : mm[b2]));
    }
    if (ok && b > a) {
      jade_axes ax;
      jade_axes_init(&ax, &im, size + 70, 60, 540, 380, -1, nb, a - 0.3, b + 0.3, 0, 0);
      jade_axes_decorate(&ax, "photometry", "band (emulator order, u to IRAC)", "AB magnitude (fainter up)", JADE_AX_GRID);
      jade_axes_errorbars(&ax, bi, mo, lo, hi, nb, C_TRUTH, 1.2);
      jade_axes_scatter(&ax, bi, mo, nb, 3.0, C_TRUTH, 1.0);
      jade_axes_plot(&ax, bi, mm, nb, C_MCMC, 1.5, 0);
      jade_legend_entry le[2] = {{"observed", C_TRUTH, 0, 0}, {"model at the posterior medians", C_MCMC, 0, 0}};
      jade_axes_legend(&ax, le, 2, 1);
    }
  }
  char file[32], cap[256];
  snprintf(file, sizeof file, "sed_galaxy%zu.png", g);
  snprintf(cap, sizeof cap, "Galaxy %zu: posterior of redshift, stellar mass, dust and metallicity (68%% and 95%% regions, "
           "truth as lines when known) and its photometry against the emulators at the posterior medians.", g);
  save_fig(pg, &im, file, cap);
}

/* The summary table of a fit (n galaxies): sampler diagnostics, coverage, the surrogate check. */
static void sed_table(page *pg, const jade_sed_table *t) {
  const size_t n = t->n_rows;
  const char *cn[6] = {"ACCEPT", "N_BURN", "TAU_z", "N_MODES", "PRIOR_ESS", "PRIOR_DZ"};
  const char *what[6] = {"acceptance", "burn-in iterations", "autocorrelation time of z (steps)", "modes started from",
                         "surrogate check: importance ESS / draws", "surrogate check: shift of the mean z (sd)"};
  sb_printf(&pg->body, "<h2>Catalogue</h2>\n<table><tr><th>quantity (over %zu galaxies)</th><th>median</th>"
                       "<th>16%%</th><th>84%%</th></tr>\n", n);
  double *v = jade_alloc(n * sizeof(double) + 8);
  for (int k = 0; k < 6 && v; k++) {
    const double *c = jade_sed_table_column(t, cn[k]);
    size_t m = 0;
    for (size_t i = 0; c && i < n; i++)
      if (isfinite(c[i])) v[m++] = c[i];
    if (!m) continue;
    sb_printf(&pg->body, "<tr><td>%s</td><td>%.3g</td><td>%.3g</td><td>%.3g</td></tr>\n", what[k],
              jade_plot_quantile(v, m, 1, 0.5), jade_plot_quantile(v, m, 1, 0.16), jade_plot_quantile(v, m, 1, 0.84));
  }
  const char *q[2] = {"z", "logM"}, *tn[2] = {"TRUE_Z", "TRUE_LOGM"};
  for (int k = 0; k < 2; k++) {
    char a[64], b[64], a9[64], b9[64];
    snprintf(a, 64, "%s_LO68", q[k]);
    snprintf(b, 64, "%s_HI68", q[k]);
    snprintf(a9, 64, "%s_LO95", q[k]);
    snprintf(b9, 64, "%s_HI95", q[k]);
    const double *tr = jade_sed_table_column(t, tn[k]), *lo = jade_sed_table_column(t, a), *hi = jade_sed_table_column(t, b);
    const double *lo9 = jade_sed_table_column(t, a9), *hi9 = jade_sed_table_column(t, b9);
    size_t m = 0, in = 0, in9 = 0;
    for (size_t i = 0; tr && i < n; i++)
      if (isfinite(tr[i])) {
        m++;
        in += tr[i] >= lo[i] && tr[i] <= hi[i];
        in9 += tr[i] >= lo9[i] && tr[i] <= hi9[i];
      }
    if (m)
      sb_printf(&pg->body, "<tr><td>coverage of the true %s: 68%% / 95%% intervals</td><td>%.3f / %.3f</td>"
                           "<td colspan=\"2\">%zu galaxies with truth; binomial sd %.3f / %.3f</td></tr>\n",
                k ? "log10 M*" : "z", (double)in / m, (double)in9 / m, m, sqrt(0.68 * 0.32 / m), sqrt(0.95 * 0.05 / m));
  }
  sb_printf(&pg->body, "</table>\n");
  free(v);
}

static jade_status report_sed(const char *dir, const jade_report_options *o, char *html_path, size_t hn) {
  char prefix[4400], path[4600];
  sed_prefix(dir, prefix, sizeof prefix);
  if (!prefix[0]) return jade_error(JADE_ERR_FORMAT, "%s: no NAME_summary.fits of jade sed fit", dir);
  snprintf(path, sizeof path, "%s_summary.fits", prefix);
  jade_sed_table t, cat;
  memset(&cat, 0, sizeof cat);
  jade_status st = jade_sed_table_read(path, &t);
  if (st) return st;
  page pg = {.dir = dir, .st = JADE_OK};
  page_input(&pg, "fit summary", path);
  jade_sed_photulator *ph = NULL;
  if (o->catalogue) {
    page_input(&pg, "catalogue", o->catalogue);
    st = jade_sed_table_read(o->catalogue, &cat);
    char pp[4400];
    snprintf(pp, sizeof pp, "%s/photulator_cosmos26.safetensors", o->sed_models ? o->sed_models : "models/popcosmos");
    if (!st) st = jade_sed_photulator_load(pp, NULL, 0, &ph);
  }
  if (!st) sed_table(&pg, &t);
  const double *tz = jade_sed_table_column(&t, "TRUE_Z");
  int truth = 0;
  for (size_t i = 0; tz && i < t.n_rows; i++) truth |= isfinite(tz[i]);
  if (!st && truth) sed_truth_figure(&pg, &t);
  jade_npy ch;
  snprintf(path, sizeof path, "%s_chains.npy", prefix);
  if (!st && exists(path)) {
    st = jade_npy_read(path, 0, &ch);
    if (!st && (ch.dtype != JADE_F32 || ch.ndim != 4 || ch.shape[0] != t.n_rows || ch.shape[3] != JADE_SED_NQ))
      st = jade_error(JADE_ERR_FORMAT, "%s: not the chains of %s_summary.fits", path, prefix);
    if (!st) {
      page_input(&pg, "chains", path);
      sb_printf(&pg.body, "<h2>Galaxies</h2>\n");
      for (size_t g = 0; g < t.n_rows && g < 4; g++)
        sed_galaxy_figure(&pg, &t, &ch, g, o->catalogue ? &cat : NULL, ph);
      jade_npy_release(&ch);
    }
  }
  char sub[4600];
  snprintf(sub, sizeof sub, "jade sed fit %s: %zu galaxies", prefix, t.n_rows);
  if (!st) st = page_write(&pg, "jade sed fit report", sub, html_path, hn);
  if (st) page_discard(&pg);
  jade_sed_table_free(&t);
  jade_sed_table_free(&cat);
  jade_sed_photulator_free(ph);
  free(pg.body.s);
  free(pg.inputs.s);
  return st;
}

/* ---------------------------------------------------------------- entry points */

jade_status jade_report_detect(const char *dir, jade_report_kind *kind) {
  char path[4400];
  struct stat sb;
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return jade_error(JADE_ERR_IO, "%s: not a directory", dir);
  snprintf(path, sizeof path, "%s/summary.json", dir);
  char *js = slurp(path, NULL);
  int val = js && strstr(js, "jade-validation");
  free(js);
  if (val) {
    *kind = JADE_REPORT_VALIDATION;
    return JADE_OK;
  }
  snprintf(path, sizeof path, "%s/loss.csv", dir);
  char mpath[4400];
  snprintf(mpath, sizeof mpath, "%s/model.safetensors", dir);
  if (exists(path) && exists(mpath)) {
    *kind = JADE_REPORT_TRAINING;
    return JADE_OK;
  }
  char sp[4400];
  sed_prefix(dir, sp, sizeof sp);
  if (sp[0]) {
    *kind = JADE_REPORT_SED;
    return JADE_OK;
  }
  snprintf(path, sizeof path, "%s/theta.txt", dir);
  if (exists(path)) {
    table t;
    if (table_read(path, &t) == JADE_OK) {
      int ch = table_col(&t, "chain") >= 0;
      table_free(&t);
      *kind = ch ? JADE_REPORT_MCMC : JADE_REPORT_SAMPLE;
      return JADE_OK;
    }
    return jade_error_context(JADE_ERR_FORMAT, "%s", dir);
  }
  return jade_error(JADE_ERR_FORMAT,
                    "%s: not a jade sample, validate, mcmc or train output (no theta.txt, summary.json of jade validate, or loss.csv "
                    "with model.safetensors)", dir);
}

jade_status jade_report_write(const char *dir, const jade_report_options *o, char *html_path, size_t n) {
  jade_report_options dflt;
  if (!o) {
    jade_report_options_default(&dflt);
    o = &dflt;
  }
  jade_report_kind kind = o->kind;
  jade_status st = JADE_OK;
  if (kind == JADE_REPORT_AUTO && (st = jade_report_detect(dir, &kind))) return st;
  if (o->mcmc_dir && kind != JADE_REPORT_SAMPLE) return jade_error(JADE_ERR_INVALID, "--mcmc overlays only a jade sample output");
  switch (kind) {
    case JADE_REPORT_VALIDATION: return report_validation(dir, o, html_path, n);
    case JADE_REPORT_MCMC: return report_posterior(dir, o, 1, html_path, n);
    case JADE_REPORT_TRAINING: return report_training(dir, o, html_path, n);
    case JADE_REPORT_SED: return report_sed(dir, o, html_path, n);
    default: return report_posterior(dir, o, 0, html_path, n);
  }
}
