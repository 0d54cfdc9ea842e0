/* The JADE training loop (spec/model.md "Objective"; jade_paper_config.md section 5), config
 * sections [model] and [train], normalisation, and safetensors checkpoints.
 *
 * One optimiser step:
 *   rows j = 0..batch-1 of the global batch are training samples taken in the order of a
 *   seeded per-epoch permutation (drop_last: floor(n_train / batch) steps per epoch);
 *   each row: random left-right / up-down flip of its maps (same for all bins; optionally a
 *   random transpose, which with the flips gives all 8 symmetries of the square, and a random
 *   periodic shift: exact symmetries of the periodic, isotropic log-normal simulator), target
 *   x = kappa / map_std, theta_n = (theta - mean) / std, t = sigmoid((n + mu) sigma),
 *   z = t x + (1 - t) eps (maps and theta), condition c = (kappa + noise_i n') / map_std_i with
 *   fresh n' every step;
 *   the rows are processed in micro-batches (micro-batch k on rank k mod R; a rank's
 *   micro-batches spread over worker threads with their own model copies), gradients of the
 *   global-batch mean loss accumulated, summed over workers and ranks, clipped to grad_clip,
 *   AdamW step at lr(step) (linear warm-up then linear decay, optax.linear_schedule), EMA.
 * All random numbers are Philox draws addressed by (seed, purpose, step or epoch, row). */
#include "jade/nn.h"
#include "jade/train.h"

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jade/dataset.h"
#include "jade/io.h"
#include "jade/safetensors.h"

#define STATE_FORMAT "jade-train-state-1"
#define MODEL_FORMAT "jade-model-1"
#define TRAIN_STREAM(purpose, counter) \
  JADE_STREAM(JADE_RNG_TRAIN, ((uint64_t)(purpose) << 40) | ((uint64_t)(counter) & 0xFFFFFFFFFFull))

/* ======================================================================================
 * Config sections
 * ==================================================================================== */
static jade_status get_int(jade_config *cfg, const char *key, long lo, long hi, int *out) {
  long v;
  jade_status st = jade_config_get_int(cfg, key, lo, hi, &v);
  if (!st) *out = (int)v;
  return st;
}
static jade_status get_float(jade_config *cfg, const char *key, double lo, double hi, float *out) {
  double v;
  jade_status st = jade_config_get_double_range(cfg, key, lo, hi, &v);
  if (!st) *out = (float)v;
  return st;
}

jade_status jade_model_config_read(jade_config *cfg, jade_model_config *mc) {
  memset(mc, 0, sizeof *mc);
  jade_status st;
  if ((st = get_int(cfg, "n_pix", 4, 65536, &mc->img_size))) return st;
  if ((st = get_int(cfg, "n_bins", 1, JADE_MAX_BINS, &mc->channels))) return st;
  mc->cond_channels = mc->channels;
  mc->n_params = JADE_N_THETA;
  if ((st = get_int(cfg, "model.patch", 1, 1024, &mc->patch))) return st;
  if ((st = get_int(cfg, "model.cond_patch", 0, 1024, &mc->cond_patch))) return st;
  if ((st = get_int(cfg, "model.depth", 1, 1000, &mc->depth))) return st;
  if ((st = get_int(cfg, "model.width", 4, 65536, &mc->width))) return st;
  if ((st = get_int(cfg, "model.heads", 1, 1024, &mc->heads))) return st;
  if ((st = get_int(cfg, "model.n_cosmo_tokens", 1, 4096, &mc->n_cosmo_tokens))) return st;
  if ((st = get_int(cfg, "model.mlp_hidden", 0, 1 << 20, &mc->mlp_hidden))) return st;
  if ((st = get_int(cfg, "model.bottleneck", 1, 1 << 20, &mc->bottleneck))) return st;
  /* optional (default 0 = bottleneck), so configurations written before this key still load */
  if (jade_config_has(cfg, "model.cond_bottleneck") &&
      (st = get_int(cfg, "model.cond_bottleneck", 0, 1 << 20, &mc->cond_bottleneck)))
    return st;
  if ((st = get_int(cfg, "model.time_freq", 2, 1 << 16, &mc->time_freq))) return st;
  if ((st = get_float(cfg, "model.max_period", 1, 1e12, &mc->max_period))) return st;
  if ((st = get_float(cfg, "model.rope_theta", 1, 1e12, &mc->rope_theta))) return st;
  if ((st = get_float(cfg, "model.norm_eps", 1e-12, 1, &mc->norm_eps))) return st;
  if ((st = get_float(cfg, "model.dropout", 0, 0.95, &mc->dropout))) return st;
  if ((st = jade_model_config_check(mc))) return jade_error_context(st, "[model] section");
  return JADE_OK;
}

jade_status jade_train_config_read(jade_config *cfg, jade_train_config *tc) {
  memset(tc, 0, sizeof *tc);
  jade_status st;
  long v;
  const char *s;
#define L(key, lo, hi, dst) \
  if ((st = jade_config_get_int(cfg, "train." key, lo, hi, &v))) return st; \
  dst = v
#define D(key, lo, hi, dst) \
  if ((st = jade_config_get_double_range(cfg, "train." key, lo, hi, &dst))) return st
  L("batch", 1, 1L << 24, tc->batch);
  L("micro_batch", 1, 1L << 24, tc->micro_batch);
  L("steps", 1, 1L << 38, tc->steps);
  L("warmup", 0, 1L << 38, tc->warmup);
  D("lr_peak", 0, 10, tc->lr_peak);
  D("lr_end", 0, 10, tc->lr_end);
  D("beta1", 0, 0.999999, tc->beta1);
  D("beta2", 0, 0.999999999, tc->beta2);
  D("adam_eps", 0, 1, tc->adam_eps);
  D("weight_decay", 0, 10, tc->weight_decay);
  D("grad_clip", 0, 1e30, tc->grad_clip);
  D("theta_weight", 0, 1e6, tc->theta_weight);
  D("ema_decay", 0, 1, tc->ema_decay);
  L("ema_start", 0, 1L << 38, tc->ema_start);
  double mu, sigma, t_eps;
  D("t_mu", -100, 100, mu);
  D("t_sigma", 1e-6, 100, sigma);
  D("t_eps", 1e-6, 1, t_eps);
  tc->flow.mu = (float)mu;
  tc->flow.sigma = (float)sigma;
  tc->flow.t_eps = (float)t_eps;
  L("flip", 0, 1, tc->flip);
  /* optional (default 0), so configurations written before these keys still load */
  if (jade_config_has(cfg, "train.rot90")) {
    L("rot90", 0, 1, tc->rot90);
  }
  if (jade_config_has(cfg, "train.roll")) {
    L("roll", 0, 1, tc->roll);
  }
  if ((st = jade_config_get_string(cfg, "train.theta_norm", &s))) return st;
  if (!strcmp(s, "prior"))
    tc->theta_norm_dataset = 0;
  else if (!strcmp(s, "dataset"))
    tc->theta_norm_dataset = 1;
  else
    return jade_error(JADE_ERR_CONFIG, "key 'train.theta_norm' = '%s': expected 'prior' or 'dataset'", s);
  D("val_fraction", 0, 0.9, tc->val_fraction);
  L("val_max", 0, 1L << 40, tc->val_max);
  L("val_every", 1, 1L << 38, tc->val_every);
  L("log_every", 1, 1L << 38, tc->log_every);
  L("checkpoint_every", 1, 1L << 38, tc->checkpoint_every);
  L("seed", 0, 0x7fffffffffffffffL, tc->seed);
#undef L
#undef D
  if (tc->micro_batch > tc->batch)
    return jade_error(JADE_ERR_CONFIG, "train.micro_batch = %ld exceeds train.batch = %ld", tc->micro_batch, tc->batch);
  if (tc->warmup > tc->steps)
    return jade_error(JADE_ERR_CONFIG, "train.warmup = %ld exceeds train.steps = %ld", tc->warmup, tc->steps);
  return JADE_OK;
}

/* ======================================================================================
 * Prior moments
 * ==================================================================================== */
static double npdf(double x) { return isfinite(x) ? exp(-0.5 * x * x) / sqrt(2 * M_PI) : 0.0; }
static double ncdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

void jade_prior_moments(const jade_prior1d *p, double *mean, double *sd) {
  switch (p->kind) {
    case JADE_PRIOR_NORMAL:
      *mean = p->mean;
      *sd = p->sd;
      return;
    case JADE_PRIOR_UNIFORM:
      *mean = 0.5 * (p->lo + p->hi);
      *sd = (p->hi - p->lo) / sqrt(12.0);
      return;
    case JADE_PRIOR_TRUNCNORMAL: {
      /* a, b standardised bounds, Z = Phi(b) - Phi(a):
       * mean = mu + sd (phi(a) - phi(b)) / Z,
       * var = sd^2 [1 + (a phi(a) - b phi(b)) / Z - ((phi(a) - phi(b)) / Z)^2]. */
      double a = (p->lo - p->mean) / p->sd, b = (p->hi - p->mean) / p->sd;
      double Z = ncdf(b) - ncdf(a);
      double pa = npdf(a), pb = npdf(b);
      double apa = isfinite(a) ? a * pa : 0.0, bpb = isfinite(b) ? b * pb : 0.0;
      double r = (pa - pb) / Z;
      *mean = p->mean + p->sd * r;
      double var = p->sd * p->sd * (1 + (apa - bpb) / Z - r * r);
      *sd = sqrt(var > 0 ? var : 0);
      return;
    }
  }
  *mean = 0;
  *sd = 1;
}

/* ======================================================================================
 * Metadata helpers
 * ==================================================================================== */
typedef struct {
  char **k, **v;
  int n, cap;
  int failed;
} metabuf;

static void meta_add(metabuf *mb, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void meta_add(metabuf *mb, const char *key, const char *fmt, ...) {
  if (mb->failed) return;
  if (mb->n == mb->cap) {
    int cap = mb->cap ? 2 * mb->cap : 64;
    char **k = realloc(mb->k, (size_t)cap * sizeof *k);
    if (k) mb->k = k;
    char **v = k ? realloc(mb->v, (size_t)cap * sizeof *v) : NULL;
    if (v) mb->v = v;
    if (!k || !v) {
      mb->failed = 1;
      return;
    }
    mb->cap = cap;
  }
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *val = malloc((size_t)len + 1), *kc = strdup(key);
  if (!val || !kc) {
    free(val);
    free(kc);
    mb->failed = 1;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(val, (size_t)len + 1, fmt, ap);
  va_end(ap);
  mb->k[mb->n] = kc;
  mb->v[mb->n] = val;
  mb->n++;
}

static void meta_add_doubles(metabuf *mb, const char *key, const double *x, int n) {
  char buf[64 * 32];
  size_t pos = 0;
  buf[0] = 0;
  for (int i = 0; i < n && pos < sizeof buf; i++) pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "%s%.17g", i ? " " : "", x[i]);
  meta_add(mb, key, "%s", buf);
}

static void meta_free(metabuf *mb) {
  for (int i = 0; i < mb->n; i++) {
    free(mb->k[i]);
    free(mb->v[i]);
  }
  free(mb->k);
  free(mb->v);
  memset(mb, 0, sizeof *mb);
}

static void meta_model(metabuf *mb, const jade_model_config *c) {
  meta_add(mb, "model.img_size", "%d", c->img_size);
  meta_add(mb, "model.channels", "%d", c->channels);
  meta_add(mb, "model.cond_channels", "%d", c->cond_channels);
  meta_add(mb, "model.patch", "%d", c->patch);
  meta_add(mb, "model.cond_patch", "%d", c->cond_patch);
  meta_add(mb, "model.depth", "%d", c->depth);
  meta_add(mb, "model.width", "%d", c->width);
  meta_add(mb, "model.heads", "%d", c->heads);
  meta_add(mb, "model.n_cosmo_tokens", "%d", c->n_cosmo_tokens);
  meta_add(mb, "model.n_params", "%d", c->n_params);
  meta_add(mb, "model.mlp_hidden", "%d", c->mlp_hidden);
  meta_add(mb, "model.bottleneck", "%d", c->bottleneck);
  meta_add(mb, "model.cond_bottleneck", "%d", c->cond_bottleneck);
  meta_add(mb, "model.time_freq", "%d", c->time_freq);
  meta_add(mb, "model.max_period", "%.9g", (double)c->max_period);
  meta_add(mb, "model.rope_theta", "%.9g", (double)c->rope_theta);
  meta_add(mb, "model.norm_eps", "%.9g", (double)c->norm_eps);
  meta_add(mb, "model.dropout", "%.9g", (double)c->dropout);
}

static void meta_norm(metabuf *mb, const jade_norm *n) {
  char names[256] = "";
  size_t pos = 0;
  for (int i = 0; i < JADE_N_THETA; i++) pos += (size_t)snprintf(names + pos, sizeof names - pos, "%s%s", i ? " " : "", jade_theta_names[i]);
  meta_add(mb, "norm.theta_names", "%s", names);
  meta_add(mb, "norm.theta_norm", "%s", n->theta_norm_dataset ? "dataset" : "prior");
  meta_add_doubles(mb, "norm.theta_mean", n->theta_mean, JADE_N_THETA);
  meta_add_doubles(mb, "norm.theta_std", n->theta_std, JADE_N_THETA);
  double zeros[JADE_MAX_BINS] = {0};
  meta_add_doubles(mb, "norm.map_mean", zeros, n->n_bins);
  meta_add_doubles(mb, "norm.map_std", n->map_std, n->n_bins);
  meta_add_doubles(mb, "norm.noise", n->noise, n->n_bins);
  meta_add(mb, "norm.n_bins", "%d", n->n_bins);
  meta_add(mb, "norm.n_pix", "%d", n->n_pix);
  meta_add(mb, "norm.size_deg", "%.17g", n->size_deg);
}

static void meta_flow(metabuf *mb, const jade_flow_config *f) {
  meta_add(mb, "flow.t_mu", "%.9g", (double)f->mu);
  meta_add(mb, "flow.t_sigma", "%.9g", (double)f->sigma);
  meta_add(mb, "flow.t_eps", "%.9g", (double)f->t_eps);
}

static jade_status meta_write(const char *path, const jade_st_tensor *t, int nt, metabuf *mb) {
  if (mb->failed) return jade_error(JADE_ERR_NOMEM, "%s: out of memory building metadata", path);
  jade_st_meta *m = malloc((size_t)(mb->n ? mb->n : 1) * sizeof *m);
  if (!m) return jade_error(JADE_ERR_NOMEM, "%s: out of memory", path);
  for (int i = 0; i < mb->n; i++) m[i] = (jade_st_meta){mb->k[i], mb->v[i]};
  jade_status st = jade_safetensors_write(path, t, nt, m, mb->n);
  free(m);
  return st;
}

static jade_status meta_long(const jade_safetensors *st, const char *key, long lo, long hi, long *out) {
  const char *v;
  jade_status s = jade_safetensors_meta_get(st, key, &v);
  if (s) return s;
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (end == v || *end || errno || x < lo || x > hi)
    return jade_error(JADE_ERR_FORMAT, "%s: metadata '%s' = '%.40s' is not an integer in [%ld, %ld]",
                      jade_safetensors_path(st), key, v, lo, hi);
  *out = x;
  return JADE_OK;
}
static jade_status meta_int(const jade_safetensors *st, const char *key, long lo, long hi, int *out) {
  long x;
  jade_status s = meta_long(st, key, lo, hi, &x);
  if (!s) *out = (int)x;
  return s;
}
static jade_status meta_doubles(const jade_safetensors *st, const char *key, int n, double *out) {
  const char *v;
  jade_status s = jade_safetensors_meta_get(st, key, &v);
  if (s) return s;
  const char *p = v;
  for (int i = 0; i < n; i++) {
    char *end;
    out[i] = strtod(p, &end);
    if (end == p || !isfinite(out[i]))
      return jade_error(JADE_ERR_FORMAT, "%s: metadata '%s' = '%.60s': expected %d finite numbers",
                        jade_safetensors_path(st), key, v, n);
    p = end;
  }
  while (*p == ' ') p++;
  if (*p)
    return jade_error(JADE_ERR_FORMAT, "%s: metadata '%s' = '%.60s': more than %d numbers", jade_safetensors_path(st), key, v, n);
  return JADE_OK;
}
static jade_status meta_float(const jade_safetensors *st, const char *key, float *out) {
  double x;
  jade_status s = meta_doubles(st, key, 1, &x);
  if (!s && !(fabs(x) <= FLT_MAX))
    return jade_error(JADE_ERR_FORMAT, "%s: metadata '%s' = %g does not fit in a float", jade_safetensors_path(st), key, x);
  if (!s) *out = (float)x;
  return s;
}

jade_status jade_model_config_from_meta(const jade_safetensors *st, jade_model_config *c) {
  memset(c, 0, sizeof *c);
  jade_status s;
  if ((s = meta_int(st, "model.img_size", 1, 1 << 20, &c->img_size)) ||
      (s = meta_int(st, "model.channels", 1, 1 << 16, &c->channels)) ||
      (s = meta_int(st, "model.cond_channels", 0, 1 << 16, &c->cond_channels)) ||
      (s = meta_int(st, "model.patch", 1, 1 << 16, &c->patch)) ||
      (s = meta_int(st, "model.cond_patch", 0, 1 << 16, &c->cond_patch)) ||
      (s = meta_int(st, "model.depth", 1, 1 << 16, &c->depth)) ||
      (s = meta_int(st, "model.width", 1, 1 << 20, &c->width)) ||
      (s = meta_int(st, "model.heads", 1, 1 << 16, &c->heads)) ||
      (s = meta_int(st, "model.n_cosmo_tokens", 1, 1 << 16, &c->n_cosmo_tokens)) ||
      (s = meta_int(st, "model.n_params", 1, 1 << 16, &c->n_params)) ||
      (s = meta_int(st, "model.mlp_hidden", 0, 1 << 24, &c->mlp_hidden)) ||
      (s = meta_int(st, "model.bottleneck", 1, 1 << 24, &c->bottleneck)) ||
      (jade_safetensors_meta(st, "model.cond_bottleneck") && /* absent in older files: = bottleneck */
       (s = meta_int(st, "model.cond_bottleneck", 0, 1 << 24, &c->cond_bottleneck))) ||
      (s = meta_int(st, "model.time_freq", 1, 1 << 20, &c->time_freq)) ||
      (s = meta_float(st, "model.max_period", &c->max_period)) ||
      (s = meta_float(st, "model.rope_theta", &c->rope_theta)) ||
      (s = meta_float(st, "model.norm_eps", &c->norm_eps)) ||
      (s = meta_float(st, "model.dropout", &c->dropout)))
    return s;
  if ((s = jade_model_config_check(c)))
    return jade_error_context(s, "%s: model configuration in metadata", jade_safetensors_path(st));
  return JADE_OK;
}

jade_status jade_norm_from_meta(const jade_safetensors *st, jade_norm *n) {
  memset(n, 0, sizeof *n);
  jade_status s;
  const char *tn;
  if ((s = meta_int(st, "norm.n_bins", 1, JADE_MAX_BINS, &n->n_bins)) ||
      (s = meta_int(st, "norm.n_pix", 1, 1 << 20, &n->n_pix)) ||
      (s = meta_doubles(st, "norm.size_deg", 1, &n->size_deg)) ||
      (s = meta_doubles(st, "norm.theta_mean", JADE_N_THETA, n->theta_mean)) ||
      (s = meta_doubles(st, "norm.theta_std", JADE_N_THETA, n->theta_std)) ||
      (s = meta_doubles(st, "norm.map_std", n->n_bins, n->map_std)) ||
      (s = meta_doubles(st, "norm.noise", n->n_bins, n->noise)) ||
      (s = jade_safetensors_meta_get(st, "norm.theta_norm", &tn)))
    return s;
  n->theta_norm_dataset = !strcmp(tn, "dataset");
  for (int i = 0; i < JADE_N_THETA; i++)
    if (!(n->theta_std[i] > 0))
      return jade_error(JADE_ERR_FORMAT, "%s: metadata norm.theta_std[%d] = %g is not positive", jade_safetensors_path(st), i, n->theta_std[i]);
  for (int i = 0; i < n->n_bins; i++)
    if (!(n->map_std[i] > 0) || n->noise[i] < 0)
      return jade_error(JADE_ERR_FORMAT, "%s: metadata norm.map_std / norm.noise of bin %d invalid", jade_safetensors_path(st), i);
  if (!(n->size_deg > 0)) return jade_error(JADE_ERR_FORMAT, "%s: metadata norm.size_deg invalid", jade_safetensors_path(st));
  return JADE_OK;
}

/* ======================================================================================
 * Model files
 * ==================================================================================== */
/* The tensors of m's table over w (F32), or over half (F16, w converted into it by the
 * caller; same layout). */
static jade_status model_tensor_list(const jade_model *m, const float *w, const uint16_t *half, jade_st_tensor **out) {
  int nt = jade_model_num_tensors(m);
  jade_st_tensor *t = calloc((size_t)(nt ? nt : 1), sizeof *t);
  if (!t) return jade_error(JADE_ERR_NOMEM, "out of memory");
  for (int i = 0; i < nt; i++) {
    const jade_tensor_info *ti = jade_model_tensor(m, i);
    t[i].name = ti->name;
    t[i].dtype = half ? JADE_F16 : JADE_F32;
    t[i].ndim = ti->ndim;
    for (int d = 0; d < ti->ndim; d++) t[i].shape[d] = (size_t)ti->shape[d];
    t[i].data = half ? (const void *)(half + ti->offset) : (const void *)(w + ti->offset);
  }
  *out = t;
  return JADE_OK;
}

static jade_status write_model_file(const char *path, const jade_model *m, const float *weights, const uint16_t *half,
                                    const jade_norm *norm, const jade_flow_config *flow, long step,
                                    const char *config_text) {
  jade_st_tensor *t = NULL;
  jade_status st = model_tensor_list(m, weights, half, &t);
  if (st) return st;
  metabuf mb = {0};
  meta_add(&mb, "format", "%s", MODEL_FORMAT);
  meta_add(&mb, "weights", "%s", "ema");
  meta_add(&mb, "step", "%ld", step);
  meta_model(&mb, jade_model_get_config(m));
  meta_norm(&mb, norm);
  meta_flow(&mb, flow);
  meta_add(&mb, "config", "%s", config_text ? config_text : "");
  st = meta_write(path, t, jade_model_num_tensors(m), &mb);
  meta_free(&mb);
  free(t);
  return st;
}

jade_status jade_checkpoint_write_model(const char *path, const jade_model *m, const float *weights,
                                        const jade_norm *norm, const jade_flow_config *flow,
                                        long step, const char *config_text) {
  if (!weights) weights = jade_model_params((jade_model *)m);
  return write_model_file(path, m, weights, NULL, norm, flow, step, config_text);
}

jade_status jade_trained_model_write(const jade_trained_model *tm, const char *path, jade_dtype dtype,
                                     double *max_rel_err) {
  if (max_rel_err) *max_rel_err = 0;
  if (dtype != JADE_F32 && dtype != JADE_F16)
    return jade_error(JADE_ERR_INVALID, "%s: model weights are written as F32 or F16", path);
  const float *w = jade_model_params(tm->model);
  if (dtype == JADE_F32) return write_model_file(path, tm->model, w, NULL, &tm->norm, &tm->flow, tm->step, tm->config_text);
  const size_t n = jade_model_num_params(tm->model);
  uint16_t *half = malloc((n ? n : 1) * sizeof *half);
  if (!half) return jade_error(JADE_ERR_NOMEM, "out of memory for %zu half-precision weights", n);
  double worst = 0;
  jade_status st = JADE_OK;
  for (size_t i = 0; i < n && !st; i++) {
    half[i] = jade_f32_to_f16(w[i]);
    const float back = jade_f16_to_f32(half[i]);
    if (!isfinite(back)) {
      st = jade_error(JADE_ERR_NUMERIC, "%s: weight %zu = %g does not fit in F16 (|x| < 65504)", path, i, (double)w[i]);
    } else if (fabsf(w[i]) >= 6.103515625e-05f) { /* normal halves: relative error <= 2^-11 */
      const double e = fabs((double)back - w[i]) / fabs((double)w[i]);
      if (e > worst) worst = e;
    }
  }
  if (!st) st = write_model_file(path, tm->model, w, half, &tm->norm, &tm->flow, tm->step, tm->config_text);
  free(half);
  if (!st && max_rel_err) *max_rel_err = worst;
  return st;
}

static int is_dir(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}
static int exists(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0;
}

/* Copy every tensor of m's table from a file into buf (exact shapes; no extra tensors). */
static jade_status load_model_tensors(const jade_safetensors *sf, const jade_model *m, const char *prefix, float *buf) {
  int nt = jade_model_num_tensors(m);
  jade_status st = JADE_OK;
  for (int i = 0; i < nt && !st; i++) {
    const jade_tensor_info *ti = jade_model_tensor(m, i);
    size_t shape[4];
    for (int d = 0; d < ti->ndim; d++) shape[d] = (size_t)ti->shape[d];
    char name[JADE_ST_NAME_MAX];
    snprintf(name, sizeof name, "%s%s", prefix, ti->name);
    st = jade_safetensors_copy_f32(sf, name, ti->ndim, shape, buf + ti->offset);
  }
  return st;
}

jade_status jade_trained_model_load(const char *path, jade_trained_model **out) {
  *out = NULL;
  char file[4200];
  if (is_dir(path)) {
    snprintf(file, sizeof file, "%s/model.safetensors", path);
    if (!exists(file))
      return jade_error(JADE_ERR_IO, "%s: no model.safetensors in this directory (is it a jade train output?)", path);
  } else {
    snprintf(file, sizeof file, "%s", path);
  }
  jade_safetensors *sf = NULL;
  jade_status st = jade_safetensors_read(file, &sf);
  if (st) return st;
  jade_trained_model *tm = calloc(1, sizeof *tm);
  if (!tm) {
    jade_safetensors_free(sf);
    return jade_error(JADE_ERR_NOMEM, "out of memory");
  }
  snprintf(tm->path, sizeof tm->path, "%s", file);
  const char *fmt = jade_safetensors_meta(sf, "format");
  if (!fmt || strcmp(fmt, MODEL_FORMAT))
    st = jade_error(JADE_ERR_FORMAT, "%s: not a jade model file (metadata 'format' is '%s', expected '%s')", file,
                    fmt ? fmt : "missing", MODEL_FORMAT);
  jade_model_config mc;
  if (!st) st = jade_model_config_from_meta(sf, &mc);
  if (!st) st = jade_norm_from_meta(sf, &tm->norm);
  if (!st && (mc.channels != tm->norm.n_bins || mc.img_size != tm->norm.n_pix || mc.n_params != JADE_N_THETA))
    st = jade_error(JADE_ERR_FORMAT, "%s: model geometry %dx%dx%d (P %d) does not match its normalisation (%d bins, %d pixels)",
                    file, mc.img_size, mc.img_size, mc.channels, mc.n_params, tm->norm.n_bins, tm->norm.n_pix);
  if (!st) st = meta_float(sf, "flow.t_mu", &tm->flow.mu);
  if (!st) st = meta_float(sf, "flow.t_sigma", &tm->flow.sigma);
  if (!st) st = meta_float(sf, "flow.t_eps", &tm->flow.t_eps);
  if (!st && !(tm->flow.t_eps > 0 && tm->flow.t_eps <= 1))
    st = jade_error(JADE_ERR_FORMAT, "%s: metadata flow.t_eps = %g out of (0, 1]", file, (double)tm->flow.t_eps);
  if (!st) st = meta_long(sf, "step", 0, 1L << 50, &tm->step);
  const char *cfgtext = jade_safetensors_meta(sf, "config");
  if (!st && !(tm->config_text = strdup(cfgtext ? cfgtext : ""))) st = jade_error(JADE_ERR_NOMEM, "out of memory");
  if (!st) st = jade_model_create(&tm->model, &mc);
  if (!st && jade_safetensors_count(sf) != jade_model_num_tensors(tm->model))
    st = jade_error(JADE_ERR_FORMAT, "%s: holds %d tensors, the model configuration in its metadata has %d", file,
                    jade_safetensors_count(sf), jade_model_num_tensors(tm->model));
  if (!st) st = load_model_tensors(sf, tm->model, "", jade_model_params(tm->model));
  jade_safetensors_free(sf);
  if (st) {
    jade_trained_model_free(tm);
    return st;
  }
  *out = tm;
  return JADE_OK;
}

void jade_trained_model_free(jade_trained_model *tm) {
  if (!tm) return;
  jade_model_free(tm->model);
  free(tm->config_text);
  free(tm);
}

/* ======================================================================================
 * Training
 * ==================================================================================== */
/* Fisher-Yates shuffle of 0..n-1 from Philox uniforms (Knuth, TAOCP vol. 2, 3.4.2 P). */
static void permutation(long n, uint64_t seed, uint64_t stream, long *out) {
  for (long i = 0; i < n; i++) out[i] = i;
  for (long i = n - 1; i > 0; i--) {
    long j = (long)(jade_rng_uniform(seed, stream, (uint64_t)i) * (double)(i + 1));
    if (j > i) j = i;
    long t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
}

static int cmp_long(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  const jade_train_config *tc;
  const jade_dataset *ds;
  const jade_norm *norm;
  jade_model *m;
  int P, npix, bins;
  size_t nx;
  long mb_cap;
  /* micro-batch buffers */
  float *x, *z, *cond, *xhat, *dx, *th, *zth, *thhat, *dth, *t;
  long *ids;
  uint64_t *rows;
} ctx;

/* Build B rows: ids[b] = dataset index, rows[b] = row number addressing the random numbers
 * (global row in the step, or validation position). step < 0: no augmentation (validation);
 * else the flips / transposes / shifts enabled in [train] draw from that step's streams. */
static void prepare_rows(ctx *c, int B, uint64_t normal_stream, long step) {
  const jade_train_config *tc = c->tc;
  const int P = c->P, n = c->npix, bins = c->bins;
  const size_t nx = c->nx, npix = (size_t)n * n;
  const uint64_t seed = tc->seed;
  const uint64_t flip_stream = step >= 0 && tc->flip ? TRAIN_STREAM(JADE_TRAIN_RNG_FLIP, step) : 0;
  const uint64_t rot_stream = step >= 0 && tc->rot90 ? TRAIN_STREAM(JADE_TRAIN_RNG_ROT, step) : 0;
  const uint64_t roll_stream = step >= 0 && tc->roll ? TRAIN_STREAM(JADE_TRAIN_RNG_ROLL, step) : 0;
  const double *theta_all = c->ds->theta.data;
  float inv_std[JADE_MAX_BINS], nrel[JADE_MAX_BINS];
  for (int k = 0; k < bins; k++) {
    inv_std[k] = (float)(1.0 / c->norm->map_std[k]);
    nrel[k] = (float)(c->norm->noise[k] / c->norm->map_std[k]);
  }
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; b++) {
    const uint64_t g = c->rows[b];
    float *x = c->x + (size_t)b * nx, *z = c->z + (size_t)b * nx, *cd = c->cond + (size_t)b * nx;
    const float *k = jade_dataset_map(c->ds, c->ids[b], cd); /* cd: scratch until the noise below */
    const double *th = theta_all + (size_t)c->ids[b] * JADE_N_THETA;
    int fl = 0, fu = 0, tr = 0, dy = 0, dx = 0;
    if (flip_stream) {
      fl = jade_rng_uniform(seed, flip_stream, 2 * g) < 0.5;
      fu = jade_rng_uniform(seed, flip_stream, 2 * g + 1) < 0.5;
    }
    if (rot_stream) tr = jade_rng_uniform(seed, rot_stream, g) < 0.5;
    if (roll_stream) {
      dy = (int)(jade_rng_uniform(seed, roll_stream, 2 * g) * n) % n;
      dx = (int)(jade_rng_uniform(seed, roll_stream, 2 * g + 1) * n) % n;
    }
    if (!tr && !dy && !dx) {
      for (int ch = 0; ch < bins; ch++)
        for (int y = 0; y < n; y++) {
          const float *src = k + ch * npix + (size_t)(fu ? n - 1 - y : y) * n;
          float *dst = x + ch * npix + (size_t)y * n;
          if (fl)
            for (int i = 0; i < n; i++) dst[i] = src[n - 1 - i] * inv_std[ch];
          else
            for (int i = 0; i < n; i++) dst[i] = src[i] * inv_std[ch];
        }
    } else {
      /* x[y][i] = k[r][s]: (r, s) = (i, y) if transposed, then flipped, then shifted mod n */
      for (int ch = 0; ch < bins; ch++)
        for (int y = 0; y < n; y++)
          for (int i = 0; i < n; i++) {
            int r = tr ? i : y, s = tr ? y : i;
            r = (fu ? n - 1 - r : r) + dy;
            s = (fl ? n - 1 - s : s) + dx;
            r -= r >= n ? n : 0;
            s -= s >= n ? n : 0;
            x[ch * npix + (size_t)y * n + i] = k[ch * npix + (size_t)r * n + s] * inv_std[ch];
          }
    }
    /* normals of this row: [n_t | eps_theta (P) | eps_map (nx) | condition noise (nx)] */
    const uint64_t off = g * (uint64_t)(1 + P + 2 * nx);
    float nt, eps_th[64];
    jade_rng_normal_fill_f(seed, normal_stream, off, 1, &nt);
    jade_rng_normal_fill_f(seed, normal_stream, off + 1, (size_t)P, eps_th);
    jade_rng_normal_fill_f(seed, normal_stream, off + 1 + P, nx, z);
    jade_rng_normal_fill_f(seed, normal_stream, off + 1 + P + nx, nx, cd);
    const float t = jade_flow_time(&tc->flow, nt);
    c->t[b] = t;
    for (int i = 0; i < P; i++) {
      float tn = (float)((th[i] - c->norm->theta_mean[i]) / c->norm->theta_std[i]);
      c->th[(size_t)b * P + i] = tn;
      c->zth[(size_t)b * P + i] = t * tn + (1 - t) * eps_th[i];
    }
    for (size_t i = 0; i < nx; i++) z[i] = t * x[i] + (1 - t) * z[i];
    for (int ch = 0; ch < bins; ch++)
      for (size_t i = ch * npix; i < (ch + 1) * npix; i++) cd[i] = x[i] + nrel[ch] * cd[i];
  }
}

/* Forward + loss (+ backward if train) on the B prepared rows. sums += B * (loss, map, theta). */
static jade_status run_rows(ctx *c, int B, const jade_model_run *run, double grad_scale, double sums[3]) {
  jade_status st = jade_model_forward(c->m, B, c->z, c->zth, c->t, c->cond, c->xhat, c->thhat, run);
  if (st) return st;
  double lx = 0, lth = 0;
  double loss = jade_flow_loss(&c->tc->flow, B, c->nx, c->P, c->x, c->xhat, c->z, c->th, c->thhat, c->zth, c->t,
                               run ? c->dx : NULL, run ? c->dth : NULL, &lx, &lth);
  /* theta_weight w: objective (sum_pix e^2 + w sum_par e^2) / (nx + P); w = 1 is the paper's */
  const double w = c->tc->theta_weight;
  loss += (w - 1) * c->P * lth / (double)(c->nx + (size_t)c->P);
  sums[0] += B * loss;
  sums[1] += B * lx;
  sums[2] += B * lth;
  if (!run) return JADE_OK;
  const float s = (float)grad_scale, sw = (float)(grad_scale * w);
  if (s != 1.0f)
    for (size_t i = 0; i < (size_t)B * c->nx; i++) c->dx[i] *= s;
  if (sw != 1.0f)
    for (size_t i = 0; i < (size_t)B * c->P; i++) c->dth[i] *= sw;
  return jade_model_backward(c->m, c->dx, c->dth);
}

/* Buffers of one worker (one thread): its model (worker 0: the trained model; others: copies
 * re-synchronised before use) and micro-batch buffers. */
static jade_status ctx_init(ctx *c, const ctx *proto, jade_model *m) {
  *c = *proto;
  c->m = m;
  size_t bx = (size_t)c->mb_cap * c->nx * sizeof(float), bp = (size_t)c->mb_cap * c->P * sizeof(float);
  c->x = jade_alloc(bx);
  c->z = jade_alloc(bx);
  c->cond = jade_alloc(bx);
  c->xhat = jade_alloc(bx);
  c->dx = jade_alloc(bx);
  c->th = jade_alloc(bp);
  c->zth = jade_alloc(bp);
  c->thhat = jade_alloc(bp);
  c->dth = jade_alloc(bp);
  c->t = jade_alloc((size_t)c->mb_cap * sizeof(float));
  c->ids = malloc((size_t)c->mb_cap * sizeof(long));
  c->rows = malloc((size_t)c->mb_cap * sizeof(uint64_t));
  if (!c->x || !c->z || !c->cond || !c->xhat || !c->dx || !c->th || !c->zth || !c->thhat || !c->dth || !c->t || !c->ids || !c->rows)
    return jade_error(JADE_ERR_NOMEM, "out of memory for micro-batch buffers (train.micro_batch = %ld)", c->mb_cap);
  return JADE_OK;
}

static void ctx_free(ctx *c) {
  free(c->x);
  free(c->z);
  free(c->cond);
  free(c->xhat);
  free(c->dx);
  free(c->th);
  free(c->zth);
  free(c->thhat);
  free(c->dth);
  free(c->t);
  free(c->ids);
  free(c->rows);
}

/* Copy weights into the models of workers first..nw-1. */
static void sync_workers(ctx *w, int first, int nw, const float *weights, size_t n) {
  for (int i = first; i < nw; i++) {
    float *p = jade_model_params(w[i].m);
    if (p != weights) memcpy(p, weights, n * sizeof(float));
  }
}

/* Mean validation loss of the first n_eval held-out samples (fixed t and noise, no flips),
 * with the weights currently in the workers' models. */
static jade_status validate(ctx *w, int nw, const jade_dist *d, const long *val_idx, long n_eval, double out[3]) {
  double sums[3] = {0, 0, 0};
  const long cap = w[0].mb_cap, n_mb = (n_eval + cap - 1) / cap;
  const long mine = n_mb > d->rank ? (n_mb - d->rank + d->size - 1) / d->size : 0;
  int failed = 0;
  char msg[1024] = "";
  double *ws = calloc((size_t)nw * 3, sizeof *ws);
  if (!ws) return jade_error(JADE_ERR_NOMEM, "out of memory");
#pragma omp parallel num_threads(nw) if (nw > 1)
  {
    const int me = nw > 1 ? omp_get_thread_num() : 0;
    ctx *c = &w[me];
    for (long j = me; j < mine; j += nw) {
      const long mb = d->rank + j * d->size, r0 = mb * cap, r1 = r0 + cap < n_eval ? r0 + cap : n_eval;
      const int B = (int)(r1 - r0);
      for (int b = 0; b < B; b++) {
        c->ids[b] = val_idx[r0 + b];
        c->rows[b] = (uint64_t)(r0 + b);
      }
      prepare_rows(c, B, TRAIN_STREAM(JADE_TRAIN_RNG_VAL, 0), -1);
      jade_status s2 = run_rows(c, B, NULL, 1.0, ws + 3 * me);
      if (s2) {
#pragma omp critical(jade_train_err)
        if (!failed) {
          failed = 1;
          snprintf(msg, sizeof msg, "%s", jade_last_error());
        }
        break;
      }
    }
  }
  for (int i = 0; i < nw; i++)
    for (int k = 0; k < 3; k++) sums[k] += ws[3 * i + k];
  free(ws);
  jade_status st = failed ? jade_error(JADE_ERR_NUMERIC, "%s", msg) : JADE_OK;
  if (jade_dist_max_int(d, st != JADE_OK)) return st ? st : jade_error(JADE_ERR_INTERNAL, "validation failed on another rank");
  if ((st = jade_dist_sum_double(d, sums, 3))) return st;
  for (int i = 0; i < 3; i++) out[i] = sums[i] / (double)n_eval;
  return JADE_OK;
}

/* --init-from: load the starting model, check it is the network of config mc on the dataset's
 * geometry, and append it (path, step, hash of its weights) to the run's identity so that a
 * resume with another starting model is refused. */
static jade_status load_init_model(const char *path, const jade_model_config *mc, const jade_dataset *ds,
                                   jade_trained_model **out, char **ident) {
  jade_trained_model *tm = NULL;
  jade_status st = jade_trained_model_load(path, &tm);
  if (st) return jade_error_context(st, "--init-from");
  jade_model *ref = NULL;
  if ((st = jade_model_create(&ref, mc))) goto fail;
  int nt = jade_model_num_tensors(ref), same = nt == jade_model_num_tensors(tm->model);
  for (int i = 0; i < nt && same; i++) {
    const jade_tensor_info *a = jade_model_tensor(ref, i), *b = jade_model_tensor(tm->model, i);
    same = !strcmp(a->name, b->name) && a->ndim == b->ndim && a->offset == b->offset;
    for (int k = 0; k < a->ndim && same; k++) same = a->shape[k] == b->shape[k];
  }
  jade_model_free(ref);
  if (!same) {
    st = jade_error(JADE_ERR_INVALID, "--init-from %s: its network differs from the configuration's [model] (train with "
                    "the model's own config.ini)", tm->path);
    goto fail;
  }
  if (tm->norm.n_bins != ds->bins || tm->norm.n_pix != ds->npix) {
    st = jade_error(JADE_ERR_INVALID, "--init-from %s: trained on %d bins of %d pixels, the dataset has %d of %d", tm->path,
                    tm->norm.n_bins, tm->norm.n_pix, ds->bins, ds->npix);
    goto fail;
  }
  const size_t n = jade_model_num_params(tm->model);
  const uint64_t h = jade_hash_bytes(jade_model_params(tm->model), n * sizeof(float));
  size_t len = strlen(*ident) + strlen(tm->path) + 96;
  char *id2 = malloc(len);
  if (!id2) {
    st = jade_error(JADE_ERR_NOMEM, "out of memory");
    goto fail;
  }
  snprintf(id2, len, "%sinit_from = %s (step %ld, weights %016llx)\n", *ident, tm->path, tm->step, (unsigned long long)h);
  free(*ident);
  *ident = id2;
  *out = tm;
  return JADE_OK;
fail:
  jade_trained_model_free(tm);
  return st;
}

/* Keep only the config lines that define a training run (top level, [model], [train]). */
static char *training_identity(const char *text) {
  size_t len = strlen(text);
  char *out = malloc(len + 1);
  if (!out) return NULL;
  size_t pos = 0;
  const char *p = text;
  while (*p) {
    const char *e = strchr(p, '\n');
    size_t l = e ? (size_t)(e - p + 1) : strlen(p);
    const char *eq = memchr(p, '=', l);
    const char *dot = memchr(p, '.', eq ? (size_t)(eq - p) : l);
    int keep = !dot || !strncmp(p, "model.", 6) || !strncmp(p, "train.", 6);
    if (keep) {
      memcpy(out + pos, p, l);
      pos += l;
    }
    p += l;
  }
  out[pos] = 0;
  return out;
}

/* First line that differs between two config texts, for a helpful message. */
static void first_difference(const char *a, const char *b, char *out, size_t n) {
  while (*a || *b) {
    const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
    size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
    if (la != lb || memcmp(a, b, la)) {
      snprintf(out, n, "saved '%.*s' vs now '%.*s'", (int)(la > 80 ? 80 : la), a, (int)(lb > 80 ? 80 : lb), b);
      return;
    }
    a += la + (ea != NULL);
    b += lb + (eb != NULL);
  }
  snprintf(out, n, "?");
}

/* Nothing in path but the temporaries of killed writers (a run killed while writing its
 * first file has not started). */
static int dir_is_empty(const char *path) {
  DIR *d = opendir(path);
  if (!d) return 0;
  struct dirent *e;
  int empty = 1;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && !jade_is_temporary_name(e->d_name)) {
      empty = 0;
      break;
    }
  closedir(d);
  return empty;
}

static const char LOSS_HEADER[] =
    "step,epoch,lr,loss,loss_map,loss_theta,grad_norm,val_loss,val_loss_ema,val_theta_ema,elapsed_s\n";

/* Keep loss.csv rows with step <= last_step; returns the elapsed time of the last kept row. */
static jade_status truncate_loss_csv(const char *path, long last_step, double *elapsed) {
  *elapsed = 0;
  char *text = jade_read_text_file(path);
  if (!text) return jade_write_file_atomic(path, LOSS_HEADER);
  size_t len = strlen(text), pos = 0;
  char *out = malloc(len + sizeof LOSS_HEADER + 1);
  if (!out) {
    free(text);
    return jade_error(JADE_ERR_NOMEM, "out of memory");
  }
  memcpy(out, LOSS_HEADER, sizeof LOSS_HEADER - 1);
  pos = sizeof LOSS_HEADER - 1;
  char *p = strchr(text, '\n');
  p = p ? p + 1 : text + len;
  while (*p) {
    char *e = strchr(p, '\n');
    if (!e) break; /* an incomplete last line is dropped */
    long s = strtol(p, NULL, 10);
    if (s > last_step) break;
    const char *last_comma = NULL;
    for (char *q = p; q < e; q++)
      if (*q == ',') last_comma = q;
    if (last_comma) *elapsed = strtod(last_comma + 1, NULL);
    memcpy(out + pos, p, (size_t)(e - p + 1));
    pos += (size_t)(e - p + 1);
    p = e + 1;
  }
  out[pos] = 0;
  jade_status st = jade_write_file_atomic(path, out);
  free(out);
  free(text);
  return st;
}

typedef struct {
  double n, loss, lx, lth, gn;
} accum;

/* The normalisation of a run: theta from the prior (or the training split), maps per bin
 * from the training split. Deterministic (independent of threads and ranks), so a resumed
 * run recomputes it and compares it with the one saved in its state. Every map of the
 * dataset must be finite and stay finite in network units (squared, in float: the loss). */
static jade_status compute_norm(const jade_train_config *tc, const jade_train_options *o, const jade_dataset *dsp,
                                const long *train_idx, long n_train, jade_norm *normp) {
  const jade_dataset ds = *dsp;
  const int P = JADE_N_THETA;
  const size_t nx = ds.nx;
  jade_norm norm;
  memset(&norm, 0, sizeof norm);
  jade_status st = JADE_OK;
  norm.n_bins = ds.bins;
  norm.n_pix = ds.npix;
  norm.size_deg = o->sim ? o->sim->geom.size_deg : 0;
  norm.theta_norm_dataset = tc->theta_norm_dataset;
  for (int i = 0; i < ds.bins; i++) norm.noise[i] = ((double *)ds.noise.data)[i];
  const double *th = ds.theta.data;
  for (int i = 0; i < P; i++) {
    if (!tc->theta_norm_dataset) {
      if (!o->sim) {
        st = jade_error(JADE_ERR_INVALID, "train.theta_norm = prior needs the prior of the configuration");
        return st;
      }
      jade_prior_moments(&o->sim->prior[i], &norm.theta_mean[i], &norm.theta_std[i]);
    } else {
      double s1 = 0, s2 = 0;
      for (long k = 0; k < n_train; k++) s1 += th[train_idx[k] * P + i];
      double mean = s1 / n_train;
      for (long k = 0; k < n_train; k++) s2 += (th[train_idx[k] * P + i] - mean) * (th[train_idx[k] * P + i] - mean);
      norm.theta_mean[i] = mean;
      norm.theta_std[i] = sqrt(s2 / n_train);
    }
    if (!(norm.theta_std[i] > 0)) {
      st = jade_error(JADE_ERR_INVALID, "%s: %s has zero spread (a --fixed dataset? use train.theta_norm = prior)",
                      o->data_dir, jade_theta_names[i]);
      return st;
    }
  }
  /* per-bin pixel std over the training split: per-map sums, then summed in map order
   * (independent of the thread count) */
  double *sums = malloc((size_t)n_train * ds.bins * 2 * sizeof *sums);
  if (!sums) {
    st = jade_error(JADE_ERR_NOMEM, "out of memory");
    return st;
  }
  const size_t npix = (size_t)ds.npix * ds.npix;
  int oom = 0;
#pragma omp parallel reduction(| : oom)
  {
    /* float16 datasets: each thread converts its maps into its own scratch */
    float *scratch = ds.kappa.dtype == JADE_F32 ? NULL : malloc(nx * sizeof(float));
    oom = ds.kappa.dtype != JADE_F32 && !scratch;
#pragma omp for schedule(static)
    for (long k = 0; k < n_train; k++) {
      if (oom) continue;
      const float *kp = jade_dataset_map(&ds, train_idx[k], scratch);
      for (int b = 0; b < ds.bins; b++) {
        double s1 = 0, s2 = 0;
        for (size_t i = 0; i < npix; i++) {
          double v = kp[b * npix + i];
          s1 += v;
          s2 += v * v;
        }
        sums[(k * ds.bins + b) * 2] = s1;
        sums[(k * ds.bins + b) * 2 + 1] = s2;
      }
    }
    free(scratch);
  }
  if (oom) {
    free(sums);
    return jade_error(JADE_ERR_NOMEM, "out of memory converting float16 maps");
  }
  for (int b = 0; b < ds.bins; b++) {
    double s1 = 0, s2 = 0;
    for (long k = 0; k < n_train; k++) {
      s1 += sums[(k * ds.bins + b) * 2];
      s2 += sums[(k * ds.bins + b) * 2 + 1];
    }
    double cnt = (double)n_train * npix, mean = s1 / cnt, var = s2 / cnt - mean * mean;
    norm.map_std[b] = sqrt(var > 0 ? var : 0);
    if (!(norm.map_std[b] > 0) || !isfinite(norm.map_std[b])) {
      st = jade_error(JADE_ERR_INVALID, "%s/kappa.npy: bin %d has zero or non-finite variance", o->data_dir, b);
      break;
    }
  }
  free(sums);
  if (st) return st;
  /* every map (validation split too) finite and representable in network units */
  const size_t nmaps = (size_t)ds.n * ds.bins, npx = (size_t)ds.npix * ds.npix;
  float *amax = malloc(nmaps * sizeof *amax);
  if (!amax) return jade_error(JADE_ERR_NOMEM, "out of memory");
#pragma omp parallel for schedule(static)
  for (size_t m = 0; m < nmaps; m++) {
    float a = 0;
    if (ds.kappa.dtype == JADE_F32) {
      const float *kp = (const float *)ds.kappa.data + m * npx;
      for (size_t i = 0; i < npx; i++) {
        float v = fabsf(kp[i]);
        a = (v > a || isnan(v)) ? v : a; /* NaN propagates */
      }
    } else { /* float16: finite by jade_npy_check_finite; largest magnitude 65504 */
      const uint16_t *kp = (const uint16_t *)ds.kappa.data + m * npx;
      for (size_t i = 0; i < npx; i++) {
        float v = fabsf(jade_f16_to_f32(kp[i]));
        a = (v > a || isnan(v)) ? v : a;
      }
    }
    amax[m] = a;
  }
  for (size_t m = 0; m < nmaps && !st; m++) {
    const int b = (int)(m % (size_t)ds.bins);
    const double x = (double)amax[m] / norm.map_std[b];
    /* squares of kappa (variances, power spectra) and of kappa / map_std (the loss) are
     * formed in float32: both must stay finite */
    if (!isfinite(amax[m]) || !((double)amax[m] * amax[m] <= FLT_MAX) || !(x * x <= FLT_MAX))
      st = jade_error(JADE_ERR_INVALID, "%s/kappa.npy: map %zu, bin %d: |kappa| = %g is %s", o->data_dir, m / (size_t)ds.bins, b,
                      (double)amax[m], isfinite(amax[m]) ? "too large (its square, or that of kappa / map std, overflows float32)" : "not finite");
  }
  free(amax);
  if (st) return st;
  (void)nx;
  *normp = norm;
  return JADE_OK;
}

static int norm_equal(const jade_norm *a, const jade_norm *b) {
  if (a->n_bins != b->n_bins || a->n_pix != b->n_pix || a->size_deg != b->size_deg ||
      a->theta_norm_dataset != b->theta_norm_dataset)
    return 0;
  for (int i = 0; i < JADE_N_THETA; i++)
    if (a->theta_mean[i] != b->theta_mean[i] || a->theta_std[i] != b->theta_std[i]) return 0;
  for (int i = 0; i < a->n_bins; i++)
    if (a->map_std[i] != b->map_std[i] || a->noise[i] != b->noise[i]) return 0;
  return 1;
}

jade_status jade_train(const jade_model_config *mc_in, const jade_train_config *tc, const jade_train_options *o,
                       jade_train_result *res) {
  jade_dist single = {0, 1, 0};
  const jade_dist *d = o->dist ? o->dist : &single;
  const int root = d->rank == 0;
  memset(res, 0, sizeof *res);
  res->val_loss = NAN;
  const double t_begin = jade_time_now();
  jade_model_config mc = *mc_in;
  jade_dataset ds;
  jade_norm norm;
  ctx proto, *w = NULL;
  int nw = 0;
  memset(&proto, 0, sizeof proto);
  memset(&norm, 0, sizeof norm);
  jade_model *m = NULL;
  jade_adamw *opt = NULL;
  jade_safetensors *state = NULL;
  float *ema = NULL, *backup = NULL;
  unsigned char *decay_mask = NULL;
  long *perm = NULL, *eperm = NULL;
  char *ident = NULL;
  jade_trained_model *init = NULL;
  FILE *loss_f = NULL;
  char p_state[4300], p_model[4300], p_loss[4300], p_cfg[4300];
  jade_status st = jade_model_config_check(&mc);
  if (st) return st;
  if ((st = jade_dataset_open(o->data_dir, &ds))) return st;
  const uint64_t data_hash = jade_dataset_hash(&ds);

  const int P = JADE_N_THETA;
  const size_t nx = ds.nx;
  if (ds.bins != mc.channels || ds.npix != mc.img_size || mc.cond_channels != mc.channels || mc.n_params != P) {
    st = jade_error(JADE_ERR_INVALID, "%s: maps are %dx%d with %d bins but the configuration says n_pix = %d, n_bins = %d "
                    "(train with the dataset's own config.ini, or --set n_pix=%d n_bins=%d)",
                    o->data_dir, ds.npix, ds.npix, ds.bins, mc.img_size, mc.channels, ds.npix, ds.bins);
    goto done;
  }
  if (o->sim && (o->sim->geom.n_pix != ds.npix || o->sim->geom.n_bins != ds.bins)) {
    st = jade_error(JADE_ERR_INVALID, "%s: dataset geometry does not match the configuration's n_pix / n_bins", o->data_dir);
    goto done;
  }
  if (!(ident = training_identity(o->config_text ? o->config_text : ""))) {
    st = jade_error(JADE_ERR_NOMEM, "out of memory");
    goto done;
  }
  if (o->init_from && (st = load_init_model(o->init_from, &mc, &ds, &init, &ident))) goto done;

  /* ---- split ---- */
  const long N = ds.n;
  long n_val = (long)floor(tc->val_fraction * (double)N + 0.5);
  if (tc->val_fraction > 0 && n_val == 0) n_val = 1;
  long n_train = N - n_val;
  if (n_train < 1) {
    st = jade_error(JADE_ERR_INVALID, "%s: %ld simulations leave no training sample after the validation split", o->data_dir, N);
    goto done;
  }
  perm = malloc((size_t)N * sizeof *perm);
  eperm = malloc((size_t)n_train * sizeof *eperm);
  if (!perm || !eperm) {
    st = jade_error(JADE_ERR_NOMEM, "out of memory");
    goto done;
  }
  permutation(N, tc->seed, TRAIN_STREAM(JADE_TRAIN_RNG_SPLIT, 0), perm);
  long *val_idx = perm, *train_idx = perm + n_val;
  qsort(val_idx, (size_t)n_val, sizeof *val_idx, cmp_long);
  qsort(train_idx, (size_t)n_train, sizeof *train_idx, cmp_long);
  const long n_eval = n_val < tc->val_max ? n_val : tc->val_max;
  const long Bg = tc->batch, Bm = tc->micro_batch;
  const long n_micro = (Bg + Bm - 1) / Bm;
  const long spe = n_train / Bg > 0 ? n_train / Bg : 1;

  snprintf(p_state, sizeof p_state, "%s/state.safetensors", o->out_dir);
  snprintf(p_model, sizeof p_model, "%s/model.safetensors", o->out_dir);
  snprintf(p_loss, sizeof p_loss, "%s/loss.csv", o->out_dir);
  snprintf(p_cfg, sizeof p_cfg, "%s/config.ini", o->out_dir);
  int resuming = o->resume && exists(p_state);
  if (o->resume && !resuming) {
    /* --resume without a checkpoint: refused, unless MODELDIR is empty or is this very run
     * killed before its first checkpoint (its config.ini is this config, no model yet), where
     * starting at step 0 loses nothing and gives the same bytes */
    char *saved_cfg = exists(p_cfg) ? jade_read_text_file(p_cfg) : NULL;
    int unstarted = is_dir(o->out_dir) && (dir_is_empty(o->out_dir) ||
                    (saved_cfg && !strcmp(saved_cfg, o->config_text ? o->config_text : "") && !exists(p_model)));
    free(saved_cfg);
    if (!exists(o->out_dir))
      st = jade_error(JADE_ERR_IO, "%s: nothing to resume (no such directory); run without --resume to start a training", o->out_dir);
    else if (!unstarted)
      st = jade_error(JADE_ERR_IO, "%s: no state.safetensors to resume from, and not an unfinished run of this configuration: "
                      "refusing to overwrite it (choose another --out)", o->out_dir);
    else if (root && !o->quiet)
      fprintf(stderr, "jade train: %s has no checkpoint yet: starting at step 0\n", o->out_dir);
  } else if (!resuming && exists(o->out_dir) && !(is_dir(o->out_dir) && dir_is_empty(o->out_dir))) {
    st = jade_error(JADE_ERR_IO, "%s: already exists (use --resume to continue its training, or choose another --out)", o->out_dir);
  }
  /* every rank has looked at MODELDIR before rank 0 creates or changes anything in it */
  if (jade_dist_max_int(d, st != JADE_OK)) {
    if (!st) st = jade_error(JADE_ERR_IO, "%s: refused by another rank", o->out_dir);
    goto done;
  }

  /* ---- model, optimiser ---- */
  if ((st = jade_model_create(&m, &mc))) goto done;
  const size_t n_par = jade_model_num_params(m);
  jade_adamw_config ac = {(float)tc->lr_peak, (float)tc->beta1, (float)tc->beta2, (float)tc->adam_eps, (float)tc->weight_decay};
  if ((st = jade_adamw_create(&opt, n_par, &ac))) goto done;
  {
    int nt = jade_model_num_tensors(m);
    jade_tensor_info *ti = malloc((size_t)(nt ? nt : 1) * sizeof *ti);
    if (!ti) {
      st = jade_error(JADE_ERR_NOMEM, "out of memory");
      goto done;
    }
    for (int i = 0; i < nt; i++) ti[i] = *jade_model_tensor(m, i);
    decay_mask = jade_decay_mask(ti, nt, n_par);
    free(ti);
  }
  ema = jade_alloc(n_par * sizeof(float));
  backup = jade_alloc(n_par * sizeof(float));
  if (!decay_mask || !ema || !backup) {
    st = jade_error(JADE_ERR_NOMEM, "out of memory for %zu parameters", n_par);
    goto done;
  }
  float *params = jade_model_params(m), *grads = jade_model_grads(m);

  long step = 0;
  accum acc = {0, 0, 0, 0, 0};
  double elapsed0 = 0;
  /* normalisation: theta from the prior (or the training split), maps per bin; computed on a
   * resume too, to check the saved one (an edited state is refused) */
  if ((st = compute_norm(tc, o, &ds, train_idx, n_train, &norm))) goto done;
  if (init) norm = init->norm; /* the network's units stay those it was trained in */
  if (resuming) {
    if ((st = jade_safetensors_read(p_state, &state))) goto done;
    const char *fmt = jade_safetensors_meta(state, "format"), *cfg_saved = jade_safetensors_meta(state, "identity");
    const char *hash = jade_safetensors_meta(state, "data.hash");
    char want_hash[32], diff[256];
    snprintf(want_hash, sizeof want_hash, "%016llx", (unsigned long long)data_hash);
    if (!fmt || strcmp(fmt, STATE_FORMAT) || !cfg_saved) {
      st = jade_error(JADE_ERR_FORMAT, "%s: not a jade training state (format '%s')", p_state, fmt ? fmt : "missing");
      goto done;
    }
    if (strcmp(cfg_saved, ident)) {
      first_difference(cfg_saved, ident, diff, sizeof diff);
      st = jade_error(JADE_ERR_INVALID, "%s: saved by a run with a different configuration (%s); resume with the same "
                      "config or choose another --out", p_state, diff);
      goto done;
    }
    if (!hash) {
      st = jade_error(JADE_ERR_FORMAT, "%s: has no data.hash (saved by an older jade): cannot check that %s is the same "
                      "dataset; start a new training", p_state, o->data_dir);
      goto done;
    }
    if (strcmp(hash, want_hash)) {
      st = jade_error(JADE_ERR_INVALID, "%s: saved while training on a different dataset than %s (theta, kappa or noise "
                      "differ)", p_state, o->data_dir);
      goto done;
    }
    long adam_steps;
    double av[5];
    size_t sh[1] = {n_par};
    jade_norm saved;
    if ((st = jade_norm_from_meta(state, &saved)) || (st = meta_long(state, "step", 0, tc->steps, &step)) ||
        (st = meta_long(state, "adam_steps", 0, 1L << 50, &adam_steps)) ||
        (st = meta_doubles(state, "accum", 5, av)) ||
        (st = jade_safetensors_copy_f32(state, "params", 1, sh, params)) ||
        (st = jade_safetensors_copy_f32(state, "ema", 1, sh, ema)) ||
        (st = jade_safetensors_copy_f32(state, "adam_m", 1, sh, jade_adamw_m(opt))) ||
        (st = jade_safetensors_copy_f32(state, "adam_v", 1, sh, jade_adamw_v(opt))))
      goto done;
    /* the saved normalisation must be the one this dataset and config give (exact: written
     * with %.17g, recomputed in the same order) */
    if (!norm_equal(&saved, &norm)) {
      st = jade_error(JADE_ERR_FORMAT, "%s: its norm.* metadata differ from the normalisation of %s (an edited or corrupt "
                      "state); start a new training", p_state, o->data_dir);
      goto done;
    }
    jade_adamw_set_steps(opt, adam_steps);
    acc = (accum){av[0], av[1], av[2], av[3], av[4]};
    jade_safetensors_free(state);
    state = NULL;
  } else {
    if (init) memcpy(params, jade_model_params(init->model), n_par * sizeof(float));
    else jade_model_init(m, tc->seed);
    memcpy(ema, params, n_par * sizeof(float));
  }
  jade_trained_model_free(init);
  init = NULL;

  /* ---- output directory (rank 0) ---- */
  if (root) {
    st = jade_mkdir_p(o->out_dir);
    if (!st) st = jade_remove_temporaries(o->out_dir); /* of killed runs (only rank 0 writes here) */
    if (!st && !resuming) st = jade_write_file_atomic(p_cfg, o->config_text ? o->config_text : "");
    if (!st && !resuming) st = jade_write_file_atomic(p_loss, LOSS_HEADER);
    if (!st && resuming) st = truncate_loss_csv(p_loss, step, &elapsed0);
    if (!st && !(loss_f = fopen(p_loss, "a"))) st = jade_error(JADE_ERR_IO, "%s: cannot append: %s", p_loss, strerror(errno));
  }
  if (jade_dist_max_int(d, st != JADE_OK)) {
    if (!st) st = jade_error(JADE_ERR_IO, "rank 0 could not prepare %s", o->out_dir);
    goto done;
  }

  /* ---- workers: micro-batches of this rank spread over OpenMP threads, each thread with its
   * own model copy (gradients summed in worker order); 1 worker = threads inside the network */
  proto.tc = tc;
  proto.ds = &ds;
  proto.norm = &norm;
  proto.P = P;
  proto.npix = ds.npix;
  proto.bins = ds.bins;
  proto.nx = nx;
  proto.mb_cap = Bm;
  {
    const long my_micro = n_micro > d->rank ? (n_micro - d->rank + d->size - 1) / d->size : 0;
    nw = o->workers > 0 ? o->workers : omp_get_max_threads();
    if (o->workers <= 0 && n_par > 50000000) nw = 1; /* big models: no per-thread copies */
    if (nw > my_micro) nw = (int)my_micro;
    if (nw > 64) nw = 64;
    if (nw < 1) nw = 1;
  }
  if (!(w = calloc((size_t)nw, sizeof *w))) {
    st = jade_error(JADE_ERR_NOMEM, "out of memory");
    goto done;
  }
  for (int i = 0; i < nw && !st; i++) {
    jade_model *mi = m;
    if (i > 0 && (st = jade_model_create(&mi, &mc))) break;
    st = ctx_init(&w[i], &proto, mi);
    if (i > 0) w[i].m = mi; /* owned: freed below even on error */
  }
  if (st) goto done;

  if (root && !o->quiet) {
    fprintf(stderr, "jade train: %ld training + %ld validation simulations of %dx%dx%d; model %.2fM parameters; batch %ld "
            "(micro %ld, %d rank%s x %d worker thread%s), %ld steps = %.1f epochs, matmul %s\n",
            n_train, n_val, ds.npix, ds.npix, ds.bins, n_par / 1e6, Bg, Bm, d->size, d->size > 1 ? "s" : "", nw,
            nw > 1 ? "s" : "", tc->steps, (double)tc->steps / spe, jade_matmul_backend_name(jade_matmul_get_backend()));
    if (resuming) fprintf(stderr, "jade train: resuming %s at step %ld\n", o->out_dir, step);
    if (n_train < Bg) fprintf(stderr, "jade train: warning: batch %ld exceeds the %ld training samples (rows repeat)\n", Bg, n_train);
  }

  /* ---- the loop ---- */
  const int tty = isatty(2);
  const double t0 = jade_time_now();
  double t_last = t0, last_val = NAN, t_ckpt = t0;
  const long step0 = step;
  long cur_epoch = -1;
  int stopping = 0;
  if (step >= tc->steps && root && !o->quiet) fprintf(stderr, "jade train: %s already finished (%ld steps)\n", o->out_dir, step);
  while (step < tc->steps) {
    const long s = step, epoch = s / spe, pos = s % spe;
    if (epoch != cur_epoch) {
      permutation(n_train, tc->seed, TRAIN_STREAM(JADE_TRAIN_RNG_EPOCH, epoch), eperm);
      cur_epoch = epoch;
    }
    sync_workers(w, 1, nw, params, n_par);
    double sums[3] = {0, 0, 0};
    {
      const long mine = n_micro > d->rank ? (n_micro - d->rank + d->size - 1) / d->size : 0;
      double ws[64][3];
      int failed = 0;
      char msg[1024] = "";
      memset(ws, 0, sizeof ws);
#pragma omp parallel num_threads(nw) if (nw > 1)
      {
        const int me = nw > 1 ? omp_get_thread_num() : 0;
        ctx *c = &w[me];
        jade_model_zero_grad(c->m);
        for (long j = me; j < mine; j += nw) {
          const long mb = d->rank + j * d->size, r0 = mb * Bm, r1 = r0 + Bm < Bg ? r0 + Bm : Bg;
          const int B = (int)(r1 - r0);
          for (int b = 0; b < B; b++) {
            c->rows[b] = (uint64_t)(r0 + b);
            c->ids[b] = train_idx[eperm[(pos * Bg + r0 + b) % n_train]];
          }
          prepare_rows(c, B, TRAIN_STREAM(JADE_TRAIN_RNG_NORMAL, s), s);
          jade_model_run run = {1, tc->seed, TRAIN_STREAM(JADE_TRAIN_RNG_DROPOUT, (uint64_t)s * n_micro + mb)};
          jade_status s2 = run_rows(c, B, &run, (double)B / (double)Bg, ws[me]);
          if (s2) {
#pragma omp critical(jade_train_err)
            if (!failed) {
              failed = 1;
              snprintf(msg, sizeof msg, "%s", jade_last_error());
            }
            break;
          }
        }
      }
      if (failed) st = jade_error(JADE_ERR_NUMERIC, "step %ld: %s", s + 1, msg);
      /* worker gradients summed in worker order (element-parallel) */
      for (int i = 1; i < nw && !st; i++) {
        const float *g = jade_model_grads(w[i].m);
#pragma omp parallel for schedule(static)
        for (size_t k = 0; k < n_par; k++) grads[k] += g[k];
      }
      for (int i = 0; i < nw; i++)
        for (int k = 0; k < 3; k++) sums[k] += ws[i][k];
    }
    if (jade_dist_max_int(d, st != JADE_OK)) {
      if (!st) st = jade_error(JADE_ERR_INTERNAL, "step %ld failed on another rank", s + 1);
      break;
    }
    if (d->size > 1 && ((st = jade_dist_sum_float(d, grads, n_par)) || (st = jade_dist_sum_double(d, sums, 3)))) break;
    const double loss = sums[0] / Bg;
    if (!isfinite(loss)) {
      st = jade_error(JADE_ERR_NUMERIC, "non-finite training loss at step %ld (lower train.lr_peak?); the last checkpoint in %s is intact",
                      s + 1, o->out_dir);
      break;
    }
    const double gn = jade_clip_grad_norm(grads, n_par, tc->grad_clip);
    const double lr = jade_lr_linear(s, tc->warmup, tc->steps, tc->lr_peak, tc->lr_end);
    jade_adamw_step(opt, params, grads, decay_mask, (float)lr);
    step = s + 1;
    if (step <= tc->ema_start)
      memcpy(ema, params, n_par * sizeof(float));
    else
      jade_ema_update(ema, params, n_par, (float)tc->ema_decay);
    acc.n += 1;
    acc.loss += loss;
    acc.lx += sums[1] / Bg;
    acc.lth += sums[2] / Bg;
    acc.gn += gn;

    /* validation, log row */
    const int final = step == tc->steps;
    const int do_val = n_eval > 0 && (step % tc->val_every == 0 || final);
    double val[3] = {NAN, NAN, NAN}, val_ema[3] = {NAN, NAN, NAN};
    if (do_val) {
      sync_workers(w, 1, nw, params, n_par);
      if ((st = validate(w, nw, d, val_idx, n_eval, val))) break;
      memcpy(backup, params, n_par * sizeof(float));
      sync_workers(w, 0, nw, ema, n_par);
      st = validate(w, nw, d, val_idx, n_eval, val_ema);
      memcpy(params, backup, n_par * sizeof(float));
      if (st) break;
      last_val = val_ema[0];
    }
    const double now = jade_time_now();
    if (step % tc->log_every == 0 || do_val || final) {
      res->loss = acc.loss / acc.n;
      if (root) {
        fprintf(loss_f, "%ld,%.4f,%.6g,%.6g,%.6g,%.6g,%.6g,", step, (double)step / spe, lr, acc.loss / acc.n, acc.lx / acc.n,
                acc.lth / acc.n, acc.gn / acc.n);
        if (do_val)
          fprintf(loss_f, "%.6g,%.6g,%.6g,", val[0], val_ema[0], val_ema[2]);
        else
          fprintf(loss_f, ",,,");
        fprintf(loss_f, "%.1f\n", elapsed0 + now - t0);
        fflush(loss_f);
      }
      memset(&acc, 0, sizeof acc);
    }

    /* stop request (signal on any rank, or --stop-after) */
    int stop = (o->stop_flag && *o->stop_flag) || (o->stop_after > 0 && step >= o->stop_after);
    stopping = jade_dist_max_int(d, stop) && !final;

    /* checkpoint (every checkpoint_every steps, or after checkpoint_seconds of wall time: rank
     * 0's clock decides for all ranks) */
    int due = o->checkpoint_seconds > 0 && root && now - t_ckpt >= o->checkpoint_seconds;
    if (o->checkpoint_seconds > 0) due = jade_dist_max_int(d, due);
    if (step % tc->checkpoint_every == 0 || final || stopping || due) {
      t_ckpt = now;
      if (root) {
        metabuf mb = {0};
        meta_add(&mb, "format", "%s", STATE_FORMAT);
        meta_add(&mb, "step", "%ld", step);
        meta_add(&mb, "adam_steps", "%ld", jade_adamw_steps(opt));
        double av[5] = {acc.n, acc.loss, acc.lx, acc.lth, acc.gn};
        meta_add_doubles(&mb, "accum", av, 5);
        meta_add(&mb, "data.hash", "%016llx", (unsigned long long)data_hash);
        meta_add(&mb, "data.n", "%ld", N);
        meta_add(&mb, "data.n_train", "%ld", n_train);
        meta_add(&mb, "data.n_val", "%ld", n_val);
        meta_model(&mb, &mc);
        meta_norm(&mb, &norm);
        meta_flow(&mb, &tc->flow);
        meta_add(&mb, "identity", "%s", ident);
        jade_st_tensor tt[4] = {{"params", JADE_F32, 1, {n_par}, params},
                                {"ema", JADE_F32, 1, {n_par}, ema},
                                {"adam_m", JADE_F32, 1, {n_par}, jade_adamw_m(opt)},
                                {"adam_v", JADE_F32, 1, {n_par}, jade_adamw_v(opt)}};
        st = meta_write(p_state, tt, 4, &mb);
        meta_free(&mb);
        if (!st) st = jade_checkpoint_write_model(p_model, m, ema, &norm, &tc->flow, step, o->config_text);
      }
      if (jade_dist_max_int(d, st != JADE_OK)) {
        if (!st) st = jade_error(JADE_ERR_IO, "rank 0 failed to write a checkpoint");
        break;
      }
    }

    /* progress */
    if (root && !o->quiet && (now - t_last > (tty ? 0.5 : 30.0) || final || stopping)) {
      t_last = now;
      double rate = (step - step0) / (now - t0);
      char eta[32], vs[48] = "";
      jade_format_duration((tc->steps - step) / rate, eta, sizeof eta);
      if (isfinite(last_val)) snprintf(vs, sizeof vs, ", val %.4f", last_val);
      fprintf(stderr, "%strain: step %ld/%ld, epoch %.2f, loss %.4f%s, lr %.2e, %.2f steps/s (%.0f samples/s), %s left%s",
              tty ? "\r" : "", step, tc->steps, (double)step / spe, acc.n > 0 ? acc.loss / acc.n : res->loss, vs, lr, rate,
              rate * Bg, eta, tty ? "   " : "\n");
    }
    if (stopping) break;
  }
  if (root && !o->quiet && tty && step > step0) fprintf(stderr, "\n");
  res->step = step;
  res->finished = step >= tc->steps && !st;
  res->val_loss = last_val;

done:
  if (loss_f) fclose(loss_f);
  jade_safetensors_free(state);
  jade_model_free(m);
  jade_adamw_free(opt);
  free(ema);
  free(backup);
  free(decay_mask);
  free(perm);
  free(eperm);
  free(ident);
  jade_trained_model_free(init);
  for (int i = 0; w && i < nw; i++) {
    ctx_free(&w[i]);
    if (i > 0) jade_model_free(w[i].m);
  }
  free(w);
  jade_dataset_close(&ds);
  res->seconds = jade_time_now() - t_begin;
  return st;
}
