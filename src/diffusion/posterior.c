/* Posterior sampling from an observation with a trained model (include/jade/posterior.h):
 * condition c = kappa_obs / map_std (per bin), Heun ODE sampler from Philox noise, outputs
 * de-normalised (maps x map_std, theta x theta_std + theta_mean). */
#include "jade/posterior.h"

#include <errno.h>
#include <fcntl.h>
#include <fitsio.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jade/chains.h"
#include "jade/condition.h"
#include "jade/io.h"

const char *const *const jade_posterior_col_names = jade_param_names;

size_t jade_posterior_struct_size(const char *name) {
  static const struct {
    const char *name;
    size_t size;
  } sizes[] = {{"jade_posterior_options", sizeof(jade_posterior_options)}, {"jade_progress", sizeof(jade_progress)},
               {"jade_trained_model", sizeof(jade_trained_model)},         {"jade_norm", sizeof(jade_norm)},
               {"jade_flow_config", sizeof(jade_flow_config)},             {"jade_model_config", sizeof(jade_model_config)},
               {"jade_summary_stat", sizeof(jade_summary_stat)},           {"jade_tensor_info", sizeof(jade_tensor_info)}};
  for (size_t i = 0; name && i < sizeof sizes / sizeof sizes[0]; i++)
    if (!strcmp(name, sizes[i].name)) return sizes[i].size;
  return 0;
}

void jade_posterior_options_default(jade_posterior_options *o) {
  memset(o, 0, sizeof *o);
  o->n_draws = 256;
  o->n_steps = 128;
  o->batch = 64;
  o->seed = 0;
}

jade_status jade_posterior_check(const jade_trained_model *tm, const jade_observation *obs, const char *obs_path,
                                 double noise_rtol) {
  const jade_norm *n = &tm->norm;
  if (obs->n_bins != n->n_bins || obs->n_pix != n->n_pix)
    return jade_error(JADE_ERR_INVALID, "%s: observation has %d bins of %dx%d pixels but the model %s was trained on %d bins of %dx%d",
                      obs_path, obs->n_bins, obs->n_pix, obs->n_pix, tm->path, n->n_bins, n->n_pix, n->n_pix);
  if (!(fabs(obs->size_deg - n->size_deg) <= 1e-6 * n->size_deg))
    return jade_error(JADE_ERR_INVALID, "%s: observation covers %g deg but the model %s was trained on %g deg patches",
                      obs_path, obs->size_deg, tm->path, n->size_deg);
  /* a NaN or Inf pixel would give non-finite draws after the whole integration: refused now */
  if (obs->kappa) {
    const size_t npix = (size_t)obs->n_pix * obs->n_pix;
    for (size_t i = 0; i < (size_t)obs->n_bins * npix; i++)
      if (!isfinite(obs->kappa[i]))
        return jade_error(JADE_ERR_INVALID, "%s: the convergence of bin %d is %g at pixel (y %zu, x %zu): not a finite number",
                          obs_path, (int)(i / npix), obs->kappa[i], i % npix / obs->n_pix, i % (size_t)obs->n_pix);
  }
  /* a noise level is a standard deviation: negative, NaN or Inf is an error, --ignore-noise or not */
  for (int i = 0; i < obs->n_bins; i++)
    if (!(obs->noise[i] >= 0 && isfinite(obs->noise[i])))
      return jade_error(JADE_ERR_INVALID, "%s: noise of bin %d is %g, not a noise level (>= 0)", obs_path, i, obs->noise[i]);
  if (n->masked || obs->mask) { /* per pixel (jade/condition.h) */
    const size_t nc = (size_t)jade_condition_channels(n) * n->n_pix * n->n_pix;
    float *cond = malloc(nc * sizeof *cond);
    if (!cond) return jade_error(JADE_ERR_NOMEM, "out of memory");
    char what[4400];
    snprintf(what, sizeof what, "%s (model %s)", obs_path, tm->path);
    jade_status st = jade_condition_build(n, obs->kappa, obs->mask, obs->noise_map, obs->noise, noise_rtol >= 0, what, cond);
    free(cond);
    if (st || n->masked) return st;
  }
  if (noise_rtol >= 0)
    for (int i = 0; i < n->n_bins; i++)
      if (!(fabs(obs->noise[i] - n->noise[i]) <= noise_rtol * n->noise[i] + 1e-300))
        return jade_error(JADE_ERR_INVALID, "%s: noise of bin %d is %.6g but the model %s was trained with %.6g "
                          "(posteriors would be wrong; --ignore-noise to sample anyway)",
                          obs_path, i, obs->noise[i], tm->path, n->noise[i]);
  return JADE_OK;
}

static void theta_row(const jade_norm *n, const float *th, double *out) {
  for (int i = 0; i < JADE_N_THETA; i++) out[i] = (double)th[i] * n->theta_std[i] + n->theta_mean[i];
  out[JADE_N_THETA] = jade_theta_omega_m(out);
  out[JADE_N_THETA + 1] = jade_theta_s8(out);
}

/* One worker: a model (the trained one, or a copy for extra threads), its sampler and noise
 * buffers. */
typedef struct {
  jade_model *m;
  int own_model;
  jade_sampler *s;
  float *z, *th;
  int id;                          /* worker index (progress) */
  const jade_posterior_options *o;
  jade_eta *eta;                   /* rank 0 with o->progress: the shared estimator, else NULL */
} worker;

/* after every network evaluation of a batch (jade_sampler_set_eval_hook) */
static void eval_hook(int eval, int B, void *user) {
  (void)eval;
  worker *w = user;
  const double work = B; /* draw-evaluations */
  if (w->o->on_step) w->o->on_step(work, w->o->step_user);
  if (!w->eta) return;
#pragma omp critical(jade_posterior_progress)
  {
    double t = jade_time_now();
    jade_eta_step(w->eta, w->id, work, t);
    jade_progress p;
    jade_eta_get(w->eta, t, &p);
    w->o->progress(&p, w->o->user);
  }
}

/* a batch begins (end = 0) or ends (end = 1, reported) on worker w */
static void batch_event(worker *w, int end) {
  if (!w->eta) return;
#pragma omp critical(jade_posterior_progress)
  {
    double t = jade_time_now();
    if (end) {
      jade_eta_end(w->eta, w->id, t);
      jade_progress p;
      jade_eta_get(w->eta, t, &p);
      w->o->progress(&p, w->o->user);
    } else {
      jade_eta_begin(w->eta, w->id, t);
    }
  }
}

static void worker_free(worker *w) {
  jade_sampler_free(w->s);
  if (w->own_model) jade_model_free(w->m);
  free(w->z);
  free(w->th);
}

static jade_status worker_init(worker *w, jade_trained_model *tm, int copy, long B) {
  memset(w, 0, sizeof *w);
  const jade_model_config *mc = jade_model_get_config(tm->model);
  const size_t nx = (size_t)mc->channels * mc->img_size * mc->img_size;
  jade_status st = JADE_OK;
  if (copy) {
    st = jade_model_create(&w->m, mc);
    if (st) return st;
    w->own_model = 1;
    memcpy(jade_model_params(w->m), jade_model_params(tm->model), jade_model_num_params(tm->model) * sizeof(float));
  } else {
    w->m = tm->model;
  }
  w->z = jade_alloc((size_t)B * nx * sizeof(float));
  w->th = jade_alloc((size_t)B * mc->n_params * sizeof(float));
  if (!w->z || !w->th) return jade_error(JADE_ERR_NOMEM, "posterior: out of memory (batch %ld)", B);
  st = jade_sampler_create(&w->s, w->m, (int)B);
  if (!st) jade_sampler_set_eval_hook(w->s, eval_hook, w);
  return st;
}

/* Draws [d0, d0 + Bk): initial noise, ODE, de-normalised outputs. */
static jade_status run_batch(worker *w, const jade_trained_model *tm, const float *cond, const jade_posterior_options *o,
                             long d0, long Bk, float *maps, double *theta) {
  const jade_model_config *mc = jade_model_get_config(tm->model);
  const jade_norm *n = &tm->norm;
  const int P = mc->n_params, C = mc->channels;
  const size_t npix = (size_t)mc->img_size * mc->img_size, nx = (size_t)C * npix;
#pragma omp parallel for schedule(static)
  for (long b = 0; b < Bk; b++) {
    const uint64_t stream = JADE_STREAM(JADE_RNG_SAMPLE, (uint64_t)(d0 + b));
    jade_rng_normal_fill_f(o->seed, stream, 0, nx, w->z + (size_t)b * nx);
    jade_rng_normal_fill_f(o->seed, stream, nx, (size_t)P, w->th + (size_t)b * P);
  }
  batch_event(w, 0);
  jade_status st = jade_sampler_run_solver(w->s, (int)Bk, w->z, w->th, cond, 1, o->solver, o->n_steps, tm->flow.t_eps);
  batch_event(w, 1);
  if (st) return st;
  for (long b = 0; b < Bk; b++) {
    theta_row(n, w->th + (size_t)b * P, theta + (size_t)(d0 + b) * JADE_POSTERIOR_COLS);
    if (maps) {
      float *dst = maps + (size_t)(d0 + b) * nx;
      const float *src = w->z + (size_t)b * nx;
      for (int c = 0; c < C; c++) {
        const float sd = (float)n->map_std[c];
        for (size_t i = 0; i < npix; i++) dst[c * npix + i] = src[c * npix + i] * sd;
      }
    }
  }
  return JADE_OK;
}

jade_status jade_posterior_sample(jade_trained_model *tm, const float *obs_kappa, const jade_posterior_options *o,
                                  const jade_dist *d, float *maps, double *theta) {
  jade_dist single = {0, 1, 0};
  if (!d) d = &single;
  const jade_model_config *mc = jade_model_get_config(tm->model);
  const jade_norm *n = &tm->norm;
  if (o->n_draws < 1 || o->n_steps < 1 || o->batch < 1)
    return jade_error(JADE_ERR_INVALID, "posterior: draws %ld, steps %d, batch %d must be positive", o->n_draws, o->n_steps,
                      o->batch);
  const int C = mc->channels;
  const size_t npix = (size_t)mc->img_size * mc->img_size, nx = (size_t)C * npix;
  const long B = o->batch < o->n_draws ? o->batch : o->n_draws;
  const long n_batches = (o->n_draws + B - 1) / B;
  const long my_batches = n_batches > d->rank ? (n_batches - d->rank + d->size - 1) / d->size : 0;
  /* Threads: with at least as many batches as threads, each thread integrates whole batches
   * on its own copy of the model (no synchronisation inside the network); otherwise one
   * batch at a time, threaded inside the network. */
  int nw = o->threads == 1 ? 1 : omp_get_max_threads();
  if (o->threads > 1 && o->threads < nw) nw = o->threads;
  if (nw > my_batches) nw = 1;
  if (nw < 1) nw = 1;
  worker *w = calloc((size_t)nw, sizeof *w);
  float *cond = jade_alloc((size_t)mc->cond_channels * npix * sizeof(float));
  jade_status st = (cond && w) ? JADE_OK : jade_error(JADE_ERR_NOMEM, "posterior: out of memory");
  /* progress: this rank's batches k = rank + j size, j < my_batches, in that order; the
   * last one may be short */
  jade_eta *eta = NULL;
  if (!st && d->rank == 0 && o->progress && my_batches > 0) {
    const long k_last = d->rank + (my_batches - 1) * d->size;
    const long b_last = k_last * B + B <= o->n_draws ? B : o->n_draws - k_last * B;
    const int evals = jade_solver_evals(o->solver, o->n_steps); /* the hook's steps */
    st = jade_eta_create(nw, my_batches, (double)evals * B, (double)evals * b_last, evals, jade_time_now(), &eta);
  }
  for (int i = 0; i < nw && !st; i++) {
    st = worker_init(&w[i], tm, i > 0, B);
    w[i].id = i;
    w[i].o = o;
    w[i].eta = eta;
  }
  if (!st) {
    st = jade_condition_build(n, obs_kappa, o->mask, o->noise_map, o->noise, 0, "observation", cond);
  }
  if (!st) {
    if (maps) memset(maps, 0, (size_t)o->n_draws * nx * sizeof(float));
    memset(theta, 0, (size_t)o->n_draws * JADE_POSTERIOR_COLS * sizeof(double));
  }
  int failed = 0;
  char msg[1024] = "";
  if (!st) {
#pragma omp parallel num_threads(nw) if (nw > 1)
    {
      worker *me = &w[nw > 1 ? omp_get_thread_num() : 0];
#pragma omp for schedule(dynamic, 1)
      for (long j = 0; j < my_batches; j++) {
        if (failed) continue;
        const long k = d->rank + j * d->size, d0 = k * B, Bk = d0 + B <= o->n_draws ? B : o->n_draws - d0;
        jade_status s2 = run_batch(me, tm, cond, o, d0, Bk, maps, theta);
#pragma omp critical(jade_posterior)
        {
          if (s2 && !failed) {
            failed = 1;
            snprintf(msg, sizeof msg, "%s", jade_last_error());
          }
        }
      }
    }
    if (failed) st = jade_error(JADE_ERR_NUMERIC, "%s", msg);
  }
  for (int i = 0; w && i < nw; i++) worker_free(&w[i]);
  free(w);
  free(cond);
  jade_eta_free(eta);
  if (jade_dist_max_int(d, st != JADE_OK)) return st ? st : jade_error(JADE_ERR_INTERNAL, "posterior sampling failed on another rank");
  /* every draw was computed by exactly one rank, the others hold zeros: sums are exact */
  if (d->size > 1) {
    if (maps && (st = jade_dist_sum_float(d, maps, (size_t)o->n_draws * nx))) return st;
    if ((st = jade_dist_sum_double(d, theta, (size_t)o->n_draws * JADE_POSTERIOR_COLS))) return st;
  }
  for (size_t i = 0; i < (size_t)o->n_draws * JADE_POSTERIOR_COLS; i++)
    if (!isfinite(theta[i])) {
      const size_t dr = i / JADE_POSTERIOR_COLS;
      const int col = (int)(i % JADE_POSTERIOR_COLS);
      const double om = theta[dr * JADE_POSTERIOR_COLS + JADE_N_THETA]; /* Omega_m of that draw */
      if (col == JADE_N_THETA + 1 && !(om > 0)) /* S_8 = sigma_8 sqrt(Omega_m / 0.3) */
        return jade_error(JADE_ERR_NUMERIC,
                          "posterior: draw %zu has Omega_m = %.3g <= 0 (no S_8): the observation lies far outside what "
                          "the model %s was trained on (check the maps' units, noise levels and pixel scale)",
                          dr, om, tm->path);
      return jade_error(JADE_ERR_NUMERIC, "posterior: draw %zu has %s = %g (model %s)", dr, jade_param_names[col], theta[i],
                        tm->path);
    }
  return JADE_OK;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double quantile_sorted(const double *v, long n, double q) {
  double pos = q * (double)(n - 1);
  long i = (long)floor(pos);
  if (i >= n - 1) return v[n - 1];
  double f = pos - (double)i;
  return v[i] + f * (v[i + 1] - v[i]);
}

void jade_posterior_summary(const double *x, long n, int stride, jade_summary_stat *out) {
  memset(out, 0, sizeof *out);
  if (n <= 0) return;
  double *v = malloc((size_t)n * sizeof *v);
  double s = 0;
  for (long i = 0; i < n; i++) s += x[(size_t)i * stride];
  out->mean = s / n;
  double s2 = 0;
  for (long i = 0; i < n; i++) s2 += (x[(size_t)i * stride] - out->mean) * (x[(size_t)i * stride] - out->mean);
  out->std = n > 1 ? sqrt(s2 / (n - 1)) : 0;
  if (!v) {
    out->q16 = out->q50 = out->q84 = NAN;
    return;
  }
  for (long i = 0; i < n; i++) v[i] = x[(size_t)i * stride];
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  out->q16 = quantile_sorted(v, n, 0.16);
  out->q50 = quantile_sorted(v, n, 0.50);
  out->q84 = quantile_sorted(v, n, 0.84);
  free(v);
}

/* ---- maps.fits: one 4-D primary image written with CFITSIO, temp file + rename ---------- */
static jade_status fits_error(int status, const char *path, int sys_errno) {
  char msg[FLEN_STATUS];
  fits_get_errstatus(status, msg);
  fits_clear_errmsg();
  /* CFITSIO reports a failed write without its cause: the C library's (e.g. a full disk) */
  if (status == WRITE_ERROR && sys_errno) return jade_error(JADE_ERR_IO, "%s: FITS error: %s: %s", path, msg, strerror(sys_errno));
  return jade_error(JADE_ERR_IO, "%s: FITS error: %s", path, msg);
}

/* A header key of the observation (GAMMA1 or KAPPA HDU), or the default. */
static double obs_key_double(const char *obs_path, const char *key, double dflt) {
  double v;
  const char *hdus[2] = {"GAMMA1", "KAPPA"};
  for (int i = 0; i < 2; i++)
    if (jade_fits_has_hdu(obs_path, hdus[i]) && jade_fits_read_key_double(obs_path, hdus[i], key, &v) == JADE_OK && isfinite(v))
      return v;
  jade_clear_error();
  return dflt;
}
static void obs_key_string(const char *obs_path, const char *key, const char *dflt, char *out, size_t n) {
  const char *hdus[2] = {"GAMMA1", "KAPPA"};
  for (int i = 0; i < 2; i++)
    if (jade_fits_has_hdu(obs_path, hdus[i]) && jade_fits_read_key_string(obs_path, hdus[i], key, out, n) == JADE_OK) return;
  jade_clear_error();
  snprintf(out, n, "%s", dflt);
}

static jade_status write_maps_fits(const char *path, const jade_trained_model *tm, const jade_observation *obs,
                                   const char *obs_path, const jade_posterior_options *o, const float *maps) {
  char tmp[4400];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  unlink(tmp);
  fitsfile *f = NULL;
  int status = 0;
  const int np = obs->n_pix;
  long naxes[4] = {np, np, obs->n_bins, o->n_draws};
  const double pix_deg = obs->size_deg / np;
  char ctype1[72], ctype2[72], cunit1[72], cunit2[72];
  obs_key_string(obs_path, "CTYPE1", "RA---CAR", ctype1, sizeof ctype1);
  obs_key_string(obs_path, "CTYPE2", "DEC--CAR", ctype2, sizeof ctype2);
  obs_key_string(obs_path, "CUNIT1", "deg", cunit1, sizeof cunit1);
  obs_key_string(obs_path, "CUNIT2", "deg", cunit2, sizeof cunit2);
  double cdelt1 = obs_key_double(obs_path, "CDELT1", -pix_deg), cdelt2 = obs_key_double(obs_path, "CDELT2", pix_deg);
  double crpix1 = obs_key_double(obs_path, "CRPIX1", np / 2.0 + 0.5), crpix2 = obs_key_double(obs_path, "CRPIX2", np / 2.0 + 0.5);
  double crval1 = obs_key_double(obs_path, "CRVAL1", 0.0), crval2 = obs_key_double(obs_path, "CRVAL2", 0.0);
  double pixarcm = pix_deg * 60.0, size_deg = obs->size_deg;
  long nbins = obs->n_bins, npix = np, ndraws = o->n_draws, nsteps = o->n_steps, seed = (long)o->seed, step = tm->step;
  char model_s[72], obs_s[72];
  snprintf(model_s, sizeof model_s, "%.68s", tm->path);
  snprintf(obs_s, sizeof obs_s, "%.68s", obs_path);
  fits_clear_errmsg();
  errno = 0;
  /* fits_create_diskfile: the name is taken literally (no CFITSIO extended filename syntax,
   * so a '[' or '!' in the path is just a character; CFITSIO User's Guide, "Open and create
   * files") */
  if (fits_create_diskfile(&f, tmp, &status) || fits_create_img(f, FLOAT_IMG, 4, naxes, &status) ||
      fits_write_key_str(f, "EXTNAME", "MAPS", "posterior draws of the convergence maps", &status) ||
      fits_write_key_str(f, "CREATOR", "jade " JADE_VERSION, "software that wrote this file", &status) ||
      fits_write_key_str(f, "BUNIT", "", "convergence kappa (dimensionless)", &status) ||
      fits_write_key_lng(f, "NDRAWS", ndraws, "posterior draws (axis 4)", &status) ||
      fits_write_key_lng(f, "NBINS", nbins, "tomographic bins (axis 3)", &status) ||
      fits_write_key_lng(f, "NPIX", npix, "pixels per side", &status) ||
      fits_write_key_dbl(f, "SIZEDEG", size_deg, -15, "[deg] side of the square patch", &status) ||
      fits_write_key_dbl(f, "PIXARCM", pixarcm, -15, "[arcmin] pixel side", &status) ||
      fits_write_key_str(f, "CTYPE1", ctype1, NULL, &status) || fits_write_key_str(f, "CTYPE2", ctype2, NULL, &status) ||
      fits_write_key_str(f, "CTYPE3", "BIN", "tomographic bin index", &status) ||
      fits_write_key_str(f, "CTYPE4", "DRAW", "posterior draw index", &status) ||
      fits_write_key_str(f, "CUNIT1", cunit1, NULL, &status) || fits_write_key_str(f, "CUNIT2", cunit2, NULL, &status) ||
      fits_write_key_dbl(f, "CDELT1", cdelt1, -15, "[deg] pixel scale", &status) ||
      fits_write_key_dbl(f, "CDELT2", cdelt2, -15, "[deg] pixel scale", &status) ||
      fits_write_key_dbl(f, "CRPIX1", crpix1, -15, "reference pixel", &status) ||
      fits_write_key_dbl(f, "CRPIX2", crpix2, -15, NULL, &status) ||
      fits_write_key_dbl(f, "CRVAL1", crval1, -15, "[deg]", &status) ||
      fits_write_key_dbl(f, "CRVAL2", crval2, -15, "[deg]", &status) ||
      fits_write_key_lng(f, "NSTEPS", nsteps, "Heun sampler steps", &status) ||
      fits_write_key_lng(f, "SEED", seed, "sampling seed", &status) ||
      fits_write_key_lng(f, "TRSTEP", step, "training step of the model", &status) ||
      fits_write_key_str(f, "MODEL", model_s, "model file", &status) ||
      fits_write_key_str(f, "OBSFILE", obs_s, "observation file", &status))
    goto fail;
  for (int i = 0; i < obs->n_bins; i++) {
    char k[16];
    snprintf(k, sizeof k, "NOISE%d", i);
    double nz = obs->noise[i];
    if (fits_write_key_dbl(f, k, nz, -15, "per-pixel noise sigma of the observation", &status)) goto fail;
  }
  /* no CHECKSUM card: it carries a date, and identical runs should give identical files */
  if (fits_write_img(f, TFLOAT, 1, (LONGLONG)o->n_draws * obs->n_bins * np * np, (float *)maps, &status)) goto fail;
  fits_close_file(f, &status);
  f = NULL;
  if (status) goto fail;
  /* on disk before the rename, so a crash never leaves a short maps.fits under its name */
  int fd = open(tmp, O_RDONLY | O_CLOEXEC), e = 0;
  if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)) e = errno ? errno : EIO;
  if (fd >= 0) close(fd);
  if (e) {
    unlink(tmp);
    return jade_error(JADE_ERR_IO, "%s: fsync failed: %s", path, strerror(e));
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return jade_error(JADE_ERR_IO, "%s: cannot rename into place: %s", path, strerror(e));
  }
  return JADE_OK;
fail:;
  jade_status s = fits_error(status, path, errno);
  if (f) {
    int s2 = 0;
    fits_close_file(f, &s2);
  }
  unlink(tmp);
  return s;
}

jade_status jade_posterior_write(const char *dir, const jade_trained_model *tm, const jade_observation *obs,
                                 const char *obs_path, const jade_posterior_options *o, const float *maps,
                                 const double *theta) {
  char path[4300];
  jade_status st = jade_mkdir_p(dir);
  if (st) return st;
  const long n = o->n_draws;
  const int K = JADE_POSTERIOR_COLS;
  /* theta.txt */
  jade_text_file f;
  snprintf(path, sizeof path, "%s/theta.txt", dir);
  if ((st = jade_text_open(path, &f))) return st;
  fprintf(f.f, "# jade " JADE_VERSION " sample: %ld posterior draws, %d %s steps, seed %llu\n# model %s (step %ld)\n# observation %s\n#",
          n, o->n_steps, jade_solver_name(o->solver), (unsigned long long)o->seed, tm->path, tm->step, obs_path);
  for (int j = 0; j < K; j++) fprintf(f.f, " %s", jade_posterior_col_names[j]);
  fprintf(f.f, "\n");
  for (long i = 0; i < n; i++)
    for (int j = 0; j < K; j++) fprintf(f.f, "%.9g%c", theta[(size_t)i * K + j], j == K - 1 ? '\n' : ' ');
  if ((st = jade_text_commit(&f))) return st;
  /* theta.npy */
  snprintf(path, sizeof path, "%s/theta.npy", dir);
  size_t shape[2] = {(size_t)n, (size_t)K};
  if ((st = jade_npy_write(path, JADE_F64, 2, shape, theta))) return st;
  /* chain.txt, chain.paramnames, chain.npy (jade/chains.h; the layout of jade mcmc) */
  size_t clen = strlen(tm->path) + strlen(obs_path) + 512;
  char *comment = malloc(clen);
  if (!comment) return jade_error(JADE_ERR_NOMEM, "out of memory");
  snprintf(comment, clen,
           "jade " JADE_VERSION " sample: %ld posterior draws, %d %s steps, seed %llu\nmodel %s (step %ld)\nobservation %s\n"
           "weight 1 (independent draws); minuslogpost 0: the diffusion sampler gives no posterior density",
           n, o->n_steps, jade_solver_name(o->solver), (unsigned long long)o->seed, tm->path, tm->step, obs_path);
  snprintf(path, sizeof path, "%s/chain", dir);
  st = jade_chains_write(path, comment, K, jade_param_names, jade_param_latex, K - JADE_N_THETA, n, NULL, NULL, theta, (size_t)K);
  free(comment);
  if (st) return st;
  /* summary.txt */
  snprintf(path, sizeof path, "%s/summary.txt", dir);
  if ((st = jade_text_open(path, &f))) return st;
  fprintf(f.f, "# jade " JADE_VERSION " sample: %ld draws; per column: mean, std, 16/50/84%% quantiles\n# model %s\n# observation %s\n"
          "# %-8s %12s %12s %12s %12s %12s\n", n, tm->path, obs_path, "column", "mean", "std", "q16", "q50", "q84");
  for (int j = 0; j < K; j++) {
    jade_summary_stat s;
    jade_posterior_summary(theta + j, n, K, &s);
    fprintf(f.f, "%-10s %12.6g %12.6g %12.6g %12.6g %12.6g\n", jade_posterior_col_names[j], s.mean, s.std, s.q16, s.q50, s.q84);
  }
  if ((st = jade_text_commit(&f))) return st;
  /* config.ini */
  if (o->config_text) {
    snprintf(path, sizeof path, "%s/config.ini", dir);
    size_t len = strlen(o->config_text) + 200;
    char *txt = malloc(len);
    if (!txt) return jade_error(JADE_ERR_NOMEM, "out of memory");
    snprintf(txt, len, "# jade %s sample: the effective configuration (model %s)\n%s", JADE_VERSION, tm->path, o->config_text);
    st = jade_write_file_atomic(path, txt);
    free(txt);
    if (st) return st;
  }
  /* maps.fits */
  if (maps) {
    snprintf(path, sizeof path, "%s/maps.fits", dir);
    if ((st = write_maps_fits(path, tm, obs, obs_path, o, maps))) return st;
  }
  return JADE_OK;
}

void jade_draw_moments(const float *x, size_t D, size_t n, float *mean, float *sd) {
  for (size_t i = 0; i < n; i++) {
    double s = 0, s2 = 0;
    for (size_t d = 0; d < D; d++) s += x[d * n + i];
    double m = s / (double)D;
    for (size_t d = 0; d < D; d++) s2 += (x[d * n + i] - m) * (x[d * n + i] - m);
    mean[i] = (float)m;
    sd[i] = (float)(D > 1 ? sqrt(s2 / (double)(D - 1)) : 0);
  }
}

/* Rank 0 creates out_dir.tmp.<pid> (so an unwritable out_dir fails before the sampling);
 * tmp receives its path, or "" when not created. Collective. */
static jade_status make_temporary_dir(const char *out_dir, const jade_dist *d, char *tmp, size_t n) {
  jade_status st = JADE_OK;
  tmp[0] = 0;
  if (d->rank == 0) {
    if (jade_path_exists(out_dir)) {
      st = jade_error(JADE_ERR_IO, "%s: already exists (choose another --out or remove it)", out_dir);
    } else {
      snprintf(tmp, n, "%s.tmp.%ld", out_dir, (long)getpid());
      st = jade_mkdir_p(tmp);
      if (st) tmp[0] = 0;
    }
  }
  if (jade_dist_max_int(d, st != JADE_OK) && !st) st = jade_error(JADE_ERR_IO, "rank 0 cannot create %s", out_dir);
  return st;
}

jade_status jade_posterior_run(jade_trained_model *tm, const char *obs_path, const char *out_dir, double noise_rtol,
                               int keep_maps, const jade_posterior_options *o_in, const jade_dist *d,
                               void (*message)(const char *text, void *user), void *user, double **theta_out) {
  jade_dist single = {0, 1, 0};
  if (!d) d = &single;
  if (theta_out) *theta_out = NULL;
  jade_observation obs;
  memset(&obs, 0, sizeof obs);
  jade_posterior_options o = *o_in;
  float *maps = NULL;
  double *theta = NULL;
  char tmp[4400] = "";
  jade_status st = jade_observation_read(obs_path, &obs);
  if (!st) st = jade_posterior_check(tm, &obs, obs_path, noise_rtol);
  if (st) goto done;
  o.mask = obs.mask;
  o.noise_map = obs.noise_map;
  o.noise = obs.noise;
  const size_t nx = (size_t)obs.n_bins * obs.n_pix * obs.n_pix;
  theta = malloc((size_t)o.n_draws * JADE_POSTERIOR_COLS * sizeof *theta);
  if (keep_maps) maps = malloc((size_t)o.n_draws * nx * sizeof *maps);
  if (!theta || (keep_maps && !maps)) {
    st = jade_error(JADE_ERR_NOMEM, "out of memory for %ld draws%s", o.n_draws, keep_maps ? " (try without the maps)" : "");
    goto done;
  }
  if ((st = make_temporary_dir(out_dir, d, tmp, sizeof tmp))) goto done;
  if (message && d->rank == 0) {
    char line[6000];
    snprintf(line, sizeof line, "%ld draws x %d %s steps (%d network evaluations each), model %s (step %ld), matmul %s%s%s",
             o.n_draws, o.n_steps, jade_solver_name(o.solver), jade_solver_evals(o.solver, o.n_steps), tm->path, tm->step,
             jade_matmul_backend_name(jade_matmul_get_backend()), obs.from_shear ? ", shear converted by Kaiser-Squires" : "",
             obs.masked_fraction > 0 ? ", masked pixels" : "");
    message(line, user);
  }
  if ((st = jade_posterior_sample(tm, obs.kappa, &o, d, maps, theta))) goto done;
  if (d->rank == 0) {
    st = jade_posterior_write(tmp, tm, &obs, obs_path, &o, maps, theta);
    if (!st && rename(tmp, out_dir) != 0)
      st = jade_error(JADE_ERR_IO, "%s: cannot rename %s into place: %s", out_dir, tmp, strerror(errno));
    if (!st) {
      tmp[0] = 0;
      jade_sync_parent_dir(out_dir);
    }
  }
  if (jade_dist_max_int(d, st != JADE_OK) && !st) st = jade_error(JADE_ERR_IO, "rank 0 failed to write %s", out_dir);
  if (!st && theta_out) {
    *theta_out = theta;
    theta = NULL;
  }
done:
  if (tmp[0]) jade_remove_dir(tmp); /* leave nothing behind */
  free(maps);
  free(theta);
  jade_observation_free(&obs);
  return st;
}
