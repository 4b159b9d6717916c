/*
 * tests/check_csv.c: time and money text, the event CSV import and the
 * customer CSV import.  Public API only.
 */
#include "testutil.h"

#include <limits.h>
#include <math.h>
#include <unistd.h>

Suite *csv_suite(void);

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

static seg_db *open_exp(int exponent)
{
    seg_db *d = NULL;
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    o.currency_exponent = exponent;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_OK);
    return d;
}

/* the db's message must start with `prefix` */
#define MSG_STARTS(d, prefix) do { \
        const char *m_ = seg_errmsg(d); \
        ck_assert_msg(strncmp(m_, (prefix), strlen(prefix)) == 0, \
                      "message \"%s\" does not start with \"%s\"", m_, (prefix)); \
    } while (0)

static int imp(const char *csv, const seg_csv_options *o, seg_ingest_stats *st)
{
    return seg_event_import_csv(db, csv, strlen(csv), o, st);
}

static int imp_cust(const char *csv)
{
    return seg_customer_import_csv(db, csv, strlen(csv), NULL);
}

/* all stored events, in ingest order */
static tu_ev_list events_of(seg_db *d)
{
    tu_ev_list l;
    memset(&l, 0, sizeof l);
    ck_assert_int_eq(seg_event_foreach(d, NULL, tu_ev_collect_cb, &l), SEG_OK);
    return l;
}

/* a temporary file holding `data`; the caller unlinks and frees the name */
static char *temp_file(const char *data, size_t len)
{
    char *path = strdup("/tmp/check_csv_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        ck_assert_int_gt(w, 0);
        off += (size_t)w;
    }
    close(fd);
    return path;
}

/* a growing text buffer */
typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        ck_assert_int_ge(k, 0);
        if (b->p && (size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->n + (size_t)k + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        ck_assert_ptr_nonnull(b->p);
        b->cap = cap;
    }
}

/* rejected rows reported by on_reject */
typedef struct rejects {
    size_t n;
    size_t index[32];
    int code[32];
    char msg[32][512];
} rejects;

static void on_reject(size_t index, int code, const char *reason, void *payload)
{
    rejects *r = payload;
    if (r->n < 32) {
        r->index[r->n] = index;
        r->code[r->n] = code;
        snprintf(r->msg[r->n], sizeof r->msg[r->n], "%s", reason ? reason : "(null)");
    }
    r->n++;
}

/* ======================================================================== */
/* time text                                                                 */
/* ======================================================================== */

static int ptime(int64_t *t, const char *s)
{
    return seg_time_parse(t, s, strlen(s));
}

START_TEST(time_round_trip_every_few_days)
{
    /* from year 1 to 9999, a step that walks through all times of day */
    char buf[32], date[16];
    int64_t t, u;
    /* (plain ifs: a Check assertion costs a system call) */
    for (t = SEG_TIME_MIN; t <= SEG_TIME_MAX; t += 3 * TU_DAY + 3607) {
        if (seg_time_format(buf, sizeof buf, t) != 20)
            ck_abort_msg("format %" PRId64 " failed", t);
        if (seg_time_parse(&u, buf, 20) != SEG_OK || u != t)
            ck_abort_msg("%s -> %" PRId64 ", expected %" PRId64, buf, u, t);
        memcpy(date, buf, 10);
        if (seg_time_parse(&u, date, 10) != SEG_OK ||
            u != t - (((t % TU_DAY) + TU_DAY) % TU_DAY))
            ck_abort_msg("%.10s -> %" PRId64 " (from %" PRId64 ")", date, u, t);
    }
    ck_assert_uint_eq(seg_time_format(buf, sizeof buf, SEG_TIME_MAX), 20);
    ck_assert_int_eq(seg_time_parse(&u, buf, 20), SEG_OK);
    ck_assert_int_eq(u, SEG_TIME_MAX);
}
END_TEST

START_TEST(time_known_values)
{
    static const struct {
        const char *s;
        int64_t t;
    } ok[] = {
        { "1970-01-01", 0 },
        { "1970-01-01T00:00:00Z", 0 },
        { "1969-12-31T23:59:59Z", -1 },
        { "2000-02-29", INT64_C(951782400) },
        { "2024-02-29T12:00:00Z", INT64_C(1709208000) },
        { "2024-03-01T10:00:00Z", INT64_C(1709287200) },
        { "2024-03-01t10:00:00z", INT64_C(1709287200) },
        { "2024-03-01 10:00:00", INT64_C(1709287200) },
        { "2024-03-01T10:00:00", INT64_C(1709287200) },
        { "2024-03-01T10:00", INT64_C(1709287200) },
        { "2024-03-01T10:00:00.999Z", INT64_C(1709287200) },
        { "2024-03-01T10:00:00,5Z", INT64_C(1709287200) },
        { "2024-03-01T10:00:00.123456789", INT64_C(1709287200) },
        { "2024-03-01T11:00:00+01:00", INT64_C(1709287200) },
        { "2024-03-01T11:00:00+0100", INT64_C(1709287200) },
        { "2024-03-01T11:00:00+01", INT64_C(1709287200) },
        { "2024-03-01T04:30:00-05:30", INT64_C(1709287200) },
        { "2024-03-01T10:00:00.75-00:00", INT64_C(1709287200) },
        { "2024-03-01T00:30:00+01:00", INT64_C(1709249400) }, /* previous UTC day */
        /* a fraction is dropped: the floor, also before 1970 */
        { "1969-12-31T23:59:59.9Z", -1 },
        { "1969-12-31T23:59:59.9-01:00", 3599 },
        { "1709287200", INT64_C(1709287200) },
        { "+1709287200", INT64_C(1709287200) },
        { "-1", -1 },
        { "-0", 0 },
        { "0", 0 },
        { "-86400", -86400 },
        { "0001-01-01", SEG_TIME_MIN },
        { "0001-01-01T00:00:00Z", SEG_TIME_MIN },
        { "9999-12-31T23:59:59Z", SEG_TIME_MAX },
        { "-62135596800", SEG_TIME_MIN },
        { "253402300799", SEG_TIME_MAX },
        /* year 0 is out of range, except when an offset brings it into year 1 */
        { "0000-12-31T23:00:00-02:00", SEG_TIME_MIN + 3600 },
        { "9999-12-31T23:59:59+00:01", SEG_TIME_MAX - 60 },
    };
    size_t i;
    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t t = 12345;
        int rc = ptime(&t, ok[i].s);
        ck_assert_msg(rc == SEG_OK, "\"%s\" -> %d", ok[i].s, rc);
        ck_assert_msg(t == ok[i].t, "\"%s\" -> %" PRId64 ", expected %" PRId64, ok[i].s, t,
                      ok[i].t);
    }
}
END_TEST

START_TEST(time_leap_days)
{
    static const struct {
        const char *s;
        int ok;
    } days[] = {
        { "2000-02-29", 1 }, { "1900-02-29", 0 }, { "2100-02-29", 0 }, { "2400-02-29", 1 },
        { "2024-02-29", 1 }, { "2023-02-29", 0 }, { "0004-02-29", 1 }, { "0001-02-29", 0 },
        { "9996-02-29", 1 }, { "9999-02-29", 0 }, { "1600-02-29", 1 }, { "2024-02-30", 0 },
        { "2024-04-31", 0 }, { "2024-04-30", 1 }, { "2024-12-31", 1 }, { "2024-12-32", 0 },
        { "2024-01-00", 0 }, { "2024-00-10", 0 }, { "2024-13-01", 0 },
    };
    size_t i;
    for (i = 0; i < sizeof days / sizeof days[0]; i++) {
        int64_t t;
        int rc = ptime(&t, days[i].s);
        ck_assert_msg(rc == (days[i].ok ? SEG_OK : SEG_EINVAL), "\"%s\" -> %d", days[i].s, rc);
        if (days[i].ok) {
            char buf[32];
            ck_assert_uint_eq(seg_time_format(buf, sizeof buf, t), 20);
            ck_assert_msg(strncmp(buf, days[i].s, 10) == 0, "%s formats as %s", days[i].s,
                          buf);
        }
    }
    /* the day after a leap day */
    int64_t a, b;
    ck_assert_int_eq(ptime(&a, "2024-02-29"), SEG_OK);
    ck_assert_int_eq(ptime(&b, "2024-03-01"), SEG_OK);
    ck_assert_int_eq(b - a, TU_DAY);
    ck_assert_int_eq(ptime(&a, "2100-02-28"), SEG_OK);
    ck_assert_int_eq(ptime(&b, "2100-03-01"), SEG_OK);
    ck_assert_int_eq(b - a, TU_DAY);
}
END_TEST

START_TEST(time_invalid_forms)
{
    static const char *bad[] = {
        "", " ", "-", "+", "x", "12abc", "1.5", "1e9", " 1", "1 ", "--1",
        "2024-3-01", "2024-03-1", "24-03-01", "2024/03/01", "2024-03-01T", "2024-03-01Z",
        "2024-03-01 ", "2024-03-01T10", "2024-03-01T10:0", "2024-03-01T1:00:00",
        "2024-03-01T10:00:0", "2024-03-01T10:00:00.", "2024-03-01T10:00:00.Z",
        "2024-03-01T10:00:00ZZ", "2024-03-01T10:00:00Z ", "2024-03-01T10:00:00+1",
        "2024-03-01T10:00:00+01:", "2024-03-01T10:00:00+01:0", "2024-03-01T10:00:00+24:00",
        "2024-03-01T10:00:00+01:60", "2024-03-01T10:00:00 +01:00", "2024-03-01T24:00:00Z",
        "2024-03-01T23:60:00Z", "2024-03-01T23:59:60Z", /* no leap seconds */
        "2024-03-01X10:00:00Z", "2024-03-01T10-00-00Z", "2024-03-01T10:00:00UTC",
        "２０２４-03-01", "2024-03-01T10:00:00\xc3\xa9",
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t t = 777;
        int rc = ptime(&t, bad[i]);
        ck_assert_msg(rc == SEG_EINVAL, "\"%s\" -> %d, expected SEG_EINVAL", bad[i], rc);
        ck_assert_msg(t == 0, "\"%s\": *out = %" PRId64 " on failure", bad[i], t);
    }
    int64_t t = 5;
    ck_assert_int_eq(seg_time_parse(&t, NULL, 0), SEG_EINVAL);
    ck_assert_int_eq(t, 0);
    ck_assert_int_eq(seg_time_parse(NULL, "0", 1), SEG_EINVAL);
}
END_TEST

START_TEST(time_out_of_range)
{
    static const char *far[] = {
        "253402300800", "-62135596801", "99999999999999999999999", "-99999999999999999999",
        "0000-01-01", "0000-12-31T23:59:59Z", "0001-01-01T00:00:00+00:01",
        "9999-12-31T23:59:59-00:01", "0000-02-29",
    };
    size_t i;
    for (i = 0; i < sizeof far / sizeof far[0]; i++) {
        int64_t t = 777;
        int rc = ptime(&t, far[i]);
        ck_assert_msg(rc == SEG_ERANGE, "\"%s\" -> %d, expected SEG_ERANGE", far[i], rc);
        ck_assert_int_eq(t, 0);
    }
}
END_TEST

START_TEST(time_length_not_nul)
{
    int64_t t;
    /* only len bytes are read */
    ck_assert_int_eq(seg_time_parse(&t, "2024-03-01T10:00:00Zgarbage", 20), SEG_OK);
    ck_assert_int_eq(t, INT64_C(1709287200));
    ck_assert_int_eq(seg_time_parse(&t, "2024-03-01T10:00:00Z", 10), SEG_OK);
    ck_assert_int_eq(t, INT64_C(1709251200));
    ck_assert_int_eq(seg_time_parse(&t, "12345", 3), SEG_OK);
    ck_assert_int_eq(t, 123);
}
END_TEST

START_TEST(time_format_edges)
{
    char buf[32];
    memset(buf, 'x', sizeof buf);
    ck_assert_uint_eq(seg_time_format(buf, 21, -1), 20);
    ck_assert_str_eq(buf, "1969-12-31T23:59:59Z");
    ck_assert_uint_eq(seg_time_format(buf, 21, SEG_TIME_MIN), 20);
    ck_assert_str_eq(buf, "0001-01-01T00:00:00Z");
    ck_assert_uint_eq(seg_time_format(buf, 21, SEG_TIME_MAX), 20);
    ck_assert_str_eq(buf, "9999-12-31T23:59:59Z");
    ck_assert_uint_eq(seg_time_format(buf, 21, INT64_C(951825600)), 20);
    ck_assert_str_eq(buf, "2000-02-29T12:00:00Z");
    ck_assert_uint_eq(seg_time_format(buf, 20, 0), 0);
    ck_assert_uint_eq(seg_time_format(NULL, 0, 0), 0);
    ck_assert_uint_eq(seg_time_format(buf, sizeof buf, SEG_TIME_MAX + 1), 0);
    ck_assert_uint_eq(seg_time_format(buf, sizeof buf, SEG_TIME_MIN - 1), 0);
    ck_assert_uint_eq(seg_time_format(buf, sizeof buf, INT64_MIN), 0);
    ck_assert_uint_eq(seg_time_format(buf, sizeof buf, INT64_MAX), 0);
}
END_TEST

/* ======================================================================== */
/* money text                                                                */
/* ======================================================================== */

static int pmoney(int64_t *m, const char *s, int e)
{
    return seg_money_parse(m, s, strlen(s), e);
}

START_TEST(money_parse_values)
{
    static const struct {
        const char *s;
        int e;
        int64_t v;
    } ok[] = {
        { "12.50", 2, 1250 },     { "-3", 2, -300 },        { "+0.5", 2, 50 },
        { "0.05", 2, 5 },         { "-0.05", 2, -5 },       { "-0", 2, 0 },
        { "-0.00", 2, 0 },        { "+0", 0, 0 },           { "12", 0, 12 },
        { "12.000", 0, 12 },      { "12.", 0, 12 },         { ".5", 2, 50 },
        { "1.234", 3, 1234 },     { "-1.2", 3, -1200 },     { "0.001", 3, 1 },
        { "1.230", 2, 123 },      { "007", 2, 700 },        { "0.000001", 6, 1 },
        { "1", 6, 1000000 },      { "24.99", 2, 2499 },     { "165.47", 2, 16547 },
        { "9999999999999.99", 2, SEG_AMOUNT_MAX },
        { "-9999999999999.99", 2, -SEG_AMOUNT_MAX },
        { "999999999999999", 0, SEG_AMOUNT_MAX },
        { "-999999999999999", 0, -SEG_AMOUNT_MAX },
        { "999999999.999999", 6, SEG_AMOUNT_MAX },
        { "999999999999.999", 3, SEG_AMOUNT_MAX },
        { "0000000000000000000000001.50", 2, 150 },
        { "9999999999999.990000000000", 2, SEG_AMOUNT_MAX },
    };
    size_t i;
    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t m = 99;
        int rc = pmoney(&m, ok[i].s, ok[i].e);
        ck_assert_msg(rc == SEG_OK, "\"%s\" (exp %d) -> %d", ok[i].s, ok[i].e, rc);
        ck_assert_msg(m == ok[i].v, "\"%s\" (exp %d) -> %" PRId64 ", expected %" PRId64,
                      ok[i].s, ok[i].e, m, ok[i].v);
    }
}
END_TEST

START_TEST(money_parse_errors)
{
    static const char *bad[] = { "", "-", "+", ".", "-.", "1e5", "1E5", "1,000", " 1", "1 ",
                                 "--1", "+-1", "1.2.3", "1.234", "0.001", "abc", "0x10",
                                 "1_000", "１", "nan", "inf", "12.3a", "\t1" };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t m = 99;
        int rc = pmoney(&m, bad[i], 2);
        ck_assert_msg(rc == SEG_EINVAL, "\"%s\" -> %d, expected SEG_EINVAL", bad[i], rc);
        ck_assert_int_eq(m, 0);
    }
    int64_t m;
    ck_assert_int_eq(pmoney(&m, "1", -1), SEG_EINVAL);
    ck_assert_int_eq(pmoney(&m, "1", 7), SEG_EINVAL);
    ck_assert_int_eq(seg_money_parse(&m, NULL, 1, 2), SEG_EINVAL);
    ck_assert_int_eq(seg_money_parse(&m, NULL, 0, 2), SEG_EINVAL);
    ck_assert_int_eq(seg_money_parse(NULL, "1", 1, 2), SEG_EINVAL);
    /* only len bytes */
    ck_assert_int_eq(seg_money_parse(&m, "12.34xyz", 5, 2), SEG_OK);
    ck_assert_int_eq(m, 1234);
}
END_TEST

START_TEST(money_parse_overflow)
{
    static const struct {
        const char *s;
        int e;
    } far[] = {
        { "10000000000000.00", 2 }, /* SEG_AMOUNT_MAX + 1 */
        { "-10000000000000.00", 2 },
        { "10000000000000", 2 },
        { "1000000000000000", 0 },
        { "-1000000000000000", 0 },
        { "1000000000", 6 },
        { "99999999999999999999999", 0 },
        { "99999999999999999999999.99", 2 },
        { "18446744073709551617", 0 },
        { "9223372036854775808", 2 },
    };
    size_t i;
    for (i = 0; i < sizeof far / sizeof far[0]; i++) {
        int64_t m = 99;
        int rc = pmoney(&m, far[i].s, far[i].e);
        ck_assert_msg(rc == SEG_ERANGE, "\"%s\" -> %d, expected SEG_ERANGE", far[i].s, rc);
        ck_assert_int_eq(m, 0);
    }
}
END_TEST

START_TEST(money_format_values)
{
    char buf[64];
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
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, -12, 0), 3);
    ck_assert_str_eq(buf, "-12");
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, 0, 0), 1);
    ck_assert_str_eq(buf, "0");
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, 1234, 3), 5);
    ck_assert_str_eq(buf, "1.234");
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, -1, 3), 6);
    ck_assert_str_eq(buf, "-0.001");
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, 1, 6), 8);
    ck_assert_str_eq(buf, "0.000001");
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, SEG_AMOUNT_MAX, 2), 16);
    ck_assert_str_eq(buf, "9999999999999.99");
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, INT64_MIN, 0), 20);
    ck_assert_str_eq(buf, "-9223372036854775808");
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, INT64_MAX, 6), 20);
    ck_assert_str_eq(buf, "9223372036854.775807");
    /* room for the text and its NUL, or 0 */
    ck_assert_uint_eq(seg_money_format(buf, 6, -300, 2), 5);
    ck_assert_uint_eq(seg_money_format(buf, 5, -300, 2), 0);
    ck_assert_uint_eq(seg_money_format(buf, 0, 1, 2), 0);
    ck_assert_uint_eq(seg_money_format(NULL, 10, 1, 2), 0);
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, 1, 7), 0);
    ck_assert_uint_eq(seg_money_format(buf, sizeof buf, 1, -1), 0);
}
END_TEST

START_TEST(money_round_trip)
{
    uint64_t st = 42;
    int e, k;
    for (e = 0; e <= 6; e++) {
        for (k = 0; k < 20000; k++) {
            char buf[64];
            int64_t v = (int64_t)(tu_rand(&st) % (uint64_t)(SEG_AMOUNT_MAX + 1)), u;
            if (k % 3 == 0)
                v %= 100000;
            if (k & 1)
                v = -v;
            size_t n = seg_money_format(buf, sizeof buf, v, e);
            if (n == 0 || n != strlen(buf))
                ck_abort_msg("format %" PRId64 " (exp %d): %zu", v, e, n);
            if (seg_money_parse(&u, buf, n, e) != SEG_OK || u != v)
                ck_abort_msg("%s (exp %d) -> %" PRId64 ", expected %" PRId64, buf, e, u, v);
        }
    }
}
END_TEST

/* ======================================================================== */
/* event CSV: format                                                         */
/* ======================================================================== */

#define BENCH_HEADER "customer_id,ts,amount,order_id,channel,category\n"

START_TEST(csv_basic)
{
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    const char *csv = BENCH_HEADER
        "C0412345,2023-05-17T14:03:22Z,24.99,O0001234567,store,grocery\n"
        "C0412345,2023-05-17T14:03:22Z,3.50,O0001234567,store,bakery\n"
        "C7,2023-05-18,-5.00,,web,\n";
    TU_OK(db, imp(csv, NULL, &st));
    ck_assert_uint_eq(st.accepted, 3);
    ck_assert_uint_eq(st.duplicates, 0);
    ck_assert_uint_eq(st.rejected, 0);
    ck_assert_uint_eq(seg_event_count(db), 3);
    ck_assert_uint_eq(seg_customer_count(db), 2);
    ck_assert_str_eq(seg_errmsg(db), "");

    tu_ev_list l = events_of(db);
    ck_assert_uint_eq(l.n, 3);
    ck_assert_uint_eq(l.e[0].kind, SEG_EVENT_PURCHASE);
    ck_assert_str_eq(l.e[0].customer_id, "C0412345");
    ck_assert_int_eq(l.e[0].ts, INT64_C(1684332202));
    ck_assert_int_eq(l.e[0].amount, 2499);
    ck_assert_int_eq(l.e[0].quantity, 1);
    ck_assert_str_eq(l.e[0].order_id, "O0001234567");
    ck_assert_str_eq(l.e[0].channel, "store");
    ck_assert_str_eq(l.e[0].category, "grocery");
    ck_assert(!l.e[0].has[TU_H_SKU] && !l.e[0].has[TU_H_NAME] && !l.e[0].has[TU_H_REFUND_OF]);
    ck_assert(tu_is_derived_id(l.e[0].event_id));
    ck_assert_str_eq(l.e[1].category, "bakery");
    ck_assert_int_eq(l.e[1].amount, 350);
    ck_assert_str_ne(l.e[0].event_id, l.e[1].event_id);
    /* a negative amount without a type is a refund; empty cells are absent */
    ck_assert_uint_eq(l.e[2].kind, SEG_EVENT_REFUND);
    ck_assert_int_eq(l.e[2].amount, -500);
    ck_assert_int_eq(l.e[2].ts, INT64_C(1684368000));
    ck_assert_str_eq(l.e[2].channel, "web");
    ck_assert(!l.e[2].has[TU_H_CATEGORY]);
    tu_ev_list_free(&l);
}
END_TEST

START_TEST(csv_all_columns)
{
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    const char *csv =
        "event_id,customer_id,ts,amount,order_id,type,channel,category,sku,quantity,refund_of,name\n"
        "e1,C1,2024-03-01T10:00:00Z,30.00,O1,purchase,web,toys,SKU-1,3,,\n"
        "e2,C1,2024-03-02T10:00:00Z,10.00,R1,refund,web,toys,SKU-1,1,O1,\n"
        "e3,C1,2024-03-03T10:00:00Z,,,engagement,email,,,,,email_open\n"
        "e4,C1,2024-03-04T10:00:00Z,-2.50,,refund,,,,,O1,\n"
        "e5,C2,1709287200,0,,,,,,,,\n"
        "e6,C2,2024-03-05,0.00,,engagement,,,,,,store_visit\n";
    TU_OK(db, imp(csv, NULL, &st));
    ck_assert_uint_eq(st.accepted, 6);
    tu_ev_list l = events_of(db);
    ck_assert_uint_eq(l.n, 6);
    ck_assert_str_eq(l.e[0].event_id, "e1");
    ck_assert_uint_eq(l.e[0].kind, SEG_EVENT_PURCHASE);
    ck_assert_int_eq(l.e[0].quantity, 3);
    ck_assert_str_eq(l.e[0].sku, "SKU-1");
    ck_assert_int_eq(l.e[0].amount, 3000);
    /* a refund given positive is stored negative */
    ck_assert_uint_eq(l.e[1].kind, SEG_EVENT_REFUND);
    ck_assert_int_eq(l.e[1].amount, -1000);
    ck_assert_str_eq(l.e[1].refund_of, "O1");
    ck_assert_int_eq(l.e[1].quantity, 1);
    ck_assert_uint_eq(l.e[2].kind, SEG_EVENT_ENGAGEMENT);
    ck_assert_str_eq(l.e[2].name, "email_open");
    ck_assert_int_eq(l.e[2].amount, 0);
    ck_assert_uint_eq(l.e[3].kind, SEG_EVENT_REFUND);
    ck_assert_int_eq(l.e[3].amount, -250);
    ck_assert_int_eq(l.e[3].quantity, 0);
    /* amount 0 and no type: a purchase */
    ck_assert_uint_eq(l.e[4].kind, SEG_EVENT_PURCHASE);
    ck_assert_int_eq(l.e[4].amount, 0);
    ck_assert_int_eq(l.e[4].ts, INT64_C(1709287200));
    /* engagement with an explicit zero amount */
    ck_assert_uint_eq(l.e[5].kind, SEG_EVENT_ENGAGEMENT);
    ck_assert_str_eq(l.e[5].name, "store_visit");
    tu_ev_list_free(&l);

    seg_customer_info ci;
    TU_GET(db, "C1", &ci);
    ck_assert_int_eq(ci.revenue, 3000);
    ck_assert_int_eq(ci.refunds, -1250);
    ck_assert_uint_eq(ci.engagements, 1);
}
END_TEST

START_TEST(csv_type_inferred)
{
    const char *csv = "customer_id,ts,amount,name\n"
                      "C1,2024-03-01,12.00,\n"
                      "C1,2024-03-02,-2.00,\n"
                      "C1,2024-03-03,,email_open\n";
    TU_OK(db, imp(csv, NULL, NULL));
    tu_ev_list l = events_of(db);
    ck_assert_uint_eq(l.n, 3);
    ck_assert_uint_eq(l.e[0].kind, SEG_EVENT_PURCHASE);
    ck_assert_uint_eq(l.e[1].kind, SEG_EVENT_REFUND);
    ck_assert_int_eq(l.e[1].amount, -200);
    ck_assert_uint_eq(l.e[2].kind, SEG_EVENT_ENGAGEMENT);
    ck_assert_str_eq(l.e[2].name, "email_open");
    tu_ev_list_free(&l);
}
END_TEST

START_TEST(csv_quoting)
{
    const char *csv = "customer_id,ts,amount,category,sku\n"
                      "\"C,1\",2024-03-01,1.00,\"a \"\"quoted\"\" one\",\"\"\n"
                      "\"C2\",\"2024-03-02\",\"2.00\",\"\"\"\",\"x,\"\"y\"\",z\"\n"
                      "C3,2024-03-03,3.00,\"\xc3\xa9t\xc3\xa9\",plain\n";
    TU_OK(db, imp(csv, NULL, NULL));
    tu_ev_list l = events_of(db);
    ck_assert_uint_eq(l.n, 3);
    ck_assert_str_eq(l.e[0].customer_id, "C,1");
    ck_assert_str_eq(l.e[0].category, "a \"quoted\" one");
    ck_assert(!l.e[0].has[TU_H_SKU]); /* "" is empty: absent */
    ck_assert_str_eq(l.e[1].customer_id, "C2");
    ck_assert_int_eq(l.e[1].amount, 200);
    ck_assert_str_eq(l.e[1].category, "\"");
    ck_assert_str_eq(l.e[1].sku, "x,\"y\",z");
    ck_assert_str_eq(l.e[2].category, "\xc3\xa9t\xc3\xa9");
    tu_ev_list_free(&l);
}
END_TEST

START_TEST(csv_multiline_fields_keep_line_numbers)
{
    /* quoted line breaks in an ignored column; the error later names the
     * right line (6) */
    seg_csv_options o = SEG_CSV_OPTIONS_INIT;
    o.flags = SEG_CSV_IGNORE_UNKNOWN;
    const char *csv = "customer_id,note,ts,amount\n"              /* 1 */
                      "C1,\"first\nsecond\nthird\",2024-03-01,1\n" /* 2-4 */
                      "C2,\"a,b\r\nc\",2024-03-01,1\n"             /* 5-6 */
                      "C3,,2024-99-01,1\n";                        /* 7 */
    TU_RC(db, imp(csv, &o, NULL), SEG_EINVAL);
    MSG_STARTS(db, "<buffer>:7:5: ts: ");
    TU_MSG_HAS(db, "2024-99-01");
    ck_assert_uint_eq(seg_event_count(db), 0);

    const char *good = "customer_id,note,ts,amount\n"
                       "C1,\"first\nsecond\nthird\",2024-03-01,1\n"
                       "C2,\"a,b\r\nc\",2024-03-01,1\n";
    TU_OK(db, imp(good, &o, NULL));
    ck_assert_uint_eq(seg_event_count(db), 2);

    /* an error inside a row that spans lines points at the field's own line */
    const char *late = "customer_id,note,ts,amount\n"
                       "C1,\"x\ny\",2024-03-01,zz\n";
    TU_RC(db, imp(late, &o, NULL), SEG_EINVAL);
    MSG_STARTS(db, "<buffer>:3:15: amount: ");
}
END_TEST

START_TEST(csv_crlf)
{
    const char *csv = "customer_id,ts,amount,category\r\n"
                      "C1,2024-03-01,1.00,toys\r\n"
                      "C2,2024-03-01,2.00,\"books\"\r\n"
                      "C3,2024-03-01,3.00,\r\n";
    TU_OK(db, imp(csv, NULL, NULL));
    tu_ev_list l = events_of(db);
    ck_assert_uint_eq(l.n, 3);
    ck_assert_str_eq(l.e[0].category, "toys");
    ck_assert_str_eq(l.e[1].category, "books");
    ck_assert(!l.e[2].has[TU_H_CATEGORY]);
    tu_ev_list_free(&l);
    /* line numbers with CRLF */
    TU_RC(db, imp("customer_id,ts,amount\r\nC1,2024-03-01,1\r\nC1,2024-03-01,x\r\n", NULL,
                  NULL),
          SEG_EINVAL);
    MSG_STARTS(db, "<buffer>:3:15: amount: ");
}
END_TEST

START_TEST(csv_bom)
{
    const char *csv = "\xEF\xBB\xBF" "customer_id,ts,amount\nC1,2024-03-01,1.00\n";
    TU_OK(db, imp(csv, NULL, NULL));
    ck_assert_uint_eq(seg_event_count(db), 1);
    tu_ev_list l = events_of(db);
    ck_assert_str_eq(l.e[0].customer_id, "C1");
    tu_ev_list_free(&l);
    /* the BOM takes no column */
    TU_RC(db, imp("\xEF\xBB\xBF" "bogus,customer_id,ts,amount\n", NULL, NULL), SEG_EINVAL);
    MSG_STARTS(db, "<buffer>:1:1: unknown column 'bogus'");
    /* only a BOM: nothing to import */
    TU_OK(db, imp("\xEF\xBB\xBF", NULL, NULL));
}
END_TEST

START_TEST(csv_no_trailing_newline)
{
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    TU_OK(db, imp("customer_id,ts,amount\nC1,2024-03-01,1.00\nC2,2024-03-01,2.00", NULL, &st));
    ck_assert_uint_eq(st.accepted, 2);
    TU_OK(db, imp("customer_id,ts,amount\nC3,2024-03-01,3.00\r", NULL, &st));
    ck_assert_uint_eq(st.accepted, 1);
    TU_OK(db, imp("customer_id,ts,amount\nC4,2024-03-01,\"4.00\"", NULL, &st));
    ck_assert_uint_eq(st.accepted, 1);
    /* the last field empty, after a final comma */
    TU_OK(db, imp("customer_id,ts,amount,category\nC5,2024-03-01,5,", NULL, &st));
    ck_assert_uint_eq(st.accepted, 1);
    ck_assert_uint_eq(seg_event_count(db), 5);
    tu_ev_list l = events_of(db);
    ck_assert_int_eq(l.e[1].amount, 200);
    ck_assert_int_eq(l.e[2].amount, 300);
    ck_assert_int_eq(l.e[3].amount, 400);
    tu_ev_list_free(&l);
}
END_TEST

START_TEST(csv_blank_lines)
{
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    const char *csv = "\n"                          /* 1 */
                      "customer_id,ts,amount\n"     /* 2 */
                      "\n"                          /* 3 */
                      "C1,2024-03-01,1.00\n"        /* 4 */
                      "\r\n"                        /* 5 */
                      "\n"                          /* 6 */
                      "C2,2024-03-01,2.00\n"        /* 7 */
                      "\n\n";
    TU_OK(db, imp(csv, NULL, &st));
    ck_assert_uint_eq(st.accepted, 2);
    const char *bad = "customer_id,ts,amount\n\n\nC1,2024-03-01,1.00\n\nC2,nope,1\n";
    TU_RC(db, imp(bad, NULL, NULL), SEG_EINVAL);
    MSG_STARTS(db, "<buffer>:6:4: ts: ");
    /* the header's own line number */
    TU_RC(db, imp("\n\ncustomer_id,ts,amount,zzz\n", NULL, NULL), SEG_EINVAL);
    MSG_STARTS(db, "<buffer>:3:23: unknown column 'zzz'");
}
END_TEST

START_TEST(csv_empty_inputs)
{
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    st.accepted = 9;
    TU_OK(db, seg_event_import_csv(db, NULL, 0, NULL, &st));
    ck_assert_uint_eq(st.accepted, 0);
    TU_OK(db, imp("", NULL, &st));
    TU_OK(db, imp("\n\n", NULL, &st));
    TU_OK(db, imp("customer_id,ts,amount\n", NULL, &st));
    TU_OK(db, imp("customer_id,ts,amount", NULL, &st));
    ck_assert_uint_eq(st.accepted + st.duplicates + st.rejected, 0);
    ck_assert_uint_eq(seg_event_count(db), 0);
    /* the header is still checked */
    TU_RC(db, imp("customer_id,ts\n", NULL, &st), SEG_EINVAL);
    TU_MSG_HAS(db, "'amount'");
}
END_TEST

START_TEST(csv_column_order)
{
    static const char *files[] = {
        "customer_id,ts,amount,order_id,channel,category\n"
        "C1,2024-03-01T10:00:00Z,1.00,O1,web,toys\n"
        "C2,2024-03-02T10:00:00Z,2.50,O2,store,books\n"
        "C1,2024-03-03T10:00:00Z,-1.00,R1,web,toys\n",
        "category,channel,order_id,amount,ts,customer_id\n"
        "toys,web,O1,1.00,2024-03-01T10:00:00Z,C1\n"
        "books,store,O2,2.50,2024-03-02T10:00:00Z,C2\n"
        "toys,web,R1,-1.00,2024-03-03T10:00:00Z,C1\n",
        "amount,customer_id,category,ts,channel,order_id\n"
        "1.00,C1,toys,2024-03-01T10:00:00Z,web,O1\n"
        "2.50,C2,books,2024-03-02T10:00:00Z,store,O2\n"
        "-1.00,C1,toys,2024-03-03T10:00:00Z,web,R1\n",
    };
    tu_snapshot first;
    size_t i;
    for (i = 0; i < sizeof files / sizeof files[0]; i++) {
        seg_db *d = NULL;
        ck_assert_int_eq(seg_db_open(&d, ":memory:", NULL), SEG_OK);
        TU_OK(d, seg_event_import_csv(d, files[i], strlen(files[i]), NULL, NULL));
        ck_assert_uint_eq(seg_event_count(d), 3);
        if (i == 0) {
            tu_snap_take(&first, d, 0);
        } else {
            tu_snapshot s;
            tu_snap_take(&s, d, 0);
            const char *why = tu_snap_diff(&first, &s, 1);
            ck_assert_msg(why == NULL, "file %zu differs: %s", i, why);
            tu_snap_free(&s);
        }
        seg_db_close(d);
    }
    tu_snap_free(&first);
}
END_TEST

/* ======================================================================== */
/* event CSV: header                                                         */
/* ======================================================================== */

START_TEST(csv_unknown_column)
{
    tu_snapshot before;
    tu_snap_take(&before, db, 0);
    TU_RC(db, imp("customer_id,ts,amount,colour\nC1,2024-03-01,1,red\n", NULL, NULL),
          SEG_EINVAL);
    MSG_STARTS(db, "<buffer>:1:23: unknown column 'colour'");
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
    /* case-sensitive, no trimming */
    TU_RC(db, imp("Customer_id,ts,amount\n", NULL, NULL), SEG_EINVAL);
    MSG_STARTS(db, "<buffer>:1:1: unknown column 'Customer_id'");
    TU_RC(db, imp("customer_id, ts,amount\n", NULL, NULL), SEG_EINVAL);
    MSG_STARTS(db, "<buffer>:1:13: unknown column ' ts'");
    /* the column counts characters, not bytes */
    TU_RC(db, imp("customer_id,\"\xc3\xa9\xc3\xa9\",x\xe2\x82\xac,ts,amount\n", NULL, NULL),
          SEG_EINVAL);
    MSG_STARTS(db, "<buffer>:1:13: unknown column '\xc3\xa9\xc3\xa9'");
}
END_TEST

START_TEST(csv_ignore_unknown)
{
    seg_csv_options o = SEG_CSV_OPTIONS_INIT;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    o.flags = SEG_CSV_IGNORE_UNKNOWN;
    TU_OK(db, imp("colour,customer_id,ts,size,amount\nred,C1,2024-03-01,XL,1\n", &o, &st));
    ck_assert_uint_eq(st.accepted, 1);
    tu_ev_list l = events_of(db);
    ck_assert_str_eq(l.e[0].customer_id, "C1");
    ck_assert_int_eq(l.e[0].amount, 100);
    tu_ev_list_free(&l);
    /* an ignored column still counts for the row's field count */
    TU_RC(db, imp("colour,customer_id,ts,amount\nC1,2024-03-01,1\n", &o, &st), SEG_EPARSE);
}
END_TEST

START_TEST(csv_column_map)
{
    static const char *const map[] = { "cust", "customer_id", "when", "ts", "value", "amount",
                                       "junk", NULL, "junk2", "", "ts", "", NULL };
    seg_csv_options o = SEG_CSV_OPTIONS_INIT;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    o.column_map = map;
    TU_OK(db, imp("when,cust,junk,value,junk2,ts\n2024-03-01,C1,x,2.00,y,garbage\n", &o, &st));
    ck_assert_uint_eq(st.accepted, 1);
    tu_ev_list l = events_of(db);
    ck_assert_str_eq(l.e[0].customer_id, "C1");
    ck_assert_int_eq(l.e[0].ts, INT64_C(1709251200));
    ck_assert_int_eq(l.e[0].amount, 200);
    tu_ev_list_free(&l);

    /* a map target must be a known column */
    static const char *const bad[] = { "cust", "client", NULL };
    o.column_map = bad;
    TU_RC(db, imp("cust,ts,amount\n", &o, NULL), SEG_EINVAL);
    TU_MSG_HAS(db, "client");

    /* mapping onto a column the file also has is a duplicate */
    static const char *const dup[] = { "cust", "customer_id", NULL };
    o.column_map = dup;
    TU_RC(db, imp("customer_id,ts,cust,amount\n", &o, NULL), SEG_EINVAL);
    MSG_STARTS(db, "<buffer>:1:16: duplicate column 'customer_id'");
    ck_assert_uint_eq(seg_event_count(db), 1);
}
END_TEST

START_TEST(csv_duplicate_column)
{
    TU_RC(db, imp("customer_id,ts,amount,ts\nC1,2024-03-01,1,2024-03-01\n", NULL, NULL),
          SEG_EINVAL);
    MSG_STARTS(db, "<buffer>:1:23: duplicate column 'ts'");
    seg_csv_options o = SEG_CSV_OPTIONS_INIT;
    o.flags = SEG_CSV_IGNORE_UNKNOWN;
    TU_RC(db, imp("x,x,customer_id,customer_id,ts,amount\n", &o, NULL), SEG_EINVAL);
    MSG_STARTS(db, "<buffer>:1:17: duplicate column 'customer_id'");
    ck_assert_uint_eq(seg_event_count(db), 0);
}
END_TEST

START_TEST(csv_missing_column)
{
    static const struct {
        const char *csv;
        const char *name;
    } cases[] = {
        { "ts,amount\n", "'customer_id'" },
        { "customer_id,amount\n", "'ts'" },
        { "customer_id,ts\nC1,2024-03-01\n", "'amount'" },
        { "name\n", "'customer_id'" },
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TU_RC(db, imp(cases[i].csv, NULL, NULL), SEG_EINVAL);
        MSG_STARTS(db, "<buffer>:1:");
        TU_MSG_HAS(db, "missing");
        TU_MSG_HAS(db, cases[i].name);
    }
}
END_TEST

/* ======================================================================== */
/* event CSV: errors                                                         */
/* ======================================================================== */

START_TEST(csv_bad_cells_name_line_and_column)
{
    static const struct {
        const char *row;
        int code;
        const char *prefix;
    } cases[] = {
        /* header: customer_id,ts,amount,type,quantity,name,order_id */
        { "C1,2024-02-30,1,,,,", SEG_EINVAL, "src.csv:3:4: ts: " },
        { "C1,,1,,,,", SEG_EINVAL, "src.csv:3:4: ts: " },
        { "C1,10000-01-01,1,,,,", SEG_EINVAL, "src.csv:3:4: ts: " },
        { "C1,99999999999999,1,,,,", SEG_ERANGE, "src.csv:3:4: ts: " },
        { "C1,2024-03-01,1.234,,,,", SEG_EINVAL, "src.csv:3:15: amount: " },
        { "C1,2024-03-01,abc,,,,", SEG_EINVAL, "src.csv:3:15: amount: " },
        { "C1,2024-03-01,10000000000000.00,,,,", SEG_ERANGE, "src.csv:3:15: amount: " },
        { "C1,2024-03-01,,,,,", SEG_EINVAL, "src.csv:3:15: amount: " },
        { "C1,2024-03-01,1,sale,,,", SEG_EINVAL, "src.csv:3:17: type: " },
        { "C1,2024-03-01,1,Purchase,,,", SEG_EINVAL, "src.csv:3:17: type: " },
        { "C1,2024-03-01,-1,purchase,,,", SEG_EINVAL, "src.csv:3:15: amount: " },
        { "C1,2024-03-01,0,refund,,,", SEG_EINVAL, "src.csv:3:15: amount: " },
        { "C1,2024-03-01,,refund,,,", SEG_EINVAL, "src.csv:3:15: amount: " },
        { "C1,2024-03-01,2,engagement,,open,", SEG_EINVAL, "src.csv:3:15: amount: " },
        { "C1,2024-03-01,1,,x,,", SEG_EINVAL, "src.csv:3:18: quantity: " },
        { "C1,2024-03-01,1,,1.5,,", SEG_EINVAL, "src.csv:3:18: quantity: " },
        { "C1,2024-03-01,1,,99999999999,,", SEG_ERANGE, "src.csv:3:18: quantity: " },
        /* refused by the ingest itself: the position of its field */
        { ",2024-03-01,1,,,,", SEG_EINVAL, "src.csv:3:1: customer_id" },
        { "C1,2024-03-01,1,,,open,", SEG_EINVAL, "src.csv:3:19: name" },
        { "C1,2024-03-01,,engagement,,,", SEG_EINVAL, "src.csv:3:" },
        { "C1,2024-03-01,1,,,,O\x01", SEG_EINVAL, "src.csv:3:20: order_id" },
        { "\xff,2024-03-01,1,,,,", SEG_EINVAL, "src.csv:3:1: customer_id" },
    };
    seg_csv_options o = SEG_CSV_OPTIONS_INIT;
    o.source_name = "src.csv";
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char csv[512];
        seg_ingest_stats st = SEG_INGEST_STATS_INIT;
        snprintf(csv, sizeof csv,
                 "customer_id,ts,amount,type,quantity,name,order_id\n"
                 "C0,2024-01-01,1,,,,\n%s\n", cases[i].row);
        int rc = imp(csv, &o, &st);
        ck_assert_msg(rc == cases[i].code, "row \"%s\": %d, expected %d (%s)", cases[i].row, rc,
                      cases[i].code, seg_errmsg(db));
        MSG_STARTS(db, cases[i].prefix);
        ck_assert_int_eq(seg_errcode(db), cases[i].code);
        /* atomic: the good first row is not kept either */
        ck_assert_uint_eq(seg_event_count(db), 0);
        ck_assert_uint_eq(seg_customer_count(db), 0);
        ck_assert_uint_eq(st.accepted, 0);
    }
    /* a long customer id (batch limit) */
    char *id = tu_repeat('x', SEG_ID_MAX + 1);
    char csv[1024];
    snprintf(csv, sizeof csv, "ts,amount,customer_id\n2024-03-01,1,%s\n", id);
    free(id);
    TU_RC(db, imp(csv, &o, NULL), SEG_EINVAL);
    MSG_STARTS(db, "src.csv:2:14: customer_id");
}
END_TEST

START_TEST(csv_wrong_field_count)
{
    TU_RC(db, imp("customer_id,ts,amount\nC1,2024-03-01,1\nC2,2024-03-01\n", NULL, NULL),
          SEG_EPARSE);
    MSG_STARTS(db, "<buffer>:3:14: expected 3 fields, got 2");
    TU_RC(db, imp("customer_id,ts,amount\nC1,2024-03-01,1,extra,more\n", NULL, NULL),
          SEG_EPARSE);
    MSG_STARTS(db, "<buffer>:2:17: expected 3 fields, got 5");
    TU_RC(db, imp("customer_id,ts,amount\nC1\n", NULL, NULL), SEG_EPARSE);
    MSG_STARTS(db, "<buffer>:2:3: expected 3 fields, got 1");
    /* a line with spaces is not empty */
    TU_RC(db, imp("customer_id,ts,amount\n  \n", NULL, NULL), SEG_EPARSE);
    MSG_STARTS(db, "<buffer>:2:");
    ck_assert_uint_eq(seg_event_count(db), 0);
}
END_TEST

START_TEST(csv_malformed_quotes)
{
    static const struct {
        const char *csv;
        const char *prefix;
    } cases[] = {
        { "customer_id,ts,amount\nC\"1,2024-03-01,1\n", "<buffer>:2:2: " },
        { "customer_id,ts,amount\n\"C1\"x,2024-03-01,1\n", "<buffer>:2:5: " },
        { "customer_id,ts,amount\n\"C1\" ,2024-03-01,1\n", "<buffer>:2:5: " },
        { "customer_id,ts,amount\nC1,2024-03-01,\"1\n", "<buffer>:2:15: " },
        { "customer_id,ts,amount\nC1,2024-03-01,1\nC2,\"2024\n-03-01,1\n", "<buffer>:3:4: " },
        { "customer_id,ts,amount\nC1,\"a\nb\",1\nC2,2024-03-01,1\"\n", "<buffer>:4:16: " },
        { "custo\"mer_id,ts,amount\n", "<buffer>:1:6: " },
        { "customer_id,ts,amount\n\"C1\"\r2,2024-03-01,1\n", "<buffer>:2:5: " },
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        seg_csv_options o = SEG_CSV_OPTIONS_INIT;
        o.flags = SEG_CSV_PER_EVENT; /* structure errors are fatal in every mode */
        int rc = imp(cases[i].csv, &o, NULL);
        ck_assert_msg(rc == SEG_EPARSE, "case %zu: %d (%s)", i, rc, seg_errmsg(db));
        MSG_STARTS(db, cases[i].prefix);
        ck_assert_uint_eq(seg_event_count(db), 0);
    }
}
END_TEST

START_TEST(csv_per_event_mode)
{
    rejects r;
    memset(&r, 0, sizeof r);
    seg_csv_options o = SEG_CSV_OPTIONS_INIT;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    o.flags = SEG_CSV_PER_EVENT;
    o.on_reject = on_reject;
    o.payload = &r;
    o.source_name = "ev.csv";
    const char *csv = "customer_id,ts,amount,type\n" /* line 1 */
                      "C1,2024-03-01,1.00,\n"        /* row 0 */
                      "C2,2024-03-xx,1.00,\n"        /* row 1: bad ts */
                      "\n"                           /* skipped */
                      "C3,2024-03-01,2.00,\n"        /* row 2 */
                      "C4,2024-03-01,3.00,gift\n"    /* row 3: bad type */
                      ",2024-03-01,1.00,\n"          /* row 4: no customer */
                      "C5,2024-03-01,4.00,purchase\n"; /* row 5 */
    TU_OK(db, imp(csv, &o, &st));
    ck_assert_uint_eq(st.accepted, 3);
    ck_assert_uint_eq(st.rejected, 3);
    ck_assert_uint_eq(st.duplicates, 0);
    ck_assert_uint_eq(seg_event_count(db), 3);
    ck_assert_uint_eq(r.n, 3);
    ck_assert_uint_eq(r.index[0], 1);
    ck_assert_int_eq(r.code[0], SEG_EINVAL);
    TU_STR_HAS(r.msg[0], "ev.csv:3:4: ts: ");
    ck_assert_uint_eq(r.index[1], 3);
    TU_STR_HAS(r.msg[1], "ev.csv:6:20: type: ");
    TU_STR_HAS(r.msg[1], "gift");
    ck_assert_uint_eq(r.index[2], 4);
    TU_STR_HAS(r.msg[2], "ev.csv:7:1: customer_id");
    ck_assert_str_eq(seg_errmsg(db), "");

    /* without a callback the rows are still counted */
    o.on_reject = NULL;
    TU_OK(db, imp("customer_id,ts,amount\nC9,bad,1\n", &o, &st));
    ck_assert_uint_eq(st.rejected, 1);
    ck_assert_uint_eq(st.accepted, 0);
}
END_TEST

START_TEST(csv_per_event_structure_error_is_fatal)
{
    rejects r;
    memset(&r, 0, sizeof r);
    seg_csv_options o = SEG_CSV_OPTIONS_INIT;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    o.flags = SEG_CSV_PER_EVENT;
    o.on_reject = on_reject;
    o.payload = &r;
    TU_OK(db, imp("customer_id,ts,amount\nC0,2024-03-01,1\n", NULL, NULL));
    tu_snapshot before;
    tu_snap_take(&before, db, 0);
    TU_RC(db, imp("customer_id,ts,amount\nC1,2024-03-01,1\nC2,bad,1\nC3,2024-03-01\n", &o, &st),
          SEG_EPARSE);
    MSG_STARTS(db, "<buffer>:4:");
    ck_assert_uint_eq(st.accepted + st.rejected + st.duplicates, 0);
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
}
END_TEST

START_TEST(csv_atomic_failure_changes_nothing)
{
    TU_OK(db, imp("customer_id,ts,amount,order_id\nA,2024-03-01,5,OA\nB,2024-03-02,6,OB\n", NULL,
                  NULL));
    ck_assert_int_eq(seg_customer_add(db, "prospect"), SEG_OK);
    tu_snapshot before;
    tu_snap_take(&before, db, 0);
    uint64_t ev = seg_event_count(db), cu = seg_customer_count(db);
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    /* new customers, new events for old customers, then a bad row */
    TU_RC(db, imp("customer_id,ts,amount,order_id\n"
                  "A,2024-03-03,1,OA2\nC,2024-03-03,1,OC\nprospect,2024-03-03,1,OP\n"
                  "D,2024-03-03,1.001,OD\n",
                  NULL, &st),
          SEG_EINVAL);
    MSG_STARTS(db, "<buffer>:5:14: amount: ");
    ck_assert_uint_eq(seg_event_count(db), ev);
    ck_assert_uint_eq(seg_customer_count(db), cu);
    ck_assert_uint_eq(st.accepted, 0);
    TU_UNCHANGED(db, &before);
    /* a parse error late in the input */
    TU_RC(db, imp("customer_id,ts,amount\nE,2024-03-03,1\n\"F,2024-03-03,1\n", NULL, &st),
          SEG_EPARSE);
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
}
END_TEST

START_TEST(csv_reimport_is_noop)
{
    const char *csv = BENCH_HEADER
        "C1,2024-03-01T10:00:00Z,1.00,O1,web,toys\n"
        "C1,2024-03-01T10:00:00Z,2.00,O1,web,books\n"
        "C2,2024-03-02T10:00:00Z,3.00,O2,store,\n"
        "C2,2024-03-03T10:00:00Z,-1.00,,store,\n";
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    TU_OK(db, imp(csv, NULL, &st));
    ck_assert_uint_eq(st.accepted, 4);
    tu_snapshot before;
    tu_snap_take(&before, db, 0);
    TU_OK(db, imp(csv, NULL, &st));
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_uint_eq(st.duplicates, 4);
    ck_assert_uint_eq(st.rejected, 0);
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
}
END_TEST

START_TEST(csv_identical_rows_are_all_kept)
{
    const char *two = "customer_id,ts,amount\nC1,2024-03-01,9.99\nC1,2024-03-01,9.99\n";
    const char *three = "customer_id,ts,amount\nC1,2024-03-01,9.99\nC1,2024-03-01,9.99\n"
                        "C1,2024-03-01,9.99\n";
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    TU_OK(db, imp(two, NULL, &st));
    ck_assert_uint_eq(st.accepted, 2);
    ck_assert_uint_eq(seg_event_count(db), 2);
    tu_ev_list l = events_of(db);
    ck_assert(tu_is_derived_id(l.e[0].event_id));
    ck_assert(tu_is_derived_id(l.e[1].event_id));
    ck_assert_str_ne(l.e[0].event_id, l.e[1].event_id);
    tu_ev_list_free(&l);
    TU_OK(db, imp(two, NULL, &st));
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_uint_eq(st.duplicates, 2);
    ck_assert_uint_eq(seg_event_count(db), 2);
    /* a file with one more copy adds exactly one */
    TU_OK(db, imp(three, NULL, &st));
    ck_assert_uint_eq(st.accepted, 1);
    ck_assert_uint_eq(st.duplicates, 2);
    ck_assert_uint_eq(seg_event_count(db), 3);
    seg_customer_info ci;
    TU_GET(db, "C1", &ci);
    ck_assert_int_eq(ci.revenue, 3 * 999);
}
END_TEST

/* occurrences count per content, whatever rows come between them */
START_TEST(csv_identical_rows_interleaved)
{
    const char *one = "customer_id,ts,amount\nC1,2024-03-01,1.00\n";
    const char *mixed = "customer_id,ts,amount\nC1,2024-03-01,1.00\nC2,2024-03-01,2.00\n"
                        "C1,2024-03-01,1.00\nC2,2024-03-01,2.00\nC1,2024-03-01,1.00\n";
    const char *reordered = "customer_id,ts,amount\nC2,2024-03-01,2.00\nC1,2024-03-01,1.00\n"
                            "C1,2024-03-01,1.00\nC1,2024-03-01,1.00\nC2,2024-03-01,2.00\n";
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    TU_OK(db, imp(one, NULL, &st));
    ck_assert_uint_eq(st.accepted, 1);
    /* C1 three times (one stored already), C2 twice */
    TU_OK(db, imp(mixed, NULL, &st));
    ck_assert_uint_eq(st.accepted, 4);
    ck_assert_uint_eq(st.duplicates, 1);
    ck_assert_uint_eq(seg_event_count(db), 5);
    /* the same multiset of rows in another order: nothing new */
    TU_OK(db, imp(reordered, NULL, &st));
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_uint_eq(st.duplicates, 5);
    TU_OK(db, imp(mixed, NULL, &st));
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_uint_eq(st.duplicates, 5);
    ck_assert_uint_eq(seg_event_count(db), 5);
    seg_customer_info ci;
    TU_GET(db, "C1", &ci);
    ck_assert_int_eq(ci.revenue, 300);
    TU_GET(db, "C2", &ci);
    ck_assert_int_eq(ci.revenue, 400);
}
END_TEST

START_TEST(csv_currency_exponent)
{
    seg_db *d0 = open_exp(0), *d3 = open_exp(3);
    const char *a = "customer_id,ts,amount\nC1,2024-03-01,12\n";
    const char *b = "customer_id,ts,amount\nC1,2024-03-01,1.5\n";
    const char *c = "customer_id,ts,amount\nC1,2024-03-01,1.234\n";
    TU_OK(d0, seg_event_import_csv(d0, a, strlen(a), NULL, NULL));
    TU_RC(d0, seg_event_import_csv(d0, b, strlen(b), NULL, NULL), SEG_EINVAL);
    MSG_STARTS(d0, "<buffer>:2:15: amount: ");
    TU_OK(d3, seg_event_import_csv(d3, c, strlen(c), NULL, NULL));
    tu_ev_list l = events_of(d0);
    ck_assert_int_eq(l.e[0].amount, 12);
    tu_ev_list_free(&l);
    l = events_of(d3);
    ck_assert_int_eq(l.e[0].amount, 1234);
    tu_ev_list_free(&l);
    seg_db_close(d0);
    seg_db_close(d3);
}
END_TEST

/* ======================================================================== */
/* event CSV: arguments and options                                          */
/* ======================================================================== */

START_TEST(csv_null_arguments)
{
    const char *csv = "customer_id,ts,amount\nC1,2024-03-01,1\n";
    ck_assert_int_eq(seg_event_import_csv(NULL, csv, strlen(csv), NULL, NULL), SEG_EINVAL);
    ck_assert_int_eq(seg_event_import_csv(db, NULL, 5, NULL, NULL), SEG_EINVAL);
    ck_assert_int_eq(seg_event_import_csv_file(NULL, "/tmp/x", NULL, NULL), SEG_EINVAL);
    ck_assert_int_eq(seg_event_import_csv_file(db, NULL, NULL, NULL), SEG_EINVAL);
    ck_assert_int_eq(seg_customer_import_csv(NULL, "customer_id\n", 12, NULL), SEG_EINVAL);
    ck_assert_int_eq(seg_customer_import_csv(db, NULL, 3, NULL), SEG_EINVAL);
    ck_assert_int_eq(seg_customer_import_csv(db, NULL, 0, NULL), SEG_OK);
    ck_assert_int_eq(seg_customer_import_csv_file(NULL, "/tmp/x"), SEG_EINVAL);
    ck_assert_int_eq(seg_customer_import_csv_file(db, NULL), SEG_EINVAL);
    ck_assert_uint_eq(seg_event_count(db), 0);
}
END_TEST

START_TEST(csv_options_versions)
{
    const char *csv = "customer_id,ts,amount\nC1,2024-03-01,1\n";
    struct {
        seg_csv_options o;
        char tail[16];
    } big;
    seg_csv_options o = SEG_CSV_OPTIONS_INIT;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;

    o.struct_size = sizeof(size_t);
    TU_RC(db, imp(csv, &o, NULL), SEG_EVERSION);
    o.struct_size = 0;
    TU_RC(db, imp(csv, &o, NULL), SEG_EVERSION);

    memset(&big, 0, sizeof big);
    ck_assert_int_eq(seg_csv_options_init(&big.o, sizeof big), SEG_OK);
    ck_assert_uint_eq(big.o.struct_size, sizeof big);
    ck_assert_uint_eq(big.o.flags, 0);
    ck_assert_ptr_null(big.o.column_map);
    ck_assert_ptr_null(big.o.source_name);
    ck_assert_ptr_null(big.o.on_reject);
    big.o.source_name = "big.csv";
    TU_RC(db, imp("customer_id,ts,amount\nC1,x,1\n", &big.o, NULL), SEG_EINVAL);
    MSG_STARTS(db, "big.csv:2:4: ");
    big.tail[3] = 1;
    TU_RC(db, imp(csv, &big.o, NULL), SEG_EVERSION);
    ck_assert_uint_eq(seg_event_count(db), 0);

    ck_assert_int_eq(seg_csv_options_init(NULL, sizeof o), SEG_EINVAL);
    ck_assert_int_eq(seg_csv_options_init(&o, sizeof o - 1), SEG_EVERSION);
    ck_assert_int_eq(seg_csv_options_init(&o, sizeof o), SEG_OK);
    ck_assert_uint_eq(o.struct_size, sizeof o);

    /* stats */
    st.struct_size = sizeof st - 1;
    TU_RC(db, imp(csv, NULL, &st), SEG_EVERSION);
    ck_assert_uint_eq(seg_event_count(db), 0);
    st.struct_size = sizeof st;
    TU_OK(db, imp(csv, NULL, &st));
    ck_assert_uint_eq(st.accepted, 1);

    /* unknown flags */
    o.flags = 0x80;
    TU_RC(db, imp(csv, &o, NULL), SEG_EINVAL);
}
END_TEST

START_TEST(csv_source_name)
{
    seg_csv_options o = SEG_CSV_OPTIONS_INIT;
    o.source_name = "events.csv";
    TU_RC(db, imp("customer_id,ts,amount\nC1,2024-03-01,1\nC1,2024-03-01,1\nC1,2024-03-01,x\n",
                  &o, NULL),
          SEG_EINVAL);
    MSG_STARTS(db, "events.csv:4:15: amount: ");
    TU_MSG_HAS(db, "'x'");
}
END_TEST

START_TEST(csv_long_values_in_messages)
{
    /* an overlong cell is cut in the message, never overflowing it */
    char *junk = tu_repeat('9', 5000);
    sbuf b;
    memset(&b, 0, sizeof b);
    sb_add(&b, "customer_id,ts,amount\nC1,2024-03-01,%s.5x\n", junk);
    free(junk);
    TU_RC(db, seg_event_import_csv(db, b.p, b.n, NULL, NULL), SEG_EINVAL);
    MSG_STARTS(db, "<buffer>:2:15: amount: ");
    ck_assert_uint_lt(strlen(seg_errmsg(db)), 300);
    free(b.p);
}
END_TEST

START_TEST(csv_no_out_of_bounds_reads)
{
    /* every prefix of a tricky input: no crash, and the result is stable
     * (run under valgrind or ASan to see stray reads) */
    const char *csv = "\xEF\xBB\xBF" "customer_id,ts,amount,category\r\n"
                      "\"C\"\"1\",2024-03-01T10:00:00Z,1.00,\"a,\r\nb\"\r\n"
                      "C2,2024-03-01,2,\"\"\r\n";
    size_t n = strlen(csv), k;
    for (k = 0; k <= n; k++) {
        char *copy = malloc(k ? k : 1);
        memcpy(copy, csv, k);
        seg_db *d = NULL;
        ck_assert_int_eq(seg_db_open(&d, ":memory:", NULL), SEG_OK);
        int rc = seg_event_import_csv(d, copy, k, NULL, NULL);
        ck_assert_msg(rc == SEG_OK || rc == SEG_EPARSE || rc == SEG_EINVAL || rc == SEG_ERANGE,
                      "prefix %zu: %d", k, rc);
        seg_db_close(d);
        free(copy);
    }
}
END_TEST

START_TEST(csv_random_garbage)
{
    /* random bytes from a small alphabet of CSV-significant characters */
    static const char alphabet[] = "\",\r\nC1.-0:Tx\xc3\xa9";
    uint64_t st = 7;
    int round;
    for (round = 0; round < 300; round++) {
        char buf[200];
        size_t n = (size_t)(tu_rand(&st) % sizeof buf), i;
        const char *hdr = "customer_id,ts,amount\n";
        size_t hn = strlen(hdr);
        memcpy(buf, hdr, hn);
        if (n < hn)
            n = hn;
        for (i = hn; i < n; i++)
            buf[i] = alphabet[tu_rand(&st) % (sizeof alphabet - 1)];
        char *copy = malloc(n);
        memcpy(copy, buf, n);
        seg_csv_options o = SEG_CSV_OPTIONS_INIT;
        o.flags = (round & 1) ? SEG_CSV_PER_EVENT : 0;
        int rc = seg_event_import_csv(db, copy, n, &o, NULL);
        ck_assert_msg(rc <= 0, "round %d: %d", round, rc);
        if (rc != SEG_OK)
            ck_assert_msg(seg_errmsg(db)[0] == '<', "round %d: message \"%s\"", round,
                          seg_errmsg(db));
        free(copy);
    }
}
END_TEST

/* ======================================================================== */
/* event CSV: files                                                          */
/* ======================================================================== */

/* a CSV of n rows whose quoted fields (embedded commas, quotes, line breaks)
 * land on every kind of position, including chunk boundaries */
static sbuf make_big_csv(size_t n, size_t *lines_out)
{
    sbuf b;
    size_t i, lines = 1;
    memset(&b, 0, sizeof b);
    sb_add(&b, "customer_id,ts,amount,note,order_id,category\n");
    for (i = 0; i < n; i++) {
        int64_t t = TU_D0 + (int64_t)(i * 37) % (400 * TU_DAY);
        char ts[32];
        seg_time_format(ts, sizeof ts, t);
        switch (i % 5) {
        case 0:
            sb_add(&b, "C%zu,%s,%zu.%02zu,,O%zu,cat%zu\n", i % 997, ts, i % 300, i % 100, i,
                   i % 7);
            break;
        case 1:
            sb_add(&b, "\"C%zu\",\"%s\",\"%zu.50\",\"multi\nline,\"\"note\"\"\",O%zu,\"c,%zu\"\r\n",
                   i % 997, ts, i % 50, i, i % 3);
            lines++;
            break;
        case 2:
            sb_add(&b, "C%zu,%s,%zu,\"%0*d\",O%zu,\n", i % 997, ts, i % 77, (int)(i % 300), 0, i);
            break;
        case 3:
            sb_add(&b, "\n");
            lines++;
            sb_add(&b, "C%zu,%zu,1.00,x,,\"q\"\"\"\n", i % 997, (size_t)(TU_D0 + (int64_t)i));
            break;
        default:
            sb_add(&b, "C%zu,%s,-%zu.25,\"\r\n\r\n\",,dairy\r\n", i % 997, ts, 1 + i % 9);
            lines += 2;
            break;
        }
        lines++;
    }
    if (lines_out)
        *lines_out = lines;
    return b;
}

START_TEST(csv_file_matches_buffer)
{
    seg_csv_options o = SEG_CSV_OPTIONS_INIT;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT, st2 = SEG_INGEST_STATS_INIT;
    o.flags = SEG_CSV_IGNORE_UNKNOWN;
    size_t lines;
    sbuf b = make_big_csv(40000, &lines);
    ck_assert_uint_gt(b.n, (size_t)2 << 20); /* spans several read chunks */
    char *path = temp_file(b.p, b.n);

    TU_OK(db, seg_event_import_csv_file(db, path, &o, &st));
    ck_assert_uint_eq(st.accepted, 40000);
    seg_db *d2 = NULL;
    ck_assert_int_eq(seg_db_open(&d2, ":memory:", NULL), SEG_OK);
    TU_OK(d2, seg_event_import_csv(d2, b.p, b.n, &o, &st2));
    ck_assert_uint_eq(st2.accepted, 40000);
    tu_snapshot s1, s2;
    tu_snap_take(&s1, db, 0);
    tu_snap_take(&s2, d2, 0);
    const char *why = tu_snap_diff(&s1, &s2, 1);
    ck_assert_msg(why == NULL, "file and buffer imports differ: %s", why);
    tu_snap_free(&s1);
    tu_snap_free(&s2);
    tu_ev_list l = events_of(db);
    ck_assert_str_eq(l.e[4].category, "dairy");
    ck_assert_str_eq(l.e[1].category, "c,1");
    ck_assert_str_eq(l.e[3].category, "q\"");
    tu_ev_list_free(&l);

    /* again from the file: all duplicates */
    TU_OK(db, seg_event_import_csv_file(db, path, &o, &st));
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_uint_eq(st.duplicates, 40000);
    unlink(path);
    free(path);

    /* a bad last row: the line number counts every line before it */
    sb_add(&b, "C1,2024-03-01,oops,,,\n");
    path = temp_file(b.p, b.n);
    TU_RC(d2, seg_event_import_csv_file(d2, path, &o, NULL), SEG_EINVAL);
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s:%zu:15: amount: ", path, lines + 1);
    MSG_STARTS(d2, prefix);
    ck_assert_uint_eq(seg_event_count(d2), 40000);
    unlink(path);
    free(path);
    seg_db_close(d2);
    free(b.p);
}
END_TEST

START_TEST(csv_file_long_row)
{
    /* one row longer than the read chunk */
    seg_csv_options o = SEG_CSV_OPTIONS_INIT;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    o.flags = SEG_CSV_IGNORE_UNKNOWN;
    char *big = tu_repeat('z', (size_t)3 << 20);
    sbuf b;
    memset(&b, 0, sizeof b);
    sb_add(&b, "customer_id,blob,ts,amount\nC1,x,2024-03-01,1\nC2,\"%s\",2024-03-01,2\n"
               "C3,%s,2024-03-01,3\nC4,y,2024-03-01,4",
           big, big);
    free(big);
    char *path = temp_file(b.p, b.n);
    TU_OK(db, seg_event_import_csv_file(db, path, &o, &st));
    ck_assert_uint_eq(st.accepted, 4);
    tu_ev_list l = events_of(db);
    ck_assert_str_eq(l.e[3].customer_id, "C4");
    ck_assert_int_eq(l.e[3].amount, 400);
    tu_ev_list_free(&l);
    unlink(path);
    free(path);
    free(b.p);
}
END_TEST

START_TEST(csv_file_errors)
{
    TU_RC(db, seg_event_import_csv_file(db, "/nonexistent/dir/events.csv", NULL, NULL), SEG_EIO);
    MSG_STARTS(db, "cannot open '/nonexistent/dir/events.csv': ");
    TU_RC(db, seg_event_import_csv_file(db, "/tmp", NULL, NULL), SEG_EIO);
    TU_RC(db, seg_customer_import_csv_file(db, "/nonexistent/c.csv"), SEG_EIO);
    MSG_STARTS(db, "cannot open '/nonexistent/c.csv': ");

    /* the path names the source; source_name overrides it */
    const char *csv = "customer_id,ts,amount\nC1,2024-03-01,x\n";
    char *path = temp_file(csv, strlen(csv));
    char prefix[256];
    TU_RC(db, seg_event_import_csv_file(db, path, NULL, NULL), SEG_EINVAL);
    snprintf(prefix, sizeof prefix, "%s:2:15: amount: ", path);
    MSG_STARTS(db, prefix);
    seg_csv_options o = SEG_CSV_OPTIONS_INIT;
    o.source_name = "named";
    TU_RC(db, seg_event_import_csv_file(db, path, &o, NULL), SEG_EINVAL);
    MSG_STARTS(db, "named:2:15: amount: ");
    unlink(path);
    free(path);

    /* an empty file */
    path = temp_file("", 0);
    TU_OK(db, seg_event_import_csv_file(db, path, NULL, NULL));
    unlink(path);
    free(path);
}
END_TEST

/* ======================================================================== */
/* customer CSV                                                              */
/* ======================================================================== */

START_TEST(cust_basic)
{
    const char *csv =
        "customer_id,age:int,score:number,vip:bool,signup:time,city:string,consent:email,"
        "consent:sms\n"
        "C1,42,1.5,true,2024-03-01T10:00:00Z,Z\xc3\xbcrich,granted,denied\n"
        "C2,-7,-2e-3,FALSE,1709287200,\"Paris, \"\"FR\"\"\",denied,\n"
        "C3,,,,,,,\n";
    TU_OK(db, imp_cust(csv));
    ck_assert_uint_eq(seg_customer_count(db), 3);
    ck_assert_str_eq(seg_errmsg(db), "");
    seg_value v;
    TU_OK(db, seg_customer_get_attr(&v, db, "C1", "age"));
    ck_assert_uint_eq(v.type, SEG_TYPE_INT);
    ck_assert_int_eq(v.i, 42);
    TU_OK(db, seg_customer_get_attr(&v, db, "C1", "score"));
    ck_assert_uint_eq(v.type, SEG_TYPE_NUMBER);
    ck_assert(v.d == 1.5);
    TU_OK(db, seg_customer_get_attr(&v, db, "C1", "vip"));
    ck_assert_uint_eq(v.type, SEG_TYPE_BOOL);
    ck_assert_int_eq(v.i, 1);
    TU_OK(db, seg_customer_get_attr(&v, db, "C1", "signup"));
    ck_assert_uint_eq(v.type, SEG_TYPE_TIME);
    ck_assert_int_eq(v.i, INT64_C(1709287200));
    TU_OK(db, seg_customer_get_attr(&v, db, "C1", "city"));
    ck_assert_uint_eq(v.type, SEG_TYPE_STRING);
    ck_assert_str_eq(v.s, "Z\xc3\xbcrich");
    TU_OK(db, seg_customer_get_attr(&v, db, "C2", "age"));
    ck_assert_int_eq(v.i, -7);
    TU_OK(db, seg_customer_get_attr(&v, db, "C2", "score"));
    ck_assert(v.d == -2e-3);
    TU_OK(db, seg_customer_get_attr(&v, db, "C2", "vip"));
    ck_assert_int_eq(v.i, 0);
    TU_OK(db, seg_customer_get_attr(&v, db, "C2", "city"));
    ck_assert_str_eq(v.s, "Paris, \"FR\"");
    int c = -1;
    TU_OK(db, seg_customer_get_consent(&c, db, "C1", "email"));
    ck_assert_int_eq(c, SEG_CONSENT_GRANTED);
    TU_OK(db, seg_customer_get_consent(&c, db, "C1", "sms"));
    ck_assert_int_eq(c, SEG_CONSENT_DENIED);
    TU_OK(db, seg_customer_get_consent(&c, db, "C2", "email"));
    ck_assert_int_eq(c, SEG_CONSENT_DENIED);
    TU_OK(db, seg_customer_get_consent(&c, db, "C2", "sms"));
    ck_assert_int_eq(c, SEG_CONSENT_UNKNOWN);
    /* empty cells set nothing; C3 is a prospect */
    TU_OK(db, seg_customer_get_attr(&v, db, "C3", "age"));
    ck_assert_uint_eq(v.type, SEG_TYPE_NULL);
    TU_OK(db, seg_customer_get_attr(&v, db, "C3", "city"));
    ck_assert_uint_eq(v.type, SEG_TYPE_NULL);
    seg_customer_info ci;
    TU_GET(db, "C3", &ci);
    ck_assert_uint_eq(ci.events, 0);
    ck_assert_uint_eq(ci.orders, 0);

    /* empty cells do not erase values set before */
    TU_OK(db, imp_cust("customer_id,age:int\nC1,\n"));
    TU_OK(db, seg_customer_get_attr(&v, db, "C1", "age"));
    ck_assert_int_eq(v.i, 42);
    /* a later row wins */
    TU_OK(db, imp_cust("customer_id,age:int\nC1,1\nC1,2\n"));
    TU_OK(db, seg_customer_get_attr(&v, db, "C1", "age"));
    ck_assert_int_eq(v.i, 2);
    ck_assert_uint_eq(seg_customer_count(db), 3);
}
END_TEST

START_TEST(cust_only_ids_and_existing_customers)
{
    TU_OK(db, imp("customer_id,ts,amount\nC1,2024-03-01,1\n", NULL, NULL));
    TU_OK(db, imp_cust("\xEF\xBB\xBF" "customer_id\r\nC1\r\n\r\nP1\r\n\"P,2\"\r\n"));
    ck_assert_uint_eq(seg_customer_count(db), 3);
    seg_customer_info ci;
    TU_GET(db, "C1", &ci);
    ck_assert_uint_eq(ci.events, 1); /* untouched */
    TU_GET(db, "P,2", &ci);
    ck_assert_uint_eq(ci.events, 0);
    TU_OK(db, imp_cust(""));
    TU_OK(db, imp_cust("customer_id\n"));
    ck_assert_uint_eq(seg_customer_count(db), 3);
}
END_TEST

START_TEST(cust_value_words)
{
    static const struct {
        const char *cell;
        int64_t v;
    } bools[] = { { "true", 1 }, { "TRUE", 1 }, { "Yes", 1 }, { "1", 1 },
                  { "false", 0 }, { "No", 0 }, { "0", 0 }, { "False", 0 } };
    size_t i;
    for (i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        char csv[128];
        seg_value v;
        snprintf(csv, sizeof csv, "customer_id,flag:bool\nC1,%s\n", bools[i].cell);
        TU_OK(db, imp_cust(csv));
        TU_OK(db, seg_customer_get_attr(&v, db, "C1", "flag"));
        ck_assert_msg(v.i == bools[i].v, "%s -> %" PRId64, bools[i].cell, v.i);
    }
    static const struct {
        const char *cell;
        int state;
    } consents[] = { { "granted", SEG_CONSENT_GRANTED }, { "DENIED", SEG_CONSENT_DENIED },
                     { "yes", SEG_CONSENT_GRANTED },     { "no", SEG_CONSENT_DENIED },
                     { "1", SEG_CONSENT_GRANTED },       { "0", SEG_CONSENT_DENIED },
                     { "true", SEG_CONSENT_GRANTED },    { "false", SEG_CONSENT_DENIED } };
    for (i = 0; i < sizeof consents / sizeof consents[0]; i++) {
        char csv[128];
        int c;
        snprintf(csv, sizeof csv, "customer_id,consent:push\nC1,%s\n", consents[i].cell);
        TU_OK(db, imp_cust(csv));
        TU_OK(db, seg_customer_get_consent(&c, db, "C1", "push"));
        ck_assert_msg(c == consents[i].state, "%s -> %d", consents[i].cell, c);
    }
}
END_TEST

START_TEST(cust_numbers)
{
    static const struct {
        const char *cell;
        double v;
    } nums[] = {
        { "0", 0.0 },          { "-0", 0.0 },           { "1.5", 1.5 },
        { ".5", 0.5 },         { "5.", 5.0 },           { "0.1", 0.1 },
        { "1e3", 1000.0 },     { "1E-3", 0.001 },       { "+2.5e+2", 250.0 },
        { "123456789012345678901234567890", 123456789012345678901234567890.0 },
        { "3.14159265358979323846264338327950288", 3.14159265358979323846264338327950288 },
        { "1.7976931348623157e308", 1.7976931348623157e308 },
        { "4.9e-324", 4.9e-324 },
        { "0.000000000000000000000000000001", 1e-30 },
        { "9007199254740993", 9007199254740993.0 },
        { "2.2250738585072011e-308", 2.2250738585072011e-308 },
    };
    size_t i;
    for (i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        char csv[256];
        seg_value v;
        snprintf(csv, sizeof csv, "customer_id,x:number\nC1,%s\n", nums[i].cell);
        TU_OK(db, imp_cust(csv));
        TU_OK(db, seg_customer_get_attr(&v, db, "C1", "x"));
        ck_assert_uint_eq(v.type, SEG_TYPE_NUMBER);
        ck_assert_msg(v.d == nums[i].v, "%s -> %.17g, expected %.17g", nums[i].cell, v.d,
                      nums[i].v);
        ck_assert_msg(v.d == strtod(nums[i].cell, NULL), "%s: differs from strtod",
                      nums[i].cell);
    }
    /* ints at the limits */
    TU_OK(db, imp_cust("customer_id,n:int\nA,9223372036854775807\nB,-9223372036854775808\n"));
    seg_value v;
    TU_OK(db, seg_customer_get_attr(&v, db, "A", "n"));
    ck_assert_int_eq(v.i, INT64_MAX);
    TU_OK(db, seg_customer_get_attr(&v, db, "B", "n"));
    ck_assert_int_eq(v.i, INT64_MIN);
}
END_TEST

START_TEST(cust_bad_cells)
{
    static const struct {
        const char *cell;
        int code;
        const char *prefix;
    } cases[] = {
        /* header: customer_id,n:int,x:number,b:bool,t:time,s:string,consent:email */
        { "C1,4x,,,,,", SEG_EINVAL, "c.csv:3:4: n: " },
        { "C1,1.0,,,,,", SEG_EINVAL, "c.csv:3:4: n: " },
        { "C1, 1,,,,,", SEG_EINVAL, "c.csv:3:4: n: " },
        { "C1,9223372036854775808,,,,,", SEG_ERANGE, "c.csv:3:4: n: " },
        { "C1,-9223372036854775809,,,,,", SEG_ERANGE, "c.csv:3:4: n: " },
        { "C1,,abc,,,,", SEG_EINVAL, "c.csv:3:5: x: " },
        { "C1,,nan,,,,", SEG_EINVAL, "c.csv:3:5: x: " },
        { "C1,,inf,,,,", SEG_EINVAL, "c.csv:3:5: x: " },
        { "C1,,-Infinity,,,,", SEG_EINVAL, "c.csv:3:5: x: " },
        { "C1,,0x10,,,,", SEG_EINVAL, "c.csv:3:5: x: " },
        { "C1,,1e,,,,", SEG_EINVAL, "c.csv:3:5: x: " },
        { "C1,,.,,,,", SEG_EINVAL, "c.csv:3:5: x: " },
        { "C1,,1.5 ,,,,", SEG_EINVAL, "c.csv:3:5: x: " },
        { "C1,,1,5,,,,", 0, NULL }, /* (a field count error, tested elsewhere) */
        { "C1,,1e999,,,,", SEG_ERANGE, "c.csv:3:5: x: " },
        { "C1,,,maybe,,,", SEG_EINVAL, "c.csv:3:6: b: " },
        { "C1,,,2,,,", SEG_EINVAL, "c.csv:3:6: b: " },
        { "C1,,,,yesterday,,", SEG_EINVAL, "c.csv:3:7: t: " },
        { "C1,,,,2024-02-30,,", SEG_EINVAL, "c.csv:3:7: t: " },
        { "C1,,,,99999999999999,,", SEG_ERANGE, "c.csv:3:7: t: " },
        { "C1,,,,,\xff\xfe,", SEG_EINVAL, "c.csv:3:8: " },
        { "C1,,,,,,maybe", SEG_EINVAL, "c.csv:3:9: consent:email: " },
        { "\xc3\xa9\xc3\xa9,,,,,,maybe", SEG_EINVAL, "c.csv:3:9: consent:email: " },
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char csv[512];
        if (!cases[i].prefix)
            continue;
        snprintf(csv, sizeof csv,
                 "customer_id,n:int,x:number,b:bool,t:time,s:string,consent:email\n"
                 "C0,1,1,1,2024-01-01,s,granted\n%s\n", cases[i].cell);
        int rc = seg_customer_import_csv(db, csv, strlen(csv), "c.csv");
        ck_assert_msg(rc == cases[i].code, "row \"%s\": %d, expected %d (%s)", cases[i].cell, rc,
                      cases[i].code, seg_errmsg(db));
        MSG_STARTS(db, cases[i].prefix);
        ck_assert_uint_eq(seg_customer_count(db), 0);
    }
    /* a string longer than SEG_ATTR_VALUE_MAX */
    char *s = tu_repeat('s', SEG_ATTR_VALUE_MAX + 1);
    sbuf b;
    memset(&b, 0, sizeof b);
    sb_add(&b, "customer_id,s:string\nC1,%s\n", s);
    free(s);
    ck_assert_int_ne(seg_customer_import_csv(db, b.p, b.n, NULL), SEG_OK);
    MSG_STARTS(db, "<buffer>:2:4: ");
    free(b.p);
    ck_assert_uint_eq(seg_customer_count(db), 0);
}
END_TEST

START_TEST(cust_header_errors)
{
    static const struct {
        const char *csv;
        int code;
        const char *prefix;
    } cases[] = {
        { "customer_id,age:integer\n", SEG_EINVAL, "<buffer>:1:13: " },
        { "customer_id,age\n", SEG_EINVAL, "<buffer>:1:13: " },
        { "customer_id,:int\n", SEG_EINVAL, "<buffer>:1:13: " },
        { "customer_id,consent:\n", SEG_EINVAL, "<buffer>:1:13: " },
        { "age:int\nC1\n", SEG_EINVAL, "<buffer>:1:1: " },
        { "customer_id,age:int,age:int\n", SEG_EINVAL, "<buffer>:1:21: duplicate column" },
        { "customer_id,age:int,age:string\n", SEG_EINVAL, "<buffer>:1:21: duplicate column" },
        { "customer_id,consent:sms,consent:sms\n", SEG_EINVAL, "<buffer>:1:25: duplicate" },
        { "customer_id,x:int,customer_id\n", SEG_EINVAL, "<buffer>:1:19: duplicate column" },
        { "customer_id,a:int\nC1,1,2\n", SEG_EPARSE, "<buffer>:2:6: expected 2 fields, got 3" },
        { "customer_id,a:int\nC1\n", SEG_EPARSE, "<buffer>:2:3: expected 2 fields, got 1" },
        { "customer_id,a:int\nC1,\"1\n", SEG_EPARSE, "<buffer>:2:4: " },
        { "customer_id,a:int\nC\"1,1\n", SEG_EPARSE, "<buffer>:2:2: " },
    };
    size_t i;
    TU_OK(db, imp_cust("customer_id,keep:int\nK,1\n"));
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = imp_cust(cases[i].csv);
        ck_assert_msg(rc == cases[i].code, "case %zu: %d, expected %d (%s)", i, rc,
                      cases[i].code, seg_errmsg(db));
        MSG_STARTS(db, cases[i].prefix);
        ck_assert_uint_eq(seg_customer_count(db), 1);
    }
    /* "consent:" always means consent; an attribute name may hold ':' */
    TU_OK(db, imp_cust("customer_id,a:b:int\nK,5\n"));
    seg_value v;
    TU_OK(db, seg_customer_get_attr(&v, db, "K", "a:b"));
    ck_assert_int_eq(v.i, 5);
}
END_TEST

START_TEST(cust_refused_by_store)
{
    /* errors found when applying: their op's line and column */
    TU_OK(db, seg_attr_declare(db, "age", SEG_TYPE_STRING));
    TU_OK(db, imp_cust("customer_id,x:int\nK,1\n"));
    ck_assert_uint_eq(seg_customer_count(db), 1);
    ck_assert_int_ne(imp_cust("customer_id,age:int\nC1,\nC2,5\n"), SEG_OK);
    MSG_STARTS(db, "<buffer>:3:4: ");
    ck_assert_uint_eq(seg_customer_count(db), 1);
    ck_assert_int_ne(imp_cust("customer_id,y:int\nC1,1\n,2\n"), SEG_OK);
    MSG_STARTS(db, "<buffer>:3:1: ");
    ck_assert_uint_eq(seg_customer_count(db), 1);
    char *id = tu_repeat('i', SEG_ID_MAX + 1);
    char csv[1024];
    snprintf(csv, sizeof csv, "y:int,customer_id\n1,C1\n2,\"%s\"\n", id);
    free(id);
    ck_assert_int_ne(imp_cust(csv), SEG_OK);
    MSG_STARTS(db, "<buffer>:3:3: ");
    ck_assert_uint_eq(seg_customer_count(db), 1);
}
END_TEST

START_TEST(cust_file)
{
    const char *csv = "customer_id,tier:string,consent:email\n"
                      "F1,\"gold\nplus\",granted\n"
                      "F2,silver,\n";
    char *path = temp_file(csv, strlen(csv));
    TU_OK(db, seg_customer_import_csv_file(db, path));
    ck_assert_uint_eq(seg_customer_count(db), 2);
    seg_value v;
    TU_OK(db, seg_customer_get_attr(&v, db, "F1", "tier"));
    ck_assert_str_eq(v.s, "gold\nplus");
    unlink(path);
    free(path);

    const char *bad = "customer_id,n:int\nF1,1\nF3,x\n";
    path = temp_file(bad, strlen(bad));
    TU_RC(db, seg_customer_import_csv_file(db, path), SEG_EINVAL);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s:3:4: n: ", path);
    MSG_STARTS(db, prefix);
    ck_assert_uint_eq(seg_customer_count(db), 2);
    unlink(path);
    free(path);
}
END_TEST


/* ======================================================================== */
/* out of memory                                                             */
/* ======================================================================== */

/* Run `op` on a db with a failing allocator after every number of
 * allocations: each run either succeeds with the state `want` or fails with
 * SEG_ENOMEM changing nothing; nothing leaks. */
typedef int (*oom_op)(seg_db *d, void *ctx);

static void oom_sweep(oom_op op, void *ctx, const char *what)
{
    seg_db *ref = NULL;
    tu_snapshot want;
    long n;
    int done = 0;
    ck_assert_int_eq(seg_db_open(&ref, ":memory:", NULL), SEG_OK);
    TU_OK(ref, seg_customer_add(ref, "seed"));
    TU_OK(ref, op(ref, ctx));
    tu_snap_take(&want, ref, 0);
    seg_db_close(ref);
    for (n = 0; n < 100000 && !done; n++) {
        tu_alloc a;
        seg_allocator al;
        seg_db_options o = SEG_DB_OPTIONS_INIT;
        seg_db *d = NULL;
        tu_snapshot before, got;
        const char *why;
        int rc;
        memset(&a, 0, sizeof a);
        a.fail_after = -1;
        al = tu_allocator(&a);
        o.allocator = &al;
        ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_OK);
        TU_OK(d, seg_customer_add(d, "seed"));
        tu_snap_take(&before, d, 0);
        a.fail_after = (long)a.attempts + n;
        rc = op(d, ctx);
        a.fail_after = -1;
        if (rc == SEG_OK) {
            done = 1;
        } else {
            if (rc != SEG_ENOMEM)
                ck_abort_msg("%s, fail after %ld: %d (%s)", what, n, rc, seg_errmsg(d));
            TU_UNCHANGED(d, &before);
            TU_OK(d, op(d, ctx)); /* still usable */
        }
        tu_snap_take(&got, d, 0);
        why = tu_snap_diff(&want, &got, 1);
        if (why)
            ck_abort_msg("%s, fail after %ld: end state differs: %s", what, n, why);
        tu_snap_free(&got);
        tu_snap_free(&before);
        seg_db_close(d);
        if (a.live_blocks != 0)
            ck_abort_msg("%s, fail after %ld: %ld blocks leaked", what, n, a.live_blocks);
    }
    ck_assert_msg(done, "%s never succeeded", what);
    tu_snap_free(&want);
}

static const char oom_events[] =
    "\xEF\xBB\xBF" "customer_id,ts,amount,category,note\r\n"
    "C1,2024-03-01T10:00:00Z,1.00,\"a \"\"b\"\"\",\"x\ny\"\r\n"
    "C2,2024-03-02,2.00,toys,\r\n"
    "C1,2024-03-03,-0.50,,\"\"\"\"\r\n"
    "C3,1709287200,3,\"c,d\",z\r\n";

static int oom_event_buffer(seg_db *d, void *ctx)
{
    seg_csv_options o = SEG_CSV_OPTIONS_INIT;
    o.flags = SEG_CSV_IGNORE_UNKNOWN | (ctx ? SEG_CSV_PER_EVENT : 0);
    return seg_event_import_csv(d, oom_events, sizeof oom_events - 1, &o, NULL);
}

static int oom_event_file(seg_db *d, void *ctx)
{
    seg_csv_options o = SEG_CSV_OPTIONS_INIT;
    o.flags = SEG_CSV_IGNORE_UNKNOWN;
    return seg_event_import_csv_file(d, (const char *)ctx, &o, NULL);
}

static int oom_customers(seg_db *d, void *ctx)
{
    static const char csv[] = "customer_id,age:int,city:string,score:number,consent:email\n"
                              "C1,42,\"Z\"\"x\",1.5,granted\n"
                              "C2,,\"a,\nb\",,denied\n"
                              "C3,7,plain,2e10,\n";
    (void)ctx;
    return seg_customer_import_csv(d, csv, sizeof csv - 1, NULL);
}

START_TEST(oom_event_import)
{
    oom_sweep(oom_event_buffer, NULL, "atomic import");
    oom_sweep(oom_event_buffer, (void *)1, "per-event import");
    char *path = temp_file(oom_events, sizeof oom_events - 1);
    oom_sweep(oom_event_file, path, "file import");
    unlink(path);
    free(path);
}
END_TEST

START_TEST(oom_customer_import)
{
    oom_sweep(oom_customers, NULL, "customer import");
}
END_TEST

/* ======================================================================== */

/* A read-only db, or a call from inside a foreach callback, refuses an
 * import even when the input has no rows. */
START_TEST(import_refused_when_not_writable)
{
    static const char hdr[] = "customer_id,ts,amount\n";
    static const char chdr[] = "customer_id,age:int\n";
    seg_db *ro = NULL;
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    o.flags = SEG_DB_READONLY;
    ck_assert_int_eq(seg_db_open(&ro, ":memory:", &o), SEG_OK);
    st.accepted = 9;
    ck_assert_int_eq(seg_event_import_csv(ro, hdr, sizeof hdr - 1, NULL, &st), SEG_EREADONLY);
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_ptr_nonnull(strstr(seg_errmsg(ro), "read-only"));
    ck_assert_int_eq(seg_customer_import_csv(ro, chdr, sizeof chdr - 1, NULL), SEG_EREADONLY);
    ck_assert_uint_eq(seg_customer_count(ro), 0);
    seg_db_close(ro);
}
END_TEST

static int import_from_callback(const seg_customer_info *c, void *payload)
{
    static const char rows[] = "customer_id,ts,amount\nx,2024-01-01,1.00\n";
    (void)c;
    *(int *)payload = seg_event_import_csv(db, rows, sizeof rows - 1, NULL, NULL);
    return 1;
}

START_TEST(import_refused_inside_foreach)
{
    static const char rows[] = "customer_id,ts,amount\na,2024-01-01,1.00\n";
    int rc = 12345;
    ck_assert_int_eq(seg_event_import_csv(db, rows, sizeof rows - 1, NULL, NULL), SEG_OK);
    ck_assert_int_eq(seg_customer_foreach(db, 0, import_from_callback, &rc), SEG_OK);
    ck_assert_int_eq(rc, SEG_EMISUSE);
    ck_assert_uint_eq(seg_event_count(db), 1);
    ck_assert_uint_eq(seg_customer_count(db), 1);
}
END_TEST

/* Rows reach the store in groups; errors still come in row order, with
 * the position of the row they are about. */
static void collect_index(size_t index, int code, const char *reason, void *payload)
{
    size_t *v = payload;
    (void)code;
    (void)reason;
    v[++v[0]] = index;
}

START_TEST(grouped_rows_report_in_order)
{
    static const char rows[] =
        "customer_id,ts,amount,refund_of\n"
        "a,2024-01-01,1.00,\n"          /* row 0 */
        "a,2024-01-02,-1.00,nope\n"     /* row 1: unknown order (found by the store) */
        "b,2024-01-03,2.00,\n"          /* row 2 */
        "b,2024-01-04,2.00,\n"          /* row 3 */
        "c,2024-13-01,3.00,\n";         /* row 4: bad time (found by the parser) */
    size_t got[8] = { 0 };
    seg_csv_options o = SEG_CSV_OPTIONS_INIT;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    ck_assert_int_eq(seg_event_import_csv(db, rows, sizeof rows - 1, NULL, NULL), SEG_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(seg_errmsg(db), "<buffer>:3:"));
    ck_assert_uint_eq(seg_event_count(db), 0);
    o.flags = SEG_CSV_PER_EVENT;
    o.on_reject = collect_index;
    o.payload = got;
    ck_assert_int_eq(seg_event_import_csv(db, rows, sizeof rows - 1, &o, &st), SEG_OK);
    ck_assert_uint_eq(got[0], 2);
    ck_assert_uint_eq(got[1], 1);
    ck_assert_uint_eq(got[2], 4);
    ck_assert_uint_eq(st.accepted, 3);
    ck_assert_uint_eq(st.rejected, 2);
    ck_assert_uint_eq(seg_event_count(db), 3);
}
END_TEST

/* More rows than one group, with escaped fields in some of them. */
START_TEST(grouped_rows_with_escapes)
{
    char *buf = malloc(200000);
    size_t n = 0;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    n += (size_t)sprintf(buf + n, "customer_id,ts,amount,category\n");
    for (int k = 0; k < 1000; k++)
        n += (size_t)sprintf(buf + n, k % 7 == 0 ? "c%d,2024-01-01T00:00:%02dZ,1.%02d,\"x\"\"%d\"\n"
                                                 : "c%d,2024-01-01T00:00:%02dZ,1.%02d,plain%d\n",
                             k % 50, k % 60, k % 100, k % 3);
    ck_assert_int_eq(seg_event_import_csv(db, buf, n, NULL, &st), SEG_OK);
    ck_assert_uint_eq(st.accepted + st.duplicates, 1000);
    ck_assert_uint_eq(seg_customer_count(db), 50);
    st.accepted = 77;
    ck_assert_int_eq(seg_event_import_csv(db, buf, n, NULL, &st), SEG_OK);
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_uint_eq(st.duplicates, 1000);
    free(buf);
}
END_TEST

Suite *csv_suite(void)
{
    Suite *s = suite_create("csv");
    TCase *tc;

    tc = tcase_create("time");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, time_round_trip_every_few_days);
    tcase_add_test(tc, time_known_values);
    tcase_add_test(tc, time_leap_days);
    tcase_add_test(tc, time_invalid_forms);
    tcase_add_test(tc, time_out_of_range);
    tcase_add_test(tc, time_length_not_nul);
    tcase_add_test(tc, time_format_edges);
    suite_add_tcase(s, tc);

    tc = tcase_create("money");
    tcase_add_test(tc, money_parse_values);
    tcase_add_test(tc, money_parse_errors);
    tcase_add_test(tc, money_parse_overflow);
    tcase_add_test(tc, money_format_values);
    tcase_add_test(tc, money_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("events");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, csv_basic);
    tcase_add_test(tc, csv_all_columns);
    tcase_add_test(tc, csv_type_inferred);
    tcase_add_test(tc, csv_quoting);
    tcase_add_test(tc, csv_multiline_fields_keep_line_numbers);
    tcase_add_test(tc, csv_crlf);
    tcase_add_test(tc, csv_bom);
    tcase_add_test(tc, csv_no_trailing_newline);
    tcase_add_test(tc, csv_blank_lines);
    tcase_add_test(tc, csv_empty_inputs);
    tcase_add_test(tc, csv_column_order);
    tcase_add_test(tc, csv_unknown_column);
    tcase_add_test(tc, csv_ignore_unknown);
    tcase_add_test(tc, csv_column_map);
    tcase_add_test(tc, csv_duplicate_column);
    tcase_add_test(tc, csv_missing_column);
    tcase_add_test(tc, csv_bad_cells_name_line_and_column);
    tcase_add_test(tc, csv_wrong_field_count);
    tcase_add_test(tc, csv_malformed_quotes);
    tcase_add_test(tc, csv_per_event_mode);
    tcase_add_test(tc, csv_per_event_structure_error_is_fatal);
    tcase_add_test(tc, csv_atomic_failure_changes_nothing);
    tcase_add_test(tc, csv_reimport_is_noop);
    tcase_add_test(tc, csv_identical_rows_are_all_kept);
    tcase_add_test(tc, csv_identical_rows_interleaved);
    tcase_add_test(tc, csv_currency_exponent);
    tcase_add_test(tc, csv_null_arguments);
    tcase_add_test(tc, csv_options_versions);
    tcase_add_test(tc, csv_source_name);
    tcase_add_test(tc, csv_long_values_in_messages);
    tcase_add_test(tc, csv_no_out_of_bounds_reads);
    tcase_add_test(tc, csv_random_garbage);
    tcase_add_test(tc, csv_file_matches_buffer);
    tcase_add_test(tc, csv_file_long_row);
    tcase_add_test(tc, csv_file_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("customers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, cust_basic);
    tcase_add_test(tc, cust_only_ids_and_existing_customers);
    tcase_add_test(tc, cust_value_words);
    tcase_add_test(tc, cust_numbers);
    tcase_add_test(tc, cust_bad_cells);
    tcase_add_test(tc, cust_header_errors);
    tcase_add_test(tc, cust_refused_by_store);
    tcase_add_test(tc, cust_file);
    tcase_add_test(tc, import_refused_when_not_writable);
    tcase_add_test(tc, import_refused_inside_foreach);
    tcase_add_test(tc, grouped_rows_report_in_order);
    tcase_add_test(tc, grouped_rows_with_escapes);
    suite_add_tcase(s, tc);

    tc = tcase_create("oom");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, oom_event_import);
    tcase_add_test(tc, oom_customer_import);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(csv_suite());
    srunner_run_all(sr, CK_ENV);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
