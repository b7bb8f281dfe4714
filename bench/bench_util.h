/* Helpers shared by the C benchmark harnesses (storage_bench.c, index_bench.c): settings
 * from the environment, a monotonic clock, fail-fast checks of NexusLite and SQLite return
 * codes, a xorshift generator and the median of samples. Define BENCH_NAME before including
 * it: error messages start with it. */
#ifndef NEXUS_BENCH_UTIL_H
#define NEXUS_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <nexus.h>
#include <sqlite3.h>

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? atol(v) : dflt;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Exits with NexusLite's message when `rc` is not NEXUS_OK. */
static void nx(int rc, const char *what)
{
    if (rc != NEXUS_OK) {
        fprintf(stderr, "%s: %s failed: %s (%s)\n", BENCH_NAME, what, nexus_errmsg(), nexus_errstr(rc));
        exit(1);
    }
}

/* Exits with SQLite's message when `rc` is an error. */
static void sq(sqlite3 *s, int rc, const char *what)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "%s: sqlite %s failed: %s\n", BENCH_NAME, what, sqlite3_errmsg(s));
        exit(1);
    }
}

static uint64_t next_rand(uint64_t *r)
{
    *r ^= *r << 13;
    *r ^= *r >> 7;
    *r ^= *r << 17;
    return *r;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of `n` samples (sorts them). */
static double median(double *v, long n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif
