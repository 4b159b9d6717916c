/*
 * segment-gen: the project's seeded generator of realistic sample data.
 *
 *   segment-gen --customers N --seed S --events-out FILE --customers-out FILE
 *               [--start 2023-01-01] [--days 730]
 *
 * Writes an event log in libsegment's CSV format (time sorted) and a customer
 * attribute file.  Same arguments, same bytes: the generator uses its own
 * PRNG (xoshiro256** seeded with splitmix64) and its own log/exp, so the
 * output depends neither on the C library's rand() nor on its libm.
 *
 * Model, per customer (each customer has its own random stream, derived from
 * the seed and the customer's number, so customers are independent):
 * - about 10% are prospects: no purchase; most of them have a few
 *   engagement events, the rest none;
 * - buyers sign up on a uniform day of the window and place a Pareto
 *   distributed number of orders (alpha 1.4: most 1-3) spread over an active
 *   period after signup; about 1% are frequent buyers with 100-300 orders;
 * - an order has 1-6 lines (same order_id, ts and channel; distinct skus);
 * - about 3% of lines are refunded 1-30 days later, fully or partly, never
 *   more than the line (so never more than the order);
 * - engagement events (email_open, email_click, store_visit, offer_redeemed,
 *   app_open) come with orders and in the background, more for customers who
 *   buy more; customers who denied email consent get no email events.
 *
 * Events are produced in time windows (each pass regenerates every customer
 * and keeps one window's events), so memory stays bounded for large N while
 * the output is the same as a single sort of everything.
 */
#include <segment.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors ---- */

static void die(int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3), noreturn))
#endif
    ;

static void die(int status, const char *fmt, ...)
{
    va_list ap;
    fputs("segment-gen: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(status);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        die(1, "out of memory");
    return q;
}

/* ---- PRNG: splitmix64 for seeding, xoshiro256** for the streams ---- */

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * UINT64_C(0xD1B54A32D192ED03));
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* uniform in [0, 1) with 53 bits */
static double rng_unit(rng *r)
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* uniform integer in [0, n), n > 0 (Lemire's method, unbiased) */
static uint64_t rng_below(rng *r, uint64_t n)
{
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = rng_next(r);
        /* 128-bit multiply-high via 32-bit halves keeps this portable C11 */
        uint64_t xl = x & 0xffffffffu, xh = x >> 32, nl = n & 0xffffffffu, nh = n >> 32;
        uint64_t ll = xl * nl, lh = xl * nh, hl = xh * nl, hh = xh * nh;
        uint64_t mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
        uint64_t hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
        uint64_t lo = (mid << 32) | (ll & 0xffffffffu);
        if (lo >= threshold)
            return hi;
    }
}

static int rng_chance(rng *r, double p)
{
    return rng_unit(r) < p;
}

/* index drawn from cumulative integer weights (weights sum to total) */
static size_t rng_pick(rng *r, const unsigned *weights, size_t n)
{
    unsigned total = 0;
    for (size_t i = 0; i < n; i++)
        total += weights[i];
    uint64_t x = rng_below(r, total);
    for (size_t i = 0; i < n; i++) {
        if (x < weights[i])
            return i;
        x -= weights[i];
    }
    return n - 1;
}

/* ---- deterministic elementary functions (no libm) ---- */

/* natural log for x > 0 */
static double gen_log(double x)
{
    const double ln2 = 0.69314718055994530942;
    int k = 0;
    while (x >= 2.0) {
        x *= 0.5;
        k++;
    }
    while (x < 1.0) {
        x *= 2.0;
        k--;
    }
    /* x in [1, 2): ln x = 2 atanh((x-1)/(x+1)), |t| < 1/3 */
    double t = (x - 1.0) / (x + 1.0), t2 = t * t, term = t, sum = 0.0;
    for (int i = 1; i < 60; i += 2) {
        sum += term / i;
        term *= t2;
    }
    return 2.0 * sum + k * ln2;
}

static double gen_exp(double x)
{
    const double ln2 = 0.69314718055994530942;
    if (x > 700.0)
        x = 700.0;
    if (x < -700.0)
        return 0.0;
    int k = (int)(x / ln2);
    double r = x - k * ln2, term = 1.0, sum = 1.0;
    for (int i = 1; i < 30; i++) {
        term *= r / i;
        sum += term;
    }
    for (; k > 0; k--)
        sum *= 2.0;
    for (; k < 0; k++)
        sum *= 0.5;
    return sum;
}

/* square root by Newton's method (IEEE sqrt would do, but keep it self-contained) */
static double gen_sqrt(double x)
{
    if (x <= 0.0)
        return 0.0;
    double g = x > 1.0 ? x : 1.0;
    for (int i = 0; i < 100; i++) {
        double n = 0.5 * (g + x / g);
        if (n >= g)
            break;
        g = n;
    }
    return g;
}

/* standard normal (Marsaglia's polar method, one value per call) */
static double rng_normal(rng *r)
{
    for (;;) {
        double u = 2.0 * rng_unit(r) - 1.0, v = 2.0 * rng_unit(r) - 1.0;
        double s = u * u + v * v;
        if (s > 0.0 && s < 1.0)
            return u * gen_sqrt(-2.0 * gen_log(s) / s);
    }
}

static double rng_lognormal(rng *r, double mu, double sigma)
{
    return gen_exp(mu + sigma * rng_normal(r));
}

/* Poisson (Knuth for small means, normal approximation above 30) */
static unsigned rng_poisson(rng *r, double mean)
{
    if (mean <= 0.0)
        return 0;
    if (mean > 30.0) {
        double x = mean + gen_sqrt(mean) * rng_normal(r) + 0.5;
        return x < 0.0 ? 0u : (unsigned)x;
    }
    double l = gen_exp(-mean), p = 1.0;
    unsigned k = 0;
    do {
        k++;
        p *= rng_unit(r);
    } while (p > l);
    return k - 1;
}

/* ---- the model's vocabulary ---- */

enum { EV_PURCHASE = 1, EV_REFUND = 2, EV_ENGAGE = 3 };

static const char *const channels[] = { "web", "store", "app", "email" };
enum { CH_WEB, CH_STORE, CH_APP, CH_EMAIL };
static const unsigned channel_weights[] = { 45, 35, 20 };

typedef struct category {
    const char *name;
    const char *sku_prefix;
    double price; /* median unit price */
} category;

static const category categories[] = {
    { "apparel", "APP", 29.0 },    { "shoes", "SHO", 69.0 },  { "beauty", "BEA", 15.0 },
    { "home", "HOM", 35.0 },       { "electronics", "ELE", 119.0 },
    { "grocery", "GRO", 6.0 },     { "toys", "TOY", 22.0 },   { "books", "BOO", 14.0 },
    { "sports", "SPO", 45.0 },     { "garden", "GAR", 27.0 },
};
#define NCATEGORIES (sizeof categories / sizeof categories[0])
/* how often each category is bought, in the order above */
static const unsigned category_weights[NCATEGORIES] = { 22, 9, 12, 10, 6, 14, 6, 8, 7, 6 };
#define SKUS_PER_CATEGORY 240

static const char *const engagements[] = { "email_open", "email_click", "store_visit",
                                           "offer_redeemed", "app_open" };
enum { EN_EMAIL_OPEN, EN_EMAIL_CLICK, EN_STORE_VISIT, EN_OFFER_REDEEMED, EN_APP_OPEN };

static const char *const countries[] = { "US", "GB", "DE", "FR", "NL", "ES",
                                         "IT", "SE", "CA", "AU", "PL", "IE" };
static const unsigned country_weights[] = { 30, 14, 12, 9, 6, 6, 5, 4, 6, 4, 2, 2 };

#define DAY 86400

/* ---- customers ---- */

typedef struct profile {
    uint64_t number;    /* 1..N */
    int prospect;
    int64_t signup;
    unsigned orders;
    unsigned channel;   /* preferred purchase channel */
    double spend;       /* price level multiplier */
    double activity;    /* engagement level multiplier */
    /* attributes */
    int country;        /* -1: empty */
    int birth_year;     /* 0: empty */
    int email_verified; /* -1 empty, 0, 1 */
    int discount_bp;    /* lifetime discount in hundredths of a percent, -1 empty */
    int consent_email;  /* 0 empty, 1 granted, 2 denied */
    int consent_sms;
} profile;

typedef struct gen {
    uint64_t seed;
    uint64_t customers;
    int64_t start, end;
    int idwidth;
} gen;

/* One generated event, compact; strings are rendered at output time. */
typedef struct gev {
    int64_t ts;
    uint32_t customer; /* 1..N */
    uint32_t seq;      /* position in the customer's own stream: ties keep generation order */
    int64_t amount;    /* minor units */
    uint32_t order;    /* purchase: its order number; refund: the refunded order */
    uint16_t sku;
    uint8_t type;      /* EV_* */
    uint8_t what;      /* category (purchase/refund) or engagement name */
    uint8_t channel;
    uint8_t quantity;
} gev;

typedef struct gevbuf {
    gev *v;
    size_t n, cap;
} gevbuf;

static gev *gev_push(gevbuf *b)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 256;
        b->v = xrealloc(b->v, b->cap * sizeof *b->v);
    }
    gev *e = &b->v[b->n++];
    memset(e, 0, sizeof *e);
    return e;
}

/* midnight UTC of the day of t */
static int64_t floor_day(int64_t t)
{
    return t - (((t % DAY) + DAY) % DAY);
}

static int64_t time_of_day(rng *r)
{
    /* shopping hours: 08:00 to 22:00, a little more in the evening */
    int64_t base = 8 * 3600 + (int64_t)rng_below(r, 14 * 3600);
    if (rng_chance(r, 0.3))
        base = 17 * 3600 + (int64_t)rng_below(r, 5 * 3600);
    return base;
}

static void profile_init(profile *p, rng *r, const gen *g, uint64_t number)
{
    int64_t days = (g->end - g->start) / DAY;
    memset(p, 0, sizeof *p);
    rng_seed(r, g->seed, number);
    p->number = number;
    p->prospect = rng_chance(r, 0.10);
    int64_t day = (int64_t)rng_below(r, (uint64_t)(days > 1 ? days - days / 20 : 1));
    p->signup = g->start + day * DAY + time_of_day(r);
    /* orders: Pareto(alpha = 1.4, x_min = 1), P(orders >= x) = x^-1.4, so most
     * buyers order 1-3 times; plus about 1% of frequent buyers with 100-300 */
    double u = 1.0 - rng_unit(r); /* (0, 1] */
    double k = gen_exp(-gen_log(u) / 1.4);
    int frequent = rng_chance(r, 0.012);
    p->orders = k > 2000.0 ? 2000u : (unsigned)k;
    if (frequent)
        p->orders = 100 + (unsigned)rng_below(r, 201);
    if (p->prospect)
        p->orders = 0;
    p->channel = (unsigned)rng_pick(r, channel_weights, 3);
    p->spend = rng_lognormal(r, 0.0, 0.35);
    p->activity = rng_lognormal(r, 0.0, 0.6);

    p->country = rng_chance(r, 0.03) ? -1
                 : (int)rng_pick(r, country_weights, sizeof country_weights / sizeof *country_weights);
    if (rng_chance(r, 0.08)) {
        p->birth_year = 0;
    } else {
        double y = 1983.0 + 13.0 * rng_normal(r);
        p->birth_year = y < 1940.0 ? 1940 : y > 2006.0 ? 2006 : (int)y;
    }
    double ev = rng_unit(r);
    p->email_verified = ev < 0.05 ? -1 : ev < 0.27 ? 0 : 1;
    p->discount_bp = rng_chance(r, 0.6) ? -1 : (int)rng_below(r, 121) * 25; /* 0.00 .. 30.00 */
    double ce = rng_unit(r), cs = rng_unit(r);
    p->consent_email = ce < 0.25 ? 0 : ce < 0.80 ? 1 : 2;
    p->consent_sms = cs < 0.45 ? 0 : cs < 0.65 ? 1 : 2;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void push_engagement(gevbuf *b, const profile *p, uint32_t *seq, int64_t ts,
                            int what, int channel, const gen *g)
{
    if (ts < g->start || ts >= g->end)
        return;
    gev *e = gev_push(b);
    e->ts = ts;
    e->customer = (uint32_t)p->number;
    e->seq = (*seq)++;
    e->type = EV_ENGAGE;
    e->what = (uint8_t)what;
    e->channel = (uint8_t)channel;
}

/* Generate every event of one customer into b (appending). */
static void customer_events(gevbuf *b, rng *r, const profile *p, const gen *g,
                            int64_t **times, size_t *times_cap)
{
    static const unsigned bg_prospect[] = { 50, 0, 20, 0, 30 };
    static const unsigned bg_buyer[] = { 55, 15, 0, 0, 30 };
    const int email_ok = p->consent_email != 2;
    uint32_t seq = 0;
    int64_t until = g->end - 1;

    if (p->prospect) {
        if (!rng_chance(r, 0.6))
            return;
        unsigned n = 1 + rng_poisson(r, 2.0 * p->activity);
        for (unsigned i = 0; i < n; i++) {
            int what = (int)rng_pick(r, bg_prospect, 5);
            if (!email_ok && what == EN_EMAIL_OPEN)
                what = EN_APP_OPEN;
            int64_t ts = p->signup + (int64_t)rng_below(r, (uint64_t)(until - p->signup + 1));
            push_engagement(b, p, &seq, ts, what,
                            what == EN_EMAIL_OPEN ? CH_EMAIL : what == EN_STORE_VISIT ? CH_STORE : CH_APP, g);
        }
        return;
    }

    /* order times: the first at signup, the others over an active period */
    unsigned k = p->orders;
    if (*times_cap < k) {
        *times_cap = k;
        *times = xrealloc(*times, k * sizeof **times);
    }
    int64_t *t = *times;
    int64_t remaining = until - p->signup;
    double frac = 0.25 + 0.75 * rng_unit(r);
    if (k > 20)
        frac = 1.0; /* frequent buyers stay for the whole window */
    int64_t span = (int64_t)((double)remaining * frac);
    t[0] = p->signup;
    for (unsigned i = 1; i < k; i++) {
        int64_t day = (int64_t)rng_below(r, (uint64_t)(span / DAY + 1));
        t[i] = floor_day(p->signup) + day * DAY + time_of_day(r);
        if (t[i] < p->signup)
            t[i] = p->signup + 60;
        if (t[i] > until)
            t[i] = until;
    }
    qsort(t, k, sizeof *t, cmp_i64);

    for (unsigned o = 0; o < k; o++) {
        int64_t ts = t[o];
        unsigned ch = rng_chance(r, 0.75) ? p->channel : (unsigned)rng_pick(r, channel_weights, 3);
        /* what led to the order */
        if (ch == CH_STORE && rng_chance(r, 0.4))
            push_engagement(b, p, &seq, ts - 600 - (int64_t)rng_below(r, 1800), EN_STORE_VISIT, CH_STORE, g);
        if (ch == CH_APP && rng_chance(r, 0.6))
            push_engagement(b, p, &seq, ts - 60 - (int64_t)rng_below(r, 900), EN_APP_OPEN, CH_APP, g);
        if (ch == CH_WEB && email_ok && rng_chance(r, 0.25)) {
            int64_t click = ts - 300 - (int64_t)rng_below(r, 3 * 3600);
            push_engagement(b, p, &seq, click - 30 - (int64_t)rng_below(r, 600), EN_EMAIL_OPEN, CH_EMAIL, g);
            push_engagement(b, p, &seq, click, EN_EMAIL_CLICK, CH_EMAIL, g);
        }
        /* the lines: one order, one ts, one channel, distinct skus */
        unsigned lines = 1;
        while (lines < 6 && rng_chance(r, 0.38))
            lines++;
        size_t line_first = b->n; /* the lines are b->v[line_first .. +lines) */
        uint16_t skus[6];
        for (unsigned l = 0; l < lines; l++) {
            unsigned cat;
            uint16_t sku;
            int again;
            do {
                cat = (unsigned)rng_pick(r, category_weights, NCATEGORIES);
                sku = (uint16_t)(cat * 1000 + 1 + rng_below(r, SKUS_PER_CATEGORY));
                again = 0;
                for (unsigned j = 0; j < l; j++)
                    again |= skus[j] == sku;
            } while (again);
            skus[l] = sku;
            double unit = categories[cat].price * p->spend * rng_lognormal(r, 0.0, 0.55);
            int64_t cents = (int64_t)unit * 100 + 99; /* x.99 pricing */
            if (cents > 500000)
                cents = 499999;
            double qd = rng_unit(r);
            unsigned qty = qd < 0.80 ? 1 : qd < 0.95 ? 2 : 3;
            gev *e = gev_push(b);
            e->ts = ts;
            e->customer = (uint32_t)p->number;
            e->seq = seq++;
            e->type = EV_PURCHASE;
            e->what = (uint8_t)cat;
            e->sku = sku;
            e->channel = (uint8_t)ch;
            e->quantity = (uint8_t)qty;
            e->amount = cents * qty;
            e->order = o + 1;
        }
        if (rng_chance(r, 0.08))
            push_engagement(b, p, &seq, ts, EN_OFFER_REDEEMED, ch == CH_EMAIL ? CH_WEB : (int)ch, g);
        /* refunds: about 3% of lines, 1..30 days later; at most the line */
        for (size_t l = line_first; l < line_first + lines; l++) {
            if (!rng_chance(r, 0.03))
                continue;
            int64_t rts = ts + DAY + (int64_t)rng_below(r, 29 * DAY);
            int full = rng_chance(r, 0.7);
            int64_t pct = 20 + (int64_t)rng_below(r, 61);
            if (rts > until)
                continue;
            gev line_copy = b->v[l]; /* gev_push may move the array */
            gev *e = gev_push(b);
            e->ts = rts;
            e->customer = (uint32_t)p->number;
            e->seq = seq++;
            e->type = EV_REFUND;
            e->what = line_copy.what;
            e->sku = line_copy.sku;
            e->channel = line_copy.channel;
            e->order = line_copy.order;
            if (full) {
                e->amount = -line_copy.amount;
                e->quantity = line_copy.quantity;
            } else {
                int64_t part = line_copy.amount * pct / 100;
                e->amount = -(part > 0 ? part : 1);
                e->quantity = 0;
            }
        }
    }

    /* background engagement: newsletters and app use, more for active buyers */
    double lambda = p->activity * (1.0 + gen_exp(0.6 * gen_log((double)k)));
    unsigned n = rng_poisson(r, lambda);
    for (unsigned i = 0; i < n; i++) {
        int what = (int)rng_pick(r, bg_buyer, 5);
        if (!email_ok && (what == EN_EMAIL_OPEN || what == EN_EMAIL_CLICK))
            what = EN_APP_OPEN;
        int64_t ts = p->signup + (int64_t)rng_below(r, (uint64_t)(until - p->signup + 1));
        push_engagement(b, p, &seq, ts, what, what == EN_APP_OPEN ? CH_APP : CH_EMAIL, g);
    }
}

static int cmp_gev(const void *a, const void *b)
{
    const gev *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    if (x->customer != y->customer)
        return x->customer < y->customer ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* ---- output ---- */

typedef struct outf {
    FILE *f;
    const char *path;
    char buf[1 << 16];
    size_t len;
} outf;

static void of_flush(outf *o)
{
    if (o->len && fwrite(o->buf, 1, o->len, o->f) != o->len)
        die(1, "%s: write error: %s", o->path, strerror(errno));
    o->len = 0;
}

static char *of_reserve(outf *o, size_t n)
{
    if (sizeof o->buf - o->len < n)
        of_flush(o);
    return o->buf + o->len;
}

static void of_puts(outf *o, const char *s)
{
    size_t n = strlen(s);
    memcpy(of_reserve(o, n), s, n);
    o->len += n;
}

static void of_open(outf *o, const char *path)
{
    o->path = path;
    o->len = 0;
    if (strcmp(path, "-") == 0) {
        o->f = stdout;
        return;
    }
    o->f = fopen(path, "wb");
    if (!o->f)
        die(1, "%s: %s", path, strerror(errno));
}

static void of_close(outf *o)
{
    of_flush(o);
    if (o->f == stdout) {
        if (fflush(stdout) != 0)
            die(1, "%s: write error: %s", o->path, strerror(errno));
    } else if (fclose(o->f) != 0) {
        die(1, "%s: write error: %s", o->path, strerror(errno));
    }
}

static size_t put_u64(char *p, uint64_t v, int width)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < width)
        tmp[n++] = '0';
    for (int i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return (size_t)n;
}

static size_t put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return n;
}

static size_t put_customer_id(char *p, const gen *g, uint64_t number)
{
    p[0] = 'C';
    return 1 + put_u64(p + 1, number, g->idwidth);
}

static size_t put_time(char *p, int64_t t)
{
    size_t n = seg_time_format(p, 32, t);
    if (n == 0)
        die(1, "time out of range: %lld", (long long)t);
    return n;
}

static void write_event(outf *o, const gen *g, const gev *e, uint64_t event_number)
{
    char *p = of_reserve(o, 512), *s = p;
    /* event_id,customer_id,ts,type,amount,quantity,order_id,channel,category,sku,refund_of,name */
    *p++ = 'E';
    p += put_u64(p, event_number, 8);
    *p++ = ',';
    p += put_customer_id(p, g, e->customer);
    *p++ = ',';
    p += put_time(p, e->ts);
    *p++ = ',';
    if (e->type == EV_ENGAGE) {
        p += put_str(p, "engagement,,,,");
        p += put_str(p, channels[e->channel]);
        p += put_str(p, ",,,,");
        p += put_str(p, engagements[e->what]);
    } else {
        const category *c = &categories[e->what];
        size_t n;
        p += put_str(p, e->type == EV_PURCHASE ? "purchase," : "refund,");
        if ((n = seg_money_format(p, 32, e->amount, 2)) == 0)
            die(1, "amount out of range");
        p += n;
        *p++ = ',';
        p += put_u64(p, e->quantity, 1);
        *p++ = ',';
        char order_id[48], *q = order_id;
        *q++ = 'O';
        q += put_u64(q, e->customer, g->idwidth);
        *q++ = '-';
        q += put_u64(q, e->order, 3);
        *q = '\0';
        if (e->type == EV_PURCHASE)
            p += put_str(p, order_id);
        *p++ = ',';
        p += put_str(p, channels[e->channel]);
        *p++ = ',';
        p += put_str(p, c->name);
        *p++ = ',';
        p += put_str(p, c->sku_prefix);
        *p++ = '-';
        p += put_u64(p, (uint64_t)(e->sku % 1000), 4);
        *p++ = ',';
        if (e->type == EV_REFUND)
            p += put_str(p, order_id);
        *p++ = ',';
    }
    *p++ = '\n';
    o->len += (size_t)(p - s);
}

static void write_customer(outf *o, const gen *g, const profile *p)
{
    static const char *const consent[] = { "", "granted", "denied" };
    char *b = of_reserve(o, 256), *s = b;
    b += put_customer_id(b, g, p->number);
    *b++ = ',';
    if (p->country >= 0)
        b += put_str(b, countries[p->country]);
    *b++ = ',';
    if (p->birth_year)
        b += put_u64(b, (uint64_t)p->birth_year, 4);
    *b++ = ',';
    b += put_time(b, p->signup);
    *b++ = ',';
    if (p->email_verified >= 0)
        b += put_str(b, p->email_verified ? "true" : "false");
    *b++ = ',';
    if (p->discount_bp >= 0) {
        b += put_u64(b, (uint64_t)(p->discount_bp / 100), 1);
        if (p->discount_bp % 100) {
            *b++ = '.';
            b += put_u64(b, (uint64_t)(p->discount_bp % 100), 2);
        }
    }
    *b++ = ',';
    b += put_str(b, consent[p->consent_email]);
    *b++ = ',';
    b += put_str(b, consent[p->consent_sms]);
    *b++ = '\n';
    o->len += (size_t)(b - s);
}

/* ---- main ---- */

static const char usage[] =
    "Usage: segment-gen --customers N --seed S [--events-out FILE] [--customers-out FILE]\n"
    "                   [--start DATE] [--days D]\n"
    "\n"
    "Generate a realistic, reproducible sample for libsegment: an event log in\n"
    "libsegment's CSV format, sorted by time, and a customer attribute file.\n"
    "The same arguments always produce the same bytes.\n"
    "\n"
    "  --customers N        number of customers, C00001 .. CN (1 .. 10000000)\n"
    "  --seed S             seed of the random streams (unsigned 64-bit integer)\n"
    "  --events-out FILE    write the events here ('-': standard output); header\n"
    "                       event_id,customer_id,ts,type,amount,quantity,order_id,\n"
    "                       channel,category,sku,refund_of,name\n"
    "  --customers-out FILE write the customers here; header customer_id,\n"
    "                       country:string,birth_year:int,signup:time,\n"
    "                       email_verified:bool,lifetime_discount:number,\n"
    "                       consent:email,consent:sms\n"
    "  --start DATE         first day of the window (default 2023-01-01)\n"
    "  --days D             length of the window in days (default 730)\n"
    "  -h, --help           show this help\n"
    "  --version            show the version\n"
    "\n"
    "At least one of --events-out and --customers-out is required.\n";

static uint64_t parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        die(2, "%s: not a number: '%s'", opt, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        die(2, "%s: expected an integer in %llu..%llu, got '%s'", opt,
            (unsigned long long)min, (unsigned long long)max, s);
    return (uint64_t)v;
}

int main(int argc, char **argv)
{
    const char *events_out = NULL, *customers_out = NULL, *start_text = "2023-01-01";
    uint64_t ncustomers = 0, seed = 0, days = 730;
    int have_customers = 0, have_seed = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("segment-gen %s (libsegment %s)\n", SEG_VERSION_STRING, seg_version_string());
            return 0;
        }
        static const char *const names[] = { "--customers", "--seed", "--events-out",
                                             "--customers-out", "--start", "--days" };
        size_t which = sizeof names / sizeof *names;
        for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
            size_t n = strlen(names[k]);
            if (strncmp(a, names[k], n) == 0 && (a[n] == '\0' || a[n] == '=')) {
                which = k;
                if (a[n] == '=')
                    v = a + n + 1;
                else if (i + 1 < argc)
                    v = argv[++i];
                else
                    die(2, "option '%s' needs a value", names[k]);
                break;
            }
        }
        switch (which) {
        case 0: ncustomers = parse_u64("--customers", v, 1, 10000000); have_customers = 1; break;
        case 1: seed = parse_u64("--seed", v, 0, UINT64_MAX); have_seed = 1; break;
        case 2: events_out = v; break;
        case 3: customers_out = v; break;
        case 4: start_text = v; break;
        case 5: days = parse_u64("--days", v, 1, 36500); break;
        default: die(2, "unknown argument '%s' (see --help)", a);
        }
    }
    if (!have_customers || !have_seed)
        die(2, "--customers and --seed are required (see --help)");
    if (!events_out && !customers_out)
        die(2, "nothing to do: give --events-out and/or --customers-out");

    gen g;
    g.seed = seed;
    g.customers = ncustomers;
    if (seg_time_parse(&g.start, start_text, strlen(start_text)) != SEG_OK)
        die(2, "--start: not a time: '%s'", start_text);
    g.start = floor_day(g.start);
    g.end = g.start + (int64_t)days * DAY;
    if (g.end > SEG_TIME_MAX)
        die(2, "--start/--days: the window ends after year 9999");
    g.idwidth = 5;
    for (uint64_t x = ncustomers; x >= 100000; x /= 10)
        g.idwidth++;

    rng r;
    profile p;
    if (customers_out) {
        outf *o = malloc(sizeof *o);
        if (!o)
            die(1, "out of memory");
        of_open(o, customers_out);
        of_puts(o, "customer_id,country:string,birth_year:int,signup:time,email_verified:bool,"
                   "lifetime_discount:number,consent:email,consent:sms\n");
        for (uint64_t c = 1; c <= ncustomers; c++) {
            profile_init(&p, &r, &g, c);
            write_customer(o, &g, &p);
        }
        of_close(o);
        free(o);
    }

    if (events_out) {
        outf *o = malloc(sizeof *o);
        if (!o)
            die(1, "out of memory");
        of_open(o, events_out);
        of_puts(o, "event_id,customer_id,ts,type,amount,quantity,order_id,channel,category,"
                   "sku,refund_of,name\n");
        /* one pass per time window keeps memory bounded (about 250k customers' worth of
         * events, some 130 MB, per pass); the output does not depend on the count */
        uint64_t passes = 1 + ncustomers / 250000;
        int64_t span = g.end - g.start;
        gevbuf cust = { NULL, 0, 0 }, keep = { NULL, 0, 0 };
        int64_t *times = NULL;
        size_t times_cap = 0;
        uint64_t event_number = 0;
        for (uint64_t w = 0; w < passes; w++) {
            int64_t lo = g.start + (int64_t)((double)span * (double)w / (double)passes);
            int64_t hi = w + 1 == passes ? g.end
                         : g.start + (int64_t)((double)span * (double)(w + 1) / (double)passes);
            keep.n = 0;
            for (uint64_t c = 1; c <= ncustomers; c++) {
                profile_init(&p, &r, &g, c);
                cust.n = 0;
                customer_events(&cust, &r, &p, &g, &times, &times_cap);
                for (size_t j = 0; j < cust.n; j++)
                    if (cust.v[j].ts >= lo && cust.v[j].ts < hi)
                        *gev_push(&keep) = cust.v[j];
            }
            qsort(keep.v, keep.n, sizeof *keep.v, cmp_gev);
            for (size_t j = 0; j < keep.n; j++)
                write_event(o, &g, &keep.v[j], ++event_number);
        }
        of_close(o);
        free(o);
        free(cust.v);
        free(keep.v);
        free(times);
    }
    return 0;
}
