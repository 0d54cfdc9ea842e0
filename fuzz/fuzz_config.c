/* Fuzz the config parser and --set overrides: input = config text, then --set assignments,
 * separated by FUZZ_SEP. Checks: no crash; every error is one line; the effective config
 * (jade_config_dump, what config.ini records) parses back to the same text; the typed
 * readers (simulation, model, training) and the strict number parsers never misbehave. */
#include "fuzz_util.h"
#include "jade/config.h"
#include "jade/sim.h"
#include "jade/train.h"

static void read_all(jade_config *cfg) {
  jade_sim_config sc;
  fuzz_check_error(jade_sim_config_read(cfg, &sc));
  jade_model_config mc;
  fuzz_check_error(jade_model_config_read(cfg, &mc));
  jade_train_config tc;
  fuzz_check_error(jade_train_config_read(cfg, &tc));
  fuzz_check_error(jade_config_check_unused(cfg, (const char *const[]){"", "model", "train", NULL}));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *part[9];
  size_t len[9];
  int n = fuzz_split(data, size, part, len, 9);
  char *text = malloc(len[0] + 1);
  if (!text) return 0;
  memcpy(text, part[0], len[0]);
  text[len[0]] = 0;
  jade_config *cfg = NULL;
  if (jade_config_create(&cfg)) {
    free(text);
    return 0;
  }
  jade_status st = jade_config_load_string(cfg, text, "fuzz.ini");
  fuzz_check_error(st);
  /* the same text through a file */
  const char *path = fuzz_write("fuzz.ini", part[0], len[0]);
  if (path) {
    jade_config *cf = NULL;
    if (!jade_config_create(&cf)) {
      jade_status sf = jade_config_load_file(cf, path);
      /* a text without NUL bytes reads the same from a file as from memory */
      if (strlen(text) == len[0]) FUZZ_ASSERT((sf == JADE_OK) == (st == JADE_OK));
      fuzz_check_error(sf);
      jade_config_free(cf);
    }
  }
  if (!st) {
    for (int i = 1; i < n; i++) {
      char a[1200];
      size_t l = len[i] < sizeof a - 1 ? len[i] : sizeof a - 1;
      memcpy(a, part[i], l);
      a[l] = 0;
      fuzz_check_error(jade_config_set(cfg, a));
      uint64_t u;
      double d;
      fuzz_check_error(jade_parse_u64("fuzz", a, UINT64_MAX, &u));
      fuzz_check_error(jade_parse_double("fuzz", a, &d));
    }
    /* round trip of the recorded configuration */
    char *dump = jade_config_dump(cfg);
    if (dump) {
      jade_config *c2 = NULL;
      if (!jade_config_create(&c2)) {
        jade_status s2 = jade_config_load_string(c2, dump, "dump");
        if (s2) fprintf(stderr, "dump does not parse: %s\n--\n%s--\n", jade_last_error(), dump);
        FUZZ_ASSERT(s2 == JADE_OK);
        char *dump2 = jade_config_dump(c2);
        FUZZ_ASSERT(dump2 && !strcmp(dump, dump2));
        free(dump2);
        jade_config_free(c2);
      }
      free(dump);
    }
    read_all(cfg);
  }
  jade_config_free(cfg);
  free(text);
  return 0;
}
