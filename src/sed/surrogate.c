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

size_t jade_sed_surrogate_n_params(const jade_sed_surrogate *s) {
  size_t n = 0;
  for (int l = 0; l < s->net.n_layers; l++) n += (size_t)s->net.dims[l + 1] * (s->net.dims[l] + 1);
  return n;
}

void jade_sed_surrogate_get_params(const jade_sed_surrogate *s, double *p) {
  for (int l = 0; l < s->net.n_layers; l++) {
    size_t nw = (size_t)s->net.dims[l + 1] * s->net.dims[l];
    memcpy(p, s->net.W[l], nw * sizeof(double));
    p += nw;
    memcpy(p, s->net.b[l], (size_t)s->net.dims[l + 1] * sizeof(double));
    p += s->net.dims[l + 1];
  }
}

void jade_sed_surrogate_set_params(jade_sed_surrogate *s, const double *p) {
  for (int l = 0; l < s->net.n_layers; l++) {
    size_t nw = (size_t)s->net.dims[l + 1] * s->net.dims[l];
    memcpy(s->net.W[l], p, nw * sizeof(double));
    p += nw;
    memcpy(s->net.b[l], p, (size_t)s->net.dims[l + 1] * sizeof(double));
    p += s->net.dims[l + 1];
  }
}

/* ---- forward / backward on B points ------------------------------------------------------ */

/* Work of one chunk of up to B points: features (B x 32), then per hidden layer z and h
 * (B x width), the output (B), and two B x width gradient buffers. */
static size_t work_size(const jade_sed_surrogate *s, size_t B) {
  return B * SUR_F + 2 * (size_t)s->layers * B * s->width + B + 2 * B * (size_t)s->width;
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
  double *u = work, *z = u + B * SUR_F, *h = z + (size_t)s->layers * B * W, *out = h + (size_t)s->layers * B * W;
  features(s, B, phi, u, lp);
  const double *in = u;
  for (int l = 0; l < s->layers; l++) {
    double *zl = z + (size_t)l * B * W, *hl = h + (size_t)l * B * W;
    sed_linear(B, m->dims[l], (int)W, in, m->W[l], m->b[l], zl);
    for (size_t q = 0; q < B * W; q++) hl[q] = zl[q] * sed_sigmoid(zl[q]);
    in = hl;
  }
  sed_linear(B, (int)W, 1, in, m->W[s->layers], m->b[s->layers], out);
  for (size_t i = 0; i < B; i++) lp[i] += out[i];
}

/* Gradient (added into grad) of sum_i c_i f(u_i) given dL/df_i = c_i in c (B), after forward. */
static void backward(const jade_sed_surrogate *s, size_t B, const double *c, double *grad, double *work) {
  const sed_mlp *m = &s->net;
  size_t W = (size_t)s->width;
  int L = m->n_layers;
  double *u = work, *z = u + B * SUR_F, *h = z + (size_t)s->layers * B * W, *out = h + (size_t)s->layers * B * W;
  double *dcur = out + B, *dnext = dcur + B * W;
  size_t off[SED_MAX_LAYERS], o = 0;
  for (int l = 0; l < L; l++) {
    off[l] = o;
    o += (size_t)m->dims[l + 1] * (m->dims[l] + 1);
  }
  memcpy(dcur, c, B * sizeof(double));
  for (int l = L - 1; l >= 0; l--) {
    int in = m->dims[l], nout = m->dims[l + 1];
    const double *hin = l == 0 ? u : h + (size_t)(l - 1) * B * W;
    double *gW = grad + off[l], *gb = gW + (size_t)nout * in;
    /* dL/dW_l += dcur^T h_{l-1}: (out x B)(B x in) */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nout, in, (int)B, 1.0, dcur, nout, hin, in, 1.0, gW, in);
    for (size_t i = 0; i < B; i++)
      for (int k = 0; k < nout; k++) gb[k] += dcur[i * nout + k];
    if (l == 0) break;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, in, nout, 1.0, dcur, nout, m->W[l], in, 0.0, dnext,
                in);
    const double *zl = z + (size_t)(l - 1) * B * W;
    for (size_t q = 0; q < B * (size_t)in; q++) {
      double sg = sed_sigmoid(zl[q]);
      dnext[q] *= sg * (1.0 + zl[q] * (1.0 - sg)); /* SiLU' */
    }
    double *t = dcur;
    dcur = dnext;
    dnext = t;
  }
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

typedef struct {
  size_t cap;
  double *work, *lp, *c, *g;
} chunk_ws;

static void ws_free(chunk_ws *w) {
  for (int c = 0; c < SUR_CHUNKS; c++) {
    free(w[c].work);
    free(w[c].lp);
    free(w[c].c);
    free(w[c].g);
  }
}

static jade_status ws_alloc(const jade_sed_surrogate *s, int B, chunk_ws *w) {
  memset(w, 0, SUR_CHUNKS * sizeof *w);
  size_t cap = ((size_t)B + SUR_CHUNKS - 1) / SUR_CHUNKS, P = jade_sed_surrogate_n_params(s);
  for (int c = 0; c < SUR_CHUNKS; c++) {
    w[c].cap = cap;
    w[c].work = jade_alloc(work_size(s, cap) * sizeof(double));
    w[c].lp = jade_alloc(cap * sizeof(double));
    w[c].c = jade_alloc(cap * sizeof(double));
    w[c].g = jade_alloc(P * sizeof(double));
    if (!w[c].work || !w[c].lp || !w[c].c || !w[c].g) {
      ws_free(w);
      return JADE_ERR_NOMEM;
    }
  }
  return JADE_OK;
}

/* Loss sum (q_i - y_i)^2 / B and its gradient over the B points phi (B x 16), cut into fixed
 * chunks evaluated in parallel and summed in chunk order. */
static void loss_chunked(const jade_sed_surrogate *s, int B, const double *phi, const double *y, double *loss,
                         double *grad, chunk_ws *w) {
  size_t cap = w[0].cap, P = jade_sed_surrogate_n_params(s);
  double part[SUR_CHUNKS] = {0};
  int par = (size_t)B * (size_t)s->width >= 16384;
#pragma omp parallel for schedule(static, 1) if (par)
  for (int c = 0; c < SUR_CHUNKS; c++) {
    size_t i0 = (size_t)c * cap;
    if (i0 >= (size_t)B) continue;
    size_t nb = (size_t)B - i0 < cap ? (size_t)B - i0 : cap;
    forward(s, nb, phi + i0 * SUR_D, w[c].lp, w[c].work);
    double acc = 0;
    for (size_t i = 0; i < nb; i++) {
      double r = w[c].lp[i] - y[i0 + i];
      acc += r * r;
      w[c].c[i] = 2.0 * r / B;
    }
    part[c] = acc / B;
    if (grad) {
      memset(w[c].g, 0, P * sizeof(double));
      backward(s, nb, w[c].c, w[c].g, w[c].work);
    }
  }
  double L = 0;
  if (grad) memset(grad, 0, P * sizeof(double));
  for (int c = 0; c < SUR_CHUNKS; c++) {
    if ((size_t)c * cap >= (size_t)B) break;
    L += part[c];
    if (grad)
      for (size_t q = 0; q < P; q++) grad[q] += w[c].g[q];
  }
  *loss = L;
}

jade_status jade_sed_surrogate_loss(const jade_sed_surrogate *s, int B, const double *phi, const double *logp,
                                    double *loss, double *grad) {
  if (B < 1) return jade_error(JADE_ERR_INVALID, "surrogate loss: batch %d", B);
  chunk_ws w[SUR_CHUNKS];
  jade_status st = ws_alloc(s, B, w);
  if (st) return st;
  loss_chunked(s, B, phi, logp, loss, grad, w);
  ws_free(w);
  return JADE_OK;
}

void jade_sed_surrogate_fit_options_default(jade_sed_surrogate_fit_options *o) {
  o->steps = 30000;
  o->batch = 256;
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

jade_status jade_sed_surrogate_fit(jade_sed_surrogate *s, size_t n, const double *phi, const double *logp,
                                   const double shift[16], const double scale[16],
                                   const jade_sed_surrogate_fit_options *o, double *rms, size_t *n_fit) {
  int B = o->batch;
  if (n < 2 * SUR_D || B < 1 || o->steps < 0 || !(o->lr > 0) || !(o->clip > 0))
    return jade_error(JADE_ERR_INVALID, "surrogate fit: bad options (points %zu, batch %d, steps %ld, lr %g, clip %g)",
                      n, B, o->steps, o->lr, o->clip);
  for (size_t q = 0; q < n * SUR_D; q++)
    if (!isfinite(phi[q])) return jade_error(JADE_ERR_NUMERIC, "surrogate fit: point %zu is not finite", q / SUR_D);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(logp[i])) return jade_error(JADE_ERR_NUMERIC, "surrogate fit: log-density %zu is not finite", i);
  for (int j = 0; j < SUR_D; j++) {
    if (!(scale[j] > 0) || !isfinite(shift[j]))
      return jade_error(JADE_ERR_INVALID, "surrogate fit: shift/scale %d invalid", j);
    s->shift[j] = shift[j];
    s->scale[j] = scale[j];
  }
  s->clip = o->clip;
  jade_status st = robust_scales(s, n, phi);
  if (st) return st;
  /* the domain: points within clip robust sds in every coordinate (the far outliers of a
   * diffusion model's samples, tens of nats below the bulk, are left to the Gaussian's tails) */
  size_t *idx = jade_alloc(n * sizeof(size_t) + 8), ni = 0;
  if (!idx) return JADE_ERR_NOMEM;
  for (size_t i = 0; i < n; i++)
    if (jade_sed_surrogate_in_domain(s, phi + i * SUR_D)) idx[ni++] = i;
  if (n_fit) *n_fit = ni;
  if (ni < 2 * SUR_D) {
    free(idx);
    return jade_error(JADE_ERR_NUMERIC, "surrogate fit: only %zu of %zu points within %g robust sd", ni, n, o->clip);
  }
  st = fit_gaussian(s, ni, idx, phi);
  if (st) {
    free(idx);
    return st;
  }
  size_t P = jade_sed_surrogate_n_params(s);
  double *p = jade_alloc(P * sizeof(double)), *g = jade_alloc(P * sizeof(double));
  double *m1 = jade_calloc(P, sizeof(double)), *m2 = jade_calloc(P, sizeof(double));
  double *xb = jade_alloc((size_t)B * SUR_D * sizeof(double)), *yb = jade_alloc((size_t)B * sizeof(double));
  chunk_ws w[SUR_CHUNKS];
  memset(w, 0, sizeof w);
  st = p && g && m1 && m2 && xb && yb ? ws_alloc(s, B, w) : JADE_ERR_NOMEM;
  if (!st) jade_sed_surrogate_get_params(s, p);
  const uint64_t stream = JADE_STREAM(JADE_RNG_TRAIN, 0x5a6);
  const double b1 = 0.9, b2 = 0.999, aeps = 1e-8;
  double t0 = jade_time_now(), recent = 0;
  for (long step = 0; !st && step < o->steps; step++) {
    for (int i = 0; i < B; i++) {
      size_t r = (size_t)(jade_rng_uniform(o->seed, stream, ((uint64_t)step << 32) + (uint64_t)i) * (double)ni);
      r = idx[r >= ni ? ni - 1 : r];
      memcpy(xb + (size_t)i * SUR_D, phi + r * SUR_D, SUR_D * sizeof(double));
      yb[i] = logp[r];
    }
    double loss;
    loss_chunked(s, B, xb, yb, &loss, g, w);
    if (!isfinite(loss)) {
      st = jade_error(JADE_ERR_NUMERIC, "surrogate fit: loss is not finite at step %ld", step);
      break;
    }
    recent = step ? 0.999 * recent + 0.001 * loss : loss;
    /* cosine decay to lr/50 */
    double lr = o->lr * (0.02 + 0.98 * 0.5 * (1.0 + cos(M_PI * (double)step / (double)o->steps)));
    double c1 = 1.0 - pow(b1, (double)(step + 1)), c2 = 1.0 - pow(b2, (double)(step + 1));
    for (size_t q = 0; q < P; q++) {
      m1[q] = b1 * m1[q] + (1 - b1) * g[q];
      m2[q] = b2 * m2[q] + (1 - b2) * g[q] * g[q];
      p[q] -= lr * (m1[q] / c1) / (sqrt(m2[q] / c2) + aeps);
    }
    jade_sed_surrogate_set_params(s, p);
    if (o->verbose && (step + 1) % 5000 == 0) {
      char el[32];
      jade_format_duration(jade_time_now() - t0, el, sizeof el);
      fprintf(stderr, "surrogate fit: step %ld/%ld, running rms %.4f nats, lr %.2e (%s)\n", step + 1, o->steps,
              sqrt(recent), lr, el);
    }
  }
  if (!st && rms) {
    double *q = jade_alloc(n * sizeof(double) + 8);
    if (!q) st = JADE_ERR_NOMEM;
    else {
      st = jade_sed_surrogate_logp(s, n, phi, q);
      double acc = 0;
      for (size_t k = 0; k < ni; k++) acc += (q[idx[k]] - logp[idx[k]]) * (q[idx[k]] - logp[idx[k]]);
      *rms = sqrt(acc / (double)ni);
      free(q);
    }
  }
  free(idx);
  ws_free(w);
  free(p);
  free(g);
  free(m1);
  free(m2);
  free(xb);
  free(yb);
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
