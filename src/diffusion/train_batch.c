/* The micro-batch workers of a JADE training (train_internal.h): building the rows of a
 * micro-batch (augmentation, flow interpolation, noisy condition; spec/model.md
 * "Objective"), the loss with its gradient, one step's gradient over the workers, and the
 * validation loss. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_internal.h"

/* Build B rows: ids[b] = dataset index, rows[b] = row number addressing the random numbers
 * (global row in the step, or validation position). step < 0: no augmentation (validation);
 * else the flips / transposes / shifts enabled in [train] draw from that step's streams. */
static void prepare_rows(train_worker *c, int B, uint64_t normal_stream, long step) {
  const jade_train_config *tc = c->tc;
  const int P = c->P, n = c->npix, bins = c->bins;
  const size_t nx = c->nx, npix = (size_t)n * n;
  const uint64_t seed = tc->seed;
  const uint64_t flip_stream = step >= 0 && tc->flip ? TRAIN_STREAM(JADE_TRAIN_RNG_FLIP, step) : 0;
  const uint64_t rot_stream = step >= 0 && tc->rot90 ? TRAIN_STREAM(JADE_TRAIN_RNG_ROT, step) : 0;
  const uint64_t roll_stream = step >= 0 && tc->roll ? TRAIN_STREAM(JADE_TRAIN_RNG_ROLL, step) : 0;
  /* masks and noise maps: the step's stream, or fixed ones for validation */
  const uint64_t mask_stream = step >= 0 ? TRAIN_STREAM(JADE_TRAIN_RNG_MASK, step) : TRAIN_STREAM(JADE_TRAIN_RNG_VAL_MASK, 0);
  const double *theta_all = c->ds->theta.data;
  float inv_std[JADE_MAX_BINS], nrel[JADE_MAX_BINS];
  for (int k = 0; k < bins; k++) {
    inv_std[k] = (float)(1.0 / c->norm->map_std[k]);
    nrel[k] = (float)(c->norm->noise[k] / c->norm->map_std[k]);
  }
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; b++) {
    const uint64_t g = c->rows[b];
    float *x = c->x + (size_t)b * nx, *z = c->z + (size_t)b * nx, *cd = c->cond + (size_t)b * c->cnx;
    const float *k = jade_dataset_map(c->ds, c->ids[b], cd); /* cd: scratch until the noise below */
    const double *th = theta_all + (size_t)c->ids[b] * JADE_N_THETA;
    int fl = 0, fu = 0, tr = 0, dy = 0, dx = 0;
    if (flip_stream) {
      fl = jade_rng_uniform(seed, flip_stream, 2 * g) < 0.5;
      fu = jade_rng_uniform(seed, flip_stream, 2 * g + 1) < 0.5;
    }
    if (rot_stream) tr = jade_rng_uniform(seed, rot_stream, g) < 0.5;
    if (roll_stream) {
      dy = (int)(jade_rng_uniform(seed, roll_stream, 2 * g) * n) % n;
      dx = (int)(jade_rng_uniform(seed, roll_stream, 2 * g + 1) * n) % n;
    }
    if (!tr && !dy && !dx) {
      for (int ch = 0; ch < bins; ch++)
        for (int y = 0; y < n; y++) {
          const float *src = k + ch * npix + (size_t)(fu ? n - 1 - y : y) * n;
          float *dst = x + ch * npix + (size_t)y * n;
          if (fl)
            for (int i = 0; i < n; i++) dst[i] = src[n - 1 - i] * inv_std[ch];
          else
            for (int i = 0; i < n; i++) dst[i] = src[i] * inv_std[ch];
        }
    } else {
      /* x[y][i] = k[r][s]: (r, s) = (i, y) if transposed, then flipped, then shifted mod n */
      for (int ch = 0; ch < bins; ch++)
        for (int y = 0; y < n; y++)
          for (int i = 0; i < n; i++) {
            int r = tr ? i : y, s = tr ? y : i;
            r = (fu ? n - 1 - r : r) + dy;
            s = (fl ? n - 1 - s : s) + dx;
            r -= r >= n ? n : 0;
            s -= s >= n ? n : 0;
            x[ch * npix + (size_t)y * n + i] = k[ch * npix + (size_t)r * n + s] * inv_std[ch];
          }
    }
    /* normals of this row: [n_t | eps_theta (P) | eps_map (nx) | condition noise (nx)] */
    const uint64_t off = g * (uint64_t)(1 + P + 2 * nx);
    float nt, eps_th[64];
    jade_rng_normal_fill_f(seed, normal_stream, off, 1, &nt);
    jade_rng_normal_fill_f(seed, normal_stream, off + 1, (size_t)P, eps_th);
    jade_rng_normal_fill_f(seed, normal_stream, off + 1 + P, nx, z);
    jade_rng_normal_fill_f(seed, normal_stream, off + 1 + P + nx, nx, cd);
    const float t = jade_flow_time(&tc->flow, nt);
    c->t[b] = t;
    for (int i = 0; i < P; i++) {
      float tn = (float)((th[i] - c->norm->theta_mean[i]) / c->norm->theta_std[i]);
      c->th[(size_t)b * P + i] = tn;
      c->zth[(size_t)b * P + i] = t * tn + (1 - t) * eps_th[i];
    }
    for (size_t i = 0; i < nx; i++) z[i] = t * x[i] + (1 - t) * z[i];
    if (!c->norm->masked) {
      for (int ch = 0; ch < bins; ch++)
        for (size_t i = ch * npix; i < (ch + 1) * npix; i++) cd[i] = x[i] + nrel[ch] * cd[i];
    } else { /* jade/condition.h: m d / map_std, 1 - m, m ln(sigma / noise), noise sigma_i e^lnr */
      float *mask = c->mask_buf + (size_t)b * 2 * npix, *lnr = mask + npix;
      jade_random_mask_noise(&c->masks, n, seed, mask_stream, g * JADE_MASK_DRAWS, mask, lnr);
      for (int ch = 0; ch < bins; ch++)
        for (size_t p = 0; p < npix; p++) {
          const size_t i = ch * npix + p;
          const float m = mask[p];
          cd[i] = m * (x[i] + nrel[ch] * expf(lnr[p]) * cd[i]);
          cd[nx + i] = 1 - m;
          cd[2 * nx + i] = m * lnr[p];
        }
    }
  }
}

/* Forward + loss (+ backward if train) on the B prepared rows. sums += B * (loss, map, theta). */
static jade_status run_rows(train_worker *c, int B, const jade_model_run *run, double grad_scale, double sums[3]) {
  jade_status st = jade_model_forward(c->m, B, c->z, c->zth, c->t, c->cond, c->xhat, c->thhat, run);
  if (st) return st;
  double lx = 0, lth = 0;
  double loss = jade_flow_loss(&c->tc->flow, B, c->nx, c->P, c->x, c->xhat, c->z, c->th, c->thhat, c->zth, c->t,
                               run ? c->dx : NULL, run ? c->dth : NULL, &lx, &lth);
  /* theta_weight w: objective (sum_pix e^2 + w sum_par e^2) / (nx + P); w = 1 is the paper's */
  const double w = c->tc->theta_weight;
  loss += (w - 1) * c->P * lth / (double)(c->nx + (size_t)c->P);
  sums[0] += B * loss;
  sums[1] += B * lx;
  sums[2] += B * lth;
  if (!run) return JADE_OK;
  const float s = (float)grad_scale, sw = (float)(grad_scale * w);
  if (s != 1.0f)
    for (size_t i = 0; i < (size_t)B * c->nx; i++) c->dx[i] *= s;
  if (sw != 1.0f)
    for (size_t i = 0; i < (size_t)B * c->P; i++) c->dth[i] *= sw;
  return jade_model_backward(c->m, c->dx, c->dth);
}

jade_status train_worker_init(train_worker *c, const train_worker *proto, jade_model *m) {
  *c = *proto;
  c->m = m;
  size_t bx = (size_t)c->mb_cap * c->nx * sizeof(float), bp = (size_t)c->mb_cap * c->P * sizeof(float);
  size_t bc = (size_t)c->mb_cap * c->cnx * sizeof(float);
  c->x = jade_alloc(bx);
  c->z = jade_alloc(bx);
  c->cond = jade_alloc(bc);
  c->mask_buf = c->norm->masked ? jade_alloc((size_t)c->mb_cap * 2 * c->npix * c->npix * sizeof(float)) : NULL;
  c->xhat = jade_alloc(bx);
  c->dx = jade_alloc(bx);
  c->th = jade_alloc(bp);
  c->zth = jade_alloc(bp);
  c->thhat = jade_alloc(bp);
  c->dth = jade_alloc(bp);
  c->t = jade_alloc((size_t)c->mb_cap * sizeof(float));
  c->ids = malloc((size_t)c->mb_cap * sizeof(long));
  c->rows = malloc((size_t)c->mb_cap * sizeof(uint64_t));
  if (!c->x || !c->z || !c->cond || !c->xhat || !c->dx || !c->th || !c->zth || !c->thhat || !c->dth || !c->t || !c->ids || !c->rows ||
      (c->norm->masked && !c->mask_buf))
    return jade_error(JADE_ERR_NOMEM, "out of memory for micro-batch buffers (train.micro_batch = %ld)", c->mb_cap);
  return JADE_OK;
}

void train_worker_free(train_worker *c) {
  free(c->x);
  free(c->z);
  free(c->cond);
  free(c->xhat);
  free(c->dx);
  free(c->th);
  free(c->zth);
  free(c->thhat);
  free(c->dth);
  free(c->t);
  free(c->ids);
  free(c->rows);
  free(c->mask_buf);
}

void train_sync_workers(train_worker *w, int first, int nw, const float *weights, size_t n) {
  for (int i = first; i < nw; i++) {
    float *p = jade_model_params(w[i].m);
    if (p != weights) memcpy(p, weights, n * sizeof(float));
  }
}

jade_status train_validate(train_worker *w, int nw, const jade_dist *d, const long *val_idx, long n_eval, double out[3]) {
  double sums[3] = {0, 0, 0};
  const long cap = w[0].mb_cap, n_mb = (n_eval + cap - 1) / cap;
  const long mine = n_mb > d->rank ? (n_mb - d->rank + d->size - 1) / d->size : 0;
  int failed = 0;
  char msg[1024] = "";
  double *ws = calloc((size_t)nw * 3, sizeof *ws);
  if (!ws) return jade_error(JADE_ERR_NOMEM, "out of memory");
#pragma omp parallel num_threads(nw) if (nw > 1)
  {
    const int me = nw > 1 ? omp_get_thread_num() : 0;
    train_worker *c = &w[me];
    for (long j = me; j < mine; j += nw) {
      const long mb = d->rank + j * d->size, r0 = mb * cap, r1 = r0 + cap < n_eval ? r0 + cap : n_eval;
      const int B = (int)(r1 - r0);
      for (int b = 0; b < B; b++) {
        c->ids[b] = val_idx[r0 + b];
        c->rows[b] = (uint64_t)(r0 + b);
      }
      prepare_rows(c, B, TRAIN_STREAM(JADE_TRAIN_RNG_VAL, 0), -1);
      jade_status s2 = run_rows(c, B, NULL, 1.0, ws + 3 * me);
      if (s2) {
#pragma omp critical(jade_train_err)
        if (!failed) {
          failed = 1;
          snprintf(msg, sizeof msg, "%s", jade_last_error());
        }
        break;
      }
    }
  }
  for (int i = 0; i < nw; i++)
    for (int k = 0; k < 3; k++) sums[k] += ws[3 * i + k];
  free(ws);
  jade_status st = failed ? jade_error(JADE_ERR_NUMERIC, "%s", msg) : JADE_OK;
  if (jade_dist_max_int(d, st != JADE_OK)) return st ? st : jade_error(JADE_ERR_INTERNAL, "validation failed on another rank");
  if ((st = jade_dist_sum_double(d, sums, 3))) return st;
  for (int i = 0; i < 3; i++) out[i] = sums[i] / (double)n_eval;
  return JADE_OK;
}

jade_status train_step_gradients(train_worker *w, int nw, const jade_dist *d, const long *train_idx, long n_train,
                                 const long *eperm, long step, long pos, double sums[3]) {
  const jade_train_config *tc = w[0].tc;
  const long Bg = tc->batch, Bm = tc->micro_batch, n_micro = (Bg + Bm - 1) / Bm;
  const long mine = n_micro > d->rank ? (n_micro - d->rank + d->size - 1) / d->size : 0;
  const size_t n_par = jade_model_num_params(w[0].m);
  float *grads = jade_model_grads(w[0].m);
  train_sync_workers(w, 1, nw, jade_model_params(w[0].m), n_par);
  double ws[64][3];
  int failed = 0;
  char msg[1024] = "";
  memset(ws, 0, sizeof ws);
#pragma omp parallel num_threads(nw) if (nw > 1)
  {
    const int me = nw > 1 ? omp_get_thread_num() : 0;
    train_worker *c = &w[me];
    jade_model_zero_grad(c->m);
    for (long j = me; j < mine; j += nw) {
      const long mb = d->rank + j * d->size, r0 = mb * Bm, r1 = r0 + Bm < Bg ? r0 + Bm : Bg;
      const int B = (int)(r1 - r0);
      for (int b = 0; b < B; b++) {
        c->rows[b] = (uint64_t)(r0 + b);
        c->ids[b] = train_idx[eperm[(pos * Bg + r0 + b) % n_train]];
      }
      prepare_rows(c, B, TRAIN_STREAM(JADE_TRAIN_RNG_NORMAL, step), step);
      jade_model_run run = {1, tc->seed, TRAIN_STREAM(JADE_TRAIN_RNG_DROPOUT, (uint64_t)step * n_micro + mb)};
      jade_status s2 = run_rows(c, B, &run, (double)B / (double)Bg, ws[me]);
      if (s2) {
#pragma omp critical(jade_train_err)
        if (!failed) {
          failed = 1;
          snprintf(msg, sizeof msg, "%s", jade_last_error());
        }
        break;
      }
    }
  }
  jade_status st = failed ? jade_error(JADE_ERR_NUMERIC, "step %ld: %s", step + 1, msg) : JADE_OK;
  /* worker gradients summed in worker order (element-parallel) */
  for (int i = 1; i < nw && !st; i++) {
    const float *g = jade_model_grads(w[i].m);
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < n_par; k++) grads[k] += g[k];
  }
  for (int i = 0; i < nw; i++)
    for (int k = 0; k < 3; k++) sums[k] += ws[i][k];
  return st;
}
