/* pop-cosmos forward model pieces: the 16 parameters, the per-band photometry emulators
 * (Photulator, Alsing et al. 2020 ApJS 249:5; layout in models/popcosmos/photulator_cosmos26.json),
 * the stellar-mass emulator and the distance modulus. */
#include <math.h>
#include <gsl/gsl_errno.h>
#include <omp.h>
#include <gsl/gsl_integration.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/safetensors.h"
#include "sed_internal.h"

static const char *const param_names[JADE_SED_NPAR] = {
    "N", "log10Z", "logsfr_ratio1", "logsfr_ratio2", "logsfr_ratio3", "logsfr_ratio4",
    "logsfr_ratio5", "logsfr_ratio6", "dust2", "dust_index", "dust1_fraction", "lnfagn",
    "lnagntau", "gaslog10Z", "gaslog10U", "z"};
/* pop_cosmos CatalogueGenerator bounds (photulator_cosmos26.json, prior_box_theta16) */
static const double param_lo[JADE_SED_NPAR] = {7.0, -1.98, -5, -5, -5, -5, -5, -5, 0.0, -1.0, 0.0,
                                                -11.512925464970229, 1.6094379124341003, -2.0, -4.0, 0.0};
static const double param_hi[JADE_SED_NPAR] = {13.0, 0.19, 5, 5, 5, 5, 5, 5, 4.0, 0.4, 2.0,
                                                1.0986122886681098, 5.0106352940962555, 0.5, -1.0, 6.0};

const char *jade_sed_param_name(int i) { return i >= 0 && i < JADE_SED_NPAR ? param_names[i] : NULL; }
void jade_sed_param_bounds(double lower[JADE_SED_NPAR], double upper[JADE_SED_NPAR]) {
  memcpy(lower, param_lo, sizeof param_lo);
  memcpy(upper, param_hi, sizeof param_hi);
}

/* pop_cosmos.constants.COSMOS_FILTERS: the band order of the emulators and noise model. */
static const char *const cosmos26[26] = {
    "u_megaprime_sagem", "hsc_g", "hsc_r", "hsc_i", "hsc_z", "hsc_y", "uvista_y_cosmos",
    "uvista_j_cosmos", "uvista_h_cosmos", "uvista_ks_cosmos", "ia427_cosmos", "ia464_cosmos",
    "ia484_cosmos", "ia505_cosmos", "ia527_cosmos", "ia574_cosmos", "ia624_cosmos", "ia679_cosmos",
    "ia709_cosmos", "ia738_cosmos", "ia767_cosmos", "ia827_cosmos", "NB711.SuprimeCam",
    "NB816.SuprimeCam", "irac1_cosmos", "irac2_cosmos"};

struct jade_sed_photulator {
  int nb;
  char name[JADE_SED_MAX_BANDS][64];
  double pshift[15], pscale[15];
  double mshift[JADE_SED_MAX_BANDS], mscale[JADE_SED_MAX_BANDS], f_b[JADE_SED_MAX_BANDS];
  sed_mlp net[JADE_SED_MAX_BANDS];
  sed_mlp_f32 net32[JADE_SED_MAX_BANDS]; /* float32 copies (JADE_SED_EMU_F32) */
};

void jade_sed_photulator_free(jade_sed_photulator *p) {
  if (!p) return;
  for (int b = 0; b < JADE_SED_MAX_BANDS; b++) {
    sed_mlp_free(&p->net[b]);
    sed_mlp_f32_free(&p->net32[b]);
  }
  free(p);
}

jade_status jade_sed_photulator_load(const char *path, const char *const *bands, int n_bands,
                                     jade_sed_photulator **out) {
  *out = NULL;
  if (!bands) {
    bands = cosmos26;
    n_bands = 26;
  }
  if (n_bands < 1 || n_bands > JADE_SED_MAX_BANDS)
    return jade_error(JADE_ERR_INVALID, "photulator: %d bands (1..%d)", n_bands, JADE_SED_MAX_BANDS);
  jade_safetensors *st;
  jade_status s = jade_safetensors_read(path, &st);
  if (s) return s;
  jade_sed_photulator *p = jade_calloc(1, sizeof *p);
  if (!p) {
    jade_safetensors_free(st);
    return JADE_ERR_NOMEM;
  }
  p->nb = n_bands;
  if ((s = sed_st_copy(st, "parameters_shift", 1, 15, 0, p->pshift)) ||
      (s = sed_st_copy(st, "parameters_scale", 1, 15, 0, p->pscale)))
    goto fail;
  for (int b = 0; b < n_bands; b++) {
    snprintf(p->name[b], sizeof p->name[b], "%s", bands[b]);
    const int dims[6] = {15, 128, 128, 128, 128, 1};
    const sed_act act[5] = {SED_ACT_ALSING, SED_ACT_ALSING, SED_ACT_ALSING, SED_ACT_ALSING, SED_ACT_ALSING};
    sed_mlp *m = &p->net[b];
    if (!sed_mlp_alloc(m, 5, dims, act)) {
      s = JADE_ERR_NOMEM;
      goto fail;
    }
    char key[128];
    for (int k = 0; k < 5; k++) {
      int in = dims[k], o = dims[k + 1];
      /* stored (in, out) for h = x @ W: transpose to (out, in) */
      snprintf(key, sizeof key, "%s.W.%d", bands[b], k);
      double *w = sed_st_get(st, key, 2, (size_t)in, (size_t)o);
      if (!w) {
        s = JADE_ERR_FORMAT;
        goto fail;
      }
      for (int i = 0; i < in; i++)
        for (int j = 0; j < o; j++) m->W[k][(size_t)j * in + i] = w[(size_t)i * o + j];
      free(w);
      snprintf(key, sizeof key, "%s.b.%d", bands[b], k);
      if ((s = sed_st_copy(st, key, 1, (size_t)o, 0, m->b[k]))) goto fail;
      snprintf(key, sizeof key, "%s.alpha.%d", bands[b], k);
      if ((s = sed_st_copy(st, key, 1, (size_t)o, 0, m->alpha[k]))) goto fail;
      snprintf(key, sizeof key, "%s.beta.%d", bands[b], k);
      if ((s = sed_st_copy(st, key, 1, (size_t)o, 0, m->beta[k]))) goto fail;
    }
    if (!sed_mlp_f32_from(&p->net32[b], m)) {
      s = JADE_ERR_NOMEM;
      goto fail;
    }
    snprintf(key, sizeof key, "%s.magnitudes_shift", bands[b]);
    if ((s = sed_st_copy(st, key, 1, 1, 0, &p->mshift[b]))) goto fail;
    snprintf(key, sizeof key, "%s.magnitudes_scale", bands[b]);
    if ((s = sed_st_copy(st, key, 1, 1, 0, &p->mscale[b]))) goto fail;
    snprintf(key, sizeof key, "%s.f_b", bands[b]);
    if ((s = sed_st_copy(st, key, 1, 1, 0, &p->f_b[b]))) goto fail;
  }
  for (int j = 0; j < 15; j++)
    if (!(p->pscale[j] != 0)) {
      s = jade_error(JADE_ERR_FORMAT, "%s: parameters_scale[%d] is zero", path, j);
      goto fail;
    }
  jade_safetensors_free(st);
  *out = p;
  return JADE_OK;
fail:
  jade_error_context(s, "photulator %s", path);
  jade_safetensors_free(st);
  jade_sed_photulator_free(p);
  return s;
}

int jade_sed_photulator_n_bands(const jade_sed_photulator *p) { return p->nb; }
const char *jade_sed_photulator_band(const jade_sed_photulator *p, int b) {
  return b >= 0 && b < p->nb ? p->name[b] : NULL;
}
double jade_sed_photulator_f_b(const jade_sed_photulator *p, int b) { return p->f_b[b]; }

/* pop_cosmos CatalogueGenerator.emulator_parameter_transform: drop N, sqrt(dust2). */
static void theta15(const double *t16, double *t15) {
  for (int j = 1; j < 16; j++) t15[j - 1] = t16[j];
  t15[7] = sqrt(t16[8] > 0 ? t16[8] : 0.0);
}

const char *jade_sed_emu_precision_name(jade_sed_emu_precision p) {
  switch (p) {
    case JADE_SED_EMU_F64: return "f64";
    case JADE_SED_EMU_F32: return "f32";
    case JADE_SED_EMU_F32_PORTABLE: return "f32-portable";
    case JADE_SED_EMU_F32_AVX2: return "f32-avx2";
  }
  return "?";
}

/* the float32 kernel a precision asks for (lowered to what the CPU has by src/sed/mlp_f32.c) */
static int f32_kernel(jade_sed_emu_precision prec) {
  return prec == JADE_SED_EMU_F32 ? SED_F32_AVX512 : prec == JADE_SED_EMU_F32_AVX2 ? SED_F32_AVX2 : SED_F32_PORTABLE;
}

/* Chunks of points in parallel (OpenMP; 64 points in float64, 128 in float32); each point's
 * result does not depend on the thread count (fixed chunks), and in the float32 SIMD kernels
 * not on the chunking either (src/sed/mlp_f32.c). */
#define PHOT_CHUNK 64
#define PHOT32_CHUNK 128
jade_status jade_sed_photulator_mags_prec(const jade_sed_photulator *p, jade_sed_emu_precision prec,
                                          const double *theta16, size_t n, double *mag, double *absmag) {
  if (prec != JADE_SED_EMU_F64 && prec != JADE_SED_EMU_F32 && prec != JADE_SED_EMU_F32_PORTABLE &&
      prec != JADE_SED_EMU_F32_AVX2)
    return jade_error(JADE_ERR_INVALID, "photulator: unknown precision %d", (int)prec);
  if (n == 0) return JADE_OK;
  int f32 = prec != JADE_SED_EMU_F64, kernel = f32_kernel(prec);
  size_t C = f32 ? PHOT32_CHUNK : PHOT_CHUNK, nch = (n + C - 1) / C;
  int fail = 0;
#pragma omp parallel if (nch > 1)
  {
    double *x = jade_alloc(C * 15 * sizeof(double)), *y = jade_alloc(C * sizeof(double));
    double *work = f32 ? NULL : jade_alloc(2 * C * 128 * sizeof(double));
    float *xf = f32 ? jade_calloc(C * 15, sizeof(float)) : NULL, *yf = f32 ? jade_alloc(C * sizeof(float)) : NULL;
    float *wf = f32 ? jade_alloc(2 * C * 128 * sizeof(float) + 64) : NULL;
    int ok = x && y && (f32 ? xf && yf && wf : work != NULL);
    if (!ok) {
#pragma omp atomic write
      fail = 1;
    }
#pragma omp for schedule(dynamic, 1)
    for (size_t ci = 0; ci < nch; ci++) {
      if (!ok) continue;
      size_t i0 = ci * C, m = n - i0 < C ? n - i0 : C;
      for (size_t i = 0; i < m; i++) {
        theta15(theta16 + (i0 + i) * 16, x + i * 15);
        for (int j = 0; j < 15; j++) x[i * 15 + j] = (x[i * 15 + j] - p->pshift[j]) / p->pscale[j];
      }
      if (f32) {
        size_t m_pad = (m + 3) & ~(size_t)3;
        for (size_t i = 0; i < m * 15; i++) xf[i] = (float)x[i];
        for (size_t i = m * 15; i < m_pad * 15; i++) xf[i] = 0.0f; /* pad rows of the 4-row tiles */
      }
      for (int b = 0; b < p->nb; b++) {
        if (f32) {
          sed_mlp_f32_forward(&p->net32[b], m, xf, yf, wf, kernel);
          for (size_t i = 0; i < m; i++) y[i] = yf[i];
        } else {
          sed_mlp_forward(&p->net[b], m, x, y, work);
        }
        for (size_t i = 0; i < m; i++) {
          double am = y[i] * p->mscale[b] + p->mshift[b];
          if (absmag) absmag[(i0 + i) * p->nb + b] = am;
          if (mag) mag[(i0 + i) * p->nb + b] = am + theta16[(i0 + i) * 16];
        }
      }
    }
    free(x);
    free(y);
    free(work);
    free(xf);
    free(yf);
    free(wf);
  }
  return fail ? jade_error(JADE_ERR_NOMEM, "photulator: out of memory") : JADE_OK;
}

jade_status jade_sed_photulator_mags(const jade_sed_photulator *p, const double *theta16, size_t n, double *mag,
                                     double *absmag) {
  return jade_sed_photulator_mags_prec(p, JADE_SED_EMU_F64, theta16, n, mag, absmag);
}

jade_status jade_sed_photulator_vjp(const jade_sed_photulator *p, const double *theta16, size_t n,
                                   jade_sed_mag_seed_fn seed, void *ctx, double *mag, double *gtheta) {
  return jade_sed_photulator_vjp_prec(p, JADE_SED_EMU_F32, theta16, n, seed, ctx, mag, gtheta);
}

jade_status jade_sed_photulator_vjp_prec(const jade_sed_photulator *p, jade_sed_emu_precision prec,
                                        const double *theta16, size_t n, jade_sed_mag_seed_fn seed, void *ctx,
                                        double *mag, double *gtheta) {
  if (prec != JADE_SED_EMU_F32 && prec != JADE_SED_EMU_F32_PORTABLE && prec != JADE_SED_EMU_F32_AVX2)
    return jade_error(JADE_ERR_INVALID, "photulator vjp: precision %s is not a float32 one",
                      jade_sed_emu_precision_name(prec));
  if (n == 0) return JADE_OK;
  const size_t C = PHOT32_CHUNK;
  size_t nch = (n + C - 1) / C;
  int kernel = f32_kernel(prec), fail = 0;
  size_t ns = 0;
  for (int b = 0; b < p->nb; b++) ns = ns > sed_mlp_f32_save_size(&p->net32[b], C) ? ns : sed_mlp_f32_save_size(&p->net32[b], C);
#pragma omp parallel if (nch > 1)
  {
    double *x = jade_alloc(C * 15 * sizeof(double)), *mb = jade_alloc(C * sizeof(double));
    double *dm = jade_alloc(C * sizeof(double)), *gx = jade_alloc(C * 15 * sizeof(double));
    float *xf = jade_calloc(C * 15, sizeof(float)), *yf = jade_alloc(C * sizeof(float)), *dy = jade_alloc(C * sizeof(float));
    float *save = jade_alloc(ns * sizeof(float) + 64), *wf = jade_alloc(2 * C * 128 * sizeof(float) + 64);
    float *gxf = jade_alloc(C * 15 * sizeof(float) + 64);
    int ok = x && mb && dm && gx && xf && yf && dy && save && wf && gxf;
    if (!ok) {
#pragma omp atomic write
      fail = 1;
    }
#pragma omp for schedule(dynamic, 1)
    for (size_t ci = 0; ci < nch; ci++) {
      if (!ok) continue;
      size_t i0 = ci * C, m = n - i0 < C ? n - i0 : C, m_pad = (m + 3) & ~(size_t)3;
      for (size_t i = 0; i < m; i++) {
        theta15(theta16 + (i0 + i) * 16, x + i * 15);
        for (int j = 0; j < 15; j++) xf[i * 15 + j] = (float)((x[i * 15 + j] - p->pshift[j]) / p->pscale[j]);
      }
      for (size_t i = m * 15; i < m_pad * 15; i++) xf[i] = 0.0f;
      memset(gx, 0, m * 15 * sizeof(double));
      for (size_t i = 0; i < m; i++) gtheta[(i0 + i) * 16] = 0;
      for (int b = 0; b < p->nb; b++) {
        sed_mlp_f32_forward_save(&p->net32[b], m, xf, yf, save, kernel);
        for (size_t i = 0; i < m; i++) {
          mb[i] = (double)yf[i] * p->mscale[b] + p->mshift[b] + theta16[(i0 + i) * 16];
          if (mag) mag[(i0 + i) * p->nb + b] = mb[i];
        }
        seed(ctx, b, i0, m, mb, dm);
        for (size_t i = 0; i < m; i++) {
          gtheta[(i0 + i) * 16] += dm[i]; /* m = NN + N */
          dy[i] = (float)(dm[i] * p->mscale[b]);
        }
        sed_mlp_f32_backward(&p->net32[b], m, save, dy, gxf, wf, kernel);
        for (size_t i = 0; i < m * 15; i++) gx[i] += gxf[i];
      }
      for (size_t i = 0; i < m; i++) {
        const double *t = theta16 + (i0 + i) * 16;
        double *g = gtheta + (i0 + i) * 16;
        for (int j = 1; j < 16; j++) g[j] = gx[i * 15 + j - 1] / p->pscale[j - 1];
        g[8] *= t[8] > 0 ? 0.5 / sqrt(t[8]) : 0.0; /* t15[7] = sqrt(dust2) */
      }
    }
    free(x);
    free(mb);
    free(dm);
    free(gx);
    free(xf);
    free(yf);
    free(dy);
    free(save);
    free(wf);
    free(gxf);
  }
  return fail ? jade_error(JADE_ERR_NOMEM, "photulator: out of memory") : JADE_OK;
}

jade_status jade_sed_photulator_jacobian(const jade_sed_photulator *p, const double *theta16, double *mag,
                                        double *jac) {
  size_t nw = 0;
  for (int b = 0; b < p->nb; b++) nw = nw > sed_mlp_grad_work(&p->net[b]) ? nw : sed_mlp_grad_work(&p->net[b]);
  double *work = jade_alloc(nw * sizeof(double));
  if (!work) return JADE_ERR_NOMEM;
  double t15[15], x[15], gx[15];
  theta15(theta16, t15);
  for (int j = 0; j < 15; j++) x[j] = (t15[j] - p->pshift[j]) / p->pscale[j];
  /* d t15[7] / d dust2 = 1 / (2 sqrt(dust2)) (0 on the box edge) */
  double dsq = theta16[8] > 0 ? 0.5 / sqrt(theta16[8]) : 0.0;
  for (int b = 0; b < p->nb; b++) {
    double y = sed_mlp_value_grad(&p->net[b], x, gx, work);
    mag[b] = y * p->mscale[b] + p->mshift[b] + theta16[0];
    double *J = jac + (size_t)b * 16;
    J[0] = 1.0; /* m = NN + N */
    for (int j = 1; j < 16; j++) J[j] = gx[j - 1] * p->mscale[b] / p->pscale[j - 1];
    J[8] *= dsq;
  }
  free(work);
  return JADE_OK;
}

jade_status jade_sed_photulator_band_mags(const jade_sed_photulator *p, int b, const double *theta16, size_t n,
                                          double *mag) {
  if (b < 0 || b >= p->nb) return jade_error(JADE_ERR_INVALID, "photulator: band %d of %d", b, p->nb);
  if (n == 0) return JADE_OK;
  size_t chunk = n < PHOT_CHUNK ? n : PHOT_CHUNK;
  double *x = jade_alloc(chunk * 15 * sizeof(double)), *work = jade_alloc(2 * chunk * 128 * sizeof(double));
  double *y = jade_alloc(chunk * sizeof(double));
  if (!x || !work || !y) {
    free(x);
    free(work);
    free(y);
    return JADE_ERR_NOMEM;
  }
  for (size_t i0 = 0; i0 < n; i0 += chunk) {
    size_t m = n - i0 < chunk ? n - i0 : chunk;
    for (size_t i = 0; i < m; i++) {
      theta15(theta16 + (i0 + i) * 16, x + i * 15);
      for (int j = 0; j < 15; j++) x[i * 15 + j] = (x[i * 15 + j] - p->pshift[j]) / p->pscale[j];
    }
    sed_mlp_forward(&p->net[b], m, x, y, work);
    for (size_t i = 0; i < m; i++) mag[i0 + i] = y[i] * p->mscale[b] + p->mshift[b] + theta16[(i0 + i) * 16];
  }
  free(x);
  free(work);
  free(y);
  return JADE_OK;
}

double jade_sed_mag_to_flux(double mag) { return pow(10.0, (22.5 - mag) / 2.5); }
double jade_sed_asinh_mag(double f, double f_b) {
  return -1.0857362047581294 * (asinh(f / (2.0 * f_b)) - log(1e9 / f_b));
}

/* ---- stellar-mass emulator ---- */
struct jade_sed_mass {
  sed_mlp net;
  double shift[16], scale[16];
};

void jade_sed_mass_free(jade_sed_mass *m) {
  if (!m) return;
  sed_mlp_free(&m->net);
  free(m);
}

jade_status jade_sed_mass_load(const char *path, jade_sed_mass **out) {
  *out = NULL;
  jade_safetensors *st;
  jade_status s = jade_safetensors_read(path, &st);
  if (s) return s;
  jade_sed_mass *m = jade_calloc(1, sizeof *m);
  const int dims[4] = {16, 128, 128, 1};
  const sed_act act[3] = {SED_ACT_TANH, SED_ACT_TANH, SED_ACT_TANH};
  if (!m || !sed_mlp_alloc(&m->net, 3, dims, act)) {
    s = JADE_ERR_NOMEM;
    goto fail;
  }
  if ((s = sed_st_copy(st, "0.weight", 2, 128, 16, m->net.W[0])) ||
      (s = sed_st_copy(st, "0.bias", 1, 128, 0, m->net.b[0])) ||
      (s = sed_st_copy(st, "2.weight", 2, 128, 128, m->net.W[1])) ||
      (s = sed_st_copy(st, "2.bias", 1, 128, 0, m->net.b[1])) ||
      (s = sed_st_copy(st, "4.weight", 2, 1, 128, m->net.W[2])) ||
      (s = sed_st_copy(st, "4.bias", 1, 1, 0, m->net.b[2])) ||
      (s = sed_st_copy(st, "theta_shift", 1, 16, 0, m->shift)) ||
      (s = sed_st_copy(st, "theta_scale", 1, 16, 0, m->scale)))
    goto fail;
  jade_safetensors_free(st);
  *out = m;
  return JADE_OK;
fail:
  jade_error_context(s, "stellar-mass emulator %s", path);
  jade_safetensors_free(st);
  jade_sed_mass_free(m);
  return s;
}

jade_status jade_sed_mass_frac(const jade_sed_mass *m, const double *theta16, size_t n, double *mfrac) {
  if (n == 0) return JADE_OK;
  double *x = jade_alloc(n * 16 * sizeof(double)), *work = jade_alloc(2 * n * 128 * sizeof(double));
  if (!x || !work) {
    free(x);
    free(work);
    return JADE_ERR_NOMEM;
  }
  for (size_t i = 0; i < n; i++)
    for (int j = 0; j < 16; j++) x[i * 16 + j] = (theta16[i * 16 + j] - m->shift[j]) / m->scale[j];
  sed_mlp_forward(&m->net, n, x, mfrac, work);
  free(x);
  free(work);
  return JADE_OK;
}

/* Flat LambdaCDM luminosity distance D_L = (1+z) (c/H0) int_0^z dz'/E(z'),
 * E = sqrt(Om (1+z)^3 + 1 - Om) (Hogg 1999, astro-ph/9905116, eqs. 14-16, 21), integrated by
 * GSL's non-adaptive Gauss-Kronrod-Patterson rule (no workspace: thread-safe). */
#define DM_H0 67.74
#define DM_OM 0.3089
static double inv_E(double z, void *par) {
  (void)par;
  return 1.0 / sqrt(DM_OM * (1 + z) * (1 + z) * (1 + z) + 1.0 - DM_OM);
}
double jade_sed_distmod(double z) {
  if (!(z > 0) || !isfinite(z)) return z == 0 ? -INFINITY : NAN;
  gsl_function F = {inv_E, NULL};
  double dc, err;
  size_t neval;
  gsl_integration_qng(&F, 0.0, z, 1e-12, 1e-10, &dc, &err, &neval);
  double dl_mpc = (1.0 + z) * 299792.458 / DM_H0 * dc;
  return 5.0 * log10(dl_mpc) + 25.0;
}

double jade_sed_log10_mass(const double theta16[JADE_SED_NPAR], double mfrac) {
  return (jade_sed_distmod(theta16[15]) - theta16[0]) / 2.5 + log10(mfrac);
}

/* ---- parameter transform (pop_cosmos CatalogueGenerator; probit on the box) ---- */
/* Phi^-1(u) for 0 < u <= 0.5: Newton on Phi(x) - u (Phi via erfc, accurate in the lower tail)
 * from the logistic approximation. */
static double probit_lower(double u) {
  double x = log(u / (1 - u)) / 1.702;
  for (int it = 0; it < 100; it++) {
    double F = 0.5 * erfc(-x / M_SQRT2), f = exp(-0.5 * x * x) / sqrt(2 * M_PI);
    double dx = (F - u) / f;
    if (dx > 1) dx = 1;
    if (dx < -1) dx = -1;
    x -= dx;
    if (fabs(dx) < 1e-15 * (1 + fabs(x))) break;
  }
  return x;
}

void jade_sed_theta_to_phi(const double *theta, double *phi) {
  phi[0] = theta[0];
  for (int j = 1; j < JADE_SED_NPAR; j++) {
    double r = param_hi[j] - param_lo[j];
    double u = (theta[j] - param_lo[j]) / r, v = (param_hi[j] - theta[j]) / r; /* v = 1 - u */
    if (!(u > 0 && v > 0)) phi[j] = u <= 0 ? -INFINITY : (v <= 0 ? INFINITY : NAN);
    else phi[j] = u <= 0.5 ? probit_lower(u) : -probit_lower(v);
  }
}

void jade_sed_phi_to_theta(const double *phi, double *theta) {
  theta[0] = phi[0];
  for (int j = 1; j < JADE_SED_NPAR; j++)
    theta[j] = param_lo[j] + (param_hi[j] - param_lo[j]) * 0.5 * erfc(-phi[j] / M_SQRT2);
}

double jade_sed_log_jac_phi_theta(const double *phi) {
  double s = 0.0;
  for (int j = 1; j < JADE_SED_NPAR; j++)
    s += -log(param_hi[j] - param_lo[j]) + 0.5 * phi[j] * phi[j] + 0.5 * log(2 * M_PI);
  return s;
}
