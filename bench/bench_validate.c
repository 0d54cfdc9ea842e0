/* bench_validate: time of MIRA, TARP (each alone and both in one sweep) and the per-parameter
 * coverage (7 columns) for
 *   the small preset's size:  T = 200 truths, S = 200 draws, q = 5126 (5 x 32 x 32 + 6),
 *   the paper's q = 81926 (5 x 128 x 128 + 6) with T and S scaled down (default 40 x 40; the
 *   paper's 500 x 500 is 156x more work, i.e. time x 156 at the same speed),
 * beside one plain read of the draws (sum of all floats) measured in the same run, which is
 * the memory-bandwidth floor of any one-sweep metric.
 *
 * The draws are synthetic (a cheap hash, roughly Gaussian): the metrics' cost does not depend
 * on the values. Usage: bench_validate [T S q] (one custom size instead of the two defaults). */
#include "jade/core.h"
#include "jade/validate.h"

#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* splitmix64 -> sum of two uniforms, centred: cheap values with some spread. */
static inline float hash_value(uint64_t i) {
  uint64_t z = i + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  double a = (double)(z >> 40) / 16777216.0, b = (double)(z & 0xFFFFFF) / 16777216.0;
  return (float)(a + b - 1.0);
}

static void fill(float *x, size_t n, uint64_t salt) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) x[i] = hash_value(salt * 0x100000000ull + i);
}

static double read_sweep(const float *x, size_t n) {
  double total = 0;
#pragma omp parallel for simd schedule(static) reduction(+ : total)
  for (size_t i = 0; i < n; i++) total += x[i];
  return total;
}

static void run(size_t T, size_t S, size_t q) {
  size_t n = T * S * q;
  printf("T=%zu S=%zu q=%zu: draws %.2f GB float32, %d threads\n", T, S, q, n * 4.0 / 1e9,
         omp_get_max_threads());
  float *truths = malloc(T * q * sizeof *truths), *draws = malloc(n * sizeof *draws);
  if (!truths || !draws) {
    printf("  out of memory\n");
    free(truths);
    free(draws);
    return;
  }
  fill(truths, T * q, 1);
  fill(draws, n, 2);
  double t0 = jade_time_now();
  volatile double sink = read_sweep(draws, n);
  double t_read = jade_time_now() - t0;
  (void)sink;
  printf("  plain read of the draws       %8.3f s  (%.1f GB/s)\n", t_read, n * 4.0 / 1e9 / t_read);

  jade_mira_opts mo;
  jade_tarp_opts to;
  jade_mira_opts_default(&mo);
  jade_tarp_opts_default(&to);
  jade_mira_result mr;
  jade_tarp_result tr;
  jade_coverage_result cr;

  t0 = jade_time_now();
  if (jade_mira(truths, draws, T, S, q, &mo, &mr)) printf("  MIRA failed: %s\n", jade_last_error());
  double t_mira = jade_time_now() - t0;
  printf("  MIRA (no rescaling, 100 boot) %8.3f s  (%.2f ns per element, score %.3f)\n", t_mira,
         t_mira / n * 1e9, mr.score);
  jade_mira_result_free(&mr);

  t0 = jade_time_now();
  if (jade_tarp(truths, draws, T, S, q, &to, &tr)) printf("  TARP failed: %s\n", jade_last_error());
  double t_tarp = jade_time_now() - t0;
  printf("  TARP (truth box, 100 boot)    %8.3f s  (%.2f ns per element, max dev %.3f)\n", t_tarp,
         t_tarp / n * 1e9, tr.max_dev);
  jade_tarp_result_free(&tr);

  t0 = jade_time_now();
  if (jade_mira_tarp(truths, draws, T, S, q, &mo, &to, &mr, &tr))
    printf("  MIRA+TARP failed: %s\n", jade_last_error());
  double t_both = jade_time_now() - t0;
  printf("  MIRA+TARP in one sweep        %8.3f s  (separately %.3f s)\n", t_both, t_mira + t_tarp);
  jade_mira_result_free(&mr);
  jade_tarp_result_free(&tr);

  size_t dims[7];
  for (int k = 0; k < 7; k++) dims[k] = q - 7 + (size_t)k;
  t0 = jade_time_now();
  if (jade_coverage(truths, draws, T, S, q, dims, 7, 0, &cr))
    printf("  coverage failed: %s\n", jade_last_error());
  printf("  coverage of 7 columns         %8.3f s\n", jade_time_now() - t0);
  jade_coverage_result_free(&cr);
  free(truths);
  free(draws);
}

int main(int argc, char **argv) {
  if (argc == 4) {
    run((size_t)atol(argv[1]), (size_t)atol(argv[2]), (size_t)atol(argv[3]));
    return 0;
  }
  run(200, 200, 5126);
  run(40, 40, 81926);
  return 0;
}
