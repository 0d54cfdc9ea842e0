/* jade datasets: the (theta, noise-free kappa) pairs that `jade simulate` writes and
 * `jade train` and `jade validate` read, in one place: writing (split over OpenMP threads and
 * MPI ranks, resumable), reading and checking.
 *
 * Layout of DIR/ (numpy: np.load(DIR + "/kappa.npy", mmap_mode="r")):
 *   theta.npy   float64 (N, 6)            Omega_c Omega_b sigma_8 h n_s w_0
 *   kappa.npy   float32 (N, bins, n, n)   noise-free convergence maps (float16 with f16:
 *                                         half the size; numpy reads it natively)
 *   lambda.npy  float64 (N, bins)         log-normal shift used for each map
 *   noise.npy   float64 (bins,)           per-pixel convergence noise sigma_i of the survey
 *   config.ini  the effective configuration;  meta.json  seed, sizes, names, pixel scale.
 * While being written, everything lives in DIR.partial/ (with run.txt, the run's identity, and
 * done.npy, one flag per simulation, written after the data); DIR appears only when complete,
 * and a run with the same identity continues an existing DIR.partial. Simulation i depends
 * only on (config, seed, i): theta from jade_prior_draw (or the config's cosmology when
 * fixed), the map from jade_simulator_run; so the dataset is the same bytes whatever the
 * threads, ranks, chunk size or interruptions. */
#ifndef JADE_DATASET_H
#define JADE_DATASET_H
#include <stdint.h>

#include "jade/dist.h"
#include "jade/io.h"
#include "jade/sim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- reading --------------------------------------------------------------------------- */
/* DIR/theta.npy float64 (N, 6) (read, finite), DIR/kappa.npy float32 or float16 (N, bins, n, n)
 * (memory-mapped, finite), DIR/noise.npy float64 (bins,) (>= 0); N >= 2. Shapes are checked
 * against each other; errors name the file. meta.json is optional (size_deg NaN without it). */
typedef struct {
  jade_npy theta, kappa, noise;
  long n;
  int bins, npix;
  size_t nx;       /* bins * npix * npix */
  double size_deg; /* side of the patch from meta.json; NaN when absent */
} jade_dataset;
jade_status jade_dataset_open(const char *dir, jade_dataset *ds);
void jade_dataset_close(jade_dataset *ds);
/* Map i as float32: a pointer into the mapping (float32 files) or converted into scratch
 * (nx floats; float16 files). */
const float *jade_dataset_map(const jade_dataset *ds, long i, float *scratch);
/* 64-bit hash of theta, kappa and noise with their shapes (threads do not change it):
 * identifies a dataset when a training run is resumed. Not a cryptographic hash. */
uint64_t jade_dataset_hash(const jade_dataset *ds);

/* ---- writing (jade simulate) --------------------------------------------------------- */
typedef struct {
  const jade_sim_config *sim; /* geometry, cosmology, prior */
  const char *config_text;    /* effective configuration: config.ini and the run identity */
  const char *out_dir;        /* DIR; must not exist (DIR.partial is resumed) */
  long n;                     /* simulations (>= 1) */
  uint64_t seed;
  int fixed;                  /* 1: at the config's cosmology instead of prior draws */
  int f16;                    /* 1: kappa.npy as float16 (a map beyond its range is an error) */
  long chunk;                 /* simulations per work unit, written at once (default 32) */
  long max_chunks;            /* > 0: return after this many units on each rank (not finished) */
  const jade_dist *dist;      /* NULL: one process */
  /* rank 0, before the first unit: simulations already done by an earlier run (of n) */
  void (*start)(long already, long n, void *user);
  /* rank 0 after each unit: simulations done / to do on this rank, seconds, and the fraction
   * of the simulation time spent in the cosmology (the rest: the maps) */
  void (*progress)(long done, long todo, double seconds, double cosmo_fraction, void *user);
  void *user;
} jade_dataset_simulate_options;

typedef struct {
  int finished;   /* DIR written; else stopped by max_chunks, DIR.partial left to resume */
  long n;
  double seconds; /* wall time of this call */
} jade_dataset_simulate_result;

void jade_dataset_simulate_options_default(jade_dataset_simulate_options *o);
/* Write (or continue) the dataset o->out_dir. Collective over o->dist. On an error before any
 * simulation was done, nothing is left behind; later errors leave DIR.partial to resume. */
jade_status jade_dataset_simulate(const jade_dataset_simulate_options *o, jade_dataset_simulate_result *res);

#ifdef __cplusplus
}
#endif
#endif
