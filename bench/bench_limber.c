/* Timing of the per-simulation cosmology work: jade_cosmo_create, the 15-pair Limber C_ell
 * (64 ell as the simulator asks for a 5 deg / 128 pixel map, and 100 ell in [10, 1e4]) and the
 * log-normal shifts, on the LSST-Y10 survey with z_max = 10: thread CPU time with 1 thread
 * (independent of other load on the machine), then wall time with 1 and 2 threads.
 * Usage: bench_limber [repeats]  (median over repeats, default 30). */
#include "jade/cosmo.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* CPU seconds of the calling thread: with one thread, a load-independent timing */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *t, int n) {
  qsort(t, (size_t)n, sizeof(double), cmp);
  return t[n / 2];
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 30;
  if (reps < 1) reps = 1;
  jade_survey_params sp = {.n_bins = 5, .z_max = 10.0, .smail_alpha = 2.0, .smail_beta = 0.68, .smail_z0 = 0.11,
                           .sigma_z = 0.05, .n_gal = 27.0, .sigma_e = 0.26};
  jade_survey *s = NULL;
  if (jade_survey_create(&sp, &s)) {
    fprintf(stderr, "%s\n", jade_last_error());
    return 1;
  }
  /* the simulator's ell table for N = 128, 5 deg (src/lensing/simulate.c) */
  double L = 5.0 * M_PI / 180.0, lo = M_PI / L, hi = 1.05 * sqrt(2.0) * M_PI * 128 / L;
  double ell64[64], ell100[100], cl[100 * 15], lam[5];
  for (int i = 0; i < 64; i++) ell64[i] = lo * pow(hi / lo, i / 63.0);
  for (int i = 0; i < 100; i++) ell100[i] = pow(10.0, 1.0 + 3.0 * i / 99.0);
  double *tc = malloc(sizeof(double) * reps), *t64 = malloc(sizeof(double) * reps),
         *t100 = malloc(sizeof(double) * reps), *tsh = malloc(sizeof(double) * reps);
  printf("bench_limber: LSST-Y10 survey (5 bins, z_max 10), %d repeats, medians; (cpu) = thread CPU time\n", reps);
  printf("threads  create[ms]  C_ell 64 ell[ms]  C_ell 100 ell[ms]  shift[ms]  total per simulation[ms]\n");
  for (int pass = 0; pass < 3; pass++) {
    int nt = pass == 2 ? 2 : 1, cpu = pass == 0;
    double (*now)(void) = cpu ? cpu_now : jade_time_now;
    omp_set_num_threads(nt);
    for (int r = 0; r < reps; r++) {
      jade_cosmo_params p = jade_cosmo_params_fiducial();
      p.sigma_8 += 1e-3 * r; /* a new cosmology every time */
      jade_cosmo *c = NULL;
      double t0 = now();
      if (jade_cosmo_create(&p, &c)) {
        fprintf(stderr, "%s\n", jade_last_error());
        return 1;
      }
      double t1 = now();
      if (jade_cosmo_limber_cl(c, s, 64, ell64, JADE_CL_CONVERGENCE, 1, cl)) return 1;
      double t2 = now();
      if (jade_cosmo_limber_cl(c, s, 100, ell100, JADE_CL_SHEAR, 1, cl)) return 1;
      double t3 = now();
      if (jade_cosmo_lognormal_shift(c, s, 5.0 * 60.0 / 128.0 / sqrt(M_PI), lam)) {
        fprintf(stderr, "%s\n", jade_last_error());
        return 1;
      }
      double t4 = now();
      tc[r] = t1 - t0, t64[r] = t2 - t1, t100[r] = t3 - t2, tsh[r] = t4 - t3;
      jade_cosmo_free(c);
    }
    double mc = median(tc, reps), m64 = median(t64, reps), m100 = median(t100, reps), msh = median(tsh, reps);
    printf("%s%2d  %10.2f  %16.2f  %17.2f  %9.2f  %24.2f\n", cpu ? "(cpu) " : "(wall)", nt, 1e3 * mc, 1e3 * m64, 1e3 * m100, 1e3 * msh,
           1e3 * (mc + m64 + msh));
    (void)0;
  }
  printf("lambda (fiducial + last offset) = %.5f %.5f %.5f %.5f %.5f\n", lam[0], lam[1], lam[2], lam[3], lam[4]);
  free(tc), free(t64), free(t100), free(tsh);
  jade_survey_free(s);
  return 0;
}
