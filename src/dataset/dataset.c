/* Reading jade datasets (include/jade/dataset.h): open and check the arrays, map access,
 * the identity hash. */
#include "jade/dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int is_dir(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The finaliser of MurmurHash3 (Appleby 2008): every input bit affects every output bit. */
static uint64_t hash_mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

/* 64-bit hash of one block, word by word. */
static uint64_t hash_block(const unsigned char *p, size_t len, uint64_t b) {
  uint64_t x = 0x9e3779b97f4a7c15ull * (b + 1), w;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    memcpy(&w, p + i, 8);
    x = (x ^ hash_mix(w)) * 0x9e3779b97f4a7c15ull;
  }
  w = 0;
  memcpy(&w, p + i, len - i);
  return hash_mix(x ^ hash_mix(w ^ ((uint64_t)(len - i) << 56)));
}

/* 64-bit hash of n bytes: 1 MiB blocks hashed in parallel, the block hashes combined in
 * order, so the value does not depend on the thread count. An identity check for resuming,
 * not a cryptographic hash. */
static uint64_t hash_bytes(const void *data, size_t n) {
  enum { BLOCK = 1 << 20, GROUP = 256 };
  const unsigned char *p = data;
  const size_t nblk = (n + BLOCK - 1) / BLOCK;
  uint64_t hb[GROUP], h = hash_mix(n + 1);
  for (size_t g = 0; g < nblk; g += GROUP) {
    const long m = (long)(nblk - g < GROUP ? nblk - g : GROUP);
#pragma omp parallel for schedule(static) if (m > 4)
    for (long k = 0; k < m; k++) {
      const size_t b = g + (size_t)k, lo = b * BLOCK;
      hb[k] = hash_block(p + lo, n - lo < BLOCK ? n - lo : BLOCK, b);
    }
    for (long k = 0; k < m; k++) h = hash_mix(h ^ hb[k]) * 0x9e3779b97f4a7c15ull;
  }
  return hash_mix(h);
}

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
  if (!is_dir(dir)) return jade_error(JADE_ERR_IO, "%s: dataset directory not found (make one with jade simulate)", dir);
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
    h = hash_mix(h ^ (uint64_t)x->dtype ^ ((uint64_t)x->ndim << 8));
    for (int k = 0; k < x->ndim; k++) h = hash_mix(h ^ (uint64_t)x->shape[k]);
    h = hash_mix(h ^ hash_bytes(x->data, jade_npy_count(x) * jade_dtype_size(x->dtype)));
  }
  return h;
}
