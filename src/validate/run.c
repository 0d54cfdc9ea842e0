/* The validation run behind `jade validate` (include/jade/validation_run.h).
 *
 * Per-observation record OUT.partial/records/obs_<t>.npy: a float64 vector, layout below
 * (struct layout), documented in docs/validation.md. */
#include "jade/nn.h"
#include "jade/validation_run.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jade/dataset.h"
#include "jade/io.h"
#include "jade/lensing.h"
#include "jade/observation.h"
#include "jade/posterior.h"
#include "jade/report.h"
#include "jade/sim.h"
#include "jade/validate.h"

#define K_COLS JADE_POSTERIOR_COLS /* 6 parameters, Omega_m, S_8 */
#define N_EX_DRAWS 3               /* posterior draws shown in the example figure */

size_t jade_validate_struct_size(const char *name) {
  static const struct {
    const char *name;
    size_t size;
  } sizes[] = {{"jade_validation_options", sizeof(jade_validation_options)},
               {"jade_validation_result", sizeof(jade_validation_result)},
               {"jade_mira_opts", sizeof(jade_mira_opts)},
               {"jade_mira_result", sizeof(jade_mira_result)},
               {"jade_tarp_opts", sizeof(jade_tarp_opts)},
               {"jade_tarp_result", sizeof(jade_tarp_result)},
               {"jade_coverage_result", sizeof(jade_coverage_result)}};
  for (size_t i = 0; name && i < sizeof sizes / sizeof sizes[0]; i++)
    if (!strcmp(name, sizes[i].name)) return sizes[i].size;
  return 0;
}

void jade_validation_options_default(jade_validation_options *o) {
  memset(o, 0, sizeof *o);
  o->n_obs = 100;
  o->draws = 100;
  o->steps = 32;
  o->batch = 64;
  o->n_boot = 100;
  o->n_hist = 40;
  o->noise_rtol = 0.01;
}

/* ---------------------------------------------------------------- record layout */

typedef struct {
  int nb, np, NB, npairs, NH;
  size_t npix, nx, q;
  /* offsets into the record */
  size_t o_index, o_seconds, o_mira, o_tarp, o_truth, o_mean, o_std, o_rank, o_in68, o_in95, o_z, o_pix, o_ell, o_pow,
      o_hist, o_mom, o_mask, len;
} layout;

static void make_layout(layout *L, int nb, int np, int NB, int NH) {
  memset(L, 0, sizeof *L);
  L->nb = nb;
  L->np = np;
  L->NB = NB;
  L->NH = NH;
  L->npairs = jade_n_pairs(nb);
  L->npix = (size_t)np * np;
  L->nx = (size_t)nb * L->npix;
  L->q = L->nx + JADE_N_THETA;
  size_t o = 0;
  L->o_index = o++;
  L->o_seconds = o++;
  L->o_mira = o, o += 3;   /* p: joint, theta, maps */
  L->o_tarp = o, o += 3;   /* count (0..S) of draws closer to the reference than the truth */
  L->o_truth = o, o += K_COLS;
  L->o_mean = o, o += K_COLS;
  L->o_std = o, o += K_COLS;
  L->o_rank = o, o += K_COLS;
  L->o_in68 = o, o += K_COLS;
  L->o_in95 = o, o += K_COLS;
  L->o_z = o, o += K_COLS;
  L->o_pix = o, o += 3;    /* pixel coverage 68%, 95%, mean z^2 over pixels */
  L->o_ell = o, o += (size_t)NB;
  L->o_pow = o, o += (size_t)L->npairs * NB * 4; /* [pair][band]: truth, draws mean, q16, q84 */
  L->o_hist = o, o += (size_t)nb * NH * 2;       /* [bin][h]: truth counts, draws mean counts */
  L->o_mom = o, o += (size_t)nb * 4;             /* [bin]: truth var, truth skew, draws mean var, mean skew */
  L->o_mask = o, o += 3;   /* masked fraction; pixel coverage 68%, 95% over the masked pixels (NaN: none) */
  L->len = o;
}

/* ---------------------------------------------------------------- helpers */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* numpy's default (linear) quantile of v[0..n-1], sorted in place */
static double quantile_sort(double *v, size_t n, double q) {
  qsort(v, n, sizeof *v, cmp_double);
  double pos = q * (double)(n - 1);
  size_t i = (size_t)floor(pos);
  if (i + 1 >= n) return v[n - 1];
  return v[i] + (pos - (double)i) * (v[i + 1] - v[i]);
}

static void json_num(FILE *f, double v) {
  if (isfinite(v))
    fprintf(f, "%.10g", v);
  else
    fprintf(f, "null");
}

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      fprintf(f, "\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      fprintf(f, "\\u%04x", *s);
    else
      fputc(*s, f);
  }
  fputc('"', f);
}

/* ",\n  \"key\": value" for each of the n keys (json_num values) */
static void json_fields(FILE *f, const char *const *key, const double *val, int n) {
  for (int i = 0; i < n; i++) {
    fprintf(f, ",\n  \"%s\": ", key[i]);
    json_num(f, val[i]);
  }
}

/* ---------------------------------------------------------------- the run's shared state */

typedef struct {
  const jade_validation_options *o;
  layout L;
  const double *theta_all; /* dataset theta (N, 6) */
  const float *kappa_all;  /* dataset kappa (N, bins, n, n) */
  double noise[JADE_MAX_BINS];
  double size_deg;
  jade_norm norm;          /* of the model */
  int n_bands;
  double ell_min, ell_max;
  double *edges;           /* (bins, NH+1) histogram edges */
  jade_minmax mm;          /* leave-one-out min-max of the joint truths (TARP) */
  jade_minmax mm_theta, mm_maps; /* views into mm */
  uint64_t seed_joint, seed_theta, seed_maps;
  char partial[4200];
  jade_npy_writer *w_dtheta, *w_dmaps; /* --keep-draws */
} run_ctx;

/* Truth t as the joint vector in normalised units: maps / map_std, then theta normalised. */
static void truth_joint(const run_ctx *c, long t, float *out) {
  const layout *L = &c->L;
  const float *k = c->kappa_all + (size_t)t * L->nx;
  for (int b = 0; b < L->nb; b++) {
    const double inv = 1.0 / c->norm.map_std[b];
    for (size_t i = 0; i < L->npix; i++) out[b * L->npix + i] = (float)(k[b * L->npix + i] * inv);
  }
  const double *th = c->theta_all + (size_t)t * JADE_N_THETA;
  for (int j = 0; j < JADE_N_THETA; j++) out[L->nx + j] = (float)((th[j] - c->norm.theta_mean[j]) / c->norm.theta_std[j]);
}

static int masks_on(const jade_mask_config *m) { return m->mask_prob > 0 || m->noise_ln_scale > 0 || m->noise_ln_field > 0; }

/* The noisy observation of simulation t (physical convergence); with masks (masks_on), its
 * mask and per-pixel noise (bins, n, n; lnr: n*n scratch) and the masked fraction returned:
 * obs = m (kappa + sigma n) (jade/validation_run.h). */
static double make_observation(const run_ctx *c, long t, float *obs, float *mask, float *sigma, float *lnr) {
  const layout *L = &c->L;
  memcpy(obs, c->kappa_all + (size_t)t * L->nx, L->nx * sizeof(float));
  const uint64_t stream = JADE_STREAM(JADE_RNG_VALIDATE, JADE_VALIDATE_ID(0, (uint64_t)t));
  if (!masks_on(&c->o->masks)) {
    for (int b = 0; b < L->nb; b++) jade_add_noise(obs + b * L->npix, L->npix, c->noise[b], c->o->seed, stream, (uint64_t)b * L->npix);
    return 0.0;
  }
  const uint64_t mstream = JADE_STREAM(JADE_RNG_VALIDATE, JADE_VALIDATE_ID(JADE_VALTAG_MASK, (uint64_t)t));
  const double f = jade_random_mask_noise(&c->o->masks, L->np, c->o->seed, mstream, 0, mask, lnr);
  jade_mask_noise_bins(L->nb, L->npix, c->noise, lnr, mask, sigma);
  for (size_t k = 0; k < L->nx; k++)
    obs[k] = mask[k] > 0.5f ? (float)(obs[k] + (double)sigma[k] * jade_rng_normal(c->o->seed, stream, k)) : 0.0f;
  return f;
}

static void record_path(const run_ctx *c, long t, char *out, size_t n) {
  snprintf(out, n, "%s/records/obs_%06ld.npy", c->partial, t);
}

/* ---------------------------------------------------------------- one observation */

typedef struct {
  jade_trained_model *tm;
  float *obs, *maps, *joint, *thf, *thn, *tj, *mask, *sigma, *lnr;
  double *theta, *pw, *rec, *cl, *ellm, *hist;
  long *cnt;
  int *prank;
  unsigned char *pin68, *pin95;
  double *pz;
  int id;                           /* progress: worker index, shared estimator (rank 0 with */
  jade_eta *eta;                    /* o->progress; NULL otherwise) */
  const jade_validation_options *o;
} worker;

/* Progress events of worker w: 0 an observation begins, 1 a sampling step of `work`
 * draw-evaluations (jade_posterior_options.on_step), 2 an observation is done (statistics
 * included). Steps and ends are reported. */
static void obs_event(worker *w, int type, double work) {
  if (!w->eta) return;
#pragma omp critical(jade_validate_progress)
  {
    double t = jade_time_now();
    if (type == 0) jade_eta_begin(w->eta, w->id, t);
    if (type == 1) jade_eta_step(w->eta, w->id, work, t);
    if (type == 2) jade_eta_end(w->eta, w->id, t);
    if (type) {
      jade_progress p;
      jade_eta_get(w->eta, t, &p);
      w->o->progress(&p, w->o->user);
    }
  }
}
static void obs_step(double work, void *user) { obs_event(user, 1, work); }

static void worker_free(worker *w) {
  jade_trained_model_free(w->tm);
  free(w->obs);
  free(w->mask);
  free(w->sigma);
  free(w->lnr);
  free(w->maps);
  free(w->joint);
  free(w->thf);
  free(w->thn);
  free(w->tj);
  free(w->theta);
  free(w->pw);
  free(w->rec);
  free(w->cl);
  free(w->ellm);
  free(w->hist);
  free(w->cnt);
  free(w->prank);
  free(w->pin68);
  free(w->pin95);
  free(w->pz);
  memset(w, 0, sizeof *w);
}

static jade_status worker_init(worker *w, const run_ctx *c) {
  memset(w, 0, sizeof *w);
  const layout *L = &c->L;
  const size_t D = (size_t)c->o->draws;
  jade_status st = jade_trained_model_load(c->o->model_path, &w->tm);
  if (st) return st;
  w->obs = malloc(L->nx * sizeof(float));
  w->mask = malloc(L->nx * sizeof(float));
  w->sigma = malloc(L->nx * sizeof(float));
  w->lnr = malloc(L->npix * sizeof(float));
  w->maps = malloc(D * L->nx * sizeof(float));
  w->joint = malloc(D * L->q * sizeof(float));
  w->thf = malloc(D * K_COLS * sizeof(float));
  w->thn = malloc(D * JADE_N_THETA * sizeof(float));
  w->tj = malloc(L->q * sizeof(float));
  w->theta = malloc(D * K_COLS * sizeof(double));
  w->pw = malloc(D * (size_t)L->npairs * L->NB * sizeof(double));
  w->rec = calloc(L->len, sizeof(double));
  w->cl = malloc((size_t)L->NB * sizeof(double));
  w->ellm = malloc((size_t)L->NB * sizeof(double));
  w->hist = malloc((size_t)L->NH * sizeof(double));
  w->cnt = malloc((size_t)L->NB * sizeof(long));
  w->prank = malloc(L->nx * sizeof(int));
  w->pin68 = malloc(L->nx);
  w->pin95 = malloc(L->nx);
  w->pz = malloc(L->nx * sizeof(double));
  if (!w->obs || !w->mask || !w->sigma || !w->lnr || !w->maps || !w->joint || !w->thf || !w->thn || !w->tj || !w->theta || !w->pw || !w->rec || !w->cl ||
      !w->ellm || !w->hist || !w->cnt || !w->prank || !w->pin68 || !w->pin95 || !w->pz)
    return jade_error(JADE_ERR_NOMEM, "validate: out of memory for %zu draws of %zu values", D, L->q);
  return JADE_OK;
}

static jade_status write_example(const run_ctx *c, worker *w, long t) {
  const layout *L = &c->L;
  const size_t D = (size_t)c->o->draws, nex = D < N_EX_DRAWS ? D : N_EX_DRAWS;
  float *ex = malloc((4 + nex) * L->nx * sizeof(float));
  if (!ex) return jade_error(JADE_ERR_NOMEM, "out of memory");
  memcpy(ex, c->kappa_all + (size_t)t * L->nx, L->nx * sizeof(float));
  memcpy(ex + L->nx, w->obs, L->nx * sizeof(float));
  jade_draw_moments(w->maps, D, L->nx, ex + 2 * L->nx, ex + 3 * L->nx);
  memcpy(ex + 4 * L->nx, w->maps, nex * L->nx * sizeof(float));
  char path[4400];
  size_t sh[4] = {4 + nex, (size_t)L->nb, (size_t)L->np, (size_t)L->np};
  snprintf(path, sizeof path, "%s/example_maps.npy", c->partial);
  jade_status st = jade_npy_write(path, JADE_F32, 4, sh, ex);
  free(ex);
  size_t sh2[2] = {D, K_COLS};
  snprintf(path, sizeof path, "%s/example_theta.npy", c->partial);
  if (!st) st = jade_npy_write(path, JADE_F64, 2, sh2, w->theta);
  return st;
}

/* 1. the observation of simulation t, 2. its posterior draws (w->maps, w->theta, physical
 * units); the record gets the masked fraction and the sampling time. */
static jade_status sample_observation(const run_ctx *c, worker *w, long t, int inner_threads) {
  const jade_validation_options *o = c->o;
  const layout *L = &c->L;
  double *rec = w->rec;
  double t0 = jade_time_now();
  rec[L->o_mask] = make_observation(c, t, w->obs, w->mask, w->sigma, w->lnr);
  jade_posterior_options po;
  jade_posterior_options_default(&po);
  po.n_draws = o->draws;
  po.n_steps = o->steps;
  po.solver = o->solver;
  po.batch = o->batch;
  po.seed = (o->seed << 32) | (uint64_t)t;
  po.threads = inner_threads ? 0 : 1;
  po.on_step = obs_step;
  po.step_user = w;
  if (masks_on(&o->masks)) {
    po.mask = w->mask;
    po.noise_map = w->sigma;
  }
  po.noise = c->noise;
  jade_status st = jade_posterior_sample(w->tm, w->obs, &po, NULL, w->maps, w->theta);
  if (st) return jade_error_context(st, "observation %ld", t);
  rec[L->o_seconds] = jade_time_now() - t0;
  return JADE_OK;
}

/* 3a. parameters: truth, mean, std, coverage (physical units, 6 + Omega_m + S_8) */
static jade_status parameter_stats(const run_ctx *c, worker *w, long t) {
  const layout *L = &c->L;
  const size_t D = (size_t)c->o->draws;
  double *rec = w->rec;
  double truth[K_COLS];
  float truthf[K_COLS];
  memcpy(truth, c->theta_all + (size_t)t * JADE_N_THETA, JADE_N_THETA * sizeof(double));
  truth[JADE_N_THETA] = jade_theta_omega_m(truth);
  truth[JADE_N_THETA + 1] = jade_theta_s8(truth);
  for (int j = 0; j < K_COLS; j++) {
    truthf[j] = (float)truth[j];
    rec[L->o_truth + j] = truth[j];
    jade_summary_stat s;
    jade_posterior_summary(w->theta + j, (long)D, K_COLS, &s);
    rec[L->o_mean + j] = s.mean;
    rec[L->o_std + j] = s.std;
  }
  for (size_t i = 0; i < D * K_COLS; i++) w->thf[i] = (float)w->theta[i];
  int rank[K_COLS];
  unsigned char in68[K_COLS], in95[K_COLS];
  double z[K_COLS];
  jade_status st = jade_coverage_truth(truthf, w->thf, D, K_COLS, NULL, K_COLS, rank, in68, in95, z);
  if (st) return st;
  for (int j = 0; j < K_COLS; j++) {
    rec[L->o_rank + j] = rank[j];
    rec[L->o_in68 + j] = in68[j];
    rec[L->o_in95 + j] = in95[j];
    rec[L->o_z + j] = z[j];
  }
  return JADE_OK;
}

/* 3b. per-pixel coverage of the maps (truth maps tk): 68%, 95% and mean z^2 over all pixels,
 * and the coverage over the masked pixels only */
static jade_status pixel_stats(const run_ctx *c, worker *w, const float *tk) {
  const layout *L = &c->L;
  const size_t D = (size_t)c->o->draws, nx = L->nx;
  double *rec = w->rec;
  jade_status st = jade_coverage_truth(tk, w->maps, D, nx, NULL, nx, w->prank, w->pin68, w->pin95, w->pz);
  if (st) return st;
  double c68 = 0, c95 = 0, z2 = 0;
  for (size_t i = 0; i < nx; i++) {
    c68 += w->pin68[i];
    c95 += w->pin95[i];
    z2 += isfinite(w->pz[i]) ? w->pz[i] * w->pz[i] : 0;
  }
  rec[L->o_pix] = c68 / (double)nx;
  rec[L->o_pix + 1] = c95 / (double)nx;
  rec[L->o_pix + 2] = z2 / (double)nx;
  const int masked = masks_on(&c->o->masks);
  double m68 = 0, m95 = 0, nm = 0; /* the same over the masked pixels only */
  for (size_t i = 0; masked && i < nx; i++)
    if (!(w->mask[i] > 0.5f)) {
      m68 += w->pin68[i];
      m95 += w->pin95[i];
      nm++;
    }
  rec[L->o_mask + 1] = nm > 0 ? m68 / nm : NAN;
  rec[L->o_mask + 2] = nm > 0 ? m95 / nm : NAN;
  return JADE_OK;
}

/* 3c. power spectra: truth, and draws' mean and 16/84% per pair and band */
static jade_status power_stats(const run_ctx *c, worker *w, const float *tk) {
  const layout *L = &c->L;
  const size_t D = (size_t)c->o->draws, nx = L->nx, npix = L->npix;
  const int NB = L->NB, np = L->np;
  double *rec = w->rec;
  jade_status st;
  for (int i = 0; i < L->nb; i++)
    for (int j = i; j < L->nb; j++) {
      const int p = jade_pair_index(L->nb, i, j);
      if ((st = jade_power_spectrum(np, c->size_deg, tk + i * npix, tk + j * npix, NB, c->ell_min, c->ell_max, 1, w->ellm,
                                    w->cl, w->cnt)))
        return st;
      for (int b = 0; b < NB; b++) rec[L->o_pow + ((size_t)p * NB + b) * 4] = w->cnt[b] ? w->cl[b] : NAN;
      if (p == 0)
        for (int b = 0; b < NB; b++) rec[L->o_ell + b] = w->cnt[b] ? w->ellm[b] : NAN;
      for (size_t d = 0; d < D; d++) {
        const float *m = w->maps + d * nx;
        if ((st = jade_power_spectrum(np, c->size_deg, m + i * npix, m + j * npix, NB, c->ell_min, c->ell_max, 1, w->ellm,
                                      w->cl, w->cnt)))
          return st;
        for (int b = 0; b < NB; b++) w->pw[((size_t)p * NB + b) * D + d] = w->cl[b];
      }
      for (int b = 0; b < NB; b++) {
        double *v = w->pw + ((size_t)p * NB + b) * D, s = 0;
        for (size_t d = 0; d < D; d++) s += v[d];
        double *r = rec + L->o_pow + ((size_t)p * NB + b) * 4;
        int ok = w->cnt[b] > 0;
        r[1] = ok ? s / (double)D : NAN;
        r[2] = ok ? quantile_sort(v, D, 0.16) : NAN;
        r[3] = ok ? quantile_sort(v, D, 0.84) : NAN;
      }
    }
  return JADE_OK;
}

/* 3d. one-point histograms and moments (variance, skewness) per bin: truth, draws' mean */
static void onepoint_stats(const run_ctx *c, worker *w, const float *tk) {
  const layout *L = &c->L;
  const size_t D = (size_t)c->o->draws, nx = L->nx, npix = L->npix;
  double *rec = w->rec;
  for (int b = 0; b < L->nb; b++) {
    const double *e = c->edges + (size_t)b * (L->NH + 1);
    double *ht = rec + L->o_hist + (size_t)b * L->NH * 2;
    jade_histogram(tk + b * npix, npix, L->NH + 1, e, w->hist);
    for (int h = 0; h < L->NH; h++) ht[2 * h] = w->hist[h];
    double var, skew, sv = 0, ss = 0;
    jade_moments(tk + b * npix, npix, NULL, &var, &skew);
    rec[L->o_mom + 4 * b] = var;
    rec[L->o_mom + 4 * b + 1] = skew;
    for (size_t d = 0; d < D; d++) {
      const float *m = w->maps + d * nx + b * npix;
      jade_histogram(m, npix, L->NH + 1, e, w->hist);
      for (int h = 0; h < L->NH; h++) ht[2 * h + 1] += w->hist[h] / (double)D;
      jade_moments(m, npix, NULL, &var, &skew);
      sv += var;
      ss += skew;
    }
    rec[L->o_mom + 4 * b + 2] = sv / (double)D;
    rec[L->o_mom + 4 * b + 3] = ss / (double)D;
  }
}

/* 4. normalised units: maps-only (in place), theta-only, joint; and truth t's joint vector
 * (w->tj) */
static void normalise_draws(const run_ctx *c, worker *w, long t) {
  const layout *L = &c->L;
  const size_t D = (size_t)c->o->draws, nx = L->nx, npix = L->npix, q = L->q;
  for (size_t d = 0; d < D; d++) {
    float *m = w->maps + d * nx, *jr = w->joint + d * q;
    for (int b = 0; b < L->nb; b++) {
      const float inv = (float)(1.0 / c->norm.map_std[b]);
      for (size_t i = 0; i < npix; i++) m[b * npix + i] *= inv;
    }
    memcpy(jr, m, nx * sizeof(float));
    for (int j = 0; j < JADE_N_THETA; j++) {
      float v = (float)((w->theta[d * K_COLS + j] - c->norm.theta_mean[j]) / c->norm.theta_std[j]);
      w->thn[d * JADE_N_THETA + j] = v;
      jr[nx + j] = v;
    }
  }
  truth_joint(c, t, w->tj);
}

/* 5. MIRA (no rescaling, as the paper) and TARP (leave-one-out min-max over the truths) */
static jade_status mira_tarp(const run_ctx *c, worker *w, long t) {
  const layout *L = &c->L;
  const size_t D = (size_t)c->o->draws, nx = L->nx, q = L->q;
  double *rec = w->rec;
  long cnt;
  jade_status st;
  if ((st = jade_mira_truth(w->tj, w->joint, D, q, NULL, JADE_METRIC_EUCLIDEAN, c->seed_joint, (size_t)t, &rec[L->o_mira])) ||
      (st = jade_mira_truth(w->tj + nx, w->thn, D, JADE_N_THETA, NULL, JADE_METRIC_EUCLIDEAN, c->seed_theta, (size_t)t,
                            &rec[L->o_mira + 1])) ||
      (st = jade_mira_truth(w->tj, w->maps, D, nx, NULL, JADE_METRIC_EUCLIDEAN, c->seed_maps, (size_t)t, &rec[L->o_mira + 2])))
    return jade_error_context(st, "observation %ld", t);
  if ((st = jade_tarp_truth(w->tj, w->joint, D, q, &c->mm, JADE_METRIC_EUCLIDEAN, c->seed_joint, (size_t)t, &cnt)))
    return st;
  rec[L->o_tarp] = (double)cnt;
  if ((st = jade_tarp_truth(w->tj + nx, w->thn, D, JADE_N_THETA, &c->mm_theta, JADE_METRIC_EUCLIDEAN, c->seed_theta,
                            (size_t)t, &cnt)))
    return st;
  rec[L->o_tarp + 1] = (double)cnt;
  if ((st = jade_tarp_truth(w->tj, w->maps, D, nx, &c->mm_maps, JADE_METRIC_EUCLIDEAN, c->seed_maps, (size_t)t, &cnt)))
    return st;
  rec[L->o_tarp + 2] = (double)cnt;
  return JADE_OK;
}

/* Observation t on worker w: draws, statistics and metrics into the record w->rec, written
 * last; the example figure's data (t = 0) and the --keep-draws rows on the way. */
static jade_status process_obs(const run_ctx *c, worker *w, long t, int inner_threads) {
  const layout *L = &c->L;
  const float *tk = c->kappa_all + (size_t)t * L->nx;
  double *rec = w->rec;
  memset(rec, 0, L->len * sizeof *rec);
  rec[L->o_index] = (double)t;
  jade_status st;
  if ((st = sample_observation(c, w, t, inner_threads))) return st;
  if ((st = parameter_stats(c, w, t)) || (st = pixel_stats(c, w, tk)) || (st = power_stats(c, w, tk))) return st;
  onepoint_stats(c, w, tk);
  /* outputs that need the physical draws */
  if (t == 0 && (st = write_example(c, w, t))) return st;
  if (c->o->keep_draws) {
    if ((st = jade_npy_writer_put_rows(c->w_dtheta, (size_t)t, 1, w->theta))) return st;
    if ((st = jade_npy_writer_put_rows(c->w_dmaps, (size_t)t, 1, w->maps))) return st;
  }
  normalise_draws(c, w, t);
  if ((st = mira_tarp(c, w, t))) return st;
  /* 6. the record, last: its presence marks the observation done */
  char path[4400];
  record_path(c, t, path, sizeof path);
  size_t sh[1] = {L->len};
  return jade_npy_write(path, JADE_F64, 1, sh, rec);
}

/* ---------------------------------------------------------------- set-up */

/* The held-out dataset (jade/dataset.h), kappa as float32 in memory, its noise and patch size. */
static jade_status open_dataset(const jade_validation_options *o, jade_dataset *ds, run_ctx *c) {
  jade_status st = jade_dataset_open(o->data_dir, ds);
  if (st) return st;
  char path[4400];
  snprintf(path, sizeof path, "%s/kappa.npy", o->data_dir);
  /* float16 datasets (jade simulate --dtype f16): converted once into memory */
  if (ds->kappa.dtype == JADE_F16 && (st = jade_npy_to_f32(path, &ds->kappa))) return st;
  memcpy(c->noise, ds->noise.data, (size_t)ds->bins * sizeof(double));
  c->size_deg = ds->size_deg;
  if (!(c->size_deg > 0)) return jade_error(JADE_ERR_FORMAT, "%s/meta.json: missing, or no positive \"size_deg\"", o->data_dir);
  return JADE_OK;
}

static char *run_identity(const jade_validation_options *o, const jade_trained_model *tm) {
  size_t n = strlen(o->model_path) + strlen(o->data_dir) + 768;
  char *s = malloc(n);
  if (!s) return NULL;
  int k = snprintf(s, n,
                   "# jade validate run\nmodel = %s\nmodel_step = %ld\ndata = %s\nn_obs = %ld\ndraws = %ld\nsteps = %d\n"
                   "solver = %s\nbatch = %d\nseed = %llu\nkeep_draws = %d\nn_hist = %d\nmatmul = %s\n",
                   o->model_path, tm->step, o->data_dir, o->n_obs, o->draws, o->steps, jade_solver_name(o->solver), o->batch,
                   (unsigned long long)o->seed, o->keep_draws, o->n_hist, jade_matmul_backend_name(jade_matmul_get_backend()));
  if (masks_on(&o->masks) && k > 0 && (size_t)k < n) /* masked runs only: unmasked runs keep their identity */
    snprintf(s + k, n - (size_t)k, "mask_prob = %.17g\nmask_max = %.17g\nnoise_ln_scale = %.17g\nnoise_ln_field = %.17g\n",
             o->masks.mask_prob, o->masks.mask_max, o->masks.noise_ln_scale, o->masks.noise_ln_field);
  return s;
}

/* ---------------------------------------------------------------- summary */

static jade_status write_tarp_table(const char *dir, const char *name, const jade_tarp_result *r) {
  char path[4400];
  snprintf(path, sizeof path, "%s/tarp_%s.txt", dir, name);
  jade_text_file f;
  jade_status st = jade_text_open(path, &f);
  if (st) return st;
  fprintf(f.f, "# jade " JADE_VERSION " validate: TARP expected coverage (%s), %zu truths x %zu draws, %d bootstrap replicates\n", name, r->T,
          r->S, r->n_boot);
  fprintf(f.f, "# alpha ecp lo68 hi68 lo95 hi95\n");
  for (int j = 0; j < r->n_alpha; j++)
    fprintf(f.f, "%.4f %.6f %.6f %.6f %.6f %.6f\n", r->alpha[j], r->ecp[j], r->lo68 ? r->lo68[j] : NAN, r->hi68 ? r->hi68[j] : NAN,
            r->lo95 ? r->lo95[j] : NAN, r->hi95 ? r->hi95[j] : NAN);
  return jade_text_commit(&f);
}

/* The three vectors the metrics are computed on, and their metric seeds. */
static const char *const part_names[3] = {"joint", "theta", "maps"};
static uint64_t part_seed(const run_ctx *c, int k) { return k == 0 ? c->seed_joint : k == 1 ? c->seed_theta : c->seed_maps; }

/* The calibration metrics over all observations; owns its results. */
typedef struct {
  jade_mira_result mira[3]; /* joint, theta, maps */
  jade_tarp_result tarp[3];
  jade_coverage_result cov; /* per parameter */
} run_metrics;

static void run_metrics_free(run_metrics *m) {
  for (int k = 0; k < 3; k++) {
    jade_mira_result_free(&m->mira[k]);
    jade_tarp_result_free(&m->tarp[k]);
  }
  jade_coverage_result_free(&m->cov);
}

/* Aggregates over the observations that summary.json reports besides the metrics. */
typedef struct {
  double pix68, pix95, pixz2, secs;            /* mean pixel coverage and z^2; sampling seconds */
  double mfrac, m68, m95, nmask, all68, all95; /* masked runs (pixel_summary) */
  double pow_ratio, pow_ratio_median, pow_in68; /* auto spectra (write_power_table) */
} run_summary;

/* OUT.partial/name opened for writing (jade_text_commit publishes it). */
static jade_status open_table(const run_ctx *c, const char *name, jade_text_file *f) {
  char path[4400];
  snprintf(path, sizeof path, "%s/%s", c->partial, name);
  return jade_text_open(path, f);
}

/* All T records into R (T, L->len), each checked to be the record of its observation. */
static jade_status read_records(const run_ctx *c, double *R) {
  const layout *L = &c->L;
  const size_t T = (size_t)c->o->n_obs;
  char path[4400];
  jade_status st = JADE_OK;
  for (size_t t = 0; t < T && !st; t++) {
    jade_npy a;
    record_path(c, (long)t, path, sizeof path);
    if ((st = jade_npy_read(path, 0, &a))) break;
    if (a.dtype != JADE_F64 || a.ndim != 1 || a.shape[0] != L->len || ((double *)a.data)[0] != (double)t)
      st = jade_error(JADE_ERR_FORMAT, "%s: not a record of this run (length %zu, expected %zu)", path, a.shape[0], L->len);
    else
      memcpy(R + t * L->len, a.data, L->len * sizeof(double));
    jade_npy_release(&a);
  }
  return st;
}

/* records are files of a resumable run: the fields used as integers must be integers in
 * range (a NaN or 1e300 cast to int is undefined behaviour) */
static jade_status check_records(const run_ctx *c, const double *R) {
  const layout *L = &c->L;
  const size_t T = (size_t)c->o->n_obs, S = (size_t)c->o->draws;
  for (size_t t = 0; t < T; t++) {
    const double *r = R + t * L->len;
    int ok = 1;
    for (int k = 0; k < 3; k++) ok &= r[L->o_tarp + k] >= 0 && r[L->o_tarp + k] <= (double)S && r[L->o_tarp + k] == floor(r[L->o_tarp + k]);
    for (int j = 0; j < K_COLS; j++) {
      ok &= r[L->o_rank + j] >= 0 && r[L->o_rank + j] <= (double)S && r[L->o_rank + j] == floor(r[L->o_rank + j]);
      ok &= (r[L->o_in68 + j] == 0 || r[L->o_in68 + j] == 1) && (r[L->o_in95 + j] == 0 || r[L->o_in95 + j] == 1);
    }
    if (!ok) {
      char path[4400];
      record_path(c, (long)t, path, sizeof path);
      return jade_error(JADE_ERR_FORMAT, "%s: corrupt record (ranks, counts or coverage flags out of range)", path);
    }
  }
  return JADE_OK;
}

/* MIRA and TARP of the joint, theta and maps vectors (and the tables tarp_<part>.txt), and
 * the per-parameter coverage, from the records R. */
static jade_status compute_metrics(const run_ctx *c, const double *R, run_metrics *m) {
  const jade_validation_options *o = c->o;
  const layout *L = &c->L;
  const size_t T = (size_t)o->n_obs, S = (size_t)o->draws;
  double *p3 = malloc(3 * T * sizeof(double)), *zz = malloc(T * K_COLS * sizeof(double));
  long *cnt3 = malloc(3 * T * sizeof(long));
  int *rk = malloc(T * K_COLS * sizeof(int));
  unsigned char *i68 = malloc(T * K_COLS), *i95 = malloc(T * K_COLS);
  jade_status st = p3 && zz && cnt3 && rk && i68 && i95 ? JADE_OK : jade_error(JADE_ERR_NOMEM, "out of memory");
  for (size_t t = 0; t < T && !st; t++) {
    const double *r = R + t * L->len;
    for (int k = 0; k < 3; k++) {
      p3[k * T + t] = r[L->o_mira + k];
      cnt3[k * T + t] = (long)r[L->o_tarp + k];
    }
    for (int j = 0; j < K_COLS; j++) {
      rk[t * K_COLS + j] = (int)r[L->o_rank + j];
      i68[t * K_COLS + j] = (unsigned char)r[L->o_in68 + j];
      i95[t * K_COLS + j] = (unsigned char)r[L->o_in95 + j];
      zz[t * K_COLS + j] = r[L->o_z + j];
    }
  }
  jade_tarp_opts to;
  jade_tarp_opts_default(&to);
  to.n_boot = o->n_boot;
  for (int k = 0; k < 3 && !st; k++) {
    st = jade_mira_summarise(p3 + k * T, T, S, o->n_boot, part_seed(c, k), &m->mira[k]);
    to.seed = part_seed(c, k);
    if (!st) st = jade_tarp_summarise(cnt3 + k * T, T, S, &to, &m->tarp[k]);
    if (!st) st = write_tarp_table(c->partial, part_names[k], &m->tarp[k]);
  }
  if (!st) st = jade_coverage_summarise(rk, i68, i95, zz, T, S, NULL, K_COLS, 0, &m->cov);
  free(p3);
  free(zz);
  free(cnt3);
  free(rk);
  free(i68);
  free(i95);
  return st;
}

/* coverage.txt: the per-parameter calibration */
static jade_status write_coverage_table(const run_ctx *c, const jade_coverage_result *cov) {
  const size_t T = (size_t)c->o->n_obs, S = (size_t)c->o->draws;
  jade_text_file f;
  jade_status st = open_table(c, "coverage.txt", &f);
  if (st) return st;
  fprintf(f.f, "# jade " JADE_VERSION " validate: per-parameter calibration over %zu observations x %zu draws (offset = mean of (posterior mean - truth) / posterior sd)\n", T, S);
  fprintf(f.f, "# column cov68 cov68_se cov95 cov95_se mean_offset mean_offset_se mean_z2 mean_z2_se rank_chi2 rank_chi2_p\n");
  for (int j = 0; j < K_COLS; j++)
    fprintf(f.f, "%-8s %.4f %.4f %.4f %.4f %+.4f %.4f %.4f %.4f %.3f %.4g\n", jade_posterior_col_names[j], cov->cov68[j],
            cov->cov68_se[j], cov->cov95[j], cov->cov95_se[j], cov->offset[j], cov->offset_se[j], cov->z2[j], cov->z2_se[j],
            cov->rank_chi2[j], cov->rank_pvalue[j]);
  return jade_text_commit(&f);
}

/* per_obs.txt: one row per observation */
static jade_status write_per_obs(const run_ctx *c, const double *R) {
  const layout *L = &c->L;
  const size_t T = (size_t)c->o->n_obs, S = (size_t)c->o->draws;
  jade_text_file f;
  jade_status st = open_table(c, "per_obs.txt", &f);
  if (st) return st;
  fprintf(f.f, "# jade " JADE_VERSION " validate: one row per observation (dataset index); MIRA p and TARP f = count/draws of the joint, theta and maps vectors; physical theta\n# index seconds p_joint p_theta p_maps f_joint f_theta f_maps pixel_cov68 pixel_cov95");
  static const char *const grp[4] = {"truth", "mean", "std", "rank"};
  for (int g = 0; g < 4; g++)
    for (int j = 0; j < K_COLS; j++) fprintf(f.f, " %s_%s", grp[g], jade_posterior_col_names[j]);
  fprintf(f.f, " masked_fraction\n");
  for (size_t t = 0; t < T; t++) {
    const double *r = R + t * L->len;
    fprintf(f.f, "%zu %.3f %.6f %.6f %.6f %.6f %.6f %.6f %.5f %.5f", t, r[L->o_seconds], r[L->o_mira], r[L->o_mira + 1],
            r[L->o_mira + 2], r[L->o_tarp] / (double)S, r[L->o_tarp + 1] / (double)S, r[L->o_tarp + 2] / (double)S, r[L->o_pix],
            r[L->o_pix + 1]);
    const size_t offs[4] = {L->o_truth, L->o_mean, L->o_std, L->o_rank};
    for (int g = 0; g < 4; g++)
      for (int j = 0; j < K_COLS; j++) fprintf(f.f, g == 3 ? " %.0f" : " %.8g", r[offs[g] + j]);
    fprintf(f.f, " %.5f\n", r[L->o_mask]);
  }
  return jade_text_commit(&f);
}

/* power.txt: per spectrum and band, over observations; and into s the summary of the auto
 * spectra: per band sum of the draws' means / sum of the truths (averaged over bands), and
 * the median over observations and bands of the per-observation ratio (the mean of
 * per-observation ratios is dominated by the few truths with almost no power) */
static jade_status write_power_table(const run_ctx *c, const double *R, run_summary *s) {
  const layout *L = &c->L;
  const size_t T = (size_t)c->o->n_obs;
  const int NB = L->NB, nb = L->nb;
  double pow_rom_sum = 0, pow_in68 = 0;
  long pow_rom_n = 0, pow_in68_n = 0;
  size_t pow_nr = 0;
  double *pow_r = malloc(sizeof(double) * ((size_t)nb * NB * T + 1));
  if (!pow_r) return jade_error(JADE_ERR_NOMEM, "out of memory for the power summary");
  jade_text_file f;
  jade_status st = open_table(c, "power.txt", &f);
  if (st) {
    free(pow_r);
    return st;
  }
  fprintf(f.f, "# jade " JADE_VERSION " validate: binned power spectra C_ell of the posterior draws vs the truth, over %zu observations\n"
               "# ratio = (mean over draws of C_ell) / C_ell(truth) per observation; ratio_mean, ratio_sd over observations;\n"
               "# ratio_of_means = sum of draws' means / sum of truths; in68 = fraction of observations whose truth lies\n"
               "# within the draws' 16-84%% range\n", T);
  fprintf(f.f, "# bin_i bin_j band ell truth_mean draws_mean ratio_mean ratio_sd ratio_of_means in68\n");
  for (int i = 0; i < nb; i++)
    for (int j = i; j < nb; j++) {
      const int p = jade_pair_index(nb, i, j);
      for (int b = 0; b < NB; b++) {
        double st_ = 0, sd_ = 0, rs = 0, rs2 = 0, ell = NAN;
        long nr = 0, n68 = 0;
        for (size_t t = 0; t < T; t++) {
          const double *r = R + t * L->len, *v = r + L->o_pow + ((size_t)p * NB + b) * 4;
          ell = r[L->o_ell + b];
          if (!isfinite(v[0]) || !isfinite(v[1])) continue;
          st_ += v[0];
          sd_ += v[1];
          n68 += v[0] >= v[2] && v[0] <= v[3];
          if (v[0] != 0) {
            double x = v[1] / v[0];
            rs += x;
            rs2 += x * x;
            nr++;
            if (i == j) pow_r[pow_nr++] = x;
          }
        }
        if (!isfinite(ell)) continue;
        double rm = nr ? rs / nr : NAN, rsd = nr > 1 ? sqrt(fmax(rs2 / nr - rm * rm, 0) * nr / (nr - 1)) : NAN;
        fprintf(f.f, "%d %d %d %.2f %.6e %.6e %.5f %.5f %.5f %.4f\n", i, j, b, ell, st_ / T, sd_ / T, rm, rsd,
                st_ != 0 ? sd_ / st_ : NAN, (double)n68 / T);
        if (i == j && st_ != 0) pow_rom_sum += sd_ / st_, pow_rom_n++;
        pow_in68 += n68;
        pow_in68_n += (long)T;
      }
    }
  st = jade_text_commit(&f);
  s->pow_ratio = pow_rom_n ? pow_rom_sum / pow_rom_n : NAN;
  s->pow_ratio_median = pow_nr ? quantile_sort(pow_r, pow_nr, 0.5) : NAN;
  s->pow_in68 = pow_in68_n ? pow_in68 / pow_in68_n : NAN;
  free(pow_r);
  return st;
}

/* pdf.txt: the one-point PDF per bin, and the moments */
static jade_status write_pdf_table(const run_ctx *c, const double *R) {
  const layout *L = &c->L;
  const size_t T = (size_t)c->o->n_obs, S = (size_t)c->o->draws;
  const int NH = L->NH, nb = L->nb;
  jade_text_file f;
  jade_status st = open_table(c, "pdf.txt", &f);
  if (st) return st;
  fprintf(f.f, "# jade " JADE_VERSION " validate: one-point PDF of the convergence (density per unit kappa), pooled over %zu observations;\n"
               "# draws: mean over the %zu draws of each observation\n# bin lo hi truth_density draws_density\n", T, S);
  for (int b = 0; b < nb; b++) {
    const double *e = c->edges + (size_t)b * (NH + 1);
    for (int h = 0; h < NH; h++) {
      double a = 0, d = 0;
      for (size_t t = 0; t < T; t++) {
        const double *r = R + t * L->len + L->o_hist + (size_t)b * NH * 2;
        a += r[2 * h];
        d += r[2 * h + 1];
      }
      double norm = (double)T * (double)L->npix * (e[h + 1] - e[h]);
      fprintf(f.f, "%d %.6e %.6e %.6e %.6e\n", b, e[h], e[h + 1], a / norm, d / norm);
    }
  }
  fprintf(f.f, "# moments, mean over observations: bin truth_var draws_var truth_skew draws_skew\n");
  for (int b = 0; b < nb; b++) {
    double m[4] = {0, 0, 0, 0};
    for (size_t t = 0; t < T; t++)
      for (int k = 0; k < 4; k++) m[k] += R[t * L->len + L->o_mom + 4 * b + k] / T;
    fprintf(f.f, "# moments %d %.6e %.6e %.5f %.5f\n", b, m[0], m[2], m[1], m[3]);
  }
  return jade_text_commit(&f);
}

/* The pixel coverage over observations and the total sampling time; masked runs: mean masked
 * fraction; pixel coverage of masked and of observed pixels, each pooled over the
 * observations' pixels */
static void pixel_summary(const run_ctx *c, const double *R, run_summary *s) {
  const layout *L = &c->L;
  const size_t T = (size_t)c->o->n_obs;
  for (size_t t = 0; t < T; t++) {
    const double *r = R + t * L->len;
    s->pix68 += r[L->o_pix] / T;
    s->pix95 += r[L->o_pix + 1] / T;
    s->pixz2 += r[L->o_pix + 2] / T;
    s->secs += r[L->o_seconds];
  }
  for (size_t t = 0; t < T; t++) {
    const double *r = R + t * L->len, nm_t = r[L->o_mask] * (double)L->nx;
    s->mfrac += r[L->o_mask] / T;
    s->all68 += r[L->o_pix] * (double)L->nx;
    s->all95 += r[L->o_pix + 1] * (double)L->nx;
    if (nm_t > 0 && isfinite(r[L->o_mask + 1])) {
      s->m68 += r[L->o_mask + 1] * nm_t;
      s->m95 += r[L->o_mask + 2] * nm_t;
      s->nmask += nm_t;
    }
  }
}

/* config.ini: the model's configuration (prior and survey for jade report) */
static jade_status write_model_config(const run_ctx *c, const jade_trained_model *tm) {
  if (!tm->config_text || !tm->config_text[0]) return JADE_OK;
  jade_text_file f;
  jade_status st = open_table(c, "config.ini", &f);
  if (st) return st;
  fprintf(f.f, "# jade %s validate: the configuration of the model %s\n%s", JADE_VERSION, c->o->model_path, tm->config_text);
  return jade_text_commit(&f);
}

/* summary.json, first part: the run (model, data, options, geometry, normalisation) */
static void json_run(FILE *f, const run_ctx *c, const jade_trained_model *tm) {
  const jade_validation_options *o = c->o;
  const layout *L = &c->L;
  const int nb = L->nb;
  fprintf(f, "{\n  \"format\": \"jade-validation-1\",\n  \"jade_version\": \"%s\",\n  \"model\": ", JADE_VERSION);
  json_str(f, o->model_path);
  fprintf(f, ",\n  \"model_step\": %ld,\n  \"data\": ", tm->step);
  json_str(f, o->data_dir);
  fprintf(f, ",\n  \"n_obs\": %zu,\n  \"draws\": %zu,\n  \"steps\": %d,\n  \"solver\": \"%s\",\n  \"batch\": %d,\n  \"seed\": %llu,\n",
          (size_t)o->n_obs, (size_t)o->draws, o->steps, jade_solver_name(o->solver), o->batch, (unsigned long long)o->seed);
  fprintf(f, "  \"matmul\": \"%s\",\n", jade_matmul_backend_name(jade_matmul_get_backend()));
  fprintf(f, "  \"n_bins\": %d,\n  \"n_pix\": %d,\n  \"size_deg\": %.10g,\n  \"q_joint\": %zu,\n  \"q_theta\": %d,\n  \"q_maps\": %zu,\n",
          nb, L->np, c->size_deg, L->q, JADE_N_THETA, L->nx);
  fprintf(f, "  \"map_std\": [");
  for (int b = 0; b < nb; b++) fprintf(f, "%s%.17g", b ? ", " : "", c->norm.map_std[b]);
  fprintf(f, "],\n  \"theta_mean\": [");
  for (int j = 0; j < JADE_N_THETA; j++) fprintf(f, "%s%.17g", j ? ", " : "", c->norm.theta_mean[j]);
  fprintf(f, "],\n  \"theta_std\": [");
  for (int j = 0; j < JADE_N_THETA; j++) fprintf(f, "%s%.17g", j ? ", " : "", c->norm.theta_std[j]);
  fprintf(f, "],\n");
  fprintf(f, "  \"units\": \"MIRA and TARP use the model's normalised units: maps kappa / map_std per bin (field mean not "
             "removed), parameters (theta - theta_mean) / theta_std of the model's normalisation; joint = all map pixels "
             "(bin, y, x) then the 6 parameters. Coverage, ranks and offsets use physical values.\",\n");
  fprintf(f, "  \"mira_norm\": \"none (paper)\",\n  \"tarp_norm\": \"min-max over the other truths (leave-one-out)\",\n");
  fprintf(f, "  \"n_boot\": %d,\n", o->n_boot);
}

/* summary.json, second part: MIRA, TARP and the per-parameter coverage */
static void json_metrics(FILE *f, const run_ctx *c, const run_metrics *m) {
  for (int k = 0; k < 3; k++) {
    fprintf(f, "  \"mira_%s\": ", part_names[k]);
    json_num(f, m->mira[k].score);
    fprintf(f, ",\n  \"mira_%s_err\": ", part_names[k]);
    json_num(f, m->mira[k].err);
    fprintf(f, ",\n  \"mira_%s_seed\": %llu,\n", part_names[k], (unsigned long long)part_seed(c, k));
  }
  fprintf(f, "  \"mira_expected\": ");
  json_num(f, jade_mira_expected((size_t)c->o->draws));
  fprintf(f, ",\n");
  for (int k = 0; k < 3; k++) {
    const jade_tarp_result *t = &m->tarp[k];
    const double v[6] = {t->max_dev, t->max_dev_err, t->area, t->area_err, t->signed_area, t->signed_area_err};
    static const char *const nm[6] = {"max_dev", "max_dev_err", "area", "area_err", "signed_area", "signed_area_err"};
    for (int i = 0; i < 6; i++) {
      fprintf(f, "  \"tarp_%s_%s\": ", part_names[k], nm[i]);
      json_num(f, v[i]);
      fprintf(f, ",\n");
    }
  }
  const jade_coverage_result *cov = &m->cov;
  fprintf(f, "  \"coverage\": {\n");
  for (int j = 0; j < K_COLS; j++) {
    static const char *const key[9] = {"cov68", "cov68_se", "cov95", "cov95_se", "mean_offset", "mean_offset_se",
                                        "mean_z2", "rank_chi2", "rank_chi2_p"};
    const double val[9] = {cov->cov68[j], cov->cov68_se[j], cov->cov95[j], cov->cov95_se[j], cov->offset[j],
                           cov->offset_se[j], cov->z2[j], cov->rank_chi2[j], cov->rank_pvalue[j]};
    fprintf(f, "    \"%s\": {", jade_posterior_col_names[j]);
    for (int k = 0; k < 9; k++) {
      fprintf(f, "%s\"%s\": ", k ? ", " : "", key[k]);
      json_num(f, val[k]);
    }
    fprintf(f, "}%s\n", j + 1 < K_COLS ? "," : "");
  }
  fprintf(f, "  },\n  \"rank_bins\": %d", cov->n_rank_bins);
}

/* summary.json, last part: pixel coverage (masked runs: masked and observed pixels), power
 * spectra, timings */
static void json_maps(FILE *f, const run_ctx *c, const run_summary *s, double seconds_total) {
  const jade_validation_options *o = c->o;
  const size_t T = (size_t)o->n_obs;
  static const char *const kpix[3] = {"pixel_cov68", "pixel_cov95", "pixel_mean_z2"};
  const double vpix[3] = {s->pix68, s->pix95, s->pixz2};
  json_fields(f, kpix, vpix, 3);
  if (masks_on(&o->masks)) {
    const double nobs_pix = (double)T * (double)c->L.nx - s->nmask;
    fprintf(f, ",\n  \"masks\": {\"mask_prob\": %.10g, \"mask_max\": %.10g, \"noise_ln_scale\": %.10g, \"noise_ln_field\": %.10g}",
            o->masks.mask_prob, o->masks.mask_max, o->masks.noise_ln_scale, o->masks.noise_ln_field);
    static const char *const kmask[5] = {"masked_fraction", "pixel_cov68_masked", "pixel_cov95_masked", "pixel_cov68_observed",
                                         "pixel_cov95_observed"};
    const double vmask[5] = {s->mfrac, s->nmask > 0 ? s->m68 / s->nmask : NAN, s->nmask > 0 ? s->m95 / s->nmask : NAN,
                             nobs_pix > 0 ? (s->all68 - s->m68) / nobs_pix : NAN,
                             nobs_pix > 0 ? (s->all95 - s->m95) / nobs_pix : NAN};
    json_fields(f, kmask, vmask, 5);
  }
  static const char *const kpow[3] = {"power_auto_ratio", "power_auto_ratio_median", "power_in68"};
  const double vpow[3] = {s->pow_ratio, s->pow_ratio_median, s->pow_in68};
  json_fields(f, kpow, vpow, 3);
  fprintf(f, ",\n  \"ell_bands\": %d,\n  \"ell_min\": %.6g,\n  \"ell_max\": %.6g,\n", c->L.NB, c->ell_min, c->ell_max);
  fprintf(f, "  \"sampling_seconds\": %.3f,\n  \"seconds_per_obs\": %.4f,\n  \"wall_seconds_last_run\": %.3f\n}\n", s->secs,
          s->secs / T, seconds_total);
}

/* summary.json */
static jade_status write_summary_json(const run_ctx *c, const jade_trained_model *tm, const run_metrics *m, const run_summary *s,
                                      double seconds_total) {
  jade_text_file f;
  jade_status st = open_table(c, "summary.json", &f);
  if (st) return st;
  json_run(f.f, c, tm);
  json_metrics(f.f, c, m);
  json_maps(f.f, c, s, seconds_total);
  return jade_text_commit(&f);
}

/* All records -> the metrics and tables, config.ini and summary.json in OUT.partial; res gets
 * the joint MIRA score. */
static jade_status summarise(const run_ctx *c, const jade_trained_model *tm, double seconds_total, jade_validation_result *res) {
  const layout *L = &c->L;
  const size_t T = (size_t)c->o->n_obs;
  double *R = malloc(T * L->len * sizeof(double));
  run_metrics m;
  run_summary s;
  memset(&m, 0, sizeof m);
  memset(&s, 0, sizeof s);
  jade_status st = R ? JADE_OK : jade_error(JADE_ERR_NOMEM, "out of memory");
  if (!st) st = read_records(c, R);
  if (!st) st = check_records(c, R);
  if (!st) st = compute_metrics(c, R, &m);
  if (!st) st = write_coverage_table(c, &m.cov);
  if (!st) st = write_per_obs(c, R);
  if (!st) st = write_power_table(c, R, &s);
  if (!st) st = write_pdf_table(c, R);
  if (!st) pixel_summary(c, R, &s);
  if (!st) st = write_model_config(c, tm);
  if (!st) st = write_summary_json(c, tm, &m, &s, seconds_total);
  if (!st) {
    res->mira_joint = m.mira[0].score;
    res->mira_joint_err = m.mira[0].err;
    res->mira_expected = jade_mira_expected((size_t)c->o->draws);
  }
  run_metrics_free(&m);
  free(R);
  return st;
}

/* --keep-draws: truths and observations (regenerated: deterministic), next to the draws. */
static jade_status write_truths(const run_ctx *c) {
  const layout *L = &c->L;
  const size_t T = (size_t)c->o->n_obs;
  char path[4400];
  double *th = malloc(T * K_COLS * sizeof(double));
  float *obs = malloc(T * L->nx * sizeof(float)), *mask = malloc(L->nx * sizeof(float)), *sigma = malloc(L->nx * sizeof(float)),
        *lnr = malloc(L->npix * sizeof(float));
  jade_status st = th && obs && mask && sigma && lnr ? JADE_OK : jade_error(JADE_ERR_NOMEM, "out of memory");
  for (size_t t = 0; t < T && !st; t++) {
    memcpy(th + t * K_COLS, c->theta_all + t * JADE_N_THETA, JADE_N_THETA * sizeof(double));
    th[t * K_COLS + JADE_N_THETA] = jade_theta_omega_m(th + t * K_COLS);
    th[t * K_COLS + JADE_N_THETA + 1] = jade_theta_s8(th + t * K_COLS);
    make_observation(c, (long)t, obs + t * L->nx, mask, sigma, lnr);
  }
  size_t sh2[2] = {T, K_COLS}, sh4[4] = {T, (size_t)L->nb, (size_t)L->np, (size_t)L->np};
  snprintf(path, sizeof path, "%s/truth_theta.npy", c->partial);
  if (!st) st = jade_npy_write(path, JADE_F64, 2, sh2, th);
  snprintf(path, sizeof path, "%s/truth_maps.npy", c->partial);
  if (!st) st = jade_npy_write(path, JADE_F32, 4, sh4, c->kappa_all);
  snprintf(path, sizeof path, "%s/obs_maps.npy", c->partial);
  if (!st) st = jade_npy_write(path, JADE_F32, 4, sh4, obs);
  free(th);
  free(obs);
  free(mask);
  free(sigma);
  free(lnr);
  return st;
}

/* ---------------------------------------------------------------- the run */

/* --keep-draws: the shared draws_theta.npy / draws_maps.npy in OUT.partial, created (rank 0)
 * or opened (the other ranks) for row writes. */
static jade_status open_draw_writers(run_ctx *c, const size_t sh_dt[3], const size_t sh_dm[5], int create) {
  char path[4400];
  snprintf(path, sizeof path, "%s/draws_theta.npy", c->partial);
  jade_status st = jade_npy_writer_open(path, JADE_F64, 3, sh_dt, create, &c->w_dtheta);
  snprintf(path, sizeof path, "%s/draws_maps.npy", c->partial);
  if (!st) st = jade_npy_writer_open(path, JADE_F32, 5, sh_dm, create, &c->w_dmaps);
  return st;
}

/* The options' ranges, and OUT not there yet. */
static jade_status check_options(const jade_validation_options *o) {
  if (!o->model_path || !o->data_dir || !o->out_dir)
    return jade_error(JADE_ERR_INVALID, "validate: model, data and output paths are required");
  if (o->n_obs < 2) return jade_error(JADE_ERR_INVALID, "validate: at least 2 observations are needed (got %ld)", o->n_obs);
  if (o->draws < 2 || o->steps < 1 || o->batch < 1 || o->n_hist < 2 || o->n_boot < 0)
    return jade_error(JADE_ERR_INVALID, "validate: draws >= 2, steps >= 1, batch >= 1, histogram bins >= 2 required");
  if (o->seed >= (1ull << 31)) return jade_error(JADE_ERR_INVALID, "validate: seed must be < 2^31");
  if (jade_path_exists(o->out_dir))
    return jade_error(JADE_ERR_IO, "%s: already exists (choose another output or remove it)", o->out_dir);
  return JADE_OK;
}

/* Masked runs: what the model can condition on (jade/condition.h). */
static jade_status check_masks(const jade_validation_options *o, const jade_trained_model *tm) {
  const jade_mask_config *m = &o->masks;
  if (!masks_on(m)) return JADE_OK;
  if (!(m->mask_prob >= 0 && m->mask_prob <= 1 && m->mask_max >= 0 && m->mask_max <= 0.9 && m->noise_ln_scale >= 0 &&
        m->noise_ln_field >= 0 && isfinite(m->noise_ln_scale) && isfinite(m->noise_ln_field)))
    return jade_error(JADE_ERR_INVALID, "validate: masks: mask_prob %g (0-1), mask_max %g (0-0.9), noise_ln_scale %g and "
                      "noise_ln_field %g (>= 0) out of range", m->mask_prob, m->mask_max, m->noise_ln_scale, m->noise_ln_field);
  if (!tm->norm.masked)
    return jade_error(JADE_ERR_INVALID, "%s: masked observations need a model trained with model.condition = masked "
                      "(this one conditions on full convergence maps)", o->model_path);
  if (m->noise_ln_scale + m->noise_ln_field > tm->norm.noise_ln_max + 1e-9)
    return jade_error(JADE_ERR_INVALID, "%s: noise ratios up to e^%g requested, the model was trained up to e^%g "
                      "(noise_ln_scale + noise_ln_field <= %g)", o->model_path, m->noise_ln_scale + m->noise_ln_field,
                      tm->norm.noise_ln_max, tm->norm.noise_ln_max);
  return JADE_OK;
}

/* The held-out dataset against the model: enough simulations, the geometry and noise the
 * model was trained on (jade_posterior_check), and the masks it can condition on. */
static jade_status check_dataset(const run_ctx *c, const jade_trained_model *tm, const jade_dataset *ds) {
  const jade_validation_options *o = c->o;
  if (o->n_obs > ds->n)
    return jade_error(JADE_ERR_INVALID, "%s: has %ld simulations, fewer than --n-obs %ld", o->data_dir, ds->n, o->n_obs);
  jade_observation fake;
  memset(&fake, 0, sizeof fake);
  fake.n_bins = ds->bins;
  fake.n_pix = ds->npix;
  fake.size_deg = c->size_deg;
  memcpy(fake.noise, c->noise, sizeof c->noise);
  jade_status st = jade_posterior_check(tm, &fake, o->data_dir, o->noise_rtol);
  if (st) return jade_error_context(st, "held-out dataset");
  return check_masks(o, tm);
}

/* histogram edges per bin: the range of the truths' convergence, padded by 5% */
static void histogram_edges(run_ctx *c) {
  const layout *L = &c->L;
  const size_t T = (size_t)c->o->n_obs;
  for (int b = 0; b < L->nb; b++) {
    double lo = INFINITY, hi = -INFINITY;
    for (size_t t = 0; t < T; t++) {
      const float *k = c->kappa_all + t * L->nx + b * L->npix;
      for (size_t i = 0; i < L->npix; i++) {
        lo = fmin(lo, k[i]);
        hi = fmax(hi, k[i]);
      }
    }
    double pad = 0.05 * (hi - lo);
    if (!(pad > 0)) pad = 1e-3;
    lo -= pad;
    hi += pad;
    for (int h = 0; h <= L->NH; h++) c->edges[(size_t)b * (L->NH + 1) + h] = lo + (hi - lo) * h / L->NH;
  }
}

/* truths in normalised units -> leave-one-out min-max for TARP (c->mm, and its views into
 * the joint vector c->mm_maps, c->mm_theta); histogram edges (c->edges) */
static jade_status prepare_truths(run_ctx *c) {
  const layout *L = &c->L;
  const size_t T = (size_t)c->o->n_obs;
  float *truths = malloc(T * L->q * sizeof(float));
  c->edges = malloc((size_t)L->nb * (L->NH + 1) * sizeof(double));
  if (!truths || !c->edges) {
    free(truths);
    return jade_error(JADE_ERR_NOMEM, "validate: out of memory for %zu truths of %zu values", T, L->q);
  }
  for (size_t t = 0; t < T; t++) truth_joint(c, (long)t, truths + t * L->q);
  jade_status st = jade_minmax_compute(truths, NULL, T, 1, L->q, JADE_NORM_TRUTHS, &c->mm);
  free(truths);
  if (st) return st;
  c->mm_maps = c->mm;
  c->mm_maps.q = L->nx;
  c->mm_theta = c->mm;
  c->mm_theta.q = JADE_N_THETA;
  c->mm_theta.lo1 += L->nx;
  c->mm_theta.lo2 += L->nx;
  c->mm_theta.hi1 += L->nx;
  c->mm_theta.hi2 += L->nx;
  c->mm_theta.arglo += L->nx;
  c->mm_theta.arghi += L->nx;
  histogram_edges(c);
  return JADE_OK;
}

/* Rank 0: OUT.partial created with run.txt (the run's identity ident) or, when it exists,
 * checked to be this run's; its records/ folder. */
static jade_status claim_partial(const run_ctx *c, const char *ident) {
  char path[4400];
  int exists = 0;
  jade_status st = jade_run_dir_check(c->partial, ident, "model, data or options", &exists);
  if (!st && !exists) st = jade_run_dir_create(c->partial, ident);
  snprintf(path, sizeof path, "%s/records", c->partial);
  if (!st) st = jade_mkdir_p(path);
  return st;
}

/* OUT.partial: rank 0 creates or checks it; then everyone opens the shared files */
static jade_status prepare_partial(run_ctx *c, const jade_trained_model *tm, const jade_dist *dist) {
  const jade_validation_options *o = c->o;
  const layout *L = &c->L;
  const size_t T = (size_t)o->n_obs;
  char *ident = run_identity(o, tm);
  if (!ident) return jade_error(JADE_ERR_NOMEM, "out of memory");
  size_t sh_dt[3] = {T, (size_t)o->draws, K_COLS}, sh_dm[5] = {T, (size_t)o->draws, (size_t)L->nb, (size_t)L->np, (size_t)L->np};
  jade_status st = JADE_OK;
  if (dist->rank == 0) {
    st = claim_partial(c, ident);
    if (!st && o->keep_draws) st = open_draw_writers(c, sh_dt, sh_dm, 1);
  }
  free(ident);
  if (jade_dist_max_int(dist, st != JADE_OK)) return st ? st : jade_error(JADE_ERR_IO, "rank 0 failed to prepare %s", c->partial);
  if (dist->rank != 0 && o->keep_draws) st = open_draw_writers(c, sh_dt, sh_dm, 0);
  if (jade_dist_max_int(dist, st != JADE_OK) && !st) st = jade_error(JADE_ERR_IO, "another rank failed to open %s", c->partial);
  return st;
}

/* --keep-draws: the shared draws files closed; the first error kept (st, then theirs). */
static jade_status close_draw_writers(run_ctx *c, jade_status st) {
  jade_npy_writer **w[2] = {&c->w_dtheta, &c->w_dmaps};
  for (int k = 0; k < 2; k++)
    if (*w[k]) {
      jade_status s2 = jade_npy_writer_close(*w[k]);
      *w[k] = NULL;
      if (!st) st = s2;
    }
  return st;
}

/* This rank's observations (rank, rank + size, ...) without a record yet into todo; returns
 * how many, *n_mine: all of the rank's observations. */
static long list_todo(const run_ctx *c, const jade_dist *dist, long *todo, long *n_mine) {
  char path[4400];
  long n_todo = 0;
  *n_mine = 0;
  for (long t = dist->rank; t < c->o->n_obs; t += dist->size) {
    (*n_mine)++;
    record_path(c, t, path, sizeof path);
    if (!jade_path_exists(path)) todo[n_todo++] = t;
  }
  return n_todo;
}

/* Observations todo[0..limit-1] on the nw workers W, whole observations per thread (outer)
 * or one after the other with threads inside the network; the first error's message kept. */
static jade_status run_workers(const run_ctx *c, worker *W, int nw, const long *todo, long limit, int outer) {
  int failed = 0;
  char msg[1024] = "";
  /* whole observations per thread: each runs its network on 1 thread, also when fewer
   * observations than threads are left (a resumed run), so that an observation's bytes do
   * not depend on how many were left (threads inside the network change float rounding) */
  const int saved_threads = omp_get_max_threads();
  if (outer) omp_set_num_threads(1);
#pragma omp parallel num_threads(nw) if (nw > 1)
  {
    worker *me = &W[nw > 1 ? omp_get_thread_num() : 0];
#pragma omp for schedule(dynamic, 1)
    for (long k = 0; k < limit; k++) {
      if (failed) continue;
      obs_event(me, 0, 0);
      jade_status s2 = process_obs(c, me, todo[k], !outer);
      if (!s2) obs_event(me, 2, 0);
#pragma omp critical(jade_validate)
      {
        if (s2 && !failed) {
          failed = 1;
          snprintf(msg, sizeof msg, "%s", jade_last_error());
        }
      }
    }
  }
  omp_set_num_threads(saved_threads);
  return failed ? jade_error(JADE_ERR_NUMERIC, "%s", msg) : JADE_OK;
}

/* This rank's share: up to --max-obs of its n_todo observations still to do (todo; n_mine in
 * all), on worker threads with a model each; progress and the start callback from rank 0.
 * *stopped: --max-obs left some for a later run. */
static jade_status run_observations(const run_ctx *c, const jade_dist *dist, const long *todo, long n_todo, long n_mine,
                                    int *stopped) {
  const jade_validation_options *o = c->o;
  long limit = o->max_obs > 0 && o->max_obs < n_todo ? o->max_obs : n_todo;
  *stopped = limit < n_todo;
  /* threads: whole observations per thread when the rank has enough of them (decided from
   * the rank's total, not what is left, so a resumed run integrates the same way) */
  int nthr = omp_get_max_threads();
  int outer = o->threads != 1 && nthr > 1 && n_mine >= nthr;
  int nw = outer ? (int)(limit < nthr ? (limit > 0 ? limit : 1) : nthr) : 1;
  worker *W = calloc((size_t)nw, sizeof *W);
  jade_eta *eta = NULL;
  jade_status st = W ? JADE_OK : jade_error(JADE_ERR_NOMEM, "out of memory");
  /* progress: this rank's `limit` observations, each ceil(draws / batch) batches of the
   * sampler, one progress step per network evaluation */
  if (!st && dist->rank == 0 && o->progress && limit > 0) {
    const long nb = (o->draws + o->batch - 1) / o->batch;
    const int evals = jade_solver_evals(o->solver, o->steps);
    const double work = (double)o->draws * evals;
    st = jade_eta_create(nw, limit, work, work, nb * evals, jade_time_now(), &eta);
  }
  for (int i = 0; i < nw && !st && limit > 0; i++) {
    st = worker_init(&W[i], c);
    W[i].id = i;
    W[i].eta = eta;
    W[i].o = o;
  }
  if (!st && dist->rank == 0 && o->start) o->start(limit, n_mine, nw, o->user);
  if (!st && limit > 0) st = run_workers(c, W, nw, todo, limit, outer);
  for (int i = 0; W && i < nw; i++) worker_free(&W[i]);
  jade_eta_free(eta);
  free(W);
  return st;
}

/* How many of the run's records exist (every rank's observations). */
static long count_records(const run_ctx *c) {
  char path[4400];
  long have = 0;
  for (long t = 0; t < c->o->n_obs; t++) {
    record_path(c, t, path, sizeof path);
    have += jade_path_exists(path);
  }
  return have;
}

/* Rank 0, every record there: the summary, the --keep-draws truths and the report in
 * OUT.partial, which then, without run.txt and temporaries, becomes OUT. On failure run.txt
 * is put back: OUT.partial stays resumable. */
static jade_status publish(const run_ctx *c, const jade_trained_model *tm, double seconds_total, jade_validation_result *res) {
  const jade_validation_options *o = c->o;
  char path[4400];
  jade_status st = summarise(c, tm, seconds_total, res);
  if (!st && o->keep_draws) st = write_truths(c);
  if (!st && !o->no_report) {
    jade_report_options ro;
    jade_report_options_default(&ro);
    ro.kind = JADE_REPORT_VALIDATION;
    ro.name = o->out_dir;
    char html[4400];
    st = jade_report_write(c->partial, &ro, html, sizeof html);
  }
  /* temporaries of killed runs must not end up in OUT */
  snprintf(path, sizeof path, "%s/records", c->partial);
  if (!st && jade_path_exists(path)) st = jade_remove_temporaries(path);
  /* publish_dir removes run.txt last: a run killed anywhere before leaves OUT.partial
   * resumable (it then only redoes the summary and the report) */
  if (!st) st = jade_publish_dir(c->partial, o->out_dir);
  return st;
}

jade_status jade_validation_run(const jade_validation_options *o, jade_validation_result *res) {
  jade_dist single = {0, 1, 0};
  const jade_dist *dist = o->dist ? o->dist : &single;
  memset(res, 0, sizeof *res);
  res->mira_joint = res->mira_joint_err = NAN;
  const double t_start = jade_time_now();
  run_ctx c;
  memset(&c, 0, sizeof c);
  c.o = o;
  jade_dataset ds;
  memset(&ds, 0, sizeof ds);
  jade_trained_model *tm = NULL;
  jade_status st = check_options(o);
  if (st) return st;
  snprintf(c.partial, sizeof c.partial, "%s.partial", o->out_dir);

  if ((st = jade_trained_model_load(o->model_path, &tm))) goto done;
  c.norm = tm->norm;
  if ((st = open_dataset(o, &ds, &c))) goto done;
  c.theta_all = ds.theta.data;
  c.kappa_all = ds.kappa.data;
  if ((st = check_dataset(&c, tm, &ds))) goto done;
  jade_power_spectrum_bands(ds.npix, c.size_deg, &c.n_bands, &c.ell_min, &c.ell_max);
  make_layout(&c.L, ds.bins, ds.npix, c.n_bands, o->n_hist);
  c.seed_joint = o->seed * 4 + 1;
  c.seed_theta = o->seed * 4 + 2;
  c.seed_maps = o->seed * 4 + 3;
  if ((st = prepare_truths(&c)) || (st = prepare_partial(&c, tm, dist))) goto done;

  /* this rank's observations still to do */
  long n_mine = 0, *todo = malloc((size_t)o->n_obs * sizeof(long));
  if (!todo) {
    st = jade_error(JADE_ERR_NOMEM, "out of memory");
    goto done;
  }
  const long n_todo = list_todo(&c, dist, todo, &n_mine);
  int stopped = 0;
  st = run_observations(&c, dist, todo, n_todo, n_mine, &stopped);
  free(todo);
  st = close_draw_writers(&c, st);
  if (jade_dist_max_int(dist, st != JADE_OK)) {
    if (!st) st = jade_error(JADE_ERR_IO, "validation failed on another rank");
    goto done;
  }
  res->n_done = count_records(&c);
  res->n_obs = o->n_obs;
  if (jade_dist_max_int(dist, stopped) || res->n_done < o->n_obs) goto done; /* not finished: resume later */
  if (dist->rank == 0) st = publish(&c, tm, jade_time_now() - t_start, res);
  if (jade_dist_max_int(dist, st != JADE_OK) && !st) st = jade_error(JADE_ERR_IO, "rank 0 failed to finish %s", o->out_dir);
  res->finished = !st;
done:
  close_draw_writers(&c, st);
  free(c.edges);
  jade_minmax_free(&c.mm);
  jade_dataset_close(&ds);
  jade_trained_model_free(tm);
  res->seconds = jade_time_now() - t_start;
  return st;
}
