/* Sequential Monte Carlo (jade_smc_run) against exact answers: an unnormalised two-component
 * Gaussian mixture in 3 dimensions, components 10 sd apart with different shapes (HMC alone
 * never crosses), pi(x) = Z (w N(x; m1, S1) + (1 - w) N(x; m2, S2)) with Z, w known. From two
 * references q (a broad Gaussian, as a prior; a mixture with the wrong weights and shapes, as a
 * Laplace mixture at the optima), over R independent problems per case: the fraction of the
 * particles in the first component against w, the mean of a coordinate against its exact value,
 * and log Z against the exact one, each within 4.5 standard errors measured from the replicates'
 * scatter (and that error small enough to mean something); batch independence (a problem alone
 * gives the same bytes as in a batch). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/sed.h"
#include "test_util.h"

#define D 3
static const double m1[D] = {-5, 0, 1}, m2[D] = {5, 2, -1};
/* lower Cholesky factors of S1, S2 */
static const double L1[D][D] = {{1, 0, 0}, {0.5, 0.6, 0}, {0.2, -0.3, 0.8}};
static const double L2[D][D] = {{0.5, 0, 0}, {-0.4, 1.2, 0}, {0, 0.3, 0.4}};
static const double LOGZ = 3.7;

typedef struct {
  const double *w;   /* per problem */
  int broad;         /* q: N(0, 6^2 I), else the wrong mixture */
} smc_target;

/* log N(x; m, L L^T) and its gradient */
static double lgauss(const double *x, const double *m, const double L[D][D], double *g) {
  double u[D], v[D], ld = 0;
  for (int i = 0; i < D; i++) { /* L u = x - m */
    double t = x[i] - m[i];
    for (int k = 0; k < i; k++) t -= L[i][k] * u[k];
    u[i] = t / L[i][i];
    ld += log(L[i][i]);
  }
  for (int i = D - 1; i >= 0; i--) { /* L^T v = u: v = S^-1 (x - m) */
    double t = u[i];
    for (int k = i + 1; k < D; k++) t -= L[k][i] * v[k];
    v[i] = t / L[i][i];
  }
  double q = 0;
  for (int i = 0; i < D; i++) {
    q += u[i] * u[i];
    g[i] = -v[i];
  }
  return -0.5 * q - ld - 0.5 * D * log(2 * M_PI);
}

/* log(a e^la + b e^lb) with the gradient mixed by responsibility */
static double lmix(double wa, double la, const double *ga, double lb, const double *gb, double *g) {
  double A = log(wa) + la, B = log(1 - wa) + lb, m = fmax(A, B), pa = exp(A - m), pb = exp(B - m);
  for (int j = 0; j < D; j++) g[j] = (pa * ga[j] + pb * gb[j]) / (pa + pb);
  return m + log(pa + pb);
}

static jade_status parts(void *ctx, size_t n, const size_t *prob, const double *x, double *lq, double *lpi, double *gq,
                         double *gpi) {
  const smc_target *t = ctx;
  static const double Lq1[D][D] = {{1.6, 0, 0}, {0, 1.2, 0}, {0, 0, 1.5}}, Lq2[D][D] = {{1.0, 0, 0}, {0, 1.8, 0}, {0, 0, 0.9}};
  static const double Lb[D][D] = {{6, 0, 0}, {0, 6, 0}, {0, 0, 6}}, zero[D] = {0, 0, 0};
  for (size_t i = 0; i < n; i++) {
    const double *xi = x + i * D;
    double ga[D], gb[D];
    double la = lgauss(xi, m1, L1, ga), lb = lgauss(xi, m2, L2, gb);
    lpi[i] = LOGZ + lmix(t->w[prob[i]], la, ga, lb, gb, gpi + i * D);
    if (t->broad) {
      lq[i] = lgauss(xi, zero, Lb, gq + i * D);
    } else { /* equal weights, shifted means, wrong (diagonal, wider) shapes */
      double s1[D] = {m1[0] + 0.4, m1[1] - 0.3, m1[2]}, s2[D] = {m2[0] - 0.3, m2[1], m2[2] + 0.2};
      la = lgauss(xi, s1, Lq1, ga);
      lb = lgauss(xi, s2, Lq2, gb);
      lq[i] = lmix(0.5, la, ga, lb, gb, gq + i * D);
    }
  }
  return JADE_OK;
}

/* N draws from q for problem g (Philox test stream 60 + g) */
static void draw_q(const smc_target *t, size_t g, int N, double *x) {
  for (int i = 0; i < N; i++) {
    double e[D + 1];
    jade_rng_normal_fill(11, JADE_STREAM(JADE_RNG_TEST, 60 + g), (uint64_t)i * 8, D + 1, e);
    double u = jade_rng_uniform(11, JADE_STREAM(JADE_RNG_TEST, 60 + g), (uint64_t)i * 8 + 6);
    for (int j = 0; j < D; j++) {
      if (t->broad) x[i * D + j] = 6 * e[j];
      else if (u < 0.5) x[i * D + j] = (j == 0 ? m1[0] + 0.4 : j == 1 ? m1[1] - 0.3 : m1[2]) + (j == 0 ? 1.6 : j == 1 ? 1.2 : 1.5) * e[j];
      else x[i * D + j] = (j == 0 ? m2[0] - 0.3 : j == 1 ? m2[1] : m2[2] + 0.2) + (j == 0 ? 1.0 : j == 1 ? 1.8 : 0.9) * e[j];
    }
  }
}

#define R 16 /* replicates per weight */
/* ridge moves along x0 for the mutations: a profile through both means (linear between them),
 * 17 nodes over [-8, 8], q uniform over the cells; the move is exact whatever the profile */
#define RG 17
static double ridge_node[RG * D], ridge_lq[RG];
static jade_hmc_ridge ridge_make(void) {
  double h = 16.0 / (RG - 1);
  for (int k = 0; k < RG; k++) {
    double z = -8 + h * k, u = (z - m1[0]) / (m2[0] - m1[0]);
    u = u < 0 ? 0 : u > 1 ? 1 : u;
    ridge_node[k * D] = z;
    for (int j = 1; j < D; j++) ridge_node[k * D + j] = (1 - u) * m1[j] + u * m2[j];
    ridge_lq[k] = -log(RG * h);
  }
  jade_hmc_ridge r = {.coord = 0, .n_nodes = RG, .lo = -8, .hi = 8, .per_profile = 1000000, .node = ridge_node,
                      .lq = ridge_lq, .chol = NULL};
  return r;
}

static void run_case(int broad, int with_ridge, int rounds) {
  const double wv[3] = {0.8, 0.5, 0.25};
  size_t np = 3 * R;
  double w[3 * R];
  for (size_t p = 0; p < np; p++) w[p] = wv[p / R];
  smc_target t = {.w = w, .broad = broad};
  jade_smc_options o;
  jade_smc_options_default(&o);
  o.n_particles = 512;
  o.n_keep = 2;
  o.seed = 5;
  o.max_rounds = rounds;
  jade_hmc_ridge rg = ridge_make();
  if (with_ridge) o.ridge = &rg;
  int N = o.n_particles;
  double *x = malloc(np * N * D * sizeof(double));
  for (size_t p = 0; p < np; p++) draw_q(&t, p, N, x + p * N * D);
  jade_smc_stats *ss = malloc(np * sizeof(jade_smc_stats));
  CHECK_OK(jade_smc_run(parts, &t, np, D, x, &o, NULL, ss));
  for (int c = 0; c < 3; c++) {
    double f[R], mx1[R], lz[R], mf = 0, mm = 0, ml = 0, vf = 0, vm = 0, vl = 0, stg = 0, acc = 0, mr = 0;
    for (int r = 0; r < R; r++) {
      size_t p = (size_t)c * R + r;
      const double *xp = x + p * N * D;
      f[r] = mx1[r] = 0;
      for (int i = 0; i < N; i++) {
        f[r] += (xp[i * D] < 0) / (double)N;
        mx1[r] += xp[i * D + 1] / N;
      }
      lz[r] = ss[p].log_z;
      mf += f[r] / R, mm += mx1[r] / R, ml += lz[r] / R, stg += ss[p].n_stages / (double)R, acc += ss[p].accept / R;
      mr += ss[p].mutation_rounds / R;
    }
    for (int r = 0; r < R; r++) {
      vf += (f[r] - mf) * (f[r] - mf) / (R - 1);
      vm += (mx1[r] - mm) * (mx1[r] - mm) / (R - 1);
      vl += (lz[r] - ml) * (lz[r] - ml) / (R - 1);
    }
    double sf = sqrt(vf / R), sm = sqrt(vm / R), sl = sqrt(vl / R);
    double ex1 = wv[c] * m1[1] + (1 - wv[c]) * m2[1];
    printf("smc (%s q%s) w %.2f: fraction %.4f +- %.4f, E x1 %.4f +- %.4f (exact %.4f), log Z %.4f +- %.4f (exact %.4f), "
           "%.1f stages, acceptance %.2f, %.2f mutation rounds per stage\n",
           broad ? "broad" : "mixture", with_ridge ? ", ridge moves" : "", wv[c], mf, sf, mm, sm, ex1, ml, sl, LOGZ, stg, acc, mr);
    CHECK(mr >= 1 && mr <= rounds, "smc: %g mutation rounds per stage, expected 1..%d", mr, rounds);
    CHECK(jade_test_lt_ok(fabs(mf - wv[c]), 4.5 * sf + 1e-3) && sf < 0.02, "smc weight %g vs %g (se %g)", mf, wv[c], sf);
    CHECK(jade_test_lt_ok(fabs(mm - ex1), 4.5 * sm + 1e-3) && sm < 0.05, "smc mean %g vs %g (se %g)", mm, ex1, sm);
    CHECK(jade_test_lt_ok(fabs(ml - LOGZ), 4.5 * sl + 1e-3) && sl < 0.05, "smc log Z %g vs %g (se %g)", ml, LOGZ, sl);
  }
  /* batch independence: problem 5 alone */
  double *x1 = malloc(N * D * sizeof(double));
  smc_target t1 = {.w = w + 5, .broad = broad};
  jade_smc_options o1 = o;
  o1.first_id = 5;
  draw_q(&t, 5, N, x1);
  CHECK_OK(jade_smc_run(parts, &t1, 1, D, x1, &o1, NULL, NULL));
  CHECK(!memcmp(x1, x + 5 * N * D, N * D * sizeof(double)), "smc: problem 5 alone differs from in the batch");
  free(x1);
  free(x);
  free(ss);
}

/* jade_smc_pool: exact bookkeeping on made-up runs, then 16 pools of 4 small runs (128
 * particles) of the w = 0.25 target against the exact weight and log Z */
static void test_pool(void) {
  enum { N = 8, T = 2 };
  double ch[2 * T * N], out[T * N], lz1 = 1.5, lzp, spread;
  for (int i = 0; i < 2 * T * N; i++) ch[i] = i;
  CHECK_OK(jade_smc_pool(1, N, 1, T, &lz1, ch, 1, 7, out, &lzp, &spread));
  CHECK(!memcmp(out, ch, sizeof out) && lzp == 1.5 && isnan(spread), "pool of one run: the run itself");
  double lz2[2] = {0.0, log(3.0)};
  CHECK_OK(jade_smc_pool(2, N, 1, T, lz2, ch, 1, 7, out, &lzp, &spread));
  int from1 = 0, ok = 1;
  for (int j = 0; j < N; j++) {
    from1 += out[j] >= T * N;                           /* run 1's values start at T N */
    ok &= out[N + j] == out[j] + N;                     /* a slot keeps one particle's whole chain */
  }
  CHECK(from1 == 6 && ok && fabs(lzp - log(2.0)) < 1e-15 && fabs(spread - log(3.0)) < 1e-15,
        "pool of Z = 1, 3: %d of %d slots from the second (6 expected), log Z %g (log 2), spread %g", from1, N, lzp,
        spread);
  double bad = NAN;
  CHECK(jade_smc_pool(1, N, 1, T, &bad, ch, 1, 7, out, &lzp, &spread) != JADE_OK, "pool refuses log Z = NaN");

  enum { P = 16, K = 4 };
  double w[P * K];
  for (int p = 0; p < P * K; p++) w[p] = 0.25;
  smc_target t = {.w = w, .broad = 1};
  jade_smc_options o;
  jade_smc_options_default(&o);
  o.n_particles = 128;
  o.n_keep = 1;
  o.seed = 11;
  int M = o.n_particles;
  double *x = malloc((size_t)P * K * M * D * sizeof(double)), *chain = malloc((size_t)P * K * M * D * sizeof(double));
  double *pool = malloc((size_t)M * D * sizeof(double));
  jade_smc_stats ss[P * K];
  for (int p = 0; p < P * K; p++) draw_q(&t, (size_t)p, M, x + (size_t)p * M * D);
  CHECK_OK(jade_smc_run(parts, &t, P * K, D, x, &o, chain, ss));
  double f[P], lzq[P], mf = 0, ml = 0, vf = 0, vl = 0, sp = 0;
  for (int p = 0; p < P; p++) {
    double lz[K];
    for (int k = 0; k < K; k++) lz[k] = ss[p * K + k].log_z;
    CHECK_OK(jade_smc_pool(K, M, D, 1, lz, chain + (size_t)p * K * M * D, o.seed, 100 + p, pool, &lzq[p], &spread));
    f[p] = 0;
    for (int i = 0; i < M; i++) f[p] += (pool[i * D] < 0) / (double)M;
    mf += f[p] / P, ml += lzq[p] / P, sp += spread / P;
  }
  for (int p = 0; p < P; p++) {
    vf += (f[p] - mf) * (f[p] - mf) / (P - 1);
    vl += (lzq[p] - ml) * (lzq[p] - ml) / (P - 1);
  }
  double sf = sqrt(vf / P), sl = sqrt(vl / P);
  printf("smc pool of %d runs x %d particles (%d pools): fraction %.4f +- %.4f (exact 0.25), log Z %.4f +- %.4f (exact "
         "%.4f), mean spread %.3f\n", K, M, P, mf, sf, ml, sl, LOGZ, sp);
  CHECK(jade_test_lt_ok(fabs(mf - 0.25), 4.5 * sf + 1e-3) && sf < 0.03, "pooled weight %g vs 0.25 (se %g)", mf, sf);
  CHECK(jade_test_lt_ok(fabs(ml - LOGZ), 4.5 * sl + 1e-3) && sl < 0.05, "pooled log Z %g vs %g (se %g)", ml, LOGZ, sl);
  free(x);
  free(chain);
  free(pool);
}

/* A thin ridge: pi = Z N(m, S) in DR = 8 dimensions, sd 3 along u = (1, ..., 1)/sqrt(DR) and
 * 0.1 across (correlations 0.999), from the broad q = N(0, 6^2 I) with short mutations. The
 * dense metric (per particle, the covariance of the other particles) must give the variance
 * along u (exact 9), the mean and log Z within their errors over 32 replicates. */
#define DR 8
static const double RIDGE_LOGZ = -2.0, RIDGE_SD = 3.0, RIDGE_THIN = 0.1;
static jade_status ridge_parts(void *ctx, size_t n, const size_t *prob, const double *x, double *lq, double *lpi,
                               double *gq, double *gpi) {
  (void)ctx, (void)prob;
  const double su = 1.0 / sqrt((double)DR);
  for (size_t i = 0; i < n; i++) {
    const double *xi = x + i * DR;
    double a = 0, pe = 0, q = 0;
    for (int j = 0; j < DR; j++) a += (xi[j] - 1.0) * su; /* m = (1, ..., 1) */
    for (int j = 0; j < DR; j++) {
      double e = xi[j] - 1.0 - a * su; /* the part across the ridge */
      pe += e * e;
      q += xi[j] * xi[j];
      gpi[i * DR + j] = -a * su / (RIDGE_SD * RIDGE_SD) - e / (RIDGE_THIN * RIDGE_THIN);
      gq[i * DR + j] = -xi[j] / 36.0;
    }
    lpi[i] = RIDGE_LOGZ - 0.5 * a * a / (RIDGE_SD * RIDGE_SD) - 0.5 * pe / (RIDGE_THIN * RIDGE_THIN) -
             log(RIDGE_SD) - (DR - 1) * log(RIDGE_THIN) - 0.5 * DR * log(2 * M_PI);
    lq[i] = -0.5 * q / 36.0 - DR * log(6.0) - 0.5 * DR * log(2 * M_PI);
  }
  return JADE_OK;
}

/* over RP problems: the particles' variance along u, the mean of x_0 and log Z (mean, se) */
static void ridge_case(int dense, int N, int mutations, int leapfrog, double out[6]) {
  enum { RP = 32 };
  jade_smc_options o;
  jade_smc_options_default(&o);
  o.n_particles = N;
  o.n_mutations = mutations;
  o.n_leapfrog = leapfrog;
  o.n_keep = 2;
  o.seed = 21;
  o.ess_frac = 0.7;
  o.dense_metric = dense;
  double *x = malloc((size_t)RP * N * DR * sizeof(double));
  for (int p = 0; p < RP; p++)
    for (int i = 0; i < N; i++) {
      jade_rng_normal_fill(13, JADE_STREAM(JADE_RNG_TEST, 90 + p), (uint64_t)i * 16, DR, x + ((size_t)p * N + i) * DR);
      for (int j = 0; j < DR; j++) x[((size_t)p * N + i) * DR + j] *= 6.0;
    }
  jade_smc_stats ss[RP];
  CHECK_OK(jade_smc_run(ridge_parts, NULL, RP, DR, x, &o, NULL, ss));
  double v[RP], m0[RP], lz[RP];
  for (int p = 0; p < RP; p++) {
    double s1 = 0, s2 = 0;
    m0[p] = 0;
    for (int i = 0; i < N; i++) {
      double a = 0;
      for (int j = 0; j < DR; j++) a += x[((size_t)p * N + i) * DR + j] / sqrt((double)DR);
      s1 += a, s2 += a * a;
      m0[p] += x[((size_t)p * N + i) * DR] / N;
    }
    v[p] = (s2 - s1 * s1 / N) / (N - 1);
    lz[p] = ss[p].log_z;
  }
  const double *arr[3] = {v, m0, lz};
  for (int k = 0; k < 3; k++) {
    double m = 0, s = 0;
    for (int p = 0; p < RP; p++) m += arr[k][p] / RP;
    for (int p = 0; p < RP; p++) s += (arr[k][p] - m) * (arr[k][p] - m) / (RP - 1);
    out[2 * k] = m;
    out[2 * k + 1] = sqrt(s / RP);
  }
  free(x);
}

static void test_ridge_metric(void) {
  const int cfg[3][3] = {{64, 2, 4}, {256, 2, 4}, {256, 8, 4}};
  for (int c = 0; c < 3; c++) {
    double d[6], g[6];
    ridge_case(1, cfg[c][0], cfg[c][1], cfg[c][2], d);
    ridge_case(0, cfg[c][0], cfg[c][1], cfg[c][2], g);
    printf("smc thin ridge, %d particles, %d x %d leapfrog: dense metric: var along the ridge %.3f +- %.3f (exact 9), "
           "E x0 %.4f +- %.4f (exact 1), log Z %.4f +- %.4f (exact %.1f); diagonal: %.3f +- %.3f, %.4f +- %.4f, "
           "%.4f +- %.4f\n", cfg[c][0], cfg[c][1], cfg[c][2], d[0], d[1], d[2], d[3], d[4], d[5], RIDGE_LOGZ, g[0], g[1],
           g[2], g[3], g[4], g[5]);
    /* the particles' variance: unbiased for independent draws; the replicates' scatter measures
     * the rest (a 1/N bias of the adaptive kernel would show at 64 particles) */
    CHECK(jade_test_lt_ok(fabs(d[0] - 9.0), 4.5 * d[1] + 0.05) && d[1] < 0.5, "dense: var %g vs 9 (se %g)", d[0], d[1]);
    CHECK(jade_test_lt_ok(fabs(d[2] - 1.0), 4.5 * d[3] + 1e-3) && d[3] < 0.2, "dense: mean %g vs 1 (se %g)", d[2], d[3]);
    CHECK(jade_test_lt_ok(fabs(d[4] - RIDGE_LOGZ), 4.5 * d[5] + 1e-3) && d[5] < 0.15, "dense: log Z %g vs %g (se %g)",
          d[4], RIDGE_LOGZ, d[5]);
  }
}

int main(void) {
  test_ridge_metric();
  test_pool();
  run_case(1, 0, 1);
  run_case(0, 0, 1);
  run_case(0, 1, 1);
  /* adaptive mutation rounds (problems leave the lockstep at different rounds) */
  run_case(1, 0, 4);
  if (jade_test_failures) fprintf(stderr, "%d failures\n", jade_test_failures);
  return jade_test_failures ? 1 : 0;
}
