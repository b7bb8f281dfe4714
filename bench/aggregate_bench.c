/*
 * The aggregation benchmark of issue #21: NexusLite's `nexus_aggregate` beside SQLite's
 * GROUP BY / ORDER BY / JOIN over json_extract, through the C ABI. scripts/bench-aggregate.sh
 * builds it, runs it once per engine (each in a process of its own) and writes
 * benchmarks/aggregate.md.
 *
 *   aggregate_bench ENGINE WORKDIR
 *
 * ENGINE is `nexus` or `sqlite`. Results go to stdout as `key value` lines (the script
 * prefixes them with the engine).
 *
 * NexusLite is opened with its defaults (`{}`). SQLite 3 (the system library):
 * journal_mode=WAL, synchronous FULL (NexusLite's default sync), its default cache size,
 * prepared statements, `docs(id TEXT PRIMARY KEY, body TEXT)` with the document as JSON
 * text, queries through json_extract, an index on a json_extract expression.
 *
 * Steps (sizes from the environment, defaults in brackets; the script scales them):
 *   load    BENCH_AGG_DOCS [1000000] documents `{_id, cat, price, qty, region}` (cat one of
 *           100 strings, price a double with two decimals, qty an int 1..100, region one of
 *           10), 1,000 per transaction, the same pseudo-random data in both engines; then
 *           the collection `cats` of 100 documents `{_id: cat name, label}`.
 *   group   `$group` by cat with `$sum` of qty and `$avg` of price over all documents
 *           (BENCH_AGG_GROUP_REPS [3] runs, the median); prints the groups and the sum of
 *           the sums (the script checks both engines agree).
 *   topk    `$match` {region: "r3"} + `$sort` {price: -1} + `$limit` 10:
 *           BENCH_AGG_TOPK_SCANS [5] queries without an index, then (after the index on
 *           region, its build time reported) BENCH_AGG_TOPK_QUERIES [50] with it;
 *           prints the sum of the 10 prices returned (the script checks they agree).
 *   lookup  `$match` {region: "r3"} + `$limit` 10000 + `$lookup` from cats on cat = _id
 *           (BENCH_AGG_LOOKUP_REPS [5] runs, with the region index); rows/s.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nexus.h>
#include <sqlite3.h>

#define BENCH_NAME "aggregate_bench"
#include "bench_util.h"

static const char *ENGINE;
static int SQL; /* the engine of this process: 1 SQLite, 0 NexusLite */
static nexus_db *NX;
static sqlite3 *SQ;

static void put(const char *key, double v)
{
    printf("%s %.10g\n", key, v);
    fflush(stdout);
    fprintf(stderr, "  %-6s %-28s %.10g\n", ENGINE, key, v);
}

static void exec_sql(const char *sql) { sq(SQ, sqlite3_exec(SQ, sql, NULL, NULL, NULL), sql); }

static sqlite3_stmt *prep(const char *sql)
{
    sqlite3_stmt *st = NULL;
    sq(SQ, sqlite3_prepare_v2(SQ, sql, -1, &st, NULL), sql);
    return st;
}

/* The number after `"key":` in `json` (also inside `{"$numberLong": "..."}` /
 * `{"$numberDouble": "..."}`), 0 when absent. */
static double json_num(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (!p)
        return 0;
    p += strlen(pat);
    while (*p && (*p == ' ' || *p == '{' || *p == '"' || *p == '$' || *p == ':' || (*p >= 'a' && *p <= 'z') ||
                  (*p >= 'A' && *p <= 'Z')))
        p++;
    return strtod(p, NULL);
}

/* Runs `pipeline` on `coll`; the rows it returns. `sum_key` (may be NULL): the sum of that
 * number over the rows into `*sum`; `bytes`: their JSON lengths summed. */
static long nx_agg(const char *coll, const char *pipeline, const char *sum_key, double *sum, size_t *bytes)
{
    nexus_cursor *cur = NULL;
    const char *json;
    long rows = 0;
    int rc;
    nx(nexus_aggregate(NX, coll, pipeline, NULL, &cur), "aggregate");
    while ((rc = nexus_cursor_next(cur, &json)) == NEXUS_ROW) {
        rows++;
        *bytes += strlen(json);
        if (sum_key)
            *sum += json_num(json, sum_key);
    }
    if (rc != NEXUS_DONE)
        nx(rc, "cursor_next");
    nx(nexus_cursor_close(cur), "cursor_close");
    return rows;
}

/* Steps prepared `st` to the end; the rows. `sum_col` >= 0: the sum of that column into
 * `*sum`; `bytes`: the lengths of the text columns 0 .. `text_cols`-1 summed. */
static long sq_agg(sqlite3_stmt *st, int sum_col, int text_cols, double *sum, size_t *bytes)
{
    long rows = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        rows++;
        for (int i = 0; i < text_cols; i++) {
            const unsigned char *t = sqlite3_column_text(st, i);
            *bytes += t ? strlen((const char *)t) : 0;
        }
        if (sum_col >= 0)
            *sum += sqlite3_column_double(st, sum_col);
    }
    sq(SQ, rc, "step");
    sqlite3_reset(st);
    return rows;
}

static void begin(void)
{
    if (SQL)
        exec_sql("BEGIN");
    else
        nx(nexus_begin(NX), "begin");
}

static void commit(void)
{
    if (SQL)
        exec_sql("COMMIT");
    else
        nx(nexus_commit(NX), "commit");
}

static void load(long n)
{
    sqlite3_stmt *ins = NULL, *cins = NULL;
    if (SQL) {
        exec_sql("CREATE TABLE docs(id TEXT PRIMARY KEY, body TEXT)");
        exec_sql("CREATE TABLE cats(id TEXT PRIMARY KEY, body TEXT)");
        ins = prep("INSERT INTO docs VALUES(?, ?)");
        cins = prep("INSERT INTO cats VALUES(?, ?)");
    }
    uint64_t r = 0x9e3779b97f4a7c15ull;
    char id[32], json[256];
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        if (i % 1000 == 0)
            begin();
        long cat = (long)(next_rand(&r) % 100), qty = 1 + (long)(next_rand(&r) % 100),
             region = (long)(next_rand(&r) % 10), cents = (long)(next_rand(&r) % 100000);
        snprintf(id, sizeof id, "d%09ld", i);
        snprintf(json, sizeof json,
                 "{\"_id\":\"%s\",\"cat\":\"cat%02ld\",\"price\":%ld.%02ld,\"qty\":%ld,\"region\":\"r%ld\"}", id,
                 cat, cents / 100, cents % 100, qty, region);
        if (SQL)
            sq_run2(SQ, ins, id, json, "insert");
        else
            nx(nexus_insert(NX, "docs", json, NULL), "insert");
        if (i % 1000 == 999 || i == n - 1)
            commit();
    }
    double dt = now_s() - t0;
    put("load_seconds", dt);
    put("load_docs_per_s", (double)n / dt);
    begin();
    for (int c = 0; c < 100; c++) {
        snprintf(id, sizeof id, "cat%02d", c);
        snprintf(json, sizeof json, "{\"_id\":\"%s\",\"label\":\"Category %d\"}", id, c);
        if (SQL)
            sq_run2(SQ, cins, id, json, "insert cats");
        else
            nx(nexus_insert(NX, "cats", json, NULL), "insert cats");
    }
    commit();
    if (SQL) {
        sqlite3_finalize(ins);
        sqlite3_finalize(cins);
    }
}

static void group(long n, long reps)
{
    const char *pipeline = "[{\"$group\":{\"_id\":\"$cat\",\"total\":{\"$sum\":\"$qty\"},"
                           "\"avgPrice\":{\"$avg\":\"$price\"}}}]";
    sqlite3_stmt *st = SQL ? prep("SELECT json_extract(body,'$.cat'), sum(json_extract(body,'$.qty')), "
                                  "avg(json_extract(body,'$.price')) FROM docs GROUP BY 1")
                           : NULL;
    double *t = malloc((size_t)reps * sizeof *t), sum = 0;
    long groups = 0;
    for (long k = 0; k < reps; k++) {
        size_t bytes = 0;
        sum = 0;
        double t0 = now_s();
        groups = SQL ? sq_agg(st, 1, 1, &sum, &bytes) : nx_agg("docs", pipeline, "total", &sum, &bytes);
        t[k] = now_s() - t0;
    }
    double med = median(t, reps);
    put("group_seconds", med);
    put("group_docs_per_s", (double)n / med);
    put("group_groups", (double)groups);
    put("group_qty_sum", sum);
    free(t);
    sqlite3_finalize(st);
}

/* `reps` top-k queries; queries/s under `key`, the sum of the prices of the last run under
 * `key`_price_sum. */
static void topk(const char *key, long reps)
{
    const char *pipeline = "[{\"$match\":{\"region\":\"r3\"}},{\"$sort\":{\"price\":-1}},{\"$limit\":10}]";
    sqlite3_stmt *st = SQL ? prep("SELECT body, json_extract(body,'$.price') FROM docs "
                                  "WHERE json_extract(body,'$.region') = 'r3' "
                                  "ORDER BY json_extract(body,'$.price') DESC LIMIT 10")
                           : NULL;
    double sum = 0;
    long rows = 0;
    double t0 = now_s();
    for (long k = 0; k < reps; k++) {
        size_t bytes = 0;
        sum = 0;
        rows = SQL ? sq_agg(st, 1, 1, &sum, &bytes) : nx_agg("docs", pipeline, "price", &sum, &bytes);
    }
    double dt = now_s() - t0;
    char name[64];
    snprintf(name, sizeof name, "%s_per_s", key);
    put(name, (double)reps / dt);
    snprintf(name, sizeof name, "%s_rows", key);
    put(name, (double)rows);
    snprintf(name, sizeof name, "%s_price_sum", key);
    put(name, sum);
    sqlite3_finalize(st);
}

static void lookup(long reps)
{
    const char *pipeline = "[{\"$match\":{\"region\":\"r3\"}},{\"$limit\":10000},"
                           "{\"$lookup\":{\"from\":\"cats\",\"localField\":\"cat\",\"foreignField\":\"_id\","
                           "\"as\":\"category\"}}]";
    sqlite3_stmt *st = SQL ? prep("SELECT d.body, c.body FROM (SELECT body FROM docs "
                                  "WHERE json_extract(body,'$.region') = 'r3' LIMIT 10000) d "
                                  "JOIN cats c ON c.id = json_extract(d.body,'$.cat')")
                           : NULL;
    long rows = 0, total = 0;
    double t0 = now_s();
    for (long k = 0; k < reps; k++) {
        size_t bytes = 0;
        double unused = 0;
        rows = SQL ? sq_agg(st, -1, 2, &unused, &bytes) : nx_agg("docs", pipeline, NULL, &unused, &bytes);
        total += rows;
    }
    double dt = now_s() - t0;
    put("lookup_rows_per_s", (double)total / dt);
    put("lookup_rows", (double)rows);
    sqlite3_finalize(st);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "nexus") && strcmp(argv[1], "sqlite"))) {
        fprintf(stderr, "usage: aggregate_bench nexus|sqlite WORKDIR\n");
        return 2;
    }
    ENGINE = argv[1];
    SQL = !strcmp(ENGINE, "sqlite");
    long n = env_long("BENCH_AGG_DOCS", 1000000);
    char path[512];
    snprintf(path, sizeof path, "%s/agg.%s", argv[2], SQL ? "sqlite" : "db");
    if (SQL) {
        sq(SQ, sqlite3_open(path, &SQ), "open");
        exec_sql("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
    } else {
        nx(nexus_open(path, "{}", &NX), "nexus_open");
    }
    put("docs", (double)n);
    load(n);
    group(n, env_long("BENCH_AGG_GROUP_REPS", 3));
    topk("topk_scan", env_long("BENCH_AGG_TOPK_SCANS", 5));
    double t0 = now_s();
    if (SQL) {
        exec_sql("CREATE INDEX docs_region ON docs(json_extract(body,'$.region'))");
    } else {
        char *name = NULL;
        nx(nexus_create_index(NX, "docs", "{\"region\":1}", NULL, &name), "create_index region");
        nexus_free(name);
    }
    put("index_seconds", now_s() - t0);
    topk("topk_index", env_long("BENCH_AGG_TOPK_QUERIES", 50));
    lookup(env_long("BENCH_AGG_LOOKUP_REPS", 5));
    put("rss_kib", (double)peak_rss_kib());
    if (SQL)
        sq(SQ, sqlite3_close(SQ), "close");
    else
        nx(nexus_close(NX), "nexus_close");
    return 0;
}
