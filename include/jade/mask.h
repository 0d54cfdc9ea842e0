/* Random survey masks and noise maps: a survey-edge strip and star holes covering a drawn
 * fraction of the map, and a per-pixel noise level that varies smoothly over the field. They
 * train and validate masked models (jade/condition.h) and make masked mock observations
 * (jade observe --mask-max). */
#ifndef JADE_MASK_H
#define JADE_MASK_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  double mask_prob;      /* probability that a map gets a mask */
  double mask_max;       /* masked fraction drawn uniformly in [0, mask_max] */
  double noise_ln_scale; /* ln sigma / noise_i = s + a g(x): s ~ U(-noise_ln_scale, noise_ln_scale) */
  double noise_ln_field; /* a ~ U(0, noise_ln_field), g a smooth periodic field with max |g| = 1 */
} jade_mask_config;

/* Random numbers one map's mask and noise map use: Philox indices [base, base + this). */
#define JADE_MASK_DRAWS 1024

/* A random mask and ln noise ratio for an n x n map (shared by all bins) from Philox
 * (seed, stream) numbers base .. base + JADE_MASK_DRAWS - 1: with probability mask_prob a
 * survey-edge strip (half the time) and circular star holes (radius 0.5-3 pixels per 32
 * pixels of map) until the drawn fraction is reached; the noise field from the 12 Fourier
 * modes of a half plane with |k_x|, |k_y| <= 2 cycles per map (periodic, like the
 * simulator's maps). mask, lnr: n*n.
 * Returns the masked fraction. */
double jade_random_mask_noise(const jade_mask_config *mc, int n, uint64_t seed, uint64_t stream, uint64_t base, float *mask,
                              float *lnr);

/* The same pattern in every bin: mask (n_bins, npix), whose bin-0 slot holds the mask
 * jade_random_mask_noise drew, copied to every bin; sigma (n_bins, npix) = noise[b] e^lnr. */
void jade_mask_noise_bins(int n_bins, size_t npix, const double *noise, const float *lnr, float *mask, float *sigma);

#ifdef __cplusplus
}
#endif
#endif
