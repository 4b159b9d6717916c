/*
 * tests/check_event.c: event ingestion: each kind, every kind of bad input,
 * idempotency, out-of-order arrival, batches (atomic and per-event),
 * statistics and iteration.  Public API only.
 */
#include "testutil.h"

#include <limits.h>

Suite *event_suite(void);

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

/* A known state for the bad-input tests:
 *   c1: order o1 = two lines 1000 + 500, order o2 = 300, an engagement
 *   c2: order o9 = 800, refunded 100
 *   p1: a prospect */
#define SEED_EVENTS 6
static void seed(seg_db *d)
{
    seg_event ev[SEED_EVENTS];
    ev[0] = tu_purchase("s1", "c1", TU_DAYN(1) + 36000, 1000, "o1");
    ev[1] = tu_purchase("s2", "c1", TU_DAYN(1) + 36000, 500, "o1");
    ev[2] = tu_purchase("s3", "c1", TU_DAYN(2), 300, "o2");
    ev[3] = tu_engagement("s4", "c1", TU_DAYN(2) + 5, "email_open");
    ev[4] = tu_purchase("s5", "c2", TU_DAYN(3), 800, "o9");
    ev[5] = tu_refund("s6", "c2", TU_DAYN(4), -100, "o9");
    TU_OK(d, seg_event_ingest_batch(d, ev, SEED_EVENTS, NULL, NULL));
    TU_OK(d, seg_customer_add(d, "p1"));
    ck_assert_uint_eq(seg_event_count(d), SEED_EVENTS);
    ck_assert_uint_eq(seg_customer_count(d), 3);
}

static void setup_seeded(void)
{
    setup();
    seed(db);
}

/* Ingest `e` alone and through an atomic batch; both must fail with
 * `code`, name `what` in the message and change nothing. */
static void expect_rejected_ex(const seg_event *e, int code, const char *what, int in_batch)
{
    tu_snapshot before;
    seg_event batch[3];
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;

    tu_snap_take(&before, db, 0);
    TU_RC(db, seg_event_ingest(db, e), code);
    ck_assert_int_eq(seg_errcode(db), code);
    if (what)
        TU_MSG_HAS(db, what);
    TU_UNCHANGED(db, &before);
    if (!in_batch) {
        tu_snap_free(&before);
        return;
    }

    /* the same event in the middle of an atomic batch of new events */
    batch[0] = tu_purchase("fresh-1", "fresh-customer", TU_DAYN(9), 100, NULL);
    batch[1] = *e;
    batch[2] = tu_purchase("fresh-2", "c1", TU_DAYN(9), 100, NULL);
    st.accepted = st.duplicates = st.rejected = 77;
    TU_RC(db, seg_event_ingest_batch(db, batch, 3, NULL, &st), code);
    if (what)
        TU_MSG_HAS(db, what);
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_uint_eq(st.duplicates, 0);
    ck_assert_uint_eq(st.rejected, 0);
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
}

static void expect_rejected(const seg_event *e, int code, const char *what)
{
    expect_rejected_ex(e, code, what, 1);
}

/* ======================================================================== */
/* each kind                                                                 */
/* ======================================================================== */

START_TEST(ingest_purchase)
{
    seg_event e = tu_purchase("p-1", "alice", TU_D0 + 100, 1999, "order-1");
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    e.quantity = 3;
    e.channel = "web";
    e.category = "shoes";
    e.sku = "sku-42";
    TU_OK(db, seg_event_ingest(db, &e));
    ck_assert_uint_eq(seg_event_count(db), 1);
    ck_assert_uint_eq(seg_customer_count(db), 1);
    TU_GET(db, "alice", &i);
    ck_assert_uint_eq(i.orders, 1);
    ck_assert_int_eq(i.revenue, 1999);
    ck_assert_int_eq(i.net_revenue, 1999);
    ck_assert_int_eq(i.units, 3);
    ck_assert_uint_eq(i.events, 1);
    ck_assert_int_eq(i.first_purchase, TU_D0 + 100);
}
END_TEST

START_TEST(ingest_refund)
{
    seg_event p = tu_purchase("p-1", "alice", TU_D0, 1000, "order-1");
    seg_event r = tu_refund("r-1", "alice", TU_D0 + 10, -250, "order-1");
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    r.quantity = 1;
    TU_OK(db, seg_event_ingest(db, &p));
    TU_OK(db, seg_event_ingest(db, &r));
    ck_assert_uint_eq(seg_event_count(db), 2);
    TU_GET(db, "alice", &i);
    ck_assert_int_eq(i.revenue, 1000);
    ck_assert_int_eq(i.refunds, -250);
    ck_assert_int_eq(i.net_revenue, 750);
    ck_assert_int_eq(i.units, 0);
    ck_assert_uint_eq(i.orders, 1);
}
END_TEST

START_TEST(ingest_refund_without_order)
{
    seg_event r = tu_refund("r-1", "bob", TU_D0, -5000, NULL);
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    /* an unreferenced refund is not limited by any order */
    TU_OK(db, seg_event_ingest(db, &r));
    TU_GET(db, "bob", &i);
    ck_assert_int_eq(i.refunds, -5000);
    ck_assert_int_eq(i.net_revenue, -5000);
    ck_assert_int_eq(i.revenue, 0);
    ck_assert_uint_eq(i.orders, 0);
}
END_TEST

START_TEST(ingest_engagement)
{
    seg_event e = tu_engagement("g-1", "carol", TU_D0, "email_open");
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    TU_OK(db, seg_event_ingest(db, &e));
    ck_assert_uint_eq(seg_event_count(db), 1);
    TU_GET(db, "carol", &i);
    ck_assert_uint_eq(i.engagements, 1);
    ck_assert_uint_eq(i.events, 1);
    ck_assert_uint_eq(i.orders, 0);
    ck_assert_int_eq(i.revenue, 0);
    ck_assert_int_eq(i.first_seen, TU_D0);
    ck_assert_int_eq(i.last_seen, TU_D0);
}
END_TEST

START_TEST(ingest_limits_accepted)
{
    seg_event e;
    e = tu_purchase("max-amount", "lim", TU_D0, SEG_AMOUNT_MAX, NULL);
    TU_OK(db, seg_event_ingest(db, &e));
    e = tu_refund("max-refund", "lim", TU_D0, -SEG_AMOUNT_MAX, NULL);
    TU_OK(db, seg_event_ingest(db, &e));
    e = tu_purchase("min-time", "lim", SEG_TIME_MIN, 1, NULL);
    TU_OK(db, seg_event_ingest(db, &e));
    e = tu_purchase("max-time", "lim", SEG_TIME_MAX, 1, NULL);
    TU_OK(db, seg_event_ingest(db, &e));
    e = tu_purchase("max-qty", "lim", TU_D0, 1, NULL);
    e.quantity = SEG_QUANTITY_MAX;
    TU_OK(db, seg_event_ingest(db, &e));
    e = tu_purchase("zero-amount", "lim", TU_D0, 0, NULL);
    TU_OK(db, seg_event_ingest(db, &e));
    ck_assert_uint_eq(seg_event_count(db), 6);
}
END_TEST

START_TEST(ingest_utf8_ids_accepted)
{
    /* 2-, 3- and 4-byte sequences, U+FFFD, U+10FFFF */
    static const char *ids[] = { "caf\xC3\xA9", "\xE2\x82\xAC-euro", "smile-\xF0\x9F\x98\x80",
                                 "\xEF\xBF\xBD", "\xF4\x8F\xBF\xBF" };
    size_t k;
    for (k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        seg_event e = tu_purchase(ids[k], ids[k], TU_D0, 10, ids[k]);
        seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
        e.channel = ids[k];
        e.category = ids[k];
        e.sku = ids[k];
        TU_OK(db, seg_event_ingest(db, &e));
        TU_GET(db, ids[k], &i);
        ck_assert_str_eq(i.customer_id, ids[k]);
    }
    ck_assert_uint_eq(seg_customer_count(db), sizeof ids / sizeof ids[0]);
}
END_TEST

/* ======================================================================== */
/* bad ids: every id field x every problem                                   */
/* ======================================================================== */

enum id_field { F_event_id, F_customer_id, F_order_id, F_channel, F_category, F_sku,
                F_refund_of, F_name };
static const char *const field_names[] = { "event_id", "customer_id", "order_id", "channel",
                                           "category", "sku", "refund_of", "name" };

enum id_problem { P_empty, P_too_long, P_bad_continuation, P_overlong, P_surrogate,
                  P_truncated, P_above_max, P_control };

static char *bad_value(int problem)
{
    switch (problem) {
    case P_empty:            return tu_repeat('x', 0);
    case P_too_long:         return tu_repeat('a', SEG_ID_MAX + 1);
    case P_bad_continuation: return strcpy(tu_repeat(' ', 8), "ab\xC3\x28" "cd");
    case P_overlong:         return strcpy(tu_repeat(' ', 8), "a\xE0\x80\xAF" "b");
    case P_surrogate:        return strcpy(tu_repeat(' ', 8), "x\xED\xA0\x80y");
    case P_truncated:        return strcpy(tu_repeat(' ', 8), "abc\xE2\x82");
    case P_above_max:        return strcpy(tu_repeat(' ', 8), "\xF4\x90\x80\x80");
    default:                 return strcpy(tu_repeat(' ', 8), "a\x01z");
    }
}

/* a valid event that uses `field`, to be spoiled */
static seg_event event_using(int field)
{
    seg_event e;
    switch (field) {
    case F_refund_of:
        e = tu_refund("n1", "c1", TU_DAYN(5), -100, "o1");
        break;
    case F_name:
        e = tu_engagement("n1", "c1", TU_DAYN(5), "email_open");
        break;
    default:
        e = tu_purchase("n1", "c1", TU_DAYN(5), 700, "o5");
        e.channel = "web";
        e.category = "shoes";
        e.sku = "sku-1";
        break;
    }
    return e;
}

static void set_field(seg_event *e, int field, const char *v)
{
    switch (field) {
    case F_event_id:    e->event_id = v; break;
    case F_customer_id: e->customer_id = v; break;
    case F_order_id:    e->order_id = v; break;
    case F_channel:     e->channel = v; break;
    case F_category:    e->category = v; break;
    case F_sku:         e->sku = v; break;
    case F_refund_of:   e->refund_of = v; break;
    default:            e->name = v; break;
    }
}

static void check_bad_id(int field, int problem)
{
    char *v = bad_value(problem);
    seg_event e = event_using(field);
    /* the unspoiled event is fine (checked on a throw-away db) */
    {
        seg_db *d2 = NULL;
        seg_event ok = e;
        ck_assert_int_eq(seg_db_open(&d2, ":memory:", NULL), SEG_OK);
        seed(d2);
        TU_OK(d2, seg_event_ingest(d2, &ok));
        seg_db_close(d2);
    }
    set_field(&e, field, v);
    expect_rejected(&e, SEG_EINVAL, field_names[field]);
    free(v);
}

#define BAD_ID_PROBLEMS(X, f) X(f, empty) X(f, too_long) X(f, bad_continuation) \
    X(f, overlong) X(f, surrogate) X(f, truncated) X(f, above_max)
#define BAD_ID_FIELDS(Y) Y(event_id) Y(customer_id) Y(order_id) Y(channel) Y(category) \
    Y(sku) Y(refund_of) Y(name)

#define DEF_BAD_ID(f, p) \
    START_TEST(bad_##f##_##p) { check_bad_id(F_##f, P_##p); } END_TEST
#define DEF_BAD_ID_FIELD(f) BAD_ID_PROBLEMS(DEF_BAD_ID, f)
BAD_ID_FIELDS(DEF_BAD_ID_FIELD)

/* exactly SEG_ID_MAX bytes is fine for every field */
static void check_max_len_id(int field)
{
    char *v = tu_repeat('m', SEG_ID_MAX);
    seg_event e = event_using(field);
    if (field == F_refund_of) {
        seg_event p = tu_purchase("long-order-line", "c1", TU_DAYN(5), 1000, v);
        TU_OK(db, seg_event_ingest(db, &p));
    }
    set_field(&e, field, v);
    TU_OK(db, seg_event_ingest(db, &e));
    ck_assert_uint_eq(seg_event_count(db), SEED_EVENTS + 1 + (field == F_refund_of));
    free(v);
}

#define DEF_MAX_LEN(f) START_TEST(max_len_##f) { check_max_len_id(F_##f); } END_TEST
BAD_ID_FIELDS(DEF_MAX_LEN)

START_TEST(bad_event_id_tilde)
{
    seg_event e = tu_purchase("~abc", "c1", TU_DAYN(5), 700, NULL);
    expect_rejected(&e, SEG_EINVAL, "event_id");
}
END_TEST

START_TEST(bad_event_id_tilde_derived_form)
{
    /* even an id that looks exactly like a derived one */
    seg_event e = tu_purchase("~0123456789abcdef0123456789abcdef", "c1", TU_DAYN(5), 700, NULL);
    expect_rejected(&e, SEG_EINVAL, "event_id");
}
END_TEST

START_TEST(bad_customer_id_null)
{
    seg_event e = tu_purchase("n1", NULL, TU_DAYN(5), 700, NULL);
    expect_rejected(&e, SEG_EINVAL, "customer_id");
}
END_TEST

START_TEST(bad_customer_id_control_char)
{
    seg_event e = event_using(F_customer_id);
    char *v = bad_value(P_control);
    e.customer_id = v;
    expect_rejected(&e, SEG_EINVAL, "customer_id");
    free(v);
}
END_TEST

/* ======================================================================== */
/* NULL pointers and struct versions                                         */
/* ======================================================================== */

START_TEST(null_db)
{
    seg_event e = tu_purchase("n1", "c1", TU_D0, 1, NULL);
    ck_assert_int_eq(seg_event_ingest(NULL, &e), SEG_EINVAL);
    ck_assert_int_eq(seg_event_ingest_batch(NULL, &e, 1, NULL, NULL), SEG_EINVAL);
}
END_TEST

START_TEST(null_event)
{
    tu_snapshot before;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    tu_snap_take(&before, db, 0);
    TU_RC(db, seg_event_ingest(db, NULL), SEG_EINVAL);
    ck_assert_msg(seg_errmsg(db)[0] != '\0', "no message");
    TU_RC(db, seg_event_ingest_batch(db, NULL, 3, NULL, &st), SEG_EINVAL);
    ck_assert_uint_eq(st.accepted, 0);
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
}
END_TEST

START_TEST(struct_size_too_small)
{
    static const size_t sizes[] = { 0, sizeof(size_t), offsetof(seg_event, name),
                                    sizeof(seg_event) - 1 };
    size_t k;
    for (k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        seg_event e = tu_purchase("n1", "c1", TU_DAYN(5), 700, NULL);
        e.struct_size = sizes[k];
        /* in a batch every event has the first one's size: test alone */
        expect_rejected_ex(&e, SEG_EVERSION, NULL, 0);
    }
}
END_TEST

START_TEST(batch_struct_size_too_small)
{
    seg_event e = tu_purchase("n1", "c1", TU_DAYN(5), 700, NULL);
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    tu_snapshot before;
    tu_snap_take(&before, db, 0);
    e.struct_size = 0;
    TU_RC(db, seg_event_ingest_batch(db, &e, 1, NULL, &st), SEG_EVERSION);
    ck_assert_uint_eq(st.accepted, 0);
    e.struct_size = offsetof(seg_event, name);
    TU_RC(db, seg_event_ingest_batch(db, &e, 1, NULL, &st), SEG_EVERSION);
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
}
END_TEST

typedef struct future_event {
    seg_event e;
    const char *future_string;
    int64_t future_number;
} future_event;

START_TEST(struct_size_larger_nonzero_tail)
{
    future_event fe;
    tu_snapshot before;
    memset(&fe, 0, sizeof fe);
    fe.e = tu_purchase("n1", "c1", TU_DAYN(5), 700, NULL);
    fe.e.struct_size = sizeof fe;
    fe.future_number = 1;
    tu_snap_take(&before, db, 0);
    TU_RC(db, seg_event_ingest(db, &fe.e), SEG_EVERSION);
    TU_UNCHANGED(db, &before);
    fe.future_number = 0;
    fe.future_string = "x";
    TU_RC(db, seg_event_ingest(db, &fe.e), SEG_EVERSION);
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
}
END_TEST

START_TEST(struct_size_larger_zero_tail)
{
    future_event fe;
    memset(&fe, 0, sizeof fe);
    fe.e = tu_purchase("n1", "c1", TU_DAYN(5), 700, NULL);
    fe.e.struct_size = sizeof fe;
    TU_OK(db, seg_event_ingest(db, &fe.e));
    ck_assert_uint_eq(seg_event_count(db), SEED_EVENTS + 1);
}
END_TEST

/* ======================================================================== */
/* bad numbers, kinds, refunds                                               */
/* ======================================================================== */

START_TEST(amount_over_max)
{
    seg_event e = tu_purchase("n1", "c1", TU_DAYN(5), SEG_AMOUNT_MAX + 1, NULL);
    expect_rejected(&e, SEG_ERANGE, "amount");
}
END_TEST

START_TEST(amount_int64_max)
{
    seg_event e = tu_purchase("n1", "c1", TU_DAYN(5), INT64_MAX, NULL);
    expect_rejected(&e, SEG_ERANGE, "amount");
}
END_TEST

START_TEST(amount_int64_min)
{
    seg_event e = tu_refund("n1", "c1", TU_DAYN(5), INT64_MIN, NULL);
    expect_rejected(&e, SEG_ERANGE, "amount");
}
END_TEST

START_TEST(refund_amount_below_min)
{
    seg_event e = tu_refund("n1", "c1", TU_DAYN(5), -SEG_AMOUNT_MAX - 1, NULL);
    expect_rejected(&e, SEG_ERANGE, "amount");
}
END_TEST

START_TEST(purchase_negative_amount)
{
    seg_event e = tu_purchase("n1", "c1", TU_DAYN(5), -1, NULL);
    expect_rejected(&e, SEG_EINVAL, "amount");
}
END_TEST

START_TEST(refund_positive_amount)
{
    seg_event e = tu_refund("n1", "c1", TU_DAYN(5), 100, "o1");
    expect_rejected(&e, SEG_EINVAL, "amount");
}
END_TEST

START_TEST(refund_zero_amount)
{
    seg_event e = tu_refund("n1", "c1", TU_DAYN(5), 0, "o1");
    expect_rejected(&e, SEG_EINVAL, "amount");
}
END_TEST

START_TEST(engagement_with_amount)
{
    seg_event e = tu_engagement("n1", "c1", TU_DAYN(5), "email_open");
    e.amount = 100;
    expect_rejected(&e, SEG_EINVAL, "amount");
}
END_TEST

START_TEST(revenue_overflow)
{
    /* 9223 purchases of SEG_AMOUNT_MAX fit in int64_t; one more does not */
    enum { N = 9223 };
    seg_event *ev = (seg_event *)calloc(N, sizeof *ev);
    seg_event last;
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    tu_snapshot before;
    size_t k;
    ck_assert_ptr_nonnull(ev);
    for (k = 0; k < N; k++)
        ev[k] = tu_purchase(NULL, "whale", TU_D0 + (int64_t)k, SEG_AMOUNT_MAX, NULL);
    TU_OK(db, seg_event_ingest_batch(db, ev, N, NULL, NULL));
    TU_GET(db, "whale", &i);
    ck_assert_int_eq(i.revenue, (int64_t)N * SEG_AMOUNT_MAX);
    tu_snap_take(&before, db, 0);
    last = tu_purchase("one-too-many", "whale", TU_D0 + N, SEG_AMOUNT_MAX, NULL);
    TU_RC(db, seg_event_ingest(db, &last), SEG_ERANGE);
    ck_assert_msg(strstr(seg_errmsg(db), "amount") || strstr(seg_errmsg(db), "revenue")
                  || strstr(seg_errmsg(db), "overflow"),
                  "message does not name the overflow: %s", seg_errmsg(db));
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
    free(ev);
}
END_TEST

START_TEST(refunds_overflow)
{
    /* refunds without refund_of are not limited by an order, but their sum
     * must not wrap either */
    enum { N = 9223 };
    seg_event *ev = (seg_event *)calloc(N, sizeof *ev);
    seg_event last;
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    tu_snapshot before;
    size_t k;
    ck_assert_ptr_nonnull(ev);
    for (k = 0; k < N; k++)
        ev[k] = tu_refund(NULL, "giver", TU_D0 + (int64_t)k, -SEG_AMOUNT_MAX, NULL);
    TU_OK(db, seg_event_ingest_batch(db, ev, N, NULL, NULL));
    TU_GET(db, "giver", &i);
    ck_assert_int_eq(i.refunds, -(int64_t)N * SEG_AMOUNT_MAX);
    tu_snap_take(&before, db, 0);
    last = tu_refund("one-too-many", "giver", TU_D0 + N, -SEG_AMOUNT_MAX, NULL);
    TU_RC(db, seg_event_ingest(db, &last), SEG_ERANGE);
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
    free(ev);
}
END_TEST

START_TEST(time_below_min)
{
    seg_event e = tu_purchase("n1", "c1", SEG_TIME_MIN - 1, 100, NULL);
    expect_rejected(&e, SEG_ERANGE, "ts");
}
END_TEST

START_TEST(time_above_max)
{
    seg_event e = tu_purchase("n1", "c1", SEG_TIME_MAX + 1, 100, NULL);
    expect_rejected(&e, SEG_ERANGE, "ts");
}
END_TEST

START_TEST(time_int64_extremes)
{
    seg_event e = tu_engagement("n1", "c1", INT64_MIN, "x");
    expect_rejected(&e, SEG_ERANGE, "ts");
    e.ts = INT64_MAX;
    expect_rejected(&e, SEG_ERANGE, "ts");
}
END_TEST

static void check_kind(uint32_t kind)
{
    seg_event e = tu_purchase("n1", "c1", TU_DAYN(5), 100, NULL);
    e.kind = kind;
    expect_rejected(&e, SEG_EINVAL, "kind");
}

START_TEST(kind_zero) { check_kind(0); } END_TEST
START_TEST(kind_four) { check_kind(4); } END_TEST
START_TEST(kind_99) { check_kind(99); } END_TEST
START_TEST(kind_uint32_max) { check_kind(UINT32_MAX); } END_TEST

START_TEST(refund_unknown_order)
{
    seg_event e = tu_refund("n1", "c1", TU_DAYN(5), -100, "no-such-order");
    expect_rejected(&e, SEG_ENOTFOUND, "no-such-order");
}
END_TEST

START_TEST(refund_other_customers_order)
{
    /* o1 is c1's; c2 may not refund it */
    seg_event e = tu_refund("n1", "c2", TU_DAYN(5), -100, "o1");
    expect_rejected(&e, SEG_EINVAL, "refund_of");
    TU_RC(db, seg_event_ingest(db, &e), SEG_EINVAL);
    TU_MSG_HAS(db, "o1");
}
END_TEST

START_TEST(order_line_of_other_customers_order)
{
    /* a purchase line of c2 in c1's order o1 */
    seg_event e = tu_purchase("n1", "c2", TU_DAYN(5), 100, "o1");
    expect_rejected(&e, SEG_EINVAL, "order_id");
}
END_TEST

START_TEST(order_line_of_other_customers_orderless_purchase)
{
    /* c1's order-less purchase "solo" is the order "solo": c2 may not add
     * a line to it (as for any other order of c1's) */
    seg_event p = tu_purchase("solo", "c1", TU_DAYN(5), 400, NULL);
    seg_event e = tu_purchase("n1", "c2", TU_DAYN(5), 100, "solo");
    TU_OK(db, seg_event_ingest(db, &p));
    expect_rejected(&e, SEG_EINVAL, "order_id");
}
END_TEST

START_TEST(refund_of_orderless_purchase)
{
    /* a purchase without order_id is an order named by its event id */
    seg_event p = tu_purchase("solo", "c3", TU_DAYN(5), 400, NULL);
    seg_event r = tu_refund("r-solo", "c3", TU_DAYN(6), -401, "solo");
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    TU_OK(db, seg_event_ingest(db, &p));
    expect_rejected(&r, SEG_EINVAL, "refund");
    r.amount = -400;
    TU_OK(db, seg_event_ingest(db, &r));
    TU_GET(db, "c3", &i);
    ck_assert_int_eq(i.net_revenue, 0);
    /* another customer may not refund it */
    r = tu_refund("r-solo-2", "c2", TU_DAYN(6), -1, "solo");
    expect_rejected(&r, SEG_EINVAL, "solo");
}
END_TEST

START_TEST(refund_exceeds_purchase)
{
    /* o2 is 300 */
    seg_event e = tu_refund("n1", "c1", TU_DAYN(5), -301, "o2");
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    expect_rejected(&e, SEG_EINVAL, "refund");
    /* the whole order is fine */
    e.amount = -300;
    TU_OK(db, seg_event_ingest(db, &e));
    TU_GET(db, "c1", &i);
    ck_assert_int_eq(i.refunds, -300);
    /* and nothing more after it */
    e = tu_refund("n2", "c1", TU_DAYN(5), -1, "o2");
    expect_rejected(&e, SEG_EINVAL, "refund");
}
END_TEST

START_TEST(refund_exceeds_multi_line_order)
{
    /* o1 is two lines: 1000 + 500 */
    seg_event e = tu_refund("n1", "c1", TU_DAYN(5), -1501, "o1");
    expect_rejected(&e, SEG_EINVAL, "refund");
    e.amount = -1500;
    TU_OK(db, seg_event_ingest(db, &e));
}
END_TEST

START_TEST(refund_cumulative_partial)
{
    seg_event e;
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    e = tu_refund("r1", "c1", TU_DAYN(5), -1000, "o1");
    TU_OK(db, seg_event_ingest(db, &e));
    e = tu_refund("r2", "c1", TU_DAYN(6), -400, "o1");
    TU_OK(db, seg_event_ingest(db, &e));
    /* 100 left */
    e = tu_refund("r3", "c1", TU_DAYN(7), -101, "o1");
    expect_rejected(&e, SEG_EINVAL, "refund");
    e.amount = -100;
    TU_OK(db, seg_event_ingest(db, &e));
    e = tu_refund("r4", "c1", TU_DAYN(8), -1, "o1");
    expect_rejected(&e, SEG_EINVAL, "refund");
    TU_GET(db, "c1", &i);
    ck_assert_int_eq(i.refunds, -1500);
    ck_assert_int_eq(i.revenue, 1800);
    ck_assert_int_eq(i.net_revenue, 300);
}
END_TEST

START_TEST(refund_cumulative_in_one_batch)
{
    /* two refunds of one batch that together exceed the order: atomic fail */
    seg_event ev[2];
    tu_snapshot before;
    ev[0] = tu_refund("r1", "c1", TU_DAYN(5), -200, "o2");
    ev[1] = tu_refund("r2", "c1", TU_DAYN(5), -101, "o2");
    tu_snap_take(&before, db, 0);
    TU_RC(db, seg_event_ingest_batch(db, ev, 2, NULL, NULL), SEG_EINVAL);
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
    ev[1].amount = -100;
    TU_OK(db, seg_event_ingest_batch(db, ev, 2, NULL, NULL));
}
END_TEST

START_TEST(engagement_without_name)
{
    seg_event e = tu_engagement("n1", "c1", TU_DAYN(5), NULL);
    expect_rejected(&e, SEG_EINVAL, "name");
}
END_TEST

START_TEST(quantity_above_max)
{
    seg_event e = tu_purchase("n1", "c1", TU_DAYN(5), 100, NULL);
    e.quantity = SEG_QUANTITY_MAX + 1;
    expect_rejected(&e, SEG_ERANGE, "quantity");
}
END_TEST

START_TEST(quantity_int32_max)
{
    seg_event e = tu_refund("n1", "c1", TU_DAYN(5), -100, NULL);
    e.quantity = INT32_MAX;
    expect_rejected(&e, SEG_ERANGE, "quantity");
}
END_TEST

START_TEST(quantity_negative)
{
    /* units are counted, never negative: a refund's quantity is the units
     * returned, as a positive number */
    seg_event e = tu_refund("n1", "c1", TU_DAYN(5), -100, NULL);
    e.quantity = -1;
    expect_rejected(&e, SEG_EINVAL, "quantity");
    e = tu_purchase("n1", "c1", TU_DAYN(5), 100, NULL);
    e.quantity = -SEG_QUANTITY_MAX - 1;
    expect_rejected(&e, SEG_EINVAL, "quantity");
}
END_TEST

/* ======================================================================== */
/* idempotency                                                               */
/* ======================================================================== */

START_TEST(same_id_same_content_noop)
{
    seg_event e = tu_purchase("s3", "c1", TU_DAYN(2), 300, "o2"); /* as seeded */
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    tu_snapshot before;
    tu_snap_take(&before, db, 0);
    TU_OK(db, seg_event_ingest(db, &e));
    TU_UNCHANGED(db, &before);
    TU_OK(db, seg_event_ingest_batch(db, &e, 1, NULL, &st));
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_uint_eq(st.duplicates, 1);
    ck_assert_uint_eq(st.rejected, 0);
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
}
END_TEST

START_TEST(same_id_explicit_default_quantity)
{
    /* quantity 1 on a purchase is the default: same content */
    seg_event e = tu_purchase("s3", "c1", TU_DAYN(2), 300, "o2");
    tu_snapshot before;
    e.quantity = 1;
    tu_snap_take(&before, db, 0);
    TU_OK(db, seg_event_ingest(db, &e));
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
}
END_TEST

START_TEST(same_id_different_content_conflict)
{
    int k;
    for (k = 0; k < 9; k++) {
        seg_event e = tu_purchase("s3", "c1", TU_DAYN(2), 300, "o2"); /* as seeded */
        switch (k) {
        case 0: e.amount = 301; break;
        case 1: e.ts += 1; break;
        case 2: e.customer_id = "c2"; break;
        case 3: e.order_id = "o3"; break;
        case 4: e.channel = "web"; break;
        case 5: e.quantity = 2; break;
        case 6: e.sku = "x"; break;
        case 7: e.category = "y"; break;
        default: e = tu_engagement("s3", "c1", TU_DAYN(2), "email_open"); break;
        }
        expect_rejected(&e, SEG_ECONFLICT, "s3");
    }
}
END_TEST

START_TEST(derived_id_same_content_once)
{
    seg_event e = tu_purchase(NULL, "c9", TU_DAYN(3), 450, "o-x");
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    TU_OK(db, seg_event_ingest(db, &e));
    ck_assert_uint_eq(seg_event_count(db), SEED_EVENTS + 1);
    TU_OK(db, seg_event_ingest(db, &e));
    ck_assert_uint_eq(seg_event_count(db), SEED_EVENTS + 1);
    TU_OK(db, seg_event_ingest_batch(db, &e, 1, NULL, &st));
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_uint_eq(st.duplicates, 1);
    TU_GET(db, "c9", &i);
    ck_assert_uint_eq(i.events, 1);
    ck_assert_int_eq(i.revenue, 450);
}
END_TEST

START_TEST(derived_id_same_content_in_one_batch)
{
    seg_event ev[3];
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    ev[0] = tu_engagement(NULL, "c9", TU_DAYN(3), "email_open");
    ev[1] = ev[0];
    ev[2] = ev[0];
    TU_OK(db, seg_event_ingest_batch(db, ev, 3, NULL, &st));
    ck_assert_uint_eq(st.accepted, 1);
    ck_assert_uint_eq(st.duplicates, 2);
    ck_assert_uint_eq(seg_event_count(db), SEED_EVENTS + 1);
}
END_TEST

START_TEST(derived_id_different_content)
{
    seg_event a = tu_purchase(NULL, "c9", TU_DAYN(3), 450, NULL);
    seg_event b = a, c = a, d = a;
    b.amount = 451;
    c.customer_id = "c10";
    d.ts += 1;
    TU_OK(db, seg_event_ingest(db, &a));
    TU_OK(db, seg_event_ingest(db, &b));
    TU_OK(db, seg_event_ingest(db, &c));
    TU_OK(db, seg_event_ingest(db, &d));
    ck_assert_uint_eq(seg_event_count(db), SEED_EVENTS + 4);
}
END_TEST

static int first_id_cb(const seg_event_info *e, void *payload)
{
    snprintf((char *)payload, 64, "%s", e->event_id ? e->event_id : "(null)");
    return 1;
}

START_TEST(derived_id_stable_across_dbs)
{
    seg_db *a = NULL, *b = NULL;
    seg_event e = tu_purchase(NULL, "c9", TU_DAYN(3), 450, "o-x");
    char ida[64] = "", idb[64] = "";
    e.channel = "web";
    ck_assert_int_eq(seg_db_open(&a, ":memory:", NULL), SEG_OK);
    ck_assert_int_eq(seg_db_open(&b, ":memory:", NULL), SEG_OK);
    TU_OK(a, seg_event_ingest(a, &e));
    TU_OK(b, seg_customer_add(b, "someone-else"));
    TU_OK(b, seg_event_ingest(b, &e));
    TU_OK(a, seg_event_foreach(a, "c9", first_id_cb, ida));
    TU_OK(b, seg_event_foreach(b, "c9", first_id_cb, idb));
    ck_assert_msg(tu_is_derived_id(ida), "derived id \"%s\" is not ~ and 32 hex digits", ida);
    ck_assert_str_eq(ida, idb);
    seg_db_close(a);
    seg_db_close(b);
}
END_TEST

/* ======================================================================== */
/* out-of-order arrival                                                      */
/* ======================================================================== */

#define GEN_MAX 256
typedef struct gen {
    seg_event ev[GEN_MAX];
    char str[GEN_MAX][2][48];
    size_t n, n_base;      /* events [n_base, n) are refunds with refund_of */
} gen;

static void gen_events(gen *g)
{
    static char names[6][16];
    static const char *channels[] = { "web", "store", "app" };
    uint64_t st = 12345;
    seg_event refunds[64];
    char rstr[64][2][48];
    size_t nr = 0, k;
    int c, j, l;

    memset(g, 0, sizeof *g);
    for (c = 0; c < 6; c++) {
        const char *cust = names[c];
        snprintf(names[c], sizeof names[c], "cust-%d", c);
        for (j = 0; j < c + 1; j++) {
            int64_t t = TU_DAYN(tu_rand(&st) % 40) + (int64_t)(tu_rand(&st) % 86400);
            int lines = 1 + (int)(tu_rand(&st) % 3);
            int64_t total = 0;
            for (l = 0; l < lines; l++) {
                seg_event *e = &g->ev[g->n];
                char *id = g->str[g->n][0], *ord = g->str[g->n][1];
                snprintf(id, 48, "ev-%d-%d-%d", c, j, l);
                snprintf(ord, 48, "ord-%d-%d", c, j);
                *e = tu_purchase(tu_rand(&st) % 3 == 0 ? NULL : id, cust, t + l,
                                 100 + (int64_t)(tu_rand(&st) % 5000), ord);
                e->quantity = 1 + (int32_t)(tu_rand(&st) % 3);
                e->channel = channels[tu_rand(&st) % 3];
                total += e->amount;
                g->n++;
            }
            /* refunds of even orders: one or two partial ones, a day or more later */
            if (j % 2 == 0) {
                int parts = 1 + (j % 4 == 0);
                int p;
                for (p = 0; p < parts; p++) {
                    seg_event *r = &refunds[nr];
                    snprintf(rstr[nr][0], 48, "rf-%d-%d-%d", c, j, p);
                    snprintf(rstr[nr][1], 48, "ord-%d-%d", c, j);
                    *r = tu_refund(NULL, cust, t + TU_DAY * (1 + (int64_t)p), -(total / 3), NULL);
                    r->quantity = 1;
                    nr++;
                }
            }
        }
        for (j = 0; j < 2; j++) {
            g->ev[g->n] = tu_engagement(NULL, cust, TU_DAYN(tu_rand(&st) % 60) + j,
                                        j ? "store_visit" : "email_open");
            g->n++;
        }
        if (c == 3) {
            g->ev[g->n] = tu_refund("loose-refund", cust, TU_DAYN(20), -250, NULL);
            g->n++;
        }
    }
    /* purchases on both sides of a midnight: two days */
    g->ev[g->n] = tu_purchase("edge-1", "edge", TU_DAYN(2) - 1, 100, "edge-o1");
    g->n++;
    g->ev[g->n] = tu_purchase("edge-2", "edge", TU_DAYN(2), 100, "edge-o2");
    g->n++;
    g->n_base = g->n;
    for (k = 0; k < nr; k++) {
        ck_assert(g->n < GEN_MAX);
        memcpy(g->str[g->n], rstr[k], sizeof rstr[k]);
        g->ev[g->n] = refunds[k];
        g->ev[g->n].event_id = g->str[g->n][0];
        g->ev[g->n].refund_of = g->str[g->n][1];
        g->n++;
    }
}

/* the aggregates computed by hand from the generated events */
static void model_info_as_of(const gen *g, const char *cust, int64_t as_of, seg_customer_info *m);

static void model_info(const gen *g, const char *cust, seg_customer_info *m)
{
    model_info_as_of(g, cust, INT64_MAX, m);
}

static void model_info_as_of(const gen *g, const char *cust, int64_t as_of, seg_customer_info *m)
{
    int64_t days[GEN_MAX];
    const char *orders[GEN_MAX];
    size_t nd = 0, no = 0, k, x;
    memset(m, 0, sizeof *m);
    for (k = 0; k < g->n; k++) {
        const seg_event *e = &g->ev[k];
        if (strcmp(e->customer_id, cust) != 0 || e->ts >= as_of)
            continue;
        if (m->events == 0 || e->ts < m->first_seen)
            m->first_seen = e->ts;
        if (m->events == 0 || e->ts > m->last_seen)
            m->last_seen = e->ts;
        m->events++;
        if (e->kind == SEG_EVENT_ENGAGEMENT) {
            m->engagements++;
        } else if (e->kind == SEG_EVENT_REFUND) {
            m->refunds += e->amount;
            m->units -= e->quantity == SEG_QUANTITY_DEFAULT ? 0 : e->quantity;
        } else if (e->amount > 0) {
            int64_t day = e->ts >= 0 ? e->ts / TU_DAY : -((-e->ts + TU_DAY - 1) / TU_DAY);
            m->revenue += e->amount;
            m->units += e->quantity == SEG_QUANTITY_DEFAULT ? 1 : e->quantity;
            if (m->orders == 0 || e->ts < m->first_purchase)
                m->first_purchase = e->ts;
            if (m->orders == 0 || e->ts > m->last_purchase)
                m->last_purchase = e->ts;
            for (x = 0; x < nd && days[x] != day; x++)
                ;
            if (x == nd)
                days[nd++] = day;
            for (x = 0; x < no && strcmp(orders[x], e->order_id) != 0; x++)
                ;
            if (x == no) {
                orders[no++] = e->order_id;
                m->orders++;
            }
        }
    }
    m->purchase_days = nd;
    m->net_revenue = m->revenue + m->refunds;
}

static int by_ts(const void *a, const void *b, const gen *g)
{
    const seg_event *x = &g->ev[*(const size_t *)a], *y = &g->ev[*(const size_t *)b];
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

static void ingest_in_order(seg_db *d, const gen *g, const size_t *order, int as_batch)
{
    size_t k;
    if (as_batch) {
        seg_event *ev = (seg_event *)malloc(g->n * sizeof *ev);
        seg_ingest_stats st = SEG_INGEST_STATS_INIT;
        ck_assert_ptr_nonnull(ev);
        for (k = 0; k < g->n; k++)
            ev[k] = g->ev[order[k]];
        TU_OK(d, seg_event_ingest_batch(d, ev, g->n, NULL, &st));
        ck_assert_uint_eq(st.accepted, g->n);
        free(ev);
    } else {
        for (k = 0; k < g->n; k++)
            TU_OK(d, seg_event_ingest(d, &g->ev[order[k]]));
    }
}

START_TEST(out_of_order_same_aggregates)
{
    static gen g;
    size_t order[GEN_MAX];
    seg_db *ref = NULL;
    tu_snapshot want;
    size_t k, a, b;
    int round;

    gen_events(&g);

    /* reference: sorted by time (refunds come after their orders) */
    for (k = 0; k < g.n; k++)
        order[k] = k;
    for (a = 1; a < g.n; a++)
        for (b = a; b > 0 && by_ts(&order[b - 1], &order[b], &g) > 0; b--) {
            size_t t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    ck_assert_int_eq(seg_db_open(&ref, ":memory:", NULL), SEG_OK);
    ingest_in_order(ref, &g, order, 0);
    ck_assert_uint_eq(seg_event_count(ref), g.n);

    /* the reference matches the aggregates computed by hand */
    tu_snap_take(&want, ref, SEG_CUSTOMER_SORTED);
    ck_assert_uint_eq(want.n, 7);
    for (k = 0; k < want.n; k++) {
        seg_customer_info m = SEG_CUSTOMER_INFO_INIT;
        char x[300], y[300];
        model_info(&g, want.c[k].id, &m);
        tu_info_print(x, sizeof x, &m);
        tu_info_print(y, sizeof y, &want.c[k].info);
        ck_assert_msg(tu_info_diff(&m, &want.c[k].info) == NULL,
                      "customer %s: expected {%s}, got {%s}", want.c[k].id, x, y);
    }
    seg_db_close(ref);

    /* shuffled orders, one by one and as one batch; reversed */
    for (round = 0; round < 8; round++) {
        seg_db *d = NULL;
        tu_snapshot got;
        const char *why;
        for (k = 0; k < g.n; k++)
            order[k] = k;
        if (round == 7) {
            for (k = 0; k < g.n_base / 2; k++) {
                size_t t = order[k];
                order[k] = order[g.n_base - 1 - k];
                order[g.n_base - 1 - k] = t;
            }
        } else {
            tu_shuffle(order, g.n_base, 1000 + (uint64_t)round);
            tu_shuffle(order + g.n_base, g.n - g.n_base, 2000 + (uint64_t)round);
        }
        ck_assert_int_eq(seg_db_open(&d, ":memory:", NULL), SEG_OK);
        ingest_in_order(d, &g, order, round % 2);
        tu_snap_take(&got, d, SEG_CUSTOMER_SORTED);
        why = tu_snap_diff(&want, &got, 2);
        ck_assert_msg(why == NULL, "round %d: %s", round, why);
        tu_snap_free(&got);
        seg_db_close(d);
    }
    tu_snap_free(&want);
}
END_TEST

typedef struct as_of_visits {
    size_t n;
    char id[16][32];
    seg_customer_info info[16];
} as_of_visits;

static int as_of_cb(const seg_customer_info *c, void *payload)
{
    as_of_visits *v = (as_of_visits *)payload;
    ck_assert_msg(v->n < 16, "too many visits");
    snprintf(v->id[v->n], sizeof v->id[v->n], "%s", c->customer_id);
    v->info[v->n] = *c;
    v->n++;
    return 0;
}

START_TEST(as_of_matches_model)
{
    static gen g;
    static const int days[] = { 0, 1, 3, 5, 10, 20, 30, 41, 45, 61, 100 };
    static const char *custs[] = { "cust-0", "cust-1", "cust-2", "cust-3", "cust-4", "cust-5",
                                   "edge" };
    size_t d, k;
    gen_events(&g);
    for (k = 0; k < g.n; k++)
        TU_OK(db, seg_event_ingest(db, &g.ev[k]));
    for (d = 0; d < sizeof days / sizeof days[0]; d++) {
        int64_t as_of = TU_DAYN(days[d]) + 43200;
        as_of_visits v;
        size_t want = 0, c;
        memset(&v, 0, sizeof v);
        TU_OK(db, seg_customer_foreach_as_of(db, as_of, SEG_CUSTOMER_SORTED, as_of_cb, &v));
        for (c = 0; c < sizeof custs / sizeof custs[0]; c++) {
            seg_customer_info m;
            size_t j;
            model_info_as_of(&g, custs[c], as_of, &m);
            for (j = 0; j < v.n && strcmp(v.id[j], custs[c]) != 0; j++)
                ;
            if (m.events == 0) {
                ck_assert_msg(j == v.n, "day %d: %s visited without events", days[d], custs[c]);
                continue;
            }
            want++;
            ck_assert_msg(j < v.n, "day %d: %s not visited", days[d], custs[c]);
            {
                char x[300], y[300];
                tu_info_print(x, sizeof x, &m);
                tu_info_print(y, sizeof y, &v.info[j]);
                ck_assert_msg(tu_info_diff(&m, &v.info[j]) == NULL,
                              "day %d, %s: expected {%s}, got {%s}", days[d], custs[c], x, y);
            }
        }
        ck_assert_uint_eq(v.n, want);
        for (k = 1; k < v.n; k++)
            ck_assert_msg(strcmp(v.id[k - 1], v.id[k]) < 0, "not sorted");
    }
}
END_TEST

/* ======================================================================== */
/* batches                                                                   */
/* ======================================================================== */

typedef struct rejects {
    size_t n;
    size_t index[32];
    int code[32];
    char reason[32][512];
} rejects;

static void on_reject(size_t index, int code, const char *reason, void *payload)
{
    rejects *r = (rejects *)payload;
    if (r->n < 32) {
        r->index[r->n] = index;
        r->code[r->n] = code;
        snprintf(r->reason[r->n], sizeof r->reason[r->n], "%s", reason ? reason : "(null)");
    }
    r->n++;
}

START_TEST(atomic_batch_bad_in_middle)
{
    enum { N = 20, BAD = 13 };
    seg_event ev[N];
    char ids[N][16];
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    tu_snapshot before;
    size_t k;
    for (k = 0; k < N; k++) {
        snprintf(ids[k], sizeof ids[k], "b%zu", k);
        ev[k] = tu_purchase(ids[k], k % 2 ? "c1" : "new-customer", TU_DAYN(k), 100, NULL);
    }
    ev[BAD].customer_id = "";
    tu_snap_take(&before, db, 0);
    st.accepted = 5;
    TU_RC(db, seg_event_ingest_batch(db, ev, N, NULL, &st), SEG_EINVAL);
    TU_MSG_HAS(db, "customer_id");
    ck_assert_msg(tu_has_number(seg_errmsg(db), BAD), "message does not name index %d: %s",
                  BAD, seg_errmsg(db));
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_uint_eq(st.duplicates, 0);
    ck_assert_uint_eq(st.rejected, 0);
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
    /* fixed, it goes in */
    ev[BAD].customer_id = "c1";
    TU_OK(db, seg_event_ingest_batch(db, ev, N, NULL, &st));
    ck_assert_uint_eq(st.accepted, N);
    ck_assert_uint_eq(seg_event_count(db), SEED_EVENTS + N);
}
END_TEST

START_TEST(atomic_batch_conflict_in_middle)
{
    seg_event ev[5];
    tu_snapshot before;
    ev[0] = tu_purchase("x0", "c1", TU_DAYN(5), 100, NULL);
    ev[1] = tu_purchase("x1", "c1", TU_DAYN(5), 100, NULL);
    ev[2] = tu_purchase("x2", "c1", TU_DAYN(5), 100, NULL);
    ev[3] = tu_purchase("s1", "c1", TU_DAYN(5), 999, "o1"); /* conflicts with the seed */
    ev[4] = tu_purchase("x4", "c1", TU_DAYN(5), 100, NULL);
    tu_snap_take(&before, db, 0);
    TU_RC(db, seg_event_ingest_batch(db, ev, 5, NULL, NULL), SEG_ECONFLICT);
    ck_assert_msg(tu_has_number(seg_errmsg(db), 3), "message does not name index 3: %s",
                  seg_errmsg(db));
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
}
END_TEST

START_TEST(atomic_batch_conflict_within_batch)
{
    seg_event ev[3];
    tu_snapshot before;
    ev[0] = tu_purchase("dup", "c1", TU_DAYN(5), 100, NULL);
    ev[1] = tu_purchase("other", "c1", TU_DAYN(5), 100, NULL);
    ev[2] = tu_purchase("dup", "c1", TU_DAYN(5), 101, NULL);
    tu_snap_take(&before, db, 0);
    TU_RC(db, seg_event_ingest_batch(db, ev, 3, NULL, NULL), SEG_ECONFLICT);
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
}
END_TEST

START_TEST(atomic_batch_refund_of_order_in_same_batch)
{
    seg_event ev[3];
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    ev[0] = tu_purchase("y0", "c3", TU_DAYN(5), 700, "oy");
    ev[1] = tu_purchase("y1", "c3", TU_DAYN(5), 300, "oy");
    ev[2] = tu_refund("y2", "c3", TU_DAYN(6), -1000, "oy");
    TU_OK(db, seg_event_ingest_batch(db, ev, 3, NULL, NULL));
    TU_GET(db, "c3", &i);
    ck_assert_int_eq(i.net_revenue, 0);
    ck_assert_int_eq(i.refunds, -1000);
    ck_assert_uint_eq(i.orders, 1);
}
END_TEST

START_TEST(atomic_batch_new_customer_rolled_back)
{
    /* customers created by the good events before the bad one are gone too */
    seg_event ev[3];
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    ev[0] = tu_purchase("z0", "brand-new", TU_DAYN(5), 100, "oz");
    ev[1] = tu_refund("z1", "brand-new", TU_DAYN(6), -50, "oz");
    ev[2] = tu_purchase("z2", "brand-new-2", SEG_TIME_MAX + 1, 100, NULL);
    TU_RC(db, seg_event_ingest_batch(db, ev, 3, NULL, NULL), SEG_ERANGE);
    TU_RC(db, seg_customer_get(&i, db, "brand-new"), SEG_ENOTFOUND);
    ck_assert_uint_eq(seg_customer_count(db), 3);
    /* and the order "oz" is unknown again */
    ev[0] = tu_refund("z9", "brand-new", TU_DAYN(6), -50, "oz");
    TU_RC(db, seg_event_ingest(db, &ev[0]), SEG_ENOTFOUND);
}
END_TEST

START_TEST(duplicate_full_refund_is_noop)
{
    /* a duplicate is recognised before the refund limit is checked */
    seg_event r = tu_refund("full", "c1", TU_DAYN(5), -1500, "o1");
    seg_event ev[2];
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    tu_snapshot before;
    TU_OK(db, seg_event_ingest(db, &r));
    tu_snap_take(&before, db, 0);
    TU_OK(db, seg_event_ingest(db, &r));
    TU_UNCHANGED(db, &before);
    ev[0] = r;
    ev[1] = r;
    TU_OK(db, seg_event_ingest_batch(db, ev, 2, NULL, &st));
    ck_assert_uint_eq(st.duplicates, 2);
    TU_UNCHANGED(db, &before);
    /* derived ids too */
    r = tu_refund(NULL, "c1", TU_DAYN(5), -300, "o2");
    ev[0] = r;
    ev[1] = r;
    TU_OK(db, seg_event_ingest_batch(db, ev, 2, NULL, &st));
    ck_assert_uint_eq(st.accepted, 1);
    ck_assert_uint_eq(st.duplicates, 1);
    tu_snap_free(&before);
}
END_TEST

/* A long batch built to stress the ingest pipeline: tables that grow while
 * the batch runs, refunds right after their orders, duplicates of events a
 * few positions back, new customers referenced again at once. */
typedef struct stress {
    size_t n;
    seg_event *ev;
    char (*str)[3][32];
    int *bad;           /* per-event mode: this event is invalid */
} stress;

static void stress_make(stress *x, size_t n, int with_bad)
{
    uint64_t st = 777;
    int64_t *order_total, *order_refunded;
    size_t k, norders = 0;
    char (*order_name)[32];
    int *order_cust;
    x->n = n;
    x->ev = (seg_event *)calloc(n, sizeof *x->ev);
    x->str = (char (*)[3][32])calloc(n, sizeof *x->str);
    x->bad = (int *)calloc(n, sizeof *x->bad);
    order_total = (int64_t *)calloc(n, sizeof *order_total);
    order_refunded = (int64_t *)calloc(n, sizeof *order_refunded);
    order_name = (char (*)[32])calloc(n, sizeof *order_name);
    order_cust = (int *)calloc(n, sizeof *order_cust);
    ck_assert(x->ev && x->str && x->bad && order_total && order_refunded && order_name
              && order_cust);
    for (k = 0; k < n; k++) {
        unsigned r = (unsigned)(tu_rand(&st) % 100);
        int cust = (int)(tu_rand(&st) % (k / 4 + 1)); /* new customers keep coming */
        char *id = x->str[k][0], *cs = x->str[k][1], *ord = x->str[k][2];
        seg_event *e = &x->ev[k];
        snprintf(id, 32, "st%zu", k);
        snprintf(cs, 32, "scust%d", cust);
        if (r < 15 && k > 0) {
            /* a duplicate of one of the last 20 events */
            size_t back = 1 + (size_t)(tu_rand(&st) % 20);
            *e = x->ev[k > back ? k - back : 0];
            if (x->bad[k > back ? k - back : 0])
                x->bad[k] = 1;
            continue;
        }
        if (r < 30 && norders > 0) {
            /* a small refund of a recent order */
            size_t o = norders - 1 - (size_t)(tu_rand(&st) % (norders < 12 ? norders : 12));
            if (order_refunded[o] + 1 <= order_total[o]) {
                snprintf(cs, 32, "scust%d", order_cust[o]);
                snprintf(ord, 32, "%s", order_name[o]);
                *e = tu_refund(tu_rand(&st) % 4 ? id : NULL, cs, TU_D0 + (int64_t)k, -1, ord);
                order_refunded[o] += 1;
                continue;
            }
        }
        if (r < 45) {
            *e = tu_engagement(tu_rand(&st) % 2 ? id : NULL, cs,
                               TU_D0 + (int64_t)(tu_rand(&st) % 1000000), "open");
        } else if (r < 75 || norders == 0) {
            /* a line of a new order */
            snprintf(ord, 32, "so%zu", k);
            *e = tu_purchase(tu_rand(&st) % 3 ? id : NULL, cs,
                             TU_D0 + (int64_t)(tu_rand(&st) % 5000000), 1 + (int64_t)(r % 7), ord);
            snprintf(order_name[norders], 32, "%s", ord);
            order_cust[norders] = cust;
            order_total[norders] = e->amount;
            norders++;
        } else {
            /* another line of a recent order of its customer */
            size_t o = norders - 1 - (size_t)(tu_rand(&st) % (norders < 8 ? norders : 8));
            snprintf(cs, 32, "scust%d", order_cust[o]);
            snprintf(ord, 32, "%s", order_name[o]);
            *e = tu_purchase(id, cs, TU_D0 + (int64_t)k * 60, 3, ord);
            order_total[o] += 3;
        }
        if (with_bad && tu_rand(&st) % 25 == 0) {
            /* refused: later refunds of its order may then be refused too,
             * alone as in the batch */
            x->bad[k] = 1;
            e->ts = SEG_TIME_MAX + 1;
        }
    }
    free(order_total);
    free(order_refunded);
    free(order_name);
    free(order_cust);
}

static void stress_free(stress *x)
{
    free(x->ev);
    free(x->str);
    free(x->bad);
}

START_TEST(batch_equals_single_ingest)
{
    enum { N = 20000 };
    stress x;
    seg_db *one = NULL, *chunks = NULL;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    tu_snapshot a, b, c;
    const char *why;
    uint64_t rng = 99;
    size_t k;

    stress_make(&x, N, 0);
    /* the fixture's db: one atomic batch */
    TU_OK(db, seg_event_ingest_batch(db, x.ev, N, NULL, &st));
    ck_assert_uint_eq(st.accepted + st.duplicates, N);
    /* one by one (on the same seeded start) */
    ck_assert_int_eq(seg_db_open(&one, ":memory:", NULL), SEG_OK);
    seed(one);
    for (k = 0; k < N; k++) {
        int rc = seg_event_ingest(one, &x.ev[k]);
        ck_assert_msg(rc == SEG_OK, "event %zu: %d %s", k, rc, seg_errmsg(one));
    }
    /* batches of random sizes */
    ck_assert_int_eq(seg_db_open(&chunks, ":memory:", NULL), SEG_OK);
    seed(chunks);
    for (k = 0; k < N;) {
        size_t m = 1 + (size_t)(tu_rand(&rng) % 50);
        if (m > N - k)
            m = N - k;
        TU_OK(chunks, seg_event_ingest_batch(chunks, x.ev + k, m, NULL, NULL));
        k += m;
    }
    tu_snap_take(&a, db, 0);
    tu_snap_take(&b, one, 0);
    tu_snap_take(&c, chunks, 0);
    ck_assert_uint_eq(a.event_count, st.accepted + SEED_EVENTS);
    why = tu_snap_diff(&b, &a, 1);
    ck_assert_msg(why == NULL, "one batch vs one by one: %s", why);
    why = tu_snap_diff(&b, &c, 1);
    ck_assert_msg(why == NULL, "chunks vs one by one: %s", why);
    tu_snap_free(&a);
    tu_snap_free(&b);
    tu_snap_free(&c);
    seg_db_close(one);
    seg_db_close(chunks);
    stress_free(&x);
}
END_TEST

typedef struct reject_log {
    size_t n;
    size_t *index;
    int *code;
} reject_log;

static void reject_log_cb(size_t index, int code, const char *reason, void *payload)
{
    reject_log *l = (reject_log *)payload;
    (void)reason;
    l->index[l->n] = index;
    l->code[l->n] = code;
    l->n++;
}

START_TEST(per_event_batch_equals_single_ingest)
{
    enum { N = 20000 };
    stress x;
    seg_db *one = NULL;
    seg_ingest_options o = SEG_INGEST_OPTIONS_INIT;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    reject_log rl;
    tu_snapshot a, b;
    const char *why;
    size_t k, j = 0, rejected = 0;

    stress_make(&x, N, 1);
    rl.n = 0;
    rl.index = (size_t *)calloc(N, sizeof *rl.index);
    rl.code = (int *)calloc(N, sizeof *rl.code);
    o.flags = SEG_INGEST_PER_EVENT;
    o.on_reject = reject_log_cb;
    o.payload = &rl;
    TU_OK(db, seg_event_ingest_batch(db, x.ev, N, &o, &st));
    ck_assert_uint_eq(st.accepted + st.duplicates + st.rejected, N);
    ck_assert_uint_eq(st.rejected, rl.n);
    ck_assert_int_eq(seg_db_open(&one, ":memory:", NULL), SEG_OK);
    seed(one);
    for (k = 0; k < N; k++) {
        int rc = seg_event_ingest(one, &x.ev[k]);
        if (rc != SEG_OK) {
            rejected++;
            ck_assert_msg(j < rl.n && rl.index[j] == k, "event %zu rejected alone (%d: %s) "
                          "but not in the batch", k, rc, seg_errmsg(one));
            ck_assert_msg(rl.code[j] == rc, "event %zu: batch code %d, alone %d", k, rl.code[j], rc);
            j++;
        }
    }
    ck_assert_uint_eq(rejected, rl.n);
    ck_assert_msg(rejected > 0, "no bad events generated");
    tu_snap_take(&a, db, 0);
    tu_snap_take(&b, one, 0);
    why = tu_snap_diff(&b, &a, 1);
    ck_assert_msg(why == NULL, "per-event batch vs one by one: %s", why);
    tu_snap_free(&a);
    tu_snap_free(&b);
    seg_db_close(one);
    free(rl.index);
    free(rl.code);
    stress_free(&x);
}
END_TEST

START_TEST(per_event_mode)
{
    seg_event ev[10];
    seg_ingest_options o = SEG_INGEST_OPTIONS_INIT;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    rejects r;
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    memset(&r, 0, sizeof r);
    ev[0] = tu_purchase("q0", "c4", TU_DAYN(5), 100, NULL);                /* ok */
    ev[1] = tu_purchase("q1", "", TU_DAYN(5), 100, NULL);                  /* EINVAL */
    ev[2] = tu_purchase("q2", "c4", TU_DAYN(6), 200, NULL);                /* ok */
    ev[3] = tu_purchase("s1", "c1", TU_DAYN(1), 1, "o1");                  /* ECONFLICT */
    ev[4] = tu_refund("q4", "c4", TU_DAYN(6), -5, "nowhere");              /* ENOTFOUND */
    ev[5] = tu_purchase("s3", "c1", TU_DAYN(2), 300, "o2");                /* duplicate */
    ev[6] = tu_purchase("q6", "c4", SEG_TIME_MIN - 1, 100, NULL);          /* ERANGE */
    ev[7] = tu_purchase("q7", "c4", TU_DAYN(7), 400, "px");                /* ok */
    ev[8] = tu_refund("q8", "c4", TU_DAYN(8), -150, "px");                 /* ok */
    ev[9] = tu_purchase("q9", "c4", TU_DAYN(7), 400, NULL);
    ev[9].kind = 99;                                                       /* EINVAL */
    o.flags = SEG_INGEST_PER_EVENT;
    o.on_reject = on_reject;
    o.payload = &r;
    TU_OK(db, seg_event_ingest_batch(db, ev, 10, &o, &st));
    ck_assert_uint_eq(st.accepted, 4);
    ck_assert_uint_eq(st.duplicates, 1);
    ck_assert_uint_eq(st.rejected, 5);
    ck_assert_uint_eq(r.n, 5);
    ck_assert_uint_eq(r.index[0], 1);
    ck_assert_int_eq(r.code[0], SEG_EINVAL);
    TU_STR_HAS(r.reason[0], "customer_id");
    ck_assert_uint_eq(r.index[1], 3);
    ck_assert_int_eq(r.code[1], SEG_ECONFLICT);
    TU_STR_HAS(r.reason[1], "s1");
    ck_assert_uint_eq(r.index[2], 4);
    ck_assert_int_eq(r.code[2], SEG_ENOTFOUND);
    TU_STR_HAS(r.reason[2], "nowhere");
    ck_assert_uint_eq(r.index[3], 6);
    ck_assert_int_eq(r.code[3], SEG_ERANGE);
    TU_STR_HAS(r.reason[3], "ts");
    ck_assert_uint_eq(r.index[4], 9);
    ck_assert_int_eq(r.code[4], SEG_EINVAL);
    TU_STR_HAS(r.reason[4], "kind");
    ck_assert_uint_eq(seg_event_count(db), SEED_EVENTS + 4);
    TU_GET(db, "c4", &i);
    ck_assert_uint_eq(i.events, 4);
    ck_assert_int_eq(i.revenue, 700);
    ck_assert_int_eq(i.refunds, -150);
    ck_assert_uint_eq(i.orders, 3);
    /* the seeded customer is untouched */
    TU_GET(db, "c1", &i);
    ck_assert_int_eq(i.revenue, 1800);
    ck_assert_uint_eq(i.events, 4);
}
END_TEST

START_TEST(per_event_refund_of_rejected_purchase)
{
    seg_event ev[2];
    seg_ingest_options o = SEG_INGEST_OPTIONS_INIT;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    rejects r;
    memset(&r, 0, sizeof r);
    ev[0] = tu_purchase("w0", "c5", TU_DAYN(5), -100, "ow"); /* negative: rejected */
    ev[1] = tu_refund("w1", "c5", TU_DAYN(6), -50, "ow");    /* so its order is unknown */
    o.flags = SEG_INGEST_PER_EVENT;
    o.on_reject = on_reject;
    o.payload = &r;
    TU_OK(db, seg_event_ingest_batch(db, ev, 2, &o, &st));
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_uint_eq(st.rejected, 2);
    ck_assert_uint_eq(r.n, 2);
    ck_assert_int_eq(r.code[0], SEG_EINVAL);
    ck_assert_int_eq(r.code[1], SEG_ENOTFOUND);
    ck_assert_uint_eq(seg_event_count(db), SEED_EVENTS);
    ck_assert_uint_eq(seg_customer_count(db), 3);
}
END_TEST

START_TEST(per_event_mode_without_callback)
{
    seg_event ev[3];
    seg_ingest_options o = SEG_INGEST_OPTIONS_INIT;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    ev[0] = tu_purchase("v0", "c6", TU_DAYN(5), 100, NULL);
    ev[1] = tu_purchase("v1", "c6", TU_DAYN(5), -100, NULL);
    ev[2] = tu_purchase("v2", "c6", TU_DAYN(5), 100, NULL);
    o.flags = SEG_INGEST_PER_EVENT;
    TU_OK(db, seg_event_ingest_batch(db, ev, 3, &o, &st));
    ck_assert_uint_eq(st.accepted, 2);
    ck_assert_uint_eq(st.rejected, 1);
    ck_assert_uint_eq(seg_event_count(db), SEED_EVENTS + 2);
}
END_TEST

START_TEST(batch_stats_counts)
{
    seg_event ev[8];
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    ev[0] = tu_purchase("t0", "c7", TU_DAYN(5), 100, NULL);
    ev[1] = tu_purchase("s1", "c1", TU_DAYN(1) + 36000, 1000, "o1"); /* stored already */
    ev[2] = tu_purchase("t2", "c7", TU_DAYN(5), 100, NULL);
    ev[3] = tu_purchase("t0", "c7", TU_DAYN(5), 100, NULL);          /* dup within batch */
    ev[4] = tu_engagement("t4", "c7", TU_DAYN(5), "push_open");
    ev[5] = tu_engagement("s4", "c1", TU_DAYN(2) + 5, "email_open"); /* stored already */
    ev[6] = tu_refund("t6", "c7", TU_DAYN(5), -10, NULL);
    ev[7] = tu_engagement(NULL, "c7", TU_DAYN(5), "x");
    TU_OK(db, seg_event_ingest_batch(db, ev, 8, NULL, &st));
    ck_assert_uint_eq(st.struct_size, sizeof st);
    ck_assert_uint_eq(st.accepted, 5);
    ck_assert_uint_eq(st.duplicates, 3);
    ck_assert_uint_eq(st.rejected, 0);
    ck_assert_uint_eq(seg_event_count(db), SEED_EVENTS + 5);
    /* the same batch again: all duplicates */
    TU_OK(db, seg_event_ingest_batch(db, ev, 8, NULL, &st));
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_uint_eq(st.duplicates, 8);
    ck_assert_uint_eq(seg_event_count(db), SEED_EVENTS + 5);
}
END_TEST

START_TEST(batch_empty)
{
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    seg_event e = tu_purchase("e", "c", TU_D0, 1, NULL);
    st.accepted = 9;
    TU_OK(db, seg_event_ingest_batch(db, &e, 0, NULL, &st));
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_uint_eq(st.duplicates, 0);
    ck_assert_uint_eq(seg_event_count(db), SEED_EVENTS);
}
END_TEST

START_TEST(ingest_options_init)
{
    seg_ingest_options o;
    seg_ingest_options def = SEG_INGEST_OPTIONS_INIT;
    memset(&o, 0xCD, sizeof o);
    ck_assert_int_eq(seg_ingest_options_init(&o, sizeof o), SEG_OK);
    ck_assert_uint_eq(o.struct_size, sizeof o);
    ck_assert_uint_eq(o.flags, def.flags);
    ck_assert(o.on_reject == NULL);
    ck_assert_ptr_null(o.payload);
    ck_assert_int_eq(seg_ingest_options_init(NULL, sizeof o), SEG_EINVAL);
    ck_assert_int_eq(seg_ingest_options_init(&o, 0), SEG_EVERSION);
    ck_assert_int_eq(seg_ingest_options_init(&o, sizeof(size_t)), SEG_EVERSION);
}
END_TEST

START_TEST(ingest_options_bad_struct_size)
{
    seg_event e = tu_purchase("u0", "c1", TU_DAYN(5), 1, NULL);
    seg_ingest_options o = SEG_INGEST_OPTIONS_INIT;
    struct { seg_ingest_options o; uint64_t tail; } big;
    tu_snapshot before;
    tu_snap_take(&before, db, 0);
    o.struct_size = 0;
    TU_RC(db, seg_event_ingest_batch(db, &e, 1, &o, NULL), SEG_EVERSION);
    memset(&big, 0, sizeof big);
    big.o.struct_size = sizeof big;
    big.tail = 7;
    TU_RC(db, seg_event_ingest_batch(db, &e, 1, &big.o, NULL), SEG_EVERSION);
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
    big.tail = 0;
    TU_OK(db, seg_event_ingest_batch(db, &e, 1, &big.o, NULL));
    ck_assert_uint_eq(seg_event_count(db), SEED_EVENTS + 1);
}
END_TEST

/* ======================================================================== */
/* iteration                                                                 */
/* ======================================================================== */

START_TEST(foreach_all_in_ingestion_order)
{
    seg_event ev[6];
    tu_ev_list l;
    size_t k;
    memset(&l, 0, sizeof l);
    ev[0] = tu_purchase("f0", "bob", TU_DAYN(9), 1234, "ord-f");
    ev[0].quantity = 3;
    ev[0].channel = "store";
    ev[0].category = "hats";
    ev[0].sku = "HAT-1";
    ev[1] = tu_engagement("f1", "amy", TU_DAYN(1), "email_open");
    ev[1].channel = "email";
    ev[2] = tu_purchase("f2", "bob", TU_DAYN(3), 50, NULL);
    ev[3] = tu_refund("f3", "bob", TU_DAYN(2), -34, "ord-f");
    ev[3].quantity = 1;
    ev[4] = tu_refund("f4", "amy", TU_DAYN(4), -7, NULL);
    ev[5] = tu_purchase(NULL, "amy", TU_DAYN(0), 10, NULL);
    for (k = 0; k < 6; k++)
        TU_OK(db, seg_event_ingest(db, &ev[k]));
    ck_assert_uint_eq(seg_event_count(db), 6);
    TU_OK(db, seg_event_foreach(db, NULL, tu_ev_collect_cb, &l));
    ck_assert_uint_eq(l.n, 6);
    for (k = 0; k < 6; k++) {
        ck_assert_uint_eq(l.e[k].info_struct_size, sizeof(seg_event_info));
        ck_assert_uint_eq(l.e[k].kind, ev[k].kind);
        ck_assert_str_eq(l.e[k].customer_id, ev[k].customer_id);
        ck_assert_int_eq(l.e[k].ts, ev[k].ts);
        ck_assert_int_eq(l.e[k].amount, ev[k].amount);
        if (ev[k].event_id)
            ck_assert_str_eq(l.e[k].event_id, ev[k].event_id);
    }
    /* purchase with everything */
    ck_assert_int_eq(l.e[0].quantity, 3);
    ck_assert_str_eq(l.e[0].order_id, "ord-f");
    ck_assert_str_eq(l.e[0].channel, "store");
    ck_assert_str_eq(l.e[0].category, "hats");
    ck_assert_str_eq(l.e[0].sku, "HAT-1");
    ck_assert_int_eq(l.e[0].has[TU_H_REFUND_OF], 0);
    ck_assert_int_eq(l.e[0].has[TU_H_NAME], 0);
    /* engagement: quantity 0, no order */
    ck_assert_int_eq(l.e[1].quantity, 0);
    ck_assert_str_eq(l.e[1].name, "email_open");
    ck_assert_str_eq(l.e[1].channel, "email");
    ck_assert_int_eq(l.e[1].has[TU_H_ORDER_ID], 0);
    ck_assert_int_eq(l.e[1].has[TU_H_SKU], 0);
    /* purchase without order id: quantity 1, its order id is its event id */
    ck_assert_int_eq(l.e[2].quantity, 1);
    ck_assert_str_eq(l.e[2].order_id, "f2");
    ck_assert_int_eq(l.e[2].has[TU_H_CHANNEL], 0);
    ck_assert_int_eq(l.e[2].has[TU_H_CATEGORY], 0);
    /* refunds */
    ck_assert_int_eq(l.e[3].quantity, 1);
    ck_assert_str_eq(l.e[3].refund_of, "ord-f");
    ck_assert_int_eq(l.e[4].quantity, 0);
    ck_assert_int_eq(l.e[4].has[TU_H_REFUND_OF], 0);
    ck_assert_int_eq(l.e[4].has[TU_H_NAME], 0);
    /* derived id rendered */
    ck_assert_msg(tu_is_derived_id(l.e[5].event_id), "derived id \"%s\"", l.e[5].event_id);
    ck_assert_uint_eq(strlen(l.e[5].event_id), 33);
    ck_assert_str_eq(l.e[5].order_id, l.e[5].event_id);
    tu_ev_list_free(&l);
}
END_TEST

START_TEST(foreach_one_customer)
{
    seg_event ev[5];
    tu_ev_list l;
    size_t k;
    memset(&l, 0, sizeof l);
    ev[0] = tu_purchase("h0", "x", TU_DAYN(5), 1, NULL);
    ev[1] = tu_purchase("h1", "y", TU_DAYN(4), 2, NULL);
    ev[2] = tu_purchase("h2", "x", TU_DAYN(3), 3, NULL);
    ev[3] = tu_purchase("h3", "y", TU_DAYN(2), 4, NULL);
    ev[4] = tu_purchase("h4", "x", TU_DAYN(1), 5, NULL);
    TU_OK(db, seg_event_ingest_batch(db, ev, 5, NULL, NULL));
    TU_OK(db, seg_event_foreach(db, "x", tu_ev_collect_cb, &l));
    ck_assert_uint_eq(l.n, 3);
    ck_assert_str_eq(l.e[0].event_id, "h0");
    ck_assert_str_eq(l.e[1].event_id, "h2");
    ck_assert_str_eq(l.e[2].event_id, "h4");
    for (k = 0; k < 3; k++)
        ck_assert_str_eq(l.e[k].customer_id, "x");
    tu_ev_list_free(&l);
    TU_OK(db, seg_event_foreach(db, "y", tu_ev_collect_cb, &l));
    ck_assert_uint_eq(l.n, 2);
    ck_assert_str_eq(l.e[0].event_id, "h1");
    ck_assert_str_eq(l.e[1].event_id, "h3");
    tu_ev_list_free(&l);
}
END_TEST

START_TEST(foreach_prospect_has_no_events)
{
    tu_ev_list l;
    memset(&l, 0, sizeof l);
    TU_OK(db, seg_event_foreach(db, "p1", tu_ev_collect_cb, &l));
    ck_assert_uint_eq(l.n, 0);
}
END_TEST

START_TEST(foreach_errors)
{
    tu_ev_list l;
    memset(&l, 0, sizeof l);
    TU_RC(db, seg_event_foreach(db, "nobody", tu_ev_collect_cb, &l), SEG_ENOTFOUND);
    ck_assert_uint_eq(l.n, 0);
    TU_RC(db, seg_event_foreach(db, NULL, NULL, &l), SEG_EINVAL);
    ck_assert_int_eq(seg_event_foreach(NULL, NULL, tu_ev_collect_cb, &l), SEG_EINVAL);
}
END_TEST

START_TEST(foreach_early_stop)
{
    tu_ev_list l;
    memset(&l, 0, sizeof l);
    l.stop_after = 2;
    TU_OK(db, seg_event_foreach(db, NULL, tu_ev_collect_cb, &l));
    ck_assert_uint_eq(l.n, 2);
    ck_assert_str_eq(l.e[0].event_id, "s1");
    ck_assert_str_eq(l.e[1].event_id, "s2");
    tu_ev_list_free(&l);
}
END_TEST

START_TEST(event_count)
{
    seg_event e = tu_engagement("k1", "c1", TU_D0, "a");
    ck_assert_uint_eq(seg_event_count(db), SEED_EVENTS);
    TU_OK(db, seg_event_ingest(db, &e));
    ck_assert_uint_eq(seg_event_count(db), SEED_EVENTS + 1);
    TU_OK(db, seg_event_ingest(db, &e));
    ck_assert_uint_eq(seg_event_count(db), SEED_EVENTS + 1);
    e.event_id = NULL;
    TU_OK(db, seg_event_ingest(db, &e));
    ck_assert_uint_eq(seg_event_count(db), SEED_EVENTS + 2);
}
END_TEST

/* ======================================================================== */

#define REG_BAD_ID(f, p) tcase_add_test(tc, bad_##f##_##p);
#define REG_BAD_ID_FIELD(f) BAD_ID_PROBLEMS(REG_BAD_ID, f)
#define REG_MAX_LEN(f) tcase_add_test(tc, max_len_##f);

/* Regression: an over-long order_id on an event without an id used to be
 * serialized for its derived id before its length was checked. */
START_TEST(overlong_order_id_without_event_id)
{
    char *o = tu_repeat('o', 5000);
    seg_event e = tu_purchase(NULL, "c1", TU_DAYN(1), 100, o);
    tu_snapshot before;
    tu_snap_take(&before, db, 0);
    TU_RC(db, seg_event_ingest(db, &e), SEG_EINVAL);
    TU_MSG_HAS(db, "order_id");
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
    e.order_id = NULL;
    e.channel = o;
    TU_RC(db, seg_event_ingest(db, &e), SEG_EINVAL);
    TU_MSG_HAS(db, "channel");
    free(o);
}
END_TEST

static int nested_noop(const seg_event_info *e, void *payload)
{
    (void)e;
    (void)payload;
    return 0;
}

static int nested_then_write(const seg_event_info *e, void *payload)
{
    seg_event n = tu_purchase(NULL, "someone-new", TU_DAYN(3), 100, NULL);
    (void)e;
    seg_event_foreach(db, NULL, nested_noop, NULL);
    *(int *)payload = seg_event_ingest(db, &n);
    return 1;
}

/* Regression: a foreach inside another's callback re-enabled writes. */
START_TEST(nested_foreach_keeps_writes_refused)
{
    seg_event e = tu_purchase("e1", "A", TU_DAYN(1), 100, NULL);
    int rc = 12345;
    TU_OK(db, seg_event_ingest(db, &e));
    TU_OK(db, seg_event_foreach(db, "A", nested_then_write, &rc));
    ck_assert_int_eq(rc, SEG_EMISUSE);
    ck_assert_uint_eq(seg_event_count(db), 1);
    TU_OK(db, seg_event_ingest(db, &e)); /* writable again after the walk */
}
END_TEST

/* The store holds at most 16,383 distinct channels: one more fails the
 * batch with SEG_ELIMIT naming the field, even in per-event mode, and
 * changes nothing. */
START_TEST(channel_limit)
{
    enum { N = 16384 };
    seg_event *ev = calloc(N, sizeof *ev);
    char (*chan)[16] = calloc(N, sizeof *chan);
    seg_ingest_options o = SEG_INGEST_OPTIONS_INIT;
    for (int k = 0; k < N; k++) {
        snprintf(chan[k], sizeof chan[k], "ch%d", k);
        ev[k] = tu_purchase(NULL, "c1", TU_DAYN(1) + k, 100, NULL);
        ev[k].channel = chan[k];
    }
    TU_OK(db, seg_event_ingest_batch(db, ev, N - 1, NULL, NULL));
    TU_RC(db, seg_event_ingest(db, &ev[N - 1]), SEG_ELIMIT);
    TU_MSG_HAS(db, "channel");
    ck_assert_uint_eq(seg_event_count(db), N - 1);
    o.flags = SEG_INGEST_PER_EVENT;
    TU_RC(db, seg_event_ingest_batch(db, &ev[N - 1], 1, &o, NULL), SEG_ELIMIT);
    ck_assert_uint_eq(seg_event_count(db), N - 1);
    free(ev);
    free(chan);
}
END_TEST

Suite *event_suite(void)
{
    Suite *s = suite_create("event");
    TCase *tr = tcase_create("regressions");
    tcase_add_checked_fixture(tr, setup, teardown);
    tcase_add_test(tr, overlong_order_id_without_event_id);
    tcase_add_test(tr, nested_foreach_keeps_writes_refused);
    tcase_add_test(tr, channel_limit);
    suite_add_tcase(s, tr);
    TCase *tc;

    tc = tcase_create("kinds");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, ingest_purchase);
    tcase_add_test(tc, ingest_refund);
    tcase_add_test(tc, ingest_refund_without_order);
    tcase_add_test(tc, ingest_engagement);
    tcase_add_test(tc, ingest_limits_accepted);
    tcase_add_test(tc, ingest_utf8_ids_accepted);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad_ids");
    tcase_add_checked_fixture(tc, setup_seeded, teardown);
    BAD_ID_FIELDS(REG_BAD_ID_FIELD)
    BAD_ID_FIELDS(REG_MAX_LEN)
    tcase_add_test(tc, bad_event_id_tilde);
    tcase_add_test(tc, bad_event_id_tilde_derived_form);
    tcase_add_test(tc, bad_customer_id_null);
    tcase_add_test(tc, bad_customer_id_control_char);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad_input");
    tcase_add_checked_fixture(tc, setup_seeded, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, null_db);
    tcase_add_test(tc, null_event);
    tcase_add_test(tc, struct_size_too_small);
    tcase_add_test(tc, batch_struct_size_too_small);
    tcase_add_test(tc, struct_size_larger_nonzero_tail);
    tcase_add_test(tc, struct_size_larger_zero_tail);
    tcase_add_test(tc, amount_over_max);
    tcase_add_test(tc, amount_int64_max);
    tcase_add_test(tc, amount_int64_min);
    tcase_add_test(tc, refund_amount_below_min);
    tcase_add_test(tc, purchase_negative_amount);
    tcase_add_test(tc, refund_positive_amount);
    tcase_add_test(tc, refund_zero_amount);
    tcase_add_test(tc, engagement_with_amount);
    tcase_add_test(tc, revenue_overflow);
    tcase_add_test(tc, refunds_overflow);
    tcase_add_test(tc, time_below_min);
    tcase_add_test(tc, time_above_max);
    tcase_add_test(tc, time_int64_extremes);
    tcase_add_test(tc, kind_zero);
    tcase_add_test(tc, kind_four);
    tcase_add_test(tc, kind_99);
    tcase_add_test(tc, kind_uint32_max);
    tcase_add_test(tc, refund_unknown_order);
    tcase_add_test(tc, refund_other_customers_order);
    tcase_add_test(tc, order_line_of_other_customers_order);
    tcase_add_test(tc, refund_of_orderless_purchase);
    tcase_add_test(tc, order_line_of_other_customers_orderless_purchase);
    tcase_add_test(tc, refund_exceeds_purchase);
    tcase_add_test(tc, refund_exceeds_multi_line_order);
    tcase_add_test(tc, refund_cumulative_partial);
    tcase_add_test(tc, refund_cumulative_in_one_batch);
    tcase_add_test(tc, engagement_without_name);
    tcase_add_test(tc, quantity_above_max);
    tcase_add_test(tc, quantity_int32_max);
    tcase_add_test(tc, quantity_negative);
    suite_add_tcase(s, tc);

    tc = tcase_create("idempotency");
    tcase_add_checked_fixture(tc, setup_seeded, teardown);
    tcase_add_test(tc, same_id_same_content_noop);
    tcase_add_test(tc, same_id_explicit_default_quantity);
    tcase_add_test(tc, same_id_different_content_conflict);
    tcase_add_test(tc, derived_id_same_content_once);
    tcase_add_test(tc, derived_id_same_content_in_one_batch);
    tcase_add_test(tc, derived_id_different_content);
    tcase_add_test(tc, derived_id_stable_across_dbs);
    suite_add_tcase(s, tc);

    tc = tcase_create("order");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, out_of_order_same_aggregates);
    tcase_add_test(tc, as_of_matches_model);
    suite_add_tcase(s, tc);

    tc = tcase_create("batch");
    tcase_add_checked_fixture(tc, setup_seeded, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, atomic_batch_bad_in_middle);
    tcase_add_test(tc, atomic_batch_conflict_in_middle);
    tcase_add_test(tc, atomic_batch_conflict_within_batch);
    tcase_add_test(tc, atomic_batch_refund_of_order_in_same_batch);
    tcase_add_test(tc, atomic_batch_new_customer_rolled_back);
    tcase_add_test(tc, duplicate_full_refund_is_noop);
    tcase_add_test(tc, batch_equals_single_ingest);
    tcase_add_test(tc, per_event_batch_equals_single_ingest);
    tcase_add_test(tc, per_event_mode);
    tcase_add_test(tc, per_event_refund_of_rejected_purchase);
    tcase_add_test(tc, per_event_mode_without_callback);
    tcase_add_test(tc, batch_stats_counts);
    tcase_add_test(tc, batch_empty);
    tcase_add_test(tc, ingest_options_init);
    tcase_add_test(tc, ingest_options_bad_struct_size);
    suite_add_tcase(s, tc);

    tc = tcase_create("foreach");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, foreach_all_in_ingestion_order);
    tcase_add_test(tc, foreach_one_customer);
    suite_add_tcase(s, tc);

    tc = tcase_create("foreach_seeded");
    tcase_add_checked_fixture(tc, setup_seeded, teardown);
    tcase_add_test(tc, foreach_prospect_has_no_events);
    tcase_add_test(tc, foreach_errors);
    tcase_add_test(tc, foreach_early_stop);
    tcase_add_test(tc, event_count);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(event_suite());
    int failures;
    srunner_run_all(sr, CK_ENV);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures ? 1 : 0;
}
