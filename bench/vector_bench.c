/* NexusLite's side of benchmarks/vector.md (scripts/bench-vector.sh drives it): loads the
 * vectors scripts/bench_vector.py wrote (float32, row-major), inserts them through the C ABI
 * in transactions of 1,000, builds the HNSW index (create_index over the stored documents),
 * measures the database file's growth as the index size, then runs every query with
 * nexus_vector_search (limit 10, the vector projected out): a cold pass at numCandidates
 * 100, then timed passes at 50/100/200, one thread, and prints one JSON object: build time, index bytes, and per numCandidates
 * queries/s and recall@10 against the ground truth file.
 *
 * usage: vector_bench DIR N DIMS NQ SIMILARITY [scalar]   (DIR holds base.f32, queries.f32,
 * gt.i32; "scalar": the index is created with "quantization":"scalar", in its own database
 * file DIR/nexus-scalar.db). Queries/s are given by wall clock ("qps") and by the process's
 * CPU time ("cpu_qps"). */
#define _POSIX_C_SOURCE 200809L
#include <nexus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The process's CPU time: on a shared machine, time spent waiting for a core is not counted. */
static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void nx(int rc, const char *what)
{
    if (rc != NEXUS_OK) {
        fprintf(stderr, "%s: %s (%d): %s\n", what, nexus_errstr(rc), rc, nexus_errmsg());
        exit(1);
    }
}

static void *load(const char *dir, const char *name, size_t bytes)
{
    char path[1024];
    FILE *f;
    void *p = malloc(bytes);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (!f || !p || fread(p, 1, bytes, f) != bytes) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    return p;
}

static long long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : 0;
}

/* Appends the vector as a JSON array. */
static size_t put_vec(char *out, const float *v, int dims)
{
    size_t n = 0;
    out[n++] = '[';
    for (int i = 0; i < dims; i++)
        n += (size_t)sprintf(out + n, i ? ",%.9g" : "%.9g", (double)v[i]);
    out[n++] = ']';
    out[n] = '\0';
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 6 && !(argc == 7 && strcmp(argv[6], "scalar") == 0)) {
        fprintf(stderr, "usage: vector_bench DIR N DIMS NQ SIMILARITY [scalar]\n");
        return 2;
    }
    int scalar = argc == 7;
    const char *dir = argv[1];
    long n = atol(argv[2]), nq = atol(argv[4]);
    int dims = atoi(argv[3]);
    const char *sim = argv[5];
    float *base = load(dir, "base.f32", (size_t)n * (size_t)dims * 4);
    float *queries = load(dir, "queries.f32", (size_t)nq * (size_t)dims * 4);
    int *gt = load(dir, "gt.i32", (size_t)nq * 10 * 4);
    char db_path[1024], wasp_path[1100];
    snprintf(db_path, sizeof db_path, "%s/%s.db", dir, scalar ? "nexus-scalar" : "nexus");
    snprintf(wasp_path, sizeof wasp_path, "%s/%s.wasp", dir, scalar ? "nexus-scalar" : "nexus");
    /* VECTOR_BENCH_REUSE=1: query the database an earlier run left (profiling). */
    int reuse = getenv("VECTOR_BENCH_REUSE") != NULL;
    if (!reuse) {
        remove(db_path);
        remove(wasp_path);
    }

    /* VECTOR_BENCH_OPEN: open options (JSON) for every open, e.g. {"mmap":true}. */
    const char *open_opts = getenv("VECTOR_BENCH_OPEN");
    nexus_db *db = NULL;
    nx(nexus_open(db_path, open_opts, &db), "open");
    size_t cap = (size_t)1000 * ((size_t)dims * 18 + 64) + 16;
    char *batch = malloc(cap);
    double t0 = now_s();
    for (long at = 0; at < n && !reuse; at += 1000) {
        size_t len = 0;
        batch[len++] = '[';
        for (long i = at; i < n && i < at + 1000; i++) {
            len += (size_t)sprintf(batch + len, "%s{\"_id\":%ld,\"v\":", i > at ? "," : "", i);
            len += put_vec(batch + len, base + (size_t)i * (size_t)dims, dims);
            batch[len++] = '}';
        }
        batch[len++] = ']';
        batch[len] = '\0';
        nx(nexus_insert_many(db, "vecs", batch, NULL), "insert_many");
    }
    double insert_s = now_s() - t0;
    nx(nexus_close(db), "close");
    long long before = file_size(db_path) + file_size(wasp_path);
    nx(nexus_open(db_path, open_opts, &db), "reopen");
    char opts[256];
    snprintf(opts, sizeof opts, "{\"numDimensions\":%d,\"similarity\":\"%s\",\"m\":16,\"efConstruction\":200%s}",
             dims, sim, scalar ? ",\"quantization\":\"scalar\"" : "");
    t0 = now_s();
    if (!reuse)
        nx(nexus_create_index(db, "vecs", "{\"v\":\"hnsw\"}", opts, NULL), "create_index");
    double build_s = now_s() - t0;
    nx(nexus_close(db), "close");
    long long after = file_size(db_path) + file_size(wasp_path);
    nx(nexus_open(db_path, open_opts, &db), "reopen");

    printf("{\"insert_s\":%.3f,\"build_s\":%.3f,\"file_before\":%lld,\"file_after\":%lld,\"runs\":[",
           insert_s, build_s, before, after);
    /* The specifications are written before the timed passes (the query vector as JSON
     * numbers, "%.9g": exact for float32), so the passes time the library's work only. */
    size_t spec_cap = (size_t)dims * 18 + 256;
    char *specs = malloc(spec_cap * 3 * (size_t)nq);
    const int efs[4] = {100, 50, 100, 200};
    for (int e = 0; e < 3; e++)
        for (long q = 0; q < nq; q++) {
            char *spec = specs + spec_cap * ((size_t)e * (size_t)nq + (size_t)q);
            size_t len = (size_t)sprintf(spec, "{\"path\":\"v\",\"queryVector\":");
            len += put_vec(spec + len, queries + (size_t)q * (size_t)dims, dims);
            sprintf(spec + len, ",\"limit\":10,\"numCandidates\":%d,\"projection\":{\"v\":0}}", efs[e + 1]);
        }
    /* VECTOR_BENCH_REPEAT: each timed pass runs the queries that many times (profiling). */
    long repeat = getenv("VECTOR_BENCH_REPEAT") ? atol(getenv("VECTOR_BENCH_REPEAT")) : 1;
    /* A first, cold pass at numCandidates 100 (fills the snapshot's decoded-node cache),
     * then the three timed passes. */
    for (int e = 0; e < 4; e++) {
        long hits = 0, runs = e ? repeat : 1;
        int slot = e ? e - 1 : 1;
        t0 = now_s();
        double c0 = cpu_s();
        for (long r = 0; r < runs; r++)
            for (long q = 0; q < nq; q++) {
                const char *spec = specs + spec_cap * ((size_t)slot * (size_t)nq + (size_t)q);
                nexus_cursor *cur = NULL;
                const char *row = NULL;
                nx(nexus_vector_search(db, "vecs", spec, &cur), "vector_search");
                while (nexus_cursor_next(cur, &row) == NEXUS_ROW) {
                    long id = atol(strstr(row, "\"_id\":") + 6);
                    for (int k = 0; k < 10; k++)
                        if (gt[q * 10 + k] == id)
                            hits++;
                }
                nexus_cursor_close(cur);
            }
        double secs = now_s() - t0, cpu = cpu_s() - c0;
        double total = (double)(nq * runs);
        printf("%s{\"cold\":%s,\"num_candidates\":%d,\"qps\":%.1f,\"cpu_qps\":%.1f,\"recall\":%.4f}",
               e ? "," : "", e == 0 ? "true" : "false", efs[e], total / secs, total / cpu,
               (double)hits / (total * 10));
        fflush(stdout);
    }
    printf("]}\n");
    nx(nexus_close(db), "close");
    free(specs);
    free(batch);
    free(base);
    free(queries);
    free(gt);
    return 0;
}
