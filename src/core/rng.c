/* Philox4x32-10 counter-based generator (Salmon, Moraes, Dror & Shaw 2011, SC'11, Fig. 2 and
 * Sec. 4: multipliers 0xD2511F53, 0xCD9E8D57, Weyl key increments 0x9E3779B9, 0xBB67AE85). */
#include "jade/core.h"

#include <math.h>

static inline void philox_round(uint32_t c[4], const uint32_t k[2]) {
  uint64_t p0 = (uint64_t)0xD2511F53u * c[0];
  uint64_t p1 = (uint64_t)0xCD9E8D57u * c[2];
  uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
  uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
  uint32_t n0 = hi1 ^ c[1] ^ k[0];
  uint32_t n2 = hi0 ^ c[3] ^ k[1];
  c[0] = n0;
  c[1] = lo1;
  c[2] = n2;
  c[3] = lo0;
}

void jade_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
  uint32_t k[2] = {key[0], key[1]};
  for (int r = 0; r < 10; r++) {
    philox_round(c, k);
    k[0] += 0x9E3779B9u;
    k[1] += 0xBB67AE85u;
  }
  out[0] = c[0];
  out[1] = c[1];
  out[2] = c[2];
  out[3] = c[3];
}

/* The block for (seed, stream, block index): counter = (block lo, block hi, stream lo, stream hi). */
static inline void rng_block(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]) {
  uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                     (uint32_t)(stream >> 32)};
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  jade_philox4x32(ctr, key, out);
}

/* 53-bit uniform in (0,1): (m + 0.5) / 2^53. */
static inline double to_unit(uint32_t hi, uint32_t lo) {
  uint64_t m = (((uint64_t)hi << 32) | lo) >> 11;
  return ((double)m + 0.5) * (1.0 / 9007199254740992.0);
}

/* Each block gives two uniforms: element 2b and 2b+1. */
void jade_rng_uniform_fill(uint64_t seed, uint64_t stream, uint64_t offset, size_t n, double *out) {
  size_t i = 0;
  while (i < n) {
    uint64_t idx = offset + i;
    uint32_t r[4];
    rng_block(seed, stream, idx >> 1, r);
    if ((idx & 1) == 0) {
      out[i++] = to_unit(r[0], r[1]);
      if (i < n) out[i++] = to_unit(r[2], r[3]);
    } else {
      out[i++] = to_unit(r[2], r[3]);
    }
  }
}

double jade_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  double u;
  jade_rng_uniform_fill(seed, stream, index, 1, &u);
  return u;
}

/* Box-Muller: block b gives normals 2b (cos) and 2b+1 (sin). */
static inline void normal_pair(uint64_t seed, uint64_t stream, uint64_t block, double *z0, double *z1) {
  uint32_t r[4];
  rng_block(seed, stream, block, r);
  double u1 = to_unit(r[0], r[1]), u2 = to_unit(r[2], r[3]);
  double rad = sqrt(-2.0 * log(u1));
  double ang = 6.283185307179586476925 * u2;
  *z0 = rad * cos(ang);
  *z1 = rad * sin(ang);
}

void jade_rng_normal_fill(uint64_t seed, uint64_t stream, uint64_t offset, size_t n, double *out) {
  size_t i = 0;
  while (i < n) {
    uint64_t idx = offset + i;
    double z0, z1;
    normal_pair(seed, stream, idx >> 1, &z0, &z1);
    if ((idx & 1) == 0) {
      out[i++] = z0;
      if (i < n) out[i++] = z1;
    } else {
      out[i++] = z1;
    }
  }
}

void jade_rng_normal_fill_f(uint64_t seed, uint64_t stream, uint64_t offset, size_t n, float *out) {
  size_t i = 0;
  while (i < n) {
    uint64_t idx = offset + i;
    double z0, z1;
    normal_pair(seed, stream, idx >> 1, &z0, &z1);
    if ((idx & 1) == 0) {
      out[i++] = (float)z0;
      if (i < n) out[i++] = (float)z1;
    } else {
      out[i++] = (float)z1;
    }
  }
}

double jade_rng_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  double z;
  jade_rng_normal_fill(seed, stream, index, 1, &z);
  return z;
}
