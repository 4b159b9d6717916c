/*
 * tests/testutil.h: helpers shared by the Check suites of libsegment.
 *
 * Header-only (static inline), public API only.  Provides:
 *   - event builders (purchase, refund, engagement),
 *   - assertion macros that print the db's message on failure,
 *   - a snapshot of the whole visible database state (counts, every
 *     customer's aggregates, a digest of every stored event) so that a test
 *     can assert that a failed call changed nothing,
 *   - a counting allocator that can be told to fail after N allocations.
 */
#ifndef SEG_TESTUTIL_H
#define SEG_TESTUTIL_H

#include <check.h>
#include <segment.h>

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- time constants ---------------------------------------------------- */

#define TU_DAY INT64_C(86400)
/* 2024-03-01T00:00:00Z */
#define TU_D0 INT64_C(1709251200)
/* midnight UTC of day n after 2024-03-01 */
#define TU_DAYN(n) (TU_D0 + (int64_t)(n) * TU_DAY)

/* ---- assertions ---------------------------------------------------------- */

/* expr must return SEG_OK; prints the db's message otherwise */
#define TU_OK(db, expr) do { \
        int tu_rc_ = (expr); \
        ck_assert_msg(tu_rc_ == SEG_OK, "%s returned %d, expected SEG_OK (msg: %s)", \
                      #expr, tu_rc_, seg_errmsg(db)); \
    } while (0)

/* expr must return exactly `code` */
#define TU_RC(db, expr, code) do { \
        int tu_rc_ = (expr); \
        ck_assert_msg(tu_rc_ == (code), "%s returned %d, expected %s = %d (msg: %s)", \
                      #expr, tu_rc_, #code, (int)(code), seg_errmsg(db)); \
    } while (0)

/* the db's last message must contain `needle` */
#define TU_MSG_HAS(db, needle) do { \
        const char *tu_m_ = seg_errmsg(db); \
        ck_assert_msg(tu_m_ != NULL, "seg_errmsg returned NULL"); \
        ck_assert_msg(strstr(tu_m_, (needle)) != NULL, \
                      "errmsg \"%s\" does not mention \"%s\"", tu_m_, (needle)); \
    } while (0)

/* a string must contain `needle` */
#define TU_STR_HAS(hay, needle) do { \
        const char *tu_h_ = (hay); \
        ck_assert_msg(tu_h_ != NULL, "%s is NULL", #hay); \
        ck_assert_msg(strstr(tu_h_, (needle)) != NULL, \
                      "%s = \"%s\" does not mention \"%s\"", #hay, tu_h_, (needle)); \
    } while (0)

/* true when the decimal number n appears in s as a whole token (no digit
 * directly before or after it) */
static inline int tu_has_number(const char *s, unsigned long n)
{
    char num[32];
    size_t len;
    const char *p;
    snprintf(num, sizeof num, "%lu", n);
    len = strlen(num);
    for (p = s; (p = strstr(p, num)) != NULL; p++) {
        int before = p > s && isdigit((unsigned char)p[-1]);
        int after = isdigit((unsigned char)p[len]);
        if (!before && !after)
            return 1;
    }
    return 0;
}

/* ---- event builders ------------------------------------------------------ */

static inline seg_event tu_purchase(const char *event_id, const char *customer_id,
                                    int64_t ts, int64_t amount, const char *order_id)
{
    seg_event e = SEG_EVENT_INIT;
    e.kind = SEG_EVENT_PURCHASE;
    e.event_id = event_id;
    e.customer_id = customer_id;
    e.ts = ts;
    e.amount = amount;
    e.order_id = order_id;
    return e;
}

static inline seg_event tu_refund(const char *event_id, const char *customer_id,
                                  int64_t ts, int64_t amount, const char *refund_of)
{
    seg_event e = SEG_EVENT_INIT;
    e.kind = SEG_EVENT_REFUND;
    e.event_id = event_id;
    e.customer_id = customer_id;
    e.ts = ts;
    e.amount = amount;
    e.refund_of = refund_of;
    return e;
}

static inline seg_event tu_engagement(const char *event_id, const char *customer_id,
                                      int64_t ts, const char *name)
{
    seg_event e = SEG_EVENT_INIT;
    e.kind = SEG_EVENT_ENGAGEMENT;
    e.event_id = event_id;
    e.customer_id = customer_id;
    e.ts = ts;
    e.name = name;
    return e;
}

/* ---- customer lookups ---------------------------------------------------- */

/* aggregates of a customer that must exist */
#define TU_GET(db, id, infop) do { \
        seg_customer_info tu_i_ = SEG_CUSTOMER_INFO_INIT; \
        TU_OK(db, seg_customer_get(&tu_i_, db, id)); \
        *(infop) = tu_i_; \
    } while (0)

/* compare every aggregate of two infos (not the id pointer); returns the
 * name of the first field that differs, or NULL */
static inline const char *tu_info_diff(const seg_customer_info *a, const seg_customer_info *b)
{
#define TU_CMP_(f) if (a->f != b->f) return #f
    TU_CMP_(orders);
    TU_CMP_(purchase_days);
    TU_CMP_(first_purchase);
    TU_CMP_(last_purchase);
    TU_CMP_(revenue);
    TU_CMP_(net_revenue);
    TU_CMP_(refunds);
    TU_CMP_(units);
    TU_CMP_(events);
    TU_CMP_(engagements);
    TU_CMP_(first_seen);
    TU_CMP_(last_seen);
#undef TU_CMP_
    return NULL;
}

#define TU_INFO_EQ(a, b) do { \
        const char *tu_f_ = tu_info_diff((a), (b)); \
        ck_assert_msg(tu_f_ == NULL, "aggregate %s differs", tu_f_ ? tu_f_ : ""); \
    } while (0)

static inline void tu_info_print(char *buf, size_t size, const seg_customer_info *i)
{
    snprintf(buf, size,
             "orders=%" PRIu64 " days=%" PRIu64 " first=%" PRId64 " last=%" PRId64
             " revenue=%" PRId64 " net=%" PRId64 " refunds=%" PRId64 " units=%" PRId64
             " events=%" PRIu64 " engagements=%" PRIu64 " first_seen=%" PRId64
             " last_seen=%" PRId64,
             i->orders, i->purchase_days, i->first_purchase, i->last_purchase,
             i->revenue, i->net_revenue, i->refunds, i->units, i->events,
             i->engagements, i->first_seen, i->last_seen);
}

/* ---- snapshots ----------------------------------------------------------- */

typedef struct tu_cust_snap {
    char id[SEG_ID_MAX + 1];
    seg_customer_info info;
} tu_cust_snap;

typedef struct tu_snapshot {
    uint64_t event_count;
    uint64_t customer_count;
    int rc_customers;          /* seg_customer_foreach status */
    int rc_events;             /* seg_event_foreach status */
    size_t n, cap;
    tu_cust_snap *c;           /* customers in visiting order */
    uint64_t events_seen;      /* events visited by seg_event_foreach */
    uint64_t event_digest;     /* FNV-1a over every field of every event, in order */
    uint64_t event_sum;        /* sum of per-event hashes: independent of the order */
} tu_snapshot;

static inline uint64_t tu_fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = (const unsigned char *)data;
    size_t i;
    for (i = 0; i < n; i++) {
        h ^= p[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

static inline uint64_t tu_fnv_str(uint64_t h, const char *s)
{
    static const unsigned char null_mark = 0xFF, end_mark = 0;
    if (!s)
        return tu_fnv(h, &null_mark, 1);
    h = tu_fnv(h, s, strlen(s));
    return tu_fnv(h, &end_mark, 1);
}

static inline uint64_t tu_event_hash(uint64_t h, const seg_event_info *e)
{
    h = tu_fnv(h, &e->kind, sizeof e->kind);
    h = tu_fnv(h, &e->quantity, sizeof e->quantity);
    h = tu_fnv_str(h, e->event_id);
    h = tu_fnv_str(h, e->customer_id);
    h = tu_fnv(h, &e->ts, sizeof e->ts);
    h = tu_fnv(h, &e->amount, sizeof e->amount);
    h = tu_fnv_str(h, e->order_id);
    h = tu_fnv_str(h, e->channel);
    h = tu_fnv_str(h, e->category);
    h = tu_fnv_str(h, e->sku);
    h = tu_fnv_str(h, e->refund_of);
    h = tu_fnv_str(h, e->name);
    return h;
}

static inline int tu_snap_customer_cb(const seg_customer_info *ci, void *payload)
{
    tu_snapshot *s = (tu_snapshot *)payload;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        tu_cust_snap *c = (tu_cust_snap *)realloc(s->c, cap * sizeof *c);
        if (!c)
            abort();
        s->c = c;
        s->cap = cap;
    }
    memset(&s->c[s->n], 0, sizeof s->c[s->n]);
    if (ci->customer_id)
        snprintf(s->c[s->n].id, sizeof s->c[s->n].id, "%s", ci->customer_id);
    s->c[s->n].info = *ci;
    s->c[s->n].info.customer_id = NULL;
    s->n++;
    return 0;
}

static inline int tu_snap_event_cb(const seg_event_info *e, void *payload)
{
    tu_snapshot *s = (tu_snapshot *)payload;
    s->events_seen++;
    s->event_digest = tu_event_hash(s->event_digest, e);
    s->event_sum += tu_event_hash(UINT64_C(14695981039346656037), e);
    return 0;
}

/* Capture everything observable.  flags: 0 or SEG_CUSTOMER_SORTED. */
static inline void tu_snap_take(tu_snapshot *s, seg_db *db, uint32_t flags)
{
    memset(s, 0, sizeof *s);
    s->event_digest = UINT64_C(14695981039346656037);
    s->event_count = seg_event_count(db);
    s->customer_count = seg_customer_count(db);
    s->rc_customers = seg_customer_foreach(db, flags, tu_snap_customer_cb, s);
    s->rc_events = seg_event_foreach(db, NULL, tu_snap_event_cb, s);
}

static inline void tu_snap_free(tu_snapshot *s)
{
    free(s->c);
    s->c = NULL;
    s->n = s->cap = 0;
}

/* NULL when equal, else a description of the first difference (static buffer).
 * with_events: 0 customers and counts only; 1 also every stored event in
 * order; 2 also every stored event, in any order. */
static inline const char *tu_snap_diff(const tu_snapshot *a, const tu_snapshot *b, int with_events)
{
    static char why[2048];
    size_t i;
    if (a->event_count != b->event_count) {
        snprintf(why, sizeof why, "seg_event_count %" PRIu64 " -> %" PRIu64,
                 a->event_count, b->event_count);
        return why;
    }
    if (a->customer_count != b->customer_count) {
        snprintf(why, sizeof why, "seg_customer_count %" PRIu64 " -> %" PRIu64,
                 a->customer_count, b->customer_count);
        return why;
    }
    if (a->rc_customers != b->rc_customers || a->rc_events != b->rc_events) {
        snprintf(why, sizeof why, "foreach status changed");
        return why;
    }
    if (a->n != b->n) {
        snprintf(why, sizeof why, "customers visited %zu -> %zu", a->n, b->n);
        return why;
    }
    for (i = 0; i < a->n; i++) {
        const char *f;
        if (strcmp(a->c[i].id, b->c[i].id) != 0) {
            snprintf(why, sizeof why, "customer #%zu: id \"%s\" -> \"%s\"", i,
                     a->c[i].id, b->c[i].id);
            return why;
        }
        f = tu_info_diff(&a->c[i].info, &b->c[i].info);
        if (f) {
            char x[300], y[300];
            tu_info_print(x, sizeof x, &a->c[i].info);
            tu_info_print(y, sizeof y, &b->c[i].info);
            snprintf(why, sizeof why, "customer \"%s\": %s differs: {%s} -> {%s}",
                     a->c[i].id, f, x, y);
            return why;
        }
    }
    if (with_events) {
        if (a->events_seen != b->events_seen) {
            snprintf(why, sizeof why, "events visited %" PRIu64 " -> %" PRIu64,
                     a->events_seen, b->events_seen);
            return why;
        }
        if (with_events == 1 && a->event_digest != b->event_digest) {
            snprintf(why, sizeof why, "stored events changed (digest)");
            return why;
        }
        if (a->event_sum != b->event_sum) {
            snprintf(why, sizeof why, "stored events changed (content)");
            return why;
        }
    }
    return NULL;
}

/* Take a snapshot now and compare with `before`; frees the new one. */
#define TU_UNCHANGED(db, before) do { \
        tu_snapshot tu_after_; \
        const char *tu_why_; \
        tu_snap_take(&tu_after_, (db), 0); \
        tu_why_ = tu_snap_diff((before), &tu_after_, 1); \
        ck_assert_msg(tu_why_ == NULL, "database changed: %s", tu_why_ ? tu_why_ : ""); \
        tu_snap_free(&tu_after_); \
    } while (0)

/* ---- event collection ---------------------------------------------------- */

typedef struct tu_ev_copy {
    uint32_t kind;
    int32_t quantity;
    int64_t ts, amount;
    int has[8];               /* which of the strings below were non-NULL */
    char event_id[SEG_ID_MAX + 1], customer_id[SEG_ID_MAX + 1], order_id[SEG_ID_MAX + 1];
    char channel[SEG_ID_MAX + 1], category[SEG_ID_MAX + 1], sku[SEG_ID_MAX + 1];
    char refund_of[SEG_ID_MAX + 1], name[SEG_ID_MAX + 1];
    size_t info_struct_size;
} tu_ev_copy;

enum { TU_H_EVENT_ID, TU_H_CUSTOMER_ID, TU_H_ORDER_ID, TU_H_CHANNEL, TU_H_CATEGORY,
       TU_H_SKU, TU_H_REFUND_OF, TU_H_NAME };

typedef struct tu_ev_list {
    size_t n, cap;
    tu_ev_copy *e;
    size_t stop_after;        /* 0: never stop */
} tu_ev_list;

static inline void tu_copy_str(char *dst, int *has, const char *src)
{
    *has = src != NULL;
    dst[0] = '\0';
    if (src)
        snprintf(dst, SEG_ID_MAX + 1, "%s", src);
}

static inline void tu_ev_from_info(tu_ev_copy *c, const seg_event_info *e)
{
    memset(c, 0, sizeof *c);
    c->kind = e->kind;
    c->quantity = e->quantity;
    c->ts = e->ts;
    c->amount = e->amount;
    c->info_struct_size = e->struct_size;
    tu_copy_str(c->event_id, &c->has[TU_H_EVENT_ID], e->event_id);
    tu_copy_str(c->customer_id, &c->has[TU_H_CUSTOMER_ID], e->customer_id);
    tu_copy_str(c->order_id, &c->has[TU_H_ORDER_ID], e->order_id);
    tu_copy_str(c->channel, &c->has[TU_H_CHANNEL], e->channel);
    tu_copy_str(c->category, &c->has[TU_H_CATEGORY], e->category);
    tu_copy_str(c->sku, &c->has[TU_H_SKU], e->sku);
    tu_copy_str(c->refund_of, &c->has[TU_H_REFUND_OF], e->refund_of);
    tu_copy_str(c->name, &c->has[TU_H_NAME], e->name);
}

static inline int tu_ev_collect_cb(const seg_event_info *e, void *payload)
{
    tu_ev_list *l = (tu_ev_list *)payload;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        tu_ev_copy *p = (tu_ev_copy *)realloc(l->e, cap * sizeof *p);
        if (!p)
            abort();
        l->e = p;
        l->cap = cap;
    }
    tu_ev_from_info(&l->e[l->n++], e);
    return l->stop_after && l->n >= l->stop_after;
}

static inline void tu_ev_list_free(tu_ev_list *l)
{
    free(l->e);
    memset(l, 0, sizeof *l);
}

/* true when s is "~" followed by 32 hex digits */
static inline int tu_is_derived_id(const char *s)
{
    size_t i;
    if (!s || s[0] != '~' || strlen(s) != 33)
        return 0;
    for (i = 1; i < 33; i++)
        if (!isxdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

/* ---- a counting allocator ------------------------------------------------ */

typedef struct tu_alloc {
    long fail_after;        /* < 0: never fail; else fail once `attempts` exceeds it */
    unsigned long attempts; /* allocation attempts (malloc, and realloc that allocates or grows) */
    unsigned long failures; /* attempts refused */
    long live_blocks;       /* blocks allocated and not yet freed */
    long long live_bytes;   /* bytes allocated and not yet freed */
    unsigned long mallocs, reallocs, frees; /* calls of each function */
} tu_alloc;

#define TU_HDR 32 /* header before each block: holds the size, keeps 16-byte alignment */

static inline int tu_alloc_refuse(tu_alloc *a)
{
    a->attempts++;
    if (a->fail_after >= 0 && a->attempts > (unsigned long)a->fail_after) {
        a->failures++;
        return 1;
    }
    return 0;
}

static inline void *tu_malloc(size_t size, void *ud)
{
    tu_alloc *a = (tu_alloc *)ud;
    unsigned char *p;
    a->mallocs++;
    if (tu_alloc_refuse(a))
        return NULL;
    p = (unsigned char *)malloc(TU_HDR + size);
    if (!p)
        return NULL;
    memcpy(p, &size, sizeof size);
    a->live_blocks++;
    a->live_bytes += (long long)size;
    return p + TU_HDR;
}

static inline void tu_free(void *ptr, void *ud)
{
    tu_alloc *a = (tu_alloc *)ud;
    unsigned char *p;
    size_t size;
    a->frees++;
    if (!ptr)
        return;
    p = (unsigned char *)ptr - TU_HDR;
    memcpy(&size, p, sizeof size);
    a->live_blocks--;
    a->live_bytes -= (long long)size;
    memset(p, 0xDD, TU_HDR + size); /* catch use after free */
    free(p);
}

static inline void *tu_realloc(void *ptr, size_t size, void *ud)
{
    tu_alloc *a = (tu_alloc *)ud;
    unsigned char *p, *q;
    size_t old;
    if (!ptr) {
        a->mallocs--; /* counted as realloc below */
        a->reallocs++;
        return tu_malloc(size, ud);
    }
    a->reallocs++;
    p = (unsigned char *)ptr - TU_HDR;
    memcpy(&old, p, sizeof old);
    if (size > old && tu_alloc_refuse(a))
        return NULL;
    q = (unsigned char *)realloc(p, TU_HDR + size);
    if (!q)
        return NULL;
    memcpy(q, &size, sizeof size);
    a->live_bytes += (long long)size - (long long)old;
    return q + TU_HDR;
}

static inline seg_allocator tu_allocator(tu_alloc *a)
{
    seg_allocator al;
    memset(&al, 0, sizeof al);
    al.struct_size = sizeof al;
    al.malloc = tu_malloc;
    al.realloc = tu_realloc;
    al.free = tu_free;
    al.ud = a;
    return al;
}

/* ---- misc ---------------------------------------------------------------- */

/* deterministic PRNG (xorshift64*) */
static inline uint64_t tu_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(2685821657736338717);
}

static inline void tu_shuffle(size_t *idx, size_t n, uint64_t seed)
{
    uint64_t st = seed ? seed : 1;
    size_t i;
    for (i = n; i > 1; i--) {
        size_t j = (size_t)(tu_rand(&st) % i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

/* a string of n bytes 'x' (caller frees with free()) */
static inline char *tu_repeat(char ch, size_t n)
{
    char *s = (char *)malloc(n + 1);
    if (!s)
        abort();
    memset(s, ch, n);
    s[n] = '\0';
    return s;
}

#endif /* SEG_TESTUTIL_H */
