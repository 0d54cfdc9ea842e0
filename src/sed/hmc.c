/* Hamiltonian Monte Carlo in lockstep over many chains of many independent problems (galaxies):
 * every leapfrog step of every chain is one batched gradient call, so the target's cost is paid
 * in large batches (the emulators' weights are read once per batch, not once per point).
 *
 * Per problem: a step size adapted during warm-up by dual averaging towards a target mean
 * acceptance (Hoffman & Gelman 2014, JMLR 15:1593, Alg. 5, applied to the mean acceptance over
 * the problem's chains) and a diagonal inverse mass matrix re-estimated from the warm-up draws of
 * all its chains at the end of Stan-style slow windows (Stan Reference Manual, "HMC algorithm
 * parameters": regularised variance n/(n+5) var + 1e-3 x 5/(n+5)). Each transition: momentum
 * p ~ N(0, M), L leapfrog steps (Neal 2011, "MCMC using Hamiltonian dynamics", eq. 5.18-5.20) with
 * the step size jittered by U(0.8, 1.2), Metropolis accept with min(1, exp(-dH)); a non-finite
 * or > 1000 energy error is a divergence (rejected). Randomness: Philox keyed by (seed, problem
 * first_id + g, chain, iteration), so results do not depend on the batch or the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jade/mcmc.h"
#include "jade/sed.h"

void jade_hmc_options_default(jade_hmc_options *o) {
  o->n_chains = 4;
  o->n_warmup = 500;
  o->n_steps = 500;
  o->n_leapfrog = 16;
  o->dense_metric = 0;
  o->step_size = 0.1;
  o->target_accept = 0.8;
  o->seed = 1;
  o->first_id = 0;
  o->hook = NULL;
  o->hook_ctx = NULL;
  o->hook_every = 1;
  o->ridge = NULL;
  o->ridge_every = 1;
  o->inv_mass_chol0 = NULL;
  o->metric_per_chain = 0;
  o->step0 = NULL;
  o->stream_id = NULL;
}

/* the Philox stream of problem g */
static uint64_t hmc_stream(const jade_hmc_options *o, size_t g) {
  return JADE_STREAM(JADE_RNG_MCMC, o->stream_id ? o->stream_id[g] : o->first_id + g);
}

/* the node interval k and weight u of z for linear interpolation (constant beyond the ends) */
static int ridge_interval(const jade_hmc_ridge *R, double z, double *u) {
  int G = R->n_nodes;
  double t = (z - R->lo) / (R->hi - R->lo) * (G - 1);
  int k = (int)floor(t);
  if (k < 0) k = 0, t = 0;
  if (k >= G - 1) k = G - 2, t = G - 1;
  *u = t - k;
  return k;
}

/* psi*(z) of a profile into out (d values; out[coord] = z) */
static void ridge_at(const jade_hmc_ridge *R, const double *node, int d, double z, double *out) {
  double u;
  int k = ridge_interval(R, z, &u);
  for (int j = 0; j < d; j++) out[j] = (1 - u) * node[k * d + j] + u * node[(k + 1) * d + j];
  out[R->coord] = z;
}

/* the precision factor L(z) of a profile (d x d, linear between nodes) into out */
static void ridge_chol_at(const jade_hmc_ridge *R, const double *chol, int d, double z, double *out) {
  double u;
  int k = ridge_interval(R, z, &u);
  size_t dd = (size_t)d * d;
  for (size_t j = 0; j < dd; j++) out[j] = (1 - u) * chol[k * dd + j] + u * chol[(k + 1) * dd + j];
}

/* cell of z (-1 outside the cells) */
static int ridge_cell(const jade_hmc_ridge *R, double z) {
  double t = (z - R->lo) / (R->hi - R->lo) * (R->n_nodes - 1) + 0.5;
  return t >= 0 && t < R->n_nodes ? (int)t : -1;
}

/* one ridge move of every chain (see jade_hmc_ridge); Y, GY, LPY: work of nc points. Randomness:
 * the problem's stream at counters 5 x 2^54 + 4 (it C + c) + {0, 2, 3}. */
static jade_status ridge_move(jade_grad_batch_fn f, void *ctx, const jade_hmc_options *o, size_t n_prob, int d, long it,
                              const size_t *prob, double *X, double *LPX, double *G, double *Y, double *GY, double *LPY,
                              long *n_try, long *n_acc) {
  const jade_hmc_ridge *R = o->ridge;
  int C = o->n_chains, NG = R->n_nodes;
  size_t nc = n_prob * (size_t)C;
  size_t dd = (size_t)d * d;
  double h = (R->hi - R->lo) / (NG - 1), *lqr = jade_alloc(nc * sizeof(double));
  double *a = jade_alloc((4 * d + 2 * dd) * sizeof(double));
  if (!lqr || !a) {
    free(lqr);
    free(a);
    return JADE_ERR_NOMEM;
  }
  double *b = a + d, *uw = b + d, *wv = uw + d, *La = wv + d, *Lb = La + dd;
  int c0 = R->coord;
  for (size_t i = 0; i < nc; i++) {
    size_t g = i / C, pr = g / R->per_profile;
    const double *x = X + i * d, *node = R->node + pr * NG * (size_t)d, *lq = R->lq + pr * NG;
    double *y = Y + i * d;
    memcpy(y, x, (size_t)d * sizeof(double));
    lqr[i] = NAN;
    int cx = ridge_cell(R, x[R->coord]);
    if (cx < 0) continue;
    uint64_t stream = hmc_stream(o, g);
    uint64_t base = ((uint64_t)5 << 54) + ((uint64_t)it * (uint64_t)C + i % C) * 4;
    double u = jade_rng_uniform(o->seed, stream, base), v = jade_rng_uniform(o->seed, stream, base + 2), cum = 0;
    int k;
    for (k = 0; k < NG - 1; k++) { /* the cell by inversion of q's cumulative sum */
      cum += exp(lq[k]) * h;
      if (u < cum) break;
    }
    double zn = R->lo + k * h + (v - 0.5) * h;
    ridge_at(R, node, d, x[R->coord], a);
    ridge_at(R, node, d, zn, b);
    lqr[i] = lq[cx] - lq[k]; /* log q(z) - log q(z') */
    if (!R->chol) {
      for (int j = 0; j < d; j++) y[j] = x[j] + b[j] - a[j];
    } else { /* u = L(z)^T (psi - psi*(z)); L(z')^T w = u; psi' = psi*(z') + w (indices != coord) */
      const double *ch = R->chol + pr * NG * dd;
      ridge_chol_at(R, ch, d, x[c0], La);
      ridge_chol_at(R, ch, d, zn, Lb);
      for (int r = 0; r < d; r++) {
        if (r == c0) continue;
        double t = 0;
        for (int q = r; q < d; q++)
          if (q != c0) t += La[q * d + r] * (x[q] - a[q]);
        uw[r] = t;
        lqr[i] += log(La[r * d + r]) - log(Lb[r * d + r]);
      }
      for (int r = d - 1; r >= 0; r--) {
        if (r == c0) continue;
        double t = uw[r];
        for (int q = r + 1; q < d; q++)
          if (q != c0) t -= Lb[q * d + r] * wv[q];
        wv[r] = t / Lb[r * d + r];
        y[r] = b[r] + wv[r];
      }
      if (!isfinite(lqr[i])) lqr[i] = -INFINITY; /* a factor without a positive diagonal: rejected */
    }
    y[R->coord] = zn;
  }
  jade_status st = f(ctx, nc, prob, Y, LPY, GY);
  for (size_t i = 0; i < nc && !st; i++) {
    if (isnan(lqr[i])) continue;
    size_t g = i / C;
    uint64_t stream = hmc_stream(o, g);
    uint64_t base = ((uint64_t)5 << 54) + ((uint64_t)it * (uint64_t)C + i % C) * 4;
    int ok = LPY[i] > -INFINITY && isfinite(LPY[i]) &&
             log(jade_rng_uniform(o->seed, stream, base + 3)) < LPY[i] - LPX[i] + lqr[i];
    if (it >= o->n_warmup) {
      n_try[g]++;
      n_acc[g] += ok;
    }
    if (!ok) continue;
    memcpy(X + i * d, Y + i * d, (size_t)d * sizeof(double));
    memcpy(G + i * d, GY + i * d, (size_t)d * sizeof(double));
    LPX[i] = LPY[i];
  }
  free(lqr);
  free(a);
  return st;
}

/* v = L^T p for a lower-triangular d x d L */
static void hmc_lt_mul(const double *L, int d, const double *p, double *v) {
  for (int q = 0; q < d; q++) {
    double t = 0;
    for (int r = q; r < d; r++) t += L[(size_t)r * d + q] * p[r];
    v[q] = t;
  }
}

jade_status jade_hmc_run(jade_grad_batch_fn f, void *ctx, size_t n_prob, int d, const double *x0,
                         const double *inv_mass0, const jade_hmc_options *o, double *chain, jade_hmc_stats *stats) {
  int C = o->n_chains, L = o->n_leapfrog;
  if (C < 1 || d < 1 || d > 190 || o->n_warmup < 0 || o->n_steps < 1 || L < 1 || !(o->step_size > 0) ||
      !(o->target_accept > 0 && o->target_accept < 1) || o->hook_every < 1 ||
      (o->metric_per_chain && (!o->dense_metric || !o->inv_mass_chol0 || o->n_warmup > 0)))
    return jade_error(JADE_ERR_INVALID,
                      "hmc: bad options (chains %d >= 1, d %d in 1..190, warm-up %ld >= 0, steps %ld >= 1, leapfrog %d >= 1, "
                      "step size %g > 0, target acceptance %g in (0, 1); a metric per chain needs a dense initial one and no "
                      "warm-up)",
                      C, d, o->n_warmup, o->n_steps, L, o->step_size, o->target_accept);
  const jade_hmc_ridge *R = o->ridge;
  if (R && (R->coord < 0 || R->coord >= d || R->n_nodes < 2 || !(R->lo < R->hi) || !isfinite(R->hi - R->lo) ||
            R->per_profile < 1 || !R->node || !R->lq || o->ridge_every < 1))
    return jade_error(JADE_ERR_INVALID,
                      "hmc: bad ridge (coordinate %d of %d, %d nodes >= 2 over [%g, %g], %zu problems per profile, "
                      "every %ld >= 1)",
                      R->coord, d, R->n_nodes, R->lo, R->hi, R->per_profile, o->ridge_every);
  if (n_prob == 0) return JADE_OK;
  size_t nc = n_prob * (size_t)C, nd = nc * d;
  double *X = jade_alloc(nd * sizeof(double)), *G = jade_alloc(nd * sizeof(double)), *LPX = jade_alloc(nc * sizeof(double));
  double *Y = jade_alloc(nd * sizeof(double)), *GY = jade_alloc(nd * sizeof(double)), *LPY = jade_alloc(nc * sizeof(double));
  double *P = jade_alloc(nd * sizeof(double)), *H0 = jade_alloc(nc * sizeof(double)), *eps = jade_alloc(nc * sizeof(double));
  double *minv = jade_alloc(n_prob * d * sizeof(double)), *step = jade_alloc(n_prob * sizeof(double));
  /* dense metric: the lower Cholesky factor of the inverse metric Sigma = M^-1 per problem, the
   * window's co-moments, a scratch matrix, and a work vector per chain */
  const int dense = o->dense_metric;
  size_t dd = (size_t)d * d;
  double *Sg = dense ? jade_alloc(dd * sizeof(double)) : NULL;
  const int per_chain = dense && o->metric_per_chain; /* checked above: with inv_mass_chol0, no warm-up */
  double *Lch = dense ? jade_alloc((per_chain ? nc : n_prob) * dd * sizeof(double)) : NULL;
  double *wcm = dense ? jade_calloc(n_prob * dd, sizeof(double)) : NULL, *tv = jade_alloc(nd * sizeof(double));
  /* dual averaging state per problem (Hoffman & Gelman Alg. 5): mu, H-bar, log eps-bar */
  double *mu = jade_alloc(n_prob * sizeof(double)), *hbar = jade_alloc(n_prob * sizeof(double));
  double *lebar = jade_alloc(n_prob * sizeof(double));
  /* warm-up moments of the current window (Welford over all chains' draws) */
  double *wm = jade_calloc(n_prob * d, sizeof(double)), *wv = jade_calloc(n_prob * d, sizeof(double));
  long *wn = jade_calloc(n_prob, sizeof(long));
  double *acc_sum = jade_calloc(n_prob, sizeof(double));
  long *ndiv = jade_calloc(n_prob, sizeof(long));
  size_t *prob = jade_alloc(nc * sizeof(size_t));
  long *r_try = jade_calloc(n_prob, sizeof(long)), *r_acc = jade_calloc(n_prob, sizeof(long));
  jade_status st = X && G && LPX && Y && GY && LPY && P && H0 && eps && minv && step && mu && hbar && lebar && wm && wv &&
                           wn && acc_sum && ndiv && prob && r_try && r_acc && tv && (!dense || (Sg && Lch && wcm))
                       ? JADE_OK
                       : JADE_ERR_NOMEM;
  if (st) goto done;
  memcpy(X, x0, nd * sizeof(double));
  for (size_t q = 0; q < nd; q++)
    if (!isfinite(X[q])) {
      st = jade_error(JADE_ERR_NUMERIC, "hmc: initial position of chain %zu is not finite", q / d);
      goto done;
    }
  for (size_t i = 0; i < nc; i++) prob[i] = i / C;
  for (size_t g = 0; g < n_prob; g++) {
    for (int j = 0; j < d; j++) minv[g * d + j] = inv_mass0 ? inv_mass0[g * d + j] : 1.0;
    if (dense && o->inv_mass_chol0) { /* the caller's Sigma (per problem or per chain); diagonal > 0 */
      size_t nf = per_chain ? (size_t)C : 1, f0 = per_chain ? g * C : g;
      memcpy(Lch + f0 * dd, o->inv_mass_chol0 + f0 * dd, nf * dd * sizeof(double));
      for (size_t k = f0; k < f0 + nf && !st; k++)
        for (int j = 0; j < d && !st; j++) {
          double v = Lch[k * dd + (size_t)j * d + j];
          if (!(v > 0) || !isfinite(v))
            st = jade_error(JADE_ERR_INVALID, "hmc: initial metric factor of problem %zu has diagonal %g at %d", g, v, j);
        }
      if (st) goto done;
    } else if (dense) { /* Sigma starts diagonal */
      memset(Lch + g * dd, 0, dd * sizeof(double));
      for (int j = 0; j < d; j++) Lch[g * dd + (size_t)j * d + j] = sqrt(minv[g * d + j]);
    }
    step[g] = o->step0 ? o->step0[g] : o->step_size;
    if (!(step[g] > 0) || !isfinite(step[g])) {
      st = jade_error(JADE_ERR_INVALID, "hmc: step size %g of problem %zu is not positive", step[g], g);
      goto done;
    }
    mu[g] = log(10 * step[g]);
    hbar[g] = 0;
    lebar[g] = 0;
  }
  if ((st = f(ctx, nc, prob, X, LPX, G))) goto done;
  for (size_t i = 0; i < nc; i++)
    if (!(LPX[i] > -INFINITY)) {
      st = jade_error(JADE_ERR_NUMERIC, "hmc: chain %zu of problem %zu starts where the density is 0", i % C, i / C);
      goto done;
    }
  long n_iter = o->n_warmup + o->n_steps, da_t = 0;
  /* metric windows: the same (Stan) rules as jade_nuts, ends[] of the slow windows; the draws
   * before the first slow window (the initial fast buffer; with one window, its first half) do
   * not feed the metric */
  jade_nuts_config wc;
  jade_nuts_config_default(&wc);
  wc.n_warmup = o->n_warmup;
  long ends[64], slow0 = 0;
  int n_win = jade_nuts_metric_windows(&wc, ends, 64), w_idx = 0;
  if (n_win > 64) n_win = 64;
  if (n_win > 0) slow0 = n_win > 1 ? ends[0] - (ends[1] - ends[0]) / 2 : ends[0] - (ends[0] + 1) / 2;
  for (long it = 0; it < n_iter; it++) {
    int warm = it < o->n_warmup;
    /* momenta and jittered step sizes */
    for (size_t i = 0; i < nc; i++) {
      size_t g = i / C;
      uint64_t stream = hmc_stream(o, g);
      uint64_t base = ((uint64_t)1 << 54) + (((uint64_t)it * (uint64_t)C + i % C) << 8);
      jade_rng_normal_fill(o->seed, stream, base, (size_t)d, P + i * d);
      eps[i] = step[g] * (0.8 + 0.4 * jade_rng_uniform(o->seed, stream, base + 200));
      double k = 0;
      if (dense) { /* p = L^-T u, u ~ N(0, I): p ~ N(0, M), M = Sigma^-1 = L^-T L^-1; p^T Sigma p = u^T u */
        const double *Lg = Lch + (per_chain ? i : g) * dd;
        double *p = P + i * d;
        for (int j = 0; j < d; j++) k += p[j] * p[j];
        for (int r = d - 1; r >= 0; r--) {
          double t = p[r];
          for (int q = r + 1; q < d; q++) t -= Lg[(size_t)q * d + r] * p[q];
          p[r] = t / Lg[(size_t)r * d + r];
        }
      } else {
        for (int j = 0; j < d; j++) {
          P[i * d + j] /= sqrt(minv[g * d + j]); /* p ~ N(0, M), M = 1 / minv */
          k += minv[g * d + j] * P[i * d + j] * P[i * d + j];
        }
      }
      H0[i] = -LPX[i] + 0.5 * k;
    }
    memcpy(Y, X, nd * sizeof(double));
    memcpy(GY, G, nd * sizeof(double));
    for (int l = 0; l < L && !st; l++) {
      for (size_t i = 0; i < nc; i++) {
        size_t g = i / C;
        if (dense) { /* Y += eps Sigma p, Sigma p = L (L^T p) */
          const double *Lg = Lch + (per_chain ? i : g) * dd;
          double *p = P + i * d, *v = tv + i * d;
          for (int j = 0; j < d; j++) p[j] += 0.5 * eps[i] * GY[i * d + j];
          hmc_lt_mul(Lg, d, p, v);
          for (int r = 0; r < d; r++) {
            double t = 0;
            for (int q = 0; q <= r; q++) t += Lg[(size_t)r * d + q] * v[q];
            Y[i * d + r] += eps[i] * t;
          }
          continue;
        }
        for (int j = 0; j < d; j++) {
          P[i * d + j] += 0.5 * eps[i] * GY[i * d + j];
          Y[i * d + j] += eps[i] * minv[g * d + j] * P[i * d + j];
        }
      }
      st = f(ctx, nc, prob, Y, LPY, GY);
      for (size_t i = 0; i < nc && !st; i++)
        for (int j = 0; j < d; j++) P[i * d + j] += 0.5 * eps[i] * GY[i * d + j];
    }
    if (st) goto done;
    double *asum = jade_calloc(n_prob, sizeof(double));
    if (!asum) {
      st = JADE_ERR_NOMEM;
      goto done;
    }
    for (size_t i = 0; i < nc; i++) {
      size_t g = i / C;
      uint64_t stream = hmc_stream(o, g);
      uint64_t base = ((uint64_t)1 << 54) + (((uint64_t)it * (uint64_t)C + i % C) << 8);
      double k = 0;
      if (dense) { /* p^T Sigma p = |L^T p|^2 */
        hmc_lt_mul(Lch + (per_chain ? i : g) * dd, d, P + i * d, tv + i * d);
        for (int j = 0; j < d; j++) k += tv[i * d + j] * tv[i * d + j];
      } else {
        for (int j = 0; j < d; j++) k += minv[g * d + j] * P[i * d + j] * P[i * d + j];
      }
      double dH = (-LPY[i] + 0.5 * k) - H0[i];
      int div = !(dH < 1000);
      double a = div ? 0.0 : fmin(1.0, exp(-dH));
      if (!warm) ndiv[g] += div;
      asum[g] += a;
      if (!div && jade_rng_uniform(o->seed, stream, base + 201) < a) {
        memcpy(X + i * d, Y + i * d, (size_t)d * sizeof(double));
        memcpy(G + i * d, GY + i * d, (size_t)d * sizeof(double));
        LPX[i] = LPY[i];
      }
    }
    /* warm-up adaptation; the window ends are the same for every problem (lockstep) */
    int in_slow = warm && w_idx < n_win && it > slow0;
    int wend = warm && w_idx < n_win && it == ends[w_idx];
    if (wend) w_idx++;
    if (warm) da_t++;
    for (size_t g = 0; g < n_prob; g++) {
      double abar = asum[g] / C;
      if (!warm) {
        acc_sum[g] += abar;
        continue;
      }
      /* dual averaging (gamma 0.05, t0 10, kappa 0.75) */
      double m = (double)da_t;
      hbar[g] = (1 - 1 / (m + 10)) * hbar[g] + (o->target_accept - abar) / (m + 10);
      double le = mu[g] - sqrt(m) / 0.05 * hbar[g];
      double w = pow(m, -0.75);
      lebar[g] = w * le + (1 - w) * lebar[g];
      step[g] = exp(le);
      if (in_slow) /* window moments of the draws of all chains (Welford) */
        for (int c = 0; c < C; c++) {
          const double *x = X + (g * C + c) * d;
          wn[g]++;
          double *dl = tv + (g * C) * d; /* this problem's chains' work vectors are free here */
          for (int j = 0; j < d; j++) {
            dl[j] = x[j] - wm[g * d + j];
            wm[g * d + j] += dl[j] / wn[g];
            wv[g * d + j] += dl[j] * (x[j] - wm[g * d + j]);
          }
          if (dense) /* co-moments (Welford): C += dl (x - m_new)^T, lower triangle */
            for (int r = 0; r < d; r++)
              for (int q = 0; q <= r; q++) wcm[g * dd + (size_t)r * d + q] += dl[r] * (x[q] - wm[g * d + q]);
        }
      if (wend) {
        double n = (double)wn[g];
        for (int j = 0; j < d; j++) {
          if (n > 1) minv[g * d + j] = n / (n + 5) * (wv[g * d + j] / (n - 1)) + 1e-3 * 5 / (n + 5);
          wm[g * d + j] = wv[g * d + j] = 0;
        }
        if (dense) {
          /* Sigma = n/(n+5) S + 1e-3 5/(n+5) I (Stan's regularisation, dense); kept only when
           * positive definite, else the previous metric stays */
          double *S = Sg, *W = wcm + g * dd;
          if (n > 1) {
            for (int r = 0; r < d; r++)
              for (int q = 0; q <= r; q++) {
                double v = n / (n + 5) * (W[(size_t)r * d + q] / (n - 1)) + (r == q ? 1e-3 * 5 / (n + 5) : 0);
                S[(size_t)r * d + q] = S[(size_t)q * d + r] = v;
              }
            if (jade_cholesky(d, S, W) == 0) memcpy(Lch + g * dd, W, dd * sizeof(double));
          }
          memset(W, 0, dd * sizeof(double));
        }
        wn[g] = 0;
        /* new metric: restart the step-size adaptation from the current step */
        mu[g] = log(10 * step[g]);
        hbar[g] = 0;
        lebar[g] = 0;
      }
      if (it + 1 == o->n_warmup) step[g] = exp(lebar[g]);
    }
    if (wend) da_t = 0;
    free(asum);
    if (R && (it + 1) % o->ridge_every == 0 &&
        (st = ridge_move(f, ctx, o, n_prob, d, it, prob, X, LPX, G, Y, GY, LPY, r_try, r_acc)))
      goto done;
    /* replica exchange or any other state move of the caller: positions, log densities and
     * gradients of all chains, kept consistent by the hook */
    if (o->hook && (it + 1) % o->hook_every == 0 && (st = o->hook(o->hook_ctx, it, n_prob, C, d, X, LPX, G))) goto done;
    if (!warm && chain) {
      long k = it - o->n_warmup;
      for (size_t g = 0; g < n_prob; g++)
        memcpy(chain + ((g * o->n_steps + k) * C) * (size_t)d, X + g * C * (size_t)d, (size_t)C * d * sizeof(double));
    }
  }
  if (stats)
    for (size_t g = 0; g < n_prob; g++) {
      stats[g].accept = acc_sum[g] / o->n_steps;
      stats[g].step_size = step[g];
      stats[g].divergent = ndiv[g];
      stats[g].ridge_accept = r_try[g] ? (double)r_acc[g] / r_try[g] : NAN;
    }
done:
  free(Sg);
  free(Lch);
  free(wcm);
  free(tv);
  free(X);
  free(G);
  free(LPX);
  free(Y);
  free(GY);
  free(LPY);
  free(P);
  free(H0);
  free(eps);
  free(minv);
  free(step);
  free(mu);
  free(hbar);
  free(lebar);
  free(wm);
  free(wv);
  free(wn);
  free(acc_sum);
  free(ndiv);
  free(prob);
  free(r_try);
  free(r_acc);
  return st;
}
