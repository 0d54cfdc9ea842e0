/* Fuzz the shear catalogue reader of jade catalog (jade_shear_catalog_read: FITS binary table
 * or CSV / whitespace text, through jade_table_read) and the binning of what it read onto a
 * small grid (jade_shear_catalog_bin). */
#include "fuzz_util.h"
#include <math.h>

#include "jade/catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* FITS or text: the reader decides from the content; the name does not matter */
  const char *path = fuzz_write("fuzz.cat", data, size);
  if (!path) return 0;
  for (int base = 0; base <= 1; base++) {
    jade_shear_catalog cat;
    memset(&cat, 0, sizeof cat);
    jade_status st = jade_shear_catalog_read(path, base, 5, &cat);
    fuzz_check_error(st);
    if (st) continue;
    FUZZ_ASSERT(cat.n >= 1);
    for (size_t i = 0; i < cat.n; i++) {
      FUZZ_ASSERT(cat.bin[i] >= 0 && cat.bin[i] < 5 && isfinite(cat.ra[i]) && fabs(cat.dec[i]) <= 90);
      FUZZ_ASSERT(cat.w[i] >= 0 && isfinite(cat.e1[i]) && isfinite(cat.e2[i]));
    }
    jade_catalog_binning b;
    jade_catalog_binning_default(&b, 5, 8, 5.0);
    jade_binned_shear m;
    memset(&m, 0, sizeof m);
    st = jade_shear_catalog_bin(&cat, &b, &m);
    fuzz_check_error(st);
    if (!st) jade_binned_shear_free(&m);
    jade_shear_catalog_free(&cat);
  }
  return 0;
}
