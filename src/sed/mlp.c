/* float64 dense MLP for the sed module (emulators, score networks). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sed_internal.h"

int sed_mlp_alloc(sed_mlp *m, int n_layers, const int *dims, const sed_act *act) {
  memset(m, 0, sizeof *m);
  if (n_layers < 1 || n_layers > SED_MAX_LAYERS) return 0;
  m->n_layers = n_layers;
  for (int l = 0; l <= n_layers; l++) m->dims[l] = dims[l];
  for (int l = 0; l < n_layers; l++) {
    m->act[l] = act[l];
    m->W[l] = jade_calloc((size_t)dims[l + 1] * dims[l], sizeof(double));
    m->b[l] = jade_calloc((size_t)dims[l + 1], sizeof(double));
    if (!m->W[l] || !m->b[l]) return 0;
    if (act[l] == SED_ACT_ALSING) {
      m->alpha[l] = jade_calloc((size_t)dims[l + 1], sizeof(double));
      m->beta[l] = jade_calloc((size_t)dims[l + 1], sizeof(double));
      if (!m->alpha[l] || !m->beta[l]) return 0;
    }
  }
  return 1;
}

void sed_mlp_free(sed_mlp *m) {
  if (!m) return;
  for (int l = 0; l < SED_MAX_LAYERS; l++) {
    free(m->W[l]);
    free(m->b[l]);
    free(m->alpha[l]);
    free(m->beta[l]);
  }
  memset(m, 0, sizeof *m);
}

size_t sed_mlp_n_params(const sed_mlp *m) {
  size_t n = 0;
  for (int l = 0; l < m->n_layers; l++) n += (size_t)m->dims[l + 1] * (m->dims[l] + 1);
  return n;
}

void sed_mlp_get_params(const sed_mlp *m, double *p) {
  for (int l = 0; l < m->n_layers; l++) {
    size_t nw = (size_t)m->dims[l + 1] * m->dims[l];
    memcpy(p, m->W[l], nw * sizeof(double));
    p += nw;
    memcpy(p, m->b[l], (size_t)m->dims[l + 1] * sizeof(double));
    p += m->dims[l + 1];
  }
}

void sed_mlp_set_params(sed_mlp *m, const double *p) {
  for (int l = 0; l < m->n_layers; l++) {
    size_t nw = (size_t)m->dims[l + 1] * m->dims[l];
    memcpy(m->W[l], p, nw * sizeof(double));
    p += nw;
    memcpy(m->b[l], p, (size_t)m->dims[l + 1] * sizeof(double));
    p += m->dims[l + 1];
  }
}

void sed_adam_step(size_t P, double *p, const double *g, double *m1, double *m2, double lr, long step, double wd) {
  /* Kingma & Ba 2015, Alg. 1 (beta1 0.9, beta2 0.999, eps 1e-8); L2 weight decay wd added to g */
  const double b1 = 0.9, b2 = 0.999, aeps = 1e-8;
  double c1 = 1.0 - pow(b1, (double)(step + 1)), c2 = 1.0 - pow(b2, (double)(step + 1));
  for (size_t q = 0; q < P; q++) {
    double gq = g[q] + wd * p[q];
    m1[q] = b1 * m1[q] + (1 - b1) * gq;
    m2[q] = b2 * m2[q] + (1 - b2) * gq * gq;
    p[q] -= lr * (m1[q] / c1) / (sqrt(m2[q] / c2) + aeps);
  }
}

int sed_mlp_max_width(const sed_mlp *m) {
  int w = 0;
  for (int l = 0; l <= m->n_layers; l++)
    if (m->dims[l] > w) w = m->dims[l];
  return w;
}

void sed_linear(size_t n, int in, int out, const double *X, const double *W, const double *b, double *Y) {
  for (size_t i = 0; i < n; i++) memcpy(Y + i * out, b, (size_t)out * sizeof(double));
  /* OpenBLAS (OpenMP build) runs single-threaded inside a parallel region. */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, out, in, 1.0, X, in, W, in, 1.0, Y, out);
}

void sed_act_apply(sed_act a, const double *alpha, const double *beta, size_t n, int units, double *h) {
  switch (a) {
    case SED_ACT_LINEAR: return;
    case SED_ACT_TANH:
      for (size_t i = 0; i < n * (size_t)units; i++) h[i] = tanh(h[i]);
      return;
    case SED_ACT_SILU:
      for (size_t i = 0; i < n * (size_t)units; i++) h[i] *= sed_sigmoid(h[i]);
      return;
    case SED_ACT_ALSING:
      /* Alsing et al. 2020 (ApJS 249:5) eq. 8: (beta + (1 - beta) sigmoid(alpha h)) h */
      for (size_t i = 0; i < n; i++)
        for (int u = 0; u < units; u++) {
          double x = h[i * units + u];
          h[i * units + u] = (beta[u] + (1.0 - beta[u]) * sed_sigmoid(alpha[u] * x)) * x;
        }
      return;
  }
}

void sed_mlp_forward(const sed_mlp *m, size_t n, const double *X, double *Y, double *work) {
  size_t mw = (size_t)sed_mlp_max_width(m);
  double *a = work, *b = work + n * mw;
  const double *in = X;
  for (int l = 0; l < m->n_layers; l++) {
    double *out = l == m->n_layers - 1 ? Y : (l % 2 == 0 ? a : b);
    sed_linear(n, m->dims[l], m->dims[l + 1], in, m->W[l], m->b[l], out);
    sed_act_apply(m->act[l], m->alpha[l], m->beta[l], n, m->dims[l + 1], out);
    in = out;
  }
}

jade_status sed_st_copy(const jade_safetensors *st, const char *name, int ndim, size_t d0, size_t d1,
                        double *dst) {
  size_t shape[2] = {d0, d1};
  size_t count = ndim == 2 ? d0 * d1 : d0;
  const jade_st_tensor *t = jade_safetensors_find(st, name);
  if (t && t->dtype == JADE_F64) {
    /* jade's own files store float64 */
    int ok = t->ndim == ndim && t->shape[0] == d0 && (ndim == 1 || t->shape[1] == d1);
    if (!ok)
      return jade_error(JADE_ERR_FORMAT, "%s: tensor '%s' has the wrong shape", jade_safetensors_path(st), name);
    memcpy(dst, t->data, count * sizeof(double));
    for (size_t i = 0; i < count; i++)
      if (!isfinite(dst[i]))
        return jade_error(JADE_ERR_FORMAT, "%s: tensor '%s' element %zu is not finite", jade_safetensors_path(st),
                          name, i);
    return JADE_OK;
  }
  float *tmp = jade_alloc(count * sizeof(float) + 1);
  if (!tmp) return JADE_ERR_NOMEM;
  jade_status s = jade_safetensors_copy_f32(st, name, ndim, shape, tmp);
  if (s == JADE_OK)
    for (size_t i = 0; i < count; i++) dst[i] = tmp[i];
  free(tmp);
  return s;
}

double *sed_st_get(const jade_safetensors *st, const char *name, int ndim, size_t d0, size_t d1) {
  size_t count = ndim == 2 ? d0 * d1 : d0;
  double *d = jade_alloc(count * sizeof(double) + 1);
  if (!d) return NULL;
  if (sed_st_copy(st, name, ndim, d0, d1, d) != JADE_OK) {
    free(d);
    return NULL;
  }
  return d;
}

/* derivative of the activation at pre-activation z (unit u) */
static double act_deriv(sed_act a, const double *alpha, const double *beta, int u, double z) {
  switch (a) {
    case SED_ACT_LINEAR: return 1.0;
    case SED_ACT_TANH: {
      double t = tanh(z);
      return 1.0 - t * t;
    }
    case SED_ACT_SILU: {
      double sg = sed_sigmoid(z);
      return sg * (1.0 + z * (1.0 - sg));
    }
    case SED_ACT_ALSING: {
      /* d/dz (beta + (1 - beta) s(alpha z)) z = beta + (1 - beta) (s + alpha z s (1 - s)) */
      double sg = sed_sigmoid(alpha[u] * z);
      return beta[u] + (1.0 - beta[u]) * (sg + alpha[u] * z * sg * (1.0 - sg));
    }
  }
  return NAN;
}

size_t sed_mlp_grad_work(const sed_mlp *m) {
  size_t w = 0;
  for (int l = 0; l <= m->n_layers; l++) w += (size_t)m->dims[l];
  return 2 * w + 2 * (size_t)sed_mlp_max_width(m);
}

double sed_mlp_value_grad(const sed_mlp *m, const double *x, double *gx, double *work) {
  /* forward, keeping every layer's pre-activation z_l and output a_l (a_0 = x) */
  int L = m->n_layers, mw = sed_mlp_max_width(m);
  size_t off[SED_MAX_LAYERS + 2], tot = 0;
  for (int l = 0; l <= L; l++) {
    off[l] = tot;
    tot += (size_t)m->dims[l];
  }
  double *z = work, *a = work + tot, *d = work + 2 * tot, *e = d + mw;
  memcpy(a, x, (size_t)m->dims[0] * sizeof(double));
  for (int l = 0; l < L; l++) {
    int in = m->dims[l], out = m->dims[l + 1];
    const double *ai = a + off[l];
    double *zo = z + off[l + 1], *ao = a + off[l + 1];
    for (int j = 0; j < out; j++) {
      double v = m->b[l][j];
      const double *w = m->W[l] + (size_t)j * in;
      for (int k = 0; k < in; k++) v += w[k] * ai[k];
      zo[j] = v;
    }
    memcpy(ao, zo, (size_t)out * sizeof(double));
    sed_act_apply(m->act[l], m->alpha[l], m->beta[l], 1, out, ao);
  }
  /* reverse: d = dy/da_l, then dy/dz_l = d act'(z_l), dy/da_{l-1} = W_l^T (dy/dz_l) */
  int out = m->dims[L];
  for (int j = 0; j < out; j++) d[j] = 1.0; /* one output unit: dy/dy */
  for (int l = L - 1; l >= 0; l--) {
    int in = m->dims[l], o = m->dims[l + 1];
    const double *zo = z + off[l + 1];
    for (int j = 0; j < o; j++) d[j] *= act_deriv(m->act[l], m->alpha[l], m->beta[l], j, zo[j]);
    for (int k = 0; k < in; k++) e[k] = 0;
    for (int j = 0; j < o; j++) {
      const double *w = m->W[l] + (size_t)j * in;
      for (int k = 0; k < in; k++) e[k] += w[k] * d[j];
    }
    memcpy(d, e, (size_t)in * sizeof(double));
  }
  memcpy(gx, d, (size_t)m->dims[0] * sizeof(double));
  return a[off[L]];
}
