/* jade_version: the library's version, from the generated include/jade/version.h. */
#include "jade/version.h"

const char *jade_version(void) { return JADE_VERSION_STRING; }
