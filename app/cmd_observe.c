/* jade observe: one mock observation at the config's cosmology.
 *   OBS.fits:       GAMMA1, GAMMA2 (noisy shear, cube bins x n x n) and KAPPA (Kaiser-Squires
 *                   E-mode convergence of the noisy shear), noise level and pixel scale in
 *                   every header;
 *   OBS_truth.fits: KAPPA (noise-free convergence) with theta, S_8, Omega_m and lambda.
 * With --mask-max (or a noise-map option) a masked mock instead: KAPPA with convergence-space
 * noise, MASK and NOISEMAP (jade_observation_make_masked). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "jade/io.h"
#include "jade/observation.h"
#include "jade/sim.h"

int jade_cmd_observe(int argc, char **argv) {
  jade_option opts[] = {
      JADE_CONFIG_OPTIONS,
      {"seed", "S", "random seed (maps and shape noise)", "1", 0, 0, NULL, 0},
      {"out", "OBS.fits", "output FITS file (the truth goes to OBS_truth.fits); neither may exist", NULL, 0, 0, NULL, 0},
      {"mask-max", "F", "masked mock: a random survey-edge strip and star holes covering U(0, F) of the area (0-1)", NULL, 0, 0, NULL, 0},
      {"noise-ln-scale", "S", "masked mock: noise scale e^U(-S, S) around the survey's", NULL, 0, 0, NULL, 0},
      {"noise-ln-field", "A", "masked mock: smooth noise variation over the field, ln amplitude U(0, A)", NULL, 0, 0, NULL, 0},
      {"force", NULL, "overwrite OBS.fits and OBS_truth.fits if they exist", NULL, 0, 0, NULL, 0},
      {NULL, NULL, NULL, NULL, 0, 0, NULL, 0}};
  int r = jade_cli_parse(argc, argv, "jade observe --out OBS.fits [options]",
                         "Make one mock survey observation at the config's cosmology: noisy shear per bin\n"
                         "plus its Kaiser-Squires convergence, and the noise-free truth beside it.",
                         opts, NULL, 0, NULL);
  if (r) {
    jade_cli_free(opts);
    return r > 0 ? 0 : 2;
  }
  jade_config *cfg = NULL;
  jade_sim_config sc;
  const char *out = jade_cli_opt(opts, "out")->value;
  long seed = 0;
  jade_status st = out ? JADE_OK : jade_error(JADE_ERR_INVALID, "--out OBS.fits is required");
  if (!st) st = jade_cli_long(opts, "seed", 0, 0x7fffffffffffffffL, &seed);
  if (!st && !jade_cli_opt(opts, "force")->seen) {
    char truth[4200];
    jade_observation_truth_path(out, truth, sizeof truth);
    if (jade_path_exists(out))
      st = jade_error(JADE_ERR_IO, "%s: already exists (choose another --out, or --force to overwrite it)", out);
    else if (jade_path_exists(truth))
      st = jade_error(JADE_ERR_IO, "%s: already exists (choose another --out, or --force to overwrite it)", truth);
  }
  if (!st) st = jade_cli_load_config(opts, &cfg);
  if (!st) st = jade_sim_config_read(cfg, &sc);
  if (!st) st = jade_config_check_unused(cfg, (const char *const[]){"", NULL});
  jade_mask_config mc = {.mask_prob = 1.0};
  const int masked = jade_cli_opt(opts, "mask-max")->seen || jade_cli_opt(opts, "noise-ln-scale")->seen ||
                     jade_cli_opt(opts, "noise-ln-field")->seen;
  if (!st && jade_cli_opt(opts, "mask-max")->seen) st = jade_cli_double(opts, "mask-max", 0.0, 0.9, &mc.mask_max);
  if (!st && jade_cli_opt(opts, "noise-ln-scale")->seen) st = jade_cli_double(opts, "noise-ln-scale", 0.0, 3.0, &mc.noise_ln_scale);
  if (!st && jade_cli_opt(opts, "noise-ln-field")->seen) st = jade_cli_double(opts, "noise-ln-field", 0.0, 3.0, &mc.noise_ln_field);
  if (!st) st = jade_observation_make_masked(&sc, (uint64_t)seed, masked ? &mc : NULL, out);
  jade_config_free(cfg);
  jade_cli_free(opts);
  if (st) return jade_cli_fail("observe");
  fprintf(stderr, "jade observe: wrote %s and its truth file\n", out);
  return 0;
}
