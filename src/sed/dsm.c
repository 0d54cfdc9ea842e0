/* Denoising score matching (Vincent 2011; Song et al. 2021, ICLR, eq. 7 with lambda(t) = std(t)^2:
 * E |std s(m x0 + std eps, t) + eps|^2), reverse-mode gradients of the score MLP, Adam (Kingma &
 * Ba 2015) with a cosine learning-rate decay, and jade's safetensors format for score models. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/safetensors.h"
#include "score_internal.h"

size_t jade_sed_score_n_params(const jade_sed_score *s) { return sed_mlp_n_params(&s->net); }
void jade_sed_score_get_params(const jade_sed_score *s, double *p) { sed_mlp_get_params(&s->net, p); }
void jade_sed_score_set_params(jade_sed_score *s, const double *p) { sed_mlp_set_params(&s->net, p); }

/* Loss and gradient for one batch; work from sed_score_work_size(s, B, 0) plus 3 B H. */
static jade_status dsm_batch(const jade_sed_score *s, int B, int Btot, const double *x0, const double *t,
                             const double *noise, double *loss, double *grad, double *work, double *xt, double *sc,
                             double *bw) {
  const sed_mlp *m = &s->net;
  int d = s->cfg.dim, L = m->n_layers;
  size_t H = (size_t)sed_mlp_max_width(m);
  double *stdv = bw, *dcur = bw + B, *dnext = dcur + (size_t)B * H;
  for (int i = 0; i < B; i++) {
    double mc, sd;
    jade_sde_marginal(&s->cfg.sde, t[i], &mc, &sd);
    stdv[i] = sd;
    for (int j = 0; j < d; j++) xt[i * d + j] = mc * x0[i * d + j] + sd * noise[i * d + j];
  }
  sed_score_forward(s, (size_t)B, t, xt, NULL, 0, NULL, sc, NULL, work);
  double acc = 0;
  for (int i = 0; i < B; i++) {
    /* raw output = score / factor, factor = 1/std (predicting -eps) or 1 (no_sigma) */
    double factor = s->cfg.no_sigma ? 1.0 : 1.0 / stdv[i];
    for (int j = 0; j < d; j++) {
      double r = stdv[i] * sc[i * d + j] + noise[i * d + j];
      acc += r * r;
      dcur[(size_t)i * d + j] = 2.0 * stdv[i] * r / Btot * factor; /* dL / d raw output */
    }
  }
  *loss = acc / Btot;
  if (!grad) return JADE_OK;
  /* reverse mode through the layers; params per layer: W (out x in), then b */
  const double *h0 = work;
  const double *zs = h0 + (size_t)B * m->dims[0], *hs = zs + (size_t)(L - 1) * B * H;
  size_t off[SED_MAX_LAYERS];
  size_t o = 0;
  for (int l = 0; l < L; l++) {
    off[l] = o;
    o += (size_t)m->dims[l + 1] * (m->dims[l] + 1);
  }
  for (int l = L - 1; l >= 0; l--) {
    int in = m->dims[l], out = m->dims[l + 1];
    const double *hin = l == 0 ? h0 : hs + (size_t)(l - 1) * B * H;
    double *gW = grad + off[l], *gb = gW + (size_t)out * in;
    /* dcur: dL/dz_l (B x out) */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1.0, dcur, out, hin, in, 0.0, gW, in);
    for (int u = 0; u < out; u++) gb[u] = 0;
    for (int i = 0; i < B; i++)
      for (int u = 0; u < out; u++) gb[u] += dcur[(size_t)i * out + u];
    if (l == 0) break;
    /* dL/dh_{l-1} = dcur W_l, then through the activation of layer l-1 */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, out, 1.0, dcur, out, m->W[l], in, 0.0, dnext, in);
    const double *z = zs + (size_t)(l - 1) * B * H, *h = hs + (size_t)(l - 1) * B * H;
    for (size_t q = 0; q < (size_t)B * in; q++) {
      double da;
      if (m->act[l - 1] == SED_ACT_TANH) da = 1.0 - h[q] * h[q];
      else {
        double sg = sed_sigmoid(z[q]);
        da = sg * (1.0 + z[q] * (1.0 - sg));
      }
      dnext[q] *= da;
    }
    double *tmp = dcur;
    dcur = dnext;
    dnext = tmp;
  }
  return JADE_OK;
}

static size_t dsm_bw_size(const jade_sed_score *s, int B) {
  size_t H = (size_t)sed_mlp_max_width(&s->net);
  return (size_t)B + 2 * (size_t)B * H;
}

/* The batch is cut into DSM_CHUNKS fixed chunks (whatever the thread count), each chunk's loss
 * and gradient computed in parallel (BLAS then runs single-threaded inside the region: tiny
 * products) and summed in chunk order: results do not depend on the number of threads. */
#define DSM_CHUNKS 8
typedef struct {
  int cap;
  double *work, *xt, *sc, *bw, *g;
} dsm_ws;

static void dsm_ws_free(dsm_ws *w) {
  for (int c = 0; c < DSM_CHUNKS; c++) {
    free(w[c].work);
    free(w[c].xt);
    free(w[c].sc);
    free(w[c].bw);
    free(w[c].g);
  }
}

static jade_status dsm_ws_alloc(const jade_sed_score *s, int B, dsm_ws *w) {
  memset(w, 0, DSM_CHUNKS * sizeof *w);
  int cap = (B + DSM_CHUNKS - 1) / DSM_CHUNKS, d = s->cfg.dim;
  size_t P = jade_sed_score_n_params(s);
  for (int c = 0; c < DSM_CHUNKS; c++) {
    w[c].cap = cap;
    w[c].work = jade_alloc(sed_score_work_size(s, (size_t)cap, 0) * sizeof(double));
    w[c].xt = jade_alloc((size_t)cap * d * sizeof(double));
    w[c].sc = jade_alloc((size_t)cap * d * sizeof(double));
    w[c].bw = jade_alloc(dsm_bw_size(s, cap) * sizeof(double));
    w[c].g = jade_alloc(P * sizeof(double));
    if (!w[c].work || !w[c].xt || !w[c].sc || !w[c].bw || !w[c].g) {
      dsm_ws_free(w);
      return JADE_ERR_NOMEM;
    }
  }
  return JADE_OK;
}

static jade_status dsm_chunked(const jade_sed_score *s, int B, const double *x0, const double *t, const double *noise,
                               double *loss, double *grad, dsm_ws *w) {
  int d = s->cfg.dim, cap = w[0].cap;
  double part[DSM_CHUNKS] = {0};
  size_t P = jade_sed_score_n_params(s);
  /* threads only when the chunks are big enough to pay for the fork/join */
  int par = (size_t)B * (size_t)sed_mlp_max_width(&s->net) >= 16384;
#pragma omp parallel for schedule(static, 1) if (par)
  for (int c = 0; c < DSM_CHUNKS; c++) {
    int i0 = c * cap, nb = B - i0 < cap ? B - i0 : cap;
    if (nb <= 0) continue;
    dsm_batch(s, nb, B, x0 + (size_t)i0 * d, t + i0, noise + (size_t)i0 * d, &part[c], grad ? w[c].g : NULL,
              w[c].work, w[c].xt, w[c].sc, w[c].bw);
  }
  double L = 0;
  if (grad) memset(grad, 0, P * sizeof(double));
  for (int c = 0; c < DSM_CHUNKS; c++) {
    if (c * cap >= B) break;
    L += part[c];
    if (grad)
      for (size_t q = 0; q < P; q++) grad[q] += w[c].g[q];
  }
  *loss = L;
  return JADE_OK;
}

jade_status jade_dsm_loss(const jade_sed_score *s, int B, const double *x0, const double *t, const double *noise,
                          double *loss, double *grad) {
  if (s->cfg.n_cond) return jade_error(JADE_ERR_INVALID, "DSM: conditional score models are not trained here");
  if (B < 1) return jade_error(JADE_ERR_INVALID, "DSM: batch %d", B);
  dsm_ws w[DSM_CHUNKS];
  jade_status st = dsm_ws_alloc(s, B, w);
  if (st) return st;
  st = dsm_chunked(s, B, x0, t, noise, loss, grad, w);
  dsm_ws_free(w);
  return st;
}

void jade_dsm_options_default(jade_dsm_options *o) {
  o->steps = 20000;
  o->batch = 256;
  o->lr = 1e-3;
  o->weight_decay = 0.0;
  o->seed = 1;
  o->verbose = 0;
}

jade_status jade_dsm_train(jade_sed_score *s, const double *y, size_t n, const jade_dsm_options *o,
                           double *loss_out) {
  int d = s->cfg.dim, B = o->batch;
  if (s->cfg.n_cond) return jade_error(JADE_ERR_INVALID, "DSM: conditional score models are not trained here");
  if (n < 2 || B < 1 || o->steps < 1 || !(o->lr > 0))
    return jade_error(JADE_ERR_INVALID, "DSM: bad options (rows %zu, batch %d, steps %ld, lr %g)", n, B, o->steps,
                      o->lr);
  for (size_t q = 0; q < n * (size_t)d; q++)
    if (!isfinite(y[q])) return jade_error(JADE_ERR_NUMERIC, "DSM: training row %zu is not finite", q / d);
  /* normalisation: column means and standard deviations */
  for (int j = 0; j < d; j++) {
    double mu = 0, v = 0;
    for (size_t i = 0; i < n; i++) mu += y[i * d + j];
    mu /= (double)n;
    for (size_t i = 0; i < n; i++) v += (y[i * d + j] - mu) * (y[i * d + j] - mu);
    v = sqrt(v / (double)(n - 1));
    s->shift[j] = mu;
    s->scale[j] = v > 0 ? v : 1.0;
  }
  size_t P = jade_sed_score_n_params(s);
  double *p = jade_alloc(P * sizeof(double)), *g = jade_alloc(P * sizeof(double));
  double *m1 = jade_calloc(P, sizeof(double)), *m2 = jade_calloc(P, sizeof(double));
  double *x0 = jade_alloc((size_t)B * d * sizeof(double)), *tt = jade_alloc((size_t)B * sizeof(double));
  double *nz = jade_alloc((size_t)B * d * sizeof(double));
  dsm_ws w[DSM_CHUNKS];
  jade_status st = dsm_ws_alloc(s, B, w);
  if (st) {
    free(p);
    free(g);
    free(m1);
    free(m2);
    free(x0);
    free(tt);
    free(nz);
    return st;
  }
  if (!p || !g || !m1 || !m2 || !x0 || !tt || !nz) {
    st = JADE_ERR_NOMEM;
    goto done;
  }
  jade_sed_score_get_params(s, p);
  const uint64_t stream = JADE_STREAM(JADE_RNG_TRAIN, 0x5ed);
  double recent = 0;
  long n_recent = 0;
  double t_start = jade_time_now();
  for (long step = 0; step < o->steps; step++) {
    /* per step: B row indices, B times, B d normals at fixed counter offsets */
    uint64_t base = (uint64_t)step << 32;
    for (int i = 0; i < B; i++) {
      size_t r = (size_t)(jade_rng_uniform(o->seed, stream, base + (uint64_t)i) * (double)n);
      if (r >= n) r = n - 1;
      for (int j = 0; j < d; j++) x0[i * d + j] = (y[r * d + j] - s->shift[j]) / s->scale[j];
      tt[i] = s->cfg.sde.eps + (s->cfg.sde.T - s->cfg.sde.eps) * jade_rng_uniform(o->seed, stream, base + (uint64_t)(B + i));
    }
    jade_rng_normal_fill(o->seed, stream, base + (uint64_t)(2 * B) + 0x10000000ull, (size_t)B * d, nz);
    double loss;
    if ((st = dsm_chunked(s, B, x0, tt, nz, &loss, g, w))) goto done;
    if (!isfinite(loss)) {
      st = jade_error(JADE_ERR_NUMERIC, "DSM: loss is not finite at step %ld", step);
      goto done;
    }
    if (step >= o->steps - 1000) {
      recent += loss;
      n_recent++;
    }
    double lr = o->lr * (0.05 + 0.95 * 0.5 * (1.0 + cos(M_PI * (double)step / (double)o->steps)));
    sed_adam_step(P, p, g, m1, m2, lr, step, o->weight_decay);
    jade_sed_score_set_params(s, p);
    if (o->verbose && (step + 1) % 1000 == 0) {
      char el[32];
      jade_format_duration(jade_time_now() - t_start, el, sizeof el);
      fprintf(stderr, "dsm: step %ld/%ld loss %.4f lr %.2e (%s)\n", step + 1, o->steps, loss, lr, el);
    }
  }
  if (loss_out) *loss_out = n_recent ? recent / (double)n_recent : NAN;
done:
  free(p);
  free(g);
  free(m1);
  free(m2);
  free(x0);
  free(tt);
  free(nz);
  dsm_ws_free(w);
  return st;
}

/* ---- jade's score-model files ---- */
jade_status jade_sed_score_save(const jade_sed_score *s, const char *path, const char *description) {
  const jade_sed_score_config *c = &s->cfg;
  int L = s->net.n_layers;
  jade_st_tensor t[2 * SED_MAX_LAYERS + 6];
  char names[2 * SED_MAX_LAYERS][32];
  int nt = 0;
  t[nt++] = (jade_st_tensor){.name = "time_W", .dtype = JADE_F64, .ndim = 1, .shape = {(size_t)c->n_freq}, .data = s->W_emb};
  for (int l = 0; l < L; l++) {
    snprintf(names[2 * l], 32, "NN.%d.weight", l);
    snprintf(names[2 * l + 1], 32, "NN.%d.bias", l);
    t[nt++] = (jade_st_tensor){.name = names[2 * l], .dtype = JADE_F64, .ndim = 2,
                               .shape = {(size_t)s->net.dims[l + 1], (size_t)s->net.dims[l]}, .data = s->net.W[l]};
    t[nt++] = (jade_st_tensor){.name = names[2 * l + 1], .dtype = JADE_F64, .ndim = 1,
                               .shape = {(size_t)s->net.dims[l + 1]}, .data = s->net.b[l]};
  }
  t[nt++] = (jade_st_tensor){.name = "shift", .dtype = JADE_F64, .ndim = 1, .shape = {(size_t)c->dim}, .data = s->shift};
  t[nt++] = (jade_st_tensor){.name = "scale", .dtype = JADE_F64, .ndim = 1, .shape = {(size_t)c->dim}, .data = s->scale};
  if (c->n_cond) {
    t[nt++] = (jade_st_tensor){.name = "cond_shift", .dtype = JADE_F64, .ndim = 1, .shape = {(size_t)c->n_cond}, .data = s->cshift};
    t[nt++] = (jade_st_tensor){.name = "cond_scale", .dtype = JADE_F64, .ndim = 1, .shape = {(size_t)c->n_cond}, .data = s->cscale};
  }
  char v[16][40];
  snprintf(v[0], 40, "%d", c->dim);
  snprintf(v[1], 40, "%d", c->n_cond);
  snprintf(v[2], 40, "%d", c->n_freq);
  snprintf(v[3], 40, "%d", c->n_hidden);
  snprintf(v[4], 40, "%d", c->width);
  snprintf(v[5], 40, "%s", c->act == JADE_ACT_TANH ? "tanh" : "silu");
  snprintf(v[6], 40, "%d", c->no_sigma);
  snprintf(v[7], 40, "%s", jade_sde_name(c->sde.type));
  snprintf(v[8], 40, "%.17g", c->sde.beta_min);
  snprintf(v[9], 40, "%.17g", c->sde.beta_max);
  snprintf(v[10], 40, "%.17g", c->sde.sigma_min);
  snprintf(v[11], 40, "%.17g", c->sde.sigma_max);
  snprintf(v[12], 40, "%.17g", c->sde.T);
  snprintf(v[13], 40, "%.17g", c->sde.eps);
  snprintf(v[14], 40, "%.17g", s->pi);
  snprintf(v[15], 40, "%.17g", c->freq_std);
  jade_st_meta meta[] = {{"format", "jade-sed-score-1"}, {"dim", v[0]}, {"n_cond", v[1]}, {"n_freq", v[2]},
                         {"n_hidden", v[3]}, {"width", v[4]}, {"activation", v[5]}, {"no_sigma", v[6]},
                         {"sde", v[7]}, {"beta_min", v[8]}, {"beta_max", v[9]}, {"sigma_min", v[10]},
                         {"sigma_max", v[11]}, {"T", v[12]}, {"eps", v[13]}, {"pi", v[14]}, {"freq_std", v[15]},
                         {"description", description ? description : ""}};
  return jade_safetensors_write(path, t, nt, meta, (int)(sizeof meta / sizeof meta[0]));
}

static jade_status meta_num(const jade_safetensors *st, const char *key, double *out) {
  const char *v;
  jade_status s = jade_safetensors_meta_get(st, key, &v);
  if (s) return s;
  char *end;
  *out = strtod(v, &end);
  if (end == v || *end || !isfinite(*out))
    return jade_error(JADE_ERR_FORMAT, "%s: metadata %s = '%s' is not a number", jade_safetensors_path(st), key, v);
  return JADE_OK;
}

jade_status jade_sed_score_load(const char *path, jade_sed_score **out) {
  *out = NULL;
  jade_safetensors *st;
  jade_status s = jade_safetensors_read(path, &st);
  if (s) return s;
  const char *fmt = jade_safetensors_meta(st, "format"), *act, *sde;
  jade_sed_score_config c;
  memset(&c, 0, sizeof c);
  double v[15];
  const char *keys[15] = {"dim", "n_cond", "n_freq", "n_hidden", "width", "no_sigma", "beta_min", "beta_max",
                          "sigma_min", "sigma_max", "T", "eps", "pi", "freq_std", NULL};
  jade_sed_score *m = NULL;
  if (!fmt || strcmp(fmt, "jade-sed-score-1")) {
    s = jade_error(JADE_ERR_FORMAT, "%s: not a jade score model (metadata format = '%s')", path, fmt ? fmt : "");
    goto fail;
  }
  for (int k = 0; keys[k]; k++)
    if ((s = meta_num(st, keys[k], &v[k]))) goto fail;
  if ((s = jade_safetensors_meta_get(st, "activation", &act)) || (s = jade_safetensors_meta_get(st, "sde", &sde)))
    goto fail;
  c.dim = (int)v[0];
  c.n_cond = (int)v[1];
  c.n_freq = (int)v[2];
  c.n_hidden = (int)v[3];
  c.width = (int)v[4];
  c.no_sigma = v[5] != 0;
  c.act = !strcmp(act, "tanh") ? JADE_ACT_TANH : !strcmp(act, "silu") ? JADE_ACT_SILU : (jade_sed_activation)-1;
  c.sde.type = !strcmp(sde, "vp") ? JADE_SDE_VP : !strcmp(sde, "subvp") ? JADE_SDE_SUBVP : !strcmp(sde, "ve") ? JADE_SDE_VE : (jade_sde_type)-1;
  if ((int)c.sde.type < 0 || (int)c.act < 0) {
    s = jade_error(JADE_ERR_FORMAT, "%s: unknown sde '%s' or activation '%s'", path, sde, act);
    goto fail;
  }
  c.sde.beta_min = v[6];
  c.sde.beta_max = v[7];
  c.sde.sigma_min = v[8];
  c.sde.sigma_max = v[9];
  c.sde.T = v[10];
  c.sde.eps = v[11];
  c.freq_std = v[13];
  if (!(c.sde.T > c.sde.eps && c.sde.eps > 0)) {
    s = jade_error(JADE_ERR_FORMAT, "%s: bad SDE times (eps %g, T %g)", path, c.sde.eps, c.sde.T);
    goto fail;
  }
  if ((s = score_alloc_public(&c, &m))) goto fail;
  m->pi = v[12];
  char key[32];
  if ((s = sed_st_copy(st, "time_W", 1, (size_t)c.n_freq, 0, m->W_emb))) goto fail;
  for (int l = 0; l < m->net.n_layers; l++) {
    snprintf(key, sizeof key, "NN.%d.weight", l);
    if ((s = sed_st_copy(st, key, 2, (size_t)m->net.dims[l + 1], (size_t)m->net.dims[l], m->net.W[l]))) goto fail;
    snprintf(key, sizeof key, "NN.%d.bias", l);
    if ((s = sed_st_copy(st, key, 1, (size_t)m->net.dims[l + 1], 0, m->net.b[l]))) goto fail;
  }
  if ((s = sed_st_copy(st, "shift", 1, (size_t)c.dim, 0, m->shift)) ||
      (s = sed_st_copy(st, "scale", 1, (size_t)c.dim, 0, m->scale)))
    goto fail;
  if (c.n_cond && ((s = sed_st_copy(st, "cond_shift", 1, (size_t)c.n_cond, 0, m->cshift)) ||
                   (s = sed_st_copy(st, "cond_scale", 1, (size_t)c.n_cond, 0, m->cscale))))
    goto fail;
  for (int j = 0; j < c.dim; j++)
    if (!(m->scale[j] > 0)) {
      s = jade_error(JADE_ERR_FORMAT, "%s: scale[%d] = %g is not positive", path, j, m->scale[j]);
      goto fail;
    }
  jade_safetensors_free(st);
  *out = m;
  return JADE_OK;
fail:
  jade_safetensors_free(st);
  jade_sed_score_free(m);
  return s;
}
