/* jade mcmc: the traditional baseline (spec mcmc.md): field-level NUTS on the explicit
 * log-normal model for one observation, and its comparison with diffusion samples.
 *
 * Target: include/jade/fieldpost.h (white noise z and the free parameters, non-centred,
 * Gaussian pixel noise sigma_i of the observation on the convergence). Sampler: jade's NUTS
 * (include/jade/mcmc.h), chains in parallel over OpenMP threads and MPI ranks (chain c on rank
 * c % size), each chain's randomness keyed by its global index only, so the draws depend on
 * neither the thread nor the rank count.
 *
 * Theory modes (--theory): emulator (default; warm-up refits a polynomial emulator of
 * ln C_ell, ln lambda around the chains, then it is frozen; every post-warm-up draw gets the
 * importance weight exp(log p_exact - log p_emulated), computed with the exact cosmology),
 * hybrid (exact density, emulator gradient: exact NUTS, ~8 ms per leapfrog step) or exact
 * (finite-difference cosmology Jacobian: for small checks only).
 *
 * DIR/ (written into DIR.partial/, renamed when complete; rerunning resumes from the last
 * checkpoint, bit-identically):
 *   theta.txt        post-warm-up draws: chain weight log_post Omega_c Omega_b sigma_8 h n_s
 *                    w_0 Omega_m S_8 (first line '# ' + names; np.loadtxt / getdist ready)
 *   mean.fits        posterior mean of the noise-free convergence (weighted), [bin][y][x]
 *   std.fits         posterior standard deviation of the convergence
 *   diagnostics.txt  per parameter mean, sd, R-hat, bulk/tail ESS; divergences, tree depths,
 *                    step sizes, gradient evaluations, wall time per effective sample of S_8
 *   compare.txt      with --compare SAMPLE_DIR: NUTS vs diffusion samples
 *   config.ini       the effective configuration */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "jade/dist.h"
#include "jade/fieldpost.h"
#include "jade/io.h"
#include "jade/mcmc.h"
#include "jade/observation.h"
#include "jade/sim.h"

/* columns of a stored post-warm-up row */
enum { C_TH = 0, C_OM = 6, C_S8 = 7, C_LP = 8, C_LW = 9, C_ACC = 10, C_STEP = 11, C_DEPTH = 12, C_NLF = 13,
       C_DIV = 14, C_ENERGY = 15, NCOL = 16 };
#define N_OUT_PAR 8 /* six parameters, Omega_m, S_8 */
static const char *const out_names[N_OUT_PAR] = {"Omega_c", "Omega_b", "sigma_8", "h", "n_s", "w_0", "Omega_m", "S_8"};

typedef struct {
  int id;                   /* global chain index */
  jade_nuts_chain *nuts;
  jade_fieldpost *fp;
  double wn, wsum[JADE_N_THETA], wsq[JADE_N_THETA * JADE_N_THETA]; /* refit window statistics */
  double mw, lw_ref, have_ref;                                     /* weighted Welford of the map */
  double *mmean, *mm2;
  double *rows;
  long n_rows, cap_rows;
  jade_fieldpost_counters prev; /* counters of earlier runs (restored) */
} chain_t;

typedef struct {
  int n_chains, n_free, free_idx[JADE_N_THETA];
  long warmup, samples;
  size_t dim, nmap;
  jade_fp_mode mode;
} run_t;

/* Command-line value if given, else the config's [mcmc] key if present, else the default. */
static jade_status opt_value(jade_option *opts, jade_config *cfg, const char *name, const char *key,
                             const char **out) {
  jade_option *o = jade_cli_opt(opts, name);
  *out = o->value;
  if (!cfg || !jade_config_has(cfg, key)) return JADE_OK;
  const char *cv;
  jade_status st = jade_config_get_string(cfg, key, &cv); /* (also marks the key as used) */
  if (!st && !o->seen) *out = cv;
  return st;
}

static jade_status parse_long(const char *what, const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = s ? strtol(s, &end, 10) : 0;
  if (!s || end == s || *end || errno) return jade_error(JADE_ERR_INVALID, "%s: '%s' is not an integer", what, s ? s : "");
  if (v < lo || v > hi) return jade_error(JADE_ERR_INVALID, "%s: %ld is out of range [%ld, %ld]", what, v, lo, hi);
  *out = v;
  return JADE_OK;
}

static jade_status parse_double(const char *what, const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = s ? strtod(s, &end) : 0;
  if (!s || end == s || *end || errno || !isfinite(v)) return jade_error(JADE_ERR_INVALID, "%s: '%s' is not a number", what, s ? s : "");
  if (v < lo || v > hi) return jade_error(JADE_ERR_INVALID, "%s: %g is out of range [%g, %g]", what, v, lo, hi);
  *out = v;
  return JADE_OK;
}

/* "Omega_c,sigma_8" (commas or spaces) -> increasing indices */
static jade_status parse_free(const char *s, int *n_free, int *idx) {
  int mark[JADE_N_THETA] = {0};
  char buf[512];
  snprintf(buf, sizeof buf, "%s", s ? s : "");
  int n = 0;
  for (char *tok = strtok(buf, ", \t"); tok; tok = strtok(NULL, ", \t")) {
    int found = -1;
    for (int i = 0; i < JADE_N_THETA; i++)
      if (!strcmp(tok, jade_theta_names[i])) found = i;
    if (found < 0)
      return jade_error(JADE_ERR_INVALID, "--free: unknown parameter '%s' (known: Omega_c Omega_b sigma_8 h n_s w_0)", tok);
    if (mark[found]) return jade_error(JADE_ERR_INVALID, "--free: '%s' listed twice", tok);
    mark[found] = 1;
    n++;
  }
  if (!n) return jade_error(JADE_ERR_INVALID, "--free: no parameter given");
  *n_free = 0;
  for (int i = 0; i < JADE_N_THETA; i++)
    if (mark[i]) idx[(*n_free)++] = i;
  return JADE_OK;
}

/* ------------------------------------------------------------------ chain records ---- */
#define REC_MAGIC "JADEMCC1"
#define STATE_MAGIC "JADEMCS1"
#define N_REC_I 6
#define N_REC_D (5 + JADE_N_THETA + JADE_N_THETA * JADE_N_THETA + 6)

static size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

static size_t record_size_n(size_t nuts_size, const run_t *r, long n_rows) {
  return 8 + 8 * N_REC_I + 8 * N_REC_D + pad8(nuts_size) + 16 * r->nmap + 8 * (size_t)NCOL * n_rows;
}

static size_t record_size(const chain_t *c, const run_t *r) {
  return record_size_n(jade_nuts_chain_serial_size(c->nuts), r, c->n_rows);
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

/* Restore chain c (fieldpost already created) from a record. */
static jade_status record_read(chain_t *c, const run_t *r, const unsigned char *b, size_t size) {
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
static jade_status gather_records(const jade_dist *dist, chain_t *ch, int n_local, const run_t *r, size_t rec,
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

typedef struct {
  int64_t n_chains, rec_size, em_size, n_refits, iter;
  double wall, wall_sampling;
} state_head;

static jade_status state_write(const char *path, const state_head *h, const jade_emulator *em, const unsigned char *recs) {
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

static jade_status state_read(const char *path, state_head *h, jade_emulator **em, unsigned char **recs) {
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

/* ------------------------------------------------------------------ statistics ------- */

/* Append a post-warm-up row; weighted Welford (West 1979, CACM 22:532) of the map. */
static jade_status chain_add_draw(chain_t *c, const run_t *r, const double *theta, double lp, double lw,
                                  const jade_nuts_stats *s, const float *kappa) {
  if (c->n_rows == c->cap_rows) {
    long cap = c->cap_rows ? 2 * c->cap_rows : 256;
    double *nr = realloc(c->rows, 8 * (size_t)NCOL * cap);
    if (!nr) return jade_error(JADE_ERR_NOMEM, "mcmc: out of memory for the draws");
    c->rows = nr;
    c->cap_rows = cap;
  }
  double *row = c->rows + (size_t)NCOL * c->n_rows++;
  for (int i = 0; i < JADE_N_THETA; i++) row[C_TH + i] = theta[i];
  row[C_OM] = jade_theta_omega_m(theta);
  row[C_S8] = jade_theta_s8(theta);
  row[C_LP] = lp;
  row[C_LW] = lw;
  row[C_ACC] = s->accept_stat;
  row[C_STEP] = s->step_size;
  row[C_DEPTH] = s->tree_depth;
  row[C_NLF] = s->n_leapfrog;
  row[C_DIV] = s->divergent;
  row[C_ENERGY] = s->energy;
  if (!c->have_ref && isfinite(lw)) {
    c->lw_ref = lw;
    c->have_ref = 1;
  }
  double w = exp(lw - c->lw_ref);
  if (!(w > 0.0) || !isfinite(w)) return JADE_OK; /* zero weight (or overflow): not in the map moments */
  double wn = c->mw + w, f = w / wn;
  for (size_t m = 0; m < r->nmap; m++) {
    double x = kappa[m], d = x - c->mmean[m];
    c->mmean[m] += f * d;
    c->mm2[m] += w * d * (x - c->mmean[m]);
  }
  c->mw = wn;
  return JADE_OK;
}

/* Weighted mean and sd (population) of column col over all chains' rows with weights w. */
static void weighted_moments(const double *rows, long n, const double *w, int col, double *mean, double *sd) {
  double sw = 0.0, s = 0.0;
  for (long i = 0; i < n; i++) {
    sw += w[i];
    s += w[i] * rows[(size_t)i * NCOL + col];
  }
  double mu = s / sw, v = 0.0;
  int constant = 1;
  for (long i = 0; i < n; i++) {
    double d = rows[(size_t)i * NCOL + col] - mu;
    v += w[i] * d * d;
    constant &= rows[(size_t)i * NCOL + col] == rows[col];
  }
  *mean = constant ? rows[col] : mu;
  *sd = constant ? 0.0 : sqrt(v / sw);
}

/* ------------------------------------------------------------------ compare ---------- */

typedef struct {
  long n;
  double mean[N_OUT_PAR], sd[N_OUT_PAR];
} par_summary;

/* Read a theta.txt ('#' + column names first; rows of numbers) and summarise the eight
 * parameters (Omega_m, S_8 computed when absent; a 'weight' column is used if present). */
static jade_status summarize_table(const char *path, par_summary *out) {
  FILE *f = fopen(path, "r");
  if (!f) return jade_error(JADE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  char line[8192];
  int col[N_OUT_PAR], wcol = -1, ncols = 0, have_header = 0;
  for (int i = 0; i < N_OUT_PAR; i++) col[i] = -1;
  double *vals = NULL, *wts = NULL;
  long n = 0, cap = 0;
  jade_status st = JADE_OK;
  long lineno = 0;
  while (fgets(line, sizeof line, f) && !st) {
    lineno++;
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '#') {
      if (have_header) continue;
      /* column names */
      char tmp[8192];
      snprintf(tmp, sizeof tmp, "%s", p + 1);
      int k = 0;
      int c2[N_OUT_PAR], w2 = -1;
      for (int i = 0; i < N_OUT_PAR; i++) c2[i] = -1;
      for (char *tok = strtok(tmp, " \t\r\n,"); tok; tok = strtok(NULL, " \t\r\n,"), k++) {
        for (int i = 0; i < N_OUT_PAR; i++)
          if (!strcmp(tok, out_names[i])) c2[i] = k;
        if (!strcmp(tok, "weight")) w2 = k;
      }
      int found = 1;
      for (int i = 0; i < JADE_N_THETA; i++) found &= c2[i] >= 0;
      if (found) {
        memcpy(col, c2, sizeof col);
        wcol = w2;
        ncols = k;
        have_header = 1;
      }
      continue;
    }
    if (*p == '\n' || *p == 0) continue;
    if (!have_header) {
      st = jade_error(JADE_ERR_FORMAT, "%s: line %ld: data before a '#' header naming Omega_c Omega_b sigma_8 h n_s w_0", path, lineno);
      break;
    }
    double v[256];
    int k = 0;
    char *end;
    while (k < 256) {
      errno = 0;
      double x = strtod(p, &end);
      if (end == p) break;
      v[k++] = x;
      p = end;
    }
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    if (*p || k != ncols) {
      st = jade_error(JADE_ERR_FORMAT, "%s: line %ld: expected %d numbers", path, lineno, ncols);
      break;
    }
    if (n == cap) {
      cap = cap ? 2 * cap : 1024;
      double *a = realloc(vals, sizeof(double) * N_OUT_PAR * cap), *b = realloc(wts, sizeof(double) * cap);
      if (a) vals = a;
      if (b) wts = b;
      if (!a || !b) {
        st = jade_error(JADE_ERR_NOMEM, "out of memory reading %s", path);
        break;
      }
    }
    double th[JADE_N_THETA];
    for (int i = 0; i < JADE_N_THETA; i++) th[i] = v[col[i]];
    for (int i = 0; i < JADE_N_THETA; i++) vals[(size_t)n * N_OUT_PAR + i] = th[i];
    vals[(size_t)n * N_OUT_PAR + 6] = col[6] >= 0 ? v[col[6]] : jade_theta_omega_m(th);
    vals[(size_t)n * N_OUT_PAR + 7] = col[7] >= 0 ? v[col[7]] : jade_theta_s8(th);
    wts[n] = wcol >= 0 ? v[wcol] : 1.0;
    if (!(wts[n] >= 0.0) || !isfinite(wts[n])) {
      st = jade_error(JADE_ERR_FORMAT, "%s: line %ld: weight %g", path, lineno, wts[n]);
      break;
    }
    for (int i = 0; i < N_OUT_PAR && !st; i++)
      if (!isfinite(vals[(size_t)n * N_OUT_PAR + i]))
        st = jade_error(JADE_ERR_FORMAT, "%s: line %ld: %s is not finite", path, lineno, out_names[i]);
    n++;
  }
  fclose(f);
  if (!st && !have_header) st = jade_error(JADE_ERR_FORMAT, "%s: no '#' header naming Omega_c Omega_b sigma_8 h n_s w_0", path);
  if (!st && n < 2) st = jade_error(JADE_ERR_FORMAT, "%s: %ld draws (need at least 2)", path, n);
  if (!st) {
    double sw = 0.0;
    for (long i = 0; i < n; i++) sw += wts[i];
    if (!(sw > 0.0)) st = jade_error(JADE_ERR_FORMAT, "%s: all weights are zero", path);
    for (int j = 0; j < N_OUT_PAR && !st; j++) {
      double s = 0.0, v = 0.0;
      int constant = 1;
      for (long i = 0; i < n; i++) s += wts[i] * vals[(size_t)i * N_OUT_PAR + j];
      double mu = s / sw;
      for (long i = 0; i < n; i++) {
        double d = vals[(size_t)i * N_OUT_PAR + j] - mu;
        v += wts[i] * d * d;
        constant &= vals[(size_t)i * N_OUT_PAR + j] == vals[j];
      }
      /* weighted: the population sd (as the weighted NUTS summaries); unweighted: n - 1 */
      out->mean[j] = constant ? vals[j] : mu;
      out->sd[j] = constant ? 0.0 : sqrt(v / sw * (wcol >= 0 ? 1.0 : (double)n / (n - 1)));
    }
    out->n = n;
  }
  free(vals);
  free(wts);
  return st;
}

/* mcmc_name: the directory as the user knows it (the run writes from DIR.partial) */
static jade_status write_compare(const char *mcmc_dir, const char *mcmc_name, const char *sample_dir, const char *out_path) {
  char a[4400], b[4400];
  snprintf(a, sizeof a, "%s/theta.txt", mcmc_dir);
  snprintf(b, sizeof b, "%s/theta.txt", sample_dir);
  par_summary m, s;
  jade_status st = summarize_table(a, &m);
  if (!st) st = summarize_table(b, &s);
  if (st) return st;
  snprintf(a, sizeof a, "%s/theta.txt", mcmc_name);
  char buf[8192];
  size_t pos = 0;
  pos += (size_t)snprintf(buf + pos, sizeof buf - pos,
                          "# jade mcmc --compare: NUTS on the explicit log-normal model vs diffusion posterior samples\n"
                          "# mcmc:    %s (%ld weighted draws)\n# samples: %s (%ld draws)\n"
                          "# offset = (mean_sample - mean_mcmc) / sd_mcmc;  sd_ratio = sd_sample / sd_mcmc\n"
                          "# parameter mean_mcmc sd_mcmc mean_sample sd_sample offset sd_ratio\n",
                          a, m.n, b, s.n);
  for (int j = 0; j < N_OUT_PAR; j++) {
    if (m.sd[j] > 0.0)
      pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "%-8s %.8g %.8g %.8g %.8g %+.5f %.5f\n", out_names[j], m.mean[j], m.sd[j],
                              s.mean[j], s.sd[j], (s.mean[j] - m.mean[j]) / m.sd[j], s.sd[j] / m.sd[j]);
    else /* fixed in the NUTS run */
      pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "%-8s %.8g 0 %.8g %.8g nan nan   # fixed in the NUTS run\n", out_names[j],
                              m.mean[j], s.mean[j], s.sd[j]);
  }
  return jade_write_file_atomic(out_path, buf);
}

/* ------------------------------------------------------------------ outputs ---------- */

static jade_status write_outputs(const char *dir, const run_t *r, chain_t *all, const jade_sim_config *sc,
                                 const double *noise, const char *obs_path, const char *settings, double wall,
                                 double wall_sampling, const jade_emulator *em, int n_refits,
                                 jade_mcmc_health *health) {
  const int C = r->n_chains;
  const long S = all[0].n_rows;
  const long N = S * C;
  char path[4400];
  jade_status st = JADE_OK;
  /* all rows in chain order, weights normalised to mean 1 */
  double *rows = malloc(sizeof(double) * NCOL * (size_t)N), *w = malloc(sizeof(double) * (size_t)N);
  double *x = malloc(sizeof(double) * (size_t)N);
  if (!rows || !w || !x) {
    free(rows);
    free(w);
    free(x);
    return jade_error(JADE_ERR_NOMEM, "mcmc: out of memory for the outputs");
  }
  for (int c = 0; c < C; c++) memcpy(rows + (size_t)NCOL * S * c, all[c].rows, sizeof(double) * NCOL * S);
  double lwmax = -INFINITY;
  for (long i = 0; i < N; i++) lwmax = fmax(lwmax, rows[(size_t)i * NCOL + C_LW]);
  double sw = 0.0, sw2 = 0.0, lwmean = 0.0, lwsd = 0.0;
  for (long i = 0; i < N; i++) {
    w[i] = exp(rows[(size_t)i * NCOL + C_LW] - lwmax);
    sw += w[i];
    lwmean += rows[(size_t)i * NCOL + C_LW] / N;
  }
  for (long i = 0; i < N; i++) {
    w[i] *= N / sw;
    sw2 += w[i] * w[i];
    double d = rows[(size_t)i * NCOL + C_LW] - lwmean;
    lwsd += d * d / N;
  }
  lwsd = sqrt(lwsd);
  double kish = (double)N * N / sw2 / N; /* (sum w)^2 / sum w^2 / N with sum w = N */
  /* theta.txt */
  jade_text_file t;
  snprintf(path, sizeof path, "%s/theta.txt", dir);
  st = jade_text_open(path, &t);
  if (!st) {
    fprintf(t.f, "# chain weight log_post Omega_c Omega_b sigma_8 h n_s w_0 Omega_m S_8\n");
    for (long i = 0; i < N; i++) {
      const double *row = rows + (size_t)i * NCOL;
      fprintf(t.f, "%ld %.10g %.10g", i / S, w[i], row[C_LP]);
      for (int j = 0; j < N_OUT_PAR; j++) fprintf(t.f, " %.10g", row[j]);
      fputc('\n', t.f);
    }
    st = jade_text_commit(&t);
  }
  /* maps: merge the chains' weighted moments (Chan, Golub & LeVeque 1979) */
  float *mean_map = NULL, *std_map = NULL;
  if (!st) {
    mean_map = malloc(sizeof(float) * r->nmap);
    std_map = malloc(sizeof(float) * r->nmap);
    double *mu = calloc(r->nmap, sizeof(double)), *m2 = calloc(r->nmap, sizeof(double));
    if (!mean_map || !std_map || !mu || !m2) st = jade_error(JADE_ERR_NOMEM, "mcmc: out of memory");
    double W = 0.0, ref = -INFINITY;
    for (int c = 0; c < C && !st; c++)
      if (all[c].have_ref) ref = fmax(ref, all[c].lw_ref);
    for (int c = 0; c < C && !st; c++) {
      if (!(all[c].mw > 0)) continue;
      double f = exp(all[c].lw_ref - ref), wc = all[c].mw * f, Wn = W + wc;
      for (size_t m = 0; m < r->nmap; m++) {
        double d = all[c].mmean[m] - mu[m];
        m2[m] += all[c].mm2[m] * f + d * d * W * wc / Wn;
        mu[m] += d * wc / Wn;
      }
      W = Wn;
    }
    for (size_t m = 0; m < r->nmap && !st; m++) {
      mean_map[m] = (float)mu[m];
      std_map[m] = (float)sqrt(W > 0 ? m2[m] / W : NAN);
    }
    free(mu);
    free(m2);
  }
  for (int k = 0; k < 2 && !st; k++) {
    jade_fits_writer *fw;
    snprintf(path, sizeof path, "%s/%s", dir, k ? "std.fits" : "mean.fits");
    long dims[3] = {sc->geom.n_pix, sc->geom.n_pix, sc->geom.n_bins};
    jade_fits_key keys[5 + JADE_MAX_BINS];
    int nk = 0;
    memset(keys, 0, sizeof keys);
#define KEYL(nm, v, cm) do { snprintf(keys[nk].name, 16, "%s", nm); keys[nk].type = JADE_KEY_LONG; keys[nk].l = (v); snprintf(keys[nk].comment, 72, "%s", cm); nk++; } while (0)
#define KEYD(nm, v, cm) do { snprintf(keys[nk].name, 16, "%s", nm); keys[nk].type = JADE_KEY_DOUBLE; keys[nk].d = (v); snprintf(keys[nk].comment, 72, "%s", cm); nk++; } while (0)
    KEYL("NBINS", sc->geom.n_bins, "tomographic bins");
    KEYL("NPIX", sc->geom.n_pix, "pixels per side");
    KEYD("SIZEDEG", sc->geom.size_deg, "side of the patch [deg]");
    KEYL("NDRAWS", N, "post-warm-up NUTS draws (all chains)");
    KEYL("NCHAINS", C, "chains");
    for (int i = 0; i < sc->geom.n_bins; i++) {
      char nm[16];
      snprintf(nm, sizeof nm, "NOISE%d", i);
      KEYD(nm, noise[i], "per-pixel convergence noise of the observation");
    }
#undef KEYL
#undef KEYD
    st = jade_fits_writer_open(path, &fw);
    if (!st) {
      st = jade_fits_writer_add_image(fw, k ? "KAPPA_STD" : "KAPPA_MEAN", 3, dims, k ? std_map : mean_map, keys, nk);
      if (st) jade_fits_writer_abort(fw);
      else st = jade_fits_writer_close(fw);
    }
  }
  free(mean_map);
  free(std_map);
  /* diagnostics.txt */
  if (!st) {
    snprintf(path, sizeof path, "%s/diagnostics.txt", dir);
    st = jade_text_open(path, &t);
  }
  if (!st) {
    FILE *f = t.f;
    fprintf(f, "# jade mcmc diagnostics: field-level NUTS on the explicit log-normal model\n");
    fprintf(f, "observation = %s\n%s", obs_path, settings);
    fprintf(f, "draws = %ld (%d chains x %ld post-warm-up)\n\n", N, C, S);
    fprintf(f, "# mean and sd: importance-weighted (weights 1 unless --theory emulator); mcse, quantiles, R-hat\n"
               "# (rank-normalised split, Vehtari et al. 2021) and ESS: of the NUTS draws themselves\n");
    fprintf(f, "%-8s %12s %12s %10s %12s %12s %12s %8s %9s %9s\n", "# param", "mean", "sd", "mcse_mean", "q05", "q50", "q95",
            "rhat", "ess_bulk", "ess_tail");
    double ess_s8 = NAN, worst_rhat = 0.0, min_bulk = INFINITY;
    memset(health, 0, sizeof *health);
    health->min_ess_bulk = health->min_ess_tail = INFINITY;
    health->chains = C;
    health->draws = N;
    for (int j = 0; j < N_OUT_PAR && !st; j++) {
      for (long i = 0; i < N; i++) x[i] = rows[(size_t)i * NCOL + j];
      jade_mcmc_summary sm;
      st = jade_mcmc_summarize(x, C, (size_t)S, &sm);
      if (st) break;
      double mu, sd;
      weighted_moments(rows, N, w, j, &mu, &sd);
      int is_free = j >= JADE_N_THETA;
      for (int q = 0; q < r->n_free; q++) is_free |= r->free_idx[q] == j;
      fprintf(f, "%-8s %12.6g %12.6g %10.3g %12.6g %12.6g %12.6g %8.4f %9.1f %9.1f%s\n", out_names[j], mu, sd, sm.mcse_mean, sm.q05,
              sm.q50, sm.q95, sm.rhat, sm.ess_bulk, sm.ess_tail, is_free ? "" : "   (fixed)");
      if (is_free) {
        if (isfinite(sm.rhat)) worst_rhat = fmax(worst_rhat, sm.rhat);
        if (isfinite(sm.ess_bulk)) min_bulk = fmin(min_bulk, sm.ess_bulk);
        /* the verdict sees NaN (not finite = not usable) */
        if (!(sm.rhat <= health->max_rhat)) {
          health->max_rhat = sm.rhat;
          health->worst_rhat_name = out_names[j];
        }
        double e = fmin(sm.ess_bulk, sm.ess_tail);
        if (!(e >= fmin(health->min_ess_bulk, health->min_ess_tail))) health->min_ess_name = out_names[j];
        if (!(sm.ess_bulk >= health->min_ess_bulk)) health->min_ess_bulk = sm.ess_bulk;
        if (!(sm.ess_tail >= health->min_ess_tail)) health->min_ess_tail = sm.ess_tail;
      }
      if (j == 7) ess_s8 = sm.ess_bulk;
    }
    if (!st) {
      long div = 0, depth_hist[32] = {0}, nlf = 0;
      for (long i = 0; i < N; i++) {
        const double *row = rows + (size_t)i * NCOL;
        div += row[C_DIV] != 0.0;
        int dpt = (int)row[C_DEPTH];
        if (dpt >= 0 && dpt < 32) depth_hist[dpt]++;
        nlf += (long)row[C_NLF];
      }
      uint64_t grads = 0, theory = 0, emu = 0;
      long div_warm = 0;
      fprintf(f, "\nmax R-hat (free parameters, Omega_m, S_8) = %.4f\nmin bulk ESS (same) = %.1f\n", worst_rhat, min_bulk);
      fprintf(f, "\n# per chain: step size, divergent (warm-up / sampling), gradient evaluations, E-BFMI\n");
      jade_nuts_stats *es = malloc(sizeof(jade_nuts_stats) * (size_t)(S > 0 ? S : 1));
      for (int c = 0; c < C; c++) {
        jade_nuts_totals tot;
        jade_nuts_chain_totals(all[c].nuts, &tot);
        grads += tot.grad_evals;
        div_warm += tot.divergent_warmup;
        theory += all[c].prev.n_theory;
        emu += all[c].prev.n_emulated;
        for (long i = 0; es && i < S; i++) es[i].energy = all[c].rows[(size_t)i * NCOL + C_ENERGY];
        fprintf(f, "chain %d: step_size %.4g, divergent %ld / %ld, gradient_evals %llu, ebfmi %.3f\n", all[c].id,
                jade_nuts_chain_step_size(all[c].nuts), tot.divergent_warmup, tot.divergent, (unsigned long long)tot.grad_evals,
                es ? jade_nuts_ebfmi(es, S) : NAN);
      }
      free(es);
      fprintf(f, "\ndivergences: warm-up %ld, sampling %ld (%.3f%% of draws)\n", div_warm, div, 100.0 * div / (double)N);
      health->divergent = div;
      char verdict[512];
      int n_bad = jade_mcmc_health_verdict(health, verdict, sizeof verdict);
      fprintf(f, "verdict = %s%s\n", n_bad ? "NOT USABLE: " : "", verdict);
      fprintf(f, "tree depth counts (sampling):");
      for (int d = 0; d < 32; d++)
        if (depth_hist[d]) fprintf(f, " %d:%ld", d, depth_hist[d]);
      fprintf(f, "\nmean leapfrog steps per draw (sampling) = %.1f\n", (double)nlf / N);
      fprintf(f, "gradient evaluations (all chains, warm-up included) = %llu\n", (unsigned long long)grads);
      fprintf(f, "exact cosmology runs = %llu, emulated theory evaluations = %llu\n", (unsigned long long)theory,
              (unsigned long long)emu);
      fprintf(f, "importance weights: sd(log w) = %.4g, Kish ESS fraction = %.4f\n", lwsd, kish);
      if (em) {
        jade_emulator_info inf;
        jade_emulator_get_info(em, &inf);
        fprintf(f, "emulator: %d fits; last: %d design points, %d terms, held-out max|ln C err| = %.3g (rms %.3g), "
                   "max|ln lambda err| = %.3g\n", n_refits, inf.n_design, inf.n_terms, inf.max_err_cl, inf.rms_err_cl,
                inf.max_err_lambda);
      }
      fprintf(f, "wall time = %.1f s (sampling phase %.1f s)\n", wall, wall_sampling);
      fprintf(f, "wall time per effective sample of S_8 = %.4g s (total wall / bulk ESS of S_8 = %.1f)\n", wall / ess_s8, ess_s8);
      fprintf(f, "gradient evaluations per effective sample of S_8 = %.1f\n", grads / ess_s8);
    }
    if (st) jade_text_abort(&t);
    else st = jade_text_commit(&t);
  }
  free(rows);
  free(w);
  free(x);
  return st;
}

/* ------------------------------------------------------------------ the command ------ */

typedef struct {
  const jade_dist *dist;
  run_t *r;
  chain_t *ch;
  int n_local;
  size_t nuts_size;  /* serialised size of a chain of this dimension */
  const jade_sim_config *sc;
  const jade_theory *theory;
  jade_emulator_config ecfg;
  jade_emulator *em;
  int n_refits;
  int quiet, tty;
} driver;

/* (Re)fit the emulator to the pooled statistics of the free parameters of all chains: the
 * chains' positions (initial fit, with a quarter of the prior sd added) or the warm-up draws
 * since the last fit. Per-chain slots are summed exactly over ranks and added in chain order,
 * so the fit does not depend on the rank count. */
static jade_status refit(driver *D, long it) {
  const run_t *r = D->r;
  int k = r->n_free;
  size_t per = 1 + (size_t)k + (size_t)k * k + (size_t)k;
  double *slot = calloc(per * r->n_chains, sizeof(double));
  if (!slot) return jade_error(JADE_ERR_NOMEM, "out of memory");
  for (int i = 0; i < D->n_local; i++) {
    const chain_t *c = &D->ch[i];
    double *s = slot + per * c->id;
    const double *u = jade_nuts_chain_position(c->nuts);
    s[0] = c->wn;
    for (int a = 0; a < k; a++) s[1 + a] = c->wsum[a];
    for (int a = 0; a < k * k; a++) s[1 + k + a] = c->wsq[a];
    for (int a = 0; a < k; a++) s[1 + k + k * k + a] = u[a];
  }
  jade_status st = jade_dist_sum_double(D->dist, slot, per * r->n_chains);
  double n = 0.0, mean[JADE_N_THETA] = {0}, cov[JADE_N_THETA * JADE_N_THETA] = {0};
  int initial = D->em == NULL;
  for (int c = 0; c < r->n_chains && !st; c++) {
    const double *s = slot + per * c;
    if (initial) {
      const double *p = s + 1 + k + k * k;
      n += 1.0;
      for (int a = 0; a < k; a++) {
        mean[a] += p[a];
        for (int b = 0; b < k; b++) cov[a * k + b] += p[a] * p[b];
      }
    } else {
      n += s[0];
      for (int a = 0; a < k; a++) mean[a] += s[1 + a];
      for (int a = 0; a < k * k; a++) cov[a] += s[1 + k + a];
    }
  }
  free(slot);
  if (st) return st;
  if (!(n > 0)) return jade_error(JADE_ERR_INTERNAL, "mcmc: no draws for the emulator refit at iteration %ld", it);
  for (int a = 0; a < k; a++) mean[a] /= n;
  for (int a = 0; a < k; a++)
    for (int b = 0; b < k; b++) cov[a * k + b] = cov[a * k + b] / n - mean[a] * mean[b];
  for (int a = 0; a < k; a++) {
    /* in u, the prior sd is about 1 for normal priors and sd / (theta - lo) for bounded ones */
    double sd = 1.0;
    cov[a * k + a] += initial ? 0.0625 * sd * sd : 1e-6 * sd * sd;
  }
  jade_emulator *ne = NULL;
  double t0 = jade_time_now();
  st = jade_emulator_fit(D->theory, D->sc, k, r->free_idx, mean, cov, &D->ecfg, D->dist, &ne);
  if (st) return jade_error_context(st, "emulator fit at iteration %ld", it);
  /* Switch every chain to the new emulator. The sampler caches the density at the chain's
   * position; the per-chain offset makes the new target agree with it there (both are
   * deterministic functions of the position, so the old value is recomputed exactly). */
  for (int i = 0; i < D->n_local && !st; i++) {
    chain_t *c = &D->ch[i];
    const double *x = jade_nuts_chain_position(c->nuts);
    double lp_old = 0.0, lp_new = 0.0;
    if (!initial) st = jade_fieldpost_logp(c->fp, x, &lp_old, NULL);
    if (!st) st = jade_fieldpost_set_mode(c->fp, r->mode, ne);
    jade_fieldpost_set_offset(c->fp, 0.0);
    if (!st && !initial) st = jade_fieldpost_logp(c->fp, x, &lp_new, NULL);
    if (!st && !initial && isfinite(lp_old) && isfinite(lp_new)) jade_fieldpost_set_offset(c->fp, lp_old - lp_new);
  }
  jade_emulator_free(D->em);
  D->em = ne;
  D->n_refits++;
  for (int i = 0; i < D->n_local && !st; i++) {
    chain_t *c = &D->ch[i];
    c->wn = 0;
    memset(c->wsum, 0, sizeof c->wsum);
    memset(c->wsq, 0, sizeof c->wsq);
  }
  if (!st && D->dist->rank == 0 && !D->quiet) {
    jade_emulator_info inf;
    jade_emulator_get_info(ne, &inf);
    fprintf(stderr, "%sjade mcmc: emulator fit %d at iteration %ld (%.1f s): held-out max|ln C_ell err| %.2g (rms %.2g), "
                    "max|ln lambda err| %.2g\n", D->tty ? "\r" : "", D->n_refits, it, jade_time_now() - t0, inf.max_err_cl,
            inf.rms_err_cl, inf.max_err_lambda);
  }
  return st;
}

/* Write DIR.partial/state.bin with every chain (collective). */
static jade_status checkpoint(driver *D, const char *state_path, long it, double wall, double wall_sampling) {
  const run_t *r = D->r;
  long n_rows = it > r->warmup ? it - r->warmup : 0;
  size_t rec = record_size_n(D->nuts_size, r, n_rows);
  unsigned char *recs = NULL;
  jade_status st = gather_records(D->dist, D->ch, D->n_local, r, rec, &recs);
  if (!st && D->dist->rank == 0) {
    state_head h = {r->n_chains, (int64_t)rec, D->em ? (int64_t)jade_emulator_serial_size(D->em) : 0, D->n_refits, it, wall,
                    wall_sampling};
    st = state_write(state_path, &h, D->em, recs);
  }
  free(recs);
  if (jade_dist_max_int(D->dist, st != JADE_OK) && !st) st = jade_error(JADE_ERR_IO, "rank 0 failed to write %s", state_path);
  return st;
}

/* Starting points: the truth of a 'jade observe' observation (free parameters of its truth
 * file, its white noise: simulation 0 of (SEED, field stream)), or per chain a prior draw of
 * the free parameters with N(0, 1) white noise, redrawn until the exact density is finite. */
static jade_status start_chains(driver *D, jade_fieldpost *fp0, const char *obs_path, int init_truth, long seed,
                                const jade_nuts_config *ncfg) {
  const run_t *r = D->r;
  jade_status st = JADE_OK;
  double *x0 = malloc(sizeof(double) * r->dim);
  float *ktrue = NULL, *kchk = NULL;
  if (!x0) return jade_error(JADE_ERR_NOMEM, "out of memory");
  if (init_truth) {
    char tpath[4400];
    double th_true[JADE_N_THETA], dseed = 0.0, th0[JADE_N_THETA];
    int tb = 0, tn = 0;
    jade_observation_truth_path(obs_path, tpath, sizeof tpath);
    st = jade_observation_read_truth(tpath, th_true, &ktrue, &tb, &tn);
    if (st) st = jade_error_context(st, "--init truth needs the truth file of a 'jade observe' observation (or use --init prior)");
    if (!st && jade_fits_read_key_double(obs_path, "KAPPA", "SEED", &dseed) &&
        jade_fits_read_key_double(obs_path, "GAMMA1", "SEED", &dseed))
      st = jade_error(JADE_ERR_FORMAT, "%s: no SEED key: --init truth needs an observation made by 'jade observe' (or use --init prior)",
                      obs_path);
    if (!st && (tb != D->sc->geom.n_bins || tn != D->sc->geom.n_pix))
      st = jade_error(JADE_ERR_FORMAT, "%s: the truth map's geometry differs from the observation's", tpath);
    jade_theta_from_params(&D->sc->cosmo, th0);
    for (int i = 0; i < r->n_free && !st; i++) th0[r->free_idx[i]] = th_true[r->free_idx[i]];
    if (!st) st = jade_fieldpost_unconstrain(fp0, th0, x0);
    if (!st) jade_rng_normal_fill((uint64_t)dseed, JADE_STREAM(JADE_RNG_FIELD, 0), 0, r->nmap, x0 + r->n_free);
    if (!st && D->dist->rank == 0 && !D->quiet) {
      for (int i = 0; i < JADE_N_THETA; i++) {
        int fr = 0;
        for (int q = 0; q < r->n_free; q++) fr |= r->free_idx[q] == i;
        if (!fr && fabs(th_true[i] - th0[i]) > 1e-12 * fabs(th0[i]))
          fprintf(stderr, "jade mcmc: note: fixed %s = %g (config) differs from the truth %g\n", jade_theta_names[i], th0[i], th_true[i]);
      }
      /* the truth map must be reproduced when the config is the one jade observe used */
      double lp;
      kchk = malloc(sizeof(float) * r->nmap);
      if (!kchk) st = jade_error(JADE_ERR_NOMEM, "out of memory");
      if (!st) st = jade_fieldpost_eval_exact(fp0, x0, &lp, kchk);
      if (!st) {
        double md = 0.0, mk = 0.0;
        for (size_t m = 0; m < r->nmap; m++) {
          md = fmax(md, fabs((double)kchk[m] - ktrue[m]));
          mk = fmax(mk, fabs((double)ktrue[m]));
        }
        if (!(md <= 1e-5 * mk + 1e-7))
          fprintf(stderr, "jade mcmc: note: the truth map is not reproduced (max difference %.3g): was the observation made "
                          "with another config? (the chains still start there)\n", md);
      }
    }
  }
  for (int i = 0; i < D->n_local && !st; i++) {
    chain_t *c = &D->ch[i];
    if (!init_truth) {
      int ok = 0;
      for (int tr = 0; tr < 100 && !st && !ok; tr++) {
        double th[JADE_N_THETA], th0[JADE_N_THETA], lp;
        uint64_t idx = (uint64_t)c->id + (uint64_t)r->n_chains * tr;
        jade_prior_draw(D->sc, (uint64_t)seed, idx, th);
        jade_theta_from_params(&D->sc->cosmo, th0);
        for (int q = 0; q < r->n_free; q++) th0[r->free_idx[q]] = th[r->free_idx[q]];
        if (jade_fieldpost_unconstrain(c->fp, th0, x0)) {
          jade_clear_error();
          continue;
        }
        jade_rng_normal_fill((uint64_t)seed, JADE_STREAM(JADE_RNG_MCMC, (UINT64_C(1) << 46) | idx), 0, r->nmap, x0 + r->n_free);
        st = jade_fieldpost_eval_exact(c->fp, x0, &lp, NULL);
        ok = !st && isfinite(lp);
      }
      if (!st && !ok) st = jade_error(JADE_ERR_NUMERIC, "chain %d: no prior draw with a finite posterior density in 100 tries", c->id);
    }
    if (!st) st = jade_nuts_chain_create(&c->nuts, r->dim, ncfg, (uint64_t)seed, (uint64_t)c->id, x0, NULL);
  }
  free(x0);
  free(ktrue);
  free(kchk);
  return st;
}

int jade_cmd_mcmc(int argc, char **argv) {
  jade_option opts[] = {
      JADE_CONFIG_OPTIONS,
      {"obs", "OBS.fits", "observation (GAMMA1/GAMMA2 shear, converted by Kaiser-Squires, or KAPPA)", NULL, 0, 0, NULL, 0},
      {"out", "DIR", "output directory (must not exist; DIR.partial is resumed)", NULL, 0, 0, NULL, 0},
      {"chains", "C", "number of chains (config key mcmc.chains)", "4", 0, 0, NULL, 0},
      {"warmup", "W", "warm-up iterations per chain (mcmc.warmup)", "500", 0, 0, NULL, 0},
      {"samples", "S", "post-warm-up draws per chain (mcmc.samples)", "1000", 0, 0, NULL, 0},
      {"max-depth", "D", "maximum NUTS tree depth (mcmc.max_depth; the paper used 6)", "8", 0, 0, NULL, 0},
      {"target-accept", "A", "dual-averaging target acceptance (mcmc.target_accept)", "0.8", 0, 0, NULL, 0},
      {"seed", "S", "random seed of the chains (mcmc.seed)", "0", 0, 0, NULL, 0},
      {"init", "prior|truth", "start every chain at a prior draw (real data has no truth) or at the observation's "
                              "truth (free parameters and white noise, as the paper) (mcmc.init)", "prior", 0, 0, NULL, 0},
      {"strict", NULL, "exit with status 4 when the chains are not usable (R-hat >= 1.01, ESS < 100 per chain or "
                       "divergences after warm-up); a warning is printed either way", NULL, 0, 0, NULL, 0},
      {"free", "LIST", "parameters to sample, comma-separated; the others keep the config's values (mcmc.free)",
       "Omega_c,Omega_b,sigma_8,h,n_s,w_0", 0, 0, NULL, 0},
      {"theory", "MODE", "emulator (polynomial emulator of ln C_ell, ln lambda refitted in warm-up, importance weights "
                         "from the exact cosmology), hybrid (exact density, emulator gradient) or exact "
                         "(finite-difference Jacobian; slow) (mcmc.theory)", "emulator", 0, 0, NULL, 0},
      {"emulator-degree", "D", "total polynomial degree of the emulator (mcmc.emulator_degree)", "4", 0, 0, NULL, 0},
      {"compare", "SAMPLE_DIR", "write DIR/compare.txt: these NUTS draws vs a 'jade sample' output (its theta.txt); "
                                "with a finished DIR only the comparison is made", NULL, 0, 0, NULL, 0},
      {"checkpoint", "SEC", "seconds between checkpoints of the chains", "60", 0, 0, NULL, 0},
      {"max-iterations", "K", "stop after K iterations per chain in this run (exit code 3; rerun to resume); 0 = no limit",
       "0", 0, 0, NULL, 0},
      {"quiet", NULL, "no progress line", NULL, 0, 0, NULL, 0},
      {NULL, NULL, NULL, NULL, 0, 0, NULL, 0}};
  jade_dist dist;
  int pr = jade_cli_start(&argc, &argv, "mcmc", "jade mcmc --obs OBS.fits --out DIR [options]",
                          "Field-level NUTS on the explicit log-normal model (the paper's baseline): samples the\n"
                          "white-noise maps and the cosmological parameters given an observation. Chains run in\n"
                          "parallel over OpenMP threads and MPI ranks (chain c on rank c % size); an interrupted\n"
                          "run resumes when the same command is rerun. Outputs: DIR/theta.txt, mean.fits,\n"
                          "std.fits, diagnostics.txt (and compare.txt with --compare).",
                         opts, &dist);
  if (pr >= 0) return pr;
  int rc = 1, quiet = jade_cli_opt(opts, "quiet")->seen, stopped = 0, strict = jade_cli_opt(opts, "strict")->seen;
  const char *out = jade_cli_opt(opts, "out")->value, *obs_path = jade_cli_opt(opts, "obs")->value;
  const char *compare = jade_cli_opt(opts, "compare")->value;
  jade_config *cfg = NULL;
  jade_sim_config sc;
  jade_observation obs;
  memset(&obs, 0, sizeof obs);
  jade_theory *theory = NULL;
  jade_fieldpost *fp0 = NULL;
  jade_nuts_chain *tmpl = NULL, **nch = NULL;
  void **ctx = NULL;
  run_t R;
  memset(&R, 0, sizeof R);
  driver D;
  memset(&D, 0, sizeof D);
  D.dist = &dist;
  D.r = &R;
  D.quiet = quiet;
  D.tty = isatty(2);
  char *dump = NULL, *ident = NULL, *settings = NULL;
  unsigned char *recs = NULL;
  double *draws = NULL;
  jade_nuts_stats *stats = NULL;
  float *kbuf = NULL;
  char partial[4200], path[4400], state_path[4400];
  jade_status st = JADE_OK;

  if (!out) st = jade_error(JADE_ERR_INVALID, "--out DIR is required");
  /* comparison with a finished run only */
  if (!st && compare && jade_path_exists(out)) {
    snprintf(path, sizeof path, "%s/theta.txt", out);
    if (!jade_path_exists(path)) st = jade_error(JADE_ERR_IO, "%s: exists but is not a finished jade mcmc directory (no theta.txt)", out);
    snprintf(path, sizeof path, "%s/compare.txt", out);
    if (!st && dist.rank == 0) st = write_compare(out, out, compare, path);
    if (jade_dist_max_int(&dist, st != JADE_OK) && !st) st = jade_error(JADE_ERR_IO, "rank 0 failed to compare");
    if (!st && dist.rank == 0 && !quiet) fprintf(stderr, "jade mcmc: wrote %s\n", path);
    if (!st) rc = 0;
    goto done;
  }
  if (!st && jade_path_exists(out)) st = jade_error(JADE_ERR_IO, "%s: already exists (choose another --out or remove it)", out);
  if (!st && !obs_path) st = jade_error(JADE_ERR_INVALID, "--obs OBS.fits is required");
  if (!st && compare) {
    snprintf(path, sizeof path, "%s/theta.txt", compare);
    if (!jade_path_exists(path)) st = jade_error(JADE_ERR_IO, "--compare %s: no theta.txt in that directory", compare);
  }
  if (!st) st = jade_cli_load_config(opts, &cfg);
  if (!st) st = jade_sim_config_read(cfg, &sc);
  long chains = 0, warmup = 0, samples = 0, max_depth = 0, seed = 0, em_degree = 4, ckpt_every = 60, max_iter = 0;
  double target = 0.8;
  const char *init_s = NULL, *free_s = NULL, *theory_s = NULL, *v = NULL;
  int init_truth = 0;
  jade_mcmc_health health;
  memset(&health, 0, sizeof health);
  if (!st) st = opt_value(opts, cfg, "chains", "mcmc.chains", &v);
  if (!st) st = parse_long("--chains", v, 1, 4096, &chains);
  if (!st) st = opt_value(opts, cfg, "warmup", "mcmc.warmup", &v);
  if (!st) st = parse_long("--warmup", v, 0, 1000000, &warmup);
  if (!st) st = opt_value(opts, cfg, "samples", "mcmc.samples", &v);
  if (!st) st = parse_long("--samples", v, 4, 1000000, &samples);
  if (!st) st = opt_value(opts, cfg, "max-depth", "mcmc.max_depth", &v);
  if (!st) st = parse_long("--max-depth", v, 1, 16, &max_depth);
  if (!st) st = opt_value(opts, cfg, "target-accept", "mcmc.target_accept", &v);
  if (!st) st = parse_double("--target-accept", v, 0.05, 0.999, &target);
  if (!st) st = opt_value(opts, cfg, "seed", "mcmc.seed", &v);
  if (!st) st = parse_long("--seed", v, 0, 0x7fffffffffffffffL, &seed);
  if (!st) st = opt_value(opts, cfg, "emulator-degree", "mcmc.emulator_degree", &v);
  if (!st) st = parse_long("--emulator-degree", v, 1, 8, &em_degree);
  if (!st) st = parse_long("--checkpoint", jade_cli_opt(opts, "checkpoint")->value, 1, 1000000, &ckpt_every);
  if (!st) st = parse_long("--max-iterations", jade_cli_opt(opts, "max-iterations")->value, 0, 1L << 40, &max_iter);
  if (!st) st = opt_value(opts, cfg, "init", "mcmc.init", &init_s);
  if (!st) {
    if (!strcmp(init_s, "truth")) init_truth = 1;
    else if (!strcmp(init_s, "prior")) init_truth = 0;
    else st = jade_error(JADE_ERR_INVALID, "--init: '%s' (expected truth or prior)", init_s);
  }
  if (!st) st = opt_value(opts, cfg, "free", "mcmc.free", &free_s);
  if (!st) st = parse_free(free_s, &R.n_free, R.free_idx);
  if (!st) st = opt_value(opts, cfg, "theory", "mcmc.theory", &theory_s);
  if (!st) {
    if (!strcmp(theory_s, "emulator")) R.mode = JADE_FP_EMULATOR;
    else if (!strcmp(theory_s, "hybrid")) R.mode = JADE_FP_HYBRID;
    else if (!strcmp(theory_s, "exact")) R.mode = JADE_FP_EXACT;
    else st = jade_error(JADE_ERR_INVALID, "--theory: '%s' (expected emulator, hybrid or exact)", theory_s);
  }
  if (!st) st = jade_config_check_unused(cfg, (const char *const[]){"", "mcmc", NULL});
  if (!st && !(dump = jade_config_dump(cfg))) st = jade_error(JADE_ERR_NOMEM, "out of memory");
  /* observation and its geometry */
  if (!st) st = jade_observation_read(obs_path, &obs);
  if (!st) st = jade_observation_require_full(&obs, obs_path);
  if (!st && (obs.n_bins != sc.geom.n_bins || obs.n_pix != sc.geom.n_pix ||
              fabs(obs.size_deg - sc.geom.size_deg) > 1e-6 * sc.geom.size_deg))
    st = jade_error(JADE_ERR_INVALID,
                    "%s: geometry %d bins x %d x %d pixels over %g deg does not match the config's n_bins = %d, n_pix = %d, "
                    "size_deg = %g (use the config the observation was made with)",
                    obs_path, obs.n_bins, obs.n_pix, obs.n_pix, obs.size_deg, sc.geom.n_bins, sc.geom.n_pix, sc.geom.size_deg);
  if (st) goto done;
  R.n_chains = (int)chains;
  R.warmup = warmup;
  R.samples = samples;
  R.nmap = (size_t)sc.geom.n_bins * sc.geom.n_pix * sc.geom.n_pix;
  R.dim = (size_t)R.n_free + R.nmap;
  if (dist.rank == 0 && !quiet) { /* the config's survey noise vs the observation's (the observation's is used) */
    jade_survey *sv = NULL;
    if (jade_survey_create(&sc.survey, &sv) == JADE_OK)
      for (int i = 0; i < sc.geom.n_bins; i++) {
        double s = jade_survey_pixel_noise(sv, i, jade_pixel_arcmin(&sc.geom));
        if (fabs(s - obs.noise[i]) > 1e-3 * s) {
          fprintf(stderr, "jade mcmc: note: %s has noise %.6g in bin %d, the config's survey %.6g: using the observation's\n",
                  obs_path, obs.noise[i], i, s);
          break;
        }
      }
    jade_survey_free(sv);
    jade_clear_error();
  }
  { /* run identity: everything that changes the draws */
    uint64_t h = 1469598103934665603ull;
    const unsigned char *kb = (const unsigned char *)obs.kappa;
    for (size_t i = 0; i < R.nmap * sizeof(float); i++) h = (h ^ kb[i]) * 1099511628211ull;
    for (int i = 0; i < obs.n_bins; i++) {
      const unsigned char *nb = (const unsigned char *)&obs.noise[i];
      for (size_t j = 0; j < sizeof(double); j++) h = (h ^ nb[j]) * 1099511628211ull;
    }
    char fr[256] = "";
    for (int i = 0; i < R.n_free; i++) {
      strcat(fr, i ? "," : "");
      strcat(fr, jade_theta_names[R.free_idx[i]]);
    }
    size_t len = 2048;
    settings = malloc(len);
    size_t il = strlen(dump) + len + 64;
    ident = malloc(il);
    if (!settings || !ident) {
      st = jade_error(JADE_ERR_NOMEM, "out of memory");
      goto done;
    }
    snprintf(settings, len,
             "chains = %ld\nwarmup = %ld\nsamples = %ld\nmax_depth = %ld\ntarget_accept = %.10g\nseed = %ld\ninit = %s\n"
             "free = %s\ntheory = %s\nemulator_degree = %ld\nobservation_hash = %016llx\n",
             chains, warmup, samples, max_depth, target, seed, init_truth ? "truth" : "prior", fr, theory_s, em_degree,
             (unsigned long long)h);
    snprintf(ident, il, "# jade mcmc run\n%s%s", settings, dump);
  }
  /* theory, one posterior per local chain (and one for set-up checks) */
  st = jade_theory_create_cosmo(&sc, &theory);
  jade_fieldpost_setup fs = {.sc = &sc, .n_free = R.n_free, .kappa_obs = obs.kappa, .noise = obs.noise, .theory = theory};
  memcpy(fs.free_idx, R.free_idx, sizeof fs.free_idx);
  if (!st) st = jade_fieldpost_create(&fs, &fp0);
  jade_nuts_config ncfg;
  jade_nuts_config_default(&ncfg);
  ncfg.n_warmup = warmup;
  ncfg.max_depth = (int)max_depth;
  ncfg.target_accept = target;
  ncfg.step_size = 1e-2; /* the paper's step size, refined by the heuristic and dual averaging */
  if (!st) st = jade_nuts_config_check(&ncfg);
  if (!st) st = jade_nuts_chain_create(&tmpl, R.dim, &ncfg, 0, 0, NULL, NULL);
  if (st) goto done;
  D.nuts_size = jade_nuts_chain_serial_size(tmpl);
  D.sc = &sc;
  D.theory = theory;
  jade_emulator_config_default(&D.ecfg);
  D.ecfg.degree = (int)em_degree;
  D.ecfg.seed = (uint64_t)seed;
  for (int c = dist.rank; c < R.n_chains; c += dist.size) D.n_local++;
  D.ch = calloc((size_t)D.n_local + 1, sizeof *D.ch);
  nch = calloc((size_t)D.n_local + 1, sizeof *nch);
  ctx = calloc((size_t)D.n_local + 1, sizeof *ctx);
  if (!D.ch || !nch || !ctx) {
    st = jade_error(JADE_ERR_NOMEM, "out of memory");
    goto done;
  }
  for (int i = 0, c = dist.rank; c < R.n_chains; c += dist.size, i++) {
    D.ch[i].id = c;
    D.ch[i].mmean = calloc(R.nmap, sizeof(double));
    D.ch[i].mm2 = calloc(R.nmap, sizeof(double));
    if (!D.ch[i].mmean || !D.ch[i].mm2) st = jade_error(JADE_ERR_NOMEM, "out of memory");
    if (!st) st = jade_fieldpost_create(&fs, &D.ch[i].fp);
    if (st) goto done;
  }
  snprintf(partial, sizeof partial, "%s.partial", out);
  snprintf(state_path, sizeof state_path, "%s/state.bin", partial);
  /* ---- resume or start (nothing is written before the starting points are valid) ---- */
  int resumed = 0, have_partial = 0;
  if (dist.rank == 0 && jade_path_exists(partial)) {
    have_partial = 1;
    snprintf(path, sizeof path, "%s/run.txt", partial);
    char *prev = jade_read_text_file(path);
    if (!prev || strcmp(prev, ident) != 0)
      st = jade_error(JADE_ERR_IO, "%s: exists from a different run (config, observation or options differ); remove it to start over",
                      partial);
    free(prev);
    resumed = jade_path_exists(state_path);
  }
  if (jade_dist_max_int(&dist, st != JADE_OK)) {
    if (!st) st = jade_error(JADE_ERR_IO, "rank 0 failed to check %s", partial);
    goto done;
  }
  resumed = jade_dist_max_int(&dist, resumed);
  have_partial = jade_dist_max_int(&dist, have_partial);
  long it = 0;
  double wall_prev = 0.0, wall_sampling = 0.0;
  if (resumed) {
    state_head h;
    jade_emulator *em = NULL;
    st = state_read(state_path, &h, &em, &recs);
    D.em = em;
    if (!st && h.n_chains != R.n_chains)
      st = jade_error(JADE_ERR_FORMAT, "%s: %lld chains, this run has %d", state_path, (long long)h.n_chains, R.n_chains);
    for (int i = 0; i < D.n_local && !st; i++)
      st = record_read(&D.ch[i], &R, recs + (size_t)h.rec_size * D.ch[i].id, (size_t)h.rec_size);
    for (int i = 0; i < D.n_local && !st; i++)
      if (jade_nuts_chain_iteration(D.ch[i].nuts) != h.iter) st = jade_error(JADE_ERR_FORMAT, "%s: chains at different iterations", state_path);
    free(recs);
    recs = NULL;
    for (int i = 0; i < D.n_local && !st && D.em && R.mode != JADE_FP_EXACT; i++) st = jade_fieldpost_set_mode(D.ch[i].fp, R.mode, D.em);
    if (st) goto done;
    D.n_refits = (int)h.n_refits;
    it = (long)h.iter;
    wall_prev = h.wall;
    wall_sampling = h.wall_sampling;
    if (dist.rank == 0 && !quiet)
      fprintf(stderr, "jade mcmc: resuming %s at iteration %ld of %ld\n", partial, it, warmup + samples);
  } else {
    st = start_chains(&D, fp0, obs_path, init_truth, seed, &ncfg);
    if (jade_dist_max_int(&dist, st != JADE_OK)) {
      if (!st) st = jade_error(JADE_ERR_NUMERIC, "another rank failed to start its chains");
      goto done;
    }
    if (!have_partial && dist.rank == 0) {
      st = jade_mkdir_p(partial);
      snprintf(path, sizeof path, "%s/run.txt", partial);
      if (!st) st = jade_write_file_atomic(path, ident);
      snprintf(path, sizeof path, "%s/config.ini", partial);
      if (!st) st = jade_write_file_atomic(path, dump);
    }
    if (jade_dist_max_int(&dist, st != JADE_OK)) {
      if (!st) st = jade_error(JADE_ERR_IO, "rank 0 failed to create %s", partial);
      goto done;
    }
  }
  /* Emulator refits (warm-up iteration counts): at 10% of the warm-up (at least 20) and after
   * each slow metric window, at least 20 iterations apart and a quarter of the warm-up (at most
   * 50) before its end, so the final metric and step size are adapted to the final emulator. */
  long refit_at[40];
  int n_refit_at = 0;
  if (R.mode != JADE_FP_EXACT) {
    long ends[32], last = 0, first = (long)ceil(0.1 * warmup), margin = warmup / 4 < 50 ? warmup / 4 : 50;
    if (first < 20) first = 20;
    int ne = jade_nuts_metric_windows(&ncfg, ends, 32);
    if (first <= warmup - margin) refit_at[n_refit_at++] = last = first;
    for (int q = 0; q < ne && q < 32; q++) {
      long e = ends[q] + 1;
      if (e - last >= 20 && e <= warmup - margin && n_refit_at < 40) refit_at[n_refit_at++] = last = e;
    }
  }
  const long total = warmup + samples, block = 5;
  draws = malloc(sizeof(double) * R.dim * block * (size_t)(D.n_local + 1));
  stats = malloc(sizeof(jade_nuts_stats) * block * (size_t)(D.n_local + 1));
  kbuf = malloc(sizeof(float) * R.nmap * (size_t)(D.n_local + 1));
  if (!draws || !stats || !kbuf) {
    st = jade_error(JADE_ERR_NOMEM, "out of memory for %d chains of dimension %zu", D.n_local, R.dim);
    goto done;
  }
  for (int i = 0; i < D.n_local; i++) {
    nch[i] = D.ch[i].nuts;
    ctx[i] = D.ch[i].fp;
  }
  const int k = R.n_free;
  double t_start = jade_time_now(), t_last = t_start, t_ckpt = t_start;
  long it_start = it, run_iters = 0;
  while (it < total && !st) {
    /* the initial emulator fit, and the refits due at this iteration */
    if (R.mode != JADE_FP_EXACT && (!D.em || (D.n_refits <= n_refit_at && it == refit_at[D.n_refits - 1]))) {
      st = refit(&D, it);
      continue;
    }
    long nb_it = block, stop_at = it < warmup ? warmup : total;
    if (R.mode != JADE_FP_EXACT && D.n_refits <= n_refit_at && refit_at[D.n_refits - 1] > it && refit_at[D.n_refits - 1] < stop_at)
      stop_at = refit_at[D.n_refits - 1];
    if (it + nb_it > stop_at) nb_it = stop_at - it;
    if (max_iter && run_iters + nb_it > max_iter) nb_it = max_iter - run_iters;
    double tb0 = jade_time_now();
    if (D.n_local) st = jade_nuts_run_chains(nch, D.n_local, jade_fieldpost_logp, ctx, nb_it, draws, stats, 0);
    if (st) break;
    /* post-process: refit statistics (warm-up) or stored draws with their exact density,
     * importance weight and map (sampling) */
    jade_status *pst = calloc((size_t)D.n_local + 1, sizeof *pst);
    char(*pmsg)[512] = calloc((size_t)D.n_local + 1, sizeof *pmsg);
    if (!pst || !pmsg) st = jade_error(JADE_ERR_NOMEM, "out of memory");
    int nthr = omp_get_max_threads() < D.n_local ? omp_get_max_threads() : D.n_local;
    if (nthr < 1) nthr = 1;
#pragma omp parallel for num_threads(nthr) schedule(dynamic, 1) if (nthr > 1 && !st)
    for (int i = 0; i < D.n_local; i++) {
      if (st) continue;
      chain_t *c = &D.ch[i];
      for (long q = 0; q < nb_it && !pst[i]; q++) {
        const double *xq = draws + ((size_t)i * nb_it + q) * R.dim;
        const jade_nuts_stats *sq = stats + (size_t)i * nb_it + q;
        double th[JADE_N_THETA];
        jade_fieldpost_theta(c->fp, xq, th);
        if (it + q < warmup) {
          c->wn += 1; /* refit statistics in the unconstrained coordinates */
          for (int a = 0; a < k; a++) {
            c->wsum[a] += xq[a];
            for (int b = 0; b < k; b++) c->wsq[a * k + b] += xq[a] * xq[b];
          }
        } else {
          double lp;
          float *kk = kbuf + R.nmap * (size_t)i;
          pst[i] = jade_fieldpost_eval_exact(c->fp, xq, &lp, kk);
          if (!pst[i]) {
            /* the sampler's density carries the chain's constant offset */
            double lw = R.mode == JADE_FP_EMULATOR ? lp - (sq->logp - jade_fieldpost_offset(c->fp)) : 0.0;
            if (!isfinite(lp)) lw = -INFINITY;
            pst[i] = chain_add_draw(c, &R, th, lp, lw, sq, kk);
          }
        }
      }
      if (pst[i]) snprintf(pmsg[i], sizeof pmsg[i], "%s", jade_last_error());
    }
    for (int i = 0; i < D.n_local && !st; i++)
      if (pst[i]) st = jade_error(pst[i], "chain %d: %s", D.ch[i].id, pmsg[i]);
    free(pst);
    free(pmsg);
    if (st) break;
    double now = jade_time_now();
    if (it >= warmup) wall_sampling += now - tb0;
    it += nb_it;
    run_iters += nb_it;
    if (dist.rank == 0 && !quiet && (now - t_last > (D.tty ? 0.5 : 30.0) || it == total)) {
      t_last = now;
      long div = 0;
      uint64_t ge = 0;
      for (int i = 0; i < D.n_local; i++) {
        jade_nuts_totals tot;
        jade_nuts_chain_totals(D.ch[i].nuts, &tot);
        div += tot.divergent + tot.divergent_warmup;
        ge += tot.grad_evals;
      }
      double rate = (it - it_start) / (now - t_start);
      char eta[32];
      jade_format_duration((total - it) / rate, eta, sizeof eta);
      fprintf(stderr, "%smcmc: %s %ld/%ld, %d chains (%d on rank 0 of %d), %.2f it/s, %.0f grad/it, %ld divergent, %s left%s",
              D.tty ? "\r" : "", it <= warmup ? "warm-up" : "sampling", it <= warmup ? it : it - warmup, it <= warmup ? warmup : samples,
              R.n_chains, D.n_local, dist.size, rate, D.n_local ? (double)ge / D.n_local / (double)it : 0.0, div, eta,
              D.tty ? "   " : "\n");
    }
    /* checkpoint: on time, at the end of warm-up, when stopping, at the end (collective) */
    int want = (now - t_ckpt > ckpt_every) || it == warmup || it == total || (max_iter && run_iters >= max_iter);
    if (jade_dist_max_int(&dist, want)) {
      st = checkpoint(&D, state_path, it, wall_prev + (now - t_start), wall_sampling);
      t_ckpt = now;
    }
    if (!st && max_iter && run_iters >= max_iter && it < total) {
      stopped = 1;
      break;
    }
  }
  if (dist.rank == 0 && !quiet && D.tty) fprintf(stderr, "\n");
  if (st) goto done;
  if (stopped) {
    if (dist.rank == 0 && !quiet)
      fprintf(stderr, "jade mcmc: stopped after --max-iterations; rerun the same command to resume %s\n", partial);
    rc = 3;
    goto done;
  }
  /* ---- outputs (rank 0, with every chain's record) ---- */
  {
    size_t rec = record_size_n(D.nuts_size, &R, samples);
    st = gather_records(&dist, D.ch, D.n_local, &R, rec, &recs);
    if (st) goto done;
    if (dist.rank == 0) {
      chain_t *all = calloc((size_t)R.n_chains, sizeof *all);
      if (!all) st = jade_error(JADE_ERR_NOMEM, "out of memory");
      for (int c = 0; c < R.n_chains && !st; c++) {
        all[c].id = c;
        all[c].mmean = malloc(sizeof(double) * R.nmap);
        all[c].mm2 = malloc(sizeof(double) * R.nmap);
        if (!all[c].mmean || !all[c].mm2) st = jade_error(JADE_ERR_NOMEM, "out of memory");
        if (!st) st = jade_fieldpost_create(&fs, &all[c].fp);
        if (!st) st = record_read(&all[c], &R, recs + rec * c, rec);
      }
      double wall = wall_prev + (jade_time_now() - t_start);
      if (!st) {
        size_t len = strlen(settings) + 256;
        char *set2 = malloc(len);
        if (set2) {
          snprintf(set2, len, "%smpi_ranks = %d\nomp_threads = %d\n", settings, dist.size, omp_get_max_threads());
          st = write_outputs(partial, &R, all, &sc, obs.noise, obs_path, set2, wall, wall_sampling, D.em, D.n_refits,
                             &health);
          free(set2);
        } else {
          st = jade_error(JADE_ERR_NOMEM, "out of memory");
        }
      }
      for (int c = 0; c < R.n_chains && all; c++) {
        jade_nuts_chain_free(all[c].nuts);
        jade_fieldpost_free(all[c].fp);
        free(all[c].mmean);
        free(all[c].mm2);
        free(all[c].rows);
      }
      free(all);
      if (!st && compare) {
        snprintf(path, sizeof path, "%s/compare.txt", partial);
        st = write_compare(partial, out, compare, path);
      }
      snprintf(path, sizeof path, "%s/state.bin", partial);
      if (!st && unlink(path) != 0) st = jade_error(JADE_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
      snprintf(path, sizeof path, "%s/run.txt", partial);
      if (!st && unlink(path) != 0) st = jade_error(JADE_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
      if (!st && rename(partial, out) != 0) st = jade_error(JADE_ERR_IO, "%s: cannot rename to %s: %s", partial, out, strerror(errno));
      if (!st && !quiet) fprintf(stderr, "jade mcmc: wrote %s (%.1f s)\n", out, wall);
      if (!st) {
        char verdict[512];
        if (jade_mcmc_health_verdict(&health, verdict, sizeof verdict)) {
          fprintf(stderr, "jade mcmc: WARNING: the chains are not usable: %s (%s/diagnostics.txt; run longer, "
                          "raise --target-accept or check the model)\n", verdict, out);
          if (strict) rc = 4;
        } else if (!quiet) {
          fprintf(stderr, "jade mcmc: chains %s\n", verdict);
        }
      }
    }
    if (jade_dist_max_int(&dist, st != JADE_OK) && !st) st = jade_error(JADE_ERR_IO, "rank 0 failed to finish %s", out);
  }
  if (!st && rc != 4) rc = 0;
done:
  if (st) rc = jade_cli_fail("mcmc");
  for (int i = 0; D.ch && i < D.n_local; i++) {
    jade_nuts_chain_free(D.ch[i].nuts);
    jade_fieldpost_free(D.ch[i].fp);
    free(D.ch[i].mmean);
    free(D.ch[i].mm2);
    free(D.ch[i].rows);
  }
  free(D.ch);
  free(nch);
  free(ctx);
  free(recs);
  free(draws);
  free(stats);
  free(kbuf);
  free(dump);
  free(ident);
  free(settings);
  jade_nuts_chain_free(tmpl);
  jade_emulator_free(D.em);
  jade_fieldpost_free(fp0);
  jade_theory_free(theory);
  jade_observation_free(&obs);
  jade_config_free(cfg);
  jade_cli_free(opts);
  jade_dist_finalize(&dist);
  return rc;
}
