/* Option parsing and config loading shared by the jade subcommands. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

jade_option *jade_cli_opt(jade_option *opts, const char *name) {
  for (jade_option *o = opts; o->name; o++)
    if (!strcmp(o->name, name)) return o;
  return NULL;
}

void jade_cli_free(jade_option *opts) {
  for (jade_option *o = opts; o->name; o++) {
    free(o->values);
    o->values = NULL;
    o->n_values = 0;
  }
}

static void print_help(const char *usage, const char *description, const jade_option *opts) {
  printf("usage: %s\n\n%s\n\noptions:\n", usage, description);
  for (const jade_option *o = opts; o->name; o++) {
    char left[64];
    snprintf(left, sizeof left, "--%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
    printf("  %-22s %s", left, o->help);
    if (o->metavar && o->value) printf(" [default: %s]", o->value);
    if (o->repeatable) printf(" (repeatable)");
    printf("\n");
  }
  printf("  %-22s %s\n", "--help", "show this help and exit");
}

int jade_cli_parse(int argc, char **argv, const char *usage, const char *description,
                   jade_option *opts, const char **positional, int max_positional, int *n_positional) {
  int np = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      print_help(usage, description, opts);
      return 1;
    }
    if (a[0] == '-' && a[1] == '-') {
      char name[64];
      const char *eq = strchr(a + 2, '=');
      size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
      if (len >= sizeof name) len = sizeof name - 1;
      memcpy(name, a + 2, len);
      name[len] = 0;
      jade_option *o = jade_cli_opt(opts, name);
      if (!o) {
        fprintf(stderr, "jade %s: unknown option '--%s' (see jade %s --help)\n", argv[0], name, argv[0]);
        return -1;
      }
      const char *val = NULL;
      if (o->metavar) {
        if (eq)
          val = eq + 1;
        else if (i + 1 < argc)
          val = argv[++i];
        else {
          fprintf(stderr, "jade %s: option '--%s' needs a value %s\n", argv[0], name, o->metavar);
          return -1;
        }
      } else if (eq) {
        fprintf(stderr, "jade %s: option '--%s' takes no value\n", argv[0], name);
        return -1;
      }
      if (o->repeatable) {
        const char **nv = realloc(o->values, (size_t)(o->n_values + 1) * sizeof *nv);
        if (!nv) {
          fprintf(stderr, "jade %s: out of memory\n", argv[0]);
          return -1;
        }
        o->values = nv;
        o->values[o->n_values++] = val;
      }
      o->value = o->metavar ? val : "1";
      o->seen = 1;
    } else {
      if (np >= max_positional) {
        fprintf(stderr, "jade %s: unexpected argument '%s' (see jade %s --help)\n", argv[0], a, argv[0]);
        return -1;
      }
      positional[np++] = a;
    }
  }
  if (n_positional) *n_positional = np;
  return 0;
}

int jade_cli_start(int *argc, char ***argv, const char *command, const char *usage, const char *description,
                   jade_option *opts, jade_dist *dist) {
  int r = jade_cli_parse(*argc, *argv, usage, description, opts, NULL, 0, NULL);
  if (r) {
    jade_cli_free(opts);
    return r > 0 ? 0 : 2;
  }
  if (jade_dist_init(argc, argv, dist)) {
    jade_cli_free(opts);
    return jade_cli_fail(command);
  }
  return -1;
}

int jade_cli_fail(const char *command) {
  fprintf(stderr, "jade %s: %s\n", command, jade_last_error());
  return 1;
}

jade_status jade_cli_load_config(jade_option *opts, jade_config **out) {
  jade_config *cfg;
  jade_status st = jade_config_create(&cfg);
  if (st) return st;
  jade_option *c = jade_cli_opt(opts, "config");
  const char *path = c ? c->value : NULL;
  if (!path)
    st = jade_config_load_preset(cfg, "small");
  else if (jade_config_preset_text(path))
    st = jade_config_load_preset(cfg, path);
  else
    st = jade_config_load_file(cfg, path);
  jade_option *s = jade_cli_opt(opts, "set");
  for (int i = 0; st == JADE_OK && s && i < s->n_values; i++) st = jade_config_set(cfg, s->values[i]);
  if (st) {
    jade_config_free(cfg);
    return st;
  }
  *out = cfg;
  return JADE_OK;
}

jade_status jade_cli_long(jade_option *opts, const char *name, long lo, long hi, long *out) {
  jade_option *o = jade_cli_opt(opts, name);
  if (!o || !o->value) return jade_error(JADE_ERR_INVALID, "--%s is required", name);
  char *end;
  errno = 0;
  long v = strtol(o->value, &end, 10);
  if (end == o->value || *end || errno) return jade_error(JADE_ERR_INVALID, "--%s: '%s' is not an integer", name, o->value);
  if (v < lo || v > hi) return jade_error(JADE_ERR_INVALID, "--%s: %ld is out of range [%ld, %ld]", name, v, lo, hi);
  *out = v;
  return JADE_OK;
}

jade_status jade_cli_double(jade_option *opts, const char *name, double lo, double hi, double *out) {
  jade_option *o = jade_cli_opt(opts, name);
  if (!o || !o->value) return jade_error(JADE_ERR_INVALID, "--%s is required", name);
  char what[80];
  snprintf(what, sizeof what, "--%s", name);
  double v;
  jade_status st = jade_parse_double(what, o->value, &v);
  if (st) return st;
  if (v < lo || v > hi) return jade_error(JADE_ERR_INVALID, "--%s: %g is out of range [%g, %g]", name, v, lo, hi);
  *out = v;
  return JADE_OK;
}
