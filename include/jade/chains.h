/* jade chains: posterior draws in the layout that numpy, getdist and most cosmology tools
 * read directly, written by both `jade sample` and `jade mcmc` (as ROOT = OUT/chain):
 *   ROOT.txt         first line '# weight minuslogpost NAME ...' (numpy.genfromtxt(ROOT.txt,
 *                    names=True) takes the column names from it), further '#' lines of
 *                    provenance, then one draw per row: its weight, -log posterior and the
 *                    parameters, each with %.17g (the float64 value exactly)
 *   ROOT.paramnames  'NAME  LATEX' per parameter (getdist's format; LaTeX without '$'),
 *                    a '*' after the name of a derived parameter
 *   ROOT.npy         float64 (n, 2 + n_params): the same columns, the same values
 * getdist: loadMCSamples(ROOT) reads ROOT.txt (weight in column 1, -log posterior in column
 * 2; its loader skips the '#' lines) with ROOT.paramnames.
 *
 * Every value is checked first (weights finite and >= 0, -log posterior and parameters
 * finite, names identifiers that are unique and not 'weight' / 'minuslogpost'): bad input
 * is an error naming the draw or parameter and writes nothing. Each file is written
 * atomically; when a later one fails, the ones already written are removed. */
#ifndef JADE_CHAINS_H
#define JADE_CHAINS_H
#include <stddef.h>

#include "jade/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The chain of n draws of n_params parameters into ROOT.txt, ROOT.paramnames, ROOT.npy.
 * names[n_params], latex[n_params] (one line each); the last n_derived parameters are
 * derived. Draw i has parameter j at values[i * stride + j], weight[i] (NULL: all 1) and
 * minuslogpost[i] (NULL: all 0, for samplers that give no density; say so in comment).
 * comment: provenance written as '#' lines after the names line (NULL: none; lines
 * separated by '\n', each written as '# ' + line). */
jade_status jade_chains_write(const char *root, const char *comment, int n_params, const char *const *names,
                              const char *const *latex, int n_derived, long n, const double *weight,
                              const double *minuslogpost, const double *values, size_t stride);

#ifdef __cplusplus
}
#endif
#endif
