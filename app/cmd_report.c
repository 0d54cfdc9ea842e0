/* jade report: a self-contained HTML page (DIR/report.html, images embedded) and the
 * figures as PNG files in DIR, for a jade sample, validate, mcmc, train or sed fit output
 * (library: src/report/report.c, include/jade/report.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "jade/report.h"

int jade_cmd_report(int argc, char **argv) {
  jade_option opts[] = {
      {"obs", "OBS.fits", "observation of a sample / mcmc output (default: the path recorded in DIR/theta.txt); its truth "
                          "OBS_truth.fits is used when present beside it", NULL, 0, 0, NULL, 0},
      {"mcmc", "MCMC_DIR", "overlay a jade mcmc output on a sample report (corner plot, maps, comparison table)", NULL, 0, 0, NULL, 0},
      {"max-draws", "N", "posterior draws used for the power spectra and one-point PDFs", "256", 0, 0, NULL, 0},
      {"catalogue", "CAT", "sed fit: the fitted catalogue (photometry panels and truths)", NULL, 0, 0, NULL, 0},
      {"models", "DIR", "sed fit: folder with the pop-cosmos emulators", "models/popcosmos", 0, 0, NULL, 0},
      {"quiet", NULL, "do not print where the report is", NULL, 0, 0, NULL, 0},
      {NULL, NULL, NULL, NULL, 0, 0, NULL, 0}};
  const char *pos[1];
  int npos = 0;
  int r = jade_cli_parse(argc, argv, "jade report DIR [--obs OBS.fits] [--mcmc MCMC_DIR]",
                         "Write DIR/report.html (one page, images embedded, no network needed) and the figures as\n"
                         "PNG files in DIR, for the output of jade sample, jade validate, jade mcmc, jade train\n"
                         "(loss curves) or jade sed fit (DIR/NAME_summary.fits; detected from the files).",
                         opts, pos, 1, &npos);
  if (r) {
    jade_cli_free(opts);
    return r > 0 ? 0 : 2;
  }
  jade_report_options ro;
  jade_report_options_default(&ro);
  ro.obs_path = jade_cli_opt(opts, "obs")->value;
  ro.mcmc_dir = jade_cli_opt(opts, "mcmc")->value;
  ro.catalogue = jade_cli_opt(opts, "catalogue")->value;
  ro.sed_models = jade_cli_opt(opts, "models")->value;
  char html[4400] = "";
  jade_status st = JADE_OK;
  if (npos != 1) st = jade_error(JADE_ERR_INVALID, "give one output directory: jade report DIR");
  if (!st) st = jade_cli_long(opts, "max-draws", 1, 1000000000L, &ro.max_draws);
  if (!st) st = jade_report_write(pos[0], &ro, html, sizeof html);
  int rc = st ? jade_cli_fail("report") : 0;
  if (!st && !jade_cli_opt(opts, "quiet")->seen) printf("jade report: %s\n", html);
  jade_cli_free(opts);
  return rc;
}
