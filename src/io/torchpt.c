/* Tensors from a PyTorch zip checkpoint without executing its pickle (include/jade/torchpt.h).
 * Zip: PKWARE APPNOTE.TXT 6.3.x. Pickle: PEP 307 (protocol 2) and the data-carrying opcodes of
 * PEP 3154 (protocol 4); opcode values as in CPython's Lib/pickletools.py. */
#include "jade/torchpt.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PT_MAX_FILE ((uint64_t)1 << 36)   /* 64 GiB: the file is read into memory */
#define PT_MAX_PKL ((uint64_t)1 << 26)    /* data.pkl: 64 MiB (a CatalogueGenerator's is < 1 MiB) */
#define PT_MAX_NODES (1 << 22)
#define PT_MAX_STACK (1 << 20)
#define PT_MAX_MARKS (1 << 16)
#define PT_MAX_MEMO (1 << 22)
#define PT_MAX_ITEMS (1 << 24)            /* entries of one container */
#define PT_MAX_ENTRIES (1 << 20)          /* zip entries */
#define PT_MAX_PATH 64                    /* components of a lookup path */

/* ---- zip (APPNOTE 4.3) ---- */
typedef struct {
  const char *name;
  size_t name_len;
  const uint8_t *data;
  uint64_t size;
} pt_entry;

enum { D_NONE = 0, D_F32, D_F64, D_F16, D_BF16, D_I64, D_I32, D_I16, D_I8, D_U8, D_BOOL };

typedef enum {
  N_NONE, N_BOOL, N_INT, N_FLOAT, N_STR, N_BYTES, N_TUPLE, N_LIST, N_DICT, N_SET, N_GLOBAL, N_OBJECT,
  N_STORAGE, N_TENSOR, N_BIGINT
} pt_ntype;

typedef struct {
  int32_t storage;
  int ndim;
  int64_t offset, size[JADE_TORCHPT_MAX_DIM], stride[JADE_TORCHPT_MAX_DIM];
} pt_tensor;

typedef struct {
  uint8_t type;
  int32_t n, cap; /* container items (dict: 2 n, key/value pairs) */
  int32_t *items;
  union {
    int64_t i;
    double f;
    struct {
      const char *p;
      size_t len;
    } s;
    struct {
      const char *mod, *name;
      uint32_t mod_len, name_len;
    } g;
    struct {
      int32_t callable, args, state;
    } o;
    struct {
      int dtype;
      int64_t numel;
      const uint8_t *data;
    } st;
    int32_t tensor;
  } u;
} pt_node;

struct jade_torchpt {
  char *path;
  uint8_t *buf;
  size_t len;
  pt_entry *ent;
  int n_ent;
  const char *prefix;
  size_t prefix_len;
  pt_node *nodes;
  int32_t n_nodes, cap_nodes;
  pt_tensor *tensors;
  int32_t n_tensors, cap_tensors;
  int32_t root;
};

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static uint32_t crc32_buf(const uint8_t *p, uint64_t n) {
  static uint32_t table[256];
  static int ready = 0;
  if (!ready) { /* benign race: every thread writes the same values */
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    ready = 1;
  }
  uint32_t c = 0xFFFFFFFFu;
  for (uint64_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

static jade_status zip_parse(jade_torchpt *pt) {
  const uint8_t *b = pt->buf;
  size_t n = pt->len;
  const char *fn = pt->path;
  if (n < 22) return jade_error(JADE_ERR_FORMAT, "%s: not a zip file (%zu bytes; truncated?)", fn, n);
  /* end of central directory record (4.3.16): signature, then a comment of <= 65535 bytes */
  size_t eocd = 0;
  int found = 0;
  size_t lo = n - 22 > 65535 ? n - 22 - 65535 : 0;
  for (size_t i = n - 22 + 1; i-- > lo;)
    if (rd32(b + i) == 0x06054b50u && i + 22 + rd16(b + i + 20) == n) {
      eocd = i;
      found = 1;
      break;
    }
  if (!found)
    return jade_error(JADE_ERR_FORMAT, "%s: no zip end-of-central-directory record (not a torch.save file, or truncated)", fn);
  uint64_t n_ent = rd16(b + eocd + 10), cd_size = rd32(b + eocd + 12), cd_off = rd32(b + eocd + 16);
  if (n_ent == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
    /* zip64 end of central directory locator (4.3.15) and record (4.3.14) */
    if (eocd < 20 || rd32(b + eocd - 20) != 0x07064b50u)
      return jade_error(JADE_ERR_FORMAT, "%s: zip64 locator missing", fn);
    uint64_t z = rd64(b + eocd - 20 + 8);
    if (z > n - 56 || rd32(b + z) != 0x06064b50u) return jade_error(JADE_ERR_FORMAT, "%s: bad zip64 record", fn);
    n_ent = rd64(b + z + 32);
    cd_size = rd64(b + z + 40);
    cd_off = rd64(b + z + 48);
  }
  if (cd_off > n || cd_size > n - cd_off)
    return jade_error(JADE_ERR_FORMAT, "%s: zip central directory outside the file (truncated?)", fn);
  if (n_ent > PT_MAX_ENTRIES || n_ent > cd_size / 46)
    return jade_error(JADE_ERR_FORMAT, "%s: implausible zip entry count %llu", fn, (unsigned long long)n_ent);
  pt->ent = jade_calloc(n_ent ? n_ent : 1, sizeof(pt_entry));
  if (!pt->ent) return JADE_ERR_NOMEM;
  uint64_t p = cd_off, end = cd_off + cd_size;
  for (uint64_t e = 0; e < n_ent; e++) {
    /* central directory file header (4.3.12) */
    if (end - p < 46 || rd32(b + p) != 0x02014b50u)
      return jade_error(JADE_ERR_FORMAT, "%s: bad zip central directory entry %llu", fn, (unsigned long long)e);
    uint16_t flags = rd16(b + p + 8), method = rd16(b + p + 10);
    uint32_t crc = rd32(b + p + 16);
    uint64_t csize = rd32(b + p + 20), usize = rd32(b + p + 24), loff = rd32(b + p + 42);
    uint16_t nl = rd16(b + p + 28), xl = rd16(b + p + 30), cl = rd16(b + p + 32);
    if ((uint64_t)46 + nl + xl + cl > end - p)
      return jade_error(JADE_ERR_FORMAT, "%s: zip central directory entry %llu overruns", fn, (unsigned long long)e);
    const char *name = (const char *)b + p + 46;
    /* zip64 extended information extra field (4.5.3): only the fields that are 0xFFFFFFFF */
    const uint8_t *x = b + p + 46 + nl, *xe = x + xl;
    while (xe - x >= 4) {
      uint16_t id = rd16(x), sz = rd16(x + 2);
      if (sz > xe - x - 4) break;
      if (id == 0x0001) {
        const uint8_t *f = x + 4, *fe = x + 4 + sz;
        if (usize == 0xFFFFFFFFu && fe - f >= 8) usize = rd64(f), f += 8;
        if (csize == 0xFFFFFFFFu && fe - f >= 8) csize = rd64(f), f += 8;
        if (loff == 0xFFFFFFFFu && fe - f >= 8) loff = rd64(f), f += 8;
      }
      x += 4 + sz;
    }
    if (flags & 1) return jade_error(JADE_ERR_FORMAT, "%s: zip entry '%.*s' is encrypted", fn, (int)nl, name);
    if (method != 0)
      return jade_error(JADE_ERR_FORMAT,
                        "%s: zip entry '%.*s' is compressed (method %u); only stored entries are read (torch.save "
                        "writes them uncompressed)",
                        fn, (int)nl, name, (unsigned)method);
    if (csize != usize)
      return jade_error(JADE_ERR_FORMAT, "%s: stored zip entry '%.*s' has sizes %llu != %llu", fn, (int)nl, name,
                        (unsigned long long)csize, (unsigned long long)usize);
    /* local file header (4.3.7) */
    if (loff > n || n - loff < 30 || rd32(b + loff) != 0x04034b50u)
      return jade_error(JADE_ERR_FORMAT, "%s: zip local header of '%.*s' missing (truncated?)", fn, (int)nl, name);
    uint64_t data = loff + 30 + (uint64_t)rd16(b + loff + 26) + rd16(b + loff + 28);
    if (data > n || usize > n - data)
      return jade_error(JADE_ERR_FORMAT, "%s: zip entry '%.*s' extends past the end of the file (truncated?)", fn,
                        (int)nl, name);
    if (crc32_buf(b + data, usize) != crc)
      return jade_error(JADE_ERR_FORMAT, "%s: zip entry '%.*s' fails its CRC-32 (corrupt file)", fn, (int)nl, name);
    pt->ent[e] = (pt_entry){.name = name, .name_len = nl, .data = b + data, .size = usize};
    p += 46 + (uint64_t)nl + xl + cl;
  }
  pt->n_ent = (int)n_ent;
  return JADE_OK;
}

static const pt_entry *zip_find(const jade_torchpt *pt, const char *suffix, size_t slen) {
  for (int i = 0; i < pt->n_ent; i++) {
    const pt_entry *e = &pt->ent[i];
    if (e->name_len == pt->prefix_len + 1 + slen && !memcmp(e->name, pt->prefix, pt->prefix_len) &&
        e->name[pt->prefix_len] == '/' && !memcmp(e->name + pt->prefix_len + 1, suffix, slen))
      return e;
  }
  return NULL;
}

/* ---- restricted pickle machine ---- */
typedef struct {
  jade_torchpt *pt;
  const uint8_t *p, *end, *start;
  int32_t *stack;
  size_t sp;
  size_t *marks;
  size_t n_marks;
  int32_t *memo;
  size_t memo_len, memo_cap;
} pm;

static int32_t new_node(jade_torchpt *pt, pt_ntype t) {
  if (pt->n_nodes >= PT_MAX_NODES) return -1;
  if (pt->n_nodes == pt->cap_nodes) {
    int32_t c = pt->cap_nodes ? 2 * pt->cap_nodes : 256;
    pt_node *nn = realloc(pt->nodes, (size_t)c * sizeof(pt_node));
    if (!nn) return -1;
    pt->nodes = nn;
    pt->cap_nodes = c;
  }
  pt_node *n = &pt->nodes[pt->n_nodes];
  memset(n, 0, sizeof *n);
  n->type = (uint8_t)t;
  return pt->n_nodes++;
}

static int add_item(jade_torchpt *pt, int32_t c, int32_t v) {
  pt_node *n = &pt->nodes[c];
  if (n->n >= PT_MAX_ITEMS) return 0;
  if (n->n == n->cap) {
    int32_t cap = n->cap ? 2 * n->cap : 4;
    int32_t *it = realloc(n->items, (size_t)cap * sizeof(int32_t));
    if (!it) return 0;
    n->items = it;
    n->cap = cap;
  }
  n->items[n->n++] = v;
  return 1;
}

static int str_eq(const pt_node *n, const char *s) {
  size_t l = strlen(s);
  return n->type == N_STR && n->u.s.len == l && !memcmp(n->u.s.p, s, l);
}
static int global_is(const pt_node *n, const char *mod, const char *name) {
  return n->type == N_GLOBAL && n->u.g.mod_len == strlen(mod) && !memcmp(n->u.g.mod, mod, n->u.g.mod_len) &&
         n->u.g.name_len == strlen(name) && !memcmp(n->u.g.name, name, n->u.g.name_len);
}

#define PERR(...) jade_error(JADE_ERR_FORMAT, __VA_ARGS__)

static jade_status push(pm *m, int32_t v) {
  if (v < 0) return PERR("%s: pickle: too many objects (limit %d) or out of memory", m->pt->path, PT_MAX_NODES);
  if (m->sp >= PT_MAX_STACK) return PERR("%s: pickle: stack deeper than %d", m->pt->path, PT_MAX_STACK);
  m->stack[m->sp++] = v;
  return JADE_OK;
}

static int dtype_of(const pt_node *g, size_t *elsize) {
  static const struct {
    const char *name;
    int d;
    size_t sz;
  } map[] = {{"FloatStorage", D_F32, 4}, {"DoubleStorage", D_F64, 8}, {"HalfStorage", D_F16, 2},
             {"BFloat16Storage", D_BF16, 2}, {"LongStorage", D_I64, 8}, {"IntStorage", D_I32, 4},
             {"ShortStorage", D_I16, 2}, {"CharStorage", D_I8, 1}, {"ByteStorage", D_U8, 1},
             {"BoolStorage", D_BOOL, 1}};
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (global_is(g, "torch", map[i].name)) {
      *elsize = map[i].sz;
      return map[i].d;
    }
  return D_NONE;
}
static size_t dtype_size(int d) {
  return d == D_F64 || d == D_I64 ? 8 : d == D_F32 || d == D_I32 ? 4 : d == D_F16 || d == D_BF16 || d == D_I16 ? 2 : 1;
}

/* BINPERSID: ('storage', torch.<Type>Storage, key, location, numel) -> storage node */
static jade_status make_storage(pm *m, int32_t pid, int32_t *out) {
  jade_torchpt *pt = m->pt;
  const pt_node *t = &pt->nodes[pid];
  if (t->type != N_TUPLE || t->n < 5 || !str_eq(&pt->nodes[t->items[0]], "storage"))
    return PERR("%s: pickle: persistent id is not a ('storage', type, key, location, numel) tuple", pt->path);
  const pt_node *ty = &pt->nodes[t->items[1]], *key = &pt->nodes[t->items[2]], *num = &pt->nodes[t->items[4]];
  size_t es = 0;
  int d = dtype_of(ty, &es);
  if (!d)
    return PERR("%s: pickle: storage type %.*s.%.*s is not supported", pt->path, ty->type == N_GLOBAL ? (int)ty->u.g.mod_len : 1,
                ty->type == N_GLOBAL ? ty->u.g.mod : "?", ty->type == N_GLOBAL ? (int)ty->u.g.name_len : 1,
                ty->type == N_GLOBAL ? ty->u.g.name : "?");
  if (key->type != N_STR || key->u.s.len > 200 || num->type != N_INT || num->u.i < 0)
    return PERR("%s: pickle: bad storage key or element count", pt->path);
  char suf[256];
  int sl = snprintf(suf, sizeof suf, "data/%.*s", (int)key->u.s.len, key->u.s.p);
  const pt_entry *e = zip_find(pt, suf, (size_t)sl);
  if (!e) return PERR("%s: storage %.*s: zip entry %.*s/%s missing", pt->path, (int)key->u.s.len, key->u.s.p,
                      (int)pt->prefix_len, pt->prefix, suf);
  if ((uint64_t)num->u.i > e->size / es)
    return PERR("%s: storage %.*s: %lld elements of %zu bytes but the entry holds %llu bytes", pt->path,
                (int)key->u.s.len, key->u.s.p, (long long)num->u.i, es, (unsigned long long)e->size);
  int64_t numel = num->u.i; /* (new_node may move the nodes) */
  int32_t s = new_node(pt, N_STORAGE);
  if (s < 0) return PERR("%s: pickle: too many objects", pt->path);
  pt->nodes[s].u.st.dtype = d;
  pt->nodes[s].u.st.numel = numel;
  pt->nodes[s].u.st.data = e->data;
  *out = s;
  return JADE_OK;
}

static int int_tuple(const jade_torchpt *pt, int32_t t, int64_t *v, int max, int *n) {
  const pt_node *nd = &pt->nodes[t];
  if ((nd->type != N_TUPLE && nd->type != N_LIST) || nd->n > max) return 0;
  for (int i = 0; i < nd->n; i++) {
    const pt_node *x = &pt->nodes[nd->items[i]];
    if (x->type != N_INT) return 0;
    v[i] = x->u.i;
  }
  *n = nd->n;
  return 1;
}

/* torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks, ...) */
static jade_status make_tensor(pm *m, int32_t args, int32_t *out) {
  jade_torchpt *pt = m->pt;
  const pt_node *a = &pt->nodes[args];
  if (a->type != N_TUPLE || a->n < 4) return PERR("%s: pickle: _rebuild_tensor_v2 with bad arguments", pt->path);
  const pt_node *st = &pt->nodes[a->items[0]], *off = &pt->nodes[a->items[1]];
  pt_tensor t;
  memset(&t, 0, sizeof t);
  int ns = 0;
  if (st->type != N_STORAGE || off->type != N_INT || off->u.i < 0 ||
      !int_tuple(pt, a->items[2], t.size, JADE_TORCHPT_MAX_DIM, &t.ndim) ||
      !int_tuple(pt, a->items[3], t.stride, JADE_TORCHPT_MAX_DIM, &ns) || ns != t.ndim)
    return PERR("%s: pickle: _rebuild_tensor_v2 with bad storage, offset, size or stride", pt->path);
  t.storage = a->items[0];
  t.offset = off->u.i;
  /* extent: offset + sum (size_k - 1) stride_k + 1 elements must fit in the storage */
  uint64_t last = (uint64_t)t.offset, numel = 1;
  int empty = 0;
  for (int k = 0; k < t.ndim; k++) {
    if (t.size[k] < 0 || t.stride[k] < 0 || t.size[k] > ((int64_t)1 << 40) || t.stride[k] > ((int64_t)1 << 40))
      return PERR("%s: pickle: tensor with negative or huge size/stride", pt->path);
    uint64_t step;
    if (!t.size[k]) empty = 1;
    else if (__builtin_mul_overflow((uint64_t)(t.size[k] - 1), (uint64_t)t.stride[k], &step) ||
             __builtin_add_overflow(last, step, &last))
      return PERR("%s: pickle: tensor extent overflows", pt->path);
    if (t.size[k] && numel > ((uint64_t)1 << 32) / (uint64_t)t.size[k])
      return PERR("%s: pickle: tensor of more than 2^32 elements", pt->path);
    numel *= (uint64_t)t.size[k];
  }
  if (!empty && last >= (uint64_t)st->u.st.numel)
    return PERR("%s: tensor (offset %lld, extent %llu elements) exceeds its storage of %lld elements", pt->path,
                (long long)t.offset, (unsigned long long)(last + 1), (long long)st->u.st.numel);
  if (pt->n_tensors == pt->cap_tensors) {
    int32_t c = pt->cap_tensors ? 2 * pt->cap_tensors : 16;
    pt_tensor *nt = realloc(pt->tensors, (size_t)c * sizeof(pt_tensor));
    if (!nt) return JADE_ERR_NOMEM;
    pt->tensors = nt;
    pt->cap_tensors = c;
  }
  int32_t n = new_node(pt, N_TENSOR);
  if (n < 0) return PERR("%s: pickle: too many objects", pt->path);
  pt->tensors[pt->n_tensors] = t;
  pt->nodes[n].u.tensor = pt->n_tensors++;
  *out = n;
  return JADE_OK;
}

#define NEED(k)                                                                                     \
  do {                                                                                              \
    if ((size_t)(m->end - m->p) < (size_t)(k))                                                      \
      return PERR("%s: pickle truncated at byte %zu", pt->path, (size_t)(m->p - m->start));         \
  } while (0)
#define POP(v)                                                                                      \
  do {                                                                                              \
    if (m->sp <= floor_sp(m)) return PERR("%s: pickle: stack underflow at byte %zu", pt->path, pos); \
    (v) = m->stack[--m->sp];                                                                        \
  } while (0)

static size_t floor_sp(const pm *m) { return m->n_marks ? m->marks[m->n_marks - 1] : 0; }

static jade_status pop_mark(pm *m, size_t *base, size_t pos) {
  if (!m->n_marks) return PERR("%s: pickle: no MARK at byte %zu", m->pt->path, pos);
  *base = m->marks[--m->n_marks];
  return JADE_OK;
}

static jade_status memo_put(pm *m, uint64_t idx, size_t pos) {
  if (!m->sp) return PERR("%s: pickle: memo put on an empty stack at byte %zu", m->pt->path, pos);
  if (idx >= PT_MAX_MEMO) return PERR("%s: pickle: memo index %llu too large", m->pt->path, (unsigned long long)idx);
  if (idx >= m->memo_cap) {
    size_t c = m->memo_cap ? m->memo_cap : 256;
    while (c <= idx) c *= 2;
    int32_t *nm = realloc(m->memo, c * sizeof(int32_t));
    if (!nm) return JADE_ERR_NOMEM;
    for (size_t i = m->memo_cap; i < c; i++) nm[i] = -1;
    m->memo = nm;
    m->memo_cap = c;
  }
  m->memo[idx] = m->stack[m->sp - 1];
  if (idx >= m->memo_len) m->memo_len = idx + 1;
  return JADE_OK;
}

static jade_status new_str(pm *m, pt_ntype t, uint64_t len, size_t pos) {
  jade_torchpt *pt = m->pt;
  if ((uint64_t)(m->end - m->p) < len) return PERR("%s: pickle truncated in a string at byte %zu", pt->path, pos);
  int32_t n = new_node(pt, t);
  if (n >= 0) {
    pt->nodes[n].u.s.p = (const char *)m->p;
    pt->nodes[n].u.s.len = (size_t)len;
  }
  m->p += len;
  return push(m, n);
}

/* a container from the stack items above the last MARK */
static jade_status from_mark(pm *m, pt_ntype t, size_t pos) {
  size_t base = 0;
  jade_status s = pop_mark(m, &base, pos);
  if (s) return s;
  int32_t n = new_node(m->pt, t);
  if (n < 0) return push(m, n);
  if (t == N_DICT && (m->sp - base) % 2) return PERR("%s: pickle: DICT with an odd item count", m->pt->path);
  for (size_t i = base; i < m->sp; i++)
    if (!add_item(m->pt, n, m->stack[i])) return PERR("%s: pickle: container too large", m->pt->path);
  m->sp = base;
  return push(m, n);
}

static jade_status make_global(pm *m, const char *mod, size_t ml, const char *name, size_t nl) {
  int32_t n = new_node(m->pt, N_GLOBAL);
  if (n >= 0) {
    pt_node *g = &m->pt->nodes[n];
    g->u.g.mod = mod;
    g->u.g.mod_len = (uint32_t)ml;
    g->u.g.name = name;
    g->u.g.name_len = (uint32_t)nl;
  }
  return push(m, n);
}

/* an inert object: what built it (callable / class) and with which arguments; BUILD adds its state */
static jade_status push_object(pm *m, int32_t callable, int32_t args) {
  int32_t r = new_node(m->pt, N_OBJECT);
  if (r >= 0) {
    m->pt->nodes[r].u.o.callable = callable;
    m->pt->nodes[r].u.o.args = args;
    m->pt->nodes[r].u.o.state = -1;
  }
  return push(m, r);
}

/* callable(*args): never called; a few torch / collections callables get their meaning */
static jade_status reduce(pm *m, int32_t fn, int32_t args) {
  jade_torchpt *pt = m->pt;
  const pt_node *f = &pt->nodes[fn];
  int32_t r = -1;
  if (global_is(f, "torch._utils", "_rebuild_tensor_v2")) {
    jade_status s = make_tensor(m, args, &r);
    if (s) return s;
    return push(m, r);
  }
  if (global_is(f, "torch._utils", "_rebuild_parameter") || global_is(f, "torch._utils", "_rebuild_parameter_with_state")) {
    const pt_node *a = &pt->nodes[args];
    if (a->type != N_TUPLE || a->n < 1 || pt->nodes[a->items[0]].type != N_TENSOR)
      return PERR("%s: pickle: _rebuild_parameter without a tensor", pt->path);
    return push(m, a->items[0]);
  }
  if (global_is(f, "collections", "OrderedDict") && pt->nodes[args].type == N_TUPLE && pt->nodes[args].n == 0)
    return push(m, new_node(pt, N_DICT));
  return push_object(m, fn, args);
}

static jade_status set_items(pm *m, int32_t target, size_t base, size_t pos) {
  jade_torchpt *pt = m->pt;
  if ((m->sp - base) % 2) return PERR("%s: pickle: SETITEMS with an odd item count at byte %zu", pt->path, pos);
  if (pt->nodes[target].type == N_DICT)
    for (size_t i = base; i < m->sp; i++)
      if (!add_item(pt, target, m->stack[i])) return PERR("%s: pickle: dict too large", pt->path);
  /* items set on anything else (a dict subclass) are dropped: inert */
  m->sp = base;
  return JADE_OK;
}

static jade_status append_items(pm *m, int32_t target, size_t base) {
  jade_torchpt *pt = m->pt;
  uint8_t t = pt->nodes[target].type;
  if (t == N_LIST || t == N_SET)
    for (size_t i = base; i < m->sp; i++)
      if (!add_item(pt, target, m->stack[i])) return PERR("%s: pickle: list too large", pt->path);
  m->sp = base;
  return JADE_OK;
}

static jade_status pickle_run(pm *m) {
  jade_torchpt *pt = m->pt;
  jade_status s = JADE_OK;
  while (!s) {
    size_t pos = (size_t)(m->p - m->start);
    NEED(1);
    uint8_t op = *m->p++;
    int32_t a = -1, b = -1, c = -1;
    size_t base = 0;
    switch (op) {
      case 0x80: NEED(1); m->p++; break;                   /* PROTO */
      case 0x95: NEED(8); m->p += 8; break;                /* FRAME: frames are transparent */
      case '.':                                            /* STOP */
        if (m->sp != 1 || m->n_marks) return PERR("%s: pickle: STOP with %zu items on the stack", pt->path, m->sp);
        pt->root = m->stack[0];
        return JADE_OK;
      case 'c': { /* GLOBAL module\nname\n */
        const uint8_t *nl1 = memchr(m->p, '\n', (size_t)(m->end - m->p));
        const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(m->end - nl1 - 1)) : NULL;
        if (!nl2) return PERR("%s: pickle: unterminated GLOBAL at byte %zu", pt->path, pos);
        s = make_global(m, (const char *)m->p, (size_t)(nl1 - m->p), (const char *)nl1 + 1, (size_t)(nl2 - nl1 - 1));
        m->p = nl2 + 1;
        break;
      }
      case 0x93: /* STACK_GLOBAL */
        POP(b);
        POP(a);
        if (pt->nodes[a].type != N_STR || pt->nodes[b].type != N_STR)
          return PERR("%s: pickle: STACK_GLOBAL of non-strings at byte %zu", pt->path, pos);
        s = make_global(m, pt->nodes[a].u.s.p, pt->nodes[a].u.s.len, pt->nodes[b].u.s.p, pt->nodes[b].u.s.len);
        break;
      case 'q': NEED(1); s = memo_put(m, *m->p++, pos); break;        /* BINPUT */
      case 'r': NEED(4); s = memo_put(m, rd32(m->p), pos); m->p += 4; break; /* LONG_BINPUT */
      case 0x94: s = memo_put(m, m->memo_len, pos); break;          /* MEMOIZE */
      case 'h': case 'j': {                                        /* BINGET, LONG_BINGET */
        uint64_t i;
        if (op == 'h') { NEED(1); i = *m->p++; } else { NEED(4); i = rd32(m->p); m->p += 4; }
        if (i >= m->memo_cap || m->memo[i] < 0) return PERR("%s: pickle: memo %llu unset at byte %zu", pt->path, (unsigned long long)i, pos);
        s = push(m, m->memo[i]);
        break;
      }
      case '(':                                                    /* MARK */
        if (m->n_marks >= PT_MAX_MARKS) return PERR("%s: pickle: too many MARKs", pt->path);
        m->marks[m->n_marks++] = m->sp;
        break;
      case '0': POP(a); break;                                     /* POP */
      case '1': s = pop_mark(m, &base, pos); if (!s) m->sp = base; break; /* POP_MARK */
      case '2': POP(a); s = push(m, a); if (!s) s = push(m, a); break;    /* DUP */
      case '}': s = push(m, new_node(pt, N_DICT)); break;          /* EMPTY_DICT */
      case ']': s = push(m, new_node(pt, N_LIST)); break;          /* EMPTY_LIST */
      case ')': s = push(m, new_node(pt, N_TUPLE)); break;         /* EMPTY_TUPLE */
      case 0x8f: s = push(m, new_node(pt, N_SET)); break;          /* EMPTY_SET */
      case 't': s = from_mark(m, N_TUPLE, pos); break;             /* TUPLE */
      case 'l': s = from_mark(m, N_LIST, pos); break;              /* LIST */
      case 'd': s = from_mark(m, N_DICT, pos); break;              /* DICT */
      case 0x91: s = from_mark(m, N_SET, pos); break;              /* FROZENSET */
      case 0x85: case 0x86: case 0x87: {                           /* TUPLE1, TUPLE2, TUPLE3 */
        int k = op - 0x84;
        if (m->sp < floor_sp(m) + (size_t)k) return PERR("%s: pickle: stack underflow at byte %zu", pt->path, pos);
        int32_t t = new_node(pt, N_TUPLE);
        if (t < 0) return push(m, t);
        for (int i = 0; i < k; i++)
          if (!add_item(pt, t, m->stack[m->sp - (size_t)k + (size_t)i])) return JADE_ERR_NOMEM;
        m->sp -= (size_t)k;
        s = push(m, t);
        break;
      }
      case 's':                                                    /* SETITEM */
        if (m->sp < floor_sp(m) + 3) return PERR("%s: pickle: stack underflow at byte %zu", pt->path, pos);
        s = set_items(m, m->stack[m->sp - 3], m->sp - 2, pos);
        break;
      case 'u':                                                    /* SETITEMS */
        s = pop_mark(m, &base, pos);
        if (!s && base == floor_sp(m)) s = PERR("%s: pickle: SETITEMS without a target at byte %zu", pt->path, pos);
        if (!s) s = set_items(m, m->stack[base - 1], base, pos);
        break;
      case 'a':                                                    /* APPEND */
        if (m->sp < floor_sp(m) + 2) return PERR("%s: pickle: stack underflow at byte %zu", pt->path, pos);
        s = append_items(m, m->stack[m->sp - 2], m->sp - 1);
        break;
      case 'e': case 0x90:                                         /* APPENDS, ADDITEMS */
        s = pop_mark(m, &base, pos);
        if (!s && base == floor_sp(m)) s = PERR("%s: pickle: APPENDS without a target at byte %zu", pt->path, pos);
        if (!s) s = append_items(m, m->stack[base - 1], base);
        break;
      case 'J': case 'K': case 'M': {                              /* BININT, BININT1, BININT2 */
        int64_t v;
        if (op == 'J') { NEED(4); v = (int32_t)rd32(m->p); m->p += 4; }
        else if (op == 'K') { NEED(1); v = *m->p++; }
        else { NEED(2); v = rd16(m->p); m->p += 2; }
        a = new_node(pt, N_INT);
        if (a >= 0) pt->nodes[a].u.i = v;
        s = push(m, a);
        break;
      }
      case 0x8a: case 0x8b: {                                      /* LONG1, LONG4: little-endian two's complement */
        uint64_t nb;
        if (op == 0x8a) { NEED(1); nb = *m->p++; } else { NEED(4); nb = rd32(m->p); m->p += 4; }
        NEED(nb);
        if (nb <= 8) {
          uint64_t v = 0;
          for (uint64_t i = 0; i < nb; i++) v |= (uint64_t)m->p[i] << (8 * i);
          if (nb && nb < 8 && (m->p[nb - 1] & 0x80)) v |= ~(uint64_t)0 << (8 * nb);
          a = new_node(pt, N_INT);
          if (a >= 0) pt->nodes[a].u.i = (int64_t)v;
        } else
          a = new_node(pt, N_BIGINT);
        m->p += nb;
        s = push(m, a);
        break;
      }
      case 'G': {                                                  /* BINFLOAT: big-endian IEEE double */
        NEED(8);
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) v = v << 8 | m->p[i];
        m->p += 8;
        a = new_node(pt, N_FLOAT);
        if (a >= 0) memcpy(&pt->nodes[a].u.f, &v, 8);
        s = push(m, a);
        break;
      }
      case 0x8c: NEED(1); { uint64_t l = *m->p++; s = new_str(m, N_STR, l, pos); } break; /* SHORT_BINUNICODE */
      case 'X': NEED(4); { uint64_t l = rd32(m->p); m->p += 4; s = new_str(m, N_STR, l, pos); } break; /* BINUNICODE */
      case 0x8d: NEED(8); { uint64_t l = rd64(m->p); m->p += 8; s = new_str(m, N_STR, l, pos); } break; /* BINUNICODE8 */
      case 'U': NEED(1); { uint64_t l = *m->p++; s = new_str(m, N_STR, l, pos); } break; /* SHORT_BINSTRING */
      case 'T': NEED(4); { uint64_t l = rd32(m->p); m->p += 4; s = new_str(m, N_STR, l, pos); } break; /* BINSTRING */
      case 'C': NEED(1); { uint64_t l = *m->p++; s = new_str(m, N_BYTES, l, pos); } break; /* SHORT_BINBYTES */
      case 'B': NEED(4); { uint64_t l = rd32(m->p); m->p += 4; s = new_str(m, N_BYTES, l, pos); } break; /* BINBYTES */
      case 0x8e: case 0x96: NEED(8); { uint64_t l = rd64(m->p); m->p += 8; s = new_str(m, N_BYTES, l, pos); } break; /* BINBYTES8, BYTEARRAY8 */
      case 'N': s = push(m, new_node(pt, N_NONE)); break;          /* NONE */
      case 0x88: case 0x89:                                        /* NEWTRUE, NEWFALSE */
        a = new_node(pt, N_BOOL);
        if (a >= 0) pt->nodes[a].u.i = op == 0x88;
        s = push(m, a);
        break;
      case 'R': case 0x81:                                         /* REDUCE, NEWOBJ: never called */
        POP(b);
        POP(a);
        if (pt->nodes[b].type != N_TUPLE) return PERR("%s: pickle: call arguments are not a tuple at byte %zu", pt->path, pos);
        if (op == 'R') {
          s = reduce(m, a, b);
          break;
        }
        s = push_object(m, a, b);
        break;
      case 0x92:                                                   /* NEWOBJ_EX cls args kwargs */
        POP(c); /* kwargs: dropped */
        POP(b);
        POP(a);
        (void)c;
        s = push_object(m, a, b);
        break;
      case 'b':                                                    /* BUILD: record the state */
        POP(b);
        if (m->sp <= floor_sp(m)) return PERR("%s: pickle: BUILD without an object at byte %zu", pt->path, pos);
        a = m->stack[m->sp - 1];
        if (pt->nodes[a].type == N_OBJECT) pt->nodes[a].u.o.state = b;
        break;
      case 'Q':                                                    /* BINPERSID */
        POP(a);
        s = make_storage(m, a, &b);
        if (!s) s = push(m, b);
        break;
      default:
        return PERR("%s: pickle: unsupported opcode 0x%02x at byte %zu of data.pkl", pt->path, op, pos);
    }
  }
  return s;
}

/* ---- open / free ---- */
void jade_torchpt_free(jade_torchpt *pt) {
  if (!pt) return;
  for (int32_t i = 0; i < pt->n_nodes; i++) free(pt->nodes[i].items);
  free(pt->nodes);
  free(pt->tensors);
  free(pt->ent);
  free(pt->buf);
  free(pt->path);
  free(pt);
}

const char *jade_torchpt_path(const jade_torchpt *pt) { return pt->path; }

jade_status jade_torchpt_open(const char *path, jade_torchpt **out) {
  *out = NULL;
  jade_torchpt *pt = jade_calloc(1, sizeof *pt);
  if (!pt) return JADE_ERR_NOMEM;
  pt->root = -1;
  pt->path = malloc(strlen(path) + 1);
  if (!pt->path) {
    free(pt);
    return JADE_ERR_NOMEM;
  }
  strcpy(pt->path, path);
  jade_status s = JADE_OK;
  FILE *f = fopen(path, "rb");
  if (!f) {
    s = jade_error(JADE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    goto fail;
  }
  long sz = -1;
  if (fseek(f, 0, SEEK_END) == 0) sz = ftell(f);
  if (sz < 0 || (uint64_t)sz > PT_MAX_FILE || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    s = jade_error(JADE_ERR_IO, "%s: cannot determine the size, or larger than 64 GiB", path);
    goto fail;
  }
  pt->len = (size_t)sz;
  pt->buf = malloc(pt->len ? pt->len : 1);
  if (!pt->buf) {
    fclose(f);
    s = JADE_ERR_NOMEM;
    goto fail;
  }
  if (fread(pt->buf, 1, pt->len, f) != pt->len) {
    fclose(f);
    s = jade_error(JADE_ERR_IO, "%s: read failed", path);
    goto fail;
  }
  fclose(f);
  if ((s = zip_parse(pt))) goto fail;
  const pt_entry *pkl = NULL;
  for (int i = 0; i < pt->n_ent && !pkl; i++) {
    const pt_entry *e = &pt->ent[i];
    const char *sl = memchr(e->name, '/', e->name_len);
    if (sl && sl > e->name && (size_t)(e->name + e->name_len - sl) == 9 && !memcmp(sl, "/data.pkl", 9)) {
      pkl = e;
      pt->prefix = e->name;
      pt->prefix_len = (size_t)(sl - e->name);
    }
  }
  if (!pkl) {
    s = jade_error(JADE_ERR_FORMAT, "%s: no <archive>/data.pkl entry (not a torch.save zip file)", path);
    goto fail;
  }
  if (pkl->size > PT_MAX_PKL) {
    s = jade_error(JADE_ERR_FORMAT, "%s: data.pkl larger than 64 MiB", path);
    goto fail;
  }
  pm m = {.pt = pt, .p = pkl->data, .end = pkl->data + pkl->size, .start = pkl->data};
  m.stack = malloc(PT_MAX_STACK * sizeof(int32_t));
  m.marks = malloc(PT_MAX_MARKS * sizeof(size_t));
  if (!m.stack || !m.marks) s = JADE_ERR_NOMEM;
  else s = pickle_run(&m);
  free(m.stack);
  free(m.marks);
  free(m.memo);
  if (s) goto fail;
  *out = pt;
  return JADE_OK;
fail:
  jade_torchpt_free(pt);
  return s;
}

/* ---- paths ---- */
static int32_t dict_get(const jade_torchpt *pt, int32_t d, const char *key, size_t kl) {
  const pt_node *n = &pt->nodes[d];
  if (n->type != N_DICT) return -1;
  int digits = kl > 0 && kl < 19;
  for (size_t i = 0; i < kl; i++) digits &= key[i] >= '0' && key[i] <= '9';
  long long iv = digits ? strtoll(key, NULL, 10) : -1;
  for (int32_t i = 0; i + 1 < n->n; i += 2) {
    const pt_node *k = &pt->nodes[n->items[i]];
    if ((k->type == N_STR && k->u.s.len == kl && !memcmp(k->u.s.p, key, kl)) || (digits && k->type == N_INT && k->u.i == iv))
      return n->items[i + 1];
  }
  return -1;
}

static int32_t child(const jade_torchpt *pt, int32_t node, const char *key, size_t kl) {
  const pt_node *n = &pt->nodes[node];
  if (n->type == N_DICT) return dict_get(pt, node, key, kl);
  if (n->type == N_LIST || n->type == N_TUPLE) {
    if (!kl || kl > 9) return -1;
    int64_t i = 0;
    for (size_t k = 0; k < kl; k++) {
      if (key[k] < '0' || key[k] > '9') return -1;
      i = 10 * i + (key[k] - '0');
    }
    return i < n->n ? n->items[i] : -1;
  }
  if (n->type != N_OBJECT || n->u.o.state < 0) return -1;
  int32_t st = n->u.o.state;
  /* (state dict, slots dict) pairs: the first */
  if (pt->nodes[st].type == N_TUPLE && pt->nodes[st].n == 2) st = pt->nodes[st].items[0];
  int32_t r = dict_get(pt, st, key, kl);
  if (r >= 0) return r;
  static const char *sub[] = {"_parameters", "_buffers", "_modules"};
  for (int k = 0; k < 3; k++) {
    int32_t d = dict_get(pt, st, sub[k], strlen(sub[k]));
    if (d >= 0 && (r = dict_get(pt, d, key, kl)) >= 0) return r;
  }
  return -1;
}

static int32_t lookup(const jade_torchpt *pt, const char *path) {
  int32_t node = pt->root;
  if (!path || !*path) return node;
  const char *p = path;
  for (int depth = 0; node >= 0; depth++) {
    if (depth >= PT_MAX_PATH) return -1;
    const char *dot = strchr(p, '.');
    size_t kl = dot ? (size_t)(dot - p) : strlen(p);
    node = child(pt, node, p, kl);
    if (!dot) break;
    p = dot + 1;
  }
  return node;
}

int jade_torchpt_has(const jade_torchpt *pt, const char *path) { return lookup(pt, path) >= 0; }

static double half_to_double(uint16_t h) {
  int e = (h >> 10) & 0x1F, f = h & 0x3FF;
  double v = e == 0 ? ldexp(f, -24) : e == 31 ? (f ? NAN : INFINITY) : ldexp(f + 1024, e - 25);
  return h & 0x8000 ? -v : v;
}

static double elem(int d, const uint8_t *p) {
  switch (d) {
    case D_F32: { uint32_t u = rd32(p); float f; memcpy(&f, &u, 4); return f; }
    case D_F64: { uint64_t u = rd64(p); double f; memcpy(&f, &u, 8); return f; }
    case D_F16: return half_to_double(rd16(p));
    case D_BF16: { uint32_t u = (uint32_t)rd16(p) << 16; float f; memcpy(&f, &u, 4); return f; }
    case D_I64: return (double)(int64_t)rd64(p);
    case D_I32: return (int32_t)rd32(p);
    case D_I16: return (int16_t)rd16(p);
    case D_I8: return (int8_t)p[0];
    default: return p[0];
  }
}

jade_status jade_torchpt_tensor(const jade_torchpt *pt, const char *path, int *ndim, size_t shape[JADE_TORCHPT_MAX_DIM],
                                double **data) {
  *data = NULL;
  int32_t n = lookup(pt, path);
  if (n < 0) return jade_error(JADE_ERR_FORMAT, "%s: %s not found", pt->path, path);
  if (pt->nodes[n].type != N_TENSOR) return jade_error(JADE_ERR_FORMAT, "%s: %s is not a tensor", pt->path, path);
  const pt_tensor *t = &pt->tensors[pt->nodes[n].u.tensor];
  const pt_node *st = &pt->nodes[t->storage];
  size_t numel = 1, es = dtype_size(st->u.st.dtype);
  for (int k = 0; k < t->ndim; k++) numel *= (size_t)t->size[k];
  double *d = jade_alloc((numel ? numel : 1) * sizeof(double)); /* numel <= 2^32 (make_tensor) */
  if (!d) return JADE_ERR_NOMEM;
  int64_t idx[JADE_TORCHPT_MAX_DIM] = {0};
  for (size_t i = 0; i < numel; i++) {
    int64_t e = t->offset;
    for (int k = 0; k < t->ndim; k++) e += idx[k] * t->stride[k];
    d[i] = elem(st->u.st.dtype, st->u.st.data + (size_t)e * es); /* e < numel checked in make_tensor */
    if (!isfinite(d[i])) {
      free(d);
      return jade_error(JADE_ERR_FORMAT, "%s: %s holds a non-finite value", pt->path, path);
    }
    for (int k = t->ndim - 1; k >= 0; k--) {
      if (++idx[k] < t->size[k]) break;
      idx[k] = 0;
    }
  }
  *ndim = t->ndim;
  for (int k = 0; k < t->ndim; k++) shape[k] = (size_t)t->size[k];
  *data = d;
  return JADE_OK;
}

jade_status jade_torchpt_number(const jade_torchpt *pt, const char *path, double *out) {
  int32_t n = lookup(pt, path);
  if (n < 0) return jade_error(JADE_ERR_FORMAT, "%s: %s not found", pt->path, path);
  const pt_node *x = &pt->nodes[n];
  if (x->type == N_INT || x->type == N_BOOL) *out = (double)x->u.i;
  else if (x->type == N_FLOAT) *out = x->u.f;
  else if (x->type == N_TENSOR) {
    int nd;
    size_t sh[JADE_TORCHPT_MAX_DIM], numel = 1;
    double *d;
    jade_status s = jade_torchpt_tensor(pt, path, &nd, sh, &d);
    if (s) return s;
    for (int k = 0; k < nd; k++) numel *= sh[k];
    if (numel != 1) {
      free(d);
      return jade_error(JADE_ERR_FORMAT, "%s: %s is a tensor of %zu elements, not a number", pt->path, path, numel);
    }
    *out = d[0];
    free(d);
  } else
    return jade_error(JADE_ERR_FORMAT, "%s: %s is not a number", pt->path, path);
  if (!isfinite(*out)) return jade_error(JADE_ERR_FORMAT, "%s: %s is not finite", pt->path, path);
  return JADE_OK;
}

jade_status jade_torchpt_class(const jade_torchpt *pt, const char *path, char *buf, size_t n) {
  int32_t i = lookup(pt, path);
  if (i < 0) return jade_error(JADE_ERR_FORMAT, "%s: %s not found", pt->path, path);
  const pt_node *x = &pt->nodes[i];
  if (x->type != N_OBJECT || pt->nodes[x->u.o.callable].type != N_GLOBAL)
    return jade_error(JADE_ERR_FORMAT, "%s: %s is not an object of a named class", pt->path, path);
  const pt_node *g = &pt->nodes[x->u.o.callable];
  snprintf(buf, n, "%.*s.%.*s", (int)g->u.g.mod_len, g->u.g.mod, (int)g->u.g.name_len, g->u.g.name);
  return JADE_OK;
}
