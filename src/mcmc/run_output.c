/* Outputs of a jade mcmc run (include/jade/mcmc_run.h): the draws, the posterior mean and
 * standard deviation of the maps, the diagnostics, and the comparison with `jade sample`. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/chains.h"
#include "jade/io.h"
#include "run_internal.h"

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


typedef struct {
  long n;
  double mean[N_OUT_PAR], sd[N_OUT_PAR];
} par_summary;

/* Read a theta.txt ('#' + column names first; rows of numbers) and summarise the eight
 * parameters (Omega_m, S_8 computed when absent; a 'weight' column is used if present). */
/* A '#' line naming the columns (text after the '#'): if it names the six parameters, their
 * columns (and Omega_m, S_8, weight when present) go to col / wcol, the column count to ncols;
 * returns whether it did. */
static int read_table_header(const char *text, int col[N_OUT_PAR], int *wcol, int *ncols) {
  char tmp[8192];
  snprintf(tmp, sizeof tmp, "%s", text);
  int k = 0, c2[N_OUT_PAR], w2 = -1;
  for (int i = 0; i < N_OUT_PAR; i++) c2[i] = -1;
  for (char *tok = strtok(tmp, " \t\r\n,"); tok; tok = strtok(NULL, " \t\r\n,"), k++) {
    for (int i = 0; i < N_OUT_PAR; i++)
      if (!strcmp(tok, jade_param_names[i])) c2[i] = k;
    if (!strcmp(tok, "weight")) w2 = k;
  }
  for (int i = 0; i < JADE_N_THETA; i++)
    if (c2[i] < 0) return 0;
  memcpy(col, c2, sizeof c2);
  *wcol = w2;
  *ncols = k;
  return 1;
}

/* One data line of ncols numbers -> the N_OUT_PAR parameters (Omega_m and S_8 derived when
 * the table lacks them) and the weight (1 without a weight column). */
static jade_status read_table_row(const char *path, long lineno, char *p, const int col[N_OUT_PAR], int wcol, int ncols,
                                  double *par, double *weight) {
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
  if (*p || k != ncols) return jade_error(JADE_ERR_FORMAT, "%s: line %ld: expected %d numbers", path, lineno, ncols);
  double th[JADE_N_THETA];
  for (int i = 0; i < JADE_N_THETA; i++) th[i] = v[col[i]];
  for (int i = 0; i < JADE_N_THETA; i++) par[i] = th[i];
  par[6] = col[6] >= 0 ? v[col[6]] : jade_theta_omega_m(th);
  par[7] = col[7] >= 0 ? v[col[7]] : jade_theta_s8(th);
  *weight = wcol >= 0 ? v[wcol] : 1.0;
  if (!(*weight >= 0.0) || !isfinite(*weight)) return jade_error(JADE_ERR_FORMAT, "%s: line %ld: weight %g", path, lineno, *weight);
  for (int i = 0; i < N_OUT_PAR; i++)
    if (!isfinite(par[i])) return jade_error(JADE_ERR_FORMAT, "%s: line %ld: %s is not finite", path, lineno, jade_param_names[i]);
  return JADE_OK;
}

/* Weighted mean and sd of each of the N_OUT_PAR columns of vals (n rows): with weights the
 * population sd (as the weighted NUTS summaries), unweighted the n - 1 estimate. */
static jade_status table_moments(const char *path, const double *vals, const double *wts, long n, int weighted,
                                 par_summary *out) {
  double sw = 0.0;
  for (long i = 0; i < n; i++) sw += wts[i];
  if (!(sw > 0.0)) return jade_error(JADE_ERR_FORMAT, "%s: all weights are zero", path);
  for (int j = 0; j < N_OUT_PAR; j++) {
    double s = 0.0, v = 0.0;
    int constant = 1;
    for (long i = 0; i < n; i++) s += wts[i] * vals[(size_t)i * N_OUT_PAR + j];
    double mu = s / sw;
    for (long i = 0; i < n; i++) {
      double d = vals[(size_t)i * N_OUT_PAR + j] - mu;
      v += wts[i] * d * d;
      constant &= vals[(size_t)i * N_OUT_PAR + j] == vals[j];
    }
    out->mean[j] = constant ? vals[j] : mu;
    out->sd[j] = constant ? 0.0 : sqrt(v / sw * (weighted ? 1.0 : (double)n / (n - 1)));
  }
  out->n = n;
  return JADE_OK;
}

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
    if (*p == '#') { /* the first '#' line naming the parameters is the header */
      if (!have_header) have_header = read_table_header(p + 1, col, &wcol, &ncols);
      continue;
    }
    if (*p == '\n' || *p == 0) continue;
    if (!have_header) {
      st = jade_error(JADE_ERR_FORMAT, "%s: line %ld: data before a '#' header naming Omega_c Omega_b sigma_8 h n_s w_0", path, lineno);
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
    st = read_table_row(path, lineno, p, col, wcol, ncols, vals + (size_t)n * N_OUT_PAR, wts + n);
    n++;
  }
  fclose(f);
  if (!st && !have_header) st = jade_error(JADE_ERR_FORMAT, "%s: no '#' header naming Omega_c Omega_b sigma_8 h n_s w_0", path);
  if (!st && n < 2) st = jade_error(JADE_ERR_FORMAT, "%s: %ld draws (need at least 2)", path, n);
  if (!st) st = table_moments(path, vals, wts, n, wcol >= 0, out);
  free(vals);
  free(wts);
  return st;
}

jade_status mcmc_write_compare(const char *mcmc_dir, const char *mcmc_name, const char *sample_dir, const char *out_path) {
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
      pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "%-8s %.8g %.8g %.8g %.8g %+.5f %.5f\n", jade_param_names[j], m.mean[j], m.sd[j],
                              s.mean[j], s.sd[j], (s.mean[j] - m.mean[j]) / m.sd[j], s.sd[j] / m.sd[j]);
    else /* fixed in the NUTS run */
      pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "%-8s %.8g 0 %.8g %.8g nan nan   # fixed in the NUTS run\n", jade_param_names[j],
                              m.mean[j], s.mean[j], s.sd[j]);
  }
  return jade_write_file_atomic(out_path, buf);
}

/* All chains' rows in chain order with their importance weights normalised to mean 1, the
 * spread of the log weights and the Kish effective sample fraction. */
typedef struct {
  int C;
  long S, N;     /* draws per chain, in all */
  double *rows;  /* N x NCOL */
  double *w;     /* N */
  double lwsd, kish;
} pooled;

static jade_status pool_draws(const run_t *r, const chain_t *all, pooled *p) {
  const int C = r->n_chains;
  const long S = all[0].n_rows;
  const long N = S * C;
  memset(p, 0, sizeof *p);
  double *rows = malloc(sizeof(double) * NCOL * (size_t)N), *w = malloc(sizeof(double) * (size_t)N);
  if (!rows || !w) {
    free(rows);
    free(w);
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
  p->lwsd = sqrt(lwsd);
  p->kish = (double)N * N / sw2 / N; /* (sum w)^2 / sum w^2 / N with sum w = N */
  p->C = C;
  p->S = S;
  p->N = N;
  p->rows = rows;
  p->w = w;
  return JADE_OK;
}

/* theta.txt (with the chain index) and chain.* (jade/chains.h, the layout of jade sample) */
static jade_status write_draws(const char *dir, const pooled *p, const char *obs_path) {
  const long N = p->N, S = p->S;
  const double *rows = p->rows, *w = p->w;
  char path[4400];
  jade_status st;
  jade_text_file t;
  snprintf(path, sizeof path, "%s/theta.txt", dir);
  st = jade_text_open(path, &t);
  if (!st) {
    /* provenance first, the column names last before the data (jade report's rule) */
    fprintf(t.f, "# jade " JADE_VERSION " mcmc: %d chains x %ld post-warm-up NUTS draws; observation %s\n"
                 "# chain weight log_post Omega_c Omega_b sigma_8 h n_s w_0 Omega_m S_8\n", p->C, S, obs_path);
    for (long i = 0; i < N; i++) {
      const double *row = rows + (size_t)i * NCOL;
      fprintf(t.f, "%ld %.10g %.10g", i / S, w[i], row[C_LP]);
      for (int j = 0; j < N_OUT_PAR; j++) fprintf(t.f, " %.10g", row[j]);
      fputc('\n', t.f);
    }
    st = jade_text_commit(&t);
  }
  if (st) return st;
  /* chain.*: a draw whose exact density is not finite has weight 0 and no finite
   * -log posterior (getdist needs one): it is left out, and counted in the header */
  double *cw = malloc(sizeof(double) * (size_t)(N ? N : 1)), *mlp = malloc(sizeof(double) * (size_t)(N ? N : 1));
  double *val = malloc(sizeof(double) * N_OUT_PAR * (size_t)(N ? N : 1));
  const size_t clen = strlen(obs_path) + 1024;
  char *comment = malloc(clen);
  if (!cw || !mlp || !val || !comment) st = jade_error(JADE_ERR_NOMEM, "mcmc: out of memory for the outputs");
  if (!st) {
    long m = 0;
    for (long i = 0; i < N; i++) {
      const double *row = rows + (size_t)i * NCOL;
      if (!isfinite(row[C_LP])) continue;
      cw[m] = w[i];
      mlp[m] = -row[C_LP];
      memcpy(val + (size_t)m * N_OUT_PAR, row + C_TH, sizeof(double) * N_OUT_PAR);
      m++;
    }
    snprintf(comment, clen,
             "jade " JADE_VERSION " mcmc: %d chains x %ld post-warm-up NUTS draws, chain after chain (theta.txt: with the chain index)\n"
             "observation %s\n"
             "weight: importance weight exp(log p_exact - log p_sampled), normalised to mean 1 (1 unless --theory emulator)\n"
             "minuslogpost: -log of the exact joint density of the white-noise field and the free parameters at the draw\n"
             "(unconstrained coordinates, up to a constant); %ld draws with a non-finite density (weight 0) left out",
             p->C, S, obs_path, N - m);
    snprintf(path, sizeof path, "%s/chain", dir);
    st = jade_chains_write(path, comment, N_OUT_PAR, jade_param_names, jade_param_latex, N_OUT_PAR - JADE_N_THETA, m, cw, mlp, val,
                           N_OUT_PAR);
  }
  free(cw);
  free(mlp);
  free(val);
  free(comment);
  return st;
}

/* mean.fits, std.fits: the chains' weighted map moments merged (Chan, Golub & LeVeque 1979) */
static jade_status write_maps(const char *dir, const run_t *r, const chain_t *all, const jade_sim_config *sc, const double *noise,
                              long N, const char *obs_path) {
  const int C = r->n_chains;
  char path[4400];
  jade_status st = JADE_OK;
  float *mean_map = NULL, *std_map = NULL;
  {
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
    jade_fits_key keys[16 + JADE_MAX_BINS];
    int nk = 0;
    memset(keys, 0, sizeof keys);
#define KEYL(nm, v, cm) do { snprintf(keys[nk].name, 16, "%s", nm); keys[nk].type = JADE_KEY_LONG; keys[nk].l = (v); snprintf(keys[nk].comment, 72, "%s", cm); nk++; } while (0)
#define KEYD(nm, v, cm) do { snprintf(keys[nk].name, 16, "%s", nm); keys[nk].type = JADE_KEY_DOUBLE; keys[nk].d = (v); snprintf(keys[nk].comment, 72, "%s", cm); nk++; } while (0)
    KEYL("NBINS", sc->geom.n_bins, "tomographic bins");
    KEYL("NPIX", sc->geom.n_pix, "pixels per side");
    KEYD("SIZEDEG", sc->geom.size_deg, "side of the patch [deg]");
    KEYL("NDRAWS", N, "post-warm-up NUTS draws (all chains)");
    KEYL("NCHAINS", C, "chains");
#define KEYS(nm, v, cm) do { snprintf(keys[nk].name, 16, "%s", nm); keys[nk].type = JADE_KEY_STRING; snprintf(keys[nk].s, 72, "%.68s", v); snprintf(keys[nk].comment, 72, "%s", cm); nk++; } while (0)
    /* provenance and the WCS of the maps (the layout of jade observe: first axis to the west) */
    KEYS("OBSFILE", obs_path, "observation (first 68 characters)");
    KEYS("BUNIT", "", k ? "sd of the convergence (dimensionless)" : "convergence kappa (dimensionless)");
    KEYS("CTYPE1", "RA---CAR", "flat-sky patch");
    KEYS("CTYPE2", "DEC--CAR", "");
    KEYS("CUNIT1", "deg", "");
    KEYS("CUNIT2", "deg", "");
    KEYD("CDELT1", -sc->geom.size_deg / sc->geom.n_pix, "[deg] pixel scale");
    KEYD("CDELT2", sc->geom.size_deg / sc->geom.n_pix, "[deg] pixel scale");
#undef KEYS
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
  return st;
}

/* diagnostics.txt; fills health */
static jade_status write_diagnostics(const char *dir, const run_t *r, const chain_t *all, const pooled *p, const char *obs_path,
                                     const char *settings, double wall, double wall_sampling, const jade_emulator *em,
                                     int n_refits, jade_mcmc_health *health) {
  const int C = p->C;
  const long S = p->S, N = p->N;
  const double *rows = p->rows, *w = p->w, lwsd = p->lwsd, kish = p->kish;
  char path[4400];
  jade_text_file t;
  double *x = malloc(sizeof(double) * (size_t)(N ? N : 1));
  if (!x) return jade_error(JADE_ERR_NOMEM, "mcmc: out of memory for the outputs");
  snprintf(path, sizeof path, "%s/diagnostics.txt", dir);
  jade_status st = jade_text_open(path, &t);
  if (!st) {
    FILE *f = t.f;
    fprintf(f, "# jade " JADE_VERSION " mcmc diagnostics: field-level NUTS on the explicit log-normal model\n");
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
    health->weight_ess = kish * (double)N; /* 1 x N without importance weights */
    for (int j = 0; j < N_OUT_PAR && !st; j++) {
      for (long i = 0; i < N; i++) x[i] = rows[(size_t)i * NCOL + j];
      jade_mcmc_summary sm;
      st = jade_mcmc_summarize(x, C, (size_t)S, &sm);
      if (st) break;
      double mu, sd;
      weighted_moments(rows, N, w, j, &mu, &sd);
      int is_free = j >= JADE_N_THETA;
      for (int q = 0; q < r->n_free; q++) is_free |= r->free_idx[q] == j;
      fprintf(f, "%-8s %12.6g %12.6g %10.3g %12.6g %12.6g %12.6g %8.4f %9.1f %9.1f%s\n", jade_param_names[j], mu, sd, sm.mcse_mean, sm.q05,
              sm.q50, sm.q95, sm.rhat, sm.ess_bulk, sm.ess_tail, is_free ? "" : "   (fixed)");
      if (is_free) {
        if (isfinite(sm.rhat)) worst_rhat = fmax(worst_rhat, sm.rhat);
        if (isfinite(sm.ess_bulk)) min_bulk = fmin(min_bulk, sm.ess_bulk);
        /* the verdict sees NaN (not finite = not usable) */
        if (!(sm.rhat <= health->max_rhat)) {
          health->max_rhat = sm.rhat;
          health->worst_rhat_name = jade_param_names[j];
        }
        double e = fmin(sm.ess_bulk, sm.ess_tail);
        if (!(e >= fmin(health->min_ess_bulk, health->min_ess_tail))) health->min_ess_name = jade_param_names[j];
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
  free(x);
  return st;
}

jade_status mcmc_write_outputs(const char *dir, const run_t *r, chain_t *all, const jade_sim_config *sc,
                               const double *noise, const char *obs_path, const char *settings, double wall,
                               double wall_sampling, const jade_emulator *em, int n_refits, jade_mcmc_health *health) {
  pooled p;
  jade_status st = pool_draws(r, all, &p);
  if (!st) st = write_draws(dir, &p, obs_path);
  if (!st) st = write_maps(dir, r, all, sc, noise, p.N, obs_path);
  if (!st) st = write_diagnostics(dir, r, all, &p, obs_path, settings, wall, wall_sampling, em, n_refits, health);
  free(p.rows);
  free(p.w);
  return st;
}

jade_status jade_mcmc_compare(const char *mcmc_dir, const char *sample_dir, const jade_dist *dist) {
  jade_dist single = {0, 1, 0};
  if (!dist) dist = &single;
  char path[4400];
  jade_status st = JADE_OK;
  snprintf(path, sizeof path, "%s/theta.txt", mcmc_dir);
  if (!jade_path_exists(path)) st = jade_error(JADE_ERR_IO, "%s: exists but is not a finished jade mcmc directory (no theta.txt)", mcmc_dir);
  snprintf(path, sizeof path, "%s/compare.txt", mcmc_dir);
  if (!st && dist->rank == 0) st = mcmc_write_compare(mcmc_dir, mcmc_dir, sample_dir, path);
  if (jade_dist_max_int(dist, st != JADE_OK) && !st) st = jade_error(JADE_ERR_IO, "rank 0 failed to compare");
  return st;
}
