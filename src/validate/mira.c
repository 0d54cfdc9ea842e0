/* MIRA calibration score (Sharief, Zeghal et al. 2026; spec validation.md), plus the shared
 * building blocks of the distance-based metrics: min-max rescaling, random points, distances.
 *
 * Determinism: the random centre and draw choice of truth t depend only on (seed, t); each
 * truth is processed by one thread; sums over truths are done afterwards in index order. */
#include "jade/validate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- min-max rescaling */

void jade_minmax_free(jade_minmax *m) {
  if (!m) return;
  free(m->lo1);
  free(m->lo2);
  free(m->hi1);
  free(m->hi2);
  free(m->arglo);
  free(m->arghi);
  memset(m, 0, sizeof *m);
}

/* Fold block t's extremes (bmin, bmax) into the running top-2. */
static void fold_block(jade_minmax *m, size_t t, const double *bmin, const double *bmax) {
  for (size_t i = 0; i < m->q; i++) {
    if (bmin[i] < m->lo1[i]) {
      m->lo2[i] = m->lo1[i];
      m->lo1[i] = bmin[i];
      m->arglo[i] = t;
    } else if (bmin[i] < m->lo2[i]) {
      m->lo2[i] = bmin[i];
    }
    if (bmax[i] > m->hi1[i]) {
      m->hi2[i] = m->hi1[i];
      m->hi1[i] = bmax[i];
      m->arghi[i] = t;
    } else if (bmax[i] > m->hi2[i]) {
      m->hi2[i] = bmax[i];
    }
  }
}

/* Merge partial top-2 b into a. The resulting values do not depend on the merge order (an
 * arg may, on exact ties, but then extreme and runner-up are equal). */
static void merge_top2(jade_minmax *a, const jade_minmax *b) {
  for (size_t i = 0; i < a->q; i++) {
    if (b->lo1[i] < a->lo1[i]) {
      a->lo2[i] = fmin(a->lo1[i], b->lo2[i]);
      a->lo1[i] = b->lo1[i];
      a->arglo[i] = b->arglo[i];
    } else {
      a->lo2[i] = fmin(a->lo2[i], b->lo1[i]);
    }
    if (b->hi1[i] > a->hi1[i]) {
      a->hi2[i] = fmax(a->hi1[i], b->hi2[i]);
      a->hi1[i] = b->hi1[i];
      a->arghi[i] = b->arghi[i];
    } else {
      a->hi2[i] = fmax(a->hi2[i], b->hi1[i]);
    }
  }
}

static int top2_alloc(jade_minmax *m, size_t q) {
  memset(m, 0, sizeof *m);
  m->q = q;
  m->lo1 = malloc(q * sizeof(double));
  m->lo2 = malloc(q * sizeof(double));
  m->hi1 = malloc(q * sizeof(double));
  m->hi2 = malloc(q * sizeof(double));
  m->arglo = malloc(q * sizeof(size_t));
  m->arghi = malloc(q * sizeof(size_t));
  if (!m->lo1 || !m->lo2 || !m->hi1 || !m->hi2 || !m->arglo || !m->arghi) {
    jade_minmax_free(m);
    return 0;
  }
  for (size_t i = 0; i < q; i++) {
    m->lo1[i] = m->lo2[i] = HUGE_VAL;
    m->hi1[i] = m->hi2[i] = -HUGE_VAL;
    m->arglo[i] = m->arghi[i] = (size_t)-1;
  }
  return 1;
}

jade_status jade_minmax_compute(const float *truths, const float *draws, size_t T, size_t S,
                                size_t q, jade_norm_mode mode, jade_minmax *out) {
  if (!out) return jade_error(JADE_ERR_INVALID, "jade_minmax_compute: out is NULL");
  memset(out, 0, sizeof *out);
  int all = mode == JADE_NORM_ALL, loo = mode == JADE_NORM_TRUTHS || mode == JADE_NORM_ALL;
  if (!loo && mode != JADE_NORM_TRUTHS_INCLUSIVE)
    return jade_error(JADE_ERR_INVALID, "jade_minmax_compute: unknown or empty mode %d", (int)mode);
  if (!truths || (all && !draws))
    return jade_error(JADE_ERR_INVALID, "jade_minmax_compute: NULL truths or draws");
  if (T < (size_t)(loo ? 2 : 1) || q == 0 || (all && S == 0))
    return jade_error(JADE_ERR_INVALID,
                      "jade_minmax_compute: need T >= %d (leave-one-out), q >= 1%s (T=%zu S=%zu q=%zu)",
                      loo ? 2 : 1, all ? ", S >= 1" : "", T, S, q);
  if (!top2_alloc(out, q))
    return jade_error(JADE_ERR_NOMEM, "jade_minmax_compute: out of memory (q=%zu)", q);
  out->T = T;
  out->mode = mode;
  int fail = 0;
  /* Per-thread top-2 over a static partition of the blocks; merged in whatever order the
   * threads arrive, which leaves every value unchanged (merge_top2). */
#pragma omp parallel
  {
    jade_minmax part;
    double *bmin = malloc(q * sizeof *bmin), *bmax = malloc(q * sizeof *bmax);
    int ok = top2_alloc(&part, q) && bmin && bmax;
    if (!ok) {
#pragma omp atomic write
      fail = 1;
    }
#pragma omp for schedule(static)
    for (size_t t = 0; t < T; t++) {
      if (!ok) continue;
      const float *x = truths + t * q;
      for (size_t i = 0; i < q; i++) bmin[i] = bmax[i] = x[i];
      if (all)
        for (size_t s = 0; s < S; s++) {
          const float *y = draws + (t * S + s) * q;
          for (size_t i = 0; i < q; i++) {
            if (y[i] < bmin[i]) bmin[i] = y[i];
            if (y[i] > bmax[i]) bmax[i] = y[i];
          }
        }
      fold_block(&part, t, bmin, bmax);
    }
    if (ok) {
#pragma omp critical(jade_minmax_merge)
      merge_top2(out, &part);
    }
    jade_minmax_free(&part);
    free(bmin);
    free(bmax);
  }
  if (fail) {
    jade_minmax_free(out);
    return jade_error(JADE_ERR_NOMEM, "jade_minmax_compute: out of memory (q=%zu)", q);
  }
  for (size_t i = 0; i < q; i++)
    if (!isfinite(out->lo1[i]) || !isfinite(out->hi1[i]) || (loo && (!isfinite(out->lo2[i]) || !isfinite(out->hi2[i])))) {
      jade_minmax_free(out);
      return jade_error(JADE_ERR_NUMERIC, "jade_minmax_compute: dimension %zu has no finite extremes", i);
    }
  return JADE_OK;
}

void jade_minmax_map(const jade_minmax *m, size_t t, double *lo, double *inv) {
  int loo = m->mode != JADE_NORM_TRUTHS_INCLUSIVE;
  for (size_t i = 0; i < m->q; i++) {
    double l = loo && m->arglo[i] == t ? m->lo2[i] : m->lo1[i];
    double h = loo && m->arghi[i] == t ? m->hi2[i] : m->hi1[i];
    lo[i] = l;
    inv[i] = h > l ? 1.0 / (h - l) : 1.0; /* constant dimension: shift only */
  }
}

/* ---------------------------------------------------------------- building blocks */

static uint64_t val_stream(int tag, size_t t) {
  return JADE_STREAM(JADE_RNG_VALIDATE, JADE_VALIDATE_ID(tag, t));
}

void jade_validate_point(uint64_t seed, int tag, size_t t, size_t q, double *c) {
  jade_rng_uniform_fill(seed, val_stream(tag, t), 0, q, c);
}

double jade_validate_distance(const float *x, const double *c, const double *lo,
                              const double *inv, jade_metric metric, size_t q) {
  double acc = 0.0;
  if (lo && inv) {
    if (metric == JADE_METRIC_MANHATTAN) {
#pragma omp simd reduction(+ : acc)
      for (size_t i = 0; i < q; i++) acc += fabs(((double)x[i] - lo[i]) * inv[i] - c[i]);
    } else {
#pragma omp simd reduction(+ : acc)
      for (size_t i = 0; i < q; i++) {
        double d = ((double)x[i] - lo[i]) * inv[i] - c[i];
        acc += d * d;
      }
    }
  } else {
    if (metric == JADE_METRIC_MANHATTAN) {
#pragma omp simd reduction(+ : acc)
      for (size_t i = 0; i < q; i++) acc += fabs((double)x[i] - c[i]);
    } else {
#pragma omp simd reduction(+ : acc)
      for (size_t i = 0; i < q; i++) {
        double d = (double)x[i] - c[i];
        acc += d * d;
      }
    }
  }
  return acc;
}

/* ---------------------------------------------------------------- MIRA */

void jade_mira_opts_default(jade_mira_opts *o) {
  o->seed = 0x4d495241u; /* "MIRA" */
  o->norm = JADE_NORM_NONE;
  o->metric = JADE_METRIC_EUCLIDEAN;
  o->n_boot = 100;
}

/* Calibrated: the N+2 distances (truth, chosen draw, N others) are exchangeable, so
 * count = j is uniform on 0..N and P(k = 1 | j) = (j+1)/(N+2); hence
 * E[p] = 2 sum_{m=1}^{N+1} m^2 / ((N+1)(N+2)^2) = (2N+3)/(3(N+2)). */
double jade_mira_expected(size_t S) {
  double N = (double)S - 1.0;
  return (2.0 * N + 3.0) / (3.0 * (N + 1.0));
}

size_t jade_mira_choice(uint64_t seed, size_t t, size_t q, size_t S) {
  double u = jade_rng_uniform(seed, val_stream(JADE_VALTAG_MIRA, t), (uint64_t)q);
  size_t j = (size_t)(u * (double)S);
  return j < S ? j : S - 1;
}

double jade_mira_p(double dtruth, const double *d, size_t S, size_t j) {
  double r = d[j];
  size_t count = 0;
  for (size_t s = 0; s < S; s++)
    if (s != j && d[s] < r) count++;
  double N = (double)S - 1.0, c = (double)count;
  return dtruth <= r ? (c + 1.0) / (N + 2.0) : (N - c + 1.0) / (N + 2.0);
}

/* Workspace of one thread: centre c, map lo/inv (q each, if rescaling) and distances d (S). */
typedef struct {
  double *c, *lo, *inv, *d;
} mira_ws;

static void ws_free(mira_ws *w) {
  free(w->c);
  free(w->lo);
  free(w->inv);
  free(w->d);
  memset(w, 0, sizeof *w);
}

static int ws_alloc(mira_ws *w, size_t q, size_t S, int rescale) {
  memset(w, 0, sizeof *w);
  w->c = malloc(q * sizeof(double));
  w->d = malloc(S * sizeof(double));
  if (rescale) {
    w->lo = malloc(q * sizeof(double));
    w->inv = malloc(q * sizeof(double));
  }
  if (!w->c || !w->d || (rescale && (!w->lo || !w->inv))) {
    ws_free(w);
    return 0;
  }
  return 1;
}

static jade_status mira_truth_ws(const float *truth, const float *draws, size_t S, size_t q,
                                 const jade_minmax *mm, jade_metric metric, uint64_t seed, size_t t,
                                 mira_ws *w, double *p) {
  const double *lo = NULL, *inv = NULL;
  if (mm) {
    jade_minmax_map(mm, t, w->lo, w->inv);
    lo = w->lo;
    inv = w->inv;
  }
  jade_validate_point(seed, JADE_VALTAG_MIRA, t, q, w->c);
  double dt = jade_validate_distance(truth, w->c, lo, inv, metric, q);
  int finite = isfinite(dt);
  for (size_t s = 0; s < S; s++) {
    w->d[s] = jade_validate_distance(draws + s * q, w->c, lo, inv, metric, q);
    finite &= isfinite(w->d[s]);
  }
  if (!finite) return JADE_ERR_NUMERIC;
  *p = jade_mira_p(dt, w->d, S, jade_mira_choice(seed, t, q, S));
  return JADE_OK;
}

static jade_status check_dims(const char *who, const float *truths, const float *draws, size_t T,
                              size_t S, size_t q, size_t min_S) {
  if (!truths || !draws) return jade_error(JADE_ERR_INVALID, "%s: NULL truths or draws", who);
  if (T == 0 || q == 0 || S < min_S)
    return jade_error(JADE_ERR_INVALID, "%s: need T >= 1, q >= 1, S >= %zu (T=%zu S=%zu q=%zu)",
                      who, min_S, T, S, q);
  return JADE_OK;
}

jade_status jade_mira_truth(const float *truth, const float *draws, size_t S, size_t q,
                            const jade_minmax *mm, jade_metric metric, uint64_t seed, size_t t,
                            double *p) {
  jade_status st = check_dims("jade_mira_truth", truth, draws, 1, S, q, 2);
  if (st) return st;
  if (!p) return jade_error(JADE_ERR_INVALID, "jade_mira_truth: p is NULL");
  if (mm && mm->q != q)
    return jade_error(JADE_ERR_INVALID, "jade_mira_truth: rescaling has q=%zu, data q=%zu", mm->q, q);
  mira_ws w;
  if (!ws_alloc(&w, q, S, mm != NULL))
    return jade_error(JADE_ERR_NOMEM, "jade_mira_truth: out of memory (q=%zu S=%zu)", q, S);
  st = mira_truth_ws(truth, draws, S, q, mm, metric, seed, t, &w, p);
  ws_free(&w);
  if (st) return jade_error(st, "jade_mira_truth: truth %zu: non-finite value in the truth or its draws", t);
  return JADE_OK;
}

void jade_mira_result_free(jade_mira_result *r) {
  if (!r) return;
  free(r->p);
  free(r->boot);
  memset(r, 0, sizeof *r);
}

jade_status jade_mira_summarise(const double *p, size_t T, size_t S, int n_boot, uint64_t seed,
                                jade_mira_result *out) {
  if (!out) return jade_error(JADE_ERR_INVALID, "jade_mira_summarise: out is NULL");
  memset(out, 0, sizeof *out);
  if (!p || T == 0 || S < 2 || n_boot < 0)
    return jade_error(JADE_ERR_INVALID, "jade_mira_summarise: need p, T >= 1, S >= 2, n_boot >= 0");
  double N = (double)S - 1.0, norm = (N + 2.0) / (N + 1.0);
  out->p = jade_alloc(T * sizeof *out->p);
  if (n_boot > 0) out->boot = jade_alloc((size_t)n_boot * sizeof *out->boot);
  if (!out->p || (n_boot > 0 && !out->boot)) {
    jade_mira_result_free(out);
    return JADE_ERR_NOMEM;
  }
  memcpy(out->p, p, T * sizeof *p);
  double sum = 0;
  for (size_t t = 0; t < T; t++) sum += p[t];
  out->T = T;
  out->S = S;
  out->score = sum / (double)T * norm;
  out->expected = jade_mira_expected(S);
  out->n_boot = n_boot;
  /* Bootstrap: replicate b resamples T truths with replacement using the uniforms of
   * (seed, MIRA_BOOT stream b); each replicate's sum runs in index order. */
  double *boot = out->boot;
#pragma omp parallel for schedule(static)
  for (int b = 0; b < n_boot; b++) {
    uint64_t stream = val_stream(JADE_VALTAG_MIRA_BOOT, (size_t)b);
    double u[256], acc = 0;
    for (size_t i0 = 0; i0 < T; i0 += 256) {
      size_t n = T - i0 < 256 ? T - i0 : 256;
      jade_rng_uniform_fill(seed, stream, i0, n, u);
      for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)(u[i] * (double)T);
        acc += p[k < T ? k : T - 1];
      }
    }
    boot[b] = acc / (double)T * norm;
  }
  if (n_boot > 0) {
    double m = 0, v = 0;
    for (int b = 0; b < n_boot; b++) m += boot[b];
    m /= n_boot;
    for (int b = 0; b < n_boot; b++) v += (boot[b] - m) * (boot[b] - m);
    out->err = sqrt(v / n_boot);
  }
  return JADE_OK;
}

jade_status jade_mira(const float *truths, const float *draws, size_t T, size_t S, size_t q,
                      const jade_mira_opts *opts, jade_mira_result *out) {
  if (!out) return jade_error(JADE_ERR_INVALID, "jade_mira: out is NULL");
  memset(out, 0, sizeof *out);
  jade_mira_opts o;
  if (opts)
    o = *opts;
  else
    jade_mira_opts_default(&o);
  jade_status st = check_dims("jade_mira", truths, draws, T, S, q, 2);
  if (st) return st;
  if (o.n_boot < 0) return jade_error(JADE_ERR_INVALID, "jade_mira: n_boot < 0");
  jade_minmax mm;
  memset(&mm, 0, sizeof mm);
  if (o.norm != JADE_NORM_NONE) {
    st = jade_minmax_compute(truths, draws, T, S, q, o.norm, &mm);
    if (st) return jade_error_context(st, "jade_mira");
  }
  const jade_minmax *pm = o.norm != JADE_NORM_NONE ? &mm : NULL;
  double *p = jade_alloc(T * sizeof *p);
  if (!p) {
    jade_minmax_free(&mm);
    return JADE_ERR_NOMEM;
  }
  size_t bad = T; /* lowest failing truth */
  int nomem = 0;
#pragma omp parallel reduction(min : bad) reduction(max : nomem)
  {
    mira_ws w;
    int ok = ws_alloc(&w, q, S, pm != NULL);
    if (!ok) nomem = 1;
#pragma omp for schedule(dynamic, 1)
    for (size_t t = 0; t < T; t++) {
      if (!ok) continue;
      if (mira_truth_ws(truths + t * q, draws + t * S * q, S, q, pm, o.metric, o.seed, t, &w,
                        &p[t]) != JADE_OK &&
          t < bad)
        bad = t;
    }
    ws_free(&w);
  }
  jade_minmax_free(&mm);
  if (nomem) {
    free(p);
    return jade_error(JADE_ERR_NOMEM, "jade_mira: out of memory for workspace (q=%zu)", q);
  }
  if (bad < T) {
    free(p);
    return jade_error(JADE_ERR_NUMERIC, "jade_mira: truth %zu: non-finite value in the truth or its draws", bad);
  }
  st = jade_mira_summarise(p, T, S, o.n_boot, o.seed, out);
  free(p);
  return st;
}
