/* The JADE transformer: forward and backward (spec/model.md; architecture facts in
 * reference/jade_paper_config.md §4, read from b-remy/jade nn_hybrid.py @ d858997).
 *
 * Sequence per sample: [K cosmology | Tc condition | Tf field] tokens of width D.
 *   field:     z_t (C,H,W) -> patches (Tf, p*p*C) -> linear -> bneck (no bias) -> linear -> D,
 *              + fixed 2-D sin-cos position embedding
 *   condition: cond (Cc,H,W) -> its own bottleneck embedding (patch pc, width cond_bottleneck),
 *              no absolute position
 *   cosmology: theta_t (P) -> linear P -> K*D, reshaped (K,D), + learned token embedding
 *   time:      c = Linear(SiLU(Linear(sinusoidal_256(t))))  (DiT TimestepEmbedder)
 * Block (JiTBlock): ada = Linear(SiLU(c)) -> shift1, scale1, gate1, shift2, scale2, gate2
 *   x = x + gate1 * Attn(modulate(RMSNorm(x), shift1, scale1))
 *   x = x + gate2 * SwiGLU(modulate(RMSNorm(x), shift2, scale2))
 * Heads: field tokens -> RMSNorm -> modulate (final adaLN, shift/scale) -> linear -> p*p*C ->
 *        unpatchify;  cosmology tokens -> mean -> RMSNorm -> linear -> P.
 * Activations live in one buffer sized for the batch (training) or a lighter one
 * (inference: nothing kept between blocks). Backward accumulates into the gradient buffer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "jade/model.h"

#define MAX_TENSORS_FIXED 32
#define TENSORS_PER_BLOCK 15

typedef struct {
  size_t norm1, qkv_w, qkv_b, qn, kn, proj_w, proj_b, norm2, w12_w, w12_b, w3_w, w3_b, ada_w, ada_b;
} block_params;

typedef struct {
  size_t t1_w, t1_b, t2_w, t2_b;            /* time embedder */
  size_t cos_w, cos_b, cos_tok;             /* cosmology embedder */
  size_t x1_w, x2_w, x2_b;                  /* field bottleneck patch embedding */
  size_t c1_w, c2_w, c2_b;                  /* condition bottleneck patch embedding */
  size_t fn, fada_w, fada_b, flin_w, flin_b; /* field head */
  size_t cn, cproj_w, cproj_b;              /* cosmology head */
  block_params *blk;
} param_offsets;

/* Per-block activations (training: one set per block; inference: one shared set). */
typedef struct {
  float *xmid, *xout;
  float *rstd1, *m1, *qkv, *qr, *kr, *vr, *rq, *rk, *att, *ao, *po;
  float *rstd2, *m2, *h12, *hs, *mo;
} block_acts;

typedef struct {
  int B;          /* batch the buffers were sized for */
  int train;
  float *mem;
  size_t floats;
  float *tfreq, *th, *ths, *c, *sc, *ada, *adaf, *theta;
  float *xp, *xe1, *cp, *ce1, *x0, *tmp;
  float *xf, *rstdf, *mf, *outf;
  float *attn_scratch;
  int scratch_threads;
  float *pooled, *pn, *rstdp;
  block_acts *blk; /* depth entries (training) or 1 (inference) */
  /* backward scratch (training only) */
  float *dX, *dres, *dhid, *dwide, *dm, *dada, *dsc, *dc, *dths, *dth, *dtok, *dadaf,
      *dpooled, *dpn, *dxf, *dmf, *dsmall;
} workspace;

struct jade_model {
  jade_model_config cfg;
  int hd, Tf, Tc, T, gf, gc, ppc, ppcc;
  size_t n_params;
  float *params, *grads;
  jade_tensor_info *tensors;
  int n_tensors, cap_tensors;
  param_offsets off;
  float *pos_embed;          /* (Tf, D) fixed */
  float *rope_cos, *rope_sin; /* (T, hd/2) */
  workspace wtrain, winf;
  int have_train_fwd, last_B;
  uint64_t run_seed, run_stream;
};

/* ------------------------------------------------------------------ configuration */
void jade_model_config_paper(jade_model_config *c) {
  memset(c, 0, sizeof *c);
  c->img_size = 128;
  c->channels = 5;
  c->cond_channels = 5;
  c->patch = 8;
  c->cond_patch = 8;
  c->depth = 12;
  c->width = 768;
  c->heads = 12;
  c->n_cosmo_tokens = 16;
  c->n_params = 6;
  c->mlp_hidden = 0;
  c->bottleneck = 128;
  c->time_freq = 256;
  c->max_period = 10000.0f;
  c->rope_theta = 10000.0f;
  c->norm_eps = 1e-6f;
  c->dropout = 0.0f;
}

void jade_model_config_small(jade_model_config *c) {
  jade_model_config_paper(c);
  c->img_size = 32;
  c->patch = 4;
  c->cond_patch = 4;
  c->depth = 6;
  c->width = 192;
  c->heads = 3;
  c->n_cosmo_tokens = 8;
}

jade_status jade_model_config_check(jade_model_config *c) {
  if (c->cond_patch <= 0) c->cond_patch = c->patch;
  if (c->mlp_hidden <= 0) c->mlp_hidden = (int)((double)(int)(4.0 * c->width) * 2.0 / 3.0);
  if (c->bottleneck <= 0) c->bottleneck = 128;
  if (c->cond_bottleneck <= 0) c->cond_bottleneck = c->bottleneck;
  if (c->time_freq <= 0) c->time_freq = 256;
  if (!(c->max_period > 0)) c->max_period = 10000.0f;
  if (!(c->rope_theta > 0)) c->rope_theta = 10000.0f;
  if (!(c->norm_eps > 0)) c->norm_eps = 1e-6f;
  if (c->img_size <= 0 || c->channels <= 0 || c->cond_channels < 0 || c->patch <= 0 ||
      c->depth <= 0 || c->width <= 0 || c->heads <= 0 || c->n_cosmo_tokens <= 0 ||
      c->n_params <= 0)
    return jade_error(JADE_ERR_CONFIG, "model: sizes must be positive (img %d, channels %d, "
                      "patch %d, depth %d, width %d, heads %d, cosmo tokens %d, params %d)",
                      c->img_size, c->channels, c->patch, c->depth, c->width, c->heads,
                      c->n_cosmo_tokens, c->n_params);
  if (c->img_size % c->patch || (c->cond_channels > 0 && c->img_size % c->cond_patch))
    return jade_error(JADE_ERR_CONFIG, "model: img_size %d not divisible by patch %d / cond_patch %d",
                      c->img_size, c->patch, c->cond_patch);
  if (c->cond_patch % c->patch && c->cond_channels > 0)
    return jade_error(JADE_ERR_CONFIG, "model: cond_patch %d must be a multiple of patch %d",
                      c->cond_patch, c->patch);
  if (c->width % c->heads || (c->width / c->heads) % 4)
    return jade_error(JADE_ERR_CONFIG, "model: width %d / heads %d must give a head dim divisible by 4",
                      c->width, c->heads);
  if (c->width % 4)
    return jade_error(JADE_ERR_CONFIG, "model: width %d must be divisible by 4 (sin-cos embedding)", c->width);
  if (c->dropout < 0 || c->dropout >= 1)
    return jade_error(JADE_ERR_CONFIG, "model: dropout %g outside [0,1)", (double)c->dropout);
  if (!(c->norm_eps <= 1.0f) || !isfinite(c->max_period) || !isfinite(c->rope_theta))
    return jade_error(JADE_ERR_CONFIG, "model: norm_eps %g must be in (0, 1], max_period %g and rope_theta %g finite",
                      (double)c->norm_eps, (double)c->max_period, (double)c->rope_theta);
  /* Sizes come from files (model metadata): every product the model forms in int (tokens,
   * patch vectors, parameter table shapes) must stay far from INT_MAX. */
  const int64_t lim = (int64_t)1 << 28;
  const int64_t gf = c->img_size / c->patch, gc = c->cond_channels > 0 ? c->img_size / c->cond_patch : 0;
  const int64_t prod[] = {(int64_t)c->patch * c->patch * c->channels,
                          (int64_t)c->cond_patch * c->cond_patch * c->cond_channels,
                          (int64_t)c->n_cosmo_tokens * c->width,
                          gf * gf + gc * gc + c->n_cosmo_tokens,
                          (int64_t)c->img_size * c->img_size * (c->channels > c->cond_channels ? c->channels : c->cond_channels),
                          (int64_t)c->mlp_hidden * 2,
                          (int64_t)c->width * 6,
                          (int64_t)c->time_freq, (int64_t)c->bottleneck, (int64_t)c->depth, (int64_t)c->n_params};
  for (size_t i = 0; i < sizeof prod / sizeof *prod; i++)
    if (prod[i] > lim)
      return jade_error(JADE_ERR_CONFIG, "model: sizes too large (img %d, patch %d, cond_patch %d, channels %d/%d, width %d, "
                        "K %d, mlp %d, bottleneck %d, time_freq %d, depth %d)",
                        c->img_size, c->patch, c->cond_patch, c->channels, c->cond_channels, c->width, c->n_cosmo_tokens,
                        c->mlp_hidden, c->bottleneck, c->time_freq, c->depth);
  if (c->n_params > 64)
    return jade_error(JADE_ERR_CONFIG, "model: n_params %d > 64", c->n_params);
  return JADE_OK;
}

/* ------------------------------------------------------------------ parameter table */
static size_t add_tensor(jade_model *m, const char *name, int decay, int ndim, int s0, int s1) {
  if (m->n_tensors == m->cap_tensors) return (size_t)-1;
  jade_tensor_info *t = &m->tensors[m->n_tensors++];
  snprintf(t->name, sizeof t->name, "%s", name);
  t->ndim = ndim;
  t->shape[0] = s0;
  t->shape[1] = ndim > 1 ? s1 : 0;
  t->shape[2] = t->shape[3] = 0;
  t->numel = (size_t)s0 * (ndim > 1 ? (size_t)s1 : 1);
  t->offset = m->n_params;
  t->decay = decay;
  m->n_params += (t->numel + 15) & ~(size_t)15; /* keep every tensor 64-byte aligned */
  return t->offset;
}

static void build_table(jade_model *m) {
  const jade_model_config *c = &m->cfg;
  int D = c->width, F = c->time_freq, K = c->n_cosmo_tokens, P = c->n_params;
  int Hm = c->mlp_hidden, bn = c->bottleneck, hd = m->hd;
  param_offsets *o = &m->off;
  char nm[JADE_TENSOR_NAME_MAX];
  o->t1_w = add_tensor(m, "t_embedder.linear1.weight", 1, 2, D, F);
  o->t1_b = add_tensor(m, "t_embedder.linear1.bias", 0, 1, D, 0);
  o->t2_w = add_tensor(m, "t_embedder.linear2.weight", 1, 2, D, D);
  o->t2_b = add_tensor(m, "t_embedder.linear2.bias", 0, 1, D, 0);
  o->cos_w = add_tensor(m, "cosmo_embedder.proj.weight", 1, 2, K * D, P);
  o->cos_b = add_tensor(m, "cosmo_embedder.proj.bias", 0, 1, K * D, 0);
  o->cos_tok = add_tensor(m, "cosmo_embedder.token_pos_embed", 0, 2, K, D);
  o->x1_w = add_tensor(m, "x_embedder.proj1.weight", 1, 2, bn, m->ppc);
  o->x2_w = add_tensor(m, "x_embedder.proj2.weight", 1, 2, D, bn);
  o->x2_b = add_tensor(m, "x_embedder.proj2.bias", 0, 1, D, 0);
  if (c->cond_channels > 0) {
    o->c1_w = add_tensor(m, "cond_embedder.proj1.weight", 1, 2, c->cond_bottleneck, m->ppcc);
    o->c2_w = add_tensor(m, "cond_embedder.proj2.weight", 1, 2, D, c->cond_bottleneck);
    o->c2_b = add_tensor(m, "cond_embedder.proj2.bias", 0, 1, D, 0);
  }
  for (int l = 0; l < c->depth; l++) {
    block_params *b = &o->blk[l];
#define BT(field, suffix, decay, nd, a, bb)                     \
  snprintf(nm, sizeof nm, "blocks.%d.%s", l, suffix);           \
  b->field = add_tensor(m, nm, decay, nd, a, bb);
    BT(norm1, "norm1.weight", 0, 1, D, 0)
    BT(qkv_w, "attn.qkv.weight", 1, 2, 3 * D, D)
    BT(qkv_b, "attn.qkv.bias", 0, 1, 3 * D, 0)
    BT(qn, "attn.q_norm.weight", 0, 1, hd, 0)
    BT(kn, "attn.k_norm.weight", 0, 1, hd, 0)
    BT(proj_w, "attn.proj.weight", 1, 2, D, D)
    BT(proj_b, "attn.proj.bias", 0, 1, D, 0)
    BT(norm2, "norm2.weight", 0, 1, D, 0)
    BT(w12_w, "mlp.w12.weight", 1, 2, 2 * Hm, D)
    BT(w12_b, "mlp.w12.bias", 0, 1, 2 * Hm, 0)
    BT(w3_w, "mlp.w3.weight", 1, 2, D, Hm)
    BT(w3_b, "mlp.w3.bias", 0, 1, D, 0)
    BT(ada_w, "ada_linear.weight", 1, 2, 6 * D, D)
    BT(ada_b, "ada_linear.bias", 0, 1, 6 * D, 0)
#undef BT
  }
  o->fn = add_tensor(m, "field_head.norm_final.weight", 0, 1, D, 0);
  o->fada_w = add_tensor(m, "field_head.ada_linear.weight", 1, 2, 2 * D, D);
  o->fada_b = add_tensor(m, "field_head.ada_linear.bias", 0, 1, 2 * D, 0);
  o->flin_w = add_tensor(m, "field_head.linear.weight", 1, 2, m->ppc, D);
  o->flin_b = add_tensor(m, "field_head.linear.bias", 0, 1, m->ppc, 0);
  o->cn = add_tensor(m, "cosmo_head.norm.weight", 0, 1, D, 0);
  o->cproj_w = add_tensor(m, "cosmo_head.proj.weight", 1, 2, P, D);
  o->cproj_b = add_tensor(m, "cosmo_head.proj.bias", 0, 1, P, 0);
}

/* ------------------------------------------------------------------ create / free */
static void ws_free(workspace *w) {
  free(w->mem);
  free(w->blk);
  memset(w, 0, sizeof *w);
}

void jade_model_free(jade_model *m) {
  if (!m) return;
  free(m->params);
  free(m->grads);
  free(m->tensors);
  free(m->off.blk);
  free(m->pos_embed);
  free(m->rope_cos);
  free(m->rope_sin);
  ws_free(&m->wtrain);
  ws_free(&m->winf);
  free(m);
}

jade_status jade_model_create(jade_model **out, const jade_model_config *cfg_in) {
  *out = NULL;
  jade_model_config cfg = *cfg_in;
  jade_status st = jade_model_config_check(&cfg);
  if (st) return st;
  jade_model *m = jade_calloc(1, sizeof *m);
  if (!m) return JADE_ERR_NOMEM;
  m->cfg = cfg;
  int D = cfg.width, K = cfg.n_cosmo_tokens;
  m->hd = D / cfg.heads;
  m->gf = cfg.img_size / cfg.patch;
  m->gc = cfg.cond_channels > 0 ? cfg.img_size / cfg.cond_patch : 0;
  m->Tf = m->gf * m->gf;
  m->Tc = m->gc * m->gc;
  m->T = K + m->Tc + m->Tf;
  m->ppc = cfg.patch * cfg.patch * cfg.channels;
  m->ppcc = cfg.cond_patch * cfg.cond_patch * cfg.cond_channels;
  m->cap_tensors = MAX_TENSORS_FIXED + TENSORS_PER_BLOCK * cfg.depth;
  m->tensors = jade_calloc((size_t)m->cap_tensors, sizeof(jade_tensor_info));
  m->off.blk = jade_calloc((size_t)cfg.depth, sizeof(block_params));
  if (!m->tensors || !m->off.blk) goto nomem;
  build_table(m);
  m->params = jade_calloc(m->n_params, sizeof(float));
  m->grads = jade_calloc(m->n_params, sizeof(float));
  m->pos_embed = jade_alloc(sizeof(float) * (size_t)m->Tf * D);
  m->rope_cos = jade_alloc(sizeof(float) * (size_t)m->T * m->hd / 2);
  m->rope_sin = jade_alloc(sizeof(float) * (size_t)m->T * m->hd / 2);
  float *rows = jade_alloc(sizeof(float) * m->T), *cols = jade_alloc(sizeof(float) * m->T);
  unsigned char *has = jade_alloc((size_t)m->T);
  if (!m->params || !m->grads || !m->pos_embed || !m->rope_cos || !m->rope_sin || !rows ||
      !cols || !has) {
    free(rows);
    free(cols);
    free(has);
    goto nomem;
  }
  jade_sincos_pos_embed_2d(m->pos_embed, D, m->gf, m->gf);
  // RoPE positions (JADE MultiResolutionRoPE): cosmology tokens identity; condition patch i
  // at i*s + (s-1)/2 with s = cond_patch/patch (its centre in field-patch coordinates);
  // field patch i at i.
  for (int t = 0; t < K; t++) {
    has[t] = 0;
    rows[t] = cols[t] = 0.0f;
  }
  float s = (float)cfg.cond_patch / (float)cfg.patch;
  for (int t = 0; t < m->Tc; t++) {
    has[K + t] = 1;
    rows[K + t] = (float)(t / m->gc) * s + (s - 1.0f) / 2.0f;
    cols[K + t] = (float)(t % m->gc) * s + (s - 1.0f) / 2.0f;
  }
  for (int t = 0; t < m->Tf; t++) {
    has[K + m->Tc + t] = 1;
    rows[K + m->Tc + t] = (float)(t / m->gf);
    cols[K + m->Tc + t] = (float)(t % m->gf);
  }
  jade_rope_table(m->rope_cos, m->rope_sin, rows, cols, has, m->T, m->hd, cfg.rope_theta);
  free(rows);
  free(cols);
  free(has);
  *out = m;
  return JADE_OK;
nomem:
  jade_model_free(m);
  return jade_error(JADE_ERR_NOMEM, "model: out of memory");
}

const jade_model_config *jade_model_get_config(const jade_model *m) { return &m->cfg; }
size_t jade_model_num_params(const jade_model *m) { return m->n_params; }
float *jade_model_params(jade_model *m) { return m->params; }
float *jade_model_grads(jade_model *m) { return m->grads; }
int jade_model_num_tensors(const jade_model *m) { return m->n_tensors; }
const jade_tensor_info *jade_model_tensor(const jade_model *m, int i) {
  return i >= 0 && i < m->n_tensors ? &m->tensors[i] : NULL;
}
const jade_tensor_info *jade_model_find_tensor(const jade_model *m, const char *name) {
  for (int i = 0; i < m->n_tensors; i++)
    if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
  return NULL;
}
void jade_model_zero_grad(jade_model *m) { memset(m->grads, 0, m->n_params * sizeof(float)); }

jade_status jade_model_copy_expand_cond(jade_model *dst, const jade_model *src) {
  const jade_model_config *a = &src->cfg, *b = &dst->cfg;
  jade_model_config bb = *b;
  bb.cond_channels = a->cond_channels;
  if (memcmp(&bb, a, sizeof bb) != 0 || b->cond_channels < a->cond_channels || a->cond_channels <= 0)
    return jade_error(JADE_ERR_CONFIG, "model copy: the target may differ only by more condition channels "
                      "(source %d, target %d)", a->cond_channels, b->cond_channels);
  memset(dst->params, 0, dst->n_params * sizeof(float));
  for (int i = 0; i < src->n_tensors; i++) {
    const jade_tensor_info *ts = &src->tensors[i], *td = jade_model_find_tensor(dst, ts->name);
    if (!td) return jade_error(JADE_ERR_INTERNAL, "model copy: no tensor %s in the target", ts->name);
    const float *from = src->params + ts->offset;
    float *to = dst->params + td->offset;
    if (td->numel == ts->numel) {
      memcpy(to, from, ts->numel * sizeof(float));
      continue;
    }
    // cond_embedder.proj1.weight (bn, pc pc Cc): patch vector order (py, px, c) (jade_patchify)
    const int pp = a->cond_patch * a->cond_patch, ca = a->cond_channels, cb = b->cond_channels;
    if (strcmp(ts->name, "cond_embedder.proj1.weight") || td->shape[0] != ts->shape[0])
      return jade_error(JADE_ERR_INTERNAL, "model copy: tensor %s differs in size", ts->name);
    for (int r = 0; r < ts->shape[0]; r++)
      for (int q = 0; q < pp; q++)
        for (int c = 0; c < ca; c++)
          to[((size_t)r * pp + q) * cb + c] = from[((size_t)r * pp + q) * ca + c];
  }
  return JADE_OK;
}

/* ------------------------------------------------------------------ initialisation */
static void init_xavier(jade_model *m, size_t off, int out_f, int in_f, uint64_t seed, int id) {
  // Glorot & Bengio 2010: U(-a, a), a = sqrt(6/(fan_in + fan_out)) for weight (out, in)
  double a = sqrt(6.0 / (double)(in_f + out_f));
  size_t n = (size_t)out_f * in_f, chunk = 4096;
  double *u = jade_alloc(sizeof(double) * chunk);
  for (size_t i0 = 0; i0 < n; i0 += chunk) {
    size_t k = n - i0 < chunk ? n - i0 : chunk;
    jade_rng_uniform_fill(seed, JADE_STREAM(JADE_RNG_INIT, id), i0, k, u);
    for (size_t i = 0; i < k; i++) m->params[off + i0 + i] = (float)((2.0 * u[i] - 1.0) * a);
  }
  free(u);
}

static void init_normal(jade_model *m, size_t off, size_t n, float sd, uint64_t seed, int id) {
  jade_rng_normal_fill_f(seed, JADE_STREAM(JADE_RNG_INIT, id), 0, n, m->params + off);
  for (size_t i = 0; i < n; i++) m->params[off + i] *= sd;
}

static void fill(jade_model *m, size_t off, size_t n, float v) {
  for (size_t i = 0; i < n; i++) m->params[off + i] = v;
}

void jade_model_init(jade_model *m, uint64_t seed) {
  const jade_model_config *c = &m->cfg;
  int D = c->width, F = c->time_freq, K = c->n_cosmo_tokens, P = c->n_params;
  int Hm = c->mlp_hidden, bn = c->bottleneck, hd = m->hd;
  param_offsets *o = &m->off;
  memset(m->params, 0, m->n_params * sizeof(float)); /* biases, adaLN and heads: zero */
  int id = 0;
  // JADE initialize_weights: time embedder and cosmology embedder N(0, 0.02^2)
  init_normal(m, o->t1_w, (size_t)D * F, 0.02f, seed, id++);
  init_normal(m, o->t2_w, (size_t)D * D, 0.02f, seed, id++);
  init_normal(m, o->cos_w, (size_t)K * D * P, 0.02f, seed, id++);
  init_normal(m, o->cos_tok, (size_t)K * D, 0.02f, seed, id++);
  init_xavier(m, o->x1_w, bn, m->ppc, seed, id++);
  init_xavier(m, o->x2_w, D, bn, seed, id++);
  if (c->cond_channels > 0) {
    init_xavier(m, o->c1_w, c->cond_bottleneck, m->ppcc, seed, id++);
    init_xavier(m, o->c2_w, D, c->cond_bottleneck, seed, id++);
  } else {
    id += 2;
  }
  for (int l = 0; l < c->depth; l++) {
    block_params *b = &o->blk[l];
    fill(m, b->norm1, D, 1.0f);
    fill(m, b->norm2, D, 1.0f);
    fill(m, b->qn, hd, 1.0f);
    fill(m, b->kn, hd, 1.0f);
    init_xavier(m, b->qkv_w, 3 * D, D, seed, id++);
    init_xavier(m, b->proj_w, D, D, seed, id++);
    init_xavier(m, b->w12_w, 2 * Hm, D, seed, id++);
    init_xavier(m, b->w3_w, D, Hm, seed, id++);
    // ada_linear stays zero (adaLN-Zero)
  }
  fill(m, o->fn, D, 1.0f);
  fill(m, o->cn, D, 1.0f);
  // field_head.ada_linear, field_head.linear, cosmo_head.proj stay zero
}

/* ------------------------------------------------------------------ workspace */
typedef struct { float *base; size_t used; int count_only; } arena;
static float *take(arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  float *p = a->count_only ? NULL : a->base + a->used;
  a->used += n;
  return p;
}

static void layout(jade_model *m, workspace *w, arena *a, int B, int train) {
  const jade_model_config *c = &m->cfg;
  size_t D = c->width, F = c->time_freq, P = c->n_params, Hm = c->mlp_hidden, bn = c->bottleneck;
  size_t N = (size_t)B * m->T, Nf = (size_t)B * m->Tf, Nc = (size_t)B * m->Tc, H = c->heads;
  size_t T = m->T, hd = m->hd, L = c->depth;
  w->tfreq = take(a, B * F);
  w->th = take(a, B * D);
  w->ths = take(a, B * D);
  w->c = take(a, B * D);
  w->sc = take(a, B * D);
  w->ada = take(a, (train ? L : 1) * B * 6 * D);
  w->adaf = take(a, B * 2 * D);
  w->theta = take(a, B * P);
  w->xp = take(a, Nf * m->ppc);
  w->xe1 = take(a, Nf * bn);
  w->cp = take(a, Nc * m->ppcc);
  w->ce1 = take(a, Nc * (size_t)c->cond_bottleneck);
  w->x0 = take(a, N * D);
  w->tmp = take(a, N * D);
  w->xf = take(a, Nf * D);
  w->rstdf = take(a, Nf);
  w->mf = take(a, Nf * D);
  w->outf = take(a, Nf * m->ppc);
  jade_attention_shape as = {B, (int)T, (int)H, (int)hd, 0, NULL, NULL, 0, 0, 0, 0};
  w->scratch_threads = omp_get_max_threads();
  w->attn_scratch = take(a, jade_attention_scratch_floats(&as, w->scratch_threads));
  w->pooled = take(a, B * D);
  w->pn = take(a, B * D);
  w->rstdp = take(a, B);
  int nb = train ? (int)L : 1;
  for (int l = 0; l < nb; l++) {
    block_acts *k = &w->blk[l];
    k->rstd1 = take(a, N);
    k->m1 = take(a, N * D);
    k->qkv = take(a, N * 3 * D);
    k->ao = take(a, N * D);
    k->po = take(a, N * D);
    k->rstd2 = take(a, N);
    k->m2 = take(a, N * D);
    k->h12 = take(a, N * 2 * Hm);
    k->hs = take(a, N * Hm);
    k->mo = take(a, N * D);
    if (train) {
      k->xmid = take(a, N * D);
      k->xout = take(a, N * D);
      k->qr = take(a, (size_t)B * H * T * hd);
      k->kr = take(a, (size_t)B * H * T * hd);
      k->vr = take(a, (size_t)B * H * T * hd);
      k->rq = take(a, N * H);
      k->rk = take(a, N * H);
      k->att = take(a, (size_t)B * H * T * T);
    } else {
      k->xmid = k->xout = NULL; /* in place on x0 */
      k->qr = k->kr = k->vr = k->rq = k->rk = k->att = NULL;
    }
  }
  if (train) {
    size_t wide = 3 * D > 2 * Hm ? 3 * D : 2 * Hm, hid = Hm > D ? Hm : D;
    w->dX = take(a, N * D);
    w->dres = take(a, N * D);
    w->dhid = take(a, N * hid);
    w->dwide = take(a, N * wide);
    w->dm = take(a, N * D);
    w->dada = take(a, B * 6 * D);
    w->dsc = take(a, B * D);
    w->dc = take(a, B * D);
    w->dths = take(a, B * D);
    w->dth = take(a, B * D);
    w->dtok = take(a, Nf * m->ppc);
    w->dadaf = take(a, B * 2 * D);
    w->dpooled = take(a, B * D);
    w->dpn = take(a, B * D);
    w->dxf = take(a, Nf * D);
    w->dmf = take(a, Nf * D);
    size_t cbn = c->cond_bottleneck;
    w->dsmall = take(a, Nc * cbn > Nf * bn ? Nc * cbn : Nf * bn);
  }
}

static jade_status ws_ensure(jade_model *m, workspace *w, int B, int train) {
  if (w->mem && w->B >= B) return JADE_OK;
  ws_free(w);
  int nb = train ? m->cfg.depth : 1;
  w->blk = jade_calloc((size_t)nb, sizeof(block_acts));
  if (!w->blk) return JADE_ERR_NOMEM;
  arena a = {NULL, 0, 1};
  layout(m, w, &a, B, train);
  w->mem = jade_alloc(a.used * sizeof(float));
  if (!w->mem) {
    double gb = a.used * 4.0 / 1e9;
    ws_free(w);
    return jade_error(JADE_ERR_NOMEM, "model: cannot allocate %.2f GB of activations for batch %d", gb, B);
  }
  memset(w->mem, 0, a.used * sizeof(float));
  w->floats = a.used;
  a = (arena){w->mem, 0, 0};
  layout(m, w, &a, B, train);
  w->B = B;
  w->train = train;
  return JADE_OK;
}

size_t jade_model_workspace_bytes(const jade_model *m) {
  return (m->wtrain.floats + m->winf.floats) * sizeof(float);
}

double jade_model_forward_flops(const jade_model *m, int B) {
  const jade_model_config *c = &m->cfg;
  double D = c->width, Hm = c->mlp_hidden, bn = c->bottleneck, cbn = c->cond_bottleneck, T = m->T;
  double N = (double)B * T, Nf = (double)B * m->Tf, Nc = (double)B * m->Tc;
  double f = 0;
  f += 2.0 * B * (c->time_freq * D + D * D);                       // time embedder
  f += 2.0 * B * c->n_params * c->n_cosmo_tokens * D;              // cosmology embedder
  f += 2.0 * Nf * (m->ppc * bn + bn * D) + 2.0 * Nc * (m->ppcc * cbn + cbn * D);
  double blk = 2.0 * N * (D * 3 * D + D * D + D * 2 * Hm + Hm * D)  // qkv, proj, w12, w3
               + 2.0 * B * D * 6 * D                               // adaLN
               + 4.0 * B * c->heads * T * T * m->hd;               // QK^T and PV
  f += c->depth * blk;
  f += 2.0 * B * D * 2 * D + 2.0 * Nf * D * m->ppc + 2.0 * B * D * c->n_params;  // heads
  return f;
}

/* ------------------------------------------------------------------ forward */
/* The workspace's attention scratch if it fits the current thread count, else NULL
 * (the attention then allocates its own). */
static float *attn_scratch(const workspace *w) {
  return omp_get_max_threads() <= w->scratch_threads ? w->attn_scratch : NULL;
}

static int drop_block(const jade_model *m, int l) {
  int L = m->cfg.depth;
  return l >= L / 4 && l < 3 * (L / 4);  // JADE: depth//4 <= i < depth//4*3
}
static uint64_t drop_index(int l, int site) { return ((uint64_t)(l * 3 + site)) << 44; }

jade_status jade_model_forward(jade_model *m, int B, const float *z, const float *theta,
                               const float *t, const float *cond, float *x_hat,
                               float *theta_hat, const jade_model_run *run) {
  const jade_model_config *c = &m->cfg;
  if (B <= 0) return jade_error(JADE_ERR_INVALID, "model forward: batch %d", B);
  if (c->cond_channels > 0 && !cond)
    return jade_error(JADE_ERR_INVALID, "model forward: the model needs a condition image");
  int train = run && run->train;
  workspace *w = train ? &m->wtrain : &m->winf;
  if (train) m->have_train_fwd = 0;
  jade_status st = ws_ensure(m, w, B, train);
  if (st) return st;
  const float *p = m->params;
  const param_offsets *o = &m->off;
  const int D = c->width, F = c->time_freq, K = c->n_cosmo_tokens, P = c->n_params;
  const int Hm = c->mlp_hidden, bn = c->bottleneck, T = m->T, Tf = m->Tf, Tc = m->Tc;
  const int N = B * T, Nf = B * Tf, Nc = B * Tc, L = c->depth;
  const float eps = c->norm_eps, pdrop = train ? c->dropout : 0.0f;

  // time embedding: c = W2 silu(W1 sincos(t) + b1) + b2  (B,D)
  jade_timestep_embedding(w->tfreq, t, B, F, c->max_period);
  jade_linear_forward(w->th, w->tfreq, p + o->t1_w, p + o->t1_b, B, F, D);
  jade_silu_forward(w->ths, w->th, (size_t)B * D);
  jade_linear_forward(w->c, w->ths, p + o->t2_w, p + o->t2_b, B, D, D);
  jade_silu_forward(w->sc, w->c, (size_t)B * D);
  memcpy(w->theta, theta, sizeof(float) * B * P);

  // cosmology tokens: (B, K*D) = theta W^T + b, + token embedding -> x0 rows [0, K)
  jade_linear_forward(w->tmp, w->theta, p + o->cos_w, p + o->cos_b, B, P, K * D);
  for (int b = 0; b < B; b++) {
    float *dst = w->x0 + (size_t)b * T * D;
    const float *src = w->tmp + (size_t)b * K * D;
    for (int i = 0; i < K * D; i++) dst[i] = src[i] + p[o->cos_tok + i];
  }
  // condition tokens -> rows [K, K+Tc)
  if (Tc > 0) {
    jade_patchify(w->cp, cond, B, c->cond_channels, c->img_size, c->img_size, c->cond_patch);
    const int cbn = c->cond_bottleneck;
    jade_linear_forward(w->ce1, w->cp, p + o->c1_w, NULL, Nc, m->ppcc, cbn);
    jade_linear_forward(w->tmp, w->ce1, p + o->c2_w, p + o->c2_b, Nc, cbn, D);
    for (int b = 0; b < B; b++)
      memcpy(w->x0 + ((size_t)b * T + K) * D, w->tmp + (size_t)b * Tc * D, sizeof(float) * Tc * D);
  }
  // field tokens -> rows [K+Tc, T), + sin-cos position embedding
  jade_patchify(w->xp, z, B, c->channels, c->img_size, c->img_size, c->patch);
  jade_linear_forward(w->xe1, w->xp, p + o->x1_w, NULL, Nf, m->ppc, bn);
  jade_linear_forward(w->tmp, w->xe1, p + o->x2_w, p + o->x2_b, Nf, bn, D);
#pragma omp parallel for schedule(static) if ((size_t)Nf * D > 32768)
  for (int bt = 0; bt < Nf; bt++) {
    int b = bt / Tf, i = bt % Tf;
    float *dst = w->x0 + ((size_t)b * T + K + Tc + i) * D;
    const float *src = w->tmp + (size_t)bt * D, *pe = m->pos_embed + (size_t)i * D;
    for (int d = 0; d < D; d++) dst[d] = src[d] + pe[d];
  }

  // blocks
  float *x = w->x0;
  for (int l = 0; l < L; l++) {
    const block_params *bp = &o->blk[l];
    block_acts *a = &w->blk[train ? l : 0];
    float *ada = w->ada + (size_t)(train ? l : 0) * B * 6 * D;
    int dl = pdrop > 0.0f && drop_block(m, l);
    // ada (B,6D) = silu(c) W^T + b: shift1, scale1, gate1, shift2, scale2, gate2
    jade_linear_forward(ada, w->sc, p + bp->ada_w, p + bp->ada_b, B, D, 6 * D);
    float *xmid = train ? a->xmid : x, *xout = train ? a->xout : x;
    // attention branch
    jade_rmsnorm_modulate_forward(a->m1, a->rstd1, x, p + bp->norm1, ada, ada + D, 6 * D, B, T, D, eps);
    jade_linear_forward(a->qkv, a->m1, p + bp->qkv_w, p + bp->qkv_b, N, D, 3 * D);
    jade_attention_shape as = {B, T, c->heads, m->hd, eps, m->rope_cos, m->rope_sin,
                               dl ? pdrop : 0.0f, train ? run->seed : 0, train ? run->stream : 0,
                               drop_index(l, 0)};
    st = jade_attention_forward(a->ao, a->qr, a->kr, a->vr, a->rq, a->rk, a->att, a->qkv,
                                p + bp->qn, p + bp->kn, attn_scratch(w), &as);
    if (st) return st;
    jade_linear_forward(a->po, a->ao, p + bp->proj_w, p + bp->proj_b, N, D, D);
    if (dl) jade_dropout_forward(a->po, a->po, (size_t)N * D, pdrop, run->seed, run->stream, drop_index(l, 1));
    if (xmid != x) memcpy(xmid, x, sizeof(float) * N * D);
    jade_gated_residual_forward(xmid, a->po, ada + 2 * D, 6 * D, B, T, D);
    // MLP branch
    jade_rmsnorm_modulate_forward(a->m2, a->rstd2, xmid, p + bp->norm2, ada + 3 * D, ada + 4 * D,
                                  6 * D, B, T, D, eps);
    jade_linear_forward(a->h12, a->m2, p + bp->w12_w, p + bp->w12_b, N, D, 2 * Hm);
    jade_swiglu_forward(a->hs, a->h12, N, Hm);
    if (dl) jade_dropout_forward(a->hs, a->hs, (size_t)N * Hm, pdrop, run->seed, run->stream, drop_index(l, 2));
    jade_linear_forward(a->mo, a->hs, p + bp->w3_w, p + bp->w3_b, N, Hm, D);
    if (xout != xmid) memcpy(xout, xmid, sizeof(float) * N * D);
    jade_gated_residual_forward(xout, a->mo, ada + 5 * D, 6 * D, B, T, D);
    x = xout;
  }

  // field head on the field tokens
  for (int b = 0; b < B; b++)
    memcpy(w->xf + (size_t)b * Tf * D, x + ((size_t)b * T + K + Tc) * D, sizeof(float) * Tf * D);
  jade_linear_forward(w->adaf, w->sc, p + o->fada_w, p + o->fada_b, B, D, 2 * D);
  jade_rmsnorm_modulate_forward(w->mf, w->rstdf, w->xf, p + o->fn, w->adaf, w->adaf + D, 2 * D, B,
                                Tf, D, eps);
  jade_linear_forward(w->outf, w->mf, p + o->flin_w, p + o->flin_b, Nf, D, m->ppc);
  jade_unpatchify(x_hat, w->outf, B, c->channels, c->img_size, c->img_size, c->patch);
  // cosmology head: mean over the K tokens -> RMSNorm -> linear
  jade_meanpool_forward(w->pooled, x, B, T, K, D);
  jade_rmsnorm_forward(w->pn, w->rstdp, w->pooled, p + o->cn, B, D, eps);
  jade_linear_forward(theta_hat, w->pn, p + o->cproj_w, p + o->cproj_b, B, D, P);

  if (train) {
    m->have_train_fwd = 1;
    m->last_B = B;
    m->run_seed = run->seed;
    m->run_stream = run->stream;
  }
  return JADE_OK;
}

/* ------------------------------------------------------------------ backward */
/* Linear backward that overwrites dinp (N,C) = dout W (saves zeroing it first) and
 * accumulates the parameter gradients. */
static void linear_backward_set(float *dinp, float *dweight, float *dbias, const float *dout,
                                const float *inp, const float *weight, int N, int C, int OC) {
  jade_gemm(0, 0, N, C, OC, 1.0f, dout, OC, weight, C, 0.0f, dinp, C);
  jade_linear_backward(NULL, dweight, dbias, dout, inp, weight, N, C, OC);
}

jade_status jade_model_backward(jade_model *m, const float *dx_hat, const float *dtheta_hat) {
  if (!m->have_train_fwd)
    return jade_error(JADE_ERR_INVALID, "model backward: no training-mode forward to differentiate");
  const jade_model_config *c = &m->cfg;
  workspace *w = &m->wtrain;
  const int B = m->last_B;
  const float *p = m->params;
  float *g = m->grads;
  const param_offsets *o = &m->off;
  const int D = c->width, F = c->time_freq, K = c->n_cosmo_tokens, P = c->n_params;
  const int Hm = c->mlp_hidden, bn = c->bottleneck, T = m->T, Tf = m->Tf, Tc = m->Tc;
  const int N = B * T, Nf = B * Tf, Nc = B * Tc, L = c->depth;
  const float pdrop = c->dropout;
  jade_status st;

  memset(w->dX, 0, sizeof(float) * N * D);
  memset(w->dsc, 0, sizeof(float) * B * D);
  // field head
  jade_patchify(w->dtok, dx_hat, B, c->channels, c->img_size, c->img_size, c->patch);
  linear_backward_set(w->dmf, g + o->flin_w, g + o->flin_b, w->dtok, w->mf, p + o->flin_w, Nf, D, m->ppc);
  memset(w->dadaf, 0, sizeof(float) * B * 2 * D);
  memset(w->dxf, 0, sizeof(float) * Nf * D);
  jade_rmsnorm_modulate_backward(w->dxf, g + o->fn, w->dadaf, w->dadaf + D, w->dmf, w->xf, p + o->fn,
                                 w->rstdf, w->adaf + D, 2 * D, B, Tf, D);
  for (int b = 0; b < B; b++) {
    float *dst = w->dX + ((size_t)b * T + K + Tc) * D;
    const float *src = w->dxf + (size_t)b * Tf * D;
    for (size_t i = 0; i < (size_t)Tf * D; i++) dst[i] += src[i];
  }
  jade_linear_backward(w->dsc, g + o->fada_w, g + o->fada_b, w->dadaf, w->sc, p + o->fada_w, B, D, 2 * D);
  // cosmology head
  memset(w->dpn, 0, sizeof(float) * B * D);
  jade_linear_backward(w->dpn, g + o->cproj_w, g + o->cproj_b, dtheta_hat, w->pn, p + o->cproj_w, B, D, P);
  memset(w->dpooled, 0, sizeof(float) * B * D);
  jade_rmsnorm_backward(w->dpooled, g + o->cn, w->dpn, w->pooled, p + o->cn, w->rstdp, B, D);
  jade_meanpool_backward(w->dX, w->dpooled, B, T, K, D);

  // blocks, last to first; dX is the gradient of the block output
  for (int l = L - 1; l >= 0; l--) {
    const block_params *bp = &o->blk[l];
    block_acts *a = &w->blk[l];
    const float *xin = l > 0 ? w->blk[l - 1].xout : w->x0;
    const float *ada = w->ada + (size_t)l * B * 6 * D;
    float *dada = w->dada;
    int dl = pdrop > 0.0f && drop_block(m, l);
    memset(dada, 0, sizeof(float) * B * 6 * D);
    // MLP branch: xout = xmid + gate2 * mo
    memset(w->dres, 0, sizeof(float) * N * D);
    jade_gated_residual_backward(w->dres, dada + 5 * D, w->dX, a->mo, ada + 5 * D, 6 * D, B, T, D);
    linear_backward_set(w->dhid, g + bp->w3_w, g + bp->w3_b, w->dres, a->hs, p + bp->w3_w, N, Hm, D);
    if (dl) jade_dropout_forward(w->dhid, w->dhid, (size_t)N * Hm, pdrop, m->run_seed, m->run_stream, drop_index(l, 2));
    memset(w->dwide, 0, sizeof(float) * N * 2 * Hm);
    jade_swiglu_backward(w->dwide, w->dhid, a->h12, N, Hm);
    linear_backward_set(w->dm, g + bp->w12_w, g + bp->w12_b, w->dwide, a->m2, p + bp->w12_w, N, D, 2 * Hm);
    jade_rmsnorm_modulate_backward(w->dX, g + bp->norm2, dada + 3 * D, dada + 4 * D, w->dm, a->xmid,
                                   p + bp->norm2, a->rstd2, ada + 4 * D, 6 * D, B, T, D);
    // attention branch: xmid = xin + gate1 * po
    memset(w->dres, 0, sizeof(float) * N * D);
    jade_gated_residual_backward(w->dres, dada + 2 * D, w->dX, a->po, ada + 2 * D, 6 * D, B, T, D);
    if (dl) jade_dropout_forward(w->dres, w->dres, (size_t)N * D, pdrop, m->run_seed, m->run_stream, drop_index(l, 1));
    linear_backward_set(w->dhid, g + bp->proj_w, g + bp->proj_b, w->dres, a->ao, p + bp->proj_w, N, D, D);
    memset(w->dwide, 0, sizeof(float) * N * 3 * D);
    jade_attention_shape as = {B, T, c->heads, m->hd, c->norm_eps, m->rope_cos, m->rope_sin,
                               dl ? pdrop : 0.0f, m->run_seed, m->run_stream, drop_index(l, 0)};
    st = jade_attention_backward(w->dwide, g + bp->qn, g + bp->kn, w->dhid, a->qkv, a->qr, a->kr,
                                 a->vr, a->rq, a->rk, a->att, p + bp->qn, p + bp->kn,
                                 attn_scratch(w), &as);
    if (st) return st;
    linear_backward_set(w->dm, g + bp->qkv_w, g + bp->qkv_b, w->dwide, a->m1, p + bp->qkv_w, N, D, 3 * D);
    jade_rmsnorm_modulate_backward(w->dX, g + bp->norm1, dada, dada + D, w->dm, xin, p + bp->norm1,
                                   a->rstd1, ada + D, 6 * D, B, T, D);
    // adaLN linear of this block
    jade_linear_backward(w->dsc, g + bp->ada_w, g + bp->ada_b, dada, w->sc, p + bp->ada_w, B, D, 6 * D);
  }

  // embeddings. cosmology rows: token embedding gets sum_b (fixed order), proj gets (B,K*D)
  for (int b = 0; b < B; b++) {
    const float *src = w->dX + (size_t)b * T * D;
    memcpy(w->tmp + (size_t)b * K * D, src, sizeof(float) * K * D);
    for (int i = 0; i < K * D; i++) g[o->cos_tok + i] += src[i];
  }
  jade_linear_backward(NULL, g + o->cos_w, g + o->cos_b, w->tmp, w->theta, p + o->cos_w, B, P, K * D);
  if (Tc > 0) {
    for (int b = 0; b < B; b++)
      memcpy(w->tmp + (size_t)b * Tc * D, w->dX + ((size_t)b * T + K) * D, sizeof(float) * Tc * D);
    const int cbn = c->cond_bottleneck;
    memset(w->dsmall, 0, sizeof(float) * Nc * cbn);
    jade_linear_backward(w->dsmall, g + o->c2_w, g + o->c2_b, w->tmp, w->ce1, p + o->c2_w, Nc, cbn, D);
    jade_linear_backward(NULL, g + o->c1_w, NULL, w->dsmall, w->cp, p + o->c1_w, Nc, m->ppcc, cbn);
  }
  for (int b = 0; b < B; b++)
    memcpy(w->tmp + (size_t)b * Tf * D, w->dX + ((size_t)b * T + K + Tc) * D, sizeof(float) * Tf * D);
  memset(w->dsmall, 0, sizeof(float) * Nf * bn);
  jade_linear_backward(w->dsmall, g + o->x2_w, g + o->x2_b, w->tmp, w->xe1, p + o->x2_w, Nf, bn, D);
  jade_linear_backward(NULL, g + o->x1_w, NULL, w->dsmall, w->xp, p + o->x1_w, Nf, m->ppc, bn);
  // time embedder: sc = silu(c)
  memset(w->dc, 0, sizeof(float) * B * D);
  jade_silu_backward(w->dc, w->dsc, w->c, (size_t)B * D);
  memset(w->dths, 0, sizeof(float) * B * D);
  jade_linear_backward(w->dths, g + o->t2_w, g + o->t2_b, w->dc, w->ths, p + o->t2_w, B, D, D);
  memset(w->dth, 0, sizeof(float) * B * D);
  jade_silu_backward(w->dth, w->dths, w->th, (size_t)B * D);
  jade_linear_backward(NULL, g + o->t1_w, g + o->t1_b, w->dth, w->tfreq, p + o->t1_w, B, F, D);
  return JADE_OK;
}
