/*
 * Secondary index benchmark through the C ABI: NexusLite (default storage engine) vs SQLite
 * with expression indexes, side by side in one run (scripts/bench-index.sh builds and runs
 * it; `make bench`).
 *
 *   index_bench WORKDIR TABLE.md RAW.txt
 *
 * Data: BENCH_DOCS documents of ~200 bytes, generated deterministically (doc_json):
 *
 *   {"_id":"doc00000042","user":{"email":"user42@example.com","age":<i*7919 % 100>,
 *    "name":"user 42"},"city":"city<i % 1000>","score":<i*104729 % 100000>,
 *    "tags":["a","b","c"],"bio":"lorem ipsum ..."}
 *
 * user.email is unique, user.age an int in 0..99 (1% of the documents per value).
 * Indexes: {"user.email":1}, {"user.age":1} and the compound {"user.age":1,"score":-1}
 * (nexus_create_index); on SQLite CREATE INDEX ... ON docs(json_extract(body,'$.user.email'))
 * etc., over `docs(id TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID` (as bench/storage_bench.c).
 *
 * Workloads, each engine on its own file, timed passes after a warm-up, median reported; the
 * engines take turns pass by pass, so that the shared machine's changing load falls on both:
 *   - insert throughput (docs/s) with 0, 1 and 3 indexes, 1,000-document transactions, a
 *     fresh file per pass (the indexes are created on the empty collection first);
 *   - point lookup on user.email (random existing emails): nexus_find {"user.email": ...} +
 *     the cursor read to the end / SELECT body ... WHERE json_extract(body,'$.user.email') = ?;
 *     every lookup must return exactly one document;
 *   - range query on user.age: {"user.age": {"$gte": x, "$lt": x + 1}} (1% of the documents),
 *     every result read; both engines must return the count the generator implies;
 *   - the same two queries on the same data before the indexes exist (full scans), fewer
 *     iterations, to show what the index buys;
 *   - building the three indexes over the loaded documents (one pass).
 *   - the indexed queries again with the memory-map settings aligned, each engine reopened on
 *     the same file: "both mapped" (NexusLite {"mmap": true}, SQLite PRAGMA mmap_size=2 GiB)
 *     and "neither mapped" (NexusLite {"mmap": false}, both engines' default): a memory map
 *     is opt-in on both sides (a file shortened by another process, or a media error, is a
 *     SIGBUS under a map); the "neither" rows repeat the default rows on a reopened file.
 * Before timing indexed queries it checks that the index is used: nexus_explain must report
 * IXSCAN, SQLite's EXPLAIN QUERY PLAN must say "USING INDEX"; both plans go to RAW.txt.
 *
 * Settings: NexusLite {"sync": BENCH_SYNC, "cache_capacity": 0} (document cache off, so reads
 * go to the engine; expiry sweeper paused); SQLite journal_mode=WAL, synchronous=NORMAL for
 * BENCH_SYNC=normal or FULL for BENCH_SYNC=full (the same durability on both sides),
 * cache_size 32 MiB (NexusLite's default page cache).
 *
 * Environment (defaults in brackets): BENCH_DOCS [200000], BENCH_RUNS [3], BENCH_SYNC
 * [normal], BENCH_LOOKUPS [10000] indexed point lookups per pass, BENCH_SCAN_LOOKUPS [20]
 * unindexed point lookups per pass, BENCH_RANGES [20] indexed range queries per pass,
 * BENCH_SCAN_RANGES [5] unindexed range queries per pass. BENCH_INDEX_SKIP_CREATE=1 creates
 * no index on either side and runs only the unindexed workloads (insert with 0 indexes and
 * the full-scan queries): a check of the harness while nexus_create_index is unsupported.
 * Any failing call prints nexus_errmsg() (or sqlite3_errmsg) and exits 1.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nexus.h>
#include <sqlite3.h>

#define BENCH_NAME "index_bench"
#include "bench_util.h"

enum { NX, SQ, NENG };
static const char *ENG[NENG] = {"NexusLite", "SQLite"};

static long DOCS, RUNS, LOOKUPS, SCAN_LOOKUPS, RANGES, SCAN_RANGES;
static int SKIP_CREATE;
static const char *SYNC, *WORK;
static FILE *RAW;

static void fail(const char *msg)
{
    fprintf(stderr, "index_bench: %s\n", msg);
    exit(1);
}

static long age_of(long i) { return (i * 7919) % 100; }

/* A ~200-byte document; the id is returned in `id`. */
static void doc_json(char *buf, size_t cap, char *id, size_t idcap, long i)
{
    snprintf(id, idcap, "doc%08ld", i);
    snprintf(buf, cap,
             "{\"_id\":\"%s\",\"user\":{\"email\":\"user%ld@example.com\",\"age\":%ld,\"name\":\"user %ld\"},"
             "\"city\":\"city%ld\",\"score\":%ld,\"tags\":[\"a\",\"b\",\"c\"],"
             "\"bio\":\"lorem ipsum dolor sit amet consectetur adipiscing elit sed do\"}",
             id, i, age_of(i), i, i % 1000, (i * 104729) % 100000);
}

/* How many documents have x <= user.age < x + 1. */
static long expected_range(long x)
{
    long n = 0;
    for (long i = 0; i < DOCS; i++)
        n += age_of(i) == x;
    return n;
}

/* ---- a connection to one engine ---- */

typedef struct {
    int eng;
    nexus_db *n;
    sqlite3 *s;
    sqlite3_stmt *ins, *email, *range;
} conn;

/* The three indexes, in creation order (0, 1 or 3 of them are created). */
static const char *NX_KEYS[3] = {"{\"user.email\":1}", "{\"user.age\":1}", "{\"user.age\":1,\"score\":-1}"};
static const char *NX_NAMES[3] = {"user.email_1", "user.age_1", "user.age_1_score_-1"};
static const char *SQ_INDEX[3] = {
    "CREATE INDEX docs_email ON docs(json_extract(body, '$.user.email'))",
    "CREATE INDEX docs_age ON docs(json_extract(body, '$.user.age'))",
    "CREATE INDEX docs_age_score ON docs(json_extract(body, '$.user.age'), json_extract(body, '$.score') DESC)",
};
static const char *SQ_EMAIL = "SELECT body FROM docs WHERE json_extract(body, '$.user.email') = ?";
static const char *SQ_RANGE =
    "SELECT body FROM docs WHERE json_extract(body, '$.user.age') >= ? AND json_extract(body, '$.user.age') < ?";

static void path_of(char *buf, size_t cap, int eng, const char *name)
{
    snprintf(buf, cap, "%s/%s-%s.%s", WORK, name, ENG[eng], eng == SQ ? "sqlite" : "db");
}

static void rm_db(const char *path)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -f '%s' '%s'-wal '%s'-shm '%.*s.wasp'", path, path, path,
             (int)(strlen(path) - 3), path);
    if (system(cmd) != 0)
        fail("rm failed");
}

/* Memory maps for the next conn_open: each engine's default, both mapped, neither mapped. */
enum { MAP_DEFAULT, MAP_BOTH, MAP_NEITHER, NMAP };
static int MAP_MODE = MAP_DEFAULT;

static conn conn_open(int eng, const char *path)
{
    conn c = {.eng = eng};
    if (eng == NX) {
        char opts[256];
        snprintf(opts, sizeof opts, "{\"sync\":\"%s\",\"cache_capacity\":0,\"sweeper_interval_ms\":0%s}", SYNC,
                 MAP_MODE == MAP_NEITHER ? ",\"mmap\":false" : MAP_MODE == MAP_BOTH ? ",\"mmap\":true" : "");
        nx(nexus_open(path, opts, &c.n), "nexus_open");
        return c;
    }
    sq(c.s, sqlite3_open(path, &c.s), "open");
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas, "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA cache_size=-32768;",
             strcmp(SYNC, "full") == 0 ? "FULL" : "NORMAL");
    sq(c.s, sqlite3_exec(c.s, pragmas, NULL, NULL, NULL), "pragmas");
    if (MAP_MODE == MAP_BOTH) {
        sq(c.s, sqlite3_exec(c.s, "PRAGMA mmap_size=2147418112", NULL, NULL, NULL), "mmap_size");
        sqlite3_stmt *st;
        sq(c.s, sqlite3_prepare_v2(c.s, "PRAGMA mmap_size", -1, &st, NULL), "read mmap_size");
        if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int64(st, 0) < 1000000000)
            fail("SQLite did not take PRAGMA mmap_size (built without memory maps?)");
        fprintf(RAW, "SQLite mmap_size for the \"both mapped\" rows: %lld\n", (long long)sqlite3_column_int64(st, 0));
        sqlite3_finalize(st);
    }
    sq(c.s,
       sqlite3_exec(c.s, "CREATE TABLE IF NOT EXISTS docs(id TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID", NULL,
                    NULL, NULL),
       "create table");
    sq(c.s, sqlite3_prepare_v2(c.s, "INSERT INTO docs VALUES(?, ?)", -1, &c.ins, NULL), "prepare insert");
    return c;
}

/* Prepares the query statements (after CREATE INDEX, so the plans see the indexes). */
static void prepare_queries(conn *c)
{
    if (c->eng != SQ)
        return;
    sqlite3_finalize(c->email);
    sqlite3_finalize(c->range);
    sq(c->s, sqlite3_prepare_v2(c->s, SQ_EMAIL, -1, &c->email, NULL), "prepare email lookup");
    sq(c->s, sqlite3_prepare_v2(c->s, SQ_RANGE, -1, &c->range, NULL), "prepare age range");
}

static void conn_close(conn *c)
{
    if (c->eng == NX) {
        nx(nexus_close(c->n), "nexus_close");
        return;
    }
    sqlite3_finalize(c->ins);
    sqlite3_finalize(c->email);
    sqlite3_finalize(c->range);
    sq(c->s, sqlite3_close(c->s), "close");
}

static void exec(conn *c, const char *sql)
{
    sq(c->s, sqlite3_exec(c->s, sql, NULL, NULL, NULL), sql);
}

static void create_indexes(conn *c, int n)
{
    for (int k = 0; k < n; k++) {
        if (c->eng == SQ) {
            exec(c, SQ_INDEX[k]);
            continue;
        }
        char *name = NULL;
        nx(nexus_create_index(c->n, "docs", NX_KEYS[k], NULL, &name), "nexus_create_index");
        if (strcmp(name, NX_NAMES[k]) != 0) {
            fprintf(stderr, "index_bench: index %s was named %s, expected %s\n", NX_KEYS[k], name, NX_NAMES[k]);
            exit(1);
        }
        nexus_free(name);
    }
}

/* Loads DOCS documents in 1,000-document transactions; returns documents per second. */
static double load(conn *c)
{
    char buf[512], id[32];
    double t0 = now_s();
    for (long i = 0; i < DOCS; i += 1000) {
        if (c->eng == NX)
            nx(nexus_begin(c->n), "nexus_begin");
        else
            exec(c, "BEGIN");
        for (long j = i; j < i + 1000 && j < DOCS; j++) {
            doc_json(buf, sizeof buf, id, sizeof id, j);
            if (c->eng == NX) {
                nx(nexus_insert(c->n, "docs", buf, NULL), "nexus_insert");
                continue;
            }
            sqlite3_bind_text(c->ins, 1, id, -1, SQLITE_STATIC);
            sqlite3_bind_text(c->ins, 2, buf, -1, SQLITE_STATIC);
            sq(c->s, sqlite3_step(c->ins), "insert");
            sqlite3_reset(c->ins);
        }
        if (c->eng == NX)
            nx(nexus_commit(c->n), "nexus_commit");
        else
            exec(c, "COMMIT");
    }
    return (double)DOCS / (now_s() - t0);
}

/* Runs a query and reads every result; returns the number of documents. */
static long nx_query(conn *c, const char *filter)
{
    nexus_cursor *cur = NULL;
    const char *doc = NULL;
    long n = 0;
    int rc;
    nx(nexus_find(c->n, "docs", filter, NULL, &cur), "nexus_find");
    while ((rc = nexus_cursor_next(cur, &doc)) == NEXUS_ROW) {
        if (!doc || doc[0] != '{')
            fail("nexus_cursor_next returned no document");
        n++;
    }
    if (rc != NEXUS_DONE)
        nx(rc, "nexus_cursor_next");
    nx(nexus_cursor_close(cur), "nexus_cursor_close");
    return n;
}

static long sq_rows(conn *c, sqlite3_stmt *st)
{
    long n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *body = sqlite3_column_text(st, 0);
        if (!body || body[0] != '{')
            fail("sqlite returned no document");
        n++;
    }
    sq(c->s, rc, "query step");
    sqlite3_reset(st);
    return n;
}

static void email_filter(char *buf, size_t cap, long i)
{
    snprintf(buf, cap, "{\"user.email\":\"user%ld@example.com\"}", i);
}

static void range_filter(char *buf, size_t cap, long x)
{
    snprintf(buf, cap, "{\"user.age\":{\"$gte\":%ld,\"$lt\":%ld}}", x, x + 1);
}

static long lookup(conn *c, long i)
{
    if (c->eng == NX) {
        char f[96];
        email_filter(f, sizeof f, i);
        return nx_query(c, f);
    }
    char email[64];
    snprintf(email, sizeof email, "user%ld@example.com", i);
    sqlite3_bind_text(c->email, 1, email, -1, SQLITE_TRANSIENT);
    return sq_rows(c, c->email);
}

static long range(conn *c, long x)
{
    if (c->eng == NX) {
        char f[96];
        range_filter(f, sizeof f, x);
        return nx_query(c, f);
    }
    sqlite3_bind_int64(c->range, 1, x);
    sqlite3_bind_int64(c->range, 2, x + 1);
    return sq_rows(c, c->range);
}

static long RANGE_EXPECTED[100];

/* Queries per second over `n` point lookups (kind 0) or range queries (kind 1) with random
 * arguments; every result count is checked. */
static double queries(conn *c, int kind, long n, uint64_t *rng)
{
    double t0 = now_s();
    for (long k = 0; k < n; k++) {
        long arg = kind == 0 ? (long)(next_rand(rng) % (uint64_t)DOCS) : (long)(next_rand(rng) % 100);
        long got = kind == 0 ? lookup(c, arg) : range(c, arg);
        long want = kind == 0 ? 1 : RANGE_EXPECTED[arg];
        if (got != want) {
            fprintf(stderr, "index_bench: %s %s %ld returned %ld documents, expected %ld\n", ENG[c->eng],
                    kind == 0 ? "lookup of user" : "age range from", arg, got, want);
            exit(1);
        }
    }
    return (double)n / (now_s() - t0);
}

/* Writes the plan of both queries to RAW and checks that the indexes are used (or, before
 * they exist, that they are not). */
static void check_plans(conn *c, int indexed)
{
    if (c->eng == NX) {
        char f[2][96];
        email_filter(f[0], sizeof f[0], 1);
        range_filter(f[1], sizeof f[1], 1);
        for (int q = 0; q < 2; q++) {
            char *plan = NULL;
            nx(nexus_explain(c->n, "docs", f[q], NULL, &plan), "nexus_explain");
            fprintf(RAW, "plan NexusLite %s: %s\n", f[q], plan);
            int ixscan = strstr(plan, "IXSCAN") != NULL;
            nexus_free(plan);
            if (ixscan != indexed) {
                fprintf(stderr, "index_bench: nexus_explain of %s %s IXSCAN\n", f[q],
                        indexed ? "does not show" : "shows");
                exit(1);
            }
        }
        return;
    }
    const char *sql[2] = {SQ_EMAIL, SQ_RANGE};
    for (int q = 0; q < 2; q++) {
        char eqp[512];
        sqlite3_stmt *st;
        snprintf(eqp, sizeof eqp, "EXPLAIN QUERY PLAN %s", sql[q]);
        sq(c->s, sqlite3_prepare_v2(c->s, eqp, -1, &st, NULL), "prepare explain");
        int uses_index = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *detail = (const char *)sqlite3_column_text(st, 3);
            fprintf(RAW, "plan SQLite %s: %s\n", sql[q], detail ? detail : "");
            uses_index |= detail && strstr(detail, "USING INDEX") != NULL;
        }
        sqlite3_finalize(st);
        if (uses_index != indexed) {
            fprintf(stderr, "index_bench: SQLite plan of %s %s an index\n", sql[q], indexed ? "does not use" : "uses");
            exit(1);
        }
    }
}

/* ---- results ---- */

#define NWL 16
static struct {
    char name[160];
    const char *unit;
    int higher_better;
    double v[NENG];
} R[NWL];
static int NR;

__attribute__((format(printf, 3, 4))) static int workload(const char *unit, int higher_better, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(R[NR].name, sizeof R[NR].name, fmt, ap);
    va_end(ap);
    R[NR].unit = unit;
    R[NR].higher_better = higher_better;
    return NR++;
}

static void record(int w, int eng, double *samples, long n)
{
    fprintf(RAW, "%-52s %-9s", R[w].name, ENG[eng]);
    for (long k = 0; k < n; k++)
        fprintf(RAW, " %.6g", samples[k]);
    double m = median(samples, n);
    fprintf(RAW, "   median %.6g %s\n", m, R[w].unit);
    fflush(RAW);
    fprintf(stderr, "  %-52s %-9s %.6g %s\n", R[w].name, ENG[eng], m, R[w].unit);
    R[w].v[eng] = m;
}

/* Queries/s of RUNS passes of `n` queries on each engine after a warm-up of max(n/10, 1),
 * the engines taking turns pass by pass (so that a change in the machine's load between
 * passes falls on both); medians recorded. Each engine draws its own copy of the same
 * random arguments. */
static void time_queries(int w, conn c[NENG], int kind, long n, uint64_t rng[NENG])
{
    double s[NENG][64];
    for (int e = 0; e < NENG; e++)
        queries(&c[e], kind, n / 10 > 0 ? n / 10 : 1, &rng[e]);
    for (long r = 0; r < RUNS; r++)
        for (int e = 0; e < NENG; e++)
            s[e][r] = queries(&c[e], kind, n, &rng[e]);
    for (int e = 0; e < NENG; e++)
        record(w, e, s[e], RUNS);
}

/* Workload rows; -1 where skipped (BENCH_INDEX_SKIP_CREATE). */
static int W_INS[3], W_BUILD, W_LOOK[NMAP], W_SCAN_LOOK, W_RANGE[NMAP], W_SCAN_RANGE;

/* Every workload, the engines taking turns pass by pass (inserts, queries) or one after
 * the other (the single index build). */
static void run_all(void)
{
    static const int NIDX[3] = {0, 1, 3};
    char path[NENG][512];
    double s[NENG][64];
    for (int e = 0; e < NENG; e++)
        path_of(path[e], sizeof path[e], e, "main");

    /* Insert throughput with 1 and 3 indexes: a fresh file per pass, indexes created on the
     * empty collection first. */
    for (int k = 1; k < 3 && !SKIP_CREATE; k++) {
        fprintf(stderr, "== inserts with %d index(es)\n", NIDX[k]);
        for (long r = 0; r < RUNS; r++)
            for (int e = 0; e < NENG; e++) {
                rm_db(path[e]);
                conn c = conn_open(e, path[e]);
                create_indexes(&c, NIDX[k]);
                s[e][r] = load(&c);
                conn_close(&c);
            }
        for (int e = 0; e < NENG; e++)
            record(W_INS[k], e, s[e], RUNS);
    }

    /* Insert throughput without secondary indexes; each engine's last file stays for the
     * queries. */
    fprintf(stderr, "== inserts without a secondary index\n");
    conn c[NENG];
    for (long r = 0; r < RUNS; r++)
        for (int e = 0; e < NENG; e++) {
            if (r > 0)
                conn_close(&c[e]);
            rm_db(path[e]);
            c[e] = conn_open(e, path[e]);
            s[e][r] = load(&c[e]);
        }
    for (int e = 0; e < NENG; e++)
        record(W_INS[0], e, s[e], RUNS);

    /* The queries without an index (full scans). */
    fprintf(stderr, "== queries without an index\n");
    uint64_t rng[NENG];
    for (int e = 0; e < NENG; e++) {
        rng[e] = 0x9e3779b97f4a7c15ull;
        prepare_queries(&c[e]);
        if (!SKIP_CREATE)
            check_plans(&c[e], 0); /* nexus_explain belongs to the index feature */
    }
    time_queries(W_SCAN_LOOK, c, 0, SCAN_LOOKUPS, rng);
    time_queries(W_SCAN_RANGE, c, 1, SCAN_RANGES, rng);

    if (!SKIP_CREATE) {
        /* Build the three indexes over the loaded documents (one pass each), then the same
         * queries through them. */
        fprintf(stderr, "== index build and indexed queries\n");
        for (int e = 0; e < NENG; e++) {
            double t0 = now_s();
            create_indexes(&c[e], 3);
            s[e][0] = now_s() - t0;
            record(W_BUILD, e, s[e], 1);
            prepare_queries(&c[e]);
            check_plans(&c[e], 1);
        }
        time_queries(W_LOOK[MAP_DEFAULT], c, 0, LOOKUPS, rng);
        time_queries(W_RANGE[MAP_DEFAULT], c, 1, RANGES, rng);
        for (int m = MAP_BOTH; m < NMAP; m++) {
            MAP_MODE = m;
            for (int e = 0; e < NENG; e++) {
                conn_close(&c[e]);
                c[e] = conn_open(e, path[e]);
                prepare_queries(&c[e]);
            }
            MAP_MODE = MAP_DEFAULT;
            time_queries(W_LOOK[m], c, 0, LOOKUPS, rng);
            time_queries(W_RANGE[m], c, 1, RANGES, rng);
        }
    }
    for (int e = 0; e < NENG; e++) {
        conn_close(&c[e]);
        rm_db(path[e]);
    }
}

static void row_ratio(FILE *out, double a, double b, int higher_better)
{
    /* >1: NexusLite better than SQLite (faster). */
    double ratio = higher_better ? a / b : b / a;
    fprintf(out, " %.2fx %s |", ratio, ratio >= 1.0 ? "better" : "worse");
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s WORKDIR TABLE.md RAW.txt\n", argv[0]);
        return 2;
    }
    WORK = argv[1];
    DOCS = env_long("BENCH_DOCS", 200000);
    RUNS = env_long("BENCH_RUNS", 3);
    LOOKUPS = env_long("BENCH_LOOKUPS", 10000);
    SCAN_LOOKUPS = env_long("BENCH_SCAN_LOOKUPS", 20);
    RANGES = env_long("BENCH_RANGES", 20);
    SCAN_RANGES = env_long("BENCH_SCAN_RANGES", 5);
    SKIP_CREATE = env_long("BENCH_INDEX_SKIP_CREATE", 0) != 0;
    SYNC = getenv("BENCH_SYNC") && *getenv("BENCH_SYNC") ? getenv("BENCH_SYNC") : "normal";
    if (RUNS < 1 || RUNS > 64 || DOCS < 1000 || LOOKUPS < 1 || SCAN_LOOKUPS < 1 || RANGES < 1 || SCAN_RANGES < 1)
        fail("bad BENCH_* setting (BENCH_DOCS >= 1000, 1 <= BENCH_RUNS <= 64, counts >= 1)");
    if (strcmp(SYNC, "normal") != 0 && strcmp(SYNC, "full") != 0)
        fail("BENCH_SYNC must be normal or full");
    RAW = fopen(argv[3], "w");
    if (!RAW)
        fail("cannot write RAW.txt");
    fprintf(RAW,
            "NexusLite %s, SQLite %s; DOCS=%ld RUNS=%ld SYNC=%s LOOKUPS=%ld SCAN_LOOKUPS=%ld RANGES=%ld "
            "SCAN_RANGES=%ld SKIP_CREATE=%d\n",
            nexus_version(), sqlite3_libversion(), DOCS, RUNS, SYNC, LOOKUPS, SCAN_LOOKUPS, RANGES, SCAN_RANGES,
            SKIP_CREATE);
    for (long x = 0; x < 100; x++)
        RANGE_EXPECTED[x] = expected_range(x);

    W_INS[0] = workload("docs/s", 1, "insert %ld docs, 1,000/txn, no secondary index", DOCS);
    W_INS[1] = SKIP_CREATE ? -1 : workload("docs/s", 1, "insert %ld docs, 1,000/txn, 1 index (user.email)", DOCS);
    W_INS[2] = SKIP_CREATE ? -1
                           : workload("docs/s", 1, "insert %ld docs, 1,000/txn, 3 indexes (+ user.age, age/score)",
                                      DOCS);
    W_BUILD = SKIP_CREATE ? -1 : workload("s", 0, "build the 3 indexes over %ld existing docs", DOCS);
    W_LOOK[MAP_DEFAULT] = SKIP_CREATE ? -1 : workload("queries/s", 1, "point lookup on indexed user.email");
    W_SCAN_LOOK = workload("queries/s", 1, "point lookup on user.email, no index");
    W_RANGE[MAP_DEFAULT] =
        SKIP_CREATE ? -1 : workload("queries/s", 1, "range on indexed user.age (1%%), all results read");
    W_SCAN_RANGE = workload("queries/s", 1, "range on user.age (1%%), no index");
    static const char *MAP_NAMES[NMAP] = {"", "both memory-mapped", "neither memory-mapped"};
    for (int m = MAP_BOTH; m < NMAP && !SKIP_CREATE; m++) {
        W_LOOK[m] = workload("queries/s", 1, "point lookup on indexed user.email, %s", MAP_NAMES[m]);
        W_RANGE[m] = workload("queries/s", 1, "range on indexed user.age (1%%), %s", MAP_NAMES[m]);
    }

    run_all();

    FILE *out = fopen(argv[2], "w");
    if (!out)
        fail("cannot write TABLE.md");
    fprintf(out, "| workload | unit | NexusLite | SQLite | NexusLite vs SQLite |\n");
    fprintf(out, "|---|---|---:|---:|---:|\n");
    for (int w = 0; w < NR; w++) {
        fprintf(out, "| %s | %s | %.4g | %.4g |", R[w].name, R[w].unit, R[w].v[NX], R[w].v[SQ]);
        row_ratio(out, R[w].v[NX], R[w].v[SQ], R[w].higher_better);
        fprintf(out, "\n");
    }
    if (!SKIP_CREATE) {
        fprintf(out, "\nWhat the index buys (indexed queries/s over full-scan queries/s, same data):\n\n");
        fprintf(out, "| query | NexusLite speedup | SQLite speedup |\n|---|---:|---:|\n");
        int pairs[2][2] = {{W_LOOK[MAP_DEFAULT], W_SCAN_LOOK}, {W_RANGE[MAP_DEFAULT], W_SCAN_RANGE}};
        const char *names[2] = {"point lookup on user.email", "range on user.age (1%)"};
        for (int p = 0; p < 2; p++)
            fprintf(out, "| %s | %.0fx | %.0fx |\n", names[p], R[pairs[p][0]].v[NX] / R[pairs[p][1]].v[NX],
                    R[pairs[p][0]].v[SQ] / R[pairs[p][1]].v[SQ]);
    }
    fclose(out);
    fclose(RAW);
    return 0;
}
