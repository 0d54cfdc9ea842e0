/* Multi-head self-attention core with QK-norm, 2-D RoPE, fp32 softmax and attention-weight
 * dropout (JiT/JADE Attention; nn.h documents the layout). Parallel over (batch, head); the
 * small per-head matmuls run single-threaded inside the parallel region.
 *
 * Scratch layout: per thread [Q | K | V (T*hd each) | P | P' (T*T each)], then a shared
 * (B*H, 2*hd) block of per-task QK-norm weight-gradient partials (summed in task order). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "jade/nn.h"
#include "nn/nn_internal.h"

static size_t per_thread(const jade_attention_shape *s) {
  return (size_t)3 * s->T * s->hd + (size_t)2 * s->T * s->T + 16;
}

size_t jade_attention_scratch_floats(const jade_attention_shape *s, int threads) {
  if (threads < 1) threads = 1;
  return per_thread(s) * (size_t)threads + (size_t)s->B * s->H * 2 * s->hd;
}

static inline void philox_block(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]) {
  uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                     (uint32_t)(stream >> 32)};
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  jade_philox4x32(ctr, key, out);
}

/* P' = mask(P)/(1-p) for the n = T*T weights of one head starting at global index g0
 * (same rule as jade_dropout_forward). */
static void drop_weights(float *out, const float *inp, size_t n, float p, uint64_t seed,
                         uint64_t stream, uint64_t g0) {
  double thd = (double)p * 4294967296.0;
  uint32_t th = thd >= 4294967295.0 ? 0xFFFFFFFFu : (uint32_t)thd;
  float scale = 1.0f / (1.0f - p);
  size_t i = 0;
  while (i < n) {
    uint64_t g = g0 + i;
    uint32_t r[4];
    philox_block(seed, stream, g >> 2, r);
    for (int w = (int)(g & 3); w < 4 && i < n; w++, i++)
      out[i] = r[w] >= th ? inp[i] * scale : 0.0f;
  }
}

/* QK-norm + RoPE of one head vector: y = R (x r w), returns r. */
static JADE_CLONES float norm_rope(float *restrict y, const float *restrict x,
                                   const float *restrict w, const float *restrict cs,
                                   const float *restrict sn, int hd, float eps) {
  float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
  for (int d = 0; d < hd; d++) ss += x[d] * x[d];
  float r = 1.0f / sqrtf(ss / hd + eps);
#pragma omp simd
  for (int d = 0; d < hd; d++) y[d] = x[d] * r * w[d];
  if (cs) {
#pragma omp simd
    for (int m = 0; m < hd / 2; m++) {
      float a = y[2 * m], b = y[2 * m + 1];
      y[2 * m] = a * cs[m] - b * sn[m];
      y[2 * m + 1] = b * cs[m] + a * sn[m];
    }
  }
  return r;
}

/* Row softmax in fp32 (max subtracted). */
static JADE_CLONES void softmax_rows(float *S, int T) {
  for (int i = 0; i < T; i++) {
    float *restrict row = S + (size_t)i * T;
    float mx = row[0];
#pragma omp simd reduction(max : mx)
    for (int j = 1; j < T; j++) mx = row[j] > mx ? row[j] : mx;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < T; j++) {
      row[j] = jade_fexp(row[j] - mx);
      sum += row[j];
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int j = 0; j < T; j++) row[j] *= inv;
  }
}

/* Softmax backward in place: dS = P (dP - sum_j P dP) * scale. */
static JADE_CLONES void softmax_back_rows(float *dP, const float *P, int T, float scale) {
  for (int i = 0; i < T; i++) {
    const float *restrict pr = P + (size_t)i * T;
    float *restrict dr = dP + (size_t)i * T;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j < T; j++) dot += pr[j] * dr[j];
#pragma omp simd
    for (int j = 0; j < T; j++) dr[j] = pr[j] * (dr[j] - dot) * scale;
  }
}

jade_status jade_attention_forward(float *out, float *qr, float *kr, float *vr, float *rstd_q,
                                   float *rstd_k, float *att, const float *qkv,
                                   const float *qn_w, const float *kn_w, float *scratch,
                                   const jade_attention_shape *s) {
  const int B = s->B, T = s->T, H = s->H, hd = s->hd, D = H * hd, npair = hd / 2;
  const float scale = 1.0f / sqrtf((float)hd);
  const int no_save = !(qr && kr && vr && att);
  const int drop = s->dropout > 0.0f;
  float *own = NULL;
  if (!scratch) {
    own = jade_alloc(jade_attention_scratch_floats(s, omp_get_max_threads()) * sizeof(float));
    if (!own) return jade_error(JADE_ERR_NOMEM, "attention forward: out of memory");
    scratch = own;
  }
  const size_t pt = per_thread(s);
#pragma omp parallel
  {
    float *buf = scratch + pt * (size_t)omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
    for (int bh = 0; bh < B * H; bh++) {
      int b = bh / H, h = bh % H;
      float *Q, *K, *V, *P;
      if (no_save) {
        Q = buf;
        K = Q + (size_t)T * hd;
        V = K + (size_t)T * hd;
        P = V + (size_t)T * hd;
      } else {
        Q = qr + (size_t)bh * T * hd;
        K = kr + (size_t)bh * T * hd;
        V = vr + (size_t)bh * T * hd;
        P = att + (size_t)bh * T * T;
      }
      float *Pd = drop ? buf + (size_t)3 * T * hd + (size_t)T * T : P;
      for (int t = 0; t < T; t++) {
        const float *row = qkv + ((size_t)b * T + t) * 3 * D + (size_t)h * hd;
        const float *cs = s->rope_cos ? s->rope_cos + (size_t)t * npair : NULL;
        const float *sn = s->rope_sin ? s->rope_sin + (size_t)t * npair : NULL;
        float rq = norm_rope(Q + (size_t)t * hd, row, qn_w, cs, sn, hd, s->eps);
        float rk = norm_rope(K + (size_t)t * hd, row + D, kn_w, cs, sn, hd, s->eps);
        if (rstd_q) rstd_q[((size_t)b * T + t) * H + h] = rq;
        if (rstd_k) rstd_k[((size_t)b * T + t) * H + h] = rk;
        memcpy(V + (size_t)t * hd, row + 2 * D, sizeof(float) * hd);
      }
      // S (T,T) = Q K^T / sqrt(hd); P = softmax(S)
      jade_gemm(0, 1, T, T, hd, scale, Q, hd, K, hd, 0.0f, P, T);
      softmax_rows(P, T);
      if (drop)
        drop_weights(Pd, P, (size_t)T * T, s->dropout, s->seed, s->stream,
                     s->index0 + (uint64_t)bh * T * T);
      // out[b, :, h] (T,hd) = P' V, rows at stride D
      jade_gemm(0, 0, T, hd, T, 1.0f, Pd, T, V, hd, 0.0f, out + (size_t)b * T * D + (size_t)h * hd, D);
    }
  }
  free(own);
  return JADE_OK;
}

/* Backward of y = R(x r w) for one head vector given dy (modified in place: rotated back).
 * Accumulates dx and the per-task weight gradient dw. */
static JADE_CLONES void norm_rope_backward(float *restrict dx, float *restrict dw,
                                           float *restrict dy, const float *restrict x,
                                           const float *restrict w, float r,
                                           const float *restrict cs, const float *restrict sn,
                                           int hd) {
  if (cs) {
#pragma omp simd
    for (int m = 0; m < hd / 2; m++) {
      float a = dy[2 * m], b = dy[2 * m + 1];
      dy[2 * m] = a * cs[m] + b * sn[m];
      dy[2 * m + 1] = b * cs[m] - a * sn[m];
    }
  }
  // n = x r w: dx = r (w dy) - r^3/hd x sum(w dy x); dw += dy x r
  float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
  for (int d = 0; d < hd; d++) dot += w[d] * dy[d] * x[d];
  float k = r * r * r * dot / hd;
#pragma omp simd
  for (int d = 0; d < hd; d++) {
    dx[d] += r * w[d] * dy[d] - k * x[d];
    dw[d] += dy[d] * x[d] * r;
  }
}

jade_status jade_attention_backward(float *dqkv, float *dqn_w, float *dkn_w, const float *dout,
                                    const float *qkv, const float *qr, const float *kr,
                                    const float *vr, const float *rstd_q, const float *rstd_k,
                                    const float *att, const float *qn_w, const float *kn_w,
                                    float *scratch, const jade_attention_shape *s) {
  const int B = s->B, T = s->T, H = s->H, hd = s->hd, D = H * hd, npair = hd / 2;
  const float scale = 1.0f / sqrtf((float)hd);
  const int drop = s->dropout > 0.0f;
  const float keep_inv = drop ? 1.0f / (1.0f - s->dropout) : 1.0f;
  float *own = NULL;
  const int nthr = omp_get_max_threads();
  if (!scratch) {
    own = jade_alloc(jade_attention_scratch_floats(s, nthr) * sizeof(float));
    if (!own) return jade_error(JADE_ERR_NOMEM, "attention backward: out of memory");
    scratch = own;
  }
  const size_t pt = per_thread(s);
  float *wpart = scratch + pt * (size_t)nthr;  // (B*H, 2 hd) per-task norm-weight gradients
#pragma omp parallel
  {
    float *buf = scratch + pt * (size_t)omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
    for (int bh = 0; bh < B * H; bh++) {
      int b = bh / H, h = bh % H;
      const float *Q = qr + (size_t)bh * T * hd, *K = kr + (size_t)bh * T * hd;
      const float *V = vr + (size_t)bh * T * hd, *P = att + (size_t)bh * T * T;
      float *dQ = buf, *dK = dQ + (size_t)T * hd;
      float *dP = dK + (size_t)T * hd, *Pd = dP + (size_t)T * T;
      const float *dO = dout + (size_t)b * T * D + (size_t)h * hd;   // rows at stride D
      float *dqkv_b = dqkv + (size_t)b * T * 3 * D + (size_t)h * hd;  // rows at stride 3D
      const float *Pu = P;
      if (drop) {
        drop_weights(Pd, P, (size_t)T * T, s->dropout, s->seed, s->stream,
                     s->index0 + (uint64_t)bh * T * T);
        Pu = Pd;
      }
      // dV (T,hd) += P'^T dO
      jade_gemm(1, 0, T, hd, T, 1.0f, Pu, T, dO, D, 1.0f, dqkv_b + 2 * D, 3 * D);
      // dP' (T,T) = dO V^T
      jade_gemm(0, 1, T, T, hd, 1.0f, dO, D, V, hd, 0.0f, dP, T);
      if (drop) {
        // dP = dP' mask/(1-p); where P > 0, kept <=> P' != 0 (where P == 0, dS = 0 anyway)
        for (size_t i = 0; i < (size_t)T * T; i++) dP[i] = Pd[i] != 0.0f ? dP[i] * keep_inv : 0.0f;
      }
      softmax_back_rows(dP, P, T, scale);
      // dQ = dS K, dK = dS^T Q
      jade_gemm(0, 0, T, hd, T, 1.0f, dP, T, K, hd, 0.0f, dQ, hd);
      jade_gemm(1, 0, T, hd, T, 1.0f, dP, T, Q, hd, 0.0f, dK, hd);
      float *dwq = wpart + (size_t)bh * 2 * hd, *dwk = dwq + hd;
      memset(dwq, 0, sizeof(float) * 2 * hd);
      for (int t = 0; t < T; t++) {
        const float *row = qkv + ((size_t)b * T + t) * 3 * D + (size_t)h * hd;
        float *drow = dqkv_b + (size_t)t * 3 * D;
        const float *cs = s->rope_cos ? s->rope_cos + (size_t)t * npair : NULL;
        const float *sn = s->rope_sin ? s->rope_sin + (size_t)t * npair : NULL;
        norm_rope_backward(drow, dwq, dQ + (size_t)t * hd, row, qn_w,
                           rstd_q[((size_t)b * T + t) * H + h], cs, sn, hd);
        norm_rope_backward(drow + D, dwk, dK + (size_t)t * hd, row + D, kn_w,
                           rstd_k[((size_t)b * T + t) * H + h], cs, sn, hd);
      }
    }
  }
  for (int bh = 0; bh < B * H; bh++) {
    const float *p = wpart + (size_t)bh * 2 * hd;
    for (int d = 0; d < hd; d++) {
      if (dqn_w) dqn_w[d] += p[d];
      if (dkn_w) dkn_w[d] += p[hd + d];
    }
  }
  free(own);
  return JADE_OK;
}
