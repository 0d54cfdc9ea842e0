/* Calibration metrics (MIRA, TARP, per-dimension coverage) on synthetic posteriors whose
 * calibration is known by construction.
 *
 * Standard construction, independently in each of q dimensions:
 *   theta ~ N(0, 1) (prior), x = theta + sigma_n eps, eps ~ N(0, 1), sigma_n = 1;
 *   exact posterior N(mu, v), mu = x / (1 + sigma_n^2), v = sigma_n^2 / (1 + sigma_n^2);
 *   "draws" = mu + b sqrt(v) + s sqrt(v) xi, xi ~ N(0, 1):
 *   calibrated s = 1, b = 0; too narrow (overconfident) s = 0.5; too wide (underconfident)
 *   s = 2; biased b = 1 (one posterior std in every dimension).
 * All four cases share the random numbers (paired comparison), and q runs from 1 to 256. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jade/core.h"
#include "jade/validate.h"
#include "test_util.h"

enum { CAL = 0, NARROW = 1, WIDE = 2, BIASED = 3 };
static const char *case_name[] = {"calibrated", "narrow", "wide", "biased"};

/* truths (T, q) and draws (T, S, q) for the case; caller frees. */
static void make_posterior(int kind, size_t T, size_t S, size_t q, uint64_t seed, float **truths,
                           float **draws) {
  const double sn2 = 1.0, v = sn2 / (1.0 + sn2), sv = sqrt(v);
  const double s = kind == NARROW ? 0.5 : kind == WIDE ? 2.0 : 1.0;
  const double b = kind == BIASED ? 1.0 : 0.0;
  float *tr = malloc(T * q * sizeof *tr), *dr = malloc(T * S * q * sizeof *dr);
  double *z = malloc(q * (S + 2) * sizeof *z);
  if (!tr || !dr || !z) exit(2);
  for (size_t t = 0; t < T; t++) {
    jade_rng_normal_fill(seed, JADE_STREAM(JADE_RNG_TEST, 77), t * q * (S + 2), q * (S + 2), z);
    for (size_t i = 0; i < q; i++) {
      double theta = z[i], x = theta + sqrt(sn2) * z[q + i], mu = x / (1.0 + sn2);
      tr[t * q + i] = (float)theta;
      for (size_t k = 0; k < S; k++)
        dr[(t * S + k) * q + i] = (float)(mu + b * sv + s * sv * z[2 * q + k * q + i]);
    }
  }
  free(z);
  *truths = tr;
  *draws = dr;
}

/* Truth exchangeable with its draws: all S+1 points iid N(m_t, 1), m_t ~ N(0, 1). */
static void make_exchangeable(size_t T, size_t S, size_t q, uint64_t seed, float **truths,
                              float **draws) {
  float *tr = malloc(T * q * sizeof *tr), *dr = malloc(T * S * q * sizeof *dr);
  double *z = malloc(q * (S + 2) * sizeof *z);
  if (!tr || !dr || !z) exit(2);
  for (size_t t = 0; t < T; t++) {
    jade_rng_normal_fill(seed, JADE_STREAM(JADE_RNG_TEST, 78), t * q * (S + 2), q * (S + 2), z);
    for (size_t i = 0; i < q; i++) {
      tr[t * q + i] = (float)(z[i] + z[q + i]);
      for (size_t k = 0; k < S; k++) dr[(t * S + k) * q + i] = (float)(z[i] + z[2 * q + k * q + i]);
    }
  }
  free(z);
  *truths = tr;
  *draws = dr;
}

/* ------------------------------------------------------------------ exact formulas */

/* Independent re-implementation of the MIRA p and TARP count on a tiny problem. */
static void test_formulas(void) {
  const size_t T = 6, S = 7, q = 3;
  float *tr, *dr;
  make_exchangeable(T, S, q, 5, &tr, &dr);
  jade_mira_opts mo;
  jade_mira_opts_default(&mo);
  mo.n_boot = 10;
  jade_mira_result mr;
  CHECK_OK(jade_mira(tr, dr, T, S, q, &mo, &mr));
  double sum = 0;
  for (size_t t = 0; t < T; t++) {
    double c[3];
    jade_rng_uniform_fill(mo.seed, JADE_STREAM(JADE_RNG_VALIDATE, ((uint64_t)1 << 40) | t), 0, q, c);
    double u = jade_rng_uniform(mo.seed, JADE_STREAM(JADE_RNG_VALIDATE, ((uint64_t)1 << 40) | t), q);
    size_t j = (size_t)(u * S);
    double d[7], dt = 0;
    for (size_t i = 0; i < q; i++) dt += (tr[t * q + i] - c[i]) * (tr[t * q + i] - c[i]);
    dt = sqrt(dt);
    for (size_t s = 0; s < S; s++) {
      double a = 0;
      for (size_t i = 0; i < q; i++) {
        double e = dr[(t * S + s) * q + i] - c[i];
        a += e * e;
      }
      d[s] = sqrt(a);
    }
    int count = 0;
    for (size_t s = 0; s < S; s++) count += s != j && d[s] < d[j];
    int k = dt <= d[j];
    double N = S - 1.0;
    double p = k * (count + 1.0) / (N + 2) + (1 - k) * (N - count + 1.0) / (N + 2);
    CHECK_LT(fabs(p - mr.p[t]), 1e-14, "MIRA p[%zu] = %g, by hand %g", t, mr.p[t], p);
    sum += p;
  }
  CHECK_CLOSE(mr.score, sum / T / ((S - 1.0 + 1) / (S - 1.0 + 2)), 1e-14);
  CHECK(jade_test_gt_ok(mr.err, 0) && mr.n_boot == 10, "bootstrap error %g", mr.err);
  CHECK_CLOSE(jade_mira_expected(500), 1001.0 / 1500.0, 1e-15);
  jade_mira_result_free(&mr);

  /* TARP with min-max over the truths (default). */
  jade_tarp_opts to;
  jade_tarp_opts_default(&to);
  to.n_boot = 0;
  to.n_alpha = 11;
  jade_tarp_result trr;
  CHECK_OK(jade_tarp(tr, dr, T, S, q, &to, &trr));
  for (size_t t = 0; t < T; t++) {
    /* Leave-one-out box: extremes over the other truths. */
    double lo[3], hi[3];
    for (size_t i = 0; i < q; i++) {
      lo[i] = INFINITY;
      hi[i] = -INFINITY;
      for (size_t u = 0; u < T; u++)
        if (u != t) {
          lo[i] = jade_test_min(lo[i], tr[u * q + i]);
          hi[i] = jade_test_max(hi[i], tr[u * q + i]);
        }
    }
    double c[3], dt = 0;
    jade_rng_uniform_fill(to.seed, JADE_STREAM(JADE_RNG_VALIDATE, ((uint64_t)2 << 40) | t), 0, q, c);
    for (size_t i = 0; i < q; i++) {
      double e = (tr[t * q + i] - lo[i]) / (hi[i] - lo[i]) - c[i];
      dt += e * e;
    }
    long count = 0;
    for (size_t s = 0; s < S; s++) {
      double a = 0;
      for (size_t i = 0; i < q; i++) {
        double e = (dr[(t * S + s) * q + i] - lo[i]) / (hi[i] - lo[i]) - c[i];
        a += e * e;
      }
      count += a < dt;
    }
    CHECK(count == trr.count[t], "TARP count[%zu] = %ld, by hand %ld", t, trr.count[t], count);
  }
  /* ECP(alpha) = mean_t clamp(alpha (S+1) - count_t, 0, 1), checked on the grid. */
  for (int jj = 0; jj < trr.n_alpha; jj++) {
    double a = trr.alpha[jj], e = 0;
    for (size_t t = 0; t < T; t++) e += fmin(1.0, fmax(0.0, a * (S + 1) - trr.count[t]));
    CHECK_LT(fabs(e / T - trr.ecp[jj]), 1e-14, "ECP(%g) = %g, by hand %g", a, trr.ecp[jj], e / T);
  }
  CHECK(trr.ecp[0] == 0.0 && trr.ecp[trr.n_alpha - 1] == 1.0, "ECP ends %g %g", trr.ecp[0],
        trr.ecp[trr.n_alpha - 1]);
  jade_tarp_result_free(&trr);

  /* Hand-made counts: all truths at rank 0 (underconfident extreme) and at rank S. */
  long c0[4] = {0, 0, 0, 0}, cS[4] = {9, 9, 9, 9};
  CHECK_OK(jade_tarp_summarise(c0, 4, 9, &to, &trr));
  CHECK(jade_test_gt_ok(trr.signed_area, 0.44) && jade_test_lt_ok(fabs(trr.ecp[1] - 1.0), 1e-12), "rank-0 curve: area %g ECP(0.1) %g",
        trr.signed_area, trr.ecp[1]);
  jade_tarp_result_free(&trr);
  CHECK_OK(jade_tarp_summarise(cS, 4, 9, &to, &trr));
  CHECK(jade_test_lt_ok(trr.signed_area, -0.44) && jade_test_lt_ok(trr.ecp[9], 1e-12), "rank-S curve: area %g ECP(0.9) %g",
        trr.signed_area, trr.ecp[9]);
  jade_tarp_result_free(&trr);

  /* Rank chi-square: perfectly uniform ranks give chi2 = 0. */
  int ranks[40];
  for (int i = 0; i < 40; i++) ranks[i] = i % 10;
  double chi2, pv;
  CHECK_OK(jade_rank_chi2(ranks, 40, 1, 9, 5, &chi2, &pv));
  CHECK(jade_test_lt_ok(chi2, 1e-12) && jade_test_gt_ok(pv, 0.999), "uniform ranks: chi2 %g p %g", chi2, pv);
  for (int i = 0; i < 40; i++) ranks[i] = 0;
  CHECK_OK(jade_rank_chi2(ranks, 40, 1, 9, 5, &chi2, &pv));
  CHECK(jade_test_lt_ok(fabs(chi2 - 160.0), 1e-9) && jade_test_lt_ok(pv, 1e-30), "all-zero ranks: chi2 %g (160) p %g", chi2, pv);

  /* Coverage on one hand-made truth: draws 1..9, truth 5 -> rank 4, inside both intervals;
   * z = (5 - 5)/sd = 0; truth 0.5 -> rank 0, outside. */
  float drw[9], tr1 = 5.0f, tr2 = 0.5f;
  for (int i = 0; i < 9; i++) drw[i] = (float)(9 - i);
  int rk;
  unsigned char a68, a95;
  double zz;
  CHECK_OK(jade_coverage_truth(&tr1, drw, 9, 1, NULL, 1, &rk, &a68, &a95, &zz));
  CHECK(rk == 4 && a68 && a95 && jade_test_lt_ok(fabs(zz), 1e-12), "truth 5: rank %d in68 %d in95 %d z %g", rk, a68, a95, zz);
  CHECK_OK(jade_coverage_truth(&tr2, drw, 9, 1, NULL, 1, &rk, &a68, &a95, &zz));
  CHECK(rk == 0 && !a68 && !a95 && jade_test_lt_ok(fabs(zz - 4.5 / sqrt(7.5)), 1e-12), "truth 0.5: rank %d z %g", rk, zz);
  free(tr);
  free(dr);
}

/* ------------------------------------------------------------------ exact expectation */

/* Exchangeable truth: E[score] = (2N+3)/(3(N+1)) exactly; with S = 5 that is 11/15 = 0.7333,
 * far from the large-S limit 2/3, so the finite-S formula itself is tested. */
static void test_mira_exact_expectation(void) {
  const size_t T = 20000, S = 5, q = 2;
  float *tr, *dr;
  make_exchangeable(T, S, q, 11, &tr, &dr);
  jade_mira_result mr;
  CHECK_OK(jade_mira(tr, dr, T, S, q, NULL, &mr));
  double ex = jade_mira_expected(S);
  printf("exchangeable T=%zu S=%zu: MIRA %.4f +- %.4f, exact %.4f, 2/3 = %.4f\n", T, S, mr.score,
         mr.err, ex, 2.0 / 3.0);
  CHECK_CLOSE(ex, 11.0 / 15.0, 1e-15);
  CHECK_LT(fabs(mr.score - ex), 3.5 * mr.err, "MIRA %g vs exact %g (err %g)", mr.score, ex, mr.err);
  CHECK_GT(mr.score - 2.0 / 3.0, 10 * mr.err, "finite-S excess not seen: %g", mr.score);
  /* The bootstrap error agrees with the analytic one: E[p^2] = (N+1)/(2(N+2)). */
  double N = S - 1.0, Ep = (2 * N + 3) / (3 * (N + 2)), Vp = (N + 1) / (2 * (N + 2)) - Ep * Ep;
  double se = sqrt(Vp / T) * (N + 2) / (N + 1);
  CHECK_LT(fabs(mr.err / se - 1), 0.3, "bootstrap err %g vs analytic %g", mr.err, se);
  jade_mira_result_free(&mr);
  free(tr);
  free(dr);
}

/* ------------------------------------------------------------------ the four cases */

typedef struct {
  double mira, mira_err, mira_exp;
  double tarp_max, tarp_area, tarp_sa, tarp_sa_err, band_z;
  double cov68, cov68_se, cov95, cov95_se, off, off_se, z2, z2_se, rank_p, rank_p_min;
} metrics;

static metrics run_case(int kind, size_t T, size_t S, size_t q, jade_metric metric) {
  float *tr, *dr;
  make_posterior(kind, T, S, q, 2024, &tr, &dr);
  jade_mira_opts mo;
  jade_tarp_opts to;
  jade_mira_opts_default(&mo);
  jade_tarp_opts_default(&to);
  mo.metric = to.metric = metric;
  jade_mira_result mr;
  jade_tarp_result trr;
  CHECK_OK(jade_mira_tarp(tr, dr, T, S, q, &mo, &to, &mr, &trr));
  metrics m = {0};
  m.mira = mr.score;
  m.mira_err = mr.err;
  m.mira_exp = mr.expected;
  m.tarp_max = trr.max_dev;
  m.tarp_area = trr.area;
  m.tarp_sa = trr.signed_area;
  m.tarp_sa_err = trr.signed_area_err;
  /* Distance of the diagonal from the curve in units of the half-width of the 95% bootstrap
   * band (about 2 sigma) at each alpha; the maximum over alpha (the ends, where the band has
   * zero width and ECP = alpha, are skipped). */
  for (int j = 0; j < trr.n_alpha; j++) {
    double hw = 0.5 * (trr.hi95[j] - trr.lo95[j]);
    if (hw > 1e-12) jade_test_max_err(&m.band_z, fabs(trr.ecp[j] - trr.alpha[j]) / hw);
  }
  /* Per-dimension metrics on the first min(q, 8) dimensions, pooled (dimensions independent). */
  size_t nd = q < 8 ? q : 8;
  jade_coverage_result cr;
  CHECK_OK(jade_coverage(tr, dr, T, S, q, NULL, nd, 0, &cr));
  double chi2;
  CHECK_OK(jade_rank_chi2(cr.rank, T * nd, 1, S, 10, &chi2, &m.rank_p));
  m.rank_p_min = 1;
  for (size_t k = 0; k < nd; k++) {
    m.cov68 += cr.cov68[k] / nd;
    m.cov95 += cr.cov95[k] / nd;
    m.off += cr.offset[k] / nd;
    m.z2 += cr.z2[k] / nd;
    m.off_se += cr.offset_se[k] * cr.offset_se[k];
    m.z2_se += cr.z2_se[k] * cr.z2_se[k];
    if (cr.rank_pvalue[k] < m.rank_p_min) m.rank_p_min = cr.rank_pvalue[k];
  }
  double n = (double)(T * nd);
  m.cov68_se = sqrt(0.6827 * 0.3173 / n);
  m.cov95_se = sqrt(0.95 * 0.05 / n);
  m.off_se = sqrt(m.off_se) / nd;
  m.z2_se = sqrt(m.z2_se) / nd;
  printf("%-10s q=%-4zu T=%-4zu %s MIRA %.4f +- %.4f (exp %.4f) | TARP max %.3f signed %+.4f +- %.4f "
         "diag/band %.2f | cov68 %.3f cov95 %.3f offset %+.3f z2 %.3f rank-p %.2g\n",
         case_name[kind], q, T, metric == JADE_METRIC_MANHATTAN ? "L1" : "L2", m.mira, m.mira_err,
         m.mira_exp, m.tarp_max, m.tarp_sa, m.tarp_sa_err, m.band_z, m.cov68, m.cov95, m.off,
         m.z2, m.rank_p);
  jade_coverage_result_free(&cr);
  jade_mira_result_free(&mr);
  jade_tarp_result_free(&trr);
  free(tr);
  free(dr);
  return m;
}

/* Tolerances: "agrees" means within 3.5 bootstrap (or binomial) standard deviations (a false
 * alarm rate of 5e-4 per check), departures must exceed 3 of them; the TARP max deviation is
 * compared with the 0.1% Kolmogorov-Smirnov value 1.95/sqrt(T), and the diagonal must stay
 * within 2.5 half-widths of the 95% bootstrap band (~5 sigma, for ~100 correlated alphas) at
 * every alpha. (The 1-D calibrated sample happens to sit 2.9 sigma below the diagonal: a fixed
 * data set, whatever the reference seed; larger samples show no bias.) Expected z^2 of a calibrated posterior with S draws: about
 * (1 + 1/S)(S-1)/(S-3) (Student-t variance), 1.03 for S = 100. */
static void check_calibrated(const metrics *m, size_t T, size_t S, size_t q) {
  double ks = 1.95 / sqrt((double)T), z2_exp = (1.0 + 1.0 / S) * (S - 1.0) / (S - 3.0);
  CHECK_LT(fabs(m->mira - m->mira_exp), 3.5 * m->mira_err, "q=%zu calibrated MIRA %g vs %g +- %g", q,
        m->mira, m->mira_exp, m->mira_err);
  CHECK_LT(fabs(m->mira - 2.0 / 3.0), 3.5 * m->mira_err, "q=%zu calibrated MIRA %g vs 2/3", q, m->mira);
  CHECK_LT(fabs(m->tarp_sa), 3.5 * m->tarp_sa_err, "q=%zu calibrated TARP signed area %g +- %g", q,
        m->tarp_sa, m->tarp_sa_err);
  CHECK_LT(m->tarp_max, ks, "q=%zu calibrated TARP max dev %g >= %g", q, m->tarp_max, ks);
  CHECK_LT(m->band_z, 2.5, "q=%zu calibrated: diagonal %.2f half-widths of the 95%% band from the curve", q,
        m->band_z);
  CHECK_LT(fabs(m->cov68 - 0.6827), 3.5 * m->cov68_se, "q=%zu cov68 %g", q, m->cov68);
  CHECK_LT(fabs(m->cov95 - 0.95), 3.5 * m->cov95_se, "q=%zu cov95 %g", q, m->cov95);
  CHECK_LT(fabs(m->off), 3.5 * m->off_se, "q=%zu offset %g +- %g", q, m->off, m->off_se);
  CHECK_LT(fabs(m->z2 - z2_exp), 3.5 * m->z2_se, "q=%zu z2 %g vs %g +- %g", q, m->z2, z2_exp, m->z2_se);
  CHECK(jade_test_gt_ok(m->rank_p, 0.001) && jade_test_gt_ok(m->rank_p_min, 0.001), "q=%zu ranks not uniform: p %g (min per dim %g)",
        q, m->rank_p, m->rank_p_min);
}

/* Per-dimension departures, the same in every q (dimensions are independent). */
static void check_marginals(int kind, const metrics *m, size_t q) {
  CHECK_LT(m->rank_p, 1e-6, "q=%zu %s: ranks look uniform (p %g)", q, case_name[kind], m->rank_p);
  if (kind == NARROW) {
    CHECK(jade_test_lt_ok(m->cov68, 0.6827 - 5 * m->cov68_se) && jade_test_lt_ok(m->cov95, 0.95 - 5 * m->cov95_se),
          "q=%zu narrow coverage %g %g", q, m->cov68, m->cov95);
    CHECK_GT(m->z2, 3, "q=%zu narrow z2 %g (expect ~4)", q, m->z2);
  } else if (kind == WIDE) {
    CHECK(jade_test_gt_ok(m->cov68, 0.6827 + 5 * m->cov68_se) && jade_test_gt_ok(m->cov95, 0.95 + 3 * m->cov95_se),
          "q=%zu wide coverage %g %g", q, m->cov68, m->cov95);
    CHECK_LT(m->z2, 0.35, "q=%zu wide z2 %g (expect ~0.25)", q, m->z2);
  } else {
    CHECK(jade_test_lt_ok(fabs(m->off - 1.0), 0.1) && jade_test_gt_ok(m->off, 10 * m->off_se), "q=%zu biased offset %g +- %g", q,
          m->off, m->off_se);
    CHECK_LT(m->cov68, 0.6827 - 5 * m->cov68_se, "q=%zu biased cov68 %g", q, m->cov68);
  }
}

static void test_cases(void) {
  const size_t S = 100;
  /* 1-D with many truths (the 1-D departures are small), then q = 16 and 256. */
  const size_t qs[] = {1, 16, 256}, Ts[] = {4000, 300, 300};
  for (size_t iq = 0; iq < 3; iq++) {
    size_t q = qs[iq], T = Ts[iq];
    double ks = 1.95 / sqrt((double)T);
    metrics m[4];
    for (int k = 0; k < 4; k++) m[k] = run_case(k, T, S, q, JADE_METRIC_EUCLIDEAN);
    check_calibrated(&m[CAL], T, S, q);
    for (int k = 1; k < 4; k++) {
      const metrics *x = &m[k];
      check_marginals(k, x, q);
      CHECK(jade_test_gt_ok(x->tarp_max, ks) && jade_test_gt_ok(x->band_z, 2.5), "q=%zu %s: TARP curve not off the diagonal (max %g, %g half-widths)",
            q, case_name[k], x->tarp_max, x->band_z);
      /* MIRA: narrow and biased always lower; wide lower for q >= 16 but higher in 1-D. */
      if (k == WIDE && q == 1)
        CHECK_GT(x->mira, x->mira_exp + 3 * x->mira_err, "1-D wide MIRA %g not above %g", x->mira, x->mira_exp);
      else
        CHECK_LT(x->mira, x->mira_exp - 3 * x->mira_err, "q=%zu %s MIRA %g not below %g (err %g)", q,
              case_name[k], x->mira, x->mira_exp, x->mira_err);
    }
    /* TARP sign: wide above the diagonal in every q; narrow below for q >= 16 (in 1-D the curve
     * is S-shaped, max_dev above); biased above for q >= 16 (draws pushed away from the
     * references on average). */
    CHECK_GT(m[WIDE].tarp_sa, 3 * m[WIDE].tarp_sa_err, "q=%zu wide TARP signed %g", q, m[WIDE].tarp_sa);
    if (q >= 16) {
      CHECK_LT(m[NARROW].tarp_sa, -3 * m[NARROW].tarp_sa_err, "q=%zu narrow TARP signed %g", q, m[NARROW].tarp_sa);
      CHECK_GT(m[BIASED].tarp_sa, 3 * m[BIASED].tarp_sa_err, "q=%zu biased TARP signed %g", q, m[BIASED].tarp_sa);
    }
  }
  /* Manhattan distance: same conclusions at q = 16. */
  metrics c = run_case(CAL, 300, S, 16, JADE_METRIC_MANHATTAN);
  metrics n = run_case(NARROW, 300, S, 16, JADE_METRIC_MANHATTAN);
  CHECK(jade_test_lt_ok(fabs(c.mira - c.mira_exp), 3.5 * c.mira_err) && jade_test_lt_ok(fabs(c.tarp_sa), 3.5 * c.tarp_sa_err),
        "L1 calibrated: MIRA %g TARP %g", c.mira, c.tarp_sa);
  CHECK(jade_test_lt_ok(n.mira, n.mira_exp - 3 * n.mira_err) && jade_test_lt_ok(n.tarp_sa, -3 * n.tarp_sa_err),
        "L1 narrow: MIRA %g TARP %g", n.mira, n.tarp_sa);
}

/* ------------------------------------------------------------------ normalisation */

/* q >> T: the inclusive min-max box of the tarp package lets each truth span its own box in
 * ~2q/T dimensions and makes a calibrated posterior look underconfident; the leave-one-out box
 * does not. MIRA with the truths+draws box stays calibrated too. */
static void test_normalisation(void) {
  const size_t T = 100, S = 50, q = 2048;
  float *tr, *dr;
  make_posterior(CAL, T, S, q, 7, &tr, &dr);
  jade_tarp_opts to;
  jade_tarp_opts_default(&to);
  jade_tarp_result loo, inc;
  CHECK_OK(jade_tarp(tr, dr, T, S, q, &to, &loo));
  to.norm = JADE_NORM_TRUTHS_INCLUSIVE;
  CHECK_OK(jade_tarp(tr, dr, T, S, q, &to, &inc));
  printf("q=%zu T=%zu calibrated TARP signed area: leave-one-out %+.4f +- %.4f, inclusive %+.4f +- %.4f\n",
         q, T, loo.signed_area, loo.signed_area_err, inc.signed_area, inc.signed_area_err);
  CHECK_LT(fabs(loo.signed_area), 3.5 * loo.signed_area_err, "leave-one-out box biased: %g", loo.signed_area);
  CHECK_GT(inc.signed_area, 3 * inc.signed_area_err, "inclusive-box bias not seen: %g +- %g",
        inc.signed_area, inc.signed_area_err);
  jade_tarp_result_free(&loo);
  jade_tarp_result_free(&inc);
  jade_mira_opts mo;
  jade_mira_opts_default(&mo);
  mo.norm = JADE_NORM_ALL;
  jade_mira_result mr;
  CHECK_OK(jade_mira(tr, dr, T, S, q, &mo, &mr));
  printf("q=%zu T=%zu calibrated MIRA (truths+draws box) %.4f +- %.4f (exp %.4f)\n", q, T, mr.score,
         mr.err, mr.expected);
  CHECK_LT(fabs(mr.score - mr.expected), 3.5 * mr.err, "MIRA with box %g", mr.score);
  jade_mira_result_free(&mr);
  free(tr);
  free(dr);

  /* The maps on a hand-made example: truths (T=3, q=2) and one draw each. */
  const float t3[6] = {0, 10, 1, 20, 3, 30}, d3[3 * 2] = {-1, 15, 2, 25, 4, 40};
  jade_minmax m;
  double lo[2], inv[2];
  CHECK_OK(jade_minmax_compute(t3, NULL, 3, 1, 2, JADE_NORM_TRUTHS, &m));
  jade_minmax_map(&m, 0, lo, inv); /* others: (1,20), (3,30) */
  CHECK(lo[0] == 1 && inv[0] == 0.5 && lo[1] == 20 && inv[1] == 0.1, "LOO map 0: %g %g %g %g", lo[0], inv[0], lo[1], inv[1]);
  jade_minmax_map(&m, 1, lo, inv); /* others: (0,10), (3,30) */
  CHECK(lo[0] == 0 && jade_test_lt_ok(fabs(inv[0] - 1.0 / 3), 1e-15) && lo[1] == 10 && inv[1] == 0.05, "LOO map 1");
  jade_minmax_free(&m);
  CHECK_OK(jade_minmax_compute(t3, d3, 3, 1, 2, JADE_NORM_ALL, &m));
  jade_minmax_map(&m, 2, lo, inv); /* others with draws: x in {0,-1,1,2}, y in {10,15,20,25} */
  CHECK(lo[0] == -1 && jade_test_lt_ok(fabs(inv[0] - 1.0 / 3), 1e-15) && lo[1] == 10 && inv[1] == 1.0 / 15, "ALL map 2");
  jade_minmax_free(&m);
  CHECK_OK(jade_minmax_compute(t3, NULL, 3, 0, 2, JADE_NORM_TRUTHS_INCLUSIVE, &m));
  jade_minmax_map(&m, 1, lo, inv);
  CHECK(lo[0] == 0 && inv[0] == 1.0 / 3 && lo[1] == 10 && inv[1] == 0.05, "inclusive map");
  jade_minmax_free(&m);
}

/* ------------------------------------------------------------------ determinism / APIs */

static void test_determinism(void) {
  const size_t T = 37, S = 23, q = 101;
  float *tr, *dr;
  make_posterior(NARROW, T, S, q, 3, &tr, &dr);
  jade_mira_opts mo;
  jade_tarp_opts to;
  jade_mira_opts_default(&mo);
  jade_tarp_opts_default(&to);
  mo.norm = JADE_NORM_ALL; /* exercise the parallel extremes too */
  jade_mira_result m1, m2, mj;
  jade_tarp_result t1, t2, tj;
  jade_coverage_result c1, c2;
  int nt = omp_get_max_threads();
  omp_set_num_threads(1);
  CHECK_OK(jade_mira(tr, dr, T, S, q, &mo, &m1));
  CHECK_OK(jade_tarp(tr, dr, T, S, q, &to, &t1));
  CHECK_OK(jade_coverage(tr, dr, T, S, q, NULL, 0, 0, &c1));
  omp_set_num_threads(3);
  CHECK_OK(jade_mira(tr, dr, T, S, q, &mo, &m2));
  CHECK_OK(jade_tarp(tr, dr, T, S, q, &to, &t2));
  CHECK_OK(jade_coverage(tr, dr, T, S, q, NULL, 0, 0, &c2));
  CHECK_OK(jade_mira_tarp(tr, dr, T, S, q, &mo, &to, &mj, &tj));
  omp_set_num_threads(nt);
  CHECK(memcmp(m1.p, m2.p, T * sizeof(double)) == 0 && memcmp(m1.boot, m2.boot, 100 * sizeof(double)) == 0 &&
            m1.score == m2.score && m1.err == m2.err,
        "MIRA depends on the thread count");
  CHECK(memcmp(m1.p, mj.p, T * sizeof(double)) == 0 && m1.err == mj.err, "joint MIRA differs");
  CHECK(memcmp(t1.count, t2.count, T * sizeof(long)) == 0 && memcmp(t1.count, tj.count, T * sizeof(long)) == 0,
        "TARP counts depend on threads / joint sweep");
  CHECK(memcmp(t1.lo95, t2.lo95, 101 * sizeof(double)) == 0 && t1.area_err == t2.area_err,
        "TARP bands depend on the thread count");
  CHECK(memcmp(c1.z, c2.z, T * q * sizeof(double)) == 0 && memcmp(c1.rank, c2.rank, T * q * sizeof(int)) == 0 &&
            c1.nd == q,
        "coverage depends on the thread count");
  /* Per-truth API = array API. */
  jade_minmax mm;
  CHECK_OK(jade_minmax_compute(tr, dr, T, S, q, JADE_NORM_ALL, &mm));
  jade_minmax mt;
  CHECK_OK(jade_minmax_compute(tr, NULL, T, S, q, JADE_NORM_TRUTHS, &mt));
  for (size_t t = 0; t < T; t += 5) {
    double p;
    long cnt;
    CHECK_OK(jade_mira_truth(tr + t * q, dr + t * S * q, S, q, &mm, mo.metric, mo.seed, t, &p));
    CHECK_OK(jade_tarp_truth(tr + t * q, dr + t * S * q, S, q, &mt, to.metric, to.seed, t, &cnt));
    CHECK(p == m1.p[t] && cnt == t1.count[t], "per-truth API differs at %zu", t);
    int rk[101];
    unsigned char a[101], b[101];
    double z[101];
    CHECK_OK(jade_coverage_truth(tr + t * q, dr + t * S * q, S, q, NULL, q, rk, a, b, z));
    CHECK(memcmp(z, c1.z + t * q, sizeof z) == 0 && memcmp(rk, c1.rank + t * q, sizeof rk) == 0,
          "coverage per-truth API differs at %zu", t);
  }
  jade_minmax_free(&mm);
  jade_minmax_free(&mt);
  /* Summaries from per-truth values reproduce the results. */
  jade_mira_result ms;
  CHECK_OK(jade_mira_summarise(m1.p, T, S, 100, mo.seed, &ms));
  CHECK(ms.score == m1.score && ms.err == m1.err, "jade_mira_summarise differs");
  jade_mira_result_free(&ms);
  /* Selected dimensions. */
  size_t dims[2] = {100, 3};
  jade_coverage_result cs;
  CHECK_OK(jade_coverage(tr, dr, T, S, q, dims, 2, 5, &cs));
  CHECK(cs.rank[0] == c1.rank[100] && cs.rank[1] == c1.rank[3] && cs.z[2 * 7 + 1] == c1.z[7 * q + 3] &&
            cs.dims[0] == 100 && cs.n_rank_bins == 5,
        "dims selection");
  jade_coverage_result_free(&cs);
  jade_mira_result_free(&m1);
  jade_mira_result_free(&m2);
  jade_mira_result_free(&mj);
  jade_tarp_result_free(&t1);
  jade_tarp_result_free(&t2);
  jade_tarp_result_free(&tj);
  jade_coverage_result_free(&c1);
  jade_coverage_result_free(&c2);
  free(tr);
  free(dr);
}

static void test_errors(void) {
  const size_t T = 6, S = 4, q = 5;
  float *tr, *dr;
  make_posterior(CAL, T, S, q, 3, &tr, &dr);
  jade_mira_result mr;
  jade_tarp_result trr;
  jade_coverage_result cr;
  CHECK(jade_mira(tr, dr, T, 1, q, NULL, &mr) == JADE_ERR_INVALID, "S = 1 accepted by MIRA");
  CHECK(jade_mira(NULL, dr, T, S, q, NULL, &mr) == JADE_ERR_INVALID, "NULL truths accepted");
  CHECK(jade_tarp(tr, dr, 0, S, q, NULL, &trr) == JADE_ERR_INVALID, "T = 0 accepted");
  size_t bad_dim = 9;
  CHECK(jade_coverage(tr, dr, T, S, q, &bad_dim, 1, 0, &cr) == JADE_ERR_INVALID, "dim out of range accepted");
  CHECK(strstr(jade_last_error(), "dims[0] = 9") != NULL, "message: %s", jade_last_error());
  CHECK(jade_coverage(tr, dr, T, S, q, NULL, 0, 9, &cr) == JADE_ERR_INVALID, "9 rank bins for S = 4 accepted");
  jade_tarp_opts to;
  jade_tarp_opts_default(&to);
  to.n_alpha = 1;
  CHECK(jade_tarp(tr, dr, T, S, q, &to, &trr) == JADE_ERR_INVALID, "n_alpha = 1 accepted");
  CHECK(jade_minmax_compute(tr, NULL, 1, S, q, JADE_NORM_TRUTHS, &(jade_minmax){0}) == JADE_ERR_INVALID,
        "leave-one-out box with one truth accepted");
  dr[(3 * S + 2) * q + 1] = NAN;
  CHECK(jade_mira(tr, dr, T, S, q, NULL, &mr) == JADE_ERR_NUMERIC, "NaN draw accepted by MIRA");
  CHECK(strstr(jade_last_error(), "truth 3") != NULL, "message: %s", jade_last_error());
  CHECK(jade_tarp(tr, dr, T, S, q, NULL, &trr) == JADE_ERR_NUMERIC, "NaN draw accepted by TARP");
  CHECK(jade_coverage(tr, dr, T, S, q, NULL, 0, 0, &cr) == JADE_ERR_NUMERIC, "NaN draw accepted by coverage");
  CHECK(mr.p == NULL && trr.count == NULL && cr.rank == NULL, "failed calls left allocations");
  free(tr);
  free(dr);
}

int main(void) {
  double t0 = jade_time_now();
  test_formulas();
  test_mira_exact_expectation();
  test_errors();
  test_determinism();
  test_normalisation();
  test_cases();
  printf("total %.2f s\n", jade_time_now() - t0);
  TEST_RETURN();
}
