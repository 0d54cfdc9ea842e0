/* CLASS-style `key = value` configuration files with [section] headers. */
#include "jade/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

typedef struct {
  char *key;    /* "section.key" or "key" */
  char *value;
  char *origin; /* "file:line" or "--set" */
  int used;
} config_entry;

struct jade_config {
  config_entry *entries;
  int n, cap;
  char origin[512]; /* the main file, for "missing key" messages */
};

/* Sections any jade command knows. */
static const char *const known_sections[] = {"", "model", "train", "sample", "mcmc", "validate", NULL};

jade_status jade_config_create(jade_config **out) {
  jade_config *c = calloc(1, sizeof *c);
  if (!c) return jade_error(JADE_ERR_NOMEM, "out of memory creating config");
  snprintf(c->origin, sizeof c->origin, "config");
  *out = c;
  return JADE_OK;
}

void jade_config_free(jade_config *cfg) {
  if (!cfg) return;
  for (int i = 0; i < cfg->n; i++) {
    free(cfg->entries[i].key);
    free(cfg->entries[i].value);
    free(cfg->entries[i].origin);
  }
  free(cfg->entries);
  free(cfg);
}

static char *dupstr(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static char *trim(char *s) {
  while (*s && isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
  return s;
}

static int valid_key(const char *k) {
  if (!*k) return 0;
  for (const char *p = k; *p; p++)
    if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '.')) return 0;
  return 1;
}

static config_entry *find(const jade_config *cfg, const char *key) {
  for (int i = 0; i < cfg->n; i++)
    if (strcmp(cfg->entries[i].key, key) == 0) return &cfg->entries[i];
  return NULL;
}

static int section_known(const char *key) {
  const char *dot = strchr(key, '.');
  if (!dot) return 1;
  size_t len = (size_t)(dot - key);
  for (int i = 1; known_sections[i]; i++)
    if (strlen(known_sections[i]) == len && strncmp(key, known_sections[i], len) == 0) return 1;
  return 0;
}

static jade_status put(jade_config *cfg, const char *key, const char *value, const char *origin) {
  if (!valid_key(key))
    return jade_error(JADE_ERR_CONFIG, "%s: invalid key '%s'", origin, key);
  if (!section_known(key))
    return jade_error(JADE_ERR_CONFIG, "%s: unknown section in key '%s'", origin, key);
  if (!*value) return jade_error(JADE_ERR_CONFIG, "%s: key '%s' has no value", origin, key);
  config_entry *e = find(cfg, key);
  if (!e) {
    if (cfg->n == cfg->cap) {
      int cap = cfg->cap ? 2 * cfg->cap : 64;
      config_entry *ne = realloc(cfg->entries, (size_t)cap * sizeof *ne);
      if (!ne) return jade_error(JADE_ERR_NOMEM, "out of memory in config");
      cfg->entries = ne;
      cfg->cap = cap;
    }
    e = &cfg->entries[cfg->n++];
    memset(e, 0, sizeof *e);
    e->key = dupstr(key);
  } else {
    free(e->value);
    free(e->origin);
  }
  e->value = dupstr(value);
  e->origin = dupstr(origin);
  e->used = 0;
  if (!e->key || !e->value || !e->origin) return jade_error(JADE_ERR_NOMEM, "out of memory in config");
  return JADE_OK;
}

jade_status jade_config_load_string(jade_config *cfg, const char *text, const char *origin) {
  char *copy = dupstr(text);
  if (!copy) return jade_error(JADE_ERR_NOMEM, "out of memory in config");
  char section[128] = "";
  int lineno = 0;
  jade_status st = JADE_OK;
  char *save = NULL;
  /* strtok_r skips empty lines, so count newlines by hand. */
  char *p = copy;
  while (p && *p && st == JADE_OK) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = 0;
    lineno++;
    char *line = p;
    p = nl ? nl + 1 : NULL;
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    line = trim(line);
    if (!*line) continue;
    char where[600];
    snprintf(where, sizeof where, "%s:%d", origin, lineno);
    if (line[0] == '[') {
      char *end = strchr(line, ']');
      if (!end || end[1]) {
        st = jade_error(JADE_ERR_CONFIG, "%s: malformed section header '%s'", where, line);
        break;
      }
      *end = 0;
      char *name = trim(line + 1);
      int ok = 0;
      for (int i = 1; known_sections[i]; i++)
        if (strcmp(name, known_sections[i]) == 0) ok = 1;
      if (!ok) {
        st = jade_error(JADE_ERR_CONFIG, "%s: unknown section [%s]", where, name);
        break;
      }
      snprintf(section, sizeof section, "%s", name);
      continue;
    }
    char *eq = strchr(line, '=');
    if (!eq) {
      st = jade_error(JADE_ERR_CONFIG, "%s: expected 'key = value', got '%s'", where, line);
      break;
    }
    *eq = 0;
    char *key = trim(line), *value = trim(eq + 1);
    char full[300];
    if (section[0])
      snprintf(full, sizeof full, "%s.%s", section, key);
    else
      snprintf(full, sizeof full, "%s", key);
    st = put(cfg, full, value, where);
  }
  (void)save;
  free(copy);
  return st;
}

jade_status jade_config_load_file(jade_config *cfg, const char *path) {
  /* O_NONBLOCK: opening a FIFO must not wait for a writer; anything but a regular file is
   * refused (a FIFO or a terminal would hang, a directory is not a config). */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return jade_error(JADE_ERR_IO, "%s: cannot open config file: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return jade_error(JADE_ERR_IO, "%s: not a regular file (a config must be a text file)", path);
  }
  if (sb.st_size > (1 << 24)) {
    close(fd);
    return jade_error(JADE_ERR_IO, "%s: %lld bytes: too large for a config file", path, (long long)sb.st_size);
  }
  size_t len = (size_t)sb.st_size, got = 0;
  char *buf = malloc(len + 1);
  if (!buf) {
    close(fd);
    return jade_error(JADE_ERR_NOMEM, "out of memory reading %s", path);
  }
  while (got < len) {
    ssize_t r = read(fd, buf + got, len - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  buf[got] = 0;
  if (got != len || memchr(buf, 0, got)) {
    free(buf);
    return jade_error(JADE_ERR_FORMAT, "%s: not a text config file", path);
  }
  snprintf(cfg->origin, sizeof cfg->origin, "%s", path);
  jade_status st = jade_config_load_string(cfg, buf, path);
  free(buf);
  return st;
}

jade_status jade_config_load_preset(jade_config *cfg, const char *name) {
  const char *text = jade_config_preset_text(name);
  if (!text) return jade_error(JADE_ERR_CONFIG, "unknown preset '%s' (known: small, paper)", name);
  char origin[64];
  snprintf(origin, sizeof origin, "preset %s", name);
  snprintf(cfg->origin, sizeof cfg->origin, "%s", origin);
  return jade_config_load_string(cfg, text, origin);
}

jade_status jade_config_set(jade_config *cfg, const char *assignment) {
  const char *eq = strchr(assignment, '=');
  if (!eq) return jade_error(JADE_ERR_CONFIG, "--set %s: expected key=value", assignment);
  char key[300], value[1024];
  size_t kl = (size_t)(eq - assignment);
  if (kl >= sizeof key || strlen(eq + 1) >= sizeof value)
    return jade_error(JADE_ERR_CONFIG, "--set %s: too long", assignment);
  memcpy(key, assignment, kl);
  key[kl] = 0;
  snprintf(value, sizeof value, "%s", eq + 1);
  char *k = trim(key), *v = trim(value);
  /* The effective configuration is recorded as `key = value` lines (config.ini) that must
   * parse back to the same values: '#' would start a comment, control characters a new
   * line. */
  for (const char *c = v; *c; c++)
    if (*c == '#' || (unsigned char)*c < 32 || *c == 127)
      return jade_error(JADE_ERR_CONFIG, "--set %s: the value may not contain '#' or control characters", assignment);
  char where[400];
  snprintf(where, sizeof where, "--set %s", k);
  if (!find(cfg, k))
    return jade_error(JADE_ERR_CONFIG, "--set %s: unknown key '%s' (not in %s)", assignment, k, cfg->origin);
  return put(cfg, k, v, where);
}

int jade_config_has(const jade_config *cfg, const char *key) { return find(cfg, key) != NULL; }

static jade_status lookup(jade_config *cfg, const char *key, config_entry **e) {
  *e = find(cfg, key);
  if (!*e) return jade_error(JADE_ERR_CONFIG, "%s: missing key '%s'", cfg->origin, key);
  (*e)->used = 1;
  return JADE_OK;
}

static jade_status parse_double(const config_entry *e, const char *s, double *out, char **end) {
  char what[700];
  snprintf(what, sizeof what, "%s: key '%s'", e->origin, e->key);
  if (jade_parse_double_prefix(what, s, out, end)) return JADE_ERR_CONFIG;
  return JADE_OK;
}

jade_status jade_config_get_double(jade_config *cfg, const char *key, double *out) {
  config_entry *e;
  jade_status st = lookup(cfg, key, &e);
  if (st) return st;
  char *end;
  st = parse_double(e, e->value, out, &end);
  if (st) return st;
  while (isspace((unsigned char)*end)) end++;
  if (*end) return jade_error(JADE_ERR_CONFIG, "%s: key '%s': '%s' is not a number", e->origin, key, e->value);
  return JADE_OK;
}

jade_status jade_config_get_double_range(jade_config *cfg, const char *key, double lo, double hi, double *out) {
  jade_status st = jade_config_get_double(cfg, key, out);
  if (st) return st;
  if (!(*out >= lo && *out <= hi)) {
    config_entry *e = find(cfg, key);
    return jade_error(JADE_ERR_CONFIG, "%s: key '%s' = %s is out of range [%g, %g]", e->origin, key, e->value, lo, hi);
  }
  return JADE_OK;
}

jade_status jade_config_get_int(jade_config *cfg, const char *key, long lo, long hi, long *out) {
  config_entry *e;
  jade_status st = lookup(cfg, key, &e);
  if (st) return st;
  char *end;
  errno = 0;
  long v = strtol(e->value, &end, 10);
  while (isspace((unsigned char)*end)) end++;
  if (end == e->value || *end || errno)
    return jade_error(JADE_ERR_CONFIG, "%s: key '%s': '%s' is not an integer", e->origin, key, e->value);
  if (v < lo || v > hi)
    return jade_error(JADE_ERR_CONFIG, "%s: key '%s' = %ld is out of range [%ld, %ld]", e->origin, key, v, lo, hi);
  *out = v;
  return JADE_OK;
}

jade_status jade_config_get_string(jade_config *cfg, const char *key, const char **out) {
  config_entry *e;
  jade_status st = lookup(cfg, key, &e);
  if (st) return st;
  *out = e->value;
  return JADE_OK;
}

jade_status jade_config_get_doubles(jade_config *cfg, const char *key, int max, double *out, int *n) {
  config_entry *e;
  jade_status st = lookup(cfg, key, &e);
  if (st) return st;
  const char *s = e->value;
  int k = 0;
  for (;;) {
    while (isspace((unsigned char)*s) || *s == ',') s++;
    if (!*s) break;
    if (k == max) return jade_error(JADE_ERR_CONFIG, "%s: key '%s': more than %d values", e->origin, key, max);
    char *end;
    st = parse_double(e, s, &out[k], &end);
    if (st) return st;
    if (*end && !isspace((unsigned char)*end) && *end != ',')
      return jade_error(JADE_ERR_CONFIG, "%s: key '%s': '%s' is not a list of numbers", e->origin, key, e->value);
    k++;
    s = end;
  }
  *n = k;
  return JADE_OK;
}

static int in_sections(const char *key, const char *const *sections) {
  const char *dot = strchr(key, '.');
  size_t len = dot ? (size_t)(dot - key) : 0;
  for (int i = 0; sections[i]; i++) {
    if (!dot && sections[i][0] == 0) return 1;
    if (dot && strlen(sections[i]) == len && strncmp(key, sections[i], len) == 0) return 1;
  }
  return 0;
}

jade_status jade_config_check_unused(const jade_config *cfg, const char *const *sections) {
  for (int i = 0; i < cfg->n; i++) {
    const config_entry *e = &cfg->entries[i];
    if (!e->used && in_sections(e->key, sections))
      return jade_error(JADE_ERR_CONFIG, "%s: unknown key '%s'", e->origin, e->key);
  }
  return JADE_OK;
}

char *jade_config_dump(const jade_config *cfg) {
  size_t len = 1;
  for (int i = 0; i < cfg->n; i++) len += strlen(cfg->entries[i].key) + strlen(cfg->entries[i].value) + 8;
  char *out = malloc(len);
  if (!out) {
    jade_error(JADE_ERR_NOMEM, "out of memory dumping config");
    return NULL;
  }
  size_t pos = 0;
  out[0] = 0;
  for (int i = 0; i < cfg->n; i++)
    pos += (size_t)snprintf(out + pos, len - pos, "%s = %s\n", cfg->entries[i].key, cfg->entries[i].value);
  return out;
}
