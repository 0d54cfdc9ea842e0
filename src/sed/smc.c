/* Sequential Monte Carlo with adaptive likelihood tempering, in lockstep over many problems
 * (see jade_smc_run in jade/sed.h). Per problem and stage t: the incremental log weights
 * dbeta (log pi - log q) of the (equally weighted) particles, dbeta chosen by bisection so
 * that their effective sample size (sum w)^2 / sum w^2 (Kong, Liu & Wong 1994) is ess_frac of
 * the particles with pi > 0 (Jasra, Stephens, Doucet & Tsagaris 2011, Scand. J. Stat. 38:1),
 * log Z += log mean w (Del Moral, Doucet & Jasra 2006, eq. 14 with equal weights after
 * resampling), systematic resampling (Kitagawa 1996), then n_mutations HMC transitions at
 * pi_beta with every particle a chain (jade_hmc_run, no warm-up): the inverse mass is the
 * resampled particles' variance per coordinate (or, dense_metric, the covariance of the other
 * particles, per particle), the step size per problem follows the previous
 * stage's mean acceptance (a multiplicative rule; cf. Buchholz, Chopin & Jacob 2021, Bayesian
 * Analysis 16:745, who tune HMC inside SMC from the particles). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jade/mcmc.h"
#include "jade/sed.h"

void jade_smc_options_default(jade_smc_options *o) {
  o->n_particles = 128;
  o->n_mutations = 4;
  o->n_leapfrog = 8;
  o->n_keep = 0;
  o->ess_frac = 0.5;
  o->max_stages = 500;
  o->step_size = 0.1;
  o->target_accept = 0.75;
  o->max_rounds = 1;
  o->jump_frac = 1.0;
  o->dense_metric = 0;
  o->ridge = NULL;
  o->seed = 1;
  o->first_id = 0;
  o->stream_id = NULL;
}

/* problem g's Philox stream id */
static uint64_t prob_id(const jade_smc_options *o, size_t g) { return o->stream_id ? o->stream_id[g] : o->first_id + g; }

/* the HMC's seed at stage t (a problem's stage t is the t-th iteration of the lockstep loop
 * for every problem, so the draws do not depend on the batch); t = -1: the kept transitions */
static uint64_t stage_seed(uint64_t seed, long t) { return seed + (uint64_t)(t + 2) * 0x9E3779B97F4A7C15ull; }

/* the tempered target of the active problems: problem index p of the HMC -> act[p] */
typedef struct {
  jade_smc_parts_fn f;
  void *ctx;
  const size_t *act;
  const double *beta; /* per (global) problem */
  int d;
} temper_ctx;

static jade_status tempered_grad(void *ctx, size_t n, const size_t *prob, const double *x, double *lp, double *grad) {
  temper_ctx *tc = ctx;
  int d = tc->d;
  size_t *gp = jade_alloc(n * sizeof(size_t) + 8);
  double *lq = jade_alloc(n * sizeof(double) + 8), *lpi = jade_alloc(n * sizeof(double) + 8);
  double *gq = jade_alloc(n * d * sizeof(double) + 8), *gpi = jade_alloc(n * d * sizeof(double) + 8);
  jade_status st = gp && lq && lpi && gq && gpi ? JADE_OK : JADE_ERR_NOMEM;
  for (size_t i = 0; i < n && !st; i++) gp[i] = tc->act[prob[i]];
  if (!st) st = tc->f(tc->ctx, n, gp, x, lq, lpi, gq, gpi);
  for (size_t i = 0; i < n && !st; i++) {
    double b = tc->beta[gp[i]];
    int ok = isfinite(lq[i]) && lpi[i] > -INFINITY && !isnan(lpi[i]);
    lp[i] = ok ? (1 - b) * lq[i] + b * lpi[i] : -INFINITY;
    for (int j = 0; j < d; j++) grad[i * d + j] = ok ? (1 - b) * gq[i * d + j] + b * gpi[i * d + j] : 0.0;
  }
  free(gp);
  free(lq);
  free(lpi);
  free(gq);
  free(gpi);
  return st;
}

/* effective sample size of w_i = exp(db (ell_i - top)) over the finite ell_i */
static double ess_at(const double *ell, int N, double top, double db) {
  double s = 0, s2 = 0;
  for (int i = 0; i < N; i++) {
    if (!(ell[i] > -INFINITY)) continue;
    double w = exp(db * (ell[i] - top));
    s += w;
    s2 += w * w;
  }
  return s2 > 0 ? s * s / s2 : 0.0;
}

/* One reweighting + resampling of problem g: beta[g] -> next beta, log Z updated; particles x
 * (N x d), lq, lpi resampled in place (work: N x d + 2 N doubles, N ints). */
static jade_status reweight(const jade_smc_options *o, size_t g, int d, long t, double *x, double *lq, double *lpi,
                            double *beta, double *logz, double *work, int *idx) {
  int N = o->n_particles, nfin = 0;
  double *ell = work + (size_t)N * d, *w = ell + N, top = -INFINITY;
  for (int i = 0; i < N; i++) {
    ell[i] = lpi[i] > -INFINITY && !isnan(lpi[i]) ? lpi[i] - lq[i] : -INFINITY;
    if (ell[i] > -INFINITY) {
      nfin++;
      top = fmax(top, ell[i]);
    }
  }
  if (nfin == 0)
    return jade_error(JADE_ERR_NUMERIC, "smc: problem %zu has no particle where the target is positive (stage %ld)",
                      g, t);
  double rest = 1 - beta[g], target = o->ess_frac * nfin, db = rest;
  if (ess_at(ell, N, top, rest) < target) { /* bisection: ESS decreases with dbeta */
    double a = 0, b = rest;
    for (int it = 0; it < 60; it++) {
      double m = 0.5 * (a + b);
      if (ess_at(ell, N, top, m) >= target) a = m;
      else b = m;
    }
    db = a > 0 ? a : b;
  }
  double s = 0;
  for (int i = 0; i < N; i++) {
    w[i] = ell[i] > -INFINITY ? exp(db * (ell[i] - top)) : 0.0;
    s += w[i];
  }
  *logz += db * top + log(s / N);
  beta[g] = db >= rest ? 1.0 : beta[g] + db;
  /* systematic resampling: particle i is copied to slots of u + k in the cumulative weights */
  uint64_t stream = JADE_STREAM(JADE_RNG_MCMC, prob_id(o, g));
  double u = jade_rng_uniform(o->seed, stream, ((uint64_t)7 << 54) + (uint64_t)t), cum = 0;
  int k = 0;
  for (int i = 0; i < N; i++) {
    cum += w[i] * N / s;
    while (k < N && k + u < cum) idx[k++] = i;
  }
  int last = N - 1; /* rounding leftovers go to the last particle of positive weight */
  while (last > 0 && !(w[last] > 0)) last--;
  while (k < N) idx[k++] = last;
  for (int i = 0; i < N; i++) memcpy(work + (size_t)i * d, x + (size_t)idx[i] * d, (size_t)d * sizeof(double));
  memcpy(x, work, (size_t)N * d * sizeof(double));
  for (int i = 0; i < N; i++) work[i] = lq[idx[i]];
  memcpy(lq, work, (size_t)N * sizeof(double));
  for (int i = 0; i < N; i++) work[i] = lpi[idx[i]];
  memcpy(lpi, work, (size_t)N * sizeof(double));
  return JADE_OK;
}

/* the inverse mass of problem g: the particles' variance per coordinate (shrunk as Stan's,
 * n/(n+5) var, with a floor) */
static void particle_inv_mass(const double *x, int N, int d, double *minv) {
  for (int j = 0; j < d; j++) {
    double m = 0, v = 0;
    for (int i = 0; i < N; i++) m += x[(size_t)i * d + j] / N;
    for (int i = 0; i < N; i++) v += (x[(size_t)i * d + j] - m) * (x[(size_t)i * d + j] - m);
    v = N > 1 ? v / (N - 1) : 1.0;
    minv[j] = (double)N / (N + 5) * v + 1e-10;
  }
}

/* Dense inverse masses of one problem's N particles x (N x d), one lower Cholesky factor per
 * particle in L (N x d x d): the covariance of the particles OUTSIDE its family (the copies of
 * one resampled ancestor, i.e. the particles at bitwise the same position), the off-diagonal
 * shrunk by n/(n+5). Leaving the family out matters: a metric built from all particles depends
 * on the particle it moves, and the transitions then pull the cloud in by ~d/N per step (on a
 * thin 8-d ridge with N = 64: its variance 8.68 -> 8.44 after one transition; left out: 8.90;
 * cf. the bias of adaptive SMC kernels, Beskos, Jasra, Kantas & Thiery 2016, Ann. Appl. Probab.
 * 26:1111). With fewer than d + 2 particles outside a family, all particles are used.
 * Falls back to the diagonal if a factorisation fails. w: (2 d + d^2 + d^2) doubles, fam: N ints. */
static void particle_chol_loo(const double *x, int N, int d, double *L, double *w, int *fam) {
  size_t dd = (size_t)d * d;
  double *m = w, *s1 = w + d, *s2 = w + 2 * d, *a = w + 2 * d + dd;
  for (int j = 0; j < d; j++) {
    m[j] = 0;
    for (int i = 0; i < N; i++) m[j] += x[(size_t)i * d + j] / N;
  }
  /* centred sums over all particles */
  memset(s2, 0, dd * sizeof(double));
  for (int i = 0; i < N; i++) {
    const double *xi = x + (size_t)i * d;
    for (int r = 0; r < d; r++)
      for (int q = 0; q <= r; q++) s2[(size_t)r * d + q] += (xi[r] - m[r]) * (xi[q] - m[q]);
  }
  for (int i = 0; i < N; i++) { /* families: the first particle at the same position */
    fam[i] = i;
    for (int j = 0; j < i; j++)
      if (fam[j] == j && !memcmp(x + (size_t)i * d, x + (size_t)j * d, (size_t)d * sizeof(double))) {
        fam[i] = j;
        break;
      }
  }
  for (int i = 0; i < N; i++) {
    if (fam[i] != i) { /* a copy: its family's factor */
      memcpy(L + (size_t)i * dd, L + (size_t)fam[i] * dd, dd * sizeof(double));
      continue;
    }
    int k = 0;
    for (int j = i; j < N; j++) k += fam[j] == i;
    int n = N - k >= d + 2 ? N - k : N;
    const double *y = x + (size_t)i * d;
    double kk = n == N ? 0.0 : (double)k;
    /* sums of the others, centred at m: s1o = -k (y - m), s2o = s2 - k (y - m)(y - m)^T */
    for (int j = 0; j < d; j++) s1[j] = -kk * (y[j] - m[j]);
    for (int r = 0; r < d; r++)
      for (int q = 0; q <= r; q++) {
        double c = (s2[(size_t)r * d + q] - kk * (y[r] - m[r]) * (y[q] - m[q]) - s1[r] * s1[q] / n) / (n - 1);
        if (r != q) c *= (double)n / (n + 5);
        else c = fmax(c, 0.0) + 1e-12;
        a[(size_t)r * d + q] = a[(size_t)q * d + r] = c;
      }
    double *Li = L + (size_t)i * dd;
    if (jade_cholesky(d, a, Li) != 0) {
      memset(Li, 0, dd * sizeof(double));
      for (int j = 0; j < d; j++) Li[(size_t)j * d + j] = sqrt(a[(size_t)j * d + j]);
    }
  }
}

/* n_act problems' HMC transitions (ho filled by the caller): gathers their particles, runs,
 * scatters the last states back and evaluates log q, log pi there */
static jade_status mutate(jade_smc_parts_fn f, void *ctx, const jade_smc_options *o, int d, size_t n_act,
                          const size_t *act, double *beta, double *x, double *lq, double *lpi, const double *step,
                          jade_hmc_options *ho, double *chain, jade_hmc_stats *hs) {
  int N = o->n_particles;
  size_t nd = (size_t)N * d, M = (size_t)ho->n_steps;
  double *x0 = jade_alloc(n_act * nd * sizeof(double)), *minv = jade_alloc(n_act * d * sizeof(double));
  double *st0 = jade_alloc(n_act * sizeof(double));
  double *ch = chain ? chain : jade_alloc(n_act * M * nd * sizeof(double));
  uint64_t *sid = jade_alloc(n_act * sizeof(uint64_t));
  size_t *pr = jade_alloc(n_act * N * sizeof(size_t));
  double *gq = jade_alloc(n_act * nd * sizeof(double)), *gpi = jade_alloc(n_act * nd * sizeof(double));
  double *lq2 = jade_alloc(n_act * N * sizeof(double)), *lpi2 = jade_alloc(n_act * N * sizeof(double));
  /* ridge profiles of the active problems, gathered (the HMC indexes them by its problems) */
  jade_hmc_ridge rg;
  const jade_hmc_ridge *R = o->ridge;
  double *rnode = R ? jade_alloc(n_act * R->n_nodes * d * sizeof(double)) : NULL;
  double *rlq = R ? jade_alloc(n_act * R->n_nodes * sizeof(double)) : NULL;
  size_t dd = (size_t)d * d;
  double *chol = o->dense_metric ? jade_alloc(n_act * N * dd * sizeof(double)) : NULL;
  double *cw = o->dense_metric ? jade_alloc((2 * d + 2 * dd) * sizeof(double)) : NULL;
  int *fam = o->dense_metric ? jade_alloc((size_t)N * sizeof(int)) : NULL;
  jade_status st = x0 && minv && st0 && ch && sid && pr && gq && gpi && lq2 && lpi2 && (!R || (rnode && rlq)) &&
                           (!o->dense_metric || (chol && cw && fam))
                       ? JADE_OK
                       : JADE_ERR_NOMEM;
  for (size_t a = 0; a < n_act && !st; a++) {
    size_t g = act[a];
    memcpy(x0 + a * nd, x + g * nd, nd * sizeof(double));
    particle_inv_mass(x + g * nd, N, d, minv + a * d);
    if (chol) particle_chol_loo(x + g * nd, N, d, chol + a * N * dd, cw, fam);
    st0[a] = step[g];
    sid[a] = prob_id(o, g);
    if (R) {
      size_t p = g / R->per_profile, G = (size_t)R->n_nodes;
      memcpy(rnode + a * G * d, R->node + p * G * d, G * d * sizeof(double));
      memcpy(rlq + a * G, R->lq + p * G, G * sizeof(double));
    }
  }
  if (!st && R) {
    rg = *R;
    rg.per_profile = 1;
    rg.node = rnode;
    rg.lq = rlq;
    rg.chol = NULL;
    ho->ridge = &rg;
    ho->ridge_every = 1;
  }
  ho->step0 = st0;
  ho->stream_id = sid;
  ho->dense_metric = chol != NULL;
  ho->inv_mass_chol0 = chol;
  ho->metric_per_chain = chol != NULL;
  temper_ctx tc = {.f = f, .ctx = ctx, .act = act, .beta = beta, .d = d};
  if (!st) st = jade_hmc_run(tempered_grad, &tc, n_act, d, x0, minv, ho, ch, hs);
  for (size_t a = 0; a < n_act && !st; a++) {
    memcpy(x + act[a] * nd, ch + (a * M + M - 1) * nd, nd * sizeof(double));
    for (int i = 0; i < N; i++) pr[a * N + i] = act[a];
  }
  /* log q and log pi at the new positions (the next reweighting needs them apart) */
  for (size_t a = 0; a < n_act && !st; a++) memcpy(x0 + a * nd, x + act[a] * nd, nd * sizeof(double));
  if (!st) st = f(ctx, n_act * N, pr, x0, lq2, lpi2, gq, gpi);
  for (size_t a = 0; a < n_act && !st; a++) {
    memcpy(lq + act[a] * N, lq2 + a * N, (size_t)N * sizeof(double));
    memcpy(lpi + act[a] * N, lpi2 + a * N, (size_t)N * sizeof(double));
  }
  ho->ridge = NULL;
  ho->step0 = NULL;
  ho->stream_id = NULL;
  ho->dense_metric = 0;
  ho->inv_mass_chol0 = NULL;
  ho->metric_per_chain = 0;
  free(chol);
  free(cw);
  free(fam);
  free(x0);
  free(minv);
  free(st0);
  if (!chain) free(ch);
  free(sid);
  free(pr);
  free(gq);
  free(gpi);
  free(lq2);
  free(lpi2);
  free(rnode);
  free(rlq);
  return st;
}

jade_status jade_smc_run(jade_smc_parts_fn f, void *ctx, size_t n_prob, int d, double *x, const jade_smc_options *o,
                         double *chain, jade_smc_stats *stats) {
  int N = o->n_particles;
  if (N < 2 || d < 1 || d > 190 || o->n_mutations < 1 || o->n_leapfrog < 1 || o->n_keep < 0 ||
      !(o->ess_frac > 0 && o->ess_frac < 1) || o->max_stages < 1 || !(o->step_size > 0) ||
      !(o->target_accept > 0 && o->target_accept < 1) || (chain && o->n_keep < 1) || o->max_rounds < 1 ||
      !(o->jump_frac >= 0))
    return jade_error(JADE_ERR_INVALID,
                      "smc: bad options (particles %d >= 2, d %d in 1..190, mutations %d >= 1, leapfrog %d >= 1, kept %ld "
                      ">= 0 (>= 1 with a chain), ESS fraction %g in (0, 1), max stages %d >= 1, step %g > 0, target "
                      "acceptance %g in (0, 1), mutation rounds %d >= 1, jump fraction %g >= 0)",
                      N, d, o->n_mutations, o->n_leapfrog, o->n_keep, o->ess_frac, o->max_stages, o->step_size,
                      o->target_accept, o->max_rounds, o->jump_frac);
  if (n_prob == 0) return JADE_OK;
  size_t nN = n_prob * (size_t)N, nd = (size_t)N * d;
  double *lq = jade_alloc(nN * sizeof(double)), *lpi = jade_alloc(nN * sizeof(double));
  double *gq = jade_alloc(nN * d * sizeof(double)), *gpi = jade_alloc(nN * d * sizeof(double));
  double *beta = jade_calloc(n_prob, sizeof(double)), *logz = jade_calloc(n_prob, sizeof(double));
  double *step = jade_alloc(n_prob * sizeof(double)), *acc = jade_calloc(n_prob, sizeof(double));
  double *work = jade_alloc((nd + 2 * (size_t)N) * sizeof(double));
  long *nst = jade_calloc(n_prob, sizeof(long)), *r_try = jade_calloc(n_prob, sizeof(long));
  double *r_acc = jade_calloc(n_prob, sizeof(double));
  int *idx = jade_alloc((size_t)N * sizeof(int)), *done = jade_calloc(n_prob, sizeof(int));
  size_t *pr = jade_alloc(nN * sizeof(size_t)), *act = jade_alloc(n_prob * sizeof(size_t));
  jade_hmc_stats *hs = jade_alloc(n_prob * sizeof(jade_hmc_stats));
  size_t nx = o->max_rounds > 1 ? n_prob : 1; /* start positions: only with several rounds */
  double *xs = jade_alloc(nx * nd * sizeof(double)), *vs = jade_alloc(nx * d * sizeof(double));
  double *acc_st = jade_alloc(n_prob * sizeof(double));
  long *nround = jade_alloc(n_prob * sizeof(long)), *rounds = jade_calloc(n_prob, sizeof(long));
  size_t *mut = jade_alloc(n_prob * sizeof(size_t));
  jade_status st = lq && lpi && gq && gpi && beta && logz && step && acc && work && nst && r_try && r_acc && idx &&
                           done && pr && act && hs && xs && vs && acc_st && nround && rounds && mut
                       ? JADE_OK
                       : JADE_ERR_NOMEM;
  for (size_t i = 0; i < nN && !st; i++) pr[i] = i / N;
  for (size_t i = 0; i < nN * d && !st; i++)
    if (!isfinite(x[i])) st = jade_error(JADE_ERR_NUMERIC, "smc: initial particle %zu is not finite", i / d);
  if (!st) st = f(ctx, nN, pr, x, lq, lpi, gq, gpi);
  for (size_t i = 0; i < nN && !st; i++)
    if (!isfinite(lq[i]))
      st = jade_error(JADE_ERR_NUMERIC, "smc: particle %zu of problem %zu has log q = %g (draws must come from q)",
                      i % N, i / N, lq[i]);
  for (size_t g = 0; g < n_prob; g++) step[g] = o->step_size;
  jade_hmc_options ho;
  jade_hmc_options_default(&ho);
  ho.n_chains = N;
  ho.n_warmup = 0;
  ho.n_steps = o->n_mutations;
  ho.n_leapfrog = o->n_leapfrog;
  for (long t = 0; !st; t++) {
    size_t n_act = 0;
    for (size_t g = 0; g < n_prob; g++)
      if (!done[g]) act[n_act++] = g;
    if (n_act == 0) break;
    if (t >= o->max_stages) {
      st = jade_error(JADE_ERR_NUMERIC, "smc: problem %zu still at beta %.3g after %d stages", act[0], beta[act[0]],
                      o->max_stages);
      break;
    }
    for (size_t a = 0; a < n_act && !st; a++) {
      size_t g = act[a];
      st = reweight(o, g, d, t, x + g * nd, lq + g * N, lpi + g * N, beta, &logz[g], work, idx);
      nst[g]++;
    }
    if (st) break;
    /* mutation rounds: a round is n_mutations transitions; a problem takes another round while
     * its particles' mean squared jump since the stage began (sum over coordinates of
     * (x - x_start)^2 / var_start, var_start the resampled particles' variance) is below
     * jump_frac x d (independent redraws would give 2 d), up to max_rounds */
    for (size_t a = 0; a < n_act; a++) {
      size_t g = act[a];
      if (o->max_rounds > 1) { /* the jump is only needed to decide on another round */
        memcpy(xs + g * nd, x + g * nd, nd * sizeof(double));
        particle_inv_mass(x + g * nd, N, d, vs + g * d);
      }
      acc_st[g] = 0;
      nround[g] = 0;
    }
    size_t n_mut = n_act;
    memcpy(mut, act, n_act * sizeof(size_t));
    for (int round = 0; round < o->max_rounds && n_mut > 0 && !st; round++) {
      ho.seed = stage_seed(o->seed, t) + (uint64_t)round * 0xD1B54A32D192ED03ull;
      if ((st = mutate(f, ctx, o, d, n_mut, mut, beta, x, lq, lpi, step, &ho, NULL, hs))) break;
      size_t keep = 0;
      for (size_t a = 0; a < n_mut; a++) {
        size_t g = mut[a];
        acc_st[g] += hs[a].accept;
        nround[g]++;
        if (!isnan(hs[a].ridge_accept)) {
          r_try[g]++;
          r_acc[g] += hs[a].ridge_accept;
        }
        double r = exp(2 * (hs[a].accept - o->target_accept));
        step[g] *= fmin(2.0, fmax(0.5, r));
        if (round + 1 >= o->max_rounds) continue;
        double jump = 0;
        for (int i = 0; i < N; i++)
          for (int j = 0; j < d; j++) {
            double u = x[g * nd + (size_t)i * d + j] - xs[g * nd + (size_t)i * d + j];
            jump += u * u / vs[g * d + j];
          }
        if (jump / N < o->jump_frac * d) mut[keep++] = g;
      }
      n_mut = keep;
    }
    if (st) break;
    for (size_t a = 0; a < n_act; a++) {
      size_t g = act[a];
      acc[g] += acc_st[g] / nround[g];
      rounds[g] += nround[g];
      if (beta[g] >= 1) done[g] = 1;
    }
  }
  /* kept transitions at beta = 1 (every problem) */
  if (!st && o->n_keep > 0) {
    for (size_t g = 0; g < n_prob; g++) act[g] = g;
    ho.seed = stage_seed(o->seed, -1);
    ho.n_steps = o->n_keep;
    st = mutate(f, ctx, o, d, n_prob, act, beta, x, lq, lpi, step, &ho, chain, hs);
    for (size_t g = 0; g < n_prob && !st; g++)
      if (!isnan(hs[g].ridge_accept)) {
        r_try[g]++;
        r_acc[g] += hs[g].ridge_accept;
      }
  }
  if (!st && stats)
    for (size_t g = 0; g < n_prob; g++) {
      stats[g].n_stages = (int)nst[g];
      stats[g].log_z = logz[g];
      stats[g].accept = nst[g] ? acc[g] / nst[g] : NAN;
      stats[g].step_size = step[g];
      stats[g].ridge_accept = r_try[g] ? r_acc[g] / r_try[g] : NAN;
      stats[g].mutation_rounds = nst[g] ? (double)rounds[g] / nst[g] : NAN;
      stats[g].lpi_max = -INFINITY;
      for (int i = 0; i < N; i++) stats[g].lpi_max = fmax(stats[g].lpi_max, lpi[g * N + i]);
    }
  free(lq);
  free(lpi);
  free(gq);
  free(gpi);
  free(beta);
  free(logz);
  free(step);
  free(acc);
  free(work);
  free(nst);
  free(r_try);
  free(r_acc);
  free(idx);
  free(done);
  free(pr);
  free(act);
  free(hs);
  free(xs);
  free(vs);
  free(acc_st);
  free(nround);
  free(rounds);
  free(mut);
  return st;
}

jade_status jade_smc_pool(int K, int N, int d, long n_keep, const double *log_z, const double *chain, uint64_t seed,
                          uint64_t stream, double *out, double *log_z_pool, double *spread) {
  if (K < 1 || N < 1 || d < 1 || n_keep < 1)
    return jade_error(JADE_ERR_INVALID, "smc pool: bad sizes (runs %d, particles %d, d %d, kept %ld)", K, N, d, n_keep);
  double top = -INFINITY, bot = INFINITY;
  for (int k = 0; k < K; k++) {
    if (isnan(log_z[k]) || log_z[k] == INFINITY)
      return jade_error(JADE_ERR_NUMERIC, "smc pool: run %d has log Z = %g", k, log_z[k]);
    top = fmax(top, log_z[k]);
    bot = fmin(bot, log_z[k]);
  }
  if (!(top > -INFINITY)) return jade_error(JADE_ERR_NUMERIC, "smc pool: every run has Z = 0");
  double s = 0;
  for (int k = 0; k < K; k++) s += exp(log_z[k] - top);
  *log_z_pool = top + log(s / K);
  *spread = K > 1 ? top - bot : NAN;
  size_t nd = (size_t)N * d;
  /* systematic resampling: particle (k, i) has weight w_k / (N s), w_k = Z_k / Z_top; slot j takes
   * the particle whose cumulative weight first exceeds (u + j) / N */
  double u = jade_rng_uniform(seed, stream, (uint64_t)9 << 54), cum = 0;
  int j = 0;
  for (int k = 0; k < K && j < N; k++) {
    double w = exp(log_z[k] - top) / (s * N); /* per particle */
    for (int i = 0; i < N && j < N; i++) {
      cum += w;
      while (j < N && (u + j) / N < cum) {
        for (long t = 0; t < n_keep; t++)
          memcpy(out + (size_t)t * nd + (size_t)j * d, chain + ((size_t)k * n_keep + t) * nd + (size_t)i * d,
                 (size_t)d * sizeof(double));
        j++;
      }
    }
  }
  for (; j < N; j++) { /* rounding leftovers: the last particle of the last run with weight */
    int k = K - 1;
    while (k > 0 && !(exp(log_z[k] - top) > 0)) k--;
    for (long t = 0; t < n_keep; t++)
      memcpy(out + (size_t)t * nd + (size_t)j * d, chain + ((size_t)k * n_keep + t) * nd + (size_t)(N - 1) * d,
             (size_t)d * sizeof(double));
  }
  return JADE_OK;
}
