/* The JADE transformer (spec/model.md; Remy, Chang & Willett) and its flow-matching
 * objective and Heun sampler.
 *
 * Sequence [K cosmology | condition | field] tokens, depth blocks of
 * (RMSNorm, adaLN-modulated attention with QK-norm + 2-D RoPE, gate,
 *  RMSNorm, adaLN-modulated SwiGLU, gate), modulation from the time embedding only.
 * Heads: field tokens -> RMSNorm + adaLN -> linear D -> p*p*C -> unpatchify;
 *        cosmology tokens -> mean -> RMSNorm -> linear D -> n_params.
 *
 * Layout conventions: maps are (B,C,H,W) float, theta (B,P), t (B). All parameters live in
 * one float buffer described by a table of named tensors (jade_tensor_info), gradients in a
 * parallel buffer. */
#ifndef JADE_MODEL_H
#define JADE_MODEL_H
#include "jade/core.h"
#include "jade/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int img_size;        /* H = W pixels (paper 128) */
  int channels;        /* C map channels = tomographic bins (5) */
  int cond_channels;   /* channels of the condition image (5; more for mask/noise maps);
                          0 = no condition tokens */
  int patch;           /* field patch size p (8) */
  int cond_patch;      /* condition patch size (0 = same as patch); RoPE places condition
                          patches at their centres in field-patch coordinates */
  int depth;           /* blocks (12) */
  int width;           /* D (768) */
  int heads;           /* attention heads (12); head dim D/heads must be a multiple of 4 */
  int n_cosmo_tokens;  /* K (16) */
  int n_params;        /* theta dimension P (6) */
  int mlp_hidden;      /* SwiGLU hidden width; 0 = int(int(4 D) * 2/3) (JiT, mlp_ratio 4) */
  int bottleneck;      /* patch-embedding bottleneck (128) */
  int cond_bottleneck; /* condition-embedding bottleneck (0 = bottleneck): coarse condition
                          patches hold more values (32x32x5 = 5120) than a field patch */
  int time_freq;       /* sinusoidal time-embedding size (256) */
  float max_period;    /* time-embedding max period (1e4) */
  float rope_theta;    /* 1e4 */
  float norm_eps;      /* 1e-6 */
  float dropout;       /* p for attention weights, attention projection and SwiGLU hidden,
                          in blocks depth/4 <= i < 3 depth/4, only in training mode (0.3
                          in paper stage 1) */
} jade_model_config;

/* Fills the paper configuration (JADE_B_16 with cond patch 8: 128x128x5, p 8, depth 12,
 * D 768, 12 heads, K 16, P 6, dropout 0). */
void jade_model_config_paper(jade_model_config *c);
/* The small CPU configuration of perf_anchors (32x32x5, p 4, depth 6, D 192, 3 heads, K 8). */
void jade_model_config_small(jade_model_config *c);
/* Checks sizes and fills derived defaults (mlp_hidden, cond_patch). */
jade_status jade_model_config_check(jade_model_config *c);

typedef struct jade_model jade_model;

/* Allocates parameters and gradients (zeroed; call jade_model_init to initialise). The
 * activation buffers are allocated on demand by forward for the batch size asked for. */
jade_status jade_model_create(jade_model **out, const jade_model_config *cfg);
void jade_model_free(jade_model *m);
const jade_model_config *jade_model_get_config(const jade_model *m);

/* Initialisation from Philox stream (JADE_RNG_INIT, seed): Xavier-uniform linears with zero
 * biases; time-embedder and cosmology-embedder weights N(0, 0.02^2); learned cosmology token
 * embedding N(0, 0.02^2); norms 1; adaLN linears and both output heads zero (adaLN-Zero). */
void jade_model_init(jade_model *m, uint64_t seed);

size_t jade_model_num_params(const jade_model *m);
float *jade_model_params(jade_model *m);
float *jade_model_grads(jade_model *m);
int jade_model_num_tensors(const jade_model *m);
const jade_tensor_info *jade_model_tensor(const jade_model *m, int i);
/* Tensor by name, or NULL. */
const jade_tensor_info *jade_model_find_tensor(const jade_model *m, const char *name);
void jade_model_zero_grad(jade_model *m);

/* Fine-tuning with more condition channels (e.g. a mask and a noise map after the 5 bins):
 * copies every tensor of src into dst by name; dst may differ from src only in cond_channels
 * (>= src's). The new channels' input weights (columns (py, px, c >= src channels) of
 * cond_embedder.proj1.weight) are set to zero, so dst computes exactly src's function
 * whatever the new channels hold, and training then learns them from there. */
jade_status jade_model_copy_expand_cond(jade_model *dst, const jade_model *src);

/* Run options of one forward pass. */
typedef struct {
  int train;            /* 1: keep activations for backward and apply dropout */
  uint64_t seed;        /* dropout masks: Philox (seed, stream, index) */
  uint64_t stream;
} jade_model_run;

/* Forward pass. z (B,C,H,W), theta (B,P), t (B), cond (B,Ccond,H,W) (NULL only if
 * cond_channels == 0). Writes x_hat (B,C,H,W) and theta_hat (B,P). run NULL = inference.
 * In inference mode activations are not kept (lighter workspace, any batch size). */
jade_status jade_model_forward(jade_model *m, int B, const float *z, const float *theta,
                               const float *t, const float *cond, float *x_hat,
                               float *theta_hat, const jade_model_run *run);
/* A model is not re-entrant: one forward/backward at a time (they are OpenMP-parallel
 * inside). Inference forwards in between do not disturb a pending training forward. */
/* Backward of the last training-mode forward: accumulates all parameter gradients from
 * dx_hat (B,C,H,W) and dtheta_hat (B,P). */
jade_status jade_model_backward(jade_model *m, const float *dx_hat, const float *dtheta_hat);

/* Bytes of activation/workspace memory currently allocated. */
size_t jade_model_workspace_bytes(const jade_model *m);
/* Matmul + attention FLOPs of one forward pass at batch B (backward is ~2x). */
double jade_model_forward_flops(const jade_model *m, int B);

/* ---------------------------------------------------------------------------------------
 * Flow matching (src/diffusion/flow.c; spec/model.md "Objective", JiT x-prediction with
 * v-loss).
 * ------------------------------------------------------------------------------------- */
typedef struct {
  float mu;     /* -0.8: logit-normal time, t = sigmoid((n + mu) sigma) */
  float sigma;  /* 0.8 */
  float t_eps;  /* 0.05: velocities divide by max(1 - t, t_eps) */
} jade_flow_config;

void jade_flow_config_default(jade_flow_config *c);

/* t from a standard normal n: t = sigmoid((n + mu) sigma). */
float jade_flow_time(const jade_flow_config *c, float n);

/* Interpolant z = t x + (1 - t) eps for B samples of n values each (t (B)). */
void jade_flow_interpolate(float *z, const float *x, const float *eps, const float *t, int B,
                           size_t n);

/* Velocity loss. x, x_hat, z_x (B, nx); theta, theta_hat, z_theta (B, P); t (B).
 * v = (x - z)/max(1-t, t_eps), v_hat = (x_hat - z)/max(1-t, t_eps);
 * loss = mean_b [ (sum_pixels (v - v_hat)^2 + sum_params (..)^2) / (nx + P) ].
 * Writes dL/dx_hat (B,nx) and dL/dtheta_hat (B,P) (either may be NULL) and returns loss.
 * Optional loss_x / loss_theta receive the batch means of the per-element mean squared
 * velocity errors of maps and parameters (monitoring only). */
double jade_flow_loss(const jade_flow_config *c, int B, size_t nx, int P, const float *x,
                      const float *x_hat, const float *z_x, const float *theta,
                      const float *theta_hat, const float *z_theta, const float *t,
                      float *dx_hat, float *dtheta_hat, double *loss_x, double *loss_theta);

/* Velocity from a clean prediction: v = (x_hat - z)/max(1 - t, t_eps), n values, scalar t. */
void jade_flow_velocity(float *v, const float *x_hat, const float *z, size_t n, float t,
                        float t_eps);

/* ---------------------------------------------------------------------------------------
 * ODE solvers for the probability flow, driven by any denoiser (the network, or an exact
 * one in tests). The flow z_t = t x + (1 - t) eps runs from noise (t = 0) to data (t = 1).
 *  - JADE_SOLVER_HEUN: the paper's sampler (spec/model.md "Sampler"): Heun steps on the
 *    uniform grid t_i = i/n, the last step Euler; 2n - 1 denoiser evaluations.
 *  - JADE_SOLVER_DPM2M: DPM-Solver++(2M) (Lu et al. 2022, arXiv:2211.01095, Algorithm 2)
 *    in data prediction with alpha_t = t, sigma_t = 1 - t, lambda = log(t/(1 - t)): the
 *    linear part of dz/dt = (x_hat - z)/(1 - t) integrated exactly, x_hat extrapolated
 *    linearly in lambda from the last two evaluations. The first step (from t = 0) and the
 *    last (to t = 1, where z = x_hat) are first order. Grid: t_0 = 0, then n - 1 times
 *    uniform in lambda (the paper's "logSNR" steps) from noise-to-signal ratio
 *    (1 - t)/t = 80 to 0.002, t_n = 1; n denoiser evaluations.
 * ------------------------------------------------------------------------------------- */
typedef enum { JADE_SOLVER_HEUN = 0, JADE_SOLVER_DPM2M = 1 } jade_solver;

/* "heun" or "dpm2m"; an error naming the value otherwise. */
jade_status jade_solver_parse(const char *name, jade_solver *out);
const char *jade_solver_name(jade_solver s);
/* Denoiser evaluations per draw of n_steps steps. */
int jade_solver_evals(jade_solver s, int n_steps);
/* The solver's time grid t[0..n_steps] (t[0] = 0, t[n_steps] = 1, increasing): Heun's is
 * uniform; DPM-Solver++(2M)'s is uniform in logSNR from (1 - t)/t = 80 to max(0.002,
 * t_eps/(1 - t_eps)), its last step following the clipped flow of jade_flow_velocity to 1. */
void jade_solver_grid(jade_solver s, int n_steps, float t_eps, double *t);

/* Denoiser: x_hat (B, nx), theta_hat (B, P), estimates of E[(x, theta) | z_t = (z, theta)]. */
typedef jade_status (*jade_denoise_fn)(void *user, int B, const float *z, const float *theta, float t,
                                       float *x_hat, float *theta_hat);
/* Floats of workspace jade_flow_integrate needs. */
size_t jade_flow_work_floats(int B, size_t nx, int P);
/* Integrates z (B, nx) and theta (B, P) from t = 0 (noise on entry) to t = 1 (samples on
 * exit). t_eps: velocities divide by max(1 - t, t_eps) (Heun only). */
jade_status jade_flow_integrate(jade_denoise_fn f, void *user, jade_solver solver, int n_steps, float t_eps,
                                int B, size_t nx, int P, float *z, float *theta, float *work);

/* Probability-flow ODE sampler (Heun). Integrates dz/dt = v_hat(z, t) on the uniform grid
 * t_i = i/n_steps from 0 to 1: Heun (2nd-order) steps, the last step a plain Euler step to
 * t = 1 (2 n_steps - 1 network evaluations). z (B,C,H,W) and theta (B,P) hold the initial
 * noise on entry and the samples on exit; cond (B,Ccond,H,W) is the (normalised) observation
 * for every draw (cond_shared = 1: one condition (Ccond,H,W) broadcast to all B draws). */
typedef struct jade_sampler jade_sampler;
jade_status jade_sampler_create(jade_sampler **out, jade_model *m, int max_batch);
void jade_sampler_free(jade_sampler *s);
/* One step from t0 to t1 (Heun if heun, else Euler) in place. */
jade_status jade_sampler_step(jade_sampler *s, int B, float *z, float *theta, const float *cond,
                              float t0, float t1, int heun, float t_eps);
jade_status jade_sampler_run(jade_sampler *s, int B, float *z, float *theta, const float *cond,
                             int cond_shared, int n_steps, float t_eps);
/* The same with a choice of solver (jade_sampler_run is JADE_SOLVER_HEUN). */
jade_status jade_sampler_run_solver(jade_sampler *s, int B, float *z, float *theta, const float *cond,
                                    int cond_shared, jade_solver solver, int n_steps, float t_eps);
/* Called by jade_sampler_run(_solver) after every network evaluation (one of each of the B
 * draws; eval counts from 0 in each run): progress reports (include/jade/progress.h). NULL
 * removes it. */
void jade_sampler_set_eval_hook(jade_sampler *s, void (*hook)(int eval, int B, void *user), void *user);

#ifdef __cplusplus
}
#endif
#endif
