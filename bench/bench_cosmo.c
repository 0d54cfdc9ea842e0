/* Cost of the cosmology core on one thread: jade_cosmo_create (background + growth ODE +
 * transfer table + sigma_8 + halofit tables) for each transfer function and for a w0-wa
 * cosmology, and the per-call cost of the evaluation functions a Limber integral uses.
 * Each figure is the fastest of 5 batches, in CPU time of the calling thread (the machine is
 * shared: CPU time and the fastest batch are the least disturbed by other jobs).
 * usage: bench_cosmo [n_create]   (default 300) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "jade/cosmo.h"

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static volatile double sink;

static double bench_create(const jade_cosmo_params *p, int n) {
  jade_cosmo *c;
  if (jade_cosmo_create(p, &c)) {
    fprintf(stderr, "create failed: %s\n", jade_last_error());
    exit(1);
  }
  jade_cosmo_free(c); /* warm-up */
  double best = INFINITY;
  int nb = n / 5 > 0 ? n / 5 : 1;
  for (int b = 0; b < 5; b++) {
    double t0 = cpu_now();
    for (int i = 0; i < nb; i++) {
      jade_cosmo_params q = *p;
      q.sigma_8 *= 1.0 + 1e-4 * (i % 7); /* a different cosmology every time */
      if (jade_cosmo_create(&q, &c)) {
        fprintf(stderr, "create failed: %s\n", jade_last_error());
        exit(1);
      }
      sink += jade_cosmo_growth(c, 0.5);
      jade_cosmo_free(c);
    }
    double dt = (cpu_now() - t0) / nb;
    if (dt < best) best = dt;
  }
  return best;
}

typedef double (*eval_fn)(const jade_cosmo *, double, double);
static double pk_lin_fn(const jade_cosmo *c, double k, double a) { return jade_cosmo_pk_lin(c, k, a); }
static double pk_nl_fn(const jade_cosmo *c, double k, double a) { return jade_cosmo_pk_nl(c, k, a); }
static double chi_fn(const jade_cosmo *c, double x, double a) { (void)x; return jade_cosmo_chi(c, a); }
static double aofchi_fn(const jade_cosmo *c, double x, double a) {
  (void)a;
  return jade_cosmo_a_of_chi(c, 10.0 + 5000.0 * x / 10.0);
}
static double growth_fn(const jade_cosmo *c, double x, double a) { (void)x; return jade_cosmo_growth(c, a); }
static double sigmaR_fn(const jade_cosmo *c, double x, double a) { return jade_cosmo_sigma_R(c, 0.5 + x, a); }

static double bench_eval(const jade_cosmo *c, eval_fn f, int n) {
  double best = INFINITY;
  int nb = n / 5;
  for (int b = 0; b < 5; b++) {
    double s = 0, t0 = cpu_now();
    for (int i = 0; i < nb; i++) {
      double k = 1e-3 * pow(1e4, (i % 997) / 997.0); /* 1e-3 .. 10 h/Mpc */
      double a = 0.2 + 0.8 * ((i * 7919) % 1009) / 1009.0;
      s += f(c, k, a);
    }
    sink += s;
    double dt = (cpu_now() - t0) / nb;
    if (dt < best) best = dt;
  }
  return best;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 300;
  if (n < 1) n = 1;
  jade_cosmo_params p = jade_cosmo_params_fiducial();
  printf("jade_cosmo_create, ms per call (best of 5 batches of %d):\n", n / 5 > 0 ? n / 5 : 1);
  static const char *names[3] = {"Eisenstein-Hu (wiggles)", "Eisenstein-Hu no-wiggle", "BBKS"};
  for (int t = 0; t < 3; t++) {
    jade_cosmo_params q = p;
    q.transfer = (jade_transfer)t;
    printf("  %-26s LCDM + radiation   %.3f\n", names[t], 1e3 * bench_create(&q, n));
  }
  jade_cosmo_params w = p;
  w.w_0 = -0.9;
  w.w_a = 0.1;
  w.Omega_k = 0.02;
  printf("  %-26s w0-wa, curved      %.3f\n", names[0], 1e3 * bench_create(&w, n));
  jade_cosmo_params r = p;
  r.radiation = 0;
  printf("  %-26s LCDM, no radiation %.3f\n", names[0], 1e3 * bench_create(&r, n));

  jade_cosmo *c;
  if (jade_cosmo_create(&w, &c)) return 1;
  printf("evaluation, w0-wa cosmology (ns per call):\n");
  printf("  pk_lin      %7.1f\n", 1e9 * bench_eval(c, pk_lin_fn, 2000000));
  printf("  pk_nl       %7.1f\n", 1e9 * bench_eval(c, pk_nl_fn, 2000000));
  printf("  chi         %7.1f\n", 1e9 * bench_eval(c, chi_fn, 2000000));
  printf("  a_of_chi    %7.1f\n", 1e9 * bench_eval(c, aofchi_fn, 2000000));
  printf("  growth      %7.1f\n", 1e9 * bench_eval(c, growth_fn, 2000000));
  printf("  sigma_R     %7.1f\n", 1e9 * bench_eval(c, sigmaR_fn, 20000));
  jade_cosmo_free(c);
  return sink == 12345.0;
}
