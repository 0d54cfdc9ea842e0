/* Optimiser and training utilities: AdamW steps against hand-computed values, gradient
 * clipping, the linear LR schedule with warm-up, the weight-decay mask and EMA. */
#include <math.h>
#include <string.h>

#include "jade/core.h"
#include "jade/nn.h"
#include "test_util.h"

static void test_adamw(void) {
  // two parameters: one with decay, one without; lr 0.1, betas (0.9, 0.95), eps 1e-8, wd 0.1
  jade_adamw_config cfg = {0.1f, 0.9f, 0.95f, 1e-8f, 0.1f};
  jade_adamw *opt;
  CHECK_OK(jade_adamw_create(&opt, 2, &cfg));
  float p[2] = {1.0f, 1.0f}, g[2] = {0.5f, 0.5f};
  unsigned char mask[2] = {1, 0};
  // step 1: m = 0.05, v = 0.0125, m_hat = 0.5, v_hat = 0.25 -> update 1 (+ wd p = 0.1)
  jade_adamw_step(opt, p, g, mask, 0.1f);
  CHECK_CLOSE(p[0], 0.89, 1e-6);
  CHECK_CLOSE(p[1], 0.90, 1e-6);
  CHECK_CLOSE(jade_adamw_m(opt)[0], 0.05, 1e-6);
  CHECK_CLOSE(jade_adamw_v(opt)[0], 0.0125, 1e-6);
  // step 2 with g = -0.25: m = 0.02, v = 0.015, m_hat = 0.02/0.19, v_hat = 0.015/0.0975
  // p0 = 0.89 - 0.1 (0.10526316/0.39223227 + 0.1 * 0.89) = 0.85426306
  // p1 = 0.90 - 0.1 (0.26837...)                           = 0.87316306
  g[0] = g[1] = -0.25f;
  jade_adamw_step(opt, p, g, mask, 0.1f);
  CHECK_CLOSE(p[0], 0.8542630578558273, 1e-6);
  CHECK_CLOSE(p[1], 0.8731630578758274, 1e-6);
  CHECK(jade_adamw_steps(opt) == 2, "step count %ld", jade_adamw_steps(opt));
  jade_adamw_free(opt);
  // invalid config
  jade_adamw_config bad = {0.1f, 1.0f, 0.95f, 1e-8f, 0.0f};
  CHECK(jade_adamw_create(&opt, 2, &bad) == JADE_ERR_INVALID, "beta1 = 1 accepted");
  // AdamW minimises a quadratic: f = sum (p - c)^2
  cfg.weight_decay = 0.0f;
  CHECK_OK(jade_adamw_create(&opt, 3, &cfg));
  float q[3] = {0, 0, 0}, c[3] = {1.0f, -2.0f, 0.5f}, gq[3];
  for (int it = 0; it < 2000; it++) {
    for (int i = 0; i < 3; i++) gq[i] = 2 * (q[i] - c[i]);
    jade_adamw_step(opt, q, gq, NULL, (float)jade_lr_linear(it, 0, 2000, 0.05, 1e-4));
  }
  for (int i = 0; i < 3; i++) CHECK_LT(fabs(q[i] - c[i]), 1e-3, "AdamW quadratic: q[%d] = %g vs %g", i, q[i], c[i]);
  jade_adamw_free(opt);
}

/* The fused step (scaled gradients + EMA) equals clip + step + EMA done separately. */
static void test_fused(void) {
  jade_adamw_config cfg = {0.0f, 0.9f, 0.95f, 1e-8f, 0.01f};
  size_t n = 5000;
  jade_adamw *a, *b;
  CHECK_OK(jade_adamw_create(&a, n, &cfg));
  CHECK_OK(jade_adamw_create(&b, n, &cfg));
  float *pa = jade_alloc(n * 4), *pb = jade_alloc(n * 4), *ga = jade_alloc(n * 4), *gb = jade_alloc(n * 4);
  float *ea = jade_alloc(n * 4), *eb = jade_alloc(n * 4);
  for (int step = 0; step < 3; step++) {
    for (size_t i = 0; i < n; i++) {
      if (step == 0) pa[i] = pb[i] = ea[i] = eb[i] = (float)cos(0.1 * i);
      ga[i] = gb[i] = (float)sin(0.37 * i + step);
    }
    double na = jade_clip_grad_norm(ga, n, 1.0);
    jade_adamw_step(a, pa, ga, NULL, 1e-2f);
    jade_ema_update(ea, pa, n, 0.99f);
    double nb = jade_grad_norm(gb, n);
    CHECK_CLOSE(nb, na, 1e-12);
    jade_adamw_step_fused(b, pb, gb, NULL, 1e-2f, (float)jade_clip_factor(nb, 1.0), eb, 0.99f);
  }
  double dp = 0, de = 0;
  for (size_t i = 0; i < n; i++) {
    jade_test_max_err(&dp, fabs(pa[i] - pb[i]));
    jade_test_max_err(&de, fabs(ea[i] - eb[i]));
  }
  CHECK(jade_test_lt_ok(dp, 1e-6) && jade_test_lt_ok(de, 1e-6), "fused AdamW differs: params %g, ema %g", dp, de);
  CHECK(jade_clip_factor(0.5, 1.0) == 1.0 && jade_clip_factor(4.0, 1.0) == 0.25, "clip factor");
  jade_adamw_free(a);
  jade_adamw_free(b);
  free(pa); free(pb); free(ga); free(gb); free(ea); free(eb);
}

static void test_clip(void) {
  float g[2] = {3.0f, 4.0f};
  double n = jade_clip_grad_norm(g, 2, 1.0);
  CHECK_CLOSE(n, 5.0, 1e-12);
  CHECK_CLOSE(g[0], 0.6, 1e-6);
  CHECK_CLOSE(g[1], 0.8, 1e-6);
  float h[2] = {0.3f, 0.4f};
  n = jade_clip_grad_norm(h, 2, 1.0);
  CHECK_CLOSE(n, 0.5, 1e-7);
  CHECK(h[0] == 0.3f && h[1] == 0.4f, "clipping below the threshold changed the gradient");
  // large vector: norm in double, thread-independent, scaled to exactly max_norm
  size_t N = 1000003;
  float *x = jade_alloc(N * sizeof(float));
  double ss = 0;
  for (size_t i = 0; i < N; i++) {
    x[i] = (float)sin((double)i);
    ss += (double)x[i] * x[i];
  }
  n = jade_clip_grad_norm(x, N, 2.0);
  CHECK_CLOSE(n, sqrt(ss), 1e-10);
  CHECK_CLOSE(jade_clip_grad_norm(x, N, 0.0), 2.0, 1e-5);
  free(x);
}

static void test_schedule(void) {
  CHECK(jade_lr_linear(0, 10, 110, 1e-3, 1e-5) == 0.0, "warm-up starts at 0");
  CHECK_CLOSE(jade_lr_linear(5, 10, 110, 1e-3, 1e-5), 5e-4, 1e-12);
  CHECK_CLOSE(jade_lr_linear(10, 10, 110, 1e-3, 1e-5), 1e-3, 1e-12);
  CHECK_CLOSE(jade_lr_linear(60, 10, 110, 1e-3, 1e-5), 5.05e-4, 1e-12);
  CHECK_CLOSE(jade_lr_linear(110, 10, 110, 1e-3, 1e-5), 1e-5, 1e-12);
  CHECK_CLOSE(jade_lr_linear(500, 10, 110, 1e-3, 1e-5), 1e-5, 1e-12);
  // paper stage 1: 5e-3 -> 1e-4 linearly over 445,200 steps, no warm-up
  CHECK_CLOSE(jade_lr_linear(0, 0, 445200, 5e-3, 1e-4), 5e-3, 1e-12);
  CHECK_CLOSE(jade_lr_linear(222600, 0, 445200, 5e-3, 1e-4), 2.55e-3, 1e-12);
  // at epoch 547 of 600 (742 steps each): ~5.3e-4 (reference/jade_paper_config.md §5)
  CHECK_CLOSE(jade_lr_linear(547L * 742, 0, 445200, 5e-3, 1e-4), 5.3e-4, 0.02);
}

static void test_ema_and_mask(void) {
  float ema[2] = {1.0f, 0.0f}, p[2] = {0.0f, 1.0f};
  for (int i = 0; i < 10; i++) jade_ema_update(ema, p, 2, 0.9f);
  CHECK_CLOSE(ema[0], pow(0.9, 10), 1e-5);
  CHECK_CLOSE(ema[1], 1 - pow(0.9, 10), 1e-5);
  jade_tensor_info t[2];
  memset(t, 0, sizeof t);
  t[0].offset = 0; t[0].numel = 3; t[0].decay = 1;
  t[1].offset = 3; t[1].numel = 2; t[1].decay = 0;
  unsigned char *m = jade_decay_mask(t, 2, 5);
  CHECK(m && m[0] == 1 && m[2] == 1 && m[3] == 0 && m[4] == 0, "decay mask");
  free(m);
}

int main(void) {
  test_adamw();
  test_clip();
  test_fused();
  test_schedule();
  test_ema_and_mask();
  TEST_RETURN();
}
