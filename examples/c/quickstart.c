/* NexusLite quick start: open a database, insert a document, query, print, close. */
#include <stdio.h>
#include <nexus.h>

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "quickstart.db";
    nexus_db *db = NULL;
    nexus_cursor *cur = NULL;
    const char *doc;
    char *id = NULL;
    int rc;

    if (nexus_open(path, NULL, &db) != NEXUS_OK)
        goto fail;
    if (nexus_insert(db, "people", "{\"name\":\"Ada\",\"age\":36}", &id) != NEXUS_OK)
        goto fail;
    printf("inserted %s\n", id);
    nexus_free(id);

    if (nexus_find(db, "people", "{\"age\":{\"$gt\":30}}", "{\"sort\":{\"age\":1}}", &cur) != NEXUS_OK)
        goto fail;
    while ((rc = nexus_cursor_next(cur, &doc)) == NEXUS_ROW)
        printf("%s\n", doc); /* borrowed: valid until the next call on cur */
    if (rc != NEXUS_DONE)
        goto fail;
    nexus_cursor_close(cur);
    return nexus_close(db) == NEXUS_OK ? 0 : 1;

fail:
    fprintf(stderr, "error: %s\n", nexus_errmsg());
    nexus_cursor_close(cur); /* both accept NULL */
    nexus_close(db);
    return 1;
}
