/* Store primitives: hash tables, string arena, dictionaries, customers,
 * derived ids, recomputation of aggregates. */
#include "core/core-private.h"

#include <stdlib.h>

/* ---------------------------------------------------------------- htab */

#include <sys/mman.h>
/* Large tables are read at random: ask for huge pages, so that their
 * lookups do not each miss the TLB as well (a hint; Linux only). */
static void seg__advise_huge(void *p, size_t n)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t b = ((uintptr_t)p + huge - 1) & ~(huge - 1), e = ((uintptr_t)p + n) & ~(huge - 1);
    if (n >= 4 * huge && e > b)
        (void)madvise((void *)b, e - b, MADV_HUGEPAGE);
#else
    SEG_UNUSED(p);
    SEG_UNUSED(n);
#endif
}

#define MAX_LOAD_NUM 18   /* grow above 90 % */
#define MAX_LOAD_DEN 20

static inline uint32_t home_of(uint32_t tag, uint32_t cap)
{
    return (uint32_t)(((uint64_t)tag * cap) >> 32);
}

static inline uint32_t dist_of(uint64_t slot, uint32_t i, uint32_t cap)
{
    uint32_t h = home_of((uint32_t)(slot >> 32), cap);
    return i >= h ? i - h : i + cap - h;
}

/* Robin Hood insert: the entry goes to the first slot whose entry sits
 * closer to its home than the new one would (or an empty slot), and the
 * rest of that run moves up by one slot (one memmove, not a chain of
 * swaps: entries keep their order, which is the order of their homes). */
static void raw_insert(uint64_t *slots, uint32_t cap, uint64_t e)
{
    uint32_t i = home_of((uint32_t)(e >> 32), cap), d = 0;
    for (;;) {
        uint64_t s = slots[i];
        if (!s) {
            slots[i] = e;
            return;
        }
        if (dist_of(s, i, cap) < d)
            break;
        if (++i == cap)
            i = 0;
        d++;
    }
    uint32_t j = i; /* the next empty slot (the table is never full) */
    while (slots[j])
        if (++j == cap)
            j = 0;
    if (j > i && j - i <= 8) { /* most runs are short */
        for (uint32_t k = j; k > i; k--)
            slots[k] = slots[k - 1];
    } else if (j > i) {
        memmove(&slots[i + 1], &slots[i], (size_t)(j - i) * sizeof *slots);
    } else { /* the run wraps around the end of the table */
        memmove(&slots[1], &slots[0], (size_t)j * sizeof *slots);
        slots[0] = slots[cap - 1];
        memmove(&slots[i + 1], &slots[i], (size_t)(cap - 1 - i) * sizeof *slots);
    }
    slots[i] = e;
}

int seg__htab_reserve(const seg__alloc *a, seg__htab *t, size_t n)
{
    uint64_t need = (uint64_t)t->count + n;
    if (need <= (uint64_t)t->cap * MAX_LOAD_NUM / MAX_LOAD_DEN && t->cap)
        return SEG_OK;
    uint64_t cap = need * MAX_LOAD_DEN / MAX_LOAD_NUM + 8;
    uint64_t grown = (uint64_t)t->cap * 2; /* grow by at least 2x */
    if (cap < grown)
        cap = grown; /* (an empty table is sized exactly to the hint) */
    if (cap < 16)
        cap = 16;
    if (cap > UINT32_MAX - 1)
        return SEG_ELIMIT;
    uint64_t *slots = seg__calloc(a, (size_t)cap, sizeof *slots);
    if (!slots)
        return SEG_ENOMEM;
    seg__advise_huge(slots, (size_t)cap * sizeof *slots);
    for (uint32_t i = 0; i < t->cap; i++)
        if (t->slots[i])
            raw_insert(slots, (uint32_t)cap, t->slots[i]);
    seg__free(a, t->slots);
    t->slots = slots;
    t->cap = (uint32_t)cap;
    return SEG_OK;
}

void seg__htab_insert(seg__htab *t, uint32_t tag, uint32_t index)
{
    raw_insert(t->slots, t->cap, (uint64_t)tag << 32 | ((uint64_t)index + 1));
    t->count++;
}

void seg__htab_remove(seg__htab *t, uint32_t tag, uint32_t index)
{
    if (!t->cap)
        return;
    uint64_t want = (uint64_t)tag << 32 | ((uint64_t)index + 1);
    uint32_t cap = t->cap, i = home_of(tag, cap), d = 0;
    for (;;) {
        uint64_t s = t->slots[i];
        if (!s || dist_of(s, i, cap) < d)
            return; /* absent */
        if (s == want)
            break;
        if (++i == cap)
            i = 0;
        d++;
    }
    /* backward shift */
    for (;;) {
        uint32_t j = i + 1 == cap ? 0 : i + 1;
        uint64_t s = t->slots[j];
        if (!s || dist_of(s, j, cap) == 0) {
            t->slots[i] = 0;
            break;
        }
        t->slots[i] = s;
        i = j;
    }
    t->count--;
}

void seg__htab_free(const seg__alloc *a, seg__htab *t)
{
    seg__free(a, t->slots);
    memset(t, 0, sizeof *t);
}

/* --------------------------------------------------------------- arena */

#define ARENA_MAX_CHUNKS (1u << (32 - SEG__ARENA_CHUNK_BITS))

seg__ref seg__arena_add(const seg__alloc *a, seg__arena *ar, const char *p, size_t n)
{
    /* callers validated 1 <= n <= SEG_ID_MAX */
    if (!ar->nchunks || ar->used + 1 + n > SEG__ARENA_CHUNK) {
        if (ar->nchunks == ARENA_MAX_CHUNKS)
            return 0;
        if (ar->nchunks == ar->capchunks) {
            uint32_t cap = ar->capchunks ? ar->capchunks * 2 : 16;
            uint8_t **c = seg__realloc_array(a, ar->chunks, cap, sizeof *c);
            if (!c)
                return 0;
            ar->chunks = c;
            ar->capchunks = cap;
        }
        uint8_t *c = seg__malloc(a, SEG__ARENA_CHUNK);
        if (!c)
            return 0;
        ar->chunks[ar->nchunks++] = c;
        ar->used = ar->nchunks == 1 ? 1 : 0; /* ref 0 means none */
    }
    uint32_t off = ar->used;
    uint8_t *d = ar->chunks[ar->nchunks - 1] + off;
    d[0] = (uint8_t)(n - 1);
    memcpy(d + 1, p, n);
    ar->used += (uint32_t)(1 + n);
    return (ar->nchunks - 1) << SEG__ARENA_CHUNK_BITS | off;
}

void seg__arena_wipe(seg__arena *ar, seg__ref r)
{
    if (!r)
        return;
    uint8_t *p = ar->chunks[r >> SEG__ARENA_CHUNK_BITS] + (r & (SEG__ARENA_CHUNK - 1));
    memset(p + 1, 0, (size_t)p[0] + 1);
}

seg__arena_mark seg__arena_mark_get(const seg__arena *ar)
{
    seg__arena_mark m = { ar->nchunks, ar->used };
    return m;
}

void seg__arena_truncate(const seg__alloc *a, seg__arena *ar, seg__arena_mark m)
{
    while (ar->nchunks > m.nchunks)
        seg__free(a, ar->chunks[--ar->nchunks]);
    ar->used = m.used;
}

void seg__arena_free(const seg__alloc *a, seg__arena *ar)
{
    for (uint32_t i = 0; i < ar->nchunks; i++)
        seg__free(a, ar->chunks[i]);
    seg__free(a, ar->chunks);
    memset(ar, 0, sizeof *ar);
}

/* ---------------------------------------------------------------- dict */

typedef struct dict_key {
    const seg__arena *ar;
    const seg__dict *d;
    seg__str s;
} dict_key;

static bool dict_eq(const void *ctx, uint32_t i)
{
    const dict_key *k = ctx;
    return seg__arena_eq(k->ar, k->d->refs[i], k->s);
}

#define cache_slot seg__dict_cache_slot

uint32_t seg__dict_find_slow(const seg__arena *ar, const seg__dict *d, seg__str s)
{
    if (!s.n || s.n > SEG_ID_MAX)
        return SEG__NONE; /* never stored */
    dict_key k = { ar, d, s };
    return seg__htab_find(&d->tab, seg__tag(seg__hash(s.p, s.n, SEG__SEED_DICT)), dict_eq, &k);
}

uint32_t seg__dict_intern(const seg__alloc *a, seg__arena *ar, seg__dict *d, seg__str s, int *err)
{
    uint32_t slot = cache_slot(s), c = d->cache[slot];
    if (c && seg__arena_eq(ar, d->refs[c - 1], s))
        return c - 1;
    uint32_t tag = seg__tag(seg__hash(s.p, s.n, SEG__SEED_DICT));
    dict_key k = { ar, d, s };
    uint32_t i = seg__htab_find(&d->tab, tag, dict_eq, &k);
    if (i != SEG__NONE) {
        d->cache[slot] = i + 1;
        return i;
    }
    if (d->count >= d->limit) {
        *err = SEG_ELIMIT;
        return SEG__NONE;
    }
    if (d->count == d->cap) {
        uint32_t cap = d->cap ? d->cap * 2 : 16;
        seg__ref *r = seg__realloc_array(a, d->refs, cap, sizeof *r);
        if (!r) {
            *err = SEG_ENOMEM;
            return SEG__NONE;
        }
        d->refs = r;
        d->cap = cap;
    }
    int rc = seg__htab_reserve(a, &d->tab, 1);
    if (rc != SEG_OK) {
        *err = rc;
        return SEG__NONE;
    }
    seg__ref r = seg__arena_add(a, ar, s.p, s.n);
    if (!r) {
        *err = SEG_ENOMEM;
        return SEG__NONE;
    }
    d->refs[d->count] = r;
    seg__htab_insert(&d->tab, tag, d->count);
    d->cache[slot] = d->count + 1;
    return d->count++;
}

void seg__dict_truncate(seg__dict *d, const seg__arena *ar, uint32_t count)
{
    if (d->count > count)
        memset(d->cache, 0, sizeof d->cache);
    while (d->count > count) {
        d->count--;
        seg__str s = seg__arena_str(ar, d->refs[d->count]);
        seg__htab_remove(&d->tab, seg__tag(seg__hash(s.p, s.n, SEG__SEED_DICT)), d->count);
    }
}

void seg__dict_free(const seg__alloc *a, seg__dict *d)
{
    seg__free(a, d->refs);
    seg__htab_free(a, &d->tab);
    memset(d, 0, sizeof *d);
}

/* --------------------------------------------------------------- store */

int seg__store_init(const seg__alloc *a, seg__store *s)
{
    SEG_UNUSED(a);
    memset(s, 0, sizeof *s);
    s->chan.limit = SEG__CHAN_LIMIT;
    s->cat.limit = SEG__CAT_LIMIT;
    s->sku.limit = UINT32_MAX - 1;
    s->names.limit = UINT32_MAX - 1;
    s->attr_names.limit = 0x7fffffffu;
    s->consent_chans.limit = 0x7fffffffu;
    return SEG_OK;
}

static void chunk_free(const seg__alloc *a, seg__evchunk *c)
{
    seg__free(a, c->block); /* ts32, amt32, cust, ref, next, kindchan, cat */
    seg__free(a, c->ts64);
    seg__free(a, c->amt64);
    seg__free(a, c->qty);
    seg__free(a, c->sku);
    seg__free(a, c->refund_of);
    seg__free(a, c->eid);
    memset(c, 0, sizeof *c);
}

void seg__store_chunks_truncate(const seg__alloc *a, seg__store *s, uint32_t nchunks)
{
    while (s->nchunks > nchunks)
        chunk_free(a, &s->chunks[--s->nchunks]);
}

void seg__store_free(const seg__alloc *a, seg__store *s)
{
    seg__store_chunks_truncate(a, s, 0);
    seg__free(a, s->chunks);
    for (uint32_t i = 0; i < s->nexts; i++) {
        seg__custext *x = &s->exts[i];
        for (uint32_t k = 0; k < x->n; k++)
            if (!(x->items[k].key & 0x80000000u) && x->items[k].type == SEG_TYPE_STRING)
                seg__free(a, x->items[k].v.s);
        seg__free(a, x->items);
    }
    seg__free(a, s->exts);
    seg__free(a, s->custs);
    seg__free(a, s->occ_ev);
    seg__free(a, s->occ_val);
    seg__free(a, s->attr_types);
    seg__htab_free(a, &s->cust_tab);
    seg__htab_free(a, &s->id_tab);
    seg__htab_free(a, &s->order_tab);
    seg__dict_free(a, &s->chan);
    seg__dict_free(a, &s->cat);
    seg__dict_free(a, &s->sku);
    seg__dict_free(a, &s->names);
    seg__dict_free(a, &s->attr_names);
    seg__dict_free(a, &s->consent_chans);
    seg__arena_free(a, &s->arena);
}

/* ----------------------------------------------------------- customers */

typedef struct str_key {
    const seg__store *s;
    seg__str k;
} str_key;

static bool cust_eq(const void *ctx, uint32_t i)
{
    const str_key *k = ctx;
    return seg__cust_id_eq(&k->s->arena, &k->s->custs[i], k->k);
}

/* customer ids in byte order, shorter first on a common prefix */
static int cmp_ids(const seg__store *s, uint32_t a, uint32_t b)
{
    seg__str x = seg__cust_id(s, a), y = seg__cust_id(s, b);
    size_t n = x.n < y.n ? x.n : y.n;
    int c = memcmp(x.p, y.p, n);
    return c ? c : (x.n > y.n) - (x.n < y.n);
}

void seg__cust_sort_by_id(const seg__store *s, uint32_t *v, uint32_t *tmp, size_t n)
{
    /* a merge sort (stable, and qsort has no context); short runs by insertion */
    if (n < 16) {
        for (size_t i = 1; i < n; i++) {
            uint32_t x = v[i];
            size_t j = i;
            while (j > 0 && cmp_ids(s, v[j - 1], x) > 0) {
                v[j] = v[j - 1];
                j--;
            }
            v[j] = x;
        }
        return;
    }
    size_t h = n / 2;
    seg__cust_sort_by_id(s, v, tmp, h);
    seg__cust_sort_by_id(s, v + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = cmp_ids(s, v[i], v[j]) <= 0 ? v[i++] : v[j++];
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

uint32_t seg__cust_find_h(const seg__store *s, seg__str id, uint64_t h)
{
    str_key k = { s, id };
    return seg__htab_find(&s->cust_tab, seg__tag(h), cust_eq, &k);
}

uint32_t seg__cust_find(const seg__store *s, seg__str id)
{
    return seg__cust_find_h(s, id, seg__hash(id.p, id.n, SEG__SEED_CUST));
}

uint32_t seg__cust_intern(const seg__alloc *a, seg__store *s, seg__str id, int *err)
{
    uint32_t ci = seg__cust_find(s, id);
    if (ci != SEG__NONE)
        return ci;
    if (s->ncusts == SEG__NONE - 1) {
        *err = SEG_ELIMIT;
        return SEG__NONE;
    }
    if (s->ncusts == s->capcusts) {
        uint32_t cap = s->capcusts ? s->capcusts + s->capcusts / 2 : 1024;
        seg__cust *c = seg__realloc_array(a, s->custs, cap, sizeof *c);
        if (!c) {
            *err = SEG_ENOMEM;
            return SEG__NONE;
        }
        seg__advise_huge(c, (size_t)cap * sizeof *c);
        s->custs = c;
        s->capcusts = cap;
    }
    int rc = seg__htab_reserve(a, &s->cust_tab, 1);
    if (rc != SEG_OK) {
        *err = rc;
        return SEG__NONE;
    }
    seg__ref r = seg__arena_add(a, &s->arena, id.p, id.n);
    if (!r) {
        *err = SEG_ENOMEM;
        return SEG__NONE;
    }
    ci = s->ncusts++;
    seg__cust *c = &s->custs[ci];
    memset(c, 0, sizeof *c);
    seg__cust_set_id(c, r, id);
    c->head = SEG__NONE;
    seg__htab_insert(&s->cust_tab, seg__tag(seg__hash(id.p, id.n, SEG__SEED_CUST)), ci);
    s->live_custs++;
    return ci;
}

/* -------------------------------------------------------------- orders */

static bool order_eq(const void *ctx, uint32_t ev)
{
    const str_key *k = ctx;
    return seg__arena_eq(&k->s->arena, seg__ev_ref(k->s, ev), k->k);
}

uint32_t seg__order_find_h(const seg__store *s, seg__str order_id, uint64_t h)
{
    str_key k = { s, order_id };
    return seg__htab_find(&s->order_tab, seg__tag(h), order_eq, &k);
}

uint32_t seg__order_find(const seg__store *s, seg__str order_id)
{
    return seg__order_find_h(s, order_id, seg__hash(order_id.p, order_id.n, SEG__SEED_ORDER));
}

/* ---------------------------------------------------------- derived ids */

static inline uint8_t *put_u64(uint8_t *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 8);
#else
    for (int k = 0; k < 8; k++)
        p[k] = (uint8_t)(v >> (8 * k));
#endif
    return p + 8;
}

static inline uint8_t *put_str(uint8_t *p, seg__str s)
{
    /* length (2 bytes, little-endian) then bytes; absent = length 0 */
    p[0] = (uint8_t)(s.n & 0xff);
    p[1] = (uint8_t)(s.n >> 8);
    uint8_t *d = p + 2;
    const uint8_t *q = (const uint8_t *)s.p;
    if (s.n >= 8 && s.n <= 16) { /* most ids: two overlapping word copies */
        memcpy(d, q, 8);
        memcpy(d + s.n - 8, q + s.n - 8, 8);
    } else if (s.n >= 4 && s.n < 8) {
        memcpy(d, q, 4);
        memcpy(d + s.n - 4, q + s.n - 4, 4);
    } else if (s.n < 4) {
        for (size_t k = 0; k < s.n; k++)
            d[k] = q[k];
    } else {
        memcpy(d, q, s.n);
    }
    return d + s.n;
}

/* The canonical bytes of an event's content: the input of its derived id.
 * This layout is a stored format (ids derived from it are persisted), so
 * it never changes; a new layout would need a new version byte. */
static size_t serialize(const seg__ev *ev, uint32_t occurrence, uint8_t *buf)
{
    uint8_t *p = buf;
    *p++ = 'v';
    *p++ = '1';
    *p++ = (uint8_t)ev->kind;
    p = put_str(p, ev->customer_id);
    p = put_u64(p, (uint64_t)ev->ts);
    p = put_u64(p, (uint64_t)ev->amount);
    p = put_u64(p, (uint64_t)(int64_t)ev->quantity);
    p = put_str(p, ev->order_id);
    p = put_str(p, ev->channel);
    p = put_str(p, ev->category);
    p = put_str(p, ev->sku);
    p = put_str(p, ev->refund_of);
    p = put_str(p, ev->name);
    p = put_u64(p, occurrence);
    return (size_t)(p - buf);
}

#define SERIAL_MAX (3 + 4 * 8 + 7 * (2 + SEG_ID_MAX))

seg__did seg__derive_id(const seg__ev *ev, uint32_t occurrence)
{
    uint8_t buf[SERIAL_MAX];
    size_t n = serialize(ev, occurrence, buf);
    seg__did d = { seg__hash(buf, n, SEG__SEED_DER1), seg__hash(buf, n, SEG__SEED_DER2) };
    return d;
}

uint64_t seg__derive_h1(const seg__ev *ev, uint32_t occurrence)
{
    uint8_t buf[SERIAL_MAX];
    return seg__hash(buf, serialize(ev, occurrence, buf), SEG__SEED_DER1);
}

void seg__ev_load(const seg__store *s, uint32_t i, seg__ev *ev, uint32_t *occ_out)
{
    memset(ev, 0, sizeof *ev);
    uint32_t kind = seg__ev_kind(s, i);
    ev->kind = kind;
    ev->quantity = seg__ev_qty(s, i);
    ev->ts = seg__ev_ts(s, i);
    ev->amount = seg__ev_amount(s, i);
    ev->customer_id = seg__arena_str(&s->arena, s->custs[seg__ev_cust(s, i)].id);
    uint32_t ref = seg__ev_ref(s, i);
    if (kind == SEG_EVENT_ENGAGEMENT)
        ev->name = seg__arena_str(&s->arena, s->names.refs[ref]);
    else if (ref)
        ev->order_id = seg__arena_str(&s->arena, ref);
    uint32_t ch = seg__ev_chan(s, i);
    if (ch)
        ev->channel = seg__arena_str(&s->arena, s->chan.refs[ch - 1]);
    uint32_t cat = seg__ev_chunk(s, i)->cat[SEG__OFF(i)];
    if (cat)
        ev->category = seg__arena_str(&s->arena, s->cat.refs[cat - 1]);
    uint32_t sku = seg__ev_sku(s, i);
    if (sku)
        ev->sku = seg__arena_str(&s->arena, s->sku.refs[sku - 1]);
    uint32_t rf = seg__ev_refund_of(s, i);
    if (rf)
        ev->refund_of = seg__arena_str(&s->arena, rf);
    uint32_t eid = seg__ev_eid(s, i);
    if (eid)
        ev->event_id = seg__arena_str(&s->arena, eid);
    if (occ_out)
        *occ_out = seg__ev_occ(s, i);
}

seg__did seg__derive_stored(const seg__store *s, uint32_t i)
{
    seg__ev ev;
    uint32_t occ;
    seg__ev_load(s, i, &ev, &occ);
    return seg__derive_id(&ev, occ);
}

void seg__did_format(char buf[34], seg__did d)
{
    static const char hex[] = "0123456789abcdef";
    buf[0] = '~';
    for (int k = 0; k < 16; k++) {
        buf[1 + k] = hex[(d.h1 >> (60 - 4 * k)) & 15];
        buf[17 + k] = hex[(d.h2 >> (60 - 4 * k)) & 15];
    }
    buf[33] = '\0';
}

uint64_t seg__event_id_hash(const seg__store *s, uint32_t i)
{
    uint32_t eid = seg__ev_eid(s, i);
    if (eid) {
        seg__str e = seg__arena_str(&s->arena, eid);
        return seg__hash(e.p, e.n, SEG__SEED_EID);
    }
    seg__ev ev;
    uint32_t occ;
    seg__ev_load(s, i, &ev, &occ);
    return seg__derive_h1(&ev, occ);
}

/* ------------------------------------------------ recomputed aggregates */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t count_distinct(uint64_t *v, size_t n)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof *v, cmp_u64);
    uint64_t d = 1;
    for (size_t k = 1; k < n; k++)
        d += v[k] != v[k - 1];
    return d;
}

int seg__cust_compute(const seg__alloc *a, const seg__store *s, uint32_t ci, int64_t as_of,
                      seg__cust *out)
{
    const seg__cust *c = &s->custs[ci];
    memset(out, 0, sizeof *out);
    out->id = c->id;
    out->idlen = c->idlen;
    memcpy(out->idin, c->idin, sizeof out->idin);
    out->head = c->head;
    size_t n = c->events ? c->events : 1;
    uint64_t *orders = seg__malloc(a, n * sizeof *orders);
    uint64_t *days = seg__malloc(a, n * sizeof *days);
    if (!orders || !days) {
        seg__free(a, orders);
        seg__free(a, days);
        return SEG_ENOMEM;
    }
    size_t no = 0, nd = 0;
    for (uint32_t i = c->head; i != SEG__NONE; i = seg__ev_next(s, i)) {
        int64_t ts = seg__ev_ts(s, i);
        if (ts >= as_of)
            continue;
        uint32_t kind = seg__ev_kind(s, i);
        int64_t amt = seg__ev_amount(s, i);
        if (!out->events || ts < out->first_seen)
            out->first_seen = ts;
        if (!out->events || ts > out->last_seen)
            out->last_seen = ts;
        out->events++;
        if (kind == SEG_EVENT_ENGAGEMENT) {
            out->engagements++;
        } else if (kind == SEG_EVENT_REFUND) {
            out->refunds += amt;
            out->units -= seg__ev_qty(s, i);
        } else {
            out->units += seg__ev_qty(s, i);
            if (amt > 0) {
                uint32_t ref = seg__ev_ref(s, i);
                /* an order-less line is an order of its own */
                orders[no++] = ref ? (uint64_t)ref : (UINT64_C(1) << 32) | i;
                days[nd++] = (uint64_t)(seg__day_of(ts) + (INT64_C(1) << 40));
                out->revenue += amt;
                if (nd == 1 || ts < out->first_purchase)
                    out->first_purchase = ts;
                if (nd == 1 || ts > out->last_purchase)
                    out->last_purchase = ts;
            }
        }
    }
    out->orders = (uint32_t)count_distinct(orders, no);
    out->days = (uint32_t)count_distinct(days, nd);
    seg__free(a, orders);
    seg__free(a, days);
    return SEG_OK;
}
