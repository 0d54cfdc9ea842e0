/* jade's training population for the SED prior (see jade_sed_population_draw in jade/sed.h):
 * Prospector-alpha-like parameter priors (Leja et al. 2017 ApJ 837:170; continuity SFH prior,
 * Leja et al. 2019 ApJ 876:3: Student-t nu = 2, scale 0.3) and an IRAC ch1 < 26 selection as in
 * COSMOS2020 (Weaver et al. 2022) / pop-cosmos (Alsing et al. 2024). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jade/sed.h"

typedef struct {
  uint64_t seed, stream, idx;
} ctr;
static double U(ctr *c) { return jade_rng_uniform(c->seed, c->stream, c->idx++); }
static double N01(ctr *c) { return jade_rng_normal(c->seed, c->stream, c->idx++); }
static double trunc_normal(ctr *c, double mu, double sd, double lo, double hi) {
  for (int k = 0; k < 200; k++) {
    double v = mu + sd * N01(c);
    if (v >= lo && v <= hi) return v;
  }
  return 0.5 * (lo + hi);
}
static double student2(ctr *c, double scale, double lo, double hi) {
  for (int k = 0; k < 200; k++) {
    /* t_2 = Z / sqrt(chi2_2 / 2), chi2_2 / 2 = -ln U */
    double v = scale * N01(c) / sqrt(-log(U(c)));
    if (v >= lo && v <= hi) return v;
  }
  return 0.0;
}

static void draw_one(uint64_t seed, uint64_t i, double *th) {
  ctr c = {seed, JADE_STREAM(JADE_RNG_PRIOR, 0x5ed), i * 4096};
  double lo[16], hi[16];
  jade_sed_param_bounds(lo, hi);
  double logm = 8.0 + 4.5 * U(&c);
  double z = 0.01 + 5.99 * U(&c);
  th[15] = z;
  th[0] = jade_sed_distmod(z) - 2.5 * logm;
  th[1] = lo[1] + (hi[1] - lo[1]) * U(&c);
  for (int k = 2; k <= 7; k++) th[k] = student2(&c, 0.3, -5, 5);
  th[8] = trunc_normal(&c, 0.3, 1.0, 0.0, 4.0);
  th[9] = lo[9] + (hi[9] - lo[9]) * U(&c);
  th[10] = trunc_normal(&c, 1.0, 0.3, 0.0, 2.0);
  for (int k = 11; k <= 14; k++) th[k] = lo[k] + (hi[k] - lo[k]) * U(&c);
}

jade_status jade_sed_population_draw(const jade_sed_photulator *p, uint64_t seed, size_t n_keep, int select_band,
                                     double mag_limit, double *theta, size_t *n_drawn) {
  enum { BLK = 4096 };
  double *cand = jade_alloc(BLK * 16 * sizeof(double)), *mag = jade_alloc(BLK * sizeof(double));
  if (!cand || !mag) {
    free(cand);
    free(mag);
    return JADE_ERR_NOMEM;
  }
  size_t kept = 0;
  uint64_t next = 0;
  jade_status st = JADE_OK;
  while (kept < n_keep) {
    for (int i = 0; i < BLK; i++) draw_one(seed, next + (uint64_t)i, cand + i * 16);
    if ((st = jade_sed_photulator_band_mags(p, select_band, cand, BLK, mag))) break;
    for (int i = 0; i < BLK && kept < n_keep; i++)
      if (mag[i] < mag_limit) memcpy(theta + 16 * kept++, cand + i * 16, 16 * sizeof(double));
    next += BLK;
    if (next > (uint64_t)1 << 40) {
      st = jade_error(JADE_ERR_INVALID, "population: selection band %d < %g keeps almost nothing", select_band, mag_limit);
      break;
    }
  }
  if (n_drawn) *n_drawn = (size_t)next;
  free(cand);
  free(mag);
  return st;
}
