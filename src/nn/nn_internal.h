/* Private helpers of the NN engine: a vectorisable expf and function multi-versioning for
 * the hot elementwise kernels (runtime dispatch by the loader's ifunc: AVX-512 / AVX2 /
 * portable baseline, same source). The AVX2 clone is "arch=x86-64-v3" (AVX2 + FMA, chosen by
 * feature); "arch=haswell" would dispatch on the CPU model and never run on AMD Zen. */
#ifndef JADE_NN_INTERNAL_H
#define JADE_NN_INTERNAL_H
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(JADE_NO_CLONES)
#define JADE_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define JADE_CLONES
#endif

/* e^x in float, branch-free so loops vectorise: x = n ln2 + r (Cody-Waite split of ln2,
 * round-to-nearest by the 1.5*2^23 trick), e^r by its degree-6 Taylor polynomial on
 * |r| <= ln2/2 (truncation < 1.3e-7 relative), 2^n by building the exponent bits.
 * Input clamped to [-87, 88]: below, the result is ~1.6e-38 instead of a denormal/0. */
static inline float jade_fexp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float shift = 12582912.0f; /* 1.5 * 2^23 */
  float n = (x * 1.44269504088896341f + shift) - shift;
  float r = x - n * 0.693145751953125f;
  r = r - n * 1.428606765330187e-06f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t e = ((int32_t)n + 127) << 23;
  float s;
  memcpy(&s, &e, sizeof s);
  return p * s;
}

static inline float jade_fsigmoid(float x) { return 1.0f / (1.0f + jade_fexp(-x)); }

/* The AVX512-BF16 GEMM (src/nn/gemm_bf16.c) is built on x86-64 with gcc >= 10 or clang >= 9
 * (the first with the VDPBF16PS intrinsics); elsewhere jade_gemm_bf16 returns 0. */
#if defined(__x86_64__) && ((defined(__clang__) && __clang_major__ >= 9) || \
                            (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 10))
#define JADE_HAVE_BF16_KERNEL 1
#else
#define JADE_HAVE_BF16_KERNEL 0
#endif

/* C = alpha op(A) op(B) + beta C with bf16-rounded operands and fp32 sums (same arguments
 * as jade_gemm). Returns 1 when done, 0 when it could not run (not built, no memory): the
 * caller then uses fp32. Only call when jade_cpu_has_avx512_bf16(). */
int jade_gemm_bf16(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc);
/* The same with a bias row added in the kernel's epilogue: C = alpha op(A) op(B) + bias[j]
 * (beta ignored), bitwise equal to beta = 1 over a C pre-filled with the bias rows. */
int jade_gemm_bf16_bias(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                        int lda, const float *B, int ldb, float beta, float *C, int ldc,
                        const float *bias);
/* x rounded to the nearest bfloat16 (ties to even), as a float. */
float jade_bf16_round_float(float x);

#endif
