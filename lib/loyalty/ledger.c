/*
 * The points ledger of a program on a database.
 *
 * Per customer (by store index) the ledger keeps its entries in time
 * order: purchases (lots, with the points fixed when they were applied),
 * refunds, and redemptions with the lots they drew from.  Everything else
 * (what is left in each lot, expiry, reversals, the tier) is the engine's
 * replay of the entries as of a time (engine.c), so any past state can be
 * asked for.
 *
 * Following ingestion: the module hook events_added turns each new
 * purchase and refund into an entry inside the batch's transaction and
 * writes each changed customer's ledger as a record; txn_end keeps the
 * changes when the transaction committed and removes them when it rolled
 * back (entries are only ever added, so the undo is "drop the entries
 * numbered from the customer's first new one").  Redemptions run in a
 * transaction of their own the same way.
 *
 * Records: table "loyalty:PROGRAM", key the customer id, data one JSON
 * object per customer (doc/loyalty.md).  On attach they are read back,
 * matched with the customer's stored events, and any purchase or refund
 * the records do not hold is applied in time order.
 */
#include "loyalty/loyalty-private.h"
#include "storage/storage-private.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct ldraws {
    uint32_t n;
    uint32_t *lot;           /* seq of the lot */
    int64_t *pts;
} ldraws;

typedef struct lentry {
    int64_t ts, amount, points;
    uint32_t order;          /* key: the store index of the order's first event */
    uint32_t seq;
    uint32_t ev;             /* the store event (purchases, refunds), SEG__NONE: unknown */
    uint8_t kind;            /* SEG__LE_* */
    uint8_t bonus;           /* purchase: the bonus rule + 1 */
    uint8_t unfixed;         /* purchase: points not computed yet (fix_points) */
    ldraws *draws;           /* redemptions */
    char *order_id;          /* restored entries whose event was not found: the order's id */
} lentry;

typedef struct lcust {
    lentry *e;
    uint32_t n, cap;
    uint32_t next_seq;       /* the next entry's number - 1 */
    uint32_t seq0;           /* in a transaction: next_seq at its start */
    bool touched;
} lcust;

struct seg_loyalty_ledger {
    seg_db *db;
    seg_loyalty *prog;
    char *table;
    lcust *cust;
    uint32_t ncust;
    uint32_t *touched;       /* customers changed in the transaction */
    size_t ntouched, captouched;
    seg__lent *work;         /* replay scratch */
    size_t workcap;
    uint32_t maxn;
    uint64_t gen;            /* bumped by every change */
    /* the last value computed for segdef */
    uint32_t vci;
    int64_t vnow;
    uint64_t vgen;
    bool vvalid;
    seg__lres vres;
    /* redemption draws being recorded */
    ldraws *rec;
    const lentry *rec_src;
    int rec_err;
    char *buf;               /* JSON text */
    size_t buflen, bufcap;
    /* customers erased in the transaction: their ledgers as they were */
    struct lgone { uint32_t ci; lcust c; } *gone;
    size_t ngone, capgone;
};

static void ldraws_free(const seg__alloc *a, ldraws *d)
{
    if (d) {
        seg__free(a, d->lot);
        seg__free(a, d->pts);
        seg__free(a, d);
    }
}

static void entry_free(const seg__alloc *a, lentry *e)
{
    ldraws_free(a, e->draws);
    seg__free(a, e->order_id);
}

/* ---- customers and entries ---- */

static int grow_cust(seg__ledger *l, uint32_t ci)
{
    if (ci < l->ncust)
        return SEG_OK;
    uint32_t n = l->db->store.ncusts > ci ? l->db->store.ncusts : ci + 1;
    uint32_t cap = n < 1024 ? 1024 : n + n / 2;
    lcust *c = seg__realloc_array(&l->db->alloc, l->cust, cap, sizeof *c);
    if (!c)
        return seg__error(l->db, SEG_ENOMEM, "out of memory");
    memset(c + l->ncust, 0, (size_t)(cap - l->ncust) * sizeof *c);
    l->cust = c;
    l->ncust = cap;
    return SEG_OK;
}

static int work_room(seg__ledger *l, size_t n)
{
    if (n <= l->workcap)
        return SEG_OK;
    size_t cap = n < 64 ? 64 : n + n / 2;
    seg__lent *w = seg__realloc_array(&l->db->alloc, l->work, cap, sizeof *w);
    if (!w)
        return seg__error(l->db, SEG_ENOMEM, "out of memory");
    l->work = w;
    l->workcap = cap;
    return SEG_OK;
}

static void touch(seg__ledger *l, uint32_t ci)
{
    lcust *c = &l->cust[ci];
    if (c->touched)
        return;
    c->touched = true;
    c->seq0 = c->next_seq;
    l->touched[l->ntouched++] = ci;
}

static int touch_room(seg__ledger *l, size_t more)
{
    if (l->ntouched + more <= l->captouched)
        return SEG_OK;
    size_t cap = (l->ntouched + more) * 2;
    uint32_t *t = seg__realloc_array(&l->db->alloc, l->touched, cap, sizeof *t);
    if (!t)
        return seg__error(l->db, SEG_ENOMEM, "out of memory");
    l->touched = t;
    l->captouched = cap;
    return SEG_OK;
}

/* Insert an entry after those at or before its time.  Returns its index
 * or -1 (ENOMEM, message set). */
static long insert(seg__ledger *l, uint32_t ci, const lentry *x)
{
    lcust *c = &l->cust[ci];
    if (c->n == c->cap) {
        uint32_t cap = c->cap ? c->cap * 2 : 4;
        lentry *e = seg__realloc_array(&l->db->alloc, c->e, cap, sizeof *e);
        if (!e) {
            seg__error(l->db, SEG_ENOMEM, "out of memory");
            return -1;
        }
        c->e = e;
        c->cap = cap;
    }
    if (work_room(l, (size_t)c->n + 1) != SEG_OK)
        return -1;
    uint32_t k = c->n;
    while (k > 0 && c->e[k - 1].ts > x->ts)
        k--;
    memmove(&c->e[k + 1], &c->e[k], (size_t)(c->n - k) * sizeof *c->e);
    c->e[k] = *x;
    c->n++;
    if (c->n > l->maxn)
        l->maxn = c->n;
    l->gen++;
    return (long)k;
}

/* The customer's entries as engine entries (into l->work). */
static void to_work(seg__ledger *l, const lcust *c)
{
    for (uint32_t k = 0; k < c->n; k++) {
        const lentry *x = &c->e[k];
        seg__lent *w = &l->work[k];
        w->ts = x->ts;
        w->amount = x->amount;
        w->points = x->points;
        w->order = x->order;
        w->kind = x->kind;
        w->fixed = !x->unfixed;
        w->bonus = x->bonus;
    }
}

/* Points of the purchases applied in this transaction: one replay per
 * customer gives each the tier held at its time. */
static void fix_points(seg__ledger *l)
{
    for (size_t k = 0; k < l->ntouched; k++) {
        lcust *c = &l->cust[l->touched[k]];
        bool any = false;
        for (uint32_t j = 0; j < c->n && !any; j++)
            any = c->e[j].unfixed;
        if (!any)
            continue;
        seg__lres r;
        to_work(l, c);
        seg__loyalty_replay(l->prog, l->work, c->n, INT64_MAX, &r, NULL, NULL, 0);
        for (uint32_t j = 0; j < c->n; j++)
            if (c->e[j].unfixed) {
                c->e[j].points = l->work[j].points;
                c->e[j].unfixed = 0;
            }
    }
}

static void replay(seg__ledger *l, const lcust *c, int64_t until, seg__lres *r)
{
    to_work(l, c);
    seg__loyalty_replay(l->prog, l->work, c->n, until, r, NULL, NULL, 0);
}

/* ---- events -> entries ---- */

static seg__str dict_str(const seg__store *s, const seg__dict *d, uint32_t idx1)
{
    if (!idx1 || idx1 > d->count)
        return SEG__STR_NULL;
    return seg__arena_str(&s->arena, d->refs[idx1 - 1]);
}

static uint32_t purchase_key(const seg__store *s, uint32_t i)
{
    uint32_t ref = seg__ev_ref(s, i);
    if (!ref)
        return i;
    uint32_t f = seg__order_find(s, seg__arena_str(&s->arena, ref));
    return f == SEG__NONE ? i : f;
}

static uint32_t refund_key(const seg__store *s, uint32_t i)
{
    uint32_t ro = seg__ev_refund_of(s, i);
    if (!ro)
        return SEG__L_NO_ORDER;
    seg__str o = seg__arena_str(&s->arena, ro);
    uint32_t f = seg__order_find(s, o);
    if (f != SEG__NONE)
        return f;
    /* an order-less purchase named by its id */
    const seg__cust *c = &s->custs[seg__ev_cust(s, i)];
    for (uint32_t j = c->head; j != SEG__NONE; j = seg__ev_next(s, j))
        if (seg__ev_kind(s, j) == SEG_EVENT_PURCHASE && !seg__ev_ref(s, j) && seg__ev_eid(s, j) &&
            seg__arena_eq(&s->arena, seg__ev_eid(s, j), o))
            return j;
    return SEG__L_NO_ORDER;
}

/* Apply stored event i (a purchase or a refund) to the ledger. */
static int apply_event(seg__ledger *l, uint32_t i)
{
    const seg__store *s = &l->db->store;
    uint32_t kind = seg__ev_kind(s, i);
    if (kind != SEG_EVENT_PURCHASE && kind != SEG_EVENT_REFUND)
        return SEG_OK;
    uint32_t ci = seg__ev_cust(s, i);
    int rc = grow_cust(l, ci);
    if (rc != SEG_OK)
        return rc;
    lcust *c = &l->cust[ci];
    lentry x;
    memset(&x, 0, sizeof x);
    x.ts = seg__ev_ts(s, i);
    x.amount = seg__ev_amount(s, i);
    x.ev = i;
    if (kind == SEG_EVENT_PURCHASE) {
        x.kind = SEG__LE_PURCHASE;
        x.order = purchase_key(s, i);
        const seg__evchunk *ch = seg__ev_chunk(s, i);
        x.bonus = (uint8_t)seg__loyalty_bonus(l->prog,
                                              dict_str(s, &s->cat, ch->cat[SEG__OFF(i)]),
                                              dict_str(s, &s->chan, seg__ev_chan(s, i)));
        x.unfixed = 1;
    } else {
        x.kind = SEG__LE_REFUND;
        x.order = refund_key(s, i);
    }
    if ((rc = touch_room(l, 1)) != SEG_OK)
        return rc;
    touch(l, ci);
    x.seq = ++c->next_seq;
    if (insert(l, ci, &x) < 0) {
        c->next_seq--;
        return l->db->errcode;
    }
    return SEG_OK;
}

/* ---- records: one JSON object per customer ---- */

static int buf_room(seg__ledger *l, size_t more)
{
    if (l->buflen + more <= l->bufcap)
        return SEG_OK;
    size_t cap = (l->buflen + more) * 2;
    char *b = seg__realloc(&l->db->alloc, l->buf, cap);
    if (!b)
        return seg__error(l->db, SEG_ENOMEM, "out of memory");
    l->buf = b;
    l->bufcap = cap;
    return SEG_OK;
}

static int put_raw(seg__ledger *l, const char *s, size_t n)
{
    int rc = buf_room(l, n + 1);
    if (rc == SEG_OK) {
        memcpy(l->buf + l->buflen, s, n);
        l->buflen += n;
        l->buf[l->buflen] = '\0';
    }
    return rc;
}

static int putf(seg__ledger *l, const char *fmt, ...) SEG_PRINTF(2, 3);
static int putf(seg__ledger *l, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    return put_raw(l, tmp, (size_t)(n < 0 ? 0 : n >= (int)sizeof tmp ? (int)sizeof tmp - 1 : n));
}

static int put_jstr(seg__ledger *l, seg__str s)
{
    int rc = put_raw(l, "\"", 1);
    for (size_t k = 0; k < s.n && rc == SEG_OK; k++) {
        unsigned char ch = (unsigned char)s.p[k];
        if (ch == '"' || ch == '\\')
            rc = putf(l, "\\%c", ch);
        else if (ch < 0x20)
            rc = putf(l, "\\u%04x", ch);
        else
            rc = put_raw(l, (const char *)&ch, 1);
    }
    return rc == SEG_OK ? put_raw(l, "\"", 1) : rc;
}

static int put_time(seg__ledger *l, const char *key, int64_t t)
{
    char b[32];
    if (t == INT64_MAX || seg_time_format(b, sizeof b, t) == 0)
        return putf(l, ",\"%s\":null", key);
    return putf(l, ",\"%s\":\"%s\"", key, b);
}

/* the id of entry x's order, for the record */
static seg__str order_text(const seg__ledger *l, const lentry *x)
{
    if (x->order_id)
        return seg__cstr(x->order_id);
    const seg__store *s = &l->db->store;
    if (x->ev == SEG__NONE || x->ev >= s->nevents)
        return SEG__STR_NULL;
    if (x->kind == SEG__LE_PURCHASE) {
        uint32_t ref = seg__ev_ref(s, x->ev);
        if (!ref)
            ref = seg__ev_eid(s, x->ev);
        return ref ? seg__arena_str(&s->arena, ref) : SEG__STR_NULL;
    }
    uint32_t ro = seg__ev_refund_of(s, x->ev);
    return ro ? seg__arena_str(&s->arena, ro) : SEG__STR_NULL;
}

static const char *kind_name(int k)
{
    return k == SEG__LE_PURCHASE ? "purchase" : k == SEG__LE_REFUND ? "refund" : "redemption";
}

static int write_customer(seg__ledger *l, uint32_t ci)
{
    const seg__store *s = &l->db->store;
    const lcust *c = &l->cust[ci];
    if (!s->custs[ci].id)
        return SEG_OK; /* erased */
    seg__str id = seg__cust_id(s, ci);
    l->buflen = 0;
    int rc = put_raw(l, "{\"customer\":", 12);
    if (rc == SEG_OK)
        rc = put_jstr(l, id);
    if (rc == SEG_OK)
        rc = put_raw(l, ",\"entries\":[", 12);
    for (uint32_t k = 0; k < c->n && rc == SEG_OK; k++) {
        const lentry *x = &c->e[k];
        rc = putf(l, "%s{\"seq\":%u,\"type\":\"%s\"", k ? "," : "", (unsigned)x->seq,
                  kind_name(x->kind));
        if (rc == SEG_OK)
            rc = put_time(l, "ts", x->ts);
        if (rc == SEG_OK && x->kind != SEG__LE_REDEEM) {
            char m[SEG_MONEY_BUFSIZE];
            seg_money_format(m, sizeof m, x->amount, l->db->exponent);
            seg__str o = order_text(l, x);
            rc = putf(l, ",\"amount\":\"%s\"", m);
            if (rc == SEG_OK && o.n) {
                rc = put_raw(l, ",\"order\":", 9);
                if (rc == SEG_OK)
                    rc = put_jstr(l, o);
            }
        }
        if (rc == SEG_OK && x->kind != SEG__LE_REFUND)
            rc = putf(l, ",\"points\":%lld", (long long)x->points);
        if (rc == SEG_OK && x->kind == SEG__LE_PURCHASE)
            rc = put_time(l, "expires", seg__loyalty_expiry(l->prog, x->ts));
        if (rc == SEG_OK && x->draws) {
            rc = put_raw(l, ",\"draws\":[", 10);
            for (uint32_t d = 0; d < x->draws->n && rc == SEG_OK; d++)
                rc = putf(l, "%s{\"lot\":%u,\"points\":%lld}", d ? "," : "",
                          (unsigned)x->draws->lot[d], (long long)x->draws->pts[d]);
            if (rc == SEG_OK)
                rc = put_raw(l, "]", 1);
        }
        if (rc == SEG_OK)
            rc = put_raw(l, "}", 1);
    }
    if (rc == SEG_OK)
        rc = put_raw(l, "]}", 2);
    if (rc != SEG_OK)
        return rc;
    char key[SEG_ID_MAX + 1];
    memcpy(key, id.p, id.n);
    key[id.n] = '\0';
    return seg__st_put_record(l->db, l->table, key, l->buf, l->buflen);
}

static int write_touched(seg__ledger *l)
{
    if (!seg__st_wants_records(l->db))
        return SEG_OK;
    for (size_t k = 0; k < l->ntouched; k++) {
        int rc = write_customer(l, l->touched[k]);
        if (rc != SEG_OK)
            return rc;
    }
    return SEG_OK;
}

/* End of a transaction: keep or drop the entries added in it. */
static void end_txn(seg__ledger *l, bool committed)
{
    /* erased customers: their old ledgers freed, or put back */
    for (size_t k = l->ngone; k-- > 0;) {
        struct lgone *g = &l->gone[k];
        if (committed) {
            for (uint32_t r = 0; r < g->c.n; r++)
                entry_free(&l->db->alloc, &g->c.e[r]);
            seg__free(&l->db->alloc, g->c.e);
        } else {
            l->cust[g->ci] = g->c;
        }
    }
    l->ngone = 0;
    for (size_t k = 0; k < l->ntouched; k++) {
        lcust *c = &l->cust[l->touched[k]];
        if (!committed) {
            uint32_t w = 0;
            for (uint32_t r = 0; r < c->n; r++) {
                if (c->e[r].seq > c->seq0)
                    entry_free(&l->db->alloc, &c->e[r]);
                else
                    c->e[w++] = c->e[r];
            }
            c->n = w;
            c->next_seq = c->seq0;
        }
        c->touched = false;
    }
    l->ntouched = 0;
    l->gen++;
}

/* ---- module hooks ---- */

static int hook_events(seg_db *db, void *state, uint32_t first, uint32_t n)
{
    seg__ledger *l = state;
    for (uint32_t i = first; i < first + n; i++) {
        int rc = apply_event(l, i);
        if (rc != SEG_OK) {
            seg__error_prefix(db, "loyalty program '%s': ", l->prog->name);
            return rc;
        }
    }
    fix_points(l);
    int rc = write_touched(l);
    if (rc != SEG_OK)
        seg__error_prefix(db, "loyalty program '%s': ", l->prog->name);
    return rc;
}

static void hook_txn_end(seg_db *db, void *state, bool committed)
{
    SEG_UNUSED(db);
    end_txn(state, committed);
}

/* A customer erased: their ledger goes (from memory and the records), put
 * back if the transaction rolls back.  Anonymized (the store already holds
 * the new id): the ledger follows the events to the new id, its record is
 * stored under that id. */
static int hook_customer_gone(seg_db *db, void *state, uint32_t ci, const char *customer_id)
{
    seg__ledger *l = state;
    if (ci >= l->ncust || (!l->cust[ci].n && !l->cust[ci].next_seq))
        return SEG_OK;
    seg__str now_id = seg__cust_id(&db->store, ci);
    if (!seg__str_eq(now_id, customer_id, strlen(customer_id))) {
        if (!seg__st_wants_records(db))
            return SEG_OK;
        int rc = seg__st_put_record(db, l->table, customer_id, NULL, 0);
        return rc == SEG_OK ? write_customer(l, ci) : rc;
    }
    if (l->ngone == l->capgone) {
        size_t cap = l->capgone ? l->capgone * 2 : 8;
        struct lgone *g = seg__realloc_array(&db->alloc, l->gone, cap, sizeof *g);
        if (!g)
            return seg__error(db, SEG_ENOMEM, "out of memory");
        l->gone = g;
        l->capgone = cap;
    }
    if (seg__st_wants_records(db)) {
        int rc = seg__st_put_record(db, l->table, customer_id, NULL, 0);
        if (rc != SEG_OK)
            return rc;
    }
    l->gone[l->ngone].ci = ci;
    l->gone[l->ngone].c = l->cust[ci];
    l->ngone++;
    memset(&l->cust[ci], 0, sizeof l->cust[ci]);
    l->gen++;
    return SEG_OK;
}

static const seg__module_ops ledger_ops = { "loyalty", hook_events, hook_txn_end,
                                            hook_customer_gone };

/* ---- restoring records ---- */

typedef struct jp {
    const char *p, *end;
    bool bad;
} jp;

static void jws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r'))
        j->p++;
}

static bool jlit(jp *j, char c)
{
    jws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

/* a string into out (at most cap-1 bytes, NUL-terminated) */
static bool jstring(jp *j, char *out, size_t cap)
{
    size_t n = 0;
    if (!jlit(j, '"'))
        return false;
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\') {
            if (j->p >= j->end)
                return false;
            c = *j->p++;
            if (c == 'u') {
                if (j->end - j->p < 4)
                    return false;
                unsigned v = 0;
                for (int k = 0; k < 4; k++) {
                    char h = *j->p++;
                    v = v * 16 + (unsigned)(h >= '0' && h <= '9' ? h - '0'
                                            : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                            : h >= 'A' && h <= 'F' ? h - 'A' + 10 : 99);
                }
                if (v > 0x7f)
                    return false;
                c = (char)v;
            } else if (c == 'n') {
                c = '\n';
            } else if (c == 't') {
                c = '\t';
            } else if (c == 'r') {
                c = '\r';
            } else if (c != '"' && c != '\\' && c != '/') {
                return false;
            }
        }
        if (n + 1 >= cap)
            return false;
        out[n++] = c;
    }
    out[n] = '\0';
    return jlit(j, '"');
}

static bool jint(jp *j, int64_t *out)
{
    jws(j);
    const char *s = j->p;
    while (j->p < j->end && (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')))
        j->p++;
    return j->p > s && seg__parse_int64(s, (size_t)(j->p - s), out) == SEG_OK;
}

static bool jnull(jp *j)
{
    jws(j);
    if (j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
        j->p += 4;
        return true;
    }
    return false;
}

typedef struct rjent {
    lentry x;
    char order[SEG_ID_MAX + 1];
} rjent;

/* one entry object */
static bool jentry(seg__ledger *l, jp *j, rjent *o, ldraws **draws)
{
    memset(o, 0, sizeof *o);
    o->x.ev = SEG__NONE;
    o->x.order = SEG__L_NO_ORDER;
    if (!jlit(j, '{'))
        return false;
    bool has_ts = false;
    char key[32], val[SEG_ID_MAX + 1];
    if (jlit(j, '}'))
        return false;
    do {
        if (!jstring(j, key, sizeof key) || !jlit(j, ':'))
            return false;
        int64_t v;
        if (strcmp(key, "seq") == 0) {
            if (!jint(j, &v) || v <= 0 || v > UINT32_MAX)
                return false;
            o->x.seq = (uint32_t)v;
        } else if (strcmp(key, "type") == 0) {
            if (!jstring(j, val, sizeof val))
                return false;
            o->x.kind = strcmp(val, "purchase") == 0 ? SEG__LE_PURCHASE
                        : strcmp(val, "refund") == 0 ? SEG__LE_REFUND
                        : strcmp(val, "redemption") == 0 ? SEG__LE_REDEEM : 0;
        } else if (strcmp(key, "ts") == 0 || strcmp(key, "expires") == 0) {
            if (jnull(j))
                continue;
            if (!jstring(j, val, sizeof val))
                return false;
            if (key[0] == 't') {
                if (seg_time_parse(&o->x.ts, val, strlen(val)) != SEG_OK)
                    return false;
                has_ts = true;
            }
        } else if (strcmp(key, "amount") == 0) {
            if (!jstring(j, val, sizeof val) ||
                seg_money_parse(&o->x.amount, val, strlen(val), l->db->exponent) != SEG_OK)
                return false;
        } else if (strcmp(key, "order") == 0) {
            if (!jstring(j, o->order, sizeof o->order))
                return false;
        } else if (strcmp(key, "points") == 0) {
            if (!jint(j, &v) || v < 0 || v > SEG_LOYALTY_POINTS_MAX)
                return false;
            o->x.points = v;
        } else if (strcmp(key, "draws") == 0) {
            if (!jlit(j, '['))
                return false;
            ldraws *d = seg__calloc(&l->db->alloc, 1, sizeof *d);
            if (!d)
                return false;
            *draws = d;
            uint32_t cap = 0;
            if (!jlit(j, ']')) {
                do {
                    int64_t lot = 0, pts = 0;
                    if (!jlit(j, '{'))
                        return false;
                    do {
                        if (!jstring(j, key, sizeof key) || !jlit(j, ':') || !jint(j, &v))
                            return false;
                        if (strcmp(key, "lot") == 0)
                            lot = v;
                        else if (strcmp(key, "points") == 0)
                            pts = v;
                    } while (jlit(j, ','));
                    if (!jlit(j, '}') || lot <= 0 || lot > UINT32_MAX || pts <= 0 ||
                        pts > SEG_LOYALTY_POINTS_MAX)
                        return false;
                    if (d->n == cap) {
                        cap = cap ? cap * 2 : 4;
                        uint32_t *a = seg__realloc_array(&l->db->alloc, d->lot, cap, sizeof *a);
                        if (a)
                            d->lot = a;
                        int64_t *b = seg__realloc_array(&l->db->alloc, d->pts, cap, sizeof *b);
                        if (b)
                            d->pts = b;
                        if (!a || !b)
                            return false;
                    }
                    d->lot[d->n] = (uint32_t)lot;
                    d->pts[d->n++] = pts;
                } while (jlit(j, ','));
                if (!jlit(j, ']'))
                    return false;
            }
        } else {
            return false;
        }
    } while (jlit(j, ','));
    if (!jlit(j, '}') || !o->x.kind || !o->x.seq || !has_ts)
        return false;
    if (o->x.kind == SEG__LE_REDEEM ? o->x.points <= 0
        : o->x.kind == SEG__LE_PURCHASE ? o->x.amount < 0 : o->x.amount >= 0)
        return false;
    return true;
}

/* Find the store event entry x was made from (same kind, time, amount and
 * order), not matched yet. */
static uint32_t match_event(const seg__store *s, uint32_t ci, const rjent *o, const uint8_t *used,
                            const uint32_t *evs, uint32_t nev)
{
    uint32_t want = o->x.kind == SEG__LE_PURCHASE ? SEG_EVENT_PURCHASE : SEG_EVENT_REFUND;
    SEG_UNUSED(ci);
    for (uint32_t k = 0; k < nev; k++) {
        uint32_t i = evs[k];
        if (used[k] || seg__ev_kind(s, i) != want || seg__ev_ts(s, i) != o->x.ts ||
            seg__ev_amount(s, i) != o->x.amount)
            continue;
        uint32_t ref = want == SEG_EVENT_PURCHASE ? seg__ev_ref(s, i) : seg__ev_refund_of(s, i);
        if (want == SEG_EVENT_PURCHASE && !ref)
            ref = seg__ev_eid(s, i);
        seg__str t = ref ? seg__arena_str(&s->arena, ref) : SEG__STR_NULL;
        if (t.n != strlen(o->order) || (t.n && memcmp(t.p, o->order, t.n) != 0))
            continue;
        return k;
    }
    return SEG__NONE;
}

typedef struct restore_ctx {
    seg__ledger *l;
    uint8_t *covered;        /* per store event */
    uint32_t *evs;
    uint8_t *used;
    size_t evcap;
    rjent *tmp;
    size_t tmpcap;
} restore_ctx;

static int bad_record(seg__ledger *l, const char *key, const char *what)
{
    return seg__error(l->db, SEG_EINVAL, "loyalty program '%s': record '%s' of table '%s': %s",
                      l->prog->name, key, l->table, what);
}

static int restore_one(void *ctxp, const char *key, const void *data, size_t len)
{
    restore_ctx *rc = ctxp;
    seg__ledger *l = rc->l;
    seg_db *db = l->db;
    const seg__store *s = &db->store;
    uint32_t ci = seg__cust_find(s, seg__cstr(key));
    if (ci == SEG__NONE || !s->custs[ci].id)
        return SEG_OK; /* a customer erased since */
    int r = grow_cust(l, ci);
    if (r != SEG_OK)
        return r;
    lcust *c = &l->cust[ci];
    if (c->n)
        return bad_record(l, key, "the customer has two records");
    jp j = { data, (const char *)data + len, false };
    char id[SEG_ID_MAX + 1], k2[32];
    if (!jlit(&j, '{'))
        return bad_record(l, key, "not a JSON object");
    size_t n = 0;
    bool ok = true;
    do {
        if (!jstring(&j, k2, sizeof k2) || !jlit(&j, ':')) {
            ok = false;
            break;
        }
        if (strcmp(k2, "customer") == 0) {
            if (!jstring(&j, id, sizeof id) || strcmp(id, key) != 0) {
                ok = false;
                break;
            }
        } else if (strcmp(k2, "entries") == 0) {
            if (!jlit(&j, '[')) {
                ok = false;
                break;
            }
            if (jlit(&j, ']'))
                continue;
            do {
                if (n == rc->tmpcap) {
                    size_t cap = rc->tmpcap ? rc->tmpcap * 2 : 64;
                    rjent *t = seg__realloc_array(&db->alloc, rc->tmp, cap, sizeof *t);
                    if (!t)
                        return seg__error(db, SEG_ENOMEM, "out of memory");
                    rc->tmp = t;
                    rc->tmpcap = cap;
                }
                ldraws *d = NULL;
                bool good = jentry(l, &j, &rc->tmp[n], &d);
                rc->tmp[n].x.draws = d;
                n++;
                if (!good || (n > 1 && rc->tmp[n - 1].x.ts < rc->tmp[n - 2].x.ts)) {
                    ok = false;
                    break;
                }
            } while (jlit(&j, ','));
            if (!ok || !jlit(&j, ']')) {
                ok = false;
                break;
            }
        } else {
            ok = false;
            break;
        }
    } while (jlit(&j, ','));
    if (ok && (!jlit(&j, '}') || (jws(&j), j.p != j.end)))
        ok = false;
    if (!ok) {
        for (size_t k = 0; k < n; k++)
            ldraws_free(&db->alloc, rc->tmp[k].x.draws);
        return bad_record(l, key, "not a ledger written by this library");
    }
    /* the customer's events, to match */
    const seg__cust *sc = &s->custs[ci];
    if (sc->events > rc->evcap) {
        size_t cap = sc->events * 2;
        uint32_t *e = seg__realloc_array(&db->alloc, rc->evs, cap, sizeof *e);
        if (e)
            rc->evs = e;
        uint8_t *u = seg__realloc(&db->alloc, rc->used, cap);
        if (u)
            rc->used = u;
        if (!e || !u) {
            for (size_t k = 0; k < n; k++)
                ldraws_free(&db->alloc, rc->tmp[k].x.draws);
            return seg__error(db, SEG_ENOMEM, "out of memory");
        }
        rc->evcap = cap;
    }
    seg__cust_events(s, sc, rc->evs);
    memset(rc->used, 0, sc->events);
    lentry *v = n ? seg__calloc(&db->alloc, n, sizeof *v) : NULL;
    if (n && (!v || work_room(l, n + 1) != SEG_OK)) {
        seg__free(&db->alloc, v);
        for (size_t k = 0; k < n; k++)
            ldraws_free(&db->alloc, rc->tmp[k].x.draws);
        return seg__error(db, SEG_ENOMEM, "out of memory");
    }
    uint32_t maxseq = 0;
    int err = SEG_OK;
    for (size_t k = 0; k < n; k++) {
        rjent *o = &rc->tmp[k];
        v[k] = o->x;
        if (o->x.seq > maxseq)
            maxseq = o->x.seq;
        if (o->x.kind == SEG__LE_REDEEM)
            continue;
        uint32_t m = match_event(s, ci, o, rc->used, rc->evs, sc->events);
        if (m != SEG__NONE) {
            rc->used[m] = 1;
            uint32_t i = rc->evs[m];
            rc->covered[i] = 1;
            v[k].ev = i;
            v[k].order = o->x.kind == SEG__LE_PURCHASE ? purchase_key(s, i) : refund_key(s, i);
        } else {
            v[k].ev = SEG__NONE;
            if (o->order[0]) {
                uint32_t f = seg__order_find(s, seg__cstr(o->order));
                v[k].order = f;
                size_t on = strlen(o->order);
                if ((v[k].order_id = seg__malloc(&db->alloc, on + 1)) != NULL)
                    memcpy(v[k].order_id, o->order, on + 1);
                else
                    err = SEG_ENOMEM;
            }
        }
    }
    c->e = v;
    c->n = c->cap = (uint32_t)n;
    c->next_seq = maxseq;
    if (n > l->maxn)
        l->maxn = (uint32_t)n;
    return err == SEG_OK ? SEG_OK : seg__error(db, err, "out of memory");
}

/* sort keys of the events to apply: customer, time, index */
typedef struct pend {
    uint32_t ci, i;
    int64_t ts;
} pend;

static int pend_cmp(const void *a, const void *b)
{
    const pend *x = a, *y = b;
    if (x->ci != y->ci)
        return x->ci < y->ci ? -1 : 1;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static void ledger_destroy(seg__ledger *l)
{
    const seg__alloc *a = &l->db->alloc;
    for (uint32_t ci = 0; ci < l->ncust; ci++) {
        for (uint32_t k = 0; k < l->cust[ci].n; k++)
            entry_free(a, &l->cust[ci].e[k]);
        seg__free(a, l->cust[ci].e);
    }
    seg__free(a, l->cust);
    seg__free(a, l->touched);
    seg__free(a, l->work);
    seg__free(a, l->buf);
    seg__free(a, l->gone);
    seg__free(a, l->table);
    seg_db *db = l->db;
    seg__loyalty_unref(l->prog);
    seg__free(a, l);
    seg__db_unref(db);
}

static int build_ledger(seg__ledger *l)
{
    seg_db *db = l->db;
    const seg__store *s = &db->store;
    restore_ctx rc;
    memset(&rc, 0, sizeof rc);
    rc.l = l;
    rc.covered = seg__calloc(&db->alloc, (size_t)s->nevents + 1, 1);
    if (!rc.covered)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    int r = grow_cust(l, s->ncusts ? s->ncusts - 1 : 0);
    if (r == SEG_OK)
        r = seg__st_load_records(db, l->table, restore_one, &rc);
    seg__free(&db->alloc, rc.tmp);
    seg__free(&db->alloc, rc.evs);
    seg__free(&db->alloc, rc.used);
    /* events not in the records, in time order per customer */
    size_t np = 0;
    pend *pv = NULL;
    if (r == SEG_OK) {
        for (uint32_t i = 0; i < s->nevents; i++) {
            uint32_t k = seg__ev_kind(s, i);
            if ((k == SEG_EVENT_PURCHASE || k == SEG_EVENT_REFUND) && !rc.covered[i])
                np++;
        }
        pv = np ? seg__malloc(&db->alloc, np * sizeof *pv) : NULL;
        if (np && !pv)
            r = seg__error(db, SEG_ENOMEM, "out of memory");
    }
    if (r == SEG_OK && np) {
        size_t w = 0;
        for (uint32_t i = 0; i < s->nevents; i++) {
            uint32_t k = seg__ev_kind(s, i);
            if ((k == SEG_EVENT_PURCHASE || k == SEG_EVENT_REFUND) && !rc.covered[i]) {
                pv[w].ci = seg__ev_cust(s, i);
                pv[w].i = i;
                pv[w++].ts = seg__ev_ts(s, i);
            }
        }
        qsort(pv, np, sizeof *pv, pend_cmp);
        /* customers changed: marked touched so they are written */
        size_t ncust = 0;
        for (size_t k = 0; k < np; k++)
            ncust += k == 0 || pv[k].ci != pv[k - 1].ci;
        r = touch_room(l, ncust);
        for (size_t k = 0; k < np && r == SEG_OK; k++)
            r = apply_event(l, pv[k].i);
    }
    seg__free(&db->alloc, pv);
    seg__free(&db->alloc, rc.covered);
    if (r == SEG_OK)
        fix_points(l);
    if (r == SEG_OK && l->ntouched && seg__st_wants_records(db)) {
        r = seg__st_begin(db);
        if (r == SEG_OK) {
            r = write_touched(l);
            if (r == SEG_OK)
                r = seg__st_commit(db);
            if (r != SEG_OK)
                seg__st_rollback(db);
        }
    }
    end_txn(l, true); /* (on failure the ledger is freed anyway) */
    return r;
}

SEG_API int seg_loyalty_attach(seg_loyalty_ledger **out, seg_db *db, seg_loyalty *prog)
{
    if (out)
        *out = NULL;
    if (!db)
        return SEG_EINVAL;
    seg__error_clear(db);
    if (!out || !prog)
        return seg__error(db, SEG_EINVAL, "%s: NULL", !out ? "out" : "prog");
    if (db->iterating)
        return seg__error(db, SEG_EMISUSE, "the database cannot change during a foreach");
    if (db->in_batch)
        return seg__error(db, SEG_EMISUSE, "a batch is open on this handle");
    if (prog->exponent != db->exponent)
        return seg__error(db, SEG_EINVAL,
                          "loyalty program '%s' was compiled for currency exponent %d, the "
                          "database has %d", prog->name, prog->exponent, db->exponent);
    for (unsigned k = 0; k < db->nmodules; k++)
        if (db->modules[k].ops == &ledger_ops &&
            strcmp(((seg__ledger *)db->modules[k].state)->prog->name, prog->name) == 0)
            return seg__error(db, SEG_EINVAL, "a loyalty program '%s' is already attached",
                              prog->name);
    if (db->nmodules == SEG__MODULES_MAX)
        return seg__error(db, SEG_ELIMIT, "too many modules attached to one database (%d)",
                          SEG__MODULES_MAX);
    seg__ledger *l = seg__calloc(&db->alloc, 1, sizeof *l);
    if (!l)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    l->db = db;
    seg__db_ref(db);
    l->prog = prog;
    prog->refs++;
    size_t tn = strlen(prog->name) + 9;
    l->table = seg__malloc(&db->alloc, tn);
    if (!l->table) {
        ledger_destroy(l);
        return seg__error(db, SEG_ENOMEM, "out of memory");
    }
    snprintf(l->table, tn, "loyalty:%s", prog->name);
    int rc = build_ledger(l);
    if (rc == SEG_OK)
        rc = seg__module_attach(db, &ledger_ops, l);
    if (rc != SEG_OK) {
        ledger_destroy(l);
        return rc;
    }
    *out = l;
    return SEG_OK;
}

SEG_API void seg_loyalty_ledger_free(seg_loyalty_ledger *l)
{
    if (!l)
        return;
    seg__module_detach(l->db, l);
    ledger_destroy(l);
}

/* ---- redemption ---- */

static void rec_draw(void *ctx, uint32_t entry, uint32_t lot, int64_t pts)
{
    seg__ledger *l = ctx;
    SEG_UNUSED(entry);
    ldraws *d = l->rec;
    if (l->rec_err)
        return;
    uint32_t *a = seg__realloc_array(&l->db->alloc, d->lot, d->n + 1, sizeof *a);
    if (a)
        d->lot = a;
    int64_t *b = seg__realloc_array(&l->db->alloc, d->pts, d->n + 1, sizeof *b);
    if (b)
        d->pts = b;
    if (!a || !b) {
        l->rec_err = SEG_ENOMEM;
        return;
    }
    d->lot[d->n] = l->rec_src[lot].seq;
    d->pts[d->n++] = pts;
}

static int find_cust(seg__ledger *l, const char *customer_id, uint32_t *ci_out)
{
    seg_db *db = l->db;
    if (!customer_id)
        return seg__error(db, SEG_EINVAL, "customer_id: NULL");
    uint32_t ci = seg__cust_find(&db->store, seg__cstr(customer_id));
    if (ci == SEG__NONE || !db->store.custs[ci].id)
        return seg__error(db, SEG_ENOTFOUND, "no customer '%s'", customer_id);
    int rc = grow_cust(l, ci);
    if (rc != SEG_OK)
        return rc;
    *ci_out = ci;
    return SEG_OK;
}

SEG_API int seg_loyalty_redeem(seg_loyalty_ledger *l, const char *customer_id, int64_t points,
                               int64_t now)
{
    if (!l)
        return SEG_EINVAL;
    seg_db *db = l->db;
    seg__error_clear(db);
    int rc = seg__db_writable(db);
    if (rc != SEG_OK)
        return rc;
    if (points <= 0 || points > SEG_LOYALTY_POINTS_MAX)
        return seg__error(db, SEG_EINVAL, "points %lld: must be 1..%lld", (long long)points,
                          (long long)SEG_LOYALTY_POINTS_MAX);
    if (now < SEG_TIME_MIN || now > SEG_TIME_MAX)
        return seg__error(db, SEG_ERANGE, "now: out of range");
    uint32_t ci;
    if ((rc = find_cust(l, customer_id, &ci)) != SEG_OK)
        return rc;
    lcust *c = &l->cust[ci];
    if ((rc = work_room(l, (size_t)c->n + 1)) != SEG_OK || (rc = touch_room(l, 1)) != SEG_OK)
        return rc;
    seg__lres r;
    replay(l, c, now, &r);
    if (r.balance < points) {
        char t[32];
        seg_time_format(t, sizeof t, now);
        return seg__error(db, SEG_EINVAL,
                          "customer '%s' has %lld points at %s in program '%s': cannot redeem "
                          "%lld", customer_id, (long long)r.balance, t, l->prog->name,
                          (long long)points);
    }
    ldraws *d = seg__calloc(&db->alloc, 1, sizeof *d);
    if (!d)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    rc = seg__st_begin(db);
    if (rc != SEG_OK) {
        ldraws_free(&db->alloc, d);
        return rc;
    }
    touch(l, ci);
    lentry x;
    memset(&x, 0, sizeof x);
    x.kind = SEG__LE_REDEEM;
    x.ts = now;
    x.points = points;
    x.ev = SEG__NONE;
    x.order = SEG__L_NO_ORDER;
    x.seq = ++c->next_seq;
    x.draws = d;
    long at = insert(l, ci, &x);
    if (at < 0) {
        c->next_seq--;
        ldraws_free(&db->alloc, d);
        rc = db->errcode;
    } else {
        /* the lots it draws from, as the replay draws them */
        l->rec = d;
        l->rec_src = c->e;
        l->rec_err = SEG_OK;
        to_work(l, c);
        seg__lres r2;
        seg__loyalty_replay(l->prog, l->work, c->n, now + 1 > SEG_TIME_MAX ? now : now + 1, &r2,
                            rec_draw, l, (uint32_t)at);
        l->rec = NULL;
        rc = l->rec_err ? seg__error(db, l->rec_err, "out of memory") : SEG_OK;
        if (rc == SEG_OK && seg__st_wants_records(db))
            rc = write_customer(l, ci);
        if (rc == SEG_OK)
            rc = seg__st_commit(db);
    }
    if (rc != SEG_OK)
        seg__st_rollback(db);
    seg__modules_txn_end(db, rc == SEG_OK);
    return rc;
}

/* ---- status, walks, entries ---- */

#define STATUS_V1_SIZE sizeof(seg_loyalty_status)

SEG_API int seg_loyalty_status_get(seg_loyalty_status *out, seg_loyalty_ledger *l,
                                   const char *customer_id, int64_t as_of)
{
    if (!l)
        return SEG_EINVAL;
    seg_db *db = l->db;
    seg__error_clear(db);
    if (!out)
        return seg__error(db, SEG_EINVAL, "out: NULL");
    if (out->struct_size < STATUS_V1_SIZE)
        return seg__error(db, SEG_EVERSION, "seg_loyalty_status: struct_size %zu too small",
                          out->struct_size);
    size_t sz = out->struct_size;
    memset(out, 0, sz);
    out->struct_size = sz;
    uint32_t ci;
    int rc = find_cust(l, customer_id, &ci);
    if (rc != SEG_OK)
        return rc;
    if ((rc = work_room(l, (size_t)l->cust[ci].n + 1)) != SEG_OK)
        return rc;
    seg__lres r;
    replay(l, &l->cust[ci], as_of, &r);
    seg__loyalty_fill(l->prog, &r, out);
    return SEG_OK;
}

SEG_API int seg_loyalty_foreach(seg_loyalty_ledger *l, int64_t as_of, uint32_t flags,
                                seg_loyalty_cb cb, void *payload)
{
    if (!l)
        return SEG_EINVAL;
    seg_db *db = l->db;
    seg__error_clear(db);
    if (!cb)
        return seg__error(db, SEG_EINVAL, "cb: NULL");
    if (flags & ~SEG_LOYALTY_SORTED)
        return seg__error(db, SEG_EINVAL, "unknown flags 0x%x", (unsigned)flags);
    if (work_room(l, (size_t)l->maxn + 1) != SEG_OK)
        return SEG_ENOMEM;
    const seg__store *s = &db->store;
    uint32_t n = s->ncusts < l->ncust ? s->ncusts : l->ncust;
    uint32_t *order = NULL, *tmp = NULL, m = 0;
    if (flags & SEG_LOYALTY_SORTED) {
        order = seg__malloc(&db->alloc, ((size_t)n + 1) * sizeof *order);
        tmp = seg__malloc(&db->alloc, ((size_t)n + 1) * sizeof *tmp);
        if (!order || !tmp) {
            seg__free(&db->alloc, order);
            seg__free(&db->alloc, tmp);
            return seg__error(db, SEG_ENOMEM, "out of memory");
        }
        for (uint32_t ci = 0; ci < n; ci++)
            if (l->cust[ci].n && s->custs[ci].id)
                order[m++] = ci;
        seg__cust_sort_by_id(s, order, tmp, m);
        seg__free(&db->alloc, tmp);
    } else {
        m = n;
    }
    char id[SEG_ID_MAX + 1];
    bool was = db->iterating;
    db->iterating = true;
    for (uint32_t k = 0; k < m; k++) {
        uint32_t ci = order ? order[k] : k;
        const lcust *c = &l->cust[ci];
        if (!c->n || !s->custs[ci].id || c->e[0].ts >= as_of)
            continue;
        seg__lres r;
        replay(l, c, as_of, &r);
        seg_loyalty_status st = SEG_LOYALTY_STATUS_INIT;
        seg__loyalty_fill(l->prog, &r, &st);
        seg__str cid = seg__cust_id(s, ci);
        memcpy(id, cid.p, cid.n);
        id[cid.n] = '\0';
        st.customer_id = id;
        if (cb(&st, payload))
            break;
    }
    db->iterating = was;
    seg__free(&db->alloc, order);
    return SEG_OK;
}

SEG_API int seg_loyalty_entries(seg_loyalty_ledger *l, const char *customer_id,
                                seg_loyalty_entry_cb cb, void *payload)
{
    if (!l)
        return SEG_EINVAL;
    seg_db *db = l->db;
    seg__error_clear(db);
    if (!cb)
        return seg__error(db, SEG_EINVAL, "cb: NULL");
    uint32_t ci;
    int rc = find_cust(l, customer_id, &ci);
    if (rc != SEG_OK)
        return rc;
    const lcust *c = &l->cust[ci];
    char order[SEG_ID_MAX + 1];
    for (uint32_t k = 0; k < c->n; k++) {
        const lentry *x = &c->e[k];
        seg_loyalty_entry e;
        memset(&e, 0, sizeof e);
        e.struct_size = sizeof e;
        e.kind = x->kind == SEG__LE_PURCHASE ? SEG_LOYALTY_PURCHASE
                 : x->kind == SEG__LE_REFUND ? SEG_LOYALTY_REFUND : SEG_LOYALTY_REDEMPTION;
        e.seq = x->seq;
        e.ts = x->ts;
        e.amount = x->amount;
        e.points = x->kind == SEG__LE_REFUND ? 0 : x->points;
        e.expires = x->kind == SEG__LE_PURCHASE ? seg__loyalty_expiry(l->prog, x->ts) : 0;
        seg__str o = x->kind == SEG__LE_REDEEM ? SEG__STR_NULL : order_text(l, x);
        if (o.n) {
            memcpy(order, o.p, o.n);
            order[o.n] = '\0';
            e.order_id = order;
        }
        if (x->draws) {
            e.ndraws = x->draws->n;
            e.draw_lots = x->draws->lot;
            e.draw_points = x->draws->pts;
        }
        if (cb(&e, payload))
            break;
    }
    return SEG_OK;
}

/* ---- the values `tier` and `points` of segment definitions ---- */

int seg__loyalty_for_values(seg_db *db, seg__ledger **out)
{
    seg__ledger *found = NULL;
    for (unsigned k = 0; k < db->nmodules; k++)
        if (db->modules[k].ops == &ledger_ops) {
            if (found)
                return seg__error(db, SEG_EINVAL,
                                  "several loyalty programs are attached to the database ('%s', "
                                  "'%s'): tier and points need exactly one",
                                  found->prog->name,
                                  ((seg__ledger *)db->modules[k].state)->prog->name);
            found = db->modules[k].state;
        }
    if (!found)
        return seg__error(db, SEG_EINVAL,
                          "no loyalty program is attached to the database (seg_loyalty_attach)");
    if (work_room(found, (size_t)found->maxn + 1) != SEG_OK)
        return SEG_ENOMEM;
    *out = found;
    return SEG_OK;
}

const seg__lres *seg__loyalty_value(seg__ledger *l, uint32_t ci, int64_t now)
{
    if (l->vvalid && l->vci == ci && l->vnow == now && l->vgen == l->gen)
        return &l->vres;
    l->vvalid = true;
    l->vci = ci;
    l->vnow = now;
    l->vgen = l->gen;
    if (ci >= l->ncust || !l->cust[ci].n) {
        memset(&l->vres, 0, sizeof l->vres);
        l->vres.downgrade_at = -1;
        return &l->vres;
    }
    replay(l, &l->cust[ci], now, &l->vres);
    return &l->vres;
}

const char *seg__loyalty_tier_str(const seg__ledger *l, int tier)
{
    return l->prog->tiers[tier].name;
}
