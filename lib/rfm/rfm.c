/*
 * RFM: per-customer recency, frequency, monetary and historic value, the
 * calibration of the thresholds, and the scoring.
 *
 * Where the values come from, per customer:
 * - the store's incremental aggregates (orders, last purchase, revenue,
 *   refunds) when every event of the customer counts: all before T and, with
 *   a window, all inside it; or when all are before the window (the window
 *   part is then empty).  With no window and the default T this is every
 *   customer: no event is read.
 * - otherwise from the customer's events: a walk of their chain when few
 *   customers need it, else one sequential pass over every event, with a
 *   bitmap over the order-id references counting each order once (an order
 *   id belongs to one customer).
 */
#include "core/core-private.h"
#include "rfm-private.h"

#include <stdlib.h>

#define OPTS_V1_SIZE sizeof(seg_rfm_options)
#define INFO_V1_SIZE sizeof(seg_rfm_info)
#define DAY INT64_C(86400)

SEG_API int seg_rfm_options_init(seg_rfm_options *opts, size_t struct_size)
{
    seg_rfm_options d = SEG_RFM_OPTIONS_INIT;
    return seg__options_init(opts, struct_size, &d, OPTS_V1_SIZE);
}

/* ---------------------------------------------------------- options */

typedef struct rfm_cfg {
    int64_t T;          /* reference time: events with ts < T count */
    int64_t wstart;     /* window start (ts >= wstart), INT64_MIN without window */
    bool windowed;
    bool auto_as_of;
    int64_t window;
    uint32_t bins, measure;
    const seg_rfm_thresholds *given;
    const int64_t *fixed[SEG__RFM_DIMS];
} rfm_cfg;

static const char *const dim_name[SEG__RFM_DIMS] = { "fixed_r", "fixed_f", "fixed_m" };

static int read_opts(seg_db *db, const seg_rfm_options *opts, rfm_cfg *cfg)
{
    seg_rfm_options o = SEG_RFM_OPTIONS_INIT;
    if (opts && seg__struct_in(&o, sizeof o, opts, opts->struct_size, OPTS_V1_SIZE) != SEG_OK)
        return seg__error(db, SEG_EVERSION,
                          "seg_rfm_options: unsupported struct_size %zu (1.0 layout is %zu)",
                          opts->struct_size, (size_t)OPTS_V1_SIZE);
    memset(cfg, 0, sizeof *cfg);
    if (o.as_of != SEG_RFM_AS_OF_AUTO && (o.as_of < SEG_TIME_MIN || o.as_of > SEG_TIME_MAX + 1))
        return seg__error(db, SEG_ERANGE, "as_of %lld: out of range", (long long)o.as_of);
    const seg_rfm_thresholds *t = o.thresholds;
    if (t) {
        const seg_rfm_options def = SEG_RFM_OPTIONS_INIT;
        if (o.bins != def.bins && o.bins != t->bins)
            return seg__error(db, SEG_EINVAL, "bins %u: the thresholds have %u bins",
                              (unsigned)o.bins, (unsigned)t->bins);
        if (o.monetary != def.monetary && o.monetary != t->monetary)
            return seg__error(db, SEG_EINVAL,
                              "monetary: the thresholds were made with another monetary measure");
        if (o.window != def.window && o.window != t->window)
            return seg__error(db, SEG_EINVAL,
                              "window %lld: the thresholds were made with window %lld",
                              (long long)o.window, (long long)t->window);
        if (o.fixed_r || o.fixed_f || o.fixed_m)
            return seg__error(db, SEG_EINVAL,
                              "fixed_r, fixed_f, fixed_m: not with thresholds (they fix every bound)");
        if (t->exponent != db->exponent)
            return seg__error(db, SEG_EINVAL,
                              "thresholds: money with %d decimals, the database's has %d",
                              t->exponent, db->exponent);
        o.bins = t->bins;
        o.monetary = t->monetary;
        o.window = t->window;
    }
    if (o.bins < 2 || o.bins > SEG_RFM_BINS_MAX)
        return seg__error(db, SEG_EINVAL, "bins %u: must be 2..%d", (unsigned)o.bins,
                          SEG_RFM_BINS_MAX);
    if (o.monetary != SEG_RFM_MONETARY_TOTAL && o.monetary != SEG_RFM_MONETARY_AOV)
        return seg__error(db, SEG_EINVAL, "monetary %u: unknown measure", (unsigned)o.monetary);
    if (o.window < 0 || o.window > SEG_TIME_MAX - SEG_TIME_MIN)
        return seg__error(db, SEG_EINVAL, "window %lld: must be 0 (none) or a positive number of seconds",
                          (long long)o.window);
    const int64_t *fx[SEG__RFM_DIMS] = { o.fixed_r, o.fixed_f, o.fixed_m };
    for (int d = 0; d < SEG__RFM_DIMS; d++) {
        if (!fx[d])
            continue;
        for (uint32_t k = 1; k + 1 < o.bins; k++) {
            bool ok = d == SEG_RFM_R ? fx[d][k] <= fx[d][k - 1] : fx[d][k] >= fx[d][k - 1];
            if (!ok)
                return seg__error(db, SEG_EINVAL, "%s[%u]: must be %s %s[%u]", dim_name[d],
                                  (unsigned)k, d == SEG_RFM_R ? "at most" : "at least",
                                  dim_name[d], (unsigned)k - 1);
        }
        cfg->fixed[d] = fx[d];
    }
    cfg->auto_as_of = o.as_of == SEG_RFM_AS_OF_AUTO;
    cfg->T = o.as_of;
    cfg->window = o.window;
    cfg->windowed = o.window > 0;
    cfg->bins = o.bins;
    cfg->measure = o.monetary;
    cfg->given = t;
    return SEG_OK;
}

/* The start of the day after the last event (0 with no events). */
static int64_t auto_as_of(const seg__store *s)
{
    bool any = false;
    int64_t mx = 0;
    for (uint32_t ci = 0; ci < s->ncusts; ci++) {
        const seg__cust *c = &s->custs[ci];
        if (c->id && c->events && (!any || c->last_seen > mx)) {
            mx = c->last_seen;
            any = true;
        }
    }
    return any ? (seg__day_of(mx) + 1) * DAY : 0;
}

static void set_time(rfm_cfg *cfg, const seg__store *s)
{
    if (cfg->auto_as_of)
        cfg->T = auto_as_of(s);
    cfg->wstart = cfg->windowed ? cfg->T - cfg->window : INT64_MIN;
}

/* ---------------------------------------------------- per customer */

typedef struct cvals {
    int64_t w_last;     /* last purchase in the window (when w_orders) */
    int64_t w_net;      /* net revenue in the window */
    int64_t l_first, l_last, l_net; /* before T */
    uint32_t w_orders, l_orders;
} cvals;

enum { SRC_SKIP = 0, SRC_AGG_ALL, SRC_AGG_NOWIN, SRC_WALK };

/* Where customer c's values come from. */
static uint8_t classify(const rfm_cfg *cfg, const seg__cust *c)
{
    if (!c->id)
        return SRC_SKIP;               /* erased */
    if (!c->events)
        return SRC_AGG_ALL;            /* a prospect with no events */
    if (c->first_seen >= cfg->T)
        return SRC_SKIP;               /* not a customer yet at T */
    if (c->last_seen < cfg->T) {
        if (c->first_seen >= cfg->wstart)
            return SRC_AGG_ALL;        /* every event counts, in the window too */
        if (c->last_seen < cfg->wstart)
            return SRC_AGG_NOWIN;      /* every event before the window */
    }
    return SRC_WALK;
}

static void from_agg(const seg__cust *c, uint8_t src, cvals *v)
{
    memset(v, 0, sizeof *v);
    v->l_orders = c->orders;
    v->l_net = c->revenue + c->refunds;
    if (c->orders) {
        v->l_first = c->first_purchase;
        v->l_last = c->last_purchase;
    }
    if (src == SRC_AGG_ALL) {
        v->w_orders = v->l_orders;
        v->w_net = v->l_net;
        v->w_last = v->l_last;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint32_t count_distinct(uint64_t *k, size_t n)
{
    if (n < 2)
        return (uint32_t)n;
    if (n <= 16) {
        for (size_t i = 1; i < n; i++) {
            uint64_t x = k[i];
            size_t j = i;
            while (j > 0 && k[j - 1] > x) {
                k[j] = k[j - 1];
                j--;
            }
            k[j] = x;
        }
    } else {
        qsort(k, n, sizeof *k, cmp_u64);
    }
    uint32_t d = 1;
    for (size_t i = 1; i < n; i++)
        d += k[i] != k[i - 1];
    return d;
}

typedef struct scratch {
    uint64_t *k;
    size_t cap;
} scratch;

/* Walk customer ci's events.  SEG_OK or SEG_ENOMEM. */
static int walk_cust(const seg__alloc *a, const seg__store *s, const rfm_cfg *cfg, uint32_t ci,
                     cvals *v, scratch *sc)
{
    const seg__cust *c = &s->custs[ci];
    size_t need = (size_t)c->events * 2;
    if (need > sc->cap) {
        uint64_t *k = seg__realloc_array(a, sc->k, need, sizeof *k);
        if (!k)
            return SEG_ENOMEM;
        sc->k = k;
        sc->cap = need;
    }
    uint64_t *lk = sc->k, *wk = sc->k + c->events;
    size_t nl = 0, nw = 0;
    memset(v, 0, sizeof *v);
    const int64_t T = cfg->T, ws = cfg->wstart;
    for (uint32_t i = c->head; i != SEG__NONE; i = seg__ev_next(s, i)) {
        uint32_t kind = seg__ev_kind(s, i);
        if (kind != SEG_EVENT_PURCHASE && kind != SEG_EVENT_REFUND)
            continue;
        int64_t ts = seg__ev_ts(s, i);
        if (ts >= T)
            continue;
        int64_t amt = seg__ev_amount(s, i);
        bool in_w = ts >= ws;
        v->l_net += amt;
        if (in_w)
            v->w_net += amt;
        if (kind != SEG_EVENT_PURCHASE || amt <= 0 || nl >= c->events)
            continue;
        uint32_t ref = seg__ev_ref(s, i);
        uint64_t key = ref ? (uint64_t)ref : (UINT64_C(1) << 32) | i;
        if (!nl || ts < v->l_first)
            v->l_first = ts;
        if (!nl || ts > v->l_last)
            v->l_last = ts;
        lk[nl++] = key;
        if (in_w) {
            if (!nw || ts > v->w_last)
                v->w_last = ts;
            wk[nw++] = key;
        }
    }
    v->l_orders = count_distinct(lk, nl);
    v->w_orders = count_distinct(wk, nw);
    return SEG_OK;
}

/* A set of order-id references (arena refs, which grow with the store), as
 * a bitmap grown on demand. */
typedef struct refset {
    uint8_t *b;
    size_t bytes;
} refset;

/* Add ref; counts it in *count when it is new.  SEG_OK or SEG_ENOMEM. */
static inline int refset_add(const seg__alloc *a, refset *m, uint32_t ref, uint32_t *count)
{
    size_t byte = ref >> 3;
    if (SEG_UNLIKELY(byte >= m->bytes)) {
        size_t nb = m->bytes ? m->bytes * 2 : 1 << 16;
        while (nb <= byte)
            nb *= 2;
        uint8_t *p = seg__realloc(a, m->b, nb);
        if (!p)
            return SEG_ENOMEM;
        memset(p + m->bytes, 0, nb - m->bytes);
        m->b = p;
        m->bytes = nb;
    }
    uint8_t bit = (uint8_t)(1u << (ref & 7));
    if (!(m->b[byte] & bit)) {
        m->b[byte] |= bit;
        (*count)++;
    }
    return SEG_OK;
}

#if defined(__GNUC__)
#define SEG__PREFETCH(p) __builtin_prefetch((p), 1)
#else
#define SEG__PREFETCH(p) ((void)0)
#endif
#define SCAN_AHEAD 16
#define SORTED_AHEAD 32

/* One pass over every event, in storage order, for the customers marked
 * SRC_WALK.  An order id belongs to one customer, so one set of the order
 * references seen (per part: before T, in the window) counts each order
 * once for its customer. */
static int scan_all(const seg__alloc *a, const seg__store *s, const rfm_cfg *cfg,
                    const uint8_t *src, cvals *vals)
{
    refset bl = { NULL, 0 }, bw = { NULL, 0 };
    const bool win = cfg->windowed;
    for (uint32_t ci = 0; ci < s->ncusts; ci++)
        if (src[ci] == SRC_WALK)
            memset(&vals[ci], 0, sizeof vals[ci]);
    const int64_t T = cfg->T, ws = cfg->wstart;
    const uint32_t n = s->nevents;
    int rc = SEG_OK;
    for (uint32_t i = 0; i < n && rc == SEG_OK; i++) {
        if (i + SCAN_AHEAD < n)
            SEG__PREFETCH(&vals[seg__ev_cust(s, i + SCAN_AHEAD)]);
        uint32_t kind = seg__ev_kind(s, i);
        if (kind != SEG_EVENT_PURCHASE && kind != SEG_EVENT_REFUND)
            continue; /* engagement, or an erased event */
        uint32_t ci = seg__ev_cust(s, i);
        if (src[ci] != SRC_WALK)
            continue;
        int64_t ts = seg__ev_ts(s, i);
        if (ts >= T)
            continue;
        int64_t amt = seg__ev_amount(s, i);
        cvals *v = &vals[ci];
        bool in_w = ts >= ws;
        v->l_net += amt;
        if (in_w)
            v->w_net += amt;
        if (kind != SEG_EVENT_PURCHASE || amt <= 0)
            continue;
        uint32_t ref = seg__ev_ref(s, i);
        if (!v->l_orders || ts < v->l_first)
            v->l_first = ts;
        if (!v->l_orders || ts > v->l_last)
            v->l_last = ts;
        if (!ref)
            v->l_orders++; /* an order-less line is an order of its own */
        else
            rc = refset_add(a, &bl, ref, &v->l_orders);
        if (win && in_w && rc == SEG_OK) {
            if (!v->w_orders || ts > v->w_last)
                v->w_last = ts;
            if (!ref)
                v->w_orders++;
            else
                rc = refset_add(a, &bw, ref, &v->w_orders);
        }
    }
    if (!win) /* no window: the window part is everything before T */
        for (uint32_t ci = 0; ci < s->ncusts; ci++)
            if (src[ci] == SRC_WALK) {
                vals[ci].w_orders = vals[ci].l_orders;
                vals[ci].w_last = vals[ci].l_last;
            }
    seg__free(a, bl.b);
    seg__free(a, bw.b);
    return rc;
}

/* ------------------------------------------------ values and scores */

/* a / b rounded half away from zero (b > 0) */
static int64_t div_round(int64_t a, uint64_t b)
{
    int64_t bb = (int64_t)b;
    int64_t q = a / bb, r = a % bb;
    uint64_t r2 = (uint64_t)(r < 0 ? -r : r) * 2;
    if (r2 >= b)
        q += a < 0 ? -1 : 1;
    return q;
}

/* The three scoring inputs of an active customer, as goodness values. */
static void goods(const rfm_cfg *cfg, const cvals *v, int64_t *g)
{
    int64_t rec = seg__day_of(cfg->T) - seg__day_of(v->w_last);
    g[SEG_RFM_R] = seg__rfm_good(SEG_RFM_R, rec);
    g[SEG_RFM_F] = v->w_orders;
    g[SEG_RFM_M] = cfg->measure == SEG_RFM_MONETARY_AOV ? div_round(v->w_net, v->w_orders)
                                                        : v->w_net;
}

static void fill_info(const rfm_cfg *cfg, const seg_rfm_thresholds *t, const cvals *v,
                      const char *id, seg_rfm_info *o)
{
    /* every field assigned (no memset: this runs once per customer) */
    o->struct_size = sizeof *o;
    o->customer_id = id;
    o->as_of = cfg->T;
    o->frequency = v->w_orders;
    if (v->w_orders) {
        int64_t g[SEG__RFM_DIMS];
        goods(cfg, v, g);
        o->status = SEG_RFM_ACTIVE;
        o->recency_days = ~g[SEG_RFM_R];
        o->monetary = g[SEG_RFM_M];
        o->r = seg__rfm_score_lo(t->lo[SEG_RFM_R], t->bins - 1, g[SEG_RFM_R]);
        o->f = seg__rfm_score_lo(t->lo[SEG_RFM_F], t->bins - 1, g[SEG_RFM_F]);
        o->m = seg__rfm_score_lo(t->lo[SEG_RFM_M], t->bins - 1, g[SEG_RFM_M]);
    } else {
        o->status = v->l_orders ? SEG_RFM_LAPSED : SEG_RFM_PROSPECT;
        o->recency_days = -1;
        o->monetary = v->w_net;
        o->r = o->f = o->m = 0;
    }
    o->orders = v->l_orders;
    o->total_value = v->l_net;
    if (v->l_orders) {
        o->average_order_value = div_round(v->l_net, v->l_orders);
        o->first_purchase = v->l_first;
        o->last_purchase = v->l_last;
        o->tenure_days = seg__day_of(cfg->T) - seg__day_of(v->l_first);
        o->purchase_rate = (double)v->l_orders * 365.0 /
                           (double)(o->tenure_days > 0 ? o->tenure_days : 1);
    } else {
        o->average_order_value = 0;
        o->first_purchase = o->last_purchase = 0;
        o->tenure_days = -1;
        o->purchase_rate = 0.0;
    }
}

/* Fixed bounds into t->lo. */
static void set_fixed(seg_rfm_thresholds *t, uint32_t d, const int64_t *b)
{
    for (uint32_t k = 0; k + 1 < t->bins; k++)
        t->lo[d][k] = seg__rfm_good(d, b[k]);
    t->fixed_mask |= 1u << d;
}

/* ---------------------------------------------------------- sorting */

static inline const uint8_t *cust_id(const seg__store *s, const seg__cust *c)
{
    if (c->idlen <= SEG__ID_INLINE)
        return (const uint8_t *)c->idin;
    return (const uint8_t *)seg__arena_str(&s->arena, c->id).p;
}

/* 8 bytes of the id from offset `off`, big-endian, zero-padded. */
static inline uint64_t id_key(const seg__store *s, uint32_t ci, size_t off)
{
    const seg__cust *c = &s->custs[ci];
    const uint8_t *p = cust_id(s, c);
    size_t n = c->idlen;
    uint64_t k = 0;
    for (size_t i = 0; i < 8; i++)
        k = k << 8 | (off + i < n ? p[off + i] : 0);
    return k;
}

static int cmp_id_bytes(const seg__store *s, uint32_t a, uint32_t b)
{
    const seg__cust *x = &s->custs[a], *y = &s->custs[b];
    size_t n = x->idlen < y->idlen ? x->idlen : y->idlen;
    int c = memcmp(cust_id(s, x), cust_id(s, y), n);
    return c ? c : (x->idlen > y->idlen) - (x->idlen < y->idlen);
}

typedef struct kv {
    uint64_t k;
    uint32_t v;
} kv;

/* Sort idx[0..n) by id bytes from `off` on (earlier bytes all equal):
 * radix on 8 bytes at a time, insertion sort for small ranges. */
static int sort_ids_from(const seg__alloc *a, const seg__store *s, uint32_t *idx, size_t n,
                         size_t off, kv *buf, kv *tmp)
{
    if (n < 2)
        return SEG_OK;
    if (n <= 24) {
        for (size_t i = 1; i < n; i++) {
            uint32_t x = idx[i];
            size_t j = i;
            while (j > 0 && cmp_id_bytes(s, idx[j - 1], x) > 0) {
                idx[j] = idx[j - 1];
                j--;
            }
            idx[j] = x;
        }
        return SEG_OK;
    }
    for (size_t i = 0; i < n; i++) {
        buf[i].k = id_key(s, idx[i], off);
        buf[i].v = idx[i];
    }
    enum { BITS = 11, NB = 1 << BITS, PASSES = 6 };
    uint32_t *h = seg__calloc(a, (size_t)PASSES * NB, sizeof *h);
    if (!h)
        return SEG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = buf[i].k;
        for (int p = 0; p < PASSES; p++)
            h[p * NB + ((k >> (p * BITS)) & (NB - 1))]++;
    }
    kv *src = buf, *dst = tmp;
    for (int p = 0; p < PASSES; p++) {
        uint32_t *hp = h + p * NB;
        if (hp[(src[0].k >> (p * BITS)) & (NB - 1)] == n)
            continue;
        uint32_t sum = 0;
        for (int b = 0; b < NB; b++) {
            uint32_t c = hp[b];
            hp[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[hp[(src[i].k >> (p * BITS)) & (NB - 1)]++] = src[i];
        kv *t = src;
        src = dst;
        dst = t;
    }
    seg__free(a, h);
    for (size_t i = 0; i < n; i++)
        idx[i] = src[i].v;
    /* runs of equal keys: ids equal so far, continue on the next 8 bytes
     * (at most one id of a run ends within these 8 bytes: ids are unique
     * and hold no NUL, so it sorts first with key 0 next time) */
    int rc = SEG_OK;
    size_t start = 0;
    for (size_t i = 1; i <= n && rc == SEG_OK; i++) {
        if (i < n && src[i].k == src[start].k)
            continue;
        if (i - start > 1)
            rc = sort_ids_from(a, s, idx + start, i - start, off + 8, buf + start, tmp + start);
        start = i;
    }
    return rc;
}

/* ------------------------------------------------------------ the run */

typedef struct rfm_run {
    seg_db *db;
    rfm_cfg cfg;
    uint8_t *src;          /* per customer: SRC_* */
    cvals *vals;           /* per customer, when some walk; else NULL */
    uint32_t nwalk;
} rfm_run;

static void run_free(rfm_run *r)
{
    seg__free(&r->db->alloc, r->src);
    seg__free(&r->db->alloc, r->vals);
}

/* a customer ready for the callback (the id points into the store) */
typedef struct outrow {
    cvals v;
    const uint8_t *id;
    size_t idlen;
} outrow;
#define OUT_BLOCK 1024

static inline void get_vals(const rfm_run *r, uint32_t ci, cvals *v)
{
    uint8_t src = r->src[ci];
    if (src == SRC_WALK)
        *v = r->vals[ci];
    else
        from_agg(&r->db->store.custs[ci], src, v);
}

/* Classify every customer and compute the values of those that need their
 * events. */
static int compute_all(rfm_run *r)
{
    seg_db *db = r->db;
    const seg__alloc *a = &db->alloc;
    const seg__store *s = &db->store;
    uint32_t n = s->ncusts;
    r->src = seg__malloc(a, (size_t)n + 1);
    if (!r->src)
        return SEG_ENOMEM;
    uint64_t walk_events = 0;
    r->nwalk = 0;
    for (uint32_t ci = 0; ci < n; ci++) {
        uint8_t x = classify(&r->cfg, &s->custs[ci]);
        r->src[ci] = x;
        if (x == SRC_WALK) {
            r->nwalk++;
            walk_events += s->custs[ci].events;
        }
    }
    if (!r->nwalk)
        return SEG_OK;
    r->vals = seg__malloc(a, (size_t)n * sizeof *r->vals);
    if (!r->vals)
        return SEG_ENOMEM;
    /* a chain walk reads scattered memory (about one cache miss per
     * field): worth it only for a small share of the events */
    if (walk_events * 16 < s->live_events) {
        scratch sc = { NULL, 0 };
        int rc = SEG_OK;
        for (uint32_t ci = 0; ci < n && rc == SEG_OK; ci++)
            if (r->src[ci] == SRC_WALK)
                rc = walk_cust(a, s, &r->cfg, ci, &r->vals[ci], &sc);
        seg__free(a, sc.k);
        return rc;
    }
    return scan_all(a, s, &r->cfg, r->src, r->vals);
}

/* Calibrate the dimensions that are neither fixed nor given. */
static int calibrate(rfm_run *r, seg_rfm_thresholds *t)
{
    const seg__alloc *a = &r->db->alloc;
    const seg__store *s = &r->db->store;
    uint32_t todo = 0;
    for (int d = 0; d < SEG__RFM_DIMS; d++)
        if (!r->cfg.fixed[d])
            todo |= 1u << d;
    uint32_t n = s->ncusts;
    uint64_t active = 0;
    for (uint32_t ci = 0; ci < n; ci++) {
        uint8_t x = r->src[ci];
        if (x == SRC_SKIP)
            continue;
        if (x == SRC_WALK ? r->vals[ci].w_orders != 0
                          : x == SRC_AGG_ALL && s->custs[ci].orders != 0)
            active++;
    }
    t->active = active;
    if (!todo)
        return SEG_OK;
    int64_t *col[SEG__RFM_DIMS] = { NULL, NULL, NULL };
    int rc = SEG_OK;
    for (int d = 0; d < SEG__RFM_DIMS; d++)
        if ((todo & (1u << d)) &&
            !(col[d] = seg__malloc(a, (size_t)(active ? active : 1) * sizeof(int64_t))))
            rc = SEG_ENOMEM;
    if (rc == SEG_OK) {
        size_t k = 0;
        for (uint32_t ci = 0; ci < n; ci++) {
            uint8_t x = r->src[ci];
            if (x == SRC_SKIP || x == SRC_AGG_NOWIN)
                continue;
            cvals v;
            get_vals(r, ci, &v);
            if (!v.w_orders)
                continue;
            int64_t g[SEG__RFM_DIMS];
            goods(&r->cfg, &v, g);
            for (int d = 0; d < SEG__RFM_DIMS; d++)
                if (col[d])
                    col[d][k] = g[d];
            k++;
        }
        for (int d = 0; d < SEG__RFM_DIMS && rc == SEG_OK; d++) {
            if (!col[d])
                continue;
            seg__rfm_groups g;
            rc = seg__rfm_group(a, col[d], (size_t)active, &g);
            if (rc == SEG_OK) {
                rc = seg__rfm_cut(a, &g, t->bins, t->lo[d]);
                seg__rfm_groups_free(a, &g);
            }
            seg__free(a, col[d]);
            col[d] = NULL;
        }
    }
    for (int d = 0; d < SEG__RFM_DIMS; d++)
        seg__free(a, col[d]);
    return rc;
}

static int rfm_foreach(seg_rfm_thresholds **t_out, seg_db *db, const seg_rfm_options *opts,
                       uint32_t flags, seg_rfm_cb cb, void *payload)
{
    if (t_out)
        *t_out = NULL;
    if (!db)
        return SEG_EINVAL;
    seg__error_clear(db);
    if (flags & ~SEG_RFM_SORTED)
        return seg__error(db, SEG_EINVAL, "unknown flags 0x%x", (unsigned)flags);
    rfm_run r;
    memset(&r, 0, sizeof r);
    r.db = db;
    int rc = read_opts(db, opts, &r.cfg);
    if (rc != SEG_OK)
        return rc;
    const seg__alloc *a = &db->alloc;
    const seg__store *s = &db->store;
    set_time(&r.cfg, s);

    seg_rfm_thresholds *t = seg__rfm_thresholds_new(a);
    if (!t)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    if ((rc = compute_all(&r)) != SEG_OK)
        goto fail;
    if (r.cfg.given) {
        seg__alloc keep = t->alloc;
        *t = *r.cfg.given;
        t->alloc = keep;
    } else {
        t->bins = r.cfg.bins;
        t->monetary = r.cfg.measure;
        t->window = r.cfg.window;
        t->exponent = db->exponent;
        t->as_of = r.cfg.T;
        for (uint32_t d = 0; d < SEG__RFM_DIMS; d++)
            if (r.cfg.fixed[d])
                set_fixed(t, d, r.cfg.fixed[d]);
        if ((rc = calibrate(&r, t)) != SEG_OK)
            goto fail;
    }

    if (cb) {
        uint32_t n = s->ncusts;
        uint32_t *order = NULL;
        size_t cnt = 0;
        if (flags & SEG_RFM_SORTED) {
            order = seg__malloc(a, (size_t)n * sizeof *order + 1);
            kv *buf = seg__malloc(a, (size_t)n * 2 * sizeof *buf + 1);
            if (!order || !buf) {
                seg__free(a, order);
                seg__free(a, buf);
                rc = SEG_ENOMEM;
                goto fail;
            }
            for (uint32_t ci = 0; ci < n; ci++)
                if (r.src[ci] != SRC_SKIP)
                    order[cnt++] = ci;
            rc = sort_ids_from(a, s, order, cnt, 0, buf, buf + n);
            seg__free(a, buf);
            if (rc != SEG_OK) {
                seg__free(a, order);
                goto fail;
            }
        } else {
            cnt = n;
        }
        /* in blocks: first gather the block's customers (scattered reads
         * in a tight loop, where the loads overlap), then call back */
        outrow *blk = seg__malloc(a, OUT_BLOCK * sizeof *blk);
        if (!blk) {
            seg__free(a, order);
            rc = SEG_ENOMEM;
            goto fail;
        }
        char idbuf[SEG_ID_MAX + 1];
        bool was = db->iterating, stop = false;
        db->iterating = true;
        for (size_t k0 = 0; k0 < cnt && !stop; k0 += OUT_BLOCK) {
            size_t m = cnt - k0 < OUT_BLOCK ? cnt - k0 : OUT_BLOCK, nb = 0;
            for (size_t j = 0; j < m; j++) {
                size_t k = k0 + j;
                if (order && k + SORTED_AHEAD < cnt) {
                    /* a customer record spans two cache lines */
                    const char *pc = (const char *)&s->custs[order[k + SORTED_AHEAD]];
                    SEG__PREFETCH(pc);
                    SEG__PREFETCH(pc + sizeof(seg__cust) - 1);
                    if (r.vals)
                        SEG__PREFETCH(&r.vals[order[k + SORTED_AHEAD]]);
                }
                uint32_t ci = order ? order[k] : (uint32_t)k;
                if (r.src[ci] == SRC_SKIP)
                    continue;
                const seg__cust *c = &s->custs[ci];
                outrow *o = &blk[nb++];
                get_vals(&r, ci, &o->v);
                o->id = cust_id(s, c);
                o->idlen = c->idlen;
            }
            for (size_t j = 0; j < nb; j++) {
                memcpy(idbuf, blk[j].id, blk[j].idlen);
                idbuf[blk[j].idlen] = '\0';
                seg_rfm_info info;
                fill_info(&r.cfg, t, &blk[j].v, idbuf, &info);
                if (cb(&info, payload)) {
                    stop = true;
                    break;
                }
            }
        }
        seg__free(a, blk);
        db->iterating = was;
        seg__free(a, order);
    }
    run_free(&r);
    if (t_out)
        *t_out = t;
    else
        seg_rfm_thresholds_free(t);
    return SEG_OK;
fail:
    run_free(&r);
    seg_rfm_thresholds_free(t);
    return rc == SEG_ENOMEM ? seg__error(db, SEG_ENOMEM, "out of memory") : rc;
}

SEG_API int seg_rfm_foreach(seg_rfm_thresholds **thresholds_out, seg_db *db,
                            const seg_rfm_options *opts, uint32_t flags, seg_rfm_cb cb,
                            void *payload)
{
    return rfm_foreach(thresholds_out, db, opts, flags, cb, payload);
}

SEG_API int seg_rfm_calibrate(seg_rfm_thresholds **out, seg_db *db, const seg_rfm_options *opts)
{
    if (out)
        *out = NULL;
    if (db && !out) {
        seg__error_clear(db);
        return seg__error(db, SEG_EINVAL, "out: NULL");
    }
    return rfm_foreach(out, db, opts, 0, NULL, NULL);
}

SEG_API int seg_rfm_get(seg_rfm_info *out, seg_db *db, const seg_rfm_options *opts,
                        const char *customer_id)
{
    if (!db)
        return SEG_EINVAL;
    seg__error_clear(db);
    if (!out)
        return seg__error(db, SEG_EINVAL, "out: NULL");
    if (out->struct_size < INFO_V1_SIZE)
        return seg__error(db, SEG_EVERSION, "seg_rfm_info: unsupported struct_size %zu",
                          out->struct_size);
    rfm_cfg cfg;
    int rc = read_opts(db, opts, &cfg);
    if (rc != SEG_OK)
        return rc;
    seg_rfm_thresholds fixed;
    const seg_rfm_thresholds *t = cfg.given;
    if (!t) {
        if (!cfg.fixed[0] || !cfg.fixed[1] || !cfg.fixed[2])
            return seg__error(db, SEG_EINVAL,
                              "thresholds: NULL (seg_rfm_get scores with given thresholds or "
                              "fixed bounds for r, f and m)");
        memset(&fixed, 0, sizeof fixed);
        fixed.bins = cfg.bins;
        for (uint32_t d = 0; d < SEG__RFM_DIMS; d++)
            set_fixed(&fixed, d, cfg.fixed[d]);
        t = &fixed;
    }
    seg__str id = seg__cstr(customer_id);
    if ((rc = seg__check_id(db, "customer_id", id)) != SEG_OK)
        return rc;
    const seg__store *s = &db->store;
    uint32_t ci = seg__cust_find(s, id);
    if (ci == SEG__NONE)
        return seg__error(db, SEG_ENOTFOUND, "customer_id '%s': no such customer", customer_id);
    set_time(&cfg, s);
    const seg__cust *c = &s->custs[ci];
    uint8_t src = classify(&cfg, c);
    if (src == SRC_SKIP)
        return seg__error(db, SEG_ENOTFOUND,
                          "customer_id '%s': no events before as_of (not a customer yet)",
                          customer_id);
    cvals v;
    if (src == SRC_WALK) {
        scratch sc = { NULL, 0 };
        rc = walk_cust(&db->alloc, s, &cfg, ci, &v, &sc);
        seg__free(&db->alloc, sc.k);
        if (rc != SEG_OK)
            return seg__error(db, SEG_ENOMEM, "out of memory");
    } else {
        from_agg(c, src, &v);
    }
    memcpy(db->idbuf, cust_id(s, c), c->idlen);
    db->idbuf[c->idlen] = '\0';
    seg_rfm_info info;
    fill_info(&cfg, t, &v, db->idbuf, &info);
    return seg__struct_out(out, out->struct_size, &info, sizeof info, INFO_V1_SIZE);
}
