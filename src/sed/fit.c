/* Per-galaxy SED fitting (pop-cosmos; Thorp et al. 2024 arXiv:2406.19437 Sec. 3, Thorp et al. 2025):
 * priors over phi, the Student-t data model, optimised starts and the batched ensemble fit,
 * and mock photometry through the uncertainty model. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/mcmc.h"
#include "jade/sed.h"

void jade_sed_prior_default(jade_sed_prior *p) {
  memset(p, 0, sizeof *p);
  p->kind = JADE_SED_PRIOR_BOX;
  p->N_lo = 10.0;
  p->N_hi = 25.0;
  jade_pfode_options_default(&p->ode);
  p->ode.batch = 64;
}

jade_status jade_sed_prior_logp(const jade_sed_prior *pr, size_t n, const double *phi, double *lp) {
  if (pr->kind == JADE_SED_PRIOR_BOX) {
    double c = -log(pr->N_hi - pr->N_lo) - 15 * 0.5 * log(2 * M_PI);
    for (size_t i = 0; i < n; i++) {
      const double *p = phi + i * 16;
      double v = c;
      if (!(p[0] >= pr->N_lo && p[0] <= pr->N_hi)) v = -INFINITY;
      for (int j = 1; j < 16; j++) v -= 0.5 * p[j] * p[j];
      lp[i] = isnan(v) ? -INFINITY : v;
    }
    return JADE_OK;
  }
  if (pr->kind == JADE_SED_PRIOR_SURROGATE) {
    if (!pr->surrogate) return jade_error(JADE_ERR_INVALID, "surrogate prior: no surrogate given");
    return jade_sed_surrogate_logp(pr->surrogate, n, phi, lp);
  }
  const jade_sed_score *s = pr->score;
  if (!s || jade_sed_score_get_config(s)->dim != 16)
    return jade_error(JADE_ERR_INVALID, "diffusion prior: a 16-dimensional score model is needed");
  double *x = jade_alloc(n * 16 * sizeof(double) + 8);
  if (!x) return JADE_ERR_NOMEM;
  const double *sh = jade_sed_score_shift((jade_sed_score *)s), *sc = jade_sed_score_scale((jade_sed_score *)s);
  double lsc = 0;
  for (int j = 0; j < 16; j++) lsc += log(sc[j]);
  /* non-finite phi (theta on the box edge): -inf, not integrated */
  size_t m = 0;
  size_t *map = jade_alloc(n * sizeof(size_t) + 8);
  if (!map) {
    free(x);
    return JADE_ERR_NOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    int ok = 1;
    for (int j = 0; j < 16; j++) ok &= isfinite(phi[i * 16 + j]);
    lp[i] = -INFINITY;
    if (!ok) continue;
    for (int j = 0; j < 16; j++) x[m * 16 + j] = (phi[i * 16 + j] - sh[j]) / sc[j];
    map[m++] = i;
  }
  double *l = jade_alloc(m * sizeof(double) + 8);
  jade_sed_score_field_ctx fc = {.score = s, .cond = NULL};
  jade_status st = l ? jade_pfode_logp(&jade_sed_score_get_config(s)->sde, 16, jade_sed_score_field, &fc, m, x,
                                       &pr->ode, l, NULL, NULL)
                     : JADE_ERR_NOMEM;
  if (!st)
    for (size_t k = 0; k < m; k++) lp[map[k]] = l[k] - lsc;
  free(l);
  free(x);
  free(map);
  return st;
}

jade_status jade_sed_prior_sample_phi(const jade_sed_prior *pr, uint64_t seed, uint64_t first_id, size_t n, double *phi) {
  if (pr->kind == JADE_SED_PRIOR_SURROGATE)
    return jade_error(JADE_ERR_INVALID, "prior draws need the diffusion prior itself, not its surrogate");
  jade_status st = JADE_OK;
  for (size_t i = 0; i < n; i++)
    jade_rng_normal_fill(seed, JADE_STREAM(JADE_RNG_PRIOR, first_id + i), 0, 16, phi + i * 16);
  if (pr->kind == JADE_SED_PRIOR_BOX) {
    for (size_t i = 0; i < n; i++)
      phi[i * 16] = pr->N_lo + (pr->N_hi - pr->N_lo) * jade_rng_uniform(seed, JADE_STREAM(JADE_RNG_PRIOR, first_id + i), 1000);
  } else {
    const jade_sed_score *s = pr->score;
    const jade_sde *sde = &jade_sed_score_get_config(s)->sde;
    double ps = jade_sde_prior_std(sde);
    for (size_t q = 0; q < n * 16; q++) phi[q] *= ps;
    double *x = jade_alloc(n * 16 * sizeof(double) + 8);
    jade_sed_score_field_ctx fc = {.score = s, .cond = NULL};
    st = x ? jade_pfode_sample(sde, 16, jade_sed_score_field, &fc, n, phi, &pr->ode, x, NULL) : JADE_ERR_NOMEM;
    if (!st) {
      const double *sh = jade_sed_score_shift((jade_sed_score *)s), *sc = jade_sed_score_scale((jade_sed_score *)s);
      for (size_t i = 0; i < n; i++)
        for (int j = 0; j < 16; j++) phi[i * 16 + j] = x[i * 16 + j] * sc[j] + sh[j];
    }
    free(x);
  }
  return st;
}

jade_status jade_sed_prior_sample(const jade_sed_prior *pr, uint64_t seed, uint64_t first_id, size_t n, double *theta) {
  double *phi = jade_alloc(n * 16 * sizeof(double) + 8);
  if (!phi) return JADE_ERR_NOMEM;
  jade_status st = jade_sed_prior_sample_phi(pr, seed, first_id, n, phi);
  if (!st)
    for (size_t i = 0; i < n; i++) jade_sed_phi_to_theta(phi + i * 16, theta + i * 16);
  free(phi);
  return st;
}

/* ---- data model (Thorp et al. 2024, Sec. 3.2; pop-cosmos: Student-t nu = 2) ---- */
void jade_sed_data_model_default(jade_sed_data_model *m, int n_bands) {
  memset(m, 0, sizeof *m);
  m->n_bands = n_bands;
  for (int b = 0; b < JADE_SED_MAX_BANDS; b++) m->zp[b] = 1.0;
  m->error_floor = 0.0;
  m->nu = 2.0;
}

double jade_sed_loglike(const jade_sed_data_model *m, const double *f_model, const double *f_obs, const double *sigma) {
  double nu = m->nu, c = lgamma(0.5 * (nu + 1)) - lgamma(0.5 * nu) - 0.5 * log(nu * M_PI), L = 0;
  for (int b = 0; b < m->n_bands; b++) {
    if (!(sigma[b] > 0) || !isfinite(sigma[b]) || !isfinite(f_obs[b])) continue;
    double fm = m->zp[b] * f_model[b], fl = m->error_floor * fm;
    double s = sqrt(sigma[b] * sigma[b] + fl * fl), r = (f_obs[b] - fm) / s;
    L += c - log(s) - 0.5 * (nu + 1) * log1p(r * r / nu);
  }
  return isnan(L) ? -INFINITY : L;
}

/* log posterior of phi for galaxies g[i]; seconds in the prior / likelihood added to tp, tl */
/* log prior + beta x log likelihood (beta = 1: the posterior; < 1: tempered, for annealing) */
static jade_status post_eval(const jade_sed_posterior *P, size_t n, const size_t *g, const double *phi, double *lp,
                             double *tp, double *tl, double beta) {
  int nb = jade_sed_photulator_n_bands(P->phot);
  double *th = jade_alloc(n * 16 * sizeof(double) + 8), *mag = jade_alloc(n * (size_t)nb * sizeof(double) + 8);
  double *lpr = jade_alloc(n * sizeof(double) + 8);
  jade_status st = th && mag && lpr ? JADE_OK : JADE_ERR_NOMEM;
  double t0 = jade_time_now();
  if (!st) st = jade_sed_prior_logp(P->prior, n, phi, lpr);
  double t1 = jade_time_now();
  if (!st) {
    for (size_t i = 0; i < n; i++) jade_sed_phi_to_theta(phi + i * 16, th + i * 16);
    st = jade_sed_photulator_mags_prec(P->phot, P->emu, th, n, mag, NULL);
  }
  if (!st)
    for (size_t i = 0; i < n; i++) {
      double f[JADE_SED_MAX_BANDS];
      if (!(lpr[i] > -INFINITY)) {
        lp[i] = -INFINITY;
        continue;
      }
      for (int b = 0; b < nb; b++) f[b] = jade_sed_mag_to_flux(mag[i * nb + b]);
      lp[i] = lpr[i] + beta * jade_sed_loglike(&P->dm, f, P->flux + g[i] * nb, P->sigma + g[i] * nb);
    }
  if (tp) *tp += t1 - t0;
  if (tl) *tl += jade_time_now() - t1;
  free(th);
  free(mag);
  free(lpr);
  return st;
}

/* Student-t of band b (as in jade_sed_loglike): L_b = c - log s - (nu + 1)/2 log(1 + r^2/nu),
 * f = zp 10^(-0.4 m), s^2 = sigma^2 + (floor f)^2, r = (f_obs - f)/s; returns L_b (0 for a
 * missing band) and writes dL_b / d m to dL_dm. */
static double band_loglike(const jade_sed_data_model *dm, int b, double mag, double fo, double so, double *dL_dm) {
  *dL_dm = 0;
  if (!(so > 0) || !isfinite(so) || !isfinite(fo)) return 0;
  double nu = dm->nu, c = lgamma(0.5 * (nu + 1)) - lgamma(0.5 * nu) - 0.5 * log(nu * M_PI);
  double fm = dm->zp[b] * jade_sed_mag_to_flux(mag), fl = dm->error_floor;
  double s = sqrt(so * so + fl * fl * fm * fm), r = (fo - fm) / s;
  double ds = fl * fl * fm / s, dr = -1.0 / s - r * ds / s;
  double dL = -ds / s - (nu + 1) * (r / nu) / (1 + r * r / nu) * dr; /* dL_b / d fm */
  *dL_dm = dL * fm * (-0.4 * M_LN10);
  return c - log(s) - 0.5 * (nu + 1) * log1p(r * r / nu);
}

jade_status jade_sed_posterior_logp_grad(const jade_sed_posterior *P, size_t g, const double *phi, double *lp,
                                         double *grad) {
  int nb = jade_sed_photulator_n_bands(P->phot);
  double lpr, gpr[16] = {0};
  jade_status st;
  memset(grad, 0, 16 * sizeof(double));
  if (P->prior->kind == JADE_SED_PRIOR_BOX) {
    st = jade_sed_prior_logp(P->prior, 1, phi, &lpr);
    for (int j = 1; j < 16; j++) gpr[j] = -phi[j]; /* N(0, 1) on phi_1..15; N uniform */
  } else if (P->prior->kind == JADE_SED_PRIOR_SURROGATE && P->prior->surrogate) {
    int fin = 1;
    for (int j = 0; j < 16; j++) fin &= isfinite(phi[j]);
    lpr = -INFINITY;
    st = fin ? jade_sed_surrogate_grad(P->prior->surrogate, 1, phi, &lpr, gpr) : JADE_OK;
  } else {
    return jade_error(JADE_ERR_INVALID, "sed posterior gradient: needs the box or a surrogate prior");
  }
  if (st) return st;
  if (!(lpr > -INFINITY)) {
    *lp = -INFINITY;
    return JADE_OK;
  }
  double th[16], mag[JADE_SED_MAX_BANDS], *J = jade_alloc((size_t)nb * 16 * sizeof(double));
  if (!J) return JADE_ERR_NOMEM;
  jade_sed_phi_to_theta(phi, th);
  if ((st = jade_sed_photulator_jacobian(P->phot, th, mag, J))) {
    free(J);
    return st;
  }
  const double *fo = P->flux + g * nb, *so = P->sigma + g * nb;
  double f[JADE_SED_MAX_BANDS], gth[16] = {0};
  for (int b = 0; b < nb; b++) f[b] = jade_sed_mag_to_flux(mag[b]);
  double ll = jade_sed_loglike(&P->dm, f, fo, so);
  for (int b = 0; b < nb; b++) {
    double gm;
    band_loglike(&P->dm, b, mag[b], fo[b], so[b], &gm);
    for (int j = 0; j < 16; j++) gth[j] += gm * J[b * 16 + j];
  }
  free(J);
  /* theta_j = lo + (hi - lo) Phi(phi_j) for j >= 1 (jade_sed_phi_to_theta) */
  double lo[16], hi[16];
  jade_sed_param_bounds(lo, hi);
  grad[0] = gth[0] + gpr[0];
  for (int j = 1; j < 16; j++)
    grad[j] = gth[j] * (hi[j] - lo[j]) * exp(-0.5 * phi[j] * phi[j]) / sqrt(2 * M_PI) + gpr[j];
  *lp = lpr + ll;
  if (!(*lp > -INFINITY) || isnan(*lp)) {
    *lp = -INFINITY;
    memset(grad, 0, 16 * sizeof(double));
  }
  return JADE_OK;
}

jade_status jade_sed_posterior_logp(void *ctx, size_t n, const size_t *gal, const double *phi, double *lp) {
  return post_eval(ctx, n, gal, phi, lp, NULL, NULL, 1.0);
}

void jade_sed_fit_options_default(jade_sed_fit_options *o) {
  jade_ens_options_default(&o->ens);
  /* mixed moves and adaptive burn-in (docs/sed.md "Sampler"): half DE (10% of them mode hops),
   * burn-in until >= 10 tau_max, capped at 3000 iterations */
  o->ens.p_de = 0.5;
  o->ens.burn_tau = 10.0;
  o->ens.n_burn = 3000;
  o->n_init = 512;
  o->n_opt = 300;
  o->n_lm = 40;
  o->n_starts = 6;
  o->mode_nats = 4.0;
  o->ball = 0.5;
  o->block = 16;
  o->check_prior = NULL;
  o->check_draws = 64;
  o->emulators = JADE_SED_EMU_F32;
  o->anneal_stages = 0;
  o->anneal_iters = 50;
  o->anneal_beta0 = 0.01;
  o->sampler = JADE_SED_SAMPLER_ENSEMBLE;
  o->hmc_leapfrog = 16;
  o->hmc_temps = 1;
  o->hmc_beta_min = 0.1;
  o->hmc_swap_every = 1;
  o->hmc_ridge_every = 1;
  o->hmc_dense_metric = 0;
  o->smc_mutations = 4;
  o->smc_ess = 0.5;
  o->smc_broad = 0.2;
  o->smc_reference = JADE_SED_SMC_REF_PRIOR;
  o->smc_rounds = 1;
  o->smc_runs = 1;
  o->verbose = 0;
}

typedef struct {
  const jade_sed_posterior *post;
  double t_prior, t_like;
  size_t g0;   /* first galaxy of the block */
  double beta; /* likelihood temperature (1; < 1 while annealing) */
} block_ctx;

/* the posterior of the galaxies of one block (local indices), timing prior and likelihood */
static jade_status block_logp(void *ctx, size_t n, const size_t *gal, const double *phi, double *lp) {
  block_ctx *b = ctx;
  size_t *g = jade_alloc(n * sizeof(size_t) + 8);
  if (!g) return JADE_ERR_NOMEM;
  for (size_t i = 0; i < n; i++) g[i] = gal[i] + b->g0;
  jade_status st = post_eval(b->post, n, g, phi, lp, &b->t_prior, &b->t_like, b->beta);
  free(g);
  return st;
}

#define MAX_STARTS 32


/* Levenberg-Marquardt on the posterior (Gauss-Newton with iteratively reweighted residuals for
 * the Student-t: w_b = (nu + 1)/(nu + r_b^2), Lange, Little & Taylor 1989 JASA 84:881; the box
 * prior's N(0, 1) terms on phi_1..15 as extra residuals): A = sum_b w_b a_b a_b^T + P,
 * g = sum_b w_b r_b a_b - P phi, a_b = d f_b/d phi / s_b by forward differences (h below), step
 * (A + lambda diag A)^-1 g, accepted if the log posterior rises (Marquardt 1963). n_lm
 * iterations on the n points xo (galaxy gi[r] of the block), then L[r] = chol(A) at the final
 * point (the Laplace precision; zero matrix if not positive definite). fix_z: phi_15 (redshift)
 * stays where it is (a conditional optimum; the leading 15 x 15 block of L is then the
 * conditional precision's factor). */
static jade_status lm_refine(block_ctx *bc, size_t n, const size_t *gi, int n_lm, int fix_z, double *xo, double *lo,
                             double *L) {
  const jade_sed_posterior *P = bc->post;
  int nb = jade_sed_photulator_n_bands(P->phot);
  /* forward-difference step: float64 emulators resolve 1e-6; float32 ones carry ~4e-6 mag of
   * rounding (tests/test_sed_popcosmos.c), so their step is 3e-3, where rounding and truncation
   * (~h x curvature) errors of the Jacobian are both ~1e-3 relative for well-measured directions */
  int f32 = P->emu != JADE_SED_EMU_F64;
  const double h = f32 ? 3e-3 : 1e-6;
  size_t m = n * 17;
  double *ph = jade_alloc(m * 16 * sizeof(double)), *th = jade_alloc(m * 16 * sizeof(double));
  double *mag = jade_alloc(m * (size_t)nb * sizeof(double)), *lam = jade_alloc(n * sizeof(double));
  double *y = jade_alloc(n * 16 * sizeof(double)), *ly = jade_alloc(n * sizeof(double));
  jade_status st = ph && th && mag && lam && y && ly ? JADE_OK : JADE_ERR_NOMEM;
  for (size_t r = 0; r < n && !st; r++) lam[r] = 1e-3;
  int box = P->prior->kind == JADE_SED_PRIOR_BOX;
  for (int it = 0; it <= n_lm && !st; it++) {
    for (size_t r = 0; r < n; r++)
      for (int k = 0; k < 17; k++) {
        double *q = ph + (r * 17 + k) * 16;
        memcpy(q, xo + r * 16, 16 * sizeof(double));
        if (k) q[k - 1] += h;
      }
    for (size_t i = 0; i < m; i++) jade_sed_phi_to_theta(ph + i * 16, th + i * 16);
    double t0 = jade_time_now();
    if ((st = jade_sed_photulator_mags_prec(P->phot, P->emu, th, m, mag, NULL))) break;
    bc->t_like += jade_time_now() - t0;
    for (size_t r = 0; r < n; r++) {
      size_t g = bc->g0 + gi[r];
      const double *fo = P->flux + g * nb, *so = P->sigma + g * nb, *x = xo + r * 16;
      double A[256] = {0}, gr[16] = {0};
      for (int b = 0; b < nb; b++) {
        if (!(so[b] > 0) || !isfinite(so[b]) || !isfinite(fo[b])) continue;
        double f0 = P->dm.zp[b] * jade_sed_mag_to_flux(mag[(r * 17) * nb + b]), fl = P->dm.error_floor * f0;
        double sb = sqrt(so[b] * so[b] + fl * fl), rb = (fo[b] - f0) / sb, w = (P->dm.nu + 1) / (P->dm.nu + rb * rb);
        double a[16];
        for (int j = 0; j < 16; j++)
          a[j] = (P->dm.zp[b] * jade_sed_mag_to_flux(mag[(r * 17 + 1 + j) * nb + b]) - f0) / (h * sb);
        for (int i = 0; i < 16; i++) {
          gr[i] += w * rb * a[i];
          for (int j = 0; j <= i; j++) A[i * 16 + j] += w * a[i] * a[j];
        }
      }
      for (int i = 1; i < 16; i++) {
        A[i * 16 + i] += 1.0; /* N(0, 1) prior on phi_1..15 (an approximation for a diffusion prior) */
        gr[i] -= x[i];
      }
      for (int i = 0; i < 16; i++)
        for (int j = 0; j < i; j++) A[j * 16 + i] = A[i * 16 + j];
      if (it == n_lm) {
        if (jade_cholesky(16, A, L + r * 256)) memset(L + r * 256, 0, 256 * sizeof(double));
        continue;
      }
      double B[256], C[256], v[16];
      memcpy(B, A, sizeof B);
      for (int i = 0; i < 16; i++) B[i * 16 + i] *= 1 + lam[r];
      if (fix_z) { /* the step solves the 15 x 15 system: row and column 15 of the identity */
        for (int i = 0; i < 16; i++) B[i * 16 + 15] = B[15 * 16 + i] = 0;
        B[255] = 1;
        gr[15] = 0;
      }
      int bad = jade_cholesky(16, B, C);
      /* solve C C^T d = g */
      for (int i = 0; i < 16 && !bad; i++) {
        double t = gr[i];
        for (int k = 0; k < i; k++) t -= C[i * 16 + k] * v[k];
        v[i] = t / C[i * 16 + i];
      }
      for (int i = 15; i >= 0 && !bad; i--) {
        double t = v[i];
        for (int k = i + 1; k < 16; k++) t -= C[k * 16 + i] * v[k];
        v[i] = t / C[i * 16 + i];
      }
      for (int j = 0; j < 16; j++) y[r * 16 + j] = bad ? x[j] : x[j] + v[j];
      if (box) y[r * 16] = fmin(P->prior->N_hi - 1e-9, fmax(P->prior->N_lo + 1e-9, y[r * 16]));
    }
    if (it == n_lm) break;
    if ((st = block_logp(bc, n, gi, y, ly))) break;
    for (size_t r = 0; r < n; r++) {
      if (ly[r] > lo[r]) {
        lo[r] = ly[r];
        memcpy(xo + r * 16, y + r * 16, 16 * sizeof(double));
        lam[r] = fmax(1e-7, lam[r] / 3);
      } else {
        lam[r] = fmin(1e7, lam[r] * 4);
      }
    }
  }
  free(ph);
  free(th);
  free(mag);
  free(lam);
  free(y);
  free(ly);
  return st;
}

/* For each of the n population candidates (theta cand_th, absolute magnitudes cand_abs): N by
 * weighted least squares of the flux scale against the galaxy's fluxes fo (errors so), and the
 * log likelihood of the scaled candidate, into Nc and Lc. */
static void cand_scale_fit(const jade_sed_posterior *P, int nb, int n, const double *cand_th, const double *cand_abs,
                           const double *fo, const double *so, double *Lc, double *Nc) {
  for (int c = 0; c < n; c++) {
    double f0[JADE_SED_MAX_BANDS], sxy = 0, sxx = 0;
    for (int b = 0; b < nb; b++) {
      f0[b] = jade_sed_mag_to_flux(cand_abs[(size_t)c * nb + b]) * P->dm.zp[b];
      if (!(so[b] > 0) || !isfinite(fo[b])) continue;
      sxy += fo[b] * f0[b] / (so[b] * so[b]);
      sxx += f0[b] * f0[b] / (so[b] * so[b]);
    }
    double A = sxx > 0 ? sxy / sxx : 0, N = A > 0 ? -2.5 * log10(A) : cand_th[(size_t)c * 16];
    double fm[JADE_SED_MAX_BANDS], sN = pow(10.0, -0.4 * N);
    for (int b = 0; b < nb; b++) fm[b] = jade_sed_mag_to_flux(cand_abs[(size_t)c * nb + b]) * sN;
    Lc[c] = jade_sed_loglike(&P->dm, fm, fo, so);
    Nc[c] = N;
  }
}

/* phi of population candidate c with its fitted N, kept strictly inside the box */
static void cand_phi(const double *cand_th, int c, double N, double *x) {
  double th[16];
  memcpy(th, cand_th + (size_t)c * 16, sizeof th);
  th[0] = N;
  jade_sed_theta_to_phi(th, x);
  for (int j = 1; j < 16; j++)
    if (!isfinite(x[j])) x[j] = x[j] > 0 ? 6.0 : -6.0;
}

/* Starts (multi-start optimisation): n_init population draws (absolute magnitudes shared by all
 * galaxies); for each galaxy N is fitted in closed form (weighted least squares of the flux
 * scale), and the n_starts best candidates by likelihood whose redshifts differ by > 0.05 (1 + z)
 * are each improved by hill climbing on the full posterior (a (1+1) evolution strategy with the
 * 1/5th-success step rule, Rechenberg 1973), then by Levenberg-Marquardt (lm_refine). Outputs per galaxy and start s (index g * K + s):
 * the optimum xo, its log posterior lo and the final step. */
static jade_status fit_starts(block_ctx *bc, size_t ng, const jade_sed_fit_options *o, const double *cand_th,
                              const double *cand_abs, double *xo, double *lo, double *stp, double *Lap) {
  const jade_sed_posterior *P = bc->post;
  int nb = jade_sed_photulator_n_bands(P->phot), K = o->n_starts;
  double *Lc = jade_alloc((size_t)o->n_init * sizeof(double)), *Nc = jade_alloc((size_t)o->n_init * sizeof(double));
  size_t n = ng * (size_t)K;
  size_t *gi = jade_alloc(n * sizeof(size_t));
  double *y = jade_alloc(n * 16 * sizeof(double)), *ly = jade_alloc(n * sizeof(double));
  jade_status st = Lc && Nc && gi && y && ly ? JADE_OK : JADE_ERR_NOMEM;
  for (size_t g = 0; g < ng && !st; g++) {
    const double *fo = P->flux + (bc->g0 + g) * nb, *so = P->sigma + (bc->g0 + g) * nb;
    cand_scale_fit(P, nb, o->n_init, cand_th, cand_abs, fo, so, Lc, Nc);
    /* greedy: the best remaining candidate whose z is apart from those already picked (ties and
     * order by index: deterministic); if fewer distinct redshifts exist, the next best overall */
    int pick[MAX_STARTS], np = 0;
    for (int pass = 0; pass < 2 && np < K; pass++)
      while (np < K) {
        int bi = -1;
        for (int c = 0; c < o->n_init; c++) {
          int ok = bi < 0 || Lc[c] > Lc[bi];
          for (int q = 0; q < np && ok; q++) {
            double zc = cand_th[(size_t)c * 16 + 15], zq = cand_th[(size_t)pick[q] * 16 + 15];
            ok = c != pick[q] && (pass || fabs(zc - zq) > 0.05 * (1 + zq));
          }
          if (ok) bi = c;
        }
        if (bi < 0) break;
        pick[np++] = bi;
      }
    for (int s = 0; s < K; s++) {
      int c = pick[s < np ? s : 0];
      cand_phi(cand_th, c, Nc[c], xo + (g * K + s) * 16);
      gi[g * K + s] = g;
      stp[g * K + s] = 0.3;
    }
  }
  if (!st) st = block_logp(bc, n, gi, xo, lo);
  for (int it = 0; it < o->n_opt && !st; it++) {
    for (size_t g = 0; g < ng; g++) {
      uint64_t stream = JADE_STREAM(JADE_RNG_MCMC, o->ens.first_id + bc->g0 + g);
      for (int s = 0; s < K; s++) {
        double e[16];
        size_t r = g * K + s;
        jade_rng_normal_fill(o->ens.seed, stream, ((uint64_t)1 << 50) + ((uint64_t)it * MAX_STARTS + s) * 16, 16, e);
        for (int j = 0; j < 16; j++) y[r * 16 + j] = xo[r * 16 + j] + stp[r] * e[j];
      }
    }
    if ((st = block_logp(bc, n, gi, y, ly))) break;
    for (size_t r = 0; r < n; r++) {
      if (ly[r] > lo[r]) {
        lo[r] = ly[r];
        memcpy(xo + r * 16, y + r * 16, 16 * sizeof(double));
        stp[r] = fmin(2.0, stp[r] * 1.5);
      } else {
        stp[r] = fmax(1e-4, stp[r] * 0.85);
      }
    }
  }
  if (!st) st = lm_refine(bc, n, gi, o->n_lm, 0, xo, lo, Lap);
  free(Lc);
  free(Nc);
  free(gi);
  free(y);
  free(ly);
  return st;
}

/* The SMC's prior reference needs no optimiser: per galaxy, start s = 0 is the population
 * candidate of best likelihood with N fitted in closed form (cand_scale_fit), its log posterior
 * in lo; the other starts are copies with lo = -inf (unused). Lap is zeroed. */
static jade_status prior_ref_starts(block_ctx *bc, size_t ng, const jade_sed_fit_options *o, const double *cand_th,
                                    const double *cand_abs, double *xo, double *lo, double *Lap) {
  const jade_sed_posterior *P = bc->post;
  int nb = jade_sed_photulator_n_bands(P->phot), K = o->n_starts;
  double *Lc = jade_alloc((size_t)o->n_init * sizeof(double)), *Nc = jade_alloc((size_t)o->n_init * sizeof(double));
  size_t *gi = jade_alloc(ng * sizeof(size_t) + 8);
  double *x1 = jade_alloc(ng * 16 * sizeof(double) + 8), *l1 = jade_alloc(ng * sizeof(double) + 8);
  jade_status st = Lc && Nc && gi && x1 && l1 ? JADE_OK : JADE_ERR_NOMEM;
  for (size_t g = 0; g < ng && !st; g++) {
    const double *fo = P->flux + (bc->g0 + g) * nb, *so = P->sigma + (bc->g0 + g) * nb;
    cand_scale_fit(P, nb, o->n_init, cand_th, cand_abs, fo, so, Lc, Nc);
    int bi = 0;
    for (int c = 1; c < o->n_init; c++)
      if (Lc[c] > Lc[bi]) bi = c;
    cand_phi(cand_th, bi, Nc[bi], x1 + g * 16);
    gi[g] = g;
  }
  if (!st) st = block_logp(bc, ng, gi, x1, l1);
  for (size_t g = 0; g < ng && !st; g++)
    for (int s = 0; s < K; s++) {
      memcpy(xo + (g * K + s) * 16, x1 + g * 16, 16 * sizeof(double));
      lo[g * K + s] = s ? -INFINITY : l1[g];
      memset(Lap + (g * K + s) * 256, 0, 256 * sizeof(double));
    }
  free(Lc);
  free(Nc);
  free(gi);
  free(x1);
  free(l1);
  return st;
}

/* Ridge moves of the HMC (jade_hmc_ridge): photometric-redshift posteriors are long, thin ridges
 * in z (a galaxy at z 1.8 and at z 3.4 fits the same fluxes with other dust, age and N) with
 * bumps along them, which HMC does not cross. The profile: RIDGE_G nodes uniform in
 * phi_15 = probit(z / 6) over [-3, 3] (z in [0.008, 5.992]); q's cell weights 0.8 from the
 * profile's Laplace marginal p(z, psi*) |A_psi|^-1/2, 0.2 uniform. */
#define RIDGE_G 64
#define RIDGE_PHI 3.0
static double ridge_phi(int k) { return -RIDGE_PHI + 2 * RIDGE_PHI * k / (RIDGE_G - 1); }

/* The redshift profile of each galaxy of the block for the HMC's ridge moves: node k starts from
 * the optimum of fit_starts nearest in z and the RIDGE_STARTS - 1 population candidates of best
 * likelihood (N fitted) within its cell of phi_15 (the best overall when the cell has too few),
 * each moved to the node's redshift, then Levenberg-Marquardt at fixed z (RIDGE_LM iterations),
 * keeping the best; then RIDGE_SWEEPS sweeps up and down, each node also started from its
 * neighbour's optimum (RIDGE_LM_SWEEP iterations), keeping the better.
 * node: ng x RIDGE_G x 16, lq: ng x RIDGE_G (jade_hmc_ridge's layout, z in phi_15). Translations
 * only: the Gauss-Newton precisions made affine maps worse (acceptance 0.4-5% against 1-14%). */
#define RIDGE_LM 15
#define RIDGE_LM_SWEEP 6
#define RIDGE_STARTS 3
#define RIDGE_SWEEPS 2
static jade_status ridge_profile_fit(block_ctx *bc, size_t ng, const jade_sed_fit_options *o, const double *cand_th,
                                     const double *cand_abs, const double *xb, const double *lb, double *node,
                                     double *lq) {
  const jade_sed_posterior *P = bc->post;
  int nb = jade_sed_photulator_n_bands(P->phot), G = RIDGE_G, S = RIDGE_STARTS, K = o->n_starts;
  size_t n = ng * (size_t)G * S;
  double *x = jade_alloc(n * 16 * sizeof(double)), *lo = jade_alloc(n * sizeof(double));
  double *L = jade_alloc(n * 256 * sizeof(double)), *Lc = jade_alloc((size_t)o->n_init * sizeof(double));
  double *Nc = jade_alloc((size_t)o->n_init * sizeof(double)), *cp = jade_alloc((size_t)o->n_init * sizeof(double));
  double *y = jade_alloc(ng * 16 * sizeof(double)), *ly = jade_alloc(ng * sizeof(double)), *Ly = jade_alloc(ng * 256 * sizeof(double));
  size_t *gi = jade_alloc(n * sizeof(size_t));
  jade_status st = x && lo && L && Lc && Nc && cp && y && ly && Ly && gi ? JADE_OK : JADE_ERR_NOMEM;
  for (int c = 0; c < o->n_init && !st; c++) {
    double ph[16];
    jade_sed_theta_to_phi(cand_th + (size_t)c * 16, ph);
    cp[c] = ph[15];
  }
  for (size_t g = 0; g < ng && !st; g++) {
    const double *fo = P->flux + (bc->g0 + g) * nb, *so = P->sigma + (bc->g0 + g) * nb;
    cand_scale_fit(P, nb, o->n_init, cand_th, cand_abs, fo, so, Lc, Nc);
    for (int k = 0; k < G; k++) {
      /* starts: the optimum of fit_starts nearest in z, then the best candidates of the cell
       * (the best overall when the cell has too few) */
      int pick[RIDGE_STARTS], np = 0;
      for (int s = 0; s + 1 < S; s++) {
        int best = -1;
        for (int pass = 0; pass < 2 && best < 0; pass++)
          for (int c = 0; c < o->n_init; c++) {
            int ok = pass || fabs(cp[c] - ridge_phi(k)) < RIDGE_PHI / (RIDGE_G - 1);
            for (int q = 0; q < np && ok; q++) ok = c != pick[q];
            if (ok && (best < 0 || Lc[c] > Lc[best])) best = c;
          }
        pick[np++] = best;
      }
      int kb = 0;
      for (int s = 1; s < K; s++)
        if (isfinite(lb[g * K + s]) &&
            (fabs(xb[(g * K + s) * 16 + 15] - ridge_phi(k)) < fabs(xb[(g * K + kb) * 16 + 15] - ridge_phi(k)) ||
             !isfinite(lb[g * K + kb])))
          kb = s;
      for (int s = 0; s < S; s++) {
        double *xk = x + ((g * G + k) * S + s) * 16;
        if (s == 0) {
          memcpy(xk, xb + (g * K + kb) * 16, 16 * sizeof(double));
        } else {
          double th[16];
          int c = pick[s - 1];
          memcpy(th, cand_th + (size_t)c * 16, sizeof th);
          th[0] = fmin(P->prior->N_hi - 1e-6, fmax(P->prior->N_lo + 1e-6, Nc[c]));
          jade_sed_theta_to_phi(th, xk);
          for (int j = 1; j < 15; j++)
            if (!isfinite(xk[j])) xk[j] = xk[j] > 0 ? 6.0 : -6.0;
        }
        xk[15] = ridge_phi(k);
        gi[(g * G + k) * S + s] = g;
      }
    }
  }
  if (!st) st = block_logp(bc, n, gi, x, lo);
  if (!st) st = lm_refine(bc, n, gi, RIDGE_LM, 1, x, lo, L);
  /* the best start of each node into slot 0 */
  for (size_t r = 0; r < ng * (size_t)G && !st; r++) {
    int bs = 0;
    for (int s = 1; s < S; s++)
      if (lo[r * S + s] > lo[r * S + bs]) bs = s;
    memmove(x + r * 16, x + (r * S + bs) * 16, 16 * sizeof(double));
    memmove(L + r * 256, L + (r * S + bs) * 256, 256 * sizeof(double));
    lo[r] = lo[r * S + bs];
  }
  for (int pass = 0; pass < 2 * RIDGE_SWEEPS && !st; pass++)
    for (int s = 1; s < G && !st; s++) {
      int k = pass % 2 ? G - 1 - s : s, kn = pass % 2 ? k + 1 : k - 1;
      for (size_t g = 0; g < ng; g++) {
        memcpy(y + g * 16, x + (g * G + kn) * 16, 16 * sizeof(double));
        y[g * 16 + 15] = ridge_phi(k);
        gi[g] = g;
      }
      if ((st = block_logp(bc, ng, gi, y, ly))) break;
      if ((st = lm_refine(bc, ng, gi, RIDGE_LM_SWEEP, 1, y, ly, Ly))) break;
      for (size_t g = 0; g < ng; g++)
        if (ly[g] > lo[g * G + k] || !(lo[g * G + k] > -INFINITY)) {
          lo[g * G + k] = ly[g];
          memcpy(x + (g * G + k) * 16, y + g * 16, 16 * sizeof(double));
          memcpy(L + (g * G + k) * 256, Ly + g * 256, 256 * sizeof(double));
        }
    }
  for (size_t g = 0; g < ng && !st; g++) {
    /* cell weights: 0.8 x the Laplace marginal p(z, psi*) |A_psi|^-1/2 (a node without a positive
     * definite conditional precision counts as its profile value alone), 0.2 uniform; density per
     * unit phi_15 */
    double m[RIDGE_G], top = -INFINITY, tot = 0, h = 2 * RIDGE_PHI / (RIDGE_G - 1);
    for (int k = 0; k < G; k++) {
      const double *Lk = L + (g * G + k) * 256;
      memcpy(node + (g * G + k) * 16, x + (g * G + k) * 16, 16 * sizeof(double));
      m[k] = lo[g * G + k];
      for (int j = 0; j < 15 && Lk[0] > 0; j++) m[k] -= log(Lk[j * 16 + j]);
      if (!isfinite(m[k])) m[k] = -INFINITY;
      top = fmax(top, m[k]);
    }
    for (int k = 0; k < G; k++) tot += isfinite(top) ? exp(m[k] - top) : 0;
    for (int k = 0; k < G; k++)
      lq[g * G + k] = log(((tot > 0 ? 0.8 * exp(m[k] - top) / tot : 0.8 / G) + 0.2 / G) / h);
  }
  free(x);
  free(lo);
  free(L);
  free(Lc);
  free(Nc);
  free(cp);
  free(y);
  free(ly);
  free(Ly);
  free(gi);
  return st;
}

/* Walkers from the optima of one galaxy (K of them at xo, log posterior lo, final ES step stp,
 * Laplace precision factors Lap = chol(A) from lm_refine): distinct optima (redshifts apart by
 * > 0.02 (1 + z)) get the Laplace weight log p - sum_j log L_jj (log of p(mode) sqrt(det A^-1));
 * those within mode_nats of the best share the W walkers in proportion to their weights (>= 2
 * each, in both half-ensembles); walker w starts at mode + ball L^-T e, a draw from the Laplace
 * approximation N(mode, A^-1) shrunk by ball (a diagonal ball of sigma = min(ball, step) if A
 * was not positive definite). x0: W x 16; n_modes: the optima used. */
static void init_walkers(size_t gid, const jade_sed_fit_options *o, const double *xo, const double *lo, const double *stp,
                         const double *Lap, double *x0, int *n_modes) {
  int K = o->n_starts, W = o->ens.n_walkers;
  int ord[MAX_STARTS], keep[MAX_STARTS], nk = 0;
  for (int s = 0; s < K; s++) ord[s] = s;
  for (int a = 1; a < K; a++) /* insertion sort by log posterior, descending (stable) */
    for (int b = a; b > 0 && lo[ord[b]] > lo[ord[b - 1]]; b--) {
      int t = ord[b];
      ord[b] = ord[b - 1];
      ord[b - 1] = t;
    }
  for (int a = 0; a < K; a++) {
    int s = ord[a], ok = isfinite(lo[s]);
    double th[16], tq[16];
    jade_sed_phi_to_theta(xo + s * 16, th);
    for (int q = 0; q < nk && ok; q++) {
      jade_sed_phi_to_theta(xo + keep[q] * 16, tq);
      ok = fabs(th[15] - tq[15]) > 0.02 * (1 + tq[15]);
    }
    if (ok || a == 0) keep[nk++] = s;
  }
  double lw[MAX_STARTS], best = -INFINITY;
  int lap[MAX_STARTS], bm = 0;
  for (int m = 0; m < nk; m++) {
    const double *L = Lap + (size_t)keep[m] * 256;
    lap[m] = L[0] > 0;
    lw[m] = lo[keep[m]];
    for (int j = 0; j < 16; j++) lw[m] -= lap[m] ? log(L[j * 16 + j]) : -log(stp[keep[m]]);
    if (lw[m] > lw[bm] || m == 0) bm = m;
    best = fmax(best, lw[m]);
  }
  /* walker shares: W exp(lw - best) / sum over modes within mode_nats, at least 2 (one per half)
   * for a kept mode, the rest to the best mode */
  double tot = 0;
  for (int m = 0; m < nk; m++) tot += lw[m] >= best - o->mode_nats ? exp(lw[m] - best) : 0;
  int cnt[MAX_STARTS] = {0}, used = 0;
  for (int m = 0; m < nk; m++) {
    if (m == bm || !isfinite(best) || !(lw[m] >= best - o->mode_nats)) continue; /* no finite mode: all at bm */
    int c = 2 * (int)floor(0.5 * W * exp(lw[m] - best) / tot);
    if (c < 2) c = 2;
    if (used + c > W - 2) c = 0;
    cnt[m] = c;
    used += c;
  }
  cnt[bm] += W - used;
  int H = W / 2, nm = 0;
  for (int m = 0; m < nk; m++) nm += cnt[m] > 0;
  *n_modes = nm;
  /* walker w sits at position p = 2 (w mod H) + w / H in the interleaved order of the two halves */
  for (int w = 0; w < W; w++) {
    int p = 2 * (w % H) + w / H, m = 0, cum = cnt[0];
    while (p >= cum) cum += cnt[++m];
    double e[16], u[16];
    jade_rng_normal_fill(o->ens.seed, JADE_STREAM(JADE_RNG_MCMC, gid), ((uint64_t)1 << 51) + (uint64_t)w * 16, 16, e);
    const double *L = Lap + (size_t)keep[m] * 256, *xm = xo + keep[m] * 16;
    if (lap[m]) {
      for (int i = 15; i >= 0; i--) { /* L^T u = e */
        double t = e[i];
        for (int k = i + 1; k < 16; k++) t -= L[k * 16 + i] * u[k];
        u[i] = t / L[i * 16 + i];
      }
      for (int j = 0; j < 16; j++) x0[w * 16 + j] = xm[j] + o->ball * u[j];
    } else {
      for (int j = 0; j < 16; j++) x0[w * 16 + j] = xm[j] + fmin(o->ball, stp[keep[m]]) * e[j];
    }
  }
}

/* Quantiles, autocorrelation times and sampler statistics of galaxy g0 + g (chain c: nk x W x
 * 16 in phi) into S and, when chain != NULL, its float32 chain of theta and log10 M*; th, col, mf:
 * work of nk W points. */
static jade_status summarise_galaxy(const jade_sed_mass *mass, const jade_ens_options *eo, size_t nk, const double *c,
                                    float *chain, jade_sed_summary *S, double *th, double *col, double *mf) {
  size_t W = (size_t)eo->n_walkers, nkw = nk * W;
  for (size_t i = 0; i < nkw; i++) jade_sed_phi_to_theta(c + i * 16, th + i * 16);
  if (mass) {
    jade_status st = jade_sed_mass_frac(mass, th, nkw, mf);
    if (st) return st;
  }
  for (int j = 0; j < JADE_SED_NQ; j++) {
    for (size_t i = 0; i < nkw; i++) col[i] = j < 16 ? th[i * 16 + j] : (mass ? jade_sed_log10_mass(th + i * 16, mf[i]) : NAN);
    if (chain)
      for (size_t i = 0; i < nkw; i++) chain[i * JADE_SED_NQ + j] = (float)col[i];
    double probs[5] = {0.025, 0.15865525393145707, 0.5, 0.8413447460685429, 0.975};
    double q[5] = {NAN, NAN, NAN, NAN, NAN};
    int finite = 1;
    for (size_t i = 0; i < nkw; i++) finite &= isfinite(col[i]);
    if (finite) jade_mcmc_quantiles(col, nkw, probs, 5, q);
    S->lo95[j] = q[0];
    S->lo68[j] = q[1];
    S->median[j] = q[2];
    S->hi68[j] = q[3];
    S->hi95[j] = q[4];
  }
  for (int j = 0; j < 16; j++) S->tau[j] = jade_ens_autocorr_time(c + j, nk, (int)W, 16, 5.0) * eo->thin;
  /* R-hat of z and log10 M* over the W chains (col: x[w nk + s], free work now) */
  S->rhat = NAN;
  for (int j = 15; j < 17 && nk >= 4 && (j == 15 || mass); j++) {
    for (size_t s = 0; s < nk; s++)
      for (size_t w = 0; w < W; w++) {
        size_t i = s * W + w;
        col[w * nk + s] = j == 15 ? th[i * 16 + 15] : jade_sed_log10_mass(th + i * 16, mf[i]);
      }
    double r = NAN;
    jade_status st = jade_mcmc_rhat(col, (int)W, nk, &r);
    if (st) return st;
    S->rhat = isnan(S->rhat) ? r : fmax(S->rhat, r);
  }
  return JADE_OK;
}

/* weighted minus unweighted mean of v (n) in units of its sd */
static double weighted_shift(const double *v, const double *w, size_t n) {
  double m = 0, m2 = 0, mw = 0, sw = 0;
  for (size_t i = 0; i < n; i++) {
    m += v[i] / (double)n;
    mw += w[i] * v[i];
    sw += w[i];
  }
  for (size_t i = 0; i < n; i++) m2 += (v[i] - m) * (v[i] - m) / (double)(n - 1);
  return m2 > 0 ? (mw / sw - m) / sqrt(m2) : 0.0;
}

/* The check of the prior fitted with (a surrogate) against o->check_prior on o->check_draws
 * evenly spaced chain points of each of the ng galaxies of a block (chains ch: ng x nkw x 16 in
 * phi): importance weights, their effective sample size and the shifts of the z and log10 M*
 * means (jade_sed_summary). */
static jade_status prior_check(const jade_sed_posterior *post, const jade_sed_mass *mass, const jade_sed_fit_options *o,
                               size_t ng, size_t nkw, const double *ch, jade_sed_summary *summ) {
  size_t K = (size_t)o->check_draws, n = ng * K;
  if (K < 2 || !nkw) return JADE_OK;
  double *phi = jade_alloc(n * 16 * sizeof(double)), *th = jade_alloc(n * 16 * sizeof(double));
  double *lu = jade_alloc(n * sizeof(double)), *le = jade_alloc(n * sizeof(double));
  double *mf = jade_alloc(n * sizeof(double)), *w = jade_alloc(K * sizeof(double)), *v = jade_alloc(K * sizeof(double));
  jade_status st = phi && th && lu && le && mf && w && v ? JADE_OK : JADE_ERR_NOMEM;
  for (size_t g = 0; g < ng && !st; g++)
    for (size_t k = 0; k < K; k++) {
      size_t i = (size_t)(((double)k + 0.5) * (double)nkw / (double)K);
      memcpy(phi + (g * K + k) * 16, ch + (g * nkw + i) * 16, 16 * sizeof(double));
      jade_sed_phi_to_theta(phi + (g * K + k) * 16, th + (g * K + k) * 16);
    }
  if (!st) st = jade_sed_prior_logp(post->prior, n, phi, lu);
  if (!st) st = jade_sed_prior_logp(o->check_prior, n, phi, le);
  if (!st && mass) st = jade_sed_mass_frac(mass, th, n, mf);
  for (size_t g = 0; g < ng && !st; g++) {
    double mx = -INFINITY, s1 = 0, s2 = 0;
    for (size_t k = 0; k < K; k++) mx = fmax(mx, le[g * K + k] - lu[g * K + k]);
    for (size_t k = 0; k < K; k++) {
      w[k] = isfinite(mx) ? exp(le[g * K + k] - lu[g * K + k] - mx) : 0;
      s1 += w[k];
      s2 += w[k] * w[k];
    }
    jade_sed_summary *S = &summ[g];
    S->check_ess = s2 > 0 ? s1 * s1 / s2 / (double)K : 0;
    for (size_t k = 0; k < K; k++) v[k] = th[(g * K + k) * 16 + 15];
    S->check_dz = s1 > 0 ? weighted_shift(v, w, K) : NAN;
    for (size_t k = 0; k < K && mass; k++) v[k] = jade_sed_log10_mass(th + (g * K + k) * 16, mf[g * K + k]);
    S->check_dm = s1 > 0 && mass ? weighted_shift(v, w, K) : NAN;
  }
  free(phi);
  free(th);
  free(lu);
  free(le);
  free(mf);
  free(w);
  free(v);
  return st;
}

/* Annealing before the burn-in (a global search: the walkers leave the optimiser's modes when
 * the likelihood is flattened, and settle again as it sharpens): stages k = 0..S-1 target
 * prior x likelihood^beta_k, beta_k = beta_0^(1 - k/S) (geometric, as in parallel tempering,
 * Vousden et al. 2016 MNRAS 455:1919), each anneal_iters ensemble iterations from the previous
 * stage's final walkers, with its own Philox seed. x0 (ng x W x 16) is replaced by the last
 * stage's walkers; work: ng x W x 16 doubles. */
static jade_status anneal(block_ctx *bc, size_t ng, const jade_sed_fit_options *o, const jade_ens_options *eo,
                          double *x0, double *work) {
  int W = eo->n_walkers, S = o->anneal_stages;
  jade_status st = JADE_OK;
  for (int k = 0; k < S && !st; k++) {
    jade_ens_options ea = *eo;
    ea.n_burn = 0;
    ea.burn_tau = 0;
    ea.n_steps = o->anneal_iters;
    ea.thin = o->anneal_iters; /* keep only the last iteration */
    ea.seed = eo->seed ^ (0xa22ea1ull * (uint64_t)(k + 1));
    bc->beta = pow(o->anneal_beta0, 1.0 - (double)k / S);
    st = jade_ens_run_stats(block_logp, bc, ng, 16, x0, &ea, work, NULL, NULL);
    if (!st) memcpy(x0, work, ng * (size_t)W * 16 * sizeof(double));
  }
  bc->beta = 1.0;
  return st;
}

typedef struct {
  const jade_sed_posterior *P;
  const size_t *gal; /* galaxy of each point (global index) */
  double *ll;        /* log likelihood per point, accumulated band by band */
} seed_ctx;

/* jade_sed_mag_seed_fn of the likelihood: dL_b / d m_b per point, L_b added to ll */
static void like_seed(void *ctx, int b, size_t i0, size_t m, const double *mag_b, double *dmag) {
  const seed_ctx *sc = ctx;
  int nb = jade_sed_photulator_n_bands(sc->P->phot);
  for (size_t i = 0; i < m; i++) {
    size_t g = sc->gal[i0 + i];
    sc->ll[i0 + i] += band_loglike(&sc->P->dm, b, mag_b[i], sc->P->flux[g * nb + b], sc->P->sigma[g * nb + b], dmag + i);
  }
}

/* batched log prior and log likelihood and their gradients d/d phi, separately (float32
 * emulators through the batched vector-Jacobian product, phi -> theta, the prior); a point
 * outside the support gets lpr = -inf and zero gradients */
static jade_status post_grad_parts(const jade_sed_posterior *P, size_t n, const size_t *gal, const double *phi,
                                   double *lpr, double *ll, double *gpr, double *gll) {
  double *th = jade_alloc(n * 16 * sizeof(double) + 8), *gth = jade_alloc(n * 16 * sizeof(double) + 8);
  jade_status st = th && gth ? JADE_OK : JADE_ERR_NOMEM;
  memset(ll, 0, n * sizeof(double));
  memset(gpr, 0, n * 16 * sizeof(double));
  if (!st && P->prior->kind == JADE_SED_PRIOR_BOX) {
    st = jade_sed_prior_logp(P->prior, n, phi, lpr);
    for (size_t i = 0; i < n; i++)
      for (int j = 1; j < 16; j++) gpr[i * 16 + j] = -phi[i * 16 + j];
  } else if (!st && P->prior->kind == JADE_SED_PRIOR_SURROGATE && P->prior->surrogate) {
    st = jade_sed_surrogate_grad(P->prior->surrogate, n, phi, lpr, gpr);
  } else if (!st) {
    st = jade_error(JADE_ERR_INVALID, "sed posterior gradient: needs the box or a surrogate prior");
  }
  for (size_t i = 0; i < n && !st; i++) jade_sed_phi_to_theta(phi + i * 16, th + i * 16);
  seed_ctx sc = {.P = P, .gal = gal, .ll = ll};
  if (!st) st = jade_sed_photulator_vjp_prec(P->phot, P->emu, th, n, like_seed, &sc, NULL, gth);
  double lo[16], hi[16];
  jade_sed_param_bounds(lo, hi);
  for (size_t i = 0; i < n && !st; i++) {
    const double *x = phi + i * 16;
    double *g = gll + i * 16;
    g[0] = gth[i * 16];
    for (int j = 1; j < 16; j++) g[j] = gth[i * 16 + j] * (hi[j] - lo[j]) * exp(-0.5 * x[j] * x[j]) / sqrt(2 * M_PI);
    int fin = lpr[i] > -INFINITY && !isnan(lpr[i]) && isfinite(ll[i]);
    for (int j = 0; j < 16 && fin; j++) fin = isfinite(g[j]) && isfinite(gpr[i * 16 + j]);
    if (!fin) {
      lpr[i] = -INFINITY;
      ll[i] = 0;
      memset(g, 0, 16 * sizeof(double));
      memset(gpr + i * 16, 0, 16 * sizeof(double));
    }
  }
  free(th);
  free(gth);
  return st;
}

/* log prior + beta[i] x log likelihood and its gradient from the parts (beta NULL: 1) */
static void combine_parts(size_t n, const double *beta, const double *lpr, const double *ll, const double *gpr,
                          const double *gll, double *lp, double *grad) {
  for (size_t i = 0; i < n; i++) {
    double b = beta ? beta[i] : 1.0;
    lp[i] = lpr[i] > -INFINITY ? lpr[i] + b * ll[i] : -INFINITY;
    for (int j = 0; j < 16; j++) grad[i * 16 + j] = gpr[i * 16 + j] + b * gll[i * 16 + j];
  }
}

/* the posterior and its gradient, float32 emulators */
static jade_status post_grad_f32(const jade_sed_posterior *P, size_t n, const size_t *gal, const double *phi,
                                 double *lp, double *grad) {
  double *lpr = jade_alloc(n * sizeof(double) + 8), *ll = jade_alloc(n * sizeof(double) + 8);
  double *gpr = jade_alloc(n * 16 * sizeof(double) + 8), *gll = jade_alloc(n * 16 * sizeof(double) + 8);
  jade_status st = lpr && ll && gpr && gll ? JADE_OK : JADE_ERR_NOMEM;
  if (!st) st = post_grad_parts(P, n, gal, phi, lpr, ll, gpr, gll);
  if (!st) combine_parts(n, NULL, lpr, ll, gpr, gll, lp, grad);
  free(lpr);
  free(ll);
  free(gpr);
  free(gll);
  return st;
}

/* Parallel tempering over the lockstep HMC: problem p = g T + k is galaxy g at inverse
 * temperature beta[k] (target prior x likelihood^beta_k; beta_0 = 1). */
typedef struct {
  block_ctx *bc;
  int T;
  const double *beta;
  uint64_t seed, first_id;
  long every;                    /* iterations between exchanges */
  long *n_swap_try, *n_swap_acc; /* per galaxy, the (0, 1) pair */
} pt_ctx;

static jade_status pt_parts(pt_ctx *pc, size_t n, const size_t *prob, const double *phi, double *lpr, double *ll,
                            double *gpr, double *gll) {
  size_t *g = jade_alloc(n * sizeof(size_t) + 8);
  if (!g) return JADE_ERR_NOMEM;
  for (size_t i = 0; i < n; i++) g[i] = pc->bc->g0 + prob[i] / (size_t)pc->T;
  double t0 = jade_time_now();
  jade_status st = post_grad_parts(pc->bc->post, n, g, phi, lpr, ll, gpr, gll);
  pc->bc->t_like += jade_time_now() - t0;
  free(g);
  return st;
}

static jade_status pt_grad(void *ctx, size_t n, const size_t *prob, const double *phi, double *lp, double *grad) {
  pt_ctx *pc = ctx;
  double *lpr = jade_alloc(n * sizeof(double) + 8), *ll = jade_alloc(n * sizeof(double) + 8);
  double *gpr = jade_alloc(n * 16 * sizeof(double) + 8), *gll = jade_alloc(n * 16 * sizeof(double) + 8);
  double *b = jade_alloc(n * sizeof(double) + 8);
  jade_status st = lpr && ll && gpr && gll && b ? JADE_OK : JADE_ERR_NOMEM;
  if (!st) st = pt_parts(pc, n, prob, phi, lpr, ll, gpr, gll);
  for (size_t i = 0; i < n; i++) b[i] = pc->beta[prob[i] % (size_t)pc->T];
  if (!st) combine_parts(n, b, lpr, ll, gpr, gll, lp, grad);
  free(lpr);
  free(ll);
  free(gpr);
  free(gll);
  free(b);
  return st;
}

/* replica exchange (Swendsen & Wang 1986; Earl & Deem 2005): chain c of temperatures k and k + 1
 * (k of one parity, alternating between calls) swap positions with probability
 * min(1, exp((beta_k - beta_{k+1}) (ll_{k+1} - ll_k))); then every chain's log density and
 * gradient at its (new) temperature */
static jade_status pt_swap(void *ctx, long it, size_t n_prob, int C, int d, double *X, double *LPX, double *G) {
  pt_ctx *pc = ctx;
  int T = pc->T;
  size_t n = n_prob * (size_t)C, ng = n_prob / (size_t)T;
  double *lpr = jade_alloc(n * sizeof(double)), *ll = jade_alloc(n * sizeof(double));
  double *gpr = jade_alloc(n * 16 * sizeof(double)), *gll = jade_alloc(n * 16 * sizeof(double));
  double *b = jade_alloc(n * sizeof(double)), tmp[16];
  size_t *prob = jade_alloc(n * sizeof(size_t));
  jade_status st = lpr && ll && gpr && gll && b && prob && d == 16 ? JADE_OK : JADE_ERR_NOMEM;
  for (size_t i = 0; i < n && !st; i++) prob[i] = i / (size_t)C;
  if (!st) st = pt_parts(pc, n, prob, X, lpr, ll, gpr, gll);
  int parity = (int)((it / pc->every) % 2);
  for (size_t g = 0; g < ng && !st; g++) {
    uint64_t stream = JADE_STREAM(JADE_RNG_MCMC, pc->first_id + g);
    for (int k = parity; k + 1 < T; k += 2)
      for (int c = 0; c < C; c++) {
        size_t i = (g * T + k) * (size_t)C + c, j = (g * T + k + 1) * (size_t)C + c;
        double la = (pc->beta[k] - pc->beta[k + 1]) * (ll[j] - ll[i]);
        int ok = lpr[i] > -INFINITY && lpr[j] > -INFINITY &&
                 log(jade_rng_uniform(pc->seed, stream, ((uint64_t)3 << 54) + ((uint64_t)it * T + k) * C + c)) < la;
        if (k == 0) {
          pc->n_swap_try[g]++;
          pc->n_swap_acc[g] += ok;
        }
        if (!ok) continue;
        memcpy(tmp, X + i * 16, sizeof tmp);
        memcpy(X + i * 16, X + j * 16, sizeof tmp);
        memcpy(X + j * 16, tmp, sizeof tmp);
        double t = lpr[i];
        lpr[i] = lpr[j];
        lpr[j] = t;
        t = ll[i];
        ll[i] = ll[j];
        ll[j] = t;
        for (int q = 0; q < 16; q++) {
          t = gpr[i * 16 + q];
          gpr[i * 16 + q] = gpr[j * 16 + q];
          gpr[j * 16 + q] = t;
          t = gll[i * 16 + q];
          gll[i * 16 + q] = gll[j * 16 + q];
          gll[j * 16 + q] = t;
        }
      }
  }
  for (size_t i = 0; i < n; i++) b[i] = pc->beta[(i / (size_t)C) % (size_t)T];
  if (!st) combine_parts(n, b, lpr, ll, gpr, gll, LPX, G);
  free(lpr);
  free(ll);
  free(gpr);
  free(gll);
  free(b);
  free(prob);
  return st;
}

/* batched gradient of the block's posterior for jade_hmc_run: float32 emulators through the
 * batched vector-Jacobian product, or float64 (one point per thread, exact reverse mode) */
static jade_status block_grad(void *ctx, size_t n, const size_t *gal, const double *phi, double *lp, double *grad) {
  block_ctx *b = ctx;
  int fail = 0;
  double t0 = jade_time_now();
  if (b->post->emu != JADE_SED_EMU_F64) {
    size_t *g = jade_alloc(n * sizeof(size_t) + 8);
    if (!g) return JADE_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) g[i] = gal[i] + b->g0;
    jade_status st = post_grad_f32(b->post, n, g, phi, lp, grad);
    free(g);
    b->t_like += jade_time_now() - t0;
    return st;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t i = 0; i < n; i++) {
    if (jade_sed_posterior_logp_grad(b->post, b->g0 + gal[i], phi + i * 16, lp + i, grad + i * 16)) {
#pragma omp atomic write
      fail = 1;
    }
  }
  b->t_like += jade_time_now() - t0;
  return fail ? jade_error(JADE_ERR_NUMERIC, "sed fit: posterior gradient failed") : JADE_OK;
}

/* The block's chains by HMC (o->sampler == HMC): W = ens.n_walkers chains per galaxy from the
 * walkers' starts x0, ens.n_burn warm-up and ens.n_steps kept iterations (thinned by ens.thin
 * into ch), o->hmc_leapfrog steps per transition, the initial inverse mass the diagonal of the
 * best optimum's Laplace covariance A^-1 (A = L L^T). */
static jade_status hmc_block(block_ctx *bc, size_t ng, const jade_sed_fit_options *o, const jade_ens_options *eo,
                             double *x0, const double *xb, const double *lb, const double *lap, double *ch,
                             jade_ens_stats *es, const double *rnode, const double *rlq, double *ridge_acc) {
  int W = eo->n_walkers, K = o->n_starts, T = o->hmc_temps;
  size_t nk = (size_t)(eo->n_steps / eo->thin), np = ng * (size_t)T;
  jade_hmc_options ho;
  jade_hmc_options_default(&ho);
  ho.n_chains = W;
  ho.n_warmup = eo->n_burn;
  ho.n_steps = eo->n_steps;
  ho.n_leapfrog = o->hmc_leapfrog;
  ho.dense_metric = o->hmc_dense_metric;
  ho.seed = eo->seed;
  ho.first_id = eo->first_id * (uint64_t)T; /* problem g T + k: its own Philox stream */
  double *minv = jade_alloc(np * 16 * sizeof(double)), *xt = jade_alloc(np * W * 16 * sizeof(double));
  double *full = jade_alloc(np * (size_t)eo->n_steps * W * 16 * sizeof(double)), *beta = jade_alloc(T * sizeof(double));
  jade_hmc_stats *hs = jade_alloc(np * sizeof(jade_hmc_stats));
  double *l0 = jade_alloc(ng * W * sizeof(double));
  size_t *gi = jade_alloc(ng * W * sizeof(size_t));
  long *ntry = jade_calloc(ng, sizeof(long)), *nacc = jade_calloc(ng, sizeof(long));
  jade_status st = minv && xt && full && beta && hs && l0 && gi && ntry && nacc ? JADE_OK : JADE_ERR_NOMEM;
  /* beta_k = beta_min^(k / (T - 1)): a geometric ladder from 1 */
  for (int k = 0; k < T && !st; k++) beta[k] = T > 1 ? pow(o->hmc_beta_min, (double)k / (T - 1)) : 1.0;
  for (size_t i = 0; i < ng * W && !st; i++) gi[i] = i / W;
  if (!st) st = block_logp(bc, ng * W, gi, x0, l0);
  for (size_t g = 0; g < ng && !st; g++) {
    int best = 0;
    for (int k = 1; k < K; k++)
      if (lb[g * K + k] > lb[g * K + best]) best = k;
    /* a start outside the posterior's support (the walkers' Laplace ball can leave the box of
     * N) restarts at the best optimum */
    for (int w = 0; w < W; w++)
      if (!(l0[g * W + w] > -INFINITY)) memcpy(x0 + (g * W + w) * 16, xb + (g * K + best) * 16, 16 * sizeof(double));
    const double *L = lap + (g * K + best) * 256;
    double mv[16];
    for (int j = 0; j < 16; j++) {
      /* (A^-1)_jj = |L^-1 e_j|^2: forward substitution for column j */
      double v[16] = {0}, s2 = 0;
      for (int i = j; i < 16 && L[0] > 0; i++) {
        double t = i == j ? 1.0 : 0.0;
        for (int k = j; k < i; k++) t -= L[i * 16 + k] * v[k];
        v[i] = t / L[i * 16 + i];
        s2 += v[i] * v[i];
      }
      mv[j] = L[0] > 0 && isfinite(s2) ? fmin(10.0, fmax(1e-8, s2)) : 1.0;
    }
    /* every temperature starts from the galaxy's walkers, with the Laplace mass widened by 1/beta */
    for (int k = 0; k < T; k++) {
      memcpy(xt + (g * T + k) * W * 16, x0 + g * W * 16, (size_t)W * 16 * sizeof(double));
      for (int j = 0; j < 16; j++) minv[(g * T + k) * 16 + j] = fmin(10.0, mv[j] / beta[k]);
    }
  }
  pt_ctx pc = {.bc = bc, .T = T, .beta = beta, .seed = eo->seed, .first_id = eo->first_id, .every = o->hmc_swap_every,
               .n_swap_try = ntry, .n_swap_acc = nacc};
  if (T > 1) {
    ho.hook = pt_swap;
    ho.hook_ctx = &pc;
    ho.hook_every = o->hmc_swap_every;
  }
  /* ridge moves along the redshift profile, every temperature of a galaxy on its profile */
  jade_hmc_ridge ridge = {.coord = 15, .n_nodes = RIDGE_G, .lo = -RIDGE_PHI, .hi = RIDGE_PHI, .per_profile = (size_t)T,
                          .node = rnode, .lq = rlq, .chol = NULL};
  if (rnode) {
    ho.ridge = &ridge;
    ho.ridge_every = o->hmc_ridge_every;
  }
  if (!st) st = T > 1 ? jade_hmc_run(pt_grad, &pc, np, 16, xt, minv, &ho, full, hs)
                      : jade_hmc_run(block_grad, bc, ng, 16, xt, minv, &ho, full, hs);
  for (size_t g = 0; g < ng && !st; g++) {
    size_t p = g * T; /* beta = 1 */
    for (size_t k = 0; k < nk; k++)
      memcpy(ch + ((g * nk + k) * W) * 16, full + ((p * eo->n_steps + (k + 1) * eo->thin - 1) * W) * 16,
             (size_t)W * 16 * sizeof(double));
    es[g].accept = hs[p].accept;
    ridge_acc[g] = hs[p].ridge_accept;
    es[g].accept_stretch = es[g].accept_de = NAN;
    /* with tempering: the exchange rate of the (beta 1, beta_1) pair in the hop column */
    es[g].accept_hop = T > 1 && ntry[g] ? (double)nacc[g] / ntry[g] : NAN;
    es[g].n_burn = eo->n_burn;
    es[g].tau_burn = NAN;
  }
  free(minv);
  free(xt);
  free(full);
  free(beta);
  free(hs);
  free(l0);
  free(gi);
  free(ntry);
  free(nacc);
  return st;
}

/* ---- SMC (o->sampler == SMC) ------------------------------------------------------------ */
/* The reference q of a galaxy for jade_smc_run: a Gaussian mixture with components (a) at the
 * distinct optima of fit_starts (redshifts apart by > 0.02 (1 + z)), covariance SMC_INFLATE^2
 * A^-1 (A the Laplace precision; 0.1^2 I where A was not positive definite), weights half in
 * proportion to the Laplace weights p(mode) |A|^-1/2, half uniform (so every optimum gets
 * particles whatever its Laplace weight); and, with a redshift profile, (b) at its nodes, the
 * best optimum's covariance with h^2 added to the redshift variance (h the node spacing, so the
 * components overlap along the ridge), weights the profile's cell probabilities; (a) and (b)
 * half each; and (c), weight o->smc_broad (the rest scaled down), a broad component: N(0, I) in
 * phi_1..15 (the box prior itself) and N ~ N(N of the best optimum, 1 mag^2), which lets the
 * tempering find modes the optimiser missed. q only has to cover the posterior: the tempering
 * corrects the weights. */
#define SMC_INFLATE 1.5
#define SMC_PRIOR_N_SD 2.0 /* mag: the prior reference's spread of N around the best candidate's */
#define SMC_MAXC (MAX_STARTS + RIDGE_G + 1)
typedef struct {
  int n;                         /* components */
  double lw[SMC_MAXC];           /* log weights (normalised) */
  double m[SMC_MAXC][16];        /* means */
  double C[SMC_MAXC][256];       /* lower Cholesky factors of the covariances */
  double ldet[SMC_MAXC];         /* sum_j log C_jj */
} smc_ref;

/* covariance factor C (C C^T = SMC_INFLATE^2 A^-1 + add_z e_15 e_15^T) from the precision factor L */
static int smc_cov_factor(const double *L, double add_z, double *C) {
  double Li[256] = {0}, S[256];
  if (!(L[0] > 0)) {
    memset(C, 0, 256 * sizeof(double));
    for (int j = 0; j < 16; j++) C[j * 17] = j == 15 ? sqrt(0.01 + add_z) : 0.1;
    return 0;
  }
  for (int j = 0; j < 16; j++) /* Li = L^-1 (lower), column j by forward substitution */
    for (int i = j; i < 16; i++) {
      double t = i == j ? 1.0 : 0.0;
      for (int k = j; k < i; k++) t -= L[i * 16 + k] * Li[k * 16 + j];
      Li[i * 16 + j] = t / L[i * 16 + i];
    }
  for (int r = 0; r < 16; r++) /* A^-1 = Li^T Li */
    for (int c = 0; c <= r; c++) {
      double t = 0;
      for (int k = r; k < 16; k++) t += Li[k * 16 + r] * Li[k * 16 + c];
      S[r * 16 + c] = S[c * 16 + r] = SMC_INFLATE * SMC_INFLATE * t + (r == 15 && c == 15 ? add_z : 0);
    }
  return jade_cholesky(16, S, C);
}

static void smc_ref_build(const jade_sed_fit_options *o, const double *xo, const double *lo, const double *Lap,
                          const double *node, const double *lq, smc_ref *q, int *n_modes) {
  if (o->smc_reference == JADE_SED_SMC_REF_PRIOR) {
    /* the broad component alone: N(0, I) in phi_1..15, N ~ N(N of start 0, SMC_PRIOR_N_SD^2) */
    q->n = 1;
    q->lw[0] = 0;
    memset(q->m[0], 0, sizeof q->m[0]);
    q->m[0][0] = xo[0];
    memset(q->C[0], 0, sizeof q->C[0]);
    for (int j = 0; j < 16; j++) q->C[0][j * 17] = j ? 1.0 : SMC_PRIOR_N_SD;
    q->ldet[0] = log(SMC_PRIOR_N_SD);
    *n_modes = 1;
    return;
  }
  int K = o->n_starts, keep[MAX_STARTS], nk = 0, best = -1;
  double lwa[MAX_STARTS];
  for (int s = 0; s < K; s++) {
    int ok = isfinite(lo[s]);
    double th[16], tq[16];
    jade_sed_phi_to_theta(xo + s * 16, th);
    for (int r = 0; r < nk && ok; r++) { /* a duplicate: keep the better of the two */
      jade_sed_phi_to_theta(xo + keep[r] * 16, tq);
      if (fabs(th[15] - tq[15]) <= 0.02 * (1 + tq[15])) {
        if (lo[s] > lo[keep[r]]) keep[r] = s;
        ok = 0;
      }
    }
    if (ok) keep[nk++] = s;
  }
  if (nk == 0) keep[nk++] = 0; /* no finite optimum: the first start */
  q->n = 0;
  double top = -INFINITY;
  for (int r = 0; r < nk; r++) {
    const double *L = Lap + (size_t)keep[r] * 256;
    lwa[r] = isfinite(lo[keep[r]]) ? lo[keep[r]] : 0;
    for (int j = 0; j < 16 && L[0] > 0; j++) lwa[r] -= log(L[j * 17]);
    if (lwa[r] > top) top = lwa[r], best = keep[r];
  }
  double sa = 0;
  for (int r = 0; r < nk; r++) sa += exp(lwa[r] - top);
  double fa = node ? 0.5 : 1.0;
  for (int r = 0; r < nk; r++) {
    int c = q->n++;
    memcpy(q->m[c], xo + keep[r] * 16, sizeof q->m[c]);
    if (smc_cov_factor(Lap + (size_t)keep[r] * 256, 0, q->C[c])) smc_cov_factor((const double[256]){0}, 0, q->C[c]);
    q->lw[c] = log(fa * (0.5 * exp(lwa[r] - top) / sa + 0.5 / nk));
  }
  *n_modes = nk;
  if (node) {
    double h = 2 * RIDGE_PHI / (RIDGE_G - 1), Cb[256];
    if (smc_cov_factor(Lap + (size_t)best * 256, h * h, Cb)) smc_cov_factor((const double[256]){0}, h * h, Cb);
    for (int k = 0; k < RIDGE_G; k++) {
      int c = q->n++;
      memcpy(q->m[c], node + k * 16, sizeof q->m[c]);
      q->m[c][15] = ridge_phi(k);
      memcpy(q->C[c], Cb, sizeof Cb);
      q->lw[c] = log(0.5) + lq[k] + log(h); /* the cells' probabilities sum to 1 */
    }
  }
  if (o->smc_broad > 0) {
    for (int c = 0; c < q->n; c++) q->lw[c] += log1p(-o->smc_broad);
    int c = q->n++;
    memset(q->m[c], 0, sizeof q->m[c]);
    q->m[c][0] = xo[best * 16];
    memset(q->C[c], 0, sizeof q->C[c]);
    for (int j = 0; j < 16; j++) q->C[c][j * 17] = 1.0;
    q->lw[c] = log(o->smc_broad);
  }
  for (int c = 0; c < q->n; c++) {
    q->ldet[c] = 0;
    for (int j = 0; j < 16; j++) q->ldet[c] += log(q->C[c][j * 17]);
  }
}

/* log q(x) and its gradient */
static double smc_ref_logp(const smc_ref *q, const double *x, double *grad) {
  double lc[SMC_MAXC], v[SMC_MAXC][16], top = -INFINITY;
  for (int c = 0; c < q->n; c++) {
    const double *C = q->C[c];
    double u[16], r2 = 0;
    for (int i = 0; i < 16; i++) { /* C u = x - m */
      double t = x[i] - q->m[c][i];
      for (int k = 0; k < i; k++) t -= C[i * 16 + k] * u[k];
      u[i] = t / C[i * 17];
      r2 += u[i] * u[i];
    }
    for (int i = 15; i >= 0; i--) { /* C^T v = u: v = Sigma^-1 (x - m) */
      double t = u[i];
      for (int k = i + 1; k < 16; k++) t -= C[k * 16 + i] * v[c][k];
      v[c][i] = t / C[i * 17];
    }
    lc[c] = q->lw[c] - 0.5 * r2 - q->ldet[c] - 8 * log(2 * M_PI);
    top = fmax(top, lc[c]);
  }
  double s = 0;
  for (int j = 0; j < 16; j++) grad[j] = 0;
  for (int c = 0; c < q->n; c++) {
    double w = exp(lc[c] - top);
    s += w;
    for (int j = 0; j < 16; j++) grad[j] -= w * v[c][j];
  }
  for (int j = 0; j < 16; j++) grad[j] /= s;
  return top + log(s);
}

/* N draws from q of galaxy gid (Philox: its MCMC stream, counters 2^52 + 32 i) */
static void smc_ref_draw(const smc_ref *q, uint64_t seed, uint64_t gid, int N, double *x) {
  uint64_t stream = JADE_STREAM(JADE_RNG_MCMC, gid);
  for (int i = 0; i < N; i++) {
    double e[16], cum = 0, u = jade_rng_uniform(seed, stream, ((uint64_t)1 << 52) + (uint64_t)i * 32 + 20);
    jade_rng_normal_fill(seed, stream, ((uint64_t)1 << 52) + (uint64_t)i * 32, 16, e);
    int c = 0;
    for (; c < q->n - 1; c++) {
      cum += exp(q->lw[c]);
      if (u < cum) break;
    }
    for (int r = 0; r < 16; r++) {
      double t = q->m[c][r];
      for (int k = 0; k <= r; k++) t += q->C[c][r * 16 + k] * e[k];
      x[i * 16 + r] = t;
    }
  }
}

typedef struct {
  block_ctx *bc;
  const smc_ref *q; /* per galaxy of the block */
  int runs;         /* problems per galaxy: problem p is run p % runs of galaxy p / runs */
} smc_ctx;

static jade_status smc_parts(void *ctx, size_t n, const size_t *prob, const double *x, double *lq, double *lpi,
                             double *gq, double *gpi) {
  smc_ctx *sc = ctx;
  size_t *gal = jade_alloc(n * sizeof(size_t) + 8);
  if (!gal) return JADE_ERR_NOMEM;
  for (size_t i = 0; i < n; i++) gal[i] = prob[i] / (size_t)sc->runs;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) lq[i] = smc_ref_logp(&sc->q[gal[i]], x + i * 16, gq + i * 16);
  jade_status st = block_grad(sc->bc, n, gal, x, lpi, gpi);
  free(gal);
  return st;
}

/* The block's draws by SMC: o->smc_runs independent runs per galaxy of ens.n_walkers particles
 * from q, tempered to the posterior, then ens.n_steps kept HMC transitions of every particle;
 * the runs pooled by their evidence (jade_smc_pool), thinned by ens.thin into ch. Run k of
 * galaxy g uses the Philox stream first_id + g + k 2^40, so run 0 is the single-run fit. */
static jade_status smc_block(block_ctx *bc, size_t ng, const jade_sed_fit_options *o, const jade_ens_options *eo,
                             const double *xb, const double *lb, const double *lap, const double *rnode,
                             const double *rlq, double *ch, jade_ens_stats *es, double *racc, double *logz,
                             double *lzs, double *lmax, int *nmod) {
  int W = eo->n_walkers, K = o->n_starts, R = o->smc_runs;
  size_t nk = (size_t)(eo->n_steps / eo->thin), np = ng * (size_t)R, nd = (size_t)W * 16;
  smc_ref *q = jade_alloc(ng * sizeof(smc_ref));
  double *x = jade_alloc(np * nd * sizeof(double));
  double *full = jade_alloc(np * (size_t)eo->n_steps * nd * sizeof(double));
  double *pool = jade_alloc((size_t)eo->n_steps * nd * sizeof(double)), *lzr = jade_alloc(R * sizeof(double));
  jade_smc_stats *ss = jade_alloc(np * sizeof(jade_smc_stats));
  uint64_t *sid = jade_alloc(np * sizeof(uint64_t));
  jade_status st = q && x && full && pool && lzr && ss && sid ? JADE_OK : JADE_ERR_NOMEM;
  for (size_t g = 0; g < ng && !st; g++) {
    smc_ref_build(o, xb + g * K * 16, lb + g * K, lap + g * K * 256, rnode ? rnode + g * RIDGE_G * 16 : NULL,
                  rnode ? rlq + g * RIDGE_G : NULL, &q[g], &nmod[g]);
    for (int r = 0; r < R; r++) {
      sid[g * R + r] = eo->first_id + g + ((uint64_t)r << 40);
      smc_ref_draw(&q[g], eo->seed, sid[g * R + r], W, x + (g * R + r) * nd);
    }
  }
  jade_smc_options so;
  jade_smc_options_default(&so);
  so.n_particles = W;
  so.n_mutations = o->smc_mutations;
  so.n_leapfrog = o->hmc_leapfrog;
  so.n_keep = eo->n_steps;
  so.ess_frac = o->smc_ess;
  so.max_rounds = o->smc_rounds;
  so.dense_metric = o->hmc_dense_metric;
  so.seed = eo->seed;
  so.first_id = eo->first_id;
  so.stream_id = sid;
  jade_hmc_ridge ridge = {.coord = 15, .n_nodes = RIDGE_G, .lo = -RIDGE_PHI, .hi = RIDGE_PHI, .per_profile = (size_t)R,
                          .node = rnode, .lq = rlq, .chol = NULL};
  if (rnode) so.ridge = &ridge;
  smc_ctx sc = {.bc = bc, .q = q, .runs = R};
  if (!st) st = jade_smc_run(smc_parts, &sc, np, 16, x, &so, full, ss);
  for (size_t g = 0; g < ng && !st; g++) {
    const jade_smc_stats *sg = ss + g * R;
    for (int r = 0; r < R; r++) lzr[r] = sg[r].log_z;
    st = jade_smc_pool(R, W, 16, eo->n_steps, lzr, full + g * R * (size_t)eo->n_steps * nd, eo->seed,
                       JADE_STREAM(JADE_RNG_MCMC, eo->first_id + g), pool, &logz[g], &lzs[g]);
    for (size_t k = 0; k < nk && !st; k++)
      memcpy(ch + ((g * nk + k) * W) * 16, pool + ((k + 1) * eo->thin - 1) * nd, nd * sizeof(double));
    double acc = 0, stages = 0, ra = 0, lm = -INFINITY;
    int nra = 0;
    for (int r = 0; r < R; r++) {
      acc += sg[r].accept / R;
      stages += (double)sg[r].n_stages / R;
      lm = fmax(lm, sg[r].lpi_max);
      if (!isnan(sg[r].ridge_accept)) {
        ra += sg[r].ridge_accept;
        nra++;
      }
    }
    es[g].accept = acc;
    es[g].accept_stretch = es[g].accept_de = es[g].accept_hop = NAN;
    es[g].n_burn = (long)lround(stages);
    es[g].tau_burn = NAN;
    racc[g] = nra ? ra / nra : NAN;
    lmax[g] = lm;
  }
  free(q);
  free(x);
  free(full);
  free(pool);
  free(lzr);
  free(ss);
  free(sid);
  return st;
}

jade_status jade_sed_fit(const jade_sed_posterior *post, const jade_sed_mass *mass, const jade_sed_fit_options *o,
                         jade_sed_summary *summ, float *chain, double *t_prior, double *t_like) {
  const jade_ens_options *eo = &o->ens;
  int W = eo->n_walkers, nb = jade_sed_photulator_n_bands(post->phot);
  if (o->n_init < 1 || o->n_opt < 0 || o->n_lm < 0 || !(o->ball > 0) || o->block < 1 || o->n_starts < 1 ||
      o->n_starts > MAX_STARTS || o->n_starts > o->n_init || !(o->mode_nats >= 0) || o->check_draws < 0 ||
      o->emulators < JADE_SED_EMU_F64 || o->emulators > JADE_SED_EMU_F32_AVX2 || o->anneal_stages < 0 ||
      (o->anneal_stages > 0 && (o->anneal_iters < 1 || !(o->anneal_beta0 > 0 && o->anneal_beta0 < 1))) ||
      (o->sampler != JADE_SED_SAMPLER_ENSEMBLE && o->sampler != JADE_SED_SAMPLER_HMC &&
       o->sampler != JADE_SED_SAMPLER_SMC) ||
      o->hmc_leapfrog < 1 || o->smc_mutations < 1 || !(o->smc_ess > 0 && o->smc_ess < 1) ||
      !(o->smc_broad >= 0 && o->smc_broad < 1) ||
      (o->smc_reference != JADE_SED_SMC_REF_OPTIMA && o->smc_reference != JADE_SED_SMC_REF_PRIOR) || o->smc_rounds < 1 ||
      o->smc_runs < 1 || o->smc_runs > 64 ||
      (o->sampler == JADE_SED_SAMPLER_SMC && (o->hmc_temps > 1 || o->anneal_stages > 0)) ||
      o->hmc_temps < 1 || o->hmc_temps > 64 || !(o->hmc_beta_min > 0 && o->hmc_beta_min < 1) || o->hmc_swap_every < 1 ||
      o->hmc_ridge_every < 0 ||
      (o->hmc_temps > 1 && o->emulators == JADE_SED_EMU_F64) ||
      (o->sampler != JADE_SED_SAMPLER_ENSEMBLE && post->prior->kind == JADE_SED_PRIOR_DIFFUSION))
    return jade_error(JADE_ERR_INVALID,
                      "sed fit: bad options (n_init %d, n_opt %d, ball %g, block %zu, n_starts %d in [1, min(%d, "
                      "n_init)], mode_nats %g >= 0, check_draws %d >= 0, emulators %d, anneal %d x %d from beta %g, sampler %d "
                      "(hmc, smc: leapfrog %d >= 1, box or surrogate prior, temperatures %d in 1..64 with float32 emulators (1 and "
                      "no annealing with smc), beta_min %g in (0, 1), swap every %ld >= 1, ridge every %d >= 0; smc: "
                      "mutations %d >= 1, ESS fraction %g in (0, 1), reference %d, rounds %d >= 1, runs %d in 1..64))",
                      o->n_init, o->n_opt, o->ball, o->block, o->n_starts, MAX_STARTS, o->mode_nats, o->check_draws,
                      (int)o->emulators, o->anneal_stages, o->anneal_iters, o->anneal_beta0, (int)o->sampler,
                      o->hmc_leapfrog, o->hmc_temps, o->hmc_beta_min, o->hmc_swap_every, o->hmc_ridge_every,
                      o->smc_mutations, o->smc_ess, (int)o->smc_reference, o->smc_rounds, o->smc_runs);
  size_t nk = (size_t)(eo->n_steps / eo->thin), B = o->block;
  size_t nkw = nk * W;
  double *cand_th = jade_alloc((size_t)o->n_init * 16 * sizeof(double));
  double *cand_abs = jade_alloc((size_t)o->n_init * nb * sizeof(double));
  size_t K = (size_t)o->n_starts;
  double *x0 = jade_alloc(B * W * 16 * sizeof(double)), *xb = jade_alloc(B * K * 16 * sizeof(double));
  double *lb = jade_alloc(B * K * sizeof(double)), *acc = jade_alloc(B * K * sizeof(double));
  jade_ens_stats *es = jade_alloc(B * sizeof(jade_ens_stats));
  double *lap = jade_alloc(B * K * 256 * sizeof(double));
  int *nmod = jade_alloc(B * sizeof(int));
  int smc = o->sampler == JADE_SED_SAMPLER_SMC;
  int ridge = (o->sampler == JADE_SED_SAMPLER_HMC || smc) && o->hmc_ridge_every > 0;
  double *rnode = ridge ? jade_alloc(B * RIDGE_G * 16 * sizeof(double)) : NULL;
  double *rlq = ridge ? jade_alloc(B * RIDGE_G * sizeof(double)) : NULL, *racc = jade_alloc(B * sizeof(double));
  double *logz = jade_alloc(B * sizeof(double)), *lmax = jade_alloc(B * sizeof(double));
  double *lzs = jade_alloc(B * sizeof(double));
  double *ch = jade_alloc(B * nkw * 16 * sizeof(double)), *th = jade_alloc(nkw * 16 * sizeof(double));
  double *col = jade_alloc(nkw * sizeof(double)), *mf = jade_alloc(nkw * sizeof(double));
  jade_status st =
      cand_th && cand_abs && x0 && xb && lb && acc && es && lap && nmod && ((rnode && rlq) || !ridge) && racc && logz && lzs && lmax && ch && th && col && mf ? JADE_OK : JADE_ERR_NOMEM;
  /* candidate starts: jade's population without selection (seeded apart from the fit's walkers) */
  if (!st) st = jade_sed_population_draw(post->phot, eo->seed ^ 0x5eed5eedull, (size_t)o->n_init, 0, INFINITY, cand_th, NULL);
  if (!st) st = jade_sed_photulator_mags(post->phot, cand_th, (size_t)o->n_init, NULL, cand_abs);
  jade_sed_posterior post_emu = *post; /* the chains' arithmetic */
  post_emu.emu = o->emulators;
  block_ctx bc = {.post = &post_emu, .beta = 1.0};
  double tstart = jade_time_now();
  for (size_t g0 = 0; g0 < post->n_gal && !st; g0 += B) {
    size_t ng = post->n_gal - g0 < B ? post->n_gal - g0 : B;
    bc.g0 = g0;
    /* the SMC from the prior reference needs no optimiser (unless the ridge profile does) */
    if (smc && o->smc_reference == JADE_SED_SMC_REF_PRIOR && !rnode) st = prior_ref_starts(&bc, ng, o, cand_th, cand_abs, xb, lb, lap);
    else st = fit_starts(&bc, ng, o, cand_th, cand_abs, xb, lb, acc, lap);
    if (st) break;
    for (size_t g = 0; g < ng && !smc; g++)
      init_walkers(eo->first_id + g0 + g, o, xb + g * K * 16, lb + g * K, acc + g * K, lap + g * K * 256,
                   x0 + g * W * 16, nmod + g);
    jade_ens_options e2 = *eo;
    e2.first_id = eo->first_id + g0;
    if (o->anneal_stages > 0 && (st = anneal(&bc, ng, o, &e2, x0, ch))) break;
    if (o->sampler != JADE_SED_SAMPLER_ENSEMBLE && rnode &&
        (st = ridge_profile_fit(&bc, ng, o, cand_th, cand_abs, xb, lb, rnode, rlq)))
      break;
    if (smc) {
      if ((st = smc_block(&bc, ng, o, &e2, xb, lb, lap, rnode, rlq, ch, es, racc, logz, lzs, lmax, nmod))) break;
    } else if (o->sampler == JADE_SED_SAMPLER_HMC) {
      if ((st = hmc_block(&bc, ng, o, &e2, x0, xb, lb, lap, ch, es, rnode, rlq, racc))) break;
    } else if ((st = jade_ens_run_stats(block_logp, &bc, ng, 16, x0, &e2, ch, NULL, es))) {
      break;
    }
    for (size_t g = 0; g < ng && !st; g++) {
      jade_sed_summary *S = &summ[g0 + g];
      st = summarise_galaxy(mass, eo, nk, ch + g * nkw * 16, chain ? chain + (g0 + g) * nkw * JADE_SED_NQ : NULL, S, th,
                            col, mf);
      S->accept = es[g].accept;
      S->accept_stretch = es[g].accept_stretch;
      S->accept_de = es[g].accept_de;
      S->accept_hop = es[g].accept_hop;
      S->accept_ridge = o->sampler != JADE_SED_SAMPLER_ENSEMBLE ? racc[g] : NAN;
      S->log_z = smc ? logz[g] : NAN;
      S->log_z_spread = smc ? lzs[g] : NAN;
      S->logp_max = smc ? lmax[g] : NAN;
      if (smc) S->rhat = NAN; /* particles in different modes are the point: no chain agreement to test */
      S->n_burn = es[g].n_burn;
      S->tau_burn = es[g].tau_burn;
      S->n_modes = nmod[g];
      S->logp_start = -INFINITY;
      for (size_t s = 0; s < K; s++) S->logp_start = fmax(S->logp_start, lb[g * K + s]);
      S->check_ess = S->check_dz = S->check_dm = NAN;
    }
    if (!st && o->check_prior) st = prior_check(post, mass, o, ng, nkw, ch, summ + g0);
    if (o->verbose) {
      char el[32];
      jade_format_duration(jade_time_now() - tstart, el, sizeof el);
      fprintf(stderr, "sed fit: %zu/%zu galaxies (%s; prior %.1f s, likelihood %.1f s)\n", g0 + ng, post->n_gal, el,
              bc.t_prior, bc.t_like);
    }
  }
  if (t_prior) *t_prior = bc.t_prior;
  if (t_like) *t_like = bc.t_like;
  free(cand_th);
  free(cand_abs);
  free(x0);
  free(xb);
  free(lb);
  free(acc);
  free(es);
  free(lap);
  free(nmod);
  free(lmax);
  free(lzs);
  free(rnode);
  free(rlq);
  free(racc);
  free(logz);
  free(ch);
  free(th);
  free(col);
  free(mf);
  return st;
}

/* ---- mock photometry (noise_model.json "full_noise_realisation", no emission-line errors) ---- */
jade_status jade_sed_mock_photometry(const jade_sed_photulator *phot, const jade_sed_score *noise,
                                     const jade_sed_data_model *dm, const jade_pfode_options *ode, uint64_t seed,
                                     uint64_t first_id, size_t n, const double *theta, double *flux_true,
                                     double *flux_obs, double *sigma) {
  int nb = jade_sed_photulator_n_bands(phot);
  const jade_sed_score_config *nc = jade_sed_score_get_config(noise);
  if (nc->dim != nb || nc->n_cond != nb)
    return jade_error(JADE_ERR_INVALID, "mock: noise model has %d bands, photometry %d", nc->dim, nb);
  double *mag = jade_alloc(n * nb * sizeof(double) + 8), *c = jade_alloc(n * nb * sizeof(double) + 8);
  double *z = jade_alloc(n * nb * sizeof(double) + 8), *x = jade_alloc(n * nb * sizeof(double) + 8);
  jade_status st = mag && c && z && x ? JADE_OK : JADE_ERR_NOMEM;
  if (!st) st = jade_sed_photulator_mags(phot, theta, n, mag, NULL);
  jade_sed_score *nm = (jade_sed_score *)noise;
  const double *sh = jade_sed_score_shift(nm), *sc = jade_sed_score_scale(nm);
  const double *csh = jade_sed_score_cond_shift(nm), *csc = jade_sed_score_cond_scale(nm);
  if (!st) {
    for (size_t i = 0; i < n; i++) {
      for (int b = 0; b < nb; b++) {
        double f = jade_sed_mag_to_flux(mag[i * nb + b]);
        mag[i * nb + b] = f; /* now flux */
        double ma = jade_sed_asinh_mag(f * dm->zp[b], jade_sed_photulator_f_b(phot, b));
        c[i * nb + b] = (ma - csh[b]) / csc[b];
      }
      jade_rng_normal_fill(seed, JADE_STREAM(JADE_RNG_SHAPE, first_id + i), 0, (size_t)nb, z + i * nb);
    }
    jade_sed_score_field_ctx fc = {.score = noise, .cond = c};
    st = jade_pfode_sample(&nc->sde, nb, jade_sed_score_field, &fc, n, z, ode, x, NULL);
  }
  if (!st)
    for (size_t i = 0; i < n; i++)
      for (int b = 0; b < nb; b++) {
        double f = mag[i * nb + b];
        /* lnerr = clamp(x scale + shift, -28, -19.5) [ln maggies]; sigma = exp(9 ln 10 + lnerr) / zp */
        double le = x[i * nb + b] * sc[b] + sh[b];
        le = fmin(-19.5, fmax(-28.0, le));
        double s = exp(20.723265836946414 + le) / dm->zp[b];
        s = sqrt(s * s + (dm->error_floor * f) * (dm->error_floor * f));
        /* Student-t (nu = 2) noise: Z / sqrt(-ln U) */
        uint64_t stream = JADE_STREAM(JADE_RNG_SHAPE, first_id + i);
        double t2 = jade_rng_normal(seed, stream, 1000 + (uint64_t)b) / sqrt(-log(jade_rng_uniform(seed, stream, 2000 + (uint64_t)b)));
        if (flux_true) flux_true[i * nb + b] = f;
        flux_obs[i * nb + b] = (f + t2 * s) * dm->zp[b];
        sigma[i * nb + b] = s * dm->zp[b];
      }
  free(mag);
  free(c);
  free(z);
  free(x);
  return st;
}
