/* Correlated multi-bin shifted log-normal convergence fields on a periodic grid: the sbi_lens
 * algorithm (Zeghal et al. 2022, sbi_lens LogNormal_field.py; spec simulator.md), with the
 * shifted log-normal model of Hilbert, Hartlap & Schneider (2011) and Xavier, Abdalla &
 * Joachimi (2016):
 *
 *   kappa_i = lambda_i (exp(g_i - var_i / 2) - 1),   g Gaussian with cov xi_G,   (step 4)
 *   1 + xi^{ij} / (lambda_i lambda_j) = exp(xi_G^{ij})                            (step 2)
 * (step numbers of simulator.md "Correlated log-normal fields"; the second relation follows
 * from E[exp(g_i + g_j)] for jointly Gaussian g and is the one sbi_lens implements).
 *
 * Fourier conventions (identical to sbi_lens's jnp.fft, L = side in radians, N pixels):
 *   power map    P^{ij}(k) = C^{ij}(l_k) (N / L)^2, P(0) = 0   (make_power_map)
 *   correlation  xi^{ij}(x) = (1/N^2) sum_k P^{ij}(k) e^{+i k.x}   (= ifft2, so xi(0) =
 *                (1/L^2) sum_k C(l_k), the discrete form of int d^2l / (2 pi)^2 C_l)
 *   Gaussian     P_G^{ij}(k) = sum_x ln(1 + xi^{ij}(x) / (lambda_i lambda_j)) e^{-i k.x}  (fft2)
 *   draw         g_i = ifft2( sum_j R_ij(k) fft2(z_j) ), R(k) = P_G(k)^{1/2} (symmetric root)
 * With unit white noise z, <|fft2 g|^2> = N^2 P_G, so cov(g(x), g(x')) = xi_G(x - x') and
 * the estimator L^2 |fft2 kappa|^2 / N^4 of jade_power_spectrum is unbiased for C_l.
 *
 * Sampling C_l on the grid: each Fourier mode k = (kx, ky) (signed, |k_i| <= N/2) gets the
 * table C_l interpolated (log-log, jade_cl_interp) at its exact l = 2 pi |k| / L. No pixel
 * window and no averaging over the cell, as sbi_lens (which interpolates linearly in l a table
 * at l = 2 pi m / L, m = 0..N). The map's expected power is therefore C(l_k) mode by mode;
 * jade_power_spectrum_theory gives its band averages.
 *
 * Differences from sbi_lens, on purpose:
 * - P_G is the real part of the FFT of the even function xi_G (its exact value); sbi_lens took
 *   abs(), which turns a negative auto- or cross-power into a positive one. Negative
 *   eigenvalues of the per-mode matrix are clipped to zero (as sbi_lens).
 * - The l = 0 mode of P_G is zeroed (as sbi_lens), so every g_i has zero pixel mean; C^{ij}
 *   is first multiplied by a_ij = exp(c_ij) (c_ij the grid mean of xi_G^{ij}, a fixed point;
 *   see step 2 of prepare) so that this zeroing does not raise the power of the other modes
 *   by exp(-c_ij). sbi_lens has a_ij = 1.
 * - var_i: JADE_LN_VARIANCE_THEORY uses the variance of g_i as drawn,
 *   var_i = (1/N^2) sum_k [R(k)^2]_ii, which is xi_G^{ii}(0) after the l = 0 mode is zeroed and
 *   eigenvalues clipped; it makes E[kappa_i] = 0 exactly. JADE_LN_VARIANCE_EMPIRICAL uses
 *   each map's pixel variance of g_i (numpy var, ddof = 0), as sbi_lens.
 * - The white noise is Philox element b N^2 + y N + x of (seed, stream) for bin b, pixel (y, x).
 *
 * Lattice symmetry: C(|l|) is invariant under kx <-> ky and sign flips, hence so are xi, xi_G,
 * P_G and R. Logs and eigen-decompositions are done once per class (|kx|, |ky|) sorted, about
 * 1/8 of the grid, and copied; this also makes R exactly symmetric. */
#include "jade/lensing.h"
#include "jade/cosmo.h"
#include "mode_classes.h"

#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LN_MAX_BINS 16 /* per-mode matrices live on the stack; jade uses at most 10 bins */

struct jade_lognormal {
  int n, nc, nb, np; /* pixels per side, n/2+1, bins, pairs */
  double L;          /* side in radians */
  jade_ln_variance variance;
  int prepared;
  int n_canon;          /* number of symmetry classes (a >= b, 0 <= b <= a <= n/2) */
  jade_mode_classes mc; /* mode / pixel symmetry classes, |k| per class, |k| order */
  double *lambda;       /* nb */
  double *var;          /* nb: variance of g_i as drawn */
  double *xi_g0;        /* nb: xi_G^{ii}(0) before zeroing / clipping (diagnostic) */
  double *root;         /* n_canon x nb x nb: R per class */
  double *pg;           /* n_canon x np: P_G per class and pair (prepare work) */
  double *xig;          /* n_canon: power, then xi_G, per class (prepare work) */
  double *xic;          /* n_canon: xi per real-space class (prepare work) */
  double *scale;        /* np: the factor a_ij applied to C^{ij} (see prepare) */
  double clipped;       /* fraction of sum_k tr P_G(k) removed by eigenvalue clipping */
  double *lnkl;         /* per class: ln l (0 for class 0) */
  int cap_ell;          /* capacity of the per-prepare C_ell log tables */
  double *lnell, *lncl, *cl1; /* ln ell, ln |C| and C of one pair (prepare work) */
  double *rbuf;         /* nb x rstride real (fftw_malloc) */
  size_t rstride;       /* n x n rounded up to 8 doubles: every bin's array is 64-byte aligned,
                         * as FFTW's new-array execute needs the planned alignment */
  fftw_complex *cbuf;   /* nb x n x nc (white noise spectra; n nc 16 bytes is a multiple of 64) */
  fftw_complex *obuf;   /* nb x n x nc (coloured spectra; c2r destroys them) */
  fftw_plan r2c, c2r;
};

void jade_lognormal_free(jade_lognormal *ln) {
  if (!ln) return;
#pragma omp critical(jade_fftw_plan)
  {
    if (ln->r2c) fftw_destroy_plan(ln->r2c);
    if (ln->c2r) fftw_destroy_plan(ln->c2r);
  }
  jade_mode_classes_release(&ln->mc);
  free(ln->lambda);
  free(ln->var);
  free(ln->xi_g0);
  free(ln->root);
  free(ln->pg);
  free(ln->xig);
  free(ln->xic);
  free(ln->scale);
  free(ln->lnkl);
  free(ln->lnell);
  free(ln->lncl);
  free(ln->cl1);
  fftw_free(ln->rbuf);
  fftw_free(ln->cbuf);
  fftw_free(ln->obuf);
  free(ln);
}

jade_status jade_lognormal_create(const jade_map_geometry *g, jade_ln_variance variance,
                                  jade_lognormal **out) {
  *out = NULL;
  jade_status st = jade_mode_classes_check(g, LN_MAX_BINS, "lognormal");
  if (st) return st;
  if (variance != JADE_LN_VARIANCE_THEORY && variance != JADE_LN_VARIANCE_EMPIRICAL)
    return jade_error(JADE_ERR_INVALID, "lognormal: unknown variance option %d", (int)variance);
  jade_lognormal *ln = calloc(1, sizeof *ln);
  if (!ln) return jade_error(JADE_ERR_NOMEM, "lognormal: out of memory");
  int n = g->n_pix, nb = g->n_bins, h = n / 2;
  ln->n = n;
  ln->nc = h + 1;
  ln->nb = nb;
  ln->np = jade_n_pairs(nb);
  ln->L = g->size_deg * M_PI / 180.0;
  ln->variance = variance;
  ln->n_canon = (h + 1) * (h + 2) / 2;
  size_t npix = (size_t)n * n, nmodes = (size_t)n * ln->nc;
  ln->lambda = calloc((size_t)nb, sizeof(double));
  ln->var = calloc((size_t)nb, sizeof(double));
  ln->xi_g0 = calloc((size_t)nb, sizeof(double));
  ln->root = calloc((size_t)ln->n_canon * nb * nb, sizeof(double));
  ln->pg = calloc((size_t)ln->n_canon * ln->np, sizeof(double));
  ln->xig = calloc((size_t)ln->n_canon, sizeof(double));
  ln->xic = calloc((size_t)ln->n_canon, sizeof(double));
  ln->scale = calloc((size_t)ln->np, sizeof(double));
  ln->lnkl = calloc((size_t)ln->n_canon, sizeof(double));
  ln->rstride = (npix + 7) & ~(size_t)7;
  ln->rbuf = fftw_malloc(sizeof(double) * ln->rstride * nb);
  ln->cbuf = fftw_malloc(sizeof(fftw_complex) * nmodes * nb);
  ln->obuf = fftw_malloc(sizeof(fftw_complex) * nmodes * nb);
  if (!ln->lambda || !ln->var || !ln->xi_g0 || !ln->root || !ln->pg || !ln->xig || !ln->xic || !ln->scale ||
      !ln->lnkl || !ln->rbuf || !ln->cbuf || !ln->obuf) {
    jade_lognormal_free(ln);
    return jade_error(JADE_ERR_NOMEM, "lognormal: out of memory for %d bins of %d x %d", nb, n, n);
  }
  if ((st = jade_mode_classes_init(&ln->mc, g))) {
    jade_lognormal_free(ln);
    return st;
  }
  for (int c = 1; c < ln->n_canon; c++) ln->lnkl[c] = log(ln->mc.kl[c]);
#pragma omp critical(jade_fftw_plan)
  {
    ln->r2c = fftw_plan_dft_r2c_2d(n, n, ln->rbuf, ln->cbuf, FFTW_ESTIMATE);
    ln->c2r = fftw_plan_dft_c2r_2d(n, n, ln->obuf, ln->rbuf, FFTW_ESTIMATE);
  }
  if (!ln->r2c || !ln->c2r) {
    jade_lognormal_free(ln);
    return jade_error(JADE_ERR_INTERNAL, "lognormal: FFTW could not plan %d x %d transforms", n, n);
  }
  *out = ln;
  return JADE_OK;
}

/* Cyclic Jacobi eigen-decomposition of a symmetric m x m matrix a (destroyed; eigenvalues on
 * its diagonal), eigenvectors in the columns of v (Golub & Van Loan, Matrix Computations,
 * 4th ed., Alg. 8.5.3, with the stable rotation of Rutishauser 1966). */
static void jacobi_eigen(int m, double *a, double *v) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++) v[i * m + j] = i == j;
  for (int sweep = 0; sweep < 60; sweep++) {
    double off = 0.0, diag = 0.0;
    for (int p = 0; p < m; p++) {
      diag += a[p * m + p] * a[p * m + p];
      for (int q = p + 1; q < m; q++) off += a[p * m + q] * a[p * m + q];
    }
    if (off <= 1e-26 * diag || off == 0.0) break; /* off-diagonal ~1e-13 relative */
    for (int p = 0; p < m; p++) {
      for (int q = p + 1; q < m; q++) {
        double apq = a[p * m + q];
        if (apq == 0.0) continue;
        double theta = (a[q * m + q] - a[p * m + p]) / (2.0 * apq);
        double t = (theta >= 0.0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
        double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
        for (int k = 0; k < m; k++) { /* columns p, q */
          double akp = a[k * m + p], akq = a[k * m + q];
          a[k * m + p] = c * akp - s * akq;
          a[k * m + q] = s * akp + c * akq;
        }
        for (int k = 0; k < m; k++) { /* rows p, q */
          double apk = a[p * m + k], aqk = a[q * m + k];
          a[p * m + k] = c * apk - s * aqk;
          a[q * m + k] = s * apk + c * aqk;
        }
        a[p * m + q] = a[q * m + p] = 0.0;
        for (int k = 0; k < m; k++) {
          double vkp = v[k * m + p], vkq = v[k * m + q];
          v[k * m + p] = c * vkp - s * vkq;
          v[k * m + q] = s * vkp + c * vkq;
        }
      }
    }
  }
}

/* out[class] = scale * C(l_class) for every class (0 for l = 0), C interpolated exactly as
 * jade_cl_interp does (same expressions, logs tabulated once), walking the classes in
 * increasing l so that no search is needed. ln->lnell must hold ln(ell). */
static void cl_on_classes(jade_lognormal *ln, int n_ell, const double *ell, const double *cl,
                          size_t stride, double scale, double *out) {
  double *lc = ln->lncl, *y = ln->cl1;
  for (int k = 0; k < n_ell; k++) {
    y[k] = cl[(size_t)k * stride];
    lc[k] = y[k] != 0.0 ? log(fabs(y[k])) : 0.0;
  }
  out[0] = 0.0;
  int seg = 0; /* ell[seg] < l <= ell[seg + 1] */
  for (int q = 0; q < ln->n_canon - 1; q++) {
    int c = ln->mc.korder[q + 1]; /* the non-zero classes by |k| */
    double l = ln->mc.kl[c], v;
    if (l <= ell[0]) {
      v = y[0];
    } else if (l > ell[n_ell - 1]) {
      v = 0.0;
    } else {
      while (ell[seg + 1] < l) seg++;
      int a = seg, b = seg + 1;
      if (l == ell[b]) {
        v = y[b];
      } else {
        double t = (ln->lnkl[c] - ln->lnell[a]) / (ln->lnell[b] - ln->lnell[a]);
        if (y[a] > 0.0 && y[b] > 0.0) v = exp(lc[a] + t * (lc[b] - lc[a]));
        else if (y[a] < 0.0 && y[b] < 0.0) v = -exp(lc[a] + t * (lc[b] - lc[a]));
        else v = y[a] + t * (y[b] - y[a]);
      }
    }
    out[c] = scale * v;
  }
}

jade_status jade_lognormal_prepare(jade_lognormal *ln, int n_ell, const double *ell,
                                   const double *cl, const double *lambda) {
  if (!ln) return jade_error(JADE_ERR_INVALID, "lognormal prepare: plan is NULL");
  ln->prepared = 0;
  int n = ln->n, nc = ln->nc, nb = ln->nb, np = ln->np, h = n / 2;
  if (n_ell < 2 || !ell || !cl || !lambda)
    return jade_error(JADE_ERR_INVALID, "lognormal prepare: need a C_ell table of >= 2 multipoles (n_ell = %d)", n_ell);
  for (int k = 0; k < n_ell; k++) {
    if (!isfinite(ell[k]) || !(ell[k] > 0.0) || (k && !(ell[k] > ell[k - 1])))
      return jade_error(JADE_ERR_INVALID, "lognormal prepare: ell[%d] = %g (need finite, > 0, increasing)", k, ell[k]);
    for (int p = 0; p < np; p++) {
      double v = cl[(size_t)k * np + p];
      if (!isfinite(v)) return jade_error(JADE_ERR_NUMERIC, "lognormal prepare: cl[ell %d, pair %d] = %g", k, p, v);
    }
    for (int i = 0; i < nb; i++) {
      double v = cl[(size_t)k * np + jade_pair_index(nb, i, i)];
      if (v < 0.0)
        return jade_error(JADE_ERR_INVALID, "lognormal prepare: auto C_ell of bin %d at ell = %g is negative (%g)",
                          i, ell[k], v);
    }
  }
  for (int i = 0; i < nb; i++) {
    if (!isfinite(lambda[i]) || !(lambda[i] > 0.0))
      return jade_error(JADE_ERR_INVALID, "lognormal prepare: lambda[%d] = %g must be finite and > 0", i, lambda[i]);
    ln->lambda[i] = lambda[i];
  }
  size_t npix = (size_t)n * n, nmodes = (size_t)n * nc;
  double pnorm = ((double)n / ln->L) * ((double)n / ln->L);
  if (n_ell > ln->cap_ell) {
    double *a = realloc(ln->lnell, sizeof(double) * n_ell), *b = realloc(ln->lncl, sizeof(double) * n_ell),
           *c = realloc(ln->cl1, sizeof(double) * n_ell);
    if (a) ln->lnell = a;
    if (b) ln->lncl = b;
    if (c) ln->cl1 = c;
    if (!a || !b || !c) return jade_error(JADE_ERR_NOMEM, "lognormal prepare: out of memory for %d multipoles", n_ell);
    ln->cap_ell = n_ell;
  }
  for (int k = 0; k < n_ell; k++) ln->lnell[k] = log(ell[k]);
  double *xi = ln->rbuf;            /* n x n */
  fftw_complex *pk = ln->obuf;      /* n x nc, power map (consumed by c2r) */
  fftw_complex *fg = ln->cbuf;      /* n x nc, FFT of xi_G */
  double *pclass = ln->xig;         /* reused: power per class, then xi_G per class */
  for (int i = 0; i < nb; i++) {
    for (int j = i; j < nb; j++) {
      int p = jade_pair_index(nb, i, j);
      /* 1. power map P(k) = C(l_k) (N/L)^2, l = 0 mode zeroed (sbi_lens make_power_map). */
      cl_on_classes(ln, n_ell, ell, cl + p, (size_t)np, pnorm, pclass);
      for (size_t m = 0; m < nmodes; m++) {
        pk[m][0] = pclass[ln->mc.canon_k[m]];
        pk[m][1] = 0.0;
      }
      /* 2. xi = ifft2(P) (c2r is unnormalised), xi_G = ln(1 + a xi / (lambda_i lambda_j)).
       * The factor a: zeroing the l = 0 mode of P_G (step 3) shifts xi_G by -c, c = the grid
       * mean of xi_G, which multiplies the log-normal field's power on every other mode by
       * exp(-c) (xi_kappa = lambda_i lambda_j (exp(xi_G - c) - 1) = a exp(-c) xi + const).
       * Choosing a = exp(c(a)) (fixed point; c = O(xi^2), so a few iterations) makes the drawn
       * maps' power equal C^{ij} on every non-zero mode, up to clipped eigenvalues. sbi_lens
       * uses a = 1; the difference is |c|, from ~1e-4 for nearly Gaussian fields to ~1e-2
       * for std(kappa) ~ lambda on small grids. */
      fftw_execute_dft_c2r(ln->c2r, pk, xi);
      double ll = lambda[i] * lambda[j], inv = 1.0 / ((double)n * n);
      for (int a = 0; a <= h; a++)
        for (int b = 0; b <= a; b++) ln->xic[jade_mode_class_of(a, b)] = xi[(size_t)a * n + b] * inv;
      double sa = 1.0;
      for (int it = 0; it < 100; it++) {
        double c = 0.0;
        for (int m = 0; m < ln->n_canon; m++) {
          double x = sa * ln->xic[m] / ll;
          if (!(1.0 + x > 0.0)) {
            int a = 0;
            while ((a + 1) * (a + 2) / 2 <= m) a++;
            return jade_error(JADE_ERR_NUMERIC,
                              "lognormal prepare: bins (%d,%d): xi = %g at separation (%d,%d) px is below "
                              "-lambda_i lambda_j = %g: no log-normal field has this correlation",
                              i, j, sa * ln->xic[m], a, m - a * (a + 1) / 2, -ll);
          }
          c += ln->mc.mult[m] * log1p(x);
        }
        double next = exp(c * inv);
        int done = fabs(next - sa) <= 1e-15 * sa;
        sa = next;
        if (done) break;
      }
      ln->scale[p] = sa;
      for (int m = 0; m < ln->n_canon; m++) pclass[m] = log1p(sa * ln->xic[m] / ll);
      if (i == j) ln->xi_g0[i] = pclass[0];
      for (size_t m = 0; m < npix; m++) xi[m] = pclass[ln->mc.canon_x[m]];
      /* 3. P_G = Re fft2(xi_G) (xi_G is even: the imaginary part is rounding). */
      fftw_execute_dft_r2c(ln->r2c, xi, fg);
      for (int a = 0; a <= h; a++)
        for (int b = 0; b <= a; b++) {
          int c = jade_mode_class_of(a, b);
          ln->pg[(size_t)c * np + p] = (a == 0 && b == 0) ? 0.0 : fg[(size_t)a * nc + b][0];
        }
    }
  }
  /* 4. Symmetric root per class, negative eigenvalues clipped. */
  /* Warm start: neighbouring classes ((a, b) then (a, b+1)) have nearly the same
   * eigenvectors, so Jacobi runs on B = Vp^T P_G Vp (Vp: the previous class's eigenvectors),
   * nearly diagonal, and V = Vp W. This halves the sweeps; the order is fixed, so the result
   * is deterministic. */
  double amat[LN_MAX_BINS * LN_MAX_BINS], vmat[LN_MAX_BINS * LN_MAX_BINS], sq[LN_MAX_BINS];
  double vprev[LN_MAX_BINS * LN_MAX_BINS], tmp[LN_MAX_BINS * LN_MAX_BINS];
  for (int i = 0; i < nb * nb; i++) vprev[i] = (i % (nb + 1)) == 0;
  double *neg = ln->xic; /* per class: sum of the clipped (negative) eigenvalues */
  for (int c = 0; c < ln->n_canon; c++) {
    double *r = ln->root + (size_t)c * nb * nb;
    const double *pc = ln->pg + (size_t)c * np;
    neg[c] = 0.0;
    if (nb == 1) {
      r[0] = pc[0] > 0.0 ? sqrt(pc[0]) : 0.0;
      if (pc[0] < 0.0) neg[c] = pc[0];
      continue;
    }
    for (int i = 0; i < nb; i++) /* tmp = P_G Vp */
      for (int j = 0; j < nb; j++) {
        double t = 0.0;
        for (int k = 0; k < nb; k++) t += pc[jade_pair_index(nb, i, k)] * vprev[k * nb + j];
        tmp[i * nb + j] = t;
      }
    for (int i = 0; i < nb; i++) /* B = Vp^T tmp, symmetrised */
      for (int j = i; j < nb; j++) {
        double t = 0.0;
        for (int k = 0; k < nb; k++) t += vprev[k * nb + i] * tmp[k * nb + j];
        amat[i * nb + j] = t;
      }
    for (int i = 0; i < nb; i++)
      for (int j = 0; j < i; j++) amat[i * nb + j] = amat[j * nb + i];
    jacobi_eigen(nb, amat, tmp);
    for (int i = 0; i < nb; i++) /* V = Vp W */
      for (int j = 0; j < nb; j++) {
        double t = 0.0;
        for (int k = 0; k < nb; k++) t += vprev[i * nb + k] * tmp[k * nb + j];
        vmat[i * nb + j] = t;
      }
    memcpy(vprev, vmat, sizeof(double) * nb * nb);
    for (int k = 0; k < nb; k++) {
      double e = amat[k * nb + k];
      sq[k] = e > 0.0 ? sqrt(e) : 0.0;
      if (e < 0.0) neg[c] += e;
    }
    for (int i = 0; i < nb; i++)
      for (int j = i; j < nb; j++) {
        double s = 0.0;
        for (int k = 0; k < nb; k++) s += vmat[i * nb + k] * sq[k] * vmat[j * nb + k];
        r[i * nb + j] = r[j * nb + i] = s;
      }
  }
  /* Variance of g_i as drawn: (1/N^2) sum over the full plane of [R^2]_ii (half plane with
   * multiplicity 1 on the kx = 0 and kx = N/2 columns, 2 elsewhere). */
  for (int i = 0; i < nb; i++) ln->var[i] = 0.0;
  double tr_clip = 0.0, tr_all = 0.0;
  for (int y = 0; y < n; y++) {
    for (int x = 0; x < nc; x++) {
      int c = ln->mc.canon_k[(size_t)y * nc + x];
      const double *r = ln->root + (size_t)c * nb * nb;
      int w = (x == 0 || x == h) ? 1 : 2;
      tr_clip -= w * neg[c];
      for (int i = 0; i < nb; i++) tr_all += w * fabs(ln->pg[(size_t)c * np + jade_pair_index(nb, i, i)]);
      for (int i = 0; i < nb; i++) {
        double s = 0.0;
        for (int k = 0; k < nb; k++) s += r[i * nb + k] * r[i * nb + k];
        ln->var[i] += w * s;
      }
    }
  }
  for (int i = 0; i < nb; i++) {
    ln->var[i] /= (double)n * n;
    if (!isfinite(ln->var[i]))
      return jade_error(JADE_ERR_NUMERIC, "lognormal prepare: Gaussian variance of bin %d is %g", i, ln->var[i]);
  }
  ln->clipped = tr_all > 0.0 ? tr_clip / tr_all : 0.0;
  ln->prepared = 1;
  return JADE_OK;
}

jade_status jade_lognormal_draw(jade_lognormal *ln, uint64_t seed, uint64_t stream, float *kappa) {
  if (!ln) return jade_error(JADE_ERR_INVALID, "lognormal draw: plan is NULL");
  if (!ln->prepared) return jade_error(JADE_ERR_INVALID, "lognormal draw: jade_lognormal_prepare has not succeeded");
  int n = ln->n, nc = ln->nc, nb = ln->nb;
  size_t npix = (size_t)n * n, nmodes = (size_t)n * nc;
  /* White noise: element b N^2 + y N + x of (seed, stream). */
  for (int b = 0; b < nb; b++) {
    double *z = ln->rbuf + b * ln->rstride;
    jade_rng_normal_fill(seed, stream, (uint64_t)b * npix, npix, z);
    fftw_execute_dft_r2c(ln->r2c, z, ln->cbuf + b * nmodes);
  }
  /* Colour: O_i(k) = sum_j R_ij(k) W_j(k). */
  for (size_t m = 0; m < nmodes; m++) {
    const double *r = ln->root + (size_t)ln->mc.canon_k[m] * nb * nb;
    for (int i = 0; i < nb; i++) {
      double re = 0.0, im = 0.0;
      for (int j = 0; j < nb; j++) {
        re += r[i * nb + j] * ln->cbuf[j * nmodes + m][0];
        im += r[i * nb + j] * ln->cbuf[j * nmodes + m][1];
      }
      ln->obuf[i * nmodes + m][0] = re;
      ln->obuf[i * nmodes + m][1] = im;
    }
  }
  double inv = 1.0 / ((double)n * n);
  for (int i = 0; i < nb; i++) {
    double *g = ln->rbuf + i * ln->rstride;
    fftw_execute_dft_c2r(ln->c2r, ln->obuf + i * nmodes, g);
    double v = ln->var[i];
    if (ln->variance == JADE_LN_VARIANCE_EMPIRICAL) {
      double s = 0.0, s2 = 0.0;
      for (size_t m = 0; m < npix; m++) s += g[m] * inv;
      double mu = s / (double)npix;
      for (size_t m = 0; m < npix; m++) {
        double d = g[m] * inv - mu;
        s2 += d * d;
      }
      v = s2 / (double)npix;
    }
    double lam = ln->lambda[i], hv = 0.5 * v;
    float *out = kappa + i * npix;
    for (size_t m = 0; m < npix; m++) {
      double k = lam * expm1(g[m] * inv - hv);
      if (!isfinite(k))
        return jade_error(JADE_ERR_NUMERIC, "lognormal draw: bin %d pixel %zu is not finite (g = %g, var = %g)",
                          i, m, g[m] * inv, v);
      out[m] = (float)k;
    }
  }
  return JADE_OK;
}

double jade_lognormal_gaussian_variance(const jade_lognormal *ln, int bin) {
  if (!ln || !ln->prepared || bin < 0 || bin >= ln->nb) return NAN;
  return ln->var[bin];
}

double jade_lognormal_clipped_fraction(const jade_lognormal *ln) {
  if (!ln || !ln->prepared) return NAN;
  return ln->clipped;
}

double jade_lognormal_cl_scale(const jade_lognormal *ln, int i, int j) {
  if (!ln || !ln->prepared || i < 0 || j < 0 || i >= ln->nb || j >= ln->nb) return NAN;
  return ln->scale[jade_pair_index(ln->nb, i, j)];
}
