/* A trained JADE model: its network, the normalisation between physical and network units,
 * the flow settings, and the safetensors files that hold them (docs/model.md "Model files").
 * Everything that only uses a trained model (sampling, validation, conversion) needs this
 * header and not the training one. */
#ifndef JADE_TRAINED_MODEL_H
#define JADE_TRAINED_MODEL_H
#include "jade/model.h"
#include "jade/safetensors.h"
#include "jade/sim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Everything needed to map data to network units and back. The network sees
 * theta_n = (theta - theta_mean) / theta_std and kappa_n = kappa / map_std (per bin, field
 * mean fixed to 0); the condition is (kappa + noise_i n) / map_std_i, n ~ N(0, 1). */
typedef struct {
  int n_bins, n_pix;
  double size_deg;
  double theta_mean[JADE_N_THETA], theta_std[JADE_N_THETA];
  double map_std[JADE_MAX_BINS];
  double noise[JADE_MAX_BINS]; /* per-pixel convergence noise sigma_i of the training data */
  int theta_norm_dataset;      /* 0: theta moments of the prior, 1: of the training split */
  /* condition layout (docs/model.md "Masks and noise maps"): 0 = the noisy convergence only
   * (n_bins channels); 1 = "masked": 3 n_bins channels, m d / map_std, 1 - m, and
   * m ln(sigma(x) / noise_i), with m the mask (1 observed) and sigma(x) the per-pixel noise */
  int masked;
  double noise_ln_max; /* masked layout: the largest |ln(sigma(x) / noise_i)| of the training */
} jade_norm;

/* Write a model file: the tensors of m's table taken from `weights` (a buffer laid out like
 * the model's parameters; NULL = the model's own), plus metadata (format, model config,
 * normalisation, flow settings, step, config text). */
jade_status jade_checkpoint_write_model(const char *path, const jade_model *m, const float *weights,
                                        const jade_norm *norm, const jade_flow_config *flow,
                                        long step, const char *config_text);

typedef struct {
  jade_model *model;
  jade_norm norm;
  jade_flow_config flow;
  long step;
  char *config_text;
  char path[4200];  /* the .safetensors file read */
} jade_trained_model;

/* Load MODELDIR/model.safetensors or a .safetensors file written by the above. */
jade_status jade_trained_model_load(const char *path, jade_trained_model **out);
void jade_trained_model_free(jade_trained_model *tm);
/* Write tm (weights, metadata, config text) to path as F32 or F16 (IEEE half: half the size,
 * relative rounding <= 2^-11; a weight beyond +-65504 is an error). max_rel_err (may be
 * NULL) receives the largest relative rounding of a weight whose half is normal. */
jade_status jade_trained_model_write(const jade_trained_model *tm, const char *path, jade_dtype dtype,
                                     double *max_rel_err);

/* Parsers of the metadata entries describing a model config ("model.*") and a norm
 * ("norm.*"; numbers are written with %.17g, so they read back exactly). */
jade_status jade_model_config_from_meta(const jade_safetensors *st, jade_model_config *mc);
jade_status jade_norm_from_meta(const jade_safetensors *st, jade_norm *norm);

#ifdef __cplusplus
}
#endif
#endif
