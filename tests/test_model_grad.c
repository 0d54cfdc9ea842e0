/* Whole-model checks of the JADE transformer and the flow objective:
 *  - parameter table covers the buffer, paper size ~130M parameters;
 *  - adaLN-Zero init: x_hat = 0 and theta_hat = 0;
 *  - batch independence, inference forward == training forward;
 *  - gradient of (flow loss o model) w.r.t. EVERY parameter tensor (a sample of elements
 *    per tensor) against central finite differences, on tiny configs with all adaLN and
 *    head weights randomised so that gradients flow everywhere; one config with dropout
 *    and a coarser condition patch (multi-resolution RoPE);
 *  - flow loss value and gradient against direct formulas;
 *  - Heun sampler on the exactly solvable ODE of the zero model.
 * FD details and tolerances at grad_check(). */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "jade/core.h"
#include "jade/model.h"
#include "test_util.h"

static void randomise(float *x, size_t n, float mean, float sd, uint64_t id) {
  jade_rng_normal_fill_f(99, JADE_STREAM(JADE_RNG_TEST, id), 0, n, x);
  for (size_t i = 0; i < n; i++) x[i] = mean + sd * x[i];
}

typedef struct {
  jade_model *m;
  jade_flow_config fc;
  int B;
  size_t nx, nc;
  int P;
  float *x, *theta, *eps, *eth, *t, *z, *zt, *cond, *xh, *thh, *dxh, *dthh;
  jade_model_run run;
} problem;

static double eval_loss(problem *p, int with_grad) {
  CHECK_OK(jade_model_forward(p->m, p->B, p->z, p->zt, p->t, p->cond, p->xh, p->thh, &p->run));
  return jade_flow_loss(&p->fc, p->B, p->nx, p->P, p->x, p->xh, p->z, p->theta, p->thh, p->zt, p->t,
                        with_grad ? p->dxh : NULL, with_grad ? p->dthh : NULL, NULL, NULL);
}

static void problem_init(problem *p, const jade_model_config *cfg, int B, uint64_t seed) {
  memset(p, 0, sizeof *p);
  CHECK_OK(jade_model_create(&p->m, cfg));
  jade_model_init(p->m, seed);
  jade_flow_config_default(&p->fc);
  const jade_model_config *c = jade_model_get_config(p->m);
  p->B = B;
  p->nx = (size_t)c->channels * c->img_size * c->img_size;
  p->nc = (size_t)c->cond_channels * c->img_size * c->img_size;
  p->P = c->n_params;
  p->x = jade_alloc(sizeof(float) * B * p->nx);
  p->eps = jade_alloc(sizeof(float) * B * p->nx);
  p->z = jade_alloc(sizeof(float) * B * p->nx);
  p->xh = jade_alloc(sizeof(float) * B * p->nx);
  p->dxh = jade_alloc(sizeof(float) * B * p->nx);
  p->cond = jade_alloc(sizeof(float) * B * (p->nc ? p->nc : 1));
  p->theta = jade_alloc(sizeof(float) * B * p->P);
  p->eth = jade_alloc(sizeof(float) * B * p->P);
  p->zt = jade_alloc(sizeof(float) * B * p->P);
  p->thh = jade_alloc(sizeof(float) * B * p->P);
  p->dthh = jade_alloc(sizeof(float) * B * p->P);
  p->t = jade_alloc(sizeof(float) * B);
  randomise(p->x, B * p->nx, 0, 1, seed * 10 + 1);
  randomise(p->eps, B * p->nx, 0, 1, seed * 10 + 2);
  randomise(p->cond, B * p->nc, 0, 1, seed * 10 + 3);
  randomise(p->theta, B * p->P, 0, 1, seed * 10 + 4);
  randomise(p->eth, B * p->P, 0, 1, seed * 10 + 5);
  for (int b = 0; b < B; b++) p->t[b] = jade_flow_time(&p->fc, (float)jade_rng_normal(99, 7, (uint64_t)b + seed));
  jade_flow_interpolate(p->z, p->x, p->eps, p->t, B, p->nx);
  jade_flow_interpolate(p->zt, p->theta, p->eth, p->t, B, (size_t)p->P);
  p->run.train = 1;
  p->run.seed = 5;
  p->run.stream = JADE_STREAM(JADE_RNG_TRAIN, 3);
}

static void problem_free(problem *p) {
  jade_model_free(p->m);
  float *bufs[] = {p->x, p->eps, p->z, p->xh, p->dxh, p->cond, p->theta, p->eth, p->zt, p->thh, p->dthh, p->t};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
}

/* Randomise every parameter (adaLN and heads included) so all paths carry gradient. */
static void perturb_params(jade_model *m) {
  float *prm = jade_model_params(m);
  for (int i = 0; i < jade_model_num_tensors(m); i++) {
    const jade_tensor_info *t = jade_model_tensor(m, i);
    int is_norm = strstr(t->name, "norm") != NULL;
    int fan_in = t->ndim == 2 ? t->shape[1] : 1;
    float sd = is_norm ? 0.2f : (t->ndim == 2 ? 1.0f / sqrtf((float)fan_in) : 0.2f);
    randomise(prm + t->offset, t->numel, is_norm ? 1.0f : 0.0f, sd, 1000 + (uint64_t)i);
  }
}

static float g_h = 3e-2f, g_hdir = 1e-2f;
static int g_threads = 2; /* thread count given by the environment */

/* Central finite differences of L along direction v (n floats at prm) at steps h, 2h, 3h.
 * fd4: 4-point stencil, O(h^4) truncation; fd6: 6-point stencil, O(h^6) (Fornberg 1988,
 * Table 1). |fd6 - fd4| bounds fd6's truncation error (it is fd4's, much larger). */
typedef struct {
  double fd4, fd6;
} fd_pair;

static fd_pair fd_dir(problem *p, float *prm, const float *v, size_t n, float h) {
  float *x0 = jade_alloc(sizeof(float) * n);
  memcpy(x0, prm, sizeof(float) * n);
  double l[6]; /* L(+h), L(-h), L(+2h), L(-2h), L(+3h), L(-3h) */
  for (int q = 0; q < 6; q++) {
    float s = (float)(q / 2 + 1) * (q % 2 ? -h : h);
    for (size_t i = 0; i < n; i++) prm[i] = x0[i] + s * v[i];
    l[q] = eval_loss(p, 0);
  }
  memcpy(prm, x0, sizeof(float) * n);
  free(x0);
  fd_pair r;
  r.fd4 = (8.0 * (l[0] - l[1]) - (l[2] - l[3])) / (12.0 * h);
  r.fd6 = (45.0 * (l[0] - l[1]) - 9.0 * (l[2] - l[3]) + (l[4] - l[5])) / (60.0 * h);
  return r;
}

/* Rounding noise of one float32 loss evaluation, measured on this machine: the standard
 * deviation of L over 24 copies of the parameters, each element moved by a random
 * -1/0/+1 ulp (relative 2^-23). The true change of L (~2^-23 |g.p| ~ 1e-7) is far below the
 * rounding noise, so the spread is the arithmetic's own (it depends on the BLAS kernel, e.g.
 * OPENBLAS_CORETYPE, and the thread count, which is why it is measured, not assumed). */
static double loss_noise(problem *p) {
  float *prm = jade_model_params(p->m);
  size_t n = jade_model_num_params(p->m);
  float *x0 = jade_alloc(sizeof(float) * n);
  memcpy(x0, prm, sizeof(float) * n);
  double s1 = 0, s2 = 0;
  const int K = 24;
  for (int k = 0; k < K; k++) {
    for (size_t i = 0; i < n; i++) {
      int r = (int)(jade_rng_uniform(11, (uint64_t)k, i) * 3.0) - 1;
      prm[i] = x0[i] * (1.0f + (float)r * FLT_EPSILON);
    }
    double L = eval_loss(p, 0);
    s1 += L;
    s2 += L * L;
  }
  memcpy(prm, x0, sizeof(float) * n);
  free(x0);
  double var = (s2 - s1 * s1 / K) / (K - 1);
  return sqrt(var > 0 ? var : 0);
}

/* Allowed |analytic - fd6| for one derivative. Three independent sources, each from the
 * arithmetic: (1) fd6's truncation, bounded by |fd6 - fd4|; (2) fd6's rounding noise:
 * loss noise sigma_L propagated through the stencil weights (45, 9, 1 twice each, over
 * 60 h: sd = sqrt(2 (45^2 + 9^2 + 1)) / 60 sigma_L / h = 1.08 sigma_L / h), taken at 6 sd
 * (over ~1,500 checks a false alarm has probability ~1e-6); (3) the analytic gradient's own
 * float32 accumulation error, relative 1e-3 of the gradient's scale (sums of <= ~1e3 terms at
 * unit roundoff 6e-8 with cancellation). */
static double fd_bound(fd_pair f, double sigma_L, float h, double scale) {
  return fabs(f.fd6 - f.fd4) + 6.0 * 1.08 * sigma_L / h + 1e-3 * scale;
}

/* Two checks per parameter tensor, each against fd_bound:
 *  (a) directional derivative along a random direction v (all elements of the tensor at
 *      once, v ~ N(0,1) per element, h = 1e-2);
 *  (b) per_tensor single elements (h = 3e-2 max(1,|p|)), the scale being |fd| + rms of the
 *      tensor's checked derivatives.
 * The check must be able to see a 10% gradient error: every bound must stay below 0.1 of
 * the derivative's scale, otherwise the check is reported vacuous. */
static double grad_check(problem *p, int per_tensor, const char *label) {
  jade_model *m = p->m;
  double sigma_L = loss_noise(p);
  jade_model_zero_grad(m);
  double L0 = eval_loss(p, 1);
  CHECK_OK(jade_model_backward(m, p->dxh, p->dthh));
  float *prm = jade_model_params(m), *grd = jade_model_grads(m);
  double worst_dir = 0.0, worst_el = 0.0;
  const float one = 1.0f;
  int n_checked = 0;
  printf("%s: loss %.6f (rounding noise sd %.2e), %zu parameters in %d tensors\n", label, L0,
         sigma_L, jade_model_num_params(m), jade_model_num_tensors(m));
  CHECK(isfinite(L0) && isfinite(sigma_L) && sigma_L < 1e-4 * fabs(L0) + 1e-6,
        "%s: loss %g with noise %g: too noisy for a finite-difference check", label, L0, sigma_L);
  for (int ti = 0; ti < jade_model_num_tensors(m); ti++) {
    const jade_tensor_info *t = jade_model_tensor(m, ti);
    float *v = jade_alloc(sizeof(float) * t->numel);
    randomise(v, t->numel, 0, 1, 5000 + (uint64_t)ti);
    double ga = 0.0;
    for (size_t i = 0; i < t->numel; i++) ga += (double)grd[t->offset + i] * v[i];
    fd_pair fdv = fd_dir(p, prm + t->offset, v, t->numel, g_hdir);
    double bdir = fd_bound(fdv, sigma_L, g_hdir, fabs(fdv.fd6));
    double edir = fabs(ga - fdv.fd6) / bdir; /* NaN if either side is NaN */
    free(v);
    int k = (int)t->numel < per_tensor ? (int)t->numel : per_tensor;
    fd_pair gfd[64];
    double gan[64], hs[64], ss = 0.0;
    for (int j = 0; j < k; j++) {
      size_t e = t->numel <= (size_t)per_tensor ? (size_t)j
                                                 : (size_t)(jade_rng_uniform(3, ti, j) * t->numel);
      size_t i = t->offset + e;
      float x0 = prm[i];
      hs[j] = g_h * (fabsf(x0) > 1.0f ? fabsf(x0) : 1.0f);
      gfd[j] = fd_dir(p, prm + i, &one, 1, (float)hs[j]);
      gan[j] = grd[i];
      ss += gfd[j].fd6 * gfd[j].fd6;
    }
    double rms = sqrt(ss / k), worst = 0.0, worst_bound_frac = 0.0;
    int wj = 0;
    for (int j = 0; j < k; j++) {
      double scale = fabs(gfd[j].fd6) + rms;
      double b = fd_bound(gfd[j], sigma_L, (float)hs[j], scale);
      double e = fabs(gan[j] - gfd[j].fd6) / b;
      if (!(e <= worst)) { worst = e; wj = j; }
      worst_bound_frac = fmax(worst_bound_frac, b / scale);
    }
    n_checked += k;
    worst_el = fmax(worst_el, worst);
    worst_dir = fmax(worst_dir, edir);
    printf("  %-36s dir: g.v %+.5e fd %+.5e err/bound %.2f | %2d el rms %.1e max err/bound %.2f"
           " (bound <= %.1e of scale)\n",
           t->name, ga, fdv.fd6, edir, k, rms, worst, worst_bound_frac);
    CHECK(edir <= 1.0, "%s %s: directional derivative %.8g vs fd %.8g (bound %.2g)", label, t->name,
          ga, fdv.fd6, bdir);
    CHECK(worst <= 1.0, "%s %s: analytic %.6g vs fd %.6g", label, t->name, gan[wj], gfd[wj].fd6);
    CHECK(rms > 1e-6 && fabs(fdv.fd6) > 1e-6, "%s %s: gradient vanishes, check is vacuous", label, t->name);
    CHECK(bdir < 0.1 * fabs(fdv.fd6) && worst_bound_frac < 0.1,
          "%s %s: finite-difference bound too loose to see a 10%% error (dir %.2g, el %.2g)", label,
          t->name, bdir / fabs(fdv.fd6), worst_bound_frac);
  }
  printf("%s: every tensor: max directional err/bound %.2f; %d single elements: max err/bound %.2f\n",
         label, worst_dir, n_checked, worst_el);
  return worst_dir;
}

static jade_model_config tiny_config(void) {
  jade_model_config c;
  jade_model_config_paper(&c);
  c.img_size = 8;
  c.channels = 2;
  c.cond_channels = 2;
  c.patch = 4;
  c.cond_patch = 4;
  c.depth = 2;
  c.width = 16;
  c.heads = 2;
  c.n_cosmo_tokens = 2;
  c.n_params = 3;
  c.bottleneck = 8;
  c.time_freq = 16;
  c.mlp_hidden = 0;
  return c;
}

static void test_tables(void) {
  jade_model_config c;
  jade_model_config_paper(&c);
  jade_model *m;
  CHECK_OK(jade_model_create(&m, &c));
  size_t total = 0;
  for (int i = 0; i < jade_model_num_tensors(m); i++) total += jade_model_tensor(m, i)->numel;
  printf("paper model: %zu parameters (%d tensors, buffer %zu floats)\n", total,
         jade_model_num_tensors(m), jade_model_num_params(m));
  CHECK(total > 125000000 && total < 135000000, "paper model has %zu parameters (~130M expected)", total);
  const jade_tensor_info *w12 = jade_model_find_tensor(m, "blocks.0.mlp.w12.weight");
  CHECK(w12 && w12->shape[0] == 2 * 2048 && w12->shape[1] == 768, "SwiGLU hidden must be 2048 for D 768");
  jade_model_free(m);
  // small preset (perf_anchors: 4.26M parameters with patch 4)
  jade_model_config_small(&c);
  CHECK_OK(jade_model_create(&m, &c));
  total = 0;
  for (int i = 0; i < jade_model_num_tensors(m); i++) total += jade_model_tensor(m, i)->numel;
  printf("small model: %zu parameters\n", total);
  CHECK(fabs((double)total - 4.26e6) < 0.02e6, "small model has %zu parameters (4.26M expected)", total);
  jade_model_free(m);
  // config errors
  c.heads = 5;
  CHECK(jade_model_create(&m, &c) == JADE_ERR_CONFIG, "width 192 / 5 heads accepted");
}

static void test_init_and_consistency(void) {
  jade_model_config c = tiny_config();
  problem p;
  problem_init(&p, &c, 3, 1);
  // zero-initialised heads: x_hat = 0, theta_hat = 0
  CHECK_OK(jade_model_forward(p.m, 3, p.z, p.zt, p.t, p.cond, p.xh, p.thh, NULL));
  double mx = 0;
  for (size_t i = 0; i < 3 * p.nx; i++) mx = fmax(mx, fabs(p.xh[i]));
  for (int i = 0; i < 3 * p.P; i++) mx = fmax(mx, fabs(p.thh[i]));
  CHECK(mx == 0.0, "zero-init model output %g", mx);
  perturb_params(p.m);
  // inference == training forward; batch elements independent
  float *xh2 = jade_alloc(sizeof(float) * 3 * p.nx), *th2 = jade_alloc(sizeof(float) * 3 * p.P);
  CHECK_OK(jade_model_forward(p.m, 3, p.z, p.zt, p.t, p.cond, p.xh, p.thh, NULL));
  CHECK_OK(jade_model_forward(p.m, 3, p.z, p.zt, p.t, p.cond, xh2, th2, &p.run));
  double d = 0, s = 0;
  for (size_t i = 0; i < 3 * p.nx; i++) { d = fmax(d, fabs(p.xh[i] - xh2[i])); s = fmax(s, fabs(p.xh[i])); }
  CHECK(d <= 1e-6 * s, "train vs inference forward differ by %g", d);
  CHECK(s > 1e-3, "perturbed model gives zero output");
  CHECK_OK(jade_model_forward(p.m, 1, p.z + p.nx, p.zt + p.P, p.t + 1, p.cond + p.nc, xh2, th2, NULL));
  d = 0;
  for (size_t i = 0; i < p.nx; i++) d = fmax(d, fabs(p.xh[p.nx + i] - xh2[i]));
  for (int i = 0; i < p.P; i++) d = fmax(d, fabs(p.thh[p.P + i] - th2[i]));
  CHECK(d <= 1e-5 * s, "sample 1 of a batch differs from the same sample alone by %g", d);
  free(xh2);
  free(th2);
  problem_free(&p);
}

static void test_model_gradients(void) {
  jade_model_config c = tiny_config();
  problem p;
  problem_init(&p, &c, 2, 2);
  perturb_params(p.m);
  grad_check(&p, 12, "tiny model (depth 2, cond patch 4)");
  problem_free(&p);
  // dropout (active in blocks 1, 2 of 4), coarser condition patches, no bias-free shortcut
  c.depth = 4;
  c.img_size = 8;
  c.patch = 2;
  c.cond_patch = 4;
  c.dropout = 0.2f;
  c.n_cosmo_tokens = 3;
  problem_init(&p, &c, 2, 3);
  perturb_params(p.m);
  grad_check(&p, 6, "tiny model (depth 4, dropout 0.2, patch 2, cond patch 4)");
  // dropout is really applied in training mode: outputs differ from inference
  float *xh2 = jade_alloc(sizeof(float) * 2 * p.nx), *th2 = jade_alloc(sizeof(float) * 2 * p.P);
  CHECK_OK(jade_model_forward(p.m, 2, p.z, p.zt, p.t, p.cond, xh2, th2, NULL));
  eval_loss(&p, 0);
  double d = 0;
  for (size_t i = 0; i < 2 * p.nx; i++) d = fmax(d, fabs(p.xh[i] - xh2[i]));
  CHECK(d > 1e-4, "dropout has no effect in training mode");
  free(xh2);
  free(th2);
  problem_free(&p);
}

/* Gradients do not depend on the number of threads; a model without condition tokens. */
static void test_threads_and_nocond(void) {
  jade_model_config c = tiny_config();
  c.dropout = 0.1f;
  c.depth = 4;
  problem p;
  problem_init(&p, &c, 3, 4);
  perturb_params(p.m);
  size_t n = jade_model_num_params(p.m);
  float *g1 = jade_alloc(sizeof(float) * n);
  int nt0 = g_threads;
  for (int r = 0; r < 2; r++) {
    omp_set_num_threads(r == 0 ? 1 : (nt0 > 1 ? nt0 : 2));
    jade_model_zero_grad(p.m);
    eval_loss(&p, 1);
    CHECK_OK(jade_model_backward(p.m, p.dxh, p.dthh));
    if (r == 0)
      memcpy(g1, jade_model_grads(p.m), sizeof(float) * n);
    else
      CHECK(memcmp(g1, jade_model_grads(p.m), sizeof(float) * n) == 0,
            "model gradients depend on the thread count");
  }
  omp_set_num_threads(1);
  free(g1);
  problem_free(&p);
  c = tiny_config();
  c.cond_channels = 0;
  problem_init(&p, &c, 2, 5);
  CHECK(jade_model_find_tensor(p.m, "cond_embedder.proj1.weight") == NULL, "unconditional model has a condition embedding");
  perturb_params(p.m);
  free(p.cond);
  p.cond = NULL;
  grad_check(&p, 2, "tiny model without condition tokens");
  problem_free(&p);
}

/* Integration: AdamW on a fixed batch (fixed t and noise) must fit it; the model is
 * initialised as in training (adaLN-Zero), so this also checks that gradients reach the
 * zero-initialised heads and modulation first and then flow everywhere. */
static void test_overfit(void) {
  jade_model_config c = tiny_config();
  problem p;
  problem_init(&p, &c, 4, 6);
  size_t n = jade_model_num_params(p.m);
  jade_adamw_config ac = {0.0f, 0.9f, 0.95f, 1e-8f, 0.0f};
  jade_adamw *opt;
  CHECK_OK(jade_adamw_create(&opt, n, &ac));
  double L0 = 0, L = 0;
  int steps = 300;
  for (int s = 0; s < steps; s++) {
    jade_model_zero_grad(p.m);
    L = eval_loss(&p, 1);
    if (s == 0) L0 = L;
    CHECK_OK(jade_model_backward(p.m, p.dxh, p.dthh));
    double gn = jade_grad_norm(jade_model_grads(p.m), n);
    jade_adamw_step_fused(opt, jade_model_params(p.m), jade_model_grads(p.m), NULL,
                          (float)jade_lr_linear(s, 20, steps, 3e-3, 1e-4), (float)jade_clip_factor(gn, 1.0),
                          NULL, 0.0f);
  }
  printf("overfit a fixed batch: loss %.4g -> %.3g in %d AdamW steps\n", L0, L, steps);
  CHECK(L < 0.3 * L0, "training does not reduce the loss: %g -> %g", L0, L);
  // every tensor moved away from its initial value
  jade_model *m0;
  CHECK_OK(jade_model_create(&m0, &c));
  jade_model_init(m0, 6);
  for (int i = 0; i < jade_model_num_tensors(p.m); i++) {
    const jade_tensor_info *t = jade_model_tensor(p.m, i);
    double d = 0;
    for (size_t k = 0; k < t->numel; k++)
      d = fmax(d, fabs(jade_model_params(p.m)[t->offset + k] - jade_model_params(m0)[t->offset + k]));
    CHECK(d > 1e-5, "tensor %s did not train (max change %g)", t->name, d);
  }
  jade_model_free(m0);
  jade_adamw_free(opt);
  problem_free(&p);
}

static void test_flow(void) {
  jade_flow_config fc;
  jade_flow_config_default(&fc);
  CHECK_CLOSE(jade_flow_time(&fc, 0.3f), 1.0 / (1.0 + exp(-(0.3 - 0.8) * 0.8)), 1e-6);
  // loss by the definition, t below and above 1 - t_eps
  int B = 2, P = 2;
  size_t nx = 5;
  float x[10], xh[10], z[10], th[4], thh[4], zt[4], t[2] = {0.3f, 0.99f}, dx[10], dth[4];
  randomise(x, 10, 0, 1, 1);
  randomise(xh, 10, 0, 1, 2);
  randomise(z, 10, 0, 1, 3);
  randomise(th, 4, 0, 1, 4);
  randomise(thh, 4, 0, 1, 5);
  randomise(zt, 4, 0, 1, 6);
  double lx, lt;
  double L = jade_flow_loss(&fc, B, nx, P, x, xh, z, th, thh, zt, t, dx, dth, &lx, &lt);
  double ref = 0;
  for (int b = 0; b < B; b++) {
    double den = fmax(1.0 - t[b], 0.05), s = 0;
    for (size_t i = 0; i < nx; i++) {
      double v = (x[b * nx + i] - z[b * nx + i]) / den, vh = (xh[b * nx + i] - z[b * nx + i]) / den;
      s += (v - vh) * (v - vh);
    }
    for (int k = 0; k < P; k++) {
      double v = (th[b * P + k] - zt[b * P + k]) / den, vh = (thh[b * P + k] - zt[b * P + k]) / den;
      s += (v - vh) * (v - vh);
    }
    ref += s / (nx + P) / B;
  }
  CHECK_CLOSE(L, ref, 1e-6);
  // gradient by central differences in double on the loss
  for (int i = 0; i < 10; i++) {
    float x0 = xh[i];
    xh[i] = x0 + 1e-2f;
    double lp = jade_flow_loss(&fc, B, nx, P, x, xh, z, th, thh, zt, t, NULL, NULL, NULL, NULL);
    xh[i] = x0 - 1e-2f;
    double lm = jade_flow_loss(&fc, B, nx, P, x, xh, z, th, thh, zt, t, NULL, NULL, NULL, NULL);
    xh[i] = x0;
    CHECK(fabs((lp - lm) / 2e-2 - dx[i]) < 1e-3 * (1 + fabs(dx[i])), "dL/dx_hat[%d] %g vs %g", i, dx[i], (lp - lm) / 2e-2);
  }
  for (int i = 0; i < 4; i++) {
    float x0 = thh[i];
    thh[i] = x0 + 1e-2f;
    double lp = jade_flow_loss(&fc, B, nx, P, x, xh, z, th, thh, zt, t, NULL, NULL, NULL, NULL);
    thh[i] = x0 - 1e-2f;
    double lm = jade_flow_loss(&fc, B, nx, P, x, xh, z, th, thh, zt, t, NULL, NULL, NULL, NULL);
    thh[i] = x0;
    CHECK(fabs((lp - lm) / 2e-2 - dth[i]) < 1e-3 * (1 + fabs(dth[i])), "dL/dtheta_hat[%d]", i);
  }
  // interpolant
  float e[5] = {1, 2, 3, 4, 5}, xx[5] = {5, 4, 3, 2, 1}, zz[5], tt = 0.25f;
  jade_flow_interpolate(zz, xx, e, &tt, 1, 5);
  CHECK_CLOSE(zz[0], 0.25 * 5 + 0.75 * 1, 1e-7);

  // Heun sampler with the zero-initialised model: x_hat = 0, so dz/dt = -z/(1-t) and
  // z(t) = z0 (1 - t) exactly (for 1 - t >= t_eps). Heun's global error is O(h^2).
  jade_model_config c = tiny_config();
  jade_model *m;
  CHECK_OK(jade_model_create(&m, &c));
  jade_model_init(m, 1);
  jade_sampler *s;
  int Bs = 3;
  size_t n = (size_t)c.channels * c.img_size * c.img_size, nc = (size_t)c.cond_channels * c.img_size * c.img_size;
  CHECK_OK(jade_sampler_create(&s, m, Bs));
  float *zs = jade_alloc(sizeof(float) * Bs * n), *z0 = jade_alloc(sizeof(float) * Bs * n);
  float *ths = jade_alloc(sizeof(float) * Bs * c.n_params), *cond = jade_alloc(sizeof(float) * nc);
  randomise(zs, Bs * n, 0, 1, 21);
  randomise(ths, Bs * c.n_params, 0, 1, 22);
  randomise(cond, nc, 0, 1, 23);
  memcpy(z0, zs, sizeof(float) * Bs * n);
  float *condb = jade_alloc(sizeof(float) * Bs * nc);  // jade_sampler_step: one condition per draw
  for (int b = 0; b < Bs; b++) memcpy(condb + b * nc, cond, sizeof(float) * nc);
  int steps = 40;
  for (int i = 0; i < 36; i++)  // to t = 0.9 with Heun steps
    CHECK_OK(jade_sampler_step(s, Bs, zs, ths, condb, (float)i / steps, (float)(i + 1) / steps, 1, 0.05f));
  double maxrel = 0;
  for (size_t i = 0; i < Bs * n; i++) maxrel = fmax(maxrel, fabs(zs[i] - 0.1 * z0[i]) / (0.1 * fabs(z0[i]) + 1e-3));
  printf("Heun on dz/dt = -z/(1-t), 36 steps of 1/40: max rel err %.2e\n", maxrel);
  CHECK(maxrel < 2e-3, "Heun error %g", maxrel);
  // full run: 1/n_steps = 0.05 = t_eps, so the last Euler step lands exactly on 0
  memcpy(zs, z0, sizeof(float) * Bs * n);
  CHECK_OK(jade_sampler_run(s, Bs, zs, ths, cond, 1, 20, 0.05f));
  double mz = 0;
  for (size_t i = 0; i < Bs * n; i++) mz = fmax(mz, fabs(zs[i]));
  CHECK(mz < 1e-5, "sampler run does not end at x_hat = 0: %g", mz);
  // one Heun step of a randomised model against the formula evaluated with forward()
  perturb_params(m);
  int Pn = c.n_params;
  float *xa = jade_alloc(sizeof(float) * Bs * n), *xa1 = jade_alloc(sizeof(float) * Bs * n);
  float *ze = jade_alloc(sizeof(float) * Bs * n);
  float *th0 = jade_alloc(sizeof(float) * Bs * Pn), *tha = jade_alloc(sizeof(float) * Bs * Pn);
  float *tha1 = jade_alloc(sizeof(float) * Bs * Pn), *the = jade_alloc(sizeof(float) * Bs * Pn);
  float tv[3], t0 = 0.3f, t1 = 0.35f, dt = t1 - t0;
  randomise(zs, Bs * n, 0, 1, 31);
  randomise(ths, Bs * Pn, 0, 1, 32);
  memcpy(z0, zs, sizeof(float) * Bs * n);
  memcpy(th0, ths, sizeof(float) * Bs * Pn);
  for (int b = 0; b < Bs; b++) tv[b] = t0;
  CHECK_OK(jade_model_forward(m, Bs, z0, th0, tv, condb, xa, tha, NULL));
  for (size_t i = 0; i < Bs * n; i++) ze[i] = z0[i] + dt * (xa[i] - z0[i]) / (1 - t0);
  for (int i = 0; i < Bs * Pn; i++) the[i] = th0[i] + dt * (tha[i] - th0[i]) / (1 - t0);
  for (int b = 0; b < Bs; b++) tv[b] = t1;
  CHECK_OK(jade_model_forward(m, Bs, ze, the, tv, condb, xa1, tha1, NULL));
  CHECK_OK(jade_sampler_step(s, Bs, zs, ths, condb, t0, t1, 1, 0.05f));
  double dmax = 0;
  for (size_t i = 0; i < Bs * n; i++) {
    double v0 = (xa[i] - z0[i]) / (1 - t0), v1 = (xa1[i] - ze[i]) / (1 - t1);
    dmax = fmax(dmax, fabs(zs[i] - (z0[i] + 0.5 * dt * (v0 + v1))));
  }
  for (int i = 0; i < Bs * Pn; i++) {
    double v0 = (tha[i] - th0[i]) / (1 - t0), v1 = (tha1[i] - the[i]) / (1 - t1);
    dmax = fmax(dmax, fabs(ths[i] - (th0[i] + 0.5 * dt * (v0 + v1))));
  }
  CHECK(dmax < 1e-5, "Heun step differs from the formula by %g", dmax);
  jade_sampler_free(s);
  jade_model_free(m);
  free(zs); free(z0); free(ths); free(cond);
  free(xa); free(xa1); free(ze); free(condb); free(th0); free(tha); free(tha1); free(the);
}

/* Condition channels added for fine-tuning (jade_model_copy_expand_cond): the expanded model
 * computes the source model's outputs whatever the new channels hold (their input weights are
 * zero; the sums differ only by the order of zero terms, so to fp32 rounding), the new
 * columns get non-zero gradients (fine-tuning can learn them), and the expanded model's
 * gradients pass the finite-difference check. Configuration of the lsst128 kind: condition
 * patches coarser than the field patches, bottleneck narrower than a patch. */
static void test_expand_cond_channels(void) {
  jade_model_config c = tiny_config();
  c.img_size = 8;
  c.patch = 2;
  c.cond_patch = 4;
  c.bottleneck = 6;       /* < 2 * 2 * 2 field values per patch */
  c.cond_bottleneck = 10; /* its own width, < 4 * 4 * 2 condition values per patch */
  problem p;
  problem_init(&p, &c, 2, 11);
  perturb_params(p.m);
  jade_model_config c3 = c;
  c3.cond_channels = 4; /* 2 bins + e.g. a mask and a noise map */
  problem q;
  problem_init(&q, &c3, 2, 12);
  CHECK(jade_model_copy_expand_cond(q.m, p.m) == JADE_OK, "expand: %s", jade_last_error());
  jade_model_config cbad = c3;
  cbad.width = 32;
  jade_model *bad;
  CHECK_OK(jade_model_create(&bad, &cbad));
  CHECK(jade_model_copy_expand_cond(bad, p.m) == JADE_ERR_CONFIG, "expand into a different width accepted");
  jade_model_free(bad);
  // same inputs: q's first 2 condition channels are p's, the 2 new ones arbitrary
  const int npx = c.img_size * c.img_size;
  for (int b = 0; b < 2; b++) {
    memcpy(q.z + b * q.nx, p.z + b * p.nx, sizeof(float) * p.nx);
    memcpy(q.cond + b * q.nc, p.cond + b * p.nc, sizeof(float) * p.nc);
    q.t[b] = p.t[b];
  }
  memcpy(q.zt, p.zt, sizeof(float) * 2 * p.P);
  memcpy(q.x, p.x, sizeof(float) * 2 * p.nx);
  memcpy(q.theta, p.theta, sizeof(float) * 2 * p.P);
  (void)npx;
  double lp = eval_loss(&p, 0), lq = eval_loss(&q, 0);
  double d = 0, sc = 0;
  for (size_t i = 0; i < 2 * p.nx; i++) {
    d = fmax(d, fabs(p.xh[i] - q.xh[i]));
    sc = fmax(sc, fabs(p.xh[i]));
  }
  for (int i = 0; i < 2 * p.P; i++) d = fmax(d, fabs(p.thh[i] - q.thh[i]));
  printf("expanded condition (2 -> 4 channels): max |output difference| %.2e (outputs up to %.2e), loss %.9g vs %.9g\n",
         d, sc, lp, lq);
  // fp32 sums of the same non-zero terms in another order: a few ulp of the largest partial
  // sums, amplified by the depth-2 network; 1e-5 relative is ~100 ulp
  CHECK(sc > 1e-3 && d <= 1e-5 * sc, "expanded model output differs by %g (scale %g)", d, sc);
  // new columns: zero, with non-zero gradients
  eval_loss(&q, 1);
  jade_model_zero_grad(q.m);
  CHECK_OK(jade_model_backward(q.m, q.dxh, q.dthh));
  const jade_tensor_info *w = jade_model_find_tensor(q.m, "cond_embedder.proj1.weight");
  double wz = 0, gn = 0;
  const float *pw = jade_model_params(q.m) + w->offset, *gw = jade_model_grads(q.m) + w->offset;
  for (size_t i = 0; i < w->numel; i++)
    if (i % 4 >= 2) {
      wz = fmax(wz, fabs(pw[i]));
      gn += (double)gw[i] * gw[i];
    }
  CHECK(w->shape[0] == 10, "cond_bottleneck sets the condition embedding width (%d)", w->shape[0]);
  CHECK(wz == 0.0 && gn > 0 && isfinite(gn), "new condition columns: max |w| %g (0 expected), |grad|^2 %g (> 0)", wz, gn);
  perturb_params(q.m);
  grad_check(&q, 6, "expanded condition model (patch 2, cond patch 4 / bottleneck 10, 4 condition channels)");
  problem_free(&p);
  problem_free(&q);
}

int main(void) {
  // the finite-difference checks evaluate a tiny model thousands of times: one thread avoids
  // OpenMP barrier costs on a shared machine (the thread test below sets its own counts)
  int nt = omp_get_max_threads();
  omp_set_num_threads(1);
  g_threads = nt;
  if (getenv("FD_H")) g_h = (float)atof(getenv("FD_H"));
  if (getenv("FD_HDIR")) g_hdir = (float)atof(getenv("FD_HDIR"));
  test_tables();
  test_init_and_consistency();
  test_flow();
  test_model_gradients();
  test_threads_and_nocond();
  test_expand_cond_channels();
  test_overfit();
  TEST_RETURN();
}
