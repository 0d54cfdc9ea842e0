/* Writing jade datasets (include/jade/dataset.h): the simulations split into work units of
 * `chunk` simulations, unit c on MPI rank c % size, the simulations of a unit over OpenMP
 * threads (one simulator each); a unit's rows are written at once, its done flags after the
 * data, so an interrupted run continues with the units not yet flagged. */
#include "jade/dataset.h"
#include "jade/version.h"

#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void jade_dataset_simulate_options_default(jade_dataset_simulate_options *o) {
  memset(o, 0, sizeof *o);
  o->seed = 1;
  o->chunk = 32;
}

/* The run's identity: config + seed + N + mode. A resumed run must match it exactly. */
static char *run_identity(const char *config_dump, unsigned long long seed, long n, int fixed, int f16) {
  size_t len = strlen(config_dump) + 256;
  char *s = malloc(len);
  if (!s) return NULL;
  /* the dtype line only for f16, so f32 runs keep the identity of older versions */
  snprintf(s, len, "# jade simulate run\nseed = %llu\nn = %ld\nmode = %s\n%s%s", seed, n, fixed ? "fixed" : "prior",
           f16 ? "dtype = f16\n" : "", config_dump);
  return s;
}

static jade_status write_meta(const char *dir, const jade_sim_config *sc, unsigned long long seed, long n, int fixed, int f16,
                              const double *noise) {
  char path[4400], buf[8192];
  size_t pos = 0;
  pos += (size_t)snprintf(buf + pos, sizeof buf - pos,
                          "{\n  \"format\": \"jade-dataset-1\",\n  \"jade_version\": \"" JADE_VERSION "\",\n"
                          "  \"n_sims\": %ld,\n  \"seed\": %llu,\n"
                          "  \"mode\": \"%s\",\n  \"theta_names\": [",
                          n, seed, fixed ? "fixed" : "prior");
  for (int i = 0; i < JADE_N_THETA; i++)
    pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "%s\"%s\"", i ? ", " : "", jade_theta_names[i]);
  pos += (size_t)snprintf(buf + pos, sizeof buf - pos,
                          "],\n  \"n_bins\": %d,\n  \"n_pix\": %d,\n  \"size_deg\": %.17g,\n"
                          "  \"pixel_arcmin\": %.17g,\n  \"noise_sigma\": [",
                          sc->geom.n_bins, sc->geom.n_pix, sc->geom.size_deg, jade_pixel_arcmin(&sc->geom));
  for (int i = 0; i < sc->geom.n_bins; i++)
    pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "%s%.17g", i ? ", " : "", noise[i]);
  pos += (size_t)snprintf(buf + pos, sizeof buf - pos,
                          "],\n  \"files\": {\"theta\": \"theta.npy\", \"kappa\": \"kappa.npy\", "
                          "\"lambda\": \"lambda.npy\", \"noise\": \"noise.npy\", \"config\": \"config.ini\"},\n"
                          "  \"kappa_layout\": \"(n_sims, n_bins, y, x), noise-free convergence\",\n"
                          "  \"kappa_dtype\": \"%s\"\n}\n", f16 ? "float16" : "float32");
  snprintf(path, sizeof path, "%s/meta.json", dir);
  return jade_write_file_atomic(path, buf);
}

/* Is any simulation flagged done in DIR/done.npy? (0 if it cannot be read) */
static int any_done(const char *dir, long n) {
  char path[4300];
  jade_npy flags;
  snprintf(path, sizeof path, "%s/done.npy", dir);
  if (jade_npy_map(path, &flags) != JADE_OK) return 0;
  int any = 0;
  for (long i = 0; i < n && i < (long)jade_npy_count(&flags) && !any; i++) any = ((unsigned char *)flags.data)[i] != 0;
  jade_npy_release(&flags);
  return any;
}

/* The run: its options, the open writers of DIR.partial and the done flags. */
typedef struct {
  const jade_dataset_simulate_options *o;
  const jade_dist *dist;
  char partial[4200];
  jade_npy_writer *w_theta, *w_kappa, *w_lambda, *w_done;
  unsigned char *done; /* n flags */
  int created;         /* this call created DIR.partial */
} sim_run;

/* Open the four arrays of DIR.partial (created when `create`). */
static jade_status open_arrays(sim_run *R, int create) {
  const jade_dataset_simulate_options *o = R->o;
  const int nb = o->sim->geom.n_bins, np = o->sim->geom.n_pix;
  const size_t n = (size_t)o->n;
  size_t sh_theta[2] = {n, JADE_N_THETA}, sh_kappa[4] = {n, (size_t)nb, (size_t)np, (size_t)np};
  size_t sh_lambda[2] = {n, (size_t)nb}, sh_done[1] = {n};
  const struct {
    const char *name;
    jade_dtype dt;
    int nd;
    const size_t *shape;
    jade_npy_writer **w;
  } arr[4] = {{"theta.npy", JADE_F64, 2, sh_theta, &R->w_theta},
              {"kappa.npy", o->f16 ? JADE_F16 : JADE_F32, 4, sh_kappa, &R->w_kappa},
              {"lambda.npy", JADE_F64, 2, sh_lambda, &R->w_lambda},
              {"done.npy", JADE_U8, 1, sh_done, &R->w_done}};
  char path[4300];
  jade_status st = JADE_OK;
  for (int a = 0; a < 4 && !st; a++) {
    snprintf(path, sizeof path, "%s/%s", R->partial, arr[a].name);
    st = jade_npy_writer_open(path, arr[a].dt, arr[a].nd, arr[a].shape, create, arr[a].w);
  }
  return st;
}

/* Rank 0 creates DIR.partial (run.txt, config.ini, the arrays) or checks that it is from this
 * run; then the other ranks open the arrays; everyone reads the done flags. */
static jade_status open_partial(sim_run *R, const char *ident) {
  char path[4300];
  jade_status st = JADE_OK;
  if (R->dist->rank == 0) {
    int resumed = 0;
    st = jade_run_dir_check(R->partial, ident, "config, seed or --n", &resumed);
    if (!st && !resumed) {
      st = jade_run_dir_create(R->partial, ident);
      R->created = jade_path_exists(R->partial);
      snprintf(path, sizeof path, "%s/config.ini", R->partial);
      if (!st) st = jade_write_file_atomic(path, R->o->config_text);
    }
    if (!st) st = open_arrays(R, !resumed);
  }
  if (jade_dist_max_int(R->dist, st != JADE_OK)) return st ? st : jade_error(JADE_ERR_IO, "rank 0 failed to prepare %s", R->partial);
  if (R->dist->rank != 0 && (st = open_arrays(R, 0))) return st;
  /* which simulations are already done (by a previous, interrupted run) */
  const size_t n = (size_t)R->o->n;
  R->done = calloc(n, 1);
  if (!R->done) return jade_error(JADE_ERR_NOMEM, "out of memory");
  jade_npy flags;
  snprintf(path, sizeof path, "%s/done.npy", R->partial);
  if ((st = jade_npy_map(path, &flags))) return st;
  memcpy(R->done, flags.data, n);
  jade_npy_release(&flags);
  return JADE_OK;
}

static jade_status close_writers(sim_run *R) {
  jade_status st = JADE_OK, c;
  jade_npy_writer **w[4] = {&R->w_theta, &R->w_kappa, &R->w_lambda, &R->w_done};
  for (int a = 0; a < 4; a++) {
    if (!*w[a]) continue;
    c = jade_npy_writer_close(*w[a]);
    *w[a] = NULL;
    if (!st) st = c;
  }
  return st;
}

/* Simulate this rank's units that are not done yet; *stopped when max_chunks was reached. */
static jade_status simulate_units(sim_run *R, double noise[JADE_MAX_BINS], int *stopped) {
  const jade_dataset_simulate_options *o = R->o;
  const jade_sim_config *sc = o->sim;
  const long n = o->n, chunk = o->chunk;
  const int nb = sc->geom.n_bins, f16 = o->f16;
  const size_t map_len = (size_t)nb * sc->geom.n_pix * sc->geom.n_pix;
  long n_chunks = (n + chunk - 1) / chunk, todo_local = 0, already = 0, chunks_run = 0;
  for (long i = 0; i < n; i++) already += R->done[i] != 0;
  for (long c = R->dist->rank; c < n_chunks; c += R->dist->size)
    for (long i = c * chunk; i < n && i < (c + 1) * chunk; i++) todo_local += !R->done[i];
  if (R->dist->rank == 0 && o->start && already) o->start(already, n, o->user);

  int nthreads = omp_get_max_threads();
  jade_simulator **sims = calloc((size_t)nthreads, sizeof *sims);
  float *kbuf = malloc(sizeof(float) * map_len * (size_t)chunk);
  uint16_t *hbuf = f16 ? malloc(sizeof(uint16_t) * map_len * (size_t)chunk) : NULL;
  double *tbuf = malloc(sizeof(double) * JADE_N_THETA * (size_t)chunk);
  double *lbuf = malloc(sizeof(double) * nb * (size_t)chunk);
  unsigned char *ones = malloc((size_t)chunk);
  jade_status st = JADE_OK;
  if (!sims || !kbuf || !tbuf || !lbuf || !ones || (f16 && !hbuf)) st = jade_error(JADE_ERR_NOMEM, "out of memory");
  for (int t = 0; t < nthreads && !st; t++) st = jade_simulator_create(sc, &sims[t]);
  if (!st) {
    jade_simulator_noise(sims[0], noise);
    memset(ones, 1, (size_t)chunk);
  }
  double t_start = jade_time_now(), t_cosmo = 0, t_maps = 0;
  long done_local = 0;
  for (long c = R->dist->rank; c < n_chunks && !st; c += R->dist->size) {
    long lo = c * chunk, hi = (c + 1) * chunk < n ? (c + 1) * chunk : n;
    int any = 0;
    for (long i = lo; i < hi; i++) any |= !R->done[i];
    if (!any) continue;
    if (o->max_chunks && chunks_run == o->max_chunks) {
      *stopped = 1;
      break;
    }
    chunks_run++;
    int failed = 0;
    char msg[1024] = "";
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : t_cosmo, t_maps)
    for (long i = lo; i < hi; i++) {
      int tid = omp_get_thread_num();
      double *theta = tbuf + (size_t)(i - lo) * JADE_N_THETA;
      if (o->fixed)
        jade_theta_from_params(&sc->cosmo, theta);
      else
        jade_prior_draw(sc, o->seed, (uint64_t)i, theta);
      jade_status s2 = jade_simulator_run(sims[tid], theta, o->seed, (uint64_t)i, kbuf + (size_t)(i - lo) * map_len,
                                          lbuf + (size_t)(i - lo) * nb, &t_cosmo, &t_maps);
      if (s2) {
#pragma omp critical(jade_sim_fail)
        if (!failed) {
          failed = 1;
          snprintf(msg, sizeof msg, "%s", jade_last_error());
        }
      }
    }
    if (failed) {
      st = jade_error(JADE_ERR_NUMERIC, "%s", msg);
      break;
    }
    st = jade_npy_writer_put_rows(R->w_theta, (size_t)lo, (size_t)(hi - lo), tbuf);
    if (!st && f16) {
      /* a map beyond float16's range (|kappa| >= 65520) would be stored as Inf: refuse */
      size_t nv = (size_t)(hi - lo) * map_len;
      jade_f32_to_f16_array(hbuf, kbuf, nv);
      for (size_t i = 0; i < nv && !st; i++)
        if ((hbuf[i] & 0x7c00u) == 0x7c00u)
          st = jade_error(JADE_ERR_NUMERIC, "simulation %ld: kappa %g does not fit float16 (use --dtype f32)", lo + (long)(i / map_len),
                          (double)kbuf[i]);
    }
    if (!st) st = jade_npy_writer_put_rows(R->w_kappa, (size_t)lo, (size_t)(hi - lo), f16 ? (const void *)hbuf : kbuf);
    if (!st) st = jade_npy_writer_put_rows(R->w_lambda, (size_t)lo, (size_t)(hi - lo), lbuf);
    /* The flags are written after the data, so a kill never marks a missing map as done. */
    if (!st) st = jade_npy_writer_put_rows(R->w_done, (size_t)lo, (size_t)(hi - lo), ones);
    for (long i = lo; i < hi; i++) done_local += !R->done[i];
    if (!st && R->dist->rank == 0 && o->progress)
      o->progress(done_local, todo_local, jade_time_now() - t_start, t_cosmo / (t_cosmo + t_maps + 1e-30), o->user);
  }
  for (int t = 0; t < nthreads && sims; t++) jade_simulator_free(sims[t]);
  free(sims);
  free(kbuf);
  free(hbuf);
  free(tbuf);
  free(lbuf);
  free(ones);
  return st;
}

/* Rank 0: every simulation done? then noise.npy and meta.json, and DIR.partial -> DIR. */
static jade_status publish(sim_run *R, const double *noise) {
  const jade_dataset_simulate_options *o = R->o;
  const long n = o->n;
  char path[4300];
  jade_npy flags;
  snprintf(path, sizeof path, "%s/done.npy", R->partial);
  jade_status st = jade_npy_map(path, &flags);
  long missing = 0;
  if (!st) {
    for (long i = 0; i < n; i++) missing += ((unsigned char *)flags.data)[i] == 0;
    jade_npy_release(&flags);
    if (missing) st = jade_error(JADE_ERR_INTERNAL, "%s: %ld simulations missing after the run", R->partial, missing);
  }
  size_t sh_noise[1] = {(size_t)o->sim->geom.n_bins};
  snprintf(path, sizeof path, "%s/noise.npy", R->partial);
  if (!st) st = jade_npy_write(path, JADE_F64, 1, sh_noise, noise);
  if (!st) st = write_meta(R->partial, o->sim, o->seed, n, o->fixed, o->f16, noise);
  snprintf(path, sizeof path, "%s/done.npy", R->partial);
  if (!st) st = jade_remove_file(path);
  if (!st) st = jade_publish_dir(R->partial, o->out_dir);
  return st;
}

jade_status jade_dataset_simulate(const jade_dataset_simulate_options *o, jade_dataset_simulate_result *res) {
  jade_dist single = {0, 1, 0};
  memset(res, 0, sizeof *res);
  res->n = o->n;
  const double t0 = jade_time_now();
  if (!o->sim || !o->out_dir || !o->config_text) return jade_error(JADE_ERR_INVALID, "simulate: configuration and output required");
  if (o->n < 1 || o->chunk < 1 || o->max_chunks < 0)
    return jade_error(JADE_ERR_INVALID, "simulate: n = %ld, chunk = %ld: both must be >= 1", o->n, o->chunk);
  sim_run R;
  memset(&R, 0, sizeof R);
  R.o = o;
  R.dist = o->dist ? o->dist : &single;
  char *ident = run_identity(o->config_text, (unsigned long long)o->seed, o->n, o->fixed, o->f16);
  if (!ident) return jade_error(JADE_ERR_NOMEM, "out of memory");
  jade_status st = JADE_OK;
  if (jade_path_exists(o->out_dir)) st = jade_error(JADE_ERR_IO, "%s: already exists (choose another --out or remove it)", o->out_dir);
  snprintf(R.partial, sizeof R.partial, "%s.partial", o->out_dir);
  if (!st) st = open_partial(&R, ident);
  double noise[JADE_MAX_BINS];
  int stopped = 0;
  if (!st) st = simulate_units(&R, noise, &stopped);
  jade_status cst = close_writers(&R);
  if (!st) st = cst;
  if (jade_dist_max_int(R.dist, st != JADE_OK)) {
    if (!st) st = jade_error(JADE_ERR_IO, "another rank failed");
  } else if (!jade_dist_max_int(R.dist, stopped)) {
    if (R.dist->rank == 0) st = publish(&R, noise);
    if (jade_dist_max_int(R.dist, st != JADE_OK) && !st) st = jade_error(JADE_ERR_IO, "rank 0 failed to finish %s", o->out_dir);
    res->finished = !st;
  }
  /* a run that failed before any simulation was done (e.g. an invalid cosmology) leaves
   * nothing behind; otherwise DIR.partial stays, to be resumed */
  if (st && R.created && !any_done(R.partial, o->n)) jade_remove_dir(R.partial);
  free(R.done);
  free(ident);
  res->seconds = jade_time_now() - t0;
  return st;
}
