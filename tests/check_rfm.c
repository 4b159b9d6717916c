/*
 * tests/check_rfm.c: RFM values, scores, quantile bins, thresholds and
 * historic value.
 *
 * Expected values come from the definitions (rfm.h, doc/rfm.md): small
 * hand-made cases computed in the comments, and random databases checked
 * against a naive reference that reads every event back through
 * seg_event_foreach().  The bins are checked against an independent
 * dynamic program over every group boundary and, for small cases, against
 * brute force.  White-box: the binning internals (lib/rfm/rfm-private.h).
 */
#include "testutil.h"

#include "rfm/rfm-private.h"

Suite *rfm_suite(void);

static seg_db *db;

static void setup(void)
{
    db = NULL;
    ck_assert_int_eq(seg_db_open(&db, ":memory:", NULL), SEG_OK);
}

static void teardown(void)
{
    seg_db_close(db);
    db = NULL;
}

static void ingest(seg_db *d, seg_event e)
{
    int rc = seg_event_ingest(d, &e);
    ck_assert_msg(rc == SEG_OK, "ingest %s/%s: %d %s", e.customer_id,
                  e.event_id ? e.event_id : "(derived)", rc, seg_errmsg(d));
}

/* ---- collecting results ---- */

typedef struct row {
    seg_rfm_info info;
    char id[SEG_ID_MAX + 1];
} row;

typedef struct rows {
    row *v;
    size_t n, cap;
    size_t stop_after; /* 0: never stop */
} rows;

static int collect_cb(const seg_rfm_info *c, void *payload)
{
    rows *r = payload;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->v = realloc(r->v, r->cap * sizeof *r->v);
        ck_assert_ptr_nonnull(r->v);
    }
    ck_assert_uint_eq(c->struct_size, sizeof(seg_rfm_info));
    row *x = &r->v[r->n++];
    x->info = *c;
    ck_assert_uint_le(strlen(c->customer_id), SEG_ID_MAX);
    strcpy(x->id, c->customer_id);
    x->info.customer_id = NULL; /* the array may move: see rows_done() */
    return r->stop_after && r->n >= r->stop_after;
}

/* after the collection: point the ids at the copies */
static void rows_done(rows *r)
{
    for (size_t i = 0; i < r->n; i++)
        r->v[i].info.customer_id = r->v[i].id;
}

static void rows_free(rows *r)
{
    free(r->v);
    memset(r, 0, sizeof *r);
}

static const row *find_row(const rows *r, const char *id)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i].id, id) == 0)
            return &r->v[i];
    return NULL;
}

static seg_rfm_thresholds *run_rfm(seg_db *d, const seg_rfm_options *o, uint32_t flags, rows *out)
{
    seg_rfm_thresholds *t = NULL;
    memset(out, 0, sizeof *out);
    TU_OK(d, seg_rfm_foreach(&t, d, o, flags, collect_cb, out));
    rows_done(out);
    ck_assert_ptr_nonnull(t);
    return t;
}

#define DAY TU_DAY
#define T0 TU_D0 /* 2024-03-01T00:00:00Z */

/* ================================================================ definitions */

/* The example of doc/rfm.md:
 *   ann:  order A1 (two lines, 10.00 + 5.00) on day 0 10:00, order A2 8.00
 *         on day 20 23:59:59, a refund of 5.00 of A1 on day 25
 *   bob:  one order 30.00 on day 10, and a zero-amount line on day 28
 *   cat:  only an email open on day 29 12:00 (the last event)
 *   dan:  added with no events
 * Default as_of: the start of day 30.  ann: last purchase day 20 -> recency
 * 10, frequency 2, monetary 10 + 5 + 8 - 5 = 18.00.  bob: recency 20,
 * frequency 1 (the zero line is no purchase), monetary 30.00. */
static void load_example(seg_db *d)
{
    ingest(d, tu_purchase("a1", "ann", T0 + 10 * 3600, 1000, "A1"));
    ingest(d, tu_purchase("a2", "ann", T0 + 10 * 3600, 500, "A1"));
    ingest(d, tu_purchase("a3", "ann", T0 + 20 * DAY + DAY - 1, 800, "A2"));
    ingest(d, tu_refund("a4", "ann", T0 + 25 * DAY, -500, "A1"));
    ingest(d, tu_purchase("b1", "bob", T0 + 10 * DAY, 3000, "B1"));
    ingest(d, tu_purchase("b2", "bob", T0 + 28 * DAY, 0, "B2"));
    ingest(d, tu_engagement("c1", "cat", T0 + 29 * DAY + 12 * 3600, "email_open"));
    TU_OK(d, seg_customer_add(d, "dan"));
}

START_TEST(example_definitions)
{
    load_example(db);
    rows r;
    seg_rfm_thresholds *t = run_rfm(db, NULL, SEG_RFM_SORTED, &r);
    ck_assert_uint_eq(r.n, 4);
    const char *order[] = { "ann", "bob", "cat", "dan" };
    for (size_t i = 0; i < 4; i++)
        ck_assert_str_eq(r.v[i].id, order[i]);
    const seg_rfm_info *ann = &r.v[0].info, *bob = &r.v[1].info, *cat = &r.v[2].info,
                       *dan = &r.v[3].info;
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(r.v[i].info.as_of, T0 + 30 * DAY);
    ck_assert_uint_eq(ann->status, SEG_RFM_ACTIVE);
    ck_assert_int_eq(ann->recency_days, 10);
    ck_assert_uint_eq(ann->frequency, 2);
    ck_assert_int_eq(ann->monetary, 1800);
    ck_assert_uint_eq(bob->status, SEG_RFM_ACTIVE);
    ck_assert_int_eq(bob->recency_days, 20);
    ck_assert_uint_eq(bob->frequency, 1);
    ck_assert_int_eq(bob->monetary, 3000);
    /* two active customers, all values distinct: fewer distinct values than
     * bins, so mid-rank scores: lower value (midrank 1/4) -> 1 + floor(5/4)
     * = 2, higher (3/4) -> 1 + floor(15/4) = 4 */
    ck_assert_uint_eq(ann->r, 4);
    ck_assert_uint_eq(bob->r, 2);
    ck_assert_uint_eq(ann->f, 4);
    ck_assert_uint_eq(bob->f, 2);
    ck_assert_uint_eq(ann->m, 2);
    ck_assert_uint_eq(bob->m, 4);
    /* prospects: no scores */
    ck_assert_uint_eq(cat->status, SEG_RFM_PROSPECT);
    ck_assert_uint_eq(dan->status, SEG_RFM_PROSPECT);
    ck_assert_uint_eq(cat->r + cat->f + cat->m + dan->r + dan->f + dan->m, 0);
    ck_assert_int_eq(cat->recency_days, -1);
    ck_assert_uint_eq(cat->frequency, 0);
    ck_assert_int_eq(cat->monetary, 0);
    ck_assert_int_eq(cat->tenure_days, -1);
    /* historic value: ann 2 orders, 18.00, aov 9.00, first purchase day 0,
     * tenure 30 days, rate 2 * 365 / 30 */
    ck_assert_uint_eq(ann->orders, 2);
    ck_assert_int_eq(ann->total_value, 1800);
    ck_assert_int_eq(ann->average_order_value, 900);
    ck_assert_int_eq(ann->first_purchase, T0 + 10 * 3600);
    ck_assert_int_eq(ann->last_purchase, T0 + 21 * DAY - 1);
    ck_assert_int_eq(ann->tenure_days, 30);
    ck_assert_double_eq_tol(ann->purchase_rate, 2.0 * 365.0 / 30.0, 1e-9);
    ck_assert_int_eq(bob->tenure_days, 20);
    ck_assert_uint_eq(dan->orders, 0);
    ck_assert_double_eq(dan->purchase_rate, 0.0);
    seg_rfm_thresholds_free(t);
    rows_free(&r);
}
END_TEST

/* as_of in the past: events at or after it do not count; customers whose
 * events all come later are not visited */
START_TEST(as_of_excludes_later_events)
{
    load_example(db);
    seg_rfm_options o = SEG_RFM_OPTIONS_INIT;
    o.as_of = T0 + 20 * DAY + DAY - 1; /* exactly ann's second order: excluded */
    rows r;
    seg_rfm_thresholds *t = run_rfm(db, &o, SEG_RFM_SORTED, &r);
    ck_assert_uint_eq(r.n, 3); /* cat's only event is later: not a customer yet */
    ck_assert_ptr_null(find_row(&r, "cat"));
    const seg_rfm_info *ann = &find_row(&r, "ann")->info;
    ck_assert_int_eq(ann->as_of, o.as_of);
    ck_assert_uint_eq(ann->frequency, 1);
    ck_assert_int_eq(ann->monetary, 1500);  /* the refund (day 25) is later too */
    ck_assert_int_eq(ann->recency_days, 20); /* day 0 to day 20 */
    ck_assert_int_eq(ann->tenure_days, 20);
    ck_assert_ptr_nonnull(find_row(&r, "dan"));
    /* one customer: the same, and "not yet" for cat */
    seg_rfm_options g = o;
    g.thresholds = t;
    seg_rfm_info one = SEG_RFM_INFO_INIT;
    TU_OK(db, seg_rfm_get(&one, db, &g, "ann"));
    ck_assert_str_eq(one.customer_id, "ann");
    ck_assert_uint_eq(one.frequency, 1);
    ck_assert_int_eq(one.monetary, 1500);
    ck_assert_uint_eq(one.r, ann->r);
    TU_RC(db, seg_rfm_get(&one, db, &g, "cat"), SEG_ENOTFOUND);
    TU_MSG_HAS(db, "cat");
    TU_RC(db, seg_rfm_get(&one, db, &g, "nobody"), SEG_ENOTFOUND);
    seg_rfm_thresholds_free(t);
    rows_free(&r);
}
END_TEST

/* a window: lapsed customers, refunds by their own time, an order with a
 * line inside and one outside counted once */
START_TEST(window_lapsed_and_split_orders)
{
    load_example(db);
    /* eve: order E1 with a line on day 5 and a line on day 22 */
    ingest(db, tu_purchase("e1", "eve", T0 + 5 * DAY, 700, "E1"));
    ingest(db, tu_purchase("e2", "eve", T0 + 22 * DAY, 300, "E1"));
    seg_rfm_options o = SEG_RFM_OPTIONS_INIT;
    o.window = 15 * DAY; /* as_of day 30: the window is [day 15, day 30) */
    rows r;
    seg_rfm_thresholds *t = run_rfm(db, &o, SEG_RFM_SORTED, &r);
    const seg_rfm_info *ann = &find_row(&r, "ann")->info, *bob = &find_row(&r, "bob")->info,
                       *eve = &find_row(&r, "eve")->info;
    ck_assert_uint_eq(ann->status, SEG_RFM_ACTIVE);
    ck_assert_uint_eq(ann->frequency, 1);   /* A2 only */
    ck_assert_int_eq(ann->monetary, 300);   /* 8.00 - 5.00 (the refund of A1, day 25) */
    ck_assert_uint_eq(ann->orders, 2);      /* historic value ignores the window */
    ck_assert_int_eq(ann->total_value, 1800);
    ck_assert_uint_eq(bob->status, SEG_RFM_LAPSED); /* last purchase day 10 */
    ck_assert_uint_eq(bob->r + bob->f + bob->m, 0);
    ck_assert_uint_eq(bob->frequency, 0);
    ck_assert_int_eq(bob->monetary, 0);
    ck_assert_uint_eq(bob->orders, 1);
    ck_assert_uint_eq(eve->frequency, 1);
    ck_assert_int_eq(eve->monetary, 300);
    ck_assert_int_eq(eve->recency_days, 8);
    ck_assert_uint_eq(eve->orders, 1);
    ck_assert_int_eq(eve->total_value, 1000);
    ck_assert_int_eq(eve->tenure_days, 25);
    /* the thresholds remember the window */
    char text[SEG_RFM_THRESHOLDS_TEXT_MAX];
    ck_assert_uint_lt(seg_rfm_thresholds_export(text, sizeof text, t), sizeof text);
    TU_STR_HAS(text, "\nwindow 1296000\n");
    seg_rfm_thresholds_free(t);
    rows_free(&r);
}
END_TEST

/* order-less lines are orders of their own; a multi-line order counts once;
 * a zero-amount line is no purchase; lines of one order on two days */
START_TEST(orders_counted_once)
{
    seg_event e = tu_purchase(NULL, "u", T0, 100, NULL);
    ingest(db, e);
    ingest(db, e); /* same content, derived id: a duplicate, not a second order */
    e.ts = T0 + 1;
    ingest(db, e); /* another time: another order */
    ingest(db, tu_purchase("x1", "u", T0 + 2, 100, NULL));
    ingest(db, tu_purchase("x2", "u", T0 + 3, 100, NULL));
    ingest(db, tu_purchase("x3", "u", T0 + 4, 100, "O"));
    ingest(db, tu_purchase("x4", "u", T0 + DAY, 100, "O"));
    ingest(db, tu_purchase("x5", "u", T0 + DAY, 0, "Z"));
    rows r;
    seg_rfm_thresholds *t = run_rfm(db, NULL, 0, &r);
    ck_assert_uint_eq(r.n, 1);
    ck_assert_uint_eq(r.v[0].info.frequency, 5); /* T0, T0+1, x1, x2, O */
    ck_assert_int_eq(r.v[0].info.monetary, 600);
    ck_assert_int_eq(r.v[0].info.recency_days, 1);
    seg_customer_info ci = SEG_CUSTOMER_INFO_INIT;
    TU_OK(db, seg_customer_get(&ci, db, "u"));
    ck_assert_uint_eq(ci.orders, r.v[0].info.frequency); /* the store agrees */
    seg_rfm_thresholds_free(t);
    rows_free(&r);
}
END_TEST

/* average order value: rounded half away from zero */
START_TEST(monetary_aov_rounding)
{
    ingest(db, tu_purchase("p1", "p", T0, 501, "P1"));
    ingest(db, tu_purchase("p2", "p", T0, 500, "P2")); /* 10.01 / 2 = 5.005 -> 5.01 */
    ingest(db, tu_purchase("q1", "q", T0, 100, "Q1"));
    ingest(db, tu_refund("q2", "q", T0 + 1, -103, NULL));
    ingest(db, tu_purchase("q3", "q", T0, 0, "Q2"));
    ingest(db, tu_purchase("q4", "q", T0, 0, "Q3"));
    ingest(db, tu_purchase("q5", "q", T0, 0, "Q4"));
    seg_rfm_options o = SEG_RFM_OPTIONS_INIT;
    o.monetary = SEG_RFM_MONETARY_AOV;
    rows r;
    seg_rfm_thresholds *t = run_rfm(db, &o, SEG_RFM_SORTED, &r);
    ck_assert_int_eq(r.v[0].info.monetary, 501);
    ck_assert_int_eq(r.v[0].info.average_order_value, 501);
    /* q: one order, net -0.03 */
    ck_assert_uint_eq(r.v[1].info.frequency, 1);
    ck_assert_int_eq(r.v[1].info.monetary, -3);
    ck_assert_int_eq(r.v[1].info.total_value, -3);
    seg_rfm_thresholds_free(t);
    rows_free(&r);
    /* a negative half: -0.03 over 2 orders = -0.015 -> -0.02 */
    ingest(db, tu_purchase("q6", "q", T0, 1, "Q5"));
    ingest(db, tu_refund("q7", "q", T0 + 2, -1, NULL));
    t = run_rfm(db, &o, SEG_RFM_SORTED, &r);
    ck_assert_uint_eq(r.v[1].info.frequency, 2);
    ck_assert_int_eq(r.v[1].info.monetary, -2);
    ck_assert_int_eq(r.v[1].info.average_order_value, -2);
    seg_rfm_thresholds_free(t);
    rows_free(&r);
}
END_TEST

/* calendar days are UTC dates, also before 1970 */
START_TEST(recency_calendar_days)
{
    ingest(db, tu_purchase("n1", "n", -3600, 100, "N1"));   /* 1969-12-31T23:00Z */
    ingest(db, tu_purchase("m1", "m", 0, 100, "M1"));       /* 1970-01-01T00:00Z */
    ingest(db, tu_purchase("k1", "k", -86400, 100, "K1"));  /* 1969-12-31T00:00Z */
    seg_rfm_options o = SEG_RFM_OPTIONS_INIT;
    o.as_of = 3600; /* 1970-01-01T01:00Z */
    rows r;
    seg_rfm_thresholds *t = run_rfm(db, &o, SEG_RFM_SORTED, &r);
    ck_assert_str_eq(r.v[0].id, "k");
    ck_assert_int_eq(r.v[0].info.recency_days, 1);
    ck_assert_int_eq(r.v[1].info.recency_days, 0); /* m: same date as as_of */
    ck_assert_int_eq(r.v[2].info.recency_days, 1); /* n: the day before */
    ck_assert_uint_eq(r.v[1].info.r, seg_rfm_score(t, SEG_RFM_R, 0));
    ck_assert_uint_eq(r.v[0].info.r, r.v[2].info.r); /* equal values, equal scores */
    seg_rfm_thresholds_free(t);
    rows_free(&r);
    /* default as_of: the day after the last event */
    t = run_rfm(db, NULL, SEG_RFM_SORTED, &r);
    ck_assert_int_eq(r.v[0].info.as_of, 86400);
    ck_assert_int_eq(r.v[1].info.recency_days, 1);
    ck_assert_int_eq(r.v[2].info.recency_days, 2);
    seg_rfm_thresholds_free(t);
    rows_free(&r);
}
END_TEST

START_TEST(empty_database)
{
    rows r;
    seg_rfm_thresholds *t = run_rfm(db, NULL, SEG_RFM_SORTED, &r);
    ck_assert_uint_eq(r.n, 0);
    ck_assert_uint_eq(seg_rfm_thresholds_bins(t), 5);
    /* no customer to calibrate on: every value scores 1 */
    ck_assert_uint_eq(seg_rfm_score(t, SEG_RFM_F, 1000000), 1);
    ck_assert_uint_eq(seg_rfm_score(t, SEG_RFM_R, 0), 1);
    seg_rfm_thresholds_free(t);
    rows_free(&r);
    /* prospects only */
    TU_OK(db, seg_customer_add(db, "p"));
    t = run_rfm(db, NULL, 0, &r);
    ck_assert_uint_eq(r.n, 1);
    ck_assert_uint_eq(r.v[0].info.status, SEG_RFM_PROSPECT);
    ck_assert_int_eq(r.v[0].info.as_of, 0);
    seg_rfm_thresholds_free(t);
    rows_free(&r);
}
END_TEST

/* erased customers are gone; anonymized ones keep their values */
START_TEST(erased_and_anonymized)
{
    load_example(db);
    TU_OK(db, seg_customer_erase(db, "bob"));
    char *nid = NULL;
    TU_OK(db, seg_customer_anonymize(db, "ann", &nid));
    rows r;
    seg_rfm_thresholds *t = run_rfm(db, NULL, 0, &r);
    ck_assert_ptr_null(find_row(&r, "bob"));
    ck_assert_ptr_null(find_row(&r, "ann"));
    const row *x = find_row(&r, nid);
    ck_assert_ptr_nonnull(x);
    ck_assert_uint_eq(x->info.frequency, 2);
    ck_assert_int_eq(x->info.monetary, 1800);
    /* with bob gone the last event is still cat's: as_of day 30 */
    ck_assert_int_eq(x->info.as_of, T0 + 30 * DAY);
    seg_free(nid);
    seg_rfm_thresholds_free(t);
    rows_free(&r);
}
END_TEST

/* ================================================= the naive reference */

typedef struct rev {
    char cust[SEG_ID_MAX + 1];
    char order[SEG_ID_MAX + 1];
    uint32_t kind;
    int64_t ts, amount;
} rev;

typedef struct revs {
    rev *v;
    size_t n, cap;
} revs;

static int rev_cb(const seg_event_info *e, void *payload)
{
    revs *l = payload;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        ck_assert_ptr_nonnull(l->v);
    }
    rev *x = &l->v[l->n++];
    strcpy(x->cust, e->customer_id);
    strcpy(x->order, e->order_id ? e->order_id : "");
    x->kind = e->kind;
    x->ts = e->ts;
    x->amount = e->amount;
    return 0;
}

static int64_t day_of(int64_t t)
{
    return t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
}

static int64_t div_round(int64_t a, int64_t b)
{
    int64_t q = a / b, r = a % b;
    if (2 * (r < 0 ? -r : r) >= b)
        q += a < 0 ? -1 : 1;
    return q;
}

static size_t count_orders(const revs *l, const char *cust, int64_t from, int64_t to)
{
    /* distinct order ids of the customer's positive purchase lines in [from, to) */
    const char **seen = malloc((l->n + 1) * sizeof *seen);
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        const rev *e = &l->v[i];
        if (strcmp(e->cust, cust) || e->kind != SEG_EVENT_PURCHASE || e->amount <= 0 ||
            e->ts < from || e->ts >= to)
            continue;
        size_t k;
        for (k = 0; k < n; k++)
            if (strcmp(seen[k], e->order) == 0)
                break;
        if (k == n)
            seen[n++] = e->order;
    }
    free(seen);
    return n;
}

/* Check one result row against the definitions. */
static void check_row(const revs *l, const seg_rfm_info *x, int64_t T, int64_t window,
                      uint32_t measure)
{
    int64_t ws = window ? T - window : INT64_MIN;
    int64_t w_net = 0, l_net = 0, w_last = 0, l_first = 0, l_last = 0;
    int any = 0, w_any = 0, l_any = 0;
    for (size_t i = 0; i < l->n; i++) {
        const rev *e = &l->v[i];
        if (strcmp(e->cust, x->customer_id) || e->ts >= T)
            continue;
        any = 1;
        if (e->kind == SEG_EVENT_ENGAGEMENT)
            continue;
        l_net += e->amount;
        if (e->ts >= ws)
            w_net += e->amount;
        if (e->kind != SEG_EVENT_PURCHASE || e->amount <= 0)
            continue;
        if (!l_any || e->ts < l_first)
            l_first = e->ts;
        if (!l_any || e->ts > l_last)
            l_last = e->ts;
        l_any = 1;
        if (e->ts >= ws) {
            if (!w_any || e->ts > w_last)
                w_last = e->ts;
            w_any = 1;
        }
    }
    (void)any;
    size_t wo = count_orders(l, x->customer_id, ws, T);
    size_t lo = count_orders(l, x->customer_id, INT64_MIN, T);
    ck_assert_int_eq(x->as_of, T);
    ck_assert_uint_eq(x->frequency, wo);
    ck_assert_uint_eq(x->orders, lo);
    ck_assert_int_eq(x->total_value, l_net);
    if (wo) {
        ck_assert_uint_eq(x->status, SEG_RFM_ACTIVE);
        ck_assert_int_eq(x->recency_days, day_of(T) - day_of(w_last));
        ck_assert_int_eq(x->monetary, measure == SEG_RFM_MONETARY_AOV
                                          ? div_round(w_net, (int64_t)wo) : w_net);
        ck_assert(x->r >= 1 && x->f >= 1 && x->m >= 1);
    } else {
        ck_assert_uint_eq(x->status, lo ? SEG_RFM_LAPSED : SEG_RFM_PROSPECT);
        ck_assert_int_eq(x->recency_days, -1);
        ck_assert_int_eq(x->monetary, w_net);
        ck_assert_uint_eq(x->r + x->f + x->m, 0);
    }
    if (lo) {
        ck_assert_int_eq(x->first_purchase, l_first);
        ck_assert_int_eq(x->last_purchase, l_last);
        ck_assert_int_eq(x->tenure_days, day_of(T) - day_of(l_first));
        ck_assert_int_eq(x->average_order_value, div_round(l_net, (int64_t)lo));
        int64_t ten = x->tenure_days > 0 ? x->tenure_days : 1;
        ck_assert_double_eq_tol(x->purchase_rate, (double)lo * 365.0 / (double)ten, 1e-9);
    } else {
        ck_assert_int_eq(x->tenure_days, -1);
        ck_assert_int_eq(x->average_order_value, 0);
    }
}

/* An independent calibration: the groups of the active customers' values
 * (goodness: recency negated), every boundary considered. */
typedef struct grp {
    int64_t v;
    uint64_t c;
} grp;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static size_t make_groups(int64_t *v, size_t n, grp *g)
{
    qsort(v, n, sizeof *v, cmp_i64);
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        if (d && g[d - 1].v == v[i]) {
            g[d - 1].c++;
        } else {
            g[d].v = v[i];
            g[d].c = 1;
            d++;
        }
    }
    return d;
}

/* bin starts (group indexes) of the least-sum-of-squares cut, the lowest
 * cut from the top down among equals: a plain O(B * d^2) program */
static void ref_partition(const grp *g, size_t d, uint32_t B, size_t *starts)
{
    uint64_t *pre = calloc(d + 1, sizeof *pre);
    uint64_t *f = malloc((size_t)(B + 1) * (d + 1) * sizeof *f);
    size_t *arg = malloc((size_t)(B + 1) * (d + 1) * sizeof *arg);
    for (size_t t = 0; t < d; t++)
        pre[t + 1] = pre[t] + g[t].c;
#define F(k, j) f[(size_t)(k) * (d + 1) + (j)]
#define A(k, j) arg[(size_t)(k) * (d + 1) + (j)]
    for (size_t j = 0; j <= d; j++)
        F(1, j) = j ? pre[j] * pre[j] : UINT64_MAX;
    for (uint32_t k = 2; k <= B; k++)
        for (size_t j = 0; j <= d; j++) {
            F(k, j) = UINT64_MAX;
            A(k, j) = 0;
            for (size_t i = k - 1; i < j; i++) {
                if (F(k - 1, i) == UINT64_MAX)
                    continue;
                uint64_t w = pre[j] - pre[i], c = F(k - 1, i) + w * w;
                if (c < F(k, j)) {
                    F(k, j) = c;
                    A(k, j) = i;
                }
            }
        }
    size_t j = d;
    starts[B] = d;
    for (uint32_t k = B; k >= 2; k--) {
        j = A(k, j);
        starts[k - 1] = j;
    }
    starts[0] = 0;
#undef F
#undef A
    free(pre);
    free(f);
    free(arg);
}

/* the bounds (goodness) the definition gives for groups g[0..d) */
static void ref_bounds(const grp *g, size_t d, uint32_t B, int64_t *lo)
{
    if (d == 0) {
        for (uint32_t k = 0; k + 1 < B; k++)
            lo[k] = INT64_MAX;
        return;
    }
    if (d >= B) {
        size_t starts[SEG_RFM_BINS_MAX + 1];
        ref_partition(g, d, B, starts);
        for (uint32_t k = 0; k + 1 < B; k++)
            lo[k] = g[starts[k + 1]].v;
        return;
    }
    uint64_t n = 0, below = 0;
    for (size_t i = 0; i < d; i++)
        n += g[i].c;
    uint32_t sc[SEG_RFM_BINS_MAX];
    for (size_t i = 0; i < d; i++) {
        double mid = ((double)below + (double)g[i].c / 2.0) / (double)n;
        uint32_t s = 1 + (uint32_t)(B * mid + 1e-12); /* floor(B * midrank) */
        if (s > B)
            s = B;
        if (i && s <= sc[i - 1])
            s = sc[i - 1] + 1;
        if (s > B - (d - 1 - i))
            s = (uint32_t)(B - (d - 1 - i));
        sc[i] = s;
        below += g[i].c;
    }
    for (uint32_t s = 2; s <= B; s++) {
        size_t i = 0;
        while (i < d && sc[i] < s)
            i++;
        lo[s - 2] = i < d ? g[i].v : g[d - 1].v == INT64_MAX ? INT64_MAX : g[d - 1].v + 1;
    }
}

/* The thresholds of t equal an independent calibration on the rows. */
static void check_calibration(const rows *r, const seg_rfm_thresholds *t, uint32_t fixed_mask)
{
    uint32_t B = seg_rfm_thresholds_bins(t);
    int64_t *col = malloc((r->n + 1) * sizeof *col);
    grp *g = malloc((r->n + 1) * sizeof *g);
    for (uint32_t dim = 0; dim < 3; dim++) {
        if (fixed_mask & (1u << dim))
            continue;
        size_t n = 0;
        for (size_t i = 0; i < r->n; i++) {
            const seg_rfm_info *x = &r->v[i].info;
            if (x->status != SEG_RFM_ACTIVE)
                continue;
            col[n++] = dim == SEG_RFM_R ? -x->recency_days - 1
                       : dim == SEG_RFM_F ? (int64_t)x->frequency : x->monetary;
        }
        size_t d = make_groups(col, n, g);
        int64_t want[SEG_RFM_BINS_MAX], got[SEG_RFM_BINS_MAX];
        ref_bounds(g, d, B, want);
        TU_OK(db, seg_rfm_thresholds_get(got, SEG_RFM_BINS_MAX, t, dim));
        for (uint32_t k = 0; k + 1 < B; k++) {
            int64_t w = dim == SEG_RFM_R ? -want[k] - 1 : want[k];
            ck_assert_msg(got[k] == w, "dim %u bound of score %u: %lld, expected %lld", dim,
                          k + 2, (long long)got[k], (long long)w);
        }
    }
    free(col);
    free(g);
}

/* every active row: its scores are what the thresholds give its values,
 * and equal values have equal scores (the thresholds are a function) */
static void check_scores(const rows *r, const seg_rfm_thresholds *t)
{
    for (size_t i = 0; i < r->n; i++) {
        const seg_rfm_info *x = &r->v[i].info;
        if (x->status != SEG_RFM_ACTIVE)
            continue;
        ck_assert_uint_eq(x->r, seg_rfm_score(t, SEG_RFM_R, x->recency_days));
        ck_assert_uint_eq(x->f, seg_rfm_score(t, SEG_RFM_F, (int64_t)x->frequency));
        ck_assert_uint_eq(x->m, seg_rfm_score(t, SEG_RFM_M, x->monetary));
    }
}

/* A random database: customers c000 .. with orders of 1-3 lines over
 * `days` days from T0, refunds of some orders, order-less lines,
 * zero-amount lines, engagement events; ingested in a shuffled order
 * (refunds after their order). */
static void random_db(seg_db *d, uint64_t seed, int ncust, int days)
{
    uint64_t st = seed;
    seg_event *ev = calloc(20000, sizeof *ev);
    char (*eid)[24] = calloc(20000, sizeof *eid);
    char (*oid)[24] = calloc(20000, sizeof *oid);
    char (*cid)[16] = calloc((size_t)ncust, sizeof *cid);
    size_t n = 0;
    for (int c = 0; c < ncust; c++) {
        snprintf(cid[c], sizeof cid[c], "c%03d", c);
        int norders = (int)(tu_rand(&st) % 100 < 15 ? 0 : 1 + tu_rand(&st) % (tu_rand(&st) % 4 ? 3 : 12));
        int64_t start = T0 + (int64_t)(tu_rand(&st) % (uint64_t)days) * DAY;
        for (int o = 0; o < norders && n < 19000; o++) {
            int64_t ts = start + (int64_t)(tu_rand(&st) % ((uint64_t)days * DAY / 2));
            int lines = 1 + (int)(tu_rand(&st) % 3);
            int orderless = tu_rand(&st) % 10 == 0;
            snprintf(oid[n], sizeof oid[n], "o%d-%d", c, o);
            const char *order = orderless ? NULL : oid[n];
            int64_t total = 0;
            for (int li = 0; li < (orderless ? 1 : lines); li++) {
                int64_t amt = tu_rand(&st) % 10 == 0 ? 0 : (int64_t)(1 + tu_rand(&st) % 5000);
                if (tu_rand(&st) % 4 == 0)
                    amt = 999; /* ties */
                total += amt;
                snprintf(eid[n], sizeof eid[n], "p%zu", n);
                /* a line may come a few days later than the first */
                ev[n] = tu_purchase(eid[n], cid[c], ts + (li == 2 ? 3 * DAY : 0), amt, order);
                n++;
            }
            if (order && total > 0 && tu_rand(&st) % 6 == 0) {
                snprintf(eid[n], sizeof eid[n], "r%zu", n);
                ev[n] = tu_refund(eid[n], cid[c], ts + (int64_t)(1 + tu_rand(&st) % 20) * DAY,
                                  -1, order);
                n++;
            }
        }
        int neng = (int)(tu_rand(&st) % 3);
        for (int k = 0; k < neng && n < 19900; k++) {
            snprintf(eid[n], sizeof eid[n], "g%zu", n);
            ev[n] = tu_engagement(eid[n], cid[c], start + (int64_t)(tu_rand(&st) % ((uint64_t)days * DAY)),
                                  "email_open");
            n++;
        }
    }
    /* shuffle purchases and engagements; refunds go last */
    size_t *idx = malloc(n * sizeof *idx);
    size_t np = 0;
    for (size_t i = 0; i < n; i++)
        if (ev[i].kind != SEG_EVENT_REFUND)
            idx[np++] = i;
    tu_shuffle(idx, np, seed ^ 0x5bd1e995);
    for (size_t i = 0; i < np; i++)
        ingest(d, ev[idx[i]]);
    for (size_t i = 0; i < n; i++)
        if (ev[i].kind == SEG_EVENT_REFUND)
            ingest(d, ev[i]);
    free(idx);
    free(ev);
    free(eid);
    free(oid);
    free(cid);
}

static int64_t last_event_time(const revs *l)
{
    int64_t mx = INT64_MIN;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].ts > mx)
            mx = l->v[i].ts;
    return mx;
}

/* Run one configuration and check every row, the calibration, the scores,
 * the customers visited, and seg_rfm_get for each customer. */
static void check_config(const revs *l, const seg_rfm_options *o, const char *what)
{
    rows r;
    seg_rfm_thresholds *t = run_rfm(db, o, SEG_RFM_SORTED, &r);
    int64_t T = o->as_of == SEG_RFM_AS_OF_AUTO ? (day_of(last_event_time(l)) + 1) * DAY : o->as_of;
    /* visited: customers with an event before T, or with none at all */
    size_t want = 0;
    for (int c = 0; c < 1000; c++) {
        char id[16];
        snprintf(id, sizeof id, "c%03d", c);
        seg_customer_info ci = SEG_CUSTOMER_INFO_INIT;
        if (seg_customer_get(&ci, db, id) != SEG_OK)
            continue;
        int before = ci.events == 0;
        for (size_t i = 0; i < l->n && !before; i++)
            before = strcmp(l->v[i].cust, id) == 0 && l->v[i].ts < T;
        want += before;
        ck_assert_msg((find_row(&r, id) != NULL) == before, "%s: %s visited wrongly", what, id);
    }
    ck_assert_uint_eq(r.n, want);
    for (size_t i = 1; i < r.n; i++)
        ck_assert_msg(strcmp(r.v[i - 1].id, r.v[i].id) < 0, "%s: not sorted", what);
    for (size_t i = 0; i < r.n; i++)
        check_row(l, &r.v[i].info, T, o->window, o->monetary);
    uint32_t mask = (o->fixed_r ? 1u : 0) | (o->fixed_f ? 2u : 0) | (o->fixed_m ? 4u : 0);
    check_calibration(&r, t, mask);
    check_scores(&r, t);
    /* one customer at a time, with these thresholds and an explicit as_of */
    seg_rfm_options g = SEG_RFM_OPTIONS_INIT;
    g.thresholds = t;
    g.as_of = T;
    for (size_t i = 0; i < r.n; i++) {
        seg_rfm_info one = SEG_RFM_INFO_INIT;
        TU_OK(db, seg_rfm_get(&one, db, &g, r.v[i].id));
        seg_rfm_info a = r.v[i].info;
        ck_assert_str_eq(one.customer_id, a.customer_id);
        ck_assert_msg(one.status == a.status && one.r == a.r && one.f == a.f && one.m == a.m &&
                          one.recency_days == a.recency_days && one.frequency == a.frequency &&
                          one.monetary == a.monetary && one.orders == a.orders &&
                          one.total_value == a.total_value && one.tenure_days == a.tenure_days,
                      "%s: seg_rfm_get(%s) differs from seg_rfm_foreach", what, a.customer_id);
    }
    seg_rfm_thresholds_free(t);
    rows_free(&r);
}

START_TEST(random_against_reference)
{
    uint64_t seed = 0x9e3779b97f4a7c15ULL + (uint64_t)_i * 7919;
    random_db(db, seed, 300, 400);
    revs l = { NULL, 0, 0 };
    TU_OK(db, seg_event_foreach(db, NULL, rev_cb, &l));
    int64_t last = last_event_time(&l);
    int64_t mid = T0 + 200 * DAY + 12345;

    seg_rfm_options o = SEG_RFM_OPTIONS_INIT;
    check_config(&l, &o, "default");            /* aggregates only */
    o.monetary = SEG_RFM_MONETARY_AOV;
    o.bins = 4;
    check_config(&l, &o, "aov, 4 bins");
    o = (seg_rfm_options)SEG_RFM_OPTIONS_INIT;
    o.window = 90 * DAY;
    check_config(&l, &o, "window 90d");         /* a pass over the events */
    o.as_of = mid;
    check_config(&l, &o, "window, as_of mid");
    o.window = 0;
    check_config(&l, &o, "as_of mid");
    o.as_of = last;                             /* only the last event's customer walks */
    check_config(&l, &o, "as_of at the last event");
    o.as_of = last + 1;
    check_config(&l, &o, "as_of just after");
    o.bins = 20;
    o.as_of = SEG_RFM_AS_OF_AUTO;
    check_config(&l, &o, "20 bins");
    o.bins = 2;
    check_config(&l, &o, "2 bins");
    /* mixed: fixed recency bounds, quantile frequency and monetary */
    int64_t fr[4] = { 300, 200, 100, 30 };
    o = (seg_rfm_options)SEG_RFM_OPTIONS_INIT;
    o.fixed_r = fr;
    check_config(&l, &o, "fixed r");
    free(l.v);
}
END_TEST

/* ================================================================ bins */

/* heavily tied frequencies, as in real data: most customers one order */
START_TEST(heavy_ties_frequency)
{
    /* 1000 customers: 600 with 1 order, 150 with 2, 80 with 3, 50 with 4,
     * 30 with 5, 25 with 6, 20 with 7, 45 with 8..22 (3 each) */
    static const int counts[][2] = { { 1, 600 }, { 2, 150 }, { 3, 80 }, { 4, 50 }, { 5, 30 },
                                     { 6, 25 },  { 7, 20 } };
    int64_t *v = malloc(1000 * sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        for (int k = 0; k < counts[i][1]; k++)
            v[n++] = counts[i][0];
    for (int f = 8; f <= 22; f++)
        for (int k = 0; k < 3; k++)
            v[n++] = f;
    ck_assert_uint_eq(n, 1000);
    seg__rfm_groups g;
    ck_assert_int_eq(seg__rfm_group(&seg__default_alloc, v, n, &g), SEG_OK);
    ck_assert_uint_eq(g.d, 22);
    int64_t lo[4];
    ck_assert_int_eq(seg__rfm_cut(&seg__default_alloc, &g, 5, lo), SEG_OK);
    /* every score used; the one-order majority alone in score 1; the 400
     * others shared as evenly as whole values allow: 150 | 80 | 50+30 |
     * 25+20+45 (sum of squares 43,400; 150 | 80 | 50 | 120 gives 45,800) */
    ck_assert_int_eq(lo[0], 2);
    ck_assert_int_eq(lo[1], 3);
    ck_assert_int_eq(lo[2], 4);
    ck_assert_int_eq(lo[3], 6);
    /* and the independent program agrees */
    grp *gr = malloc(n * sizeof *gr);
    size_t d = make_groups(v, n, gr);
    int64_t want[4];
    ref_bounds(gr, d, 5, want);
    for (int k = 0; k < 4; k++)
        ck_assert_int_eq(lo[k], want[k]);
    free(gr);
    seg__rfm_groups_free(&seg__default_alloc, &g);
    free(v);
}
END_TEST

/* a big tie at the top does not squeeze the other bins (a greedy from the
 * bottom would give 194 | 2 | 2 | 2 | 800) */
START_TEST(heavy_ties_top)
{
    int64_t *v = malloc(1000 * sizeof *v);
    for (int i = 0; i < 200; i++)
        v[i] = i / 2; /* 100 values, 2 customers each */
    for (int i = 200; i < 1000; i++)
        v[i] = 1000;
    seg__rfm_groups g;
    ck_assert_int_eq(seg__rfm_group(&seg__default_alloc, v, 1000, &g), SEG_OK);
    size_t starts[6];
    ck_assert_int_eq(seg__rfm_partition(&seg__default_alloc, &g, 5, starts), SEG_OK);
    /* 50 | 50 | 50 | 50 | 800 */
    ck_assert_uint_eq(starts[1], 25);
    ck_assert_uint_eq(starts[2], 50);
    ck_assert_uint_eq(starts[3], 75);
    ck_assert_uint_eq(starts[4], 100);
    seg__rfm_groups_free(&seg__default_alloc, &g);
    free(v);
}
END_TEST

/* no ties: bin sizes differ by at most one, the larger bins on top */
START_TEST(no_ties_even_bins)
{
    for (size_t n = 5; n < 60; n++) {
        int64_t *v = malloc(n * sizeof *v);
        for (size_t i = 0; i < n; i++)
            v[i] = (int64_t)((i * 7919) % n) * 3 - 40; /* a permutation */
        seg__rfm_groups g;
        ck_assert_int_eq(seg__rfm_group(&seg__default_alloc, v, n, &g), SEG_OK);
        size_t starts[6];
        ck_assert_int_eq(seg__rfm_partition(&seg__default_alloc, &g, 5, starts), SEG_OK);
        for (int b = 0; b < 5; b++) {
            size_t sz = starts[b + 1] - starts[b];
            size_t want = n / 5 + ((size_t)b >= 5 - n % 5 ? 1 : 0);
            ck_assert_msg(sz == want, "n %zu bin %d: %zu, expected %zu", n, b, sz, want);
        }
        seg__rfm_groups_free(&seg__default_alloc, &g);
        free(v);
    }
}
END_TEST

/* fewer distinct values than bins: one score per value, by mid-rank */
START_TEST(fewer_values_than_bins)
{
    int64_t v[10] = { 7, 7, 7, 7, 7, 7, 7, 9, 9, 9 };
    seg__rfm_groups g;
    int64_t lo[4];
    /* 70% at 7 (midrank .35 -> 2), 30% at 9 (.85 -> 5) */
    ck_assert_int_eq(seg__rfm_group(&seg__default_alloc, v, 10, &g), SEG_OK);
    ck_assert_int_eq(seg__rfm_cut(&seg__default_alloc, &g, 5, lo), SEG_OK);
    ck_assert_int_eq(lo[0], 7);  /* score 2 from 7 */
    ck_assert_int_eq(lo[1], 9);  /* 3, 4, 5 from 9 */
    ck_assert_int_eq(lo[2], 9);
    ck_assert_int_eq(lo[3], 9);
    ck_assert_uint_eq(seg__rfm_score_lo(lo, 4, 7), 2);
    ck_assert_uint_eq(seg__rfm_score_lo(lo, 4, 9), 5);
    ck_assert_uint_eq(seg__rfm_score_lo(lo, 4, 6), 1); /* below every value seen */
    seg__rfm_groups_free(&seg__default_alloc, &g);
    /* everyone equal: the middle score; higher values later score above */
    int64_t same[4] = { 3, 3, 3, 3 };
    ck_assert_int_eq(seg__rfm_group(&seg__default_alloc, same, 4, &g), SEG_OK);
    ck_assert_int_eq(seg__rfm_cut(&seg__default_alloc, &g, 5, lo), SEG_OK);
    ck_assert_uint_eq(seg__rfm_score_lo(lo, 4, 3), 3);
    ck_assert_uint_eq(seg__rfm_score_lo(lo, 4, 4), 5);
    ck_assert_uint_eq(seg__rfm_score_lo(lo, 4, 2), 1);
    seg__rfm_groups_free(&seg__default_alloc, &g);
    /* scores stay increasing even when mid-ranks crowd at the top:
     * 95% / 3% / 2% -> 3, 4, 5 */
    int64_t crowd[100];
    for (int i = 0; i < 100; i++)
        crowd[i] = i < 95 ? 1 : i < 98 ? 2 : 3;
    ck_assert_int_eq(seg__rfm_group(&seg__default_alloc, crowd, 100, &g), SEG_OK);
    ck_assert_int_eq(seg__rfm_cut(&seg__default_alloc, &g, 5, lo), SEG_OK);
    ck_assert_uint_eq(seg__rfm_score_lo(lo, 4, 1), 3);
    ck_assert_uint_eq(seg__rfm_score_lo(lo, 4, 2), 4);
    ck_assert_uint_eq(seg__rfm_score_lo(lo, 4, 3), 5);
    seg__rfm_groups_free(&seg__default_alloc, &g);
}
END_TEST

/* brute force over every cut for small cases; the full program with every
 * boundary for larger ones (the library considers only some boundaries) */
static uint64_t cost_of(const grp *g, const size_t *starts, uint32_t B)
{
    uint64_t c = 0;
    for (uint32_t b = 0; b < B; b++) {
        uint64_t s = 0;
        for (size_t i = starts[b]; i < starts[b + 1]; i++)
            s += g[i].c;
        c += s * s;
    }
    return c;
}

/* the best cut by enumeration: cuts c1 < ... < c_{B-1} in 1..d-1; ties to
 * the smallest last cut, then the one below, ... */
static void brute_partition(const grp *g, size_t d, uint32_t B, size_t *best)
{
    size_t cur[SEG_RFM_BINS_MAX + 1];
    uint64_t bc = UINT64_MAX;
    cur[0] = 0;
    cur[B] = d;
    for (uint32_t k = 1; k < B; k++)
        cur[k] = k;
    for (;;) {
        uint64_t c = cost_of(g, cur, B);
        int better = c < bc;
        if (c == bc) {
            for (uint32_t k = B - 1; k >= 1; k--)
                if (cur[k] != best[k]) {
                    better = cur[k] < best[k];
                    break;
                }
        }
        if (better) {
            bc = c;
            memcpy(best, cur, (B + 1) * sizeof *cur);
        }
        /* next combination */
        int k = (int)B - 1;
        while (k >= 1 && cur[k] == d - (B - (size_t)k))
            k--;
        if (k < 1)
            break;
        cur[k]++;
        for (uint32_t j = (uint32_t)k + 1; j < B; j++)
            cur[j] = cur[j - 1] + 1;
    }
}

START_TEST(partition_brute_force)
{
    uint64_t st = 12345;
    for (int round = 0; round < 400; round++) {
        uint32_t B = 2 + (uint32_t)(tu_rand(&st) % 5);
        size_t d = B + tu_rand(&st) % 9;
        grp g[16];
        int64_t *v = malloc(4000 * sizeof *v);
        size_t n = 0;
        for (size_t i = 0; i < d; i++) {
            g[i].v = (int64_t)i * 10 - 35;
            g[i].c = 1 + tu_rand(&st) % (tu_rand(&st) % 3 ? 8 : 300);
            for (uint64_t k = 0; k < g[i].c; k++)
                v[n++] = g[i].v;
        }
        size_t want[SEG_RFM_BINS_MAX + 1], got[SEG_RFM_BINS_MAX + 1], prog[SEG_RFM_BINS_MAX + 1];
        brute_partition(g, d, B, want);
        ref_partition(g, d, B, prog);
        seg__rfm_groups lg;
        ck_assert_int_eq(seg__rfm_group(&seg__default_alloc, v, n, &lg), SEG_OK);
        ck_assert_uint_eq(lg.d, d);
        ck_assert_int_eq(seg__rfm_partition(&seg__default_alloc, &lg, B, got), SEG_OK);
        for (uint32_t k = 0; k <= B; k++) {
            ck_assert_msg(prog[k] == want[k], "round %d: the test's program differs from brute force", round);
            ck_assert_msg(got[k] == want[k], "round %d (B %u, d %zu): start %u is %zu, expected %zu",
                          round, B, d, k, got[k], want[k]);
        }
        seg__rfm_groups_free(&seg__default_alloc, &lg);
        free(v);
    }
}
END_TEST

START_TEST(partition_large_against_program)
{
    uint64_t st = 777 + (uint64_t)_i;
    for (int round = 0; round < 12; round++) {
        uint32_t B = 2 + (uint32_t)(tu_rand(&st) % 10);
        size_t d = B + tu_rand(&st) % 400;
        grp *g = malloc(d * sizeof *g);
        size_t n = 0;
        int shape = round % 3;
        for (size_t i = 0; i < d; i++) {
            g[i].v = (int64_t)i;
            uint64_t c = 1 + tu_rand(&st) % 4;           /* small groups */
            if (shape == 1 && tu_rand(&st) % 40 == 0)
                c = 200 + tu_rand(&st) % 3000;          /* a few big ones */
            if (shape == 2 && i == 0)
                c = 5000;                               /* one-order majority */
            g[i].c = c;
            n += c;
        }
        int64_t *v = malloc(n * sizeof *v);
        size_t k = 0;
        for (size_t i = 0; i < d; i++)
            for (uint64_t c = 0; c < g[i].c; c++)
                v[k++] = g[i].v * 1000003; /* a wide range: the radix path */
        for (size_t i = 0; i < d; i++)
            g[i].v *= 1000003;
        size_t want[SEG_RFM_BINS_MAX + 1], got[SEG_RFM_BINS_MAX + 1];
        ref_partition(g, d, B, want);
        seg__rfm_groups lg;
        ck_assert_int_eq(seg__rfm_group(&seg__default_alloc, v, n, &lg), SEG_OK);
        ck_assert_uint_eq(lg.d, d);
        ck_assert_int_eq(seg__rfm_partition(&seg__default_alloc, &lg, B, got), SEG_OK);
        for (uint32_t b = 0; b <= B; b++)
            ck_assert_msg(got[b] == want[b], "round %d shape %d (B %u, d %zu): start %u is %zu, expected %zu",
                          round, shape, B, d, b, got[b], want[b]);
        seg__rfm_groups_free(&seg__default_alloc, &lg);
        free(g);
        free(v);
    }
}
END_TEST

/* grouping: counting and radix paths, extreme values */
START_TEST(grouping_paths)
{
    uint64_t st = 99;
    for (int round = 0; round < 30; round++) {
        size_t n = 1 + tu_rand(&st) % 3000;
        int64_t *v = malloc(n * sizeof *v), *c = malloc(n * sizeof *c);
        for (size_t i = 0; i < n; i++) {
            switch (round % 5) {
            case 0: v[i] = (int64_t)(tu_rand(&st) % 50); break;                 /* counting */
            case 1: v[i] = (int64_t)(tu_rand(&st) % 50) - 1000000000000LL; break;
            case 2: v[i] = (int64_t)tu_rand(&st); break;                         /* radix, full range */
            case 3: v[i] = tu_rand(&st) % 2 ? INT64_MIN + (int64_t)(tu_rand(&st) % 3)
                                            : INT64_MAX - (int64_t)(tu_rand(&st) % 3); break;
            default: v[i] = (int64_t)(tu_rand(&st) % 100000) * 997; break;
            }
            c[i] = v[i];
        }
        seg__rfm_groups g;
        ck_assert_int_eq(seg__rfm_group(&seg__default_alloc, v, n, &g), SEG_OK);
        grp *want = malloc(n * sizeof *want);
        size_t d = make_groups(c, n, want);
        ck_assert_uint_eq(g.d, d);
        ck_assert_uint_eq(g.n, n);
        uint32_t mx = 0;
        for (size_t i = 0; i < d; i++) {
            ck_assert_int_eq(g.val[i], want[i].v);
            ck_assert_uint_eq(g.cnt[i], want[i].c);
            if (want[i].c > mx)
                mx = (uint32_t)want[i].c;
        }
        ck_assert_uint_eq(g.max, mx);
        /* and the bounds agree with the definition, whatever the values */
        int64_t lo[4], wl[4];
        ck_assert_int_eq(seg__rfm_cut(&seg__default_alloc, &g, 5, lo), SEG_OK);
        ref_bounds(want, d, 5, wl);
        for (int k = 0; k < 4; k++)
            ck_assert_int_eq(lo[k], wl[k]);
        seg__rfm_groups_free(&seg__default_alloc, &g);
        free(want);
        free(v);
        free(c);
    }
}
END_TEST

/* ========================================================== thresholds */

static void strip_comments(char *s)
{
    char *w = s, *r = s;
    while (*r) {
        char *e = strchr(r, '\n');
        size_t len = e ? (size_t)(e - r) + 1 : strlen(r);
        if (*r != '#') {
            memmove(w, r, len);
            w += len;
        }
        r += len;
    }
    *w = '\0';
}

START_TEST(export_import_round_trip)
{
    random_db(db, 4242, 200, 300);
    seg_rfm_options o = SEG_RFM_OPTIONS_INIT;
    o.window = 200 * DAY;
    o.monetary = SEG_RFM_MONETARY_AOV;
    rows r1;
    seg_rfm_thresholds *t = run_rfm(db, &o, SEG_RFM_SORTED, &r1);
    char text[SEG_RFM_THRESHOLDS_TEXT_MAX], again[SEG_RFM_THRESHOLDS_TEXT_MAX];
    size_t n = seg_rfm_thresholds_export(text, sizeof text, t);
    ck_assert_uint_gt(n, 0);
    ck_assert_uint_eq(n, strlen(text));
    TU_STR_HAS(text, "libsegment-rfm-thresholds 1\n");
    TU_STR_HAS(text, "monetary aov\n");
    TU_STR_HAS(text, "# Calibrated as of ");
    /* a second process: another db with the same events, scored with the
     * imported thresholds, gives the same scores without calibrating */
    seg_db *d2 = NULL;
    ck_assert_int_eq(seg_db_open(&d2, ":memory:", NULL), SEG_OK);
    random_db(d2, 4242, 200, 300);
    seg_rfm_thresholds *imp = NULL;
    TU_OK(d2, seg_rfm_thresholds_import(&imp, d2, text, n));
    ck_assert_uint_eq(seg_rfm_thresholds_bins(imp), 5);
    seg_rfm_options o2 = SEG_RFM_OPTIONS_INIT;
    o2.thresholds = imp;
    rows r2;
    memset(&r2, 0, sizeof r2);
    seg_rfm_thresholds *used = NULL;
    TU_OK(d2, seg_rfm_foreach(&used, d2, &o2, SEG_RFM_SORTED, collect_cb, &r2));
    rows_done(&r2);
    ck_assert_uint_eq(r1.n, r2.n);
    for (size_t i = 0; i < r1.n; i++) {
        ck_assert_str_eq(r1.v[i].id, r2.v[i].id);
        ck_assert_int_eq(r1.v[i].info.monetary, r2.v[i].info.monetary); /* aov, window: from the file */
        ck_assert_uint_eq(r1.v[i].info.r, r2.v[i].info.r);
        ck_assert_uint_eq(r1.v[i].info.f, r2.v[i].info.f);
        ck_assert_uint_eq(r1.v[i].info.m, r2.v[i].info.m);
    }
    /* the text survives the trip (calibration comments aside) */
    seg_rfm_thresholds_export(again, sizeof again, used);
    strip_comments(text);
    strip_comments(again);
    ck_assert_str_eq(text, again);
    /* snprintf-like: cut text, full length, NUL-terminated */
    char small[16];
    memset(small, 'x', sizeof small);
    ck_assert_uint_eq(seg_rfm_thresholds_export(small, sizeof small, t), n);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    ck_assert_uint_eq(seg_rfm_thresholds_export(NULL, 0, t), n);
    ck_assert_uint_eq(seg_rfm_thresholds_export(small, sizeof small, NULL), 0);
    seg_rfm_thresholds_free(t);
    seg_rfm_thresholds_free(imp);
    seg_rfm_thresholds_free(used);
    rows_free(&r1);
    rows_free(&r2);
    seg_db_close(d2);
}
END_TEST

/* a hand-written file: fixed thresholds for the CLI or a POS */
START_TEST(import_by_hand_and_score)
{
    const char *txt =
        "# my cut-points\r\n"
        "libsegment-rfm-thresholds 1\r\n"
        "\n"
        "exponent 2\n"
        "   bins   3   \n"
        "window 0\n"
        "monetary total\n"
        "m 10 100.5\n"
        "f 2 5\n"
        "r 90 30\n";
    seg_rfm_thresholds *t = NULL;
    TU_OK(db, seg_rfm_thresholds_import(&t, db, txt, strlen(txt)));
    ck_assert_uint_eq(seg_rfm_thresholds_bins(t), 3);
    ck_assert_uint_eq(seg_rfm_score(t, SEG_RFM_R, 91), 1);
    ck_assert_uint_eq(seg_rfm_score(t, SEG_RFM_R, 90), 2);
    ck_assert_uint_eq(seg_rfm_score(t, SEG_RFM_R, 31), 2);
    ck_assert_uint_eq(seg_rfm_score(t, SEG_RFM_R, 30), 3);
    ck_assert_uint_eq(seg_rfm_score(t, SEG_RFM_R, 0), 3);
    ck_assert_uint_eq(seg_rfm_score(t, SEG_RFM_F, 1), 1);
    ck_assert_uint_eq(seg_rfm_score(t, SEG_RFM_F, 4), 2);
    ck_assert_uint_eq(seg_rfm_score(t, SEG_RFM_F, 5), 3);
    ck_assert_uint_eq(seg_rfm_score(t, SEG_RFM_M, 999), 1);
    ck_assert_uint_eq(seg_rfm_score(t, SEG_RFM_M, 1000), 2);
    ck_assert_uint_eq(seg_rfm_score(t, SEG_RFM_M, 10050), 3);
    ck_assert_uint_eq(seg_rfm_score(t, 3, 5), 0);
    ck_assert_uint_eq(seg_rfm_score(NULL, SEG_RFM_F, 5), 0);
    int64_t b[2];
    TU_OK(db, seg_rfm_thresholds_get(b, 2, t, SEG_RFM_M));
    ck_assert_int_eq(b[0], 1000);
    ck_assert_int_eq(b[1], 10050);
    TU_OK(db, seg_rfm_thresholds_get(b, 2, t, SEG_RFM_R));
    ck_assert_int_eq(b[0], 90);
    ck_assert_int_eq(b[1], 30);
    ck_assert_int_eq(seg_rfm_thresholds_get(b, 1, t, SEG_RFM_R), SEG_EINVAL);
    ck_assert_int_eq(seg_rfm_thresholds_get(b, 2, t, 7), SEG_EINVAL);
    ck_assert_int_eq(seg_rfm_thresholds_get(NULL, 2, t, 0), SEG_EINVAL);
    /* extreme bounds survive export and import */
    const char *ext = "libsegment-rfm-thresholds 1\nbins 2\nmonetary total\nwindow 0\nexponent 2\n"
                      "r -9223372036854775808\nf 9223372036854775807\nm -92233720368547758.08\n";
    seg_rfm_thresholds *e = NULL;
    TU_OK(db, seg_rfm_thresholds_import(&e, db, ext, strlen(ext)));
    ck_assert_uint_eq(seg_rfm_score(e, SEG_RFM_R, 0), 1);
    ck_assert_uint_eq(seg_rfm_score(e, SEG_RFM_F, INT64_MAX), 2);
    ck_assert_uint_eq(seg_rfm_score(e, SEG_RFM_M, INT64_MIN), 2);
    char out[SEG_RFM_THRESHOLDS_TEXT_MAX];
    seg_rfm_thresholds_export(out, sizeof out, e);
    TU_STR_HAS(out, "\nr -9223372036854775808\nf 9223372036854775807\nm -92233720368547758.08\n");
    seg_rfm_thresholds_free(e);
    seg_rfm_thresholds_free(t);
}
END_TEST

static void import_fails(const char *txt, int code, const char *needle)
{
    seg_rfm_thresholds *t = (seg_rfm_thresholds *)1;
    int rc = seg_rfm_thresholds_import(&t, db, txt, strlen(txt));
    ck_assert_msg(rc == code, "import of <<%s>>: %d, expected %d (%s)", txt, rc, code, seg_errmsg(db));
    ck_assert_ptr_null(t);
    TU_MSG_HAS(db, needle);
}

#define HDR "libsegment-rfm-thresholds 1\n"
#define KEYS "bins 3\nmonetary total\nwindow 0\nexponent 2\n"

START_TEST(import_errors)
{
    import_fails("", SEG_EPARSE, "not RFM thresholds");
    import_fails("# only a comment\n", SEG_EPARSE, "not RFM thresholds");
    import_fails("bins 3\n", SEG_EPARSE, "line 1: expected 'libsegment-rfm-thresholds 1'");
    import_fails("libsegment-rfm-thresholds 2\n", SEG_EPARSE, "line 1: unsupported thresholds version '2'");
    import_fails(HDR KEYS "r 9 3\nf 1 2\n", SEG_EPARSE, "missing 'm' line");
    import_fails(HDR "bins 3\nwindow 0\nexponent 2\nr 9 3\nf 1 2\nm 1 2\n", SEG_EPARSE,
                 "missing 'monetary' line");
    import_fails(HDR KEYS "bins 4\n", SEG_EPARSE, "line 6: 'bins' given twice (first on line 2)");
    import_fails(HDR KEYS "r 9 3\nr 9 3\n", SEG_EPARSE, "line 7: 'r' given twice");
    import_fails(HDR KEYS "colour red\n", SEG_EPARSE, "line 6: unknown key 'colour'");
    import_fails(HDR "bins 21\n", SEG_EPARSE, "line 2: bins must be 2..20");
    import_fails(HDR "bins 1\n", SEG_EPARSE, "line 2: bins must be 2..20");
    import_fails(HDR "bins 3 4\n", SEG_EPARSE, "line 2: 'bins' takes one value");
    import_fails(HDR "monetary mean\n", SEG_EPARSE, "line 2: monetary must be 'total' or 'aov'");
    import_fails(HDR "window -5\n", SEG_EPARSE, "line 2: window must be");
    import_fails(HDR "exponent 7\n", SEG_EPARSE, "line 2: exponent must be 0..6");
    import_fails(HDR KEYS "r 9\nf 1 2\nm 1 2\n", SEG_EPARSE, "line 6: r: 1 bounds, expected bins - 1 = 2");
    import_fails(HDR KEYS "r 9 3 1\nf 1 2\nm 1 2\n", SEG_EPARSE, "line 6: r: more than bins - 1 = 2 bounds");
    import_fails(HDR KEYS "r 3 9\nf 1 2\nm 1 2\n", SEG_EPARSE, "line 6: r: bound 3: must be at most the one before");
    import_fails(HDR KEYS "r 9 3\nf 2 1\nm 1 2\n", SEG_EPARSE, "line 7: f: bound 3: must be at least");
    import_fails(HDR KEYS "r 9 3\nf 1 2\nm 1.005 2\n", SEG_EPARSE, "line 8: m: bound 2: not an amount: '1.005'");
    import_fails(HDR KEYS "r 9 x\nf 1 2\nm 1 2\n", SEG_EPARSE, "line 6: r: bound 3: not an integer: 'x'");
    import_fails(HDR KEYS "r 9 3\nf 1 2\nm 1 92233720368547758.08\n", SEG_EPARSE, "not an amount");
    import_fails(HDR "bins 3\nmonetary total\nwindow 0\nexponent 3\nr 9 3\nf 1 2\nm 1 2\n",
                 SEG_EINVAL, "line 5: the thresholds' money has 3 decimals, the database's 2");
    /* NULL arguments */
    seg_rfm_thresholds *t = NULL;
    ck_assert_int_eq(seg_rfm_thresholds_import(&t, NULL, HDR, strlen(HDR)), SEG_EINVAL);
    ck_assert_int_eq(seg_rfm_thresholds_import(NULL, db, HDR, strlen(HDR)), SEG_EINVAL);
    ck_assert_int_eq(seg_rfm_thresholds_import(&t, db, NULL, 5), SEG_EINVAL);
    ck_assert_ptr_null(t);
    seg_rfm_thresholds_free(NULL);
}
END_TEST

/* one new event re-scores its customer with the thresholds already made,
 * without touching anyone else */
START_TEST(rescore_one_customer)
{
    random_db(db, 777, 150, 200);
    seg_rfm_thresholds *t = NULL;
    TU_OK(db, seg_rfm_calibrate(&t, db, NULL));
    rows before;
    seg_rfm_options g = SEG_RFM_OPTIONS_INIT;
    g.thresholds = t;
    memset(&before, 0, sizeof before);
    TU_OK(db, seg_rfm_foreach(NULL, db, &g, SEG_RFM_SORTED, collect_cb, &before));
    rows_done(&before);
    int64_t T = before.v[0].info.as_of;
    /* c005 buys a lot just before as_of */
    ingest(db, tu_purchase("new1", "c005", T - 60, 900000, "NEW"));
    g.as_of = T;
    seg_rfm_info one = SEG_RFM_INFO_INIT;
    TU_OK(db, seg_rfm_get(&one, db, &g, "c005"));
    ck_assert_uint_eq(one.status, SEG_RFM_ACTIVE);
    ck_assert_int_eq(one.recency_days, 1);
    ck_assert_uint_eq(one.r, seg_rfm_score(t, SEG_RFM_R, 1));
    ck_assert_uint_eq(one.m, 5);
    const row *old = find_row(&before, "c005");
    if (old)
        ck_assert_uint_eq(one.frequency, old->info.frequency + 1);
    /* the full run with the same thresholds agrees, and nobody else moved */
    rows after;
    memset(&after, 0, sizeof after);
    TU_OK(db, seg_rfm_foreach(NULL, db, &g, SEG_RFM_SORTED, collect_cb, &after));
    rows_done(&after);
    ck_assert_uint_eq(after.n, before.n + (old ? 0 : 1));
    for (size_t i = 0; i < after.n; i++) {
        const seg_rfm_info *a = &after.v[i].info;
        if (strcmp(a->customer_id, "c005") == 0) {
            ck_assert_uint_eq(a->r, one.r);
            ck_assert_uint_eq(a->f, one.f);
            ck_assert_uint_eq(a->m, one.m);
            ck_assert_int_eq(a->monetary, one.monetary);
            continue;
        }
        const row *b = find_row(&before, a->customer_id);
        ck_assert_ptr_nonnull(b);
        ck_assert_uint_eq(a->r, b->info.r);
        ck_assert_uint_eq(a->f, b->info.f);
        ck_assert_uint_eq(a->m, b->info.m);
    }
    /* fixed bounds for all three: no thresholds object needed */
    int64_t fr[4] = { 60, 30, 14, 7 }, ff[4] = { 2, 3, 5, 8 }, fm[4] = { 1000, 5000, 10000, 50000 };
    seg_rfm_options fx = SEG_RFM_OPTIONS_INIT;
    fx.fixed_r = fr;
    fx.fixed_f = ff;
    fx.fixed_m = fm;
    fx.as_of = T;
    TU_OK(db, seg_rfm_get(&one, db, &fx, "c005"));
    ck_assert_uint_eq(one.r, 5); /* 1 day <= 7 */
    ck_assert_uint_eq(one.m, 5); /* >= 500.00 */
    uint32_t wf = 1;
    for (int k = 0; k < 4; k++)
        if ((int64_t)one.frequency >= ff[k])
            wf = (uint32_t)k + 2;
    ck_assert_uint_eq(one.f, wf);
    seg_rfm_thresholds_free(t);
    rows_free(&before);
    rows_free(&after);
}
END_TEST

/* ============================================================= options */

START_TEST(options_checked)
{
    load_example(db);
    seg_rfm_thresholds *t = (seg_rfm_thresholds *)1;
    seg_rfm_options o = SEG_RFM_OPTIONS_INIT;
    o.bins = 1;
    TU_RC(db, seg_rfm_calibrate(&t, db, &o), SEG_EINVAL);
    ck_assert_ptr_null(t);
    TU_MSG_HAS(db, "bins 1: must be 2..20");
    o.bins = 21;
    TU_RC(db, seg_rfm_calibrate(&t, db, &o), SEG_EINVAL);
    o = (seg_rfm_options)SEG_RFM_OPTIONS_INIT;
    o.monetary = 9;
    TU_RC(db, seg_rfm_calibrate(&t, db, &o), SEG_EINVAL);
    TU_MSG_HAS(db, "monetary 9");
    o = (seg_rfm_options)SEG_RFM_OPTIONS_INIT;
    o.window = -1;
    TU_RC(db, seg_rfm_calibrate(&t, db, &o), SEG_EINVAL);
    TU_MSG_HAS(db, "window -1");
    o = (seg_rfm_options)SEG_RFM_OPTIONS_INIT;
    o.as_of = SEG_TIME_MAX + 2;
    TU_RC(db, seg_rfm_calibrate(&t, db, &o), SEG_ERANGE);
    o.as_of = SEG_TIME_MIN - 1;
    TU_RC(db, seg_rfm_calibrate(&t, db, &o), SEG_ERANGE);
    o.as_of = SEG_TIME_MAX + 1; /* just after every representable event: fine */
    TU_OK(db, seg_rfm_calibrate(&t, db, &o));
    seg_rfm_thresholds_free(t);
    o = (seg_rfm_options)SEG_RFM_OPTIONS_INIT;
    int64_t bad_f[4] = { 1, 2, 1, 5 }, bad_r[4] = { 10, 20, 30, 40 };
    o.fixed_f = bad_f;
    TU_RC(db, seg_rfm_calibrate(&t, db, &o), SEG_EINVAL);
    TU_MSG_HAS(db, "fixed_f[2]: must be at least fixed_f[1]");
    o.fixed_f = NULL;
    o.fixed_r = bad_r;
    TU_RC(db, seg_rfm_calibrate(&t, db, &o), SEG_EINVAL);
    TU_MSG_HAS(db, "fixed_r[1]: must be at most fixed_r[0]");
    /* unknown flags, NULL db, NULL out */
    TU_RC(db, seg_rfm_foreach(NULL, db, NULL, 0x8, NULL, NULL), SEG_EINVAL);
    ck_assert_int_eq(seg_rfm_foreach(NULL, NULL, NULL, 0, NULL, NULL), SEG_EINVAL);
    ck_assert_int_eq(seg_rfm_calibrate(&t, NULL, NULL), SEG_EINVAL);
    TU_RC(db, seg_rfm_calibrate(NULL, db, NULL), SEG_EINVAL);
    /* thresholds plus conflicting settings */
    seg_rfm_thresholds *cal = NULL;
    TU_OK(db, seg_rfm_calibrate(&cal, db, NULL));
    o = (seg_rfm_options)SEG_RFM_OPTIONS_INIT;
    o.thresholds = cal;
    o.bins = 7;
    TU_RC(db, seg_rfm_calibrate(&t, db, &o), SEG_EINVAL);
    TU_MSG_HAS(db, "bins 7: the thresholds have 5 bins");
    o.bins = 5; /* equal: fine */
    TU_OK(db, seg_rfm_calibrate(&t, db, &o));
    seg_rfm_thresholds_free(t);
    o.window = 5;
    TU_RC(db, seg_rfm_calibrate(&t, db, &o), SEG_EINVAL);
    TU_MSG_HAS(db, "window 5");
    o.window = 0;
    o.monetary = SEG_RFM_MONETARY_AOV;
    TU_RC(db, seg_rfm_calibrate(&t, db, &o), SEG_EINVAL);
    o.monetary = SEG_RFM_MONETARY_TOTAL;
    o.fixed_r = bad_r;
    TU_RC(db, seg_rfm_calibrate(&t, db, &o), SEG_EINVAL);
    TU_MSG_HAS(db, "not with thresholds");
    /* thresholds of a db with another currency exponent */
    seg_db *d3 = NULL;
    seg_db_options dopts = SEG_DB_OPTIONS_INIT;
    dopts.currency_exponent = 3;
    ck_assert_int_eq(seg_db_open(&d3, ":memory:", &dopts), SEG_OK);
    o = (seg_rfm_options)SEG_RFM_OPTIONS_INIT;
    o.thresholds = cal;
    TU_RC(d3, seg_rfm_calibrate(&t, d3, &o), SEG_EINVAL);
    TU_MSG_HAS(d3, "decimals");
    seg_db_close(d3);
    /* seg_rfm_get needs thresholds */
    seg_rfm_info one = SEG_RFM_INFO_INIT;
    TU_RC(db, seg_rfm_get(&one, db, NULL, "ann"), SEG_EINVAL);
    TU_MSG_HAS(db, "thresholds: NULL");
    o = (seg_rfm_options)SEG_RFM_OPTIONS_INIT;
    o.thresholds = cal;
    one.struct_size = 8;
    TU_RC(db, seg_rfm_get(&one, db, &o, "ann"), SEG_EVERSION);
    one.struct_size = sizeof one;
    TU_RC(db, seg_rfm_get(NULL, db, &o, "ann"), SEG_EINVAL);
    TU_RC(db, seg_rfm_get(&one, db, &o, ""), SEG_EINVAL);
    ck_assert_int_eq(seg_rfm_get(&one, NULL, &o, "ann"), SEG_EINVAL);
    seg_rfm_thresholds_free(cal);
}
END_TEST

START_TEST(versioned_structs)
{
    load_example(db);
    seg_rfm_options o;
    ck_assert_int_eq(seg_rfm_options_init(&o, sizeof o), SEG_OK);
    seg_rfm_options want = SEG_RFM_OPTIONS_INIT;
    ck_assert(memcmp(&o, &want, sizeof o) == 0);
    ck_assert_int_eq(seg_rfm_options_init(&o, sizeof o - 1), SEG_EVERSION);
    ck_assert_int_eq(seg_rfm_options_init(NULL, sizeof o), SEG_EINVAL);
    /* a longer struct with a zero tail is fine; a non-zero tail is not */
    struct { seg_rfm_options o; uint64_t tail; } big;
    memset(&big, 0, sizeof big);
    ck_assert_int_eq(seg_rfm_options_init(&big.o, sizeof big), SEG_OK);
    big.o.struct_size = sizeof big;
    seg_rfm_thresholds *t = NULL;
    TU_OK(db, seg_rfm_calibrate(&t, db, &big.o));
    seg_rfm_thresholds_free(t);
    big.tail = 1;
    TU_RC(db, seg_rfm_calibrate(&t, db, &big.o), SEG_EVERSION);
    o.struct_size = 4;
    TU_RC(db, seg_rfm_calibrate(&t, db, &o), SEG_EVERSION);
    ck_assert_ptr_null(t);
    /* a longer info: the tail is zeroed */
    struct { seg_rfm_info i; uint64_t tail; } bi;
    memset(&bi, 0xff, sizeof bi);
    bi.i.struct_size = sizeof bi;
    seg_rfm_options g = SEG_RFM_OPTIONS_INIT;
    TU_OK(db, seg_rfm_calibrate(&t, db, NULL));
    g.thresholds = t;
    TU_OK(db, seg_rfm_get(&bi.i, db, &g, "bob"));
    ck_assert_uint_eq(bi.tail, 0);
    ck_assert_uint_eq(bi.i.frequency, 1);
    seg_rfm_thresholds_free(t);
}
END_TEST

/* ============================================================ iteration */

static int stop_cb(const seg_rfm_info *c, void *payload)
{
    (void)c;
    return ++*(int *)payload >= 2;
}

static int mutate_cb(const seg_rfm_info *c, void *payload)
{
    seg_db *d = payload;
    ck_assert_int_eq(seg_customer_add(d, "zz"), SEG_EMISUSE);
    seg_customer_info ci = SEG_CUSTOMER_INFO_INIT;
    ck_assert_int_eq(seg_customer_get(&ci, d, c->customer_id), SEG_OK); /* reading is fine */
    return 0;
}

START_TEST(callbacks)
{
    load_example(db);
    int calls = 0;
    TU_OK(db, seg_rfm_foreach(NULL, db, NULL, 0, stop_cb, &calls));
    ck_assert_int_eq(calls, 2);
    TU_OK(db, seg_rfm_foreach(NULL, db, NULL, SEG_RFM_SORTED, mutate_cb, db));
    TU_OK(db, seg_customer_add(db, "zz")); /* allowed again afterwards */
    /* NULL callback: calibrate only */
    seg_rfm_thresholds *t = NULL;
    TU_OK(db, seg_rfm_foreach(&t, db, NULL, 0, NULL, NULL));
    ck_assert_ptr_nonnull(t);
    seg_rfm_thresholds_free(t);
}
END_TEST

/* SEG_RFM_SORTED is byte order, also for long ids sharing long prefixes */
START_TEST(sorted_byte_order)
{
    static const char *const stems[] = { "", "a", "ab", "abcdefgh", "abcdefghij",
                                         "abcdefghijklmnopq", "\xc3\xa9t\xc3\xa9", "Z", "abcdefgh~" };
    char ids[600][64];
    size_t n = 0;
    uint64_t st = 5;
    for (size_t s = 0; s < sizeof stems / sizeof stems[0]; s++)
        for (int k = 0; k < 60; k++) {
            int len = (int)(tu_rand(&st) % 12);
            snprintf(ids[n], sizeof ids[n], "%s%.*s", stems[s], len, "zyxwvutsrqponmlk");
            if (!ids[n][0])
                continue;
            size_t j;
            for (j = 0; j < n; j++)
                if (strcmp(ids[j], ids[n]) == 0)
                    break;
            if (j < n)
                continue;
            ingest(db, tu_purchase(NULL, ids[n], T0 + k, 100 + k, NULL));
            n++;
        }
    rows r;
    seg_rfm_thresholds *t = run_rfm(db, NULL, SEG_RFM_SORTED, &r);
    ck_assert_uint_eq(r.n, n);
    for (size_t i = 1; i < r.n; i++)
        ck_assert_msg(strcmp(r.v[i - 1].id, r.v[i].id) < 0, "'%s' before '%s'", r.v[i - 1].id,
                      r.v[i].id);
    seg_rfm_thresholds_free(t);
    rows_free(&r);
}
END_TEST

/* out of memory at every step: a clean failure, nothing leaked */
START_TEST(allocation_failures)
{
    tu_alloc ta;
    memset(&ta, 0, sizeof ta);
    ta.fail_after = -1;
    seg_allocator al = tu_allocator(&ta);
    seg_db_options dopts = SEG_DB_OPTIONS_INIT;
    dopts.allocator = &al;
    seg_db *d = NULL;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &dopts), SEG_OK);
    random_db(d, 31337, 60, 100);
    /* the db's message buffer, allocated once by a first error */
    ck_assert_int_eq(seg_rfm_foreach(NULL, d, NULL, 0x80, NULL, NULL), SEG_EINVAL);
    seg_rfm_options variants[3] = { SEG_RFM_OPTIONS_INIT, SEG_RFM_OPTIONS_INIT, SEG_RFM_OPTIONS_INIT };
    variants[1].window = 30 * DAY;
    variants[2].as_of = T0 + 50 * DAY;
    for (int v = 0; v < 3; v++) {
        int ok = 0;
        for (long k = 0; k < 200 && !ok; k++) {
            long live = ta.live_blocks;
            ta.attempts = 0;
            ta.fail_after = k;
            seg_rfm_thresholds *t = (seg_rfm_thresholds *)1;
            rows r;
            memset(&r, 0, sizeof r);
            int rc = seg_rfm_foreach(&t, d, &variants[v], SEG_RFM_SORTED, collect_cb, &r);
            ta.fail_after = -1;
            if (rc == SEG_OK) {
                ok = 1;
                ck_assert_ptr_nonnull(t);
                seg_rfm_thresholds_free(t);
            } else {
                ck_assert_int_eq(rc, SEG_ENOMEM);
                ck_assert_ptr_null(t);
                ck_assert_str_eq(seg_errmsg(d), "out of memory");
            }
            rows_free(&r);
            ck_assert_int_eq(ta.live_blocks, live);
        }
        ck_assert_msg(ok, "variant %d never succeeded", v);
    }
    seg_db_close(d);
    ck_assert_int_eq(ta.live_blocks, 0);
}
END_TEST

Suite *rfm_suite(void)
{
    Suite *s = suite_create("rfm");
    TCase *tc = tcase_create("definitions");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, example_definitions);
    tcase_add_test(tc, as_of_excludes_later_events);
    tcase_add_test(tc, window_lapsed_and_split_orders);
    tcase_add_test(tc, orders_counted_once);
    tcase_add_test(tc, monetary_aov_rounding);
    tcase_add_test(tc, recency_calendar_days);
    tcase_add_test(tc, empty_database);
    tcase_add_test(tc, erased_and_anonymized);
    suite_add_tcase(s, tc);

    tc = tcase_create("reference");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, random_against_reference, 0, 3);
    suite_add_tcase(s, tc);

    tc = tcase_create("bins");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, heavy_ties_frequency);
    tcase_add_test(tc, heavy_ties_top);
    tcase_add_test(tc, no_ties_even_bins);
    tcase_add_test(tc, fewer_values_than_bins);
    tcase_add_test(tc, partition_brute_force);
    tcase_add_loop_test(tc, partition_large_against_program, 0, 3);
    tcase_add_test(tc, grouping_paths);
    suite_add_tcase(s, tc);

    tc = tcase_create("thresholds");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, export_import_round_trip);
    tcase_add_test(tc, import_by_hand_and_score);
    tcase_add_test(tc, import_errors);
    tcase_add_test(tc, rescore_one_customer);
    suite_add_tcase(s, tc);

    tc = tcase_create("api");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, options_checked);
    tcase_add_test(tc, versioned_structs);
    tcase_add_test(tc, callbacks);
    tcase_add_test(tc, sorted_byte_order);
    tcase_add_test(tc, allocation_failures);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rfm_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
