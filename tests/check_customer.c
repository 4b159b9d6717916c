/*
 * tests/check_customer.c: the customer store: aggregates, prospects, lookup,
 * iteration (also as of a time), typed attributes, consent, erasure and
 * anonymization.  Public API only.
 */
#include "testutil.h"

#include <limits.h>
#include <math.h>

Suite *customer_suite(void);

static seg_db *db;

static void setup(void)
{
    db = NULL;
    ck_assert_int_eq(seg_db_open(&db, ":memory:", NULL), SEG_OK);
    ck_assert_ptr_nonnull(db);
}

static void teardown(void)
{
    seg_db_close(db);
    db = NULL;
}

static void ingest_all(seg_db *d, const seg_event *ev, size_t n)
{
    size_t k;
    for (k = 0; k < n; k++) {
        int rc = seg_event_ingest(d, &ev[k]);
        ck_assert_msg(rc == SEG_OK, "event %zu (%s): %d %s", k,
                      ev[k].event_id ? ev[k].event_id : "(derived)", rc, seg_errmsg(d));
    }
}

static seg_value v_str(const char *s)
{
    seg_value v;
    memset(&v, 0, sizeof v);
    v.type = SEG_TYPE_STRING;
    v.s = s;
    return v;
}

static seg_value v_int(uint32_t type, int64_t i)
{
    seg_value v;
    memset(&v, 0, sizeof v);
    v.type = type;
    v.i = i;
    return v;
}

static seg_value v_num(double d)
{
    seg_value v;
    memset(&v, 0, sizeof v);
    v.type = SEG_TYPE_NUMBER;
    v.d = d;
    return v;
}

static seg_value v_null(void)
{
    seg_value v;
    memset(&v, 0, sizeof v);
    v.type = SEG_TYPE_NULL;
    return v;
}

/* ======================================================================== */
/* aggregates                                                                */
/* ======================================================================== */

#define AGG_N 10
static void agg_events(seg_event *ev)
{
    ev[0] = tu_engagement("a0", "c1", TU_DAYN(0) + 3600, "email_open");
    ev[1] = tu_purchase("a1", "c1", TU_DAYN(1) + 36000, 1000, "o1");
    ev[1].quantity = 2;
    ev[2] = tu_purchase("a2", "c1", TU_DAYN(1) + 36060, 500, "o1");
    ev[2].quantity = 1;
    ev[3] = tu_purchase("a3", "c1", TU_DAYN(1) + 86399, 300, "o2"); /* 23:59:59 */
    ev[4] = tu_purchase("a4", "c1", TU_DAYN(2), 200, "o3");         /* 00:00:00 next day */
    ev[4].quantity = 3;
    ev[5] = tu_purchase("a5", "c1", TU_DAYN(5) + 43200, 700, NULL); /* an order of its own */
    ev[6] = tu_refund("a6", "c1", TU_DAYN(3), -400, "o1");
    ev[6].quantity = 1;
    ev[7] = tu_refund("a7", "c1", TU_DAYN(4), -600, "o1");          /* cumulative: 1000 of 1500 */
    ev[8] = tu_refund("a8", "c1", TU_DAYN(6), -50, NULL);
    ev[9] = tu_engagement("a9", "c1", TU_DAYN(10), "store_visit");
}

static void assert_agg_expected(const seg_customer_info *i)
{
    char buf[400];
    tu_info_print(buf, sizeof buf, i);
    ck_assert_msg(i->orders == 4, "orders: %s", buf);
    ck_assert_msg(i->purchase_days == 3, "purchase_days: %s", buf);
    ck_assert_msg(i->first_purchase == TU_DAYN(1) + 36000, "first_purchase: %s", buf);
    ck_assert_msg(i->last_purchase == TU_DAYN(5) + 43200, "last_purchase: %s", buf);
    ck_assert_msg(i->revenue == 2700, "revenue: %s", buf);
    ck_assert_msg(i->refunds == -1050, "refunds: %s", buf);
    ck_assert_msg(i->net_revenue == 1650, "net_revenue: %s", buf);
    ck_assert_msg(i->units == 7, "units: %s", buf);
    ck_assert_msg(i->events == 10, "events: %s", buf);
    ck_assert_msg(i->engagements == 2, "engagements: %s", buf);
    ck_assert_msg(i->first_seen == TU_DAYN(0) + 3600, "first_seen: %s", buf);
    ck_assert_msg(i->last_seen == TU_DAYN(10), "last_seen: %s", buf);
}

START_TEST(aggregates_exact)
{
    static const int order[AGG_N] = { 9, 3, 0, 1, 5, 2, 4, 6, 8, 7 };
    seg_event ev[AGG_N];
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    size_t k;
    agg_events(ev);
    for (k = 0; k < AGG_N; k++)
        TU_OK(db, seg_event_ingest(db, &ev[order[k]]));
    TU_GET(db, "c1", &i);
    ck_assert_uint_eq(i.struct_size, sizeof i);
    ck_assert_str_eq(i.customer_id, "c1");
    assert_agg_expected(&i);
}
END_TEST

START_TEST(aggregates_exact_batch)
{
    seg_event ev[AGG_N];
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    agg_events(ev);
    TU_OK(db, seg_event_ingest_batch(db, ev, AGG_N, NULL, NULL));
    TU_GET(db, "c1", &i);
    assert_agg_expected(&i);
}
END_TEST

START_TEST(aggregates_incremental)
{
    seg_event ev[AGG_N];
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    agg_events(ev);
    TU_OK(db, seg_event_ingest(db, &ev[1]));
    TU_GET(db, "c1", &i);
    ck_assert_uint_eq(i.orders, 1);
    ck_assert_uint_eq(i.purchase_days, 1);
    ck_assert_int_eq(i.revenue, 1000);
    ck_assert_int_eq(i.units, 2);
    TU_OK(db, seg_event_ingest(db, &ev[2])); /* same order, same day */
    TU_GET(db, "c1", &i);
    ck_assert_uint_eq(i.orders, 1);
    ck_assert_uint_eq(i.purchase_days, 1);
    ck_assert_int_eq(i.revenue, 1500);
    ck_assert_int_eq(i.first_purchase, TU_DAYN(1) + 36000);
    ck_assert_int_eq(i.last_purchase, TU_DAYN(1) + 36060);
    TU_OK(db, seg_event_ingest(db, &ev[3])); /* same day, new order */
    TU_GET(db, "c1", &i);
    ck_assert_uint_eq(i.orders, 2);
    ck_assert_uint_eq(i.purchase_days, 1);
    TU_OK(db, seg_event_ingest(db, &ev[4])); /* next day at midnight */
    TU_GET(db, "c1", &i);
    ck_assert_uint_eq(i.orders, 3);
    ck_assert_uint_eq(i.purchase_days, 2);
    ck_assert_int_eq(i.last_purchase, TU_DAYN(2));
    TU_OK(db, seg_event_ingest(db, &ev[6]));
    TU_GET(db, "c1", &i);
    ck_assert_int_eq(i.refunds, -400);
    ck_assert_int_eq(i.net_revenue, 2000 - 400);
    ck_assert_int_eq(i.units, 2 + 1 + 1 + 3 - 1);
    ck_assert_uint_eq(i.orders, 3); /* a partial refund keeps the order */
}
END_TEST

START_TEST(multi_line_order_counts_once)
{
    seg_event ev[3];
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    ev[0] = tu_purchase("m0", "c", TU_DAYN(1), 100, "big");
    ev[1] = tu_purchase("m1", "c", TU_DAYN(2), 100, "big");
    ev[2] = tu_purchase("m2", "c", TU_DAYN(3), 100, "big");
    ingest_all(db, ev, 3);
    TU_GET(db, "c", &i);
    ck_assert_uint_eq(i.orders, 1);
    ck_assert_uint_eq(i.purchase_days, 3);
    ck_assert_int_eq(i.revenue, 300);
    ck_assert_int_eq(i.units, 3);
}
END_TEST

START_TEST(same_order_id_two_customers)
{
    /* an order belongs to one customer: another customer's line with the
     * same order id is refused, and merges nothing */
    seg_event ev[2];
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    ev[0] = tu_purchase("n0", "x", TU_DAYN(1), 100, "shared");
    ev[1] = tu_purchase("n1", "y", TU_DAYN(1), 100, "shared");
    ingest_all(db, ev, 1);
    TU_RC(db, seg_event_ingest(db, &ev[1]), SEG_EINVAL);
    TU_MSG_HAS(db, "order_id");
    TU_MSG_HAS(db, "shared");
    TU_RC(db, seg_customer_get(&i, db, "y"), SEG_ENOTFOUND);
    TU_GET(db, "x", &i);
    ck_assert_uint_eq(i.orders, 1);
    ck_assert_int_eq(i.revenue, 100);
}
END_TEST

START_TEST(orderless_purchase_joined_by_order_id)
{
    /* "order_id NULL: the event is an order of its own, its order id is its
     * event id": a later line naming that order id is in the same order */
    seg_event ev[2];
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    tu_ev_list l;
    memset(&l, 0, sizeof l);
    ev[0] = tu_purchase("p9", "c", TU_DAYN(1), 100, NULL);
    ev[1] = tu_purchase("p9-line2", "c", TU_DAYN(1), 50, "p9");
    ingest_all(db, ev, 2);
    TU_OK(db, seg_event_foreach(db, "c", tu_ev_collect_cb, &l));
    ck_assert_uint_eq(l.n, 2);
    ck_assert_str_eq(l.e[0].order_id, "p9");
    ck_assert_str_eq(l.e[1].order_id, "p9");
    tu_ev_list_free(&l);
    TU_GET(db, "c", &i);
    ck_assert_msg(i.orders == 1, "two lines of order p9 counted as %" PRIu64 " orders", i.orders);
    ck_assert_int_eq(i.revenue, 150);
}
END_TEST

START_TEST(zero_amount_purchase_not_counted)
{
    seg_event e;
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    e = tu_purchase("z0", "c", TU_DAYN(3), 0, "oz");
    TU_OK(db, seg_event_ingest(db, &e));
    TU_GET(db, "c", &i);
    ck_assert_uint_eq(i.orders, 0);
    ck_assert_uint_eq(i.purchase_days, 0);
    ck_assert_int_eq(i.first_purchase, 0);
    ck_assert_int_eq(i.last_purchase, 0);
    ck_assert_int_eq(i.revenue, 0);
    ck_assert_uint_eq(i.events, 1);
    ck_assert_int_eq(i.first_seen, TU_DAYN(3));
    /* a positive line in another order */
    e = tu_purchase("z1", "c", TU_DAYN(5), 250, "op");
    TU_OK(db, seg_event_ingest(db, &e));
    /* zero lines before and after it change no purchase aggregate */
    e = tu_purchase("z2", "c", TU_DAYN(1), 0, "oq");
    TU_OK(db, seg_event_ingest(db, &e));
    e = tu_purchase("z3", "c", TU_DAYN(9), 0, "op");
    TU_OK(db, seg_event_ingest(db, &e));
    TU_GET(db, "c", &i);
    ck_assert_uint_eq(i.orders, 1);
    ck_assert_uint_eq(i.purchase_days, 1);
    ck_assert_int_eq(i.first_purchase, TU_DAYN(5));
    ck_assert_int_eq(i.last_purchase, TU_DAYN(5));
    ck_assert_int_eq(i.revenue, 250);
    ck_assert_uint_eq(i.events, 4);
    ck_assert_int_eq(i.first_seen, TU_DAYN(1));
    ck_assert_int_eq(i.last_seen, TU_DAYN(9));
    /* the zero-only order becomes an order with its first positive line */
    e = tu_purchase("z4", "c", TU_DAYN(7), 10, "oz");
    TU_OK(db, seg_event_ingest(db, &e));
    TU_GET(db, "c", &i);
    ck_assert_uint_eq(i.orders, 2);
    ck_assert_uint_eq(i.purchase_days, 2);
    ck_assert_int_eq(i.last_purchase, TU_DAYN(7));
}
END_TEST

START_TEST(purchase_days_negative_times)
{
    seg_event ev[4];
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    ev[0] = tu_purchase("d0", "c", -1, 100, NULL);          /* 1969-12-31T23:59:59 */
    ev[1] = tu_purchase("d1", "c", 0, 100, NULL);           /* 1970-01-01T00:00:00 */
    ev[2] = tu_purchase("d2", "c", -86400, 100, NULL);      /* 1969-12-31T00:00:00 */
    ev[3] = tu_purchase("d3", "c", -86401, 100, NULL);      /* 1969-12-30T23:59:59 */
    ingest_all(db, ev, 4);
    TU_GET(db, "c", &i);
    ck_assert_uint_eq(i.orders, 4);
    ck_assert_uint_eq(i.purchase_days, 3);
    ck_assert_int_eq(i.first_purchase, -86401);
    ck_assert_int_eq(i.last_purchase, 0);
}
END_TEST

START_TEST(purchase_days_extreme_times)
{
    seg_event ev[2];
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    ev[0] = tu_purchase("t0", "c", SEG_TIME_MIN, 100, NULL);
    ev[1] = tu_purchase("t1", "c", SEG_TIME_MAX, 100, NULL);
    ingest_all(db, ev, 2);
    TU_GET(db, "c", &i);
    ck_assert_uint_eq(i.purchase_days, 2);
    ck_assert_int_eq(i.first_purchase, SEG_TIME_MIN);
    ck_assert_int_eq(i.last_purchase, SEG_TIME_MAX);
    ck_assert_int_eq(i.first_seen, SEG_TIME_MIN);
    ck_assert_int_eq(i.last_seen, SEG_TIME_MAX);
}
END_TEST

START_TEST(full_refund_keeps_order)
{
    seg_event ev[2];
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    ev[0] = tu_purchase("f0", "c", TU_DAYN(1), 900, "of");
    ev[1] = tu_refund("f1", "c", TU_DAYN(2), -900, "of");
    ingest_all(db, ev, 2);
    TU_GET(db, "c", &i);
    ck_assert_uint_eq(i.orders, 1);
    ck_assert_int_eq(i.revenue, 900);
    ck_assert_int_eq(i.net_revenue, 0);
    ck_assert_int_eq(i.refunds, -900);
    ck_assert_int_eq(i.last_seen, TU_DAYN(2));
    ck_assert_int_eq(i.last_purchase, TU_DAYN(1));
}
END_TEST

START_TEST(get_not_found)
{
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    TU_RC(db, seg_customer_get(&i, db, "ghost"), SEG_ENOTFOUND);
    TU_MSG_HAS(db, "ghost");
}
END_TEST

START_TEST(get_bad_args)
{
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    TU_OK(db, seg_customer_add(db, "c"));
    TU_RC(db, seg_customer_get(NULL, db, "c"), SEG_EINVAL);
    TU_RC(db, seg_customer_get(&i, db, NULL), SEG_EINVAL);
    ck_assert_int_eq(seg_customer_get(&i, NULL, "c"), SEG_EINVAL);
}
END_TEST

START_TEST(info_struct_size_no_overrun)
{
    /* the library writes struct_size bytes and not one more */
    struct { seg_customer_info info; unsigned char canary[32]; } big;
    const unsigned char *bytes = (const unsigned char *)&big;
    size_t k;
    seg_event ev[AGG_N];
    agg_events(ev);
    ingest_all(db, ev, AGG_N);
    memset(&big, 0xA5, sizeof big);
    big.info.struct_size = sizeof big.info;
    TU_OK(db, seg_customer_get(&big.info, db, "c1"));
    ck_assert_uint_eq(big.info.struct_size, sizeof big.info);
    ck_assert_str_eq(big.info.customer_id, "c1");
    assert_agg_expected(&big.info);
    for (k = sizeof big.info; k < sizeof big; k++)
        ck_assert_msg(bytes[k] == 0xA5, "byte %zu past struct_size was written", k);
}
END_TEST

START_TEST(info_struct_size_larger)
{
    /* a caller of a later release: every 1.0 field is filled */
    struct { seg_customer_info info; uint64_t later_field; } big;
    seg_event ev[AGG_N];
    agg_events(ev);
    ingest_all(db, ev, AGG_N);
    memset(&big, 0, sizeof big);
    big.info.struct_size = sizeof big;
    TU_OK(db, seg_customer_get(&big.info, db, "c1"));
    assert_agg_expected(&big.info);
}
END_TEST

START_TEST(info_struct_size_too_small)
{
    /* smaller than the 1.0 layout: refused, nothing written */
    struct { seg_customer_info info; } s;
    const unsigned char *bytes = (const unsigned char *)&s;
    size_t sizes[] = { 0, 4, sizeof(size_t), offsetof(seg_customer_info, revenue),
                       sizeof(seg_customer_info) - 1 };
    size_t k, j;
    TU_OK(db, seg_customer_add(db, "c"));
    for (k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        memset(&s, 0xA5, sizeof s);
        s.info.struct_size = sizes[k];
        TU_RC(db, seg_customer_get(&s.info, db, "c"), SEG_EVERSION);
        for (j = sizeof(size_t); j < sizeof s; j++)
            ck_assert_msg(bytes[j] == 0xA5, "struct_size %zu: byte %zu written", sizes[k], j);
    }
}
END_TEST

/* ======================================================================== */
/* prospects                                                                 */
/* ======================================================================== */

static void assert_prospect(const char *id)
{
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    TU_GET(db, id, &i);
    ck_assert_str_eq(i.customer_id, id);
    ck_assert_uint_eq(i.orders, 0);
    ck_assert_uint_eq(i.purchase_days, 0);
    ck_assert_int_eq(i.first_purchase, 0);
    ck_assert_int_eq(i.last_purchase, 0);
    ck_assert_int_eq(i.revenue, 0);
    ck_assert_int_eq(i.net_revenue, 0);
    ck_assert_int_eq(i.refunds, 0);
    ck_assert_int_eq(i.units, 0);
    ck_assert_uint_eq(i.events, 0);
    ck_assert_uint_eq(i.engagements, 0);
    ck_assert_int_eq(i.first_seen, 0);
    ck_assert_int_eq(i.last_seen, 0);
}

START_TEST(prospect_via_add)
{
    TU_OK(db, seg_customer_add(db, "lead-1"));
    ck_assert_uint_eq(seg_customer_count(db), 1);
    ck_assert_uint_eq(seg_event_count(db), 0);
    assert_prospect("lead-1");
    /* again: no-op */
    TU_OK(db, seg_customer_add(db, "lead-1"));
    ck_assert_uint_eq(seg_customer_count(db), 1);
    assert_prospect("lead-1");
}
END_TEST

START_TEST(add_existing_customer_noop)
{
    seg_event ev[AGG_N];
    tu_snapshot before;
    agg_events(ev);
    ingest_all(db, ev, AGG_N);
    tu_snap_take(&before, db, 0);
    TU_OK(db, seg_customer_add(db, "c1"));
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
}
END_TEST

START_TEST(prospect_with_engagement_only)
{
    seg_event e = tu_engagement("g", "lead", TU_DAYN(2), "email_open");
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    TU_OK(db, seg_customer_add(db, "lead"));
    TU_OK(db, seg_event_ingest(db, &e));
    ck_assert_uint_eq(seg_customer_count(db), 1);
    TU_GET(db, "lead", &i);
    ck_assert_uint_eq(i.orders, 0);
    ck_assert_uint_eq(i.events, 1);
    ck_assert_uint_eq(i.engagements, 1);
}
END_TEST

START_TEST(prospect_via_attribute)
{
    seg_value v = v_str("Berlin");
    TU_OK(db, seg_customer_set_attr(db, "lead-2", "city", &v));
    ck_assert_uint_eq(seg_customer_count(db), 1);
    assert_prospect("lead-2");
}
END_TEST

START_TEST(prospect_via_consent)
{
    TU_OK(db, seg_customer_set_consent(db, "lead-3", "email", SEG_CONSENT_GRANTED));
    ck_assert_uint_eq(seg_customer_count(db), 1);
    assert_prospect("lead-3");
}
END_TEST

START_TEST(add_bad_ids)
{
    char *longid = tu_repeat('L', SEG_ID_MAX + 1);
    static const char *bad[] = { "", "a\xC3\x28", "\xED\xA0\x80", "abc\xE2\x82", "\xC0\xAF" };
    size_t k;
    TU_OK(db, seg_customer_add(db, "existing"));
    for (k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        TU_RC(db, seg_customer_add(db, bad[k]), SEG_EINVAL);
        TU_MSG_HAS(db, "customer_id");
    }
    TU_RC(db, seg_customer_add(db, longid), SEG_EINVAL);
    TU_MSG_HAS(db, "customer_id");
    TU_RC(db, seg_customer_add(db, NULL), SEG_EINVAL);
    ck_assert_int_eq(seg_customer_add(NULL, "x"), SEG_EINVAL);
    ck_assert_uint_eq(seg_customer_count(db), 1);
    free(longid);
    longid = tu_repeat('L', SEG_ID_MAX);
    TU_OK(db, seg_customer_add(db, longid));
    ck_assert_uint_eq(seg_customer_count(db), 2);
    free(longid);
}
END_TEST

/* ======================================================================== */
/* iteration                                                                 */
/* ======================================================================== */

typedef struct visits {
    size_t n;
    char id[32][SEG_ID_MAX + 1];
    seg_customer_info info[32];
    size_t stop_after;
} visits;

static int visit_cb(const seg_customer_info *c, void *payload)
{
    visits *v = (visits *)payload;
    if (v->n < 32) {
        snprintf(v->id[v->n], sizeof v->id[v->n], "%s", c->customer_id ? c->customer_id : "(null)");
        v->info[v->n] = *c;
        v->info[v->n].customer_id = NULL;
    }
    v->n++;
    return v->stop_after && v->n >= v->stop_after;
}

/* created in this order: b, a, B, é, a1, aa */
static void make_mixed_customers(void)
{
    seg_event e;
    seg_value v = v_int(SEG_TYPE_INT, 1);
    e = tu_purchase("e-b", "b", TU_DAYN(1), 100, NULL);
    TU_OK(db, seg_event_ingest(db, &e));
    TU_OK(db, seg_customer_add(db, "a"));
    TU_OK(db, seg_customer_set_attr(db, "B", "n", &v));
    TU_OK(db, seg_customer_set_consent(db, "\xC3\xA9", "sms", SEG_CONSENT_DENIED));
    e = tu_engagement("e-a1", "a1", TU_DAYN(2), "x");
    TU_OK(db, seg_event_ingest(db, &e));
    e = tu_purchase("e-aa", "aa", TU_DAYN(3), 300, NULL);
    TU_OK(db, seg_event_ingest(db, &e));
    /* activity on an existing customer does not move it */
    e = tu_purchase("e-b2", "b", TU_DAYN(4), 50, NULL);
    TU_OK(db, seg_event_ingest(db, &e));
}

START_TEST(foreach_creation_order)
{
    static const char *want[] = { "b", "a", "B", "\xC3\xA9", "a1", "aa" };
    visits v;
    size_t k;
    memset(&v, 0, sizeof v);
    make_mixed_customers();
    TU_OK(db, seg_customer_foreach(db, 0, visit_cb, &v));
    ck_assert_uint_eq(v.n, 6);
    for (k = 0; k < 6; k++)
        ck_assert_str_eq(v.id[k], want[k]);
    /* the visited aggregates are those of seg_customer_get */
    ck_assert_int_eq(v.info[0].revenue, 150);
    ck_assert_uint_eq(v.info[0].orders, 2);
    ck_assert_uint_eq(v.info[4].engagements, 1);
    ck_assert_uint_eq(v.info[1].events, 0);
    for (k = 0; k < 6; k++) {
        seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
        TU_GET(db, want[k], &i);
        TU_INFO_EQ(&i, &v.info[k]);
    }
}
END_TEST

START_TEST(foreach_sorted)
{
    static const char *want[] = { "B", "a", "a1", "aa", "b", "\xC3\xA9" };
    visits v;
    size_t k;
    memset(&v, 0, sizeof v);
    make_mixed_customers();
    TU_OK(db, seg_customer_foreach(db, SEG_CUSTOMER_SORTED, visit_cb, &v));
    ck_assert_uint_eq(v.n, 6);
    for (k = 0; k < 6; k++)
        ck_assert_str_eq(v.id[k], want[k]);
}
END_TEST

START_TEST(foreach_early_stop)
{
    visits v;
    memset(&v, 0, sizeof v);
    make_mixed_customers();
    v.stop_after = 2;
    TU_OK(db, seg_customer_foreach(db, 0, visit_cb, &v));
    ck_assert_uint_eq(v.n, 2);
    ck_assert_str_eq(v.id[0], "b");
    ck_assert_str_eq(v.id[1], "a");
    memset(&v, 0, sizeof v);
    v.stop_after = 1;
    TU_OK(db, seg_customer_foreach(db, SEG_CUSTOMER_SORTED, visit_cb, &v));
    ck_assert_uint_eq(v.n, 1);
    ck_assert_str_eq(v.id[0], "B");
}
END_TEST

START_TEST(foreach_empty_and_errors)
{
    visits v;
    memset(&v, 0, sizeof v);
    TU_OK(db, seg_customer_foreach(db, 0, visit_cb, &v));
    ck_assert_uint_eq(v.n, 0);
    TU_RC(db, seg_customer_foreach(db, 0, NULL, &v), SEG_EINVAL);
    ck_assert_int_eq(seg_customer_foreach(NULL, 0, visit_cb, &v), SEG_EINVAL);
    ck_assert_uint_eq(seg_customer_count(db), 0);
}
END_TEST

/* as-of: c1 buys on days 1, 2, 5 and gets a refund on day 6; c2 buys only on
 * day 8; c3 only engages on day 1; p is a prospect */
static void make_as_of_data(void)
{
    seg_event ev[7];
    seg_value v = v_str("x");
    ev[0] = tu_purchase("o-1", "c1", TU_DAYN(1), 100, "o1");
    ev[1] = tu_purchase("o-2", "c1", TU_DAYN(2), 200, "o2");
    ev[2] = tu_purchase("o-3", "c1", TU_DAYN(5), 300, "o3");
    ev[3] = tu_refund("o-4", "c1", TU_DAYN(6), -50, "o1");
    ev[4] = tu_purchase("o-5", "c2", TU_DAYN(8), 400, NULL);
    ev[5] = tu_engagement("o-6", "c3", TU_DAYN(1), "email_open");
    ev[6] = tu_engagement("o-7", "c1", TU_DAYN(0), "email_open");
    TU_OK(db, seg_customer_add(db, "p"));
    ingest_all(db, ev, 7);
    TU_OK(db, seg_customer_set_attr(db, "q", "tag", &v)); /* another prospect */
}

static const seg_customer_info *find_visit(const visits *v, const char *id)
{
    size_t k;
    for (k = 0; k < v->n && k < 32; k++)
        if (strcmp(v->id[k], id) == 0)
            return &v->info[k];
    return NULL;
}

START_TEST(as_of_basic)
{
    visits v;
    const seg_customer_info *c;
    memset(&v, 0, sizeof v);
    make_as_of_data();
    TU_OK(db, seg_customer_foreach_as_of(db, TU_DAYN(5), 0, visit_cb, &v));
    /* creation order: p, c1, c2 (skipped), c3, q */
    ck_assert_uint_eq(v.n, 4);
    ck_assert_str_eq(v.id[0], "p");
    ck_assert_str_eq(v.id[1], "c1");
    ck_assert_str_eq(v.id[2], "c3");
    ck_assert_str_eq(v.id[3], "q");
    c = find_visit(&v, "c1");
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->orders, 2);
    ck_assert_uint_eq(c->purchase_days, 2);
    ck_assert_int_eq(c->first_purchase, TU_DAYN(1));
    ck_assert_int_eq(c->last_purchase, TU_DAYN(2));
    ck_assert_int_eq(c->revenue, 300);
    ck_assert_int_eq(c->refunds, 0);
    ck_assert_int_eq(c->net_revenue, 300);
    ck_assert_int_eq(c->units, 2);
    ck_assert_uint_eq(c->events, 3);
    ck_assert_uint_eq(c->engagements, 1);
    ck_assert_int_eq(c->first_seen, TU_DAYN(0));
    ck_assert_int_eq(c->last_seen, TU_DAYN(2));
    c = find_visit(&v, "c3");
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->events, 1);
    ck_assert_uint_eq(c->orders, 0);
    c = find_visit(&v, "p");
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->events, 0);
    ck_assert_int_eq(c->first_seen, 0);
    c = find_visit(&v, "q");
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->events, 0);
    ck_assert_ptr_null(find_visit(&v, "c2"));
}
END_TEST

START_TEST(as_of_boundary_is_exclusive)
{
    visits v;
    const seg_customer_info *c;
    memset(&v, 0, sizeof v);
    make_as_of_data();
    /* exactly the time of the day-5 purchase: not included */
    TU_OK(db, seg_customer_foreach_as_of(db, TU_DAYN(5), SEG_CUSTOMER_SORTED, visit_cb, &v));
    c = find_visit(&v, "c1");
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->revenue, 300);
    /* one second later: included */
    memset(&v, 0, sizeof v);
    TU_OK(db, seg_customer_foreach_as_of(db, TU_DAYN(5) + 1, SEG_CUSTOMER_SORTED, visit_cb, &v));
    c = find_visit(&v, "c1");
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->revenue, 600);
    ck_assert_uint_eq(c->orders, 3);
    ck_assert_uint_eq(c->purchase_days, 3);
    ck_assert_int_eq(c->last_purchase, TU_DAYN(5));
    ck_assert_int_eq(c->refunds, 0);
    /* after the refund */
    memset(&v, 0, sizeof v);
    TU_OK(db, seg_customer_foreach_as_of(db, TU_DAYN(6) + 1, SEG_CUSTOMER_SORTED, visit_cb, &v));
    c = find_visit(&v, "c1");
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->refunds, -50);
    ck_assert_int_eq(c->net_revenue, 550);
    ck_assert_ptr_null(find_visit(&v, "c2"));
}
END_TEST

START_TEST(as_of_before_everything)
{
    visits v;
    memset(&v, 0, sizeof v);
    make_as_of_data();
    TU_OK(db, seg_customer_foreach_as_of(db, TU_DAYN(0), SEG_CUSTOMER_SORTED, visit_cb, &v));
    /* only the prospects */
    ck_assert_uint_eq(v.n, 2);
    ck_assert_str_eq(v.id[0], "p");
    ck_assert_str_eq(v.id[1], "q");
}
END_TEST

START_TEST(as_of_after_everything_equals_foreach)
{
    visits a, b;
    size_t k;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    make_as_of_data();
    TU_OK(db, seg_customer_foreach_as_of(db, SEG_TIME_MAX, SEG_CUSTOMER_SORTED, visit_cb, &a));
    TU_OK(db, seg_customer_foreach(db, SEG_CUSTOMER_SORTED, visit_cb, &b));
    ck_assert_uint_eq(a.n, 5);
    ck_assert_uint_eq(a.n, b.n);
    for (k = 0; k < a.n; k++) {
        ck_assert_str_eq(a.id[k], b.id[k]);
        TU_INFO_EQ(&a.info[k], &b.info[k]);
    }
    /* sorted: byte order */
    ck_assert_str_eq(a.id[0], "c1");
    ck_assert_str_eq(a.id[1], "c2");
    ck_assert_str_eq(a.id[2], "c3");
    ck_assert_str_eq(a.id[3], "p");
    ck_assert_str_eq(a.id[4], "q");
}
END_TEST

START_TEST(as_of_early_stop_and_errors)
{
    visits v;
    memset(&v, 0, sizeof v);
    make_as_of_data();
    v.stop_after = 1;
    TU_OK(db, seg_customer_foreach_as_of(db, SEG_TIME_MAX, 0, visit_cb, &v));
    ck_assert_uint_eq(v.n, 1);
    TU_RC(db, seg_customer_foreach_as_of(db, SEG_TIME_MAX, 0, NULL, &v), SEG_EINVAL);
}
END_TEST

/* ======================================================================== */
/* attributes                                                                */
/* ======================================================================== */

START_TEST(attr_each_type)
{
    seg_value v, got;
    TU_OK(db, seg_customer_add(db, "c"));

    v = v_str("Berlin \xE2\x82\xAC");
    TU_OK(db, seg_customer_set_attr(db, "c", "city", &v));
    v = v_int(SEG_TYPE_INT, -42);
    TU_OK(db, seg_customer_set_attr(db, "c", "age", &v));
    v = v_num(3.25);
    TU_OK(db, seg_customer_set_attr(db, "c", "score", &v));
    v = v_int(SEG_TYPE_BOOL, 1);
    TU_OK(db, seg_customer_set_attr(db, "c", "vip", &v));
    v = v_int(SEG_TYPE_TIME, TU_D0 + 5);
    TU_OK(db, seg_customer_set_attr(db, "c", "signup", &v));

    TU_OK(db, seg_customer_get_attr(&got, db, "c", "city"));
    ck_assert_uint_eq(got.type, SEG_TYPE_STRING);
    ck_assert_str_eq(got.s, "Berlin \xE2\x82\xAC");
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "age"));
    ck_assert_uint_eq(got.type, SEG_TYPE_INT);
    ck_assert_int_eq(got.i, -42);
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "score"));
    ck_assert_uint_eq(got.type, SEG_TYPE_NUMBER);
    ck_assert(got.d == 3.25);
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "vip"));
    ck_assert_uint_eq(got.type, SEG_TYPE_BOOL);
    ck_assert_int_eq(got.i, 1);
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "signup"));
    ck_assert_uint_eq(got.type, SEG_TYPE_TIME);
    ck_assert_int_eq(got.i, TU_D0 + 5);

    ck_assert_uint_eq(seg_attr_type(db, "city"), SEG_TYPE_STRING);
    ck_assert_uint_eq(seg_attr_type(db, "age"), SEG_TYPE_INT);
    ck_assert_uint_eq(seg_attr_type(db, "score"), SEG_TYPE_NUMBER);
    ck_assert_uint_eq(seg_attr_type(db, "vip"), SEG_TYPE_BOOL);
    ck_assert_uint_eq(seg_attr_type(db, "signup"), SEG_TYPE_TIME);
    ck_assert_uint_eq(seg_attr_type(db, "unknown"), SEG_TYPE_NULL);
}
END_TEST

START_TEST(attr_extreme_values)
{
    seg_value v, got;
    v = v_int(SEG_TYPE_INT, INT64_MIN);
    TU_OK(db, seg_customer_set_attr(db, "c", "i", &v));
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "i"));
    ck_assert_int_eq(got.i, INT64_MIN);
    v = v_int(SEG_TYPE_INT, INT64_MAX);
    TU_OK(db, seg_customer_set_attr(db, "c", "i", &v));
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "i"));
    ck_assert_int_eq(got.i, INT64_MAX);
    v = v_num(-1.7976931348623157e308);
    TU_OK(db, seg_customer_set_attr(db, "c", "d", &v));
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "d"));
    ck_assert(got.d == -1.7976931348623157e308);
    v = v_num(4.9406564584124654e-324);
    TU_OK(db, seg_customer_set_attr(db, "c", "d", &v));
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "d"));
    ck_assert(got.d == 4.9406564584124654e-324);
    v = v_int(SEG_TYPE_BOOL, 0);
    TU_OK(db, seg_customer_set_attr(db, "c", "b", &v));
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "b"));
    ck_assert_uint_eq(got.type, SEG_TYPE_BOOL);
    ck_assert_int_eq(got.i, 0);
    v = v_int(SEG_TYPE_TIME, SEG_TIME_MIN);
    TU_OK(db, seg_customer_set_attr(db, "c", "t", &v));
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "t"));
    ck_assert_int_eq(got.i, SEG_TIME_MIN);
    v = v_str("");
    TU_OK(db, seg_customer_set_attr(db, "c", "s", &v));
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "s"));
    ck_assert_uint_eq(got.type, SEG_TYPE_STRING);
    ck_assert_str_eq(got.s, "");
}
END_TEST

START_TEST(attr_overwrite)
{
    seg_value v, got;
    v = v_int(SEG_TYPE_INT, 5);
    TU_OK(db, seg_customer_set_attr(db, "c", "n", &v));
    v.i = 7;
    TU_OK(db, seg_customer_set_attr(db, "c", "n", &v));
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "n"));
    ck_assert_int_eq(got.i, 7);
    v = v_str("short");
    TU_OK(db, seg_customer_set_attr(db, "c", "s", &v));
    v = v_str("a much longer value than before");
    TU_OK(db, seg_customer_set_attr(db, "c", "s", &v));
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "s"));
    ck_assert_str_eq(got.s, "a much longer value than before");
    ck_assert_uint_eq(seg_customer_count(db), 1);
}
END_TEST

START_TEST(attr_remove)
{
    seg_value v = v_str("Paris"), got, nul = v_null();
    TU_OK(db, seg_customer_set_attr(db, "c", "city", &v));
    TU_OK(db, seg_customer_set_attr(db, "c", "city", &nul));
    got.type = 99;
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "city"));
    ck_assert_uint_eq(got.type, SEG_TYPE_NULL);
    /* removing what is not there is fine */
    TU_OK(db, seg_customer_set_attr(db, "c", "city", &nul));
    /* the name keeps its type */
    ck_assert_uint_eq(seg_attr_type(db, "city"), SEG_TYPE_STRING);
    v = v_int(SEG_TYPE_INT, 1);
    TU_RC(db, seg_customer_set_attr(db, "c", "city", &v), SEG_EINVAL);
    /* and can be set again */
    v = v_str("Rome");
    TU_OK(db, seg_customer_set_attr(db, "c", "city", &v));
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "city"));
    ck_assert_str_eq(got.s, "Rome");
}
END_TEST

START_TEST(attr_missing_and_unknown_customer)
{
    seg_value got;
    TU_OK(db, seg_customer_add(db, "c"));
    memset(&got, 0x55, sizeof got);
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "never-set"));
    ck_assert_uint_eq(got.type, SEG_TYPE_NULL);
    TU_RC(db, seg_customer_get_attr(&got, db, "ghost", "city"), SEG_ENOTFOUND);
    TU_MSG_HAS(db, "ghost");
    TU_RC(db, seg_customer_get_attr(NULL, db, "c", "city"), SEG_EINVAL);
    TU_RC(db, seg_customer_get_attr(&got, db, "c", NULL), SEG_EINVAL);
    TU_RC(db, seg_customer_get_attr(&got, db, NULL, "city"), SEG_EINVAL);
}
END_TEST

START_TEST(attr_per_customer)
{
    seg_value a = v_str("one"), b = v_str("two"), got;
    TU_OK(db, seg_customer_set_attr(db, "x", "label", &a));
    TU_OK(db, seg_customer_set_attr(db, "y", "label", &b));
    TU_OK(db, seg_customer_get_attr(&got, db, "x", "label"));
    ck_assert_str_eq(got.s, "one");
    TU_OK(db, seg_customer_get_attr(&got, db, "y", "label"));
    ck_assert_str_eq(got.s, "two");
}
END_TEST

START_TEST(attr_string_copied)
{
    char buf[16];
    seg_value v, got;
    strcpy(buf, "original");
    v = v_str(buf);
    TU_OK(db, seg_customer_set_attr(db, "c", "s", &v));
    strcpy(buf, "changed!");
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "s"));
    ck_assert_str_eq(got.s, "original");
}
END_TEST

START_TEST(attr_type_fixed_across_customers)
{
    seg_value i = v_int(SEG_TYPE_INT, 30), s = v_str("thirty"), got;
    uint64_t n;
    TU_OK(db, seg_customer_set_attr(db, "c1", "age", &i));
    n = seg_customer_count(db);
    TU_RC(db, seg_customer_set_attr(db, "c2", "age", &s), SEG_EINVAL);
    TU_MSG_HAS(db, "age");
    /* the failed call did not create c2 */
    ck_assert_uint_eq(seg_customer_count(db), n);
    TU_RC(db, seg_customer_get_attr(&got, db, "c2", "age"), SEG_ENOTFOUND);
    /* nor on the same customer */
    TU_RC(db, seg_customer_set_attr(db, "c1", "age", &s), SEG_EINVAL);
    TU_OK(db, seg_customer_get_attr(&got, db, "c1", "age"));
    ck_assert_uint_eq(got.type, SEG_TYPE_INT);
    ck_assert_int_eq(got.i, 30);
    /* every other type is refused as well */
    s = v_num(30.0);
    TU_RC(db, seg_customer_set_attr(db, "c1", "age", &s), SEG_EINVAL);
    s = v_int(SEG_TYPE_BOOL, 1);
    TU_RC(db, seg_customer_set_attr(db, "c1", "age", &s), SEG_EINVAL);
    s = v_int(SEG_TYPE_TIME, 30);
    TU_RC(db, seg_customer_set_attr(db, "c1", "age", &s), SEG_EINVAL);
    ck_assert_uint_eq(seg_attr_type(db, "age"), SEG_TYPE_INT);
}
END_TEST

START_TEST(attr_declare)
{
    seg_value v, got;
    TU_OK(db, seg_attr_declare(db, "ltv", SEG_TYPE_NUMBER));
    ck_assert_uint_eq(seg_attr_type(db, "ltv"), SEG_TYPE_NUMBER);
    TU_OK(db, seg_attr_declare(db, "ltv", SEG_TYPE_NUMBER)); /* same: no-op */
    TU_RC(db, seg_attr_declare(db, "ltv", SEG_TYPE_INT), SEG_EINVAL);
    TU_MSG_HAS(db, "ltv");
    ck_assert_uint_eq(seg_attr_type(db, "ltv"), SEG_TYPE_NUMBER);
    /* declaring creates no customer */
    ck_assert_uint_eq(seg_customer_count(db), 0);
    v = v_int(SEG_TYPE_INT, 3);
    TU_RC(db, seg_customer_set_attr(db, "c", "ltv", &v), SEG_EINVAL);
    ck_assert_uint_eq(seg_customer_count(db), 0);
    v = v_num(3.5);
    TU_OK(db, seg_customer_set_attr(db, "c", "ltv", &v));
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "ltv"));
    ck_assert(got.d == 3.5);
    /* a name set first cannot be declared with another type */
    v = v_str("x");
    TU_OK(db, seg_customer_set_attr(db, "c", "tag", &v));
    TU_OK(db, seg_attr_declare(db, "tag", SEG_TYPE_STRING));
    TU_RC(db, seg_attr_declare(db, "tag", SEG_TYPE_BOOL), SEG_EINVAL);
}
END_TEST

START_TEST(attr_declare_bad)
{
    char *longname = tu_repeat('n', SEG_ID_MAX + 1);
    TU_RC(db, seg_attr_declare(db, "x", SEG_TYPE_NULL), SEG_EINVAL);
    TU_RC(db, seg_attr_declare(db, "x", 6), SEG_EINVAL);
    TU_RC(db, seg_attr_declare(db, "x", 99), SEG_EINVAL);
    TU_RC(db, seg_attr_declare(db, "", SEG_TYPE_INT), SEG_EINVAL);
    TU_RC(db, seg_attr_declare(db, NULL, SEG_TYPE_INT), SEG_EINVAL);
    TU_RC(db, seg_attr_declare(db, longname, SEG_TYPE_INT), SEG_EINVAL);
    TU_RC(db, seg_attr_declare(db, "bad\xC3\x28", SEG_TYPE_INT), SEG_EINVAL);
    ck_assert_int_eq(seg_attr_declare(NULL, "x", SEG_TYPE_INT), SEG_EINVAL);
    ck_assert_uint_eq(seg_attr_type(db, "x"), SEG_TYPE_NULL);
    ck_assert_uint_eq(seg_attr_type(db, NULL), SEG_TYPE_NULL);
    free(longname);
}
END_TEST

/* a rejected set_attr leaves the old value and creates nothing */
static void expect_attr_rejected_code(const char *name, const seg_value *v, const char *what,
                                      int code)
{
    seg_value old = v_int(SEG_TYPE_INT, 11), got;
    uint64_t n;
    TU_OK(db, seg_customer_set_attr(db, "c", "keep", &old));
    n = seg_customer_count(db);
    TU_RC(db, seg_customer_set_attr(db, "c", name, v), code);
    if (what)
        TU_MSG_HAS(db, what);
    TU_RC(db, seg_customer_set_attr(db, "new-customer", name, v), code);
    ck_assert_uint_eq(seg_customer_count(db), n);
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "keep"));
    ck_assert_int_eq(got.i, 11);
}

static void expect_attr_rejected(const char *name, const seg_value *v, const char *what)
{
    expect_attr_rejected_code(name, v, what, SEG_EINVAL);
}

START_TEST(attr_number_nan)
{
    seg_value v = v_num(NAN), got;
    expect_attr_rejected("score", &v, "score");
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "score"));
    ck_assert_uint_eq(got.type, SEG_TYPE_NULL);
}
END_TEST

START_TEST(attr_number_inf)
{
    seg_value v = v_num(INFINITY), got;
    expect_attr_rejected("score", &v, "score");
    v = v_num(-INFINITY);
    expect_attr_rejected("score", &v, "score");
    /* a good value, then a bad one: the good one stays */
    v = v_num(1.5);
    TU_OK(db, seg_customer_set_attr(db, "c", "score", &v));
    v = v_num(INFINITY);
    TU_RC(db, seg_customer_set_attr(db, "c", "score", &v), SEG_EINVAL);
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "score"));
    ck_assert(got.d == 1.5);
}
END_TEST

START_TEST(attr_string_too_long)
{
    char *s = tu_repeat('s', SEG_ATTR_VALUE_MAX + 1);
    seg_value v = v_str(s), got;
    expect_attr_rejected("bio", &v, "bio");
    s[SEG_ATTR_VALUE_MAX] = '\0'; /* exactly the limit */
    TU_OK(db, seg_customer_set_attr(db, "c", "bio", &v));
    TU_OK(db, seg_customer_get_attr(&got, db, "c", "bio"));
    ck_assert_uint_eq(strlen(got.s), SEG_ATTR_VALUE_MAX);
    free(s);
}
END_TEST

START_TEST(attr_string_invalid_utf8)
{
    static const char *bad[] = { "ab\xC3\x28", "a\xE0\x80\xAF", "x\xED\xA0\x80", "abc\xE2\x82",
                                 "\xF4\x90\x80\x80", "\xFF" };
    size_t k;
    for (k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        seg_value v = v_str(bad[k]);
        expect_attr_rejected("name", &v, "name");
    }
}
END_TEST

START_TEST(attr_string_null)
{
    seg_value v = v_str(NULL);
    expect_attr_rejected("s", &v, NULL);
}
END_TEST

START_TEST(attr_bad_type)
{
    seg_value v = v_int(99, 1);
    expect_attr_rejected("t", &v, NULL);
    v.type = 6;
    expect_attr_rejected("t", &v, NULL);
}
END_TEST

START_TEST(attr_time_out_of_range)
{
    seg_value v = v_int(SEG_TYPE_TIME, SEG_TIME_MAX + 1);
    expect_attr_rejected_code("when", &v, "when", SEG_ERANGE);
    v.i = SEG_TIME_MIN - 1;
    expect_attr_rejected_code("when", &v, "when", SEG_ERANGE);
    v.i = INT64_MIN;
    expect_attr_rejected_code("when", &v, "when", SEG_ERANGE);
}
END_TEST

START_TEST(attr_bad_names_and_args)
{
    char *longname = tu_repeat('n', SEG_ID_MAX + 1);
    seg_value v = v_int(SEG_TYPE_INT, 1);
    expect_attr_rejected("", &v, NULL);
    expect_attr_rejected(longname, &v, NULL);
    expect_attr_rejected("bad\xED\xA0\x80", &v, NULL);
    TU_RC(db, seg_customer_set_attr(db, "c", NULL, &v), SEG_EINVAL);
    TU_RC(db, seg_customer_set_attr(db, "c", "n", NULL), SEG_EINVAL);
    TU_RC(db, seg_customer_set_attr(db, "", "n", &v), SEG_EINVAL);
    TU_MSG_HAS(db, "customer_id");
    TU_RC(db, seg_customer_set_attr(db, NULL, "n", &v), SEG_EINVAL);
    ck_assert_int_eq(seg_customer_set_attr(NULL, "c", "n", &v), SEG_EINVAL);
    ck_assert_uint_eq(seg_customer_count(db), 1);
    free(longname);
}
END_TEST

/* ======================================================================== */
/* consent                                                                   */
/* ======================================================================== */

START_TEST(consent_set_get)
{
    int st = -1;
    TU_OK(db, seg_customer_set_consent(db, "c", "email", SEG_CONSENT_GRANTED));
    TU_OK(db, seg_customer_set_consent(db, "c", "sms", SEG_CONSENT_DENIED));
    TU_OK(db, seg_customer_get_consent(&st, db, "c", "email"));
    ck_assert_int_eq(st, SEG_CONSENT_GRANTED);
    TU_OK(db, seg_customer_get_consent(&st, db, "c", "sms"));
    ck_assert_int_eq(st, SEG_CONSENT_DENIED);
    st = -1;
    TU_OK(db, seg_customer_get_consent(&st, db, "c", "push"));
    ck_assert_int_eq(st, SEG_CONSENT_UNKNOWN);
    /* change */
    TU_OK(db, seg_customer_set_consent(db, "c", "email", SEG_CONSENT_DENIED));
    TU_OK(db, seg_customer_get_consent(&st, db, "c", "email"));
    ck_assert_int_eq(st, SEG_CONSENT_DENIED);
    /* per customer */
    TU_OK(db, seg_customer_add(db, "d"));
    TU_OK(db, seg_customer_get_consent(&st, db, "d", "sms"));
    ck_assert_int_eq(st, SEG_CONSENT_UNKNOWN);
}
END_TEST

START_TEST(consent_forget)
{
    int st = -1;
    TU_OK(db, seg_customer_set_consent(db, "c", "email", SEG_CONSENT_GRANTED));
    TU_OK(db, seg_customer_set_consent(db, "c", "email", SEG_CONSENT_UNKNOWN));
    TU_OK(db, seg_customer_get_consent(&st, db, "c", "email"));
    ck_assert_int_eq(st, SEG_CONSENT_UNKNOWN);
    /* forgetting what was never recorded is fine */
    TU_OK(db, seg_customer_set_consent(db, "c", "fax", SEG_CONSENT_UNKNOWN));
    ck_assert_uint_eq(seg_customer_count(db), 1);
}
END_TEST

START_TEST(consent_bad_state)
{
    static const int bad[] = { 3, -1, 99, INT_MIN, INT_MAX };
    size_t k;
    int st;
    TU_OK(db, seg_customer_set_consent(db, "c", "email", SEG_CONSENT_GRANTED));
    for (k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        TU_RC(db, seg_customer_set_consent(db, "c", "email", bad[k]), SEG_EINVAL);
        TU_RC(db, seg_customer_set_consent(db, "new-one", "email", bad[k]), SEG_EINVAL);
    }
    TU_OK(db, seg_customer_get_consent(&st, db, "c", "email"));
    ck_assert_int_eq(st, SEG_CONSENT_GRANTED);
    ck_assert_uint_eq(seg_customer_count(db), 1);
}
END_TEST

START_TEST(consent_bad_channel_and_args)
{
    char *longname = tu_repeat('c', SEG_ID_MAX + 1);
    int st = 7;
    TU_RC(db, seg_customer_set_consent(db, "c", "", SEG_CONSENT_GRANTED), SEG_EINVAL);
    TU_MSG_HAS(db, "channel");
    TU_RC(db, seg_customer_set_consent(db, "c", longname, SEG_CONSENT_GRANTED), SEG_EINVAL);
    TU_MSG_HAS(db, "channel");
    TU_RC(db, seg_customer_set_consent(db, "c", "e\xC3\x28", SEG_CONSENT_GRANTED), SEG_EINVAL);
    TU_MSG_HAS(db, "channel");
    TU_RC(db, seg_customer_set_consent(db, "c", NULL, SEG_CONSENT_GRANTED), SEG_EINVAL);
    TU_RC(db, seg_customer_set_consent(db, "", "email", SEG_CONSENT_GRANTED), SEG_EINVAL);
    TU_MSG_HAS(db, "customer_id");
    ck_assert_uint_eq(seg_customer_count(db), 0);
    TU_RC(db, seg_customer_get_consent(&st, db, "ghost", "email"), SEG_ENOTFOUND);
    ck_assert_int_eq(st, 0);
    TU_OK(db, seg_customer_add(db, "c"));
    TU_RC(db, seg_customer_get_consent(NULL, db, "c", "email"), SEG_EINVAL);
    TU_RC(db, seg_customer_get_consent(&st, db, "c", NULL), SEG_EINVAL);
    ck_assert_int_eq(seg_customer_set_consent(NULL, "c", "email", SEG_CONSENT_GRANTED), SEG_EINVAL);
    free(longname);
}
END_TEST

/* ======================================================================== */
/* erase                                                                     */
/* ======================================================================== */

#define ER_N 8
static void erase_events(seg_event *ev)
{
    ev[0] = tu_purchase("x1", "victim", TU_DAYN(1), 1000, "vo1");
    ev[1] = tu_refund("x2", "victim", TU_DAYN(2), -100, "vo1");
    ev[2] = tu_engagement(NULL, "victim", TU_DAYN(3), "email_open");
    ev[3] = tu_purchase("y1", "other", TU_DAYN(1), 500, "oo1");
    ev[4] = tu_engagement(NULL, "other", TU_DAYN(4), "store_visit");
    ev[5] = tu_purchase(NULL, "third", TU_DAYN(2), 700, NULL);
    ev[6] = tu_purchase("x3", "victim", TU_DAYN(5), 300, NULL);
    ev[7] = tu_refund("y2", "other", TU_DAYN(5), -500, "oo1");
}

static void select_events(const seg_event *all, size_t n, const char *cust, seg_event *out,
                          size_t *nout)
{
    size_t k;
    *nout = 0;
    for (k = 0; k < n; k++)
        if (strcmp(all[k].customer_id, cust) == 0)
            out[(*nout)++] = all[k];
}

static int not_customer_cb(const seg_event_info *e, void *payload)
{
    ck_assert_msg(strcmp(e->customer_id, (const char *)payload) != 0,
                  "event %s of %s still stored", e->event_id, e->customer_id);
    return 0;
}

START_TEST(erase_customer)
{
    seg_event ev[ER_N], mine[ER_N], theirs[ER_N];
    size_t nmine, ntheirs;
    seg_value v = v_str("Oslo"), got;
    seg_customer_info victim_before = SEG_CUSTOMER_INFO_INIT, i = SEG_CUSTOMER_INFO_INIT;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    tu_snapshot before, after;
    uint64_t events_before, customers_before;
    int cs;
    size_t k, j;

    erase_events(ev);
    TU_OK(db, seg_event_ingest_batch(db, ev, ER_N, NULL, NULL));
    TU_OK(db, seg_customer_set_attr(db, "victim", "city", &v));
    TU_OK(db, seg_customer_set_consent(db, "victim", "email", SEG_CONSENT_GRANTED));
    TU_OK(db, seg_customer_set_attr(db, "other", "city", &v));
    TU_OK(db, seg_customer_set_consent(db, "other", "email", SEG_CONSENT_DENIED));
    select_events(ev, ER_N, "victim", mine, &nmine);
    select_events(ev, ER_N, "other", theirs, &ntheirs);
    ck_assert_uint_eq(nmine, 4);
    TU_GET(db, "victim", &victim_before);
    tu_snap_take(&before, db, 0);
    events_before = seg_event_count(db);
    customers_before = seg_customer_count(db);

    TU_OK(db, seg_customer_erase(db, "victim"));

    /* gone */
    TU_RC(db, seg_customer_get(&i, db, "victim"), SEG_ENOTFOUND);
    TU_RC(db, seg_customer_get_attr(&got, db, "victim", "city"), SEG_ENOTFOUND);
    TU_RC(db, seg_customer_get_consent(&cs, db, "victim", "email"), SEG_ENOTFOUND);
    TU_RC(db, seg_event_foreach(db, "victim", not_customer_cb, (void *)"victim"), SEG_ENOTFOUND);
    TU_OK(db, seg_event_foreach(db, NULL, not_customer_cb, (void *)"victim"));
    ck_assert_uint_eq(seg_event_count(db), events_before - nmine);
    ck_assert_uint_eq(seg_customer_count(db), customers_before - 1);

    /* everyone else exactly as before */
    tu_snap_take(&after, db, 0);
    ck_assert_uint_eq(after.n, before.n - 1);
    for (k = 0, j = 0; k < before.n; k++) {
        if (strcmp(before.c[k].id, "victim") == 0)
            continue;
        ck_assert_str_eq(after.c[j].id, before.c[k].id);
        TU_INFO_EQ(&after.c[j].info, &before.c[k].info);
        j++;
    }
    TU_OK(db, seg_customer_get_attr(&got, db, "other", "city"));
    ck_assert_str_eq(got.s, "Oslo");
    TU_OK(db, seg_customer_get_consent(&cs, db, "other", "email"));
    ck_assert_int_eq(cs, SEG_CONSENT_DENIED);

    /* re-importing the others: duplicates only */
    TU_OK(db, seg_event_ingest_batch(db, theirs, ntheirs, NULL, &st));
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_uint_eq(st.duplicates, ntheirs);
    ck_assert_uint_eq(seg_event_count(db), events_before - nmine);

    /* re-importing the erased customer's events stores them again */
    TU_OK(db, seg_event_ingest_batch(db, mine, nmine, NULL, &st));
    ck_assert_uint_eq(st.accepted, nmine);
    ck_assert_uint_eq(st.duplicates, 0);
    ck_assert_uint_eq(seg_event_count(db), events_before);
    TU_GET(db, "victim", &i);
    TU_INFO_EQ(&i, &victim_before);
    /* without the attributes and consent */
    TU_OK(db, seg_customer_get_attr(&got, db, "victim", "city"));
    ck_assert_uint_eq(got.type, SEG_TYPE_NULL);
    TU_OK(db, seg_customer_get_consent(&cs, db, "victim", "email"));
    ck_assert_int_eq(cs, SEG_CONSENT_UNKNOWN);
    tu_snap_free(&before);
    tu_snap_free(&after);
}
END_TEST

START_TEST(erase_forgets_event_ids)
{
    seg_event ev[ER_N], e;
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    erase_events(ev);
    TU_OK(db, seg_event_ingest_batch(db, ev, ER_N, NULL, NULL));
    TU_OK(db, seg_customer_erase(db, "victim"));
    /* the id x1 is free again: another customer may use it */
    e = tu_purchase("x1", "other", TU_DAYN(9), 42, NULL);
    TU_OK(db, seg_event_ingest(db, &e));
    TU_GET(db, "other", &i);
    ck_assert_int_eq(i.revenue, 542);
    /* the order vo1 is unknown */
    e = tu_refund("x9", "victim", TU_DAYN(9), -1, "vo1");
    TU_RC(db, seg_event_ingest(db, &e), SEG_ENOTFOUND);
    /* and free for another customer */
    e = tu_purchase("y9", "other", TU_DAYN(9), 10, "vo1");
    TU_OK(db, seg_event_ingest(db, &e));
}
END_TEST

START_TEST(erase_prospect)
{
    seg_value v = v_int(SEG_TYPE_BOOL, 1), got;
    TU_OK(db, seg_customer_set_attr(db, "lead", "newsletter", &v));
    TU_OK(db, seg_customer_add(db, "keep"));
    TU_OK(db, seg_customer_erase(db, "lead"));
    ck_assert_uint_eq(seg_customer_count(db), 1);
    TU_RC(db, seg_customer_get_attr(&got, db, "lead", "newsletter"), SEG_ENOTFOUND);
    /* a new customer of the same id starts empty */
    TU_OK(db, seg_customer_add(db, "lead"));
    TU_OK(db, seg_customer_get_attr(&got, db, "lead", "newsletter"));
    ck_assert_uint_eq(got.type, SEG_TYPE_NULL);
}
END_TEST

START_TEST(erase_errors)
{
    tu_snapshot before;
    TU_OK(db, seg_customer_add(db, "c"));
    tu_snap_take(&before, db, 0);
    TU_RC(db, seg_customer_erase(db, "ghost"), SEG_ENOTFOUND);
    TU_MSG_HAS(db, "ghost");
    TU_RC(db, seg_customer_erase(db, ""), SEG_EINVAL);
    TU_RC(db, seg_customer_erase(db, NULL), SEG_EINVAL);
    ck_assert_int_eq(seg_customer_erase(NULL, "c"), SEG_EINVAL);
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
}
END_TEST

START_TEST(erase_creation_order_of_others)
{
    visits v;
    memset(&v, 0, sizeof v);
    TU_OK(db, seg_customer_add(db, "one"));
    TU_OK(db, seg_customer_add(db, "two"));
    TU_OK(db, seg_customer_add(db, "three"));
    TU_OK(db, seg_customer_add(db, "four"));
    TU_OK(db, seg_customer_erase(db, "two"));
    TU_OK(db, seg_customer_foreach(db, 0, visit_cb, &v));
    ck_assert_uint_eq(v.n, 3);
    ck_assert_str_eq(v.id[0], "one");
    ck_assert_str_eq(v.id[1], "three");
    ck_assert_str_eq(v.id[2], "four");
}
END_TEST

/* ======================================================================== */
/* anonymize                                                                 */
/* ======================================================================== */

static void assert_anon_id(const char *id)
{
    size_t k;
    ck_assert_ptr_nonnull(id);
    ck_assert_msg(strncmp(id, "anon-", 5) == 0, "new id \"%s\" does not start with anon-", id);
    ck_assert_msg(strlen(id) == 37, "new id \"%s\" is not anon- and 32 hex digits", id);
    for (k = 5; k < 37; k++)
        ck_assert_msg(isxdigit((unsigned char)id[k]), "new id \"%s\": not hex at %zu", id, k);
}

START_TEST(anonymize_customer)
{
    seg_event ev[ER_N];
    seg_value v = v_str("Oslo"), got;
    seg_customer_info before_i = SEG_CUSTOMER_INFO_INIT, i = SEG_CUSTOMER_INFO_INIT;
    tu_ev_list before_ev, after_ev;
    char *id = NULL;
    int cs;
    uint64_t nev, ncust;
    size_t k;

    memset(&before_ev, 0, sizeof before_ev);
    memset(&after_ev, 0, sizeof after_ev);
    erase_events(ev);
    TU_OK(db, seg_event_ingest_batch(db, ev, ER_N, NULL, NULL));
    TU_OK(db, seg_customer_set_attr(db, "victim", "city", &v));
    TU_OK(db, seg_customer_set_consent(db, "victim", "email", SEG_CONSENT_GRANTED));
    TU_GET(db, "victim", &before_i);
    TU_OK(db, seg_event_foreach(db, "victim", tu_ev_collect_cb, &before_ev));
    nev = seg_event_count(db);
    ncust = seg_customer_count(db);

    TU_OK(db, seg_customer_anonymize(db, "victim", &id));
    assert_anon_id(id);

    TU_RC(db, seg_customer_get(&i, db, "victim"), SEG_ENOTFOUND);
    ck_assert_uint_eq(seg_event_count(db), nev);
    ck_assert_uint_eq(seg_customer_count(db), ncust);
    TU_GET(db, id, &i);
    ck_assert_str_eq(i.customer_id, id);
    TU_INFO_EQ(&i, &before_i);

    /* the same events under the new id */
    TU_OK(db, seg_event_foreach(db, id, tu_ev_collect_cb, &after_ev));
    ck_assert_uint_eq(after_ev.n, before_ev.n);
    for (k = 0; k < before_ev.n; k++) {
        const tu_ev_copy *a = &before_ev.e[k], *b = &after_ev.e[k];
        ck_assert_str_eq(b->customer_id, id);
        ck_assert_uint_eq(b->kind, a->kind);
        ck_assert_int_eq(b->ts, a->ts);
        ck_assert_int_eq(b->amount, a->amount);
        ck_assert_int_eq(b->quantity, a->quantity);
        ck_assert_str_eq(b->refund_of, a->refund_of);
        ck_assert_str_eq(b->name, a->name);
        if (a->event_id[0] == '~') {
            /* derived ids change with the customer id */
            ck_assert_msg(tu_is_derived_id(b->event_id), "\"%s\"", b->event_id);
            ck_assert_str_ne(b->event_id, a->event_id);
        } else {
            ck_assert_str_eq(b->event_id, a->event_id);
        }
    }

    /* no attributes, no consent */
    TU_OK(db, seg_customer_get_attr(&got, db, id, "city"));
    ck_assert_uint_eq(got.type, SEG_TYPE_NULL);
    cs = -1;
    TU_OK(db, seg_customer_get_consent(&cs, db, id, "email"));
    ck_assert_int_eq(cs, SEG_CONSENT_UNKNOWN);
    TU_RC(db, seg_customer_get_attr(&got, db, "victim", "city"), SEG_ENOTFOUND);

    /* the others are untouched */
    TU_GET(db, "other", &i);
    ck_assert_int_eq(i.revenue, 500);
    ck_assert_int_eq(i.refunds, -500);

    seg_free(id);
    tu_ev_list_free(&before_ev);
    tu_ev_list_free(&after_ev);
}
END_TEST

START_TEST(anonymize_two_ids_differ)
{
    seg_event a = tu_purchase(NULL, "twin-a", TU_D0, 100, NULL);
    seg_event b = tu_purchase(NULL, "twin-b", TU_D0, 100, NULL);
    char *ia = NULL, *ib = NULL;
    TU_OK(db, seg_event_ingest(db, &a));
    TU_OK(db, seg_event_ingest(db, &b));
    TU_OK(db, seg_customer_anonymize(db, "twin-a", &ia));
    TU_OK(db, seg_customer_anonymize(db, "twin-b", &ib));
    assert_anon_id(ia);
    assert_anon_id(ib);
    ck_assert_str_ne(ia, ib);
    ck_assert_uint_eq(seg_customer_count(db), 2);
    ck_assert_uint_eq(seg_event_count(db), 2);
    /* an anonymized customer can be anonymized again */
    {
        char *ic = NULL;
        TU_OK(db, seg_customer_anonymize(db, ia, &ic));
        assert_anon_id(ic);
        ck_assert_str_ne(ic, ia);
        seg_free(ic);
    }
    seg_free(ia);
    seg_free(ib);
}
END_TEST

START_TEST(anonymize_without_out)
{
    seg_event e = tu_purchase("k1", "c", TU_D0, 100, NULL);
    visits v;
    memset(&v, 0, sizeof v);
    TU_OK(db, seg_event_ingest(db, &e));
    TU_OK(db, seg_customer_anonymize(db, "c", NULL));
    TU_OK(db, seg_customer_foreach(db, 0, visit_cb, &v));
    ck_assert_uint_eq(v.n, 1);
    assert_anon_id(v.id[0]);
    ck_assert_int_eq(v.info[0].revenue, 100);
}
END_TEST

START_TEST(anonymize_prospect)
{
    seg_value val = v_int(SEG_TYPE_INT, 3);
    char *id = NULL;
    TU_OK(db, seg_customer_set_attr(db, "lead", "n", &val));
    TU_OK(db, seg_customer_anonymize(db, "lead", &id));
    assert_anon_id(id);
    ck_assert_uint_eq(seg_customer_count(db), 1);
    assert_prospect(id);
    seg_free(id);
}
END_TEST

START_TEST(anonymize_errors)
{
    char *id = (char *)&id;
    tu_snapshot before;
    TU_OK(db, seg_customer_add(db, "c"));
    tu_snap_take(&before, db, 0);
    TU_RC(db, seg_customer_anonymize(db, "ghost", &id), SEG_ENOTFOUND);
    ck_assert_ptr_null(id);
    id = (char *)&id;
    TU_RC(db, seg_customer_anonymize(db, "", &id), SEG_EINVAL);
    ck_assert_ptr_null(id);
    id = (char *)&id;
    TU_RC(db, seg_customer_anonymize(db, NULL, &id), SEG_EINVAL);
    ck_assert_ptr_null(id);
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
}
END_TEST

/* ======================================================================== */

/* Regression: erasing a customer with a multi-line order left the order in
 * the order table; the order id must be free for another customer after. */
START_TEST(erase_frees_multiline_order_ids)
{
    seg_event a1 = tu_purchase("a1", "A", TU_DAYN(1), 100, "O1");
    seg_event a2 = tu_purchase("a2", "A", TU_DAYN(1), 50, "O1");
    seg_event b1 = tu_purchase("b1", "B", TU_DAYN(2), 70, "O1");
    seg_customer_info info = SEG_CUSTOMER_INFO_INIT;
    TU_OK(db, seg_event_ingest(db, &a1));
    TU_OK(db, seg_event_ingest(db, &a2));
    TU_RC(db, seg_event_ingest(db, &b1), SEG_EINVAL); /* O1 is A's */
    TU_OK(db, seg_customer_erase(db, "A"));
    TU_OK(db, seg_event_ingest(db, &b1));
    TU_OK(db, seg_customer_get(&info, db, "B"));
    ck_assert_uint_eq(info.orders, 1);
}
END_TEST

/* Regression: after anonymization a refund naming an order-less purchase by
 * its derived id still counts against that purchase under its new id. */
static int first_id_cb(const seg_event_info *e, void *payload)
{
    if (e->kind == SEG_EVENT_PURCHASE)
        snprintf((char *)payload, 64, "%s", e->event_id);
    return 0;
}

START_TEST(anonymize_relinks_refunds_of_derived_purchases)
{
    seg_event p = tu_purchase(NULL, "alice", TU_DAYN(1), 100, NULL);
    char pid[64] = "", nid_pid[64] = "";
    char *nid = NULL;
    seg_customer_info info = SEG_CUSTOMER_INFO_INIT;
    TU_OK(db, seg_event_ingest(db, &p));
    TU_OK(db, seg_event_foreach(db, "alice", first_id_cb, pid));
    ck_assert_int_eq(pid[0], '~');
    seg_event r = tu_refund(NULL, "alice", TU_DAYN(2), -100, pid);
    TU_OK(db, seg_event_ingest(db, &r));
    TU_OK(db, seg_customer_anonymize(db, "alice", &nid));
    TU_OK(db, seg_event_foreach(db, nid, first_id_cb, nid_pid));
    ck_assert_str_ne(pid, nid_pid);
    /* the purchase is fully refunded: a further refund is refused */
    seg_event r2 = tu_refund("r2", nid, TU_DAYN(3), -1, nid_pid);
    TU_RC(db, seg_event_ingest(db, &r2), SEG_EINVAL);
    TU_MSG_HAS(db, "exceeds");
    TU_OK(db, seg_customer_get(&info, db, nid));
    ck_assert_int_eq(info.net_revenue, 0);
    seg_free(nid);
}
END_TEST

/* Regression: growing the attribute-type array after a failed growth. */
START_TEST(attr_types_grow_after_enomem)
{
    tu_alloc ta;
    seg_allocator al;
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    seg_db *d = NULL;
    char name[32];
    long fails = 0;
    memset(&ta, 0, sizeof ta);
    ta.fail_after = -1;
    al = tu_allocator(&ta);
    o.allocator = &al;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_OK);
    for (int k = 0; k < 100; k++) {
        snprintf(name, sizeof name, "a%d", k);
        /* every few declarations, make one allocation fail, then retry */
        if (k % 7 == 3) {
            ta.fail_after = (long)ta.attempts + 1;
            if (seg_attr_declare(d, name, SEG_TYPE_INT) != SEG_OK)
                fails++;
            ta.fail_after = -1;
        }
        TU_OK(d, seg_attr_declare(d, name, SEG_TYPE_INT));
    }
    for (int k = 0; k < 100; k++) {
        snprintf(name, sizeof name, "a%d", k);
        ck_assert_uint_eq(seg_attr_type(d, name), SEG_TYPE_INT);
    }
    ck_assert_int_ge(fails, 1);
    seg_db_close(d);
    ck_assert_int_eq(ta.live_blocks, 0);
}
END_TEST

Suite *customer_suite(void)
{
    Suite *s = suite_create("customer");
    TCase *tr = tcase_create("regressions");
    tcase_add_checked_fixture(tr, setup, teardown);
    tcase_add_test(tr, erase_frees_multiline_order_ids);
    tcase_add_test(tr, anonymize_relinks_refunds_of_derived_purchases);
    tcase_add_test(tr, attr_types_grow_after_enomem);
    suite_add_tcase(s, tr);
    TCase *tc;

    tc = tcase_create("aggregates");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, aggregates_exact);
    tcase_add_test(tc, aggregates_exact_batch);
    tcase_add_test(tc, aggregates_incremental);
    tcase_add_test(tc, multi_line_order_counts_once);
    tcase_add_test(tc, same_order_id_two_customers);
    tcase_add_test(tc, orderless_purchase_joined_by_order_id);
    tcase_add_test(tc, zero_amount_purchase_not_counted);
    tcase_add_test(tc, purchase_days_negative_times);
    tcase_add_test(tc, purchase_days_extreme_times);
    tcase_add_test(tc, full_refund_keeps_order);
    tcase_add_test(tc, get_not_found);
    tcase_add_test(tc, get_bad_args);
    tcase_add_test(tc, info_struct_size_no_overrun);
    tcase_add_test(tc, info_struct_size_larger);
    tcase_add_test(tc, info_struct_size_too_small);
    suite_add_tcase(s, tc);

    tc = tcase_create("prospects");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, prospect_via_add);
    tcase_add_test(tc, add_existing_customer_noop);
    tcase_add_test(tc, prospect_with_engagement_only);
    tcase_add_test(tc, prospect_via_attribute);
    tcase_add_test(tc, prospect_via_consent);
    tcase_add_test(tc, add_bad_ids);
    suite_add_tcase(s, tc);

    tc = tcase_create("foreach");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, foreach_creation_order);
    tcase_add_test(tc, foreach_sorted);
    tcase_add_test(tc, foreach_early_stop);
    tcase_add_test(tc, foreach_empty_and_errors);
    tcase_add_test(tc, as_of_basic);
    tcase_add_test(tc, as_of_boundary_is_exclusive);
    tcase_add_test(tc, as_of_before_everything);
    tcase_add_test(tc, as_of_after_everything_equals_foreach);
    tcase_add_test(tc, as_of_early_stop_and_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("attributes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, attr_each_type);
    tcase_add_test(tc, attr_extreme_values);
    tcase_add_test(tc, attr_overwrite);
    tcase_add_test(tc, attr_remove);
    tcase_add_test(tc, attr_missing_and_unknown_customer);
    tcase_add_test(tc, attr_per_customer);
    tcase_add_test(tc, attr_string_copied);
    tcase_add_test(tc, attr_type_fixed_across_customers);
    tcase_add_test(tc, attr_declare);
    tcase_add_test(tc, attr_declare_bad);
    tcase_add_test(tc, attr_number_nan);
    tcase_add_test(tc, attr_number_inf);
    tcase_add_test(tc, attr_string_too_long);
    tcase_add_test(tc, attr_string_invalid_utf8);
    tcase_add_test(tc, attr_string_null);
    tcase_add_test(tc, attr_bad_type);
    tcase_add_test(tc, attr_time_out_of_range);
    tcase_add_test(tc, attr_bad_names_and_args);
    suite_add_tcase(s, tc);

    tc = tcase_create("consent");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, consent_set_get);
    tcase_add_test(tc, consent_forget);
    tcase_add_test(tc, consent_bad_state);
    tcase_add_test(tc, consent_bad_channel_and_args);
    suite_add_tcase(s, tc);

    tc = tcase_create("erase");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, erase_customer);
    tcase_add_test(tc, erase_forgets_event_ids);
    tcase_add_test(tc, erase_prospect);
    tcase_add_test(tc, erase_errors);
    tcase_add_test(tc, erase_creation_order_of_others);
    suite_add_tcase(s, tc);

    tc = tcase_create("anonymize");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, anonymize_customer);
    tcase_add_test(tc, anonymize_two_ids_differ);
    tcase_add_test(tc, anonymize_without_out);
    tcase_add_test(tc, anonymize_prospect);
    tcase_add_test(tc, anonymize_errors);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(customer_suite());
    int failures;
    srunner_run_all(sr, CK_ENV);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures ? 1 : 0;
}
