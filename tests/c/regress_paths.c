/*
 * Regression: long dotted paths and deep nesting overflowed the stack (SIGSEGV in the host).
 *
 * A "$set" of "x.x.x..." with 12,000 components crashed an 8 MiB main thread in the
 * update code (3,000 on a 2 MiB thread, 800 on 512 KiB); so did $push, a $rename target,
 * an upsert's filter key and nexus_create_index with a 100,000-component key, and a
 * $rename onto 200,000 components ran for over 20 s. Everything here runs on a thread
 * with a 256 KiB stack, the size game engines and firmware hosts give: every bad input
 * must come back as NEXUS_INVALID_ARGUMENT naming the limit (paths: 100 components;
 * documents: 100 levels; filters, updates and JSON text: 120 levels; $and/$or/$nor/$not/
 * $elemMatch: 100 levels), the legal worst cases must work there, and the database must
 * still open and work afterwards.
 */
#include "regress.h"

#include <pthread.h>
#include <stdint.h>

#define SMALL_STACK (256 * 1024)

static nexus_db *g_db;

/* ---- text and bytes built without recursion (all malloc'd; the caller frees) ---- */

/* "x.x.x..." with n components. */
static char *dotted(size_t n)
{
    char *s = malloc(2 * n + 1);
    size_t i;
    if (s == NULL)
        abort();
    for (i = 0; i < n; i++) {
        s[2 * i] = 'x';
        s[2 * i + 1] = '.';
    }
    s[2 * n - 1] = '\0';
    return s;
}

/* prefix + open*n + leaf + close*n + suffix */
static char *nest(const char *prefix, const char *open, size_t n, const char *leaf,
                  const char *close, const char *suffix)
{
    size_t lo = strlen(open), lc = strlen(close);
    size_t len = strlen(prefix) + n * (lo + lc) + strlen(leaf) + strlen(suffix);
    char *s = malloc(len + 1), *p;
    size_t i;
    if (s == NULL)
        abort();
    p = s;
    p += sprintf(p, "%s", prefix);
    for (i = 0; i < n; i++) {
        memcpy(p, open, lo);
        p += lo;
    }
    p += sprintf(p, "%s", leaf);
    for (i = 0; i < n; i++) {
        memcpy(p, close, lc);
        p += lc;
    }
    sprintf(p, "%s", suffix);
    return s;
}

/* printf into a fresh buffer. */
static char *fmt2(const char *f, const char *a, const char *b)
{
    size_t len = strlen(f) + strlen(a) + (b ? strlen(b) : 0) + 1;
    char *s = malloc(len);
    if (s == NULL)
        abort();
    snprintf(s, len, f, a, b ? b : "");
    return s;
}

static void put_i32(uint8_t *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    p[0] = (uint8_t)(u & 0xff);
    p[1] = (uint8_t)((u >> 8) & 0xff);
    p[2] = (uint8_t)((u >> 16) & 0xff);
    p[3] = (uint8_t)((u >> 24) & 0xff);
}

/* BSON of `levels` documents nested as {"a": {"a": ... {}}}; *len gets its size. */
static uint8_t *deep_bson(size_t levels, size_t *len)
{
    size_t total = 5 + 8 * (levels - 1), i;
    uint8_t *b = malloc(total);
    if (b == NULL)
        abort();
    for (i = 0; i + 1 < levels; i++) {
        uint8_t *p = b + 7 * i;
        put_i32(p, (int32_t)(5 + 8 * (levels - 1 - i)));
        p[4] = 0x03;
        p[5] = 'a';
        p[6] = 0;
    }
    put_i32(b + 7 * (levels - 1), 5);
    memset(b + 7 * (levels - 1) + 4, 0, 1 + (levels - 1));
    *len = total;
    return b;
}

/* {"a": <code "f" with scope `scope`>} */
static uint8_t *code_with_scope(const uint8_t *scope, size_t scope_len, size_t *len)
{
    size_t cws = 4 + 4 + 2 + scope_len, total = 4 + 3 + cws + 1;
    uint8_t *b = malloc(total);
    if (b == NULL)
        abort();
    put_i32(b, (int32_t)total);
    b[4] = 0x0F;
    b[5] = 'a';
    b[6] = 0;
    put_i32(b + 7, (int32_t)cws);
    put_i32(b + 11, 2);
    b[15] = 'f';
    b[16] = 0;
    memcpy(b + 17, scope, scope_len);
    b[total - 1] = 0;
    *len = total;
    return b;
}

/* ---- checks ---------------------------------------------------------------------- */

#define PATH_LIMIT "a path may have at most 100"

static int update(const char *filter, const char *upd, int flags)
{
    uint64_t matched = 0, modified = 0;
    return nexus_update(g_db, "c", filter, upd, flags, &matched, &modified);
}

static int count(const char *filter, uint64_t *n)
{
    return nexus_count(g_db, "c", filter, n);
}

static int find_all(const char *filter, const char *options, int *rows)
{
    nexus_cursor *cur = NULL;
    const char *row;
    int rc = nexus_find(g_db, "c", filter, options, &cur), step;
    *rows = 0;
    if (rc != NEXUS_OK)
        return rc;
    while ((step = nexus_cursor_next(cur, &row)) == NEXUS_ROW)
        (*rows)++;
    nexus_cursor_close(cur);
    return step == NEXUS_DONE ? NEXUS_OK : step;
}

static void long_paths(void)
{
    static const char *const ops[][2] = {
        {"$set", "1"},       {"$unset", "\"\""},     {"$inc", "1"},   {"$mul", "2"},
        {"$min", "0"},       {"$max", "9"},          {"$push", "1"},  {"$addToSet", "1"},
        {"$pop", "1"},       {"$pull", "1"},         {"$pullAll", "[1]"},
        {"$currentDate", "true"}, {"$setOnInsert", "1"},
    };
    char *long_path = dotted(20000), *huge = dotted(200000), *key = dotted(100000);
    char *over = dotted(101), *doc, *doc2;
    size_t i;
    uint64_t n = 0;
    int rows = 0;
    char *out = NULL;

    section("update paths longer than documents nest (256 KiB stack)");
    for (i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        char head[64];
        snprintf(head, sizeof head, "{\"%s\":{\"%%s\":%s}}", ops[i][0], ops[i][1]);
        doc = fmt2(head, long_path, NULL);
        CHECK_RC(update("{\"_id\":1}", doc, 0), NEXUS_INVALID_ARGUMENT);
        CHECK_ERRMSG_HAS(PATH_LIMIT);
        CHECK_RC(update("{\"_id\":5}", doc, NEXUS_UPSERT), NEXUS_INVALID_ARGUMENT);
        free(doc);
        doc = fmt2(head, over, NULL);
        CHECK_RC(update("{\"_id\":1}", doc, 0), NEXUS_INVALID_ARGUMENT);
        CHECK_ERRMSG_HAS(PATH_LIMIT);
        free(doc);
    }
    doc = fmt2("{\"$rename\":{\"%s\":\"b\"}}", long_path, NULL);
    CHECK_RC(update("{\"_id\":1}", doc, 0), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS(PATH_LIMIT);
    free(doc);
    doc = fmt2("{\"$rename\":{\"n\":\"%s\"}}", long_path, NULL);
    CHECK_RC(update("{\"_id\":1}", doc, 0), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS(PATH_LIMIT);
    free(doc);
    /* Used to run for over 20 s; refused when the update is parsed. */
    doc = fmt2("{\"$rename\":{\"n\":\"%s\"}}", huge, NULL);
    CHECK_RC(update("{\"_id\":1}", doc, 0), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS(PATH_LIMIT);
    free(doc);
    doc = fmt2("{\"$push\":{\"arr\":{\"$each\":[3],\"$sort\":{\"%s\":1}}}}", long_path, NULL);
    CHECK_RC(update("{\"_id\":1}", doc, 0), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS(PATH_LIMIT);
    free(doc);

    section("an upsert's filter keys seed the new document");
    doc = fmt2("{\"%s\":1}", long_path, NULL);
    CHECK_RC(update(doc, "{\"$set\":{\"b\":1}}", NEXUS_UPSERT), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS(PATH_LIMIT);
    CHECK_RC(nexus_find_one_and_update(g_db, "c", doc, "{\"$set\":{\"b\":1}}",
                                       "{\"upsert\":true}", &out),
             NEXUS_INVALID_ARGUMENT);
    CHECK(out == NULL);

    section("filters, projections, sorts, distinct, index keys");
    CHECK_RC(count(doc, &n), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS(PATH_LIMIT);
    CHECK_RC(find_all(doc, NULL, &rows), NEXUS_INVALID_ARGUMENT);
    CHECK_RC(nexus_delete(g_db, "c", doc, NEXUS_MULTI, &n), NEXUS_INVALID_ARGUMENT);
    CHECK_RC(nexus_distinct(g_db, "c", long_path, NULL, &out), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS(PATH_LIMIT);
    CHECK(out == NULL);
    doc2 = fmt2("{\"sort\":{\"%s\":1}}", long_path, NULL);
    CHECK_RC(find_all("{}", doc2, &rows), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS(PATH_LIMIT);
    free(doc2);
    doc2 = fmt2("{\"projection\":{\"%s\":1}}", long_path, NULL);
    CHECK_RC(find_all("{}", doc2, &rows), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS(PATH_LIMIT);
    free(doc2);
    free(doc);
    doc = fmt2("{\"%s\":1}", key, NULL);
    CHECK_RC(nexus_create_index(g_db, "c", doc, NULL, &out), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS(PATH_LIMIT);
    CHECK(out == NULL);
    free(doc);
    doc = fmt2("{\"%s\":1}", over, NULL);
    CHECK_RC(nexus_create_index(g_db, "c", doc, NULL, &out), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS(PATH_LIMIT);
    free(doc);

    free(long_path);
    free(huge);
    free(key);
    free(over);
}

static void deep_filters(void)
{
    static const char *const logical[] = {"$and", "$or", "$nor"};
    size_t i;
    uint64_t n = 0;
    int rows = 0;
    char *f, open[16];

    section("filters nested past their limits");
    for (i = 0; i < 3; i++) {
        snprintf(open, sizeof open, "{\"%s\":[", logical[i]);
        f = nest("", open, 10000, "{\"x\":1}", "]}", "");
        CHECK_RC(count(f, &n), NEXUS_INVALID_ARGUMENT);
        CHECK_ERRMSG_HAS("120 levels");
        CHECK_RC(find_all(f, NULL, &rows), NEXUS_INVALID_ARGUMENT);
        free(f);
    }
    /* Within the nesting limit, beyond the operators' own (MongoDB's 100). */
    f = nest("{\"arr\":", "{\"$not\":", 101, "{\"$gt\":1}", "}", "}");
    CHECK_RC(count(f, &n), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS("at most 100 levels");
    free(f);
    f = nest("{\"arr\":", "{\"$elemMatch\":", 101, "{\"$gt\":1}", "}", "}");
    CHECK_RC(find_all(f, NULL, &rows), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS("at most 100 levels");
    free(f);
    f = nest("{\"arr\":", "{\"$elemMatch\":", 100000, "{\"$gt\":1}", "}", "}");
    CHECK_RC(find_all(f, NULL, &rows), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS("120 levels");
    free(f);
    f = nest("{\"$set\":{\"v\":", "[", 100000, "1", "]", "}}");
    CHECK_RC(update("{\"_id\":1}", f, 0), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS("120 levels");
    free(f);
}

static void deep_documents(void)
{
    char *j, *id = NULL, *out = NULL;
    uint8_t *b, *w;
    size_t len = 0, wlen = 0;
    uint64_t n = 0;

    section("deeply nested JSON and BSON documents");
    j = nest("", "{\"a\":", 100000, "1", "}", "");
    CHECK_RC(nexus_insert(g_db, "c", j, &id), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS("100 levels");
    CHECK(id == NULL);
    CHECK_RC(nexus_insert_ttl(g_db, "c", j, 1000, &id), NEXUS_INVALID_ARGUMENT);
    CHECK_RC(nexus_replace(g_db, "c", "1", j), NEXUS_INVALID_ARGUMENT);
    /* An id given as JSON text is read like any JSON: no such document, no crash. */
    CHECK_RC(nexus_get(g_db, "c", j, &out), NEXUS_NOT_FOUND);
    free(j);
    j = nest("[", "{\"a\":", 100000, "1", "}", "]");
    CHECK_RC(nexus_insert_many(g_db, "c", j, &n), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS("100 levels");
    free(j);
    j = nest("{\"a\":", "[", 100, "1", "]", "}"); /* 101 levels */
    CHECK_RC(nexus_insert(g_db, "c", j, &id), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS("nests deeper than 100 levels");
    free(j);

    b = deep_bson(100000, &len);
    CHECK_RC(nexus_insert_bson(g_db, "c", b, len, &id), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS("100 levels");
    /* A JavaScript code's scope is a document too (decoded by recursion). */
    w = code_with_scope(b, len, &wlen);
    CHECK_RC(nexus_insert_bson(g_db, "c", w, wlen, &id), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS("100 levels");
    free(w);
    free(b);
    b = deep_bson(101, &len);
    CHECK_RC(nexus_insert_bson(g_db, "c", b, len, &id), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS("nests deeper than 100 levels");
    free(b);
    CHECK(id == NULL);
    CHECK_OK(count(NULL, &n));
    CHECK(n == 1);
}

static void legal_worst_cases(void)
{
    char *j, *p, *f, *out = NULL, *id = NULL;
    uint8_t *b;
    size_t len = 0;
    uint64_t n = 0;
    int rows = 0;

    section("the legal worst cases work on the same stack");
    /* A document at the nesting limit, from JSON and from BSON. */
    j = nest("{\"_id\":\"deep\",\"a\":", "{\"a\":", 98, "{\"leaf\":1}", "}", "}");
    CHECK_OK(nexus_insert(g_db, "c", j, &id));
    nexus_free(id);
    id = NULL;
    free(j);
    b = deep_bson(100, &len);
    CHECK_OK(nexus_insert_bson(g_db, "c", b, len, &id));
    nexus_free(id);
    id = NULL;
    free(b);
    CHECK_OK(nexus_get(g_db, "c", "deep", &out));
    CHECK(out != NULL && strlen(out) > 600);
    nexus_free(out);
    out = NULL;
    CHECK_OK(find_all(NULL, NULL, &rows));
    CHECK(rows == 3);
    /* A path of 100 components to the leaf: filter, update, projection, sort, index. */
    p = nest("a.", "a.", 98, "leaf", "", "");
    f = fmt2("{\"%s\":1}", p, NULL);
    CHECK_OK(count(f, &n));
    CHECK(n == 1);
    j = fmt2("{\"$inc\":{\"%s\":1}}", p, NULL);
    CHECK_OK(update("{\"_id\":\"deep\"}", j, 0));
    free(j);
    j = fmt2("{\"projection\":{\"%s\":1},\"sort\":{\"%s\":-1}}", p, p);
    CHECK_OK(find_all(NULL, j, &rows));
    CHECK(rows == 3);
    free(j);
    CHECK_OK(nexus_create_index(g_db, "c", f, NULL, &out));
    nexus_free(out);
    out = NULL;
    CHECK_OK(nexus_distinct(g_db, "c", p, NULL, &out));
    CHECK(out != NULL && strcmp(out, "[2]") == 0);
    nexus_free(out);
    out = NULL;
    free(f);
    free(p);
    p = dotted(100);
    j = fmt2("{\"$set\":{\"%s\":1}}", p, NULL);
    CHECK_OK(update("{\"_id\":1}", j, 0));
    free(j);
    free(p);
    /* Operators at their limit, and a filter at the JSON limit. */
    f = nest("{\"arr\":", "{\"$not\":", 100, "{\"$gt\":1}", "}", "}");
    CHECK_OK(count(f, &n));
    free(f);
    f = nest("{\"arr\":", "{\"$elemMatch\":", 100, "{\"$gt\":1}", "}", "}");
    CHECK_OK(find_all(f, NULL, &rows));
    free(f);
    f = nest("", "{\"$or\":[", 59, "{\"x\":1}", "]}", "");
    CHECK_OK(count(f, &n));
    free(f);
    f = nest("", "{\"a\":", 119, "{\"leaf\":1}", "}", "");
    CHECK_OK(count(f, &n));
    CHECK(n == 0);
    free(f);
    /* At that depth the JSON reader may fall back to its reference reading (a duplicate
     * key replacing a bad wrapper), which used to need more than 256 KiB; a bad wrapper
     * there is a parse error. */
    f = nest("", "{\"a\":", 118, "{\"x\":{\"$oid\":\"bad\"},\"x\":1}", "}", "");
    CHECK_OK(count(f, &n));
    free(f);
    f = nest("", "{\"a\":", 118, "{\"x\":{\"$oid\":\"bad\"}}", "}", "");
    CHECK_RC(count(f, &n), NEXUS_PARSE);
    free(f);
}

static void *on_small_stack(void *arg)
{
    (void)arg;
    long_paths();
    deep_filters();
    deep_documents();
    legal_worst_cases();
    return NULL;
}

int main(void)
{
    pthread_attr_t attr;
    pthread_t t;
    uint64_t n = 0;
    char *id = NULL;

    if (regress_begin("paths") != 0)
        return 2;
    if (!CHECK_OK(nexus_open(path_in_dir("paths.db"), test_options(NULL), &g_db)))
        return regress_end();
    CHECK_OK(nexus_insert(g_db, "c", "{\"_id\":1,\"n\":1,\"arr\":[1,2]}", NULL));

    CHECK(pthread_attr_init(&attr) == 0);
    CHECK(pthread_attr_setstacksize(&attr, SMALL_STACK) == 0);
    CHECK(pthread_create(&t, &attr, on_small_stack, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    pthread_attr_destroy(&attr);

    section("the database still works, and after reopening");
    CHECK_OK(nexus_count(g_db, "c", NULL, &n));
    CHECK(n == 3);
    CHECK_OK(nexus_close(g_db));
    g_db = NULL;
    if (CHECK_OK(nexus_open(path_in_dir("paths.db"), test_options(NULL), &g_db))) {
        CHECK_OK(nexus_count(g_db, "c", NULL, &n));
        CHECK(n == 3);
        CHECK_OK(nexus_insert(g_db, "c", "{\"_id\":\"after\"}", &id));
        CHECK(id != NULL && strcmp(id, "after") == 0);
        nexus_free(id);
        CHECK_OK(nexus_update(g_db, "c", "{\"_id\":1}", "{\"$inc\":{\"n\":1}}", 0, NULL, NULL));
        CHECK_OK(nexus_close(g_db));
    }
    return regress_end();
}
