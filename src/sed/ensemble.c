/* Affine-invariant ensemble sampler (Goodman & Weare 2010, CAMCoS 5:65, stretch move; parallel
 * version with two half-ensembles as in emcee, Foreman-Mackey et al. 2013, PASP 125:306, Alg. 3),
 * batched over many independent problems (galaxies): each half-step evaluates the proposals of
 * all galaxies in one call. Integrated autocorrelation time as in emcee >= 3 (autocorrelation
 * function averaged over walkers, Sokal's automatic window with c = 5). Moves mixed with
 * differential evolution (ter Braak 2006, Stat. Comput. 16:239; Nelson, Ford & Payne 2014,
 * ApJS 210:11, DEMCMC), still in two half-ensembles so that each half-step is a valid
 * Metropolis-Hastings update given the other half. Adaptive burn-in per galaxy. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <fftw3.h>

#include "jade/sed.h"

void jade_ens_options_default(jade_ens_options *o) {
  o->n_walkers = 32;
  o->n_steps = 1000;
  o->n_burn = 500;
  o->thin = 1;
  o->a = 2.0;
  o->p_de = 0.0;
  o->p_hop = 0.1;
  o->gamma = 0.0;
  o->burn_tau = 0.0;
  o->burn_check = 100;
  o->seed = 1;
  o->first_id = 0;
}

static double clean_lp(double v) { return isnan(v) ? -INFINITY : v; }

jade_status jade_ens_run(jade_ens_logp_fn f, void *ctx, size_t n_gal, int d, const double *x0,
                         const jade_ens_options *o, double *chain, double *logp_chain, double *accept) {
  jade_ens_stats *S = accept && n_gal ? jade_alloc(n_gal * sizeof(jade_ens_stats)) : NULL;
  if (accept && n_gal && !S) return JADE_ERR_NOMEM;
  jade_status st = jade_ens_run_stats(f, ctx, n_gal, d, x0, o, chain, logp_chain, S);
  if (!st && S)
    for (size_t g = 0; g < n_gal; g++) accept[g] = S[g].accept;
  free(S);
  return st;
}

enum { MV_STRETCH = 0, MV_DE = 1, MV_HOP = 2 };

jade_status jade_ens_run_stats(jade_ens_logp_fn f, void *ctx, size_t n_gal, int d, const double *x0,
                               const jade_ens_options *o, double *chain, double *logp_chain, jade_ens_stats *stats) {
  int W = o->n_walkers;
  if (W < 4 || W % 2 || d < 1 || o->n_steps < 1 || o->n_burn < 0 || o->thin < 1 || !(o->a > 1) ||
      !(o->p_de >= 0 && o->p_de <= 1) || !(o->p_hop >= 0 && o->p_hop <= 1) || !(o->gamma >= 0) ||
      !(o->burn_tau >= 0) || o->burn_check < 1 || (o->p_de > 0 && W < 8))
    return jade_error(JADE_ERR_INVALID,
                      "ensemble sampler: bad options (walkers %d must be even and >= 4 (>= 8 with DE moves), d %d, "
                      "steps %ld, burn %ld, thin %d, a %g > 1, p_de %g and p_hop %g in [0, 1], gamma %g >= 0, "
                      "burn_tau %g >= 0, burn_check %ld >= 1)",
                      W, d, o->n_steps, o->n_burn, o->thin, o->a, o->p_de, o->p_hop, o->gamma, o->burn_tau,
                      o->burn_check);
  if (n_gal == 0) return JADE_OK;
  int H = W / 2;
  int adapt = o->burn_tau > 0 && o->n_burn > 0;
  double gam = o->gamma > 0 ? o->gamma : 2.38 / sqrt(2.0 * d);
  size_t nw = n_gal * (size_t)W, nh = n_gal * (size_t)H;
  double *X = jade_alloc(nw * d * sizeof(double)), *LP = jade_alloc(nw * sizeof(double));
  double *Y = jade_alloc(nh * d * sizeof(double)), *LY = jade_alloc(nh * sizeof(double));
  double *Z = jade_alloc(nh * sizeof(double)), *U = jade_alloc(nh * sizeof(double));
  size_t *gal = jade_alloc(nw * sizeof(size_t)), *slot = jade_alloc(nh * sizeof(size_t));
  unsigned char *mv = jade_alloc(nh);
  long *nacc = jade_calloc(n_gal * 3, sizeof(long)), *ntry = jade_calloc(n_gal * 3, sizeof(long));
  long *burn = jade_alloc(n_gal * sizeof(long));
  double *tau_prev = jade_alloc(n_gal * sizeof(double)), *tau_b = jade_alloc(n_gal * sizeof(double));
  /* adaptive burn-in: the burn-in chain of every galaxy (n_burn x W x d) */
  double *bch = adapt ? jade_alloc(n_gal * (size_t)o->n_burn * W * d * sizeof(double)) : NULL;
  jade_status st = JADE_OK;
  if (!X || !LP || !Y || !LY || !Z || !U || !gal || !slot || !mv || !nacc || !ntry || !burn || !tau_prev || !tau_b ||
      (adapt && !bch)) {
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
  for (size_t g = 0; g < n_gal; g++) {
    burn[g] = adapt ? -1 : o->n_burn; /* -1: still burning (adaptive) */
    tau_prev[g] = tau_b[g] = NAN;
  }
  long n_keep = o->n_steps / o->thin;
  for (long it = 0;; it++) {
    /* active galaxies: burning, or in production before their last iteration */
    size_t na = 0;
    for (size_t g = 0; g < n_gal; g++) na += burn[g] < 0 || it < burn[g] + o->n_steps;
    if (na == 0) break;
    for (int h = 0; h < 2; h++) {
      /* propose for walkers k of half h using partners from half 1 - h */
      size_t r = 0;
      for (size_t g = 0; g < n_gal; g++) {
        if (!(burn[g] < 0 || it < burn[g] + o->n_steps)) continue;
        uint64_t stream = JADE_STREAM(JADE_RNG_MCMC, o->first_id + g);
        for (int kk = 0; kk < H; kk++, r++) {
          uint64_t base = (((uint64_t)it * 2 + h) * H + kk) * 8;
          double um = jade_rng_uniform(o->seed, stream, base), u1 = jade_rng_uniform(o->seed, stream, base + 1);
          double u2 = jade_rng_uniform(o->seed, stream, base + 2), u3 = jade_rng_uniform(o->seed, stream, base + 3);
          int k = h * H + kk, c0 = (1 - h) * H;
          const double *xk = X + (g * W + k) * (size_t)d;
          int j = c0 + (int)(u2 * H);
          if (j >= c0 + H) j = c0 + H - 1;
          const double *xj = X + (g * W + j) * (size_t)d;
          if (um < o->p_de) {
            /* DE (ter Braak 2006): y = x_k + gamma (x_i - x_j), (i, j) an ordered pair of distinct
             * walkers of the other half: the pair and its swap are equally likely, so the proposal
             * is symmetric; gamma = 2.38/sqrt(2d) x U(0.9, 1.1), or 1 (mode hopping, Nelson et al.
             * 2014 Sec. 3) with probability p_hop */
            double u4 = jade_rng_uniform(o->seed, stream, base + 4), u5 = jade_rng_uniform(o->seed, stream, base + 5);
            int i2 = c0 + (int)(u4 * (H - 1));
            if (i2 >= c0 + H - 1) i2 = c0 + H - 2;
            if (i2 >= j) i2++; /* uniform over the other half minus j */
            const double *xi = X + (g * W + i2) * (size_t)d;
            int hop = u5 < o->p_hop;
            double gg = hop ? 1.0 : gam * (0.9 + 0.2 * u1);
            for (int q = 0; q < d; q++) Y[r * d + q] = xk[q] + gg * (xi[q] - xj[q]);
            Z[r] = 1.0;
            mv[r] = hop ? MV_HOP : MV_DE;
          } else {
            /* z ~ g(z) ∝ 1/sqrt(z) on [1/a, a] (Goodman & Weare eq. 9): z = ((a - 1) u + 1)^2 / a */
            double z = ((o->a - 1.0) * u1 + 1.0) * ((o->a - 1.0) * u1 + 1.0) / o->a;
            for (int q = 0; q < d; q++) Y[r * d + q] = xj[q] + z * (xk[q] - xj[q]);
            Z[r] = pow(z, d - 1);
            mv[r] = MV_STRETCH;
          }
          U[r] = u3;
          slot[r] = g * H + kk;
          gal[r] = g;
        }
      }
      if ((st = f(ctx, r, gal, Y, LY))) goto done;
      for (size_t q = 0; q < r; q++) {
        size_t g = slot[q] / H, wi = g * W + h * H + slot[q] % H;
        double ly = clean_lp(LY[q]);
        int prod = burn[g] >= 0 && it >= burn[g];
        /* accept with probability min(1, z^(d-1) p(y)/p(x)) (stretch) or p(y)/p(x) (DE), in logs */
        double lr = log(Z[q]) + ly - LP[wi];
        int ok = ly > -INFINITY && log(U[q]) < lr;
        if (ok) {
          memcpy(X + wi * d, Y + q * d, (size_t)d * sizeof(double));
          LP[wi] = ly;
        }
        if (prod) {
          ntry[g * 3 + mv[q]]++;
          nacc[g * 3 + mv[q]] += ok;
        }
      }
    }
    for (size_t g = 0; g < n_gal; g++) {
      if (burn[g] < 0) {
        /* adaptive burn-in: keep the state; every burn_check iterations estimate tau_max on the
         * burn-in's second half (emcee's criterion, Foreman-Mackey et al. 2013 Sec. 3: run >= a
         * multiple of tau and until the estimate settles) */
        memcpy(bch + ((g * o->n_burn + it) * W) * (size_t)d, X + g * W * (size_t)d, (size_t)W * d * sizeof(double));
        long nb = it + 1;
        if (nb % o->burn_check == 0 || nb == o->n_burn) {
          long h0 = nb / 2;
          double tm = 0;
          for (int q = 0; q < d; q++) {
            double t = jade_ens_autocorr_time(bch + ((g * o->n_burn + h0) * W) * (size_t)d + q, (size_t)(nb - h0), W,
                                              (size_t)d, 5.0);
            tm = isfinite(t) ? fmax(tm, t) : INFINITY;
          }
          /* an estimate from a window shorter than ~10 tau saturates near n/10 (the chain looks
           * decorrelated only because it is short): require nb - h0 >= 10 tau as well */
          int settled = isfinite(tm) && nb >= o->burn_tau * tm && (double)(nb - h0) >= 10.0 * tm &&
                        fabs(tm - tau_prev[g]) < 0.25 * tm;
          tau_prev[g] = tm;
          if (settled || nb >= o->n_burn) {
            burn[g] = nb;
            tau_b[g] = tm;
          }
        }
        continue;
      }
      long s = it - burn[g];
      if (s >= 0 && s < o->n_steps && (s + 1) % o->thin == 0 && s / o->thin < n_keep) {
        long kidx = s / o->thin;
        if (chain) memcpy(chain + ((g * n_keep + kidx) * W) * (size_t)d, X + g * W * (size_t)d, (size_t)W * d * sizeof(double));
        if (logp_chain) memcpy(logp_chain + (g * n_keep + kidx) * W, LP + g * W, (size_t)W * sizeof(double));
      }
    }
  }
  if (stats)
    for (size_t g = 0; g < n_gal; g++) {
      jade_ens_stats *S = stats + g;
      long a = nacc[g * 3] + nacc[g * 3 + 1] + nacc[g * 3 + 2], t = ntry[g * 3] + ntry[g * 3 + 1] + ntry[g * 3 + 2];
      S->accept = (double)a / (double)t;
      S->accept_stretch = ntry[g * 3] ? (double)nacc[g * 3] / ntry[g * 3] : NAN;
      S->accept_de = ntry[g * 3 + 1] ? (double)nacc[g * 3 + 1] / ntry[g * 3 + 1] : NAN;
      S->accept_hop = ntry[g * 3 + 2] ? (double)nacc[g * 3 + 2] / ntry[g * 3 + 2] : NAN;
      S->n_burn = burn[g];
      S->tau_burn = tau_b[g];
    }
done:
  free(X);
  free(LP);
  free(Y);
  free(LY);
  free(Z);
  free(U);
  free(gal);
  free(slot);
  free(mv);
  free(nacc);
  free(ntry);
  free(burn);
  free(tau_prev);
  free(tau_b);
  free(bch);
  return st;
}

/* The autocorrelation function through the FFT (Wiener-Khinchin; emcee's autocorr.function_1d):
 * each walker's centred series, zero-padded to m >= 2n (no wrap-around), its power spectrum
 * divided by c_0(w) and summed over walkers, then one inverse transform gives
 * sum_w c_k(w) / c_0(w) for every lag k at O(W m log m), where the direct sums cost
 * O(W n M) for a window M ~ n/4 (99% of a float32 fit's time before). FFTW plans: FFTW_ESTIMATE
 * (deterministic), created under the planner lock shared with the lensing module. */
double jade_ens_autocorr_time(const double *x, size_t n, int W, size_t stride, double c) {
  if (n < 4 || W < 1) return NAN;
  size_t m = 1;
  while (m < 2 * n) m *= 2;
  size_t mc = m / 2 + 1;
  double *in = fftw_alloc_real(m), *pw = fftw_alloc_real(2 * mc), *acf = fftw_alloc_real(m);
  fftw_complex *F = fftw_alloc_complex(mc);
  double result = NAN;
  fftw_plan fwd = NULL, bwd = NULL;
  if (!in || !pw || !acf || !F) goto out;
#pragma omp critical(jade_fftw_plan)
  {
    fwd = fftw_plan_dft_r2c_1d((int)m, in, F, FFTW_ESTIMATE);
    bwd = fftw_plan_dft_c2r_1d((int)m, (fftw_complex *)pw, acf, FFTW_ESTIMATE);
  }
  if (!fwd || !bwd) goto out;
  memset(pw, 0, 2 * mc * sizeof(double));
  int nvalid = 0;
  for (int w = 0; w < W; w++) {
    double mu = 0, v = 0;
    for (size_t i = 0; i < n; i++) mu += x[(i * W + w) * stride];
    mu /= (double)n;
    for (size_t i = 0; i < n; i++) {
      in[i] = x[(i * W + w) * stride] - mu;
      v += in[i] * in[i];
    }
    if (!(v > 0 && isfinite(v))) continue;
    nvalid++;
    memset(in + n, 0, (m - n) * sizeof(double));
    fftw_execute(fwd);
    for (size_t q = 0; q < mc; q++) pw[2 * q] += (F[q][0] * F[q][0] + F[q][1] * F[q][1]) / v;
  }
  if (nvalid == 0) goto out;
  fftw_execute(bwd); /* acf[k] = m sum_w c_k(w) / c_0(w) */
  /* f_k = mean_w c_k(w)/c_0(w); tau(M) = 1 + 2 sum_{k<=M} f_k; window: first M >= c tau(M) */
  double tau = 1.0, norm = 1.0 / ((double)m * nvalid);
  for (size_t k = 1; k < n; k++) {
    tau += 2.0 * acf[k] * norm;
    if ((double)k >= c * tau) {
      result = tau;
      goto out;
    }
  }
  result = tau; /* window never reached: the chain is too short (emcee warns) */
out:
#pragma omp critical(jade_fftw_plan)
  {
    if (fwd) fftw_destroy_plan(fwd);
    if (bwd) fftw_destroy_plan(bwd);
  }
  fftw_free(in);
  fftw_free(pw);
  fftw_free(acf);
  fftw_free(F);
  return result;
}
