/* bench_lensing: log-normal map simulation speed (5 bins, N = 32 and N = 128 at the paper's
 * 2.34 arcmin pixels), split into FFTs and the rest, beside this machine's raw FFTW speed for
 * the same transforms measured in the same run.
 *
 * The split: the simulator makes, per prepare, one c2r and one r2c N x N transform per bin
 * pair (15 pairs for 5 bins), and per draw one r2c and one c2r per bin. Their cost is the raw
 * FFTW time of those transforms (FFTW_ESTIMATE plans, as the simulator uses) times their
 * number; the white-noise generation (Philox + Box-Muller) is timed alone; the rest (C_ell
 * interpolation, logs, Jacobi eigen-decompositions, colouring, exp) is the remainder.
 *
 * Usage: bench_lensing [seconds per measurement, default 0.5] */
#include "jade/cosmo.h"
#include "jade/lensing.h"

#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#define NB 5
#define NP 15
#define N_ELL 128

static double ell_tab[N_ELL], cl_tab[N_ELL * NP];
/* The sbi_lens fiducial shifts (tests/data/reference/lognormal_shift, correct trilinear). */
static const double lambda[NB] = {0.005266, 0.015240, 0.028718, 0.049651, 0.097525};

static void make_table(void) {
  const double amp[NB] = {0.08, 0.3, 0.6, 0.9, 1.2};
  for (int k = 0; k < N_ELL; k++) {
    double l = 10.0 * pow(2000.0, (double)k / (N_ELL - 1));
    double x = l / 1000.0, base = 2e-9 * pow(x, -0.8) / (1.0 + pow(x, 1.5));
    ell_tab[k] = l;
    for (int i = 0; i < NB; i++)
      for (int j = i; j < NB; j++)
        cl_tab[k * NP + jade_pair_index(NB, i, j)] = pow(0.9, j - i) * sqrt(amp[i] * amp[j]) * base;
  }
}

/* Repeat fn until `budget` seconds have passed; seconds per call. */
#define TIME_LOOP(budget, per_call, body)                    \
  do {                                                       \
    long reps_ = 0;                                          \
    double t0_ = jade_time_now(), t_;                        \
    do {                                                     \
      body;                                                  \
      reps_++;                                               \
    } while ((t_ = jade_time_now() - t0_) < (budget));      \
    per_call = t_ / reps_;                                   \
  } while (0)

static void raw_fft(int n, unsigned flags, double budget, double *t_r2c, double *t_c2r) {
  double *r = fftw_malloc(sizeof(double) * n * n);
  fftw_complex *c = fftw_malloc(sizeof(fftw_complex) * n * (n / 2 + 1));
  fftw_plan f, b;
#pragma omp critical(jade_fftw_plan)
  {
    f = fftw_plan_dft_r2c_2d(n, n, r, c, flags);
    b = fftw_plan_dft_c2r_2d(n, n, c, r, flags);
  }
  for (int i = 0; i < n * n; i++) r[i] = sin(0.1 * i);
  TIME_LOOP(budget, *t_r2c, fftw_execute(f));
  TIME_LOOP(budget, *t_c2r, fftw_execute(b));
#pragma omp critical(jade_fftw_plan)
  {
    fftw_destroy_plan(f);
    fftw_destroy_plan(b);
  }
  fftw_free(r);
  fftw_free(c);
}

int main(int argc, char **argv) {
  double budget = argc > 1 ? atof(argv[1]) : 0.5;
  if (!(budget > 0)) budget = 0.5;
  make_table();
  printf("bench_lensing: %d bins, %d pairs, pixel 2.34 arcmin, %d OpenMP threads available\n", NB, NP,
         omp_get_max_threads());
  const int sizes[2] = {32, 128};
  for (int s = 0; s < 2; s++) {
    int n = sizes[s];
    double npix = (double)n * n;
    jade_map_geometry g = {n, n * 2.34375 / 60.0, NB};
    jade_lognormal *ln;
    if (jade_lognormal_create(&g, JADE_LN_VARIANCE_EMPIRICAL, &ln) ||
        jade_lognormal_prepare(ln, N_ELL, ell_tab, cl_tab, lambda)) {
      fprintf(stderr, "bench_lensing: %s\n", jade_last_error());
      return 1;
    }
    float *kappa = malloc(sizeof(float) * n * n * NB);
    double *noise = malloc(sizeof(double) * n * n * NB);
    double t_prep, t_draw, t_rng, e_r2c, e_c2r, m_r2c, m_c2r;
    TIME_LOOP(budget, t_prep, jade_lognormal_prepare(ln, N_ELL, ell_tab, cl_tab, lambda));
    uint64_t idx = 0;
    TIME_LOOP(budget, t_draw, jade_lognormal_draw(ln, 1, idx++, kappa));
    TIME_LOOP(budget, t_rng, jade_rng_normal_fill(1, idx++, 0, (size_t)n * n * NB, noise));
    raw_fft(n, FFTW_ESTIMATE, budget, &e_r2c, &e_c2r);
    raw_fft(n, FFTW_MEASURE, budget, &m_r2c, &m_c2r);
    /* 2.5 N^2 log2(N^2) flops for a real 2-D transform of N^2 points (FFTW's convention). */
    double flops = 2.5 * npix * log2(npix);
    double fft_prep = NP * (e_r2c + e_c2r), fft_draw = NB * (e_r2c + e_c2r);
    printf("\nN = %d (%.2f deg), clipped fraction of tr P_G %.1e\n", n, g.size_deg,
           jade_lognormal_clipped_fraction(ln));
    printf("  raw FFTW %dx%d: r2c %.1f us (%.2f GFLOP/s), c2r %.1f us (%.2f GFLOP/s) [ESTIMATE]; "
           "MEASURE plans: r2c %.1f us, c2r %.1f us\n",
           n, n, e_r2c * 1e6, flops / e_r2c * 1e-9, e_c2r * 1e6, flops / e_c2r * 1e-9, m_r2c * 1e6, m_c2r * 1e6);
    printf("  prepare: %8.3f ms = FFT %.3f ms (%2.0f%%) + rest %.3f ms (C_ell, logs, %d eigen-decompositions)\n",
           t_prep * 1e3, fft_prep * 1e3, 100 * fft_prep / t_prep, (t_prep - fft_prep) * 1e3,
           (n / 2 + 1) * (n / 2 + 2) / 2);
    printf("  draw:    %8.3f ms = FFT %.3f ms (%2.0f%%) + white noise %.3f ms (%2.0f%%) + rest %.3f ms (colour, exp)\n",
           t_draw * 1e3, fft_draw * 1e3, 100 * fft_draw / t_draw, t_rng * 1e3, 100 * t_rng / t_draw,
           (t_draw - fft_draw - t_rng) * 1e3);
    printf("  one thread: %.1f draws/s (new cosmology each draw: prepare + draw), %.1f draws/s (same cosmology)\n",
           1.0 / (t_prep + t_draw), 1.0 / t_draw);
    /* All threads, one plan each, new cosmology per map (the dataset generator's pattern). */
    int nt = omp_get_max_threads();
    long done = 0;
    double t0 = jade_time_now();
#pragma omp parallel reduction(+ : done)
    {
      jade_lognormal *mine = NULL;
      float *k = malloc(sizeof(float) * n * n * NB);
      if (!jade_lognormal_create(&g, JADE_LN_VARIANCE_EMPIRICAL, &mine)) {
        while (jade_time_now() - t0 < 2 * budget) {
          if (jade_lognormal_prepare(mine, N_ELL, ell_tab, cl_tab, lambda) ||
              jade_lognormal_draw(mine, 2, (uint64_t)omp_get_thread_num() << 32 | (uint64_t)done, k))
            break;
          done++;
        }
      }
      jade_lognormal_free(mine);
      free(k);
    }
    double el = jade_time_now() - t0;
    printf("  %d threads: %.1f draws/s (prepare + draw)\n", nt, done / el);
    free(kappa);
    free(noise);
    jade_lognormal_free(ln);
  }
  return 0;
}
