/* Trained-model files (include/jade/trained_model.h, format in docs/model.md): safetensors
 * with the weights in the model's tensor table and metadata (model config, normalisation,
 * flow settings, step, config text); loading, F32 / F16 writing, and the metadata helpers
 * the training checkpoints share (train_internal.h). */
#include "jade/trained_model.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/io.h"
#include "train_internal.h"

#define MODEL_FORMAT "jade-model-1"

/* ======================================================================================
 * Metadata helpers
 * ==================================================================================== */

/* Metadata entries collected before a safetensors write (train_internal.h). */
void train_meta_add(metabuf *mb, const char *key, const char *fmt, ...) {
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

void train_meta_add_doubles(metabuf *mb, const char *key, const double *x, int n) {
  char buf[64 * 32];
  size_t pos = 0;
  buf[0] = 0;
  for (int i = 0; i < n && pos < sizeof buf; i++) pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "%s%.17g", i ? " " : "", x[i]);
  train_meta_add(mb, key, "%s", buf);
}

void train_meta_free(metabuf *mb) {
  for (int i = 0; i < mb->n; i++) {
    free(mb->k[i]);
    free(mb->v[i]);
  }
  free(mb->k);
  free(mb->v);
  memset(mb, 0, sizeof *mb);
}

void train_meta_model(metabuf *mb, const jade_model_config *c) {
  train_meta_add(mb, "model.img_size", "%d", c->img_size);
  train_meta_add(mb, "model.channels", "%d", c->channels);
  train_meta_add(mb, "model.cond_channels", "%d", c->cond_channels);
  train_meta_add(mb, "model.patch", "%d", c->patch);
  train_meta_add(mb, "model.cond_patch", "%d", c->cond_patch);
  train_meta_add(mb, "model.depth", "%d", c->depth);
  train_meta_add(mb, "model.width", "%d", c->width);
  train_meta_add(mb, "model.heads", "%d", c->heads);
  train_meta_add(mb, "model.n_cosmo_tokens", "%d", c->n_cosmo_tokens);
  train_meta_add(mb, "model.n_params", "%d", c->n_params);
  train_meta_add(mb, "model.mlp_hidden", "%d", c->mlp_hidden);
  train_meta_add(mb, "model.bottleneck", "%d", c->bottleneck);
  train_meta_add(mb, "model.cond_bottleneck", "%d", c->cond_bottleneck);
  train_meta_add(mb, "model.time_freq", "%d", c->time_freq);
  train_meta_add(mb, "model.max_period", "%.9g", (double)c->max_period);
  train_meta_add(mb, "model.rope_theta", "%.9g", (double)c->rope_theta);
  train_meta_add(mb, "model.norm_eps", "%.9g", (double)c->norm_eps);
  train_meta_add(mb, "model.dropout", "%.9g", (double)c->dropout);
}

void train_meta_norm(metabuf *mb, const jade_norm *n) {
  char names[256] = "";
  size_t pos = 0;
  for (int i = 0; i < JADE_N_THETA; i++) pos += (size_t)snprintf(names + pos, sizeof names - pos, "%s%s", i ? " " : "", jade_theta_names[i]);
  train_meta_add(mb, "norm.theta_names", "%s", names);
  train_meta_add(mb, "norm.theta_norm", "%s", n->theta_norm_dataset ? "dataset" : "prior");
  train_meta_add_doubles(mb, "norm.theta_mean", n->theta_mean, JADE_N_THETA);
  train_meta_add_doubles(mb, "norm.theta_std", n->theta_std, JADE_N_THETA);
  double zeros[JADE_MAX_BINS] = {0};
  train_meta_add_doubles(mb, "norm.map_mean", zeros, n->n_bins);
  train_meta_add_doubles(mb, "norm.map_std", n->map_std, n->n_bins);
  train_meta_add_doubles(mb, "norm.noise", n->noise, n->n_bins);
  train_meta_add(mb, "norm.n_bins", "%d", n->n_bins);
  train_meta_add(mb, "norm.n_pix", "%d", n->n_pix);
  train_meta_add(mb, "norm.size_deg", "%.17g", n->size_deg);
  if (n->masked) { /* absent: the convergence-only condition of the first model files */
    train_meta_add(mb, "norm.condition", "%s", "masked");
    train_meta_add(mb, "norm.noise_ln_max", "%.17g", n->noise_ln_max);
  }
}

void train_meta_flow(metabuf *mb, const jade_flow_config *f) {
  train_meta_add(mb, "flow.t_mu", "%.9g", (double)f->mu);
  train_meta_add(mb, "flow.t_sigma", "%.9g", (double)f->sigma);
  train_meta_add(mb, "flow.t_eps", "%.9g", (double)f->t_eps);
}

jade_status train_meta_write(const char *path, const jade_st_tensor *t, int nt, metabuf *mb) {
  if (mb->failed) return jade_error(JADE_ERR_NOMEM, "%s: out of memory building metadata", path);
  jade_st_meta *m = malloc((size_t)(mb->n ? mb->n : 1) * sizeof *m);
  if (!m) return jade_error(JADE_ERR_NOMEM, "%s: out of memory", path);
  for (int i = 0; i < mb->n; i++) m[i] = (jade_st_meta){mb->k[i], mb->v[i]};
  jade_status st = jade_safetensors_write(path, t, nt, m, mb->n);
  free(m);
  return st;
}

jade_status train_meta_long(const jade_safetensors *st, const char *key, long lo, long hi, long *out) {
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
static jade_status train_meta_int(const jade_safetensors *st, const char *key, long lo, long hi, int *out) {
  long x;
  jade_status s = train_meta_long(st, key, lo, hi, &x);
  if (!s) *out = (int)x;
  return s;
}
jade_status train_meta_doubles(const jade_safetensors *st, const char *key, int n, double *out) {
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
static jade_status train_meta_float(const jade_safetensors *st, const char *key, float *out) {
  double x;
  jade_status s = train_meta_doubles(st, key, 1, &x);
  if (!s && !(fabs(x) <= FLT_MAX))
    return jade_error(JADE_ERR_FORMAT, "%s: metadata '%s' = %g does not fit in a float", jade_safetensors_path(st), key, x);
  if (!s) *out = (float)x;
  return s;
}

jade_status jade_model_config_from_meta(const jade_safetensors *st, jade_model_config *c) {
  memset(c, 0, sizeof *c);
  jade_status s;
  if ((s = train_meta_int(st, "model.img_size", 1, 1 << 20, &c->img_size)) ||
      (s = train_meta_int(st, "model.channels", 1, 1 << 16, &c->channels)) ||
      (s = train_meta_int(st, "model.cond_channels", 0, 1 << 16, &c->cond_channels)) ||
      (s = train_meta_int(st, "model.patch", 1, 1 << 16, &c->patch)) ||
      (s = train_meta_int(st, "model.cond_patch", 0, 1 << 16, &c->cond_patch)) ||
      (s = train_meta_int(st, "model.depth", 1, 1 << 16, &c->depth)) ||
      (s = train_meta_int(st, "model.width", 1, 1 << 20, &c->width)) ||
      (s = train_meta_int(st, "model.heads", 1, 1 << 16, &c->heads)) ||
      (s = train_meta_int(st, "model.n_cosmo_tokens", 1, 1 << 16, &c->n_cosmo_tokens)) ||
      (s = train_meta_int(st, "model.n_params", 1, 1 << 16, &c->n_params)) ||
      (s = train_meta_int(st, "model.mlp_hidden", 0, 1 << 24, &c->mlp_hidden)) ||
      (s = train_meta_int(st, "model.bottleneck", 1, 1 << 24, &c->bottleneck)) ||
      (jade_safetensors_meta(st, "model.cond_bottleneck") && /* absent in older files: = bottleneck */
       (s = train_meta_int(st, "model.cond_bottleneck", 0, 1 << 24, &c->cond_bottleneck))) ||
      (s = train_meta_int(st, "model.time_freq", 1, 1 << 20, &c->time_freq)) ||
      (s = train_meta_float(st, "model.max_period", &c->max_period)) ||
      (s = train_meta_float(st, "model.rope_theta", &c->rope_theta)) ||
      (s = train_meta_float(st, "model.norm_eps", &c->norm_eps)) ||
      (s = train_meta_float(st, "model.dropout", &c->dropout)))
    return s;
  if ((s = jade_model_config_check(c)))
    return jade_error_context(s, "%s: model configuration in metadata", jade_safetensors_path(st));
  return JADE_OK;
}

jade_status jade_norm_from_meta(const jade_safetensors *st, jade_norm *n) {
  memset(n, 0, sizeof *n);
  jade_status s;
  const char *tn;
  if ((s = train_meta_int(st, "norm.n_bins", 1, JADE_MAX_BINS, &n->n_bins)) ||
      (s = train_meta_int(st, "norm.n_pix", 1, 1 << 20, &n->n_pix)) ||
      (s = train_meta_doubles(st, "norm.size_deg", 1, &n->size_deg)) ||
      (s = train_meta_doubles(st, "norm.theta_mean", JADE_N_THETA, n->theta_mean)) ||
      (s = train_meta_doubles(st, "norm.theta_std", JADE_N_THETA, n->theta_std)) ||
      (s = train_meta_doubles(st, "norm.map_std", n->n_bins, n->map_std)) ||
      (s = train_meta_doubles(st, "norm.noise", n->n_bins, n->noise)) ||
      (s = jade_safetensors_meta_get(st, "norm.theta_norm", &tn)))
    return s;
  n->theta_norm_dataset = !strcmp(tn, "dataset");
  const char *cond = jade_safetensors_meta(st, "norm.condition");
  if (cond && strcmp(cond, "masked"))
    return jade_error(JADE_ERR_FORMAT, "%s: metadata norm.condition = '%s': expected 'masked' (or no such key)",
                      jade_safetensors_path(st), cond);
  n->masked = cond != NULL;
  if (n->masked && ((s = train_meta_doubles(st, "norm.noise_ln_max", 1, &n->noise_ln_max)) || !(n->noise_ln_max >= 0)))
    return s ? s : jade_error(JADE_ERR_FORMAT, "%s: metadata norm.noise_ln_max invalid", jade_safetensors_path(st));
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
  train_meta_add(&mb, "format", "%s", MODEL_FORMAT);
  train_meta_add(&mb, "weights", "%s", "ema");
  train_meta_add(&mb, "step", "%ld", step);
  train_meta_model(&mb, jade_model_get_config(m));
  train_meta_norm(&mb, norm);
  train_meta_flow(&mb, flow);
  train_meta_add(&mb, "config", "%s", config_text ? config_text : "");
  st = train_meta_write(path, t, jade_model_num_tensors(m), &mb);
  train_meta_free(&mb);
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
  if (jade_path_is_dir(path)) {
    snprintf(file, sizeof file, "%s/model.safetensors", path);
    if (!jade_path_exists(file))
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
  if (!st && mc.cond_channels != (tm->norm.masked ? 3 : 1) * mc.channels)
    st = jade_error(JADE_ERR_FORMAT, "%s: %d condition channels do not fit its %s condition of %d bins", file, mc.cond_channels,
                    tm->norm.masked ? "masked" : "convergence-only", mc.channels);
  if (!st && (mc.channels != tm->norm.n_bins || mc.img_size != tm->norm.n_pix || mc.n_params != JADE_N_THETA))
    st = jade_error(JADE_ERR_FORMAT, "%s: model geometry %dx%dx%d (P %d) does not match its normalisation (%d bins, %d pixels)",
                    file, mc.img_size, mc.img_size, mc.channels, mc.n_params, tm->norm.n_bins, tm->norm.n_pix);
  if (!st) st = train_meta_float(sf, "flow.t_mu", &tm->flow.mu);
  if (!st) st = train_meta_float(sf, "flow.t_sigma", &tm->flow.sigma);
  if (!st) st = train_meta_float(sf, "flow.t_eps", &tm->flow.t_eps);
  if (!st && !(tm->flow.t_eps > 0 && tm->flow.t_eps <= 1))
    st = jade_error(JADE_ERR_FORMAT, "%s: metadata flow.t_eps = %g out of (0, 1]", file, (double)tm->flow.t_eps);
  if (!st) st = train_meta_long(sf, "step", 0, 1L << 50, &tm->step);
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
