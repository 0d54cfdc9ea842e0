/* The score network object (shared by score.c, pfode.c and dsm.c). */
#ifndef JADE_SED_SCORE_INTERNAL_H
#define JADE_SED_SCORE_INTERNAL_H
#include "sed_internal.h"

struct jade_sed_score {
  jade_sed_score_config cfg;
  double pi;         /* value of pi in the time embedding (flowfusion: float32 pi) */
  double *W_emb;     /* n_freq */
  sed_mlp net;       /* [2 n_freq + dim + n_cond] -> width x n_hidden -> dim */
  double *shift, *scale, *cshift, *cscale;
};

/* A network of the given shape with zero weights, unit scales. */
jade_status score_alloc_public(const jade_sed_score_config *cfg, jade_sed_score **out);
/* Doubles of work for sed_score_forward on n points with K tangents. */
size_t sed_score_work_size(const jade_sed_score *s, size_t n, int K);
/* Score (n x d) and, if div != NULL, div[i] = sum_k V_ik . (J V_ik) for K tangents V (n x K x d).
 * The work buffer keeps h0, z_l, h_l (see sed_score_work_size) for a backward pass. */
jade_status sed_score_forward(const jade_sed_score *s, size_t n, const double *t, const double *x,
                              const double *c, int K, const double *V, double *score, double *div,
                              double *work);
#endif
