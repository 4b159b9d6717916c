/*
 * The event and customer store: compact in-memory structures.
 *
 * Memory layout (the budget is about 64 bytes per event at 10 million):
 * - strings (customer, order and explicit event ids) live once in a chunked
 *   arena, referenced by a 32-bit handle (seg__ref);
 * - events are columns in chunks of 65536: time and amount are 32-bit
 *   (time relative to a per-chunk base) until a value does not fit, then the
 *   chunk's column widens to 64 bits; the seven columns every event has
 *   share one allocation; rarely used fields (quantity, sku, refund_of,
 *   explicit id) are columns allocated on first use, and the occurrence
 *   numbers of repeated rows (nearly always 0) are a sorted side list;
 * - each customer's events form a chain through the `next` column;
 * - hash tables store a 32-bit tag and a 32-bit index per slot (Robin Hood
 *   probing), so a lookup rarely touches the data it indexes.
 */
#ifndef SEGMENT_EVENT_PRIVATE_H
#define SEGMENT_EVENT_PRIVATE_H

#include "segment-private.h"

#define SEG__NONE UINT32_MAX

/* ---- hash table of 32-bit indexes (store.c) ---- */
typedef struct seg__htab {
    uint64_t *slots;   /* (tag << 32) | (index + 1); 0 = empty */
    uint32_t cap;      /* any size >= 8 */
    uint32_t count;
} seg__htab;

/* Compare the item at `index` with the key being looked up. */
typedef bool (*seg__htab_eq)(const void *ctx, uint32_t index);

int seg__htab_reserve(const seg__alloc *a, seg__htab *t, size_t n);
/* Inline, so that each caller's `eq` is inlined into its own copy. */
static inline uint32_t seg__htab_find(const seg__htab *t, uint32_t tag, seg__htab_eq eq,
                                      const void *ctx)
{
    if (!t->cap)
        return SEG__NONE;
    uint32_t cap = t->cap, i = (uint32_t)(((uint64_t)tag * cap) >> 32), d = 0;
    for (;;) {
        uint64_t s = t->slots[i];
        if (!s)
            return SEG__NONE;
        uint32_t st = (uint32_t)(s >> 32);
        if (st == tag && eq(ctx, (uint32_t)s - 1))
            return (uint32_t)s - 1;
        /* Robin Hood: stop where an entry sits closer to its home than
         * the key would */
        uint32_t h = (uint32_t)(((uint64_t)st * cap) >> 32);
        if ((i >= h ? i - h : i + cap - h) < d)
            return SEG__NONE;
        if (++i == cap)
            i = 0;
        d++;
    }
}
/* insert (key known absent); table must have room (reserve first) */
void seg__htab_insert(seg__htab *t, uint32_t tag, uint32_t index);
/* remove the entry (tag, index) if present */
void seg__htab_remove(seg__htab *t, uint32_t tag, uint32_t index);
void seg__htab_free(const seg__alloc *a, seg__htab *t);

/* ---- string arena (store.c) ---- */
typedef uint32_t seg__ref; /* 0 = none */
#define SEG__ARENA_CHUNK_BITS 20
#define SEG__ARENA_CHUNK (1u << SEG__ARENA_CHUNK_BITS)

typedef struct seg__arena {
    uint8_t **chunks;
    uint32_t nchunks, capchunks;
    uint32_t used;     /* bytes used in the last chunk */
} seg__arena;

typedef struct seg__arena_mark {
    uint32_t nchunks, used;
} seg__arena_mark;

/* Store bytes (1..SEG_ID_MAX) and return a ref, 0 on ENOMEM. */
seg__ref seg__arena_add(const seg__alloc *a, seg__arena *ar, const char *p, size_t n);
static inline const uint8_t *seg__arena_ptr(const seg__arena *ar, seg__ref r) {
    return ar->chunks[r >> SEG__ARENA_CHUNK_BITS] + (r & (SEG__ARENA_CHUNK - 1));
}
static inline seg__str seg__arena_str(const seg__arena *ar, seg__ref r) {
    const uint8_t *p = seg__arena_ptr(ar, r);
    seg__str s = { (const char *)p + 1, (size_t)p[0] + 1 };
    return s;
}
static inline bool seg__arena_eq(const seg__arena *ar, seg__ref r, seg__str s) {
    const uint8_t *p = seg__arena_ptr(ar, r);
    return (size_t)p[0] + 1 == s.n && seg__mem_eq(p + 1, s.p, s.n);
}
/* overwrite the bytes of an entry (erasure) */
void seg__arena_wipe(seg__arena *ar, seg__ref r);
seg__arena_mark seg__arena_mark_get(const seg__arena *ar);
void seg__arena_truncate(const seg__alloc *a, seg__arena *ar, seg__arena_mark m);
void seg__arena_free(const seg__alloc *a, seg__arena *ar);

/* ---- dictionaries: small string sets -> dense index (store.c) ---- */
#define SEG__DICT_CACHE 64
typedef struct seg__dict {
    seg__ref *refs;
    uint32_t count, cap;
    uint32_t limit;    /* largest count allowed */
    seg__htab tab;
    /* recently used values by a cheap key (index + 1, 0 = empty): most
     * lookups of low-cardinality values (channels, categories) stop here */
    uint32_t cache[SEG__DICT_CACHE];
} seg__dict;

/* index of s or SEG__NONE */
static inline uint32_t seg__dict_cache_slot(seg__str s)
{
    const uint8_t *p = (const uint8_t *)s.p;
    return ((uint32_t)s.n * 0x9e37u ^ p[0] * 31u ^ p[s.n / 2] * 7u ^ p[s.n - 1] * 131u) &
           (SEG__DICT_CACHE - 1);
}
uint32_t seg__dict_find_slow(const seg__arena *ar, const seg__dict *d, seg__str s);
/* inline: most lookups stop at the cache */
static inline uint32_t seg__dict_find(const seg__arena *ar, const seg__dict *d, seg__str s)
{
    if (s.n && s.n <= SEG_ID_MAX) {
        uint32_t c = d->cache[seg__dict_cache_slot(s)];
        if (c && seg__arena_eq(ar, d->refs[c - 1], s))
            return c - 1;
    }
    return seg__dict_find_slow(ar, d, s);
}
/* index of s, added if absent; SEG__NONE on ENOMEM or limit (*err set) */
uint32_t seg__dict_intern(const seg__alloc *a, seg__arena *ar, seg__dict *d, seg__str s, int *err);
void seg__dict_truncate(seg__dict *d, const seg__arena *ar, uint32_t count);
void seg__dict_free(const seg__alloc *a, seg__dict *d);

/* ---- events ---- */
#define SEG__CHUNK_BITS 16
#define SEG__CHUNK (1u << SEG__CHUNK_BITS)
#define SEG__KIND_DELETED 0u

/* bytes per event of the columns every event has (ts32 .. cat) */
#define SEG__CHUNK_COLS_BYTES 24
typedef struct seg__evchunk {
    void *block;         /* the columns below up to cat, in one allocation */
    int64_t ts_base;
    int32_t *ts32;       /* ts - ts_base, or NULL when ts64 is used */
    int64_t *ts64;
    int32_t *amt32;      /* or amt64 */
    int64_t *amt64;
    uint32_t *cust;      /* customer index */
    uint32_t *ref;       /* purchase/refund: order id ref (0 none); engagement: name dict index */
    uint32_t *next;      /* next event of the same customer, SEG__NONE at the end */
    uint16_t *kindchan;  /* kind << 14 | (channel index + 1, 0 = none) */
    uint16_t *cat;       /* category index + 1, 0 = none */
    /* columns allocated on first use (NULL = every value is its default) */
    int32_t *qty;        /* default: 1 for purchases, 0 otherwise */
    uint32_t *sku;       /* sku dict index + 1 */
    uint32_t *refund_of; /* order id ref */
    uint32_t *eid;       /* explicit event id ref; 0 = derived */
} seg__evchunk;

#define SEG__CHAN_LIMIT 16383u
#define SEG__CAT_LIMIT 65535u

/* A customer and its incrementally kept aggregates.  96 bytes. */
#define SEG__ID_INLINE 10
typedef struct seg__cust {
    seg__ref id;          /* 0 = erased */
    uint32_t head;        /* newest event; the chain runs back in time of ingestion */
    uint32_t orders, days, events, engagements;
    uint32_t ext;         /* index into the store's ext array + 1, 0 = none */
    uint16_t idlen;       /* length of the id */
    char idin[SEG__ID_INLINE]; /* the id itself when it fits (compared without the arena) */
    int64_t first_purchase, last_purchase; /* valid when orders > 0 */
    int64_t first_seen, last_seen;         /* valid when events > 0 */
    int64_t revenue, refunds, units;
} seg__cust;

/* attributes and consent of one customer */
typedef struct seg__attrval {
    uint32_t key;      /* attribute index, or consent channel index | 0x80000000 */
    uint32_t type;     /* SEG_TYPE_*; consent: the state */
    union { int64_t i; double d; char *s; } v;
} seg__attrval;

typedef struct seg__custext {
    seg__attrval *items;
    uint32_t n, cap;
    uint32_t owner;    /* customer index */
} seg__custext;

typedef struct seg__store {
    seg__arena arena;
    seg__evchunk *chunks;
    uint32_t nchunks, capchunks;
    uint32_t nevents;       /* slots used (tombstones included) */
    uint64_t live_events;   /* events not erased */
    seg__cust *custs;
    uint32_t ncusts, capcusts;
    uint64_t live_custs;
    seg__htab cust_tab;     /* customer id -> customer index */
    seg__htab id_tab;       /* event id -> event index */
    seg__htab order_tab;    /* order id -> index of the order's first event */
    seg__dict chan, cat, sku, names;
    seg__dict attr_names, consent_chans;
    uint32_t *attr_types;   /* per attr_names index */
    uint32_t attr_types_cap;
    seg__custext *exts;
    uint32_t nexts, capexts;
    uint32_t *occ_ev, *occ_val; /* occurrences other than 0 (seg__ev_occ) */
    uint32_t nocc, capocc;
} seg__store;

int seg__store_init(const seg__alloc *a, seg__store *s);
void seg__store_free(const seg__alloc *a, seg__store *s);

static inline seg__evchunk *seg__ev_chunk(const seg__store *s, uint32_t i) {
    return &s->chunks[i >> SEG__CHUNK_BITS];
}
#define SEG__OFF(i) ((i) & (SEG__CHUNK - 1))
static inline int64_t seg__ev_ts(const seg__store *s, uint32_t i) {
    const seg__evchunk *c = seg__ev_chunk(s, i);
    return c->ts32 ? c->ts_base + c->ts32[SEG__OFF(i)] : c->ts64[SEG__OFF(i)];
}
static inline int64_t seg__ev_amount(const seg__store *s, uint32_t i) {
    const seg__evchunk *c = seg__ev_chunk(s, i);
    return c->amt32 ? (int64_t)c->amt32[SEG__OFF(i)] : c->amt64[SEG__OFF(i)];
}
static inline uint32_t seg__ev_kind(const seg__store *s, uint32_t i) {
    return seg__ev_chunk(s, i)->kindchan[SEG__OFF(i)] >> 14;
}
static inline uint32_t seg__ev_chan(const seg__store *s, uint32_t i) { /* index+1, 0 none */
    return seg__ev_chunk(s, i)->kindchan[SEG__OFF(i)] & 0x3fffu;
}
static inline uint32_t seg__ev_cust(const seg__store *s, uint32_t i) {
    return seg__ev_chunk(s, i)->cust[SEG__OFF(i)];
}
static inline uint32_t seg__ev_ref(const seg__store *s, uint32_t i) {
    return seg__ev_chunk(s, i)->ref[SEG__OFF(i)];
}
static inline uint32_t seg__ev_next(const seg__store *s, uint32_t i) {
    return seg__ev_chunk(s, i)->next[SEG__OFF(i)];
}
static inline int32_t seg__ev_qty(const seg__store *s, uint32_t i) {
    const seg__evchunk *c = seg__ev_chunk(s, i);
    if (c->qty) return c->qty[SEG__OFF(i)];
    return (c->kindchan[SEG__OFF(i)] >> 14) == SEG_EVENT_PURCHASE ? 1 : 0;
}
#define SEG__EV_OPT(field)                                                   \
    static inline uint32_t seg__ev_##field(const seg__store *s, uint32_t i) { \
        const seg__evchunk *c = seg__ev_chunk(s, i);                         \
        return c->field ? c->field[SEG__OFF(i)] : 0;                          \
    }
SEG__EV_OPT(sku)
SEG__EV_OPT(refund_of)
SEG__EV_OPT(eid)
#undef SEG__EV_OPT

/* The occurrence number of a derived id (0 for nearly every event): kept
 * apart, as (event, occurrence) pairs in event order, because a column
 * would cost 4 bytes for every event of a chunk with one repeated row. */
/* position of event i in the pairs, or SEG__NONE (its occurrence is 0) */
static inline uint32_t seg__occ_pos(const seg__store *s, uint32_t i)
{
    uint32_t lo = 0, hi = s->nocc;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->occ_ev[mid] < i)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->nocc && s->occ_ev[lo] == i ? lo : SEG__NONE;
}
static inline uint32_t seg__ev_occ(const seg__store *s, uint32_t i)
{
    uint32_t k = seg__occ_pos(s, i);
    return k == SEG__NONE ? 0 : s->occ_val[k];
}

/* ---- hashing of keys ---- */
#define SEG__SEED_CUST  UINT64_C(0x243f6a8885a308d3)
#define SEG__SEED_ORDER UINT64_C(0x13198a2e03707344)
#define SEG__SEED_EID   UINT64_C(0xa4093822299f31d0)
#define SEG__SEED_DICT  UINT64_C(0x082efa98ec4e6c89)
#define SEG__SEED_DER1  UINT64_C(0x452821e638d01377)
#define SEG__SEED_DER2  UINT64_C(0xbe5466cf34e90c6c)

static inline uint32_t seg__tag(uint64_t h) { return (uint32_t)(h >> 32); }

/* customer lookup: index or SEG__NONE (_h: with the id's hash known) */
uint32_t seg__cust_find(const seg__store *s, seg__str id);
uint32_t seg__cust_find_h(const seg__store *s, seg__str id, uint64_t h);
/* Customer ci's id (inline in the record when short, else in the arena). */
static inline seg__str seg__cust_id(const seg__store *s, uint32_t ci)
{
    const seg__cust *c = &s->custs[ci];
    if (c->idlen <= SEG__ID_INLINE) {
        seg__str r = { c->idin, c->idlen };
        return r;
    }
    return seg__arena_str(&s->arena, c->id);
}
/* Sort customer indexes v[0..n) by id bytes; tmp has room for n. */
void seg__cust_sort_by_id(const seg__store *s, uint32_t *v, uint32_t *tmp, size_t n);
/* customer lookup or creation; SEG__NONE on ENOMEM/limit (*err set) */
uint32_t seg__cust_intern(const seg__alloc *a, seg__store *s, seg__str id, int *err);

/* order lookup: index of the order's first event, or SEG__NONE */
uint32_t seg__order_find(const seg__store *s, seg__str order_id);
uint32_t seg__order_find_h(const seg__store *s, seg__str order_id, uint64_t h);

/* The 128-bit derived id of an event's content. */
typedef struct seg__did { uint64_t h1, h2; } seg__did;
seg__did seg__derive_id(const seg__ev *ev, uint32_t occurrence);
/* its first half only: the hash the id table uses */
uint64_t seg__derive_h1(const seg__ev *ev, uint32_t occurrence);
/* the same for a stored event */
seg__did seg__derive_stored(const seg__store *s, uint32_t i);
/* render "~" + 32 hex digits + NUL into buf[34] */
void seg__did_format(char buf[34], seg__did d);
/* hash (for id_tab) of a stored event's id */
uint64_t seg__event_id_hash(const seg__store *s, uint32_t i);

/* Fill a seg__ev (strings pointing into the store) from a stored event. */
void seg__ev_load(const seg__store *s, uint32_t i, seg__ev *ev, uint32_t *occ_out);

/* Is customer c's id equal to s? */
static inline bool seg__cust_id_eq(const seg__arena *ar, const seg__cust *c, seg__str s)
{
    if (c->idlen != s.n || !c->id)
        return false;
    if (s.n <= SEG__ID_INLINE)
        return seg__mem_eq(c->idin, s.p, s.n);
    return seg__arena_eq(ar, c->id, s);
}
/* Set customer c's id (ref r holds the same bytes). */
static inline void seg__cust_set_id(seg__cust *c, seg__ref r, seg__str s)
{
    c->id = r;
    c->idlen = (uint16_t)s.n;
    memset(c->idin, 0, sizeof c->idin);
    if (s.n <= SEG__ID_INLINE)
        memcpy(c->idin, s.p, s.n);
}
/* The customer's events in the order they were ingested: fills out[0..events).
 * The chain is newest first, so it is walked into the array from its end. */
static inline void seg__cust_events(const seg__store *s, const seg__cust *c, uint32_t *out)
{
    uint32_t n = c->events;
    for (uint32_t j = c->head; j != SEG__NONE && n; j = s->chunks[j >> SEG__CHUNK_BITS].next[j & (SEG__CHUNK - 1)])
        out[--n] = j;
}

/* Recompute a customer's aggregates from its events with ts < as_of
 * (INT64_MAX: all).  Returns SEG_OK or SEG_ENOMEM. */
int seg__cust_compute(const seg__alloc *a, const seg__store *s, uint32_t ci, int64_t as_of,
                      seg__cust *out);

void seg__store_chunks_truncate(const seg__alloc *a, seg__store *s, uint32_t nchunks);

#endif /* SEGMENT_EVENT_PRIVATE_H */
