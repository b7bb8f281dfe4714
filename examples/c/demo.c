/*
 * NexusLite C demo (the C part of the README demo).
 *
 *   usage: demo DBPATH
 *
 * Opens (or creates) DBPATH, records this run in collection "c_demo", (re)loads a few
 * people, queries with a filter + sort + limit + projection, updates one document,
 * deletes some, and prints what it did. Run it twice on the same file: the second run
 * reports the first run's record, which was persisted. Every call is checked; on error
 * the library's message is printed and the program exits with status 1.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include <nexus.h>

#define COLL "c_demo"

static nexus_db *db;

/* Exits with the library's message when a call did not return `want`. */
static void expect(int rc, int want, const char *what)
{
    if (rc != want) {
        /* Print the message before any other nexus call: it belongs to the last one. */
        fprintf(stderr, "c: %s failed: %s", what, nexus_errmsg());
        fprintf(stderr, " [%s]\n", nexus_errstr(rc));
        nexus_close(db);
        exit(1);
    }
}
#define CHECK(call) expect((call), NEXUS_OK, #call)

/* Prints every document a query returns, indented. */
static void print_query(const char *filter, const char *options)
{
    nexus_cursor *cur = NULL;
    const char *doc = NULL; /* borrowed: valid until the next call on the cursor */
    int rc;

    CHECK(nexus_find(db, COLL, filter, options, &cur));
    while ((rc = nexus_cursor_next(cur, &doc)) == NEXUS_ROW)
        printf("c:   %s\n", doc);
    expect(rc, NEXUS_DONE, "nexus_cursor_next");
    CHECK(nexus_cursor_close(cur));
}

int main(int argc, char **argv)
{
    char run_doc[128], stamp[32];
    char *id = NULL, *doc = NULL;
    uint64_t runs = 0, n = 0, matched = 0, modified = 0;
    time_t now = time(NULL);

    if (argc != 2) {
        fprintf(stderr, "usage: %s DBPATH\n", argv[0]);
        return 2;
    }
    CHECK(nexus_open(argv[1], NULL, &db));
    printf("c: opened %s with NexusLite %s\n", argv[1], nexus_version());

    /* 1. One "run" document per run: it survives across runs. */
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    snprintf(run_doc, sizeof run_doc, "{\"kind\":\"run\",\"at\":{\"$date\":\"%s\"}}", stamp);
    CHECK(nexus_insert(db, COLL, run_doc, NULL));
    CHECK(nexus_count(db, COLL, "{\"kind\":\"run\"}", &runs));
    printf("c: this database has seen %llu C demo run%s\n", (unsigned long long)runs,
           runs == 1 ? "" : "s");

    /* 2. Replace the previous run's people with a fresh set (insert_many is atomic). */
    CHECK(nexus_delete(db, COLL, "{\"kind\":\"person\"}", NEXUS_MULTI, &n));
    if (n > 0)
        printf("c: removed %llu people left by the previous run\n", (unsigned long long)n);
    CHECK(nexus_insert_many(db, COLL,
                            "[{\"_id\":\"ada\",\"kind\":\"person\",\"name\":\"Ada\",\"age\":36,\"city\":\"London\"},"
                            " {\"_id\":\"linus\",\"kind\":\"person\",\"name\":\"Linus\",\"age\":28,\"city\":\"Helsinki\"},"
                            " {\"_id\":\"ken\",\"kind\":\"person\",\"name\":\"Ken\",\"age\":31,\"city\":\"Murray Hill\"}]",
                            &n));
    printf("c: inserted %llu people with insert_many\n", (unsigned long long)n);

    /* Without an _id the library assigns a UUID v4 and returns it. */
    CHECK(nexus_insert(db, COLL,
                       "{\"kind\":\"person\",\"name\":\"Grace\",\"age\":45,\"city\":\"Arlington\"}",
                       &id));
    printf("c: inserted Grace, generated _id %s\n", id);
    nexus_free(id);

    /* 3. Query: filter + sort + limit + projection. */
    printf("c: people aged 30 or more, oldest first, top 2:\n");
    print_query("{\"kind\":\"person\",\"age\":{\"$gte\":30}}",
                "{\"sort\":{\"age\":-1},\"limit\":2,\"projection\":{\"_id\":0,\"name\":1,\"age\":1}}");

    /* 4. Update: a birthday and a new field. */
    CHECK(nexus_update(db, COLL, "{\"_id\":\"ada\"}",
                       "{\"$inc\":{\"age\":1},\"$set\":{\"title\":\"Countess of Lovelace\"}}", 0,
                       &matched, &modified));
    CHECK(nexus_get(db, COLL, "ada", &doc));
    printf("c: updated Ada (matched %llu, modified %llu): %s\n", (unsigned long long)matched,
           (unsigned long long)modified, doc);
    nexus_free(doc);

    /* 5. Delete everyone under 30. */
    CHECK(nexus_delete(db, COLL, "{\"kind\":\"person\",\"age\":{\"$lt\":30}}", NEXUS_MULTI, &n));
    printf("c: deleted %llu person(s) under 30\n", (unsigned long long)n);
    CHECK(nexus_count(db, COLL, "{\"kind\":\"person\"}", &n));
    printf("c: %llu people left in collection \"%s\"\n", (unsigned long long)n, COLL);

    /* 6. A secondary index (creating it again on the next run is a no-op), and the plan
     *    the query above now gets. */
    char *name = NULL, *plan = NULL;
    CHECK(nexus_create_index(db, COLL, "{\"kind\":1,\"age\":1}", NULL, &name));
    CHECK(nexus_explain(db, COLL, "{\"kind\":\"person\",\"age\":{\"$lt\":30}}", NULL, &plan));
    printf("c: index %s; the query now %s\n", name,
           strstr(plan, "\"IXSCAN\"") ? "scans that index (IXSCAN)" : "scans the collection");
    nexus_free(name);
    nexus_free(plan);

    CHECK(nexus_close(db));
    return 0;
}
