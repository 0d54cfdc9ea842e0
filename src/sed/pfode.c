/* Probability-flow ODE (Song et al. 2021, ICLR, eq. 13) for sampling and log-densities by the
 * instantaneous change of variables (Chen et al. 2018, NeurIPS, "Neural ODEs", Thm. 1; Song et al.
 * 2021 App. D.2): d log p / dt = -div(f~), f~ = a(t) x - g(t)^2/2 s(x, t).
 * Integrators: Dormand & Prince (1980, J. Comput. Appl. Math. 6:19) 5(4) with FSAL, the
 * step-size control of torchdiffeq's dopri5 (RMS error norm with tol = atol + rtol max(|y0|,
 * |y1|), factor min(10, max(0.2, 0.9 err^-1/5)), no shrinking after an accepted step, Hairer,
 * Norsett & Wanner 1993 II.4 initial step), one step size per point; or classical RK4 on a
 * uniform grid. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/sed.h"

void jade_pfode_options_default(jade_pfode_options *o) {
  o->method = JADE_ODE_DOPRI5;
  o->atol = 1e-5;
  o->rtol = 1e-5;
  o->max_steps = 100000;
  o->n_steps = 100;
  o->trace = JADE_TRACE_EXACT;
  o->seed = 0;
  o->batch = 256;
}

typedef struct {
  const jade_sde *sde;
  int d, D;           /* dimension and state size (d + 1 with the log-density) */
  int logp;           /* integrate the divergence */
  int K;              /* tangents */
  jade_score_field f;
  void *ctx;
  const jade_pfode_options *o;
  /* buffers for up to nb points */
  double *V, *score, *div, *tt, *xx;
  size_t *idx;
  uint64_t nfe;
} pf_ws;

/* Probe directions of point `gi` into V (K x d): identity rows or one Rademacher probe. */
static void fill_probe(const pf_ws *w, size_t gi, double *V) {
  int d = w->d;
  if (w->o->trace == JADE_TRACE_EXACT) {
    memset(V, 0, (size_t)d * d * sizeof(double));
    for (int j = 0; j < d; j++) V[(size_t)j * d + j] = 1.0;
  } else {
    for (int j = 0; j < d; j++)
      V[j] = jade_rng_uniform(w->o->seed, JADE_STREAM(JADE_RNG_SAMPLE, 0x5edu), (uint64_t)gi * d + j) < 0.5 ? -1.0 : 1.0;
  }
}

/* dy = rhs(t, y) for m points (state rows of D), global indices gidx. */
static jade_status rhs(pf_ws *w, size_t m, const size_t *gidx, const double *t, const double *y, double *dy) {
  int d = w->d, D = w->D, K = w->K;
  for (size_t i = 0; i < m; i++) {
    memcpy(w->xx + i * d, y + i * D, (size_t)d * sizeof(double));
    if (w->logp) fill_probe(w, gidx[i], w->V + i * (size_t)K * d);
  }
  jade_status s = w->f(w->ctx, m, gidx, t, w->xx, K, w->logp ? w->V : NULL, w->score, w->logp ? w->div : NULL);
  if (s) return s;
  w->nfe += m;
  for (size_t i = 0; i < m; i++) {
    double a = jade_sde_drift_coef(w->sde, t[i]), hg2 = 0.5 * jade_sde_g2(w->sde, t[i]);
    for (int j = 0; j < d; j++) dy[i * D + j] = a * y[i * D + j] - hg2 * w->score[i * d + j];
    if (w->logp) dy[i * D + d] = d * a - hg2 * w->div[i];
  }
  return JADE_OK;
}

/* Dormand-Prince tableau */
static const double C[7] = {0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1};
static const double A[7][6] = {{0},
                               {1.0 / 5},
                               {3.0 / 40, 9.0 / 40},
                               {44.0 / 45, -56.0 / 15, 32.0 / 9},
                               {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
                               {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
                               {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84}};
static const double E[7] = {71.0 / 57600, 0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525, -1.0 / 40};

/* Scratch of one integrate() call, allocated once for all its steps. */
typedef struct {
  double t1, dir;              /* end time; +1 forward, -1 backward */
  double *k[7];                /* stage derivatives (DOPRI5: k[0] rows per point, the others gathered) */
  double *ys, *ya, *errv;      /* trial state; DOPRI5: the active points' y gathered, k7 (FSAL) */
  double *tc, *hc, *ts, *tmpd; /* per point: time reached, step size, stage time, scratch */
  size_t *act, *gact;          /* DOPRI5: active points and their global indices */
} ode_buf;

/* Classical RK4 with n_steps uniform steps from t0 to t1 (the last step ends on t1 exactly). */
static jade_status rk4_solve(pf_ws *w, size_t nb, const size_t *gidx, double *y, double t0, ode_buf *b) {
  const size_t SD = nb * (size_t)w->D;
  double *const *k = b->k;
  double *ys = b->ys, *ts = b->ts, t1 = b->t1;
  jade_status st;
  int n = w->o->n_steps;
  double h = (t1 - t0) / n;
  for (int step = 0; step < n; step++) {
    double ta = t0 + step * h;
    for (size_t i = 0; i < nb; i++) ts[i] = ta;
    if ((st = rhs(w, nb, gidx, ts, y, k[0]))) return st;
    for (size_t q = 0; q < SD; q++) ys[q] = y[q] + 0.5 * h * k[0][q];
    for (size_t i = 0; i < nb; i++) ts[i] = ta + 0.5 * h;
    if ((st = rhs(w, nb, gidx, ts, ys, k[1]))) return st;
    for (size_t q = 0; q < SD; q++) ys[q] = y[q] + 0.5 * h * k[1][q];
    if ((st = rhs(w, nb, gidx, ts, ys, k[2]))) return st;
    for (size_t q = 0; q < SD; q++) ys[q] = y[q] + h * k[2][q];
    for (size_t i = 0; i < nb; i++) ts[i] = step == n - 1 ? t1 : ta + h;
    if ((st = rhs(w, nb, gidx, ts, ys, k[3]))) return st;
    for (size_t q = 0; q < SD; q++) y[q] += h / 6.0 * (k[0][q] + 2 * k[1][q] + 2 * k[2][q] + k[3][q]);
  }
  return JADE_OK;
}

/* DOPRI5: k1 into k[0] and the initial step size of every point into hc (Hairer et al. II.4,
 * as torchdiffeq); b->tc holds t0 for every point. */
static jade_status dopri5_initial_step(pf_ws *w, size_t nb, const size_t *gidx, const double *y, double t0, ode_buf *b) {
  int D = w->D;
  const jade_pfode_options *o = w->o;
  double *const *k = b->k;
  double *ys = b->ys, *hc = b->hc, *ts = b->ts, *tmpd = b->tmpd, dir = b->dir;
  const double span = fabs(b->t1 - t0);
  jade_status st;
  if ((st = rhs(w, nb, gidx, b->tc, y, k[0]))) return st;
  for (size_t i = 0; i < nb; i++) {
    const double *yi = y + i * D, *fi = k[0] + i * D;
    double d0 = 0, d1 = 0;
    for (int j = 0; j < D; j++) {
      double sc = o->atol + fabs(yi[j]) * o->rtol;
      d0 += (yi[j] / sc) * (yi[j] / sc);
      d1 += (fi[j] / sc) * (fi[j] / sc);
    }
    d0 = sqrt(d0 / D);
    d1 = sqrt(d1 / D);
    double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    hc[i] = h0;
    tmpd[i] = d1;
    for (int j = 0; j < D; j++) ys[i * D + j] = yi[j] + dir * h0 * fi[j];
    ts[i] = t0 + dir * h0;
  }
  if ((st = rhs(w, nb, gidx, ts, ys, k[1]))) return st;
  for (size_t i = 0; i < nb; i++) {
    const double *yi = y + i * D;
    double d2 = 0;
    for (int j = 0; j < D; j++) {
      double sc = o->atol + fabs(yi[j]) * o->rtol;
      double q = (k[1][i * D + j] - k[0][i * D + j]) / sc;
      d2 += q * q;
    }
    d2 = sqrt(d2 / D) / hc[i];
    double d1 = tmpd[i], h1;
    if (d1 <= 1e-15 && d2 <= 1e-15) h1 = fmax(1e-6, hc[i] * 1e-3);
    else h1 = pow(0.01 / fmax(d1, d2), 1.0 / 5.0);
    hc[i] = fmin(fmin(100 * hc[i], h1), span);
  }
  return JADE_OK;
}

/* One DOPRI5 step of the n_act active points: gathers their y and k1 (rows a), clips each step
 * to t1, and evaluates stages 2..6 into k[1..5] and k7 = f(t+h, ys) (FSAL) into errv, with ys
 * the 5th-order solution and ts its time. */
static jade_status dopri5_stages(pf_ws *w, size_t n_act, const size_t *gidx, const double *y, ode_buf *b) {
  int D = w->D;
  double *const *k = b->k;
  double *ys = b->ys, *ya = b->ya, *tc = b->tc, *hc = b->hc, *ts = b->ts, t1 = b->t1, dir = b->dir;
  const size_t *act = b->act;
  size_t *gact = b->gact;
  jade_status st;
  for (size_t a = 0; a < n_act; a++) {
    size_t i = act[a];
    gact[a] = gidx[i];
    double rem = fabs(t1 - tc[i]);
    if (hc[i] > rem) hc[i] = rem;
    memcpy(ya + a * D, y + i * D, (size_t)D * sizeof(double));
    /* k1 is kept per point in k[0] at row i (FSAL); gather it into k[6] */
    memcpy(k[6] + a * D, k[0] + i * D, (size_t)D * sizeof(double));
  }
  /* stages 2..6 into k[1..5] (rows a), stage 7 after */
  const double *K1 = k[6];
  for (int s = 1; s < 7; s++) {
    for (size_t a = 0; a < n_act; a++) {
      size_t i = act[a];
      double h = dir * hc[i];
      ts[a] = s == 6 ? tc[i] + h : tc[i] + C[s] * h;
      if (s == 6 && fabs(t1 - ts[a]) < 1e-14 * (1 + fabs(t1))) ts[a] = t1;
      for (int j = 0; j < D; j++) {
        double acc = A[s][0] * K1[a * D + j];
        for (int r = 1; r < s; r++) acc += A[s][r] * k[r][a * D + j];
        ys[a * D + j] = ya[a * D + j] + h * acc;
      }
    }
    if (s < 6) {
      if ((st = rhs(w, n_act, gact, ts, ys, k[s]))) return st;
    }
  }
  /* ys = 5th-order solution; k7 = f(t+h, ys) (FSAL) into errv */
  return rhs(w, n_act, gact, ts, ys, b->errv);
}

/* After dopri5_stages: the error norm of each active point, accept (y, t and the FSAL k1 in k[0]
 * row i) or reject, the next step size; the points still short of t1 stay in act[0..*n_act). */
static jade_status dopri5_update(pf_ws *w, size_t *n_act, const size_t *gidx, double *y, long *nsteps, ode_buf *b) {
  int D = w->D;
  const jade_pfode_options *o = w->o;
  double *const *k = b->k;
  double *ys = b->ys, *ya = b->ya, *errv = b->errv, *tc = b->tc, *hc = b->hc, *ts = b->ts;
  const double *K1 = k[6], t1 = b->t1, dir = b->dir;
  size_t *act = b->act, n_next = 0;
  for (size_t a = 0; a < *n_act; a++) {
    size_t i = act[a];
    double h = dir * hc[i];
    double err2 = 0;
    for (int j = 0; j < D; j++) {
      double e = E[0] * K1[a * D + j] + E[2] * k[2][a * D + j] + E[3] * k[3][a * D + j] +
                 E[4] * k[4][a * D + j] + E[5] * k[5][a * D + j] + E[6] * errv[a * D + j];
      e *= h;
      double tol = o->atol + o->rtol * fmax(fabs(ya[a * D + j]), fabs(ys[a * D + j]));
      err2 += (e / tol) * (e / tol);
    }
    double ratio = sqrt(err2 / D);
    if (!isfinite(ratio))
      return jade_error(JADE_ERR_NUMERIC, "PF-ODE: non-finite state at t = %g (point %zu)", tc[i], gidx[i]);
    int accept = ratio <= 1.0;
    if (accept) {
      tc[i] = ts[a];
      memcpy(y + i * D, ys + a * D, (size_t)D * sizeof(double));
      memcpy(k[0] + i * D, errv + a * D, (size_t)D * sizeof(double));
    }
    double factor = ratio == 0 ? 10.0 : fmin(10.0, fmax(accept ? 1.0 : 0.2, 0.9 * pow(ratio, -0.2)));
    hc[i] *= factor;
    if (++nsteps[i] > o->max_steps)
      return jade_error(JADE_ERR_NUMERIC, "PF-ODE: more than %ld steps (point %zu, t = %g)", o->max_steps, gidx[i],
                        tc[i]);
    if (!(accept && tc[i] == t1)) act[n_next++] = i;
  }
  /* k[0] rows of still-active points must not be overwritten by gathered data: they are
   * per-point rows indexed by i, while k[1..5] and errv are gathered (row a <= i). K1 lives
   * in k[6]. Rows a of k[0] are untouched by the stages, so FSAL data survive. */
  *n_act = n_next;
  return JADE_OK;
}

/* DOPRI5 from t0 to b->t1 with one adaptive step size per point, until every point is there. */
static jade_status dopri5_solve(pf_ws *w, size_t nb, const size_t *gidx, double *y, double t0, ode_buf *b) {
  jade_status st = dopri5_initial_step(w, nb, gidx, y, t0, b);
  if (st) return st;
  size_t n_act = nb;
  long *nsteps = (long *)b->tmpd; /* reuse: counts per point (stored in doubles' memory) */
  for (size_t i = 0; i < nb; i++) {
    b->act[i] = i;
    nsteps[i] = 0;
  }
  /* The active points' rows are gathered into the first n_act rows of the stage buffers. */
  while (n_act > 0) {
    if ((st = dopri5_stages(w, n_act, gidx, y, b))) return st;
    if ((st = dopri5_update(w, &n_act, gidx, y, nsteps, b))) return st;
  }
  return JADE_OK;
}

/* Integrates the nb states y (nb x D) from t0 to t1 (either direction). */
static jade_status integrate(pf_ws *w, size_t nb, const size_t *gidx, double *y, double t0, double t1) {
  size_t SD = nb * (size_t)w->D;
  double *buf = jade_alloc((10 * SD + 6 * nb) * sizeof(double) + 64);
  size_t *act = jade_alloc(2 * nb * sizeof(size_t) + 8);
  if (!buf || !act) {
    free(buf);
    free(act);
    return JADE_ERR_NOMEM;
  }
  ode_buf b = {.t1 = t1, .dir = t1 >= t0 ? 1.0 : -1.0, .act = act, .gact = act + nb};
  for (int s = 0; s < 7; s++) b.k[s] = buf + s * SD;
  b.ys = buf + 7 * SD;
  b.ya = buf + 8 * SD;
  b.errv = buf + 9 * SD;
  b.tc = buf + 10 * SD;
  b.hc = b.tc + nb;
  b.ts = b.hc + nb;
  b.tmpd = b.ts + nb;
  for (size_t i = 0; i < nb; i++) b.tc[i] = t0;
  jade_status st = w->o->method == JADE_ODE_RK4 ? rk4_solve(w, nb, gidx, y, t0, &b) : dopri5_solve(w, nb, gidx, y, t0, &b);
  free(buf);
  free(act);
  return st;
}

static jade_status pfode_run(const jade_sde *sde, int d, jade_score_field f, void *ctx, size_t n, const double *in,
                             const jade_pfode_options *o, int logp_mode, double *out, double *xT, uint64_t *nfe) {
  if (!o) return jade_error(JADE_ERR_INVALID, "PF-ODE: options missing");
  if (d < 1 || !(o->atol > 0) || !(o->rtol > 0) || o->batch < 1 || (o->method == JADE_ODE_RK4 && o->n_steps < 1))
    return jade_error(JADE_ERR_INVALID, "PF-ODE: bad options (d %d, atol %g, rtol %g, batch %zu, n_steps %d)", d,
                      o->atol, o->rtol, o->batch, o->n_steps);
  for (size_t q = 0; q < n * (size_t)d; q++)
    if (!isfinite(in[q])) return jade_error(JADE_ERR_NUMERIC, "PF-ODE: input point %zu is not finite", q / d);
  size_t B = o->batch, nbatch = (n + B - 1) / B;
  jade_status st = JADE_OK;
  char msg[1024] = "";
  uint64_t total = 0;
  int K = logp_mode ? (o->trace == JADE_TRACE_EXACT ? d : 1) : 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : total)
  for (size_t bi = 0; bi < nbatch; bi++) {
    jade_status s2;
#pragma omp atomic read
    s2 = st;
    if (s2) continue;
    size_t i0 = bi * B, nb = n - i0 < B ? n - i0 : B;
    int D = d + (logp_mode ? 1 : 0);
    pf_ws w = {.sde = sde, .d = d, .D = D, .logp = logp_mode, .K = K, .f = f, .ctx = ctx, .o = o};
    w.V = jade_alloc(nb * (size_t)(K ? K : 1) * d * sizeof(double));
    w.score = jade_alloc(nb * (size_t)d * sizeof(double));
    w.div = jade_alloc(nb * sizeof(double));
    w.xx = jade_alloc(nb * (size_t)d * sizeof(double));
    w.tt = NULL;
    size_t *gidx = jade_alloc(nb * sizeof(size_t));
    double *y = jade_alloc(nb * (size_t)D * sizeof(double));
    if (!w.V || !w.score || !w.div || !w.xx || !gidx || !y) {
      s2 = JADE_ERR_NOMEM;
    } else {
      for (size_t i = 0; i < nb; i++) {
        gidx[i] = i0 + i;
        memcpy(y + i * D, in + (i0 + i) * d, (size_t)d * sizeof(double));
        if (logp_mode) y[i * D + d] = 0.0;
      }
      if (logp_mode) s2 = integrate(&w, nb, gidx, y, sde->eps, sde->T);
      else s2 = integrate(&w, nb, gidx, y, sde->T, sde->eps);
      if (!s2) {
        double ps = jade_sde_prior_std(sde);
        for (size_t i = 0; i < nb; i++) {
          if (logp_mode) {
            /* log p = delta(T) + log N(x(T); 0, ps^2 I) */
            double q = 0;
            for (int j = 0; j < d; j++) q += y[i * D + j] * y[i * D + j];
            out[i0 + i] = y[i * D + d] - 0.5 * q / (ps * ps) - d * (log(ps) + 0.5 * log(2 * M_PI));
            if (xT) memcpy(xT + (i0 + i) * d, y + i * D, (size_t)d * sizeof(double));
          } else {
            memcpy(out + (i0 + i) * d, y + i * D, (size_t)d * sizeof(double));
          }
        }
      }
    }
    total += w.nfe;
    free(w.V);
    free(w.score);
    free(w.div);
    free(w.xx);
    free(gidx);
    free(y);
    if (s2) {
#pragma omp critical(jade_pfode_err)
      {
        if (!st) {
          st = s2;
          snprintf(msg, sizeof msg, "%s", s2 == JADE_ERR_NOMEM ? "PF-ODE: out of memory" : jade_last_error());
        }
      }
    }
  }
  if (nfe) *nfe = total;
  /* the error channel is per thread: repeat the message on the calling thread */
  if (st) return jade_error(st, "%s", msg);
  return JADE_OK;
}

jade_status jade_pfode_logp(const jade_sde *sde, int d, jade_score_field f, void *ctx, size_t n, const double *x,
                            const jade_pfode_options *o, double *logp, double *xT, uint64_t *nfe) {
  return pfode_run(sde, d, f, ctx, n, x, o, 1, logp, xT, nfe);
}

jade_status jade_pfode_sample(const jade_sde *sde, int d, jade_score_field f, void *ctx, size_t n, const double *z,
                              const jade_pfode_options *o, double *x, uint64_t *nfe) {
  return pfode_run(sde, d, f, ctx, n, z, o, 0, x, NULL, nfe);
}
