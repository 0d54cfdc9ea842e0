/* Finite-difference gradient checks of every layer of the NN engine (forward and backward,
 * input and parameter gradients), plus exact checks of the fixed embeddings, patches, RoPE
 * properties, dropout masks and thread-count independence of the reductions.
 *
 * Method: scalar loss L = sum(w .* out) with random w (accumulated in double); the analytic
 * gradient is the backward pass with dout = w; the numerical one is the 4-point central
 * difference (8 (L(x+h) - L(x-h)) - (L(x+2h) - L(x-2h))) / 12h, h = 1e-2 max(1,|x|), on
 * every input element (O(h^4) truncation; float32 rounding noise ~1e-5/h). Error measure
 * per element: |g_an - g_fd| / (|g_fd| + 0.05 rms(g_fd)); the test requires the max over
 * all elements < 1e-2. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "jade/core.h"
#include "jade/nn.h"
#include "test_util.h"

#define TOL 1e-2

static uint64_t g_stream = 1;
static float *rnd(size_t n, float scale) {
  float *x = jade_alloc(n * sizeof(float));
  jade_rng_normal_fill_f(1234, JADE_STREAM(JADE_RNG_TEST, g_stream++), 0, n, x);
  for (size_t i = 0; i < n; i++) x[i] *= scale;
  return x;
}
static float *zeros(size_t n) { return jade_calloc(n, sizeof(float)); }

/* The layer under test: forward into out using the current inputs in ctx. */
typedef void (*fwd_fn)(void *ctx, float *out);

static double weighted(const float *out, const float *w, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += (double)w[i] * out[i];
  return s;
}

/* Central-difference check of gradient g (analytic) w.r.t. the n floats at x. */
static double fd_check(const char *name, float *x, size_t n, const float *g, fwd_fn f, void *ctx,
                       const float *w, size_t nout) {
  float *out = jade_alloc(nout * sizeof(float));
  double *gfd = jade_alloc(n * sizeof(double));
  double ss = 0.0;
  for (size_t i = 0; i < n; i++) {
    float x0 = x[i];
    float h = 1e-2f * (fabsf(x0) > 1.0f ? fabsf(x0) : 1.0f);
    const float step[4] = {h, -h, 2 * h, -2 * h};
    double l[4];
    for (int q = 0; q < 4; q++) {
      x[i] = x0 + step[q];
      f(ctx, out);
      l[q] = weighted(out, w, nout);
    }
    x[i] = x0;
    gfd[i] = (8.0 * (l[0] - l[1]) - (l[2] - l[3])) / (12.0 * h);
    ss += gfd[i] * gfd[i];
  }
  double rms = sqrt(ss / (n ? n : 1)), maxerr = 0.0;
  size_t worst = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(g[i] - gfd[i]) / (fabs(gfd[i]) + 0.05 * rms + 1e-12);
    if (jade_test_max_err(&maxerr, e)) worst = i;
  }
  printf("  %-34s n=%-5zu rms|g|=%.3e  max err %.2e\n", name, n, rms, maxerr);
  CHECK_LT(maxerr, TOL, "%s: element %zu analytic %.6g vs fd %.6g", name, worst, g[worst], gfd[worst]);
  CHECK_GT(rms, 0.0, "%s: zero gradient, test would be vacuous", name);
  free(out);
  free(gfd);
  return maxerr;
}

/* ------------------------------------------------------------------ linear */
typedef struct { float *x, *W, *b; int N, C, OC; } lin_ctx;
static void lin_fwd(void *c, float *out) {
  lin_ctx *k = c;
  jade_linear_forward(out, k->x, k->W, k->b, k->N, k->C, k->OC);
}
static void test_linear(int bias) {
  int N = 7, C = 5, OC = 6;
  lin_ctx k = {rnd(N * C, 1), rnd(OC * C, 0.5f), bias ? rnd(OC, 0.5f) : NULL, N, C, OC};
  float *w = rnd(N * OC, 1), *dx = zeros(N * C), *dW = zeros(OC * C), *db = zeros(OC);
  // forward against the plain triple loop
  float *out = zeros(N * OC);
  lin_fwd(&k, out);
  double maxd = 0;
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = bias ? k.b[o] : 0.0;
      for (int c = 0; c < C; c++) s += (double)k.x[n * C + c] * k.W[o * C + c];
      jade_test_max_err(&maxd, fabs(s - out[n * OC + o]));
    }
  CHECK_LT(maxd, 1e-5, "linear forward vs loop: %g", maxd);
  jade_linear_backward(dx, dW, bias ? db : NULL, w, k.x, k.W, N, C, OC);
  fd_check(bias ? "linear(bias) dinp" : "linear dinp", k.x, N * C, dx, lin_fwd, &k, w, N * OC);
  fd_check("linear dweight", k.W, OC * C, dW, lin_fwd, &k, w, N * OC);
  if (bias) fd_check("linear dbias", k.b, OC, db, lin_fwd, &k, w, N * OC);
  // accumulation semantics: a second backward doubles the gradients
  float dx1 = dx[3];
  jade_linear_backward(dx, NULL, NULL, w, k.x, k.W, N, C, OC);
  CHECK_CLOSE(dx[3], 2 * dx1, 1e-6);
  free(k.x); free(k.W); free(k.b); free(w); free(dx); free(dW); free(db); free(out);
}

/* ------------------------------------------------------------------ elementwise */
typedef struct { float *x; size_t n; } ew_ctx;
static void silu_fwd(void *c, float *out) { ew_ctx *k = c; jade_silu_forward(out, k->x, k->n); }
static void test_silu(void) {
  size_t n = 40;
  ew_ctx k = {rnd(n, 2), n};
  float *w = rnd(n, 1), *dx = zeros(n), *out = zeros(n);
  silu_fwd(&k, out);
  CHECK_CLOSE(out[0], k.x[0] / (1 + exp(-k.x[0])), 1e-6);
  jade_silu_backward(dx, w, k.x, n);
  fd_check("silu dinp", k.x, n, dx, silu_fwd, &k, w, n);
  free(k.x); free(w); free(dx); free(out);
}

typedef struct { float *x; int N, H; } sw_ctx;
static void swiglu_fwd(void *c, float *out) { sw_ctx *k = c; jade_swiglu_forward(out, k->x, k->N, k->H); }
static void test_swiglu(void) {
  int N = 5, H = 6;
  sw_ctx k = {rnd(N * 2 * H, 1.5f), N, H};
  float *w = rnd(N * H, 1), *dx = zeros(N * 2 * H), *out = zeros(N * H);
  swiglu_fwd(&k, out);
  double x1 = k.x[2 * H + 1], x2 = k.x[2 * H + H + 1];
  CHECK_CLOSE(out[H + 1], x1 / (1 + exp(-x1)) * x2, 1e-5);
  jade_swiglu_backward(dx, w, k.x, N, H);
  fd_check("swiglu dinp", k.x, N * 2 * H, dx, swiglu_fwd, &k, w, N * H);
  free(k.x); free(w); free(dx); free(out);
}

/* ------------------------------------------------------------------ RMSNorm */
typedef struct { float *x, *g, *rstd; int N, C; } rms_ctx;
static void rms_fwd(void *c, float *out) {
  rms_ctx *k = c;
  jade_rmsnorm_forward(out, k->rstd, k->x, k->g, k->N, k->C, 1e-6f);
}
static void test_rmsnorm(void) {
  int N = 6, C = 9;
  rms_ctx k = {rnd(N * C, 1), rnd(C, 1), zeros(N), N, C};
  float *w = rnd(N * C, 1), *dx = zeros(N * C), *dg = zeros(C), *out = zeros(N * C);
  rms_fwd(&k, out);
  double ss = 0;
  for (int c = 0; c < C; c++) ss += (double)k.x[C + c] * k.x[C + c];
  CHECK_CLOSE(out[C + 2], k.x[C + 2] / sqrt(ss / C + 1e-6) * k.g[2], 1e-5);
  jade_rmsnorm_backward(dx, dg, w, k.x, k.g, k.rstd, N, C);
  fd_check("rmsnorm dinp", k.x, N * C, dx, rms_fwd, &k, w, N * C);
  fd_check("rmsnorm dweight", k.g, C, dg, rms_fwd, &k, w, N * C);
  // no-scale variant
  float *dx2 = zeros(N * C), *g_keep = k.g;
  k.g = NULL;
  rms_fwd(&k, out);
  jade_rmsnorm_backward(dx2, NULL, w, k.x, NULL, k.rstd, N, C);
  fd_check("rmsnorm(no weight) dinp", k.x, N * C, dx2, rms_fwd, &k, w, N * C);
  free(k.x); free(k.rstd); free(w); free(dx); free(dg); free(out); free(dx2); free(g_keep);
}

/* ------------------------------------------------------------------ modulation, gate */
typedef struct { float *x, *ada, *y; int B, T, C, stride; } mod_ctx;
static void mod_fwd(void *c, float *out) {
  mod_ctx *k = c;  // shift at column C, scale at 3C of a (B, 4C) "adaLN" row
  jade_modulate_forward(out, k->x, k->ada + k->C, k->ada + 3 * k->C, k->stride, k->B, k->T, k->C);
}
static void gate_fwd(void *c, float *out) {
  mod_ctx *k = c;  // out = x + gate * y, gate at column 2C
  memcpy(out, k->x, sizeof(float) * k->B * k->T * k->C);
  jade_gated_residual_forward(out, k->y, k->ada + 2 * k->C, k->stride, k->B, k->T, k->C);
}
static void test_modulate(void) {
  int B = 3, T = 4, C = 5, S = 4 * C;
  mod_ctx k = {rnd(B * T * C, 1), rnd(B * S, 0.5f), rnd(B * T * C, 1), B, T, C, S};
  size_t n = (size_t)B * T * C;
  float *w = rnd(n, 1), *dx = zeros(n), *dada = zeros(B * S), *dy = zeros(n);
  jade_modulate_backward(dx, dada + C, dada + 3 * C, w, k.x, k.ada + 3 * C, S, B, T, C);
  fd_check("modulate dinp", k.x, n, dx, mod_fwd, &k, w, n);
  fd_check("modulate dshift,dscale", k.ada, B * S, dada, mod_fwd, &k, w, n);
  // gated residual: dx passes through (not written), dy = gate dx, dgate
  float *dada2 = zeros(B * S);
  jade_gated_residual_backward(dy, dada2 + 2 * C, w, k.y, k.ada + 2 * C, S, B, T, C);
  fd_check("gated residual dy", k.y, n, dy, gate_fwd, &k, w, n);
  fd_check("gated residual dgate", k.ada, B * S, dada2, gate_fwd, &k, w, n);
  free(k.x); free(k.ada); free(k.y); free(w); free(dx); free(dada); free(dy); free(dada2);
}

/* fused RMSNorm + modulate: against the composition of the separate layers, and FD */
typedef struct { float *x, *g, *ada, *rstd; int B, T, C, stride; } rm_ctx;
static void rm_fwd(void *c, float *out) {
  rm_ctx *k = c;  // shift at column 0, scale at 2C of a (B, 3C) row
  jade_rmsnorm_modulate_forward(out, k->rstd, k->x, k->g, k->ada, k->ada + 2 * k->C, k->stride, k->B,
                                k->T, k->C, 1e-6f);
}
static void test_rmsnorm_modulate(void) {
  int B = 2, T = 3, C = 7, S = 3 * C;
  size_t n = (size_t)B * T * C;
  rm_ctx k = {rnd(n, 1), rnd(C, 0.3f), rnd(B * S, 0.5f), zeros(B * T), B, T, C, S};
  for (int c = 0; c < C; c++) k.g[c] += 1.0f;
  float *w = rnd(n, 1), *out = zeros(n), *nrm = zeros(n), *ref = zeros(n), *r2 = zeros(B * T);
  rm_fwd(&k, out);
  jade_rmsnorm_forward(nrm, r2, k.x, k.g, B * T, C, 1e-6f);
  jade_modulate_forward(ref, nrm, k.ada, k.ada + 2 * C, S, B, T, C);
  double md = 0;
  for (size_t i = 0; i < n; i++) jade_test_max_err(&md, fabs(out[i] - ref[i]));
  CHECK_LT(md, 1e-6, "fused rmsnorm-modulate differs from the composition by %g", md);
  float *dx = zeros(n), *dg = zeros(C), *dada = zeros(B * S);
  jade_rmsnorm_modulate_backward(dx, dg, dada, dada + 2 * C, w, k.x, k.g, k.rstd, k.ada + 2 * C, S, B, T, C);
  fd_check("rmsnorm+modulate dinp", k.x, n, dx, rm_fwd, &k, w, n);
  fd_check("rmsnorm+modulate dweight", k.g, C, dg, rm_fwd, &k, w, n);
  fd_check("rmsnorm+modulate dshift,dscale", k.ada, B * S, dada, rm_fwd, &k, w, n);
  free(k.x); free(k.g); free(k.ada); free(k.rstd); free(w); free(out); free(nrm); free(ref); free(r2);
  free(dx); free(dg); free(dada);
}

/* ------------------------------------------------------------------ mean pool */
typedef struct { float *x; int B, T, K, C; } mp_ctx;
static void mp_fwd(void *c, float *out) { mp_ctx *k = c; jade_meanpool_forward(out, k->x, k->B, k->T, k->K, k->C); }
static void test_meanpool(void) {
  mp_ctx k = {rnd(2 * 5 * 3, 1), 2, 5, 3, 3};
  float *w = rnd(2 * 3, 1), *dx = zeros(2 * 5 * 3);
  jade_meanpool_backward(dx, w, 2, 5, 3, 3);
  fd_check("meanpool dinp", k.x, 30, dx, mp_fwd, &k, w, 6);
  CHECK(dx[3 * 3] == 0.0f && dx[4 * 3 + 2] == 0.0f, "meanpool touches tokens beyond K");
  free(k.x); free(w); free(dx);
}

/* ------------------------------------------------------------------ dropout */
typedef struct { float *x; size_t n; float p; uint64_t idx0; } dr_ctx;
static void drop_fwd(void *c, float *out) {
  dr_ctx *k = c;
  jade_dropout_forward(out, k->x, k->n, k->p, 7, 99, k->idx0);
}
static void test_dropout(void) {
  size_t n = 37;
  dr_ctx k = {rnd(n, 1), n, 0.3f, 5};
  float *w = rnd(n, 1), *dx = zeros(n), *out = zeros(n);
  jade_dropout_backward(dx, w, n, k.p, 7, 99, k.idx0);
  fd_check("dropout dinp", k.x, n, dx, drop_fwd, &k, w, n);
  drop_fwd(&k, out);
  for (size_t i = 0; i < n; i++) {
    int keep = jade_dropout_keep(k.p, 7, 99, k.idx0 + i);
    CHECK(out[i] == (keep ? k.x[i] * (1.0f / (1.0f - k.p)) : 0.0f), "dropout element %zu disagrees with keep()", i);
  }
  // keep rate over many elements ~ 1 - p; sub-ranges give the same mask
  size_t N = 200000;
  float *ones = jade_alloc(N * sizeof(float)), *o = zeros(N), *o2 = zeros(N);
  for (size_t i = 0; i < N; i++) ones[i] = 1.0f;
  jade_dropout_forward(o, ones, N, 0.3f, 11, 3, 0);
  size_t kept = 0;
  for (size_t i = 0; i < N; i++) kept += o[i] != 0.0f;
  double rate = (double)kept / N;
  CHECK_LT(fabs(rate - 0.7), 0.005, "dropout keep rate %.4f", rate);
  jade_dropout_forward(o2, ones + 1001, 5000, 0.3f, 11, 3, 1001);
  CHECK(memcmp(o2, o + 1001, 5000 * sizeof(float)) == 0, "dropout mask depends on the offset");
  free(k.x); free(w); free(dx); free(out); free(ones); free(o); free(o2);
}

/* ------------------------------------------------------------------ RoPE */
typedef struct { float *x, *cs, *sn; int B, T, H, hd, stride; } rope_ctx;
static void rope_fwd(void *c, float *out) {
  rope_ctx *k = c;
  size_t n = (size_t)k->B * k->T * k->stride;
  memcpy(out, k->x, n * sizeof(float));
  jade_rope_forward(out, k->cs, k->sn, k->B, k->T, k->H, k->hd, k->stride);
}
static void test_rope(void) {
  int B = 2, T = 5, H = 2, hd = 8, stride = 3 * H * hd;
  float rows[5] = {0, 0, 1, 2.5f, 3}, cols[5] = {0, 1, 0, 2.5f, 7};
  unsigned char has[5] = {0, 1, 1, 1, 1};
  float *cs = zeros(T * hd / 2), *sn = zeros(T * hd / 2);
  jade_rope_table(cs, sn, rows, cols, has, T, hd, 10000.0f);
  // table entries: pair m<hd/4 uses row * theta^(-2m/(hd/2)); m>=hd/4 the column
  CHECK_CLOSE(cs[3 * 4 + 1], cos(2.5 * pow(10000.0, -2.0 / 4)), 1e-6);
  CHECK_CLOSE(sn[4 * 4 + 3], sin(7.0 * pow(10000.0, -2.0 / 4)), 1e-6);
  CHECK(cs[0] == 1.0f && sn[1] == 0.0f, "token without position not identity");
  size_t n = (size_t)B * T * stride;
  rope_ctx k = {rnd(n, 1), cs, sn, B, T, H, hd, stride};
  float *w = rnd(n, 1), *out = zeros(n);
  // the backward is linear: dinp = R^T w (+ identity on the untouched columns)
  float *dx = zeros(n);
  memcpy(dx, w, n * sizeof(float));
  jade_rope_backward(dx, cs, sn, B, T, H, hd, stride);
  fd_check("rope dinp", k.x, n, dx, rope_fwd, &k, w, n);
  // norm preserved; relative-position property: <R(p) a, R(p') b> depends on p - p' only
  rope_fwd(&k, out);
  double n0 = 0, n1 = 0;
  for (int d = 0; d < hd; d++) {
    n0 += (double)k.x[3 * stride + d] * k.x[3 * stride + d];
    n1 += (double)out[3 * stride + d] * out[3 * stride + d];
  }
  CHECK_CLOSE(n1, n0, 1e-5);
  float r2[4] = {1, 4, 10, 13}, c2[4] = {2, 3, -1, 0};
  float *cs2 = zeros(4 * hd / 2), *sn2 = zeros(4 * hd / 2);
  jade_rope_table(cs2, sn2, r2, c2, NULL, 4, hd, 10000.0f);
  float *a = rnd(4 * hd, 1), *bv = rnd(4 * hd, 1);
  // same a at tokens 0 and 2, same b at tokens 1 and 3 (offsets (3,1) and (3,1))
  memcpy(a + 2 * hd, a, hd * sizeof(float));
  memcpy(bv + 3 * hd, bv + hd, hd * sizeof(float));
  jade_rope_forward(a, cs2, sn2, 1, 4, 1, hd, hd);
  jade_rope_forward(bv, cs2, sn2, 1, 4, 1, hd, hd);
  double d01 = 0, d23 = 0;
  for (int d = 0; d < hd; d++) {
    d01 += (double)a[d] * bv[hd + d];
    d23 += (double)a[2 * hd + d] * bv[3 * hd + d];
  }
  CHECK_LT(fabs(d01 - d23), 1e-5 * (1 + fabs(d01)), "rope not relative: %g vs %g", d01, d23);
  free(cs); free(sn); free(k.x); free(w); free(out); free(dx); free(cs2); free(sn2); free(a); free(bv);
}

/* ------------------------------------------------------------------ attention */
typedef struct {
  float *qkv, *qw, *kw, *qr, *kr, *vr, *rq, *rk, *att;
  jade_attention_shape s;
} att_ctx;
static void att_fwd(void *c, float *out) {
  att_ctx *k = c;
  CHECK_OK(jade_attention_forward(out, k->qr, k->kr, k->vr, k->rq, k->rk, k->att, k->qkv, k->qw,
                                  k->kw, NULL, &k->s));
}
/* Naive double-precision reference of the attention forward (no dropout). */
static void att_ref(const att_ctx *k, double *out) {
  const jade_attention_shape *s = &k->s;
  int T = s->T, H = s->H, hd = s->hd, D = H * hd;
  double *q = malloc(sizeof(double) * T * hd), *kk = malloc(sizeof(double) * T * hd);
  double *S = malloc(sizeof(double) * T);
  for (int b = 0; b < s->B; b++)
    for (int h = 0; h < H; h++) {
      for (int t = 0; t < T; t++)
        for (int part = 0; part < 2; part++) {
          const float *x = k->qkv + ((size_t)b * T + t) * 3 * D + part * D + h * hd;
          const float *w = part ? k->kw : k->qw;
          double ss = 0;
          for (int d = 0; d < hd; d++) ss += (double)x[d] * x[d];
          double r = 1 / sqrt(ss / hd + s->eps);
          double *y = (part ? kk : q) + t * hd;
          for (int d = 0; d < hd; d++) y[d] = x[d] * r * w[d];
          for (int m = 0; m < hd / 2; m++) {
            double cs = s->rope_cos[t * hd / 2 + m], sn = s->rope_sin[t * hd / 2 + m];
            double a = y[2 * m], bb = y[2 * m + 1];
            y[2 * m] = a * cs - bb * sn;
            y[2 * m + 1] = bb * cs + a * sn;
          }
        }
      for (int i = 0; i < T; i++) {
        double mx = -1e300, sum = 0;
        for (int j = 0; j < T; j++) {
          double d = 0;
          for (int e = 0; e < hd; e++) d += q[i * hd + e] * kk[j * hd + e];
          S[j] = d / sqrt((double)hd);
          mx = jade_test_max(mx, S[j]);
        }
        for (int j = 0; j < T; j++) sum += (S[j] = exp(S[j] - mx));
        for (int e = 0; e < hd; e++) {
          double o = 0;
          for (int j = 0; j < T; j++) o += S[j] / sum * k->qkv[((size_t)b * T + j) * 3 * D + 2 * D + h * hd + e];
          out[((size_t)b * T + i) * D + h * hd + e] = o;
        }
      }
    }
  free(q); free(kk); free(S);
}
static void test_attention(float dropout) {
  int B = 2, T = 6, H = 2, hd = 8, D = H * hd;
  float rows[6] = {0, 0, 0, 0, 1, 1}, cols[6] = {0, 0, 0, 1, 0, 1};
  unsigned char has[6] = {0, 1, 1, 1, 1, 1};
  float *cs = zeros(T * hd / 2), *sn = zeros(T * hd / 2);
  jade_rope_table(cs, sn, rows, cols, has, T, hd, 10000.0f);
  att_ctx k;
  k.qkv = rnd((size_t)B * T * 3 * D, 1);
  k.qw = rnd(hd, 0.5f);
  k.kw = rnd(hd, 0.5f);
  for (int d = 0; d < hd; d++) { k.qw[d] += 1.0f; k.kw[d] += 1.0f; }
  size_t nh = (size_t)B * H * T * hd;
  k.qr = zeros(nh); k.kr = zeros(nh); k.vr = zeros(nh);
  k.rq = zeros(B * T * H); k.rk = zeros(B * T * H);
  k.att = zeros((size_t)B * H * T * T);
  k.s = (jade_attention_shape){B, T, H, hd, 1e-6f, cs, sn, dropout, 5, 77, 1000};
  size_t nout = (size_t)B * T * D;
  float *w = rnd(nout, 1), *out = zeros(nout);
  float *dqkv = zeros((size_t)B * T * 3 * D), *dqw = zeros(hd), *dkw = zeros(hd);
  att_fwd(&k, out);
  if (dropout == 0.0f) {
    double *ref = malloc(sizeof(double) * nout), md = 0;
    att_ref(&k, ref);
    for (size_t i = 0; i < nout; i++) jade_test_max_err(&md, fabs(ref[i] - out[i]));
    printf("  attention forward vs double reference: max abs diff %.2e\n", md);
    CHECK_LT(md, 1e-5, "attention forward differs from reference by %g", md);
    // inference mode (nothing saved) gives the same output
    float *out2 = zeros(nout);
    CHECK_OK(jade_attention_forward(out2, NULL, NULL, NULL, NULL, NULL, NULL, k.qkv, k.qw, k.kw, NULL, &k.s));
    CHECK(memcmp(out, out2, nout * sizeof(float)) == 0, "inference attention differs");
    free(ref); free(out2);
  }
  // caller-owned scratch (poisoned) for the backward
  size_t nscr = jade_attention_scratch_floats(&k.s, omp_get_max_threads());
  float *scr = jade_alloc(nscr * sizeof(float));
  for (size_t i = 0; i < nscr; i++) scr[i] = NAN;
  CHECK_OK(jade_attention_backward(dqkv, dqw, dkw, w, k.qkv, k.qr, k.kr, k.vr, k.rq, k.rk, k.att,
                                   k.qw, k.kw, scr, &k.s));
  free(scr);
  fd_check(dropout > 0 ? "attention(dropout) dqkv" : "attention dqkv", k.qkv, (size_t)B * T * 3 * D,
           dqkv, att_fwd, &k, w, nout);
  fd_check("attention dq_norm_weight", k.qw, hd, dqw, att_fwd, &k, w, nout);
  fd_check("attention dk_norm_weight", k.kw, hd, dkw, att_fwd, &k, w, nout);
  free(cs); free(sn); free(k.qkv); free(k.qw); free(k.kw); free(k.qr); free(k.kr); free(k.vr);
  free(k.rq); free(k.rk); free(k.att); free(w); free(out); free(dqkv); free(dqw); free(dkw);
}

/* ------------------------------------------------------------------ fixed embeddings */
static void test_embeddings(void) {
  float t[2] = {0.0f, 0.37f}, e[2 * 256];
  jade_timestep_embedding(e, t, 2, 256, 10000.0f);
  CHECK(e[0] == 1.0f && e[128] == 0.0f, "time embedding at t=0");
  for (int j = 0; j < 128; j += 31) {
    double f = exp(-log(10000.0) * j / 128);
    CHECK_CLOSE(e[256 + j], cos(0.37 * f), 1e-6);
    CHECK_CLOSE(e[256 + 128 + j], sin(0.37 * f), 1e-5);
  }
  int D = 16, gh = 3, gw = 4;
  float *pe = zeros((size_t)gh * gw * D);
  jade_sincos_pos_embed_2d(pe, D, gh, gw);
  int r = 2, c = 3, q = D / 4;
  for (int k = 0; k < q; k++) {
    double om = 1.0 / pow(10000.0, (double)k / q);
    const float *o = pe + ((size_t)r * gw + c) * D;
    CHECK(jade_test_lt_ok(fabs(o[k] - sin(c * om)), 1e-6) && jade_test_lt_ok(fabs(o[q + k] - cos(c * om)), 1e-6), "pos emb column part k=%d", k);
    CHECK(jade_test_lt_ok(fabs(o[2 * q + k] - sin(r * om)), 1e-6) && jade_test_lt_ok(fabs(o[3 * q + k] - cos(r * om)), 1e-6), "pos emb row part k=%d", k);
  }
  free(pe);
}

static void test_patches(void) {
  int B = 2, C = 3, H = 8, W = 4, p = 2;
  size_t n = (size_t)B * C * H * W;
  float *img = rnd(n, 1), *tok = zeros(n), *back = zeros(n), *y = rnd(n, 1), *uy = zeros(n);
  jade_patchify(tok, img, B, C, H, W, p);
  // token (b=1, i=2, j=1), patch element (py=1, px=0, c=2)
  int gw = W / p;
  CHECK(tok[((size_t)1 * (H / p) * gw + 2 * gw + 1) * p * p * C + (1 * p + 0) * C + 2] ==
            img[(((size_t)1 * C + 2) * H + 2 * p + 1) * W + 1 * p + 0], "patchify layout");
  jade_unpatchify(back, tok, B, C, H, W, p);
  CHECK(memcmp(back, img, n * sizeof(float)) == 0, "unpatchify is not the inverse");
  jade_unpatchify(uy, y, B, C, H, W, p);
  double a = 0, b = 0;
  for (size_t i = 0; i < n; i++) {
    a += (double)tok[i] * y[i];
    b += (double)img[i] * uy[i];
  }
  CHECK_CLOSE(a, b, 1e-10);  // adjoint: <P x, y> = <x, U y>
  free(img); free(tok); free(back); free(y); free(uy);
}

/* jade's own reductions (bias and norm-weight gradients) do not depend on the thread count. */
static void test_determinism(void) {
  int N = 3000, C = 96, OC = 80;
  float *x = rnd((size_t)N * C, 1), *dout = rnd((size_t)N * OC, 1), *W = rnd((size_t)OC * C, 0.1f);
  float *g = rnd(C, 1), *rstd = zeros(N), *y = zeros((size_t)N * C), *dyy = rnd((size_t)N * C, 1);
  float *res[2][3];
  int nt0 = omp_get_max_threads();
  for (int r = 0; r < 2; r++) {
    omp_set_num_threads(r == 0 ? 1 : (nt0 > 1 ? nt0 : 2));
    res[r][0] = zeros(OC); res[r][1] = zeros((size_t)OC * C); res[r][2] = zeros(C);
    jade_linear_backward(NULL, res[r][1], res[r][0], dout, x, W, N, C, OC);
    jade_rmsnorm_forward(y, rstd, x, g, N, C, 1e-6f);
    jade_rmsnorm_backward(NULL, res[r][2], dyy, x, g, rstd, N, C);
  }
  omp_set_num_threads(nt0);
  CHECK(memcmp(res[0][0], res[1][0], OC * sizeof(float)) == 0, "bias grad depends on threads");
  // (the weight gradient is one sgemm: its order is OpenBLAS's business, not checked here)
  CHECK(memcmp(res[0][2], res[1][2], C * sizeof(float)) == 0, "rmsnorm weight grad depends on threads");
  // colsum equals the double sum
  double s = 0;
  for (int n = 0; n < N; n++) s += dout[(size_t)n * OC + 5];
  CHECK_CLOSE(res[0][0][5], s, 1e-4);
  for (int r = 0; r < 2; r++)
    for (int j = 0; j < 3; j++) free(res[r][j]);
  free(x); free(dout); free(W); free(g); free(rstd); free(y); free(dyy);
}

int main(void) {
  printf("matmul backend %s; avx512f %d avx512-bf16 %d amx-bf16 %d\n",
         jade_matmul_backend_name(jade_matmul_get_backend()), jade_cpu_has_avx512f(),
         jade_cpu_has_avx512_bf16(), jade_cpu_has_amx_bf16());
  test_linear(1);
  test_linear(0);
  test_silu();
  test_swiglu();
  test_rmsnorm();
  test_modulate();
  test_rmsnorm_modulate();
  test_meanpool();
  test_dropout();
  test_rope();
  test_attention(0.0f);
  test_attention(0.25f);
  test_embeddings();
  test_patches();
  test_determinism();
  TEST_RETURN();
}
