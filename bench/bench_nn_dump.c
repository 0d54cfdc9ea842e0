/* Dumps jade's network outputs and parameter gradients on a fixed input, for the PyTorch
 * cross-check of bench/torch_jade.py (tests/test_torch_crosscheck.sh). Not a benchmark: it
 * lives in bench/ because it only serves the reference comparison.
 *
 * Usage: bench_nn_dump MODEL.safetensors|MODELDIR OUTDIR [--batch B] [--seed S] [--matmul f32|bf16]
 * Inputs (Philox normals, JADE_RNG_TEST streams): z (B,C,H,W), theta (B,P), cond (B,Cc,H,W),
 * t (B) spread over (0.02, 0.98), and the weights gx (B,C,H,W), gt (B,P) of the scalar
 * L = sum(x_hat gx) + sum(theta_hat gt). Writes OUTDIR/{z,theta,t,cond,gx,gt,x_hat,
 * theta_hat}.npy (float32), OUTDIR/x_hat_inf.npy (inference-mode forward) and
 * OUTDIR/grads.safetensors (dL/dparameter, one tensor per parameter with the model's names). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/core.h"
#include "jade/io.h"
#include "jade/model.h"
#include "jade/nn.h"
#include "jade/train.h"

static int fail(const char *what) {
  fprintf(stderr, "bench_nn_dump: %s: %s\n", what, jade_last_error());
  return 1;
}

static jade_status write_f32(const char *dir, const char *name, int ndim, const size_t *shape,
                             const float *data) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.npy", dir, name);
  return jade_npy_write(path, JADE_F32, ndim, shape, data);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bench_nn_dump MODEL.safetensors|MODELDIR OUTDIR [--batch B] [--seed S]\n");
    return 2;
  }
  int B = 3;
  uint64_t seed = 5;
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--matmul") && i + 1 < argc) {
      const char *b = argv[++i];
      if (strcmp(b, "f32") && strcmp(b, "bf16")) {
        fprintf(stderr, "bench_nn_dump: --matmul %s: f32 or bf16\n", b);
        return 2;
      }
      if (jade_matmul_set_backend(!strcmp(b, "bf16") ? JADE_MATMUL_BF16 : JADE_MATMUL_F32)) return fail("--matmul");
    }
    else {
      fprintf(stderr, "bench_nn_dump: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (B < 1 || B > 64) {
    fprintf(stderr, "bench_nn_dump: --batch %d outside [1, 64]\n", B);
    return 2;
  }
  jade_trained_model *tm;
  if (jade_trained_model_load(argv[1], &tm)) return fail(argv[1]);
  jade_model *m = tm->model;
  const jade_model_config *c = jade_model_get_config(m);
  if (c->dropout > 0.0f) {
    fprintf(stderr, "bench_nn_dump: %s has dropout %g; the cross-check needs a model without\n",
            argv[1], (double)c->dropout);
    return 1;
  }
  const int P = c->n_params, n = c->img_size;
  const size_t nx = (size_t)c->channels * n * n, nc = (size_t)c->cond_channels * n * n;
  float *z = jade_alloc(sizeof(float) * B * nx), *gx = jade_alloc(sizeof(float) * B * nx);
  float *xh = jade_alloc(sizeof(float) * B * nx), *xi = jade_alloc(sizeof(float) * B * nx);
  float *cond = jade_alloc(sizeof(float) * (B * nc + 1));
  float *th = jade_alloc(sizeof(float) * B * P), *gt = jade_alloc(sizeof(float) * B * P);
  float *thh = jade_alloc(sizeof(float) * B * P), *thi = jade_alloc(sizeof(float) * B * P);
  float *t = jade_alloc(sizeof(float) * B);
  if (!z || !gx || !xh || !xi || !cond || !th || !gt || !thh || !thi || !t) {
    fprintf(stderr, "bench_nn_dump: out of memory\n");
    return 1;
  }
  jade_rng_normal_fill_f(seed, JADE_STREAM(JADE_RNG_TEST, 1), 0, B * nx, z);
  jade_rng_normal_fill_f(seed, JADE_STREAM(JADE_RNG_TEST, 2), 0, B * P, th);
  jade_rng_normal_fill_f(seed, JADE_STREAM(JADE_RNG_TEST, 3), 0, B * nc, cond);
  jade_rng_normal_fill_f(seed, JADE_STREAM(JADE_RNG_TEST, 4), 0, B * nx, gx);
  jade_rng_normal_fill_f(seed, JADE_STREAM(JADE_RNG_TEST, 5), 0, B * P, gt);
  for (int b = 0; b < B; b++) t[b] = 0.02f + 0.96f * (float)(b + 0.5) / (float)B;
  jade_model_run run = {1, seed, JADE_STREAM(JADE_RNG_TEST, 6)};
  if (jade_model_forward(m, B, z, th, t, cond, xh, thh, &run)) return fail("forward");
  jade_model_zero_grad(m);
  if (jade_model_backward(m, gx, gt)) return fail("backward");
  if (jade_model_forward(m, B, z, th, t, cond, xi, thi, NULL)) return fail("inference forward");
  const char *dir = argv[2];
  size_t sx[4] = {(size_t)B, (size_t)c->channels, (size_t)n, (size_t)n};
  size_t sc[4] = {(size_t)B, (size_t)c->cond_channels, (size_t)n, (size_t)n};
  size_t sp[2] = {(size_t)B, (size_t)P}, sb[1] = {(size_t)B};
  jade_status st = write_f32(dir, "z", 4, sx, z);
  if (!st) st = write_f32(dir, "theta", 2, sp, th);
  if (!st) st = write_f32(dir, "t", 1, sb, t);
  if (!st) st = write_f32(dir, "cond", 4, sc, cond);
  if (!st) st = write_f32(dir, "gx", 4, sx, gx);
  if (!st) st = write_f32(dir, "gt", 2, sp, gt);
  if (!st) st = write_f32(dir, "x_hat", 4, sx, xh);
  if (!st) st = write_f32(dir, "theta_hat", 2, sp, thh);
  if (!st) st = write_f32(dir, "x_hat_inf", 4, sx, xi);
  if (!st) st = write_f32(dir, "theta_hat_inf", 2, sp, thi);
  char path[4096];
  snprintf(path, sizeof path, "%s/grads.safetensors", dir);
  if (!st) st = jade_checkpoint_write_model(path, m, jade_model_grads(m), &tm->norm, &tm->flow, tm->step,
                                            tm->config_text);
  if (st) return fail(dir);
  printf("bench_nn_dump: batch %d, %s backend, wrote %s\n", B,
         jade_matmul_backend_name(jade_matmul_get_backend()), dir);
  float *bufs[] = {z, gx, xh, xi, cond, th, gt, thh, thi, t};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
  jade_trained_model_free(tm);
  return 0;
}
