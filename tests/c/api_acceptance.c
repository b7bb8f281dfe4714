/*
 * NexusLite C ABI acceptance test.
 *
 * Written only from the public contract (API.md) as a user of include/nexus.h would
 * see it: no knowledge of the Rust implementation is assumed. Every check is counted;
 * a failing check prints file:line and what went wrong, and the program ends with the
 * line "N passed, M failed" and exit status 0 only when M is 0.
 *
 * All database files live in a fresh mkdtemp directory that is removed at the end
 * (set NEXUS_TEST_KEEP=1 to keep it). The program frees everything it gets from the
 * library, so it can run under valgrind --leak-check=full.
 *
 * Internal mode: "api_acceptance --child-open PATH CODE" opens PATH and exits 0 when
 * nexus_open returned CODE; the main program execs itself that way to play the
 * "second process" for the file-locking checks.
 *
 * Every nexus_open of a file passes test_options(...) (test_storage.h), so that the run
 * with NEXUSLITE_STORAGE=memlog creates its files with the `memlog` engine.
 */
#define _XOPEN_SOURCE 700

#include <ctype.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nexus.h"
#include "test_storage.h" /* test_options(): the engine the test harness asks for */

/* ------------------------------------------------------------------------------------
 * Tiny test framework
 * ---------------------------------------------------------------------------------- */

static int g_passed;
static int g_failed;

static int check_(int ok, const char *file, int line, const char *what)
{
    if (ok) {
        g_passed++;
        return 1;
    }
    g_failed++;
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    return 0;
}
#define CHECK(cond) check_((cond) ? 1 : 0, __FILE__, __LINE__, #cond)

/* Copies the calling thread's last error message (it is only valid until the next
 * nexus call on this thread, and nexus_errstr is such a call). */
static void copy_errmsg(char *dst, size_t cap)
{
    const char *m = nexus_errmsg();
    snprintf(dst, cap, "%s", m ? m : "(NULL)");
}

static int check_rc_(int got, int want, const char *file, int line, const char *expr)
{
    char msg[1024];
    if (got == want) {
        g_passed++;
        return 1;
    }
    copy_errmsg(msg, sizeof msg);
    g_failed++;
    fprintf(stderr, "%s:%d: %s\n    returned %d (%s), expected %d (%s); errmsg: \"%s\"\n",
            file, line, expr, got, nexus_errstr(got), want, nexus_errstr(want), msg);
    return 0;
}
/* CHECK_RC: the call returns exactly `want`. CHECK_OK: it returns NEXUS_OK. */
#define CHECK_RC(expr, want) check_rc_((expr), (want), __FILE__, __LINE__, #expr)
#define CHECK_OK(expr) CHECK_RC(expr, NEXUS_OK)

/* CHECK_ERR: an expected failure. Two checks: the specific code, and a non-empty
 * nexus_errmsg() (read immediately, before any other nexus call). */
static int check_err_(int got, int want, const char *file, int line, const char *expr)
{
    char msg[1024];
    int ok;
    copy_errmsg(msg, sizeof msg);
    ok = check_rc_(got, want, file, line, expr);
    if (got != NEXUS_OK && msg[0] != '\0' && strcmp(msg, "(NULL)") != 0) {
        g_passed++;
    } else {
        g_failed++;
        ok = 0;
        fprintf(stderr, "%s:%d: %s\n    nexus_errmsg() is empty or NULL after an error\n",
                file, line, expr);
    }
    return ok;
}
#define CHECK_ERR(expr, want) check_err_((expr), (want), __FILE__, __LINE__, #expr)

static int check_str_(const char *got, const char *want, const char *file, int line,
                      const char *expr)
{
    if (got != NULL && want != NULL && strcmp(got, want) == 0) {
        g_passed++;
        return 1;
    }
    g_failed++;
    fprintf(stderr, "%s:%d: %s\n    got:      %s\n    expected: %s\n", file, line, expr,
            got ? got : "(NULL)", want ? want : "(NULL)");
    return 0;
}
#define CHECK_STR(got, want) check_str_((got), (want), __FILE__, __LINE__, #got)

/* ------------------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------------------- */

/* A sentinel address used to verify that out-pointers are left untouched on error. */
static char g_sentinel;
#define SENTINEL_STR ((char *)&g_sentinel)

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* J("{'a':1}") turns single quotes into double quotes so the JSON in this file stays
 * readable. The result lives in a ring of 16 static buffers (main thread only), so it
 * is only good for the next few calls: do not keep it. */
static const char *J(const char *s)
{
    static char ring[16][2048];
    static int next;
    char *out = ring[next];
    size_t i, n = strlen(s);
    next = (next + 1) % 16;
    if (n >= sizeof ring[0]) {
        fprintf(stderr, "J(): string too long\n");
        exit(2);
    }
    for (i = 0; i <= n; i++)
        out[i] = s[i] == '\'' ? '"' : s[i];
    return out;
}

/* Removes whitespace outside JSON strings, so the comparison does not depend on how
 * the library formats its output. Returns a malloc'd string. */
static char *json_compact(const char *s)
{
    char *out = xmalloc(strlen(s) + 1), *w = out;
    int in_str = 0;
    for (; *s; s++) {
        char c = *s;
        if (in_str) {
            *w++ = c;
            if (c == '\\' && s[1] != '\0')
                *w++ = *++s;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
            *w++ = c;
        } else if (!isspace((unsigned char)c)) {
            *w++ = c;
        }
    }
    *w = '\0';
    return out;
}

/* Compares two JSON texts after compaction (field order matters). */
static int check_json_(const char *got, const char *want, const char *file, int line,
                       const char *expr)
{
    char *g, *w;
    int ok;
    if (got == NULL)
        return check_str_(got, want, file, line, expr);
    g = json_compact(got);
    w = json_compact(want);
    ok = check_str_(g, w, file, line, expr);
    free(g);
    free(w);
    return ok;
}
#define CHECK_JSON(got, want) check_json_((got), (want), __FILE__, __LINE__, #got)

/* The compacted JSON `hay` contains the compacted JSON fragment `needle`. */
static int check_contains_(const char *hay, const char *needle, const char *file, int line)
{
    char *h, *n;
    int ok;
    if (hay == NULL) {
        g_failed++;
        fprintf(stderr, "%s:%d: expected text containing %s, got NULL\n", file, line, needle);
        return 0;
    }
    h = json_compact(hay);
    n = json_compact(needle);
    ok = strstr(h, n) != NULL;
    if (ok) {
        g_passed++;
    } else {
        g_failed++;
        fprintf(stderr, "%s:%d: expected %s\n    to contain %s\n", file, line, h, n);
    }
    free(h);
    free(n);
    return ok;
}
#define CHECK_CONTAINS(hay, needle) check_contains_((hay), (needle), __FILE__, __LINE__)

/* Non-overlapping occurrences, in one pass: a strstr loop is quadratic under
 * AddressSanitizer, whose strstr measures the rest of the string on every call. */
static int count_occurrences(const char *hay, const char *needle)
{
    int n = 0;
    size_t len = strlen(needle), hay_len = strlen(hay);
    for (size_t i = 0; len > 0 && i + len <= hay_len;) {
        if (memcmp(hay + i, needle, len) == 0) {
            n++;
            i += len;
        } else {
            i++;
        }
    }
    return n;
}

/* Growable string buffer. */
typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *np;
        while (cap < b->len + n + 1)
            cap *= 2;
        np = realloc(b->p, cap);
        if (!np) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* Runs nexus_find and concatenates the results: either the compacted documents joined
 * by '\n', or (names_only) the values of their "name" fields joined by ','.
 * Returns the first status that is not success; *out is set (malloc'd) on NEXUS_OK. */
static int collect(nexus_db *db, const char *coll, const char *filter, const char *opts,
                   int names_only, char **out)
{
    nexus_cursor *cur = NULL;
    const char *doc = NULL;
    sbuf b = {NULL, 0, 0};
    int rc, n = 0;

    rc = nexus_find(db, coll, filter, opts, &cur);
    if (rc != NEXUS_OK)
        return rc;
    sb_puts(&b, "");
    while ((rc = nexus_cursor_next(cur, &doc)) == NEXUS_ROW) {
        char *c = json_compact(doc);
        if (n++ > 0)
            sb_puts(&b, names_only ? "," : "\n");
        if (names_only) {
            const char *p = strstr(c, "\"name\":\"");
            if (p) {
                p += 8;
                sb_add(&b, p, strcspn(p, "\""));
            } else {
                sb_puts(&b, "?");
            }
        } else {
            sb_puts(&b, c);
        }
        free(c);
    }
    /* Read the message before closing: closing is another nexus call. */
    if (rc != NEXUS_DONE) {
        char msg[512];
        copy_errmsg(msg, sizeof msg);
        fprintf(stderr, "    cursor_next returned %d: %s\n", rc, msg);
    }
    if (nexus_cursor_close(cur) != NEXUS_OK && rc == NEXUS_DONE)
        rc = NEXUS_ERROR;
    if (rc != NEXUS_DONE) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    return NEXUS_OK;
}

static int check_collect_(nexus_db *db, const char *coll, const char *filter,
                          const char *opts, int names_only, const char *want,
                          const char *file, int line)
{
    char *got = NULL;
    char what[1200];
    int rc = collect(db, coll, filter, opts, names_only, &got);
    int ok;
    snprintf(what, sizeof what, "find(%s, filter=%s, options=%s)", coll,
             filter ? filter : "NULL", opts ? opts : "NULL");
    if (!check_rc_(rc, NEXUS_OK, file, line, what))
        return 0;
    ok = check_str_(got, want, file, line, what);
    free(got);
    return ok;
}
/* The "name" fields of the documents found, in cursor order, joined by ','. */
#define CHECK_NAMES(db, coll, filter, opts, want) \
    check_collect_((db), (coll), (filter), (opts), 1, (want), __FILE__, __LINE__)
/* The (compacted) documents found, in cursor order, joined by '\n'. */
#define CHECK_ROWS(db, coll, filter, opts, want) \
    check_collect_((db), (coll), (filter), (opts), 0, (want), __FILE__, __LINE__)

static int check_count_(nexus_db *db, const char *coll, const char *filter, uint64_t want,
                        const char *file, int line)
{
    uint64_t n = 12345678;
    char what[1200];
    int rc = nexus_count(db, coll, filter, &n);
    snprintf(what, sizeof what, "nexus_count(%s, %s)", coll, filter ? filter : "NULL");
    if (!check_rc_(rc, NEXUS_OK, file, line, what))
        return 0;
    if (n == want) {
        g_passed++;
        return 1;
    }
    g_failed++;
    fprintf(stderr, "%s:%d: %s = %llu, expected %llu\n", file, line, what,
            (unsigned long long)n, (unsigned long long)want);
    return 0;
}
#define CHECK_COUNT(db, coll, filter, want) \
    check_count_((db), (coll), (filter), (want), __FILE__, __LINE__)

static int check_get_(nexus_db *db, const char *coll, const char *id, const char *want,
                      const char *file, int line)
{
    char *out = NULL;
    char what[512];
    int ok;
    snprintf(what, sizeof what, "nexus_get(%s, %s)", coll, id);
    if (!check_rc_(nexus_get(db, coll, id, &out), NEXUS_OK, file, line, what))
        return 0;
    ok = check_json_(out, want, file, line, what);
    nexus_free(out);
    return ok;
}
/* nexus_get returns exactly `want` (compared after whitespace compaction). */
#define CHECK_GET(db, coll, id, want) check_get_((db), (coll), (id), (want), __FILE__, __LINE__)

/* After an error the connection must still serve reads and writes. */
static int still_works_(nexus_db *db, const char *file, int line)
{
    char *id = NULL, *doc = NULL;
    int ok = 0;
    if (nexus_insert(db, "probe", "{\"probe\":true}", &id) == NEXUS_OK && id != NULL &&
        nexus_get(db, "probe", id, &doc) == NEXUS_OK && doc != NULL &&
        strstr(doc, "probe") != NULL)
        ok = 1;
    nexus_free(id);
    nexus_free(doc);
    return check_(ok, file, line, "connection still works (insert + get) after the error");
}
#define STILL_WORKS(db) still_works_((db), __FILE__, __LINE__)

static int is_uuid_v4(const char *s)
{
    int i;
    if (s == NULL || strlen(s) != 36)
        return 0;
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return s[14] == '4' && strchr("89abAB", s[19]) != NULL;
}

static char g_dir[512]; /* the temp directory of this run */

static const char *path_in_dir(const char *name)
{
    static char ring[8][600];
    static int next;
    char *p = ring[next];
    next = (next + 1) % 8;
    snprintf(p, sizeof ring[0], "%s/%s", g_dir, name);
    return p;
}

static void section(const char *name)
{
    printf("-- %s\n", name);
    fflush(stdout);
}

/* The test data set. "eve" has no _id (the library assigns one). */
static const char *const PEOPLE[] = {
    "{'_id':'ada','name':'ada','age':36,'tags':['math','code'],'addr':{'city':'London','zip':'N1'}}",
    "{'_id':'bob','name':'bob','age':25,'tags':['art'],'addr':{'city':'Paris'}}",
    "{'_id':'cy','name':'cy','age':41,'tags':['code','music'],'addr':{'city':'London'},'nick':null}",
    "{'_id':'dee','name':'dee','age':30}",
    "{'name':'eve','age':19,'tags':[]}",
};
#define N_PEOPLE 5

static void seed_people(nexus_db *db, const char *coll)
{
    int i;
    for (i = 0; i < N_PEOPLE; i++)
        CHECK_OK(nexus_insert(db, coll, J(PEOPLE[i]), NULL));
}

/* ------------------------------------------------------------------------------------
 * Version, codes, NULL handles
 * ---------------------------------------------------------------------------------- */

static void test_version_and_codes(void)
{
    char want[64];
    /* Not static: the constants may be `const` objects rather than macros. */
    const struct {
        int code, value;
        const char *name;
    } codes[] = {
        {NEXUS_OK, 0, "NEXUS_OK"},
        {NEXUS_ERROR, 1, "NEXUS_ERROR"},
        {NEXUS_NOT_FOUND, 2, "NEXUS_NOT_FOUND"},
        {NEXUS_INVALID_ARGUMENT, 3, "NEXUS_INVALID_ARGUMENT"},
        {NEXUS_PARSE, 4, "NEXUS_PARSE"},
        {NEXUS_DUPLICATE_KEY, 5, "NEXUS_DUPLICATE_KEY"},
        {NEXUS_NO_COLLECTION, 6, "NEXUS_NO_COLLECTION"},
        {NEXUS_IO, 7, "NEXUS_IO"},
        {NEXUS_CORRUPT, 8, "NEXUS_CORRUPT"},
        {NEXUS_BUSY, 9, "NEXUS_BUSY"},
        {NEXUS_READONLY, 10, "NEXUS_READONLY"},
        {NEXUS_TXN, 11, "NEXUS_TXN"},
        {NEXUS_CRYPTO, 12, "NEXUS_CRYPTO"},
        {NEXUS_UNSUPPORTED, 13, "NEXUS_UNSUPPORTED"},
        {NEXUS_INTERNAL, 99, "NEXUS_INTERNAL"},
        {NEXUS_ROW, 100, "NEXUS_ROW"},
        {NEXUS_DONE, 101, "NEXUS_DONE"},
    };
    size_t i, j, n = sizeof codes / sizeof codes[0];

    section("version and status codes");
    snprintf(want, sizeof want, "%d.%d.%d", (int)NEXUS_VERSION_MAJOR, (int)NEXUS_VERSION_MINOR,
             (int)NEXUS_VERSION_PATCH);
    CHECK_STR(nexus_version(), want);
    CHECK(nexus_version_number() == 1000000 * (int)NEXUS_VERSION_MAJOR +
                                        1000 * (int)NEXUS_VERSION_MINOR +
                                        (int)NEXUS_VERSION_PATCH);

    CHECK(NEXUS_MULTI == 1);
    CHECK(NEXUS_UPSERT == 2);
    for (i = 0; i < n; i++) {
        const char *s = nexus_errstr(codes[i].code);
        if (!check_(codes[i].code == codes[i].value, __FILE__, __LINE__, codes[i].name))
            fprintf(stderr, "    %s is %d, API.md fixes it at %d\n", codes[i].name,
                    codes[i].code, codes[i].value);
        CHECK(s != NULL && s[0] != '\0');
    }
    /* Every code has its own name. */
    for (i = 0; i < n; i++)
        for (j = i + 1; j < n; j++)
            if (strcmp(nexus_errstr(codes[i].code), nexus_errstr(codes[j].code)) == 0) {
                CHECK(!"two codes share one nexus_errstr name");
                fprintf(stderr, "    %s and %s\n", codes[i].name, codes[j].name);
            }
    /* Unknown codes still get a (static, non-NULL) string. */
    CHECK(nexus_errstr(4242) != NULL);
    CHECK(nexus_errstr(-1) != NULL);
    CHECK(nexus_errmsg() != NULL);

    nexus_free(NULL);
    CHECK_OK(nexus_close(NULL));
    CHECK_OK(nexus_cursor_close(NULL));
}

/* ------------------------------------------------------------------------------------
 * CRUD
 * ---------------------------------------------------------------------------------- */

static void test_crud(nexus_db *db)
{
    char *id = NULL, *out = SENTINEL_STR;
    char want[256];

    section("CRUD: insert, get, replace, delete");

    CHECK_OK(nexus_insert(db, "crud", J("{'_id':'a1','name':'x'}"), &id));
    CHECK_STR(id, "a1");
    nexus_free(id);
    id = NULL;
    CHECK_GET(db, "crud", "a1", J("{'_id':'a1','name':'x'}"));

    /* _id comes first on output, other fields keep their order. */
    CHECK_OK(nexus_insert(db, "crud", J("{'name':'y','_id':'z','a':1,'b':{'d':2,'c':3}}"), NULL));
    CHECK_GET(db, "crud", "z", J("{'_id':'z','name':'y','a':1,'b':{'d':2,'c':3}}"));

    /* Without _id: a UUID v4 string is assigned and returned. */
    CHECK_OK(nexus_insert(db, "crud", J("{'name':'auto','n':1}"), &id));
    CHECK(is_uuid_v4(id));
    if (id) {
        snprintf(want, sizeof want, "{\"_id\":\"%s\",\"name\":\"auto\",\"n\":1}", id);
        CHECK_GET(db, "crud", id, want);
        CHECK_COUNT(db, "crud", J("{'name':'auto'}"), 1);
    }
    nexus_free(id);
    id = NULL;

    /* Two generated ids differ. */
    {
        char *id2 = NULL, *id3 = NULL;
        CHECK_OK(nexus_insert(db, "crud", "{}", &id2));
        CHECK_OK(nexus_insert(db, "crud", "{}", &id3));
        CHECK(id2 && id3 && strcmp(id2, id3) != 0);
        nexus_free(id2);
        nexus_free(id3);
    }

    /* Value types survive a round trip (relaxed Extended JSON on output). */
    CHECK_OK(nexus_insert(db, "crud",
                          J("{'_id':'types','i':36,'l':9007199254740993,'d':1.5,'d2':2.0,"
                            "'neg':-7,'t':true,'f':false,'z':null,'arr':[1,[2,3],{'k':'v'}],"
                            "'s':'caf\xc3\xa9 \xe2\x98\x83 \xf0\x9d\x84\x9e','esc':'a\\\"b\\\\c\\n'}"),
                          NULL));
    CHECK_GET(db, "crud", "types",
              J("{'_id':'types','i':36,'l':9007199254740993,'d':1.5,'d2':2.0,"
                "'neg':-7,'t':true,'f':false,'z':null,'arr':[1,[2,3],{'k':'v'}],"
                "'s':'caf\xc3\xa9 \xe2\x98\x83 \xf0\x9d\x84\x9e','esc':'a\\\"b\\\\c\\n'}"));

    /* Extended JSON on input. */
    CHECK_OK(nexus_insert(db, "crud",
                          J("{'_id':'ext','o':{'$oid':'65a1b2c3d4e5f60718293a4b'},"
                            "'when':{'$date':'2024-01-02T03:04:05Z'},'l':{'$numberLong':'5'},"
                            "'bin':{'$binary':{'base64':'AQID','subType':'00'}}}"),
                          NULL));
    out = NULL;
    CHECK_OK(nexus_get(db, "crud", "ext", &out));
    if (out) {
        CHECK_CONTAINS(out, J("'o':{'$oid':'65a1b2c3d4e5f60718293a4b'}"));
        CHECK_CONTAINS(out, J("'when':{'$date':'2024-01-02T03:04:05"));
        CHECK_CONTAINS(out, J("'l':5"));
        CHECK_CONTAINS(out, J("'$binary'"));
        CHECK_CONTAINS(out, "AQID");
    }
    nexus_free(out);
    CHECK_COUNT(db, "crud", J("{'o':{'$oid':'65a1b2c3d4e5f60718293a4b'}}"), 1);
    CHECK_COUNT(db, "crud", J("{'l':5}"), 1);

    /* Missing id: NOT_FOUND, out-pointer untouched. */
    out = SENTINEL_STR;
    CHECK_ERR(nexus_get(db, "crud", "nope", &out), NEXUS_NOT_FOUND);
    CHECK(out == SENTINEL_STR);
    CHECK_ERR(nexus_get(db, "no_such_coll", "a1", &out), NEXUS_NO_COLLECTION);
    CHECK(out == SENTINEL_STR);

    /* get_meta */
    out = NULL;
    CHECK_OK(nexus_get_meta(db, "crud", "a1", &out));
    if (out) {
        CHECK_CONTAINS(out, "\"created_at\"");
        CHECK_CONTAINS(out, "\"updated_at\"");
        CHECK_CONTAINS(out, "\"version\"");
        CHECK_CONTAINS(out, "\"expires_at\":null");
        CHECK_CONTAINS(out, "\"ephemeral\":false");
    }
    nexus_free(out);

    /* Replace keeps the _id; the body may repeat the same _id. */
    CHECK_OK(nexus_replace(db, "crud", "a1", J("{'name':'x2','n':2}")));
    CHECK_GET(db, "crud", "a1", J("{'_id':'a1','name':'x2','n':2}"));
    CHECK_OK(nexus_replace(db, "crud", "a1", J("{'_id':'a1','name':'x3'}")));
    CHECK_GET(db, "crud", "a1", J("{'_id':'a1','name':'x3'}"));
    CHECK_ERR(nexus_replace(db, "crud", "nope", J("{'name':'q'}")), NEXUS_NOT_FOUND);
    CHECK_ERR(nexus_replace(db, "no_such_coll", "a1", J("{'name':'q'}")), NEXUS_NO_COLLECTION);
    CHECK_COUNT(db, "crud", J("{'name':'q'}"), 0);
    /* A body with a different _id may not move the document. */
    CHECK(nexus_replace(db, "crud", "a1", J("{'_id':'other','name':'x4'}")) != NEXUS_OK);
    CHECK_GET(db, "crud", "a1", J("{'_id':'a1','name':'x3'}"));
    CHECK_COUNT(db, "crud", J("{'_id':'other'}"), 0);

    /* Delete by _id. */
    {
        uint64_t n = 99;
        CHECK_OK(nexus_delete(db, "crud", J("{'_id':'a1'}"), 0, &n));
        CHECK(n == 1);
        out = SENTINEL_STR;
        CHECK_RC(nexus_get(db, "crud", "a1", &out), NEXUS_NOT_FOUND);
        CHECK(out == SENTINEL_STR);
    }

    /* A 1 MiB document round-trips intact. */
    {
        size_t n = 1024 * 1024;
        char *big = xmalloc(n + 64);
        char *got = NULL;
        int len = sprintf(big, "{\"_id\":\"big\",\"s\":\"");
        memset(big + len, 'y', n);
        strcpy(big + len + n, "\"}");
        CHECK_OK(nexus_insert(db, "crud", big, NULL));
        CHECK_OK(nexus_get(db, "crud", "big", &got));
        CHECK(got != NULL && strlen(got) >= n && count_occurrences(got, "yyyyyyyy") == (int)(n / 8));
        nexus_free(got);
        free(big);
    }
}

/* ------------------------------------------------------------------------------------
 * Filters
 * ---------------------------------------------------------------------------------- */

static void test_filters(nexus_db *db)
{
    const char *by_name = "{\"sort\":{\"name\":1}}"; /* not J(): that buffer is reused */
    section("filters");

    CHECK_NAMES(db, "people", NULL, by_name, "ada,bob,cy,dee,eve");
    CHECK_NAMES(db, "people", "{}", by_name, "ada,bob,cy,dee,eve");
    CHECK_NAMES(db, "people", J("{'age':36}"), by_name, "ada");
    CHECK_NAMES(db, "people", J("{'_id':'bob'}"), by_name, "bob");
    CHECK_NAMES(db, "people", J("{'age':{'$eq':36}}"), by_name, "ada");
    CHECK_NAMES(db, "people", J("{'age':{'$ne':36}}"), by_name, "bob,cy,dee,eve");
    CHECK_NAMES(db, "people", J("{'age':{'$gt':30}}"), by_name, "ada,cy");
    CHECK_NAMES(db, "people", J("{'age':{'$gte':30}}"), by_name, "ada,cy,dee");
    CHECK_NAMES(db, "people", J("{'age':{'$lt':30}}"), by_name, "bob,eve");
    CHECK_NAMES(db, "people", J("{'age':{'$lte':30}}"), by_name, "bob,dee,eve");
    CHECK_NAMES(db, "people", J("{'age':{'$gt':20,'$lt':40}}"), by_name, "ada,bob,dee");
    CHECK_NAMES(db, "people", J("{'name':{'$in':['ada','bob','zed']}}"), by_name, "ada,bob");
    CHECK_NAMES(db, "people", J("{'name':{'$nin':['ada','bob']}}"), by_name, "cy,dee,eve");
    CHECK_NAMES(db, "people", J("{'addr':{'$exists':true}}"), by_name, "ada,bob,cy");
    CHECK_NAMES(db, "people", J("{'addr':{'$exists':false}}"), by_name, "dee,eve");
    CHECK_NAMES(db, "people", J("{'nick':{'$exists':true}}"), by_name, "cy"); /* null exists */
    CHECK_NAMES(db, "people", J("{'$and':[{'age':{'$gt':20}},{'addr.city':'London'}]}"), by_name,
                "ada,cy");
    CHECK_NAMES(db, "people", J("{'$or':[{'age':{'$lt':20}},{'name':'bob'}]}"), by_name, "bob,eve");
    CHECK_NAMES(db, "people", J("{'$or':[{'addr.city':'Paris'},{'tags':'music'}],'age':{'$gt':30}}"),
                by_name, "cy");
    CHECK_NAMES(db, "people", J("{'name':'nobody'}"), by_name, "");

    /* Dotted paths into embedded documents, and whole-document equality. */
    CHECK_NAMES(db, "people", J("{'addr.city':'London'}"), by_name, "ada,cy");
    CHECK_NAMES(db, "people", J("{'addr.zip':{'$exists':true}}"), by_name, "ada");
    CHECK_NAMES(db, "people", J("{'addr.city':{'$in':['Paris','Rome']}}"), by_name, "bob");
    CHECK_NAMES(db, "people", J("{'addr':{'city':'Paris'}}"), by_name, "bob");

    /* Arrays: a scalar matches any element; $in/$nin/$ne look at elements too. */
    CHECK_NAMES(db, "people", J("{'tags':'code'}"), by_name, "ada,cy");
    CHECK_NAMES(db, "people", J("{'tags':{'$in':['art','music']}}"), by_name, "bob,cy");
    CHECK_NAMES(db, "people", J("{'tags':{'$nin':['code']}}"), by_name, "bob,dee,eve");
    CHECK_NAMES(db, "people", J("{'tags':{'$ne':'code'}}"), by_name, "bob,dee,eve");
    CHECK_NAMES(db, "people", J("{'tags':['math','code']}"), by_name, "ada");
    CHECK_NAMES(db, "people", J("{'tags':{'$exists':true}}"), by_name, "ada,bob,cy,eve");

    /* count agrees, and a missing collection is an empty result, not an error. */
    CHECK_COUNT(db, "people", NULL, N_PEOPLE);
    CHECK_COUNT(db, "people", "{}", N_PEOPLE);
    CHECK_COUNT(db, "people", J("{'tags':'code'}"), 2);
    CHECK_COUNT(db, "people", J("{'age':{'$gte':30}}"), 3);
    CHECK_COUNT(db, "no_such_coll", NULL, 0);
    CHECK_NAMES(db, "no_such_coll", NULL, NULL, "");
}

/* ------------------------------------------------------------------------------------
 * Find options
 * ---------------------------------------------------------------------------------- */

static void test_find_options(nexus_db *db)
{
    section("find options: sort, skip, limit, projection");

    CHECK_NAMES(db, "people", NULL, J("{'sort':{'age':1}}"), "eve,bob,dee,ada,cy");
    CHECK_NAMES(db, "people", NULL, J("{'sort':{'age':-1}}"), "cy,ada,dee,bob,eve");
    CHECK_NAMES(db, "people", NULL, J("{'sort':{'name':-1}}"), "eve,dee,cy,bob,ada");
    CHECK_NAMES(db, "people", NULL, J("{'sort':{'age':-1},'skip':1,'limit':2}"), "ada,dee");
    CHECK_NAMES(db, "people", NULL, J("{'sort':{'name':1},'limit':2}"), "ada,bob");
    CHECK_NAMES(db, "people", NULL, J("{'sort':{'name':1},'skip':4}"), "eve");
    CHECK_NAMES(db, "people", NULL, J("{'sort':{'name':1},'skip':10}"), "");
    CHECK_NAMES(db, "people", J("{'age':{'$gt':20}}"), J("{'sort':{'age':1},'limit':1}"), "bob");
    /* Compound sort; a missing field sorts before any string (MongoDB order). */
    CHECK_NAMES(db, "people", NULL, J("{'sort':{'addr.city':1,'name':-1}}"), "eve,dee,cy,ada,bob");

    CHECK_ROWS(db, "people", J("{'_id':'ada'}"), J("{'projection':{'name':1}}"),
               J("{'_id':'ada','name':'ada'}"));
    CHECK_ROWS(db, "people", J("{'_id':'ada'}"), J("{'projection':{'_id':0,'name':1,'age':1}}"),
               J("{'name':'ada','age':36}"));
    CHECK_ROWS(db, "people", J("{'_id':'ada'}"), J("{'projection':{'tags':0,'addr':0}}"),
               J("{'_id':'ada','name':'ada','age':36}"));
    CHECK_ROWS(db, "people", J("{'_id':'ada'}"), J("{'projection':{'addr.city':1}}"),
               J("{'_id':'ada','addr':{'city':'London'}}"));
    CHECK_ROWS(db, "people", J("{'age':{'$gte':30}}"),
               J("{'sort':{'age':-1},'limit':2,'projection':{'_id':0,'name':1}}"),
               J("{'name':'cy'}\n{'name':'ada'}"));
}

/* ------------------------------------------------------------------------------------
 * find_one, distinct
 * ---------------------------------------------------------------------------------- */

static void test_find_one_distinct(nexus_db *db)
{
    char *out = NULL;
    int rc;
    section("find_one and distinct");

    CHECK_OK(nexus_find_one(db, "people", J("{'name':'bob'}"), &out));
    CHECK_JSON(out, J(PEOPLE[1]));
    nexus_free(out);

    /* Nothing matches: NOT_FOUND (or OK with a NULL result), never a document. */
    out = SENTINEL_STR;
    rc = nexus_find_one(db, "people", J("{'name':'nobody'}"), &out);
    CHECK(rc == NEXUS_NOT_FOUND || (rc == NEXUS_OK && out == NULL));
    if (rc == NEXUS_NOT_FOUND)
        CHECK(out == SENTINEL_STR);

    out = NULL;
    CHECK_OK(nexus_distinct(db, "people", "addr.city", NULL, &out));
    if (out) {
        char *c = json_compact(out);
        CHECK(c[0] == '[' && c[strlen(c) - 1] == ']');
        CHECK(count_occurrences(c, "\"London\"") == 1);
        CHECK(count_occurrences(c, "\"Paris\"") == 1);
        CHECK(count_occurrences(c, "\"") == 4); /* exactly two strings */
        free(c);
    }
    nexus_free(out);

    /* Array fields contribute their elements; the filter applies. */
    out = NULL;
    CHECK_OK(nexus_distinct(db, "people", "tags", J("{'age':{'$gt':30}}"), &out));
    if (out) {
        CHECK(count_occurrences(out, "\"code\"") == 1);
        CHECK(count_occurrences(out, "\"math\"") == 1);
        CHECK(count_occurrences(out, "\"music\"") == 1);
        CHECK(count_occurrences(out, "\"art\"") == 0);
    }
    nexus_free(out);

    out = NULL;
    CHECK_OK(nexus_distinct(db, "people", "age", J("{'name':{'$in':['ada','bob']}}"), &out));
    if (out) {
        CHECK(strstr(out, "36") != NULL && strstr(out, "25") != NULL);
        CHECK(strstr(out, "41") == NULL);
    }
    nexus_free(out);
}

/* ------------------------------------------------------------------------------------
 * Update, upsert, delete
 * ---------------------------------------------------------------------------------- */

static void test_update(nexus_db *db)
{
    uint64_t matched = 99, modified = 99;
    section("update: $set $unset $inc, single and NEXUS_MULTI");

    seed_people(db, "upd");

    CHECK_OK(nexus_update(db, "upd", J("{'name':'bob'}"), J("{'$set':{'age':26}}"), 0, &matched,
                          &modified));
    CHECK(matched == 1 && modified == 1);
    CHECK_GET(db, "upd", "bob",
              J("{'_id':'bob','name':'bob','age':26,'tags':['art'],'addr':{'city':'Paris'}}"));

    /* A new field is appended; setting the same value again modifies nothing. */
    CHECK_OK(nexus_update(db, "upd", J("{'_id':'bob'}"), J("{'$set':{'email':'b@x'}}"), 0,
                          &matched, &modified));
    CHECK(matched == 1 && modified == 1);
    CHECK_OK(nexus_update(db, "upd", J("{'_id':'bob'}"), J("{'$set':{'age':26}}"), 0, &matched,
                          &modified));
    CHECK(matched == 1 && modified == 0);

    CHECK_OK(nexus_update(db, "upd", J("{'_id':'bob'}"), J("{'$unset':{'addr':''}}"), 0,
                          &matched, &modified));
    CHECK(matched == 1 && modified == 1);
    CHECK_GET(db, "upd", "bob",
              J("{'_id':'bob','name':'bob','age':26,'tags':['art'],'email':'b@x'}"));

    /* $inc on every match, then on the first match only. */
    CHECK_OK(nexus_update(db, "upd", J("{'addr.city':'London'}"), J("{'$inc':{'age':1}}"),
                          NEXUS_MULTI, &matched, &modified));
    CHECK(matched == 2 && modified == 2);
    CHECK_COUNT(db, "upd", J("{'_id':'ada','age':37}"), 1);
    CHECK_COUNT(db, "upd", J("{'_id':'cy','age':42}"), 1);
    CHECK_OK(nexus_update(db, "upd", J("{'addr.city':'London'}"), J("{'$inc':{'age':1}}"), 0,
                          &matched, &modified));
    CHECK(matched == 1 && modified == 1);
    CHECK_COUNT(db, "upd", J("{'$or':[{'_id':'ada','age':38},{'_id':'cy','age':43}]}"), 1);

    /* Negative $inc, $inc creating a field, dotted $set, several operators at once. */
    CHECK_OK(nexus_update(db, "upd", J("{'_id':'dee'}"), J("{'$inc':{'age':-5,'visits':3}}"), 0,
                          &matched, &modified));
    CHECK_GET(db, "upd", "dee", J("{'_id':'dee','name':'dee','age':25,'visits':3}"));
    CHECK_OK(nexus_update(db, "upd", J("{'_id':'dee'}"),
                          J("{'$set':{'addr.city':'Rome','addr.zip':'00100'},'$unset':{'visits':''}}"),
                          0, &matched, &modified));
    CHECK_GET(db, "upd", "dee",
              J("{'_id':'dee','name':'dee','age':25,'addr':{'city':'Rome','zip':'00100'}}"));
    CHECK_OK(nexus_update(db, "upd", J("{'_id':'dee'}"), J("{'$set':{'addr.zip':'00118'}}"), 0,
                          &matched, &modified));
    CHECK_GET(db, "upd", "dee",
              J("{'_id':'dee','name':'dee','age':25,'addr':{'city':'Rome','zip':'00118'}}"));

    /* NEXUS_MULTI over everything. */
    CHECK_OK(nexus_update(db, "upd", "{}", J("{'$set':{'seen':true}}"), NEXUS_MULTI, &matched,
                          &modified));
    CHECK(matched == N_PEOPLE && modified == N_PEOPLE);
    CHECK_COUNT(db, "upd", J("{'seen':true}"), N_PEOPLE);

    /* No match: success with zero counts. */
    matched = modified = 99;
    CHECK_OK(nexus_update(db, "upd", J("{'name':'zed'}"), J("{'$set':{'x':1}}"), 0, &matched,
                          &modified));
    CHECK(matched == 0 && modified == 0);
    CHECK_COUNT(db, "upd", NULL, N_PEOPLE);

    /* _id is immutable; $inc of a string fails; neither changes the document. */
    CHECK(nexus_update(db, "upd", J("{'_id':'bob'}"), J("{'$set':{'_id':'bobby'}}"), 0, &matched,
                       &modified) != NEXUS_OK);
    CHECK(nexus_update(db, "upd", J("{'_id':'bob'}"), J("{'$inc':{'name':1}}"), 0, &matched,
                       &modified) != NEXUS_OK);
    CHECK_GET(db, "upd", "bob",
              J("{'_id':'bob','name':'bob','age':26,'tags':['art'],'email':'b@x','seen':true}"));

    CHECK_ERR(nexus_update(db, "no_such_coll", "{}", J("{'$set':{'x':1}}"), 0, &matched,
                           &modified),
              NEXUS_NO_COLLECTION);
}

static void test_upsert(nexus_db *db)
{
    uint64_t matched = 99, modified = 99;
    char *out = NULL;
    section("upsert (NEXUS_UPSERT)");

    CHECK_OK(nexus_insert(db, "ups", J("{'_id':'first','name':'first'}"), NULL));

    /* No match: a document seeded from the filter's equality fields is inserted. */
    CHECK_OK(nexus_update(db, "ups", J("{'name':'zed','age':50}"), J("{'$set':{'city':'Oslo'}}"),
                          NEXUS_UPSERT, &matched, &modified));
    CHECK(matched == 0);
    CHECK_COUNT(db, "ups", J("{'name':'zed'}"), 1);
    CHECK_OK(nexus_find_one(db, "ups", J("{'name':'zed'}"), &out));
    if (out) {
        char *c = json_compact(out);
        CHECK(strncmp(c, "{\"_id\":\"", 8) == 0);
        CHECK_CONTAINS(c, J("'name':'zed'"));
        CHECK_CONTAINS(c, J("'age':50"));
        CHECK_CONTAINS(c, J("'city':'Oslo'"));
        free(c);
    }
    nexus_free(out);
    out = NULL;

    /* Same again: now it matches, nothing new is inserted. */
    CHECK_OK(nexus_update(db, "ups", J("{'name':'zed','age':50}"), J("{'$set':{'city':'Oslo'}}"),
                          NEXUS_UPSERT, &matched, &modified));
    CHECK(matched == 1 && modified == 0);
    CHECK_COUNT(db, "ups", J("{'name':'zed'}"), 1);

    /* Operator conditions do not seed fields; the update applies to the new doc. */
    CHECK_OK(nexus_update(db, "ups", J("{'name':'yan','age':{'$gt':5}}"), J("{'$inc':{'n':1}}"),
                          NEXUS_UPSERT, &matched, &modified));
    CHECK(matched == 0);
    CHECK_OK(nexus_find_one(db, "ups", J("{'name':'yan'}"), &out));
    if (out) {
        CHECK_CONTAINS(out, J("'n':1"));
        CHECK(strstr(out, "\"age\"") == NULL);
    }
    nexus_free(out);
    out = NULL;

    /* An _id in the filter becomes the new document's _id. */
    CHECK_OK(nexus_update(db, "ups", J("{'_id':'u1'}"), J("{'$set':{'v':1}}"), NEXUS_UPSERT,
                          &matched, &modified));
    CHECK_GET(db, "ups", "u1", J("{'_id':'u1','v':1}"));

    /* UPSERT|MULTI with matches updates all of them and inserts nothing. */
    CHECK_OK(nexus_update(db, "ups", "{}", J("{'$set':{'tag':1}}"), NEXUS_UPSERT | NEXUS_MULTI,
                          &matched, &modified));
    CHECK(matched == 4 && modified == 4);
    CHECK_COUNT(db, "ups", NULL, 4);
}

static void test_delete(nexus_db *db)
{
    uint64_t n = 99;
    section("delete single / NEXUS_MULTI");

    seed_people(db, "del");
    CHECK_OK(nexus_delete(db, "del", J("{'age':{'$lt':30}}"), 0, &n));
    CHECK(n == 1);
    CHECK_COUNT(db, "del", NULL, N_PEOPLE - 1);
    CHECK_COUNT(db, "del", J("{'age':{'$lt':30}}"), 1);
    CHECK_OK(nexus_delete(db, "del", J("{'age':{'$lt':30}}"), NEXUS_MULTI, &n));
    CHECK(n == 1);
    CHECK_COUNT(db, "del", J("{'age':{'$lt':30}}"), 0);

    n = 99;
    CHECK_OK(nexus_delete(db, "del", J("{'name':'nobody'}"), NEXUS_MULTI, &n));
    CHECK(n == 0);
    CHECK_OK(nexus_delete(db, "del", "{}", NEXUS_MULTI, &n));
    CHECK(n == N_PEOPLE - 2);
    CHECK_COUNT(db, "del", NULL, 0);
    CHECK_ERR(nexus_delete(db, "no_such_coll", "{}", NEXUS_MULTI, &n), NEXUS_NO_COLLECTION);
}

static void test_find_one_and(nexus_db *db)
{
    char *out = NULL;
    section("find_one_and_update / find_one_and_delete");

    seed_people(db, "foa");

    CHECK_OK(nexus_find_one_and_update(db, "foa", J("{'name':'bob'}"), J("{'$inc':{'age':1}}"),
                                       J("{'return':'before'}"), &out));
    CHECK_CONTAINS(out, J("'age':25"));
    nexus_free(out);
    out = NULL;
    CHECK_COUNT(db, "foa", J("{'name':'bob','age':26}"), 1);

    CHECK_OK(nexus_find_one_and_update(db, "foa", J("{'name':'bob'}"), J("{'$inc':{'age':1}}"),
                                       J("{'return':'after'}"), &out));
    CHECK_CONTAINS(out, J("'age':27"));
    nexus_free(out);
    out = NULL;

    CHECK_OK(nexus_find_one_and_update(db, "foa", J("{'name':'bob'}"), J("{'$inc':{'age':1}}"),
                                       J("{'return':'after','projection':{'_id':0,'age':1}}"),
                                       &out));
    CHECK_JSON(out, J("{'age':28}"));
    nexus_free(out);
    out = NULL;

    /* sort picks which document is updated. */
    CHECK_OK(nexus_find_one_and_update(db, "foa", "{}", J("{'$set':{'oldest':true}}"),
                                       J("{'sort':{'age':-1},'return':'after'}"), &out));
    CHECK_CONTAINS(out, J("'name':'cy'"));
    CHECK_CONTAINS(out, J("'oldest':true"));
    nexus_free(out);
    out = NULL;

    CHECK_OK(nexus_find_one_and_update(db, "foa", J("{'name':'dee'}"), J("{'$set':{'k':1}}"), NULL,
                                       &out));
    CHECK_CONTAINS(out, J("'name':'dee'"));
    nexus_free(out);

    out = SENTINEL_STR;
    CHECK_ERR(nexus_find_one_and_update(db, "foa", J("{'name':'nobody'}"), J("{'$set':{'k':1}}"),
                                        NULL, &out),
              NEXUS_NOT_FOUND);
    CHECK(out == SENTINEL_STR);
    CHECK_COUNT(db, "foa", NULL, N_PEOPLE);

    /* find_one_and_delete: sort picks the victim, which is returned. */
    out = NULL;
    CHECK_OK(nexus_find_one_and_delete(db, "foa", "{}", J("{'sort':{'age':1}}"), &out));
    CHECK_CONTAINS(out, J("'name':'eve'"));
    nexus_free(out);
    CHECK_COUNT(db, "foa", NULL, N_PEOPLE - 1);
    CHECK_COUNT(db, "foa", J("{'name':'eve'}"), 0);

    out = NULL;
    CHECK_OK(nexus_find_one_and_delete(db, "foa", J("{'name':'ada'}"),
                                       J("{'projection':{'_id':0,'name':1}}"), &out));
    CHECK_JSON(out, J("{'name':'ada'}"));
    nexus_free(out);

    out = SENTINEL_STR;
    CHECK_ERR(nexus_find_one_and_delete(db, "foa", J("{'name':'eve'}"), NULL, &out),
              NEXUS_NOT_FOUND);
    CHECK(out == SENTINEL_STR);
    CHECK_COUNT(db, "foa", NULL, N_PEOPLE - 2);

    /* upsert through find_one_and_update. */
    out = NULL;
    CHECK_OK(nexus_find_one_and_update(db, "foa", J("{'name':'neo'}"), J("{'$set':{'age':1}}"),
                                       J("{'upsert':true,'return':'after'}"), &out));
    CHECK_CONTAINS(out, J("'name':'neo'"));
    CHECK_CONTAINS(out, J("'age':1"));
    nexus_free(out);
    CHECK_COUNT(db, "foa", J("{'name':'neo'}"), 1);
}

/* ------------------------------------------------------------------------------------
 * Collections
 * ---------------------------------------------------------------------------------- */

static void test_collections(nexus_db *db)
{
    char *list = NULL;
    section("collections: create, drop, rename, list");

    CHECK_OK(nexus_create_collection(db, "c1", NULL));
    CHECK_ERR(nexus_create_collection(db, "c1", NULL), NEXUS_DUPLICATE_KEY);
    CHECK_ERR(nexus_create_collection(db, "_reserved", NULL), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_create_collection(db, "_tempDocuments", NULL), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_create_collection(db, "", NULL), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_create_collection(db, NULL, NULL), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_insert(db, "_reserved", "{}", NULL), NEXUS_INVALID_ARGUMENT);
    CHECK(nexus_drop_collection(db, "_tempDocuments") != NEXUS_OK);

    CHECK_OK(nexus_list_collections(db, &list));
    if (list) {
        char *c = json_compact(list);
        CHECK(c[0] == '[' && c[strlen(c) - 1] == ']');
        CHECK(strstr(c, "\"c1\"") != NULL);
        CHECK(strstr(c, "\"people\"") != NULL);
        CHECK(strstr(c, "\"_") == NULL); /* hidden collections are not listed */
        free(c);
    }
    nexus_free(list);
    list = NULL;

    /* Inserting into a missing collection creates it. */
    CHECK_OK(nexus_insert(db, "c1", J("{'_id':'k','v':1}"), NULL));
    CHECK_OK(nexus_insert(db, "auto_created", "{}", NULL));

    CHECK_OK(nexus_rename_collection(db, "c1", "c2"));
    CHECK_GET(db, "c2", "k", J("{'_id':'k','v':1}"));
    CHECK_COUNT(db, "c1", NULL, 0);
    CHECK_OK(nexus_create_collection(db, "c3", NULL));
    CHECK_ERR(nexus_rename_collection(db, "c2", "c3"), NEXUS_DUPLICATE_KEY);
    CHECK_ERR(nexus_rename_collection(db, "nope", "c9"), NEXUS_NO_COLLECTION);
    CHECK_ERR(nexus_rename_collection(db, "c2", "_hidden"), NEXUS_INVALID_ARGUMENT);
    CHECK_COUNT(db, "c2", NULL, 1);

    CHECK_OK(nexus_list_collections(db, &list));
    if (list) {
        CHECK(strstr(list, "\"c1\"") == NULL);
        CHECK(strstr(list, "\"c2\"") != NULL);
        CHECK(strstr(list, "\"c3\"") != NULL);
        CHECK(strstr(list, "\"auto_created\"") != NULL);
    }
    nexus_free(list);
    list = NULL;

    CHECK_OK(nexus_drop_collection(db, "c2"));
    CHECK_ERR(nexus_drop_collection(db, "c2"), NEXUS_NO_COLLECTION);
    CHECK_COUNT(db, "c2", NULL, 0);
    CHECK_OK(nexus_drop_collection(db, "c3"));
    CHECK_OK(nexus_list_collections(db, &list));
    if (list) {
        CHECK(strstr(list, "\"c2\"") == NULL);
        CHECK(strstr(list, "\"c3\"") == NULL);
        CHECK(strstr(list, "\"people\"") != NULL);
    }
    nexus_free(list);

    /* Non-ASCII names are fine. */
    CHECK_OK(nexus_insert(db, "caf\xc3\xa9s", "{}", NULL));
    CHECK_OK(nexus_list_collections(db, &list));
    CHECK(list != NULL && strstr(list, "\"caf\xc3\xa9s\"") != NULL);
    nexus_free(list);
    CHECK_OK(nexus_drop_collection(db, "caf\xc3\xa9s"));

    /* A dropped name can be created again, empty. */
    CHECK_OK(nexus_create_collection(db, "c2", NULL));
    CHECK_COUNT(db, "c2", NULL, 0);
    CHECK_OK(nexus_drop_collection(db, "c2"));
}

/* ------------------------------------------------------------------------------------
 * insert_many atomicity, BSON
 * ---------------------------------------------------------------------------------- */

static void test_insert_many(nexus_db *db)
{
    uint64_t n = 777;
    char *out = SENTINEL_STR;
    section("insert_many (atomic)");

    CHECK_OK(nexus_insert_many(db, "many", J("[{'_id':'m1','v':1},{'_id':'m2','v':2},{'v':3}]"),
                               &n));
    CHECK(n == 3);
    CHECK_COUNT(db, "many", NULL, 3);
    CHECK_GET(db, "many", "m2", J("{'_id':'m2','v':2}"));

    /* A duplicate inside the batch: nothing of the batch is inserted. */
    n = 777;
    CHECK_ERR(nexus_insert_many(db, "many", J("[{'_id':'m3'},{'_id':'m4'},{'_id':'m3'}]"), &n),
              NEXUS_DUPLICATE_KEY);
    CHECK(n == 777);
    CHECK_COUNT(db, "many", NULL, 3);
    CHECK_RC(nexus_get(db, "many", "m3", &out), NEXUS_NOT_FOUND);
    CHECK_RC(nexus_get(db, "many", "m4", &out), NEXUS_NOT_FOUND);
    CHECK(out == SENTINEL_STR);

    /* A duplicate of an existing document: same. */
    CHECK_ERR(nexus_insert_many(db, "many", J("[{'_id':'m5'},{'_id':'m1'}]"), &n),
              NEXUS_DUPLICATE_KEY);
    CHECK_COUNT(db, "many", NULL, 3);
    CHECK_RC(nexus_get(db, "many", "m5", &out), NEXUS_NOT_FOUND);

    /* Malformed batches are refused as a whole. */
    CHECK_ERR(nexus_insert_many(db, "many", J("[{'_id':'m6'},42]"), &n), NEXUS_PARSE);
    CHECK_ERR(nexus_insert_many(db, "many", J("{'_id':'m7'}"), &n), NEXUS_PARSE);
    CHECK_ERR(nexus_insert_many(db, "many", J("[{'_id':'m8'},"), &n), NEXUS_PARSE);
    CHECK_COUNT(db, "many", NULL, 3);
    STILL_WORKS(db);
}

static void test_bson(nexus_db *db)
{
    /* {"_id":"b1","n":7,"s":"hi"} encoded by hand. */
    static const uint8_t doc[] = {
        0x22, 0x00, 0x00, 0x00,                               /* total length 34 */
        0x02, '_', 'i', 'd', 0x00, 0x03, 0x00, 0x00, 0x00, 'b', '1', 0x00, /* string */
        0x10, 'n', 0x00, 0x07, 0x00, 0x00, 0x00,             /* int32 */
        0x02, 's', 0x00, 0x03, 0x00, 0x00, 0x00, 'h', 'i', 0x00, /* string */
        0x00};
    /* {"n":1} without _id */
    static const uint8_t noid[] = {0x0c, 0x00, 0x00, 0x00, 0x10, 'n', 0x00,
                                   0x01, 0x00, 0x00, 0x00, 0x00};
    char *id = NULL;
    nexus_cursor *cur = NULL;
    const uint8_t *bytes = NULL;
    size_t len = 0;

    section("BSON in and out");
    CHECK(sizeof doc == 34);
    CHECK_OK(nexus_insert_bson(db, "bson", doc, sizeof doc, &id));
    CHECK_STR(id, "b1");
    nexus_free(id);
    id = NULL;
    CHECK_GET(db, "bson", "b1", J("{'_id':'b1','n':7,'s':'hi'}"));

    CHECK_OK(nexus_find(db, "bson", J("{'_id':'b1'}"), NULL, &cur));
    CHECK_RC(nexus_cursor_next_bson(cur, &bytes, &len), NEXUS_ROW);
    CHECK(len == sizeof doc && bytes != NULL && memcmp(bytes, doc, len) == 0);
    CHECK_RC(nexus_cursor_next_bson(cur, &bytes, &len), NEXUS_DONE);
    CHECK_OK(nexus_cursor_close(cur));

    CHECK_OK(nexus_insert_bson(db, "bson", noid, sizeof noid, &id));
    CHECK(is_uuid_v4(id));
    nexus_free(id);

    CHECK_ERR(nexus_insert_bson(db, "bson", doc, sizeof doc - 3, NULL), NEXUS_PARSE);
    CHECK_ERR(nexus_insert_bson(db, "bson", NULL, 0, NULL), NEXUS_INVALID_ARGUMENT);
    CHECK_COUNT(db, "bson", NULL, 2);
    STILL_WORKS(db);
}

/* ------------------------------------------------------------------------------------
 * Bad input
 * ---------------------------------------------------------------------------------- */

static void test_bad_input(nexus_db *db)
{
    char *out = SENTINEL_STR, *id = SENTINEL_STR;
    nexus_cursor *cur = (nexus_cursor *)&g_sentinel;
    nexus_db *other = (nexus_db *)&g_sentinel;
    uint64_t n = 777, m = 777;
    const char *msg;

    section("bad input");

    /* NULL handles and strings. */
    CHECK_ERR(nexus_insert(NULL, "people", "{}", &id), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_insert(db, NULL, "{}", &id), NEXUS_INVALID_ARGUMENT);
    STILL_WORKS(db);
    CHECK_ERR(nexus_insert(db, "people", NULL, &id), NEXUS_INVALID_ARGUMENT);
    STILL_WORKS(db);
    CHECK(id == SENTINEL_STR);
    CHECK_ERR(nexus_get(db, "people", NULL, &out), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_get(db, "people", "ada", NULL), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_count(NULL, "people", NULL, &n), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_find(db, "people", NULL, NULL, NULL), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_find(db, NULL, NULL, NULL, &cur), NEXUS_INVALID_ARGUMENT);
    CHECK(cur == (nexus_cursor *)&g_sentinel);
    CHECK_ERR(nexus_update(db, "people", "{}", NULL, 0, &n, &m), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_cursor_next(NULL, NULL), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_open(":memory:", NULL, NULL), NEXUS_INVALID_ARGUMENT);
    STILL_WORKS(db);

    /* Invalid UTF-8 anywhere a string goes in. */
    CHECK_ERR(nexus_insert(db, "people", "{\"name\":\"\xff\xfe\"}", NULL), NEXUS_INVALID_ARGUMENT);
    STILL_WORKS(db);
    CHECK_ERR(nexus_insert(db, "pe\xc3(ple", "{}", NULL), NEXUS_INVALID_ARGUMENT);
    STILL_WORKS(db);
    CHECK_ERR(nexus_count(db, "people", "{\"name\":\"\xed\xa0\x80\"}", &n), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_get(db, "people", "\xc0\xaf", &out), NEXUS_INVALID_ARGUMENT);
    CHECK(out == SENTINEL_STR);
    STILL_WORKS(db);

    /* Malformed JSON, and JSON that is not a document. */
    CHECK_ERR(nexus_insert(db, "people", "{\"name\":\"ada\"", NULL), NEXUS_PARSE);
    STILL_WORKS(db);
    CHECK_ERR(nexus_insert(db, "people", "", NULL), NEXUS_PARSE);
    CHECK_ERR(nexus_insert(db, "people", "{\"a\":1} trailing", NULL), NEXUS_PARSE);
    CHECK_ERR(nexus_insert(db, "people", "[1,2]", NULL), NEXUS_PARSE);
    STILL_WORKS(db);
    CHECK_ERR(nexus_insert(db, "people", "[{\"a\":1}]", NULL), NEXUS_PARSE);
    CHECK_ERR(nexus_insert(db, "people", "42", NULL), NEXUS_PARSE);
    STILL_WORKS(db);
    CHECK_ERR(nexus_insert(db, "people", "\"text\"", NULL), NEXUS_PARSE);
    CHECK_ERR(nexus_insert(db, "people", "null", NULL), NEXUS_PARSE);
    CHECK_ERR(nexus_count(db, "people", "[1]", &n), NEXUS_PARSE);
    CHECK_ERR(nexus_count(db, "people", "{\"age\":", &n), NEXUS_PARSE);
    CHECK_ERR(nexus_replace(db, "people", "ada", "[]"), NEXUS_PARSE);
    STILL_WORKS(db);
    CHECK_COUNT(db, "people", NULL, N_PEOPLE);

    /* A 17 MiB document is over the 16 MiB limit. */
    {
        size_t big_n = 17u * 1024u * 1024u;
        char *big = xmalloc(big_n + 32);
        memcpy(big, "{\"big\":\"", 8);
        memset(big + 8, 'x', big_n);
        memcpy(big + 8 + big_n, "\"}", 3);
        CHECK_ERR(nexus_insert(db, "people", big, &id), NEXUS_INVALID_ARGUMENT);
        CHECK(id == SENTINEL_STR);
        STILL_WORKS(db);
        free(big);
    }
    CHECK_COUNT(db, "people", NULL, N_PEOPLE);

    /* Duplicate _id: refused, the stored document unchanged. */
    CHECK_ERR(nexus_insert(db, "people", J("{'_id':'ada','name':'impostor'}"), &id),
              NEXUS_DUPLICATE_KEY);
    CHECK(id == SENTINEL_STR);
    STILL_WORKS(db);
    CHECK_GET(db, "people", "ada", J(PEOPLE[0]));

    /* Unknown and bad option keys; the message names the unknown key. */
    CHECK_ERR(nexus_open(":memory:", J("{'bogus_key':1}"), &other), NEXUS_INVALID_ARGUMENT);
    msg = nexus_errmsg();
    CHECK(msg != NULL && strstr(msg, "bogus_key") != NULL);
    CHECK(other == (nexus_db *)&g_sentinel);
    CHECK_ERR(nexus_open(":memory:", J("{'sync':'sometimes'}"), &other), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_open(":memory:", J("{'create':'yes'}"), &other), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_open(":memory:", J("{'busy_timeout_ms':'soon'}"), &other),
              NEXUS_INVALID_ARGUMENT);
    CHECK(other == (nexus_db *)&g_sentinel);
    CHECK_ERR(nexus_find(db, "people", NULL, J("{'bogus_key':1}"), &cur), NEXUS_INVALID_ARGUMENT);
    msg = nexus_errmsg();
    CHECK(msg != NULL && strstr(msg, "bogus_key") != NULL);
    CHECK(cur == (nexus_cursor *)&g_sentinel);
    STILL_WORKS(db);
    CHECK_ERR(nexus_find(db, "people", NULL, J("{'skip':-1}"), &cur), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_find_one_and_update(db, "people", "{}", J("{'$set':{'x':1}}"),
                                        J("{'bogus_key':1}"), &out),
              NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_find_one_and_update(db, "people", "{}", J("{'$set':{'x':1}}"),
                                        J("{'return':'sideways'}"), &out),
              NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_create_collection(db, "optcoll", J("{'bogus_key':1}")), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_configure(db, J("{'bogus_key':1}")), NEXUS_INVALID_ARGUMENT);
    STILL_WORKS(db);

    /* Unknown query and update operators. */
    CHECK_ERR(nexus_count(db, "people", J("{'age':{'$foo':1}}"), &n), NEXUS_PARSE);
    STILL_WORKS(db);
    CHECK_ERR(nexus_find(db, "people", J("{'$foo':[{'age':1}]}"), NULL, &cur), NEXUS_PARSE);
    CHECK(cur == (nexus_cursor *)&g_sentinel);
    CHECK_ERR(nexus_update(db, "people", J("{'_id':'ada'}"), J("{'$foo':{'age':1}}"), 0, &n, &m),
              NEXUS_PARSE);
    STILL_WORKS(db);
    CHECK_ERR(nexus_update(db, "people", J("{'age':{'$bar':1}}"), J("{'$set':{'age':1}}"),
                           NEXUS_MULTI, &n, &m),
              NEXUS_PARSE);
    CHECK_ERR(nexus_delete(db, "people", J("{'age':{'$foo':1}}"), NEXUS_MULTI, &n), NEXUS_PARSE);
    CHECK(n == 777 && m == 777);
    CHECK_GET(db, "people", "ada", J(PEOPLE[0]));
    CHECK_COUNT(db, "people", NULL, N_PEOPLE);
    CHECK(out == SENTINEL_STR);
}

/* nexus_errmsg is per thread: an error on another thread does not overwrite ours. */
static void *errmsg_thread(void *arg)
{
    nexus_db *db = arg;
    char *out = NULL;
    uint64_t n = 0;
    nexus_get(db, "people", "no-such-id-here", &out); /* NOT_FOUND on this thread */
    nexus_free(out);
    nexus_count(db, "people", "{\"$foo\":1}", &n);  /* PARSE on this thread */
    nexus_count(db, "people", NULL, &n);             /* and a success */
    return NULL;
}

static void test_errmsg_per_thread(nexus_db *db)
{
    char saved[1024];
    pthread_t t;
    section("nexus_errmsg is per thread");
    CHECK_ERR(nexus_insert(db, "people", NULL, NULL), NEXUS_INVALID_ARGUMENT);
    copy_errmsg(saved, sizeof saved);
    CHECK(pthread_create(&t, NULL, errmsg_thread, db) == 0);
    pthread_join(t, NULL);
    CHECK_STR(nexus_errmsg(), saved);
}

/* ------------------------------------------------------------------------------------
 * Cursors: snapshot, use after close; private in-memory databases
 * ---------------------------------------------------------------------------------- */

static void test_cursors_and_memory(void)
{
    nexus_db *a = NULL, *b = NULL, *c = NULL;
    nexus_cursor *cur = NULL;
    const char *doc = NULL;
    int rows = 0, rc;
    uint64_t n = 0;
    section("cursors (snapshot, after close) and :memory:");

    CHECK_OK(nexus_open(":memory:", NULL, &a));
    CHECK_OK(nexus_open(NULL, NULL, &b));
    CHECK_OK(nexus_open(":memory:", NULL, &c));
    if (!a || !b || !c)
        return;
    CHECK_OK(nexus_insert_many(a, "m", J("[{'i':1},{'i':2},{'i':3}]"), &n));
    CHECK(n == 3);
    /* Each in-memory database is private. */
    CHECK_COUNT(b, "m", NULL, 0);
    CHECK_COUNT(c, "m", NULL, 0);

    /* A cursor does not see writes committed after nexus_find returned. */
    CHECK_OK(nexus_find(a, "m", NULL, NULL, &cur));
    CHECK_OK(nexus_insert(a, "m", J("{'i':4}"), NULL));
    CHECK_OK(nexus_delete(a, "m", J("{'i':1}"), 0, &n));
    while ((rc = nexus_cursor_next(cur, &doc)) == NEXUS_ROW) {
        char *c = json_compact(doc ? doc : "");
        rows++;
        CHECK(strstr(c, "\"i\":") != NULL);
        CHECK(strstr(c, "\"i\":4") == NULL);
        free(c);
    }
    CHECK_RC(rc, NEXUS_DONE);
    CHECK(rows == 3);
    CHECK_RC(nexus_cursor_next(cur, &doc), NEXUS_DONE); /* stays done */
    CHECK_OK(nexus_cursor_close(cur));
    CHECK_COUNT(a, "m", NULL, 3);

    /* Cursors outliving their connection report NEXUS_ERROR and can still be closed. */
    cur = NULL;
    CHECK_OK(nexus_find(a, "m", NULL, NULL, &cur));
    CHECK_RC(nexus_cursor_next(cur, &doc), NEXUS_ROW);
    CHECK_OK(nexus_close(a));
    CHECK_ERR(nexus_cursor_next(cur, &doc), NEXUS_ERROR);
    CHECK_ERR(nexus_cursor_next(cur, &doc), NEXUS_ERROR);
    CHECK_OK(nexus_cursor_close(cur));

    cur = NULL;
    CHECK_OK(nexus_find(b, "m", NULL, NULL, &cur)); /* empty, never stepped */
    CHECK_OK(nexus_close(b));
    CHECK_ERR(nexus_cursor_next(cur, &doc), NEXUS_ERROR);
    CHECK_OK(nexus_cursor_close(cur));

    /* The surviving connection is unaffected. */
    CHECK_OK(nexus_insert(c, "m", "{}", NULL));
    CHECK_COUNT(c, "m", NULL, 1);
    CHECK_OK(nexus_close(c));
}

/* ------------------------------------------------------------------------------------
 * Transactions
 * ---------------------------------------------------------------------------------- */

static void test_transactions(void)
{
    const char *path = path_in_dir("txn.db");
    nexus_db *a = NULL, *b = NULL;
    char *out = NULL;
    uint64_t n = 0, m = 0;
    int rc;
    section("transactions");

    CHECK_OK(nexus_open(path, test_options(NULL), &a));
    CHECK_OK(nexus_open(path, test_options(J("{'busy_timeout_ms':100}")), &b));
    if (!a || !b)
        return;
    CHECK_OK(nexus_insert(a, "t", J("{'_id':'t0','v':0}"), NULL));

    CHECK_ERR(nexus_commit(a), NEXUS_TXN);
    CHECK_ERR(nexus_rollback(a), NEXUS_TXN);
    STILL_WORKS(a);

    /* Rollback discards everything done inside. */
    CHECK_OK(nexus_begin(a));
    CHECK_ERR(nexus_begin(a), NEXUS_TXN);
    CHECK_OK(nexus_insert(a, "t", J("{'_id':'x1'}"), NULL));
    CHECK_OK(nexus_update(a, "t", J("{'_id':'t0'}"), J("{'$set':{'v':1}}"), 0, &n, &m));
    CHECK_COUNT(a, "t", NULL, 2);            /* a sees its own writes */
    CHECK_COUNT(b, "t", NULL, 1);            /* b does not see uncommitted ones */
    CHECK_COUNT(b, "t", J("{'v':0}"), 1);
    CHECK_OK(nexus_rollback(a));
    CHECK_COUNT(a, "t", NULL, 1);
    CHECK_GET(a, "t", "t0", J("{'_id':'t0','v':0}"));
    CHECK_RC(nexus_get(a, "t", "x1", &out), NEXUS_NOT_FOUND);

    /* Commit publishes everything at once. A second writer waits and then gets BUSY. */
    CHECK_OK(nexus_begin(a));
    CHECK_OK(nexus_insert(a, "t", J("{'_id':'x2'}"), NULL));
    CHECK_OK(nexus_insert(a, "t2", J("{'_id':'y2'}"), NULL));
    CHECK_OK(nexus_update(a, "t", J("{'_id':'t0'}"), J("{'$set':{'v':2}}"), 0, &n, &m));
    CHECK_OK(nexus_delete(a, "t", J("{'_id':'nothing'}"), 0, &n));
    CHECK_ERR(nexus_insert(b, "t", J("{'_id':'b1'}"), NULL), NEXUS_BUSY);
    CHECK_COUNT(b, "t", NULL, 1);
    CHECK_OK(nexus_commit(a));
    CHECK_ERR(nexus_commit(a), NEXUS_TXN);
    CHECK_COUNT(b, "t", NULL, 2);
    CHECK_COUNT(b, "t2", NULL, 1);
    CHECK_GET(b, "t", "t0", J("{'_id':'t0','v':2}"));
    CHECK_OK(nexus_insert(b, "t", J("{'_id':'b1'}"), NULL));

    /* Reads inside a transaction see a snapshot: later commits by b are invisible. */
    /* (Whether begin already takes the write lock is not specified: b may get BUSY.) */
    CHECK_OK(nexus_begin(a));
    CHECK_COUNT(a, "t", NULL, 3);
    rc = nexus_insert(b, "t", J("{'_id':'b2'}"), NULL);
    CHECK(rc == NEXUS_OK || rc == NEXUS_BUSY);
    CHECK_COUNT(a, "t", NULL, 3);
    CHECK_OK(nexus_commit(a));
    CHECK_COUNT(a, "t", NULL, rc == NEXUS_OK ? 4 : 3);

    /* A read transaction: one snapshot, no lock (b commits meanwhile without waiting), writes
     * on the reading connection refused; commit or rollback ends it. */
    CHECK_OK(nexus_count(a, "t", NULL, &n));
    CHECK_OK(nexus_begin_read(a));
    CHECK_ERR(nexus_begin_read(a), NEXUS_TXN);
    CHECK_ERR(nexus_begin(a), NEXUS_TXN);
    CHECK_OK(nexus_insert(b, "t", J("{'_id':'r1'}"), NULL));
    CHECK_COUNT(a, "t", NULL, n);
    CHECK_RC(nexus_get(a, "t", "r1", &out), NEXUS_NOT_FOUND);
    CHECK_ERR(nexus_insert(a, "t", J("{'_id':'r2'}"), NULL), NEXUS_READONLY);
    CHECK_OK(nexus_commit(a));
    CHECK_COUNT(a, "t", NULL, n + 1);
    CHECK_OK(nexus_begin_read(a));
    CHECK_OK(nexus_rollback(a));
    CHECK_ERR(nexus_rollback(a), NEXUS_TXN);
    CHECK_OK(nexus_delete(a, "t", J("{'_id':'r1'}"), 0, &m));
    CHECK(m == 1);

    /* Closing with an open transaction rolls it back. */
    CHECK_OK(nexus_begin(b));
    CHECK_OK(nexus_insert(b, "t", J("{'_id':'lost'}"), NULL));
    CHECK_OK(nexus_close(b));
    CHECK_COUNT(a, "t", J("{'_id':'lost'}"), 0);
    STILL_WORKS(a);
    CHECK_OK(nexus_close(a));
}

/* ------------------------------------------------------------------------------------
 * Threads: several connections, and one connection shared by threads
 * ---------------------------------------------------------------------------------- */

#define N_THREADS 4
#define N_PER_THREAD 200

typedef struct {
    const char *path;    /* open an own connection to this path ... */
    const char *options; /* ... with these nexus_open options (made by the main thread) ... */
    nexus_db *shared; /* ... or use this shared one */
    int tid;
    int count;
    int failures;
    char first_error[256];
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    nexus_db *db = w->shared;
    char json[96];
    int i, rc;
    if (db == NULL) {
        rc = nexus_open(w->path, w->options, &db);
        if (rc != NEXUS_OK) {
            w->failures = w->count;
            snprintf(w->first_error, sizeof w->first_error, "open: %d %s", rc, nexus_errmsg());
            return NULL;
        }
    }
    for (i = 0; i < w->count; i++) {
        snprintf(json, sizeof json, "{\"t\":%d,\"i\":%d}", w->tid, i);
        rc = nexus_insert(db, "threads", json, NULL);
        if (rc != NEXUS_OK && w->failures++ == 0)
            snprintf(w->first_error, sizeof w->first_error, "insert: %d %s", rc, nexus_errmsg());
    }
    if (w->shared == NULL && nexus_close(db) != NEXUS_OK && w->failures++ == 0)
        snprintf(w->first_error, sizeof w->first_error, "close: %s", nexus_errmsg());
    return NULL;
}

static int run_workers(worker *ws, int n)
{
    pthread_t th[N_THREADS];
    int i, failures = 0;
    for (i = 0; i < n; i++)
        if (pthread_create(&th[i], NULL, worker_main, &ws[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            exit(2);
        }
    for (i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        if (ws[i].failures) {
            fprintf(stderr, "    thread %d: %d failures, first: %s\n", i, ws[i].failures,
                    ws[i].first_error);
            failures += ws[i].failures;
        }
    }
    return failures;
}

static void test_threads(void)
{
    const char *path = path_in_dir("threads.db");
    const char *options = test_options("{\"busy_timeout_ms\":60000}");
    worker ws[N_THREADS];
    nexus_db *db = NULL;
    char filter[64];
    int i;
    section("threads: 4 connections x 200 inserts, and one shared connection");

    memset(ws, 0, sizeof ws);
    for (i = 0; i < N_THREADS; i++) {
        ws[i].path = path;
        ws[i].options = options;
        ws[i].tid = i;
        ws[i].count = N_PER_THREAD;
    }
    CHECK(run_workers(ws, N_THREADS) == 0);

    CHECK_OK(nexus_open(path, test_options(NULL), &db));
    if (!db)
        return;
    CHECK_COUNT(db, "threads", NULL, N_THREADS * N_PER_THREAD);
    for (i = 0; i < N_THREADS; i++) {
        snprintf(filter, sizeof filter, "{\"t\":%d}", i);
        CHECK_COUNT(db, "threads", filter, N_PER_THREAD);
    }

    /* Two threads sharing this one connection (it serializes their calls). */
    memset(ws, 0, sizeof ws);
    for (i = 0; i < 2; i++) {
        ws[i].shared = db;
        ws[i].tid = 10 + i;
        ws[i].count = 100;
    }
    CHECK(run_workers(ws, 2) == 0);
    CHECK_COUNT(db, "threads", J("{'t':{'$gte':10}}"), 200);
    CHECK_OK(nexus_close(db));

    /* Reopen: everything is still there. */
    db = NULL;
    CHECK_OK(nexus_open(path, test_options(NULL), &db));
    CHECK_COUNT(db, "threads", NULL, N_THREADS * N_PER_THREAD + 200);
    CHECK_OK(nexus_close(db));
}

/* ------------------------------------------------------------------------------------
 * Files: another process, not-a-database, read-only, create:false, maintenance
 * ---------------------------------------------------------------------------------- */

static const char *g_self; /* path of this executable, for the child process */

/* Child mode: open PATH, expect CODE. Exit 0 when as expected. */
static int child_open(const char *path, int want)
{
    nexus_db *db = NULL;
    int rc = nexus_open(path, test_options("{\"busy_timeout_ms\":200}"), &db);
    const char *msg = nexus_errmsg();
    int ok = rc == want && (rc == NEXUS_OK || (msg != NULL && msg[0] != '\0'));
    if (!ok)
        fprintf(stderr, "    child: nexus_open returned %d, expected %d; errmsg: %s\n", rc, want,
                msg ? msg : "(NULL)");
    if (rc == NEXUS_OK) {
        /* A connection of its own: its commit must reach the parent's open connection. */
        char doc[64];
        snprintf(doc, sizeof doc, "{\"_id\": \"child-%ld\"}", (long)getpid());
        if (nexus_insert(db, "child_writes", doc, NULL) != NEXUS_OK) {
            fprintf(stderr, "    child: insert failed: %s\n", nexus_errmsg());
            ok = 0;
        }
        if (nexus_close(db) != NEXUS_OK)
            ok = 0;
    }
    return ok ? 0 : 1;
}

static int run_child_open(const char *path, int want)
{
    char code[16];
    int status = 0;
    pid_t pid;
    snprintf(code, sizeof code, "%d", want);
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execl(g_self, g_self, "--child-open", path, code, (char *)NULL);
        _exit(127);
    }
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int file_equals(const char *path, const unsigned char *data, size_t len)
{
    unsigned char buf[16384];
    size_t got;
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    got = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return got == len && memcmp(buf, data, len) == 0;
}

static void test_files(nexus_db *db)
{
    unsigned char junk[8192];
    const char *junk_path = path_in_dir("junk.db");
    const char *small_path = path_in_dir("hello.db");
    const char *missing = path_in_dir("missing.db");
    nexus_db *other = (nexus_db *)&g_sentinel;
    struct stat st;
    size_t i;
    FILE *f;
    uint32_t x = 12345;

    section("files: locking, shared engine, open options, not a database, create:false");

    /* Another process opens the database this process holds (wasp, the default: several
     * processes share it, and the child's commit is seen here at once); memlog keeps its
     * tables in one process, so the other process gets BUSY ... */
    if (test_storage() == NULL) {
        CHECK(run_child_open(path_in_dir("main.db"), NEXUS_OK) == 0);
        CHECK_COUNT(db, "child_writes", NULL, 1);
    } else {
        CHECK(run_child_open(path_in_dir("main.db"), NEXUS_BUSY) == 0);
    }
    /* ... while another connection of this process shares it, however it is spelled. */
    other = NULL;
    CHECK_OK(nexus_open(path_in_dir("./main.db"), test_options(NULL), &other));
    CHECK_COUNT(other, "people", NULL, N_PEOPLE);
    CHECK_OK(nexus_insert(other, "shared_conn", J("{'_id':'s1'}"), NULL));
    CHECK_GET(db, "shared_conn", "s1", J("{'_id':'s1'}"));
    CHECK_OK(nexus_close(other));
    other = (nexus_db *)&g_sentinel;

    /* Every documented open option is accepted. */
    {
        nexus_db *o = NULL;
        CHECK_OK(nexus_open(path_in_dir("options.db"),
                            J("{'create':true,'read_only':false,'sync':'normal','busy_timeout_ms':1000,"
                              "'storage':'wal','cache_capacity':100,'page_cache_bytes':1048576}"),
                            &o));
        CHECK_OK(nexus_insert(o, "c", "{}", NULL));
        CHECK_OK(nexus_close(o));
        o = NULL;
        CHECK_OK(nexus_open(path_in_dir("sync_off.db"), test_options(J("{'sync':'off'}")), &o));
        CHECK_OK(nexus_close(o));
        o = NULL;
        CHECK_OK(nexus_open(path_in_dir("sync_full.db"), test_options(J("{'sync':'full'}")), &o));
        CHECK_OK(nexus_close(o));
    }

    /* Not a NexusLite database: refused with CORRUPT and left byte-for-byte unchanged. */
    memcpy(junk, "This is not a NexusLite database.\n", 34);
    for (i = 34; i < sizeof junk; i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (unsigned char)(x >> 16);
    }
    f = fopen(junk_path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK(fwrite(junk, 1, sizeof junk, f) == sizeof junk);
        fclose(f);
    }
    CHECK_ERR(nexus_open(junk_path, test_options(NULL), &other), NEXUS_CORRUPT);
    CHECK(other == (nexus_db *)&g_sentinel);
    CHECK(file_equals(junk_path, junk, sizeof junk));
    CHECK_ERR(nexus_open(junk_path, test_options(J("{'read_only':true}")), &other), NEXUS_CORRUPT);
    CHECK_ERR(nexus_open(junk_path, test_options(J("{'create':false}")), &other), NEXUS_CORRUPT);
    CHECK(file_equals(junk_path, junk, sizeof junk));
    CHECK(stat(path_in_dir("junk.wasp"), &st) != 0); /* no side log left behind */

    f = fopen(small_path, "wb");
    if (f) {
        fputs("hello\n", f);
        fclose(f);
    }
    CHECK_ERR(nexus_open(small_path, test_options(NULL), &other), NEXUS_CORRUPT);
    CHECK(file_equals(small_path, (const unsigned char *)"hello\n", 6));
    CHECK(other == (nexus_db *)&g_sentinel);

    /* create:false on a missing file fails and creates nothing. */
    CHECK(nexus_open(missing, test_options(J("{'create':false}")), &other) != NEXUS_OK);
    CHECK(other == (nexus_db *)&g_sentinel);
    CHECK(stat(missing, &st) != 0);
}

static void test_maintenance(nexus_db *db)
{
    char *out = NULL;
    section("maintenance: checkpoint, compact, stats");
    CHECK_OK(nexus_checkpoint(db));
    CHECK_OK(nexus_compact(db));
    CHECK_OK(nexus_stats(db, &out));
    if (out) {
        char *c = json_compact(out);
        CHECK(c[0] == '{' && c[strlen(c) - 1] == '}');
        free(c);
    }
    nexus_free(out);
    CHECK_COUNT(db, "people", NULL, N_PEOPLE);
    CHECK_GET(db, "people", "ada", J(PEOPLE[0]));
}

/* ------------------------------------------------------------------------------------
 * Vector search: an HNSW index, nexus_vector_search with filter, exact, projection and
 * scoreField, bad vectors and specifications refused
 * ---------------------------------------------------------------------------------- */

/* The "name" fields of a vector search's rows joined by ','; each row must carry
 * score_field. Returns the search's status; *out malloc'd on NEXUS_OK. */
static int vector_names(nexus_db *db, const char *spec, const char *score_field, char **out)
{
    nexus_cursor *cur = NULL;
    const char *doc = NULL;
    sbuf b = {NULL, 0, 0};
    int rc, n = 0;
    rc = nexus_vector_search(db, "vec", spec, &cur);
    if (rc != NEXUS_OK)
        return rc;
    sb_puts(&b, "");
    while ((rc = nexus_cursor_next(cur, &doc)) == NEXUS_ROW) {
        char *c = json_compact(doc);
        const char *p = strstr(c, "\"name\":\"");
        CHECK_CONTAINS(c, score_field);
        if (n++ > 0)
            sb_puts(&b, ",");
        if (p) {
            p += 8;
            sb_add(&b, p, strcspn(p, "\""));
        }
        free(c);
    }
    nexus_cursor_close(cur);
    if (rc != NEXUS_DONE) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    return NEXUS_OK;
}

static void check_vector_names(nexus_db *db, const char *spec, const char *score_field,
                               const char *want)
{
    char *got = NULL;
    if (CHECK_OK(vector_names(db, spec, score_field, &got)))
        CHECK_STR(got, want);
    free(got);
}

static void test_vector_search(nexus_db *db)
{
    char *name = NULL;
    nexus_cursor *cur = NULL;
    section("vector search: HNSW index, filter, exact, projection, bad input");
    CHECK_OK(nexus_create_index(db, "vec", J("{'emb':'hnsw'}"),
                                J("{'numDimensions':3,'similarity':'euclidean'}"), &name));
    CHECK_STR(name, "emb_hnsw");
    nexus_free(name);
    CHECK_OK(nexus_insert(db, "vec", J("{'_id':1,'name':'a','emb':[0,0,0],'tag':1}"), NULL));
    CHECK_OK(nexus_insert(db, "vec", J("{'_id':2,'name':'b','emb':[1,1,1],'tag':2}"), NULL));
    CHECK_OK(nexus_insert(db, "vec", J("{'_id':3,'name':'c','emb':[5,5,5],'tag':1}"), NULL));
    CHECK_OK(nexus_insert(db, "vec", J("{'_id':4,'name':'d'}"), NULL));
    /* Bad vectors: refused, naming the problem. */
    CHECK_ERR(nexus_insert(db, "vec", J("{'emb':[1,2]}"), NULL), NEXUS_INVALID_ARGUMENT);
    CHECK_CONTAINS(nexus_errmsg(), "2 dimensions");
    CHECK_ERR(nexus_insert(db, "vec", J("{'emb':[1,'x',3]}"), NULL), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_insert(db, "vec", J("{'emb':[1,{'$numberDouble':'NaN'},3]}"), NULL),
              NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_create_index(db, "vec2", J("{'e':'hnsw'}"), J("{'numDimensions':0}"), NULL),
              NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_create_index(db, "vec2", J("{'e':'hnsw'}"), J("{'numDimensions':4097}"), NULL),
              NEXUS_INVALID_ARGUMENT);
    /* Nearest first; the document without a vector is not indexed. */
    check_vector_names(db, J("{'path':'emb','queryVector':[0.9,0.9,0.9],'limit':5}"),
                       "\"_score\":", "b,a,c");
    check_vector_names(db,
                       J("{'path':'emb','queryVector':[0.9,0.9,0.9],'limit':2,'filter':{'tag':1},"
                         "'projection':{'name':1,'_id':0},'scoreField':'s'}"),
                       "\"s\":", "a,c");
    check_vector_names(db, J("{'path':'emb','queryVector':[4,4,4],'limit':1,'exact':true}"),
                       "\"_score\":", "c");
    /* A delete is seen at once. */
    CHECK_OK(nexus_delete(db, "vec", J("{'_id':2}"), 0, NULL));
    check_vector_names(db, J("{'path':'emb','queryVector':[0.9,0.9,0.9],'limit':5}"),
                       "\"_score\":", "a,c");
    /* Bad specifications. */
    CHECK_ERR(nexus_vector_search(db, "vec", J("{'path':'emb','queryVector':[1],'limit':1}"), &cur),
              NEXUS_INVALID_ARGUMENT);
    CHECK_CONTAINS(nexus_errmsg(), "dimensions");
    CHECK_ERR(nexus_vector_search(db, "vec", J("{'path':'other','queryVector':[1,2,3],'limit':1}"),
                                  &cur),
              NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_vector_search(db, "vec", "{not json", &cur), NEXUS_PARSE);
    CHECK_ERR(nexus_vector_search(db, "vec", NULL, &cur), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_vector_search(NULL, "vec", J("{}"), &cur), NEXUS_INVALID_ARGUMENT);
    CHECK(cur == NULL);
}

/* ------------------------------------------------------------------------------------
 * Secondary indexes: create, list, explain, unique, drop, bad input
 * ---------------------------------------------------------------------------------- */

static void test_indexes(nexus_db *db)
{
    char *name = NULL, *out = NULL;
    uint64_t matched = 0, modified = 0;
    section("indexes: create, list, explain, unique, drop");
    seed_people(db, "ix");
    CHECK_OK(nexus_create_index(db, "ix", J("{'addr.city':1}"), NULL, &name));
    CHECK_STR(name, "addr.city_1");
    nexus_free(name);
    name = NULL;
    CHECK_OK(nexus_create_index(db, "ix", J("{'name':1}"), J("{'unique':true}"), NULL));
    CHECK_OK(nexus_create_index(db, "ix", J("{'age':-1,'name':1}"), J("{'name':'by_age'}"), &name));
    CHECK_STR(name, "by_age");
    nexus_free(name);
    CHECK_OK(nexus_list_indexes(db, "ix", &out));
    if (out) {
        CHECK_CONTAINS(out, "\"name\":\"_id_\"");
        CHECK_CONTAINS(out, "\"name\":\"addr.city_1\"");
        CHECK_CONTAINS(out, "\"unique\":true");
    }
    nexus_free(out);
    out = NULL;
    /* Same answers through the index; the plan says which index. */
    CHECK_NAMES(db, "ix", J("{'addr.city':'London'}"), J("{'sort':{'name':1}}"), "ada,cy");
    CHECK_NAMES(db, "ix", J("{'age':{'$gte':25,'$lt':40}}"), J("{'sort':{'age':-1,'name':1}}"),
                "ada,dee,bob");
    CHECK_OK(nexus_explain(db, "ix", J("{'addr.city':'London'}"), NULL, &out));
    if (out) {
        CHECK_CONTAINS(out, "\"IXSCAN\"");
        CHECK_CONTAINS(out, "\"indexName\":\"addr.city_1\"");
        CHECK_CONTAINS(out, "\"nReturned\":2");
    }
    nexus_free(out);
    out = NULL;
    /* A unique violation names the index and writes nothing. */
    CHECK_ERR(nexus_insert(db, "ix", J("{'name':'ada'}"), NULL), NEXUS_DUPLICATE_KEY);
    CHECK_CONTAINS(nexus_errmsg(), "name_1");
    CHECK_COUNT(db, "ix", NULL, N_PEOPLE);
    CHECK_ERR(nexus_update(db, "ix", J("{'_id':'bob'}"), J("{'$set':{'name':'ada'}}"), 0, &matched, &modified),
              NEXUS_DUPLICATE_KEY);
    CHECK_COUNT(db, "ix", J("{'name':'bob'}"), 1);
    /* Bad input. */
    CHECK_ERR(nexus_create_index(NULL, "ix", "{\"a\":1}", NULL, NULL), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_create_index(db, NULL, "{\"a\":1}", NULL, NULL), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_create_index(db, "ix", NULL, NULL, NULL), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_create_index(db, "ix", "{\"a\":1", NULL, NULL), NEXUS_PARSE);
    CHECK_ERR(nexus_create_index(db, "ix", "{\"a\":2}", NULL, NULL), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_create_index(db, "ix", "{\"a\":1}", "{\"bogus\":1}", NULL),
              NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_create_index(db, "ix", "{\"a\":\"\xff\"}", NULL, NULL), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_list_indexes(db, "ix", NULL), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_list_indexes(db, "no_such", &out), NEXUS_NO_COLLECTION);
    CHECK_ERR(nexus_explain(db, "ix", "{", NULL, &out), NEXUS_PARSE);
    CHECK_ERR(nexus_explain(db, "ix", NULL, "{\"hint\":\"nope\"}", &out), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_drop_index(db, "ix", "_id_"), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_drop_index(db, "ix", "nope"), NEXUS_NOT_FOUND);
    CHECK_ERR(nexus_drop_index(db, "ix", NULL), NEXUS_INVALID_ARGUMENT);
    /* Drop, then the collection scan answers the same. */
    CHECK_OK(nexus_drop_index(db, "ix", "addr.city_1"));
    CHECK_NAMES(db, "ix", J("{'addr.city':'London'}"), J("{'sort':{'name':1}}"), "ada,cy");
    CHECK_OK(nexus_drop_collection(db, "ix"));
}

/* After every connection is closed: reopen, read-only, and another process may open. */
static void test_reopen(void)
{
    const char *path = path_in_dir("main.db");
    nexus_db *db = NULL;
    char *out = NULL;
    uint64_t n = 0, m = 0;
    section("reopen, read_only, lock released");

    CHECK(run_child_open(path, NEXUS_OK) == 0);

    CHECK_OK(nexus_open(path, test_options(NULL), &db));
    if (!db)
        return;
    CHECK_COUNT(db, "people", NULL, N_PEOPLE);
    CHECK_GET(db, "people", "ada", J(PEOPLE[0]));
    CHECK_COUNT(db, "many", NULL, 3);
    CHECK_COUNT(db, "upd", J("{'seen':true}"), N_PEOPLE);
    CHECK_GET(db, "crud", "types",
              J("{'_id':'types','i':36,'l':9007199254740993,'d':1.5,'d2':2.0,"
                "'neg':-7,'t':true,'f':false,'z':null,'arr':[1,[2,3],{'k':'v'}],"
                "'s':'caf\xc3\xa9 \xe2\x98\x83 \xf0\x9d\x84\x9e','esc':'a\\\"b\\\\c\\n'}"));
    CHECK_OK(nexus_list_collections(db, &out));
    CHECK(out != NULL && strstr(out, "\"auto_created\"") != NULL);
    nexus_free(out);
    out = NULL;
    CHECK_OK(nexus_close(db));

    db = NULL;
    CHECK_OK(nexus_open(path, test_options(J("{'read_only':true}")), &db));
    if (!db)
        return;
    CHECK_COUNT(db, "people", NULL, N_PEOPLE);
    CHECK_ERR(nexus_insert(db, "people", "{}", NULL), NEXUS_READONLY);
    CHECK_ERR(nexus_update(db, "people", "{}", J("{'$set':{'x':1}}"), NEXUS_MULTI, &n, &m),
              NEXUS_READONLY);
    CHECK_ERR(nexus_delete(db, "people", "{}", NEXUS_MULTI, &n), NEXUS_READONLY);
    CHECK_ERR(nexus_create_collection(db, "ro", NULL), NEXUS_READONLY);
    CHECK_COUNT(db, "people", NULL, N_PEOPLE);
    CHECK_OK(nexus_close(db));
}

/* ------------------------------------------------------------------------------------
 * main
 * ---------------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Keys and signatures (#20): keygen, public key, sign/verify in memory and of files, and
 * the encryption functions this build does not have yet (NEXUS_UNSUPPORTED, not success).
 * Encryption at rest itself: test_encryption. */
static void test_signatures(nexus_db *db)
{
    char *priv = NULL, *pub = NULL, *pub2 = NULL, *sig = NULL;
    const char *msg = "signed bytes";
    section("signatures");
    CHECK_OK(nexus_keygen(NULL, &priv, &pub));
    CHECK(priv && strstr(priv, "BEGIN PRIVATE KEY"));
    CHECK(pub && strstr(pub, "BEGIN PUBLIC KEY"));
    CHECK_OK(nexus_public_key(priv, &pub2));
    CHECK(pub2 && pub && strcmp(pub, pub2) == 0);
    CHECK_OK(nexus_sign(priv, (const uint8_t *)msg, strlen(msg), &sig));
    CHECK_OK(nexus_verify(pub, (const uint8_t *)msg, strlen(msg), sig));
    CHECK_RC(nexus_verify(pub, (const uint8_t *)"signed byteS", strlen(msg), sig), NEXUS_CRYPTO);
    CHECK_RC(nexus_verify(pub, (const uint8_t *)msg, strlen(msg), "AAAA"), NEXUS_CRYPTO);
    CHECK_RC(nexus_sign(pub, (const uint8_t *)msg, strlen(msg), &sig), NEXUS_INVALID_ARGUMENT);
    CHECK_RC(nexus_sign(priv, NULL, 3, &sig), NEXUS_INVALID_ARGUMENT);
    CHECK_RC(nexus_keygen("rsa", &priv, &pub), NEXUS_INVALID_ARGUMENT);
    CHECK_RC(nexus_keygen("ml-kem-768", &priv, &pub), NEXUS_UNSUPPORTED);
    CHECK_RC(nexus_keygen(NULL, NULL, &pub), NEXUS_INVALID_ARGUMENT);

    const char *file = path_in_dir("signed.txt");
    FILE *f = fopen(file, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fputs("line one\nline two\n", f);
        fclose(f);
    }
    CHECK_RC(nexus_verify_file(file, pub), NEXUS_CRYPTO); /* no .sig yet */
    CHECK_OK(nexus_sign_file(file, priv));
    CHECK_OK(nexus_verify_file(file, pub));
    f = fopen(file, "a");
    if (f != NULL) {
        fputs("appended\n", f);
        fclose(f);
    }
    CHECK_RC(nexus_verify_file(file, pub), NEXUS_CRYPTO);

    CHECK_RC(nexus_rekey(db), NEXUS_INVALID_ARGUMENT); /* a plain database */
    /* backup_with: a plain copy (decrypt of a plain database), a signed copy. */
    if (test_storage() != NULL && strcmp(test_storage(), "memlog") == 0) {
        CHECK_RC(nexus_backup_with(db, path_in_dir("plain-copy.db"), "{\"decrypt\":true}"), NEXUS_UNSUPPORTED);
        CHECK(access(path_in_dir("plain-copy.db"), F_OK) != 0);
    } else {
        CHECK_RC(nexus_backup_with(db, path_in_dir("plain-copy.db"), "{\"decrypt\":true}"), NEXUS_OK);
        CHECK(access(path_in_dir("plain-copy.db"), F_OK) == 0);
    }
    {
        char opts[4096];
        size_t at = (size_t)snprintf(opts, sizeof opts, "{\"sign_key\":\"");
        for (const char *p = priv; *p && at + 4 < sizeof opts; p++) {
            if (*p == '\n') {
                opts[at++] = '\\';
                opts[at++] = 'n';
            } else {
                opts[at++] = *p;
            }
        }
        snprintf(opts + at, sizeof opts - at, "\"}");
        if (test_storage() != NULL && strcmp(test_storage(), "memlog") == 0) {
            /* memlog has no online backup */
            CHECK_RC(nexus_backup_with(db, path_in_dir("signed-backup.db"), opts), NEXUS_UNSUPPORTED);
        } else {
            CHECK_OK(nexus_backup_with(db, path_in_dir("signed-backup.db"), opts));
            CHECK_OK(nexus_verify_file(path_in_dir("signed-backup.db"), pub));
        }
    }
    nexus_free(priv);
    nexus_free(pub);
    nexus_free(pub2);
    nexus_free(sig);
}

/* ------------------------------------------------------------------------------------
 * Encryption at rest (#20) through the C ABI
 * ---------------------------------------------------------------------------------- */

/* Open options {"storage":STORAGE,"encryption_key":PEM} (the PEM JSON-escaped: newlines
 * as \n), each member left out when NULL. This section names the storage itself ("wasp"):
 * encryption is a property of the wasp engine (memlog with a key is NEXUS_UNSUPPORTED,
 * checked below), so the harness's memlog run tests the same thing. malloc'd; free(). */
static char *key_options(const char *storage, const char *pem);

/* {"encrypt_to":["<pem, JSON-escaped>"]} (nexus_backup_with). */
static char *encrypt_to_options(const char *pem)
{
    char *k = key_options(NULL, pem); /* {"encryption_key":"..."} */
    const char *value = k + strlen("{\"encryption_key\":");
    size_t n = strlen(value) - 1; /* without the closing brace */
    char *out = xmalloc(n + 32);
    snprintf(out, n + 32, "{\"encrypt_to\":[%.*s]}", (int)n, value);
    free(k);
    return out;
}

static char *key_options(const char *storage, const char *pem)
{
    sbuf b = {0};
    sb_puts(&b, "{");
    if (storage != NULL) {
        sb_puts(&b, "\"storage\":\"");
        sb_puts(&b, storage);
        sb_puts(&b, pem != NULL ? "\"," : "\"");
    }
    if (pem != NULL) {
        sb_puts(&b, "\"encryption_key\":\"");
        for (; *pem; pem++) {
            char esc[8];
            unsigned char c = (unsigned char)*pem;
            if (c == '"' || c == '\\') {
                esc[0] = '\\';
                esc[1] = (char)c;
                sb_add(&b, esc, 2);
            } else if (c == '\n') {
                sb_puts(&b, "\\n");
            } else if (c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                sb_puts(&b, esc);
            } else {
                sb_add(&b, (const char *)&c, 1);
            }
        }
        sb_puts(&b, "\"");
    }
    sb_puts(&b, "}");
    return b.p;
}

/* The bytes of the file at `path` (NULL and *len 0 when it does not exist). malloc'd. */
static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *p = NULL;
    size_t cap = 0, n;
    *len = 0;
    if (f == NULL)
        return NULL;
    for (;;) {
        if (*len == cap) {
            unsigned char *q;
            cap = cap ? cap * 2 : 65536;
            q = realloc(p, cap);
            if (q == NULL) {
                fprintf(stderr, "out of memory\n");
                exit(2);
            }
            p = q;
        }
        n = fread(p + *len, 1, cap - *len, f);
        if (n == 0)
            break;
        *len += n;
    }
    fclose(f);
    return p;
}

/* Whether `needle` occurs anywhere in the file at `path` (a missing file holds nothing). */
static int file_contains(const char *path, const char *needle, size_t *size)
{
    size_t len, i, nlen = strlen(needle);
    unsigned char *p = read_file(path, &len);
    int found = 0;
    for (i = 0; p != NULL && nlen <= len && i + nlen <= len && !found; i++)
        found = memcmp(p + i, needle, nlen) == 0;
    free(p);
    if (size != NULL)
        *size = len;
    return found;
}

#define ENC_MARKER "zq7MARKERxv" /* in values, a field name, a collection and an index name */

/* No byte of NAME.db or NAME.wasp holds the marker; `when` names the moment. */
static void check_no_marker(const char *db_path, const char *when)
{
    char wasp[700];
    size_t db_size = 0, wasp_size = 0;
    int in_db, in_wasp;
    snprintf(wasp, sizeof wasp, "%.*s.wasp", (int)(strlen(db_path) - 3), db_path);
    in_db = file_contains(db_path, ENC_MARKER, &db_size);
    in_wasp = file_contains(wasp, ENC_MARKER, &wasp_size);
    if (!CHECK(!in_db) || !CHECK(!in_wasp))
        fprintf(stderr, "    (%s: marker in %s)\n", when, in_db ? db_path : wasp);
    /* Something was written at all (else "no marker" proves nothing). */
    if (!CHECK(db_size + wasp_size > 4096))
        fprintf(stderr, "    (%s: .db %zu bytes, .wasp %zu bytes)\n", when, db_size, wasp_size);
}

static void test_encryption(void)
{
    char path[600]; /* kept: path_in_dir reuses a ring of 8 buffers */
    snprintf(path, sizeof path, "%s", path_in_dir("enc.db"));
    char *priv_a = NULL, *pub_a = NULL, *priv_b = NULL, *pub_b = NULL, *out = NULL;
    char *opt_a, *opt_b, *opt_none, *opt_pub;
    nexus_db *db = NULL, *db2 = NULL;
    char doc[256];
    int i;
    section("encryption at rest");

    CHECK_OK(nexus_keygen(NULL, &priv_a, &pub_a));
    CHECK_OK(nexus_keygen(NULL, &priv_b, &pub_b));
    if (!priv_a || !pub_a || !priv_b || !pub_b)
        goto out;
    opt_a = key_options("wasp", priv_a);
    opt_b = key_options("wasp", priv_b);
    opt_none = key_options("wasp", NULL);
    opt_pub = key_options("wasp", pub_a);

    /* A new file opened with a key is created encrypted. */
    CHECK_OK(nexus_open(path, opt_a, &db));
    if (db == NULL)
        goto free_opts;
    for (i = 0; i < 200; i++) {
        snprintf(doc, sizeof doc,
                 "{\"_id\":%d,\"note\":\"secret " ENC_MARKER " %d\",\"" ENC_MARKER "\":%d}", i,
                 i, i);
        CHECK_OK(nexus_insert(db, "c_" ENC_MARKER, doc, NULL));
    }
    CHECK_OK(nexus_create_index(db, "c_" ENC_MARKER, "{\"" ENC_MARKER "\":1}",
                                "{\"name\":\"ix_" ENC_MARKER "\"}", NULL));
    CHECK_OK(nexus_stats(db, &out));
    CHECK_CONTAINS(out, "\"encrypted\":true");
    /* The cipher this machine picks for a new file: AES-256-GCM (format 8) with AES
     * instructions, XChaCha20-Poly1305 (format 7) without. */
    CHECK(out != NULL &&
          ((strstr(out, "\"format_version\":8") && strstr(out, "\"cipher\":\"aes-256-gcm\"")) ||
           (strstr(out, "\"format_version\":7") &&
            strstr(out, "\"cipher\":\"xchacha20-poly1305\""))));
    CHECK(out != NULL && strstr(out, "PRIVATE") == NULL); /* no key material in stats */
    nexus_free(out);
    out = NULL;
    check_no_marker(path, "open, before checkpoint");
    CHECK_OK(nexus_checkpoint(db));
    check_no_marker(path, "after checkpoint");

    /* Another connection of this process must present a key of its own. */
    CHECK_ERR(nexus_open(path, opt_none, &db2), NEXUS_CRYPTO);
    CHECK(db2 == NULL);
    CHECK_ERR(nexus_open(path, opt_b, &db2), NEXUS_CRYPTO);
    CHECK(db2 == NULL);
    CHECK_OK(nexus_close(db));
    db = NULL;
    check_no_marker(path, "closed");

    /* Reopened: no key, another key, a public key in place of the private one. */
    CHECK_ERR(nexus_open(path, opt_none, &db), NEXUS_CRYPTO);
    CHECK(strstr(nexus_errmsg(), "encrypted") != NULL);
    CHECK(db == NULL);
    CHECK_ERR(nexus_open(path, NULL, &db), NEXUS_CRYPTO);
    CHECK(db == NULL);
    CHECK_ERR(nexus_open(path, opt_b, &db), NEXUS_CRYPTO);
    CHECK(strstr(nexus_errmsg(), "no key slot") != NULL);
    CHECK(db == NULL);
    CHECK_ERR(nexus_open(path, opt_pub, &db), NEXUS_INVALID_ARGUMENT);
    CHECK(db == NULL);
    CHECK_OK(nexus_open(path, opt_a, &db));
    if (db == NULL)
        goto free_opts;
    CHECK_COUNT(db, "c_" ENC_MARKER, NULL, 200);
    CHECK_GET(db, "c_" ENC_MARKER, "7",
              "{\"_id\":7,\"note\":\"secret " ENC_MARKER " 7\",\"" ENC_MARKER "\":7}");
    CHECK_COUNT(db, "c_" ENC_MARKER, "{\"" ENC_MARKER "\":{\"$gte\":150}}", 50);

    /* A read-only connection cannot change the recipients. */
    {
        size_t n = strlen(opt_a);
        char *ro = xmalloc(n + 32);
        snprintf(ro, n + 32, "{\"read_only\":true,%s", opt_a + 1);
        CHECK_OK(nexus_open(path, ro, &db2));
        if (db2 != NULL) {
            CHECK_COUNT(db2, "c_" ENC_MARKER, NULL, 200);
            CHECK_ERR(nexus_add_key(db2, pub_b), NEXUS_READONLY);
            CHECK_ERR(nexus_remove_key(db2, pub_a), NEXUS_READONLY);
            CHECK_ERR(nexus_rekey(db2), NEXUS_READONLY);
            CHECK_OK(nexus_close(db2));
            db2 = NULL;
        }
        free(ro);
    }

    /* Recipients. */
    CHECK_ERR(nexus_remove_key(db, pub_a), NEXUS_INVALID_ARGUMENT); /* the last key */
    CHECK(strstr(nexus_errmsg(), "last key") != NULL);
    CHECK_ERR(nexus_remove_key(db, pub_b), NEXUS_INVALID_ARGUMENT); /* not a recipient */
    CHECK_ERR(nexus_add_key(db, priv_b), NEXUS_INVALID_ARGUMENT);   /* not a public key */
    CHECK_ERR(nexus_add_key(db, "not a key"), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_add_key(db, NULL), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_add_key(NULL, pub_b), NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_remove_key(NULL, pub_b), NEXUS_INVALID_ARGUMENT);
    CHECK_OK(nexus_begin(db));
    CHECK_ERR(nexus_add_key(db, pub_b), NEXUS_TXN); /* not inside a transaction */
    CHECK_OK(nexus_rollback(db));
    CHECK_OK(nexus_add_key(db, pub_b));
    CHECK_OK(nexus_add_key(db, pub_b)); /* again: changes nothing */
    CHECK_OK(nexus_open(path, opt_b, &db2));
    if (db2 != NULL) {
        CHECK_COUNT(db2, "c_" ENC_MARKER, NULL, 200);
        CHECK_OK(nexus_close(db2));
        db2 = NULL;
    }
    CHECK_OK(nexus_remove_key(db, pub_a));
    CHECK_ERR(nexus_remove_key(db, pub_b), NEXUS_INVALID_ARGUMENT); /* now B's is the last */
    CHECK(strstr(nexus_errmsg(), "last key") != NULL);

    /* A new data key: every page rewritten, B (the one recipient) still opens it. */
    CHECK_ERR(nexus_rekey(NULL), NEXUS_INVALID_ARGUMENT);
    CHECK_OK(nexus_begin(db));
    CHECK_ERR(nexus_rekey(db), NEXUS_TXN);
    CHECK_OK(nexus_rollback(db));
    CHECK_OK(nexus_rekey(db));
    CHECK_COUNT(db, "c_" ENC_MARKER, NULL, 200);
    check_no_marker(path, "after rekey");

    /* Copies under other keys: encrypt_to (a fresh data key for A), decrypt (plain). */
    CHECK_ERR(nexus_backup_with(db, path_in_dir("enc-copy.db"), "{\"encrypt_to\":[]}"),
              NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_backup_with(db, path_in_dir("enc-copy.db"), "{\"encrypt_to\":\"x\"}"),
              NEXUS_INVALID_ARGUMENT);
    CHECK_ERR(nexus_backup_with(db, path_in_dir("enc-copy.db"),
                                "{\"encrypt_to\":[\"x\"],\"decrypt\":true}"),
              NEXUS_INVALID_ARGUMENT);
    CHECK(access(path_in_dir("enc-copy.db"), F_OK) != 0); /* nothing written in its place */
    {
        char *to_a = encrypt_to_options(pub_a);
        CHECK_OK(nexus_backup_with(db, path_in_dir("enc-copy.db"), to_a));
        free(to_a);
        CHECK_OK(nexus_backup_with(db, path_in_dir("dec-copy.db"), "{\"decrypt\":true}"));
        check_no_marker(path_in_dir("enc-copy.db"), "encrypt_to copy");
        CHECK_OK(nexus_open(path_in_dir("enc-copy.db"), opt_a, &db2));
        if (db2 != NULL) {
            CHECK_COUNT(db2, "c_" ENC_MARKER, NULL, 200);
            CHECK_OK(nexus_close(db2));
            db2 = NULL;
        }
        CHECK_ERR(nexus_open(path_in_dir("enc-copy.db"), opt_b, &db2), NEXUS_CRYPTO);
        CHECK_OK(nexus_open(path_in_dir("dec-copy.db"), opt_none, &db2));
        if (db2 != NULL) {
            CHECK_COUNT(db2, "c_" ENC_MARKER, NULL, 200);
            CHECK_OK(nexus_close(db2));
            db2 = NULL;
        }
    }

    /* A backup of an encrypted database is encrypted to the same keys. */
    CHECK_OK(nexus_backup(db, path_in_dir("enc-backup.db")));
    CHECK_OK(nexus_close(db));
    db = NULL;
    check_no_marker(path, "after removing A's key");
    check_no_marker(path_in_dir("enc-backup.db"), "backup");
    CHECK_ERR(nexus_open(path, opt_a, &db), NEXUS_CRYPTO); /* A's key was removed */
    CHECK(db == NULL);
    CHECK_OK(nexus_open(path, opt_b, &db));
    if (db != NULL) {
        CHECK_COUNT(db, "c_" ENC_MARKER, NULL, 200);
        CHECK_OK(nexus_close(db));
        db = NULL;
    }
    CHECK_ERR(nexus_open(path_in_dir("enc-backup.db"), opt_none, &db), NEXUS_CRYPTO);
    CHECK(db == NULL);
    CHECK_OK(nexus_open(path_in_dir("enc-backup.db"), opt_b, &db));
    if (db != NULL) {
        CHECK_COUNT(db, "c_" ENC_MARKER, NULL, 200);
        CHECK_OK(nexus_close(db));
        db = NULL;
    }

    /* A plain database: a key at open and key changes are refused, nothing encrypted. */
    CHECK_OK(nexus_open(path_in_dir("enc-plain.db"), opt_none, &db));
    if (db != NULL) {
        CHECK_ERR(nexus_add_key(db, pub_a), NEXUS_INVALID_ARGUMENT);
        CHECK_ERR(nexus_remove_key(db, pub_a), NEXUS_INVALID_ARGUMENT);
        CHECK_ERR(nexus_rekey(db), NEXUS_INVALID_ARGUMENT);
        CHECK_OK(nexus_close(db));
        db = NULL;
    }
    CHECK_ERR(nexus_open(path_in_dir("enc-plain.db"), opt_a, &db), NEXUS_INVALID_ARGUMENT);
    CHECK(strstr(nexus_errmsg(), "not encrypted") != NULL);
    CHECK(db == NULL);

    /* Engines without encryption, and a malformed key. */
    {
        char *memory = key_options(NULL, priv_a), *memlog = key_options("memlog", priv_a);
        CHECK_ERR(nexus_open(":memory:", memory, &db), NEXUS_UNSUPPORTED);
        CHECK(db == NULL);
        CHECK_ERR(nexus_open(path_in_dir("enc-memlog.db"), memlog, &db), NEXUS_UNSUPPORTED);
        CHECK(db == NULL);
        CHECK(access(path_in_dir("enc-memlog.db"), F_OK) != 0);
        free(memory);
        free(memlog);
    }
    CHECK_ERR(nexus_open(path_in_dir("enc-x.db"), "{\"encryption_key\":\"x\"}", &db),
              NEXUS_INVALID_ARGUMENT);
    CHECK(db == NULL);
    CHECK(access(path_in_dir("enc-x.db"), F_OK) != 0);

free_opts:
    free(opt_a);
    free(opt_b);
    free(opt_none);
    free(opt_pub);
out:
    nexus_free(priv_a);
    nexus_free(pub_a);
    nexus_free(priv_b);
    nexus_free(pub_b);
}

int main(int argc, char **argv)
{
    const char *tmp = getenv("TMPDIR");
    nexus_db *db = NULL;

    if (argc == 4 && strcmp(argv[1], "--child-open") == 0)
        return child_open(argv[2], atoi(argv[3]));
    /* The path to exec for the child process: argv[0] if it is a path, else /proc. */
    g_self = argv[0];
    if (strchr(g_self, '/') == NULL) {
        static char self[4096];
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len > 0) {
            self[len] = '\0';
            g_self = self;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    snprintf(g_dir, sizeof g_dir, "%s/nexus-ctest-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(g_dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    printf("NexusLite %s, database files in %s, storage option: %s\n", nexus_version(), g_dir,
           test_storage() ? test_storage() : "(none: the default engine)");

    test_version_and_codes();
    test_cursors_and_memory();

    CHECK_OK(nexus_open(path_in_dir("main.db"), test_options(NULL), &db));
    if (db != NULL) {
        seed_people(db, "people");
        test_crud(db);
        test_filters(db);
        test_find_options(db);
        test_find_one_distinct(db);
        test_update(db);
        test_upsert(db);
        test_delete(db);
        test_find_one_and(db);
        test_collections(db);
        test_insert_many(db);
        test_bson(db);
        test_bad_input(db);
        test_errmsg_per_thread(db);
        test_files(db);
        test_maintenance(db);
        test_indexes(db);
        test_vector_search(db);
        test_signatures(db);
        CHECK_OK(nexus_close(db));
        test_reopen();
    }
    test_encryption();
    test_transactions();
    test_threads();

    if (getenv("NEXUS_TEST_KEEP") == NULL)
        nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    else
        printf("kept %s\n", g_dir);

    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
