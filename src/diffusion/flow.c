/* Flow matching with x-prediction and a velocity loss (JiT; spec/model.md "Objective",
 * jade/flow.py FlowLoss with mixture = false) and the Heun probability-flow ODE sampler
 * (spec/model.md "Sampler"; JiT-style final Euler step). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jade/model.h"

void jade_flow_config_default(jade_flow_config *c) {
  c->mu = -0.8f;
  c->sigma = 0.8f;
  c->t_eps = 0.05f;
}

float jade_flow_time(const jade_flow_config *c, float n) {
  // t = sigmoid((n + mu) sigma)  (note: (n + mu) sigma, as in flow.py)
  double s = ((double)n + c->mu) * c->sigma;
  return (float)(1.0 / (1.0 + exp(-s)));
}

void jade_flow_interpolate(float *z, const float *x, const float *eps, const float *t, int B,
                           size_t n) {
  // z_t = t x + (1 - t) eps; t = 1 is data
  for (int b = 0; b < B; b++) {
    float tb = t[b];
    const float *xb = x + (size_t)b * n, *eb = eps + (size_t)b * n;
    float *zb = z + (size_t)b * n;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) zb[i] = tb * xb[i] + (1.0f - tb) * eb[i];
  }
}

void jade_flow_velocity(float *v, const float *x_hat, const float *z, size_t n, float t,
                        float t_eps) {
  float den = 1.0f - t > t_eps ? 1.0f - t : t_eps;
  float inv = 1.0f / den;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) v[i] = (x_hat[i] - z[i]) * inv;
}

double jade_flow_loss(const jade_flow_config *c, int B, size_t nx, int P, const float *x,
                      const float *x_hat, const float *z_x, const float *theta,
                      const float *theta_hat, const float *z_theta, const float *t,
                      float *dx_hat, float *dtheta_hat, double *loss_x, double *loss_theta) {
  // v - v_hat = (x - x_hat)/max(1-t, t_eps): the z terms cancel in the difference but are
  // kept explicit below to follow the definition. loss_b = (sum_pix e^2 + sum_par e^2) /
  // (nx + P); L = mean_b loss_b. dL/dx_hat = -2 e / (max(1-t,eps) (nx + P) B).
  double total = 0.0, lx = 0.0, lt = 0.0;
  const double norm = 1.0 / ((double)(nx + (size_t)P) * B);
  for (int b = 0; b < B; b++) {
    double den = 1.0 - t[b] > c->t_eps ? 1.0 - t[b] : c->t_eps;
    float inv = (float)(1.0 / den);
    const float *xb = x + (size_t)b * nx, *hb = x_hat + (size_t)b * nx, *zb = z_x + (size_t)b * nx;
    float *db = dx_hat ? dx_hat + (size_t)b * nx : NULL;
    double sx = 0.0;
    const float gscale = (float)(-2.0 * norm / den);
    for (size_t i = 0; i < nx; i++) {  // serial: the sum order is fixed
      float v = (xb[i] - zb[i]) * inv, vh = (hb[i] - zb[i]) * inv;
      float e = v - vh;
      sx += (double)e * e;
      if (db) db[i] = gscale * e;
    }
    double st = 0.0;
    for (int k = 0; k < P; k++) {
      size_t i = (size_t)b * P + k;
      float v = (theta[i] - z_theta[i]) * inv, vh = (theta_hat[i] - z_theta[i]) * inv;
      float e = v - vh;
      st += (double)e * e;
      if (dtheta_hat) dtheta_hat[i] = gscale * e;
    }
    total += (sx + st) / (double)(nx + (size_t)P);
    lx += sx / (double)nx;
    lt += st / (double)P;
  }
  if (loss_x) *loss_x = lx / B;
  if (loss_theta) *loss_theta = lt / B;
  return total / B;
}

/* ------------------------------------------------------------------ Heun sampler */
struct jade_sampler {
  jade_model *m;
  int max_batch;
  size_t nx, nc;
  int P;
  float *xh, *th, *v0x, *v0t, *ze, *tze, *tb, *condb;
  void (*hook)(int step, int evals, int B, void *user);
  void *hook_user;
};

void jade_sampler_set_step_hook(jade_sampler *s, void (*hook)(int step, int evals, int B, void *user), void *user) {
  if (!s) return;
  s->hook = hook;
  s->hook_user = user;
}

void jade_sampler_free(jade_sampler *s) {
  if (!s) return;
  free(s->xh);
  free(s->th);
  free(s->v0x);
  free(s->v0t);
  free(s->ze);
  free(s->tze);
  free(s->tb);
  free(s->condb);
  free(s);
}

jade_status jade_sampler_create(jade_sampler **out, jade_model *m, int max_batch) {
  *out = NULL;
  if (max_batch <= 0) return jade_error(JADE_ERR_INVALID, "sampler: batch %d", max_batch);
  const jade_model_config *c = jade_model_get_config(m);
  jade_sampler *s = jade_calloc(1, sizeof *s);
  if (!s) return JADE_ERR_NOMEM;
  s->m = m;
  s->max_batch = max_batch;
  s->nx = (size_t)c->channels * c->img_size * c->img_size;
  s->nc = (size_t)c->cond_channels * c->img_size * c->img_size;
  s->P = c->n_params;
  size_t B = (size_t)max_batch;
  s->xh = jade_alloc(sizeof(float) * B * s->nx);
  s->v0x = jade_alloc(sizeof(float) * B * s->nx);
  s->ze = jade_alloc(sizeof(float) * B * s->nx);
  s->th = jade_alloc(sizeof(float) * B * s->P);
  s->v0t = jade_alloc(sizeof(float) * B * s->P);
  s->tze = jade_alloc(sizeof(float) * B * s->P);
  s->tb = jade_alloc(sizeof(float) * B);
  s->condb = s->nc ? jade_alloc(sizeof(float) * B * s->nc) : NULL;
  if (!s->xh || !s->v0x || !s->ze || !s->th || !s->v0t || !s->tze || !s->tb || (s->nc && !s->condb)) {
    jade_sampler_free(s);
    return jade_error(JADE_ERR_NOMEM, "sampler: out of memory for batch %d", max_batch);
  }
  *out = s;
  return JADE_OK;
}

/* v (B, n) = (x_hat - z)/max(1 - t, eps) for maps and theta at time t. */
static jade_status velocity(jade_sampler *s, int B, const float *z, const float *th,
                            const float *cond, float t, float t_eps, float *vx, float *vt) {
  for (int b = 0; b < B; b++) s->tb[b] = t;
  jade_status st = jade_model_forward(s->m, B, z, th, s->tb, cond, s->xh, s->th, NULL);
  if (st) return st;
  jade_flow_velocity(vx, s->xh, z, (size_t)B * s->nx, t, t_eps);
  jade_flow_velocity(vt, s->th, th, (size_t)B * s->P, t, t_eps);
  return JADE_OK;
}

jade_status jade_sampler_step(jade_sampler *s, int B, float *z, float *theta, const float *cond,
                              float t0, float t1, int heun, float t_eps) {
  if (B > s->max_batch)
    return jade_error(JADE_ERR_INVALID, "sampler: batch %d > %d", B, s->max_batch);
  const size_t nx = (size_t)B * s->nx, np = (size_t)B * s->P;
  const float dt = t1 - t0;
  jade_status st = velocity(s, B, z, theta, cond, t0, t_eps, s->v0x, s->v0t);
  if (st) return st;
  if (!heun) {
    // Euler: z += dt v(z, t0)
    for (size_t i = 0; i < nx; i++) z[i] += dt * s->v0x[i];
    for (size_t i = 0; i < np; i++) theta[i] += dt * s->v0t[i];
    return JADE_OK;
  }
  // Heun: z_e = z + dt v0; z += dt (v0 + v(z_e, t1))/2
  for (size_t i = 0; i < nx; i++) s->ze[i] = z[i] + dt * s->v0x[i];
  for (size_t i = 0; i < np; i++) s->tze[i] = theta[i] + dt * s->v0t[i];
  // second velocity written in place over the model outputs
  st = velocity(s, B, s->ze, s->tze, cond, t1, t_eps, s->xh, s->th);
  if (st) return st;
  const float h = 0.5f * dt;
  for (size_t i = 0; i < nx; i++) z[i] += h * (s->v0x[i] + s->xh[i]);
  for (size_t i = 0; i < np; i++) theta[i] += h * (s->v0t[i] + s->th[i]);
  return JADE_OK;
}

jade_status jade_sampler_run(jade_sampler *s, int B, float *z, float *theta, const float *cond,
                             int cond_shared, int n_steps, float t_eps) {
  if (n_steps <= 0) return jade_error(JADE_ERR_INVALID, "sampler: %d steps", n_steps);
  if (B > s->max_batch)
    return jade_error(JADE_ERR_INVALID, "sampler: batch %d > %d", B, s->max_batch);
  const float *cb = cond;
  if (cond && cond_shared && s->nc) {
    for (int b = 0; b < B; b++) memcpy(s->condb + (size_t)b * s->nc, cond, sizeof(float) * s->nc);
    cb = s->condb;
  }
  // uniform grid t_i = i / n_steps; Heun steps, the last one Euler (t = 1 is data)
  for (int i = 0; i < n_steps; i++) {
    float t0 = (float)i / (float)n_steps, t1 = (float)(i + 1) / (float)n_steps;
    jade_status st = jade_sampler_step(s, B, z, theta, cb, t0, t1, i < n_steps - 1, t_eps);
    if (st) return st;
    if (s->hook) s->hook(i, i < n_steps - 1 ? 2 : 1, B, s->hook_user);
  }
  return JADE_OK;
}
