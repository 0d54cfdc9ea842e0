/* jade training: the [model] and [train] config sections, normalisation of the data and the
 * data-parallel training loop of the JADE flow-matching model (spec/model.md). The model
 * files it writes, and everything that only uses a trained model, are in
 * jade/trained_model.h.
 *
 * Randomness: everything comes from Philox with the [train] seed, in streams
 * JADE_STREAM(JADE_RNG_TRAIN, (purpose << 40) | counter) (purpose below, counter = step, epoch
 * or micro-batch), indexed by the sample's row in the global batch. A run therefore depends
 * only on (config, dataset), not on threads or MPI ranks (up to float summation order of the
 * gradient over ranks), and a resumed run continues bit-identically. */
#ifndef JADE_TRAIN_H
#define JADE_TRAIN_H
#include <signal.h>

#include "jade/config.h"
#include "jade/dist.h"
#include "jade/model.h"
#include "jade/sim.h"
#include "jade/trained_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Stream purposes inside JADE_RNG_TRAIN (bits 40..47 of the stream id). */
enum {
  JADE_TRAIN_RNG_SPLIT = 1,   /* train / validation split permutation */
  JADE_TRAIN_RNG_EPOCH = 2,   /* per-epoch shuffle (counter = epoch) */
  JADE_TRAIN_RNG_NORMAL = 3,  /* per-step normals: t, eps_theta, eps_map, condition noise */
  JADE_TRAIN_RNG_FLIP = 4,    /* per-step uniforms for the flips */
  JADE_TRAIN_RNG_DROPOUT = 5, /* dropout masks (counter = step * n_micro + micro-batch) */
  JADE_TRAIN_RNG_VAL = 6,     /* fixed t / noise of the validation samples */
  JADE_TRAIN_RNG_ROT = 7,     /* per-step uniforms for the transposes (rot90) */
  JADE_TRAIN_RNG_ROLL = 8,    /* per-step uniforms for the periodic shifts (roll) */
  JADE_TRAIN_RNG_MASK = 9,    /* per-step masks and noise maps (counter = step) */
  JADE_TRAIN_RNG_VAL_MASK = 10 /* the fixed masks and noise maps of the validation samples */
};

typedef struct {
  long batch;            /* global batch (all ranks together) */
  long micro_batch;      /* samples per forward/backward pass (divides the work over ranks
                            and bounds memory; results do not depend on it beyond rounding) */
  long steps;            /* optimiser steps in total (sets the LR schedule) */
  long warmup;           /* linear warm-up steps (0: the paper's plain linear decay) */
  double lr_peak, lr_end;
  double beta1, beta2, adam_eps, weight_decay, grad_clip;
  double theta_weight;   /* weight of the theta term of the loss (1 = the paper's objective) */
  double ema_decay;
  long ema_start;        /* EMA = live weights for steps <= ema_start, then decays */
  jade_flow_config flow; /* t ~ logit-normal(mu, sigma), t_eps */
  int flip;              /* random left-right / up-down flips */
  int rot90;             /* random transposes: with flip, all 8 symmetries of the square
                            (exact for a periodic grid with an isotropic spectrum) */
  int roll;              /* random periodic shifts (exact for maps on a periodic grid) */
  /* model.condition = masked (docs/model.md "Masks and noise maps"): a fraction mask_prob
   * of the samples gets a random mask (survey-edge strip and star holes) of up to mask_max
   * of the area; every sample's noise is sigma_i exp(s + a g(x)), s ~ U(-noise_ln_scale,
   * noise_ln_scale), a ~ U(0, noise_ln_field), g a smooth random field with max |g| = 1 */
  double mask_prob, mask_max, noise_ln_scale, noise_ln_field;
  int theta_norm_dataset;
  double val_fraction;   /* held-out fraction (seeded permutation) */
  long val_max;          /* validation samples evaluated (the first val_max held-out ones) */
  long val_every, log_every, checkpoint_every;
  uint64_t seed;
} jade_train_config;

/* [model] keys plus the top-level n_pix / n_bins (img_size, channels, cond_channels). */
jade_status jade_model_config_read(jade_config *cfg, jade_model_config *mc);
/* [train] keys. */
jade_status jade_train_config_read(jade_config *cfg, jade_train_config *tc);

/* Mean and standard deviation of a 1-D prior (truncated normal: Johnson, Kotz & Balakrishnan
 * 1994, eq. 13.134-13.135; uniform: (lo+hi)/2, (hi-lo)/sqrt 12). */
void jade_prior_moments(const jade_prior1d *p, double *mean, double *sd);

typedef struct {
  const char *data_dir;     /* dataset of jade simulate */
  const char *out_dir;      /* MODELDIR */
  int resume;               /* continue from MODELDIR/state.safetensors; without one, an error unless
                               MODELDIR is empty or this run killed before its first checkpoint */
  long stop_after;          /* > 0: checkpoint and return after this step (not finished) */
  int quiet;                /* no progress line */
  const char *config_text;  /* effective configuration, stored in every checkpoint and
                               compared on resume */
  const jade_sim_config *sim; /* geometry and prior of the dataset */
  const jade_dist *dist;
  volatile sig_atomic_t *stop_flag; /* set (e.g. by SIGTERM): checkpoint and return */
  int workers;              /* threads that each run whole micro-batches on their own model
                               copy (gradients summed in worker order); 0 = auto: the OpenMP
                               threads, at most the rank's micro-batches, 1 for models over
                               50M parameters; 1 = threads inside the network instead */
  double checkpoint_seconds; /* > 0: also checkpoint when this much wall time has passed since
                               the last checkpoint (slow or shared machines); results do not
                               depend on when checkpoints are written */
  const char *init_from;    /* non-NULL: a new run starts from this trained model's weights
                               (MODELDIR or .safetensors; the same network) and keeps its
                               normalisation: continued training with a new schedule, or
                               fine-tuning. Part of the run's identity (checked on resume). */
} jade_train_options;

typedef struct {
  long step;        /* optimiser steps done */
  int finished;     /* step == steps */
  double loss;      /* mean training loss over the last logging interval */
  double val_loss;  /* last validation loss (EMA weights), NaN if none */
  double seconds;   /* wall time of this call */
} jade_train_result;

/* Train (or resume) into o->out_dir: config.ini, loss.csv, model.safetensors (EMA weights),
 * state.safetensors (everything to resume). Only rank 0 writes. */
jade_status jade_train(const jade_model_config *mc, const jade_train_config *tc,
                       const jade_train_options *o, jade_train_result *res);


#ifdef __cplusplus
}
#endif
#endif
