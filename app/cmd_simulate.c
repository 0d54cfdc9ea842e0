/* jade simulate: a dataset of (theta, noise-free kappa) pairs drawn from the prior (or at the
 * config's cosmology), split over OpenMP threads and MPI ranks, resumable.
 *
 * Layout of OUT/ (numpy: np.load(OUT + "/kappa.npy", mmap_mode="r")):
 *   theta.npy   float64 (N, 6)            Omega_c Omega_b sigma_8 h n_s w_0
 *   kappa.npy   float32 (N, bins, n, n)   noise-free convergence maps (float16 with
 *                                         --dtype f16: half the size; numpy reads it natively)
 *   lambda.npy  float64 (N, bins)         log-normal shift used for each map
 *   noise.npy   float64 (bins,)           per-pixel convergence noise sigma_i of the survey
 *   config.ini  the effective configuration;  meta.json  seed, sizes, names, pixel scale.
 * While running, everything lives in OUT.partial/ (with done.npy, one flag per simulation);
 * OUT appears only when complete. Rerunning the same command resumes. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "jade/dist.h"
#include "jade/io.h"
#include "jade/sim.h"

/* The run's identity: config + seed + N + mode. A resumed run must match it exactly. */
static char *run_identity(const char *config_dump, unsigned long long seed, long n, int fixed,
                          int f16) {
  size_t len = strlen(config_dump) + 256;
  char *s = malloc(len);
  if (!s) return NULL;
  /* the dtype line only for f16, so f32 runs keep the identity of older versions */
  snprintf(s, len, "# jade simulate run\nseed = %llu\nn = %ld\nmode = %s\n%s%s", seed, n,
           fixed ? "fixed" : "prior", f16 ? "dtype = f16\n" : "", config_dump);
  return s;
}

static jade_status write_meta(const char *dir, const jade_sim_config *sc, unsigned long long seed, long n,
                              int fixed, int f16, const double *noise) {
  char path[4400], buf[8192];
  size_t pos = 0;
  pos += (size_t)snprintf(buf + pos, sizeof buf - pos,
                          "{\n  \"format\": \"jade-dataset-1\",\n  \"n_sims\": %ld,\n  \"seed\": %llu,\n"
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

int jade_cmd_simulate(int argc, char **argv) {
  jade_option opts[] = {
      JADE_CONFIG_OPTIONS,
      {"n", "N", "number of simulations", NULL, 0, 0, NULL, 0},
      {"seed", "S", "random seed (theta and maps depend only on seed and index)", "1", 0, 0, NULL, 0},
      {"fixed", NULL, "simulate at the config's cosmology instead of drawing theta from the prior", NULL, 0, 0, NULL, 0},
      {"out", "DIR", "output dataset directory (must not exist; OUT.partial is resumed)", NULL, 0, 0, NULL, 0},
      {"chunk", "K", "simulations per work unit (a unit is written at once)", "32", 0, 0, NULL, 0},
      {"max-chunks", "K", "stop after K work units on each rank (exit code 3; rerun to resume), e.g. for "
                          "batch-queue time limits; 0 = no limit", "0", 0, 0, NULL, 0},
      {"dtype", "T", "storage of kappa.npy: f32, or f16 (IEEE half, numpy float16: half the size, "
                     "relative rounding error <= 2^-11, readers convert to float32)", "f32", 0, 0, NULL, 0},
      {"quiet", NULL, "no progress line", NULL, 0, 0, NULL, 0},
      {NULL, NULL, NULL, NULL, 0, 0, NULL, 0}};
  jade_dist dist;
  int r = jade_cli_start(&argc, &argv, "simulate", "jade simulate --n N --out DIR [options]",
                         "Simulate noise-free log-normal convergence maps (and their theta) into a dataset\n"
                         "that numpy opens directly. Splits over OpenMP threads (OMP_NUM_THREADS) and MPI\n"
                         "ranks (mpirun -np R); interrupted runs resume when the same command is rerun.",
                         opts, &dist);
  if (r >= 0) return r;
  int rc = 1;
  jade_config *cfg = NULL;
  jade_sim_config sc;
  long n, chunk, max_chunks = 0, chunks_run = 0;
  int stopped_early = 0;
  unsigned long long seed;
  char *dump = NULL, *ident = NULL;
  jade_npy_writer *w_theta = NULL, *w_kappa = NULL, *w_lambda = NULL, *w_done = NULL;
  unsigned char *done = NULL;
  const char *out = jade_cli_opt(opts, "out")->value;
  int fixed = jade_cli_opt(opts, "fixed")->seen;
  int quiet = jade_cli_opt(opts, "quiet")->seen;
  char partial[4200], path[4300];
  jade_status st = JADE_OK;

  if (!out) st = jade_error(JADE_ERR_INVALID, "--out DIR is required");
  if (!st) st = jade_cli_long(opts, "n", 1, 100000000L, &n);
  if (!st) st = jade_cli_long(opts, "chunk", 1, 100000, &chunk);
  if (!st) st = jade_cli_long(opts, "max-chunks", 0, 1L << 40, &max_chunks);
  int f16 = 0;
  if (!st) {
    const char *s = jade_cli_opt(opts, "dtype")->value;
    if (!strcmp(s, "f16"))
      f16 = 1;
    else if (strcmp(s, "f32"))
      st = jade_error(JADE_ERR_INVALID, "--dtype: '%s' is not f32 or f16", s);
  }
  const jade_dtype kdt = f16 ? JADE_F16 : JADE_F32;
  if (!st) {
    uint64_t v = 0;
    st = jade_parse_u64("--seed", jade_cli_opt(opts, "seed")->value, UINT64_MAX, &v);
    seed = v;
  }
  if (!st) st = jade_cli_load_config(opts, &cfg);
  if (!st) st = jade_sim_config_read(cfg, &sc);
  if (!st) st = jade_config_check_unused(cfg, (const char *const[]){"", NULL});
  if (!st && !(dump = jade_config_dump(cfg))) st = JADE_ERR_NOMEM;
  if (!st && !(ident = run_identity(dump, seed, n, fixed, f16))) st = jade_error(JADE_ERR_NOMEM, "out of memory");
  if (!st && jade_path_exists(out)) st = jade_error(JADE_ERR_IO, "%s: already exists (choose another --out or remove it)", out);
  if (st) goto done;
  snprintf(partial, sizeof partial, "%s.partial", out);

  /* Rank 0 creates or validates OUT.partial; the others wait and then open the files. */
  const int nb = sc.geom.n_bins, np = sc.geom.n_pix;
  const size_t map_len = (size_t)nb * np * np;
  size_t sh_theta[2] = {(size_t)n, JADE_N_THETA}, sh_kappa[4] = {(size_t)n, (size_t)nb, (size_t)np, (size_t)np};
  size_t sh_lambda[2] = {(size_t)n, (size_t)nb}, sh_done[1] = {(size_t)n};
  int resumed = 0;
  if (dist.rank == 0) {
    snprintf(path, sizeof path, "%s/run.txt", partial);
    if (jade_path_exists(partial)) {
      char *prev = jade_read_text_file(path);
      if (!prev || strcmp(prev, ident) != 0)
        st = jade_error(JADE_ERR_IO, "%s: exists from a different run (config, seed or --n differ); remove it to start over", partial);
      free(prev);
      resumed = 1;
    } else {
      st = jade_mkdir_p(partial);
      if (!st) st = jade_write_file_atomic(path, ident);
      snprintf(path, sizeof path, "%s/config.ini", partial);
      if (!st) st = jade_write_file_atomic(path, dump);
    }
#define OPENW(name, dt, nd, shape, w) \
  if (!st) { snprintf(path, sizeof path, "%s/" name, partial); st = jade_npy_writer_open(path, dt, nd, shape, !resumed, &w); }
    OPENW("theta.npy", JADE_F64, 2, sh_theta, w_theta);
    OPENW("kappa.npy", kdt, 4, sh_kappa, w_kappa);
    OPENW("lambda.npy", JADE_F64, 2, sh_lambda, w_lambda);
    OPENW("done.npy", JADE_U8, 1, sh_done, w_done);
  }
  if (jade_dist_max_int(&dist, st != JADE_OK)) {
    if (!st) st = jade_error(JADE_ERR_IO, "rank 0 failed to prepare %s", partial);
    goto done;
  }
  if (dist.rank != 0) {
    resumed = 1;
    OPENW("theta.npy", JADE_F64, 2, sh_theta, w_theta);
    OPENW("kappa.npy", kdt, 4, sh_kappa, w_kappa);
    OPENW("lambda.npy", JADE_F64, 2, sh_lambda, w_lambda);
    OPENW("done.npy", JADE_U8, 1, sh_done, w_done);
#undef OPENW
  }
  if (st) goto done;
  /* Which simulations are already done (from a previous, interrupted run). */
  done = calloc((size_t)n, 1);
  if (!done) {
    st = jade_error(JADE_ERR_NOMEM, "out of memory");
    goto done;
  }
  {
    jade_npy flags;
    snprintf(path, sizeof path, "%s/done.npy", partial);
    st = jade_npy_map(path, &flags);
    if (st) goto done;
    memcpy(done, flags.data, (size_t)n);
    jade_npy_release(&flags);
  }
  long n_chunks = (n + chunk - 1) / chunk, todo_local = 0, already = 0;
  for (long i = 0; i < n; i++) already += done[i] != 0;
  for (long c = dist.rank; c < n_chunks; c += dist.size)
    for (long i = c * chunk; i < n && i < (c + 1) * chunk; i++) todo_local += !done[i];
  if (dist.rank == 0 && !quiet && already)
    fprintf(stderr, "jade simulate: resuming %s: %ld of %ld simulations already done\n", partial, already, n);

  int nthreads = omp_get_max_threads();
  jade_simulator **sims = calloc((size_t)nthreads, sizeof *sims);
  float *kbuf = malloc(sizeof(float) * map_len * (size_t)chunk);
  uint16_t *hbuf = f16 ? malloc(sizeof(uint16_t) * map_len * (size_t)chunk) : NULL;
  double *tbuf = malloc(sizeof(double) * JADE_N_THETA * (size_t)chunk);
  double *lbuf = malloc(sizeof(double) * nb * (size_t)chunk);
  unsigned char *ones = malloc((size_t)chunk);
  if (!sims || !kbuf || !tbuf || !lbuf || !ones || (f16 && !hbuf)) st = jade_error(JADE_ERR_NOMEM, "out of memory");
  for (int t = 0; t < nthreads && !st; t++) st = jade_simulator_create(&sc, &sims[t]);
  double noise[JADE_MAX_BINS];
  if (!st) {
    jade_simulator_noise(sims[0], noise);
    memset(ones, 1, (size_t)chunk);
  }
  double t_start = jade_time_now(), t_last = t_start, t_cosmo = 0, t_maps = 0;
  long done_local = 0;
  int tty = isatty(2);
  for (long c = dist.rank; c < n_chunks && !st; c += dist.size) {
    long lo = c * chunk, hi = (c + 1) * chunk < n ? (c + 1) * chunk : n;
    int any = 0;
    for (long i = lo; i < hi; i++) any |= !done[i];
    if (!any) continue;
    if (max_chunks && chunks_run == max_chunks) {
      stopped_early = 1;
      break;
    }
    chunks_run++;
    int failed = 0;
    char msg[1024] = "";
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : t_cosmo, t_maps)
    for (long i = lo; i < hi; i++) {
      int tid = omp_get_thread_num();
      double *theta = tbuf + (size_t)(i - lo) * JADE_N_THETA;
      if (fixed)
        jade_theta_from_params(&sc.cosmo, theta);
      else
        jade_prior_draw(&sc, seed, (uint64_t)i, theta);
      jade_status s2 = jade_simulator_run(sims[tid], theta, seed, (uint64_t)i, kbuf + (size_t)(i - lo) * map_len,
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
    st = jade_npy_writer_put_rows(w_theta, (size_t)lo, (size_t)(hi - lo), tbuf);
    if (!st && f16) {
      /* a map beyond float16's range (|kappa| >= 65520) would be stored as Inf: refuse */
      size_t nv = (size_t)(hi - lo) * map_len;
      jade_f32_to_f16_array(hbuf, kbuf, nv);
      for (size_t i = 0; i < nv && !st; i++)
        if ((hbuf[i] & 0x7c00u) == 0x7c00u)
          st = jade_error(JADE_ERR_NUMERIC, "simulation %ld: kappa %g does not fit float16 (use --dtype f32)",
                          lo + (long)(i / map_len), (double)kbuf[i]);
    }
    if (!st) st = jade_npy_writer_put_rows(w_kappa, (size_t)lo, (size_t)(hi - lo), f16 ? (const void *)hbuf : kbuf);
    if (!st) st = jade_npy_writer_put_rows(w_lambda, (size_t)lo, (size_t)(hi - lo), lbuf);
    /* The flags are written after the data, so a kill never marks a missing map as done. */
    if (!st) st = jade_npy_writer_put_rows(w_done, (size_t)lo, (size_t)(hi - lo), ones);
    for (long i = lo; i < hi; i++) done_local += !done[i];
    double now = jade_time_now();
    if (dist.rank == 0 && !quiet && (now - t_last > (tty ? 0.5 : 10.0) || done_local == todo_local)) {
      t_last = now;
      double rate = done_local / (now - t_start);
      char eta[32];
      jade_format_duration((todo_local - done_local) / rate, eta, sizeof eta);
      fprintf(stderr, "%ssimulate: %ld/%ld (rank 0 of %d), %.1f sims/s, %.0f%% of time in cosmology, %s left%s",
              tty ? "\r" : "", done_local, todo_local, dist.size, rate,
              100 * t_cosmo / (t_cosmo + t_maps + 1e-30), eta, tty ? "   " : "\n");
    }
  }
  if (dist.rank == 0 && !quiet && tty && todo_local) fprintf(stderr, "\n");
  for (int t = 0; t < nthreads && sims; t++) jade_simulator_free(sims[t]);
  free(sims);
  free(kbuf);
  free(hbuf);
  free(tbuf);
  free(lbuf);
  free(ones);
  jade_status cst;
#define CLOSEW(w) cst = jade_npy_writer_close(w); w = NULL; if (!st) st = cst
  CLOSEW(w_theta);
  CLOSEW(w_kappa);
  CLOSEW(w_lambda);
  CLOSEW(w_done);
#undef CLOSEW
  if (jade_dist_max_int(&dist, st != JADE_OK)) {
    if (!st) st = jade_error(JADE_ERR_IO, "another rank failed");
    goto done;
  }
  if (jade_dist_max_int(&dist, stopped_early)) {
    if (dist.rank == 0 && !quiet)
      fprintf(stderr, "jade simulate: stopped after --max-chunks; rerun the same command to resume %s\n", partial);
    rc = 3;
    goto done;
  }
  /* Rank 0 checks completeness and publishes the dataset. */
  if (dist.rank == 0) {
    jade_npy flags;
    snprintf(path, sizeof path, "%s/done.npy", partial);
    st = jade_npy_map(path, &flags);
    long missing = 0;
    if (!st) {
      for (long i = 0; i < n; i++) missing += ((unsigned char *)flags.data)[i] == 0;
      jade_npy_release(&flags);
      if (missing) st = jade_error(JADE_ERR_INTERNAL, "%s: %ld simulations missing after the run", partial, missing);
    }
    size_t sh_noise[1] = {(size_t)nb};
    snprintf(path, sizeof path, "%s/noise.npy", partial);
    if (!st) st = jade_npy_write(path, JADE_F64, 1, sh_noise, noise);
    if (!st) st = write_meta(partial, &sc, seed, n, fixed, f16, noise);
    snprintf(path, sizeof path, "%s/done.npy", partial);
    if (!st && unlink(path) != 0) st = jade_error(JADE_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/run.txt", partial);
    if (!st && unlink(path) != 0) st = jade_error(JADE_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    if (!st && rename(partial, out) != 0) st = jade_error(JADE_ERR_IO, "%s: cannot rename to %s: %s", partial, out, strerror(errno));
    if (!st && !quiet)
      fprintf(stderr, "jade simulate: wrote %ld simulations to %s (%.1f s)\n", n, out, jade_time_now() - t_start);
  }
  if (jade_dist_max_int(&dist, st != JADE_OK) && !st) st = jade_error(JADE_ERR_IO, "rank 0 failed to finish %s", out);
done:
  if (w_theta) jade_npy_writer_close(w_theta);
  if (w_kappa) jade_npy_writer_close(w_kappa);
  if (w_lambda) jade_npy_writer_close(w_lambda);
  if (w_done) jade_npy_writer_close(w_done);
  if (st)
    rc = jade_cli_fail("simulate");
  else if (rc != 3)
    rc = 0;
  free(done);
  free(dump);
  free(ident);
  jade_config_free(cfg);
  jade_cli_free(opts);
  jade_dist_finalize(&dist);
  return rc;
}
