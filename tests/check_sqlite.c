/*
 * tests/check_sqlite.c: the SQLite backend.
 *
 * White-box where it must be (module records have no public API yet, so
 * put_record is driven through the core's storage calls); everything else
 * through the public API and, to look at the file, SQLite's C API.
 *
 * Environment (set by tests/meson.build):
 *   SEG_SOURCE_ROOT  the source tree (examples/data, doc/storage.md)
 *   SEG_GEN          the segment-gen program
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "testutil.h"

#include "core/core-private.h"
#include "storage/storage-private.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if SEG_HAVE_SQLITE
#include <sqlite3.h>
#endif

Suite *sqlite_suite(void);

static seg_db *db;
static char tmpdir[PATH_MAX];
static char pbuf[4][PATH_MAX];
static int pnext;

/* a path in this test's directory (four rotating buffers) */
static const char *P(const char *name)
{
    char *b = pbuf[pnext++ & 3];
    size_t n = strlen(tmpdir), m = strlen(name);
    ck_assert_uint_lt(n + m + 2, PATH_MAX);
    memcpy(b, tmpdir, n);
    b[n] = '/';
    memcpy(b + n + 1, name, m + 1);
    return b;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

/* A directory in memory (/dev/shm) for tests about consistency rather
 * than durability: the thousands of fsyncs of a disk cost seconds there.
 * Falls back to the test's directory. */
static char shmdir[PATH_MAX];

static const char *fast_path(const char *name)
{
    if (!shmdir[0]) {
        snprintf(shmdir, sizeof shmdir, "/dev/shm/segsqlXXXXXX");
        if (!mkdtemp(shmdir))
            snprintf(shmdir, sizeof shmdir, "%s", tmpdir);
    }
    static char b[PATH_MAX];
    size_t n = strlen(shmdir), m = strlen(name);
    ck_assert_uint_lt(n + m + 2, PATH_MAX);
    memcpy(b, shmdir, n);
    b[n] = '/';
    memcpy(b + n + 1, name, m + 1);
    return b;
}

static void setup(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/segsqlXXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    db = NULL;
}

static void teardown(void)
{
    seg_db_close(db);
    db = NULL;
    chmod(tmpdir, 0700);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (shmdir[0] && strcmp(shmdir, tmpdir) != 0)
        nftw(shmdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    shmdir[0] = '\0';
}


/* ======================================================================== */
/* opening                                                                   */
/* ======================================================================== */

static char open_err[1024];

/* Open path with the SQLite backend (or `be`); the message of a failed
 * open is in open_err. */
static int open_be(seg_db **out, const char *path, uint32_t flags, const seg_storage_backend *be)
{
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    o.flags = flags;
    o.storage = be ? be : seg_storage_sqlite();
    o.errbuf = open_err;
    o.errbuf_size = sizeof open_err;
    open_err[0] = '\0';
    return seg_db_open(out, path, &o);
}

static int open_sq(seg_db **out, const char *path, uint32_t flags)
{
    return open_be(out, path, flags, NULL);
}

#define OPEN_OK(dbp, path, flags) do { \
        int rc_ = open_sq((dbp), (path), (flags)); \
        ck_assert_msg(rc_ == SEG_OK, "open %s: %d %s", (path), rc_, open_err); \
    } while (0)

#if SEG_HAVE_SQLITE

static const char *src_root(void)
{
    const char *r = getenv("SEG_SOURCE_ROOT");
    return r && *r ? r : ".";
}

/* ======================================================================== */
/* the whole observable state as text                                        */
/* ======================================================================== */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        size_t room = b->cap - b->n;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, room, fmt, ap);
        va_end(ap);
        if (k < 0)
            abort();
        if ((size_t)k < room) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap - b->n <= (size_t)k)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np)
            abort();
        b->p = np;
        b->cap = cap;
    }
}

static void sb_info(sbuf *b, const seg_customer_info *c)
{
    sb_printf(b, "%s o=%" PRIu64 " d=%" PRIu64 " fp=%" PRId64 " lp=%" PRId64 " r=%" PRId64
              " n=%" PRId64 " rf=%" PRId64 " u=%" PRId64 " e=%" PRIu64 " g=%" PRIu64
              " fs=%" PRId64 " ls=%" PRId64 "\n",
              c->customer_id, c->orders, c->purchase_days, c->first_purchase, c->last_purchase,
              c->revenue, c->net_revenue, c->refunds, c->units, c->events, c->engagements,
              c->first_seen, c->last_seen);
}

static int dump_cust_cb(const seg_customer_info *c, void *payload)
{
    sb_info(payload, c);
    return 0;
}

#define S_(x) ((x) ? (x) : "-")
static int dump_event_cb(const seg_event_info *e, void *payload)
{
    sb_printf(payload, "ev %u q=%d id=%s c=%s ts=%" PRId64 " a=%" PRId64
              " o=%s ch=%s cat=%s sku=%s rf=%s nm=%s\n",
              e->kind, e->quantity, S_(e->event_id), S_(e->customer_id), e->ts, e->amount,
              S_(e->order_id), S_(e->channel), S_(e->category), S_(e->sku), S_(e->refund_of),
              S_(e->name));
    return 0;
}

/* attribute names and consent channels the tests use */
static const char *const attr_names[] = {
    "country", "birth_year", "signup", "email_verified", "lifetime_discount",
    "tier", "score", "vip", "joined", "note", "ltv", NULL,
};
static const char *const consent_chans[] = { "email", "sms", "push", NULL };

typedef struct ids_ctx {
    char **ids;
    size_t n, cap;
} ids_ctx;

static int collect_id_cb(const seg_customer_info *c, void *payload)
{
    ids_ctx *x = payload;
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 64;
        x->ids = realloc(x->ids, x->cap * sizeof *x->ids);
        if (!x->ids)
            abort();
    }
    x->ids[x->n++] = strdup(c->customer_id);
    return 0;
}

/* Everything a caller can read: counts, every customer (creation order,
 * sorted, as of three times), every event (global order and per customer),
 * attributes, consent, attribute types.  Free with free(). */
static char *dump(seg_db *d)
{
    sbuf b = { NULL, 0, 0 };
    sb_printf(&b, "events %" PRIu64 " customers %" PRIu64 " exponent %d\n", seg_event_count(d),
              seg_customer_count(d), seg_db_currency_exponent(d));
    sb_printf(&b, "-- creation order\n");
    ck_assert_int_eq(seg_customer_foreach(d, 0, dump_cust_cb, &b), SEG_OK);
    sb_printf(&b, "-- sorted\n");
    ck_assert_int_eq(seg_customer_foreach(d, SEG_CUSTOMER_SORTED, dump_cust_cb, &b), SEG_OK);
    static const int64_t as_of[] = { INT64_C(1672531200), INT64_C(1700000000),
                                     INT64_C(1709251200) + 30 * 86400 };
    for (size_t k = 0; k < 3; k++) {
        sb_printf(&b, "-- as of %" PRId64 "\n", as_of[k]);
        ck_assert_int_eq(seg_customer_foreach_as_of(d, as_of[k], 0, dump_cust_cb, &b), SEG_OK);
    }
    sb_printf(&b, "-- events\n");
    ck_assert_int_eq(seg_event_foreach(d, NULL, dump_event_cb, &b), SEG_OK);
    ids_ctx ids = { NULL, 0, 0 };
    ck_assert_int_eq(seg_customer_foreach(d, 0, collect_id_cb, &ids), SEG_OK);
    for (size_t i = 0; i < ids.n; i++) {
        const char *id = ids.ids[i];
        sb_printf(&b, "-- customer %s\n", id);
        ck_assert_int_eq(seg_event_foreach(d, id, dump_event_cb, &b), SEG_OK);
        for (size_t k = 0; attr_names[k]; k++) {
            seg_value v;
            memset(&v, 0, sizeof v);
            ck_assert_int_eq(seg_customer_get_attr(&v, d, id, attr_names[k]), SEG_OK);
            if (v.type == SEG_TYPE_NULL)
                continue;
            sb_printf(&b, "attr %s %u ", attr_names[k], v.type);
            if (v.type == SEG_TYPE_STRING)
                sb_printf(&b, "'%s'\n", v.s);
            else if (v.type == SEG_TYPE_NUMBER)
                sb_printf(&b, "%.17g\n", v.d);
            else
                sb_printf(&b, "%" PRId64 "\n", v.i);
        }
        for (size_t k = 0; consent_chans[k]; k++) {
            int st = -1;
            ck_assert_int_eq(seg_customer_get_consent(&st, d, id, consent_chans[k]), SEG_OK);
            if (st)
                sb_printf(&b, "consent %s %d\n", consent_chans[k], st);
        }
        free(ids.ids[i]);
    }
    free(ids.ids);
    sb_printf(&b, "-- types\n");
    for (size_t k = 0; attr_names[k]; k++)
        sb_printf(&b, "%s:%u ", attr_names[k], seg_attr_type(d, attr_names[k]));
    sb_printf(&b, "\n");
    return b.p;
}

/* Assert two dumps are equal; show the first differing line. */
static void dump_eq(const char *a, const char *b, const char *what)
{
    if (strcmp(a, b) == 0)
        return;
    size_t i = 0, line = 1, start = 0;
    while (a[i] && a[i] == b[i]) {
        if (a[i] == '\n') {
            line++;
            start = i + 1;
        }
        i++;
    }
    const char *ea = strchr(a + start, '\n'), *eb = strchr(b + start, '\n');
    int na = ea ? (int)(ea - (a + start)) : (int)strlen(a + start);
    int nb = eb ? (int)(eb - (b + start)) : (int)strlen(b + start);
    ck_abort_msg("%s: states differ at line %zu:\n  before: %.*s\n  after:  %.*s", what, line, na,
                 a + start, nb, b + start);
}

static int hex32(const char *p)
{
    for (int k = 0; k < 32; k++)
        if (!isxdigit((unsigned char)p[k]))
            return 0;
    return 1;
}

/* Blank out what anonymization draws at random: the new id, and on the
 * lines of an anonymized customer the derived ids that hash it. */
static char *mask_anon(char *s)
{
    for (char *line = s; *line;) {
        char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        int anon = 0;
        for (size_t i = 0; i + 37 <= n; i++)
            if (memcmp(line + i, "anon-", 5) == 0 && hex32(line + i + 5)) {
                memset(line + i + 5, '?', 32);
                anon = 1;
            }
        for (size_t i = 0; anon && i + 33 <= n; i++)
            if (line[i] == '~' && hex32(line + i + 1))
                memset(line + i + 1, '?', 32);
        line += n + (end ? 1 : 0);
    }
    return s;
}

/* The state of the file at path, read through a fresh read-only handle. */
static char *dump_file(const char *path)
{
    seg_db *r = NULL;
    OPEN_OK(&r, path, SEG_DB_READONLY);
    char *s = dump(r);
    seg_db_close(r);
    return s;
}

/* ======================================================================== */
/* a wrapper backend: counts calls, fails the Nth, records what load streams */
/* ======================================================================== */

typedef struct fi_env {
    const seg_storage_backend *inner;
    long calls;          /* calls so far (all but close and rollback) */
    long fail_at;        /* fail the call with this number; 0: never */
    long failures;       /* failures injected */
    char failed_what[32];
    sbuf records;        /* "table/key=data" lines the last load streamed */
} fi_env;

typedef struct fi_storage {
    seg_storage base;
    fi_env *env;
    seg_storage *inner;
} fi_storage;

static fi_env fi;

static int fi_count(seg_storage *st, const char *what)
{
    fi_env *e = ((fi_storage *)st)->env;
    if (++e->calls != e->fail_at)
        return SEG_OK;
    e->failures++;
    snprintf(e->failed_what, sizeof e->failed_what, "%s", what);
    return seg_storage_set_error(st, SEG_ESTORAGE, "injected failure of call %ld (%s)",
                                 e->calls, what);
}

#define IN(st) (((fi_storage *)(st))->inner)
#define IM(st) (IN(st)->methods)

static const seg_storage_methods fi_methods;

static int fi_open(seg_storage *st, const char *uri, uint32_t flags, void *app_data)
{
    fi_storage *f = (fi_storage *)st;
    st->methods = &fi_methods;
    f->env = app_data;
    int rc = fi_count(st, "open");
    if (rc != SEG_OK)
        return rc;
    const seg_storage_backend *ib = f->env->inner;
    f->inner = calloc(1, ib->storage_size);
    if (!f->inner)
        return seg_storage_set_error(st, SEG_ENOMEM, "out of memory");
    f->inner->core = st->core; /* so the inner backend's errors reach the db */
    return ib->methods->open(f->inner, uri, flags, ib->app_data);
}

static void fi_close(seg_storage *st)
{
    fi_storage *f = (fi_storage *)st;
    if (f->inner) {
        f->env->inner->methods->close(f->inner);
        free(f->inner);
        f->inner = NULL;
    }
}

typedef struct fi_sink_ctx {
    const seg_storage_sink *sink;
    void *ctx;
    fi_env *env;
} fi_sink_ctx;

static int fs_meta(void *c, const char *k, const char *v)
{
    fi_sink_ctx *x = c;
    return x->sink->meta(x->ctx, k, v);
}
static int fs_customer(void *c, const char *id)
{
    fi_sink_ctx *x = c;
    return x->sink->customer(x->ctx, id);
}
static int fs_event(void *c, const seg_event_info *e)
{
    fi_sink_ctx *x = c;
    return x->sink->event(x->ctx, e);
}
static int fs_attr(void *c, const char *id, const char *n, const seg_value *v)
{
    fi_sink_ctx *x = c;
    return x->sink->attr(x->ctx, id, n, v);
}
static int fs_consent(void *c, const char *id, const char *ch, int s)
{
    fi_sink_ctx *x = c;
    return x->sink->consent(x->ctx, id, ch, s);
}
static int fs_record(void *c, const char *t, const char *k, const void *d, size_t n)
{
    fi_sink_ctx *x = c;
    sb_printf(&x->env->records, "%s/%s=%.*s\n", t, k, (int)n, (const char *)d);
    return x->sink->record(x->ctx, t, k, d, n);
}

static int fi_load(seg_storage *st, const seg_storage_sink *sink, void *ctx)
{
    int rc = fi_count(st, "load");
    if (rc != SEG_OK)
        return rc;
    fi_env *e = ((fi_storage *)st)->env;
    e->records.n = 0;
    if (e->records.p)
        e->records.p[0] = '\0';
    seg_storage_sink ws = { sizeof ws, fs_meta, fs_customer, fs_event, fs_attr, fs_consent,
                            fs_record };
    fi_sink_ctx x = { sink, ctx, e };
    return IM(st)->load(IN(st), sink ? &ws : NULL, &x);
}

static int fi_begin(seg_storage *st)
{
    int rc = fi_count(st, "begin");
    return rc ? rc : IM(st)->begin(IN(st));
}
static int fi_commit(seg_storage *st)
{
    int rc = fi_count(st, "commit");
    return rc ? rc : IM(st)->commit(IN(st));
}
static int fi_rollback(seg_storage *st)
{
    return IM(st)->rollback(IN(st));
}
static int fi_put_meta(seg_storage *st, const char *k, const char *v)
{
    int rc = fi_count(st, "put_meta");
    return rc ? rc : IM(st)->put_meta(IN(st), k, v);
}
static int fi_put_events(seg_storage *st, const seg_event_info *ev, size_t n)
{
    int rc = fi_count(st, "put_events");
    return rc ? rc : IM(st)->put_events(IN(st), ev, n);
}
static int fi_put_customer(seg_storage *st, const char *id)
{
    int rc = fi_count(st, "put_customer");
    return rc ? rc : IM(st)->put_customer(IN(st), id);
}
static int fi_put_attr(seg_storage *st, const char *id, const char *n, const seg_value *v)
{
    int rc = fi_count(st, "put_attr");
    return rc ? rc : IM(st)->put_attr(IN(st), id, n, v);
}
static int fi_put_consent(seg_storage *st, const char *id, const char *ch, int s)
{
    int rc = fi_count(st, "put_consent");
    return rc ? rc : IM(st)->put_consent(IN(st), id, ch, s);
}
static int fi_erase_customer(seg_storage *st, const char *id)
{
    int rc = fi_count(st, "erase_customer");
    return rc ? rc : IM(st)->erase_customer(IN(st), id);
}
static int fi_put_record(seg_storage *st, const char *t, const char *k, const void *d, size_t n)
{
    int rc = fi_count(st, "put_record");
    return rc ? rc : IM(st)->put_record(IN(st), t, k, d, n);
}

static const seg_storage_methods fi_methods = {
    SEG_STORAGE_METHODS_V1, fi_open, fi_close, fi_load, fi_begin, fi_commit, fi_rollback,
    fi_put_meta, fi_put_events, fi_put_customer, fi_put_attr, fi_put_consent,
    fi_erase_customer, fi_put_record,
};

static const seg_storage_backend fi_backend = {
    SEG_STORAGE_BACKEND_V1, sizeof(fi_storage), "faulty", &fi_methods, &fi,
};

static void fi_reset(long fail_at)
{
    const seg_storage_backend *inner = fi.inner;
    free(fi.records.p);
    memset(&fi, 0, sizeof fi);
    fi.inner = inner ? inner : seg_storage_sqlite();
    fi.fail_at = fail_at;
}

/* ======================================================================== */
/* a workload touching every kind of stored data                             */
/* ======================================================================== */

/* Store (data non-NULL) or delete a module record, as a module will:
 * through the core's storage calls, in one transaction. */
static int put_record(seg_db *d, const char *table, const char *key, const char *data)
{
    int rc = seg__st_begin(d);
    if (rc != SEG_OK)
        return rc;
    rc = seg__st_put_record(d, table, key, data, data ? strlen(data) : 0);
    if (rc == SEG_OK)
        rc = seg__st_commit(d);
    if (rc != SEG_OK)
        seg__st_rollback(d);
    return rc;
}

static seg_event ev_full(const char *eid, const char *cust, int64_t ts, int64_t amount,
                         const char *order, const char *chan, const char *cat, const char *sku,
                         int32_t qty)
{
    seg_event e = tu_purchase(eid, cust, ts, amount, order);
    e.channel = chan;
    e.category = cat;
    e.sku = sku;
    e.quantity = qty;
    return e;
}

static void on_reject_ignore(size_t i, int code, const char *why, void *p)
{
    (void)i; (void)code; (void)why; (void)p;
}

#define NSTEPS 17

/* Step k of the workload; returns its status. */
static int step(seg_db *d, int k)
{
    static const char csv_dups[] =
        "customer_id,ts,amount,channel\n"
        "gina,2024-01-02,5.00,web\n"
        "gina,2024-01-02,5.00,web\n"
        "gina,2024-01-02,5.00,web\n"
        "gina,2024-01-03,7.00,store\n";
    static const char csv_custs[] =
        "customer_id,country:string,birth_year:int,vip:bool,consent:email,consent:sms\n"
        "hank,DE,1980,true,granted,\n"
        "ivy,FR,,false,,denied\n"
        "alice,US,1990,,denied,granted\n";
    seg_value v;
    memset(&v, 0, sizeof v);
    switch (k) {
    case 0: {
        seg_event e[8];
        e[0] = ev_full("e1", "alice", TU_DAYN(1), 1000, "o1", "web", "books", "B1", 1);
        e[1] = ev_full("e2", "alice", TU_DAYN(1), 550, "o1", "web", "toys", "T1", 2);
        e[2] = tu_refund("e3", "alice", TU_DAYN(5), -550, "o1");
        e[2].quantity = 1;
        e[3] = ev_full("e4", "bob", TU_DAYN(2), 2000, "o2", "store", "home", NULL, 3);
        e[4] = tu_engagement("e5", "carol", TU_DAYN(3), "email_open");
        e[4].channel = "email";
        e[5] = ev_full("e6", "bob", TU_DAYN(4), 725, NULL, "store", "home", "H2",
                       SEG_QUANTITY_DEFAULT);
        e[6] = tu_refund("e7", "bob", TU_DAYN(6), -100, "e6");
        e[7] = ev_full("e8", "carol", TU_DAYN(7), 0, "o3", NULL, NULL, NULL, 0);
        return seg_event_ingest_batch(d, e, 8, NULL, NULL);
    }
    case 1: {
        seg_event e[4];
        e[0] = ev_full(NULL, "erin", TU_DAYN(2), 1200, "oe1", "app", "books", NULL,
                       SEG_QUANTITY_DEFAULT);
        e[1] = ev_full(NULL, "erin", TU_DAYN(2), 1300, "oe1", "app", "books", NULL,
                       SEG_QUANTITY_DEFAULT);
        e[2] = tu_engagement(NULL, "erin", TU_DAYN(3), "email_click");
        e[3] = ev_full(NULL, "frank", TU_DAYN(8), 990, NULL, NULL, "food", NULL,
                       SEG_QUANTITY_DEFAULT);
        return seg_event_ingest_batch(d, e, 4, NULL, NULL);
    }
    case 2:
        return seg_event_import_csv(d, csv_dups, sizeof csv_dups - 1, NULL, NULL);
    case 3:
        return seg_customer_add(d, "prospect1");
    case 4: {
        int rc;
        v.type = SEG_TYPE_STRING;
        v.s = "gold";
        if ((rc = seg_customer_set_attr(d, "alice", "tier", &v)) != SEG_OK)
            return rc;
        v.type = SEG_TYPE_INT;
        v.i = -42;
        if ((rc = seg_customer_set_attr(d, "alice", "score", &v)) != SEG_OK)
            return rc;
        v.type = SEG_TYPE_NUMBER;
        v.d = 12.125;
        if ((rc = seg_customer_set_attr(d, "alice", "ltv", &v)) != SEG_OK)
            return rc;
        v.type = SEG_TYPE_TIME;
        v.i = TU_D0 - 1000;
        if ((rc = seg_customer_set_attr(d, "gina", "joined", &v)) != SEG_OK)
            return rc;
        v.type = SEG_TYPE_STRING;
        v.s = "new, \"quoted\" \xc3\xa9";
        return seg_customer_set_attr(d, "newbie", "tier", &v);
    }
    case 5: {
        int rc = seg_customer_set_consent(d, "alice", "push", SEG_CONSENT_GRANTED);
        if (rc == SEG_OK)
            rc = seg_customer_set_consent(d, "erin", "email", SEG_CONSENT_GRANTED);
        return rc ? rc : seg_customer_set_consent(d, "bob", "sms", SEG_CONSENT_DENIED);
    }
    case 6:
        return seg_customer_import_csv(d, csv_custs, sizeof csv_custs - 1, "custs.csv");
    case 7: {
        v.type = SEG_TYPE_NULL;
        int rc = seg_customer_set_attr(d, "alice", "score", &v);
        return rc ? rc : seg_customer_set_consent(d, "alice", "push", SEG_CONSENT_UNKNOWN);
    }
    case 8:
        return seg_customer_erase(d, "bob");
    case 9:
        return seg_attr_declare(d, "note", SEG_TYPE_STRING);
    case 10: {
        seg_event e[3];
        e[0] = ev_full("e20", "bob", TU_DAYN(10), 300, "o20", "web", "toys", NULL, 1);
        e[1] = ev_full("e21", "alice", TU_DAYN(11), 400, "o21", "web", "books", "B1", 1);
        e[2] = ev_full(NULL, "zed", TU_DAYN(12), 500, NULL, "kiosk", NULL, NULL,
                       SEG_QUANTITY_DEFAULT);
        return seg_event_ingest_batch(d, e, 3, NULL, NULL);
    }
    case 11: {
        seg_event e[3];
        e[0] = ev_full("e30", "hank", TU_DAYN(13), 100, "o30", NULL, NULL, NULL, 1);
        e[1] = tu_refund("e31", "hank", TU_DAYN(14), -100, "nosuchorder");
        e[2] = tu_engagement("e32", "ivy", TU_DAYN(15), "store_visit");
        seg_ingest_options o = SEG_INGEST_OPTIONS_INIT;
        o.flags = SEG_INGEST_PER_EVENT;
        o.on_reject = on_reject_ignore;
        return seg_event_ingest_batch(d, e, 3, &o, NULL);
    }
    case 12: {
        int rc = put_record(d, "journey_state", "alice/j1", "state=wait");
        if (rc == SEG_OK)
            rc = put_record(d, "outbox", "0001", "email:discount_5");
        if (rc == SEG_OK)
            rc = put_record(d, "journey_state", "bob/j1", "state=x");
        return rc;
    }
    case 13:
        return put_record(d, "journey_state", "bob/j1", NULL);
    case 14: {
        char *nid = NULL;
        int rc = seg_customer_anonymize(d, "erin", &nid);
        seg_free(nid);
        return rc;
    }
    case 15: {
        seg_event e = ev_full("e40", "gina", TU_DAYN(20), 1999, "o40", "web", NULL, NULL, 1);
        int rc = seg_event_ingest(d, &e);
        return rc ? rc : seg_event_ingest(d, &e); /* a duplicate: no write */
    }
    case 16: {
        seg_event e = tu_refund(NULL, "gina", TU_DAYN(21), -999, "o40");
        return seg_event_ingest(d, &e);
    }
    default:
        return SEG_EINVAL;
    }
}

static void workload(seg_db *d)
{
    for (int k = 0; k < NSTEPS; k++) {
        int rc = step(d, k);
        ck_assert_msg(rc == SEG_OK, "workload step %d: %d %s", k, rc, seg_errmsg(d));
    }
}

/* ======================================================================== */
/* reopen gives the same state                                               */
/* ======================================================================== */

START_TEST(reopen_workload)
{
    const char *path = P("w.db");
    OPEN_OK(&db, path, SEG_DB_CREATE);
    workload(db);
    char *before = dump(db);
    seg_db_close(db);
    db = NULL;
    OPEN_OK(&db, path, 0);
    char *after = dump(db);
    dump_eq(before, after, "reopen");
    free(after);
    /* and read-only, and the same as the same workload in memory */
    after = dump_file(path);
    dump_eq(before, after, "read-only reopen");
    free(after);
    seg_db *m = NULL;
    ck_assert_int_eq(seg_db_open(&m, ":memory:", NULL), SEG_OK);
    workload(m);
    char *mem = mask_anon(dump(m));
    seg_db_close(m);
    char *masked = mask_anon(strdup(before));
    dump_eq(mem, masked, "memory vs sqlite");
    free(masked);
    free(mem);
    free(before);
}
END_TEST

START_TEST(reopen_records)
{
    const char *path = P("r.db");
    fi_reset(0);
    ck_assert_int_eq(open_be(&db, path, SEG_DB_CREATE, &fi_backend), SEG_OK);
    for (int k = 0; k < NSTEPS; k++)
        ck_assert_int_eq(step(db, k), SEG_OK);
    seg_db_close(db);
    db = NULL;
    fi_reset(0);
    ck_assert_int_eq(open_be(&db, path, 0, &fi_backend), SEG_OK);
    ck_assert_str_eq(fi.records.p, "journey_state/alice/j1=state=wait\noutbox/0001=email:discount_5\n");
}
END_TEST

/* collects "key=data" lines from seg__st_load_records, sorted by key */
static int collect_record(void *ctx, const char *key, const void *data, size_t len)
{
    sbuf *b = ctx;
    sb_printf(b, "%s=%.*s\n", key, (int)len, (const char *)data);
    return SEG_OK;
}

static int refuse_record(void *ctx, const char *key, const void *data, size_t len)
{
    SEG_UNUSED(ctx); SEG_UNUSED(key); SEG_UNUSED(data); SEG_UNUSED(len);
    return SEG_ELIMIT;
}

START_TEST(load_records_of_one_table)
{
    const char *path = P("lr.db");
    OPEN_OK(&db, path, SEG_DB_CREATE);
    ck_assert(seg__st_wants_records(db));
    for (int k = 0; k < NSTEPS; k++)
        ck_assert_int_eq(step(db, k), SEG_OK);
    seg_db_close(db);
    db = NULL;
    /* the SQLite backend's own load_records (version 2), then a version 1
     * wrapper, where the core reads everything and keeps the one table */
    for (int v = 0; v < 2; v++) {
        fi_reset(0);
        if (v == 0)
            OPEN_OK(&db, path, 0);
        else
            ck_assert_int_eq(open_be(&db, path, 0, &fi_backend), SEG_OK);
        sbuf b = { 0 };
        ck_assert_int_eq(seg__st_load_records(db, "journey_state", collect_record, &b), SEG_OK);
        ck_assert_str_eq(b.p, "alice/j1=state=wait\n");
        b.n = 0;
        ck_assert_int_eq(seg__st_load_records(db, "outbox", collect_record, &b), SEG_OK);
        ck_assert_str_eq(b.p, "0001=email:discount_5\n");
        b.n = 0;
        b.p[0] = '\0';
        ck_assert_int_eq(seg__st_load_records(db, "nosuch", collect_record, &b), SEG_OK);
        ck_assert_str_eq(b.p, "");
        /* a failing callback fails the call (the backend reports it as a
         * storage error), with a message */
        ck_assert_int_eq(seg__st_load_records(db, "outbox", refuse_record, NULL), SEG_ESTORAGE);
        ck_assert_str_ne(seg_errmsg(db), "");
        free(b.p);
        seg_db_close(db);
        db = NULL;
    }
    /* the memory backend keeps no records: nothing to write, nothing read */
    ck_assert_int_eq(seg_db_open(&db, ":memory:", NULL), SEG_OK);
    ck_assert(!seg__st_wants_records(db));
    ck_assert_int_eq(seg__st_load_records(db, "outbox", refuse_record, NULL), SEG_OK);
}
END_TEST

/* A module following ingestion: writes one record per batch inside the
 * batch's transaction, and can be told to fail. */
typedef struct hook_mod {
    uint32_t first, n;       /* last events_added range */
    int calls, commits, rollbacks;
    int fail;                /* fail the next events_added */
} hook_mod;

static int hook_events(seg_db *d, void *state, uint32_t first, uint32_t n)
{
    hook_mod *h = state;
    h->first = first;
    h->n = n;
    h->calls++;
    char key[32], data[32];
    snprintf(key, sizeof key, "%u", (unsigned)first);
    snprintf(data, sizeof data, "%u", (unsigned)n);
    int rc = seg__st_put_record(d, "hooktest", key, data, strlen(data));
    if (rc == SEG_OK && h->fail) {
        h->fail = 0;
        rc = seg__error(d, SEG_ELIMIT, "hook test: refused");
    }
    return rc;
}

static void hook_end(seg_db *d, void *state, bool committed)
{
    SEG_UNUSED(d);
    hook_mod *h = state;
    if (committed)
        h->commits++;
    else
        h->rollbacks++;
}

static const seg__module_ops hook_ops = { "hooktest", hook_events, hook_end };

START_TEST(module_hooks_follow_batches)
{
    const char *path = P("hook.db");
    OPEN_OK(&db, path, SEG_DB_CREATE);
    hook_mod h = { 0 };
    ck_assert_int_eq(seg__module_attach(db, &hook_ops, &h), SEG_OK);
    seg_event e[2];
    e[0] = ev_full("h1", "ann", TU_DAYN(1), 100, "oh1", NULL, NULL, NULL, 1);
    e[1] = ev_full("h2", "ann", TU_DAYN(2), 200, "oh2", NULL, NULL, NULL, 1);
    TU_OK(db, seg_event_ingest_batch(db, e, 2, NULL, NULL));
    ck_assert_int_eq(h.calls, 1);
    ck_assert_uint_eq(h.first, 0);
    ck_assert_uint_eq(h.n, 2);
    ck_assert_int_eq(h.commits, 1);
    /* a batch of duplicates adds nothing: no call, the transaction still ends */
    TU_OK(db, seg_event_ingest_batch(db, e, 2, NULL, NULL));
    ck_assert_int_eq(h.calls, 1);
    ck_assert_int_eq(h.commits, 2);
    /* the module fails: the batch is rolled back, in memory and on disk */
    h.fail = 1;
    seg_event f = ev_full("h3", "bo", TU_DAYN(3), 300, "oh3", NULL, NULL, NULL, 1);
    ck_assert_int_eq(seg_event_ingest(db, &f), SEG_ELIMIT);
    ck_assert_ptr_nonnull(strstr(seg_errmsg(db), "refused"));
    ck_assert_int_eq(h.rollbacks, 1);
    ck_assert_uint_eq(seg_event_count(db), 2);
    TU_OK(db, seg_event_ingest(db, &f));
    ck_assert_uint_eq(h.first, 2);
    ck_assert_uint_eq(h.n, 1);
    seg__module_detach(db, &h);
    seg_event g = ev_full("h4", "bo", TU_DAYN(4), 300, "oh4", NULL, NULL, NULL, 1);
    TU_OK(db, seg_event_ingest(db, &g));
    ck_assert_int_eq(h.calls, 3);
    seg_db_close(db);
    db = NULL;
    /* what the module wrote is there after reopen, and only that */
    OPEN_OK(&db, path, 0);
    sbuf b = { 0 };
    ck_assert_int_eq(seg__st_load_records(db, "hooktest", collect_record, &b), SEG_OK);
    ck_assert_str_eq(b.p, "0=2\n2=1\n");
    free(b.p);
}
END_TEST

/* Import events (and customers) from files into d. */
static void import_files(seg_db *d, const char *events, const char *customers)
{
    TU_OK(d, seg_event_import_csv_file(d, events, NULL, NULL));
    if (customers)
        TU_OK(d, seg_customer_import_csv_file(d, customers));
}

/* Import into a new file, reopen, compare; also against memory. */
static void reopen_same(const char *events, const char *customers)
{
    const char *path = P("f.db");
    OPEN_OK(&db, path, SEG_DB_CREATE);
    import_files(db, events, customers);
    ck_assert_uint_gt(seg_event_count(db), 1000);
    char *before = dump(db);
    seg_db_close(db);
    db = NULL;
    seg_db *m = NULL;
    ck_assert_int_eq(seg_db_open(&m, ":memory:", NULL), SEG_OK);
    import_files(m, events, customers);
    char *mem = dump(m);
    seg_db_close(m);
    dump_eq(mem, before, "memory vs sqlite");
    OPEN_OK(&db, path, 0);
    char *after = dump(db);
    dump_eq(before, after, "reopen");
    /* importing the same files again changes nothing (ids survive reopen) */
    import_files(db, events, customers);
    free(after);
    after = dump(db);
    dump_eq(before, after, "re-import after reopen");
    free(after);
    free(before);
    free(mem);
}

START_TEST(reopen_sample)
{
    char ev[PATH_MAX], cu[PATH_MAX];
    snprintf(ev, sizeof ev, "%s/examples/data/sample_events.csv", src_root());
    snprintf(cu, sizeof cu, "%s/examples/data/sample_customers.csv", src_root());
    reopen_same(ev, cu);
}
END_TEST

START_TEST(reopen_generated)
{
    const char *gen = getenv("SEG_GEN");
    ck_assert_msg(gen && *gen, "SEG_GEN is not set (run through meson test)");
    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "'%s' --customers 300 --seed 11 --events-out '%s' "
             "--customers-out '%s'", gen, P("gen_events.csv"), P("gen_customers.csv"));
    ck_assert_int_eq(system(cmd), 0);
    reopen_same(P("gen_events.csv"), P("gen_customers.csv"));
}
END_TEST

/* ======================================================================== */
/* the file as plain SQL                                                     */
/* ======================================================================== */

static sqlite3 *sql_open(const char *path, int flags)
{
    sqlite3 *h = NULL;
    int rc = sqlite3_open_v2(path, &h, flags, NULL);
    ck_assert_msg(rc == SQLITE_OK, "sqlite3_open_v2 %s: %s", path, sqlite3_errstr(rc));
    return h;
}

static void sql_exec(sqlite3 *h, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(h, sql, NULL, NULL, &err);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, err ? err : "?");
}

/* an integer from a one-row query */
static int64_t sql_int(sqlite3 *h, const char *sql)
{
    sqlite3_stmt *q;
    ck_assert_msg(sqlite3_prepare_v2(h, sql, -1, &q, NULL) == SQLITE_OK, "%s: %s", sql,
                  sqlite3_errmsg(h));
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

/* a text from a one-row query, into buf ("" for NULL) */
static const char *sql_text(sqlite3 *h, const char *sql, char *buf, size_t n)
{
    sqlite3_stmt *q;
    ck_assert_msg(sqlite3_prepare_v2(h, sql, -1, &q, NULL) == SQLITE_OK, "%s: %s", sql,
                  sqlite3_errmsg(h));
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    const unsigned char *t = sqlite3_column_text(q, 0);
    snprintf(buf, n, "%s", t ? (const char *)t : "");
    sqlite3_finalize(q);
    return buf;
}

/* The query that follows the marker in doc/storage.md (malloc'd). */
static char *doc_query(const char *marker)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/doc/storage.md", src_root());
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    static char text[1 << 17];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *m = strstr(text, marker);
    ck_assert_msg(m != NULL, "%s: no %s", path, marker);
    const char *a = strstr(m, "```sql\n");
    ck_assert_ptr_nonnull(a);
    a += 7;
    const char *b = strstr(a, "```");
    ck_assert_ptr_nonnull(b);
    return strndup(a, (size_t)(b - a));
}

/* The documented net-revenue query gives the library's net_revenue for
 * every customer. */
static void check_net_revenue(const char *path, seg_db *d)
{
    char *q = doc_query("<!-- net-revenue-query -->");
    sqlite3 *h = sql_open(path, SQLITE_OPEN_READONLY);
    sqlite3_stmt *st;
    ck_assert_msg(sqlite3_prepare_v2(h, q, -1, &st, NULL) == SQLITE_OK, "%s: %s", q,
                  sqlite3_errmsg(h));
    uint64_t rows = 0;
    int64_t total = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        int64_t net = sqlite3_column_int64(st, 1);
        seg_customer_info ci = SEG_CUSTOMER_INFO_INIT;
        ck_assert_msg(seg_customer_get(&ci, d, id) == SEG_OK, "SQL customer %s unknown", id);
        ck_assert_msg(ci.net_revenue == net, "%s: library %" PRId64 ", SQL %" PRId64, id,
                      ci.net_revenue, net);
        rows++;
        total += net;
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    free(q);
    ck_assert_uint_eq(rows, seg_customer_count(d));
    ck_assert_int_ne(total, 0);
}

START_TEST(sql_net_revenue_documented)
{
    char ev[PATH_MAX], cu[PATH_MAX];
    snprintf(ev, sizeof ev, "%s/examples/data/sample_events.csv", src_root());
    snprintf(cu, sizeof cu, "%s/examples/data/sample_customers.csv", src_root());
    const char *path = P("n.db");
    OPEN_OK(&db, path, SEG_DB_CREATE);
    import_files(db, ev, cu);
    workload(db);   /* refunds, erasure, anonymization, prospects */
    check_net_revenue(path, db);
}
END_TEST

START_TEST(sql_views_readable)
{
    const char *path = P("v.db");
    OPEN_OK(&db, path, SEG_DB_CREATE);
    workload(db);
    sqlite3 *h = sql_open(path, SQLITE_OPEN_READONLY);
    char buf[256];
    /* alice's first line, by name */
    ck_assert_str_eq(sql_text(h, "SELECT customer_id || '|' || time || '|' || type || '|' || "
                                 "amount || '|' || quantity || '|' || order_id || '|' || "
                                 "channel || '|' || category || '|' || sku || '|' || event_id "
                                 "FROM seg_events_v WHERE event_id = 'e1'", buf, sizeof buf),
                     "alice|2024-03-02T00:00:00Z|purchase|1000|1|o1|web|books|B1|e1");
    ck_assert_str_eq(sql_text(h, "SELECT type || amount || refund_of FROM seg_events_v "
                                 "WHERE event_id = 'e3'", buf, sizeof buf),
                     "refund-550o1");
    ck_assert_str_eq(sql_text(h, "SELECT name || channel FROM seg_events_v WHERE event_id = 'e5'",
                              buf, sizeof buf), "email_openemail");
    /* derived ids are not stored: NULL, or the occurrence of repeated rows */
    ck_assert_int_eq(sql_int(h, "SELECT count(*) FROM seg_events_v e WHERE customer_id = 'gina' "
                                "AND event_id IS NULL"), 5);
    ck_assert_int_eq(sql_int(h, "SELECT group_concat(quote(e.event_id)) = "
                                "'NULL,1,2,NULL,''e40'',NULL' "
                                "FROM seg_events e JOIN seg_customers c ON c.id = e.customer "
                                "AND c.customer_id = 'gina' ORDER BY e.id"), 1);
    /* the own order of a purchase without order id is NULL */
    ck_assert_int_eq(sql_int(h, "SELECT order_id IS NULL FROM seg_events_v WHERE customer_id = "
                                "'zed'"), 1);
    ck_assert_str_eq(sql_text(h, "SELECT group_concat(name || '=' || type || ':' || value, ' ') "
                                 "FROM (SELECT * FROM seg_attributes_v WHERE customer_id = "
                                 "'alice' ORDER BY name)", buf, sizeof buf),
                     "birth_year=int:1990 country=string:US ltv=number:12.125 tier=string:gold");
    ck_assert_str_eq(sql_text(h, "SELECT value FROM seg_attributes_v WHERE name = 'joined'",
                              buf, sizeof buf), "2024-02-29T23:43:20Z");
    ck_assert_str_eq(sql_text(h, "SELECT group_concat(customer_id || ':' || value, ' ') FROM "
                                 "(SELECT * FROM seg_attributes_v WHERE name = 'vip' ORDER BY 1)",
                              buf, sizeof buf), "hank:true ivy:false");
    ck_assert_str_eq(sql_text(h, "SELECT group_concat(customer_id || ':' || channel || ':' || "
                                 "state, ' ') FROM (SELECT * FROM seg_consent_v ORDER BY 1, 2)",
                              buf, sizeof buf),
                     "alice:email:denied alice:sms:granted hank:email:granted ivy:sms:denied");
    ck_assert_str_eq(sql_text(h, "SELECT value FROM seg_meta WHERE key = 'currency_exponent'",
                              buf, sizeof buf), "2");
    ck_assert_str_eq(sql_text(h, "SELECT value FROM seg_meta WHERE key = 'attr:note'",
                              buf, sizeof buf), "string");
    ck_assert_str_eq(sql_text(h, "SELECT group_concat(tbl || '/' || key || '=' || data, ' ') "
                                 "FROM seg_records", buf, sizeof buf),
                     "journey_state/alice/j1=state=wait outbox/0001=email:discount_5");
    ck_assert_int_eq(sql_int(h, "SELECT version FROM seg_schema_version"), 3);
    ck_assert_int_eq(sql_int(h, "PRAGMA application_id"), 0x5345474d);
    ck_assert_str_eq(sql_text(h, "PRAGMA journal_mode", buf, sizeof buf), "wal");
    sqlite3_close(h);
}
END_TEST

/* true when the file's bytes contain needle */
static int file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t cap = 1 << 20, n = 0, k;
    char *buf = malloc(cap);
    while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap && !(buf = realloc(buf, cap *= 2)))
            break;
    }
    fclose(f);
    int found = 0;
    for (size_t i = 0, m = strlen(needle); buf && i + m <= n && !found; i++)
        found = memcmp(buf + i, needle, m) == 0;
    free(buf);
    return found;
}

/* Erasure leaves nothing of the customer in any table, nor in the file. */
START_TEST(sql_erase_removes_rows)
{
    const char *path = P("e.db");
    OPEN_OK(&db, path, SEG_DB_CREATE);
    workload(db);
    seg_event e[3];
    e[0] = ev_full("zz-erase-ev1", "zz-erase-me", TU_DAYN(3), 100, "zz-erase-o1", "web", NULL,
                   NULL, 1);
    e[1] = ev_full(NULL, "zz-erase-me", TU_DAYN(4), 200, "zz-erase-o2", "web", NULL, NULL, 1);
    e[2] = tu_refund(NULL, "zz-erase-me", TU_DAYN(5), -50, "zz-erase-o1");
    TU_OK(db, seg_event_ingest_batch(db, e, 3, NULL, NULL));
    seg_value v = { SEG_TYPE_STRING, 0, 0, "zz-erase-secret" };
    TU_OK(db, seg_customer_set_attr(db, "zz-erase-me", "note", &v));
    TU_OK(db, seg_customer_set_consent(db, "zz-erase-me", "sms", SEG_CONSENT_GRANTED));
    sqlite3 *h = sql_open(path, SQLITE_OPEN_READONLY);
    int64_t cid = sql_int(h, "SELECT id FROM seg_customers WHERE customer_id = 'zz-erase-me'");
    int64_t all = sql_int(h, "SELECT count(*) FROM seg_events");
    sqlite3_close(h);
    TU_OK(db, seg_customer_erase(db, "zz-erase-me"));
    h = sql_open(path, SQLITE_OPEN_READONLY);
    char q[256];
    static const char *const tables[] = { "seg_events", "seg_attributes", "seg_consent" };
    for (int k = 0; k < 3; k++) {
        snprintf(q, sizeof q, "SELECT count(*) FROM %s WHERE customer = %" PRId64, tables[k], cid);
        ck_assert_int_eq(sql_int(h, q), 0);
    }
    ck_assert_int_eq(sql_int(h, "SELECT count(*) FROM seg_customers WHERE customer_id = "
                                "'zz-erase-me'"), 0);
    ck_assert_int_eq(sql_int(h, "SELECT count(*) FROM seg_events"), all - 3);
    sqlite3_close(h);
    /* once the WAL is checkpointed into the file, no byte of it is left */
    seg_db_close(db);
    db = NULL;
    ck_assert_int_eq(file_has(path, "zz-erase"), 0);
    ck_assert_int_eq(file_has(path, "e40"), 1); /* the search works */
}
END_TEST

/* More identical rows than the stored occurrence search covers. */
START_TEST(sql_many_identical_rows)
{
    const char *path = P("i.db");
    sbuf b = { NULL, 0, 0 };
    sb_printf(&b, "customer_id,ts,amount\n");
    for (int k = 0; k < 70; k++)
        sb_printf(&b, "rep,2024-01-02,1.00\n");
    OPEN_OK(&db, path, SEG_DB_CREATE);
    TU_OK(db, seg_event_import_csv(db, b.p, b.n, NULL, NULL));
    ck_assert_uint_eq(seg_event_count(db), 70);
    char *before = dump(db);
    seg_db_close(db);
    db = NULL;
    OPEN_OK(&db, path, 0);
    char *after = dump(db);
    dump_eq(before, after, "reopen");
    /* the same file again: all duplicates */
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    TU_OK(db, seg_event_import_csv(db, b.p, b.n, NULL, &st));
    ck_assert_uint_eq(st.duplicates, 70);
    sqlite3 *h = sql_open(path, SQLITE_OPEN_READONLY);
    ck_assert_int_eq(sql_int(h, "SELECT count(*) FROM seg_events WHERE event_id IS NULL"), 1);
    ck_assert_int_eq(sql_int(h, "SELECT count(*) FROM seg_events WHERE typeof(event_id) = "
                                "'integer'"), 63);
    ck_assert_int_eq(sql_int(h, "SELECT count(*) FROM seg_events WHERE typeof(event_id) = "
                                "'text' AND event_id LIKE '~%'"), 6);
    sqlite3_close(h);
    free(before);
    free(after);
    free(b.p);
}
END_TEST

/* ======================================================================== */
/* schema versions                                                           */
/* ======================================================================== */

/* the view `name` of doc file `doc`, whitespace squeezed */
static char *doc_view(const char *doc, const char *name)
{
    char path[PATH_MAX], head[128];
    snprintf(path, sizeof path, "%s/doc/%s", src_root(), doc);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    snprintf(head, sizeof head, "CREATE VIEW %s AS", name);
    char *a = strstr(buf, head);
    ck_assert_msg(a != NULL, "%s has no '%s'", doc, head);
    char *e = strstr(a, ";\n");
    ck_assert_ptr_nonnull(e);
    char *out = malloc((size_t)(e - a) + 1), *o = out;
    for (const char *p = a; p < e; p++)
        if (!(isspace((unsigned char)*p) && (o == out || o[-1] == ' ')))
            *o++ = isspace((unsigned char)*p) ? ' ' : *p;
    *o = '\0';
    return out;
}

START_TEST(module_views_are_the_documented_ones)
{
    const char *path = P("mv.db");
    OPEN_OK(&db, path, SEG_DB_CREATE);
    seg_db_close(db);
    db = NULL;
    sqlite3 *h = sql_open(path, SQLITE_OPEN_READONLY);
    static const char *const v[][2] = { { "journey.md", "seg_journey_states_v" },
                                        { "outbox.md", "seg_outbox_v" },
                                        { "loyalty.md", "seg_loyalty_entries_v" } };
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        char *want = doc_view(v[k][0], v[k][1]);
        char q[256], got[1 << 13];
        snprintf(q, sizeof q, "SELECT sql FROM sqlite_master WHERE type = 'view' AND name = '%s'",
                 v[k][1]);
        sql_text(h, q, got, sizeof got);
        char *g = got, *o = got;
        for (; *g; g++)
            if (!(isspace((unsigned char)*g) && (o == got || o[-1] == ' ')))
                *o++ = isspace((unsigned char)*g) ? ' ' : *g;
        *o = '\0';
        ck_assert_str_eq(got, want);
        /* and it reads (no row yet) */
        snprintf(q, sizeof q, "SELECT count(*) FROM %s", v[k][1]);
        ck_assert_int_eq(sql_int(h, q), 0);
        free(want);
    }
    sqlite3_close(h);
}
END_TEST

START_TEST(schema_upgrade_from_v1)
{
    const char *path = P("u.db");
    OPEN_OK(&db, path, SEG_DB_CREATE);
    workload(db);
    char *before = dump(db);
    seg_db_close(db);
    db = NULL;
    /* make it a version 1 file: the tables without the views */
    sqlite3 *h = sql_open(path, SQLITE_OPEN_READWRITE);
    sql_exec(h, "DROP VIEW seg_events_v; DROP VIEW seg_attributes_v; DROP VIEW seg_consent_v; "
                "DROP VIEW seg_journey_states_v; DROP VIEW seg_outbox_v; "
                "DROP VIEW seg_loyalty_entries_v; UPDATE seg_schema_version SET version = 1");
    sqlite3_close(h);
    /* read-only: read as it is */
    char *ro = dump_file(path);
    dump_eq(before, ro, "read-only open of version 1");
    h = sql_open(path, SQLITE_OPEN_READONLY);
    ck_assert_int_eq(sql_int(h, "SELECT version FROM seg_schema_version"), 1);
    sqlite3_close(h);
    /* writable: upgraded */
    OPEN_OK(&db, path, 0);
    char *after = dump(db);
    dump_eq(before, after, "upgraded");
    h = sql_open(path, SQLITE_OPEN_READONLY);
    ck_assert_int_eq(sql_int(h, "SELECT version FROM seg_schema_version"), 3);
    ck_assert_int_eq(sql_int(h, "SELECT count(*) FROM seg_events_v"), (int64_t)seg_event_count(db));
    ck_assert_int_eq(sql_int(h, "SELECT count(*) FROM seg_outbox_v"), 0);
    sqlite3_close(h);
    seg_db_close(db);
    db = NULL;
    /* a version 2 file (no module views) is upgraded too */
    h = sql_open(path, SQLITE_OPEN_READWRITE);
    sql_exec(h, "DROP VIEW seg_journey_states_v; DROP VIEW seg_outbox_v; "
                "DROP VIEW seg_loyalty_entries_v; UPDATE seg_schema_version SET version = 2");
    sqlite3_close(h);
    OPEN_OK(&db, path, 0);
    char *again = dump(db);
    dump_eq(before, again, "upgraded from 2");
    h = sql_open(path, SQLITE_OPEN_READONLY);
    ck_assert_int_eq(sql_int(h, "SELECT version FROM seg_schema_version"), 3);
    ck_assert_int_eq(sql_int(h, "SELECT count(*) FROM sqlite_master WHERE type = 'view'"), 6);
    sqlite3_close(h);
    free(again);
    free(before);
    free(ro);
    free(after);
}
END_TEST

START_TEST(schema_newer_refused)
{
    const char *path = P("n.db");
    OPEN_OK(&db, path, SEG_DB_CREATE);
    workload(db);
    seg_db_close(db);
    db = NULL;
    sqlite3 *h = sql_open(path, SQLITE_OPEN_READWRITE);
    sql_exec(h, "UPDATE seg_schema_version SET version = 4");
    sqlite3_close(h);
    for (int ro = 0; ro < 2; ro++) {
        ck_assert_int_eq(open_sq(&db, path, ro ? SEG_DB_READONLY : 0), SEG_EVERSION);
        ck_assert_ptr_null(db);
        TU_STR_HAS(open_err, "schema version 4, newer than this libsegment");
        TU_STR_HAS(open_err, path);
    }
    /* untouched */
    h = sql_open(path, SQLITE_OPEN_READONLY);
    ck_assert_int_eq(sql_int(h, "SELECT version FROM seg_schema_version"), 4);
    sqlite3_close(h);
}
END_TEST

START_TEST(schema_foreign_database)
{
    const char *path = P("other.db");
    sqlite3 *h = sql_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    sql_exec(h, "CREATE TABLE invoices(id INTEGER PRIMARY KEY, total INTEGER);"
                "INSERT INTO invoices VALUES (1, 100)");
    sqlite3_close(h);
    for (int ro = 0; ro < 2; ro++) {
        ck_assert_int_eq(open_sq(&db, path, ro ? SEG_DB_READONLY : SEG_DB_CREATE), SEG_ESTORAGE);
        TU_STR_HAS(open_err, "another application");
    }
    h = sql_open(path, SQLITE_OPEN_READONLY);
    ck_assert_int_eq(sql_int(h, "SELECT count(*) FROM sqlite_master"), 1);
    sqlite3_close(h);
}
END_TEST

/* ======================================================================== */
/* one writer, any number of readers                                         */
/* ======================================================================== */

static seg_event small_batch[3];
static char small_orders[2][64];
static void make_small_batch(const char *cust)
{
    snprintf(small_orders[0], sizeof small_orders[0], "%s-o1", cust);
    snprintf(small_orders[1], sizeof small_orders[1], "%s-o2", cust);
    small_batch[0] = ev_full(NULL, cust, TU_DAYN(1), 100, small_orders[0], "web", NULL, NULL, 1);
    small_batch[1] = ev_full(NULL, cust, TU_DAYN(2), 200, small_orders[1], "web", NULL, NULL, 1);
    small_batch[2] = tu_engagement(NULL, cust, TU_DAYN(3), "email_open");
}

START_TEST(writer_busy_same_process)
{
    const char *path = P("b.db");
    OPEN_OK(&db, path, SEG_DB_CREATE);
    make_small_batch("ann");
    TU_OK(db, seg_event_ingest_batch(db, small_batch, 3, NULL, NULL));
    seg_db *second = NULL;
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(open_sq(&second, path, k ? SEG_DB_CREATE : 0), SEG_EBUSY);
        ck_assert_ptr_null(second);
        TU_STR_HAS(open_err, "open for writing");
        TU_STR_HAS(open_err, path);
    }
    /* readers are welcome, and see what was committed */
    seg_db *r1 = NULL, *r2 = NULL;
    OPEN_OK(&r1, path, SEG_DB_READONLY);
    OPEN_OK(&r2, path, SEG_DB_READONLY);
    ck_assert_uint_eq(seg_event_count(r1), 3);
    /* a reader cannot write */
    make_small_batch("bea");
    TU_RC(r1, seg_event_ingest_batch(r1, small_batch, 3, NULL, NULL), SEG_EREADONLY);
    TU_RC(r1, seg_customer_add(r1, "bea"), SEG_EREADONLY);
    /* the writer goes on while they are open */
    TU_OK(db, seg_event_ingest_batch(db, small_batch, 3, NULL, NULL));
    ck_assert_uint_eq(seg_event_count(r2), 3); /* a reader's state is as of its open */
    seg_db_close(r1);
    seg_db_close(r2);
    seg_db_close(db);
    db = NULL;
    /* the lock went with the handle */
    OPEN_OK(&db, path, 0);
    ck_assert_uint_eq(seg_event_count(db), 6);
}
END_TEST

/* A child process holds the file open for writing until told to close
 * (a byte on `go`) or killed; it reports "ready" on `ack`. */
static pid_t spawn_writer(const char *path, int *go_w, int *ack_r)
{
    int go[2], ack[2];
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(ack), 0);
    pid_t pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        close(go[1]);
        close(ack[0]);
        seg_db *w = NULL;
        if (open_sq(&w, path, SEG_DB_CREATE) != SEG_OK)
            _exit(10);
        make_small_batch("cid");
        if (seg_event_ingest_batch(w, small_batch, 3, NULL, NULL) != SEG_OK)
            _exit(11);
        char c = 'r';
        if (write(ack[1], &c, 1) != 1)
            _exit(12);
        if (read(go[0], &c, 1) < 0)
            _exit(13);
        seg_db_close(w);
        _exit(0);
    }
    close(go[0]);
    close(ack[1]);
    char c;
    ck_assert_int_eq(read(ack[0], &c, 1), 1);
    *go_w = go[1];
    *ack_r = ack[0];
    return pid;
}

static int wait_status(pid_t pid)
{
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    return st;
}

START_TEST(writer_busy_other_process)
{
    const char *path = P("p.db");
    int go, ack;
    pid_t pid = spawn_writer(path, &go, &ack);
    ck_assert_int_eq(open_sq(&db, path, 0), SEG_EBUSY);
    TU_STR_HAS(open_err, "open for writing by another handle");
    TU_STR_HAS(open_err, "-seglock");
    OPEN_OK(&db, path, SEG_DB_READONLY);
    ck_assert_uint_eq(seg_event_count(db), 3);
    seg_db_close(db);
    db = NULL;
    ck_assert_int_eq(write(go, "x", 1), 1);
    int st = wait_status(pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(go);
    close(ack);
    OPEN_OK(&db, path, 0);
    ck_assert_uint_eq(seg_event_count(db), 3);
    seg_db_close(db);
    db = NULL;
    /* a writer that dies holding the lock releases it */
    pid = spawn_writer(path, &go, &ack);
    ck_assert_int_eq(open_sq(&db, path, 0), SEG_EBUSY);
    kill(pid, SIGKILL);
    st = wait_status(pid);
    ck_assert(WIFSIGNALED(st));
    close(go);
    close(ack);
    OPEN_OK(&db, path, 0);
    ck_assert_uint_eq(seg_event_count(db), 3); /* the same events: a duplicate batch */
}
END_TEST

/* ======================================================================== */
/* a connection of the host's                                                */
/* ======================================================================== */

START_TEST(host_connection)
{
    const char *path = P("h.db");
    sqlite3 *h = sql_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    sql_exec(h, "PRAGMA journal_mode = WAL; CREATE TABLE app_orders(id INTEGER PRIMARY KEY, "
                "note TEXT); INSERT INTO app_orders(note) VALUES ('mine')");
    seg_storage_sqlite_options o = SEG_STORAGE_SQLITE_OPTIONS_INIT;
    o.connection = h;
    seg_storage_backend *be = NULL;
    ck_assert_int_eq(seg_storage_sqlite_new(&be, &o), SEG_OK);
    ck_assert_ptr_nonnull(be);
    ck_assert_str_eq(be->name, "sqlite");
    ck_assert_int_eq(open_be(&db, NULL, SEG_DB_CREATE, be), SEG_OK);
    workload(db);
    char *before = dump(db);
    /* the file is locked for other writers, as with a path */
    seg_db *other = NULL;
    ck_assert_int_eq(open_sq(&other, path, 0), SEG_EBUSY);
    seg_db_close(db);
    db = NULL;
    /* the host's connection is still open and its table untouched */
    ck_assert_int_eq(sql_int(h, "SELECT count(*) FROM app_orders"), 1);
    ck_assert_int_gt(sql_int(h, "SELECT count(*) FROM seg_events"), 10);
    /* inside a transaction of the host's: savepoints */
    sql_exec(h, "BEGIN");
    ck_assert_int_eq(open_be(&db, NULL, 0, be), SEG_OK);
    char *again = dump(db);
    dump_eq(before, again, "reopen through the host's connection");
    TU_OK(db, seg_customer_add(db, "in-host-txn"));
    seg_db_close(db);
    db = NULL;
    sql_exec(h, "COMMIT");
    ck_assert_int_eq(sql_int(h, "SELECT count(*) FROM seg_customers WHERE customer_id = "
                                "'in-host-txn'"), 1);
    ck_assert_int_eq(sqlite3_close(h), SQLITE_OK);
    seg_storage_sqlite_free(be);
    /* and through the path */
    OPEN_OK(&db, path, 0);
    free(again);
    again = dump(db);
    ck_assert_ptr_nonnull(strstr(again, "in-host-txn"));
    free(again);
    free(before);
}
END_TEST

START_TEST(host_connection_read_only)
{
    const char *path = P("hr.db");
    OPEN_OK(&db, path, SEG_DB_CREATE);
    workload(db);
    char *before = dump(db);
    seg_db_close(db);
    db = NULL;
    sqlite3 *h = sql_open(path, SQLITE_OPEN_READONLY);
    seg_storage_sqlite_options o = SEG_STORAGE_SQLITE_OPTIONS_INIT;
    o.connection = h;
    seg_storage_backend *be = NULL;
    ck_assert_int_eq(seg_storage_sqlite_new(&be, &o), SEG_OK);
    /* writable on a read-only connection: refused */
    ck_assert_int_eq(open_be(&db, NULL, 0, be), SEG_EREADONLY);
    TU_STR_HAS(open_err, "read-only");
    ck_assert_int_eq(open_be(&db, NULL, SEG_DB_READONLY, be), SEG_OK);
    char *after = dump(db);
    dump_eq(before, after, "read-only host connection");
    seg_db_close(db);
    db = NULL;
    ck_assert_int_eq(sqlite3_close(h), SQLITE_OK);
    seg_storage_sqlite_free(be);
    free(before);
    free(after);
}
END_TEST

/* ======================================================================== */
/* options and constructors                                                  */
/* ======================================================================== */

START_TEST(options_and_constructors)
{
    const seg_storage_backend *st = seg_storage_sqlite();
    ck_assert_ptr_nonnull(st);
    ck_assert_ptr_eq(st, seg_storage_sqlite());
    ck_assert_str_eq(st->name, "sqlite");
    ck_assert_int_eq(st->version, SEG_STORAGE_BACKEND_V1);
    ck_assert_uint_ge(st->storage_size, sizeof(seg_storage));
    seg_storage_sqlite_free(NULL);
    seg_storage_sqlite_free((seg_storage_backend *)st); /* ignored */
    seg_storage_sqlite_free((seg_storage_backend *)seg_storage_memory()); /* not ours: ignored */

    struct { seg_storage_sqlite_options o; char tail[16]; } big;
    ck_assert_int_eq(seg_storage_sqlite_options_init(NULL, sizeof big.o), SEG_EINVAL);
    ck_assert_int_eq(seg_storage_sqlite_options_init(&big.o, sizeof(size_t)), SEG_EVERSION);
    memset(&big, 0x55, sizeof big);
    ck_assert_int_eq(seg_storage_sqlite_options_init(&big.o, sizeof big), SEG_OK);
    ck_assert_uint_eq(big.o.struct_size, sizeof big);
    ck_assert_uint_eq(big.o.flags, 0);
    ck_assert_ptr_null(big.o.connection);
    for (size_t k = 0; k < sizeof big.tail; k++)
        ck_assert_int_eq(big.tail[k], 0);

    seg_storage_backend *be = (seg_storage_backend *)1;
    ck_assert_int_eq(seg_storage_sqlite_new(NULL, NULL), SEG_EINVAL);
    ck_assert_int_eq(seg_storage_sqlite_new(&be, &big.o), SEG_OK); /* zero tail: fine */
    seg_storage_sqlite_free(be);
    big.tail[3] = 1;
    be = (seg_storage_backend *)1;
    ck_assert_int_eq(seg_storage_sqlite_new(&be, &big.o), SEG_EVERSION);
    ck_assert_ptr_null(be);
    seg_storage_sqlite_options o = SEG_STORAGE_SQLITE_OPTIONS_INIT;
    o.flags = 0x80;
    ck_assert_int_eq(seg_storage_sqlite_new(&be, &o), SEG_EINVAL);
    ck_assert_ptr_null(be);
    o.flags = 0;
    o.struct_size = 4;
    ck_assert_int_eq(seg_storage_sqlite_new(&be, &o), SEG_EVERSION);
    ck_assert_int_eq(seg_storage_sqlite_new(&be, NULL), SEG_OK);
    ck_assert_ptr_nonnull(be);
    ck_assert_ptr_ne(be, seg_storage_sqlite());
    seg_storage_sqlite_free(be);
}
END_TEST

START_TEST(sync_normal)
{
    const char *path = P("s.db");
    seg_storage_sqlite_options o = SEG_STORAGE_SQLITE_OPTIONS_INIT;
    o.flags = SEG_STORAGE_SQLITE_SYNC_NORMAL;
    seg_storage_backend *be = NULL;
    ck_assert_int_eq(seg_storage_sqlite_new(&be, &o), SEG_OK);
    ck_assert_int_eq(open_be(&db, path, SEG_DB_CREATE, be), SEG_OK);
    workload(db);
    char *before = dump(db);
    seg_db_close(db);
    db = NULL;
    char *after = dump_file(path);
    dump_eq(before, after, "reopen");
    seg_storage_sqlite_free(be);
    free(before);
    free(after);
}
END_TEST

/* ======================================================================== */
/* bad files                                                                 */
/* ======================================================================== */

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* Opening fails, writable and read-only, with `code` and a message holding
 * `what`; never a handle. */
static void open_fails(const char *path, uint32_t flags, int code, const char *what)
{
    seg_db *d = (seg_db *)1;
    int rc = open_sq(&d, path, flags);
    ck_assert_msg(rc == code, "open %s (flags %u): %d, expected %d (%s)", path, flags, rc, code,
                  open_err);
    ck_assert_ptr_null(d);
    ck_assert_msg(strstr(open_err, what) != NULL, "open %s: \"%s\" does not mention \"%s\"", path,
                  open_err, what);
}

/* a database of the workload, closed */
static void make_db(const char *path)
{
    seg_db *d = NULL;
    OPEN_OK(&d, path, SEG_DB_CREATE);
    workload(d);
    seg_db_close(d);
}

START_TEST(bad_not_sqlite)
{
    const char *path = P("text.db");
    static const char text[] = "customer_id,ts,amount\nalice,2024-01-01,1.00\n"
                               "this is a CSV file, not a database, and long enough to matter\n";
    write_file(path, text, sizeof text - 1);
    open_fails(path, 0, SEG_ESTORAGE, "is not an SQLite database");
    open_fails(path, SEG_DB_CREATE, SEG_ESTORAGE, "is not an SQLite database");
    open_fails(path, SEG_DB_READONLY, SEG_ESTORAGE, "is not an SQLite database");
    ck_assert_int_eq(file_size(path), (long)sizeof text - 1); /* untouched */
    ck_assert_int_eq(file_size(P("text.db-seglock")), -1);   /* and no lock file */
    /* an SQLite header on garbage */
    char junk[8192];
    memset(junk, 0x5a, sizeof junk);
    memcpy(junk, "SQLite format 3", 16);
    path = P("junk.db");
    write_file(path, junk, sizeof junk);
    open_fails(path, 0, SEG_ESTORAGE, "junk.db");
    open_fails(path, SEG_DB_READONLY, SEG_ESTORAGE, "junk.db");
}
END_TEST

START_TEST(bad_truncated)
{
    const char *path = P("t.db");
    make_db(path);
    long n = file_size(path);
    ck_assert_int_gt(n, 4 * 4096);
    for (long keep = n / 2; keep >= 1000; keep /= 4) {
        ck_assert_int_eq(truncate(path, keep), 0);
        open_fails(path, SEG_DB_READONLY, SEG_ESTORAGE, "t.db");
        open_fails(path, 0, SEG_ESTORAGE, "t.db");
    }
}
END_TEST

START_TEST(bad_corrupted)
{
    const char *path = P("c.db");
    make_db(path);
    long n = file_size(path);
    /* garbage over every page but the first: every table's root */
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    char junk[4096];
    for (long off = 4096; off < n; off += 4096) {
        for (size_t k = 0; k < sizeof junk; k++)
            junk[k] = (char)(k * 131 + (size_t)off);
        ck_assert_int_eq(pwrite(fd, junk, sizeof junk, off), (ssize_t)sizeof junk);
    }
    close(fd);
    open_fails(path, SEG_DB_READONLY, SEG_ESTORAGE, "c.db");
    open_fails(path, 0, SEG_ESTORAGE, "c.db");
    TU_STR_HAS(open_err, "malformed");
    /* a damaged header */
    path = P("h.db");
    make_db(path);
    fd = open(path, O_RDWR);
    ck_assert_int_eq(pwrite(fd, "SQLite format 4", 15, 0), 15);
    close(fd);
    open_fails(path, 0, SEG_ESTORAGE, "is not an SQLite database");
}
END_TEST

/* Rows that do not hold together: clear errors at load. */
START_TEST(bad_rows)
{
    static const char *const damage[] = {
        "UPDATE seg_events SET customer = 999999 WHERE id = 3",
        "UPDATE seg_events SET channel = 77 WHERE id = 1",
        "UPDATE seg_events SET event_id = -5 WHERE id = 2",
        "UPDATE seg_events SET quantity = 99999999999 WHERE id = 2",
        "UPDATE seg_events SET kind = 9 WHERE id = 2",
        "INSERT INTO seg_customers(id, customer_id) SELECT 999, customer_id FROM seg_customers "
        "WHERE id = 1",
        "UPDATE seg_attributes SET value = 'text' WHERE attr = (SELECT id FROM seg_attr_names "
        "WHERE name = 'birth_year')",
        "UPDATE seg_consent SET state = 7",
        "UPDATE seg_meta SET value = '9' WHERE key = 'currency_exponent'",
        "DELETE FROM seg_schema_version",
        "DROP TABLE seg_events",
    };
    static const char *const says[] = {
        "no such customer", "no such channel", "bad occurrence", "quantity out of range",
        "kind", "stored twice", "bad attribute row", "bad consent row", "currency_exponent",
        "no valid version", "seg_events",
    };
    for (size_t k = 0; k < sizeof damage / sizeof *damage; k++) {
        char name[32];
        snprintf(name, sizeof name, "d%zu.db", k);
        const char *path = P(name);
        make_db(path);
        sqlite3 *h = sql_open(path, SQLITE_OPEN_READWRITE);
        sql_exec(h, damage[k]);
        sqlite3_close(h);
        open_fails(path, SEG_DB_READONLY, SEG_ESTORAGE, says[k]);
        open_fails(path, 0, SEG_ESTORAGE, says[k]);
    }
}
END_TEST

START_TEST(bad_paths)
{
    /* a directory */
    open_fails(tmpdir, SEG_DB_CREATE, SEG_EINVAL, "is a directory");
    open_fails(tmpdir, SEG_DB_READONLY, SEG_EINVAL, "is a directory");
    /* a missing parent directory */
    const char *path = P("no/such/dir/x.db");
    open_fails(path, SEG_DB_CREATE, SEG_ESTORAGE, "no/such/dir/x.db");
    TU_STR_HAS(open_err, "directory");
    TU_STR_HAS(open_err, "No such file or directory");
    /* no file, and no SEG_DB_CREATE */
    path = P("absent.db");
    open_fails(path, 0, SEG_ENOTFOUND, "no database file");
    TU_STR_HAS(open_err, "SEG_DB_CREATE");
    open_fails(path, SEG_DB_READONLY, SEG_ENOTFOUND, "no database file");
    ck_assert_int_eq(file_size(path), -1); /* nothing created */
    /* no path at all */
    open_fails(NULL, SEG_DB_CREATE, SEG_EINVAL, "no database file given");
    open_fails("", SEG_DB_CREATE, SEG_EINVAL, "no database file given");
    open_fails(":memory:", SEG_DB_CREATE, SEG_EINVAL, "no database file given");
    /* an empty file is an empty SQLite database: made one when writable */
    path = P("empty.db");
    write_file(path, "", 0);
    open_fails(path, SEG_DB_READONLY, SEG_ESTORAGE, "not a libsegment database");
    OPEN_OK(&db, path, 0);
    TU_OK(db, seg_customer_add(db, "x"));
}
END_TEST

/* What a user without write permission sees (run as `nobody` when root,
 * since root writes anywhere).  Returns 0, or the line of the failed check
 * (no Check assertions: this may run in a forked child). */
#define CHILD_CHECK(cond) do { \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: %s (open_err: %s)\n", __FILE__, __LINE__, #cond, open_err); \
            return __LINE__; \
        } \
    } while (0)

static int read_only_dir_checks(void)
{
    seg_db *d = NULL;
    /* a new file in a read-only directory */
    const char *path = P("ro/new.db");
    CHILD_CHECK(open_sq(&d, path, SEG_DB_CREATE) == SEG_ESTORAGE && !d);
    CHILD_CHECK(strstr(open_err, "new.db") && strstr(open_err, "ermission denied"));
    /* an existing database there: its -wal and -shm cannot be made */
    path = P("ro/old.db");
    CHILD_CHECK(open_sq(&d, path, 0) == SEG_ESTORAGE && !d);
    CHILD_CHECK(strstr(open_err, "cannot be opened for writing") &&
                strstr(open_err, "directory") && strstr(open_err, "ermission denied"));
    /* reading it is fine */
    CHILD_CHECK(open_sq(&d, path, SEG_DB_READONLY) == SEG_OK);
    CHILD_CHECK(seg_event_count(d) > 0);
    seg_db_close(d);
    d = NULL;
    /* a read-only file in a writable directory */
    CHILD_CHECK(open_sq(&d, P("ro-file.db"), 0) == SEG_ESTORAGE && !d);
    CHILD_CHECK(strstr(open_err, "ro-file.db") && strstr(open_err, "ermission denied"));
    return 0;
}

START_TEST(bad_permissions)
{
    const char *dir = P("ro");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    const char *path = P("ro/old.db");
    make_db(path);
    /* a reader needs the -shm file, which a writer leaves; make it */
    seg_db *w = NULL;
    OPEN_OK(&w, path, 0);
    seg_db *r = NULL;
    OPEN_OK(&r, path, SEG_DB_READONLY);
    seg_db_close(r);
    seg_db_close(w);
    path = P("ro-file.db");
    make_db(path);
    ck_assert_int_eq(chmod(path, 0444), 0);
    ck_assert_int_eq(chmod(P("ro/old.db"), 0666), 0); /* the file is writable, not its directory */
    ck_assert_int_eq(chmod(P("ro"), 0555), 0);
    ck_assert_int_eq(chmod(tmpdir, 0755), 0);
    if (geteuid() != 0) {
        ck_assert_int_eq(read_only_dir_checks(), 0);
        return;
    }
    pid_t pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(90);
        _exit(read_only_dir_checks() ? 1 : 0);
    }
    int st = wait_status(pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the checks as 'nobody' failed (status %d)",
                  st);
}
END_TEST

/* ======================================================================== */
/* crash: SIGKILL a writer at random points                                  */
/* ======================================================================== */

#define CRASH_BATCH 100   /* events per batch */
#define CRASH_KILLS 24

/* Batch k: CRASH_BATCH events whose ids name the batch ("b<k>-<i>"). */
static void crash_batch(int k, seg_event *e, char (*ids)[32], char (*custs)[16],
                        char (*orders)[32])
{
    for (int i = 0; i < CRASH_BATCH; i++) {
        snprintf(ids[i], 32, "b%d-%d", k, i);
        snprintf(custs[i], 16, "c%d", (k * 7 + i) % 97);
        snprintf(orders[i], 32, "o%d-%d", k, i / 3);
        if (i % 10 == 9) {
            e[i] = tu_engagement(ids[i], custs[i], TU_DAYN(k % 300) + i, "email_open");
        } else {
            e[i] = ev_full(ids[i], custs[i], TU_DAYN(k % 300) + i, 100 + k + i, orders[i],
                           i % 2 ? "web" : "store", "cat", NULL, 1);
            /* the lines of an order share its customer */
            snprintf(custs[i], 16, "c%d", (k * 7 + i / 3) % 97);
        }
    }
}

/* The writer: resume after the batches already stored, report each
 * acknowledged batch number on fd.  Never returns. */
static void crash_writer(const char *path, int fd)
{
    static seg_event e[CRASH_BATCH];
    static char ids[CRASH_BATCH][32], custs[CRASH_BATCH][16], orders[CRASH_BATCH][32];
    seg_db *w = NULL;
    if (open_sq(&w, path, SEG_DB_CREATE) != SEG_OK) {
        fprintf(stderr, "crash writer: open: %s\n", open_err);
        _exit(20);
    }
    uint64_t have = seg_event_count(w);
    if (have % CRASH_BATCH)
        _exit(21); /* a partial batch */
    for (int k = (int)(have / CRASH_BATCH);; k++) {
        crash_batch(k, e, ids, custs, orders);
        int rc = seg_event_ingest_batch(w, e, CRASH_BATCH, NULL, NULL);
        if (rc != SEG_OK) {
            fprintf(stderr, "crash writer: batch %d: %s\n", k, seg_errmsg(w));
            _exit(22);
        }
        if (write(fd, &k, sizeof k) != (ssize_t)sizeof k)
            _exit(23);
    }
}

typedef struct batch_count {
    int *n;      /* events per batch */
    int cap;
    int bad;     /* events whose id names no batch */
} batch_count;

static int count_batch_cb(const seg_event_info *e, void *payload)
{
    batch_count *c = payload;
    int k, i;
    if (!e->event_id || sscanf(e->event_id, "b%d-%d", &k, &i) != 2 || k < 0 || k >= c->cap) {
        c->bad++;
        return 0;
    }
    c->n[k]++;
    return 0;
}

START_TEST(crash_sigkill)
{
    const char *path = P("crash.db");
    uint64_t rng = UINT64_C(0x9e3779b97f4a7c15);
    int last_acked = -1, max_cap = 100000;
    batch_count bc = { calloc((size_t)max_cap, sizeof(int)), max_cap, 0 };
    ck_assert_ptr_nonnull(bc.n);
    int kills_mid_batch = 0;
    for (int kill_no = 0; kill_no < CRASH_KILLS; kill_no++) {
        int fds[2];
        ck_assert_int_eq(pipe(fds), 0);
        pid_t pid = fork();
        ck_assert_int_ne(pid, -1);
        if (pid == 0) {
            close(fds[0]);
            crash_writer(path, fds[1]);
        }
        close(fds[1]);
        /* let it acknowledge 0..3 batches, then kill it 0..4 ms later:
         * during open and recovery, inside a batch, or at its commit */
        int want = (int)(tu_rand(&rng) % 4), got = 0, k;
        while (got < want && read(fds[0], &k, sizeof k) == (ssize_t)sizeof k) {
            ck_assert_int_eq(k, last_acked + 1);
            last_acked = k;
            got++;
        }
        struct timespec ts = { 0, (long)(tu_rand(&rng) % 4000) * 1000 };
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st = wait_status(pid);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                      "the writer ended on its own (status %d)", st);
        /* acknowledgements written before it died count too */
        while (read(fds[0], &k, sizeof k) == (ssize_t)sizeof k) {
            ck_assert_int_eq(k, last_acked + 1);
            last_acked = k;
        }
        close(fds[0]);

        /* the file is intact ... */
        sqlite3 *h = sql_open(path, SQLITE_OPEN_READONLY);
        char buf[64];
        ck_assert_str_eq(sql_text(h, "PRAGMA integrity_check", buf, sizeof buf), "ok");
        sqlite3_close(h);
        /* ... every acknowledged batch is in it, complete, and at most the
         * one in flight besides, complete too */
        seg_db *r = NULL;
        OPEN_OK(&r, path, SEG_DB_READONLY);
        memset(bc.n, 0, (size_t)max_cap * sizeof(int));
        bc.bad = 0;
        ck_assert_int_eq(seg_event_foreach(r, NULL, count_batch_cb, &bc), SEG_OK);
        uint64_t events = seg_event_count(r);
        seg_db_close(r);
        ck_assert_int_eq(bc.bad, 0);
        int stored = (int)(events / CRASH_BATCH);
        ck_assert_msg(events % CRASH_BATCH == 0, "a partial batch: %" PRIu64 " events", events);
        ck_assert_msg(stored == last_acked + 1 || stored == last_acked + 2,
                      "kill %d: %d batches stored, %d acknowledged", kill_no, stored,
                      last_acked + 1);
        for (int b = 0; b < stored; b++)
            ck_assert_msg(bc.n[b] == CRASH_BATCH, "batch %d has %d events", b, bc.n[b]);
        if (stored == last_acked + 2)
            kills_mid_batch++; /* committed, killed before it said so */
        last_acked = stored - 1;
    }
    ck_assert_int_ge(last_acked, 5); /* the writers made progress */
    free(bc.n);
}
END_TEST

/* ======================================================================== */
/* fault injection: fail the Nth storage call, for every N                   */
/* ======================================================================== */

static void remove_db_files(const char *path)
{
    static const char *const suffix[] = { "", "-wal", "-shm", "-seglock" };
    char p[PATH_MAX + 16];
    for (int k = 0; k < 4; k++) {
        snprintf(p, sizeof p, "%s%s", path, suffix[k]);
        unlink(p);
    }
}

/* the memory of d and what is stored must agree */
static void same_as_stored(seg_db *d, const char *path, const char *what)
{
    char *mem = dump(d), *file = dump_file(path);
    dump_eq(mem, file, what);
    free(mem);
    free(file);
}

START_TEST(fault_every_call)
{
    const char *path = fast_path("f.db");
    /* synchronous=NORMAL: this is about consistency, not about power loss,
     * and it spares a few thousand fsyncs */
    seg_storage_sqlite_options so = SEG_STORAGE_SQLITE_OPTIONS_INIT;
    so.flags = SEG_STORAGE_SQLITE_SYNC_NORMAL;
    seg_storage_backend *inner = NULL;
    ck_assert_int_eq(seg_storage_sqlite_new(&inner, &so), SEG_OK);
    fi.inner = inner;
    /* the clean run: its end state, and how many calls it makes */
    fi_reset(0);
    ck_assert_int_eq(open_be(&db, path, SEG_DB_CREATE, &fi_backend), SEG_OK);
    workload(db);
    char *clean = mask_anon(dump(db));
    seg_db_close(db);
    db = NULL;
    long total = fi.calls;
    ck_assert_int_gt(total, 40);
    long failures = 0;
    for (long n = 1; n <= total; n++) {
        remove_db_files(path);
        fi_reset(n);
        char what[96];
        int rc = open_be(&db, path, SEG_DB_CREATE, &fi_backend);
        if (rc != SEG_OK) {
            /* open, load or the first write failed: nothing is left open */
            ck_assert_msg(rc == SEG_ESTORAGE, "call %ld: open: %d %s", n, rc, open_err);
            TU_STR_HAS(open_err, "injected failure");
            ck_assert_ptr_null(db);
            ck_assert_int_eq(open_be(&db, path, SEG_DB_CREATE, &fi_backend), SEG_OK);
        }
        for (int k = 0; k < NSTEPS; k++) {
            long before = fi.failures;
            rc = step(db, k);
            if (fi.failures == before) {
                ck_assert_msg(rc == SEG_OK, "call %ld, step %d: %d %s", n, k, rc,
                              seg_errmsg(db));
                continue;
            }
            /* the injected failure: reported, nothing half-done, usable */
            snprintf(what, sizeof what, "call %ld (%s), step %d", n, fi.failed_what, k);
            ck_assert_msg(rc == SEG_ESTORAGE, "%s: returned %d (%s)", what, rc, seg_errmsg(db));
            ck_assert_msg(strstr(seg_errmsg(db), "injected failure") != NULL, "%s: message %s",
                          what, seg_errmsg(db));
            same_as_stored(db, path, what);
            rc = step(db, k);
            ck_assert_msg(rc == SEG_OK, "%s: the retry: %d %s", what, rc, seg_errmsg(db));
        }
        failures += fi.failures;
        ck_assert_int_eq(fi.failures, 1);
        snprintf(what, sizeof what, "after the failure of call %ld (%s)", n, fi.failed_what);
        same_as_stored(db, path, what);
        char *end = mask_anon(dump(db));
        dump_eq(clean, end, what);
        free(end);
        seg_db_close(db);
        db = NULL;
        /* the records too */
        fi_reset(0);
        ck_assert_int_eq(open_be(&db, path, 0, &fi_backend), SEG_OK);
        ck_assert_str_eq(fi.records.p,
                         "journey_state/alice/j1=state=wait\noutbox/0001=email:discount_5\n");
        seg_db_close(db);
        db = NULL;
    }
    ck_assert_int_eq(failures, total);
    free(clean);
    fi.inner = NULL;
    fi_reset(0);
    seg_storage_sqlite_free(inner);
}
END_TEST

#else /* !SEG_HAVE_SQLITE */

/* Built without SQLite: the functions exist and say so. */
START_TEST(not_supported)
{
    const seg_storage_backend *be = seg_storage_sqlite();
    ck_assert_ptr_nonnull(be);
    ck_assert_str_eq(be->name, "sqlite");
    ck_assert_int_eq(open_sq(&db, P("x.db"), SEG_DB_CREATE), SEG_ENOTSUP);
    ck_assert_ptr_null(db);
    ck_assert_msg(strstr(open_err, "built without SQLite") != NULL, "%s", open_err);
    ck_assert_str_eq(seg_errstr(SEG_ENOTSUP), "not supported by this build");
    seg_storage_backend *nb = (seg_storage_backend *)1;
    ck_assert_int_eq(seg_storage_sqlite_new(&nb, NULL), SEG_ENOTSUP);
    ck_assert_ptr_null(nb);
    seg_storage_sqlite_options o;
    ck_assert_int_eq(seg_storage_sqlite_options_init(&o, sizeof o), SEG_OK);
    seg_storage_sqlite_free(NULL);
}
END_TEST

#endif /* SEG_HAVE_SQLITE */

/* SQLite's own allocations fail, one at a time: the backend's error paths
 * inside a call (a statement failing after ids were taken, ...). */
static sqlite3_mem_methods sys_mem;
static long mem_calls, mem_fail_at, mem_failed;

static void *fm_malloc(int n)
{
    if (++mem_calls == mem_fail_at) {
        mem_failed++;
        return NULL;
    }
    return sys_mem.xMalloc(n);
}

static void *fm_realloc(void *p, int n)
{
    if (++mem_calls == mem_fail_at) {
        mem_failed++;
        return NULL;
    }
    return sys_mem.xRealloc(p, n);
}

/* before SQLite initializes (main) */
static void install_failing_malloc(void)
{
    sqlite3_mem_methods m;
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sys_mem) != SQLITE_OK)
        return;
    m = sys_mem;
    m.xMalloc = fm_malloc;
    m.xRealloc = fm_realloc;
    sqlite3_config(SQLITE_CONFIG_MALLOC, &m);
}

START_TEST(fault_sqlite_malloc)
{
    ck_assert_msg(sys_mem.xMalloc != NULL, "the failing allocator is not installed");
    const char *path = fast_path("m.db");
    /* synchronous=NORMAL: fewer fsyncs, the same code paths */
    seg_storage_sqlite_options so = SEG_STORAGE_SQLITE_OPTIONS_INIT;
    so.flags = SEG_STORAGE_SQLITE_SYNC_NORMAL;
    seg_storage_backend *be = NULL;
    ck_assert_int_eq(seg_storage_sqlite_new(&be, &so), SEG_OK);
    mem_fail_at = 0;
    mem_calls = 0;
    ck_assert_int_eq(open_be(&db, path, SEG_DB_CREATE, be), SEG_OK);
    workload(db);
    char *clean = mask_anon(dump(db));
    seg_db_close(db);
    db = NULL;
    long total = mem_calls;
    ck_assert_int_gt(total, 100);
    long tried = 0, failed_calls = 0;
    for (long n = 1; n <= total; n += n < 40 ? 1 : total / 150 + 1) {
        remove_db_files(path);
        mem_calls = 0;
        mem_failed = 0;
        mem_fail_at = n;
        char what[96];
        int rc = open_be(&db, path, SEG_DB_CREATE, be);
        if (rc != SEG_OK) {
            ck_assert_msg(rc == SEG_ENOMEM || rc == SEG_ESTORAGE, "allocation %ld: open: %d %s", n,
                          rc, open_err);
            ck_assert_msg(open_err[0] != '\0', "allocation %ld: open: no message", n);
            ck_assert_ptr_null(db);
            ck_assert_int_eq(open_be(&db, path, SEG_DB_CREATE, be), SEG_OK);
            failed_calls++;
        }
        for (int k = 0; k < NSTEPS; k++) {
            rc = step(db, k);
            if (rc == SEG_OK)
                continue;
            snprintf(what, sizeof what, "allocation %ld, step %d", n, k);
            ck_assert_msg(mem_failed == 1, "%s: failed without a failed allocation: %d %s", what,
                          rc, seg_errmsg(db));
            ck_assert_msg(rc == SEG_ENOMEM || rc == SEG_ESTORAGE, "%s: %d %s", what, rc,
                          seg_errmsg(db));
            ck_assert_msg(seg_errmsg(db)[0] != '\0', "%s: no message", what);
            same_as_stored(db, path, what);
            rc = step(db, k);
            ck_assert_msg(rc == SEG_OK, "%s: the retry: %d %s", what, rc, seg_errmsg(db));
            failed_calls++;
        }
        snprintf(what, sizeof what, "after allocation %ld failed", n);
        same_as_stored(db, path, what);
        char *end = mask_anon(dump(db));
        dump_eq(clean, end, what);
        free(end);
        seg_db_close(db);
        db = NULL;
        tried++;
    }
    mem_fail_at = 0;
    ck_assert_int_gt(tried, 100);
    ck_assert_int_gt(failed_calls, 10); /* some failures did reach the caller */
    free(clean);
    seg_storage_sqlite_free(be);
}
END_TEST

/* An SQLite VFS that passes everything to the default one but fails the
 * Nth read, write, truncate or sync of a file with an I/O error: disk
 * full, a bad sector, a failed fsync. */
typedef struct fv_file {
    sqlite3_file base;
    sqlite3_file *real; /* follows this struct in the same allocation */
} fv_file;

static sqlite3_vfs fv_vfs, *fv_real;
static sqlite3_io_methods fv_io;
static long io_calls, io_fail_at, io_failed;

static int fv_fail(void)
{
    if (++io_calls != io_fail_at)
        return 0;
    io_failed++;
    return 1;
}

#define REAL(f) (((fv_file *)(f))->real)
static int fv_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int fv_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
    return fv_fail() ? SQLITE_IOERR_READ : REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int fv_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
    return fv_fail() ? SQLITE_IOERR_WRITE : REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int fv_truncate(sqlite3_file *f, sqlite3_int64 n)
{
    return fv_fail() ? SQLITE_IOERR_TRUNCATE : REAL(f)->pMethods->xTruncate(REAL(f), n);
}
static int fv_sync(sqlite3_file *f, int fl)
{
    return fv_fail() ? SQLITE_IOERR_FSYNC : REAL(f)->pMethods->xSync(REAL(f), fl);
}
static int fv_size(sqlite3_file *f, sqlite3_int64 *n) { return REAL(f)->pMethods->xFileSize(REAL(f), n); }
static int fv_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int fv_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int fv_reserved(sqlite3_file *f, int *r)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r);
}
static int fv_fcntl(sqlite3_file *f, int op, void *a)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, a);
}
static int fv_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int fv_devchar(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int fv_shmmap(sqlite3_file *f, int pg, int sz, int ext, void volatile **p)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, p);
}
static int fv_shmlock(sqlite3_file *f, int off, int n, int fl)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, fl);
}
static void fv_shmbarrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int fv_shmunmap(sqlite3_file *f, int del) { return REAL(f)->pMethods->xShmUnmap(REAL(f), del); }

static int fv_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out)
{
    (void)v;
    fv_file *p = (fv_file *)f;
    p->real = (sqlite3_file *)(p + 1);
    p->base.pMethods = NULL;
    int rc = fv_real->xOpen(fv_real, name, p->real, flags, out);
    if (p->real->pMethods)
        p->base.pMethods = &fv_io;
    return rc;
}

static void install_faulty_vfs(void)
{
    fv_real = sqlite3_vfs_find(NULL);
    if (!fv_real)
        return;
    fv_vfs = *fv_real;
    fv_vfs.iVersion = fv_real->iVersion < 3 ? fv_real->iVersion : 3;
    fv_vfs.szOsFile = (int)sizeof(fv_file) + fv_real->szOsFile;
    fv_vfs.zName = "segfaultio";
    fv_vfs.xOpen = fv_open;
    fv_vfs.pNext = NULL;
    /* version 2 of the file methods: no memory-mapped reads */
    fv_io = (sqlite3_io_methods){ 2, fv_close, fv_read, fv_write, fv_truncate, fv_sync,
                                  fv_size, fv_lock, fv_unlock, fv_reserved, fv_fcntl,
                                  fv_sector, fv_devchar, fv_shmmap, fv_shmlock,
                                  fv_shmbarrier, fv_shmunmap, NULL, NULL };
    sqlite3_vfs_register(&fv_vfs, 0);
}

START_TEST(fault_io_errors)
{
    install_faulty_vfs();
    ck_assert_ptr_nonnull(sqlite3_vfs_find("segfaultio"));
    const char *path = fast_path("io.db");
    char uri[PATH_MAX + 32];
    snprintf(uri, sizeof uri, "file:%s?vfs=segfaultio", path);
    io_fail_at = 0;
    io_calls = 0;
    OPEN_OK(&db, uri, SEG_DB_CREATE);
    workload(db);
    char *clean = mask_anon(dump(db));
    seg_db_close(db);
    db = NULL;
    long total = io_calls;
    ck_assert_int_gt(total, 50);
    long tried = 0, reported = 0;
    for (long n = 1; n <= total; n += n < 60 ? 1 : total / 120 + 1) {
        remove_db_files(path);
        io_calls = 0;
        io_failed = 0;
        io_fail_at = n;
        char what[96];
        int rc = open_sq(&db, uri, SEG_DB_CREATE);
        if (rc != SEG_OK) {
            ck_assert_msg(rc == SEG_ESTORAGE, "I/O %ld: open: %d %s", n, rc, open_err);
            TU_STR_HAS(open_err, "I/O error");
            ck_assert_ptr_null(db);
            OPEN_OK(&db, uri, SEG_DB_CREATE);
            reported++;
        }
        for (int k = 0; k < NSTEPS; k++) {
            rc = step(db, k);
            if (rc == SEG_OK)
                continue;
            snprintf(what, sizeof what, "I/O %ld, step %d", n, k);
            ck_assert_msg(io_failed == 1, "%s: failed without a failed I/O: %d %s", what, rc,
                          seg_errmsg(db));
            ck_assert_msg(rc == SEG_ESTORAGE, "%s: %d %s", what, rc, seg_errmsg(db));
            ck_assert_msg(strstr(seg_errmsg(db), "I/O error") != NULL, "%s: %s", what,
                          seg_errmsg(db));
            same_as_stored(db, path, what);
            rc = step(db, k);
            ck_assert_msg(rc == SEG_OK, "%s: the retry: %d %s", what, rc, seg_errmsg(db));
            reported++;
        }
        snprintf(what, sizeof what, "after I/O %ld failed", n);
        same_as_stored(db, path, what);
        char *end = mask_anon(dump(db));
        dump_eq(clean, end, what);
        free(end);
        seg_db_close(db);
        db = NULL;
        /* and after a clean close, the file says the same */
        char *file = mask_anon(dump_file(path));
        dump_eq(clean, file, what);
        free(file);
        tried++;
    }
    io_fail_at = 0;
    ck_assert_int_gt(tried, 60);
    ck_assert_int_gt(reported, 10);
    free(clean);
}
END_TEST

/* ======================================================================== */

Suite *sqlite_suite(void)
{
    Suite *s = suite_create("sqlite");
    TCase *tc;

#if SEG_HAVE_SQLITE
    tc = tcase_create("reopen");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, reopen_workload);
    tcase_add_test(tc, reopen_records);
    tcase_add_test(tc, load_records_of_one_table);
    tcase_add_test(tc, module_hooks_follow_batches);
    tcase_add_test(tc, reopen_sample);
    tcase_add_test(tc, reopen_generated);
    suite_add_tcase(s, tc);

    tc = tcase_create("sql");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, sql_net_revenue_documented);
    tcase_add_test(tc, sql_views_readable);
    tcase_add_test(tc, sql_erase_removes_rows);
    tcase_add_test(tc, sql_many_identical_rows);
    tcase_add_test(tc, module_views_are_the_documented_ones);
    tcase_add_test(tc, schema_upgrade_from_v1);
    tcase_add_test(tc, schema_newer_refused);
    tcase_add_test(tc, schema_foreign_database);
    suite_add_tcase(s, tc);

    tc = tcase_create("open");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, writer_busy_same_process);
    tcase_add_test(tc, writer_busy_other_process);
    tcase_add_test(tc, host_connection);
    tcase_add_test(tc, host_connection_read_only);
    tcase_add_test(tc, options_and_constructors);
    tcase_add_test(tc, sync_normal);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, bad_not_sqlite);
    tcase_add_test(tc, bad_truncated);
    tcase_add_test(tc, bad_corrupted);
    tcase_add_test(tc, bad_rows);
    tcase_add_test(tc, bad_paths);
    tcase_add_test(tc, bad_permissions);
    suite_add_tcase(s, tc);

    tc = tcase_create("crash");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, crash_sigkill);
    suite_add_tcase(s, tc);

    tc = tcase_create("fault");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, fault_every_call);
    tcase_add_test(tc, fault_sqlite_malloc);
    tcase_add_test(tc, fault_io_errors);
    suite_add_tcase(s, tc);

#else
    tc = tcase_create("disabled");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, not_supported);
    suite_add_tcase(s, tc);
#endif
    return s;
}

int main(void)
{
#if SEG_HAVE_SQLITE
    install_failing_malloc();
#endif
    SRunner *sr = srunner_create(sqlite_suite());
    int failures;
    srunner_run_all(sr, CK_ENV);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures ? 1 : 0;
}
