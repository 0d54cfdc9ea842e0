/* Config -> simulator set-up, the prior, and one-call map simulation. */
#include "jade/sim.h"

#include <ctype.h>
#include <errno.h>
#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/observation.h"

const char *const jade_theta_names[JADE_N_THETA] = {"Omega_c", "Omega_b", "sigma_8", "h", "n_s", "w_0"};
const char *const jade_param_names[JADE_N_PARAM_COLS] = {"Omega_c", "Omega_b", "sigma_8", "h", "n_s", "w_0", "Omega_m", "S_8"};
const char *const jade_param_latex[JADE_N_PARAM_COLS] = {"\\Omega_{\\rm c}", "\\Omega_{\\rm b}", "\\sigma_8", "h",
                                                         "n_{\\rm s}", "w_0", "\\Omega_{\\rm m}", "S_8"};

/* The one validity rule for theta, shared by the config check (jade cosmo, observe, the
 * fiducial of every command) and the prior draws of jade simulate: closed ranges, except
 * Omega_b > 0 (the Eisenstein & Hu 1998 transfer function divides by it), and a flat wCDM
 * universe needs Omega_c + Omega_b < 1. */
static const struct {
  double lo, hi;
  int lo_open;
} theta_range[JADE_N_THETA] = {{0.0, 1.0, 0}, {0.0, 0.3, 1}, {0.05, 3.0, 0}, {0.2, 1.5, 0}, {0.5, 1.5, 0}, {-3.0, 0.0, 0}};

jade_status jade_theta_check(const double theta[JADE_N_THETA]) {
  for (int i = 0; i < JADE_N_THETA; i++) {
    double x = theta[i], lo = theta_range[i].lo, hi = theta_range[i].hi;
    if (!isfinite(x) || x > hi || x < lo || (theta_range[i].lo_open && x == lo))
      return jade_error(JADE_ERR_INVALID, "%s = %g is outside the valid range %s%g, %g]", jade_theta_names[i], x,
                        theta_range[i].lo_open ? "(" : "[", lo, hi);
  }
  if (!(theta[0] + theta[1] < 1.0))
    return jade_error(JADE_ERR_INVALID, "Omega_c + Omega_b = %g must be below 1 (flat wCDM)", theta[0] + theta[1]);
  return JADE_OK;
}

/* Mass of a 1-D prior inside [lo, hi]. */
static double prior_mass(const jade_prior1d *p, double lo, double hi) {
  double a = fmax(lo, p->lo), b = fmin(hi, p->hi);
  if (!(a < b)) return 0;
  if (p->kind == JADE_PRIOR_UNIFORM) return (b - a) / (p->hi - p->lo);
  double za = (a - p->mean) / p->sd, zb = (b - p->mean) / p->sd;
  double m = gsl_cdf_ugaussian_P(zb) - gsl_cdf_ugaussian_P(za);
  if (p->kind == JADE_PRIOR_TRUNCNORMAL)
    m /= gsl_cdf_ugaussian_P((p->hi - p->mean) / p->sd) - gsl_cdf_ugaussian_P((p->lo - p->mean) / p->sd);
  return m;
}

static jade_status read_prior(jade_config *cfg, const char *name, jade_prior1d *p) {
  char key[64];
  snprintf(key, sizeof key, "prior_%s", name);
  const char *text;
  jade_status st = jade_config_get_string(cfg, key, &text);
  if (st) return st;
  char kind[32];
  double v[4];
  int n = 0, klen = 0;
  /* the kind, then numbers up to the end of the value: nothing else may follow */
  while (text[klen] && !isspace((unsigned char)text[klen])) klen++;
  if (klen >= (int)sizeof kind) klen = (int)sizeof kind - 1;
  memcpy(kind, text, (size_t)klen);
  kind[klen] = 0;
  const char *s = text + klen;
  char what[128];
  snprintf(what, sizeof what, "key '%s'", key);
  for (;;) {
    while (isspace((unsigned char)*s)) s++;
    if (!*s) break;
    if (n == 4)
      return jade_error(JADE_ERR_CONFIG, "key '%s' = '%s': unexpected text '%s' after the numbers", key, text, s);
    char *end;
    /* "inf" / "-inf" are allowed as truncnormal bounds */
    if (!strncmp(s, "inf", 3) || !strncmp(s, "-inf", 4) || !strncmp(s, "+inf", 4)) {
      v[n] = s[0] == '-' ? -INFINITY : INFINITY;
      end = (char *)s + (s[0] == 'i' ? 3 : 4);
    } else if (jade_parse_double_prefix(what, s, &v[n], &end)) {
      return jade_error(JADE_ERR_CONFIG, "key '%s' = '%s': '%s' is not a finite number", key, text, s);
    }
    if (*end && !isspace((unsigned char)*end))
      return jade_error(JADE_ERR_CONFIG, "key '%s' = '%s': unexpected text '%s' after a number", key, text, end);
    n++;
    s = end;
  }
  n++; /* count the kind, as sscanf did */
  if (!strcmp(kind, "normal") && n == 3) {
    p->kind = JADE_PRIOR_NORMAL;
    p->mean = v[0];
    p->sd = v[1];
    p->lo = -INFINITY;
    p->hi = INFINITY;
  } else if (!strcmp(kind, "truncnormal") && n == 5) {
    p->kind = JADE_PRIOR_TRUNCNORMAL;
    p->mean = v[0];
    p->sd = v[1];
    p->lo = v[2];
    p->hi = v[3];
  } else if (!strcmp(kind, "uniform") && n == 3) {
    p->kind = JADE_PRIOR_UNIFORM;
    p->lo = v[0];
    p->hi = v[1];
    p->mean = 0.5 * (v[0] + v[1]);
    p->sd = (v[1] - v[0]) / sqrt(12.0);
  } else {
    return jade_error(JADE_ERR_CONFIG,
                      "key '%s' = '%s': expected 'normal MEAN SD', 'truncnormal MEAN SD LOW HIGH' "
                      "or 'uniform LOW HIGH'", key, text);
  }
  if (!isfinite(p->mean) || !(p->sd > 0) || !isfinite(p->sd) || !(p->lo < p->hi) || isnan(p->lo) || isnan(p->hi))
    return jade_error(JADE_ERR_CONFIG, "key '%s' = '%s': invalid prior (need SD > 0, LOW < HIGH)", key, text);
  if (p->kind == JADE_PRIOR_UNIFORM && !(isfinite(p->lo) && isfinite(p->hi)))
    return jade_error(JADE_ERR_CONFIG, "key '%s' = '%s': uniform bounds must be finite", key, text);
  return JADE_OK;
}

/* nz_file = none (or no such key: configs older than the key) keeps the Smail bins; a path
 * selects an n(z) table, read once here so that a bad table fails before any output. A
 * relative path is taken from the working directory and recorded absolute in the effective
 * configuration (config.ini of every output), so a dataset or model made with it finds the
 * same table from anywhere. */
static jade_status read_nz_file(jade_config *cfg, jade_survey_params *s) {
  s->nz_file[0] = 0;
  if (!jade_config_has(cfg, "nz_file")) return JADE_OK;
  const char *v;
  jade_status st = jade_config_get_string(cfg, "nz_file", &v);
  if (st || !strcmp(v, "none")) return st;
  char *abs = realpath(v, NULL);
  if (!abs) return jade_error(JADE_ERR_CONFIG, "key 'nz_file' = '%s': %s", v, strerror(errno));
  if (strlen(abs) >= sizeof s->nz_file) {
    free(abs);
    return jade_error(JADE_ERR_CONFIG, "key 'nz_file' = '%s': path longer than %zu characters", v,
                      sizeof s->nz_file - 1);
  }
  snprintf(s->nz_file, sizeof s->nz_file, "%s", abs);
  free(abs);
  jade_survey *t = NULL;
  if ((st = jade_survey_read_nz(s->nz_file, s->n_bins, &t))) return jade_error_context(st, "key 'nz_file'");
  jade_survey_free(t);
  if (strcmp(v, s->nz_file)) { /* record the absolute path */
    char assign[sizeof s->nz_file + 16];
    snprintf(assign, sizeof assign, "nz_file=%s", s->nz_file);
    if ((st = jade_config_set(cfg, assign)) || (st = jade_config_get_string(cfg, "nz_file", &v))) return st;
  }
  return JADE_OK;
}

size_t jade_sim_struct_size(const char *name) {
  static const struct {
    const char *name;
    size_t size;
  } sizes[] = {{"jade_sim_config", sizeof(jade_sim_config)},       {"jade_cosmo_params", sizeof(jade_cosmo_params)},
               {"jade_survey_params", sizeof(jade_survey_params)}, {"jade_map_geometry", sizeof(jade_map_geometry)},
               {"jade_prior1d", sizeof(jade_prior1d)},           {"jade_observation", sizeof(jade_observation)}};
  for (size_t i = 0; name && i < sizeof sizes / sizeof sizes[0]; i++)
    if (!strcmp(name, sizes[i].name)) return sizes[i].size;
  return 0;
}

jade_status jade_sim_config_read(jade_config *cfg, jade_sim_config *sc) {
  memset(sc, 0, sizeof *sc);
  jade_cosmo_params *c = &sc->cosmo;
  *c = jade_cosmo_params_fiducial();
  jade_status st;
#define GETD(key, lo, hi, dst) \
  if ((st = jade_config_get_double_range(cfg, key, lo, hi, dst))) return st
  double *const th_dst[JADE_N_THETA] = {&c->Omega_c, &c->Omega_b, &c->sigma_8, &c->h, &c->n_s, &c->w_0};
  for (int i = 0; i < JADE_N_THETA; i++) GETD(jade_theta_names[i], theta_range[i].lo, theta_range[i].hi, th_dst[i]);
  GETD("T_cmb", 1.0, 4.0, &c->T_cmb);
  GETD("N_eff", 0.0, 10.0, &c->N_eff);
  long rad;
  if ((st = jade_config_get_int(cfg, "radiation", 0, 1, &rad))) return st;
  c->radiation = (int)rad;
  c->w_a = 0.0;
  c->Omega_k = 0.0;
  c->transfer = JADE_TRANSFER_EH;
  {
    double th[JADE_N_THETA];
    jade_theta_from_params(c, th);
    if (jade_theta_check(th)) return jade_error_context(JADE_ERR_CONFIG, "configuration");
  }

  jade_survey_params *s = &sc->survey;
  long nb;
  if ((st = jade_config_get_int(cfg, "n_bins", 1, JADE_MAX_BINS, &nb))) return st;
  s->n_bins = (int)nb;
  GETD("z_max", 0.5, 20.0, &s->z_max);
  GETD("nz_alpha", 0.0, 10.0, &s->smail_alpha);
  GETD("nz_beta", 0.05, 10.0, &s->smail_beta);
  GETD("nz_z0", 0.01, 5.0, &s->smail_z0);
  GETD("sigma_z", 0.0, 1.0, &s->sigma_z);
  GETD("n_gal", 1e-3, 1e4, &s->n_gal);
  GETD("sigma_e", 0.0, 2.0, &s->sigma_e);
  if ((st = read_nz_file(cfg, s))) return st;

  long np;
  if ((st = jade_config_get_int(cfg, "n_pix", 8, 4096, &np))) return st;
  if (np % 2) return jade_error(JADE_ERR_CONFIG, "key 'n_pix' = %ld must be even", np);
  sc->geom.n_pix = (int)np;
  sc->geom.n_bins = s->n_bins;
  GETD("size_deg", 0.01, 60.0, &sc->geom.size_deg);
#undef GETD
  const char *var;
  if ((st = jade_config_get_string(cfg, "lognormal_variance", &var))) return st;
  if (!strcmp(var, "theory"))
    sc->variance = JADE_LN_VARIANCE_THEORY;
  else if (!strcmp(var, "empirical"))
    sc->variance = JADE_LN_VARIANCE_EMPIRICAL;
  else
    return jade_error(JADE_ERR_CONFIG, "key 'lognormal_variance' = '%s': expected theory or empirical", var);
  for (int i = 0; i < JADE_N_THETA; i++) {
    if ((st = read_prior(cfg, jade_theta_names[i], &sc->prior[i]))) return st;
    /* draws outside the valid region are redrawn (jade_prior_draw): refuse a prior that
     * puts almost nothing inside it */
    double m = prior_mass(&sc->prior[i], theta_range[i].lo, theta_range[i].hi);
    if (!(m >= 0.01))
      return jade_error(JADE_ERR_CONFIG, "key 'prior_%s': only %.3g of the prior lies in the valid range [%g, %g]",
                        jade_theta_names[i], m, theta_range[i].lo, theta_range[i].hi);
  }
  return JADE_OK;
}

void jade_theta_from_params(const jade_cosmo_params *p, double theta[JADE_N_THETA]) {
  theta[0] = p->Omega_c;
  theta[1] = p->Omega_b;
  theta[2] = p->sigma_8;
  theta[3] = p->h;
  theta[4] = p->n_s;
  theta[5] = p->w_0;
}

jade_cosmo_params jade_params_from_theta(const jade_sim_config *sc, const double theta[JADE_N_THETA]) {
  jade_cosmo_params p = sc->cosmo;
  p.Omega_c = theta[0];
  p.Omega_b = theta[1];
  p.sigma_8 = theta[2];
  p.h = theta[3];
  p.n_s = theta[4];
  p.w_0 = theta[5];
  return p;
}

double jade_theta_omega_m(const double theta[JADE_N_THETA]) { return theta[0] + theta[1]; }
double jade_theta_s8(const double theta[JADE_N_THETA]) {
  return theta[2] * sqrt(jade_theta_omega_m(theta) / 0.3);
}

/* Inverse-CDF sampling of a (truncated) normal: x = mu + sd Phi^-1(Phi(a) + u (Phi(b) - Phi(a))),
 * with the upper tail used when the interval lies far right, for accuracy. */
static double prior_quantile(const jade_prior1d *p, double u) {
  if (p->kind == JADE_PRIOR_UNIFORM) return p->lo + u * (p->hi - p->lo);
  if (p->kind == JADE_PRIOR_NORMAL) return p->mean + p->sd * gsl_cdf_ugaussian_Pinv(u);
  double a = (p->lo - p->mean) / p->sd, b = (p->hi - p->mean) / p->sd;
  double x;
  if (a > 0) { /* work with upper tails Q for accuracy */
    double qa = gsl_cdf_ugaussian_Q(a), qb = gsl_cdf_ugaussian_Q(b);
    x = gsl_cdf_ugaussian_Qinv(qa - u * (qa - qb));
  } else {
    double pa = gsl_cdf_ugaussian_P(a), pb = gsl_cdf_ugaussian_P(b);
    x = gsl_cdf_ugaussian_Pinv(pa + u * (pb - pa));
  }
  if (x < a) x = a;
  if (x > b) x = b;
  return p->mean + p->sd * x;
}

void jade_prior_draw(const jade_sim_config *sc, uint64_t seed, uint64_t index, double theta[JADE_N_THETA]) {
  /* Rejection: attempt k uses uniforms k*6 .. k*6+5 of the stream, so a valid first draw is
   * what it always was. The config check guarantees >= 1% mass per parameter. */
  for (uint64_t k = 0; k < 100000; k++) {
    double u[JADE_N_THETA];
    jade_rng_uniform_fill(seed, JADE_STREAM(JADE_RNG_PRIOR, index), k * JADE_N_THETA, JADE_N_THETA, u);
    for (int i = 0; i < JADE_N_THETA; i++) theta[i] = prior_quantile(&sc->prior[i], u[i]);
    if (!jade_theta_check(theta)) return;
  }
}

double jade_prior_logpdf(const jade_sim_config *sc, const double theta[JADE_N_THETA]) {
  if (jade_theta_check(theta)) return -INFINITY;
  double lp = 0;
  for (int i = 0; i < JADE_N_THETA; i++) {
    const jade_prior1d *p = &sc->prior[i];
    double x = theta[i];
    if (!(x >= p->lo && x <= p->hi)) return -INFINITY;
    if (p->kind == JADE_PRIOR_UNIFORM) {
      lp -= log(p->hi - p->lo);
      continue;
    }
    double z = (x - p->mean) / p->sd;
    lp += -0.5 * z * z - log(p->sd) - 0.5 * log(2 * M_PI);
    if (p->kind == JADE_PRIOR_TRUNCNORMAL) {
      double a = (p->lo - p->mean) / p->sd, b = (p->hi - p->mean) / p->sd;
      double mass = a > 0 ? gsl_cdf_ugaussian_Q(a) - gsl_cdf_ugaussian_Q(b)
                          : gsl_cdf_ugaussian_P(b) - gsl_cdf_ugaussian_P(a);
      lp -= log(mass);
    }
  }
  return lp;
}

/* ---- simulator ------------------------------------------------------------------------ */
#define SIM_N_ELL 64

struct jade_simulator {
  jade_sim_config sc;
  jade_survey *survey;
  jade_lognormal *ln;
  double ell[SIM_N_ELL];
  double *cl; /* SIM_N_ELL x n_pairs */
};

jade_status jade_simulator_create(const jade_sim_config *sc, jade_simulator **out) {
  jade_simulator *s = calloc(1, sizeof *s);
  if (!s) return jade_error(JADE_ERR_NOMEM, "out of memory creating simulator");
  s->sc = *sc;
  jade_status st = jade_survey_create(&sc->survey, &s->survey);
  if (!st) st = jade_lognormal_create(&sc->geom, sc->variance, &s->ln);
  if (!st) {
    s->cl = calloc((size_t)SIM_N_ELL * jade_n_pairs(sc->geom.n_bins), sizeof(double));
    if (!s->cl) st = jade_error(JADE_ERR_NOMEM, "out of memory creating simulator");
  }
  if (st) {
    jade_simulator_free(s);
    return st;
  }
  /* C_ell table: log-spaced from below the fundamental mode 2 pi / L to above the corner of
   * the Fourier grid sqrt(2) pi N / L; the map code interpolates in log-log. */
  double L = sc->geom.size_deg * M_PI / 180.0;
  double ell_lo = 0.5 * 2 * M_PI / L, ell_hi = 1.05 * sqrt(2.0) * M_PI * sc->geom.n_pix / L;
  for (int i = 0; i < SIM_N_ELL; i++)
    s->ell[i] = ell_lo * pow(ell_hi / ell_lo, (double)i / (SIM_N_ELL - 1));
  *out = s;
  return JADE_OK;
}

void jade_simulator_free(jade_simulator *s) {
  if (!s) return;
  jade_survey_free(s->survey);
  jade_lognormal_free(s->ln);
  free(s->cl);
  free(s);
}

void jade_simulator_noise(const jade_simulator *s, double *sigma) {
  double pix = jade_pixel_arcmin(&s->sc.geom);
  for (int i = 0; i < s->sc.geom.n_bins; i++) sigma[i] = jade_survey_pixel_noise(s->survey, i, pix);
}

int jade_simulator_cl_table(const jade_simulator *s, const double **ell, const double **cl) {
  *ell = s->ell;
  *cl = s->cl;
  return SIM_N_ELL;
}

jade_status jade_simulator_run(jade_simulator *s, const double theta[JADE_N_THETA], uint64_t seed,
                               uint64_t index, float *kappa, double *lambda, double *t_cosmo,
                               double *t_maps) {
  for (int i = 0; i < JADE_N_THETA; i++)
    if (!isfinite(theta[i])) return jade_error(JADE_ERR_NUMERIC, "simulation %llu: theta[%s] is not finite",
                                               (unsigned long long)index, jade_theta_names[i]);
  double t0 = jade_time_now();
  jade_cosmo_params p = jade_params_from_theta(&s->sc, theta);
  jade_cosmo *c = NULL;
  jade_status st = jade_cosmo_create(&p, &c);
  double lam[JADE_MAX_BINS];
  if (!st) st = jade_cosmo_limber_cl(c, s->survey, SIM_N_ELL, s->ell, JADE_CL_CONVERGENCE, 1, s->cl);
  /* Top-hat of the pixel's area: radius pixel / sqrt(pi) (Boruah et al. 2021 convention). */
  if (!st) st = jade_cosmo_lognormal_shift(c, s->survey, jade_pixel_arcmin(&s->sc.geom) / sqrt(M_PI), lam);
  jade_cosmo_free(c);
  double t1 = jade_time_now();
  if (!st) st = jade_lognormal_prepare(s->ln, SIM_N_ELL, s->ell, s->cl, lam);
  if (!st) st = jade_lognormal_draw(s->ln, seed, JADE_STREAM(JADE_RNG_FIELD, index), kappa);
  double t2 = jade_time_now();
  if (st) return jade_error_context(st, "simulation %llu (Omega_c=%g sigma_8=%g w_0=%g)",
                                    (unsigned long long)index, theta[0], theta[2], theta[5]);
  if (lambda)
    for (int i = 0; i < s->sc.geom.n_bins; i++) lambda[i] = lam[i];
  if (t_cosmo) *t_cosmo += t1 - t0;
  if (t_maps) *t_maps += t2 - t1;
  return JADE_OK;
}
