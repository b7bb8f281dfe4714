/* Filtered full-scan benchmark: NexusLite (no index) against SQLite json_extract.
 *
 *   scan_bench [N_DOCS] [RUNS] [OUT_DIR]      (defaults: 1000000 5 .)
 *
 * Both engines get the same N documents, generated deterministically:
 *
 *   {"_id": i, "name": "user<i>", "user": {"age": i*7919 % 100, "city": "city<i*104729 % 1000>",
 *    "score": <double>}, "tags": ["t<i%7>", "t<i%11>"], "active": <bool>}
 *
 * SQLite stores the same JSON text in a table docs(id INTEGER PRIMARY KEY, body TEXT);
 * NexusLite stores BSON documents in a collection. Neither has a secondary index, so
 * every query is a full scan that evaluates the predicate on every document. Queries
 * (each run RUNS times after one warm-up run; the median is reported):
 *
 *   eq    count   user.city = "city42"                     (0.1% match)
 *   range count   user.age >= 30 and user.age < 35         (5% match)
 *   eq    find    the same equality, every matching document returned as JSON text
 *   range find    the same range, every matching document returned as JSON text
 *
 * NexusLite: nexus_count / nexus_find + nexus_cursor_next. SQLite: SELECT count(*) /
 * SELECT body ... WHERE json_extract(body, '$.user.city') = ?. Files live in OUT_DIR
 * (bench.db / bench.wasp and bench.sqlite), sync off for both while loading. Results go to
 * stdout as a markdown table and, raw, to OUT_DIR/scan_raw.txt. */
#define _POSIX_C_SOURCE 200809L
#include <nexus.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "scan_bench: %s: %s\n", what, msg);
    exit(1);
}

static int doc_json(char *buf, size_t cap, long i)
{
    long age = (i * 7919) % 100, city = (i * 104729) % 1000;
    return snprintf(buf, cap,
                    "{\"_id\":%ld,\"name\":\"user%ld\",\"user\":{\"age\":%ld,\"city\":\"city%ld\","
                    "\"score\":%.3f},\"tags\":[\"t%ld\",\"t%ld\"],\"active\":%s}",
                    i, i, age, city, (double)(i % 1000) / 7.0, i % 7, i % 11,
                    i % 3 ? "true" : "false");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- NexusLite ---- */
static uint64_t nx_count(nexus_db *db, const char *filter)
{
    uint64_t n = 0;
    if (nexus_count(db, "docs", filter, &n) != NEXUS_OK)
        die("nexus_count", nexus_errmsg());
    return n;
}

static uint64_t nx_find(nexus_db *db, const char *filter)
{
    nexus_cursor *cur = NULL;
    const char *doc;
    uint64_t n = 0, bytes = 0;
    int rc;
    if (nexus_find(db, "docs", filter, NULL, &cur) != NEXUS_OK)
        die("nexus_find", nexus_errmsg());
    while ((rc = nexus_cursor_next(cur, &doc)) == NEXUS_ROW) {
        n++;
        bytes += strlen(doc);
    }
    if (rc != NEXUS_DONE)
        die("nexus_cursor_next", nexus_errmsg());
    nexus_cursor_close(cur);
    return n + (bytes == 0);
}

/* ---- SQLite ---- */
static sqlite3 *sq;

static void sq_exec(const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(sq, sql, NULL, NULL, &err) != SQLITE_OK)
        die(sql, err ? err : "?");
}

static uint64_t sq_query(const char *sql, int rows)
{
    sqlite3_stmt *st;
    uint64_t n = 0, bytes = 0;
    int rc;
    if (sqlite3_prepare_v2(sq, sql, -1, &st, NULL) != SQLITE_OK)
        die(sql, sqlite3_errmsg(sq));
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (rows) {
            n++;
            bytes += (uint64_t)sqlite3_column_bytes(st, 0);
            (void)sqlite3_column_text(st, 0);
        } else {
            n = (uint64_t)sqlite3_column_int64(st, 0);
        }
    }
    if (rc != SQLITE_DONE)
        die(sql, sqlite3_errmsg(sq));
    sqlite3_finalize(st);
    return n;
}

typedef struct {
    const char *name;
    const char *nexus_filter;
    const char *sql;
    int rows; /* find (return documents) rather than count */
} query;

static const query QUERIES[] = {
    {"eq count", "{\"user.city\":\"city42\"}",
     "SELECT count(*) FROM docs WHERE json_extract(body,'$.user.city') = 'city42'", 0},
    {"range count", "{\"user.age\":{\"$gte\":30,\"$lt\":35}}",
     "SELECT count(*) FROM docs WHERE json_extract(body,'$.user.age') >= 30 AND "
     "json_extract(body,'$.user.age') < 35",
     0},
    {"eq find", "{\"user.city\":\"city42\"}",
     "SELECT body FROM docs WHERE json_extract(body,'$.user.city') = 'city42'", 1},
    {"range find", "{\"user.age\":{\"$gte\":30,\"$lt\":35}}",
     "SELECT body FROM docs WHERE json_extract(body,'$.user.age') >= 30 AND "
     "json_extract(body,'$.user.age') < 35",
     1},
};
#define NQ (int)(sizeof QUERIES / sizeof QUERIES[0])

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    const char *dir = argc > 3 ? argv[3] : ".";
    char path[4096], sqpath[4096], rawpath[4096], doc[512];
    nexus_db *db = NULL;
    sqlite3_stmt *ins;
    double t, nx_load, sq_load;
    double nx_ms[NQ], sq_ms[NQ];
    uint64_t nx_n[NQ], sq_n[NQ];
    FILE *raw;
    int q, r;

    if (n <= 0 || runs <= 0)
        die("arguments", "usage: scan_bench [N_DOCS] [RUNS] [OUT_DIR]");
    snprintf(path, sizeof path, "%s/bench.db", dir);
    snprintf(sqpath, sizeof sqpath, "%s/bench.sqlite", dir);
    snprintf(rawpath, sizeof rawpath, "%s/scan_raw.txt", dir);
    remove(path);
    snprintf(doc, sizeof doc, "%s/bench.wasp", dir);
    remove(doc);
    remove(sqpath);

    /* Load NexusLite: insert_many in batches of 10,000 (one transaction each). */
    if (nexus_open(path, "{\"sync\":\"off\"}", &db) != NEXUS_OK)
        die("nexus_open", nexus_errmsg());
    t = now_ms();
    {
        size_t cap = 10000 * 256, len;
        char *batch = malloc(cap);
        long i = 0;
        if (!batch)
            die("malloc", "out of memory");
        while (i < n) {
            long j;
            uint64_t cnt;
            len = 0;
            batch[len++] = '[';
            for (j = 0; j < 10000 && i < n; j++, i++) {
                if (j)
                    batch[len++] = ',';
                len += (size_t)doc_json(batch + len, cap - len, i);
            }
            batch[len++] = ']';
            batch[len] = 0;
            if (nexus_insert_many(db, "docs", batch, &cnt) != NEXUS_OK)
                die("nexus_insert_many", nexus_errmsg());
        }
        free(batch);
    }
    nx_load = now_ms() - t;

    /* Load SQLite: one transaction, one prepared statement. */
    if (sqlite3_open(sqpath, &sq) != SQLITE_OK)
        die("sqlite3_open", sqlite3_errmsg(sq));
    sq_exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA cache_size=-1048576;");
    sq_exec("CREATE TABLE docs(id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
    t = now_ms();
    sq_exec("BEGIN");
    if (sqlite3_prepare_v2(sq, "INSERT INTO docs(id, body) VALUES (?, ?)", -1, &ins, NULL) !=
        SQLITE_OK)
        die("prepare insert", sqlite3_errmsg(sq));
    {
        long i;
        for (i = 0; i < n; i++) {
            int len = doc_json(doc, sizeof doc, i);
            sqlite3_bind_int64(ins, 1, i);
            sqlite3_bind_text(ins, 2, doc, len, SQLITE_TRANSIENT);
            if (sqlite3_step(ins) != SQLITE_DONE)
                die("insert", sqlite3_errmsg(sq));
            sqlite3_reset(ins);
        }
    }
    sqlite3_finalize(ins);
    sq_exec("COMMIT");
    sq_load = now_ms() - t;

    raw = fopen(rawpath, "w");
    if (!raw)
        die("fopen", rawpath);
    fprintf(raw, "# scan_bench raw timings (ms), %ld documents, %d runs after 1 warm-up\n", n,
            runs);
    fprintf(raw, "load nexuslite %.1f\nload sqlite %.1f\n", nx_load, sq_load);
    for (q = 0; q < NQ; q++) {
        double v[64];
        int k = runs > 64 ? 64 : runs;
        nx_n[q] = QUERIES[q].rows ? nx_find(db, QUERIES[q].nexus_filter)
                                  : nx_count(db, QUERIES[q].nexus_filter);
        fprintf(raw, "%s nexuslite", QUERIES[q].name);
        for (r = 0; r < k; r++) {
            t = now_ms();
            if (QUERIES[q].rows)
                nx_find(db, QUERIES[q].nexus_filter);
            else
                nx_count(db, QUERIES[q].nexus_filter);
            v[r] = now_ms() - t;
            fprintf(raw, " %.2f", v[r]);
        }
        fprintf(raw, "\n");
        nx_ms[q] = median(v, k);

        sq_n[q] = sq_query(QUERIES[q].sql, QUERIES[q].rows);
        fprintf(raw, "%s sqlite", QUERIES[q].name);
        for (r = 0; r < k; r++) {
            t = now_ms();
            sq_query(QUERIES[q].sql, QUERIES[q].rows);
            v[r] = now_ms() - t;
            fprintf(raw, " %.2f", v[r]);
        }
        fprintf(raw, "\n");
        sq_ms[q] = median(v, k);
        if (nx_n[q] != sq_n[q]) {
            fprintf(stderr, "scan_bench: %s: NexusLite found %llu, SQLite %llu\n",
                    QUERIES[q].name, (unsigned long long)nx_n[q], (unsigned long long)sq_n[q]);
            return 1;
        }
    }
    fclose(raw);

    printf("| query (%ld docs, full scan, no index) | matches | NexusLite ms | SQLite json_extract ms | "
           "SQLite / NexusLite |\n",
           n);
    printf("|---|---:|---:|---:|---:|\n");
    for (q = 0; q < NQ; q++)
        printf("| %s | %llu | %.1f | %.1f | %.2fx |\n", QUERIES[q].name,
               (unsigned long long)nx_n[q], nx_ms[q], sq_ms[q], sq_ms[q] / nx_ms[q]);
    printf("| load (insert all) | %ld | %.0f | %.0f | %.2fx |\n", n, nx_load, sq_load,
           sq_load / nx_load);
    printf("\nSQLite %s; median of %d runs after a warm-up run.\n", sqlite3_libversion(), runs);

    sqlite3_close(sq);
    nexus_close(db);
    remove(path);
    snprintf(doc, sizeof doc, "%s/bench.wasp", dir);
    remove(doc);
    remove(sqpath);
    return 0;
}
