/* The query-language conformance suite through the C ABI.
 *
 *   conformance FILE.json...
 *
 * Runs every case of the given tests/conformance JSON files (format:
 * tests/conformance/README.md) through nexus_find / nexus_count / nexus_distinct /
 * nexus_update / nexus_delete / nexus_find_one_and_update / nexus_find_one_and_delete /
 * nexus_aggregate, nexus_update_one / nexus_update_many / nexus_replace_one /
 * nexus_insert_many_with / nexus_bulk_write, each case on a fresh in-memory database. The
 * JSON results of the last five are compared without the "errmsg" of their writeErrors
 * (through a projection); a batch whose expected writeErrors are not empty must return an
 * error status and still write its result. Expected and actual results are compared
 * after both pass through the library's own JSON writer (a scratch collection), so
 * formatting differences do not matter while values, field order and document order do.
 * The Rust runner (tests/integration/query_conformance.rs) additionally compares int32 / int64 types,
 * which relaxed Extended JSON does not keep apart.
 *
 * The JSON of the case files is read with a small span scanner below: it finds the
 * members of objects and the elements of arrays and hands their text, unchanged, to
 * the library. Exit status 0 when every case passed; the last line is
 * "conformance (C ABI): N passed, M failed". */
#include <nexus.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p;
    size_t n;
} span;

static const char *ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* Returns the end of the JSON value starting at p (after whitespace), or NULL. */
static const char *skip_value(const char *p, const char *end)
{
    int depth = 0;
    p = ws(p, end);
    if (p >= end)
        return NULL;
    do {
        if (p >= end)
            return NULL;
        if (*p == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\')
                    p++;
            if (p >= end)
                return NULL;
            p++;
        } else if (*p == '{' || *p == '[') {
            depth++;
            p++;
        } else if (*p == '}' || *p == ']') {
            depth--;
            p++;
        } else if (depth == 0) {
            while (p < end && !strchr(",}] \n\r\t", *p))
                p++;
        } else {
            p++;
        }
    } while (depth > 0);
    return p;
}

/* The member `key` of the object `obj`; returns 1 when found. */
static int get(span obj, const char *key, span *out)
{
    const char *end = obj.p + obj.n;
    const char *p = ws(obj.p, end);
    size_t klen = strlen(key);
    if (p >= end || *p != '{')
        return 0;
    p++;
    for (;;) {
        const char *k, *v, *ve;
        size_t klen_found;
        p = ws(p, end);
        if (p >= end || *p == '}')
            return 0;
        k = p;
        p = skip_value(p, end);
        if (!p)
            return 0;
        klen_found = (size_t)(p - k);
        p = ws(p, end);
        if (p >= end || *p != ':')
            return 0;
        v = ws(p + 1, end);
        ve = skip_value(v, end);
        if (!ve)
            return 0;
        if (klen_found == klen + 2 && *k == '"' && strncmp(k + 1, key, klen) == 0) {
            out->p = v;
            out->n = (size_t)(ve - v);
            return 1;
        }
        p = ws(ve, end);
        if (p < end && *p == ',')
            p++;
    }
}

/* Iterates the elements of an array: *cur starts NULL; returns 1 per element. */
static int next_elem(span arr, const char **cur, span *out)
{
    const char *end = arr.p + arr.n;
    const char *p = *cur ? *cur : ws(arr.p, end) + 1;
    const char *e;
    p = ws(p, end);
    if (p < end && *p == ',')
        p = ws(p + 1, end);
    if (p >= end || *p == ']')
        return 0;
    e = skip_value(p, end);
    if (!e)
        return 0;
    out->p = p;
    out->n = (size_t)(e - p);
    *cur = e;
    return 1;
}

static char *dup_span(span s)
{
    char *c = malloc(s.n + 1);
    if (!c)
        abort();
    memcpy(c, s.p, s.n);
    c[s.n] = 0;
    return c;
}

static int span_is(span s, const char *lit)
{
    return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

/* A growable string. */
typedef struct {
    char *s;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        if (!b->s)
            abort();
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

static char failure[4096];

static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(failure, sizeof failure, fmt, ap);
    va_end(ap);
    return 0;
}

static nexus_db *scratch;

/* The library's own rendering of a JSON value (through a stored document). */
static char *normalize(const char *json)
{
    buf b = {0};
    char *out = NULL;
    uint64_t n;
    puts_(&b, "{\"_id\":\"k\",\"v\":");
    puts_(&b, json);
    puts_(&b, "}");
    if (nexus_insert(scratch, "norm", b.s, NULL) != NEXUS_OK ||
        nexus_get(scratch, "norm", "k", &out) != NEXUS_OK) {
        fprintf(stderr, "cannot normalize %s: %s\n", json, nexus_errmsg());
        out = NULL;
    }
    nexus_delete(scratch, "norm", "{\"_id\":\"k\"}", 0, &n);
    free(b.s);
    return out;
}

/* A write result as the library renders it, without the errmsg of its writeErrors. */
static char *normalize_result(const char *json)
{
    buf b = {0};
    char *out = NULL;
    const char *doc;
    uint64_t n;
    nexus_cursor *cur = NULL;
    puts_(&b, "{\"_id\":\"r\",\"v\":");
    puts_(&b, json);
    puts_(&b, "}");
    if (nexus_insert(scratch, "norm", b.s, NULL) == NEXUS_OK &&
        nexus_find(scratch, "norm", "{\"_id\":\"r\"}",
                   "{\"projection\":{\"v.writeErrors.errmsg\":0}}", &cur) == NEXUS_OK &&
        nexus_cursor_next(cur, &doc) == NEXUS_ROW) {
        out = malloc(strlen(doc) + 1);
        if (out)
            strcpy(out, doc);
    } else {
        fprintf(stderr, "cannot normalize %s: %s\n", json, nexus_errmsg());
    }
    nexus_cursor_close(cur);
    nexus_delete(scratch, "norm", "{\"_id\":\"r\"}", 0, &n);
    free(b.s);
    return out;
}

static int same_result(const char *want, const char *got)
{
    char *a = normalize_result(want), *b = normalize_result(got);
    int ok = a && b && strcmp(a, b) == 0;
    if (!ok)
        fail("result: expected %s\n          got      %s", a ? a : want, b ? b : got);
    free(a);
    free(b);
    return ok;
}

static int same_json(const char *want, const char *got, const char *what)
{
    char *a = normalize(want), *b = normalize(got);
    int ok = a && b && strcmp(a, b) == 0;
    if (!ok)
        fail("%s: expected %s\n          got      %s", what, a ? a : want, b ? b : got);
    nexus_free(a);
    nexus_free(b);
    return ok;
}

static char *opt(span c, const char *key)
{
    span s;
    return get(c, key, &s) ? dup_span(s) : NULL;
}

static int flag(span c, const char *key)
{
    span s;
    return get(c, key, &s) && span_is(s, "true");
}

/* Every document of collection coll as a JSON array, optionally without _id. */
static char *contents(nexus_db *db, const char *coll, int without_id)
{
    nexus_cursor *cur = NULL;
    const char *doc;
    buf b = {0};
    int rc, first = 1;
    puts_(&b, "[");
    if (nexus_find(db, coll, NULL, without_id ? "{\"projection\":{\"_id\":0}}" : NULL, &cur) ==
        NEXUS_OK) {
        while ((rc = nexus_cursor_next(cur, &doc)) == NEXUS_ROW) {
            if (!first)
                puts_(&b, ",");
            first = 0;
            puts_(&b, doc);
        }
    }
    nexus_cursor_close(cur);
    puts_(&b, "]");
    return b.s;
}

static int check_after(nexus_db *db, span c)
{
    span after, check, f, cnt, coll_span;
    if (get(c, "after", &after)) {
        char *want = dup_span(after);
        char *coll = get(c, "after_collection", &coll_span)
                         ? dup_span((span){coll_span.p + 1, coll_span.n - 2})
                         : NULL;
        char *got = contents(db, coll ? coll : "c", flag(c, "after_ignores_id"));
        free(coll);
        int ok = same_json(want, got, "collection afterwards");
        free(want);
        free(got);
        if (!ok)
            return 0;
    }
    if (get(c, "check", &check) && get(check, "filter", &f) && get(check, "count", &cnt)) {
        char *filter = dup_span(f), *want = dup_span(cnt);
        uint64_t n = 0;
        int ok = nexus_count(db, "c", filter, &n) == NEXUS_OK &&
                 n == strtoull(want, NULL, 10);
        if (!ok)
            fail("check %s: expected count %s, got %llu", filter, want, (unsigned long long)n);
        free(filter);
        free(want);
        return ok;
    }
    return 1;
}

/* Find options for an expect_ids case: the case's options plus a projection on _id. */
static char *ids_options(const char *options)
{
    buf b = {0};
    const char *end;
    if (!options) {
        puts_(&b, "{\"projection\":{\"_id\":1}}");
        return b.s;
    }
    end = strrchr(options, '}');
    put(&b, options, (size_t)(end - options));
    if (strchr(options, ':'))
        puts_(&b, ",");
    puts_(&b, "\"projection\":{\"_id\":1}}");
    return b.s;
}

/* Runs one case; returns 1 when it passed (else `failure` says why). */
static int run_case(span group, span docs, span c)
{
    nexus_db *db = NULL;
    char *op = opt(c, "op"), *filter = opt(c, "filter"), *options = opt(c, "options");
    char *update = opt(c, "update"), *field = opt(c, "field"), *pipeline = opt(c, "pipeline");
    span colls;
    char *replacement = opt(c, "replacement"), *documents = opt(c, "documents");
    char *operations = opt(c, "operations");
    int write_call = 0, partial = 0;
    char *want_error = opt(c, "error"), *message = opt(c, "message");
    span expect_span, ids_span;
    int has_expect = get(c, "expect", &expect_span);
    int has_ids = get(c, "expect_ids", &ids_span);
    char *expect = has_expect ? dup_span(expect_span) : NULL;
    const char *kind = op ? op + 1 : "find\"";
    buf got = {0};
    int rc = NEXUS_OK, ok = 1;
    uint64_t n1 = 0, n2 = 0;
    char errmsg[1024] = "";

    failure[0] = 0;
    if (nexus_open(":memory:", NULL, &db) != NEXUS_OK) {
        ok = fail("open: %s", nexus_errmsg());
        goto out;
    }
    if (docs.n > 2) {
        char *d = dup_span(docs);
        uint64_t n;
        if (nexus_insert_many(db, "c", d, &n) != NEXUS_OK)
            ok = fail("loading docs: %s", nexus_errmsg());
        free(d);
        if (!ok)
            goto out;
    }
    /* The group's other collections: [{"name": "...", "docs": [...]}]. */
    if (get(group, "collections", &colls)) {
        const char *ccur = NULL;
        span one, name, cdocs;
        while (ok && next_elem(colls, &ccur, &one)) {
            if (get(one, "name", &name) && get(one, "docs", &cdocs) && cdocs.n > 2) {
                char *nm = dup_span((span){name.p + 1, name.n - 2}), *d = dup_span(cdocs);
                uint64_t n;
                if (nexus_insert_many(db, nm, d, &n) != NEXUS_OK)
                    ok = fail("loading collection %s: %s", nm, nexus_errmsg());
                free(nm);
                free(d);
            }
        }
        if (!ok)
            goto out;
    }

    if (!strncmp(kind, "aggregate\"", 10)) {
        nexus_cursor *cur = NULL;
        const char *doc;
        rc = nexus_aggregate(db, "c", pipeline ? pipeline : "[]", options, &cur);
        if (rc != NEXUS_OK)
            snprintf(errmsg, sizeof errmsg, "%s", nexus_errmsg());
        if (rc == NEXUS_OK) {
            int first = 1;
            puts_(&got, "[");
            while ((rc = nexus_cursor_next(cur, &doc)) == NEXUS_ROW) {
                if (!first)
                    puts_(&got, ",");
                first = 0;
                puts_(&got, doc);
            }
            if (rc != NEXUS_DONE)
                snprintf(errmsg, sizeof errmsg, "%s", nexus_errmsg());
            else
                rc = NEXUS_OK;
            puts_(&got, "]");
        }
        nexus_cursor_close(cur);
    } else if (!strncmp(kind, "find\"", 5)) {
        nexus_cursor *cur = NULL;
        const char *doc;
        char *o = has_ids ? ids_options(options) : (options ? dup_span((span){options, strlen(options)}) : NULL);
        rc = nexus_find(db, "c", filter, o, &cur);
        if (rc != NEXUS_OK)
            snprintf(errmsg, sizeof errmsg, "%s", nexus_errmsg());
        free(o);
        if (rc == NEXUS_OK) {
            int first = 1;
            puts_(&got, "[");
            while ((rc = nexus_cursor_next(cur, &doc)) == NEXUS_ROW) {
                if (!first)
                    puts_(&got, ",");
                first = 0;
                puts_(&got, doc);
            }
            if (rc != NEXUS_DONE)
                snprintf(errmsg, sizeof errmsg, "%s", nexus_errmsg());
            else
                rc = NEXUS_OK;
            puts_(&got, "]");
        }
        nexus_cursor_close(cur);
    } else if (!strncmp(kind, "count\"", 6)) {
        rc = nexus_count(db, "c", filter, &n1);
        if (rc != NEXUS_OK)
            snprintf(errmsg, sizeof errmsg, "%s", nexus_errmsg());
    } else if (!strncmp(kind, "distinct\"", 9)) {
        char *out = NULL, *f = field ? dup_span((span){field + 1, strlen(field) - 2}) : NULL;
        rc = nexus_distinct(db, "c", f ? f : "", filter, &out);
        if (rc != NEXUS_OK)
            snprintf(errmsg, sizeof errmsg, "%s", nexus_errmsg());
        else
            puts_(&got, out);
        nexus_free(out);
        free(f);
    } else if (!strncmp(kind, "update\"", 7)) {
        int flags = (flag(c, "multi") ? NEXUS_MULTI : 0) | (flag(c, "upsert") ? NEXUS_UPSERT : 0);
        rc = nexus_update(db, "c", filter, update, flags, &n1, &n2);
        if (rc != NEXUS_OK)
            snprintf(errmsg, sizeof errmsg, "%s", nexus_errmsg());
    } else if (!strncmp(kind, "delete\"", 7)) {
        rc = nexus_delete(db, "c", filter, flag(c, "multi") ? NEXUS_MULTI : 0, &n1);
        if (rc != NEXUS_OK)
            snprintf(errmsg, sizeof errmsg, "%s", nexus_errmsg());
    } else if (!strncmp(kind, "find_one_and_", 13)) {
        char *out = NULL;
        if (!strncmp(kind, "find_one_and_update\"", 20))
            rc = nexus_find_one_and_update(db, "c", filter, update, options, &out);
        else
            rc = nexus_find_one_and_delete(db, "c", filter, options, &out);
        if (rc == NEXUS_NOT_FOUND) {
            rc = NEXUS_OK;
            puts_(&got, "null");
        } else if (rc != NEXUS_OK) {
            snprintf(errmsg, sizeof errmsg, "%s", nexus_errmsg());
        } else {
            puts_(&got, out);
        }
        nexus_free(out);
    } else if (!strncmp(kind, "update_one\"", 11) || !strncmp(kind, "update_many\"", 12) ||
               !strncmp(kind, "replace_one\"", 12) || !strncmp(kind, "insert_many\"", 12) ||
               !strncmp(kind, "bulk_write\"", 11)) {
        char *out = NULL;
        write_call = 1;
        if (!strncmp(kind, "update_one\"", 11))
            rc = nexus_update_one(db, "c", filter, update, options, &out);
        else if (!strncmp(kind, "update_many\"", 12))
            rc = nexus_update_many(db, "c", filter, update, options, &out);
        else if (!strncmp(kind, "replace_one\"", 12))
            rc = nexus_replace_one(db, "c", filter, replacement, options, &out);
        else if (!strncmp(kind, "insert_many\"", 12))
            rc = nexus_insert_many_with(db, "c", documents, options, &out);
        else
            rc = nexus_bulk_write(db, "c", operations, options, &out);
        if (rc != NEXUS_OK)
            snprintf(errmsg, sizeof errmsg, "%s", nexus_errmsg());
        if (out)
            puts_(&got, out);
        nexus_free(out);
        if (has_expect) {
            span we;
            partial = get(expect_span, "writeErrors", &we) && !span_is(we, "[]");
        }
        if (partial) {
            /* A batch that failed part-way: an error status, and the result anyway. */
            if (rc == NEXUS_OK) {
                ok = fail("expected an error status for the write errors, got NEXUS_OK");
                goto out;
            }
            if (!got.s) {
                ok = fail("no result written with %s: %s", nexus_errstr(rc), errmsg);
                goto out;
            }
            rc = NEXUS_OK;
        } else if (rc == NEXUS_OK && !got.s) {
            ok = fail("no result written");
            goto out;
        }
    } else {
        ok = fail("unknown op %s", op);
        goto out;
    }

    if (want_error) {
        if (rc == NEXUS_OK) {
            ok = fail("expected %s, got success", want_error);
        } else if (strncmp(want_error + 1, nexus_errstr(rc), strlen(want_error) - 2) != 0 ||
                   strlen(nexus_errstr(rc)) != strlen(want_error) - 2) {
            ok = fail("expected %s, got %s: %s", want_error, nexus_errstr(rc), errmsg);
        } else if (message) {
            /* The message is a JSON string; the suite's messages have no escapes but \\. */
            buf m = {0};
            const char *p;
            for (p = message + 1; p < message + strlen(message) - 1; p++) {
                if (*p == '\\')
                    p++;
                put(&m, p, 1);
            }
            if (!strstr(errmsg, m.s))
                ok = fail("message \"%s\" lacks \"%s\"", errmsg, m.s);
            free(m.s);
        }
        if (ok)
            ok = check_after(db, c);
        goto out;
    }
    if (rc != NEXUS_OK) {
        ok = fail("failed: %s: %s", nexus_errstr(rc), errmsg);
        goto out;
    }
    if (has_ids) {
        buf w = {0};
        span e;
        const char *cur = NULL;
        int first = 1;
        puts_(&w, "[");
        while (next_elem(ids_span, &cur, &e)) {
            if (!first)
                puts_(&w, ",");
            first = 0;
            puts_(&w, "{\"_id\":");
            put(&w, e.p, e.n);
            puts_(&w, "}");
        }
        puts_(&w, "]");
        ok = same_json(w.s, got.s, "ids");
        free(w.s);
    } else if (has_expect) {
        if (!strncmp(kind, "count\"", 6) || !strncmp(kind, "delete\"", 7)) {
            if (n1 != strtoull(expect, NULL, 10))
                ok = fail("expected %s, got %llu", expect, (unsigned long long)n1);
        } else if (!strncmp(kind, "update\"", 7)) {
            span m, d;
            char *ms = NULL, *ds = NULL;
            if (get(expect_span, "matched", &m) && get(expect_span, "modified", &d)) {
                ms = dup_span(m);
                ds = dup_span(d);
                if (n1 != strtoull(ms, NULL, 10) || n2 != strtoull(ds, NULL, 10))
                    ok = fail("expected matched/modified %s/%s, got %llu/%llu", ms, ds,
                              (unsigned long long)n1, (unsigned long long)n2);
            }
            free(ms);
            free(ds);
        } else if (write_call) {
            ok = same_result(expect, got.s);
        } else {
            ok = same_json(expect, got.s, "result");
        }
    }
    if (ok)
        ok = check_after(db, c);

out:
    nexus_close(db);
    free(op);
    free(filter);
    free(options);
    free(update);
    free(replacement);
    free(documents);
    free(operations);
    free(field);
    free(pipeline);
    free(want_error);
    free(message);
    free(expect);
    free(got.s);
    return ok;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *s;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = malloc((size_t)n + 1);
    if (!s || fread(s, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(s);
        return NULL;
    }
    s[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return s;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0, i;
    if (nexus_open(":memory:", NULL, &scratch) != NEXUS_OK) {
        fprintf(stderr, "cannot open the scratch database: %s\n", nexus_errmsg());
        return 2;
    }
    for (i = 1; i < argc; i++) {
        size_t len;
        char *text = read_file(argv[i], &len);
        span file, group, cases, one, docs, name;
        const char *gcur = NULL;
        if (!text) {
            fprintf(stderr, "cannot read %s\n", argv[i]);
            return 2;
        }
        file.p = text;
        file.n = len;
        while (next_elem(file, &gcur, &group)) {
            const char *ccur = NULL;
            if (!get(group, "docs", &docs))
                docs = (span){"[]", 2};
            if (!get(group, "cases", &cases))
                continue;
            while (next_elem(cases, &ccur, &one)) {
                if (run_case(group, docs, one)) {
                    passed++;
                } else {
                    failed++;
                    if (!get(one, "name", &name))
                        name = (span){"?", 1};
                    printf("FAIL %s / %.*s:\n          %s\n", argv[i], (int)name.n, name.p,
                           failure);
                }
            }
        }
        free(text);
    }
    nexus_close(scratch);
    printf("conformance (C ABI): %d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
