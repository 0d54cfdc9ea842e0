/* The state of a JADE training run (train_internal.h): its identity (config lines and
 * --init-from model), the normalisation, the output folder's checks, the training-state
 * checkpoint (format below) and loss.csv.
 *
 * state.safetensors ("jade-train-state-1"): tensors params, ema, adam_m, adam_v (F32, the
 * model's parameter layout); metadata step, adam_steps, accum (the running sums of the
 * unlogged steps), data.hash / data.n / data.n_train / data.n_val, model.*, norm.*, flow.*
 * and identity. */
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/io.h"
#include "train_internal.h"

#define STATE_FORMAT "jade-train-state-1"

void train_permutation(long n, uint64_t seed, uint64_t stream, long *out) {
  for (long i = 0; i < n; i++) out[i] = i;
  for (long i = n - 1; i > 0; i--) {
    long j = (long)(jade_rng_uniform(seed, stream, (uint64_t)i) * (double)(i + 1));
    if (j > i) j = i;
    long t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
}

/* The starting model is part of the run's identity, so that a resume with another one is
 * refused. */
jade_status train_load_init_model(const char *path, const jade_model_config *mc, const jade_dataset *ds,
                                  jade_trained_model **out, char **ident) {
  jade_trained_model *tm = NULL;
  jade_status st = jade_trained_model_load(path, &tm);
  if (st) return jade_error_context(st, "--init-from");
  jade_model *ref = NULL;
  const jade_model_config *ic = jade_model_get_config(tm->model);
  if (!tm->norm.masked && ic->cond_channels == ic->channels && mc->cond_channels == 3 * mc->channels) {
    /* fine-tuning a convergence-only model into a masked one: the mask and noise-map
     * channels start with zero input weights (jade_model_copy_expand_cond) */
    if ((st = jade_model_create(&ref, mc))) goto fail;
    if ((st = jade_model_copy_expand_cond(ref, tm->model))) {
      jade_model_free(ref);
      goto fail;
    }
    jade_model_free(tm->model);
    tm->model = ref;
    ref = NULL;
  }
  if ((st = jade_model_create(&ref, mc))) goto fail;
  int nt = jade_model_num_tensors(ref), same = nt == jade_model_num_tensors(tm->model);
  for (int i = 0; i < nt && same; i++) {
    const jade_tensor_info *a = jade_model_tensor(ref, i), *b = jade_model_tensor(tm->model, i);
    same = !strcmp(a->name, b->name) && a->ndim == b->ndim && a->offset == b->offset;
    for (int k = 0; k < a->ndim && same; k++) same = a->shape[k] == b->shape[k];
  }
  jade_model_free(ref);
  if (!same) {
    st = jade_error(JADE_ERR_INVALID, "--init-from %s: its network differs from the configuration's [model] (train with "
                    "the model's own config.ini)", tm->path);
    goto fail;
  }
  if (tm->norm.n_bins != ds->bins || tm->norm.n_pix != ds->npix) {
    st = jade_error(JADE_ERR_INVALID, "--init-from %s: trained on %d bins of %d pixels, the dataset has %d of %d", tm->path,
                    tm->norm.n_bins, tm->norm.n_pix, ds->bins, ds->npix);
    goto fail;
  }
  const size_t n = jade_model_num_params(tm->model);
  const uint64_t h = jade_hash_bytes(jade_model_params(tm->model), n * sizeof(float));
  size_t len = strlen(*ident) + strlen(tm->path) + 96;
  char *id2 = malloc(len);
  if (!id2) {
    st = jade_error(JADE_ERR_NOMEM, "out of memory");
    goto fail;
  }
  snprintf(id2, len, "%sinit_from = %s (step %ld, weights %016llx)\n", *ident, tm->path, tm->step, (unsigned long long)h);
  free(*ident);
  *ident = id2;
  *out = tm;
  return JADE_OK;
fail:
  jade_trained_model_free(tm);
  return st;
}

char *train_identity(const char *text) {
  size_t len = strlen(text);
  char *out = malloc(len + 1);
  if (!out) return NULL;
  size_t pos = 0;
  const char *p = text;
  while (*p) {
    const char *e = strchr(p, '\n');
    size_t l = e ? (size_t)(e - p + 1) : strlen(p);
    const char *eq = memchr(p, '=', l);
    const char *dot = memchr(p, '.', eq ? (size_t)(eq - p) : l);
    int keep = !dot || !strncmp(p, "model.", 6) || !strncmp(p, "train.", 6);
    if (keep) {
      memcpy(out + pos, p, l);
      pos += l;
    }
    p += l;
  }
  out[pos] = 0;
  return out;
}

/* First line that differs between two config texts, for a helpful message. */
static void first_difference(const char *a, const char *b, char *out, size_t n) {
  while (*a || *b) {
    const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
    size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
    if (la != lb || memcmp(a, b, la)) {
      snprintf(out, n, "saved '%.*s' vs now '%.*s'", (int)(la > 80 ? 80 : la), a, (int)(lb > 80 ? 80 : lb), b);
      return;
    }
    a += la + (ea != NULL);
    b += lb + (eb != NULL);
  }
  snprintf(out, n, "?");
}

/* Nothing in path but the temporaries of killed writers (a run killed while writing its
 * first file has not started). */
static int dir_is_empty(const char *path) {
  DIR *d = opendir(path);
  if (!d) return 0;
  struct dirent *e;
  int empty = 1;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && !jade_is_temporary_name(e->d_name)) {
      empty = 0;
      break;
    }
  closedir(d);
  return empty;
}

const char train_loss_header[] =
    "step,epoch,lr,loss,loss_map,loss_theta,grad_norm,val_loss,val_loss_ema,val_theta_ema,elapsed_s\n";

jade_status train_truncate_loss_csv(const char *path, long last_step, double *elapsed) {
  *elapsed = 0;
  char *text = jade_read_text_file(path);
  if (!text) return jade_write_file_atomic(path, train_loss_header);
  size_t len = strlen(text), pos = 0;
  char *out = malloc(len + sizeof train_loss_header + 1);
  if (!out) {
    free(text);
    return jade_error(JADE_ERR_NOMEM, "out of memory");
  }
  memcpy(out, train_loss_header, sizeof train_loss_header - 1);
  pos = sizeof train_loss_header - 1;
  char *p = strchr(text, '\n');
  p = p ? p + 1 : text + len;
  while (*p) {
    char *e = strchr(p, '\n');
    if (!e) break; /* an incomplete last line is dropped */
    long s = strtol(p, NULL, 10);
    if (s > last_step) break;
    const char *last_comma = NULL;
    for (char *q = p; q < e; q++)
      if (*q == ',') last_comma = q;
    if (last_comma) *elapsed = strtod(last_comma + 1, NULL);
    memcpy(out + pos, p, (size_t)(e - p + 1));
    pos += (size_t)(e - p + 1);
    p = e + 1;
  }
  out[pos] = 0;
  jade_status st = jade_write_file_atomic(path, out);
  free(out);
  free(text);
  return st;
}

/* theta_mean / theta_std: the prior's moments, or those of the training split. */
static jade_status theta_moments(const jade_train_config *tc, const jade_train_options *o, const jade_dataset *ds,
                                 const long *train_idx, long n_train, jade_norm *norm) {
  const int P = JADE_N_THETA;
  const double *th = ds->theta.data;
  for (int i = 0; i < P; i++) {
    if (!tc->theta_norm_dataset) {
      if (!o->sim) return jade_error(JADE_ERR_INVALID, "train.theta_norm = prior needs the prior of the configuration");
      jade_prior_moments(&o->sim->prior[i], &norm->theta_mean[i], &norm->theta_std[i]);
    } else {
      double s1 = 0, s2 = 0;
      for (long k = 0; k < n_train; k++) s1 += th[train_idx[k] * P + i];
      double mean = s1 / n_train;
      for (long k = 0; k < n_train; k++) s2 += (th[train_idx[k] * P + i] - mean) * (th[train_idx[k] * P + i] - mean);
      norm->theta_mean[i] = mean;
      norm->theta_std[i] = sqrt(s2 / n_train);
    }
    if (!(norm->theta_std[i] > 0))
      return jade_error(JADE_ERR_INVALID, "%s: %s has zero spread (a --fixed dataset? use train.theta_norm = prior)",
                        o->data_dir, jade_theta_names[i]);
  }
  return JADE_OK;
}

/* map_std per bin: pixel standard deviation over the training split, from per-map sums
 * added in map order (independent of the thread count). */
static jade_status map_std(const jade_dataset *ds, const char *data_dir, const long *train_idx, long n_train, jade_norm *norm) {
  double *sums = malloc((size_t)n_train * ds->bins * 2 * sizeof *sums);
  if (!sums) return jade_error(JADE_ERR_NOMEM, "out of memory");
  const size_t npix = (size_t)ds->npix * ds->npix;
  int oom = 0;
#pragma omp parallel reduction(| : oom)
  {
    /* float16 datasets: each thread converts its maps into its own scratch */
    float *scratch = ds->kappa.dtype == JADE_F32 ? NULL : malloc(ds->nx * sizeof(float));
    oom = ds->kappa.dtype != JADE_F32 && !scratch;
#pragma omp for schedule(static)
    for (long k = 0; k < n_train; k++) {
      if (oom) continue;
      const float *kp = jade_dataset_map(ds, train_idx[k], scratch);
      for (int b = 0; b < ds->bins; b++) {
        double s1 = 0, s2 = 0;
        for (size_t i = 0; i < npix; i++) {
          double v = kp[b * npix + i];
          s1 += v;
          s2 += v * v;
        }
        sums[(k * ds->bins + b) * 2] = s1;
        sums[(k * ds->bins + b) * 2 + 1] = s2;
      }
    }
    free(scratch);
  }
  if (oom) {
    free(sums);
    return jade_error(JADE_ERR_NOMEM, "out of memory converting float16 maps");
  }
  jade_status st = JADE_OK;
  for (int b = 0; b < ds->bins; b++) {
    double s1 = 0, s2 = 0;
    for (long k = 0; k < n_train; k++) {
      s1 += sums[(k * ds->bins + b) * 2];
      s2 += sums[(k * ds->bins + b) * 2 + 1];
    }
    double cnt = (double)n_train * npix, mean = s1 / cnt, var = s2 / cnt - mean * mean;
    norm->map_std[b] = sqrt(var > 0 ? var : 0);
    if (!(norm->map_std[b] > 0) || !isfinite(norm->map_std[b])) {
      st = jade_error(JADE_ERR_INVALID, "%s/kappa.npy: bin %d has zero or non-finite variance", data_dir, b);
      break;
    }
  }
  free(sums);
  return st;
}

/* Every map (validation split too) finite and representable in network units: squares of
 * kappa (variances, power spectra) and of kappa / map_std (the loss) are formed in float32. */
static jade_status check_maps_finite(const jade_dataset *ds, const char *data_dir, const jade_norm *norm) {
  const size_t nmaps = (size_t)ds->n * ds->bins, npx = (size_t)ds->npix * ds->npix;
  float *amax = malloc(nmaps * sizeof *amax);
  if (!amax) return jade_error(JADE_ERR_NOMEM, "out of memory");
#pragma omp parallel for schedule(static)
  for (size_t m = 0; m < nmaps; m++) {
    float a = 0;
    if (ds->kappa.dtype == JADE_F32) {
      const float *kp = (const float *)ds->kappa.data + m * npx;
      for (size_t i = 0; i < npx; i++) {
        float v = fabsf(kp[i]);
        a = (v > a || isnan(v)) ? v : a; /* NaN propagates */
      }
    } else { /* float16: finite by jade_npy_check_finite; largest magnitude 65504 */
      const uint16_t *kp = (const uint16_t *)ds->kappa.data + m * npx;
      for (size_t i = 0; i < npx; i++) {
        float v = fabsf(jade_f16_to_f32(kp[i]));
        a = (v > a || isnan(v)) ? v : a;
      }
    }
    amax[m] = a;
  }
  jade_status st = JADE_OK;
  for (size_t m = 0; m < nmaps && !st; m++) {
    const int b = (int)(m % (size_t)ds->bins);
    const double x = (double)amax[m] / norm->map_std[b];
    if (!isfinite(amax[m]) || !((double)amax[m] * amax[m] <= FLT_MAX) || !(x * x <= FLT_MAX))
      st = jade_error(JADE_ERR_INVALID, "%s/kappa.npy: map %zu, bin %d: |kappa| = %g is %s", data_dir, m / (size_t)ds->bins, b,
                      (double)amax[m], isfinite(amax[m]) ? "too large (its square, or that of kappa / map std, overflows float32)" : "not finite");
  }
  free(amax);
  return st;
}

jade_status train_compute_norm(const jade_train_config *tc, const jade_train_options *o, const jade_dataset *ds,
                               const long *train_idx, long n_train, jade_norm *out) {
  jade_norm norm;
  memset(&norm, 0, sizeof norm);
  norm.n_bins = ds->bins;
  norm.n_pix = ds->npix;
  norm.size_deg = o->sim ? o->sim->geom.size_deg : 0;
  norm.theta_norm_dataset = tc->theta_norm_dataset;
  for (int i = 0; i < ds->bins; i++) norm.noise[i] = ((double *)ds->noise.data)[i];
  jade_status st;
  if ((st = theta_moments(tc, o, ds, train_idx, n_train, &norm)) || (st = map_std(ds, o->data_dir, train_idx, n_train, &norm)) ||
      (st = check_maps_finite(ds, o->data_dir, &norm)))
    return st;
  *out = norm;
  return JADE_OK;
}

static int norm_equal(const jade_norm *a, const jade_norm *b) {
  if (a->n_bins != b->n_bins || a->n_pix != b->n_pix || a->size_deg != b->size_deg ||
      a->theta_norm_dataset != b->theta_norm_dataset || a->masked != b->masked || a->noise_ln_max != b->noise_ln_max)
    return 0;
  for (int i = 0; i < JADE_N_THETA; i++)
    if (a->theta_mean[i] != b->theta_mean[i] || a->theta_std[i] != b->theta_std[i]) return 0;
  for (int i = 0; i < a->n_bins; i++)
    if (a->map_std[i] != b->map_std[i] || a->noise[i] != b->noise[i]) return 0;
  return 1;
}

jade_status train_check_out_dir(const jade_train_options *o, const jade_dist *d, int *resuming) {
  char p_state[4300], p_model[4300], p_cfg[4300];
  snprintf(p_state, sizeof p_state, "%s/state.safetensors", o->out_dir);
  snprintf(p_model, sizeof p_model, "%s/model.safetensors", o->out_dir);
  snprintf(p_cfg, sizeof p_cfg, "%s/config.ini", o->out_dir);
  jade_status st = JADE_OK;
  *resuming = o->resume && jade_path_exists(p_state);
  if (o->resume && !*resuming) {
    /* --resume without a checkpoint: refused, unless MODELDIR is empty or is this very run
     * killed before its first checkpoint (its config.ini is this config, no model yet), where
     * starting at step 0 loses nothing and gives the same bytes */
    char *saved_cfg = jade_path_exists(p_cfg) ? jade_read_text_file(p_cfg) : NULL;
    int unstarted = jade_path_is_dir(o->out_dir) && (dir_is_empty(o->out_dir) ||
                    (saved_cfg && !strcmp(saved_cfg, o->config_text ? o->config_text : "") && !jade_path_exists(p_model)));
    free(saved_cfg);
    if (!jade_path_exists(o->out_dir))
      st = jade_error(JADE_ERR_IO, "%s: nothing to resume (no such directory); run without --resume to start a training", o->out_dir);
    else if (!unstarted)
      st = jade_error(JADE_ERR_IO, "%s: no state.safetensors to resume from, and not an unfinished run of this configuration: "
                      "refusing to overwrite it (choose another --out)", o->out_dir);
    else if (d->rank == 0 && !o->quiet)
      fprintf(stderr, "jade train: %s has no checkpoint yet: starting at step 0\n", o->out_dir);
  } else if (!*resuming && jade_path_exists(o->out_dir) && !(jade_path_is_dir(o->out_dir) && dir_is_empty(o->out_dir))) {
    st = jade_error(JADE_ERR_IO, "%s: already exists (use --resume to continue its training, or choose another --out)", o->out_dir);
  }
  /* every rank has looked at MODELDIR before rank 0 creates or changes anything in it */
  if (jade_dist_max_int(d, st != JADE_OK) && !st) st = jade_error(JADE_ERR_IO, "%s: refused by another rank", o->out_dir);
  return st;
}

jade_status train_state_write(const char *path, const train_state_info *info, const jade_model *m, const float *ema,
                              jade_adamw *opt, const jade_norm *norm, const jade_flow_config *flow,
                              const char *ident) {
  const size_t n_par = jade_model_num_params(m);
  metabuf mb = {0};
  train_meta_add(&mb, "format", "%s", STATE_FORMAT);
  train_meta_add(&mb, "step", "%ld", info->step);
  train_meta_add(&mb, "adam_steps", "%ld", jade_adamw_steps(opt));
  double av[5] = {info->acc.n, info->acc.loss, info->acc.lx, info->acc.lth, info->acc.gn};
  train_meta_add_doubles(&mb, "accum", av, 5);
  train_meta_add(&mb, "data.hash", "%016llx", (unsigned long long)info->data_hash);
  train_meta_add(&mb, "data.n", "%ld", info->n);
  train_meta_add(&mb, "data.n_train", "%ld", info->n_train);
  train_meta_add(&mb, "data.n_val", "%ld", info->n_val);
  train_meta_model(&mb, jade_model_get_config(m));
  train_meta_norm(&mb, norm);
  train_meta_flow(&mb, flow);
  train_meta_add(&mb, "identity", "%s", ident);
  jade_st_tensor tt[4] = {{"params", JADE_F32, 1, {n_par}, jade_model_params((jade_model *)m)},
                          {"ema", JADE_F32, 1, {n_par}, ema},
                          {"adam_m", JADE_F32, 1, {n_par}, jade_adamw_m(opt)},
                          {"adam_v", JADE_F32, 1, {n_par}, jade_adamw_v(opt)}};
  jade_status st = train_meta_write(path, tt, 4, &mb);
  train_meta_free(&mb);
  return st;
}

/* The saved run must be this one: format, identity (first differing line named), dataset. */
static jade_status check_state_identity(const jade_safetensors *state, const char *path, const char *data_dir,
                                        uint64_t data_hash, const char *ident) {
  const char *fmt = jade_safetensors_meta(state, "format"), *cfg_saved = jade_safetensors_meta(state, "identity");
  const char *hash = jade_safetensors_meta(state, "data.hash");
  char want_hash[32], diff[256];
  snprintf(want_hash, sizeof want_hash, "%016llx", (unsigned long long)data_hash);
  if (!fmt || strcmp(fmt, STATE_FORMAT) || !cfg_saved)
    return jade_error(JADE_ERR_FORMAT, "%s: not a jade training state (format '%s')", path, fmt ? fmt : "missing");
  if (strcmp(cfg_saved, ident)) {
    first_difference(cfg_saved, ident, diff, sizeof diff);
    return jade_error(JADE_ERR_INVALID, "%s: saved by a run with a different configuration (%s); resume with the same "
                      "config or choose another --out", path, diff);
  }
  if (!hash)
    return jade_error(JADE_ERR_FORMAT, "%s: has no data.hash (saved by an older jade): cannot check that %s is the same "
                      "dataset; start a new training", path, data_dir);
  if (strcmp(hash, want_hash))
    return jade_error(JADE_ERR_INVALID, "%s: saved while training on a different dataset than %s (theta, kappa or noise "
                      "differ)", path, data_dir);
  return JADE_OK;
}

jade_status train_state_read(const char *path, const char *data_dir, train_state_info *info, long max_step, jade_model *m,
                             float *ema, jade_adamw *opt, const jade_norm *norm, const char *ident) {
  jade_safetensors *state = NULL;
  jade_status st = jade_safetensors_read(path, &state);
  if (st) return st;
  if ((st = check_state_identity(state, path, data_dir, info->data_hash, ident))) goto done;
  long adam_steps;
  double av[5];
  const size_t n_par = jade_model_num_params(m);
  size_t sh[1] = {n_par};
  jade_norm saved;
  if ((st = jade_norm_from_meta(state, &saved)) || (st = train_meta_long(state, "step", 0, max_step, &info->step)) ||
      (st = train_meta_long(state, "adam_steps", 0, 1L << 50, &adam_steps)) ||
      (st = train_meta_doubles(state, "accum", 5, av)) ||
      (st = jade_safetensors_copy_f32(state, "params", 1, sh, jade_model_params(m))) ||
      (st = jade_safetensors_copy_f32(state, "ema", 1, sh, ema)) ||
      (st = jade_safetensors_copy_f32(state, "adam_m", 1, sh, jade_adamw_m(opt))) ||
      (st = jade_safetensors_copy_f32(state, "adam_v", 1, sh, jade_adamw_v(opt))))
    goto done;
  /* the saved normalisation must be the one this dataset and config give (exact: written
   * with %.17g, recomputed in the same order) */
  if (!norm_equal(&saved, norm)) {
    st = jade_error(JADE_ERR_FORMAT, "%s: its norm.* metadata differ from the normalisation of %s (an edited or corrupt "
                    "state); start a new training", path, data_dir);
    goto done;
  }
  jade_adamw_set_steps(opt, adam_steps);
  info->acc = (train_accum){av[0], av[1], av[2], av[3], av[4]};
done:
  jade_safetensors_free(state);
  return st;
}
