/* Fuzz the checkpoint formats of jade mcmc: the state file DIR.partial/state.bin (header,
 * serialised emulator, chain records; read by mcmc_state_read of src/mcmc/run_state.c) and
 * the serialised NUTS chain and emulator inside it. The NUTS record ends in an FNV-1a
 * checksum: the harness fixes it up so the fuzzer reaches the fields behind it. */
#include "fuzz_util.h"
#include "jade/fieldpost.h"
#include "jade/mcmc.h"

#include "mcmc/run_internal.h"

static uint64_t fnv1a64(const unsigned char *b, size_t n) {
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= UINT64_C(0x100000001b3);
  }
  return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* 1. the whole input as a state file */
  const char *path = fuzz_write("state.bin", data, size);
  if (path) {
    state_head h;
    jade_emulator *em = NULL;
    unsigned char *recs = NULL;
    jade_status st = mcmc_state_read(path, &h, &em, &recs);
    fuzz_check_error(st);
    if (!st) {
      /* the resume path indexes n_chains records of rec_size bytes */
      size_t n;
      FUZZ_ASSERT(!jade_size_mul((size_t)h.rec_size, (size_t)h.n_chains, &n));
      volatile unsigned char sink = recs[n - 1];
      (void)sink;
    }
    jade_emulator_free(em);
    free(recs);
  }
  /* 2. the input as a serialised NUTS chain (checksum fixed up) and as an emulator */
  unsigned char *b = malloc(size ? size : 1);
  if (!b) return 0;
  memcpy(b, data, size);
  if (size >= 16) {
    uint64_t sum = fnv1a64(b, size - 8);
    memcpy(b + size - 8, &sum, 8);
  }
  jade_nuts_chain *c = NULL;
  jade_status st = jade_nuts_chain_deserialize(&c, b, size);
  fuzz_check_error(st);
  if (!st) {
    size_t need = jade_nuts_chain_serial_size(c);
    unsigned char *o = malloc(need);
    if (o) {
      FUZZ_ASSERT(!jade_nuts_chain_serialize(c, o, need));
      free(o);
    }
    jade_nuts_chain_free(c);
  }
  jade_emulator *e = NULL;
  st = jade_emulator_deserialize(&e, data, size);
  fuzz_check_error(st);
  if (!st) {
    size_t need = jade_emulator_serial_size(e);
    FUZZ_ASSERT(need == size);
    unsigned char *o = malloc(need);
    if (o) {
      FUZZ_ASSERT(!jade_emulator_serialize(e, o, need));
      free(o);
    }
    jade_emulator_free(e);
  }
  free(b);
  return 0;
}
