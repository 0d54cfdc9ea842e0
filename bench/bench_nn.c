/* Benchmark of the NN engine on the perf_anchors configurations:
 *   A: 32x32x5, patch 4, D 192, depth 6, 3 heads, K 8, batch 64   (PyTorch fp32: 31.1 samples/s,
 *      3.19 s per posterior draw of 128 Heun steps)
 *   B: 32x32x5, patch 8, same model, batch 128                   (85.2 samples/s, 1.11 s/draw)
 *   paper: 128x128x5, patch 8, D 768, depth 12, 12 heads, K 16: one forward+backward at batch 1
 * Training step = forward + flow loss + backward + grad clip + AdamW + EMA. The machine is
 * shared, so the minimum over repeated steps (and over repeated sgemm calls) is reported. Achieved GFLOP/s
 * counts matmul and attention FLOPs (backward = 2x forward); it is compared with cblas_sgemm
 * timed in the same run on the same matmul shapes.
 * With --matmul bf16 the linears run through the AVX512-BF16 kernel and the bf16 jade_gemm is
 * also timed on the same shapes.
 * Usage: bench_nn [--steps N] [--no-paper] [--only A|B|paper] [--sample-batch N]
 *                 [--sample-steps N] [--paper-batch N] [--matmul f32|bf16|auto]
 *        bench_nn --preset NAME|FILE.ini --batch B [--sample-batch N] [--sample-steps N] ...
 *        --clock cpu: time by process CPU time / threads (shared machines)
 *                 (one configuration read like jade train --config; bench/compare.sh uses it)
 * Every case ends with a "RESULT key=value ..." line for bench/compare.sh. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "jade/config.h"
#include "jade/core.h"
#include "jade/model.h"
#include "jade/nn.h"
#include "jade/train.h"

/* Wall time, or (--clock cpu) the process's CPU time divided by the thread count: on a
 * machine shared with other jobs the wall time measures the neighbours; CPU time per thread
 * approximates the wall time the same work takes on an idle machine. */
static int g_cpu_clock = 0;
static double now(void) {
  if (!g_cpu_clock) return jade_time_now();
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ((double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec) / omp_get_max_threads();
}

static double peak_rss_mb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

/* GEMM GFLOP/s over the linear shapes of one training step (forward, dinp, dweight of
 * every block linear at N = B*T rows), timed on the same buffers sizes: cblas_sgemm, or
 * (via_jade) jade_gemm with the selected backend. */
static void gemm3(int via_jade, long N, int OC, int C, float *x, float *y, float *w) {
  if (via_jade) {
    jade_gemm(0, 1, N, OC, C, 1, x, C, w, C, 0, y, OC);  // fwd
    jade_gemm(0, 0, N, C, OC, 1, y, OC, w, C, 0, x, C);  // dinp
    jade_gemm(1, 0, OC, C, N, 1, y, OC, x, C, 1, w, C);  // dW
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1, x, C, w, C, 0, y, OC);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1, y, OC, w, C, 0, x, C);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1, y, OC, x, C, 1, w, C);
}

static double gemm_reference(const jade_model_config *c, int B, int T, int via_jade) {
  int D = c->width, Hm = c->mlp_hidden;
  int shapes[4][2] = {{3 * D, D}, {D, D}, {2 * Hm, D}, {D, Hm}};
  long N = (long)B * T;
  size_t maxio = (size_t)N * (size_t)(3 * D > 2 * Hm ? 3 * D : 2 * Hm);
  float *x = jade_alloc(maxio * 4), *y = jade_alloc(maxio * 4), *w = jade_alloc((size_t)6 * D * Hm * 4 + 4 * D * D * 4);
  for (size_t i = 0; i < maxio; i++) x[i] = (float)(i % 7) * 0.1f, y[i] = 0.0f;
  for (size_t i = 0; i < (size_t)6 * D * Hm; i++) w[i] = 0.01f;
  // best of 5 repetitions per shape (the machine is shared: minima are the stable statistic)
  double flops = 0, secs = 0;
  for (int s = 0; s < 4; s++) {
    int OC = shapes[s][0], C = shapes[s][1];
    double best = 1e30;
    for (int rep = 0; rep < 6; rep++) {
      double t0 = now();
      gemm3(via_jade, N, OC, C, x, y, w);
      double dt = now() - t0;
      if (rep > 0 && dt < best) best = dt;
    }
    secs += best;
    flops += 3.0 * 2.0 * N * OC * C;
  }
  free(x);
  free(y);
  free(w);
  return flops / secs / 1e9;
}

typedef struct {
  const char *name;
  jade_model_config cfg;
  int batch;
  double torch_train, torch_draw;
} bench_case;

static void fill_normal(float *x, size_t n, uint64_t stream) {
  jade_rng_normal_fill_f(1, JADE_STREAM(JADE_RNG_TEST, stream), 0, n, x);
}

static int run_case(const bench_case *bc, int steps, int sample_batch, int sample_steps) {
  jade_model *m;
  jade_status st = jade_model_create(&m, &bc->cfg);
  if (st) {
    fprintf(stderr, "%s\n", jade_last_error());
    return 1;
  }
  jade_model_init(m, 42);
  const jade_model_config *c = jade_model_get_config(m);
  int B = bc->batch, P = c->n_params;
  size_t nx = (size_t)c->channels * c->img_size * c->img_size;
  size_t nc = (size_t)c->cond_channels * c->img_size * c->img_size;
  size_t np = jade_model_num_params(m);
  int T = c->n_cosmo_tokens + (c->img_size / c->patch) * (c->img_size / c->patch) +
          (c->cond_channels ? (c->img_size / c->cond_patch) * (c->img_size / c->cond_patch) : 0);
  printf("== %s: %dx%dx%d patch %d, D %d, depth %d, heads %d, K %d, T %d, batch %d, %.2fM params\n",
         bc->name, c->img_size, c->img_size, c->channels, c->patch, c->width, c->depth, c->heads,
         c->n_cosmo_tokens, T, B, np / 1e6);
  float *x = jade_alloc(sizeof(float) * B * nx), *eps = jade_alloc(sizeof(float) * B * nx);
  float *z = jade_alloc(sizeof(float) * B * nx), *xh = jade_alloc(sizeof(float) * B * nx);
  float *dxh = jade_alloc(sizeof(float) * B * nx), *cond = jade_alloc(sizeof(float) * B * nc);
  float *th = jade_alloc(sizeof(float) * B * P), *eth = jade_alloc(sizeof(float) * B * P);
  float *zt = jade_alloc(sizeof(float) * B * P), *thh = jade_alloc(sizeof(float) * B * P);
  float *dthh = jade_alloc(sizeof(float) * B * P), *t = jade_alloc(sizeof(float) * B);
  float *ema = jade_alloc(sizeof(float) * np);
  fill_normal(x, B * nx, 1);
  fill_normal(eps, B * nx, 2);
  fill_normal(cond, B * nc, 3);
  fill_normal(th, B * P, 4);
  fill_normal(eth, B * P, 5);
  jade_flow_config fc;
  jade_flow_config_default(&fc);
  for (int b = 0; b < B; b++) t[b] = jade_flow_time(&fc, (float)jade_rng_normal(1, 9, b));
  jade_flow_interpolate(z, x, eps, t, B, nx);
  jade_flow_interpolate(zt, th, eth, t, B, P);
  memcpy(ema, jade_model_params(m), sizeof(float) * np);
  jade_adamw_config ac = {1e-4f, 0.9f, 0.95f, 1e-8f, 0.0f};
  jade_adamw *opt;
  jade_adamw_create(&opt, np, &ac);
  jade_model_run run = {1, 7, JADE_STREAM(JADE_RNG_TRAIN, 0)};

  // per-step times; the minimum over steps is reported (shared machine), with the median
  double tf = 1e30, tb = 1e30, to = 1e30, loss = 0, tsteps[64];
  if (steps > 64) steps = 64;
  for (int s = 0; s <= steps; s++) {  // step 0 is warm-up (allocation, page faults)
    double t0 = now();
    run.stream = JADE_STREAM(JADE_RNG_TRAIN, s);
    jade_model_forward(m, B, z, zt, t, cond, xh, thh, &run);
    loss = jade_flow_loss(&fc, B, nx, P, x, xh, z, th, thh, zt, t, dxh, dthh, NULL, NULL);
    double t1 = now();
    jade_model_zero_grad(m);
    jade_model_backward(m, dxh, dthh);
    double t2 = now();
    double gn = jade_grad_norm(jade_model_grads(m), np);
    jade_adamw_step_fused(opt, jade_model_params(m), jade_model_grads(m), NULL, 1e-4f,
                          (float)jade_clip_factor(gn, 1.0), ema, 0.9996f);
    double t3 = now();
    if (s > 0) {
      tf = t1 - t0 < tf ? t1 - t0 : tf;
      tb = t2 - t1 < tb ? t2 - t1 : tb;
      to = t3 - t2 < to ? t3 - t2 : to;
      tsteps[s - 1] = t3 - t0;
    }
  }
  for (int i = 0; i < steps; i++)  // sort for the median
    for (int j = i + 1; j < steps; j++)
      if (tsteps[j] < tsteps[i]) { double q = tsteps[i]; tsteps[i] = tsteps[j]; tsteps[j] = q; }
  double step_s = tsteps[0], step_med = tsteps[steps / 2];
  double flops = 3.0 * jade_model_forward_flops(m, B);
  double gf = flops / step_s / 1e9;
  double ref = gemm_reference(c, B, T, 0);
  int bf16 = jade_matmul_get_backend() == JADE_MATMUL_BF16;
  double ref_b = bf16 ? gemm_reference(c, B, T, 1) : ref;
  printf("train: best %.3f s/step, median %.3f of %d (best parts: fwd %.3f, bwd %.3f, "
         "clip+adamw+ema %.3f), loss %.4f\n", step_s, step_med, steps, tf, tb, to, loss);
  if (bc->torch_train > 0)
    printf("train: %.1f samples/s (PyTorch fp32 anchor %.1f: x%.2f), ", B / step_s, bc->torch_train,
           B / step_s / bc->torch_train);
  else
    printf("train: %.1f samples/s, ", B / step_s);
  printf("%.1f GFLOP/s achieved, sgemm on the same shapes %.1f GFLOP/s, ratio %.2f\n", gf, ref, gf / ref);
  if (bf16)
    printf("train: bf16 jade_gemm on the same shapes %.1f GFLOP/s (x%.2f sgemm); achieved / bf16 gemm %.2f\n",
           ref_b, ref_b / ref, gf / ref_b);
  printf("memory: workspace %.1f MB, params+grads+adam+ema %.1f MB, peak RSS %.1f MB\n",
         jade_model_workspace_bytes(m) / 1e6, np * 6.0 * 4 / 1e6, peak_rss_mb());

  double per_eval = 0, per_draw = 0, gfi = 0;
  if (sample_steps > 0) {
    int SB = sample_batch;
    jade_sampler *smp;
    float *zs = jade_alloc(sizeof(float) * SB * nx), *ts = jade_alloc(sizeof(float) * SB * P);
    fill_normal(zs, SB * nx, 11);
    fill_normal(ts, SB * P, 12);
    jade_sampler_create(&smp, m, SB);
    jade_sampler_step(smp, SB, zs, ts, cond, 0.0f, 0.01f, 1, 0.05f);  // warm-up
    per_eval = 1e30;
    for (int i = 0; i < sample_steps; i++) {
      double t0 = now();
      jade_sampler_step(smp, SB, zs, ts, cond, 0.01f * i, 0.01f * (i + 1), 1, 0.05f);
      double dt = (now() - t0) / 2.0;  // a Heun step is 2 evaluations
      per_eval = dt < per_eval ? dt : per_eval;
    }
    per_draw = per_eval * (2 * 128 - 1) / SB;
    gfi = jade_model_forward_flops(m, SB) / per_eval / 1e9;
    printf("sample: batch %d, %.4f s per network evaluation (%.1f GFLOP/s); 128 Heun steps = 255 "
           "evaluations: %.3f s per posterior draw", SB, per_eval, gfi, per_draw);
    if (bc->torch_draw > 0) printf(" (PyTorch fp32 anchor %.2f: x%.2f)", bc->torch_draw, bc->torch_draw / per_draw);
    printf("\n");
    /* the few-step solver makes the same network call once per step (jade_solver_evals) */
    printf("sample: DPM-Solver++(2M), 16 steps = %d evaluations: %.4f s per posterior draw\n",
           jade_solver_evals(JADE_SOLVER_DPM2M, 16), per_eval * jade_solver_evals(JADE_SOLVER_DPM2M, 16) / SB);
    printf("memory: workspace %.1f MB, peak RSS %.1f MB\n", jade_model_workspace_bytes(m) / 1e6, peak_rss_mb());
    jade_sampler_free(smp);
    free(zs);
    free(ts);
  }
  printf("RESULT config=%s train_sps=%.4f train_gflops=%.2f sgemm_gflops=%.2f gemm_gflops=%.2f fwd_s=%.5f "
         "bwd_s=%.5f opt_s=%.5f eval_s=%.6f draw_s=%.5f eval_gflops=%.2f params=%zu\n",
         bc->name, B / step_s, gf, ref, ref_b, tf, tb, to, per_eval, per_draw, gfi, np);
  jade_adamw_free(opt);
  jade_model_free(m);
  float *bufs[] = {x, eps, z, xh, dxh, cond, th, eth, zt, thh, dthh, t, ema};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
  return 0;
}

int main(int argc, char **argv) {
  int steps = 5, paper = 1, sample_batch = 128, sample_steps = 3, paper_batch = 1;
  const char *only = NULL, *preset = NULL;
  int batch = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--no-paper")) paper = 0;
    else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else if (!strcmp(argv[i], "--sample-batch") && i + 1 < argc) sample_batch = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--sample-steps") && i + 1 < argc) sample_steps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--paper-batch") && i + 1 < argc) paper_batch = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--preset") && i + 1 < argc) preset = argv[++i];
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--clock") && i + 1 < argc) g_cpu_clock = !strcmp(argv[++i], "cpu");
    else if (!strcmp(argv[i], "--matmul") && i + 1 < argc) {
      const char *b = argv[++i];
      jade_matmul_backend mb = !strcmp(b, "bf16") ? JADE_MATMUL_BF16 : !strcmp(b, "auto") ? JADE_MATMUL_AUTO : JADE_MATMUL_F32;
      if (jade_matmul_set_backend(mb)) {
        fprintf(stderr, "bench_nn: %s\n", jade_last_error());
        return 2;
      }
    } else {
      fprintf(stderr, "usage: bench_nn [--steps N] [--no-paper] [--only A|B|paper] [--preset NAME|FILE "
                      "--batch B] [--clock wall|cpu] [--sample-batch N] [--sample-steps N] [--paper-batch N] "
                      "[--matmul f32|bf16|auto]\n");
      return 2;
    }
  }
  printf("threads %d, matmul backend %s (avx512-bf16 %d, amx-bf16 %d)\n", omp_get_max_threads(),
         jade_matmul_backend_name(jade_matmul_get_backend()), jade_cpu_has_avx512_bf16(),
         jade_cpu_has_amx_bf16());
  if (preset) {  // one configuration, as jade train --config reads it
    bench_case pc;
    memset(&pc, 0, sizeof pc);
    pc.name = preset;
    jade_config *cfg;
    jade_status st = jade_config_create(&cfg);
    if (!st) st = jade_config_preset_text(preset) ? jade_config_load_preset(cfg, preset) : jade_config_load_file(cfg, preset);
    if (!st) st = jade_model_config_read(cfg, &pc.cfg);
    jade_config_free(cfg);
    if (st) {
      fprintf(stderr, "bench_nn: --preset %s: %s\n", preset, jade_last_error());
      return 2;
    }
    if (batch < 1) {
      fprintf(stderr, "bench_nn: --preset needs --batch B >= 1\n");
      return 2;
    }
    pc.batch = batch;
    return run_case(&pc, steps, sample_batch, sample_steps) ? 1 : 0;
  }
  bench_case cases[3];
  memset(cases, 0, sizeof cases);
  cases[0].name = "A";
  jade_model_config_small(&cases[0].cfg);
  cases[0].batch = 64;
  cases[0].torch_train = 31.1;
  cases[0].torch_draw = 3.19;
  cases[1] = cases[0];
  cases[1].name = "B";
  cases[1].cfg.patch = cases[1].cfg.cond_patch = 8;
  cases[1].batch = 128;
  cases[1].torch_train = 85.2;
  cases[1].torch_draw = 1.11;
  cases[2].name = "paper";
  jade_model_config_paper(&cases[2].cfg);
  cases[2].batch = paper_batch;
  cases[2].torch_train = 0.55;
  cases[2].torch_draw = 192;
  for (int i = 0; i < 3; i++) {
    if (only && strcmp(only, cases[i].name)) continue;
    if (i == 2 && !paper && !only) continue;
    int ss = i == 2 ? 0 : sample_steps;
    if (run_case(&cases[i], i == 2 ? 1 : steps, sample_batch, ss)) return 1;
  }
  return 0;
}
