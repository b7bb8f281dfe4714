/* Compiled by tests/c/run.sh as C99, C11 and C++17 with -Wall -Wextra -pedantic -Werror:
 * the public header must stand alone and compile cleanly in each language. */
#include "nexus.h"
