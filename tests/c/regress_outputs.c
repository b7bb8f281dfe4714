/*
 * Regression: an output file written over a file of an open database destroyed it.
 *
 * nexus_export onto the database's own NAME.db (or its log NAME.wasp, or a link to either),
 * nexus_import with `error_sidecar` naming one of them, and nexus_backup onto a file of an
 * open database returned NEXUS_OK, and the next nexus_open found no database. Each is now
 * refused with NEXUS_INVALID_ARGUMENT before anything is written.
 *
 * Every scenario runs on a database of its own: 10 documents, the refused call, 5 more
 * documents, nexus_check, close, reopen, count (15) and nexus_check again. The directory
 * must hold no leftover temporary file of the refused export.
 */
#include "regress.h"

#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>

#define BEFORE 10
#define AFTER 5

/* Opens (creating) the database at `path`; NULL when that fails (counted). */
static nexus_db *open_db(const char *path)
{
    nexus_db *db = NULL;
    if (!CHECK_OK(nexus_open(path, test_options(NULL), &db)))
        return NULL;
    return db;
}

static void insert_n(nexus_db *db, int n)
{
    for (int i = 0; i < n; i++)
        CHECK_OK(nexus_insert(db, "c", "{\"v\": 1}", NULL));
}

/* A fresh database with BEFORE documents in collection "c". */
static nexus_db *fresh(const char *name)
{
    nexus_db *db = open_db(path_in_dir(name));
    if (db != NULL)
        insert_n(db, BEFORE);
    return db;
}

static uint64_t count_of(nexus_db *db)
{
    uint64_t n = UINT64_MAX;
    CHECK_OK(nexus_count(db, "c", NULL, &n));
    return n;
}

/* After a refused call: writes still work, the check is clean, and the database reopens
 * with every document. Closes `db`. */
static void still_sound(nexus_db *db, const char *name)
{
    if (db == NULL)
        return;
    insert_n(db, AFTER);
    CHECK_OK(nexus_check(db, NULL));
    CHECK(count_of(db) == BEFORE + AFTER);
    CHECK_OK(nexus_close(db));

    nexus_db *again = open_db(path_in_dir(name));
    if (again == NULL)
        return;
    CHECK(count_of(again) == BEFORE + AFTER);
    CHECK_OK(nexus_check(again, NULL));
    CHECK_OK(nexus_close(again));
}

/* Entries of the run's directory whose name contains `needle`. */
static int entries_with(const char *needle)
{
    int n = 0;
    DIR *d = opendir(g_dir);
    if (d == NULL)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, needle) != NULL)
            n++;
    closedir(d);
    return n;
}

static long size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    size_t len = strlen(text);
    int ok = fwrite(text, 1, len, f) == len;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* nexus_export of `name`'s collection onto `dest` is refused, leaving no temporary. */
static void export_refused(nexus_db *db, const char *dest)
{
    if (db == NULL)
        return;
    char *report = NULL;
    CHECK_RC(nexus_export(db, "c", dest, NULL, &report), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS("refusing to overwrite");
    CHECK(report == NULL);
    nexus_free(report);
    CHECK(entries_with("nexus-tmp") == 0);
}

static void export_scenario(const char *title, const char *name, const char *dest)
{
    section(title);
    nexus_db *db = fresh(name);
    export_refused(db, dest);
    still_sound(db, name);
}

/* Input with 3 good rows and 2 bad ones. */
static const char *INPUT = "{\"g\": 1}\nnot json\n{\"g\": 2}\n{oops\n{\"g\": 3}\n";

static void import_refused(nexus_db *db, const char *input, const char *sidecar)
{
    if (db == NULL)
        return;
    char opts[1024];
    snprintf(opts, sizeof opts, "{\"skip_errors\": true, \"error_sidecar\": \"%s\"}", sidecar);
    char *report = NULL;
    CHECK_RC(nexus_import(db, "c", input, opts, &report), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS("refusing to overwrite");
    CHECK(report == NULL);
    nexus_free(report);
    /* Refused before anything was imported. */
    CHECK(count_of(db) == BEFORE);
}

static void sidecar_scenario(const char *title, const char *name, const char *sidecar)
{
    section(title);
    const char *input = path_in_dir("in.ndjson");
    CHECK(write_file(input, INPUT) == 0);
    nexus_db *db = fresh(name);
    import_refused(db, input, sidecar);
    still_sound(db, name);
}

static void backup_refused(nexus_db *db, const char *dest)
{
    if (db == NULL)
        return;
    CHECK_RC(nexus_backup(db, dest), NEXUS_INVALID_ARGUMENT);
    CHECK_ERRMSG_HAS("of the open database");
}

static void backup_scenario(const char *title, const char *name, const char *dest)
{
    section(title);
    nexus_db *db = fresh(name);
    backup_refused(db, dest);
    still_sound(db, name);
}

int main(void)
{
    if (regress_begin("regress_outputs") != 0)
        return 2;

    /* --- export --------------------------------------------------------------------- */
    export_scenario("export onto NAME.db", "e1.db", path_in_dir("e1.db"));
    export_scenario("export onto NAME.wasp", "e2.db", path_in_dir("e2.wasp"));
    export_scenario("export onto NAME.wasp.tmp (not there yet)", "e3.db",
                    path_in_dir("e3.wasp.tmp"));

    section("export onto a symbolic link to NAME.db");
    {
        nexus_db *db = fresh("e4.db");
        CHECK(symlink(path_in_dir("e4.db"), path_in_dir("e4-link.ndjson")) == 0);
        export_refused(db, path_in_dir("e4-link.ndjson"));
        still_sound(db, "e4.db");
    }

    section("export onto a relative symbolic link to NAME.wasp, two links deep");
    {
        nexus_db *db = fresh("e5.db");
        CHECK(symlink("e5.wasp", path_in_dir("e5-a")) == 0);
        CHECK(symlink("e5-a", path_in_dir("e5-b.json")) == 0);
        export_refused(db, path_in_dir("e5-b.json"));
        still_sound(db, "e5.db");
    }

    section("export onto a dangling symbolic link to NAME.wasp.tmp");
    {
        nexus_db *db = fresh("e6.db");
        CHECK(symlink(path_in_dir("e6.wasp.tmp"), path_in_dir("e6-dangling.ndjson")) == 0);
        export_refused(db, path_in_dir("e6-dangling.ndjson"));
        still_sound(db, "e6.db");
    }

    section("export onto a hard link of NAME.db");
    {
        nexus_db *db = fresh("e7.db");
        CHECK(link(path_in_dir("e7.db"), path_in_dir("e7-hard.ndjson")) == 0);
        long before = size_of(path_in_dir("e7-hard.ndjson"));
        export_refused(db, path_in_dir("e7-hard.ndjson"));
        CHECK(size_of(path_in_dir("e7-hard.ndjson")) == before);
        still_sound(db, "e7.db");
    }

    section("export onto another spelling of NAME.db (sub/../NAME.db)");
    {
        nexus_db *db = fresh("e8.db");
        CHECK(mkdir(path_in_dir("sub"), 0700) == 0);
        export_refused(db, path_in_dir("sub/../e8.db"));
        export_refused(db, path_in_dir("./sub/.././e8.wasp"));
        still_sound(db, "e8.db");
    }

    section("export onto a file of another open database");
    {
        nexus_db *other = fresh("e9-other.db");
        nexus_db *db = fresh("e9.db");
        export_refused(db, path_in_dir("e9-other.db"));
        export_refused(db, path_in_dir("e9-other.wasp"));
        still_sound(db, "e9.db");
        still_sound(other, "e9-other.db");
    }

    section("export onto a NexusLite database that is not open");
    {
        nexus_db *closed = fresh("e10-closed.db");
        if (closed != NULL)
            CHECK_OK(nexus_close(closed));
        nexus_db *db = fresh("e10.db");
        export_refused(db, path_in_dir("e10-closed.db"));
        export_refused(db, path_in_dir("e10-closed.wasp"));
        still_sound(db, "e10.db");
        nexus_db *again = open_db(path_in_dir("e10-closed.db"));
        if (again != NULL) {
            CHECK(count_of(again) == BEFORE);
            CHECK_OK(nexus_close(again));
        }
    }

    section("export onto an ordinary file still works");
    {
        nexus_db *db = fresh("e11.db");
        const char *out = path_in_dir("e11-out.ndjson");
        CHECK(write_file(out, "old contents\n") == 0);
        char *report = NULL;
        if (db != NULL) {
            CHECK_OK(nexus_export(db, "c", out, NULL, &report));
            CHECK(report != NULL && strstr(report, "\"exported\":10") != NULL);
            nexus_free(report);
        }
        still_sound(db, "e11.db");
    }

    /* --- import's error sidecar --------------------------------------------------------- */
    sidecar_scenario("import with error_sidecar = NAME.db", "i1.db", path_in_dir("i1.db"));
    sidecar_scenario("import with error_sidecar = NAME.wasp", "i2.db", path_in_dir("i2.wasp"));

    section("import with error_sidecar = a symbolic link to NAME.db");
    {
        nexus_db *db = fresh("i3.db");
        CHECK(symlink(path_in_dir("i3.db"), path_in_dir("i3-errors.jsonl")) == 0);
        CHECK(write_file(path_in_dir("in.ndjson"), INPUT) == 0);
        import_refused(db, path_in_dir("in.ndjson"), path_in_dir("i3-errors.jsonl"));
        still_sound(db, "i3.db");
    }

    section("import with error_sidecar = the input file itself");
    {
        nexus_db *db = fresh("i4.db");
        const char *input = path_in_dir("in4.ndjson");
        CHECK(write_file(input, INPUT) == 0);
        long before = size_of(input);
        import_refused(db, input, input);
        CHECK(size_of(input) == before);
        still_sound(db, "i4.db");
    }

    section("import with an ordinary error_sidecar still works");
    {
        nexus_db *db = fresh("i5.db");
        const char *input = path_in_dir("in5.ndjson");
        CHECK(write_file(input, INPUT) == 0);
        char opts[1024];
        snprintf(opts, sizeof opts, "{\"skip_errors\": true, \"error_sidecar\": \"%s\"}",
                 path_in_dir("in5.errors.jsonl"));
        char *report = NULL;
        if (db != NULL) {
            CHECK_OK(nexus_import(db, "c", input, opts, &report));
            CHECK(report != NULL && strstr(report, "\"failed\":2") != NULL);
            nexus_free(report);
            CHECK(size_of(path_in_dir("in5.errors.jsonl")) > 0);
            CHECK(count_of(db) == BEFORE + 3);
            CHECK_OK(nexus_delete(db, "c", "{\"g\": {\"$exists\": true}}", NEXUS_MULTI, NULL));
        }
        still_sound(db, "i5.db");
    }

    /* --- backup ------------------------------------------------------------------------- */
    backup_scenario("backup onto NAME.db", "b1.db", path_in_dir("b1.db"));
    backup_scenario("backup onto NAME.wasp", "b2.db", path_in_dir("b2.wasp"));
    backup_scenario("backup onto NAME (its log would be NAME.wasp)", "b3.db", path_in_dir("b3"));

    section("backup onto the files of another open database");
    {
        nexus_db *other = fresh("b4-other.db");
        nexus_db *db = fresh("b4.db");
        backup_refused(db, path_in_dir("b4-other.db"));
        backup_refused(db, path_in_dir("b4-other.wasp"));
        backup_refused(db, path_in_dir("b4-other.wasp.tmp"));
        still_sound(db, "b4.db");
        still_sound(other, "b4-other.db");
    }

    section("backup onto a dangling symbolic link to another open database's NAME.wasp.tmp");
    {
        nexus_db *other = fresh("b5-other.db");
        nexus_db *db = fresh("b5.db");
        CHECK(symlink(path_in_dir("b5-other.wasp.tmp"), path_in_dir("b5-copy.db")) == 0);
        backup_refused(db, path_in_dir("b5-copy.db"));
        still_sound(db, "b5.db");
        still_sound(other, "b5-other.db");
    }

    return regress_end();
}
