/* `jade sed fit`: a catalogue fitted block by block (jade_sed_fit), each block's summary rows
 * and chains written as soon as it is done into OUT_summary.partial.npy (a done flag, then the
 * summary columns) and OUT_chains.partial.npy, so that an interrupted run resumes at the first
 * unfinished block; blocks split round-robin over MPI ranks, which write disjoint rows of the
 * same files (a galaxy's chain does not depend on its block or rank: Philox per galaxy). At the
 * end rank 0 writes OUT_summary.{fits,txt,npy}, renames the chains and removes the partials. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jade/dist.h"
#include "jade/io.h"
#include "jade/sed.h"
#include "sed_internal.h"

void jade_sed_fit_run_options_default(jade_sed_fit_run_options *o) {
  memset(o, 0, sizeof *o);
  jade_sed_prior_default(&o->prior);
  jade_sed_data_model_default(&o->dm, 26);
  jade_sed_fit_options_default(&o->fit);
  o->chain_thin = 10;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static double median_of(double *v, size_t n) {
  if (!n) return NAN;
  qsort(v, n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The fluxes and errors of the first n galaxies (columns F_band, E_band of the catalogue) into
 * fl and sg (n x 26, galaxy-major). */
static jade_status fit_photometry(const char *catalogue, const jade_sed_table *cat, const jade_sed_photulator *p, size_t n,
                                  double *fl, double *sg) {
  const int nb = 26;
  for (int b = 0; b < nb; b++) {
    char name[128];
    snprintf(name, sizeof name, "F_%s", jade_sed_photulator_band(p, b));
    const double *f = jade_sed_table_column(cat, name);
    snprintf(name, sizeof name, "E_%s", jade_sed_photulator_band(p, b));
    const double *e = jade_sed_table_column(cat, name);
    if (!f || !e) return jade_error(JADE_ERR_FORMAT, "%s: column %s or F_ twin missing", catalogue, name);
    for (size_t i = 0; i < n; i++) {
      fl[i * nb + b] = f[i];
      sg[i * nb + b] = e[i];
    }
  }
  return JADE_OK;
}

/* Columns of the fit summary: ID, median and 68% interval of every quantity, 95% intervals of z
 * and log M, the autocorrelation time of each parameter, the sampler's diagnostics, the
 * truths (NaN when the catalogue has none) and the check of a surrogate prior (NaN without). */
#define SUMMARY_NCOL (1 + 3 * JADE_SED_NQ + 4 + 16 + 2 + 8 + 2 + 3 + 4)

/* The names of the summary columns (t from table_make with SUMMARY_NCOL columns). */
static void summary_names(jade_sed_table *t) {
  const char *qn[JADE_SED_NQ];
  for (int j = 0; j < 16; j++) qn[j] = jade_sed_param_name(j);
  qn[16] = "logM";
  char buf[128];
  int c = 0;
  t->names[c++] = strdup("ID");
  for (int j = 0; j < JADE_SED_NQ; j++) {
    snprintf(buf, sizeof buf, "%s_MED", qn[j]);
    t->names[c++] = strdup(buf);
    snprintf(buf, sizeof buf, "%s_LO68", qn[j]);
    t->names[c++] = strdup(buf);
    snprintf(buf, sizeof buf, "%s_HI68", qn[j]);
    t->names[c++] = strdup(buf);
  }
  for (int j = 15; j < JADE_SED_NQ; j++) {
    snprintf(buf, sizeof buf, "%s_LO95", qn[j]);
    t->names[c++] = strdup(buf);
    snprintf(buf, sizeof buf, "%s_HI95", qn[j]);
    t->names[c++] = strdup(buf);
  }
  for (int j = 0; j < 16; j++) {
    snprintf(buf, sizeof buf, "TAU_%s", qn[j]);
    t->names[c++] = strdup(buf);
  }
  static const char *const diag[19] = {"ACCEPT",  "LOGP_START", "ACCEPT_STRETCH", "ACCEPT_DE", "ACCEPT_HOP", "ACCEPT_RIDGE",
                                       "N_BURN",  "TAU_BURN",   "N_MODES",        "RHAT",      "TRUE_Z",
                                       "TRUE_LOGM", "PRIOR_ESS", "PRIOR_DZ", "PRIOR_DLOGM", "LOG_Z", "LOGP_TRUE",
                                       "LOGP_MAX", "LOGZ_SPREAD"};
  for (int k = 0; k < 19; k++) t->names[c++] = strdup(diag[k]);
}

/* Row i of the summary from galaxy i's summary s (id, true z and log M: NaN when unknown);
 * returns the largest integrated autocorrelation time over the parameters. */
static double summary_row(jade_sed_table *t, size_t i, const jade_sed_summary *s, double id, double tz, double tm,
                          double lp_true) {
  int c = 0;
  t->col[c++][i] = id;
  for (int j = 0; j < JADE_SED_NQ; j++) {
    t->col[c++][i] = s->median[j];
    t->col[c++][i] = s->lo68[j];
    t->col[c++][i] = s->hi68[j];
  }
  for (int j = 15; j < JADE_SED_NQ; j++) {
    t->col[c++][i] = s->lo95[j];
    t->col[c++][i] = s->hi95[j];
  }
  double tmax = 0;
  for (int j = 0; j < 16; j++) {
    t->col[c++][i] = s->tau[j];
    tmax = fmax(tmax, s->tau[j]);
  }
  t->col[c++][i] = s->accept;
  t->col[c++][i] = s->logp_start;
  t->col[c++][i] = s->accept_stretch;
  t->col[c++][i] = s->accept_de;
  t->col[c++][i] = s->accept_hop;
  t->col[c++][i] = s->accept_ridge;
  t->col[c++][i] = (double)s->n_burn;
  t->col[c++][i] = s->tau_burn;
  t->col[c++][i] = s->n_modes;
  t->col[c++][i] = s->rhat;
  t->col[c++][i] = tz;
  t->col[c++][i] = tm;
  t->col[c++][i] = s->check_ess;
  t->col[c++][i] = s->check_dz;
  t->col[c++][i] = s->check_dm;
  t->col[c++][i] = s->log_z;
  t->col[c++][i] = lp_true;
  t->col[c++][i] = s->logp_max;
  t->col[c++][i] = s->log_z_spread;
  return tmax;
}

/* The summary table as PREFIX_summary.fits, its text twin PREFIX_summary.txt and
 * PREFIX_summary.npy (n x columns, float64). */
static jade_status summary_write(const char *prefix, const jade_sed_table *t) {
  char path[4200];
  const size_t n = t->n_rows;
  const int nc = t->n_cols;
  snprintf(path, sizeof path, "%s_summary.fits", prefix);
  jade_status st = jade_sed_table_write_fits(path, "SUMMARY", t);
  if (!st) {
    snprintf(path, sizeof path, "%s_summary.txt", prefix);
    st = jade_sed_table_write_text(path, t);
  }
  if (!st) {
    double *arr = jade_alloc(n * (size_t)nc * sizeof(double) + 8);
    if (!arr) st = JADE_ERR_NOMEM;
    for (size_t i = 0; i < n && arr; i++)
      for (int k = 0; k < nc; k++) arr[i * nc + k] = t->col[k][i];
    size_t shape[2] = {n, (size_t)nc};
    snprintf(path, sizeof path, "%s_summary.npy", prefix);
    if (!st) st = jade_npy_write(path, JADE_F64, 2, shape, arr);
    free(arr);
  }
  return st;
}


/* The report from the finished table: coverage of the truths (when present), medians of the
 * largest tau and of the acceptance, the galaxies whose n_steps kept iterations are fewer than
 * 50 tau_max, and the surrogate check (when run). */
static void report_from_table(const jade_sed_table *t, long n_steps, int smc, jade_sed_fit_report *rep) {
  size_t n = t->n_rows;
  const double *zl = jade_sed_table_column(t, "z_LO68"), *zh = jade_sed_table_column(t, "z_HI68");
  const double *ml = jade_sed_table_column(t, "logM_LO68"), *mh = jade_sed_table_column(t, "logM_HI68");
  const double *zl9 = jade_sed_table_column(t, "z_LO95"), *zh9 = jade_sed_table_column(t, "z_HI95");
  const double *ml9 = jade_sed_table_column(t, "logM_LO95"), *mh9 = jade_sed_table_column(t, "logM_HI95");
  const double *tz = jade_sed_table_column(t, "TRUE_Z"), *tm = jade_sed_table_column(t, "TRUE_LOGM");
  const double *acc = jade_sed_table_column(t, "ACCEPT"), *ess = jade_sed_table_column(t, "PRIOR_ESS");
  const double *rh = jade_sed_table_column(t, "RHAT");
  const double *lpt = jade_sed_table_column(t, "LOGP_TRUE"), *lps = jade_sed_table_column(t, "LOGP_START");
  const double *lpm = jade_sed_table_column(t, "LOGP_MAX");
  const double *dz = jade_sed_table_column(t, "PRIOR_DZ"), *dm = jade_sed_table_column(t, "PRIOR_DLOGM");
  size_t inz = 0, inm = 0, inz9 = 0, inm9 = 0, nz = 0, nm = 0, nc = 0;
  double *taus = jade_alloc(n * sizeof(double) + 8), *accs = jade_alloc(n * sizeof(double) + 8), sz = 0, sm = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isnan(tz[i])) {
      nz++;
      inz += tz[i] >= zl[i] && tz[i] <= zh[i];
      inz9 += tz[i] >= zl9[i] && tz[i] <= zh9[i];
    }
    if (!isnan(tm[i])) {
      nm++;
      inm += tm[i] >= ml[i] && tm[i] <= mh[i];
      inm9 += tm[i] >= ml9[i] && tm[i] <= mh9[i];
    }
    double tmax = 0;
    for (int j = 0; j < 16; j++) {
      char name[64];
      snprintf(name, sizeof name, "TAU_%s", jade_sed_param_name(j));
      tmax = fmax(tmax, jade_sed_table_column(t, name)[i]);
    }
    if (taus) taus[i] = tmax;
    if (accs) accs[i] = acc[i];
    rep->n_short += !smc && !((double)n_steps >= 50.0 * tmax); /* SMC: the particles are the draws */
    /* the best point the fit found: the best start, or an SMC particle (fmax ignores NaN) */
    rep->n_missed += lpt[i] > fmax(lps[i], lpm[i]) + 2;
    rep->n_rhat += rh[i] > 1.01;
  }
  rep->cov_z = nz ? (double)inz / nz : NAN;
  rep->cov95_z = nz ? (double)inz9 / nz : NAN;
  rep->cov_m = nm ? (double)inm / nm : NAN;
  rep->cov95_m = nm ? (double)inm9 / nm : NAN;
  rep->tau_max_median = taus ? median_of(taus, n) : NAN;
  rep->accept_median = accs ? median_of(accs, n) : NAN;
  size_t nr = 0;
  for (size_t i = 0; i < n && accs; i++)
    if (isfinite(rh[i])) accs[nr++] = rh[i];
  rep->rhat_median = accs && nr ? median_of(accs, nr) : NAN;
  for (size_t i = 0; i < n && accs; i++)
    if (!isnan(ess[i])) {
      accs[nc++] = ess[i];
      sz += dz[i] * dz[i];
      sm += isnan(dm[i]) ? 0 : dm[i] * dm[i];
    }
  rep->check_ess_median = nc ? median_of(accs, nc) : NAN;
  rep->check_dz_rms = nc ? sqrt(sz / (double)nc) : NAN;
  rep->check_dm_rms = nc ? sqrt(sm / (double)nc) : NAN;
  free(taus);
  free(accs);
}

/* The key of a run: what must not change when it resumes (one line). */
static void run_key(const jade_sed_fit_run_options *o, size_t n, char *buf, size_t len) {
  const jade_sed_fit_options *f = &o->fit;
  const jade_ens_options *e = &f->ens;
  snprintf(buf, len,
           "jade sed fit: catalogue %s, %zu galaxies, prior %s (kind %d, N %.17g..%.17g, ode tol %.17g), zero points"
           " %.17g.., floor %.17g, nu %.17g, walkers %d, steps %ld, burn %ld, burn-tau %.17g, thin %d, p-de %.17g, a "
           "%.17g, seed %llu, block %zu, n-init %d, n-opt %d, n-lm %d, n-starts %d, ball %.17g, mode-nats %.17g, chain-thin "
           "%d, check %d x %d, emulators %s, anneal %d x %d from %.17g, sampler %d, leapfrog %d, temps %d from %.17g every "
           "%ld, ridge every %d, dense metric %d, smc %d x %.17g broad %.17g reference %d rounds %d runs %d\n",
           o->catalogue, n, o->prior_name ? o->prior_name : "box", (int)o->prior.kind, o->prior.N_lo, o->prior.N_hi,
           o->prior.ode.rtol, o->dm.zp[0], o->dm.error_floor, o->dm.nu, e->n_walkers, e->n_steps, e->n_burn, e->burn_tau,
           e->thin, e->p_de, e->a, (unsigned long long)e->seed, f->block, f->n_init, f->n_opt, f->n_lm, f->n_starts, f->ball,
           f->mode_nats, o->chain_thin, f->check_prior != NULL, f->check_draws,
           jade_sed_emu_precision_name(f->emulators), f->anneal_stages, f->anneal_iters, f->anneal_beta0,
           (int)f->sampler, f->hmc_leapfrog, f->hmc_temps, f->hmc_beta_min, f->hmc_swap_every, f->hmc_ridge_every,
           f->hmc_dense_metric, f->smc_mutations, f->smc_ess, f->smc_broad, (int)f->smc_reference, f->smc_rounds, f->smc_runs);
}

/* OUT_fit.partial.txt holds the key: written by rank 0 when absent; a different key is refused.
 * Collective: every rank calls it, with the status it has so far (st), and all leave failed if
 * any rank failed. */
static jade_status run_key_check(const jade_dist *d, const char *path, const char *key, jade_status st) {
  if (!st && d->rank == 0) {
    FILE *f = fopen(path, "r");
    if (f) {
      char old[4096] = "";
      size_t r = fread(old, 1, sizeof old - 1, f);
      old[r] = 0;
      fclose(f);
      if (strcmp(old, key))
        st = jade_error(JADE_ERR_INVALID, "%s: a partial fit with other options (or catalogue) is there; remove the "
                        "OUT_*.partial* files or use another --out", path);
    } else
      st = jade_write_file_atomic(path, key);
  }
  int bad = jade_dist_max_int(d, st != JADE_OK);
  if (bad && !st) st = jade_error(JADE_ERR_INVALID, "%s: another rank failed before the fit", path);
  return st;
}

typedef struct {
  size_t n, nk, W, nk2, ncol;
  const double *tz, *tm, *id;
  const double *truth[16]; /* TRUE_<parameter> columns of a mock catalogue (all or none) */
  jade_npy_writer *sum, *chains;
  int chain_thin, has_chains;
  double *rowbuf;
  float *c2;
  jade_sed_table t1; /* one block's summary rows */
} run_io;

/* Fit galaxies [g0, g0 + ng) and write their rows and chains. */
static jade_status fit_block(const jade_sed_fit_run_options *o, const jade_sed_posterior *post, const jade_sed_mass *ms,
                             size_t g0, size_t ng, run_io *io, jade_sed_summary *S, float *chain, double *tp, double *tl) {
  jade_sed_posterior sub = *post;
  sub.n_gal = ng;
  sub.flux = post->flux + g0 * 26;
  sub.sigma = post->sigma + g0 * 26;
  jade_sed_fit_options fo = o->fit;
  fo.ens.first_id = o->fit.ens.first_id + g0;
  fo.block = ng;
  fo.verbose = 0;
  double a = 0, b = 0;
  jade_status st = jade_sed_fit(&sub, ms, &fo, S, chain, &a, &b);
  *tp += a;
  *tl += b;
  for (size_t g = 0; g < ng && !st; g++) {
    size_t i = g0 + g;
    /* a mock's truth: its log posterior (float64), to compare with LOGP_START (the optimiser's
     * best): a truth far above says the fit missed the posterior's main mode */
    double lpt = NAN, th[16], ph[16];
    for (int j = 0; j < 16 && io->truth[0]; j++) th[j] = io->truth[j][i];
    if (io->truth[0]) {
      jade_sed_posterior one = sub;
      one.emu = JADE_SED_EMU_F64;
      jade_sed_theta_to_phi(th, ph);
      st = jade_sed_posterior_logp(&one, 1, &g, ph, &lpt);
    }
    summary_row(&io->t1, g, &S[g], io->id ? io->id[i] : (double)i, io->tz ? io->tz[i] : NAN, io->tm ? io->tm[i] : NAN,
                lpt);
    io->rowbuf[g * (io->ncol + 1)] = 1.0; /* done */
    for (size_t c = 0; c < io->ncol; c++) io->rowbuf[g * (io->ncol + 1) + 1 + c] = io->t1.col[c][g];
    if (io->chains) {
      size_t nkw = io->nk * io->W;
      for (size_t k = 0; k < io->nk2; k++)
        memcpy(io->c2 + (g * io->nk2 + k) * io->W * JADE_SED_NQ,
               chain + (g * nkw + k * (size_t)io->chain_thin * io->W) * JADE_SED_NQ, io->W * JADE_SED_NQ * sizeof(float));
    }
  }
  /* chains first: a block whose summary rows say done has its chains on disk */
  if (!st && io->chains) st = jade_npy_writer_put_rows(io->chains, g0, ng, io->c2);
  if (!st) st = jade_npy_writer_put_rows(io->sum, g0, ng, io->rowbuf);
  return st;
}

/* Every rank reads the partial summary into the final table and computes the report from it;
 * then rank 0 writes the outputs and removes the partial files (collective: a barrier). */
static jade_status finish(const jade_sed_fit_run_options *o, const jade_dist *d, const char *psum, const char *pch,
                          const char *pkey, run_io *io, jade_sed_fit_report *rep) {
  jade_npy a;
  jade_sed_table t;
  memset(&t, 0, sizeof t);
  jade_status st = jade_npy_read(psum, 0, &a);
  if (st) {
    jade_dist_barrier(d);
    return st;
  }
  st = sed_table_make(&t, (int)io->ncol, io->n);
  const double *rows = a.data;
  for (size_t i = 0; i < io->n && !st; i++) {
    if (rows[i * (io->ncol + 1)] != 1.0)
      st = jade_error(JADE_ERR_IO, "%s: galaxy %zu was not fitted (a rank failed?)", psum, i);
    for (size_t c = 0; c < io->ncol; c++) t.col[c][i] = rows[i * (io->ncol + 1) + 1 + c];
  }
  jade_npy_release(&a);
  if (!st) {
    summary_names(&t);
    report_from_table(&t, o->fit.ens.n_steps, o->fit.sampler == JADE_SED_SAMPLER_SMC, rep);
  }
  jade_dist_barrier(d); /* every rank has read the partial summary before rank 0 removes it */
  if (!st && d->rank == 0) {
    st = summary_write(o->out_prefix, &t);
    char path[4200];
    snprintf(path, sizeof path, "%s_chains.npy", o->out_prefix);
    if (!st && io->has_chains && rename(pch, path)) st = jade_error(JADE_ERR_IO, "%s: cannot rename to %s", pch, path);
    if (!st) st = jade_remove_file(psum);
    if (!st) st = jade_remove_file(pkey);
  }
  jade_sed_table_free(&t);
  return st;
}

/* Rows of the partial summary already marked done (NULL flags when it does not exist yet). */
static jade_status done_flags(const char *psum, size_t n, size_t ncol, unsigned char *done) {
  memset(done, 0, n);
  struct stat sb;
  if (stat(psum, &sb)) return JADE_OK;
  jade_npy a;
  jade_status st = jade_npy_read(psum, 0, &a);
  if (st) return st;
  if (a.dtype != JADE_F64 || a.ndim != 2 || a.shape[0] != n || a.shape[1] != ncol + 1)
    st = jade_error(JADE_ERR_FORMAT, "%s: partial summary of another shape; remove it", psum);
  for (size_t i = 0; i < n && !st; i++) done[i] = ((const double *)a.data)[i * (ncol + 1)] == 1.0;
  jade_npy_release(&a);
  return st;
}

jade_status jade_sed_fit_run(const jade_sed_fit_run_options *o, jade_sed_fit_report *rep) {
  char path[4200], psum[4200], pch[4200], pkey[4200], key[4096];
  memset(rep, 0, sizeof *rep);
  rep->cov_z = rep->cov_m = rep->cov95_z = rep->cov95_m = NAN;
  if (!o->catalogue || !o->out_prefix) return jade_error(JADE_ERR_INVALID, "sed fit: catalogue and output prefix needed");
  jade_dist one = {0, 1, 0};
  const jade_dist *d = o->dist ? o->dist : &one;
  jade_sed_photulator *p = NULL;
  jade_sed_mass *ms = NULL;
  jade_sed_table cat;
  run_io io;
  memset(&io, 0, sizeof io);
  jade_status st = jade_sed_table_read(o->catalogue, &cat);
  if (st) return st;
  sed_model_path(path, sizeof path, o->models, "photulator_cosmos26.safetensors");
  st = jade_sed_photulator_load(path, NULL, 0, &p);
  sed_model_path(path, sizeof path, o->models, "stellar_mass_emulator.safetensors");
  if (!st) st = jade_sed_mass_load(path, &ms);
  size_t n = cat.n_rows, B = o->fit.block ? o->fit.block : 1;
  if (o->max_galaxies && n > o->max_galaxies) n = o->max_galaxies;
  const jade_ens_options *eo = &o->fit.ens;
  io.n = n;
  io.nk = (size_t)(eo->n_steps / eo->thin);
  io.W = (size_t)eo->n_walkers;
  io.chain_thin = o->chain_thin;
  io.nk2 = o->chain_thin > 0 ? (io.nk + (size_t)o->chain_thin - 1) / (size_t)o->chain_thin : 0;
  io.has_chains = io.nk2 > 0;
  io.ncol = SUMMARY_NCOL;
  io.id = jade_sed_table_column(&cat, "ID");
  io.tz = jade_sed_table_column(&cat, "TRUE_z");
  io.tm = jade_sed_table_column(&cat, "TRUE_LOGM");
  int n_truth = 0;
  for (int j = 0; j < 16; j++) {
    char tn[64];
    snprintf(tn, sizeof tn, "TRUE_%s", jade_sed_param_name(j));
    n_truth += (io.truth[j] = jade_sed_table_column(&cat, tn)) != NULL;
  }
  if (n_truth < 16) io.truth[0] = NULL;
  double *fl = jade_alloc(n * 26 * sizeof(double) + 8), *sg = jade_alloc(n * 26 * sizeof(double) + 8);
  jade_sed_summary *S = jade_calloc(B, sizeof *S);
  float *chain = jade_alloc(B * io.nk * io.W * JADE_SED_NQ * sizeof(float) + 8);
  io.rowbuf = jade_alloc(B * (io.ncol + 1) * sizeof(double));
  io.c2 = jade_alloc(B * (io.nk2 ? io.nk2 : 1) * io.W * JADE_SED_NQ * sizeof(float));
  unsigned char *done = jade_alloc(n + 8);
  if (!st && (!fl || !sg || !S || !chain || !io.rowbuf || !io.c2 || !done))
    st = jade_error(JADE_ERR_NOMEM, "sed fit: out of memory (%zu galaxies)", n);
  if (!st) st = fit_photometry(o->catalogue, &cat, p, n, fl, sg);
  if (!st) st = sed_table_make(&io.t1, (int)io.ncol, B);
  snprintf(psum, sizeof psum, "%s_summary.partial.npy", o->out_prefix);
  snprintf(pch, sizeof pch, "%s_chains.partial.npy", o->out_prefix);
  snprintf(pkey, sizeof pkey, "%s_fit.partial.txt", o->out_prefix);
  run_key(o, n, key, sizeof key);
  st = run_key_check(d, pkey, key, st);
  if (!st) st = done_flags(psum, n, io.ncol, done);
  size_t shape_s[2] = {n, io.ncol + 1}, shape_c[4] = {n, io.nk2, io.W, JADE_SED_NQ};
  if (!st) st = jade_npy_writer_open(psum, JADE_F64, 2, shape_s, 1, &io.sum);
  if (!st && io.nk2) st = jade_npy_writer_open(pch, JADE_F32, 4, shape_c, 1, &io.chains);
  jade_sed_posterior post = {.phot = p, .prior = &o->prior, .dm = o->dm, .n_gal = n, .flux = fl, .sigma = sg};
  double t0 = jade_time_now(), tp = 0, tl = 0;
  size_t nb = (n + B - 1) / B, mine = 0, fitted = 0;
  for (size_t b = (size_t)d->rank; b < nb; b += (size_t)d->size) mine++;
  for (size_t b = (size_t)d->rank, k = 0; b < nb && !st; b += (size_t)d->size, k++) {
    size_t g0 = b * B, ng = n - g0 < B ? n - g0 : B, left = 0;
    for (size_t g = g0; g < g0 + ng; g++) left += !done[g];
    if (!left) continue; /* resumed: this block is on disk */
    st = fit_block(o, &post, ms, g0, ng, &io, S, chain, &tp, &tl);
    fitted++;
    if (o->fit.verbose && d->rank == 0 && !st) {
      double el = jade_time_now() - t0;
      char e1[32], e2[32];
      jade_format_duration(el, e1, sizeof e1);
      jade_format_duration(el / (double)fitted * (double)(mine - k - 1), e2, sizeof e2);
      fprintf(stderr, "sed fit: block %zu/%zu of rank 0 (%zu galaxies in all), %s, %s left\n", k + 1, mine, n, e1, e2);
    }
  }
  if (io.sum) {
    jade_status s2 = jade_npy_writer_close(io.sum);
    if (!st) st = s2;
  }
  if (io.chains) {
    jade_status s2 = jade_npy_writer_close(io.chains);
    if (!st) st = s2;
  }
  /* every rank's blocks on disk before the outputs are assembled */
  if (jade_dist_max_int(d, st != JADE_OK) && !st) st = jade_error(JADE_ERR_IO, "sed fit: another rank failed");
  double times[3] = {jade_time_now() - t0, tp, tl};
  if (!st) st = jade_dist_sum_double(d, times, 3);
  rep->seconds = times[0] / d->size;
  rep->t_prior = times[1];
  rep->t_like = times[2];
  rep->n_gal = n;
  if (!st) st = finish(o, d, psum, pch, pkey, &io, rep);
  jade_dist_barrier(d);
  jade_sed_table_free(&io.t1);
  jade_sed_table_free(&cat);
  jade_sed_photulator_free(p);
  jade_sed_mass_free(ms);
  free(fl);
  free(sg);
  free(S);
  free(chain);
  free(io.rowbuf);
  free(io.c2);
  free(done);
  return st;
}
