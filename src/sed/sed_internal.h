/* Internals of the sed module: a float64 dense MLP shared by the emulators and the score
 * networks. Layout follows torch.nn.Linear: W[l] is (dims[l+1] x dims[l]) row-major, y = W x + b. */
#ifndef JADE_SED_INTERNAL_H
#define JADE_SED_INTERNAL_H
#include <math.h>
#include <stddef.h>

#include "jade/safetensors.h"
#include "jade/sed.h"

#define SED_MAX_LAYERS 12

typedef enum { SED_ACT_LINEAR = 0, SED_ACT_TANH, SED_ACT_SILU, SED_ACT_ALSING } sed_act;

typedef struct {
  int n_layers;               /* number of Linear layers */
  int dims[SED_MAX_LAYERS + 1];
  sed_act act[SED_MAX_LAYERS];/* activation after layer l */
  double *W[SED_MAX_LAYERS];  /* (dims[l+1], dims[l]) */
  double *b[SED_MAX_LAYERS];
  double *alpha[SED_MAX_LAYERS], *beta[SED_MAX_LAYERS]; /* SED_ACT_ALSING only */
} sed_mlp;

/* Allocates zeroed weights for the given dims/activations. */
int sed_mlp_alloc(sed_mlp *m, int n_layers, const int *dims, const sed_act *act);
void sed_mlp_free(sed_mlp *m);
int sed_mlp_max_width(const sed_mlp *m);
/* All weights and biases, layer by layer (W then b), as one flat vector. */
size_t sed_mlp_n_params(const sed_mlp *m);
void sed_mlp_get_params(const sed_mlp *m, double *p);
void sed_mlp_set_params(sed_mlp *m, const double *p);
/* One Adam step (Kingma & Ba 2015) on P parameters; step counts from 0; wd: L2 weight decay. */
void sed_adam_step(size_t P, double *p, const double *g, double *m1, double *m2, double lr, long step, double wd);
/* Y (n x dims[L]) from X (n x dims[0]); work: 2 n max_width doubles. */
void sed_mlp_forward(const sed_mlp *m, size_t n, const double *X, double *Y, double *work);
/* One point of a network with one output unit: returns y = f(x) and writes gx = dy/dx
 * (dims[0]) by reverse mode; work: sed_mlp_grad_work(m) doubles. */
double sed_mlp_value_grad(const sed_mlp *m, const double *x, double *gx, double *work);
size_t sed_mlp_grad_work(const sed_mlp *m);
/* act(h) in place over n values of a layer with `units` units (per-unit alpha/beta). */
void sed_act_apply(sed_act a, const double *alpha, const double *beta, size_t n, int units, double *h);
/* Y = X W^T + b: X (n x in), W (out x in), Y (n x out). */
void sed_linear(size_t n, int in, int out, const double *X, const double *W, const double *b, double *Y);

/* float32 copy of an MLP whose layers are all Alsing-activated and whose last layer has one
 * unit (a Photulator band), for the fast path of src/sed/mlp_f32.c. W[l] is (in x out). */
typedef struct {
  int n_layers;
  int dims[SED_MAX_LAYERS + 1];
  float *W[SED_MAX_LAYERS], *b[SED_MAX_LAYERS], *alpha[SED_MAX_LAYERS], *beta[SED_MAX_LAYERS];
  float *Wt[SED_MAX_LAYERS]; /* (out x in): the reverse pass */
  float *buf; /* owns all of the above */
} sed_mlp_f32;
/* 1 on success; 0 if out of memory or m is not of that kind. */
int sed_mlp_f32_from(sed_mlp_f32 *f, const sed_mlp *m);
void sed_mlp_f32_free(sed_mlp_f32 *f);
int sed_mlp_f32_max_width(const sed_mlp_f32 *f);
/* The float32 kernels, best last; sed_mlp_f32_kernel(requested) is the best the build and the
 * CPU have up to the one requested (AVX-512F; AVX2 with FMA; the portable C path). */
enum { SED_F32_PORTABLE = 0, SED_F32_AVX2 = 1, SED_F32_AVX512 = 2 };
int sed_mlp_f32_kernel(int requested);
/* Y (n) from X (n_pad x dims[0], n_pad = n rounded up to a multiple of 4; the pad rows must be
 * finite); work: 2 n_pad max_width floats. kernel: the highest SED_F32_* to use (lowered to what
 * the CPU has). */
void sed_mlp_f32_forward(const sed_mlp_f32 *f, size_t n, const float *X, float *Y, float *work, int kernel);

/* The same forward pass keeping every layer's activation derivatives and outputs in save
 * (sed_mlp_f32_save_size floats), then the reverse pass: gx (n_pad x dims[0]) = sum_i dy[i]
 * d y_i / d x_i for the points' seeds dy (n); work: 2 n_pad max_width floats. */
size_t sed_mlp_f32_save_size(const sed_mlp_f32 *f, size_t n);
void sed_mlp_f32_forward_save(const sed_mlp_f32 *f, size_t n, const float *X, float *Y, float *save, int kernel);
void sed_mlp_f32_backward(const sed_mlp_f32 *f, size_t n, const float *save, const float *dy, float *gx, float *work,
                          int kernel);

/* Copy an F32 tensor of the given shape into a new double array (NULL + error on failure). */
double *sed_st_get(const jade_safetensors *st, const char *name, int ndim, size_t d0, size_t d1);
/* The same into dst. */
jade_status sed_st_copy(const jade_safetensors *st, const char *name, int ndim, size_t d0, size_t d1,
                        double *dst);

/* dir/file (dir NULL: models/popcosmos) */
void sed_model_path(char *buf, size_t n, const char *dir, const char *file);
/* A table of nc zeroed columns of nr rows (names unset). */
jade_status sed_table_make(jade_sed_table *t, int nc, size_t nr);

static inline double sed_sigmoid(double u) {
  /* stable for large |u| */
  if (u >= 0) return 1.0 / (1.0 + exp(-u));
  double e = exp(u);
  return e / (1.0 + e);
}
#endif
