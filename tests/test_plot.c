/* The raster plotting module: PNG round trip through libpng (size, pixels), lines drawn
 * where expected, filled polygons' area, text, ticks and labels, colour maps, a corner plot,
 * base64 of the HTML page's images; the kernel density estimates (fixed-bandwidth 2-D KDE of
 * a quantile-grid "perfect sample" of a Gaussian against the analytic smoothed density, 1-D
 * likewise; the adaptive 2-D KDE's 68%/95% regions at 128 draws: one piece each and their true
 * mass), highest-density levels, the symmetric-log transform round trip and a symlog axis.
 *
 *   test_plot                 run the checks
 *   test_plot --demo OUT.png  also draw a demo figure of every element (to look at)
 *   test_plot --png-stats F   print "width height ink_fraction colours" of a PNG (used by
 *                             scripts/screenshot.sh to tell a rendered page from a blank one)
 *   test_plot --count F RRGGBB [X0 Y0 X1 Y1]  print the number of pixels within 12 (per channel)
 *                             of the colour, in the box if given (tests/test_report.sh) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_cdf.h>

#include "jade/plot.h"
#include "jade/report.h"
#include "test_util.h"

static int is_white(jade_rgb c) { return c == 0xFFFFFF; }

static int png_stats(const char *path) {
  jade_image im;
  if (jade_image_read_png(path, &im)) {
    fprintf(stderr, "%s\n", jade_last_error());
    return 1;
  }
  /* ink: pixels differing from the most common colour (the page background) */
  jade_rgb bg = jade_image_get(&im, 0, 0);
  size_t ink = 0, n = (size_t)im.w * im.h;
  enum { H = 4096 };
  static unsigned char seen[H];
  int colours = 0;
  for (int y = 0; y < im.h; y++)
    for (int x = 0; x < im.w; x++) {
      jade_rgb c = jade_image_get(&im, x, y);
      ink += c != bg;
      unsigned h = ((c >> 12) ^ (c * 2654435761u)) % H;
      if (!seen[h]) seen[h] = 1, colours++;
    }
  printf("%d %d %.6f %d\n", im.w, im.h, (double)ink / n, colours);
  jade_image_free(&im);
  return 0;
}

static void demo(const char *path) {
  jade_image im;
  CHECK_OK(jade_image_init(&im, 1100, 700, 0xFFFFFF));
  jade_draw_text(&im, 20, 20, "ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz 0123456789", 2, 0, -1, -1, 0);
  jade_draw_text(&im, 20, 40, "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~  \xCE\xA9 \xCF\x83 \xCE\xB1 \xCE\xBA \xCE\xB8 \xCF\x87 \xE2\x84\x93 \xC2\xB1 x\xC2\xB2", 2, 0, -1, -1, 0);
  jade_draw_text(&im, 20, 60, "scale 1: Omega_m sigma_8 S_8 = 0.812 +- 0.02", 1, 0, -1, -1, 0);
  jade_axes ax;
  jade_axes_init(&ax, &im, 90, 110, 300, 220, 50, 5000, 1e-6, 1e-3, 1, 1);
  double x[50], y[50], lo[50], hi[50];
  for (int i = 0; i < 50; i++) {
    x[i] = 50 * pow(100, i / 49.0);
    y[i] = 1e-4 * pow(x[i] / 500, 0.5) * exp(-x[i] / 3000);
    lo[i] = y[i] * 0.7;
    hi[i] = y[i] * 1.4;
  }
  jade_axes_band(&ax, x, lo, hi, 50, 0x1F77B4, 0.25);
  jade_axes_plot(&ax, x, y, 50, 0x1F77B4, 2, 0);
  for (int i = 0; i < 50; i++) y[i] *= 1.1;
  jade_axes_plot(&ax, x, y, 50, 0x000000, 1.5, 6);
  jade_axes_decorate(&ax, "power spectrum", "\xE2\x84\x93", "C\xE2\x84\x93", JADE_AX_GRID);
  jade_legend_entry le[2] = {{"draws", 0x1F77B4, 0, 1}, {"truth", 0, 6, 0}};
  jade_axes_legend(&ax, le, 2, 3);
  float img[32 * 32];
  for (int j = 0; j < 32; j++)
    for (int i = 0; i < 32; i++) img[j * 32 + i] = (float)(sin(i * 0.3) * cos(j * 0.2));
  jade_axes_init(&ax, &im, 480, 110, 200, 200, 0, 1, 0, 1, 0, 0);
  jade_axes_image(&ax, img, 32, 32, -1, 1, JADE_CMAP_VIRIDIS);
  jade_axes_decorate(&ax, "viridis", NULL, NULL, JADE_AX_NO_XLABELS | JADE_AX_NO_YLABELS);
  jade_colorbar(&im, 690, 110, 14, 200, -1, 1, JADE_CMAP_VIRIDIS, "\xCE\xBA", 2);
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < 256; i++)
      jade_fill_rect(&im, 800 + i, 120 + 30 * k, 801 + i, 140 + 30 * k, jade_cmap_color((jade_cmap)(k + 1), i / 255.0), 1);
  /* corner */
  enum { N = 2000 };
  static double pts[N * 3];
  for (int i = 0; i < N; i++) {
    double a = jade_rng_normal(1, 1, 2 * i), b = jade_rng_normal(1, 1, 2 * i + 1);
    pts[3 * i] = 0.3 + 0.05 * a;
    pts[3 * i + 1] = 0.8 + 0.1 * (0.8 * a + 0.6 * b);
    pts[3 * i + 2] = -1 + 0.3 * b;
  }
  jade_corner_set set = {pts, N, 3, 0x1F77B4, "JADE", JADE_CORNER_FILLED};
  int cols[3] = {0, 1, 2};
  const char *names[3] = {"\xCE\xA9m", "\xCF\x83" "8", "w0"};
  double truth[3] = {0.31, 0.82, -0.9};
  jade_corner_plot(&im, 420, 340, 350, 3, cols, names, &set, 1, truth);
  CHECK_OK(jade_image_write_png(&im, path));
  jade_image_free(&im);
}


/* connected pieces of {g >= t} on an n x n grid (8-neighbours: what the drawn, interpolated
 * region joins) */
static int pieces(const double *g, int n, double t) {
  int *lab = calloc((size_t)n * n, sizeof(int)), *st = malloc(sizeof(int) * (size_t)n * n), k = 0;
  for (int s0 = 0; s0 < n * n; s0++) {
    if (g[s0] < t || lab[s0]) continue;
    k++;
    int sp = 0;
    st[sp++] = s0;
    lab[s0] = k;
    while (sp) {
      int c = st[--sp], i = c % n, j = c / n;
      for (int di = -1; di <= 1; di++)
        for (int dj = -1; dj <= 1; dj++) {
          int a = i + di, b = j + dj;
          if (a < 0 || b < 0 || a >= n || b >= n) continue;
          int q = b * n + a;
          if (!lab[q] && g[q] >= t) lab[q] = k, st[sp++] = q;
        }
    }
  }
  free(lab);
  free(st);
  return k;
}

/* N(mu, S) density, S = [[a, b], [b, c]] */
static double gauss2(double x, double y, const double mu[2], double a, double b, double c) {
  double det = a * c - b * b, dx = x - mu[0], dy = y - mu[1];
  return exp(-0.5 * (c * dx * dx - 2 * b * dx * dy + a * dy * dy) / det) / (2 * M_PI * sqrt(det));
}

static void kde_tests(void) {
  /* ---- 2-D: a quantile grid of N(mu, S) (m x m points: u_k = Phi^-1((k + 1/2) / m), then
   * x = mu + L u) is a "perfect sample": the estimate is a midpoint-rule quadrature of the
   * kernel against the density, i.e. N(mu, S + f^2 S_hat) with S_hat the points' covariance
   * (the kernel's) and S the true one (both Gaussians, so the convolution is exact). ---- */
  enum { M = 44, G = 40 }; /* 1936 points: below the 2000 that are used whole */
  static double pts[M * M * 2];
  const double mu[2] = {0.3, -1.0}, sx = 0.05, sy = 0.2, rho = 0.7;
  double u[M];
  for (int k = 0; k < M; k++) u[k] = gsl_cdf_ugaussian_Pinv((k + 0.5) / M);
  for (int a = 0; a < M; a++)
    for (int b = 0; b < M; b++) {
      double *q = pts + 2 * ((size_t)a * M + b);
      q[0] = mu[0] + sx * u[a];
      q[1] = mu[1] + sy * (rho * u[a] + sqrt(1 - rho * rho) * u[b]);
    }
  double c11 = 0, c12 = 0, c22 = 0; /* the points' covariance (ddof 1, as the estimator's) */
  for (int i = 0; i < M * M; i++) {
    double dx = pts[2 * i] - mu[0], dy = pts[2 * i + 1] - mu[1];
    c11 += dx * dx, c12 += dx * dy, c22 += dy * dy;
  }
  c11 /= M * M - 1, c12 /= M * M - 1, c22 /= M * M - 1;
  static double g[G * G];
  double f = 0;
  const double xl = mu[0] - 4 * sx, xh = mu[0] + 4 * sx, yl = mu[1] - 4 * sy, yh = mu[1] + 4 * sy;
  CHECK_OK(jade_kde2d(pts, M * M, 2, 0, 1, xl, xh, yl, yh, G, G, 0, g, &f));
  CHECK_ABS(f, pow(M * M, -1.0 / 6.0), 1e-15);
  const double s11 = sx * sx + f * f * c11, s12 = rho * sx * sy + f * f * c12, s22 = sy * sy + f * f * c22;
  double peak = gauss2(mu[0], mu[1], mu, s11, s12, s22), worst = 0, mass = 0;
  for (int j = 0; j < G; j++)
    for (int i = 0; i < G; i++) {
      double x = xl + (i + 0.5) * (xh - xl) / G, y = yl + (j + 0.5) * (yh - yl) / G;
      double ref = gauss2(x, y, mu, s11, s12, s22);
      /* inside Mahalanobis radius 1.5 of the smoothed Gaussian: farther out the kernel reaches
       * the outermost rows of the grid, each of which stands for the whole tail beyond it */
      if (ref >= peak * exp(-0.5 * 1.5 * 1.5)) jade_test_max_err(&worst, fabs(g[j * G + i] - ref) / peak);
      mass += g[j * G + i] * (xh - xl) / G * (yh - yl) / G;
    }
  printf("2-D KDE of a %d-point quantile grid vs N(mu, S + f^2 S): max |difference| / peak %.2e, mass in +-4 sd %.5f\n",
         M * M, worst, mass);
  /* the midpoint rule in probability space: relative error ~ (h / w)^2 / 24 per axis with
   * h = 1/44 and the kernel's width in probability w = 0.29 phi(u): 1.7e-3 at the centre,
   * 4e-3 at 1.5 sd (a bound: errors of the two axes partly cancel); measured 4e-4 */
  CHECK_LT(worst, 5e-3, "2-D KDE off the analytic density by %g of the peak", worst);
  CHECK_IN(mass, 0.99, 1.0, "2-D KDE mass on the grid");
  /* ---- 1-D, likewise: N(0, 1 + f^2 var) with f = n^(-1/5) ---- */
  {
    enum { N1 = 2000, NG = 81 };
    static double x1[N1];
    double var = 0, grid[NG], d[NG];
    for (int k = 0; k < N1; k++) x1[k] = gsl_cdf_ugaussian_Pinv((k + 0.5) / N1), var += x1[k] * x1[k];
    var /= N1 - 1; /* the kernel's; the distribution's is 1 */
    for (int k = 0; k < NG; k++) grid[k] = -4 + 0.1 * k;
    double h = jade_kde1d(x1, N1, 1, grid, NG, d), w1 = 0;
    CHECK_ABS(h, sqrt(var) * pow(N1, -0.2), 1e-12);
    double s2 = 1 + h * h;
    for (int k = 0; k < NG; k++)
      jade_test_max_err(&w1, fabs(d[k] - exp(-0.5 * grid[k] * grid[k] / s2) / sqrt(2 * M_PI * s2)) * sqrt(2 * M_PI * s2));
    printf("1-D KDE of a %d-point quantile grid vs N(0, var + h^2): max |difference| / peak %.2e\n", N1, w1);
    CHECK_LT(w1, 2e-3, "1-D KDE off by %g", w1);
    double one[1] = {1.0};
    CHECK(isnan(jade_kde1d(one, 1, 1, grid, NG, d)) && d[40] == 0, "one point must give no estimate");
  }
  /* ---- adaptive 2-D at 128 draws of a correlated Gaussian: the 68% and 95% regions are one
   * piece each (fixed kernels give islands in ~4% of samples; see jade_kde2d), and hold about
   * 68% / 95% of the true mass (averaged over the samples) ---- */
  {
    enum { ND = 128, NS = 40, GG = 64 };
    static double d2[ND * 2], gg[GG * GG];
    double m68 = 0, m95 = 0;
    int islands = 0;
    for (int sd = 0; sd < NS; sd++) {
      double r = sd % 2 ? 0.9 : 0.0;
      for (int i = 0; i < ND; i++) {
        double a = jade_rng_normal(100 + sd, 7, 2 * i), b = jade_rng_normal(100 + sd, 7, 2 * i + 1);
        d2[2 * i] = a, d2[2 * i + 1] = r * a + sqrt(1 - r * r) * b;
      }
      double lo[2], hi[2];
      for (int c = 0; c < 2; c++) {
        lo[c] = jade_plot_quantile(d2 + c, ND, 2, 0.005), hi[c] = jade_plot_quantile(d2 + c, ND, 2, 0.995);
        double pad = 0.08 * (hi[c] - lo[c]);
        lo[c] -= pad, hi[c] += pad;
      }
      CHECK_OK(jade_kde2d(d2, ND, 2, 0, 1, lo[0], hi[0], lo[1], hi[1], GG, GG, 1, gg, NULL));
      const double fr[2] = {0.68, 0.95};
      double lv[2];
      jade_hpd_levels(gg, GG * GG, fr, 2, lv);
      islands += pieces(gg, GG, lv[0]) != 1;
      islands += pieces(gg, GG, lv[1]) != 1;
      const double dx = (hi[0] - lo[0]) / GG, dy = (hi[1] - lo[1]) / GG, mu0[2] = {0, 0};
      for (int j = 0; j < GG; j++)
        for (int i = 0; i < GG; i++) {
          double pm = gauss2(lo[0] + (i + 0.5) * dx, lo[1] + (j + 0.5) * dy, mu0, 1, r, 1) * dx * dy;
          if (gg[j * GG + i] >= lv[0]) m68 += pm;
          if (gg[j * GG + i] >= lv[1]) m95 += pm;
        }
    }
    m68 /= NS, m95 /= NS;
    printf("adaptive KDE, %d samples of %d draws: %d regions in pieces; true mass in the 68%% region %.3f, 95%% %.3f\n", NS, ND,
           islands, m68, m95);
    CHECK(islands == 0, "%d of the 68%%/95%% regions broke into islands at %d draws", islands, ND);
    /* sampling spread of one sample's mass ~ sqrt(0.68 0.32 / 128) = 0.04, /sqrt(40) for the
     * mean; the kernel's smoothing and the grid allow a few percent more (measured 0.66, 0.94) */
    CHECK_IN(m68, 0.62, 0.74, "68%% region mass");
    CHECK_IN(m95, 0.92, 0.98, "95%% region mass");
    double bad[6] = {1, 1, 2, 2, 3, 3}; /* all on a line: singular */
    CHECK(jade_kde2d(bad, 3, 2, 0, 1, 0, 4, 0, 4, 8, 8, 0, gg, NULL) == JADE_ERR_NUMERIC, "singular covariance accepted");
  }
  /* ---- highest-density levels: grid 1..100, 50% of the sum 5050 is reached from the top at
   * 71 (100 + ... + 71 = 2555) ---- */
  {
    double v[100], fr[2] = {0.5, 1.0}, lv[2];
    for (int i = 0; i < 100; i++) v[i] = 100 - i;
    jade_hpd_levels(v, 100, fr, 2, lv);
    CHECK(lv[0] == 71 && lv[1] == 1, "levels %g %g", lv[0], lv[1]);
  }
}

static void symlog_tests(void) {
  /* round trip over 40 decades and both signs; linear near 0; odd; increasing */
  double worst = 0, prev = -INFINITY;
  const double L = 3e-9;
  for (int k = -200; k <= 200; k++) { /* y_k = sign(k) 10^((|k| - 100) / 5): increasing in k */
    double y = k ? copysign(pow(10.0, (abs(k) - 100) / 5.0), k) : 0.0;
    double sy = jade_symlog(y, L), back = jade_symlog_inv(sy, L);
    jade_test_max_err(&worst, y ? fabs(back / y - 1) : fabs(back));
    CHECK(jade_symlog(-y, L) == -sy, "symlog not odd at %g", y);
    CHECK(sy > prev, "symlog not increasing at %g", y);
    prev = sy;
  }
  printf("symlog round trip over 1e-20 .. 1e20, both signs: max relative error %.2e\n", worst);
  CHECK_LT(worst, 1e-12, "symlog round trip error %g", worst);
  CHECK_REL(jade_symlog(1e-6, 1.0), 1e-6 / log(10.0), 1e-6); /* slope 1/(L ln 10) at 0 (next term: -y/2) */
  CHECK_ABS(jade_symlog(99.0, 1.0), 2.0, 1e-15);
  /* an axis over [-1e-8, 1e-6] with L = 1e-10: negative values drawn below 0, ticks at 0 and
   * on both sides */
  jade_image im;
  CHECK_OK(jade_image_init(&im, 300, 240, 0xFFFFFF));
  jade_axes ax;
  jade_axes_init(&ax, &im, 70, 10, 200, 200, 1, 10, -1e-8, 1e-6, 0, 0);
  jade_axes_symlog_y(&ax, 1e-10);
  double y0 = jade_axes_py(&ax, 0), yn = jade_axes_py(&ax, -1e-9), yp = jade_axes_py(&ax, 1e-9);
  CHECK(yn > y0 && yp < y0 && fabs((yn - y0) - (y0 - yp)) < 1e-9, "symlog axis: -1e-9 at %g, 0 at %g, 1e-9 at %g", yn, y0, yp);
  CHECK_ABS(jade_axes_py(&ax, -1e-8), 210.0, 1e-9);
  CHECK_ABS(jade_axes_py(&ax, 1e-6), 10.0, 1e-9);
  jade_axes_decorate(&ax, NULL, NULL, NULL, JADE_AX_GRID);
  /* a tick mark at 0 (the frame's left edge, 4 px long) */
  int tick = 0;
  for (int x = 71; x < 74; x++) tick += (jade_image_get(&im, x, (int)y0) & 0xFF) < 100;
  CHECK(tick > 0, "no tick at 0 on the symlog axis");
  jade_image_free(&im);
}

static int count_colour(int argc, char **argv) {
  jade_image im;
  if (jade_image_read_png(argv[2], &im)) {
    fprintf(stderr, "%s\n", jade_last_error());
    return 1;
  }
  unsigned long c = strtoul(argv[3], NULL, 16);
  int x0 = 0, y0 = 0, x1 = im.w, y1 = im.h;
  if (argc == 8) x0 = atoi(argv[4]), y0 = atoi(argv[5]), x1 = atoi(argv[6]), y1 = atoi(argv[7]);
  long n = 0;
  for (int y = y0 < 0 ? 0 : y0; y < y1 && y < im.h; y++)
    for (int x = x0 < 0 ? 0 : x0; x < x1 && x < im.w; x++) {
      jade_rgb q = jade_image_get(&im, x, y);
      int ok = 1;
      for (int k = 0; k < 24; k += 8) ok &= abs((int)((q >> k) & 255) - (int)((c >> k) & 255)) <= 12;
      n += ok;
    }
  printf("%ld\n", n);
  jade_image_free(&im);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--png-stats")) return png_stats(argv[2]);
  if ((argc == 4 || argc == 8) && !strcmp(argv[1], "--count")) return count_colour(argc, argv);
  if (argc == 3 && !strcmp(argv[1], "--demo")) demo(argv[2]);

  /* ---- PNG round trip and a line where it should be ---- */
  char path[256];
  snprintf(path, sizeof path, "/tmp/jade_test_plot_%ld.png", (long)getpid());
  jade_image im;
  CHECK_OK(jade_image_init(&im, 320, 200, 0xFFFFFF));
  jade_axes ax;
  jade_axes_init(&ax, &im, 60, 20, 240, 150, 0, 1, 0, 1, 0, 0);
  double x[2] = {0, 1}, y[2] = {0, 1};
  jade_axes_plot(&ax, x, y, 2, 0xFF0000, 3, 0);
  jade_axes_decorate(&ax, "title", "x", "y", 0);
  CHECK_OK(jade_image_write_png(&im, path));
  jade_image back;
  CHECK_OK(jade_image_read_png(path, &back));
  CHECK(back.w == 320 && back.h == 200, "read back %dx%d", back.w, back.h);
  CHECK(!memcmp(back.px, im.px, (size_t)320 * 200 * 3), "pixels differ after the PNG round trip");
  /* the diagonal's midpoint is red, a point off the line is white */
  int mx = (int)jade_axes_px(&ax, 0.5), my = (int)jade_axes_py(&ax, 0.5);
  jade_rgb c = jade_image_get(&back, mx, my);
  CHECK(jade_test_gt_ok((c >> 16), 200) && jade_test_lt_ok(((c >> 8) & 255), 80) && jade_test_lt_ok((c & 255), 80), "line midpoint colour %06x", c);
  CHECK(is_white(jade_image_get(&back, (int)jade_axes_px(&ax, 0.8), (int)jade_axes_py(&ax, 0.2))), "off-line pixel not white");
  /* along the whole diagonal, every column of the data area has red */
  int cols_with_red = 0;
  for (int px = (int)ax.x + 2; px < (int)(ax.x + ax.w) - 2; px++) {
    int red = 0;
    for (int py = (int)ax.y; py < (int)(ax.y + ax.h); py++) {
      jade_rgb q = jade_image_get(&back, px, py);
      red |= (q >> 16) > 200 && ((q >> 8) & 255) < 120;
    }
    cols_with_red += red;
  }
  CHECK(cols_with_red == (int)ax.w - 4, "red in %d of %d columns", cols_with_red, (int)ax.w - 4);
  /* title text: dark pixels above the frame, tick labels below it */
  int dark = 0;
  for (int py = 0; py < (int)ax.y - 2; py++)
    for (int px = 0; px < 320; px++) dark += jade_image_get(&back, px, py) == 0x000000;
  CHECK(jade_test_gt_ok(dark, 20) && jade_test_lt_ok(dark, 400), "title pixels %d", dark);
  dark = 0;
  for (int py = (int)(ax.y + ax.h) + 3; py < 200; py++)
    for (int px = 0; px < 320; px++) dark += (jade_image_get(&back, px, py) & 0xFF) < 100;
  CHECK_GT(dark, 50, "tick label pixels %d", dark);
  jade_image_free(&back);
  unlink(path);
  /* a non-PNG is an error */
  FILE *f = fopen(path, "wb");
  fputs("not a png", f);
  fclose(f);
  CHECK(jade_image_read_png(path, &back) != JADE_OK, "garbage accepted as PNG");
  unlink(path);
  CHECK(jade_image_write_png(&im, "/nonexistent-dir/x.png") != JADE_OK, "write to a missing directory succeeded");
  jade_image_free(&im);

  /* ---- polygon area (anti-aliased coverage sums to the area) ---- */
  CHECK_OK(jade_image_init(&im, 100, 100, 0xFFFFFF));
  double px[3] = {10.3, 80.6, 10.3}, py[3] = {10.2, 10.2, 70.9};
  jade_fill_polygon(&im, px, py, 3, 0x000000, 1);
  double ink = 0;
  for (int i = 0; i < 100 * 100; i++) ink += (255 - im.px[3 * i]) / 255.0;
  double area = 0.5 * (80.6 - 10.3) * (70.9 - 10.2);
  CHECK_LT(fabs(ink - area), 0.01 * area, "triangle ink %.1f vs area %.1f", ink, area);
  jade_image_free(&im);

  /* ---- text width, ticks, labels, colour maps ---- */
  CHECK(jade_text_width("abc", 2) == 34, "text width %d", jade_text_width("abc", 2));
  CHECK(jade_text_width("\xCE\xA9m", 1) == 11, "UTF-8 text width %d", jade_text_width("\xCE\xA9m", 1));
  double t[32];
  int n = jade_nice_ticks(0, 1, 0, 6, t, 32);
  CHECK(n == 6 && jade_test_lt_ok(fabs(t[1] - 0.2), 1e-12) && t[5] == 1, "ticks 0..1: n=%d t1=%g", n, t[1]);
  n = jade_nice_ticks(-0.013, 0.027, 0, 5, t, 32);
  CHECK(jade_test_ge_ok(n, 3) && jade_test_le_ok(n, 5) && jade_test_ge_ok(t[0], -0.013) && jade_test_le_ok(t[n - 1], 0.027), "ticks n=%d", n);
  n = jade_nice_ticks(60, 1200, 1, 8, t, 32);
  CHECK(jade_test_ge_ok(n, 3) && jade_test_le_ok(n, 8) && t[0] == 100, "log ticks n=%d first %g", n, t[0]);
  char lab[64];
  jade_tick_label(0.25, 0.25, lab, sizeof lab);
  CHECK(!strcmp(lab, "0.25"), "label %s", lab);
  jade_tick_label(0.4, 0.2, lab, sizeof lab);
  CHECK(!strcmp(lab, "0.4"), "label %s", lab);
  jade_tick_label(2e-5, 1e-5, lab, sizeof lab);
  CHECK(!strcmp(lab, "2e-5"), "label %s", lab);
  jade_tick_label(1000, 500, lab, sizeof lab);
  CHECK(!strcmp(lab, "1000"), "label %s", lab);
  CHECK(jade_cmap_color(JADE_CMAP_VIRIDIS, 0) == 0x440154 && jade_cmap_color(JADE_CMAP_VIRIDIS, 1) == 0xFDE725,
        "viridis ends");
  CHECK(jade_cmap_color(JADE_CMAP_VIRIDIS, 2) == 0xFDE725 && jade_cmap_color(JADE_CMAP_VIRIDIS, NAN) == 0x999999, "clamping");
  double qv[5] = {3, 1, NAN, 2, 4};
  CHECK_LT(fabs(jade_plot_quantile(qv, 5, 1, 0.5) - 2.5), 1e-12, "quantile");

  /* ---- base64 of the embedded images (RFC 4648 test vectors) ---- */
  static const char *const b64in[4] = {"", "f", "fo", "foobar"}, *const b64out[4] = {"", "Zg==", "Zm8=", "Zm9vYmFy"};
  for (int i = 0; i < 4; i++) {
    char *e = jade_base64((const unsigned char *)b64in[i], strlen(b64in[i]));
    CHECK(e && !strcmp(e, b64out[i]), "base64(%s) = %s", b64in[i], e ? e : "NULL");
    free(e);
  }

  /* ---- corner plot draws in every panel ---- */
  CHECK_OK(jade_image_init(&im, 400, 400, 0xFFFFFF));
  enum { N = 500 };
  static double pts[N * 2];
  for (int i = 0; i < N; i++) {
    pts[2 * i] = jade_rng_normal(3, 1, 2 * i);
    pts[2 * i + 1] = jade_rng_normal(3, 1, 2 * i + 1);
  }
  jade_corner_set set = {pts, N, 2, 0x1F77B4, "draws", JADE_CORNER_FILLED};
  int cols[2] = {0, 1};
  const char *names[2] = {"a", "b"};
  double truth[2] = {0, 0};
  jade_corner_plot(&im, 0, 0, 400, 2, cols, names, &set, 1, truth);
  /* the lower-left panel (data at the centre) is coloured near the truth */
  double p = (400 - 64 - 58) / 2.0;
  jade_rgb centre = jade_image_get(&im, (int)(64 + p / 2) + 3, (int)(p + p / 2) + 3);
  CHECK(!is_white(centre), "corner 2-D panel empty at its centre");
  /* the upper-right triangle stays empty apart from the legend */
  CHECK(is_white(jade_image_get(&im, (int)(64 + 1.9 * p), (int)(0.9 * p))), "upper triangle drawn on");
  jade_image_free(&im);
  kde_tests();
  symlog_tests();
  TEST_RETURN();
}
