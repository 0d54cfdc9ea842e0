/* Core: Philox4x32-10 known-answer vectors (Random123's kat_vectors), counter-based
 * independence of the draw from how it is requested, normal moments, and the config reader
 * (sections, overrides, errors, unused-key detection). */
#include <math.h>
#include <string.h>

#include "jade/config.h"
#include "jade/core.h"
#include "test_util.h"

static void test_philox_kat(void) {
  /* Random123 kat_vectors: philox4x32 10 rounds. */
  const uint32_t ctr[3][4] = {{0, 0, 0, 0},
                              {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                              {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}};
  const uint32_t key[3][2] = {{0, 0}, {0xffffffffu, 0xffffffffu}, {0xa4093822u, 0x299f31d0u}};
  const uint32_t want[3][4] = {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u},
                               {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu},
                               {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}};
  for (int t = 0; t < 3; t++) {
    uint32_t out[4];
    jade_philox4x32(ctr[t], key[t], out);
    for (int i = 0; i < 4; i++) CHECK(out[i] == want[t][i], "kat %d word %d: %08x vs %08x", t, i, out[i], want[t][i]);
  }
}

static void test_counter_independence(void) {
  enum { N = 1001 };
  static double all[N], part[N];
  jade_rng_normal_fill(42, JADE_STREAM(JADE_RNG_TEST, 3), 0, N, all);
  /* The same elements requested in odd-sized pieces at odd offsets. */
  size_t pos = 0;
  while (pos < N) {
    size_t n = 1 + (pos * 7) % 13;
    if (pos + n > N) n = N - pos;
    jade_rng_normal_fill(42, JADE_STREAM(JADE_RNG_TEST, 3), pos, n, part + pos);
    pos += n;
  }
  CHECK(memcmp(all, part, sizeof all) == 0, "normal draws depend on how they were requested");
  CHECK(jade_rng_normal(42, JADE_STREAM(JADE_RNG_TEST, 3), 500) == all[500], "single draw differs");
  float f[N];
  jade_rng_normal_fill_f(42, JADE_STREAM(JADE_RNG_TEST, 3), 0, N, f);
  CHECK(f[777] == (float)all[777], "float draw differs from double draw");
  /* Different streams and seeds differ. */
  CHECK(jade_rng_normal(42, JADE_STREAM(JADE_RNG_TEST, 4), 0) != all[0], "streams not independent");
  CHECK(jade_rng_normal(43, JADE_STREAM(JADE_RNG_TEST, 3), 0) != all[0], "seeds not independent");
}

static void test_moments(void) {
  enum { N = 400000 };
  double *x = malloc(sizeof(double) * N);
  jade_rng_normal_fill(7, JADE_STREAM(JADE_RNG_TEST, 0), 0, N, x);
  double m = 0, v = 0, s = 0, k = 0;
  for (int i = 0; i < N; i++) m += x[i];
  m /= N;
  for (int i = 0; i < N; i++) {
    double d = x[i] - m;
    v += d * d;
    s += d * d * d;
    k += d * d * d * d;
  }
  v /= N;
  s /= N * pow(v, 1.5);
  k = k / (N * v * v) - 3;
  /* standard errors: mean 1/sqrt(N) = 1.6e-3, var sqrt(2/N) = 2.2e-3, skew sqrt(6/N) = 3.9e-3,
   * excess kurtosis sqrt(24/N) = 7.7e-3; allow 5 sigma. */
  CHECK_LT(fabs(m), 8e-3, "mean %g", m);
  CHECK_LT(fabs(v - 1), 1.1e-2, "variance %g", v);
  CHECK_LT(fabs(s), 2e-2, "skewness %g", s);
  CHECK_LT(fabs(k), 4e-2, "excess kurtosis %g", k);
  double u[N / 4];
  jade_rng_uniform_fill(7, JADE_STREAM(JADE_RNG_TEST, 1), 0, N / 4, u);
  double um = 0, umin = 1, umax = 0;
  for (int i = 0; i < N / 4; i++) {
    um += u[i];
    umin = jade_test_min(umin, u[i]);
    umax = jade_test_max(umax, u[i]);
  }
  um /= N / 4;
  CHECK(jade_test_gt_ok(umin, 0) && jade_test_lt_ok(umax, 1), "uniform outside (0,1): %g %g", umin, umax);
  CHECK_LT(fabs(um - 0.5), 5 * sqrt(1.0 / 12 / (N / 4)), "uniform mean %g", um);
  free(x);
}

static void test_config(void) {
  jade_config *c;
  CHECK_OK(jade_config_create(&c));
  CHECK_OK(jade_config_load_string(c,
                                   "# comment\n a = 1.5  # trailing\nname = hello world\n\n[train]\n"
                                   "lr = 3e-4\nlist = 1, 2 3\n",
                                   "t.ini"));
  double a, lr, list[4];
  int n;
  const char *s;
  CHECK_OK(jade_config_get_double(c, "a", &a));
  CHECK(a == 1.5, "a = %g", a);
  CHECK_OK(jade_config_get_string(c, "name", &s));
  CHECK(!strcmp(s, "hello world"), "name = '%s'", s);
  CHECK_OK(jade_config_set(c, "train.lr=1e-3"));
  CHECK_OK(jade_config_get_double(c, "train.lr", &lr));
  CHECK(lr == 1e-3, "override not applied: %g", lr);
  /* Unused keys: the [train] section has 'list' unread. */
  CHECK(jade_config_check_unused(c, (const char *const[]){"", NULL}) == JADE_OK, "top level should be all used");
  CHECK(jade_config_check_unused(c, (const char *const[]){"train", NULL}) == JADE_ERR_CONFIG, "unread key not reported");
  CHECK(strstr(jade_last_error(), "train.list") != NULL, "message should name the key: %s", jade_last_error());
  CHECK_OK(jade_config_get_doubles(c, "train.list", 4, list, &n));
  CHECK(n == 3 && list[2] == 3, "list parse n=%d", n);
  /* Errors. */
  CHECK(jade_config_set(c, "nope=1") == JADE_ERR_CONFIG, "unknown --set key accepted");
  CHECK(jade_config_get_double(c, "missing", &a) == JADE_ERR_CONFIG, "missing key accepted");
  CHECK(strstr(jade_last_error(), "missing") != NULL, "message: %s", jade_last_error());
  CHECK_OK(jade_config_set(c, "a=nan"));
  CHECK(jade_config_get_double(c, "a", &a) == JADE_ERR_CONFIG, "NaN accepted");
  CHECK_OK(jade_config_set(c, "a=2x"));
  CHECK(jade_config_get_double(c, "a", &a) == JADE_ERR_CONFIG, "'2x' accepted");
  CHECK_OK(jade_config_set(c, "a=7"));
  CHECK(jade_config_get_double_range(c, "a", 0, 5, &a) == JADE_ERR_CONFIG, "out of range accepted");
  CHECK(strstr(jade_last_error(), "out of range") != NULL, "message: %s", jade_last_error());
  long li;
  CHECK(jade_config_get_int(c, "train.lr", 0, 10, &li) == JADE_ERR_CONFIG, "non-integer accepted");
  CHECK(jade_config_load_string(c, "[nosuchsection]\nx=1\n", "u.ini") == JADE_ERR_CONFIG, "unknown section accepted");
  CHECK(jade_config_load_string(c, "just words\n", "u.ini") == JADE_ERR_CONFIG, "line without '=' accepted");
  CHECK(strstr(jade_last_error(), "u.ini:1") != NULL, "message should give file:line: %s", jade_last_error());
  CHECK(jade_config_load_file(c, "/nonexistent/x.ini") == JADE_ERR_IO, "missing file accepted");
  /* Dump round trip. */
  char *d = jade_config_dump(c);
  jade_config *c2;
  CHECK_OK(jade_config_create(&c2));
  CHECK_OK(jade_config_load_string(c2, d, "dump"));
  char *d2 = jade_config_dump(c2);
  CHECK(!strcmp(d, d2), "dump round trip differs");
  free(d);
  free(d2);
  jade_config_free(c2);
  jade_config_free(c);
  /* Built-in presets parse. */
  CHECK(jade_config_preset_text("small") && jade_config_preset_text("paper"), "presets missing");
  CHECK_OK(jade_config_create(&c));
  CHECK_OK(jade_config_load_preset(c, "paper"));
  CHECK_OK(jade_config_get_int(c, "n_pix", 8, 4096, &li));
  CHECK(li == 128, "paper n_pix %ld", li);
  jade_config_free(c);
}

static void test_format_duration(void) {
  static const struct { double s; const char *want; } cases[] = {
      {0.0, "0s"}, {41.6, "42s"}, {59.4, "59s"}, {59.6, "1m00s"}, {187.0, "3m07s"},
      {3599.4, "59m59s"}, {3600.0, "1h00m"}, {3900.0, "1h05m"}, {-1.0, "?"}, {NAN, "?"}, {INFINITY, "?"}};
  char buf[32];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    jade_format_duration(cases[i].s, buf, sizeof buf);
    CHECK(!strcmp(buf, cases[i].want), "duration %g -> '%s', want '%s'", cases[i].s, buf, cases[i].want);
  }
}

int main(void) {
  test_format_duration();
  test_philox_kat();
  test_counter_independence();
  test_moments();
  test_config();
  TEST_RETURN();
}
