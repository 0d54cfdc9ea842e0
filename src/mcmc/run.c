/* The jade mcmc run (include/jade/mcmc_run.h): set-up, starting points or resume, the
 * sampling loop with its emulator refits and checkpoints, and the finish. Checkpoint format:
 * run_state.c; outputs: run_output.c. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jade/io.h"
#include "jade/observation.h"
#include "run_internal.h"

size_t jade_mcmc_struct_size(const char *name) {
  static const struct {
    const char *name;
    size_t size;
  } sizes[] = {{"jade_mcmc_run_options", sizeof(jade_mcmc_run_options)},
               {"jade_mcmc_run_result", sizeof(jade_mcmc_run_result)},
               {"jade_mcmc_health", sizeof(jade_mcmc_health)},
               {"jade_mcmc_progress", sizeof(jade_mcmc_progress)}};
  for (size_t i = 0; name && i < sizeof sizes / sizeof sizes[0]; i++)
    if (!strcmp(name, sizes[i].name)) return sizes[i].size;
  return 0;
}

void jade_mcmc_run_options_default(jade_mcmc_run_options *o) {
  memset(o, 0, sizeof *o);
  o->n_chains = 4;
  o->warmup = 500;
  o->samples = 1000;
  o->max_depth = 8;
  o->target_accept = 0.8;
  o->n_free = JADE_N_THETA;
  for (int i = 0; i < JADE_N_THETA; i++) o->free_idx[i] = i;
  o->theory = JADE_FP_EMULATOR;
  o->emulator_degree = 4;
  o->checkpoint_seconds = 60;
}

jade_status jade_mcmc_parse_free(const char *s, int *n_free, int idx[JADE_N_THETA]) {
  int mark[JADE_N_THETA] = {0};
  char buf[512];
  snprintf(buf, sizeof buf, "%s", s ? s : "");
  int n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
    int found = -1;
    for (int i = 0; i < JADE_N_THETA; i++)
      if (!strcmp(tok, jade_theta_names[i])) found = i;
    if (found < 0)
      return jade_error(JADE_ERR_INVALID, "--free: unknown parameter '%s' (known: Omega_c Omega_b sigma_8 h n_s w_0)", tok);
    if (mark[found]) return jade_error(JADE_ERR_INVALID, "--free: '%s' listed twice", tok);
    mark[found] = 1;
    n++;
  }
  if (!n) return jade_error(JADE_ERR_INVALID, "--free: no parameter given");
  *n_free = 0;
  for (int i = 0; i < JADE_N_THETA; i++)
    if (mark[i]) idx[(*n_free)++] = i;
  return JADE_OK;
}

/* Append a post-warm-up row; weighted Welford (West 1979, CACM 22:532) of the map. */
static jade_status chain_add_draw(chain_t *c, const run_t *r, const double *theta, double lp, double lw,
                                  const jade_nuts_stats *s, const float *kappa) {
  if (c->n_rows == c->cap_rows) {
    long cap = c->cap_rows ? 2 * c->cap_rows : 256;
    double *nr = realloc(c->rows, 8 * (size_t)NCOL * cap);
    if (!nr) return jade_error(JADE_ERR_NOMEM, "mcmc: out of memory for the draws");
    c->rows = nr;
    c->cap_rows = cap;
  }
  double *row = c->rows + (size_t)NCOL * c->n_rows++;
  for (int i = 0; i < JADE_N_THETA; i++) row[C_TH + i] = theta[i];
  row[C_OM] = jade_theta_omega_m(theta);
  row[C_S8] = jade_theta_s8(theta);
  row[C_LP] = lp;
  row[C_LW] = lw;
  row[C_ACC] = s->accept_stat;
  row[C_STEP] = s->step_size;
  row[C_DEPTH] = s->tree_depth;
  row[C_NLF] = s->n_leapfrog;
  row[C_DIV] = s->divergent;
  row[C_ENERGY] = s->energy;
  if (!c->have_ref && isfinite(lw)) {
    c->lw_ref = lw;
    c->have_ref = 1;
  }
  double w = exp(lw - c->lw_ref);
  if (!(w > 0.0) || !isfinite(w)) return JADE_OK; /* zero weight (or overflow): not in the map moments */
  double wn = c->mw + w, f = w / wn;
  for (size_t m = 0; m < r->nmap; m++) {
    double x = kappa[m], d = x - c->mmean[m];
    c->mmean[m] += f * d;
    c->mm2[m] += w * d * (x - c->mmean[m]);
  }
  c->mw = wn;
  return JADE_OK;
}

/* ------------------------------------------------------------------ the driver ------- */

typedef struct {
  const jade_dist *dist;
  run_t *r;
  chain_t *ch;
  int n_local;
  size_t nuts_size;  /* serialised size of a chain of this dimension */
  const jade_sim_config *sc;
  const jade_theory *theory;
  jade_emulator_config ecfg;
  jade_emulator *em;
  int n_refits;
  const jade_mcmc_run_options *o;
  /* the run's objects */
  jade_observation obs;
  jade_theory *theory_obj;
  jade_fieldpost_setup fs;
  jade_fieldpost *fp0;       /* for set-up checks and the starting points */
  jade_nuts_config ncfg;
  char partial[4200], state_path[4400];
  char *settings, *ident;    /* the run's settings (diagnostics.txt) and identity (run.txt) */
  long refit_at[40];         /* emulator refits due (iteration counts) */
  int n_refit_at;
  /* progress */
  long it;                   /* iterations done per chain */
  double wall_prev, wall_sampling; /* wall time of earlier calls, of the sampling phase */
} driver;

/* A one-line note for the caller (rank 0, when it asked for them). */
static void note(const driver *D, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const driver *D, const char *fmt, ...) {
  if (D->dist->rank != 0 || !D->o->message) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  D->o->message(buf, D->o->user);
}

/* (Re)fit the emulator to the pooled statistics of the free parameters of all chains: the
 * chains' positions (initial fit, with a quarter of the prior sd added) or the warm-up draws
 * since the last fit. Per-chain slots are summed exactly over ranks and added in chain order,
 * so the fit does not depend on the rank count. */
static jade_status refit(driver *D, long it) {
  const run_t *r = D->r;
  int k = r->n_free;
  size_t per = 1 + (size_t)k + (size_t)k * k + (size_t)k;
  double *slot = calloc(per * r->n_chains, sizeof(double));
  if (!slot) return jade_error(JADE_ERR_NOMEM, "out of memory");
  for (int i = 0; i < D->n_local; i++) {
    const chain_t *c = &D->ch[i];
    double *s = slot + per * c->id;
    const double *u = jade_nuts_chain_position(c->nuts);
    s[0] = c->wn;
    for (int a = 0; a < k; a++) s[1 + a] = c->wsum[a];
    for (int a = 0; a < k * k; a++) s[1 + k + a] = c->wsq[a];
    for (int a = 0; a < k; a++) s[1 + k + k * k + a] = u[a];
  }
  jade_status st = jade_dist_sum_double(D->dist, slot, per * r->n_chains);
  double n = 0.0, mean[JADE_N_THETA] = {0}, cov[JADE_N_THETA * JADE_N_THETA] = {0};
  int initial = D->em == NULL;
  for (int c = 0; c < r->n_chains && !st; c++) {
    const double *s = slot + per * c;
    if (initial) {
      const double *p = s + 1 + k + k * k;
      n += 1.0;
      for (int a = 0; a < k; a++) {
        mean[a] += p[a];
        for (int b = 0; b < k; b++) cov[a * k + b] += p[a] * p[b];
      }
    } else {
      n += s[0];
      for (int a = 0; a < k; a++) mean[a] += s[1 + a];
      for (int a = 0; a < k * k; a++) cov[a] += s[1 + k + a];
    }
  }
  free(slot);
  if (st) return st;
  if (!(n > 0)) return jade_error(JADE_ERR_INTERNAL, "mcmc: no draws for the emulator refit at iteration %ld", it);
  for (int a = 0; a < k; a++) mean[a] /= n;
  for (int a = 0; a < k; a++)
    for (int b = 0; b < k; b++) cov[a * k + b] = cov[a * k + b] / n - mean[a] * mean[b];
  for (int a = 0; a < k; a++) {
    /* in u, the prior sd is about 1 for normal priors and sd / (theta - lo) for bounded ones */
    double sd = 1.0;
    cov[a * k + a] += initial ? 0.0625 * sd * sd : 1e-6 * sd * sd;
  }
  jade_emulator *ne = NULL;
  double t0 = jade_time_now();
  st = jade_emulator_fit(D->theory, D->sc, k, r->free_idx, mean, cov, &D->ecfg, D->dist, &ne);
  if (st) return jade_error_context(st, "emulator fit at iteration %ld", it);
  /* Switch every chain to the new emulator. The sampler caches the density at the chain's
   * position; the per-chain offset makes the new target agree with it there (both are
   * deterministic functions of the position, so the old value is recomputed exactly). */
  for (int i = 0; i < D->n_local && !st; i++) {
    chain_t *c = &D->ch[i];
    const double *x = jade_nuts_chain_position(c->nuts);
    double lp_old = 0.0, lp_new = 0.0;
    if (!initial) st = jade_fieldpost_logp(c->fp, x, &lp_old, NULL);
    if (!st) st = jade_fieldpost_set_mode(c->fp, r->mode, ne);
    jade_fieldpost_set_offset(c->fp, 0.0);
    if (!st && !initial) st = jade_fieldpost_logp(c->fp, x, &lp_new, NULL);
    if (!st && !initial && isfinite(lp_old) && isfinite(lp_new)) jade_fieldpost_set_offset(c->fp, lp_old - lp_new);
  }
  jade_emulator_free(D->em);
  D->em = ne;
  D->n_refits++;
  for (int i = 0; i < D->n_local && !st; i++) {
    chain_t *c = &D->ch[i];
    c->wn = 0;
    memset(c->wsum, 0, sizeof c->wsum);
    memset(c->wsq, 0, sizeof c->wsq);
  }
  if (!st) {
    jade_emulator_info inf;
    jade_emulator_get_info(ne, &inf);
    note(D, "emulator fit %d at iteration %ld (%.1f s): held-out max|ln C_ell err| %.2g (rms %.2g), "
            "max|ln lambda err| %.2g", D->n_refits, it, jade_time_now() - t0, inf.max_err_cl,
            inf.rms_err_cl, inf.max_err_lambda);
  }
  return st;
}

/* Write DIR.partial/state.bin with every chain (collective). */
static jade_status checkpoint(driver *D, const char *state_path, long it, double wall, double wall_sampling) {
  const run_t *r = D->r;
  long n_rows = it > r->warmup ? it - r->warmup : 0;
  size_t rec = mcmc_record_size(D->nuts_size, r, n_rows);
  unsigned char *recs = NULL;
  jade_status st = mcmc_gather_records(D->dist, D->ch, D->n_local, r, rec, &recs);
  if (!st && D->dist->rank == 0) {
    state_head h = {r->n_chains, (int64_t)rec, D->em ? (int64_t)jade_emulator_serial_size(D->em) : 0, D->n_refits, it, wall,
                    wall_sampling};
    st = mcmc_state_write(state_path, &h, D->em, recs);
  }
  free(recs);
  if (jade_dist_max_int(D->dist, st != JADE_OK) && !st) st = jade_error(JADE_ERR_IO, "rank 0 failed to write %s", state_path);
  return st;
}

/* Starting points: the truth of a 'jade observe' observation (free parameters of its truth
 * file, its white noise: simulation 0 of (SEED, field stream)), or per chain a prior draw of
 * the free parameters with N(0, 1) white noise, redrawn until the exact density is finite. */
static jade_status start_chains(driver *D, jade_fieldpost *fp0, const char *obs_path, int init_truth, long seed,
                                const jade_nuts_config *ncfg) {
  const run_t *r = D->r;
  jade_status st = JADE_OK;
  double *x0 = malloc(sizeof(double) * r->dim);
  float *ktrue = NULL, *kchk = NULL;
  if (!x0) return jade_error(JADE_ERR_NOMEM, "out of memory");
  if (init_truth) {
    char tpath[4400];
    double th_true[JADE_N_THETA], dseed = 0.0, th0[JADE_N_THETA];
    int tb = 0, tn = 0;
    jade_observation_truth_path(obs_path, tpath, sizeof tpath);
    st = jade_observation_read_truth(tpath, th_true, &ktrue, &tb, &tn);
    if (st) st = jade_error_context(st, "--init truth needs the truth file of a 'jade observe' observation (or use --init prior)");
    if (!st && jade_fits_read_key_double(obs_path, "KAPPA", "SEED", &dseed) &&
        jade_fits_read_key_double(obs_path, "GAMMA1", "SEED", &dseed))
      st = jade_error(JADE_ERR_FORMAT, "%s: no SEED key: --init truth needs an observation made by 'jade observe' (or use --init prior)",
                      obs_path);
    if (!st && (tb != D->sc->geom.n_bins || tn != D->sc->geom.n_pix))
      st = jade_error(JADE_ERR_FORMAT, "%s: the truth map's geometry differs from the observation's", tpath);
    jade_theta_from_params(&D->sc->cosmo, th0);
    for (int i = 0; i < r->n_free && !st; i++) th0[r->free_idx[i]] = th_true[r->free_idx[i]];
    if (!st) st = jade_fieldpost_unconstrain(fp0, th0, x0);
    if (!st) jade_rng_normal_fill((uint64_t)dseed, JADE_STREAM(JADE_RNG_FIELD, 0), 0, r->nmap, x0 + r->n_free);
    if (!st && D->dist->rank == 0 && D->o->message) {
      for (int i = 0; i < JADE_N_THETA; i++) {
        int fr = 0;
        for (int q = 0; q < r->n_free; q++) fr |= r->free_idx[q] == i;
        if (!fr && fabs(th_true[i] - th0[i]) > 1e-12 * fabs(th0[i]))
          note(D, "note: fixed %s = %g (config) differs from the truth %g", jade_theta_names[i], th0[i], th_true[i]);
      }
      /* the truth map must be reproduced when the config is the one jade observe used */
      double lp;
      kchk = malloc(sizeof(float) * r->nmap);
      if (!kchk) st = jade_error(JADE_ERR_NOMEM, "out of memory");
      if (!st) st = jade_fieldpost_eval_exact(fp0, x0, &lp, kchk);
      if (!st) {
        double md = 0.0, mk = 0.0;
        for (size_t m = 0; m < r->nmap; m++) {
          md = fmax(md, fabs((double)kchk[m] - ktrue[m]));
          mk = fmax(mk, fabs((double)ktrue[m]));
        }
        if (!(md <= 1e-5 * mk + 1e-7))
          note(D, "note: the truth map is not reproduced (max difference %.3g): was the observation made "
                  "with another config? (the chains still start there)", md);
      }
    }
  }
  for (int i = 0; i < D->n_local && !st; i++) {
    chain_t *c = &D->ch[i];
    if (!init_truth) {
      int ok = 0;
      for (int tr = 0; tr < 100 && !st && !ok; tr++) {
        double th[JADE_N_THETA], th0[JADE_N_THETA], lp;
        uint64_t idx = (uint64_t)c->id + (uint64_t)r->n_chains * tr;
        jade_prior_draw(D->sc, (uint64_t)seed, idx, th);
        jade_theta_from_params(&D->sc->cosmo, th0);
        for (int q = 0; q < r->n_free; q++) th0[r->free_idx[q]] = th[r->free_idx[q]];
        if (jade_fieldpost_unconstrain(c->fp, th0, x0)) {
          jade_clear_error();
          continue;
        }
        jade_rng_normal_fill((uint64_t)seed, JADE_STREAM(JADE_RNG_MCMC, (UINT64_C(1) << 46) | idx), 0, r->nmap, x0 + r->n_free);
        st = jade_fieldpost_eval_exact(c->fp, x0, &lp, NULL);
        ok = !st && isfinite(lp);
      }
      if (!st && !ok) st = jade_error(JADE_ERR_NUMERIC, "chain %d: no prior draw with a finite posterior density in 100 tries", c->id);
    }
    if (!st) st = jade_nuts_chain_create(&c->nuts, r->dim, ncfg, (uint64_t)seed, (uint64_t)c->id, x0, NULL);
  }
  free(x0);
  free(ktrue);
  free(kchk);
  return st;
}


/* ------------------------------------------------------------------ set-up ----------- */

static const char *theory_name(jade_fp_mode m) {
  return m == JADE_FP_EMULATOR ? "emulator" : m == JADE_FP_HYBRID ? "hybrid" : "exact";
}

/* The options, the observation and its geometry; the run's settings and identity. */
static jade_status setup(driver *D) {
  const jade_mcmc_run_options *o = D->o;
  run_t *R = D->r;
  const jade_sim_config *sc = o->sim;
  if (!sc || !o->config_text || !o->obs_path || !o->out_dir)
    return jade_error(JADE_ERR_INVALID, "mcmc: configuration, observation and output are required");
  if (o->n_chains < 1 || o->warmup < 0 || o->samples < 4 || o->max_depth < 1 || o->emulator_degree < 1 ||
      !(o->target_accept > 0 && o->target_accept < 1) || !(o->checkpoint_seconds > 0) || o->max_iterations < 0)
    return jade_error(JADE_ERR_INVALID, "mcmc: chains >= 1, warmup >= 0, samples >= 4, max_depth >= 1, emulator_degree >= 1, "
                                        "0 < target_accept < 1, checkpoint_seconds > 0 required");
  if (o->n_free < 1 || o->n_free > JADE_N_THETA) return jade_error(JADE_ERR_INVALID, "mcmc: no free parameter");
  for (int i = 0; i < o->n_free; i++)
    if (o->free_idx[i] < 0 || o->free_idx[i] >= JADE_N_THETA || (i && o->free_idx[i] <= o->free_idx[i - 1]))
      return jade_error(JADE_ERR_INVALID, "mcmc: free parameter indices must increase within [0, %d)", JADE_N_THETA);
  if (jade_path_exists(o->out_dir)) return jade_error(JADE_ERR_IO, "%s: already exists (choose another --out or remove it)", o->out_dir);
  if (o->compare_dir) {
    char path[4400];
    snprintf(path, sizeof path, "%s/theta.txt", o->compare_dir);
    if (!jade_path_exists(path)) return jade_error(JADE_ERR_IO, "--compare %s: no theta.txt in that directory", o->compare_dir);
  }
  R->n_chains = o->n_chains;
  R->n_free = o->n_free;
  memcpy(R->free_idx, o->free_idx, sizeof R->free_idx);
  R->mode = o->theory;
  R->warmup = o->warmup;
  R->samples = o->samples;
  /* observation and its geometry */
  const char *obs_path = o->obs_path;
  jade_observation *obs = &D->obs;
  jade_status st = jade_observation_read(obs_path, obs);
  if (!st && (obs->n_bins != sc->geom.n_bins || obs->n_pix != sc->geom.n_pix ||
              fabs(obs->size_deg - sc->geom.size_deg) > 1e-6 * sc->geom.size_deg))
    st = jade_error(JADE_ERR_INVALID,
                    "%s: geometry %d bins x %d x %d pixels over %g deg does not match the config's n_bins = %d, n_pix = %d, "
                    "size_deg = %g (use the config the observation was made with)",
                    obs_path, obs->n_bins, obs->n_pix, obs->n_pix, obs->size_deg, sc->geom.n_bins, sc->geom.n_pix, sc->geom.size_deg);
  if (st) return st;
  R->nmap = (size_t)sc->geom.n_bins * sc->geom.n_pix * sc->geom.n_pix;
  R->dim = (size_t)R->n_free + R->nmap;
  if (D->dist->rank == 0 && o->message) { /* the config's survey noise vs the observation's (the observation's is used) */
    jade_survey *sv = NULL;
    if (jade_survey_create(&sc->survey, &sv) == JADE_OK)
      for (int i = 0; i < sc->geom.n_bins; i++) {
        double s = jade_survey_pixel_noise(sv, i, jade_pixel_arcmin(&sc->geom));
        if (fabs(s - obs->noise[i]) > 1e-3 * s) {
          note(D, "note: %s has noise %.6g in bin %d, the config's survey %.6g: using the observation's", obs_path, obs->noise[i], i, s);
          break;
        }
      }
    jade_survey_free(sv);
    jade_clear_error();
  }
  /* run identity: everything that changes the draws */
  uint64_t h = 1469598103934665603ull;
  const unsigned char *kb = (const unsigned char *)obs->kappa;
  for (size_t i = 0; i < R->nmap * sizeof(float); i++) h = (h ^ kb[i]) * 1099511628211ull;
  for (int i = 0; i < obs->n_bins; i++) {
    const unsigned char *nb = (const unsigned char *)&obs->noise[i];
    for (size_t j = 0; j < sizeof(double); j++) h = (h ^ nb[j]) * 1099511628211ull;
  }
  const float *extra[2] = {obs->mask, obs->noise_map}; /* a mask or noise map changes the likelihood */
  for (int e = 0; e < 2; e++) {
    const unsigned char *eb = (const unsigned char *)extra[e];
    for (size_t i = 0; eb && i < R->nmap * sizeof(float); i++) h = (h ^ eb[i]) * 1099511628211ull;
  }
  if (obs->masked_fraction > 0 || obs->noise_map)
    note(D, "note: %s: %.1f%% of the pixels masked%s; the likelihood uses the mask and the per-pixel noise", obs_path,
         100.0 * obs->masked_fraction, obs->noise_map ? ", per-pixel noise map" : "");
  char fr[256] = "";
  for (int i = 0; i < R->n_free; i++) {
    strcat(fr, i ? "," : "");
    strcat(fr, jade_theta_names[R->free_idx[i]]);
  }
  size_t len = 2048, il = strlen(o->config_text) + len + 64;
  D->settings = malloc(len);
  D->ident = malloc(il);
  if (!D->settings || !D->ident) return jade_error(JADE_ERR_NOMEM, "out of memory");
  snprintf(D->settings, len,
           "chains = %d\nwarmup = %ld\nsamples = %ld\nmax_depth = %d\ntarget_accept = %.10g\nseed = %llu\ninit = %s\n"
           "free = %s\ntheory = %s\nemulator_degree = %d\nobservation_hash = %016llx\n",
           o->n_chains, o->warmup, o->samples, o->max_depth, o->target_accept, (unsigned long long)o->seed,
           o->init_truth ? "truth" : "prior", fr, theory_name(o->theory), o->emulator_degree, (unsigned long long)h);
  snprintf(D->ident, il, "# jade mcmc run\n%s%s", D->settings, o->config_text);
  return JADE_OK;
}

/* The theory, one posterior per local chain (and one for set-up checks), the NUTS settings. */
static jade_status create_chains(driver *D) {
  const jade_mcmc_run_options *o = D->o;
  run_t *R = D->r;
  jade_status st = jade_theory_create_cosmo(o->sim, &D->theory_obj);
  D->theory = D->theory_obj;
  jade_fieldpost_setup fs = {.sc = o->sim, .n_free = R->n_free, .kappa_obs = D->obs.kappa, .noise = D->obs.noise,
                          .mask = D->obs.mask, .noise_map = D->obs.noise_map, .theory = D->theory_obj};
  memcpy(fs.free_idx, R->free_idx, sizeof fs.free_idx);
  D->fs = fs;
  if (!st) st = jade_fieldpost_create(&D->fs, &D->fp0);
  jade_nuts_config_default(&D->ncfg);
  D->ncfg.n_warmup = o->warmup;
  D->ncfg.max_depth = o->max_depth;
  D->ncfg.target_accept = o->target_accept;
  D->ncfg.step_size = 1e-2; /* the paper's step size, refined by the heuristic and dual averaging */
  if (!st) st = jade_nuts_config_check(&D->ncfg);
  jade_nuts_chain *tmpl = NULL;
  if (!st) st = jade_nuts_chain_create(&tmpl, R->dim, &D->ncfg, 0, 0, NULL, NULL);
  if (st) return st;
  D->nuts_size = jade_nuts_chain_serial_size(tmpl);
  jade_nuts_chain_free(tmpl);
  D->sc = o->sim;
  jade_emulator_config_default(&D->ecfg);
  D->ecfg.degree = o->emulator_degree;
  D->ecfg.seed = o->seed;
  for (int c = D->dist->rank; c < R->n_chains; c += D->dist->size) D->n_local++;
  D->ch = calloc((size_t)D->n_local + 1, sizeof *D->ch);
  if (!D->ch) return jade_error(JADE_ERR_NOMEM, "out of memory");
  for (int i = 0, c = D->dist->rank; c < R->n_chains; c += D->dist->size, i++) {
    D->ch[i].id = c;
    D->ch[i].mmean = calloc(R->nmap, sizeof(double));
    D->ch[i].mm2 = calloc(R->nmap, sizeof(double));
    if (!D->ch[i].mmean || !D->ch[i].mm2) return jade_error(JADE_ERR_NOMEM, "out of memory");
    if ((st = jade_fieldpost_create(&D->fs, &D->ch[i].fp))) return st;
  }
  return JADE_OK;
}

static void free_chains(chain_t *ch, int n) {
  for (int i = 0; ch && i < n; i++) {
    jade_nuts_chain_free(ch[i].nuts);
    jade_fieldpost_free(ch[i].fp);
    free(ch[i].mmean);
    free(ch[i].mm2);
    free(ch[i].rows);
  }
  free(ch);
}

/* Resume from OUT.partial/state.bin, or start the chains and create OUT.partial (nothing is
 * written before the starting points are valid). Collective. */
static jade_status resume_or_start(driver *D) {
  const jade_mcmc_run_options *o = D->o;
  const jade_dist *dist = D->dist;
  run_t *R = D->r;
  char path[4400];
  jade_status st = JADE_OK;
  snprintf(D->partial, sizeof D->partial, "%s.partial", o->out_dir);
  snprintf(D->state_path, sizeof D->state_path, "%s/state.bin", D->partial);
  int resumed = 0, have_partial = 0;
  if (dist->rank == 0) {
    st = jade_run_dir_check(D->partial, D->ident, "config, observation or options", &have_partial);
    resumed = have_partial && jade_path_exists(D->state_path);
  }
  if (jade_dist_max_int(dist, st != JADE_OK)) return st ? st : jade_error(JADE_ERR_IO, "rank 0 failed to check %s", D->partial);
  resumed = jade_dist_max_int(dist, resumed);
  have_partial = jade_dist_max_int(dist, have_partial);
  if (resumed) {
    state_head h;
    unsigned char *recs = NULL;
    st = mcmc_state_read(D->state_path, &h, &D->em, &recs);
    if (!st && h.n_chains != R->n_chains)
      st = jade_error(JADE_ERR_FORMAT, "%s: %lld chains, this run has %d", D->state_path, (long long)h.n_chains, R->n_chains);
    for (int i = 0; i < D->n_local && !st; i++)
      st = mcmc_record_read(&D->ch[i], R, recs + (size_t)h.rec_size * D->ch[i].id, (size_t)h.rec_size);
    for (int i = 0; i < D->n_local && !st; i++)
      if (jade_nuts_chain_iteration(D->ch[i].nuts) != h.iter)
        st = jade_error(JADE_ERR_FORMAT, "%s: chains at different iterations", D->state_path);
    free(recs);
    for (int i = 0; i < D->n_local && !st && D->em && R->mode != JADE_FP_EXACT; i++)
      st = jade_fieldpost_set_mode(D->ch[i].fp, R->mode, D->em);
    if (st) return st;
    D->n_refits = (int)h.n_refits;
    D->it = (long)h.iter;
    D->wall_prev = h.wall;
    D->wall_sampling = h.wall_sampling;
    note(D, "resuming %s at iteration %ld of %ld", D->partial, D->it, o->warmup + o->samples);
    return JADE_OK;
  }
  st = start_chains(D, D->fp0, o->obs_path, o->init_truth, (long)o->seed, &D->ncfg);
  if (jade_dist_max_int(dist, st != JADE_OK)) return st ? st : jade_error(JADE_ERR_NUMERIC, "another rank failed to start its chains");
  if (!have_partial && dist->rank == 0) {
    st = jade_run_dir_create(D->partial, D->ident);
    snprintf(path, sizeof path, "%s/config.ini", D->partial);
    if (!st) {
      /* provenance first: jade version and observation (a comment for the config reader) */
      size_t n = strlen(o->config_text) + strlen(o->obs_path) + 128;
      char *txt = malloc(n);
      if (!txt) st = jade_error(JADE_ERR_NOMEM, "mcmc: out of memory");
      if (txt) {
        snprintf(txt, n, "# jade %s mcmc: the effective configuration (observation %s)\n%s", JADE_VERSION, o->obs_path,
                 o->config_text);
        st = jade_write_file_atomic(path, txt);
        free(txt);
      }
    }
  }
  if (jade_dist_max_int(dist, st != JADE_OK)) return st ? st : jade_error(JADE_ERR_IO, "rank 0 failed to create %s", D->partial);
  return JADE_OK;
}

/* Emulator refits (warm-up iteration counts): at 10% of the warm-up (at least 20) and after
 * each slow metric window, at least 20 iterations apart and a quarter of the warm-up (at most
 * 50) before its end, so the final metric and step size are adapted to the final emulator. */
static void refit_schedule(driver *D) {
  const long warmup = D->r->warmup;
  D->n_refit_at = 0;
  if (D->r->mode == JADE_FP_EXACT) return;
  long ends[32], last = 0, first = (long)ceil(0.1 * warmup), margin = warmup / 4 < 50 ? warmup / 4 : 50;
  if (first < 20) first = 20;
  int ne = jade_nuts_metric_windows(&D->ncfg, ends, 32);
  if (first <= warmup - margin) D->refit_at[D->n_refit_at++] = last = first;
  for (int q = 0; q < ne && q < 32; q++) {
    long e = ends[q] + 1;
    if (e - last >= 20 && e <= warmup - margin && D->n_refit_at < 40) D->refit_at[D->n_refit_at++] = last = e;
  }
}

/* ------------------------------------------------------------------ sampling --------- */

/* After a block of nb_it iterations from iteration it: the refit statistics (warm-up) or
 * the stored draws with their exact density, importance weight and map (sampling), chains in
 * parallel. */
static jade_status process_block(driver *D, long it, long nb_it, const double *draws, const jade_nuts_stats *stats, float *kbuf) {
  const run_t *R = D->r;
  const int k = R->n_free;
  jade_status st = JADE_OK;
  jade_status *pst = calloc((size_t)D->n_local + 1, sizeof *pst);
  char(*pmsg)[512] = calloc((size_t)D->n_local + 1, sizeof *pmsg);
  if (!pst || !pmsg) st = jade_error(JADE_ERR_NOMEM, "out of memory");
  int nthr = omp_get_max_threads() < D->n_local ? omp_get_max_threads() : D->n_local;
  if (nthr < 1) nthr = 1;
#pragma omp parallel for num_threads(nthr) schedule(dynamic, 1) if (nthr > 1 && !st)
  for (int i = 0; i < D->n_local; i++) {
    if (st) continue;
    chain_t *c = &D->ch[i];
    for (long q = 0; q < nb_it && !pst[i]; q++) {
      const double *xq = draws + ((size_t)i * nb_it + q) * R->dim;
      const jade_nuts_stats *sq = stats + (size_t)i * nb_it + q;
      double th[JADE_N_THETA];
      jade_fieldpost_theta(c->fp, xq, th);
      if (it + q < R->warmup) {
        c->wn += 1; /* refit statistics in the unconstrained coordinates */
        for (int a = 0; a < k; a++) {
          c->wsum[a] += xq[a];
          for (int b = 0; b < k; b++) c->wsq[a * k + b] += xq[a] * xq[b];
        }
      } else {
        double lp;
        float *kk = kbuf + R->nmap * (size_t)i;
        pst[i] = jade_fieldpost_eval_exact(c->fp, xq, &lp, kk);
        if (!pst[i]) {
          /* the sampler's density carries the chain's constant offset */
          double lw = R->mode == JADE_FP_EMULATOR ? lp - (sq->logp - jade_fieldpost_offset(c->fp)) : 0.0;
          if (!isfinite(lp)) lw = -INFINITY;
          pst[i] = chain_add_draw(c, R, th, lp, lw, sq, kk);
        }
      }
    }
    if (pst[i]) snprintf(pmsg[i], sizeof pmsg[i], "%s", jade_last_error());
  }
  for (int i = 0; i < D->n_local && !st; i++)
    if (pst[i]) st = jade_error(pst[i], "chain %d: %s", D->ch[i].id, pmsg[i]);
  free(pst);
  free(pmsg);
  return st;
}

static void report_progress(const driver *D, double rate) {
  jade_mcmc_progress p;
  memset(&p, 0, sizeof p);
  uint64_t ge = 0;
  for (int i = 0; i < D->n_local; i++) {
    jade_nuts_totals tot;
    jade_nuts_chain_totals(D->ch[i].nuts, &tot);
    p.divergent += tot.divergent + tot.divergent_warmup;
    ge += tot.grad_evals;
  }
  p.iteration = D->it;
  p.warmup = D->r->warmup;
  p.samples = D->r->samples;
  p.n_chains = D->r->n_chains;
  p.n_local = D->n_local;
  p.ranks = D->dist->size;
  p.rate = rate;
  p.grad_per_iteration = D->n_local ? (double)ge / D->n_local / (double)D->it : 0.0;
  D->o->progress(&p, D->o->user);
}

/* Iterate until the end or max_iterations (*stopped): blocks of at most 5 iterations between
 * the refits, checkpoints on time, at the end of warm-up, when stopping and at the end. */
static jade_status sample(driver *D, int *stopped) {
  const jade_mcmc_run_options *o = D->o;
  const run_t *R = D->r;
  const long warmup = R->warmup, total = R->warmup + R->samples, block = 5, max_iter = o->max_iterations;
  double *draws = malloc(sizeof(double) * R->dim * block * (size_t)(D->n_local + 1));
  jade_nuts_stats *stats = malloc(sizeof(jade_nuts_stats) * block * (size_t)(D->n_local + 1));
  float *kbuf = malloc(sizeof(float) * R->nmap * (size_t)(D->n_local + 1));
  jade_nuts_chain **nch = calloc((size_t)D->n_local + 1, sizeof *nch);
  void **ctx = calloc((size_t)D->n_local + 1, sizeof *ctx);
  jade_status st = JADE_OK;
  if (!draws || !stats || !kbuf || !nch || !ctx)
    st = jade_error(JADE_ERR_NOMEM, "out of memory for %d chains of dimension %zu", D->n_local, R->dim);
  for (int i = 0; i < D->n_local && !st; i++) {
    nch[i] = D->ch[i].nuts;
    ctx[i] = D->ch[i].fp;
  }
  double t_start = jade_time_now(), t_ckpt = t_start;
  long it_start = D->it, run_iters = 0;
  while (D->it < total && !st) {
    const long it = D->it;
    /* the initial emulator fit, and the refits due at this iteration */
    if (R->mode != JADE_FP_EXACT && (!D->em || (D->n_refits <= D->n_refit_at && it == D->refit_at[D->n_refits - 1]))) {
      st = refit(D, it);
      continue;
    }
    long nb_it = block, stop_at = it < warmup ? warmup : total;
    if (R->mode != JADE_FP_EXACT && D->n_refits <= D->n_refit_at && D->refit_at[D->n_refits - 1] > it &&
        D->refit_at[D->n_refits - 1] < stop_at)
      stop_at = D->refit_at[D->n_refits - 1];
    if (it + nb_it > stop_at) nb_it = stop_at - it;
    if (max_iter && run_iters + nb_it > max_iter) nb_it = max_iter - run_iters;
    double tb0 = jade_time_now();
    if (D->n_local) st = jade_nuts_run_chains(nch, D->n_local, jade_fieldpost_logp, ctx, nb_it, draws, stats, 0);
    if (!st) st = process_block(D, it, nb_it, draws, stats, kbuf);
    if (st) break;
    double now = jade_time_now();
    if (it >= warmup) D->wall_sampling += now - tb0;
    D->it += nb_it;
    run_iters += nb_it;
    if (D->dist->rank == 0 && o->progress) report_progress(D, (D->it - it_start) / (now - t_start));
    /* checkpoint: on time, at the end of warm-up, when stopping, at the end (collective) */
    int want = (now - t_ckpt > o->checkpoint_seconds) || D->it == warmup || D->it == total || (max_iter && run_iters >= max_iter);
    if (jade_dist_max_int(D->dist, want)) {
      st = checkpoint(D, D->state_path, D->it, D->wall_prev + (now - t_start), D->wall_sampling);
      t_ckpt = now;
    }
    if (!st && max_iter && run_iters >= max_iter && D->it < total) {
      *stopped = 1;
      break;
    }
  }
  D->wall_prev += jade_time_now() - t_start;
  free(draws);
  free(stats);
  free(kbuf);
  free(nch);
  free(ctx);
  return st;
}

/* ------------------------------------------------------------------ the finish ------- */

/* Rank 0, with every chain's record: the outputs, compare.txt, OUT.partial -> OUT. */
static jade_status finish_rank0(driver *D, const unsigned char *recs, size_t rec, jade_mcmc_health *health) {
  const jade_mcmc_run_options *o = D->o;
  const run_t *R = D->r;
  char path[4400];
  jade_status st = JADE_OK;
  chain_t *all = calloc((size_t)R->n_chains, sizeof *all);
  if (!all) return jade_error(JADE_ERR_NOMEM, "out of memory");
  for (int c = 0; c < R->n_chains && !st; c++) {
    all[c].id = c;
    all[c].mmean = malloc(sizeof(double) * R->nmap);
    all[c].mm2 = malloc(sizeof(double) * R->nmap);
    if (!all[c].mmean || !all[c].mm2) st = jade_error(JADE_ERR_NOMEM, "out of memory");
    if (!st) st = jade_fieldpost_create(&D->fs, &all[c].fp);
    if (!st) st = mcmc_record_read(&all[c], R, recs + rec * c, rec);
  }
  if (!st) {
    size_t len = strlen(D->settings) + 256;
    char *set2 = malloc(len);
    if (set2) {
      snprintf(set2, len, "%smpi_ranks = %d\nomp_threads = %d\n", D->settings, D->dist->size, omp_get_max_threads());
      st = mcmc_write_outputs(D->partial, R, all, D->sc, D->obs.noise, o->obs_path, set2, D->wall_prev, D->wall_sampling, D->em,
                              D->n_refits, health);
      free(set2);
    } else {
      st = jade_error(JADE_ERR_NOMEM, "out of memory");
    }
  }
  free_chains(all, R->n_chains);
  if (!st && o->compare_dir) {
    snprintf(path, sizeof path, "%s/compare.txt", D->partial);
    st = mcmc_write_compare(D->partial, o->out_dir, o->compare_dir, path);
  }
  snprintf(path, sizeof path, "%s/state.bin", D->partial);
  if (!st) st = jade_remove_file(path);
  if (!st) st = jade_publish_dir(D->partial, o->out_dir);
  return st;
}

jade_status jade_mcmc_run(const jade_mcmc_run_options *o, jade_mcmc_run_result *res) {
  jade_dist single = {0, 1, 0};
  memset(res, 0, sizeof *res);
  run_t R;
  memset(&R, 0, sizeof R);
  driver D;
  memset(&D, 0, sizeof D);
  D.o = o;
  D.dist = o->dist ? o->dist : &single;
  D.r = &R;
  int stopped = 0;
  jade_status st = setup(&D);
  if (!st) st = create_chains(&D);
  if (!st) st = resume_or_start(&D);
  if (!st) {
    refit_schedule(&D);
    st = sample(&D, &stopped);
  }
  res->iteration = D.it;
  res->seconds = D.wall_prev;
  if (!st && !stopped) {
    size_t rec = mcmc_record_size(D.nuts_size, &R, R.samples);
    unsigned char *recs = NULL;
    st = mcmc_gather_records(D.dist, D.ch, D.n_local, &R, rec, &recs);
    if (!st && D.dist->rank == 0) st = finish_rank0(&D, recs, rec, &res->health);
    free(recs);
    if (jade_dist_max_int(D.dist, st != JADE_OK) && !st) st = jade_error(JADE_ERR_IO, "rank 0 failed to finish %s", o->out_dir);
    res->finished = !st;
  }
  free_chains(D.ch, D.n_local);
  free(D.settings);
  free(D.ident);
  jade_emulator_free(D.em);
  jade_fieldpost_free(D.fp0);
  jade_theory_free(D.theory_obj);
  jade_observation_free(&D.obs);
  return st;
}
