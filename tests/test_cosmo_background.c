/* Background and growth against CCL / CosmoMAD / CLASS reference numbers
 * (tests/data/reference/ccl and ccl_eh_halofit, see their READMEs), plus exact identities:
 * the Heath (1977) growth integral for Lambda CDM, a direct quadrature of chi, round trips
 * and finite differences. */
#include "jade/cosmo.h"
#include "test_util.h"

#include <gsl/gsl_integration.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static jade_cosmo_params ccl_c(int which) {
  jade_cosmo_params p = jade_cosmo_params_fiducial();
  if (which == 0) {
    p.Omega_c = 0.2664; p.Omega_b = 0.0492; p.h = 0.6727; p.n_s = 0.9645; p.sigma_8 = 0.831;
  } else {
    p.Omega_c = 0.2589; p.Omega_b = 0.0486; p.h = 0.6774; p.n_s = 0.9667; p.sigma_8 = 0.8159;
  }
  p.T_cmb = 2.726; p.N_eff = 3.044; p.radiation = 1;
  return p;
}

static jade_cosmo_params model1(void) {
  jade_cosmo_params p = jade_cosmo_params_fiducial();
  p.Omega_c = 0.25; p.Omega_b = 0.05; p.h = 0.7; p.n_s = 0.96; p.sigma_8 = 0.8;
  p.w_0 = -1; p.w_a = 0; p.T_cmb = 2.725; p.N_eff = 0; p.radiation = 0; p.Omega_k = 0;
  return p;
}

static void test_ccl_background(void) {
  for (int w = 0; w < 2; w++) {
    jade_cosmo_params p = ccl_c(w);
    jade_cosmo *c;
    CHECK_OK(jade_cosmo_create(&p, &c));
    double t[50 * 5];
    char path[256];
    snprintf(path, sizeof path, "reference/ccl_eh_halofit/C%d_background.txt", w);
    int n = test_read_table(jade_test_data(path), 5, t, 50);
    CHECK(n == 50, "C%d background rows %d", w, n);
    double mchi = 0, mD = 0, mE = 0, mf = 0;
    for (int i = 0; i < n; i++) {
      double a = 1.0 / (1.0 + t[5 * i]);
      jade_test_max_err(&mchi, test_relerr(jade_cosmo_chi(c, a), t[5 * i + 1]));
      jade_test_max_err(&mD, test_relerr(jade_cosmo_growth(c, a), t[5 * i + 2]));
      jade_test_max_err(&mE, test_relerr(jade_cosmo_E(c, a), t[5 * i + 3]));
      jade_test_max_err(&mf, test_relerr(jade_cosmo_growth_rate(c, a), t[5 * i + 4]));
    }
    printf("C%d background max rel dev: chi %.2e  D %.2e  E %.2e  f %.2e\n", w, mchi, mD, mE, mf);
    CHECK(jade_test_lt_ok(mchi, 1e-5) && jade_test_lt_ok(mD, 1e-5) && jade_test_lt_ok(mE, 1e-6) && jade_test_lt_ok(mf, 1e-5), "C%d background (tolerance 1e-4)", w);
    jade_cosmo_free(c);
  }
}

static void test_model1(void) {
  jade_cosmo_params p = model1();
  jade_cosmo *c;
  CHECK_OK(jade_cosmo_create(&p, &c));
  double t[100 * 2];
  double m;
  int n;

  /* chi(z) [Mpc/h], rtol 1e-4 (CCL test_distances) */
  n = test_read_table(jade_test_data("reference/ccl/model1_chi.txt"), 2, t, 100);
  m = 0;
  for (int i = 0; i < n; i++) {
    double a = 1 / (1 + t[2 * i]);
    if (t[2 * i + 1] == 0) CHECK_LT(fabs(jade_cosmo_chi(c, a)), 1e-9, "chi(1) = %g", jade_cosmo_chi(c, a));
    else jade_test_max_err(&m, test_relerr(jade_cosmo_chi(c, a), t[2 * i + 1]));
  }
  printf("model1_chi       max rel dev %.2e (tol 1e-4)\n", m);
  CHECK_LT(m, 1e-4, "model1_chi %g", m);

  /* unnormalised growth, rtol 1e-4 (CCL test_growth) */
  n = test_read_table(jade_test_data("reference/ccl/model1_gf.txt"), 2, t, 100);
  m = 0;
  for (int i = 0; i < n; i++) jade_test_max_err(&m, test_relerr(jade_cosmo_growth_unnorm(c, 1 / (1 + t[2 * i])), t[2 * i + 1]));
  printf("model1_gf        max rel dev %.2e (tol 1e-4)\n", m);
  CHECK_LT(m, 1e-4, "model1_gf %g", m);

  n = test_read_table(jade_test_data("reference/ccl/chi_hiz_model1.txt"), 2, t, 100);
  m = 0;
  for (int i = 0; i < n; i++) jade_test_max_err(&m, test_relerr(jade_cosmo_chi(c, 1 / (1 + t[2 * i])), t[2 * i + 1]));
  printf("chi_hiz_model1   max rel dev %.2e (tol 1e-4)\n", m);
  CHECK_LT(m, 1e-4, "chi_hiz %g", m);

  n = test_read_table(jade_test_data("reference/ccl/growth_hiz_model1.txt"), 2, t, 100);
  m = 0;
  for (int i = 0; i < n; i++)
    jade_test_max_err(&m, test_relerr(jade_cosmo_growth_unnorm(c, 1 / (1 + t[2 * i])), t[2 * i + 1]));
  printf("growth_hiz       max rel dev %.2e (tol 6e-6)\n", m);
  CHECK_LT(m, 6e-6, "growth_hiz %g", m);

  n = test_read_table(jade_test_data("reference/ccl/growth_allz_model1.txt"), 2, t, 100);
  m = 0;
  for (int i = 0; i < n; i++)
    jade_test_max_err(&m, test_relerr(jade_cosmo_growth_unnorm(c, 1 / (1 + t[2 * i])), t[2 * i + 1]));
  printf("growth_allz      max rel dev %.2e (tol 1e-4)\n", m);
  CHECK_LT(m, 1e-4, "growth_allz %g", m);

  /* distance modulus 5 log10(d_L / 10 pc), d_L in Mpc with h = 0.7: atol and rtol 1e-3 */
  n = test_read_table(jade_test_data("reference/ccl/dm_model1.txt"), 2, t, 100);
  m = 0;
  for (int i = 0; i < n; i++) {
    double z = t[2 * i];
    if (z == 0) continue;
    double dl = (1 + z) * jade_cosmo_chi(c, 1 / (1 + z)) / p.h;
    double mu = 5 * log10(dl * 1e6 / 10.0);
    jade_test_max_err(&m, fabs(mu - t[2 * i + 1]));
  }
  printf("dm_model1        max abs dev %.2e mag (tol 1e-3)\n", m);
  CHECK_LT(m, 1e-3, "dm_model1 %g", m);
  jade_cosmo_free(c);
}

/* CLASS distances with photons + 3.046 massless neutrinos, T_cmb 2.725 (rtol 1e-5) */
static void test_class_radiation(void) {
  jade_cosmo_params p = model1();
  p.radiation = 1; p.N_eff = 3.046; p.T_cmb = 2.725;
  jade_cosmo *c;
  CHECK_OK(jade_cosmo_create(&p, &c));
  double t[20 * 2];
  int n = test_read_table(jade_test_data("reference/ccl/chi_class_allz_CCL1.txt"), 2, t, 20);
  double m = 0;
  for (int i = 0; i < n; i++) jade_test_max_err(&m, test_relerr(jade_cosmo_chi(c, 1 / (1 + t[2 * i])) / p.h, t[2 * i + 1]));
  printf("chi_class_allz   max rel dev %.2e (tol 1e-5)\n", m);
  CHECK_LT(m, 1e-5, "chi_class_allz %g", m);
  n = test_read_table(jade_test_data("reference/ccl/dm_class_allz_CCL1.txt"), 2, t, 20);
  m = 0;
  for (int i = 0; i < n; i++) {
    double z = t[2 * i];
    double dl = (1 + z) * jade_cosmo_chi(c, 1 / (1 + z)) / p.h;
    jade_test_max_err(&m, test_relerr(5 * log10(dl * 1e6) - 5, t[2 * i + 1]));
  }
  printf("dm_class_allz    max rel dev %.2e (tol 1e-5)\n", m);
  CHECK_LT(m, 1e-5, "dm_class_allz %g", m);
  jade_cosmo_free(c);
}

/* ---- exact checks ----------------------------------------------------------------------- */
typedef struct {
  const jade_cosmo *c;
  int which;
} qpar;

static double q_chi(double a, void *v) {
  const qpar *q = v;
  return JADE_C_HMPC / (a * a * jade_cosmo_E(q->c, a));
}
/* Heath (1977): for Lambda CDM + curvature without radiation D ∝ E(a) int_0^a da'/(a' E)^3 */
static double q_heath(double a, void *v) {
  const qpar *q = v;
  double ae = a * jade_cosmo_E(q->c, a);
  return 1.0 / (ae * ae * ae);
}

static void test_exact(void) {
  gsl_integration_workspace *ws = gsl_integration_workspace_alloc(1000);
  /* curved w0-wa cosmology with radiation: chi against adaptive quadrature */
  jade_cosmo_params p = jade_cosmo_params_fiducial();
  p.Omega_k = 0.05; p.w_0 = -0.9; p.w_a = 0.1;
  jade_cosmo *c;
  CHECK_OK(jade_cosmo_create(&p, &c));
  qpar q = {c, 0};
  gsl_function F = {q_chi, &q};
  double m = 0, mr = 0, mf = 0, mde = 0;
  for (int i = 0; i < 40; i++) {
    double z = 0.005 * pow(1.25, i) ;
    double a = 1 / (1 + z), res, err;
    gsl_integration_qags(&F, a, 1, 0, 1e-12, 1000, ws, &res, &err);
    jade_test_max_err(&m, test_relerr(jade_cosmo_chi(c, a), res));
    double ar = jade_cosmo_a_of_chi(c, jade_cosmo_chi(c, a));
    jade_test_max_err(&mr, fabs(ar / a - 1));
    /* f = dlnD/dlna by central differences */
    double eps = 1e-4;
    double fd = (log(jade_cosmo_growth(c, a * exp(eps))) - log(jade_cosmo_growth(c, a * exp(-eps)))) / (2 * eps);
    if (a * exp(eps) <= 1) jade_test_max_err(&mf, test_relerr(jade_cosmo_growth_rate(c, a), fd));
    /* dchi/da = -c/H0 / (a^2 E) */
    if (a * (1 + 1e-5) <= 1) {
      double dd = (jade_cosmo_chi(c, a * (1 + 1e-5)) - jade_cosmo_chi(c, a * (1 - 1e-5))) / (2e-5 * a);
      jade_test_max_err(&mde, test_relerr(-dd, JADE_C_HMPC / (a * a * jade_cosmo_E(c, a))));
    }
  }
  printf("curved w0wa: chi vs quadrature %.2e, a(chi(a)) %.2e, f vs FD %.2e, dchi/da %.2e\n", m, mr, mf, mde);
  CHECK_LT(m, 1e-8, "chi quadrature %g", m);
  CHECK_LT(mr, 1e-12, "a_of_chi round trip %g", mr);
  CHECK_LT(mf, 1e-6, "growth rate FD %g", mf);
  CHECK_LT(mde, 1e-6, "dchi/da %g", mde);
  /* Omega_de + Omega_m + Omega_r + Omega_k = 1 at a = 1 */
  CHECK_LT(fabs(jade_cosmo_E(c, 1.0) - 1), 1e-14, "E(1) = %.17g", jade_cosmo_E(c, 1.0));
  CHECK(jade_cosmo_growth(c, 1.0) == 1.0, "D(1) = %.17g", jade_cosmo_growth(c, 1.0));
  CHECK(isnan(jade_cosmo_a_of_chi(c, 1e9)), "a_of_chi beyond the horizon must be NaN");
  CHECK(isnan(jade_cosmo_chi(c, 1.5)), "chi(a > 1) must be NaN");
  CHECK(isnan(jade_cosmo_chi(c, NAN)) && isnan(jade_cosmo_growth(c, NAN)) && isnan(jade_cosmo_E(c, NAN)) &&
            isnan(jade_cosmo_growth_rate(c, INFINITY)) && isnan(jade_cosmo_a_of_chi(c, NAN)) &&
            isnan(jade_cosmo_growth(c, -0.5)) && isnan(jade_cosmo_pk_lin(c, 0.1, NAN)) &&
            isnan(jade_cosmo_pk_nl(c, 0.1, NAN)) && isnan(jade_cosmo_sigma_R(c, NAN, 1.0)),
        "NaN/Inf/negative inputs must give NaN");
  jade_cosmo_free(c);

  /* Lambda CDM, open, no radiation: growth vs the Heath integral */
  p = model1();
  p.Omega_k = 0.1;
  CHECK_OK(jade_cosmo_create(&p, &c));
  q.c = c;
  F.function = q_heath;
  double r1, err;
  gsl_integration_qags(&F, 1e-12, 1.0, 0, 1e-12, 1000, ws, &r1, &err);
  m = 0;
  for (int i = 0; i < 30; i++) {
    double a = pow(10.0, -3.0 + 0.1 * i), r;
    gsl_integration_qags(&F, 1e-12, a, 0, 1e-12, 1000, ws, &r, &err);
    double Dh = jade_cosmo_E(c, a) * r / (1.0 * r1);
    jade_test_max_err(&m, test_relerr(jade_cosmo_growth(c, a), Dh));
  }
  printf("open LCDM growth vs Heath integral: %.2e\n", m);
  CHECK_LT(m, 1e-7, "Heath growth %g", m);
  jade_cosmo_free(c);
  gsl_integration_workspace_free(ws);
}

static void test_errors(void) {
  jade_cosmo *c = (jade_cosmo *)1;
  jade_cosmo_params p = jade_cosmo_params_fiducial();
  p.Omega_c = NAN;
  CHECK(jade_cosmo_create(&p, &c) == JADE_ERR_INVALID, "NaN Omega_c accepted");
  CHECK(c == NULL, "output not cleared on failure");
  CHECK(strstr(jade_last_error(), "Omega_c") != NULL, "message: %s", jade_last_error());
  p = jade_cosmo_params_fiducial();
  p.h = INFINITY;
  CHECK(jade_cosmo_create(&p, &c) == JADE_ERR_INVALID && strstr(jade_last_error(), "h ="),
        "Inf h: %s", jade_last_error());
  p = jade_cosmo_params_fiducial();
  p.sigma_8 = -0.8;
  CHECK(jade_cosmo_create(&p, &c) == JADE_ERR_INVALID && strstr(jade_last_error(), "sigma_8"),
        "negative sigma_8: %s", jade_last_error());
  p = jade_cosmo_params_fiducial();
  p.transfer = (jade_transfer)7;
  CHECK(jade_cosmo_create(&p, &c) == JADE_ERR_INVALID && strstr(jade_last_error(), "transfer"),
        "bad transfer: %s", jade_last_error());
  p = jade_cosmo_params_fiducial();
  p.Omega_k = -1.0; /* closed, Lambda-dominated: E^2 < 0 near a = 0.2 (a bounce) */
  p.Omega_c = 0.05;
  p.Omega_b = 0.05;
  jade_status s = jade_cosmo_create(&p, &c);
  CHECK(s == JADE_ERR_INVALID && strstr(jade_last_error(), "E^2"), "recollapsing universe: %s", jade_last_error());
  p = jade_cosmo_params_fiducial();
  p.radiation = 2;
  CHECK(jade_cosmo_create(&p, &c) == JADE_ERR_INVALID && strstr(jade_last_error(), "radiation"),
        "radiation flag: %s", jade_last_error());
  CHECK(jade_cosmo_create(NULL, &c) == JADE_ERR_INVALID, "NULL params");
}

int main(void) {
  test_ccl_background();
  test_model1();
  test_class_radiation();
  test_exact();
  test_errors();
  TEST_RETURN();
}
