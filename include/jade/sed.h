/* jade sed: galaxy SED fitting under a diffusion-model population prior (pop-cosmos:
 * Alsing et al. 2024 arXiv:2402.00935, Thorp et al. 2024 arXiv:2406.19437 and 2025
 * arXiv:2506.12122; spec/popcosmos.md). Everything here is float64.
 *
 * Pieces:
 *  - photometry emulators (Speculator/"Photulator", Alsing et al. 2020 ApJS 249:5, eq. 8
 *    activation with per-unit alpha, beta), one network per band, and the stellar-mass
 *    emulator, loaded from the converted pop-cosmos safetensors (models/popcosmos/);
 *  - score-based diffusion models (Song et al. 2021, ICLR, "Score-based generative modeling
 *    through SDEs"): VP / sub-VP / VE SDEs, an MLP score network on a Gaussian Fourier time
 *    embedding (flowfusion.diffusion.MLP layout), optional conditionals (the pop-cosmos
 *    uncertainty model), denoising-score-matching training;
 *  - probability-flow ODE: sampling and log-densities with the exact Jacobian trace
 *    (forward-mode, deterministic) or Hutchinson's estimator, adaptive Dormand-Prince 5(4) or
 *    fixed-step RK4, batched over many points with a step size per point;
 *  - the pop-cosmos data model (zero points, error floor, Student-t nu = 2) and a batched
 *    affine-invariant ensemble sampler (Goodman & Weare 2010) over many galaxies at once. */
#ifndef JADE_SED_H
#define JADE_SED_H
#include <stddef.h>
#include <stdint.h>

#include "jade/core.h"
#include "jade/dist.h"

#ifdef __cplusplus
extern "C" {
#endif

#define JADE_SED_NPAR 16   /* N, log10Z, logsfr_ratio1..6, dust2, dust_index, dust1_fraction,
                              lnfagn, lnagntau, gaslog10Z, gaslog10U, z */
#define JADE_SED_MAX_BANDS 64

/* Names and prior box of the 16 pop-cosmos parameters (N's bounds are not used). */
const char *jade_sed_param_name(int i);
void jade_sed_param_bounds(double lower[JADE_SED_NPAR], double upper[JADE_SED_NPAR]);

/* ---- photometry emulator ------------------------------------------------------------ */
typedef struct jade_sed_photulator jade_sed_photulator;
/* Loads a Photulator stack (layout: models/popcosmos/photulator_cosmos26.json): tensors
 * parameters_shift/scale (15,), per band "{name}.W.{k}" (in,out), ".b.k", ".alpha.k",
 * ".beta.k", ".magnitudes_shift", ".magnitudes_scale", ".f_b". Band names come from the
 * "{name}.f_b" tensors in file order unless `bands` (n_bands names) is given. */
jade_status jade_sed_photulator_load(const char *path, const char *const *bands, int n_bands,
                                     jade_sed_photulator **out);
void jade_sed_photulator_free(jade_sed_photulator *p);
int jade_sed_photulator_n_bands(const jade_sed_photulator *p);
const char *jade_sed_photulator_band(const jade_sed_photulator *p, int b);
double jade_sed_photulator_f_b(const jade_sed_photulator *p, int b); /* nanomaggies */
/* Apparent AB magnitudes mag[i * nb + b] = NN_b(theta15(theta16_i)) + N_i for n parameter
 * vectors theta16[i * 16 + j] (absmag: the same without + N, may be NULL). Thread-safe. */
jade_status jade_sed_photulator_mags(const jade_sed_photulator *p, const double *theta16, size_t n,
                                     double *mag, double *absmag);
/* Arithmetic of the emulators. F32 is ~9x faster than F64 on an AVX-512 CPU (bench_sed) and
 * agrees with it to < 2e-5 mag on the reference points (tests/test_sed_popcosmos.c). */
typedef enum {
  JADE_SED_EMU_F64 = 0,          /* float64, OpenBLAS dgemm: the reference path */
  JADE_SED_EMU_F32 = 1,          /* float32: the best SIMD kernel the CPU has (AVX-512, AVX2), else portable C */
  JADE_SED_EMU_F32_PORTABLE = 2, /* float32, portable C only (tests, comparisons) */
  JADE_SED_EMU_F32_AVX2 = 3      /* float32, the AVX2/FMA kernel even on an AVX-512 CPU (tests, comparisons) */
} jade_sed_emu_precision;
const char *jade_sed_emu_precision_name(jade_sed_emu_precision p);
/* jade_sed_photulator_mags in the given arithmetic (inputs and outputs stay float64). */
jade_status jade_sed_photulator_mags_prec(const jade_sed_photulator *p, jade_sed_emu_precision prec,
                                          const double *theta16, size_t n, double *mag, double *absmag);
/* One point, float64: its magnitudes mag[nb] and their Jacobian jac[b * 16 + j] = d mag_b /
 * d theta16_j by reverse mode through each band's network (exact, unlike finite differences). */
jade_status jade_sed_photulator_jacobian(const jade_sed_photulator *p, const double *theta16, double *mag,
                                        double *jac);
/* Vector-Jacobian product in float32 for a band-separable objective, batched over n points
 * (the best SIMD kernels the CPU has; OpenMP over chunks of points): for each band b, mag_b of every point is
 * computed, seed(ctx, b, i0, m, mag_b[m], dmag[m]) returns d objective / d mag_b for the m points
 * i0 .. i0 + m - 1 (called from several threads: it must be pure), and gtheta (n x 16) receives
 * sum_b dmag_b d mag_b / d theta16. mag (n x nb, may be NULL) gets the magnitudes. */
typedef void (*jade_sed_mag_seed_fn)(void *ctx, int band, size_t i0, size_t m, const double *mag_b, double *dmag);
jade_status jade_sed_photulator_vjp(const jade_sed_photulator *p, const double *theta16, size_t n,
                                   jade_sed_mag_seed_fn seed, void *ctx, double *mag, double *gtheta);
/* The same in the float32 arithmetic prec (F32, F32_AVX2 or F32_PORTABLE; F64 is refused). */
jade_status jade_sed_photulator_vjp_prec(const jade_sed_photulator *p, jade_sed_emu_precision prec,
                                        const double *theta16, size_t n, jade_sed_mag_seed_fn seed, void *ctx,
                                        double *mag, double *gtheta);
/* Magnitudes of band b only (mag[i] = NN_b + N_i). */
jade_status jade_sed_photulator_band_mags(const jade_sed_photulator *p, int b, const double *theta16, size_t n,
                                          double *mag);
/* f = 10^((22.5 - m)/2.5) nanomaggies; asinh magnitude with softening f_b (Lupton et al. 1999):
 * -2.5/ln10 (asinh(f/(2 f_b)) - ln(1e9/f_b)). */
double jade_sed_mag_to_flux(double mag);
double jade_sed_asinh_mag(double flux_nmgy, double f_b);

/* Stellar-mass emulator: surviving mass fraction Mfrac(theta16). */
typedef struct jade_sed_mass jade_sed_mass;
jade_status jade_sed_mass_load(const char *path, jade_sed_mass **out);
void jade_sed_mass_free(jade_sed_mass *m);
jade_status jade_sed_mass_frac(const jade_sed_mass *m, const double *theta16, size_t n, double *mfrac);
/* Distance modulus (flat LambdaCDM, H0 = 67.74, Omega_m = 0.3089, Planck 2015 TT,TE,EE+lowP+
 * lensing+ext as astropy's Planck15; radiation neglected), z > 0. */
double jade_sed_distmod(double z);
/* log10 surviving stellar mass [Msun]: (distmod(z) - N)/2.5 + log10 Mfrac. */
double jade_sed_log10_mass(const double theta16[JADE_SED_NPAR], double mfrac);

/* ---- SDEs ----------------------------------------------------------------------------- */
typedef enum { JADE_SDE_VP = 0, JADE_SDE_SUBVP = 1, JADE_SDE_VE = 2 } jade_sde_type;
typedef struct {
  jade_sde_type type;
  double beta_min, beta_max;   /* VP, sub-VP (0.1, 20) */
  double sigma_min, sigma_max; /* VE (0.01, 10) */
  double T;                    /* 1 */
  double eps;                  /* smallest time (1e-3) */
} jade_sde;
void jade_sde_default(jade_sde *s, jade_sde_type type);
/* drift f(x,t) = a(t) x; diffusion g(t)^2; marginal x_t = m(t) x_0 + s(t) eps; prior std at T. */
double jade_sde_drift_coef(const jade_sde *s, double t);
double jade_sde_g2(const jade_sde *s, double t);
void jade_sde_marginal(const jade_sde *s, double t, double *mean_coef, double *std);
double jade_sde_prior_std(const jade_sde *s);
const char *jade_sde_name(jade_sde_type t);

/* ---- score models ------------------------------------------------------------------- */
typedef enum { JADE_ACT_TANH = 0, JADE_ACT_SILU = 1 } jade_sed_activation;
/* A score network s(x, t, c) on normalised x (dim d) with optional conditionals c (nc):
 * input [sin(2 pi W t), cos(2 pi W t), x, c] (W: n_freq Gaussian Fourier frequencies),
 * hidden layers with tanh or SiLU, linear output d. If no_sigma, the output is the score;
 * otherwise score = output / std(t) (the network predicts -eps). Data space:
 * x = (y - shift)/scale, c = (cond - cond_shift)/cond_scale. */
typedef struct jade_sed_score jade_sed_score;
typedef struct {
  int dim, n_cond, n_freq, n_hidden, width;
  jade_sed_activation act;
  int no_sigma;
  double freq_std;   /* std of W (16) */
  jade_sde sde;
} jade_sed_score_config;
/* A new network with weights drawn from (seed, JADE_RNG_INIT) (PyTorch's default Linear init:
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in))), shift 0, scale 1. */
jade_status jade_sed_score_create(const jade_sed_score_config *cfg, uint64_t seed, jade_sed_score **out);
/* The pop-cosmos uncertainty model (models/popcosmos/noise_model.json layout). */
jade_status jade_sed_noise_model_load(const char *path, jade_sed_score **out);
/* jade's own format (written by jade_sed_score_save): tensors time_W, NN.k.weight (out,in),
 * NN.k.bias, shift, scale [, cond_shift, cond_scale], metadata with the config. */
jade_status jade_sed_score_load(const char *path, jade_sed_score **out);
jade_status jade_sed_score_save(const jade_sed_score *s, const char *path, const char *description);
void jade_sed_score_free(jade_sed_score *s);
const jade_sed_score_config *jade_sed_score_get_config(const jade_sed_score *s);
/* shift/scale (dim) of x; cond_shift/cond_scale (n_cond) (writable, for training set-up). */
double *jade_sed_score_shift(jade_sed_score *s);
double *jade_sed_score_scale(jade_sed_score *s);
double *jade_sed_score_cond_shift(jade_sed_score *s);
double *jade_sed_score_cond_scale(jade_sed_score *s);
/* A published pop-cosmos population model read from its PyTorch file (catalogueModel*.pt, a
 * pickled pop_cosmos CatalogueGenerator, or a pickled flowfusion PopulationModelDiffusion)
 * without executing the pickle (jade/torchpt.h): population_model.model.{W, pi, NN.k.weight,
 * NN.k.bias}, population_model.{shift, scale}, population_model.sde.{beta_min, beta_max, T,
 * epsilon} (VPSDE only), population_model.score_model.no_sigma and the class of
 * population_model.model.activation (Tanh or SiLU). Refused with a one-line error: other SDEs
 * or activations, conditional inputs, hidden layers of unequal widths, missing entries. */
typedef struct {
  char prefix[32];      /* "population_model" or "" (the file is the population model itself) */
  char activation[128]; /* class name, e.g. torch.nn.modules.activation.Tanh */
  char sde[128];        /* class name, e.g. flowfusion.diffusion.VPSDE */
  int n_layers;         /* Linear layers (hidden + output) */
  int in_features;      /* 2 n_freq + dim */
} jade_sed_pt_info;
jade_status jade_sed_score_from_pt(const char *path, jade_sed_score **out, jade_sed_pt_info *info);
/* Score at n points (each with its own time t[i]): out[i * d + j]. c: n x n_cond normalised
 * conditionals or NULL when n_cond == 0. Thread-safe. */
jade_status jade_sed_score_eval(const jade_sed_score *s, size_t n, const double *t, const double *x,
                                const double *c, double *out);

/* ---- probability-flow ODE -------------------------------------------------------------- */
/* A score field for the ODE: score (n x d) at points x (n x d), times t (n), of the points
 * with indices idx (n: which of the caller's points, e.g. to pick conditionals). If div is
 * non-NULL: K probe directions V (n x K x d; for the exact trace K = d and V = identity rows)
 * and div[i] = sum_k V_k . (J V_k), J = d score / dx (the exact trace when V = I). */
typedef jade_status (*jade_score_field)(void *ctx, size_t n, const size_t *idx, const double *t,
                                        const double *x, int K, const double *V, double *score,
                                        double *div);
/* The field of a jade_sed_score with conditionals cond[idx[i] * n_cond] (or NULL). */
typedef struct {
  const jade_sed_score *score;
  const double *cond;
} jade_sed_score_field_ctx;
jade_status jade_sed_score_field(void *ctx, size_t n, const size_t *idx, const double *t,
                                 const double *x, int K, const double *V, double *score, double *div);

typedef enum { JADE_ODE_DOPRI5 = 0, JADE_ODE_RK4 = 1 } jade_ode_method;
typedef enum { JADE_TRACE_EXACT = 0, JADE_TRACE_HUTCHINSON = 1 } jade_trace_method;
typedef struct {
  jade_ode_method method;
  double atol, rtol;        /* DOPRI5 (1e-5, 1e-5) */
  long max_steps;           /* per point (100000) */
  int n_steps;              /* RK4 steps over [eps, T] (100) */
  jade_trace_method trace;
  uint64_t seed;            /* Hutchinson probes: Rademacher from (seed, stream, point index) */
  size_t batch;             /* points integrated together (256) */
} jade_pfode_options;
void jade_pfode_options_default(jade_pfode_options *o);
/* log p_eps(x) of n points x (n x d, normalised space) under the PF-ODE of sde with the given
 * score field (Song et al. 2021, eq. 39 / App. D.2): integrate (x, delta) from t = eps to T with
 * dx/dt = a(t) x - g^2/2 s, d delta/dt = d a(t) - g^2/2 tr(J); log p = delta(T) + log N(x(T); 0,
 * prior_std^2 I). Each point has its own adaptive step (results do not depend on the batch).
 * nfe (may be NULL): total score evaluations (points x stages). xT (n x d, may be NULL): the end
 * points x(T). Parallel (OpenMP) over batches. The base density N(0, prior_std^2) stands for p_T:
 * its mismatch, ~ m(T) x(T).mean(x0) (VP: m(1) = 6.6e-3), is part of the result. */
jade_status jade_pfode_logp(const jade_sde *sde, int d, jade_score_field f, void *ctx, size_t n,
                            const double *x, const jade_pfode_options *o, double *logp, double *xT,
                            uint64_t *nfe);
/* Samples: x(T) = z (n x d, already scaled by the caller if prior_std != 1) integrated to eps. */
jade_status jade_pfode_sample(const jade_sde *sde, int d, jade_score_field f, void *ctx, size_t n,
                              const double *z, const jade_pfode_options *o, double *x, uint64_t *nfe);

/* ---- denoising score matching ----------------------------------------------------- */
typedef struct {
  long steps;          /* optimiser steps (20000) */
  int batch;           /* 256 */
  double lr;           /* Adam learning rate (1e-3, cosine decay to lr/20) */
  double weight_decay; /* 0 */
  uint64_t seed;
  int verbose;         /* progress every 1000 steps on stderr */
} jade_dsm_options;
void jade_dsm_options_default(jade_dsm_options *o);
/* Trains s on n rows y (n x dim, data space; shift/scale are set to the column means and
 * standard deviations first) with the loss of Song et al. 2021 eq. 7 with lambda = std^2:
 * E_t,x,eps |std(t) s(m x + std eps, t) + eps|^2, t ~ U(eps, T). loss_out (may be NULL):
 * mean training loss over the last 1000 steps. */
jade_status jade_dsm_train(jade_sed_score *s, const double *y, size_t n, const jade_dsm_options *o,
                           double *loss_out);
/* The DSM loss and its gradient for one batch (x0: B x dim normalised, t: B, noise: B x dim);
 * grad (n_params, may be NULL). For gradient checks. */
size_t jade_sed_score_n_params(const jade_sed_score *s);
void jade_sed_score_get_params(const jade_sed_score *s, double *p);
void jade_sed_score_set_params(jade_sed_score *s, const double *p);
jade_status jade_dsm_loss(const jade_sed_score *s, int B, const double *x0, const double *t,
                          const double *noise, double *loss, double *grad);

/* ---- population prior -------------------------------------------------------------------- */
/* pop-cosmos parameterisation: phi_0 = N, phi_j = Phi^-1((theta_j - lo_j)/(hi_j - lo_j)) for
 * j >= 1 (Phi: standard normal CDF); the diffusion model lives on x = (phi - shift)/scale. */
void jade_sed_theta_to_phi(const double *theta, double *phi);
void jade_sed_phi_to_theta(const double *phi, double *theta);
/* log |d phi / d theta| (for densities in theta): sum_{j>=1} -log(hi-lo) - log N(phi_j; 0, 1). */
double jade_sed_log_jac_phi_theta(const double *phi);

/* jade's training population (NOT the published pop-cosmos population; docs/sed.md): a
 * Prospector-alpha-like draw (Leja et al. 2019 priors) with a COSMOS2020-like selection:
 *   log10 M_formed ~ U(8, 12.5), z ~ U(0.01, 6), N = distmod(z) - 2.5 log10 M_formed,
 *   log10Z ~ U(-1.98, 0.19), logsfr_ratio_i ~ Student-t(nu 2, scale 0.3) on [-5, 5],
 *   dust2 ~ N(0.3, 1) on [0, 4], dust_index ~ U(-1, 0.4), dust1_fraction ~ N(1, 0.3) on [0, 2],
 *   lnfagn ~ U(ln 1e-5, ln 3), lnagntau ~ U(ln 5, ln 150), gaslog10Z ~ U(-2, 0.5),
 *   gaslog10U ~ U(-4, -1);
 * kept if the emulated noiseless magnitude in band select_band (IRAC ch1 = 24) is < mag_limit
 * (26). Candidate i uses Philox (seed, JADE_RNG_PRIOR) counters from i * 4096: reproducible.
 * theta: n_keep x 16; n_drawn (may be NULL): candidates drawn. */
jade_status jade_sed_population_draw(const jade_sed_photulator *p, uint64_t seed, size_t n_keep, int select_band,
                                     double mag_limit, double *theta, size_t *n_drawn);

/* ---- data model ----------------------------------------------------------------------- */
typedef struct {
  int n_bands;
  double zp[JADE_SED_MAX_BANDS];  /* multiplicative zero points (1) */
  double error_floor;             /* fractional floor added in quadrature (0) */
  double nu;                      /* Student-t degrees of freedom (2) */
} jade_sed_data_model;
void jade_sed_data_model_default(jade_sed_data_model *m, int n_bands);
/* log L = sum_b log t_nu((f_obs_b - zp_b f_b) / s_b) - log s_b, s_b^2 = sigma_b^2 + (floor zp_b
 * f_b)^2 (Thorp et al. 2024, Sec. 3.2); bands with sigma <= 0 or non-finite flux are skipped. */
double jade_sed_loglike(const jade_sed_data_model *m, const double *f_model, const double *f_obs,
                        const double *sigma);

/* ---- affine-invariant ensemble sampler -------------------------------------------------- */
/* Log densities of n points x (n x d) belonging to problems (galaxies) gal[i]: logp[i]. A NaN
 * is treated as -inf. */
typedef jade_status (*jade_ens_logp_fn)(void *ctx, size_t n, const size_t *gal, const double *x,
                                        double *logp);
typedef struct {
  int n_walkers;     /* per galaxy, even (32) */
  long n_steps;      /* iterations after burn-in (1000) */
  long n_burn;       /* discarded iterations (500) */
  int thin;          /* keep every thin-th iteration (1) */
  double a;          /* stretch scale (2) */
  double p_de;       /* probability of a differential-evolution move per walker update, else
                        stretch (0: pure stretch) */
  double p_hop;      /* among DE moves, probability of gamma = 1 (mode hopping) (0.1) */
  double gamma;      /* DE scale; 0: 2.38 / sqrt(2 d) (Nelson et al. 2014), jittered +-10% */
  double burn_tau;   /* adaptive burn-in: 0: exactly n_burn iterations; > 0: a galaxy's burn-in
                        ends at the first check (every burn_check iterations) where burn >=
                        burn_tau x tau_max (estimated on the burn-in's second half, which must
                        hold >= 10 tau_max) and tau_max changed by < 25% since the previous
                        check; n_burn is then the cap */
  long burn_check;   /* iterations between burn-in checks (100) */
  uint64_t seed;
  uint64_t first_id; /* galaxy g draws from Philox stream first_id + g (0) */
} jade_ens_options;
void jade_ens_options_default(jade_ens_options *o);
/* Per-galaxy statistics of a run (after burn-in): acceptance overall and per move kind (NaN if
 * the move was not used), the burn-in length and the tau_max estimate that ended it. */
typedef struct {
  double accept, accept_stretch, accept_de, accept_hop;
  long n_burn;
  double tau_burn;
} jade_ens_stats;
/* Runs n_gal independent ensembles (all of dimension d) together: walkers of galaxy g start
 * at x0[(g * W + w) * d + j]. chain (may be NULL): n_gal x n_keep x W x d with n_keep =
 * n_steps / thin; logp_chain likewise (n_gal x n_keep x W, may be NULL); accept[g] acceptance
 * fraction after burn-in (may be NULL). Randomness: Philox keyed by (seed, first_id + g,
 * iteration), so a galaxy's chain does not depend on the other galaxies in the batch nor on the
 * thread count (as long as f evaluates each point independently). */
jade_status jade_ens_run(jade_ens_logp_fn f, void *ctx, size_t n_gal, int d, const double *x0,
                         const jade_ens_options *o, double *chain, double *logp_chain,
                         double *accept);
/* Same, with the moves mixed: each walker update is a stretch move (Goodman & Weare 2010) or,
 * with probability p_de, a differential-evolution move y = x_k + gamma (x_i - x_j), i != j
 * from the complementary half (ter Braak 2006; Nelson et al. 2014), accepted with
 * min(1, p(y)/p(x)); stats[n_gal] (may be NULL). */
jade_status jade_ens_run_stats(jade_ens_logp_fn f, void *ctx, size_t n_gal, int d, const double *x0,
                               const jade_ens_options *o, double *chain, double *logp_chain,
                               jade_ens_stats *stats);
/* ---- Hamiltonian Monte Carlo in lockstep over many problems (src/sed/hmc.c) -------------- */
/* Log densities and their gradients at n points x (n x d) of problems prob[i]: lp[i] and
 * grad[i * d + j]. A non-finite lp is treated as -inf. */
typedef jade_status (*jade_grad_batch_fn)(void *ctx, size_t n, const size_t *prob, const double *x, double *lp,
                                          double *grad);
typedef struct {
  int n_chains;         /* per problem (4) */
  long n_warmup;        /* adaptation iterations, discarded (500) */
  long n_steps;         /* kept iterations (500) */
  int n_leapfrog;       /* leapfrog steps per transition (16); step size jittered by U(0.8, 1.2) */
  int dense_metric;     /* 0: diagonal metric; 1: dense, the regularised covariance of each slow
                           warm-up window's draws (Stan's rules), for correlated targets (0) */
  double step_size;     /* initial step size (0.1) */
  double target_accept; /* dual-averaging target of the mean acceptance (0.8) */
  uint64_t seed;
  uint64_t first_id;    /* problem g draws from Philox stream first_id + g (0) */
  /* optional: called after every hook_every-th iteration with every chain's position X
   * (n_prob x C x d), log density LPX and gradient G, which it may change consistently (e.g.
   * replica exchange between problems that are temperatures of one target) (NULL) */
  jade_status (*hook)(void *ctx, long it, size_t n_prob, int C, int d, double *X, double *LPX, double *G);
  void *hook_ctx;
  long hook_every;      /* (1) */
  /* optional ridge moves after every ridge_every-th transition, before the hook (NULL: none) */
  const struct jade_hmc_ridge *ridge;
  long ridge_every;     /* (1) */
  const double *step0;       /* optional: initial step size per problem (n_prob; NULL: step_size) */
  const double *inv_mass_chol0; /* optional, with dense_metric: lower Cholesky factor of the initial
                                   inverse metric per problem (n_prob x d x d; NULL: the diagonal
                                   inv_mass0) */
  int metric_per_chain; /* 1: inv_mass_chol0 holds one factor per chain (n_prob x n_chains x d x d),
                           kept fixed (needs n_warmup = 0) (0) */
  const uint64_t *stream_id; /* optional: Philox stream id per problem (n_prob; NULL: first_id + g) */
} jade_hmc_options;
/* Ridge moves (src/sed/hmc.c): for targets whose mass lies along a thin, curved ridge in one
 * coordinate z = x[coord] (a photometric redshift), with bumps HMC does not cross. Given a
 * profile psi*(z) (the other coordinates' optimum at fixed z) on G nodes z_k = lo + (hi - lo)
 * k / (G - 1), linear between nodes and constant beyond the end nodes, a move draws z' from q
 * (piecewise constant on the cells [z_k - h/2, z_k + h/2], h = (hi - lo)/(G - 1)) and sets
 * psi' = psi + psi*(z') - psi*(z); accepted with min(1, p(x') q(z) / (p(x) q(z'))). For a fixed
 * z' the map is a translation of psi (or affine, see chol), so the move is exact whatever the
 * profile and q (Green 1995, Biometrika 82:711); a chain outside the cells does not move. */
typedef struct jade_hmc_ridge {
  int coord;          /* the ridge coordinate, 0..d-1 */
  int n_nodes;        /* G >= 2 */
  double lo, hi;      /* the nodes' span, lo < hi */
  size_t per_profile; /* problems sharing a profile: problem p uses profile p / per_profile (1) */
  const double *node; /* n_profiles x G x d: psi*(z_k) (the coordinate coord itself is not read) */
  const double *lq;   /* n_profiles x G: log q per unit z on cell k (q integrates to 1 over the cells) */
  /* optional (NULL: a translation): n_profiles x G x d x d lower-triangular factors L(z_k) of the
   * conditional precision of psi (row and column coord are not read; positive diagonal). Then
   * the move is affine, psi' = psi*(z') + L(z')^-T L(z)^T (psi - psi*(z)) with L linear between
   * the nodes, and the acceptance gains the Jacobian prod_j L_jj(z) / L_jj(z'). */
  const double *chol;
} jade_hmc_ridge;
void jade_hmc_options_default(jade_hmc_options *o);
typedef struct {
  double accept;    /* mean acceptance probability after warm-up */
  double step_size; /* adapted step size */
  long divergent;   /* divergent transitions after warm-up */
  double ridge_accept; /* acceptance of the ridge moves after warm-up (NaN: none) */
} jade_hmc_stats;
/* Runs n_prob x n_chains chains of dimension d (1..190): chain c of problem g starts at
 * x0[(g * C + c) * d + j];
 * inv_mass0 (n_prob x d, may be NULL: ones) the initial diagonal inverse mass. Warm-up adapts a
 * step size per problem (dual averaging on the mean acceptance over its chains) and a diagonal
 * inverse mass from the draws of its chains (Stan's windows). chain (may be NULL): n_prob x
 * n_steps x C x d; stats[n_prob] (may be NULL). Every leapfrog step of all chains is one call of
 * f; the result does not depend on the batch or the thread count. */
jade_status jade_hmc_run(jade_grad_batch_fn f, void *ctx, size_t n_prob, int d, const double *x0,
                         const double *inv_mass0, const jade_hmc_options *o, double *chain, jade_hmc_stats *stats);

/* ---- Sequential Monte Carlo in lockstep over many problems (src/sed/smc.c) ---------------- */
/* For targets with several modes whose relative masses a chain cannot find by itself: particles
 * drawn from a reference density q (normalised, e.g. a mixture of the Laplace approximations at
 * the optima found) are moved along the geometric path pi_beta ∝ q^(1 - beta) pi^beta from
 * beta = 0 to 1 (Del Moral, Doucet & Jasra 2006, JRSS B 68:411): at each stage the next beta is
 * the one where the effective sample size of the incremental weights (pi / q)^(dbeta) is
 * ess_frac of the particles (adaptive tempering, Jasra et al. 2011; Chopin & Papaspiliopoulos
 * 2020, ch. 17), the particles are resampled (systematic) and moved by n_mutations HMC
 * transitions at pi_beta (jade_hmc_run: diagonal or dense mass from the particles' moments, step size
 * per problem adapted from the previous stage's acceptance). The mass moves between modes by the
 * weights, not by the chains. The log normalising constant of pi comes with it.
 * f gives, at n points x (n x d) of problems prob[i], log q, log pi (non-finite: -inf) and their
 * gradients (n x d each). */
typedef jade_status (*jade_smc_parts_fn)(void *ctx, size_t n, const size_t *prob, const double *x, double *lq,
                                         double *lpi, double *gq, double *gpi);
typedef struct {
  int n_particles;      /* per problem (128) */
  int n_mutations;      /* HMC transitions per stage (4) */
  int n_leapfrog;       /* leapfrog steps per transition (8) */
  long n_keep;          /* after beta = 1: kept HMC transitions of every particle (0: none) */
  double ess_frac;      /* next beta: ESS of the weights = ess_frac x particles (0.5) */
  int max_stages;       /* error beyond this (500) */
  double step_size;     /* first stage's step size (0.1) */
  double target_accept; /* step-size rule: step x exp(2 (accept - target)), clipped to [1/2, 2] (0.75) */
  int max_rounds;       /* per stage, up to this many rounds of n_mutations transitions: another
                           round while the particles' mean squared jump since the stage began,
                           in units of their variance and summed over coordinates, is below
                           jump_frac x d (independent redraws: 2 d) (1: one round) */
  double jump_frac;     /* (1) */
  int dense_metric;     /* 0: diagonal inverse mass from the particles' variances; 1: dense, per
                           particle the covariance of the particles outside its family (its
                           resampled ancestor's copies), correlations shrunk by n / (n + 5) (0) */
  const struct jade_hmc_ridge *ridge; /* optional ridge moves after every transition (NULL) */
  uint64_t seed;
  uint64_t first_id;    /* problem g draws from Philox streams first_id + g (0) */
  const uint64_t *stream_id; /* optional: Philox stream id per problem (n_prob; NULL: first_id + g) */
} jade_smc_options;
void jade_smc_options_default(jade_smc_options *o);
typedef struct {
  int n_stages;        /* tempering stages to beta = 1 */
  double log_z;        /* log of the normalising constant of pi (q normalised) */
  double accept;       /* mean HMC acceptance over the stages */
  double step_size;    /* last step size */
  double ridge_accept; /* acceptance of the ridge moves (NaN: none) */
  double lpi_max;      /* largest log pi over the final particles */
  double mutation_rounds; /* mean rounds of mutations per stage */
} jade_smc_stats;
/* x (n_prob x N x d): in, N draws from q per problem; out, N equally weighted draws from pi
 * (after the kept transitions, the last ones). chain (may be NULL, needs n_keep > 0): n_prob x
 * n_keep x N x d. stats[n_prob] (may be NULL). Randomness: Philox keyed by (seed + stage, stream
 * first_id + g): a problem's result does not depend on the batch or the thread count. */
jade_status jade_smc_run(jade_smc_parts_fn f, void *ctx, size_t n_prob, int d, double *x, const jade_smc_options *o,
                         double *chain, jade_smc_stats *stats);

/* Pool K independent SMC runs of one target (Whiteley, Lee & Heine 2016: independent runs
 * weighted by their evidence estimates): run k's N particles each get weight Z_k / (N sum_j Z_j),
 * and N chains are drawn from the K x N by systematic resampling (uniform u: Philox (seed,
 * stream, counter 9 x 2^54)). chain: K x n_keep x N x d (jade_smc_run's layout for K problems);
 * out: n_keep x N x d. log_z[K] in; *log_z_pool = log mean_k Z_k (an unbiased estimate of Z when
 * each Z_k is) and *spread = max_k - min_k log Z_k (NaN for K = 1): a spread above ~1 says the
 * runs did not find the same mass, i.e. at least one missed some. */
jade_status jade_smc_pool(int K, int N, int d, long n_keep, const double *log_z, const double *chain, uint64_t seed,
                          uint64_t stream, double *out, double *log_z_pool, double *spread);

/* Integrated autocorrelation time of an ensemble chain x[(i * W + w) * stride] (n steps, W
 * walkers): the autocorrelation function averaged over walkers (emcee >= 3.0), tau = 1 +
 * 2 sum_{k=1}^{M} rho_k with the smallest M >= c tau(M) (Sokal's window, c = 5). */
double jade_ens_autocorr_time(const double *x, size_t n, int W, size_t stride, double c);

/* ---- surrogate of a diffusion prior's log-density ------------------------------------------ */
/* A fast stand-in for the PF-ODE log-density of a 16-d diffusion prior, so that the ODE leaves
 * the sampler's inner loop (jade's addition, issue 13 item 7). In x = (phi - shift)/scale:
 *   log q(x) = log N(x; mu, C) + f(v, log(1 + v^2)),   v_j = (x_j - center_j) / spread_j,
 * with center, spread the median and 1.4826 x MAD of the training points, mu, C the moments of
 * those within `clip` robust sds in every coordinate (the fit's domain), and f an MLP (32 ->
 * width x layers, SiLU -> 1, output layer started at zero) fitted by least squares on the domain
 * to the residual log p(x) - log N(x; mu, C) of exact PF-ODE log-densities. The log(1 + v^2)
 * inputs let f follow heavy-tailed marginals; far out the Gaussian keeps the tails proper.
 * log q(phi) = log q(x) - sum_j log scale_j. */
typedef struct jade_sed_surrogate jade_sed_surrogate;
jade_status jade_sed_surrogate_create(int width, int layers, uint64_t seed, jade_sed_surrogate **out);
void jade_sed_surrogate_free(jade_sed_surrogate *s);
/* jade's format: tensors shift, scale, mu, L_inv (16 x 16, lower: Linv (x - mu) is white
 * under the Gaussian), center, spread, NN.k.weight, NN.k.bias; metadata format =
 * jade-sed-surrogate-1, width, layers, clip and a description. */
jade_status jade_sed_surrogate_save(const jade_sed_surrogate *s, const char *path, const char *description);
jade_status jade_sed_surrogate_load(const char *path, jade_sed_surrogate **out);
/* 1 if the safetensors file at path is a surrogate (metadata format), 0 otherwise. */
int jade_sed_is_surrogate_file(const char *path);
/* log q(phi) of n points phi (n x 16); -inf where phi is not finite. Thread-safe. */
jade_status jade_sed_surrogate_logp(const jade_sed_surrogate *s, size_t n, const double *phi, double *lp);
/* 1 if phi (16) lies in the fit's domain (every |v_j| <= clip), else 0. */
int jade_sed_surrogate_in_domain(const jade_sed_surrogate *s, const double *phi);
/* jade_sed_surrogate_grad: log q and d log q / d phi (n x 16) at n finite points. */
jade_status jade_sed_surrogate_grad(const jade_sed_surrogate *s, size_t n, const double *phi, double *lp, double *grad);
typedef struct {
  long steps;       /* Adam steps (30000) */
  int batch;        /* value points per step (256) */
  int batch_grad;   /* gradient points per step (256; unused without gradient labels) */
  double grad_weight; /* weight of the gradient term (1) */
  double lr;        /* 2e-3, cosine decay to lr/50 */
  double clip;      /* the domain: |v_j| <= clip robust sds (8) */
  uint64_t seed;
  int verbose;      /* progress every 5000 steps on stderr */
} jade_sed_surrogate_fit_options;
void jade_sed_surrogate_fit_options_default(jade_sed_surrogate_fit_options *o);
/* Training data: n points phi (n x 16) with log-densities logp (in phi), and optionally n_grad
 * points phi_grad with gradient labels dlogp = d log p / d phi (n_grad x 16; e.g. the score
 * model at t = eps, cheap: one network evaluation instead of a PF-ODE solve). */
typedef struct {
  size_t n;
  const double *phi, *logp;
  size_t n_grad;
  const double *phi_grad, *dlogp;
} jade_sed_surrogate_data;
/* Fits s: shift and scale are taken from the arguments, center and spread from the value
 * points, mu and C from the value points in the domain, then f by Adam on the loss
 *   mean_i (log q(phi_i) - logp_i)^2 + grad_weight mean_k |d log q/dx_k - t_k|^2 / 16
 * over the points in the domain (t_k = dlogp_k scale: the gradient labels in x), batches in 8
 * fixed chunks (the result does not depend on the thread count). rms (may be NULL): root-mean-
 * square value error over the domain's value points at the end; n_fit (may be NULL): how many
 * value points were in the domain. */
jade_status jade_sed_surrogate_fit(jade_sed_surrogate *s, const jade_sed_surrogate_data *d, const double shift[16],
                                   const double scale[16], const jade_sed_surrogate_fit_options *o, double *rms,
                                   size_t *n_fit);
/* That loss on one batch (Bv value points, Bg gradient points) and its gradient with respect to
 * f's parameters (for gradient checks); n_params gives the gradient's length. */
size_t jade_sed_surrogate_n_params(const jade_sed_surrogate *s);
jade_status jade_sed_surrogate_loss(const jade_sed_surrogate *s, int Bv, const double *phi, const double *logp, int Bg,
                                    const double *phig, const double *dlogp, double grad_weight, double *loss,
                                    double *grad);
void jade_sed_surrogate_get_params(const jade_sed_surrogate *s, double *p);
void jade_sed_surrogate_set_params(jade_sed_surrogate *s, const double *p);

/* ---- priors over phi and the per-galaxy posterior ----------------------------------------- */
typedef enum { JADE_SED_PRIOR_BOX = 0, JADE_SED_PRIOR_DIFFUSION = 1, JADE_SED_PRIOR_SURROGATE = 2 } jade_sed_prior_kind;
typedef struct {
  jade_sed_prior_kind kind;
  const jade_sed_score *score; /* DIFFUSION: a 16-d model over x = (phi - shift)/scale */
  const jade_sed_surrogate *surrogate; /* SURROGATE: its fast log-density stand-in */
  jade_pfode_options ode;      /* its PF-ODE options */
  double N_lo, N_hi;           /* BOX: N ~ U(N_lo, N_hi); theta_1..15 uniform on the box, i.e.
                                  phi_j ~ N(0, 1) */
} jade_sed_prior;
void jade_sed_prior_default(jade_sed_prior *p); /* BOX, N in [10, 25] */
/* log prior density of phi (n x 16): DIFFUSION: log p_x((phi - shift)/scale) - sum log scale
 * (PF-ODE); BOX: -log(N_hi - N_lo) + sum_{j>=1} log N(phi_j; 0, 1), -inf outside. */
jade_status jade_sed_prior_logp(const jade_sed_prior *pr, size_t n, const double *phi, double *lp);
/* n draws of theta from the prior (DIFFUSION: PF-ODE samples from x(T) ~ N(0, I)); Philox
 * (seed, JADE_RNG_PRIOR, first_id + i). */
jade_status jade_sed_prior_sample(const jade_sed_prior *pr, uint64_t seed, uint64_t first_id, size_t n, double *theta);
/* The same draws as phi (n x 16), before the map to theta (BOX or DIFFUSION). */
jade_status jade_sed_prior_sample_phi(const jade_sed_prior *pr, uint64_t seed, uint64_t first_id, size_t n, double *phi);

typedef struct {
  const jade_sed_photulator *phot;
  const jade_sed_prior *prior;
  jade_sed_data_model dm;
  size_t n_gal;
  const double *flux;  /* n_gal x n_bands observed fluxes (nanomaggies) */
  const double *sigma; /* n_gal x n_bands errors (<= 0 or non-finite: band missing) */
  jade_sed_emu_precision emu; /* arithmetic of the emulators (0: F64; jade_sed_fit sets its own) */
} jade_sed_posterior;
/* log posterior of phi (n x 16) for galaxies gal[i] (a jade_ens_logp_fn; ctx = posterior);
 * with the times spent in the prior and in the likelihood accumulated if ctx timing enabled. */
jade_status jade_sed_posterior_logp(void *ctx, size_t n, const size_t *gal, const double *phi, double *lp);

/* One point of galaxy g: the log posterior (as jade_sed_posterior_logp, float64 emulators) and
 * its gradient d/d phi (16), exact (reverse mode through the emulators, the Student-t
 * likelihood with zero points and error floor, phi -> theta and the prior). Box and surrogate
 * priors (the exact diffusion prior has no cheap gradient: JADE_ERR_INVALID). Outside the
 * prior's support: lp = -inf and a zero gradient. */
jade_status jade_sed_posterior_logp_grad(const jade_sed_posterior *P, size_t g, const double *phi, double *lp,
                                         double *grad);

#define JADE_SED_NQ 17 /* the 16 parameters and log10 stellar mass */
typedef struct {
  double median[JADE_SED_NQ], lo68[JADE_SED_NQ], hi68[JADE_SED_NQ]; /* 16th, 50th, 84th percentiles */
  double tau[JADE_SED_NPAR];  /* integrated autocorrelation time per parameter (steps) */
  double lo95[JADE_SED_NQ], hi95[JADE_SED_NQ]; /* 2.5th and 97.5th percentiles */
  double accept;              /* acceptance fraction */
  double accept_stretch, accept_de, accept_hop; /* per move kind (NaN: not used) */
  double accept_ridge;        /* HMC ridge moves along the redshift profile (NaN: not used) */
  long n_burn;                /* burn-in iterations (adaptive: where tau settled) */
  double tau_burn;            /* tau_max estimate that ended the burn-in */
  int n_modes;                /* distinct optima the walkers started from */
  double rhat;                /* max of the rank-normalised split R-hats of z and log10 M* over the
                                 chains (HMC) or walkers (ensemble; there only indicative): > 1.01
                                 says the chains disagree, e.g. sit in different modes */
  double logp_start;          /* log posterior at the best optimised start (SMC from the prior
                                 reference: at the best population candidate, N fitted) */
  double logp_max;            /* SMC: largest log posterior over the final particles (NaN for the
                                 other samplers); with logp_start, the best point the fit found */
  double log_z;               /* SMC: log evidence (log of the integral of prior x likelihood in
                                 phi; NaN for the other samplers) */
  double log_z_spread;        /* SMC with several runs: max - min of their log evidences (NaN
                                 otherwise); > 1 flags a galaxy whose runs found different mass */
  /* check of the prior used (a surrogate) against the exact one (NaN when not checked):
   * importance weights w = p_exact / p_used on check_draws chain points; their effective sample
   * size / draws (1: the priors agree), and the weighted minus unweighted mean of z and
   * log10 M* in units of their posterior sd (Monte Carlo noise ~ sqrt(1/ESS - 1/draws)) */
  double check_ess, check_dz, check_dm;
} jade_sed_summary;
typedef enum { JADE_SED_SAMPLER_ENSEMBLE = 0, JADE_SED_SAMPLER_HMC = 1, JADE_SED_SAMPLER_SMC = 2 } jade_sed_sampler;
/* The SMC's reference density q: OPTIMA, a mixture at the optimiser's optima (and the redshift
 * profile's nodes) with a broad component of weight smc_broad; PRIOR, the broad component alone
 * (the box prior in phi_1..15, N around the best population candidate's fitted N): no
 * optimiser, the tempering itself searches the whole prior. */
typedef enum { JADE_SED_SMC_REF_OPTIMA = 0, JADE_SED_SMC_REF_PRIOR = 1 } jade_sed_smc_reference;
typedef struct {
  jade_ens_options ens;  /* walkers 32, steps 1000, burn 500 */
  int n_init;            /* candidate starts per galaxy from jade's population, N fitted (512) */
  int n_opt;             /* hill-climbing iterations towards the MAP from each start (300) */
  int n_lm;              /* then Levenberg-Marquardt iterations (Gauss-Newton, reweighted for the
                            Student-t, forward-difference Jacobian: 17 points each) (40) */
  int n_starts;          /* independent optimisations per galaxy from the best candidates of
                            distinct redshifts (6) */
  double mode_nats;      /* optima within this many nats of the best (Laplace weight) share the
                            walkers in proportion to their Laplace weights (4) */
  double ball;           /* walkers start at mode + ball x a draw from the Laplace approximation
                            N(mode, A^-1), A the Gauss-Newton precision at the mode (0.5) */
  size_t block;          /* galaxies sampled together (16) */
  const jade_sed_prior *check_prior; /* NULL, or the exact prior behind the one fitted with
                                        (its surrogate): per-galaxy check, see jade_sed_summary */
  int check_draws;       /* chain points per galaxy for that check (64) */
  jade_sed_emu_precision emulators; /* arithmetic of the emulators in the optimiser and the
                                       chains (F32) */
  int anneal_stages;     /* before the burn-in, stages of tempered sampling (prior x likelihood^beta,
                            beta geometric from anneal_beta0 to 1): a global search (0: none) */
  int anneal_iters;      /* iterations per stage (50) */
  double anneal_beta0;   /* first stage's beta (0.01) */
  jade_sed_sampler sampler; /* ENSEMBLE (default) or HMC: then ens.n_walkers chains per galaxy,
                               ens.n_burn warm-up and ens.n_steps kept iterations (burn_tau,
                               p_de unused), float64 exact gradients; box or surrogate prior */
  int hmc_leapfrog;      /* leapfrog steps per HMC transition (16) */
  int hmc_temps;         /* HMC parallel tempering: temperatures per galaxy (1: none); chains at
                            prior x likelihood^beta_k, beta_k = hmc_beta_min^(k/(T-1)), swap
                            between neighbours (float32 emulators); the beta = 1 chains are kept */
  double hmc_beta_min;   /* (0.1) */
  long hmc_swap_every;   /* iterations between exchanges (1) */
  int hmc_dense_metric;   /* HMC: a dense metric from the warm-up (jade_hmc_options.dense_metric) (0) */
  int hmc_ridge_every;    /* HMC: iterations between ridge moves along each galaxy's redshift
                            profile (jade_hmc_ridge; 0: none) (1); SMC: 0 or ridge moves after
                            every transition, and the profile's nodes in the reference q */
  int smc_mutations;     /* SMC (jade_smc_run; ens.n_walkers particles, ens.n_steps kept transitions
                            after the last stage, hmc_leapfrog): HMC transitions per stage (4) */
  double smc_ess;        /* SMC: ESS fraction that sets each stage's temperature step (0.5) */
  double smc_broad;      /* SMC: weight of the broad component of the reference q (0.2) */
  jade_sed_smc_reference smc_reference; /* SMC: the reference q (PRIOR) */
  int smc_rounds;        /* SMC: up to this many rounds of smc_mutations transitions per stage,
                            until the particles have moved (jade_smc_options.max_rounds) (1) */
  int smc_runs;          /* SMC: independent runs per galaxy, each of ens.n_walkers particles,
                            pooled by their evidence (jade_smc_pool) (1) */
  int verbose;
} jade_sed_fit_options;
void jade_sed_fit_options_default(jade_sed_fit_options *o);
/* Fits all galaxies of post. summ[n_gal]; chain (may be NULL): float32, n_gal x n_keep x W x 17
 * (theta and log10 M*), n_keep = ens.n_steps / ens.thin, galaxy g written as soon as its block is
 * done through the callback-free layout. mass: the stellar-mass emulator (NULL: log10 M* NaN).
 * t_prior, t_like (may be NULL): seconds spent in the prior and the likelihood. */
jade_status jade_sed_fit(const jade_sed_posterior *post, const jade_sed_mass *mass, const jade_sed_fit_options *o,
                         jade_sed_summary *summ, float *chain, double *t_prior, double *t_like);

/* Mock photometry for n parameter vectors theta (n x 16): true model fluxes (n x nb, may be
 * NULL), and observed fluxes and errors from the pop-cosmos uncertainty model (Thorp et al. 2025;
 * noise_model.json "full_noise_realisation": PF-ODE sample of ln sigma given asinh magnitudes,
 * Student-t (nu 2) noise), zero points dm->zp; Philox (seed, JADE_RNG_SHAPE, first_id + i). */
jade_status jade_sed_mock_photometry(const jade_sed_photulator *phot, const jade_sed_score *noise,
                                     const jade_sed_data_model *dm, const jade_pfode_options *ode, uint64_t seed,
                                     uint64_t first_id, size_t n, const double *theta, double *flux_true,
                                     double *flux_obs, double *sigma);

/* ---- catalogues and outputs --------------------------------------------------------------- */
/* A table of n rows and named double columns (col[c][i]), written as a FITS binary table
 * (EXTNAME `extname`, one column per name; '.' in names becomes '_') atomically, or read back.
 * Text and CSV: jade_sed_table_write_text (whitespace, '#' header) and the CSV reader. */
typedef struct {
  size_t n_rows;
  int n_cols;
  char **names;
  double **col;
} jade_sed_table;
void jade_sed_table_free(jade_sed_table *t);
jade_status jade_sed_table_write_fits(const char *path, const char *extname, const jade_sed_table *t);
jade_status jade_sed_table_write_text(const char *path, const jade_sed_table *t);
/* Reads the first binary table of a FITS file (numeric columns) or a CSV file with a header row
 * (by extension: .fits/.fit/.fz, else CSV). */
jade_status jade_sed_table_read(const char *path, jade_sed_table *t);
/* Column by name (case-insensitive; '.' and '_' equal) or NULL. */
const double *jade_sed_table_column(const jade_sed_table *t, const char *name);

/* ---- pipelines (the `jade sed` commands) ----------------------------------------------- */
typedef struct {
  const char *photulator;  /* photulator_cosmos26.safetensors */
  const char *out;         /* prior .safetensors */
  size_t n_train;          /* population rows (100000) */
  uint64_t seed;
  double mag_limit;        /* IRAC ch1 limit (26) */
  jade_sed_score_config net; /* dim 16, 3 x 128 SiLU, 4 frequencies of std 16, VP */
  jade_dsm_options dsm;
  const char *table_out;   /* optional: the training population (n x 16 theta) as .npy */
} jade_sed_train_prior_options;
void jade_sed_train_prior_options_default(jade_sed_train_prior_options *o);
jade_status jade_sed_train_prior(const jade_sed_train_prior_options *o, double *final_loss);

/* `jade sed distil-prior`: a surrogate for a diffusion prior. Points: n_train + n_test draws
 * phi_i from the prior (PF-ODE samples, Philox (seed, JADE_RNG_PRIOR, i)), of which a fraction
 * tail_frac is moved to phi_i + scale * sigma_i * eps_i with sigma_i log-uniform in [sigma_lo,
 * sigma_hi] (the prior's tails, where a likelihood can pull a posterior); labels: the exact
 * PF-ODE log-density (`ode`, exact trace). The last n_test points are held out. Labels are
 * kept in `labels` (.npy, n x 18: phi, log p, the label's tolerance or 0 while not computed),
 * filled chunk by chunk, so an interrupted run resumes where it stopped; a labels file of other
 * points or another tolerance is refused. */
typedef struct {
  const char *prior;       /* score model .safetensors */
  const char *out;         /* surrogate .safetensors */
  const char *labels;      /* label cache .npy (NULL: OUT.labels.npy) */
  size_t n_train, n_test;  /* 20000, 2000 */
  double tail_frac;        /* 0.5 */
  double sigma_lo, sigma_hi; /* 0.05, 1 */
  jade_pfode_options ode;  /* labels: DOPRI5, atol = rtol = 1e-6, exact trace */
  size_t grad_copies;      /* gradient points per training point (the point and copies moved as
                              for the tails), labelled by the score at t = eps (0: none, the
                              default: on jade's prior these labels disagree with the PF-ODE
                              density near the selection edge, docs/sed.md) */
  int width, layers;       /* 128, 3 */
  jade_sed_surrogate_fit_options fit;
  uint64_t seed;
  int verbose;
} jade_sed_distil_options;
void jade_sed_distil_options_default(jade_sed_distil_options *o);
/* Errors of the surrogate against the exact labels on the held-out points in the fit's domain,
 * split into prior draws and moved (tail) points: mean (a constant offset, harmless in a
 * posterior), standard deviation (what moves a posterior), largest |error - mean|; the
 * Gaussian baseline's standard deviation alone for comparison; points outside the domain;
 * label and fit times. */
typedef struct {
  size_t n_train, n_fit, n_test_prior, n_test_tail, n_test_outside;
  double train_rms;
  double prior_mean, prior_sd, prior_max, tail_mean, tail_sd, tail_max;
  double gauss_prior_sd, gauss_tail_sd;
  size_t n_grad;            /* gradient points */
  double grad_rms, grad_norm_rms; /* held-out rms of d log q/dx - s(x, eps), and of s itself */
  double seconds_labels, seconds_fit, label_seconds_per_point;
} jade_sed_distil_report;
jade_status jade_sed_distil_prior(const jade_sed_distil_options *o, jade_sed_distil_report *rep);

typedef enum { JADE_SED_SOURCE_POPULATION = 0, JADE_SED_SOURCE_PRIOR = 1 } jade_sed_mock_source;
typedef struct {
  const char *models;      /* folder with the pop-cosmos networks */
  const char *out;         /* catalogue .fits (also .txt beside it) */
  size_t n;                /* galaxies (1000) */
  uint64_t seed;
  jade_sed_mock_source source; /* POPULATION: jade's population; PRIOR: draws from `prior` */
  jade_sed_prior prior;
  double mag_limit;        /* POPULATION selection (IRAC ch1 < 26) */
  jade_sed_data_model dm;
  jade_pfode_options noise_ode; /* uncertainty-model PF-ODE (DOPRI5 1e-5) */
} jade_sed_mock_options;
void jade_sed_mock_options_default(jade_sed_mock_options *o);
/* Catalogue columns: ID, F_<band> and E_<band> (nanomaggies) per band, TRUE_<param> (16),
 * TRUE_LOGM (log10 surviving stellar mass). */
jade_status jade_sed_mock(const jade_sed_mock_options *o);

typedef struct {
  const char *models, *catalogue, *out_prefix;
  jade_sed_prior prior;
  jade_sed_data_model dm;
  jade_sed_fit_options fit;
  int chain_thin;          /* extra thinning of the written chains (10); 0: no chain file */
  size_t max_galaxies;     /* 0: all */
  const char *prior_name;  /* the prior's file (part of the resume key; NULL: box) */
  const jade_dist *dist;   /* NULL: one process; else blocks split round-robin over ranks */
} jade_sed_fit_run_options;
void jade_sed_fit_run_options_default(jade_sed_fit_run_options *o);
/* Reads the catalogue (F_<band>, E_<band> columns; optional TRUE_Z, TRUE_LOGM), fits every
 * galaxy, writes PREFIX_summary.{fits,txt,npy} and PREFIX_chains.npy (float32, n_gal x n_keep
 * x walkers x 17: theta and log10 M*). With truth columns, the 68% coverage of z and log10 M*
 * is returned in cov_z, cov_m (NaN otherwise). Blocks of fit.block galaxies are written as
 * they finish to PREFIX_summary.partial.npy and PREFIX_chains.partial.npy (with the run's key
 * in PREFIX_fit.partial.txt): a run started again with the same options resumes at the blocks
 * not yet done, other options are refused. With dist, blocks go round-robin to the ranks
 * (collective; results identical to one process); rank 0 writes the outputs. */
typedef struct {
  size_t n_gal;
  double cov_z, cov_m;       /* 68% interval coverage of the truth (NaN without truth) */
  double seconds, t_prior, t_like;
  double tau_max_median, accept_median;
  double cov95_z, cov95_m;   /* 95% interval coverage */
  double check_ess_median;   /* with fit.check_prior: median importance ESS / draws (NaN without) */
  double check_dz_rms, check_dm_rms; /* rms over galaxies of the z and log10 M* mean shifts (sd) */
  size_t n_short;            /* galaxies whose kept chain is shorter than 50 tau_max (emcee's
                                criterion; their tau estimate and intervals are not reliable) */
  size_t n_rhat;             /* galaxies whose chains disagree: RHAT > 1.01 (Vehtari et al. 2021) */
  double rhat_median;        /* median RHAT */
  size_t n_missed;           /* mocks whose truth has a log posterior > 2 above the best point the fit
                                found (LOGP_TRUE > max(LOGP_START, LOGP_MAX) + 2): a missed mode */
} jade_sed_fit_report;
jade_status jade_sed_fit_run(const jade_sed_fit_run_options *o, jade_sed_fit_report *rep);

#ifdef __cplusplus
}
#endif
#endif
