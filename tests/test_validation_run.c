/* The validation run as a library (include/jade/validation_run.h).
 *
 *   test_validation_run                run the unit checks (bands, option checks)
 *   test_validation_run --recompute OUT
 *       recompute, from what `jade validate --keep-draws` wrote (truth_*.npy, draws_*.npy and
 *       the normalisation in summary.json), the joint MIRA score and error bar, the joint TARP
 *       scalars and the per-parameter coverage with jade/validate.h in one call each, and
 *       check they equal summary.json: the streamed per-observation records give the same
 *       numbers as the metrics on all draws at once (used by tests/test_report.sh). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/io.h"
#include "jade/posterior.h"
#include "jade/validate.h"
#include "jade/validation_run.h"
#include "test_util.h"

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  rewind(f);
  char *b = malloc((size_t)n + 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
  if (b) b[n] = 0;
  fclose(f);
  return b;
}

/* "key": number, or the k-th number of "key": [a, b, ...] */
static double jnum(const char *js, const char *key, int k) {
  char pat[128];
  snprintf(pat, sizeof pat, "\"%s\"", key);
  const char *p = strstr(js, pat);
  if (!p) return NAN;
  p = strchr(p, ':') + 1;
  while (*p == ' ') p++;
  if (*p == '[') p++;
  for (int i = 0; i < k; i++) p = strchr(p, ',') + 1;
  return strtod(p, NULL);
}

static const jade_npy *load(const char *dir, const char *name, jade_npy *a) {
  char path[4400];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  CHECK_OK(jade_npy_read(path, 1, a));
  return a;
}

static int recompute(const char *dir) {
  char path[4400];
  snprintf(path, sizeof path, "%s/summary.json", dir);
  char *js = slurp(path);
  CHECK(js != NULL, "cannot read %s", path);
  if (!js) return 1;
  jade_npy tt, tm, dt, dm;
  load(dir, "truth_theta.npy", &tt);
  load(dir, "truth_maps.npy", &tm);
  load(dir, "draws_theta.npy", &dt);
  load(dir, "draws_maps.npy", &dm);
  const size_t T = tt.shape[0], S = dt.shape[1], nb = tm.shape[1], npix = tm.shape[2] * tm.shape[3], nx = nb * npix;
  const size_t q = nx + JADE_N_THETA, K = JADE_POSTERIOR_COLS;
  CHECK(T == (size_t)jnum(js, "n_obs", 0) && S == (size_t)jnum(js, "draws", 0), "shapes vs summary.json");
  CHECK(dm.shape[0] == T && dm.shape[1] == S && dt.shape[2] == K, "draws shapes");
  float *truths = malloc(T * q * sizeof(float)), *draws = malloc(T * S * q * sizeof(float));
  float *tth = malloc(T * K * sizeof(float)), *dth = malloc(T * S * K * sizeof(float));
  double ms[16], tm_[6], ts[6];
  for (size_t b = 0; b < nb; b++) ms[b] = jnum(js, "map_std", (int)b);
  for (int j = 0; j < 6; j++) tm_[j] = jnum(js, "theta_mean", j), ts[j] = jnum(js, "theta_std", j);
  const float *km = tm.data, *dmm = dm.data;
  const double *th = tt.data, *dth64 = dt.data;
  for (size_t t = 0; t < T; t++) {
    for (size_t i = 0; i < nx; i++) truths[t * q + i] = (float)(km[t * nx + i] * (1.0 / ms[i / npix]));
    for (int j = 0; j < 6; j++) truths[t * q + nx + j] = (float)((th[t * K + j] - tm_[j]) / ts[j]);
    for (size_t k = 0; k < K; k++) tth[t * K + k] = (float)th[t * K + k];
    for (size_t s = 0; s < S; s++) {
      float *row = draws + (t * S + s) * q;
      const float *src = dmm + (t * S + s) * nx;
      for (size_t i = 0; i < nx; i++) row[i] = (float)(src[i] * (1.0 / ms[i / npix]));
      for (int j = 0; j < 6; j++) row[nx + j] = (float)((dth64[(t * S + s) * K + j] - tm_[j]) / ts[j]);
      for (size_t k = 0; k < K; k++) dth[(t * S + s) * K + k] = (float)dth64[(t * S + s) * K + k];
    }
  }
  jade_mira_opts mo;
  jade_mira_opts_default(&mo);
  mo.seed = (uint64_t)jnum(js, "mira_joint_seed", 0);
  mo.n_boot = (int)jnum(js, "n_boot", 0);
  jade_tarp_opts to;
  jade_tarp_opts_default(&to);
  to.seed = mo.seed;
  to.n_boot = mo.n_boot;
  jade_mira_result mr;
  jade_tarp_result tr;
  CHECK_OK(jade_mira_tarp(truths, draws, T, S, q, &mo, &to, &mr, &tr));
  CHECK_CLOSE(mr.score, jnum(js, "mira_joint", 0), 1e-8);
  CHECK_CLOSE(mr.err, jnum(js, "mira_joint_err", 0), 1e-8);
  CHECK_CLOSE(tr.area + 1e-12, jnum(js, "tarp_joint_area", 0) + 1e-12, 1e-6);
  CHECK_CLOSE(tr.signed_area - 10, jnum(js, "tarp_joint_signed_area", 0) - 10, 1e-9);
  jade_coverage_result cr;
  CHECK_OK(jade_coverage(tth, dth, T, S, K, NULL, K, 0, &cr));
  for (size_t k = 0; k < K; k++) {
    const char *nm = jade_posterior_col_names[k];
    const char *p = strstr(js, nm);
    char key[64];
    snprintf(key, sizeof key, "\"%s\": {", nm);
    p = strstr(js, key);
    CHECK(p != NULL, "coverage of %s missing", nm);
    if (!p) continue;
    CHECK_CLOSE(cr.cov68[k] + 1, jnum(p, "cov68", 0) + 1, 1e-9);
    CHECK_CLOSE(cr.cov95[k] + 1, jnum(p, "cov95", 0) + 1, 1e-9);
    CHECK_CLOSE(cr.offset[k] + 10, jnum(p, "mean_offset", 0) + 10, 1e-8);
    CHECK_CLOSE(cr.rank_pvalue[k] + 1, jnum(p, "rank_chi2_p", 0) + 1, 1e-8);
  }
  printf("recomputed from the kept draws: MIRA joint %.6f +- %.6f, TARP area %.4f, S_8 cov68 %.3f: as summary.json\n", mr.score,
         mr.err, tr.area, cr.cov68[K - 1]);
  jade_mira_result_free(&mr);
  jade_tarp_result_free(&tr);
  jade_coverage_result_free(&cr);
  free(truths);
  free(draws);
  free(tth);
  free(dth);
  jade_npy_release(&tt);
  jade_npy_release(&tm);
  jade_npy_release(&dt);
  jade_npy_release(&dm);
  free(js);
  TEST_RETURN();
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--recompute")) return recompute(argv[2]);
  /* bands: fundamental to axis Nyquist, n/4 bands within [4, 20] */
  int nb;
  double lo, hi;
  jade_power_spectrum_bands(32, 5.0, &nb, &lo, &hi);
  CHECK(nb == 8, "bands %d", nb);
  CHECK_CLOSE(lo, 360.0 / 5.0, 1e-12);
  CHECK_CLOSE(hi, 32 * 180.0 / 5.0, 1e-12);
  jade_power_spectrum_bands(8, 5.0, &nb, &lo, &hi);
  CHECK(nb == 4, "bands %d", nb);
  jade_power_spectrum_bands(256, 5.0, &nb, &lo, &hi);
  CHECK(nb == 20, "bands %d", nb);
  /* argument checks fail before touching any file */
  jade_validation_options o;
  jade_validation_options_default(&o);
  CHECK(o.n_obs == 100 && o.draws == 100 && o.steps == 32 && o.n_boot == 100, "defaults");
  jade_validation_result r;
  CHECK(jade_validation_run(&o, &r) == JADE_ERR_INVALID, "missing paths accepted");
  o.model_path = "/nonexistent/model";
  o.data_dir = "/nonexistent/data";
  o.out_dir = "/nonexistent/out";
  o.n_obs = 1;
  CHECK(jade_validation_run(&o, &r) == JADE_ERR_INVALID && strstr(jade_last_error(), "2 observations"), "n_obs 1: %s",
        jade_last_error());
  o.n_obs = 4;
  o.seed = 1ull << 40;
  CHECK(jade_validation_run(&o, &r) == JADE_ERR_INVALID && strstr(jade_last_error(), "seed"), "big seed: %s", jade_last_error());
  o.seed = 0;
  CHECK(jade_validation_run(&o, &r) != JADE_OK && strstr(jade_last_error(), "/nonexistent/model"), "missing model: %s",
        jade_last_error());
  TEST_RETURN();
}
