/* Symmetry classes of the modes and pixels of a periodic map (see mode_classes.h). */
#include "mode_classes.h"

#include <math.h>
#include <stdlib.h>

jade_status jade_mode_classes_check(const jade_map_geometry *g, int max_bins, const char *who) {
  if (!g) return jade_error(JADE_ERR_INVALID, "%s: geometry is NULL", who);
  if (g->n_pix < 2 || g->n_pix % 2 || g->n_pix > 65536)
    return jade_error(JADE_ERR_INVALID, "%s: n_pix = %d must be even, in [2, 65536]", who, g->n_pix);
  if (!(g->size_deg > 0.0) || !isfinite(g->size_deg))
    return jade_error(JADE_ERR_INVALID, "%s: size_deg = %g must be finite and > 0", who, g->size_deg);
  if (g->n_bins < 1 || g->n_bins > max_bins)
    return jade_error(JADE_ERR_INVALID, "%s: n_bins = %d must be in [1, %d]", who, g->n_bins, max_bins);
  return JADE_OK;
}

void jade_mode_classes_release(jade_mode_classes *mc) {
  free(mc->canon_k);
  free(mc->canon_x);
  free(mc->rep_k);
  free(mc->rep_x);
  free(mc->korder);
  free(mc->mult);
  free(mc->kl);
  mc->canon_k = mc->canon_x = mc->rep_k = mc->rep_x = mc->korder = NULL;
  mc->mult = mc->kl = NULL;
}

jade_status jade_mode_classes_init(jade_mode_classes *mc, const jade_map_geometry *g) {
  int n = g->n_pix, h = n / 2, nc = h + 1, ncan = (h + 1) * (h + 2) / 2;
  *mc = (jade_mode_classes){n, h, nc, ncan, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
  size_t npix = (size_t)n * n, nmodes = (size_t)n * nc;
  int kmax = 2 * h * h + 1;
  mc->canon_k = malloc(sizeof(int) * nmodes);
  mc->canon_x = malloc(sizeof(int) * npix);
  mc->rep_k = malloc(sizeof(int) * ncan);
  mc->rep_x = malloc(sizeof(int) * ncan);
  mc->korder = malloc(sizeof(int) * ncan);
  mc->mult = calloc((size_t)ncan, sizeof(double));
  mc->kl = calloc((size_t)ncan, sizeof(double));
  int *start = calloc((size_t)kmax + 1, sizeof(int));
  if (!mc->canon_k || !mc->canon_x || !mc->rep_k || !mc->rep_x || !mc->korder || !mc->mult || !mc->kl || !start) {
    free(start);
    jade_mode_classes_release(mc);
    return jade_error(JADE_ERR_NOMEM, "mode classes: out of memory for %d x %d", n, n);
  }
  for (int y = 0; y < n; y++) {
    int a = y <= h ? y : n - y;
    for (int x = 0; x < nc; x++) mc->canon_k[(size_t)y * nc + x] = jade_mode_class_of(a, x);
    for (int x = 0; x < n; x++) {
      int c = jade_mode_class_of(a, x <= h ? x : n - x);
      mc->canon_x[(size_t)y * n + x] = c;
      mc->mult[c] += 1.0;
    }
  }
  double L = g->size_deg * M_PI / 180.0, dl = 2.0 * M_PI / L;
  for (int a = 0; a <= h; a++)
    for (int b = 0; b <= a; b++) {
      int c = jade_mode_class_of(a, b);
      mc->rep_k[c] = a * nc + b;
      mc->rep_x[c] = a * n + b;
      mc->kl[c] = dl * sqrt((double)a * a + (double)b * b);
    }
  /* counting sort by |k|^2 = a^2 + b^2, stable in class index (the (a, b) loop order) */
  for (int a = 0; a <= h; a++)
    for (int b = 0; b <= a; b++) start[a * a + b * b + 1]++;
  for (int k = 0; k < kmax; k++) start[k + 1] += start[k];
  for (int a = 0; a <= h; a++)
    for (int b = 0; b <= a; b++) mc->korder[start[a * a + b * b]++] = jade_mode_class_of(a, b);
  free(start);
  return JADE_OK;
}
