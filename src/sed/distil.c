/* `jade sed distil-prior`: points from a diffusion prior and its tails, exact PF-ODE labels kept
 * in a resumable cache, the surrogate's least-squares fit and its held-out errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "jade/io.h"
#include "jade/sed.h"

#define LABEL_COLS 18 /* phi (16), log p, the label's ODE tolerance (0: not computed yet) */
#define LABEL_CHUNK 256

static int file_exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

void jade_sed_distil_options_default(jade_sed_distil_options *o) {
  memset(o, 0, sizeof *o);
  o->n_train = 20000;
  o->n_test = 2000;
  o->tail_frac = 0.5;
  o->sigma_lo = 0.05;
  o->sigma_hi = 1.0;
  jade_pfode_options_default(&o->ode);
  o->ode.atol = o->ode.rtol = 1e-6; /* labels 1.5e-4 nats rms from converged (docs/sed.md) */
  o->ode.batch = 64;
  o->grad_copies = 0; /* off: on jade's prior the score at t = eps disagrees with the PF-ODE density (docs/sed.md) */
  o->width = 128;
  o->layers = 3;
  jade_sed_surrogate_fit_options_default(&o->fit);
  o->seed = 1;
}

/* The n points: prior draws, a fraction moved into the tails (phi + scale sigma eps, sigma
 * log-uniform; Philox (seed, JADE_RNG_PRIOR, i) counters 2000..2016 and 3000); is_tail[i]. */
static jade_status make_points(const jade_sed_distil_options *o, const jade_sed_prior *pr, const double *scale,
                               size_t n, double *phi, unsigned char *is_tail) {
  jade_status st = jade_sed_prior_sample_phi(pr, o->seed, 0, n, phi);
  if (st) return st;
  for (size_t i = 0; i < n; i++) {
    uint64_t stream = JADE_STREAM(JADE_RNG_PRIOR, i);
    is_tail[i] = jade_rng_uniform(o->seed, stream, 3000) < o->tail_frac;
    if (!is_tail[i]) continue;
    double sig = o->sigma_lo * pow(o->sigma_hi / o->sigma_lo, jade_rng_uniform(o->seed, stream, 3001)), e[16];
    jade_rng_normal_fill(o->seed, stream, 2000, 16, e);
    for (int j = 0; j < 16; j++) phi[i * 16 + j] += scale[j] * sig * e[j];
  }
  return JADE_OK;
}

/* Exact log-densities of every point, computed chunk by chunk into the cache `path` (resumed
 * from the chunks already marked done; a cache whose points differ is refused). */
static jade_status label_points(const jade_sed_distil_options *o, const jade_sed_prior *pr, const char *path,
                                size_t n, const double *phi, double *logp, double *sec_per_point) {
  size_t shape[2] = {n, LABEL_COLS};
  double *rows = jade_alloc(n * LABEL_COLS * sizeof(double) + 8);
  if (!rows) return JADE_ERR_NOMEM;
  memset(rows, 0, n * LABEL_COLS * sizeof(double));
  jade_npy old;
  if (file_exists(path)) {
    jade_status st = jade_npy_read(path, 0, &old);
    if (st) {
      free(rows);
      return st;
    }
    if (old.dtype != JADE_F64 || old.ndim != 2 || old.shape[0] != n || old.shape[1] != LABEL_COLS) {
      jade_npy_release(&old);
      free(rows);
      return jade_error(JADE_ERR_FORMAT, "%s: label cache of another shape (expected %zu x %d float64); remove it", path,
                        n, LABEL_COLS);
    }
    memcpy(rows, old.data, n * LABEL_COLS * sizeof(double));
    jade_npy_release(&old);
  }
  jade_status st = JADE_OK;
  size_t done = 0;
  for (size_t i = 0; i < n && !st; i++) {
    double tol = rows[i * LABEL_COLS + 17];
    if (tol == 0) continue;
    if (memcmp(rows + i * LABEL_COLS, phi + i * 16, 16 * sizeof(double)))
      st = jade_error(JADE_ERR_FORMAT, "%s: label cache made with other options (point %zu differs); remove it", path, i);
    else if (tol != o->ode.rtol)
      st = jade_error(JADE_ERR_FORMAT, "%s: labels computed at tolerance %g, not %g; remove it or use another --labels",
                      path, tol, o->ode.rtol);
    done++;
  }
  double t0 = jade_time_now(), t_last = t0;
  size_t computed = 0;
  for (size_t c0 = 0; c0 < n && !st; c0 += LABEL_CHUNK) {
    size_t m = n - c0 < LABEL_CHUNK ? n - c0 : LABEL_CHUNK, todo = 0;
    for (size_t i = c0; i < c0 + m; i++) todo += rows[i * LABEL_COLS + 17] == 0;
    if (!todo) continue;
    double lp[LABEL_CHUNK];
    st = jade_sed_prior_logp(pr, m, phi + c0 * 16, lp);
    for (size_t i = 0; i < m && !st; i++) {
      if (!isfinite(lp[i])) st = jade_error(JADE_ERR_NUMERIC, "distil: log-density of point %zu is not finite", c0 + i);
      double *r = rows + (c0 + i) * LABEL_COLS;
      if (r[17] != 0) continue;
      memcpy(r, phi + (c0 + i) * 16, 16 * sizeof(double));
      r[16] = lp[i];
      r[17] = o->ode.rtol;
      done++;
    }
    computed += m;
    double now = jade_time_now();
    if (!st && (now - t_last > 60 || done == n)) { /* checkpoint: at most a minute of labels lost */
      st = jade_npy_write(path, JADE_F64, 2, shape, rows);
      t_last = now;
    }
    if (o->verbose && !st) {
      char left[32];
      jade_format_duration((now - t0) / (double)computed * (double)(n - done), left, sizeof left);
      fprintf(stderr, "distil: labels %zu/%zu, %.3f s per point, %s left\n", done, n, (now - t0) / (double)computed,
              left);
    }
  }
  if (!st && !computed && !file_exists(path)) st = jade_npy_write(path, JADE_F64, 2, shape, rows);
  *sec_per_point = computed ? (jade_time_now() - t0) / (double)computed : NAN;
  for (size_t i = 0; i < n && !st; i++) logp[i] = rows[i * LABEL_COLS + 16];
  free(rows);
  return st;
}

/* mean, standard deviation and largest |e - mean| of the errors e[i] over points with
 * sel[i] == want. */
static void error_stats(const double *e, const unsigned char *sel, unsigned char want, size_t n, size_t *count,
                        double *mean, double *sd, double *mx) {
  double s = 0, s2 = 0;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (sel[i] == want) {
      s += e[i];
      k++;
    }
  *count = k;
  *mean = k ? s / (double)k : NAN;
  *mx = 0;
  for (size_t i = 0; i < n; i++)
    if (sel[i] == want) {
      s2 += (e[i] - *mean) * (e[i] - *mean);
      *mx = fmax(*mx, fabs(e[i] - *mean));
    }
  *sd = k > 1 ? sqrt(s2 / (double)(k - 1)) : NAN;
}

/* Held-out errors of the surrogate s and of its Gaussian alone (g: the same surrogate with f =
 * 0) on the points of the fit's domain, prior draws and tail points apart. */
static jade_status held_out(const jade_sed_surrogate *s, const jade_sed_surrogate *g, size_t n, const double *phi,
                            const double *logp, const unsigned char *tail, jade_sed_distil_report *rep) {
  double *q = jade_alloc(2 * n * sizeof(double) + 8);
  unsigned char *sel = jade_alloc(n + 8);
  jade_status st = q && sel ? jade_sed_surrogate_logp(s, n, phi, q) : JADE_ERR_NOMEM;
  if (!st) st = jade_sed_surrogate_logp(g, n, phi, q + n);
  if (!st) {
    size_t k;
    double m, mx;
    for (size_t i = 0; i < 2 * n; i++) q[i] -= logp[i % n];
    for (size_t i = 0; i < n; i++) {
      sel[i] = jade_sed_surrogate_in_domain(s, phi + i * 16) ? tail[i] : 2;
      rep->n_test_outside += sel[i] == 2;
    }
    error_stats(q, sel, 0, n, &rep->n_test_prior, &rep->prior_mean, &rep->prior_sd, &rep->prior_max);
    error_stats(q, sel, 1, n, &rep->n_test_tail, &rep->tail_mean, &rep->tail_sd, &rep->tail_max);
    error_stats(q + n, sel, 0, n, &k, &m, &rep->gauss_prior_sd, &mx);
    error_stats(q + n, sel, 1, n, &k, &m, &rep->gauss_tail_sd, &mx);
  }
  free(q);
  free(sel);
  return st;
}

/* The score model's gradient labels d log p / d phi = s(x, eps) / scale at n points phi. */
static jade_status score_labels(const jade_sed_score *score, size_t n, const double *phi, double *dlogp) {
  const jade_sed_score_config *c = jade_sed_score_get_config(score);
  const double *sh = jade_sed_score_shift((jade_sed_score *)score), *sc = jade_sed_score_scale((jade_sed_score *)score);
  double *x = jade_alloc(n * 16 * sizeof(double) + 8), *t = jade_alloc(n * sizeof(double) + 8);
  jade_status st = x && t ? JADE_OK : JADE_ERR_NOMEM;
  for (size_t i = 0; i < n && !st; i++) {
    t[i] = c->sde.eps;
    for (int j = 0; j < 16; j++) x[i * 16 + j] = (phi[i * 16 + j] - sh[j]) / sc[j];
  }
  if (!st) st = jade_sed_score_eval(score, n, t, x, NULL, dlogp);
  for (size_t q = 0; q < n * 16 && !st; q++) dlogp[q] /= sc[q % 16];
  free(x);
  free(t);
  return st;
}

/* Gradient points: each training point and grad_copies - 1 copies moved by scale sigma eps
 * (sigma log-uniform as for the tails; Philox (seed, JADE_RNG_PRIOR, i) counters 4000 + 32 k
 * and 3500 + k), labelled by the score at t = eps (its gradient: one network evaluation, ~1000x
 * cheaper than a PF-ODE log-density). */
static jade_status grad_points(const jade_sed_distil_options *o, const jade_sed_score *score, size_t n,
                               const double *phi, double *pg, double *dg) {
  const double *sc = jade_sed_score_scale((jade_sed_score *)score);
  size_t m = o->grad_copies;
  for (size_t i = 0; i < n; i++) {
    uint64_t stream = JADE_STREAM(JADE_RNG_PRIOR, i);
    for (size_t k = 0; k < m; k++) {
      double *p = pg + (i * m + k) * 16, e[16];
      memcpy(p, phi + i * 16, 16 * sizeof(double));
      if (!k) continue;
      double sig = o->sigma_lo * pow(o->sigma_hi / o->sigma_lo, jade_rng_uniform(o->seed, stream, 3500 + k));
      jade_rng_normal_fill(o->seed, stream, 4000 + 32 * k, 16, e);
      for (int j = 0; j < 16; j++) p[j] += sc[j] * sig * e[j];
    }
  }
  return score_labels(score, n * m, pg, dg);
}

/* rms over the held-out points in the domain of d log q / dx - s(x, eps) (per coordinate, x units) */
static jade_status held_out_grad(const jade_sed_surrogate *s, const jade_sed_score *score, size_t n, const double *phi,
                                 jade_sed_distil_report *rep) {
  const double *sc = jade_sed_score_scale((jade_sed_score *)score);
  double *gq = jade_alloc(n * 16 * sizeof(double) + 8), *gs = jade_alloc(n * 16 * sizeof(double) + 8);
  double *lp = jade_alloc(n * sizeof(double) + 8);
  jade_status st = gq && gs && lp ? jade_sed_surrogate_grad(s, n, phi, lp, gq) : JADE_ERR_NOMEM;
  if (!st) st = score_labels(score, n, phi, gs);
  double acc = 0, nrm = 0;
  size_t k = 0;
  for (size_t i = 0; i < n && !st; i++) {
    if (!jade_sed_surrogate_in_domain(s, phi + i * 16)) continue;
    for (int j = 0; j < 16; j++) {
      double a = gq[i * 16 + j] * sc[j], b = gs[i * 16 + j] * sc[j];
      acc += (a - b) * (a - b);
      nrm += b * b;
    }
    k++;
  }
  rep->grad_rms = k ? sqrt(acc / (16.0 * (double)k)) : NAN;
  rep->grad_norm_rms = k ? sqrt(nrm / (16.0 * (double)k)) : NAN;
  free(gq);
  free(gs);
  free(lp);
  return st;
}

jade_status jade_sed_distil_prior(const jade_sed_distil_options *o, jade_sed_distil_report *rep) {
  memset(rep, 0, sizeof *rep);
  if (!o->prior || !o->out) return jade_error(JADE_ERR_INVALID, "sed distil-prior: prior and output needed");
  if (o->n_train < 100 || !(o->tail_frac >= 0 && o->tail_frac <= 1) || !(o->sigma_lo > 0 && o->sigma_hi >= o->sigma_lo))
    return jade_error(JADE_ERR_INVALID, "sed distil-prior: bad options (n-train %zu >= 100, tail fraction %g in [0, 1], "
                      "sigma range %g..%g)", o->n_train, o->tail_frac, o->sigma_lo, o->sigma_hi);
  char cache[4200];
  snprintf(cache, sizeof cache, "%s", o->labels ? o->labels : "");
  if (!o->labels) snprintf(cache, sizeof cache, "%s.labels.npy", o->out);
  jade_sed_score *score = NULL;
  jade_sed_surrogate *s = NULL, *g = NULL;
  jade_status st = jade_sed_score_load(o->prior, &score);
  if (!st && (jade_sed_score_get_config(score)->dim != 16 || jade_sed_score_get_config(score)->n_cond))
    st = jade_error(JADE_ERR_INVALID, "%s: not a 16-parameter unconditional score model", o->prior);
  size_t n = o->n_train + o->n_test;
  double *phi = jade_alloc(n * 16 * sizeof(double) + 8), *logp = jade_alloc(n * sizeof(double) + 8);
  unsigned char *tail = jade_alloc(n + 8);
  if (!st && (!phi || !logp || !tail)) st = JADE_ERR_NOMEM;
  jade_sed_prior pr;
  jade_sed_prior_default(&pr);
  pr.kind = JADE_SED_PRIOR_DIFFUSION;
  pr.score = score;
  pr.ode = o->ode;
  double t0 = jade_time_now();
  if (!st) st = make_points(o, &pr, jade_sed_score_scale(score), n, phi, tail);
  if (!st) st = label_points(o, &pr, cache, n, phi, logp, &rep->label_seconds_per_point);
  rep->seconds_labels = jade_time_now() - t0;
  t0 = jade_time_now();
  size_t ngr = o->grad_copies * o->n_train;
  double *pg = jade_alloc(ngr * 16 * sizeof(double) + 8), *dg = jade_alloc(ngr * 16 * sizeof(double) + 8);
  if (!st && (!pg || !dg)) st = JADE_ERR_NOMEM;
  if (!st && ngr) st = grad_points(o, score, o->n_train, phi, pg, dg);
  if (!st) st = jade_sed_surrogate_create(o->width, o->layers, o->seed, &s);
  jade_sed_surrogate_data data = {o->n_train, phi, logp, ngr, pg, dg};
  if (!st) {
    jade_sed_surrogate_fit_options fo = o->fit;
    fo.verbose = o->verbose;
    st = jade_sed_surrogate_fit(s, &data, jade_sed_score_shift(score), jade_sed_score_scale(score), &fo,
                                &rep->train_rms, &rep->n_fit);
  }
  rep->seconds_fit = jade_time_now() - t0;
  rep->n_train = o->n_train;
  rep->n_grad = ngr;
  if (!st && o->n_test) {
    /* the Gaussian alone: a fit of zero steps */
    jade_sed_surrogate_fit_options z = o->fit;
    z.steps = 0;
    st = jade_sed_surrogate_create(o->width, o->layers, o->seed, &g);
    if (!st) st = jade_sed_surrogate_fit(g, &data, jade_sed_score_shift(score), jade_sed_score_scale(score), &z, NULL, NULL);
    if (!st) st = held_out(s, g, o->n_test, phi + o->n_train * 16, logp + o->n_train, tail + o->n_train, rep);
    if (!st) st = held_out_grad(s, score, o->n_test, phi + o->n_train * 16, rep);
  }
  free(pg);
  free(dg);
  if (!st) {
    char desc[1024];
    snprintf(desc, sizeof desc,
             "surrogate of %s: %zu training points (tail fraction %g), PF-ODE labels DOPRI5 %g, %zu gradient points; "
             "held-out error sd %.4f nats (prior draws), %.4f (tails)",
             o->prior, o->n_train, o->tail_frac, o->ode.rtol, rep->n_grad, rep->prior_sd, rep->tail_sd);
    st = jade_sed_surrogate_save(s, o->out, desc);
  }
  jade_sed_surrogate_free(s);
  jade_sed_surrogate_free(g);
  jade_sed_score_free(score);
  free(phi);
  free(logp);
  free(tail);
  return st;
}
