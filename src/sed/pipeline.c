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
