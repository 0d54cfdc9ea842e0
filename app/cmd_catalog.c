/* jade catalog: bin a shear catalogue (FITS table or CSV: ra, dec, e1, e2, weight, bin) onto
 * the config's survey grid, with the mask of observed pixels and the per-pixel noise
 * (include/jade/catalog.h). The output is an observation file like jade observe's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "jade/catalog.h"
#include "jade/io.h"
#include "jade/sim.h"

static jade_status parse_centre(const char *s, double *ra, double *dec) {
  char *end;
  *ra = strtod(s, &end);
  if (end == s || *end != ',') return jade_error(JADE_ERR_INVALID, "--center '%s': expected RA,DEC in degrees", s);
  const char *t = end + 1;
  *dec = strtod(t, &end);
  if (end == t || *end || !isfinite(*ra) || !isfinite(*dec) || fabs(*dec) > 90.0 || *ra < -360.0 || *ra > 720.0)
    return jade_error(JADE_ERR_INVALID, "--center '%s': expected RA,DEC in degrees (|DEC| <= 90)", s);
  return JADE_OK;
}

int jade_cmd_catalog(int argc, char **argv) {
  jade_option opts[] = {
      JADE_CONFIG_OPTIONS,
      {"cat", "FILE", "shear catalogue: FITS table or CSV/text with columns ra dec e1 e2 [weight] bin", NULL, 0, 0,
       NULL, 0},
      {"out", "OBS.fits", "output observation (GAMMA1, GAMMA2, MASK, NOISEMAP)", NULL, 0, 0, NULL, 0},
      {"center", "RA,DEC", "patch centre in degrees (default: the catalogue's centre)", NULL, 0, 0, NULL, 0},
      {"bin-base", "B", "value of the first tomographic bin in the catalogue (0 or 1)", "0", 0, 0, NULL, 0},
      {"sigma-e", "S", "shape noise per component for every bin (default: estimated per bin)", NULL, 0, 0, NULL, 0},
      {"pixel-frame", NULL, "e1, e2 are in the map's pixel frame (x west) rather than (east, north)", NULL, 0, 0,
       NULL, 0},
      {"force", NULL, "overwrite an existing output", NULL, 0, 0, NULL, 0},
      {NULL, NULL, NULL, NULL, 0, 0, NULL, 0}};
  int r = jade_cli_parse(argc, argv, "jade catalog --cat FILE --out OBS.fits [options]",
                         "Bin a shear catalogue onto the survey grid of the config (n_pix, size_deg, n_bins):\n"
                         "weighted mean shear per pixel and bin, the mask of pixels without galaxies and the\n"
                         "per-pixel noise sigma_e sqrt(sum w^2) / sum w. Gnomonic projection about the centre.",
                         opts, NULL, 0, NULL);
  if (r) {
    jade_cli_free(opts);
    return r > 0 ? 0 : 2;
  }
  jade_config *cfg = NULL;
  jade_sim_config sc;
  jade_shear_catalog cat;
  jade_binned_shear m;
  memset(&cat, 0, sizeof cat);
  memset(&m, 0, sizeof m);
  const char *in = jade_cli_opt(opts, "cat")->value, *out = jade_cli_opt(opts, "out")->value;
  const char *centre = jade_cli_opt(opts, "center")->value;
  long base = 0;
  double sigma_e = 0.0;
  jade_status st = in ? JADE_OK : jade_error(JADE_ERR_INVALID, "--cat FILE is required");
  if (!st && !out) st = jade_error(JADE_ERR_INVALID, "--out OBS.fits is required");
  if (!st && !strcmp(in, out)) st = jade_error(JADE_ERR_INVALID, "--out %s is the catalogue itself", out);
  if (!st) st = jade_cli_long(opts, "bin-base", 0, 1, &base);
  if (!st && jade_cli_opt(opts, "sigma-e")->value) st = jade_cli_double(opts, "sigma-e", 1e-6, 2.0, &sigma_e);
  if (!st) st = jade_cli_load_config(opts, &cfg);
  if (!st) st = jade_sim_config_read(cfg, &sc);
  if (!st) st = jade_config_check_unused(cfg, (const char *const[]){"", NULL});
  jade_catalog_binning b;
  if (!st) {
    jade_catalog_binning_default(&b, sc.geom.n_bins, sc.geom.n_pix, sc.geom.size_deg);
    b.flip_e2 = !jade_cli_opt(opts, "pixel-frame")->seen;
    for (int i = 0; i < b.n_bins; i++) b.sigma_e[i] = sigma_e;
    if (centre) st = parse_centre(centre, &b.ra0, &b.dec0);
  }
  int force = jade_cli_opt(opts, "force")->seen;
  if (!st && !force && jade_path_exists(out))
    st = jade_error(JADE_ERR_IO, "%s exists (remove it, choose another --out or pass --force)", out);
  if (!st) st = jade_shear_catalog_read(in, (int)base, sc.geom.n_bins, &cat);
  if (!st) st = jade_shear_catalog_bin(&cat, &b, &m);
  m.source = in;
  if (!st) st = jade_binned_shear_write(&m, out, force);
  if (!st) {
    fprintf(stderr, "jade catalog: %zu galaxies on the grid (%zu outside), centre (%.5f, %.5f) deg\n", m.n_used,
            m.n_outside, m.ra0, m.dec0);
    for (int i = 0; i < m.n_bins; i++)
      fprintf(stderr, "  bin %d: sigma_e %.4f, median pixel noise %.4g, masked %.1f%%\n", i, m.sigma_e[i],
              m.noise_median[i], 100.0 * m.masked_fraction[i]);
    fprintf(stderr, "jade catalog: wrote %s\n", out);
  }
  jade_shear_catalog_free(&cat);
  jade_binned_shear_free(&m);
  jade_config_free(cfg);
  jade_cli_free(opts);
  return st ? jade_cli_fail("catalog") : 0;
}
