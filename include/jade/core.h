/* jade core: status codes, the per-thread error channel, and counter-based random numbers.
 *
 * Every fallible jade function returns a jade_status and, on failure, leaves a one-line
 * message (naming the file, key or value at fault) retrievable with jade_last_error().
 * The message lives in thread-local storage: the only mutable global state in jade. */
#ifndef JADE_CORE_H
#define JADE_CORE_H
#include <stddef.h>
#include <stdint.h>

#include "jade/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version, written into every output file's header (FITS CREATOR, '#' lines, HTML, PNG
 * text): project(VERSION) of CMakeLists.txt, through the generated jade/version.h. */
#define JADE_VERSION JADE_VERSION_STRING /* "MAJOR.MINOR.PATCH" of these headers */

typedef enum {
  JADE_OK = 0,
  JADE_ERR_INVALID = 1,  /* bad argument or out-of-range value */
  JADE_ERR_IO = 2,       /* file cannot be read or written */
  JADE_ERR_FORMAT = 3,   /* file read but corrupt / wrong format */
  JADE_ERR_NOMEM = 4,    /* allocation failed */
  JADE_ERR_NUMERIC = 5,  /* NaN/Inf or a numerical method failed */
  JADE_ERR_CONFIG = 6,   /* missing / unknown / malformed config key */
  JADE_ERR_INTERNAL = 7
} jade_status;

/* Record a printf-style message for the calling thread and return `code`.
 * Usage: return jade_error(JADE_ERR_IO, "%s: cannot open: %s", path, strerror(errno)); */
jade_status jade_error(jade_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prepend context to the current message ("while reading X: <old message>"). */
jade_status jade_error_context(jade_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *jade_last_error(void);

void jade_clear_error(void);

/* Allocation helpers that set the error channel on failure (return NULL). Memory from
 * jade_alloc is 64-byte aligned and freed with free(). */
void *jade_alloc(size_t bytes);
void *jade_calloc(size_t n, size_t size);

/* Overflow-checked sizes for readers: a file's declared dimensions are untrusted, so every
 * product that sizes an allocation or a read goes through these. jade_size_mul: *out = a * b,
 * returns 0, or returns 1 (and leaves *out = SIZE_MAX) if the product does not fit in size_t.
 * jade_size_product: *out = elem * dims[0] * ... * dims[n-1], 1 on overflow or if the
 * result exceeds limit (pass SIZE_MAX for no limit). */
static inline int jade_size_mul(size_t a, size_t b, size_t *out) {
  if (__builtin_mul_overflow(a, b, out)) {
    *out = SIZE_MAX;
    return 1;
  }
  return 0;
}
static inline int jade_size_product(const size_t *dims, int n, size_t elem, size_t limit,
                                    size_t *out) {
  size_t p = elem;
  for (int i = 0; i < n; i++)
    if (jade_size_mul(p, dims[i], &p)) {
      *out = SIZE_MAX;
      return 1;
    }
  *out = p;
  return p > limit;
}

/* Strict decimal parsing of untrusted text (config values, command-line options, metadata):
 * the whole of s must be one number (no leading/trailing blanks, no sign for unsigned),
 * within [0, max] / finite. A double that underflows to zero or a subnormal (e.g. 1e-400)
 * is an error, not a silent 0. On error the message names `what` and the text. */
jade_status jade_parse_u64(const char *what, const char *s, uint64_t max, uint64_t *out);
jade_status jade_parse_double(const char *what, const char *s, double *out);
/* Parse one number at the start of s (leading blanks skipped) with the same checks as
 * jade_parse_double; *end points after it. For lists. */
jade_status jade_parse_double_prefix(const char *what, const char *s, double *out, char **end);

/* ---------------------------------------------------------------------------------------
 * Counter-based random numbers: Philox4x32-10 (Salmon et al. 2011, "Parallel random
 * numbers: as easy as 1, 2, 3", SC'11). A draw depends only on (seed, stream, index), never
 * on the thread or MPI rank that computes it, which makes every dataset reproducible.
 *
 * Stream convention (the high 16 bits say what the numbers are for):
 *   JADE_STREAM(kind, id) = ((uint64_t)kind << 48) | id,  id < 2^48 (e.g. simulation index).
 * ------------------------------------------------------------------------------------- */
#define JADE_STREAM(kind, id) ((((uint64_t)(kind)) << 48) | ((uint64_t)(id) & 0xFFFFFFFFFFFFull))
enum {
  JADE_RNG_PRIOR = 1,      /* cosmological parameters drawn from the prior */
  JADE_RNG_FIELD = 2,      /* white noise coloured into log-normal fields */
  JADE_RNG_SHAPE = 3,      /* shape noise of an observation */
  JADE_RNG_TRAIN = 4,      /* training: batches, t, eps, flips, condition noise */
  JADE_RNG_SAMPLE = 5,     /* posterior sampling initial noise */
  JADE_RNG_MCMC = 6,       /* MCMC chains */
  JADE_RNG_VALIDATE = 7,   /* validation observations / bootstrap */
  JADE_RNG_INIT = 8,       /* network weight initialisation */
  JADE_RNG_MASK = 9,       /* masks and noise maps of masked mock observations */
  JADE_RNG_TEST = 15
};

/* One Philox4x32-10 block: 4 random 32-bit words for counter ctr under key. */
void jade_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* Uniform double in (0, 1) (never 0 or 1), 53 random bits, for counter (stream, index). */
double jade_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index);
/* n uniforms in (0,1) at indices offset .. offset+n-1 of (seed, stream). */
void jade_rng_uniform_fill(uint64_t seed, uint64_t stream, uint64_t offset, size_t n, double *out);
/* Standard normals (Box-Muller on one Philox block per pair). Element i of the infinite
 * sequence of (seed, stream) is the same whatever offset/n it was requested with. */
void jade_rng_normal_fill(uint64_t seed, uint64_t stream, uint64_t offset, size_t n, double *out);
void jade_rng_normal_fill_f(uint64_t seed, uint64_t stream, uint64_t offset, size_t n, float *out);
double jade_rng_normal(uint64_t seed, uint64_t stream, uint64_t index);

/* 64-bit identity hashes for resume checks (src/core/hash.c; not cryptographic):
 * jade_hash_mix is MurmurHash3's finaliser; jade_hash_bytes hashes n bytes in 1 MiB blocks
 * (in parallel, combined in order: the value does not depend on the thread count). */
uint64_t jade_hash_mix(uint64_t x);
uint64_t jade_hash_bytes(const void *data, size_t n);

/* Wall-clock seconds (monotonic) for progress lines and benchmarks. */
double jade_time_now(void);
/* A duration for progress lines: "42s", "3m07s", "1h05m"; "?" if s is negative or not finite. */
void jade_format_duration(double s, char *out, size_t n);

#ifdef __cplusplus
}
#endif
#endif
