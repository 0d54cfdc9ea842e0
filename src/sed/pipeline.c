/* The `jade sed` pipelines: training jade's own population prior, mock catalogues (the fit: fitrun.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/io.h"
#include "jade/sed.h"
#include "sed_internal.h"

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

void sed_model_path(char *buf, size_t n, const char *dir, const char *file) {
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

jade_status sed_table_make(jade_sed_table *t, int nc, size_t nr) {
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
  sed_model_path(path, sizeof path, o->models, "photulator_cosmos26.safetensors");
  if (!st) st = jade_sed_photulator_load(path, NULL, 0, &p);
  sed_model_path(path, sizeof path, o->models, "noise_model.safetensors");
  if (!st) st = jade_sed_noise_model_load(path, &nm);
  sed_model_path(path, sizeof path, o->models, "stellar_mass_emulator.safetensors");
  if (!st) st = jade_sed_mass_load(path, &ms);
  if (!st) {
    if (o->source == JADE_SED_SOURCE_POPULATION) st = jade_sed_population_draw(p, o->seed, n, 24, o->mag_limit, theta, NULL);
    else st = jade_sed_prior_sample(&o->prior, o->seed, 0, n, theta);
  }
  if (!st) st = jade_sed_mock_photometry(p, nm, &o->dm, &o->noise_ode, o->seed, 0, n, theta, NULL, fo, sg);
  if (!st) st = jade_sed_mass_frac(ms, theta, n, mf);
  int nb = 26;
  if (!st) st = sed_table_make(&t, 1 + 2 * nb + 16 + 1, n);
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
