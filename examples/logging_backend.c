/*
 * A custom storage backend: a wrapper that logs every call the engine makes
 * and passes it on to another backend (the SQLite one when a file is given
 * and libsegment has it, else the in-memory one).
 *
 *   logging_backend EVENTS.csv [DATABASE_FILE]
 *
 * It imports the events, reopens the database (to show the load calls) and
 * checks that the reopened database holds the same events.  Each call is
 * printed as one line on standard error; standard output gets a summary.
 * Copy it as the start of a backend of your own: the same shape serves for
 * a backend that talks to your own storage instead of another backend.
 */
#include <segment.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the backend's state: the base first, then our own ---- */

typedef struct log_env {      /* shared by every storage of the backend (app_data) */
    const seg_storage_backend *inner; /* the backend we pass calls on to */
    FILE *out;                        /* where the log goes */
    unsigned long calls, events_written, events_loaded;
} log_env;

typedef struct log_storage {
    seg_storage base;   /* first: the core passes a pointer to it */
    log_env *env;
    seg_storage *inner; /* the inner backend's storage, storage_size bytes */
} log_storage;

#define ENV(st) (((log_storage *)(st))->env)
#define INNER(st) (((log_storage *)(st))->inner)
#define IM(st) (ENV(st)->inner->methods)

static void logf_(seg_storage *st, const char *what, const char *detail)
{
    log_env *e = ENV(st);
    e->calls++;
    fprintf(e->out, "storage: %-14s %s\n", what, detail ? detail : "");
}

/* A slot the inner backend leaves NULL does nothing (SEG_OK), as the core
 * would do itself.  (Our slots are never NULL, so the core hands us events
 * even when the inner backend is the in-memory one, which keeps none: a
 * wrapper for production would fill its table to match the inner one.) */
#define PASS(st, slot, ...) (IM(st)->slot ? IM(st)->slot(INNER(st), __VA_ARGS__) : SEG_OK)
#define PASS0(st, slot) (IM(st)->slot ? IM(st)->slot(INNER(st)) : SEG_OK)

static const seg_storage_methods log_methods;

static int log_open(seg_storage *st, const char *uri, uint32_t flags, void *app_data)
{
    log_storage *s = (log_storage *)st;
    st->methods = &log_methods; /* set even when open fails */
    s->env = app_data;
    char d[300];
    snprintf(d, sizeof d, "%s flags=0x%x inner=%s", uri ? uri : "(null)", (unsigned)flags,
             s->env->inner->name);
    logf_(st, "open", d);
    /* the inner storage: its size comes from its backend; it gets our
     * `core`, so that its errors reach the database's message */
    const seg_storage_backend *ib = s->env->inner;
    s->inner = calloc(1, ib->storage_size);
    if (!s->inner)
        return seg_storage_set_error(st, SEG_ENOMEM, "out of memory");
    s->inner->core = st->core;
    return ib->methods->open(s->inner, uri, flags, ib->app_data);
}

static void log_close(seg_storage *st)
{
    log_storage *s = (log_storage *)st;
    logf_(st, "close", NULL);
    if (s->inner) { /* also after a failed open */
        s->env->inner->methods->close(s->inner);
        free(s->inner);
        s->inner = NULL;
    }
}

/* load: a sink of our own that counts events and passes everything on */
typedef struct log_sink_ctx {
    const seg_storage_sink *sink;
    void *ctx;
    log_env *env;
} log_sink_ctx;

static int ls_meta(void *c, const char *k, const char *v)
{
    log_sink_ctx *x = c;
    return x->sink->meta(x->ctx, k, v);
}
static int ls_customer(void *c, const char *id)
{
    log_sink_ctx *x = c;
    return x->sink->customer(x->ctx, id);
}
static int ls_event(void *c, const seg_event_info *e)
{
    log_sink_ctx *x = c;
    x->env->events_loaded++;
    return x->sink->event(x->ctx, e);
}
static int ls_attr(void *c, const char *id, const char *n, const seg_value *v)
{
    log_sink_ctx *x = c;
    return x->sink->attr(x->ctx, id, n, v);
}
static int ls_consent(void *c, const char *id, const char *ch, int s)
{
    log_sink_ctx *x = c;
    return x->sink->consent(x->ctx, id, ch, s);
}
static int ls_record(void *c, const char *t, const char *k, const void *d, size_t n)
{
    log_sink_ctx *x = c;
    return x->sink->record(x->ctx, t, k, d, n);
}

static int log_load(seg_storage *st, const seg_storage_sink *sink, void *ctx)
{
    logf_(st, "load", NULL);
    if (!IM(st)->load)
        return SEG_OK;
    /* our sink: version 1 (the core may pass a longer one: its struct_size
     * tells; pass on only the members we know) */
    seg_storage_sink mine = { sizeof mine, ls_meta, ls_customer, ls_event, ls_attr,
                              ls_consent, ls_record };
    log_sink_ctx x = { sink, ctx, ENV(st) };
    unsigned long before = ENV(st)->events_loaded;
    int rc = IM(st)->load(INNER(st), sink ? &mine : NULL, &x);
    char d[64];
    snprintf(d, sizeof d, "-> %d, %lu events", rc, ENV(st)->events_loaded - before);
    logf_(st, "load done", d);
    return rc;
}

static int log_begin(seg_storage *st) { logf_(st, "begin", NULL); return PASS0(st, begin); }
static int log_commit(seg_storage *st) { logf_(st, "commit", NULL); return PASS0(st, commit); }
static int log_rollback(seg_storage *st)
{
    logf_(st, "rollback", NULL);
    return PASS0(st, rollback);
}

static int log_put_meta(seg_storage *st, const char *key, const char *value)
{
    char d[300];
    snprintf(d, sizeof d, "%s=%s", key, value ? value : "(delete)");
    logf_(st, "put_meta", d);
    return PASS(st, put_meta, key, value);
}

static int log_put_events(seg_storage *st, const seg_event_info *events, size_t n)
{
    char d[400];
    snprintf(d, sizeof d, "%zu events, the first %s of %s", n, events[0].event_id,
             events[0].customer_id);
    logf_(st, "put_events", d);
    ENV(st)->events_written += n;
    return PASS(st, put_events, events, n);
}

static int log_put_customer(seg_storage *st, const char *id)
{
    logf_(st, "put_customer", id);
    return PASS(st, put_customer, id);
}

static int log_put_attr(seg_storage *st, const char *id, const char *name, const seg_value *v)
{
    char d[600];
    snprintf(d, sizeof d, "%s %s (type %u)", id, name, (unsigned)v->type);
    logf_(st, "put_attr", d);
    return PASS(st, put_attr, id, name, v);
}

static int log_put_consent(seg_storage *st, const char *id, const char *channel, int state)
{
    char d[600];
    snprintf(d, sizeof d, "%s %s=%d", id, channel, state);
    logf_(st, "put_consent", d);
    return PASS(st, put_consent, id, channel, state);
}

static int log_erase_customer(seg_storage *st, const char *id)
{
    logf_(st, "erase_customer", id);
    return PASS(st, erase_customer, id);
}

static int log_put_record(seg_storage *st, const char *table, const char *key, const void *data,
                          size_t len)
{
    char d[600];
    snprintf(d, sizeof d, "%s/%s (%zu bytes)", table, key, data ? len : 0);
    logf_(st, "put_record", d);
    return PASS(st, put_record, table, key, data, len);
}

/* Version 1 of the table: a backend compiled against a later libsegment
 * still says the version it was written for. */
static const seg_storage_methods log_methods = {
    SEG_STORAGE_METHODS_V1,
    log_open, log_close, log_load,
    log_begin, log_commit, log_rollback,
    log_put_meta, log_put_events, log_put_customer,
    log_put_attr, log_put_consent, log_erase_customer, log_put_record,
};

/* ---- using it ---- */

static int open_db(seg_db **db, const char *uri, const seg_storage_backend *be, uint32_t flags)
{
    char err[512] = "";
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    o.flags = flags;
    o.storage = be;
    o.errbuf = err;
    o.errbuf_size = sizeof err;
    int rc = seg_db_open(db, uri, &o);
    if (rc != SEG_OK)
        fprintf(stderr, "logging_backend: open %s: %s\n", uri ? uri : "", err);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: logging_backend EVENTS.csv [DATABASE_FILE]\n");
        return 2;
    }
    const char *file = argc == 3 ? argv[2] : NULL;
    log_env env = { seg_storage_memory(), stderr, 0, 0, 0 };
    /* the backend a host hands to seg_db_open(): no global registry */
    seg_storage_backend be = { SEG_STORAGE_BACKEND_V1, sizeof(log_storage), "logging",
                               &log_methods, &env };
    seg_db *db = NULL;
    if (file) {
        env.inner = seg_storage_sqlite();
        remove(file);
        if (open_db(&db, file, &be, SEG_DB_CREATE) == SEG_OK) {
            printf("storage: SQLite file %s\n", file);
        } else {
            /* a libsegment built without SQLite: SEG_ENOTSUP */
            printf("storage: SQLite unavailable, in memory\n");
            file = NULL;
        }
    }
    if (!file) {
        env.inner = seg_storage_memory();
        if (open_db(&db, ":memory:", &be, SEG_DB_CREATE) != SEG_OK)
            return 1;
    }
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    if (seg_event_import_csv_file(db, argv[1], NULL, &st) != SEG_OK) {
        fprintf(stderr, "logging_backend: %s\n", seg_errmsg(db));
        seg_db_close(db);
        return 1;
    }
    uint64_t events = seg_event_count(db), customers = seg_customer_count(db);
    printf("imported %llu events of %llu customers; the backend saw %lu events written\n",
           (unsigned long long)events, (unsigned long long)customers, env.events_written);
    seg_db_close(db);
    int status = 0;
    if (file) {
        /* reopen: the backend streams back what it holds */
        if (open_db(&db, file, &be, SEG_DB_READONLY) != SEG_OK)
            return 1;
        printf("reopened: %llu events of %llu customers, %lu events loaded\n",
               (unsigned long long)seg_event_count(db),
               (unsigned long long)seg_customer_count(db), env.events_loaded);
        if (seg_event_count(db) != events || seg_customer_count(db) != customers ||
            env.events_loaded != events)
            status = 1;
        seg_db_close(db);
        remove(file);
    }
    printf("%lu storage calls%s\n", env.calls, status ? ": MISMATCH" : "");
    return status;
}
