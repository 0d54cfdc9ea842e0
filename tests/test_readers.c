/* Regression tests for the reader / parser faults found by fuzzing and bad-input probing
 * (issue 10), one per finding; each input used to crash, hang or be silently accepted:
 * - FITS image whose NAXIS1 x NAXIS2 x NAXIS3 x 4 overflows size_t (heap overflow);
 * - truth map with the observation's NAXIS1/NAXIS3 but another NAXIS2 (over-read);
 * - model metadata with huge img_size / patch (int overflow) and norm_eps 1e300 (inf);
 * - a config path that is a FIFO (hang);
 * - "--seed ' -1'" (wrapped), junk after a prior's numbers, 1e-400 (read as 0), a --set
 *   value with '#' (config.ini no longer parses), Omega_b = 0 (accepted until after the
 *   output folder existed), prior draws outside the validity rule of jade cosmo;
 * - messages quoting untrusted text with a newline (must stay one line).
 * The mcmc state, training state / data and report cases run the CLI:
 * tests/test_readers_cli.sh. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jade/config.h"
#include "jade/io.h"
#include "jade/observation.h"
#include "jade/safetensors.h"
#include "jade/sim.h"
#include "jade/train.h"
#include "test_files.h"
#include "test_util.h"

/* The last error names `what` (a file, key or value) and is one line. */
static void check_error_names(jade_status st, const char *what) {
  CHECK(st != JADE_OK, "expected an error naming '%s'", what);
  const char *m = jade_last_error();
  CHECK(strstr(m, what) != NULL, "error '%s' does not name '%s'", m, what);
  CHECK(strchr(m, '\n') == NULL, "error is not one line: '%s'", m);
  jade_clear_error();
}

/* ---- FITS -------------------------------------------------------------------------- */
/* One 2880-byte FITS header block from 80-column cards (END appended). */
static void fits_block(FILE *f, const char *const *cards, int n) {
  char block[2880];
  memset(block, ' ', sizeof block);
  for (int i = 0; i < n; i++) memcpy(block + 80 * i, cards[i], strlen(cards[i]));
  memcpy(block + 80 * n, "END", 3);
  fwrite(block, 1, sizeof block, f);
}

static void test_fits_size_overflow(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/huge.fits", test_dir);
  FILE *f = fopen(path, "wb");
  const char *prim[] = {"SIMPLE  =                    T", "BITPIX  =                    8",
                        "NAXIS   =                    0", "EXTEND  =                    T"};
  /* 4611686018427387920 x 4 bytes = 2^64 + 64: a 64-byte buffer before the fix */
  const char *ext[] = {"XTENSION= 'IMAGE   '", "BITPIX  =                  -32", "NAXIS   =                    1",
                       "NAXIS1  =  4611686018427387920", "PCOUNT  =                    0",
                       "GCOUNT  =                    1", "EXTNAME = 'KAPPA   '"};
  fits_block(f, prim, 4);
  fits_block(f, ext, 7);
  char zero[2880] = {0};
  fwrite(zero, 1, sizeof zero, f);
  fclose(f);
  int naxis;
  long dims[3];
  float *img = NULL;
  check_error_names(jade_fits_read_image(path, "KAPPA", &naxis, dims, &img), path);
  CHECK(img == NULL, "no image on error");
  jade_observation obs;
  check_error_names(jade_observation_read(path, &obs), path);
  double th[JADE_N_THETA];
  float *k = NULL;
  int nb, np;
  jade_status st = jade_observation_read_truth(path, th, &k, &nb, &np);
  CHECK(st != JADE_OK && k == NULL, "truth reader must refuse it");
  jade_clear_error();
  /* 3-D: 2^21 x 2^21 x 2^21 pixels: the product overflows size_t */
  snprintf(path, sizeof path, "%s/huge3.fits", test_dir);
  f = fopen(path, "wb");
  const char *ext3[] = {"XTENSION= 'IMAGE   '", "BITPIX  =                  -32", "NAXIS   =                    3",
                        "NAXIS1  =              2097152", "NAXIS2  =              2097152",
                        "NAXIS3  =              2097152", "PCOUNT  =                    0",
                        "GCOUNT  =                    1", "EXTNAME = 'KAPPA   '"};
  fits_block(f, prim, 4);
  fits_block(f, ext3, 9);
  fwrite(zero, 1, sizeof zero, f);
  fclose(f);
  check_error_names(jade_fits_read_image(path, "KAPPA", &naxis, dims, &img), path);
}

/* Truth file: KAPPA of dims (nx, ny, nz) with the theta keys. */
static void write_truth(const char *path, long nx, long ny, long nz) {
  static const char *const tkeys[JADE_N_THETA] = {"OMEGA_C", "OMEGA_B", "SIGMA_8", "H", "N_S", "W_0"};
  const double tv[JADE_N_THETA] = {0.26, 0.049, 0.83, 0.67, 0.96, -1.0};
  jade_fits_key keys[JADE_N_THETA];
  memset(keys, 0, sizeof keys);
  for (int i = 0; i < JADE_N_THETA; i++) {
    snprintf(keys[i].name, sizeof keys[i].name, "%s", tkeys[i]);
    keys[i].type = JADE_KEY_DOUBLE;
    keys[i].d = tv[i];
  }
  float *px = calloc((size_t)(nx * ny * nz), sizeof *px);
  jade_fits_writer *w;
  CHECK_OK(jade_fits_writer_open(path, &w));
  long dims[3] = {nx, ny, nz};
  CHECK_OK(jade_fits_writer_add_image(w, "KAPPA", 3, dims, px, keys, JADE_N_THETA));
  CHECK_OK(jade_fits_writer_close(w));
  free(px);
}

static void test_truth_shape(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/t_truth.fits", test_dir);
  double th[JADE_N_THETA];
  float *k = NULL;
  int nb = 0, np = 0;
  write_truth(path, 8, 8, 2);
  CHECK_OK(jade_observation_read_truth(path, th, &k, &nb, &np));
  CHECK(nb == 2 && np == 8 && th[0] == 0.26, "truth read back: %d bins, %d pixels", nb, np);
  free(k);
  /* right NAXIS1 and NAXIS3, another NAXIS2: callers would read 8 x 8 x 2 pixels of 8 x 6 x 2 */
  write_truth(path, 8, 6, 2);
  k = NULL;
  check_error_names(jade_observation_read_truth(path, th, &k, &nb, &np), path);
  CHECK(k == NULL, "no map on error");
}

/* ---- model metadata ---------------------------------------------------------------- */
static jade_status meta_model(const char *path, const char *key, const char *value, jade_model_config *mc) {
  jade_model_config c;
  jade_model_config_small(&c);
  c.channels = c.cond_channels = 2;
  char v[17][64];
  const char *keys[17] = {"model.img_size", "model.channels", "model.cond_channels", "model.patch", "model.cond_patch",
                          "model.depth", "model.width", "model.heads", "model.n_cosmo_tokens", "model.n_params",
                          "model.mlp_hidden", "model.bottleneck", "model.time_freq", "model.max_period",
                          "model.rope_theta", "model.norm_eps", "model.dropout"};
  const int iv[13] = {c.img_size, c.channels, c.cond_channels, c.patch, c.cond_patch, c.depth, c.width, c.heads,
                      c.n_cosmo_tokens, c.n_params, c.mlp_hidden, c.bottleneck, c.time_freq};
  for (int i = 0; i < 13; i++) snprintf(v[i], sizeof v[i], "%d", iv[i]);
  snprintf(v[13], sizeof v[13], "%.9g", (double)c.max_period);
  snprintf(v[14], sizeof v[14], "%.9g", (double)c.rope_theta);
  snprintf(v[15], sizeof v[15], "%.9g", (double)c.norm_eps);
  snprintf(v[16], sizeof v[16], "%.9g", (double)c.dropout);
  jade_st_meta m[17];
  for (int i = 0; i < 17; i++) m[i] = (jade_st_meta){keys[i], !strcmp(keys[i], key) ? value : v[i]};
  CHECK_OK(jade_safetensors_write(path, NULL, 0, m, 17));
  jade_safetensors *st;
  CHECK_OK(jade_safetensors_read(path, &st));
  jade_status s = jade_model_config_from_meta(st, mc);
  jade_safetensors_free(st);
  return s;
}

static void test_model_metadata(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/m.safetensors", test_dir);
  jade_model_config mc;
  CHECK_OK(meta_model(path, "", "", &mc));
  CHECK(mc.img_size == 32 && mc.patch == 4, "metadata read back");
  /* (img_size / patch)^2 tokens and patch^2 x channels used to overflow int */
  check_error_names(meta_model(path, "model.img_size", "1048576", &mc), "too large");
  check_error_names(meta_model(path, "model.patch", "65536", &mc), "model");
  /* 1e300 does not fit in a float (it became inf) */
  check_error_names(meta_model(path, "model.norm_eps", "1e300", &mc), "model.norm_eps");
  check_error_names(meta_model(path, "model.norm_eps", "5", &mc), "norm_eps");
  jade_model_config c;
  jade_model_config_small(&c);
  c.img_size = 1 << 20;
  c.patch = 1;
  c.cond_patch = 1;
  check_error_names(jade_model_config_check(&c), "too large");
}

/* ---- config ------------------------------------------------------------------------ */
static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "test_readers: reading a FIFO config hung\n";
  if (write(2, msg, sizeof msg - 1) < 0) _exit(2);
  _exit(1);
}

static void test_config_fifo(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/fifo.ini", test_dir);
  CHECK(mkfifo(path, 0600) == 0, "mkfifo: %s", strerror(errno));
  signal(SIGALRM, on_alarm);
  alarm(20);
  jade_config *cfg;
  CHECK_OK(jade_config_create(&cfg));
  check_error_names(jade_config_load_file(cfg, path), path);
  check_error_names(jade_config_load_file(cfg, test_dir), test_dir); /* a directory */
  alarm(0);
  jade_config_free(cfg);
}

static void test_strict_numbers(void) {
  uint64_t u = 0;
  check_error_names(jade_parse_u64("--seed", " -1", UINT64_MAX, &u), "--seed");
  check_error_names(jade_parse_u64("--seed", "-1", UINT64_MAX, &u), "-1");
  check_error_names(jade_parse_u64("--seed", "+1", UINT64_MAX, &u), "+1");
  check_error_names(jade_parse_u64("--seed", "18446744073709551616", UINT64_MAX, &u), "18446744073709551616");
  check_error_names(jade_parse_u64("--seed", "2147483648", (1ull << 31) - 1, &u), "2147483648");
  check_error_names(jade_parse_u64("--seed", "7x", UINT64_MAX, &u), "7x");
  CHECK_OK(jade_parse_u64("--seed", "18446744073709551615", UINT64_MAX, &u));
  CHECK(u == UINT64_MAX, "max seed");
  double d = -1;
  check_error_names(jade_parse_double("x", "1e-400", &d), "1e-400");
  check_error_names(jade_parse_double("x", "-1e-400", &d), "-1e-400");
  check_error_names(jade_parse_double("x", "4e-320", &d), "4e-320"); /* subnormal */
  check_error_names(jade_parse_double("x", "1e400", &d), "1e400");
  check_error_names(jade_parse_double("x", "nan", &d), "nan");
  check_error_names(jade_parse_double("x", " 1", &d), "x");
  CHECK_OK(jade_parse_double("x", "0", &d));
  CHECK(d == 0, "zero is fine");
  CHECK_OK(jade_parse_double("x", "-2.5e-300", &d));
  CHECK(d == -2.5e-300, "small normal number");
}

static jade_config *small_config(void) {
  jade_config *cfg;
  CHECK_OK(jade_config_create(&cfg));
  CHECK_OK(jade_config_load_preset(cfg, "small"));
  return cfg;
}

static void test_config_values(void) {
  jade_sim_config sc;
  /* junk after a prior's numbers */
  jade_config *cfg = small_config();
  CHECK_OK(jade_config_set(cfg, "prior_h=normal 0.7 0.1 junk"));
  check_error_names(jade_sim_config_read(cfg, &sc), "prior_h");
  jade_config_free(cfg);
  cfg = small_config();
  CHECK_OK(jade_config_set(cfg, "prior_h=normal 0.7 0.1 0.2"));
  check_error_names(jade_sim_config_read(cfg, &sc), "prior_h");
  jade_config_free(cfg);
  cfg = small_config();
  CHECK_OK(jade_config_set(cfg, "prior_h=normal 0.7 0.1x"));
  check_error_names(jade_sim_config_read(cfg, &sc), "prior_h");
  jade_config_free(cfg);
  /* underflow in a value and in a prior */
  cfg = small_config();
  CHECK_OK(jade_config_set(cfg, "sigma_e=1e-400"));
  check_error_names(jade_sim_config_read(cfg, &sc), "sigma_e");
  jade_config_free(cfg);
  cfg = small_config();
  CHECK_OK(jade_config_set(cfg, "prior_h=normal 0.7 1e-400"));
  check_error_names(jade_sim_config_read(cfg, &sc), "prior_h");
  jade_config_free(cfg);
  /* the built-in configuration still reads (inf bound of the Omega_c prior) */
  cfg = small_config();
  CHECK_OK(jade_sim_config_read(cfg, &sc));
  CHECK(isinf(sc.prior[0].hi) && sc.prior[0].lo == 0, "truncnormal 0.2664 0.2 0.0 inf");
  /* '#' or control characters in --set: config.ini (the dump) would not parse back */
  check_error_names(jade_config_set(cfg, "train.run_name=a#b"), "#");
  check_error_names(jade_config_set(cfg, "h=0.7\n[train]"), "h");
  CHECK_OK(jade_config_set(cfg, "h=0.71"));
  char *dump = jade_config_dump(cfg);
  jade_config *back;
  CHECK_OK(jade_config_create(&back));
  CHECK_OK(jade_config_load_string(back, dump, "dump"));
  char *dump2 = jade_config_dump(back);
  CHECK(!strcmp(dump, dump2), "the recorded configuration must round-trip");
  free(dump);
  free(dump2);
  jade_config_free(back);
  jade_config_free(cfg);
  /* Omega_b = 0: refused by the configuration check (before any output exists) */
  cfg = small_config();
  CHECK_OK(jade_config_set(cfg, "Omega_b=0"));
  check_error_names(jade_sim_config_read(cfg, &sc), "Omega_b");
  jade_config_free(cfg);
  /* a message quoting a value with a newline stays one line */
  jade_error(JADE_ERR_CONFIG, "value '%s'", "a\nb\rc");
  CHECK(!strchr(jade_last_error(), '\n') && !strchr(jade_last_error(), '\r'), "one-line error");
  jade_clear_error();
}

/* One validity rule: the config check (jade cosmo) and the prior draws (jade simulate). */
static void test_theta_rule(void) {
  double th[JADE_N_THETA] = {0.26, 0.049, 0.83, 0.67, 0.96, -1.0};
  CHECK_OK(jade_theta_check(th));
  th[0] = 1.016;
  check_error_names(jade_theta_check(th), "Omega_c");
  th[0] = 0.26;
  th[1] = 0;
  check_error_names(jade_theta_check(th), "Omega_b");
  th[1] = 0.2;
  th[0] = 0.8;
  check_error_names(jade_theta_check(th), "Omega_c + Omega_b");
  jade_config *cfg = small_config();
  jade_sim_config sc;
  CHECK_OK(jade_config_set(cfg, "Omega_c=1.016"));
  check_error_names(jade_sim_config_read(cfg, &sc), "Omega_c");
  jade_config_free(cfg);
  /* a prior reaching past Omega_c = 1: every draw obeys the rule; a draw that was valid is
   * unchanged (the first six uniforms of its stream) */
  cfg = small_config();
  CHECK_OK(jade_config_set(cfg, "prior_Omega_c=uniform 0.5 1.5"));
  CHECK_OK(jade_sim_config_read(cfg, &sc));
  jade_config_free(cfg);
  int redrawn = 0;
  for (uint64_t i = 0; i < 2000; i++) {
    jade_prior_draw(&sc, 7, i, th);
    CHECK(!jade_theta_check(th), "draw %llu: %s", (unsigned long long)i, jade_last_error());
    CHECK(isfinite(jade_prior_logpdf(&sc, th)), "valid draw outside the prior");
    double u[JADE_N_THETA];
    jade_rng_uniform_fill(7, JADE_STREAM(JADE_RNG_PRIOR, i), 0, JADE_N_THETA, u);
    redrawn += th[0] != 0.5 + u[0] * 1.0;
  }
  /* P(Omega_c > 1 - Omega_b) ~ 0.55 under uniform(0.5, 1.5): about half the draws redrawn */
  CHECK(redrawn > 900 && redrawn < 1300, "%d of 2000 draws redrawn", redrawn);
  th[0] = 1.016;
  th[1] = 0.049;
  CHECK(isinf(jade_prior_logpdf(&sc, th)), "invalid theta has zero prior density");
  /* a prior with (almost) nothing in the valid range is refused */
  cfg = small_config();
  CHECK_OK(jade_config_set(cfg, "prior_Omega_c=uniform 1.05 1.5"));
  check_error_names(jade_sim_config_read(cfg, &sc), "prior_Omega_c");
  jade_config_free(cfg);
}

int main(void) {
  test_dir_create("readers");
  test_fits_size_overflow();
  test_truth_shape();
  test_model_metadata();
  test_config_fifo();
  test_strict_numbers();
  test_config_values();
  test_theta_rule();
  TEST_RETURN();
}
