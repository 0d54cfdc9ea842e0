/* Survey observations as FITS files: writing mock observations (jade observe) and reading
 * them back as per-bin convergence maps for inference (jade sample, jade mcmc).
 *
 * OBS.fits HDUs (all float32 cubes [bin][y][x]):
 *   GAMMA1, GAMMA2  noisy shear components;  KAPPA  convergence (Kaiser-Squires E mode)
 * and, in every HDU header: NBINS, NPIX, SIZEDEG, PIXARCM, CDELT1/2, CRPIX1/2, CTYPE1/2,
 * CUNIT1/2 (WCS-like, plate carree tangent to the patch centre), NOISE<i> (per-pixel, per
 * shear component noise sigma of bin i), SEED.
 * Optional: MASK (1 observed, 0 masked) and NOISEMAP (per-pixel noise sigma of each shear
 * component), as written by jade catalog.
 * A user's own data needs only GAMMA1+GAMMA2 (or KAPPA; as named extensions or, for KAPPA,
 * a cube in the primary HDU) with the patch size as SIZEDEG or as the standard WCS pixel
 * scale CDELT1/CDELT2 (or CD1_1/CD2_2) in degrees, and the per-bin noise as NOISE<i> keys
 * or a NOISEMAP extension (its median per bin is used). OBS_truth.fits: KAPPA (noise-free) with theta keys OMEGA_C OMEGA_B SIGMA_8 H N_S
 * W_0, S_8, OMEGA_M and LAMBDA<i>. */
#ifndef JADE_OBSERVATION_H
#define JADE_OBSERVATION_H
#include "jade/mask.h"
#include "jade/sim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Simulate at sc->cosmo with `seed` and write OBS.fits (path) and its truth file. */
jade_status jade_observation_make(const jade_sim_config *sc, uint64_t seed, const char *path);
/* A masked mock (mc != NULL; mc NULL is jade_observation_make): a random mask and noise map
 * from jade_random_mask_noise (Philox (seed, JADE_RNG_MASK)), the same in every bin, and
 * convergence-space noise KAPPA = m (kappa + sigma(x) n(x)), sigma(x) = NOISE<i> e^lnr(x),
 * masked pixels 0: HDUs KAPPA, MASK and NOISEMAP (no shear: Kaiser-Squires inversion would
 * spread the mask's edges). */
jade_status jade_observation_make_masked(const jade_sim_config *sc, uint64_t seed, const jade_mask_config *mc,
                                         const char *path);
/* "dir/obs.fits" -> "dir/obs_truth.fits" */
void jade_observation_truth_path(const char *path, char *out, size_t out_len);

typedef struct {
  int n_bins, n_pix;
  double size_deg;
  double noise[JADE_MAX_BINS]; /* per-pixel convergence noise sigma of each bin */
  float *kappa;                /* [n_bins][n][n] noisy convergence */
  int from_shear;              /* 1 if converted from GAMMA1/GAMMA2 with Kaiser-Squires */
  float *mask;                 /* [n_bins][n][n] 1 observed / 0 masked, or NULL (all observed) */
  float *noise_map;            /* [n_bins][n][n] per-pixel noise sigma, or NULL (uniform noise[]) */
  double masked_fraction;      /* fraction of masked pixels over all bins (0 without MASK) */
} jade_observation;

/* Read an observation: shear if present (converted with Kaiser-Squires), else KAPPA. */
jade_status jade_observation_read(const char *path, jade_observation *obs);
void jade_observation_free(jade_observation *obs);
/* Read theta from a truth file (NaN-free; error if keys missing). */
jade_status jade_observation_read_truth(const char *truth_path, double theta[JADE_N_THETA], float **kappa,
                                        int *n_bins, int *n_pix);

#ifdef __cplusplus
}
#endif
#endif
