/* safetensors files (https://github.com/huggingface/safetensors, format description in its
 * README "Format"): the checkpoint format of jade models, readable by the Python
 * `safetensors` package, PyTorch, JAX, etc.
 *
 *   8 bytes      N, unsigned little-endian 64-bit: length of the header
 *   N bytes      JSON object (UTF-8), padded with spaces:
 *                  {"__metadata__": {"key": "string value", ...},
 *                   "tensor.name": {"dtype": "F32", "shape": [d0, d1, ...],
 *                                   "data_offsets": [begin, end]}, ...}
 *   rest         the byte buffer: tensors little-endian, C order; offsets are relative to
 *                the start of the buffer, which they cover entirely without holes or
 *                overlaps.
 *
 * The writer pads the header so the buffer starts at a multiple of 8 bytes and writes
 * atomically (temporary file + rename). The reader checks everything (sizes, JSON syntax,
 * duplicate names, dtypes, shape x dtype size == offsets, full coverage of the buffer) and
 * fails with one line naming the file and the fault. */
#ifndef JADE_SAFETENSORS_H
#define JADE_SAFETENSORS_H
#include <stddef.h>

#include "jade/core.h"
#include "jade/io.h"

#ifdef __cplusplus
extern "C" {
#endif

#define JADE_ST_MAX_DIM 8
#define JADE_ST_NAME_MAX 256

/* One tensor. For writing, `data` points at numel * dtype-size bytes (host order, which must
 * be little-endian). Supported dtypes: F32 ("F32"), F64 ("F64"), I64 ("I64"), U8 ("U8"). */
typedef struct {
  const char *name;
  jade_dtype dtype;
  int ndim;                        /* 0 = scalar */
  size_t shape[JADE_ST_MAX_DIM];
  const void *data;
} jade_st_tensor;

typedef struct {
  const char *key;
  const char *value;
} jade_st_meta;

/* Write tensors (in the given order, contiguous) and string metadata atomically. Names must
 * be unique, non-empty, and not "__metadata__". */
jade_status jade_safetensors_write(const char *path, const jade_st_tensor *tensors, int n_tensors,
                                   const jade_st_meta *meta, int n_meta);

/* A file read completely into memory and validated. */
typedef struct jade_safetensors jade_safetensors;
jade_status jade_safetensors_read(const char *path, jade_safetensors **out);
void jade_safetensors_free(jade_safetensors *st);
const char *jade_safetensors_path(const jade_safetensors *st);

int jade_safetensors_count(const jade_safetensors *st);
/* Tensor i (header order) or NULL; its `data` points into the file buffer (possibly not
 * aligned for the dtype: copy with memcpy or use jade_safetensors_copy_f32). */
const jade_st_tensor *jade_safetensors_tensor(const jade_safetensors *st, int i);
const jade_st_tensor *jade_safetensors_find(const jade_safetensors *st, const char *name);

/* Copy tensor `name` into dst as floats after checking it exists, has dtype F32 or F16
 * (converted exactly) and exactly the expected shape (ndim, shape), and holds only finite
 * values. Errors name file and tensor. */
jade_status jade_safetensors_copy_f32(const jade_safetensors *st, const char *name, int ndim,
                                      const size_t *shape, float *dst);

int jade_safetensors_meta_count(const jade_safetensors *st);
/* Metadata value of key, or NULL if absent. */
const char *jade_safetensors_meta(const jade_safetensors *st, const char *key);
/* Same, but a missing key is an error naming the file and key. */
jade_status jade_safetensors_meta_get(const jade_safetensors *st, const char *key, const char **out);
/* Metadata key/value i, for listing. */
void jade_safetensors_meta_at(const jade_safetensors *st, int i, const char **key, const char **value);

#ifdef __cplusplus
}
#endif
#endif
