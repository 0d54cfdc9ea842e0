/* Raster plotting for jade's figures (include/jade/plot.h). */
#include "jade/plot.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "font5x7.h"
#include "jade/io.h"

#define R_(c) ((int)(((c) >> 16) & 255))
#define G_(c) ((int)(((c) >> 8) & 255))
#define B_(c) ((int)((c)&255))

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ---------------------------------------------------------------- image and PNG */

jade_status jade_image_init(jade_image *im, int w, int h, jade_rgb bg) {
  im->w = im->h = 0;
  im->px = NULL;
  if (w < 1 || h < 1 || w > 20000 || h > 20000) return jade_error(JADE_ERR_INVALID, "image size %dx%d out of range", w, h);
  im->px = malloc((size_t)w * h * 3);
  if (!im->px) return jade_error(JADE_ERR_NOMEM, "out of memory for a %dx%d image", w, h);
  im->w = w;
  im->h = h;
  for (size_t i = 0; i < (size_t)w * h; i++) {
    im->px[3 * i] = (unsigned char)R_(bg);
    im->px[3 * i + 1] = (unsigned char)G_(bg);
    im->px[3 * i + 2] = (unsigned char)B_(bg);
  }
  return JADE_OK;
}

void jade_image_free(jade_image *im) {
  if (!im) return;
  free(im->px);
  im->px = NULL;
  im->w = im->h = 0;
}

jade_rgb jade_image_get(const jade_image *im, int x, int y) {
  if (x < 0 || y < 0 || x >= im->w || y >= im->h) return 0;
  const unsigned char *p = im->px + 3 * ((size_t)y * im->w + x);
  return ((jade_rgb)p[0] << 16) | ((jade_rgb)p[1] << 8) | p[2];
}

typedef struct {
  char msg[200];
} png_err_ctx;

static void png_error_fn(png_structp png, png_const_charp msg) {
  png_err_ctx *e = png_get_error_ptr(png);
  snprintf(e->msg, sizeof e->msg, "%s", msg);
  png_longjmp(png, 1);
}
static void png_warn_fn(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg;
}

jade_status jade_image_write_png(const jade_image *im, const char *path) {
  return jade_image_write_png_text(im, path, NULL, 0);
}

jade_status jade_image_write_png_text(const jade_image *im, const char *path, const char *const *kv, int n_text) {
  if (!im || !im->px) return jade_error(JADE_ERR_INVALID, "%s: no image to write", path);
  if (n_text < 0 || n_text > 8 || (n_text && !kv)) return jade_error(JADE_ERR_INVALID, "%s: bad PNG text list", path);
  jade_text_file f;
  jade_status st = jade_text_open(path, &f);
  if (st) return st;
  png_err_ctx err = {""};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_error_fn, png_warn_fn);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) {
    png_destroy_write_struct(&png, NULL);
    jade_text_abort(&f);
    return jade_error(JADE_ERR_NOMEM, "%s: cannot create a PNG writer", path);
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    jade_text_abort(&f);
    return jade_error(JADE_ERR_IO, "%s: PNG write failed: %s", path, err.msg);
  }
  png_init_io(png, f.f);
  png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  /* tEXt chunks (PNG 1.2 Sec. 4.2.3.1: Latin-1 keywords of 1-79 characters) */
  png_text txt[8];
  memset(txt, 0, sizeof txt);
  for (int i = 0; i < n_text; i++) {
    txt[i].compression = PNG_TEXT_COMPRESSION_NONE;
    txt[i].key = (png_charp)kv[2 * i];
    txt[i].text = (png_charp)kv[2 * i + 1];
  }
  if (n_text) png_set_text(png, info, txt, n_text);
  png_write_info(png, info);
  for (int y = 0; y < im->h; y++) png_write_row(png, im->px + (size_t)y * im->w * 3);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  return jade_text_commit(&f);
}

jade_status jade_image_read_png(const char *path, jade_image *out) {
  out->w = out->h = 0;
  out->px = NULL;
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path))
    return jade_error(JADE_ERR_FORMAT, "%s: not a readable PNG: %s", path, img.message);
  img.format = PNG_FORMAT_RGB;
  png_color white = {255, 255, 255};
  unsigned char *buf = malloc(PNG_IMAGE_SIZE(img));
  if (!buf) {
    png_image_free(&img);
    return jade_error(JADE_ERR_NOMEM, "%s: out of memory", path);
  }
  if (!png_image_finish_read(&img, &white, buf, 0, NULL)) {
    free(buf);
    png_image_free(&img);
    return jade_error(JADE_ERR_FORMAT, "%s: PNG decode failed: %s", path, img.message);
  }
  out->w = (int)img.width;
  out->h = (int)img.height;
  out->px = buf;
  return JADE_OK;
}

/* ---------------------------------------------------------------- primitives */

void jade_blend(jade_image *im, int x, int y, jade_rgb c, double a) {
  if (x < 0 || y < 0 || x >= im->w || y >= im->h || !(a > 0)) return;
  if (a > 1) a = 1;
  unsigned char *p = im->px + 3 * ((size_t)y * im->w + x);
  p[0] = (unsigned char)lrint(p[0] + (R_(c) - p[0]) * a);
  p[1] = (unsigned char)lrint(p[1] + (G_(c) - p[1]) * a);
  p[2] = (unsigned char)lrint(p[2] + (B_(c) - p[2]) * a);
}

void jade_draw_line(jade_image *im, double x0, double y0, double x1, double y1, double width, jade_rgb c, double alpha) {
  if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1)) return;
  const double hw = width > 0 ? width / 2 : 0.5;
  int bx0 = (int)floor(fmin(x0, x1) - hw - 1), bx1 = (int)ceil(fmax(x0, x1) + hw + 1);
  int by0 = (int)floor(fmin(y0, y1) - hw - 1), by1 = (int)ceil(fmax(y0, y1) + hw + 1);
  if (bx0 < 0) bx0 = 0;
  if (by0 < 0) by0 = 0;
  if (bx1 > im->w - 1) bx1 = im->w - 1;
  if (by1 > im->h - 1) by1 = im->h - 1;
  const double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
  for (int y = by0; y <= by1; y++)
    for (int x = bx0; x <= bx1; x++) {
      double px = x + 0.5 - x0, py = y + 0.5 - y0;
      double t = len2 > 0 ? clampd((px * dx + py * dy) / len2, 0, 1) : 0;
      double ex = px - t * dx, ey = py - t * dy, d = sqrt(ex * ex + ey * ey);
      double cov = clampd(hw + 0.5 - d, 0, 1);
      if (cov > 0) jade_blend(im, x, y, c, alpha * cov);
    }
}

void jade_draw_polyline(jade_image *im, const double *x, const double *y, int n, double width, jade_rgb c, double alpha,
                        double dash) {
  double phase = 0; /* distance travelled in the current dash period */
  for (int i = 0; i + 1 < n; i++) {
    if (!isfinite(x[i]) || !isfinite(y[i]) || !isfinite(x[i + 1]) || !isfinite(y[i + 1])) continue;
    if (dash <= 0) {
      jade_draw_line(im, x[i], y[i], x[i + 1], y[i + 1], width, c, alpha);
      continue;
    }
    double dx = x[i + 1] - x[i], dy = y[i + 1] - y[i], len = sqrt(dx * dx + dy * dy), s = 0;
    while (s < len) {
      double in_period = fmod(phase, 2 * dash), left = (in_period < dash ? dash : 2 * dash) - in_period;
      double e = fmin(len, s + left);
      if (in_period < dash && len > 0)
        jade_draw_line(im, x[i] + dx * s / len, y[i] + dy * s / len, x[i] + dx * e / len, y[i] + dy * e / len, width, c,
                       alpha);
      phase += e - s;
      s = e;
    }
  }
}

void jade_fill_rect(jade_image *im, double x0, double y0, double x1, double y1, jade_rgb c, double alpha) {
  if (x1 < x0) {
    double t = x0;
    x0 = x1;
    x1 = t;
  }
  if (y1 < y0) {
    double t = y0;
    y0 = y1;
    y1 = t;
  }
  int ix0 = (int)floor(x0), ix1 = (int)ceil(x1), iy0 = (int)floor(y0), iy1 = (int)ceil(y1);
  for (int y = iy0 < 0 ? 0 : iy0; y < iy1 && y < im->h; y++) {
    double cy = fmin(y + 1, y1) - fmax(y, y0);
    for (int x = ix0 < 0 ? 0 : ix0; x < ix1 && x < im->w; x++) {
      double cx = fmin(x + 1, x1) - fmax(x, x0);
      jade_blend(im, x, y, c, alpha * cx * cy);
    }
  }
}

static int cmp_dbl(const void *a, const void *b) {
  double u = *(const double *)a, v = *(const double *)b;
  return u < v ? -1 : u > v;
}

void jade_fill_polygon(jade_image *im, const double *x, const double *y, int n, jade_rgb c, double alpha) {
  if (n < 3) return;
  double ymin = INFINITY, ymax = -INFINITY;
  for (int i = 0; i < n; i++) {
    if (!isfinite(x[i]) || !isfinite(y[i])) return;
    ymin = fmin(ymin, y[i]);
    ymax = fmax(ymax, y[i]);
  }
  int r0 = (int)floor(ymin), r1 = (int)ceil(ymax);
  if (r0 < 0) r0 = 0;
  if (r1 > im->h) r1 = im->h;
  double *cov = calloc((size_t)im->w + 1, sizeof *cov), *xs = malloc((size_t)n * sizeof *xs);
  if (!cov || !xs) {
    free(cov);
    free(xs);
    return;
  }
  const int SUB = 4;
  for (int row = r0; row < r1; row++) {
    int touched = 0;
    for (int s = 0; s < SUB; s++) {
      double sy = row + (s + 0.5) / SUB;
      int k = 0;
      for (int i = 0; i < n; i++) {
        int j = (i + 1) % n;
        double ya = y[i], yb = y[j];
        if ((ya <= sy && yb > sy) || (yb <= sy && ya > sy)) xs[k++] = x[i] + (sy - ya) / (yb - ya) * (x[j] - x[i]);
      }
      qsort(xs, (size_t)k, sizeof *xs, cmp_dbl);
      for (int p = 0; p + 1 < k; p += 2) {
        double a = clampd(xs[p], 0, im->w), b = clampd(xs[p + 1], 0, im->w);
        if (b <= a) continue;
        int ia = (int)floor(a), ib = (int)floor(b);
        if (ia == ib) {
          cov[ia] += (b - a) / SUB;
        } else {
          cov[ia] += (ia + 1 - a) / SUB;
          for (int q = ia + 1; q < ib; q++) cov[q] += 1.0 / SUB;
          if (ib < im->w) cov[ib] += (b - ib) / SUB;
        }
        touched = 1;
      }
    }
    if (!touched) continue;
    for (int q = 0; q < im->w; q++)
      if (cov[q] > 0) {
        jade_blend(im, q, row, c, alpha * fmin(cov[q], 1.0));
        cov[q] = 0;
      }
  }
  free(cov);
  free(xs);
}

void jade_fill_circle(jade_image *im, double cx, double cy, double r, jade_rgb c, double alpha) {
  if (!isfinite(cx) || !isfinite(cy)) return;
  for (int y = (int)floor(cy - r - 1); y <= (int)ceil(cy + r + 1); y++)
    for (int x = (int)floor(cx - r - 1); x <= (int)ceil(cx + r + 1); x++) {
      double d = hypot(x + 0.5 - cx, y + 0.5 - cy);
      double cov = clampd(r + 0.5 - d, 0, 1);
      if (cov > 0) jade_blend(im, x, y, c, alpha * cov);
    }
}

/* ---------------------------------------------------------------- text */

/* Next code point of a UTF-8 string (invalid bytes -> '?'). */
static uint32_t utf8_next(const char **s) {
  const unsigned char *p = (const unsigned char *)*s;
  uint32_t c = p[0];
  int n = 0;
  if (c < 0x80) n = 0;
  else if ((c & 0xE0) == 0xC0) c &= 0x1F, n = 1;
  else if ((c & 0xF0) == 0xE0) c &= 0x0F, n = 2;
  else if ((c & 0xF8) == 0xF0) c &= 0x07, n = 3;
  else {
    (*s)++;
    return '?';
  }
  for (int i = 1; i <= n; i++) {
    if ((p[i] & 0xC0) != 0x80) {
      *s += i;
      return '?';
    }
    c = (c << 6) | (p[i] & 0x3F);
  }
  *s += n + 1;
  return c;
}

static int text_chars(const char *s) {
  int n = 0;
  while (*s) {
    utf8_next(&s);
    n++;
  }
  return n;
}

int jade_text_width(const char *s, int scale) {
  int n = s ? text_chars(s) : 0;
  return n ? (6 * n - 1) * scale : 0;
}

void jade_draw_text(jade_image *im, double x, double y, const char *s, int scale, jade_rgb c, int halign, int valign,
                    int vertical) {
  if (!s || !*s) return;
  if (scale < 1) scale = 1;
  const int tw = jade_text_width(s, scale), th = 7 * scale;
  /* box in the rotated frame: along = text direction, across = glyph height */
  double along0 = halign < 0 ? 0 : halign == 0 ? -tw / 2.0 : -tw;
  double across0 = valign < 0 ? 0 : valign == 0 ? -th / 2.0 : -th;
  int ox = (int)lrint(x), oy = (int)lrint(y), a0 = (int)lrint(along0), c0 = (int)lrint(across0);
  int pos = 0;
  while (*s) {
    uint32_t cp = utf8_next(&s);
    unsigned char g[5];
    if (!jade_font5x7_glyph(cp, g)) jade_font5x7_glyph('?', g);
    for (int col = 0; col < 5; col++)
      for (int row = 0; row < 7; row++) {
        if (!(g[col] >> row & 1)) continue;
        for (int u = 0; u < scale; u++)
          for (int v = 0; v < scale; v++) {
            int along = a0 + (pos * 6 + col) * scale + u, across = c0 + row * scale + v;
            if (!vertical)
              jade_blend(im, ox + along, oy + across, c, 1);
            else /* rotated anticlockwise: along goes up, across goes right */
              jade_blend(im, ox + across, oy - along - 1, c, 1);
          }
      }
    pos++;
  }
}

/* ---------------------------------------------------------------- colour maps */

static const jade_rgb cmap_viridis[11] = {0x440154, 0x482576, 0x414487, 0x35608D, 0x2A788E, 0x21908C,
                                          0x22A884, 0x43BF71, 0x7AD151, 0xBBDF27, 0xFDE725};
static const jade_rgb cmap_magma[11] = {0x000004, 0x140E36, 0x3B0F70, 0x641A80, 0x8C2981, 0xB73779,
                                        0xDE4968, 0xF7705C, 0xFE9F6D, 0xFECF92, 0xFCFDBF};
static const jade_rgb cmap_rdbu[11] = {0x053061, 0x2166AC, 0x4393C3, 0x92C5DE, 0xD1E5F0, 0xF7F7F7,
                                       0xFDDBC7, 0xF4A582, 0xD6604D, 0xB2182B, 0x67001F};

jade_rgb jade_cmap_color(jade_cmap m, double t) {
  if (!isfinite(t)) return 0x999999;
  t = clampd(t, 0, 1);
  if (m == JADE_CMAP_GREYS) {
    int v = (int)lrint(255 * (1 - t));
    return ((jade_rgb)v << 16) | ((jade_rgb)v << 8) | (jade_rgb)v;
  }
  const jade_rgb *tab = m == JADE_CMAP_MAGMA ? cmap_magma : m == JADE_CMAP_RDBU ? cmap_rdbu : cmap_viridis;
  double p = t * 10;
  int i = (int)floor(p);
  if (i >= 10) i = 9;
  double f = p - i;
  jade_rgb a = tab[i], b = tab[i + 1];
  int r = (int)lrint(R_(a) + (R_(b) - R_(a)) * f), g = (int)lrint(G_(a) + (G_(b) - G_(a)) * f),
      bl = (int)lrint(B_(a) + (B_(b) - B_(a)) * f);
  return ((jade_rgb)r << 16) | ((jade_rgb)g << 8) | (jade_rgb)bl;
}

/* ---------------------------------------------------------------- ticks */

int jade_nice_ticks(double lo, double hi, int log, int max_ticks, double *ticks, int max) {
  if (!isfinite(lo) || !isfinite(hi) || hi <= lo || max < 1) return 0;
  if (max_ticks < 2) max_ticks = 2;
  int n = 0;
  if (log) {
    if (lo <= 0) return 0;
    int e0 = (int)floor(log10(lo)), e1 = (int)ceil(log10(hi));
    static const double m125[3] = {1, 2, 5};
    for (int pass = 0; pass < 3; pass++) {
      /* pass 0: 1-2-5, pass 1: 1 and 3 (as 1, 3), pass 2: powers of ten (every k-th) */
      n = 0;
      int step = 1;
      if (pass == 2) {
        step = (e1 - e0 + max_ticks - 1) / max_ticks;
        if (step < 1) step = 1;
      }
      for (int e = e0; e <= e1 && n < max; e += step)
        for (int k = 0; k < (pass == 0 ? 3 : pass == 1 ? 2 : 1); k++) {
          double m = pass == 0 ? m125[k] : pass == 1 ? (k ? 3 : 1) : 1;
          double v = m * pow(10, e);
          if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9) && n < max) ticks[n++] = v;
        }
      if (n <= max_ticks && n >= 2) return n;
      if (pass == 2) return n;
    }
    return n;
  }
  /* the smallest step m 10^e (m in 1, 2, 2.5, 5) giving at most max_ticks ticks */
  static const double mant[4] = {1, 2, 2.5, 5};
  int e = (int)floor(log10(hi - lo)) - 3;
  for (int it = 0; it < 40; it++, e += (it % 4 == 0)) {
    double step = mant[it % 4] * pow(10, e);
    double first = ceil(lo / step - 1e-9) * step;
    long count = (long)floor((hi - first) / step + 1e-9) + 1;
    if (count > max_ticks) continue;
    n = 0;
    for (long k = 0; k < count && n < max; k++) {
      double v = first + (double)k * step;
      ticks[n++] = fabs(v) < step * 1e-9 ? 0 : v;
    }
    return n;
  }
  return 0;
}

void jade_tick_label(double v, double step, char *out, size_t n) {
  if (v == 0) {
    snprintf(out, n, "0");
    return;
  }
  double av = fabs(v);
  if (av >= 1e5 || av < 1e-3 || (step > 0 && step < 1e-4)) {
    /* scientific: mantissa digits from the step relative to v */
    int digits = 0;
    if (step > 0) {
      double rel = step / pow(10, floor(log10(av)));
      digits = rel >= 1 ? 0 : (int)ceil(-log10(rel) - 1e-9);
      if (digits > 4) digits = 4;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%.*e", digits, v);
    /* 1.5e-05 -> 1.5e-5, 1e+04 -> 1e4 */
    char *e = strchr(buf, 'e');
    if (e) {
      char sign = e[1];
      char *d = e + 2;
      while (*d == '0' && d[1]) d++;
      snprintf(out, n, "%.*se%s%s", (int)(e - buf), buf, sign == '-' ? "-" : "", d);
    } else {
      snprintf(out, n, "%s", buf);
    }
    return;
  }
  int dec = 0;
  if (step > 0 && step < 1) {
    dec = (int)ceil(-log10(step) - 1e-9);
    double m = step * pow(10, dec);
    if (fabs(m - lrint(m)) > 1e-6) dec++; /* 0.25 -> 2 decimals */
  }
  if (step <= 0) {
    snprintf(out, n, "%g", v);
    return;
  }
  snprintf(out, n, "%.*f", dec, v);
}

/* ---------------------------------------------------------------- axes */

/* Label of tick v: log axes use %g, or the short scientific form for all ticks when any
 * needs it (sci); linear axes go through jade_tick_label with the tick step. */
static void axis_label(double v, int log, double step, int sci, char *out, size_t n) {
  if (log && v == 0) {
    snprintf(out, n, "0");
    return;
  }
  if (!log) {
    jade_tick_label(v, step, out, n);
    return;
  }
  if (!sci) {
    snprintf(out, n, "%g", v);
    return;
  }
  jade_tick_label(v, 1e-300, out, n); /* a tiny step forces the scientific form */
  /* keep one significant digit at most: 1e-5, 2e-5, 3e-5 */
  char buf[64];
  snprintf(buf, sizeof buf, "%.0e", v);
  char *e = strchr(buf, 'e');
  if (e) {
    char sign = e[1], *d = e + 2;
    while (*d == '0' && d[1]) d++;
    snprintf(out, n, "%.*se%s%s", (int)(e - buf), buf, sign == '-' ? "-" : "", d);
  }
}

static int needs_sci(const double *t, int n) {
  for (int i = 0; i < n; i++)
    if (t[i] != 0 && (fabs(t[i]) < 1e-3 || fabs(t[i]) >= 1e5)) return 1;
  return 0;
}

void jade_axes_init(jade_axes *ax, jade_image *im, double x, double y, double w, double h, double xmin, double xmax,
                    double ymin, double ymax, int logx, int logy) {
  memset(ax, 0, sizeof *ax);
  ax->im = im;
  ax->x = x;
  ax->y = y;
  ax->w = w;
  ax->h = h;
  ax->logx = logx && xmin > 0 && xmax > 0;
  ax->logy = logy && ymin > 0 && ymax > 0;
  if (!(xmax > xmin)) {
    double c = isfinite(xmin) ? xmin : 0;
    xmin = c - (c ? fabs(c) * 0.1 : 1);
    xmax = c + (c ? fabs(c) * 0.1 : 1);
    if (ax->logx && xmin <= 0) ax->logx = 0;
  }
  if (!(ymax > ymin)) {
    double c = isfinite(ymin) ? ymin : 0;
    ymin = c - (c ? fabs(c) * 0.1 : 1);
    ymax = c + (c ? fabs(c) * 0.1 : 1);
    if (ax->logy && ymin <= 0) ax->logy = 0;
  }
  ax->xmin = xmin;
  ax->xmax = xmax;
  ax->ymin = ymin;
  ax->ymax = ymax;
  ax->scale = 2;
}

double jade_axes_px(const jade_axes *ax, double v) {
  double f = ax->logx ? (log10(v) - log10(ax->xmin)) / (log10(ax->xmax) - log10(ax->xmin))
                      : (v - ax->xmin) / (ax->xmax - ax->xmin);
  return ax->x + f * ax->w;
}
double jade_symlog(double y, double L) { return copysign(log1p(fabs(y) / L) / M_LN10, y); }
double jade_symlog_inv(double s, double L) { return copysign(L * expm1(fabs(s) * M_LN10), s); }

void jade_axes_symlog_y(jade_axes *ax, double L) {
  if (!(L > 0) || !isfinite(L)) return;
  ax->symlog_y = L;
  ax->logy = 0;
}

double jade_axes_py(const jade_axes *ax, double v) {
  double f;
  if (ax->symlog_y > 0) {
    double L = ax->symlog_y, a = jade_symlog(ax->ymin, L), b = jade_symlog(ax->ymax, L);
    f = (jade_symlog(v, L) - a) / (b - a);
  } else {
    f = ax->logy ? (log10(v) - log10(ax->ymin)) / (log10(ax->ymax) - log10(ax->ymin)) : (v - ax->ymin) / (ax->ymax - ax->ymin);
  }
  return ax->y + ax->h - f * ax->h;
}

/* Ticks of a symmetric-log axis: 0 (when inside) and +-m 10^k (m = 1, 2, 5, or 1 only when
 * that gives too many) from L up, within [lo, hi]; ascending. */
static int symlog_ticks(double lo, double hi, double L, int max_ticks, double *t, int max) {
  static const double mant[2][3] = {{1, 2, 5}, {1, 0, 0}};
  for (int pass = 0; pass < 2; pass++) {
    int n = 0;
    double v[64];
    if (lo <= 0 && hi >= 0) v[n++] = 0;
    int k0 = (int)floor(log10(L)), k1 = (int)ceil(log10(fmax(fabs(lo), fabs(hi)))) + 1;
    for (int k = k0; k <= k1 && n < 60; k++)
      for (int q = 0; q < 3 && n < 60; q++) {
        double m = mant[pass][q];
        if (m == 0) continue;
        double a = m * pow(10.0, k);
        if (a < L * 0.999) continue;
        if (a <= hi) v[n++] = a;
        if (-a >= lo) v[n++] = -a;
      }
    if (n > max_ticks && pass == 0) continue;
    /* ascending */
    for (int i = 1; i < n; i++)
      for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
        double tmp = v[j];
        v[j] = v[j - 1];
        v[j - 1] = tmp;
      }
    if (n > max_ticks) { /* thin evenly, keeping 0 */
      double w[64];
      int m = 0;
      for (int i = 0; i < n; i++)
        if (v[i] == 0 || i % ((n + max_ticks - 1) / max_ticks) == 0) w[m++] = v[i];
      memcpy(v, w, sizeof(double) * (size_t)m);
      n = m;
    }
    if (n > max) n = max;
    memcpy(t, v, sizeof(double) * (size_t)n);
    return n;
  }
  return 0;
}

static const jade_rgb AX_COLOR = 0x222222, GRID_COLOR = 0xE4E4E4;

static double tick_step(const double *t, int n) { return n >= 2 ? fabs(t[1] - t[0]) : 0; }

void jade_axes_decorate(jade_axes *ax, const char *title, const char *xlabel, const char *ylabel, unsigned flags) {
  jade_image *im = ax->im;
  const int s = ax->scale;
  double t[64];
  char lab[64];
  int maxx = (int)(ax->w / (s * 6 * 6.5)) + 1, maxy = (int)(ax->h / (s * 14)) + 1;
  if (maxx > 8) maxx = 8;
  if (maxy > 8) maxy = 8;
  /* fewer x ticks until neighbouring labels keep a gap of 2 characters */
  int nx = 0, sci = 0;
  double step = 0;
  for (int m = maxx; m >= 2; m--) {
    nx = jade_nice_ticks(ax->xmin, ax->xmax, ax->logx, m, t, 64);
    step = ax->logx ? 0 : tick_step(t, nx);
    sci = ax->logx && needs_sci(t, nx);
    if (flags & JADE_AX_NO_XLABELS) break;
    int ok = 1;
    double prev_right = -INFINITY;
    for (int i = 0; i < nx && ok; i++) {
      axis_label(t[i], ax->logx, step, sci, lab, sizeof lab);
      double px = jade_axes_px(ax, t[i]), hw = jade_text_width(lab, s) / 2.0;
      ok = px - hw >= prev_right + 12 * s;
      prev_right = px + hw;
    }
    if (ok) break;
  }
  for (int i = 0; i < nx; i++) {
    double px = jade_axes_px(ax, t[i]);
    if (flags & JADE_AX_GRID) jade_draw_line(im, px, ax->y, px, ax->y + ax->h, 1, GRID_COLOR, 1);
    jade_draw_line(im, px, ax->y + ax->h, px, ax->y + ax->h - 4, 1, AX_COLOR, 1);
    if (!(flags & JADE_AX_NO_XLABELS)) {
      axis_label(t[i], ax->logx, step, sci, lab, sizeof lab);
      /* a label sticking out of the panel by more than a few pixels would run into the next */
      double hw = jade_text_width(lab, s) / 2.0;
      if (px - hw >= ax->x - 8 && px + hw <= ax->x + ax->w + 8) jade_draw_text(im, px, ax->y + ax->h + 4, lab, s, AX_COLOR, 0, -1, 0);
    }
  }
  const int ylog = ax->logy || ax->symlog_y > 0; /* labels: %g or the short scientific form */
  int ny = (flags & JADE_AX_NO_YTICKS) ? 0
           : ax->symlog_y > 0          ? symlog_ticks(ax->ymin, ax->ymax, ax->symlog_y, maxy, t, 64)
                                       : jade_nice_ticks(ax->ymin, ax->ymax, ax->logy, maxy, t, 64);
  step = ylog ? 0 : tick_step(t, ny);
  sci = ylog && needs_sci(t, ny);
  for (int i = 0; i < ny; i++) {
    double py = jade_axes_py(ax, t[i]);
    if (flags & JADE_AX_GRID) jade_draw_line(im, ax->x, py, ax->x + ax->w, py, 1, GRID_COLOR, 1);
    jade_draw_line(im, ax->x, py, ax->x + 4, py, 1, AX_COLOR, 1);
    if (!(flags & JADE_AX_NO_YLABELS)) {
      axis_label(t[i], ylog, step, sci, lab, sizeof lab);
      jade_draw_text(im, ax->x - 5, py, lab, s, AX_COLOR, 1, 0, 0);
    }
  }
  /* frame */
  double x0 = floor(ax->x) + 0.5, y0 = floor(ax->y) + 0.5, x1 = floor(ax->x + ax->w) + 0.5, y1 = floor(ax->y + ax->h) + 0.5;
  jade_draw_line(im, x0, y0, x1, y0, 1, AX_COLOR, 1);
  jade_draw_line(im, x0, y1, x1, y1, 1, AX_COLOR, 1);
  jade_draw_line(im, x0, y0, x0, y1, 1, AX_COLOR, 1);
  jade_draw_line(im, x1, y0, x1, y1, 1, AX_COLOR, 1);
  if (title) jade_draw_text(im, ax->x + ax->w / 2, ax->y - 6, title, s, 0x000000, 0, 1, 0);
  if (xlabel)
    jade_draw_text(im, ax->x + ax->w / 2, ax->y + ax->h + ((flags & JADE_AX_NO_XLABELS) ? 6 : 8 + 8 * s), xlabel, s,
                   0x000000, 0, -1, 0);
  if (ylabel) {
    /* left of the widest tick label */
    int wmax = 0;
    if (!(flags & JADE_AX_NO_YLABELS))
      for (int i = 0; i < ny; i++) {
        axis_label(t[i], ylog, step, sci, lab, sizeof lab);
        int w = jade_text_width(lab, s);
        if (w > wmax) wmax = w;
      }
    jade_draw_text(im, ax->x - 14 - wmax - 4, ax->y + ax->h / 2, ylabel, s, 0x000000, 0, 1, 1);
  }
}

/* Clip a segment to the data rectangle (Liang-Barsky); 0 if outside. */
static int clip_segment(const jade_axes *ax, double *x0, double *y0, double *x1, double *y1) {
  double xl = ax->x, xr = ax->x + ax->w, yt = ax->y, yb = ax->y + ax->h;
  double dx = *x1 - *x0, dy = *y1 - *y0, t0 = 0, t1 = 1;
  double p[4] = {-dx, dx, -dy, dy}, q[4] = {*x0 - xl, xr - *x0, *y0 - yt, yb - *y0};
  for (int i = 0; i < 4; i++) {
    if (p[i] == 0) {
      if (q[i] < 0) return 0;
      continue;
    }
    double r = q[i] / p[i];
    if (p[i] < 0) {
      if (r > t1) return 0;
      if (r > t0) t0 = r;
    } else {
      if (r < t0) return 0;
      if (r < t1) t1 = r;
    }
  }
  double ax0 = *x0 + t0 * dx, ay0 = *y0 + t0 * dy, ax1 = *x0 + t1 * dx, ay1 = *y0 + t1 * dy;
  *x0 = ax0;
  *y0 = ay0;
  *x1 = ax1;
  *y1 = ay1;
  return 1;
}

static int point_ok(const jade_axes *ax, double x, double y) {
  return isfinite(x) && isfinite(y) && (!ax->logx || x > 0) && (!ax->logy || y > 0);
}

void jade_axes_plot(jade_axes *ax, const double *x, const double *y, int n, jade_rgb c, double width, double dash) {
  double *px = malloc(2 * (size_t)(n > 0 ? n : 1) * sizeof *px);
  if (!px) return;
  double *py = px + (n > 0 ? n : 1);
  /* clip each segment; runs of unclipped segments are drawn as one polyline (dashes continue) */
  int m = 0;
  for (int i = 0; i + 1 < n; i++) {
    if (!point_ok(ax, x[i], y[i]) || !point_ok(ax, x[i + 1], y[i + 1])) {
      jade_draw_polyline(ax->im, px, py, m, width, c, 1, dash);
      m = 0;
      continue;
    }
    double x0 = jade_axes_px(ax, x[i]), y0 = jade_axes_py(ax, y[i]), x1 = jade_axes_px(ax, x[i + 1]), y1 = jade_axes_py(ax, y[i + 1]);
    double cx0 = x0, cy0 = y0, cx1 = x1, cy1 = y1;
    if (!clip_segment(ax, &cx0, &cy0, &cx1, &cy1)) {
      jade_draw_polyline(ax->im, px, py, m, width, c, 1, dash);
      m = 0;
      continue;
    }
    if (m == 0 || cx0 != x0 || cy0 != y0) {
      jade_draw_polyline(ax->im, px, py, m, width, c, 1, dash);
      m = 0;
      px[m] = cx0;
      py[m++] = cy0;
    }
    px[m] = cx1;
    py[m++] = cy1;
    if (cx1 != x1 || cy1 != y1) {
      jade_draw_polyline(ax->im, px, py, m, width, c, 1, dash);
      m = 0;
    }
  }
  jade_draw_polyline(ax->im, px, py, m, width, c, 1, dash);
  free(px);
}

static double clamp_px(const jade_axes *ax, double v, int is_x) {
  return is_x ? clampd(v, ax->x, ax->x + ax->w) : clampd(v, ax->y, ax->y + ax->h);
}

void jade_axes_band(jade_axes *ax, const double *x, const double *lo, const double *hi, int n, jade_rgb c, double alpha) {
  double *px = malloc(4 * (size_t)(n > 0 ? n : 1) * sizeof *px);
  if (!px) return;
  double *py = px + 2 * (n > 0 ? n : 1);
  int i = 0;
  while (i < n) {
    /* a run of valid points */
    while (i < n && !(point_ok(ax, x[i], lo[i]) && point_ok(ax, x[i], hi[i]))) i++;
    int a = i;
    while (i < n && point_ok(ax, x[i], lo[i]) && point_ok(ax, x[i], hi[i])) i++;
    int m = i - a;
    if (m < 2) continue;
    for (int k = 0; k < m; k++) {
      px[k] = clamp_px(ax, jade_axes_px(ax, x[a + k]), 1);
      py[k] = clamp_px(ax, jade_axes_py(ax, hi[a + k]), 0);
      px[2 * m - 1 - k] = px[k];
      py[2 * m - 1 - k] = clamp_px(ax, jade_axes_py(ax, lo[a + k]), 0);
    }
    jade_fill_polygon(ax->im, px, py, 2 * m, c, alpha);
  }
  free(px);
}

static int inside(const jade_axes *ax, double px, double py) {
  return px >= ax->x - 0.5 && px <= ax->x + ax->w + 0.5 && py >= ax->y - 0.5 && py <= ax->y + ax->h + 0.5;
}

void jade_axes_scatter(jade_axes *ax, const double *x, const double *y, int n, double radius, jade_rgb c, double alpha) {
  for (int i = 0; i < n; i++) {
    if (!point_ok(ax, x[i], y[i])) continue;
    double px = jade_axes_px(ax, x[i]), py = jade_axes_py(ax, y[i]);
    if (inside(ax, px, py)) jade_fill_circle(ax->im, px, py, radius, c, alpha);
  }
}

void jade_axes_errorbars(jade_axes *ax, const double *x, const double *y, const double *ylo, const double *yhi, int n,
                         jade_rgb c, double width) {
  for (int i = 0; i < n; i++) {
    if (!point_ok(ax, x[i], ylo[i]) || !point_ok(ax, x[i], yhi[i])) continue;
    double px = jade_axes_px(ax, x[i]), p0 = jade_axes_py(ax, ylo[i]), p1 = jade_axes_py(ax, yhi[i]);
    if (px < ax->x || px > ax->x + ax->w) continue;
    double a = px, b = clamp_px(ax, p0, 0), cc = px, d = clamp_px(ax, p1, 0);
    jade_draw_line(ax->im, a, b, cc, d, width, c, 0.8);
    (void)y;
  }
}

void jade_axes_hline(jade_axes *ax, double y, jade_rgb c, double width, double dash) {
  double xs[2] = {ax->xmin, ax->xmax}, ys[2] = {y, y};
  jade_axes_plot(ax, xs, ys, 2, c, width, dash);
}
void jade_axes_vline(jade_axes *ax, double x, jade_rgb c, double width, double dash) {
  double xs[2] = {x, x}, ys[2] = {ax->ymin, ax->ymax};
  jade_axes_plot(ax, xs, ys, 2, c, width, dash);
}

void jade_axes_stairs(jade_axes *ax, const double *edges, const double *values, int n, jade_rgb c, double width,
                      double fill_alpha) {
  if (n < 1) return;
  double *x = malloc(sizeof(double) * (2 * (size_t)n + 2) * 2);
  if (!x) return;
  double *y = x + 2 * n + 2;
  double base = ax->logy ? ax->ymin : (ax->ymin > 0 ? ax->ymin : 0);
  int m = 0;
  x[m] = edges[0];
  y[m++] = base;
  for (int i = 0; i < n; i++) {
    double v = isfinite(values[i]) && (!ax->logy || values[i] > 0) ? values[i] : base;
    x[m] = edges[i];
    y[m++] = v;
    x[m] = edges[i + 1];
    y[m++] = v;
  }
  x[m] = edges[n];
  y[m++] = base;
  if (fill_alpha > 0) {
    double *px = malloc(sizeof(double) * (size_t)m * 2);
    if (px) {
      for (int i = 0; i < m; i++) {
        px[i] = clamp_px(ax, jade_axes_px(ax, x[i]), 1);
        px[m + i] = clamp_px(ax, jade_axes_py(ax, y[i]), 0);
      }
      jade_fill_polygon(ax->im, px, px + m, m, c, fill_alpha);
      free(px);
    }
  }
  jade_axes_plot(ax, x, y, m, c, width, 0);
  free(x);
}

void jade_axes_image(jade_axes *ax, const float *data, int nx, int ny, double vmin, double vmax, jade_cmap m) {
  int x0 = (int)lrint(ax->x), y0 = (int)lrint(ax->y), w = (int)lrint(ax->w), h = (int)lrint(ax->h);
  double span = vmax - vmin;
  if (!(span > 0)) span = 1;
  for (int py = 0; py < h; py++) {
    int j = (int)((py + 0.5) * ny / h);
    if (j >= ny) j = ny - 1;
    for (int px = 0; px < w; px++) {
      int i = (int)((px + 0.5) * nx / w);
      if (i >= nx) i = nx - 1;
      jade_rgb c = jade_cmap_color(m, (data[(size_t)j * nx + i] - vmin) / span);
      jade_blend(ax->im, x0 + px, y0 + py, c, 1);
    }
  }
}

void jade_colorbar(jade_image *im, double x, double y, double w, double h, double vmin, double vmax, jade_cmap m,
                   const char *label, int scale) {
  int iy0 = (int)lrint(y), ih = (int)lrint(h);
  for (int j = 0; j < ih; j++) {
    jade_rgb c = jade_cmap_color(m, 1.0 - (j + 0.5) / ih);
    jade_fill_rect(im, x, iy0 + j, x + w, iy0 + j + 1, c, 1);
  }
  jade_axes ax;
  jade_axes_init(&ax, im, x, y, w, h, 0, 1, vmin, vmax, 0, 0);
  double t[32];
  char lab[64];
  int maxt = (int)(h / (scale * 14)) + 1;
  if (maxt > 6) maxt = 6;
  int n = jade_nice_ticks(ax.ymin, ax.ymax, 0, maxt, t, 32);
  double step = tick_step(t, n);
  int wmax = 0;
  for (int i = 0; i < n; i++) {
    double py = jade_axes_py(&ax, t[i]);
    jade_draw_line(im, x + w - 3, py, x + w + 2, py, 1, AX_COLOR, 1);
    jade_tick_label(t[i], step, lab, sizeof lab);
    jade_draw_text(im, x + w + 4, py, lab, scale, AX_COLOR, -1, 0, 0);
    int tw = jade_text_width(lab, scale);
    if (tw > wmax) wmax = tw;
  }
  double x0 = floor(x) + 0.5, x1 = floor(x + w) + 0.5, y0 = floor(y) + 0.5, y1 = floor(y + h) + 0.5;
  jade_draw_line(im, x0, y0, x1, y0, 1, AX_COLOR, 1);
  jade_draw_line(im, x0, y1, x1, y1, 1, AX_COLOR, 1);
  jade_draw_line(im, x0, y0, x0, y1, 1, AX_COLOR, 1);
  jade_draw_line(im, x1, y0, x1, y1, 1, AX_COLOR, 1);
  if (label) jade_draw_text(im, x + w + 8 + wmax, y + h / 2, label, scale, 0x000000, 0, -1, 1);
}

void jade_axes_legend(jade_axes *ax, const jade_legend_entry *e, int n, int corner) {
  if (n < 1) return;
  const int s = ax->scale, lh = 10 * s, sw = 22;
  int wmax = 0;
  for (int i = 0; i < n; i++) {
    int w = jade_text_width(e[i].label, s);
    if (w > wmax) wmax = w;
  }
  double bw = sw + 14 + wmax, bh = n * lh + 8;
  double bx = (corner == 1 || corner == 3) ? ax->x + 6 : ax->x + ax->w - 6 - bw;
  double by = (corner == 2 || corner == 3) ? ax->y + ax->h - 6 - bh : ax->y + 6;
  jade_fill_rect(ax->im, bx, by, bx + bw, by + bh, 0xFFFFFF, 0.85);
  double x0 = floor(bx) + 0.5, y0 = floor(by) + 0.5, x1 = floor(bx + bw) + 0.5, y1 = floor(by + bh) + 0.5;
  jade_draw_line(ax->im, x0, y0, x1, y0, 1, 0xBBBBBB, 1);
  jade_draw_line(ax->im, x0, y1, x1, y1, 1, 0xBBBBBB, 1);
  jade_draw_line(ax->im, x0, y0, x0, y1, 1, 0xBBBBBB, 1);
  jade_draw_line(ax->im, x1, y0, x1, y1, 1, 0xBBBBBB, 1);
  for (int i = 0; i < n; i++) {
    double cy = by + 4 + lh * (i + 0.5);
    if (e[i].fill)
      jade_fill_rect(ax->im, bx + 5, cy - 3 * s, bx + 5 + sw, cy + 3 * s, e[i].c, 0.35);
    double xs[2] = {bx + 5, bx + 5 + sw}, ys[2] = {cy, cy};
    jade_draw_polyline(ax->im, xs, ys, 2, 2, e[i].c, 1, e[i].dash);
    jade_draw_text(ax->im, bx + sw + 10, cy, e[i].label, s, 0x000000, -1, 0, 0);
  }
}

/* ---------------------------------------------------------------- statistics helpers */

double jade_plot_quantile(const double *x, size_t n, size_t stride, double q) {
  double *v = malloc((n ? n : 1) * sizeof *v);
  if (!v) return NAN;
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (isfinite(x[i * stride])) v[m++] = x[i * stride];
  double r = NAN;
  if (m) {
    qsort(v, m, sizeof *v, cmp_dbl);
    double pos = clampd(q, 0, 1) * (double)(m - 1);
    size_t i = (size_t)floor(pos);
    r = i + 1 < m ? v[i] + (pos - (double)i) * (v[i + 1] - v[i]) : v[m - 1];
  }
  free(v);
  return r;
}

/* ---------------------------------------------------------------- corner plot */

/* ---------------------------------------------------------------- kernel densities */

#define KDE_MAX_POINTS 2000

/* The finite points used (every k-th of n so that at most KDE_MAX_POINTS remain). */
static size_t kde_points(const double *x, size_t n, size_t stride, int cx, int cy, double *px, double *py) {
  size_t k = n > KDE_MAX_POINTS ? (n + KDE_MAX_POINTS - 1) / KDE_MAX_POINTS : 1, m = 0;
  for (size_t i = 0; i < n; i += k) {
    double a = x[i * stride + (size_t)cx], b = cy >= 0 ? x[i * stride + (size_t)cy] : 0;
    if (!isfinite(a) || !isfinite(b)) continue;
    px[m] = a;
    if (py) py[m] = b;
    m++;
  }
  return m;
}

double jade_kde1d(const double *x, size_t n, size_t stride, const double *g, int m, double *out) {
  for (int j = 0; j < m; j++) out[j] = 0;
  double *p = malloc(sizeof(double) * (n < KDE_MAX_POINTS ? (n ? n : 1) : KDE_MAX_POINTS));
  if (!p) return NAN;
  size_t np = kde_points(x, n, stride, 0, -1, p, NULL);
  double mean = 0, var = 0;
  for (size_t i = 0; i < np; i++) mean += p[i];
  mean /= (double)(np ? np : 1);
  for (size_t i = 0; i < np; i++) var += (p[i] - mean) * (p[i] - mean);
  var /= (double)(np > 1 ? np - 1 : 1);
  /* Scott's rule, d = 1: h = sigma n^(-1/5) */
  double h = sqrt(var) * pow((double)np, -0.2);
  if (np < 2 || !(h > 0) || !isfinite(h)) {
    free(p);
    return NAN;
  }
  const double norm = 1.0 / ((double)np * h * sqrt(2 * M_PI));
  for (int j = 0; j < m; j++) {
    double s = 0;
    for (size_t i = 0; i < np; i++) {
      double z = (g[j] - p[i]) / h;
      if (fabs(z) < 8) s += exp(-0.5 * z * z);
    }
    out[j] = s * norm;
  }
  free(p);
  return h;
}

/* Sum over points p of w_p exp(-|L^-1 (x - x_p)|^2 / (2 lam_p^2)) / lam_p^2 at the cell centres
 * (L = [[l11, 0], [l21, l22]]), kernels cut at 6 lam_p. */
static void kde2d_sum(const double *px, const double *py, const double *lam, size_t m, double l11, double l21, double l22,
                      double xl, double dx, int nx, double yl, double dy, int ny, double *out) {
  const double cut = 6.0; /* exp(-18): below double precision relative to the peak sum */
  for (size_t p = 0; p < m; p++) {
    const double a = lam ? lam[p] : 1.0, a11 = a * l11, a22 = a * l22, w = 1.0 / (a * a);
    int i0 = (int)floor((px[p] - cut * a11 - xl) / dx), i1 = (int)ceil((px[p] + cut * a11 - xl) / dx);
    if (i0 < 0) i0 = 0;
    if (i1 > nx - 1) i1 = nx - 1;
    for (int i = i0; i <= i1; i++) {
      double z1 = (xl + (i + 0.5) * dx - px[p]) / a11;
      if (fabs(z1) > cut) continue;
      double e1 = w * exp(-0.5 * z1 * z1), yc = py[p] + l21 * a * z1; /* z2 = (y - yc) / a22 */
      int j0 = (int)floor((yc - cut * a22 - yl) / dy), j1 = (int)ceil((yc + cut * a22 - yl) / dy);
      if (j0 < 0) j0 = 0;
      if (j1 > ny - 1) j1 = ny - 1;
      for (int j = j0; j <= j1; j++) {
        double z2 = (yl + (j + 0.5) * dy - yc) / a22;
        out[(size_t)j * nx + i] += e1 * exp(-0.5 * z2 * z2);
      }
    }
  }
}

jade_status jade_kde2d(const double *x, size_t n, size_t stride, int cx, int cy, double xl, double xh, double yl, double yh,
                       int nx, int ny, int adaptive, double *out, double *f_out) {
  if (nx < 1 || ny < 1 || !(xh > xl) || !(yh > yl))
    return jade_error(JADE_ERR_INVALID, "kde2d: grid %d x %d over [%g, %g] x [%g, %g]", nx, ny, xl, xh, yl, yh);
  for (size_t i = 0; i < (size_t)nx * ny; i++) out[i] = 0;
  size_t cap = n < KDE_MAX_POINTS ? (n ? n : 1) : KDE_MAX_POINTS;
  double *px = malloc(sizeof(double) * cap * 3);
  if (!px) return jade_error(JADE_ERR_NOMEM, "kde2d: out of memory");
  double *py = px + cap, *lam = py + cap;
  size_t m = kde_points(x, n, stride, cx, cy, px, py);
  double mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
  for (size_t i = 0; i < m; i++) mx += px[i], my += py[i];
  mx /= (double)(m ? m : 1);
  my /= (double)(m ? m : 1);
  for (size_t i = 0; i < m; i++) {
    double a = px[i] - mx, b = py[i] - my;
    sxx += a * a, syy += b * b, sxy += a * b;
  }
  /* kernel covariance f^2 Sigma, f = m^(-1/6) (Scott's rule, d = 2), and its Cholesky factor */
  const double f = pow((double)(m ? m : 1), -1.0 / 6.0), f2 = f * f / (double)(m > 1 ? m - 1 : 1);
  const double k11 = f2 * sxx, k12 = f2 * sxy, k22 = f2 * syy;
  const double l11 = sqrt(k11), l21 = l11 > 0 ? k12 / l11 : 0, r = k22 - l21 * l21, l22 = r > 0 ? sqrt(r) : 0;
  if (m < 3 || !(l11 > 0) || !(l22 > 1e-12 * sqrt(k22)) || !isfinite(l11 * l22)) {
    free(px);
    return jade_error(JADE_ERR_NUMERIC, "kde2d: %zu points with a singular covariance", m);
  }
  if (f_out) *f_out = f;
  const double dx = (xh - xl) / nx, dy = (yh - yl) / ny;
  if (adaptive) {
    /* Abramson (1982) square-root law: lam_p = (pilot(x_p) / g)^(-1/2), the pilot the fixed
     * estimate at the points, g its geometric mean (Silverman 1986, Sec. 5.3.1) */
    double lg = 0;
    for (size_t p = 0; p < m; p++) {
      double sum = 0;
      for (size_t q = 0; q < m; q++) {
        double z1 = (px[p] - px[q]) / l11;
        if (fabs(z1) > 6) continue;
        double z2 = (py[p] - py[q] - l21 * z1) / l22;
        sum += exp(-0.5 * (z1 * z1 + z2 * z2));
      }
      lam[p] = sum; /* >= 1 (the point itself) */
      lg += log(sum);
    }
    const double g = exp(lg / (double)m);
    for (size_t p = 0; p < m; p++) lam[p] = sqrt(g / lam[p]);
  }
  kde2d_sum(px, py, adaptive ? lam : NULL, m, l11, l21, l22, xl, dx, nx, yl, dy, ny, out);
  const double norm = 1.0 / ((double)m * 2 * M_PI * l11 * l22);
  for (size_t i = 0; i < (size_t)nx * ny; i++) out[i] *= norm;
  free(px);
  return JADE_OK;
}

void jade_hpd_levels(const double *g, size_t n, const double *frac, int nf, double *level) {
  for (int k = 0; k < nf; k++) level[k] = INFINITY;
  double *v = malloc(sizeof(double) * (n ? n : 1));
  if (!v) return;
  double tot = 0;
  for (size_t i = 0; i < n; i++) v[i] = isfinite(g[i]) && g[i] > 0 ? g[i] : 0, tot += v[i];
  qsort(v, n, sizeof(double), cmp_dbl);
  for (int k = 0; k < nf && tot > 0; k++) {
    double cum = 0;
    for (size_t i = n; i-- > 0;) {
      cum += v[i];
      if (cum >= frac[k] * tot) {
        level[k] = v[i];
        break;
      }
    }
  }
  free(v);
}

/* ---------------------------------------------------------------- corner plot */

#define CG 64 /* 2-D density grid of a corner panel */

static double grid_interp(const double *g, double u, double v) {
  /* u, v in cell units, cell centres at i + 0.5 */
  double fu = u - 0.5, fv = v - 0.5;
  int a = (int)floor(fu), b = (int)floor(fv);
  double du = fu - a, dv = fv - b;
  double s = 0;
  for (int j = 0; j < 2; j++)
    for (int i = 0; i < 2; i++) {
      int aa = a + i < 0 ? 0 : a + i >= CG ? CG - 1 : a + i, bb = b + j < 0 ? 0 : b + j >= CG ? CG - 1 : b + j;
      s += g[bb * CG + aa] * (i ? du : 1 - du) * (j ? dv : 1 - dv);
    }
  return s;
}

static void set_range(const jade_corner_set *sets, int nsets, int col, double truth, double *lo, double *hi) {
  double l = INFINITY, h = -INFINITY;
  for (int s = 0; s < nsets; s++) {
    if (!sets[s].n || sets[s].style == JADE_CORNER_PRIOR) continue;
    double a = jade_plot_quantile(sets[s].x + col, sets[s].n, sets[s].stride, 0.005);
    double b = jade_plot_quantile(sets[s].x + col, sets[s].n, sets[s].stride, 0.995);
    if (isfinite(a)) l = fmin(l, a);
    if (isfinite(b)) h = fmax(h, b);
  }
  if (isfinite(truth)) {
    l = fmin(l, truth);
    h = fmax(h, truth);
  }
  if (!isfinite(l) || !isfinite(h)) l = 0, h = 1;
  double pad = (h - l) * 0.08;
  if (!(pad > 0)) pad = fabs(l) * 0.05 + 1e-3;
  *lo = l - pad;
  *hi = h + pad;
}

void jade_corner_plot(jade_image *im, double x0, double y0, double size, int nd, const int *cols,
                      const char *const *names, const jade_corner_set *sets, int nsets, const double *truth) {
  if (nd < 1) return;
  const double ml = 64, mb = 58, gap = 4;
  const double p = (size - ml - mb) / nd;
  double *lo = malloc(sizeof(double) * (size_t)nd * 2), *g = malloc(sizeof(double) * CG * CG);
  if (!lo || !g) {
    free(lo);
    free(g);
    return;
  }
  double *hi = lo + nd;
  for (int i = 0; i < nd; i++) set_range(sets, nsets, cols[i], truth ? truth[i] : NAN, &lo[i], &hi[i]);
  const jade_rgb truth_c = 0xC0392B;
  for (int r = 0; r < nd; r++)
    for (int c = 0; c <= r; c++) {
      double px = x0 + ml + c * p, py = y0 + r * p;
      jade_axes ax;
      unsigned flags = (r == nd - 1 ? 0 : JADE_AX_NO_XLABELS) | (c == 0 && r > 0 ? 0 : JADE_AX_NO_YLABELS);
      if (r == c) {
        /* 1-D histograms */
        int nb = 30;
        for (int s = 0; s < nsets; s++) /* fewer bins for few draws: about 1.5 sqrt(n), 10 to 30 */
          if (sets[s].n && sets[s].style != JADE_CORNER_PRIOR && 1.5 * sqrt((double)sets[s].n) < nb)
            nb = (int)fmax(10, 1.5 * sqrt((double)sets[s].n));
        double hmax = 0, *edges = malloc(sizeof(double) * (nb + 1) * (size_t)(1 + nsets));
        if (!edges) continue;
        double *vals = edges + nb + 1;
        for (int k = 0; k <= nb; k++) edges[k] = lo[c] + (hi[c] - lo[c]) * k / nb;
        /* prior sets: kernel density x bin width (the histograms' scale), on a fine grid */
        enum { NPR = 160 };
        double gpr[NPR], dpr[NPR * 4];
        int npr_sets = 0;
        for (int k = 0; k < NPR; k++) gpr[k] = lo[c] + (hi[c] - lo[c]) * (k + 0.5) / NPR;
        for (int s = 0; s < nsets && npr_sets < 4; s++) {
          if (sets[s].style != JADE_CORNER_PRIOR) continue;
          double *d = dpr + NPR * npr_sets++;
          double h = jade_kde1d(sets[s].x + cols[c], sets[s].n, sets[s].stride, gpr, NPR, d);
          for (int k = 0; k < NPR; k++) {
            d[k] = isfinite(h) ? d[k] * (hi[c] - lo[c]) / nb : NAN;
            if (d[k] > hmax) hmax = d[k];
          }
        }
        for (int s = 0; s < nsets; s++) {
          double *v = vals + (size_t)s * nb, tot = 0;
          memset(v, 0, sizeof(double) * nb);
          if (sets[s].style == JADE_CORNER_PRIOR) continue;
          for (size_t i = 0; i < sets[s].n; i++) {
            double x = sets[s].x[i * sets[s].stride + cols[c]];
            int k = (int)floor((x - lo[c]) / (hi[c] - lo[c]) * nb);
            if (k >= 0 && k < nb) v[k] += 1, tot += 1;
          }
          for (int k = 0; k < nb; k++) {
            v[k] = tot > 0 ? v[k] / tot : 0;
            if (v[k] > hmax) hmax = v[k];
          }
        }
        jade_axes_init(&ax, im, px + gap / 2, py + gap / 2, p - gap, p - gap, lo[c], hi[c], 0, hmax > 0 ? hmax * 1.12 : 1, 0, 0);
        ax.scale = 1;
        for (int s = 0; s < nsets; s++)
          if (sets[s].style != JADE_CORNER_PRIOR) jade_axes_stairs(&ax, edges, vals + (size_t)s * nb, nb, sets[s].c, 1.5, 0.15);
        for (int s = 0, q = 0; s < nsets && q < npr_sets; s++)
          if (sets[s].style == JADE_CORNER_PRIOR) jade_axes_plot(&ax, gpr, dpr + NPR * q++, NPR, sets[s].c, 1.6, 5);
        if (truth && isfinite(truth[c])) jade_axes_vline(&ax, truth[c], truth_c, 1.5, 0);
        jade_axes_decorate(&ax, NULL, NULL, NULL, flags | JADE_AX_NO_YLABELS | JADE_AX_NO_YTICKS);
        free(edges);
      } else {
        jade_axes_init(&ax, im, px + gap / 2, py + gap / 2, p - gap, p - gap, lo[c], hi[c], lo[r], hi[r], 0, 0);
        ax.scale = 1;
        for (int s = 0; s < nsets; s++) {
          const jade_corner_set *S = &sets[s];
          if (S->style == JADE_CORNER_PRIOR) continue;
          if (S->n < 20) {
            for (size_t i = 0; i < S->n; i++) {
              double xx = S->x[i * S->stride + cols[c]], yy = S->x[i * S->stride + cols[r]];
              jade_axes_scatter(&ax, &xx, &yy, 1, 1.6, S->c, 0.7);
            }
            continue;
          }
          /* adaptive Gaussian kernel density (Scott's rule, Abramson's law) and its 68% / 95%
           * highest-density levels */
          if (jade_kde2d(S->x, S->n, S->stride, cols[c], cols[r], lo[c], hi[c], lo[r], hi[r], CG, CG, 1, g, NULL)) {
            jade_clear_error(); /* degenerate (e.g. a fixed parameter): nothing to draw */
            continue;
          }
          const double fr[2] = {0.68, 0.95};
          double hl[2];
          jade_hpd_levels(g, CG * CG, fr, 2, hl);
          const double t68 = hl[0], t95 = hl[1];
          int W = (int)lrint(ax.w), H = (int)lrint(ax.h), ax0 = (int)lrint(ax.x), ay0 = (int)lrint(ax.y);
          unsigned char *lev = calloc((size_t)W * H, 1);
          if (!lev) continue;
          for (int j = 0; j < H; j++)
            for (int i = 0; i < W; i++) {
              double d = grid_interp(g, (i + 0.5) / W * CG, (H - j - 0.5) / H * CG);
              lev[(size_t)j * W + i] = (unsigned char)(d >= t68 ? 2 : d >= t95 ? 1 : 0);
            }
          for (int j = 0; j < H; j++)
            for (int i = 0; i < W; i++) {
              int L = lev[(size_t)j * W + i];
              if (L) jade_blend(im, ax0 + i, ay0 + j, S->c, L == 2 ? 0.55 : 0.25);
              int edge = (i + 1 < W && lev[(size_t)j * W + i + 1] != L) || (j + 1 < H && lev[(size_t)(j + 1) * W + i] != L);
              if (edge) jade_blend(im, ax0 + i, ay0 + j, S->c, 0.9);
            }
          free(lev);
        }
        if (truth && isfinite(truth[c])) jade_axes_vline(&ax, truth[c], truth_c, 1.2, 0);
        if (truth && isfinite(truth[r])) jade_axes_hline(&ax, truth[r], truth_c, 1.2, 0);
        if (truth && isfinite(truth[c]) && isfinite(truth[r])) jade_axes_scatter(&ax, &truth[c], &truth[r], 1, 3, truth_c, 1);
        jade_axes_decorate(&ax, NULL, NULL, NULL, flags);
      }
      if (r == nd - 1 && names) jade_draw_text(im, px + p / 2, y0 + nd * p + 24, names[c], 2, 0x000000, 0, -1, 0);
      if (c == 0 && r > 0 && names) jade_draw_text(im, x0 + 14, py + p / 2, names[r], 2, 0x000000, 0, -1, 1);
    }
  /* legend in the empty upper-right triangle */
  if (nsets > 1 || truth) {
    double lx = x0 + ml + (nd > 2 ? (nd / 2 + 1) * p : p), ly = y0 + 10;
    int k = 0;
    for (int s = 0; s < nsets; s++, k++) {
      if (sets[s].style == JADE_CORNER_PRIOR) {
        const double xs[2] = {lx, lx + 24}, ys[2] = {ly + k * 22 + 6, ly + k * 22 + 6};
        jade_draw_polyline(im, xs, ys, 2, 2, sets[s].c, 1, 5);
      } else {
        jade_fill_rect(im, lx, ly + k * 22, lx + 24, ly + k * 22 + 12, sets[s].c, 0.55);
      }
      jade_draw_text(im, lx + 32, ly + k * 22 + 6, sets[s].label ? sets[s].label : "", 2, 0x000000, -1, 0, 0);
    }
    if (truth) {
      jade_draw_line(im, lx, ly + k * 22 + 6, lx + 24, ly + k * 22 + 6, 2, truth_c, 1);
      jade_draw_text(im, lx + 32, ly + k * 22 + 6, "truth", 2, 0x000000, -1, 0, 0);
    }
  }
  free(lo);
  free(g);
}
