/* Fuzz the .npy reader: jade_npy_read (with and without the finite check), jade_npy_map,
 * and jade_npy_writer_open on an existing file (the simulate/validate resume path). An array
 * read successfully must write back and read back identically. */
#include "fuzz_util.h"
#include "jade/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write("fuzz.npy", data, size);
  if (!path) return 0;
  jade_npy a, b, m;
  jade_status st = jade_npy_read(path, 0, &a);
  fuzz_check_error(st);
  jade_status sf = jade_npy_read(path, 1, &b);
  fuzz_check_error(sf);
  if (!sf) jade_npy_release(&b);
  jade_status sm = jade_npy_map(path, &m);
  fuzz_check_error(sm);
  if (!sm) {
    FUZZ_ASSERT(!st);
    jade_npy_release(&m);
  }
  if (!st) {
    size_t bytes = 0;
    FUZZ_ASSERT(!jade_size_product(a.shape, a.ndim, jade_dtype_size(a.dtype), SIZE_MAX, &bytes));
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < bytes; i += 4096) sink ^= ((const unsigned char *)a.data)[i];
    (void)sink;
    const char *p2 = fuzz_path("fuzz_rt.npy");
    if (!jade_npy_write(p2, a.dtype, a.ndim, a.shape, a.data)) {
      jade_npy c;
      FUZZ_ASSERT(!jade_npy_read(p2, 0, &c));
      FUZZ_ASSERT(c.dtype == a.dtype && c.ndim == a.ndim);
      for (int i = 0; i < a.ndim; i++) FUZZ_ASSERT(c.shape[i] == a.shape[i]);
      FUZZ_ASSERT(!bytes || !memcmp(c.data, a.data, bytes));
      jade_npy_release(&c);
    }
    jade_clear_error();
    if (a.ndim >= 1) {
      jade_npy_writer *w = NULL;
      jade_status sw = jade_npy_writer_open(path, a.dtype, a.ndim, a.shape, 0, &w);
      fuzz_check_error(sw);
      if (!sw) jade_npy_writer_close(w);
    }
    jade_npy_release(&a);
  }
  return 0;
}
