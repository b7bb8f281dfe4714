/*
 * Multi-process benchmark through the C ABI: NexusLite on its defaults vs SQLite in WAL mode,
 * several processes on one database file, side by side in one run
 * (scripts/bench-multiprocess.sh builds and runs it; `make bench`).
 *
 *   multiprocess_bench WORKDIR TABLE.md RAW.txt
 *
 * Data: BENCH_DOCS documents {"_id":"user:000042","name":"user 42","age":<18..77>,
 * "score":<int>}, loaded by a child process in 1,000-document transactions. SQLite holds the
 * same JSON text in `users(id TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID`.
 *
 * Each measurement forks its processes; every process opens its own connection after the
 * fork (the parent never opens one), reports "ready" through a pipe, waits for the parent's
 * start signal (the start pipe's write end closed), runs its loop for BENCH_SECONDS and
 * reports its count, its busy retries and its own elapsed time through the pipe:
 *   - a reader: point lookups of random existing ids, nexus_get(db, "users", id) (the by-id
 *     read users call: through the document cache, which random ids over 100,000 documents
 *     mostly miss) / SELECT body FROM users WHERE id = ?. BENCH_NEXUS_READ=find_one uses
 *     nexus_find_one with {"_id": id} instead (read by key: no plan, no cursor, the document
 *     cache left alone, as for every query; 2026-12-08, NexusLite alone on this machine:
 *     nexus_get ran 0.82-0.91x the lookups of nexus_find_one on the rows below);
 *   - a writer: single-document updates of random existing ids, each its own transaction
 *     (autocommit): nexus_update with {"_id": id} and {"$set": {"score": n}} / UPDATE users
 *     SET body = json_set(body, '$.score', ?) WHERE id = ?; each must match one document.
 * Shapes, in this order: 1 reader alone; 1 writer alone; 1, 2 and 4 readers beside 1 writer;
 * 2 writers. Rates are summed over the processes of a role (each count over that process's
 * own elapsed time). Every shape runs BENCH_RUNS passes; the engines take turns pass by pass
 * so that the shared machine's changing load falls on both; median and min-max reported.
 *
 * Settings: NexusLite nexus_open(path, NULL) (defaults: storage wasp, sync full, busy
 * timeout 5000 ms, document cache and page cache on) unless BENCH_NEXUS_OPTIONS gives an
 * options object (a report made so must say it). SQLite journal_mode=WAL,
 * synchronous=BENCH_SQLITE_SYNCHRONOUS (FULL), busy timeout 5000 ms, cache_size 32 MiB
 * (NexusLite's default page cache).
 *
 * Busy: NEXUS_BUSY (SQLite: SQLITE_BUSY and its extended codes) from a call in a loop is
 * counted and the call retried; any other failure, an open that fails (today's NexusLite
 * lets one process at a time open a file: the second process's nexus_open waits its busy
 * timeout and fails with "nexus_open in a second process failed: ..."), a child that exits
 * without reporting or a measurement that overruns by two minutes makes the parent kill its
 * children, print the reason and exit 1.
 *
 * Environment (defaults in brackets): BENCH_DOCS [100000], BENCH_RUNS [3], BENCH_SECONDS [3]
 * per measurement, BENCH_ENGINES [both] or nexus or sqlite (one engine: a check of the
 * harness), BENCH_NEXUS_OPTIONS [none: NULL] a whole options object for a run off the
 * defaults, BENCH_NEXUS_READ [get] or find_one, BENCH_SQLITE_SYNCHRONOUS [FULL].
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nexus.h>
#include <sqlite3.h>

#define BENCH_NAME "multiprocess_bench"
#include "bench_util.h"

enum { NEXUS, SQL, NENG };
static const char *ENG[NENG] = {"NexusLite", "SQLite"};

static long DOCS, RUNS;
static double SECONDS;
static const char *WORK, *NEXUS_OPTIONS, *NEXUS_READ, *SQLITE_SYNC;
static int RUN_ENG[NENG];
static FILE *RAW;

/* The shapes of a measurement: how many reader and writer processes. */
#define MAXP 8
static const struct {
    const char *name;
    int readers, writers;
} SHAPE[] = {
    {"1 reader, no writer", 1, 0},
    {"1 writer, no reader", 0, 1},
    {"1 reader + 1 writer", 1, 1},
    {"2 readers + 1 writer", 2, 1},
    {"4 readers + 1 writer", 4, 1},
    {"2 writers", 0, 2},
};
#define NSHAPE (int)(sizeof SHAPE / sizeof SHAPE[0])
enum { READS, WRITES };

static void doc_id(char *buf, size_t cap, long i) { snprintf(buf, cap, "user:%06ld", i); }

static void doc_json(char *buf, size_t cap, long i)
{
    snprintf(buf, cap, "{\"_id\":\"user:%06ld\",\"name\":\"user %ld\",\"age\":%ld,\"score\":%ld}", i, i,
             18 + i % 60, (i * 7919) % 100000);
}

static void db_path(char *buf, size_t cap, int eng)
{
    snprintf(buf, cap, "%s/users-%s.%s", WORK, ENG[eng], eng == SQL ? "sqlite" : "db");
}

/* ---- a connection of one process; calls return 0 (done), 1 (busy: retry) or -1 (failed,
 * the reason in err) ---- */

typedef struct {
    int eng;
    nexus_db *n;
    sqlite3 *s;
    sqlite3_stmt *get, *upd;
    char err[512];
} conn;

static int nexus_rc(conn *c, int rc, const char *what)
{
    if (rc == NEXUS_OK)
        return 0;
    if (rc == NEXUS_BUSY)
        return 1;
    snprintf(c->err, sizeof c->err, "%s failed: %s (%s)", what, nexus_errmsg(), nexus_errstr(rc));
    return -1;
}

static int sqlite_rc(conn *c, int rc, const char *what)
{
    if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE)
        return 0;
    if ((rc & 0xff) == SQLITE_BUSY)
        return 1;
    snprintf(c->err, sizeof c->err, "sqlite %s failed: %s (%s)", what, sqlite3_errmsg(c->s),
             sqlite3_errstr(rc));
    return -1;
}

/* Opens the connection; on failure err holds the engine's message (no busy retry here: the
 * open itself waits its busy timeout). */
static int conn_open(conn *c, int eng, const char *path)
{
    *c = (conn){.eng = eng};
    if (eng == NEXUS) {
        int rc = nexus_open(path, NEXUS_OPTIONS, &c->n);
        if (rc != NEXUS_OK)
            snprintf(c->err, sizeof c->err, "%s (%s)", nexus_errmsg(), nexus_errstr(rc));
        return rc == NEXUS_OK ? 0 : -1;
    }
    char pragmas[160];
    snprintf(pragmas, sizeof pragmas, "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA cache_size=-32768;",
             SQLITE_SYNC);
    if (sqlite_rc(c, sqlite3_open(path, &c->s), "open") || sqlite_rc(c, sqlite3_busy_timeout(c->s, 5000), "busy_timeout") ||
        sqlite_rc(c, sqlite3_exec(c->s, pragmas, NULL, NULL, NULL), "pragmas") ||
        sqlite_rc(c,
                  sqlite3_exec(c->s, "CREATE TABLE IF NOT EXISTS users(id TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID",
                               NULL, NULL, NULL),
                  "create table") ||
        sqlite_rc(c, sqlite3_prepare_v2(c->s, "SELECT body FROM users WHERE id = ?", -1, &c->get, NULL), "prepare") ||
        sqlite_rc(c,
                  sqlite3_prepare_v2(c->s, "UPDATE users SET body = json_set(body, '$.score', ?) WHERE id = ?", -1,
                                     &c->upd, NULL),
                  "prepare")) {
        if (!*c->err)
            snprintf(c->err, sizeof c->err, "sqlite open: busy");
        return -1;
    }
    return 0;
}

static int conn_close(conn *c)
{
    if (c->eng == NEXUS)
        return nexus_rc(c, nexus_close(c->n), "nexus_close") ? -1 : 0;
    sqlite3_finalize(c->get);
    sqlite3_finalize(c->upd);
    return sqlite_rc(c, sqlite3_close(c->s), "close") ? -1 : 0;
}

static int read_one(conn *c, const char *id)
{
    if (c->eng == NEXUS) {
        char *out = NULL, f[64];
        int r;
        if (strcmp(NEXUS_READ, "get") == 0) {
            r = nexus_rc(c, nexus_get(c->n, "users", id, &out), "nexus_get");
        } else {
            snprintf(f, sizeof f, "{\"_id\":\"%s\"}", id);
            r = nexus_rc(c, nexus_find_one(c->n, "users", f, &out), "nexus_find_one");
        }
        if (r == 0 && (!out || strstr(out, id) == NULL)) {
            snprintf(c->err, sizeof c->err, "nexus_%s %s returned another document or none", NEXUS_READ, id);
            r = -1;
        }
        nexus_free(out);
        return r;
    }
    sqlite3_bind_text(c->get, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(c->get);
    if (rc == SQLITE_ROW && sqlite3_column_bytes(c->get, 0) == 0)
        rc = SQLITE_DONE;
    sqlite3_reset(c->get);
    if (rc == SQLITE_DONE) {
        snprintf(c->err, sizeof c->err, "sqlite select %s: not found", id);
        return -1;
    }
    return sqlite_rc(c, rc, "select");
}

static int update_one(conn *c, const char *id, long v)
{
    if (c->eng == NEXUS) {
        char f[64], u[64];
        uint64_t matched = 0;
        snprintf(f, sizeof f, "{\"_id\":\"%s\"}", id);
        snprintf(u, sizeof u, "{\"$set\":{\"score\":%ld}}", v);
        int r = nexus_rc(c, nexus_update(c->n, "users", f, u, 0, &matched, NULL), "nexus_update");
        if (r == 0 && matched != 1) {
            snprintf(c->err, sizeof c->err, "nexus_update %s matched %llu documents", id,
                     (unsigned long long)matched);
            r = -1;
        }
        return r;
    }
    sqlite3_bind_int64(c->upd, 1, v);
    sqlite3_bind_text(c->upd, 2, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(c->upd);
    sqlite3_reset(c->upd);
    int r = sqlite_rc(c, rc, "update");
    if (r == 0 && sqlite3_changes(c->s) != 1) {
        snprintf(c->err, sizeof c->err, "sqlite update %s changed %d rows", id, sqlite3_changes(c->s));
        r = -1;
    }
    return r;
}

/* ---- a child process ---- */

/* The user and system CPU seconds this process has used. */
static void cpu_s(double *user, double *sys)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    *user = (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6;
    *sys = (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

enum { READY, DONE, FAIL };

/* What a child sends through the pipe (one write, smaller than PIPE_BUF: atomic). */
typedef struct {
    int kind, child;
    long count, busy;
    double secs, user, sys; /* elapsed, user CPU and system CPU seconds of the loop */
    char msg[600];
} report;

static void send_report(int fd, report *rep)
{
    if (write(fd, rep, sizeof *rep) != (ssize_t)sizeof *rep)
        _exit(3);
}

static void child_fail(int fd, report *rep, const char *what, const char *err)
{
    rep->kind = FAIL;
    snprintf(rep->msg, sizeof rep->msg, "%s%s", what, err);
    send_report(fd, rep);
    _exit(1);
}

/* Opens a connection, reports ready, waits for the start (EOF on go_fd), then reads or
 * updates random ids for SECONDS and reports what it did. Never returns. */
static void child_main(int eng, int writer, int idx, int nprocs, uint64_t seed, int res_fd, int go_fd)
{
    report rep = {.child = idx};
    char path[512], id[32], b;
    conn c;
    db_path(path, sizeof path, eng);
    if (conn_open(&c, eng, path) != 0)
        child_fail(res_fd, &rep,
                   eng != NEXUS  ? "sqlite open failed: "
                   : nprocs > 1 ? "nexus_open in a second process failed: "
                                : "nexus_open failed: ",
                   c.err);
    rep.kind = READY;
    send_report(res_fd, &rep);
    while (read(go_fd, &b, 1) < 0 && errno == EINTR)
        ;
    close(go_fd);

    double t0 = now_s(), end = t0 + SECONDS, t, user0, sys0;
    cpu_s(&user0, &sys0);
    uint64_t rng = seed;
    while ((t = now_s()) < end) {
        doc_id(id, sizeof id, (long)(next_rand(&rng) % (uint64_t)DOCS));
        int r;
        while ((r = writer ? update_one(&c, id, rep.count) : read_one(&c, id)) == 1) {
            rep.busy++;
            if (now_s() > end + 60)
                child_fail(res_fd, &rep, writer ? "update: " : "read: ", "still busy 60 s after the interval");
        }
        if (r < 0)
            child_fail(res_fd, &rep, "", c.err);
        rep.count++;
    }
    rep.secs = t - t0;
    cpu_s(&rep.user, &rep.sys);
    rep.user -= user0;
    rep.sys -= sys0;
    if (conn_close(&c) != 0)
        child_fail(res_fd, &rep, "", c.err);
    rep.kind = DONE;
    send_report(res_fd, &rep);
    _exit(0);
}

/* ---- the parent ---- */

typedef struct {
    int eng, shape, n, fd;
    pid_t pid[MAXP];
    int reaped[MAXP], status[MAXP];
    report rep[MAXP];
} run;

static long BUSY_SO_FAR[NENG];

/* Kills the run's children (by pid), reaps them, prints why and exits 1. */
static void fail(run *r, const char *fmt, const char *arg)
{
    for (int i = 0; i < r->n; i++)
        if (!r->reaped[i])
            kill(r->pid[i], SIGKILL);
    for (int i = 0; i < r->n; i++)
        if (!r->reaped[i])
            waitpid(r->pid[i], NULL, 0);
    fprintf(stderr, "%s: %s, %s: ", BENCH_NAME, ENG[r->eng], SHAPE[r->shape].name);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s: busy retries before this failure: NexusLite %ld, SQLite %ld\n", BENCH_NAME,
            BUSY_SO_FAR[NEXUS], BUSY_SO_FAR[SQL]);
    if (RAW)
        fflush(RAW);
    exit(1);
}

/* Waits for a report of `kind` from every child, for at most `limit` seconds; fails the run
 * on a FAIL report, on a child that exits without its report, or on the time limit. */
static void collect(run *r, int kind, double limit)
{
    int got[MAXP] = {0}, have = 0;
    double deadline = now_s() + limit;
    while (have < r->n) {
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        if (poll(&p, 1, 200) > 0) {
            report rep;
            ssize_t m = read(r->fd, &rep, sizeof rep);
            if (m == (ssize_t)sizeof rep && rep.child >= 0 && rep.child < r->n) {
                if (rep.kind == FAIL) {
                    BUSY_SO_FAR[r->eng] += rep.busy;
                    fail(r, "%s", rep.msg);
                }
                if (rep.kind == kind && !got[rep.child]) {
                    got[rep.child] = 1;
                    r->rep[rep.child] = rep;
                    have++;
                }
                continue;
            }
            if (m != 0)
                fail(r, "%s", "a short or malformed report on the pipe");
        }
        if (now_s() > deadline)
            fail(r, "%s", "timed out waiting for the child processes");
        for (int i = 0; i < r->n; i++) {
            if (got[i])
                continue;
            if (!r->reaped[i] && waitpid(r->pid[i], &r->status[i], WNOHANG) == r->pid[i])
                r->reaped[i] = 1;
            if (!r->reaped[i])
                continue;
            /* It may have written its report just before exiting: read the pipe again first. */
            struct pollfd q = {.fd = r->fd, .events = POLLIN};
            if (poll(&q, 1, 0) > 0 && (q.revents & POLLIN))
                break;
            char why[96];
            snprintf(why, sizeof why, "%s %d", WIFEXITED(r->status[i]) ? "status" : "signal",
                     WIFEXITED(r->status[i]) ? WEXITSTATUS(r->status[i]) : WTERMSIG(r->status[i]));
            fail(r, "a child process exited without reporting (%s)", why);
        }
    }
}

/* One measurement: forks the shape's processes, starts them together, and returns the
 * summed rates of readers (reads/s) and writers (commits/s); adds the busy retries. */
static void measure(int eng, int shape, int pass, double *rate, long *busy)
{
    int res[2], go[2];
    run r = {.eng = eng, .shape = shape, .n = SHAPE[shape].readers + SHAPE[shape].writers};
    if (pipe(res) != 0 || pipe(go) != 0) {
        perror(BENCH_NAME ": pipe");
        exit(1);
    }
    r.fd = res[0];
    fflush(NULL);
    for (int i = 0; i < r.n; i++) {
        int writer = i >= SHAPE[shape].readers;
        uint64_t seed = 0x9e3779b97f4a7c15ull ^ ((uint64_t)(shape * 10007 + pass * 101 + i + 1) * 0xff51afd7ed558ccdull);
        pid_t pid = fork();
        if (pid < 0) {
            r.n = i;
            fail(&r, "fork failed: %s", strerror(errno));
        }
        if (pid == 0) {
            close(res[0]);
            close(go[1]);
            child_main(eng, writer, i, r.n, seed, res[1], go[0]);
        }
        r.pid[i] = pid;
    }
    close(res[1]);
    close(go[0]);
    collect(&r, READY, 120);
    close(go[1]); /* the start: every child's read of the start pipe returns */
    collect(&r, DONE, SECONDS + 120);
    for (int i = 0; i < r.n; i++) {
        if (!r.reaped[i] && waitpid(r.pid[i], &r.status[i], 0) == r.pid[i])
            r.reaped[i] = 1;
        if (!WIFEXITED(r.status[i]) || WEXITSTATUS(r.status[i]) != 0)
            fail(&r, "%s", "a child process reported its counts but did not exit cleanly");
    }
    close(res[0]);

    rate[READS] = rate[WRITES] = 0;
    fprintf(RAW, "%-22s %-9s pass %d:", SHAPE[shape].name, ENG[eng], pass + 1);
    for (int i = 0; i < r.n; i++) {
        int writer = i >= SHAPE[shape].readers;
        rate[writer ? WRITES : READS] += (double)r.rep[i].count / r.rep[i].secs;
        *busy += r.rep[i].busy;
        BUSY_SO_FAR[eng] += r.rep[i].busy;
        double per = r.rep[i].count ? 1e6 / (double)r.rep[i].count : 0;
        fprintf(RAW, "  %s%d %ld in %.3f s (%ld busy; CPU us each: %.1f user, %.1f system)",
                writer ? "writer" : "reader", i, r.rep[i].count, r.rep[i].secs, r.rep[i].busy, r.rep[i].user * per,
                r.rep[i].sys * per);
    }
    fprintf(RAW, "\n");
    fflush(RAW);
}

/* Creates the database with DOCS documents in a child process (its own connection, closed
 * before the measurements start). */
static void preload(int eng)
{
    char path[512], side[600], id[32], json[160];
    db_path(path, sizeof path, eng);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int k = 0; k < 3; k++) {
        snprintf(side, sizeof side, "%s%s", path, suffix[k]);
        unlink(side);
    }
    snprintf(side, sizeof side, "%.*s.wasp", (int)strlen(path) - 3, path);
    unlink(side);
    fflush(NULL);
    double t0 = now_s();
    pid_t pid = fork();
    if (pid == 0) {
        conn c;
        if (conn_open(&c, eng, path) != 0) {
            fprintf(stderr, "%s: preload: open failed: %s\n", BENCH_NAME, c.err);
            _exit(1);
        }
        sqlite3_stmt *ins = NULL;
        if (eng == SQL)
            sq(c.s, sqlite3_prepare_v2(c.s, "INSERT INTO users(id, body) VALUES(?, ?)", -1, &ins, NULL), "prepare");
        for (long i = 0; i < DOCS; i += 1000) {
            if (eng == NEXUS)
                nx(nexus_begin(c.n), "nexus_begin");
            else
                sq(c.s, sqlite3_exec(c.s, "BEGIN", NULL, NULL, NULL), "begin");
            for (long j = i; j < i + 1000 && j < DOCS; j++) {
                doc_json(json, sizeof json, j);
                if (eng == NEXUS) {
                    nx(nexus_insert(c.n, "users", json, NULL), "nexus_insert");
                    continue;
                }
                doc_id(id, sizeof id, j);
                sqlite3_bind_text(ins, 1, id, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 2, json, -1, SQLITE_STATIC);
                sq(c.s, sqlite3_step(ins), "insert");
                sqlite3_reset(ins);
            }
            if (eng == NEXUS)
                nx(nexus_commit(c.n), "nexus_commit");
            else
                sq(c.s, sqlite3_exec(c.s, "COMMIT", NULL, NULL, NULL), "commit");
        }
        if (eng == SQL) {
            sqlite3_finalize(ins);
            sq(c.s, sqlite3_exec(c.s, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), "checkpoint");
        }
        if (conn_close(&c) != 0) {
            fprintf(stderr, "%s: preload: %s\n", BENCH_NAME, c.err);
            _exit(1);
        }
        _exit(0);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s: preloading %s failed\n", BENCH_NAME, ENG[eng]);
        exit(1);
    }
    fprintf(RAW, "preload %s: %ld documents in %.2f s\n", ENG[eng], DOCS, now_s() - t0);
}

/* ---- results ---- */

static double V[NSHAPE][NENG][2][64]; /* rates per pass */
static long BUSY[NSHAPE][NENG];

/* "median (min-max)" of a row's passes into buf, or "-" where the engine did not run. */
static double cell(char *buf, size_t cap, int shape, int eng, int kind)
{
    if (!RUN_ENG[eng]) {
        snprintf(buf, cap, "-");
        return 0;
    }
    double *v = V[shape][eng][kind];
    double m = median(v, RUNS); /* sorts: v[0] and v[RUNS - 1] are the range */
    snprintf(buf, cap, "%.0f (%.0f-%.0f)", m, v[0], v[RUNS - 1]);
    return m;
}

static void table_row(FILE *out, const char *what, const char *unit, int shape, int kind)
{
    char a[96], b[96], ratio[48] = "-", paired[64] = "-", busy[2][24];
    if (RUN_ENG[NEXUS] && RUN_ENG[SQL]) {
        /* The engines take turns pass by pass: pass i of one ran next to pass i of the other,
         * so each pair met about the same spell of the machine. */
        double r[64];
        int won = 0;
        for (long i = 0; i < RUNS; i++) {
            double sv = V[shape][SQL][kind][i];
            r[i] = sv > 0 ? V[shape][NEXUS][kind][i] / sv : 0;
            won += r[i] > 1;
        }
        double m = median(r, RUNS);
        snprintf(paired, sizeof paired, "%d of %ld, %.2fx (%.2f-%.2f)", won, RUNS, m, r[0], r[RUNS - 1]);
    }
    double n = cell(a, sizeof a, shape, NEXUS, kind), s = cell(b, sizeof b, shape, SQL, kind);
    if (RUN_ENG[NEXUS] && RUN_ENG[SQL] && s > 0)
        snprintf(ratio, sizeof ratio, "%.2fx %s", n / s, n >= s ? "better" : "worse");
    for (int e = 0; e < NENG; e++)
        if (RUN_ENG[e])
            snprintf(busy[e], sizeof busy[e], "%ld", BUSY[shape][e]);
        else
            snprintf(busy[e], sizeof busy[e], "-");
    fprintf(out, "| %s | %s | %s | %s | %s | %s | %s / %s |\n", what, unit, a, b, ratio, paired, busy[NEXUS],
            busy[SQL]);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s WORKDIR TABLE.md RAW.txt\n", argv[0]);
        return 2;
    }
    WORK = argv[1];
    DOCS = env_long("BENCH_DOCS", 100000);
    RUNS = env_long("BENCH_RUNS", 3);
    const char *secs = getenv("BENCH_SECONDS");
    SECONDS = secs && *secs ? atof(secs) : 3.0;
    const char *opts = getenv("BENCH_NEXUS_OPTIONS");
    NEXUS_OPTIONS = opts && *opts ? opts : NULL;
    const char *read_call = getenv("BENCH_NEXUS_READ");
    NEXUS_READ = read_call && *read_call ? read_call : "get";
    const char *sync = getenv("BENCH_SQLITE_SYNCHRONOUS");
    SQLITE_SYNC = sync && *sync ? sync : "FULL";
    const char *engines = getenv("BENCH_ENGINES");
    engines = engines && *engines ? engines : "both";
    RUN_ENG[NEXUS] = strcmp(engines, "sqlite") != 0;
    RUN_ENG[SQL] = strcmp(engines, "nexus") != 0;
    if (RUNS < 1 || RUNS > 64 || DOCS < 1000 || SECONDS <= 0 ||
        (strcmp(engines, "both") && strcmp(engines, "nexus") && strcmp(engines, "sqlite")) ||
        (strcmp(NEXUS_READ, "find_one") && strcmp(NEXUS_READ, "get"))) {
        fprintf(stderr,
                "%s: BENCH_RUNS 1..64, BENCH_DOCS >= 1000, BENCH_SECONDS > 0, BENCH_ENGINES both|nexus|sqlite, "
                "BENCH_NEXUS_READ get|find_one\n",
                BENCH_NAME);
        return 2;
    }
    RAW = fopen(argv[3], "w");
    if (!RAW)
        return 1;
    fprintf(RAW, "NexusLite %s (options %s, reads nexus_%s), SQLite %s (journal_mode=WAL, synchronous=%s, busy timeout 5000 ms, "
                 "cache_size 32 MiB); DOCS=%ld RUNS=%ld SECONDS=%g ENGINES=%s\n",
            nexus_version(), NEXUS_OPTIONS ? NEXUS_OPTIONS : "NULL: defaults", NEXUS_READ, sqlite3_libversion(), SQLITE_SYNC,
            DOCS, RUNS, SECONDS, engines);

    for (int e = 0; e < NENG; e++)
        if (RUN_ENG[e])
            preload(e);
    for (int sh = 0; sh < NSHAPE; sh++) {
        for (int pass = 0; pass < RUNS; pass++)
            for (int e = 0; e < NENG; e++) {
                if (!RUN_ENG[e])
                    continue;
                double rate[2];
                measure(e, sh, pass, rate, &BUSY[sh][e]);
                V[sh][e][READS][pass] = rate[READS];
                V[sh][e][WRITES][pass] = rate[WRITES];
            }
        for (int e = 0; e < NENG; e++) {
            if (!RUN_ENG[e])
                continue;
            fprintf(stderr, "  %-22s %-9s", SHAPE[sh].name, ENG[e]);
            for (int kind = READS; kind <= WRITES; kind++) {
                if (kind == READS ? !SHAPE[sh].readers : !SHAPE[sh].writers)
                    continue;
                double v[64];
                memcpy(v, V[sh][e][kind], sizeof v);
                fprintf(stderr, "  %s/s %.0f", kind == READS ? "reads" : "commits", median(v, RUNS));
            }
            fprintf(stderr, "  (busy retries %ld)\n", BUSY[sh][e]);
        }
    }

    FILE *out = fopen(argv[2], "w");
    if (!out)
        return 1;
    fprintf(out, "| workload | unit | NexusLite (%s) | SQLite (WAL, synchronous=%s) | NexusLite vs SQLite | "
                 "passes NexusLite won, pass ratios median (range) | busy retries NexusLite / SQLite |\n",
            NEXUS_OPTIONS ? "BENCH_NEXUS_OPTIONS" : "defaults", SQLITE_SYNC);
    fprintf(out, "|---|---|---:|---:|---:|---:|---:|\n");
    char what[160];
    for (int sh = 0; sh < NSHAPE; sh++) {
        if (!SHAPE[sh].readers)
            continue;
        snprintf(what, sizeof what, "reads by _id, %s", SHAPE[sh].name);
        table_row(out, what, "reads/s", sh, READS);
        if (SHAPE[sh].writers) {
            snprintf(what, sizeof what, "the writer's commits in the same interval (%s)", SHAPE[sh].name);
            table_row(out, what, "commits/s", sh, WRITES);
        }
    }
    for (int sh = 0; sh < NSHAPE; sh++) {
        if (SHAPE[sh].readers)
            continue;
        snprintf(what, sizeof what, "single-document update commits, %s%s", SHAPE[sh].name,
                 SHAPE[sh].writers > 1 ? " (total)" : "");
        table_row(out, what, "commits/s", sh, WRITES);
    }
    fclose(out);
    fclose(RAW);
    return 0;
}
