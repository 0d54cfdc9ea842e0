/* NUTS throughput: gradient evaluations per second and effective samples per second on a
 * d-dimensional Gaussian with scales 10^(-1 .. 1) and neighbour correlation 0.5 (tridiagonal
 * precision, so one gradient costs O(d) like a cheap field-level target).
 *
 * usage: bench_mcmc [d ...]   (default 10 100 1000); env BENCH_CHAINS (4), BENCH_WARMUP (500),
 * BENCH_DRAWS (1000), OMP_NUM_THREADS. */
#include "jade/mcmc.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
  size_t d;
  double *s;   /* scales */
  double rho;  /* AR(1)-type correlation: precision tridiagonal */
} target;

/* x = D y with y ~ N(0, R), R_ij = rho^|i-j|; R^-1 tridiagonal (1/(1-rho^2)) [1+rho^2, -rho]. */
static jade_status logp(void *ctx, const double *x, double *lp, double *g) {
  const target *t = ctx;
  size_t d = t->d;
  double r = t->rho, f = 1.0 / (1.0 - r * r), acc = 0.0;
  for (size_t i = 0; i < d; i++) {
    double yi = x[i] / t->s[i];
    double diag = (i == 0 || i == d - 1) ? 1.0 : 1.0 + r * r;
    double py = diag * yi;
    if (i > 0) py -= r * x[i - 1] / t->s[i - 1];
    if (i + 1 < d) py -= r * x[i + 1] / t->s[i + 1];
    py *= f;
    acc += yi * py;
    g[i] = -py / t->s[i];
  }
  *lp = -0.5 * acc;
  return JADE_OK;
}

static long env_long(const char *name, long def) {
  const char *v = getenv(name);
  return v ? atol(v) : def;
}

static int bench(size_t d, int m, long nw, long nd) {
  target t = {d, malloc(d * sizeof(double)), 0.5};
  for (size_t i = 0; i < d; i++) t.s[i] = pow(10.0, -1.0 + 2.0 * (double)i / (double)(d > 1 ? d - 1 : 1));
  jade_nuts_config cfg;
  jade_nuts_config_default(&cfg);
  cfg.n_warmup = nw;
  jade_nuts_chain *ch[64];
  void *ctx[64];
  for (int c = 0; c < m; c++) {
    if (jade_nuts_chain_create(&ch[c], d, &cfg, 1, (uint64_t)c, NULL, NULL)) {
      fprintf(stderr, "%s\n", jade_last_error());
      return 1;
    }
    ctx[c] = &t;
  }
  double *draws = malloc(sizeof(double) * (size_t)m * (size_t)nd * d);
  jade_nuts_stats *st = malloc(sizeof *st * (size_t)m * (size_t)nd);
  double t0 = jade_time_now();
  if (jade_nuts_run_chains(ch, m, logp, ctx, nw, NULL, NULL, 0)) return 1;
  double t1 = jade_time_now();
  uint64_t g_warm = 0, g_all = 0;
  for (int c = 0; c < m; c++) {
    jade_nuts_totals tot;
    jade_nuts_chain_totals(ch[c], &tot);
    g_warm += tot.grad_evals;
  }
  if (jade_nuts_run_chains(ch, m, logp, ctx, nd, draws, st, 0)) return 1;
  double t2 = jade_time_now();
  for (int c = 0; c < m; c++) {
    jade_nuts_totals tot;
    jade_nuts_chain_totals(ch[c], &tot);
    g_all += tot.grad_evals;
  }
  uint64_t g_samp = g_all - g_warm;

  /* cost of the bare gradient, one thread */
  double *x = malloc(d * sizeof(double)), *g = malloc(d * sizeof(double)), lp;
  for (size_t i = 0; i < d; i++) x[i] = 0.1 * (double)i;
  long reps = (long)(2e7 / (double)d) + 1;
  double tg0 = jade_time_now();
  for (long k = 0; k < reps; k++) {
    x[k % d] += 1e-9;
    logp(&t, x, &lp, g);
  }
  double tgrad = (jade_time_now() - tg0) / (double)reps;

  jade_mcmc_summary *sum = malloc(sizeof *sum * d);
  double ts0 = jade_time_now();
  if (jade_mcmc_summarize_draws(draws, m, (size_t)nd, d, sum)) return 1;
  double tsum = jade_time_now() - ts0;
  double min_bulk = 1e300, min_tail = 1e300, max_rhat = 0.0, depth = 0.0;
  for (size_t j = 0; j < d; j++) {
    min_bulk = fmin(min_bulk, sum[j].ess_bulk);
    min_tail = fmin(min_tail, sum[j].ess_tail);
    max_rhat = fmax(max_rhat, sum[j].rhat);
  }
  long ndiv = 0;
  for (long k = 0; k < m * nd; k++) {
    depth += st[k].tree_depth;
    ndiv += st[k].divergent;
  }
  double ts = t2 - t1;
  int threads = omp_get_max_threads() < m ? omp_get_max_threads() : m;
  printf("%6zu %3d %2d %8.3f %8.3f %10.3g %10.3g %8.1f %6.2f %8.0f %8.0f %9.1f %10.2e %7.4f %4ld "
         "%7.2f\n",
         d, m, threads, t1 - t0, ts, (double)g_samp / ts, 1.0 / tgrad,
         (double)g_samp / (double)(m * nd), depth / (double)(m * nd), min_bulk, min_tail,
         min_bulk / ts, min_bulk / (double)g_samp, max_rhat, ndiv, tsum);
  for (int c = 0; c < m; c++) jade_nuts_chain_free(ch[c]);
  free(t.s);
  free(draws);
  free(st);
  free(x);
  free(g);
  free(sum);
  return 0;
}

int main(int argc, char **argv) {
  int m = (int)env_long("BENCH_CHAINS", 4);
  long nw = env_long("BENCH_WARMUP", 500), nd = env_long("BENCH_DRAWS", 1000);
  if (m < 1 || m > 64) m = 4;
  printf("NUTS on a correlated Gaussian (scales 0.1..10, rho 0.5), %d chains, %ld warm-up + %ld "
         "draws\n",
         m, nw, nd);
  printf("%6s %3s %2s %8s %8s %10s %10s %8s %6s %8s %8s %9s %10s %7s %4s %7s\n", "d", "ch", "th",
         "warm_s", "samp_s", "grad/s", "bare/s1", "leap/it", "depth", "bulkESS", "tailESS",
         "ESS/s", "ESS/grad", "Rhat", "div", "diag_s");
  size_t dims[3] = {10, 100, 1000};
  int nd_dims = 3;
  if (argc > 1) nd_dims = 0;
  for (int i = 1; i < argc && nd_dims < 3; i++) dims[nd_dims++] = (size_t)atol(argv[i]);
  for (int i = 0; i < nd_dims; i++)
    if (bench(dims[i], m, nw, nd)) {
      fprintf(stderr, "bench failed: %s\n", jade_last_error());
      return 1;
    }
  return 0;
}
