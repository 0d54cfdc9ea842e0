/* Reading jade datasets (include/jade/dataset.h): open and check the arrays, map access,
 * the identity hash. */
#include "jade/dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void jade_dataset_close(jade_dataset *ds) {
  if (!ds) return;
  jade_npy_release(&ds->theta);
  jade_npy_release(&ds->kappa);
  jade_npy_release(&ds->noise);
}

jade_status jade_dataset_open(const char *dir, jade_dataset *ds) {
  memset(ds, 0, sizeof *ds);
  ds->size_deg = NAN;
  char p[4200];
  if (!jade_path_is_dir(dir)) return jade_error(JADE_ERR_IO, "%s: dataset directory not found (make one with jade simulate)", dir);
  jade_status st;
  snprintf(p, sizeof p, "%s/theta.npy", dir);
  if ((st = jade_npy_read(p, 1, &ds->theta))) return st;
  snprintf(p, sizeof p, "%s/kappa.npy", dir);
  if ((st = jade_npy_map(p, &ds->kappa)) || (st = jade_npy_check_finite(p, &ds->kappa))) goto fail;
  snprintf(p, sizeof p, "%s/noise.npy", dir);
  if ((st = jade_npy_read(p, 1, &ds->noise))) goto fail;
  if (ds->theta.dtype != JADE_F64 || ds->theta.ndim != 2 || ds->theta.shape[1] != JADE_N_THETA) {
    st = jade_error(JADE_ERR_FORMAT, "%s/theta.npy: expected float64 (N, %d)", dir, JADE_N_THETA);
    goto fail;
  }
  ds->n = (long)ds->theta.shape[0];
  if ((ds->kappa.dtype != JADE_F32 && ds->kappa.dtype != JADE_F16) || ds->kappa.ndim != 4 ||
      (long)ds->kappa.shape[0] != ds->n || ds->kappa.shape[2] != ds->kappa.shape[3] || ds->kappa.shape[2] < 1 ||
      ds->kappa.shape[1] < 1 || ds->kappa.shape[1] > JADE_MAX_BINS) {
    st = jade_error(JADE_ERR_FORMAT, "%s/kappa.npy: expected float32 or float16 (%ld, bins, n, n) matching theta.npy", dir, ds->n);
    goto fail;
  }
  ds->bins = (int)ds->kappa.shape[1];
  ds->npix = (int)ds->kappa.shape[2];
  ds->nx = (size_t)ds->bins * ds->npix * ds->npix;
  if (ds->noise.dtype != JADE_F64 || ds->noise.ndim != 1 || (int)ds->noise.shape[0] != ds->bins) {
    st = jade_error(JADE_ERR_FORMAT, "%s/noise.npy: expected float64 (%d,)", dir, ds->bins);
    goto fail;
  }
  for (int i = 0; i < ds->bins; i++)
    if (!(((double *)ds->noise.data)[i] >= 0)) {
      st = jade_error(JADE_ERR_FORMAT, "%s/noise.npy: negative noise sigma in bin %d", dir, i);
      goto fail;
    }
  if (ds->n < 2) {
    st = jade_error(JADE_ERR_INVALID, "%s: only %ld simulation(s); training and validation need at least 2", dir, ds->n);
    goto fail;
  }
  /* the patch size (meta.json of jade simulate; optional) */
  snprintf(p, sizeof p, "%s/meta.json", dir);
  char *meta = jade_read_text_file(p);
  ds->size_deg = meta ? jade_json_number(meta, "size_deg") : NAN;
  free(meta);
  return JADE_OK;
fail:
  jade_dataset_close(ds);
  return st;
}

const float *jade_dataset_map(const jade_dataset *ds, long i, float *scratch) {
  if (ds->kappa.dtype == JADE_F32) return (const float *)ds->kappa.data + (size_t)i * ds->nx;
  jade_f16_to_f32_array(scratch, (const uint16_t *)ds->kappa.data + (size_t)i * ds->nx, ds->nx);
  return scratch;
}

uint64_t jade_dataset_hash(const jade_dataset *ds) {
  /* every array training reads, with its shape */
  uint64_t h = 0x6a616465u; /* "jade" */
  const jade_npy *arrays[3] = {&ds->theta, &ds->kappa, &ds->noise};
  for (int a = 0; a < 3; a++) {
    const jade_npy *x = arrays[a];
    h = jade_hash_mix(h ^ (uint64_t)x->dtype ^ ((uint64_t)x->ndim << 8));
    for (int k = 0; k < x->ndim; k++) h = jade_hash_mix(h ^ (uint64_t)x->shape[k]);
    h = jade_hash_mix(h ^ jade_hash_bytes(x->data, jade_npy_count(x) * jade_dtype_size(x->dtype)));
  }
  return h;
}
