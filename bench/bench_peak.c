/* The CPU's arithmetic peak, measured: register-only loops of independent fp32 FMAs
 * (VFMADD on zmm with AVX-512, on ymm with AVX2 + FMA) and of bf16 dot products
 * (VDPBF16PS on zmm, AVX512-BF16), on 1 thread and on all OpenMP threads. Nothing touches
 * memory inside the loop, so this is the ceiling any kernel of jade (or PyTorch) can reach
 * on this machine; bench/compare.sh divides the achieved GFLOP/s by it.
 *
 * FLOPs per instruction: VFMADD ps zmm = 16 lanes x 2 = 32; ymm = 16; VDPBF16PS zmm = 16
 * lanes x 2 pairs x (multiply + add) = 64 (Intel SDM vol. 2C, VDPBF16PS). 24 independent
 * accumulators cover latency x throughput of every current x86 core (e.g. 4 x 2 for FMA).
 * Usage: bench_peak [--seconds S] [--clock wall|cpu]   (S per measurement, default 0.25; best
 * of 3; --clock cpu: process CPU time / threads, for machines shared with other jobs)
 * Prints a human line per kernel and one "RESULT" line with key=value pairs (GFLOP/s). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jade/core.h"
#include "jade/nn.h"

#define NACC 24

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_X86 1

__attribute__((target("avx512f"))) static float loop_fma512(long iters) {
  __m512 acc[NACC];
#pragma GCC unroll 24
  for (int r = 0; r < NACC; r++) acc[r] = _mm512_set1_ps(1e-3f * (float)r);
  const __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (long i = 0; i < iters; i++) {
#pragma GCC unroll 24
    for (int r = 0; r < NACC; r++) acc[r] = _mm512_fmadd_ps(acc[r], b, c);
  }
  __m512 s = acc[0];
  for (int r = 1; r < NACC; r++) s = _mm512_add_ps(s, acc[r]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float loop_fma256(long iters) {
  __m256 acc[12];
  for (int r = 0; r < 12; r++) acc[r] = _mm256_set1_ps(1e-3f * (float)r);
  const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (long i = 0; i < 2 * iters; i++) {  /* 12 of 16 registers: 2 x 12 = 24 per "iteration" */
#pragma GCC unroll 12
    for (int r = 0; r < 12; r++) acc[r] = _mm256_fmadd_ps(acc[r], b, c);
  }
  __m256 s = acc[0];
  for (int r = 1; r < 12; r++) s = _mm256_add_ps(s, acc[r]);
  float o[8];
  _mm256_storeu_ps(o, s);
  return o[0] + o[1] + o[2] + o[3] + o[4] + o[5] + o[6] + o[7];
}

#if (defined(__clang__) && __clang_major__ >= 9) || (!defined(__clang__) && __GNUC__ >= 10)
#define HAVE_BF16_LOOP 1
__attribute__((target("avx512f,avx512bf16"))) static float loop_dpbf16(long iters) {
  __m512 acc[NACC];
#pragma GCC unroll 24
  for (int r = 0; r < NACC; r++) acc[r] = _mm512_set1_ps(1e-3f * (float)r);
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-4f), _mm512_set1_ps(-1e-4f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
  for (long i = 0; i < iters; i++) {
#pragma GCC unroll 24
    for (int r = 0; r < NACC; r++) acc[r] = _mm512_dpbf16_ps(acc[r], a, b);
  }
  __m512 s = acc[0];
  for (int r = 1; r < NACC; r++) s = _mm512_add_ps(s, acc[r]);
  return _mm512_reduce_add_ps(s);
}
#else
#define HAVE_BF16_LOOP 0
#endif
#else
#define HAVE_X86 0
#define HAVE_BF16_LOOP 0
#endif

typedef float (*loop_fn)(long);
/* Wall time, or (--clock cpu) process CPU time / threads (see bench_nn.c). */
static int g_cpu_clock = 0;
static double now(int threads) {
  if (!g_cpu_clock) return jade_time_now();
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ((double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec) / threads;
}
static volatile float g_sink;

/* GFLOP/s of `fn` on `threads` threads: best of 3 runs of `iters` iterations per thread. */
static double measure(loop_fn fn, long iters, double flops_per_iter, int threads) {
  double best = 1e30;
  for (int rep = 0; rep < 3; rep++) {
    double t0 = now(threads);
#pragma omp parallel num_threads(threads)
    {
      float v = fn(iters);
#pragma omp atomic
      g_sink += v;
    }
    double dt = now(threads) - t0;
    if (dt < best) best = dt;
  }
  return flops_per_iter * (double)iters * threads / best / 1e9;
}

/* Iterations for about `secs` seconds on one thread. */
static long calibrate(loop_fn fn, double secs) {
  long it = 1 << 16;
  for (;;) {
    double t0 = now(1);
    g_sink += fn(it);
    double dt = now(1) - t0;
    if (dt > 0.02 || it > (1L << 40)) return (long)((double)it * secs / (dt > 1e-9 ? dt : 1e-9)) + 1;
    it *= 4;
  }
}

int main(int argc, char **argv) {
  double secs = 0.25;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--seconds") && i + 1 < argc) secs = atof(argv[++i]);
    else if (!strcmp(argv[i], "--clock") && i + 1 < argc) g_cpu_clock = !strcmp(argv[++i], "cpu");
    else {
      fprintf(stderr, "usage: bench_peak [--seconds S] [--clock wall|cpu]\n");
      return 2;
    }
  }
  int nt = omp_get_max_threads();
  double fp32_1 = 0, fp32_n = 0, bf16_1 = 0, bf16_n = 0;
  const char *fp32_kind = "none";
#if HAVE_X86
  __builtin_cpu_init();
  if (jade_cpu_has_avx512f()) {
    long it = calibrate(loop_fma512, secs);
    fp32_1 = measure(loop_fma512, it, NACC * 32.0, 1);
    fp32_n = measure(loop_fma512, it, NACC * 32.0, nt);
    fp32_kind = "avx512 vfmadd zmm";
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    long it = calibrate(loop_fma256, secs);
    fp32_1 = measure(loop_fma256, it, 24 * 16.0, 1);
    fp32_n = measure(loop_fma256, it, 24 * 16.0, nt);
    fp32_kind = "avx2 vfmadd ymm";
  }
#if HAVE_BF16_LOOP
  if (jade_cpu_has_avx512_bf16()) {
    long it = calibrate(loop_dpbf16, secs);
    bf16_1 = measure(loop_dpbf16, it, NACC * 64.0, 1);
    bf16_n = measure(loop_dpbf16, it, NACC * 64.0, nt);
  }
#endif
#endif
  printf("peak fp32 (%s): %.1f GFLOP/s on 1 thread, %.1f on %d threads\n", fp32_kind, fp32_1, fp32_n, nt);
  if (bf16_n > 0)
    printf("peak bf16 (avx512-bf16 vdpbf16ps zmm): %.1f GFLOP/s on 1 thread, %.1f on %d threads\n",
           bf16_1, bf16_n, nt);
  else
    printf("peak bf16: no AVX512-BF16 on this CPU\n");
  printf("RESULT peak_fp32_1=%.1f peak_fp32=%.1f peak_bf16_1=%.1f peak_bf16=%.1f threads=%d\n", fp32_1,
         fp32_n, bf16_1, bf16_n, nt);
  return 0;
}
