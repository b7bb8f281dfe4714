/*
 * NexusLite vs SQLite at the DEFAULT options (issues #18 and #19), through the C ABI.
 * scripts/bench-defaults.sh builds it, runs every phase once per engine, each in a process
 * of its own (so the peak RSS it prints is that engine's in that phase), and writes
 * benchmarks/defaults.md (`make bench`).
 *
 *   defaults_bench PHASE ENGINE WORKDIR [ARG]
 *
 * ENGINE is `nexus` or `sqlite` (`nexus-off` for the sweep; anything for disk, whose ARG
 * is ignored, as durable's: the script passes a tag). Results go to stdout as `key value` lines (the script
 * prefixes them with the engine); lines starting with `#` are raw notes (stats JSON). Every
 * phase ends with `rss_kib` (getrusage: this process's peak RSS).
 *
 * NexusLite is opened with only what the row says: `{}` (the defaults, sync full) or
 * `{"sync":"normal"}`; the cache-sweep phase with ENGINE `nexus-off` opens with
 * `{"cache_capacity":0}`. SQLite 3 (the system library): journal_mode=WAL, synchronous
 * FULL or NORMAL matching the NexusLite row, its default cache size, prepared statements,
 * `docs(id TEXT PRIMARY KEY, body TEXT)` (a rowid table, the common user schema) with the
 * document as JSON text; queries through json_extract, indexes on json_extract expressions.
 *
 * Phases (environment: sizes, defaults in brackets; the script scales them with BENCH_SCALE):
 *   table     the issue table: BENCH_DOCS [200000] documents of ~200 bytes with string ids
 *             "id00001234" inserted 1,000 per transaction; BENCH_GETS [200000] random gets
 *             by _id; a count with 2 predicates (one nested) over all documents;
 *             BENCH_UPDATES_FULL [3000] single `nexus_update({_id}, {$inc})` sync full, then
 *             BENCH_UPDATES_NORMAL [20000] the same reopened with sync normal; indexes on email
 *             and age; BENCH_LOOKUPS [50000] find_one by email; BENCH_AGE_QUERIES [200]
 *             find by age (rows returned per second). Before the sync-full updates a short
 *             pass of the disk phase's overwrite rate (`disk_overwrite_per_s`), as in durable.
 *   load      ARG `uuid` or `seq`: BENCH_LOAD_DOCS [1000000] documents of ~250 bytes, 1,000
 *             per transaction, without _id (NexusLite makes a UUID v4; SQLite binds a random
 *             v4 UUID string made here) or with sequential string ids; docs/s overall, in the
 *             first and the last 10%, files after the load and after close.
 *   disk      raw rates of the work directory's disk, BENCH_DISK_OPS [3000] each: overwrite of
 *             already written and synced blocks (300-byte pwrite at advancing offsets in a
 *             4 MiB file, wrapping) + fdatasync, and append of 300 bytes + fdatasync.
 *   durable   single-document `nexus_update({_id}, {$inc})` sync full (BENCH_UPDATES_FULL
 *             over BENCH_DURABLE_DOCS [10000] documents), and single-document insert commits
 *             sync full from 1 thread and from 4 threads each with its own connection
 *             (BENCH_COMMITS [1000] per thread); first the disk's overwrite rate right now.
 *             Expects no durable file in WORKDIR (the script removes it between passes).
 *   sweep-load ARG W: writes the sweep file of W documents (engine `nexus`, defaults).
 *   sweep     ARG W, ENGINE `nexus` (cache on, defaults) or `nexus-off` (cache_capacity 0):
 *             BENCH_SWEEP_GETS [200000] random gets over the W documents, uniform and
 *             Zipf(0.99) keys (drawn before each timed pass), each after a warm-up pass of
 *             the same length.
 *   pair      (scripts/bench-encryption.sh; engine `nexus`, BENCH_KEY_FILE set) plain and
 *             encrypted NexusLite in this one process: the table's rows other than the
 *             sync-full updates and the index build, in BENCH_PAIR_SLICES [10] alternating
 *             slices (see phase_pair).
 *   durable-trio (the SQLCipher build, BENCH_KEY_FILE set) sync-full single updates of plain
 *             NexusLite, encrypted NexusLite and SQLCipher taking turns in this one process
 *             (see phase_durable_trio).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nexus.h>
#include <sqlite3.h>

#define BENCH_NAME "defaults_bench"
#include "bench_util.h"

static const char *WORK, *ENGINE;
static int SQL; /* the engine of this process: 1 SQLite, 0 NexusLite */

static void put(const char *key, double v)
{
    printf("%s %.6g\n", key, v);
    fflush(stdout);
    fprintf(stderr, "  %-9s %-32s %.6g\n", ENGINE, key, v);
}

/* ---- documents ---- */

/* The document of row `i` as JSON: ~200 bytes (`long_bio` 0) or ~250 bytes (1), with `id`
 * as its _id, or none when `id` is NULL. */
static void doc_json(char *buf, size_t cap, const char *id, long i, int long_bio)
{
    char idf[64] = "";
    if (id)
        snprintf(idf, sizeof idf, "\"_id\":\"%s\",", id);
    snprintf(buf, cap,
             "{%s\"name\":\"user %ld\",\"email\":\"user%ld@example.com\",\"age\":%ld,"
             "\"address\":{\"city\":\"city%ld\",\"zip\":\"%05ld\"},\"score\":%ld,\"active\":%s,"
             "\"bio\":\"lorem ipsum dolor sit amet consectetur%s\"}",
             idf, i, i, 18 + i % 80, (i * 7919) % 100, 10000 + i % 90000, (i * 31) % 1000,
             i % 3 ? "true" : "false", long_bio ? " adipiscing elit sed do eiusmod tempor incididunt ut" : "");
}

static void doc_id(char *buf, size_t cap, long i) { snprintf(buf, cap, "id%08ld", i); }

/* ---- one connection ---- */

typedef struct {
    nexus_db *n;
    sqlite3 *s;
    sqlite3_stmt *ins, *get, *upd;
} conn;

static void path_of(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s.%s", WORK, name, SQL ? "sqlite" : "db");
}

/* The encryption rows (scripts/bench-encryption.sh): with BENCH_KEY_FILE set, NexusLite
 * opens with `encryption_key` (the PEM in that file) added to the row's options, and the
 * SQLCipher build of this harness (BENCH_SQLCIPHER) keys SQLite with a passphrase. */
static int UNKEYED; /* plain NexusLite beside encrypted (pair, durable-trio): with_key adds no key */

static const char *with_key(const char *opts)
{
    static char buf[4096];
    const char *file = getenv("BENCH_KEY_FILE");
    if (!file || UNKEYED)
        return opts;
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "%s: BENCH_KEY_FILE %s cannot be opened\n", BENCH_NAME, file);
        exit(1);
    }
    char pem[2048];
    size_t n = fread(pem, 1, sizeof pem - 1, f);
    fclose(f);
    pem[n] = 0;
    size_t at = (size_t)snprintf(buf, sizeof buf, "{\"encryption_key\":\"");
    for (size_t i = 0; i < n && at + 4 < sizeof buf; i++) {
        if (pem[i] == '\n') {
            buf[at++] = '\\';
            buf[at++] = 'n';
        } else {
            buf[at++] = pem[i];
        }
    }
    /* the row's other options, if any, after a comma */
    const char *rest = strchr(opts, '{') + 1;
    while (*rest == ' ')
        rest++;
    snprintf(buf + at, sizeof buf - at, "\"%s%s", *rest == '}' ? "" : ",", rest);
    return buf;
}

/* Opens database `name` of the work directory: NexusLite with `nexus_opts` exactly, SQLite
 * in WAL mode with synchronous NORMAL when `normal`, FULL otherwise. */
static conn conn_open(const char *name, const char *nexus_opts, int normal)
{
    char path[512];
    conn c = {0};
    path_of(path, sizeof path, name);
    if (!SQL) {
        nx(nexus_open(path, with_key(nexus_opts), &c.n), "nexus_open");
        return c;
    }
    sq(c.s, sqlite3_open(path, &c.s), "open");
#ifdef BENCH_SQLCIPHER
    sq(c.s, sqlite3_exec(c.s, "PRAGMA key = 'nexuslite benchmark passphrase';", NULL, NULL, NULL),
       "key");
#endif
    sq(c.s, sqlite3_exec(c.s, normal ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                     : "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
                         NULL, NULL, NULL),
       "pragmas");
    /* Threads of the 4-connection row wait for the write lock as NexusLite's do. */
    sqlite3_busy_timeout(c.s, 60000);
    sq(c.s, sqlite3_exec(c.s, "CREATE TABLE IF NOT EXISTS docs(id TEXT PRIMARY KEY, body TEXT)", NULL, NULL, NULL),
       "create");
    sq(c.s, sqlite3_prepare_v2(c.s, "INSERT INTO docs VALUES(?, ?)", -1, &c.ins, NULL), "prep");
    sq(c.s, sqlite3_prepare_v2(c.s, "SELECT body FROM docs WHERE id = ?", -1, &c.get, NULL), "prep");
    sq(c.s,
       sqlite3_prepare_v2(c.s,
#ifdef BENCH_SQLCIPHER
                          /* Debian's SQLCipher 3.4.1 has no JSON1: the row is rewritten as is
                           * (the same page writes and commit). */
                          "UPDATE docs SET body = body WHERE id = ?",
#else
                          "UPDATE docs SET body = json_set(body, '$.score', json_extract(body, '$.score') + 1) "
                          "WHERE id = ?",
#endif
                          -1, &c.upd, NULL),
       "prep");
    return c;
}

static void conn_close(conn *c)
{
    if (!SQL) {
        nx(nexus_close(c->n), "nexus_close");
        return;
    }
    sqlite3_finalize(c->ins);
    sqlite3_finalize(c->get);
    sqlite3_finalize(c->upd);
    sq(c->s, sqlite3_close(c->s), "close");
}

static void exec_sql(conn *c, const char *sql) { sq(c->s, sqlite3_exec(c->s, sql, NULL, NULL, NULL), sql); }

static void begin(conn *c)
{
    if (SQL)
        exec_sql(c, "BEGIN");
    else
        nx(nexus_begin(c->n), "begin");
}

static void commit(conn *c)
{
    if (SQL)
        exec_sql(c, "COMMIT");
    else
        nx(nexus_commit(c->n), "commit");
}

/* Inserts `json` with _id `id`; for NexusLite a NULL `id` lets it make one, for SQLite the
 * key column gets `id` (the caller makes one). */
static void insert(conn *c, const char *id, const char *json)
{
    if (!SQL) {
        nx(nexus_insert(c->n, "docs", json, NULL), "insert");
        return;
    }
    sq_run2(c->s, c->ins, id, json, "insert");
}

/* Gets the document with _id `id` as JSON; returns its length (it must exist). */
static size_t get(conn *c, const char *id)
{
    return !SQL ? nx_get_len(c->n, "docs", id) : sq_get_len(c->s, c->get, id);
}

/* score += 1 in the document with _id `id`: nexus_update({_id}, {$inc}) / UPDATE json_set. */
static void inc_score(conn *c, const char *id)
{
    if (SQL) {
        sqlite3_bind_text(c->upd, 1, id, -1, SQLITE_STATIC);
        sq(c->s, sqlite3_step(c->upd), "update");
        sqlite3_reset(c->upd);
        return;
    }
    char f[64];
    uint64_t m = 0;
    snprintf(f, sizeof f, "{\"_id\":\"%s\"}", id);
    nx(nexus_update(c->n, "docs", f, "{\"$inc\":{\"score\":1}}", 0, &m, NULL), "update");
    if (m != 1) {
        fprintf(stderr, "%s: update %s matched %" PRIu64 "\n", BENCH_NAME, id, m);
        exit(1);
    }
}

/* Loads documents `from` to `n` - 1 (ids id00000000..) in 1,000-document transactions;
 * docs/s. */
static double load_range(conn *c, long from, long n, int long_bio)
{
    char id[32], buf[512];
    double t0 = now_s();
    for (long i = from; i < n; i += 1000) {
        begin(c);
        for (long j = i; j < i + 1000 && j < n; j++) {
            doc_id(id, sizeof id, j);
            doc_json(buf, sizeof buf, id, j, long_bio);
            insert(c, id, buf);
        }
        commit(c);
    }
    return (double)(n - from) / (now_s() - t0);
}

/* Loads `n` documents with ids id00000000..; docs/s. */
static double load_seq(conn *c, long n, int long_bio) { return load_range(c, 0, n, long_bio); }

/* Bytes of every file of database `name`: NexusLite NAME.db, NAME.wasp and NAME.wasp-shm,
 * SQLite the file and its -wal and -shm. */
static long long db_bytes(const char *name)
{
    char p[600];
    long long t = 0;
    const char *ext[2][3] = {{".db", ".wasp", ".wasp-shm"}, {".sqlite", ".sqlite-wal", ".sqlite-shm"}};
    for (int k = 0; k < 3 && ext[SQL][k]; k++) {
        snprintf(p, sizeof p, "%s/%s%s", WORK, name, ext[SQL][k]);
        t += file_size(p);
    }
    return t;
}

static void stats_note(conn *c, const char *when)
{
    if (SQL)
        return;
    char *st = NULL;
    nx(nexus_stats(c->n, &st), "stats");
    printf("# stats %s: %s\n", when, st);
    nexus_free(st);
}

static double disk_rate(const char *path, int overwrite, long ops);

/* The overwrite + fdatasync rate of the disk right now (a short pass), so the report can tell
 * when the disk's state moved between the two engines' processes. */
static void disk_now(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/disk-rate", WORK);
    put("disk_overwrite_per_s", disk_rate(path, 1, env_long("BENCH_DISK_OPS", 3000) / 10 + 1));
}

/* ---- phase: the issue table ---- */

static long count_2pred(conn *c)
{
    if (!SQL) {
        uint64_t n = 0;
        nx(nexus_count(c->n, "docs", "{\"age\":{\"$gte\":40},\"address.city\":\"city7\"}", &n), "count");
        return (long)n;
    }
    sqlite3_stmt *st;
    sq(c->s,
       sqlite3_prepare_v2(c->s,
#ifdef BENCH_SQLCIPHER
                          /* no JSON1 (above): the city as text, still a scan of every row */
                          "SELECT count(*) FROM docs WHERE body LIKE '%\"address\":{\"city\":\"city7\",%'",
#else
                          "SELECT count(*) FROM docs WHERE json_extract(body, '$.age') >= 40 "
                          "AND json_extract(body, '$.address.city') = 'city7'",
#endif
                          -1, &st, NULL),
       "prep");
    sq(c->s, sqlite3_step(st), "count");
    long n = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* Rows of a NexusLite find (their JSON lengths summed into `*bytes`). */
static long nx_rows(conn *c, const char *filter, size_t *bytes)
{
    nexus_cursor *cur = NULL;
    const char *json;
    long rows = 0;
    int rc;
    nx(nexus_find(c->n, "docs", filter, NULL, &cur), "find");
    while ((rc = nexus_cursor_next(cur, &json)) == NEXUS_ROW) {
        *bytes += strlen(json);
        rows++;
    }
    if (rc != NEXUS_DONE)
        nx(rc, "cursor_next");
    nx(nexus_cursor_close(cur), "cursor_close");
    return rows;
}

/* Rows of a prepared SQLite query (reset afterwards). */
static long sq_rows(conn *c, sqlite3_stmt *st, size_t *bytes)
{
    long rows = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *bytes += strlen((const char *)sqlite3_column_text(st, 0));
        rows++;
    }
    sq(c->s, rc, "query");
    sqlite3_reset(st);
    return rows;
}

static void phase_table(void)
{
    long docs = env_long("BENCH_DOCS", 200000), gets = env_long("BENCH_GETS", 200000);
    long upd_full = env_long("BENCH_UPDATES_FULL", 3000), upd_normal = env_long("BENCH_UPDATES_NORMAL", 20000);
    long lookups = env_long("BENCH_LOOKUPS", 50000), age_queries = env_long("BENCH_AGE_QUERIES", 200);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    char id[32], q[128];
    size_t total = 0;

    conn c = conn_open("table", "{}", 0);
    put("bulk_docs_per_s", load_seq(&c, docs, 0));

    double t0 = now_s();
    for (long k = 0; k < gets; k++) {
        doc_id(id, sizeof id, (long)(next_rand(&rng) % (uint64_t)docs));
        total += get(&c, id);
    }
    put("get_per_s", (double)gets / (now_s() - t0));
    stats_note(&c, "after the gets");

    double s[3];
    long matches = 0;
    for (int r = 0; r < 3; r++) {
        t0 = now_s();
        matches = count_2pred(&c);
        s[r] = (double)docs / (now_s() - t0);
    }
    put("count_docs_per_s", median(s, 3));
    put("count_matches", (double)matches);

    disk_now();
    t0 = now_s();
    for (long k = 0; k < upd_full; k++) {
        doc_id(id, sizeof id, (long)(next_rand(&rng) % (uint64_t)docs));
        inc_score(&c, id);
    }
    put("update_full_per_s", (double)upd_full / (now_s() - t0));
    conn_close(&c);

    c = conn_open("table", "{\"sync\":\"normal\"}", 1);
    t0 = now_s();
    for (long k = 0; k < upd_normal; k++) {
        doc_id(id, sizeof id, (long)(next_rand(&rng) % (uint64_t)docs));
        inc_score(&c, id);
    }
    put("update_normal_per_s", (double)upd_normal / (now_s() - t0));
    /* The files at rest before any index: what SQLCipher's run (no indexes) is compared with. */
    conn_close(&c);
    put("file_bytes_before_indexes", (double)db_bytes("table"));
#ifdef BENCH_SQLCIPHER
    /* No JSON1 in Debian's SQLCipher: no expression indexes to build or query. */
    return;
#endif
    c = conn_open("table", "{\"sync\":\"normal\"}", 1);

    t0 = now_s();
    if (SQL) {
        exec_sql(&c, "CREATE INDEX docs_email ON docs(json_extract(body, '$.email'))");
        exec_sql(&c, "CREATE INDEX docs_age ON docs(json_extract(body, '$.age'))");
    } else {
        char *name = NULL;
        nx(nexus_create_index(c.n, "docs", "{\"email\":1}", NULL, &name), "create_index email");
        nexus_free(name);
        nx(nexus_create_index(c.n, "docs", "{\"age\":1}", NULL, &name), "create_index age");
        nexus_free(name);
    }
    put("index_build_docs_per_s", (double)docs / (now_s() - t0));

    sqlite3_stmt *by_email = NULL, *by_age = NULL;
    if (SQL) {
        sq(c.s,
           sqlite3_prepare_v2(c.s, "SELECT body FROM docs WHERE json_extract(body, '$.email') = ? LIMIT 1", -1,
                              &by_email, NULL),
           "prep");
        sq(c.s, sqlite3_prepare_v2(c.s, "SELECT body FROM docs WHERE json_extract(body, '$.age') = ?", -1, &by_age, NULL),
           "prep");
    }
    t0 = now_s();
    for (long k = 0; k < lookups; k++) {
        long i = (long)(next_rand(&rng) % (uint64_t)docs);
        long rows;
        if (SQL) {
            snprintf(q, sizeof q, "user%ld@example.com", i);
            sqlite3_bind_text(by_email, 1, q, -1, SQLITE_TRANSIENT);
            rows = sq_rows(&c, by_email, &total);
        } else {
            char *out = NULL;
            snprintf(q, sizeof q, "{\"email\":\"user%ld@example.com\"}", i);
            nx(nexus_find_one(c.n, "docs", q, &out), "find_one");
            total += strlen(out);
            nexus_free(out);
            rows = 1;
        }
        if (rows != 1) {
            fprintf(stderr, "%s: find_one email of %ld: %ld rows\n", BENCH_NAME, i, rows);
            exit(1);
        }
    }
    put("find_one_email_per_s", (double)lookups / (now_s() - t0));

    long rows = 0;
    t0 = now_s();
    for (long k = 0; k < age_queries; k++) {
        long age = 18 + (long)(next_rand(&rng) % 80);
        if (SQL) {
            sqlite3_bind_int64(by_age, 1, age);
            rows += sq_rows(&c, by_age, &total);
        } else {
            snprintf(q, sizeof q, "{\"age\":%ld}", age);
            rows += nx_rows(&c, q, &total);
        }
    }
    put("find_age_rows_per_s", (double)rows / (now_s() - t0));
    put("find_age_rows", (double)rows);
    sqlite3_finalize(by_email);
    sqlite3_finalize(by_age);
    stats_note(&c, "at the end");
    conn_close(&c);
    put("file_bytes", (double)db_bytes("table"));
    if (total == 0)
        exit(1);
}

/* ---- phase: a large load ---- */

static void phase_load(const char *mode)
{
    long n = env_long("BENCH_LOAD_DOCS", 1000000);
    int uuid = strcmp(mode, "uuid") == 0;
    char name[32], id[40], buf[512];
    uint64_t rng = 0x2545f4914f6cdd1dull;
    snprintf(name, sizeof name, "load-%s", mode);
    conn c = conn_open(name, "{}", 0);
    long tenth = n / 10, first_n = 0, last_i = 0;
    double t0 = now_s(), t_first = 0, t_last = 0;
    for (long i = 0; i < n; i += 1000) {
        if (t_last == 0 && i >= n - tenth) {
            t_last = now_s();
            last_i = i;
        }
        begin(&c);
        for (long j = i; j < i + 1000 && j < n; j++) {
            if (uuid)
                uuid_v4(id, &rng);
            else
                doc_id(id, sizeof id, j);
            doc_json(buf, sizeof buf, uuid ? NULL : id, j, 1);
            insert(&c, id, buf);
        }
        commit(&c);
        if (t_first == 0 && i + 1000 >= tenth) {
            t_first = now_s();
            first_n = i + 1000 < n ? i + 1000 : n;
        }
    }
    double t1 = now_s();
    put("docs_per_s", (double)n / (t1 - t0));
    put("first10_docs_per_s", (double)first_n / (t_first - t0));
    put("last10_docs_per_s", (double)(n - last_i) / (t1 - t_last));
    put("bytes_after_load", (double)db_bytes(name));
    stats_note(&c, "after the load");
    conn_close(&c);
    put("bytes_after_close", (double)db_bytes(name));
}

/* ---- phase: raw disk rates ---- */

static double disk_rate(const char *path, int overwrite, long ops)
{
    enum { SPAN = 4 << 20, REC = 300 };
    char rec[REC];
    memset(rec, 'x', sizeof rec);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | (overwrite ? 0 : O_APPEND), 0644);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    if (overwrite) {
        static char block[1 << 20];
        for (int k = 0; k < SPAN / (int)sizeof block; k++)
            if (write(fd, block, sizeof block) != (ssize_t)sizeof block)
                exit(1);
        if (fsync(fd) != 0)
            exit(1);
    }
    off_t off = 0;
    double t0 = now_s();
    for (long k = 0; k < ops; k++) {
        ssize_t w = overwrite ? pwrite(fd, rec, REC, off) : write(fd, rec, REC);
        if (w != REC || fdatasync(fd) != 0) {
            perror("disk write");
            exit(1);
        }
        off = off + 2 * REC > SPAN ? 0 : off + REC;
    }
    double rate = (double)ops / (now_s() - t0);
    close(fd);
    unlink(path);
    return rate;
}

static void phase_disk(void)
{
    long ops = env_long("BENCH_DISK_OPS", 3000);
    char path[512];
    double over[3], app[3];
    snprintf(path, sizeof path, "%s/disk-rate", WORK);
    /* Alternating thirds, the median of each: the disk is shared. */
    for (int r = 0; r < 3; r++) {
        over[r] = disk_rate(path, 1, ops / 3 + 1);
        app[r] = disk_rate(path, 0, ops / 3 + 1);
    }
    put("overwrite_fdatasync_per_s", median(over, 3));
    put("append_fdatasync_per_s", median(app, 3));
}

/* ---- phase: durable commits ---- */

typedef struct {
    int thread;
    long n;
    pthread_barrier_t *bar;
} worker;

static void *commit_worker(void *arg)
{
    worker *w = arg;
    conn c = conn_open("durable", "{}", 0);
    char id[40], buf[512];
    pthread_barrier_wait(w->bar);
    for (long k = 0; k < w->n; k++) {
        snprintf(id, sizeof id, "t%d-%ld", w->thread, k);
        doc_json(buf, sizeof buf, id, k, 0);
        insert(&c, id, buf);
    }
    pthread_barrier_wait(w->bar);
    conn_close(&c);
    return NULL;
}

/* Commits per second of `threads` threads each committing `n` single-document inserts. */
static double commits(int threads, long n)
{
    worker w[8];
    pthread_barrier_t bar;
    for (int i = 0; i < threads; i++)
        w[i] = (worker){i + threads * 10, n, &bar};
    return (double)(threads * n) / timed_threads(threads, commit_worker, w, sizeof w[0], &bar);
}

static void phase_durable(void)
{
    long docs = env_long("BENCH_DURABLE_DOCS", 10000), updates = env_long("BENCH_UPDATES_FULL", 3000);
    long per_thread = env_long("BENCH_COMMITS", 1000);
    uint64_t rng = 0x853c49e6748fea9bull;
    char id[32];
    conn c = conn_open("durable", "{}", 0);
    load_seq(&c, docs, 0);
    for (long k = 0; k < 50; k++) { /* warm-up */
        doc_id(id, sizeof id, (long)(next_rand(&rng) % (uint64_t)docs));
        inc_score(&c, id);
    }
    disk_now();
    double t0 = now_s();
    for (long k = 0; k < updates; k++) {
        doc_id(id, sizeof id, (long)(next_rand(&rng) % (uint64_t)docs));
        inc_score(&c, id);
    }
    put("durable_update_per_s", (double)updates / (now_s() - t0));
    stats_note(&c, "after the durable updates");
    put("commits1_per_s", commits(1, per_thread));
    put("commits4_per_s", commits(4, per_thread));
    conn_close(&c);
}

/* ---- phases: the cache sweep ---- */

static void phase_sweep_load(long w)
{
    char name[32];
    snprintf(name, sizeof name, "sweep-%ld", w);
    conn c = conn_open(name, "{}", 0);
    load_seq(&c, w, 0);
    conn_close(&c);
}

/* Random gets over the `w` documents; `zipf` NULL: uniform keys. The Zipf ranks are spread
 * over the ids by a multiplier prime to 10 (the hot documents are not neighbours). The keys
 * are drawn before the clock starts: a Zipf draw (a bisection of the cumulative table) costs
 * about as much as a cached get, and timing it compressed the on/off ratio of the Zipf rows. */
static double sweep_gets(conn *c, long w, long n, const zipf_gen *zipf, uint64_t *rng)
{
    char id[32];
    size_t total = 0;
    long *keys = malloc((size_t)n * sizeof *keys);
    if (!keys) {
        fprintf(stderr, "%s: out of memory for %ld keys\n", BENCH_NAME, n);
        exit(1);
    }
    for (long k = 0; k < n; k++)
        keys[k] = zipf ? (long)((uint64_t)zipf_next(zipf, rng) * 2654435761ull % (uint64_t)w)
                       : (long)(next_rand(rng) % (uint64_t)w);
    double t0 = now_s();
    for (long k = 0; k < n; k++) {
        doc_id(id, sizeof id, keys[k]);
        total += get(c, id);
    }
    double rate = (double)n / (now_s() - t0);
    free(keys);
    if (total == 0)
        exit(1);
    return rate;
}

static void phase_sweep(const char *engine, long w)
{
    long gets = env_long("BENCH_SWEEP_GETS", 200000);
    char name[32], key[64];
    uint64_t rng = 0xda942042e4dd58b5ull;
    snprintf(name, sizeof name, "sweep-%ld", w);
    conn c = conn_open(name, strcmp(engine, "nexus-off") == 0 ? "{\"cache_capacity\":0}" : "{}", 0);
    zipf_gen z = zipf_new(w, 0.99);
    for (int d = 0; d < 2; d++) {
        sweep_gets(&c, w, gets, d ? &z : NULL, &rng);
        snprintf(key, sizeof key, "sweep_%ld_%s_per_s", w, d ? "zipf" : "uniform");
        put(key, sweep_gets(&c, w, gets, d ? &z : NULL, &rng));
    }
    zipf_free(&z);
    snprintf(key, sizeof key, "after the sweep over %ld", w);
    stats_note(&c, key);
    conn_close(&c);
}

/* ---- phase: plain and encrypted in alternation ---- */

/* One slice of row `row` on `c`: its rate (`n` operations of the row). */
static double pair_slice(conn *c, int row, long n, long docs, uint64_t *rng)
{
    char id[32], q[128];
    size_t total = 0;
    long done = row == 3 ? 0 : row == 4 ? n * docs : n; /* find by age: rows; count: docs */
    double t0 = now_s();
    for (long k = 0; k < n; k++) {
        long i = (long)(next_rand(rng) % (uint64_t)docs);
        switch (row) {
        case 0:
            doc_id(id, sizeof id, i);
            total += get(c, id);
            break;
        case 1:
            doc_id(id, sizeof id, i);
            inc_score(c, id);
            break;
        case 2: {
            char *out = NULL;
            snprintf(q, sizeof q, "{\"email\":\"user%ld@example.com\"}", i);
            nx(nexus_find_one(c->n, "docs", q, &out), "find_one");
            total += strlen(out);
            nexus_free(out);
            break;
        }
        case 3:
            snprintf(q, sizeof q, "{\"age\":%ld}", 18 + i % 80);
            done += nx_rows(c, q, &total);
            break;
        default:
            total += (size_t)count_2pred(c);
        }
    }
    double rate = (double)done / (now_s() - t0);
    if (total == 0 && row != 1) {
        fprintf(stderr, "%s: pair row %d read nothing\n", BENCH_NAME, row);
        exit(1);
    }
    return rate;
}

enum { PAIR_ROWS = 7, INDEX_BUILDS = 4, MAX_SLICES = 100 };

/* Slice `s` of row `r` (`n` operations, see pair_slice) on the plain (c[0]) and the encrypted
 * database (c[1]) in turn, the first alternating with `s`: their rates and the ratio. */
static void pair_turn(conn c[2], int r, long s, long n, long docs, uint64_t rng[2],
                      double rate[][2][MAX_SLICES], double ratio[][MAX_SLICES])
{
    for (int k = 0; k < 2; k++) {
        int e = (int)((s + k) % 2);
        rate[r][e][s] = pair_slice(&c[e], r, n, docs, &rng[e]);
    }
    ratio[r][s] = rate[r][1][s] / rate[r][0][s];
}

/* Plain and encrypted NexusLite side by side in this one process (scripts/bench-encryption.sh,
 * needs BENCH_KEY_FILE), in BENCH_PAIR_SLICES [10] slices, each running a row on the plain and
 * on the encrypted database in turn (which goes first alternates): first the bulk load on the
 * defaults (a tenth of the documents a slice at 10 slices, 1,000 per transaction, as the table
 * phase loads), 3 filtered counts a slice (a scan of every row, no index yet), then both
 * reopened with sync normal and indexed on email and age (4 times, see below), then slices of
 * gets, sync-normal updates, find_one and find by age (the table's counts divided among the
 * slices). Prints every slice's ratio (encrypted / plain) of each row, then its medians. */
static void phase_pair(void)
{
    long docs = env_long("BENCH_DOCS", 200000), slices = env_long("BENCH_PAIR_SLICES", 10);
    /* Operations of rows 0-4 over all slices (rows 5 and 6, the load and the index build,
     * run apart). */
    long per[5] = {env_long("BENCH_GETS", 200000), env_long("BENCH_UPDATES_NORMAL", 20000),
                   env_long("BENCH_LOOKUPS", 50000), env_long("BENCH_AGE_QUERIES", 200), 3 * slices};
    const char *key[PAIR_ROWS] = {"get_per_s",         "update_normal_per_s", "find_one_email_per_s",
                             "find_age_rows_per_s", "count_docs_per_s", "bulk_docs_per_s",
                             "index_build_docs_per_s"};
    if (SQL || !getenv("BENCH_KEY_FILE") || slices < 1 || slices > MAX_SLICES) {
        fprintf(stderr, "%s: pair runs engine nexus with BENCH_KEY_FILE, 1-%d slices\n", BENCH_NAME, MAX_SLICES);
        exit(2);
    }
    conn c[2];
    double rate[PAIR_ROWS][2][MAX_SLICES], ratio[PAIR_ROWS][MAX_SLICES];
    for (int e = 0; e < 2; e++) {
        UNKEYED = !e;
        c[e] = conn_open(e ? "pair-encrypted" : "pair-plain", "{}", 0);
    }
    /* The bulk load on the defaults, a slice of the documents at a time. */
    for (long s = 0; s < slices; s++) {
        for (int k = 0; k < 2; k++) {
            int e = (int)((s + k) % 2);
            rate[5][e][s] = load_range(&c[e], docs * s / slices, docs * (s + 1) / slices, 0);
        }
        ratio[5][s] = rate[5][1][s] / rate[5][0][s];
    }
    /* The filtered counts before any index (as in the table phase: a scan of every row). */
    uint64_t rng[2] = {0x9e3779b97f4a7c15ull, 0x9e3779b97f4a7c15ull};
    for (long s = 0; s < slices; s++)
        pair_turn(c, 4, s, per[4] / slices, docs, rng, rate, ratio);
    for (int e = 0; e < 2; e++) {
        UNKEYED = !e;
        conn_close(&c[e]);
        c[e] = conn_open(e ? "pair-encrypted" : "pair-plain", "{\"sync\":\"normal\"}", 1);
    }
    /* The two indexes built INDEX_BUILDS times, in the order plain, encrypted, encrypted,
     * plain, plain, ... (dropped between builds, kept after the last). */
    for (long s = 0; s < INDEX_BUILDS; s++) {
        for (int k = 0; k < 2; k++) {
            int e = (int)((s + k) % 2);
            char *email = NULL, *age = NULL;
            double t0 = now_s();
            nx(nexus_create_index(c[e].n, "docs", "{\"email\":1}", NULL, &email), "create_index email");
            nx(nexus_create_index(c[e].n, "docs", "{\"age\":1}", NULL, &age), "create_index age");
            rate[6][e][s] = (double)docs / (now_s() - t0);
            if (s < INDEX_BUILDS - 1) {
                nx(nexus_drop_index(c[e].n, "docs", email), "drop_index");
                nx(nexus_drop_index(c[e].n, "docs", age), "drop_index");
            }
            nexus_free(email);
            nexus_free(age);
        }
        ratio[6][s] = rate[6][1][s] / rate[6][0][s];
    }
    UNKEYED = 0;
    for (long s = 0; s < slices; s++)
        for (int r = 0; r < 4; r++)
            pair_turn(c, r, s, per[r] / slices > 0 ? per[r] / slices : 1, docs, rng, rate, ratio);
    char name[96];
    for (int r = 0; r < PAIR_ROWS; r++) {
        long m = r == 6 ? INDEX_BUILDS : slices;
        for (long s = 0; s < m; s++) {
            snprintf(name, sizeof name, "pair_slice_ratio_%s", key[r]);
            put(name, ratio[r][s]);
        }
        snprintf(name, sizeof name, "pair_plain_%s", key[r]);
        put(name, median(rate[r][0], m));
        snprintf(name, sizeof name, "pair_encrypted_%s", key[r]);
        put(name, median(rate[r][1], m));
        snprintf(name, sizeof name, "pair_ratio_%s", key[r]);
        put(name, median(ratio[r], m));
    }
    conn_close(&c[0]);
    conn_close(&c[1]);
}

/* Sync-full commits of plain NexusLite, encrypted NexusLite and SQLCipher in this one process
 * (the SQLCipher build of this harness, BENCH_KEY_FILE set; scripts/bench-encryption.sh):
 * each loads BENCH_DURABLE_DOCS [10000] documents into a database of its own and makes 50
 * warm-up updates, then BENCH_TRIO_SLICES [20] slices, each running BENCH_UPDATES_FULL
 * [3000] / slices single-document updates sync full on each engine in turn (the order
 * rotates). A commit waits for the disk, whose flush rate swings within seconds on a shared
 * machine; taking turns puts the three on the same spells. Prints every slice's ratios
 * (encrypted / plain, encrypted / SQLCipher), then the medians. */
static void phase_durable_trio(void)
{
#ifndef BENCH_SQLCIPHER
    fprintf(stderr, "%s: durable-trio runs in the SQLCipher build of this harness\n", BENCH_NAME);
    exit(2);
#endif
    long docs = env_long("BENCH_DURABLE_DOCS", 10000), slices = env_long("BENCH_TRIO_SLICES", 20);
    long n = env_long("BENCH_UPDATES_FULL", 3000) / slices;
    if (!getenv("BENCH_KEY_FILE") || slices < 1 || slices > MAX_SLICES || n < 1) {
        fprintf(stderr, "%s: durable-trio needs BENCH_KEY_FILE and 1-%d slices of at least one update\n",
                BENCH_NAME, MAX_SLICES);
        exit(2);
    }
    const char *names[3] = {"plain", "encrypted", "sqlcipher"};
    conn c[3];
    uint64_t rng[3];
    char id[32];
    double rate[3][MAX_SLICES], ep[MAX_SLICES], es[MAX_SLICES];
    for (int e = 0; e < 3; e++) {
        SQL = e == 2;
        UNKEYED = e == 0;
        char name[32];
        snprintf(name, sizeof name, "trio-%s", names[e]);
        c[e] = conn_open(name, "{}", 0);
        load_seq(&c[e], docs, 0);
        rng[e] = 0x853c49e6748fea9bull;
        for (long k = 0; k < 50; k++) {
            doc_id(id, sizeof id, (long)(next_rand(&rng[e]) % (uint64_t)docs));
            inc_score(&c[e], id);
        }
    }
    for (long s = 0; s < slices; s++) {
        for (int k = 0; k < 3; k++) {
            int e = (int)((s + k) % 3);
            SQL = e == 2;
            double t0 = now_s();
            for (long u = 0; u < n; u++) {
                doc_id(id, sizeof id, (long)(next_rand(&rng[e]) % (uint64_t)docs));
                inc_score(&c[e], id);
            }
            rate[e][s] = (double)n / (now_s() - t0);
        }
        ep[s] = rate[1][s] / rate[0][s];
        es[s] = rate[1][s] / rate[2][s];
    }
    for (long s = 0; s < slices; s++)
        put("trio_slice_ratio_plain", ep[s]);
    for (long s = 0; s < slices; s++)
        put("trio_slice_ratio_sqlcipher", es[s]);
    for (int e = 0; e < 3; e++) {
        char key[64];
        snprintf(key, sizeof key, "trio_%s_durable_update_per_s", names[e]);
        put(key, median(rate[e], slices));
        SQL = e == 2;
        conn_close(&c[e]);
    }
    put("trio_ratio_plain", median(ep, slices));
    put("trio_ratio_sqlcipher", median(es, slices));
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s PHASE nexus|nexus-off|sqlite WORKDIR [ARG]\n", argv[0]);
        return 2;
    }
    const char *phase = argv[1], *engine = argv[2], *arg = argc > 4 ? argv[4] : "";
    WORK = argv[3];
    ENGINE = engine;
    SQL = strcmp(engine, "sqlite") == 0;
    if (strcmp(phase, "table") == 0)
        phase_table();
    else if (strcmp(phase, "load") == 0)
        phase_load(arg);
    else if (strcmp(phase, "disk") == 0)
        phase_disk();
    else if (strcmp(phase, "durable") == 0)
        phase_durable();
    else if (strcmp(phase, "sweep-load") == 0)
        phase_sweep_load(atol(arg));
    else if (strcmp(phase, "sweep") == 0)
        phase_sweep(engine, atol(arg));
    else if (strcmp(phase, "pair") == 0)
        phase_pair();
    else if (strcmp(phase, "durable-trio") == 0)
        phase_durable_trio();
    else {
        fprintf(stderr, "%s: unknown phase %s\n", BENCH_NAME, phase);
        return 2;
    }
    printf("rss_kib %ld\n", peak_rss_kib());
    return 0;
}
