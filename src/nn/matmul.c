/* The one matmul interface of jade (see include/jade/nn.h). Every linear layer goes through
 * jade_gemm: fp32 OpenBLAS (portable) or, chosen at run time from the CPU's features, the
 * AVX512-BF16 kernel of gemm_bf16.c; an AMX / oneDNN backend would slot in the same way. */
#include <cblas.h>
#include <stdlib.h>
#include <cpuid.h>
#include <omp.h>
#include <string.h>

#include "jade/nn.h"
#include "nn_internal.h"

static jade_matmul_backend g_backend = JADE_MATMUL_F32;

/* Runtime CPU features. AVX-512 ones through __builtin_cpu_supports (libgcc checks both
 * cpuid and the OS-enabled register state); AMX-BF16 (not known to gcc 12's builtin)
 * from cpuid leaf 7 subleaf 0, EDX bit 22 (Intel SDM vol. 2A, CPUID). A bf16 backend would
 * additionally need the AMX tile state enabled by arch_prctl(ARCH_REQ_XCOMP_PERM). */
static int cpuid7(unsigned sub, unsigned *a, unsigned *b, unsigned *c, unsigned *d) {
  unsigned max = __get_cpuid_max(0, NULL);
  if (max < 7) return 0;
  __cpuid_count(7, sub, *a, *b, *c, *d);
  return 1;
}

int jade_cpu_has_avx512f(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") != 0;
}

int jade_cpu_has_avx2_fma(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

int jade_cpu_has_avx512_bf16(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16") != 0;
}

int jade_cpu_has_amx_bf16(void) {
  unsigned a, b, c, d;
  if (!cpuid7(0, &a, &b, &c, &d)) return 0;
  return (d >> 22) & 1u;
}

const char *jade_matmul_backend_name(jade_matmul_backend b) {
  switch (b) {
    case JADE_MATMUL_AUTO: return "auto";
    case JADE_MATMUL_F32: return "f32-cblas";
    case JADE_MATMUL_BF16: return "bf16";
  }
  return "unknown";
}

jade_status jade_matmul_set_backend(jade_matmul_backend b) {
  switch (b) {
    case JADE_MATMUL_AUTO:
      g_backend = JADE_HAVE_BF16_KERNEL && jade_cpu_has_avx512_bf16() ? JADE_MATMUL_BF16 : JADE_MATMUL_F32;
      return JADE_OK;
    case JADE_MATMUL_F32:
      g_backend = JADE_MATMUL_F32;
      return JADE_OK;
    case JADE_MATMUL_BF16:
      if (!JADE_HAVE_BF16_KERNEL)
        return jade_error(JADE_ERR_INVALID, "matmul backend bf16: not built into this jade (needs x86-64 and gcc >= 10 or clang >= 9)");
      if (!jade_cpu_has_avx512_bf16())
        return jade_error(JADE_ERR_INVALID, "matmul backend bf16: this CPU lacks AVX512-BF16");
      g_backend = JADE_MATMUL_BF16;
      return JADE_OK;
  }
  return jade_error(JADE_ERR_INVALID, "matmul backend %d: unknown", (int)b);
}

jade_matmul_backend jade_matmul_get_backend(void) { return g_backend; }

/* bf16 for products of 2^20 multiply-adds or more; below, packing would cost more than the
 * faster kernel saves (e.g. per-head attention products of models with few tokens). */
static int use_bf16(int M, int N, int K) {
  return g_backend == JADE_MATMUL_BF16 && (double)M * N * K >= 1048576.0;
}

void jade_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
               int lda, const float *B, int ldb, float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    /* C = beta C */
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
    return;
  }
  if (use_bf16(M, N, K) && jade_gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
    return;
  /* OpenBLAS (OpenMP build) runs single-threaded when called inside a parallel region. */
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* Fixed chunking: the row range is cut into chunks whose size depends only on N, partial
 * sums per chunk are formed in parallel and added in chunk order. */
#define COLSUM_MAX_CHUNKS 32
void jade_colsum_accumulate(float *dst, const float *src, int N, int C) {
  if (N <= 0 || C <= 0) return;
  int nchunk = N < 64 ? 1 : (N / 32 < COLSUM_MAX_CHUNKS ? N / 32 : COLSUM_MAX_CHUNKS);
  if ((size_t)N * C < 16384) nchunk = 1;
  if (nchunk == 1) {
    for (int n = 0; n < N; n++) {
      const float *r = src + (size_t)n * C;
      for (int c = 0; c < C; c++) dst[c] += r[c];
    }
    return;
  }
  float *part = jade_alloc(sizeof(float) * (size_t)nchunk * C);
  if (!part) { /* fall back to the serial order-equivalent sum */
    for (int n = 0; n < N; n++) {
      const float *r = src + (size_t)n * C;
      for (int c = 0; c < C; c++) dst[c] += r[c];
    }
    return;
  }
#pragma omp parallel for schedule(static)
  for (int k = 0; k < nchunk; k++) {
    int n0 = (int)((long)N * k / nchunk), n1 = (int)((long)N * (k + 1) / nchunk);
    float *p = part + (size_t)k * C;
    memset(p, 0, sizeof(float) * C);
    for (int n = n0; n < n1; n++) {
      const float *r = src + (size_t)n * C;
#pragma omp simd
      for (int c = 0; c < C; c++) p[c] += r[c];
    }
  }
  for (int k = 0; k < nchunk; k++)
    for (int c = 0; c < C; c++) dst[c] += part[(size_t)k * C + c];
  free(part);
}

void jade_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, int OC) {
  // inp (N,C), weight (OC,C), out (N,OC) = inp weight^T (+ bias)
  if (bias) {
    /* bf16: the bias is added in the kernel's epilogue (same bits as below, one pass less
     * over the output) */
    if (use_bf16(N, OC, C) && jade_gemm_bf16_bias(0, 1, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC, bias))
      return;
#pragma omp parallel for schedule(static) if ((size_t)N * OC > 65536)
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, sizeof(float) * OC);
    jade_gemm(0, 1, N, OC, C, 1.0f, inp, C, weight, C, 1.0f, out, OC);
  } else {
    jade_gemm(0, 1, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC);
  }
}

void jade_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int N, int C, int OC) {
  // dinp (N,C) += dout (N,OC) weight (OC,C)
  if (dinp) jade_gemm(0, 0, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
  // dweight (OC,C) += dout^T (OC,N) inp (N,C)
  if (dweight) jade_gemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
  if (dbias) jade_colsum_accumulate(dbias, dout, N, OC);
}
