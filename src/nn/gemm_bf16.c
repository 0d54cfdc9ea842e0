/* bf16 GEMM for CPUs with AVX512-BF16 (AMD Zen 4 and later, Intel Cooper Lake / Sapphire
 * Rapids): C (M,N) = alpha op(A) op(B) + beta C with both operands rounded to bfloat16
 * (round to nearest even) and every product summed in fp32 by VDPBF16PS (Intel SDM vol. 2C,
 * "VDPBF16PS": lane i += a[2i] b[2i] + a[2i+1] b[2i+1]).
 *
 * Layout (the BLIS/GotoBLAS scheme, reduced to the sizes of jade's layers, K <= a few
 * thousand): op(A) is packed into strips of MR = 12 rows, each a run of K/2 "pairs"
 * (a(r,2p), a(r,2p+1)) as one 32-bit word per row; op(B) into strips of NR = 32 columns, each
 * pair p 32 words (b(2p,j), b(2p+1,j)) for j in the strip (two zmm registers).
 * The 12 x 32 micro-kernel keeps 24 zmm accumulators, broadcasts one A word per row and
 * multiplies it with the two B registers. An odd K is padded with a zero pair. Threads take
 * row strips; the reduction runs in blocks of KC = 256 pairs (an A block stays in L1, the B
 * blocks of all column strips in L2).
 *
 * Determinism: every C element is the sum over k in a fixed order inside one micro-kernel
 * call, so the result does not depend on the thread count. Only this file is compiled with
 * AVX-512 code (per-function target attributes); callers check jade_cpu_has_avx512_bf16()
 * first (src/nn/matmul.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#include "nn_internal.h"

#define MR 12
#define NR 32
#define KC 256 /* pairs per reduction block */

/* fp32 -> bf16, round to nearest even (NaN kept quiet); the scalar reference of the tests
 * (the kernel rounds with VCVTNE(2)PS2BF16, which agrees except that it flushes denormals). */
static inline uint16_t bf16_round(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) return (uint16_t)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

float jade_bf16_round_float(float x) {
  uint32_t u = (uint32_t)bf16_round(x) << 16;
  float y;
  memcpy(&y, &u, 4);
  return y;
}

#if JADE_HAVE_BF16_KERNEL
#include <immintrin.h>

#define TGT __attribute__((target("avx512f,avx512bf16")))

/* t[q] = column q of the 16 x 16 matrix of 32-bit words whose rows are r[0..15] (unpack
 * 32-bit, unpack 64-bit within 128-bit lanes, then a 4 x 4 transpose of the lanes). */
TGT static inline void transpose16x16(const __m512i r[16], __m512i t[16]) {
  __m512i u[16];
  for (int G = 0; G < 4; G++) {
    const __m512i *x = r + 4 * G;
    __m512i a0 = _mm512_unpacklo_epi32(x[0], x[1]), a1 = _mm512_unpackhi_epi32(x[0], x[1]);
    __m512i a2 = _mm512_unpacklo_epi32(x[2], x[3]), a3 = _mm512_unpackhi_epi32(x[2], x[3]);
    u[4 * G + 0] = _mm512_unpacklo_epi64(a0, a2); /* per lane: column 0 of rows 4G..4G+3 */
    u[4 * G + 1] = _mm512_unpackhi_epi64(a0, a2);
    u[4 * G + 2] = _mm512_unpacklo_epi64(a1, a3);
    u[4 * G + 3] = _mm512_unpackhi_epi64(a1, a3);
  }
  for (int c = 0; c < 4; c++) {
    __m512i a = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44), b = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44);
    __m512i e = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xEE), f = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
    t[0 + c] = _mm512_shuffle_i32x4(a, b, 0x88);
    t[4 + c] = _mm512_shuffle_i32x4(a, b, 0xDD);
    t[8 + c] = _mm512_shuffle_i32x4(e, f, 0x88);
    t[12 + c] = _mm512_shuffle_i32x4(e, f, 0xDD);
  }
}

/* Packs op(A) (W = MR) or op(B) (W = NR) for the whole matrix: strip s, pair p, index j:
 * out[(s KP + p) W + j] = bf16(x(sW + j, 2p)) | bf16(x(sW + j, 2p + 1)) << 16, where x(i, k) is
 * the element with panel index i (row of op(A) / column of op(B)) and reduction index k:
 * X[i ld + k] when k is contiguous (kc), X[k ld + i] otherwise; zero for i >= NI or k >= K.
 * The loops run along contiguous memory either way. Rounding by VCVTNE(2)PS2BF16 (nearest
 * even; denormal inputs become zero). Call from inside a parallel region (omp for). */
TGT static void pack_matrix(uint32_t *out, int W, const float *X, int ld, int kc, int NI, int K, int KP) {
  int S = (NI + W - 1) / W;
  if (kc) {
    /* k contiguous: 32 floats of one source row give 16 consecutive pairs at once; 16 rows
     * of those (a 16 x 16 word tile) are transposed in registers and stored pair by pair */
#pragma omp for schedule(static)
    for (int s = 0; s < S; s++) {
      uint32_t *o = out + (size_t)s * KP * W;
      for (int g = 0; g < W; g += 16) {
        int ng = W - g < 16 ? W - g : 16;
        __mmask16 mg = (__mmask16)(ng == 16 ? 0xffff : (1u << ng) - 1u);
        for (int k = 0; k < K; k += 32) {
          int n = K - k < 32 ? K - k : 32;
          __mmask16 m0 = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1u);
          __mmask16 m1 = (__mmask16)(n <= 16 ? 0 : (n >= 32 ? 0xffff : (1u << (n - 16)) - 1u));
          __m512i r[16], t[16];
          for (int j = 0; j < 16; j++) {
            int i = s * W + g + j;
            if (j < ng && i < NI) {
              const float *row = X + (size_t)i * ld + k;
              __m512 lo = _mm512_maskz_loadu_ps(m0, row), hi = _mm512_maskz_loadu_ps(m1, row + 16);
              r[j] = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
            } else {
              r[j] = _mm512_setzero_si512();
            }
          }
          transpose16x16(r, t);
          int np = (n + 1) / 2;
          for (int q = 0; q < np; q++) _mm512_mask_storeu_epi32(o + (size_t)(k / 2 + q) * W + g, mg, t[q]);
        }
      }
    }
    return;
  }
  /* panel index contiguous: source rows k = 2p, 2p + 1 give 16 panel indices at once */
#pragma omp for schedule(static)
  for (int p = 0; p < KP; p++) {
    const float *r0 = X + (size_t)(2 * p) * ld;
    const float *r1 = 2 * p + 1 < K ? X + (size_t)(2 * p + 1) * ld : NULL;
    for (int s = 0; s < S; s++) {
      uint32_t *o = out + ((size_t)s * KP + p) * W;
      for (int jb = 0; jb < W; jb += 16) {
        int i0 = s * W + jb, n = NI - i0 < 16 ? NI - i0 : 16;
        int nw = W - jb < 16 ? W - jb : 16;
        __mmask16 m = (__mmask16)(n <= 0 ? 0 : n == 16 ? 0xffff : (1u << n) - 1u);
        __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, r0 + i0)));
        __m512i hi = r1 ? _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, r1 + i0)))
                        : _mm512_setzero_si512();
        _mm512_mask_storeu_epi32(o + jb, (__mmask16)(nw == 16 ? 0xffff : (1u << nw) - 1u),
                                 _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
      }
    }
  }
}

/* One 12 x 32 tile: acc = sum_p a-pair . b-pair, then C = alpha acc + beta C on the
 * mr x nr valid part, or (bias != NULL, then beta = 0) C = alpha acc + bias[j]: the same
 * rounding as beta = 1 over a C pre-filled with the bias rows, without that pass over C. */
TGT static void kernel_12x32(int KP, const uint32_t *a, const uint32_t *b, float *C, int ldc, int mr, int nr,
                             float alpha, float beta, const float *bias) {
  __m512 acc[MR][2];
#pragma GCC unroll 12
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int p = 0; p < KP; p++) {
    __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)(b + (size_t)p * NR));
    __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(b + (size_t)p * NR + 16));
    const uint32_t *ap = a + (size_t)p * MR;
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
      __m512bh ar = (__m512bh)_mm512_set1_epi32((int)ap[r]);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
    }
  }
  __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  if (mr == MR && nr == NR) {
    if (bias) {
      const __m512 bz0 = _mm512_loadu_ps(bias), bz1 = _mm512_loadu_ps(bias + 16);
#pragma GCC unroll 12
      for (int r = 0; r < MR; r++) {
        float *c = C + (size_t)r * ldc;
        _mm512_storeu_ps(c, _mm512_add_ps(_mm512_mul_ps(va, acc[r][0]), bz0));
        _mm512_storeu_ps(c + 16, _mm512_add_ps(_mm512_mul_ps(va, acc[r][1]), bz1));
      }
      return;
    }
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
      float *c = C + (size_t)r * ldc;
      for (int h = 0; h < 2; h++) {
        __m512 v = _mm512_mul_ps(va, acc[r][h]);
        if (beta != 0.0f) v = _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + 16 * h), v);
        _mm512_storeu_ps(c + 16 * h, v);
      }
    }
    return;
  }
  float tile[MR][NR];
  for (int r = 0; r < MR; r++) {
    _mm512_storeu_ps(tile[r], acc[r][0]);
    _mm512_storeu_ps(tile[r] + 16, acc[r][1]);
  }
  for (int r = 0; r < mr; r++)
    for (int j = 0; j < nr; j++) {
      float *c = C + (size_t)r * ldc + j;
      if (bias) *c = alpha * tile[r][j] + bias[j];
      else *c = beta != 0.0f ? alpha * tile[r][j] + beta * *c : alpha * tile[r][j];
    }
}

int jade_gemm_bf16_bias(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                        const float *B, int ldb, float beta, float *C, int ldc, const float *bias) {
  if (bias) beta = 0.0f;
  int KP = (K + 1) / 2;
  int SA = (M + MR - 1) / MR, SB = (N + NR - 1) / NR;
  size_t a_words = (size_t)SA * KP * MR, b_words = (size_t)SB * KP * NR;
  uint32_t *pa = aligned_alloc(64, ((a_words * 4 + 63) / 64) * 64);
  uint32_t *pb = aligned_alloc(64, ((b_words * 4 + 63) / 64) * 64);
  if (!pa || !pb) {
    free(pa);
    free(pb);
    return 0; /* caller falls back to fp32 */
  }
  int par = !omp_in_parallel();
  /* Pack, then one parallel loop over the tiles. No reduction over threads. */
#pragma omp parallel if (par)
  {
    pack_matrix(pa, MR, A, lda, !trans_a, M, K, KP);
    pack_matrix(pb, NR, B, ldb, trans_b, N, K, KP);
    /* Row strips over the threads; the reduction dimension in blocks of KC pairs so that an
     * A block (12 x KC) stays in L1 and the B blocks of all column strips (N x KC) in L2;
     * block kb > 0 adds to what block kb - 1 left in C (fixed order: deterministic). */
#pragma omp for schedule(static)
    for (int sa = 0; sa < SA; sa++) {
      int r0 = sa * MR, mr = M - r0 < MR ? M - r0 : MR;
      for (int kb = 0; kb < KP; kb += KC) {
        int kn = KP - kb < KC ? KP - kb : KC;
        for (int sb = 0; sb < SB; sb++) {
          int c0 = sb * NR, nr = N - c0 < NR ? N - c0 : NR;
          kernel_12x32(kn, pa + ((size_t)sa * KP + kb) * MR, pb + ((size_t)sb * KP + kb) * NR,
                       C + (size_t)r0 * ldc + c0, ldc, mr, nr, alpha, kb == 0 ? beta : 1.0f,
                       kb == 0 && bias ? bias + c0 : NULL);
        }
      }
    }
  }
  free(pa);
  free(pb);
  return 1;
}

int jade_gemm_bf16(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc) {
  return jade_gemm_bf16_bias(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);
}
#else
int jade_gemm_bf16_bias(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                        const float *B, int ldb, float beta, float *C, int ldc, const float *bias) {
  (void)trans_a; (void)trans_b; (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda;
  (void)B; (void)ldb; (void)beta; (void)C; (void)ldc; (void)bias;
  return 0;
}
int jade_gemm_bf16(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc) {
  (void)trans_a; (void)trans_b; (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda;
  (void)B; (void)ldb; (void)beta; (void)C; (void)ldc;
  return 0;
}
#endif
