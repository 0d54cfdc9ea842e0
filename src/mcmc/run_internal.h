/* Internal to the jade mcmc run (src/mcmc/run*.c): a chain's state beside its sampler, the
 * run's sizes, the checkpoint format (run_state.c) and the outputs (run_output.c). */
#ifndef JADE_MCMC_RUN_INTERNAL_H
#define JADE_MCMC_RUN_INTERNAL_H
#include <stdint.h>

#include "jade/mcmc_run.h"

/* columns of a stored post-warm-up row */
enum { C_TH = 0, C_OM = 6, C_S8 = 7, C_LP = 8, C_LW = 9, C_ACC = 10, C_STEP = 11, C_DEPTH = 12, C_NLF = 13,
       C_DIV = 14, C_ENERGY = 15, NCOL = 16 };
#define N_OUT_PAR JADE_N_PARAM_COLS /* six parameters, Omega_m, S_8: jade_param_names */

typedef struct {
  int id;                   /* global chain index */
  jade_nuts_chain *nuts;
  jade_fieldpost *fp;
  double wn, wsum[JADE_N_THETA], wsq[JADE_N_THETA * JADE_N_THETA]; /* refit window statistics */
  double mw, lw_ref, have_ref;                                     /* weighted Welford of the map */
  double *mmean, *mm2;
  double *rows;
  long n_rows, cap_rows;
  jade_fieldpost_counters prev; /* counters of earlier runs (restored) */
} chain_t;

typedef struct {
  int n_chains, n_free, free_idx[JADE_N_THETA];
  long warmup, samples;
  size_t dim, nmap;
  jade_fp_mode mode;
} run_t;

/* ---- checkpoint: chain records and the state file (run_state.c) ---- */
size_t mcmc_record_size(size_t nuts_size, const run_t *r, long n_rows);
/* Restore chain c (fieldpost already created) from a record. */
jade_status mcmc_record_read(chain_t *c, const run_t *r, const unsigned char *b, size_t size);
/* All chains' records (every rank contributes its own) into *out (n_chains * rec bytes). */
jade_status mcmc_gather_records(const jade_dist *dist, chain_t *ch, int n_local, const run_t *r, size_t rec,
                                unsigned char **out);
typedef struct {
  int64_t n_chains, rec_size, em_size, n_refits, iter;
  double wall, wall_sampling;
} state_head;
jade_status mcmc_state_write(const char *path, const state_head *h, const jade_emulator *em, const unsigned char *recs);
jade_status mcmc_state_read(const char *path, state_head *h, jade_emulator **em, unsigned char **recs);

/* ---- outputs (run_output.c) ---- */
/* chain.*, theta.txt, mean.fits, std.fits, diagnostics.txt of all chains into dir; fills health. */
jade_status mcmc_write_outputs(const char *dir, const run_t *r, chain_t *all, const jade_sim_config *sc,
                               const double *noise, const char *obs_path, const char *settings, double wall,
                               double wall_sampling, const jade_emulator *em, int n_refits, jade_mcmc_health *health);
/* compare.txt at out_path: mcmc_dir's theta.txt (named mcmc_name/theta.txt in the file: the run
 * writes from DIR.partial) against sample_dir's. */
jade_status mcmc_write_compare(const char *mcmc_dir, const char *mcmc_name, const char *sample_dir, const char *out_path);

#endif
