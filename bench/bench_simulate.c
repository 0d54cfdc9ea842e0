/* Simulation throughput of both presets on one core: simulations per second, the share of
 * time in the cosmology (background, growth, halofit, Limber C_ell, lambda) versus the maps
 * (log-normal transform, per-mode colouring and the FFTs), and the machine's own FFTW
 * throughput for the FFT sizes one simulation needs, measured in the same run.
 * usage: bench_simulate [n_sims_small] [n_sims_paper] */
#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "jade/config.h"
#include "jade/sim.h"

/* Seconds per complex-to-real + real-to-complex pair of an n x n double FFT. */
static double fft_pair_seconds(int n) {
  double *r = fftw_alloc_real((size_t)n * n);
  fftw_complex *c = fftw_alloc_complex((size_t)n * (n / 2 + 1));
  fftw_plan f = fftw_plan_dft_r2c_2d(n, n, r, c, FFTW_ESTIMATE);
  fftw_plan b = fftw_plan_dft_c2r_2d(n, n, c, r, FFTW_ESTIMATE);
  for (int i = 0; i < n * n; i++) r[i] = sin(0.1 * i);
  int reps = n <= 64 ? 4000 : 400;
  double t0 = jade_time_now();
  for (int i = 0; i < reps; i++) {
    fftw_execute(f);
    fftw_execute(b);
  }
  double dt = (jade_time_now() - t0) / reps;
  fftw_destroy_plan(f);
  fftw_destroy_plan(b);
  fftw_free(r);
  fftw_free(c);
  return dt;
}

static int run(const char *preset, int n_sims) {
  jade_config *cfg;
  jade_sim_config sc;
  jade_simulator *sim;
  if (jade_config_create(&cfg) || jade_config_load_preset(cfg, preset) || jade_sim_config_read(cfg, &sc) ||
      jade_simulator_create(&sc, &sim)) {
    fprintf(stderr, "bench_simulate: %s\n", jade_last_error());
    return 1;
  }
  int nb = sc.geom.n_bins, n = sc.geom.n_pix;
  float *kappa = malloc(sizeof(float) * nb * n * n);
  double tc = 0, tm = 0, t0 = jade_time_now();
  for (int i = 0; i < n_sims; i++) {
    double theta[JADE_N_THETA];
    jade_prior_draw(&sc, 1, (uint64_t)i, theta);
    if (jade_simulator_run(sim, theta, 1, (uint64_t)i, kappa, NULL, &tc, &tm)) {
      fprintf(stderr, "bench_simulate: %s\n", jade_last_error());
      return 1;
    }
  }
  double total = jade_time_now() - t0;
  /* FFTs per simulation: 2 per bin pair to turn C_ell into the Gaussian power (xi and back),
   * 1 forward per bin for the white noise and 1 inverse per bin for the coloured field. */
  int npairs = nb * (nb + 1) / 2;
  double fft = fft_pair_seconds(n);
  double fft_per_sim = fft * (npairs + nb);
  printf("%-6s %4dx%-4d %d bins: %.1f sims/s/core (%.2f ms each): cosmology %.0f%%, maps %.0f%%;"
         " FFT floor %.3f ms/sim (%d FFT pairs at %.1f us) = %.0f%% of a simulation\n",
         preset, n, n, nb, n_sims / total, 1e3 * total / n_sims, 100 * tc / total, 100 * tm / total,
         1e3 * fft_per_sim, npairs + nb, 1e6 * fft, 100 * fft_per_sim * n_sims / total);
  free(kappa);
  jade_simulator_free(sim);
  jade_config_free(cfg);
  return 0;
}

int main(int argc, char **argv) {
  omp_set_num_threads(1);
  int ns = argc > 1 ? atoi(argv[1]) : 100, np = argc > 2 ? atoi(argv[2]) : 20;
  return run("small", ns) || run("paper", np);
}
