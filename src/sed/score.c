/* SDEs and MLP score networks (Song et al. 2021, ICLR, "Score-based generative modeling
 * through SDEs", Sec. 3.4 and App. B/C; flowfusion.diffusion.MLP layout), with forward-mode
 * Jacobian-vector products for PF-ODE divergences and reverse mode for denoising score
 * matching. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/safetensors.h"
#include "score_internal.h"

/* ---- SDEs (Song et al. 2021, eqs. 9-11 and App. B; sub-VP eq. 29) ---- */
void jade_sde_default(jade_sde *s, jade_sde_type type) {
  s->type = type;
  s->beta_min = 0.1;
  s->beta_max = 20.0;
  s->sigma_min = 0.01;
  s->sigma_max = 10.0;
  s->T = 1.0;
  s->eps = 1e-3;
}

const char *jade_sde_name(jade_sde_type t) {
  return t == JADE_SDE_VP ? "vp" : t == JADE_SDE_SUBVP ? "subvp" : t == JADE_SDE_VE ? "ve" : "?";
}

static double sde_beta(const jade_sde *s, double t) { return s->beta_min + (s->beta_max - s->beta_min) * t / s->T; }
/* int_0^t beta = beta_min t + (beta_max - beta_min) t^2 / (2T) */
static double sde_B(const jade_sde *s, double t) {
  return s->beta_min * t + 0.5 * (s->beta_max - s->beta_min) * t * t / s->T;
}
static double ve_sigma(const jade_sde *s, double t) {
  return s->sigma_min * pow(s->sigma_max / s->sigma_min, t / s->T);
}

double jade_sde_drift_coef(const jade_sde *s, double t) {
  return s->type == JADE_SDE_VE ? 0.0 : -0.5 * sde_beta(s, t);
}

double jade_sde_g2(const jade_sde *s, double t) {
  switch (s->type) {
    case JADE_SDE_VP: return sde_beta(s, t);
    case JADE_SDE_SUBVP: return sde_beta(s, t) * -expm1(-2.0 * sde_B(s, t));
    case JADE_SDE_VE: {
      double sg = ve_sigma(s, t);
      return sg * sg * 2.0 * log(s->sigma_max / s->sigma_min) / s->T;
    }
  }
  return NAN;
}

void jade_sde_marginal(const jade_sde *s, double t, double *m, double *std) {
  switch (s->type) {
    case JADE_SDE_VP: {
      double B = sde_B(s, t);
      *m = exp(-0.5 * B);
      *std = sqrt(-expm1(-B));
      return;
    }
    case JADE_SDE_SUBVP: {
      double B = sde_B(s, t);
      *m = exp(-0.5 * B);
      *std = -expm1(-B);
      return;
    }
    case JADE_SDE_VE:
      *m = 1.0;
      *std = ve_sigma(s, t);
      return;
  }
  *m = *std = NAN;
}

double jade_sde_prior_std(const jade_sde *s) {
  if (s->type == JADE_SDE_VE) return s->sigma_max;
  double m, sd;
  jade_sde_marginal(s, s->T, &m, &sd);
  return s->type == JADE_SDE_SUBVP ? sd : 1.0;
}

/* ---- score network ---- */
void jade_sed_score_free(jade_sed_score *s) {
  if (!s) return;
  sed_mlp_free(&s->net);
  free(s->W_emb);
  free(s->shift);
  free(s->scale);
  free(s->cshift);
  free(s->cscale);
  free(s);
}

static jade_status score_alloc(const jade_sed_score_config *cfg, jade_sed_score **out) {
  *out = NULL;
  if (cfg->dim < 1 || cfg->dim > 1024 || cfg->n_cond < 0 || cfg->n_cond > 1024 || cfg->n_freq < 1 ||
      cfg->n_freq > 256 || cfg->n_hidden < 1 || cfg->n_hidden > SED_MAX_LAYERS - 1 || cfg->width < 1 ||
      cfg->width > 8192)
    return jade_error(JADE_ERR_INVALID,
                      "score network: bad shape (dim %d, n_cond %d, n_freq %d, n_hidden %d, width %d)",
                      cfg->dim, cfg->n_cond, cfg->n_freq, cfg->n_hidden, cfg->width);
  if (cfg->act != JADE_ACT_TANH && cfg->act != JADE_ACT_SILU)
    return jade_error(JADE_ERR_INVALID, "score network: activation %d unknown", (int)cfg->act);
  jade_sed_score *s = jade_calloc(1, sizeof *s);
  if (!s) return JADE_ERR_NOMEM;
  s->cfg = *cfg;
  s->pi = M_PI;
  int dims[SED_MAX_LAYERS + 1];
  sed_act act[SED_MAX_LAYERS];
  dims[0] = 2 * cfg->n_freq + cfg->dim + cfg->n_cond;
  for (int l = 1; l <= cfg->n_hidden; l++) dims[l] = cfg->width;
  dims[cfg->n_hidden + 1] = cfg->dim;
  for (int l = 0; l < cfg->n_hidden; l++) act[l] = cfg->act == JADE_ACT_TANH ? SED_ACT_TANH : SED_ACT_SILU;
  act[cfg->n_hidden] = SED_ACT_LINEAR;
  s->W_emb = jade_calloc((size_t)cfg->n_freq, sizeof(double));
  s->shift = jade_calloc((size_t)cfg->dim, sizeof(double));
  s->scale = jade_calloc((size_t)cfg->dim, sizeof(double));
  s->cshift = jade_calloc((size_t)cfg->n_cond + 1, sizeof(double));
  s->cscale = jade_calloc((size_t)cfg->n_cond + 1, sizeof(double));
  if (!s->W_emb || !s->shift || !s->scale || !s->cshift || !s->cscale ||
      !sed_mlp_alloc(&s->net, cfg->n_hidden + 1, dims, act)) {
    jade_sed_score_free(s);
    return JADE_ERR_NOMEM;
  }
  for (int j = 0; j < cfg->dim; j++) s->scale[j] = 1.0;
  for (int j = 0; j < cfg->n_cond; j++) s->cscale[j] = 1.0;
  *out = s;
  return JADE_OK;
}

jade_status score_alloc_public(const jade_sed_score_config *cfg, jade_sed_score **out) {
  return score_alloc(cfg, out);
}

jade_status jade_sed_score_create(const jade_sed_score_config *cfg, uint64_t seed, jade_sed_score **out) {
  jade_status st = score_alloc(cfg, out);
  if (st) return st;
  jade_sed_score *s = *out;
  uint64_t idx = 0, stream = JADE_STREAM(JADE_RNG_INIT, 0x5ed);
  for (int k = 0; k < cfg->n_freq; k++) s->W_emb[k] = cfg->freq_std * jade_rng_normal(seed, stream, idx++);
  for (int l = 0; l < s->net.n_layers; l++) {
    /* PyTorch nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases */
    double bound = 1.0 / sqrt((double)s->net.dims[l]);
    size_t nw = (size_t)s->net.dims[l] * s->net.dims[l + 1];
    for (size_t i = 0; i < nw; i++) s->net.W[l][i] = bound * (2.0 * jade_rng_uniform(seed, stream, idx++) - 1.0);
    for (int i = 0; i < s->net.dims[l + 1]; i++)
      s->net.b[l][i] = bound * (2.0 * jade_rng_uniform(seed, stream, idx++) - 1.0);
  }
  return JADE_OK;
}

const jade_sed_score_config *jade_sed_score_get_config(const jade_sed_score *s) { return &s->cfg; }
double *jade_sed_score_shift(jade_sed_score *s) { return s->shift; }
double *jade_sed_score_scale(jade_sed_score *s) { return s->scale; }
double *jade_sed_score_cond_shift(jade_sed_score *s) { return s->cshift; }
double *jade_sed_score_cond_scale(jade_sed_score *s) { return s->cscale; }

jade_status jade_sed_noise_model_load(const char *path, jade_sed_score **out) {
  *out = NULL;
  jade_safetensors *st;
  jade_status s = jade_safetensors_read(path, &st);
  if (s) return s;
  jade_sed_score_config cfg = {.dim = 26, .n_cond = 26, .n_freq = 4, .n_hidden = 5, .width = 256,
                               .act = JADE_ACT_TANH, .no_sigma = 1, .freq_std = 16.0};
  jade_sde_default(&cfg.sde, JADE_SDE_VP); /* noise_model.json: VPSDE 0.1 -> 20, eps 1e-3, T 1 */
  jade_sed_score *m;
  if ((s = score_alloc(&cfg, &m))) {
    jade_safetensors_free(st);
    return s;
  }
  m->pi = 3.1415927410125732; /* flowfusion's float32 pi buffer */
  char key[64];
  if ((s = sed_st_copy(st, "time_embedding_W", 1, 4, 0, m->W_emb))) goto fail;
  for (int l = 0; l < m->net.n_layers; l++) {
    snprintf(key, sizeof key, "NN.%d.weight", l);
    if ((s = sed_st_copy(st, key, 2, (size_t)m->net.dims[l + 1], (size_t)m->net.dims[l], m->net.W[l]))) goto fail;
    snprintf(key, sizeof key, "NN.%d.bias", l);
    if ((s = sed_st_copy(st, key, 1, (size_t)m->net.dims[l + 1], 0, m->net.b[l]))) goto fail;
  }
  if ((s = sed_st_copy(st, "shift", 1, 26, 0, m->shift)) || (s = sed_st_copy(st, "scale", 1, 26, 0, m->scale)) ||
      (s = sed_st_copy(st, "conditional_shift", 1, 26, 0, m->cshift)) ||
      (s = sed_st_copy(st, "conditional_scale", 1, 26, 0, m->cscale)))
    goto fail;
  jade_safetensors_free(st);
  *out = m;
  return JADE_OK;
fail:
  jade_error_context(s, "noise model %s", path);
  jade_safetensors_free(st);
  jade_sed_score_free(m);
  return s;
}

/* Input rows h0 = [sin(2 pi W t), cos(2 pi W t), x, c] */
static void score_input(const jade_sed_score *s, size_t n, const double *t, const double *x, const double *c,
                        double *h0) {
  int nf = s->cfg.n_freq, d = s->cfg.dim, nc = s->cfg.n_cond, in = s->net.dims[0];
  for (size_t i = 0; i < n; i++) {
    double *h = h0 + i * in;
    for (int k = 0; k < nf; k++) {
      double tp = t[i] * s->W_emb[k] * 2.0 * s->pi;
      h[k] = sin(tp);
      h[nf + k] = cos(tp);
    }
    memcpy(h + 2 * nf, x + i * d, (size_t)d * sizeof(double));
    if (nc) memcpy(h + 2 * nf + d, c + i * nc, (size_t)nc * sizeof(double));
  }
}

/* 1/std(t) if the network predicts -eps, else 1 */
static double out_factor(const jade_sed_score *s, double t) {
  if (s->cfg.no_sigma) return 1.0;
  double m, sd;
  jade_sde_marginal(&s->cfg.sde, t, &m, &sd);
  return 1.0 / sd;
}

size_t sed_score_work_size(const jade_sed_score *s, size_t n, int K) {
  size_t H = (size_t)sed_mlp_max_width(&s->net);
  size_t L = (size_t)s->net.n_layers;
  /* h0, then z and h of the L-1 hidden layers, then two tangent buffers */
  return n * (size_t)s->net.dims[0] + 2 * (L - 1) * n * H + 2 * n * (size_t)(K > 0 ? K : 0) * H;
}

static double act_deriv(sed_act a, double z, double h) {
  if (a == SED_ACT_TANH) return 1.0 - h * h;
  double sg = sed_sigmoid(z); /* SiLU' = s (1 + z (1 - s)) */
  return sg * (1.0 + z * (1.0 - sg));
}

jade_status sed_score_forward(const jade_sed_score *s, size_t n, const double *t, const double *x,
                              const double *c, int K, const double *V, double *score, double *div,
                              double *work) {
  const sed_mlp *m = &s->net;
  int L = m->n_layers, d = s->cfg.dim;
  size_t H = (size_t)sed_mlp_max_width(m);
  double *h0 = work;
  double *zs = h0 + n * (size_t)m->dims[0];     /* z_l: (n x H) each, l < L-1 */
  double *hs = zs + (size_t)(L - 1) * n * H;     /* h_l = act(z_l) */
  double *ta = hs + (size_t)(L - 1) * n * H, *tb = ta + n * (size_t)(K > 0 ? K : 0) * H;
  score_input(s, n, t, x, c, h0);
  const double *in = h0;
  for (int l = 0; l < L - 1; l++) {
    int w = m->dims[l + 1];
    double *z = zs + (size_t)l * n * H, *h = hs + (size_t)l * n * H;
    sed_linear(n, m->dims[l], w, in, m->W[l], m->b[l], z);
    memcpy(h, z, n * (size_t)w * sizeof(double));
    sed_act_apply(m->act[l], NULL, NULL, n, w, h);
    in = h;
  }
  sed_linear(n, m->dims[L - 1], d, in, m->W[L - 1], m->b[L - 1], score);
  for (size_t i = 0; i < n; i++) {
    double f = out_factor(s, t[i]);
    if (f != 1.0)
      for (int j = 0; j < d; j++) score[i * d + j] *= f;
  }
  if (!div) return JADE_OK;
  /* forward mode: the tangents of the first pre-activation are V W0[:, x columns]^T */
  size_t nK = n * (size_t)K;
  int xoff = 2 * s->cfg.n_freq;
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nK, m->dims[1], d, 1.0, V, d, m->W[0] + xoff,
              m->dims[0], 0.0, ta, m->dims[1]);
  for (int l = 0; l < L - 1; l++) {
    int w = m->dims[l + 1], wn = m->dims[l + 2];
    const double *z = zs + (size_t)l * n * H, *h = hs + (size_t)l * n * H;
    for (size_t i = 0; i < n; i++)
      for (int u = 0; u < w; u++) {
        double da = act_deriv(m->act[l], z[i * w + u], h[i * w + u]);
        for (int k = 0; k < K; k++) ta[(i * K + k) * w + u] *= da;
      }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nK, wn, w, 1.0, ta, w, m->W[l + 1], w, 0.0, tb, wn);
    double *tmp = ta;
    ta = tb;
    tb = tmp;
  }
  for (size_t i = 0; i < n; i++) {
    double f = out_factor(s, t[i]), acc = 0.0;
    for (int k = 0; k < K; k++)
      for (int j = 0; j < d; j++) acc += V[(i * K + k) * d + j] * ta[(i * K + k) * d + j];
    div[i] = f * acc;
  }
  return JADE_OK;
}

#define SCORE_CHUNK 128
jade_status jade_sed_score_eval(const jade_sed_score *s, size_t n, const double *t, const double *x,
                                const double *c, double *out) {
  if (s->cfg.n_cond && !c) return jade_error(JADE_ERR_INVALID, "score network: conditionals missing");
  size_t chunk = n < SCORE_CHUNK ? n : SCORE_CHUNK;
  if (!chunk) return JADE_OK;
  double *work = jade_alloc(sed_score_work_size(s, chunk, 0) * sizeof(double));
  if (!work) return JADE_ERR_NOMEM;
  int d = s->cfg.dim, nc = s->cfg.n_cond;
  for (size_t i0 = 0; i0 < n; i0 += chunk) {
    size_t m = n - i0 < chunk ? n - i0 : chunk;
    sed_score_forward(s, m, t + i0, x + i0 * d, nc ? c + i0 * nc : NULL, 0, NULL, out + i0 * d, NULL, work);
  }
  free(work);
  return JADE_OK;
}

jade_status jade_sed_score_field(void *ctx, size_t n, const size_t *idx, const double *t, const double *x,
                                 int K, const double *V, double *score, double *div) {
  const jade_sed_score_field_ctx *fc = ctx;
  const jade_sed_score *s = fc->score;
  int d = s->cfg.dim, nc = s->cfg.n_cond;
  if (nc && !fc->cond) return jade_error(JADE_ERR_INVALID, "score field: conditionals missing");
  size_t chunk = n < SCORE_CHUNK ? n : SCORE_CHUNK;
  if (!chunk) return JADE_OK;
  double *work = jade_alloc(sed_score_work_size(s, chunk, div ? K : 0) * sizeof(double));
  double *cb = nc ? jade_alloc(chunk * nc * sizeof(double)) : NULL;
  if (!work || (nc && !cb)) {
    free(work);
    free(cb);
    return JADE_ERR_NOMEM;
  }
  for (size_t i0 = 0; i0 < n; i0 += chunk) {
    size_t m = n - i0 < chunk ? n - i0 : chunk;
    for (size_t i = 0; i < m && nc; i++) memcpy(cb + i * nc, fc->cond + idx[i0 + i] * nc, (size_t)nc * sizeof(double));
    sed_score_forward(s, m, t + i0, x + i0 * d, cb, div ? K : 0, div ? V + i0 * (size_t)K * d : NULL,
                      score + i0 * d, div ? div + i0 : NULL, work);
  }
  free(work);
  free(cb);
  return JADE_OK;
}
