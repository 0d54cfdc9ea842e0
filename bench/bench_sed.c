/* Speed of the pop-cosmos SED fit pieces, in CPU-core-seconds (run with OMP_NUM_THREADS=1 for
 * per-core figures): photometry emulators per point, the diffusion prior's PF-ODE log-density
 * per point (exact trace vs Hutchinson, DOPRI5 at 1e-5), and a full ensemble chain per galaxy
 * (walkers x (burn + steps) posterior evaluations) under the box prior, the diffusion prior and
 * its surrogate (`jade sed distil-prior`), with float32 emulators, and the box prior again with
 * float64 emulators; the emulators' float32 paths against OpenBLAS's sgemm on the same shapes.
 *   bench_sed MODELS_DIR [PRIOR.safetensors|-] [n_gal] [steps] [burn] [SURROGATE.safetensors]
 * Prints one line per measurement; ratios are from the same run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "jade/sed.h"

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void unit_seed(void *ctx, int b, size_t i0, size_t m, const double *mag_b, double *dmag) {
  (void)ctx;
  (void)b;
  (void)i0;
  (void)mag_b;
  for (size_t i = 0; i < m; i++) dmag[i] = 1.0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_sed MODELS_DIR [PRIOR.safetensors|-] [n_gal] [steps] [burn] [SURROGATE.safetensors]\n");
    return 2;
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/photulator_cosmos26.safetensors", argv[1]);
  jade_sed_photulator *p;
  if (jade_sed_photulator_load(path, NULL, 0, &p)) {
    fprintf(stderr, "%s\n", jade_last_error());
    return 1;
  }
  jade_sed_score *prior = NULL;
  if (argc > 2 && strcmp(argv[2], "-") && jade_sed_score_load(argv[2], &prior)) {
    fprintf(stderr, "%s\n", jade_last_error());
    return 1;
  }
  jade_sed_surrogate *sur = NULL;
  if (argc > 6 && jade_sed_surrogate_load(argv[6], &sur)) {
    fprintf(stderr, "%s\n", jade_last_error());
    return 1;
  }
  int n_gal = argc > 3 ? atoi(argv[3]) : 4;
  long steps = argc > 4 ? atol(argv[4]) : 200, burn = argc > 5 ? atol(argv[5]) : 100;
  enum { NP = 1024 };
  double *th = malloc(NP * 16 * sizeof(double)), *mag = malloc(NP * 26 * sizeof(double));
  jade_sed_population_draw(p, 3, NP, 24, 26.0, th, NULL);
  double c0 = cpu_now();
  int reps = 5;
  for (int r = 0; r < reps; r++) jade_sed_photulator_mags(p, th, NP, mag, NULL);
  double t_phot = (cpu_now() - c0) / (reps * NP);
  printf("photometry (26 emulators, float64): %.3g core-s per point\n", t_phot);
  /* the float32 paths, and the machine's own sgemm on the same shapes (128 x 128 hidden layers,
   * 4 per band, batches of 128 points) as the yardstick of this CPU's float32 rate */
  double flop_pt = 0;
  {
    const int dims[6] = {15, 128, 128, 128, 128, 1};
    for (int l = 0; l < 5; l++) flop_pt += 2.0 * dims[l] * dims[l + 1];
    flop_pt *= 26;
  }
  double t32_best = NAN;
  const jade_sed_emu_precision precs[3] = {JADE_SED_EMU_F32, JADE_SED_EMU_F32_AVX2, JADE_SED_EMU_F32_PORTABLE};
  for (int pi = 0; pi < 3; pi++) {
    jade_sed_emu_precision prec = precs[pi];
    c0 = cpu_now();
    for (int r = 0; r < reps * 4; r++) jade_sed_photulator_mags_prec(p, prec, th, NP, mag, NULL);
    double t32 = (cpu_now() - c0) / (reps * 4 * NP);
    printf("photometry (26 emulators, %s): %.3g core-s per point (%.1fx float64; %.1f GFLOP/s)\n",
           jade_sed_emu_precision_name(prec), t32, t_phot / t32, flop_pt / t32 * 1e-9);
    if (pi == 0) t32_best = t32;
  }
  {
    /* the float32 vector-Jacobian product (forward keeping activations + reverse pass, all bands)
     * per point, as the HMC gradient uses it, against the float64 single-point Jacobian */
    double *g = malloc(NP * 16 * sizeof(double)), jac[26 * 16];
    for (int pi = 1; pi < 3; pi++) {
      c0 = cpu_now();
      for (int r = 0; r < reps; r++) jade_sed_photulator_vjp_prec(p, precs[pi], th, NP, unit_seed, NULL, NULL, g);
      printf("gradient (26 emulators), %s: %.3g core-s per point\n", jade_sed_emu_precision_name(precs[pi]),
             (cpu_now() - c0) / (reps * NP));
    }
    c0 = cpu_now();
    for (int r = 0; r < reps; r++) jade_sed_photulator_vjp(p, th, NP, unit_seed, NULL, NULL, g);
    double t_vjp = (cpu_now() - c0) / (reps * NP);
    c0 = cpu_now();
    for (int i = 0; i < 50; i++) jade_sed_photulator_jacobian(p, th + i * 16, mag, jac);
    double t_jac = (cpu_now() - c0) / 50;
    printf("gradient (26 emulators): float32 batched vector-Jacobian product %.3g core-s per point (%.1fx the float32 "
           "forward); float64 single-point Jacobian %.3g\n",
           t_vjp, t_vjp / t32_best, t_jac);
    free(g);
  }
  {
    enum { M = 128, K = 128, N = 128 };
    float *A = malloc(M * K * sizeof(float)), *B = malloc(K * N * sizeof(float)), *C = malloc(M * N * sizeof(float));
    for (int i = 0; i < M * K; i++) A[i] = (float)((i * 37 % 101) - 50) / 50.0f;
    for (int i = 0; i < K * N; i++) B[i] = (float)((i * 53 % 97) - 48) / 48.0f;
    int nrep = 20000;
    c0 = cpu_now();
    for (int r = 0; r < nrep; r++)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    double t = (cpu_now() - c0) / nrep;
    printf("OpenBLAS sgemm 128 x 128 x 128 (this CPU's float32 yardstick; OPENBLAS_CORETYPE=%s): %.1f GFLOP/s\n",
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)", 2.0 * M * N * K / t * 1e-9);
    free(A);
    free(B);
    free(C);
  }
  double t_exact = NAN, t_hutch = NAN;
  if (prior) {
    jade_sed_prior pr;
    jade_sed_prior_default(&pr);
    pr.kind = JADE_SED_PRIOR_DIFFUSION;
    pr.score = prior;
    double *phi = malloc(64 * 16 * sizeof(double)), lp[64];
    for (int i = 0; i < 64; i++) jade_sed_theta_to_phi(th + i * 16, phi + i * 16);
    c0 = cpu_now();
    jade_sed_prior_logp(&pr, 64, phi, lp);
    t_exact = (cpu_now() - c0) / 64;
    pr.ode.trace = JADE_TRACE_HUTCHINSON;
    c0 = cpu_now();
    jade_sed_prior_logp(&pr, 64, phi, lp);
    t_hutch = (cpu_now() - c0) / 64;
    printf("diffusion prior log p (PF-ODE, DOPRI5 1e-5): exact trace %.3g core-s per point, Hutchinson %.3g "
           "(%.1fx); exact / photometry = %.0fx\n",
           t_exact, t_hutch, t_exact / t_hutch, t_exact / t_phot);
    free(phi);
  }
  if (sur) {
    double *phi = malloc(NP * 16 * sizeof(double)), *lp = malloc(NP * sizeof(double));
    for (int i = 0; i < NP; i++) jade_sed_theta_to_phi(th + i * 16, phi + i * 16);
    c0 = cpu_now();
    for (int r = 0; r < reps; r++) jade_sed_surrogate_logp(sur, NP, phi, lp);
    double t_sur = (cpu_now() - c0) / (reps * NP);
    printf("surrogate prior log q: %.3g core-s per point (%.0fx faster than the exact PF-ODE; %.2f of the photometry)\n",
           t_sur, t_exact / t_sur, t_sur / t_phot);
    free(phi);
    free(lp);
  }
  /* full chains on mock galaxies drawn from jade's population */
  snprintf(path, sizeof path, "%s/noise_model.safetensors", argv[1]);
  jade_sed_score *nm;
  if (jade_sed_noise_model_load(path, &nm)) {
    fprintf(stderr, "%s\n", jade_last_error());
    return 1;
  }
  jade_sed_data_model dm;
  jade_sed_data_model_default(&dm, 26);
  jade_pfode_options ode;
  jade_pfode_options_default(&ode);
  double *fo = malloc(n_gal * 26 * sizeof(double)), *sg = malloc(n_gal * 26 * sizeof(double));
  jade_sed_mock_photometry(p, nm, &dm, &ode, 5, 0, (size_t)n_gal, th, NULL, fo, sg);
  static const char *const kind[3] = {"box", "diffusion", "surrogate"};
  /* k = 0..2 with the float32 emulators (the default); k = 3: box prior with float64 emulators;
   * k = 4: box prior, HMC (4 chains, 8 leapfrog steps, float32 gradients) */
  for (int k = 0; k < 5; k++) {
    if ((k == 1 && !prior) || (k == 2 && !sur)) continue;
    jade_sed_prior pr;
    jade_sed_prior_default(&pr);
    pr.N_lo = 0;
    pr.N_hi = 40;
    if (k == 1) {
      pr.kind = JADE_SED_PRIOR_DIFFUSION;
      pr.score = prior;
    } else if (k == 2) {
      pr.kind = JADE_SED_PRIOR_SURROGATE;
      pr.surrogate = sur;
    }
    jade_sed_posterior post = {.phot = p, .prior = &pr, .dm = dm, .n_gal = (size_t)n_gal, .flux = fo, .sigma = sg};
    jade_sed_fit_options fo2;
    jade_sed_fit_options_default(&fo2);
    fo2.ens.n_steps = steps;
    fo2.ens.n_burn = burn;
    fo2.ens.burn_tau = 0; /* a fixed burn-in: the printed iteration counts are the ones run */
    fo2.n_opt = 100;
    fo2.block = (size_t)n_gal;
    if (k == 3) fo2.emulators = JADE_SED_EMU_F64;
    if (k == 4) {
      fo2.sampler = JADE_SED_SAMPLER_HMC;
      fo2.ens.n_walkers = 4;
      fo2.hmc_leapfrog = 8;
    }
    jade_sed_summary *S = calloc((size_t)n_gal, sizeof *S);
    double tp, tl;
    c0 = cpu_now();
    if (jade_sed_fit(&post, NULL, &fo2, S, NULL, &tp, &tl)) {
      fprintf(stderr, "%s\n", jade_last_error());
      return 1;
    }
    double c = (cpu_now() - c0) / n_gal, tau = 0;
    for (int g = 0; g < n_gal; g++)
      for (int j = 0; j < 16; j++) tau = fmax(tau, S[g].tau[j]);
    printf("%s prior, %s emulators, %s: full chain (%d %s x %ld steps + %ld burn-in, %d starts) %.3g core-s per "
           "galaxy; prior share %.0f%%; max tau %.0f steps\n",
           kind[k >= 3 ? 0 : k], jade_sed_emu_precision_name(fo2.emulators), k == 4 ? "HMC (8 leapfrog)" : "ensemble",
           fo2.ens.n_walkers, k == 4 ? "chains" : "walkers", steps, burn, fo2.n_starts, c, 100 * tp / (tp + tl), tau);
    free(S);
  }
  jade_sed_photulator_free(p);
  jade_sed_score_free(prior);
  jade_sed_surrogate_free(sur);
  jade_sed_score_free(nm);
  free(th);
  free(mag);
  free(fo);
  free(sg);
  return 0;
}
