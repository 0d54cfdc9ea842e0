/* Shared pieces of the jade CLI: the command table and option parsing helpers. */
#ifndef JADE_CLI_H
#define JADE_CLI_H
#include "jade/config.h"
#include "jade/core.h"

#define JADE_VERSION_STRING "0.1.0"

typedef struct {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv);
} jade_command;

int jade_cmd_cosmo(int argc, char **argv);

#endif
