/* The JADE training loop (spec/model.md "Objective"; jade_paper_config.md section 5): the
 * data split, model and optimiser set-up, optimiser steps, validation, loss.csv and
 * checkpoints. Its parts: train_batch.c (micro-batches, loss, gradients), train_state.c
 * (identity, normalisation, training-state files, resume), trained_model.c (model files),
 * train_config.c ([model] / [train]).
 *
 * One optimiser step:
 *   rows j = 0..batch-1 of the global batch are training samples taken in the order of a
 *   seeded per-epoch permutation (drop_last: floor(n_train / batch) steps per epoch);
 *   each row: random left-right / up-down flip of its maps (same for all bins; optionally a
 *   random transpose, which with the flips gives all 8 symmetries of the square, and a random
 *   periodic shift: exact symmetries of the periodic, isotropic log-normal simulator), target
 *   x = kappa / map_std, theta_n = (theta - mean) / std, t = sigmoid((n + mu) sigma),
 *   z = t x + (1 - t) eps (maps and theta), condition c = (kappa + noise_i n') / map_std_i with
 *   fresh n' every step;
 *   the rows are processed in micro-batches (micro-batch k on rank k mod R; a rank's
 *   micro-batches spread over worker threads with their own model copies), gradients of the
 *   global-batch mean loss accumulated, summed over workers and ranks, clipped to grad_clip,
 *   AdamW step at lr(step) (linear warm-up then linear decay, optax.linear_schedule), EMA.
 * All random numbers are Philox draws addressed by (seed, purpose, step or epoch, row). */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jade/io.h"
#include "train_internal.h"

static int cmp_long(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return x < y ? -1 : x > y;
}

/* Everything one jade_train call owns. */
typedef struct {
  const jade_train_config *tc;
  const jade_train_options *o;
  const jade_dist *d;
  int root;
  jade_model_config mc;
  jade_dataset ds;
  uint64_t data_hash;
  jade_norm norm;
  char *ident;               /* the run's identity (train_identity + --init-from) */
  jade_trained_model *init;  /* --init-from model until its weights are copied */
  /* split: perm = [validation | training] indices, each sorted; eperm: epoch permutation */
  long N, n_val, n_train, n_eval, steps_per_epoch, n_micro;
  long *perm, *eperm, *val_idx, *train_idx;
  /* model, optimiser, EMA */
  jade_model *m;
  jade_adamw *opt;
  size_t n_par;
  float *ema, *backup;
  unsigned char *decay_mask;
  train_worker *w;
  int nw;
  /* progress */
  int resuming;
  long step;
  train_accum acc;
  double elapsed0;  /* training time before this call (loss.csv of a resumed run) */
  FILE *loss_f;
  char p_state[4300], p_model[4300], p_loss[4300], p_cfg[4300];
} trainer;

/* Open the dataset, check it against the configuration, and split it (seeded permutation
 * into sorted validation and training indices). */
static jade_status open_data(trainer *T) {
  const jade_train_options *o = T->o;
  const jade_model_config *mc = &T->mc;
  const jade_dataset *ds = &T->ds;
  const int masked = mc->cond_channels == 3 * mc->channels;
  if (ds->bins != mc->channels || ds->npix != mc->img_size || (mc->cond_channels != mc->channels && !masked) ||
      mc->n_params != JADE_N_THETA)
    return jade_error(JADE_ERR_INVALID, "%s: maps are %dx%d with %d bins but the configuration says n_pix = %d, n_bins = %d "
                      "(train with the dataset's own config.ini, or --set n_pix=%d n_bins=%d)",
                      o->data_dir, ds->npix, ds->npix, ds->bins, mc->img_size, mc->channels, ds->npix, ds->bins);
  const jade_train_config *tc = T->tc;
  if (!masked && (tc->mask_prob > 0 || tc->noise_ln_scale > 0 || tc->noise_ln_field > 0))
    return jade_error(JADE_ERR_CONFIG, "train.mask_prob / train.noise_ln_scale / train.noise_ln_field need model.condition = masked "
                      "(the condition channels that carry the mask and the noise map)");
  if (o->sim && (o->sim->geom.n_pix != ds->npix || o->sim->geom.n_bins != ds->bins))
    return jade_error(JADE_ERR_INVALID, "%s: dataset geometry does not match the configuration's n_pix / n_bins", o->data_dir);
  if (!(T->ident = train_identity(o->config_text ? o->config_text : ""))) return jade_error(JADE_ERR_NOMEM, "out of memory");
  jade_status st;
  if (o->init_from && (st = train_load_init_model(o->init_from, mc, ds, &T->init, &T->ident))) return st;

  T->N = ds->n;
  T->n_val = (long)floor(tc->val_fraction * (double)T->N + 0.5);
  if (tc->val_fraction > 0 && T->n_val == 0) T->n_val = 1;
  T->n_train = T->N - T->n_val;
  if (T->n_train < 1)
    return jade_error(JADE_ERR_INVALID, "%s: %ld simulations leave no training sample after the validation split", o->data_dir,
                      T->N);
  T->perm = malloc((size_t)T->N * sizeof *T->perm);
  T->eperm = malloc((size_t)T->n_train * sizeof *T->eperm);
  if (!T->perm || !T->eperm) return jade_error(JADE_ERR_NOMEM, "out of memory");
  train_permutation(T->N, tc->seed, TRAIN_STREAM(JADE_TRAIN_RNG_SPLIT, 0), T->perm);
  T->val_idx = T->perm;
  T->train_idx = T->perm + T->n_val;
  qsort(T->val_idx, (size_t)T->n_val, sizeof *T->val_idx, cmp_long);
  qsort(T->train_idx, (size_t)T->n_train, sizeof *T->train_idx, cmp_long);
  T->n_eval = T->n_val < tc->val_max ? T->n_val : tc->val_max;
  T->n_micro = (tc->batch + tc->micro_batch - 1) / tc->micro_batch;
  T->steps_per_epoch = T->n_train / tc->batch > 0 ? T->n_train / tc->batch : 1;
  return JADE_OK;
}

/* The model, AdamW (no weight decay on the tensors jade_decay_mask excludes), EMA buffer. */
static jade_status create_model(trainer *T) {
  const jade_train_config *tc = T->tc;
  jade_status st = jade_model_create(&T->m, &T->mc);
  if (st) return st;
  T->n_par = jade_model_num_params(T->m);
  jade_adamw_config ac = {(float)tc->lr_peak, (float)tc->beta1, (float)tc->beta2, (float)tc->adam_eps, (float)tc->weight_decay};
  if ((st = jade_adamw_create(&T->opt, T->n_par, &ac))) return st;
  int nt = jade_model_num_tensors(T->m);
  jade_tensor_info *ti = malloc((size_t)(nt ? nt : 1) * sizeof *ti);
  if (!ti) return jade_error(JADE_ERR_NOMEM, "out of memory");
  for (int i = 0; i < nt; i++) ti[i] = *jade_model_tensor(T->m, i);
  T->decay_mask = jade_decay_mask(ti, nt, T->n_par);
  free(ti);
  T->ema = jade_alloc(T->n_par * sizeof(float));
  T->backup = jade_alloc(T->n_par * sizeof(float));
  if (!T->decay_mask || !T->ema || !T->backup)
    return jade_error(JADE_ERR_NOMEM, "out of memory for %zu parameters", T->n_par);
  return JADE_OK;
}

/* The normalisation (computed on a resume too, to check the saved one: an edited state is
 * refused), then the weights: from the state (resume), the --init-from model, or the seeded
 * initialisation; the EMA starts at the weights. */
static jade_status restore(trainer *T) {
  jade_status st = train_compute_norm(T->tc, T->o, &T->ds, T->train_idx, T->n_train, &T->norm);
  if (st) return st;
  if (T->init) T->norm = T->init->norm; /* the network's units stay those it was trained in */
  T->norm.masked = T->mc.cond_channels == 3 * T->mc.channels;
  T->norm.noise_ln_max = T->norm.masked ? T->tc->noise_ln_scale + T->tc->noise_ln_field : 0;
  float *params = jade_model_params(T->m);
  if (T->resuming) {
    train_state_info info = {.data_hash = T->data_hash};
    if ((st = train_state_read(T->p_state, T->o->data_dir, &info, T->tc->steps, T->m, T->ema, T->opt, &T->norm, T->ident)))
      return st;
    T->step = info.step;
    T->acc = info.acc;
  } else {
    if (T->init) memcpy(params, jade_model_params(T->init->model), T->n_par * sizeof(float));
    else jade_model_init(T->m, T->tc->seed);
    memcpy(T->ema, params, T->n_par * sizeof(float));
  }
  jade_trained_model_free(T->init);
  T->init = NULL;
  return JADE_OK;
}

/* Rank 0: MODELDIR with config.ini and loss.csv (a resume keeps the rows up to its step),
 * opened for appending. Collective. */
static jade_status prepare_output(trainer *T) {
  const jade_train_options *o = T->o;
  jade_status st = JADE_OK;
  if (T->root) {
    st = jade_mkdir_p(o->out_dir);
    if (!st) st = jade_remove_temporaries(o->out_dir); /* of killed runs (only rank 0 writes here) */
    if (!st && !T->resuming) st = jade_write_file_atomic(T->p_cfg, o->config_text ? o->config_text : "");
    if (!st && !T->resuming) st = jade_write_file_atomic(T->p_loss, train_loss_header);
    if (!st && T->resuming) st = train_truncate_loss_csv(T->p_loss, T->step, &T->elapsed0);
    if (!st && !(T->loss_f = fopen(T->p_loss, "a"))) st = jade_error(JADE_ERR_IO, "%s: cannot append: %s", T->p_loss, strerror(errno));
  }
  if (jade_dist_max_int(T->d, st != JADE_OK) && !st) st = jade_error(JADE_ERR_IO, "rank 0 could not prepare %s", o->out_dir);
  return st;
}

/* Workers: this rank's micro-batches spread over OpenMP threads, each thread with its own
 * model copy (gradients summed in worker order); 1 worker = threads inside the network. */
static jade_status create_workers(trainer *T) {
  const jade_train_options *o = T->o;
  train_worker proto;
  memset(&proto, 0, sizeof proto);
  proto.tc = T->tc;
  proto.ds = &T->ds;
  proto.norm = &T->norm;
  proto.P = JADE_N_THETA;
  proto.npix = T->ds.npix;
  proto.bins = T->ds.bins;
  proto.nx = T->ds.nx;
  proto.cnx = (size_t)T->mc.cond_channels * T->ds.npix * T->ds.npix;
  proto.masks = (jade_mask_config){T->tc->mask_prob, T->tc->mask_max, T->tc->noise_ln_scale, T->tc->noise_ln_field};
  proto.mb_cap = T->tc->micro_batch;
  const long my_micro = T->n_micro > T->d->rank ? (T->n_micro - T->d->rank + T->d->size - 1) / T->d->size : 0;
  int nw = o->workers > 0 ? o->workers : omp_get_max_threads();
  if (o->workers <= 0 && T->n_par > 50000000) nw = 1; /* big models: no per-thread copies */
  if (nw > my_micro) nw = (int)my_micro;
  if (nw > 64) nw = 64;
  if (nw < 1) nw = 1;
  if (!(T->w = calloc((size_t)nw, sizeof *T->w))) return jade_error(JADE_ERR_NOMEM, "out of memory");
  T->nw = nw;
  jade_status st = JADE_OK;
  for (int i = 0; i < nw && !st; i++) {
    jade_model *mi = T->m;
    if (i > 0 && (st = jade_model_create(&mi, &T->mc))) break;
    st = train_worker_init(&T->w[i], &proto, mi);
    if (i > 0) T->w[i].m = mi; /* owned: freed below even on error */
  }
  return st;
}

static void print_start(const trainer *T) {
  const jade_train_config *tc = T->tc;
  const jade_dist *d = T->d;
  const long Bg = tc->batch;
  fprintf(stderr, "jade train: %ld training + %ld validation simulations of %dx%dx%d; model %.2fM parameters; batch %ld "
          "(micro %ld, %d rank%s x %d worker thread%s), %ld steps = %.1f epochs, matmul %s\n",
          T->n_train, T->n_val, T->ds.npix, T->ds.npix, T->ds.bins, T->n_par / 1e6, Bg, tc->micro_batch, d->size,
          d->size > 1 ? "s" : "", T->nw, T->nw > 1 ? "s" : "", tc->steps, (double)tc->steps / T->steps_per_epoch,
          jade_matmul_backend_name(jade_matmul_get_backend()));
  if (T->resuming) fprintf(stderr, "jade train: resuming %s at step %ld\n", T->o->out_dir, T->step);
  if (T->n_train < Bg) fprintf(stderr, "jade train: warning: batch %ld exceeds the %ld training samples (rows repeat)\n", Bg, T->n_train);
}

/* One optimiser step s: gradients over workers and ranks, clipping, AdamW at lr(s), EMA.
 * *loss, *lr receive the step's mean loss and learning rate; T->acc the running sums. */
static jade_status optimiser_step(trainer *T, long s, double *loss, double *lr) {
  const jade_train_config *tc = T->tc;
  const jade_dist *d = T->d;
  const long pos = s % T->steps_per_epoch, Bg = tc->batch;
  float *params = jade_model_params(T->m), *grads = jade_model_grads(T->m);
  double sums[3] = {0, 0, 0};
  jade_status st = train_step_gradients(T->w, T->nw, d, T->train_idx, T->n_train, T->eperm, s, pos, sums);
  if (jade_dist_max_int(d, st != JADE_OK))
    return st ? st : jade_error(JADE_ERR_INTERNAL, "step %ld failed on another rank", s + 1);
  if (d->size > 1 && ((st = jade_dist_sum_float(d, grads, T->n_par)) || (st = jade_dist_sum_double(d, sums, 3)))) return st;
  *loss = sums[0] / Bg;
  if (!isfinite(*loss))
    return jade_error(JADE_ERR_NUMERIC, "non-finite training loss at step %ld (lower train.lr_peak?); the last checkpoint in %s is intact",
                      s + 1, T->o->out_dir);
  const double gn = jade_clip_grad_norm(grads, T->n_par, tc->grad_clip);
  *lr = jade_lr_linear(s, tc->warmup, tc->steps, tc->lr_peak, tc->lr_end);
  jade_adamw_step(T->opt, params, grads, T->decay_mask, (float)*lr);
  T->step = s + 1;
  if (T->step <= tc->ema_start)
    memcpy(T->ema, params, T->n_par * sizeof(float));
  else
    jade_ema_update(T->ema, params, T->n_par, (float)tc->ema_decay);
  T->acc.n += 1;
  T->acc.loss += *loss;
  T->acc.lx += sums[1] / Bg;
  T->acc.lth += sums[2] / Bg;
  T->acc.gn += gn;
  return JADE_OK;
}

/* Validation losses of the live and the EMA weights (val, val_ema: loss, map, theta). */
static jade_status validate_both(trainer *T, double val[3], double val_ema[3]) {
  float *params = jade_model_params(T->m);
  train_sync_workers(T->w, 1, T->nw, params, T->n_par);
  jade_status st = train_validate(T->w, T->nw, T->d, T->val_idx, T->n_eval, val);
  if (st) return st;
  memcpy(T->backup, params, T->n_par * sizeof(float));
  train_sync_workers(T->w, 0, T->nw, T->ema, T->n_par);
  st = train_validate(T->w, T->nw, T->d, T->val_idx, T->n_eval, val_ema);
  memcpy(params, T->backup, T->n_par * sizeof(float));
  return st;
}

/* One loss.csv row (rank 0) with the means since the last row; resets the sums. */
static void log_row(trainer *T, double lr, const double val[3], const double val_ema[3], int with_val, double elapsed,
                    jade_train_result *res) {
  const train_accum *a = &T->acc;
  res->loss = a->loss / a->n;
  if (T->root) {
    fprintf(T->loss_f, "%ld,%.4f,%.6g,%.6g,%.6g,%.6g,%.6g,", T->step, (double)T->step / T->steps_per_epoch, lr, a->loss / a->n,
            a->lx / a->n, a->lth / a->n, a->gn / a->n);
    if (with_val)
      fprintf(T->loss_f, "%.6g,%.6g,%.6g,", val[0], val_ema[0], val_ema[2]);
    else
      fprintf(T->loss_f, ",,,");
    fprintf(T->loss_f, "%.1f\n", elapsed);
    fflush(T->loss_f);
  }
  memset(&T->acc, 0, sizeof T->acc);
}

/* Rank 0 writes state.safetensors and model.safetensors (EMA weights). Collective. */
static jade_status checkpoint(trainer *T) {
  jade_status st = JADE_OK;
  if (T->root) {
    train_state_info info = {T->step, T->acc, T->data_hash, T->N, T->n_train, T->n_val};
    st = train_state_write(T->p_state, &info, T->m, T->ema, T->opt, &T->norm, &T->tc->flow, T->ident);
    if (!st) st = jade_checkpoint_write_model(T->p_model, T->m, T->ema, &T->norm, &T->tc->flow, T->step, T->o->config_text);
  }
  if (jade_dist_max_int(T->d, st != JADE_OK) && !st) st = jade_error(JADE_ERR_IO, "rank 0 failed to write a checkpoint");
  return st;
}

/* The progress line: step, epoch, loss, validation loss, rate, time left. */
static void print_progress(const trainer *T, long step0, double t0, double now, double lr, double last_val,
                           const jade_train_result *res, int tty) {
  const jade_train_config *tc = T->tc;
  double rate = (T->step - step0) / (now - t0);
  char eta[32], vs[48] = "";
  jade_format_duration((tc->steps - T->step) / rate, eta, sizeof eta);
  if (isfinite(last_val)) snprintf(vs, sizeof vs, ", val %.4f", last_val);
  fprintf(stderr, "%strain: step %ld/%ld, epoch %.2f, loss %.4f%s, lr %.2e, %.2f steps/s (%.0f samples/s), %s left%s",
          tty ? "\r" : "", T->step, tc->steps, (double)T->step / T->steps_per_epoch,
          T->acc.n > 0 ? T->acc.loss / T->acc.n : res->loss, vs, lr, rate, rate * tc->batch, eta, tty ? "   " : "\n");
}

/* The loop from T->step to the last step, a stop request or an error. */
static jade_status train_loop(trainer *T, jade_train_result *res) {
  const jade_train_config *tc = T->tc;
  const jade_train_options *o = T->o;
  const int tty = isatty(2), talk = T->root && !o->quiet;
  const double t0 = jade_time_now();
  double t_last = t0, last_val = NAN, t_ckpt = t0;
  const long step0 = T->step;
  long cur_epoch = -1;
  double lr = NAN;
  jade_status st = JADE_OK;
  if (T->step >= tc->steps && talk) fprintf(stderr, "jade train: %s already finished (%ld steps)\n", o->out_dir, T->step);
  while (T->step < tc->steps) {
    const long s = T->step, epoch = s / T->steps_per_epoch;
    if (epoch != cur_epoch) {
      train_permutation(T->n_train, tc->seed, TRAIN_STREAM(JADE_TRAIN_RNG_EPOCH, epoch), T->eperm);
      cur_epoch = epoch;
    }
    double loss;
    if ((st = optimiser_step(T, s, &loss, &lr))) break;

    /* validation, log row */
    const int final = T->step == tc->steps;
    const int do_val = T->n_eval > 0 && (T->step % tc->val_every == 0 || final);
    double val[3] = {NAN, NAN, NAN}, val_ema[3] = {NAN, NAN, NAN};
    if (do_val) {
      if ((st = validate_both(T, val, val_ema))) break;
      last_val = val_ema[0];
    }
    const double now = jade_time_now();
    if (T->step % tc->log_every == 0 || do_val || final) log_row(T, lr, val, val_ema, do_val, T->elapsed0 + now - t0, res);

    /* stop request (signal on any rank, or --stop-after) */
    int stop = (o->stop_flag && *o->stop_flag) || (o->stop_after > 0 && T->step >= o->stop_after);
    const int stopping = jade_dist_max_int(T->d, stop) && !final;

    /* checkpoint (every checkpoint_every steps, or after checkpoint_seconds of wall time: rank
     * 0's clock decides for all ranks) */
    int due = o->checkpoint_seconds > 0 && T->root && now - t_ckpt >= o->checkpoint_seconds;
    if (o->checkpoint_seconds > 0) due = jade_dist_max_int(T->d, due);
    if (T->step % tc->checkpoint_every == 0 || final || stopping || due) {
      t_ckpt = now;
      if ((st = checkpoint(T))) break;
    }
    if (talk && (now - t_last > (tty ? 0.5 : 30.0) || final || stopping)) {
      t_last = now;
      print_progress(T, step0, t0, now, lr, last_val, res, tty);
    }
    if (stopping) break;
  }
  if (talk && tty && T->step > step0) fprintf(stderr, "\n");
  res->val_loss = last_val;
  return st;
}

jade_status jade_train(const jade_model_config *mc_in, const jade_train_config *tc, const jade_train_options *o,
                       jade_train_result *res) {
  jade_dist single = {0, 1, 0};
  memset(res, 0, sizeof *res);
  res->val_loss = NAN;
  const double t_begin = jade_time_now();
  trainer T;
  memset(&T, 0, sizeof T);
  T.tc = tc;
  T.o = o;
  T.d = o->dist ? o->dist : &single;
  T.root = T.d->rank == 0;
  T.mc = *mc_in;
  jade_status st = jade_model_config_check(&T.mc);
  if (st) return st;
  if ((st = jade_dataset_open(o->data_dir, &T.ds))) return st;
  T.data_hash = jade_dataset_hash(&T.ds);
  snprintf(T.p_state, sizeof T.p_state, "%s/state.safetensors", o->out_dir);
  snprintf(T.p_model, sizeof T.p_model, "%s/model.safetensors", o->out_dir);
  snprintf(T.p_loss, sizeof T.p_loss, "%s/loss.csv", o->out_dir);
  snprintf(T.p_cfg, sizeof T.p_cfg, "%s/config.ini", o->out_dir);

  if (!(st = open_data(&T)) && !(st = train_check_out_dir(o, T.d, &T.resuming)) && !(st = create_model(&T)) &&
      !(st = restore(&T)) && !(st = prepare_output(&T)) && !(st = create_workers(&T))) {
    if (T.root && !o->quiet) print_start(&T);
    st = train_loop(&T, res);
    res->step = T.step;
    res->finished = T.step >= tc->steps && !st;
  }

  if (T.loss_f) fclose(T.loss_f);
  jade_model_free(T.m);
  jade_adamw_free(T.opt);
  free(T.ema);
  free(T.backup);
  free(T.decay_mask);
  free(T.perm);
  free(T.eperm);
  free(T.ident);
  jade_trained_model_free(T.init);
  for (int i = 0; T.w && i < T.nw; i++) {
    train_worker_free(&T.w[i]);
    if (i > 0) jade_model_free(T.w[i].m);
  }
  free(T.w);
  jade_dataset_close(&T.ds);
  res->seconds = jade_time_now() - t_begin;
  return st;
}
