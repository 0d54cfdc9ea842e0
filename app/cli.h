/* Shared pieces of the jade CLI: the command table, a small option parser that also prints
 * `--help` with every option and its default, and config loading (--config / --set). */
#ifndef JADE_CLI_H
#define JADE_CLI_H
#include "jade/config.h"
#include "jade/dist.h"
#include "jade/core.h"
#include "jade/version.h"

typedef struct {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv);
} jade_command;

/* One option: "--name VALUE" (has_value) or a flag "--name". `value` holds the default and
 * then the parsed value; repeatable options (--set) are collected in `values`. */
typedef struct {
  const char *name;
  const char *metavar; /* NULL for flags */
  const char *help;
  const char *value;   /* default (NULL: none) -> parsed value */
  int repeatable;
  int seen;
  const char **values; /* for repeatable options */
  int n_values;
} jade_option;

/* Parse argv[1..] (argv[0] is the command name). Positional arguments are returned in
 * positional[] (up to max_positional). Returns 0 on success, 1 if --help was printed,
 * -1 on a usage error (message printed). */
int jade_cli_parse(int argc, char **argv, const char *usage, const char *description,
                   jade_option *opts, const char **positional, int max_positional, int *n_positional);
jade_option *jade_cli_opt(jade_option *opts, const char *name);
/* Free what jade_cli_parse allocated (the repeatable options' value lists). */
void jade_cli_free(jade_option *opts);
/* jade_cli_parse (no positionals), then MPI start-up (jade_dist_init) for the commands that
 * split work over ranks. Returns -1 to go on, else the exit code to return at once (0 after
 * --help, 2 on a usage error, 1 if MPI failed), with opts already freed. */
int jade_cli_start(int *argc, char ***argv, const char *command, const char *usage, const char *description,
                   jade_option *opts, jade_dist *dist);
/* Print "jade: <message>" (the last error) to stderr and return the exit code 1. */
int jade_cli_fail(const char *command);
/* Load --config FILE (or the built-in "small" preset) and apply every --set. */
jade_status jade_cli_load_config(jade_option *opts, jade_config **out);
/* The value of a path option (NULL if not given) with trailing slashes removed ("out/" ->
 * "out", "/" stays), so that "DIR.partial" and the final rename see the same directory. */
const char *jade_cli_path(jade_option *opts, const char *name);
/* Do two paths name the same existing file or directory (same device and inode)? */
int jade_cli_same_file(const char *a, const char *b);
/* Parse numeric option values with clear errors ("--draws: 'x' is not an integer"). */
jade_status jade_cli_long(jade_option *opts, const char *name, long lo, long hi, long *out);
jade_status jade_cli_double(jade_option *opts, const char *name, double lo, double hi, double *out);

/* The standard option rows for commands that read a config. */
#define JADE_CONFIG_OPTIONS                                                                 \
  {"config", "FILE", "configuration file (default: the built-in 'small' preset; "            \
                     "'paper' or 'small' name a preset)", NULL, 0, 0, NULL, 0},              \
  {"set", "KEY=VALUE", "override one config key (repeatable)", NULL, 1, 0, NULL, 0}

int jade_cmd_cosmo(int argc, char **argv);
int jade_cmd_simulate(int argc, char **argv);
int jade_cmd_observe(int argc, char **argv);
int jade_cmd_catalog(int argc, char **argv);
int jade_cmd_train(int argc, char **argv);
int jade_cmd_sample(int argc, char **argv);
int jade_cmd_validate(int argc, char **argv);
int jade_cmd_report(int argc, char **argv);
int jade_cmd_mcmc(int argc, char **argv);
int jade_cmd_sed(int argc, char **argv);
int jade_cmd_model(int argc, char **argv);

#endif
