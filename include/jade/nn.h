/* jade neural-network engine: plain forward/backward functions per layer (llm.c style).
 *
 * Conventions
 *  - fp32 everywhere, row-major, shapes in the comments: (B,T,C) means C fastest.
 *  - Forward functions write their output (overwrite). Backward functions ACCUMULATE (+=)
 *    into every gradient they are given (input and parameter gradients), so callers zero
 *    gradient buffers once and residual branches simply add up. A NULL gradient pointer
 *    means "not needed" and is skipped.
 *  - Reductions into parameter gradients use a fixed order (fixed row chunks summed in
 *    index order), so results do not depend on the number of OpenMP threads.
 *  - Elementwise loops are OpenMP-parallel over rows; the big matmuls are threaded by the
 *    BLAS backend (OpenBLAS OpenMP build: same thread pool).
 *
 * Layer formulas follow JiT / DiT (Li & He 2025; Peebles & Xie 2023) as used by JADE
 * (Remy, Chang & Willett; b-remy/jade nn_hybrid.py, read for reference, not copied). */
#ifndef JADE_NN_H
#define JADE_NN_H
#include <stddef.h>
#include <stdint.h>
#include "jade/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------
 * Matmul: the one interface every linear goes through (src/nn/matmul.c).
 * Backend-neutral: fp32 cblas_sgemm (default, portable, bitwise the same on every machine)
 * or a bf16 AVX512-BF16 kernel chosen at run time (the CLI reads JADE_MATMUL=f32|bf16|auto);
 * an AMX or oneDNN kernel would slot in the same way.
 * ------------------------------------------------------------------------------------- */
typedef enum {
  JADE_MATMUL_AUTO = 0,  /* bf16 when the CPU has AVX512-BF16, else fp32 */
  JADE_MATMUL_F32 = 1,   /* fp32 cblas_sgemm (portable, always available) */
  JADE_MATMUL_BF16 = 2   /* operands rounded to bf16, fp32 sums (AVX512-BF16 kernel, src/nn/gemm_bf16.c) */
} jade_matmul_backend;

/* Select the backend for all later matmuls (process-wide). JADE_ERR_INVALID if the backend
 * is not compiled in or the CPU lacks the instructions. */
jade_status jade_matmul_set_backend(jade_matmul_backend b);
jade_matmul_backend jade_matmul_get_backend(void);
const char *jade_matmul_backend_name(jade_matmul_backend b);
/* CPU features seen at runtime (cpuid): 1 if present. */
int jade_cpu_has_avx512f(void);
int jade_cpu_has_avx2_fma(void);
int jade_cpu_has_avx512_bf16(void);
int jade_cpu_has_amx_bf16(void);

/* General matmul, row-major: C (M,N) = alpha * op(A) op(B) + beta * C, with
 * op(A) (M,K) = A or A^T (trans_a), op(B) (K,N) = B or B^T (trans_b); lda/ldb/ldc are the
 * row strides of the stored matrices. Threaded by the backend unless called from inside an
 * OpenMP parallel region (then single-threaded). */
void jade_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
               int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Linear layer. inp (N,C), weight (OC,C), bias (OC) or NULL, out (N,OC):
 * out = inp weight^T + bias. */
void jade_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, int OC);
/* dout (N,OC). Accumulates dinp (N,C) += dout weight, dweight (OC,C) += dout^T inp,
 * dbias (OC) += sum_n dout. Any of dinp/dweight/dbias may be NULL. */
void jade_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int N, int C, int OC);

/* dst (C) += sum over rows of src (N,C), fixed-order (thread-count independent). */
void jade_colsum_accumulate(float *dst, const float *src, int N, int C);

/* ---------------------------------------------------------------------------------------
 * Elementwise and normalisation layers (src/nn/layers.c)
 * ------------------------------------------------------------------------------------- */
/* SiLU: out = x sigmoid(x); n elements. */
void jade_silu_forward(float *out, const float *inp, size_t n);
void jade_silu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* RMSNorm (Zhang & Sennrich 2019): inp (N,C), weight (C) or NULL (no scale), out (N,C),
 * rstd (N) saved for backward: out = inp * rstd * weight, rstd = 1/sqrt(mean(inp^2)+eps).
 * out may alias inp in forward only if rstd is kept. */
void jade_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N,
                          int C, float eps);
/* Accumulates dinp (N,C) and dweight (C) (either may be NULL). */
void jade_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                           const float *weight, const float *rstd, int N, int C);

/* adaLN modulation (DiT): inp (B,T,C), shift/scale rows of length C at stride mod_stride
 * per batch (so they can point into one (B,6C) adaLN output), out (B,T,C):
 * out = inp * (1 + scale[b]) + shift[b]. */
void jade_modulate_forward(float *out, const float *inp, const float *shift, const float *scale,
                           int mod_stride, int B, int T, int C);
/* Accumulates dinp (B,T,C), dshift[b] += sum_t dout, dscale[b] += sum_t dout*inp
 * (dshift/dscale rows at stride mod_stride). */
void jade_modulate_backward(float *dinp, float *dshift, float *dscale, const float *dout,
                            const float *inp, const float *scale, int mod_stride, int B, int T,
                            int C);

/* Fused RMSNorm + adaLN modulation (one pass; the normalised input is not stored):
 * inp (B,T,C), weight (C), shift/scale rows at stride mod_stride, out (B,T,C), rstd (B*T):
 * out = inp * rstd * weight * (1 + scale[b]) + shift[b]. */
void jade_rmsnorm_modulate_forward(float *out, float *rstd, const float *inp, const float *weight,
                                   const float *shift, const float *scale, int mod_stride, int B,
                                   int T, int C, float eps);
/* Accumulates dinp (B,T,C), dweight (C), dshift[b], dscale[b] (any may be NULL). */
void jade_rmsnorm_modulate_backward(float *dinp, float *dweight, float *dshift, float *dscale,
                                    const float *dout, const float *inp, const float *weight,
                                    const float *rstd, const float *scale, int mod_stride, int B,
                                    int T, int C);

/* Gated residual (adaLN-Zero): x (B,T,C) += gate[b] * y (B,T,C); gate rows at stride. */
void jade_gated_residual_forward(float *x, const float *y, const float *gate, int gate_stride,
                                 int B, int T, int C);
/* dx is the gradient of the residual stream (passes through unchanged). Accumulates
 * dy += gate[b] * dx and dgate[b] += sum_t dx * y. */
void jade_gated_residual_backward(float *dy, float *dgate, const float *dx, const float *y,
                                  const float *gate, int gate_stride, int B, int T, int C);

/* SwiGLU (Shazeer 2020), the JiT SwiGLUFFN split: inp (N,2H) = [x1 | x2] per row,
 * out (N,H) = silu(x1) * x2. */
void jade_swiglu_forward(float *out, const float *inp, int N, int H);
/* Accumulates dinp (N,2H). */
void jade_swiglu_backward(float *dinp, const float *dout, const float *inp, int N, int H);

/* Dropout with deterministic masks: element i is kept iff the 32-bit Philox word for
 * (seed, stream, index0 + i) is >= p * 2^32; kept elements are scaled by 1/(1-p).
 * out may alias inp. p == 0 copies. The backward applies the same mask to dout. */
void jade_dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t seed,
                          uint64_t stream, uint64_t index0);
/* Accumulates dinp += mask(dout)/(1-p). */
void jade_dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t seed,
                           uint64_t stream, uint64_t index0);
/* The keep decision for one element (1 = kept), same rule as above. */
int jade_dropout_keep(float p, uint64_t seed, uint64_t stream, uint64_t index);

/* Mean over the first K of T tokens: inp (B,T,C) -> out (B,C). */
void jade_meanpool_forward(float *out, const float *inp, int B, int T, int K, int C);
/* Accumulates dinp[b, 0..K-1, :] += dout[b]/K. */
void jade_meanpool_backward(float *dinp, const float *dout, int B, int T, int K, int C);

/* ---------------------------------------------------------------------------------------
 * Embeddings and patches
 * ------------------------------------------------------------------------------------- */
/* Sinusoidal time embedding (DiT TimestepEmbedder): t (B) -> out (B,dim):
 * out[b,j] = cos(t f_j), out[b,half+j] = sin(t f_j), f_j = exp(-ln(max_period) j / half),
 * half = dim/2 (a zero column is appended for odd dim). */
void jade_timestep_embedding(float *out, const float *t, int B, int dim, float max_period);

/* Fixed 2-D sin-cos position embedding (MAE get_2d_sincos_pos_embed) for a gh x gw grid of
 * tokens in row-major order: out (gh*gw, D), D % 4 == 0. The first D/2 columns encode the
 * column index, the last D/2 the row index; each half is [sin(pos w_k), cos(pos w_k)],
 * w_k = 1/10000^(k/(D/4)), k < D/4. */
void jade_sincos_pos_embed_2d(float *out, int D, int gh, int gw);

/* Patchify: img (B,C,H,W) -> out (B, (H/p)(W/p), p*p*C), tokens row-major over the patch
 * grid, patch vector ordered (py, px, c) (the channels-last conv kernel layout of JADE). */
void jade_patchify(float *out, const float *img, int B, int C, int H, int W, int p);
/* Exact inverse: tok (B, T, p*p*C) -> img (B,C,H,W) (overwrites). The adjoint of each is the
 * other, so patchify's backward is unpatchify and vice versa. */
void jade_unpatchify(float *img, const float *tok, int B, int C, int H, int W, int p);

/* ---------------------------------------------------------------------------------------
 * Rotary position embedding (RoPE, Su et al. 2021), 2-D axial form of JiT / EVA with JADE's
 * multi-resolution positions. Head dim hd (hd % 4 == 0). For a token at (row r, col c):
 * dims [0, hd/2) rotate pairs (2m, 2m+1) by angle r f_m, dims [hd/2, hd) by c f_m,
 * f_m = theta^(-2m/(hd/2)), m < hd/4. A token with no position gets the identity.
 * ------------------------------------------------------------------------------------- */
/* cos/sin tables (T, hd/2), one entry per rotated pair. rows/cols (T) are float positions;
 * has_pos[i] == 0 gives the identity (cos 1, sin 0). */
void jade_rope_table(float *cos_t, float *sin_t, const float *rows, const float *cols,
                     const unsigned char *has_pos, int T, int hd, float theta);
/* In place on x laid out (B,T,H,hd) with row stride `stride` floats between tokens
 * (stride = H*hd for a packed tensor, 3*H*hd inside a fused qkv buffer):
 * x <- R(token) x. */
void jade_rope_forward(float *x, const float *cos_t, const float *sin_t, int B, int T, int H,
                       int hd, int stride);
/* Backward = the transpose rotation, in place on the gradient: dx <- R^T dx. */
void jade_rope_backward(float *dx, const float *cos_t, const float *sin_t, int B, int T, int H,
                        int hd, int stride);

/* ---------------------------------------------------------------------------------------
 * Multi-head self-attention core (after the QKV linear):
 *   qkv (B,T,3D) = [q | k | v], heads contiguous inside each (D = H*hd).
 *   q, k <- RoPE(RMSNorm_hd(q) * qn_w), RoPE(RMSNorm_hd(k) * kn_w)   (QK-norm, eps)
 *   S = q k^T / sqrt(hd); P = softmax(S) (fp32); P' = dropout(P); out = P' v.
 * out (B,T,D), heads interleaved back. Saved for backward: qr, kr, vr (B,H,T,hd) (normed,
 * rotated, head-major), rstd_q, rstd_k (B,T,H), att P (B,H,T,T) (pre-dropout; the mask is
 * regenerated). Passing qr/kr/vr/att NULL (and rstd NULL) runs an inference forward that
 * keeps nothing. qn_w/kn_w (hd) are required. Parallel over B*H.
 * ------------------------------------------------------------------------------------- */
typedef struct {
  int B, T, H, hd;
  float eps;                 /* QK-norm epsilon (1e-6) */
  const float *rope_cos;     /* (T, hd/2) or NULL: no RoPE */
  const float *rope_sin;
  float dropout;             /* probability on the attention weights (0: off) */
  uint64_t seed, stream, index0; /* dropout mask counters (element index0 + b,h,i,j) */
} jade_attention_shape;

jade_status jade_attention_forward(float *out, float *qr, float *kr, float *vr, float *rstd_q,
                                   float *rstd_k, float *att, const float *qkv,
                                   const float *qn_w, const float *kn_w, float *scratch,
                                   const jade_attention_shape *s);
/* dout (B,T,D). Accumulates dqkv (B,T,3D), dqn_w (hd), dkn_w (hd). */
jade_status jade_attention_backward(float *dqkv, float *dqn_w, float *dkn_w, const float *dout,
                                    const float *qkv, const float *qr, const float *kr,
                                    const float *vr, const float *rstd_q, const float *rstd_k,
                                    const float *att, const float *qn_w, const float *kn_w,
                                    float *scratch, const jade_attention_shape *s);
/* Floats of scratch either call needs with `threads` OpenMP threads (a caller-owned scratch
 * must be sized for omp_get_max_threads() at call time). scratch == NULL in either call
 * means "allocate internally" (JADE_ERR_NOMEM on failure). */
size_t jade_attention_scratch_floats(const jade_attention_shape *s, int threads);

/* ---------------------------------------------------------------------------------------
 * Parameter tables: every model keeps all parameters in one contiguous float buffer and
 * describes it by named tensors (for safetensors export and the optimiser).
 * ------------------------------------------------------------------------------------- */
#define JADE_TENSOR_NAME_MAX 64
typedef struct {
  char name[JADE_TENSOR_NAME_MAX]; /* e.g. "blocks.3.attn.qkv.weight" */
  int ndim;
  int shape[4];
  size_t offset;   /* in floats, into the parameter buffer */
  size_t numel;
  int decay;       /* 1 for matrices (weight decay applies), 0 for biases/norms/embeddings */
} jade_tensor_info;

/* ---------------------------------------------------------------------------------------
 * Optimiser and training utilities (src/nn/optim.c)
 * ------------------------------------------------------------------------------------- */
typedef struct {
  float lr;            /* current learning rate (set per step from the schedule) */
  float beta1, beta2;  /* 0.9, 0.95 (paper) */
  float eps;           /* 1e-8 */
  float weight_decay;  /* decoupled (Loshchilov & Hutter 2019); paper 0 */
} jade_adamw_config;

typedef struct jade_adamw jade_adamw;
/* n parameters; the m, v moments start at zero, step count at 0. */
jade_status jade_adamw_create(jade_adamw **out, size_t n, const jade_adamw_config *cfg);
void jade_adamw_free(jade_adamw *opt);
/* One AdamW step with bias correction (Kingma & Ba 2015, Alg. 1; decoupled decay):
 *   t += 1; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 *   p -= lr (m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd p)   (wd only where decay_mask[i]
 *   is nonzero, or everywhere if decay_mask is NULL). */
void jade_adamw_step(jade_adamw *opt, float *params, const float *grads,
                     const unsigned char *decay_mask, float lr);
/* The same step fused with gradient scaling and the EMA update, in one pass over memory:
 * g = grad_scale * grads (e.g. the clip factor min(1, max_norm/norm) from
 * jade_grad_norm), then the AdamW step, then (if ema != NULL)
 * ema = ema_decay ema + (1 - ema_decay) params. grads are not modified. */
void jade_adamw_step_fused(jade_adamw *opt, float *params, const float *grads,
                           const unsigned char *decay_mask, float lr, float grad_scale,
                           float *ema, float ema_decay);
long jade_adamw_steps(const jade_adamw *opt);
/* Moment buffers (n floats each) and step count, for checkpoints. */
float *jade_adamw_m(jade_adamw *opt);
float *jade_adamw_v(jade_adamw *opt);
void jade_adamw_set_steps(jade_adamw *opt, long t);
/* The per-element decay mask (1 where decay applies) from a tensor table; caller frees. */
unsigned char *jade_decay_mask(const jade_tensor_info *tensors, int n_tensors, size_t n);

/* Global L2 norm of grads (fixed-order reduction in double, thread-count independent). */
double jade_grad_norm(const float *grads, size_t n);
/* Clip factor for global-norm clipping: min(1, max_norm / norm) (1 if max_norm <= 0). */
double jade_clip_factor(double norm, double max_norm);
/* Global L2 norm of grads (fixed-order reduction in double). If max_norm > 0 and the norm
 * exceeds it, scales grads by max_norm/norm (optax clip_by_global_norm). Returns the
 * norm before clipping. */
double jade_clip_grad_norm(float *grads, size_t n, double max_norm);

/* Learning rate schedule: linear warm-up from 0 to lr_peak over `warmup` steps, then linear
 * from lr_peak to lr_end at step `total` (constant lr_end afterwards). warmup = 0 gives the
 * paper's plain linear decay (optax.linear_schedule). */
double jade_lr_linear(long step, long warmup, long total, double lr_peak, double lr_end);

/* EMA of weights: ema = decay ema + (1 - decay) params. */
void jade_ema_update(float *ema, const float *params, size_t n, float decay);

#ifdef __cplusplus
}
#endif
#endif
