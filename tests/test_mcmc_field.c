/* Field-level posterior of the explicit log-normal model (jade/lognormal_grad.h,
 * jade/fieldpost.h):
 *  1. the map kappa(z, theta) equals jade_simulator_run's for the simulator's white noise, to
 *     float precision (small preset; a 16 x 16 two-bin grid with the empirical variance);
 *  2. the reverse pass of the map construction against central differences, for z, the C_ell
 *     table and lambda, with and without clipped eigenvalues, both variance options;
 *  3. the full gradient of the log posterior (exact cosmology, finite-difference Jacobian)
 *     against central differences of the log posterior at several prior draws;
 *  4. the emulator: accuracy, exact gradient of the emulated posterior, serialisation, the
 *     hybrid gradient close to the exact one;
 *  5. NUTS on a tiny nearly Gaussian problem (1 bin, 8 x 8, lambda = 1000, two free
 *     parameters) against the exact marginal posterior by quadrature over a grid;
 *     and with a mask and a noise map against the exact marginal of the observed pixels;
 *  6. NUTS on a tiny strongly non-Gaussian problem (lambda ~ kappa rms) against an independent
 *     gradient-free sampler (preconditioned Crank-Nicolson for z within Gibbs, random-walk
 *     Metropolis for sigma_8);
 *  7. errors and log p = -inf outside the model.
 * Tolerances are stated where they are used. */
#include "jade/config.h"
#include "jade/fieldpost.h"
#include "jade/lognormal_grad.h"
#include "jade/mcmc.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static jade_sim_config preset(const char *const *sets) {
  jade_config *cfg;
  CHECK_OK(jade_config_create(&cfg));
  CHECK_OK(jade_config_load_preset(cfg, "small"));
  for (int i = 0; sets && sets[i]; i++) CHECK_OK(jade_config_set(cfg, sets[i]));
  jade_sim_config sc;
  CHECK_OK(jade_sim_config_read(cfg, &sc));
  jade_config_free(cfg);
  return sc;
}

/* ------------------------------------------------------------ 1. same map as the simulator */
static void test_same_map(const char *const *sets, int n_draws) {
  jade_sim_config sc = preset(sets);
  jade_simulator *sim;
  jade_theory *th;
  CHECK_OK(jade_simulator_create(&sc, &sim));
  CHECK_OK(jade_theory_create_cosmo(&sc, &th));
  int nb = sc.geom.n_bins, n = sc.geom.n_pix;
  size_t nmap = (size_t)nb * n * n;
  float *ks = malloc(sizeof(float) * nmap), *kf = malloc(sizeof(float) * nmap), *obs = calloc(nmap, sizeof(float));
  double noise[JADE_MAX_BINS];
  jade_simulator_noise(sim, noise);
  jade_fieldpost_setup fs = {.sc = &sc, .n_free = 6, .free_idx = {0, 1, 2, 3, 4, 5}, .kappa_obs = obs, .noise = noise, .theory = th};
  jade_fieldpost *fp;
  CHECK_OK(jade_fieldpost_create(&fs, &fp));
  double *x = malloc(sizeof(double) * jade_fieldpost_dim(fp));
  for (int d = 0; d < n_draws; d++) {
    double theta[JADE_N_THETA];
    if (d == 0) jade_theta_from_params(&sc.cosmo, theta);
    else jade_prior_draw(&sc, 11, (uint64_t)d, theta);
    uint64_t seed = 5, index = 3 + d;
    CHECK_OK(jade_simulator_run(sim, theta, seed, index, ks, NULL, NULL, NULL));
    CHECK_OK(jade_fieldpost_unconstrain(fp, theta, x));
    jade_rng_normal_fill(seed, JADE_STREAM(JADE_RNG_FIELD, index), 0, nmap, x + 6);
    double lp, md = 0.0, mk = 0.0;
    CHECK_OK(jade_fieldpost_eval_exact(fp, x, &lp, kf));
    for (size_t m = 0; m < nmap; m++) {
      jade_test_max_err(&md, fabs((double)kf[m] - ks[m]));
      jade_test_max_err(&mk, fabs((double)ks[m]));
    }
    /* float precision: both are roundings of maps equal to ~1e-13 relative, so they differ by
     * at most one float ulp of the largest value */
    CHECK_LE(md, 1.2e-7 * mk, "map %d (n_pix %d, %d bins): max |kappa - simulator| = %.3g (max |kappa| %.3g)", d, n, nb, md, mk);
  }
  free(x);
  free(ks);
  free(kf);
  free(obs);
  jade_fieldpost_free(fp);
  jade_theory_free(th);
  jade_simulator_free(sim);
}

/* ------------------------------------------------------------ 2. reverse pass of the maps */
/* L = sum w kappa, directional derivatives along random directions */
static double loss(jade_lngrad *lg, const double *z, const double *w, double *kap, size_t nmap) {
  CHECK_OK(jade_lngrad_forward(lg, z, kap));
  double s = 0.0;
  for (size_t m = 0; m < nmap; m++) s += w[m] * kap[m];
  return s;
}

static void test_lngrad(int n, int nb, jade_ln_variance var, double cross_scale, const char *what) {
  jade_sim_config sc = preset((const char *const[]){"n_pix=32", NULL});
  jade_map_geometry g = {n, 5.0, nb};
  jade_simulator *sim;
  sc.geom = g;
  sc.survey.n_bins = nb;
  CHECK_OK(jade_simulator_create(&sc, &sim));
  float *tmp = malloc(sizeof(float) * nb * n * n);
  double lam[JADE_MAX_BINS], theta[JADE_N_THETA];
  jade_theta_from_params(&sc.cosmo, theta);
  CHECK_OK(jade_simulator_run(sim, theta, 1, 0, tmp, lam, NULL, NULL));
  const double *ell, *cl0;
  int n_ell = jade_simulator_cl_table(sim, &ell, &cl0), np = nb * (nb + 1) / 2;
  double *cl = malloc(sizeof(double) * n_ell * np);
  for (int i = 0; i < n_ell * np; i++) cl[i] = cl0[i] * ((i % np) == 1 ? cross_scale : 1.0);
  jade_lngrad *lg;
  CHECK_OK(jade_lngrad_create(&g, var, &lg));
  CHECK_OK(jade_lngrad_prepare(lg, n_ell, ell, cl, lam));
  if (cross_scale > 1.0) CHECK_GT(jade_lngrad_clipped_fraction(lg), 0.0, "%s: expected clipped eigenvalues", what);
  size_t nmap = (size_t)nb * n * n;
  double *z = malloc(8 * nmap), *w = malloc(8 * nmap), *kap = malloc(8 * nmap), *zb = malloc(8 * nmap), *zz = malloc(8 * nmap);
  double *clb = malloc(8 * n_ell * np), *dc = malloc(8 * n_ell * np), *c2 = malloc(8 * n_ell * np), lb[JADE_MAX_BINS];
  jade_rng_normal_fill(3, 1, 0, nmap, z);
  jade_rng_normal_fill(4, 1, 0, nmap, w);
  loss(lg, z, w, kap, nmap);
  CHECK_OK(jade_lngrad_backward(lg, w, zb, clb, lb));
  /* Central differences with relative steps 1e-6 (truncation ~1e-12, rounding ~1e-10 of the
   * loss): agreement to 1e-6 relative. */
  const double tol = 1e-6;
  for (int t = 0; t < 2; t++) { /* z */
    double *dz = malloc(8 * nmap), an = 0.0, h = 1e-6;
    jade_rng_normal_fill(20 + t, 1, 0, nmap, dz);
    for (size_t m = 0; m < nmap; m++) an += zb[m] * dz[m];
    for (size_t m = 0; m < nmap; m++) zz[m] = z[m] + h * dz[m];
    double lp = loss(lg, zz, w, kap, nmap);
    for (size_t m = 0; m < nmap; m++) zz[m] = z[m] - h * dz[m];
    double lm = loss(lg, zz, w, kap, nmap), fd = (lp - lm) / (2 * h);
    CHECK_LE(fabs(an - fd), tol * fabs(fd) + 1e-12, "%s: z direction %d: analytic %.10g, differences %.10g", what, t, an, fd);
    free(dz);
  }
  for (int i = 0; i < nb; i++) { /* lambda */
    double l2[JADE_MAX_BINS], h = 1e-6 * lam[i];
    memcpy(l2, lam, sizeof l2);
    l2[i] = lam[i] + h;
    CHECK_OK(jade_lngrad_prepare(lg, n_ell, ell, cl, l2));
    double lp = loss(lg, z, w, kap, nmap);
    l2[i] = lam[i] - h;
    CHECK_OK(jade_lngrad_prepare(lg, n_ell, ell, cl, l2));
    double lm = loss(lg, z, w, kap, nmap), fd = (lp - lm) / (2 * h);
    CHECK_LE(fabs(lb[i] - fd), tol * fabs(fd) + 1e-9, "%s: lambda %d: analytic %.10g, differences %.10g", what, i, lb[i], fd);
  }
  for (int t = 0; t < 3; t++) { /* C_ell table: relative perturbations of all / the cross pair / one ell row */
    double an = 0.0, h = 1e-6;
    jade_rng_normal_fill(30 + t, 1, 0, (size_t)n_ell * np, dc);
    for (int i = 0; i < n_ell * np; i++) {
      double d = dc[i] * cl[i];
      if (t == 1 && (np == 1 || i % np != 1)) d = 0.0;
      if (t == 2 && i / np != n_ell / 3) d = 0.0;
      dc[i] = d;
      an += clb[i] * d;
    }
    for (int i = 0; i < n_ell * np; i++) c2[i] = cl[i] + h * dc[i];
    CHECK_OK(jade_lngrad_prepare(lg, n_ell, ell, c2, lam));
    double lp = loss(lg, z, w, kap, nmap);
    for (int i = 0; i < n_ell * np; i++) c2[i] = cl[i] - h * dc[i];
    CHECK_OK(jade_lngrad_prepare(lg, n_ell, ell, c2, lam));
    double lm = loss(lg, z, w, kap, nmap), fd = (lp - lm) / (2 * h);
    CHECK_LE(fabs(an - fd), tol * fabs(fd) + 1e-12, "%s: C_ell direction %d: analytic %.10g, differences %.10g", what, t, an, fd);
  }
  free(z);
  free(w);
  free(kap);
  free(zb);
  free(zz);
  free(clb);
  free(dc);
  free(c2);
  free(cl);
  free(tmp);
  jade_lngrad_free(lg);
  jade_simulator_free(sim);
}

/* ------------------------------------------------------------ 3. full gradient, exact theory */
static void fd_check(jade_fieldpost *fp, const double *x, double tol, const char *what) {
  size_t d = jade_fieldpost_dim(fp);
  int k = jade_fieldpost_n_free(fp);
  double *g = malloc(8 * d), *x2 = malloc(8 * d), lp, lpp, lpm;
  CHECK_OK(jade_fieldpost_logp(fp, x, &lp, g));
  CHECK(isfinite(lp), "%s: log p = %g", what, lp);
  const double h = 1e-4;
  for (int q = 0; q < k + 3; q++) {
    /* the free parameters, then three directions: one z component and two random ones */
    double *dir = calloc(d, 8), an = 0.0;
    if (q < k) dir[q] = 1.0;
    else if (q == k) dir[k + 17] = 1.0;
    else jade_rng_normal_fill(70 + q, 1, 0, d, dir);
    for (size_t m = 0; m < d; m++) an += g[m] * dir[m];
    for (size_t m = 0; m < d; m++) x2[m] = x[m] + h * dir[m];
    CHECK_OK(jade_fieldpost_logp(fp, x2, &lpp, NULL));
    for (size_t m = 0; m < d; m++) x2[m] = x[m] - h * dir[m];
    CHECK_OK(jade_fieldpost_logp(fp, x2, &lpm, NULL));
    double fd = (lpp - lpm) / (2 * h);
    CHECK_LE(fabs(an - fd), tol * (fabs(fd) + 1.0), "%s: direction %d: analytic %.10g, differences %.10g", what, q, an, fd);
    free(dir);
  }
  free(g);
  free(x2);
}

/* A noisy observation at the config's cosmology (its parameters in theta): map seed `seed`,
 * noise stream `stream`; fills noise[] with the per-pixel noise of each bin. Returns the map
 * (malloc'd). */
static float *mock_observation(const jade_sim_config *sc, jade_simulator *sim, uint64_t seed, uint64_t stream,
                               double *noise, double *theta) {
  int nb = sc->geom.n_bins, n = sc->geom.n_pix;
  float *obs = malloc(sizeof(float) * (size_t)nb * n * n);
  jade_simulator_noise(sim, noise);
  jade_theta_from_params(&sc->cosmo, theta);
  CHECK_OK(jade_simulator_run(sim, theta, seed, 0, obs, NULL, NULL, NULL));
  for (int b = 0; b < nb; b++) jade_add_noise(obs + (size_t)b * n * n, (size_t)n * n, noise[b], seed, stream, (uint64_t)b * n * n);
  return obs;
}

static void test_full_gradient(void) {
  jade_sim_config sc = preset((const char *const[]){"n_pix=16", "n_bins=3", NULL});
  jade_simulator *sim;
  jade_theory *th;
  CHECK_OK(jade_simulator_create(&sc, &sim));
  CHECK_OK(jade_theory_create_cosmo(&sc, &th));
  int nb = sc.geom.n_bins, n = sc.geom.n_pix;
  size_t nmap = (size_t)nb * n * n;
  double noise[JADE_MAX_BINS], theta[JADE_N_THETA];
  float *obs = mock_observation(&sc, sim, 9, 99, noise, theta);
  jade_fieldpost_setup fs = {.sc = &sc, .n_free = 6, .free_idx = {0, 1, 2, 3, 4, 5}, .kappa_obs = obs, .noise = noise, .theory = th};
  jade_fieldpost *fp;
  CHECK_OK(jade_fieldpost_create(&fs, &fp));
  double *x = malloc(sizeof(double) * jade_fieldpost_dim(fp));
  int good = 0;
  for (uint64_t idx = 0; good < 3 && idx < 20; idx++) {
    jade_prior_draw(&sc, 21, idx, theta);
    if (jade_fieldpost_unconstrain(fp, theta, x)) continue;
    jade_rng_normal_fill(21, 5, idx * nmap, nmap, x + 6);
    double lp;
    CHECK_OK(jade_fieldpost_logp(fp, x, &lp, NULL));
    if (!isfinite(lp)) continue; /* outside the log-normal model: tested below */
    char what[96];
    snprintf(what, sizeof what, "exact gradient at prior draw %llu (Omega_c %.3f sigma_8 %.3f w_0 %.2f)", (unsigned long long)idx,
             theta[0], theta[2], theta[5]);
    /* Both sides are differences (the Jacobian with step 1e-4 prior sd, the check with step
     * 1e-4 in u) of functions smooth to ~1e-12: agreement to 1e-5 of max(|g|, 1). */
    fd_check(fp, x, 1e-5, what);
    good++;
  }
  CHECK(good == 3, "only %d prior draws inside the model", good);
  /* masked pixels (a strip and a hole, NaN data) and a noise map that varies over the field */
  float *mask = malloc(sizeof(float) * nmap), *sig = malloc(sizeof(float) * nmap);
  for (size_t m = 0; m < nmap; m++) {
    const int b = (int)(m / ((size_t)n * n)), y = (int)(m / n) % n, x = (int)(m % n);
    mask[m] = (x < 3 || (abs(x - 9) <= 1 && abs(y - 7) <= 1)) ? 0.0f : 1.0f;
    sig[m] = (float)(noise[b] * exp(0.4 * sin(2 * M_PI * y / n)));
    if (mask[m] == 0.0f) obs[m] = NAN;
  }
  jade_fieldpost_setup fm = fs;
  fm.mask = mask;
  fm.noise_map = sig;
  jade_fieldpost *fpm;
  CHECK_OK(jade_fieldpost_create(&fm, &fpm));
  jade_prior_draw(&sc, 21, 0, theta);
  jade_theta_from_params(&sc.cosmo, theta);
  CHECK_OK(jade_fieldpost_unconstrain(fpm, theta, x));
  jade_rng_normal_fill(22, 5, 0, nmap, x + 6);
  fd_check(fpm, x, 1e-5, "masked, per-pixel noise");
  /* the data term by hand: log p(masked) - log p(no data) = -sum m (d - kappa)^2 / (2 sigma^2) */
  {
    float *kap = malloc(sizeof(float) * nmap);
    double lpm, lp0, want = 0.0;
    CHECK_OK(jade_fieldpost_eval_exact(fpm, x, &lpm, kap));
    for (size_t m = 0; m < nmap; m++) mask[m] = 0.0f;
    mask[5] = 1.0f; /* one observed pixel (at least one is required): x 5, y 0 of bin 0 */
    jade_fieldpost *fp0;
    CHECK_OK(jade_fieldpost_create(&fm, &fp0));
    CHECK_OK(jade_fieldpost_eval_exact(fp0, x, &lp0, NULL));
    const double r0 = obs[5] - (double)kap[5];
    lp0 += 0.5 * r0 * r0 / ((double)sig[5] * sig[5]); /* remove pixel 5's term: the prior part */
    for (size_t m = 0; m < nmap; m++) {
      const int y = (int)(m / n) % n, xx = (int)(m % n);
      if (xx < 3 || (abs(xx - 9) <= 1 && abs(y - 7) <= 1)) continue;
      const double r = obs[m] - (double)kap[m];
      want -= 0.5 * r * r / ((double)sig[m] * sig[m]);
    }
    /* kappa is rounded to float in eval_exact's output: |r| ~ 1e-2 with error ~1e-9, so the
     * sum of ~600 terms of size ~1 agrees to ~1e-6 relative */
    CHECK_LE(fabs((lpm - lp0) - want), 1e-6 * (fabs(want) + 1.0), "masked data term %.10g, by hand %.10g", lpm - lp0, want);
    free(kap);
    jade_fieldpost_free(fp0);
  }
  jade_fieldpost_free(fpm);
  free(mask);
  free(sig);
  jade_fieldpost_counters c;
  jade_fieldpost_get_counters(fp, &c);
  CHECK(jade_test_gt_ok(c.n_theory, 0) && jade_test_gt_ok(c.n_eval, 0), "counters not updated");
  free(x);
  free(obs);
  jade_fieldpost_free(fp);
  jade_theory_free(th);
  jade_simulator_free(sim);
}

/* ------------------------------------------------------------ 4. emulator */
static void test_emulator(void) {
  jade_sim_config sc = preset((const char *const[]){"n_pix=16", "n_bins=2", NULL});
  jade_simulator *sim;
  jade_theory *th;
  CHECK_OK(jade_simulator_create(&sc, &sim));
  CHECK_OK(jade_theory_create_cosmo(&sc, &th));
  int nb = sc.geom.n_bins, n = sc.geom.n_pix;
  size_t nmap = (size_t)nb * n * n;
  double noise[JADE_MAX_BINS], theta[JADE_N_THETA];
  float *obs = mock_observation(&sc, sim, 2, 98, noise, theta);
  /* free: Omega_c (lower bound), sigma_8 (normal), w_0 (interval: emulated in theta) */
  jade_fieldpost_setup fs = {.sc = &sc, .n_free = 3, .free_idx = {0, 2, 5}, .kappa_obs = obs, .noise = noise, .theory = th};
  jade_fieldpost *fp, *fe;
  CHECK_OK(jade_fieldpost_create(&fs, &fp));
  CHECK_OK(jade_fieldpost_create(&fs, &fe));
  size_t d = jade_fieldpost_dim(fp);
  double *x = malloc(8 * d), *g1 = malloc(8 * d), *g2 = malloc(8 * d);
  CHECK_OK(jade_fieldpost_unconstrain(fp, theta, x));
  jade_rng_normal_fill(2, JADE_STREAM(JADE_RNG_FIELD, 0), 0, nmap, x + 3);
  double mean[3] = {x[0], x[1], x[2]}, cov[9] = {0.15 * 0.15, 0, 0, 0, 0.3 * 0.3, 0, 0, 0, 0.8 * 0.8};
  jade_emulator_config ec;
  jade_emulator_config_default(&ec);
  ec.degree = 3;
  jade_emulator *em;
  CHECK_OK(jade_emulator_fit(th, &sc, 3, fs.free_idx, mean, cov, &ec, NULL, &em));
  jade_emulator_info inf;
  jade_emulator_get_info(em, &inf);
  /* a cubic over +-1.5 sd of this region: held-out errors of ln C_ell below 1e-2 (max) and
   * 2e-3 (rms) (measured ~3e-3 and ~4e-4) */
  CHECK(jade_test_lt_ok(inf.max_err_cl, 1e-2) && jade_test_lt_ok(inf.rms_err_cl, 2e-3) && jade_test_lt_ok(inf.max_err_lambda, 1e-2),
        "emulator errors: max %.3g rms %.3g lambda %.3g", inf.max_err_cl, inf.rms_err_cl, inf.max_err_lambda);
  CHECK_GE(inf.n_design, inf.n_terms + 2, "emulator design %d for %d terms", inf.n_design, inf.n_terms);
  CHECK_OK(jade_fieldpost_set_mode(fe, JADE_FP_EMULATOR, em));
  double lpx, lpe;
  CHECK_OK(jade_fieldpost_logp(fp, x, &lpx, g1));
  CHECK_OK(jade_fieldpost_logp(fe, x, &lpe, g2));
  CHECK_LT(fabs(lpx - lpe), 0.5, "emulated log p %.6f vs exact %.6f", lpe, lpx);
  /* The emulated posterior is smooth and its gradient exact: agreement to the accuracy of
   * the check's own differences (1e-5 of max(|g|, 1), as above). */
  fd_check(fe, x, 1e-5, "emulated gradient");
  /* hybrid: the exact value, the emulator's Jacobian: theta components within 5% of the
   * exact gradient's scale, z components identical */
  double lph;
  CHECK_OK(jade_fieldpost_set_mode(fe, JADE_FP_HYBRID, em));
  CHECK_OK(jade_fieldpost_logp(fe, x, &lph, g2));
  CHECK(lph == lpx, "hybrid log p %.17g differs from the exact %.17g", lph, lpx);
  for (int q = 0; q < 3; q++) CHECK_LE(fabs(g2[q] - g1[q]), 0.05 * (fabs(g1[q]) + 1.0), "hybrid grad %d: %g vs exact %g", q, g2[q], g1[q]);
  double dz = 0.0;
  for (size_t m = 3; m < d; m++) jade_test_max_err(&dz, fabs(g2[m] - g1[m]));
  CHECK(dz == 0.0, "hybrid z gradient differs by %g", dz);
  /* public vjp vs differences of the emulated values */
  int n_ell = jade_theory_n_ell(th), np = nb * (nb + 1) / 2;
  double *cb = malloc(8 * n_ell * np), *c1 = malloc(8 * n_ell * np), lb[JADE_MAX_BINS], l1[JADE_MAX_BINS], tb[3];
  jade_rng_normal_fill(5, 2, 0, (size_t)n_ell * np, cb);
  for (int i = 0; i < n_ell * np; i++) cb[i] *= 1e7;
  for (int i = 0; i < nb; i++) lb[i] = 1.0 + i;
  CHECK_OK(jade_emulator_vjp(em, theta, cb, lb, tb));
  for (int q = 0; q < 3; q++) {
    int i = fs.free_idx[q];
    double tp[JADE_N_THETA], h = 1e-5 * sc.prior[i].sd, fp_ = 0.0, fm = 0.0;
    memcpy(tp, theta, sizeof tp);
    tp[i] += h;
    CHECK_OK(jade_emulator_eval(em, tp, c1, l1));
    for (int o = 0; o < n_ell * np; o++) fp_ += cb[o] * c1[o];
    for (int b = 0; b < nb; b++) fp_ += lb[b] * l1[b];
    tp[i] -= 2 * h;
    CHECK_OK(jade_emulator_eval(em, tp, c1, l1));
    for (int o = 0; o < n_ell * np; o++) fm += cb[o] * c1[o];
    for (int b = 0; b < nb; b++) fm += lb[b] * l1[b];
    double fd = (fp_ - fm) / (2 * h);
    CHECK_LE(fabs(tb[q] - fd), 1e-6 * (fabs(fd) + 1e-3), "emulator vjp %s: %.10g vs %.10g", jade_theta_names[i], tb[q], fd);
  }
  /* serialisation round trip: identical values */
  size_t sz = jade_emulator_serial_size(em);
  void *buf = malloc(sz);
  CHECK_OK(jade_emulator_serialize(em, buf, sz));
  jade_emulator *em2;
  CHECK_OK(jade_emulator_deserialize(&em2, buf, sz));
  double *c2 = malloc(8 * n_ell * np), l2[JADE_MAX_BINS];
  CHECK_OK(jade_emulator_eval(em, theta, c1, l1));
  CHECK_OK(jade_emulator_eval(em2, theta, c2, l2));
  CHECK(!memcmp(c1, c2, 8 * n_ell * np) && !memcmp(l1, l2, 8 * nb), "deserialised emulator differs");
  ((unsigned char *)buf)[3] ^= 1;
  jade_emulator *bad = NULL;
  CHECK(jade_emulator_deserialize(&bad, buf, sz) == JADE_ERR_FORMAT && !bad, "corrupt emulator accepted");
  CHECK(jade_emulator_deserialize(&bad, buf, 10) == JADE_ERR_FORMAT, "truncated emulator accepted");
  free(buf);
  /* a mismatched emulator is refused */
  jade_fieldpost_setup fs2 = fs;
  fs2.n_free = 2;
  fs2.free_idx[0] = 0;
  fs2.free_idx[1] = 2;
  jade_fieldpost *f2;
  CHECK_OK(jade_fieldpost_create(&fs2, &f2));
  CHECK(jade_fieldpost_set_mode(f2, JADE_FP_EMULATOR, em) == JADE_ERR_INVALID, "emulator of other parameters accepted");
  CHECK(jade_fieldpost_set_mode(f2, JADE_FP_EMULATOR, NULL) == JADE_ERR_INVALID, "emulator mode without emulator accepted");
  jade_fieldpost_free(f2);
  jade_emulator_free(em2);
  jade_emulator_free(em);
  free(c1);
  free(c2);
  free(cb);
  free(x);
  free(g1);
  free(g2);
  free(obs);
  jade_fieldpost_free(fp);
  jade_fieldpost_free(fe);
  jade_theory_free(th);
  jade_simulator_free(sim);
}

/* ------------------------------------------------------------ toy theory for 5-7 */
#define TOY_NELL 40
typedef struct {
  double ell[TOY_NELL];
  double lambda, amp;
} toy;

/* C(l) = amp (sigma_8 / 0.8)^2 (l / 100)^-(1 + 2 (Omega_c - 0.26)), one bin */
static jade_status toy_fn(void *ctx, const double th[JADE_N_THETA], double *cl, double *lambda) {
  const toy *t = ctx;
  double a = t->amp * (th[2] / 0.8) * (th[2] / 0.8), s = 1.0 + 2.0 * (th[0] - 0.26);
  for (int k = 0; k < TOY_NELL; k++) cl[k] = a * pow(t->ell[k] / 100.0, -s);
  lambda[0] = t->lambda;
  return JADE_OK;
}

typedef struct {
  jade_sim_config sc;
  toy ty;
  jade_theory *th;
  float *obs;
  double noise[1];
  double theta_true[JADE_N_THETA];
  const float *mask, *noise_map; /* NULL: full coverage, uniform noise */
} toy_problem;

static void toy_make(toy_problem *p, double lambda, double amp, double noise, int n_pix, uint64_t seed) {
  char npx[32];
  snprintf(npx, sizeof npx, "n_pix=%d", n_pix);
  p->sc = preset((const char *const[]){npx, "n_bins=1", NULL});
  p->mask = p->noise_map = NULL;
  double L = p->sc.geom.size_deg * M_PI / 180.0, lo = M_PI / L, hi = 1.1 * sqrt(2.0) * M_PI * n_pix / L;
  for (int k = 0; k < TOY_NELL; k++) p->ty.ell[k] = lo * pow(hi / lo, (double)k / (TOY_NELL - 1));
  p->ty.lambda = lambda;
  p->ty.amp = amp;
  CHECK_OK(jade_theory_create_fn(1, TOY_NELL, p->ty.ell, toy_fn, &p->ty, &p->th));
  jade_theta_from_params(&p->sc.cosmo, p->theta_true);
  size_t nmap = (size_t)n_pix * n_pix;
  double cl[TOY_NELL], lam[1], *z = malloc(8 * nmap), *k = malloc(8 * nmap);
  CHECK_OK(toy_fn(&p->ty, p->theta_true, cl, lam));
  jade_lngrad *lg;
  CHECK_OK(jade_lngrad_create(&p->sc.geom, p->sc.variance, &lg));
  CHECK_OK(jade_lngrad_prepare(lg, TOY_NELL, p->ty.ell, cl, lam));
  jade_rng_normal_fill(seed, 1, 0, nmap, z);
  CHECK_OK(jade_lngrad_forward(lg, z, k));
  p->obs = malloc(sizeof(float) * nmap);
  for (size_t m = 0; m < nmap; m++) p->obs[m] = (float)k[m];
  p->noise[0] = noise;
  jade_add_noise(p->obs, nmap, noise, seed, 2, 0);
  jade_lngrad_free(lg);
  free(z);
  free(k);
}

static void toy_free(toy_problem *p) {
  jade_theory_free(p->th);
  free(p->obs);
}

/* NUTS with n_chains chains on the toy problem (exact mode); draws of theta component j
 * into out[c * n + i] (all requested components: out + j * (C n)). */
static void toy_nuts(toy_problem *p, int n_free, const int *free_idx, int n_chains, long warm, long n, double *out) {
  jade_fieldpost_setup fs = {.sc = &p->sc, .n_free = n_free, .kappa_obs = p->obs, .noise = p->noise, .theory = p->th,
                             .mask = p->mask, .noise_map = p->noise_map};
  memcpy(fs.free_idx, free_idx, sizeof(int) * n_free);
  jade_fieldpost **fp = malloc(sizeof(void *) * n_chains);
  jade_nuts_chain **ch = malloc(sizeof(void *) * n_chains);
  jade_nuts_config cfg;
  jade_nuts_config_default(&cfg);
  cfg.n_warmup = warm;
  cfg.max_depth = 8;
  size_t d = 0;
  for (int c = 0; c < n_chains; c++) {
    CHECK_OK(jade_fieldpost_create(&fs, &fp[c]));
    d = jade_fieldpost_dim(fp[c]);
    double *x0 = malloc(8 * d);
    CHECK_OK(jade_fieldpost_unconstrain(fp[c], p->theta_true, x0));
    jade_rng_normal_fill(77, 3, (uint64_t)c * d, d - n_free, x0 + n_free);
    CHECK_OK(jade_nuts_chain_create(&ch[c], d, &cfg, 123, (uint64_t)c, x0, NULL));
    free(x0);
  }
  double *draws = malloc(8 * d * n * n_chains);
  CHECK_OK(jade_nuts_run_chains(ch, n_chains, jade_fieldpost_logp, (void *const *)fp, warm, NULL, NULL, 0));
  CHECK_OK(jade_nuts_run_chains(ch, n_chains, jade_fieldpost_logp, (void *const *)fp, n, draws, NULL, 0));
  for (int c = 0; c < n_chains; c++)
    for (long i = 0; i < n; i++) {
      double th[JADE_N_THETA];
      jade_fieldpost_theta(fp[c], draws + ((size_t)c * n + i) * d, th);
      for (int j = 0; j < n_free; j++) out[(size_t)j * n_chains * n + (size_t)c * n + i] = th[free_idx[j]];
    }
  for (int c = 0; c < n_chains; c++) {
    jade_nuts_chain_free(ch[c]);
    jade_fieldpost_free(fp[c]);
  }
  free(fp);
  free(ch);
  free(draws);
}

/* Posterior moments of Omega_c and sigma_8 from log densities lpg[a G + b] on the grid
 * Omega_c = 1.3 (a + 0.5) / G, sigma_8 = 0.1 + 1.5 (b + 0.5) / G (max lmax), against NUTS
 * draws dr (component j at dr + j C S): within 4.5 Monte Carlo standard errors (mean and
 * sd), R-hat < 1.02, bulk ESS > 300. */
static void check_grid_moments(const char *label, const double *lpg, int G, double lmax, const double *dr, int C, long S,
                               const int *idx) {
  double s0 = 0, so = 0, so2 = 0, ss = 0, ss2 = 0, edge = 0.0;
  for (int a = 0; a < G; a++)
    for (int b = 0; b < G; b++) {
      double w = exp(lpg[a * G + b] - lmax), oc = 1.3 * (a + 0.5) / G, s8 = 0.1 + 1.5 * (b + 0.5) / G;
      s0 += w;
      so += w * oc;
      so2 += w * oc * oc;
      ss += w * s8;
      ss2 += w * s8 * s8;
      if (a == G - 1 || b == 0 || b == G - 1) jade_test_max_err(&edge, w);
    }
  CHECK_LT(edge, 1e-6, "%s: quadrature grid does not contain the posterior (edge weight %g)", label, edge);
  double mu[2] = {so / s0, ss / s0}, sd[2] = {sqrt(so2 / s0 - mu[0] * mu[0]), sqrt(ss2 / s0 - mu[1] * mu[1])};
  for (int j = 0; j < 2; j++) {
    jade_mcmc_summary sm;
    CHECK_OK(jade_mcmc_summarize(dr + (size_t)j * C * S, C, S, &sm));
    CHECK_LT(fabs(sm.mean - mu[j]), 4.5 * sm.mcse_mean, "%s %s: NUTS mean %.5f +- %.5f, exact %.5f", label, jade_theta_names[idx[j]],
             sm.mean, sm.mcse_mean, mu[j]);
    CHECK_LT(fabs(sm.sd - sd[j]), 4.5 * sm.mcse_sd, "%s %s: NUTS sd %.5f +- %.5f, exact %.5f", label, jade_theta_names[idx[j]], sm.sd,
             sm.mcse_sd, sd[j]);
    CHECK(jade_test_lt_ok(sm.rhat, 1.02) && jade_test_gt_ok(sm.ess_bulk, 300), "%s %s: R-hat %.4f, bulk ESS %.0f", label,
          jade_theta_names[idx[j]], sm.rhat, sm.ess_bulk);
    printf("%s %-8s NUTS %.5f +- %.5f (sd %.5f), exact %.5f (sd %.5f), ESS %.0f\n", label, jade_theta_names[idx[j]], sm.mean,
           sm.mcse_mean, sm.sd, mu[j], sd[j], sm.ess_bulk);
  }
}

/* ------------------------------------------------------------ 5. NUTS vs exact marginal */
static void test_nuts_gaussian_limit(void) {
  toy_problem p;
  /* lambda = 1000 >> kappa ~ 0.015: the log-normal field is Gaussian to ~1e-5 */
  toy_make(&p, 1000.0, 4e-8, 0.012, 8, 31);
  const int n = p.sc.geom.n_pix, C = 4;
  const long S = 1000;
  int idx[2] = {0, 2};
  double *dr = malloc(8 * 2 * C * S);
  toy_nuts(&p, 2, idx, C, 300, S, dr);
  /* Exact marginal: per Fourier mode k != 0, |d_k|^2 ~ N^2 (P(k) + sigma^2) with
   * P(k) = C(l_k) (N/L)^2 (the model's power of the Gaussian limit); posterior on a grid. */
  double L = p.sc.geom.size_deg * M_PI / 180.0, pn = (n / L) * (n / L);
  double re[64], im[64], lk[64];
  for (int ky = 0; ky < n; ky++)
    for (int kx = 0; kx < n; kx++) {
      double sr = 0.0, si = 0.0;
      for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
          double a = -2.0 * M_PI * ((double)kx * x + (double)ky * y) / n;
          sr += p.obs[y * n + x] * cos(a);
          si += p.obs[y * n + x] * sin(a);
        }
      int m = ky * n + kx, fx = kx <= n / 2 ? kx : n - kx, fy = ky <= n / 2 ? ky : n - ky;
      re[m] = sr;
      im[m] = si;
      lk[m] = 2.0 * M_PI / L * sqrt((double)fx * fx + (double)fy * fy);
    }
  const int G = 240;
  double *lpg = malloc(8 * G * G), lmax = -INFINITY;
  for (int a = 0; a < G; a++)
    for (int b = 0; b < G; b++) {
      double th[JADE_N_THETA];
      memcpy(th, p.theta_true, sizeof th);
      th[0] = 1.3 * (a + 0.5) / G;          /* Omega_c in (0, 1.3) */
      th[2] = 0.1 + 1.5 * (b + 0.5) / G;    /* sigma_8 in (0.1, 1.6) */
      double cl[TOY_NELL], lam[1], lp = jade_prior_logpdf(&p.sc, th);
      toy_fn(&p.ty, th, cl, lam);
      for (int m = 1; m < n * n; m++) {
        double pt = jade_cl_interp(TOY_NELL, p.ty.ell, cl, 1, lk[m]) * pn + p.noise[0] * p.noise[0];
        lp -= 0.5 * ((re[m] * re[m] + im[m] * im[m]) / (n * n * pt) + log(pt));
      }
      lpg[a * G + b] = lp;
      lmax = jade_test_max(lmax, lp);
    }
  check_grid_moments("Gaussian limit", lpg, G, lmax, dr, C, S, idx);
  free(lpg);
  free(dr);
  toy_free(&p);
}

/* ------------------------------------------------------------ 5b. masked, per-pixel noise */
/* log N(d_o; 0, S_oo + diag sigma_o^2) of the observed pixels (Cholesky); S_xy =
 * (1/n^2) sum_{k != 0} P_k cos(k . (x - y)) is the Gaussian limit's pixel covariance, with
 * P_k = C(l_k) (n/L)^2 as in the Fourier quadrature of test 5. */
static double masked_gaussian_loglike(int n, const double *pk, const double *cosk, const int *obs_idx, int n_o, const double *d,
                                      const double *s2, double *A) {
  double c_off[64]; /* S as a function of the periodic offset (dx, dy) = off % n, off / n */
  for (int off = 0; off < n * n; off++) {
    double c = 0.0;
    for (int k = 1; k < n * n; k++) c += pk[k] * cosk[k * n * n + off];
    c_off[off] = c / (n * n);
  }
  for (int i = 0; i < n_o; i++)
    for (int j = 0; j <= i; j++) {
      const int dx = ((obs_idx[i] % n - obs_idx[j] % n) + n) % n, dy = ((obs_idx[i] / n - obs_idx[j] / n) + n) % n;
      A[i * n_o + j] = c_off[dy * n + dx] + (i == j ? s2[i] : 0.0);
    }
  double logdet = 0.0;
  for (int j = 0; j < n_o; j++) { /* in-place Cholesky, lower triangle */
    double v = A[j * n_o + j];
    for (int k = 0; k < j; k++) v -= A[j * n_o + k] * A[j * n_o + k];
    CHECK(v > 0, "covariance not positive definite");
    A[j * n_o + j] = sqrt(v);
    logdet += 2.0 * log(A[j * n_o + j]);
    for (int i = j + 1; i < n_o; i++) {
      double w = A[i * n_o + j];
      for (int k = 0; k < j; k++) w -= A[i * n_o + k] * A[j * n_o + k];
      A[i * n_o + j] = w / A[j * n_o + j];
    }
  }
  double q = 0.0, y[64];
  for (int i = 0; i < n_o; i++) { /* y = L^-1 d */
    double w = d[i];
    for (int k = 0; k < i; k++) w -= A[i * n_o + k] * y[k];
    y[i] = w / A[i * n_o + i];
    q += y[i] * y[i];
  }
  return -0.5 * (q + logdet);
}

static void test_nuts_masked(void) {
  toy_problem p;
  toy_make(&p, 1000.0, 4e-8, 0.0, 8, 31); /* noise-free map; the noise below varies per pixel */
  const int n = p.sc.geom.n_pix, C = 4;
  const long S = 1000;
  float mask[64], sig[64];
  int obs_idx[64], n_o = 0;
  double d[64], s2[64];
  p.noise[0] = 0.012;
  double eps[64];
  jade_rng_normal_fill(31, 9, 0, 64, eps);
  for (int m = 0; m < n * n; m++) {
    const int x = m % n, y = m / n;
    mask[m] = (x < 2 || (x == 5 && y == 5) || (x == 6 && y == 5)) ? 0.0f : 1.0f; /* 18 of 64 masked */
    sig[m] = (float)(p.noise[0] * exp(0.35 * sin(2.0 * M_PI * (x + 2 * y) / n)));
    p.obs[m] = mask[m] > 0 ? p.obs[m] + sig[m] * (float)eps[m] : NAN; /* masked data: never read */
    if (mask[m] > 0) {
      obs_idx[n_o] = m;
      d[n_o] = p.obs[m];
      s2[n_o] = (double)sig[m] * sig[m];
      n_o++;
    }
  }
  p.mask = mask;
  p.noise_map = sig;
  int idx[2] = {0, 2};
  double *dr = malloc(8 * 2 * C * S);
  toy_nuts(&p, 2, idx, C, 300, S, dr);
  double L = p.sc.geom.size_deg * M_PI / 180.0, pn = (n / L) * (n / L), lk[64], pk[64], *A = malloc(8 * 64 * 64);
  double *cosk = malloc(8 * 64 * 64); /* cos(k . offset) */
  for (int k = 0; k < n * n; k++)
    for (int off = 0; off < n * n; off++)
      cosk[k * n * n + off] = cos(2.0 * M_PI * ((double)(k % n) * (off % n) + (double)(k / n) * (off / n)) / n);
  for (int m = 0; m < n * n; m++) {
    int kx = m % n, ky = m / n, fx = kx <= n / 2 ? kx : n - kx, fy = ky <= n / 2 ? ky : n - ky;
    lk[m] = 2.0 * M_PI / L * sqrt((double)fx * fx + (double)fy * fy);
  }
  const int G = 120;
  double *lpg = malloc(8 * G * G), lmax = -INFINITY;
  for (int a = 0; a < G; a++)
    for (int b = 0; b < G; b++) {
      double th[JADE_N_THETA], cl[TOY_NELL], lam[1];
      memcpy(th, p.theta_true, sizeof th);
      th[0] = 1.3 * (a + 0.5) / G;
      th[2] = 0.1 + 1.5 * (b + 0.5) / G;
      toy_fn(&p.ty, th, cl, lam);
      for (int m = 1; m < n * n; m++) pk[m] = jade_cl_interp(TOY_NELL, p.ty.ell, cl, 1, lk[m]) * pn;
      lpg[a * G + b] = jade_prior_logpdf(&p.sc, th) + masked_gaussian_loglike(n, pk, cosk, obs_idx, n_o, d, s2, A);
      lmax = jade_test_max(lmax, lpg[a * G + b]);
    }
  check_grid_moments("masked (18/64), noise map:", lpg, G, lmax, dr, C, S, idx);
  free(A);
  free(cosk);
  free(lpg);
  free(dr);
  toy_free(&p);
}

/* ------------------------------------------------------------ 6. NUTS vs pCN-within-Gibbs */
static void test_nuts_vs_pcn(void) {
  toy_problem p;
  /* lambda = 0.02 ~ kappa rms: a strongly skewed field */
  toy_make(&p, 0.02, 4e-8, 0.01, 8, 41);
  const int C = 4, idx[1] = {2};
  const long S = 1000;
  double *dr = malloc(8 * C * S);
  toy_nuts(&p, 1, idx, C, 300, S, dr);
  /* Independent sampler: Gibbs sweeps of a preconditioned Crank-Nicolson move for z (Cotter,
   * Roberts, Stuart & White 2013: z' = sqrt(1 - b^2) z + b xi keeps N(0, I), accepted with the
   * likelihood ratio) and a random-walk Metropolis move for u = sigma_8's coordinate; values
   * only, no gradients. C chains of T sweeps, thinned by 10. */
  jade_fieldpost_setup fs = {.sc = &p.sc, .n_free = 1, .free_idx = {2}, .kappa_obs = p.obs, .noise = p.noise, .theory = p.th};
  jade_fieldpost *fp;
  CHECK_OK(jade_fieldpost_create(&fs, &fp));
  size_t d = jade_fieldpost_dim(fp), nz = d - 1;
  const long T = 40000, thin = 10, keep = T / thin;
  double *pc = malloc(8 * C * keep), *x = malloc(8 * d), *y = malloc(8 * d), *xi = malloc(8 * nz);
  long acc_z = 0, acc_u = 0;
  for (int c = 0; c < C; c++) {
    CHECK_OK(jade_fieldpost_unconstrain(fp, p.theta_true, x));
    jade_rng_normal_fill(55, 9, (uint64_t)c * nz, nz, x + 1);
    double lp, zz = 0.0;
    CHECK_OK(jade_fieldpost_logp(fp, x, &lp, NULL));
    for (size_t m = 0; m < nz; m++) zz += x[1 + m] * x[1 + m];
    const double b = 0.25, rw = 0.35;
    for (long t = 0; t < 2000 + T; t++) {
      uint64_t st = JADE_STREAM(JADE_RNG_TEST, 1000 + c);
      /* pCN: the acceptance ratio is the likelihood (+ theta prior) ratio = lp + |z|^2/2 */
      jade_rng_normal_fill(99, st, (uint64_t)t * (nz + 4), nz, xi);
      double yz = 0.0;
      y[0] = x[0];
      for (size_t m = 0; m < nz; m++) {
        y[1 + m] = sqrt(1.0 - b * b) * x[1 + m] + b * xi[m];
        yz += y[1 + m] * y[1 + m];
      }
      double ly;
      CHECK_OK(jade_fieldpost_logp(fp, y, &ly, NULL));
      double u1 = jade_rng_uniform(99, st, (uint64_t)t * (nz + 4) + nz);
      if (log(u1) < (ly + 0.5 * yz) - (lp + 0.5 * zz)) {
        memcpy(x, y, 8 * d);
        lp = ly;
        zz = yz;
        acc_z++;
      }
      /* random walk on u */
      memcpy(y, x, 8 * d);
      y[0] += rw * jade_rng_normal(99, st, (uint64_t)t * (nz + 4) + nz + 1);
      CHECK_OK(jade_fieldpost_logp(fp, y, &ly, NULL));
      double u2 = jade_rng_uniform(99, st, (uint64_t)t * (nz + 4) + nz + 2);
      if (log(u2) < ly - lp) {
        memcpy(x, y, 8 * d);
        lp = ly;
        acc_u++;
      }
      if (t >= 2000 && (t - 2000) % thin == 0) {
        double th[JADE_N_THETA];
        jade_fieldpost_theta(fp, x, th);
        pc[(size_t)c * keep + (t - 2000) / thin] = th[2];
      }
    }
  }
  jade_mcmc_summary a, r;
  CHECK_OK(jade_mcmc_summarize(dr, C, S, &a));
  CHECK_OK(jade_mcmc_summarize(pc, C, keep, &r));
  printf("non-Gaussian sigma_8: NUTS %.5f +- %.5f (sd %.5f, ESS %.0f), pCN-Gibbs %.5f +- %.5f (sd %.5f, ESS %.0f, "
         "acceptance z %.2f u %.2f)\n", a.mean, a.mcse_mean, a.sd, a.ess_bulk, r.mean, r.mcse_mean, r.sd, r.ess_bulk,
         (double)acc_z / (C * (T + 2000)), (double)acc_u / (C * (T + 2000)));
  CHECK(jade_test_gt_ok(r.ess_bulk, 200) && jade_test_lt_ok(r.rhat, 1.02), "pCN reference not converged: ESS %.0f R-hat %.3f", r.ess_bulk, r.rhat);
  /* the two estimates within 4.5 combined standard errors (means and sds) */
  CHECK_LT(fabs(a.mean - r.mean), 4.5 * hypot(a.mcse_mean, r.mcse_mean), "non-Gaussian sigma_8 mean: NUTS %.5f, pCN %.5f", a.mean, r.mean);
  CHECK_LT(fabs(a.sd - r.sd), 4.5 * hypot(a.mcse_sd, r.mcse_sd), "non-Gaussian sigma_8 sd: NUTS %.5f, pCN %.5f", a.sd, r.sd);
  jade_fieldpost_free(fp);
  free(pc);
  free(x);
  free(y);
  free(xi);
  free(dr);
  toy_free(&p);
}

/* ------------------------------------------------------------ 7. errors, -inf */
static void test_errors(void) {
  toy_problem p;
  toy_make(&p, 0.05, 4e-8, 0.01, 8, 3);
  jade_fieldpost_setup fs = {.sc = &p.sc, .n_free = 1, .free_idx = {2}, .kappa_obs = p.obs, .noise = p.noise, .theory = p.th};
  jade_fieldpost *fp;
  jade_fieldpost_setup bad = fs;
  bad.n_free = 0;
  CHECK(jade_fieldpost_create(&bad, &fp) == JADE_ERR_INVALID, "n_free = 0 accepted");
  bad = fs;
  bad.n_free = 2;
  bad.free_idx[0] = 3;
  bad.free_idx[1] = 1;
  CHECK(jade_fieldpost_create(&bad, &fp) == JADE_ERR_INVALID, "decreasing free indices accepted");
  double zero = 0.0;
  bad = fs;
  bad.noise = &zero;
  CHECK(jade_fieldpost_create(&bad, &fp) == JADE_ERR_INVALID, "zero noise accepted");
  CHECK(strstr(jade_last_error(), "noise") != NULL, "message does not name the noise: %s", jade_last_error());
  CHECK_OK(jade_fieldpost_create(&fs, &fp));
  size_t d = jade_fieldpost_dim(fp);
  double *x = calloc(d, 8), *g = malloc(8 * d), lp, th[JADE_N_THETA];
  memcpy(th, p.theta_true, sizeof th);
  th[2] = -0.1;
  CHECK_OK(jade_fieldpost_unconstrain(fp, p.theta_true, x));
  CHECK_OK(jade_fieldpost_logp(fp, x, &lp, g));
  CHECK(isfinite(lp), "toy log p not finite");
  /* a huge amplitude (sigma_8 ~ 22) makes correlations below -lambda^2 at some separation
   * (no log-normal field has them): -inf, zero gradient, no error */
  x[0] = 150.0;
  CHECK_OK(jade_fieldpost_logp(fp, x, &lp, g));
  CHECK(lp == -INFINITY && g[0] == 0.0, "outside the model: log p = %g", lp);
  x[0] = NAN;
  CHECK_OK(jade_fieldpost_logp(fp, x, &lp, g));
  CHECK(lp == -INFINITY, "NaN position: log p = %g", lp);
  jade_fieldpost_counters c;
  jade_fieldpost_get_counters(fp, &c);
  CHECK(c.n_outside == 2, "outside count %llu", (unsigned long long)c.n_outside);
  /* unconstrain outside the support names the parameter */
  jade_fieldpost_setup f6 = fs;
  f6.n_free = 1;
  f6.free_idx[0] = 0;
  jade_fieldpost *fo;
  CHECK_OK(jade_fieldpost_create(&f6, &fo));
  th[0] = -0.01;
  CHECK(jade_fieldpost_unconstrain(fo, th, x) == JADE_ERR_INVALID && strstr(jade_last_error(), "Omega_c"),
        "Omega_c < 0 accepted: %s", jade_last_error());
  jade_fieldpost_free(fo);
  /* the map code's errors */
  jade_lngrad *lg;
  jade_map_geometry g3 = {7, 5.0, 1};
  CHECK(jade_lngrad_create(&g3, JADE_LN_VARIANCE_THEORY, &lg) == JADE_ERR_INVALID, "odd n_pix accepted");
  CHECK_OK(jade_lngrad_create(&p.sc.geom, JADE_LN_VARIANCE_THEORY, &lg));
  double cl[TOY_NELL], lam[1] = {-1.0};
  toy_fn(&p.ty, p.theta_true, cl, lam);
  lam[0] = -1.0;
  CHECK(jade_lngrad_prepare(lg, TOY_NELL, p.ty.ell, cl, lam) == JADE_ERR_INVALID, "negative lambda accepted");
  CHECK(jade_lngrad_forward(lg, x, g) == JADE_ERR_INVALID, "forward without prepare accepted");
  lam[0] = 0.05;
  cl[3] = NAN;
  CHECK(jade_lngrad_prepare(lg, TOY_NELL, p.ty.ell, cl, lam) == JADE_ERR_NUMERIC, "NaN C_ell accepted");
  jade_lngrad_free(lg);
  free(x);
  free(g);
  jade_fieldpost_free(fp);
  toy_free(&p);
}

int main(void) {
  double t0 = jade_time_now();
  test_same_map(NULL, 3);
  test_same_map((const char *const[]){"n_pix=16", "n_bins=2", "lognormal_variance=empirical", NULL}, 2);
  printf("same map as the simulator: %.1f s\n", jade_time_now() - t0);
  test_lngrad(16, 3, JADE_LN_VARIANCE_THEORY, 1.0, "16x16, 3 bins, theory variance");
  test_lngrad(8, 2, JADE_LN_VARIANCE_EMPIRICAL, 1.0, "8x8, 2 bins, empirical variance");
  test_lngrad(8, 2, JADE_LN_VARIANCE_THEORY, 1.3, "8x8, 2 bins, clipped eigenvalues");
  test_lngrad(8, 1, JADE_LN_VARIANCE_THEORY, 1.0, "8x8, 1 bin");
  printf("map reverse pass: %.1f s\n", jade_time_now() - t0);
  test_full_gradient();
  printf("full gradient: %.1f s\n", jade_time_now() - t0);
  test_emulator();
  printf("emulator: %.1f s\n", jade_time_now() - t0);
  test_nuts_gaussian_limit();
  printf("NUTS vs exact marginal: %.1f s\n", jade_time_now() - t0);
  test_nuts_masked();
  printf("NUTS vs exact marginal, masked: %.1f s\n", jade_time_now() - t0);
  test_nuts_vs_pcn();
  printf("NUTS vs pCN: %.1f s\n", jade_time_now() - t0);
  test_errors();
  TEST_RETURN();
}
