/* Field-level posterior of the explicit log-normal model and its gradient (see
 * include/jade/fieldpost.h for the density, the parameter transforms and the three theory
 * modes).
 *
 * Gradient assembly at x = (u, z), theta = T(u):
 *   kbar     = (d - kappa) / sigma^2                                 (Gaussian pixel noise)
 *   zbar, clbar, lambdabar = reverse pass of jade_lngrad (FFT adjoints, matrix square root)
 *   grad_z   = zbar - z                                              (N(0, I) prior on z)
 *   theory part of grad_u = J^T (clbar, lambdabar), J = d(cl, lambda)/du
 *              (EXACT: central differences of the cosmology in theta, step fd_step x prior
 *               sd, times dtheta/du; EMULATOR / HYBRID: the emulator's analytic derivative)
 *   grad_u  += dlog prior/dtheta dtheta/du + dlog|dtheta/du|/du.
 *
 * Emulator: y = (ln C_ell table, ln lambda) as a polynomial (total degree D, optionally pure
 * powers up to Dp) in w = L^-1 (c - mean), c the emulator coordinates of the free parameters
 * (u, or theta for a parameter with two bounds), mean and L L^T the mean and covariance of c
 * over the design. Design points u ~ N(mean_u, spread^2 cov_u) cut at 3 spread (Philox), the
 * exact theory at each (split over threads and ranks), a Householder least-squares fit (Golub
 * & Van Loan, Matrix Computations, 4th ed., Sec. 5.3.3). ln C is smooth in theta (the
 * cosmology has no noisy adaptive steps: second differences of ln C_ell are smooth down to
 * 1e-7), so a degree-4 fit over a posterior's range is accurate to ~1e-3 (max) and ~4e-4 (rms)
 * in ln C_ell on the small preset; held-out check points report the achieved error. */
#include "jade/fieldpost.h"
#include "jade/lognormal_grad.h"
#include "jade/mcmc.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ theory ================ */

struct jade_theory {
  int nb, np, n_ell;
  double *ell;
  int is_cosmo;
  jade_sim_config sc;
  jade_survey *survey;
  double radius_arcmin;
  jade_theory_fn fn;
  void *ctx;
};

void jade_theory_free(jade_theory *t) {
  if (!t) return;
  jade_survey_free(t->survey);
  free(t->ell);
  free(t);
}

static jade_status theory_alloc(int nb, int n_ell, const double *ell, jade_theory **out) {
  jade_theory *t = calloc(1, sizeof *t);
  if (!t) return jade_error(JADE_ERR_NOMEM, "theory: out of memory");
  t->nb = nb;
  t->np = jade_n_pairs(nb);
  t->n_ell = n_ell;
  t->ell = malloc(sizeof(double) * n_ell);
  if (!t->ell) {
    free(t);
    return jade_error(JADE_ERR_NOMEM, "theory: out of memory");
  }
  memcpy(t->ell, ell, sizeof(double) * n_ell);
  *out = t;
  return JADE_OK;
}

jade_status jade_theory_create_cosmo(const jade_sim_config *sc, jade_theory **out) {
  *out = NULL;
  if (!sc) return jade_error(JADE_ERR_INVALID, "theory: NULL simulation config");
  jade_simulator *sim = NULL;
  jade_status st = jade_simulator_create(sc, &sim);
  if (st) return st;
  const double *ell, *cl;
  int n_ell = jade_simulator_cl_table(sim, &ell, &cl);
  jade_theory *t = NULL;
  st = theory_alloc(sc->geom.n_bins, n_ell, ell, &t);
  jade_simulator_free(sim);
  if (st) return st;
  t->is_cosmo = 1;
  t->sc = *sc;
  /* the simulator's top-hat: radius pixel / sqrt(pi) (jade_simulator_run) */
  t->radius_arcmin = jade_pixel_arcmin(&sc->geom) / sqrt(M_PI);
  st = jade_survey_create(&sc->survey, &t->survey);
  if (st) {
    jade_theory_free(t);
    return st;
  }
  *out = t;
  return JADE_OK;
}

jade_status jade_theory_create_fn(int n_bins, int n_ell, const double *ell, jade_theory_fn fn,
                                  void *ctx, jade_theory **out) {
  *out = NULL;
  if (n_bins < 1 || n_bins > JADE_MAX_BINS || n_ell < 2 || !ell || !fn)
    return jade_error(JADE_ERR_INVALID, "theory: need 1..%d bins, >= 2 multipoles and a function (n_bins = %d, n_ell = %d)",
                      JADE_MAX_BINS, n_bins, n_ell);
  jade_status st = theory_alloc(n_bins, n_ell, ell, out);
  if (st) return st;
  (*out)->fn = fn;
  (*out)->ctx = ctx;
  return JADE_OK;
}

int jade_theory_n_ell(const jade_theory *t) { return t ? t->n_ell : 0; }
const double *jade_theory_ell(const jade_theory *t) { return t ? t->ell : NULL; }
int jade_theory_n_bins(const jade_theory *t) { return t ? t->nb : 0; }

jade_status jade_theory_eval(const jade_theory *t, const double theta[JADE_N_THETA], double *cl,
                             double *lambda) {
  if (!t || !theta || !cl || !lambda) return jade_error(JADE_ERR_INVALID, "theory: NULL argument");
  for (int i = 0; i < JADE_N_THETA; i++)
    if (!isfinite(theta[i])) return jade_error(JADE_ERR_NUMERIC, "theory: %s = %g is not finite", jade_theta_names[i], theta[i]);
  if (!t->is_cosmo) return t->fn(t->ctx, theta, cl, lambda);
  /* exactly the cosmology part of jade_simulator_run */
  jade_cosmo_params p = jade_params_from_theta(&t->sc, theta);
  jade_cosmo *c = NULL;
  jade_status st = jade_cosmo_create(&p, &c);
  if (!st) st = jade_cosmo_limber_cl(c, t->survey, t->n_ell, t->ell, JADE_CL_CONVERGENCE, 1, cl);
  if (!st) st = jade_cosmo_lognormal_shift(c, t->survey, t->radius_arcmin, lambda);
  jade_cosmo_free(c);
  return st;
}

/* ================================================================ transforms ============ */

typedef enum { TR_AFFINE, TR_LOWER, TR_UPPER, TR_INTERVAL } transform_kind;

static transform_kind transform_of(const jade_prior1d *p) {
  int lo = isfinite(p->lo), hi = isfinite(p->hi);
  if (lo && hi) return TR_INTERVAL;
  if (lo) return TR_LOWER;
  if (hi) return TR_UPPER;
  return TR_AFFINE;
}

/* theta = T(u); *dth = dtheta/du; *lj = log|dtheta/du|; *dlj = d lj / du */
static double transform(const jade_prior1d *p, double u, double *dth, double *lj, double *dlj) {
  switch (transform_of(p)) {
  case TR_LOWER: {
    double e = p->sd * exp(u);
    *dth = e;
    *lj = log(p->sd) + u;
    *dlj = 1.0;
    return p->lo + e;
  }
  case TR_UPPER: {
    double e = p->sd * exp(u);
    *dth = -e;
    *lj = log(p->sd) + u;
    *dlj = 1.0;
    return p->hi - e;
  }
  case TR_INTERVAL: {
    double w = p->hi - p->lo, sg = u >= 0.0 ? 1.0 / (1.0 + exp(-u)) : exp(u) / (1.0 + exp(u));
    /* log sigma(u) + log(1 - sigma(u)) = -|u| - 2 log1p(exp(-|u|)) */
    *lj = log(w) - fabs(u) - 2.0 * log1p(exp(-fabs(u)));
    *dth = w * sg * (1.0 - sg);
    *dlj = 1.0 - 2.0 * sg;
    double th = p->lo + w * sg;
    return th < p->hi ? th : p->hi;
  }
  default:
    *dth = p->sd;
    *lj = log(p->sd);
    *dlj = 0.0;
    return p->mean + p->sd * u;
  }
}

/* u of theta (no check) */
static double untransform(const jade_prior1d *p, double t) {
  switch (transform_of(p)) {
  case TR_LOWER: return log((t - p->lo) / p->sd);
  case TR_UPPER: return log((p->hi - t) / p->sd);
  case TR_INTERVAL: {
    double f = (t - p->lo) / (p->hi - p->lo);
    return log(f) - log1p(-f);
  }
  default: return (t - p->mean) / p->sd;
  }
}


/* ================================================================ emulator ============== */

#define EM_MAGIC "JADEEMU1"

struct jade_emulator {
  int n_free, free_idx[JADE_N_THETA];
  int degree, pure_degree, n_terms, nb, np, n_ell, n_out;
  double spread;                             /* 1 (kept for the serialised format) */
  double range;                              /* valid for |w_k| <= range */
  jade_prior1d prior[JADE_N_THETA];          /* transforms of the free parameters */
  double mean[JADE_N_THETA];                 /* design mean of the coordinates c */
  double lchol[JADE_N_THETA * JADE_N_THETA]; /* lower Cholesky factor of their covariance */
  unsigned char *expo;                       /* n_terms x n_free exponents */
  double *coef;                              /* n_terms x n_out */
  jade_emulator_info info;
};

void jade_emulator_config_default(jade_emulator_config *cfg) {
  cfg->degree = 4;
  cfg->pure_degree = 4;
  cfg->n_design = 0;
  cfg->n_check = 24;
  cfg->spread = 1.5;
  cfg->range = 5.0;
  cfg->seed = 0;
}

void jade_emulator_free(jade_emulator *e) {
  if (!e) return;
  free(e->expo);
  free(e->coef);
  free(e);
}

/* Basis: the monomials of total degree <= D in k variables (graded order), then the pure
 * powers w_i^p, D < p <= Dp (a single parameter's stronger non-linearity, e.g. w_0 over its
 * whole prior range, at k terms per extra degree instead of C(k + p - 1, p)). */
static int count_terms(int k, int d, int dp) {
  /* C(k + d, d) + k (dp - d) */
  double c = 1.0;
  for (int i = 1; i <= d; i++) c = c * (k + i) / i;
  return (int)(c + 0.5) + (dp > d ? k * (dp - d) : 0);
}

static void fill_expo(int k, int d, int dp, unsigned char *expo) {
  int n = 0, e[JADE_N_THETA] = {0};
  for (int deg = 0; deg <= d; deg++) {
    /* all compositions of deg into k parts, lexicographic */
    for (int i = 0; i < k; i++) e[i] = 0;
    e[0] = deg;
    for (;;) {
      for (int i = 0; i < k; i++) expo[n * k + i] = (unsigned char)e[i];
      n++;
      /* next composition: find the last non-zero part before the end */
      int j = k - 2;
      while (j >= 0 && e[j] == 0) j--;
      if (j < 0) break;
      e[j]--;
      int rest = e[k - 1] + 1;
      e[k - 1] = 0;
      e[j + 1] = rest;
    }
  }
  for (int p = d + 1; p <= dp; p++)
    for (int i = 0; i < k; i++) {
      for (int j = 0; j < k; j++) expo[n * k + j] = (unsigned char)(j == i ? p : 0);
      n++;
    }
}

/* The emulator's input coordinate of one parameter: the unconstrained u, except theta itself
 * for a parameter bounded on both sides (w_0's posterior fills its prior interval, where ln C
 * is smooth in w_0 but sigmoid-shaped in logit(w_0)). *dc = dc/dtheta. */
static double em_coord(const jade_prior1d *p, double theta, double *dc) {
  if (transform_of(p) == TR_INTERVAL) {
    *dc = 1.0;
    return theta;
  }
  double u = untransform(p, theta), dth, lj, dlj;
  transform(p, u, &dth, &lj, &dlj);
  *dc = 1.0 / dth;
  return u;
}

/* w of theta (free components): whitened emulator coordinates */
static void em_whiten(const jade_emulator *e, const double *theta, double *w) {
  int k = e->n_free;
  double r[JADE_N_THETA], dc;
  for (int i = 0; i < k; i++) r[i] = em_coord(&e->prior[i], theta[e->free_idx[i]], &dc) - e->mean[i];
  for (int i = 0; i < k; i++) { /* forward substitution L w = r */
    double s = r[i];
    for (int j = 0; j < i; j++) s -= e->lchol[i * k + j] * w[j];
    w[i] = s / e->lchol[i * k + i];
  }
  for (int i = 0; i < k; i++) w[i] /= e->spread;
}

/* Within the range where the fit is trusted? (A polynomial extrapolated far from its design
 * can invent a spurious high-density region.) */
static int em_inside(const jade_emulator *e, const double *w) {
  for (int i = 0; i < e->n_free; i++)
    if (!(fabs(w[i]) <= e->range)) return 0;
  return 1;
}

/* phi[t] and, if dphi is not NULL, dphi[t * k + j] = d phi_t / d w_j */
static void em_basis(const jade_emulator *e, const double *w, double *phi, double *dphi) {
  int k = e->n_free, d = e->pure_degree > e->degree ? e->pure_degree : e->degree;
  double pw[JADE_N_THETA][16];
  for (int j = 0; j < k; j++) {
    pw[j][0] = 1.0;
    for (int p = 1; p <= d; p++) pw[j][p] = pw[j][p - 1] * w[j];
  }
  for (int t = 0; t < e->n_terms; t++) {
    const unsigned char *ex = e->expo + (size_t)t * k;
    double v = 1.0;
    for (int j = 0; j < k; j++) v *= pw[j][ex[j]];
    phi[t] = v;
    if (dphi)
      for (int j = 0; j < k; j++) {
        if (!ex[j]) {
          dphi[t * k + j] = 0.0;
          continue;
        }
        double g = ex[j] * pw[j][ex[j] - 1];
        for (int i = 0; i < k; i++)
          if (i != j) g *= pw[i][ex[i]];
        dphi[t * k + j] = g;
      }
  }
}

/* y = coef^T phi (n_out) */
static void em_outputs(const jade_emulator *e, const double *phi, double *y) {
  for (int o = 0; o < e->n_out; o++) y[o] = 0.0;
  for (int t = 0; t < e->n_terms; t++) {
    const double *c = e->coef + (size_t)t * e->n_out;
    double p = phi[t];
    for (int o = 0; o < e->n_out; o++) y[o] += p * c[o];
  }
}

/* c_bar (free, emulator coordinates) from ybar = dL/dy, with dphi at the point */
static void em_pullback(const jade_emulator *e, const double *dphi, const double *ybar, double *theta_bar) {
  int k = e->n_free;
  double wbar[JADE_N_THETA] = {0};
  for (int t = 0; t < e->n_terms; t++) {
    const double *c = e->coef + (size_t)t * e->n_out;
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0; /* four fixed accumulators: vectorised, deterministic */
    int o = 0;
    for (; o + 4 <= e->n_out; o += 4) {
      s0 += c[o] * ybar[o];
      s1 += c[o + 1] * ybar[o + 1];
      s2 += c[o + 2] * ybar[o + 2];
      s3 += c[o + 3] * ybar[o + 3];
    }
    for (; o < e->n_out; o++) s0 += c[o] * ybar[o];
    double s = (s0 + s1) + (s2 + s3);
    for (int j = 0; j < k; j++) wbar[j] += s * dphi[t * k + j];
  }
  /* w = L^-1 r / spread: rbar = L^-T wbar / spread (back substitution) */
  for (int i = k - 1; i >= 0; i--) {
    double s = wbar[i] / e->spread;
    for (int j = i + 1; j < k; j++) s -= e->lchol[j * k + i] * theta_bar[j];
    theta_bar[i] = s / e->lchol[i * k + i];
  }
}

jade_status jade_emulator_eval(const jade_emulator *e, const double theta[JADE_N_THETA], double *cl,
                               double *lambda) {
  if (!e || !theta || !cl || !lambda) return jade_error(JADE_ERR_INVALID, "emulator: NULL argument");
  double w[JADE_N_THETA], *phi = malloc(sizeof(double) * (e->n_terms + e->n_out));
  if (!phi) return jade_error(JADE_ERR_NOMEM, "emulator: out of memory");
  double *y = phi + e->n_terms;
  em_whiten(e, theta, w);
  if (!em_inside(e, w)) {
    free(phi);
    return jade_error(JADE_ERR_NUMERIC, "emulator: theta is more than %g design standard deviations from the design's centre", e->range);
  }
  em_basis(e, w, phi, NULL);
  em_outputs(e, phi, y);
  int nc = e->n_ell * e->np;
  for (int o = 0; o < nc; o++) cl[o] = exp(y[o]);
  for (int i = 0; i < e->nb; i++) lambda[i] = exp(y[nc + i]);
  free(phi);
  return JADE_OK;
}

jade_status jade_emulator_vjp(const jade_emulator *e, const double theta[JADE_N_THETA],
                              const double *cl_bar, const double *lambda_bar, double *theta_bar) {
  if (!e || !theta || !cl_bar || !lambda_bar || !theta_bar) return jade_error(JADE_ERR_INVALID, "emulator: NULL argument");
  size_t nt = (size_t)e->n_terms;
  double w[JADE_N_THETA], *buf = malloc(sizeof(double) * (nt + nt * e->n_free + 2 * (size_t)e->n_out));
  if (!buf) return jade_error(JADE_ERR_NOMEM, "emulator: out of memory");
  double *phi = buf, *dphi = phi + nt, *y = dphi + nt * e->n_free, *ybar = y + e->n_out;
  em_whiten(e, theta, w);
  em_basis(e, w, phi, dphi);
  em_outputs(e, phi, y);
  int nc = e->n_ell * e->np;
  for (int o = 0; o < nc; o++) ybar[o] = cl_bar[o] * exp(y[o]);
  for (int i = 0; i < e->nb; i++) ybar[nc + i] = lambda_bar[i] * exp(y[nc + i]);
  em_pullback(e, dphi, ybar, theta_bar);
  for (int q = 0; q < e->n_free; q++) { /* dL/dtheta = dL/dc dc/dtheta */
    double dc;
    em_coord(&e->prior[q], theta[e->free_idx[q]], &dc);
    theta_bar[q] *= dc;
  }
  free(buf);
  return JADE_OK;
}

void jade_emulator_get_info(const jade_emulator *e, jade_emulator_info *info) {
  if (e) *info = e->info;
  else memset(info, 0, sizeof *info);
}

/* Householder least squares min |A X - B| (A: m x p row-major, B: m x r), overwriting A and
 * B; X: p x r. Returns 0, or 1 when A is numerically rank deficient. */
static int lsq_householder(int m, int p, double *A, int r, double *B, double *X) {
  double *v = malloc(sizeof(double) * m);
  if (!v) return 1;
  double amax = 0.0;
  for (size_t i = 0; i < (size_t)m * p; i++) amax = fmax(amax, fabs(A[i]));
  for (int k = 0; k < p; k++) {
    double nrm = 0.0;
    for (int i = k; i < m; i++) nrm += A[(size_t)i * p + k] * A[(size_t)i * p + k];
    nrm = sqrt(nrm);
    if (!(nrm > 1e-12 * amax)) {
      free(v);
      return 1;
    }
    double alpha = A[(size_t)k * p + k] > 0.0 ? -nrm : nrm;
    for (int i = k; i < m; i++) v[i] = A[(size_t)i * p + k];
    v[k] -= alpha;
    double vv = 0.0;
    for (int i = k; i < m; i++) vv += v[i] * v[i];
    for (int j = k; j < p; j++) {
      double s = 0.0;
      for (int i = k; i < m; i++) s += v[i] * A[(size_t)i * p + j];
      s = 2.0 * s / vv;
      for (int i = k; i < m; i++) A[(size_t)i * p + j] -= s * v[i];
    }
    for (int j = 0; j < r; j++) {
      double s = 0.0;
      for (int i = k; i < m; i++) s += v[i] * B[(size_t)i * r + j];
      s = 2.0 * s / vv;
      for (int i = k; i < m; i++) B[(size_t)i * r + j] -= s * v[i];
    }
  }
  for (int j = 0; j < r; j++)
    for (int k = p - 1; k >= 0; k--) {
      double s = B[(size_t)k * r + j];
      for (int l = k + 1; l < p; l++) s -= A[(size_t)k * p + l] * X[(size_t)l * r + j];
      X[(size_t)k * r + j] = s / A[(size_t)k * p + k];
    }
  free(v);
  return 0;
}

static int inside_support(const jade_sim_config *sc, const double *theta) {
  for (int i = 0; i < JADE_N_THETA; i++)
    if (!(theta[i] > sc->prior[i].lo && theta[i] < sc->prior[i].hi)) return 0;
  return 1;
}

jade_status jade_emulator_fit(const jade_theory *t, const jade_sim_config *sc, int n_free,
                              const int *free_idx, const double *mean, const double *cov,
                              const jade_emulator_config *cfg, const jade_dist *dist,
                              jade_emulator **out) {
  *out = NULL;
  if (!t || !sc || !free_idx || !mean || !cov || !cfg) return jade_error(JADE_ERR_INVALID, "emulator fit: NULL argument");
  if (n_free < 1 || n_free > JADE_N_THETA)
    return jade_error(JADE_ERR_INVALID, "emulator fit: %d free parameters (need 1..%d)", n_free, JADE_N_THETA);
  if (cfg->degree < 1 || cfg->degree > 8 || cfg->pure_degree < 0 || cfg->pure_degree > 15 || !(cfg->spread > 0.0) ||
      !(cfg->range >= 3.0) ||
      cfg->n_design < 0 || cfg->n_check < 0)
    return jade_error(JADE_ERR_INVALID, "emulator fit: degree %d (1..8), pure degree %d (0..15), spread %g (> 0), n_design %d, n_check %d",
                      cfg->degree, cfg->pure_degree, cfg->spread, cfg->n_design, cfg->n_check);
  jade_emulator *e = calloc(1, sizeof *e);
  if (!e) return jade_error(JADE_ERR_NOMEM, "emulator fit: out of memory");
  int k = n_free;
  e->n_free = k;
  memcpy(e->free_idx, free_idx, sizeof(int) * k);
  for (int i = 0; i < k; i++) e->prior[i] = sc->prior[free_idx[i]];
  e->degree = cfg->degree;
  e->pure_degree = cfg->pure_degree > cfg->degree ? cfg->pure_degree : cfg->degree;
  e->n_terms = count_terms(k, e->degree, e->pure_degree);
  e->nb = t->nb;
  e->np = t->np;
  e->n_ell = t->n_ell;
  e->n_out = t->n_ell * t->np + t->nb;
  e->spread = 1.0;
  e->range = cfg->range;
  double lu[JADE_N_THETA * JADE_N_THETA] = {0}; /* Cholesky factor of the design covariance in u */
  if (jade_cholesky(k, cov, lu)) {
    jade_emulator_free(e);
    return jade_error(JADE_ERR_INVALID, "emulator fit: the covariance of the free parameters is not positive definite");
  }
  e->expo = malloc((size_t)e->n_terms * k);
  if (!e->expo) {
    jade_emulator_free(e);
    return jade_error(JADE_ERR_NOMEM, "emulator fit: out of memory");
  }
  fill_expo(k, e->degree, e->pure_degree, e->expo);
  int n_design = cfg->n_design ? cfg->n_design : 3 * e->n_terms, n_pts = n_design + cfg->n_check;
  if (n_design < e->n_terms + 2) {
    int nt = e->n_terms;
    jade_emulator_free(e);
    return jade_error(JADE_ERR_INVALID, "emulator fit: %d design points for %d coefficients", n_design, nt);
  }
  size_t no = (size_t)e->n_out;
  double *theta = malloc(sizeof(double) * JADE_N_THETA * n_pts), *wpt = malloc(sizeof(double) * k * n_pts);
  double *y = calloc((size_t)n_pts * (no + 1), sizeof(double));
  if (!theta || !wpt || !y) {
    free(theta);
    free(wpt);
    free(y);
    jade_emulator_free(e);
    return jade_error(JADE_ERR_NOMEM, "emulator fit: out of memory for %d design points", n_pts);
  }
  /* Design: Philox normals, cut at 3, inside the prior support. */
  double base[JADE_N_THETA];
  jade_theta_from_params(&sc->cosmo, base);
  uint64_t stream = JADE_STREAM(JADE_RNG_MCMC, (UINT64_C(1) << 47) | 1u), idx = 0;
  for (int p = 0; p < n_pts;) {
    if (idx > (uint64_t)1000 * n_pts + 100000) {
      free(theta);
      free(wpt);
      free(y);
      jade_emulator_free(e);
      return jade_error(JADE_ERR_INVALID, "emulator fit: the design region around the chains lies outside the prior support");
    }
    double w[JADE_N_THETA], *th = theta + (size_t)p * JADE_N_THETA;
    jade_rng_normal_fill(cfg->seed, stream, idx * JADE_N_THETA, (size_t)k, w);
    idx++;
    int ok = 1;
    for (int i = 0; i < k; i++) ok &= fabs(w[i]) <= 3.0;
    if (!ok) continue;
    memcpy(th, base, sizeof base);
    for (int i = 0; i < k; i++) {
      double s = mean[i], a, b, c;
      for (int j = 0; j <= i; j++) s += lu[i * k + j] * cfg->spread * w[j];
      th[free_idx[i]] = transform(&e->prior[i], s, &a, &b, &c);
    }
    if (!inside_support(sc, th)) continue;
    p++;
  }
  { /* whitening of the emulator coordinates c by the design points' mean and covariance */
    double cm[JADE_N_THETA] = {0}, cc[JADE_N_THETA * JADE_N_THETA] = {0}, cv[JADE_N_THETA], dc;
    for (int p = 0; p < n_design; p++) {
      for (int i = 0; i < k; i++) cv[i] = em_coord(&e->prior[i], theta[(size_t)p * JADE_N_THETA + free_idx[i]], &dc);
      for (int i = 0; i < k; i++) {
        cm[i] += cv[i];
        for (int j = 0; j < k; j++) cc[i * k + j] += cv[i] * cv[j];
      }
    }
    for (int i = 0; i < k; i++) cm[i] /= n_design;
    for (int i = 0; i < k; i++)
      for (int j = 0; j < k; j++) cc[i * k + j] = cc[i * k + j] / n_design - cm[i] * cm[j];
    memcpy(e->mean, cm, sizeof cm);
    if (jade_cholesky(k, cc, e->lchol)) {
      free(theta);
      free(wpt);
      free(y);
      jade_emulator_free(e);
      return jade_error(JADE_ERR_NUMERIC, "emulator fit: the design points are degenerate");
    }
    for (int p = 0; p < n_pts; p++) em_whiten(e, theta + (size_t)p * JADE_N_THETA, wpt + (size_t)p * k);
  }
  /* Exact theory at every point: rank r takes p = r mod size; y[p][no] = 1 flags a failure. */
  int rank = dist ? dist->rank : 0, size = dist ? dist->size : 1;
  int nc = t->n_ell * t->np;
#pragma omp parallel
  {
    double *cl = malloc(sizeof(double) * (nc + t->nb));
#pragma omp for schedule(dynamic, 1)
    for (int p = rank; p < n_pts; p += size) {
      double *yp = y + (size_t)p * (no + 1);
      int bad = !cl || jade_theory_eval(t, theta + (size_t)p * JADE_N_THETA, cl, cl + nc) != JADE_OK;
      for (size_t o = 0; o < no && !bad; o++) {
        if (!(cl[o] > 0.0) || !isfinite(cl[o])) bad = 1;
        else yp[o] = log(cl[o]);
      }
      if (bad) {
        for (size_t o = 0; o < no; o++) yp[o] = 0.0;
        yp[no] = 1.0;
      }
    }
    free(cl);
  }
  jade_clear_error();
  jade_status st = JADE_OK;
  if (dist && dist->size > 1) st = jade_dist_sum_double(dist, y, (size_t)n_pts * (no + 1));
  /* Least squares on the valid design points, check on the valid held-out points. */
  int m = 0, nchk = 0;
  for (int p = 0; p < n_design; p++) m += y[(size_t)p * (no + 1) + no] == 0.0;
  double *A = NULL, *B = NULL;
  if (!st && m < e->n_terms + 2)
    st = jade_error(JADE_ERR_NUMERIC, "emulator fit: only %d of %d design points have a valid cosmology (need > %d)", m,
                    n_design, e->n_terms + 1);
  if (!st) {
    A = malloc(sizeof(double) * (size_t)m * e->n_terms);
    B = malloc(sizeof(double) * (size_t)m * no);
    e->coef = malloc(sizeof(double) * (size_t)e->n_terms * no);
    if (!A || !B || !e->coef) st = jade_error(JADE_ERR_NOMEM, "emulator fit: out of memory");
  }
  if (!st) {
    int r = 0;
    for (int p = 0; p < n_design; p++) {
      const double *yp = y + (size_t)p * (no + 1);
      if (yp[no] != 0.0) continue;
      em_basis(e, wpt + (size_t)p * k, A + (size_t)r * e->n_terms, NULL);
      memcpy(B + (size_t)r * no, yp, sizeof(double) * no);
      r++;
    }
    if (lsq_householder(m, e->n_terms, A, (int)no, B, e->coef))
      st = jade_error(JADE_ERR_NUMERIC, "emulator fit: the design matrix (%d points, %d terms) is rank deficient", m, e->n_terms);
  }
  if (!st) {
    double *phi = A, *yh = B; /* reuse (m >= n_terms + 2, so both are large enough) */
    double maxc = 0.0, sumc = 0.0, maxl = 0.0;
    for (int p = n_design; p < n_pts; p++) {
      const double *yp = y + (size_t)p * (no + 1);
      if (yp[no] != 0.0) continue;
      em_basis(e, wpt + (size_t)p * k, phi, NULL);
      em_outputs(e, phi, yh);
      for (int o = 0; o < nc; o++) {
        double d = fabs(yh[o] - yp[o]);
        maxc = fmax(maxc, d);
        sumc += d * d;
      }
      for (size_t o = (size_t)nc; o < no; o++) maxl = fmax(maxl, fabs(yh[o] - yp[o]));
      nchk++;
    }
    e->info.max_err_cl = nchk ? maxc : NAN;
    e->info.rms_err_cl = nchk ? sqrt(sumc / ((double)nchk * nc)) : NAN;
    e->info.max_err_lambda = nchk ? maxl : NAN;
    e->info.n_design = m;
    e->info.n_check = nchk;
    e->info.n_terms = e->n_terms;
  }
  free(A);
  free(B);
  free(theta);
  free(wpt);
  free(y);
  if (st) {
    jade_emulator_free(e);
    return st;
  }
  *out = e;
  return JADE_OK;
}

/* serialisation: magic, ints, doubles, exponents, coefficients */
#define EM_ND (1 + JADE_N_THETA + JADE_N_THETA * JADE_N_THETA + 3 + 5 * JADE_N_THETA + 1)
size_t jade_emulator_serial_size(const jade_emulator *e) {
  return 8 + sizeof(int32_t) * (9 + JADE_N_THETA) + sizeof(double) * EM_ND +
         (size_t)e->n_terms * e->n_free + sizeof(double) * (size_t)e->n_terms * e->n_out;
}

jade_status jade_emulator_serialize(const jade_emulator *e, void *buf, size_t size) {
  if (!e || !buf || size != jade_emulator_serial_size(e)) return jade_error(JADE_ERR_INVALID, "emulator serialise: bad buffer");
  unsigned char *b = buf;
  memcpy(b, EM_MAGIC, 8);
  b += 8;
  int32_t iv[9 + JADE_N_THETA] = {e->n_free, e->degree, e->n_terms, e->nb, e->np, e->n_ell, e->n_out, e->info.n_design,
                                   e->pure_degree};
  for (int i = 0; i < JADE_N_THETA; i++) iv[9 + i] = i < e->n_free ? e->free_idx[i] : -1;
  memcpy(b, iv, sizeof iv);
  b += sizeof iv;
  double dv[EM_ND];
  for (int i = 0; i < JADE_N_THETA; i++) {
    const jade_prior1d *p = &e->prior[i];
    double *q = dv + 4 + JADE_N_THETA + JADE_N_THETA * JADE_N_THETA + 5 * i;
    q[0] = (double)p->kind;
    q[1] = p->mean;
    q[2] = p->sd;
    q[3] = p->lo;
    q[4] = p->hi;
  }
  dv[0] = e->spread;
  dv[EM_ND - 1] = e->range;
  memcpy(dv + 1, e->mean, sizeof e->mean);
  memcpy(dv + 1 + JADE_N_THETA, e->lchol, sizeof e->lchol);
  dv[1 + JADE_N_THETA + JADE_N_THETA * JADE_N_THETA] = e->info.max_err_cl;
  dv[2 + JADE_N_THETA + JADE_N_THETA * JADE_N_THETA] = e->info.rms_err_cl;
  dv[3 + JADE_N_THETA + JADE_N_THETA * JADE_N_THETA] = e->info.max_err_lambda;
  memcpy(b, dv, sizeof dv);
  b += sizeof dv;
  memcpy(b, e->expo, (size_t)e->n_terms * e->n_free);
  b += (size_t)e->n_terms * e->n_free;
  memcpy(b, e->coef, sizeof(double) * (size_t)e->n_terms * e->n_out);
  return JADE_OK;
}

jade_status jade_emulator_deserialize(jade_emulator **out, const void *buf, size_t size) {
  *out = NULL;
  const unsigned char *b = buf;
  int32_t iv[9 + JADE_N_THETA];
  double dv[EM_ND];
  if (!buf || size < 8 + sizeof iv + sizeof dv || memcmp(b, EM_MAGIC, 8))
    return jade_error(JADE_ERR_FORMAT, "emulator: not a serialised jade emulator");
  memcpy(iv, b + 8, sizeof iv);
  memcpy(dv, b + 8 + sizeof iv, sizeof dv);
  jade_emulator *e = calloc(1, sizeof *e);
  if (!e) return jade_error(JADE_ERR_NOMEM, "emulator: out of memory");
  e->n_free = iv[0];
  e->degree = iv[1];
  e->n_terms = iv[2];
  e->nb = iv[3];
  e->np = iv[4];
  e->n_ell = iv[5];
  e->n_out = iv[6];
  e->info.n_design = iv[7];
  e->pure_degree = iv[8];
  if (e->n_free < 1 || e->n_free > JADE_N_THETA || e->degree < 1 || e->degree > 8 || e->pure_degree < e->degree ||
      e->pure_degree > 15 || e->n_terms != count_terms(e->n_free, e->degree, e->pure_degree) || e->nb < 1 || e->nb > JADE_MAX_BINS ||
      e->np != jade_n_pairs(e->nb) || e->n_ell < 2 || e->n_ell > (1 << 20) || e->n_out != e->n_ell * e->np + e->nb) {
    free(e);
    return jade_error(JADE_ERR_FORMAT, "emulator: inconsistent serialised sizes");
  }
  for (int i = 0; i < e->n_free; i++) {
    e->free_idx[i] = iv[9 + i];
    if (iv[9 + i] < 0 || iv[9 + i] >= JADE_N_THETA) {
      free(e);
      return jade_error(JADE_ERR_FORMAT, "emulator: invalid free parameter index %d", (int)iv[9 + i]);
    }
  }
  e->spread = dv[0];
  e->range = dv[EM_ND - 1];
  memcpy(e->mean, dv + 1, sizeof e->mean);
  memcpy(e->lchol, dv + 1 + JADE_N_THETA, sizeof e->lchol);
  e->info.max_err_cl = dv[1 + JADE_N_THETA + JADE_N_THETA * JADE_N_THETA];
  e->info.rms_err_cl = dv[2 + JADE_N_THETA + JADE_N_THETA * JADE_N_THETA];
  e->info.max_err_lambda = dv[3 + JADE_N_THETA + JADE_N_THETA * JADE_N_THETA];
  e->info.n_terms = e->n_terms;
  for (int i = 0; i < JADE_N_THETA; i++) {
    jade_prior1d *p = &e->prior[i];
    const double *q = dv + 4 + JADE_N_THETA + JADE_N_THETA * JADE_N_THETA + 5 * i;
    if (!(q[0] == JADE_PRIOR_NORMAL || q[0] == JADE_PRIOR_TRUNCNORMAL || q[0] == JADE_PRIOR_UNIFORM)) {
      free(e);
      return jade_error(JADE_ERR_FORMAT, "emulator: invalid prior kind");
    }
    p->kind = (jade_prior_kind)(int)q[0];
    p->mean = q[1];
    p->sd = q[2];
    p->lo = q[3];
    p->hi = q[4];
  }
  if (size != jade_emulator_serial_size(e)) {
    free(e);
    return jade_error(JADE_ERR_FORMAT, "emulator: serialised size %zu does not match its header", size);
  }
  e->expo = malloc((size_t)e->n_terms * e->n_free);
  e->coef = malloc(sizeof(double) * (size_t)e->n_terms * e->n_out);
  if (!e->expo || !e->coef) {
    jade_emulator_free(e);
    return jade_error(JADE_ERR_NOMEM, "emulator: out of memory");
  }
  const unsigned char *p = b + 8 + sizeof iv + sizeof dv;
  memcpy(e->expo, p, (size_t)e->n_terms * e->n_free);
  memcpy(e->coef, p + (size_t)e->n_terms * e->n_free, sizeof(double) * (size_t)e->n_terms * e->n_out);
  *out = e;
  return JADE_OK;
}

/* ================================================================ posterior ============= */

struct jade_fieldpost {
  jade_sim_config sc;
  int n_free, free_idx[JADE_N_THETA];
  double fixed[JADE_N_THETA], sd[JADE_N_THETA], fd_step;
  int nb, n, np, n_ell;
  size_t npix, nmap;
  double *dobs, *inv_var; /* observed map; m(x) / sigma(x)^2 per pixel (0 where masked) */
  const jade_theory *theory;
  const jade_emulator *em;
  jade_fp_mode mode;
  double offset; /* added to jade_fieldpost_logp's value */
  jade_lngrad *lg;
  double *kappa, *kbar, *cl, *clbar, *clp, *clm, *ybar, *phi, *dphi, *yem;
  double lam[JADE_MAX_BINS], lambar[JADE_MAX_BINS], lamp[JADE_MAX_BINS], lamm[JADE_MAX_BINS];
  /* cache: theory + prepare of the last theta (kind 1 exact, 2 emulated, 0 none) */
  int cache_kind;
  double cache_theta[JADE_N_THETA];
  jade_fieldpost_counters cnt;
};

void jade_fieldpost_free(jade_fieldpost *fp) {
  if (!fp) return;
  jade_lngrad_free(fp->lg);
  free(fp->dobs);
  free(fp->inv_var);
  free(fp->kappa);
  free(fp->kbar);
  free(fp->cl);
  free(fp->clbar);
  free(fp->clp);
  free(fp->clm);
  free(fp->ybar);
  free(fp->phi);
  free(fp->dphi);
  free(fp->yem);
  free(fp);
}

/* The data term's inputs: d(x) and w(x) = m(x) / sigma(x)^2 (spec mcmc.md: Gaussian pixel noise;
 * a masked pixel has w = 0 and its data are not read, so they may be anything, NaN included). */
static jade_status set_data(jade_fieldpost *fp, const jade_fieldpost_setup *s) {
  size_t n_obs = 0;
  for (size_t i = 0; i < fp->nmap; i++) {
    int b = (int)(i / fp->npix);
    float m = s->mask ? s->mask[i] : 1.0f;
    if (m != 0.0f && m != 1.0f)
      return jade_error(JADE_ERR_INVALID, "field posterior: mask value %g at element %zu (expected 0 or 1)", m, i);
    fp->dobs[i] = 0.0;
    fp->inv_var[i] = 0.0;
    if (m == 0.0f) continue;
    double sigma = s->noise_map ? (double)s->noise_map[i] : s->noise[b];
    if (!(sigma > 0.0) || !isfinite(sigma))
      return jade_error(JADE_ERR_INVALID, "field posterior: noise sigma %g at element %zu (bin %d) must be finite and > 0", sigma, i, b);
    fp->dobs[i] = s->kappa_obs[i];
    if (!isfinite(fp->dobs[i]))
      return jade_error(JADE_ERR_INVALID, "field posterior: observed convergence is not finite at element %zu", i);
    fp->inv_var[i] = 1.0 / (sigma * sigma);
    n_obs++;
  }
  if (n_obs == 0) return jade_error(JADE_ERR_INVALID, "field posterior: every pixel is masked");
  return JADE_OK;
}

jade_status jade_fieldpost_create(const jade_fieldpost_setup *s, jade_fieldpost **out) {
  *out = NULL;
  if (!s || !s->sc || !s->kappa_obs || !s->noise || !s->theory)
    return jade_error(JADE_ERR_INVALID, "field posterior: NULL setup, config, observation, noise or theory");
  if (s->n_free < 1 || s->n_free > JADE_N_THETA)
    return jade_error(JADE_ERR_INVALID, "field posterior: %d free parameters (need 1..%d)", s->n_free, JADE_N_THETA);
  for (int i = 0; i < s->n_free; i++)
    if (s->free_idx[i] < 0 || s->free_idx[i] >= JADE_N_THETA || (i && s->free_idx[i] <= s->free_idx[i - 1]))
      return jade_error(JADE_ERR_INVALID, "field posterior: free parameter indices must increase within 0..%d", JADE_N_THETA - 1);
  const jade_map_geometry *g = &s->sc->geom;
  if (jade_theory_n_bins(s->theory) != g->n_bins)
    return jade_error(JADE_ERR_INVALID, "field posterior: theory has %d bins, the geometry %d", jade_theory_n_bins(s->theory), g->n_bins);
  for (int i = 0; i < g->n_bins; i++)
    if (!(s->noise[i] > 0.0) || !isfinite(s->noise[i]))
      return jade_error(JADE_ERR_INVALID, "field posterior: noise sigma of bin %d = %g must be finite and > 0", i, s->noise[i]);
  if (!(s->fd_step >= 0.0) || s->fd_step > 0.1)
    return jade_error(JADE_ERR_INVALID, "field posterior: fd_step = %g must be in [0, 0.1]", s->fd_step);
  jade_fieldpost *fp = calloc(1, sizeof *fp);
  if (!fp) return jade_error(JADE_ERR_NOMEM, "field posterior: out of memory");
  fp->sc = *s->sc;
  fp->n_free = s->n_free;
  memcpy(fp->free_idx, s->free_idx, sizeof(int) * s->n_free);
  jade_theta_from_params(&s->sc->cosmo, fp->fixed);
  for (int i = 0; i < JADE_N_THETA; i++) fp->sd[i] = s->sc->prior[i].sd;
  fp->fd_step = s->fd_step > 0.0 ? s->fd_step : 1e-4;
  fp->nb = g->n_bins;
  fp->n = g->n_pix;
  fp->np = jade_n_pairs(fp->nb);
  fp->n_ell = jade_theory_n_ell(s->theory);
  fp->npix = (size_t)fp->n * fp->n;
  fp->nmap = fp->npix * fp->nb;
  fp->theory = s->theory;
  fp->mode = JADE_FP_EXACT;
  size_t ncl = (size_t)fp->n_ell * fp->np;
  fp->dobs = malloc(sizeof(double) * fp->nmap);
  fp->inv_var = malloc(sizeof(double) * fp->nmap);
  fp->kappa = malloc(sizeof(double) * fp->nmap);
  fp->kbar = malloc(sizeof(double) * fp->nmap);
  fp->cl = malloc(sizeof(double) * ncl);
  fp->clbar = malloc(sizeof(double) * ncl);
  fp->clp = malloc(sizeof(double) * ncl);
  fp->clm = malloc(sizeof(double) * ncl);
  fp->ybar = malloc(sizeof(double) * (ncl + fp->nb));
  fp->yem = malloc(sizeof(double) * (ncl + fp->nb));
  jade_status st = JADE_OK;
  if (!fp->dobs || !fp->inv_var || !fp->kappa || !fp->kbar || !fp->cl || !fp->clbar || !fp->clp || !fp->clm || !fp->ybar || !fp->yem)
    st = jade_error(JADE_ERR_NOMEM, "field posterior: out of memory");
  if (!st) st = jade_lngrad_create(g, s->sc->variance, &fp->lg);
  if (st) {
    jade_fieldpost_free(fp);
    return st;
  }
  st = set_data(fp, s);
  if (st) {
    jade_fieldpost_free(fp);
    return st;
  }
  *out = fp;
  return JADE_OK;
}

jade_status jade_fieldpost_set_mode(jade_fieldpost *fp, jade_fp_mode mode, const jade_emulator *em) {
  if (!fp) return jade_error(JADE_ERR_INVALID, "field posterior: NULL");
  if (mode != JADE_FP_EXACT && mode != JADE_FP_EMULATOR && mode != JADE_FP_HYBRID)
    return jade_error(JADE_ERR_INVALID, "field posterior: unknown mode %d", (int)mode);
  if (mode != JADE_FP_EXACT) {
    if (!em) return jade_error(JADE_ERR_INVALID, "field posterior: the emulator and hybrid modes need an emulator");
    if (em->n_free != fp->n_free || memcmp(em->free_idx, fp->free_idx, sizeof(int) * fp->n_free) ||
        em->nb != fp->nb || em->n_ell != fp->n_ell)
      return jade_error(JADE_ERR_INVALID, "field posterior: the emulator was fitted for other free parameters or another ell table");
    size_t nt = (size_t)em->n_terms;
    double *a = realloc(fp->phi, sizeof(double) * nt), *b = realloc(fp->dphi, sizeof(double) * nt * fp->n_free);
    if (a) fp->phi = a;
    if (b) fp->dphi = b;
    if (!a || !b) return jade_error(JADE_ERR_NOMEM, "field posterior: out of memory");
  }
  fp->mode = mode;
  fp->em = mode == JADE_FP_EXACT ? NULL : em;
  fp->cache_kind = 0;
  return JADE_OK;
}

size_t jade_fieldpost_dim(const jade_fieldpost *fp) { return (size_t)fp->n_free + fp->nmap; }
int jade_fieldpost_n_free(const jade_fieldpost *fp) { return fp->n_free; }

void jade_fieldpost_get_counters(const jade_fieldpost *fp, jade_fieldpost_counters *c) { *c = fp->cnt; }

void jade_fieldpost_theta(const jade_fieldpost *fp, const double *x, double theta[JADE_N_THETA]) {
  memcpy(theta, fp->fixed, sizeof(double) * JADE_N_THETA);
  for (int k = 0; k < fp->n_free; k++) {
    double a, b, c;
    int i = fp->free_idx[k];
    theta[i] = transform(&fp->sc.prior[i], x[k], &a, &b, &c);
  }
}

jade_status jade_fieldpost_unconstrain(const jade_fieldpost *fp, const double theta[JADE_N_THETA], double *u) {
  for (int k = 0; k < fp->n_free; k++) {
    int i = fp->free_idx[k];
    const jade_prior1d *p = &fp->sc.prior[i];
    double t = theta[i];
    if (!(t > p->lo && t < p->hi) || !isfinite(t))
      return jade_error(JADE_ERR_INVALID, "%s = %g is not strictly inside its prior support (%g, %g)", jade_theta_names[i], t,
                        p->lo, p->hi);
    u[k] = untransform(p, t);
  }
  return JADE_OK;
}

/* d log prior / d theta_i */
static double prior_dlogp(const jade_prior1d *p, double t) {
  if (p->kind == JADE_PRIOR_UNIFORM) return 0.0;
  return -(t - p->mean) / (p->sd * p->sd);
}

/* Is a failure of the theory or the map construction "outside the model" (-inf)? */
static int outside_model(jade_status st) { return st == JADE_ERR_INVALID || st == JADE_ERR_NUMERIC || st == JADE_ERR_CONFIG; }

/* Theory at theta (exact or emulated) and prepare, with a one-entry cache. */
static jade_status set_theory(jade_fieldpost *fp, const double *theta, int exact) {
  int kind = exact ? 1 : 2;
  if (fp->cache_kind == kind && !memcmp(theta, fp->cache_theta, sizeof fp->cache_theta)) return JADE_OK;
  fp->cache_kind = 0;
  jade_status st;
  if (exact) {
    double t0 = jade_time_now();
    st = jade_theory_eval(fp->theory, theta, fp->cl, fp->lam);
    fp->cnt.t_theory += jade_time_now() - t0;
    fp->cnt.n_theory++;
  } else {
    const jade_emulator *e = fp->em;
    double w[JADE_N_THETA];
    em_whiten(e, theta, w);
    if (!em_inside(e, w)) return JADE_ERR_NUMERIC; /* outside the emulated model: -inf */
    em_basis(e, w, fp->phi, fp->dphi);
    em_outputs(e, fp->phi, fp->yem);
    size_t nc = (size_t)fp->n_ell * fp->np;
    for (size_t o = 0; o < nc; o++) fp->cl[o] = exp(fp->yem[o]);
    for (int i = 0; i < fp->nb; i++) fp->lam[i] = exp(fp->yem[nc + i]);
    fp->cnt.n_emulated++;
    st = JADE_OK;
  }
  if (!st) st = jade_lngrad_prepare(fp->lg, fp->n_ell, jade_theory_ell(fp->theory), fp->cl, fp->lam);
  if (!st) {
    fp->cache_kind = kind;
    memcpy(fp->cache_theta, theta, sizeof fp->cache_theta);
  }
  return st;
}

/* sum over outputs of bar * value, for the finite-difference Jacobian-vector products */
static double theory_dot(const jade_fieldpost *fp, const double *cl, const double *lam) {
  size_t nc = (size_t)fp->n_ell * fp->np;
  double s = 0.0;
  for (size_t o = 0; o < nc; o++) s += fp->clbar[o] * cl[o];
  for (int i = 0; i < fp->nb; i++) s += fp->lambar[i] * lam[i];
  return s;
}

/* thetabar_k = d/dtheta_k [clbar . cl(theta) + lambdabar . lambda(theta)] by central
 * differences of the exact theory (one-sided where one side is outside the model). */
static jade_status fd_theta_bar(jade_fieldpost *fp, const double *theta, double *tbar) {
  for (int k = 0; k < fp->n_free; k++) {
    int i = fp->free_idx[k];
    double h = fp->fd_step * fp->sd[i], tp[JADE_N_THETA], tm[JADE_N_THETA];
    memcpy(tp, theta, sizeof tp);
    memcpy(tm, theta, sizeof tm);
    tp[i] += h;
    tm[i] -= h;
    double t0 = jade_time_now();
    jade_status sp = jade_theory_eval(fp->theory, tp, fp->clp, fp->lamp);
    jade_status sm = jade_theory_eval(fp->theory, tm, fp->clm, fp->lamm);
    fp->cnt.t_theory += jade_time_now() - t0;
    fp->cnt.n_theory += 2;
    if (sp && !outside_model(sp)) return sp;
    if (sm && !outside_model(sm)) return sm;
    double f0 = theory_dot(fp, fp->cl, fp->lam);
    if (!sp && !sm)
      tbar[k] = (theory_dot(fp, fp->clp, fp->lamp) - theory_dot(fp, fp->clm, fp->lamm)) / (2.0 * h);
    else if (!sp)
      tbar[k] = (theory_dot(fp, fp->clp, fp->lamp) - f0) / h;
    else if (!sm)
      tbar[k] = (f0 - theory_dot(fp, fp->clm, fp->lamm)) / h;
    else
      return jade_error(JADE_ERR_NUMERIC, "field posterior: no finite difference of the theory in %s at %g", jade_theta_names[i], theta[i]);
  }
  jade_clear_error();
  return JADE_OK;
}

static jade_status logp_impl(jade_fieldpost *fp, const double *x, double *logp, double *grad, int force_exact) {
  double t_start = jade_time_now(), t_theory0 = fp->cnt.t_theory;
  fp->cnt.n_eval++;
  const int k = fp->n_free;
  double theta[JADE_N_THETA], dth[JADE_N_THETA], dlj[JADE_N_THETA], lj_sum = 0.0;
  memcpy(theta, fp->fixed, sizeof theta);
  for (int q = 0; q < k; q++) {
    int i = fp->free_idx[q];
    double lj;
    if (!isfinite(x[q])) {
      *logp = -INFINITY;
      goto outside;
    }
    theta[i] = transform(&fp->sc.prior[i], x[q], &dth[q], &lj, &dlj[q]);
    lj_sum += lj;
  }
  double lprior = jade_prior_logpdf(&fp->sc, theta);
  if (!isfinite(lprior)) goto outside;
  const double *z = x + k;
  int exact_value = force_exact || fp->mode != JADE_FP_EMULATOR;
  jade_status st = set_theory(fp, theta, exact_value);
  if (!st) st = jade_lngrad_forward(fp->lg, z, fp->kappa);
  if (st) {
    if (outside_model(st)) goto outside;
    return st;
  }
  double ll = 0.0, zz = 0.0;
  for (int b = 0; b < fp->nb; b++) {
    const double *d = fp->dobs + b * fp->npix, *kp = fp->kappa + b * fp->npix;
    const double *w = fp->inv_var + b * fp->npix;
    double *kb = fp->kbar + b * fp->npix, s = 0.0;
    for (size_t m = 0; m < fp->npix; m++) {
      double r = d[m] - kp[m];
      kb[m] = r * w[m];
      s += r * kb[m];
    }
    ll -= 0.5 * s;
  }
  for (size_t m = 0; m < fp->nmap; m++) zz += z[m] * z[m];
  *logp = lprior + lj_sum - 0.5 * zz + ll;
  if (!isfinite(*logp)) goto outside;
  if (grad) {
    double *gz = grad + k;
    st = jade_lngrad_backward(fp->lg, fp->kbar, gz, fp->clbar, fp->lambar);
    if (st) return st;
    for (size_t m = 0; m < fp->nmap; m++) gz[m] -= z[m];
    double tbar[JADE_N_THETA];
    if (fp->mode == JADE_FP_EXACT || force_exact) {
      st = fd_theta_bar(fp, theta, tbar);
      if (st) {
        if (outside_model(st)) goto outside;
        return st;
      }
      for (int q = 0; q < k; q++) tbar[q] *= dth[q]; /* -> d/du */
    } else {
      /* ybar = dL/dy with C = exp(y): ybar = clbar C (the theory's values: exact in hybrid) */
      const jade_emulator *e = fp->em;
      size_t nc = (size_t)fp->n_ell * fp->np;
      if (fp->mode == JADE_FP_HYBRID) { /* basis at theta (the value came from the exact theory) */
        double w[JADE_N_THETA];
        em_whiten(e, theta, w);
        em_basis(e, w, fp->phi, fp->dphi);
      }
      for (size_t o = 0; o < nc; o++) fp->ybar[o] = fp->clbar[o] * fp->cl[o];
      for (int i = 0; i < fp->nb; i++) fp->ybar[nc + i] = fp->lambar[i] * fp->lam[i];
      em_pullback(e, fp->dphi, fp->ybar, tbar); /* d/dc: c = u, or theta for two-sided bounds */
      for (int q = 0; q < k; q++)
        if (transform_of(&fp->sc.prior[fp->free_idx[q]]) == TR_INTERVAL) tbar[q] *= dth[q];
    }
    for (int q = 0; q < k; q++) {
      int i = fp->free_idx[q];
      grad[q] = tbar[q] + prior_dlogp(&fp->sc.prior[i], theta[i]) * dth[q] + dlj[q];
    }
    for (size_t m = 0; m < jade_fieldpost_dim(fp); m++)
      if (!isfinite(grad[m])) {
        fp->cnt.n_nonfinite++;
        goto outside;
      }
  }
  fp->cnt.t_maps += (jade_time_now() - t_start) - (fp->cnt.t_theory - t_theory0);
  return JADE_OK;
outside:
  jade_clear_error();
  fp->cnt.n_outside++;
  *logp = -INFINITY;
  if (grad) memset(grad, 0, sizeof(double) * jade_fieldpost_dim(fp));
  fp->cnt.t_maps += (jade_time_now() - t_start) - (fp->cnt.t_theory - t_theory0);
  return JADE_OK;
}

jade_status jade_fieldpost_logp(void *ctx, const double *x, double *logp, double *grad) {
  jade_fieldpost *fp = ctx;
  if (!fp || !x || !logp) return jade_error(JADE_ERR_INVALID, "field posterior: NULL argument");
  jade_status st = logp_impl(fp, x, logp, grad, 0);
  if (!st) *logp += fp->offset;
  return st;
}

void jade_fieldpost_set_offset(jade_fieldpost *fp, double offset) { fp->offset = offset; }
double jade_fieldpost_offset(const jade_fieldpost *fp) { return fp->offset; }

jade_status jade_fieldpost_eval_exact(jade_fieldpost *fp, const double *x, double *logp, float *kappa) {
  if (!fp || !x || !logp) return jade_error(JADE_ERR_INVALID, "field posterior: NULL argument");
  jade_status st = logp_impl(fp, x, logp, NULL, 1);
  if (st) return st;
  if (kappa) {
    if (isfinite(*logp))
      for (size_t m = 0; m < fp->nmap; m++) kappa[m] = (float)fp->kappa[m];
    else
      for (size_t m = 0; m < fp->nmap; m++) kappa[m] = NAN;
  }
  return JADE_OK;
}
