/* Optimiser and training utilities: AdamW, global gradient-norm clipping, linear LR
 * schedule with warm-up, EMA of weights (API: include/jade/nn.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jade/nn.h"

struct jade_adamw {
  size_t n;
  jade_adamw_config cfg;
  long t;
  float *m, *v;
};

jade_status jade_adamw_create(jade_adamw **out, size_t n, const jade_adamw_config *cfg) {
  *out = NULL;
  if (!cfg || cfg->beta1 < 0 || cfg->beta1 >= 1 || cfg->beta2 < 0 || cfg->beta2 >= 1 ||
      cfg->eps <= 0 || cfg->weight_decay < 0)
    return jade_error(JADE_ERR_INVALID, "adamw: need 0 <= beta < 1, eps > 0, weight_decay >= 0");
  jade_adamw *o = jade_calloc(1, sizeof *o);
  if (!o) return JADE_ERR_NOMEM;
  o->n = n;
  o->cfg = *cfg;
  o->m = jade_calloc(n ? n : 1, sizeof(float));
  o->v = jade_calloc(n ? n : 1, sizeof(float));
  if (!o->m || !o->v) {
    jade_adamw_free(o);
    return JADE_ERR_NOMEM;
  }
  *out = o;
  return JADE_OK;
}

void jade_adamw_free(jade_adamw *opt) {
  if (!opt) return;
  free(opt->m);
  free(opt->v);
  free(opt);
}

long jade_adamw_steps(const jade_adamw *opt) { return opt->t; }
float *jade_adamw_m(jade_adamw *opt) { return opt->m; }
float *jade_adamw_v(jade_adamw *opt) { return opt->v; }
void jade_adamw_set_steps(jade_adamw *opt, long t) { opt->t = t; }

void jade_adamw_step_fused(jade_adamw *opt, float *params, const float *grads,
                           const unsigned char *decay_mask, float lr, float grad_scale,
                           float *ema, float ema_decay) {
  // Kingma & Ba 2015 Alg. 1 with bias correction; decoupled weight decay as in
  // Loshchilov & Hutter 2019 / optax.adamw (decay scaled by lr, not by the Adam denominator)
  opt->t++;
  const float b1 = opt->cfg.beta1, b2 = opt->cfg.beta2, eps = opt->cfg.eps;
  const float wd = opt->cfg.weight_decay;
  const float bc1 = (float)(1.0 - pow(b1, (double)opt->t));
  const float bc2 = (float)(1.0 - pow(b2, (double)opt->t));
  const float ea = 1.0f - ema_decay;
  float *m = opt->m, *v = opt->v;
  const size_t n = opt->n;
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    float g = grads[i] * grad_scale;
    float mi = b1 * m[i] + (1.0f - b1) * g;
    float vi = b2 * v[i] + (1.0f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float upd = (mi / bc1) / (sqrtf(vi / bc2) + eps);
    if (wd > 0.0f && (!decay_mask || decay_mask[i])) upd += wd * params[i];
    float pi = params[i] - lr * upd;
    params[i] = pi;
    if (ema) ema[i] += ea * (pi - ema[i]);
  }
}

void jade_adamw_step(jade_adamw *opt, float *params, const float *grads,
                     const unsigned char *decay_mask, float lr) {
  jade_adamw_step_fused(opt, params, grads, decay_mask, lr, 1.0f, NULL, 0.0f);
}

unsigned char *jade_decay_mask(const jade_tensor_info *tensors, int n_tensors, size_t n) {
  unsigned char *mask = jade_calloc(n ? n : 1, 1);
  if (!mask) return NULL;
  for (int i = 0; i < n_tensors; i++)
    if (tensors[i].decay && tensors[i].offset + tensors[i].numel <= n)
      memset(mask + tensors[i].offset, 1, tensors[i].numel);
  return mask;
}

/* Fixed-order reduction: fixed blocks of 4096 elements, summed in double in block order. */
double jade_grad_norm(const float *grads, size_t n) {
  const size_t blk = 4096;
  size_t nb = (n + blk - 1) / blk;
  double *part = jade_alloc((nb ? nb : 1) * sizeof(double));
  double ss = 0.0;
  if (part) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t k = 0; k < nb; k++) {
      size_t i1 = (k + 1) * blk < n ? (k + 1) * blk : n;
      double s = 0.0;
      for (size_t i = k * blk; i < i1; i++) s += (double)grads[i] * grads[i];
      part[k] = s;
    }
    for (size_t k = 0; k < nb; k++) ss += part[k];
    free(part);
  } else {
    for (size_t i = 0; i < n; i++) ss += (double)grads[i] * grads[i];
  }
  return sqrt(ss);
}

double jade_clip_factor(double norm, double max_norm) {
  // optax.clip_by_global_norm: g * max_norm / norm when norm > max_norm
  return max_norm > 0.0 && norm > max_norm ? max_norm / norm : 1.0;
}

double jade_clip_grad_norm(float *grads, size_t n, double max_norm) {
  double norm = jade_grad_norm(grads, n);
  double f = jade_clip_factor(norm, max_norm);
  if (f < 1.0) {
    float ff = (float)f;
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) grads[i] *= ff;
  }
  return norm;
}

double jade_lr_linear(long step, long warmup, long total, double lr_peak, double lr_end) {
  if (step < 0) step = 0;
  if (warmup > 0 && step < warmup) return lr_peak * (double)step / (double)warmup;
  if (total <= warmup || step >= total) return step >= total ? lr_end : lr_peak;
  double f = (double)(step - warmup) / (double)(total - warmup);
  return lr_peak + (lr_end - lr_peak) * f;
}

void jade_ema_update(float *ema, const float *params, size_t n, float decay) {
  // ema <- decay ema + (1 - decay) p
  const float a = 1.0f - decay;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) ema[i] += a * (params[i] - ema[i]);
}
