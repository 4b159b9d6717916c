/*
 * Evaluation runs: a definition bound to one `now`, evaluated for every
 * customer (seg_segdef_eval, seg_segdef_refresh, seg_segdef_report_get) or
 * for one (seg_segdef_eval_customer).
 *
 * Windowed measures (spend(30d) ...) come from one of two places:
 * - scan mode (every customer): one sequential pass over the event columns
 *   before the first customer adds each event to per-customer tables, far
 *   faster than following each customer's event chain (whose events lie
 *   scattered over the whole store);
 * - walk mode (one customer, or touched customers): the customer's chain.
 * Both count the same events; distinct orders are exact in both (the scan
 * marks a customer whose order lines arrived interleaved, and that customer
 * is walked).
 *
 * Aggregates are the store's incremental ones, except for a customer with
 * events at or after now, whose aggregates are recomputed from the chain
 * without them.  Nothing is allocated per customer: every buffer is sized
 * before the first customer.
 */
#include "segdef/segdef-private.h"

#include <stdio.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

/* ---- sorting without allocation (heap sort) ---- */

static void sift(uint64_t *v, size_t i, size_t n)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && v[l] > v[m]) m = l;
        if (l + 1 < n && v[l + 1] > v[m]) m = l + 1;
        if (m == i)
            return;
        uint64_t t = v[i]; v[i] = v[m]; v[m] = t;
        i = m;
    }
}

static void sort_u64(uint64_t *v, size_t n)
{
    if (n < 24) {
        for (size_t i = 1; i < n; i++) {
            uint64_t x = v[i];
            size_t j = i;
            while (j > 0 && v[j - 1] > x) {
                v[j] = v[j - 1];
                j--;
            }
            v[j] = x;
        }
        return;
    }
    for (size_t i = n / 2; i-- > 0;)
        sift(v, i, n);
    for (size_t e = n; e-- > 1;) {
        uint64_t t = v[0]; v[0] = v[e]; v[e] = t;
        sift(v, 0, e);
    }
}

static uint64_t count_distinct(uint64_t *v, size_t n)
{
    if (!n)
        return 0;
    sort_u64(v, n);
    uint64_t d = 1;
    for (size_t i = 1; i < n; i++)
        d += v[i] != v[i - 1];
    return d;
}

/* ---- customer ids ---- */

const char *seg__run_cust_id(seg__run *run, uint32_t ci)
{
    const seg__cust *c = &run->store->custs[ci];
    if (c->idlen <= SEG__ID_INLINE) {
        memcpy(run->idbuf, c->idin, c->idlen);
    } else {
        seg__str id = seg__arena_str(&run->store->arena, c->id);
        memcpy(run->idbuf, id.p, id.n);
    }
    run->idbuf[c->idlen] = '\0';
    return run->idbuf;
}

/* The live customers to visit, in creation order or sorted by id; NULL on
 * ENOMEM.  `only` (optional) restricts to customers with only[ci] set. */
static uint32_t *visit_order(seg_db *db, bool sorted, const uint8_t *only, size_t *n_out)
{
    const seg__store *s = &db->store;
    uint32_t *v = seg__malloc(&db->alloc, ((size_t)s->ncusts * (sorted ? 2 : 1) + 1) * sizeof *v);
    if (!v)
        return NULL;
    size_t n = 0;
    for (uint32_t ci = 0; ci < s->ncusts; ci++)
        if (s->custs[ci].id && (!only || only[ci]))
            v[n++] = ci;
    if (sorted)
        seg__cust_sort_by_id(s, v, v + s->ncusts, n);
    *n_out = n;
    return v;
}

/* ---- large work tables ---- */

/* A zeroed table of n * size bytes.  Tables read in random order (one row
 * per customer, indexed by events) are asked to use huge pages where the
 * system offers them (Linux: madvise, when transparent huge pages are in
 * "madvise" mode): with 4 KiB pages nearly every row is a TLB miss, far
 * costlier than the cache miss itself under virtualization. */
static void *big_table(const seg__alloc *a, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    size_t n = count * size;
    void *p = seg__malloc(a, n);
    if (!p)
        return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const size_t huge = (size_t)2 << 20;
    if (n >= 2 * huge) {
        uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1);
        uintptr_t hi = ((uintptr_t)p + n) & ~(uintptr_t)(huge - 1);
        if (hi > lo)
            madvise((void *)lo, hi - lo, MADV_HUGEPAGE); /* advice only: failure is fine */
    }
#endif
    memset(p, 0, n);
    return p;
}

/* ---- one event's contribution to the windowed measures ---- */

static inline bool feat_match(const seg__run *run, uint32_t f, const seg__store *s, uint32_t i,
                              uint32_t kind)
{
    const seg__feature *ft = &run->def->feats[f];
    if (ft->kind == SEG__F_COUNT)
        return kind == SEG_EVENT_ENGAGEMENT && seg__ev_ref(s, i) == run->feat_name[f];
    if (kind == SEG_EVENT_ENGAGEMENT)
        return false;
    if (ft->kind != SEG__F_NET_SPEND && kind != SEG_EVENT_PURCHASE)
        return false;
    if (run->feat_cat[f] && seg__ev_chunk(s, i)->cat[SEG__OFF(i)] != run->feat_cat[f])
        return false;
    if (run->feat_chan[f] && seg__ev_chan(s, i) != run->feat_chan[f])
        return false;
    return true;
}

/* ---- as-of aggregates from the chain ---- */

static void asof_aggregates(seg__run *run, const seg__cust *c, seg__agg *g)
{
    const seg__store *s = run->store;
    memset(g, 0, sizeof *g);
    size_t no = 0, nd = 0;
    for (uint32_t i = c->head; i != SEG__NONE; i = seg__ev_next(s, i)) {
        int64_t ts = seg__ev_ts(s, i);
        if (ts >= run->now)
            continue;
        uint32_t kind = seg__ev_kind(s, i);
        int64_t amt = seg__ev_amount(s, i);
        if (!g->events || ts < g->first_seen) g->first_seen = ts;
        if (!g->events || ts > g->last_seen) g->last_seen = ts;
        g->events++;
        if (kind == SEG_EVENT_ENGAGEMENT) {
            g->engagements++;
        } else if (kind == SEG_EVENT_REFUND) {
            g->refunds += amt;
            g->units -= seg__ev_qty(s, i);
        } else {
            g->units += seg__ev_qty(s, i);
            if (amt > 0) {
                uint32_t ref = seg__ev_ref(s, i);
                run->scr_key[no++] = ref ? (uint64_t)ref : (UINT64_C(1) << 32) | i;
                run->scr_key2[nd++] = (uint64_t)(seg__day_of(ts) + (INT64_C(1) << 40));
                g->revenue += amt;
                if (nd == 1 || ts < g->first_purchase) g->first_purchase = ts;
                if (nd == 1 || ts > g->last_purchase) g->last_purchase = ts;
            }
        }
    }
    g->orders = count_distinct(run->scr_key, no);
    g->days = count_distinct(run->scr_key2, nd);
}

static void agg_of(const seg__cust *c, seg__agg *g)
{
    g->orders = c->orders;
    g->days = c->days;
    g->events = c->events;
    g->engagements = c->engagements;
    g->first_purchase = c->first_purchase;
    g->last_purchase = c->last_purchase;
    g->first_seen = c->first_seen;
    g->last_seen = c->last_seen;
    g->revenue = c->revenue;
    g->refunds = c->refunds;
    g->units = c->units;
}

/* ---- walk mode ---- */

void seg__run_walk_features(seg__run *run, seg__cctx *cc)
{
    const seg__store *s = run->store;
    const seg_segdef *d = run->def;
    const seg__cust *c = cc->cust;
    size_t n = 0;
    for (uint32_t i = c->head; i != SEG__NONE && n < run->scr_cap; i = seg__ev_next(s, i)) {
        if (seg__ev_ts(s, i) < run->now)
            run->scr_idx[n++] = i;
    }
    for (uint32_t f = 0; f < d->nfeats; f++) {
        const seg__feature *ft = &d->feats[f];
        int64_t from = run->feat_from[f], acc = 0;
        size_t no = 0;
        for (size_t k = 0; k < n; k++) {
            uint32_t i = run->scr_idx[k];
            if (seg__ev_ts(s, i) < from)
                continue;
            uint32_t kind = seg__ev_kind(s, i);
            if (!feat_match(run, f, s, i, kind))
                continue;
            int64_t amt = seg__ev_amount(s, i);
            switch (ft->kind) {
            case SEG__F_SPEND:
                if (amt > 0)
                    acc += amt;
                break;
            case SEG__F_NET_SPEND:
                acc += amt;
                break;
            case SEG__F_ORDERS:
                if (amt > 0) {
                    uint32_t ref = seg__ev_ref(s, i);
                    run->scr_key[no++] = ref ? (uint64_t)ref : (UINT64_C(1) << 32) | i;
                }
                break;
            default:
                acc++;
                break;
            }
        }
        if (ft->kind == SEG__F_ORDERS)
            acc = (int64_t)count_distinct(run->scr_key, no);
        run->featv[f] = acc;
    }
    run->featv_ci = cc->ci;
}

/* ---- scan mode ---- */

static int scan_events(seg__run *run)
{
    const seg_segdef *d = run->def;
    const seg__store *s = run->store;
    const seg__alloc *a = &run->db->alloc;
    size_t nc = run->ncusts;
    uint32_t nord = 0, ordidx[256];
    int64_t min_from = INT64_MAX;
    for (uint32_t f = 0; f < d->nfeats; f++) {
        ordidx[f] = d->feats[f].kind == SEG__F_ORDERS ? nord++ : UINT32_MAX;
        if (run->feat_from[f] < min_from)
            min_from = run->feat_from[f];
    }
    /* customer-major rows of whole cache lines: the measures (int64), then
     * for each order measure the largest order ref seen (uint32 pairs), so
     * that an event touches one line */
    size_t words = d->nfeats + (nord + 1) / 2;
    size_t stride = words <= 8 ? 8 : (words + 7) / 8 * 8;
    if (words <= 4)
        stride = words <= 2 ? (words <= 1 ? 1 : 2) : 4; /* a few per line */
    size_t cells = stride * nc + 8;
    seg_segdef *dm = run->def;
    if (cells > SIZE_MAX / sizeof(int64_t))
        return SEG_ENOMEM;
    if (!dm->feat_cache_busy && dm->feat_cache && dm->feat_cache_bytes >= cells * sizeof(int64_t)) {
        memset(dm->feat_cache, 0, cells * sizeof(int64_t));
        run->feat_raw = dm->feat_cache;
    } else {
        run->feat_raw = big_table(a, cells, sizeof(int64_t));
        if (!run->feat_raw)
            return SEG_ENOMEM;
        if (!dm->feat_cache_busy) { /* becomes the definition's (a nested run's stays its own) */
            seg__free(a, dm->feat_cache);
            dm->feat_cache = run->feat_raw;
            dm->feat_cache_bytes = cells * sizeof(int64_t);
        }
    }
    if (run->feat_raw == dm->feat_cache) {
        run->feat_cached = true;
        dm->feat_cache_busy = true;
    }
    run->feat_vals = (int64_t *)(((uintptr_t)run->feat_raw + 63) & ~(uintptr_t)63);
    run->feat_stride = stride;
    if (nord && !(run->recount = seg__calloc(a, nc + 1, 1)))
        return SEG_ENOMEM;
    /* the features by the kinds of events they read (at most 256), with
     * what the inner loops compare in small arrays of their own */
    uint32_t buy[256], eng[256], nbuy = 0, neng = 0;
    int64_t from[256];
    uint32_t fcat[256], fchan[256], fname[256];
    uint8_t fkind[256];
    for (uint32_t f = 0; f < d->nfeats; f++) {
        if (d->feats[f].kind == SEG__F_COUNT)
            eng[neng++] = f;
        else
            buy[nbuy++] = f;
        from[f] = run->feat_from[f];
        fcat[f] = run->feat_cat[f];
        fchan[f] = run->feat_chan[f];
        fname[f] = run->feat_name[f];
        fkind[f] = d->feats[f].kind;
    }
    size_t nf = d->nfeats;
    int64_t *vals = run->feat_vals;
    int64_t now = run->now;
    /* With at most 64 purchase measures, which of them an event counts for
     * is a bit mask: by window (the measures whose window starts at or
     * before the event: a few distinct starts, sorted), by category and by
     * channel (a mask per dictionary value), and by kind. */
    bool masks = nbuy > 0 && nbuy <= 64;
    uint64_t *catmask = NULL, *chanmask = NULL;
    uint64_t net_bits = 0, spend_bits = 0, order_bits = 0;
    int64_t dfrom[65];
    uint64_t dmask[66];
    uint32_t ndfrom = 0;
    uint32_t ncat = s->cat.count + 1, nchan = s->chan.count + 1;
    if (masks) {
        catmask = seg__calloc(a, ncat, sizeof *catmask);
        chanmask = seg__calloc(a, nchan, sizeof *chanmask);
        if (!catmask || !chanmask) {
            seg__free(a, catmask);
            seg__free(a, chanmask);
            return SEG_ENOMEM;
        }
        for (uint32_t k = 0; k < nbuy; k++) {
            uint32_t f = buy[k];
            uint64_t bit = UINT64_C(1) << k;
            if (fcat[f] == 0)
                for (uint32_t v = 0; v < ncat; v++)
                    catmask[v] |= bit;
            else if (fcat[f] < ncat)
                catmask[fcat[f]] |= bit; /* (UINT32_MAX: a category no event has) */
            if (fchan[f] == 0)
                for (uint32_t v = 0; v < nchan; v++)
                    chanmask[v] |= bit;
            else if (fchan[f] < nchan)
                chanmask[fchan[f]] |= bit;
            if (fkind[f] == SEG__F_NET_SPEND)
                net_bits |= bit;
            else if (fkind[f] == SEG__F_SPEND)
                spend_bits |= bit;
            else
                order_bits |= bit;
            /* the distinct window starts, ascending (insertion) */
            uint32_t j = 0;
            while (j < ndfrom && dfrom[j] < from[f])
                j++;
            if (j == ndfrom || dfrom[j] != from[f]) {
                memmove(&dfrom[j + 1], &dfrom[j], (ndfrom - j) * sizeof *dfrom);
                dfrom[j] = from[f];
                ndfrom++;
            }
        }
        /* dmask[j]: the measures whose start is one of the j smallest */
        dmask[0] = 0;
        for (uint32_t j = 0; j < ndfrom; j++) {
            dmask[j + 1] = dmask[j];
            for (uint32_t k = 0; k < nbuy; k++)
                if (from[buy[k]] == dfrom[j])
                    dmask[j + 1] |= UINT64_C(1) << k;
        }
    }
    for (uint32_t ch = 0; ch < s->nchunks; ch++) {
        const seg__evchunk *c = &s->chunks[ch];
        uint32_t base = ch << SEG__CHUNK_BITS;
        if (base >= s->nevents)
            break;
        uint32_t end = s->nevents - base < SEG__CHUNK ? s->nevents - base : SEG__CHUNK;
        for (uint32_t off = 0; off < end; off++) {
            uint32_t kc = c->kindchan[off];
            uint32_t kind = kc >> 14;
            if (kind == SEG__KIND_DELETED)
                continue;
            int64_t ts = c->ts32 ? c->ts_base + c->ts32[off] : c->ts64[off];
            if (ts >= now || ts < min_from)
                continue;
            /* the table rows of a customer a few events ahead: events of
             * one customer lie scattered, so each row is a cache miss */
            if (off + 24 < end)
                seg__sd_prefetch(&vals[(size_t)c->cust[off + 24] * stride]);
            uint32_t ci = c->cust[off];
            int64_t *row = vals + (size_t)ci * stride;
            /* which features an event counts for is data: computed without
             * jumps, since a mispredicted jump per feature and event costs
             * more than the arithmetic */
            if (kind == SEG_EVENT_ENGAGEMENT) {
                uint32_t name = c->ref[off];
                for (uint32_t k = 0; k < neng; k++) {
                    uint32_t f = eng[k];
                    row[f] += (ts >= from[f]) & (name == fname[f]);
                }
                continue;
            }
            int64_t amt = c->amt32 ? (int64_t)c->amt32[off] : c->amt64[off];
            uint32_t chan = kc & 0x3fffu, cat = c->cat[off];
            int64_t pos = (kind == SEG_EVENT_PURCHASE) & (amt > 0);
            if (masks) {
                uint32_t j = 0;
                while (j < ndfrom && ts >= dfrom[j])
                    j++;
                uint64_t fm = dmask[j] & catmask[cat < ncat ? cat : 0] &
                              chanmask[chan < nchan ? chan : 0];
                for (uint64_t m = fm & net_bits; m; m &= m - 1)
                    row[buy[__builtin_ctzll(m)]] += amt;
                if (!pos)
                    continue;
                for (uint64_t m = fm & spend_bits; m; m &= m - 1)
                    row[buy[__builtin_ctzll(m)]] += amt;
                for (uint64_t m = fm & order_bits; m; m &= m - 1) {
                    uint32_t f = buy[__builtin_ctzll(m)];
                    uint32_t ref = c->ref[off];
                    uint32_t *mx = (uint32_t *)(void *)(row + nf) + ordidx[f];
                    if (!ref || ref > *mx) {
                        row[f]++;
                        if (ref)
                            *mx = ref;
                    } else if (ref < *mx) {
                        run->recount[ci] = 1; /* maybe seen before: count exactly */
                    }
                }
                continue;
            }
            for (uint32_t k = 0; k < nbuy; k++) {
                uint32_t f = buy[k];
                int64_t m = (ts >= from[f]) & ((fcat[f] == 0) | (cat == fcat[f])) &
                            ((fchan[f] == 0) | (chan == fchan[f]));
                if (fkind[f] == SEG__F_NET_SPEND) {
                    row[f] += m * amt;
                } else if (fkind[f] == SEG__F_SPEND) {
                    row[f] += (m & pos) * amt;
                } else if (m & pos) {
                    uint32_t ref = c->ref[off];
                    uint32_t *mx = (uint32_t *)(void *)(row + nf) + ordidx[f];
                    if (!ref || ref > *mx) {
                        row[f]++;
                        if (ref)
                            *mx = ref;
                    } else if (ref < *mx) {
                        run->recount[ci] = 1; /* maybe seen before: count exactly */
                    }
                }
            }
        }
    }
    seg__free(a, catmask);
    seg__free(a, chanmask);
    return SEG_OK;
}

/* ---- runs ---- */

void seg__run_free(seg__run *run)
{
    if (!run->db)
        return;
    const seg__alloc *a = &run->db->alloc;
    seg__block_free(run);
    seg__free(a, run->feat_cat);
    seg__free(a, run->feat_from);
    if (run->feat_cached)
        run->def->feat_cache_busy = false; /* kept by the definition */
    else
        seg__free(a, run->feat_raw);
    seg__free(a, run->recount);
    seg__free(a, run->scr_idx);
    seg__free(a, run->scr_key);
    seg__free(a, run->scr_key2);
    seg__free(a, run->stack);
    seg__free(a, run->vals);
    seg__free(a, run->stamp);
    seg__free(a, run->featv);
    seg__free(a, run->member);
    memset(run, 0, sizeof *run);
}

static int run_scratch(seg__run *run, size_t cap)
{
    const seg__alloc *a = &run->db->alloc;
    if (cap <= run->scr_cap && run->scr_idx)
        return SEG_OK;
    seg__free(a, run->scr_idx);
    seg__free(a, run->scr_key);
    seg__free(a, run->scr_key2);
    run->scr_idx = seg__calloc(a, cap + 1, sizeof *run->scr_idx);
    run->scr_key = seg__calloc(a, cap + 1, sizeof *run->scr_key);
    run->scr_key2 = seg__calloc(a, cap + 1, sizeof *run->scr_key2);
    run->scr_cap = cap;
    if (!run->scr_idx || !run->scr_key || !run->scr_key2) {
        run->scr_cap = 0;
        return SEG_ENOMEM;
    }
    return SEG_OK;
}

int seg__run_init(seg__run *run, seg_segdef *d, int64_t now, bool scan)
{
    memset(run, 0, sizeof *run);
    run->def = d;
    run->db = d->db;
    run->store = &d->db->store;
    run->now = now;
    run->ncusts = run->store->ncusts;
    const seg__alloc *a = &d->db->alloc;
    const seg__store *s = run->store;
    int rc = SEG_ENOMEM;
    run->feat_cat = seg__calloc(a, (size_t)d->nfeats * 4 + 1, sizeof *run->feat_cat);
    run->feat_from = seg__calloc(a, (size_t)d->nfeats + 1, sizeof *run->feat_from);
    run->stack = seg__calloc(a, d->max_stack + 1, sizeof *run->stack);
    run->vals = seg__calloc(a, (size_t)d->nslots + 1, sizeof *run->vals);
    run->stamp = seg__calloc(a, (size_t)d->nslots + 1, sizeof *run->stamp);
    run->featv = seg__calloc(a, (size_t)d->nfeats + 1, sizeof *run->featv);
    run->member = seg__calloc(a, (size_t)d->nsegs + 1, 1);
    if (!run->feat_cat || !run->feat_from || !run->stack || !run->vals || !run->stamp ||
        !run->featv || !run->member)
        goto fail;
    run->feat_chan = run->feat_cat + d->nfeats;
    run->feat_name = run->feat_cat + 2 * (size_t)d->nfeats;
    for (uint32_t f = 0; f < d->nfeats; f++) {
        const seg__feature *ft = &d->feats[f];
        uint32_t k;
        run->feat_cat[f] = 0;
        if (ft->category.n) {
            k = seg__dict_find(&s->arena, &s->cat, ft->category);
            run->feat_cat[f] = k == SEG__NONE ? UINT32_MAX : k + 1;
        }
        run->feat_chan[f] = 0;
        if (ft->channel.n) {
            k = seg__dict_find(&s->arena, &s->chan, ft->channel);
            run->feat_chan[f] = k == SEG__NONE ? UINT32_MAX : k + 1;
        }
        run->feat_name[f] = UINT32_MAX;
        if (ft->kind == SEG__F_COUNT) {
            k = seg__dict_find(&s->arena, &s->names, ft->name);
            run->feat_name[f] = k == SEG__NONE ? UINT32_MAX - 1 : k;
        }
        run->feat_from[f] = ft->window == INT64_MAX || now - SEG_TIME_MIN < ft->window
                                ? INT64_MIN : now - ft->window;
    }
    for (uint32_t k = 0; k < d->nslots; k++) {
        seg__slot *sl = &d->slots[k];
        if (sl->prov->bind && (rc = sl->prov->bind(run, sl)) != SEG_OK)
            goto fail;
    }
    /* scratch for walks: as large as the largest customer */
    size_t maxev = 0;
    for (uint32_t ci = 0; ci < s->ncusts; ci++)
        if (s->custs[ci].events > maxev)
            maxev = s->custs[ci].events;
    if ((rc = run_scratch(run, maxev)) != SEG_OK)
        goto fail;
    /* the scan keeps the features in a few small arrays on the stack;
     * more than 256 distinct windowed measures are walked instead */
    if (scan && d->nfeats && d->nfeats <= 256 && (rc = scan_events(run)) != SEG_OK)
        goto fail;
    if (scan && (rc = seg__block_init(run)) != SEG_OK)
        goto fail;
    run->epoch = 1;
    run->featv_ci = UINT32_MAX;
    return SEG_OK;
fail:
    if (rc == SEG_ENOMEM)
        seg__error(d->db, SEG_ENOMEM, "out of memory");
    seg__run_free(run);
    return rc;
}

/* Prepare the context of customer ci: false when ci is not a customer as of
 * now (erased, or every event comes later). */
static bool prepare(seg__run *run, uint32_t ci, seg__cctx *cc)
{
    const seg__cust *c = &run->store->custs[ci];
    if (!c->id)
        return false;
    if (c->events && c->first_seen >= run->now)
        return false; /* every event comes later: not a customer yet */
    cc->ci = ci;
    cc->cust = c;
    cc->scan = run->feat_vals != NULL && !(run->recount && run->recount[ci]);
    if (c->events && c->last_seen >= run->now)
        asof_aggregates(run, c, &cc->agg);
    else
        agg_of(c, &cc->agg);
    return true;
}

bool seg__run_customer(seg__run *run, uint32_t ci)
{
    const seg_segdef *d = run->def;
    seg__cctx *cc = &run->cc;
    if (!prepare(run, ci, cc))
        return false;
    if (++run->epoch == 0) {
        memset(run->stamp, 0, (size_t)d->nslots * sizeof *run->stamp);
        run->epoch = 1;
    }
    seg__vm_exec(run, cc, &d->cprog);
    return true;
}

/* ---- visiting many customers ---- */

static inline uint32_t nth(const uint32_t *order, size_t k)
{
    return order ? order[k] : (uint32_t)k;
}

/* Before evaluating the k-th customer of a visit, ask the memory for what
 * later ones will need: the customer's record 32 ahead, its attribute list
 * header 16 ahead and the list itself 8 ahead (each step reads what the
 * previous one fetched), its windowed measures 16 ahead.  Attributes live in
 * blocks of their own, so without this every customer costs two cache
 * misses in a row. */
static inline void prefetch_ahead(const seg__run *run, const uint32_t *order, size_t k, size_t n)
{
    const seg__store *s = run->store;
    if (k + 32 < n)
        seg__sd_prefetch(&s->custs[nth(order, k + 32)]);
    if (run->feat_vals && k + 16 < n)
        seg__sd_prefetch(&run->feat_vals[(size_t)nth(order, k + 16) * run->feat_stride]);
    if (!(run->def->pv_flags & SEG__PV_ATTRS))
        return;
    if (k + 16 < n) {
        uint32_t e = s->custs[nth(order, k + 16)].ext;
        if (e)
            seg__sd_prefetch(&s->exts[e - 1]);
    }
    if (k + 8 < n) {
        uint32_t e = s->custs[nth(order, k + 8)].ext;
        if (e)
            seg__sd_prefetch(s->exts[e - 1].items);
    }
}

/* Called for each customer visited, in order: cc NULL for one that is not a
 * customer as of now; else its context, and run->member holds its
 * memberships.  Non-zero stops the visit. */
typedef int (*visit_fn)(seg__run *run, uint32_t ci, const seg__cctx *cc, void *ctx);

/* Blocks of 64 customers through the block machine (scan mode runs), or one
 * customer at a time through the scalar one. */
static int visit(seg__run *run, const uint32_t *order, size_t n, visit_fn fn, void *ctx)
{
    seg__block *b = run->blk;
    const seg_segdef *d = run->def;
    const seg__store *s = run->store;
    if (!b) {
        for (size_t k = 0; k < n; k++) {
            uint32_t ci = nth(order, k);
            prefetch_ahead(run, order, k, n);
            if (fn(run, ci, seg__run_customer(run, ci) ? &run->cc : NULL, ctx))
                return 1;
        }
        return 0;
    }
    bool attrs = (d->pv_flags & SEG__PV_ATTRS) != 0, strs = false;
    for (uint32_t k = 0; k < d->nslots; k++)
        strs |= d->slots[k].prov->sig == SEG__SIG_ATTR && d->slots[k].type == SEG__T_STR;
    for (size_t k0 = 0; k0 < n; k0 += SEG__LANES) {
        uint32_t nl = n - k0 < SEG__LANES ? (uint32_t)(n - k0) : SEG__LANES;
        /* memory for the blocks to come, each step reading what an earlier
         * one asked for: attribute list headers three blocks ahead, the
         * lists two blocks ahead, their string values, the measure rows and
         * the records one block ahead */
        size_t k1 = k0 + SEG__LANES, k2 = k1 + SEG__LANES, k3 = k2 + SEG__LANES;
        for (size_t k = k1; k < k1 + SEG__LANES && k < n; k++) {
            uint32_t cj = nth(order, k);
            seg__sd_prefetch(&s->custs[cj]);
            if (run->feat_vals)
                seg__sd_prefetch(&run->feat_vals[(size_t)cj * run->feat_stride]);
            if (strs && s->custs[cj].ext) {
                const seg__custext *x = &s->exts[s->custs[cj].ext - 1];
                for (uint32_t j = 0; j < x->n && j < 8; j++)
                    if (x->items[j].type == SEG_TYPE_STRING && !(x->items[j].key & 0x80000000u))
                        seg__sd_prefetch(x->items[j].v.s);
            }
        }
        if (attrs) {
            for (size_t k = k2; k < k2 + SEG__LANES && k < n; k++) {
                uint32_t e = s->custs[nth(order, k)].ext;
                if (e) {
                    /* a customer's list is a few 16-byte items: two lines */
                    const seg__custext *x = &s->exts[e - 1];
                    seg__sd_prefetch(x->items);
                    if (x->n > 1)
                        seg__sd_prefetch((const char *)x->items + 16 * x->n - 1);
                }
            }
            for (size_t k = k3; k < k3 + SEG__LANES && k < n; k++) {
                uint32_t e = s->custs[nth(order, k)].ext;
                if (e)
                    seg__sd_prefetch(&s->exts[e - 1]);
            }
        }
        b->nlanes = nl;
        b->valid = 0;
        for (uint32_t l = 0; l < nl; l++) {
            uint32_t ci = nth(order, k0 + l);
            b->ci[l] = ci;
            if (prepare(run, ci, &b->cc[l]))
                b->valid |= UINT64_C(1) << l;
        }
        if (b->valid) {
            seg__vm_block(run);
            /* lane by lane, as bytes: from the set bits only */
            memset(b->bytes, 0, (size_t)nl * d->nsegs);
            for (uint32_t i = 0; i < d->nsegs; i++)
                for (uint64_t m = b->member[i] & b->valid; m; m &= m - 1)
                    b->bytes[(size_t)__builtin_ctzll(m) * d->nsegs + i] = 1;
        }
        uint8_t *own = run->member;
        int stop = 0;
        for (uint32_t l = 0; l < nl && !stop; l++) {
            bool cust = (b->valid >> l) & 1;
            run->member = b->bytes + (size_t)l * d->nsegs;
            stop = fn(run, b->ci[l], cust ? &b->cc[l] : NULL, ctx);
        }
        run->member = own;
        if (stop)
            return 1;
    }
    return 0;
}

/* ---- public: evaluation ---- */

static int check_now(seg_db *db, int64_t now)
{
    if (now < SEG_TIME_MIN || now > SEG_TIME_MAX)
        return seg__error(db, SEG_ERANGE, "now: %lld is out of range (years 1 to 9999)",
                          (long long)now);
    return SEG_OK;
}

typedef struct eval_ctx {
    seg_segdef_cb cb;
    void *payload;
} eval_ctx;

static int eval_visit(seg__run *run, uint32_t ci, const seg__cctx *customer, void *ctx)
{
    eval_ctx *ec = ctx;
    if (!customer)
        return 0;
    return ec->cb(seg__run_cust_id(run, ci), run->member, run->def->nsegs, ec->payload);
}

SEG_API int seg_segdef_eval(seg_segdef *def, int64_t now, uint32_t flags, seg_segdef_cb cb,
                            void *payload)
{
    if (!def)
        return SEG_EINVAL;
    seg_db *db = def->db;
    seg__error_clear(db);
    if (!cb)
        return seg__error(db, SEG_EINVAL, "cb: NULL");
    if (flags & ~SEG_SEGDEF_SORTED)
        return seg__error(db, SEG_EINVAL, "unknown flags 0x%x", (unsigned)flags);
    int rc = check_now(db, now);
    if (rc != SEG_OK)
        return rc;
    size_t n;
    uint32_t *order = visit_order(db, flags & SEG_SEGDEF_SORTED, NULL, &n);
    if (!order)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    seg__run run;
    if ((rc = seg__run_init(&run, def, now, true)) != SEG_OK) {
        seg__free(&db->alloc, order);
        return rc;
    }
    bool was = db->iterating;
    db->iterating = true;
    eval_ctx ec = { cb, payload };
    visit(&run, order, n, eval_visit, &ec);
    db->iterating = was;
    seg__run_free(&run);
    seg__free(&db->alloc, order);
    return SEG_OK;
}

static int find_customer(seg_db *db, const char *customer_id, uint32_t *ci)
{
    if (!customer_id)
        return seg__error(db, SEG_EINVAL, "customer_id: NULL");
    seg__str id = seg__cstr(customer_id);
    int rc = seg__check_id(db, "customer_id", id);
    if (rc != SEG_OK)
        return rc;
    *ci = seg__cust_find(&db->store, id);
    if (*ci == SEG__NONE)
        return seg__error(db, SEG_ENOTFOUND, "customer_id '%s': no such customer", customer_id);
    return SEG_OK;
}

SEG_API int seg_segdef_eval_customer(unsigned char *out, size_t n, seg_segdef *def,
                                     const char *customer_id, int64_t now)
{
    if (out && def && n == def->nsegs)
        memset(out, 0, n);
    if (!def)
        return SEG_EINVAL;
    seg_db *db = def->db;
    seg__error_clear(db);
    if (!out && n)
        return seg__error(db, SEG_EINVAL, "out: NULL");
    if (n != def->nsegs)
        return seg__error(db, SEG_EINVAL, "n is %zu, the definition has %u segments", n,
                          (unsigned)def->nsegs);
    int rc = check_now(db, now);
    uint32_t ci = 0;
    if (rc == SEG_OK)
        rc = find_customer(db, customer_id, &ci);
    if (rc != SEG_OK)
        return rc;
    const seg__cust *c = &db->store.custs[ci];
    /* a run without per-customer tables: buffers sized for this customer */
    seg__run run;
    memset(&run, 0, sizeof run);
    const seg__alloc *a = &db->alloc;
    run.def = def;
    run.db = db;
    run.store = &db->store;
    run.now = now;
    run.ncusts = db->store.ncusts;
    /* the definition's reusable buffers hold everything this needs */
    size_t need_words = (size_t)c->events * 5 + (size_t)def->nfeats * 7 + def->max_stack * 6 +
                        (size_t)def->nslots * 7 + def->nsegs + 16;
    if (def->scratch_cap < need_words) {
        size_t cap = need_words * 2;
        uint32_t *p = seg__realloc_array(a, def->scratch, cap, sizeof *p);
        if (!p)
            return seg__error(db, SEG_ENOMEM, "out of memory");
        def->scratch = p;
        def->scratch_cap = cap;
    }
    /* carve: 8-byte aligned pieces first */
    uint64_t *w64 = (uint64_t *)(void *)def->scratch;
    run.scr_key = w64;
    w64 += c->events;
    run.scr_key2 = w64;
    w64 += c->events;
    run.feat_from = (int64_t *)w64;
    w64 += def->nfeats;
    run.featv = (int64_t *)w64;
    w64 += def->nfeats;
    run.stack = (seg__val *)(void *)w64;
    w64 += (size_t)def->max_stack * 3;
    run.vals = (seg__val *)(void *)w64;
    w64 += (size_t)def->nslots * 3;
    uint32_t *w32 = (uint32_t *)w64;
    run.scr_idx = w32;
    w32 += c->events;
    run.stamp = w32;
    w32 += def->nslots;
    run.feat_cat = w32;
    run.feat_chan = w32 + def->nfeats;
    run.feat_name = w32 + 2 * (size_t)def->nfeats;
    w32 += 3 * (size_t)def->nfeats;
    run.member = (uint8_t *)w32;
    run.scr_cap = c->events;
    memset(run.stamp, 0, (size_t)def->nslots * sizeof *run.stamp);
    run.epoch = 0;
    run.featv_ci = UINT32_MAX;
    const seg__store *s = run.store;
    for (uint32_t f = 0; f < def->nfeats; f++) {
        const seg__feature *ft = &def->feats[f];
        uint32_t k;
        run.feat_cat[f] = run.feat_chan[f] = 0;
        if (ft->category.n) {
            k = seg__dict_find(&s->arena, &s->cat, ft->category);
            run.feat_cat[f] = k == SEG__NONE ? UINT32_MAX : k + 1;
        }
        if (ft->channel.n) {
            k = seg__dict_find(&s->arena, &s->chan, ft->channel);
            run.feat_chan[f] = k == SEG__NONE ? UINT32_MAX : k + 1;
        }
        run.feat_name[f] = UINT32_MAX;
        if (ft->kind == SEG__F_COUNT) {
            k = seg__dict_find(&s->arena, &s->names, ft->name);
            run.feat_name[f] = k == SEG__NONE ? UINT32_MAX - 1 : k;
        }
        run.feat_from[f] = ft->window == INT64_MAX || now - SEG_TIME_MIN < ft->window
                               ? INT64_MIN : now - ft->window;
    }
    for (uint32_t k = 0; k < def->nslots; k++) {
        seg__slot *sl = &def->slots[k];
        if (sl->prov->bind && (rc = sl->prov->bind(&run, sl)) != SEG_OK)
            return rc;
    }
    if (!seg__run_customer(&run, ci))
        return seg__error(db, SEG_ENOTFOUND,
                          "customer_id '%s': not a customer yet at now (every event of theirs "
                          "comes later)", customer_id);
    memcpy(out, run.member, n);
    return SEG_OK;
}

/* ---- public: membership deltas ---- */

static uint64_t *state_of(seg_segdef *d, uint64_t *st, uint32_t ci)
{
    return st + (size_t)ci * d->state_words;
}

typedef struct refresh_ctx {
    seg_segdef *def;
    uint64_t *ns;              /* the new membership */
    seg_segdef_delta_cb cb;
    void *payload;
    seg_segdef_stats *st;
    int64_t max_ts;
} refresh_ctx;

static int refresh_visit(seg__run *run, uint32_t ci, const seg__cctx *customer, void *ctx)
{
    refresh_ctx *r = ctx;
    seg_segdef *def = r->def;
    uint32_t words = def->state_words;
    const seg__cust *c = &run->store->custs[ci];
    if (c->events && c->last_seen > r->max_ts)
        r->max_ts = c->last_seen;
    uint64_t *nw = state_of(def, r->ns, ci);
    memset(nw, 0, words * sizeof *nw);
    if (customer) {
        r->st->evaluated++;
        for (uint32_t i = 0; i < def->nsegs; i++)
            if (run->member[i])
                nw[i >> 6] |= UINT64_C(1) << (i & 63);
    }
    const uint64_t *old = def->has_state && ci < def->state_ncusts
                              ? state_of(def, def->state, ci) : NULL;
    for (uint32_t w = 0; w < words; w++) {
        uint64_t was_in = old ? old[w] : 0, diff = was_in ^ nw[w];
        while (diff) {
            uint32_t b = (uint32_t)__builtin_ctzll(diff);
            diff &= diff - 1;
            int entered = (nw[w] >> b) & 1;
            if (entered) r->st->entered++; else r->st->exited++;
            if (r->cb(seg__run_cust_id(run, ci), (size_t)w * 64 + b, entered, r->payload))
                return 1;
        }
    }
    return 0;
}

SEG_API int seg_segdef_refresh(seg_segdef *def, int64_t now, uint32_t flags,
                               seg_segdef_delta_cb cb, void *payload,
                               seg_segdef_stats *stats_out)
{
    seg_segdef_stats st = SEG_SEGDEF_STATS_INIT;
    if (stats_out && stats_out->struct_size >= sizeof(seg_segdef_stats))
        seg__struct_out(stats_out, stats_out->struct_size, &st, sizeof st, sizeof st);
    if (!def)
        return SEG_EINVAL;
    seg_db *db = def->db;
    seg__error_clear(db);
    if (stats_out && stats_out->struct_size < sizeof(seg_segdef_stats))
        return seg__error(db, SEG_EVERSION, "seg_segdef_stats: unsupported struct_size %zu",
                          stats_out->struct_size);
    if (!cb)
        return seg__error(db, SEG_EINVAL, "cb: NULL");
    if (flags & ~(SEG_SEGDEF_SORTED | SEG_SEGDEF_FULL | SEG_SEGDEF_TOUCHED))
        return seg__error(db, SEG_EINVAL, "unknown flags 0x%x", (unsigned)flags);
    if ((flags & SEG_SEGDEF_FULL) && (flags & SEG_SEGDEF_TOUCHED))
        return seg__error(db, SEG_EINVAL, "SEG_SEGDEF_FULL and SEG_SEGDEF_TOUCHED together");
    int rc = check_now(db, now);
    if (rc != SEG_OK)
        return rc;
    const seg__alloc *a = &db->alloc;
    const seg__store *s = &db->store;
    uint32_t nc = s->ncusts, words = def->state_words;

    bool attrs_same = !(def->pv_flags & SEG__PV_ATTRS) || db->attr_gen == def->mark_attr_gen;
    bool full;
    if (flags & SEG_SEGDEF_FULL)
        full = true;
    else if (flags & SEG_SEGDEF_TOUCHED)
        full = !def->has_state;
    else
        full = !def->has_state || !attrs_same ||
               !(now == def->mark_now ||
                 (!(def->pv_flags & SEG__PV_TIME) && now >= def->mark_now &&
                  def->mark_max_ts < def->mark_now));
    if (def->stale)
        full = true; /* a value's model changed since the last refresh */

    uint64_t *ns = seg__calloc(a, (size_t)nc * words + 1, sizeof *ns);
    uint8_t *touched = NULL;
    uint32_t *order = NULL;
    size_t n = 0;
    seg__run run;
    memset(&run, 0, sizeof run);
    if (!ns)
        goto nomem;
    if (!full) {
        touched = seg__calloc(a, (size_t)nc + 1, 1);
        if (!touched)
            goto nomem;
        if (def->state_ncusts)
            memcpy(ns, def->state, (size_t)def->state_ncusts * words * sizeof *ns);
        for (uint32_t i = def->mark_events; i < s->nevents; i++)
            if (seg__ev_kind(s, i) != SEG__KIND_DELETED)
                touched[seg__ev_cust(s, i)] = 1;
        for (uint32_t ci = def->state_ncusts; ci < nc; ci++)
            touched[ci] = 1;
        /* erased customers leave silently */
        for (uint32_t ci = 0; ci < def->state_ncusts; ci++)
            if (!s->custs[ci].id)
                memset(state_of(def, ns, ci), 0, words * sizeof *ns);
    }
    order = visit_order(db, flags & SEG_SEGDEF_SORTED, touched, &n);
    if (!order)
        goto nomem;
    if ((rc = seg__run_init(&run, def, now, full)) != SEG_OK)
        goto out;
    refresh_ctx rc2 = { def, ns, cb, payload, &st, full ? INT64_MIN : def->mark_max_ts };
    bool was = db->iterating;
    db->iterating = true;
    bool stopped = visit(&run, order, n, refresh_visit, &rc2) != 0;
    int64_t max_ts = rc2.max_ts;
    db->iterating = was;
    st.full = full;
    if (!stopped) {
        seg__free(a, def->state);
        def->state = ns;
        ns = NULL;
        def->state_ncusts = nc;
        def->has_state = true;
        def->mark_events = s->nevents;
        def->mark_attr_gen = db->attr_gen;
        def->mark_now = now;
        def->mark_max_ts = max_ts;
        def->stale = false;
    }
    if (stats_out)
        seg__struct_out(stats_out, stats_out->struct_size, &st, sizeof st, sizeof st);
    rc = SEG_OK;
    goto out;
nomem:
    rc = seg__error(db, SEG_ENOMEM, "out of memory");
out:
    seg__run_free(&run);
    seg__free(a, ns);
    seg__free(a, touched);
    seg__free(a, order);
    return rc;
}

SEG_API int seg_segdef_member(int *out, seg_segdef *def, const char *customer_id,
                              size_t segment)
{
    if (out)
        *out = 0;
    if (!def)
        return SEG_EINVAL;
    seg_db *db = def->db;
    seg__error_clear(db);
    if (!out)
        return seg__error(db, SEG_EINVAL, "out: NULL");
    if (segment >= def->nsegs)
        return seg__error(db, SEG_EINVAL, "segment %zu: the definition has %u segments",
                          segment, (unsigned)def->nsegs);
    uint32_t ci;
    int rc = find_customer(db, customer_id, &ci);
    if (rc != SEG_OK)
        return rc;
    if (!def->has_state)
        return seg__error(db, SEG_EMISUSE, "no seg_segdef_refresh() has run on this definition");
    if (ci < def->state_ncusts)
        *out = (int)((state_of(def, def->state, ci)[segment >> 6] >> (segment & 63)) & 1);
    return SEG_OK;
}

/* ---- public: report ---- */

#define REPORT_SEG_MAX 4096u

typedef struct report_ctx {
    seg_segdef_report *r;
    uint64_t *size;
    int64_t *rev;
    uint64_t *ov;
    uint32_t *in;
    const uint8_t *plain;
    uint32_t n;
    int rc;
} report_ctx;

static int report_visit(seg__run *run, uint32_t ci, const seg__cctx *cc, void *ctx)
{
    report_ctx *x = ctx;
    (void)ci;
    if (!cc)
        return 0;
    const seg__agg *g = &cc->agg;
    int64_t net = g->revenue + g->refunds;
    x->r->customers++;
    if (__builtin_add_overflow(x->r->net_revenue, net, &x->r->net_revenue))
        x->rc = SEG_ERANGE;
    uint32_t m = 0, np = 0, n = x->n;
    for (uint32_t i = 0; i < n; i++)
        if (run->member[i]) {
            x->in[m++] = i;
            np += x->plain[i];
            x->size[i]++;
            if (__builtin_add_overflow(x->rev[i], net, &x->rev[i]))
                x->rc = SEG_ERANGE;
        }
    if (np == 0)
        x->r->in_none++;
    else if (np > 1)
        x->r->in_several++;
    for (uint32_t a = 0; a < m; a++)
        for (uint32_t b = a; b < m; b++)
            x->ov[(size_t)x->in[a] * n + x->in[b]]++;
    return 0;
}

SEG_API int seg_segdef_report_get(seg_segdef_report *out, seg_segdef *def, int64_t now)
{
    if (!def)
        return SEG_EINVAL;
    seg_db *db = def->db;
    seg__error_clear(db);
    if (!out)
        return seg__error(db, SEG_EINVAL, "out: NULL");
    if (out->struct_size < sizeof(seg_segdef_report))
        return seg__error(db, SEG_EVERSION, "seg_segdef_report: unsupported struct_size %zu",
                          out->struct_size);
    int rc = check_now(db, now);
    if (rc != SEG_OK)
        return rc;
    uint32_t n = def->nsegs;
    if (n > REPORT_SEG_MAX)
        return seg__error(db, SEG_ELIMIT, "a report covers at most %u segments (this "
                          "definition has %u)", REPORT_SEG_MAX, (unsigned)n);
    const seg__alloc *a = &db->alloc;
    const seg__store *s = &db->store;
    uint64_t *size = seg__calloc(a, (size_t)n + 1, sizeof *size);
    int64_t *rev = seg__calloc(a, (size_t)n + 1, sizeof *rev);
    uint64_t *ov = seg__calloc(a, (size_t)n * n + 1, sizeof *ov);
    uint32_t *in = seg__calloc(a, (size_t)n + 1, sizeof *in);
    uint8_t *plain = seg__calloc(a, (size_t)n + 1, 1);
    seg__run run;
    memset(&run, 0, sizeof run);
    if (!size || !rev || !ov || !in || !plain) {
        rc = seg__error(db, SEG_ENOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < n; i++)
        plain[i] = def->items[def->segs[i].item].kind == SEG__ITEM_SEGMENT;
    if ((rc = seg__run_init(&run, def, now, true)) != SEG_OK)
        goto out;
    seg_segdef_report r = SEG_SEGDEF_REPORT_INIT;
    r.segments = n;
    report_ctx rx = { &r, size, rev, ov, in, plain, n, SEG_OK };
    bool was = db->iterating;
    db->iterating = true;
    visit(&run, NULL, s->ncusts, report_visit, &rx);
    rc = rx.rc;
    db->iterating = was;
    if (rc != SEG_OK) {
        rc = seg__error(db, SEG_ERANGE, "a revenue sum is beyond the range of int64");
        goto out;
    }
    for (uint32_t x = 0; x < n; x++)
        for (uint32_t y = 0; y < x; y++)
            ov[(size_t)x * n + y] = ov[(size_t)y * n + x];
    seg__free(a, def->rep_size);
    seg__free(a, def->rep_revenue);
    seg__free(a, def->rep_overlap);
    def->rep_size = size;
    def->rep_revenue = rev;
    def->rep_overlap = ov;
    size = NULL;
    rev = NULL;
    ov = NULL;
    r.size = def->rep_size;
    r.revenue = def->rep_revenue;
    r.overlap = def->rep_overlap;
    seg__struct_out(out, out->struct_size, &r, sizeof r, sizeof r);
out:
    seg__run_free(&run);
    seg__free(a, size);
    seg__free(a, rev);
    seg__free(a, ov);
    seg__free(a, in);
    seg__free(a, plain);
    return rc;
}

/* ---- the journey engine's use of runs (segdef-private.h) ---- */

int seg__run_retime(seg__run *run, int64_t now, uint32_t ci)
{
    const seg_segdef *d = run->def;
    run->now = now;
    for (uint32_t f = 0; f < d->nfeats; f++) {
        const seg__feature *ft = &d->feats[f];
        run->feat_from[f] = ft->window == INT64_MAX || now - SEG_TIME_MIN < ft->window
                                ? INT64_MIN : now - ft->window;
    }
    run->featv_ci = UINT32_MAX;
    run->ncusts = run->store->ncusts;
    if (ci < run->store->ncusts && run->store->custs[ci].events > run->scr_cap &&
        run_scratch(run, run->store->custs[ci].events * 2) != SEG_OK)
        return seg__error(run->db, SEG_ENOMEM, "out of memory");
    return SEG_OK;
}

typedef struct each_ctx {
    seg__sd_each_fn fn;
    void *ctx;
} each_ctx;

static int each_visit(seg__run *run, uint32_t ci, const seg__cctx *cc, void *ctx)
{
    each_ctx *e = ctx;
    if (!cc)
        return 0;
    return e->fn(e->ctx, ci, run->member);
}

int seg__sd_eval_each(seg_segdef *def, int64_t now, const uint8_t *only, seg__sd_each_fn fn,
                      void *ctx)
{
    seg_db *db = def->db;
    int rc = check_now(db, now);
    if (rc != SEG_OK)
        return rc;
    size_t n;
    uint32_t *order = visit_order(db, false, only, &n);
    if (!order)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    seg__run run;
    if ((rc = seg__run_init(&run, def, now, true)) != SEG_OK) {
        seg__free(&db->alloc, order);
        return rc;
    }
    each_ctx e = { fn, ctx };
    visit(&run, order, n, each_visit, &e);
    seg__run_free(&run);
    seg__free(&db->alloc, order);
    return SEG_OK;
}
