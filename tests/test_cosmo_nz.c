/* n(z) tables (jade_survey_read_nz, nz_file in the config):
 *  1. the Steffen spline of a table sampled from the Smail bins every dz = 0.01: its L1 error
 *     per bin, against the linear interpolant of the same table (an interpolant that is not
 *     better than linear would be a bug), and the order of convergence when dz halves;
 *  2. C_ell of the table vs the built-in Smail C_ell, within a bound derived from that L1
 *     error: C_ij is bilinear in (n_i, n_j) with a non-negative kernel, so
 *       |C(n_i + d_i, n_j + d_j) - C(n_i, n_j)| <= int |d_i| K_j + int |d_j| K_i + e_i e_j P,
 *     where K_j(z) = C(source plane at z, n_j) is increasing in z (the lensing efficiency
 *     (chi' - chi)/chi' grows with the source distance chi'), so on each interval I of z,
 *     int_I |d_i| K_j <= K_j(top of I) int_I |d_i|; K_j(z) is bounded by the C_ell of a narrow
 *     bump just above z, computed with the same library;
 *  3. a narrow bump (delta-like n(z)) at z_s: the Limber C_ell equals the single-source-plane
 *     formula q(chi) = 3/2 Omega_m (H0/c)^2 chi/a (1 - chi <1/chi_s>), integrated here with
 *     GSL's adaptive quadrature (independent of the library's Gauss-Legendre rule);
 *  4. the readers: text with a header, CSV, FITS (the NZ_SOURCE extension of a 2pt file,
 *     preferred to an earlier table) give the same survey as the arrays; every refusal names
 *     the file and the column / row;
 *  5. the config: nz_file is read, recorded as an absolute path, and used by the simulator
 *     (its C_ell table and noise). */
#include "cosmo/los.h"
#include "jade/config.h"
#include "jade/cosmo.h"
#include "jade/io.h"
#include "jade/sim.h"
#include "test_files.h"
#include "test_util.h"

#include <fitsio.h>
#include <gsl/gsl_integration.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static jade_survey_params lsst10(void) {
  jade_survey_params p = {.n_bins = 5, .z_max = 10.0, .smail_alpha = 2.0, .smail_beta = 0.68, .smail_z0 = 0.11,
                          .sigma_z = 0.05, .n_gal = 27.0, .sigma_e = 0.26};
  return p;
}

/* Table of the Smail bins at z_k = k dz, k = 0 .. n - 1 (zero above the Smail z_max). */
static void smail_table(const jade_survey *s, int n, double dz, double *z, double *nz) {
  for (int k = 0; k < n; k++) {
    z[k] = k * dz;
    for (int b = 0; b < 5; b++) nz[(size_t)b * n + k] = jade_survey_nz(s, b, z[k]);
  }
}

#define FINE_DZ 1e-4
/* int_lo^hi |n_a(z) - n_b(z)| dz, trapezoid on a grid of FINE_DZ (the spline error varies on
 * the table's scale 0.01, 100 x coarser: the trapezoid error is ~1e-4 of the integral). */
static double l1_diff(const jade_survey *a, const jade_survey *b, int bin, double lo, double hi) {
  int m = (int)ceil((hi - lo) / FINE_DZ);
  double h = (hi - lo) / m, s = 0.0;
  for (int i = 0; i <= m; i++) {
    double z = lo + i * h;
    s += (i == 0 || i == m ? 0.5 : 1.0) * fabs(jade_survey_nz(a, bin, z) - jade_survey_nz(b, bin, z));
  }
  return s * h;
}

/* ---- single source plane, independent quadrature --------------------------------------- */
typedef struct {
  const jade_cosmo *c;
  const jade_survey *d;
  double ell, inv_chi_s; /* <1/chi(z')> over the bump */
  double chi_lo, z_hi;   /* the bump is [z(chi_lo), z_hi] */
} plane_ctx;

/* lensing efficiency / A: below the bump the single-plane formula chi/a (1 - chi <1/chi'>);
 * inside it the defining integral chi/a int_{z(chi)} n(z') (1 - chi/chi(z')) dz' (Simpson) */
static double plane_q(const plane_ctx *p, double chi, double a) {
  if (chi <= p->chi_lo) return chi / a * (1.0 - chi * p->inv_chi_s);
  double z0 = 1.0 / a - 1.0, s = 0.0;
  int m = 400;
  double h = (p->z_hi - z0) / m;
  if (!(h > 0.0)) return 0.0;
  for (int i = 0; i <= m; i++) {
    double zz = z0 + i * h, wt = (i == 0 || i == m) ? 1.0 : ((i & 1) ? 4.0 : 2.0);
    double chz = jade_cosmo_chi(p->c, 1.0 / (1.0 + zz));
    s += wt * jade_survey_nz(p->d, 0, zz) * (chz > chi ? 1.0 - chi / chz : 0.0);
  }
  return chi / a * s * h / 3.0;
}

static double plane_integrand(double chi, void *v) {
  const plane_ctx *p = v;
  double a = jade_cosmo_a_of_chi(p->c, chi);
  double q = 1.5 * jade_cosmo_Omega_m(p->c) / (JADE_C_HMPC * JADE_C_HMPC) * plane_q(p, chi, a);
  return q * q / (chi * chi) * jade_cosmo_pk_nl(p->c, (p->ell + 0.5) / chi, a);
}

static void write_text(const char *path, const char *text) { test_write_bytes(path, text, strlen(text)); }

/* the text table of 5 bins (columns named as given), rows z n1..n5 */
static void write_table(const char *path, const char *header, char sep, int n, const double *z, const double *nz) {
  FILE *f = fopen(path, "w");
  if (!f) exit(1);
  fprintf(f, "# n(z) test table\n%s\n", header);
  for (int k = 0; k < n; k++) {
    fprintf(f, "%.17g", z[k]);
    for (int b = 0; b < 5; b++) fprintf(f, "%c%.17g", sep, nz[(size_t)b * n + k]);
    fprintf(f, "\n");
  }
  fclose(f);
}

/* an n(z) refusal: status FORMAT and every needle in the message */
static void check_refused(const char *path, int n_bins, const char *n1, const char *n2) {
  jade_survey *s = NULL;
  jade_status st = jade_survey_read_nz(path, n_bins, &s);
  const char *msg = jade_last_error();
  CHECK(st != JADE_OK && s == NULL, "%s accepted", path);
  CHECK(strstr(msg, path) && (!n1 || strstr(msg, n1)) && (!n2 || strstr(msg, n2)), "%s: message '%s' lacks '%s' / '%s'",
        path, msg, n1 ? n1 : "", n2 ? n2 : "");
  printf("refused: %s\n", msg);
  jade_survey_free(s);
}

int main(void) {
  test_dir_create("nz");
  jade_survey_params sp = lsst10();
  jade_survey *s = NULL;
  CHECK_OK(jade_survey_create(&sp, &s));
  jade_cosmo_params cp = jade_cosmo_params_fiducial();
  jade_cosmo *c = NULL;
  CHECK_OK(jade_cosmo_create(&cp, &c));

  /* ---- 1. spline accuracy ----------------------------------------------------------- */
  enum { NT = 1001 }; /* dz = 0.01 on [0, 10] */
  double *z = malloc(sizeof(double) * 2 * NT), *nz = malloc(sizeof(double) * 2 * NT * 5);
  smail_table(s, NT, 0.01, z, nz);
  jade_survey *t = NULL, *lin = NULL;
  CHECK_OK(jade_survey_create_interp(5, NT, z, nz, JADE_NZ_SPLINE, &t));
  CHECK_OK(jade_survey_create_interp(5, NT, z, nz, JADE_NZ_LINEAR, &lin));
  double eps[5];
  {
    enum { NH = 2 * NT - 1 }; /* dz = 0.005 */
    double *z2 = malloc(sizeof(double) * NH), *nz2 = malloc(sizeof(double) * NH * 5);
    smail_table(s, NH, 0.005, z2, nz2);
    jade_survey *t2 = NULL;
    CHECK_OK(jade_survey_create_interp(5, NH, z2, nz2, JADE_NZ_SPLINE, &t2));
    for (int b = 0; b < 5; b++) {
      eps[b] = l1_diff(t, s, b, 0.0, 10.0);
      double el = l1_diff(lin, s, b, 0.0, 10.0), e2 = l1_diff(t2, s, b, 0.0, 10.0);
      printf("bin %d: L1 error of the spline %.3e, of the linear interpolant %.3e; spline at dz/2 %.3e (order %.2f)\n", b,
             eps[b], el, e2, log2(eps[b] / e2));
      /* smooth data: Steffen's slopes are second-order, so its error is O(dz^3) away from
       * extrema and O(dz^2) within O(dz) of them: the L1 order lies between 2 (linear
       * interpolation's) and 3; measured 2.4 .. 3.8 */
      CHECK_LT(eps[b], 0.25 * el, "bin %d: spline no better than linear interpolation", b);
      CHECK_GT(log2(eps[b] / e2), 2.2, "bin %d: spline error does not converge faster than dz^2", b);
      CHECK_LT(eps[b], 1e-4, "bin %d: L1 error %g of the dz = 0.01 table", b, eps[b]);
      /* unit integral, and the nodes are reproduced up to the normalisation (the spline's
       * integral of the Smail nodes is 1 + O(L1 error)) */
      double integ = 0.0;
      for (int i = 0; i <= 100000; i++) integ += (i == 0 || i == 100000 ? 0.5 : 1.0) * jade_survey_nz(t, b, i * 1e-4);
      CHECK_ABS(integ * 1e-4, 1.0, 1e-7);
      double node = 0.0, scale = NAN;
      for (int k = 1; k < NT; k += 7) {
        double ns = jade_survey_nz(s, b, z[k]);
        if (!(ns > 1e-3)) continue;
        if (isnan(scale)) scale = jade_survey_nz(t, b, z[k]) / ns;
        jade_test_max_err(&node, fabs(jade_survey_nz(t, b, z[k]) / ns / scale - 1.0));
      }
      CHECK_LT(node, 1e-12, "bin %d: spline misses its nodes by %g", b, node);
      CHECK_ABS(scale, 1.0, 2.0 * eps[b]);
    }
    jade_survey_free(t2);
    free(z2);
    free(nz2);
  }
  /* no negative n(z) between non-negative nodes, even at a step (monotone interpolant) */
  {
    double zs[6] = {0.0, 0.1, 0.2, 0.3, 0.4, 0.5}, ns[6] = {0.0, 0.0, 5.0, 5.0, 0.0, 0.0};
    jade_survey *st = NULL;
    CHECK_OK(jade_survey_create_interp(1, 6, zs, ns, JADE_NZ_SPLINE, &st));
    double mn = 1.0;
    for (int i = 0; i <= 5000; i++) mn = fmin(mn, jade_survey_nz(st, 0, i * 1e-4));
    CHECK_GE(mn, 0.0, "spline of a step goes negative (%g)", mn);
    jade_survey_free(st);
  }

  /* ---- 2. C_ell of the table vs the Smail C_ell, bound from the L1 error ---------------- */
  {
    enum { NL = 16, NP = 15, NPLANE = 9 };
    double ell[NL], cs[NL * NP], ct[NL * NP];
    for (int i = 0; i < NL; i++) ell[i] = 10.0 * pow(1000.0, i / (NL - 1.0));
    CHECK_OK(jade_cosmo_limber_cl(c, s, NL, ell, JADE_CL_SHEAR, 1, cs));
    CHECK_OK(jade_cosmo_limber_cl(c, t, NL, ell, JADE_CL_SHEAR, 1, ct));
    /* intervals I_p = [top_{p-1}, top_p] of z; the bump for I_p sits on [top_p, top_p + 0.02] */
    const double top[NPLANE] = {0.2, 0.4, 0.6, 0.8, 1.0, 1.3, 1.7, 2.5, 10.0};
    double e_int[5][NPLANE];
    for (int b = 0; b < 5; b++)
      for (int p = 0; p < NPLANE; p++) e_int[b][p] = l1_diff(t, s, b, p ? top[p - 1] : 0.0, top[p]);
    /* K_j: for each j a survey (n_j as the table's spline, then the NPLANE bumps) on the table
     * grid extended to 10.03 (zeros above 10) */
    const int NX = NT + 3;
    double *kj = malloc(sizeof(double) * 5 * NL * NPLANE), ptop[NL];
    double *zx = malloc(sizeof(double) * NX), *nx = malloc(sizeof(double) * NX * (1 + NPLANE));
    for (int k = 0; k < NX; k++) zx[k] = 0.01 * k;
    for (int j = 0; j < 5; j++) {
      memset(nx, 0, sizeof(double) * NX * (1 + NPLANE));
      for (int k = 0; k < NT; k++) nx[k] = nz[(size_t)j * NT + k];
      for (int p = 0; p < NPLANE; p++) nx[(size_t)(1 + p) * NX + (int)lround(top[p] / 0.01) + 1] = 1.0;
      jade_survey *mix = NULL;
      CHECK_OK(jade_survey_create_interp(1 + NPLANE, NX, zx, nx, JADE_NZ_SPLINE, &mix));
      int npair = jade_n_pairs(1 + NPLANE);
      double *cm = malloc(sizeof(double) * NL * npair);
      CHECK_OK(jade_cosmo_limber_cl(c, mix, NL, ell, JADE_CL_SHEAR, 1, cm));
      for (int i = 0; i < NL; i++) {
        for (int p = 0; p < NPLANE; p++) kj[((size_t)j * NL + i) * NPLANE + p] = cm[i * npair + jade_pair_index(1 + NPLANE, 0, 1 + p)];
        ptop[i] = cm[i * npair + jade_pair_index(1 + NPLANE, NPLANE, NPLANE)];
      }
      jade_survey_free(mix);
      free(cm);
    }
    /* K_j increasing in z: the bumps' C_ell must increase with their redshift */
    for (int j = 0; j < 5; j++)
      for (int p = 1; p < NPLANE; p++) CHECK_GT(kj[(size_t)j * NL * NPLANE + p], kj[(size_t)j * NL * NPLANE + p - 1], "K_%d not increasing", j);
    /* Kernel quadrature of the two internal grids (third-order rule, dz <= 0.002 in both):
     * measured <= 4e-7 with tables of dz = 0.001 (where the spline error is ~1e-8); allowed
     * 1e-6 of C_ij. */
    const double quad = 1e-6;
    double worst = 0.0, max_rel = 0.0;
    for (int i = 0; i < NL; i++)
      for (int a = 0; a < 5; a++)
        for (int b = a; b < 5; b++) {
          double bound = eps[a] * eps[b] * ptop[i];
          for (int p = 0; p < NPLANE; p++)
            bound += e_int[a][p] * kj[((size_t)b * NL + i) * NPLANE + p] + e_int[b][p] * kj[((size_t)a * NL + i) * NPLANE + p];
          int q = jade_pair_index(5, a, b);
          double ref = cs[i * NP + q], d = fabs(ct[i * NP + q] - ref);
          bound += quad * ref;
          jade_test_max_err(&worst, d / bound);
          jade_test_max_err(&max_rel, d / ref);
          CHECK_LE(d, bound, "ell %.1f pair %d%d: |dC| = %.3e above the bound %.3e", ell[i], a, b, d, bound);
        }
    printf("C_ell of the dz = 0.01 table vs Smail: max relative difference %.2e; max |dC| / bound %.3f\n", max_rel, worst);
    CHECK_LT(max_rel, 1e-4, "table C_ell off by %g", max_rel);
    free(kj);
    free(zx);
    free(nx);
  }

  /* ---- 3. delta-like n(z): single source plane --------------------------------------- */
  {
    const double zs = 1.0, w = 0.05;
    double zb[3] = {zs - w, zs, zs + w}, nb[3] = {0.0, 1.0, 0.0};
    jade_survey *d = NULL;
    CHECK_OK(jade_survey_create_interp(1, 3, zb, nb, JADE_NZ_SPLINE, &d));
    /* <1/chi'> over the bump (Simpson, 2000 intervals: the bump is two cubic pieces) */
    double inv = 0.0, norm = 0.0;
    int m = 2000;
    for (int i = 0; i <= m; i++) {
      double zz = zs - w + 2.0 * w * i / m, wt = (i == 0 || i == m) ? 1.0 : ((i & 1) ? 4.0 : 2.0);
      double n = jade_survey_nz(d, 0, zz);
      inv += wt * n / jade_cosmo_chi(c, 1.0 / (1.0 + zz));
      norm += wt * n;
    }
    inv /= norm;
    CHECK_ABS(norm * 2.0 * w / m / 3.0, 1.0, 1e-9);
    const double chi_lo = jade_cosmo_chi(c, 1.0 / (1.0 + zs - w)), chi_hi = jade_cosmo_chi(c, 1.0 / (1.0 + zs + w));
    enum { NL = 8 };
    double ell[NL], cl[NL];
    for (int i = 0; i < NL; i++) ell[i] = 10.0 * pow(1000.0, i / (NL - 1.0));
    CHECK_OK(jade_cosmo_limber_cl(c, d, NL, ell, JADE_CL_CONVERGENCE, 1, cl));
    gsl_integration_workspace *ws = gsl_integration_workspace_alloc(2000);
    double worst = 0.0;
    for (int i = 0; i < NL; i++) {
      plane_ctx pc = {c, d, ell[i], inv, chi_lo, zs + w};
      gsl_function F = {plane_integrand, &pc};
      double r1, r2, e1, e2;
      gsl_integration_qag(&F, 1e-6, chi_lo, 0.0, 1e-10, 2000, GSL_INTEG_GAUSS41, ws, &r1, &e1);
      gsl_integration_qag(&F, chi_lo, chi_hi, 0.0, 1e-10, 2000, GSL_INTEG_GAUSS41, ws, &r2, &e2);
      double ref = r1 + r2, rel = fabs(cl[i] / ref - 1.0);
      printf("plane z_s = %g: ell %7.1f  C %.6e  plane formula %.6e  rel %.2e (slice in the bump %.1e)\n", zs, ell[i], cl[i],
             ref, rel, r2 / ref);
      jade_test_max_err(&worst, rel);
    }
    gsl_integration_workspace_free(ws);
    /* the library's Limber quadrature is ~2e-5 (limber.c), its kernel quadrature of the
     * bump (third-order rule, h/w = 0.04) ~1e-5, the bump slice < 1e-5 */
    CHECK_LT(worst, 5e-5, "single-plane C_ell off by %g", worst);
    jade_survey_free(d);
  }

  /* ---- 4. readers ------------------------------------------------------------------- */
  {
    enum { NR = 201 }; /* dz = 0.02 on [0, 4] */
    double zr[NR], nr[NR * 5];
    smail_table(s, NR, 0.02, zr, nr);
    jade_survey *ref = NULL;
    CHECK_OK(jade_survey_create_interp(5, NR, zr, nr, JADE_NZ_SPLINE, &ref));
    char p_txt[512], p_csv[512], p_fits[512], path[512];
    snprintf(p_txt, sizeof p_txt, "%s/nz.txt", test_dir);
    snprintf(p_csv, sizeof p_csv, "%s/nz.csv", test_dir);
    snprintf(p_fits, sizeof p_fits, "%s/nz.fits", test_dir);
    write_table(p_txt, "z bin1 bin2 bin3 bin4 bin5", ' ', NR, zr, nr);
    write_table(p_csv, "Z_MID,BIN_1,BIN_2,BIN_3,BIN_4,BIN_5", ',', NR, zr, nr);
    { /* 2pt-style: a first table that is not the n(z), then NZ_SOURCE */
      fitsfile *f = NULL;
      int status = 0;
      char fname[600];
      snprintf(fname, sizeof fname, "!%s", p_fits);
      fits_create_file(&f, fname, &status);
      char *tt0[] = {"ANG", "VALUE"}, *tf0[] = {"D", "D"};
      fits_create_tbl(f, BINARY_TBL, 0, 2, tt0, tf0, NULL, "xip", &status);
      double one = 1.0;
      fits_write_col(f, TDOUBLE, 1, 1, 1, 1, &one, &status);
      fits_write_col(f, TDOUBLE, 2, 1, 1, 1, &one, &status);
      char *tt[] = {"Z_LOW", "Z_MID", "Z_HIGH", "BIN1", "BIN2", "BIN3", "BIN4", "BIN5"};
      char *tf[] = {"D", "D", "D", "D", "D", "D", "D", "D"};
      fits_create_tbl(f, BINARY_TBL, NR, 8, tt, tf, NULL, "NZ_SOURCE", &status);
      double lo[NR], hi[NR];
      for (int k = 0; k < NR; k++) lo[k] = zr[k] - 0.01, hi[k] = zr[k] + 0.01;
      fits_write_col(f, TDOUBLE, 1, 1, 1, NR, lo, &status);
      fits_write_col(f, TDOUBLE, 2, 1, 1, NR, zr, &status);
      fits_write_col(f, TDOUBLE, 3, 1, 1, NR, hi, &status);
      for (int b = 0; b < 5; b++) fits_write_col(f, TDOUBLE, 4 + b, 1, 1, NR, nr + (size_t)b * NR, &status);
      fits_close_file(f, &status);
      CHECK(status == 0, "writing %s: CFITSIO status %d", p_fits, status);
    }
    const char *paths[3] = {p_txt, p_csv, p_fits};
    for (int i = 0; i < 3; i++) {
      jade_survey *r = NULL;
      CHECK_OK(jade_survey_read_nz(paths[i], 5, &r));
      double diff = 0.0;
      for (int b = 0; b < 5; b++)
        for (int k = 0; k <= 4000; k++) jade_test_max_err(&diff, fabs(jade_survey_nz(r, b, k * 1e-3) - jade_survey_nz(ref, b, k * 1e-3)));
      CHECK(diff == 0.0, "%s: n(z) differs from the arrays' by %g", paths[i], diff);
      CHECK(jade_survey_z_max(r) == zr[NR - 1], "%s: z_max %g", paths[i], jade_survey_z_max(r));
      jade_survey_free(r);
    }
    jade_survey_free(ref);
    /* refusals: each names the file and what is wrong */
    check_refused(p_txt, 4, "5 bin columns", "n_bins = 4");
    check_refused(p_txt, 6, "5 bin columns", "n_bins = 6");
    static const struct {
      const char *file, *text;
      int n_bins;
      const char *n1, *n2;
    } bad[] = {
        {"nonmono.txt", "z bin1\n0 0\n0.5 1\n0.4 1\n1.0 0\n", 1, "row 3", "z must increase"},
        {"neg.txt", "z bin1 bin2\n0 0 0\n0.5 1 2\n1.0 -0.5 1\n1.5 0 0\n", 2, "'bin1' row 3", "negative"},
        {"nan.txt", "z bin1\n0 0\n0.5 nan\n1.0 0\n", 1, "bin1", "not a finite number"},
        {"short.txt", "z bin1\n0 0\n0.5 1\n", 1, "2 rows", "at least 3"},
        {"gap.txt", "z bin1 bin3\n0 0 0\n0.5 1 1\n1.0 0 0\n", 2, "'bin3'", "no 'bin2'"},
        {"noz.txt", "redshift bin1\n0 0\n0.5 1\n1.0 0\n", 1, "no redshift column", "'z'"},
        {"zero.txt", "z bin1 bin2\n0 0 0\n0.5 1 0\n1.0 0 0\n", 2, "'bin2'", "zero in every row"},
        {"zneg.txt", "z bin1\n-0.1 0\n0.5 1\n1.0 0\n", 1, "row 1", "[0, 100]"},
        {"both.txt", "z z_mid bin1\n0 0 0\n0.5 0.5 1\n1.0 1.0 0\n", 1, "'z'", "'z_mid'"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
      snprintf(path, sizeof path, "%s/%s", test_dir, bad[k].file);
      write_text(path, bad[k].text);
      check_refused(path, bad[k].n_bins, bad[k].n1, bad[k].n2);
    }
    snprintf(path, sizeof path, "%s/missing.txt", test_dir);
    check_refused(path, 1, "No such file", NULL);
  }

  /* ---- 5. the config key and the simulator ------------------------------------------ */
  {
    char cwd[4096], text[8192];
    CHECK(getcwd(cwd, sizeof cwd) != NULL, "getcwd");
    CHECK(chdir(test_dir) == 0, "chdir %s", test_dir);
    jade_config *cfg = NULL;
    CHECK_OK(jade_config_create(&cfg));
    CHECK_OK(jade_config_load_preset(cfg, "small"));
    CHECK_OK(jade_config_set(cfg, "nz_file=nz.txt"));
    jade_sim_config sc;
    CHECK_OK(jade_sim_config_read(cfg, &sc));
    snprintf(text, sizeof text, "%s/nz.txt", test_dir);
    char *abs = realpath(text, NULL);
    CHECK(abs && !strcmp(sc.survey.nz_file, abs), "nz_file %s, expected %s", sc.survey.nz_file, abs ? abs : "?");
    char *dump = jade_config_dump(cfg);
    snprintf(text, sizeof text, "nz_file = %s\n", abs ? abs : "?");
    CHECK(dump && strstr(dump, text), "config.ini does not record the absolute path:\n%s", dump ? dump : "");
    CHECK_OK(jade_config_check_unused(cfg, (const char *const[]){"", NULL}));
    free(dump);
    free(abs);
    CHECK(chdir(cwd) == 0, "chdir back");
    /* the simulator's C_ell table and noise come from the file */
    jade_simulator *sim = NULL;
    CHECK_OK(jade_simulator_create(&sc, &sim));
    enum { NP = 15 };
    float *kappa = malloc(sizeof(float) * 5 * sc.geom.n_pix * sc.geom.n_pix);
    double th[JADE_N_THETA];
    jade_theta_from_params(&sc.cosmo, th);
    CHECK_OK(jade_simulator_run(sim, th, 1, 0, kappa, NULL, NULL, NULL));
    const double *sell, *scl;
    int nl = jade_simulator_cl_table(sim, &sell, &scl);
    jade_survey *fs = NULL;
    CHECK_OK(jade_survey_read_nz(sc.survey.nz_file, 5, &fs));
    double *ref = malloc(sizeof(double) * nl * NP);
    CHECK_OK(jade_cosmo_limber_cl(c, fs, nl, sell, JADE_CL_CONVERGENCE, 1, ref));
    CHECK(memcmp(ref, scl, sizeof(double) * nl * NP) == 0, "the simulator's C_ell is not the table's");
    double sig[5];
    jade_simulator_noise(sim, sig);
    double pix = jade_pixel_arcmin(&sc.geom);
    for (int b = 0; b < 5; b++) CHECK_REL(sig[b], 0.26 / sqrt(27.0 / 5 * pix * pix), 1e-14);
    /* a table with a different number of bins is a config error naming the key */
    CHECK(jade_config_set(cfg, "n_bins=3") == JADE_OK, "set n_bins");
    CHECK(jade_sim_config_read(cfg, &sc) != JADE_OK && strstr(jade_last_error(), "nz_file") &&
              strstr(jade_last_error(), "n_bins = 3"),
          "3 bins accepted: %s", jade_last_error());
    /* nz_file = none: the Smail bins */
    CHECK_OK(jade_config_set(cfg, "n_bins=5"));
    CHECK_OK(jade_config_set(cfg, "nz_file=none"));
    CHECK_OK(jade_sim_config_read(cfg, &sc));
    CHECK(sc.survey.nz_file[0] == 0, "nz_file = none read as %s", sc.survey.nz_file);
    jade_survey_free(fs);
    jade_simulator_free(sim);
    jade_config_free(cfg);
    free(kappa);
    free(ref);
  }

  jade_survey_free(t);
  jade_survey_free(lin);
  jade_survey_free(s);
  jade_cosmo_free(c);
  free(z);
  free(nz);
  TEST_RETURN();
}
