/* Helpers shared by the C benchmark harnesses (storage_bench.c, index_bench.c,
 * defaults_bench.c): settings from the environment, a monotonic clock, fail-fast checks of
 * NexusLite and SQLite return codes, a get by id through each, a xorshift generator, Zipf-distributed ranks, random
 * UUID v4 strings, the median of samples, timed threads, file sizes and the process's peak
 * RSS. Define
 * BENCH_NAME before including it: error messages start with it. */
#ifndef NEXUS_BENCH_UTIL_H
#define NEXUS_BENCH_UTIL_H

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
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

/* The length of the JSON of document `id` of `coll` through nexus_get (it must exist). */
static inline size_t nx_get_len(nexus_db *db, const char *coll, const char *id)
{
    char *out = NULL;
    nx(nexus_get(db, coll, id, &out), "get");
    size_t n = strlen(out);
    nexus_free(out);
    return n;
}

/* The length of the text of column 0 of the row that prepared `get` finds with `id` bound
 * to its parameter (the row must exist); resets `get`. */
static inline size_t sq_get_len(sqlite3 *s, sqlite3_stmt *get, const char *id)
{
    sqlite3_bind_text(get, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(get) != SQLITE_ROW) {
        fprintf(stderr, "%s: sqlite get %s: not found (%s)\n", BENCH_NAME, id, sqlite3_errmsg(s));
        exit(1);
    }
    size_t n = strlen((const char *)sqlite3_column_text(get, 0));
    sqlite3_reset(get);
    return n;
}

/* Runs prepared `st` once with the texts `a` and `b` bound to its two parameters (an
 * INSERT of id and body); resets it. */
static inline void sq_run2(sqlite3 *s, sqlite3_stmt *st, const char *a, const char *b, const char *what)
{
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    sq(s, sqlite3_step(st), what);
    sqlite3_reset(st);
}

/* Runs `fn` on `threads` threads (at most 8), thread i with `args + i * size`; each waits on
 * `bar` (initialised here; the args point at it) once ready and once done. Returns the
 * seconds between those two waits. */
static inline double timed_threads(int threads, void *(*fn)(void *), void *args, size_t size, pthread_barrier_t *bar)
{
    pthread_t t[8];
    pthread_barrier_init(bar, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * size);
    pthread_barrier_wait(bar);
    double t0 = now_s();
    pthread_barrier_wait(bar);
    double dt = now_s() - t0;
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(bar);
    return dt;
}

/* A uniform double in [0, 1). */
static inline double next_unit(uint64_t *r) { return (double)(next_rand(r) >> 11) * (1.0 / 9007199254740992.0); }

/* Ranks 0..n-1 with P(rank k) proportional to 1 / (k + 1)^s (Zipf; s = 0.99 is the usual
 * skewed cache workload): the cumulative distribution, searched by bisection. */
typedef struct {
    long n;
    double *cdf;
} zipf_gen;

static inline zipf_gen zipf_new(long n, double s)
{
    zipf_gen z = {n, malloc((size_t)n * sizeof(double))};
    if (!z.cdf) {
        fprintf(stderr, "%s: out of memory for a Zipf table of %ld\n", BENCH_NAME, n);
        exit(1);
    }
    double sum = 0;
    for (long k = 0; k < n; k++)
        z.cdf[k] = sum += pow((double)(k + 1), -s);
    for (long k = 0; k < n; k++)
        z.cdf[k] /= sum;
    return z;
}

static inline long zipf_next(const zipf_gen *z, uint64_t *r)
{
    double u = next_unit(r);
    long lo = 0, hi = z->n - 1;
    while (lo < hi) {
        long mid = lo + (hi - lo) / 2;
        if (z->cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static inline void zipf_free(zipf_gen *z) { free(z->cdf); }

/* A random UUID v4 in its 36-character text form (`out` holds 37 bytes). */
static inline void uuid_v4(char *out, uint64_t *r)
{
    uint64_t hi = next_rand(r), lo = next_rand(r);
    hi = (hi & ~0xf000ull) | 0x4000ull;                       /* version 4 */
    lo = (lo & 0x3fffffffffffffffull) | 0x8000000000000000ull; /* variant 10 */
    snprintf(out, 37, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(hi >> 32), (unsigned)(hi >> 16) & 0xffff,
             (unsigned)hi & 0xffff, (unsigned)(lo >> 48), (unsigned long long)(lo & 0xffffffffffffull));
}

/* The size of a file in bytes, 0 when it is missing. */
static inline long long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : 0;
}

/* The peak resident set size of this process so far, in KiB. */
static inline long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

#endif
