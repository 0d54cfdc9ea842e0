/* Chains in the numpy / getdist layout (include/jade/chains.h). getdist's formats: a chain
 * file has columns weight, -log(posterior), parameters; ROOT.paramnames has one 'name label'
 * per line, '*' after a derived parameter's name (getdist documentation, "Samples file
 * formats"). */
#include "jade/chains.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jade/io.h"

/* A name numpy.genfromtxt keeps as it is and getdist accepts: [A-Za-z_][A-Za-z0-9_]*. */
static int is_identifier(const char *s) {
  if (!s || !*s || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_')) return 0;
  for (; *s; s++)
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return 0;
  return 1;
}

static jade_status check_input(const char *root, int n_params, const char *const *names, const char *const *latex, int n_derived,
                               long n, const double *weight, const double *minuslogpost, const double *values, size_t stride) {
  if (!root || !root[0]) return jade_error(JADE_ERR_INVALID, "jade_chains_write: empty output root");
  if (n_params < 1 || !names || !latex || n_derived < 0 || n_derived > n_params || n < 0 || (n && !values) ||
      stride < (size_t)n_params)
    return jade_error(JADE_ERR_INVALID, "%s: jade_chains_write: invalid arguments (%d parameters, %d derived, %ld draws, stride %zu)",
                      root, n_params, n_derived, n, stride);
  for (int j = 0; j < n_params; j++) {
    if (!is_identifier(names[j]))
      return jade_error(JADE_ERR_INVALID, "%s: parameter %d: name '%s' is not an identifier ([A-Za-z_][A-Za-z0-9_]*)", root, j + 1,
                        names[j] ? names[j] : "(null)");
    if (!strcmp(names[j], "weight") || !strcmp(names[j], "minuslogpost"))
      return jade_error(JADE_ERR_INVALID, "%s: parameter %d: name '%s' is reserved for a chain column", root, j + 1, names[j]);
    for (int k = 0; k < j; k++)
      if (!strcmp(names[j], names[k]))
        return jade_error(JADE_ERR_INVALID, "%s: parameter name '%s' given twice (parameters %d and %d)", root, names[j], k + 1, j + 1);
    if (!latex[j] || strpbrk(latex[j], "\n\r"))
      return jade_error(JADE_ERR_INVALID, "%s: parameter '%s': LaTeX label missing or not on one line", root, names[j]);
  }
  for (long i = 0; i < n; i++) {
    if (weight && !(isfinite(weight[i]) && weight[i] >= 0))
      return jade_error(JADE_ERR_INVALID, "%s: draw %ld: weight %g is not finite and >= 0", root, i + 1, weight[i]);
    if (minuslogpost && !isfinite(minuslogpost[i]))
      return jade_error(JADE_ERR_INVALID, "%s: draw %ld: minuslogpost %g is not finite", root, i + 1, minuslogpost[i]);
    for (int j = 0; j < n_params; j++)
      if (!isfinite(values[(size_t)i * stride + j]))
        return jade_error(JADE_ERR_INVALID, "%s: draw %ld: %s = %g is not finite", root, i + 1, names[j], values[(size_t)i * stride + j]);
  }
  return JADE_OK;
}

/* row i: weight, -log posterior, parameters */
static void chain_row(long i, int n_params, const double *weight, const double *minuslogpost, const double *values, size_t stride,
                      double *r) {
  r[0] = weight ? weight[i] : 1.0;
  r[1] = minuslogpost ? minuslogpost[i] : 0.0;
  memcpy(r + 2, values + (size_t)i * stride, sizeof(double) * (size_t)n_params);
}

jade_status jade_chains_write(const char *root, const char *comment, int n_params, const char *const *names,
                              const char *const *latex, int n_derived, long n, const double *weight,
                              const double *minuslogpost, const double *values, size_t stride) {
  jade_status st = check_input(root, n_params, names, latex, n_derived, n, weight, minuslogpost, values, stride);
  if (st) return st;
  const size_t ncol = 2 + (size_t)n_params;
  if (strlen(root) + 16 > 4096) return jade_error(JADE_ERR_INVALID, "%.200s...: output root too long", root);
  char p_npy[4112], p_names[4112], p_txt[4112];
  snprintf(p_npy, sizeof p_npy, "%s.npy", root);
  snprintf(p_names, sizeof p_names, "%s.paramnames", root);
  snprintf(p_txt, sizeof p_txt, "%s.txt", root);
  /* ROOT.npy */
  double *a = malloc(sizeof(double) * ncol * (size_t)(n ? n : 1));
  if (!a) return jade_error(JADE_ERR_NOMEM, "%s: out of memory for %ld draws", p_npy, n);
  for (long i = 0; i < n; i++) chain_row(i, n_params, weight, minuslogpost, values, stride, a + (size_t)i * ncol);
  size_t shape[2] = {(size_t)n, ncol};
  st = jade_npy_write(p_npy, JADE_F64, 2, shape, a);
  free(a);
  if (st) return st;
  /* ROOT.paramnames */
  jade_text_file t;
  st = jade_text_open(p_names, &t);
  if (!st) {
    for (int j = 0; j < n_params; j++) fprintf(t.f, "%s%s  %s\n", names[j], j >= n_params - n_derived ? "*" : "", latex[j]);
    st = jade_text_commit(&t);
  }
  if (st) {
    unlink(p_npy);
    return st;
  }
  /* ROOT.txt */
  st = jade_text_open(p_txt, &t);
  if (!st) {
    fprintf(t.f, "# weight minuslogpost");
    for (int j = 0; j < n_params; j++) fprintf(t.f, " %s", names[j]);
    fputc('\n', t.f);
    for (const char *c = comment; c && *c;) {
      const char *e = strchr(c, '\n');
      int len = e ? (int)(e - c) : (int)strlen(c);
      fprintf(t.f, "# %.*s\n", len, c);
      c += len + (e != NULL);
    }
    double *r = malloc(sizeof(double) * ncol);
    if (!r) {
      jade_text_abort(&t);
      st = jade_error(JADE_ERR_NOMEM, "%s: out of memory", p_txt);
    } else {
      for (long i = 0; i < n; i++) {
        chain_row(i, n_params, weight, minuslogpost, values, stride, r);
        for (size_t j = 0; j < ncol; j++) fprintf(t.f, "%.17g%c", r[j], j + 1 == ncol ? '\n' : ' ');
      }
      free(r);
      st = jade_text_commit(&t);
    }
  }
  if (st) {
    unlink(p_npy);
    unlink(p_names);
  }
  return st;
}
