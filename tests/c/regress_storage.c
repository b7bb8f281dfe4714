/*
 * Regressions for the storage defects found by adversarial testing, through the C ABI:
 *
 *  - a missing or damaged log must not silently drop acknowledged commits: NEXUS_CORRUPT,
 *    nothing modified, and "recover": "discard-damaged-log" accepts the loss on purpose;
 *  - another process shortening the open file must not kill the host (SIGBUS);
 *  - nexus_open on a FIFO (or with a FIFO as the log) must not block;
 *  - a killed backup must leave the destination complete or absent, and a retry works.
 *
 * Writers that "crash" are child processes that exit without closing (_exit) or are
 * SIGKILLed; the parent checks every acknowledged commit.
 * Runs with either engine: every open passes test_options() (test_storage.h), which asks for
 * the `memlog` one when the test harness sets NEXUSLITE_STORAGE=memlog.
 */
#include "regress.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>

static int g_wal; /* the engine of new files is `wal` (no paged file, no backup) */
static const char *g_self; /* this program, exec'd for the child-process roles */

/* ---- small helpers ------------------------------------------------------------------- */

/* The log of database `db_path`: the same name with the extension .wasp. */
static const char *log_of(const char *db_path)
{
    static char buf[700];
    const char *dot = strrchr(db_path, '.');
    size_t stem = dot ? (size_t)(dot - db_path) : strlen(db_path);
    snprintf(buf, sizeof buf, "%.*s.wasp", (int)stem, db_path);
    return buf;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* FNV-1a of a whole file (0 when it cannot be read): "was it modified". */
static uint64_t file_hash(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint64_t h = 1469598103934665603ULL;
    int c;
    if (f == NULL)
        return 0;
    while ((c = fgetc(f)) != EOF)
        h = (h ^ (uint64_t)(unsigned char)c) * 1099511628211ULL;
    fclose(f);
    return h;
}

static uint64_t count_of(nexus_db *db, const char *coll)
{
    uint64_t n = UINT64_MAX;
    if (nexus_count(db, coll, NULL, &n) != NEXUS_OK)
        return UINT64_MAX;
    return n;
}

/* Inserts docs `from..to` (field n) one commit each. */
static int insert_range(nexus_db *db, int from, int to)
{
    char doc[96];
    for (int i = from; i < to; i++) {
        snprintf(doc, sizeof doc, "{\"_id\":\"d%06d\",\"n\":%d,\"pad\":\"%040d\"}", i, i, i);
        if (nexus_insert(db, "c", doc, NULL) != NEXUS_OK)
            return -1;
    }
    return 0;
}

/* A child process: opens `path` (sync full), inserts `before` documents, checkpoints,
 * inserts `after` more (each acknowledged), then exits WITHOUT closing: the last `after`
 * commits exist only in the log. Returns 0 when the child did all that. */
static int role_crash_writer(const char *path, int before, int after)
{
    nexus_db *db = NULL;
    if (nexus_open(path, test_options("{\"sync\":\"full\"}"), &db) != NEXUS_OK)
        return 10;
    if (insert_range(db, 0, before) != 0)
        return 11;
    if (nexus_checkpoint(db) != NEXUS_OK)
        return 12;
    if (insert_range(db, before, before + after) != 0)
        return 13;
    _exit(0); /* without nexus_close */
}

/* Starts this program in a child-process role (a fresh process image: no threads or locks
 * of the parent's library carried over); returns its pid. */
static pid_t spawn(const char *role, const char *a, const char *b, const char *c)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl(g_self, g_self, role, a, b, c, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Waits for `pid`: its exit status, or 200 + the signal that ended it. */
static int wait_for(pid_t pid)
{
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 200 + WTERMSIG(status);
}

static int crash_writer(const char *path, int before, int after)
{
    char b[16], a[16];
    snprintf(b, sizeof b, "%d", before);
    snprintf(a, sizeof a, "%d", after);
    return wait_for(spawn("--crash-writer", path, b, a));
}

/* Whether nexus_stats of `db` contains `needle`. */
static int stats_have(nexus_db *db, const char *needle)
{
    char *json = NULL;
    int found = 0;
    if (nexus_stats(db, &json) == NEXUS_OK && json != NULL)
        found = strstr(json, needle) != NULL;
    nexus_free(json);
    return found;
}

static long u32_at(const unsigned char *b)
{
    return (long)b[0] | (long)b[1] << 8 | (long)b[2] << 16 | (long)b[3] << 24;
}

/* Where the log's records start: after its 32-byte header (version 1: memlog) or its two
   32-byte header slots (version 2: wasp's recycled log). */
static long records_start(const char *log_path)
{
    unsigned char h[12];
    FILE *f = fopen(log_path, "rb");
    size_t n = f ? fread(h, 1, sizeof h, f) : 0;
    if (f)
        fclose(f);
    if (n < 12)
        return -1;
    return u32_at(h + 8) == 1 ? 32 : 64;
}

/* Reads the first record's header of the log: returns its payload length, or -1. */
static long first_record_len(const char *log_path)
{
    unsigned char h[4];
    long start = records_start(log_path);
    FILE *f = fopen(log_path, "rb");
    size_t n = 0;
    if (f != NULL && start > 0 && fseek(f, start, SEEK_SET) == 0)
        n = fread(h, 1, sizeof h, f);
    if (f)
        fclose(f);
    return n < 4 ? -1 : u32_at(h);
}

/* The end of the log's last record: records are walked from the start until the file ends
   or a zero length (wasp's end mark after the last record of the current lap; the file of a
   recycled log goes on with earlier laps and preallocated space). -1 on error. */
static long records_end(const char *log_path)
{
    unsigned char h[4];
    long at = records_start(log_path), size = file_size(log_path);
    FILE *f = fopen(log_path, "rb");
    if (f == NULL || at < 0)
        return -1;
    while (at + 8 <= size && fseek(f, at, SEEK_SET) == 0 && fread(h, 1, 4, f) == 4 &&
           u32_at(h) != 0 && at + 8 + u32_at(h) <= size)
        at += 8 + u32_at(h);
    fclose(f);
    return at;
}

/* Overwrites `len` bytes at `offset` of `path` with zeros. */
static int zero_bytes(const char *path, long offset, int len)
{
    FILE *f = fopen(path, "r+b");
    if (f == NULL)
        return -1;
    fseek(f, offset, SEEK_SET);
    for (int i = 0; i < len; i++)
        fputc(0, f);
    return fclose(f);
}

/* XORs `len` bytes at `offset` of `path` with 0xA5. */
static int flip_bytes(const char *path, long offset, int len)
{
    FILE *f = fopen(path, "r+b");
    if (f == NULL)
        return -1;
    for (int i = 0; i < len; i++) {
        int c;
        fseek(f, offset + i, SEEK_SET);
        c = fgetc(f);
        fseek(f, offset + i, SEEK_SET);
        fputc(c ^ 0xA5, f);
    }
    return fclose(f);
}

/* ---- 1. a missing log ------------------------------------------------------------------ */

static void test_missing_log(void)
{
    const char *path = path_in_dir("missing.db");
    char log_path[700];
    nexus_db *db = NULL;
    uint64_t db_hash;

    section("a deleted log with acknowledged commits in it is NEXUS_CORRUPT, not an empty database");
    CHECK(crash_writer(path, 50, 100) == 0);
    snprintf(log_path, sizeof log_path, "%s", log_of(path));
    CHECK(file_size(log_path) > 32); /* the 100 commits are in the log */
    CHECK(unlink(log_path) == 0);
    db_hash = file_hash(path);

    CHECK_RC(nexus_open(path, test_options("{\"create\":false}"), &db), NEXUS_CORRUPT);
    CHECK(db == NULL);
    CHECK_ERRMSG_HAS("missing");
    CHECK_ERRMSG_HAS("discard-damaged-log");
    CHECK_RC(nexus_open(path, test_options(NULL), &db), NEXUS_CORRUPT);
    CHECK_RC(nexus_open(path, test_options("{\"read_only\":true}"), &db), NEXUS_CORRUPT);
    CHECK(file_hash(path) == db_hash);   /* nothing modified */
    CHECK(file_size(log_path) == -1);    /* and no new log made */

    section("\"recover\":\"discard-damaged-log\" accepts the loss on purpose and says so");
    CHECK_RC(nexus_open(path, test_options("{\"recover\":\"sometimes\"}"), &db),
             NEXUS_INVALID_ARGUMENT);
    CHECK_OK(nexus_open(path, test_options("{\"recover\":\"discard-damaged-log\"}"), &db));
    if (db != NULL) {
        /* wasp keeps the checkpointed 50; every document of a wal database is in its log. */
        if (!g_wal)
            CHECK(count_of(db, "c") == 50);
        else
            CHECK(count_of(db, "c") == 0 || count_of(db, "c") == UINT64_MAX);
        CHECK(stats_have(db, "\"log_replaced\":\"log "));
        CHECK(stats_have(db, "\"mode\":\"discard-damaged-log\""));
        CHECK_OK(nexus_check(db, NULL));
        CHECK_OK(insert_range(db, 1000, 1010));
        CHECK_OK(nexus_close(db));
    }
    db = NULL;
    CHECK_OK(nexus_open(path, test_options("{\"create\":false}"), &db)); /* healthy again, strict */
    if (db != NULL) {
        CHECK(count_of(db, "c") == (uint64_t)(g_wal ? 10 : 60));
        CHECK_OK(nexus_close(db));
    }

    section("a log missing after a clean close loses nothing and opens (wasp)");
    path = path_in_dir("clean.db");
    db = NULL;
    CHECK_OK(nexus_open(path, test_options(NULL), &db));
    CHECK_OK(insert_range(db, 0, 20));
    CHECK_OK(nexus_close(db));
    CHECK(unlink(log_of(path)) == 0);
    db = NULL;
    if (g_wal) {
        /* wal keeps every document in its log: a missing log is always a loss. */
        CHECK_RC(nexus_open(path, test_options(NULL), &db), NEXUS_CORRUPT);
    } else {
        CHECK_OK(nexus_open(path, test_options("{\"read_only\":true}"), &db));
        if (db != NULL) {
            CHECK(count_of(db, "c") == 20);
            CHECK_OK(nexus_close(db));
        }
        db = NULL;
        CHECK_OK(nexus_open(path, test_options("{\"create\":false}"), &db));
        if (db != NULL) {
            CHECK(count_of(db, "c") == 20);
            CHECK(stats_have(db, "\"log_replaced\":null"));
            CHECK_OK(nexus_close(db));
        }
    }
}

/* ---- 2. a damaged log ------------------------------------------------------------------- */

static void test_damaged_log(void)
{
    const char *path = path_in_dir("damaged.db");
    char log_path[700];
    nexus_db *db = NULL;
    long log_len, first;
    uint64_t log_hash, db_hash;

    section("4 flipped bytes in the first log record, ~100 intact after it: NEXUS_CORRUPT, log kept");
    CHECK(crash_writer(path, 30, 100) == 0);
    snprintf(log_path, sizeof log_path, "%s", log_of(path));
    log_len = file_size(log_path);
    first = first_record_len(log_path);
    CHECK(first > 12);
    /* Inside the first record's payload (after its 8-byte length and checksum). */
    CHECK(flip_bytes(log_path, records_start(log_path) + 8 + first / 2, 4) == 0);
    log_hash = file_hash(log_path);
    db_hash = file_hash(path);

    CHECK_RC(nexus_open(path, test_options(NULL), &db), NEXUS_CORRUPT);
    CHECK_ERRMSG_HAS("damaged");
    CHECK_ERRMSG_HAS(g_wal ? "intact commit(s)" : "99 intact commit(s)");
    CHECK_RC(nexus_open(path, test_options("{\"read_only\":true}"), &db), NEXUS_CORRUPT);
    CHECK(file_size(log_path) == log_len);  /* not truncated */
    CHECK(file_hash(log_path) == log_hash); /* not modified */
    CHECK(file_hash(path) == db_hash);      /* no checkpoint */

    section("recover keeps what comes before the damage and reports the commits it dropped");
    CHECK_OK(nexus_open(path, test_options("{\"recover\":\"discard-damaged-log\"}"), &db));
    if (db != NULL) {
        if (!g_wal) {
            CHECK(count_of(db, "c") == 30);
            CHECK(stats_have(db, "\"commits_dropped\":99"));
        } else {
            CHECK(count_of(db, "c") == 0 || count_of(db, "c") == UINT64_MAX);
            CHECK(!stats_have(db, "\"commits_dropped\":0"));
        }
        CHECK_OK(nexus_check(db, NULL));
        CHECK_OK(nexus_close(db));
    }

    section("a torn tail (a crash during an append) is still cut silently");
    path = path_in_dir("torn.db");
    db = NULL;
    CHECK(crash_writer(path, 10, 20) == 0);
    snprintf(log_path, sizeof log_path, "%s", log_of(path));
    /* The last record's last 5 bytes never written (zeros: what a torn write leaves in the
       preallocated space of wasp's log; memlog's log ends with the record). */
    log_len = records_end(log_path);
    CHECK(log_len > 64);
    CHECK(zero_bytes(log_path, log_len - 5, 5) == 0);
    CHECK_OK(nexus_open(path, test_options(NULL), &db));
    if (db != NULL) {
        CHECK(count_of(db, "c") == 29); /* the last, torn commit was never acknowledged */
        CHECK(stats_have(db, "\"commits_dropped\":0"));
        CHECK_OK(nexus_close(db));
    }
}

/* ---- 3. the file shortened by another process ------------------------------------------ */

static void test_truncated_underneath(void)
{
    const char *path = path_in_dir("shrunk.db");
    nexus_db *db = NULL;
    pid_t pid;
    int status;

    section("another process truncates the open file: errors, never SIGBUS (default options)");
    CHECK_OK(nexus_open(path, test_options(NULL), &db));
    CHECK_OK(nexus_begin(db));
    CHECK_OK(insert_range(db, 0, 3000));
    CHECK_OK(nexus_commit(db));
    CHECK_OK(nexus_close(db));
    CHECK(file_size(path) > 200000 || g_wal);

    pid = spawn("--host-truncated", path, "", "");
    status = wait_for(pid);
    if (status >= 200)
        fprintf(stderr, "the host died of signal %d\n", status - 200);
    CHECK(status == 0);
}

/* The child's part: the host opens, reads, "someone" truncates the file, the host reads on:
 * every call returns (OK, CORRUPT or IO), none kills the process. */
static int role_host_truncated(const char *path)
{
    nexus_db *c = NULL;
    char *out = NULL;
    int bad = 0;
    if (nexus_open(path, test_options("{\"page_cache_bytes\":65536}"), &c) != NEXUS_OK)
        return 20;
    if (count_of(c, "c") != 3000)
        return 21;
    if (truncate(path, 100000) != 0)
        return 22;
    for (int i = 0; i < 3000; i += 7) {
        char id[16];
        snprintf(id, sizeof id, "d%06d", i);
        int rc = nexus_get(c, "c", id, &out);
        nexus_free(out);
        out = NULL;
        if (rc != NEXUS_OK && rc != NEXUS_CORRUPT && rc != NEXUS_IO)
            bad++;
    }
    (void)count_of(c, "c");
    nexus_close(c);
    return bad ? 23 : 0;
}

/* ---- 4. FIFOs --------------------------------------------------------------------------- */

/* Opens `path` with `opts` in a child that gives up after 10 s; returns the child's
 * nexus_open status (or 200 + signal if it died, e.g. SIGALRM because open blocked). */
static int open_in_child(const char *path, const char *opts)
{
    return wait_for(spawn("--open", path, opts ? opts : "", ""));
}

static int role_open(const char *path, const char *opts)
{
    nexus_db *db = NULL;
    alarm(10);
    int rc = nexus_open(path, test_options(*opts ? opts : NULL), &db);
    if (rc == NEXUS_OK)
        nexus_close(db);
    return rc;
}

static void test_fifo(void)
{
    const char *fifo = path_in_dir("pipe.db");
    const char *path;
    nexus_db *db = NULL;

    section("nexus_open on a FIFO is refused at once, read-only or not");
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(open_in_child(fifo, "{\"read_only\":true}") == NEXUS_INVALID_ARGUMENT);
    CHECK(open_in_child(fifo, NULL) == NEXUS_INVALID_ARGUMENT);
    CHECK_RC(nexus_open(fifo, test_options("{\"read_only\":true}"), &db), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS("FIFO");

    section("a FIFO in place of the log is refused at once too");
    path = path_in_dir("fifolog.db");
    CHECK_OK(nexus_open(path, test_options(NULL), &db));
    CHECK_OK(insert_range(db, 0, 5));
    CHECK_OK(nexus_close(db));
    CHECK(unlink(log_of(path)) == 0);
    CHECK(mkfifo(log_of(path), 0600) == 0);
    CHECK(open_in_child(path, "{\"read_only\":true}") == NEXUS_INVALID_ARGUMENT);
    CHECK(open_in_child(path, NULL) == NEXUS_INVALID_ARGUMENT);

    section("a directory is refused the same way");
    CHECK(mkdir(path_in_dir("dir.db"), 0700) == 0);
    CHECK_RC(nexus_open(path_in_dir("dir.db"), test_options(NULL), &db), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS("directory");
}

/* ---- 5. a killed backup ----------------------------------------------------------------- */

/* Whether the run directory holds a backup temporary of `name`. */
static int has_backup_temp(const char *name)
{
    char cmd[1000];
    snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -q '^\\.%s\\.nexus-backup-'", g_dir, name);
    return system(cmd) == 0;
}

static void test_killed_backup(void)
{
    const char *src = path_in_dir("source.db");
    char dest[700];
    nexus_db *db = NULL;
    const int docs = 60000;
    int complete = 0, absent = 0;

    section("a SIGKILLed backup leaves the destination complete or absent; a retry works");
    CHECK_OK(nexus_open(src, test_options(NULL), &db));
    if (db == NULL)
        return;
    CHECK_OK(nexus_begin(db));
    CHECK_OK(insert_range(db, 0, docs));
    CHECK_OK(nexus_commit(db));
    if (g_wal) {
        CHECK_RC(nexus_backup(db, path_in_dir("bk.db")), NEXUS_UNSUPPORTED);
        CHECK_OK(nexus_close(db));
        return;
    }
    CHECK_OK(nexus_close(db));
    snprintf(dest, sizeof dest, "%s", path_in_dir("bk.db"));

    /* How long one whole backup takes here (a child process: start, open, copy). */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(wait_for(spawn("--backup", src, dest, "")) == 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long whole_ns = (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec);
    unlink(dest);
    unlink(log_of(dest));

    for (int round = 0; round < 12; round++) {
        pid_t pid = spawn("--backup", src, dest, "");
        /* Kill it at a different moment each round: at once, then in steps of a tenth of a
         * whole backup, the last rounds after it finished. */
        long ns = whole_ns / 10 * round;
        struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);

        if (file_size(dest) < 0) {
            absent++;
        } else {
            nexus_db *b = NULL;
            complete++;
            CHECK_OK(nexus_open(dest, test_options(NULL), &b));
            if (b != NULL) {
                CHECK(count_of(b, "c") == (uint64_t)docs);
                CHECK_OK(nexus_check(b, NULL));
                CHECK_OK(nexus_close(b));
            }
            unlink(dest);
            unlink(log_of(dest));
        }
        /* The retry succeeds whatever the kill left behind, and cleans up after it. */
        db = NULL;
        CHECK_OK(nexus_open(src, test_options(NULL), &db));
        if (db != NULL) {
            CHECK_OK(nexus_backup(db, dest));
            CHECK_OK(nexus_close(db));
        }
        CHECK(!has_backup_temp("bk.db"));
        db = NULL;
        CHECK_OK(nexus_open(dest, test_options("{\"read_only\":true}"), &db));
        if (db != NULL) {
            CHECK(count_of(db, "c") == (uint64_t)docs);
            CHECK_OK(nexus_close(db));
        }
        unlink(dest);
        unlink(log_of(dest));
    }
    printf("   killed backups: %d left a complete copy, %d left nothing (a whole backup: %ld ms)\n",
           complete, absent, whole_ns / 1000000L);
    CHECK(absent > 0); /* at least the earliest kills interrupted a backup */

    section("a backup refuses an existing destination and never replaces it");
    db = NULL;
    CHECK_OK(nexus_open(src, test_options(NULL), &db));
    if (db != NULL) {
        FILE *f = fopen(dest, "w");
        if (f) {
            fputs("precious", f);
            fclose(f);
        }
        CHECK_RC(nexus_backup(db, dest), NEXUS_INVALID_ARGUMENT);
        CHECK(file_size(dest) == 8);
        CHECK_OK(nexus_close(db));
    }
}

static int engine_is_wal(void)
{
    nexus_db *db = NULL;
    char *json = NULL;
    int wal = 0;
    if (nexus_open(path_in_dir("probe.db"), test_options(NULL), &db) == NEXUS_OK &&
        nexus_stats(db, &json) == NEXUS_OK)
        wal = strstr(json, "\"backend\":\"memlog\"") != NULL;
    nexus_free(json);
    nexus_close(db);
    return wal;
}

static int role_backup(const char *src, const char *dest)
{
    nexus_db *c = NULL;
    if (nexus_open(src, test_options(NULL), &c) != NEXUS_OK)
        return 30;
    int rc = nexus_backup(c, dest) == NEXUS_OK ? 0 : 31;
    /* Closed like any host would (LeakSanitizer reported the handle of this exit path). */
    return nexus_close(c) == NEXUS_OK ? rc : 32;
}

int main(int argc, char **argv)
{
    g_self = argv[0];
    if (argc == 5 && strcmp(argv[1], "--crash-writer") == 0)
        return role_crash_writer(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc == 5 && strcmp(argv[1], "--host-truncated") == 0)
        return role_host_truncated(argv[2]);
    if (argc == 5 && strcmp(argv[1], "--open") == 0)
        return role_open(argv[2], argv[3]);
    if (argc == 5 && strcmp(argv[1], "--backup") == 0)
        return role_backup(argv[2], argv[3]);
    if (regress_begin("regress_storage") != 0)
        return 2;
    g_wal = engine_is_wal();
    printf("engine of new files: %s\n", g_wal ? "memlog" : "wasp");
    CHECK(g_wal == (test_storage() != NULL)); /* the storage option took effect */
    test_missing_log();
    test_damaged_log();
    test_truncated_underneath();
    test_fifo();
    test_killed_backup();
    return regress_end();
}
