/*
 * Ingestion: validation, idempotency, batches with undo, aggregates.
 *
 * A batch applies events to memory as they come and keeps what it needs to
 * undo them: the counts of every append-only structure at its start, and a
 * copy of each pre-existing customer record before its first change.  At
 * commit the new events go to the storage backend in one transaction; if
 * that fails, or the caller rolls back, memory is restored exactly.
 */
#include "storage/storage-private.h"

#include <stdio.h>

typedef struct saved_cust {
    uint32_t ci;
    seg__cust rec;
} saved_cust;

typedef struct seen_row {
    uint64_t h1, h2;
    uint32_t count;
} seen_row;

struct seg__batch {
    seg_db *db;
    uint32_t flags;
    uint32_t ev0, cust0, nchunks0;
    uint64_t live_custs0;
    uint32_t dict0[4];
    seg__arena_mark arena0;
    saved_cust *saved;
    size_t nsaved, capsaved;
    uint8_t *saved_bits;       /* one bit per customer < cust0 */
    uint8_t *matched;          /* one bit per event < ev0 matched by a row (CSV) */
    seen_row *seen;            /* occurrence counting (CSV) */
    uint32_t nseen, capseen;
    seg__htab seen_tab;
    uint64_t accepted, duplicates, rejected;
};

const char *seg__field_name(int field)
{
    static const char *const names[] = {
        "event", "event_id", "customer_id", "ts", "amount", "quantity", "order_id",
        "channel", "category", "sku", "refund_of", "name", "type",
    };
    return field >= 0 && field < (int)(sizeof names / sizeof *names) ? names[field] : "event";
}

/* ------------------------------------------------------------ helpers */

static int fail(seg_db *db, int *field_out, int field, int code, const char *fmt, ...)
    SEG_PRINTF(5, 6);
static int fail(seg_db *db, int *field_out, int field, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    seg__verror(db, code, fmt, ap);
    va_end(ap);
    if (field_out)
        *field_out = field;
    return code;
}

static int check_opt_id(seg_db *db, int *field_out, int field, seg__str s)
{
    if (!s.n)
        return SEG_OK;
    int rc = seg__check_id(db, seg__field_name(field), s);
    if (rc != SEG_OK && field_out)
        *field_out = field;
    return rc;
}

static void fmt_money(char *buf, size_t n, int64_t v, int exp)
{
    if (!seg_money_format(buf, n, v, exp))
        snprintf(buf, n, "%lld", (long long)v);
}

/* Validate one event in isolation (no store access). */
static int validate(seg_db *db, const seg__ev *ev, int *field_out)
{
    int rc;
    if (ev->kind < SEG_EVENT_PURCHASE || ev->kind > SEG_EVENT_ENGAGEMENT)
        return fail(db, field_out, SEG__F_KIND, SEG_EINVAL, "unknown event kind %u",
                    (unsigned)ev->kind);
    if (!ev->customer_id.n)
        return fail(db, field_out, SEG__F_CUSTOMER_ID, SEG_EINVAL, "customer_id: missing");
    if (ev->customer_id.n > SEG_ID_MAX)
        return check_opt_id(db, field_out, SEG__F_CUSTOMER_ID, ev->customer_id);
    if ((rc = check_opt_id(db, field_out, SEG__F_EVENT_ID, ev->event_id)) != SEG_OK)
        return rc;
    if (ev->event_id.n && ev->event_id.p[0] == '~')
        return fail(db, field_out, SEG__F_EVENT_ID, SEG_EINVAL,
                    "event_id: ids starting with '~' are reserved for derived ids");
    if (ev->ts < SEG_TIME_MIN || ev->ts > SEG_TIME_MAX)
        return fail(db, field_out, SEG__F_TS, SEG_ERANGE,
                    "ts: %lld is outside years 0001..9999", (long long)ev->ts);
    if (ev->amount > SEG_AMOUNT_MAX || ev->amount < -SEG_AMOUNT_MAX)
        return fail(db, field_out, SEG__F_AMOUNT, SEG_ERANGE,
                    "amount: %lld minor units is beyond the limit of %lld", (long long)ev->amount,
                    (long long)SEG_AMOUNT_MAX);
    if (ev->quantity != SEG_QUANTITY_DEFAULT &&
        (ev->quantity < 0 || ev->quantity > SEG_QUANTITY_MAX))
        return fail(db, field_out, SEG__F_QUANTITY, ev->quantity < 0 ? SEG_EINVAL : SEG_ERANGE,
                    "quantity: %ld is not in 0..%d", (long)ev->quantity, SEG_QUANTITY_MAX);
    /* customer_id, order_id and the dictionary values are checked in full
     * by the caller only when they are new (a stored one was checked
     * already); their lengths are checked here, before anything hashes or
     * serializes them */
    {
        const seg__str *v[5] = { &ev->order_id, &ev->channel, &ev->category, &ev->sku,
                                 &ev->name };
        static const int f[5] = { SEG__F_ORDER_ID, SEG__F_CHANNEL, SEG__F_CATEGORY, SEG__F_SKU,
                                  SEG__F_NAME };
        for (int k = 0; k < 5; k++)
            if (v[k]->n > SEG_ID_MAX && (rc = check_opt_id(db, field_out, f[k], *v[k])) != SEG_OK)
                return rc;
    }
    if ((rc = check_opt_id(db, field_out, SEG__F_REFUND_OF, ev->refund_of)) != SEG_OK)
        return rc;
    switch (ev->kind) {
    case SEG_EVENT_PURCHASE:
        if (ev->amount < 0)
            return fail(db, field_out, SEG__F_AMOUNT, SEG_EINVAL,
                        "amount: a purchase amount cannot be negative (a refund is a "
                        "separate event)");
        break;
    case SEG_EVENT_REFUND:
        if (ev->amount >= 0)
            return fail(db, field_out, SEG__F_AMOUNT, SEG_EINVAL,
                        "amount: a refund amount must be negative");
        break;
    default: /* engagement */
        if (!ev->name.n)
            return fail(db, field_out, SEG__F_NAME, SEG_EINVAL,
                        "name: an engagement event needs a name");
        if (ev->amount)
            return fail(db, field_out, SEG__F_AMOUNT, SEG_EINVAL,
                        "amount: an engagement event has no amount");
        if (ev->order_id.n || ev->sku.n)
            return fail(db, field_out, ev->order_id.n ? SEG__F_ORDER_ID : SEG__F_SKU,
                        SEG_EINVAL, "%s: an engagement event has no order or product",
                        ev->order_id.n ? "order_id" : "sku");
        break;
    }
    if (ev->kind != SEG_EVENT_REFUND && ev->refund_of.n)
        return fail(db, field_out, SEG__F_REFUND_OF, SEG_EINVAL,
                    "refund_of: only a refund refers to a refunded order");
    if (ev->kind != SEG_EVENT_ENGAGEMENT && ev->name.n)
        return fail(db, field_out, SEG__F_NAME, SEG_EINVAL,
                    "name: only engagement events have a name");
    return SEG_OK;
}

/* Is stored event j the same content as ev (customer ci, occurrence occ)? */
static bool same_content(const seg__store *s, uint32_t j, const seg__ev *ev, uint32_t ci,
                         uint32_t occ, bool cmp_occ)
{
    if (ci == SEG__NONE || seg__ev_cust(s, j) != ci || seg__ev_kind(s, j) != ev->kind ||
        seg__ev_ts(s, j) != ev->ts || seg__ev_amount(s, j) != ev->amount ||
        seg__ev_qty(s, j) != ev->quantity || (cmp_occ && seg__ev_occ(s, j) != occ))
        return false;
    seg__ev o;
    seg__ev_load(s, j, &o, NULL);
#define SAME(f) (o.f.n == ev->f.n && (!o.f.n || memcmp(o.f.p, ev->f.p, o.f.n) == 0))
    return SAME(order_id) && SAME(channel) && SAME(category) && SAME(sku) && SAME(refund_of) &&
           SAME(name);
#undef SAME
}

typedef struct id_key {
    const seg__store *s;
    const seg__ev *ev;
    uint32_t ci, occ;
    seg__did did;
} id_key;

static bool explicit_id_eq(const void *ctx, uint32_t j)
{
    const id_key *k = ctx;
    uint32_t eid = seg__ev_eid(k->s, j);
    return eid && seg__arena_eq(&k->s->arena, eid, k->ev->event_id);
}

static bool derived_id_eq(const void *ctx, uint32_t j)
{
    const id_key *k = ctx;
    return !seg__ev_eid(k->s, j) && same_content(k->s, j, k->ev, k->ci, k->occ, true);
}

static bool did_eq(const void *ctx, uint32_t j)
{
    const id_key *k = ctx;
    if (seg__ev_eid(k->s, j))
        return false;
    seg__did d = seg__derive_stored(k->s, j);
    return d.h1 == k->did.h1 && d.h2 == k->did.h2;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static bool parse_did(seg__str s, seg__did *out)
{
    if (s.n != 33 || s.p[0] != '~')
        return false;
    uint64_t h[2] = { 0, 0 };
    for (int k = 0; k < 32; k++) {
        int v = hexval(s.p[1 + k]);
        if (v < 0)
            return false;
        h[k / 16] = h[k / 16] << 4 | (uint64_t)v;
    }
    out->h1 = h[0];
    out->h2 = h[1];
    return true;
}

/* Find a stored event by its id text (explicit or derived). */
static uint32_t find_event_by_id(const seg__store *s, seg__str id)
{
    id_key k = { s, NULL, SEG__NONE, 0, { 0, 0 } };
    if (parse_did(id, &k.did))
        return seg__htab_find(&s->id_tab, seg__tag(k.did.h1), did_eq, &k);
    seg__ev tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.event_id = id;
    k.ev = &tmp;
    return seg__htab_find(&s->id_tab, seg__tag(seg__hash(id.p, id.n, SEG__SEED_EID)),
                          explicit_id_eq, &k);
}

/* ------------------------------------------------------------- batches */

static seg__dict *batch_dicts(seg__store *s, int k)
{
    seg__dict *d[4] = { &s->chan, &s->cat, &s->sku, &s->names };
    return d[k];
}

int seg__batch_begin(seg__batch **out, seg_db *db, uint32_t flags, size_t size_hint)
{
    *out = NULL;
    if (db->in_batch)
        return seg__error(db, SEG_EMISUSE, "a batch is already open on this handle");
    if (db->iterating)
        return seg__error(db, SEG_EMISUSE, "the database cannot change during a foreach");
    if ((db->flags & SEG_DB_READONLY) && !db->loading)
        return seg__error(db, SEG_EREADONLY, "the database was opened read-only");
    seg__batch *b = seg__calloc(&db->alloc, 1, sizeof *b);
    if (!b)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    seg__store *s = &db->store;
    b->db = db;
    b->flags = flags;
    b->ev0 = s->nevents;
    b->cust0 = s->ncusts;
    b->live_custs0 = s->live_custs;
    b->nchunks0 = s->nchunks;
    for (int k = 0; k < 4; k++)
        b->dict0[k] = batch_dicts(s, k)->count;
    b->arena0 = seg__arena_mark_get(&s->arena);
    /* size the tables for the batch up front: fewer rehashes, less memory */
    if (size_hint > 1 && size_hint < (size_t)UINT32_MAX) {
        /* only a hint: on failure growth on demand still works */
        (void)seg__htab_reserve(&db->alloc, &s->id_tab, size_hint);
        (void)seg__htab_reserve(&db->alloc, &s->order_tab, size_hint - size_hint / 8);
    }
    db->in_batch = true;
    *out = b;
    return SEG_OK;
}

static int save_cust(seg__batch *b, uint32_t ci)
{
    if (ci >= b->cust0 || (b->flags & SEG__BATCH_LOAD))
        return SEG_OK; /* created by this batch: undone by truncation */
    seg_db *db = b->db;
    if (!b->saved_bits) {
        b->saved_bits = seg__calloc(&db->alloc, (b->cust0 + 7) / 8, 1);
        if (!b->saved_bits)
            return SEG_ENOMEM;
    }
    if (b->saved_bits[ci / 8] & (1u << (ci % 8)))
        return SEG_OK;
    if (b->nsaved == b->capsaved) {
        size_t cap = b->capsaved ? b->capsaved * 2 : 64;
        saved_cust *p = seg__realloc_array(&db->alloc, b->saved, cap, sizeof *p);
        if (!p)
            return SEG_ENOMEM;
        b->saved = p;
        b->capsaved = cap;
    }
    b->saved[b->nsaved].ci = ci;
    b->saved[b->nsaved].rec = db->store.custs[ci];
    b->nsaved++;
    b->saved_bits[ci / 8] |= (uint8_t)(1u << (ci % 8));
    return SEG_OK;
}

/* Make room for event number s->nevents with the widths it needs. */
static int prepare_slot(const seg__alloc *a, seg__store *s, const seg__ev *ev, uint32_t occ,
                        bool explicit_id, bool refund_of)
{
    uint32_t i = s->nevents;
    if (i == UINT32_MAX - 1)
        return SEG_ELIMIT;
    uint32_t ck = i >> SEG__CHUNK_BITS, off = SEG__OFF(i);
    if (ck == s->nchunks) {
        if (s->nchunks == s->capchunks) {
            uint32_t cap = s->capchunks ? s->capchunks * 2 : 16;
            seg__evchunk *c = seg__realloc_array(a, s->chunks, cap, sizeof *c);
            if (!c)
                return SEG_ENOMEM;
            s->chunks = c;
            s->capchunks = cap;
        }
        seg__evchunk c;
        memset(&c, 0, sizeof c);
        /* the seven columns every event has, in one block (one allocation
         * instead of seven: less bookkeeping and page rounding) */
        uint8_t *blk = seg__malloc(a, SEG__CHUNK * SEG__CHUNK_COLS_BYTES);
        if (!blk)
            return SEG_ENOMEM;
        c.block = blk;
        c.ts32 = (int32_t *)(void *)blk;
        c.amt32 = (int32_t *)(void *)(blk + 4 * SEG__CHUNK);
        c.cust = (uint32_t *)(void *)(blk + 8 * SEG__CHUNK);
        c.ref = (uint32_t *)(void *)(blk + 12 * SEG__CHUNK);
        c.next = (uint32_t *)(void *)(blk + 16 * SEG__CHUNK);
        c.kindchan = (uint16_t *)(void *)(blk + 20 * SEG__CHUNK);
        c.cat = (uint16_t *)(void *)(blk + 22 * SEG__CHUNK);
        c.ts_base = ev->ts;
        s->chunks[s->nchunks++] = c; /* published only when complete */
    }
    seg__evchunk *c = &s->chunks[ck];
    if (c->ts32) {
        int64_t d = ev->ts - c->ts_base;
        if (d < INT32_MIN || d > INT32_MAX) {
            int64_t *w = seg__malloc(a, SEG__CHUNK * sizeof *w);
            if (!w)
                return SEG_ENOMEM;
            for (uint32_t k = 0; k < off; k++)
                w[k] = c->ts_base + c->ts32[k];
            c->ts32 = NULL; /* (its memory stays in the chunk's block) */
            c->ts64 = w;
        }
    }
    if (c->amt32 && (ev->amount < INT32_MIN || ev->amount > INT32_MAX)) {
        int64_t *w = seg__malloc(a, SEG__CHUNK * sizeof *w);
        if (!w)
            return SEG_ENOMEM;
        for (uint32_t k = 0; k < off; k++)
            w[k] = c->amt32[k];
        c->amt32 = NULL;
        c->amt64 = w;
    }
    int32_t qdef = ev->kind == SEG_EVENT_PURCHASE ? 1 : 0;
    if (!c->qty && ev->quantity != qdef) {
        c->qty = seg__malloc(a, SEG__CHUNK * sizeof *c->qty);
        if (!c->qty)
            return SEG_ENOMEM;
        for (uint32_t k = 0; k < off; k++)
            c->qty[k] = (c->kindchan[k] >> 14) == SEG_EVENT_PURCHASE ? 1 : 0;
    }
#define LAZY(col, need)                                                  \
    if (!c->col && (need)) {                                             \
        c->col = seg__calloc(a, SEG__CHUNK, sizeof *c->col);             \
        if (!c->col)                                                     \
            return SEG_ENOMEM;                                           \
    }
    LAZY(sku, ev->sku.n)
    LAZY(refund_of, refund_of)
    LAZY(eid, explicit_id)
#undef LAZY
    if (occ && s->nocc == s->capocc) {
        uint32_t cap = s->capocc ? s->capocc * 2 : 16;
        uint32_t *e = seg__realloc_array(a, s->occ_ev, cap, sizeof *e);
        if (!e)
            return SEG_ENOMEM;
        s->occ_ev = e;
        uint32_t *v = seg__realloc_array(a, s->occ_val, cap, sizeof *v);
        if (!v)
            return SEG_ENOMEM;
        s->occ_val = v;
        s->capocc = cap;
    }
    return SEG_OK;
}

typedef struct seen_key {
    const seg__batch *b;
    seg__did d;
} seen_key;

static bool seen_eq(const void *ctx, uint32_t i)
{
    const seen_key *k = ctx;
    return k->b->seen[i].h1 == k->d.h1 && k->b->seen[i].h2 == k->d.h2;
}

/* Occurrence bookkeeping for rows without an id (see the CSV contract):
 * the k-th row of a batch with a given content (k = 0, 1, ...) has the
 * derived id of (content, k).
 *
 * Most contents appear once in a batch, so the common cases need no map:
 * (content, 0) is either not stored (a new event, occurrence 0), or stored
 * before this batch and not yet matched by an earlier row of it (a
 * duplicate, occurrence 0; the stored event is then marked in a bitmap of
 * the events older than the batch).  Only when (content, 0) was stored by
 * this batch or already matched is the content repeated within the batch;
 * then a map keyed by the full 128-bit derived id counts its rows. */
enum { OCC_UNKNOWN, OCC_FRESH, OCC_DUPLICATE };
static int occurrence_of(seg__batch *b, const seg__ev *ev, uint32_t ci, uint64_t h1,
                         uint32_t *occ_out, int *state)
{
    seg__store *s = &b->db->store;
    const seg__alloc *a = &b->db->alloc;
    *state = OCC_UNKNOWN;
    *occ_out = 0;
    id_key ik = { s, ev, ci, 0, { h1, 0 } };
    uint32_t e = ci == SEG__NONE
                     ? SEG__NONE
                     : seg__htab_find(&s->id_tab, seg__tag(h1), derived_id_eq, &ik);
    if (e == SEG__NONE) {
        *state = OCC_FRESH; /* first time anywhere */
        return SEG_OK;
    }
    if (e < b->ev0) {
        if (!b->matched) {
            b->matched = seg__calloc(a, ((size_t)b->ev0 + 7) / 8, 1);
            if (!b->matched)
                return SEG_ENOMEM;
        }
        uint8_t bit = (uint8_t)(1u << (e % 8));
        if (!(b->matched[e / 8] & bit)) {
            b->matched[e / 8] |= bit; /* the first such row: a duplicate */
            *state = OCC_DUPLICATE;
            return SEG_OK;
        }
    }
    /* a repeated row: count it */
    seg__did d0 = seg__derive_id(ev, 0);
    seen_key sk = { b, d0 };
    uint32_t si = seg__htab_find(&b->seen_tab, seg__tag(d0.h1), seen_eq, &sk);
    if (si == SEG__NONE) {
        if (b->nseen == b->capseen) {
            uint32_t cap = b->capseen ? b->capseen * 2 : 256;
            seen_row *p = seg__realloc_array(a, b->seen, cap, sizeof *p);
            if (!p)
                return SEG_ENOMEM;
            b->seen = p;
            b->capseen = cap;
        }
        int rc = seg__htab_reserve(a, &b->seen_tab, 1);
        if (rc != SEG_OK)
            return rc;
        si = b->nseen++;
        b->seen[si].h1 = d0.h1;
        b->seen[si].h2 = d0.h2;
        b->seen[si].count = 1; /* the row that took occurrence 0 */
        seg__htab_insert(&b->seen_tab, seg__tag(d0.h1), si);
    }
    *occ_out = b->seen[si].count++;
    return SEG_OK;
}

/* Hashes of an event, computed ahead of its turn so its lookups can be
 * touched early (see TGROUP). */
typedef struct pre {
    seg__ev ev;      /* the event, normalized */
    uint64_t cust_h, order_h;
    uint64_t eid_h;  /* explicit id */
    uint64_t d0;     /* derived id with occurrence 0, first half (the table hash) */
    bool have_d0;
} pre;

/* Defaults made explicit, so equal events compare and hash equal. */
static void normalize(seg__ev *ev)
{
    if (ev->quantity == SEG_QUANTITY_DEFAULT)
        ev->quantity = ev->kind == SEG_EVENT_PURCHASE ? 1 : 0;
    /* a purchase without an order is an order of its own, named by its id:
     * with an explicit id that order can be joined and refunded by name */
    if (ev->kind == SEG_EVENT_PURCHASE && !ev->order_id.n && ev->event_id.n)
        ev->order_id = ev->event_id;
}

static void precompute(const seg__ev *in, pre *p)
{
    p->ev = *in;
    normalize(&p->ev);
    const seg__ev *ev = &p->ev;
    p->cust_h = seg__hash(ev->customer_id.p, ev->customer_id.n, SEG__SEED_CUST);
    p->order_h = ev->order_id.n ? seg__hash(ev->order_id.p, ev->order_id.n, SEG__SEED_ORDER) : 0;
    p->eid_h = ev->event_id.n ? seg__hash(ev->event_id.p, ev->event_id.n, SEG__SEED_EID) : 0;
    p->have_d0 = false;
    p->d0 = 0;
    if (!ev->event_id.n && ev->customer_id.n <= SEG_ID_MAX && ev->order_id.n <= SEG_ID_MAX &&
        ev->channel.n <= SEG_ID_MAX && ev->category.n <= SEG_ID_MAX &&
        ev->sku.n <= SEG_ID_MAX && ev->refund_of.n <= SEG_ID_MAX && ev->name.n <= SEG_ID_MAX) {
        p->d0 = seg__derive_h1(ev, 0);
        p->have_d0 = true;
    }
}

static int batch_add(seg__batch *b, const seg__ev *in, int occ_given, const pre *pc,
                     bool *dup_out, int *field_out)
{
    seg_db *db = b->db;
    seg__store *s = &db->store;
    const seg__alloc *a = &db->alloc;
    int rc, err = SEG_OK, field = SEG__F_NONE;
    *dup_out = false;
    if (field_out)
        *field_out = SEG__F_NONE;

    pre local;
    if (!pc) {
        precompute(in, &local);
        pc = &local;
    }
    /* (validation of the normalized event is validation of the event:
     * normalizing only fills defaults with valid values) */
    const seg__ev *ev = &pc->ev;
    if ((rc = validate(db, ev, field_out)) != SEG_OK)
        return rc;
    uint32_t ci = seg__cust_find_h(s, ev->customer_id, pc->cust_h);
    if (ci == SEG__NONE &&
        (rc = check_opt_id(db, field_out, SEG__F_CUSTOMER_ID, ev->customer_id)) != SEG_OK)
        return rc;
    /* dictionary values: looked up once; a value new to its dictionary is
     * checked (a known one is valid) and interned when the event is written */
    uint32_t dix[4] = { SEG__NONE, SEG__NONE, SEG__NONE, SEG__NONE };
    {
        const seg__dict *dicts[4] = { &s->chan, &s->cat, &s->sku, &s->names };
        const seg__str *vals[4] = { &ev->channel, &ev->category, &ev->sku, &ev->name };
        static const int fields[4] = { SEG__F_CHANNEL, SEG__F_CATEGORY, SEG__F_SKU,
                                       SEG__F_NAME };
        for (int k = 0; k < 4; k++) {
            if (!vals[k]->n)
                continue;
            if (vals[k]->n <= SEG_ID_MAX)
                dix[k] = seg__dict_find(&s->arena, dicts[k], *vals[k]);
            if (dix[k] == SEG__NONE &&
                (rc = check_opt_id(db, field_out, fields[k], *vals[k])) != SEG_OK)
                return rc;
        }
    }
    bool explicit_id = ev->event_id.n > 0;

    /* identity */
    uint32_t occ = 0;
    bool fresh = false; /* known not to be stored (no duplicate check needed) */
    uint64_t idh;
    if (explicit_id) {
        idh = pc->eid_h;
        id_key k = { s, ev, ci, 0, { 0, 0 } };
        uint32_t j = seg__htab_find(&s->id_tab, seg__tag(idh), explicit_id_eq, &k);
        if (j != SEG__NONE) {
            if (same_content(s, j, ev, ci, 0, false)) {
                *dup_out = true;
                b->duplicates++;
                return SEG_OK;
            }
            return fail(db, field_out, SEG__F_EVENT_ID, SEG_ECONFLICT,
                        "event_id '%.*s': already stored with different content",
                        (int)ev->event_id.n, ev->event_id.p);
        }
    } else {
        if (occ_given >= 0) {
            occ = (uint32_t)occ_given;
        } else if (b->flags & SEG__BATCH_COUNT_OCCURRENCES) {
            int state;
            if ((rc = occurrence_of(b, ev, ci, pc->have_d0 ? pc->d0 : seg__derive_h1(ev, 0),
                                    &occ, &state)) != SEG_OK)
                return fail(db, field_out, SEG__F_NONE, rc, "%s", seg_errstr(rc));
            if (state == OCC_DUPLICATE) {
                *dup_out = true;
                b->duplicates++;
                return SEG_OK;
            }
            fresh = state == OCC_FRESH;
        }
        idh = occ == 0 && pc->have_d0 ? pc->d0 : seg__derive_h1(ev, occ);
        id_key k = { s, ev, ci, occ, { idh, 0 } };
        if (ci != SEG__NONE && !fresh &&
            seg__htab_find(&s->id_tab, seg__tag(idh), derived_id_eq, &k) != SEG__NONE) {
            *dup_out = true;
            b->duplicates++;
            return SEG_OK;
        }
    }

    /* the order this line belongs to */
    uint32_t first_of_order = SEG__NONE;
    uint64_t order_h = 0;
    if (ev->order_id.n) {
        order_h = pc->order_h;
        first_of_order = seg__order_find_h(s, ev->order_id, order_h);
        if (first_of_order == SEG__NONE &&
            (rc = check_opt_id(db, field_out, SEG__F_ORDER_ID, ev->order_id)) != SEG_OK)
            return rc;
        if (first_of_order != SEG__NONE && seg__ev_cust(s, first_of_order) != ci)
            return fail(db, field_out, SEG__F_ORDER_ID, SEG_EINVAL,
                        "order_id '%.*s': the order belongs to another customer",
                        (int)ev->order_id.n, ev->order_id.p);
    }

    /* a refund of a known order, within what is left of it */
    if (ev->refund_of.n) {
        uint32_t r = seg__order_find(s, ev->refund_of);
        uint32_t order_ref = SEG__NONE;
        if (r != SEG__NONE) {
            order_ref = seg__ev_ref(s, r);
        } else {
            r = find_event_by_id(s, ev->refund_of);
            if (r != SEG__NONE && (seg__ev_kind(s, r) != SEG_EVENT_PURCHASE || seg__ev_ref(s, r)))
                r = SEG__NONE; /* only an order-less purchase is an order named by its id */
        }
        if (r == SEG__NONE)
            return fail(db, field_out, SEG__F_REFUND_OF, SEG_ENOTFOUND,
                        "refund_of: unknown order '%.*s'", (int)ev->refund_of.n, ev->refund_of.p);
        if (seg__ev_cust(s, r) != ci)
            return fail(db, field_out, SEG__F_REFUND_OF, SEG_EINVAL,
                        "refund_of: order '%.*s' belongs to another customer",
                        (int)ev->refund_of.n, ev->refund_of.p);
        const seg__cust *c = &s->custs[ci];
        int64_t total = 0, refunded = 0;
        for (uint32_t j = c->head; j != SEG__NONE; j = seg__ev_next(s, j)) {
            uint32_t kind = seg__ev_kind(s, j);
            if (kind == SEG_EVENT_PURCHASE &&
                (order_ref == SEG__NONE ? j == r : seg__ev_ref(s, j) == order_ref)) {
                total += seg__ev_amount(s, j);
            } else if (kind == SEG_EVENT_REFUND && seg__ev_refund_of(s, j) &&
                       seg__arena_eq(&s->arena, seg__ev_refund_of(s, j), ev->refund_of)) {
                refunded -= seg__ev_amount(s, j);
            }
        }
        if (-ev->amount > total - refunded) {
            char m1[40], m2[40];
            fmt_money(m1, sizeof m1, -ev->amount, db->exponent);
            fmt_money(m2, sizeof m2, total - refunded, db->exponent);
            return fail(db, field_out, SEG__F_AMOUNT, SEG_EINVAL,
                        "amount: refund of %s exceeds the %s left to refund on order '%.*s'", m1,
                        m2, (int)ev->refund_of.n, ev->refund_of.p);
        }
    }

    /* the customer's sums must stay representable */
    if (ci != SEG__NONE) {
        const seg__cust *c = &s->custs[ci];
        int64_t sum;
        if ((ev->kind == SEG_EVENT_PURCHASE && __builtin_add_overflow(c->revenue, ev->amount, &sum)) ||
            (ev->kind == SEG_EVENT_REFUND && __builtin_add_overflow(c->refunds, ev->amount, &sum)))
            return fail(db, field_out, SEG__F_AMOUNT, SEG_ERANGE,
                        "amount: the customer's %s would overflow",
                        ev->kind == SEG_EVENT_PURCHASE ? "revenue" : "refunds");
        if (c->events == UINT32_MAX)
            return fail(db, field_out, SEG__F_CUSTOMER_ID, SEG_ELIMIT,
                        "customer_id: too many events for one customer");
    }

    /* ---- from here on: changes (failures are resource errors, undone by
     * the batch's rollback) ---- */
    if ((rc = prepare_slot(a, s, ev, occ, explicit_id, ev->refund_of.n > 0)) != SEG_OK ||
        (rc = seg__htab_reserve(a, &s->id_tab, 1)) != SEG_OK ||
        (first_of_order == SEG__NONE && ev->order_id.n &&
         (rc = seg__htab_reserve(a, &s->order_tab, 1)) != SEG_OK))
        goto resource;
    bool new_cust = ci == SEG__NONE;
    if (new_cust) {
        ci = seg__cust_intern(a, s, ev->customer_id, &err);
        if (ci == SEG__NONE) {
            rc = err ? err : SEG_ENOMEM;
            goto resource;
        }
    } else if ((rc = save_cust(b, ci)) != SEG_OK) {
        goto resource;
    }
    uint32_t chan = 0, cat = 0, sku = 0, ref = 0, rf = 0, eid = 0;
#define INTERN(dict, str, out, fld, known)                                 \
    if (str.n) {                                                           \
        uint32_t x_ = known != SEG__NONE                                   \
                          ? known                                          \
                          : seg__dict_intern(a, &s->arena, &s->dict, str, &err); \
        if (x_ == SEG__NONE) {                                             \
            rc = err;                                                      \
            field = fld;                                                   \
            goto resource;                                                 \
        }                                                                  \
        out = x_ + 1;                                                      \
    }
    INTERN(chan, ev->channel, chan, SEG__F_CHANNEL, dix[0])
    INTERN(cat, ev->category, cat, SEG__F_CATEGORY, dix[1])
    INTERN(sku, ev->sku, sku, SEG__F_SKU, dix[2])
    if (ev->kind == SEG_EVENT_ENGAGEMENT) {
        INTERN(names, ev->name, ref, SEG__F_NAME, dix[3])
        ref -= 1; /* the name's index itself */
    }
#undef INTERN
    if (explicit_id && !(eid = seg__arena_add(a, &s->arena, ev->event_id.p, ev->event_id.n))) {
        rc = SEG_ENOMEM;
        goto resource;
    }
    if (ev->order_id.n) {
        if (first_of_order != SEG__NONE)
            ref = seg__ev_ref(s, first_of_order);
        else if (ev->order_id.p == ev->event_id.p && eid)
            ref = eid; /* an order named by its own purchase's id: one copy */
        else
            ref = seg__arena_add(a, &s->arena, ev->order_id.p, ev->order_id.n);
        if (!ref) {
            rc = SEG_ENOMEM;
            goto resource;
        }
    }
    if (ev->refund_of.n && !(rf = seg__arena_add(a, &s->arena, ev->refund_of.p, ev->refund_of.n))) {
        rc = SEG_ENOMEM;
        goto resource;
    }

    /* write the event */
    uint32_t i = s->nevents;
    seg__evchunk *c = seg__ev_chunk(s, i);
    uint32_t off = SEG__OFF(i);
    if (c->ts32)
        c->ts32[off] = (int32_t)(ev->ts - c->ts_base);
    else
        c->ts64[off] = ev->ts;
    if (c->amt32)
        c->amt32[off] = (int32_t)ev->amount;
    else
        c->amt64[off] = ev->amount;
    c->cust[off] = ci;
    c->ref[off] = ref;
    c->kindchan[off] = (uint16_t)(ev->kind << 14 | chan);
    c->cat[off] = (uint16_t)cat;
    if (c->qty) c->qty[off] = ev->quantity;
    if (c->sku) c->sku[off] = sku;
    if (c->refund_of) c->refund_of[off] = rf;
    if (c->eid) c->eid[off] = eid;
    if (occ) {
        s->occ_ev[s->nocc] = i;
        s->occ_val[s->nocc++] = occ;
    }
    s->nevents++;
    s->live_events++;
    seg__htab_insert(&s->id_tab, seg__tag(idh), i);
    if (ev->order_id.n && first_of_order == SEG__NONE)
        seg__htab_insert(&s->order_tab, seg__tag(order_h), i);

    /* chain and aggregates */
    seg__cust *cu = &s->custs[ci];
    c->next[off] = cu->head; /* newest first: no write to an older event */
    cu->head = i;
    if (!cu->events || ev->ts < cu->first_seen)
        cu->first_seen = ev->ts;
    if (!cu->events || ev->ts > cu->last_seen)
        cu->last_seen = ev->ts;
    cu->events++;
    if (ev->kind == SEG_EVENT_ENGAGEMENT) {
        cu->engagements++;
    } else if (ev->kind == SEG_EVENT_REFUND) {
        cu->refunds += ev->amount;
        cu->units -= ev->quantity;
    } else {
        cu->units += ev->quantity;
        if (ev->amount > 0) {
            bool counted = false;
            if (first_of_order != SEG__NONE) {
                counted = seg__ev_kind(s, first_of_order) == SEG_EVENT_PURCHASE &&
                          seg__ev_amount(s, first_of_order) > 0;
                if (!counted) {
                    /* look for another positive line (i heads the chain) */
                    for (uint32_t j = seg__ev_next(s, i); j != SEG__NONE;
                         j = seg__ev_next(s, j))
                        if (seg__ev_ref(s, j) == ref && seg__ev_kind(s, j) == SEG_EVENT_PURCHASE &&
                            seg__ev_amount(s, j) > 0) {
                            counted = true;
                            break;
                        }
                }
            }
            if (!counted)
                cu->orders++;
            int64_t d = seg__day_of(ev->ts);
            if (!cu->days) {
                cu->days = 1;
                cu->first_purchase = cu->last_purchase = ev->ts;
            } else {
                int64_t df = seg__day_of(cu->first_purchase), dl = seg__day_of(cu->last_purchase);
                if (d > dl || d < df) {
                    cu->days++;
                } else if (d != df && d != dl) {
                    /* inside the known range: look at the other purchases */
                    bool seen = false;
                    for (uint32_t j = seg__ev_next(s, i); j != SEG__NONE; j = seg__ev_next(s, j))
                        if (seg__ev_kind(s, j) == SEG_EVENT_PURCHASE &&
                            seg__ev_amount(s, j) > 0 && seg__day_of(seg__ev_ts(s, j)) == d) {
                            seen = true;
                            break;
                        }
                    if (!seen)
                        cu->days++;
                }
                if (ev->ts < cu->first_purchase)
                    cu->first_purchase = ev->ts;
                if (ev->ts > cu->last_purchase)
                    cu->last_purchase = ev->ts;
            }
            cu->revenue += ev->amount;
        }
    }
    b->accepted++;
    return SEG_OK;

resource:
    if (rc == SEG_ELIMIT)
        return fail(db, field_out, field, SEG_ELIMIT,
                    "%s: too many distinct values (the store's limit is reached)",
                    seg__field_name(field));
    return fail(db, field_out, field, rc, "%s", seg_errstr(rc));
}

int seg__batch_add(seg__batch *b, const seg__ev *ev, bool *dup_out, int *field_out)
{
    return batch_add(b, ev, -1, NULL, dup_out, field_out);
}

/* Lookups cost a cache miss each (three dependent ones to find a
 * customer).  Events are taken in groups of TGROUP: first every event's
 * hashes are computed, then the table slots of the whole group are read,
 * then the records those slots point to, then the strings those point to,
 * and only then are the events applied in order.  Each stage is a short
 * loop of independent loads, so their misses overlap.  Real loads are used
 * rather than prefetch instructions: on this kind of virtual machine
 * prefetches helped only when the tables sat in huge pages (a prefetch that
 * misses the TLB appears to be dropped), and with 4 KiB pages nearly every
 * random access to a large table misses it.  Measured on 10M events: 1.6x
 * faster than three-stage prefetching.  Touching never changes a
 * result. */
#define TGROUP 16

/* a volatile read is always performed; its value is not needed (and no
 * global is written: handles on other threads share nothing) */
static inline void touch(const void *p)
{
    (void)*(const volatile uint8_t *)p;
}

static inline const uint64_t *home_slot(const seg__htab *t, uint32_t tag)
{
    return &t->slots[(uint32_t)(((uint64_t)tag * t->cap) >> 32)];
}

/* stage 1: the table slots */
static void touch_slots(const seg__store *s, const pre *p, const seg__ev *ev)
{
    if (s->cust_tab.cap)
        touch(home_slot(&s->cust_tab, seg__tag(p->cust_h)));
    if (s->id_tab.cap)
        touch(home_slot(&s->id_tab, seg__tag(ev->event_id.n ? p->eid_h : p->d0)));
    if (p->order_h && s->order_tab.cap)
        touch(home_slot(&s->order_tab, seg__tag(p->order_h)));
}

/* The index in the first slots from home whose tag matches (the slot was
 * touched earlier), else SEG__NONE.  Only a guess for touching. */
static inline uint32_t slot_guess(const seg__htab *t, uint64_t h)
{
    if (!t->cap)
        return SEG__NONE;
    uint32_t tag = seg__tag(h);
    const uint64_t *p = home_slot(t, tag), *end = t->slots + t->cap;
    for (int k = 0; k < 4 && p < end && *p; k++, p++)
        if ((uint32_t)(*p >> 32) == tag)
            return (uint32_t)*p - 1;
    return SEG__NONE;
}

/* stage 2: the customer record and the order's first line */
static void touch_records(const seg__store *s, const pre *p)
{
    uint32_t ci = slot_guess(&s->cust_tab, p->cust_h);
    if (ci < s->ncusts)
        touch(&s->custs[ci]);
    if (p->order_h) {
        uint32_t f = slot_guess(&s->order_tab, p->order_h);
        if (f < s->nevents)
            touch(&seg__ev_chunk(s, f)->ref[SEG__OFF(f)]);
    }
}

/* stage 3: the customer's id, when it is not kept inline */
static void touch_strings(const seg__store *s, const pre *p)
{
    uint32_t ci = slot_guess(&s->cust_tab, p->cust_h);
    if (ci < s->ncusts) {
        const seg__cust *c = &s->custs[ci];
        if (c->id && c->idlen > SEG__ID_INLINE)
            touch(seg__arena_ptr(&s->arena, c->id));
    }
}

int seg__batch_add_many(seg__batch *b, const seg__ev *evs, const int *occs, size_t n,
                        size_t *done, int *field_out)
{
    const seg__store *s = &b->db->store;
    pre ring[TGROUP];
    for (size_t g = 0; g < n; g += TGROUP) {
        size_t m = n - g < TGROUP ? n - g : TGROUP;
        for (size_t k = 0; k < m; k++)
            precompute(&evs[g + k], &ring[k]);
        for (size_t k = 0; k < m; k++)
            touch_slots(s, &ring[k], &ring[k].ev);
        for (size_t k = 0; k < m; k++)
            touch_records(s, &ring[k]);
        for (size_t k = 0; k < m; k++)
            touch_strings(s, &ring[k]);
        for (size_t k = 0; k < m; k++) {
            bool dup;
            int rc = batch_add(b, &evs[g + k], occs ? occs[g + k] : -1, &ring[k], &dup,
                               field_out);
            if (rc != SEG_OK) {
                *done = g + k;
                return rc;
            }
        }
    }
    *done = n;
    return SEG_OK;
}

void seg__batch_counts(const seg__batch *b, uint64_t *accepted, uint64_t *duplicates)
{
    *accepted = b->accepted;
    *duplicates = b->duplicates;
}

/* Undo everything the batch did to memory. */
static void undo(seg__batch *b)
{
    seg_db *db = b->db;
    seg__store *s = &db->store;
    const seg__alloc *a = &db->alloc;
    for (uint32_t i = s->nevents; i-- > b->ev0;) {
        seg__htab_remove(&s->id_tab, seg__tag(seg__event_id_hash(s, i)), i);
        uint32_t ref = seg__ev_ref(s, i);
        if (ref && seg__ev_kind(s, i) != SEG_EVENT_ENGAGEMENT) {
            seg__str o = seg__arena_str(&s->arena, ref);
            seg__htab_remove(&s->order_tab, seg__tag(seg__hash(o.p, o.n, SEG__SEED_ORDER)), i);
        }
    }
    s->live_events -= s->nevents - b->ev0;
    s->nevents = b->ev0;
    while (s->nocc && s->occ_ev[s->nocc - 1] >= b->ev0)
        s->nocc--;
    /* new events sit in front of the chains: restoring the heads drops them */
    for (size_t k = b->nsaved; k-- > 0;)
        s->custs[b->saved[k].ci] = b->saved[k].rec;
    for (uint32_t ci = s->ncusts; ci-- > b->cust0;) {
        seg__str id = seg__arena_str(&s->arena, s->custs[ci].id);
        seg__htab_remove(&s->cust_tab, seg__tag(seg__hash(id.p, id.n, SEG__SEED_CUST)), ci);
    }
    s->ncusts = b->cust0;
    s->live_custs = b->live_custs0;
    for (int k = 0; k < 4; k++)
        seg__dict_truncate(batch_dicts(s, k), &s->arena, b->dict0[k]);
    seg__arena_truncate(a, &s->arena, b->arena0);
    uint32_t keep = (b->ev0 + SEG__CHUNK - 1) >> SEG__CHUNK_BITS;
    if (keep < b->nchunks0)
        keep = b->nchunks0;
    seg__store_chunks_truncate(a, s, keep);
}

static void batch_free(seg__batch *b)
{
    seg_db *db = b->db;
    seg__free(&db->alloc, b->saved);
    seg__free(&db->alloc, b->saved_bits);
    seg__free(&db->alloc, b->seen);
    seg__free(&db->alloc, b->matched);
    seg__htab_free(&db->alloc, &b->seen_tab);
    db->in_batch = false;
    seg__free(&db->alloc, b);
}

void seg__batch_rollback(seg__batch *b)
{
    if (!b)
        return;
    undo(b);
    batch_free(b);
}

#define PUT_CHUNK 512

/* Write the batch's new events to the backend. */
static int store_events(seg__batch *b)
{
    seg_db *db = b->db;
    seg__store *s = &db->store;
    if (!seg__st_wants_events(db) || s->nevents == b->ev0)
        return SEG_OK;
    seg_event_info *infos = seg__malloc(&db->alloc, PUT_CHUNK * sizeof *infos);
    seg__info_bufs *bufs = seg__malloc(&db->alloc, PUT_CHUNK * sizeof *bufs);
    int rc = SEG_OK;
    if (!infos || !bufs) {
        rc = seg__error(db, SEG_ENOMEM, "out of memory");
    } else {
        for (uint32_t i = b->ev0; i < s->nevents && rc == SEG_OK;) {
            size_t n = 0;
            for (; i < s->nevents && n < PUT_CHUNK; i++, n++)
                seg__event_info(s, i, &infos[n], &bufs[n]);
            rc = seg__st_put_events(db, infos, n);
        }
    }
    seg__free(&db->alloc, infos);
    seg__free(&db->alloc, bufs);
    return rc;
}

int seg__batch_commit(seg__batch *b)
{
    seg_db *db = b->db;
    int rc = seg__st_begin(db);
    if (rc == SEG_OK) {
        rc = store_events(b);
        if (rc == SEG_OK && db->nmodules)
            rc = seg__modules_events(db, b->ev0, db->store.nevents - b->ev0);
        if (rc == SEG_OK)
            rc = seg__st_commit(db);
        if (rc != SEG_OK)
            seg__st_rollback(db);
        if (db->nmodules)
            seg__modules_txn_end(db, rc == SEG_OK);
    }
    if (rc != SEG_OK) {
        seg__batch_rollback(b);
        return rc;
    }
    batch_free(b);
    return SEG_OK;
}

/* ------------------------------------------------------------- loading */

int seg__load_prepare(seg_db *db, const seg_event_info *in, seg__ev *out, int *occ_out)
{
    if (!in || !in->customer_id)
        return seg__error(db, SEG_ESTORAGE, "load: event without customer");
    seg__ev ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = in->kind;
    ev.quantity = in->quantity;
    ev.customer_id = seg__cstr(in->customer_id);
    ev.ts = in->ts;
    ev.amount = in->amount;
    ev.channel = seg__cstr(in->channel);
    ev.category = seg__cstr(in->category);
    ev.sku = seg__cstr(in->sku);
    ev.refund_of = seg__cstr(in->refund_of);
    ev.name = seg__cstr(in->name);
    seg__str id = seg__cstr(in->event_id);
    seg__str order = seg__cstr(in->order_id);
    int occ = -1;
    seg__did want;
    if (parse_did(id, &want)) {
        /* a derived id: an order-less purchase carries its id as order id */
        if (in->kind == SEG_EVENT_PURCHASE && order.n == id.n && memcmp(order.p, id.p, id.n) == 0)
            order = SEG__STR_NULL;
        ev.order_id = order;
        if (ev.quantity == SEG_QUANTITY_DEFAULT)
            ev.quantity = ev.kind == SEG_EVENT_PURCHASE ? 1 : 0;
        for (occ = 0; occ < 1000000; occ++) {
            seg__did d = seg__derive_id(&ev, (uint32_t)occ);
            if (d.h1 == want.h1 && d.h2 == want.h2)
                break;
        }
        if (occ == 1000000)
            return seg__error(db, SEG_ESTORAGE,
                              "load: event '%s' does not match its content (corrupt store?)",
                              in->event_id);
    } else {
        if (in->kind == SEG_EVENT_PURCHASE && order.n == id.n && id.n &&
            memcmp(order.p, id.p, id.n) == 0)
            order = SEG__STR_NULL; /* normalize() gives it back */
        ev.event_id = id;
        ev.order_id = order;
    }
    *out = ev;
    *occ_out = occ;
    return SEG_OK;
}

int seg__load_events(seg_db *db, const seg__ev *evs, const int *occs, size_t n)
{
    if (!db->load_batch) {
        /* no undo log: a failed load fails the open, and the handle goes */
        int rc = seg__batch_begin(&db->load_batch, db, SEG__BATCH_LOAD, 0);
        if (rc != SEG_OK)
            return rc;
    }
    size_t done = 0;
    int field;
    int rc = seg__batch_add_many(db->load_batch, evs, occs, n, &done, &field);
    if (rc != SEG_OK) {
        const seg__ev *e = &evs[done];
        if (e->event_id.n)
            seg__error_prefix(db, "load: event '%.*s': ", (int)e->event_id.n, e->event_id.p);
        else
            seg__error_prefix(db, "load: an event of customer '%.*s': ",
                              (int)e->customer_id.n, e->customer_id.p);
    }
    return rc;
}

int seg__load_finish(seg_db *db, bool ok)
{
    if (!db->load_batch)
        return SEG_OK;
    seg__batch *b = db->load_batch;
    db->load_batch = NULL;
    if (!ok) {
        seg__batch_rollback(b);
        return SEG_OK;
    }
    batch_free(b); /* nothing to write back */
    return SEG_OK;
}

/* ------------------------------------------------------- event_info */

static const char *copy_str(char *buf, seg__str s)
{
    if (!s.n)
        return NULL;
    memcpy(buf, s.p, s.n);
    buf[s.n] = '\0';
    return buf;
}

void seg__event_info(const seg__store *s, uint32_t i, seg_event_info *out, seg__info_bufs *b)
{
    seg__ev ev;
    uint32_t occ;
    seg__ev_load(s, i, &ev, &occ);
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    out->kind = ev.kind;
    out->quantity = ev.quantity;
    out->ts = ev.ts;
    out->amount = ev.amount;
    if (ev.event_id.n) {
        out->event_id = copy_str(b->id, ev.event_id);
    } else {
        seg__did_format(b->id, seg__derive_id(&ev, occ));
        out->event_id = b->id;
    }
    out->customer_id = copy_str(b->cust, ev.customer_id);
    out->order_id = copy_str(b->order, ev.order_id);
    if (!out->order_id && ev.kind == SEG_EVENT_PURCHASE)
        out->order_id = out->event_id; /* an order of its own */
    out->channel = copy_str(b->chan, ev.channel);
    out->category = copy_str(b->cat, ev.category);
    out->sku = copy_str(b->sku, ev.sku);
    out->refund_of = copy_str(b->refund_of, ev.refund_of);
    out->name = copy_str(b->name, ev.name);
}

/* ---------------------------------------------------------- public API */

#define EVENT_V1_SIZE sizeof(seg_event)
#define INGEST_OPTS_V1_SIZE sizeof(seg_ingest_options)
#define STATS_V1_SIZE sizeof(seg_ingest_stats)

SEG_API int seg_ingest_options_init(seg_ingest_options *opts, size_t struct_size)
{
    seg_ingest_options d = SEG_INGEST_OPTIONS_INIT;
    return seg__options_init(opts, struct_size, &d, INGEST_OPTS_V1_SIZE);
}

static int event_in(seg_db *db, const seg_event *e, size_t size, seg__ev *out, int *field)
{
    seg_event copy = SEG_EVENT_INIT;
    const seg_event *ep = e;
    if (size != sizeof copy) { /* another layout: through a copy of ours */
        if (seg__struct_in(&copy, sizeof copy, e, size, EVENT_V1_SIZE) != SEG_OK)
            return fail(db, field, SEG__F_NONE, SEG_EVERSION,
                        "seg_event: unsupported struct_size %zu (1.0 layout is %zu)", size,
                        (size_t)EVENT_V1_SIZE);
        ep = &copy;
    }
    const seg_event ev = *ep;
    out->kind = ev.kind;
    out->quantity = ev.quantity;
    out->event_id = seg__cstr(ev.event_id);
    out->customer_id = seg__cstr(ev.customer_id);
    out->ts = ev.ts;
    out->amount = ev.amount;
    out->order_id = seg__cstr(ev.order_id);
    out->channel = seg__cstr(ev.channel);
    out->category = seg__cstr(ev.category);
    out->sku = seg__cstr(ev.sku);
    out->refund_of = seg__cstr(ev.refund_of);
    out->name = seg__cstr(ev.name);
    /* a given but empty string is an error, not "absent" */
    const char *given[] = { ev.event_id, ev.order_id, ev.channel, ev.category, ev.sku,
                            ev.refund_of, ev.name };
    static const int fields[] = { SEG__F_EVENT_ID, SEG__F_ORDER_ID, SEG__F_CHANNEL,
                                  SEG__F_CATEGORY, SEG__F_SKU, SEG__F_REFUND_OF, SEG__F_NAME };
    for (size_t k = 0; k < sizeof fields / sizeof *fields; k++)
        if (given[k] && !given[k][0])
            return fail(db, field, fields[k], SEG_EINVAL, "%s: empty (use NULL for absent)",
                        seg__field_name(fields[k]));
    return SEG_OK;
}

static void stats_zero(seg_ingest_stats *st)
{
    if (st && st->struct_size >= STATS_V1_SIZE)
        st->accepted = st->duplicates = st->rejected = 0;
}

SEG_API int seg_event_ingest_batch(seg_db *db, const seg_event *events, size_t n,
                                   const seg_ingest_options *opts, seg_ingest_stats *stats_out)
{
    if (!db)
        return SEG_EINVAL;
    seg__error_clear(db);
    stats_zero(stats_out);
    if (stats_out && stats_out->struct_size < STATS_V1_SIZE)
        return seg__error(db, SEG_EVERSION, "seg_ingest_stats: unsupported struct_size %zu",
                          stats_out->struct_size);
    if (!events && n)
        return seg__error(db, SEG_EINVAL, "events: NULL");
    seg_ingest_options o = SEG_INGEST_OPTIONS_INIT;
    if (opts && seg__struct_in(&o, sizeof o, opts, opts->struct_size, INGEST_OPTS_V1_SIZE))
        return seg__error(db, SEG_EVERSION, "seg_ingest_options: unsupported struct_size %zu",
                          opts->struct_size);
    if (o.flags & ~SEG_INGEST_PER_EVENT)
        return seg__error(db, SEG_EINVAL, "seg_ingest_options: unknown flags 0x%x",
                          (unsigned)o.flags);
    size_t stride = n ? events->struct_size : 0;
    if (n && stride < EVENT_V1_SIZE)
        return seg__error(db, SEG_EVERSION, "seg_event: unsupported struct_size %zu (1.0 layout "
                          "is %zu)", stride, (size_t)EVENT_V1_SIZE);
    bool per_event = o.flags & SEG_INGEST_PER_EVENT;
    seg__batch *b;
    int rc = seg__batch_begin(&b, db, 0, n);
    if (rc != SEG_OK)
        return rc;
    enum { GROUP = 256 };
    seg__ev group[GROUP];
    for (size_t base = 0; base < n;) {
        /* convert a group; a conversion error ends the group before it */
        size_t m = 0, k;
        int field = SEG__F_NONE;
        rc = SEG_OK;
        /* the caller's customer ids may sit anywhere in its memory: read
         * the group's first (independent loads, see TGROUP) */
        for (k = base; k < n && k - base < GROUP; k++) {
            const seg_event *e = (const seg_event *)((const char *)events + k * stride);
            if (stride >= EVENT_V1_SIZE && e->struct_size == stride && e->customer_id)
                touch(e->customer_id);
        }
        for (k = base; k < n && m < GROUP; k++, m++) {
            const seg_event *e = (const seg_event *)((const char *)events + k * stride);
            rc = e->struct_size != stride
                     ? fail(db, &field, SEG__F_NONE, SEG_EVERSION,
                            "seg_event: struct_size %zu differs from the batch's first (%zu)",
                            e->struct_size, stride)
                     : event_in(db, e, stride, &group[m], &field);
            if (rc != SEG_OK)
                break;
        }
        size_t done = m;
        int rc2 = seg__batch_add_many(b, group, NULL, m, &done, &field);
        if (rc2 != SEG_OK)
            rc = rc2;
        size_t bad = base + done; /* the event that failed, if any */
        base = bad;
        if (rc == SEG_OK)
            continue;
        if (per_event && !seg__is_fatal(rc)) {
            b->rejected++;
            if (o.on_reject)
                o.on_reject(bad, rc, seg_errmsg(db), o.payload);
            base = bad + 1;
            continue;
        }
        seg__error_prefix(db, "event %zu: ", bad);
        seg__batch_rollback(b);
        return rc;
    }
    uint64_t acc = b->accepted, dup = b->duplicates, rej = b->rejected;
    rc = seg__batch_commit(b);
    if (rc != SEG_OK)
        return rc;
    if (stats_out) {
        stats_out->accepted = acc;
        stats_out->duplicates = dup;
        stats_out->rejected = rej;
    }
    seg__error_clear(db);
    return SEG_OK;
}

SEG_API int seg_event_ingest(seg_db *db, const seg_event *event)
{
    if (!db)
        return SEG_EINVAL;
    if (!event)
        return seg__error(db, SEG_EINVAL, "event: NULL");
    seg__error_clear(db);
    seg__ev ev;
    int field = SEG__F_NONE;
    int rc = event_in(db, event, event->struct_size, &ev, &field);
    if (rc != SEG_OK)
        return rc;
    seg__batch *b;
    if ((rc = seg__batch_begin(&b, db, 0, 0)) != SEG_OK)
        return rc;
    bool dup;
    rc = seg__batch_add(b, &ev, &dup, &field);
    if (rc != SEG_OK) {
        seg__batch_rollback(b);
        return rc;
    }
    rc = seg__batch_commit(b);
    if (rc == SEG_OK)
        seg__error_clear(db);
    return rc;
}

SEG_API uint64_t seg_event_count(const seg_db *db)
{
    return db ? db->store.live_events : 0;
}

SEG_API int seg_event_foreach(seg_db *db, const char *customer_id, seg_event_cb cb, void *payload)
{
    if (!db)
        return SEG_EINVAL;
    if (!cb)
        return seg__error(db, SEG_EINVAL, "cb: NULL");
    seg__error_clear(db);
    seg__store *s = &db->store;
    seg__info_bufs *bufs = seg__malloc(&db->alloc, sizeof *bufs);
    if (!bufs)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    seg_event_info info;
    bool was = db->iterating; /* a foreach may run inside another's callback */
    if (customer_id) {
        uint32_t ci = seg__cust_find(s, seg__cstr(customer_id));
        if (ci == SEG__NONE) {
            seg__free(&db->alloc, bufs);
            return seg__error(db, SEG_ENOTFOUND, "customer_id '%s': no such customer",
                              customer_id);
        }
        uint32_t nev = s->custs[ci].events;
        uint32_t *order = seg__malloc(&db->alloc, ((size_t)nev + 1) * sizeof *order);
        if (!order) {
            seg__free(&db->alloc, bufs);
            return seg__error(db, SEG_ENOMEM, "out of memory");
        }
        seg__cust_events(s, &s->custs[ci], order);
        db->iterating = true;
        for (uint32_t k = 0; k < nev; k++) {
            seg__event_info(s, order[k], &info, bufs);
            if (cb(&info, payload))
                break;
        }
        seg__free(&db->alloc, order);
    } else {
        db->iterating = true;
        for (uint32_t i = 0; i < s->nevents; i++) {
            if (seg__ev_kind(s, i) == SEG__KIND_DELETED)
                continue;
            seg__event_info(s, i, &info, bufs);
            if (cb(&info, payload))
                break;
        }
    }
    db->iterating = was;
    seg__free(&db->alloc, bufs);
    return SEG_OK;
}
