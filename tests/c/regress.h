/*
 * A small shared harness for the C regression programs tests/c/regress_*.c (one program
 * per class of defect; tests/c/run.sh builds each against libnexus.a and runs it).
 *
 * Each check is counted; a failing one prints file:line and the library's last error
 * message. A program ends with "N passed, M failed" and exits 0 only when M is 0.
 * Files go to a fresh mkdtemp directory (removed at the end unless NEXUS_TEST_KEEP=1).
 * Every nexus_open of a file passes test_options(...) (test_storage.h): the storage engine
 * the test harness asks for.
 */
#ifndef NEXUS_REGRESS_H
#define NEXUS_REGRESS_H

#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nexus.h"
#include "test_storage.h"

static int g_passed;
static int g_failed;
static char g_dir[512];

static int check_(int ok, const char *file, int line, const char *what)
{
    if (ok) {
        g_passed++;
        return 1;
    }
    g_failed++;
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    return 0;
}
#define CHECK(cond) check_((cond) ? 1 : 0, __FILE__, __LINE__, #cond)

static int check_rc_(int got, int want, const char *file, int line, const char *expr)
{
    if (got == want) {
        g_passed++;
        return 1;
    }
    char msg[512];
    const char *m = nexus_errmsg(); /* copied first: the next nexus call replaces it */
    snprintf(msg, sizeof msg, "%s", m ? m : "(none)");
    g_failed++;
    fprintf(stderr, "%s:%d: %s returned %s, expected %s (last error: %s)\n", file, line, expr,
            nexus_errstr(got), nexus_errstr(want), msg);
    return 0;
}
#define CHECK_RC(expr, want) check_rc_((expr), (want), __FILE__, __LINE__, #expr)
#define CHECK_OK(expr) CHECK_RC(expr, NEXUS_OK)

/* Whether the calling thread's last error message contains `needle`. */
static int errmsg_has_(const char *needle, const char *file, int line)
{
    const char *m = nexus_errmsg();
    if (m != NULL && strstr(m, needle) != NULL) {
        g_passed++;
        return 1;
    }
    g_failed++;
    fprintf(stderr, "%s:%d: last error \"%s\" does not mention \"%s\"\n", file, line,
            m ? m : "(none)", needle);
    return 0;
}
#define CHECK_ERRMSG_HAS(needle) errmsg_has_((needle), __FILE__, __LINE__)

/* A path inside this run's directory (a ring of 8 buffers). */
static const char *path_in_dir(const char *name)
{
    static char ring[8][700];
    static int next;
    char *p = ring[next];
    next = (next + 1) % 8;
    snprintf(p, sizeof ring[0], "%s/%s", g_dir, name);
    return p;
}

static void section(const char *name)
{
    printf("-- %s\n", name);
    fflush(stdout);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Makes the run's directory; call first. */
static int regress_begin(const char *name)
{
    const char *tmp = getenv("TMPDIR");
    setvbuf(stdout, NULL, _IOLBF, 0);
    snprintf(g_dir, sizeof g_dir, "%s/nexus-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
    if (mkdtemp(g_dir) == NULL) {
        perror("mkdtemp");
        return -1;
    }
    printf("%s (NexusLite %s), files in %s, storage option: %s\n", name, nexus_version(), g_dir,
           test_storage() ? test_storage() : "(none: the default engine)");
    return 0;
}

/* Prints the tally, removes the directory, returns the exit status. */
static int regress_end(void)
{
    const char *keep = getenv("NEXUS_TEST_KEEP");
    if (!(keep && *keep == '1'))
        nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}

#endif
