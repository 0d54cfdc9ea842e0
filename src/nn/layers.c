/* Elementwise, normalisation, embedding and patch layers of the jade NN engine
 * (API and conventions: include/jade/nn.h). Backward functions accumulate (+=). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jade/nn.h"
#include "nn/nn_internal.h"

#define PAR_MIN 32768 /* below this many elements loops stay serial */

/* ------------------------------------------------------------------ SiLU */
static JADE_CLONES void silu_span(float *restrict out, const float *restrict inp, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) out[i] = inp[i] * jade_fsigmoid(inp[i]);
}
static JADE_CLONES void silu_back_span(float *restrict dinp, const float *restrict dout,
                                       const float *restrict inp, size_t n) {
  // d/dx x s(x) = s (1 + x (1 - s))
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    float x = inp[i], s = jade_fsigmoid(x);
    dinp[i] += dout[i] * s * (1.0f + x * (1.0f - s));
  }
}
#define SPAN 4096
void jade_silu_forward(float *out, const float *inp, size_t n) {
  long nb = (long)((n + SPAN - 1) / SPAN);
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (long k = 0; k < nb; k++) {
    size_t i0 = (size_t)k * SPAN, m = n - i0 < SPAN ? n - i0 : SPAN;
    silu_span(out + i0, inp + i0, m);
  }
}

void jade_silu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
  long nb = (long)((n + SPAN - 1) / SPAN);
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (long k = 0; k < nb; k++) {
    size_t i0 = (size_t)k * SPAN, m = n - i0 < SPAN ? n - i0 : SPAN;
    silu_back_span(dinp + i0, dout + i0, inp + i0, m);
  }
}

/* ------------------------------------------------------------------ RMSNorm */
void jade_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N,
                          int C, float eps) {
  // inp (N,C), weight (C), out (N,C), rstd (N)
#pragma omp parallel for schedule(static) if ((size_t)N * C > PAR_MIN)
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * C;
    float *y = out + (size_t)n * C;
    float ss = 0.0f;
    for (int c = 0; c < C; c++) ss += x[c] * x[c];
    float r = 1.0f / sqrtf(ss / C + eps);
    if (rstd) rstd[n] = r;
    if (weight)
      for (int c = 0; c < C; c++) y[c] = x[c] * r * weight[c];
    else
      for (int c = 0; c < C; c++) y[c] = x[c] * r;
  }
}

/* Fixed row chunks for thread-count independent parameter-gradient sums. */
static int n_chunks(int N, int C) {
  if ((size_t)N * C < 16384 || N < 64) return 1;
  int k = N / 32;
  return k > 32 ? 32 : k;
}

void jade_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                           const float *weight, const float *rstd, int N, int C) {
  // y = w x r, r = (mean x^2 + eps)^-1/2:
  // dx = r (w dy) - r^3 / C x sum_j (w_j dy_j x_j);  dw = sum_n dy x r
  if (dinp) {
#pragma omp parallel for schedule(static) if ((size_t)N * C > PAR_MIN)
    for (int n = 0; n < N; n++) {
      const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
      float *dx = dinp + (size_t)n * C;
      float r = rstd[n];
      float dot = 0.0f;
      if (weight)
        for (int c = 0; c < C; c++) dot += weight[c] * dy[c] * x[c];
      else
        for (int c = 0; c < C; c++) dot += dy[c] * x[c];
      float k = r * r * r * dot / C;
      if (weight)
        for (int c = 0; c < C; c++) dx[c] += r * weight[c] * dy[c] - k * x[c];
      else
        for (int c = 0; c < C; c++) dx[c] += r * dy[c] - k * x[c];
    }
  }
  if (dweight) {
    int nc = n_chunks(N, C);
    float *part = nc > 1 ? jade_calloc((size_t)nc * C, sizeof(float)) : NULL;
    if (!part) nc = 1;
    if (nc == 1) {
      for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        float r = rstd[n];
        for (int c = 0; c < C; c++) dweight[c] += dy[c] * x[c] * r;
      }
    } else {
#pragma omp parallel for schedule(static)
      for (int k = 0; k < nc; k++) {
        int n0 = (int)((long)N * k / nc), n1 = (int)((long)N * (k + 1) / nc);
        float *p = part + (size_t)k * C;
        for (int n = n0; n < n1; n++) {
          const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
          float r = rstd[n];
          for (int c = 0; c < C; c++) p[c] += dy[c] * x[c] * r;
        }
      }
      for (int k = 0; k < nc; k++)
        for (int c = 0; c < C; c++) dweight[c] += part[(size_t)k * C + c];
    }
    free(part);
  }
}

/* ------------------------------------------------------------------ adaLN modulation */
void jade_modulate_forward(float *out, const float *inp, const float *shift, const float *scale,
                           int mod_stride, int B, int T, int C) {
  // inp (B,T,C), shift/scale (B, stride), out = inp (1 + scale) + shift (DiT eq. "modulate")
#pragma omp parallel for schedule(static) if ((size_t)B * T * C > PAR_MIN)
  for (int bt = 0; bt < B * T; bt++) {
    int b = bt / T;
    const float *sh = shift + (size_t)b * mod_stride, *sc = scale + (size_t)b * mod_stride;
    const float *x = inp + (size_t)bt * C;
    float *y = out + (size_t)bt * C;
    for (int c = 0; c < C; c++) y[c] = x[c] * (1.0f + sc[c]) + sh[c];
  }
}

#define CBLK 64
void jade_modulate_backward(float *dinp, float *dshift, float *dscale, const float *dout,
                            const float *inp, const float *scale, int mod_stride, int B, int T,
                            int C) {
  if (dinp) {
#pragma omp parallel for schedule(static) if ((size_t)B * T * C > PAR_MIN)
    for (int bt = 0; bt < B * T; bt++) {
      int b = bt / T;
      const float *sc = scale + (size_t)b * mod_stride;
      const float *dy = dout + (size_t)bt * C;
      float *dx = dinp + (size_t)bt * C;
      for (int c = 0; c < C; c++) dx[c] += dy[c] * (1.0f + sc[c]);
    }
  }
  if (!dshift && !dscale) return;
  // per (b, column block): sum over t in order (thread-count independent)
  int nblk = (C + CBLK - 1) / CBLK;
#pragma omp parallel for schedule(static) if ((size_t)B * T * C > PAR_MIN)
  for (int task = 0; task < B * nblk; task++) {
    int b = task / nblk, c0 = (task % nblk) * CBLK, c1 = c0 + CBLK < C ? c0 + CBLK : C;
    float ash[CBLK], asc[CBLK];
    for (int c = 0; c < c1 - c0; c++) ash[c] = asc[c] = 0.0f;
    for (int t = 0; t < T; t++) {
      const float *dy = dout + ((size_t)b * T + t) * C;
      const float *x = inp + ((size_t)b * T + t) * C;
#pragma omp simd
      for (int c = c0; c < c1; c++) {
        ash[c - c0] += dy[c];
        asc[c - c0] += dy[c] * x[c];
      }
    }
    for (int c = c0; c < c1; c++) {
      if (dshift) dshift[(size_t)b * mod_stride + c] += ash[c - c0];
      if (dscale) dscale[(size_t)b * mod_stride + c] += asc[c - c0];
    }
  }
}

/* ------------------------------------------------------------------ RMSNorm + adaLN */
static JADE_CLONES void rmsmod_row(float *restrict y, float *restrict rstd,
                                   const float *restrict x, const float *restrict w,
                                   const float *restrict sh, const float *restrict sc, int C,
                                   float eps) {
  float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
  for (int c = 0; c < C; c++) ss += x[c] * x[c];
  float r = 1.0f / sqrtf(ss / C + eps);
  *rstd = r;
#pragma omp simd
  for (int c = 0; c < C; c++) y[c] = x[c] * r * w[c] * (1.0f + sc[c]) + sh[c];
}

void jade_rmsnorm_modulate_forward(float *out, float *rstd, const float *inp, const float *weight,
                                   const float *shift, const float *scale, int mod_stride, int B,
                                   int T, int C, float eps) {
  // out = RMSNorm(inp) * (1 + scale[b]) + shift[b]  (DiT modulate after the JiT RMSNorm)
#pragma omp parallel for schedule(static) if ((size_t)B * T * C > PAR_MIN)
  for (int bt = 0; bt < B * T; bt++) {
    size_t b = (size_t)(bt / T);
    rmsmod_row(out + (size_t)bt * C, rstd + bt, inp + (size_t)bt * C, weight,
               shift + b * mod_stride, scale + b * mod_stride, C, eps);
  }
}

static JADE_CLONES void rmsmod_back_row(float *restrict dx, const float *restrict dy,
                                        const float *restrict x, const float *restrict w,
                                        const float *restrict sc, float r, int C) {
  // n = x r w, m = n (1 + sc) + sh: dn = dm (1 + sc);
  // dx = r w dn - r^3/C x sum_c (w dn x)
  float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
  for (int c = 0; c < C; c++) dot += w[c] * dy[c] * (1.0f + sc[c]) * x[c];
  float k = r * r * r * dot / C;
#pragma omp simd
  for (int c = 0; c < C; c++) dx[c] += r * w[c] * dy[c] * (1.0f + sc[c]) - k * x[c];
}

void jade_rmsnorm_modulate_backward(float *dinp, float *dweight, float *dshift, float *dscale,
                                    const float *dout, const float *inp, const float *weight,
                                    const float *rstd, const float *scale, int mod_stride, int B,
                                    int T, int C) {
  if (dinp) {
#pragma omp parallel for schedule(static) if ((size_t)B * T * C > PAR_MIN)
    for (int bt = 0; bt < B * T; bt++)
      rmsmod_back_row(dinp + (size_t)bt * C, dout + (size_t)bt * C, inp + (size_t)bt * C, weight,
                      scale + (size_t)(bt / T) * mod_stride, rstd[bt], C);
  }
  if (!dweight && !dshift && !dscale) return;
  // reductions per (b, column block), rows in order; dweight via per-b partials summed in b
  // order (thread-count independent)
  int nblk = (C + CBLK - 1) / CBLK;
  float *wpart = dweight ? jade_calloc((size_t)B * C, sizeof(float)) : NULL;
#pragma omp parallel for schedule(static) if ((size_t)B * T * C > PAR_MIN)
  for (int task = 0; task < B * nblk; task++) {
    int b = task / nblk, c0 = (task % nblk) * CBLK, c1 = c0 + CBLK < C ? c0 + CBLK : C;
    const float *sc = scale + (size_t)b * mod_stride;
    float ash[CBLK], asc[CBLK], aw[CBLK];
    for (int c = 0; c < c1 - c0; c++) ash[c] = asc[c] = aw[c] = 0.0f;
    for (int t = 0; t < T; t++) {
      size_t row = (size_t)b * T + t;
      const float *dy = dout + row * C, *x = inp + row * C;
      float r = rstd[row];
#pragma omp simd
      for (int c = c0; c < c1; c++) {
        float xr = x[c] * r;
        ash[c - c0] += dy[c];
        asc[c - c0] += dy[c] * xr * weight[c];
        aw[c - c0] += dy[c] * (1.0f + sc[c]) * xr;
      }
    }
    for (int c = c0; c < c1; c++) {
      if (dshift) dshift[(size_t)b * mod_stride + c] += ash[c - c0];
      if (dscale) dscale[(size_t)b * mod_stride + c] += asc[c - c0];
      if (wpart) wpart[(size_t)b * C + c] = aw[c - c0];
    }
  }
  if (wpart) {
    for (int b = 0; b < B; b++)
      for (int c = 0; c < C; c++) dweight[c] += wpart[(size_t)b * C + c];
    free(wpart);
  } else if (dweight) { /* out of memory for the partials: serial, same order */
    for (int b = 0; b < B; b++) {
      const float *sc = scale + (size_t)b * mod_stride;
      for (int c = 0; c < C; c++) {
        float a = 0.0f;
        for (int t = 0; t < T; t++) {
          size_t row = (size_t)b * T + t;
          a += dout[row * C + c] * (1.0f + sc[c]) * inp[row * C + c] * rstd[row];
        }
        dweight[c] += a;
      }
    }
  }
}

void jade_gated_residual_forward(float *x, const float *y, const float *gate, int gate_stride,
                                 int B, int T, int C) {
  // x (B,T,C) += gate[b] * y  (adaLN-Zero gate, DiT)
#pragma omp parallel for schedule(static) if ((size_t)B * T * C > PAR_MIN)
  for (int bt = 0; bt < B * T; bt++) {
    const float *g = gate + (size_t)(bt / T) * gate_stride;
    float *xr = x + (size_t)bt * C;
    const float *yr = y + (size_t)bt * C;
#pragma omp simd
    for (int c = 0; c < C; c++) xr[c] += g[c] * yr[c];
  }
}

void jade_gated_residual_backward(float *dy, float *dgate, const float *dx, const float *y,
                                  const float *gate, int gate_stride, int B, int T, int C) {
  if (dy) {
#pragma omp parallel for schedule(static) if ((size_t)B * T * C > PAR_MIN)
    for (int bt = 0; bt < B * T; bt++) {
      const float *g = gate + (size_t)(bt / T) * gate_stride;
      float *d = dy + (size_t)bt * C;
      const float *s = dx + (size_t)bt * C;
#pragma omp simd
      for (int c = 0; c < C; c++) d[c] += g[c] * s[c];
    }
  }
  if (!dgate) return;
  int nblk = (C + CBLK - 1) / CBLK;
#pragma omp parallel for schedule(static) if ((size_t)B * T * C > PAR_MIN)
  for (int task = 0; task < B * nblk; task++) {
    int b = task / nblk, c0 = (task % nblk) * CBLK, c1 = c0 + CBLK < C ? c0 + CBLK : C;
    float acc[CBLK];
    for (int c = 0; c < c1 - c0; c++) acc[c] = 0.0f;
    for (int t = 0; t < T; t++) {
      const float *s = dx + ((size_t)b * T + t) * C, *yr = y + ((size_t)b * T + t) * C;
#pragma omp simd
      for (int c = c0; c < c1; c++) acc[c - c0] += s[c] * yr[c];
    }
    for (int c = c0; c < c1; c++) dgate[(size_t)b * gate_stride + c] += acc[c - c0];
  }
}

/* ------------------------------------------------------------------ SwiGLU */
static JADE_CLONES void swiglu_row(float *restrict y, const float *restrict x1,
                                   const float *restrict x2, int H) {
#pragma omp simd
  for (int j = 0; j < H; j++) y[j] = x1[j] * jade_fsigmoid(x1[j]) * x2[j];
}
static JADE_CLONES void swiglu_back_row(float *restrict d1, float *restrict d2,
                                        const float *restrict dy, const float *restrict x1,
                                        const float *restrict x2, int H) {
#pragma omp simd
  for (int j = 0; j < H; j++) {
    float s = jade_fsigmoid(x1[j]);
    d1[j] += dy[j] * x2[j] * s * (1.0f + x1[j] * (1.0f - s));
    d2[j] += dy[j] * x1[j] * s;
  }
}

void jade_swiglu_forward(float *out, const float *inp, int N, int H) {
  // inp (N,2H) = [x1 | x2], out (N,H) = silu(x1) x2  (Shazeer 2020, JiT SwiGLUFFN)
#pragma omp parallel for schedule(static) if ((size_t)N * H > PAR_MIN)
  for (int n = 0; n < N; n++) {
    const float *x1 = inp + (size_t)n * 2 * H;
    swiglu_row(out + (size_t)n * H, x1, x1 + H, H);
  }
}

void jade_swiglu_backward(float *dinp, const float *dout, const float *inp, int N, int H) {
#pragma omp parallel for schedule(static) if ((size_t)N * H > PAR_MIN)
  for (int n = 0; n < N; n++) {
    const float *x1 = inp + (size_t)n * 2 * H;
    float *d1 = dinp + (size_t)n * 2 * H;
    swiglu_back_row(d1, d1 + H, dout + (size_t)n * H, x1, x1 + H, H);
  }
}

/* ------------------------------------------------------------------ dropout */
/* Element i of (seed, stream) uses 32-bit word i%4 of the Philox block i/4 with counter
 * (block lo, block hi, stream lo, stream hi), as jade_rng_* do. */
static inline void philox_block(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]) {
  uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                     (uint32_t)(stream >> 32)};
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  jade_philox4x32(ctr, key, out);
}

static inline uint32_t drop_threshold(float p) {
  double th = (double)p * 4294967296.0;
  return th >= 4294967295.0 ? 0xFFFFFFFFu : (uint32_t)th;
}

int jade_dropout_keep(float p, uint64_t seed, uint64_t stream, uint64_t index) {
  if (p <= 0.0f) return 1;
  uint32_t r[4];
  philox_block(seed, stream, index >> 2, r);
  return r[index & 3] >= drop_threshold(p);
}

static void dropout_apply(float *out, const float *inp, size_t n, float p, uint64_t seed,
                          uint64_t stream, uint64_t index0, int accumulate) {
  uint32_t th = drop_threshold(p);
  float scale = 1.0f / (1.0f - p);
  // blocks of 4 elements aligned to global indices
  uint64_t first = index0 >> 2, last = (index0 + n + 3) >> 2;
  long nb = (long)(last - first);
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (long bi = 0; bi < nb; bi++) {
    uint32_t r[4];
    uint64_t blk = first + (uint64_t)bi;
    philox_block(seed, stream, blk, r);
    for (int w = 0; w < 4; w++) {
      uint64_t g = blk * 4 + (uint64_t)w;
      if (g < index0 || g >= index0 + n) continue;
      size_t i = (size_t)(g - index0);
      float v = r[w] >= th ? inp[i] * scale : 0.0f;
      if (accumulate)
        out[i] += v;
      else
        out[i] = v;
    }
  }
}

void jade_dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t seed,
                          uint64_t stream, uint64_t index0) {
  if (p <= 0.0f) {
    if (out != inp) memmove(out, inp, n * sizeof(float));
    return;
  }
  dropout_apply(out, inp, n, p, seed, stream, index0, 0);
}

void jade_dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t seed,
                           uint64_t stream, uint64_t index0) {
  if (p <= 0.0f) {
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i];
    return;
  }
  dropout_apply(dinp, dout, n, p, seed, stream, index0, 1);
}

/* ------------------------------------------------------------------ mean pool */
void jade_meanpool_forward(float *out, const float *inp, int B, int T, int K, int C) {
  for (int b = 0; b < B; b++) {
    float *o = out + (size_t)b * C;
    for (int c = 0; c < C; c++) o[c] = 0.0f;
    for (int k = 0; k < K; k++) {
      const float *x = inp + ((size_t)b * T + k) * C;
      for (int c = 0; c < C; c++) o[c] += x[c];
    }
    for (int c = 0; c < C; c++) o[c] /= (float)K;
  }
}

void jade_meanpool_backward(float *dinp, const float *dout, int B, int T, int K, int C) {
  for (int b = 0; b < B; b++)
    for (int k = 0; k < K; k++) {
      float *d = dinp + ((size_t)b * T + k) * C;
      const float *g = dout + (size_t)b * C;
      for (int c = 0; c < C; c++) d[c] += g[c] / (float)K;
    }
}

/* ------------------------------------------------------------------ embeddings */
void jade_timestep_embedding(float *out, const float *t, int B, int dim, float max_period) {
  // DiT TimestepEmbedder.timestep_embedding: [cos(t f), sin(t f)], f_j = max_period^(-j/half)
  int half = dim / 2;
  for (int b = 0; b < B; b++) {
    float *o = out + (size_t)b * dim;
    for (int j = 0; j < half; j++) {
      double f = exp(-log((double)max_period) * j / half);
      float arg = (float)((double)t[b] * (float)f);
      o[j] = cosf(arg);
      o[half + j] = sinf(arg);
    }
    if (dim % 2) o[dim - 1] = 0.0f;
  }
}

void jade_sincos_pos_embed_2d(float *out, int D, int gh, int gw) {
  // MAE get_2d_sincos_pos_embed: grid[0] = column index fills the first D/2 columns,
  // grid[1] = row index the last D/2; each 1-D part = [sin(pos w), cos(pos w)]
  int q = D / 4;
  for (int r = 0; r < gh; r++)
    for (int c = 0; c < gw; c++) {
      float *o = out + ((size_t)r * gw + c) * D;
      for (int k = 0; k < q; k++) {
        double w = 1.0 / pow(10000.0, (double)k / q);
        o[k] = (float)sin(c * w);
        o[q + k] = (float)cos(c * w);
        o[2 * q + k] = (float)sin(r * w);
        o[3 * q + k] = (float)cos(r * w);
      }
    }
}

/* ------------------------------------------------------------------ patches */
void jade_patchify(float *out, const float *img, int B, int C, int H, int W, int p) {
  // img (B,C,H,W) -> out (B, gh*gw, p*p*C), patch vector (py, px, c)
  int gh = H / p, gw = W / p, P = p * p * C;
#pragma omp parallel for schedule(static) if ((size_t)B * C * H * W > PAR_MIN)
  for (int bt = 0; bt < B * gh * gw; bt++) {
    int b = bt / (gh * gw), tok = bt % (gh * gw), i = tok / gw, j = tok % gw;
    float *o = out + (size_t)bt * P;
    for (int py = 0; py < p; py++)
      for (int px = 0; px < p; px++)
        for (int c = 0; c < C; c++)
          o[(py * p + px) * C + c] =
              img[(((size_t)b * C + c) * H + (size_t)i * p + py) * W + (size_t)j * p + px];
  }
}

void jade_unpatchify(float *img, const float *tok, int B, int C, int H, int W, int p) {
  int gh = H / p, gw = W / p, P = p * p * C;
#pragma omp parallel for schedule(static) if ((size_t)B * C * H * W > PAR_MIN)
  for (int bt = 0; bt < B * gh * gw; bt++) {
    int b = bt / (gh * gw), t = bt % (gh * gw), i = t / gw, j = t % gw;
    const float *o = tok + (size_t)bt * P;
    for (int py = 0; py < p; py++)
      for (int px = 0; px < p; px++)
        for (int c = 0; c < C; c++)
          img[(((size_t)b * C + c) * H + (size_t)i * p + py) * W + (size_t)j * p + px] =
              o[(py * p + px) * C + c];
  }
}

/* ------------------------------------------------------------------ RoPE */
void jade_rope_table(float *cos_t, float *sin_t, const float *rows, const float *cols,
                     const unsigned char *has_pos, int T, int hd, float theta) {
  // JADE MultiResolutionRoPE with dim = hd/2 per axis: f_m = theta^(-2m/(hd/2)), m < hd/4;
  // pairs [0, hd/4) use the row position, pairs [hd/4, hd/2) the column position.
  int npair = hd / 2, q = hd / 4;
  for (int t = 0; t < T; t++)
    for (int m = 0; m < npair; m++) {
      float *cs = cos_t + (size_t)t * npair + m, *sn = sin_t + (size_t)t * npair + m;
      if (has_pos && !has_pos[t]) {
        *cs = 1.0f;
        *sn = 0.0f;
        continue;
      }
      int k = m < q ? m : m - q;
      double f = pow((double)theta, -2.0 * k / (double)(hd / 2));
      double ang = (m < q ? rows[t] : cols[t]) * f;
      *cs = (float)cos(ang);
      *sn = (float)sin(ang);
    }
}

/* Rotate every pair (x[2m], x[2m+1]) by +angle (sign 1: forward) or -angle (sign -1: the
 * backward pass, the transpose of the rotation). */
static void rope_rotate(float *x, const float *cos_t, const float *sin_t, int B, int T, int H, int hd, int stride,
                        float sign) {
  int npair = hd / 2;
#pragma omp parallel for schedule(static) if ((size_t)B * T * H * hd > PAR_MIN)
  for (int bt = 0; bt < B * T; bt++) {
    int t = bt % T;
    const float *cs = cos_t + (size_t)t * npair, *sn = sin_t + (size_t)t * npair;
    for (int h = 0; h < H; h++) {
      float *v = x + (size_t)bt * stride + (size_t)h * hd;
      for (int m = 0; m < npair; m++) {
        float a = v[2 * m], b = v[2 * m + 1], s = sign * sn[m];
        v[2 * m] = a * cs[m] - b * s;
        v[2 * m + 1] = b * cs[m] + a * s;
      }
    }
  }
}

void jade_rope_forward(float *x, const float *cos_t, const float *sin_t, int B, int T, int H,
                       int hd, int stride) {
  rope_rotate(x, cos_t, sin_t, B, T, H, hd, stride, 1.0f);
}

void jade_rope_backward(float *dx, const float *cos_t, const float *sin_t, int B, int T, int H,
                        int hd, int stride) {
  rope_rotate(dx, cos_t, sin_t, B, T, H, hd, stride, -1.0f);
}
