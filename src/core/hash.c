/* 64-bit identity hashes (resume checks: datasets, starting models). Not cryptographic. */
#include <string.h>

#include "jade/core.h"

/* The finaliser of MurmurHash3 (Appleby 2008): every input bit affects every output bit. */
uint64_t jade_hash_mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

/* 64-bit hash of one block, word by word. */
static uint64_t hash_block(const unsigned char *p, size_t len, uint64_t b) {
  uint64_t x = 0x9e3779b97f4a7c15ull * (b + 1), w;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    memcpy(&w, p + i, 8);
    x = (x ^ jade_hash_mix(w)) * 0x9e3779b97f4a7c15ull;
  }
  w = 0;
  memcpy(&w, p + i, len - i);
  return jade_hash_mix(x ^ jade_hash_mix(w ^ ((uint64_t)(len - i) << 56)));
}

/* 64-bit hash of n bytes: 1 MiB blocks hashed in parallel, the block hashes combined in
 * order, so the value does not depend on the thread count. An identity check for resuming,
 * not a cryptographic hash. */
uint64_t jade_hash_bytes(const void *data, size_t n) {
  enum { BLOCK = 1 << 20, GROUP = 256 };
  const unsigned char *p = data;
  const size_t nblk = (n + BLOCK - 1) / BLOCK;
  uint64_t hb[GROUP], h = jade_hash_mix(n + 1);
  for (size_t g = 0; g < nblk; g += GROUP) {
    const long m = (long)(nblk - g < GROUP ? nblk - g : GROUP);
#pragma omp parallel for schedule(static) if (m > 4)
    for (long k = 0; k < m; k++) {
      const size_t b = g + (size_t)k, lo = b * BLOCK;
      hb[k] = hash_block(p + lo, n - lo < BLOCK ? n - lo : BLOCK, b);
    }
    for (long k = 0; k < m; k++) h = jade_hash_mix(h ^ hb[k]) * 0x9e3779b97f4a7c15ull;
  }
  return jade_hash_mix(h);
}
