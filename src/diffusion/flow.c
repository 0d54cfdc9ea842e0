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

/* ------------------------------------------------------------------ ODE solvers */
jade_status jade_solver_parse(const char *name, jade_solver *out) {
  if (!strcmp(name, "heun")) *out = JADE_SOLVER_HEUN;
  else if (!strcmp(name, "dpm2m")) *out = JADE_SOLVER_DPM2M;
  else return jade_error(JADE_ERR_INVALID, "solver '%s': expected heun or dpm2m", name);
  return JADE_OK;
}

const char *jade_solver_name(jade_solver s) { return s == JADE_SOLVER_DPM2M ? "dpm2m" : "heun"; }

int jade_solver_evals(jade_solver s, int n_steps) { return s == JADE_SOLVER_DPM2M ? n_steps : 2 * n_steps - 1; }

/* DPM-Solver++(2M) grid. Where the sampler clips velocities (1 - t < t_eps, jade_flow_velocity)
 * the flow is dz/dt = (D - z)/t_eps, i.e. dz/dtau = D - z in tau = t/t_eps: the same
 * exponential-integrator form as the data-prediction flow in lambda = log(t/(1 - t)), so the
 * solver keeps stepping there in tau. n_tail = max(1, n/8) evaluations (t_b = 1 - t_eps,
 * then tau uniform to 1) when t_b < 1/1.002, the other n - n_tail in lambda up to t_b;
 * without a clip (t_eps <= 0.002/1.002) all n in lambda up to k = (1 - t)/t = 0.002. */
static int dpm_tail(int n, float t_eps) {
  if (!((double)t_eps / (1.0 - (double)t_eps) > 0.002) || n < 2) return 0;
  return n / 8 > 1 ? n / 8 : 1;
}

void jade_solver_grid(jade_solver s, int n, float t_eps, double *t) {
  t[0] = 0.0;
  t[n] = 1.0;
  if (s == JADE_SOLVER_HEUN || n < 2) {
    for (int i = 1; i < n; i++) t[i] = (double)i / n;
    return;
  }
  const int nt = dpm_tail(n, t_eps), nm = nt ? n - nt : n - 1; /* t[1..nm] in lambda */
  const double k_end = nt ? (double)t_eps / (1.0 - (double)t_eps) : 0.002;
  // t_1 .. t_nm uniform in lambda = log(t/(1 - t)) = -log k from k = 80 to k_end
  // (Lu et al. 2022, "logSNR" time steps)
  const double l1 = log(1.0 / 80.0), l2 = log(1.0 / k_end);
  for (int i = 1; i <= nm; i++) {
    double f = nm == 1 ? 1.0 : (double)(i - 1) / (nm - 1);
    t[i] = 1.0 / (1.0 + exp(-(l1 + f * (l2 - l1))));
  }
  for (int j = 1; j < nt; j++) t[nm + j] = t[nm] + (1.0 - t[nm]) * j / nt; /* tail, uniform */
}

size_t jade_flow_work_floats(int B, size_t nx, int P) { return 6 * (size_t)B * (nx + (size_t)P); }

typedef struct {
  float *xh, *th, *v0x, *v0t, *ze, *tze; /* (B, nx) or (B, P) each */
} flow_work;

static flow_work work_split(float *w, int B, size_t nx, int P) {
  const size_t X = (size_t)B * nx, T = (size_t)B * P;
  flow_work f = {w, w + X, w + X + T, w + 2 * X + T, w + 2 * X + 2 * T, w + 3 * X + 2 * T};
  return f;
}

/* v = (x_hat - z)/max(1 - t, eps) of the denoiser at (z, theta, t), into vx, vt; the
 * denoiser's outputs go to w->xh, w->th first (vx, vt may be those). */
static jade_status velocity(jade_denoise_fn f, void *user, const flow_work *w, int B, size_t nx, int P,
                            const float *z, const float *th, float t, float t_eps, float *vx, float *vt) {
  jade_status st = f(user, B, z, th, t, w->xh, w->th);
  if (st) return st;
  jade_flow_velocity(vx, w->xh, z, (size_t)B * nx, t, t_eps);
  jade_flow_velocity(vt, w->th, th, (size_t)B * P, t, t_eps);
  return JADE_OK;
}

/* One step from t0 to t1, Heun if heun, else Euler (spec/model.md "Sampler"). */
static jade_status heun_step(jade_denoise_fn f, void *user, const flow_work *w, int B, size_t nx1, int P, float *z,
                             float *theta, float t0, float t1, int heun, float t_eps) {
  const size_t nx = (size_t)B * nx1, np = (size_t)B * P;
  const float dt = t1 - t0;
  jade_status st = velocity(f, user, w, B, nx1, P, z, theta, t0, t_eps, w->v0x, w->v0t);
  if (st) return st;
  if (!heun) {
    // Euler: z += dt v(z, t0)
    for (size_t i = 0; i < nx; i++) z[i] += dt * w->v0x[i];
    for (size_t i = 0; i < np; i++) theta[i] += dt * w->v0t[i];
    return JADE_OK;
  }
  // Heun: z_e = z + dt v0; z += dt (v0 + v(z_e, t1))/2
  for (size_t i = 0; i < nx; i++) w->ze[i] = z[i] + dt * w->v0x[i];
  for (size_t i = 0; i < np; i++) w->tze[i] = theta[i] + dt * w->v0t[i];
  // second velocity written in place over the denoiser outputs
  st = velocity(f, user, w, B, nx1, P, w->ze, w->tze, t1, t_eps, w->xh, w->th);
  if (st) return st;
  const float h = 0.5f * dt;
  for (size_t i = 0; i < nx; i++) z[i] += h * (w->v0x[i] + w->xh[i]);
  for (size_t i = 0; i < np; i++) theta[i] += h * (w->v0t[i] + w->th[i]);
  return JADE_OK;
}

/* DPM-Solver++(2M) with alpha = t, sigma = 1 - t (Lu et al. 2022, Algorithm 2): from t0 to
 * t1 with D the (extrapolated) data prediction,
 *   z1 = (sigma1/sigma0) z0 + alpha1 (1 - e^{-h}) D = ((1 - t1) z0 + (t1 - t0) D)/(1 - t0),
 * D = (1 + 1/(2r)) D_i - D_{i-1}/(2r), r = h_{i-1}/h_i (first order D = D_i after t = 0).
 * Where velocities are clipped (1 - t0 <= t_eps, the grid's tail) the flow is dz/dtau = D - z
 * and the step is z1 = e^{-h} z0 + (1 - e^{-h}) D with h = (t1 - t0)/t_eps, extrapolated the
 * same way (first order on the tail's first step). The last step to t = 1 without a tail
 * (t_eps tiny) follows the clipped flow with D held: z(1) = D + f (z - D), f = (1 - t_b)/(1 -
 * t_a) exp(-(1 - t_b)/t_eps), t_b = max(t_a, 1 - t_eps) (f -> 0 with t_eps: z = D). */
static jade_status dpm2m(jade_denoise_fn f, void *user, const flow_work *w, int n, int B, size_t nx1, int P,
                         float *z, float *theta, const double *t, double t_eps) {
  const size_t nx = (size_t)B * nx1, np = (size_t)B * P;
  float *Dx = w->xh, *Dt = w->th, *Px = w->v0x, *Pt = w->v0t; /* current and previous predictions */
  double h_prev = INFINITY;
  int prev_tail = 0;
  for (int i = 0; i < n; i++) {
    jade_status st = f(user, B, z, theta, (float)t[i], Dx, Dt);
    if (st) return st;
    const int tail = 1.0 - t[i] <= t_eps * (1.0 + 1e-9);
    float a, b;
    double h;
    if (tail) {
      h = (t[i + 1] - t[i]) / t_eps;
      a = (float)exp(-h);
      b = (float)-expm1(-h);
    } else if (i == n - 1) {
      const double ta = t[i], tb = ta > 1.0 - t_eps ? ta : 1.0 - t_eps;
      const float fr = (float)((1.0 - tb) / (1.0 - ta) * exp(-(1.0 - tb) / t_eps));
      for (size_t k = 0; k < nx; k++) z[k] = Dx[k] + fr * (z[k] - Dx[k]);
      for (size_t k = 0; k < np; k++) theta[k] = Dt[k] + fr * (theta[k] - Dt[k]);
      return JADE_OK;
    } else {
      const double lam = t[i] > 0.0 ? log(t[i] / (1.0 - t[i])) : -INFINITY;
      h = log(t[i + 1] / (1.0 - t[i + 1])) - lam;
      a = (float)((1.0 - t[i + 1]) / (1.0 - t[i]));
      b = (float)((t[i + 1] - t[i]) / (1.0 - t[i]));
    }
    if (!isfinite(h_prev) || tail != prev_tail) {
      for (size_t k = 0; k < nx; k++) z[k] = a * z[k] + b * Dx[k];
      for (size_t k = 0; k < np; k++) theta[k] = a * theta[k] + b * Dt[k];
    } else {
      const double r = h_prev / h;
      const float c1 = (float)(1.0 + 0.5 / r), c0 = (float)(0.5 / r);
      for (size_t k = 0; k < nx; k++) z[k] = a * z[k] + b * (c1 * Dx[k] - c0 * Px[k]);
      for (size_t k = 0; k < np; k++) theta[k] = a * theta[k] + b * (c1 * Dt[k] - c0 * Pt[k]);
    }
    h_prev = h; /* infinite after the first step (lambda_0 = -inf): the next step is first order */
    prev_tail = tail;
    float *tx = Px, *tt = Pt;
    Px = Dx, Pt = Dt, Dx = tx, Dt = tt;
  }
  return JADE_OK;
}

jade_status jade_flow_integrate(jade_denoise_fn f, void *user, jade_solver solver, int n_steps, float t_eps, int B,
                                size_t nx, int P, float *z, float *theta, float *work) {
  if (n_steps <= 0) return jade_error(JADE_ERR_INVALID, "sampler: %d steps", n_steps);
  flow_work w = work_split(work, B, nx, P);
  if (solver == JADE_SOLVER_DPM2M) {
    double *t = malloc(sizeof(double) * ((size_t)n_steps + 1));
    if (!t) return JADE_ERR_NOMEM;
    jade_solver_grid(solver, n_steps, t_eps, t);
    jade_status st = dpm2m(f, user, &w, n_steps, B, nx, P, z, theta, t, t_eps);
    free(t);
    return st;
  }
  // uniform grid t_i = i / n_steps; Heun steps, the last one Euler (t = 1 is data)
  for (int i = 0; i < n_steps; i++) {
    float t0 = (float)i / (float)n_steps, t1 = (float)(i + 1) / (float)n_steps;
    jade_status st = heun_step(f, user, &w, B, nx, P, z, theta, t0, t1, i < n_steps - 1, t_eps);
    if (st) return st;
  }
  return JADE_OK;
}

/* ------------------------------------------------------------------ network sampler */
struct jade_sampler {
  jade_model *m;
  int max_batch;
  size_t nx, nc;
  int P;
  float *work, *tb, *condb;
  const float *cond; /* condition of the current call (B, Ccond, H, W) */
  void (*hook)(int eval, int B, void *user);
  void *hook_user;
  int evals_done; /* network evaluations in the current run (the hook's step) */
};

void jade_sampler_set_eval_hook(jade_sampler *s, void (*hook)(int eval, int B, void *user), void *user) {
  if (!s) return;
  s->hook = hook;
  s->hook_user = user;
}

void jade_sampler_free(jade_sampler *s) {
  if (!s) return;
  free(s->work);
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
  s->work = jade_alloc(sizeof(float) * jade_flow_work_floats(max_batch, s->nx, s->P));
  s->tb = jade_alloc(sizeof(float) * B);
  s->condb = s->nc ? jade_alloc(sizeof(float) * B * s->nc) : NULL;
  if (!s->work || !s->tb || (s->nc && !s->condb)) {
    jade_sampler_free(s);
    return jade_error(JADE_ERR_NOMEM, "sampler: out of memory for batch %d", max_batch);
  }
  *out = s;
  return JADE_OK;
}

/* The network as a denoiser: x-prediction at time t for every state. */
static jade_status network_denoise(void *user, int B, const float *z, const float *th, float t, float *xh, float *thh) {
  jade_sampler *s = user;
  for (int b = 0; b < B; b++) s->tb[b] = t;
  jade_status st = jade_model_forward(s->m, B, z, th, s->tb, s->cond, xh, thh, NULL);
  if (!st && s->hook) s->hook(s->evals_done++, B, s->hook_user);
  return st;
}

jade_status jade_sampler_step(jade_sampler *s, int B, float *z, float *theta, const float *cond,
                              float t0, float t1, int heun, float t_eps) {
  if (B > s->max_batch)
    return jade_error(JADE_ERR_INVALID, "sampler: batch %d > %d", B, s->max_batch);
  s->cond = cond;
  flow_work w = work_split(s->work, B, s->nx, s->P);
  return heun_step(network_denoise, s, &w, B, s->nx, s->P, z, theta, t0, t1, heun, t_eps);
}

jade_status jade_sampler_run_solver(jade_sampler *s, int B, float *z, float *theta, const float *cond,
                                    int cond_shared, jade_solver solver, int n_steps, float t_eps) {
  if (B > s->max_batch)
    return jade_error(JADE_ERR_INVALID, "sampler: batch %d > %d", B, s->max_batch);
  s->cond = cond;
  if (cond && cond_shared && s->nc) {
    for (int b = 0; b < B; b++) memcpy(s->condb + (size_t)b * s->nc, cond, sizeof(float) * s->nc);
    s->cond = s->condb;
  }
  s->evals_done = 0;
  return jade_flow_integrate(network_denoise, s, solver, n_steps, t_eps, B, s->nx, s->P, z, theta, s->work);
}

jade_status jade_sampler_run(jade_sampler *s, int B, float *z, float *theta, const float *cond,
                             int cond_shared, int n_steps, float t_eps) {
  return jade_sampler_run_solver(s, B, z, theta, cond, cond_shared, JADE_SOLVER_HEUN, n_steps, t_eps);
}
