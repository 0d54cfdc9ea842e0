/* jade plotting: a small raster plotting module for the figures of jade report / validate.
 *
 * An RGB image (8 bits per channel) with anti-aliased lines, filled polygons and bands,
 * images through colour maps with colour bars, axes with "nice" ticks (Heckbert 1990,
 * "Nice numbers for graph labels", Graphics Gems I) and labels in a built-in 5x7 bitmap font
 * (ASCII plus a few Greek letters: Omega sigma alpha kappa theta chi pi, ell, +-, superscript 2),
 * corner plots, and PNG output through libpng (written atomically: temporary + rename).
 *
 * Coordinates are pixels, x to the right and y down, pixel (i, j) covering [i, i+1) x [j, j+1);
 * drawing outside the image is clipped. Colours are 0xRRGGBB; alpha in [0, 1] blends over what
 * is there. Colour maps are piecewise-linear through 11 samples of matplotlib's viridis and
 * magma (van der Walt & Smith 2015, CC0) and ColorBrewer's RdBu (Brewer 2002, Apache 2.0). */
#ifndef JADE_PLOT_H
#define JADE_PLOT_H
#include <stddef.h>
#include <stdint.h>

#include "jade/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef uint32_t jade_rgb; /* 0xRRGGBB */

typedef struct {
  int w, h;
  unsigned char *px; /* w * h * 3 bytes, row-major, top row first */
} jade_image;

jade_status jade_image_init(jade_image *im, int w, int h, jade_rgb background);
void jade_image_free(jade_image *im);
jade_rgb jade_image_get(const jade_image *im, int x, int y);
/* 8-bit RGB PNG, atomically (path.tmp.<pid> then rename). _text adds n_text <= 8 tEXt chunks
 * kv = {key0, text0, key1, text1, ...} (keys such as "Software", "Source", "Description";
 * PNG 1.2 Sec. 4.2.3). */
jade_status jade_image_write_png(const jade_image *im, const char *path);
jade_status jade_image_write_png_text(const jade_image *im, const char *path, const char *const *kv, int n_text);
/* Read any 8-bit PNG (grey, palette, RGB, with or without alpha; alpha composited on white)
 * into RGB. */
jade_status jade_image_read_png(const char *path, jade_image *out);

/* ---- primitives ------------------------------------------------------------------------ */
void jade_blend(jade_image *im, int x, int y, jade_rgb c, double alpha);
/* Anti-aliased segment of the given width (pixels); dash > 0 draws dash-long dashes with
 * equal gaps along a polyline (the pattern continues across vertices). */
void jade_draw_line(jade_image *im, double x0, double y0, double x1, double y1, double width,
                    jade_rgb c, double alpha);
void jade_draw_polyline(jade_image *im, const double *x, const double *y, int n, double width,
                        jade_rgb c, double alpha, double dash);
void jade_fill_rect(jade_image *im, double x0, double y0, double x1, double y1, jade_rgb c,
                    double alpha);
/* Filled polygon (even-odd rule, 4x vertical supersampling for smooth edges). */
void jade_fill_polygon(jade_image *im, const double *x, const double *y, int n, jade_rgb c,
                       double alpha);
void jade_fill_circle(jade_image *im, double cx, double cy, double r, jade_rgb c, double alpha);

/* Text in the 5x7 font (UTF-8; unknown characters draw as '?'), each font pixel a
 * scale x scale block, 6 * scale pixels per character, 8 * scale per line.
 * halign: -1 left, 0 centre, 1 right of x; valign: -1 top, 0 middle, 1 bottom at y.
 * vertical: rotated 90 degrees anticlockwise (reads bottom to top; alignment then refers to
 * the rotated box). */
int jade_text_width(const char *s, int scale);
void jade_draw_text(jade_image *im, double x, double y, const char *s, int scale, jade_rgb c,
                    int halign, int valign, int vertical);

/* ---- colour maps --------------------------------------------------------------------- */
typedef enum { JADE_CMAP_VIRIDIS = 0, JADE_CMAP_MAGMA = 1, JADE_CMAP_RDBU = 2, JADE_CMAP_GREYS = 3 } jade_cmap;
jade_rgb jade_cmap_color(jade_cmap m, double t); /* t clamped to [0, 1]; NaN -> grey */
/* Vertical colour bar in the rectangle (x, y, w, h), vmin at the bottom, with ticks and
 * tick labels to the right and an optional label (rotated) further right. */
void jade_colorbar(jade_image *im, double x, double y, double w, double h, double vmin, double vmax,
                   jade_cmap m, const char *label, int scale);

/* ---- axes ------------------------------------------------------------------------------ */
typedef struct {
  jade_image *im;
  double x, y, w, h; /* data rectangle in pixels (top-left corner, size) */
  double xmin, xmax, ymin, ymax;
  int logx, logy;    /* log10 axes (limits must then be > 0) */
  int scale;         /* font scale of tick labels and labels (1 or 2) */
  double symlog_y;   /* > 0: symmetric-log y axis with this linear scale L (jade_axes_symlog_y) */
} jade_axes;

void jade_axes_init(jade_axes *ax, jade_image *im, double x, double y, double w, double h,
                    double xmin, double xmax, double ymin, double ymax, int logx, int logy);
double jade_axes_px(const jade_axes *ax, double x); /* data x -> pixel x */
double jade_axes_py(const jade_axes *ax, double y);
/* Symmetric logarithm s(y) = sign(y) log10(1 + |y| / L): linear (slope 1/(L ln 10)) within
 * about L of 0, logarithmic beyond, so values of both signs spanning decades share an axis
 * (as matplotlib's "symlog" scale, whose linear region is [-L, L]); _inv is its inverse. */
double jade_symlog(double y, double L);
double jade_symlog_inv(double s, double L);
/* Make ax's y axis symmetric-log with linear scale L > 0 over its [ymin, ymax] (any signs);
 * ticks at 0 and +-1, 2, 5 x 10^k beyond L. */
void jade_axes_symlog_y(jade_axes *ax, double L);
/* Frame, ticks with labels (flags: JADE_AX_NO_XLABELS / NO_YLABELS omit tick labels), grid,
 * axis labels and a title above. Any string may be NULL. */
enum { JADE_AX_NO_XLABELS = 1, JADE_AX_NO_YLABELS = 2, JADE_AX_GRID = 4, JADE_AX_NO_YTICKS = 8 };
void jade_axes_decorate(jade_axes *ax, const char *title, const char *xlabel, const char *ylabel,
                        unsigned flags);
/* Data-space drawing, clipped to the data rectangle. Non-finite points break lines. */
void jade_axes_plot(jade_axes *ax, const double *x, const double *y, int n, jade_rgb c,
                    double width, double dash);
void jade_axes_band(jade_axes *ax, const double *x, const double *lo, const double *hi, int n,
                    jade_rgb c, double alpha);
void jade_axes_scatter(jade_axes *ax, const double *x, const double *y, int n, double radius,
                       jade_rgb c, double alpha);
void jade_axes_errorbars(jade_axes *ax, const double *x, const double *y, const double *ylo,
                         const double *yhi, int n, jade_rgb c, double width);
void jade_axes_hline(jade_axes *ax, double y, jade_rgb c, double width, double dash);
void jade_axes_vline(jade_axes *ax, double x, jade_rgb c, double width, double dash);
/* Histogram outline over edges[0..n] with values[0..n-1], optionally filled (fill_alpha > 0). */
void jade_axes_stairs(jade_axes *ax, const double *edges, const double *values, int n, jade_rgb c,
                      double width, double fill_alpha);
/* An image of nx x ny values (row 0 drawn at the top) stretched over the data rectangle,
 * nearest-neighbour; NaN drawn grey. */
void jade_axes_image(jade_axes *ax, const float *data, int nx, int ny, double vmin, double vmax,
                     jade_cmap m);
/* Legend box in a corner (0 top-right, 1 top-left, 2 bottom-right, 3 bottom-left); dashed
 * entries get dash != 0, filled ones (patches) fill != 0. */
typedef struct {
  const char *label;
  jade_rgb c;
  double dash;
  int fill;
} jade_legend_entry;
void jade_axes_legend(jade_axes *ax, const jade_legend_entry *e, int n, int corner);

/* Ticks between lo and hi: at most max_ticks "nice" values (1, 2, 2.5, 5 x 10^k steps);
 * for log axes 1-2-5 or powers of ten. Returns the count. */
int jade_nice_ticks(double lo, double hi, int log, int max_ticks, double *ticks, int max);
/* Shortest "%g"-like label of v given the tick step. */
void jade_tick_label(double v, double step, char *out, size_t n);
/* Quantile (linear interpolation) of the finite values of x[i * stride]; NaN if none. */
double jade_plot_quantile(const double *x, size_t n, size_t stride, double q);

/* ---- kernel density estimates ------------------------------------------------------------ */
/* Gaussian kernel density estimates with Scott's rule (Scott 1992, Multivariate Density
 * Estimation, Wiley, Sec. 6.3; the default of scipy.stats.gaussian_kde): for n points in d
 * dimensions the kernel is a Gaussian with covariance f^2 Sigma, f = n^(-1/(d+4)), Sigma the
 * sample covariance (so 1-D: h = sigma n^(-1/5); 2-D: kernel covariance n^(-1/3) Sigma, which
 * follows the correlation of the points). Non-finite points are skipped; above 2000 points an
 * evenly spaced subset of 2000 is used (n is then that count). */
/* 1-D: the density at g[0..m-1] into out; returns the bandwidth h (NaN, out zero, if fewer
 * than 2 finite points or no spread). */
double jade_kde1d(const double *x, size_t n, size_t stride, const double *g, int m, double *out);
/* 2-D: points (x[i stride + cx], x[i stride + cy]); the density at the centres of an nx x ny
 * grid of cells over [xl, xh] x [yl, yh] into out[j nx + i] (row j = 0 at yl). adaptive = 1:
 * each point's kernel scaled by lam_p = (pilot(x_p) / g)^(-1/2) (Abramson 1982, Ann. Statist.
 * 10, 1217; Silverman 1986, Density Estimation, Sec. 5.3), the pilot the fixed estimate at the
 * points and g its geometric mean: wider kernels in the tails, so that a few outlying draws do
 * not make islands of the 95% region (measured at 128 Gaussian draws: 4% of samples with the
 * fixed kernel, none adaptive; tests/test_plot.c). Error if fewer than 3 finite points or a
 * singular covariance. *f_out (may be NULL) receives f. */
jade_status jade_kde2d(const double *x, size_t n, size_t stride, int cx, int cy, double xl, double xh, double yl,
                       double yh, int nx, int ny, int adaptive, double *out, double *f_out);
/* Highest-density levels: for each fraction frac[k] the largest threshold t with
 * sum(g >= t) >= frac[k] sum(g) over the n grid values (equal cells). */
void jade_hpd_levels(const double *g, size_t n, const double *frac, int nf, double *level);

/* ---- corner plot ------------------------------------------------------------------------ */
typedef enum {
  JADE_CORNER_FILLED = 0, /* histograms on the diagonal, 2-D highest-density regions below */
  JADE_CORNER_PRIOR = 1   /* a prior sample: a dashed density curve on the diagonal only; it
                             does not widen the ranges */
} jade_corner_style;
typedef struct {
  const double *x;  /* rows of `stride` doubles */
  size_t n, stride;
  jade_rgb c;
  const char *label;
  jade_corner_style style;
} jade_corner_set;
/* Corner plot of columns cols[0..nd-1] of every set, in the square image region (x0, y0,
 * size): 1-D normalised histograms on the diagonal (a prior set: its kernel density, dashed,
 * on the same scale), 2-D 68% / 95% highest-density regions of the adaptive Gaussian kernel
 * density (jade_kde2d, Scott's rule, Abramson's law) below (points instead when a set has < 20 rows); truth (may be
 * NULL; NaN entries skipped) as lines. Ranges cover the 0.5-99.5% quantiles of every
 * non-prior set and the truth. */
void jade_corner_plot(jade_image *im, double x0, double y0, double size, int nd, const int *cols,
                      const char *const *names, const jade_corner_set *sets, int nsets,
                      const double *truth);

#ifdef __cplusplus
}
#endif
#endif
