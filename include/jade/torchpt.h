/* Read tensors from a PyTorch checkpoint (torch.save, the zip format of PyTorch >= 1.6) WITHOUT
 * executing its pickle. The file is untrusted: everything is bounds-checked and nothing named in
 * the pickle is ever imported or called.
 *
 *  - container: a zip archive (PKWARE APPNOTE.TXT 6.3.x: local headers 4.3.7, central directory
 *    4.3.12, end of central directory 4.3.16, zip64 4.3.14/4.3.15/4.5.3), STORED entries only
 *    (torch.save never compresses; a compressed entry is refused), CRC-32 checked. Entries
 *    PREFIX/data.pkl (the object graph) and PREFIX/data/<key> (raw little-endian storages);
 *    PREFIX is the first path component of data.pkl, whatever its name.
 *  - object graph: pickle protocol 2 (PEP 307; also the protocol-4 opcodes of PEP 3154 that
 *    carry data: FRAME, SHORT_BINUNICODE, BINUNICODE8, STACK_GLOBAL, MEMOIZE, NEWOBJ_EX, ...),
 *    read by a restricted interpreter: GLOBAL names become inert nodes, REDUCE / NEWOBJ / BUILD
 *    make "object" nodes that only record the callable's name, arguments and state, except
 *      collections.OrderedDict()                 -> a dict,
 *      torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) with the persistent
 *        id ('storage', torch.<Type>Storage, key, location, numel) -> a tensor over
 *        PREFIX/data/<key> (offset + extent <= numel and the entry holds numel elements),
 *      torch._utils._rebuild_parameter[_with_state](tensor, ...) -> the tensor.
 *    Limits: data.pkl <= 64 MiB, objects, stack / mark / memo sizes, tensor sizes, path lengths.
 *
 * Paths: "population_model.model.NN.0.weight" walks attributes: an object's BUILD state dict,
 * then (torch.nn.Module) its _parameters, _buffers and _modules; dict keys (strings, or
 * integers written in decimal); list / tuple indices. */
#ifndef JADE_TORCHPT_H
#define JADE_TORCHPT_H
#include <stddef.h>

#include "jade/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define JADE_TORCHPT_MAX_DIM 8

typedef struct jade_torchpt jade_torchpt;

/* Read and parse path (zip + pickle); errors name the file and the fault. */
jade_status jade_torchpt_open(const char *path, jade_torchpt **out);
void jade_torchpt_free(jade_torchpt *pt);
const char *jade_torchpt_path(const jade_torchpt *pt);

/* 1 if `path` names something in the object graph. */
int jade_torchpt_has(const jade_torchpt *pt, const char *path);
/* The tensor at `path` as float64 (C order, *data malloc'ed; float16/bfloat16/float32/float64
 * and integer storages are converted exactly). ndim 0..8, shape[ndim]. Only finite values. */
jade_status jade_torchpt_tensor(const jade_torchpt *pt, const char *path, int *ndim, size_t shape[JADE_TORCHPT_MAX_DIM],
                                double **data);
/* A number at `path`: a Python int / float / bool or a one-element tensor. */
jade_status jade_torchpt_number(const jade_torchpt *pt, const char *path, double *out);
/* "module.name" of the class (or callable) that built the object at `path`, into buf (n bytes). */
jade_status jade_torchpt_class(const jade_torchpt *pt, const char *path, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
