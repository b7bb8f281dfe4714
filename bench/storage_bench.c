/*
 * Storage engine benchmark through the C ABI: NexusLite WASP vs NexusLite memlog vs SQLite,
 * side by side in one run (scripts/bench-storage.sh builds and runs it; `make bench`).
 *
 *   storage_bench WORKDIR TABLE.md RAW.txt
 *
 * SQLite: documents as JSON text in `docs(id TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID`,
 * journal_mode=WAL, synchronous=FULL where NexusLite runs {"sync":"full"} and NORMAL where it
 * runs {"sync":"normal"}; cache_size equal to NexusLite's page cache budget (32 MiB).
 * NexusLite: the document cache is off (cache_capacity 0) so reads go to the engine, the
 * expiry sweeper is paused.
 *
 * Environment (defaults in brackets): BENCH_DOCS [200000] documents of ~200 bytes,
 * BENCH_RUNS [3] timed passes (median reported, after a warm-up), BENCH_COMMITS [500]
 * single-document commits per thread per pass, BENCH_REOPEN_COMMITS [100000] commits left in
 * the log before the reopen, BENCH_SCAN_UPDATES [200] updates through a filter on _id,
 * BENCH_NEXUS_OPTIONS [none] extra members of NexusLite's open options for a run off the
 * defaults (e.g. '"mmap":true'; a report made so must say it).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nexus.h>
#include <sqlite3.h>

#define BENCH_NAME "storage_bench"
#include "bench_util.h"

enum { WASP, WAL, SQL, NENG };
static const char *ENG[NENG] = {"WASP", "memlog", "SQLite"};
static const char *STORAGE[2] = {"wasp", "memlog"};

static long DOCS, RUNS, COMMITS, REOPEN_COMMITS, SCAN_UPDATES;
static const char *WORK;
static FILE *RAW;

/* A ~200-byte document. */
static void doc_json(char *buf, size_t cap, const char *id, long i)
{
    snprintf(buf, cap,
             "{\"_id\":\"%s\",\"name\":\"user %ld\",\"age\":%ld,\"city\":\"city%ld\","
             "\"tags\":[\"a\",\"b\",\"c\"],\"score\":%ld,"
             "\"bio\":\"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor\"}",
             id, i, 18 + i % 60, i % 100, (i * 7919) % 100000);
}

static void doc_id(char *buf, size_t cap, long i) { snprintf(buf, cap, "user%08ld", i); }

/* ---- a connection to one engine ---- */

typedef struct {
    int eng;
    nexus_db *n;
    sqlite3 *s;
    sqlite3_stmt *ins, *get, *upd;
} conn;

static void path_of(char *buf, size_t cap, int eng, const char *name)
{
    snprintf(buf, cap, "%s/%s-%s.%s", WORK, name, ENG[eng], eng == SQL ? "sqlite" : "db");
}

static conn conn_open(int eng, const char *path, const char *sync, const char *extra)
{
    conn c = {.eng = eng};
    if (eng != SQL) {
        char opts[768];
        const char *more = getenv("BENCH_NEXUS_OPTIONS");
        snprintf(opts, sizeof opts,
                 "{\"storage\":\"%s\",\"sync\":\"%s\",\"cache_capacity\":0,"
                 "\"sweeper_interval_ms\":0,\"busy_timeout_ms\":60000%s%s%s%s}",
                 STORAGE[eng], sync, extra ? "," : "", extra ? extra : "",
                 more && *more ? "," : "", more && *more ? more : "");
        nx(nexus_open(path, opts, &c.n), "nexus_open");
        return c;
    }
    sq(c.s, sqlite3_open(path, &c.s), "open");
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA cache_size=-32768;"
             "PRAGMA busy_timeout=60000;%s",
             strcmp(sync, "full") == 0 ? "FULL" : "NORMAL", extra ? extra : "");
    sq(c.s, sqlite3_exec(c.s, pragmas, NULL, NULL, NULL), "pragmas");
    sq(c.s,
       sqlite3_exec(c.s, "CREATE TABLE IF NOT EXISTS docs(id TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID",
                    NULL, NULL, NULL),
       "create");
    sq(c.s, sqlite3_prepare_v2(c.s, "INSERT INTO docs VALUES(?, ?)", -1, &c.ins, NULL), "prep");
    sq(c.s, sqlite3_prepare_v2(c.s, "SELECT body FROM docs WHERE id = ?", -1, &c.get, NULL), "prep");
    sq(c.s,
       sqlite3_prepare_v2(c.s, "UPDATE docs SET body = json_set(body, '$.score', ?) WHERE id = ?", -1,
                          &c.upd, NULL),
       "prep");
    return c;
}

static void conn_close(conn *c)
{
    if (c->eng != SQL) {
        nx(nexus_close(c->n), "nexus_close");
        return;
    }
    sqlite3_finalize(c->ins);
    sqlite3_finalize(c->get);
    sqlite3_finalize(c->upd);
    sqlite3_close(c->s);
}

static void begin(conn *c)
{
    if (c->eng != SQL)
        nx(nexus_begin(c->n), "begin");
    else
        sq(c->s, sqlite3_exec(c->s, "BEGIN", NULL, NULL, NULL), "begin");
}

static void commit(conn *c)
{
    if (c->eng != SQL)
        nx(nexus_commit(c->n), "commit");
    else
        sq(c->s, sqlite3_exec(c->s, "COMMIT", NULL, NULL, NULL), "commit");
}

static void insert(conn *c, const char *id, long i)
{
    char buf[512];
    doc_json(buf, sizeof buf, id, i);
    if (c->eng != SQL) {
        nx(nexus_insert(c->n, "docs", buf, NULL), "insert");
        return;
    }
    sq_run2(c->s, c->ins, id, buf, "insert");
}

static size_t get(conn *c, const char *id)
{
    return c->eng != SQL ? nx_get_len(c->n, "docs", id) : sq_get_len(c->s, c->get, id);
}

/* Update by id: NexusLite through nexus_update with a filter on _id ($set one field),
 * SQLite UPDATE ... json_set. */
static void update_filter(conn *c, const char *id, long v)
{
    if (c->eng != SQL) {
        char f[64], u[64];
        uint64_t m = 0;
        snprintf(f, sizeof f, "{\"_id\":\"%s\"}", id);
        snprintf(u, sizeof u, "{\"$set\":{\"score\":%ld}}", v);
        nx(nexus_update(c->n, "docs", f, u, 0, &m, NULL), "update");
        if (m != 1) {
            fprintf(stderr, "update %s matched %" PRIu64 "\n", id, m);
            exit(1);
        }
        return;
    }
    sqlite3_bind_int64(c->upd, 1, v);
    sqlite3_bind_text(c->upd, 2, id, -1, SQLITE_STATIC);
    sq(c->s, sqlite3_step(c->upd), "update");
    sqlite3_reset(c->upd);
}

/* Update by id through the by-id calls: nexus_get + nexus_replace (the body rebuilt with the
 * new field), SQLite as above. */
static void update_by_id(conn *c, const char *id, long v)
{
    if (c->eng == SQL) {
        update_filter(c, id, v);
        return;
    }
    char *out = NULL, buf[512];
    nx(nexus_get(c->n, "docs", id, &out), "get");
    long i = atol(id + 4);
    doc_json(buf, sizeof buf, id, i);
    char *score = strstr(buf, "\"score\":");
    char tail[512];
    snprintf(tail, sizeof tail, "%s", strchr(score, ','));
    snprintf(score, buf + sizeof buf - score, "\"score\":%ld%s", v, tail);
    nexus_free(out);
    nx(nexus_replace(c->n, "docs", id, buf), "replace");
}

static uint64_t count_filter(conn *c)
{
    if (c->eng != SQL) {
        uint64_t n = 0;
        nx(nexus_count(c->n, "docs", "{\"age\":{\"$gte\":50}}", &n), "count");
        return n;
    }
    sqlite3_stmt *st;
    sq(c->s,
       sqlite3_prepare_v2(c->s, "SELECT count(*) FROM docs WHERE json_extract(body, '$.age') >= 50", -1,
                          &st, NULL),
       "prep");
    sq(c->s, sqlite3_step(st), "count");
    uint64_t n = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void checkpoint(conn *c)
{
    if (c->eng != SQL)
        nx(nexus_checkpoint(c->n), "checkpoint");
    else
        sq(c->s, sqlite3_exec(c->s, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), "checkpoint");
}

/* Bytes of every file of the database at `path`. */
static long long db_bytes(int eng, const char *path)
{
    char p[600];
    if (eng != SQL) {
        snprintf(p, sizeof p, "%.*s.wasp", (int)(strlen(path) - 3), path);
        return file_size(path) + file_size(p);
    }
    long long t = file_size(path);
    snprintf(p, sizeof p, "%s-wal", path);
    t += file_size(p);
    snprintf(p, sizeof p, "%s-shm", path);
    return t + file_size(p);
}

static void rm_db(const char *path)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -f '%s' '%s'-wal '%s'-shm '%.*s.wasp'", path, path, path,
             (int)(strlen(path) - 3), path);
    if (system(cmd) != 0)
        exit(1);
}

/* ---- results ---- */

#define NWL 16
static struct {
    const char *name, *unit;
    int higher_better;
    double v[NENG];
    int set[NENG];
} R[NWL];
static int NR;

static int workload(const char *name, const char *unit, int higher_better)
{
    R[NR].name = name;
    R[NR].unit = unit;
    R[NR].higher_better = higher_better;
    return NR++;
}

static void record(int w, int eng, double *samples, long n)
{
    fprintf(RAW, "%-44s %-7s", R[w].name, ENG[eng]);
    for (long k = 0; k < n; k++)
        fprintf(RAW, " %.6g", samples[k]);
    double m = median(samples, n);
    fprintf(RAW, "   median %.6g %s\n", m, R[w].unit);
    fflush(RAW);
    fprintf(stderr, "  %-44s %-7s %.6g %s\n", R[w].name, ENG[eng], m, R[w].unit);
    R[w].v[eng] = m;
    R[w].set[eng] = 1;
}

/* ---- multi-threaded single-document commits ---- */

typedef struct {
    int eng, thread;
    const char *path, *sync;
    long n, base;
    pthread_barrier_t *bar;
} worker;

static void *commit_worker(void *arg)
{
    worker *w = arg;
    conn c = conn_open(w->eng, w->path, w->sync, NULL);
    char id[64];
    pthread_barrier_wait(w->bar);
    for (long k = 0; k < w->n; k++) {
        snprintf(id, sizeof id, "t%d-%ld", w->thread, w->base + k);
        insert(&c, id, k);
    }
    pthread_barrier_wait(w->bar);
    conn_close(&c);
    return NULL;
}

static long commit_seq;

/* Commits per second: `threads` threads, each on its own connection, each committing `n`
 * single-document inserts. */
static double commits(int eng, const char *path, const char *sync, int threads, long n)
{
    worker w[8];
    pthread_barrier_t bar;
    for (int i = 0; i < threads; i++)
        w[i] = (worker){eng, i, path, sync, n, commit_seq, &bar};
    commit_seq += n;
    return (double)(threads * n) / timed_threads(threads, commit_worker, w, sizeof w[0], &bar);
}

/* ---- the workloads of one engine ---- */

static void run_engine(int eng, int w_bulk, int w_get, int w_c1, int w_c4, int w_cn, int w_upd, int w_updf,
                       int w_scan, int w_size)
{
    char path[512], id[64];
    double s[64];
    fprintf(stderr, "== %s\n", ENG[eng]);
    path_of(path, sizeof path, eng, "main");

    /* Bulk insert, 1,000-document transactions, sync full; a fresh file each pass. */
    for (long r = 0; r < RUNS; r++) {
        rm_db(path);
        conn c = conn_open(eng, path, "full", NULL);
        double t0 = now_s();
        for (long i = 0; i < DOCS; i += 1000) {
            begin(&c);
            for (long j = i; j < i + 1000 && j < DOCS; j++) {
                doc_id(id, sizeof id, j);
                insert(&c, id, j);
            }
            commit(&c);
        }
        s[r] = (double)DOCS / (now_s() - t0);
        conn_close(&c);
    }
    record(w_bulk, eng, s, RUNS);

    conn c = conn_open(eng, path, "full", NULL);

    /* Random get by id: a warm-up pass, then RUNS passes of min(DOCS, 100000) gets. */
    long gets = DOCS < 100000 ? DOCS : 100000;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (long r = -1; r < RUNS; r++) {
        double t0 = now_s();
        size_t total = 0;
        for (long k = 0; k < gets; k++) {
            doc_id(id, sizeof id, (long)(next_rand(&rng) % (uint64_t)DOCS));
            total += get(&c, id);
        }
        if (total == 0)
            exit(1);
        if (r >= 0)
            s[r] = (double)gets / (now_s() - t0);
    }
    record(w_get, eng, s, RUNS);

    /* Full scan: count with a filter on a field. */
    for (long r = -1; r < RUNS; r++) {
        double t0 = now_s();
        uint64_t n = count_filter(&c);
        double dt = now_s() - t0;
        if (r == -1)
            fprintf(RAW, "scan count %s: %" PRIu64 " matches\n", ENG[eng], n);
        if (r >= 0)
            s[r] = dt * 1e3;
    }
    record(w_scan, eng, s, RUNS);

    /* Update by id in 1,000-update transactions (sync full). */
    for (long r = -1; r < RUNS; r++) {
        long n = DOCS < 20000 ? DOCS : 20000;
        double t0 = now_s();
        for (long i = 0; i < n; i += 1000) {
            begin(&c);
            for (long j = i; j < i + 1000 && j < n; j++) {
                doc_id(id, sizeof id, (long)(next_rand(&rng) % (uint64_t)DOCS));
                update_by_id(&c, id, j);
            }
            commit(&c);
        }
        if (r >= 0)
            s[r] = (double)n / (now_s() - t0);
    }
    record(w_upd, eng, s, RUNS);

    /* Update through a filter on _id ($set), one transaction of SCAN_UPDATES updates. */
    for (long r = -1; r < RUNS; r++) {
        long n = r < 0 ? SCAN_UPDATES / 10 + 1 : SCAN_UPDATES;
        double t0 = now_s();
        begin(&c);
        for (long j = 0; j < n; j++) {
            doc_id(id, sizeof id, (long)(next_rand(&rng) % (uint64_t)DOCS));
            update_filter(&c, id, j);
        }
        commit(&c);
        if (r >= 0)
            s[r] = (double)n / (now_s() - t0);
    }
    record(w_updf, eng, s, RUNS);

    if (eng != SQL) {
        char *st = NULL;
        nx(nexus_stats(c.n, &st), "stats");
        fprintf(RAW, "stats %s after reads and updates: %s\n", ENG[eng], st);
        nexus_free(st);
    }

    /* Durable single-document commits (new documents), 1 and 4 threads, sync full; and
     * 1 thread with sync normal. A short warm-up pass first. */
    commits(eng, path, "full", 1, 20);
    for (long r = 0; r < RUNS; r++)
        s[r] = commits(eng, path, "full", 1, COMMITS);
    record(w_c1, eng, s, RUNS);
    for (long r = 0; r < RUNS; r++)
        s[r] = commits(eng, path, "full", 4, COMMITS);
    record(w_c4, eng, s, RUNS);
    for (long r = 0; r < RUNS; r++)
        s[r] = commits(eng, path, "normal", 1, COMMITS * 4);
    record(w_cn, eng, s, RUNS);

    /* File size after a checkpoint and a clean close. */
    checkpoint(&c);
    conn_close(&c);
    s[0] = (double)db_bytes(eng, path) / 1e6;
    fprintf(RAW, "size %s: db %lld bytes total %lld bytes\n", ENG[eng], file_size(path), db_bytes(eng, path));
    record(w_size, eng, s, 1);
    rm_db(path);
}

/* Reopen after REOPEN_COMMITS single-document commits that no checkpoint folded in: a child
 * process commits them (sync normal, automatic checkpoints pushed out of reach) and exits
 * without closing; the parent copies the files aside and times open + the first get,
 * restoring the copy before each pass. */
static void reopen(int eng, int w)
{
    char path[512], id[64], cmd[2048];
    double s[64];
    path_of(path, sizeof path, eng, "reopen");
    rm_db(path);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        conn c = conn_open(eng, path, "normal",
                           eng == SQL ? "PRAGMA wal_autocheckpoint=0;"
                                      : "\"checkpoint_log_bytes\":1000000000000,"
                                        "\"checkpoint_interval_ms\":1000000000,"
                                        "\"page_cache_bytes\":17179869184");
        for (long i = 0; i < REOPEN_COMMITS; i++) {
            doc_id(id, sizeof id, i);
            insert(&c, id, i);
        }
        if (eng != SQL) {
            char *st = NULL;
            nx(nexus_stats(c.n, &st), "stats");
            fprintf(RAW, "stats %s before the reopen (child exits without closing): %s\n", ENG[eng], st);
            fflush(RAW);
        }
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        exit(1);
    fprintf(RAW, "reopen %s: files before reopen %lld bytes (main file %lld)\n", ENG[eng],
            db_bytes(eng, path), file_size(path));
    snprintf(cmd, sizeof cmd, "rm -rf '%s/saved' && mkdir '%s/saved' && cp '%s'* '%.*s'.wasp '%s/saved/' 2>/dev/null; true",
             WORK, WORK, path, (int)(strlen(path) - 3), path, WORK);
    if (system(cmd) != 0)
        exit(1);
    for (long r = 0; r < RUNS; r++) {
        snprintf(cmd, sizeof cmd, "cp '%s/saved/'* '%s/'", WORK, WORK);
        if (system(cmd) != 0)
            exit(1);
        double t0 = now_s();
        conn c = conn_open(eng, path, "normal", NULL);
        doc_id(id, sizeof id, REOPEN_COMMITS - 1);
        get(&c, id);
        s[r] = (now_s() - t0) * 1e3;
        if (eng == SQL)
            conn_close(&c);
        else {
            /* Not timed: close checkpoints; the next pass restores the saved files. */
            conn_close(&c);
        }
    }
    record(w, eng, s, RUNS);
    rm_db(path);
    snprintf(cmd, sizeof cmd, "rm -rf '%s/saved'", WORK);
    if (system(cmd) != 0)
        exit(1);
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
    COMMITS = env_long("BENCH_COMMITS", 500);
    REOPEN_COMMITS = env_long("BENCH_REOPEN_COMMITS", 100000);
    SCAN_UPDATES = env_long("BENCH_SCAN_UPDATES", 200);
    if (RUNS < 1 || RUNS > 64 || DOCS < 1000)
        return 2;
    RAW = fopen(argv[3], "w");
    if (!RAW)
        return 1;
    fprintf(RAW, "NexusLite %s, SQLite %s; DOCS=%ld RUNS=%ld COMMITS=%ld REOPEN_COMMITS=%ld SCAN_UPDATES=%ld\n",
            nexus_version(), sqlite3_libversion(), DOCS, RUNS, COMMITS, REOPEN_COMMITS, SCAN_UPDATES);

    char name[8][160];
    snprintf(name[0], sizeof name[0], "bulk insert %ld docs, 1,000/txn, sync full", DOCS);
    snprintf(name[1], sizeof name[1], "random get by id (%ld docs)", DOCS);
    snprintf(name[2], sizeof name[2], "durable single-doc commits, 1 thread, full");
    snprintf(name[3], sizeof name[3], "durable single-doc commits, 4 threads, full");
    snprintf(name[4], sizeof name[4], "single-doc commits, 1 thread, sync normal");
    snprintf(name[5], sizeof name[5], "update by id (get+replace / json_set), 1,000/txn");
    snprintf(name[6], sizeof name[6], "update via filter {_id} + $set (nexus_update)");
    snprintf(name[7], sizeof name[7], "full scan: count where age >= 50");
    int w_bulk = workload(name[0], "docs/s", 1);
    int w_get = workload(name[1], "gets/s", 1);
    int w_c1 = workload(name[2], "commits/s", 1);
    int w_c4 = workload(name[3], "commits/s", 1);
    int w_cn = workload(name[4], "commits/s", 1);
    int w_upd = workload(name[5], "updates/s", 1);
    int w_updf = workload(name[6], "updates/s", 1);
    int w_scan = workload(name[7], "ms", 0);
    static char reopen_name[160];
    snprintf(reopen_name, sizeof reopen_name, "reopen after %ld un-checkpointed commits", REOPEN_COMMITS);
    int w_reopen = workload(reopen_name, "ms", 0);
    int w_size = workload("file size after the run (all files)", "MB", 0);

    for (int eng = 0; eng < NENG; eng++)
        run_engine(eng, w_bulk, w_get, w_c1, w_c4, w_cn, w_upd, w_updf, w_scan, w_size);
    for (int eng = 0; eng < NENG; eng++) {
        fprintf(stderr, "== reopen %s\n", ENG[eng]);
        reopen(eng, w_reopen);
    }

    FILE *out = fopen(argv[2], "w");
    if (!out)
        return 1;
    fprintf(out, "| workload | unit | WASP | memlog | SQLite | WASP vs SQLite | memlog vs SQLite |\n");
    fprintf(out, "|---|---|---:|---:|---:|---:|---:|\n");
    for (int w = 0; w < NR; w++) {
        fprintf(out, "| %s | %s |", R[w].name, R[w].unit);
        for (int e = 0; e < NENG; e++)
            fprintf(out, " %.4g |", R[w].v[e]);
        for (int e = 0; e < 2; e++) {
            /* >1: better than SQLite (faster, or smaller for sizes). */
            double ratio = R[w].higher_better ? R[w].v[e] / R[w].v[SQL] : R[w].v[SQL] / R[w].v[e];
            fprintf(out, " %.2fx %s |", ratio, ratio >= 1.0 ? "better" : "worse");
        }
        fprintf(out, "\n");
    }
    fclose(out);
    fclose(RAW);
    return 0;
}
