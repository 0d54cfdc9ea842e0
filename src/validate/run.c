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

static jade_status process_obs(const run_ctx *c, worker *w, long t, int inner_threads) {
  const jade_validation_options *o = c->o;
  const layout *L = &c->L;
  const size_t D = (size_t)o->draws, nx = L->nx, npix = L->npix, q = L->q;
  double *rec = w->rec;
  memset(rec, 0, L->len * sizeof *rec);
  rec[L->o_index] = (double)t;
  double t0 = jade_time_now();
  /* 1. observation, 2. posterior draws */
  const int masked = masks_on(&o->masks);
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
  if (masked) {
    po.mask = w->mask;
    po.noise_map = w->sigma;
  }
  po.noise = c->noise;
  jade_status st = jade_posterior_sample(w->tm, w->obs, &po, NULL, w->maps, w->theta);
  if (st) return jade_error_context(st, "observation %ld", t);
  rec[L->o_seconds] = jade_time_now() - t0;
  const float *tk = c->kappa_all + (size_t)t * nx;
  /* 3a. parameters: truth, mean, std, coverage (physical units, 6 + Omega_m + S_8) */
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
  if ((st = jade_coverage_truth(truthf, w->thf, D, K_COLS, NULL, K_COLS, rank, in68, in95, z))) return st;
  for (int j = 0; j < K_COLS; j++) {
    rec[L->o_rank + j] = rank[j];
    rec[L->o_in68 + j] = in68[j];
    rec[L->o_in95 + j] = in95[j];
    rec[L->o_z + j] = z[j];
  }
  /* 3b. per-pixel coverage of the maps */
  if ((st = jade_coverage_truth(tk, w->maps, D, nx, NULL, nx, w->prank, w->pin68, w->pin95, w->pz))) return st;
  double c68 = 0, c95 = 0, z2 = 0;
  for (size_t i = 0; i < nx; i++) {
    c68 += w->pin68[i];
    c95 += w->pin95[i];
    z2 += isfinite(w->pz[i]) ? w->pz[i] * w->pz[i] : 0;
  }
  rec[L->o_pix] = c68 / (double)nx;
  rec[L->o_pix + 1] = c95 / (double)nx;
  rec[L->o_pix + 2] = z2 / (double)nx;
  double m68 = 0, m95 = 0, nm = 0; /* the same over the masked pixels only */
  for (size_t i = 0; masked && i < nx; i++)
    if (!(w->mask[i] > 0.5f)) {
      m68 += w->pin68[i];
      m95 += w->pin95[i];
      nm++;
    }
  rec[L->o_mask + 1] = nm > 0 ? m68 / nm : NAN;
  rec[L->o_mask + 2] = nm > 0 ? m95 / nm : NAN;
  /* 3c. power spectra: truth, and draws' mean and 16/84% per pair and band */
  const int NB = L->NB, np = L->np;
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
  /* 3d. one-point histograms and moments */
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
  /* outputs that need the physical draws */
  if (t == 0 && (st = write_example(c, w, t))) return st;
  if (o->keep_draws) {
    if ((st = jade_npy_writer_put_rows(c->w_dtheta, (size_t)t, 1, w->theta))) return st;
    if ((st = jade_npy_writer_put_rows(c->w_dmaps, (size_t)t, 1, w->maps))) return st;
  }
  /* 4. normalised units: maps-only (in place), theta-only, joint */
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
  /* 5. MIRA (no rescaling, as the paper) and TARP (leave-one-out min-max over the truths) */
  long cnt;
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

static jade_status summarise(const run_ctx *c, const jade_trained_model *tm, double seconds_total, jade_validation_result *res) {
  const jade_validation_options *o = c->o;
  const layout *L = &c->L;
  const size_t T = (size_t)o->n_obs, S = (size_t)o->draws;
  const int NB = L->NB, NH = L->NH, nb = L->nb;
  const char *dir = c->partial;
  char path[4400];
  jade_status st = JADE_OK;
  double *R = malloc(T * L->len * sizeof(double)), *pow_r = NULL;
  double *p3 = malloc(3 * T * sizeof(double)), *zz = malloc(T * K_COLS * sizeof(double));
  long *cnt3 = malloc(3 * T * sizeof(long));
  int *rk = malloc(T * K_COLS * sizeof(int));
  unsigned char *i68 = malloc(T * K_COLS), *i95 = malloc(T * K_COLS);
  jade_mira_result mira[3];
  jade_tarp_result tarp[3];
  jade_coverage_result cov;
  memset(mira, 0, sizeof mira);
  memset(tarp, 0, sizeof tarp);
  memset(&cov, 0, sizeof cov);
  if (!R || !p3 || !zz || !cnt3 || !rk || !i68 || !i95) {
    st = jade_error(JADE_ERR_NOMEM, "out of memory");
    goto out;
  }
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
  if (st) goto out;
  /* records are files of a resumable run: the fields used as integers must be integers in
   * range (a NaN or 1e300 cast to int is undefined behaviour) */
  for (size_t t = 0; t < T && !st; t++) {
    const double *r = R + t * L->len;
    int ok = 1;
    for (int k = 0; k < 3; k++) ok &= r[L->o_tarp + k] >= 0 && r[L->o_tarp + k] <= (double)S && r[L->o_tarp + k] == floor(r[L->o_tarp + k]);
    for (int j = 0; j < K_COLS; j++) {
      ok &= r[L->o_rank + j] >= 0 && r[L->o_rank + j] <= (double)S && r[L->o_rank + j] == floor(r[L->o_rank + j]);
      ok &= (r[L->o_in68 + j] == 0 || r[L->o_in68 + j] == 1) && (r[L->o_in95 + j] == 0 || r[L->o_in95 + j] == 1);
    }
    if (!ok) {
      record_path(c, (long)t, path, sizeof path);
      st = jade_error(JADE_ERR_FORMAT, "%s: corrupt record (ranks, counts or coverage flags out of range)", path);
    }
  }
  if (st) goto out;
  for (size_t t = 0; t < T; t++) {
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
  const uint64_t seeds[3] = {c->seed_joint, c->seed_theta, c->seed_maps};
  static const char *const part[3] = {"joint", "theta", "maps"};
  jade_tarp_opts to;
  jade_tarp_opts_default(&to);
  to.n_boot = o->n_boot;
  for (int k = 0; k < 3 && !st; k++) {
    st = jade_mira_summarise(p3 + k * T, T, S, o->n_boot, seeds[k], &mira[k]);
    to.seed = seeds[k];
    if (!st) st = jade_tarp_summarise(cnt3 + k * T, T, S, &to, &tarp[k]);
    if (!st) st = write_tarp_table(dir, part[k], &tarp[k]);
  }
  if (!st) st = jade_coverage_summarise(rk, i68, i95, zz, T, S, NULL, K_COLS, 0, &cov);
  if (st) goto out;
  /* coverage.txt */
  jade_text_file f;
  snprintf(path, sizeof path, "%s/coverage.txt", dir);
  if ((st = jade_text_open(path, &f))) goto out;
  fprintf(f.f, "# jade " JADE_VERSION " validate: per-parameter calibration over %zu observations x %zu draws (offset = mean of (posterior mean - truth) / posterior sd)\n", T, S);
  fprintf(f.f, "# column cov68 cov68_se cov95 cov95_se mean_offset mean_offset_se mean_z2 mean_z2_se rank_chi2 rank_chi2_p\n");
  for (int j = 0; j < K_COLS; j++)
    fprintf(f.f, "%-8s %.4f %.4f %.4f %.4f %+.4f %.4f %.4f %.4f %.3f %.4g\n", jade_posterior_col_names[j], cov.cov68[j],
            cov.cov68_se[j], cov.cov95[j], cov.cov95_se[j], cov.offset[j], cov.offset_se[j], cov.z2[j], cov.z2_se[j],
            cov.rank_chi2[j], cov.rank_pvalue[j]);
  if ((st = jade_text_commit(&f))) goto out;
  /* per_obs.txt */
  snprintf(path, sizeof path, "%s/per_obs.txt", dir);
  if ((st = jade_text_open(path, &f))) goto out;
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
  if ((st = jade_text_commit(&f))) goto out;
  /* power.txt: per spectrum and band, over observations */
  /* summary: auto spectra, per band sum of the draws' means / sum of the truths (averaged over
   * bands), and the median over observations and bands of the per-observation ratio (the
   * mean of per-observation ratios is dominated by the few truths with almost no power) */
  double pow_rom_sum = 0, pow_in68 = 0;
  long pow_rom_n = 0, pow_in68_n = 0;
  size_t pow_nr = 0;
  pow_r = malloc(sizeof(double) * ((size_t)nb * NB * T + 1));
  if (!pow_r) {
    st = jade_error(JADE_ERR_NOMEM, "out of memory for the power summary");
    goto out;
  }
  snprintf(path, sizeof path, "%s/power.txt", dir);
  if ((st = jade_text_open(path, &f))) goto out;
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
  if ((st = jade_text_commit(&f))) goto out;
  /* pdf.txt and moments */
  snprintf(path, sizeof path, "%s/pdf.txt", dir);
  if ((st = jade_text_open(path, &f))) goto out;
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
  if ((st = jade_text_commit(&f))) goto out;
  /* summary.json */
  double pix68 = 0, pix95 = 0, pixz2 = 0, secs = 0;
  for (size_t t = 0; t < T; t++) {
    const double *r = R + t * L->len;
    pix68 += r[L->o_pix] / T;
    pix95 += r[L->o_pix + 1] / T;
    pixz2 += r[L->o_pix + 2] / T;
    secs += r[L->o_seconds];
  }
  /* masked runs: mean masked fraction; pixel coverage of masked and of observed pixels, each
   * pooled over the observations' pixels */
  double mfrac = 0, m68 = 0, m95 = 0, nmask = 0, all68 = 0, all95 = 0;
  for (size_t t = 0; t < T; t++) {
    const double *r = R + t * L->len, nm_t = r[L->o_mask] * (double)L->nx;
    mfrac += r[L->o_mask] / T;
    all68 += r[L->o_pix] * (double)L->nx;
    all95 += r[L->o_pix + 1] * (double)L->nx;
    if (nm_t > 0 && isfinite(r[L->o_mask + 1])) {
      m68 += r[L->o_mask + 1] * nm_t;
      m95 += r[L->o_mask + 2] * nm_t;
      nmask += nm_t;
    }
  }
  const double nobs_pix = (double)T * (double)L->nx - nmask;
  /* config.ini: the model's configuration (prior and survey for jade report) */
  if (tm->config_text && tm->config_text[0]) {
    snprintf(path, sizeof path, "%s/config.ini", dir);
    if ((st = jade_text_open(path, &f))) goto out;
    fprintf(f.f, "# jade %s validate: the configuration of the model %s\n%s", JADE_VERSION, o->model_path, tm->config_text);
    if ((st = jade_text_commit(&f))) goto out;
  }
  snprintf(path, sizeof path, "%s/summary.json", dir);
  if ((st = jade_text_open(path, &f))) goto out;
  fprintf(f.f, "{\n  \"format\": \"jade-validation-1\",\n  \"jade_version\": \"%s\",\n  \"model\": ", JADE_VERSION);
  json_str(f.f, o->model_path);
  fprintf(f.f, ",\n  \"model_step\": %ld,\n  \"data\": ", tm->step);
  json_str(f.f, o->data_dir);
  fprintf(f.f, ",\n  \"n_obs\": %zu,\n  \"draws\": %zu,\n  \"steps\": %d,\n  \"solver\": \"%s\",\n  \"batch\": %d,\n  \"seed\": %llu,\n", T,
          S, o->steps, jade_solver_name(o->solver), o->batch, (unsigned long long)o->seed);
  fprintf(f.f, "  \"matmul\": \"%s\",\n", jade_matmul_backend_name(jade_matmul_get_backend()));
  fprintf(f.f, "  \"n_bins\": %d,\n  \"n_pix\": %d,\n  \"size_deg\": %.10g,\n  \"q_joint\": %zu,\n  \"q_theta\": %d,\n  \"q_maps\": %zu,\n",
          nb, L->np, c->size_deg, L->q, JADE_N_THETA, L->nx);
  fprintf(f.f, "  \"map_std\": [");
  for (int b = 0; b < nb; b++) fprintf(f.f, "%s%.17g", b ? ", " : "", c->norm.map_std[b]);
  fprintf(f.f, "],\n  \"theta_mean\": [");
  for (int j = 0; j < JADE_N_THETA; j++) fprintf(f.f, "%s%.17g", j ? ", " : "", c->norm.theta_mean[j]);
  fprintf(f.f, "],\n  \"theta_std\": [");
  for (int j = 0; j < JADE_N_THETA; j++) fprintf(f.f, "%s%.17g", j ? ", " : "", c->norm.theta_std[j]);
  fprintf(f.f, "],\n");
  fprintf(f.f, "  \"units\": \"MIRA and TARP use the model's normalised units: maps kappa / map_std per bin (field mean not "
               "removed), parameters (theta - theta_mean) / theta_std of the model's normalisation; joint = all map pixels "
               "(bin, y, x) then the 6 parameters. Coverage, ranks and offsets use physical values.\",\n");
  fprintf(f.f, "  \"mira_norm\": \"none (paper)\",\n  \"tarp_norm\": \"min-max over the other truths (leave-one-out)\",\n");
  fprintf(f.f, "  \"n_boot\": %d,\n", o->n_boot);
  for (int k = 0; k < 3; k++) {
    fprintf(f.f, "  \"mira_%s\": ", part[k]);
    json_num(f.f, mira[k].score);
    fprintf(f.f, ",\n  \"mira_%s_err\": ", part[k]);
    json_num(f.f, mira[k].err);
    fprintf(f.f, ",\n  \"mira_%s_seed\": %llu,\n", part[k], (unsigned long long)seeds[k]);
  }
  fprintf(f.f, "  \"mira_expected\": ");
  json_num(f.f, jade_mira_expected(S));
  fprintf(f.f, ",\n");
  for (int k = 0; k < 3; k++) {
    const double v[6] = {tarp[k].max_dev, tarp[k].max_dev_err, tarp[k].area, tarp[k].area_err, tarp[k].signed_area,
                         tarp[k].signed_area_err};
    static const char *const nm[6] = {"max_dev", "max_dev_err", "area", "area_err", "signed_area", "signed_area_err"};
    for (int m = 0; m < 6; m++) {
      fprintf(f.f, "  \"tarp_%s_%s\": ", part[k], nm[m]);
      json_num(f.f, v[m]);
      fprintf(f.f, ",\n");
    }
  }
  fprintf(f.f, "  \"coverage\": {\n");
  for (int j = 0; j < K_COLS; j++) {
    static const char *const key[9] = {"cov68", "cov68_se", "cov95", "cov95_se", "mean_offset", "mean_offset_se",
                                        "mean_z2", "rank_chi2", "rank_chi2_p"};
    const double val[9] = {cov.cov68[j], cov.cov68_se[j], cov.cov95[j], cov.cov95_se[j], cov.offset[j],
                           cov.offset_se[j], cov.z2[j], cov.rank_chi2[j], cov.rank_pvalue[j]};
    fprintf(f.f, "    \"%s\": {", jade_posterior_col_names[j]);
    for (int k = 0; k < 9; k++) {
      fprintf(f.f, "%s\"%s\": ", k ? ", " : "", key[k]);
      json_num(f.f, val[k]);
    }
    fprintf(f.f, "}%s\n", j + 1 < K_COLS ? "," : "");
  }
  fprintf(f.f, "  },\n  \"rank_bins\": %d,\n  \"pixel_cov68\": ", cov.n_rank_bins);
  json_num(f.f, pix68);
  fprintf(f.f, ",\n  \"pixel_cov95\": ");
  json_num(f.f, pix95);
  fprintf(f.f, ",\n  \"pixel_mean_z2\": ");
  json_num(f.f, pixz2);
  if (masks_on(&o->masks)) {
    fprintf(f.f, ",\n  \"masks\": {\"mask_prob\": %.10g, \"mask_max\": %.10g, \"noise_ln_scale\": %.10g, \"noise_ln_field\": %.10g}",
            o->masks.mask_prob, o->masks.mask_max, o->masks.noise_ln_scale, o->masks.noise_ln_field);
    fprintf(f.f, ",\n  \"masked_fraction\": ");
    json_num(f.f, mfrac);
    fprintf(f.f, ",\n  \"pixel_cov68_masked\": ");
    json_num(f.f, nmask > 0 ? m68 / nmask : NAN);
    fprintf(f.f, ",\n  \"pixel_cov95_masked\": ");
    json_num(f.f, nmask > 0 ? m95 / nmask : NAN);
    fprintf(f.f, ",\n  \"pixel_cov68_observed\": ");
    json_num(f.f, nobs_pix > 0 ? (all68 - m68) / nobs_pix : NAN);
    fprintf(f.f, ",\n  \"pixel_cov95_observed\": ");
    json_num(f.f, nobs_pix > 0 ? (all95 - m95) / nobs_pix : NAN);
  }
  fprintf(f.f, ",\n  \"power_auto_ratio\": ");
  json_num(f.f, pow_rom_n ? pow_rom_sum / pow_rom_n : NAN);
  fprintf(f.f, ",\n  \"power_auto_ratio_median\": ");
  json_num(f.f, pow_nr ? quantile_sort(pow_r, pow_nr, 0.5) : NAN);
  fprintf(f.f, ",\n  \"power_in68\": ");
  json_num(f.f, pow_in68_n ? pow_in68 / pow_in68_n : NAN);
  fprintf(f.f, ",\n  \"ell_bands\": %d,\n  \"ell_min\": %.6g,\n  \"ell_max\": %.6g,\n", NB, c->ell_min, c->ell_max);
  fprintf(f.f, "  \"sampling_seconds\": %.3f,\n  \"seconds_per_obs\": %.4f,\n  \"wall_seconds_last_run\": %.3f\n}\n", secs,
          secs / T, seconds_total);
  if ((st = jade_text_commit(&f))) goto out;
  res->mira_joint = mira[0].score;
  res->mira_joint_err = mira[0].err;
  res->mira_expected = jade_mira_expected(S);
out:
  for (int k = 0; k < 3; k++) {
    jade_mira_result_free(&mira[k]);
    jade_tarp_result_free(&tarp[k]);
  }
  jade_coverage_result_free(&cov);
  free(R);
  free(pow_r);
  free(p3);
  free(zz);
  free(cnt3);
  free(rk);
  free(i68);
  free(i95);
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
  char *ident = NULL;
  float *truths = NULL;
  worker *W = NULL;
  jade_eta *eta = NULL;
  int nw = 0;
  char path[4400];
  jade_status st = JADE_OK;

  if (!o->model_path || !o->data_dir || !o->out_dir)
    return jade_error(JADE_ERR_INVALID, "validate: model, data and output paths are required");
  if (o->n_obs < 2) return jade_error(JADE_ERR_INVALID, "validate: at least 2 observations are needed (got %ld)", o->n_obs);
  if (o->draws < 2 || o->steps < 1 || o->batch < 1 || o->n_hist < 2 || o->n_boot < 0)
    return jade_error(JADE_ERR_INVALID, "validate: draws >= 2, steps >= 1, batch >= 1, histogram bins >= 2 required");
  if (o->seed >= (1ull << 31)) return jade_error(JADE_ERR_INVALID, "validate: seed must be < 2^31");
  if (jade_path_exists(o->out_dir))
    return jade_error(JADE_ERR_IO, "%s: already exists (choose another output or remove it)", o->out_dir);
  snprintf(c.partial, sizeof c.partial, "%s.partial", o->out_dir);

  if ((st = jade_trained_model_load(o->model_path, &tm))) goto done;
  c.norm = tm->norm;
  if ((st = open_dataset(o, &ds, &c))) goto done;
  c.theta_all = ds.theta.data;
  c.kappa_all = ds.kappa.data;
  const long N = ds.n;
  if (o->n_obs > N) {
    st = jade_error(JADE_ERR_INVALID, "%s: has %ld simulations, fewer than --n-obs %ld", o->data_dir, N, o->n_obs);
    goto done;
  }
  {
    jade_observation fake;
    memset(&fake, 0, sizeof fake);
    fake.n_bins = ds.bins;
    fake.n_pix = ds.npix;
    fake.size_deg = c.size_deg;
    memcpy(fake.noise, c.noise, sizeof c.noise);
    if ((st = jade_posterior_check(tm, &fake, o->data_dir, o->noise_rtol))) {
      st = jade_error_context(st, "held-out dataset");
      goto done;
    }
  }
  if (masks_on(&o->masks)) { /* what the model can condition on (jade/condition.h) */
    const jade_mask_config *m = &o->masks;
    if (!(m->mask_prob >= 0 && m->mask_prob <= 1 && m->mask_max >= 0 && m->mask_max <= 0.9 && m->noise_ln_scale >= 0 &&
          m->noise_ln_field >= 0 && isfinite(m->noise_ln_scale) && isfinite(m->noise_ln_field)))
      st = jade_error(JADE_ERR_INVALID, "validate: masks: mask_prob %g (0-1), mask_max %g (0-0.9), noise_ln_scale %g and "
                      "noise_ln_field %g (>= 0) out of range", m->mask_prob, m->mask_max, m->noise_ln_scale, m->noise_ln_field);
    else if (!tm->norm.masked)
      st = jade_error(JADE_ERR_INVALID, "%s: masked observations need a model trained with model.condition = masked "
                      "(this one conditions on full convergence maps)", o->model_path);
    else if (m->noise_ln_scale + m->noise_ln_field > tm->norm.noise_ln_max + 1e-9)
      st = jade_error(JADE_ERR_INVALID, "%s: noise ratios up to e^%g requested, the model was trained up to e^%g "
                      "(noise_ln_scale + noise_ln_field <= %g)", o->model_path, m->noise_ln_scale + m->noise_ln_field,
                      tm->norm.noise_ln_max, tm->norm.noise_ln_max);
    if (st) goto done;
  }
  jade_power_spectrum_bands(ds.npix, c.size_deg, &c.n_bands, &c.ell_min, &c.ell_max);
  make_layout(&c.L, ds.bins, ds.npix, c.n_bands, o->n_hist);
  const layout *L = &c.L;
  const size_t T = (size_t)o->n_obs;
  c.seed_joint = o->seed * 4 + 1;
  c.seed_theta = o->seed * 4 + 2;
  c.seed_maps = o->seed * 4 + 3;

  /* truths in normalised units -> leave-one-out min-max for TARP; histogram edges */
  truths = malloc(T * L->q * sizeof(float));
  c.edges = malloc((size_t)L->nb * (L->NH + 1) * sizeof(double));
  if (!truths || !c.edges) {
    st = jade_error(JADE_ERR_NOMEM, "validate: out of memory for %zu truths of %zu values", T, L->q);
    goto done;
  }
  for (size_t t = 0; t < T; t++) truth_joint(&c, (long)t, truths + t * L->q);
  if ((st = jade_minmax_compute(truths, NULL, T, 1, L->q, JADE_NORM_TRUTHS, &c.mm))) goto done;
  free(truths);
  truths = NULL;
  c.mm_maps = c.mm;
  c.mm_maps.q = L->nx;
  c.mm_theta = c.mm;
  c.mm_theta.q = JADE_N_THETA;
  c.mm_theta.lo1 += L->nx;
  c.mm_theta.lo2 += L->nx;
  c.mm_theta.hi1 += L->nx;
  c.mm_theta.hi2 += L->nx;
  c.mm_theta.arglo += L->nx;
  c.mm_theta.arghi += L->nx;
  for (int b = 0; b < L->nb; b++) {
    double lo = INFINITY, hi = -INFINITY;
    for (size_t t = 0; t < T; t++) {
      const float *k = c.kappa_all + t * L->nx + b * L->npix;
      for (size_t i = 0; i < L->npix; i++) {
        lo = fmin(lo, k[i]);
        hi = fmax(hi, k[i]);
      }
    }
    double pad = 0.05 * (hi - lo);
    if (!(pad > 0)) pad = 1e-3;
    lo -= pad;
    hi += pad;
    for (int h = 0; h <= L->NH; h++) c.edges[(size_t)b * (L->NH + 1) + h] = lo + (hi - lo) * h / L->NH;
  }

  /* OUT.partial: rank 0 creates or checks it; then everyone opens the shared files */
  if (!(ident = run_identity(o, tm))) {
    st = jade_error(JADE_ERR_NOMEM, "out of memory");
    goto done;
  }
  size_t sh_dt[3] = {T, (size_t)o->draws, K_COLS}, sh_dm[5] = {T, (size_t)o->draws, (size_t)L->nb, (size_t)L->np, (size_t)L->np};
  if (dist->rank == 0) {
    snprintf(path, sizeof path, "%s/run.txt", c.partial);
    if (jade_path_exists(c.partial)) {
      char *prev = jade_read_text_file(path);
      if (!prev || strcmp(prev, ident) != 0)
        st = jade_error(JADE_ERR_IO, "%s: exists from a different run (model, data or options differ); remove it to start over",
                        c.partial);
      free(prev);
    } else {
      st = jade_mkdir_p(c.partial);
      if (!st) st = jade_write_file_atomic(path, ident);
    }
    snprintf(path, sizeof path, "%s/records", c.partial);
    if (!st) st = jade_mkdir_p(path);
    if (!st && o->keep_draws) st = open_draw_writers(&c, sh_dt, sh_dm, 1);
  }
  if (jade_dist_max_int(dist, st != JADE_OK)) {
    if (!st) st = jade_error(JADE_ERR_IO, "rank 0 failed to prepare %s", c.partial);
    goto done;
  }
  if (dist->rank != 0 && o->keep_draws) st = open_draw_writers(&c, sh_dt, sh_dm, 0);
  if (jade_dist_max_int(dist, st != JADE_OK)) {
    if (!st) st = jade_error(JADE_ERR_IO, "another rank failed to open %s", c.partial);
    goto done;
  }

  /* this rank's observations still to do */
  long n_mine = 0, *todo = malloc(T * sizeof(long)), n_todo = 0;
  if (!todo) {
    st = jade_error(JADE_ERR_NOMEM, "out of memory");
    goto done;
  }
  for (long t = dist->rank; t < (long)T; t += dist->size) {
    n_mine++;
    record_path(&c, t, path, sizeof path);
    if (!jade_path_exists(path)) todo[n_todo++] = t;
  }
  long limit = o->max_obs > 0 && o->max_obs < n_todo ? o->max_obs : n_todo;
  int stopped = limit < n_todo;
  /* threads: whole observations per thread when the rank has enough of them (decided from
   * the rank's total, not what is left, so a resumed run integrates the same way) */
  int nthr = omp_get_max_threads();
  int outer = o->threads != 1 && nthr > 1 && n_mine >= nthr;
  nw = outer ? (int)(limit < nthr ? (limit > 0 ? limit : 1) : nthr) : 1;
  W = calloc((size_t)nw, sizeof *W);
  if (!W) st = jade_error(JADE_ERR_NOMEM, "out of memory");
  /* progress: this rank's `limit` observations, each ceil(draws / batch) batches of the
   * sampler, one progress step per network evaluation */
  if (!st && dist->rank == 0 && o->progress && limit > 0) {
    const long nb = (o->draws + o->batch - 1) / o->batch;
    const int evals = jade_solver_evals(o->solver, o->steps);
    const double work = (double)o->draws * evals;
    st = jade_eta_create(nw, limit, work, work, nb * evals, jade_time_now(), &eta);
  }
  for (int i = 0; i < nw && !st && limit > 0; i++) {
    st = worker_init(&W[i], &c);
    W[i].id = i;
    W[i].eta = eta;
    W[i].o = o;
  }
  if (!st && dist->rank == 0 && o->start) o->start(limit, n_mine, nw, o->user);
  int failed = 0;
  char msg[1024] = "";
  if (!st && limit > 0) {
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
        jade_status s2 = process_obs(&c, me, todo[k], !outer);
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
    if (failed) st = jade_error(JADE_ERR_NUMERIC, "%s", msg);
  }
  free(todo);
  if (c.w_dtheta) {
    jade_status s2 = jade_npy_writer_close(c.w_dtheta);
    c.w_dtheta = NULL;
    if (!st) st = s2;
  }
  if (c.w_dmaps) {
    jade_status s2 = jade_npy_writer_close(c.w_dmaps);
    c.w_dmaps = NULL;
    if (!st) st = s2;
  }
  if (jade_dist_max_int(dist, st != JADE_OK)) {
    if (!st) st = jade_error(JADE_ERR_IO, "validation failed on another rank");
    goto done;
  }
  /* count the records (all ranks) */
  long have = 0;
  for (size_t t = 0; t < T; t++) {
    record_path(&c, (long)t, path, sizeof path);
    have += jade_path_exists(path);
  }
  res->n_done = have;
  res->n_obs = (long)T;
  if (jade_dist_max_int(dist, stopped) || have < (long)T) goto done; /* not finished: resume later */
  if (dist->rank == 0) {
    st = summarise(&c, tm, jade_time_now() - t_start, res);
    if (!st && o->keep_draws) st = write_truths(&c);
    snprintf(path, sizeof path, "%s/run.txt", c.partial);
    char *idtext = jade_read_text_file(path);
    snprintf(path, sizeof path, "%s/run.txt", c.partial);
    if (!st && unlink(path) != 0) st = jade_error(JADE_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    if (!st && !o->no_report) {
      jade_report_options ro;
      jade_report_options_default(&ro);
      ro.kind = JADE_REPORT_VALIDATION;
      ro.name = o->out_dir;
      char html[4400];
      st = jade_report_write(c.partial, &ro, html, sizeof html);
    }
    if (st && idtext) { /* leave the partial directory resumable */
      snprintf(path, sizeof path, "%s/run.txt", c.partial);
      jade_write_file_atomic(path, idtext);
    }
    free(idtext);
    /* temporaries of killed runs must not end up in OUT */
    if (!st) st = jade_remove_temporaries(c.partial);
    snprintf(path, sizeof path, "%s/records", c.partial);
    if (!st && jade_path_exists(path)) st = jade_remove_temporaries(path);
    if (!st && rename(c.partial, o->out_dir) != 0)
      st = jade_error(JADE_ERR_IO, "%s: cannot rename to %s: %s", c.partial, o->out_dir, strerror(errno));
    if (!st) jade_sync_parent_dir(o->out_dir);
    if (!st) res->finished = 1;
  }
  if (jade_dist_max_int(dist, st != JADE_OK) && !st) st = jade_error(JADE_ERR_IO, "rank 0 failed to finish %s", o->out_dir);
  res->finished = !st;
done:
  if (c.w_dtheta) jade_npy_writer_close(c.w_dtheta);
  if (c.w_dmaps) jade_npy_writer_close(c.w_dmaps);
  for (int i = 0; W && i < nw; i++) worker_free(&W[i]);
  jade_eta_free(eta);
  free(W);
  free(truths);
  free(ident);
  free(c.edges);
  jade_minmax_free(&c.mm);
  jade_dataset_close(&ds);
  jade_trained_model_free(tm);
  res->seconds = jade_time_now() - t_start;
  return st;
}
