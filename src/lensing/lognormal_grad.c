/* Differentiable log-normal maps: kappa(z; C_ell, lambda) of jade_lognormal_draw and its
 * reverse-mode derivative. The forward pass follows the documented conventions of
 * src/lensing/lognormal.c (spec simulator.md steps 1-4) through its public behaviour; the
 * reverse pass is derived below. Notation: N pixels per side, k a Fourier mode of the full
 * N x N plane, x a pixel, "class" the orbit of a mode (or pixel) under the lattice symmetry
 * (kx <-> ky, sign flips), on which P, xi, xi_G, P_G and R are constant; m_c the number of
 * grid points of class c (the same for modes and pixels); fft2 unnormalised.
 *
 * Forward (per bin pair p = (i, j), ll = lambda_i lambda_j):
 *   P_c      = (N/L)^2 C_p(l_c)                        (c != 0; P_0 = 0)
 *   xi_c     = (1/N^2) sum_k P(k) cos(k.x_c)           (c2r, read at a representative pixel)
 *   a        = exp((1/N^2) sum_c m_c ln(1 + a xi_c / ll))   (fixed point)
 *   xg_c     = ln(1 + u_c),  u_c = a xi_c / ll
 *   PG_c     = sum_x xg(x) cos(k_c.x)                  (r2c, real part; PG_0 = 0)
 *   R_c      = V diag(sqrt(max(s, 0))) V^T,  PG_c = V diag(s) V^T
 *   g_i      = (1/N^2) c2r(sum_j R_ij(k) W_j(k)),  W_j = fft2(z_j)
 *   kappa_i  = lambda_i expm1(g_i - v_i / 2)
 *
 * Reverse (bars are dL/d.):
 *   gbar_i   = kbar_i lambda_i exp(g_i - v_i/2);  lambdabar_i += sum kbar_i expm1(.);
 *   vbar_i   = -1/2 sum_x gbar_i  (theory: into R below; empirical: gbar_i += vbar_i 2 (g_i -
 *              mean g_i) / N^2)
 *   zbar     = (1/N^2) c2r(R(k) fft2(gbar))  (the colouring is self-adjoint: its kernel is real
 *              and even, R symmetric; substitute k -> -k in the adjoint sum)
 *   Rbar_c,ij = (1/N^2) sum_{k in c} Re(W_j(k) conj(G_i(k))),  G = fft2(gbar)
 *              + (m_c / N^2) R_c,ji (vbar_i + vbar_j)   (theory variance v_i = (1/N^2) sum_c
 *              m_c [R_c^2]_ii)
 *   PGbar_c  = V (F o (V^T Rbar_c V)) V^T   (Daleckii-Krein; F the divided differences of
 *              f(s) = sqrt(max(s, 0)); self-adjoint because F is symmetric); the pair value
 *              enters the matrix twice off the diagonal: pgbar_p = PGbar_ij + PGbar_ji.
 *   xgbar_c  = sum_{x in c} T(x),  T = c2r(Y), Y(k) = pgbar_{class k} / m_{class k}
 *              (since sum_{x in c'} sum_{k in c} cos(k.x) = m_c sum_{x in c'} cos(k_c.x))
 *   fixed point: with q = (1/N^2) sum_c m_c u_c / (1 + u_c) and S = sum_c xgbar_c u_c/(1+u_c),
 *              differentiating a = exp(C), C = (1/N^2) sum_c m_c ln(1 + a xi_c / ll) gives
 *              dC (1 - q) = (1/N^2) sum_c m_c (a/ll) dxi_c / (1 + u_c) - q dll/ll, hence
 *              xibar_c = (a/ll)/(1+u_c) [xgbar_c + S m_c / (N^2 (1 - q))],
 *              (dll/ll)bar = -S / (1 - q)  -> lambdabar_i, lambdabar_j
 *   Pbar_c   = m_c Re Zhat(k_c), Zhat = fft2(Z), Z(x) = xibar_{class x} / (m_{class x} N^2)
 *   clbar    = (N/L)^2 Pbar_c times the interpolation weights (log-log: v (1-t) / y_a and
 *              v t / y_b; linear between nodes of opposite signs: 1-t and t).
 * tests/test_mcmc_field.c checks every piece against finite differences. */
#include "jade/lognormal_grad.h"
#include "jade/cosmo.h"
#include "mode_classes.h"

#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LG_MAX_BINS 16

struct jade_lngrad {
  int n, nc, nb, np, h;
  double L, pnorm, inv_n2;
  jade_ln_variance variance;
  int n_canon;
  jade_mode_classes mc; /* symmetry classes (korder: warm-start order of the eigen-decompositions) */
  double *wcol;  /* half-plane column x -> 1 (x = 0, n/2) or 2: full-plane multiplicity */
  int pi[LG_MAX_BINS * (LG_MAX_BINS + 1) / 2], pj[LG_MAX_BINS * (LG_MAX_BINS + 1) / 2];
  /* theory */
  int prepared, n_ell, cap_ell;
  double *ell, *cl;        /* copies of the table */
  double *lcl;             /* ln |C| of one column (prepare work) */
  int *imode, *iseg;       /* per class: 0 below ell[0], 1 above the table, 2 on node iseg,
                              3 between iseg and iseg + 1 with weight it */
  double *it;
  double lambda[LG_MAX_BINS], var[LG_MAX_BINS];
  double *pc;              /* n_pairs x n_canon: power P_c */
  double *xic;             /* n_pairs x n_canon: xi_c */
  double *scale, *qfp;     /* n_pairs: a_ij and q of the fixed point */
  double *pg;              /* n_canon x n_pairs */
  double *evec, *eval;     /* n_canon x nb x nb, n_canon x nb */
  double *root;            /* n_canon x nb x nb */
  double clipped;
  /* field */
  int have_field;
  size_t rstride, nmodes;
  double *rbuf;            /* nb x rstride (FFT real buffers) */
  fftw_complex *wk;        /* nb x nmodes: fft2(z) */
  fftw_complex *ck;        /* nb x nmodes: work */
  double *g, *em1;         /* nb x N^2: g and expm1(g - v/2) of the last forward */
  double vused[LG_MAX_BINS];
  double *gbar;            /* nb x N^2 work */
  double *rbar;            /* n_canon x nb x nb work */
  double *pgbar;           /* n_canon x n_pairs work */
  double *cwork;           /* n_canon work */
  fftw_plan r2c, c2r;
};

void jade_lngrad_free(jade_lngrad *lg) {
  if (!lg) return;
#pragma omp critical(jade_fftw_plan)
  {
    if (lg->r2c) fftw_destroy_plan(lg->r2c);
    if (lg->c2r) fftw_destroy_plan(lg->c2r);
  }
  jade_mode_classes_release(&lg->mc);
  free(lg->wcol);
  free(lg->ell);
  free(lg->cl);
  free(lg->lcl);
  free(lg->imode);
  free(lg->iseg);
  free(lg->it);
  free(lg->pc);
  free(lg->xic);
  free(lg->scale);
  free(lg->qfp);
  free(lg->pg);
  free(lg->evec);
  free(lg->eval);
  free(lg->root);
  fftw_free(lg->rbuf);
  fftw_free(lg->wk);
  fftw_free(lg->ck);
  free(lg->g);
  free(lg->em1);
  free(lg->gbar);
  free(lg->rbar);
  free(lg->pgbar);
  free(lg->cwork);
  free(lg);
}

jade_status jade_lngrad_create(const jade_map_geometry *g, jade_ln_variance variance,
                               jade_lngrad **out) {
  *out = NULL;
  jade_status st = jade_mode_classes_check(g, LG_MAX_BINS, "lognormal gradient");
  if (st) return st;
  if (variance != JADE_LN_VARIANCE_THEORY && variance != JADE_LN_VARIANCE_EMPIRICAL)
    return jade_error(JADE_ERR_INVALID, "lognormal gradient: unknown variance option %d", (int)variance);
  jade_lngrad *lg = calloc(1, sizeof *lg);
  if (!lg) return jade_error(JADE_ERR_NOMEM, "lognormal gradient: out of memory");
  int n = g->n_pix, nb = g->n_bins, h = n / 2;
  lg->n = n;
  lg->h = h;
  lg->nc = h + 1;
  lg->nb = nb;
  lg->np = jade_n_pairs(nb);
  lg->L = g->size_deg * M_PI / 180.0;
  lg->pnorm = ((double)n / lg->L) * ((double)n / lg->L);
  lg->inv_n2 = 1.0 / ((double)n * n);
  lg->variance = variance;
  lg->n_canon = (h + 1) * (h + 2) / 2;
  for (int i = 0; i < nb; i++)
    for (int j = i; j < nb; j++) {
      int p = jade_pair_index(nb, i, j);
      lg->pi[p] = i;
      lg->pj[p] = j;
    }
  size_t npix = (size_t)n * n, nmodes = (size_t)n * lg->nc, ncan = (size_t)lg->n_canon;
  lg->nmodes = nmodes;
  lg->rstride = (npix + 7) & ~(size_t)7;
  lg->wcol = malloc(sizeof(double) * lg->nc);
  lg->imode = calloc(ncan, sizeof(int));
  lg->iseg = calloc(ncan, sizeof(int));
  lg->it = calloc(ncan, sizeof(double));
  lg->pc = calloc(ncan * lg->np, sizeof(double));
  lg->xic = calloc(ncan * lg->np, sizeof(double));
  lg->scale = calloc((size_t)lg->np, sizeof(double));
  lg->qfp = calloc((size_t)lg->np, sizeof(double));
  lg->pg = calloc(ncan * lg->np, sizeof(double));
  lg->evec = calloc(ncan * nb * nb, sizeof(double));
  lg->eval = calloc(ncan * nb, sizeof(double));
  lg->root = calloc(ncan * nb * nb, sizeof(double));
  lg->rbuf = fftw_malloc(sizeof(double) * lg->rstride * nb);
  lg->wk = fftw_malloc(sizeof(fftw_complex) * nmodes * nb);
  lg->ck = fftw_malloc(sizeof(fftw_complex) * nmodes * nb);
  lg->g = malloc(sizeof(double) * npix * nb);
  lg->em1 = malloc(sizeof(double) * npix * nb);
  lg->gbar = malloc(sizeof(double) * npix * nb);
  lg->rbar = calloc(ncan * nb * nb, sizeof(double));
  lg->pgbar = calloc(ncan * lg->np, sizeof(double));
  lg->cwork = calloc(ncan, sizeof(double));
  if (!lg->wcol ||
      !lg->imode || !lg->iseg || !lg->it || !lg->pc || !lg->xic || !lg->scale || !lg->qfp || !lg->pg ||
      !lg->evec || !lg->eval || !lg->root || !lg->rbuf || !lg->wk || !lg->ck || !lg->g || !lg->em1 ||
      !lg->gbar || !lg->rbar || !lg->pgbar || !lg->cwork) {
    jade_lngrad_free(lg);
    return jade_error(JADE_ERR_NOMEM, "lognormal gradient: out of memory for %d bins of %d x %d", nb, n, n);
  }
  if ((st = jade_mode_classes_init(&lg->mc, g))) {
    jade_lngrad_free(lg);
    return st;
  }
  for (int x = 0; x < lg->nc; x++) lg->wcol[x] = (x == 0 || x == h) ? 1.0 : 2.0;
#pragma omp critical(jade_fftw_plan)
  {
    lg->r2c = fftw_plan_dft_r2c_2d(n, n, lg->rbuf, lg->ck, FFTW_ESTIMATE);
    lg->c2r = fftw_plan_dft_c2r_2d(n, n, lg->ck, lg->rbuf, FFTW_ESTIMATE);
  }
  if (!lg->r2c || !lg->c2r) {
    jade_lngrad_free(lg);
    return jade_error(JADE_ERR_INTERNAL, "lognormal gradient: FFTW could not plan %d x %d transforms", n, n);
  }
  *out = lg;
  return JADE_OK;
}

/* Eigen-decomposition of the symmetric m x m matrix a (full storage, not modified) by cyclic
 * Jacobi rotations (Golub & Van Loan, Matrix Computations, 4th ed., Sec. 8.5.2-8.5.3),
 * started from the orthogonal basis in v (warm start: the previous class's eigenvectors, so
 * the rotated matrix is nearly diagonal). On return v holds the eigenvectors (columns) and s
 * the eigenvalues. */
static void eigen_sym(int m, const double *a, double *v, double *s) {
  double b[LG_MAX_BINS * LG_MAX_BINS], t[LG_MAX_BINS * LG_MAX_BINS];
  for (int i = 0; i < m; i++) /* t = a v */
    for (int j = 0; j < m; j++) {
      double acc = 0.0;
      for (int k = 0; k < m; k++) acc += a[i * m + k] * v[k * m + j];
      t[i * m + j] = acc;
    }
  for (int i = 0; i < m; i++) /* b = v^T t, symmetrised */
    for (int j = i; j < m; j++) {
      double acc = 0.0;
      for (int k = 0; k < m; k++) acc += v[k * m + i] * t[k * m + j];
      b[i * m + j] = acc;
    }
  for (int i = 0; i < m; i++)
    for (int j = 0; j < i; j++) b[i * m + j] = b[j * m + i];
  for (int sweep = 0; sweep < 80; sweep++) {
    double off = 0.0, tot = 0.0;
    for (int i = 0; i < m; i++) {
      tot += b[i * m + i] * b[i * m + i];
      for (int j = i + 1; j < m; j++) off += 2.0 * b[i * m + j] * b[i * m + j];
    }
    tot += off;
    /* converged when the off-diagonal part is 1e-13 of the matrix (eigenvalues then carry
     * errors ~1e-26 relative, eigenvectors ~1e-13) */
    if (off <= 1e-26 * tot) break;
    for (int p = 0; p < m - 1; p++)
      for (int q = p + 1; q < m; q++) {
        double bpq = b[p * m + q];
        /* skip rotations below rounding of the diagonal (threshold Jacobi, G&VL Sec. 8.5.4) */
        if (fabs(bpq) <= 1e-17 * (fabs(b[p * m + p]) + fabs(b[q * m + q]))) continue;
        /* rotation zeroing b_pq: tau = (b_qq - b_pp) / (2 b_pq), t = smaller root of
         * t^2 + 2 tau t - 1 = 0 */
        double tau = (b[q * m + q] - b[p * m + p]) / (2.0 * bpq);
        double tn = (tau >= 0.0 ? 1.0 : -1.0) / (fabs(tau) + sqrt(1.0 + tau * tau));
        double cs = 1.0 / sqrt(1.0 + tn * tn), sn = tn * cs;
        for (int k = 0; k < m; k++) { /* b <- b J (columns p, q) */
          double x = b[k * m + p], y = b[k * m + q];
          b[k * m + p] = cs * x - sn * y;
          b[k * m + q] = sn * x + cs * y;
        }
        for (int k = 0; k < m; k++) { /* b <- J^T b (rows p, q) */
          double x = b[p * m + k], y = b[q * m + k];
          b[p * m + k] = cs * x - sn * y;
          b[q * m + k] = sn * x + cs * y;
        }
        b[p * m + q] = b[q * m + p] = 0.0;
        for (int k = 0; k < m; k++) { /* v <- v J */
          double x = v[k * m + p], y = v[k * m + q];
          v[k * m + p] = cs * x - sn * y;
          v[k * m + q] = sn * x + cs * y;
        }
      }
  }
  for (int i = 0; i < m; i++) s[i] = b[i * m + i];
}

/* Interpolated C of one class from table column y (stride np) with the rules of
 * jade_cl_interp (the same expressions; ly[k] = ln|y_k| precomputed once per column). */
static double interp_value(const jade_lngrad *lg, int c, const double *y, const double *ly, int np) {
  int mode = lg->imode[c], s = lg->iseg[c];
  if (mode == 0) return y[0];
  if (mode == 1) return 0.0;
  if (mode == 2) return y[(size_t)s * np];
  double ya = y[(size_t)s * np], yb = y[(size_t)(s + 1) * np], t = lg->it[c];
  if (ya > 0.0 && yb > 0.0) return exp(ly[s] + t * (ly[s + 1] - ly[s]));
  if (ya < 0.0 && yb < 0.0) return -exp(ly[s] + t * (ly[s + 1] - ly[s]));
  return ya + t * (yb - ya);
}

/* dv/dy at the (at most two) table nodes *ka, *kb (-1 when unused) of class c, given the
 * interpolated value v: log-log v (1-t) / y_a and v t / y_b, linear 1-t and t. */
static void interp_weights(const jade_lngrad *lg, int c, const double *y, int np, double v, int *ka, int *kb,
                           double *dya, double *dyb) {
  int mode = lg->imode[c], s = lg->iseg[c];
  *ka = *kb = -1;
  *dya = *dyb = 0.0;
  if (mode == 0 || mode == 2) {
    *ka = mode == 0 ? 0 : s;
    *dya = 1.0;
    return;
  }
  if (mode == 1) return;
  double ya = y[(size_t)s * np], yb = y[(size_t)(s + 1) * np], t = lg->it[c];
  *ka = s;
  *kb = s + 1;
  if ((ya > 0.0 && yb > 0.0) || (ya < 0.0 && yb < 0.0)) {
    *dya = (1.0 - t) * v / ya;
    *dyb = t * v / yb;
  } else {
    *dya = 1.0 - t;
    *dyb = t;
  }
}

jade_status jade_lngrad_prepare(jade_lngrad *lg, int n_ell, const double *ell, const double *cl,
                                const double *lambda) {
  if (!lg) return jade_error(JADE_ERR_INVALID, "lognormal gradient prepare: NULL object");
  lg->prepared = 0;
  lg->have_field = 0;
  int n = lg->n, nc = lg->nc, nb = lg->nb, np = lg->np, h = lg->h, ncan = lg->n_canon;
  if (n_ell < 2 || !ell || !cl || !lambda)
    return jade_error(JADE_ERR_INVALID, "lognormal gradient prepare: need a C_ell table of >= 2 multipoles (n_ell = %d)", n_ell);
  for (int k = 0; k < n_ell; k++) {
    if (!isfinite(ell[k]) || !(ell[k] > 0.0) || (k && !(ell[k] > ell[k - 1])))
      return jade_error(JADE_ERR_INVALID, "lognormal gradient prepare: ell[%d] = %g (need finite, > 0, increasing)", k, ell[k]);
    for (int p = 0; p < np; p++)
      if (!isfinite(cl[(size_t)k * np + p]))
        return jade_error(JADE_ERR_NUMERIC, "lognormal gradient prepare: cl[ell %d, pair %d] = %g", k, p, cl[(size_t)k * np + p]);
    for (int i = 0; i < nb; i++)
      if (cl[(size_t)k * np + jade_pair_index(nb, i, i)] < 0.0)
        return jade_error(JADE_ERR_INVALID, "lognormal gradient prepare: auto C_ell of bin %d at ell = %g is negative", i, ell[k]);
  }
  for (int i = 0; i < nb; i++) {
    if (!isfinite(lambda[i]) || !(lambda[i] > 0.0))
      return jade_error(JADE_ERR_INVALID, "lognormal gradient prepare: lambda[%d] = %g must be finite and > 0", i, lambda[i]);
    lg->lambda[i] = lambda[i];
  }
  if (n_ell > lg->cap_ell) {
    double *e = realloc(lg->ell, sizeof(double) * n_ell);
    if (e) lg->ell = e;
    double *c = realloc(lg->cl, sizeof(double) * n_ell * np);
    if (c) lg->cl = c;
    double *l = realloc(lg->lcl, sizeof(double) * n_ell);
    if (l) lg->lcl = l;
    if (!e || !c || !l) return jade_error(JADE_ERR_NOMEM, "lognormal gradient prepare: out of memory for %d multipoles", n_ell);
    lg->cap_ell = n_ell;
  }
  lg->n_ell = n_ell;
  memcpy(lg->ell, ell, sizeof(double) * n_ell);
  memcpy(lg->cl, cl, sizeof(double) * n_ell * np);
  /* Interpolation nodes per class (jade_cl_interp's rules). */
  for (int c = 1; c < ncan; c++) {
    double l = lg->mc.kl[c];
    if (l <= ell[0]) {
      lg->imode[c] = 0;
    } else if (l > ell[n_ell - 1]) {
      lg->imode[c] = 1;
    } else {
      int a = 0, b = n_ell - 1;
      while (b - a > 1) {
        int m = (a + b) / 2;
        if (ell[m] < l) a = m;
        else b = m;
      }
      if (l == ell[b]) {
        lg->imode[c] = 2;
        lg->iseg[c] = b;
      } else {
        double la = log(ell[a]);
        lg->imode[c] = 3;
        lg->iseg[c] = a;
        lg->it[c] = (log(l) - la) / (log(ell[b]) - la);
      }
    }
  }
  const double inv = lg->inv_n2;
  double *xr = lg->rbuf;
  fftw_complex *xk = lg->ck;
  for (int p = 0; p < np; p++) {
    int i = lg->pi[p], j = lg->pj[p];
    double *pc = lg->pc + (size_t)p * ncan, *xc = lg->xic + (size_t)p * ncan;
    for (int k = 0; k < n_ell; k++) {
      double y = cl[(size_t)k * np + p];
      lg->lcl[k] = y != 0.0 ? log(fabs(y)) : 0.0;
    }
    pc[0] = 0.0;
    for (int c = 1; c < ncan; c++) pc[c] = lg->pnorm * interp_value(lg, c, cl + p, lg->lcl, np);
    for (size_t m = 0; m < lg->nmodes; m++) {
      xk[m][0] = pc[lg->mc.canon_k[m]];
      xk[m][1] = 0.0;
    }
    fftw_execute_dft_c2r(lg->c2r, xk, xr);
    for (int c = 0; c < ncan; c++) xc[c] = xr[lg->mc.rep_x[c]] * inv;
    /* The fixed point a = exp(C(a)), C(a) = (1/N^2) sum_c m_c ln(1 + a xi_c / ll), of
     * lognormal.c step 2, by Newton's method on ln a - C(a) (derivative (1 - q(a)) / a): the
     * same root to ~1e-16 in 2-4 steps instead of the plain iteration's 5-10. */
    double ll = lambda[i] * lambda[j], sa = 1.0;
    for (int iter = 0; iter < 60 && sa > 0.0; iter++) {
      double s = 0.0, q = 0.0;
      for (int c = 0; c < ncan; c++) {
        double u = sa * xc[c] / ll;
        if (!(1.0 + u > 0.0)) {
          sa = -1.0;
          break;
        }
        s += lg->mc.mult[c] * log1p(u);
        q += lg->mc.mult[c] * u / (1.0 + u);
      }
      if (sa < 0.0) break;
      double g = log(sa) - s * inv, step = sa * g / (1.0 - q * inv), next = sa - step;
      if (!(next > 0.5 * sa)) next = 0.5 * sa; /* (q < 1 for any field that exists; safeguard) */
      int done = fabs(next - sa) <= 1e-15 * sa;
      sa = next;
      if (done) break;
    }
    if (!(sa > 0.0) || !isfinite(sa))
      return jade_error(JADE_ERR_NUMERIC,
                        "lognormal gradient prepare: bins (%d,%d): the correlation falls below -lambda_i lambda_j = %g "
                        "somewhere on the grid: no log-normal field has it", i, j, -ll);
    lg->scale[p] = sa;
    double q = 0.0, *xg = lg->cwork;
    for (int c = 0; c < ncan; c++) {
      double u = sa * xc[c] / ll;
      xg[c] = log1p(u);
      q += lg->mc.mult[c] * u / (1.0 + u);
    }
    lg->qfp[p] = q * inv;
    for (size_t m = 0; m < (size_t)n * n; m++) xr[m] = xg[lg->mc.canon_x[m]];
    fftw_execute_dft_r2c(lg->r2c, xr, xk);
    lg->pg[p] = 0.0;
    for (int c = 1; c < ncan; c++) lg->pg[(size_t)c * np + p] = xk[lg->mc.rep_k[c]][0];
  }
  /* Symmetric roots, negative eigenvalues clipped. */
  double vprev[LG_MAX_BINS * LG_MAX_BINS], amat[LG_MAX_BINS * LG_MAX_BINS];
  for (int a = 0; a < nb * nb; a++) vprev[a] = (a % (nb + 1)) == 0;
  double tr_clip = 0.0, tr_all = 0.0;
  for (int ci = 0; ci < ncan; ci++) {
    /* classes by |k|: neighbours have nearly the same P_G(k), so each eigen-decomposition
     * starts from the previous basis */
    int c = lg->mc.korder[ci];
    const double *pg = lg->pg + (size_t)c * np;
    double *v = lg->evec + (size_t)c * nb * nb, *s = lg->eval + (size_t)c * nb, *r = lg->root + (size_t)c * nb * nb;
    for (int a = 0; a < nb; a++)
      for (int b = 0; b < nb; b++) amat[a * nb + b] = pg[jade_pair_index(nb, a, b)];
    memcpy(v, vprev, sizeof(double) * nb * nb);
    if (nb == 1) {
      v[0] = 1.0;
      s[0] = amat[0];
    } else {
      eigen_sym(nb, amat, v, s);
      memcpy(vprev, v, sizeof(double) * nb * nb);
    }
    double f[LG_MAX_BINS];
    for (int a = 0; a < nb; a++) {
      f[a] = s[a] > 0.0 ? sqrt(s[a]) : 0.0;
      if (s[a] < 0.0) tr_clip -= lg->mc.mult[c] * s[a];
      tr_all += lg->mc.mult[c] * fabs(amat[a * nb + a]);
    }
    for (int a = 0; a < nb; a++)
      for (int b = a; b < nb; b++) {
        double acc = 0.0;
        for (int k = 0; k < nb; k++) acc += v[a * nb + k] * f[k] * v[b * nb + k];
        r[a * nb + b] = r[b * nb + a] = acc;
      }
  }
  for (int a = 0; a < nb; a++) {
    double acc = 0.0;
    for (int c = 0; c < ncan; c++) {
      const double *r = lg->root + (size_t)c * nb * nb;
      double s2 = 0.0;
      for (int k = 0; k < nb; k++) s2 += r[a * nb + k] * r[a * nb + k];
      acc += lg->mc.mult[c] * s2;
    }
    lg->var[a] = acc * inv;
    if (!isfinite(lg->var[a]))
      return jade_error(JADE_ERR_NUMERIC, "lognormal gradient prepare: Gaussian variance of bin %d is %g", a, lg->var[a]);
  }
  (void)nc;
  (void)h;
  lg->clipped = tr_all > 0.0 ? tr_clip / tr_all : 0.0;
  lg->prepared = 1;
  return JADE_OK;
}

jade_status jade_lngrad_forward(jade_lngrad *lg, const double *z, double *kappa) {
  if (!lg || !z || !kappa) return jade_error(JADE_ERR_INVALID, "lognormal gradient forward: NULL argument");
  if (!lg->prepared) return jade_error(JADE_ERR_INVALID, "lognormal gradient forward: prepare has not succeeded");
  lg->have_field = 0;
  int n = lg->n, nb = lg->nb;
  size_t npix = (size_t)n * n, nm = lg->nmodes;
  for (int b = 0; b < nb; b++) {
    double *r = lg->rbuf + b * lg->rstride;
    memcpy(r, z + b * npix, sizeof(double) * npix);
    fftw_execute_dft_r2c(lg->r2c, r, lg->wk + b * nm);
  }
  for (size_t m = 0; m < nm; m++) {
    const double *r = lg->root + (size_t)lg->mc.canon_k[m] * nb * nb;
    for (int i = 0; i < nb; i++) {
      double re = 0.0, im = 0.0;
      for (int j = 0; j < nb; j++) {
        re += r[i * nb + j] * lg->wk[j * nm + m][0];
        im += r[i * nb + j] * lg->wk[j * nm + m][1];
      }
      lg->ck[i * nm + m][0] = re;
      lg->ck[i * nm + m][1] = im;
    }
  }
  const double inv = lg->inv_n2;
  for (int i = 0; i < nb; i++) {
    double *r = lg->rbuf + i * lg->rstride, *g = lg->g + i * npix, *e = lg->em1 + i * npix;
    fftw_execute_dft_c2r(lg->c2r, lg->ck + i * nm, r);
    for (size_t m = 0; m < npix; m++) g[m] = r[m] * inv;
    double v = lg->var[i];
    if (lg->variance == JADE_LN_VARIANCE_EMPIRICAL) {
      double s = 0.0, s2 = 0.0;
      for (size_t m = 0; m < npix; m++) s += g[m];
      double mu = s / (double)npix;
      for (size_t m = 0; m < npix; m++) s2 += (g[m] - mu) * (g[m] - mu);
      v = s2 / (double)npix;
    }
    lg->vused[i] = v;
    double lam = lg->lambda[i], hv = 0.5 * v;
    double *out = kappa + i * npix;
    for (size_t m = 0; m < npix; m++) {
      e[m] = expm1(g[m] - hv);
      out[m] = lam * e[m];
      if (!isfinite(out[m]))
        return jade_error(JADE_ERR_NUMERIC, "lognormal gradient forward: bin %d pixel %zu is not finite (g = %g)", i, m, g[m]);
    }
  }
  lg->have_field = 1;
  return JADE_OK;
}

/* Reverse mode of R = f(P), f(s) = sqrt(max(s, 0)) applied to the eigenvalues of the
 * symmetric m x m matrix P = V diag(s) V^T (Daleckii & Krein 1965; Higham 2008, Thm. 3.11):
 * Pbar = V (F o (V^T Rbar V)) V^T, F_ab the divided differences of f (f'(s_a) on the
 * diagonal). Writes the gradient with respect to the pair values of P (the entries (i, j) and
 * (j, i) share one value) into pbar[jade_pair_index(m, i, j)]. */
static void sqrt_vjp(int m, const double *v, const double *s, const double *rbar, double *pbar) {
  double t[LG_MAX_BINS * LG_MAX_BINS], u[LG_MAX_BINS * LG_MAX_BINS], sq[LG_MAX_BINS];
  for (int a = 0; a < m; a++) sq[a] = s[a] > 0.0 ? sqrt(s[a]) : 0.0;
  for (int a = 0; a < m; a++) /* t = Rbar V */
    for (int b = 0; b < m; b++) {
      double acc = 0.0;
      for (int k = 0; k < m; k++) acc += rbar[a * m + k] * v[k * m + b];
      t[a * m + b] = acc;
    }
  for (int a = 0; a < m; a++) /* u = F o (V^T t) */
    for (int b = 0; b < m; b++) {
      double acc = 0.0;
      for (int k = 0; k < m; k++) acc += v[k * m + a] * t[k * m + b];
      double f;
      if (a == b) f = s[a] > 0.0 ? 0.5 / sq[a] : 0.0;
      else if (s[a] > 0.0 && s[b] > 0.0) f = 1.0 / (sq[a] + sq[b]);
      else if (s[a] > 0.0) f = sq[a] / (s[a] - s[b]);
      else if (s[b] > 0.0) f = sq[b] / (s[b] - s[a]);
      else f = 0.0;
      u[a * m + b] = f * acc;
    }
  for (int a = 0; a < m; a++) /* t = u V^T */
    for (int b = 0; b < m; b++) {
      double acc = 0.0;
      for (int k = 0; k < m; k++) acc += u[a * m + k] * v[b * m + k];
      t[a * m + b] = acc;
    }
  for (int i = 0; i < m; i++) /* Pbar = V t, folded onto the pairs */
    for (int j = i; j < m; j++) {
      double pij = 0.0, pji = 0.0;
      for (int k = 0; k < m; k++) {
        pij += v[i * m + k] * t[k * m + j];
        pji += v[j * m + k] * t[k * m + i];
      }
      pbar[jade_pair_index(m, i, j)] = i == j ? pij : pij + pji;
    }
}

jade_status jade_lngrad_backward(jade_lngrad *lg, const double *kappa_bar, double *z_bar,
                                 double *cl_bar, double *lambda_bar) {
  if (!lg || !kappa_bar) return jade_error(JADE_ERR_INVALID, "lognormal gradient backward: NULL argument");
  if (!lg->have_field) return jade_error(JADE_ERR_INVALID, "lognormal gradient backward: no forward pass to reverse");
  if (cl_bar && !lambda_bar) return jade_error(JADE_ERR_INVALID, "lognormal gradient backward: cl_bar needs lambda_bar");
  const int n = lg->n, nb = lg->nb, np = lg->np, ncan = lg->n_canon, nc = lg->nc;
  const size_t npix = (size_t)n * n, nm = lg->nmodes;
  const double inv = lg->inv_n2;
  double vbar[LG_MAX_BINS], lbar[LG_MAX_BINS];
  /* kappa_i = lambda_i expm1(g_i - v_i / 2) */
  for (int i = 0; i < nb; i++) {
    const double *kb = kappa_bar + i * npix, *e = lg->em1 + i * npix, *g = lg->g + i * npix;
    double *gb = lg->gbar + i * npix, lam = lg->lambda[i], sl = 0.0, sg = 0.0;
    for (size_t m = 0; m < npix; m++) {
      sl += kb[m] * e[m];
      gb[m] = kb[m] * lam * (e[m] + 1.0);
      sg += gb[m];
    }
    lbar[i] = sl;
    vbar[i] = -0.5 * sg;
    if (lg->variance == JADE_LN_VARIANCE_EMPIRICAL) {
      double mu = 0.0;
      for (size_t m = 0; m < npix; m++) mu += g[m];
      mu /= (double)npix;
      double f = vbar[i] * 2.0 / (double)npix;
      for (size_t m = 0; m < npix; m++) gb[m] += f * (g[m] - mu);
      vbar[i] = 0.0;
    }
  }
  /* G = fft2(gbar) */
  for (int i = 0; i < nb; i++) {
    double *r = lg->rbuf + i * lg->rstride;
    memcpy(r, lg->gbar + i * npix, sizeof(double) * npix);
    fftw_execute_dft_r2c(lg->r2c, r, lg->ck + i * nm);
  }
  const int want_theory = cl_bar != NULL;
  if (want_theory) memset(lg->rbar, 0, sizeof(double) * ncan * nb * nb);
  for (size_t m = 0; m < nm; m++) {
    int c = lg->mc.canon_k[m];
    const double *r = lg->root + (size_t)c * nb * nb;
    if (want_theory) {
      double w = lg->wcol[m % nc] * inv, *rb = lg->rbar + (size_t)c * nb * nb;
      for (int i = 0; i < nb; i++) {
        double gre = lg->ck[i * nm + m][0], gim = lg->ck[i * nm + m][1];
        for (int j = 0; j < nb; j++) rb[i * nb + j] += w * (lg->wk[j * nm + m][0] * gre + lg->wk[j * nm + m][1] * gim);
      }
    }
    if (z_bar) { /* colour G in place: R(k) G(k) */
      double tre[LG_MAX_BINS], tim[LG_MAX_BINS];
      for (int i = 0; i < nb; i++) {
        double re = 0.0, im = 0.0;
        for (int j = 0; j < nb; j++) {
          re += r[i * nb + j] * lg->ck[j * nm + m][0];
          im += r[i * nb + j] * lg->ck[j * nm + m][1];
        }
        tre[i] = re;
        tim[i] = im;
      }
      for (int i = 0; i < nb; i++) {
        lg->ck[i * nm + m][0] = tre[i];
        lg->ck[i * nm + m][1] = tim[i];
      }
    }
  }
  if (z_bar)
    for (int i = 0; i < nb; i++) {
      double *r = lg->rbuf + i * lg->rstride, *zb = z_bar + i * npix;
      fftw_execute_dft_c2r(lg->c2r, lg->ck + i * nm, r);
      for (size_t m = 0; m < npix; m++) zb[m] = r[m] * inv;
    }
  if (!want_theory) return JADE_OK;

  memset(cl_bar, 0, sizeof(double) * (size_t)lg->n_ell * np);
  for (int i = 0; i < nb; i++) lambda_bar[i] = lbar[i];
  /* theory variance v_i = (1/N^2) sum_c m_c [R_c^2]_ii */
  if (lg->variance == JADE_LN_VARIANCE_THEORY)
    for (int c = 0; c < ncan; c++) {
      const double *r = lg->root + (size_t)c * nb * nb;
      double *rb = lg->rbar + (size_t)c * nb * nb, f = lg->mc.mult[c] * inv;
      for (int a = 0; a < nb; a++)
        for (int b = 0; b < nb; b++) rb[a * nb + b] += f * r[b * nb + a] * (vbar[a] + vbar[b]);
    }
  /* Daleckii-Krein through the clipped square root. */
  for (int c = 0; c < ncan; c++) {
    double *pgb = lg->pgbar + (size_t)c * np;
    if (c == 0) {
      for (int p = 0; p < np; p++) pgb[p] = 0.0;
      continue;
    }
    sqrt_vjp(nb, lg->evec + (size_t)c * nb * nb, lg->eval + (size_t)c * nb, lg->rbar + (size_t)c * nb * nb, pgb);
  }
  double *xr = lg->rbuf;
  fftw_complex *xk = lg->ck;
  double *xgb = lg->cwork;
  for (int p = 0; p < np; p++) {
    int i = lg->pi[p], j = lg->pj[p];
    /* P_G = Re fft2(xi_G): xgbar_c = sum_{x in c} c2r(Y)(x) */
    for (size_t m = 0; m < nm; m++) {
      int c = lg->mc.canon_k[m];
      xk[m][0] = c ? lg->pgbar[(size_t)c * np + p] / lg->mc.mult[c] : 0.0;
      xk[m][1] = 0.0;
    }
    fftw_execute_dft_c2r(lg->c2r, xk, xr);
    for (int c = 0; c < ncan; c++) xgb[c] = 0.0;
    for (size_t m = 0; m < npix; m++) xgb[lg->mc.canon_x[m]] += xr[m];
    /* xi_G = ln(1 + a xi / ll) with the fixed point a */
    const double *xc = lg->xic + (size_t)p * ncan;
    double ll = lg->lambda[i] * lg->lambda[j], sa = lg->scale[p], q = lg->qfp[p], S = 0.0;
    for (int c = 0; c < ncan; c++) {
      double u = sa * xc[c] / ll;
      S += xgb[c] * u / (1.0 + u);
    }
    double coef = S * inv / (1.0 - q), llbar = -S / (1.0 - q);
    if (i == j) {
      lambda_bar[i] += 2.0 * llbar / lg->lambda[i];
    } else {
      lambda_bar[i] += llbar / lg->lambda[i];
      lambda_bar[j] += llbar / lg->lambda[j];
    }
    /* xibar_c -> Z(x) = xibar / (m_c N^2) */
    for (int c = 0; c < ncan; c++) {
      double u = sa * xc[c] / ll;
      double xib = (sa / ll) / (1.0 + u) * (xgb[c] + coef * lg->mc.mult[c]);
      xgb[c] = xib / lg->mc.mult[c] * inv;
    }
    for (size_t m = 0; m < npix; m++) xr[m] = xgb[lg->mc.canon_x[m]];
    fftw_execute_dft_r2c(lg->r2c, xr, xk);
    /* Pbar_c = m_c Re Zhat(k_c); P_c = (N/L)^2 C(l_c) */
    for (int c = 1; c < ncan; c++) {
      double pb = lg->mc.mult[c] * xk[lg->mc.rep_k[c]][0] * lg->pnorm;
      int ka, kb;
      double da, db;
      interp_weights(lg, c, lg->cl + p, np, lg->pc[(size_t)p * ncan + c] / lg->pnorm, &ka, &kb, &da, &db);
      if (ka >= 0) cl_bar[(size_t)ka * np + p] += pb * da;
      if (kb >= 0) cl_bar[(size_t)kb * np + p] += pb * db;
    }
  }
  return JADE_OK;
}

double jade_lngrad_gaussian_variance(const jade_lngrad *lg, int bin) {
  if (!lg || !lg->prepared || bin < 0 || bin >= lg->nb) return NAN;
  return lg->var[bin];
}

double jade_lngrad_cl_scale(const jade_lngrad *lg, int i, int j) {
  if (!lg || !lg->prepared || i < 0 || j < 0 || i >= lg->nb || j >= lg->nb) return NAN;
  return lg->scale[jade_pair_index(lg->nb, i, j)];
}

double jade_lngrad_clipped_fraction(const jade_lngrad *lg) {
  if (!lg || !lg->prepared) return NAN;
  return lg->clipped;
}

int jade_lngrad_fft_count(const jade_lngrad *lg) {
  if (!lg) return 0;
  return 4 * lg->np + 4 * lg->nb;
}
