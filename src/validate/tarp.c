/* TARP expected-coverage test (Lemos, Coogan, Hezaveh & Perreault-Levasseur 2023,
 * arXiv:2302.03026, Sec. 3 / Algorithm 1), and MIRA + TARP in one sweep over the draws.
 *
 * The paper's estimator: with a reference point theta_r per simulation, the credible region of
 * level alpha is the ball around theta_r holding a fraction alpha of the posterior mass; the
 * truth lies in it iff f = P(|theta - theta_r| < |theta* - theta_r|) < alpha, and ECP(alpha) =
 * E[1(f < alpha)], which equals alpha for every alpha iff the posterior is calibrated
 * (for references drawn independently of the true theta). f is estimated with S draws. */
#include "jade/validate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void jade_tarp_opts_default(jade_tarp_opts *o) {
  o->seed = 0x54415250u; /* "TARP" */
  o->norm = JADE_NORM_TRUTHS;
  o->metric = JADE_METRIC_EUCLIDEAN;
  o->n_boot = 100;
  o->n_alpha = 101;
}

void jade_tarp_result_free(jade_tarp_result *r) {
  if (!r) return;
  free(r->alpha);
  free(r->ecp);
  free(r->lo68);
  free(r->hi68);
  free(r->lo95);
  free(r->hi95);
  free(r->count);
  memset(r, 0, sizeof *r);
}

static long count_closer(double dtruth, const double *d, size_t S) {
  long n = 0;
  for (size_t s = 0; s < S; s++) n += d[s] < dtruth;
  return n;
}

jade_status jade_tarp_truth(const float *truth, const float *draws, size_t S, size_t q,
                            const jade_minmax *mm, jade_metric metric, uint64_t seed, size_t t,
                            long *count) {
  if (!truth || !draws || !count || S == 0 || q == 0)
    return jade_error(JADE_ERR_INVALID, "jade_tarp_truth: need truth, draws, count, S >= 1, q >= 1");
  if (mm && mm->q != q)
    return jade_error(JADE_ERR_INVALID, "jade_tarp_truth: rescaling has q=%zu, data q=%zu", mm->q, q);
  double *c = malloc(q * sizeof *c), *d = malloc(S * sizeof *d);
  double *lo = mm ? malloc(q * sizeof *lo) : NULL, *inv = mm ? malloc(q * sizeof *inv) : NULL;
  jade_status st = JADE_OK;
  if (!c || !d || (mm && (!lo || !inv))) {
    st = jade_error(JADE_ERR_NOMEM, "jade_tarp_truth: out of memory (q=%zu S=%zu)", q, S);
  } else {
    if (mm) jade_minmax_map(mm, t, lo, inv);
    jade_validate_point(seed, JADE_VALTAG_TARP, t, q, c);
    double dt = jade_validate_distance(truth, c, lo, inv, metric, q);
    int finite = isfinite(dt);
    for (size_t s = 0; s < S; s++) {
      d[s] = jade_validate_distance(draws + s * q, c, lo, inv, metric, q);
      finite &= isfinite(d[s]);
    }
    if (finite)
      *count = count_closer(dt, d, S);
    else
      st = jade_error(JADE_ERR_NUMERIC, "jade_tarp_truth: truth %zu: non-finite value in the truth or its draws", t);
  }
  free(c);
  free(d);
  free(lo);
  free(inv);
  return st;
}

/* ECP on the grid from the histogram of counts: with a = alpha (S+1), fa = floor(a), g = a - fa,
 * sum_t clamp(a - count_t, 0, 1) = #{count < fa} + g #{count == fa}. cum has S+3 entries:
 * cum[k] = #{count < k}. */
static void ecp_from_cum(const long *cum, size_t S, size_t T, int n_alpha, const double *alpha,
                         double *ecp) {
  for (int j = 0; j < n_alpha; j++) {
    double a = alpha[j] * (double)(S + 1);
    size_t fa = (size_t)floor(a);
    if (fa > S + 1) fa = S + 1;
    double g = a - (double)fa;
    double n = (double)cum[fa] + g * (double)(cum[fa + 1] - cum[fa]);
    ecp[j] = n / (double)T;
  }
}

static void ecp_scalars(const double *alpha, const double *ecp, int n_alpha, double *max_dev,
                        double *area) {
  double m = 0, a = 0;
  for (int j = 0; j < n_alpha; j++) {
    double e = fabs(ecp[j] - alpha[j]);
    if (e > m) m = e;
    if (j > 0) a += 0.5 * (e + fabs(ecp[j - 1] - alpha[j - 1])) * (alpha[j] - alpha[j - 1]);
  }
  *max_dev = m;
  *area = a;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* numpy-style percentile (linear interpolation) of sorted v[0..n-1]. */
static double percentile_sorted(const double *v, int n, double pct) {
  double pos = pct / 100.0 * (double)(n - 1);
  int i = (int)floor(pos);
  if (i >= n - 1) return v[n - 1];
  double g = pos - i;
  return v[i] + g * (v[i + 1] - v[i]);
}

static double std_ddof0(const double *v, int n) {
  double m = 0, s = 0;
  for (int i = 0; i < n; i++) m += v[i];
  m /= n;
  for (int i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
  return sqrt(s / n);
}

jade_status jade_tarp_summarise(const long *count, size_t T, size_t S, const jade_tarp_opts *opts,
                                jade_tarp_result *out) {
  if (!out) return jade_error(JADE_ERR_INVALID, "jade_tarp_summarise: out is NULL");
  memset(out, 0, sizeof *out);
  jade_tarp_opts o;
  if (opts)
    o = *opts;
  else
    jade_tarp_opts_default(&o);
  if (!count || T == 0 || S == 0)
    return jade_error(JADE_ERR_INVALID, "jade_tarp_summarise: need counts, T >= 1, S >= 1");
  if (o.n_alpha < 2 || o.n_boot < 0)
    return jade_error(JADE_ERR_INVALID, "jade_tarp_summarise: need n_alpha >= 2 (got %d), n_boot >= 0 (got %d)",
                      o.n_alpha, o.n_boot);
  for (size_t t = 0; t < T; t++)
    if (count[t] < 0 || (size_t)count[t] > S)
      return jade_error(JADE_ERR_INVALID, "jade_tarp_summarise: count[%zu] = %ld outside 0..%zu",
                        t, count[t], S);
  int na = o.n_alpha, B = o.n_boot;
  size_t nb = (size_t)na;
  out->alpha = jade_alloc(nb * sizeof(double));
  out->ecp = jade_alloc(nb * sizeof(double));
  out->count = jade_alloc(T * sizeof(long));
  long *cum = jade_calloc(S + 3, sizeof *cum);
  double *bscal = NULL, *becp = NULL;
  if (B > 0) {
    out->lo68 = jade_alloc(nb * sizeof(double));
    out->hi68 = jade_alloc(nb * sizeof(double));
    out->lo95 = jade_alloc(nb * sizeof(double));
    out->hi95 = jade_alloc(nb * sizeof(double));
    bscal = jade_alloc((size_t)B * 3 * sizeof *bscal);
    becp = jade_alloc((size_t)B * nb * sizeof *becp);
  }
  if (!out->alpha || !out->ecp || !out->count || !cum ||
      (B > 0 && (!out->lo68 || !out->hi68 || !out->lo95 || !out->hi95 || !bscal || !becp))) {
    free(cum);
    free(bscal);
    free(becp);
    jade_tarp_result_free(out);
    return jade_error(JADE_ERR_NOMEM, "jade_tarp_summarise: out of memory");
  }
  out->T = T;
  out->S = S;
  out->n_alpha = na;
  out->n_boot = B;
  memcpy(out->count, count, T * sizeof *count);
  for (int j = 0; j < na; j++) out->alpha[j] = (double)j / (double)(na - 1);

  /* Point estimate. */
  for (size_t t = 0; t < T; t++) cum[count[t] + 1]++;
  for (size_t k = 1; k < S + 3; k++) cum[k] += cum[k - 1];
  ecp_from_cum(cum, S, T, na, out->alpha, out->ecp);
  ecp_scalars(out->alpha, out->ecp, na, &out->max_dev, &out->area);
  double su = 0;
  for (size_t t = 0; t < T; t++) su += ((double)count[t] + 0.5) / (double)(S + 1);
  out->signed_area = 0.5 - su / (double)T;

  /* Bootstrap over truths (references and rescaling kept fixed). */
  int nomem = 0;
  const double *alpha = out->alpha;
  uint64_t seed = o.seed;
#pragma omp parallel reduction(max : nomem)
  {
    long *bc = malloc((S + 3) * sizeof *bc);
    if (!bc && B > 0) nomem = 1;
#pragma omp for schedule(static)
    for (int b = 0; b < B; b++) {
      if (!bc) continue;
      memset(bc, 0, (S + 3) * sizeof *bc);
      uint64_t stream = JADE_STREAM(JADE_RNG_VALIDATE, JADE_VALIDATE_ID(JADE_VALTAG_TARP_BOOT, b));
      double u[256], sb = 0;
      for (size_t i0 = 0; i0 < T; i0 += 256) {
        size_t n = T - i0 < 256 ? T - i0 : 256;
        jade_rng_uniform_fill(seed, stream, i0, n, u);
        for (size_t i = 0; i < n; i++) {
          size_t k = (size_t)(u[i] * (double)T);
          if (k >= T) k = T - 1;
          bc[count[k] + 1]++;
          sb += ((double)count[k] + 0.5) / (double)(S + 1);
        }
      }
      for (size_t k = 1; k < S + 3; k++) bc[k] += bc[k - 1];
      double *e = becp + (size_t)b * nb;
      ecp_from_cum(bc, S, T, na, alpha, e);
      ecp_scalars(alpha, e, na, &bscal[3 * b], &bscal[3 * b + 1]);
      bscal[3 * b + 2] = 0.5 - sb / (double)T;
    }
    free(bc);
  }
  if (nomem) {
    free(cum);
    free(bscal);
    free(becp);
    jade_tarp_result_free(out);
    return jade_error(JADE_ERR_NOMEM, "jade_tarp_summarise: out of memory");
  }
  if (B > 0) {
    double *col = malloc((size_t)B * sizeof *col);
    if (!col) {
      free(cum);
      free(bscal);
      free(becp);
      jade_tarp_result_free(out);
      return jade_error(JADE_ERR_NOMEM, "jade_tarp_summarise: out of memory");
    }
    for (int j = 0; j < na; j++) {
      for (int b = 0; b < B; b++) col[b] = becp[(size_t)b * nb + j];
      qsort(col, (size_t)B, sizeof *col, cmp_double);
      out->lo95[j] = percentile_sorted(col, B, 2.5);
      out->lo68[j] = percentile_sorted(col, B, 16.0);
      out->hi68[j] = percentile_sorted(col, B, 84.0);
      out->hi95[j] = percentile_sorted(col, B, 97.5);
    }
    for (int k = 0; k < 3; k++) {
      for (int b = 0; b < B; b++) col[b] = bscal[3 * b + k];
      double sd = std_ddof0(col, B);
      if (k == 0) out->max_dev_err = sd;
      if (k == 1) out->area_err = sd;
      if (k == 2) out->signed_area_err = sd;
    }
    free(col);
  }
  free(cum);
  free(bscal);
  free(becp);
  return JADE_OK;
}

/* Shared driver: per truth, the MIRA p (if p != NULL) and the TARP count (if count != NULL)
 * from one sweep over the truth's draws (each row is read once and is hot in cache for the
 * second distance). */
static jade_status sweep(const char *who, const float *truths, const float *draws, size_t T,
                         size_t S, size_t q, const jade_mira_opts *mo, const jade_tarp_opts *to,
                         double *p, long *count) {
  if (!truths || !draws) return jade_error(JADE_ERR_INVALID, "%s: NULL truths or draws", who);
  size_t min_S = p ? 2 : 1;
  if (T == 0 || q == 0 || S < min_S)
    return jade_error(JADE_ERR_INVALID, "%s: need T >= 1, q >= 1, S >= %zu (T=%zu S=%zu q=%zu)",
                      who, min_S, T, S, q);
  jade_minmax mmm, mmt;
  memset(&mmm, 0, sizeof mmm);
  memset(&mmt, 0, sizeof mmt);
  int rm = p && mo->norm != JADE_NORM_NONE, rt = count && to->norm != JADE_NORM_NONE;
  int shared = rm && rt && mo->norm == to->norm; /* one map serves both */
  jade_status st = JADE_OK;
  if (rm) st = jade_minmax_compute(truths, draws, T, S, q, mo->norm, &mmm);
  if (!st && rt && !shared) st = jade_minmax_compute(truths, draws, T, S, q, to->norm, &mmt);
  if (st) {
    jade_minmax_free(&mmm);
    return jade_error_context(st, "%s", who);
  }
  const jade_minmax *pm = rm ? &mmm : NULL, *pt = rt ? (shared ? &mmm : &mmt) : NULL;
  size_t bad = T;
  int nomem = 0;
#pragma omp parallel reduction(min : bad) reduction(max : nomem)
  {
    double *cm = p ? malloc(q * sizeof *cm) : NULL, *dm = p ? malloc(S * sizeof *dm) : NULL;
    double *ct = count ? malloc(q * sizeof *ct) : NULL, *dt = count ? malloc(S * sizeof *dt) : NULL;
    double *lom = pm ? malloc(q * sizeof *lom) : NULL, *invm = pm ? malloc(q * sizeof *invm) : NULL;
    double *lot = pt && !shared ? malloc(q * sizeof *lot) : NULL;
    double *invt = pt && !shared ? malloc(q * sizeof *invt) : NULL;
    int ok = (!p || (cm && dm)) && (!count || (ct && dt)) && (!pm || (lom && invm)) &&
             (!pt || shared || (lot && invt));
    if (!ok) nomem = 1;
#pragma omp for schedule(dynamic, 1)
    for (size_t t = 0; t < T; t++) {
      if (!ok) continue;
      const float *x = truths + t * q, *y = draws + t * S * q;
      if (pm) jade_minmax_map(pm, t, lom, invm);
      if (pt && !shared) jade_minmax_map(pt, t, lot, invt);
      const double *lt = shared ? lom : lot, *it = shared ? invm : invt;
      double xm = 0, xt = 0;
      int finite = 1;
      if (p) {
        jade_validate_point(mo->seed, JADE_VALTAG_MIRA, t, q, cm);
        xm = jade_validate_distance(x, cm, lom, invm, mo->metric, q);
        finite &= isfinite(xm);
      }
      if (count) {
        jade_validate_point(to->seed, JADE_VALTAG_TARP, t, q, ct);
        xt = jade_validate_distance(x, ct, lt, it, to->metric, q);
        finite &= isfinite(xt);
      }
      for (size_t s = 0; s < S; s++) {
        const float *row = y + s * q;
        if (p) {
          dm[s] = jade_validate_distance(row, cm, lom, invm, mo->metric, q);
          finite &= isfinite(dm[s]);
        }
        if (count) {
          dt[s] = jade_validate_distance(row, ct, lt, it, to->metric, q);
          finite &= isfinite(dt[s]);
        }
      }
      if (!finite) {
        if (t < bad) bad = t;
        continue;
      }
      if (p) p[t] = jade_mira_p(xm, dm, S, jade_mira_choice(mo->seed, t, q, S));
      if (count) count[t] = count_closer(xt, dt, S);
    }
    free(cm);
    free(dm);
    free(ct);
    free(dt);
    free(lom);
    free(invm);
    free(lot);
    free(invt);
  }
  jade_minmax_free(&mmm);
  jade_minmax_free(&mmt);
  if (nomem) return jade_error(JADE_ERR_NOMEM, "%s: out of memory for workspace (q=%zu)", who, q);
  if (bad < T)
    return jade_error(JADE_ERR_NUMERIC, "%s: truth %zu: non-finite value in the truth or its draws",
                      who, bad);
  return JADE_OK;
}

jade_status jade_tarp(const float *truths, const float *draws, size_t T, size_t S, size_t q,
                      const jade_tarp_opts *opts, jade_tarp_result *out) {
  if (!out) return jade_error(JADE_ERR_INVALID, "jade_tarp: out is NULL");
  memset(out, 0, sizeof *out);
  jade_tarp_opts o;
  if (opts)
    o = *opts;
  else
    jade_tarp_opts_default(&o);
  if (T == 0) return jade_error(JADE_ERR_INVALID, "jade_tarp: T = 0");
  long *count = jade_alloc(T * sizeof *count);
  if (!count) return JADE_ERR_NOMEM;
  jade_status st = sweep("jade_tarp", truths, draws, T, S, q, NULL, &o, NULL, count);
  if (!st) st = jade_tarp_summarise(count, T, S, &o, out);
  free(count);
  return st;
}

jade_status jade_mira_tarp(const float *truths, const float *draws, size_t T, size_t S, size_t q,
                           const jade_mira_opts *mopts, const jade_tarp_opts *topts,
                           jade_mira_result *mira, jade_tarp_result *tarp) {
  if (!mira || !tarp) return jade_error(JADE_ERR_INVALID, "jade_mira_tarp: NULL result");
  memset(mira, 0, sizeof *mira);
  memset(tarp, 0, sizeof *tarp);
  jade_mira_opts mo;
  jade_tarp_opts to;
  if (mopts)
    mo = *mopts;
  else
    jade_mira_opts_default(&mo);
  if (topts)
    to = *topts;
  else
    jade_tarp_opts_default(&to);
  if (T == 0) return jade_error(JADE_ERR_INVALID, "jade_mira_tarp: T = 0");
  double *p = jade_alloc(T * sizeof *p);
  long *count = jade_alloc(T * sizeof *count);
  if (!p || !count) {
    free(p);
    free(count);
    return JADE_ERR_NOMEM;
  }
  jade_status st = sweep("jade_mira_tarp", truths, draws, T, S, q, &mo, &to, p, count);
  if (!st) st = jade_mira_summarise(p, T, S, mo.n_boot, mo.seed, mira);
  if (!st) {
    st = jade_tarp_summarise(count, T, S, &to, tarp);
    if (st) jade_mira_result_free(mira);
  }
  free(p);
  free(count);
  return st;
}
