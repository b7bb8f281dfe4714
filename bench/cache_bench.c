/*
 * Cache benchmark through the C ABI: nexus_get latency for a cache hit vs a miss served
 * from storage, and random-get throughput with the document cache on vs off, beside SQLite
 * (primary-key lookup of a JSON text row) on the same data in the same run.
 *
 *   cache_bench OUT.md [DOCS]
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nexus.h>
#include <sqlite3.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void check(int rc, const char *what)
{
    if (rc != NEXUS_OK) {
        fprintf(stderr, "%s failed: %s (%s)\n", what, nexus_errmsg(), nexus_errstr(rc));
        exit(1);
    }
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void doc_json(char *buf, size_t cap, long i)
{
    snprintf(buf, cap,
             "{\"_id\":\"user%07ld\",\"name\":\"user %ld\",\"age\":%ld,"
             "\"address\":{\"city\":\"city%ld\",\"zip\":\"%05ld\"},\"tags\":[\"a\",\"b\",\"c\"],"
             "\"bio\":\"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod\"}",
             i, i, 18 + i % 60, i % 100, i % 99999);
}

/* Mean ns per nexus_get over `n` gets of random ids among the first `span` documents. */
static double nexus_gets(nexus_db *db, long span, long n)
{
    char id[32];
    double t0 = now_ns();
    for (long k = 0; k < n; k++) {
        char *out = NULL;
        snprintf(id, sizeof id, "user%07ld", (long)(next_rand() % (uint64_t)span));
        check(nexus_get(db, "users", id, &out), "nexus_get");
        nexus_free(out);
    }
    return (now_ns() - t0) / (double)n;
}

static double sqlite_gets(sqlite3 *s, long span, long n)
{
    sqlite3_stmt *st;
    char id[32];
    sqlite3_prepare_v2(s, "SELECT body FROM users WHERE id = ?", -1, &st, NULL);
    double t0 = now_ns();
    for (long k = 0; k < n; k++) {
        snprintf(id, sizeof id, "user%07ld", (long)(next_rand() % (uint64_t)span));
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW) {
            fprintf(stderr, "sqlite lookup failed\n");
            exit(1);
        }
        volatile const unsigned char *body = sqlite3_column_text(st, 0);
        (void)body;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return (now_ns() - t0) / (double)n;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s OUT.md [DOCS]\n", argv[0]);
        return 2;
    }
    long docs = argc > 2 ? atol(argv[2]) : 200000;
    long gets = 400000;
    char dir[] = "/tmp/nexus-bench-XXXXXX", path[256], sqlite_path[256], buf[512];
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof path, "%s/bench.db", dir);
    snprintf(sqlite_path, sizeof sqlite_path, "%s/bench.sqlite", dir);

    nexus_db *db;
    check(nexus_open(path, "{\"sync\":\"off\",\"cache_capacity\":0,\"sweeper_interval_ms\":0}", &db),
          "nexus_open");
    check(nexus_begin(db), "begin");
    for (long i = 0; i < docs; i++) {
        doc_json(buf, sizeof buf, i);
        check(nexus_insert(db, "users", buf, NULL), "insert");
    }
    check(nexus_commit(db), "commit");

    sqlite3 *s;
    sqlite3_open(sqlite_path, &s);
    sqlite3_exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
                    "CREATE TABLE users(id TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID;", NULL, NULL, NULL);
    sqlite3_exec(s, "BEGIN", NULL, NULL, NULL);
    sqlite3_stmt *ins;
    sqlite3_prepare_v2(s, "INSERT INTO users VALUES(?, ?)", -1, &ins, NULL);
    for (long i = 0; i < docs; i++) {
        char id[32];
        snprintf(id, sizeof id, "user%07ld", i);
        doc_json(buf, sizeof buf, i);
        sqlite3_bind_text(ins, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 2, buf, -1, SQLITE_TRANSIENT);
        sqlite3_step(ins);
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    sqlite3_exec(s, "COMMIT", NULL, NULL, NULL);

    /* Misses: the cache is off, every get decodes the stored document. */
    nexus_gets(db, 1000, 20000); /* warm up */
    double miss_ns = nexus_gets(db, 1000, gets);
    double off_all_ns = nexus_gets(db, docs, gets);

    /* Hits: a cache that holds everything, warmed over the same 1000 ids first. */
    check(nexus_configure(db, "{\"cache_capacity\":1000000}"), "configure");
    nexus_gets(db, docs, docs * 3);
    double hit_ns = nexus_gets(db, 1000, gets);
    double on_all_ns = nexus_gets(db, docs, gets);

    char *stats = NULL;
    check(nexus_stats(db, &stats), "stats");
    sqlite_gets(s, 1000, 20000);
    double sqlite_hot_ns = sqlite_gets(s, 1000, gets);
    double sqlite_all_ns = sqlite_gets(s, docs, gets);

    FILE *out = fopen(argv[1], "w");
    if (!out)
        return 1;
    char host[128] = "unknown";
    gethostname(host, sizeof host);
    fprintf(out, "# Document cache through the C ABI\n\n"
                 "NexusLite %s (`wal` backend, sync=off), %ld documents of ~250 bytes; %ld random\n"
                 "`nexus_get` calls per row (each allocates and frees the JSON result). SQLite %s:\n"
                 "`SELECT body FROM users WHERE id = ?` on a `WITHOUT ROWID` table holding the same\n"
                 "JSON text, prepared once. Same process, same run, 2-core machine (%s).\n\n",
            nexus_version(), docs, gets, sqlite3_libversion(), host);
    fprintf(out, "| workload | NexusLite cache off | NexusLite cache on | SQLite |\n|---|---|---|---|\n");
    fprintf(out, "| get, 1,000 hot ids (hit vs miss) | %.0f ns | %.0f ns | %.0f ns |\n", miss_ns, hit_ns,
            sqlite_hot_ns);
    fprintf(out, "| get, all %ld ids | %.0f ns | %.0f ns | %.0f ns |\n", docs, off_all_ns, on_all_ns,
            sqlite_all_ns);
    fprintf(out, "| throughput, all ids | %.0f gets/s | %.0f gets/s | %.0f lookups/s |\n\n",
            1e9 / off_all_ns, 1e9 / on_all_ns, 1e9 / sqlite_all_ns);
    fprintf(out, "Cache statistics at the end:\n\n```json\n%s\n```\n", stats);
    fclose(out);
    printf("hit %.0f ns, miss %.0f ns, on %.0f ns, off %.0f ns, sqlite %.0f ns\n", hit_ns, miss_ns,
           on_all_ns, off_all_ns, sqlite_all_ns);

    nexus_free(stats);
    check(nexus_close(db), "close");
    sqlite3_close(s);
    snprintf(buf, sizeof buf, "rm -rf %s", dir);
    return system(buf) == 0 ? 0 : 1;
}
