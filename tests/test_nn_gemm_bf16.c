/* The bf16 matmul backend (src/nn/gemm_bf16.c) against an independent reference.
 *
 * A product of two bf16 numbers (8-bit significands) is exact in fp32, so with both operands
 * rounded to bf16 first, the kernel's only error is the fp32 summation: |C - ref| <=
 * 2 K u sum_k |a||b| (u = 2^-24; the factor 2 covers alpha/beta). The reference is that sum in
 * double over the same rounded operands (rounding by jade's scalar bf16 helper, checked here
 * against exact cases). A kernel that skipped the rounding (fp32 products) would miss the
 * bound by ~2^-8 / (2 K 2^-24), i.e. by 100x or more for these K, and any packing/transpose/
 * edge error by far more. Also: every transpose combination, edges (M, N not multiples of the 12 x 32
 * tile, odd K, K over the 512-element reduction block), alpha/beta, the jade_gemm dispatch, bitwise independence of the thread
 * count, and the error against fp32 at the level bf16 predicts (what users get: an rms
 * error of ~2^-8 relative to the rms of C, bf16's unit roundoff). Skipped (exit 77) on CPUs
 * without AVX512-BF16. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "jade/core.h"
#include "jade/nn.h"
#include "nn/nn_internal.h"
#include "test_util.h"

static uint64_t g_stream = 1;
static float *rnd(size_t n) {
  float *x = jade_alloc(n * sizeof(float));
  jade_rng_normal_fill_f(77, JADE_STREAM(JADE_RNG_TEST, g_stream++), 0, n, x);
  return x;
}

static void check_rounding(void) {
  /* exact cases: 1 + 2^-8 is a tie between 1 and 1 + 2^-7 -> even (1); 1 + 3 2^-8 -> 1 + 2^-6 */
  CHECK(jade_bf16_round_float(1.0f + 0x1p-8f) == 1.0f, "tie not to even");
  CHECK(jade_bf16_round_float(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f, "tie not to even (odd)");
  CHECK(jade_bf16_round_float(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f, "above tie not rounded up");
  CHECK(jade_bf16_round_float(-3.0f) == -3.0f, "exact value changed");
  CHECK(isnan(jade_bf16_round_float(NAN)), "NaN lost");
  CHECK(isinf(jade_bf16_round_float(INFINITY)), "Inf lost");
}

/* One product: compare with the double reference on rounded operands. Returns the max
 * error relative to the bound. */
static double check_case(int ta, int tb, int M, int N, int K, float alpha, float beta) {
  int lda = ta ? M + 3 : K + 5, ldb = tb ? K + 1 : N + 2, ldc = N + 7;
  size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
  float *A = rnd(na), *B = rnd(nb), *C0 = rnd(nc), *C = jade_alloc(nc * sizeof(float));
  memcpy(C, C0, nc * sizeof(float));
  CHECK(jade_gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 1, "kernel did not run");
  double worst = 0.0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0.0, sa = 0.0;
      for (int k = 0; k < K; k++) {
        double a = jade_bf16_round_float(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
        double b = jade_bf16_round_float(tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
        s += a * b;
        sa += fabs(a * b);
      }
      double ref = alpha * s + beta * (double)C0[(size_t)i * ldc + j];
      double bound = 2.0 * (K + 2) * 0x1p-24 * (fabs(alpha) * sa + fabs(beta * C0[(size_t)i * ldc + j])) + 1e-30;
      double e = fabs(C[(size_t)i * ldc + j] - ref) / bound;
      jade_test_max_err(&worst, e);
    }
  /* padding columns of C untouched */
  for (int i = 0; i < M; i++)
    for (int j = N; j < ldc; j++) CHECK(C[(size_t)i * ldc + j] == C0[(size_t)i * ldc + j], "wrote outside C");
  free(A); free(B); free(C0); free(C);
  return worst;
}

static void check_threads_and_dispatch(void) {
  int M = 200, N = 150, K = 97;
  float *A = rnd((size_t)M * K), *B = rnd((size_t)N * K);
  float *c1 = jade_calloc((size_t)M * N, sizeof(float)), *c2 = jade_calloc((size_t)M * N, sizeof(float));
  float *cf = jade_calloc((size_t)M * N, sizeof(float));
  int nt0 = omp_get_max_threads();
  omp_set_num_threads(1);
  jade_gemm_bf16(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, c1, N);
  omp_set_num_threads(nt0 > 1 ? nt0 : 2);
  jade_gemm_bf16(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, c2, N);
  omp_set_num_threads(nt0);
  CHECK(memcmp(c1, c2, sizeof(float) * M * N) == 0, "bf16 result depends on the thread count");
  /* jade_gemm dispatch: bf16 backend gives the kernel's bytes (size above the cut-over) */
  CHECK_OK(jade_matmul_set_backend(JADE_MATMUL_BF16));
  CHECK(jade_matmul_get_backend() == JADE_MATMUL_BF16, "backend not set");
  jade_gemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, c2, N);
  CHECK(memcmp(c1, c2, sizeof(float) * M * N) == 0, "jade_gemm(bf16) differs from the kernel");
  CHECK_OK(jade_matmul_set_backend(JADE_MATMUL_F32));
  jade_gemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, cf, N);
  /* bf16 vs fp32: each operand carries a relative error up to u = 2^-8 (7 stored significand
   * bits), independent over the K terms -> rms error / rms(C) ~ u sqrt(2/3) E[1/m] ~ 0.6 u;
   * check the level both ways (a kernel without rounding would give ~1e-7) */
  double se = 0.0, sc = 0.0;
  for (int i = 0; i < M * N; i++) {
    se += (double)(c1[i] - cf[i]) * (c1[i] - cf[i]);
    sc += (double)cf[i] * cf[i];
  }
  double rel = sqrt(se / sc);
  printf("bf16 vs fp32: rms relative error %.3g (bf16 unit roundoff 2^-8 = %.3g)\n", rel, 0x1p-8);
  CHECK(jade_test_gt_ok(rel, 0x1p-8 / 10) && jade_test_lt_ok(rel, 0x1p-8), "bf16 vs fp32 error %.3g outside the bf16 range", rel);
  free(A); free(B); free(c1); free(c2); free(cf);
}

/* The bias epilogue (jade_linear_forward's bf16 path) must give the bytes of beta = 1 over C
 * pre-filled with the bias rows: full and ragged tiles, K inside and over one reduction block
 * (the bias enters once, in the first block). */
static void check_bias_epilogue(void) {
  static const int shapes[][3] = {{37, 70, 96}, {24, 64, 1201}, {200, 150, 97}};
  for (int s = 0; s < 3; s++) {
    int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
    float *A = rnd((size_t)M * K), *B = rnd((size_t)N * K), *bias = rnd((size_t)N);
    float *c1 = jade_alloc(sizeof(float) * M * N), *c2 = jade_alloc(sizeof(float) * M * N);
    for (int i = 0; i < M; i++) memcpy(c1 + (size_t)i * N, bias, sizeof(float) * N);
    jade_gemm_bf16(0, 1, M, N, K, 1.0f, A, K, B, K, 1.0f, c1, N);
    for (int i = 0; i < M * N; i++) c2[i] = NAN;  /* must be overwritten, never read */
    CHECK(jade_gemm_bf16_bias(0, 1, M, N, K, 1.0f, A, K, B, K, 1.0f, c2, N, bias) == 1, "bias kernel did not run");
    CHECK(memcmp(c1, c2, sizeof(float) * M * N) == 0, "bias epilogue differs from beta = 1 over the bias (%d x %d x %d)", M, N, K);
    /* and through jade_linear_forward with the bf16 backend */
    CHECK_OK(jade_matmul_set_backend(JADE_MATMUL_BF16));
    if ((double)M * N * K >= 1048576.0) {
      jade_linear_forward(c2, A, B, bias, M, K, N);
      CHECK(memcmp(c1, c2, sizeof(float) * M * N) == 0, "linear forward (bf16) differs from the kernel");
    }
    CHECK_OK(jade_matmul_set_backend(JADE_MATMUL_F32));
    free(A); free(B); free(bias); free(c1); free(c2);
  }
}

int main(void) {
  check_rounding();
  if (!JADE_HAVE_BF16_KERNEL || !jade_cpu_has_avx512_bf16()) {
    printf("no AVX512-BF16 on this CPU (or kernel not built): bf16 matmul tests skipped\n");
    CHECK(jade_matmul_set_backend(JADE_MATMUL_BF16) != JADE_OK, "bf16 accepted without the instructions");
    CHECK_OK(jade_matmul_set_backend(JADE_MATMUL_AUTO));
    CHECK(jade_matmul_get_backend() == JADE_MATMUL_F32, "auto did not fall back to fp32");
    return jade_test_failures ? 1 : 77;
  }
  static const int shapes[][3] = {{1, 1, 1}, {12, 32, 2}, {13, 33, 7}, {25, 70, 64}, {64, 96, 191}, {37, 5, 300}, {30, 70, 1201}};
  double worst = 0.0;
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        double e1 = check_case(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 1.0f, 0.0f);
        double e2 = check_case(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], -0.7f, 1.3f);
        if (e1 > 1.0 || e2 > 1.0)
          fprintf(stderr, "shape %d x %d x %d trans %d%d: error/bound %.3g %.3g\n", shapes[s][0], shapes[s][1],
                  shapes[s][2], ta, tb, e1, e2);
        CHECK(jade_test_le_ok(e1, 1.0) && jade_test_le_ok(e2, 1.0), "bf16 gemm outside the fp32-summation bound");
        jade_test_max_err(&worst, jade_test_max(e1, e2));
      }
  printf("bf16 gemm: worst error / summation bound = %.3g over %zu shapes x 4 transposes x 2 alpha/beta\n", worst,
         sizeof shapes / sizeof shapes[0]);
  check_threads_and_dispatch();
  check_bias_epilogue();
  CHECK_OK(jade_matmul_set_backend(JADE_MATMUL_AUTO));
  CHECK(jade_matmul_get_backend() == JADE_MATMUL_BF16, "auto did not pick bf16 on a bf16 CPU");
  CHECK_OK(jade_matmul_set_backend(JADE_MATMUL_F32));
  return jade_test_failures ? 1 : 0;
}
