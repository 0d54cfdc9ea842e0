/* jade cosmo pk|cl|shift: print cosmology tables for the config's cosmology. */
#include <stdio.h>

#include "cli.h"

int jade_cmd_cosmo(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "jade cosmo: not built yet\n");
  return 1;
}
