/* jade model: print what a trained model file holds (geometry, parameters, normalisation,
 * training step) and convert its weights to F16 (half the size) or back to F32. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "jade/model.h"
#include "jade/trained_model.h"

int jade_cmd_model(int argc, char **argv) {
  jade_option opts[] = {{"out", "FILE", "write the model to this .safetensors file (must not exist)", NULL, 0, 0, NULL, 0},
                        {"dtype", "f16|f32", "weight precision of --out", "f16", 0, 0, NULL, 0},
                        {NULL, NULL, NULL, NULL, 0, 0, NULL, 0}};
  const char *pos[1];
  int npos = 0;
  int r = jade_cli_parse(argc, argv, "jade model MODEL [--out FILE [--dtype f16|f32]]",
                         "Print the configuration of MODEL (a jade train output folder or .safetensors file); with\n"
                         "--out, write it again with F16 weights (IEEE half: half the size, relative rounding\n"
                         "<= 2^-11; jade reads F16 and F32 model files alike) or F32.",
                         opts, pos, 1, &npos);
  if (r) {
    jade_cli_free(opts);
    return r > 0 ? 0 : 2;
  }
  if (npos != 1) {
    fprintf(stderr, "jade model: expected one MODEL (see jade model --help)\n");
    jade_cli_free(opts);
    return 2;
  }
  const char *out = jade_cli_path(opts, "out"), *dt = jade_cli_opt(opts, "dtype")->value;
  jade_dtype dtype = JADE_F16;
  jade_status st = JADE_OK;
  if (!strcmp(dt, "f32")) dtype = JADE_F32;
  else if (strcmp(dt, "f16")) st = jade_error(JADE_ERR_INVALID, "--dtype: '%s' is not f16 or f32", dt);
  struct stat sb;
  if (!st && out && stat(out, &sb) == 0) st = jade_error(JADE_ERR_IO, "%s: exists; jade model does not overwrite", out);
  jade_trained_model *tm = NULL;
  if (!st) st = jade_trained_model_load(pos[0], &tm);
  if (!st) {
    const jade_model_config *c = jade_model_get_config(tm->model);
    printf("# jade %s model %s\n", JADE_VERSION_STRING, tm->path);
    printf("step %ld\nparameters %zu\nmaps %d x %d x %d\ncondition_channels %d\npatch %d\ncond_patch %d\n"
           "width %d\ndepth %d\nheads %d\nflow_t_mu %g\nflow_t_sigma %g\nflow_t_eps %g\n",
           tm->step, jade_model_num_params(tm->model), c->img_size, c->img_size, c->channels, c->cond_channels,
           c->patch, c->cond_patch, c->width, c->depth, c->heads, (double)tm->flow.mu, (double)tm->flow.sigma,
           (double)tm->flow.t_eps);
    for (int b = 0; b < tm->norm.n_bins; b++)
      printf("bin %d: map_std %.6g noise_sd %.6g\n", b, tm->norm.map_std[b], tm->norm.noise[b]);
  }
  if (!st && out) {
    double err = 0;
    st = jade_trained_model_write(tm, out, dtype, &err);
    if (!st) fprintf(stderr, "jade model: wrote %s (%s weights, largest relative rounding %.2e)\n", out, dt, err);
  }
  jade_trained_model_free(tm);
  jade_cli_free(opts);
  if (st) return jade_cli_fail("model");
  return 0;
}
