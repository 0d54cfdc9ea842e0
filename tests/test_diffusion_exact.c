/* prototype */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/core.h"
#include "jade/model.h"
#include "jade/nn.h"
#include "test_util.h"

#define NG 8
#define NPIX (NG * NG)

static double envd0(const char *k, double d) {
  const char *s = getenv(k);
  return s ? atof(s) : d;
}

typedef struct {
  double E[NPIX][NPIX]; /* orthonormal real Fourier basis: E[j][p] */
  double S0[NPIX];      /* prior variance of coordinate j at A = 1 */
  double kmag[NPIX];
  double noise;         /* white-noise variance per pixel (= per coordinate) */
  double lnA_sd;        /* 0: A = 1 fixed */
} problem;

static void problem_init(problem *pb, double lnA_sd) {
  int j = 0;
  for (int ky = 0; ky < NG; ky++)
    for (int kx = 0; kx < NG; kx++) {
      int cx = (NG - kx) % NG, cy = (NG - ky) % NG;
      int self = (cx == kx && cy == ky);
      if (!self && (cy * NG + cx) < (ky * NG + kx)) continue; /* partner done */
      int fx = kx <= NG / 2 ? kx : kx - NG, fy = ky <= NG / 2 ? ky : ky - NG;
      double k = sqrt((double)(fx * fx + fy * fy));
      for (int part = 0; part < (self ? 1 : 2); part++) {
        double nrm = self ? 1.0 / NG : sqrt(2.0) / NG;
        for (int y = 0; y < NG; y++)
          for (int x = 0; x < NG; x++) {
            double ph = 2 * M_PI * (kx * x + ky * y) / NG;
            pb->E[j][y * NG + x] = nrm * (part == 0 ? cos(ph) : sin(ph));
          }
        pb->kmag[j] = k;
        pb->S0[j] = 1.0 / pow(1.0 + k * k, envd0("EX_SLOPE", 1.5));
        j++;
      }
    }
  if (j != NPIX) {
    fprintf(stderr, "basis %d\n", j);
    exit(1);
  }
  double s = 0;
  for (int i = 0; i < NPIX; i++) s += pb->S0[i];
  for (int i = 0; i < NPIX; i++) pb->S0[i] *= NPIX / s; /* pixel variance 1 */
  double kn = envd0("EX_KN", 2.0), s2 = 1.0 / pow(1.0 + kn * kn, 1.5) * NPIX / s;
  pb->noise = s2;
  pb->lnA_sd = lnA_sd;
}

static void to_modes(const problem *pb, const float *x, double *a) {
  for (int j = 0; j < NPIX; j++) {
    double s = 0;
    for (int p = 0; p < NPIX; p++) s += pb->E[j][p] * x[p];
    a[j] = s;
  }
}
static void to_pixels(const problem *pb, const double *a, float *x) {
  for (int p = 0; p < NPIX; p++) {
    double s = 0;
    for (int j = 0; j < NPIX; j++) s += pb->E[j][p] * a[j];
    x[p] = (float)s;
  }
}

/* B draws of (x, y, theta_n) from the generative model: stream id. */
static void simulate(const problem *pb, int B, uint64_t seed, uint64_t stream, float *x, float *y,
                     float *th) {
  double g[2 * NPIX + 1], a[NPIX];
  for (int b = 0; b < B; b++) {
    jade_rng_normal_fill(seed, stream, (uint64_t)b * (2 * NPIX + 1), 2 * NPIX + 1, g);
    double lnA = pb->lnA_sd * g[2 * NPIX];
    double A = exp(lnA);
    for (int j = 0; j < NPIX; j++) a[j] = sqrt(A * pb->S0[j]) * g[j];
    to_pixels(pb, a, x + (size_t)b * NPIX);
    for (int p = 0; p < NPIX; p++)
      y[(size_t)b * NPIX + p] = x[(size_t)b * NPIX + p] + (float)(sqrt(pb->noise) * g[NPIX + p]);
    th[b] = pb->lnA_sd > 0 ? (float)g[2 * NPIX] : 0.0f;
  }
}

static double envd(const char *k, double d) {
  const char *s = getenv(k);
  return s ? atof(s) : d;
}

static void config(jade_model_config *c) {
  memset(c, 0, sizeof *c);
  c->img_size = NG;
  c->channels = 1;
  c->cond_channels = 1;
  c->patch = (int)envd("EX_PATCH", 4);
  c->cond_patch = 0;
  c->depth = (int)envd("EX_DEPTH", 2);
  c->width = (int)envd("EX_WIDTH", 48);
  c->heads = (int)envd("EX_HEADS", 2);
  c->n_cosmo_tokens = 2;
  c->n_params = 1;
  c->mlp_hidden = 0;
  c->bottleneck = (int)envd("EX_BN", 32);
  c->time_freq = (int)envd("EX_TF", 32);
  c->max_period = 1e4f;
  c->rope_theta = 1e4f;
  c->norm_eps = 1e-6f;
  c->dropout = 0;
}

typedef struct {
  long steps;
  int batch;
  double lr_peak, lr_end, ema_decay;
  uint64_t seed;
} train_opts;

static void train(jade_model *m, const problem *pb, const train_opts *o, float *ema) {
  const int B = o->batch;
  jade_flow_config fc;
  jade_flow_config_default(&fc);
  float *x = malloc(sizeof(float) * B * NPIX), *y = malloc(sizeof(float) * B * NPIX);
  float *th = malloc(sizeof(float) * B), *t = malloc(sizeof(float) * B);
  float *ex = malloc(sizeof(float) * B * (NPIX + 2)), *z = malloc(sizeof(float) * B * NPIX);
  float *eth = malloc(sizeof(float) * B), *zth = malloc(sizeof(float) * B);
  float *xh = malloc(sizeof(float) * B * NPIX), *thh = malloc(sizeof(float) * B);
  float *dx = malloc(sizeof(float) * B * NPIX), *dth = malloc(sizeof(float) * B);
  size_t n = jade_model_num_params(m);
  float *params = jade_model_params(m), *grads = jade_model_grads(m);
  jade_adamw_config ac = {0, 0.9f, 0.95f, 1e-8f, 0};
  jade_adamw *opt;
  CHECK_OK(jade_adamw_create(&opt, n, &ac));
  memcpy(ema, params, n * sizeof(float));
  double acc = 0;
  int nacc = 0;
  double t0 = jade_time_now();
  for (long s = 0; s < o->steps; s++) {
    simulate(pb, B, o->seed, JADE_STREAM(JADE_RNG_TEST, (1ull << 40) | (uint64_t)s), x, y, th);
    float tn[1024];
    jade_rng_normal_fill_f(o->seed, JADE_STREAM(JADE_RNG_TEST, (2ull << 40) | (uint64_t)s), 0,
                           (size_t)B * (NPIX + 2), ex);
    for (int b = 0; b < B; b++) {
      tn[b] = ex[(size_t)B * NPIX + b];
      eth[b] = ex[(size_t)B * NPIX + B + b];
    }
    jade_rng_normal_fill_f(o->seed, JADE_STREAM(JADE_RNG_TEST, (2ull << 40) | (uint64_t)s), 0,
                           (size_t)B * NPIX, ex);
    for (int b = 0; b < B; b++) t[b] = jade_flow_time(&fc, tn[b]);
    jade_flow_interpolate(z, x, ex, t, B, NPIX);
    jade_flow_interpolate(zth, th, eth, t, B, 1);
    jade_model_zero_grad(m);
    jade_model_run run = {1, o->seed, 0};
    CHECK_OK(jade_model_forward(m, B, z, zth, t, y, xh, thh, &run));
    double loss = jade_flow_loss(&fc, B, NPIX, 1, x, xh, z, th, thh, zth, t, dx, dth, NULL, NULL);
    CHECK_OK(jade_model_backward(m, dx, dth));
    jade_clip_grad_norm(grads, n, 1.0);
    double lr = jade_lr_linear(s, 0, o->steps, o->lr_peak, o->lr_end);
    jade_adamw_step(opt, params, grads, NULL, (float)lr);
    jade_ema_update(ema, params, n, (float)o->ema_decay);
    acc += loss;
    nacc++;
    if ((s + 1) % (o->steps / 10) == 0) {
      printf("step %5ld loss %.4f lr %.2e  %.1fs\n", s + 1, acc / nacc, lr, jade_time_now() - t0);
      fflush(stdout);
      acc = 0;
      nacc = 0;
    }
  }
  jade_adamw_free(opt);
  free(x), free(y), free(th), free(t), free(ex), free(z), free(eth), free(zth), free(xh);
  free(thh), free(dx), free(dth);
}

static void sample(jade_model *m, const float *y, int M, int nsteps, uint64_t seed, uint64_t id,
                   float *xs, float *th) {
  jade_sampler *s;
  int B = M < 256 ? M : 256;
  CHECK_OK(jade_sampler_create(&s, m, B));
  for (int b0 = 0; b0 < M; b0 += B) {
    jade_rng_normal_fill_f(seed, JADE_STREAM(JADE_RNG_SAMPLE, id), (uint64_t)b0 * NPIX,
                           (size_t)B * NPIX, xs + (size_t)b0 * NPIX);
    jade_rng_normal_fill_f(seed, JADE_STREAM(JADE_RNG_SAMPLE, id | (1ull << 40)), (uint64_t)b0,
                           (size_t)B, th + b0);
    CHECK_OK(jade_sampler_run(s, B, xs + (size_t)b0 * NPIX, th + b0, y, 1, nsteps, 0.05f));
  }
  jade_sampler_free(s);
}

int main(void) {
  problem pb;
  double sdA = envd("EX_SDA", 0.0);
  problem_init(&pb, sdA);
  printf("noise %.4f; S0:", pb.noise);
  for (int j = 0; j < NPIX; j += 7) printf(" %.3f(k%.2f)", pb.S0[j], pb.kmag[j]);
  printf("\n");
  jade_model_config c;
  config(&c);
  jade_model *m;
  CHECK_OK(jade_model_create(&m, &c));
  jade_model_init(m, 1);
  size_t n = jade_model_num_params(m);
  printf("params %zu\n", n);
  {
    jade_flow_config fc;
    jade_flow_config_default(&fc);
    double L = 0, W = 0;
    for (double u = -8; u <= 8; u += 1e-3) {
      double w = exp(-0.5 * u * u);
      double t = jade_flow_time(&fc, (float)u), den = fmax(1 - t, fc.t_eps), s = 0;
      for (int j = 0; j < NPIX; j++) {
        double s2 = pb.S0[j] * pb.noise / (pb.S0[j] + pb.noise);
        s += s2 * (1 - t) * (1 - t) / (t * t * s2 + (1 - t) * (1 - t));
      }
      L += w * s / (den * den) / (NPIX + 1);
      W += w;
    }
    printf("Bayes floor of the loss %.4f\n", L / W);
  }
  float *ema = malloc(n * sizeof(float));
  train_opts o = {(long)envd("EX_STEPS", 1000), (int)envd("EX_BATCH", 128), envd("EX_LR", 2e-3),
                  envd("EX_LRE", 1e-4), envd("EX_EMA", 0.99), 7};
  double t0 = jade_time_now();
  const char *ld = getenv("EX_LOAD");
  if (ld) {
    FILE *f = fopen(ld, "rb");
    if (!f || fread(ema, sizeof(float), n, f) != n) exit(2);
    fclose(f);
  } else {
    train(m, &pb, &o, ema);
    printf("train %.1fs\n", jade_time_now() - t0);
  }
  const char *sv = getenv("EX_SAVE");
  if (sv) {
    FILE *f = fopen(sv, "wb");
    fwrite(ema, sizeof(float), n, f);
    fclose(f);
  }
  if (envd("EX_USE_EMA", 1)) memcpy(jade_model_params(m), ema, n * sizeof(float));
  /* evaluation */
  int nobs = (int)envd("EX_NOBS", 4), M = (int)envd("EX_M", 256), nst = (int)envd("EX_NSTEPS", 20);
  float *xo = malloc(sizeof(float) * nobs * NPIX), *yo = malloc(sizeof(float) * nobs * NPIX);
  float *tho = malloc(sizeof(float) * nobs);
  simulate(&pb, nobs, 123, JADE_STREAM(JADE_RNG_TEST, 77), xo, yo, tho);
  float *xs = malloc(sizeof(float) * M * NPIX), *ths = malloc(sizeof(float) * M);
  double band_d2[3] = {0}, band_r[3] = {0};
  int band_n[3] = {0};
  t0 = jade_time_now();
  for (int ob = 0; ob < nobs; ob++) {
    sample(m, yo + ob * NPIX, M, nst, 5, (uint64_t)ob, xs, ths);
    if (envd("EX_ORACLE", 0)) { /* exact denoiser, same Heun grid */
      double ay[NPIX];
      to_modes(&pb, yo + ob * NPIX, ay);
      for (int i = 0; i < M; i++) {
        double a[NPIX], a0[NPIX], v0[NPIX], ae[NPIX];
        to_modes(&pb, xs + (size_t)i * NPIX, a); /* ignore; re-draw below */
        jade_rng_normal_fill(5, JADE_STREAM(JADE_RNG_SAMPLE, (uint64_t)ob), (uint64_t)i * NPIX, NPIX, a0);
        for (int j = 0; j < NPIX; j++) a[j] = a0[j]; /* white noise is white in modes too */
        for (int st = 0; st < nst; st++) {
          double ta = (double)st / nst, tb = (double)(st + 1) / nst, dt = tb - ta;
          for (int j = 0; j < NPIX; j++) {
            double S = pb.S0[j], N = pb.noise, mu = S / (S + N) * ay[j], s2 = S * N / (S + N);
            double xh = mu + s2 * ta * (a[j] - ta * mu) / (ta * ta * s2 + (1 - ta) * (1 - ta));
            v0[j] = (xh - a[j]) / fmax(1 - ta, 0.05);
            ae[j] = a[j] + dt * v0[j];
            if (st < nst - 1) {
              double xh2 = mu + s2 * tb * (ae[j] - tb * mu) / (tb * tb * s2 + (1 - tb) * (1 - tb));
              double v1 = (xh2 - ae[j]) / fmax(1 - tb, 0.05);
              a[j] += 0.5 * dt * (v0[j] + v1);
            } else
              a[j] = ae[j];
          }
        }
        to_pixels(&pb, a, xs + (size_t)i * NPIX);
      }
    }
    double ay[NPIX], a[NPIX], mean[NPIX] = {0}, var[NPIX] = {0};
    to_modes(&pb, yo + ob * NPIX, ay);
    for (int i = 0; i < M; i++) {
      to_modes(&pb, xs + (size_t)i * NPIX, a);
      for (int j = 0; j < NPIX; j++) {
        mean[j] += a[j] / M;
        var[j] += a[j] * a[j] / M;
      }
    }
    for (int j = 0; j < NPIX; j++) {
      var[j] = (var[j] - mean[j] * mean[j]) * M / (M - 1.0);
      double S = pb.S0[j], N = pb.noise;
      double mu = S / (S + N) * ay[j], s2 = S * N / (S + N);
      int band = S > 2 * N ? 0 : (S > 0.5 * N ? 1 : 2);
      double d = (mean[j] - mu) / sqrt(s2);
      band_d2[band] += d * d;
      band_r[band] += var[j] / s2;
      band_n[band]++;
    }
  }
  printf("sample %.1fs\n", jade_time_now() - t0);
  const char *nm[3] = {"S>2N", "mid", "S<N/2"};
  for (int b = 0; b < 3; b++)
    printf("band %-6s n %3d  rms mean err %.3f sigma  var ratio %.3f\n", nm[b], band_n[b],
           sqrt(band_d2[b] / band_n[b]), band_r[b] / band_n[b]);
  jade_model_free(m);
  TEST_RETURN();
}
