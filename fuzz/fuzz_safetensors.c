/* Fuzz safetensors reading and what is built from it: jade_safetensors_read, tensor access
 * and jade_safetensors_copy_f32, the model / normalisation metadata parsers, and
 * jade_trained_model_load (model metadata -> jade_model_create -> tensors), the path of
 * jade sample, validate and report. The training state (state.safetensors) is the same
 * container with the same norm.* metadata. */
#include "fuzz_util.h"
#include "jade/safetensors.h"
#include "jade/train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write("fuzz.safetensors", data, size);
  if (!path) return 0;
  jade_safetensors *st = NULL;
  jade_status s = jade_safetensors_read(path, &st);
  fuzz_check_error(s);
  if (s) return 0;
  for (int i = 0; i < jade_safetensors_count(st); i++) {
    const jade_st_tensor *t = jade_safetensors_tensor(st, i);
    FUZZ_ASSERT(t && jade_safetensors_find(st, t->name) == t);
    size_t bytes;
    FUZZ_ASSERT(!jade_size_product(t->shape, t->ndim, jade_dtype_size(t->dtype), SIZE_MAX, &bytes));
    volatile unsigned char sink = 0;
    if (bytes) sink ^= ((const unsigned char *)t->data)[bytes - 1];
    (void)sink;
    if (t->dtype == JADE_F32 && bytes <= ((size_t)64 << 20)) {
      float *dst = malloc(bytes ? bytes : 1);
      if (dst) {
        fuzz_check_error(jade_safetensors_copy_f32(st, t->name, t->ndim, t->shape, dst));
        free(dst);
      }
    }
  }
  for (int i = 0; i < jade_safetensors_meta_count(st); i++) {
    const char *k, *v;
    jade_safetensors_meta_at(st, i, &k, &v);
    FUZZ_ASSERT(k && v && jade_safetensors_meta(st, k));
  }
  jade_model_config mc;
  s = jade_model_config_from_meta(st, &mc);
  fuzz_check_error(s);
  int small = 0;
  if (!s) {
    /* build only models of bounded size (libFuzzer treats huge mallocs as crashes): the
     * sizes are the config check's, here limited further to ~64 M parameters */
    double D = mc.width, L = mc.depth, H = mc.mlp_hidden, T = (double)(mc.img_size / mc.patch) * (mc.img_size / mc.patch);
    double est = L * (4 * D * D + 3 * D * H + 12 * D * D) + mc.n_cosmo_tokens * D * (mc.n_params + 1) + T * D +
                 (double)mc.bottleneck * (mc.patch * mc.patch * mc.channels + D) + mc.time_freq * D + D * D;
    small = est < 64e6;
    if (small) {
      jade_model *m = NULL;
      s = jade_model_create(&m, &mc);
      fuzz_check_error(s);
      jade_model_free(m);
    }
  }
  jade_norm norm;
  fuzz_check_error(jade_norm_from_meta(st, &norm));
  jade_safetensors_free(st);
  if (small) {
    jade_trained_model *tm = NULL;
    s = jade_trained_model_load(path, &tm);
    fuzz_check_error(s);
    jade_trained_model_free(tm);
  }
  return 0;
}
