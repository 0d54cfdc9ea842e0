/* Mock observations and their FITS files (see include/jade/observation.h). */
#include "jade/observation.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/io.h"

void jade_observation_truth_path(const char *path, char *out, size_t out_len) {
  size_t n = strlen(path);
  if (n > 5 && !strcmp(path + n - 5, ".fits"))
    snprintf(out, out_len, "%.*s_truth.fits", (int)(n - 5), path);
  else
    snprintf(out, out_len, "%s_truth.fits", path);
}

static jade_fits_key keyd(const char *name, double v, const char *comment) {
  jade_fits_key k;
  memset(&k, 0, sizeof k);
  snprintf(k.name, sizeof k.name, "%s", name);
  k.type = JADE_KEY_DOUBLE;
  k.d = v;
  snprintf(k.comment, sizeof k.comment, "%s", comment);
  return k;
}
static jade_fits_key keyl(const char *name, long v, const char *comment) {
  jade_fits_key k = keyd(name, 0, comment);
  k.type = JADE_KEY_LONG;
  k.l = v;
  return k;
}
static jade_fits_key keys(const char *name, const char *v, const char *comment) {
  jade_fits_key k = keyd(name, 0, comment);
  k.type = JADE_KEY_STRING;
  snprintf(k.s, sizeof k.s, "%s", v);
  return k;
}

/* Geometry keys shared by every HDU; returns the count. */
static int geometry_keys(const jade_sim_config *sc, const double *noise, uint64_t seed, jade_fits_key *k) {
  int n = 0, np = sc->geom.n_pix;
  double pix_deg = sc->geom.size_deg / np;
  k[n++] = keyl("NBINS", sc->geom.n_bins, "tomographic bins (cube axis 3)");
  k[n++] = keyl("NPIX", np, "pixels per side");
  k[n++] = keyd("SIZEDEG", sc->geom.size_deg, "[deg] side of the square patch");
  k[n++] = keyd("PIXARCM", pix_deg * 60.0, "[arcmin] pixel side");
  k[n++] = keys("CTYPE1", "RA---CAR", "flat-sky patch, periodic");
  k[n++] = keys("CTYPE2", "DEC--CAR", "");
  k[n++] = keys("CUNIT1", "deg", "");
  k[n++] = keys("CUNIT2", "deg", "");
  k[n++] = keyd("CDELT1", -pix_deg, "[deg] pixel scale");
  k[n++] = keyd("CDELT2", pix_deg, "[deg] pixel scale");
  k[n++] = keyd("CRPIX1", np / 2.0 + 0.5, "reference pixel: patch centre");
  k[n++] = keyd("CRPIX2", np / 2.0 + 0.5, "");
  k[n++] = keyd("CRVAL1", 0.0, "[deg]");
  k[n++] = keyd("CRVAL2", 0.0, "[deg]");
  for (int i = 0; i < sc->geom.n_bins; i++) {
    char name[32];
    snprintf(name, sizeof name, "NOISE%d", i);
    k[n++] = keyd(name, noise[i], "per-pixel noise sigma (each shear comp.)");
  }
  k[n++] = keyl("SEED", (long)seed, "jade random seed");
  return n;
}

jade_status jade_observation_make(const jade_sim_config *sc, uint64_t seed, const char *path) {
  const int nb = sc->geom.n_bins, np = sc->geom.n_pix;
  const size_t npix = (size_t)np * np, len = (size_t)nb * npix;
  jade_simulator *sim = NULL;
  jade_fits_writer *w = NULL;
  float *kappa = malloc(len * sizeof(float)), *g1 = malloc(len * sizeof(float)),
        *g2 = malloc(len * sizeof(float)), *ke = malloc(len * sizeof(float));
  double theta[JADE_N_THETA], lambda[JADE_MAX_BINS], noise[JADE_MAX_BINS];
  jade_status st = (kappa && g1 && g2 && ke) ? JADE_OK : jade_error(JADE_ERR_NOMEM, "out of memory");
  if (!st) st = jade_simulator_create(sc, &sim);
  jade_theta_from_params(&sc->cosmo, theta);
  if (!st) st = jade_simulator_run(sim, theta, seed, 0, kappa, lambda, NULL, NULL);
  if (!st) jade_simulator_noise(sim, noise);
  /* Shear from convergence (Kaiser & Squires 1993), then white shape noise on each
   * component: sigma_i = sigma_e / sqrt(n_i A_pix) (spec/simulator.md). */
  for (int b = 0; b < nb && !st; b++) {
    st = jade_ks_kappa_to_shear(np, kappa + b * npix, g1 + b * npix, g2 + b * npix);
    if (st) break;
    jade_add_noise(g1 + b * npix, npix, noise[b], seed, JADE_STREAM(JADE_RNG_SHAPE, 2 * b), 0);
    jade_add_noise(g2 + b * npix, npix, noise[b], seed, JADE_STREAM(JADE_RNG_SHAPE, 2 * b + 1), 0);
    st = jade_ks_shear_to_kappa(np, g1 + b * npix, g2 + b * npix, ke + b * npix, NULL);
  }
  jade_fits_key k[64];
  int nk = geometry_keys(sc, noise, seed, k);
  long dims[3] = {np, np, nb};
  if (!st) st = jade_fits_writer_open(path, &w);
  if (!st) st = jade_fits_writer_add_image(w, "GAMMA1", 3, dims, g1, k, nk);
  if (!st) st = jade_fits_writer_add_image(w, "GAMMA2", 3, dims, g2, k, nk);
  if (!st) st = jade_fits_writer_add_image(w, "KAPPA", 3, dims, ke, k, nk);
  if (w) {
    if (st)
      jade_fits_writer_abort(w);
    else
      st = jade_fits_writer_close(w);
    w = NULL;
  }
  /* The truth. */
  char tpath[4200];
  jade_observation_truth_path(path, tpath, sizeof tpath);
  static const char *const tkeys[JADE_N_THETA] = {"OMEGA_C", "OMEGA_B", "SIGMA_8", "H", "N_S", "W_0"};
  for (int i = 0; i < JADE_N_THETA; i++) k[nk++] = keyd(tkeys[i], theta[i], jade_theta_names[i]);
  k[nk++] = keyd("OMEGA_M", jade_theta_omega_m(theta), "Omega_c + Omega_b");
  k[nk++] = keyd("S_8", jade_theta_s8(theta), "sigma_8 sqrt(Omega_m/0.3)");
  for (int i = 0; i < nb; i++) {
    char name[32];
    snprintf(name, sizeof name, "LAMBDA%d", i);
    k[nk++] = keyd(name, lambda[i], "log-normal shift of bin");
  }
  if (!st) st = jade_fits_writer_open(tpath, &w);
  if (!st) st = jade_fits_writer_add_image(w, "KAPPA", 3, dims, kappa, k, nk);
  if (w) {
    if (st)
      jade_fits_writer_abort(w);
    else
      st = jade_fits_writer_close(w);
  }
  if (st) remove(path); /* never leave an observation without its truth */
  jade_simulator_free(sim);
  free(kappa);
  free(g1);
  free(g2);
  free(ke);
  return st;
}

jade_status jade_observation_read(const char *path, jade_observation *obs) {
  memset(obs, 0, sizeof *obs);
  jade_status st;
  int use_shear = jade_fits_has_hdu(path, "GAMMA1") && jade_fits_has_hdu(path, "GAMMA2");
  const char *hdu = use_shear ? "GAMMA1" : "KAPPA";
  if (!use_shear && !jade_fits_has_hdu(path, "KAPPA")) {
    /* a missing or unreadable file says why (jade_fits_has_hdu is 0 for both) */
    double naxis0;
    st = jade_fits_read_key_double(path, NULL, "NAXIS", &naxis0);
    if (st) return st;
    return jade_error(JADE_ERR_FORMAT, "%s: no GAMMA1/GAMMA2 or KAPPA image HDU (is it a jade observation?)", path);
  }
  int naxis;
  long dims[3] = {1, 1, 1};
  float *a = NULL, *b = NULL;
  st = jade_fits_read_image(path, hdu, &naxis, dims, &a);
  if (st) return st;
  if (naxis == 2) dims[2] = 1;
  if (dims[0] != dims[1] || dims[0] < 8 || dims[0] % 2 || dims[2] < 1 || dims[2] > JADE_MAX_BINS) {
    free(a);
    return jade_error(JADE_ERR_FORMAT, "%s: HDU %s has shape %ldx%ldx%ld; expected square even maps, <= %d bins",
                      path, hdu, dims[0], dims[1], dims[2], JADE_MAX_BINS);
  }
  obs->n_pix = (int)dims[0];
  obs->n_bins = (int)dims[2];
  st = jade_fits_read_key_double(path, hdu, "SIZEDEG", &obs->size_deg);
  if (!st && !(obs->size_deg > 0 && isfinite(obs->size_deg)))
    st = jade_error(JADE_ERR_FORMAT, "%s: SIZEDEG = %g is not a positive size", path, obs->size_deg);
  for (int i = 0; i < obs->n_bins && !st; i++) {
    char name[32];
    snprintf(name, sizeof name, "NOISE%d", i);
    st = jade_fits_read_key_double(path, hdu, name, &obs->noise[i]);
    if (!st && !(obs->noise[i] > 0 && isfinite(obs->noise[i])))
      st = jade_error(JADE_ERR_FORMAT, "%s: %s = %g is not a positive noise level", path, name, obs->noise[i]);
  }
  const size_t npix = (size_t)obs->n_pix * obs->n_pix;
  if (!st && use_shear) {
    int naxis2;
    long d2[3] = {1, 1, 1};
    st = jade_fits_read_image(path, "GAMMA2", &naxis2, d2, &b);
    if (!st && (d2[0] != dims[0] || d2[1] != dims[1] || (naxis2 == 3 ? d2[2] : 1) != dims[2]))
      st = jade_error(JADE_ERR_FORMAT, "%s: GAMMA1 and GAMMA2 differ in shape", path);
    float *k = st ? NULL : malloc(npix * obs->n_bins * sizeof(float));
    if (!st && !k) st = jade_error(JADE_ERR_NOMEM, "out of memory");
    for (int i = 0; i < obs->n_bins && !st; i++)
      st = jade_ks_shear_to_kappa(obs->n_pix, a + i * npix, b + i * npix, k + i * npix, NULL);
    free(a);
    a = k;
    obs->from_shear = 1;
  }
  free(b);
  if (st) {
    free(a);
    return jade_error_context(st, "reading observation");
  }
  obs->kappa = a;
  return JADE_OK;
}

void jade_observation_free(jade_observation *obs) {
  free(obs->kappa);
  obs->kappa = NULL;
}

jade_status jade_observation_read_truth(const char *truth_path, double theta[JADE_N_THETA], float **kappa,
                                        int *n_bins, int *n_pix) {
  static const char *const tkeys[JADE_N_THETA] = {"OMEGA_C", "OMEGA_B", "SIGMA_8", "H", "N_S", "W_0"};
  for (int i = 0; i < JADE_N_THETA; i++) {
    jade_status st = jade_fits_read_key_double(truth_path, "KAPPA", tkeys[i], &theta[i]);
    if (st) return st;
  }
  if (kappa) {
    int naxis;
    long dims[3] = {1, 1, 1};
    jade_status st = jade_fits_read_image(truth_path, "KAPPA", &naxis, dims, kappa);
    if (st) return st;
    if (n_pix) *n_pix = (int)dims[0];
    if (n_bins) *n_bins = naxis == 3 ? (int)dims[2] : 1;
  }
  return JADE_OK;
}
