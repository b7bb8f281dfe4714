// Links a C++17 program against libnexus: fails with undefined (mangled) symbols if
// nexus.h lacks its extern "C" guard. Prints the library version.
#include "nexus.h"

#include <cstdio>
#include <cstring>

int main()
{
    nexus_db *db = nullptr;
    if (nexus_open(":memory:", nullptr, &db) != NEXUS_OK) {
        std::fprintf(stderr, "nexus_open: %s\n", nexus_errmsg());
        return 1;
    }
    int rc = nexus_close(db);
    std::printf("C++ link ok, NexusLite %s\n", nexus_version());
    return rc == NEXUS_OK && std::strlen(nexus_errstr(NEXUS_OK)) > 0 ? 0 : 1;
}
