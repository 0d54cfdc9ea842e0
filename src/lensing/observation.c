/* Mock observations and their FITS files (see include/jade/observation.h). */
#include "jade/observation.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/io.h"
#include "jade/lensing.h"
#include "jade/mask.h"

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

/* Masked mock (mc != NULL): KAPPA = m (kappa + sigma(x) n(x)) with sigma(x) = noise_i e^lnr(x),
 * the convergence-space noise model of the field-level likelihood and of masked training
 * (jade/condition.h); masked pixels hold 0. */
static jade_status masked_convergence(const jade_sim_config *sc, const jade_mask_config *mc, uint64_t seed, const float *kappa,
                                      const double *noise, float *ke, float *mask, float *sigma) {
  const int nb = sc->geom.n_bins, np = sc->geom.n_pix;
  const size_t npix = (size_t)np * np;
  float *lnr = malloc(npix * sizeof(float));
  if (!lnr) return jade_error(JADE_ERR_NOMEM, "out of memory");
  jade_random_mask_noise(mc, np, seed, JADE_STREAM(JADE_RNG_MASK, 0), 0, mask, lnr);
  jade_mask_noise_bins(nb, npix, noise, lnr, mask, sigma);
  free(lnr);
  for (int b = 0; b < nb; b++) {
    float *k = ke + b * npix;
    memset(k, 0, npix * sizeof(float));
    jade_add_noise(k, npix, 1.0, seed, JADE_STREAM(JADE_RNG_SHAPE, 2 * b), 0); /* unit normals */
    for (size_t p = 0; p < npix; p++) {
      const size_t q = b * npix + p;
      k[p] = mask[q] > 0.5f ? kappa[q] + sigma[q] * k[p] : 0.0f;
    }
  }
  return JADE_OK;
}

static jade_status write_truth(const jade_sim_config *sc, const char *path, jade_fits_key *k, int nk, const double *theta,
                               const double *lambda, const float *kappa) {
  static const char *const tkeys[JADE_N_THETA] = {"OMEGA_C", "OMEGA_B", "SIGMA_8", "H", "N_S", "W_0"};
  const int nb = sc->geom.n_bins;
  long dims[3] = {sc->geom.n_pix, sc->geom.n_pix, nb};
  char tpath[4200];
  jade_observation_truth_path(path, tpath, sizeof tpath);
  for (int i = 0; i < JADE_N_THETA; i++) k[nk++] = keyd(tkeys[i], theta[i], jade_theta_names[i]);
  k[nk++] = keyd("OMEGA_M", jade_theta_omega_m(theta), "Omega_c + Omega_b");
  k[nk++] = keyd("S_8", jade_theta_s8(theta), "sigma_8 sqrt(Omega_m/0.3)");
  for (int i = 0; i < nb; i++) {
    char name[32];
    snprintf(name, sizeof name, "LAMBDA%d", i);
    k[nk++] = keyd(name, lambda[i], "log-normal shift of bin");
  }
  jade_fits_writer *w = NULL;
  jade_status st = jade_fits_writer_open(tpath, &w);
  if (!st) st = jade_fits_writer_add_image(w, "KAPPA", 3, dims, kappa, k, nk);
  if (!w) return st;
  if (st) {
    jade_fits_writer_abort(w);
    return st;
  }
  return jade_fits_writer_close(w);
}

jade_status jade_observation_make(const jade_sim_config *sc, uint64_t seed, const char *path) {
  return jade_observation_make_masked(sc, seed, NULL, path);
}

jade_status jade_observation_make_masked(const jade_sim_config *sc, uint64_t seed, const jade_mask_config *mc,
                                         const char *path) {
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
  for (int b = 0; b < nb && !st && !mc; b++) {
    st = jade_ks_kappa_to_shear(np, kappa + b * npix, g1 + b * npix, g2 + b * npix);
    if (st) break;
    jade_add_noise(g1 + b * npix, npix, noise[b], seed, JADE_STREAM(JADE_RNG_SHAPE, 2 * b), 0);
    jade_add_noise(g2 + b * npix, npix, noise[b], seed, JADE_STREAM(JADE_RNG_SHAPE, 2 * b + 1), 0);
    st = jade_ks_shear_to_kappa(np, g1 + b * npix, g2 + b * npix, ke + b * npix, NULL);
  }
  if (!st && mc) st = masked_convergence(sc, mc, seed, kappa, noise, ke, g1, g2); /* g1: mask, g2: noise map */
  jade_fits_key k[64];
  int nk = geometry_keys(sc, noise, seed, k);
  long dims[3] = {np, np, nb};
  if (!st) st = jade_fits_writer_open(path, &w);
  if (!st && !mc) st = jade_fits_writer_add_image(w, "GAMMA1", 3, dims, g1, k, nk);
  if (!st && !mc) st = jade_fits_writer_add_image(w, "GAMMA2", 3, dims, g2, k, nk);
  if (!st) st = jade_fits_writer_add_image(w, "KAPPA", 3, dims, ke, k, nk);
  if (!st && mc) st = jade_fits_writer_add_image(w, "MASK", 3, dims, g1, k, nk);
  if (!st && mc) st = jade_fits_writer_add_image(w, "NOISEMAP", 3, dims, g2, k, nk);
  if (w) {
    if (st)
      jade_fits_writer_abort(w);
    else
      st = jade_fits_writer_close(w);
    w = NULL;
  }
  if (!st) st = write_truth(sc, path, k, nk, theta, lambda, kappa);
  if (st) remove(path); /* never leave an observation without its truth */
  jade_simulator_free(sim);
  free(kappa);
  free(g1);
  free(g2);
  free(ke);
  return st;
}

/* An optional numeric key: *out = def when absent. */
static jade_status opt_key(const char *path, const char *hdu, const char *key, double def, double *out) {
  *out = def;
  if (!jade_fits_has_key(path, hdu, key)) return JADE_OK;
  jade_status st = jade_fits_read_key_double(path, hdu, key, out);
  if (!st && !isfinite(*out)) st = jade_error(JADE_ERR_FORMAT, "%s: %s = %g is not finite", path, key, *out);
  return st;
}

/* Degrees per unit of CUNITi ("" = deg, the celestial default of the WCS standard). */
static jade_status unit_deg(const char *path, const char *key, const char *cunit, double *deg) {
  if (!cunit[0] || !strcmp(cunit, "deg")) *deg = 1.0;
  else if (!strcmp(cunit, "arcmin")) *deg = 1.0 / 60.0;
  else if (!strcmp(cunit, "arcsec")) *deg = 1.0 / 3600.0;
  else if (!strcmp(cunit, "rad")) *deg = 180.0 / M_PI;
  else return jade_error(JADE_ERR_FORMAT, "%s: %s = '%s': expected deg, arcmin, arcsec or rad", path, key, cunit);
  return JADE_OK;
}

/* CTYPE1/2, when present, must name sky axes: a celestial type (RA/DEC, GLON/GLAT, ELON/ELAT,
 * SLON/SLAT, HPLN/HPLT, followed by '-' padding and a projection code, Calabretta & Greisen
 * 2002, A&A 395, 1077, sec. 2) or a plain linear offset ('LINEAR', 'OFFSET', '') whose CUNIT
 * gives angles. BUNIT, when present, must be dimensionless: convergence and shear have no
 * unit. */
static jade_status check_axes_and_unit(const char *path, const char *hdu) {
  static const char *const sky[] = {"RA", "DEC", "GLON", "GLAT", "ELON", "ELAT", "SLON", "SLAT", "HPLN", "HPLT"};
  const char *h = hdu ? hdu : "PRIMARY";
  char v[72];
  for (int i = 1; i <= 2; i++) {
    char key[16];
    snprintf(key, sizeof key, "CTYPE%d", i);
    if (!jade_fits_has_key(path, hdu, key)) continue;
    jade_status st = jade_fits_read_key_string(path, hdu, key, v, sizeof v);
    if (st) return st;
    size_t n = strcspn(v, "-");
    int ok = !v[0] || !strcmp(v, "LINEAR") || !strcmp(v, "OFFSET");
    for (size_t k = 0; k < sizeof sky / sizeof *sky && !ok; k++) ok = n == strlen(sky[k]) && !strncmp(v, sky[k], n);
    if (!ok)
      return jade_error(JADE_ERR_FORMAT,
                        "%s: HDU %s: %s = '%s' is not a sky axis: jade reads maps whose axes 1 and 2 are angles on the "
                        "sky (CTYPE1/2 'RA---TAN'/'DEC--TAN', 'GLON-CAR'/'GLAT-CAR', ... or 'LINEAR' with CUNIT deg)",
                        path, h, key, v);
  }
  if (jade_fits_has_key(path, hdu, "BUNIT")) {
    jade_status st = jade_fits_read_key_string(path, hdu, "BUNIT", v, sizeof v);
    if (st) return st;
    char lc[72];
    size_t i = 0;
    for (; v[i] && i + 1 < sizeof lc; i++) lc[i] = (char)tolower((unsigned char)v[i]);
    lc[i] = 0;
    if (lc[0] && strcmp(lc, "1") && strcmp(lc, "none") && strcmp(lc, "dimensionless"))
      return jade_error(JADE_ERR_FORMAT,
                        "%s: HDU %s: BUNIT = '%s': jade reads convergence or shear maps, which are dimensionless "
                        "(BUNIT absent, '', '1' or 'dimensionless')", path, h, v);
  }
  return JADE_OK;
}

/* The patch side in degrees: SIZEDEG (jade's own files), else from the WCS pixel-to-world
 * matrix (Greisen & Calabretta 2002, A&A 395, 1061, eq. 1-3): CDi_j when any is present,
 * else CDELTi x PCi_j (PC defaults to the identity), each row i in the unit CUNITi (deg by
 * default; an absent CUNIT2 takes CUNIT1's). Column j is the world step of one pixel along
 * pixel axis j: both must have the same length (square pixels) and be orthogonal (a rotated
 * grid is fine, a skewed one is not). */
static jade_status read_patch_size(const char *path, const char *hdu, int n_pix, double *size_deg) {
  const char *h = hdu ? hdu : "PRIMARY";
  jade_status st = check_axes_and_unit(path, hdu);
  if (st) return st;
  if (jade_fits_has_key(path, hdu, "SIZEDEG")) {
    st = jade_fits_read_key_double(path, hdu, "SIZEDEG", size_deg);
    if (st) return st;
    if (!(*size_deg > 0 && isfinite(*size_deg)))
      return jade_error(JADE_ERR_FORMAT, "%s: SIZEDEG = %g is not a positive size", path, *size_deg);
    return JADE_OK;
  }
  static const char *const cd[4] = {"CD1_1", "CD1_2", "CD2_1", "CD2_2"};
  static const char *const pc[4] = {"PC1_1", "PC1_2", "PC2_1", "PC2_2"};
  int have_cd = 0;
  for (int k = 0; k < 4; k++) have_cd |= jade_fits_has_key(path, hdu, cd[k]);
  double m[4];
  if (have_cd) {
    for (int k = 0; k < 4 && !st; k++) st = opt_key(path, hdu, cd[k], 0.0, &m[k]);
  } else {
    if (!jade_fits_has_key(path, hdu, "CDELT1") || !jade_fits_has_key(path, hdu, "CDELT2"))
      return jade_error(JADE_ERR_FORMAT,
                        "%s: HDU %s gives no pixel scale: add the WCS keys CDELT1 and CDELT2 (deg per pixel; or "
                        "CD1_1 .. CD2_2) or SIZEDEG (patch side in deg)", path, h);
    double c[2];
    st = opt_key(path, hdu, "CDELT1", 0.0, &c[0]);
    if (!st) st = opt_key(path, hdu, "CDELT2", 0.0, &c[1]);
    for (int k = 0; k < 4 && !st; k++) {
      st = opt_key(path, hdu, pc[k], k == 0 || k == 3 ? 1.0 : 0.0, &m[k]);
      m[k] *= c[k / 2];
    }
  }
  if (st) return st;
  char cu[2][72] = {"", ""};
  for (int i = 0; i < 2 && !st; i++) {
    char key[16];
    snprintf(key, sizeof key, "CUNIT%d", i + 1);
    if (jade_fits_has_key(path, hdu, key)) st = jade_fits_read_key_string(path, hdu, key, cu[i], sizeof cu[i]);
    else if (i == 1) memcpy(cu[1], cu[0], sizeof cu[1]);
  }
  double u[2];
  if (!st) st = unit_deg(path, "CUNIT1", cu[0], &u[0]);
  if (!st) st = unit_deg(path, "CUNIT2", cu[1], &u[1]);
  if (st) return st;
  for (int k = 0; k < 4; k++) m[k] *= u[k / 2];
  double s1 = hypot(m[0], m[2]), s2 = hypot(m[1], m[3]), dot = m[0] * m[1] + m[2] * m[3];
  if (!(s1 > 0 && s2 > 0 && isfinite(s1) && isfinite(s2)))
    return jade_error(JADE_ERR_FORMAT, "%s: HDU %s: the %s keys give a zero pixel scale", path, h, have_cd ? "CD" : "CDELT/PC");
  if (fabs(s1 - s2) > 1e-6 * s1)
    return jade_error(JADE_ERR_FORMAT,
                      "%s: HDU %s: pixels are %g x %g deg (%s): jade needs square pixels; resample the map", path, h, s1,
                      s2, have_cd ? "CD1_1 .. CD2_2" : "CDELT1/2, PC, CUNIT1/2");
  if (fabs(dot) > 1e-6 * s1 * s2)
    return jade_error(JADE_ERR_FORMAT, "%s: HDU %s: the pixel axes are not perpendicular (%s): jade needs a square grid",
                      path, h, have_cd ? "CD1_1 .. CD2_2" : "PC1_1 .. PC2_2");
  *size_deg = s1 * n_pix;
  return JADE_OK;
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* An optional cube (MASK, NOISEMAP) of the same shape as the maps, or NULL if absent. */
static jade_status read_optional_cube(const char *path, const char *hdu, const jade_observation *obs, float **out) {
  *out = NULL;
  if (!jade_fits_has_hdu(path, hdu)) return JADE_OK;
  int naxis;
  long d[3] = {1, 1, 1};
  jade_status st = jade_fits_read_image(path, hdu, &naxis, d, out);
  if (!st && (d[0] != obs->n_pix || d[1] != obs->n_pix || (naxis == 3 ? d[2] : 1) != obs->n_bins))
    st = jade_error(JADE_ERR_FORMAT, "%s: HDU %s has shape %ldx%ldx%ld, the maps %dx%dx%d", path, hdu, d[0], d[1],
                    naxis == 3 ? d[2] : 1, obs->n_pix, obs->n_pix, obs->n_bins);
  if (st) {
    free(*out);
    *out = NULL;
  }
  return st;
}

/* MASK (values 0/1) and NOISEMAP (> 0 on observed pixels); per-bin noise from the noise map's
 * median over observed pixels when the NOISE<i> keys are absent (noise[i] = 0 on entry). */
static jade_status read_mask_and_noise(const char *path, jade_observation *obs) {
  jade_status st = read_optional_cube(path, "MASK", obs, &obs->mask);
  if (!st) st = read_optional_cube(path, "NOISEMAP", obs, &obs->noise_map);
  if (st) return st;
  const size_t np = (size_t)obs->n_pix * obs->n_pix;
  size_t masked = 0;
  float *tmp = obs->noise_map ? malloc(sizeof(float) * np) : NULL;
  if (obs->noise_map && !tmp) return jade_error(JADE_ERR_NOMEM, "out of memory");
  for (int b = 0; b < obs->n_bins && !st; b++) {
    size_t n_obs = 0;
    for (size_t q = 0; q < np && !st; q++) {
      size_t p = (size_t)b * np + q;
      float m = obs->mask ? obs->mask[p] : 1.0f;
      if (m != 0.0f && m != 1.0f)
        st = jade_error(JADE_ERR_FORMAT, "%s: MASK bin %d pixel %zu is %g; expected 0 (masked) or 1", path, b, q, m);
      else if (m == 0.0f)
        masked++;
      else if (obs->noise_map && !(obs->noise_map[p] > 0.0f))
        st = jade_error(JADE_ERR_FORMAT, "%s: NOISEMAP bin %d pixel %zu is %g on an observed pixel", path, b, q,
                        obs->noise_map[p]);
      else if (obs->noise_map)
        tmp[n_obs++] = obs->noise_map[p];
    }
    if (!st && obs->noise_map && obs->noise[b] == 0.0) {
      if (!n_obs) {
        st = jade_error(JADE_ERR_FORMAT, "%s: bin %d is masked everywhere", path, b);
        break;
      }
      qsort(tmp, n_obs, sizeof(float), cmp_float);
      obs->noise[b] = n_obs % 2 ? tmp[n_obs / 2] : 0.5 * ((double)tmp[n_obs / 2 - 1] + tmp[n_obs / 2]);
    }
  }
  free(tmp);
  obs->masked_fraction = (double)masked / ((double)np * obs->n_bins);
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
    hdu = NULL; /* a convergence cube in the primary HDU */
    if (naxis0 == 0) {
      char have[512];
      if (jade_fits_list_images(path, have, sizeof have)) snprintf(have, sizeof have, "?");
      return jade_error(JADE_ERR_FORMAT,
                        "%s: no GAMMA1+GAMMA2 or KAPPA extension and no image in the primary HDU (image HDUs: %s): "
                        "jade reads convergence or shear cubes [bin][y][x]; name the extension KAPPA (or GAMMA1 and "
                        "GAMMA2) or put the cube in the primary HDU (docs/input_formats.md)", path, have);
    }
  }
  int naxis;
  long dims[3] = {1, 1, 1};
  float *a = NULL, *b = NULL;
  st = jade_fits_read_image(path, hdu, &naxis, dims, &a);
  if (st) return st;
  if (naxis == 2) dims[2] = 1;
  if (naxis < 2 || dims[0] != dims[1] || dims[0] < 8 || dims[0] % 2 || dims[2] < 1 || dims[2] > JADE_MAX_BINS) {
    free(a);
    return jade_error(JADE_ERR_FORMAT, "%s: HDU %s has shape %ldx%ldx%ld; expected square even maps, <= %d bins",
                      path, hdu ? hdu : "PRIMARY", dims[0], dims[1], dims[2], JADE_MAX_BINS);
  }
  obs->n_pix = (int)dims[0];
  obs->n_bins = (int)dims[2];
  st = read_patch_size(path, hdu, obs->n_pix, &obs->size_deg);
  int have_noise_map = jade_fits_has_hdu(path, "NOISEMAP");
  for (int i = 0; i < obs->n_bins && !st; i++) {
    char name[32];
    snprintf(name, sizeof name, "NOISE%d", i);
    if (jade_fits_has_key(path, hdu, name)) {
      st = jade_fits_read_key_double(path, hdu, name, &obs->noise[i]);
      if (!st && !(obs->noise[i] > 0 && isfinite(obs->noise[i])))
        st = jade_error(JADE_ERR_FORMAT, "%s: %s = %g is not a positive noise level", path, name, obs->noise[i]);
    } else {
      obs->noise[i] = 0.0;
      if (!have_noise_map)
        st = jade_error(JADE_ERR_FORMAT,
                        "%s: no noise level for bin %d: add the key %s (per-pixel noise sigma) or a NOISEMAP "
                        "extension", path, i, name);
    }
  }
  if (!st) st = read_mask_and_noise(path, obs);
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
    jade_observation_free(obs);
    return jade_error_context(st, "reading observation");
  }
  obs->kappa = a;
  return JADE_OK;
}

void jade_observation_free(jade_observation *obs) {
  free(obs->kappa);
  free(obs->mask);
  free(obs->noise_map);
  obs->kappa = obs->mask = obs->noise_map = NULL;
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
    /* callers use n_bins x n_pix x n_pix pixels: a non-square or oversized map is refused */
    if (naxis < 2 || dims[0] != dims[1] || dims[0] > 65536 || dims[2] > JADE_MAX_BINS) {
      free(*kappa);
      *kappa = NULL;
      return jade_error(JADE_ERR_FORMAT, "%s: HDU KAPPA has shape %ldx%ldx%ld; expected square maps, <= %d bins",
                        truth_path, dims[0], dims[1], dims[2], JADE_MAX_BINS);
    }
    if (n_pix) *n_pix = (int)dims[0];
    if (n_bins) *n_bins = naxis == 3 ? (int)dims[2] : 1;
  }
  return JADE_OK;
}
