/* jade validation: model-agnostic calibration metrics for posterior samples.
 *
 * Inputs are T truths with S posterior draws each, in q dimensions, float32, C order:
 *   truths (T, q) and draws (T, S, q)   (draws of truth t are rows t*S .. t*S+S-1).
 * q may be huge (the paper: 5 maps of 128x128 + 6 parameters = 81,926): the metrics stream
 * over the draws once (they may live in an mmap'ed file), never copy them, accumulate
 * distances in double, and run OpenMP over truths. Every random number comes from Philox with
 * (seed, JADE_STREAM(JADE_RNG_VALIDATE, JADE_VALIDATE_ID(tag, t))), a function of the truth
 * index only, and every reduction is done in a fixed order, so results are bit-identical
 * whatever the number of threads.
 *
 * When the draws of all truths cannot be held in one array, the per-truth functions
 * (jade_mira_truth, jade_tarp_truth, jade_coverage_truth) compute the same per-truth
 * statistics for one truth at a time, and the *_summarise functions turn them into the
 * results; jade_mira / jade_tarp / jade_coverage are exactly these two steps.
 *
 * Metrics:
 *  - MIRA (Sharief, Zeghal et al. 2026) on the joint posterior (spec: validation.md).
 *  - TARP (Lemos, Coogan et al. 2023, arXiv:2302.03026) expected-coverage curve.
 *  - Per-dimension calibration (used for the parameters and S_8): SBC ranks (Talts et al.
 *    2018, arXiv:1804.06788), coverage of central 68% / 95% intervals, standardised offsets.
 */
#ifndef JADE_VALIDATE_H
#define JADE_VALIDATE_H
#include <stddef.h>
#include <stdint.h>

#include "jade/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Random-stream ids: tag in bits 40..47 of the 48-bit stream id, truth (or bootstrap
 * replicate) index below. Tag 0 is left to whoever draws the validation observations. */
#define JADE_VALIDATE_ID(tag, t) ((((uint64_t)(tag)) << 40) | ((uint64_t)(t) & 0xFFFFFFFFFFull))
enum {
  JADE_VALTAG_MIRA = 1,      /* MIRA: centre c at offsets 0..q-1, chosen draw at offset q */
  JADE_VALTAG_TARP = 2,      /* TARP: reference point at offsets 0..q-1 */
  JADE_VALTAG_MIRA_BOOT = 3, /* bootstrap replicate b of MIRA: T indices at offsets 0..T-1 */
  JADE_VALTAG_TARP_BOOT = 4, /* bootstrap replicate b of TARP */
  JADE_VALTAG_MASK = 5       /* jade_validation_run: mask and noise map of observation t */
};

/* Per-dimension rescaling applied before distances are taken: z = (x - lo) * inv, with
 * inv = 1/(max - min) (1 for a constant dimension).
 * Leave-one-out: for truth t the extremes are taken over the OTHER truths (and their draws):
 * TARP's guarantee (Lemos et al. 2023, Sec. 3) holds for reference points drawn from a
 * distribution that may depend on the data x but not on the true theta, and a box that truth t
 * itself helps to span does: truth t
 * is an extreme in ~2q/T dimensions, where the reference can then never lie beyond it, which
 * makes a calibrated posterior look underconfident once q >~ T (tests/test_validate_metrics.c
 * measures it). The inclusive box of the TARP reference code is kept for comparison. */
typedef enum {
  JADE_NORM_NONE = 0,            /* raw values (MIRA default: the paper used no rescaling) */
  JADE_NORM_TRUTHS = 1,          /* min-max over the other truths, leave-one-out (TARP default) */
  JADE_NORM_ALL = 2,             /* min-max over the other truths and their draws, leave-one-out */
  JADE_NORM_TRUTHS_INCLUSIVE = 3 /* min-max over all T truths (the tarp package; biased, see above) */
} jade_norm_mode;

typedef enum { JADE_METRIC_EUCLIDEAN = 0, JADE_METRIC_MANHATTAN = 1 } jade_metric;

/* Per-dimension extremes over truths (blocks of truth + draws for JADE_NORM_ALL), with the
 * runner-up and the block index of each extreme for leave-one-out. All arrays have q entries
 * (owned). */
typedef struct {
  size_t q, T;
  jade_norm_mode mode;
  double *lo1, *lo2, *hi1, *hi2; /* smallest and second smallest block minimum, etc. */
  size_t *arglo, *arghi;         /* block (truth) index of lo1 / hi1 */
} jade_minmax;

/* Extremes for mode (not JADE_NORM_NONE); draws may be NULL unless mode is JADE_NORM_ALL.
 * Leave-one-out modes need T >= 2. On failure *out is left empty. Free with jade_minmax_free. */
jade_status jade_minmax_compute(const float *truths, const float *draws, size_t T, size_t S,
                                size_t q, jade_norm_mode mode, jade_minmax *out);
/* The map of truth t: lo[q], inv[q] (z = (x - lo) * inv). */
void jade_minmax_map(const jade_minmax *m, size_t t, double *lo, double *inv);
void jade_minmax_free(jade_minmax *m);

/* Building blocks (what the per-truth functions are made of; for custom streaming).
 * The uniform point in [0,1]^q of truth t for the given tag: Philox uniforms at offsets
 * 0..q-1 of (seed, JADE_STREAM(JADE_RNG_VALIDATE, JADE_VALIDATE_ID(tag, t))). */
void jade_validate_point(uint64_t seed, int tag, size_t t, size_t q, double *c);
/* Distance measure between the rescaled x ((x - lo) * inv, or x if lo is NULL) and c: the
 * squared Euclidean distance (same order as the distance) or the Manhattan distance.
 * Accumulated in double; NaN if x has a NaN. */
double jade_validate_distance(const float *x, const double *c, const double *lo,
                              const double *inv, jade_metric metric, size_t q);

/* ----------------------------------------------------------------------------------------
 * MIRA. Per truth t, N = S - 1: centre c ~ U[0,1]^q (in the rescaled coordinates); one draw j
 * chosen uniformly; r = |c - draw_j|; k = [|c - truth| <= r]; count = #{other draws strictly
 * closer to c than r};  p_t = k (count + 1)/(N + 2) + (1 - k)(N - count + 1)/(N + 2).
 * score = mean_t p_t / ((N + 1)/(N + 2)); err = std (ddof 0, as numpy) of the score over
 * n_boot bootstrap resamples of the truths (100 in the paper).
 * For a calibrated posterior (truth exchangeable with the draws) E[score] is exactly
 * (2N + 3)/(3(N + 1)) (-> 2/3, the paper's optimum, as S grows); see jade_mira_expected.
 * Given the truth's enclosed mass U (fraction of posterior draws nearer c than the truth),
 * E[p | U] = 1/2 + U (1 - U): U uniform (calibrated) gives 2/3, U piled at 0 or 1 gives 1/2,
 * U piled at 1/2 gives 3/4. Hence too narrow (overconfident) and biased posteriors lower the
 * score towards 1/2; too wide (underconfident) ones lower it too in more than a few
 * dimensions (the truth is nearer c than almost every draw), but raise it in 1 dimension
 * (U concentrates near 1/2; by q = 4 it is already lower). tests/test_validate_metrics.c
 * measures each case.
 * -------------------------------------------------------------------------------------- */
typedef struct {
  uint64_t seed;       /* default 0x4d495241 ("MIRA") */
  jade_norm_mode norm; /* default JADE_NORM_NONE (paper) */
  jade_metric metric;  /* default JADE_METRIC_EUCLIDEAN */
  int n_boot;          /* default 100; 0 = no error bar */
} jade_mira_opts;
void jade_mira_opts_default(jade_mira_opts *o);

typedef struct {
  size_t T, S;
  double score, err; /* score and its bootstrap standard deviation */
  double expected;   /* exact calibrated expectation (2N+3)/(3(N+1)) */
  double *p;         /* (T) per-truth p values (owned) */
  int n_boot;
  double *boot;      /* (n_boot) bootstrap scores (owned; NULL if n_boot == 0) */
} jade_mira_result;

/* Exact expected MIRA score of a calibrated posterior with S draws per truth. */
double jade_mira_expected(size_t S);

jade_status jade_mira(const float *truths, const float *draws, size_t T, size_t S, size_t q,
                      const jade_mira_opts *opts, jade_mira_result *out);
/* One truth (index t selects its random numbers and its leave-one-out map): draws is (S, q);
 * mm NULL = no rescaling. */
jade_status jade_mira_truth(const float *truth, const float *draws, size_t S, size_t q,
                            const jade_minmax *mm, jade_metric metric, uint64_t seed, size_t t,
                            double *p);
/* The draw index j (0..S-1) MIRA picks for truth t: Philox uniform at offset q of the
 * MIRA stream of t. */
size_t jade_mira_choice(uint64_t seed, size_t t, size_t q, size_t S);
/* p of one truth from its distance dtruth to the centre and the draws' distances d[0..S-1],
 * with chosen draw j (the formula above). */
double jade_mira_p(double dtruth, const double *d, size_t S, size_t j);
/* Score, error bar and bootstrap from per-truth p values (copied into out). */
jade_status jade_mira_summarise(const double *p, size_t T, size_t S, int n_boot, uint64_t seed,
                                jade_mira_result *out);
void jade_mira_result_free(jade_mira_result *r);

/* ----------------------------------------------------------------------------------------
 * TARP. Per truth t: reference point ~ U[0,1]^q in the rescaled coordinates (the TARP paper
 * and reference code: min-max normalise with the truths, references uniform in the unit
 * cube; jade's default box is leave-one-out, see jade_norm_mode);
 * count_t = #{draws strictly closer to the reference than the truth}; f_t = count_t / S.
 * ECP(alpha) is the fraction of truths whose credible region of level alpha (the ball around
 * the reference holding a fraction alpha of the draws) contains the truth. With a finite S we
 * use the rank-randomised PIT u_t = (count_t + U)/(S + 1), U ~ U(0,1), and take the expectation
 * over U analytically: ECP(alpha) = mean_t clamp(alpha (S+1) - count_t, 0, 1). This is exactly
 * alpha in expectation for a calibrated posterior and differs from TARP's histogram of f_t by
 * at most 1/(S+1). Bootstrap over truths (references kept) gives percentile bands.
 * Directions: too narrow (overconfident) -> curve below the diagonal (signed area < 0); too
 * wide (underconfident) -> above (signed area > 0); biased -> off the diagonal; a bias that
 * does not depend on the reference moves the draws' mean away from a random reference on
 * average (E|c - m - b|^2 = E|c - m|^2 + |b|^2 when E[c - m] = 0), so in more than a few
 * dimensions the curve rises above the diagonal like an underconfident one; in 1-D the sign
 * depends on where the references fall (measured: slightly below), so use max_dev / area.
 * -------------------------------------------------------------------------------------- */
typedef struct {
  uint64_t seed;       /* default 0x54415250 ("TARP") */
  jade_norm_mode norm; /* default JADE_NORM_TRUTHS (leave-one-out) */
  jade_metric metric;  /* default JADE_METRIC_EUCLIDEAN */
  int n_boot;          /* default 100; 0 = no bands */
  int n_alpha;         /* grid alpha_j = j/(n_alpha-1), j = 0..n_alpha-1; default 101 */
} jade_tarp_opts;
void jade_tarp_opts_default(jade_tarp_opts *o);

typedef struct {
  size_t T, S;
  int n_alpha, n_boot;
  double *alpha;        /* (n_alpha) grid */
  double *ecp;          /* (n_alpha) expected coverage */
  double *lo68, *hi68;  /* (n_alpha) 16th / 84th bootstrap percentiles (NULL if no boot) */
  double *lo95, *hi95;  /* (n_alpha) 2.5th / 97.5th bootstrap percentiles */
  long *count;          /* (T) per-truth count_t */
  /* Scalars, and their bootstrap standard deviations (0 without bootstrap):
   * max_dev = max_j |ECP - alpha| over the grid (Kolmogorov-Smirnov-like);
   * area = int_0^1 |ECP - alpha| dalpha (trapezoid on the grid); signed_area = int_0^1 (ECP - alpha) dalpha
   *      = 1/2 - mean_t u_t (negative: overconfident, positive: underconfident). */
  double max_dev, area, signed_area;
  double max_dev_err, area_err, signed_area_err;
} jade_tarp_result;

jade_status jade_tarp(const float *truths, const float *draws, size_t T, size_t S, size_t q,
                      const jade_tarp_opts *opts, jade_tarp_result *out);
jade_status jade_tarp_truth(const float *truth, const float *draws, size_t S, size_t q,
                            const jade_minmax *mm, jade_metric metric, uint64_t seed, size_t t,
                            long *count);
jade_status jade_tarp_summarise(const long *count, size_t T, size_t S, const jade_tarp_opts *opts,
                                jade_tarp_result *out);
void jade_tarp_result_free(jade_tarp_result *r);

/* MIRA and TARP in one sweep over the draws (each draw row is read once; same results as
 * jade_mira and jade_tarp with the same options). */
jade_status jade_mira_tarp(const float *truths, const float *draws, size_t T, size_t S, size_t q,
                           const jade_mira_opts *mopts, const jade_tarp_opts *topts,
                           jade_mira_result *mira, jade_tarp_result *tarp);

/* ----------------------------------------------------------------------------------------
 * Per-dimension calibration for the dimensions dims[0..nd-1] (dims NULL: the first nd
 * dimensions, all q if nd is 0 too), e.g. the 6 parameters and S_8 (a derived column the
 * caller appends). Per truth and dimension:
 *   rank   = #{draws < truth} in 0..S (SBC rank; uniform on 0..S if calibrated);
 *   in68, in95: truth inside the central 68.27% / 95% interval of the draws, from type-6
 *            quantiles (Hyndman & Fan 1996: position p (S+1), E[F(x_(j))] = j/(S+1)), so a
 *            calibrated posterior covers at the nominal rate;
 *   z      = (posterior mean - truth) / posterior std (std with ddof 1).
 * Per dimension, over truths: coverage rates with binomial standard errors, mean z (offset)
 * and mean z^2 with standard errors (std/sqrt(T)); mean z^2 ~ 1 + 3/S calibrated, > 1 too narrow,
 * < 1 too wide; and the chi-square of the rank histogram in n_rank_bins bins with its p-value.
 * -------------------------------------------------------------------------------------- */
typedef struct {
  size_t T, S, nd;
  size_t *dims;                 /* (nd) */
  int *rank;                    /* (T, nd) */
  unsigned char *in68, *in95;   /* (T, nd) */
  double *z;                    /* (T, nd) */
  double *cov68, *cov68_se;     /* (nd) each */
  double *cov95, *cov95_se;
  double *offset, *offset_se;   /* mean z */
  double *z2, *z2_se;           /* mean z^2 */
  int n_rank_bins;
  double *rank_chi2, *rank_pvalue; /* (nd); dof = n_rank_bins - 1 */
} jade_coverage_result;

/* n_rank_bins <= 0 picks min(20, S+1). */
jade_status jade_coverage(const float *truths, const float *draws, size_t T, size_t S, size_t q,
                          const size_t *dims, size_t nd, int n_rank_bins,
                          jade_coverage_result *out);
/* One truth: rank, in68, in95, z for each of the nd dims (arrays of nd). */
jade_status jade_coverage_truth(const float *truth, const float *draws, size_t S, size_t q,
                                const size_t *dims, size_t nd, int *rank, unsigned char *in68,
                                unsigned char *in95, double *z);
/* Summaries from per-truth arrays (T, nd) (copied into out). */
jade_status jade_coverage_summarise(const int *rank, const unsigned char *in68,
                                    const unsigned char *in95, const double *z, size_t T, size_t S,
                                    const size_t *dims, size_t nd, int n_rank_bins,
                                    jade_coverage_result *out);
void jade_coverage_result_free(jade_coverage_result *r);

/* Chi-square of a rank histogram: ranks (n values in 0..S, stride between consecutive
 * values) in nbins bins of ranks (bin of r = floor(r nbins / (S+1)), expected counts from the
 * exact number of rank values per bin). Returns chi2 and the upper-tail p-value (dof nbins-1). */
jade_status jade_rank_chi2(const int *ranks, size_t n, size_t stride, size_t S, int nbins,
                           double *chi2, double *pvalue);

#ifdef __cplusplus
}
#endif
#endif
