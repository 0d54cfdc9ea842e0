/* float32 forward pass of an Alsing-activated MLP (the Photulator emulators, Alsing et al. 2020
 * ApJS 249:5, eq. 8): an AVX-512 kernel and an AVX2/FMA kernel chosen at run time, and a portable
 * C path.
 *
 * In the AVX-512 and AVX2 kernels each output element is b_j + sum_k x_k W_kj accumulated in k order (one
 * fused multiply-add per term), so a row's result does not depend on which other rows share its
 * tile or chunk: bytes are the same for any number of threads on one machine. The portable path
 * takes the products from OpenBLAS's sgemm (whose kernels depend on the batch's shape; chunks of
 * a fixed size keep it independent of the thread count, as in the float64 path) and the same exp
 * polynomial in plain C. The two paths round differently, so
 * they agree to float32 precision, not bit for bit. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "sed_internal.h"

#if defined(__x86_64__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 8))
#define SED_HAVE_AVX512_KERNEL 1
#define SED_HAVE_AVX2_KERNEL 1
#include <immintrin.h>
#else
#define SED_HAVE_AVX512_KERNEL 0
#define SED_HAVE_AVX2_KERNEL 0
#endif

void sed_mlp_f32_free(sed_mlp_f32 *f) {
  if (!f) return;
  free(f->buf);
  memset(f, 0, sizeof *f);
}

int sed_mlp_f32_from(sed_mlp_f32 *f, const sed_mlp *m) {
  memset(f, 0, sizeof *f);
  if (m->n_layers < 1 || m->n_layers > SED_MAX_LAYERS || m->dims[m->n_layers] != 1) return 0;
  size_t total = 0;
  for (int l = 0; l < m->n_layers; l++) {
    if (m->act[l] != SED_ACT_ALSING) return 0;
    total += 2 * (size_t)m->dims[l] * m->dims[l + 1] + 3 * (size_t)m->dims[l + 1];
  }
  f->buf = jade_alloc(total * sizeof(float) + 64);
  if (!f->buf) return 0;
  f->n_layers = m->n_layers;
  memcpy(f->dims, m->dims, sizeof f->dims);
  float *p = f->buf;
  for (int l = 0; l < m->n_layers; l++) {
    int in = m->dims[l], out = m->dims[l + 1];
    f->W[l] = p; /* (in, out): row k holds the weights from input k to every unit */
    for (int k = 0; k < in; k++)
      for (int j = 0; j < out; j++) p[(size_t)k * out + j] = (float)m->W[l][(size_t)j * in + k];
    p += (size_t)in * out;
    f->Wt[l] = p; /* (out, in): for the reverse pass */
    for (int j = 0; j < out; j++)
      for (int k = 0; k < in; k++) p[(size_t)j * in + k] = (float)m->W[l][(size_t)j * in + k];
    p += (size_t)in * out;
    f->b[l] = p;
    f->alpha[l] = p + out;
    f->beta[l] = p + 2 * out;
    for (int j = 0; j < out; j++) {
      f->b[l][j] = (float)m->b[l][j];
      f->alpha[l][j] = (float)m->alpha[l][j];
      f->beta[l][j] = (float)m->beta[l][j];
    }
    p += 3 * (size_t)out;
  }
  return 1;
}

int sed_mlp_f32_max_width(const sed_mlp_f32 *f) {
  int w = 0;
  for (int l = 0; l <= f->n_layers; l++) w = f->dims[l] > w ? f->dims[l] : w;
  return w;
}

/* ---- portable path ---- */
/* exp(x) by the same reduction and polynomial as the AVX-512 kernel below, in plain C that
 * vectorises (no libm call): round(x / ln 2) by adding and removing 1.5 * 2^23, 2^n built from
 * its exponent bits. x is clamped to [-87, 88] so 2^n stays a normal number. */
static inline float exp_portable(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693145751953125f;
  r = r - n * 1.428606765330187e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t bits = ((int32_t)n + 127) * 8388608; /* (n + 127) << 23 */
  float two_n;
  memcpy(&two_n, &bits, sizeof two_n);
  return p * two_n;
}

/* (beta + (1 - beta) sigmoid(alpha h)) h */
static inline float alsing_f32(float h, float alpha, float beta) {
  float s = 1.0f / (1.0f + exp_portable(-alpha * h));
  return (beta + (1.0f - beta) * s) * h;
}

/* d/dz of the Alsing activation: beta + (1 - beta) (s + alpha z s (1 - s)), s = sigmoid(alpha z) */
static inline float alsing_deriv_f32(float z, float alpha, float beta) {
  float sg = 1.0f / (1.0f + exp_portable(-alpha * z));
  return beta + (1.0f - beta) * (sg + alpha * z * sg * (1.0f - sg));
}

/* the products by OpenBLAS (single-threaded inside the caller's parallel region), then the
 * activation in a loop the compiler vectorises */
static void layer_portable(size_t n, int in, int out, const float *X, const float *W, const float *b,
                           const float *al, const float *be, float *Y) {
  for (size_t i = 0; i < n; i++) memcpy(Y + i * out, b, (size_t)out * sizeof(float));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, out, in, 1.0f, X, in, W, out, 1.0f, Y, out);
  for (size_t i = 0; i < n; i++) {
    float *y = Y + i * out;
#pragma omp simd
    for (int j = 0; j < out; j++) y[j] = alsing_f32(y[j], al[j], be[j]);
  }
}

/* e^r for |r| <= ln2/2 by its Taylor polynomial to degree 7 in Horner form (truncation error
 * < 3e-9 relative), in the vector type T with its fmadd and set1: shared by the SIMD kernels */
#define EXP_TAYLOR7(T, fmadd, set1, p, r)          \
  T p = set1(1.0f / 5040.0f);                      \
  p = fmadd(p, r, set1(1.0f / 720.0f));            \
  p = fmadd(p, r, set1(1.0f / 120.0f));            \
  p = fmadd(p, r, set1(1.0f / 24.0f));             \
  p = fmadd(p, r, set1(1.0f / 6.0f));              \
  p = fmadd(p, r, set1(0.5f));                     \
  p = fmadd(p, r, set1(1.0f));                     \
  p = fmadd(p, r, set1(1.0f))

#if SED_HAVE_AVX512_KERNEL
#define TGT __attribute__((target("avx512f")))

/* exp(x) for |x| <= 88: 2^n e^r with n = round(x / ln 2), r = x - n ln 2 (ln 2 split in a high
 * and a low part, Cody & Waite 1980), e^r by its Taylor polynomial to degree 7 (|r| <= ln2/2:
 * truncation error < 3e-9 relative), and 2^n applied by vscalefps (exact). Inputs are clamped
 * to [-88, 88], where the result stays finite and sigmoid(-88) ~ 6e-39. */
TGT static inline __m512 exp_avx512(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-88.0f), _mm512_min_ps(_mm512_set1_ps(88.0f), x));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  EXP_TAYLOR7(__m512, _mm512_fmadd_ps, _mm512_set1_ps, p, r);
  return _mm512_scalef_ps(p, n);
}

TGT static inline __m512 alsing_avx512(__m512 h, __m512 alpha, __m512 beta) {
  __m512 one = _mm512_set1_ps(1.0f);
  __m512 e = exp_avx512(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), alpha), h));
  /* 1 / (1 + e): rcp14 (relative error < 2^-14) and one Newton step (error ~2^-28, below float
   * rounding); for e = inf rcp14 gives 0 and the Newton step keeps it 0 */
  __m512 d = _mm512_add_ps(one, e), r0 = _mm512_rcp14_ps(d);
  __m512 s = _mm512_mul_ps(r0, _mm512_fnmadd_ps(d, r0, _mm512_set1_ps(2.0f)));
  return _mm512_mul_ps(_mm512_fmadd_ps(_mm512_sub_ps(one, beta), s, beta), h);
}

/* d/dz of the Alsing activation, beta + (1 - beta) (s + alpha z s (1 - s)), s = sigmoid(alpha z) */
TGT static inline __m512 alsing_deriv_avx512(__m512 h, __m512 alpha, __m512 beta) {
  __m512 one = _mm512_set1_ps(1.0f), az = _mm512_mul_ps(alpha, h);
  __m512 e = exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), az));
  __m512 d = _mm512_add_ps(one, e), r0 = _mm512_rcp14_ps(d);
  __m512 s = _mm512_mul_ps(r0, _mm512_fnmadd_ps(d, r0, _mm512_set1_ps(2.0f)));
  __m512 ds = _mm512_fmadd_ps(_mm512_mul_ps(az, s), _mm512_sub_ps(one, s), s); /* s + alpha z s (1 - s) */
  return _mm512_fmadd_ps(_mm512_sub_ps(one, beta), ds, beta);
}

/* Y (n x out) = act(X (n x in) W (in x out) + b), n a multiple of 4, out a multiple of 64
 * (with Z: the activation's derivative at each pre-activation stored there, for the reverse pass):
 * tiles of 4 rows x 64 columns (16 accumulators); the 64 columns of W stay in L1 while the row
 * tiles stream past them. */
TGT static void layer_avx512(size_t n, int in, int out, const float *X, const float *W, const float *b,
                             const float *al, const float *be, float *Y, float *Z) {
  for (int j0 = 0; j0 < out; j0 += 64) {
    __m512 bj[4], aj[4], ej[4];
    for (int c = 0; c < 4; c++) {
      bj[c] = b ? _mm512_loadu_ps(b + j0 + 16 * c) : _mm512_setzero_ps();
      aj[c] = al ? _mm512_loadu_ps(al + j0 + 16 * c) : _mm512_setzero_ps();
      ej[c] = al ? _mm512_loadu_ps(be + j0 + 16 * c) : _mm512_setzero_ps();
    }
    for (size_t i0 = 0; i0 < n; i0 += 4) {
      /* written out: 16 accumulators in registers (a loop over rows stays in memory at -O2) */
      __m512 a00 = bj[0], a01 = bj[1], a02 = bj[2], a03 = bj[3], a10 = bj[0], a11 = bj[1], a12 = bj[2], a13 = bj[3];
      __m512 a20 = bj[0], a21 = bj[1], a22 = bj[2], a23 = bj[3], a30 = bj[0], a31 = bj[1], a32 = bj[2], a33 = bj[3];
      const float *x0 = X + i0 * in, *x1 = x0 + in, *x2 = x1 + in, *x3 = x2 + in;
      for (int k = 0; k < in; k++) {
        const float *w = W + (size_t)k * out + j0;
        __m512 w0 = _mm512_loadu_ps(w), w1 = _mm512_loadu_ps(w + 16), w2 = _mm512_loadu_ps(w + 32),
               w3 = _mm512_loadu_ps(w + 48);
        __m512 x = _mm512_set1_ps(x0[k]);
        a00 = _mm512_fmadd_ps(x, w0, a00);
        a01 = _mm512_fmadd_ps(x, w1, a01);
        a02 = _mm512_fmadd_ps(x, w2, a02);
        a03 = _mm512_fmadd_ps(x, w3, a03);
        x = _mm512_set1_ps(x1[k]);
        a10 = _mm512_fmadd_ps(x, w0, a10);
        a11 = _mm512_fmadd_ps(x, w1, a11);
        a12 = _mm512_fmadd_ps(x, w2, a12);
        a13 = _mm512_fmadd_ps(x, w3, a13);
        x = _mm512_set1_ps(x2[k]);
        a20 = _mm512_fmadd_ps(x, w0, a20);
        a21 = _mm512_fmadd_ps(x, w1, a21);
        a22 = _mm512_fmadd_ps(x, w2, a22);
        a23 = _mm512_fmadd_ps(x, w3, a23);
        x = _mm512_set1_ps(x3[k]);
        a30 = _mm512_fmadd_ps(x, w0, a30);
        a31 = _mm512_fmadd_ps(x, w1, a31);
        a32 = _mm512_fmadd_ps(x, w2, a32);
        a33 = _mm512_fmadd_ps(x, w3, a33);
      }
      float *y = Y + i0 * out + j0, *z = Z ? Z + i0 * out + j0 : NULL;
#define STORE1(r, c, acc)                                                                               \
  do {                                                                                                  \
    if (z) _mm512_storeu_ps(z + (size_t)(r) * out + 16 * (c), alsing_deriv_avx512(acc, aj[c], ej[c]));  \
    _mm512_storeu_ps(y + (size_t)(r) * out + 16 * (c), al ? alsing_avx512(acc, aj[c], ej[c]) : acc);   \
  } while (0)
#define STORE_ROW(r, c0, c1, c2, c3) \
  STORE1(r, 0, c0);                  \
  STORE1(r, 1, c1);                  \
  STORE1(r, 2, c2);                  \
  STORE1(r, 3, c3)
      STORE_ROW(0, a00, a01, a02, a03);
      STORE_ROW(1, a10, a11, a12, a13);
      STORE_ROW(2, a20, a21, a22, a23);
      STORE_ROW(3, a30, a31, a32, a33);
#undef STORE_ROW
#undef STORE1
    }
  }
}

/* the last layer (out = 1): per row the dot product in 16 lanes, reduced in a fixed order */
TGT static void head_avx512(size_t n, int in, const float *X, const float *W, float b, float al, float be,
                            float *Y) {
  for (size_t i = 0; i < n; i++) {
    __m512 acc = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= in; k += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(X + i * in + k), _mm512_loadu_ps(W + k), acc);
    float s = b + _mm512_reduce_add_ps(acc);
    for (; k < in; k++) s += X[i * in + k] * W[k];
    Y[i] = alsing_f32(s, al, be);
  }
}

static int cpu_avx512(void) { return __builtin_cpu_supports("avx512f") != 0; }
#else
static int cpu_avx512(void) { return 0; }
#endif

#if SED_HAVE_AVX2_KERNEL
#define TGT2 __attribute__((target("avx2,fma")))

/* exp(x) as exp_avx512 (Cody-Waite reduction, degree-7 Taylor polynomial), with 2^n built from
 * its exponent bits as in exp_portable; x clamped to [-87, 88] so 2^n stays a normal number */
TGT2 static inline __m256 exp_avx2(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(-87.0f), _mm256_min_ps(_mm256_set1_ps(88.0f), x));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
  EXP_TAYLOR7(__m256, _mm256_fmadd_ps, _mm256_set1_ps, p, r);
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* sigmoid(alpha h) by a true division (no rcp14 on AVX2: rcp_ps has only 12 bits) */
TGT2 static inline __m256 sigmoid_avx2(__m256 ah) {
  __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), ah))));
}

TGT2 static inline __m256 alsing_avx2(__m256 h, __m256 alpha, __m256 beta) {
  __m256 s = sigmoid_avx2(_mm256_mul_ps(alpha, h));
  return _mm256_mul_ps(_mm256_fmadd_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), beta), s, beta), h);
}

/* the activation and its derivative from one sigmoid: act = (beta + (1 - beta) s) h and
 * act' = beta + (1 - beta) (s + alpha h s (1 - s)), s = sigmoid(alpha h) */
TGT2 static inline __m256 alsing_both_avx2(__m256 h, __m256 alpha, __m256 beta, __m256 *deriv) {
  __m256 one = _mm256_set1_ps(1.0f), az = _mm256_mul_ps(alpha, h), s = sigmoid_avx2(az), omb = _mm256_sub_ps(one, beta);
  __m256 ds = _mm256_fmadd_ps(_mm256_mul_ps(az, s), _mm256_sub_ps(one, s), s);
  *deriv = _mm256_fmadd_ps(omb, ds, beta);
  return _mm256_mul_ps(_mm256_fmadd_ps(omb, s, beta), h);
}

/* act(acc) and act'(acc) of one 8-column register into row r, column group c of the tile */
#define AVX2_STORE(r, c, acc)                                                                  \
  do {                                                                                         \
    __m256 v_ = acc, d_;                                                                       \
    if (z) {                                                                                   \
      v_ = alsing_both_avx2(acc, aj[c], ej[c], &d_);                                           \
      _mm256_storeu_ps(z + (size_t)(r) * out + 8 * (c), d_);                                   \
    } else if (al) {                                                                           \
      v_ = alsing_avx2(acc, aj[c], ej[c]);                                                     \
    }                                                                                          \
    _mm256_storeu_ps(y + (size_t)(r) * out + 8 * (c), v_);                                     \
  } while (0)

/* layer_avx512 with 8-lane registers: tiles of 6 rows x 16 columns (12 accumulators: more than
 * the 8 that the FMA latency x throughput of current x86 cores needs, so a late load does not
 * stall the chain), the rows left over by a 4-row tile (n is a multiple of 4; when 2 rows are
 * left, the 4-row tile ends at row n and recomputes 2 rows to the same bytes). Each element is
 * the same k-ordered fused multiply-adds in either tile, so a row's bytes do not depend on its
 * batch. */
/* one k step of row r of a tile (accumulators a<r>0, a<r>1; weights w0, w1 of this k), and the
 * stores of row r */
#define AVX2_ROW(r)                                    \
  do {                                                 \
    __m256 x_ = _mm256_broadcast_ss(x##r + k);         \
    a##r##0 = _mm256_fmadd_ps(x_, w0, a##r##0);        \
    a##r##1 = _mm256_fmadd_ps(x_, w1, a##r##1);        \
  } while (0)
#define AVX2_STORE_ROW(r) \
  do {                    \
    AVX2_STORE(r, 0, a##r##0); \
    AVX2_STORE(r, 1, a##r##1); \
  } while (0)
#define AVX2_K_LOOP(ROWS)                                             \
  for (int k = 0; k < in; k++) {                                      \
    const float *w = W + (size_t)k * out + j0;                        \
    __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8);      \
    ROWS;                                                             \
  }

TGT2 static void layer_avx2(size_t n, int in, int out, const float *X, const float *W, const float *b,
                            const float *al, const float *be, float *Y, float *Z) {
  for (int j0 = 0; j0 < out; j0 += 16) {
    __m256 bj[2], aj[2], ej[2];
    for (int c = 0; c < 2; c++) {
      bj[c] = b ? _mm256_loadu_ps(b + j0 + 8 * c) : _mm256_setzero_ps();
      aj[c] = al ? _mm256_loadu_ps(al + j0 + 8 * c) : _mm256_setzero_ps();
      ej[c] = al ? _mm256_loadu_ps(be + j0 + 8 * c) : _mm256_setzero_ps();
    }
    size_t i0 = 0;
    for (; i0 + 6 <= n; i0 += 6) {
      __m256 a00 = bj[0], a01 = bj[1], a10 = bj[0], a11 = bj[1], a20 = bj[0], a21 = bj[1];
      __m256 a30 = bj[0], a31 = bj[1], a40 = bj[0], a41 = bj[1], a50 = bj[0], a51 = bj[1];
      const float *x0 = X + i0 * in, *x1 = x0 + in, *x2 = x1 + in, *x3 = x2 + in, *x4 = x3 + in, *x5 = x4 + in;
      AVX2_K_LOOP(AVX2_ROW(0); AVX2_ROW(1); AVX2_ROW(2); AVX2_ROW(3); AVX2_ROW(4); AVX2_ROW(5))
      float *y = Y + i0 * out + j0, *z = Z ? Z + i0 * out + j0 : NULL;
      AVX2_STORE_ROW(0);
      AVX2_STORE_ROW(1);
      AVX2_STORE_ROW(2);
      AVX2_STORE_ROW(3);
      AVX2_STORE_ROW(4);
      AVX2_STORE_ROW(5);
    }
    if (i0 < n) {
      i0 = n - 4;
      __m256 a00 = bj[0], a01 = bj[1], a10 = bj[0], a11 = bj[1], a20 = bj[0], a21 = bj[1], a30 = bj[0], a31 = bj[1];
      const float *x0 = X + i0 * in, *x1 = x0 + in, *x2 = x1 + in, *x3 = x2 + in;
      AVX2_K_LOOP(AVX2_ROW(0); AVX2_ROW(1); AVX2_ROW(2); AVX2_ROW(3))
      float *y = Y + i0 * out + j0, *z = Z ? Z + i0 * out + j0 : NULL;
      AVX2_STORE_ROW(0);
      AVX2_STORE_ROW(1);
      AVX2_STORE_ROW(2);
      AVX2_STORE_ROW(3);
    }
  }
}
#undef AVX2_K_LOOP
#undef AVX2_STORE_ROW
#undef AVX2_ROW
#undef AVX2_STORE

/* the last layer (out = 1): per row the dot product in 8 lanes, reduced in a fixed order */
TGT2 static void head_avx2(size_t n, int in, const float *X, const float *W, float b, float al, float be, float *Y) {
  for (size_t i = 0; i < n; i++) {
    __m256 acc = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= in; k += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(X + i * in + k), _mm256_loadu_ps(W + k), acc);
    float l[8];
    _mm256_storeu_ps(l, acc);
    float s = b + (((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7])));
    for (; k < in; k++) s += X[i * in + k] * W[k];
    Y[i] = alsing_f32(s, al, be);
  }
}

static int cpu_avx2(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#else
static int cpu_avx2(void) { return 0; }
#endif

int sed_mlp_f32_kernel(int requested) {
  if (requested >= SED_F32_AVX512 && cpu_avx512()) return SED_F32_AVX512;
  if (requested >= SED_F32_AVX2 && cpu_avx2()) return SED_F32_AVX2;
  return SED_F32_PORTABLE;
}

/* one layer in the kernel chosen (n a multiple of 4; the SIMD kernels where the width fits, else
 * the portable path); Z: the activation's derivatives, or NULL */
static void layer_any(int kernel, size_t n, int in, int out, const float *X, const float *W, const float *b,
                      const float *al, const float *be, float *Y, float *Z) {
#if SED_HAVE_AVX512_KERNEL
  if (kernel == SED_F32_AVX512 && out % 64 == 0) {
    layer_avx512(n, in, out, X, W, b, al, be, Y, Z);
    return;
  }
#endif
#if SED_HAVE_AVX2_KERNEL
  if (kernel >= SED_F32_AVX2 && out % 16 == 0) {
    layer_avx2(n, in, out, X, W, b, al, be, Y, Z);
    return;
  }
#endif
  (void)kernel;
  if (!Z) {
    layer_portable(n, in, out, X, W, b, al, be, Y);
    return;
  }
  for (size_t i = 0; i < n; i++) memcpy(Z + i * out, b, (size_t)out * sizeof(float));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, out, in, 1.0f, X, in, W, out, 1.0f, Z, out);
  for (size_t i = 0; i < n; i++)
#pragma omp simd
    for (int j = 0; j < out; j++) {
      float z = Z[i * out + j];
      Y[i * out + j] = alsing_f32(z, al[j], be[j]);
      Z[i * out + j] = alsing_deriv_f32(z, al[j], be[j]);
    }
}

void sed_mlp_f32_forward(const sed_mlp_f32 *f, size_t n, const float *X, float *Y, float *work, int kernel) {
  size_t n_pad = (n + 3) & ~(size_t)3, mw = (size_t)sed_mlp_f32_max_width(f);
  float *a = work, *c = work + n_pad * mw;
  const float *in = X;
  kernel = sed_mlp_f32_kernel(kernel);
  for (int l = 0; l < f->n_layers; l++) {
    int di = f->dims[l], dout = f->dims[l + 1];
    float *out = l == f->n_layers - 1 ? Y : (l % 2 == 0 ? a : c);
    if (dout == 1 && kernel != SED_F32_PORTABLE) {
#if SED_HAVE_AVX512_KERNEL
      if (kernel == SED_F32_AVX512) head_avx512(n, di, in, f->W[l], f->b[l][0], f->alpha[l][0], f->beta[l][0], out);
      else head_avx2(n, di, in, f->W[l], f->b[l][0], f->alpha[l][0], f->beta[l][0], out);
#endif
    } else {
      layer_any(kernel, l == f->n_layers - 1 ? n : n_pad, di, dout, in, f->W[l], f->b[l], f->alpha[l], f->beta[l], out,
                NULL);
    }
    in = out;
  }
}

/* Y (n x N) = X (n x K) B (K x N): a SIMD tile kernel without bias or activation where it
 * applies (n a multiple of 4, N of 64 or 16), else OpenBLAS */
static void matmul_f32(size_t n, int K, int N, const float *X, const float *B, float *Y, int kernel) {
#if SED_HAVE_AVX512_KERNEL
  if (kernel == SED_F32_AVX512 && N % 64 == 0 && n % 4 == 0) {
    layer_avx512(n, K, N, X, B, NULL, NULL, NULL, Y, NULL);
    return;
  }
  if (kernel >= SED_F32_AVX2 && N % 16 == 0 && n % 4 == 0) {
    layer_avx2(n, K, N, X, B, NULL, NULL, NULL, Y, NULL);
    return;
  }
#endif
  (void)kernel;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, N, K, 1.0f, X, K, B, N, 0.0f, Y, N);
}

size_t sed_mlp_f32_save_size(const sed_mlp_f32 *f, size_t n) {
  size_t n_pad = (n + 3) & ~(size_t)3, t = 0;
  for (int l = 0; l < f->n_layers; l++) t += 2 * n_pad * (size_t)f->dims[l + 1];
  return t;
}

void sed_mlp_f32_forward_save(const sed_mlp_f32 *f, size_t n, const float *X, float *Y, float *save, int kernel) {
  size_t n_pad = (n + 3) & ~(size_t)3;
  kernel = sed_mlp_f32_kernel(kernel);
  const float *in = X;
  float *p = save;
  for (int l = 0; l < f->n_layers; l++) {
    int di = f->dims[l], dout = f->dims[l + 1];
    float *Z = p, *A = p + n_pad * dout;
    p += 2 * n_pad * dout;
    layer_any(kernel, n_pad, di, dout, in, f->W[l], f->b[l], f->alpha[l], f->beta[l], A, Z);
    in = A;
  }
  size_t last = (size_t)f->dims[f->n_layers];
  for (size_t i = 0; i < n; i++) Y[i] = (p - n_pad * last)[i * last];
}

void sed_mlp_f32_backward(const sed_mlp_f32 *f, size_t n, const float *save, const float *dy, float *gx, float *work,
                          int kernel) {
  size_t n_pad = (n + 3) & ~(size_t)3, mw = (size_t)sed_mlp_f32_max_width(f);
  kernel = sed_mlp_f32_kernel(kernel);
  size_t off[SED_MAX_LAYERS + 1], t = 0;
  for (int l = 0; l < f->n_layers; l++) {
    off[l] = t;
    t += 2 * n_pad * (size_t)f->dims[l + 1];
  }
  float *d = work, *e = work + n_pad * mw;
  /* d = dL/da of the last layer (one unit), pad rows 0 */
  int L = f->n_layers;
  for (size_t i = 0; i < n_pad; i++) d[i] = i < n ? dy[i] : 0.0f;
  for (int l = L - 1; l >= 0; l--) {
    int di = f->dims[l], dout = f->dims[l + 1];
    const float *Z = save + off[l]; /* act'(z), stored by the forward pass */
    /* dL/dz = dL/da * act'(z) */
    for (size_t i = 0; i < n_pad * (size_t)dout; i++) d[i] *= Z[i];
    /* dL/da_{l-1} (n x di) = dL/dz (n x dout) W_l^T, W_l^T stored (dout, di) */
    float *o = l == 0 ? gx : e;
    matmul_f32(n_pad, dout, di, d, f->Wt[l], o, kernel);
    if (l > 0) {
      float *tmp = d;
      d = e;
      e = tmp;
    }
  }
}
