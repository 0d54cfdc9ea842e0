/* Per-dimension calibration: SBC ranks (Talts et al. 2018, arXiv:1804.06788), coverage of
 * central credible intervals, standardised offsets, and the rank-histogram chi-square. */
#include "jade/validate.h"

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Phi(-1), Phi(1): the central 68.27% interval. */
#define P68_LO 0.15865525393145705
#define P68_HI 0.84134474606854293

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* Type-6 quantile of sorted v[0..n-1] (Hyndman & Fan 1996): position h = p (n+1) (1-based),
 * linear between order statistics, clamped to the extremes. */
static double quantile6(const float *v, size_t n, double p) {
  double h = p * (double)(n + 1);
  if (h <= 1.0) return v[0];
  if (h >= (double)n) return v[n - 1];
  size_t j = (size_t)floor(h); /* 1 <= j < n */
  double g = h - (double)j;
  return (double)v[j - 1] + g * ((double)v[j] - (double)v[j - 1]);
}

/* buf: workspace of S floats. */
static int coverage_truth_ws(const float *truth, const float *draws, size_t S, size_t q,
                             const size_t *dims, size_t nd, int *rank, unsigned char *in68,
                             unsigned char *in95, double *z, float *buf) {
  for (size_t k = 0; k < nd; k++) {
    size_t i = dims ? dims[k] : k;
    double x = truth[i], m = 0, v = 0;
    int r = 0, finite = isfinite(x);
    for (size_t s = 0; s < S; s++) {
      float y = draws[s * q + i];
      buf[s] = y;
      finite &= isfinite(y);
      r += (double)y < x;
      m += y;
    }
    if (!finite) return 0;
    m /= (double)S;
    for (size_t s = 0; s < S; s++) v += ((double)buf[s] - m) * ((double)buf[s] - m);
    double sd = sqrt(v / (double)(S - 1));
    qsort(buf, S, sizeof *buf, cmp_float);
    rank[k] = r;
    in68[k] = x >= quantile6(buf, S, P68_LO) && x <= quantile6(buf, S, P68_HI);
    in95[k] = x >= quantile6(buf, S, 0.025) && x <= quantile6(buf, S, 0.975);
    /* A degenerate posterior (all draws equal) has z = 0 if it hits the truth, else +-inf. */
    z[k] = sd > 0 ? (m - x) / sd : (m == x ? 0.0 : (m > x ? HUGE_VAL : -HUGE_VAL));
  }
  return 1;
}

static jade_status check_dims(const char *who, size_t q, const size_t *dims, size_t nd) {
  if (nd == 0) return jade_error(JADE_ERR_INVALID, "%s: no dimensions selected", who);
  if (dims)
    for (size_t k = 0; k < nd; k++)
      if (dims[k] >= q)
        return jade_error(JADE_ERR_INVALID, "%s: dims[%zu] = %zu out of range (q = %zu)", who, k,
                          dims[k], q);
  if (!dims && nd > q)
    return jade_error(JADE_ERR_INVALID, "%s: nd = %zu > q = %zu", who, nd, q);
  return JADE_OK;
}

jade_status jade_coverage_truth(const float *truth, const float *draws, size_t S, size_t q,
                                const size_t *dims, size_t nd, int *rank, unsigned char *in68,
                                unsigned char *in95, double *z) {
  if (!truth || !draws || !rank || !in68 || !in95 || !z || S < 2 || q == 0)
    return jade_error(JADE_ERR_INVALID, "jade_coverage_truth: NULL argument or S < 2 or q = 0");
  jade_status st = check_dims("jade_coverage_truth", q, dims, nd);
  if (st) return st;
  float *buf = jade_alloc(S * sizeof *buf);
  if (!buf) return JADE_ERR_NOMEM;
  int ok = coverage_truth_ws(truth, draws, S, q, dims, nd, rank, in68, in95, z, buf);
  free(buf);
  if (!ok) return jade_error(JADE_ERR_NUMERIC, "jade_coverage_truth: non-finite truth or draw");
  return JADE_OK;
}

jade_status jade_rank_chi2(const int *ranks, size_t n, size_t stride, size_t S, int nbins,
                           double *chi2, double *pvalue) {
  if (!ranks || n == 0 || !chi2 || nbins < 2 || (size_t)nbins > S + 1)
    return jade_error(JADE_ERR_INVALID, "jade_rank_chi2: need ranks, n >= 1, 2 <= nbins <= S+1 (nbins=%d S=%zu)",
                      nbins, S);
  if (stride == 0) stride = 1;
  double *obs = calloc((size_t)nbins, sizeof *obs), *width = calloc((size_t)nbins, sizeof *width);
  if (!obs || !width) {
    free(obs);
    free(width);
    return jade_error(JADE_ERR_NOMEM, "jade_rank_chi2: out of memory");
  }
  for (size_t r = 0; r <= S; r++) width[r * (size_t)nbins / (S + 1)] += 1.0;
  for (size_t i = 0; i < n; i++) {
    int r = ranks[i * stride];
    if (r < 0 || (size_t)r > S) {
      free(obs);
      free(width);
      return jade_error(JADE_ERR_INVALID, "jade_rank_chi2: rank %d outside 0..%zu", r, S);
    }
    obs[(size_t)r * (size_t)nbins / (S + 1)] += 1.0;
  }
  double c = 0;
  for (int b = 0; b < nbins; b++) {
    double e = (double)n * width[b] / (double)(S + 1);
    c += (obs[b] - e) * (obs[b] - e) / e;
  }
  free(obs);
  free(width);
  *chi2 = c;
  if (pvalue) *pvalue = gsl_cdf_chisq_Q(c, (double)(nbins - 1));
  return JADE_OK;
}

void jade_coverage_result_free(jade_coverage_result *r) {
  if (!r) return;
  free(r->dims);
  free(r->rank);
  free(r->in68);
  free(r->in95);
  free(r->z);
  free(r->cov68);
  free(r->cov68_se);
  free(r->cov95);
  free(r->cov95_se);
  free(r->offset);
  free(r->offset_se);
  free(r->z2);
  free(r->z2_se);
  free(r->rank_chi2);
  free(r->rank_pvalue);
  memset(r, 0, sizeof *r);
}

/* Mean and standard error (std with ddof 1 / sqrt(n)) of v[k], v[k+stride], ... (n values),
 * of v^2 if square; summed in index order. */
static void mean_se(const double *v, size_t n, size_t stride, int square, double *mean, double *se) {
  double m = 0, s = 0;
  for (size_t t = 0; t < n; t++) {
    double x = v[t * stride];
    m += square ? x * x : x;
  }
  m /= (double)n;
  for (size_t t = 0; t < n; t++) {
    double x = v[t * stride];
    x = square ? x * x : x;
    s += (x - m) * (x - m);
  }
  *mean = m;
  *se = n > 1 ? sqrt(s / (double)(n - 1) / (double)n) : 0.0;
}

jade_status jade_coverage_summarise(const int *rank, const unsigned char *in68,
                                    const unsigned char *in95, const double *z, size_t T, size_t S,
                                    const size_t *dims, size_t nd, int n_rank_bins,
                                    jade_coverage_result *out) {
  if (!out) return jade_error(JADE_ERR_INVALID, "jade_coverage_summarise: out is NULL");
  memset(out, 0, sizeof *out);
  if (!rank || !in68 || !in95 || !z || T == 0 || S < 2 || nd == 0)
    return jade_error(JADE_ERR_INVALID, "jade_coverage_summarise: NULL input, T = 0, S < 2 or nd = 0");
  if (n_rank_bins <= 0) n_rank_bins = S + 1 < 20 ? (int)(S + 1) : 20;
  if ((size_t)n_rank_bins > S + 1)
    return jade_error(JADE_ERR_INVALID, "jade_coverage_summarise: %d rank bins > S+1 = %zu",
                      n_rank_bins, S + 1);
  size_t Tn = T * nd;
  jade_coverage_result *r = out;
  r->dims = jade_alloc(nd * sizeof *r->dims);
  r->rank = jade_alloc(Tn * sizeof *r->rank);
  r->in68 = jade_alloc(Tn);
  r->in95 = jade_alloc(Tn);
  r->z = jade_alloc(Tn * sizeof *r->z);
  double **vecs[] = {&r->cov68, &r->cov68_se, &r->cov95, &r->cov95_se, &r->offset,
                     &r->offset_se, &r->z2, &r->z2_se, &r->rank_chi2, &r->rank_pvalue};
  int ok = r->dims && r->rank && r->in68 && r->in95 && r->z;
  for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) {
    *vecs[i] = jade_alloc(nd * sizeof(double));
    ok = ok && *vecs[i];
  }
  if (!ok) {
    jade_coverage_result_free(r);
    return jade_error(JADE_ERR_NOMEM, "jade_coverage_summarise: out of memory");
  }
  r->T = T;
  r->S = S;
  r->nd = nd;
  r->n_rank_bins = n_rank_bins;
  for (size_t k = 0; k < nd; k++) r->dims[k] = dims ? dims[k] : k;
  memcpy(r->rank, rank, Tn * sizeof *rank);
  memcpy(r->in68, in68, Tn);
  memcpy(r->in95, in95, Tn);
  memcpy(r->z, z, Tn * sizeof *z);
  for (size_t k = 0; k < nd; k++) {
    double n68 = 0, n95 = 0;
    for (size_t t = 0; t < T; t++) {
      n68 += in68[t * nd + k];
      n95 += in95[t * nd + k];
    }
    r->cov68[k] = n68 / (double)T;
    r->cov95[k] = n95 / (double)T;
    r->cov68_se[k] = sqrt(r->cov68[k] * (1 - r->cov68[k]) / (double)T);
    r->cov95_se[k] = sqrt(r->cov95[k] * (1 - r->cov95[k]) / (double)T);
    mean_se(z + k, T, nd, 0, &r->offset[k], &r->offset_se[k]);
    mean_se(z + k, T, nd, 1, &r->z2[k], &r->z2_se[k]);
    jade_status st = jade_rank_chi2(rank + k, T, nd, S, n_rank_bins, &r->rank_chi2[k],
                                    &r->rank_pvalue[k]);
    if (st) {
      jade_coverage_result_free(r);
      return jade_error_context(st, "jade_coverage_summarise: dimension %zu", k);
    }
  }
  return JADE_OK;
}

jade_status jade_coverage(const float *truths, const float *draws, size_t T, size_t S, size_t q,
                          const size_t *dims, size_t nd, int n_rank_bins,
                          jade_coverage_result *out) {
  if (!out) return jade_error(JADE_ERR_INVALID, "jade_coverage: out is NULL");
  memset(out, 0, sizeof *out);
  if (!truths || !draws || T == 0 || S < 2 || q == 0)
    return jade_error(JADE_ERR_INVALID, "jade_coverage: need truths, draws, T >= 1, S >= 2, q >= 1 (T=%zu S=%zu q=%zu)",
                      T, S, q);
  if (!dims && nd == 0) nd = q;
  jade_status st = check_dims("jade_coverage", q, dims, nd);
  if (st) return st;
  size_t Tn = T * nd;
  int *rank = jade_alloc(Tn * sizeof *rank);
  unsigned char *in68 = jade_alloc(Tn), *in95 = jade_alloc(Tn);
  double *z = jade_alloc(Tn * sizeof *z);
  if (!rank || !in68 || !in95 || !z) {
    free(rank);
    free(in68);
    free(in95);
    free(z);
    return jade_error(JADE_ERR_NOMEM, "jade_coverage: out of memory (T=%zu nd=%zu)", T, nd);
  }
  size_t bad = T;
  int nomem = 0;
#pragma omp parallel reduction(min : bad) reduction(max : nomem)
  {
    float *buf = malloc(S * sizeof *buf);
    if (!buf) nomem = 1;
#pragma omp for schedule(static)
    for (size_t t = 0; t < T; t++) {
      if (!buf) continue;
      if (!coverage_truth_ws(truths + t * q, draws + t * S * q, S, q, dims, nd, rank + t * nd,
                             in68 + t * nd, in95 + t * nd, z + t * nd, buf) &&
          t < bad)
        bad = t;
    }
    free(buf);
  }
  if (nomem)
    st = jade_error(JADE_ERR_NOMEM, "jade_coverage: out of memory for workspace");
  else if (bad < T)
    st = jade_error(JADE_ERR_NUMERIC, "jade_coverage: truth %zu: non-finite truth or draw", bad);
  else
    st = jade_coverage_summarise(rank, in68, in95, z, T, S, dims, nd, n_rank_bins, out);
  free(rank);
  free(in68);
  free(in95);
  free(z);
  return st;
}
