/*
 * tests/check_core.c: the core API: versions, status codes, errors, the
 * database handle and its options, the host allocator, read-only mode and
 * the time/money text helpers.  Public API only.
 */
#include "testutil.h"

#include <limits.h>
#include <math.h>

Suite *core_suite(void);

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

/* every status code of core.h */
static const int all_codes[] = {
    SEG_OK, SEG_ERROR, SEG_EINVAL, SEG_ENOMEM, SEG_EBUSY, SEG_ESTORAGE, SEG_EPARSE,
    SEG_EVERSION, SEG_ENOTFOUND, SEG_ECONFLICT, SEG_ERANGE, SEG_EIO, SEG_EMISUSE,
    SEG_EREADONLY, SEG_ELIMIT, SEG_ENOTSUP,
};
#define N_CODES (sizeof all_codes / sizeof all_codes[0])

/* ======================================================================== */
/* version                                                                   */
/* ======================================================================== */

START_TEST(version_number)
{
    ck_assert_int_eq(seg_version(), SEG_VERSION_NUMBER);
    ck_assert_int_eq(SEG_VERSION_NUMBER,
                     SEG_VERSION_MAJOR * 10000 + SEG_VERSION_MINOR * 100 + SEG_VERSION_PATCH);
    ck_assert_int_eq(seg_version() / 10000, SEG_VERSION_MAJOR);
    ck_assert(SEG_VERSION_AT_LEAST(1, 0, 0));
    ck_assert(SEG_VERSION_AT_LEAST(SEG_VERSION_MAJOR, SEG_VERSION_MINOR, SEG_VERSION_PATCH));
    ck_assert(!SEG_VERSION_AT_LEAST(SEG_VERSION_MAJOR, SEG_VERSION_MINOR, SEG_VERSION_PATCH + 1));
    ck_assert(!SEG_VERSION_AT_LEAST(SEG_VERSION_MAJOR + 1, 0, 0));
}
END_TEST

START_TEST(version_string)
{
    char expect[32];
    const char *v = seg_version_string();
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v, SEG_VERSION_STRING);
    snprintf(expect, sizeof expect, "%d.%d.%d", SEG_VERSION_MAJOR, SEG_VERSION_MINOR,
             SEG_VERSION_PATCH);
    ck_assert_str_eq(v, expect);
    /* same pointer contents on every call */
    ck_assert_str_eq(seg_version_string(), v);
}
END_TEST

/* ======================================================================== */
/* status codes and messages                                                 */
/* ======================================================================== */

START_TEST(errstr_every_code)
{
    size_t i, j;
    for (i = 0; i < N_CODES; i++) {
        const char *s = seg_errstr(all_codes[i]);
        ck_assert_msg(s != NULL, "seg_errstr(%d) is NULL", all_codes[i]);
        ck_assert_msg(s[0] != '\0', "seg_errstr(%d) is empty", all_codes[i]);
    }
    for (i = 0; i < N_CODES; i++)
        for (j = i + 1; j < N_CODES; j++)
            ck_assert_msg(strcmp(seg_errstr(all_codes[i]), seg_errstr(all_codes[j])) != 0,
                          "seg_errstr(%d) and seg_errstr(%d) are both \"%s\"",
                          all_codes[i], all_codes[j], seg_errstr(all_codes[i]));
}
END_TEST

START_TEST(errstr_numbers_fixed)
{
    /* codes never change number */
    ck_assert_int_eq(SEG_OK, 0);
    ck_assert_int_eq(SEG_ERROR, -1);
    ck_assert_int_eq(SEG_EINVAL, -2);
    ck_assert_int_eq(SEG_ENOMEM, -3);
    ck_assert_int_eq(SEG_EBUSY, -4);
    ck_assert_int_eq(SEG_ESTORAGE, -5);
    ck_assert_int_eq(SEG_EPARSE, -6);
    ck_assert_int_eq(SEG_EVERSION, -7);
    ck_assert_int_eq(SEG_ENOTFOUND, -8);
    ck_assert_int_eq(SEG_ECONFLICT, -9);
    ck_assert_int_eq(SEG_ERANGE, -10);
    ck_assert_int_eq(SEG_EIO, -11);
    ck_assert_int_eq(SEG_EMISUSE, -12);
    ck_assert_int_eq(SEG_EREADONLY, -13);
    ck_assert_int_eq(SEG_ELIMIT, -14);
    ck_assert_int_eq(SEG_ENOTSUP, -15);
}
END_TEST

START_TEST(errstr_unknown_code)
{
    static const int unknown[] = { -16, -99, -1000, INT_MIN, 1, 42, INT_MAX };
    const char *generic = seg_errstr(-99);
    size_t i, j;
    ck_assert_ptr_nonnull(generic);
    ck_assert(generic[0] != '\0');
    for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = seg_errstr(unknown[i]);
        ck_assert_msg(s != NULL && s[0] != '\0', "seg_errstr(%d) empty", unknown[i]);
        /* unknown negative codes all get the same generic text */
        if (unknown[i] < 0)
            ck_assert_msg(strcmp(s, generic) == 0, "seg_errstr(%d) = \"%s\", seg_errstr(-99) = \"%s\"",
                          unknown[i], s, generic);
        /* and it is not the text of a specific code (SEG_ERROR's is fine) */
        for (j = 0; j < N_CODES; j++) {
            if (all_codes[j] == SEG_ERROR)
                continue;
            ck_assert_msg(strcmp(s, seg_errstr(all_codes[j])) != 0,
                          "seg_errstr(%d) is the text of code %d: \"%s\"",
                          unknown[i], all_codes[j], s);
        }
    }
}
END_TEST

START_TEST(errmsg_null_handle)
{
    const char *m = seg_errmsg(NULL);
    ck_assert_ptr_nonnull(m);
}
END_TEST

START_TEST(errmsg_fresh_db)
{
    ck_assert_int_eq(seg_errcode(db), SEG_OK);
    ck_assert_ptr_nonnull(seg_errmsg(db));
    ck_assert_str_eq(seg_errmsg(db), "");
}
END_TEST

START_TEST(errmsg_after_failure_then_success)
{
    seg_customer_info info = SEG_CUSTOMER_INFO_INIT;
    seg_event ev = tu_purchase("e1", "", TU_D0, 100, NULL);
    const char *m1;
    char copy[512];

    /* a failure sets code and message */
    TU_RC(db, seg_customer_get(&info, db, "nobody-here"), SEG_ENOTFOUND);
    ck_assert_int_eq(seg_errcode(db), SEG_ENOTFOUND);
    m1 = seg_errmsg(db);
    ck_assert_ptr_nonnull(m1);
    ck_assert_msg(m1[0] != '\0', "no message after a failure");
    TU_MSG_HAS(db, "nobody-here");
    snprintf(copy, sizeof copy, "%s", m1);
    /* reading changes nothing */
    ck_assert_int_eq(seg_errcode(db), SEG_ENOTFOUND);
    ck_assert_str_eq(seg_errmsg(db), copy);
    ck_assert_int_eq(seg_errcode(db), SEG_ENOTFOUND);

    /* a success resets both */
    TU_OK(db, seg_customer_add(db, "alice"));
    ck_assert_int_eq(seg_errcode(db), SEG_OK);
    ck_assert_str_eq(seg_errmsg(db), "");

    /* another failure, with another message */
    TU_RC(db, seg_event_ingest(db, &ev), SEG_EINVAL);
    ck_assert_int_eq(seg_errcode(db), SEG_EINVAL);
    TU_MSG_HAS(db, "customer_id");

    /* success again */
    ev.customer_id = "alice";
    TU_OK(db, seg_event_ingest(db, &ev));
    ck_assert_int_eq(seg_errcode(db), SEG_OK);
    ck_assert_str_eq(seg_errmsg(db), "");

    /* a failing lookup, then a successful one */
    TU_RC(db, seg_customer_get(&info, db, "bob"), SEG_ENOTFOUND);
    ck_assert_int_eq(seg_errcode(db), SEG_ENOTFOUND);
    TU_OK(db, seg_customer_get(&info, db, "alice"));
    ck_assert_int_eq(seg_errcode(db), SEG_OK);
    ck_assert_str_eq(seg_errmsg(db), "");
}
END_TEST

/* ======================================================================== */
/* options                                                                   */
/* ======================================================================== */

static void assert_default_options(const seg_db_options *o)
{
    ck_assert_uint_eq(o->struct_size, sizeof(seg_db_options));
    ck_assert_uint_eq(o->flags, SEG_DB_CREATE);
    ck_assert_int_eq(o->currency_exponent, 2);
    ck_assert_ptr_null(o->storage);
    ck_assert_ptr_null(o->allocator);
    ck_assert_ptr_null(o->errbuf);
    ck_assert_uint_eq(o->errbuf_size, 0);
}

START_TEST(open_null_options)
{
    seg_db *d = (seg_db *)&d; /* garbage to be overwritten */
    ck_assert_int_eq(seg_db_open(&d, ":memory:", NULL), SEG_OK);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(seg_db_currency_exponent(d), 2);
    ck_assert_uint_eq(seg_event_count(d), 0);
    ck_assert_uint_eq(seg_customer_count(d), 0);
    ck_assert_int_eq(seg_errcode(d), SEG_OK);
    seg_db_close(d);
}
END_TEST

START_TEST(open_null_uri_is_memory)
{
    seg_db *d = NULL;
    ck_assert_int_eq(seg_db_open(&d, NULL, NULL), SEG_OK);
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(seg_customer_count(d), 0);
    TU_OK(d, seg_customer_add(d, "x"));
    ck_assert_uint_eq(seg_customer_count(d), 1);
    seg_db_close(d);
}
END_TEST

START_TEST(open_null_out)
{
    ck_assert_int_eq(seg_db_open(NULL, ":memory:", NULL), SEG_EINVAL);
}
END_TEST

START_TEST(options_init_macro)
{
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    assert_default_options(&o);
}
END_TEST

START_TEST(options_init_function)
{
    seg_db_options o;
    seg_db *d = NULL;
    memset(&o, 0xAB, sizeof o);
    ck_assert_int_eq(seg_db_options_init(&o, sizeof o), SEG_OK);
    assert_default_options(&o);
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_OK);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(seg_db_currency_exponent(d), 2);
    seg_db_close(d);
}
END_TEST

START_TEST(options_init_null)
{
    ck_assert_int_eq(seg_db_options_init(NULL, sizeof(seg_db_options)), SEG_EINVAL);
}
END_TEST

START_TEST(options_init_too_small)
{
    seg_db_options o;
    memset(&o, 0, sizeof o);
    ck_assert_int_eq(seg_db_options_init(&o, 0), SEG_EVERSION);
    ck_assert_int_eq(seg_db_options_init(&o, sizeof(size_t)), SEG_EVERSION);
    ck_assert_int_eq(seg_db_options_init(&o, offsetof(seg_db_options, errbuf)), SEG_EVERSION);
    ck_assert_int_eq(seg_db_options_init(&o, sizeof(seg_db_options) - 1), SEG_EVERSION);
}
END_TEST

/* a caller compiled against a later release, with one more field */
typedef struct future_options {
    seg_db_options base;
    uint64_t future_field;
    uint32_t future_flags;
} future_options;

START_TEST(options_init_larger)
{
    future_options fo;
    seg_db *d = NULL;
    memset(&fo, 0x5A, sizeof fo);
    ck_assert_int_eq(seg_db_options_init(&fo.base, sizeof fo), SEG_OK);
    ck_assert_uint_eq(fo.base.flags, SEG_DB_CREATE);
    ck_assert_int_eq(fo.base.currency_exponent, 2);
    ck_assert_ptr_null(fo.base.storage);
    ck_assert_ptr_null(fo.base.allocator);
    ck_assert_ptr_null(fo.base.errbuf);
    /* the unknown tail gets the defaults of a later release: zero */
    ck_assert_uint_eq(fo.future_field, 0);
    ck_assert_uint_eq(fo.future_flags, 0);
    fo.base.struct_size = sizeof fo;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &fo.base), SEG_OK);
    ck_assert_ptr_nonnull(d);
    seg_db_close(d);
}
END_TEST

START_TEST(open_struct_size_too_small)
{
    static const size_t sizes[] = { 0, sizeof(size_t), offsetof(seg_db_options, errbuf),
                                    offsetof(seg_db_options, errbuf_size),
                                    sizeof(seg_db_options) - 1 };
    size_t i;
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        seg_db_options o = SEG_DB_OPTIONS_INIT;
        seg_db *d = (seg_db *)&o;
        o.struct_size = sizes[i];
        ck_assert_msg(seg_db_open(&d, ":memory:", &o) == SEG_EVERSION,
                      "struct_size %zu accepted", sizes[i]);
        ck_assert_ptr_null(d);
    }
}
END_TEST

START_TEST(open_struct_larger_zero_tail)
{
    future_options fo;
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    seg_db *d = NULL;
    memset(&fo, 0, sizeof fo);
    fo.base = o;
    fo.base.struct_size = sizeof fo;
    fo.base.currency_exponent = 3;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &fo.base), SEG_OK);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(seg_db_currency_exponent(d), 3);
    seg_db_close(d);
}
END_TEST

START_TEST(open_struct_larger_nonzero_tail)
{
    future_options fo;
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    char errbuf[256];
    seg_db *d = (seg_db *)&fo;
    memset(&fo, 0, sizeof fo);
    memset(errbuf, 0, sizeof errbuf);
    fo.base = o;
    fo.base.struct_size = sizeof fo;
    fo.base.errbuf = errbuf;
    fo.base.errbuf_size = sizeof errbuf;
    fo.future_flags = 1;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &fo.base), SEG_EVERSION);
    ck_assert_ptr_null(d);
    ck_assert_msg(errbuf[0] != '\0', "no message in errbuf");

    /* a single non-zero byte at the very end is enough */
    memset(errbuf, 0, sizeof errbuf);
    fo.future_flags = 0;
    ((unsigned char *)&fo)[sizeof fo - 1] = 1;
    d = (seg_db *)&fo;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &fo.base), SEG_EVERSION);
    ck_assert_ptr_null(d);
}
END_TEST

START_TEST(currency_exponent_valid)
{
    int e;
    for (e = 0; e <= 6; e++) {
        seg_db_options o = SEG_DB_OPTIONS_INIT;
        seg_db *d = NULL;
        o.currency_exponent = e;
        ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_OK);
        ck_assert_int_eq(seg_db_currency_exponent(d), e);
        seg_db_close(d);
    }
}
END_TEST

START_TEST(currency_exponent_out_of_range)
{
    static const int32_t bad[] = { -1, 7, 100, INT32_MIN, INT32_MAX };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        seg_db_options o = SEG_DB_OPTIONS_INIT;
        char errbuf[256];
        seg_db *d = (seg_db *)&o;
        memset(errbuf, 0, sizeof errbuf);
        o.currency_exponent = bad[i];
        o.errbuf = errbuf;
        o.errbuf_size = sizeof errbuf;
        ck_assert_msg(seg_db_open(&d, ":memory:", &o) == SEG_EINVAL,
                      "currency_exponent %d accepted", (int)bad[i]);
        ck_assert_ptr_null(d);
        TU_STR_HAS(errbuf, "currency_exponent");
    }
}
END_TEST

START_TEST(errbuf_truncated)
{
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    char buf[32];
    seg_db *d = NULL;
    size_t i;
    memset(buf, '#', sizeof buf);
    o.currency_exponent = 99;
    o.errbuf = buf;
    o.errbuf_size = 8;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_EINVAL);
    ck_assert_ptr_null(d);
    /* NUL-terminated inside the 8 bytes, nothing written past them */
    ck_assert_msg(memchr(buf, '\0', 8) != NULL, "errbuf not terminated within errbuf_size");
    ck_assert_msg(strlen(buf) == 7, "message should fill the buffer (got %zu bytes)", strlen(buf));
    for (i = 8; i < sizeof buf; i++)
        ck_assert_msg(buf[i] == '#', "byte %zu past errbuf_size written", i);
}
END_TEST

START_TEST(errbuf_size_zero)
{
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    char buf[16];
    seg_db *d = NULL;
    size_t i;
    memset(buf, '#', sizeof buf);
    o.currency_exponent = -5;
    o.errbuf = buf;
    o.errbuf_size = 0;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_EINVAL);
    ck_assert_ptr_null(d);
    for (i = 0; i < sizeof buf; i++)
        ck_assert_msg(buf[i] == '#', "byte %zu written with errbuf_size 0", i);
}
END_TEST

START_TEST(errbuf_untouched_on_success)
{
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    char buf[16];
    seg_db *d = NULL;
    memset(buf, '#', sizeof buf);
    buf[15] = '\0';
    o.errbuf = buf;
    o.errbuf_size = sizeof buf;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_OK);
    ck_assert_ptr_nonnull(d);
    seg_db_close(d);
    /* either untouched or emptied, never a message */
    ck_assert_msg(buf[0] == '#' || buf[0] == '\0', "errbuf written on success: %s", buf);
}
END_TEST

/* ======================================================================== */
/* allocator                                                                 */
/* ======================================================================== */

/* a varied batch: several customers, multi-line orders, refunds, engagements */
#define WORK_N 24
static void work_events(seg_event *ev)
{
    static char ids[WORK_N][16];
    static const char *custs[] = { "alice", "bob", "carol", "dave" };
    static char orders[WORK_N][32];
    int i;
    for (i = 0; i < WORK_N; i++) {
        const char *c = custs[i % 4];
        snprintf(ids[i], sizeof ids[i], "w%d", i);
        /* events i and i+4 of one customer share an order: multi-line orders */
        snprintf(orders[i], sizeof orders[i], "o%d-%s", i / 8, c);
        if (i % 6 == 5) {
            ev[i] = tu_engagement(ids[i], c, TU_DAYN(i), "email_open");
        } else if (i % 6 == 4 && i >= 8) {
            /* refund part of an earlier order of the same customer */
            snprintf(orders[i], sizeof orders[i], "o%d-%s", (i - 8) / 8, c);
            ev[i] = tu_refund(ids[i], c, TU_DAYN(i), -10, orders[i]);
        } else {
            ev[i] = tu_purchase(ids[i], c, TU_DAYN(i % 7) + i, 1000 + i, orders[i]);
            ev[i].channel = "web";
            ev[i].category = "shoes";
            ev[i].sku = "sku-1";
        }
    }
}

START_TEST(allocator_used_and_all_freed)
{
    tu_alloc a;
    seg_allocator al;
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    seg_db *d = NULL;
    seg_event ev[WORK_N];
    seg_value v;
    char *newid = NULL;

    memset(&a, 0, sizeof a);
    a.fail_after = -1;
    al = tu_allocator(&a);
    o.allocator = &al;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_OK);
    ck_assert_msg(a.mallocs + a.reallocs > 0, "the host allocator was not used by seg_db_open");

    work_events(ev);
    TU_OK(d, seg_event_ingest_batch(d, ev, WORK_N, NULL, NULL));
    ck_assert_uint_eq(seg_event_count(d), WORK_N);
    memset(&v, 0, sizeof v);
    v.type = SEG_TYPE_STRING;
    v.s = "Berlin";
    TU_OK(d, seg_customer_set_attr(d, "alice", "city", &v));
    TU_OK(d, seg_customer_set_consent(d, "alice", "email", SEG_CONSENT_GRANTED));
    TU_OK(d, seg_customer_anonymize(d, "bob", &newid));
    ck_assert_ptr_nonnull(newid);
    seg_free(newid);
    TU_OK(d, seg_customer_erase(d, "carol"));
    ck_assert_msg(a.live_blocks > 0, "nothing allocated through the host allocator");
    seg_db_close(d);
    ck_assert_msg(a.live_blocks == 0, "%ld blocks leaked", a.live_blocks);
    ck_assert_msg(a.live_bytes == 0, "%lld bytes leaked", a.live_bytes);
}
END_TEST

START_TEST(allocator_missing_function)
{
    tu_alloc a;
    seg_allocator al;
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    seg_db *d = (seg_db *)&o;
    memset(&a, 0, sizeof a);
    a.fail_after = -1;
    al = tu_allocator(&a);
    al.free = NULL;
    o.allocator = &al;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_EINVAL);
    ck_assert_ptr_null(d);
    ck_assert_int_eq(a.live_blocks, 0);
}
END_TEST

START_TEST(allocator_fails_during_open)
{
    long n;
    int opened = 0;
    for (n = 0; n < 100000 && !opened; n++) {
        tu_alloc a;
        seg_allocator al;
        seg_db_options o = SEG_DB_OPTIONS_INIT;
        seg_db *d = (seg_db *)&o;
        char errbuf[128];
        int rc;
        memset(&a, 0, sizeof a);
        a.fail_after = n;
        al = tu_allocator(&a);
        o.allocator = &al;
        o.errbuf = errbuf;
        o.errbuf_size = sizeof errbuf;
        rc = seg_db_open(&d, ":memory:", &o);
        if (rc == SEG_OK) {
            ck_assert_ptr_nonnull(d);
            ck_assert_msg(n > 0, "seg_db_open succeeded without any allocation");
            /* usable */
            a.fail_after = -1;
            TU_OK(d, seg_customer_add(d, "c"));
            seg_db_close(d);
            opened = 1;
        } else {
            ck_assert_msg(rc == SEG_ENOMEM, "fail after %ld: seg_db_open returned %d", n, rc);
            ck_assert_ptr_null(d);
            ck_assert_msg(a.failures > 0, "ENOMEM without a refused allocation");
        }
        ck_assert_msg(a.live_blocks == 0, "fail after %ld: %ld blocks leaked", n, a.live_blocks);
    }
    ck_assert_msg(opened, "seg_db_open never succeeded");
}
END_TEST

START_TEST(allocator_fails_during_ingest)
{
    seg_event ev[WORK_N];
    seg_db *ref = NULL;
    tu_snapshot want;
    long n;
    int done = 0;

    /* the expected end state, built with plain malloc */
    work_events(ev);
    ck_assert_int_eq(seg_db_open(&ref, ":memory:", NULL), SEG_OK);
    TU_OK(ref, seg_event_ingest(ref, &ev[0]));
    TU_OK(ref, seg_event_ingest_batch(ref, ev + 1, WORK_N - 1, NULL, NULL));
    tu_snap_take(&want, ref, 0);
    seg_db_close(ref);

    for (n = 0; n < 100000 && !done; n++) {
        tu_alloc a;
        seg_allocator al;
        seg_db_options o = SEG_DB_OPTIONS_INIT;
        seg_db *d = NULL;
        seg_ingest_stats st = SEG_INGEST_STATS_INIT;
        tu_snapshot before;
        int rc;

        memset(&a, 0, sizeof a);
        a.fail_after = -1;
        al = tu_allocator(&a);
        o.allocator = &al;
        ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_OK);
        TU_OK(d, seg_event_ingest(d, &ev[0]));
        tu_snap_take(&before, d, 0);

        a.fail_after = (long)a.attempts + n;
        rc = seg_event_ingest_batch(d, ev + 1, WORK_N - 1, NULL, &st);
        a.fail_after = -1;
        if (rc == SEG_OK) {
            done = 1;
            ck_assert_uint_eq(st.accepted, WORK_N - 1);
        } else {
            ck_assert_msg(rc == SEG_ENOMEM, "fail after %ld more: ingest returned %d (%s)", n, rc,
                          seg_errmsg(d));
            ck_assert_int_eq(seg_errcode(d), SEG_ENOMEM);
            ck_assert_uint_eq(st.accepted, 0);
            TU_UNCHANGED(d, &before);
            /* still usable: the same batch goes in now */
            TU_OK(d, seg_event_ingest_batch(d, ev + 1, WORK_N - 1, NULL, NULL));
        }
        {
            tu_snapshot got;
            const char *why;
            tu_snap_take(&got, d, 0);
            why = tu_snap_diff(&want, &got, 1);
            ck_assert_msg(why == NULL, "fail after %ld: end state differs: %s", n, why);
            tu_snap_free(&got);
        }
        tu_snap_free(&before);
        seg_db_close(d);
        ck_assert_msg(a.live_blocks == 0, "fail after %ld: %ld blocks leaked", n, a.live_blocks);
    }
    ck_assert_msg(done, "the batch never went in");
    tu_snap_free(&want);
}
END_TEST

START_TEST(allocator_fails_during_single_ingest)
{
    long n;
    int done = 0;
    for (n = 0; n < 100000 && !done; n++) {
        tu_alloc a;
        seg_allocator al;
        seg_db_options o = SEG_DB_OPTIONS_INIT;
        seg_db *d = NULL;
        seg_event e = tu_purchase(NULL, "fresh-customer", TU_D0, 500, "order-1");
        int rc;
        memset(&a, 0, sizeof a);
        a.fail_after = -1;
        al = tu_allocator(&a);
        o.allocator = &al;
        ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_OK);
        a.fail_after = (long)a.attempts + n;
        rc = seg_event_ingest(d, &e);
        a.fail_after = -1;
        if (rc == SEG_OK) {
            done = 1;
            ck_assert_uint_eq(seg_event_count(d), 1);
            ck_assert_uint_eq(seg_customer_count(d), 1);
        } else {
            ck_assert_msg(rc == SEG_ENOMEM, "fail after %ld: %d", n, rc);
            ck_assert_uint_eq(seg_event_count(d), 0);
            ck_assert_uint_eq(seg_customer_count(d), 0);
            TU_OK(d, seg_event_ingest(d, &e));
            ck_assert_uint_eq(seg_event_count(d), 1);
        }
        seg_db_close(d);
        ck_assert_msg(a.live_blocks == 0, "fail after %ld: %ld blocks leaked", n, a.live_blocks);
    }
    ck_assert(done);
}
END_TEST

START_TEST(allocator_fails_during_set_attr)
{
    long n;
    int done = 0;
    for (n = 0; n < 100000 && !done; n++) {
        tu_alloc a;
        seg_allocator al;
        seg_db_options o = SEG_DB_OPTIONS_INIT;
        seg_db *d = NULL;
        seg_value v, got;
        int rc;
        memset(&a, 0, sizeof a);
        a.fail_after = -1;
        al = tu_allocator(&a);
        o.allocator = &al;
        ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_OK);
        memset(&v, 0, sizeof v);
        v.type = SEG_TYPE_STRING;
        v.s = "a fairly long string value that will need its own allocation";
        a.fail_after = (long)a.attempts + n;
        rc = seg_customer_set_attr(d, "new-customer", "motto", &v);
        a.fail_after = -1;
        if (rc == SEG_OK) {
            done = 1;
            ck_assert_uint_eq(seg_customer_count(d), 1);
            TU_OK(d, seg_customer_get_attr(&got, d, "new-customer", "motto"));
            ck_assert_uint_eq(got.type, SEG_TYPE_STRING);
            ck_assert_str_eq(got.s, v.s);
        } else {
            ck_assert_msg(rc == SEG_ENOMEM, "fail after %ld: %d", n, rc);
            ck_assert_uint_eq(seg_customer_count(d), 0);
        }
        seg_db_close(d);
        ck_assert_msg(a.live_blocks == 0, "fail after %ld: %ld blocks leaked", n, a.live_blocks);
    }
    ck_assert(done);
}
END_TEST

START_TEST(allocator_seg_free_of_anonymized_id)
{
    tu_alloc a;
    seg_allocator al;
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    seg_db *d = NULL;
    seg_event e = tu_purchase("p1", "victim", TU_D0, 100, NULL);
    char *id = NULL;
    long live_before;
    memset(&a, 0, sizeof a);
    a.fail_after = -1;
    al = tu_allocator(&a);
    o.allocator = &al;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_OK);
    TU_OK(d, seg_event_ingest(d, &e));
    TU_OK(d, seg_customer_anonymize(d, "victim", &id));
    ck_assert_ptr_nonnull(id);
    live_before = a.live_blocks;
    seg_free(id); /* goes back to the host allocator */
    ck_assert_msg(a.live_blocks == live_before - 1,
                  "seg_free did not release the id through the host allocator");
    seg_db_close(d);
    ck_assert_int_eq(a.live_blocks, 0);
    /* and after the handle is closed: the memory still goes back to it */
    d = NULL;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_OK);
    e = tu_purchase("p2", "other", TU_D0, 100, NULL);
    TU_OK(d, seg_event_ingest(d, &e));
    TU_OK(d, seg_customer_anonymize(d, "other", &id));
    seg_db_close(d);
    ck_assert_int_eq(a.live_blocks, 1);
    seg_free(id);
    ck_assert_int_eq(a.live_blocks, 0);
}
END_TEST

/* ======================================================================== */
/* handle lifetime, read-only                                                */
/* ======================================================================== */

START_TEST(close_null_is_noop)
{
    seg_db_close(NULL);
}
END_TEST

START_TEST(free_null_is_noop)
{
    seg_free(NULL);
}
END_TEST

START_TEST(currency_exponent_default)
{
    ck_assert_int_eq(seg_db_currency_exponent(db), 2);
}
END_TEST

START_TEST(readonly_rejects_writes)
{
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    seg_db *d = NULL;
    seg_event e = tu_purchase("e1", "c1", TU_D0, 100, NULL);
    seg_value v;
    seg_customer_info info = SEG_CUSTOMER_INFO_INIT;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    char *newid = (char *)&o;
    static const char csv[] = "customer_id,ts,amount\nc1,2024-03-01,1.00\n";
    static const char ccsv[] = "customer_id,city:string\nc1,Berlin\n";

    o.flags = SEG_DB_READONLY;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_OK);
    ck_assert_ptr_nonnull(d);

    TU_RC(d, seg_event_ingest(d, &e), SEG_EREADONLY);
    ck_assert_int_eq(seg_errcode(d), SEG_EREADONLY);
    ck_assert_msg(seg_errmsg(d)[0] != '\0', "no message");
    TU_RC(d, seg_event_ingest_batch(d, &e, 1, NULL, &st), SEG_EREADONLY);
    ck_assert_uint_eq(st.accepted, 0);
    TU_RC(d, seg_customer_add(d, "c1"), SEG_EREADONLY);
    memset(&v, 0, sizeof v);
    v.type = SEG_TYPE_INT;
    v.i = 1;
    TU_RC(d, seg_customer_set_attr(d, "c1", "n", &v), SEG_EREADONLY);
    TU_RC(d, seg_customer_set_consent(d, "c1", "email", SEG_CONSENT_GRANTED), SEG_EREADONLY);
    TU_RC(d, seg_customer_erase(d, "c1"), SEG_EREADONLY);
    TU_RC(d, seg_customer_anonymize(d, "c1", &newid), SEG_EREADONLY);
    ck_assert_ptr_null(newid);
    TU_RC(d, seg_event_import_csv(d, csv, sizeof csv - 1, NULL, NULL), SEG_EREADONLY);
    TU_RC(d, seg_customer_import_csv(d, ccsv, sizeof ccsv - 1, NULL), SEG_EREADONLY);

    /* reads work and see nothing */
    ck_assert_uint_eq(seg_event_count(d), 0);
    ck_assert_uint_eq(seg_customer_count(d), 0);
    TU_RC(d, seg_customer_get(&info, d, "c1"), SEG_ENOTFOUND);
    seg_db_close(d);
}
END_TEST

START_TEST(readonly_rejects_attr_declare)
{
    /* declaring a type changes the database: a write like any other */
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    seg_db *d = NULL;
    o.flags = SEG_DB_READONLY;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_OK);
    TU_RC(d, seg_attr_declare(d, "age", SEG_TYPE_INT), SEG_EREADONLY);
    ck_assert_uint_eq(seg_attr_type(d, "age"), SEG_TYPE_NULL);
    seg_db_close(d);
}
END_TEST

/* ======================================================================== */
/* time and money text                                                       */
/* ======================================================================== */

static int parse_time(int64_t *out, const char *s)
{
    return seg_time_parse(out, s, strlen(s));
}

START_TEST(time_parse_forms)
{
    int64_t t = -1;
    ck_assert_int_eq(parse_time(&t, "2024-03-01T10:00:00Z"), SEG_OK);
    ck_assert_int_eq(t, INT64_C(1709287200));
    ck_assert_int_eq(parse_time(&t, "2024-03-01"), SEG_OK);
    ck_assert_int_eq(t, INT64_C(1709251200));
    ck_assert_int_eq(parse_time(&t, "2024-03-01 10:00:00"), SEG_OK);
    ck_assert_int_eq(t, INT64_C(1709287200));
    ck_assert_int_eq(parse_time(&t, "2024-03-01T10:00:00.987Z"), SEG_OK);
    ck_assert_int_eq(t, INT64_C(1709287200));
    ck_assert_int_eq(parse_time(&t, "2024-03-01T12:00:00+02:00"), SEG_OK);
    ck_assert_int_eq(t, INT64_C(1709287200));
    ck_assert_int_eq(parse_time(&t, "2024-03-01T05:30:00-04:30"), SEG_OK);
    ck_assert_int_eq(t, INT64_C(1709287200));
    ck_assert_int_eq(parse_time(&t, "1709287200"), SEG_OK);
    ck_assert_int_eq(t, INT64_C(1709287200));
    ck_assert_int_eq(parse_time(&t, "1970-01-01T00:00:00Z"), SEG_OK);
    ck_assert_int_eq(t, 0);
    ck_assert_int_eq(parse_time(&t, "0001-01-01T00:00:00Z"), SEG_OK);
    ck_assert_int_eq(t, SEG_TIME_MIN);
    ck_assert_int_eq(parse_time(&t, "9999-12-31T23:59:59Z"), SEG_OK);
    ck_assert_int_eq(t, SEG_TIME_MAX);
    ck_assert_int_eq(parse_time(&t, "2024-02-29"), SEG_OK); /* leap day */
    ck_assert_int_eq(t, INT64_C(1709164800));
}
END_TEST

START_TEST(time_parse_length_not_nul)
{
    int64_t t = 0;
    /* only the first len bytes are read */
    ck_assert_int_eq(seg_time_parse(&t, "2024-03-01garbage", 10), SEG_OK);
    ck_assert_int_eq(t, INT64_C(1709251200));
}
END_TEST

START_TEST(time_parse_errors)
{
    static const char *bad[] = { "", "garbage", "2024-13-01", "2024-02-30", "2023-02-29",
                                 "2024-03-01T25:00:00Z", "2024-03-01T10:61:00Z",
                                 "12abc", "2024-03-01T10:00:00Zjunk", " " };
    size_t i;
    int64_t t;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = 12345;
        ck_assert_msg(parse_time(&t, bad[i]) == SEG_EINVAL, "\"%s\" accepted", bad[i]);
        ck_assert_msg(t == 0, "\"%s\": *out not 0 on failure", bad[i]);
    }
    t = 12345;
    ck_assert_int_eq(parse_time(&t, "253402300800"), SEG_ERANGE); /* SEG_TIME_MAX + 1 */
    ck_assert_int_eq(t, 0);
    t = 12345;
    ck_assert_int_eq(parse_time(&t, "-62135596801"), SEG_ERANGE); /* SEG_TIME_MIN - 1 */
    ck_assert_int_eq(t, 0);
    t = 12345;
    ck_assert_int_eq(parse_time(&t, "99999999999999999999999"), SEG_ERANGE);
    ck_assert_int_eq(t, 0);
}
END_TEST

START_TEST(time_format)
{
    char buf[32];
    memset(buf, 'x', sizeof buf);
    ck_assert_uint_eq(seg_time_format(buf, sizeof buf, INT64_C(1709287200)), 20);
    ck_assert_str_eq(buf, "2024-03-01T10:00:00Z");
    ck_assert_uint_eq(seg_time_format(buf, 21, 0), 20);
    ck_assert_str_eq(buf, "1970-01-01T00:00:00Z");
    ck_assert_uint_eq(seg_time_format(buf, 21, -1), 20);
    ck_assert_str_eq(buf, "1969-12-31T23:59:59Z");
    ck_assert_uint_eq(seg_time_format(buf, 21, SEG_TIME_MIN), 20);
    ck_assert_str_eq(buf, "0001-01-01T00:00:00Z");
    ck_assert_uint_eq(seg_time_format(buf, 21, SEG_TIME_MAX), 20);
    ck_assert_str_eq(buf, "9999-12-31T23:59:59Z");
    ck_assert_uint_eq(seg_time_format(buf, 20, 0), 0);
    ck_assert_uint_eq(seg_time_format(buf, sizeof buf, SEG_TIME_MAX + 1), 0);
    ck_assert_uint_eq(seg_time_format(buf, sizeof buf, SEG_TIME_MIN - 1), 0);
}
END_TEST

START_TEST(time_round_trip)
{
    static const int64_t ts[] = { 0, -1, 86399, 86400, INT64_C(951782400) /* 2000-02-29 */,
                                  INT64_C(1709337599), INT64_C(4102444800), SEG_TIME_MIN,
                                  SEG_TIME_MAX, INT64_C(-2208988800) };
    size_t i;
    for (i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        char buf[21];
        int64_t back = 0;
        ck_assert_uint_eq(seg_time_format(buf, sizeof buf, ts[i]), 20);
        ck_assert_int_eq(seg_time_parse(&back, buf, 20), SEG_OK);
        ck_assert_msg(back == ts[i], "%s: %" PRId64 " != %" PRId64, buf, back, ts[i]);
    }
}
END_TEST

static int parse_money(int64_t *out, const char *s, int e)
{
    return seg_money_parse(out, s, strlen(s), e);
}

START_TEST(money_parse)
{
    int64_t m = 0;
    ck_assert_int_eq(parse_money(&m, "12.50", 2), SEG_OK);
    ck_assert_int_eq(m, 1250);
    ck_assert_int_eq(parse_money(&m, "-3", 2), SEG_OK);
    ck_assert_int_eq(m, -300);
    ck_assert_int_eq(parse_money(&m, "+0.5", 2), SEG_OK);
    ck_assert_int_eq(m, 50);
    ck_assert_int_eq(parse_money(&m, "12.340", 2), SEG_OK); /* extra zeros are fine */
    ck_assert_int_eq(m, 1234);
    ck_assert_int_eq(parse_money(&m, "7", 0), SEG_OK);
    ck_assert_int_eq(m, 7);
    ck_assert_int_eq(parse_money(&m, "0.000001", 6), SEG_OK);
    ck_assert_int_eq(m, 1);
    ck_assert_int_eq(parse_money(&m, "9999999999999.99", 2), SEG_OK);
    ck_assert_int_eq(m, SEG_AMOUNT_MAX);
    ck_assert_int_eq(parse_money(&m, "-9999999999999.99", 2), SEG_OK);
    ck_assert_int_eq(m, -SEG_AMOUNT_MAX);
}
END_TEST

START_TEST(money_parse_errors)
{
    static const char *bad[] = { "", "abc", "12.345", "1e3", "1,000", "12.5.0", "--1", ".",
                                 "12.", "1 000", "0x10" };
    size_t i;
    int64_t m;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc;
        m = 99;
        rc = parse_money(&m, bad[i], 2);
        /* "12." is arguably fine; everything else must fail */
        if (strcmp(bad[i], "12.") == 0 && rc == SEG_OK) {
            ck_assert_int_eq(m, 1200);
            continue;
        }
        ck_assert_msg(rc == SEG_EINVAL, "\"%s\" -> %d", bad[i], rc);
    }
    ck_assert_int_eq(parse_money(&m, "10000000000000.00", 2), SEG_ERANGE);
    ck_assert_int_eq(parse_money(&m, "99999999999999999999999", 0), SEG_ERANGE);
    ck_assert_int_eq(parse_money(&m, "1", 7), SEG_EINVAL);
    ck_assert_int_eq(parse_money(&m, "1", -1), SEG_EINVAL);
}
END_TEST

START_TEST(money_format)
{
    char buf[64];
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, 1250, 2), 5);
    ck_assert_str_eq(buf, "12.50");
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, -300, 2), 5);
    ck_assert_str_eq(buf, "-3.00");
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, 5, 2), 4);
    ck_assert_str_eq(buf, "0.05");
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, -5, 2), 5);
    ck_assert_str_eq(buf, "-0.05");
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, 0, 2), 4);
    ck_assert_str_eq(buf, "0.00");
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, 12, 0), 2);
    ck_assert_str_eq(buf, "12");
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, SEG_AMOUNT_MAX, 2), 16);
    ck_assert_str_eq(buf, "9999999999999.99");
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, INT64_MIN, 2), 21);
    ck_assert_str_eq(buf, "-92233720368547758.08");
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, 1, 6), 8);
    ck_assert_str_eq(buf, "0.000001");
    /* too small a buffer: 0 */
    ck_assert_uint_eq(seg_money_format(buf, 5, 1250, 2), 0);
    ck_assert_uint_eq(seg_money_format(buf, 6, 1250, 2), 5);
}
END_TEST

/* ======================================================================== */

Suite *core_suite(void)
{
    Suite *s = suite_create("core");
    TCase *tc;

    tc = tcase_create("version");
    tcase_add_test(tc, version_number);
    tcase_add_test(tc, version_string);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, errstr_every_code);
    tcase_add_test(tc, errstr_numbers_fixed);
    tcase_add_test(tc, errstr_unknown_code);
    tcase_add_test(tc, errmsg_null_handle);
    tcase_add_test(tc, errmsg_fresh_db);
    tcase_add_test(tc, errmsg_after_failure_then_success);
    suite_add_tcase(s, tc);

    tc = tcase_create("options");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, open_null_options);
    tcase_add_test(tc, open_null_uri_is_memory);
    tcase_add_test(tc, open_null_out);
    tcase_add_test(tc, options_init_macro);
    tcase_add_test(tc, options_init_function);
    tcase_add_test(tc, options_init_null);
    tcase_add_test(tc, options_init_too_small);
    tcase_add_test(tc, options_init_larger);
    tcase_add_test(tc, open_struct_size_too_small);
    tcase_add_test(tc, open_struct_larger_zero_tail);
    tcase_add_test(tc, open_struct_larger_nonzero_tail);
    tcase_add_test(tc, currency_exponent_valid);
    tcase_add_test(tc, currency_exponent_out_of_range);
    tcase_add_test(tc, currency_exponent_default);
    tcase_add_test(tc, errbuf_truncated);
    tcase_add_test(tc, errbuf_size_zero);
    tcase_add_test(tc, errbuf_untouched_on_success);
    suite_add_tcase(s, tc);

    tc = tcase_create("allocator");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, allocator_used_and_all_freed);
    tcase_add_test(tc, allocator_missing_function);
    tcase_add_test(tc, allocator_fails_during_open);
    tcase_add_test(tc, allocator_fails_during_ingest);
    tcase_add_test(tc, allocator_fails_during_single_ingest);
    tcase_add_test(tc, allocator_fails_during_set_attr);
    tcase_add_test(tc, allocator_seg_free_of_anonymized_id);
    suite_add_tcase(s, tc);

    tc = tcase_create("handle");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, close_null_is_noop);
    tcase_add_test(tc, free_null_is_noop);
    tcase_add_test(tc, readonly_rejects_writes);
    tcase_add_test(tc, readonly_rejects_attr_declare);
    suite_add_tcase(s, tc);

    tc = tcase_create("text");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, time_parse_forms);
    tcase_add_test(tc, time_parse_length_not_nul);
    tcase_add_test(tc, time_parse_errors);
    tcase_add_test(tc, time_format);
    tcase_add_test(tc, time_round_trip);
    tcase_add_test(tc, money_parse);
    tcase_add_test(tc, money_parse_errors);
    tcase_add_test(tc, money_format);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(core_suite());
    int failures;
    srunner_run_all(sr, CK_ENV);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures ? 1 : 0;
}
