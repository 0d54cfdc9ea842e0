/* jade report: one self-contained HTML page (DIR/report.html, images embedded as base64 data
 * URIs, no network access) plus the same figures as PNG files in DIR, for
 *  - a `jade sample` output (maps.fits, theta.txt, theta.npy): truth / observation /
 *    posterior mean / posterior std / a few draws per bin with colour bars, a corner plot of
 *    the parameters with the truth (and an MCMC overlay), power spectra (draws' mean and
 *    16-84% band vs the truth and the observation) for every bin and a few cross pairs,
 *    one-point PDFs, a parameter table. The observation is the path recorded in theta.txt
 *    ("# observation PATH") unless obs_path is given; its truth OBS_truth.fits is used when
 *    present beside it.
 *  - a `jade validate` output: TARP curves with bootstrap bands and the MIRA values, rank
 *    histograms, coverage table, posterior means vs truths, power-spectrum ratios, one-point
 *    PDFs, and the first observation's maps and corner plot.
 *  - a `jade mcmc` output (theta.txt with a chain column, mean.fits / std.fits, compare.txt):
 *    maps, corner plot, traces per chain, the comparison text.
 *  - a `jade sed fit` output in DIR (NAME_summary.fits, NAME_chains.npy; the first NAME by
 *    name): sampler diagnostics and coverage table, posterior medians vs truths (mocks), and
 *    for the first 4 galaxies a corner plot (z, log10 M*, dust2, log10 Z) and the photometry
 *    against the emulators at the posterior medians (with the catalogue).
 * Reading is driven by the column names of theta.txt's last '#' header line, so extra columns
 * (chain, weights) are fine. */
#ifndef JADE_REPORT_H
#define JADE_REPORT_H
#include <stddef.h>

#include "jade/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  JADE_REPORT_AUTO = 0, /* detect from the files in DIR */
  JADE_REPORT_SAMPLE = 1,
  JADE_REPORT_VALIDATION = 2,
  JADE_REPORT_MCMC = 3,
  JADE_REPORT_TRAINING = 4, /* a jade train MODELDIR: loss curves and the config */
  JADE_REPORT_SED = 5       /* a jade sed fit (DIR/NAME_summary.fits, NAME_chains.npy) */
} jade_report_kind;

typedef struct {
  jade_report_kind kind;
  const char *obs_path; /* observation FITS (NULL: the one recorded in theta.txt, if found) */
  const char *mcmc_dir; /* jade mcmc output to overlay on a sample report (NULL: none) */
  long max_draws;       /* draws used for power spectra and PDFs (default 256) */
  const char *name;     /* directory name shown on the page (NULL: DIR) */
  const char *catalogue;  /* sed: the fitted catalogue (photometry panels, truths; NULL: none) */
  const char *sed_models; /* sed: folder of the pop-cosmos emulators (NULL: models/popcosmos) */
} jade_report_options;

void jade_report_options_default(jade_report_options *o);
/* validation: summary.json of jade validate; training: loss.csv and model.safetensors; mcmc:
 * a "chain" column in theta.txt; sample: theta.txt or theta.npy. */
jade_status jade_report_detect(const char *dir, jade_report_kind *kind);
/* Write the figures and DIR/report.html (atomically); html_path receives its path. */
jade_status jade_report_write(const char *dir, const jade_report_options *o, char *html_path, size_t n);

/* Base64 (RFC 4648, with padding) of n bytes; malloc'd, NUL-terminated. */
char *jade_base64(const unsigned char *data, size_t n);

#ifdef __cplusplus
}
#endif
#endif
