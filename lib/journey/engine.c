/*
 * The journey engine: every customer's place in every journey, timers,
 * steps and their actions.
 *
 * One record (seg__jrec, 32 bytes) per customer and journey the customer
 * ever entered, in chunks of 64Ki; a customer's records are chained from
 * head[ci].  Each record is its own timeline: its steps happen in time
 * order.  Timers are (due, record, steps) entries, 16 bytes, in buckets of
 * 2^16 seconds kept in time order: advance loads a bucket when its time
 * comes (a radix sort by due and record), takes its timers in order, and
 * keeps a small 4-ary heap for timers set in or before a loaded bucket.
 * An entry whose steps no longer match the record's, or whose due time no
 * longer is the record's (a purchase moved an 'after ... since
 * last_purchase'), is stale and skipped.
 *
 * Conditions (entry, 'exit when', 'when') are hidden segments of the
 * engine's own definition (seg__jr_add_conditions), evaluated for one
 * customer at a time t (events at or before t count) with a walk-mode run,
 * or for many customers at once by the block machine on advance.  A
 * condition that depends on time and holds at `now` but did not at the
 * record's last step is located by bisection: the step happens at the
 * first second it held (exact when it changed once in between, as the
 * time-only conditions of the language do).
 *
 * Changes happen in place inside a storage transaction, with an undo log
 * (records' old copies, the timer buckets' cursor, the timers taken from
 * the side heap, the counters): txn_end(false) puts everything back.  The
 * records changed are written as module records (persist.c) before the
 * transaction commits.  The logs are emptied at every transaction's end,
 * and freed when they grew large.
 */
#include "journey/journey-private.h"
#include "journey/journey-engine.h"
#include "outbox/outbox-private.h"

#include <inttypes.h>
#include <stdio.h>

static const seg__module_ops journey_ops;

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#define NOINLINE __attribute__((noinline))
#else
#define PREFETCH(p) ((void)(p))
#define NOINLINE
#endif

/* ---- records ---- */

static inline seg__jrec *R(const seg_journey *j, uint32_t i)
{
    return &j->chunks[i >> SEG__JR_CHUNK_BITS][i & (SEG__JR_CHUNK - 1)];
}

static uint32_t rec_find(const seg_journey *j, uint32_t ci, uint32_t jx)
{
    if (ci >= j->nhead)
        return SEG__NONE;
    for (uint32_t r = j->head[ci]; r != SEG__NONE; r = R(j, r)->next)
        if (R(j, r)->journey == jx)
            return r;
    return SEG__NONE;
}

static int oom(seg_journey *j)
{
    return seg__error(j->db, SEG_ENOMEM, "out of memory");
}

#define GROW(j, arr, n, cap)                                                           \
    do {                                                                               \
        if ((n) == (cap)) {                                                            \
            size_t c2_ = (cap) ? (cap) + (cap) / 2 + 16 : 64;                          \
            void *p_ = seg__realloc_array(&(j)->db->alloc, (arr), c2_, sizeof *(arr)); \
            if (!p_)                                                                   \
                return oom(j);                                                         \
            (arr) = p_;                                                                \
            (cap) = c2_;                                                               \
        }                                                                              \
    } while (0)

/* Start the transaction's bookkeeping on the first change. */
static int begin(seg_journey *j)
{
    j->tgen++;
    if (j->in_txn)
        return SEG_OK;
    j->in_txn = true;
    j->nrecs0 = j->nrecs;
    j->clock0 = j->clock;
    j->has_clock0 = j->has_clock;
    j->bdone0 = j->bdone;
    j->bpos0 = j->bpos;
    j->nundo = j->npopped = 0;
    size_t k = 0;
    for (uint32_t x = 0; x < j->nj; x++) {
        const seg__jrj *J = &j->js[x];
        uint32_t nv = J->ast->nvariants + 1, ns = J->ast->nstates;
        memcpy(j->stats0 + k, J->v_entered, nv * sizeof *J->v_entered);
        k += nv;
        memcpy(j->stats0 + k, J->v_converted, nv * sizeof *J->v_converted);
        k += nv;
        memcpy(j->stats0 + k, J->s_entered, ns * sizeof *J->s_entered);
        k += ns;
        memcpy(j->stats0 + k, J->s_converted, ns * sizeof *J->s_converted);
        k += ns;
    }
    return SEG_OK;
}

/* Before changing record ri: keep its old copy (once per transaction; the
 * records added in it need none). */
static inline int touch(seg_journey *j, uint32_t ri)
{
    seg__jrec *r = R(j, ri);
    if (r->txn == j->epoch)
        return SEG_OK;
    GROW(j, j->undo, j->nundo, j->capundo);
    seg__jrec *u = &j->undo[j->nundo++];
    *u = *r;
    u->next = ri; /* a record's 'next' never changes: the slot holds its index */
    r->txn = j->epoch;
    return SEG_OK;
}

static int rec_new(seg_journey *j, uint32_t ci, uint32_t jx, uint32_t *out)
{
    if (j->nrecs == UINT32_MAX - 1)
        return seg__error(j->db, SEG_ELIMIT, "too many customers in journeys");
    if (ci >= j->nhead) {
        uint32_t n = j->db->store.ncusts > ci ? j->db->store.ncusts : ci + 1;
        n = n + n / 4 + 16;
        uint32_t *h = seg__realloc_array(&j->db->alloc, j->head, n, sizeof *h);
        if (!h)
            return oom(j);
        for (uint32_t k = j->nhead; k < n; k++)
            h[k] = SEG__NONE;
        j->head = h;
        j->nhead = n;
    }
    uint32_t ri = j->nrecs;
    if ((ri >> SEG__JR_CHUNK_BITS) == j->nchunks) {
        seg__jrec **c = seg__realloc_array(&j->db->alloc, j->chunks, j->nchunks + 1, sizeof *c);
        if (!c)
            return oom(j);
        j->chunks = c;
        c[j->nchunks] = seg__malloc(&j->db->alloc, SEG__JR_CHUNK * sizeof **c);
        if (!c[j->nchunks])
            return oom(j);
        j->nchunks++;
    }
    seg__jrec *r = R(j, ri);
    memset(r, 0, sizeof *r);
    r->ci = ci;
    r->journey = (uint16_t)jx;
    r->state = SEG__JR_OUT;
    r->next = j->head[ci];
    r->txn = j->epoch;
    j->head[ci] = ri; /* undone from r->next (records added last first) */
    j->nrecs++;
    *out = ri;
    return SEG_OK;
}

/* ---- timers ---- */

static inline bool t_less(const seg__jtimer *a, const seg__jtimer *b)
{
    return a->due < b->due || (a->due == b->due && a->rec < b->rec);
}

static void sift_up(seg__jtimer *h, size_t i)
{
    seg__jtimer x = h[i];
    while (i) {
        size_t p = (i - 1) / 4;
        if (!t_less(&x, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static void sift_down(seg__jtimer *h, size_t n, size_t i)
{
    seg__jtimer x = h[i];
    for (;;) {
        size_t c = 4 * i + 1, best;
        if (c >= n)
            break;
        best = c;
        for (size_t k = c + 1; k < c + 4 && k < n; k++)
            if (t_less(&h[k], &h[best]))
                best = k;
        if (!t_less(&h[best], &x))
            break;
        h[i] = h[best];
        i = best;
    }
    h[i] = x;
}

static void heapify(seg__jtimer *h, size_t n)
{
    for (size_t i = n; i-- > 0;)
        sift_down(h, n, i);
}

static inline uint64_t bucket_of(int64_t due)
{
    return due <= SEG_TIME_MIN ? 0 : (uint64_t)(due - SEG_TIME_MIN) >> SEG__JW_BITS;
}

/* The index of the bucket b among the buckets not loaded (nbk: after them
 * all), and whether it is there. */
static uint32_t bucket_find(const seg_journey *j, uint64_t b, bool *found)
{
    uint32_t lo = j->bdone, hi = j->nbk;
    if (lo < hi && b >= j->bk[lo].b && b - j->bk[lo].b < hi - lo &&
        j->bk[lo + (b - j->bk[lo].b)].b == b) {
        /* buckets are mostly consecutive: its place by its number */
        *found = true;
        return lo + (uint32_t)(b - j->bk[lo].b);
    }
    if (j->bhint >= lo && j->bhint < hi) {
        uint64_t hb = j->bk[j->bhint].b;
        if (hb == b) {
            *found = true;
            return j->bhint;
        }
        if (hb < b)
            lo = j->bhint + 1;
        else
            hi = j->bhint;
    }
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (j->bk[mid].b < b)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < j->nbk && j->bk[lo].b == b;
    return lo;
}

static int timer_push(seg_journey *j, int64_t due, uint32_t ri, uint32_t steps)
{
    seg__jtimer t;
    t.due = due;
    t.rec = ri;
    t.steps = steps;
    uint64_t b = bucket_of(due);
    if (j->bdone && b <= j->bk[j->bdone - 1].b) {
        /* due in the loaded bucket, or before it */
        GROW(j, j->side, j->nside, j->capside);
        j->side[j->nside] = t;
        sift_up(j->side, j->nside++);
        return SEG_OK;
    }
    bool found;
    uint32_t i = bucket_find(j, b, &found);
    if (!found) {
        if (j->nbk == j->capbk) {
            size_t cap = j->capbk ? (size_t)j->capbk * 2 : 64;
            if (cap > UINT32_MAX)
                return oom(j);
            seg__jbucket *v = seg__realloc_array(&j->db->alloc, j->bk, cap, sizeof *v);
            if (!v)
                return oom(j);
            j->bk = v;
            j->capbk = (uint32_t)cap;
        }
        memmove(&j->bk[i + 1], &j->bk[i], (j->nbk - i) * sizeof *j->bk);
        memset(&j->bk[i], 0, sizeof *j->bk);
        j->bk[i].b = b;
        j->nbk++;
    }
    j->bhint = i;
    seg__jbucket *k = &j->bk[i];
    if (k->n == k->cap) {
        size_t cap = k->cap ? (size_t)k->cap + k->cap / 2 + 16 : 16;
        if (cap > UINT32_MAX)
            return oom(j);
        seg__jtimer *v = seg__realloc_array(&j->db->alloc, k->v, cap, sizeof *v);
        if (!v)
            return oom(j);
        k->v = v;
        k->cap = (uint32_t)cap;
    }
    k->v[k->n++] = t;
    return SEG_OK;
}

/* Sort one bucket's timers by (due, record): a radix sort on the due time
 * within the bucket (16 bits) and the record (32 bits), with tmp as
 * scratch; digits that are the same everywhere are skipped. */
static void bucket_sort(seg__jtimer *v, seg__jtimer *tmp, uint32_t n, uint64_t b)
{
    int64_t base = SEG_TIME_MIN + (int64_t)(b << SEG__JW_BITS);
    static const unsigned shifts[6] = { 0, 8, 16, 24, 32, 40 };
    seg__jtimer *src = v, *dst = tmp;
    for (unsigned d = 0; d < 6; d++) {
        uint32_t cnt[256] = { 0 };
        unsigned sh = shifts[d];
        for (uint32_t i = 0; i < n; i++) {
            uint64_t key = ((uint64_t)(src[i].due - base) << 32) | src[i].rec;
            cnt[(key >> sh) & 0xff]++;
        }
        bool skip = false;
        for (unsigned c = 0; c < 256; c++)
            if (cnt[c] == n)
                skip = true;
        if (skip)
            continue;
        uint32_t sum = 0;
        for (unsigned c = 0; c < 256; c++) {
            uint32_t x = cnt[c];
            cnt[c] = sum;
            sum += x;
        }
        for (uint32_t i = 0; i < n; i++) {
            uint64_t key = ((uint64_t)(src[i].due - base) << 32) | src[i].rec;
            dst[cnt[(key >> sh) & 0xff]++] = src[i];
        }
        seg__jtimer *x = src;
        src = dst;
        dst = x;
    }
    if (src != v)
        memcpy(v, src, (size_t)n * sizeof *v);
}

static int by_due_rec(const void *a, const void *b)
{
    const seg__jtimer *x = a, *y = b;
    return t_less(x, y) ? -1 : t_less(y, x);
}

/* The same for large buckets: one counting sort on the second within the
 * bucket (cnt: 2^SEG__JW_BITS counters), then the timers of one second in
 * record order. */
static void bucket_sort_big(seg__jtimer *v, seg__jtimer *tmp, uint32_t *cnt, uint32_t n,
                            uint64_t b)
{
    int64_t base = SEG_TIME_MIN + (int64_t)(b << SEG__JW_BITS);
    const uint32_t W = 1u << SEG__JW_BITS;
    memset(cnt, 0, W * sizeof *cnt);
    for (uint32_t i = 0; i < n; i++)
        cnt[v[i].due - base]++;
    uint32_t sum = 0;
    for (uint32_t c = 0; c < W; c++) {
        uint32_t x = cnt[c];
        cnt[c] = sum;
        sum += x;
    }
    for (uint32_t i = 0; i < n; i++)
        tmp[cnt[v[i].due - base]++] = v[i];
    for (uint32_t i = 0; i < n;) {
        uint32_t e = i + 1;
        while (e < n && tmp[e].due == tmp[i].due)
            e++;
        if (e - i > 16) {
            qsort(tmp + i, e - i, sizeof *tmp, by_due_rec);
        } else {
            for (uint32_t a = i + 1; a < e; a++) {
                seg__jtimer x = tmp[a];
                uint32_t q = a;
                for (; q > i && tmp[q - 1].rec > x.rec; q--)
                    tmp[q] = tmp[q - 1];
                tmp[q] = x;
            }
        }
        i = e;
    }
    memcpy(v, tmp, (size_t)n * sizeof *v);
}

static void bucket_load(seg_journey *j, seg__jbucket *k)
{
    if (k->n < 64) {
        qsort(k->v, k->n, sizeof *k->v, by_due_rec);
        return;
    }
    bool big = k->n >= 8192;
    size_t sz = (size_t)k->n * sizeof(seg__jtimer) + (big ? sizeof(uint32_t) << SEG__JW_BITS : 0);
    if (sz > j->capscratch) { /* kept until the transaction ends */
        seg__free(&j->db->alloc, j->scratch);
        j->capscratch = 0;
        j->scratch = seg__malloc(&j->db->alloc, sz + sz / 2);
        if (!j->scratch) { /* no scratch: sorted in place, slower */
            qsort(k->v, k->n, sizeof *k->v, by_due_rec);
            return;
        }
        j->capscratch = sz + sz / 2;
    }
    seg__jtimer *tmp = j->scratch;
    if (big)
        bucket_sort_big(k->v, tmp, (uint32_t *)(void *)(tmp + k->n), k->n, k->b);
    else
        bucket_sort(k->v, tmp, k->n, k->b);
}

#define PF_REC 32  /* how far ahead the records of the timers to come are fetched */
#define PF_CUST 16 /* and their customers (the records in cache by then) */
/* Take the first timer due at or before now into *out: false when none is
 * (or *rc says why not). */
static bool timer_next(seg_journey *j, int64_t now, seg__jtimer *out, int *rc)
{
    for (;;) {
        const seg__jbucket *k = j->bdone ? &j->bk[j->bdone - 1] : NULL;
        const seg__jtimer *a = k && j->bpos < k->n ? &k->v[j->bpos] : NULL;
        const seg__jtimer *h = j->nside ? &j->side[0] : NULL;
        if (h && j->bdone < j->nbk && bucket_of(h->due) >= j->bk[j->bdone].b)
            h = NULL; /* a bucket not loaded comes first (after a rollback) */
        if (a || h) {
            bool side = !a || (h && t_less(h, a));
            const seg__jtimer *t = side ? h : a;
            if (t->due > now)
                return false;
            *out = *t;
            if (!side) {
                j->bpos++;
                /* the records (then their customers) of the timers to come:
                 * in time order, they are all over memory */
                if (j->bpos + PF_REC < k->n)
                    PREFETCH(R(j, k->v[j->bpos + PF_REC].rec));
                if (j->bpos + PF_CUST < k->n && k->v[j->bpos + PF_CUST].rec < j->nrecs) {
                    const char *c = (const char *)&j->db->store.custs[R(j, k->v[j->bpos +
                                                                              PF_CUST].rec)->ci];
                    PREFETCH(c);       /* the counts and the id */
                    PREFETCH(c + 56);  /* to the last purchase */
                }
                return true;
            }
            if (j->npopped == j->cappopped) {
                size_t cap = j->cappopped ? j->cappopped * 2 : 64;
                seg__jtimer *p = seg__realloc_array(&j->db->alloc, j->popped, cap, sizeof *p);
                if (!p) {
                    *rc = oom(j);
                    return false;
                }
                j->popped = p;
                j->cappopped = cap;
            }
            j->popped[j->npopped++] = *out;
            j->side[0] = j->side[--j->nside];
            if (j->nside)
                sift_down(j->side, j->nside, 0);
            return true;
        }
        /* the loaded buckets are done: the next one, if its time has come */
        if (j->bdone == j->nbk)
            return false;
        seg__jbucket *nx = &j->bk[j->bdone];
        if (nx->b > bucket_of(now))
            return false;
        bucket_load(j, nx);
        j->bdone++;
        j->bpos = 0;
    }
}

static void bucket_purge(seg__jtimer *v, uint32_t *n, uint32_t from, uint32_t nrecs)
{
    uint32_t w = from;
    for (uint32_t i = from; i < *n; i++)
        if (v[i].rec < nrecs)
            v[w++] = v[i];
    *n = w;
}

/* After a rollback: the buckets' cursor back where it was, the timers of
 * the records that are gone dropped, and those taken from the side heap
 * back in it (as many as fit when memory is short). */
static void timers_rollback(seg_journey *j)
{
    j->bdone = j->bdone0;
    j->bpos = j->bpos0;
    for (uint32_t i = j->bdone ? j->bdone - 1 : 0; i < j->nbk; i++)
        bucket_purge(j->bk[i].v, &j->bk[i].n, i + 1 == j->bdone ? j->bpos : 0, j->nrecs);
    size_t w = 0;
    for (size_t k = 0; k < j->nside; k++)
        if (j->side[k].rec < j->nrecs)
            j->side[w++] = j->side[k];
    j->nside = w;
    if (j->nside + j->npopped > j->capside) {
        seg__jtimer *p = seg__realloc_array(&j->db->alloc, j->side, j->nside + j->npopped,
                                            sizeof *p);
        if (p) {
            j->side = p;
            j->capside = j->nside + j->npopped;
        }
    }
    for (size_t k = 0; k < j->npopped && j->nside < j->capside; k++)
        if (j->popped[k].rec < j->nrecs)
            j->side[j->nside++] = j->popped[k];
    heapify(j->side, j->nside);
}

/* At commit: free the buckets consumed. */
static void timers_commit(seg_journey *j)
{
    uint32_t drop = j->bdone;
    if (drop && j->bpos < j->bk[drop - 1].n)
        drop--; /* the last loaded one still has timers */
    if (!drop)
        return;
    for (uint32_t i = 0; i < drop; i++)
        seg__free(&j->db->alloc, j->bk[i].v);
    memmove(j->bk, j->bk + drop, (j->nbk - drop) * sizeof *j->bk);
    j->nbk -= drop;
    j->bdone -= drop;
    if (!j->bdone)
        j->bpos = 0;
    j->bhint = 0;
}

size_t seg__jr_memory(const seg_journey *j)
{
    size_t n = (size_t)j->nchunks * SEG__JR_CHUNK * sizeof(seg__jrec) +
               (size_t)j->nhead * sizeof *j->head + (size_t)j->capbk * sizeof *j->bk +
               j->capside * sizeof *j->side + j->capundo * sizeof *j->undo +
               j->cappopped * sizeof *j->popped + j->capscratch;
    for (uint32_t i = 0; i < j->nbk; i++)
        n += (size_t)j->bk[i].cap * sizeof(seg__jtimer);
    return n;
}

/* ---- the transaction's end ---- */

#define LOG_KEEP 4096 /* entries a log keeps between transactions */

static void txn_end(seg_db *db, void *state, bool committed)
{
    seg_journey *j = state;
    (void)db;
    j->tgen++;
    if (!j->in_txn)
        return;
    size_t mem = seg__jr_memory(j);
    if (mem > j->mem_peak)
        j->mem_peak = mem;
    if (committed) {
        timers_commit(j);
    } else {
        for (size_t k = j->ngone; k > 0; k -= 2)
            j->head[j->gone[k - 2]] = j->gone[k - 1];
        for (size_t k = j->nundo; k-- > 0;) {
            seg__jrec u = j->undo[k];
            seg__jrec *r = R(j, u.next);
            u.next = r->next;
            *r = u;
        }
        for (uint32_t ri = j->nrecs; ri-- > j->nrecs0;)
            j->head[R(j, ri)->ci] = R(j, ri)->next;
        j->nrecs = j->nrecs0;
        timers_rollback(j);
        j->clock = j->clock0;
        j->has_clock = j->has_clock0;
        size_t k = 0;
        for (uint32_t x = 0; x < j->nj; x++) {
            seg__jrj *J = &j->js[x];
            uint32_t nv = J->ast->nvariants + 1, ns = J->ast->nstates;
            memcpy(J->v_entered, j->stats0 + k, nv * sizeof *J->v_entered);
            k += nv;
            memcpy(J->v_converted, j->stats0 + k, nv * sizeof *J->v_converted);
            k += nv;
            memcpy(J->s_entered, j->stats0 + k, ns * sizeof *J->s_entered);
            k += ns;
            memcpy(J->s_converted, j->stats0 + k, ns * sizeof *J->s_converted);
            k += ns;
        }
    }
    for (uint32_t x = 0; x < j->nj; x++)
        j->js[x].stats_dirty = false;
    /* a new mark: no record is saved in the (empty) log; once in 255
     * transactions, every record's mark is cleared */
    if (++j->epoch == 0) {
        for (uint32_t ri = 0; ri < j->nrecs; ri++)
            R(j, ri)->txn = 0;
        j->epoch = 1;
    }
    j->nundo = j->npopped = j->ngone = 0;
    if (j->capundo > LOG_KEEP) {
        seg__free(&j->db->alloc, j->undo);
        j->undo = NULL;
        j->capundo = 0;
    }
    seg__free(&j->db->alloc, j->scratch);
    j->scratch = NULL;
    j->capscratch = 0;
    if (j->cappopped > LOG_KEEP) {
        seg__free(&j->db->alloc, j->popped);
        j->popped = NULL;
        j->cappopped = 0;
    }
    if (j->capside > LOG_KEEP && j->nside < j->capside / 4) {
        size_t cap = j->nside * 2 + 16;
        seg__jtimer *p = seg__realloc_array(&j->db->alloc, j->side, cap, sizeof *p);
        if (p) {
            j->side = p;
            j->capside = cap;
        }
    }
    j->in_txn = false;
}

/* ---- conditions ---- */

/* The walk-mode run for single customers, bound for this transaction. */
static int run_ready(seg_journey *j, int64_t now)
{
    if (j->run_ok)
        return SEG_OK;
    int rc = seg__run_init(&j->run, j->cdef, now, false);
    if (rc != SEG_OK)
        return rc;
    j->run_ok = true;
    return SEG_OK;
}

static void run_done(seg_journey *j)
{
    if (j->run_ok)
        seg__run_free(&j->run);
    j->run_ok = false;
}

/* Evaluate customer ci's conditions at time t (events before t count, and
 * while an event at t is applied, that one too); NULL when ci is not a
 * customer then. */
static const uint8_t *eval_at(seg_journey *j, uint32_t ci, int64_t t)
{
    if (!j->run_ok || t + j->bias >= SEG_TIME_MAX || t <= SEG_TIME_MIN)
        return NULL;
    if (seg__run_retime(&j->run, t + j->bias, ci) != SEG_OK) {
        j->eval_err = SEG_ENOMEM;
        return NULL;
    }
    return seg__run_customer(&j->run, ci) ? j->run.member : NULL;
}

/* Is variant var one of the list (none: every variant)?  At open only: the
 * compiled transitions and actions keep the answer as a mask. */
static bool variant_ok(const seg__jrj *J, const seg__str *v, uint32_t n, uint8_t var)
{
    if (!n)
        return true;
    const char *name = J->variant_names[var];
    size_t len = strlen(name);
    for (uint32_t k = 0; k < n; k++)
        if (seg__str_eq(v[k], name, len))
            return true;
    return false;
}

/* Does a condition of record r's state (or an exit condition) hold in m? */
static bool state_cond_true(const seg__jrj *J, const seg__jrec *r, const uint8_t *m)
{
    const seg__jrast *A = J->ast;
    for (uint32_t x = 0; x < A->nexits; x++)
        if (J->exit_seg[x] != UINT32_MAX && m[J->exit_seg[x]])
            return true;
    const seg__jr_state *st = &A->states[r->state];
    for (uint32_t t = 0; t < st->ntrans; t++) {
        const seg__jr_trans *tr = &st->trans[t];
        if (tr->kind == SEG__JT_WHEN && m[J->when_seg[r->state][t]] &&
            (J->tc[J->sc[r->state].t0 + t].vmask >> r->variant & 1))
            return true;
    }
    return false;
}

static inline bool state_has_conds(const seg__jrj *J, const seg__jrec *r)
{
    return J->sc[r->state].has_conds;
}

/* The first time in (lo, hi] at which cond(t) holds, given it holds at hi
 * (and, it is assumed, not at lo). */
typedef bool (*cond_fn)(seg_journey *j, uint32_t ci, uint32_t jx, uint32_t ri, int64_t t);

static int64_t bisect(seg_journey *j, cond_fn f, uint32_t ci, uint32_t jx, uint32_t ri,
                      int64_t lo, int64_t hi)
{
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (f(j, ci, jx, ri, mid))
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

static bool cond_state(seg_journey *j, uint32_t ci, uint32_t jx, uint32_t ri, int64_t t)
{
    const uint8_t *m = eval_at(j, ci, t);
    return m && state_cond_true(&j->js[jx], R(j, ri), m);
}

static bool cond_enter(seg_journey *j, uint32_t ci, uint32_t jx, uint32_t ri, int64_t t)
{
    (void)ri;
    const uint8_t *m = eval_at(j, ci, t);
    return m && m[j->js[jx].enter_seg];
}

/* ---- steps and their actions ---- */

static const char *cust_id(seg_journey *j, uint32_t ci)
{
    seg__str id = seg__cust_id(&j->db->store, ci);
    memcpy(j->idbuf, id.p, id.n);
    j->idbuf[id.n] = '\0';
    return j->idbuf;
}

/* "key=value;key=value" of an action's parameters (literals: built once, at
 * open); NULL when out of memory. */
static char *params_text(const seg__alloc *al, const seg__jr_action *a)
{
    size_t cap = 1;
    for (uint32_t k = 0; k < a->nparams; k++) {
        const seg__node *v = a->params[k].value;
        size_t vn;
        if (v->kind == SEG__N_STR) {
            vn = v->s.n;
        } else {
            char *t = seg__sd_print_expr(al, v);
            if (!t)
                return NULL;
            vn = strlen(t);
            seg__free(al, t);
        }
        cap += a->params[k].key.n + 2 + 3 * vn;
    }
    char *b = seg__malloc(al, cap);
    if (!b)
        return NULL;
    size_t n = 0;
    for (uint32_t k = 0; k < a->nparams; k++) {
        const seg__node *v = a->params[k].value;
        const char *txt;
        size_t tn;
        char *owned = NULL;
        if (v->kind == SEG__N_STR) {
            txt = v->s.p;
            tn = v->s.n;
        } else {
            owned = seg__sd_print_expr(al, v);
            if (!owned) {
                seg__free(al, b);
                return NULL;
            }
            txt = owned;
            tn = strlen(txt);
        }
        if (k)
            b[n++] = ';';
        memcpy(b + n, a->params[k].key.p, a->params[k].key.n);
        n += a->params[k].key.n;
        b[n++] = '=';
        for (size_t q = 0; q < tn; q++) {
            char c = txt[q];
            if (c == ';' || c == '=' || c == '%') {
                static const char hex[] = "0123456789ABCDEF";
                b[n++] = '%';
                b[n++] = hex[(unsigned char)c >> 4];
                b[n++] = hex[(unsigned char)c & 15];
            } else {
                b[n++] = c;
            }
        }
        seg__free(al, owned);
    }
    b[n] = '\0';
    return b;
}

static inline char *put_u32(char *p, uint32_t v)
{
    char d[10];
    unsigned n = 0;
    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = d[--n];
    return p;
}

/* Give the queued actions to the outbox, then to the callback, in order.
 * An outbox error stops the outbox there (the callback has seen the
 * actions before it) and is returned; the queue is empty after. */
static int flush(seg_journey *j)
{
    int rc = SEG_OK;
    uint32_t k = 0, n = j->nq;
    while (k < n && rc == SEG_OK) {
        uint32_t e = k;
        while (e < n && !j->qheld[e])
            e++;
        size_t done = e - k;
        if (e > k)
            rc = j->outbox_emit(j->db, &j->q[k], e - k, &j->qout[k], &done);
        uint32_t end = rc == SEG_OK ? e + (e < n) : k + (uint32_t)done;
        for (uint32_t x = k; x < end; x++) {
            if (j->qheld[x])
                j->qout[x] = SEG_JOURNEY_HELD_OUT;
            if (!j->cb)
                continue;
            const seg__action *act = &j->q[x];
            seg_journey_action ja;
            ja.struct_size = sizeof ja;
            ja.time = act->time;
            ja.customer_id = act->customer_id;
            ja.journey = act->journey;
            ja.run = act->run;
            ja.step = act->step;
            ja.state = act->state;
            ja.action = act->action;
            ja.channel = act->channel;
            ja.params = act->params;
            ja.variant = act->variant;
            ja.outcome = j->qout[x];
            j->cb(&ja, j->cb_payload);
        }
        k = end;
    }
    j->nq = 0;
    j->nqtext = 0;
    return rc;
}

/* flush() at the end of a batch or an advance whose work returned rc: the
 * outbox's error if any (it happened first), else rc with its message */
static int flush_end(seg_journey *j, int rc)
{
    if (!j->nq)
        return rc;
    char msg[512];
    msg[0] = '\0';
    if (rc != SEG_OK)
        snprintf(msg, sizeof msg, "%s", seg_errmsg(j->db));
    int rf = flush(j);
    if (rf != SEG_OK)
        return rf;
    if (rc != SEG_OK)
        seg__error(j->db, rc, "%s", msg);
    return rc;
}

/* The actions [a0, a0 + na) of a step of record ri at t, from state `from`
 * to state `to` (SEG__JR_OUT: from outside, to the exit); *k counts the
 * step's actions. */
static int emit(seg_journey *j, uint32_t ri, int64_t t, uint32_t a0, uint32_t na, uint32_t *k,
                uint32_t from, uint32_t to)
{
    if (!na)
        return SEG_OK;
    seg__jrec *r = R(j, ri);
    const seg__jrj *J = &j->js[r->journey];
    bool held = J->ast->has_holdout && r->variant == J->ast->nvariants;
    char step[SEG__JR_STEP_MAX];
    char *sp = NULL; /* the step's text up to '#', made at its first action */
    for (uint32_t q = 0; q < na; q++) {
        const seg__jract *a = &J->acts[a0 + q];
        if (!(a->vmask >> r->variant & 1))
            continue;
        if (!sp) {
            sp = put_u32(step, r->steps);
            *sp++ = ':';
            if (from != SEG__JR_OUT) {
                size_t n = J->sc[from].name_len;
                memcpy(sp, J->state_names[from], n > SEG_ID_MAX ? SEG_ID_MAX : n);
                sp += n > SEG_ID_MAX ? SEG_ID_MAX : n;
            }
            *sp++ = '>';
            if (to != SEG__JR_OUT) {
                size_t n = J->sc[to].name_len;
                memcpy(sp, J->state_names[to], n > SEG_ID_MAX ? SEG_ID_MAX : n);
                sp += n > SEG_ID_MAX ? SEG_ID_MAX : n;
            } else {
                memcpy(sp, "(exit)", 6);
                sp += 6;
            }
            *sp++ = '#';
            cust_id(j, r->ci);
        }
        char *end = put_u32(sp, (*k)++);
        *end = '\0';
        if (held && !j->cb)
            continue;
        /* queued (see flush) */
        size_t nid = strlen(j->idbuf), nstep = (size_t)(end - step) + 1;
        if (j->nq == SEG__JR_QUEUE || SEG__JR_QTEXT - j->nqtext < nid + 1 + nstep) {
            int rc = flush(j);
            if (rc != SEG_OK)
                return rc;
        }
        char *qid = j->qtext + j->nqtext;
        memcpy(qid, j->idbuf, nid + 1);
        char *qstep = qid + nid + 1;
        memcpy(qstep, step, nstep);
        j->nqtext += nid + 1 + nstep;
        seg__action *act = &j->q[j->nq];
        act->time = t;
        act->customer_id = qid;
        act->journey = J->name;
        act->run = r->run;
        act->step = qstep;
        act->state = r->state == SEG__JR_OUT ? "" : J->state_names[r->state];
        act->action = a->name;
        act->channel = a->channel;
        act->params = a->params;
        act->variant = J->ast->nvariants || J->ast->has_holdout ? J->variant_names[r->variant]
                                                                : NULL;
        act->cust_index = r->ci + 1;
        act->stable_names = true; /* (freed in engine_free, which tells the outbox) */
        j->qheld[j->nq++] = held;
    }
    return SEG_OK;
}

/* The time of customer ci's last purchase at or before asof (INT64_MIN:
 * none): the aggregate, or a walk when later events are in. */
static int64_t last_purchase(const seg_journey *j, uint32_t ci, int64_t asof)
{
    const seg__store *s = &j->db->store;
    const seg__cust *c = &s->custs[ci];
    if (!c->orders)
        return INT64_MIN;
    if (c->last_purchase <= asof)
        return c->last_purchase;
    int64_t best = INT64_MIN;
    for (uint32_t i = c->head; i != SEG__NONE; i = seg__ev_next(s, i)) {
        int64_t ts = seg__ev_ts(s, i);
        if (ts <= asof && ts > best && seg__ev_kind(s, i) == SEG_EVENT_PURCHASE &&
            seg__ev_amount(s, i) > 0)
            best = ts;
    }
    return best;
}

/* When record r's earliest 'after' transition is due (INT64_MAX: none),
 * with the purchases at or before asof. */
static int64_t timer_due_of(const seg_journey *j, const seg__jrec *r, uint32_t *which,
                            int64_t asof)
{
    if (r->state == SEG__JR_OUT)
        return INT64_MAX;
    const seg__jrj *J = &j->js[r->journey];
    const seg__jrsc *sc = &J->sc[r->state];
    int64_t best = INT64_MAX;
    for (uint32_t t = 0; t < sc->naf; t++) {
        const seg__jraf *tr = &J->af[sc->af0 + t];
        if (!(tr->vmask >> r->variant & 1))
            continue;
        int64_t from = r->since;
        if (tr->since == SEG__JS_PURCHASE) {
            int64_t lp = last_purchase(j, r->ci, asof);
            if (lp != INT64_MIN)
                from = lp > from - tr->dur ? lp : from - tr->dur; /* (due at once) */
        }
        int64_t due = from > INT64_MAX - tr->dur ? INT64_MAX : from + tr->dur;
        if (due < r->since)
            due = r->since;
        if (due < best) {
            best = due;
            if (which)
                *which = tr->k;
        }
    }
    return best;
}

static NOINLINE void timer_due_fill(seg_journey *j, uint32_t ri, int64_t asof)
{
    uint32_t w = 0;
    j->tcache.due = timer_due_of(j, R(j, ri), &w, asof);
    j->tcache.gen = j->tgen;
    j->tcache.ri = ri;
    j->tcache.asof = asof;
    j->tcache.which = w;
}

/* The same, remembered for the last record asked about until the next step
 * or batch (tgen): a step asks several times. */
static inline int64_t timer_due(seg_journey *j, uint32_t ri, uint32_t *which, int64_t asof)
{
    if (j->tcache.gen != j->tgen || j->tcache.ri != ri || j->tcache.asof != asof)
        timer_due_fill(j, ri, asof);
    if (which)
        *which = j->tcache.which;
    return j->tcache.due;
}

static int arm(seg_journey *j, uint32_t ri, int64_t asof)
{
    int64_t due = timer_due(j, ri, NULL, asof);
    if (due == INT64_MAX || due > SEG_TIME_MAX)
        return SEG_OK;
    return timer_push(j, due, ri, R(j, ri)->steps);
}

/* Record ri enters state `to` at t, by transition tr (NULL: entering the
 * journey). */
static int enter_state(seg_journey *j, uint32_t ri, uint32_t to, int64_t t,
                       const seg__jrtc *tr)
{
    int rc = touch(j, ri);
    if (rc != SEG_OK)
        return rc;
    seg__jrec *r = R(j, ri);
    seg__jrj *J = &j->js[r->journey];
    uint32_t from = r->state;
    j->tgen++;
    r->steps++;
    r->state = (uint16_t)to;
    r->since = t;
    r->reason = SEG_JOURNEY_IN;
    J->s_entered[to]++;
    J->stats_dirty = true;
    uint32_t k = 0;
    if (tr && (rc = emit(j, ri, t, tr->a0, tr->na, &k, from, to)) != SEG_OK)
        return rc;
    if ((rc = emit(j, ri, t, J->sc[to].a0, J->sc[to].na, &k, from, to)) != SEG_OK)
        return rc;
    return arm(j, ri, t);
}

static int leave(seg_journey *j, uint32_t ri, int64_t t, int reason, const seg__jrtc *tr)
{
    int rc = touch(j, ri);
    if (rc != SEG_OK)
        return rc;
    seg__jrec *r = R(j, ri);
    uint32_t from = r->state;
    j->tgen++;
    r->steps++;
    r->state = SEG__JR_OUT;
    r->since = t;
    r->reason = (uint8_t)reason;
    uint32_t k = 0;
    if (tr)
        return emit(j, ri, t, tr->a0, tr->na, &k, from, SEG__JR_OUT);
    return SEG_OK;
}

/* Record ri takes transition k of its state at t. */
static int take(seg_journey *j, uint32_t ri, uint32_t k, int64_t t)
{
    const seg__jrec *r = R(j, ri);
    const seg__jrj *J = &j->js[r->journey];
    const seg__jrtc *tr = &J->tc[J->sc[r->state].t0 + k];
    if (tr->target == SEG__JR_OUT)
        return leave(j, ri, t, SEG_JOURNEY_EXIT_DONE, tr);
    return enter_state(j, ri, tr->target, t, tr);
}

/* After a step at t: '->' at once, exit conditions and 'when' conditions
 * that hold at t, until the record rests. */
static int settle(seg_journey *j, uint32_t ri, int64_t t)
{
    for (uint32_t n = 0; n < SEG__JR_CHAIN_MAX; n++) {
        seg__jrec *r = R(j, ri);
        if (r->state == SEG__JR_OUT)
            return SEG_OK;
        const seg__jrj *J = &j->js[r->journey];
        if (!J->sc[r->state].has_conds && !J->sc[r->state].has_now)
            return SEG_OK; /* nothing to try at once */
        const seg__jr_state *st = &J->ast->states[r->state];
        const uint8_t *m = NULL;
        if (state_has_conds(J, r)) {
            m = eval_at(j, r->ci, t);
            if (j->eval_err)
                return oom(j);
            for (uint32_t x = 0; m && x < J->ast->nexits; x++)
                if (J->exit_seg[x] != UINT32_MAX && m[J->exit_seg[x]])
                    return leave(j, ri, t, SEG_JOURNEY_EXIT_RULE, NULL);
        }
        uint32_t go = UINT32_MAX;
        const seg__jrtc *tc = &J->tc[J->sc[r->state].t0];
        for (uint32_t k = 0; k < st->ntrans && go == UINT32_MAX; k++) {
            const seg__jr_trans *tr = &st->trans[k];
            if (!(tc[k].vmask >> r->variant & 1))
                continue;
            if (tr->kind == SEG__JT_NOW || (tr->kind == SEG__JT_WHEN && m &&
                                            m[J->when_seg[r->state][k]]))
                go = k;
        }
        if (go == UINT32_MAX)
            return SEG_OK;
        int rc = take(j, ri, go, t);
        if (rc != SEG_OK)
            return rc;
    }
    return SEG_OK;
}

/* Take record ri up to time `until`: its timers and the changes of its
 * time-dependent conditions, in time order. */
static int catch_up(seg_journey *j, uint32_t ri, int64_t until, int64_t asof)
{
    for (uint32_t n = 0; n < 4 * SEG__JR_CHAIN_MAX; n++) {
        seg__jrec *r = R(j, ri);
        if (r->state == SEG__JR_OUT)
            return SEG_OK;
        const seg__jrj *J = &j->js[r->journey];
        uint32_t which = 0;
        int64_t due = timer_due(j, ri, &which, asof);
        int64_t lim = due <= until ? due - 1 : until;
        if (J->tdep_state[r->state] && lim > r->since &&
            cond_state(j, r->ci, r->journey, ri, lim)) {
            int64_t at = bisect(j, cond_state, r->ci, r->journey, ri, r->since, lim);
            int rc = settle(j, ri, at);
            if (rc != SEG_OK)
                return rc;
            if (R(j, ri)->steps != r->steps)
                continue;
            return SEG_OK; /* held at the search, not when settled: rest */
        }
        if (j->eval_err)
            return oom(j);
        if (due > until)
            return SEG_OK;
        int rc = take(j, ri, which, due);
        if (rc == SEG_OK)
            rc = settle(j, ri, due);
        if (rc != SEG_OK)
            return rc;
    }
    return SEG_OK;
}

/* May the customer (re)enter journey jx at t? */
static bool may_enter(const seg_journey *j, const seg__jrec *r, uint32_t jx, int64_t t,
                      int64_t *from)
{
    *from = INT64_MIN;
    if (!r)
        return true;
    if (r->state != SEG__JR_OUT)
        return false;
    const seg__jrast *A = j->js[jx].ast;
    switch (A->reentry) {
    case SEG__JR_ALWAYS:
        *from = r->since;
        return t > r->since;
    case SEG__JR_AFTER:
        *from = r->since + A->reentry_dur - 1;
        return t > *from;
    default:
        return false;
    }
}

static uint8_t pick_variant(const seg_journey *j, uint32_t jx, uint32_t ci)
{
    const seg__jrj *J = &j->js[jx];
    const seg__jrast *A = J->ast;
    if (!A->nvariants && !A->has_holdout)
        return 0;
    seg__str id = seg__cust_id(&j->db->store, ci);
    uint32_t bucket = (uint32_t)(seg__hash(id.p, id.n, J->seed) % 100);
    uint32_t acc = 0;
    for (uint32_t v = 0; v < A->nvariants; v++) {
        acc += A->shares[v];
        if (bucket < acc)
            return (uint8_t)v;
    }
    return (uint8_t)A->nvariants; /* the holdout */
}

static int enter(seg_journey *j, uint32_t jx, uint32_t ci, uint32_t *ri_io, int64_t t)
{
    int rc;
    if (*ri_io == SEG__NONE && (rc = rec_new(j, ci, jx, ri_io)) != SEG_OK)
        return rc;
    if ((rc = touch(j, *ri_io)) != SEG_OK)
        return rc;
    seg__jrec *r = R(j, *ri_io);
    seg__jrj *J = &j->js[jx];
    j->tgen++;
    r->run++;
    r->steps = 0;
    r->variant = pick_variant(j, jx, ci);
    r->flags &= (uint8_t)~SEG__JRF_CONVERTED;
    J->v_entered[r->variant]++;
    J->stats_dirty = true;
    if ((rc = enter_state(j, *ri_io, 0, t, NULL)) != SEG_OK)
        return rc;
    return settle(j, *ri_io, t);
}

/* The lowest time an entry found now may be placed at. */
static int64_t entry_floor(const seg_journey *j, const seg__jrec *r, uint32_t jx, int64_t t)
{
    int64_t lo = j->has_clock ? j->clock : t - 1;
    int64_t from;
    may_enter(j, r, jx, t, &from);
    if (from > lo)
        lo = from;
    if (r && r->since > lo)
        lo = r->since;
    return lo < t ? lo : t - 1;
}

/* ---- events ---- */

static bool event_matches(const seg_journey *j, const seg__jr_event *ev, const int64_t *min,
                          uint32_t e)
{
    const seg__store *s = &j->db->store;
    uint32_t kind = seg__ev_kind(s, e);
    if (kind != ev->kind)
        return false;
    if (kind == SEG_EVENT_PURCHASE && seg__ev_amount(s, e) <= 0)
        return false;
    if (kind == SEG_EVENT_PURCHASE && seg__ev_ref(s, e)) {
        /* an order is one purchase: its first line only */
        uint32_t ref = seg__ev_ref(s, e);
        for (uint32_t i = seg__ev_next(s, e); i != SEG__NONE; i = seg__ev_next(s, i))
            if (seg__ev_ref(s, i) == ref && seg__ev_kind(s, i) == SEG_EVENT_PURCHASE)
                return false;
    }
    if (kind == SEG_EVENT_ENGAGEMENT) {
        seg__str n = seg__arena_str(&s->arena, s->names.refs[seg__ev_ref(s, e)]);
        if (!seg__str_eq(ev->name, n.p, n.n))
            return false;
    }
    if (ev->channel.p) {
        uint32_t c = seg__ev_chan(s, e);
        if (!c)
            return false;
        seg__str n = seg__arena_str(&s->arena, s->chan.refs[c - 1]);
        if (!seg__str_eq(ev->channel, n.p, n.n))
            return false;
    }
    if (ev->category.p) {
        uint32_t c = seg__ev_chunk(s, e)->cat[SEG__OFF(e)];
        if (!c)
            return false;
        seg__str n = seg__arena_str(&s->arena, s->cat.refs[c - 1]);
        if (!seg__str_eq(ev->category, n.p, n.n))
            return false;
    }
    if (ev->sku.p) {
        uint32_t c = seg__ev_sku(s, e);
        if (!c)
            return false;
        seg__str n = seg__arena_str(&s->arena, s->sku.refs[c - 1]);
        if (!seg__str_eq(ev->sku, n.p, n.n))
            return false;
    }
    if (min && ev->min_amount) {
        int64_t a = seg__ev_amount(s, e);
        if ((kind == SEG_EVENT_REFUND ? -a : a) < *min)
            return false;
    }
    return true;
}

static const int64_t *min_of(const seg__jr_event *ev, int exponent, int64_t *buf)
{
    if (!ev->min_amount || seg__jr_money(ev->min_amount, exponent, buf) != SEG_OK)
        return NULL;
    return buf;
}

static int on_event(seg_journey *j, uint32_t jx, uint32_t ci, uint32_t e, int64_t ts)
{
    seg__jrj *J = &j->js[jx];
    const seg__jrast *A = J->ast;
    int ex = seg__db_exponent(j->db);
    int64_t mbuf;
    uint32_t ri = rec_find(j, ci, jx);
    int rc;
    bool fresh = false;
    j->bias = 0;
    j->tgen++;
    if (ri == SEG__NONE || R(j, ri)->state == SEG__JR_OUT) {
        const seg__jrec *r = ri == SEG__NONE ? NULL : R(j, ri);
        int64_t from;
        if (!may_enter(j, r, jx, ts, &from))
            return SEG_OK;
        j->bias = 1;
        const uint8_t *m = eval_at(j, ci, ts);
        j->bias = 0;
        if (j->eval_err)
            return oom(j);
        if (!m || !m[J->enter_seg])
            return SEG_OK;
        int64_t at = ts;
        if (J->tdep_enter) {
            /* when did it start to hold: with the event (ts + 1 as a time
             * that sees it) or before? */
            at = bisect(j, cond_enter, ci, jx, ri, entry_floor(j, r, jx, ts + 1), ts + 1);
            if (at > ts)
                at = ts;
        }
        if (at == ts) {
            j->bias = 1; /* the event that let the customer in starts the journey */
            rc = enter(j, jx, ci, &ri, at);
            j->bias = 0;
            return rc;
        }
        if ((rc = enter(j, jx, ci, &ri, at)) != SEG_OK)
            return rc;
        fresh = true;
    }
    seg__jrec *r = R(j, ri);
    if (ts < r->since)
        ts = r->since; /* a late event: it counts now */
    /* what was due before the event happens first */
    if ((rc = catch_up(j, ri, ts, ts - 1)) != SEG_OK)
        return rc;
    (void)fresh;
    r = R(j, ri);
    if (r->state == SEG__JR_OUT)
        return SEG_OK;
    j->bias = 1;
    rc = SEG_OK;
    if (A->has_goal && !(r->flags & SEG__JRF_CONVERTED) &&
        event_matches(j, &A->goal, min_of(&A->goal, ex, &mbuf), e)) {
        if ((rc = touch(j, ri)) != SEG_OK)
            goto out;
        r->flags |= SEG__JRF_CONVERTED;
        J->v_converted[r->variant]++;
        J->s_converted[r->state]++;
        J->stats_dirty = true;
    }
    for (uint32_t x = 0; x < A->nexits; x++)
        if (A->exits[x].kind == SEG__JX_ON &&
            event_matches(j, &A->exits[x].ev, min_of(&A->exits[x].ev, ex, &mbuf), e)) {
            rc = leave(j, ri, ts, SEG_JOURNEY_EXIT_RULE, NULL);
            goto out;
        }
    const seg__jr_state *st = &A->states[r->state];
    for (uint32_t k = 0; k < st->ntrans; k++) {
        const seg__jr_trans *tr = &st->trans[k];
        if (tr->kind == SEG__JT_ON && (J->tc[J->sc[r->state].t0 + k].vmask >> r->variant & 1) &&
            event_matches(j, &tr->ev, min_of(&tr->ev, ex, &mbuf), e)) {
            if ((rc = take(j, ri, k, ts)) == SEG_OK)
                rc = settle(j, ri, ts);
            goto out;
        }
    }
    /* a purchase moves 'after ... since last_purchase' */
    if (seg__ev_kind(&j->db->store, e) == SEG_EVENT_PURCHASE && (rc = arm(j, ri, ts)) != SEG_OK)
        goto out;
    rc = settle(j, ri, ts);
out:
    j->bias = 0;
    return rc;
}

static const seg__store *sort_store;
static int by_time(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    int64_t tx = seg__ev_ts(sort_store, x), ty = seg__ev_ts(sort_store, y);
    if (tx != ty)
        return tx < ty ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int events_added(seg_db *db, void *state, uint32_t first, uint32_t n)
{
    seg_journey *j = state;
    const seg__store *s = &db->store;
    if (!j->nj || !n)
        return SEG_OK;
    int rc = begin(j);
    uint32_t *order = seg__malloc(&db->alloc, (size_t)n * sizeof *order);
    if (!order)
        return oom(j);
    int64_t maxts = INT64_MIN;
    for (uint32_t k = 0; k < n; k++) {
        order[k] = first + k;
        if (seg__ev_ts(s, first + k) > maxts)
            maxts = seg__ev_ts(s, first + k);
    }
    sort_store = s;
    qsort(order, n, sizeof *order, by_time);
    j->eval_err = SEG_OK;
    j->bias = 0;
    if (rc == SEG_OK)
        rc = run_ready(j, maxts < SEG_TIME_MAX ? maxts + 1 : maxts);
    for (uint32_t k = 0; k < n && rc == SEG_OK; k++) {
        uint32_t e = order[k];
        if (seg__ev_kind(s, e) == SEG__KIND_DELETED)
            continue;
        uint32_t ci = seg__ev_cust(s, e);
        if (!s->custs[ci].id)
            continue;
        for (uint32_t jx = 0; jx < j->nj && rc == SEG_OK; jx++)
            rc = on_event(j, jx, ci, e, seg__ev_ts(s, e));
    }
    rc = flush_end(j, rc);
    run_done(j);
    seg__free(&db->alloc, order);
    if (rc == SEG_OK)
        rc = seg__jr_persist(j);
    return rc;
}

/* A customer erased or anonymized: they leave every journey.  Their
 * records are unlinked from the customer (so an anonymized customer, under
 * the new id, starts afresh as after a reopen), marked out with their step
 * count moved on (their timers are stale), and their stored states are
 * deleted; all undone on rollback. */
static int customer_gone(seg_db *db, void *state, uint32_t ci, const char *customer_id)
{
    seg_journey *j = state;
    if (ci >= j->nhead || j->head[ci] == SEG__NONE)
        return SEG_OK;
    int rc = begin(j);
    if (rc != SEG_OK)
        return rc;
    if (j->ngone + 2 > j->capgone) {
        size_t c2 = j->capgone * 2 + 16;
        uint32_t *p = seg__realloc_array(&db->alloc, j->gone, c2, sizeof *p);
        if (!p)
            return oom(j);
        j->gone = p;
        j->capgone = c2;
    }
    bool rec = seg__st_wants_records(db);
    for (uint32_t ri = j->head[ci]; ri != SEG__NONE; ri = R(j, ri)->next) {
        if ((rc = touch(j, ri)) != SEG_OK)
            return rc;
        seg__jrec *r = R(j, ri);
        if (rec) {
            char key[2 * SEG_ID_MAX + 4];
            snprintf(key, sizeof key, "%s/%s", j->js[r->journey].name, customer_id);
            if ((rc = seg__st_put_record(db, "journey", key, NULL, 0)) != SEG_OK)
                return rc;
        }
        r->state = SEG__JR_OUT;
        r->reason = SEG_JOURNEY_EXIT_REMOVED;
        r->steps++;
    }
    j->gone[j->ngone++] = ci;
    j->gone[j->ngone++] = j->head[ci];
    j->head[ci] = SEG__NONE;
    return SEG_OK;
}

static const seg__module_ops journey_ops = { "journey", events_added, txn_end, customer_gone };

/* ---- advance ---- */

typedef struct hit {
    uint32_t ci, jx;
} hit;

typedef struct bulk {
    seg_journey *j;
    int64_t now;
    bool all;        /* every condition (attributes changed) */
    hit *v;
    size_t n, cap;
    int err;
} bulk;

static int bulk_visit(void *ctx, uint32_t ci, const uint8_t *m)
{
    bulk *b = ctx;
    seg_journey *j = b->j;
    for (uint32_t jx = 0; jx < j->nj; jx++) {
        const seg__jrj *J = &j->js[jx];
        uint32_t ri = rec_find(j, ci, jx);
        const seg__jrec *r = ri == SEG__NONE ? NULL : R(j, ri);
        bool h = false;
        if (!r || r->state == SEG__JR_OUT) {
            int64_t from;
            h = (b->all || J->tdep_enter) && may_enter(j, r, jx, b->now, &from) &&
                m[J->enter_seg];
        } else if (b->all || J->tdep_state[r->state]) {
            h = state_cond_true(J, r, m);
        }
        if (!h)
            continue;
        if (b->n == b->cap) {
            size_t cap = b->cap ? b->cap * 2 : 256;
            hit *v = seg__realloc_array(&j->db->alloc, b->v, cap, sizeof *v);
            if (!v) {
                b->err = SEG_ENOMEM;
                return 1;
            }
            b->v = v;
            b->cap = cap;
        }
        b->v[b->n].ci = ci;
        b->v[b->n].jx = jx;
        b->n++;
    }
    return 0;
}

static int advance_work(seg_journey *j, int64_t now)
{
    int rc = begin(j);
    j->eval_err = SEG_OK;
    if (rc == SEG_OK)
        rc = run_ready(j, now);
    /* timers, in time order */
    seg__jtimer t;
    while (rc == SEG_OK && timer_next(j, now, &t, &rc)) {
        if (t.rec >= j->nrecs)
            continue;
        seg__jrec *r = R(j, t.rec);
        if (r->steps != t.steps || r->state == SEG__JR_OUT ||
            timer_due(j, t.rec, NULL, t.due) != t.due)
            continue;
        rc = catch_up(j, t.rec, t.due, t.due);
    }
    /* conditions that became true with time (or with attributes) */
    bool all = j->attr_gen != j->db->attr_gen;
    bool need = all;
    for (uint32_t jx = 0; jx < j->nj && !need; jx++) {
        need |= j->js[jx].tdep_enter;
        for (uint32_t s = 0; s < j->js[jx].ast->nstates; s++)
            need |= j->js[jx].tdep_state[s];
    }
    if (rc == SEG_OK && need) {
        bulk b;
        memset(&b, 0, sizeof b);
        b.j = j;
        b.now = now;
        b.all = all;
        rc = seg__sd_eval_each(j->cdef, now, NULL, bulk_visit, &b);
        if (rc == SEG_OK && b.err)
            rc = oom(j);
        for (size_t k = 0; k < b.n && rc == SEG_OK; k++) {
            uint32_t ci = b.v[k].ci, jx = b.v[k].jx;
            const seg__jrj *J = &j->js[jx];
            uint32_t ri = rec_find(j, ci, jx);
            if (ri == SEG__NONE || R(j, ri)->state == SEG__JR_OUT) {
                const seg__jrec *r = ri == SEG__NONE ? NULL : R(j, ri);
                int64_t at = now;
                if (J->tdep_enter)
                    at = bisect(j, cond_enter, ci, jx, ri, entry_floor(j, r, jx, now), now);
                rc = enter(j, jx, ci, &ri, at);
            }
            if (rc == SEG_OK)
                rc = catch_up(j, ri, now, now);
            if (rc == SEG_OK && R(j, ri)->state != SEG__JR_OUT)
                rc = settle(j, ri, now);
        }
        seg__free(&j->db->alloc, b.v);
    }
    if (rc == SEG_OK && j->eval_err)
        rc = oom(j);
    rc = flush_end(j, rc);
    run_done(j);
    if (rc == SEG_OK) {
        j->clock = now;
        j->has_clock = true;
        j->attr_gen = j->db->attr_gen;
        rc = seg__jr_persist(j);
    }
    return rc;
}

SEG_API int seg_journey_advance(seg_journey *j, int64_t now)
{
    if (!j)
        return SEG_EINVAL;
    seg_db *db = j->db;
    seg__error_clear(db);
    if (now < SEG_TIME_MIN || now >= SEG_TIME_MAX)
        return seg__error(db, SEG_ERANGE, "now: %lld is out of range (years 1 to 9999)",
                          (long long)now);
    if (j->has_clock && now < j->clock)
        return seg__error(db, SEG_ERANGE, "now: %lld is before the last advance (%lld)",
                          (long long)now, (long long)j->clock);
    int rc = seg__db_writable(db);
    if (rc != SEG_OK)
        return rc;
    if ((rc = seg__st_begin(db)) != SEG_OK)
        return rc;
    rc = advance_work(j, now);
    if (rc == SEG_OK)
        rc = seg__st_commit(db);
    if (rc != SEG_OK)
        seg__st_rollback(db);
    seg__modules_txn_end(db, rc == SEG_OK);
    if (j->in_txn) /* not attached (closed db?): end it ourselves */
        txn_end(db, j, rc == SEG_OK);
    return rc;
}

/* ---- open, close ---- */

const void *seg__jr_lookup(const seg_db *db, seg__str name, uint32_t *index_out)
{
    *index_out = SEG__NONE;
    for (unsigned i = 0; i < db->nmodules; i++)
        if (db->modules[i].ops == &journey_ops) {
            const seg_journey *j = db->modules[i].state;
            for (uint32_t x = 0; x < j->nj; x++)
                if (seg__str_eq(name, j->js[x].name, strlen(j->js[x].name)))
                    *index_out = x;
            return j;
        }
    return NULL;
}

const char *seg__jr_state_name(const void *engine, uint32_t index, uint32_t ci)
{
    const seg_journey *j = engine;
    uint32_t ri = rec_find(j, ci, index);
    if (ri == SEG__NONE || R(j, ri)->state == SEG__JR_OUT)
        return NULL;
    return j->js[index].state_names[R(j, ri)->state];
}

static char *dupz(const seg__alloc *a, seg__str s)
{
    char *p = seg__malloc(a, s.n + 1);
    if (p) {
        memcpy(p, s.p, s.n);
        p[s.n] = '\0';
    }
    return p;
}

/* Does a condition's value change with time alone? */
static bool node_tdep(const seg_segdef *d, const seg__node *n, int depth)
{
    if (!n || depth > 64)
        return depth > 64;
    if ((n->kind == SEG__N_NAME || (n->kind == SEG__N_CALL && n->mode == SEG__FN_VALUE)) &&
        n->slot < d->nslots) {
        const seg__slot *sl = &d->slots[n->slot];
        if (sl->prov->flags & SEG__PV_TIME)
            return true;
        if (sl->feat != UINT32_MAX && d->feats[sl->feat].window != INT64_MAX)
            return true;
    }
    if (n->kind == SEG__N_MEMBER && n->slot < d->nsegs) {
        const seg__item *it = &d->ast.items[d->segs[n->slot].item];
        for (uint32_t r = 0; r < it->nrules; r++)
            if (node_tdep(d, it->rules[r].cond, depth + 1))
                return true;
        return false;
    }
    for (uint32_t k = 0; k < n->nkids; k++)
        if (node_tdep(d, n->kids[k], depth + 1))
            return true;
    return false;
}

static void engine_free(seg_journey *j)
{
    const seg__alloc *a = &j->db->alloc;
    seg__outbox_forget_names(j->db);
    for (uint32_t x = 0; x < j->nj; x++) {
        seg__jrj *J = &j->js[x];
        seg__free(a, J->name);
        if (J->state_names)
            for (uint32_t s = 0; s < J->ast->nstates; s++)
                seg__free(a, J->state_names[s]);
        if (J->variant_names)
            for (uint32_t v = 0; v <= J->ast->nvariants; v++)
                seg__free(a, J->variant_names[v]);
        if (J->when_seg)
            for (uint32_t s = 0; s < J->ast->nstates; s++)
                seg__free(a, J->when_seg[s]);
        seg__free(a, J->state_names);
        seg__free(a, J->variant_names);
        seg__free(a, J->when_seg);
        seg__free(a, J->exit_seg);
        seg__free(a, J->tdep_state);
        seg__free(a, J->v_entered);
        for (uint32_t k = 0; J->acts && k < J->nacts; k++) {
            seg__free(a, J->acts[k].name);
            seg__free(a, J->acts[k].channel);
            seg__free(a, J->acts[k].params);
        }
        seg__free(a, J->acts);
        seg__free(a, J->sc);
        seg__free(a, J->af);
        seg__free(a, J->tc);
    }
    for (uint32_t c = 0; c < j->nchunks; c++)
        seg__free(a, j->chunks[c]);
    seg__free(a, j->chunks);
    seg__free(a, j->head);
    for (uint32_t i = 0; i < j->nbk; i++)
        seg__free(a, j->bk[i].v);
    seg__free(a, j->bk);
    seg__free(a, j->side);
    seg__free(a, j->scratch);
    seg__free(a, j->undo);
    seg__free(a, j->popped);
    seg__free(a, j->gone);
    seg__free(a, j->stats0);
    seg__free(a, j->js);
    seg_segdef_free(j->cdef);
    seg_db *db = j->db;
    seg__free(a, j);
    seg__db_unref(db);
}

static uint32_t vmask_of(const seg__jrj *J, const seg__str *v, uint32_t n)
{
    uint32_t m = 0;
    for (uint32_t var = 0; var <= J->ast->nvariants; var++)
        if (variant_ok(J, v, n, (uint8_t)var))
            m |= 1u << var;
    return n ? m : SEG__JR_VALL;
}

static int compile_act(seg_journey *j, const seg__jrj *J, seg__jract *c,
                       const seg__jr_action *a)
{
    const seg__alloc *al = &j->db->alloc;
    c->vmask = vmask_of(J, a->variants, a->nvariants);
    if (!(c->name = dupz(al, a->name)) || !(c->params = params_text(al, a)))
        return SEG_ENOMEM;
    const char *colon = memchr(a->name.p, ':', a->name.n);
    if (colon) {
        seg__str ch = { a->name.p, (size_t)(colon - a->name.p) };
        if (!(c->channel = dupz(al, ch)))
            return SEG_ENOMEM;
    }
    return SEG_OK;
}

/* The journey's states, transitions and actions as the engine runs them. */
static int compile_steps(seg_journey *j, seg__jrj *J)
{
    const seg__alloc *al = &j->db->alloc;
    const seg__jrast *A = J->ast;
    uint32_t nt = 0, na = 0;
    for (uint32_t s = 0; s < A->nstates; s++) {
        na += A->states[s].nacts;
        for (uint32_t t = 0; t < A->states[s].ntrans; t++)
            na += A->states[s].trans[t].nacts;
        nt += A->states[s].ntrans;
    }
    uint32_t naf = 0;
    for (uint32_t s = 0; s < A->nstates; s++)
        for (uint32_t t = 0; t < A->states[s].ntrans; t++)
            naf += A->states[s].trans[t].kind == SEG__JT_AFTER;
    J->af = seg__calloc(al, naf + 1, sizeof *J->af);
    if (!J->af)
        return oom(j);
    J->naf = naf;
    J->sc = seg__calloc(al, A->nstates + 1, sizeof *J->sc);
    J->tc = seg__calloc(al, nt + 1, sizeof *J->tc);
    J->acts = seg__calloc(al, na + 1, sizeof *J->acts);
    if (!J->sc || !J->tc || !J->acts)
        return oom(j);
    J->ntc = nt;
    J->nacts = na;
    uint32_t ti = 0, ai = 0, fi = 0;
    for (uint32_t s = 0; s < A->nstates; s++) {
        const seg__jr_state *st = &A->states[s];
        seg__jrsc *sc = &J->sc[s];
        size_t nl = strlen(J->state_names[s]);
        sc->name_len = (uint16_t)(nl > UINT16_MAX ? UINT16_MAX : nl);
        sc->has_conds = J->has_when_exit;
        sc->t0 = ti;
        sc->af0 = fi;
        sc->a0 = ai;
        sc->na = st->nacts;
        for (uint32_t k = 0; k < st->nacts; k++)
            if (compile_act(j, J, &J->acts[ai++], &st->acts[k]) != SEG_OK)
                return oom(j);
        for (uint32_t t = 0; t < st->ntrans; t++) {
            const seg__jr_trans *tr = &st->trans[t];
            seg__jrtc *tc = &J->tc[ti++];
            tc->vmask = vmask_of(J, tr->variants, tr->nvariants);
            tc->target = SEG__JR_OUT;
            if (!tr->to_exit) {
                uint32_t to = SEG__NONE;
                for (uint32_t q = 0; q < A->nstates && to == SEG__NONE; q++)
                    if (seg__str_eq(A->states[q].name, tr->target.p, tr->target.n))
                        to = q;
                if (to == SEG__NONE)
                    return seg__error(j->db, SEG_ERROR, "internal: unknown state");
                tc->target = (uint16_t)to;
            }
            sc->has_conds |= tr->kind == SEG__JT_WHEN;
            sc->has_now |= tr->kind == SEG__JT_NOW;
            if (tr->kind == SEG__JT_AFTER) {
                seg__jraf *f = &J->af[fi++];
                f->dur = tr->dur;
                f->vmask = tc->vmask;
                f->k = (uint16_t)t;
                f->since = tr->since;
                sc->naf++;
            }
            tc->a0 = ai;
            tc->na = tr->nacts;
            for (uint32_t k = 0; k < tr->nacts; k++)
                if (compile_act(j, J, &J->acts[ai++], &tr->acts[k]) != SEG_OK)
                    return oom(j);
        }
    }
    return SEG_OK;
}

static int build(seg_journey *j)
{
    const seg__alloc *a = &j->db->alloc;
    seg_segdef *d = j->cdef;
    const seg__ast *ast = &d->ast;
    j->nj = ast->njourneys;
    j->js = seg__calloc(a, j->nj + 1, sizeof *j->js);
    if (!j->js)
        return oom(j);
    size_t nstats = 0;
    for (uint32_t x = 0; x < j->nj; x++) {
        seg__jrj *J = &j->js[x];
        const seg__jrast *A = &ast->journeys[x];
        J->ast = A;
        uint32_t nv = A->nvariants + 1, ns = A->nstates;
        nstats += 2 * (size_t)nv + 2 * (size_t)ns;
        J->name = dupz(a, A->name);
        J->seed = seg__hash(A->name.p, A->name.n, UINT64_C(0x6a0e7a11c0ffee00));
        J->state_names = seg__calloc(a, ns, sizeof *J->state_names);
        J->variant_names = seg__calloc(a, nv, sizeof *J->variant_names);
        J->when_seg = seg__calloc(a, ns, sizeof *J->when_seg);
        J->exit_seg = seg__calloc(a, A->nexits + 1, sizeof *J->exit_seg);
        J->tdep_state = seg__calloc(a, ns, sizeof *J->tdep_state);
        J->v_entered = seg__calloc(a, 2 * (size_t)nv + 2 * (size_t)ns, sizeof *J->v_entered);
        if (!J->name || !J->state_names || !J->variant_names || !J->when_seg || !J->exit_seg ||
            !J->tdep_state || !J->v_entered)
            return oom(j);
        J->v_converted = J->v_entered + nv;
        J->s_entered = J->v_converted + nv;
        J->s_converted = J->s_entered + ns;
        for (uint32_t v = 0; v < A->nvariants; v++)
            if (!(J->variant_names[v] = dupz(a, A->variants[v])))
                return oom(j);
        if (!(J->variant_names[A->nvariants] = dupz(a, seg__cstr(A->has_holdout ? "holdout"
                                                                                : ""))))
            return oom(j);
        J->enter_seg = d->items[A->enter_item].first_seg;
        J->tdep_enter = node_tdep(d, A->enter, 0);
        bool tdep_exit = false;
        for (uint32_t k = 0; k < A->nexits; k++) {
            J->exit_seg[k] = UINT32_MAX;
            if (A->exits[k].kind == SEG__JX_WHEN) {
                J->exit_seg[k] = d->items[A->exits[k].cond_item].first_seg;
                J->has_when_exit = true;
                tdep_exit |= node_tdep(d, A->exits[k].cond, 0);
            }
        }
        for (uint32_t s = 0; s < ns; s++) {
            const seg__jr_state *st = &A->states[s];
            if (!(J->state_names[s] = dupz(a, st->name)))
                return oom(j);
            J->when_seg[s] = seg__calloc(a, st->ntrans + 1, sizeof **J->when_seg);
            if (!J->when_seg[s])
                return oom(j);
            J->tdep_state[s] = tdep_exit;
            for (uint32_t t = 0; t < st->ntrans; t++)
                if (st->trans[t].kind == SEG__JT_WHEN) {
                    J->when_seg[s][t] = d->items[st->trans[t].cond_item].first_seg;
                    J->tdep_state[s] |= node_tdep(d, st->trans[t].cond, 0);
                }
        }
    }
    int rc;
    for (uint32_t x = 0; x < j->nj; x++)
        if ((rc = compile_steps(j, &j->js[x])) != SEG_OK)
            return rc;
    j->stats0 = seg__calloc(a, nstats + 1, sizeof *j->stats0);
    return j->stats0 ? SEG_OK : oom(j);
}

SEG_API int seg_journey_open(seg_journey **out, seg_segdef *def)
{
    if (out)
        *out = NULL;
    if (!def)
        return SEG_EINVAL;
    seg_db *db = def->db;
    seg__error_clear(db);
    if (!out)
        return seg__error(db, SEG_EINVAL, "out: NULL");
    if (!def->ast.njourneys)
        return seg__error(db, SEG_EINVAL, "the definition has no journey");
    for (unsigned i = 0; i < db->nmodules; i++)
        if (db->modules[i].ops == &journey_ops)
            return seg__error(db, SEG_EBUSY, "journeys are open on this database already "
                                             "(close them first)");
    int rc = seg__db_writable(db);
    if (rc != SEG_OK)
        return rc;
    seg_journey *j = seg__calloc(&db->alloc, 1, sizeof *j);
    if (!j)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    j->db = db;
    seg__db_ref(db);
    j->attr_gen = db->attr_gen;
    j->outbox_emit = seg__outbox_emit_many;
    j->tgen = 1; /* the cache of timer_due starts invalid */
    j->epoch = 1;
    size_t n;
    char *text = seg__sd_print(&db->alloc, &def->ast, &n);
    if (!text) {
        engine_free(j);
        return seg__error(db, SEG_ENOMEM, "out of memory");
    }
    seg__sderr err;
    rc = seg__segdef_compile_conds(&j->cdef, db, text, n, def->extra, def->nextra, &err);
    seg__free(&db->alloc, text);
    if (rc != SEG_OK) {
        seg__error(db, rc, "journeys: %u:%u: %s", err.line, err.col, err.msg);
        engine_free(j);
        return rc;
    }
    if ((rc = build(j)) != SEG_OK || (rc = seg__jr_restore(j)) != SEG_OK ||
        (rc = seg__module_attach(db, &journey_ops, j)) != SEG_OK) {
        engine_free(j);
        return rc;
    }
    *out = j;
    return SEG_OK;
}

SEG_API void seg_journey_close(seg_journey *j)
{
    if (!j)
        return;
    seg__module_detach(j->db, j);
    engine_free(j);
}

SEG_API size_t seg_journey_count(const seg_journey *j)
{
    return j ? j->nj : 0;
}

SEG_API const char *seg_journey_name(const seg_journey *j, size_t i)
{
    return j && i < j->nj ? j->js[i].name : NULL;
}

SEG_API int seg_journey_set_action_cb(seg_journey *j, seg_journey_action_cb cb, void *payload)
{
    if (!j)
        return SEG_EINVAL;
    j->cb = cb;
    j->cb_payload = payload;
    return SEG_OK;
}

static int find_journey(seg_journey *j, const char *name, uint32_t *jx)
{
    if (!name)
        return seg__error(j->db, SEG_EINVAL, "journey: NULL");
    for (uint32_t x = 0; x < j->nj; x++)
        if (strcmp(j->js[x].name, name) == 0) {
            *jx = x;
            return SEG_OK;
        }
    return seg__error(j->db, SEG_ENOTFOUND, "no journey named '%s'", name);
}

SEG_API int seg_journey_status_get(seg_journey_status *out, seg_journey *j, const char *journey,
                                   const char *customer_id)
{
    if (!j)
        return SEG_EINVAL;
    seg__error_clear(j->db);
    if (!out)
        return seg__error(j->db, SEG_EINVAL, "out: NULL");
    if (out->struct_size < sizeof *out)
        return seg__error(j->db, SEG_EVERSION, "out: struct_size %zu is too small",
                          out->struct_size);
    seg_journey_status st = SEG_JOURNEY_STATUS_INIT;
    st.struct_size = out->struct_size;
    *out = st;
    uint32_t jx = 0;
    int rc = find_journey(j, journey, &jx);
    if (rc != SEG_OK)
        return rc;
    if (!customer_id)
        return seg__error(j->db, SEG_EINVAL, "customer_id: NULL");
    seg__str id = seg__cstr(customer_id);
    if ((rc = seg__check_id(j->db, "customer_id", id)) != SEG_OK)
        return rc;
    uint32_t ci = seg__cust_find(&j->db->store, id);
    if (ci == SEG__NONE)
        return seg__error(j->db, SEG_ENOTFOUND, "customer_id '%s': no such customer",
                          customer_id);
    uint32_t ri = rec_find(j, ci, jx);
    if (ri == SEG__NONE)
        return SEG_OK;
    const seg__jrec *r = R(j, ri);
    const seg__jrj *J = &j->js[jx];
    out->state = r->state == SEG__JR_OUT ? NULL : J->state_names[r->state];
    out->run = r->run;
    out->since = r->since;
    out->variant = J->ast->nvariants || J->ast->has_holdout ? J->variant_names[r->variant]
                                                            : NULL;
    out->converted = (r->flags & SEG__JRF_CONVERTED) != 0;
    out->exit_reason = r->state == SEG__JR_OUT ? r->reason : SEG_JOURNEY_IN;
    return SEG_OK;
}

SEG_API int seg_journey_report(seg_journey *j, seg_journey_report_cb cb, void *payload)
{
    if (!j)
        return SEG_EINVAL;
    seg__error_clear(j->db);
    if (!cb)
        return seg__error(j->db, SEG_EINVAL, "cb: NULL");
    for (uint32_t x = 0; x < j->nj; x++) {
        const seg__jrj *J = &j->js[x];
        const seg__jrast *A = J->ast;
        uint32_t nv = A->nvariants + (A->has_holdout || !A->nvariants ? 1 : 0);
        uint64_t *active = seg__calloc(&j->db->alloc, (size_t)A->nvariants + 1 + A->nstates,
                                       sizeof *active);
        if (!active)
            return oom(j);
        for (uint32_t ri = 0; ri < j->nrecs; ri++) {
            const seg__jrec *r = R(j, ri);
            if (r->journey == x && r->state != SEG__JR_OUT) {
                active[r->variant]++;
                active[A->nvariants + 1 + r->state]++;
            }
        }
        seg_journey_row row;
        memset(&row, 0, sizeof row);
        row.struct_size = sizeof row;
        row.journey = J->name;
        int stop = 0;
        for (uint32_t v = 0; v < nv && !stop; v++) {
            uint32_t vi = v < A->nvariants ? v : A->nvariants;
            row.kind = SEG_JOURNEY_ROW_VARIANT;
            row.name = J->variant_names[vi];
            row.entered = J->v_entered[vi];
            row.converted = J->v_converted[vi];
            row.active = active[vi];
            stop = cb(&row, payload);
        }
        for (uint32_t s = 0; s < A->nstates && !stop; s++) {
            row.kind = SEG_JOURNEY_ROW_STATE;
            row.name = J->state_names[s];
            row.entered = J->s_entered[s];
            row.converted = J->s_converted[s];
            row.active = active[A->nvariants + 1 + s];
            stop = cb(&row, payload);
        }
        seg__free(&j->db->alloc, active);
        if (stop)
            break;
    }
    return SEG_OK;
}

/* ---- for persist.c ---- */

int seg__jr_rec_add(seg_journey *j, uint32_t ci, uint32_t jx, uint32_t *out)
{
    return rec_new(j, ci, jx, out);
}
int seg__jr_arm(seg_journey *j, uint32_t ri)
{
    j->tgen++;
    return arm(j, ri, INT64_MAX);
}
seg__jrec *seg__jr_rec(const seg_journey *j, uint32_t ri) { return R(j, ri); }
uint8_t seg__jr_pick_variant(const seg_journey *j, uint32_t jx, uint32_t ci)
{
    return pick_variant(j, jx, ci);
}
void seg__jr_txn_end(seg_journey *j, bool committed) { txn_end(j->db, j, committed); }
int seg__jr_begin(seg_journey *j) { return begin(j); }
int seg__jr_touch(seg_journey *j, uint32_t ri) { return touch(j, ri); }
size_t seg__jr_changed_count(const seg_journey *j)
{
    return j->nundo + (j->nrecs - j->nrecs0);
}
uint32_t seg__jr_changed(const seg_journey *j, size_t k)
{
    return k < j->nundo ? j->undo[k].next : j->nrecs0 + (uint32_t)(k - j->nundo);
}
