/* Convergence diagnostics of Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021, Bayesian
 * Analysis 16:667, "Rank-normalization, folding, and localization: an improved R-hat"):
 * split chains, rank normalisation z = Phi^-1((r - 3/8) / (S + 1/4)) (eq. 14), R-hat on
 * split chains (eqs. 3-4), multi-chain autocorrelation rho_t = 1 - (W - mean_m acov_m(t)) /
 * var+ (eq. 10) truncated with Geyer's (1992) initial positive sequence made monotone,
 * ESS = MN / tau with tau = -1 + 2 sum rho_t + last even rho (eq. 11 and the antithetic
 * correction of the reference implementation, R package posterior 1.4). */
#include "jade/mcmc.h"

#include <float.h>
#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TWO_PI 6.283185307179586476925
/* Beyond this lag the autocovariances are computed all at once by FFT instead of lag by
 * lag (Geyer's truncation usually stops far earlier for mixing chains). */
#define DIRECT_MAX_LAG 128

/* ----------------------------------------------------------------------------- helpers */

static int any_nonfinite_or_constant(const double *x, size_t n) {
  if (n == 0) return 1;
  double lo = x[0], hi = x[0];
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(x[i])) return 1;
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
  }
  return fabs(hi - lo) < DBL_EPSILON;
}

/* m chains of n draws -> 2m chains of n/2 draws (first and last halves). */
static void split_chains(const double *x, int m, size_t n, double *out) {
  size_t h = n / 2;
  for (int c = 0; c < m; c++) {
    memcpy(out + (size_t)(2 * c) * h, x + (size_t)c * n, h * sizeof(double));
    memcpy(out + (size_t)(2 * c + 1) * h, x + (size_t)c * n + (n - h), h * sizeof(double));
  }
}

typedef struct {
  double v;
  size_t i;
} vi_pair;

static int cmp_vi(const void *a, const void *b) {
  double x = ((const vi_pair *)a)->v, y = ((const vi_pair *)b)->v;
  return (x > y) - (x < y);
}

/* Type-7 quantile (R's default) of sorted values: (1 - h) x_lo + h x_hi. */
static double quantile_sorted(const vi_pair *s, size_t n, double prob) {
  double index = (double)(n - 1) * prob;
  size_t lo = (size_t)floor(index), hi = (size_t)ceil(index);
  if (hi >= n) hi = n - 1;
  double q = s[lo].v;
  double h = index - (double)lo;
  if (index > (double)lo && s[hi].v != q) q = (1.0 - h) * q + h * s[hi].v;
  return q;
}

/* All m x n draws sorted once (value, original index); ranks, quantiles and the folded
 * order all derive from it. */
typedef struct {
  int m;
  size_t n, total;
  vi_pair *ord;
} sorted_draws;

static jade_status sort_draws(const double *x, int m, size_t n, sorted_draws *sd) {
  sd->m = m;
  sd->n = n;
  sd->total = (size_t)m * n;
  sd->ord = jade_alloc(sd->total * sizeof(vi_pair));
  if (!sd->ord) return JADE_ERR_NOMEM;
  for (size_t k = 0; k < sd->total; k++) {
    sd->ord[k].v = x[k];
    sd->ord[k].i = k;
  }
  qsort(sd->ord, sd->total, sizeof(vi_pair), cmp_vi);
  return JADE_OK;
}

/* Position of draw k (= c n + i) in the split layout (2m chains of h = n/2), or -1 for the
 * middle draw that splitting drops when n is odd. */
static long split_position(size_t k, size_t n) {
  size_t c = k / n, i = k % n, h = n / 2;
  if (i < h) return (long)(2 * c * h + i);
  if (i >= n - h) return (long)((2 * c + 1) * h + (i - (n - h)));
  return -1;
}

/* Rank normalisation of the split chains (Vehtari et al. 2021, eq. 14) from draws listed in
 * ascending order of the transformed value: z = Phi^-1((r - 3/8) / (S + 1/4)), r the rank
 * among the S kept draws with ties averaged. out: split layout. */
static void z_from_order(const vi_pair *ord, size_t total, size_t n, double *out) {
  size_t h = n / 2, s = total / n * 2 * h;
  size_t rank0 = 0; /* kept draws before the current tie group */
  for (size_t a = 0; a < total;) {
    size_t b = a, kept = 0;
    while (b < total && ord[b].v == ord[a].v) {
      if (split_position(ord[b].i, n) >= 0) kept++;
      b++;
    }
    if (kept) {
      double rank = (double)rank0 + 0.5 * (double)(kept + 1); /* mean of rank0+1..rank0+kept */
      double z = gsl_cdf_ugaussian_Pinv((rank - 0.375) / ((double)s + 0.25));
      for (size_t k = a; k < b; k++) {
        long pos = split_position(ord[k].i, n);
        if (pos >= 0) out[pos] = z;
      }
    }
    rank0 += kept;
    a = b;
  }
}

/* Order of |x - med| ascending, merged in O(S) from the ascending order of x: the draws
 * <= med in reverse, those > med forward. */
static void fold_order(const sorted_draws *sd, double med, vi_pair *out) {
  size_t total = sd->total, split = 0;
  while (split < total && sd->ord[split].v <= med) split++;
  size_t l = split, r = split, k = 0; /* l: one past the next "low" draw */
  while (l > 0 || r < total) {
    double fl = l > 0 ? fabs(sd->ord[l - 1].v - med) : INFINITY;
    double fr = r < total ? fabs(sd->ord[r].v - med) : INFINITY;
    if (r >= total || (l > 0 && fl <= fr)) {
      out[k].v = fl;
      out[k++].i = sd->ord[--l].i;
    } else {
      out[k].v = fr;
      out[k++].i = sd->ord[r++].i;
    }
  }
}

/* ------------------------------------------------------------------- autocovariance */

/* Radix-2 complex FFT in place (n a power of two); sign -1 forward, +1 inverse
 * (unnormalised). Twiddles computed directly to keep rounding independent of n. */
static void fft_pow2(double *re, double *im, size_t n, int sign) {
  for (size_t i = 1, j = 0; i < n; i++) {
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      double t = re[i];
      re[i] = re[j];
      re[j] = t;
      t = im[i];
      im[i] = im[j];
      im[j] = t;
    }
  }
  for (size_t len = 2; len <= n; len <<= 1) {
    size_t half = len / 2;
    for (size_t k = 0; k < half; k++) {
      double ang = sign * TWO_PI * (double)k / (double)len;
      double wr = cos(ang), wi = sin(ang);
      for (size_t i = k; i < n; i += len) {
        size_t j = i + half;
        double tr = re[j] * wr - im[j] * wi, ti = re[j] * wi + im[j] * wr;
        re[j] = re[i] - tr;
        im[j] = im[i] - ti;
        re[i] += tr;
        im[i] += ti;
      }
    }
  }
}

/* Mean over chains of the biased (1/N) autocovariance at each lag, computed on demand. */
typedef struct {
  const double *x;
  int m;
  size_t n;
  const double *cmean;
  double *acov; /* n entries, valid below `have` */
  size_t have;
} acov_state;

static jade_status acov_fft_all(acov_state *a) {
  size_t n = a->n, p = 1;
  while (p < 2 * n) p <<= 1;
  double *re = jade_alloc(2 * p * sizeof(double));
  if (!re) return JADE_ERR_NOMEM;
  double *im = re + p;
  memset(a->acov, 0, n * sizeof(double));
  for (int c = 0; c < a->m; c++) {
    const double *y = a->x + (size_t)c * n;
    for (size_t i = 0; i < p; i++) {
      re[i] = i < n ? y[i] - a->cmean[c] : 0.0;
      im[i] = 0.0;
    }
    fft_pow2(re, im, p, -1);
    for (size_t i = 0; i < p; i++) {
      re[i] = re[i] * re[i] + im[i] * im[i];
      im[i] = 0.0;
    }
    fft_pow2(re, im, p, 1);
    for (size_t t = 0; t < n; t++) a->acov[t] += re[t] / (double)p / (double)n;
  }
  for (size_t t = 0; t < n; t++) a->acov[t] /= (double)a->m;
  a->have = n;
  free(re);
  return JADE_OK;
}

static jade_status acov_get(acov_state *a, size_t t, double *out) {
  if (t >= a->have) {
    if (t >= DIRECT_MAX_LAG && a->n > 2 * DIRECT_MAX_LAG) {
      jade_status st = acov_fft_all(a);
      if (st) return st;
    } else {
      for (size_t lag = a->have; lag <= t; lag++) {
        double s = 0.0;
        for (int c = 0; c < a->m; c++) {
          const double *y = a->x + (size_t)c * a->n;
          double mu = a->cmean[c], sc = 0.0;
          for (size_t i = 0; i + lag < a->n; i++) sc += (y[i] - mu) * (y[i + lag] - mu);
          s += sc / (double)a->n;
        }
        a->acov[lag] = s / (double)a->m;
      }
      a->have = t + 1;
    }
  }
  *out = a->acov[t];
  return JADE_OK;
}

/* ESS of m chains of n draws (already split / transformed), Geyer's initial monotone
 * sequence with posterior's conventions. NaN when n < 3 or the draws are constant. */
static jade_status ess_core(const double *x, int m, size_t n, double *ess) {
  *ess = NAN;
  if (n < 3 || any_nonfinite_or_constant(x, (size_t)m * n)) return JADE_OK;
  double *cmean = jade_alloc((size_t)m * sizeof(double));
  double *acov = jade_alloc(n * sizeof(double));
  double *rho = jade_calloc(n, sizeof(double));
  jade_status st = JADE_OK;
  if (!cmean || !acov || !rho) {
    st = JADE_ERR_NOMEM;
    goto done;
  }
  double gmean = 0.0;
  for (int c = 0; c < m; c++) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += x[(size_t)c * n + i];
    cmean[c] = s / (double)n;
    gmean += cmean[c];
  }
  gmean /= m;
  acov_state a = {x, m, n, cmean, acov, 0};
  double a0, at, at1;
  if ((st = acov_get(&a, 0, &a0))) goto done;
  double mean_var = a0 * (double)n / (double)(n - 1);
  double var_plus = mean_var * (double)(n - 1) / (double)n;
  if (m > 1) {
    double vb = 0.0;
    for (int c = 0; c < m; c++) vb += (cmean[c] - gmean) * (cmean[c] - gmean);
    var_plus += vb / (m - 1);
  }
  if ((st = acov_get(&a, 1, &at))) goto done;
  double even = 1.0, odd = 1.0 - (mean_var - at) / var_plus;
  rho[0] = even;
  rho[1] = odd;
  size_t t = 0;
  while (t + 5 < n && !isnan(even + odd) && even + odd > 0) {
    t += 2;
    if ((st = acov_get(&a, t, &at)) || (st = acov_get(&a, t + 1, &at1))) goto done;
    even = 1.0 - (mean_var - at) / var_plus;
    odd = 1.0 - (mean_var - at1) / var_plus;
    if (even + odd >= 0) {
      rho[t] = even;
      rho[t + 1] = odd;
    }
  }
  size_t max_t = t;
  if (even > 0) rho[max_t] = even;
  /* initial monotone sequence: pair sums must not increase */
  for (t = 0; t + 4 <= max_t;) {
    t += 2;
    if (rho[t] + rho[t + 1] > rho[t - 2] + rho[t - 1]) {
      rho[t] = 0.5 * (rho[t - 2] + rho[t - 1]);
      rho[t + 1] = rho[t];
    }
  }
  double sum = 0.0;
  if (max_t == 0)
    sum = rho[0]; /* posterior sums rho[1:max_t], which is rho[1] when max_t = 0 */
  else
    for (size_t k = 0; k < max_t; k++) sum += rho[k];
  double total = (double)m * (double)n;
  double tau = -1.0 + 2.0 * sum + rho[max_t];
  double bound = 1.0 / log10(total); /* caps ESS at S log10(S) */
  if (tau < bound) tau = bound;
  *ess = total / tau;
done:
  free(cmean);
  free(acov);
  free(rho);
  return st;
}

/* Classic R-hat of m chains of n draws (already split). */
static double rhat_core(const double *x, int m, size_t n) {
  if (n < 2 || m < 2 || any_nonfinite_or_constant(x, (size_t)m * n)) return NAN;
  double gmean = 0.0, w = 0.0;
  double *cm = malloc((size_t)m * sizeof(double));
  if (!cm) return NAN;
  for (int c = 0; c < m; c++) {
    const double *y = x + (size_t)c * n;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += y[i];
    cm[c] = s / (double)n;
    double v = 0.0;
    for (size_t i = 0; i < n; i++) v += (y[i] - cm[c]) * (y[i] - cm[c]);
    w += v / (double)(n - 1);
    gmean += cm[c];
  }
  w /= m;
  gmean /= m;
  double vb = 0.0;
  for (int c = 0; c < m; c++) vb += (cm[c] - gmean) * (cm[c] - gmean);
  vb /= (m - 1);
  free(cm);
  double between = (double)n * vb;
  return sqrt((between / w + (double)n - 1.0) / (double)n);
}

static jade_status check_args(const double *x, int m, size_t n, const double *out) {
  if (!x || !out || m < 1 || n < 1)
    return jade_error(JADE_ERR_INVALID, "mcmc diagnostics: need x, output, m >= 1, n >= 1");
  return JADE_OK;
}

/* Split copy of x (2m chains of n/2). */
static jade_status split_copy(const double *x, int m, size_t n, double **out) {
  size_t h = n / 2, s = (size_t)(2 * m) * h;
  *out = jade_alloc((s ? s : 1) * sizeof(double));
  if (!*out) return JADE_ERR_NOMEM;
  split_chains(x, m, n, *out);
  return JADE_OK;
}

/* ESS of the indicator x <= q (split chains). */
static jade_status ess_indicator(const double *x, int m, size_t n, double q, double *ess) {
  size_t h = n / 2, s = (size_t)(2 * m) * h;
  double *ind = jade_alloc(s * sizeof(double));
  if (!ind) return JADE_ERR_NOMEM;
  for (size_t k = 0; k < (size_t)m * n; k++) {
    long pos = split_position(k, n);
    if (pos >= 0) ind[pos] = x[k] <= q ? 1.0 : 0.0;
  }
  jade_status st = ess_core(ind, 2 * m, h, ess);
  free(ind);
  return st;
}

/* The rank-based diagnostics of one quantity from its sorted draws; any output may be NULL.
 * Inputs must be finite and not constant (checked by the callers). */
typedef struct {
  double *rhat, *ess_bulk, *ess_tail, *q05, *q50, *q95;
} rank_outputs;

static jade_status rank_diagnostics(const double *x, const sorted_draws *sd, rank_outputs *o) {
  int m = sd->m;
  size_t n = sd->n, h = n / 2, s = (size_t)(2 * m) * h;
  double q05 = quantile_sorted(sd->ord, sd->total, 0.05);
  double q50 = quantile_sorted(sd->ord, sd->total, 0.5);
  double q95 = quantile_sorted(sd->ord, sd->total, 0.95);
  if (o->q05) *o->q05 = q05;
  if (o->q50) *o->q50 = q50;
  if (o->q95) *o->q95 = q95;
  jade_status st = JADE_OK;
  double *z = NULL;
  vi_pair *fold = NULL;
  if (o->rhat || o->ess_bulk) {
    if (!(z = jade_alloc(s * sizeof(double)))) return JADE_ERR_NOMEM;
    z_from_order(sd->ord, sd->total, n, z);
    if (o->ess_bulk && (st = ess_core(z, 2 * m, h, o->ess_bulk))) goto done;
  }
  if (o->rhat) {
    /* max of bulk R-hat and the R-hat of the rank-normalised folded draws |x - median| */
    double bulk = rhat_core(z, 2 * m, h);
    if (!(fold = jade_alloc(sd->total * sizeof(vi_pair)))) {
      st = JADE_ERR_NOMEM;
      goto done;
    }
    fold_order(sd, q50, fold);
    z_from_order(fold, sd->total, n, z);
    double tail = rhat_core(z, 2 * m, h);
    *o->rhat = (isnan(bulk) || isnan(tail)) ? NAN : (bulk > tail ? bulk : tail);
  }
  if (o->ess_tail) {
    double e05, e95;
    if ((st = ess_indicator(x, m, n, q05, &e05)) || (st = ess_indicator(x, m, n, q95, &e95)))
      goto done;
    *o->ess_tail = (isnan(e05) || isnan(e95)) ? NAN : (e05 < e95 ? e05 : e95);
  }
done:
  free(z);
  free(fold);
  return st;
}

/* Sorts x and runs rank_diagnostics; outputs NaN when n < 4 or x is constant/non-finite. */
static jade_status rank_run(const double *x, int m, size_t n, rank_outputs *o) {
  double *outs[6] = {o->rhat, o->ess_bulk, o->ess_tail, o->q05, o->q50, o->q95};
  for (int k = 0; k < 6; k++)
    if (outs[k]) *outs[k] = NAN;
  if (n < 4 || any_nonfinite_or_constant(x, (size_t)m * n)) return JADE_OK;
  sorted_draws sd;
  jade_status st = sort_draws(x, m, n, &sd);
  if (st) return st;
  st = rank_diagnostics(x, &sd, o);
  free(sd.ord);
  return st;
}

/* ------------------------------------------------------------------------ public API */

void jade_mcmc_mean_sd(const double *x, size_t n, double *mean, double *sd) {
  double mu = 0.0;
  for (size_t i = 0; i < n; i++) mu += x[i];
  mu = n ? mu / (double)n : NAN;
  double v = 0.0;
  for (size_t i = 0; i < n; i++) v += (x[i] - mu) * (x[i] - mu);
  if (mean) *mean = mu;
  if (sd) *sd = n > 1 ? sqrt(v / (double)(n - 1)) : NAN;
}

jade_status jade_mcmc_quantiles(const double *x, size_t n, const double *probs, int k,
                                double *out) {
  if (!x || !probs || !out || n < 1 || k < 0)
    return jade_error(JADE_ERR_INVALID, "mcmc quantiles: bad arguments");
  for (int j = 0; j < k; j++)
    if (!(probs[j] >= 0 && probs[j] <= 1))
      return jade_error(JADE_ERR_INVALID, "mcmc quantiles: probability %g not in [0, 1]",
                        probs[j]);
  sorted_draws sd;
  jade_status st = sort_draws(x, 1, n, &sd);
  if (st) return st;
  for (int j = 0; j < k; j++) out[j] = quantile_sorted(sd.ord, n, probs[j]);
  free(sd.ord);
  return JADE_OK;
}

jade_status jade_mcmc_rhat_basic(const double *x, int m, size_t n, double *rhat) {
  jade_status st = check_args(x, m, n, rhat);
  if (st) return st;
  *rhat = NAN;
  if (n < 4) return JADE_OK;
  double *s;
  if ((st = split_copy(x, m, n, &s))) return st;
  *rhat = rhat_core(s, 2 * m, n / 2);
  free(s);
  return JADE_OK;
}

jade_status jade_mcmc_rhat(const double *x, int m, size_t n, double *rhat) {
  jade_status st = check_args(x, m, n, rhat);
  if (st) return st;
  rank_outputs o = {.rhat = rhat};
  return rank_run(x, m, n, &o);
}

jade_status jade_mcmc_ess_bulk(const double *x, int m, size_t n, double *ess) {
  jade_status st = check_args(x, m, n, ess);
  if (st) return st;
  rank_outputs o = {.ess_bulk = ess};
  return rank_run(x, m, n, &o);
}

jade_status jade_mcmc_ess_tail(const double *x, int m, size_t n, double *ess) {
  jade_status st = check_args(x, m, n, ess);
  if (st) return st;
  rank_outputs o = {.ess_tail = ess};
  return rank_run(x, m, n, &o);
}

jade_status jade_mcmc_ess_mean(const double *x, int m, size_t n, double *ess) {
  jade_status st = check_args(x, m, n, ess);
  if (st) return st;
  *ess = NAN;
  if (n < 4) return JADE_OK;
  double *s;
  if ((st = split_copy(x, m, n, &s))) return st;
  st = ess_core(s, 2 * m, n / 2, ess);
  free(s);
  return st;
}

jade_status jade_mcmc_ess_quantile(const double *x, int m, size_t n, double prob, double *ess) {
  jade_status st = check_args(x, m, n, ess);
  if (st) return st;
  if (!(prob > 0 && prob <= 1))
    return jade_error(JADE_ERR_INVALID, "mcmc ess_quantile: probability %g not in (0, 1]", prob);
  *ess = NAN;
  size_t total = (size_t)m * n;
  if (n < 4 || any_nonfinite_or_constant(x, total)) return JADE_OK;
  if (prob == 1) prob = ((double)total - 0.5) / (double)total;
  double q;
  if ((st = jade_mcmc_quantiles(x, total, &prob, 1, &q))) return st;
  return ess_indicator(x, m, n, q, ess);
}

jade_status jade_mcmc_summarize(const double *x, int m, size_t n, jade_mcmc_summary *out) {
  if (!x || !out || m < 1 || n < 1)
    return jade_error(JADE_ERR_INVALID, "mcmc summarize: bad arguments");
  size_t total = (size_t)m * n;
  jade_status st;
  jade_mcmc_mean_sd(x, total, &out->mean, &out->sd);
  rank_outputs o = {&out->rhat, &out->ess_bulk, &out->ess_tail, &out->q05, &out->q50, &out->q95};
  if ((st = rank_run(x, m, n, &o))) return st;
  if (isnan(out->q50)) { /* n < 4 or constant draws: quantiles still defined when finite */
    int finite = 1;
    for (size_t i = 0; i < total; i++) finite &= isfinite(x[i]) != 0;
    if (finite) {
      double probs[3] = {0.05, 0.5, 0.95}, q[3];
      if ((st = jade_mcmc_quantiles(x, total, probs, 3, q))) return st;
      out->q05 = q[0];
      out->q50 = q[1];
      out->q95 = q[2];
    }
  }
  if ((st = jade_mcmc_ess_mean(x, m, n, &out->ess_mean))) return st;
  out->mcse_mean = out->sd / sqrt(out->ess_mean);
  /* mcse of sd by the delta method on the variance (posterior's mcse_sd) */
  double *c2 = jade_alloc(total * sizeof(double));
  if (!c2) return JADE_ERR_NOMEM;
  double ev = 0.0, e4 = 0.0, ess2;
  for (size_t i = 0; i < total; i++) {
    double c = x[i] - out->mean;
    c2[i] = c * c;
    ev += c2[i];
    e4 += c2[i] * c2[i];
  }
  ev /= (double)total;
  e4 /= (double)total;
  st = jade_mcmc_ess_mean(c2, m, n, &ess2);
  free(c2);
  if (st) return st;
  out->mcse_sd = sqrt((e4 - ev * ev) / ess2 / ev / 4.0);
  return JADE_OK;
}

void jade_mcmc_extract(const double *draws, int m, size_t n, size_t d, size_t j, double *out) {
  size_t total = (size_t)m * n;
  for (size_t k = 0; k < total; k++) out[k] = draws[k * d + j];
}

jade_status jade_mcmc_summarize_draws(const double *draws, int m, size_t n, size_t d,
                                      jade_mcmc_summary *out) {
  if (!draws || !out || m < 1 || n < 1 || d < 1)
    return jade_error(JADE_ERR_INVALID, "mcmc summarize_draws: bad arguments");
  size_t total = (size_t)m * n;
  jade_status st = JADE_OK;
#pragma omp parallel
  {
    double *col = malloc(total * sizeof(double));
    jade_status mine = col ? JADE_OK : JADE_ERR_NOMEM;
#pragma omp for schedule(dynamic, 1)
    for (size_t j = 0; j < d; j++) {
      if (mine) continue;
      jade_mcmc_extract(draws, m, n, d, j, col);
      mine = jade_mcmc_summarize(col, m, n, out + j);
    }
    free(col);
#pragma omp critical(jade_mcmc_summarize_status)
    if (mine && !st) st = mine;
  }
  if (st) return jade_error(st, "mcmc summarize_draws: a coordinate failed (%s)",
                            st == JADE_ERR_NOMEM ? "out of memory" : "see status");
  return JADE_OK;
}

int jade_mcmc_health_verdict(const jade_mcmc_health *h, char *msg, size_t len) {
  int bad = 0;
  size_t used = 0;
  msg[0] = 0;
  const double ess_min = 100.0 * h->chains;
#define ADD(...)                                                         \
  do {                                                                   \
    if (used < len) used += (size_t)snprintf(msg + used, len - used, __VA_ARGS__); \
  } while (0)
  if (!(h->max_rhat < 1.01)) { /* NaN (e.g. one chain) fails too */
    ADD("%sR-hat %.3f >= 1.01%s%s", bad ? "; " : "", h->max_rhat, h->worst_rhat_name ? " for " : "",
        h->worst_rhat_name ? h->worst_rhat_name : "");
    bad++;
  }
  double ess = fmin(h->min_ess_bulk, h->min_ess_tail);
  if (!(ess >= ess_min)) {
    ADD("%sESS %.0f < %.0f (100 per chain)%s%s", bad ? "; " : "", ess, ess_min, h->min_ess_name ? " for " : "",
        h->min_ess_name ? h->min_ess_name : "");
    bad++;
  }
  if (h->divergent > 0) {
    ADD("%s%ld divergent transitions after warm-up (%.2f%% of %ld draws)", bad ? "; " : "", h->divergent,
        100.0 * h->divergent / (double)(h->draws > 0 ? h->draws : 1), h->draws);
    bad++;
  }
  if (h->weight_ess > 0.0 && !(h->weight_ess >= ess_min)) { /* Kish ESS of the importance weights */
    ADD("%simportance weights: Kish ESS %.0f < %.0f (the weighted means rest on a few draws; the emulator is off: "
        "--theory hybrid)", bad ? "; " : "", h->weight_ess, ess_min);
    bad++;
  }
  if (!bad) ADD("usable: R-hat %.4f < 1.01, min ESS %.0f >= %.0f, no divergence", h->max_rhat, ess, ess_min);
#undef ADD
  return bad;
}

int jade_cholesky(int k, const double *a, double *l) {
  for (int i = 0; i < k; i++)
    for (int j = 0; j <= i; j++) {
      double s = a[i * k + j];
      for (int m = 0; m < j; m++) s -= l[i * k + m] * l[j * k + m];
      if (i == j) {
        if (!(s > 0.0) || !isfinite(s)) return 1;
        l[i * k + i] = sqrt(s);
      } else {
        l[i * k + j] = s / l[j * k + j];
      }
    }
  for (int i = 0; i < k; i++)
    for (int j = i + 1; j < k; j++) l[i * k + j] = 0;
  return 0;
}
