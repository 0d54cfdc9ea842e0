/* The raster plotting module: PNG round trip through libpng (size, pixels), lines drawn
 * where expected, filled polygons' area, text, ticks and labels, colour maps, a corner plot,
 * base64 of the HTML page's images.
 *
 *   test_plot                 run the checks
 *   test_plot --demo OUT.png  also draw a demo figure of every element (to look at)
 *   test_plot --png-stats F   print "width height ink_fraction colours" of a PNG (used by
 *                             scripts/screenshot.sh to tell a rendered page from a blank one) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
  jade_corner_set set = {pts, N, 3, 0x1F77B4, "JADE"};
  int cols[3] = {0, 1, 2};
  const char *names[3] = {"\xCE\xA9m", "\xCF\x83" "8", "w0"};
  double truth[3] = {0.31, 0.82, -0.9};
  jade_corner_plot(&im, 420, 340, 350, 3, cols, names, &set, 1, truth);
  CHECK_OK(jade_image_write_png(&im, path));
  jade_image_free(&im);
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--png-stats")) return png_stats(argv[2]);
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
  jade_corner_set set = {pts, N, 2, 0x1F77B4, "draws"};
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
  TEST_RETURN();
}
