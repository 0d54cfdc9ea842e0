/* Fuzz the dataset format read by jade train (jade_dataset_open): one input holds
 * theta.npy, kappa.npy, noise.npy and meta.json separated by FUZZ_SEP, written into a
 * directory. Checks: shapes consistent with what training indexes. */
#include "fuzz_util.h"
#include "jade/io.h"
#include "jade/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *part[4];
  size_t len[4];
  int n = fuzz_split(data, size, part, len, 4);
  static const char *const names[4] = {"ds/theta.npy", "ds/kappa.npy", "ds/noise.npy", "ds/meta.json"};
  mkdir(fuzz_path("ds"), 0777);
  for (int i = 0; i < 4; i++) {
    if (i < n)
      fuzz_write(names[i], part[i], len[i]);
    else
      unlink(fuzz_path(names[i]));
  }
  jade_dataset ds;
  jade_status st = jade_dataset_open(fuzz_path("ds"), &ds);
  fuzz_check_error(st);
  if (!st) {
    FUZZ_ASSERT(ds.n >= 2 && ds.bins >= 1 && ds.npix >= 1);
    FUZZ_ASSERT(ds.theta.shape[0] == (size_t)ds.n && ds.kappa.shape[0] == (size_t)ds.n);
    FUZZ_ASSERT(ds.nx == (size_t)ds.bins * ds.npix * ds.npix);
    FUZZ_ASSERT(ds.kappa.dtype == JADE_F32 || ds.kappa.dtype == JADE_F16);
    volatile unsigned char sink = ((const unsigned char *)ds.kappa.data)[(size_t)ds.n * ds.nx * jade_dtype_size(ds.kappa.dtype) - 1];
    volatile double s2 = ((const double *)ds.theta.data)[(size_t)ds.n * 6 - 1] + ((const double *)ds.noise.data)[ds.bins - 1];
    (void)sink;
    (void)s2;
    jade_dataset_close(&ds);
  }
  char *meta = jade_read_text_file(fuzz_path("ds/meta.json"));
  if (meta) {
    volatile double v = jade_json_number(meta, "size_deg") + jade_json_number(meta, "n_pix");
    (void)v;
    free(meta);
  }
  return 0;
}
