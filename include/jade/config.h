/* jade configuration files: CLASS-style `key = value` lines.
 *
 *   # comment (also after a value)        Omega_c = 0.2664   # cold dark matter
 *   n_pix = 32
 *   prior_w_0 = truncnormal -1 0.9 -2 -0.3
 *
 *   [train]                                 # a section: the keys below are "train.<key>"
 *   learning_rate = 5e-3                    # i.e. train.learning_rate
 *
 * Keys are case-sensitive identifiers ([A-Za-z0-9_.]). A later assignment of the same key
 * replaces an earlier one, so `--set key=value` overrides (applied after the file) win
 * (`--set train.learning_rate=1e-3`). Top-level keys are the cosmology, survey and map.
 * Every key of a section a command uses that it did not read is an error (a typo never
 * passes silently): commands call jade_config_check_unused() after reading what they need. */
#ifndef JADE_CONFIG_H
#define JADE_CONFIG_H
#include "jade/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct jade_config jade_config;

jade_status jade_config_create(jade_config **out);
void jade_config_free(jade_config *cfg);
/* Parse text; `origin` names the source in error messages (file name or "built-in small"). */
jade_status jade_config_load_string(jade_config *cfg, const char *text, const char *origin);
jade_status jade_config_load_file(jade_config *cfg, const char *path);
/* One "key=value" override (from --set). */
jade_status jade_config_set(jade_config *cfg, const char *assignment);
/* Load a built-in preset by name ("small", "paper"). */
jade_status jade_config_load_preset(jade_config *cfg, const char *name);
/* The text of a built-in preset, or NULL. */
const char *jade_config_preset_text(const char *name);

/* Typed getters. A missing key is an error naming it and the config's origin; values must
 * parse completely and be finite. They mark the key as used. */
jade_status jade_config_get_double(jade_config *cfg, const char *key, double *out);
jade_status jade_config_get_double_range(jade_config *cfg, const char *key, double lo, double hi,
                                         double *out);
jade_status jade_config_get_int(jade_config *cfg, const char *key, long lo, long hi, long *out);
jade_status jade_config_get_string(jade_config *cfg, const char *key, const char **out);
/* Whitespace-separated list of up to max numbers; *n receives the count. */
jade_status jade_config_get_doubles(jade_config *cfg, const char *key, int max, double *out, int *n);
int jade_config_has(const jade_config *cfg, const char *key);

/* Error (JADE_ERR_CONFIG) naming the first key that nothing read, among the keys of the
 * listed sections (NULL-terminated; "" is the top level, "train" the [train] section).
 * Keys of sections not listed are ignored, so one file can hold every command's settings.
 * A key in a section that no command knows is always an error. */
jade_status jade_config_check_unused(const jade_config *cfg, const char *const *sections);
/* The effective configuration as `key = value` text (sorted as first set), malloc'd;
 * recorded in every output's metadata so a run can be repeated. */
char *jade_config_dump(const jade_config *cfg);

#ifdef __cplusplus
}
#endif
#endif
