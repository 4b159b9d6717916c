/*
 * The customer store: lookups, iteration, attributes, consent, erasure and
 * anonymization.  Changes to attributes and consent go through
 * seg__customer_apply(), which applies a list of operations to memory with
 * an undo log, then writes them to the backend in one transaction, and
 * undoes memory if the backend fails.
 */
#include "storage/storage-private.h"
#include "outbox/outbox-private.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/random.h>
#endif

#define INFO_V1_SIZE sizeof(seg_customer_info)
#define CONSENT_BIT 0x80000000u

static const char *type_name(uint32_t t)
{
    static const char *const n[] = { "null", "string", "int", "number", "bool", "time" };
    return t <= SEG_TYPE_TIME ? n[t] : "?";
}

/* ---------------------------------------------------------- lookups */

static void fill_info(seg_db *db, const seg__cust *c, seg_customer_info *o, char *idbuf)
{
    if (c->idlen <= SEG__ID_INLINE) {
        memcpy(idbuf, c->idin, c->idlen);
    } else {
        seg__str id = seg__arena_str(&db->store.arena, c->id);
        memcpy(idbuf, id.p, id.n);
    }
    idbuf[c->idlen] = '\0';
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->customer_id = idbuf;
    o->orders = c->orders;
    o->purchase_days = c->days;
    o->first_purchase = c->days ? c->first_purchase : 0;
    o->last_purchase = c->days ? c->last_purchase : 0;
    o->revenue = c->revenue;
    o->refunds = c->refunds;
    o->net_revenue = c->revenue + c->refunds;
    o->units = c->units;
    o->events = c->events;
    o->engagements = c->engagements;
    o->first_seen = c->events ? c->first_seen : 0;
    o->last_seen = c->events ? c->last_seen : 0;
}

static int find_cust(seg_db *db, const char *customer_id, uint32_t *ci)
{
    seg__str id = seg__cstr(customer_id);
    int rc = seg__check_id(db, "customer_id", id);
    if (rc != SEG_OK)
        return rc;
    *ci = seg__cust_find(&db->store, id);
    if (*ci == SEG__NONE)
        return seg__error(db, SEG_ENOTFOUND, "customer_id '%s': no such customer", customer_id);
    return SEG_OK;
}

SEG_API int seg_customer_get(seg_customer_info *out, seg_db *db, const char *customer_id)
{
    if (!db)
        return SEG_EINVAL;
    seg__error_clear(db);
    if (!out)
        return seg__error(db, SEG_EINVAL, "out: NULL");
    if (out->struct_size < INFO_V1_SIZE)
        return seg__error(db, SEG_EVERSION, "seg_customer_info: unsupported struct_size %zu",
                          out->struct_size);
    uint32_t ci;
    int rc = find_cust(db, customer_id, &ci);
    if (rc != SEG_OK)
        return rc;
    seg_customer_info info;
    fill_info(db, &db->store.custs[ci], &info, db->idbuf);
    return seg__struct_out(out, out->struct_size, &info, sizeof info, INFO_V1_SIZE);
}

SEG_API uint64_t seg_customer_count(const seg_db *db)
{
    return db ? db->store.live_custs : 0;
}


static int foreach_impl(seg_db *db, int64_t as_of, bool use_as_of, uint32_t flags,
                        seg_customer_cb cb, void *payload)
{
    if (!db)
        return SEG_EINVAL;
    seg__error_clear(db);
    if (!cb)
        return seg__error(db, SEG_EINVAL, "cb: NULL");
    if (flags & ~SEG_CUSTOMER_SORTED)
        return seg__error(db, SEG_EINVAL, "unknown flags 0x%x", (unsigned)flags);
    seg__store *s = &db->store;
    uint32_t *order = NULL;
    size_t n = 0;
    if (flags & SEG_CUSTOMER_SORTED) {
        order = seg__malloc(&db->alloc, (size_t)s->ncusts * 2 * sizeof *order + 1);
        if (!order)
            return seg__error(db, SEG_ENOMEM, "out of memory");
        for (uint32_t ci = 0; ci < s->ncusts; ci++)
            if (s->custs[ci].id)
                order[n++] = ci;
        seg__cust_sort_by_id(s, order, order + s->ncusts, n);
    } else {
        n = s->ncusts;
    }
    char idbuf[SEG_ID_MAX + 1];
    int rc = SEG_OK;
    bool was = db->iterating;
    db->iterating = true;
    for (size_t k = 0; k < n; k++) {
        uint32_t ci = order ? order[k] : (uint32_t)k;
        const seg__cust *c = &s->custs[ci];
        if (!c->id)
            continue;
        seg__cust tmp;
        if (use_as_of) {
            if (seg__cust_compute(&db->alloc, s, ci, as_of, &tmp) != SEG_OK) {
                rc = seg__error(db, SEG_ENOMEM, "out of memory");
                break;
            }
            if (c->events && !tmp.events)
                continue; /* not a customer yet at as_of */
            c = &tmp;
        }
        seg_customer_info info;
        fill_info(db, c, &info, idbuf);
        if (cb(&info, payload))
            break;
    }
    db->iterating = was;
    seg__free(&db->alloc, order);
    return rc;
}

SEG_API int seg_customer_foreach(seg_db *db, uint32_t flags, seg_customer_cb cb, void *payload)
{
    return foreach_impl(db, 0, false, flags, cb, payload);
}

SEG_API int seg_customer_foreach_as_of(seg_db *db, int64_t as_of, uint32_t flags,
                                       seg_customer_cb cb, void *payload)
{
    return foreach_impl(db, as_of, true, flags, cb, payload);
}

/* ------------------------------------------------- attribute storage */

static seg__custext *ext_of(seg__store *s, uint32_t ci)
{
    uint32_t e = s->custs[ci].ext;
    return e ? &s->exts[e - 1] : NULL;
}

static int ext_find(const seg__custext *x, uint32_t key)
{
    if (x)
        for (uint32_t k = 0; k < x->n; k++)
            if (x->items[k].key == key)
                return (int)k;
    return -1;
}

static void attrval_free(const seg__alloc *a, seg__attrval *v)
{
    if (!(v->key & CONSENT_BIT) && v->type == SEG_TYPE_STRING)
        seg__free(a, v->v.s);
}

typedef struct undo_ent {
    uint32_t ci, key;
    bool had;
    seg__attrval old;  /* owns its string */
} undo_ent;

typedef struct cust_txn {
    seg_db *db;
    uint32_t cust0, exts0, names0, chans0;
    uint64_t live0;
    seg__arena_mark arena0;
    undo_ent *undo;
    size_t n, cap;
} cust_txn;

static void txn_begin(cust_txn *t, seg_db *db)
{
    seg__store *s = &db->store;
    memset(t, 0, sizeof *t);
    t->db = db;
    t->cust0 = s->ncusts;
    t->live0 = s->live_custs;
    t->exts0 = s->nexts;
    t->names0 = s->attr_names.count;
    t->chans0 = s->consent_chans.count;
    t->arena0 = seg__arena_mark_get(&s->arena);
}

/* Set (type != NULL) or remove the value `key` of customer ci. */
static int txn_set(cust_txn *t, uint32_t ci, uint32_t key, uint32_t type, int64_t i, double d,
                   seg__str str)
{
    seg_db *db = t->db;
    seg__store *s = &db->store;
    const seg__alloc *a = &db->alloc;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        undo_ent *u = seg__realloc_array(a, t->undo, cap, sizeof *u);
        if (!u)
            return SEG_ENOMEM;
        t->undo = u;
        t->cap = cap;
    }
    seg__attrval nv = { key, type, { 0 } };
    bool consent = key & CONSENT_BIT;
    if (!consent && type == SEG_TYPE_STRING) {
        nv.v.s = seg__malloc(a, str.n + 1);
        if (!nv.v.s)
            return SEG_ENOMEM;
        if (str.n)
            memcpy(nv.v.s, str.p, str.n);
        nv.v.s[str.n] = '\0';
    } else if (!consent && type == SEG_TYPE_NUMBER) {
        nv.v.d = d;
    } else {
        nv.v.i = i;
    }
    seg__custext *x = ext_of(s, ci);
    if (!x && type != SEG_TYPE_NULL) {
        if (s->nexts == s->capexts) {
            uint32_t cap = s->capexts ? s->capexts * 2 : 64;
            seg__custext *p = seg__realloc_array(a, s->exts, cap, sizeof *p);
            if (!p) {
                attrval_free(a, &nv);
                return SEG_ENOMEM;
            }
            s->exts = p;
            s->capexts = cap;
        }
        x = &s->exts[s->nexts];
        memset(x, 0, sizeof *x);
        x->owner = ci;
        s->custs[ci].ext = ++s->nexts;
    }
    int k = ext_find(x, key);
    if (k < 0 && type != SEG_TYPE_NULL && x->n == x->cap) {
        uint32_t cap = x->cap ? x->cap * 2 : 4;
        seg__attrval *p = seg__realloc_array(a, x->items, cap, sizeof *p);
        if (!p) {
            attrval_free(a, &nv);
            return SEG_ENOMEM;
        }
        x->items = p;
        x->cap = cap;
    }
    undo_ent *u = &t->undo[t->n++];
    u->ci = ci;
    u->key = key;
    u->had = k >= 0;
    if (k >= 0)
        u->old = x->items[k];
    if (type == SEG_TYPE_NULL) {
        if (k >= 0)
            x->items[k] = x->items[--x->n];
    } else if (k >= 0) {
        x->items[k] = nv;
    } else {
        x->items[x->n++] = nv;
    }
    return SEG_OK;
}

static void txn_undo(cust_txn *t)
{
    seg_db *db = t->db;
    seg__store *s = &db->store;
    const seg__alloc *a = &db->alloc;
    while (t->n) {
        undo_ent *u = &t->undo[--t->n];
        seg__custext *x = ext_of(s, u->ci);
        int k = ext_find(x, u->key);
        if (k >= 0) {
            attrval_free(a, &x->items[k]);
            if (u->had)
                x->items[k] = u->old;
            else
                x->items[k] = x->items[--x->n];
        } else if (u->had) {
            x->items[x->n++] = u->old; /* room: it was there before */
        }
    }
    while (s->nexts > t->exts0) {
        seg__custext *x = &s->exts[--s->nexts];
        for (uint32_t k = 0; k < x->n; k++)
            attrval_free(a, &x->items[k]);
        seg__free(a, x->items);
        if (x->owner < s->ncusts)
            s->custs[x->owner].ext = 0;
    }
    for (uint32_t ci = s->ncusts; ci-- > t->cust0;) {
        seg__str id = seg__arena_str(&s->arena, s->custs[ci].id);
        seg__htab_remove(&s->cust_tab, seg__tag(seg__hash(id.p, id.n, SEG__SEED_CUST)), ci);
    }
    s->ncusts = t->cust0;
    s->live_custs = t->live0;
    seg__dict_truncate(&s->attr_names, &s->arena, t->names0);
    seg__dict_truncate(&s->consent_chans, &s->arena, t->chans0);
    seg__arena_truncate(a, &s->arena, t->arena0);
}

static void txn_done(cust_txn *t)
{
    for (size_t k = 0; k < t->n; k++)
        if (t->undo[k].had)
            attrval_free(&t->db->alloc, &t->undo[k].old);
    seg__free(&t->db->alloc, t->undo);
    t->undo = NULL;
    t->n = t->cap = 0;
}

/* --------------------------------------------------- applying ops */

static int check_value(seg_db *db, const seg__custop *op)
{
    switch (op->type) {
    case SEG_TYPE_NULL:
        return SEG_OK;
    case SEG_TYPE_STRING:
        if (!op->s.p && op->s.n)
            return seg__error(db, SEG_EINVAL, "attribute '%.*s': NULL string", (int)op->name.n,
                              op->name.p);
        if (op->s.n > SEG_ATTR_VALUE_MAX)
            return seg__error(db, SEG_EINVAL, "attribute '%.*s': string longer than %d bytes",
                              (int)op->name.n, op->name.p, SEG_ATTR_VALUE_MAX);
        if (!seg__utf8_valid(op->s.p, op->s.n))
            return seg__error(db, SEG_EINVAL, "attribute '%.*s': invalid UTF-8",
                              (int)op->name.n, op->name.p);
        return SEG_OK;
    case SEG_TYPE_INT:
        return SEG_OK;
    case SEG_TYPE_NUMBER:
        if (!isfinite(op->d))
            return seg__error(db, SEG_EINVAL, "attribute '%.*s': number is not finite",
                              (int)op->name.n, op->name.p);
        return SEG_OK;
    case SEG_TYPE_BOOL:
        if (op->i != 0 && op->i != 1)
            return seg__error(db, SEG_EINVAL, "attribute '%.*s': bool must be 0 or 1",
                              (int)op->name.n, op->name.p);
        return SEG_OK;
    case SEG_TYPE_TIME:
        if (op->i < SEG_TIME_MIN || op->i > SEG_TIME_MAX)
            return seg__error(db, SEG_ERANGE, "attribute '%.*s': time out of range",
                              (int)op->name.n, op->name.p);
        return SEG_OK;
    default:
        return seg__error(db, SEG_EINVAL, "attribute '%.*s': unknown type %u", (int)op->name.n,
                          op->name.p, (unsigned)op->type);
    }
}

/* Attribute index for a name with the given type (declaring it). */
static int attr_key(seg_db *db, seg__str name, uint32_t type, bool create, uint32_t *key)
{
    seg__store *s = &db->store;
    uint32_t k = seg__dict_find(&s->arena, &s->attr_names, name);
    if (k == SEG__NONE) {
        if (!create) {
            *key = SEG__NONE;
            return SEG_OK;
        }
        int err = SEG_OK;
        k = seg__dict_intern(&db->alloc, &s->arena, &s->attr_names, name, &err);
        if (k == SEG__NONE)
            return seg__error(db, err, "attribute '%.*s': %s", (int)name.n, name.p,
                              seg_errstr(err));
        if (k >= s->attr_types_cap) {
            uint32_t cap = s->attr_types_cap ? s->attr_types_cap * 2 : 16;
            uint32_t *p = seg__realloc_array(&db->alloc, s->attr_types, cap, sizeof *p);
            if (!p) {
                seg__dict_truncate(&s->attr_names, &s->arena, k);
                return seg__error(db, SEG_ENOMEM, "out of memory");
            }
            s->attr_types = p;
            s->attr_types_cap = cap;
        }
        s->attr_types[k] = type;
    } else if (type != SEG_TYPE_NULL && s->attr_types[k] != type) {
        return seg__error(db, SEG_EINVAL, "attribute '%.*s' is of type %s, not %s", (int)name.n,
                          name.p, type_name(s->attr_types[k]), type_name(type));
    }
    *key = k;
    return SEG_OK;
}

static int apply_mem(cust_txn *t, const seg__custop *op)
{
    seg_db *db = t->db;
    seg__store *s = &db->store;
    int rc = seg__check_id(db, "customer_id", op->customer_id);
    if (rc != SEG_OK)
        return rc;
    int err = SEG_OK;
    bool removal = (op->op == SEG__OP_ATTR && op->type == SEG_TYPE_NULL) ||
                   (op->op == SEG__OP_CONSENT && op->consent == SEG_CONSENT_UNKNOWN);
    if (removal && seg__cust_find(s, op->customer_id) == SEG__NONE) {
        /* nothing to remove, and no customer to create; still validated */
        if (op->op == SEG__OP_ATTR && (rc = seg__check_id(db, "attribute name", op->name)) != SEG_OK)
            return rc;
        if (op->op == SEG__OP_CONSENT && (rc = seg__check_id(db, "channel", op->name)) != SEG_OK)
            return rc;
        return SEG_OK;
    }
    uint32_t ci = seg__cust_intern(&db->alloc, s, op->customer_id, &err);
    if (ci == SEG__NONE)
        return seg__error(db, err, "customer_id: %s", seg_errstr(err));
    if (op->op == SEG__OP_ADD)
        return SEG_OK;
    if (op->op == SEG__OP_ATTR) {
        if ((rc = seg__check_id(db, "attribute name", op->name)) != SEG_OK ||
            (rc = check_value(db, op)) != SEG_OK)
            return rc;
        uint32_t key;
        if ((rc = attr_key(db, op->name, op->type, op->type != SEG_TYPE_NULL, &key)) != SEG_OK)
            return rc;
        if (key == SEG__NONE)
            return SEG_OK; /* removing an attribute nobody has */
        rc = txn_set(t, ci, key, op->type, op->i, op->d, op->s);
    } else if (op->op == SEG__OP_CONSENT) {
        if ((rc = seg__check_id(db, "channel", op->name)) != SEG_OK)
            return rc;
        if (op->consent < SEG_CONSENT_UNKNOWN || op->consent > SEG_CONSENT_DENIED)
            return seg__error(db, SEG_EINVAL, "consent '%.*s': unknown state %d",
                              (int)op->name.n, op->name.p, op->consent);
        uint32_t k = seg__dict_intern(&db->alloc, &s->arena, &s->consent_chans, op->name, &err);
        if (k == SEG__NONE)
            return seg__error(db, err, "channel: %s", seg_errstr(err));
        rc = txn_set(t, ci, k | CONSENT_BIT,
                     op->consent == SEG_CONSENT_UNKNOWN ? SEG_TYPE_NULL : (uint32_t)op->consent,
                     op->consent, 0, SEG__STR_NULL);
    } else {
        return seg__error(db, SEG_EINVAL, "unknown customer operation %u", (unsigned)op->op);
    }
    if (rc != SEG_OK)
        return seg__error(db, rc, "%s", seg_errstr(rc));
    return SEG_OK;
}

static char *zdup(seg__str s, char *buf, size_t cap)
{
    size_t n = s.n < cap - 1 ? s.n : cap - 1;
    if (n)
        memcpy(buf, s.p, n);
    buf[n] = '\0';
    return buf;
}

static int apply_storage(seg_db *db, const seg__custop *ops, size_t n, size_t *bad)
{
    const seg_storage_methods *m = db->backend->methods;
    if (!m->put_customer && !m->put_attr && !m->put_consent)
        return SEG_OK;
    char cust[SEG_ID_MAX + 1], name[SEG_ID_MAX + 1];
    int rc = SEG_OK;
    for (size_t k = 0; k < n && rc == SEG_OK; k++) {
        const seg__custop *op = &ops[k];
        zdup(op->customer_id, cust, sizeof cust);
        zdup(op->name, name, sizeof name);
        if (op->op == SEG__OP_ADD) {
            rc = seg__st_put_customer(db, cust);
        } else if (op->op == SEG__OP_ATTR) {
            seg_value v = { op->type, op->i, op->d, NULL };
            char *tmp = NULL;
            if (op->type == SEG_TYPE_STRING) {
                tmp = seg__malloc(&db->alloc, op->s.n + 1);
                if (!tmp)
                    return seg__error(db, SEG_ENOMEM, "out of memory");
                memcpy(tmp, op->s.p, op->s.n);
                tmp[op->s.n] = '\0';
                v.s = tmp;
            }
            rc = seg__st_put_attr(db, cust, name, &v);
            seg__free(&db->alloc, tmp);
        } else {
            rc = seg__st_put_consent(db, cust, name, op->consent);
        }
        if (rc != SEG_OK && bad)
            *bad = k;
    }
    return rc;
}

int seg__customer_apply(seg_db *db, const seg__custop *ops, size_t n, size_t *bad_index_out)
{
    if (bad_index_out)
        *bad_index_out = (size_t)-1;
    if ((db->flags & SEG_DB_READONLY) && !db->loading)
        return seg__error(db, SEG_EREADONLY, "the database was opened read-only");
    if (db->in_batch && !db->loading)
        return seg__error(db, SEG_EMISUSE, "a batch is open on this handle");
    if (db->iterating)
        return seg__error(db, SEG_EMISUSE, "the database cannot change during a foreach");
    cust_txn t;
    txn_begin(&t, db);
    int rc = SEG_OK;
    for (size_t k = 0; k < n; k++) {
        if ((rc = apply_mem(&t, &ops[k])) != SEG_OK) {
            if (bad_index_out)
                *bad_index_out = k;
            txn_undo(&t);
            txn_done(&t);
            return rc;
        }
    }
    rc = seg__st_begin(db);
    if (rc == SEG_OK) {
        /* attribute names first seen here: their type is now fixed */
        seg__store *s = &db->store;
        for (uint32_t k = t.names0; k < s->attr_names.count && rc == SEG_OK; k++) {
            seg__str nm = seg__arena_str(&s->arena, s->attr_names.refs[k]);
            char meta[5 + SEG_ID_MAX + 1];
            snprintf(meta, sizeof meta, "attr:%.*s", (int)nm.n, nm.p);
            rc = seg__st_put_meta(db, meta, type_name(s->attr_types[k]));
        }
        if (rc == SEG_OK)
            rc = apply_storage(db, ops, n, bad_index_out);
        if (rc == SEG_OK)
            rc = seg__st_commit(db);
        if (rc != SEG_OK)
            seg__st_rollback(db);
    }
    if (rc != SEG_OK)
        txn_undo(&t);
    else
        db->attr_gen++; /* attributes or consent may have changed */
    txn_done(&t);
    return rc;
}

/* ----------------------------------------------------- public calls */

static int one_op(seg_db *db, seg__custop *op)
{
    int rc = seg__customer_apply(db, op, 1, NULL);
    if (rc == SEG_OK)
        seg__error_clear(db);
    return rc;
}

SEG_API int seg_customer_add(seg_db *db, const char *customer_id)
{
    if (!db)
        return SEG_EINVAL;
    seg__error_clear(db);
    if (!customer_id)
        return seg__error(db, SEG_EINVAL, "customer_id: NULL");
    seg__custop op = { SEG__OP_ADD, seg__cstr(customer_id), SEG__STR_NULL, 0, 0, 0,
                       SEG__STR_NULL, 0 };
    if (seg__cust_find(&db->store, op.customer_id) != SEG__NONE &&
        seg__check_id(db, "customer_id", op.customer_id) == SEG_OK)
        return SEG_OK;
    return one_op(db, &op);
}

SEG_API int seg_customer_set_attr(seg_db *db, const char *customer_id, const char *name,
                                  const seg_value *value)
{
    if (!db)
        return SEG_EINVAL;
    seg__error_clear(db);
    if (!customer_id || !name || !value)
        return seg__error(db, SEG_EINVAL, "%s: NULL",
                          !customer_id ? "customer_id" : !name ? "name" : "value");
    if (value->type == SEG_TYPE_STRING && !value->s)
        return seg__error(db, SEG_EINVAL, "attribute '%s': NULL string", name);
    seg__custop op = { SEG__OP_ATTR, seg__cstr(customer_id), seg__cstr(name), value->type,
                       value->i, value->d,
                       value->type == SEG_TYPE_STRING ? seg__cstr(value->s) : SEG__STR_NULL, 0 };
    return one_op(db, &op);
}

SEG_API int seg_customer_get_attr(seg_value *out, seg_db *db, const char *customer_id,
                                  const char *name)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!db)
        return SEG_EINVAL;
    seg__error_clear(db);
    if (!out || !name)
        return seg__error(db, SEG_EINVAL, "%s: NULL", !out ? "out" : "name");
    uint32_t ci;
    int rc = find_cust(db, customer_id, &ci);
    if (rc != SEG_OK)
        return rc;
    seg__store *s = &db->store;
    uint32_t key = seg__dict_find(&s->arena, &s->attr_names, seg__cstr(name));
    int k = key == SEG__NONE ? -1 : ext_find(ext_of(s, ci), key);
    if (k < 0)
        return SEG_OK;
    const seg__attrval *v = &ext_of(s, ci)->items[k];
    out->type = v->type;
    if (v->type == SEG_TYPE_STRING)
        out->s = v->v.s;
    else if (v->type == SEG_TYPE_NUMBER)
        out->d = v->v.d;
    else
        out->i = v->v.i;
    return SEG_OK;
}

SEG_API int seg_attr_declare(seg_db *db, const char *name, uint32_t type)
{
    if (!db)
        return SEG_EINVAL;
    seg__error_clear(db);
    if (!name)
        return seg__error(db, SEG_EINVAL, "name: NULL");
    int rc = seg__check_id(db, "attribute name", seg__cstr(name));
    if (rc != SEG_OK)
        return rc;
    if (type < SEG_TYPE_STRING || type > SEG_TYPE_TIME)
        return seg__error(db, SEG_EINVAL, "attribute '%s': unknown type %u", name,
                          (unsigned)type);
    if ((db->flags & SEG_DB_READONLY) && !db->loading)
        return seg__error(db, SEG_EREADONLY, "the database was opened read-only");
    if (db->in_batch || db->iterating)
        return seg__error(db, SEG_EMISUSE, "the database cannot change now");
    seg__store *s = &db->store;
    uint32_t names0 = s->attr_names.count;
    uint32_t key;
    rc = attr_key(db, seg__cstr(name), type, true, &key);
    if (rc != SEG_OK || s->attr_names.count == names0)
        return rc; /* error, or declared already with this type */
    /* a declaration is stored as a meta entry "attr:NAME" = type name */
    char meta[5 + SEG_ID_MAX + 1];
    snprintf(meta, sizeof meta, "attr:%s", name);
    rc = seg__st_begin(db);
    if (rc == SEG_OK) {
        rc = seg__st_put_meta(db, meta, type_name(type));
        if (rc == SEG_OK)
            rc = seg__st_commit(db);
        if (rc != SEG_OK)
            seg__st_rollback(db);
    }
    if (rc != SEG_OK)
        seg__dict_truncate(&s->attr_names, &s->arena, names0);
    return rc;
}

int seg__load_declaration(seg_db *db, const char *name, const char *type)
{
    for (uint32_t t = SEG_TYPE_STRING; t <= SEG_TYPE_TIME; t++)
        if (strcmp(type, type_name(t)) == 0)
            return seg_attr_declare(db, name, t);
    return seg__error(db, SEG_ESTORAGE, "load: attribute '%s' has unknown type '%s'", name, type);
}

SEG_API uint32_t seg_attr_type(seg_db *db, const char *name)
{
    if (!db || !name)
        return SEG_TYPE_NULL;
    seg__store *s = &db->store;
    uint32_t k = seg__dict_find(&s->arena, &s->attr_names, seg__cstr(name));
    return k == SEG__NONE ? SEG_TYPE_NULL : s->attr_types[k];
}

SEG_API int seg_customer_set_consent(seg_db *db, const char *customer_id, const char *channel,
                                     int state)
{
    if (!db)
        return SEG_EINVAL;
    seg__error_clear(db);
    if (!customer_id || !channel)
        return seg__error(db, SEG_EINVAL, "%s: NULL", !customer_id ? "customer_id" : "channel");
    seg__custop op = { SEG__OP_CONSENT, seg__cstr(customer_id), seg__cstr(channel), 0, 0, 0,
                       SEG__STR_NULL, state };
    return one_op(db, &op);
}

SEG_API int seg_customer_get_consent(int *out, seg_db *db, const char *customer_id,
                                     const char *channel)
{
    if (out)
        *out = SEG_CONSENT_UNKNOWN;
    if (!db)
        return SEG_EINVAL;
    seg__error_clear(db);
    if (!out || !channel)
        return seg__error(db, SEG_EINVAL, "%s: NULL", !out ? "out" : "channel");
    uint32_t ci;
    int rc = find_cust(db, customer_id, &ci);
    if (rc != SEG_OK)
        return rc;
    seg__store *s = &db->store;
    uint32_t key = seg__dict_find(&s->arena, &s->consent_chans, seg__cstr(channel));
    int k = key == SEG__NONE ? -1 : ext_find(ext_of(s, ci), key | CONSENT_BIT);
    if (k >= 0)
        *out = (int)ext_of(s, ci)->items[k].type;
    return SEG_OK;
}

/* -------------------------------------------------- erasure, anonymize */

static void drop_ext(seg_db *db, uint32_t ci)
{
    seg__custext *x = ext_of(&db->store, ci);
    if (!x)
        return;
    for (uint32_t k = 0; k < x->n; k++)
        attrval_free(&db->alloc, &x->items[k]);
    x->n = 0;
}

static void remove_ids(seg__store *s, uint32_t ci)
{
    for (uint32_t j = s->custs[ci].head; j != SEG__NONE; j = seg__ev_next(s, j))
        seg__htab_remove(&s->id_tab, seg__tag(seg__event_id_hash(s, j)), j);
}

static void insert_ids(seg__store *s, uint32_t ci)
{
    for (uint32_t j = s->custs[ci].head; j != SEG__NONE; j = seg__ev_next(s, j))
        seg__htab_insert(&s->id_tab, seg__tag(seg__event_id_hash(s, j)), j);
}

static void wipe_events(seg__store *s, uint32_t ci)
{
    /* first the order table (lines share their order's id string, which
     * the second pass wipes) */
    for (uint32_t j = s->custs[ci].head; j != SEG__NONE; j = seg__ev_next(s, j)) {
        uint32_t ref = seg__ev_ref(s, j);
        if (ref && seg__ev_kind(s, j) != SEG_EVENT_ENGAGEMENT) {
            seg__str o = seg__arena_str(&s->arena, ref);
            seg__htab_remove(&s->order_tab, seg__tag(seg__hash(o.p, o.n, SEG__SEED_ORDER)), j);
        }
    }
    for (uint32_t j = s->custs[ci].head; j != SEG__NONE;) {
        seg__evchunk *c = seg__ev_chunk(s, j);
        uint32_t off = SEG__OFF(j), next = c->next[off];
        uint32_t kind = c->kindchan[off] >> 14;
        uint32_t ref = c->ref[off];
        if (ref && kind != SEG_EVENT_ENGAGEMENT)
            seg__arena_wipe(&s->arena, ref);
        if (c->eid)
            seg__arena_wipe(&s->arena, c->eid[off]);
        if (c->refund_of)
            seg__arena_wipe(&s->arena, c->refund_of[off]);
        if (c->ts32) c->ts32[off] = 0; else c->ts64[off] = 0;
        if (c->amt32) c->amt32[off] = 0; else c->amt64[off] = 0;
        c->cust[off] = 0;
        c->ref[off] = 0;
        c->next[off] = SEG__NONE;
        c->kindchan[off] = SEG__KIND_DELETED;
        c->cat[off] = 0;
        if (c->qty) c->qty[off] = 0;
        if (c->sku) c->sku[off] = 0;
        if (c->refund_of) c->refund_of[off] = 0;
        if (c->eid) c->eid[off] = 0;
        uint32_t ok = seg__occ_pos(s, j);
        if (ok != SEG__NONE)
            s->occ_val[ok] = 0;
        s->live_events--;
        j = next;
    }
}

SEG_API int seg_customer_erase(seg_db *db, const char *customer_id)
{
    if (!db)
        return SEG_EINVAL;
    seg__error_clear(db);
    uint32_t ci;
    int rc = seg__db_writable(db);
    if (rc == SEG_OK)
        rc = find_cust(db, customer_id, &ci);
    if (rc != SEG_OK)
        return rc;
    /* the outbox follows erasure once it is loaded (stored actions of the
     * customer go too) */
    if (seg__st_wants_records(db) && (rc = seg__outbox_load(db)) != SEG_OK)
        return rc;
    rc = seg__st_begin(db);
    if (rc == SEG_OK) {
        rc = seg__st_erase_customer(db, customer_id);
        if (rc == SEG_OK && db->nmodules)
            rc = seg__modules_customer_gone(db, ci, customer_id);
        if (rc == SEG_OK)
            rc = seg__st_commit(db);
        if (rc != SEG_OK)
            seg__st_rollback(db);
        if (db->nmodules)
            seg__modules_txn_end(db, rc == SEG_OK);
    }
    if (rc != SEG_OK)
        return rc;
    seg__store *s = &db->store;
    /* ids first: derived ids are computed from content that is wiped next */
    remove_ids(s, ci);
    wipe_events(s, ci);
    drop_ext(db, ci);
    seg__cust *c = &s->custs[ci];
    seg__str id = seg__arena_str(&s->arena, c->id);
    seg__htab_remove(&s->cust_tab, seg__tag(seg__hash(id.p, id.n, SEG__SEED_CUST)), ci);
    seg__arena_wipe(&s->arena, c->id);
    uint32_t ext = c->ext;
    memset(c, 0, sizeof *c);
    c->ext = ext;
    c->head = SEG__NONE;
    s->live_custs--;
    return SEG_OK;
}

static int random_bytes(uint8_t *buf, size_t n)
{
#if defined(__linux__)
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        got += (size_t)r;
    }
    if (got == n)
        return 0;
#endif
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < n) {
        ssize_t r = read(fd, buf + off, n - off);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            close(fd);
            return -1;
        }
        off += (size_t)r;
    }
    close(fd);
    return 0;
}

/* Write all of a customer's events to the backend. */
static int put_customer_events(seg_db *db, uint32_t ci)
{
    if (!seg__st_wants_events(db))
        return SEG_OK;
    seg__store *s = &db->store;
    enum { CH = 256 };
    seg_event_info *infos = seg__malloc(&db->alloc, CH * sizeof *infos);
    seg__info_bufs *bufs = seg__malloc(&db->alloc, CH * sizeof *bufs);
    int rc = SEG_OK;
    if (!infos || !bufs) {
        rc = seg__error(db, SEG_ENOMEM, "out of memory");
    } else {
        /* in the order they were ingested, as a fresh import would store them */
        const seg__cust *c = &s->custs[ci];
        uint32_t *order = seg__malloc(&db->alloc, ((size_t)c->events + 1) * sizeof *order);
        if (!order) {
            rc = seg__error(db, SEG_ENOMEM, "out of memory");
        } else {
            seg__cust_events(s, c, order);
            for (uint32_t k = 0; k < c->events && rc == SEG_OK;) {
                size_t n = 0;
                for (; k < c->events && n < CH; k++, n++)
                    seg__event_info(s, order[k], &infos[n], &bufs[n]);
                rc = seg__st_put_events(db, infos, n);
            }
            seg__free(&db->alloc, order);
        }
    }
    seg__free(&db->alloc, infos);
    seg__free(&db->alloc, bufs);
    return rc;
}

/* A refund of the customer naming one of the customer's own order-less
 * purchases by its derived id: that id changes with the customer's id, so
 * the refund's refund_of must follow it. */
typedef struct relink {
    uint32_t refund;
    seg__ref old_ref, new_ref;
} relink;

/* Find the refunds to relink and store the new id texts (before anything
 * changes, so a failure changes nothing but the arena's tail). */
static int plan_relinks(seg_db *db, uint32_t ci, seg__str new_id, relink **out, size_t *n_out)
{
    seg__store *s = &db->store;
    *out = NULL;
    *n_out = 0;
    size_t n = 0, cap = 0;
    relink *rl = NULL;
    for (uint32_t i = s->custs[ci].head; i != SEG__NONE; i = seg__ev_next(s, i)) {
        uint32_t rf = seg__ev_refund_of(s, i);
        if (!rf || seg__ev_kind(s, i) != SEG_EVENT_REFUND)
            continue;
        seg__str text = seg__arena_str(&s->arena, rf);
        if (text.n != 33 || text.p[0] != '~')
            continue;
        for (uint32_t j = s->custs[ci].head; j != SEG__NONE; j = seg__ev_next(s, j)) {
            if (seg__ev_kind(s, j) != SEG_EVENT_PURCHASE || seg__ev_eid(s, j) || seg__ev_ref(s, j))
                continue;
            char old[34], neu[34];
            seg__did_format(old, seg__derive_stored(s, j));
            if (memcmp(old, text.p, 33) != 0)
                continue;
            seg__ev ev;
            uint32_t occ;
            seg__ev_load(s, j, &ev, &occ);
            ev.customer_id = new_id;
            seg__did_format(neu, seg__derive_id(&ev, occ));
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                relink *p = seg__realloc_array(&db->alloc, rl, cap, sizeof *p);
                if (!p) {
                    seg__free(&db->alloc, rl);
                    return SEG_ENOMEM;
                }
                rl = p;
            }
            seg__ref nr = seg__arena_add(&db->alloc, &s->arena, neu, 33);
            if (!nr) {
                seg__free(&db->alloc, rl);
                return SEG_ENOMEM;
            }
            rl[n].refund = i;
            rl[n].old_ref = rf;
            rl[n].new_ref = nr;
            n++;
            break;
        }
    }
    *out = rl;
    *n_out = n;
    return SEG_OK;
}

/* Give customer ci the id in arena ref `to`: its derived event ids (and the
 * refund_of texts in rl, forward or back) change with it. */
static void rekey(seg__store *s, uint32_t ci, seg__ref to, const relink *rl, size_t nrl,
                  bool forward)
{
    seg__cust *c = &s->custs[ci];
    remove_ids(s, ci);
    seg__str id = seg__arena_str(&s->arena, c->id);
    seg__htab_remove(&s->cust_tab, seg__tag(seg__hash(id.p, id.n, SEG__SEED_CUST)), ci);
    id = seg__arena_str(&s->arena, to);
    seg__cust_set_id(c, to, id);
    seg__htab_insert(&s->cust_tab, seg__tag(seg__hash(id.p, id.n, SEG__SEED_CUST)), ci);
    for (size_t k = 0; k < nrl; k++)
        seg__ev_chunk(s, rl[k].refund)->refund_of[SEG__OFF(rl[k].refund)] =
            forward ? rl[k].new_ref : rl[k].old_ref;
    insert_ids(s, ci);
}

SEG_API int seg_customer_anonymize(seg_db *db, const char *customer_id, char **new_id_out)
{
    if (new_id_out)
        *new_id_out = NULL;
    if (!db)
        return SEG_EINVAL;
    seg__error_clear(db);
    uint32_t ci;
    int rc = seg__db_writable(db);
    if (rc == SEG_OK)
        rc = find_cust(db, customer_id, &ci);
    if (rc != SEG_OK)
        return rc;
    if (seg__st_wants_records(db) && (rc = seg__outbox_load(db)) != SEG_OK)
        return rc;
    seg__store *s = &db->store;
    char nid[5 + 32 + 1];
    for (int tries = 0;; tries++) {
        uint8_t rnd[16];
        if (tries == 8 || random_bytes(rnd, sizeof rnd) != 0)
            return seg__error(db, SEG_ERROR, "no random source for the anonymous id");
        memcpy(nid, "anon-", 5);
        for (int k = 0; k < 16; k++) {
            nid[5 + 2 * k] = "0123456789abcdef"[rnd[k] >> 4];
            nid[6 + 2 * k] = "0123456789abcdef"[rnd[k] & 15];
        }
        nid[37] = '\0';
        if (seg__cust_find(s, seg__cstr(nid)) == SEG__NONE)
            break;
    }
    char *user = NULL;
    if (new_id_out && !(user = seg__strdup_user(&db->alloc, nid, 37)))
        return seg__error(db, SEG_ENOMEM, "out of memory");
    seg__ref to = seg__arena_add(&db->alloc, &s->arena, nid, 37);
    if (!to) {
        seg_free(user);
        return seg__error(db, SEG_ENOMEM, "out of memory");
    }
    seg__ref from = s->custs[ci].id;
    relink *rl;
    size_t nrl;
    if (plan_relinks(db, ci, seg__cstr(nid), &rl, &nrl) != SEG_OK) {
        seg_free(user);
        return seg__error(db, SEG_ENOMEM, "out of memory");
    }
    rekey(s, ci, to, rl, nrl, true);
    rc = seg__st_begin(db);
    if (rc == SEG_OK) {
        rc = seg__st_erase_customer(db, customer_id);
        /* what modules keep about the old identity goes (queued actions,
         * journey states, ledgers): the new id starts afresh there */
        if (rc == SEG_OK && db->nmodules)
            rc = seg__modules_customer_gone(db, ci, customer_id);
        if (rc == SEG_OK && db->backend->methods->put_customer && !db->loading)
            rc = seg__st_put_customer(db, nid);
        if (rc == SEG_OK)
            rc = put_customer_events(db, ci);
        if (rc == SEG_OK)
            rc = seg__st_commit(db);
        if (rc != SEG_OK)
            seg__st_rollback(db);
        if (db->nmodules)
            seg__modules_txn_end(db, rc == SEG_OK);
    }
    if (rc != SEG_OK) {
        rekey(s, ci, from, rl, nrl, false);
        seg__arena_wipe(&s->arena, to);
        seg__free(&db->alloc, rl);
        seg_free(user);
        return rc;
    }
    for (size_t k = 0; k < nrl; k++)
        seg__arena_wipe(&s->arena, rl[k].old_ref);
    seg__free(&db->alloc, rl);
    seg__arena_wipe(&s->arena, from);
    drop_ext(db, ci);
    db->attr_gen++; /* attributes and consent dropped */
    if (new_id_out)
        *new_id_out = user;
    return SEG_OK;
}

