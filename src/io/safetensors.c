/* safetensors reader and writer (see include/jade/safetensors.h; format: the README of
 * https://github.com/huggingface/safetensors, section "Format"). The JSON header is produced
 * and parsed here by a small dedicated writer/parser (objects, strings with escapes, arrays of
 * non-negative integers): that is all the format uses. */
#include "jade/safetensors.h"
#include "jade/io.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER_MAX ((uint64_t)100 << 20) /* the reference implementation's limit (100 MB) */

static const char *dtype_name(jade_dtype t) {
  switch (t) {
    case JADE_F32: return "F32";
    case JADE_F64: return "F64";
    case JADE_I64: return "I64";
    case JADE_U8: return "U8";
    case JADE_F16: return "F16";
  }
  return NULL;
}

static int dtype_parse(const char *s, jade_dtype *t) {
  static const struct { const char *n; jade_dtype t; } tab[] = {
      {"F32", JADE_F32}, {"F64", JADE_F64}, {"I64", JADE_I64}, {"U8", JADE_U8}, {"F16", JADE_F16}};
  for (size_t i = 0; i < sizeof tab / sizeof *tab; i++)
    if (!strcmp(s, tab[i].n)) {
      *t = tab[i].t;
      return 1;
    }
  return 0;
}

static int host_little_endian(void) {
  const uint16_t x = 1;
  unsigned char c;
  memcpy(&c, &x, 1);
  return c == 1;
}

/* ---- growing string buffer for the header ------------------------------------------ */
typedef struct {
  char *s;
  size_t n, cap;
  int failed;
} sbuf;

static void sb_put(sbuf *b, const char *p, size_t n) {
  if (b->failed) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->n + n + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
      b->failed = 1;
      return;
    }
    b->s = s;
    b->cap = cap;
  }
  memcpy(b->s + b->n, p, n);
  b->n += n;
  b->s[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_fmt(sbuf *b, const char *fmt, unsigned long long v) {
  char tmp[64];
  int k = snprintf(tmp, sizeof tmp, fmt, v);
  sb_put(b, tmp, (size_t)k);
}
/* JSON string literal (RFC 8259 section 7): escape quote, backslash and control characters. */
static void sb_json_string(sbuf *b, const char *s) {
  sb_put(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char e[8];
    switch (*p) {
      case '"': sb_put(b, "\\\"", 2); break;
      case '\\': sb_put(b, "\\\\", 2); break;
      case '\n': sb_put(b, "\\n", 2); break;
      case '\t': sb_put(b, "\\t", 2); break;
      case '\r': sb_put(b, "\\r", 2); break;
      default:
        if (*p < 0x20) {
          snprintf(e, sizeof e, "\\u%04x", *p);
          sb_put(b, e, 6);
        } else {
          sb_put(b, (const char *)p, 1);
        }
    }
  }
  sb_put(b, "\"", 1);
}

jade_status jade_safetensors_write(const char *path, const jade_st_tensor *tensors, int n_tensors,
                                   const jade_st_meta *meta, int n_meta) {
  if (!path || !path[0]) return jade_error(JADE_ERR_INVALID, "safetensors: empty output path");
  if (!host_little_endian()) return jade_error(JADE_ERR_INTERNAL, "%s: big-endian hosts are not supported", path);
  if (n_tensors < 0 || n_meta < 0 || (n_tensors && !tensors) || (n_meta && !meta))
    return jade_error(JADE_ERR_INVALID, "%s: bad tensor or metadata list", path);
  /* Validate names and sizes first: nothing is created on bad input. */
  for (int i = 0; i < n_tensors; i++) {
    const jade_st_tensor *t = &tensors[i];
    if (!t->name || !t->name[0] || strlen(t->name) >= JADE_ST_NAME_MAX || !strcmp(t->name, "__metadata__"))
      return jade_error(JADE_ERR_INVALID, "%s: invalid tensor name '%s'", path, t->name ? t->name : "(null)");
    if (!dtype_name(t->dtype)) return jade_error(JADE_ERR_INVALID, "%s: tensor '%s': unsupported dtype", path, t->name);
    if (t->ndim < 0 || t->ndim > JADE_ST_MAX_DIM)
      return jade_error(JADE_ERR_INVALID, "%s: tensor '%s': %d dimensions", path, t->name, t->ndim);
    for (int j = 0; j < i; j++)
      if (!strcmp(tensors[j].name, t->name))
        return jade_error(JADE_ERR_INVALID, "%s: tensor '%s' given twice", path, t->name);
  }
  for (int i = 0; i < n_meta; i++) {
    if (!meta[i].key || !meta[i].value) return jade_error(JADE_ERR_INVALID, "%s: NULL metadata entry %d", path, i);
    for (int j = 0; j < i; j++)
      if (!strcmp(meta[j].key, meta[i].key))
        return jade_error(JADE_ERR_INVALID, "%s: metadata key '%s' given twice", path, meta[i].key);
  }
  sbuf h = {0};
  sb_str(&h, "{");
  if (n_meta) {
    sb_str(&h, "\"__metadata__\":{");
    for (int i = 0; i < n_meta; i++) {
      if (i) sb_str(&h, ",");
      sb_json_string(&h, meta[i].key);
      sb_str(&h, ":");
      sb_json_string(&h, meta[i].value);
    }
    sb_str(&h, "}");
  }
  uint64_t off = 0;
  for (int i = 0; i < n_tensors; i++) {
    const jade_st_tensor *t = &tensors[i];
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) numel *= t->shape[d];
    uint64_t bytes = numel * jade_dtype_size(t->dtype);
    if (bytes && !t->data) {
      free(h.s);
      return jade_error(JADE_ERR_INVALID, "%s: tensor '%s' has no data", path, t->name);
    }
    if (n_meta || i) sb_str(&h, ",");
    sb_json_string(&h, t->name);
    sb_str(&h, ":{\"dtype\":\"");
    sb_str(&h, dtype_name(t->dtype));
    sb_str(&h, "\",\"shape\":[");
    for (int d = 0; d < t->ndim; d++) sb_fmt(&h, d ? ",%llu" : "%llu", (unsigned long long)t->shape[d]);
    sb_fmt(&h, "],\"data_offsets\":[%llu,", (unsigned long long)off);
    off += bytes;
    sb_fmt(&h, "%llu]}", (unsigned long long)off);
  }
  sb_str(&h, "}");
  /* pad with spaces so that the byte buffer starts 8-byte aligned */
  while (!h.failed && (8 + h.n) % 8) sb_str(&h, " ");
  if (h.failed) {
    free(h.s);
    return jade_error(JADE_ERR_NOMEM, "%s: out of memory building the header", path);
  }
  jade_text_file f;
  jade_status st = jade_text_open(path, &f);
  if (st) {
    free(h.s);
    return st;
  }
  unsigned char len8[8];
  uint64_t hl = h.n;
  for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hl >> (8 * i));
  int ok = fwrite(len8, 1, 8, f.f) == 8 && fwrite(h.s, 1, h.n, f.f) == h.n;
  for (int i = 0; ok && i < n_tensors; i++) {
    const jade_st_tensor *t = &tensors[i];
    size_t numel = 1;
    for (int d = 0; d < t->ndim; d++) numel *= t->shape[d];
    ok = numel == 0 || fwrite(t->data, jade_dtype_size(t->dtype), numel, f.f) == numel;
  }
  free(h.s);
  if (!ok) {
    int e = errno;
    jade_text_abort(&f);
    return jade_error(JADE_ERR_IO, "%s: write failed: %s", path, strerror(e));
  }
  return jade_text_commit(&f);
}

/* ---- reader -------------------------------------------------------------------------- */
struct jade_safetensors {
  char path[4096];
  void *map;
  size_t map_len;
  jade_st_tensor *t;
  int n_t;
  char **mkeys, **mvals;
  int n_meta;
};

typedef struct {
  const char *p, *end;
  const char *path;
  jade_status st;
} parser;

static jade_status perr(parser *ps, const char *what) {
  if (ps->st) return ps->st;
  ps->st = jade_error(JADE_ERR_FORMAT, "%s: corrupt safetensors header: %s", ps->path, what);
  return ps->st;
}

static void skip_ws(parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t')) ps->p++;
}

static int expect(parser *ps, char c) {
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == c) {
    ps->p++;
    return 1;
  }
  return 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void put_utf8(sbuf *b, uint32_t cp) {
  char o[4];
  if (cp < 0x80) {
    o[0] = (char)cp;
    sb_put(b, o, 1);
  } else if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    sb_put(b, o, 2);
  } else if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    sb_put(b, o, 3);
  } else {
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    sb_put(b, o, 4);
  }
}

static int read_hex4(parser *ps, uint32_t *v) {
  if (ps->end - ps->p < 4) return 0;
  *v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(ps->p[i]);
    if (h < 0) return 0;
    *v = *v * 16 + (uint32_t)h;
  }
  ps->p += 4;
  return 1;
}

/* A JSON string; returns a malloc'd UTF-8 copy (no embedded NUL allowed) or NULL. */
static char *parse_string(parser *ps) {
  if (!expect(ps, '"')) {
    perr(ps, "expected a string");
    return NULL;
  }
  sbuf b = {0};
  sb_put(&b, "", 0);
  while (ps->p < ps->end && *ps->p != '"') {
    unsigned char c = (unsigned char)*ps->p++;
    if (c < 0x20) {
      free(b.s);
      perr(ps, "control character inside a string");
      return NULL;
    }
    if (c != '\\') {
      sb_put(&b, (const char *)&c, 1);
      continue;
    }
    if (ps->p >= ps->end) break;
    char e = *ps->p++;
    uint32_t cp;
    switch (e) {
      case '"': sb_put(&b, "\"", 1); break;
      case '\\': sb_put(&b, "\\", 1); break;
      case '/': sb_put(&b, "/", 1); break;
      case 'b': sb_put(&b, "\b", 1); break;
      case 'f': sb_put(&b, "\f", 1); break;
      case 'n': sb_put(&b, "\n", 1); break;
      case 'r': sb_put(&b, "\r", 1); break;
      case 't': sb_put(&b, "\t", 1); break;
      case 'u':
        if (!read_hex4(ps, &cp)) goto bad_escape;
        if (cp >= 0xD800 && cp < 0xDC00) { /* surrogate pair */
          uint32_t lo;
          if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') goto bad_escape;
          ps->p += 2;
          if (!read_hex4(ps, &lo) || lo < 0xDC00 || lo >= 0xE000) goto bad_escape;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp < 0xE000) {
          goto bad_escape;
        }
        if (cp == 0) goto bad_escape;
        put_utf8(&b, cp);
        break;
      default:
        goto bad_escape;
    }
  }
  if (ps->p >= ps->end) {
    free(b.s);
    perr(ps, "unterminated string");
    return NULL;
  }
  ps->p++; /* closing quote */
  if (b.failed) {
    free(b.s);
    ps->st = jade_error(JADE_ERR_NOMEM, "%s: out of memory reading the header", ps->path);
    return NULL;
  }
  return b.s;
bad_escape:
  free(b.s);
  perr(ps, "invalid escape in a string");
  return NULL;
}

static int parse_uint(parser *ps, uint64_t *v) {
  skip_ws(ps);
  if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return 0;
  if (*ps->p == '0' && ps->p + 1 < ps->end && ps->p[1] >= '0' && ps->p[1] <= '9') return 0;
  uint64_t x = 0;
  while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
    uint64_t d = (uint64_t)(*ps->p - '0');
    if (x > (UINT64_MAX - d) / 10) return 0;
    x = x * 10 + d;
    ps->p++;
  }
  *v = x;
  return 1;
}

/* Array of non-negative integers, at most max entries. */
static int parse_uint_array(parser *ps, uint64_t *out, int max, int *n) {
  *n = 0;
  if (!expect(ps, '[')) return 0;
  if (expect(ps, ']')) return 1;
  for (;;) {
    if (*n >= max) return 0;
    if (!parse_uint(ps, &out[*n])) return 0;
    (*n)++;
    if (expect(ps, ']')) return 1;
    if (!expect(ps, ',')) return 0;
  }
}

typedef struct {
  uint64_t begin, end;
  int index;
} span;

static int span_cmp(const void *a, const void *b) {
  const span *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

static jade_status parse_metadata(parser *ps, jade_safetensors *st) {
  if (!expect(ps, '{')) return perr(ps, "__metadata__ is not an object");
  if (expect(ps, '}')) return JADE_OK;
  for (;;) {
    char *k = parse_string(ps);
    if (!k) return ps->st;
    if (!expect(ps, ':')) {
      free(k);
      return perr(ps, "expected ':' in __metadata__");
    }
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != '"') {
      free(k);
      return perr(ps, "__metadata__ values must be strings");
    }
    char *v = parse_string(ps);
    if (!v) {
      free(k);
      return ps->st;
    }
    for (int i = 0; i < st->n_meta; i++)
      if (!strcmp(st->mkeys[i], k)) {
        ps->st = jade_error(JADE_ERR_FORMAT, "%s: corrupt safetensors header: metadata key '%s' appears twice", ps->path, k);
        free(k);
        free(v);
        return ps->st;
      }
    char **nk = realloc(st->mkeys, (size_t)(st->n_meta + 1) * sizeof *nk);
    if (nk) st->mkeys = nk;
    char **nv = nk ? realloc(st->mvals, (size_t)(st->n_meta + 1) * sizeof *nv) : NULL;
    if (nv) st->mvals = nv;
    if (!nk || !nv) {
      free(k);
      free(v);
      return ps->st = jade_error(JADE_ERR_NOMEM, "%s: out of memory", ps->path);
    }
    st->mkeys[st->n_meta] = k;
    st->mvals[st->n_meta] = v;
    st->n_meta++;
    if (expect(ps, '}')) return JADE_OK;
    if (!expect(ps, ',')) return perr(ps, "expected ',' or '}' in __metadata__");
  }
}

static jade_status parse_tensor(parser *ps, jade_safetensors *st, char *name, uint64_t *offsets) {
  jade_st_tensor t;
  memset(&t, 0, sizeof t);
  int have_dtype = 0, have_shape = 0, have_off = 0;
  char msg[512];
  if (!expect(ps, '{')) {
    snprintf(msg, sizeof msg, "tensor '%.200s' is not an object", name);
    goto fail;
  }
  if (expect(ps, '}')) {
    snprintf(msg, sizeof msg, "tensor '%.200s' has no fields", name);
    goto fail;
  }
  for (;;) {
    char *k = parse_string(ps);
    if (!k) goto fail_quiet;
    if (!expect(ps, ':')) {
      free(k);
      snprintf(msg, sizeof msg, "expected ':' in tensor '%.200s'", name);
      goto fail;
    }
    if (!strcmp(k, "dtype") && !have_dtype) {
      char *d = parse_string(ps);
      if (!d) {
        free(k);
        goto fail_quiet;
      }
      int ok = dtype_parse(d, &t.dtype);
      if (!ok) {
        snprintf(msg, sizeof msg, "tensor '%.200s' has unsupported dtype '%.20s' (jade reads F32, F16, F64, I64, U8)", name, d);
        free(d);
        free(k);
        ps->st = jade_error(JADE_ERR_FORMAT, "%s: %s", ps->path, msg);
        goto fail_quiet;
      }
      free(d);
      have_dtype = 1;
    } else if (!strcmp(k, "shape") && !have_shape) {
      uint64_t sh[JADE_ST_MAX_DIM];
      int n;
      if (!parse_uint_array(ps, sh, JADE_ST_MAX_DIM, &n)) {
        free(k);
        snprintf(msg, sizeof msg, "tensor '%.200s': bad shape (non-negative integers, at most %d)", name, JADE_ST_MAX_DIM);
        goto fail;
      }
      t.ndim = n;
      for (int i = 0; i < n; i++) t.shape[i] = (size_t)sh[i];
      have_shape = 1;
    } else if (!strcmp(k, "data_offsets") && !have_off) {
      int n;
      if (!parse_uint_array(ps, offsets, 2, &n) || n != 2 || offsets[1] < offsets[0]) {
        free(k);
        snprintf(msg, sizeof msg, "tensor '%.200s': bad data_offsets", name);
        goto fail;
      }
      have_off = 1;
    } else {
      snprintf(msg, sizeof msg, "tensor '%.200s': unexpected or repeated field '%.40s'", name, k);
      free(k);
      goto fail;
    }
    free(k);
    if (expect(ps, '}')) break;
    if (!expect(ps, ',')) {
      snprintf(msg, sizeof msg, "expected ',' or '}' in tensor '%.200s'", name);
      goto fail;
    }
  }
  if (!have_dtype || !have_shape || !have_off) {
    snprintf(msg, sizeof msg, "tensor '%.200s' lacks %s", name, !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
    goto fail;
  }
  /* numel * size must equal the byte range (with overflow checks) */
  uint64_t numel = 1;
  for (int i = 0; i < t.ndim; i++) {
    if (t.shape[i] && numel > UINT64_MAX / t.shape[i]) {
      snprintf(msg, sizeof msg, "tensor '%.200s': shape overflows", name);
      goto fail;
    }
    numel *= t.shape[i];
  }
  uint64_t es = jade_dtype_size(t.dtype);
  if (numel > UINT64_MAX / es || numel * es != offsets[1] - offsets[0]) {
    snprintf(msg, sizeof msg, "tensor '%.200s': shape and dtype give %llu bytes but data_offsets span %llu",
             name, (unsigned long long)(numel > UINT64_MAX / es ? 0 : numel * es),
             (unsigned long long)(offsets[1] - offsets[0]));
    goto fail;
  }
  for (int i = 0; i < st->n_t; i++)
    if (!strcmp(st->t[i].name, name)) {
      snprintf(msg, sizeof msg, "tensor '%.200s' appears twice", name);
      goto fail;
    }
  jade_st_tensor *nt = realloc(st->t, (size_t)(st->n_t + 1) * sizeof *nt);
  if (!nt) {
    free(name);
    return ps->st = jade_error(JADE_ERR_NOMEM, "%s: out of memory", ps->path);
  }
  st->t = nt;
  t.name = name;
  st->t[st->n_t++] = t;
  return JADE_OK;
fail:
  perr(ps, msg);
fail_quiet:
  free(name);
  return ps->st ? ps->st : perr(ps, "malformed tensor entry");
}

void jade_safetensors_free(jade_safetensors *st) {
  if (!st) return;
  if (st->map) munmap(st->map, st->map_len);
  for (int i = 0; i < st->n_t; i++) free((char *)st->t[i].name);
  free(st->t);
  for (int i = 0; i < st->n_meta; i++) {
    free(st->mkeys[i]);
    free(st->mvals[i]);
  }
  free(st->mkeys);
  free(st->mvals);
  free(st);
}

/* mmap the whole file read-only (at least the 8-byte header length and "{}"). */
static jade_status map_file(const char *path, void **map, size_t *size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return jade_error(JADE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return jade_error(JADE_ERR_IO, "%s: not a regular file", path);
  }
  *size = (size_t)sb.st_size;
  if (*size < 8 + 2) {
    close(fd);
    return jade_error(JADE_ERR_FORMAT, "%s: not a safetensors file (%zu bytes: too short)", path, *size);
  }
  *map = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (*map == MAP_FAILED) return jade_error(JADE_ERR_IO, "%s: cannot map: %s", path, strerror(e));
  return JADE_OK;
}

/* The header's entries after its '{': __metadata__ and the tensors, whose byte ranges go to
 * *offs (grown as needed; the caller frees it). Errors are left in ps->st. */
static void parse_header_entries(parser *ps, jade_safetensors *st, uint64_t (**offs)[2]) {
  int cap_offs = 0, have_meta = 0;
  if (expect(ps, '}')) return;
  for (;;) {
    char *k = parse_string(ps);
    if (!k) break;
    if (!expect(ps, ':')) {
      free(k);
      perr(ps, "expected ':'");
      break;
    }
    if (!strcmp(k, "__metadata__")) {
      free(k);
      if (have_meta) {
        perr(ps, "__metadata__ appears twice");
        break;
      }
      have_meta = 1;
      if (parse_metadata(ps, st)) break;
    } else {
      if (st->n_t >= cap_offs) {
        cap_offs = cap_offs ? 2 * cap_offs : 64;
        void *no = realloc(*offs, (size_t)cap_offs * sizeof **offs);
        if (!no) {
          free(k);
          ps->st = jade_error(JADE_ERR_NOMEM, "%s: out of memory", ps->path);
          break;
        }
        *offs = no;
      }
      if (parse_tensor(ps, st, k, (*offs)[st->n_t])) break;
    }
    if (expect(ps, '}')) break;
    if (!expect(ps, ',')) {
      perr(ps, "expected ',' or '}'");
      break;
    }
  }
}

/* The tensors' byte ranges must cover the data_len bytes after the header exactly, without
 * holes or overlaps; then each tensor's data pointer is set into data. */
static jade_status check_data_coverage(jade_safetensors *st, const uint64_t (*offs)[2], const unsigned char *data,
                                       uint64_t data_len) {
  const char *path = st->path;
  jade_status s = JADE_OK;
  span *sp = malloc(((size_t)st->n_t + 1) * sizeof *sp);
  if (!sp) return jade_error(JADE_ERR_NOMEM, "%s: out of memory", path);
  for (int i = 0; i < st->n_t; i++) sp[i] = (span){offs[i][0], offs[i][1], i};
  qsort(sp, (size_t)st->n_t, sizeof *sp, span_cmp);
  uint64_t pos = 0;
  for (int i = 0; !s && i < st->n_t; i++) {
    if (sp[i].begin != pos)
      s = jade_error(JADE_ERR_FORMAT, "%s: corrupt safetensors: tensor '%s' starts at byte %llu, expected %llu (%s)", path,
                     st->t[sp[i].index].name, (unsigned long long)sp[i].begin, (unsigned long long)pos,
                     sp[i].begin > pos ? "hole" : "overlap");
    pos = sp[i].end;
  }
  if (!s && pos != data_len)
    s = jade_error(JADE_ERR_FORMAT, "%s: %s: tensors cover %llu bytes but the file holds %llu after the header", path,
                   pos > data_len ? "truncated safetensors file" : "corrupt safetensors file", (unsigned long long)pos,
                   (unsigned long long)data_len);
  for (int i = 0; !s && i < st->n_t; i++) st->t[i].data = data + offs[i][0];
  free(sp);
  return s;
}

jade_status jade_safetensors_read(const char *path, jade_safetensors **out) {
  *out = NULL;
  if (!path || !path[0]) return jade_error(JADE_ERR_INVALID, "safetensors: empty path");
  if (!host_little_endian()) return jade_error(JADE_ERR_INTERNAL, "%s: big-endian hosts are not supported", path);
  jade_safetensors *st = calloc(1, sizeof *st);
  if (!st) return jade_error(JADE_ERR_NOMEM, "%s: out of memory", path);
  snprintf(st->path, sizeof st->path, "%s", path);
  void *map = NULL;
  size_t size = 0;
  jade_status ms = map_file(path, &map, &size);
  if (ms) {
    free(st);
    return ms;
  }
  st->map = map;
  st->map_len = size;
  const unsigned char *b = map;
  uint64_t hl = 0;
  for (int i = 0; i < 8; i++) hl |= (uint64_t)b[i] << (8 * i);
  jade_status s = JADE_OK;
  if (hl < 2 || hl > HEADER_MAX || hl > size - 8) {
    s = jade_error(JADE_ERR_FORMAT, "%s: not a safetensors file or truncated (header length %llu, file %zu bytes)",
                   path, (unsigned long long)hl, size);
    goto done;
  }
  parser ps = {(const char *)b + 8, (const char *)b + 8 + hl, path, JADE_OK};
  if (*ps.p != '{') {
    s = jade_error(JADE_ERR_FORMAT, "%s: not a safetensors file (header does not start with '{')", path);
    goto done;
  }
  uint64_t (*offs)[2] = NULL;
  ps.p++;
  parse_header_entries(&ps, st, &offs);
  if (!ps.st) {
    skip_ws(&ps);
    if (ps.p != ps.end) perr(&ps, "trailing bytes after the JSON object");
  }
  s = ps.st;
  if (!s) s = check_data_coverage(st, (const uint64_t(*)[2])offs, b + 8 + hl, size - 8 - hl);
  free(offs);
done:
  if (s) {
    jade_safetensors_free(st);
    return s;
  }
  *out = st;
  return JADE_OK;
}

const char *jade_safetensors_path(const jade_safetensors *st) { return st->path; }
int jade_safetensors_count(const jade_safetensors *st) { return st->n_t; }

const jade_st_tensor *jade_safetensors_tensor(const jade_safetensors *st, int i) {
  return i >= 0 && i < st->n_t ? &st->t[i] : NULL;
}

const jade_st_tensor *jade_safetensors_find(const jade_safetensors *st, const char *name) {
  for (int i = 0; i < st->n_t; i++)
    if (!strcmp(st->t[i].name, name)) return &st->t[i];
  return NULL;
}

static void shape_str(char *out, size_t n, int ndim, const size_t *shape) {
  size_t pos = (size_t)snprintf(out, n, "(");
  for (int i = 0; i < ndim && pos < n; i++) pos += (size_t)snprintf(out + pos, n - pos, "%s%zu", i ? ", " : "", shape[i]);
  if (pos < n) snprintf(out + pos, n - pos, "%s)", ndim == 1 ? "," : "");
}

jade_status jade_safetensors_copy_f32(const jade_safetensors *st, const char *name, int ndim,
                                      const size_t *shape, float *dst) {
  const jade_st_tensor *t = jade_safetensors_find(st, name);
  if (!t) return jade_error(JADE_ERR_FORMAT, "%s: tensor '%s' missing", st->path, name);
  if (t->dtype != JADE_F32 && t->dtype != JADE_F16)
    return jade_error(JADE_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected F32 or F16", st->path, name, dtype_name(t->dtype));
  int same = t->ndim == ndim;
  for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
  if (!same) {
    char a[200], b[200];
    shape_str(a, sizeof a, t->ndim, t->shape);
    shape_str(b, sizeof b, ndim, shape);
    return jade_error(JADE_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s", st->path, name, a, b);
  }
  size_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  if (t->dtype == JADE_F32) {
    memcpy(dst, t->data, n * sizeof(float));
  } else { /* IEEE half (the file may not align it: copy element by element) */
    const unsigned char *src = t->data;
    for (size_t i = 0; i < n; i++) {
      uint16_t h;
      memcpy(&h, src + 2 * i, 2);
      dst[i] = jade_f16_to_f32(h);
    }
  }
  for (size_t i = 0; i < n; i++)
    if (!isfinite(dst[i]))
      return jade_error(JADE_ERR_NUMERIC, "%s: tensor '%s' holds a non-finite value at element %zu", st->path, name, i);
  return JADE_OK;
}

int jade_safetensors_meta_count(const jade_safetensors *st) { return st->n_meta; }

const char *jade_safetensors_meta(const jade_safetensors *st, const char *key) {
  for (int i = 0; i < st->n_meta; i++)
    if (!strcmp(st->mkeys[i], key)) return st->mvals[i];
  return NULL;
}

jade_status jade_safetensors_meta_get(const jade_safetensors *st, const char *key, const char **out) {
  const char *v = jade_safetensors_meta(st, key);
  if (!v) return jade_error(JADE_ERR_FORMAT, "%s: metadata key '%s' missing", st->path, key);
  *out = v;
  return JADE_OK;
}

void jade_safetensors_meta_at(const jade_safetensors *st, int i, const char **key, const char **value) {
  *key = (i >= 0 && i < st->n_meta) ? st->mkeys[i] : NULL;
  *value = (i >= 0 && i < st->n_meta) ? st->mvals[i] : NULL;
}
