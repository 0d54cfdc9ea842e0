/* The model's condition image and the random masks / noise maps of masked training
 * (include/jade/condition.h). */
#include "jade/condition.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int jade_condition_channels(const jade_norm *norm) { return (norm->masked ? 3 : 1) * norm->n_bins; }

jade_status jade_condition_build(const jade_norm *norm, const float *d, const float *mask, const float *sigma,
                                 const double *noise, int noise_check, const char *what, float *cond) {
  const int B = norm->n_bins, n = norm->n_pix;
  const size_t np = (size_t)n * n;
  if (!norm->masked) {
    if (mask) {
      size_t masked = 0;
      for (size_t i = 0; i < (size_t)B * np; i++) masked += !(mask[i] > 0.5f);
      if (masked)
        return jade_error(JADE_ERR_INVALID, "%s: %.1f%% of the pixels are masked, but the model was trained on full maps "
                          "(model.condition = kappa): use a model trained with model.condition = masked",
                          what, 100.0 * (double)masked / (double)((size_t)B * np));
    }
    for (int i = 0; i < B; i++) {
      const float inv = (float)(1.0 / norm->map_std[i]);
      for (size_t p = 0; p < np; p++) cond[i * np + p] = d ? d[i * np + p] * inv : 0.0f;
    }
    return JADE_OK;
  }
  const double lim = norm->noise_ln_max + 0.01;
  for (int i = 0; i < B; i++) {
    const float inv = (float)(1.0 / norm->map_std[i]);
    for (size_t p = 0; p < np; p++) {
      const size_t k = i * np + p;
      const int m = mask ? mask[k] > 0.5f : 1;
      float r = 0;
      if (m) {
        const double s = sigma ? sigma[k] : noise ? noise[i] : norm->noise[i];
        if (!(s > 0 && isfinite(s)))
          return jade_error(JADE_ERR_INVALID, "%s: noise of bin %d at pixel (x %zu, y %zu) is %g: not a noise level (> 0)", what, i,
                            p % (size_t)n, p / (size_t)n, s);
        const double lr = log(s / norm->noise[i]);
        if (noise_check && !(fabs(lr) <= lim))
          return jade_error(JADE_ERR_INVALID, "%s: noise of bin %d at pixel (x %zu, y %zu) is %.3g times the training noise %.6g; "
                            "the model was trained with ratios in [%.3g, %.3g] (posteriors would be wrong; --ignore-noise "
                            "to sample anyway)", what, i, p % (size_t)n, p / (size_t)n, exp(lr), norm->noise[i],
                            exp(-norm->noise_ln_max), exp(norm->noise_ln_max));
        r = (float)lr;
      }
      cond[k] = m && d ? d[k] * inv : 0.0f;
      cond[(size_t)B * np + k] = (float)(1 - m);
      cond[(size_t)2 * B * np + k] = r;
    }
  }
  return JADE_OK;
}
