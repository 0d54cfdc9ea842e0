/* jade cosmo pk|cl|shift|nz: tables for the config's cosmology, as whitespace-separated columns
 * under a '#' header naming columns and units (numpy.loadtxt / getdist readable). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "jade/cosmo.h"
#include "jade/sim.h"

static void print_cosmo_header(const jade_sim_config *sc) {
  const jade_cosmo_params *p = &sc->cosmo;
  printf("# jade %s: Omega_c=%g Omega_b=%g sigma_8=%g h=%g n_s=%g w_0=%g T_cmb=%g N_eff=%g radiation=%d\n",
         JADE_VERSION_STRING, p->Omega_c, p->Omega_b, p->sigma_8, p->h, p->n_s, p->w_0, p->T_cmb, p->N_eff,
         p->radiation);
  if (sc->survey.nz_file[0]) printf("# n(z) of the %d bins from %s\n", sc->survey.n_bins, sc->survey.nz_file);
}

/* jade cosmo pk: P(k) on --n-k log-spaced k at redshift --z. */
static jade_status print_pk(jade_option *opts, const jade_sim_config *sc, const jade_cosmo *c, int linear) {
  double z, kmin, kmax;
  long nk;
  jade_status st = jade_cli_double(opts, "z", 0, 1000, &z);
  if (!st) st = jade_cli_double(opts, "k-min", 1e-6, 1e4, &kmin);
  if (!st) st = jade_cli_double(opts, "k-max", kmin, 1e4, &kmax);
  if (!st) st = jade_cli_long(opts, "n-k", 1, 1000000, &nk);
  if (st) return st;
  print_cosmo_header(sc);
  printf("# %s matter power spectrum at z = %g\n# k[h/Mpc] P[(Mpc/h)^3]\n", linear ? "linear" : "halofit", z);
  double a = 1.0 / (1.0 + z);
  for (long i = 0; i < nk; i++) {
    double k = nk == 1 ? kmin : kmin * pow(kmax / kmin, (double)i / (nk - 1));
    printf("%.10e %.10e\n", k, linear ? jade_cosmo_pk_lin(c, k, a) : jade_cosmo_pk_nl(c, k, a));
  }
  return JADE_OK;
}

/* jade cosmo cl: Limber C_ell of every bin pair on --n-ell log-spaced multipoles. */
static jade_status print_cl(jade_option *opts, const jade_sim_config *sc, const jade_cosmo *c, const jade_survey *s,
                            int linear) {
  double lmin, lmax;
  long nl;
  jade_status st = jade_cli_double(opts, "ell-min", 1, 1e6, &lmin);
  if (!st) st = jade_cli_double(opts, "ell-max", lmin, 1e6, &lmax);
  if (!st) st = jade_cli_long(opts, "n-ell", 1, 100000, &nl);
  if (st) return st;
  int nb = sc->survey.n_bins, npairs = jade_n_pairs(nb);
  double *ell = malloc(sizeof(double) * nl), *cl = malloc(sizeof(double) * nl * npairs);
  if (!ell || !cl) st = jade_error(JADE_ERR_NOMEM, "out of memory");
  int conv = jade_cli_opt(opts, "convergence")->seen;
  if (!st) {
    for (long i = 0; i < nl; i++) ell[i] = nl == 1 ? lmin : lmin * pow(lmax / lmin, (double)i / (nl - 1));
    st = jade_cosmo_limber_cl(c, s, (int)nl, ell, conv ? JADE_CL_CONVERGENCE : JADE_CL_SHEAR, !linear, cl);
  }
  if (!st) {
    print_cosmo_header(sc);
    printf("# Limber %s C_ell (%s P(k)), k = (ell+1/2)/chi; dimensionless\n# ell", conv ? "convergence" : "shear E-mode",
           linear ? "linear" : "halofit");
    for (int i = 0; i < nb; i++)
      for (int j = i; j < nb; j++) printf(" C_%d%d", i, j);
    printf("\n");
    for (long l = 0; l < nl; l++) {
      printf("%.10e", ell[l]);
      for (int p = 0; p < npairs; p++) printf(" %.10e", cl[l * npairs + p]);
      printf("\n");
    }
  }
  free(ell);
  free(cl);
  return st;
}

/* jade cosmo shift: the log-normal shift lambda of each bin for the map's (or --pixel) pixel. */
static jade_status print_shift(jade_option *opts, const jade_sim_config *sc, const jade_cosmo *c, const jade_survey *s) {
  double pix = jade_pixel_arcmin(&sc->geom);
  jade_status st = JADE_OK;
  if (jade_cli_opt(opts, "pixel")->value) st = jade_cli_double(opts, "pixel", 1e-3, 600, &pix);
  double lambda[JADE_MAX_BINS];
  /* top-hat of the pixel's area: radius pixel / sqrt(pi) */
  if (!st) st = jade_cosmo_lognormal_shift(c, s, pix / sqrt(M_PI), lambda);
  if (st) return st;
  print_cosmo_header(sc);
  printf("# log-normal shift of the convergence smoothed with a top-hat of radius %.6g arcmin "
         "(pixel %.6g arcmin / sqrt(pi))\n# bin lambda\n",
         pix / sqrt(M_PI), pix);
  for (int i = 0; i < sc->survey.n_bins; i++) printf("%d %.10e\n", i, lambda[i]);
  return JADE_OK;
}

/* jade cosmo nz: n(z) of each bin as used, on --n-z redshifts from 0 to --z-max. */
static jade_status print_nz(jade_option *opts, const jade_sim_config *sc, const jade_survey *s) {
  long nzn;
  double zmax = jade_survey_z_max(s);
  jade_status st = jade_cli_long(opts, "n-z", 3, 10000000L, &nzn);
  if (!st && jade_cli_opt(opts, "z-max")->value) st = jade_cli_double(opts, "z-max", 1e-3, 100, &zmax);
  if (st) return st;
  int nb = sc->survey.n_bins;
  print_cosmo_header(sc);
  if (sc->survey.nz_file[0])
    printf("# Steffen spline of the table, unit integral\n");
  else
    printf("# Smail n(z) alpha=%g beta=%g z0=%g on [0, %g], %d equal-number bins, photo-z sigma_z=%g (unit integral)\n",
           sc->survey.smail_alpha, sc->survey.smail_beta, sc->survey.smail_z0, sc->survey.z_max, nb, sc->survey.sigma_z);
  printf("z");
  for (int i = 0; i < nb; i++) printf(" bin%d", i + 1);
  printf("\n");
  for (long k = 0; k < nzn; k++) {
    double z = zmax * (double)k / (nzn - 1);
    printf("%.10e", z);
    for (int i = 0; i < nb; i++) printf(" %.10e", jade_survey_nz(s, i, z));
    printf("\n");
  }
  return JADE_OK;
}

int jade_cmd_cosmo(int argc, char **argv) {
  jade_option opts[] = {
      JADE_CONFIG_OPTIONS,
      {"z", "Z", "redshift (pk)", "0", 0, 0, NULL, 0},
      {"linear", NULL, "linear P(k) instead of halofit (pk, cl)", NULL, 0, 0, NULL, 0},
      {"k-min", "K", "smallest k [h/Mpc] (pk)", "1e-4", 0, 0, NULL, 0},
      {"k-max", "K", "largest k [h/Mpc] (pk)", "20", 0, 0, NULL, 0},
      {"n-k", "N", "number of log-spaced k (pk)", "200", 0, 0, NULL, 0},
      {"ell-min", "L", "smallest multipole (cl)", "10", 0, 0, NULL, 0},
      {"ell-max", "L", "largest multipole (cl)", "10000", 0, 0, NULL, 0},
      {"n-ell", "N", "number of log-spaced multipoles (cl)", "100", 0, 0, NULL, 0},
      {"convergence", NULL, "bare convergence C_ell, without the shear (l+2)!/(l-2)!/(l+1/2)^4 factor (cl)", NULL, 0, 0, NULL, 0},
      {"pixel", "ARCMIN", "pixel side for the shift (default: the config's map pixel)", NULL, 0, 0, NULL, 0},
      {"n-z", "N", "number of redshifts from 0 to --z-max (nz)", "501", 0, 0, NULL, 0},
      {"z-max", "Z", "largest redshift (nz; default: the survey's z_max)", NULL, 0, 0, NULL, 0},
      {NULL, NULL, NULL, NULL, 0, 0, NULL, 0}};
  const char *pos[1];
  int npos = 0;
  int r = jade_cli_parse(argc, argv, "jade cosmo pk|cl|shift|nz [options]",
                         "Print, for the config's cosmology:\n"
                         "  pk     P(k) at redshift --z (k in h/Mpc, P in (Mpc/h)^3; halofit unless --linear)\n"
                         "  cl     Limber C_ell of every bin pair (ell, then 00 01 .. 0n 11 .. nn)\n"
                         "  shift  the log-normal shift lambda of each bin for the map's pixel\n"
                         "  nz     n(z) of each bin as used (unit integral; columns z bin1 .. binN: a valid nz_file)",
                         opts, pos, 1, &npos);
  if (r) {
    jade_cli_free(opts);
    return r > 0 ? 0 : 2;
  }
  if (npos != 1 || (strcmp(pos[0], "pk") && strcmp(pos[0], "cl") && strcmp(pos[0], "shift") && strcmp(pos[0], "nz"))) {
    fprintf(stderr, "jade cosmo: expected one of pk, cl, shift, nz (see jade cosmo --help)\n");
    jade_cli_free(opts);
    return 2;
  }
  jade_config *cfg = NULL;
  jade_sim_config sc;
  jade_cosmo *c = NULL;
  jade_survey *s = NULL;
  jade_status st = jade_cli_load_config(opts, &cfg);
  if (!st) st = jade_sim_config_read(cfg, &sc);
  if (!st) st = jade_config_check_unused(cfg, (const char *const[]){"", NULL});
  if (!st) st = jade_cosmo_create(&sc.cosmo, &c);
  int linear = jade_cli_opt(opts, "linear")->seen;
  if (!st && strcmp(pos[0], "pk")) st = jade_survey_create(&sc.survey, &s);
  if (!st && !strcmp(pos[0], "pk")) st = print_pk(opts, &sc, c, linear);
  if (!st && !strcmp(pos[0], "cl")) st = print_cl(opts, &sc, c, s, linear);
  if (!st && !strcmp(pos[0], "shift")) st = print_shift(opts, &sc, c, s);
  if (!st && !strcmp(pos[0], "nz")) st = print_nz(opts, &sc, s);
  jade_survey_free(s);
  jade_cosmo_free(c);
  jade_config_free(cfg);
  jade_cli_free(opts);
  if (st) return jade_cli_fail("cosmo");
  fflush(stdout);
  if (ferror(stdout)) {
    fprintf(stderr, "jade cosmo: error writing the output\n");
    return 1;
  }
  return 0;
}
