/* The `jade sed` pipelines: training jade's own population prior. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/io.h"
#include "jade/sed.h"

void jade_sed_train_prior_options_default(jade_sed_train_prior_options *o) {
  memset(o, 0, sizeof *o);
  o->n_train = 100000;
  o->seed = 1;
  o->mag_limit = 26.0;
  /* spec/popcosmos.md: MLP on [sin, cos](2 pi W t), 4 frequencies, W ~ N(0, 16^2), SiLU, 3 x 128 */
  o->net = (jade_sed_score_config){.dim = JADE_SED_NPAR, .n_cond = 0, .n_freq = 4, .n_hidden = 3, .width = 128,
                                   .act = JADE_ACT_SILU, .no_sigma = 0, .freq_std = 16.0};
  jade_sde_default(&o->net.sde, JADE_SDE_VP);
  jade_dsm_options_default(&o->dsm);
}

jade_status jade_sed_train_prior(const jade_sed_train_prior_options *o, double *final_loss) {
  if (!o->photulator || !o->out) return jade_error(JADE_ERR_INVALID, "train-prior: photulator and out paths needed");
  if (o->n_train < 100) return jade_error(JADE_ERR_INVALID, "train-prior: n_train %zu < 100", o->n_train);
  if (o->net.dim != JADE_SED_NPAR || o->net.n_cond)
    return jade_error(JADE_ERR_INVALID, "train-prior: the prior has 16 dimensions and no conditionals");
  jade_sed_photulator *p = NULL;
  jade_sed_score *s = NULL;
  double *theta = jade_alloc(o->n_train * JADE_SED_NPAR * sizeof(double));
  double *phi = jade_alloc(o->n_train * JADE_SED_NPAR * sizeof(double));
  jade_status st = theta && phi ? JADE_OK : JADE_ERR_NOMEM;
  size_t drawn = 0;
  if (!st) st = jade_sed_photulator_load(o->photulator, NULL, 0, &p);
  if (!st) st = jade_sed_population_draw(p, o->seed, o->n_train, 24, o->mag_limit, theta, &drawn);
  if (!st && o->dsm.verbose)
    fprintf(stderr, "train-prior: %zu of %zu candidates pass irac1 < %g\n", o->n_train, drawn, o->mag_limit);
  if (!st && o->table_out) {
    size_t shape[2] = {o->n_train, JADE_SED_NPAR};
    st = jade_npy_write(o->table_out, JADE_F64, 2, shape, theta);
  }
  if (!st) {
    for (size_t i = 0; i < o->n_train; i++) jade_sed_theta_to_phi(theta + i * 16, phi + i * 16);
    for (size_t q = 0; q < o->n_train * 16 && !st; q++)
      if (!isfinite(phi[q])) st = jade_error(JADE_ERR_NUMERIC, "train-prior: row %zu maps to a non-finite phi", q / 16);
  }
  if (!st) st = jade_sed_score_create(&o->net, o->seed, &s);
  if (!st) st = jade_dsm_train(s, phi, o->n_train, &o->dsm, final_loss);
  if (!st) {
    char desc[1024];
    snprintf(desc, sizeof desc,
             "jade population prior over phi (pop-cosmos parameterisation: N, probit of the 15 bounded parameters), "
             "trained by denoising score matching on %zu draws of jade's Prospector-alpha-like population selected "
             "by emulated IRAC ch1 < %g (seed %llu, %ld steps). NOT the published pop-cosmos prior.",
             o->n_train, o->mag_limit, (unsigned long long)o->seed, o->dsm.steps);
    st = jade_sed_score_save(s, o->out, desc);
  }
  jade_sed_photulator_free(p);
  jade_sed_score_free(s);
  free(theta);
  free(phi);
  return st;
}

static void model_path(char *buf, size_t n, const char *dir, const char *file) {
  snprintf(buf, n, "%s/%s", dir ? dir : "models/popcosmos", file);
}

/* A text twin of a .fits path: X.fits -> X.txt */
static void twin(char *buf, size_t n, const char *path, const char *ext) {
  snprintf(buf, n, "%s", path);
  char *dot = strrchr(buf, '.'), *slash = strrchr(buf, '/');
  if (dot && (!slash || dot > slash)) *dot = 0;
  size_t l = strlen(buf);
  snprintf(buf + l, n - l, "%s", ext);
}

static jade_status table_make(jade_sed_table *t, int nc, size_t nr) {
  memset(t, 0, sizeof *t);
  t->n_cols = nc;
  t->n_rows = nr;
  t->names = calloc((size_t)nc, sizeof(char *));
  t->col = calloc((size_t)nc, sizeof(double *));
  if (!t->names || !t->col) return jade_error(JADE_ERR_NOMEM, "table: out of memory");
  for (int c = 0; c < nc; c++)
    if (!(t->col[c] = calloc(nr ? nr : 1, sizeof(double)))) return jade_error(JADE_ERR_NOMEM, "table: out of memory");
  return JADE_OK;
}

void jade_sed_mock_options_default(jade_sed_mock_options *o) {
  memset(o, 0, sizeof *o);
  o->n = 1000;
  o->seed = 1;
  o->source = JADE_SED_SOURCE_POPULATION;
  jade_sed_prior_default(&o->prior);
  o->mag_limit = 26.0;
  jade_sed_data_model_default(&o->dm, 26);
  jade_pfode_options_default(&o->noise_ode);
  o->noise_ode.batch = 16;
}

jade_status jade_sed_mock(const jade_sed_mock_options *o) {
  char path[4200];
  jade_sed_photulator *p = NULL;
  jade_sed_score *nm = NULL;
  jade_sed_mass *ms = NULL;
  jade_sed_table t;
  memset(&t, 0, sizeof t);
  size_t n = o->n;
  if (!o->out || n < 1) return jade_error(JADE_ERR_INVALID, "sed mock: output path and n >= 1 needed");
  double *theta = jade_alloc(n * 16 * sizeof(double)), *fo = jade_alloc(n * 26 * sizeof(double));
  double *sg = jade_alloc(n * 26 * sizeof(double)), *mf = jade_alloc(n * sizeof(double));
  jade_status st = theta && fo && sg && mf ? JADE_OK : JADE_ERR_NOMEM;
  model_path(path, sizeof path, o->models, "photulator_cosmos26.safetensors");
  if (!st) st = jade_sed_photulator_load(path, NULL, 0, &p);
  model_path(path, sizeof path, o->models, "noise_model.safetensors");
  if (!st) st = jade_sed_noise_model_load(path, &nm);
  model_path(path, sizeof path, o->models, "stellar_mass_emulator.safetensors");
  if (!st) st = jade_sed_mass_load(path, &ms);
  if (!st) {
    if (o->source == JADE_SED_SOURCE_POPULATION) st = jade_sed_population_draw(p, o->seed, n, 24, o->mag_limit, theta, NULL);
    else st = jade_sed_prior_sample(&o->prior, o->seed, 0, n, theta);
  }
  if (!st) st = jade_sed_mock_photometry(p, nm, &o->dm, &o->noise_ode, o->seed, 0, n, theta, NULL, fo, sg);
  if (!st) st = jade_sed_mass_frac(ms, theta, n, mf);
  int nb = 26;
  if (!st) st = table_make(&t, 1 + 2 * nb + 16 + 1, n);
  if (!st) {
    char buf[128];
    t.names[0] = strdup("ID");
    for (int b = 0; b < nb; b++) {
      snprintf(buf, sizeof buf, "F_%s", jade_sed_photulator_band(p, b));
      t.names[1 + 2 * b] = strdup(buf);
      snprintf(buf, sizeof buf, "E_%s", jade_sed_photulator_band(p, b));
      t.names[2 + 2 * b] = strdup(buf);
    }
    for (int j = 0; j < 16; j++) {
      snprintf(buf, sizeof buf, "TRUE_%s", jade_sed_param_name(j));
      t.names[1 + 2 * nb + j] = strdup(buf);
    }
    t.names[1 + 2 * nb + 16] = strdup("TRUE_LOGM");
    for (size_t i = 0; i < n; i++) {
      t.col[0][i] = (double)i;
      for (int b = 0; b < nb; b++) {
        t.col[1 + 2 * b][i] = fo[i * nb + b];
        t.col[2 + 2 * b][i] = sg[i * nb + b];
      }
      for (int j = 0; j < 16; j++) t.col[1 + 2 * nb + j][i] = theta[i * 16 + j];
      t.col[1 + 2 * nb + 16][i] = jade_sed_log10_mass(theta + i * 16, mf[i]);
    }
    st = jade_sed_table_write_fits(o->out, "CATALOGUE", &t);
    if (!st) {
      twin(path, sizeof path, o->out, ".txt");
      st = jade_sed_table_write_text(path, &t);
    }
  }
  jade_sed_table_free(&t);
  jade_sed_photulator_free(p);
  jade_sed_score_free(nm);
  jade_sed_mass_free(ms);
  free(theta);
  free(fo);
  free(sg);
  free(mf);
  return st;
}

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
#define SUMMARY_NCOL (1 + 3 * JADE_SED_NQ + 4 + 16 + 2 + 6 + 2 + 3)

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
  static const char *const diag[13] = {"ACCEPT",  "LOGP_START", "ACCEPT_STRETCH", "ACCEPT_DE", "ACCEPT_HOP",
                                       "N_BURN",  "TAU_BURN",   "N_MODES",        "TRUE_Z",    "TRUE_LOGM",
                                       "PRIOR_ESS", "PRIOR_DZ", "PRIOR_DLOGM"};
  for (int k = 0; k < 13; k++) t->names[c++] = strdup(diag[k]);
}

/* Row i of the summary from galaxy i's summary s (id, true z and log M: NaN when unknown);
 * returns the largest integrated autocorrelation time over the parameters. */
static double summary_row(jade_sed_table *t, size_t i, const jade_sed_summary *s, double id, double tz, double tm) {
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
  t->col[c++][i] = (double)s->n_burn;
  t->col[c++][i] = s->tau_burn;
  t->col[c++][i] = s->n_modes;
  t->col[c++][i] = tz;
  t->col[c++][i] = tm;
  t->col[c++][i] = s->check_ess;
  t->col[c++][i] = s->check_dz;
  t->col[c++][i] = s->check_dm;
  return tmax;
}

/* Every row of the summary, and into rep the 68% / 95% coverage of the catalogue's true z and
 * log M (when it has them) and the medians of the largest tau and of the acceptance. */
static void summary_fill(jade_sed_table *t, const jade_sed_table *cat, const jade_sed_summary *S, size_t n,
                         jade_sed_fit_report *rep) {
  const double *id = jade_sed_table_column(cat, "ID");
  const double *tz = jade_sed_table_column(cat, "TRUE_z"), *tm = jade_sed_table_column(cat, "TRUE_LOGM");
  size_t inz = 0, inm = 0, inz95 = 0, inm95 = 0;
  double *taus = jade_alloc(n * sizeof(double) + 8), *accs = jade_alloc(n * sizeof(double) + 8);
  for (size_t i = 0; i < n; i++) {
    double tmax = summary_row(t, i, &S[i], id ? id[i] : (double)i, tz ? tz[i] : NAN, tm ? tm[i] : NAN);
    if (tz) inz += tz[i] >= S[i].lo68[15] && tz[i] <= S[i].hi68[15];
    if (tm) inm += tm[i] >= S[i].lo68[16] && tm[i] <= S[i].hi68[16];
    if (tz) inz95 += tz[i] >= S[i].lo95[15] && tz[i] <= S[i].hi95[15];
    if (tm) inm95 += tm[i] >= S[i].lo95[16] && tm[i] <= S[i].hi95[16];
    if (taus) taus[i] = tmax;
    if (accs) accs[i] = S[i].accept;
  }
  if (tz && n) rep->cov_z = (double)inz / n;
  if (tm && n) rep->cov_m = (double)inm / n;
  if (tz && n) rep->cov95_z = (double)inz95 / n;
  if (tm && n) rep->cov95_m = (double)inm95 / n;
  if (taus) rep->tau_max_median = median_of(taus, n);
  if (accs) rep->accept_median = median_of(accs, n);
  /* the surrogate check, when it was run */
  double sz = 0, sm = 0;
  size_t nc = 0;
  for (size_t i = 0; i < n && accs; i++)
    if (!isnan(S[i].check_ess)) {
      accs[nc++] = S[i].check_ess;
      sz += S[i].check_dz * S[i].check_dz;
      sm += S[i].check_dm * S[i].check_dm;
    }
  rep->check_ess_median = nc ? median_of(accs, nc) : NAN;
  rep->check_dz_rms = nc ? sqrt(sz / (double)nc) : NAN;
  rep->check_dm_rms = nc ? sqrt(sm / (double)nc) : NAN;
  free(taus);
  free(accs);
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

/* PREFIX_chains.npy: the chains (n galaxies x nk kept steps x W walkers x JADE_SED_NQ) thinned to
 * every thin-th kept step (float32). */
static jade_status chains_write(const char *prefix, const float *chain, size_t n, size_t nk, size_t W, int thin) {
  char path[4200];
  jade_status st = JADE_OK;
  size_t nk2 = (nk + (size_t)thin - 1) / (size_t)thin;
  float *c2 = jade_alloc(n * nk2 * W * JADE_SED_NQ * sizeof(float) + 8);
  if (!c2) st = JADE_ERR_NOMEM;
  for (size_t g = 0; g < n && c2; g++)
    for (size_t k = 0; k < nk2; k++)
      memcpy(c2 + ((g * nk2 + k) * W) * JADE_SED_NQ, chain + ((g * nk + k * thin) * W) * JADE_SED_NQ,
             W * JADE_SED_NQ * sizeof(float));
  size_t shape[4] = {n, nk2, W, JADE_SED_NQ};
  snprintf(path, sizeof path, "%s_chains.npy", prefix);
  if (!st) st = jade_npy_write(path, JADE_F32, 4, shape, c2);
  free(c2);
  return st;
}

jade_status jade_sed_fit_run(const jade_sed_fit_run_options *o, jade_sed_fit_report *rep) {
  char path[4200];
  memset(rep, 0, sizeof *rep);
  rep->cov_z = rep->cov_m = rep->cov95_z = rep->cov95_m = NAN;
  if (!o->catalogue || !o->out_prefix) return jade_error(JADE_ERR_INVALID, "sed fit: catalogue and output prefix needed");
  jade_sed_photulator *p = NULL;
  jade_sed_mass *ms = NULL;
  jade_sed_table cat, t;
  memset(&t, 0, sizeof t);
  jade_status st = jade_sed_table_read(o->catalogue, &cat);
  if (st) return st;
  model_path(path, sizeof path, o->models, "photulator_cosmos26.safetensors");
  st = jade_sed_photulator_load(path, NULL, 0, &p);
  model_path(path, sizeof path, o->models, "stellar_mass_emulator.safetensors");
  if (!st) st = jade_sed_mass_load(path, &ms);
  size_t n = cat.n_rows;
  if (o->max_galaxies && n > o->max_galaxies) n = o->max_galaxies;
  int nb = 26;
  double *fl = jade_alloc(n * nb * sizeof(double) + 8), *sg = jade_alloc(n * nb * sizeof(double) + 8);
  jade_sed_summary *S = jade_calloc(n ? n : 1, sizeof *S);
  const jade_ens_options *eo = &o->fit.ens;
  size_t nk = (size_t)(eo->n_steps / eo->thin), W = (size_t)eo->n_walkers;
  float *chain = jade_alloc(n * nk * W * JADE_SED_NQ * sizeof(float) + 8);
  if (!st && (!fl || !sg || !S || !chain)) st = jade_error(JADE_ERR_NOMEM, "sed fit: out of memory (%zu galaxies)", n);
  if (!st) st = fit_photometry(o->catalogue, &cat, p, n, fl, sg);
  double t0 = jade_time_now();
  if (!st) {
    jade_sed_posterior post = {.phot = p, .prior = &o->prior, .dm = o->dm, .n_gal = n, .flux = fl, .sigma = sg};
    st = jade_sed_fit(&post, ms, &o->fit, S, chain, &rep->t_prior, &rep->t_like);
  }
  rep->seconds = jade_time_now() - t0;
  rep->n_gal = n;
  /* outputs */
  if (!st) st = table_make(&t, SUMMARY_NCOL, n);
  if (!st) {
    summary_names(&t);
    summary_fill(&t, &cat, S, n, rep);
    st = summary_write(o->out_prefix, &t);
    if (!st && o->chain_thin > 0) st = chains_write(o->out_prefix, chain, n, nk, W, o->chain_thin);
  }
  jade_sed_table_free(&t);
  jade_sed_table_free(&cat);
  jade_sed_photulator_free(p);
  jade_sed_mass_free(ms);
  free(fl);
  free(sg);
  free(S);
  free(chain);
  return st;
}
