/* A surrogate of a diffusion prior's log-density (jade's addition to pop-cosmos, issue 13 item
 * 7): log q(x) = log N(x; mu, C) + f(L^-1 (x - mu)), f a small MLP fitted by least squares to
 * exact PF-ODE log-densities (Song et al. 2021, ICLR, eq. 39), so that the ensemble sampler's
 * inner loop needs no ODE solve. The fit (Adam, Kingma & Ba 2015, cosine decay) follows dsm.c:
 * fixed chunks per batch, so results do not depend on the thread count. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/safetensors.h"
#include "sed_internal.h"

#define SUR_D 16
#define SUR_CHUNKS 8

#define SUR_F (2 * SUR_D) /* MLP inputs: v_j and log(1 + v_j^2) */

struct jade_sed_surrogate {
  int width, layers;
  double shift[SUR_D], scale[SUR_D], mu[SUR_D];
  double Linv[SUR_D * SUR_D]; /* lower triangular: Linv (x - mu) is white under the Gaussian */
  double center[SUR_D], spread[SUR_D]; /* v_j = (x_j - center_j) / spread_j: median, 1.4826 MAD */
  double clip;                /* the fit's domain: every |v_j| <= clip */
  double log_norm;            /* sum_j log Linv_jj - 8 log(2 pi) - sum_j log scale_j */
  sed_mlp net;                /* 32 -> width x layers (SiLU) -> 1 */
};

static void update_log_norm(jade_sed_surrogate *s) {
  double v = -0.5 * SUR_D * log(2 * M_PI);
  for (int j = 0; j < SUR_D; j++) v += log(s->Linv[j * SUR_D + j]) - log(s->scale[j]);
  s->log_norm = v;
}

static jade_status sur_alloc(int width, int layers, jade_sed_surrogate **out) {
  *out = NULL;
  if (width < 1 || width > 8192 || layers < 1 || layers > SED_MAX_LAYERS - 1)
    return jade_error(JADE_ERR_INVALID, "surrogate: width %d or layers %d out of range", width, layers);
  jade_sed_surrogate *s = jade_calloc(1, sizeof *s);
  if (!s) return JADE_ERR_NOMEM;
  s->width = width;
  s->layers = layers;
  int dims[SED_MAX_LAYERS + 1];
  sed_act act[SED_MAX_LAYERS];
  dims[0] = SUR_F;
  for (int l = 0; l < layers; l++) {
    dims[l + 1] = width;
    act[l] = SED_ACT_SILU;
  }
  dims[layers + 1] = 1;
  act[layers] = SED_ACT_LINEAR;
  if (!sed_mlp_alloc(&s->net, layers + 1, dims, act)) {
    jade_sed_surrogate_free(s);
    return JADE_ERR_NOMEM;
  }
  for (int j = 0; j < SUR_D; j++) {
    s->scale[j] = s->spread[j] = 1.0;
    s->Linv[j * SUR_D + j] = 1.0;
  }
  update_log_norm(s);
  *out = s;
  return JADE_OK;
}

jade_status jade_sed_surrogate_create(int width, int layers, uint64_t seed, jade_sed_surrogate **out) {
  jade_status st = sur_alloc(width, layers, out);
  if (st) return st;
  sed_mlp *m = &(*out)->net;
  /* PyTorch's default Linear init U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the output layer starts at
   * zero, so a new surrogate is its Gaussian */
  uint64_t k = 0;
  for (int l = 0; l < m->n_layers - 1; l++) {
    double a = 1.0 / sqrt((double)m->dims[l]);
    size_t nw = (size_t)m->dims[l + 1] * m->dims[l];
    for (size_t q = 0; q < nw; q++) m->W[l][q] = a * (2 * jade_rng_uniform(seed, JADE_STREAM(JADE_RNG_INIT, 0x5a6), k++) - 1);
    for (int u = 0; u < m->dims[l + 1]; u++) m->b[l][u] = a * (2 * jade_rng_uniform(seed, JADE_STREAM(JADE_RNG_INIT, 0x5a6), k++) - 1);
  }
  return JADE_OK;
}

void jade_sed_surrogate_free(jade_sed_surrogate *s) {
  if (!s) return;
  sed_mlp_free(&s->net);
  free(s);
}

size_t jade_sed_surrogate_n_params(const jade_sed_surrogate *s) { return sed_mlp_n_params(&s->net); }
void jade_sed_surrogate_get_params(const jade_sed_surrogate *s, double *p) { sed_mlp_get_params(&s->net, p); }
void jade_sed_surrogate_set_params(jade_sed_surrogate *s, const double *p) { sed_mlp_set_params(&s->net, p); }

/* ---- forward / backward on B points ------------------------------------------------------ */

/* Work of one chunk of up to B points, as named views: features u (B x 32), per hidden layer
 * z and h (B x width), the output (B), two B x width buffers for backward; for the gradient
 * terms: dq/du (B x 32), the direction c (B x 32), per hidden layer the tangents zdot, hdot
 * (B x width), and four B x width adjoint buffers. */
typedef struct {
  double *u, *z, *h, *out, *d1, *d2;
  double *gu, *c, *zd, *hd, *hb, *hdb, *hb2, *hdb2;
} views;

static size_t work_size(const jade_sed_surrogate *s, size_t B) {
  size_t BW = B * (size_t)s->width, H = (size_t)s->layers;
  return B * SUR_F + 2 * H * BW + B + 2 * BW + 2 * B * SUR_F + 2 * H * BW + 4 * BW;
}

static views view(const jade_sed_surrogate *s, size_t B, double *w) {
  size_t BW = B * (size_t)s->width, H = (size_t)s->layers;
  views v;
  v.u = w;
  v.z = v.u + B * SUR_F;
  v.h = v.z + H * BW;
  v.out = v.h + H * BW;
  v.d1 = v.out + B;
  v.d2 = v.d1 + BW;
  v.gu = v.d2 + BW;
  v.c = v.gu + B * SUR_F;
  v.zd = v.c + B * SUR_F;
  v.hd = v.zd + H * BW;
  v.hb = v.hd + H * BW;
  v.hdb = v.hb + BW;
  v.hb2 = v.hdb + BW;
  v.hdb2 = v.hb2 + BW;
  return v;
}

/* SiLU z sigmoid(z) and its first two derivatives */
static inline double silu_d1(double z) {
  double g = sed_sigmoid(z);
  return g * (1.0 + z * (1.0 - g));
}
static inline double silu_d2(double z) {
  double g = sed_sigmoid(z);
  return g * (1.0 - g) * (2.0 + z * (1.0 - 2.0 * g));
}

/* The MLP's features u (B x 32: v_j, then log(1 + v_j^2), which lets f follow the heavy-tailed
 * marginals of the population's star-formation-history ratios) and the Gaussian part of log q
 * (gauss, B) of points phi. */
static void features(const jade_sed_surrogate *s, size_t B, const double *phi, double *u, double *gauss) {
  for (size_t i = 0; i < B; i++) {
    double x[SUR_D], q = 0;
    for (int j = 0; j < SUR_D; j++) {
      x[j] = (phi[i * SUR_D + j] - s->shift[j]) / s->scale[j];
      double v = (x[j] - s->center[j]) / s->spread[j];
      u[i * SUR_F + j] = v;
      u[i * SUR_F + SUR_D + j] = log1p(v * v);
      x[j] -= s->mu[j];
    }
    for (int j = 0; j < SUR_D; j++) {
      double w = 0;
      for (int k = 0; k <= j; k++) w += s->Linv[j * SUR_D + k] * x[k];
      q += w * w;
    }
    gauss[i] = s->log_norm - 0.5 * q;
  }
}

/* log q of B finite points into lp; z_l and h_l kept in work for backward. */
static void forward(const jade_sed_surrogate *s, size_t B, const double *phi, double *lp, double *work) {
  const sed_mlp *m = &s->net;
  size_t W = (size_t)s->width;
  views v = view(s, B, work);
  features(s, B, phi, v.u, lp);
  const double *in = v.u;
  for (int l = 0; l < s->layers; l++) {
    double *zl = v.z + (size_t)l * B * W, *hl = v.h + (size_t)l * B * W;
    sed_linear(B, m->dims[l], (int)W, in, m->W[l], m->b[l], zl);
    for (size_t q = 0; q < B * W; q++) hl[q] = zl[q] * sed_sigmoid(zl[q]);
    in = hl;
  }
  sed_linear(B, (int)W, 1, in, m->W[s->layers], m->b[s->layers], v.out);
  for (size_t i = 0; i < B; i++) lp[i] += v.out[i];
}

/* offsets of each layer's parameters (W then b) in the flat parameter vector */
static void param_offsets(const sed_mlp *m, size_t *off) {
  size_t o = 0;
  for (int l = 0; l < m->n_layers; l++) {
    off[l] = o;
    o += (size_t)m->dims[l + 1] * (m->dims[l] + 1);
  }
}

/* Gradient (added into grad) of sum_i c_i f(u_i) given dL/df_i = c_i in c (B), after forward. */
static void backward(const jade_sed_surrogate *s, size_t B, const double *c, double *grad, double *work) {
  const sed_mlp *m = &s->net;
  size_t W = (size_t)s->width;
  int L = m->n_layers;
  views v = view(s, B, work);
  double *dcur = v.d1, *dnext = v.d2;
  size_t off[SED_MAX_LAYERS];
  param_offsets(m, off);
  memcpy(dcur, c, B * sizeof(double));
  for (int l = L - 1; l >= 0; l--) {
    int in = m->dims[l], nout = m->dims[l + 1];
    const double *hin = l == 0 ? v.u : v.h + (size_t)(l - 1) * B * W;
    double *gW = grad + off[l], *gb = gW + (size_t)nout * in;
    /* dL/dW_l += dcur^T h_{l-1}: (out x B)(B x in) */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nout, in, (int)B, 1.0, dcur, nout, hin, in, 1.0, gW, in);
    for (size_t i = 0; i < B; i++)
      for (int k = 0; k < nout; k++) gb[k] += dcur[i * nout + k];
    if (l == 0) break;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, in, nout, 1.0, dcur, nout, m->W[l], in, 0.0, dnext,
                in);
    const double *zl = v.z + (size_t)(l - 1) * B * W;
    for (size_t q = 0; q < B * (size_t)in; q++) dnext[q] *= silu_d1(zl[q]);
    double *t = dcur;
    dcur = dnext;
    dnext = t;
  }
}

/* d log q / dx (B x 16, x = (phi - shift)/scale) after forward: the Gaussian's -C^-1 (x - mu)
 * plus the chain rule through the features of df/du (kept in v.gu). */
static void grad_x(const jade_sed_surrogate *s, size_t B, const double *phi, double *work, double *gx) {
  const sed_mlp *m = &s->net;
  size_t W = (size_t)s->width;
  int H = s->layers;
  views v = view(s, B, work);
  /* df/du: backward from a unit output gradient */
  double *dcur = v.d1, *dnext = v.d2;
  for (size_t i = 0; i < B; i++) memcpy(dcur + i * W, m->W[H], W * sizeof(double));
  for (int l = H - 1; l >= 0; l--) {
    const double *zl = v.z + (size_t)l * B * W;
    for (size_t q = 0; q < B * W; q++) dcur[q] *= silu_d1(zl[q]);
    int in = m->dims[l];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, in, (int)W, 1.0, dcur, (int)W, m->W[l], in, 0.0,
                l == 0 ? v.gu : dnext, in);
    double *t = dcur;
    dcur = dnext;
    dnext = t;
  }
  for (size_t i = 0; i < B; i++) {
    double d[SUR_D], w[SUR_D];
    for (int j = 0; j < SUR_D; j++) d[j] = (phi[i * SUR_D + j] - s->shift[j]) / s->scale[j] - s->mu[j];
    for (int j = 0; j < SUR_D; j++) {
      w[j] = 0;
      for (int k = 0; k <= j; k++) w[j] += s->Linv[j * SUR_D + k] * d[k];
    }
    for (int j = 0; j < SUR_D; j++) {
      double g = 0, vj = v.u[i * SUR_F + j];
      for (int k = j; k < SUR_D; k++) g -= s->Linv[k * SUR_D + j] * w[k]; /* -Linv^T Linv (x - mu) */
      g += (v.gu[i * SUR_F + j] + v.gu[i * SUR_F + SUR_D + j] * 2 * vj / (1 + vj * vj)) / s->spread[j];
      gx[i * SUR_D + j] = g;
    }
  }
}

/* Gradient (added into grad) of sum_i a_i . d log q / dx (u_i) with a (B x 16) fixed, after
 * forward: the direction c = J_features a in u, a tangent pass (zdot, hdot) and the reverse pass
 * through both (second derivatives of SiLU enter through z). */
static void grad_x_backward(const jade_sed_surrogate *s, size_t B, const double *a, double *grad, double *work) {
  const sed_mlp *m = &s->net;
  size_t W = (size_t)s->width;
  int H = s->layers;
  views v = view(s, B, work);
  size_t off[SED_MAX_LAYERS];
  param_offsets(m, off);
  for (size_t i = 0; i < B; i++)
    for (int j = 0; j < SUR_D; j++) {
      double vj = v.u[i * SUR_F + j], aj = a[i * SUR_D + j] / s->spread[j];
      v.c[i * SUR_F + j] = aj;
      v.c[i * SUR_F + SUR_D + j] = aj * 2 * vj / (1 + vj * vj);
    }
  /* tangent: zdot_l = hdot_{l-1} W_l^T, hdot_l = silu'(z_l) zdot_l, hdot_{-1} = c */
  const double *hin = v.c;
  for (int l = 0; l < H; l++) {
    double *zd = v.zd + (size_t)l * B * W, *hd = v.hd + (size_t)l * B * W;
    const double *zl = v.z + (size_t)l * B * W;
    int in = m->dims[l];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)W, in, 1.0, hin, in, m->W[l], in, 0.0, zd, (int)W);
    for (size_t q = 0; q < B * W; q++) hd[q] = silu_d1(zl[q]) * zd[q];
    hin = hd;
  }
  /* reverse of fdot = sum_i w_out . hdot_{H-1,i}: adjoints hb (of h) and hdb (of hdot) */
  double *gWo = grad + off[H];
  const double *hdl = v.hd + (size_t)(H - 1) * B * W;
  for (size_t i = 0; i < B; i++)
    for (size_t k = 0; k < W; k++) gWo[k] += hdl[i * W + k];
  double *hb = v.hb, *hdb = v.hdb, *hb2 = v.hb2, *hdb2 = v.hdb2;
  memset(hb, 0, B * W * sizeof(double));
  for (size_t i = 0; i < B; i++) memcpy(hdb + i * W, m->W[H], W * sizeof(double));
  for (int l = H - 1; l >= 0; l--) {
    const double *zl = v.z + (size_t)l * B * W, *zd = v.zd + (size_t)l * B * W;
    /* zdot_bar = hdot_bar silu'(z) (into hdb); z_bar = h_bar silu'(z) + hdot_bar silu''(z) zdot (into hb) */
    for (size_t q = 0; q < B * W; q++) {
      double d1 = silu_d1(zl[q]);
      hb[q] = hb[q] * d1 + hdb[q] * silu_d2(zl[q]) * zd[q];
      hdb[q] *= d1;
    }
    int in = m->dims[l];
    const double *h_in = l == 0 ? v.u : v.h + (size_t)(l - 1) * B * W;
    const double *hd_in = l == 0 ? v.c : v.hd + (size_t)(l - 1) * B * W;
    double *gW = grad + off[l], *gb = gW + W * (size_t)in;
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)W, in, (int)B, 1.0, hdb, (int)W, hd_in, in, 1.0, gW, in);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)W, in, (int)B, 1.0, hb, (int)W, h_in, in, 1.0, gW, in);
    for (size_t i = 0; i < B; i++)
      for (size_t k = 0; k < W; k++) gb[k] += hb[i * W + k];
    if (l == 0) break;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, in, (int)W, 1.0, hdb, (int)W, m->W[l], in, 0.0, hdb2,
                in);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, in, (int)W, 1.0, hb, (int)W, m->W[l], in, 0.0, hb2, in);
    double *t = hb;
    hb = hb2;
    hb2 = t;
    t = hdb;
    hdb = hdb2;
    hdb2 = t;
  }
}

jade_status jade_sed_surrogate_grad(const jade_sed_surrogate *s, size_t n, const double *phi, double *lp, double *grad) {
  const size_t chunk = 64;
  double *work = jade_alloc(work_size(s, chunk) * sizeof(double));
  if (!work) return JADE_ERR_NOMEM;
  for (size_t i0 = 0; i0 < n; i0 += chunk) {
    size_t m = n - i0 < chunk ? n - i0 : chunk;
    forward(s, m, phi + i0 * SUR_D, lp + i0, work);
    grad_x(s, m, phi + i0 * SUR_D, work, grad + i0 * SUR_D);
    for (size_t q = i0 * SUR_D; q < (i0 + m) * SUR_D; q++) grad[q] /= s->scale[q % SUR_D]; /* d/dphi */
  }
  free(work);
  return JADE_OK;
}

jade_status jade_sed_surrogate_logp(const jade_sed_surrogate *s, size_t n, const double *phi, double *lp) {
  const size_t chunk = 256;
  jade_status st = JADE_OK;
  int par = n >= 4 * chunk;
#pragma omp parallel if (par)
  {
    double *work = jade_alloc(work_size(s, chunk) * sizeof(double)), *buf = jade_alloc(chunk * SUR_D * sizeof(double));
    size_t *map = jade_alloc(chunk * sizeof(size_t));
    double *l = jade_alloc(chunk * sizeof(double));
    if (!work || !buf || !map || !l) {
#pragma omp atomic write
      st = JADE_ERR_NOMEM;
    }
#pragma omp for schedule(static)
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
      if (!work || !buf || !map || !l) continue;
      size_t m = n - i0 < chunk ? n - i0 : chunk, k = 0;
      for (size_t i = i0; i < i0 + m; i++) {
        int ok = 1;
        for (int j = 0; j < SUR_D; j++) ok &= isfinite(phi[i * SUR_D + j]);
        lp[i] = -INFINITY;
        if (!ok) continue;
        memcpy(buf + k * SUR_D, phi + i * SUR_D, SUR_D * sizeof(double));
        map[k++] = i;
      }
      if (!k) continue;
      forward(s, k, buf, l, work);
      for (size_t q = 0; q < k; q++) lp[map[q]] = isnan(l[q]) ? -INFINITY : l[q];
    }
    free(work);
    free(buf);
    free(map);
    free(l);
  }
  return st == JADE_OK ? JADE_OK : jade_error(st, "surrogate: out of memory");
}

/* ---- the least-squares fit --------------------------------------------------------------- */

/* One batch: Bv value points (phi, logp) and Bg gradient points (phig, dlogp: d log p / d phi),
 * with the weight of the gradient term. */
typedef struct {
  int Bv, Bg;
  const double *phi, *logp, *phig, *dlogp;
  double lambda;
} batch;

typedef struct {
  size_t capv, capg;
  double *work, *lp, *c, *gx, *g;
} chunk_ws;

static void ws_free(chunk_ws *w) {
  for (int c = 0; c < SUR_CHUNKS; c++) {
    free(w[c].work);
    free(w[c].lp);
    free(w[c].c);
    free(w[c].gx);
    free(w[c].g);
  }
}

static jade_status ws_alloc(const jade_sed_surrogate *s, int Bv, int Bg, chunk_ws *w) {
  memset(w, 0, SUR_CHUNKS * sizeof *w);
  size_t capv = ((size_t)Bv + SUR_CHUNKS - 1) / SUR_CHUNKS, capg = ((size_t)Bg + SUR_CHUNKS - 1) / SUR_CHUNKS;
  size_t cap = capv > capg ? capv : capg, P = jade_sed_surrogate_n_params(s);
  for (int c = 0; c < SUR_CHUNKS; c++) {
    w[c].capv = capv;
    w[c].capg = capg;
    w[c].work = jade_alloc(work_size(s, cap ? cap : 1) * sizeof(double));
    w[c].lp = jade_alloc((cap + 1) * sizeof(double));
    w[c].c = jade_alloc((cap + 1) * sizeof(double));
    w[c].gx = jade_alloc((capg + 1) * SUR_D * sizeof(double));
    w[c].g = jade_alloc(P * sizeof(double));
    if (!w[c].work || !w[c].lp || !w[c].c || !w[c].gx || !w[c].g) {
      ws_free(w);
      return JADE_ERR_NOMEM;
    }
  }
  return JADE_OK;
}

/* chunk c's share [*i0, *i0 + return) of B points cut into chunks of cap */
static size_t chunk_range(int c, size_t cap, int B, size_t *i0) {
  *i0 = (size_t)c * cap;
  return *i0 >= (size_t)B ? 0 : ((size_t)B - *i0 < cap ? (size_t)B - *i0 : cap);
}

/* Chunk c's part of the loss sum_i (q_i - y_i)^2 / Bv + lambda sum_k |d log q/dx_k - t_k|^2 /
 * (16 Bg) (t: the gradient labels in x) and, if grad, its gradient into w->g. */
static double chunk_loss(const jade_sed_surrogate *s, const batch *bt, int c, int grad, chunk_ws *w) {
  size_t P = jade_sed_surrogate_n_params(s), i0, nb;
  double acc = 0;
  if (grad) memset(w->g, 0, P * sizeof(double));
  if ((nb = chunk_range(c, w->capv, bt->Bv, &i0))) {
    forward(s, nb, bt->phi + i0 * SUR_D, w->lp, w->work);
    for (size_t i = 0; i < nb; i++) {
      double r = w->lp[i] - bt->logp[i0 + i];
      acc += r * r / bt->Bv;
      w->c[i] = 2.0 * r / bt->Bv;
    }
    if (grad) backward(s, nb, w->c, w->g, w->work);
  }
  if ((nb = chunk_range(c, w->capg, bt->Bg, &i0))) {
    const double *ph = bt->phig + i0 * SUR_D, *t = bt->dlogp + i0 * SUR_D;
    double f = bt->lambda / (SUR_D * (double)bt->Bg);
    forward(s, nb, ph, w->lp, w->work);
    grad_x(s, nb, ph, w->work, w->gx);
    for (size_t q = 0; q < nb * SUR_D; q++) {
      double r = w->gx[q] - t[q] * s->scale[q % SUR_D];
      acc += f * r * r;
      w->gx[q] = 2.0 * f * r;
    }
    if (grad) grad_x_backward(s, nb, w->gx, w->g, w->work);
  }
  return acc;
}

/* The batch's loss and gradient, cut into fixed chunks evaluated in parallel and summed in chunk
 * order (thread-count independent). */
static void loss_chunked(const jade_sed_surrogate *s, const batch *bt, double *loss, double *grad, chunk_ws *w) {
  size_t P = jade_sed_surrogate_n_params(s);
  double part[SUR_CHUNKS] = {0};
  int par = (size_t)(bt->Bv + 3 * bt->Bg) * (size_t)s->width >= 16384;
#pragma omp parallel for schedule(static, 1) if (par)
  for (int c = 0; c < SUR_CHUNKS; c++) part[c] = chunk_loss(s, bt, c, grad != NULL, &w[c]);
  double L = 0;
  if (grad) memset(grad, 0, P * sizeof(double));
  for (int c = 0; c < SUR_CHUNKS; c++) {
    L += part[c];
    if (grad)
      for (size_t q = 0; q < P; q++) grad[q] += w[c].g[q];
  }
  *loss = L;
}

jade_status jade_sed_surrogate_loss(const jade_sed_surrogate *s, int Bv, const double *phi, const double *logp, int Bg,
                                    const double *phig, const double *dlogp, double grad_weight, double *loss,
                                    double *grad) {
  if (Bv < 0 || Bg < 0 || Bv + Bg < 1) return jade_error(JADE_ERR_INVALID, "surrogate loss: batch %d + %d", Bv, Bg);
  chunk_ws w[SUR_CHUNKS];
  jade_status st = ws_alloc(s, Bv, Bg, w);
  if (st) return st;
  batch bt = {Bv, Bg, phi, logp, phig, dlogp, grad_weight};
  loss_chunked(s, &bt, loss, grad, w);
  ws_free(w);
  return JADE_OK;
}

void jade_sed_surrogate_fit_options_default(jade_sed_surrogate_fit_options *o) {
  o->steps = 30000;
  o->batch = 256;
  o->batch_grad = 256;
  o->grad_weight = 1.0;
  o->lr = 2e-3;
  o->clip = 8.0;
  o->seed = 1;
  o->verbose = 0;
}

/* mu and Linv from the moments of the points idx[0..n) (x = (phi - shift)/scale): C = L L^T
 * (Cholesky), Linv = L^-1 by forward substitution. */
static jade_status fit_gaussian(jade_sed_surrogate *s, size_t n, const size_t *idx, const double *phi) {
  double C[SUR_D * SUR_D] = {0}, L[SUR_D * SUR_D] = {0};
  memset(s->mu, 0, sizeof s->mu);
  for (size_t i = 0; i < n; i++)
    for (int j = 0; j < SUR_D; j++) s->mu[j] += (phi[idx[i] * SUR_D + j] - s->shift[j]) / s->scale[j] / (double)n;
  for (size_t i = 0; i < n; i++) {
    double d[SUR_D];
    for (int j = 0; j < SUR_D; j++) d[j] = (phi[idx[i] * SUR_D + j] - s->shift[j]) / s->scale[j] - s->mu[j];
    for (int j = 0; j < SUR_D; j++)
      for (int k = 0; k <= j; k++) C[j * SUR_D + k] += d[j] * d[k] / (double)(n - 1);
  }
  for (int i = 0; i < SUR_D; i++)
    for (int j = 0; j <= i; j++) {
      double v = C[i * SUR_D + j];
      for (int k = 0; k < j; k++) v -= L[i * SUR_D + k] * L[j * SUR_D + k];
      if (i == j) {
        if (!(v > 0)) return jade_error(JADE_ERR_NUMERIC, "surrogate: the training points' covariance is singular");
        L[i * SUR_D + i] = sqrt(v);
      } else
        L[i * SUR_D + j] = v / L[j * SUR_D + j];
    }
  memset(s->Linv, 0, sizeof s->Linv);
  for (int c = 0; c < SUR_D; c++) /* column c of L^-1: solve L y = e_c */
    for (int i = c; i < SUR_D; i++) {
      double v = i == c ? 1.0 : 0.0;
      for (int k = c; k < i; k++) v -= L[i * SUR_D + k] * s->Linv[k * SUR_D + c];
      s->Linv[i * SUR_D + c] = v / L[i * SUR_D + i];
    }
  update_log_norm(s);
  return JADE_OK;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median_sorted(const double *v, size_t n) { return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]); }

/* center (median) and spread (1.4826 x median absolute deviation: the sd of a Gaussian) of each
 * coordinate of x over the n points */
static jade_status robust_scales(jade_sed_surrogate *s, size_t n, const double *phi) {
  double *v = jade_alloc(n * sizeof(double) + 8);
  if (!v) return JADE_ERR_NOMEM;
  for (int j = 0; j < SUR_D; j++) {
    for (size_t i = 0; i < n; i++) v[i] = (phi[i * SUR_D + j] - s->shift[j]) / s->scale[j];
    qsort(v, n, sizeof *v, cmp_double);
    s->center[j] = median_sorted(v, n);
    for (size_t i = 0; i < n; i++) v[i] = fabs(v[i] - s->center[j]);
    qsort(v, n, sizeof *v, cmp_double);
    double mad = 1.4826 * median_sorted(v, n);
    s->spread[j] = mad > 0 ? mad : 1.0;
  }
  free(v);
  return JADE_OK;
}

int jade_sed_surrogate_in_domain(const jade_sed_surrogate *s, const double *phi) {
  for (int j = 0; j < SUR_D; j++) {
    double v = ((phi[j] - s->shift[j]) / s->scale[j] - s->center[j]) / s->spread[j];
    if (!(fabs(v) <= s->clip)) return 0;
  }
  return 1;
}

/* indices of the points of phi (n x 16) inside the domain */
static size_t domain_index(const jade_sed_surrogate *s, size_t n, const double *phi, size_t *idx) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (jade_sed_surrogate_in_domain(s, phi + i * SUR_D)) idx[k++] = i;
  return k;
}

static jade_status check_data(const jade_sed_surrogate_data *d, const jade_sed_surrogate_fit_options *o) {
  if (d->n < 2 * SUR_D || o->batch < 1 || o->batch_grad < 0 || o->steps < 0 || !(o->lr > 0) || !(o->clip > 0) ||
      !(o->grad_weight >= 0))
    return jade_error(JADE_ERR_INVALID,
                      "surrogate fit: bad options (points %zu, batches %d + %d, steps %ld, lr %g, clip %g, gradient "
                      "weight %g)", d->n, o->batch, o->batch_grad, o->steps, o->lr, o->clip, o->grad_weight);
  for (size_t q = 0; q < d->n * SUR_D; q++)
    if (!isfinite(d->phi[q])) return jade_error(JADE_ERR_NUMERIC, "surrogate fit: point %zu is not finite", q / SUR_D);
  for (size_t i = 0; i < d->n; i++)
    if (!isfinite(d->logp[i])) return jade_error(JADE_ERR_NUMERIC, "surrogate fit: log-density %zu is not finite", i);
  for (size_t q = 0; q < d->n_grad * SUR_D; q++)
    if (!isfinite(d->phi_grad[q]) || !isfinite(d->dlogp[q]))
      return jade_error(JADE_ERR_NUMERIC, "surrogate fit: gradient point %zu is not finite", q / SUR_D);
  return JADE_OK;
}

/* B random members of idx (n) into the batch arrays: Philox (seed, stream) counters from base */
static void draw(uint64_t seed, uint64_t stream, uint64_t base, int B, const size_t *idx, size_t n, const double *x,
                 const double *y, int ydim, double *xb, double *yb) {
  for (int i = 0; i < B; i++) {
    size_t r = (size_t)(jade_rng_uniform(seed, stream, base + (uint64_t)i) * (double)n);
    r = idx[r >= n ? n - 1 : r];
    memcpy(xb + (size_t)i * SUR_D, x + r * SUR_D, SUR_D * sizeof(double));
    memcpy(yb + (size_t)i * ydim, y + r * ydim, (size_t)ydim * sizeof(double));
  }
}

/* Adam (Kingma & Ba 2015) with a cosine decay to lr/50 on the loss of random batches. */
static jade_status adam(jade_sed_surrogate *s, const jade_sed_surrogate_data *d, const size_t *iv, size_t nv,
                        const size_t *ig, size_t ng, const jade_sed_surrogate_fit_options *o) {
  int Bv = o->batch, Bg = ng ? o->batch_grad : 0;
  size_t P = jade_sed_surrogate_n_params(s);
  double *p = jade_alloc(P * sizeof(double)), *g = jade_alloc(P * sizeof(double));
  double *m1 = jade_calloc(P, sizeof(double)), *m2 = jade_calloc(P, sizeof(double));
  double *xb = jade_alloc((size_t)(Bv + 1) * SUR_D * sizeof(double)), *yb = jade_alloc((size_t)(Bv + 1) * sizeof(double));
  double *xg = jade_alloc((size_t)(Bg + 1) * SUR_D * sizeof(double)), *tg = jade_alloc((size_t)(Bg + 1) * SUR_D * sizeof(double));
  chunk_ws w[SUR_CHUNKS];
  memset(w, 0, sizeof w);
  jade_status st = p && g && m1 && m2 && xb && yb && xg && tg ? ws_alloc(s, Bv, Bg, w) : JADE_ERR_NOMEM;
  if (!st) jade_sed_surrogate_get_params(s, p);
  const uint64_t stream = JADE_STREAM(JADE_RNG_TRAIN, 0x5a6);
  double t0 = jade_time_now(), recent = 0;
  batch bt = {Bv, Bg, xb, yb, xg, tg, o->grad_weight};
  for (long step = 0; !st && step < o->steps; step++) {
    draw(o->seed, stream, (uint64_t)step << 32, Bv, iv, nv, d->phi, d->logp, 1, xb, yb);
    if (Bg) draw(o->seed, stream, ((uint64_t)step << 32) + (1u << 30), Bg, ig, ng, d->phi_grad, d->dlogp, SUR_D, xg, tg);
    double loss;
    loss_chunked(s, &bt, &loss, g, w);
    if (!isfinite(loss)) {
      st = jade_error(JADE_ERR_NUMERIC, "surrogate fit: loss is not finite at step %ld", step);
      break;
    }
    recent = step ? 0.999 * recent + 0.001 * loss : loss;
    double lr = o->lr * (0.02 + 0.98 * 0.5 * (1.0 + cos(M_PI * (double)step / (double)o->steps)));
    sed_adam_step(P, p, g, m1, m2, lr, step, 0.0);
    jade_sed_surrogate_set_params(s, p);
    if (o->verbose && (step + 1) % 5000 == 0) {
      char el[32];
      jade_format_duration(jade_time_now() - t0, el, sizeof el);
      fprintf(stderr, "surrogate fit: step %ld/%ld, running loss %.4f, lr %.2e (%s)\n", step + 1, o->steps, recent, lr,
              el);
    }
  }
  ws_free(w);
  free(p);
  free(g);
  free(m1);
  free(m2);
  free(xb);
  free(yb);
  free(xg);
  free(tg);
  return st;
}

jade_status jade_sed_surrogate_fit(jade_sed_surrogate *s, const jade_sed_surrogate_data *d, const double shift[16],
                                   const double scale[16], const jade_sed_surrogate_fit_options *o, double *rms,
                                   size_t *n_fit) {
  jade_status st = check_data(d, o);
  if (st) return st;
  for (int j = 0; j < SUR_D; j++) {
    if (!(scale[j] > 0) || !isfinite(shift[j]))
      return jade_error(JADE_ERR_INVALID, "surrogate fit: shift/scale %d invalid", j);
    s->shift[j] = shift[j];
    s->scale[j] = scale[j];
  }
  s->clip = o->clip;
  if ((st = robust_scales(s, d->n, d->phi))) return st;
  /* the domain: points within clip robust sds in every coordinate (the far outliers of a
   * diffusion model's samples, tens of nats below the bulk, are left to the Gaussian's tails) */
  size_t *iv = jade_alloc(d->n * sizeof(size_t) + 8), *ig = jade_alloc(d->n_grad * sizeof(size_t) + 8);
  if (!iv || !ig) st = JADE_ERR_NOMEM;
  size_t nv = st ? 0 : domain_index(s, d->n, d->phi, iv), ng = st ? 0 : domain_index(s, d->n_grad, d->phi_grad, ig);
  if (n_fit) *n_fit = nv;
  if (!st && nv < 2 * SUR_D)
    st = jade_error(JADE_ERR_NUMERIC, "surrogate fit: only %zu of %zu points within %g robust sd", nv, d->n, o->clip);
  if (!st) st = fit_gaussian(s, nv, iv, d->phi);
  if (!st) st = adam(s, d, iv, nv, ig, ng, o);
  if (!st && rms) {
    double *q = jade_alloc(d->n * sizeof(double) + 8);
    if (!q) st = JADE_ERR_NOMEM;
    else {
      st = jade_sed_surrogate_logp(s, d->n, d->phi, q);
      double acc = 0;
      for (size_t k = 0; k < nv; k++) acc += (q[iv[k]] - d->logp[iv[k]]) * (q[iv[k]] - d->logp[iv[k]]);
      *rms = sqrt(acc / (double)nv);
      free(q);
    }
  }
  free(iv);
  free(ig);
  return st;
}

/* ---- files -------------------------------------------------------------------------------- */

jade_status jade_sed_surrogate_save(const jade_sed_surrogate *s, const char *path, const char *description) {
  int L = s->net.n_layers;
  jade_st_tensor t[2 * SED_MAX_LAYERS + 6];
  char names[2 * SED_MAX_LAYERS][32];
  int nt = 0;
  t[nt++] = (jade_st_tensor){.name = "shift", .dtype = JADE_F64, .ndim = 1, .shape = {SUR_D}, .data = (void *)s->shift};
  t[nt++] = (jade_st_tensor){.name = "scale", .dtype = JADE_F64, .ndim = 1, .shape = {SUR_D}, .data = (void *)s->scale};
  t[nt++] = (jade_st_tensor){.name = "mu", .dtype = JADE_F64, .ndim = 1, .shape = {SUR_D}, .data = (void *)s->mu};
  t[nt++] = (jade_st_tensor){.name = "L_inv", .dtype = JADE_F64, .ndim = 2, .shape = {SUR_D, SUR_D}, .data = (void *)s->Linv};
  t[nt++] = (jade_st_tensor){.name = "center", .dtype = JADE_F64, .ndim = 1, .shape = {SUR_D}, .data = (void *)s->center};
  t[nt++] = (jade_st_tensor){.name = "spread", .dtype = JADE_F64, .ndim = 1, .shape = {SUR_D}, .data = (void *)s->spread};
  for (int l = 0; l < L; l++) {
    snprintf(names[2 * l], 32, "NN.%d.weight", l);
    snprintf(names[2 * l + 1], 32, "NN.%d.bias", l);
    t[nt++] = (jade_st_tensor){.name = names[2 * l], .dtype = JADE_F64, .ndim = 2,
                               .shape = {(size_t)s->net.dims[l + 1], (size_t)s->net.dims[l]}, .data = s->net.W[l]};
    t[nt++] = (jade_st_tensor){.name = names[2 * l + 1], .dtype = JADE_F64, .ndim = 1,
                               .shape = {(size_t)s->net.dims[l + 1]}, .data = s->net.b[l]};
  }
  char w[24], l[24], c[40];
  snprintf(w, sizeof w, "%d", s->width);
  snprintf(l, sizeof l, "%d", s->layers);
  snprintf(c, sizeof c, "%.17g", s->clip);
  jade_st_meta meta[] = {{"format", "jade-sed-surrogate-1"}, {"width", w}, {"layers", l}, {"clip", c},
                         {"description", description ? description : ""}};
  return jade_safetensors_write(path, t, nt, meta, 5);
}

int jade_sed_is_surrogate_file(const char *path) {
  jade_safetensors *st;
  if (jade_safetensors_read(path, &st)) return 0;
  const char *fmt = jade_safetensors_meta(st, "format");
  int r = fmt && !strcmp(fmt, "jade-sed-surrogate-1");
  jade_safetensors_free(st);
  return r;
}

static jade_status meta_int(const jade_safetensors *st, const char *key, int *out) {
  const char *v;
  jade_status s = jade_safetensors_meta_get(st, key, &v);
  if (s) return s;
  char *end;
  long x = strtol(v, &end, 10);
  if (end == v || *end || x < 1 || x > 8192)
    return jade_error(JADE_ERR_FORMAT, "%s: metadata %s = '%s' is not a valid size", jade_safetensors_path(st), key, v);
  *out = (int)x;
  return JADE_OK;
}

jade_status jade_sed_surrogate_load(const char *path, jade_sed_surrogate **out) {
  *out = NULL;
  jade_safetensors *st;
  jade_status s = jade_safetensors_read(path, &st);
  if (s) return s;
  const char *fmt = jade_safetensors_meta(st, "format");
  jade_sed_surrogate *m = NULL;
  int width = 0, layers = 0;
  if (!fmt || strcmp(fmt, "jade-sed-surrogate-1")) {
    s = jade_error(JADE_ERR_FORMAT, "%s: not a jade prior surrogate (metadata format = '%s')", path, fmt ? fmt : "");
    goto fail;
  }
  if ((s = meta_int(st, "width", &width)) || (s = meta_int(st, "layers", &layers))) goto fail;
  if ((s = sur_alloc(width, layers, &m))) goto fail;
  if ((s = sed_st_copy(st, "shift", 1, SUR_D, 0, m->shift)) || (s = sed_st_copy(st, "scale", 1, SUR_D, 0, m->scale)) ||
      (s = sed_st_copy(st, "mu", 1, SUR_D, 0, m->mu)) || (s = sed_st_copy(st, "L_inv", 2, SUR_D, SUR_D, m->Linv)) ||
      (s = sed_st_copy(st, "center", 1, SUR_D, 0, m->center)) || (s = sed_st_copy(st, "spread", 1, SUR_D, 0, m->spread)))
    goto fail;
  const char *cv = jade_safetensors_meta(st, "clip");
  char *end = NULL;
  m->clip = cv ? strtod(cv, &end) : NAN;
  if (!cv || end == cv || *end || !(m->clip > 0)) {
    s = jade_error(JADE_ERR_FORMAT, "%s: metadata clip = '%s' is not a positive number", path, cv ? cv : "");
    goto fail;
  }
  char key[32];
  for (int l = 0; l < m->net.n_layers; l++) {
    snprintf(key, sizeof key, "NN.%d.weight", l);
    if ((s = sed_st_copy(st, key, 2, (size_t)m->net.dims[l + 1], (size_t)m->net.dims[l], m->net.W[l]))) goto fail;
    snprintf(key, sizeof key, "NN.%d.bias", l);
    if ((s = sed_st_copy(st, key, 1, (size_t)m->net.dims[l + 1], 0, m->net.b[l]))) goto fail;
  }
  for (int j = 0; j < SUR_D; j++) {
    if (!(m->scale[j] > 0) || !(m->Linv[j * SUR_D + j] > 0) || !(m->spread[j] > 0)) {
      s = jade_error(JADE_ERR_FORMAT, "%s: scale[%d], spread[%d] or L_inv[%d][%d] is not positive", path, j, j, j, j);
      goto fail;
    }
    for (int k = j + 1; k < SUR_D; k++)
      if (m->Linv[j * SUR_D + k] != 0) {
        s = jade_error(JADE_ERR_FORMAT, "%s: L_inv is not lower triangular (element %d, %d)", path, j, k);
        goto fail;
      }
  }
  update_log_norm(m);
  jade_safetensors_free(st);
  *out = m;
  return JADE_OK;
fail:
  jade_safetensors_free(st);
  jade_sed_surrogate_free(m);
  return s;
}
