/* jade differentiable log-normal maps: the map construction of jade_lognormal_prepare /
 * jade_lognormal_draw (sbi_lens algorithm, conventions in src/lensing/lognormal.c) written as
 * an explicit function kappa(z; C_ell table, lambda) of the white noise z, with its
 * vector-Jacobian product (reverse mode) with respect to z, the C_ell table and lambda.
 *
 * Same construction, step by step (simulator.md "Correlated log-normal fields"):
 *   P^{ij}(k) = C^{ij}(l_k) (N/L)^2 (log-log table interpolation, jade_cl_interp), P(0) = 0
 *   xi^{ij} = ifft2(P^{ij});  xi_G^{ij} = ln(1 + a_ij xi^{ij} / (lambda_i lambda_j)),
 *     a_ij = exp(mean over the grid of xi_G^{ij}) (fixed point, lognormal.c step 2)
 *   P_G^{ij} = Re fft2(xi_G^{ij}), P_G(0) = 0;  R(k) = P_G(k)^{1/2} (symmetric root,
 *     negative eigenvalues clipped to 0)
 *   g_i = ifft2(sum_j R_ij(k) fft2(z_j));  kappa_i = lambda_i (exp(g_i - var_i / 2) - 1),
 *     var_i = (1/N^2) sum_k [R(k)^2]_ii (theory) or the pixel variance of g_i (empirical).
 * With z = the simulator's white noise for (seed, stream) (jade_rng_normal_fill, element
 * b N^2 + y N + x) the map equals jade_lognormal_draw's to rounding (tests/test_mcmc_field.c).
 *
 * Reverse mode (derivations in src/lensing/lognormal_grad.c): the colouring z -> g is
 * self-adjoint (real even kernels, symmetric R), so dL/dz is one more colouring of dL/dg;
 * dL/dR(k) is (1/N^2) Re(fft2(z_j) conj(fft2(dL/dg_i))) summed over each symmetry class;
 * the symmetric square root is differentiated in its eigenbasis (Daleckii & Krein 1965;
 * Higham, "Functions of Matrices", SIAM 2008, Thm. 3.11): dR = V (F o (V^T dP V)) V^T with
 * the divided differences F_ab = (f(s_a) - f(s_b)) / (s_a - s_b), f(s) = sqrt(max(s, 0)),
 * i.e. 1 / (sqrt s_a + sqrt s_b) for two positive eigenvalues, sqrt(s_a) / (s_a - s_b) when
 * only s_a > 0, 0 when both are clipped; the FFTs of steps 1-3 are transposed by FFTs; the
 * fixed point a_ij by the implicit function theorem.
 *
 * Cost per forward + reverse pass: 2 n_pairs + 2 n_bins FFTs each way (n x n, real), and one
 * n_bins x n_bins eigen-decomposition per symmetry class (~n^2 / 8 classes). */
#ifndef JADE_LOGNORMAL_GRAD_H
#define JADE_LOGNORMAL_GRAD_H
#include "jade/lensing.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct jade_lngrad jade_lngrad;

/* One per thread (FFTW plans and work buffers; create/free are serialised internally). */
jade_status jade_lngrad_create(const jade_map_geometry *g, jade_ln_variance variance,
                               jade_lngrad **out);
void jade_lngrad_free(jade_lngrad *lg);

/* The theory for the next forward passes, with the arguments and errors of
 * jade_lognormal_prepare (cl[i_ell * n_pairs + pair], ell increasing > 0, lambda > 0;
 * JADE_ERR_NUMERIC when a correlation falls below -lambda_i lambda_j: no log-normal field
 * exists there). Keeps what the reverse pass needs. */
jade_status jade_lngrad_prepare(jade_lngrad *lg, int n_ell, const double *ell, const double *cl,
                                const double *lambda);

/* kappa [n_bins][N][N] (double) from white noise z [n_bins][N][N]; keeps the intermediates
 * of this z for jade_lngrad_backward. Non-finite kappa is JADE_ERR_NUMERIC. */
jade_status jade_lngrad_forward(jade_lngrad *lg, const double *z, double *kappa);

/* Reverse pass of the last forward: given kappa_bar = dL/dkappa, writes dL/dz into z_bar
 * (n_bins N^2, or NULL) and, when cl_bar is not NULL, dL/d(cl table) into cl_bar
 * (n_ell x n_pairs, same layout as prepare's cl) and dL/dlambda into lambda_bar (n_bins).
 * Outputs are overwritten, not accumulated. */
jade_status jade_lngrad_backward(jade_lngrad *lg, const double *kappa_bar, double *z_bar,
                                 double *cl_bar, double *lambda_bar);

/* After a successful prepare: var_i of the theory option (NaN otherwise), the factor a_ij
 * (as jade_lognormal_cl_scale) and the fraction of sum_k tr P_G(k) removed by clipping. */
double jade_lngrad_gaussian_variance(const jade_lngrad *lg, int bin);
double jade_lngrad_cl_scale(const jade_lngrad *lg, int i, int j);
double jade_lngrad_clipped_fraction(const jade_lngrad *lg);
/* Number of real FFTs (n x n, r2c or c2r) in one forward + reverse pass with the theory
 * part (the count the benchmark compares with). */
int jade_lngrad_fft_count(const jade_lngrad *lg);

#ifdef __cplusplus
}
#endif
#endif
