/* Symmetry classes of an n x n periodic map, shared by the log-normal simulator
 * (lognormal.c) and its gradient (lognormal_grad.c). A mode (ky, kx) or a pixel offset (y, x)
 * belongs to the class of (a, b) = sorted (|ky|, |kx|) folded to [0, n/2]: every quantity
 * that depends only on |k| (P(k), the per-mode matrix root) or on the lattice distance
 * (xi(r)) is computed once per class, (n/2 + 1)(n/2 + 2)/2 classes instead of n^2. */
#ifndef JADE_MODE_CLASSES_H
#define JADE_MODE_CLASSES_H
#include "jade/core.h"
#include "jade/lensing.h"

typedef struct {
  int n, h, nc, n_canon; /* map side, n/2, half-plane columns n/2 + 1, number of classes */
  int *canon_k;          /* half-plane mode (row-major n x nc) -> class */
  int *canon_x;          /* pixel (n x n) -> class */
  int *rep_k;            /* class -> half-plane index of its representative (row a, column b <= a) */
  int *rep_x;            /* class -> pixel index of its representative */
  int *korder;           /* all classes sorted by |k| (ties by class index): korder[0] = 0 */
  double *mult;          /* class -> number of pixels in it */
  double *kl;            /* class -> multipole l = 2 pi |k| / L (L the side in radians) */
} jade_mode_classes;

/* Class index of (a, b), 0 <= a, b <= n/2, either order: max (max + 1) / 2 + min. */
static inline int jade_mode_class_of(int a, int b) {
  if (b > a) {
    int t = a;
    a = b;
    b = t;
  }
  return a * (a + 1) / 2 + b;
}

/* Checks the geometry (even n_pix in [2, 65536], finite size > 0, 1..max_bins bins); the
 * error names `who`. */
jade_status jade_mode_classes_check(const jade_map_geometry *g, int max_bins, const char *who);
/* Fills mc for the geometry (allocates; release with jade_mode_classes_release). */
jade_status jade_mode_classes_init(jade_mode_classes *mc, const jade_map_geometry *g);
void jade_mode_classes_release(jade_mode_classes *mc);
#endif
