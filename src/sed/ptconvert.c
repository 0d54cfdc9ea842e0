/* A published pop-cosmos population prior (flowfusion PopulationModelDiffusion inside a pickled
 * pop_cosmos CatalogueGenerator, torch.save zip) -> jade's score model. The file is read by the
 * restricted reader of jade/torchpt.h (nothing in it is executed). Mapping (flowfusion
 * diffusion.py: MLP, ScoreModel, VPSDE):
 *   model.W (n_freq,)           -> time_W; model.pi (float32 buffer) -> pi
 *   model.NN.k.{weight, bias}   -> NN.k.{weight, bias} (torch Linear (out, in): y = W x + b)
 *   shift, scale (dim,)         -> shift, scale (x_norm = (phi - shift) / scale)
 *   sde (VPSDE) beta_min, beta_max, T, epsilon -> VP SDE
 *   score_model.no_sigma        -> no_sigma (False: score = MLP / sigma(t), sigma(t) = sqrt(1 -
 *                                  exp(-int beta)), the same as jade's VP std)
 *   class of model.activation   -> tanh (torch.nn.Tanh) or silu (torch.nn.SiLU) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jade/torchpt.h"
#include "score_internal.h"

static const char *class_tail(const char *cls) {
  const char *d = strrchr(cls, '.');
  return d ? d + 1 : cls;
}

/* tensor at prefix.name with the expected ndim; dims returned */
static jade_status pt_get(const jade_torchpt *pt, const char *pre, const char *name, int ndim, size_t *shape,
                          double **d) {
  char path[256];
  snprintf(path, sizeof path, "%s%s%s", pre, *pre ? "." : "", name);
  int nd;
  size_t sh[JADE_TORCHPT_MAX_DIM];
  jade_status s = jade_torchpt_tensor(pt, path, &nd, sh, d);
  if (s) return s;
  if (nd != ndim) {
    free(*d);
    *d = NULL;
    return jade_error(JADE_ERR_FORMAT, "%s: %s has %d dimensions, expected %d", jade_torchpt_path(pt), path, nd, ndim);
  }
  memcpy(shape, sh, (size_t)nd * sizeof(size_t));
  return JADE_OK;
}

static jade_status pt_num(const jade_torchpt *pt, const char *pre, const char *name, double *v) {
  char path[256];
  snprintf(path, sizeof path, "%s%s%s", pre, *pre ? "." : "", name);
  return jade_torchpt_number(pt, path, v);
}

static jade_status pt_cls(const jade_torchpt *pt, const char *pre, const char *name, char *buf, size_t n) {
  char path[256];
  snprintf(path, sizeof path, "%s%s%s", pre, *pre ? "." : "", name);
  return jade_torchpt_class(pt, path, buf, n);
}

jade_status jade_sed_score_from_pt(const char *path, jade_sed_score **out, jade_sed_pt_info *info) {
  *out = NULL;
  jade_sed_pt_info inf;
  memset(&inf, 0, sizeof inf);
  jade_torchpt *pt;
  jade_status s = jade_torchpt_open(path, &pt);
  if (s) return s;
  double *W = NULL, *w[SED_MAX_LAYERS] = {0}, *b[SED_MAX_LAYERS] = {0}, *shift = NULL, *scale = NULL;
  size_t wsh[SED_MAX_LAYERS][2], bsh[SED_MAX_LAYERS][1], nW, nshift, nscale;
  jade_sed_score *m = NULL;
  const char *pre;
  if (jade_torchpt_has(pt, "population_model.model")) pre = "population_model";
  else if (jade_torchpt_has(pt, "model.NN") && jade_torchpt_has(pt, "sde")) pre = "";
  else {
    s = jade_error(JADE_ERR_FORMAT,
                   "%s: population_model.model not found (expected a pickled pop_cosmos CatalogueGenerator or "
                   "flowfusion PopulationModelDiffusion)", path);
    goto done;
  }
  snprintf(inf.prefix, sizeof inf.prefix, "%s", pre);
  char P[40];
  snprintf(P, sizeof P, "%s%s", pre, *pre ? "." : "");
  /* SDE: VPSDE only (flowfusion's SUBVPSDE diffusion term differs from Song et al.'s; VESDE
   * stores sigma_min/max and a rescaled base) */
  if ((s = pt_cls(pt, pre, "sde", inf.sde, sizeof inf.sde))) goto done;
  if (strcmp(class_tail(inf.sde), "VPSDE")) {
    s = jade_error(JADE_ERR_FORMAT, "%s: %ssde is a %s; only VPSDE is supported", path, P, inf.sde);
    goto done;
  }
  jade_sed_score_config cfg;
  memset(&cfg, 0, sizeof cfg);
  jade_sde_default(&cfg.sde, JADE_SDE_VP);
  double no_sigma;
  if ((s = pt_num(pt, pre, "sde.beta_min", &cfg.sde.beta_min)) || (s = pt_num(pt, pre, "sde.beta_max", &cfg.sde.beta_max)) ||
      (s = pt_num(pt, pre, "sde.T", &cfg.sde.T)) || (s = pt_num(pt, pre, "sde.epsilon", &cfg.sde.eps)) ||
      (s = pt_num(pt, pre, "score_model.no_sigma", &no_sigma)))
    goto done;
  if (!(cfg.sde.T > cfg.sde.eps && cfg.sde.eps > 0 && cfg.sde.beta_min > 0 && cfg.sde.beta_max >= cfg.sde.beta_min)) {
    s = jade_error(JADE_ERR_FORMAT, "%s: bad VPSDE (beta_min %g, beta_max %g, T %g, epsilon %g)", path,
                   cfg.sde.beta_min, cfg.sde.beta_max, cfg.sde.T, cfg.sde.eps);
    goto done;
  }
  cfg.no_sigma = no_sigma != 0;
  /* activation */
  if ((s = pt_cls(pt, pre, "model.activation", inf.activation, sizeof inf.activation))) goto done;
  if (!strcmp(class_tail(inf.activation), "Tanh")) cfg.act = JADE_ACT_TANH;
  else if (!strcmp(class_tail(inf.activation), "SiLU")) cfg.act = JADE_ACT_SILU;
  else {
    s = jade_error(JADE_ERR_FORMAT, "%s: activation %s is not supported (Tanh or SiLU)", path, inf.activation);
    goto done;
  }
  /* network */
  if ((s = pt_get(pt, pre, "model.W", 1, &nW, &W))) goto done;
  int L = 0;
  char key[128];
  for (;; L++) {
    snprintf(key, sizeof key, "%smodel.NN.%d.weight", P, L);
    if (!jade_torchpt_has(pt, key)) break;
    if (L >= SED_MAX_LAYERS) {
      s = jade_error(JADE_ERR_FORMAT, "%s: more than %d layers", path, SED_MAX_LAYERS);
      goto done;
    }
    snprintf(key, sizeof key, "model.NN.%d.weight", L);
    if ((s = pt_get(pt, pre, key, 2, wsh[L], &w[L]))) goto done;
    snprintf(key, sizeof key, "model.NN.%d.bias", L);
    if ((s = pt_get(pt, pre, key, 1, bsh[L], &b[L]))) goto done;
    if (bsh[L][0] != wsh[L][0] || (L && wsh[L][1] != wsh[L - 1][0])) {
      s = jade_error(JADE_ERR_FORMAT, "%s: %smodel.NN.%d: shapes (%zu, %zu) + (%zu) do not chain", path, P, L,
                     wsh[L][0], wsh[L][1], bsh[L][0]);
      goto done;
    }
  }
  if (L < 2) {
    s = jade_error(JADE_ERR_FORMAT, "%s: %smodel.NN.%d.weight not found (need >= 2 Linear layers)", path, P, L);
    goto done;
  }
  if ((s = pt_get(pt, pre, "shift", 1, &nshift, &shift)) || (s = pt_get(pt, pre, "scale", 1, &nscale, &scale))) goto done;
  cfg.dim = (int)wsh[L - 1][0];
  cfg.n_freq = (int)nW;
  cfg.n_hidden = L - 1;
  cfg.width = (int)wsh[0][0];
  cfg.freq_std = 16.0; /* flowfusion's sigma_initialization default; metadata only */
  inf.n_layers = L;
  inf.in_features = (int)wsh[0][1];
  if (nshift != (size_t)cfg.dim || nscale != (size_t)cfg.dim) {
    s = jade_error(JADE_ERR_FORMAT, "%s: shift/scale have %zu/%zu entries, the network %d outputs", path, nshift,
                   nscale, cfg.dim);
    goto done;
  }
  if (wsh[0][1] != 2 * nW + (size_t)cfg.dim) {
    s = jade_error(JADE_ERR_FORMAT,
                   "%s: first layer takes %zu inputs, not 2 x %zu (time embedding) + %d: conditional inputs are not "
                   "supported", path, wsh[0][1], nW, cfg.dim);
    goto done;
  }
  for (int l = 1; l < L; l++)
    if (wsh[l][1] != (size_t)cfg.width) {
      s = jade_error(JADE_ERR_FORMAT, "%s: hidden layers of unequal widths (%zu, %d) are not supported", path,
                     wsh[l][1], cfg.width);
      goto done;
    }
  for (int j = 0; j < cfg.dim; j++)
    if (!(scale[j] > 0)) {
      s = jade_error(JADE_ERR_FORMAT, "%s: %sscale[%d] = %g is not positive", path, P, j, scale[j]);
      goto done;
    }
  if ((s = score_alloc_public(&cfg, &m))) {
    jade_error_context(s, "%s", path);
    goto done;
  }
  snprintf(key, sizeof key, "%smodel.pi", P);
  m->pi = 3.1415927410125732; /* float32 pi, flowfusion's buffer */
  if (jade_torchpt_has(pt, key) && (s = jade_torchpt_number(pt, key, &m->pi))) goto done;
  memcpy(m->W_emb, W, nW * sizeof(double));
  for (int l = 0; l < L; l++) {
    memcpy(m->net.W[l], w[l], wsh[l][0] * wsh[l][1] * sizeof(double));
    memcpy(m->net.b[l], b[l], bsh[l][0] * sizeof(double));
  }
  memcpy(m->shift, shift, nshift * sizeof(double));
  memcpy(m->scale, scale, nscale * sizeof(double));
  *out = m;
  m = NULL;
  if (info) *info = inf;
done:
  jade_sed_score_free(m);
  free(W);
  free(shift);
  free(scale);
  for (int l = 0; l < SED_MAX_LAYERS; l++) {
    free(w[l]);
    free(b[l]);
  }
  jade_torchpt_free(pt);
  return s;
}
