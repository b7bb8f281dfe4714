/*
 * The storage engine the test harness asks for, as nexus_open options.
 *
 * scripts/test.sh runs the C suite twice: as is, and with NEXUSLITE_STORAGE=memlog. That
 * variable is a switch of the tests, not of the library: they pass the choice on as the
 * "storage" open option. Every nexus_open of a file in tests/c goes through
 * test_options(): the option decides the engine of a new file, and an existing file opens
 * with the engine that wrote it whatever the option says, so passing it everywhere is
 * harmless and needs no thought about which open creates the file.
 */
#ifndef NEXUS_TEST_STORAGE_H
#define NEXUS_TEST_STORAGE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The engine new files should get: "memlog" when NEXUSLITE_STORAGE is memlog (or wal, its
 * former name), else NULL (no storage option: the library's default, wasp). */
static const char *test_storage(void)
{
    const char *e = getenv("NEXUSLITE_STORAGE");
    return e != NULL && (strcmp(e, "memlog") == 0 || strcmp(e, "wal") == 0) ? "memlog" : NULL;
}

/* The nexus_open options `json` (a JSON object, or NULL for none) with the harness's
 * "storage" member added: test_options(NULL), test_options("{\"sync\":\"full\"}").
 * Returns `json` itself when there is nothing to add (the default engine is wanted, or
 * `json` names an engine itself or is not an object); else a string in a ring of 8 static
 * buffers, good for the next few calls only (so main thread only: a thread gets its
 * options from the main thread). */
static const char *test_options(const char *json)
{
    static char ring[8][1024];
    static int next;
    const char *storage = test_storage();
    const char *members = ""; /* what follows the object's '{' */
    char *out;
    int n;

    if (storage == NULL)
        return json;
    if (json != NULL && *json != '\0') {
        const char *brace = strchr(json, '{');
        if (brace == NULL || strstr(json, "\"storage\"") != NULL)
            return json;
        members = brace + 1 + strspn(brace + 1, " \t\r\n");
        if (*members == '}')
            members = "";
    }
    out = ring[next];
    next = (next + 1) % 8;
    if (*members == '\0')
        n = snprintf(out, sizeof ring[0], "{\"storage\":\"%s\"}", storage);
    else
        n = snprintf(out, sizeof ring[0], "{\"storage\":\"%s\",%s", storage, members);
    if (n < 0 || (size_t)n >= sizeof ring[0]) {
        fprintf(stderr, "test_options(): options too long: {%s\n", members);
        exit(2);
    }
    return out;
}

#endif
