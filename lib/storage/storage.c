/* The core's side of the storage vtable: checked calls, errors, load. */
#include "storage/storage-private.h"

#include <stdio.h>

SEG_API int seg_storage_set_error(seg_storage *st, int code, const char *fmt, ...)
{
    if (!st || !st->core || !st->core->db || !fmt)
        return code;
    seg_db *db = st->core->db;
    char buf[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    const char *name = st->core->backend && st->core->backend->name ? st->core->backend->name
                                                                     : "storage";
    return seg__error(db, code, "%s: %s", name, buf);
}

/* A backend that failed without a message still gets one. */
static int st_fail(seg_db *db, int rc, const char *what)
{
    if (rc >= 0)
        rc = SEG_ESTORAGE; /* a positive return is a backend bug: treat as failure */
    if (db->errcode != rc || !db->errmsg || !db->errmsg[0])
        seg__error(db, rc, "%s: %s failed: %s",
                   db->backend->name ? db->backend->name : "storage", what, seg_errstr(rc));
    return rc;
}

#define M(db) ((db)->backend->methods)
#define CALL(db, slot, what, ...)                                    \
    do {                                                             \
        if (!M(db)->slot || (db)->loading)                           \
            return SEG_OK;                                           \
        seg__error_clear(db);                                        \
        int rc_ = M(db)->slot((db)->st, __VA_ARGS__);                \
        return rc_ == SEG_OK ? SEG_OK : st_fail((db), rc_, (what));  \
    } while (0)

int seg__st_begin(seg_db *db)
{
    if (!M(db)->begin || db->loading)
        return SEG_OK;
    int rc = M(db)->begin(db->st);
    return rc == SEG_OK ? SEG_OK : st_fail(db, rc, "begin");
}

int seg__st_commit(seg_db *db)
{
    if (!M(db)->commit || db->loading)
        return SEG_OK;
    int rc = M(db)->commit(db->st);
    return rc == SEG_OK ? SEG_OK : st_fail(db, rc, "commit");
}

void seg__st_rollback(seg_db *db)
{
    if (!M(db)->rollback || db->loading)
        return;
    /* keep the error that caused the rollback */
    int code = db->errcode;
    char keep[2048];
    snprintf(keep, sizeof keep, "%s", seg_errmsg(db));
    M(db)->rollback(db->st);
    if (code != SEG_OK)
        seg__error(db, code, "%s", keep);
}

int seg__st_put_meta(seg_db *db, const char *key, const char *value)
{
    CALL(db, put_meta, "put_meta", key, value);
}

bool seg__st_wants_events(const seg_db *db)
{
    return M(db)->put_events && !db->loading;
}

int seg__st_put_events(seg_db *db, const seg_event_info *events, size_t n)
{
    CALL(db, put_events, "put_events", events, n);
}

int seg__st_put_customer(seg_db *db, const char *customer_id)
{
    CALL(db, put_customer, "put_customer", customer_id);
}

int seg__st_put_attr(seg_db *db, const char *customer_id, const char *name, const seg_value *v)
{
    CALL(db, put_attr, "put_attr", customer_id, name, v);
}

int seg__st_put_consent(seg_db *db, const char *customer_id, const char *channel, int state)
{
    CALL(db, put_consent, "put_consent", customer_id, channel, state);
}

int seg__st_erase_customer(seg_db *db, const char *customer_id)
{
    CALL(db, erase_customer, "erase_customer", customer_id);
}

bool seg__st_wants_records(const seg_db *db)
{
    return M(db)->put_record && !db->loading && !(db->flags & SEG_DB_READONLY);
}

int seg__st_put_record(seg_db *db, const char *table, const char *key, const void *data,
                       size_t len)
{
    if (db->flags & SEG_DB_READONLY)
        return SEG_OK;
    CALL(db, put_record, "put_record", table, key, data, len);
}

/* ---- a module's records, read after open ---- */

typedef struct rec_filter {
    const char *table;
    seg__record_cb cb;
    void *ctx;
} rec_filter;

static int rf_meta(void *c, const char *k, const char *v)
{
    SEG_UNUSED(c); SEG_UNUSED(k); SEG_UNUSED(v);
    return SEG_OK;
}
static int rf_customer(void *c, const char *id)
{
    SEG_UNUSED(c); SEG_UNUSED(id);
    return SEG_OK;
}
static int rf_event(void *c, const seg_event_info *e)
{
    SEG_UNUSED(c); SEG_UNUSED(e);
    return SEG_OK;
}
static int rf_attr(void *c, const char *id, const char *n, const seg_value *v)
{
    SEG_UNUSED(c); SEG_UNUSED(id); SEG_UNUSED(n); SEG_UNUSED(v);
    return SEG_OK;
}
static int rf_consent(void *c, const char *id, const char *ch, int st)
{
    SEG_UNUSED(c); SEG_UNUSED(id); SEG_UNUSED(ch); SEG_UNUSED(st);
    return SEG_OK;
}
static int rf_record(void *c, const char *t, const char *k, const void *d, size_t n)
{
    rec_filter *f = c;
    if (!t || !k)
        return SEG_ESTORAGE;
    if (strcmp(t, f->table) != 0)
        return SEG_OK; /* (a backend without load_records streams everything) */
    return f->cb(f->ctx, k, d ? d : "", n);
}

static const seg_storage_sink filter_sink = {
    sizeof(seg_storage_sink), rf_meta, rf_customer, rf_event, rf_attr, rf_consent, rf_record,
};

int seg__st_load_records(seg_db *db, const char *table, seg__record_cb cb, void *ctx)
{
    const seg_storage_methods *m = M(db);
    if (!m->put_record || !m->load)
        return SEG_OK; /* this backend stores no records */
    rec_filter f = { table, cb, ctx };
    seg__error_clear(db);
    int rc;
    if (m->version >= SEG_STORAGE_METHODS_V2 && m->load_records)
        rc = m->load_records(db->st, table, &filter_sink, &f);
    else
        rc = m->load(db->st, &filter_sink, &f);
    return rc == SEG_OK ? SEG_OK : st_fail(db, rc, "load_records");
}

/* ---- modules with state of their own ---- */

int seg__module_attach(seg_db *db, const seg__module_ops *ops, void *state)
{
    if (db->nmodules == SEG__MODULES_MAX)
        return seg__error(db, SEG_ELIMIT, "too many modules attached to one database (%d)",
                          SEG__MODULES_MAX);
    db->modules[db->nmodules].ops = ops;
    db->modules[db->nmodules].state = state;
    db->nmodules++;
    return SEG_OK;
}

void seg__module_detach(seg_db *db, void *state)
{
    for (unsigned i = 0; i < db->nmodules; i++)
        if (db->modules[i].state == state) {
            memmove(&db->modules[i], &db->modules[i + 1],
                    (db->nmodules - i - 1) * sizeof db->modules[0]);
            db->nmodules--;
            return;
        }
}

int seg__modules_events(seg_db *db, uint32_t first, uint32_t n)
{
    if (db->loading || n == 0)
        return SEG_OK;
    for (unsigned i = 0; i < db->nmodules; i++)
        if (db->modules[i].ops->events_added) {
            int rc = db->modules[i].ops->events_added(db, db->modules[i].state, first, n);
            if (rc != SEG_OK)
                return rc;
        }
    return SEG_OK;
}

int seg__modules_customer_gone(seg_db *db, uint32_t ci, const char *customer_id)
{
    for (unsigned i = 0; i < db->nmodules; i++)
        if (db->modules[i].ops->customer_gone) {
            int rc = db->modules[i].ops->customer_gone(db, db->modules[i].state, ci,
                                                       customer_id);
            if (rc != SEG_OK)
                return rc;
        }
    return SEG_OK;
}

void seg__modules_txn_end(seg_db *db, bool committed)
{
    if (db->loading)
        return;
    for (unsigned i = 0; i < db->nmodules; i++)
        if (db->modules[i].ops->txn_end)
            db->modules[i].ops->txn_end(db, db->modules[i].state, committed);
}

/* ---- load: replay what the backend holds ---- */

static int loadq_flush(seg_db *db);

static int sink_meta(void *ctx, const char *key, const char *value)
{
    seg_db *db = ctx;
    int rc = loadq_flush(db); /* (meta entries normally come first) */
    if (rc != SEG_OK)
        return rc;
    if (!key || !value)
        return seg__error(db, SEG_ESTORAGE, "load: meta entry without key or value");
    if (strcmp(key, "currency_exponent") == 0) {
        if (!value[0] || value[1] || value[0] < '0' || value[0] > '6')
            return seg__error(db, SEG_ESTORAGE, "load: bad currency_exponent '%s'", value);
        db->exponent = value[0] - '0';
    } else if (strncmp(key, "attr:", 5) == 0) {
        return seg__load_declaration(db, key + 5, value);
    }
    return SEG_OK;
}

/* Loaded items are queued and applied in groups (as batches are): events
 * through the ingest path, customers, attributes and consent as customer
 * operations.  One kind is queued at a time, so the order is kept.  The
 * strings are copied into the queue's text buffer, which never moves while
 * items point into it (a full buffer is flushed first). */
#define LOADQ 256
enum { Q_NONE, Q_EVENTS, Q_CUSTOPS };
struct seg__loadq {
    int kind;
    size_t n;
    seg__ev ev[LOADQ];
    int occ[LOADQ];
    seg__custop op[LOADQ];
    char *text;
    size_t used, cap;
};

static int loadq_flush(seg_db *db)
{
    struct seg__loadq *q = db->loadq;
    int rc = SEG_OK;
    if (!q || !q->n)
        return SEG_OK;
    if (q->kind == Q_EVENTS) {
        rc = seg__load_events(db, q->ev, q->occ, q->n);
    } else {
        size_t bad = (size_t)-1;
        rc = seg__customer_apply(db, q->op, q->n, &bad);
        if (rc != SEG_OK && bad < q->n)
            seg__error_prefix(db, "load: customer '%.*s': ", (int)q->op[bad].customer_id.n,
                              q->op[bad].customer_id.p);
        else if (rc != SEG_OK)
            seg__error_prefix(db, "load: ");
    }
    q->n = 0;
    q->used = 0;
    q->kind = Q_NONE;
    return rc;
}

/* Room for an item of `kind` whose strings take `bytes`: flushes what is
 * queued when needed. */
static int loadq_room(seg_db *db, int kind, size_t bytes)
{
    struct seg__loadq *q = db->loadq;
    if (!q) {
        q = db->loadq = seg__calloc(&db->alloc, 1, sizeof *q);
        if (!q)
            return seg__error(db, SEG_ENOMEM, "out of memory");
    }
    int rc = SEG_OK;
    if (q->n && (q->kind != kind || q->n == LOADQ || q->cap - q->used < bytes))
        rc = loadq_flush(db);
    if (rc == SEG_OK && q->cap - q->used < bytes) { /* (nothing queued now) */
        size_t cap = q->cap ? q->cap : 64 * 1024;
        while (cap < bytes)
            cap *= 2;
        char *t = seg__realloc(&db->alloc, q->text, cap);
        if (!t)
            return seg__error(db, SEG_ENOMEM, "out of memory");
        q->text = t;
        q->cap = cap;
    }
    q->kind = kind;
    return rc;
}

static seg__str loadq_keep(struct seg__loadq *q, seg__str s)
{
    if (!s.n)
        return s;
    char *p = q->text + q->used;
    memcpy(p, s.p, s.n);
    q->used += s.n;
    seg__str r = { p, s.n };
    return r;
}

void seg__loadq_free(seg_db *db)
{
    if (db->loadq) {
        seg__free(&db->alloc, db->loadq->text);
        seg__free(&db->alloc, db->loadq);
        db->loadq = NULL;
    }
}

static int sink_event(void *ctx, const seg_event_info *in)
{
    seg_db *db = ctx;
    seg__ev ev;
    int occ;
    int rc = seg__load_prepare(db, in, &ev, &occ);
    if (rc != SEG_OK)
        return rc;
    seg__str *f[8] = { &ev.event_id, &ev.customer_id, &ev.order_id, &ev.channel,
                       &ev.category, &ev.sku, &ev.refund_of, &ev.name };
    size_t bytes = 0;
    for (int k = 0; k < 8; k++)
        bytes += f[k]->n;
    if ((rc = loadq_room(db, Q_EVENTS, bytes)) != SEG_OK)
        return rc;
    struct seg__loadq *q = db->loadq;
    for (int k = 0; k < 8; k++)
        *f[k] = loadq_keep(q, *f[k]);
    q->ev[q->n] = ev;
    q->occ[q->n++] = occ;
    return SEG_OK;
}

static int queue_custop(seg_db *db, seg__custop op)
{
    int rc = loadq_room(db, Q_CUSTOPS, op.customer_id.n + op.name.n + op.s.n);
    if (rc != SEG_OK)
        return rc;
    struct seg__loadq *q = db->loadq;
    op.customer_id = loadq_keep(q, op.customer_id);
    op.name = loadq_keep(q, op.name);
    op.s = loadq_keep(q, op.s);
    q->op[q->n++] = op;
    return SEG_OK;
}

static int sink_customer(void *ctx, const char *id)
{
    if (!id)
        return seg__error(ctx, SEG_ESTORAGE, "load: customer without id");
    seg__custop op = { SEG__OP_ADD, seg__cstr(id), SEG__STR_NULL, 0, 0, 0, SEG__STR_NULL, 0 };
    return queue_custop(ctx, op);
}

static int sink_attr(void *ctx, const char *c, const char *n, const seg_value *v)
{
    if (!c || !n || !v)
        return seg__error(ctx, SEG_ESTORAGE, "load: incomplete attribute");
    seg__custop op = { SEG__OP_ATTR, seg__cstr(c), seg__cstr(n), v->type, v->i, v->d,
                       v->type == SEG_TYPE_STRING ? seg__cstr(v->s) : SEG__STR_NULL, 0 };
    return queue_custop(ctx, op);
}

static int sink_consent(void *ctx, const char *c, const char *ch, int s)
{
    if (!c || !ch)
        return seg__error(ctx, SEG_ESTORAGE, "load: incomplete consent");
    seg__custop op = { SEG__OP_CONSENT, seg__cstr(c), seg__cstr(ch), 0, 0, 0,
                       SEG__STR_NULL, s };
    return queue_custop(ctx, op);
}

static int sink_record(void *ctx, const char *table, const char *key, const void *d, size_t n)
{
    /* records stay in the backend: a module reads its table when it is set
     * up (seg__st_load_records) */
    SEG_UNUSED(ctx); SEG_UNUSED(table); SEG_UNUSED(key); SEG_UNUSED(d); SEG_UNUSED(n);
    return SEG_OK;
}

static const seg_storage_sink load_sink = {
    sizeof(seg_storage_sink), sink_meta, sink_customer, sink_event,
    sink_attr, sink_consent, sink_record,
};

int seg__storage_open(seg_db *db, const char *uri)
{
    const seg_storage_backend *be = db->backend;
    if (be->version < SEG_STORAGE_BACKEND_V1)
        return seg__error(db, SEG_EVERSION, "storage backend: unsupported version %d",
                          be->version);
    if (be->storage_size < sizeof(seg_storage) || !be->methods)
        return seg__error(db, SEG_EINVAL,
                          "storage backend '%s': storage_size below sizeof(seg_storage) or no "
                          "methods", be->name ? be->name : "?");
    const seg_storage_methods *m = be->methods;
    if (m->version < SEG_STORAGE_METHODS_V1 || !m->open || !m->close)
        return seg__error(db, SEG_EVERSION,
                          "storage backend '%s': methods version %d unsupported or open/close "
                          "missing", be->name ? be->name : "?", m->version);
    seg_storage *st = seg__calloc(&db->alloc, 1, be->storage_size);
    if (!st)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    db->stcore.db = db;
    db->stcore.backend = be;
    st->core = &db->stcore;
    db->st = st;
    seg__error_clear(db);
    int rc = m->open(st, uri, db->flags, be->app_data);
    if (rc != SEG_OK) {
        rc = st_fail(db, rc, "open");
        return rc;
    }
    st->methods = m; /* the core calls through the table it was given */
    /* load */
    if (m->load) {
        db->loading = true;
        rc = m->load(st, &load_sink, db);
        if (rc == SEG_OK)
            rc = loadq_flush(db);
        seg__loadq_free(db);
        seg__load_finish(db, rc == SEG_OK);
        db->loading = false;
        if (rc != SEG_OK)
            return st_fail(db, rc, "load");
    }
    if (!(db->flags & SEG_DB_READONLY)) {
        char v[2] = { (char)('0' + db->exponent), 0 };
        rc = seg__st_begin(db);
        if (rc == SEG_OK) {
            rc = seg__st_put_meta(db, "currency_exponent", v);
            if (rc == SEG_OK)
                rc = seg__st_commit(db);
            if (rc != SEG_OK)
                seg__st_rollback(db);
        }
        if (rc != SEG_OK)
            return rc;
    }
    return SEG_OK;
}

void seg__storage_close(seg_db *db)
{
    if (!db->st)
        return;
    if (db->backend->methods && db->backend->methods->close)
        db->backend->methods->close(db->st);
    seg__free(&db->alloc, db->st);
    db->st = NULL;
}
