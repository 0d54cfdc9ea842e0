/* Random survey masks and smooth noise maps (include/jade/mask.h): masked training, masked
 * validation and masked mock observations draw them from here. */
#include "jade/mask.h"

#include "jade/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Fixed offsets inside a map's JADE_MASK_DRAWS numbers, so that one decision never shifts the
 * numbers of another. */
enum { DRAW_HAS = 0, DRAW_FRAC, DRAW_EDGE, DRAW_SIDE, DRAW_WIDTH, DRAW_SCALE, DRAW_AMP, DRAW_HOLES = 16, MAX_HOLES = 128,
       DRAW_MODES = DRAW_HOLES + 3 * MAX_HOLES, N_MODES = 12 };

/* Star holes: discs of radius (0.5 .. 3) n / 32 pixels at uniform centres, added until the
 * masked fraction reaches target (or MAX_HOLES); count = pixels masked so far. */
static void add_holes(int n, uint64_t seed, uint64_t stream, uint64_t base, double target, float *mask, size_t *count) {
  const size_t np = (size_t)n * n;
  const double scale = n / 32.0;
  for (int j = 0; j < MAX_HOLES && (double)*count < target * (double)np; j++) {
    const uint64_t k = base + DRAW_HOLES + 3 * (uint64_t)j;
    const double cx = jade_rng_uniform(seed, stream, k) * n, cy = jade_rng_uniform(seed, stream, k + 1) * n;
    const double r = (0.5 + 2.5 * jade_rng_uniform(seed, stream, k + 2)) * scale;
    int y0 = (int)floor(cy - r), y1 = (int)ceil(cy + r), x0 = (int)floor(cx - r), x1 = (int)ceil(cx + r);
    if (y0 < 0) y0 = 0;
    if (x0 < 0) x0 = 0;
    if (y1 > n - 1) y1 = n - 1;
    if (x1 > n - 1) x1 = n - 1;
    for (int y = y0; y <= y1; y++)
      for (int x = x0; x <= x1; x++) {
        const double dy = y + 0.5 - cy, dx = x + 0.5 - cx;
        float *m = &mask[(size_t)y * n + x];
        if (dx * dx + dy * dy <= r * r && *m != 0) {
          *m = 0;
          (*count)++;
        }
      }
  }
}

/* g(x, y) = sum over the half plane of wave vectors (k_x, k_y), |k| <= 2 cycles per map, of
 * A cos(2 pi (k_x x + k_y y) / n) + B sin(...), A, B ~ N(0, 1); scaled to max |g| = 1. */
static void smooth_field(int n, uint64_t seed, uint64_t stream, uint64_t base, float *g) {
  static const int kx[N_MODES] = {1, 2, -2, -1, 0, 1, 2, -2, -1, 0, 1, 2}, ky[N_MODES] = {0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2};
  double a[N_MODES], b[N_MODES];
  for (int j = 0; j < N_MODES; j++) {
    a[j] = jade_rng_normal(seed, stream, base + DRAW_MODES + 2 * (uint64_t)j);
    b[j] = jade_rng_normal(seed, stream, base + DRAW_MODES + 2 * (uint64_t)j + 1);
  }
  double gmax = 0;
  for (int y = 0; y < n; y++)
    for (int x = 0; x < n; x++) {
      double v = 0;
      for (int j = 0; j < N_MODES; j++) {
        const double ph = 2 * M_PI * (double)(kx[j] * x + ky[j] * y) / n;
        v += a[j] * cos(ph) + b[j] * sin(ph);
      }
      g[(size_t)y * n + x] = (float)v;
      if (fabs(v) > gmax) gmax = fabs(v);
    }
  const float inv = gmax > 0 ? (float)(1.0 / gmax) : 0.0f;
  for (size_t i = 0; i < (size_t)n * n; i++) g[i] *= inv;
}

double jade_random_mask_noise(const jade_mask_config *mc, int n, uint64_t seed, uint64_t stream, uint64_t base, float *mask,
                              float *lnr) {
  const size_t np = (size_t)n * n;
  for (size_t i = 0; i < np; i++) mask[i] = 1;
  size_t count = 0;
  if (jade_rng_uniform(seed, stream, base + DRAW_HAS) < mc->mask_prob) {
    const double target = jade_rng_uniform(seed, stream, base + DRAW_FRAC) * mc->mask_max;
    if (jade_rng_uniform(seed, stream, base + DRAW_EDGE) < 0.5) { /* a strip along one edge */
      int side = (int)(jade_rng_uniform(seed, stream, base + DRAW_SIDE) * 4);
      side = side > 3 ? 3 : side;
      const int w = (int)(jade_rng_uniform(seed, stream, base + DRAW_WIDTH) * target * n);
      for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
          const int dist = side == 0 ? y : side == 1 ? n - 1 - y : side == 2 ? x : n - 1 - x;
          if (dist < w) {
            mask[(size_t)y * n + x] = 0;
            count++;
          }
        }
    }
    add_holes(n, seed, stream, base, target, mask, &count);
  }
  const double s = (2 * jade_rng_uniform(seed, stream, base + DRAW_SCALE) - 1) * mc->noise_ln_scale;
  const double a = jade_rng_uniform(seed, stream, base + DRAW_AMP) * mc->noise_ln_field;
  if (a > 0) {
    smooth_field(n, seed, stream, base, lnr);
    for (size_t i = 0; i < np; i++) lnr[i] = (float)(s + a * lnr[i]);
  } else {
    for (size_t i = 0; i < np; i++) lnr[i] = (float)s;
  }
  return (double)count / (double)np;
}

void jade_mask_noise_bins(int n_bins, size_t npix, const double *noise, const float *lnr, float *mask, float *sigma) {
  for (int b = n_bins - 1; b >= 0; b--) /* bin 0's slot (the drawn mask) last */
    for (size_t p = 0; p < npix; p++) {
      sigma[b * npix + p] = (float)(noise[b] * exp((double)lnr[p]));
      mask[b * npix + p] = mask[p];
    }
}
