/* Multinomial No-U-Turn sampler with dual-averaging step size and windowed diagonal-metric
 * adaptation (see include/jade/mcmc.h for the references).
 *
 * Notation (Betancourt 2017, App. A): H(q, p) = -log pi(q) + p^T M^-1 p / 2 with diagonal
 * M^-1 = inv_metric; p# = M^-1 p ("sharp" momentum); rho = sum of p over a (sub)trajectory.
 * Generalised U-turn criterion of a trajectory with end momenta p-, p+:
 * p-#.rho > 0 and p+#.rho > 0. */
#include "jade/mcmc.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Random-number index layout inside the chain's Philox stream: (iteration << 40) | offset,
 * with momentum normals at offsets [0, d), tree uniforms from 2^38, step-size heuristic
 * normals from 2^39. Iteration 2^24 - 1 is reserved for the random initial point. */
#define ITER_SHIFT 40
#define MAX_ITER ((1L << 24) - 1)
#define OFF_UNIFORM (UINT64_C(1) << 38)
#define OFF_HEURISTIC (UINT64_C(1) << 39)
#define MAX_DIM (UINT64_C(1) << 32)

typedef struct {
  double *q, *p, *g;
  double logp;
} phase_point;

typedef struct {
  double *q, *g;
  double logp, H;
} proposal;

/* Buffers of one recursion level of build_tree (depth k uses level k). */
typedef struct {
  double *p_init_end, *p_final_beg, *rho_init, *rho_final;
  proposal prop;
} level_ws;

struct jade_nuts_chain {
  size_t d;
  jade_nuts_config cfg;
  uint64_t seed, chain_id;
  long iter;         /* completed iterations */
  int have_grad;     /* logp and grad are valid at x */
  int init_random;   /* x0 was NULL: draw uniform(-2, 2) starting points */
  int step_pending;  /* run the step-size heuristic before the next iteration */
  double logp, eps;
  double *x, *grad, *inv_metric;
  /* dual averaging (Hoffman & Gelman 2014, eq. 6) */
  double da_mu, da_sbar, da_xbar;
  long da_count;
  /* metric windows (effective buffer sizes, current slow window) */
  int win_active;
  long win_init, win_term, win_base, win_size, win_next;
  /* Welford accumulators of the current slow window */
  long wf_n;
  double *wf_mean, *wf_m2;
  jade_nuts_totals tot;

  /* workspace, not serialised */
  double *mem;
  phase_point fwd, bck;
  proposal sample, prop;
  double *rho, *rho_fwd, *rho_bck;
  double *p_fwd_bck, *p_fwd_fwd, *p_bck_fwd, *p_bck_bck;
  level_ws *lv;
};

/* ----------------------------------------------------------------------- configuration */

void jade_nuts_config_default(jade_nuts_config *cfg) {
  cfg->n_warmup = 1000;
  cfg->max_depth = 10;
  cfg->max_energy_error = 1000.0;
  cfg->step_size = 1.0;
  cfg->adapt_step = 1;
  cfg->adapt_metric = 1;
  cfg->target_accept = 0.8;
  cfg->gamma = 0.05;
  cfg->t0 = 10.0;
  cfg->kappa = 0.75;
  cfg->init_buffer = 75;
  cfg->term_buffer = 50;
  cfg->base_window = 25;
}

jade_status jade_nuts_config_check(const jade_nuts_config *c) {
  if (!c) return jade_error(JADE_ERR_INVALID, "nuts: NULL config");
  if (c->n_warmup < 0 || c->n_warmup >= MAX_ITER)
    return jade_error(JADE_ERR_INVALID, "nuts: n_warmup %ld out of range [0, %ld)", c->n_warmup,
                      MAX_ITER);
  if (c->max_depth < 1 || c->max_depth > 30)
    return jade_error(JADE_ERR_INVALID, "nuts: max_depth %d out of range 1..30", c->max_depth);
  if (!(c->max_energy_error > 0))
    return jade_error(JADE_ERR_INVALID, "nuts: max_energy_error %g must be > 0",
                      c->max_energy_error);
  if (!(c->step_size > 0) || !isfinite(c->step_size))
    return jade_error(JADE_ERR_INVALID, "nuts: step_size %g must be finite and > 0",
                      c->step_size);
  if (!(c->target_accept > 0 && c->target_accept < 1))
    return jade_error(JADE_ERR_INVALID, "nuts: target_accept %g must be in (0, 1)",
                      c->target_accept);
  if (!(c->gamma > 0) || !(c->t0 >= 0) || !(c->kappa > 0 && c->kappa <= 1))
    return jade_error(JADE_ERR_INVALID,
                      "nuts: dual averaging needs gamma > 0, t0 >= 0, 0 < kappa <= 1 (got %g, "
                      "%g, %g)",
                      c->gamma, c->t0, c->kappa);
  if (c->init_buffer < 0 || c->term_buffer < 0 || c->base_window < 1)
    return jade_error(JADE_ERR_INVALID,
                      "nuts: windows need init_buffer >= 0, term_buffer >= 0, base_window >= 1 "
                      "(got %ld, %ld, %ld)",
                      c->init_buffer, c->term_buffer, c->base_window);
  return JADE_OK;
}

/* Stan's windowed_adaptation::set_window_params and restart. */
static void windows_setup(const jade_nuts_config *cfg, int *active, long *init, long *term,
                          long *base, long *size, long *next) {
  long nw = cfg->n_warmup;
  *init = cfg->init_buffer;
  *term = cfg->term_buffer;
  *base = cfg->base_window;
  *active = cfg->adapt_metric && nw >= 20;
  if (*active && *init + *base + *term > nw) {
    *init = (long)(0.15 * (double)nw);
    *term = (long)(0.1 * (double)nw);
    *base = nw - (*init + *term);
  }
  *size = *base;
  *next = *init + *size - 1;
}

static int window_contains(long i, long nw, int active, long init, long term) {
  return active && i >= init && i < nw - term && i != nw;
}

static int window_ends(long i, long nw, int active, long next) {
  return active && i == next && i != nw;
}

/* After a slow window ends at iteration i: double the window, and stretch the next one to
 * the terminal buffer if the one after it would not fit. */
static void window_advance(long i, long nw, long term, long *size, long *next) {
  long last = nw - term - 1;
  if (*next == last) return;
  *size *= 2;
  *next = i + *size;
  if (*next != last && *next + 2 * *size >= nw - term) *next = last;
}

int jade_nuts_metric_windows(const jade_nuts_config *cfg, long *ends, int max) {
  int active;
  long init, term, base, size, next;
  windows_setup(cfg, &active, &init, &term, &base, &size, &next);
  int count = 0;
  for (long i = 0; i < cfg->n_warmup; i++) {
    if (window_ends(i, cfg->n_warmup, active, next)) {
      if (ends && count < max) ends[count] = i;
      count++;
      window_advance(i, cfg->n_warmup, term, &size, &next);
    }
  }
  return count;
}

/* ------------------------------------------------------------------------- chain state */

static jade_status chain_alloc(jade_nuts_chain **out, size_t d, const jade_nuts_config *cfg) {
  *out = NULL;
  jade_nuts_chain *c = jade_calloc(1, sizeof *c);
  if (!c) return JADE_ERR_NOMEM;
  c->d = d;
  c->cfg = *cfg;
  int depth = cfg->max_depth;
  /* state: x, grad, inv_metric, wf_mean, wf_m2 (5); workspace: fwd/bck q,p,g (6),
   * sample/prop q,g (4), rho x3, p x4 (7), 6 per level. */
  size_t nvec = 5 + 6 + 4 + 7 + 6 * (size_t)depth;
  if (d > SIZE_MAX / sizeof(double) / nvec) {
    free(c);
    return jade_error(JADE_ERR_NOMEM, "nuts: dimension %zu too large", d);
  }
  c->mem = jade_calloc(nvec * d, sizeof(double));
  c->lv = jade_calloc((size_t)depth, sizeof(level_ws));
  if (!c->mem || !c->lv) {
    free(c->mem);
    free(c->lv);
    free(c);
    return JADE_ERR_NOMEM;
  }
  double *p = c->mem;
#define TAKE(ptr) \
  do {            \
    (ptr) = p;    \
    p += d;       \
  } while (0)
  TAKE(c->x);
  TAKE(c->grad);
  TAKE(c->inv_metric);
  TAKE(c->wf_mean);
  TAKE(c->wf_m2);
  TAKE(c->fwd.q);
  TAKE(c->fwd.p);
  TAKE(c->fwd.g);
  TAKE(c->bck.q);
  TAKE(c->bck.p);
  TAKE(c->bck.g);
  TAKE(c->sample.q);
  TAKE(c->sample.g);
  TAKE(c->prop.q);
  TAKE(c->prop.g);
  TAKE(c->rho);
  TAKE(c->rho_fwd);
  TAKE(c->rho_bck);
  TAKE(c->p_fwd_bck);
  TAKE(c->p_fwd_fwd);
  TAKE(c->p_bck_fwd);
  TAKE(c->p_bck_bck);
  for (int k = 0; k < depth; k++) {
    TAKE(c->lv[k].p_init_end);
    TAKE(c->lv[k].p_final_beg);
    TAKE(c->lv[k].rho_init);
    TAKE(c->lv[k].rho_final);
    TAKE(c->lv[k].prop.q);
    TAKE(c->lv[k].prop.g);
  }
#undef TAKE
  *out = c;
  return JADE_OK;
}

jade_status jade_nuts_chain_create(jade_nuts_chain **out, size_t dim, const jade_nuts_config *cfg,
                                   uint64_t seed, uint64_t chain_id, const double *x0,
                                   const double *inv_metric0) {
  if (!out) return jade_error(JADE_ERR_INVALID, "nuts: NULL output pointer");
  *out = NULL;
  if (dim < 1 || (uint64_t)dim > MAX_DIM)
    return jade_error(JADE_ERR_INVALID, "nuts: dimension %zu out of range 1..2^32", dim);
  if (chain_id > UINT64_C(0xFFFFFFFFFFFF))
    return jade_error(JADE_ERR_INVALID, "nuts: chain id %llu exceeds 48 bits",
                      (unsigned long long)chain_id);
  jade_status st = jade_nuts_config_check(cfg);
  if (st) return st;
  if (inv_metric0)
    for (size_t i = 0; i < dim; i++)
      if (!(inv_metric0[i] > 0) || !isfinite(inv_metric0[i]))
        return jade_error(JADE_ERR_INVALID, "nuts: inverse metric[%zu] = %g must be finite > 0",
                          i, inv_metric0[i]);
  if (x0)
    for (size_t i = 0; i < dim; i++)
      if (!isfinite(x0[i]))
        return jade_error(JADE_ERR_INVALID, "nuts: initial position[%zu] is not finite", i);
  jade_nuts_chain *c;
  st = chain_alloc(&c, dim, cfg);
  if (st) return st;
  c->seed = seed;
  c->chain_id = chain_id;
  c->init_random = x0 == NULL;
  for (size_t i = 0; i < dim; i++) {
    c->x[i] = x0 ? x0[i] : 0.0;
    c->inv_metric[i] = inv_metric0 ? inv_metric0[i] : 1.0;
  }
  c->eps = cfg->step_size;
  c->step_pending = cfg->adapt_step && cfg->n_warmup > 0;
  c->da_mu = log(10.0 * c->eps);
  windows_setup(cfg, &c->win_active, &c->win_init, &c->win_term, &c->win_base, &c->win_size,
                &c->win_next);
  *out = c;
  return JADE_OK;
}

void jade_nuts_chain_free(jade_nuts_chain *c) {
  if (!c) return;
  free(c->mem);
  free(c->lv);
  free(c);
}

size_t jade_nuts_chain_dim(const jade_nuts_chain *c) { return c->d; }
long jade_nuts_chain_iteration(const jade_nuts_chain *c) { return c->iter; }
const double *jade_nuts_chain_position(const jade_nuts_chain *c) { return c->x; }
const double *jade_nuts_chain_inv_metric(const jade_nuts_chain *c) { return c->inv_metric; }
const jade_nuts_config *jade_nuts_chain_config(const jade_nuts_chain *c) { return &c->cfg; }
void jade_nuts_chain_totals(const jade_nuts_chain *c, jade_nuts_totals *out) { *out = c->tot; }

double jade_nuts_chain_step_size(const jade_nuts_chain *c) {
  /* at the end of warm-up the next iteration switches to exp(x_bar) */
  if (c->iter == c->cfg.n_warmup && c->cfg.adapt_step && c->cfg.n_warmup > 0 && c->da_count > 0)
    return exp(c->da_xbar);
  return c->eps;
}

/* ---------------------------------------------------------------------- Hamiltonian */

typedef struct {
  jade_nuts_chain *c;
  jade_logp_fn fn;
  void *ctx;
  uint64_t stream;
  uint64_t u_next;  /* next uniform index */
  double H0, eps;
  int divergent;
  int n_leapfrog;
  double sum_metro;
  jade_status st;   /* first target failure */
} tree_ctx;

/* The reductions below keep four partial sums (in a fixed order, so results do not depend
 * on threads) to break the floating-point add latency chain. */
static double kinetic(const double *m, const double *p, size_t d) {
  double k0 = 0.0, k1 = 0.0, k2 = 0.0, k3 = 0.0;
  size_t i = 0;
  for (; i + 4 <= d; i += 4) {
    k0 += m[i] * p[i] * p[i];
    k1 += m[i + 1] * p[i + 1] * p[i + 1];
    k2 += m[i + 2] * p[i + 2] * p[i + 2];
    k3 += m[i + 3] * p[i + 3] * p[i + 3];
  }
  for (; i < d; i++) k0 += m[i] * p[i] * p[i];
  return 0.5 * ((k0 + k1) + (k2 + k3));
}

/* Generalised U-turn criterion on rho (+ extra, when not NULL): p-# . r > 0 and p+# . r > 0
 * with p# = M^-1 p. */
static int criterion(const double *m, const double *p_minus, const double *p_plus,
                     const double *rho, const double *extra, size_t d) {
  double a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0};
  size_t i = 0;
  if (extra) {
    for (; i + 4 <= d; i += 4)
      for (int k = 0; k < 4; k++) {
        double r = m[i + k] * (rho[i + k] + extra[i + k]);
        a[k] += p_minus[i + k] * r;
        b[k] += p_plus[i + k] * r;
      }
    for (; i < d; i++) {
      double r = m[i] * (rho[i] + extra[i]);
      a[0] += p_minus[i] * r;
      b[0] += p_plus[i] * r;
    }
  } else {
    for (; i + 4 <= d; i += 4)
      for (int k = 0; k < 4; k++) {
        double r = m[i + k] * rho[i + k];
        a[k] += p_minus[i + k] * r;
        b[k] += p_plus[i + k] * r;
      }
    for (; i < d; i++) {
      double r = m[i] * rho[i];
      a[0] += p_minus[i] * r;
      b[0] += p_plus[i] * r;
    }
  }
  return (a[0] + a[1]) + (a[2] + a[3]) > 0 && (b[0] + b[1]) + (b[2] + b[3]) > 0;
}

/* Merging the two halves of a subtree (Stan >= 2.26 base_nuts): rho += rho_init + rho_final,
 * and in one pass the U-turn checks of the merged subtree (p_beg, p_end; rho_init +
 * rho_final) and across the halves (p_beg, p_final_beg; rho_init + p_final_beg) and
 * (p_init_end, p_end; rho_final + p_init_end). */
static int merge_checks(const double *m, const double *p_beg, const double *p_end,
                        const double *p_init_end, const double *p_final_beg,
                        const double *rho_init, const double *rho_final, double *rho, size_t d) {
  double acc[6][4] = {{0}};
  size_t i = 0;
#define MERGE_LANE(j, k)                                 \
  do {                                                   \
    double rs = rho_init[j] + rho_final[j];              \
    double e1 = m[j] * (rho_init[j] + p_final_beg[j]);   \
    double e2 = m[j] * (rho_final[j] + p_init_end[j]);   \
    double e3 = m[j] * rs;                               \
    acc[0][k] += p_beg[j] * e1;                          \
    acc[1][k] += p_final_beg[j] * e1;                    \
    acc[2][k] += p_init_end[j] * e2;                     \
    acc[3][k] += p_end[j] * e2;                          \
    acc[4][k] += p_beg[j] * e3;                          \
    acc[5][k] += p_end[j] * e3;                          \
    rho[j] += rs;                                        \
  } while (0)
  for (; i + 4 <= d; i += 4) {
    MERGE_LANE(i, 0);
    MERGE_LANE(i + 1, 1);
    MERGE_LANE(i + 2, 2);
    MERGE_LANE(i + 3, 3);
  }
  for (; i < d; i++) MERGE_LANE(i, 0);
#undef MERGE_LANE
  int ok = 1;
  for (int c = 0; c < 6; c++) ok &= (acc[c][0] + acc[c][1]) + (acc[c][2] + acc[c][3]) > 0;
  return ok;
}

static double log_sum_exp(double a, double b) {
  if (a == -INFINITY) return b;
  if (b == -INFINITY) return a;
  double mx = a > b ? a : b;
  return mx + log1p(exp(-fabs(a - b)));
}

static double tree_uniform(tree_ctx *t) {
  return jade_rng_uniform(t->c->seed, t->stream, t->u_next++);
}

static jade_status eval_target(jade_nuts_chain *c, jade_logp_fn fn, void *ctx, const double *q,
                               double *logp, double *g) {
  c->tot.grad_evals++;
  jade_status st = fn(ctx, q, logp, g);
  if (st) return jade_error_context(st, "nuts chain %llu, iteration %ld",
                                    (unsigned long long)c->chain_id, c->iter);
  if (isnan(*logp)) *logp = -INFINITY;
  return JADE_OK;
}

/* Leapfrog (velocity Verlet) step of size e: p += e/2 grad; q += e M^-1 p; p += e/2 grad. */
static jade_status leapfrog(jade_nuts_chain *c, jade_logp_fn fn, void *ctx, phase_point *z,
                            double e) {
  size_t d = c->d;
  const double *m = c->inv_metric;
  double h = 0.5 * e;
  for (size_t i = 0; i < d; i++) z->p[i] += h * z->g[i];
  for (size_t i = 0; i < d; i++) z->q[i] += e * m[i] * z->p[i];
  jade_status st = eval_target(c, fn, ctx, z->q, &z->logp, z->g);
  if (st) return st;
  for (size_t i = 0; i < d; i++) z->p[i] += h * z->g[i];
  return JADE_OK;
}

static double hamiltonian(const jade_nuts_chain *c, const phase_point *z) {
  double h = -z->logp + kinetic(c->inv_metric, z->p, c->d);
  return isnan(h) ? INFINITY : h;
}

static void prop_copy(proposal *dst, const proposal *src, size_t d) {
  memcpy(dst->q, src->q, d * sizeof(double));
  memcpy(dst->g, src->g, d * sizeof(double));
  dst->logp = src->logp;
  dst->H = src->H;
}

/* Builds a subtree of 2^depth leapfrog steps from z in direction sign (Betancourt 2017,
 * App. A.4.2; multinomial sampling inside the subtree). Returns 1 when the subtree is
 * valid (no divergence, no U-turn inside). propose: the state sampled from the subtree;
 * p_beg/p_end: momenta at its first/last states; rho += its summed momentum; lsw: log of its
 * summed weights exp(H0 - H). */
static int build_tree(tree_ctx *t, int depth, phase_point *z, proposal *propose, double *p_beg,
                      double *p_end, double *rho, int sign, double *lsw) {
  jade_nuts_chain *c = t->c;
  size_t d = c->d;
  const double *m = c->inv_metric;
  if (depth == 0) {
    jade_status st = leapfrog(c, t->fn, t->ctx, z, sign * t->eps);
    if (st) {
      t->st = st;
      return 0;
    }
    t->n_leapfrog++;
    double h = hamiltonian(c, z);
    if (h - t->H0 > c->cfg.max_energy_error) t->divergent = 1;
    *lsw = log_sum_exp(*lsw, t->H0 - h);
    t->sum_metro += (t->H0 - h > 0) ? 1.0 : exp(t->H0 - h);
    memcpy(propose->q, z->q, d * sizeof(double));
    memcpy(propose->g, z->g, d * sizeof(double));
    propose->logp = z->logp;
    propose->H = h;
    memcpy(p_beg, z->p, d * sizeof(double));
    memcpy(p_end, z->p, d * sizeof(double));
    for (size_t i = 0; i < d; i++) rho[i] += z->p[i];
    return !t->divergent;
  }
  level_ws *w = &c->lv[depth];
  double lsw_init = -INFINITY, lsw_final = -INFINITY;
  memset(w->rho_init, 0, d * sizeof(double));
  if (!build_tree(t, depth - 1, z, propose, p_beg, w->p_init_end, w->rho_init, sign, &lsw_init))
    return 0;
  memset(w->rho_final, 0, d * sizeof(double));
  if (!build_tree(t, depth - 1, z, &w->prop, w->p_final_beg, p_end, w->rho_final, sign,
                  &lsw_final))
    return 0;
  /* uniform progressive sampling: take the final half with probability w_final / w_sub */
  double lsw_sub = log_sum_exp(lsw_init, lsw_final);
  *lsw = log_sum_exp(*lsw, lsw_sub);
  if (lsw_final > lsw_sub || tree_uniform(t) < exp(lsw_final - lsw_sub))
    prop_copy(propose, &w->prop, d);
  return merge_checks(m, p_beg, p_end, w->p_init_end, w->p_final_beg, w->rho_init, w->rho_final,
                      rho, d);
}

/* One NUTS transition from the chain's current state (Betancourt 2017, App. A.4;
 * biased progressive sampling between the old trajectory and each new subtree). */
static jade_status transition(jade_nuts_chain *c, jade_logp_fn fn, void *ctx,
                              jade_nuts_stats *out) {
  size_t d = c->d;
  const double *m = c->inv_metric;
  tree_ctx t = {0};
  t.c = c;
  t.fn = fn;
  t.ctx = ctx;
  t.stream = JADE_STREAM(JADE_RNG_MCMC, c->chain_id);
  uint64_t base = (uint64_t)c->iter << ITER_SHIFT;
  t.u_next = base + OFF_UNIFORM;
  t.eps = c->eps;

  /* momentum p ~ N(0, M): p_i = n_i / sqrt(inv_metric_i) */
  jade_rng_normal_fill(c->seed, t.stream, base, d, c->fwd.p);
  for (size_t i = 0; i < d; i++) c->fwd.p[i] /= sqrt(m[i]);
  memcpy(c->fwd.q, c->x, d * sizeof(double));
  memcpy(c->fwd.g, c->grad, d * sizeof(double));
  c->fwd.logp = c->logp;
  memcpy(c->bck.q, c->x, d * sizeof(double));
  memcpy(c->bck.p, c->fwd.p, d * sizeof(double));
  memcpy(c->bck.g, c->grad, d * sizeof(double));
  c->bck.logp = c->logp;
  t.H0 = hamiltonian(c, &c->fwd);

  memcpy(c->sample.q, c->x, d * sizeof(double));
  memcpy(c->sample.g, c->grad, d * sizeof(double));
  c->sample.logp = c->logp;
  c->sample.H = t.H0;
  memcpy(c->rho, c->fwd.p, d * sizeof(double));
  memcpy(c->p_fwd_bck, c->fwd.p, d * sizeof(double));
  memcpy(c->p_fwd_fwd, c->fwd.p, d * sizeof(double));
  memcpy(c->p_bck_fwd, c->fwd.p, d * sizeof(double));
  memcpy(c->p_bck_bck, c->fwd.p, d * sizeof(double));

  double lsw = 0.0; /* log exp(H0 - H0) */
  int depth = 0;
  while (depth < c->cfg.max_depth) {
    double lsw_sub = -INFINITY;
    int valid;
    if (tree_uniform(&t) > 0.5) {
      /* extend forward: the old trajectory becomes the backward part */
      memcpy(c->rho_bck, c->rho, d * sizeof(double));
      memset(c->rho_fwd, 0, d * sizeof(double));
      memcpy(c->p_bck_fwd, c->p_fwd_fwd, d * sizeof(double));
      valid = build_tree(&t, depth, &c->fwd, &c->prop, c->p_fwd_bck, c->p_fwd_fwd, c->rho_fwd, 1,
                         &lsw_sub);
    } else {
      memcpy(c->rho_fwd, c->rho, d * sizeof(double));
      memset(c->rho_bck, 0, d * sizeof(double));
      memcpy(c->p_fwd_bck, c->p_bck_bck, d * sizeof(double));
      valid = build_tree(&t, depth, &c->bck, &c->prop, c->p_bck_fwd, c->p_bck_bck, c->rho_bck, -1,
                         &lsw_sub);
    }
    if (t.st) return t.st;
    if (!valid) break;
    depth++;
    if (lsw_sub > lsw || tree_uniform(&t) < exp(lsw_sub - lsw)) prop_copy(&c->sample, &c->prop, d);
    lsw = log_sum_exp(lsw, lsw_sub);
    for (size_t i = 0; i < d; i++) c->rho[i] = c->rho_bck[i] + c->rho_fwd[i];
    int persist = criterion(m, c->p_bck_bck, c->p_fwd_fwd, c->rho, NULL, d) &&
                  criterion(m, c->p_bck_bck, c->p_fwd_bck, c->rho_bck, c->p_fwd_bck, d) &&
                  criterion(m, c->p_bck_fwd, c->p_fwd_fwd, c->rho_fwd, c->p_bck_fwd, d);
    if (!persist) break;
  }

  memcpy(c->x, c->sample.q, d * sizeof(double));
  memcpy(c->grad, c->sample.g, d * sizeof(double));
  c->logp = c->sample.logp;
  out->step_size = t.eps;
  out->tree_depth = depth;
  out->n_leapfrog = t.n_leapfrog;
  out->divergent = t.divergent;
  out->accept_stat = t.sum_metro / (double)t.n_leapfrog;
  out->energy = c->sample.H;
  out->logp = c->logp;
  return JADE_OK;
}

/* ------------------------------------------------------------------------- adaptation */

/* Step-size heuristic (Hoffman & Gelman 2014, Alg. 4, as in Stan's init_stepsize): double or
 * halve eps until the one-step acceptance exp(H0 - H) crosses 0.8. Uses c->fwd as scratch;
 * sets c->eps only on success. */
static jade_status find_step_size(jade_nuts_chain *c, jade_logp_fn fn, void *ctx) {
  size_t d = c->d;
  double eps = c->eps;
  if (eps == 0 || eps > 1e7 || isnan(eps)) return JADE_OK;
  uint64_t stream = JADE_STREAM(JADE_RNG_MCMC, c->chain_id);
  uint64_t base = ((uint64_t)c->iter << ITER_SHIFT) + OFF_HEURISTIC;
  const double log08 = log(0.8);
  int direction = 0;
  for (uint64_t trial = 0;; trial++) {
    if ((trial + 1) * (uint64_t)d > OFF_HEURISTIC)
      return jade_error(JADE_ERR_NUMERIC, "nuts chain %llu: step-size heuristic did not settle",
                        (unsigned long long)c->chain_id);
    phase_point *z = &c->fwd;
    memcpy(z->q, c->x, d * sizeof(double));
    memcpy(z->g, c->grad, d * sizeof(double));
    z->logp = c->logp;
    jade_rng_normal_fill(c->seed, stream, base + trial * d, d, z->p);
    for (size_t i = 0; i < d; i++) z->p[i] /= sqrt(c->inv_metric[i]);
    double H0 = hamiltonian(c, z);
    jade_status st = leapfrog(c, fn, ctx, z, eps);
    if (st) return st;
    double dH = H0 - hamiltonian(c, z);
    if (trial == 0) {
      direction = dH > log08 ? 1 : -1;
      continue;
    }
    if (direction == 1 && !(dH > log08)) break;
    if (direction == -1 && !(dH < log08)) break;
    eps = direction == 1 ? 2.0 * eps : 0.5 * eps;
    if (eps > 1e7)
      return jade_error(JADE_ERR_NUMERIC,
                        "nuts chain %llu: step size grew beyond 1e7 (improper posterior?)",
                        (unsigned long long)c->chain_id);
    if (eps == 0)
      return jade_error(JADE_ERR_NUMERIC,
                        "nuts chain %llu: step size underflowed to 0 (gradient not finite?)",
                        (unsigned long long)c->chain_id);
  }
  c->eps = eps;
  return JADE_OK;
}

static void dual_averaging_restart(jade_nuts_chain *c) {
  c->da_mu = log(10.0 * c->eps);
  c->da_count = 0;
  c->da_sbar = 0.0;
  c->da_xbar = 0.0;
}

/* Hoffman & Gelman 2014, eq. (6): s_bar = running mean of (delta - alpha) with weight
 * 1/(t + t0); log eps = mu - sqrt(t)/gamma s_bar; x_bar averaged with weight t^-kappa. */
static void dual_averaging_learn(jade_nuts_chain *c, double accept) {
  const jade_nuts_config *g = &c->cfg;
  c->da_count++;
  double t = (double)c->da_count;
  if (accept > 1) accept = 1;
  double eta = 1.0 / (t + g->t0);
  c->da_sbar = (1.0 - eta) * c->da_sbar + eta * (g->target_accept - accept);
  double x = c->da_mu - c->da_sbar * sqrt(t) / g->gamma;
  double xw = pow(t, -g->kappa);
  c->da_xbar = (1.0 - xw) * c->da_xbar + xw * x;
  c->eps = exp(x);
}

/* Welford accumulation in slow windows; at a window end the regularised variance
 * n/(n+5) var + 1e-3 * 5/(n+5) becomes the inverse metric (Stan's diag_e_adaptation). */
static void metric_learn(jade_nuts_chain *c, long i) {
  size_t d = c->d;
  long nw = c->cfg.n_warmup;
  if (window_contains(i, nw, c->win_active, c->win_init, c->win_term)) {
    c->wf_n++;
    double n = (double)c->wf_n;
    for (size_t k = 0; k < d; k++) {
      double delta = c->x[k] - c->wf_mean[k];
      c->wf_mean[k] += delta / n;
      c->wf_m2[k] += delta * (c->x[k] - c->wf_mean[k]);
    }
  }
  if (window_ends(i, nw, c->win_active, c->win_next)) {
    window_advance(i, nw, c->win_term, &c->win_size, &c->win_next);
    double n = (double)c->wf_n;
    if (c->wf_n > 1) {
      for (size_t k = 0; k < d; k++) {
        double var = c->wf_m2[k] / (n - 1.0);
        c->inv_metric[k] = (n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0));
      }
    }
    c->wf_n = 0;
    memset(c->wf_mean, 0, d * sizeof(double));
    memset(c->wf_m2, 0, d * sizeof(double));
    if (c->cfg.adapt_step) c->step_pending = 1;
  }
}

/* ------------------------------------------------------------------------------ running */

static int all_finite(const double *g, size_t d) {
  for (size_t i = 0; i < d; i++)
    if (!isfinite(g[i])) return 0;
  return 1;
}

static jade_status chain_initialise(jade_nuts_chain *c, jade_logp_fn fn, void *ctx) {
  size_t d = c->d;
  if (!c->init_random) {
    jade_status st = eval_target(c, fn, ctx, c->x, &c->logp, c->grad);
    if (st) return st;
    if (!isfinite(c->logp) || !all_finite(c->grad, d))
      return jade_error(JADE_ERR_NUMERIC,
                        "nuts chain %llu: log density or gradient not finite at the initial point",
                        (unsigned long long)c->chain_id);
    c->have_grad = 1;
    return JADE_OK;
  }
  uint64_t stream = JADE_STREAM(JADE_RNG_MCMC, c->chain_id);
  uint64_t base = (uint64_t)MAX_ITER << ITER_SHIFT;
  for (uint64_t attempt = 0; attempt < 100; attempt++) {
    jade_rng_uniform_fill(c->seed, stream, base + attempt * d, d, c->x);
    for (size_t i = 0; i < d; i++) c->x[i] = 4.0 * c->x[i] - 2.0;
    jade_status st = eval_target(c, fn, ctx, c->x, &c->logp, c->grad);
    if (st) return st;
    if (isfinite(c->logp) && all_finite(c->grad, d)) {
      c->have_grad = 1;
      return JADE_OK;
    }
  }
  return jade_error(JADE_ERR_NUMERIC,
                    "nuts chain %llu: no finite log density in 100 uniform(-2, 2) initial points",
                    (unsigned long long)c->chain_id);
}

jade_status jade_nuts_run(jade_nuts_chain *c, jade_logp_fn fn, void *ctx, long n_iter,
                          double *draws, jade_nuts_stats *stats) {
  if (!c || !fn) return jade_error(JADE_ERR_INVALID, "nuts: NULL chain or target");
  if (n_iter < 0 || n_iter > MAX_ITER - c->iter)
    return jade_error(JADE_ERR_INVALID, "nuts: %ld more iterations exceed the limit of %ld",
                      n_iter, MAX_ITER);
  size_t d = c->d;
  const jade_nuts_config *g = &c->cfg;
  jade_status st;
  if (!c->have_grad && (st = chain_initialise(c, fn, ctx))) return st;
  for (long k = 0; k < n_iter; k++) {
    long i = c->iter;
    int warm = i < g->n_warmup;
    if (c->step_pending && warm) {
      if ((st = find_step_size(c, fn, ctx))) return st;
      dual_averaging_restart(c);
      c->step_pending = 0;
    }
    if (i == g->n_warmup && g->adapt_step && g->n_warmup > 0 && c->da_count > 0)
      c->eps = exp(c->da_xbar);
    jade_nuts_stats s;
    if ((st = transition(c, fn, ctx, &s))) return st;
    s.warmup = warm;
    if (s.divergent) {
      if (warm)
        c->tot.divergent_warmup++;
      else
        c->tot.divergent++;
    }
    if (warm) {
      if (g->adapt_step) dual_averaging_learn(c, s.accept_stat);
      metric_learn(c, i);
    }
    c->iter++;
    if (draws) memcpy(draws + (size_t)k * d, c->x, d * sizeof(double));
    if (stats) stats[k] = s;
  }
  return JADE_OK;
}

jade_status jade_nuts_run_chains(jade_nuts_chain *const *chains, int n_chains, jade_logp_fn fn,
                                 void *const *ctx, long n_iter, double *draws,
                                 jade_nuts_stats *stats, int n_threads) {
  if (!chains || n_chains < 1 || !fn)
    return jade_error(JADE_ERR_INVALID, "nuts: need at least one chain and a target");
  size_t d = chains[0]->d;
  for (int c = 0; c < n_chains; c++)
    if (!chains[c] || chains[c]->d != d)
      return jade_error(JADE_ERR_INVALID, "nuts: chain %d is NULL or of another dimension", c);
  if (n_iter < 0) return jade_error(JADE_ERR_INVALID, "nuts: negative iteration count");
  int nt = n_threads > 0 ? n_threads : omp_get_max_threads();
  if (nt > n_chains) nt = n_chains;
  jade_status *status = jade_calloc((size_t)n_chains, sizeof *status);
  char(*msg)[512] = jade_calloc((size_t)n_chains, sizeof *msg);
  if (!status || !msg) {
    free(status);
    free(msg);
    return JADE_ERR_NOMEM;
  }
  /* with one thread no team is formed, so a target may use OpenMP inside */
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1)
  for (int c = 0; c < n_chains; c++) {
    status[c] = jade_nuts_run(chains[c], fn, ctx ? ctx[c] : NULL, n_iter,
                              draws ? draws + (size_t)c * (size_t)n_iter * d : NULL,
                              stats ? stats + (size_t)c * (size_t)n_iter : NULL);
    if (status[c]) snprintf(msg[c], sizeof msg[c], "%s", jade_last_error());
  }
  jade_status st = JADE_OK;
  for (int c = 0; c < n_chains; c++)
    if (status[c]) {
      st = jade_error(status[c], "chain %d: %s", c, msg[c]);
      break;
    }
  free(status);
  free(msg);
  return st;
}

double jade_nuts_ebfmi(const jade_nuts_stats *stats, long n) {
  if (!stats || n < 3) return NAN;
  double mean = 0.0;
  for (long i = 0; i < n; i++) mean += stats[i].energy;
  mean /= (double)n;
  double num = 0.0, den = 0.0;
  for (long i = 0; i < n; i++) {
    double e = stats[i].energy - mean;
    den += e * e;
    if (i > 0) {
      double de = stats[i].energy - stats[i - 1].energy;
      num += de * de;
    }
  }
  return den > 0 ? num / den : NAN;
}

/* ------------------------------------------------------------------------ serialisation */

static const char SERIAL_MAGIC[8] = {'J', 'A', 'D', 'E', 'N', 'U', 'T', 'S'};
#define SERIAL_VERSION 1u
#define SERIAL_NSCALAR 40 /* 8-byte scalar slots after the 32-byte header */

/* FNV-1a 64 over bytes. */
static uint64_t fnv1a(const unsigned char *b, size_t n) {
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= UINT64_C(0x100000001b3);
  }
  return h;
}

size_t jade_nuts_chain_serial_size(const jade_nuts_chain *c) {
  return 32 + 8 * SERIAL_NSCALAR + 5 * c->d * sizeof(double) + 8;
}

typedef struct {
  unsigned char *p;
  const unsigned char *r;
} cursor;

static void put_u64(cursor *w, uint64_t v) {
  memcpy(w->p, &v, 8);
  w->p += 8;
}
static void put_i64(cursor *w, int64_t v) { put_u64(w, (uint64_t)v); }
static void put_f64(cursor *w, double v) {
  memcpy(w->p, &v, 8);
  w->p += 8;
}
static void put_vec(cursor *w, const double *v, size_t n) {
  memcpy(w->p, v, n * sizeof(double));
  w->p += n * sizeof(double);
}
static uint64_t get_u64(cursor *r) {
  uint64_t v;
  memcpy(&v, r->r, 8);
  r->r += 8;
  return v;
}
static int64_t get_i64(cursor *r) { return (int64_t)get_u64(r); }
static double get_f64(cursor *r) {
  double v;
  memcpy(&v, r->r, 8);
  r->r += 8;
  return v;
}
static void get_vec(cursor *r, double *v, size_t n) {
  memcpy(v, r->r, n * sizeof(double));
  r->r += n * sizeof(double);
}

jade_status jade_nuts_chain_serialize(const jade_nuts_chain *c, void *buf, size_t size) {
  if (!c || !buf) return jade_error(JADE_ERR_INVALID, "nuts: NULL chain or buffer");
  size_t need = jade_nuts_chain_serial_size(c);
  if (size < need)
    return jade_error(JADE_ERR_INVALID, "nuts: serialisation needs %zu bytes, got %zu", need,
                      size);
  unsigned char *b = buf;
  memset(b, 0, need);
  cursor w = {b, NULL};
  memcpy(w.p, SERIAL_MAGIC, 8);
  w.p += 8;
  put_u64(&w, SERIAL_VERSION);
  put_u64(&w, (uint64_t)c->d);
  put_u64(&w, (uint64_t)need);
  unsigned char *scalars = w.p;
  const jade_nuts_config *g = &c->cfg;
  put_i64(&w, g->n_warmup);
  put_i64(&w, g->max_depth);
  put_f64(&w, g->max_energy_error);
  put_f64(&w, g->step_size);
  put_i64(&w, g->adapt_step);
  put_i64(&w, g->adapt_metric);
  put_f64(&w, g->target_accept);
  put_f64(&w, g->gamma);
  put_f64(&w, g->t0);
  put_f64(&w, g->kappa);
  put_i64(&w, g->init_buffer);
  put_i64(&w, g->term_buffer);
  put_i64(&w, g->base_window);
  put_u64(&w, c->seed);
  put_u64(&w, c->chain_id);
  put_i64(&w, c->iter);
  put_i64(&w, c->have_grad);
  put_i64(&w, c->init_random);
  put_i64(&w, c->step_pending);
  put_f64(&w, c->logp);
  put_f64(&w, c->eps);
  put_f64(&w, c->da_mu);
  put_f64(&w, c->da_sbar);
  put_f64(&w, c->da_xbar);
  put_i64(&w, c->da_count);
  put_i64(&w, c->win_active);
  put_i64(&w, c->win_init);
  put_i64(&w, c->win_term);
  put_i64(&w, c->win_base);
  put_i64(&w, c->win_size);
  put_i64(&w, c->win_next);
  put_i64(&w, c->wf_n);
  put_u64(&w, c->tot.grad_evals);
  put_i64(&w, c->tot.divergent_warmup);
  put_i64(&w, c->tot.divergent);
  w.p = scalars + 8 * SERIAL_NSCALAR; /* remaining slots reserved (zero) */
  put_vec(&w, c->x, c->d);
  put_vec(&w, c->grad, c->d);
  put_vec(&w, c->inv_metric, c->d);
  put_vec(&w, c->wf_mean, c->d);
  put_vec(&w, c->wf_m2, c->d);
  put_u64(&w, fnv1a(b, need - 8));
  return JADE_OK;
}

jade_status jade_nuts_chain_deserialize(jade_nuts_chain **out, const void *buf, size_t size) {
  if (!out || !buf) return jade_error(JADE_ERR_INVALID, "nuts: NULL output or buffer");
  *out = NULL;
  const unsigned char *b = buf;
  if (size < 32 + 8 * SERIAL_NSCALAR + 8 || memcmp(b, SERIAL_MAGIC, 8) != 0)
    return jade_error(JADE_ERR_FORMAT, "nuts: not a serialised chain (bad magic or size)");
  cursor r = {NULL, b + 8};
  uint64_t version = get_u64(&r), d = get_u64(&r), total = get_u64(&r);
  if (version != SERIAL_VERSION)
    return jade_error(JADE_ERR_FORMAT, "nuts: serialised chain version %llu, expected %u",
                      (unsigned long long)version, SERIAL_VERSION);
  if (d < 1 || d > MAX_DIM || total != 32 + 8 * SERIAL_NSCALAR + 5 * d * 8 + 8 || total != size)
    return jade_error(JADE_ERR_FORMAT, "nuts: serialised chain of %zu bytes is truncated or "
                      "inconsistent (dimension %llu)",
                      size, (unsigned long long)d);
  uint64_t sum;
  memcpy(&sum, b + size - 8, 8);
  if (sum != fnv1a(b, size - 8))
    return jade_error(JADE_ERR_FORMAT, "nuts: serialised chain checksum mismatch (corrupt)");
  const unsigned char *scalars = r.r;
  jade_nuts_config g;
  g.n_warmup = (long)get_i64(&r);
  g.max_depth = (int)get_i64(&r);
  g.max_energy_error = get_f64(&r);
  g.step_size = get_f64(&r);
  g.adapt_step = (int)get_i64(&r);
  g.adapt_metric = (int)get_i64(&r);
  g.target_accept = get_f64(&r);
  g.gamma = get_f64(&r);
  g.t0 = get_f64(&r);
  g.kappa = get_f64(&r);
  g.init_buffer = (long)get_i64(&r);
  g.term_buffer = (long)get_i64(&r);
  g.base_window = (long)get_i64(&r);
  jade_status st = jade_nuts_config_check(&g);
  if (st) return jade_error_context(JADE_ERR_FORMAT, "serialised chain");
  jade_nuts_chain *c;
  if ((st = chain_alloc(&c, (size_t)d, &g))) return st;
  c->seed = get_u64(&r);
  c->chain_id = get_u64(&r);
  c->iter = (long)get_i64(&r);
  c->have_grad = (int)get_i64(&r);
  c->init_random = (int)get_i64(&r);
  c->step_pending = (int)get_i64(&r);
  c->logp = get_f64(&r);
  c->eps = get_f64(&r);
  c->da_mu = get_f64(&r);
  c->da_sbar = get_f64(&r);
  c->da_xbar = get_f64(&r);
  c->da_count = (long)get_i64(&r);
  c->win_active = (int)get_i64(&r);
  c->win_init = (long)get_i64(&r);
  c->win_term = (long)get_i64(&r);
  c->win_base = (long)get_i64(&r);
  c->win_size = (long)get_i64(&r);
  c->win_next = (long)get_i64(&r);
  c->wf_n = (long)get_i64(&r);
  c->tot.grad_evals = get_u64(&r);
  c->tot.divergent_warmup = (long)get_i64(&r);
  c->tot.divergent = (long)get_i64(&r);
  r.r = scalars + 8 * SERIAL_NSCALAR;
  get_vec(&r, c->x, c->d);
  get_vec(&r, c->grad, c->d);
  get_vec(&r, c->inv_metric, c->d);
  get_vec(&r, c->wf_mean, c->d);
  get_vec(&r, c->wf_m2, c->d);
  if (c->iter < 0 || c->iter > MAX_ITER || c->chain_id > UINT64_C(0xFFFFFFFFFFFF)) {
    jade_nuts_chain_free(c);
    return jade_error(JADE_ERR_FORMAT, "nuts: serialised chain has an invalid counter");
  }
  *out = c;
  return JADE_OK;
}

jade_status jade_nuts_chain_save(const jade_nuts_chain *c, const char *path) {
  if (!c || !path) return jade_error(JADE_ERR_INVALID, "nuts: NULL chain or path");
  size_t n = jade_nuts_chain_serial_size(c);
  void *buf = jade_alloc(n);
  if (!buf) return JADE_ERR_NOMEM;
  jade_status st = jade_nuts_chain_serialize(c, buf, n);
  if (st) {
    free(buf);
    return st;
  }
  size_t len = strlen(path) + 5;
  char *tmp = malloc(len);
  if (!tmp) {
    free(buf);
    return jade_error(JADE_ERR_NOMEM, "out of memory");
  }
  snprintf(tmp, len, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    st = jade_error(JADE_ERR_IO, "%s: cannot open for writing: %s", tmp, strerror(errno));
  } else {
    int ok = fwrite(buf, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    if (!ok)
      st = jade_error(JADE_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    else if (rename(tmp, path) != 0)
      st = jade_error(JADE_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (st) remove(tmp);
  }
  free(tmp);
  free(buf);
  return st;
}

jade_status jade_nuts_chain_load(jade_nuts_chain **out, const char *path) {
  if (!out || !path) return jade_error(JADE_ERR_INVALID, "nuts: NULL output or path");
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return jade_error(JADE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  jade_status st = JADE_OK;
  void *buf = NULL;
  long n = -1;
  if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
  if (n <= 0 || fseek(f, 0, SEEK_SET) != 0) {
    st = jade_error(JADE_ERR_IO, "%s: cannot determine size", path);
  } else if (!(buf = jade_alloc((size_t)n))) {
    st = JADE_ERR_NOMEM;
  } else if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
    st = jade_error(JADE_ERR_IO, "%s: short read", path);
  } else if ((st = jade_nuts_chain_deserialize(out, buf, (size_t)n))) {
    st = jade_error_context(st, "%s", path);
  }
  fclose(f);
  free(buf);
  return st;
}
