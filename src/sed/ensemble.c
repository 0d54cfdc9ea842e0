/* Affine-invariant ensemble sampler (Goodman & Weare 2010, CAMCoS 5:65, stretch move; parallel
 * version with two half-ensembles as in emcee, Foreman-Mackey et al. 2013, PASP 125:306, Alg. 3),
 * batched over many independent problems (galaxies): each half-step evaluates the proposals of
 * all galaxies in one call. Integrated autocorrelation time as in emcee >= 3 (autocorrelation
 * function averaged over walkers, Sokal's automatic window with c = 5). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jade/sed.h"

void jade_ens_options_default(jade_ens_options *o) {
  o->n_walkers = 32;
  o->n_steps = 1000;
  o->n_burn = 500;
  o->thin = 1;
  o->a = 2.0;
  o->seed = 1;
  o->first_id = 0;
}

static double clean_lp(double v) { return isnan(v) ? -INFINITY : v; }

jade_status jade_ens_run(jade_ens_logp_fn f, void *ctx, size_t n_gal, int d, const double *x0,
                         const jade_ens_options *o, double *chain, double *logp_chain, double *accept) {
  int W = o->n_walkers;
  if (W < 4 || W % 2 || d < 1 || o->n_steps < 1 || o->n_burn < 0 || o->thin < 1 || !(o->a > 1))
    return jade_error(JADE_ERR_INVALID,
                      "ensemble sampler: bad options (walkers %d must be even and >= 4, d %d, steps %ld, burn %ld, "
                      "thin %d, a %g > 1)",
                      W, d, o->n_steps, o->n_burn, o->thin, o->a);
  if (n_gal == 0) return JADE_OK;
  int H = W / 2;
  size_t nw = n_gal * (size_t)W, nh = n_gal * (size_t)H;
  double *X = jade_alloc(nw * d * sizeof(double)), *LP = jade_alloc(nw * sizeof(double));
  double *Y = jade_alloc(nh * d * sizeof(double)), *LY = jade_alloc(nh * sizeof(double));
  double *Z = jade_alloc(nh * sizeof(double)), *U = jade_alloc(nh * sizeof(double));
  size_t *gal = jade_alloc(nw * sizeof(size_t));
  long *nacc = jade_calloc(n_gal, sizeof(long));
  jade_status st = JADE_OK;
  if (!X || !LP || !Y || !LY || !Z || !U || !gal || !nacc) {
    st = JADE_ERR_NOMEM;
    goto done;
  }
  memcpy(X, x0, nw * d * sizeof(double));
  for (size_t q = 0; q < nw * d; q++)
    if (!isfinite(X[q])) {
      st = jade_error(JADE_ERR_NUMERIC, "ensemble sampler: initial position of walker %zu is not finite", q / d);
      goto done;
    }
  for (size_t i = 0; i < nw; i++) gal[i] = i / W;
  if ((st = f(ctx, nw, gal, X, LP))) goto done;
  for (size_t i = 0; i < nw; i++) LP[i] = clean_lp(LP[i]);
  /* galaxy index list for the proposals: H walkers of each galaxy */
  size_t *galh = gal; /* reuse: first nh entries set per half below */
  long n_total = o->n_burn + o->n_steps;
  long n_keep = o->n_steps / o->thin;
  for (long it = 0; it < n_total; it++) {
    for (int h = 0; h < 2; h++) {
      /* propose for walkers k of half h using partners from half 1 - h */
      for (size_t g = 0; g < n_gal; g++) {
        uint64_t stream = JADE_STREAM(JADE_RNG_MCMC, o->first_id + g);
        for (int kk = 0; kk < H; kk++) {
          uint64_t base = (((uint64_t)it * 2 + h) * H + kk) * 4;
          double u1 = jade_rng_uniform(o->seed, stream, base), u2 = jade_rng_uniform(o->seed, stream, base + 1);
          double u3 = jade_rng_uniform(o->seed, stream, base + 2);
          int k = h * H + kk, j = (1 - h) * H + (int)(u2 * H);
          if (j >= (1 - h) * H + H) j = (1 - h) * H + H - 1;
          /* z ~ g(z) ∝ 1/sqrt(z) on [1/a, a] (Goodman & Weare eq. 9): z = ((a - 1) u + 1)^2 / a */
          double z = ((o->a - 1.0) * u1 + 1.0) * ((o->a - 1.0) * u1 + 1.0) / o->a;
          size_t r = g * H + kk;
          const double *xk = X + (g * W + k) * (size_t)d, *xj = X + (g * W + j) * (size_t)d;
          for (int q = 0; q < d; q++) Y[r * d + q] = xj[q] + z * (xk[q] - xj[q]);
          Z[r] = z;
          U[r] = u3;
          galh[r] = g;
        }
      }
      if ((st = f(ctx, nh, galh, Y, LY))) goto done;
      for (size_t g = 0; g < n_gal; g++)
        for (int kk = 0; kk < H; kk++) {
          size_t r = g * H + kk, wi = g * W + h * H + kk;
          double ly = clean_lp(LY[r]);
          /* accept with probability min(1, z^(d-1) p(y)/p(x)), in log space */
          double lr = (d - 1) * log(Z[r]) + ly - LP[wi];
          if (ly > -INFINITY && log(U[r]) < lr) {
            memcpy(X + wi * d, Y + r * d, (size_t)d * sizeof(double));
            LP[wi] = ly;
            if (it >= o->n_burn) nacc[g]++;
          }
        }
    }
    long s = it - o->n_burn;
    if (s >= 0 && (s + 1) % o->thin == 0 && s / o->thin < n_keep) {
      long kidx = s / o->thin;
      for (size_t g = 0; g < n_gal; g++) {
        if (chain) memcpy(chain + ((g * n_keep + kidx) * W) * (size_t)d, X + g * W * (size_t)d, (size_t)W * d * sizeof(double));
        if (logp_chain) memcpy(logp_chain + (g * n_keep + kidx) * W, LP + g * W, (size_t)W * sizeof(double));
      }
    }
  }
  if (accept)
    for (size_t g = 0; g < n_gal; g++) accept[g] = (double)nacc[g] / ((double)o->n_steps * W);
done:
  free(X);
  free(LP);
  free(Y);
  free(LY);
  free(Z);
  free(U);
  free(gal);
  free(nacc);
  return st;
}

double jade_ens_autocorr_time(const double *x, size_t n, int W, size_t stride, double c) {
  if (n < 4 || W < 1) return NAN;
  double *mu = malloc((size_t)W * sizeof(double)), *c0 = malloc((size_t)W * sizeof(double));
  if (!mu || !c0) {
    free(mu);
    free(c0);
    return NAN;
  }
  for (int w = 0; w < W; w++) {
    double m = 0, v = 0;
    for (size_t i = 0; i < n; i++) m += x[(i * W + w) * stride];
    m /= (double)n;
    for (size_t i = 0; i < n; i++) {
      double e = x[(i * W + w) * stride] - m;
      v += e * e;
    }
    mu[w] = m;
    c0[w] = v;
  }
  /* f_k = mean_w c_k(w)/c_0(w); tau(M) = 1 + 2 sum_{k<=M} f_k; window: first M >= c tau(M) */
  double tau = 1.0, result = NAN;
  int nvalid = 0;
  for (int w = 0; w < W; w++) nvalid += c0[w] > 0 && isfinite(c0[w]);
  if (nvalid == 0) goto out;
  for (size_t k = 1; k < n; k++) {
    double fk = 0;
    for (int w = 0; w < W; w++) {
      if (!(c0[w] > 0 && isfinite(c0[w]))) continue;
      double s = 0;
      for (size_t i = 0; i + k < n; i++)
        s += (x[(i * W + w) * stride] - mu[w]) * (x[((i + k) * W + w) * stride] - mu[w]);
      fk += s / c0[w];
    }
    tau += 2.0 * fk / nvalid;
    if ((double)k >= c * tau) {
      result = tau;
      goto out;
    }
  }
  result = tau; /* window never reached: the chain is too short (emcee warns) */
out:
  free(mu);
  free(c0);
  return result;
}
