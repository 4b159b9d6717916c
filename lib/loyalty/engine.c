/*
 * The loyalty engine: one customer's entries (purchases, refunds,
 * redemptions, in time order) replayed as of a time.
 *
 * - Each purchase is a lot: its points (computed with the tier held at its
 *   time, unless fixed by the ledger), an expiry.  An outstanding debt
 *   (negative balance) is settled from it first.
 * - A redemption draws from the oldest lots alive at its time (lots expire
 *   in the order they were earned, so a head index skips the used and the
 *   expired ones for good); expiry takes only what is left in a lot.
 * - A refund of an order reverses the order's points in proportion to the
 *   money refunded (cumulatively, so partial refunds add up to a full
 *   one exactly): from what is left in the order's lots first, then, for
 *   points already spent, from the other lots (oldest first) and beyond
 *   the balance as a debt when the program allows a negative balance
 *   (forgiven otherwise).  Points of the order that had expired are not
 *   taken twice.  A refund without an order reverses the base rate of the
 *   amount at the tier held, from the oldest lots.
 * - Tiers: the qualifying measure (spend, points or orders, net of
 *   refunds) of the entries in [t - window, t) changes when an entry
 *   enters (just after its time) or leaves the window.  An upgrade takes
 *   effect at once (the purchase that crosses a threshold earns at the old
 *   tier; the next one at the new); a downgrade only after the measure has
 *   stayed below the held tier's threshold for the grace period, to the
 *   tier earned then.
 *
 * Speed (the stateless score of a 100-entry history is meant to take
 * about a microsecond): one forward pass, constant work per entry but for
 * refunds of an order (which follow a hash chain of the order's entries,
 * built at the first such refund).  The window is two indexes moving
 * forward; lots are drawn from a head index moving forward; the points
 * left in lots are a running sum; each lot's expiry is computed once
 * (stored only for period expiry).  Points are integer multiplications
 * (no division, no branch on the rounding).  Bonus names are found by a
 * hash of their first 4 bytes chosen at compile time to be collision-free,
 * and the score caches the masks of the category and channel strings it
 * meets by address.  tests/check_loyalty.c compares the score with a
 * straightforward reference implementation on random programs and
 * histories.
 */
#include "loyalty/loyalty-private.h"

#if defined(__GNUC__)
#  define HOT_INLINE static inline __attribute__((always_inline))
#  define COLD static __attribute__((noinline))
#else
#  define HOT_INLINE static inline
#  define COLD static
#endif

/* ---- points ---- */

/* amount * r->n / r->d rounded as the program rounds: (x + bias) / d
 * rounded down, the division by a multiplication */
static inline int64_t rate_apply(const seg__lrate *r, int64_t amount)
{
    uint64_t x, d = (uint64_t)r->d;
    if (SEG_LIKELY(!__builtin_mul_overflow((uint64_t)amount, (uint64_t)r->n, &x) &&
                   !__builtin_add_overflow(x, r->bias, &x))) {
        /* m = floor((2^64 - 1) / d), so x / d - 1 < x * m / 2^64 <= x / d:
         * the estimate is the quotient or one short */
        uint64_t q = (uint64_t)(((unsigned __int128)x * r->m) >> 64);
        q += x - q * d >= d;
        return (int64_t)q;
    }
    unsigned __int128 w = (unsigned __int128)(uint64_t)amount * (uint64_t)r->n + r->bias;
    return (int64_t)(uint64_t)(w / d);
}

static inline int64_t points_of(const seg_loyalty *p, int64_t amount, int tier, unsigned bonus)
{
    if (amount <= 0 || amount < p->min_spend)
        return 0;
    const seg__lrate *r = &p->rates[(size_t)tier * (p->nbonus + 1) + bonus];
    return rate_apply(r, amount) + r->flat;
}

int64_t seg__loyalty_points(const seg_loyalty *p, int64_t amount, int tier, unsigned bonus)
{
    return points_of(p, amount, tier, bonus);
}

static uint64_t name_mask(const seg__lname *t, uint32_t n, seg__str s)
{
    if (!s.n)
        return 0;
    for (uint32_t k = 0; k < n; k++)
        if (t[k].n == s.n && t[k].s[0] == s.p[0] && memcmp(t[k].s, s.p, s.n) == 0)
            return t[k].mask;
    return 0;
}

/* the same for NUL-terminated names (no strlen: most names differ at the
 * first byte) */
static uint64_t name_mask_c(const seg__lname *t, uint32_t n, const char *s)
{
    if (!s || !*s)
        return 0;
    for (uint32_t k = 0; k < n; k++)
        if (t[k].s[0] == s[0] && strcmp(t[k].s, s) == 0)
            return t[k].mask;
    return 0;
}

/* the first 4 bytes of a non-empty name, 0 past its end */
static inline uint32_t key4(const char *s)
{
    uint32_t c0 = (unsigned char)s[0], c1 = 0, c2 = 0, c3 = 0;
    if (c0) {
        c1 = (unsigned char)s[1];
        if (c1) {
            c2 = (unsigned char)s[2];
            if (c2)
                c3 = (unsigned char)s[3];
        }
    }
    return c0 | c1 << 8 | c2 << 16 | c3 << 24;
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void free_tab(const seg__alloc *a, seg__lntab *tb)
{
    seg__free(a, tb->key);
    seg__free(a, tb->names);
    memset(tb, 0, sizeof *tb);
}

/* A collision-free multiplicative hash of the names' first bytes: tables
 * of 4 to 64 times as many slots as names, multipliers from a fixed
 * sequence (the same program always gets the same table).  No table (a
 * scan) when none is found or there are over 64 names. */
static int index_tab(const seg__alloc *a, seg__lntab *tb, const seg__lname *t, uint32_t n)
{
    memset(tb, 0, sizeof *tb);
    if (n == 0 || n > 64)
        return SEG_OK;
    uint32_t keys[64];
    for (uint32_t k = 0; k < n; k++)
        keys[k] = key4(t[k].s);
    unsigned bits0 = 2;
    while ((UINT32_C(1) << bits0) < n)
        bits0++;
    uint64_t seed = 0;
    for (unsigned bits = bits0 + 2; bits <= bits0 + 6; bits++) {
        size_t size = (size_t)1 << bits;
        tb->key = seg__calloc(a, size, sizeof *tb->key);
        tb->names = seg__calloc(a, size, sizeof *tb->names);
        if (!tb->key || !tb->names) {
            free_tab(a, tb);
            return SEG_ENOMEM;
        }
        for (int tries = 0; tries < 32; tries++) {
            uint64_t mult = splitmix(&seed) | 1;
            memset(tb->key, 0, size * sizeof *tb->key);
            memset(tb->names, 0, size * sizeof *tb->names);
            uint32_t k = 0;
            for (; k < n; k++) {
                size_t slot = (size_t)(((uint64_t)keys[k] * mult) >> (64 - bits));
                if (tb->key[slot] && tb->key[slot] != keys[k])
                    break;  /* two different first bytes in one slot */
                tb->key[slot] = keys[k];
                tb->names[slot] |= UINT64_C(1) << k;
            }
            if (k == n) {
                tb->mult = mult;
                tb->shift = 64 - bits;
                return SEG_OK;
            }
        }
        free_tab(a, tb);
    }
    return SEG_OK;
}

int seg__loyalty_index_names(seg_loyalty *p)
{
    if (index_tab(&p->alloc, &p->cattab, p->cats, p->ncats) != SEG_OK ||
        index_tab(&p->alloc, &p->chantab, p->chans, p->nchans) != SEG_OK) {
        seg__loyalty_free_index(p);
        return SEG_ENOMEM;
    }
    return SEG_OK;
}

void seg__loyalty_free_index(seg_loyalty *p)
{
    free_tab(&p->alloc, &p->cattab);
    free_tab(&p->alloc, &p->chantab);
}

/* which of the candidate names c (that start as s does) s is */
static uint64_t name_verify(const seg__lname *t, uint64_t c, const char *s)
{
    do {
        unsigned k = (unsigned)__builtin_ctzll(c);
        c &= c - 1;
        /* (names under 4 bytes matched with their end; longer ones
         * matched 4 bytes of s that are not its end) */
        if (t[k].n < 4 || strcmp(t[k].s + 4, s + 4) == 0)
            return t[k].mask;
    } while (c);
    return 0;
}

/* the bonus rules naming s (NULL or empty: none) */
HOT_INLINE uint64_t name_lookup(const seg__lntab *tb, const seg__lname *t, uint32_t n,
                                const char *s)
{
    if (!s || !*s)
        return 0;
    if (SEG_UNLIKELY(!tb->mult))
        return name_mask_c(t, n, s);
    uint32_t k = key4(s);
    size_t slot = (size_t)(((uint64_t)k * tb->mult) >> tb->shift);
    uint64_t c = tb->names[slot] & -(uint64_t)(tb->key[slot] == k);
    return c ? name_verify(t, c, s) : 0;
}

/* the bonus rule + 1 (0: none) of a purchase whose category allows the
 * rules m, in channel chan (looked up only when one of the rules m
 * filters channels) */
HOT_INLINE unsigned bonus_with(const seg_loyalty *p, uint64_t m, const char *chan)
{
    if (m & ~p->anychan)
        m &= p->anychan | name_lookup(&p->chantab, p->chans, p->nchans, chan);
    return (unsigned)__builtin_ffsll((long long)m);
}

/* the bonus rule + 1 (0: none) of a purchase in category cat, channel chan */
static inline unsigned bonus_of(const seg_loyalty *p, const char *cat, const char *chan)
{
    return bonus_with(p, p->anycat | name_lookup(&p->cattab, p->cats, p->ncats, cat), chan);
}

/* the score's caches of masks by address */
#define CAT_BITS 7
#define CAT_SLOTS (1u << CAT_BITS)

static inline unsigned cat_slot(const char *s)
{
    return (unsigned)(((uint64_t)(uintptr_t)s * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - CAT_BITS));
}

#define CHAN_BITS 4
#define CHAN_SLOTS (1u << CHAN_BITS)

static inline unsigned chan_slot(const char *s)
{
    return (unsigned)(((uint64_t)(uintptr_t)s * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - CHAN_BITS));
}

unsigned seg__loyalty_bonus(const seg_loyalty *p, seg__str cat, seg__str chan)
{
    if (!p->nbonus)
        return 0;
    uint64_t m = (p->anycat | name_mask(p->cats, p->ncats, cat)) &
                 (p->anychan | name_mask(p->chans, p->nchans, chan));
    return m ? (unsigned)__builtin_ctzll(m) + 1 : 0;
}

/* ---- expiry ---- */

/* days since 1970-01-01 of a civil date, and back (H. Hinnant's algorithms) */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int64_t *m)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

/* The period (month, quarter or year, UTC) holding ts: [*lo, *hi); returns
 * when points earned in it expire. */
static int64_t period_expiry(const seg_loyalty *p, int64_t ts, int64_t *lo, int64_t *hi)
{
    int64_t y, m;
    civil_from_days(seg__day_of(ts), &y, &m);
    int64_t len = p->expire == SEG__LX_MONTH ? 1 : p->expire == SEG__LX_QUARTER ? 3 : 12;
    int64_t k0 = y * 12 + (m - 1) / len * len;    /* months since year 0 */
    int64_t ks[3] = { k0, k0 + len, k0 + len * (1 + p->expire_plus) }, out[3];
    for (int j = 0; j < 3; j++) {
        int64_t k = ks[j];
        int64_t ny = k >= 0 ? k / 12 : -((-k + 11) / 12);
        out[j] = days_from_civil(ny, k - ny * 12 + 1, 1) * 86400;
    }
    *lo = out[0];
    *hi = out[1];
    return out[2];
}

int64_t seg__loyalty_expiry(const seg_loyalty *p, int64_t ts)
{
    if (p->expire == SEG__LX_NEVER)
        return INT64_MAX;
    if (p->expire == SEG__LX_AFTER)
        return ts + p->expire_after;
    int64_t lo, hi;
    return period_expiry(p, ts, &lo, &hi);
}

/* ---- replay ---- */

/* One forward pass over the entries.  The measure's window is two indexes
 * moving forward only ([jx, jin): entries in the window), lots are drawn
 * from a head index that moves forward only, each lot's expiry is computed
 * once, and the points left in all lots are kept as a running sum: the
 * work per entry is constant except for refunds of an order (which follow
 * the order's hash chain).
 *
 * The state is in two parts: the tier and window state (tw), used at every
 * entry, and the rest (rp), touched by purchases and by refunds and
 * redemptions, out of line. */
typedef struct tw {
    size_t jin, jx;          /* entries in the measure: [jx, jin) */
    int64_t last;            /* the time of the entries replayed last ... */
    int64_t pend;            /* ... the sum of their changes (e[jin..i), all at that time) */
    int64_t m;               /* qualifying measure */
    int64_t below;           /* since when the measure is below the held tier (-1) */
    int64_t lo, hi;          /* tier h is kept while m >= lo; h + 1 is earned from hi */
    const seg__lrate *rt;    /* the rates of tier h (by bonus rule + 1) */
    int h;                   /* tier held */
} tw;

#define ORDER_BITS 6

typedef struct rp {
    const seg_loyalty *p;
    seg__lent *e;
    uint32_t *ohead;         /* [1 << ORDER_BITS]: the last entry of an order hash chain, + 1 */
    bool chained;            /* the chains are kept (from the first refund of an order on) */
    size_t i;                /* refunds, redemptions: the entry (the lots are e[0..i)) */
    int h;                   /* ... and the tier held at its time */
    size_t head;             /* first lot that may still be drawn from */
    int64_t debt;
    int64_t earned, redeemed, reversed;
    int64_t lots;            /* points left in all lots, expired or not */
    int64_t xlo, xhi, xval;  /* period expiry: lots earned in [xlo, xhi) expire at xval */
    uint32_t last_order;
    bool any_order;
    seg__ldraw_cb cb;
    void *ctx;
    uint32_t watch;
} rp;

static int earned_tier(const seg_loyalty *p, int64_t m)
{
    int t = (int)p->ntiers - 1;
    while (t > 0 && p->tiers[t].from > m)
        t--;
    return t;
}

HOT_INLINE void hold(const seg_loyalty *p, tw *s, int t)
{
    s->h = t;
    s->lo = t ? p->tiers[t].from : INT64_MIN;   /* (the base tier is kept at any measure) */
    s->hi = (uint32_t)t + 1 < p->ntiers ? p->tiers[t + 1].from : INT64_MAX;
    s->rt = &p->rates[(size_t)t * (p->nbonus + 1)];
}

static void rp_init(rp *r, const seg_loyalty *p, seg__lent *e, uint32_t *ohead)
{
    memset(r, 0, sizeof *r);
    r->p = p;
    r->e = e;
    r->ohead = ohead;
    r->xlo = 1;
    r->xhi = 0;
}

HOT_INLINE tw tw_init(const seg_loyalty *p)
{
    tw s;
    s.jin = s.jx = 0;
    s.last = INT64_MIN;
    s.pend = 0;
    s.m = 0;
    s.below = -1;
    hold(p, &s, 0);
    return s;
}

/* advance() when the window loses entries, the measure decreases or a
 * grace period runs: each change point c in turn.  A downgrade due before
 * c happens first (to the tier earned then), then the entries entering and
 * leaving at c change the measure, then the tier held is compared with the
 * tier earned.  (The state is copied to a local: the compiler keeps it in
 * registers in the loop.) */
COLD void advance_general(const seg_loyalty *p, const seg__lent *e, size_t i, tw *sp, int64_t T)
{
    tw s = *sp;
    int64_t W = p->window;
    for (;;) {
        int64_t cin = s.jin < i && e[s.jin].ts < T ? e[s.jin].ts + 1 : INT64_MAX;
        int64_t cout = s.jx < s.jin && e[s.jx].ts < T - W ? e[s.jx].ts + W + 1 : INT64_MAX;
        int64_t c = cin < cout ? cin : cout;
        if (c == INT64_MAX)
            break;
        if (s.below >= 0 && s.below + p->grace < c) {
            hold(p, &s, earned_tier(p, s.m));
            s.below = -1;
        }
        while (s.jin < i && e[s.jin].ts + 1 == c)
            s.m += e[s.jin++].aux;
        while (s.jx < s.jin && e[s.jx].ts + W + 1 == c)
            s.m -= e[s.jx++].aux;
        if (s.m >= s.lo) {         /* the tier earned is the held one or higher */
            if (s.m >= s.hi)
                hold(p, &s, earned_tier(p, s.m));
            s.below = -1;
        } else if (s.below < 0) {
            s.below = c;
        }
    }
    if (s.below >= 0 && s.below + p->grace <= T) {
        hold(p, &s, earned_tier(p, s.m));
        s.below = -1;
    }
    *sp = s;
}

/* Apply the changes of the measure up to time T (the entries e[0..i)
 * enter at ts + 1 and leave at ts + window + 1), with upgrades and
 * downgrades on the way; T is at or after the last entry's time. */
HOT_INLINE void advance(const seg_loyalty *p, const seg__lent *e, size_t i, tw *s, int64_t T,
                        bool cur)
{
    /* (cur: e[i], the entry being replayed, is at T: when the window is
     * empty, jx == i, its time says that nothing leaves) */
    if (SEG_LIKELY(s->below < 0) && ((!cur && s->jx == i) || e[s->jx].ts >= T - p->window)) {
        /* no grace runs and nothing leaves the window by T: at most one
         * change point, last + 1, when the entries of the last time (all
         * that have not entered, their changes summed in pend) enter */
        if (T > s->last) {
            s->jin = i;
            s->m += s->pend;
            s->pend = 0;
            if (SEG_UNLIKELY(s->m < s->lo)) {
                s->below = s->last + 1;
                if (s->below + p->grace <= T) {
                    hold(p, s, earned_tier(p, s->m));
                    s->below = -1;
                }
            } else if (SEG_UNLIKELY(s->m >= s->hi)) {
                hold(p, s, earned_tier(p, s->m));
            }
        }
    } else {
        advance_general(p, e, i, s, T);
        if (T > s->last)
            s->pend = 0;         /* (all entered) */
    }
    s->last = T;
}

/* A purchase's lot: its expiry is stored only with period expiry (end of
 * month, quarter, year); else lot_exp() computes it from the time. */
HOT_INLINE void set_expiry(const seg_loyalty *p, rp *r, seg__lent *x)
{
    if (p->expire > SEG__LX_AFTER) {
        int64_t ts = x->ts;
        if (ts < r->xlo || ts >= r->xhi)
            r->xval = period_expiry(p, ts, &r->xlo, &r->xhi);
        x->exp = r->xval;
    }
}

static inline int64_t lot_exp(const seg_loyalty *p, const seg__lent *x)
{
    return p->expire == SEG__LX_AFTER ? x->ts + p->expire_after
           : p->expire == SEG__LX_NEVER ? INT64_MAX
                                        : x->exp;
}

/* Draw up to `want` points from the oldest lots alive at t.  Lots expire
 * in the order they were earned, so once the head is alive every later lot
 * is.  Returns what was drawn. */
static int64_t draw(rp *r, int64_t want, int64_t t, uint32_t entry)
{
    seg__lent *e = r->e;
    size_t k = r->head, i = r->i;
    while (k < i && (e[k].rem == 0 || lot_exp(r->p, &e[k]) <= t))
        k++;
    r->head = k;
    int64_t got = 0;
    for (; k < i && got < want; k++) {
        seg__lent *x = &e[k];
        if (x->rem <= 0)
            continue;
        int64_t take = x->rem < want - got ? x->rem : want - got;
        x->rem -= take;
        got += take;
        if (r->cb && entry == r->watch)
            r->cb(r->ctx, entry, (uint32_t)k, take);
    }
    r->lots -= got;
    return got;
}

static int64_t reverse_rounded(const seg_loyalty *p, int64_t pts, int64_t part, int64_t whole)
{
    /* pts * part / whole, rounded as the program rounds (0 <= part <= whole) */
    unsigned __int128 x = (unsigned __int128)(uint64_t)pts * (uint64_t)part;
    uint64_t q = (uint64_t)(x / (uint64_t)whole), rm = (uint64_t)(x % (uint64_t)whole);
    if (p->rounding == SEG__LR_NEAREST)
        q += rm >= (uint64_t)whole - rm;
    else if (p->rounding == SEG__LR_UP)
        q += rm != 0;
    return (int64_t)q;
}

/* Clawback: take `want` points back from the balance (oldest lots first),
 * the rest as a debt when allowed.  Returns what was taken. */
static int64_t claw(rp *r, int64_t want, int64_t t, uint32_t entry)
{
    int64_t got = draw(r, want, t, entry);
    if (got < want && r->p->negative) {
        r->debt += want - got;
        got = want;
    }
    return got;
}

static inline unsigned order_hash(uint32_t o)
{
    return (o * UINT32_C(0x9E3779B1)) >> (32 - ORDER_BITS);
}

static inline void link_one(rp *r, seg__lent *x, size_t k)
{
    if (x->order != SEG__L_NO_ORDER && x->kind != SEG__LE_REDEEM) {
        uint32_t *h = &r->ohead[order_hash(x->order)];
        x->olink = *h;
        *h = (uint32_t)k + 1;
    }
}

/* Entry x = e[k] (a purchase or a refund) joins its order's chain, once
 * there are chains: they are built at the first refund of an order. */
HOT_INLINE void link_order(rp *r, seg__lent *x, size_t k)
{
    if (SEG_UNLIKELY(r->chained))
        link_one(r, x, k);
}

/* Refund x = e[r->i] at time t, tier r->h. */
COLD void refund(rp *r, seg__lent *x, int64_t t)
{
    const seg_loyalty *p = r->p;
    seg__lent *e = r->e;
    size_t i = r->i, first = i, end = 0;
    int64_t give = -x->amount, target = 0, taken = 0;
    int64_t ordpts = 0, ordamt = 0, before_amt = 0, before_pts = 0;
    bool found = false;
    uint32_t o = x->order;
    /* the purchases and refunds of the order before it, latest first */
    if (o != SEG__L_NO_ORDER && !r->chained) {
        memset(r->ohead, 0, sizeof(uint32_t) << ORDER_BITS);
        for (size_t k = 0; k < i; k++)
            link_one(r, &e[k], k);
        r->chained = true;
    }
    if (o != SEG__L_NO_ORDER)
        for (uint32_t k1 = r->ohead[order_hash(o)]; k1; k1 = e[k1 - 1].olink) {
            size_t k = k1 - 1;
            if (e[k].order != o)
                continue;
            if (e[k].kind == SEG__LE_PURCHASE) {
                ordpts += e[k].points;
                ordamt += e[k].amount;
                if (!found)
                    end = k + 1;
                first = k;
                found = true;
            } else if (e[k].kind == SEG__LE_REFUND) {
                before_amt += -e[k].amount;
                before_pts += e[k].points;
            }
        }
    if (found) {
        if (ordamt > 0) {
            int64_t after = before_amt + give;
            if (after > ordamt)
                after = ordamt;
            target = reverse_rounded(p, ordpts, after, ordamt) - before_pts;
            if (target < 0)
                target = 0;
        }
        /* what is left in the order's lots: alive first, then expired */
        int64_t left = target;
        for (int pass = 0; pass < 2 && left; pass++)
            for (size_t k = first; k < end && left; k++) {
                seg__lent *y = &e[k];
                if (y->kind != SEG__LE_PURCHASE || y->order != o || y->rem <= 0 ||
                    (lot_exp(p, y) > t) != (pass == 0))
                    continue;
                int64_t take = y->rem < left ? y->rem : left;
                y->rem -= take;
                left -= take;
                taken += take;
            }
        r->lots -= taken;
        /* the rest was spent: take it back from the balance */
        if (left)
            taken += claw(r, left, t, (uint32_t)i);
    } else {
        target = rate_apply(&p->rates[(size_t)r->h * (p->nbonus + 1)], give);
        taken = claw(r, target, t, (uint32_t)i);
    }
    x->points = target;
    x->rem = 0;
    r->reversed += taken;
    x->aux = p->qualify == SEG__LQ_SPEND ? x->amount : p->qualify == SEG__LQ_POINTS ? -target : 0;
}

/* Points of a purchase of `amount` with rates rt (a tier's), bonus b. */
HOT_INLINE int64_t points_at(const seg_loyalty *p, const seg__lrate *rt, int64_t amount, unsigned b)
{
    if (amount <= 0 || amount < p->min_spend)
        return 0;
    return rate_apply(&rt[b], amount) + rt[b].flat;
}

/* Purchase x earns v points (its time reached, its tier's points known):
 * the lot, the totals, the change of the measure. */
HOT_INLINE void lot(const seg_loyalty *p, rp *r, tw *s, seg__lent *x, int64_t v)
{
    x->points = v;
    r->earned += v;
    if (SEG_UNLIKELY(r->debt)) {
        int64_t d = r->debt < v ? r->debt : v;
        v -= d;
        r->debt -= d;
    }
    x->rem = v;
    set_expiry(p, r, x);
    r->lots += v;
    int q = p->qualify;
    if (q == SEG__LQ_SPEND) {
        x->aux = x->amount;
    } else if (q == SEG__LQ_POINTS) {
        x->aux = x->points;
    } else {
        x->aux = x->amount > 0 &&
                 (x->order == SEG__L_NO_ORDER || !r->any_order || x->order != r->last_order);
        if (x->aux) {
            r->last_order = x->order;
            r->any_order = true;
        }
    }
    s->pend += x->aux;
}

/* Replay entry x = e[i], its time at or after the entries before it. */
HOT_INLINE void step(rp *r, tw *s, seg__lent *x, size_t i)
{
    const seg_loyalty *p = r->p;
    int64_t t = x->ts;
    advance(p, r->e, i, s, t, true);
    if (SEG_LIKELY(x->kind == SEG__LE_PURCHASE)) {
        lot(p, r, s, x, x->fixed ? x->points : points_at(p, s->rt, x->amount, x->bonus));
        link_order(r, x, i);
    } else {
        r->i = i;
        r->h = s->h;
        if (x->kind == SEG__LE_REFUND) {
            refund(r, x, t);
            link_order(r, x, i);
            s->pend += x->aux;
        } else { /* redemption */
            x->rem = 0;
            x->aux = 0;
            r->redeemed += draw(r, x->points, t, (uint32_t)i);
        }
    }
}

/* The figures as of `until`, once the `done` entries before it are
 * replayed. */
static void finish(rp *r, tw st, size_t done, int64_t until, seg__lres *out)
{
    const seg_loyalty *p = r->p;
    const seg__lent *e = r->e;
    tw *s = &st;
    advance(p, e, done, s, until, false);
    /* the expired lots are the oldest ones */
    int64_t dead = 0;
    for (size_t k = 0; k < done; k++) {
        if (e[k].kind != SEG__LE_PURCHASE)
            continue;
        if (lot_exp(p, &e[k]) > until)
            break;
        dead += e[k].rem;
    }
    out->tier = s->h;
    out->balance = r->lots - dead - r->debt;
    out->earned = r->earned;
    out->redeemed = r->redeemed;
    out->expired = dead;
    out->reversed = r->reversed;
    out->measure = s->m;
    out->downgrade_at = s->below >= 0 ? s->below + p->grace : -1;
    out->debt = r->debt;
    out->done = (uint32_t)done;
}

void seg__loyalty_replay(const seg_loyalty *p, seg__lent *e, size_t n, int64_t until,
                         seg__lres *out, seg__ldraw_cb cb, void *ctx, uint32_t watch)
{
    rp r;
    uint32_t ohead[1u << ORDER_BITS];
    rp_init(&r, p, e, ohead);
    tw s = tw_init(p);
    r.cb = cb;
    r.ctx = ctx;
    r.watch = watch;
    size_t i = 0;
    for (; i < n && e[i].ts < until; i++)
        step(&r, &s, &e[i], i);
    finish(&r, s, i, until, out);
}

/* ---- status ---- */

/* Smallest spend whose points at tier t (no bonus) reach `need`. */
static int64_t spend_for_points(const seg_loyalty *p, int t, int64_t need)
{
    const seg__lrate *r = &p->rates[(size_t)t * (p->nbonus + 1)];
    __int128 n = r->n, d = r->d, s;
    if (p->rounding == SEG__LR_DOWN)
        s = ((__int128)need * d + n - 1) / n;
    else if (p->rounding == SEG__LR_UP)
        s = (__int128)(need - 1) * d / n + 1;
    else
        s = ((__int128)(2 * need - 1) * d + 2 * n - 1) / (2 * n);
    if (s < 1)
        s = 1;
    if (s < p->min_spend)
        s = p->min_spend;
    return s > SEG_AMOUNT_MAX ? -1 : (int64_t)s;
}

void seg__loyalty_fill(const seg_loyalty *p, const seg__lres *r, seg_loyalty_status *st)
{
    st->tier = r->tier;
    st->tier_name = p->tiers[r->tier].name;
    st->points = r->balance;
    st->earned = r->earned;
    st->redeemed = r->redeemed;
    st->expired = r->expired;
    st->reversed = r->reversed;
    st->qualifying = r->measure;
    st->downgrade_at = r->downgrade_at;
    if ((uint32_t)r->tier + 1 >= p->ntiers) {
        st->next_tier = -1;
        st->next_tier_name = NULL;
        st->to_next_tier = -1;
        st->spend_to_next_tier = -1;
        return;
    }
    int nt = r->tier + 1;
    st->next_tier = nt;
    st->next_tier_name = p->tiers[nt].name;
    int64_t need = p->tiers[nt].from - (r->measure > 0 ? r->measure : 0);
    if (need < 1)
        need = 1; /* (the measure sits at the threshold only in grace) */
    st->to_next_tier = need;
    if (p->qualify == SEG__LQ_SPEND)
        st->spend_to_next_tier = need;
    else if (p->qualify == SEG__LQ_POINTS)
        st->spend_to_next_tier = spend_for_points(p, r->tier, need);
    else
        st->spend_to_next_tier = -1;
}

/* ---- the stateless score ---- */

SEG_API size_t seg_loyalty_work_size(size_t n)
{
    if (n <= SEG_LOYALTY_STACK_TXNS)
        return 0;
    if (n > SIZE_MAX / sizeof(seg__lent))
        return SIZE_MAX;
    return n * sizeof(seg__lent);
}

#define TXN_V1_SIZE sizeof(seg_loyalty_txn)
#define STATUS_V1_SIZE sizeof(seg_loyalty_status)

static int score_fail(seg_loyalty_status *out, size_t *bad_out, size_t index, int code)
{
    if (bad_out)
        *bad_out = index;
    size_t sz = out->struct_size;
    if (sz >= STATUS_V1_SIZE) {
        memset(out, 0, sz);
        out->struct_size = sz;
    }
    return code;
}

SEG_API int seg_loyalty_score(seg_loyalty_status *out, const seg_loyalty *prog,
                              const seg_loyalty_txn *history, size_t n,
                              const seg_loyalty_txn *purchase, int64_t now,
                              void *work, size_t work_size, size_t *bad_out)
{
    if (bad_out)
        *bad_out = (size_t)-1;
    if (!out)
        return SEG_EINVAL;
    if (out->struct_size < STATUS_V1_SIZE)
        return SEG_EVERSION;
    if (!prog || (!history && n))
        return score_fail(out, bad_out, (size_t)-1, SEG_EINVAL);
    if (now < SEG_TIME_MIN || now > SEG_TIME_MAX)
        return score_fail(out, bad_out, (size_t)-1, SEG_ERANGE);
    size_t tsz = n ? history[0].struct_size : TXN_V1_SIZE;
    if (tsz < TXN_V1_SIZE)
        return score_fail(out, bad_out, 0, SEG_EVERSION);
    seg__lent stackbuf[SEG_LOYALTY_STACK_TXNS];
    seg__lent *e = stackbuf;
    if (n > SEG_LOYALTY_STACK_TXNS) {
        if (!work || work_size < seg_loyalty_work_size(n) || ((uintptr_t)work & 7))
            return score_fail(out, bad_out, (size_t)-1, SEG_ELIMIT);
        e = work;
    }
    rp r;
    uint32_t ohead[1u << ORDER_BITS];
    rp_init(&r, prog, e, ohead);
    tw st = tw_init(prog);
    /* the bonus rule of a purchase matters only when it earns points */
    int64_t earn_from = prog->min_spend > 1 ? prog->min_spend : 1;
    bool bonuses = prog->nbonus != 0;
    const char *ckey[CAT_SLOTS], *hkey[CHAN_SLOTS];
    uint64_t cval[CAT_SLOTS], hval[CHAN_SLOTS];
    if (bonuses) {
        memset(ckey, 0, sizeof ckey);
        memset(hkey, 0, sizeof hkey);
        cval[cat_slot(NULL)] = 0;   /* (NULL: none) */
        hval[chan_slot(NULL)] = 0;
    }
    int64_t prev = SEG_TIME_MIN;
    size_t done = 0;
    const char *base = (const char *)history;
    /* validate and replay each entry in one pass (entries at or after now
     * are checked, then the rest ignored) */
    for (size_t k = 0; k < n; k++) {
        const seg_loyalty_txn *t = (const seg_loyalty_txn *)(base + k * tsz);
        int64_t ts = t->ts;
        int64_t amount = t->amount;
        uint32_t order = t->order;
        if (SEG_LIKELY(t->kind == SEG_LOYALTY_PURCHASE && ts >= prev && ts < now &&
                       (uint64_t)amount <= (uint64_t)SEG_AMOUNT_MAX && order != UINT32_MAX)) {
            /* a purchase before now (prev <= ts < now <= SEG_TIME_MAX: in
             * range), the common case, straight */
            seg__lent *x = &e[k];
            prev = ts;
            x->ts = ts;
            x->amount = amount;
            x->order = order ? order : SEG__L_NO_ORDER;
            x->kind = SEG__LE_PURCHASE;
            advance(prog, e, k, &st, ts, true);
            unsigned b = 0;
            if (bonuses && amount >= earn_from) {
                const char *cat = t->category;
                unsigned slot = cat_slot(cat);
                uint64_t cm;
                if (SEG_LIKELY(ckey[slot] == cat)) {
                    cm = cval[slot];
                } else {
                    cm = name_lookup(&prog->cattab, prog->cats, prog->ncats, cat);
                    ckey[slot] = cat;
                    cval[slot] = cm;
                }
                /* (the channel mask is taken whether a rule needs it or
                 * not: m & ~anychan == 0 leaves m as it is) */
                const char *chan = t->channel;
                unsigned hs = chan_slot(chan);
                uint64_t hm;
                if (SEG_LIKELY(hkey[hs] == chan)) {
                    hm = hval[hs];
                } else {
                    hm = name_lookup(&prog->chantab, prog->chans, prog->nchans, chan);
                    hkey[hs] = chan;
                    hval[hs] = hm;
                }
                b = (unsigned)__builtin_ffsll((long long)((prog->anycat | cm) & (prog->anychan | hm)));
            }
            lot(prog, &r, &st, x, points_at(prog, st.rt, amount, b));
            link_order(&r, x, k);
            done = k + 1;
            continue;
        }
        if (SEG_UNLIKELY(ts < SEG_TIME_MIN || ts > SEG_TIME_MAX))
            return score_fail(out, bad_out, k, SEG_ERANGE);
        if (SEG_UNLIKELY(ts < prev))
            return score_fail(out, bad_out, k, SEG_EINVAL);
        prev = ts;
        if (SEG_UNLIKELY(t->order == UINT32_MAX))
            return score_fail(out, bad_out, k, SEG_EINVAL);
        seg__lent *x = &e[k];
        x->ts = ts;
        x->amount = t->amount;
        x->fixed = 0;
        x->bonus = 0;
        x->order = t->order ? t->order : SEG__L_NO_ORDER;
        switch (t->kind) {
        case SEG_LOYALTY_PURCHASE:
            if (SEG_UNLIKELY(t->amount < 0))
                return score_fail(out, bad_out, k, SEG_EINVAL);
            if (SEG_UNLIKELY(t->amount > SEG_AMOUNT_MAX))
                return score_fail(out, bad_out, k, SEG_ERANGE);
            x->kind = SEG__LE_PURCHASE;
            if (bonuses && t->amount >= earn_from && ts < now)
                x->bonus = (uint8_t)bonus_of(prog, t->category, t->channel);
            break;
        case SEG_LOYALTY_REFUND:
            if (SEG_UNLIKELY(t->amount >= 0))
                return score_fail(out, bad_out, k, SEG_EINVAL);
            if (SEG_UNLIKELY(t->amount < -SEG_AMOUNT_MAX))
                return score_fail(out, bad_out, k, SEG_ERANGE);
            x->kind = SEG__LE_REFUND;
            break;
        case SEG_LOYALTY_REDEMPTION:
            if (SEG_UNLIKELY(t->points <= 0))
                return score_fail(out, bad_out, k, SEG_EINVAL);
            if (SEG_UNLIKELY(t->points > SEG_LOYALTY_POINTS_MAX))
                return score_fail(out, bad_out, k, SEG_ERANGE);
            x->kind = SEG__LE_REDEEM;
            x->points = t->points;
            x->amount = 0;
            break;
        default:
            return score_fail(out, bad_out, k, SEG_EINVAL);
        }
        if (ts >= now)
            break; /* (later entries do not count) */
        step(&r, &st, x, k);
        done = k + 1;
    }
    int64_t pp = 0;
    if (purchase) {
        if (purchase->struct_size < TXN_V1_SIZE)
            return score_fail(out, bad_out, (size_t)-1, SEG_EVERSION);
        if (purchase->kind != SEG_LOYALTY_PURCHASE || purchase->amount < 0)
            return score_fail(out, bad_out, (size_t)-1, SEG_EINVAL);
        if (purchase->amount > SEG_AMOUNT_MAX)
            return score_fail(out, bad_out, (size_t)-1, SEG_ERANGE);
    }
    seg__lres res;
    finish(&r, st, done, now, &res);
    if (purchase) {
        unsigned b = 0;
        if (bonuses && purchase->amount >= earn_from)
            b = bonus_of(prog, purchase->category, purchase->channel);
        pp = points_of(prog, purchase->amount, res.tier, b);
    }
    size_t sz = out->struct_size;
    memset((char *)out + sizeof(size_t), 0, sz - sizeof(size_t));
    seg__loyalty_fill(prog, &res, out);
    out->purchase_points = pp;
    return SEG_OK;
}
