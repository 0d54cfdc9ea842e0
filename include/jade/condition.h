/* The condition image a JADE model sees (jade/trained_model.h, docs/model.md "Masks and noise
 * maps"); the random masks and noise maps that train a masked model are in jade/mask.h.
 *
 * Masked layout, per bin i and pixel x, with m the mask (1 observed, 0 masked), d the noisy
 * convergence and sigma(x) its per-pixel noise (noise_i = the training noise of the bin):
 *   channel i:            m d / map_std_i
 *   channel n_bins + i:   1 - m
 *   channel 2 n_bins + i: m ln(sigma(x) / noise_i)
 * so a fully observed map at the training noise gives the convergence-only channels plus
 * zeros: a model fine-tuned from a convergence-only one (jade_model_copy_expand_cond) starts
 * as exactly that model. */
#ifndef JADE_CONDITION_H
#define JADE_CONDITION_H
#include "jade/mask.h"
#include "jade/trained_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The condition (jade_condition_channels(norm), n, n) of an observation: d (bins, n, n)
 * noisy convergence (NULL: zeros, to check the mask and noise alone), mask (bins, n, n) or NULL (all observed), sigma (bins, n, n) per-pixel
 * noise or NULL: noise[i] everywhere in bin i (noise NULL too: the training noise). A convergence-only model refuses masked pixels (an
 * error naming `what`) and ignores sigma; a masked model refuses a noise ratio beyond its training range
 * (|ln(sigma / noise_i)| > noise_ln_max + 0.01) unless noise_check is 0, and non-positive or
 * non-finite sigma at observed pixels always. */
jade_status jade_condition_build(const jade_norm *norm, const float *d, const float *mask, const float *sigma,
                                 const double *noise, int noise_check, const char *what, float *cond);
int jade_condition_channels(const jade_norm *norm);

#ifdef __cplusplus
}
#endif
#endif
