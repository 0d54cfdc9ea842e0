/* Survey n(z): equal-number Smail bins with photo-z, against the CCL reference tables
 * (tests/data/reference/ccl_eh_halofit/{bin_edges,nz_bins}.txt), an independent quadrature of
 * the parent n(z), the tabulated variant, densities, pixel noise and argument checks. */
#include "jade/cosmo.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static jade_survey_params lsst(double z_max) {
  jade_survey_params p = {.n_bins = 5, .z_max = z_max, .smail_alpha = 2.0, .smail_beta = 0.68, .smail_z0 = 0.11,
                          .sigma_z = 0.05, .n_gal = 27.0, .sigma_e = 0.26};
  return p;
}

/* Read numeric rows (skipping '#' lines) with ncol columns; returns the row count. */
/* Parent Smail CDF by composite Simpson with a fine step (independent of the incomplete gamma). */
static double parent_integral(double z1) {
  int m = 200000;
  double h = z1 / m, s = 0.0;
  for (int i = 0; i <= m; i++) {
    double z = i * h, f = z > 0 ? z * z * exp(-pow(z / 0.11, 0.68)) : 0.0;
    s += f * ((i == 0 || i == m) ? 1.0 : ((i & 1) ? 4.0 : 2.0));
  }
  return s * h / 3.0;
}

int main(void) {
  jade_survey_params p = lsst(4.0);
  jade_survey *s = NULL;
  CHECK_OK(jade_survey_create(&p, &s));
  CHECK(jade_survey_n_bins(s) == 5, "n_bins %d", jade_survey_n_bins(s));
  CHECK(jade_survey_z_max(s) == 4.0, "z_max %g", jade_survey_z_max(s));

  /* 1. edges vs the CCL reference (solved there with the incomplete gamma, 12 digits) */
  double edges[6], ref_edges[5 * 3];
  jade_survey_edges(s, edges);
  int ne = test_read_table(jade_test_data("reference/ccl_eh_halofit/bin_edges.txt"), 3, ref_edges, 5);
  CHECK(ne == 5, "bin_edges rows %d", ne);
  double max_edge = 0.0;
  for (int b = 0; b < 5; b++) {
    jade_test_max_err(&max_edge, fabs(edges[b] - ref_edges[b * 3 + 1]));
    jade_test_max_err(&max_edge, fabs(edges[b + 1] - ref_edges[b * 3 + 2]));
  }
  printf("edges z_max=4: %.12f %.12f %.12f %.12f  max |diff| vs CCL table %.2e\n", edges[1], edges[2], edges[3],
         edges[4], max_edge);
  CHECK_LT(max_edge, 2e-12, "edges differ from the reference by %g", max_edge);

  /* 2. equal numbers: independent Simpson quadrature of the parent between the edges */
  double tot = parent_integral(4.0), max_frac = 0.0;
  for (int k = 1; k < 5; k++) jade_test_max_err(&max_frac, fabs(parent_integral(edges[k]) / tot - k / 5.0));
  printf("equal-number check: max |CDF(edge_k) - k/5| = %.2e\n", max_frac);
  CHECK_LT(max_frac, 1e-9, "parent fractions off by %g", max_frac);

  /* 3. n_i(z) vs the CCL reference table (4001 z, unit-normalised there with Simpson) */
  enum { NZ = 4001 };
  double *tab = malloc(sizeof(double) * NZ * 6);
  int nr = test_read_table(jade_test_data("reference/ccl_eh_halofit/nz_bins.txt"), 6, tab, NZ);
  CHECK(nr == NZ, "nz_bins rows %d", nr);
  double max_rel = 0.0, max_abs = 0.0;
  for (int b = 0; b < 5; b++) {
    double peak = 0.0;
    for (int k = 0; k < NZ; k++) jade_test_max_err(&peak, tab[k * 6 + 1 + b]);
    for (int k = 0; k < NZ; k++) {
      double z = tab[k * 6], ref = tab[k * 6 + 1 + b], v = jade_survey_nz(s, b, z);
      jade_test_max_err(&max_abs, fabs(v - ref) / peak);
      if (ref > 1e-4 * peak) jade_test_max_err(&max_rel, fabs(v - ref) / ref);
    }
  }
  printf("n_i(z) vs CCL table: max rel (where n > 1e-4 peak) %.2e, max |diff|/peak %.2e\n", max_rel, max_abs);
  CHECK_LT(max_rel, 2e-8, "n(z) relative difference %g", max_rel);
  CHECK_LT(max_abs, 1e-9, "n(z) absolute difference %g", max_abs);

  /* 4. unit integrals and the mean redshifts quoted in the README (0.3102 ... 2.1172) */
  const double zmean_ref[5] = {0.3102, 0.5913, 0.8717, 1.2509, 2.1172};
  for (int b = 0; b < 5; b++) {
    int m = 40000;
    double h = 4.0 / m, i0 = 0.0, i1 = 0.0;
    for (int i = 0; i <= m; i++) {
      double z = i * h, wgt = (i == 0 || i == m) ? 1.0 : ((i & 1) ? 4.0 : 2.0), v = jade_survey_nz(s, b, z);
      i0 += wgt * v;
      i1 += wgt * v * z;
    }
    i0 *= h / 3.0;
    i1 *= h / 3.0;
    CHECK_CLOSE(i0, 1.0, 1e-8);
    CHECK_LT(fabs(i1 - zmean_ref[b]), 6e-5, "bin %d mean z %.5f vs %.4f", b, i1, zmean_ref[b]);
  }
  CHECK(jade_survey_nz(s, 0, -0.1) == 0.0 && jade_survey_nz(s, 4, 4.001) == 0.0, "n(z) outside [0, z_max]");
  CHECK(isnan(jade_survey_nz(s, 5, 1.0)), "bin out of range must give NaN");

  /* 5. densities and pixel noise: 27/5 per bin; sigma_e/sqrt(n A_pix) = 0.0477 for 2.34375' */
  CHECK_CLOSE(jade_survey_bin_density(s, 3), 5.4, 1e-14);
  double pix = 5.0 * 60.0 / 128.0, sig = jade_survey_pixel_noise(s, 2, pix);
  printf("pixel %.5f arcmin (A = %.4f arcmin^2): sigma_noise = %.6f\n", pix, pix * pix, sig);
  CHECK_CLOSE(sig, 0.26 / sqrt(5.4 * pix * pix), 1e-14);
  CHECK_LT(fabs(sig - 0.0477), 1e-4, "pixel noise %g vs 0.0477 (spec)", sig);
  CHECK(isnan(jade_survey_pixel_noise(s, 0, 0.0)), "pixel 0 must give NaN");

  /* 6. tabulated variant: the reference table scaled by 7 reproduces itself (renormalised);
   *    midpoints interpolate linearly. */
  double *ztab = malloc(sizeof(double) * NZ), *nztab = malloc(sizeof(double) * NZ * 5);
  for (int k = 0; k < NZ; k++) {
    ztab[k] = tab[k * 6];
    for (int b = 0; b < 5; b++) nztab[b * NZ + k] = 7.0 * tab[k * 6 + 1 + b];
  }
  jade_survey *t = NULL;
  CHECK_OK(jade_survey_create_tabulated(5, NZ, ztab, nztab, &t));
  double max_tab = 0.0;
  for (int b = 0; b < 5; b++)
    for (int k = 0; k + 1 < NZ; k += 7) {
      double ref = tab[k * 6 + 1 + b], v = jade_survey_nz(t, b, ztab[k]);
      double mid = jade_survey_nz(t, b, 0.5 * (ztab[k] + ztab[k + 1]));
      double refmid = 0.5 * (tab[k * 6 + 1 + b] + tab[(k + 1) * 6 + 1 + b]);
      jade_test_max_err(&max_tab, fabs(v - ref) + fabs(mid - refmid));
    }
  printf("tabulated survey: max |n - table| = %.2e\n", max_tab);
  CHECK_LT(max_tab, 1e-6, "tabulated n(z) differs by %g", max_tab);
  CHECK(jade_survey_z_max(t) == 4.0, "tabulated z_max %g", jade_survey_z_max(t));
  CHECK(isnan(jade_survey_bin_density(t, 0)), "tabulated surveys carry no density");
  CHECK(isnan(jade_survey_pixel_noise(t, 0, 2.0)), "tabulated survey noise before densities");
  { /* unequal densities: sigma_e / sqrt(n_i A) per bin, bad values rejected and ignored */
    double dens[5] = {4.0, 5.0, 6.0, 9.0, 16.0}, bad_d[5] = {4.0, 5.0, NAN, 9.0, 16.0};
    CHECK_OK(jade_survey_set_shape_noise(t, dens, 0.3));
    for (int b = 0; b < 5; b++) {
      CHECK_CLOSE(jade_survey_bin_density(t, b), dens[b], 1e-15);
      CHECK_CLOSE(jade_survey_pixel_noise(t, b, 2.0), 0.3 / (2.0 * sqrt(dens[b])), 1e-14);
    }
    CHECK(jade_survey_set_shape_noise(t, bad_d, 0.3) == JADE_ERR_INVALID, "NaN density accepted");
    dens[1] = 0.0;
    CHECK(jade_survey_set_shape_noise(t, dens, 0.3) == JADE_ERR_INVALID, "zero density accepted");
    dens[1] = 5.0;
    CHECK(jade_survey_set_shape_noise(t, dens, -0.1) == JADE_ERR_INVALID, "negative sigma_e accepted");
    CHECK_CLOSE(jade_survey_bin_density(t, 2), 6.0, 1e-15); /* unchanged by the rejected calls */
  }
  jade_survey_free(t);

  /* 7. z_max = 10 (the sbi_lens / CosMomentum set-up): edges near the README's approximate
   *    values (fine trapezoid there, 4 decimals) */
  jade_survey *s10 = NULL;
  jade_survey_params p10 = lsst(10.0);
  CHECK_OK(jade_survey_create(&p10, &s10));
  double e10[6];
  const double e10_ref[4] = {0.4535, 0.7224, 1.0420, 1.5392};
  jade_survey_edges(s10, e10);
  printf("edges z_max=10: %.6f %.6f %.6f %.6f\n", e10[1], e10[2], e10[3], e10[4]);
  for (int k = 1; k < 5; k++) CHECK_LT(fabs(e10[k] - e10_ref[k - 1]), 1e-4, "edge %d = %g", k, e10[k]);
  CHECK(e10[5] == 10.0 && e10[0] == 0.0, "outer edges");
  jade_survey_free(s10);

  /* 8. sigma_z = 0: hard slices, each with unit integral inside its own edges */
  jade_survey_params p0 = lsst(4.0);
  p0.sigma_z = 0.0;
  jade_survey *s0 = NULL;
  CHECK_OK(jade_survey_create(&p0, &s0));
  jade_survey_edges(s0, edges);
  for (int b = 0; b < 5; b++) {
    int m = 20000;
    double h = (edges[b + 1] - edges[b]) / m, in = 0.0;
    for (int i = 0; i <= m; i++) {
      double z = edges[b] + i * h;
      if (i == m) z = nextafter(edges[b + 1], 0.0);
      in += jade_survey_nz(s0, b, z) * ((i == 0 || i == m) ? 1.0 : ((i & 1) ? 4.0 : 2.0));
    }
    CHECK_CLOSE(in * h / 3.0, 1.0, 1e-7);
    CHECK_GT(jade_survey_nz(s0, b, 0.5 * (edges[b] + edges[b + 1])), 0.0, "bin %d empty inside", b);
    if (b > 0) CHECK(jade_survey_nz(s0, b, edges[b] - 1e-9) == 0.0, "bin %d leaks below its edge", b);
  }
  jade_survey_free(s0);

  /* 9. invalid arguments name the value at fault */
  jade_survey *bad = NULL;
  jade_survey_params q = lsst(4.0);
  q.n_bins = 0;
  CHECK(jade_survey_create(&q, &bad) == JADE_ERR_INVALID && strstr(jade_last_error(), "n_bins"), "n_bins 0: %s",
        jade_last_error());
  q = lsst(NAN);
  CHECK(jade_survey_create(&q, &bad) == JADE_ERR_INVALID && strstr(jade_last_error(), "z_max"), "z_max NaN");
  q = lsst(4.0);
  q.sigma_z = -0.1;
  CHECK(jade_survey_create(&q, &bad) == JADE_ERR_INVALID && strstr(jade_last_error(), "sigma_z"), "sigma_z < 0");
  q = lsst(4.0);
  q.smail_beta = INFINITY;
  CHECK(jade_survey_create(&q, &bad) == JADE_ERR_INVALID, "beta inf");
  double zz[3] = {0.0, 0.5, 0.5}, nn[3] = {0, 1, 0};
  CHECK(jade_survey_create_tabulated(1, 3, zz, nn, &bad) == JADE_ERR_INVALID &&
            strstr(jade_last_error(), "z[2]"),
        "non-increasing z: %s", jade_last_error());
  double zz2[3] = {0.0, 0.5, 1.0}, nn2[3] = {0, -1, 0}, nn3[3] = {0, NAN, 0}, nn4[3] = {0, 0, 0};
  CHECK(jade_survey_create_tabulated(1, 3, zz2, nn2, &bad) == JADE_ERR_INVALID, "negative n");
  CHECK(jade_survey_create_tabulated(1, 3, zz2, nn3, &bad) == JADE_ERR_INVALID, "NaN n");
  CHECK(jade_survey_create_tabulated(1, 3, zz2, nn4, &bad) == JADE_ERR_INVALID, "zero n");
  CHECK(bad == NULL, "no survey returned on failure");

  free(tab);
  free(ztab);
  free(nztab);
  jade_survey_free(s);
  TEST_RETURN();
}
