/*
 * SQLite backend benchmark: durable ingest into a new file, file size,
 * reopen time, and where reopen time goes.
 *
 *   bench_sqlite N [SEED] [--normal] [--file PATH] [--keep] [--ingest-only]
 *   bench_sqlite N --reopen-only --file PATH
 *
 * Generates N events shaped like bench_ingest's (about 10 events per
 * customer, 20 % of lines continuing an order, 2 % refunds, derived ids),
 * then prints one line per phase:
 *   phase=memory_ingest   the same events into an in-memory db (the engine alone)
 *   phase=sqlite_ingest   into a new SQLite file, batches of 10,000, each one
 *                         durable when the call returns (synchronous=FULL, or
 *                         NORMAL with --normal)
 *   phase=close           closing it (SQLite checkpoints the WAL into the file)
 *   phase=file            bytes of the database file per event
 *   phase=reopen          seg_db_open of the file: SQLite reading + the engine
 *   phase=sqlite_read     the backend's load alone, into a sink that drops
 *                         everything (SQLite reading, row decoding, derived ids)
 *   phase=customers_only  the load with only the customers passed on to the
 *                         engine (the events are read and dropped)
 * The engine's share of reopen is reopen - sqlite_read; of that, creating
 * the customers takes customers_only - sqlite_read.  --file PATH puts
 * the database there (default: bench_sqlite.db in $TMPDIR or /tmp); --keep
 * leaves it; --ingest-only stops after the SQLite ingest, --reopen-only
 * measures only the reopen phases of a file kept before (for profiling).
 * Single-threaded, like the library.
 */
#include <segment.h>
#include "bench-events.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(seg_db *db, const char *what, int rc)
{
    fprintf(stderr, "bench_sqlite: %s: %s (%s)\n", what, db ? seg_errmsg(db) : "",
            seg_errstr(rc));
    exit(1);
}

/* ---- the events: bench-events.h, as bench_ingest generates them ---- */

/* ---- a backend wrapping the SQLite one whose load drops everything ---- */

typedef struct drop_storage {
    seg_storage base;
    seg_storage *inner;
    int pass_customers; /* app_data non-NULL: customers go to the engine */
} drop_storage;

static const seg_storage_methods drop_methods;

static int drop_open(seg_storage *st, const char *uri, uint32_t flags, void *app_data)
{
    drop_storage *d = (drop_storage *)st;
    st->methods = &drop_methods;
    d->pass_customers = app_data != NULL;
    const seg_storage_backend *ib = seg_storage_sqlite();
    if (!(d->inner = calloc(1, ib->storage_size)))
        return seg_storage_set_error(st, SEG_ENOMEM, "out of memory");
    d->inner->core = st->core;
    return ib->methods->open(d->inner, uri, flags, ib->app_data);
}

static void drop_close(seg_storage *st)
{
    drop_storage *d = (drop_storage *)st;
    if (d->inner) {
        seg_storage_sqlite()->methods->close(d->inner);
        free(d->inner);
    }
}

static uint64_t dropped;
static int nop_meta(void *c, const char *k, const char *v) { (void)c; (void)k; (void)v; return 0; }
static int nop_cust(void *c, const char *id) { (void)c; (void)id; dropped++; return 0; }
static int nop_event(void *c, const seg_event_info *e) { (void)c; (void)e; dropped++; return 0; }
static int nop_attr(void *c, const char *id, const char *n, const seg_value *v)
{ (void)c; (void)id; (void)n; (void)v; return 0; }
static int nop_consent(void *c, const char *id, const char *ch, int s)
{ (void)c; (void)id; (void)ch; (void)s; return 0; }
static int nop_record(void *c, const char *t, const char *k, const void *d, size_t n)
{ (void)c; (void)t; (void)k; (void)d; (void)n; return 0; }

static int drop_load(seg_storage *st, const seg_storage_sink *sink, void *ctx)
{
    static const seg_storage_sink nop = { sizeof nop, nop_meta, nop_cust, nop_event, nop_attr,
                                          nop_consent, nop_record };
    drop_storage *d = (drop_storage *)st;
    seg_storage_sink half = nop;
    if (d->pass_customers) {
        half.meta = sink->meta;
        half.customer = sink->customer;
    }
    return seg_storage_sqlite()->methods->load(d->inner, &half, ctx);
}

static const seg_storage_methods drop_methods = {
    SEG_STORAGE_METHODS_V1, drop_open, drop_close, drop_load,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
};
static const seg_storage_backend drop_backend = {
    SEG_STORAGE_BACKEND_V1, sizeof(drop_storage), "sqlite-read-only", &drop_methods, NULL,
};
static int pass_flag;
static const seg_storage_backend customers_backend = {
    SEG_STORAGE_BACKEND_V1, sizeof(drop_storage), "sqlite-customers", &drop_methods, &pass_flag,
};

/* ---- phases ---- */

static void report(const char *phase, size_t events, double secs)
{
    printf("phase=%s events=%zu seconds=%.3f events_per_s=%.0f\n", phase, events, secs,
           (double)events / secs);
    fflush(stdout);
}

static void remove_db(const char *path)
{
    static const char *const suffix[] = { "", "-wal", "-shm", "-seglock" };
    char p[4096];
    for (int k = 0; k < 4; k++) {
        snprintf(p, sizeof p, "%s%s", path, suffix[k]);
        unlink(p);
    }
}

static void ingest_all(seg_db *db, const seg_event *ev, size_t n)
{
    for (size_t i = 0; i < n; i += 10000) {
        size_t m = n - i < 10000 ? n - i : 10000;
        seg_ingest_stats st = SEG_INGEST_STATS_INIT;
        int rc = seg_event_ingest_batch(db, ev + i, m, NULL, &st);
        if (rc != SEG_OK)
            die(db, "ingest", rc);
        if (st.accepted != m)
            die(db, "ingest: not every event accepted", SEG_ERROR);
    }
}

int main(int argc, char **argv)
{
    size_t n = 0;
    uint64_t seed = 42;
    bool normal = false, keep = false, ingest_only = false, reopen_only = false;
    const char *path = NULL;
    char defpath[4096];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--normal") == 0)
            normal = true;
        else if (strcmp(argv[i], "--ingest-only") == 0)
            ingest_only = true;
        else if (strcmp(argv[i], "--reopen-only") == 0)
            reopen_only = keep = true;
        else if (strcmp(argv[i], "--keep") == 0)
            keep = true;
        else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (!n)
            n = (size_t)strtoull(argv[i], NULL, 10);
        else
            seed = strtoull(argv[i], NULL, 10);
    }
    if (!n) {
        fprintf(stderr, "usage: bench_sqlite N [SEED] [--normal] [--file PATH] [--keep] "
                "[--ingest-only]\n");
        return 2;
    }
    if (!path) {
        const char *t = getenv("TMPDIR");
        snprintf(defpath, sizeof defpath, "%s/bench_sqlite.db", t && *t ? t : "/tmp");
        path = defpath;
    }
    rng_state = seed;
    char *pool = NULL;
    seg_event *ev = reopen_only ? NULL : generate(n, &pool);
    if (!ev && !reopen_only)
        die(NULL, "generate", SEG_ENOMEM);

    seg_db *db = NULL;
    int rc;
    double t;
    char err[512] = "";
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    o.errbuf = err;
    o.errbuf_size = sizeof err;
    seg_storage_backend *be = NULL;
    seg_storage_sqlite_options so = SEG_STORAGE_SQLITE_OPTIONS_INIT;
    so.flags = normal ? SEG_STORAGE_SQLITE_SYNC_NORMAL : 0;
    if ((rc = seg_storage_sqlite_new(&be, &so)) != SEG_OK)
        die(NULL, "seg_storage_sqlite_new", rc);
    o.storage = be;
    if (reopen_only)
        goto reopen;
    if (!ingest_only) {
        if ((rc = seg_db_open(&db, ":memory:", NULL)) != SEG_OK)
            die(NULL, "open memory", rc);
        t = now_s();
        ingest_all(db, ev, n);
        report("memory_ingest", n, now_s() - t);
        seg_db_close(db);
    }

    remove_db(path);
    o.flags = SEG_DB_CREATE;
    if ((rc = seg_db_open(&db, path, &o)) != SEG_OK) {
        fprintf(stderr, "bench_sqlite: %s\n", err);
        return 1;
    }
    t = now_s();
    ingest_all(db, ev, n);
    report(normal ? "sqlite_ingest_sync_normal" : "sqlite_ingest_sync_full", n, now_s() - t);
    t = now_s();
    seg_db_close(db);
    report("close", n, now_s() - t);
    free(ev);
    free(pool);
    if (ingest_only) {
        seg_storage_sqlite_free(be);
        if (!keep)
            remove_db(path);
        return 0;
    }

reopen:;
    struct stat sb;
    if (stat(path, &sb) != 0)
        die(NULL, "stat", SEG_EIO);
    printf("phase=file bytes=%lld bytes_per_event=%.1f\n", (long long)sb.st_size,
           (double)sb.st_size / (double)n);

    o.flags = 0;
    t = now_s();
    if ((rc = seg_db_open(&db, path, &o)) != SEG_OK) {
        fprintf(stderr, "bench_sqlite: reopen: %s\n", err);
        return 1;
    }
    double reopen = now_s() - t;
    report("reopen", n, reopen);
    if (seg_event_count(db) != n)
        die(db, "reopen: wrong event count", SEG_ERROR);
    seg_db_close(db);

    o.storage = &drop_backend;
    o.flags = SEG_DB_READONLY;
    dropped = 0;
    t = now_s();
    if ((rc = seg_db_open(&db, path, &o)) != SEG_OK) {
        fprintf(stderr, "bench_sqlite: read: %s\n", err);
        return 1;
    }
    double rd = now_s() - t;
    report("sqlite_read", n, rd);
    seg_db_close(db);
    uint64_t rows = dropped;
    o.storage = &customers_backend;
    t = now_s();
    if ((rc = seg_db_open(&db, path, &o)) != SEG_OK) {
        fprintf(stderr, "bench_sqlite: read: %s\n", err);
        return 1;
    }
    double cu = now_s() - t;
    report("customers_only", n, cu);
    uint64_t ncust = seg_customer_count(db);
    seg_db_close(db);
    printf("reopen_split sqlite_read_s=%.3f engine_customers_s=%.3f engine_events_s=%.3f "
           "rows_read=%llu customers=%llu\n", rd, cu - rd, reopen - cu,
           (unsigned long long)rows, (unsigned long long)ncust);
    seg_storage_sqlite_free(be);
    if (!keep)
        remove_db(path);
    return 0;
}
