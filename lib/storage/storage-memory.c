/*
 * The in-memory backend, the default.
 *
 * Events, customers, attributes, consent and the modules' state (ledgers,
 * journey states, the outbox) live only in the engine's own memory, so their
 * write slots are NULL (nothing is copied twice).  Meta entries are kept
 * here, with transactions: a rollback restores every entry the transaction
 * changed.
 */
#include "core/core-private.h"

typedef struct mem_rec {
    char *table, *key;
    void *data; /* NULL = deleted */
    size_t len;
} mem_rec;

typedef struct mem_undo {
    size_t index;   /* record changed */
    void *old;      /* its previous data (NULL = absent) */
    size_t oldlen;
} mem_undo;

typedef struct mem_storage {
    seg_storage base;
    mem_rec *recs;
    size_t n, cap;
    mem_undo *undo;
    size_t nundo, capundo;
    int in_txn;
} mem_storage;

/* The built-in backend allocates through the db's allocator. */
static const seg__alloc *A(seg_storage *st) { return &st->core->db->alloc; }

static char *dupstr(seg_storage *st, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = seg__malloc(A(st), n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static int mem_open(seg_storage *st, const char *uri, uint32_t flags, void *app_data)
{
    SEG_UNUSED(uri); SEG_UNUSED(flags); SEG_UNUSED(app_data);
    SEG_UNUSED(st);
    return SEG_OK;
}

static void mem_close(seg_storage *st)
{
    mem_storage *m = (mem_storage *)st;
    for (size_t i = 0; i < m->n; i++) {
        seg__free(A(st), m->recs[i].table);
        seg__free(A(st), m->recs[i].key);
        seg__free(A(st), m->recs[i].data);
    }
    for (size_t i = 0; i < m->nundo; i++)
        seg__free(A(st), m->undo[i].old);
    seg__free(A(st), m->recs);
    seg__free(A(st), m->undo);
}

static int mem_load(seg_storage *st, const seg_storage_sink *sink, void *ctx)
{
    mem_storage *m = (mem_storage *)st;
    for (size_t i = 0; i < m->n; i++) {
        mem_rec *r = &m->recs[i];
        if (r->data) {
            int rc = sink->meta(ctx, r->key, r->data);
            if (rc != SEG_OK)
                return rc;
        }
    }
    return SEG_OK;
}

static int mem_begin(seg_storage *st)
{
    mem_storage *m = (mem_storage *)st;
    if (m->in_txn)
        return seg_storage_set_error(st, SEG_EMISUSE, "transaction already open");
    m->in_txn = 1;
    return SEG_OK;
}

static void drop_undo(seg_storage *st, mem_storage *m)
{
    for (size_t i = 0; i < m->nundo; i++)
        seg__free(A(st), m->undo[i].old);
    m->nundo = 0;
}

static int mem_commit(seg_storage *st)
{
    mem_storage *m = (mem_storage *)st;
    if (!m->in_txn)
        return seg_storage_set_error(st, SEG_EMISUSE, "commit without a transaction");
    drop_undo(st, m);
    m->in_txn = 0;
    return SEG_OK;
}

static int mem_rollback(seg_storage *st)
{
    mem_storage *m = (mem_storage *)st;
    while (m->nundo) {
        mem_undo *u = &m->undo[--m->nundo];
        mem_rec *r = &m->recs[u->index];
        seg__free(A(st), r->data);
        r->data = u->old;
        r->len = u->oldlen;
    }
    m->in_txn = 0;
    return SEG_OK;
}

static int put(seg_storage *st, const char *table, const char *key, const void *data, size_t len)
{
    mem_storage *m = (mem_storage *)st;
    if (!table || !key)
        return seg_storage_set_error(st, SEG_EINVAL, "record without table or key");
    size_t i;
    for (i = 0; i < m->n; i++)
        if (strcmp(m->recs[i].table, table) == 0 && strcmp(m->recs[i].key, key) == 0)
            break;
    if (i == m->n) {
        if (!data)
            return SEG_OK;
        if (m->n == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 16;
            mem_rec *p = seg__realloc(A(st), m->recs, cap * sizeof *p);
            if (!p)
                return seg_storage_set_error(st, SEG_ENOMEM, "out of memory");
            m->recs = p;
            m->cap = cap;
        }
        mem_rec r = { dupstr(st, table), dupstr(st, key), NULL, 0 };
        if (!r.table || !r.key) {
            seg__free(A(st), r.table);
            seg__free(A(st), r.key);
            return seg_storage_set_error(st, SEG_ENOMEM, "out of memory");
        }
        m->recs[m->n++] = r;
    }
    void *copy = NULL;
    if (data) {
        copy = seg__malloc(A(st), len + 1);
        if (!copy)
            return seg_storage_set_error(st, SEG_ENOMEM, "out of memory");
        memcpy(copy, data, len);
        ((char *)copy)[len] = '\0';
    }
    if (m->in_txn) {
        if (m->nundo == m->capundo) {
            size_t cap = m->capundo ? m->capundo * 2 : 16;
            mem_undo *p = seg__realloc(A(st), m->undo, cap * sizeof *p);
            if (!p) {
                seg__free(A(st), copy);
                return seg_storage_set_error(st, SEG_ENOMEM, "out of memory");
            }
            m->undo = p;
            m->capundo = cap;
        }
        m->undo[m->nundo++] = (mem_undo){ i, m->recs[i].data, m->recs[i].len };
    } else {
        seg__free(A(st), m->recs[i].data);
    }
    m->recs[i].data = copy;
    m->recs[i].len = len;
    return SEG_OK;
}

static int mem_put_meta(seg_storage *st, const char *key, const char *value)
{
    return put(st, "\001meta", key, value, value ? strlen(value) : 0);
}

static const seg_storage_methods mem_methods = {
    SEG_STORAGE_METHODS_V1,
    mem_open, mem_close, mem_load, mem_begin, mem_commit, mem_rollback,
    mem_put_meta,
    NULL, /* put_events: the engine's memory is the store */
    NULL, /* put_customer */
    NULL, /* put_attr */
    NULL, /* put_consent */
    NULL, /* erase_customer */
    NULL, /* put_record: modules keep their state in memory */
};

static const seg_storage_backend mem_backend = {
    SEG_STORAGE_BACKEND_V1, sizeof(mem_storage), "memory", &mem_methods, NULL,
};

SEG_API const seg_storage_backend *seg_storage_memory(void)
{
    return &mem_backend;
}
