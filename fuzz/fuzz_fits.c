/* Fuzz FITS reading: jade_fits_read_image (primary and named HDUs), header keys, and the
 * observation / truth readers that jade sample, mcmc and report use. */
#include "fuzz_util.h"
#include "jade/io.h"
#include "jade/observation.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write("fuzz.fits", data, size);
  if (!path) return 0;
  static const char *const hdus[] = {NULL, "KAPPA"};
  for (int h = 0; h < 2; h++) {
    int naxis = 0;
    long dims[3];
    float *img = NULL;
    jade_status st = jade_fits_read_image(path, hdus[h], &naxis, dims, &img);
    fuzz_check_error(st);
    if (!st) {
      FUZZ_ASSERT(naxis >= 1 && naxis <= 3 && dims[0] > 0 && dims[1] > 0 && dims[2] > 0);
      size_t n = (size_t)dims[0] * (size_t)dims[1] * (size_t)dims[2];
      volatile float sink = 0;
      for (size_t i = 0; i < n; i += 1024) sink += img[i];
      sink += img[n - 1];
      (void)sink;
      free(img);
    }
  }
  double v;
  fuzz_check_error(jade_fits_read_key_double(path, "KAPPA", "SIZEDEG", &v));
  jade_observation obs;
  jade_status st = jade_observation_read(path, &obs);
  fuzz_check_error(st);
  if (!st) {
    volatile float sink = obs.kappa[(size_t)obs.n_bins * obs.n_pix * obs.n_pix - 1];
    (void)sink;
    jade_observation_free(&obs);
  }
  double theta[JADE_N_THETA];
  float *k = NULL;
  int nb = 0, np = 0;
  st = jade_observation_read_truth(path, theta, &k, &nb, &np);
  fuzz_check_error(st);
  if (!st) {
    /* callers index n_bins x n_pix x n_pix pixels */
    volatile float sink = k[(size_t)nb * np * np - 1];
    (void)sink;
    free(k);
  }
  return 0;
}
