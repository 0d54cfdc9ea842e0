/* The [model] and [train] config sections of a JADE training (docs/config.md) and the
 * moments of the prior used to normalise theta. */
#include "jade/train.h"

#include <math.h>
#include <string.h>

/* ======================================================================================
 * Config sections
 * ==================================================================================== */
static jade_status get_int(jade_config *cfg, const char *key, long lo, long hi, int *out) {
  long v;
  jade_status st = jade_config_get_int(cfg, key, lo, hi, &v);
  if (!st) *out = (int)v;
  return st;
}
static jade_status get_float(jade_config *cfg, const char *key, double lo, double hi, float *out) {
  double v;
  jade_status st = jade_config_get_double_range(cfg, key, lo, hi, &v);
  if (!st) *out = (float)v;
  return st;
}

jade_status jade_model_config_read(jade_config *cfg, jade_model_config *mc) {
  memset(mc, 0, sizeof *mc);
  jade_status st;
  if ((st = get_int(cfg, "n_pix", 4, 65536, &mc->img_size))) return st;
  if ((st = get_int(cfg, "n_bins", 1, JADE_MAX_BINS, &mc->channels))) return st;
  mc->cond_channels = mc->channels;
  /* optional: "masked" adds a mask and a noise-map channel per bin (jade/trained_model.h) */
  if (jade_config_has(cfg, "model.condition")) {
    const char *cond;
    if ((st = jade_config_get_string(cfg, "model.condition", &cond))) return st;
    if (!strcmp(cond, "masked"))
      mc->cond_channels = 3 * mc->channels;
    else if (strcmp(cond, "kappa"))
      return jade_error(JADE_ERR_CONFIG, "key 'model.condition' = '%s': expected 'kappa' or 'masked'", cond);
  }
  mc->n_params = JADE_N_THETA;
  if ((st = get_int(cfg, "model.patch", 1, 1024, &mc->patch))) return st;
  if ((st = get_int(cfg, "model.cond_patch", 0, 1024, &mc->cond_patch))) return st;
  if ((st = get_int(cfg, "model.depth", 1, 1000, &mc->depth))) return st;
  if ((st = get_int(cfg, "model.width", 4, 65536, &mc->width))) return st;
  if ((st = get_int(cfg, "model.heads", 1, 1024, &mc->heads))) return st;
  if ((st = get_int(cfg, "model.n_cosmo_tokens", 1, 4096, &mc->n_cosmo_tokens))) return st;
  if ((st = get_int(cfg, "model.mlp_hidden", 0, 1 << 20, &mc->mlp_hidden))) return st;
  if ((st = get_int(cfg, "model.bottleneck", 1, 1 << 20, &mc->bottleneck))) return st;
  /* optional (default 0 = bottleneck), so configurations written before this key still load */
  if (jade_config_has(cfg, "model.cond_bottleneck") &&
      (st = get_int(cfg, "model.cond_bottleneck", 0, 1 << 20, &mc->cond_bottleneck)))
    return st;
  if ((st = get_int(cfg, "model.time_freq", 2, 1 << 16, &mc->time_freq))) return st;
  if ((st = get_float(cfg, "model.max_period", 1, 1e12, &mc->max_period))) return st;
  if ((st = get_float(cfg, "model.rope_theta", 1, 1e12, &mc->rope_theta))) return st;
  if ((st = get_float(cfg, "model.norm_eps", 1e-12, 1, &mc->norm_eps))) return st;
  if ((st = get_float(cfg, "model.dropout", 0, 0.95, &mc->dropout))) return st;
  if ((st = jade_model_config_check(mc))) return jade_error_context(st, "[model] section");
  return JADE_OK;
}

jade_status jade_train_config_read(jade_config *cfg, jade_train_config *tc) {
  memset(tc, 0, sizeof *tc);
  jade_status st;
  long v;
  const char *s;
#define L(key, lo, hi, dst) \
  if ((st = jade_config_get_int(cfg, "train." key, lo, hi, &v))) return st; \
  dst = v
#define D(key, lo, hi, dst) \
  if ((st = jade_config_get_double_range(cfg, "train." key, lo, hi, &dst))) return st
  L("batch", 1, 1L << 24, tc->batch);
  L("micro_batch", 1, 1L << 24, tc->micro_batch);
  L("steps", 1, 1L << 38, tc->steps);
  L("warmup", 0, 1L << 38, tc->warmup);
  D("lr_peak", 0, 10, tc->lr_peak);
  D("lr_end", 0, 10, tc->lr_end);
  D("beta1", 0, 0.999999, tc->beta1);
  D("beta2", 0, 0.999999999, tc->beta2);
  D("adam_eps", 0, 1, tc->adam_eps);
  D("weight_decay", 0, 10, tc->weight_decay);
  D("grad_clip", 0, 1e30, tc->grad_clip);
  D("theta_weight", 0, 1e6, tc->theta_weight);
  D("ema_decay", 0, 1, tc->ema_decay);
  L("ema_start", 0, 1L << 38, tc->ema_start);
  double mu, sigma, t_eps;
  D("t_mu", -100, 100, mu);
  D("t_sigma", 1e-6, 100, sigma);
  D("t_eps", 1e-6, 1, t_eps);
  tc->flow.mu = (float)mu;
  tc->flow.sigma = (float)sigma;
  tc->flow.t_eps = (float)t_eps;
  L("flip", 0, 1, tc->flip);
  /* optional (default 0), so configurations written before these keys still load */
  if (jade_config_has(cfg, "train.rot90")) {
    L("rot90", 0, 1, tc->rot90);
  }
  if (jade_config_has(cfg, "train.roll")) {
    L("roll", 0, 1, tc->roll);
  }
  /* random masks and noise maps (model.condition = masked; docs/model.md) */
  tc->mask_max = 0.3;
  if (jade_config_has(cfg, "train.mask_prob")) D("mask_prob", 0, 1, tc->mask_prob);
  if (jade_config_has(cfg, "train.mask_max")) D("mask_max", 0, 0.9, tc->mask_max);
  if (jade_config_has(cfg, "train.noise_ln_scale")) D("noise_ln_scale", 0, 3, tc->noise_ln_scale);
  if (jade_config_has(cfg, "train.noise_ln_field")) D("noise_ln_field", 0, 3, tc->noise_ln_field);
  if ((st = jade_config_get_string(cfg, "train.theta_norm", &s))) return st;
  if (!strcmp(s, "prior"))
    tc->theta_norm_dataset = 0;
  else if (!strcmp(s, "dataset"))
    tc->theta_norm_dataset = 1;
  else
    return jade_error(JADE_ERR_CONFIG, "key 'train.theta_norm' = '%s': expected 'prior' or 'dataset'", s);
  D("val_fraction", 0, 0.9, tc->val_fraction);
  L("val_max", 0, 1L << 40, tc->val_max);
  L("val_every", 1, 1L << 38, tc->val_every);
  L("log_every", 1, 1L << 38, tc->log_every);
  L("checkpoint_every", 1, 1L << 38, tc->checkpoint_every);
  L("seed", 0, 0x7fffffffffffffffL, tc->seed);
#undef L
#undef D
  if (tc->micro_batch > tc->batch)
    return jade_error(JADE_ERR_CONFIG, "train.micro_batch = %ld exceeds train.batch = %ld", tc->micro_batch, tc->batch);
  if (tc->warmup > tc->steps)
    return jade_error(JADE_ERR_CONFIG, "train.warmup = %ld exceeds train.steps = %ld", tc->warmup, tc->steps);
  return JADE_OK;
}

/* ======================================================================================
 * Prior moments
 * ==================================================================================== */
static double npdf(double x) { return isfinite(x) ? exp(-0.5 * x * x) / sqrt(2 * M_PI) : 0.0; }
static double ncdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

void jade_prior_moments(const jade_prior1d *p, double *mean, double *sd) {
  switch (p->kind) {
    case JADE_PRIOR_NORMAL:
      *mean = p->mean;
      *sd = p->sd;
      return;
    case JADE_PRIOR_UNIFORM:
      *mean = 0.5 * (p->lo + p->hi);
      *sd = (p->hi - p->lo) / sqrt(12.0);
      return;
    case JADE_PRIOR_TRUNCNORMAL: {
      /* a, b standardised bounds, Z = Phi(b) - Phi(a):
       * mean = mu + sd (phi(a) - phi(b)) / Z,
       * var = sd^2 [1 + (a phi(a) - b phi(b)) / Z - ((phi(a) - phi(b)) / Z)^2]. */
      double a = (p->lo - p->mean) / p->sd, b = (p->hi - p->mean) / p->sd;
      double Z = ncdf(b) - ncdf(a);
      double pa = npdf(a), pb = npdf(b);
      double apa = isfinite(a) ? a * pa : 0.0, bpb = isfinite(b) ? b * pb : 0.0;
      double r = (pa - pb) / Z;
      *mean = p->mean + p->sd * r;
      double var = p->sd * p->sd * (1 + (apa - bpb) / Z - r * r);
      *sd = sqrt(var > 0 ? var : 0);
      return;
    }
  }
  *mean = 0;
  *sd = 1;
}
