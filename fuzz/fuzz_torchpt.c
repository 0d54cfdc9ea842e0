/* Fuzz the restricted torch.save reader (zip + pickle, include/jade/torchpt.h) and the pop-cosmos
 * population-model converter on top of it (jade sed convert-pt). Seeds: the fake .pt files of
 * tests/data/popcosmos/ (make_fake_pt.py). */
#include "fuzz_util.h"
#include "jade/sed.h"
#include "jade/torchpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write("fuzz.pt", data, size);
  jade_torchpt *pt = NULL;
  if (path) fuzz_check_error(jade_torchpt_open(path, &pt));
  if (pt) { /* the reader's lookups */
    static const char *paths[] = {"population_model.model.W", "population_model.model.NN.0.weight",
                                  "population_model.shift", "population_model.sde.epsilon", "zero_points"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
      int nd;
      size_t sh[JADE_TORCHPT_MAX_DIM];
      double *d = NULL, v;
      char cls[64];
      if (jade_torchpt_tensor(pt, paths[i], &nd, sh, &d) == JADE_OK) free(d);
      (void)jade_torchpt_number(pt, paths[i], &v);
      (void)jade_torchpt_class(pt, paths[i], cls, sizeof cls);
    }
    jade_torchpt_free(pt);
  }
  if (!path) return 0;
  jade_sed_score *m = NULL; /* the converter */
  jade_status s = jade_sed_score_from_pt(path, &m, NULL);
  fuzz_check_error(s);
  FUZZ_ASSERT(!s == !!m);
  jade_sed_score_free(m);
  return 0;
}
