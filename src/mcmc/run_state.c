/* The checkpoint of a jade mcmc run: OUT.partial/state.bin, written atomically (temporary +
 * rename) by rank 0 with every chain's record:
 *   "JADEMCS1", state_head (n_chains, rec_size, em_size, n_refits, iteration, wall times),
 *   the serialised emulator (em_size bytes, padded to 8), n_chains records of rec_size bytes.
 * A chain record: "JADEMCC1", 6 int64 (chain, iteration, rows, map size, NUTS bytes, columns),
 * doubles (refit window statistics, map-moment weights, fieldpost offset, counters), the
 * serialised NUTS chain (padded to 8), the map's weighted mean and M2 (double), then the
 * post-warm-up rows (NCOL doubles each). A file whose sizes do not match its header is
 * refused (corrupt or truncated), and so is any other format: a changed layout gets new
 * magics, so an old checkpoint is a clear error, never misread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "jade/io.h"
#include "run_internal.h"

#define REC_MAGIC "JADEMCC1"
#define STATE_MAGIC "JADEMCS1"
#define N_REC_I 6
#define N_REC_D (5 + JADE_N_THETA + JADE_N_THETA * JADE_N_THETA + 6)

static size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

size_t mcmc_record_size(size_t nuts_size, const run_t *r, long n_rows) {
  return 8 + 8 * N_REC_I + 8 * N_REC_D + pad8(nuts_size) + 16 * r->nmap + 8 * (size_t)NCOL * n_rows;
}

static size_t record_size(const chain_t *c, const run_t *r) {
  return mcmc_record_size(jade_nuts_chain_serial_size(c->nuts), r, c->n_rows);
}

static jade_status record_write(const chain_t *c, const run_t *r, unsigned char *b, size_t size) {
  if (size != record_size(c, r)) return jade_error(JADE_ERR_INTERNAL, "mcmc: record size mismatch");
  memset(b, 0, size);
  memcpy(b, REC_MAGIC, 8);
  size_t ns = jade_nuts_chain_serial_size(c->nuts);
  int64_t iv[N_REC_I] = {c->id, jade_nuts_chain_iteration(c->nuts), c->n_rows, (int64_t)r->nmap, (int64_t)ns, NCOL};
  memcpy(b + 8, iv, sizeof iv);
  jade_fieldpost_counters k;
  jade_fieldpost_get_counters(c->fp, &k);
  double dv[N_REC_D], *d = dv;
  *d++ = c->wn;
  *d++ = c->mw;
  *d++ = c->lw_ref;
  *d++ = c->have_ref;
  *d++ = jade_fieldpost_offset(c->fp);
  memcpy(d, c->wsum, sizeof c->wsum);
  d += JADE_N_THETA;
  memcpy(d, c->wsq, sizeof c->wsq);
  d += JADE_N_THETA * JADE_N_THETA;
  *d++ = (double)(c->prev.n_eval + k.n_eval);
  *d++ = (double)(c->prev.n_theory + k.n_theory);
  *d++ = (double)(c->prev.n_emulated + k.n_emulated);
  *d++ = (double)(c->prev.n_outside + k.n_outside);
  *d++ = c->prev.t_theory + k.t_theory;
  *d++ = c->prev.t_maps + k.t_maps;
  memcpy(b + 8 + sizeof iv, dv, sizeof dv);
  unsigned char *p = b + 8 + sizeof iv + sizeof dv;
  jade_status st = jade_nuts_chain_serialize(c->nuts, p, ns);
  if (st) return st;
  p += pad8(ns);
  memcpy(p, c->mmean, 8 * r->nmap);
  p += 8 * r->nmap;
  memcpy(p, c->mm2, 8 * r->nmap);
  p += 8 * r->nmap;
  if (c->n_rows) memcpy(p, c->rows, 8 * (size_t)NCOL * c->n_rows);
  return JADE_OK;
}

jade_status mcmc_record_read(chain_t *c, const run_t *r, const unsigned char *b, size_t size) {
  int64_t iv[N_REC_I];
  double dv[N_REC_D];
  if (size < 8 + sizeof iv + sizeof dv || memcmp(b, REC_MAGIC, 8)) return jade_error(JADE_ERR_FORMAT, "mcmc state: bad chain record");
  memcpy(iv, b + 8, sizeof iv);
  memcpy(dv, b + 8 + sizeof iv, sizeof dv);
  if (iv[0] != c->id || iv[3] != (int64_t)r->nmap || iv[5] != NCOL || iv[2] < 0)
    return jade_error(JADE_ERR_FORMAT, "mcmc state: chain record %d does not match this run", c->id);
  /* iv[2] (rows) and iv[4] (NUTS bytes) come from the file: bound them by the record size
   * before any arithmetic so nothing wraps */
  if (iv[4] < 0 || (uint64_t)iv[4] > size || (uint64_t)iv[2] > size / (8 * (size_t)NCOL))
    return jade_error(JADE_ERR_FORMAT, "mcmc state: chain record %d is corrupt", c->id);
  size_t ns = (size_t)iv[4];
  if (size != 8 + sizeof iv + sizeof dv + pad8(ns) + 16 * r->nmap + 8 * (size_t)NCOL * iv[2])
    return jade_error(JADE_ERR_FORMAT, "mcmc state: chain record %d is truncated", c->id);
  const double *d = dv;
  c->wn = *d++;
  c->mw = *d++;
  c->lw_ref = *d++;
  c->have_ref = *d++;
  jade_fieldpost_set_offset(c->fp, *d++);
  memcpy(c->wsum, d, sizeof c->wsum);
  d += JADE_N_THETA;
  memcpy(c->wsq, d, sizeof c->wsq);
  d += JADE_N_THETA * JADE_N_THETA;
  c->prev.n_eval = (uint64_t)*d++;
  c->prev.n_theory = (uint64_t)*d++;
  c->prev.n_emulated = (uint64_t)*d++;
  c->prev.n_outside = (uint64_t)*d++;
  c->prev.t_theory = *d++;
  c->prev.t_maps = *d++;
  const unsigned char *p = b + 8 + sizeof iv + sizeof dv;
  jade_nuts_chain_free(c->nuts);
  c->nuts = NULL;
  jade_status st = jade_nuts_chain_deserialize(&c->nuts, p, ns);
  if (st) return st;
  if (jade_nuts_chain_dim(c->nuts) != r->dim || jade_nuts_chain_iteration(c->nuts) != iv[1])
    return jade_error(JADE_ERR_FORMAT, "mcmc state: chain %d has another dimension", c->id);
  p += pad8(ns);
  memcpy(c->mmean, p, 8 * r->nmap);
  p += 8 * r->nmap;
  memcpy(c->mm2, p, 8 * r->nmap);
  p += 8 * r->nmap;
  c->n_rows = iv[2];
  if (c->n_rows > c->cap_rows) {
    double *nr = realloc(c->rows, 8 * (size_t)NCOL * c->n_rows);
    if (!nr) return jade_error(JADE_ERR_NOMEM, "mcmc: out of memory");
    c->rows = nr;
    c->cap_rows = c->n_rows;
  }
  if (c->n_rows) memcpy(c->rows, p, 8 * (size_t)NCOL * c->n_rows);
  return JADE_OK;
}

/* All chains' records (every rank contributes its own; the sum over ranks of zero-padded
 * 64-bit integers is an exact copy) into buf (n_chains * rec bytes, allocated). */
jade_status mcmc_gather_records(const jade_dist *dist, chain_t *ch, int n_local, const run_t *r, size_t rec,
                                  unsigned char **out) {
  size_t total = rec * (size_t)r->n_chains;
  unsigned char *buf = calloc(total ? total : 1, 1);
  if (!buf) return jade_error(JADE_ERR_NOMEM, "mcmc: out of memory for the chain states");
  jade_status st = JADE_OK;
  for (int i = 0; i < n_local && !st; i++) st = record_write(&ch[i], r, buf + rec * (size_t)ch[i].id, rec);
  if (!st && dist->size > 1) {
    if (sizeof(long) != 8) st = jade_error(JADE_ERR_INTERNAL, "mcmc: needs 64-bit long for MPI state exchange");
    else st = jade_dist_sum_long(dist, (long *)(void *)buf, total / 8);
  }
  if (st) {
    free(buf);
    return st;
  }
  *out = buf;
  return JADE_OK;
}

jade_status mcmc_state_write(const char *path, const state_head *h, const jade_emulator *em, const unsigned char *recs) {
  jade_text_file t;
  jade_status st = jade_text_open(path, &t);
  if (st) return st;
  unsigned char *eb = NULL;
  if (h->em_size) {
    eb = calloc(pad8((size_t)h->em_size), 1);
    if (!eb || (st = jade_emulator_serialize(em, eb, (size_t)h->em_size))) {
      free(eb);
      jade_text_abort(&t);
      return st ? st : jade_error(JADE_ERR_NOMEM, "mcmc: out of memory");
    }
  }
  int ok = fwrite(STATE_MAGIC, 1, 8, t.f) == 8 && fwrite(h, sizeof *h, 1, t.f) == 1 &&
           (!h->em_size || fwrite(eb, 1, pad8((size_t)h->em_size), t.f) == pad8((size_t)h->em_size)) &&
           fwrite(recs, (size_t)h->rec_size, (size_t)h->n_chains, t.f) == (size_t)h->n_chains;
  free(eb);
  if (!ok) {
    jade_text_abort(&t);
    return jade_error(JADE_ERR_IO, "%s: write failed", path);
  }
  return jade_text_commit(&t);
}

jade_status mcmc_state_read(const char *path, state_head *h, jade_emulator **em, unsigned char **recs) {
  *em = NULL;
  *recs = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return jade_error(JADE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  char magic[8];
  jade_status st = JADE_OK;
  if (fread(magic, 1, 8, f) != 8 || memcmp(magic, STATE_MAGIC, 8) || fread(h, sizeof *h, 1, f) != 1 || h->n_chains < 1 ||
      h->rec_size < 8 || h->em_size < 0)
    st = jade_error(JADE_ERR_FORMAT, "%s: not a jade mcmc state file", path);
  /* the header's sizes are untrusted: the file must hold exactly what they declare */
  struct stat sb;
  size_t recs_n = 0;
  if (!st && (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || h->em_size > sb.st_size ||
              jade_size_mul((size_t)h->rec_size, (size_t)h->n_chains, &recs_n) ||
              (uint64_t)sb.st_size != 8 + sizeof *h + pad8((size_t)h->em_size) + (uint64_t)recs_n))
    st = jade_error(JADE_ERR_FORMAT, "%s: corrupt or truncated mcmc state (its header does not match its size)", path);
  if (!st && h->em_size) {
    size_t n = pad8((size_t)h->em_size);
    unsigned char *eb = malloc(n);
    if (!eb || fread(eb, 1, n, f) != n) st = jade_error(JADE_ERR_FORMAT, "%s: truncated", path);
    if (!st) st = jade_emulator_deserialize(em, eb, (size_t)h->em_size);
    free(eb);
  }
  if (!st) {
    size_t n = recs_n;
    *recs = malloc(n);
    if (!*recs || fread(*recs, 1, n, f) != n) st = jade_error(JADE_ERR_FORMAT, "%s: truncated", path);
  }
  fclose(f);
  if (st) {
    jade_emulator_free(*em);
    *em = NULL;
    free(*recs);
    *recs = NULL;
  }
  return st;
}
