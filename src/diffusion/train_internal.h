/* Internal to the training code of src/diffusion (not installed): the metadata helpers shared
 * by model files and training states, the per-thread micro-batch workers, and the run state
 * (normalisation, identity, checkpoints). train.c holds the loop that uses them. */
#ifndef JADE_TRAIN_INTERNAL_H
#define JADE_TRAIN_INTERNAL_H
#include <stdio.h>

#include "jade/condition.h"
#include "jade/dataset.h"
#include "jade/nn.h"
#include "jade/train.h"

/* Philox stream of a training purpose (jade/train.h) and counter. */
#define TRAIN_STREAM(purpose, counter) \
  JADE_STREAM(JADE_RNG_TRAIN, ((uint64_t)(purpose) << 40) | ((uint64_t)(counter) & 0xFFFFFFFFFFull))

/* ---- metadata (trained_model.c) ------------------------------------------------------ */
/* Key/value entries collected for one safetensors write; an allocation failure is kept in
 * `failed` and reported by train_meta_write. */
typedef struct {
  char **k, **v;
  int n, cap;
  int failed;
} metabuf;

void train_meta_add(metabuf *mb, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* n numbers with %.17g (they read back exactly), space separated */
void train_meta_add_doubles(metabuf *mb, const char *key, const double *x, int n);
void train_meta_free(metabuf *mb);
/* the "model.*", "norm.*" and "flow.*" entries */
void train_meta_model(metabuf *mb, const jade_model_config *c);
void train_meta_norm(metabuf *mb, const jade_norm *n);
void train_meta_flow(metabuf *mb, const jade_flow_config *f);
/* Write tensors t[0..nt) with the collected metadata to path (atomically). */
jade_status train_meta_write(const char *path, const jade_st_tensor *t, int nt, metabuf *mb);
/* Read an integer in [lo, hi] / n doubles from the metadata; errors name the file and key. */
jade_status train_meta_long(const jade_safetensors *st, const char *key, long lo, long hi, long *out);
jade_status train_meta_doubles(const jade_safetensors *st, const char *key, int n, double *out);

/* ---- micro-batch workers (train_batch.c) --------------------------------------------- */
/* One worker thread: its model (worker 0: the trained model; others: copies synchronised
 * before use) and the buffers of one micro-batch of at most mb_cap rows. */
typedef struct {
  const jade_train_config *tc;
  const jade_dataset *ds;
  const jade_norm *norm;
  jade_model *m;
  int P, npix, bins;
  size_t nx;         /* map values per row (bins n n) */
  size_t cnx;        /* condition values per row (jade_condition_channels n n) */
  long mb_cap;
  jade_mask_config masks; /* norm->masked: the random masks and noise maps */
  /* micro-batch buffers */
  float *x, *z, *cond, *xhat, *dx, *th, *zth, *thhat, *dth, *t;
  long *ids;
  uint64_t *rows;
  float *mask_buf;   /* norm->masked: per row a mask and a ln noise ratio (2 n n) */
} train_worker;

/* Copy proto's settings and allocate the buffers for model m. */
jade_status train_worker_init(train_worker *c, const train_worker *proto, jade_model *m);
void train_worker_free(train_worker *c);
/* Copy weights into the models of workers first .. nw-1. */
void train_sync_workers(train_worker *w, int first, int nw, const float *weights, size_t n);
/* The gradient of one optimiser step `step` (epoch permutation eperm, position pos in the
 * epoch) of the global batch, summed into worker 0's model gradients in worker order; sums
 * (loss, map loss, theta loss) of this rank's rows, weighted by rows. */
jade_status train_step_gradients(train_worker *w, int nw, const jade_dist *d, const long *train_idx, long n_train,
                                 const long *eperm, long step, long pos, double sums[3]);
/* Mean validation loss (loss, map, theta) of the first n_eval held-out samples (fixed t and
 * noise, no augmentation) with the weights currently in the workers' models. */
jade_status train_validate(train_worker *w, int nw, const jade_dist *d, const long *val_idx, long n_eval, double out[3]);

/* ---- run state (train_state.c) ------------------------------------------------------- */
/* Fisher-Yates shuffle of 0 .. n-1 from Philox uniforms (Knuth, TAOCP vol. 2, 3.4.2 P). */
void train_permutation(long n, uint64_t seed, uint64_t stream, long *out);
/* The config lines that define a training run (top level, [model], [train]); malloc'd. */
char *train_identity(const char *config_text);
/* --init-from: load the starting model, check it is the network of mc on the dataset's
 * geometry, and append it (path, step, hash of its weights) to *ident. */
jade_status train_load_init_model(const char *path, const jade_model_config *mc, const jade_dataset *ds,
                                  jade_trained_model **out, char **ident);
/* The normalisation of a run: theta from the prior (or the training split), maps per bin
 * from the training split; deterministic (independent of threads and ranks: a resume
 * recomputes it and compares it with the saved one). Also checks that every map of the
 * dataset is finite and stays finite in network units. */
jade_status train_compute_norm(const jade_train_config *tc, const jade_train_options *o, const jade_dataset *ds,
                               const long *train_idx, long n_train, jade_norm *norm);
/* May o->out_dir be written by this run? (resume, new, or a run killed before its first
 * checkpoint); *resuming: a state.safetensors will be read. Collective over d. */
jade_status train_check_out_dir(const jade_train_options *o, const jade_dist *d, int *resuming);

/* Running sums of the logged quantities since the last loss.csv row. */
typedef struct {
  double n, loss, lx, lth, gn;
} train_accum;

/* What a training state holds besides the config (the "identity") and normalisation. */
typedef struct {
  long step;
  train_accum acc;
  uint64_t data_hash;
  long n, n_train, n_val;
} train_state_info;

/* Write path: parameters, EMA, AdamW moments and the metadata to resume. */
jade_status train_state_write(const char *path, const train_state_info *info, const jade_model *m, const float *ema,
                              jade_adamw *opt, const jade_norm *norm, const jade_flow_config *flow,
                              const char *ident);
/* Read path into m's parameters, ema and opt after checking its format, identity, dataset
 * hash and normalisation against this run's; info->step and info->acc receive the saved
 * ones (info->data_hash is the expected hash). */
jade_status train_state_read(const char *path, const char *data_dir, train_state_info *info, long max_step, jade_model *m,
                             float *ema, jade_adamw *opt, const jade_norm *norm, const char *ident);

/* loss.csv: the header, and on a resume the rows up to last_step (the elapsed time of the
 * last kept row in *elapsed). */
extern const char train_loss_header[];
jade_status train_truncate_loss_csv(const char *path, long last_step, double *elapsed);
#endif
