/*
 * tests/check_loyalty.c: loyalty programs: the `program` item (and its
 * compile errors with positions), the engine through the stateless score
 * (points, rounding, bonuses, expiry, FIFO redemption, refunds after
 * redemption, tiers over a rolling window, upgrade timing, downgrade grace),
 * the ledger on a database (following ingestion, rollback, redemption,
 * SQLite reopen, the records' SQL view) and the segdef values.
 *
 * Expected figures are worked out in the comments from the rules in
 * doc/loyalty.md.
 */
#include "testutil.h"
#include "loyalty/loyalty-private.h"

#include <limits.h>
#include <unistd.h>
#if SEG_HAVE_SQLITE
#include <sqlite3.h>
#endif

#define D TU_DAY

static char errbuf[1024];

static seg_loyalty *compile_ok(const char *src)
{
    seg_loyalty *p = NULL;
    seg_loyalty_options o = SEG_LOYALTY_OPTIONS_INIT;
    o.errbuf = errbuf;
    o.errbuf_size = sizeof errbuf;
    errbuf[0] = '\0';
    int rc = seg_loyalty_compile(&p, src, strlen(src), &o);
    ck_assert_msg(rc == SEG_OK, "compile: %d %s\n%s", rc, errbuf, src);
    return p;
}

static int compile_rc(const char *src)
{
    seg_loyalty *p = (seg_loyalty *)1;
    seg_loyalty_options o = SEG_LOYALTY_OPTIONS_INIT;
    o.errbuf = errbuf;
    o.errbuf_size = sizeof errbuf;
    errbuf[0] = '\0';
    int rc = seg_loyalty_compile(&p, src, strlen(src), &o);
    if (rc != SEG_OK)
        ck_assert_ptr_null(p);
    seg_loyalty_free(rc == SEG_OK ? p : NULL);
    return rc;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    return b;
}

/* ======================================================================== */
/* the program item                                                          */
/* ======================================================================== */

START_TEST(bundled_program)
{
    char *src = read_file(SEG_SRCDIR "/examples/definitions/loyalty.seg");
    seg_loyalty *p = compile_ok(src);
    ck_assert_str_eq(seg_loyalty_name(p), "rewards");
    ck_assert_int_eq(seg_loyalty_tier_count(p), 3);
    ck_assert_str_eq(seg_loyalty_tier_name(p, 0), "silver");
    ck_assert_str_eq(seg_loyalty_tier_name(p, 2), "platinum");
    ck_assert_ptr_null(seg_loyalty_tier_name(p, 3));
    ck_assert_ptr_null(seg_loyalty_tier_name(p, -1));
    /* the same text compiles as segments (the program is skipped) */
    seg_db *db = NULL;
    ck_assert_int_eq(seg_db_open(&db, ":memory:", NULL), SEG_OK);
    seg_segdef *def = NULL;
    TU_OK(db, seg_segdef_compile(&def, db, src, strlen(src)));
    ck_assert_uint_eq(seg_segdef_segment_count(def), 2);
    seg_segdef_free(def);
    seg_db_close(db);
    seg_loyalty_free(p);
    free(src);
}
END_TEST

typedef struct bad_case {
    const char *src;
    int code;
    const char *pos;    /* "line:col: " the message starts with */
    const char *needle;
} bad_case;

#define P0 "program p {\n  earn 1 point per 1.00;\n"
static const bad_case bads[] = {
    /* negative or overflowing points */
    { "program p {\n  earn -1 point per 1.00;\n  tier a;\n}", SEG_EINVAL, "2:8: ", "negative" },
    { "program p {\n  earn 0 points per 1.00;\n  tier a;\n}", SEG_EINVAL, "2:8: ", "more than 0" },
    { "program p {\n  earn 1000000 points per 0.01;\n  tier a;\n}", SEG_ERANGE, "2:3: ",
      "points overflow" },
    { "program p {\n  earn 99999999999999999 points per 1.00;\n  tier a;\n}", SEG_ERANGE, "2:8: ",
      "too large" },
    { "program p {\n  earn 1 point per -1.00;\n  tier a;\n}", SEG_EINVAL, "2:20: ", "negative" },
    { P0 "  bonus category \"x\" points -5;\n  tier a;\n}", SEG_EINVAL, "3:29: ", "negative" },
    { P0 "  bonus category \"x\" points 2000000000000000;\n  tier a;\n}", SEG_ERANGE, "3:29: ",
      "too large" },
    { P0 "  tier a;\n  tier b from 10 multiplier 1000000;\n}", SEG_ERANGE, "4:29: ", "too large" },
    /* tiers out of order */
    { P0 "  tier a;\n  tier b from 500.00;\n  tier c from 100.00;\n}", SEG_EINVAL, "5:15: ",
      "not in increasing order" },
    { P0 "  tier a;\n  tier b from 500.00;\n  tier c from 500.00;\n}", SEG_EINVAL, "5:15: ",
      "tier 'b' before it (4:8)" },
    { P0 "  tier a from 10.00;\n}", SEG_EINVAL, "3:15: ", "starts from 0" },
    { P0 "  tier a;\n  tier b;\n}", SEG_EINVAL, "4:8: ", "needs 'from'" },
    { P0 "  tier a;\n  tier a from 1.00;\n}", SEG_EINVAL, "4:8: ", "already defined at 3:8" },
    { P0 "  qualify orders over 365d;\n  tier a;\n  tier b from 2.5;\n}", SEG_EINVAL, "5:15: ",
      "whole number" },
    /* overlapping bonus rules */
    { P0 "  bonus category \"books\" multiplier 2;\n  bonus channel \"web\" points 5;\n  tier a;\n}",
      SEG_EINVAL, "4:3: ", "category \"books\" and channel \"web\" matches both this rule and the "
      "one at 3:3" },
    { P0 "  bonus category \"a\", \"b\" multiplier 2;\n  bonus category \"c\", \"b\" multiplier 3;\n"
      "  tier a;\n}", SEG_EINVAL, "4:3: ", "overlap" },
    /* zero or overflowing durations */
    { P0 "  expire after 0d;\n  tier a;\n}", SEG_EINVAL, "3:16: ", "longer than 0" },
    { P0 "  qualify spend over 0w;\n  tier a;\n}", SEG_EINVAL, "3:22: ", "longer than 0" },
    { P0 "  grace 99999999999d;\n  tier a;\n}", SEG_ERANGE, "3:9: ", "too long" },
    { P0 "  grace -5d;\n  tier a;\n}", SEG_EINVAL, "3:9: ", "negative" },
    /* other mistakes */
    { P0 "  earn 2 points per 1.00;\n  tier a;\n}", SEG_EINVAL, "3:3: ", "given twice" },
    { "program p {\n  tier a;\n}", SEG_EINVAL, "3:1: ", "no 'earn' rule" },
    { P0 "}", SEG_EINVAL, "3:1: ", "no tier" },
    { P0 "  reward 5;\n  tier a;\n}", SEG_EPARSE, "3:3: ", "a rule of the program" },
    { P0 "  tier a\n}", SEG_EPARSE, "4:1: ", "';' after the 'tier' rule" },
    { P0 "  minimum_spend 1.005;\n  tier a;\n}", SEG_EINVAL, "3:17: ", "more than 2 decimals" },
    { P0 "  bonus multiplier 2;\n  tier a;\n}", SEG_EPARSE, "3:9: ", "'category' or 'channel'" },
    { P0 "  bonus category \"x\";\n  tier a;\n}", SEG_EPARSE, "3:21: ", "'multiplier NUMBER'" },
    { P0 "  expire end of week;\n  tier a;\n}", SEG_EPARSE, "3:17: ", "'month', 'quarter'" },
    { P0 "  tier a;\n", SEG_EPARSE, "4:1: ", "'}' at the end of the program" },
    { P0 "  tier a;\n}\nprogram p {\n  earn 1 point per 1.00;\n  tier a;\n}", SEG_EINVAL,
      "5:9: ", "already defined at 1:1" },
    { "segment x: orders > 1;", SEG_EINVAL, "", "holds no program" },
    { P0 "  tier a;\n}\nprogram q {\n  earn 1 point per 1.00;\n  tier a;\n}", SEG_EINVAL, "",
      "several programs" },
};

START_TEST(compile_errors)
{
    const bad_case *c = &bads[_i];
    int rc = compile_rc(c->src);
    ck_assert_msg(rc == c->code, "case %d: rc %d, expected %d (%s)\n%s", _i, rc, c->code, errbuf,
                  c->src);
    ck_assert_msg(strncmp(errbuf, c->pos, strlen(c->pos)) == 0, "case %d: '%s' not at %s", _i,
                  errbuf, c->pos);
    ck_assert_msg(strstr(errbuf, c->needle) != NULL, "case %d: '%s' lacks '%s'", _i, errbuf,
                  c->needle);
}
END_TEST

START_TEST(compile_options)
{
    const char *two = P0 "  tier a;\n}\nprogram q {\n  earn 3 points per 1.00;\n  tier z;\n}";
    seg_loyalty_options o = SEG_LOYALTY_OPTIONS_INIT;
    seg_loyalty *p = NULL;
    o.name = "q";
    ck_assert_int_eq(seg_loyalty_compile(&p, two, strlen(two), &o), SEG_OK);
    ck_assert_str_eq(seg_loyalty_tier_name(p, 0), "z");
    seg_loyalty_free(p);
    o.name = "nope";
    o.errbuf = errbuf;
    o.errbuf_size = sizeof errbuf;
    ck_assert_int_eq(seg_loyalty_compile(&p, two, strlen(two), &o), SEG_EINVAL);
    TU_STR_HAS(errbuf, "no program 'nope'");
    /* versioned options: a larger struct with a non-zero tail is refused */
    struct { seg_loyalty_options o; char tail[8]; } big;
    ck_assert_int_eq(seg_loyalty_options_init(&big.o, sizeof big), SEG_OK);
    ck_assert_int_eq(seg_loyalty_compile(&p, two, strlen(two), &big.o), SEG_EINVAL); /* 2 programs */
    big.tail[3] = 1;
    ck_assert_int_eq(seg_loyalty_compile(&p, two, strlen(two), &big.o), SEG_EVERSION);
    ck_assert_int_eq(seg_loyalty_options_init(&o, 4), SEG_EVERSION);
    o = (seg_loyalty_options)SEG_LOYALTY_OPTIONS_INIT;
    o.currency_exponent = 0;
    const char *cents = "program p {\n  earn 1 point per 1.50;\n  tier a;\n}";
    ck_assert_int_eq(seg_loyalty_compile(&p, cents, strlen(cents), &o), SEG_EINVAL);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(seg_loyalty_compile(NULL, cents, strlen(cents), NULL), SEG_EINVAL);
    /* a syntax error of the segment part is reported too */
    const char *broken = "segment x: orders > ;\n" P0 "  tier a;\n}";
    ck_assert_int_eq(compile_rc(broken), SEG_EPARSE);
    ck_assert_msg(strncmp(errbuf, "1:", 2) == 0, "%s", errbuf);
    /* and 'program' is still a valid segment name after 'segment' */
    seg_db *db = NULL;
    seg_segdef *def = NULL;
    ck_assert_int_eq(seg_db_open(&db, NULL, NULL), SEG_OK);
    const char *seg = "segment program: orders > 1;";
    TU_OK(db, seg_segdef_compile(&def, db, seg, strlen(seg)));
    seg_segdef_free(def);
    seg_db_close(db);
}
END_TEST

/* ======================================================================== */
/* the engine, through the stateless score                                   */
/* ======================================================================== */

static seg_loyalty_txn buy(int64_t ts, int64_t amount, const char *cat, const char *chan,
                           uint32_t order)
{
    seg_loyalty_txn t = SEG_LOYALTY_TXN_INIT;
    t.kind = SEG_LOYALTY_PURCHASE;
    t.ts = ts;
    t.amount = amount;
    t.category = cat;
    t.channel = chan;
    t.order = order;
    return t;
}

static seg_loyalty_txn ret(int64_t ts, int64_t amount, uint32_t order)
{
    seg_loyalty_txn t = SEG_LOYALTY_TXN_INIT;
    t.kind = SEG_LOYALTY_REFUND;
    t.ts = ts;
    t.amount = amount;
    t.order = order;
    return t;
}

static seg_loyalty_txn redeem(int64_t ts, int64_t points)
{
    seg_loyalty_txn t = SEG_LOYALTY_TXN_INIT;
    t.kind = SEG_LOYALTY_REDEMPTION;
    t.ts = ts;
    t.points = points;
    return t;
}

static seg_loyalty_status score(const seg_loyalty *p, const seg_loyalty_txn *h, size_t n,
                                const seg_loyalty_txn *purchase, int64_t now)
{
    seg_loyalty_status st = SEG_LOYALTY_STATUS_INIT;
    size_t bad = 0;
    int rc = seg_loyalty_score(&st, p, h, n, purchase, now, NULL, 0, &bad);
    ck_assert_msg(rc == SEG_OK, "score: %d (entry %zu)", rc, bad);
    ck_assert_uint_eq(bad, (size_t)-1);
    return st;
}

static int64_t price(const seg_loyalty *p, int64_t amount, const char *cat, const char *chan)
{
    seg_loyalty_txn t = buy(TU_D0, amount, cat, chan, 0);
    return score(p, NULL, 0, &t, TU_D0).purchase_points;
}

START_TEST(points_rounding_minimum_bonus)
{
    /* 1 point per 1.00: 12.50 is 12.5 points */
    seg_loyalty *down = compile_ok(P0 "  tier a;\n}");
    seg_loyalty *near = compile_ok(P0 "  rounding nearest;\n  tier a;\n}");
    seg_loyalty *up = compile_ok(P0 "  rounding up;\n  tier a;\n}");
    ck_assert_int_eq(price(down, 1250, NULL, NULL), 12);
    ck_assert_int_eq(price(near, 1250, NULL, NULL), 13);  /* half up */
    ck_assert_int_eq(price(near, 1249, NULL, NULL), 12);
    ck_assert_int_eq(price(up, 1201, NULL, NULL), 13);
    ck_assert_int_eq(price(up, 1200, NULL, NULL), 12);
    ck_assert_int_eq(price(down, 0, NULL, NULL), 0);
    seg_loyalty_free(down);
    seg_loyalty_free(near);
    seg_loyalty_free(up);
    /* the bundled program: 2x electronics, 1.5x books and music, +25 for
     * home and toys on the app, nothing below 5.00 */
    char *src = read_file(SEG_SRCDIR "/examples/definitions/loyalty.seg");
    seg_loyalty *p = compile_ok(src);
    free(src);
    ck_assert_uint_ne(p->cattab.mult, 0);         /* names found by their first bytes */
    ck_assert_int_eq(price(p, 499, NULL, NULL), 0);
    ck_assert_int_eq(price(p, 500, NULL, NULL), 5);
    ck_assert_int_eq(price(p, 10099, "electronics", "store"), 201);   /* 100.99 * 2 = 201.98 */
    ck_assert_int_eq(price(p, 1099, "music", NULL), 16);             /* 10.99 * 1.5 = 16.485 */
    ck_assert_int_eq(price(p, 1000, "home", "app"), 35);             /* 10 + 25 */
    ck_assert_int_eq(price(p, 1000, "home", "web"), 10);
    ck_assert_int_eq(price(p, 1000, "garden", "app"), 10);
    ck_assert_int_eq(price(p, 400, "home", "app"), 0);              /* below the minimum */
    seg_loyalty_free(p);
    /* over 64 names in the bonus filters: found by a scan, not the
     * compiled first-bytes table */
    char many[2048];
    size_t len = (size_t)snprintf(many, sizeof many, "program p {\n  earn 1 point per 1.00;\n"
                                                      "  bonus category ");
    for (int k = 0; k < 70; k++)
        len += (size_t)snprintf(many + len, sizeof many - len, "%s\"c%d\"", k ? ", " : "", k);
    snprintf(many + len, sizeof many - len, " multiplier 2;\n  tier a;\n}");
    p = compile_ok(many);
    ck_assert_uint_gt(p->ncats, 64);
    ck_assert_uint_eq(p->cattab.mult, 0);
    ck_assert_int_eq(price(p, 1000, "c0", NULL), 20);
    ck_assert_int_eq(price(p, 1000, "c69", NULL), 20);
    ck_assert_int_eq(price(p, 1000, "c70", NULL), 10);
    ck_assert_int_eq(price(p, 1000, "c", NULL), 10);
    seg_loyalty_free(p);
    /* decimal rate and a huge amount (the 128-bit path) */
    p = compile_ok("program p {\n  earn 2.5 points per 0.10;\n  tier a;\n}");
    ck_assert_int_eq(price(p, 1, NULL, NULL), 0);          /* 0.01: 2.5 points / 10 */
    ck_assert_int_eq(price(p, 4, NULL, NULL), 1);          /* 0.04: exactly 1 */
    ck_assert_int_eq(price(p, SEG_AMOUNT_MAX, NULL, NULL), SEG_AMOUNT_MAX / 4);
    seg_loyalty_free(p);
}
END_TEST

#define TIERS3 "  tier silver;\n  tier gold from 100.00 multiplier 2;\n  tier plat from 300.00 multiplier 3;\n"

START_TEST(expiry_and_fifo_redemption)
{
    /* lots expire 10 days after earning */
    seg_loyalty *p = compile_ok(P0 "  expire after 10d;\n  tier a;\n}");
    seg_loyalty_txn h[4];
    h[0] = buy(TU_DAYN(0), 10000, NULL, NULL, 1);   /* lot 1: 100 points, expires day 10 */
    h[1] = buy(TU_DAYN(5), 5000, NULL, NULL, 2);    /* lot 2: 50, expires day 15 */
    h[2] = redeem(TU_DAYN(6), 120);                 /* FIFO: 100 from lot 1, 20 from lot 2 */
    h[3] = buy(TU_DAYN(12), 1000, NULL, NULL, 3);   /* lot 3: 10, expires day 22 */
    seg_loyalty_status s = score(p, h, 4, NULL, TU_DAYN(9));
    ck_assert_int_eq(s.points, 30);
    ck_assert_int_eq(s.redeemed, 120);
    ck_assert_int_eq(s.expired, 0);
    /* day 11: lot 1 expires, but it was spent: nothing is lost */
    s = score(p, h, 4, NULL, TU_DAYN(11));
    ck_assert_int_eq(s.points, 30);
    ck_assert_int_eq(s.expired, 0);
    /* day 16: lot 2's last 30 points expire; lot 3 is left */
    s = score(p, h, 4, NULL, TU_DAYN(16));
    ck_assert_int_eq(s.points, 10);
    ck_assert_int_eq(s.expired, 30);
    ck_assert_int_eq(s.earned, 160);
    ck_assert_int_eq(s.earned - s.redeemed - s.expired - s.reversed, s.points);
    seg_loyalty_free(p);

    /* end of period: points of 2024 expire at 2025-01-01, + 1: 2026-01-01 */
    p = compile_ok(P0 "  expire end of year + 1;\n  tier a;\n}");
    ck_assert_int_eq(seg__loyalty_expiry(p, TU_D0), INT64_C(1767225600));
    seg_loyalty_free(p);
    p = compile_ok(P0 "  expire end of quarter;\n  tier a;\n}");
    ck_assert_int_eq(seg__loyalty_expiry(p, TU_D0), INT64_C(1711929600));  /* 2024-04-01 */
    seg_loyalty_free(p);
    p = compile_ok(P0 "  expire end of month;\n  tier a;\n}");
    ck_assert_int_eq(seg__loyalty_expiry(p, TU_D0 - 1), TU_D0);          /* Feb 29 -> Mar 1 */
    seg_loyalty_free(p);
}
END_TEST

START_TEST(refunds_reverse_proportionally)
{
    seg_loyalty *p = compile_ok(P0 "  tier a;\n}");
    seg_loyalty_txn h[6];
    h[0] = buy(TU_DAYN(0), 6000, NULL, NULL, 7);   /* order 7: two lines, 60 + 40 points */
    h[1] = buy(TU_DAYN(0), 4000, NULL, NULL, 7);
    h[2] = ret(TU_DAYN(1), -2500, 7);              /* 25% of the order: 25 points */
    seg_loyalty_status s = score(p, h, 3, NULL, TU_DAYN(2));
    ck_assert_int_eq(s.points, 75);
    ck_assert_int_eq(s.reversed, 25);
    h[3] = ret(TU_DAYN(2), -7500, 7);              /* the rest: 100 in all */
    s = score(p, h, 4, NULL, TU_DAYN(3));
    ck_assert_int_eq(s.points, 0);
    ck_assert_int_eq(s.reversed, 100);
    /* partial refunds that each round add up to the whole: 3 x 1/3 */
    h[0] = buy(TU_DAYN(0), 1000, NULL, NULL, 9);   /* 10 points */
    h[1] = ret(TU_DAYN(1), -333, 9);
    h[2] = ret(TU_DAYN(1), -333, 9);
    h[3] = ret(TU_DAYN(1), -334, 9);
    s = score(p, h, 4, NULL, TU_DAYN(2));
    ck_assert_int_eq(s.reversed, 10);
    ck_assert_int_eq(s.points, 0);
    /* a refund after redemption: the spent points come back from the
     * other lots; the balance never goes below 0 without permission */
    h[0] = buy(TU_DAYN(0), 10000, NULL, NULL, 1);  /* 100 */
    h[1] = buy(TU_DAYN(1), 3000, NULL, NULL, 2);   /* 30 */
    h[2] = redeem(TU_DAYN(2), 90);                 /* 90 from lot 1: 10 + 30 left */
    h[3] = ret(TU_DAYN(3), -5000, 1);              /* half of order 1: 50 points: 10 from
                                                    * lot 1, 40 clawed back: 30 from lot 2,
                                                    * 10 short -> forgiven */
    s = score(p, h, 4, NULL, TU_DAYN(4));
    ck_assert_int_eq(s.points, 0);
    ck_assert_int_eq(s.reversed, 40);
    seg_loyalty_free(p);
    p = compile_ok(P0 "  negative_balance allowed;\n  tier a;\n}");
    s = score(p, h, 4, NULL, TU_DAYN(4));
    ck_assert_int_eq(s.points, -10);                  /* owed */
    ck_assert_int_eq(s.reversed, 50);
    ck_assert_int_eq(s.earned - s.redeemed - s.expired - s.reversed, s.points);
    h[4] = buy(TU_DAYN(5), 2500, NULL, NULL, 3);      /* 25 points: 10 settle the debt */
    s = score(p, h, 5, NULL, TU_DAYN(6));
    ck_assert_int_eq(s.points, 15);
    /* a refund without an order: the base rate of the amount */
    h[5] = ret(TU_DAYN(6), -700, 0);
    s = score(p, h, 6, NULL, TU_DAYN(7));
    ck_assert_int_eq(s.points, 8);
    seg_loyalty_free(p);
    /* points of an expired lot are not taken twice */
    p = compile_ok(P0 "  expire after 5d;\n  tier a;\n}");
    h[0] = buy(TU_DAYN(0), 10000, NULL, NULL, 1);     /* 100, expires day 5 */
    h[1] = buy(TU_DAYN(3), 2000, NULL, NULL, 2);      /* 20 */
    h[2] = ret(TU_DAYN(6), -10000, 1);                /* order 1 refunded after expiry */
    s = score(p, h, 3, NULL, TU_DAYN(7));
    ck_assert_int_eq(s.points, 20);
    seg_loyalty_free(p);
}
END_TEST

START_TEST(tiers_window_upgrade_grace)
{
    /* spend over 30d; gold from 100.00 (2x), plat from 300.00 (3x); grace 10d */
    seg_loyalty *p = compile_ok(P0 "  qualify spend over 30d;\n  grace 10d;\n" TIERS3 "}");
    seg_loyalty_txn h[6];
    h[0] = buy(TU_DAYN(0), 9000, NULL, NULL, 0);     /* silver: 90 points */
    h[1] = buy(TU_DAYN(1), 2000, NULL, NULL, 0);     /* crosses 100.00: earns at silver, 20 */
    h[2] = buy(TU_DAYN(2), 1000, NULL, NULL, 0);     /* gold: 2 x 10 = 20 */
    h[3] = redeem(TU_DAYN(3), 130);                  /* spending points changes no tier */
    seg_loyalty_status s = score(p, h, 4, NULL, TU_DAYN(4));
    ck_assert_str_eq(s.tier_name, "gold");
    ck_assert_int_eq(s.earned, 130);
    ck_assert_int_eq(s.points, 0);
    ck_assert_int_eq(s.qualifying, 12000);
    ck_assert_str_eq(s.next_tier_name, "plat");
    ck_assert_int_eq(s.spend_to_next_tier, 18000);
    ck_assert_int_eq(s.downgrade_at, -1);
    /* purchases leave the window 30 days after: day 0's at day 30 + 1s;
     * the measure falls to 30.00 (< 100.00) at day 31 + 1s... */
    s = score(p, h, 4, NULL, TU_DAYN(31) + 2);
    ck_assert_int_eq(s.qualifying, 1000);
    ck_assert_str_eq(s.tier_name, "gold");          /* in grace */
    ck_assert_int_eq(s.downgrade_at, TU_DAYN(30) + 1 + 10 * D);
    s = score(p, h, 4, NULL, TU_DAYN(40));
    ck_assert_str_eq(s.tier_name, "gold");
    s = score(p, h, 4, NULL, TU_DAYN(40) + 2);
    ck_assert_str_eq(s.tier_name, "silver");        /* grace over */
    ck_assert_int_eq(s.downgrade_at, -1);
    /* requalifying during grace keeps the tier */
    h[4] = buy(TU_DAYN(35), 15000, NULL, NULL, 0);
    s = score(p, h, 5, NULL, TU_DAYN(45));
    ck_assert_str_eq(s.tier_name, "gold");
    ck_assert_int_eq(s.downgrade_at, -1);
    /* refunds count against the window */
    h[5] = ret(TU_DAYN(36), -15000, 0);
    s = score(p, h, 6, NULL, TU_DAYN(37));
    ck_assert_int_eq(s.qualifying, 0);
    ck_assert_str_eq(s.tier_name, "gold");          /* in grace since day 36 */
    ck_assert_int_eq(s.downgrade_at, TU_DAYN(36) + 1 + 10 * D);
    seg_loyalty_free(p);

    /* points qualify: spend to next tier from the points missing */
    p = compile_ok(P0 "  qualify points over 365d;\n  tier silver;\n  tier gold from 100 "
                      "multiplier 2;\n}");
    h[0] = buy(TU_DAYN(0), 4050, NULL, NULL, 0);     /* 40 points */
    s = score(p, h, 1, NULL, TU_DAYN(1));
    ck_assert_int_eq(s.to_next_tier, 60);
    ck_assert_int_eq(s.spend_to_next_tier, 6000);    /* 60.00 earns 60 points */
    seg_loyalty_free(p);
    /* orders qualify: no spend figure */
    p = compile_ok(P0 "  qualify orders over 365d;\n  tier silver;\n  tier gold from 3;\n}");
    h[0] = buy(TU_DAYN(0), 100, NULL, NULL, 5);
    h[1] = buy(TU_DAYN(0), 100, NULL, NULL, 5);      /* the same order */
    h[2] = buy(TU_DAYN(1), 100, NULL, NULL, 0);
    s = score(p, h, 3, NULL, TU_DAYN(2));
    ck_assert_int_eq(s.qualifying, 2);
    ck_assert_int_eq(s.to_next_tier, 1);
    ck_assert_int_eq(s.spend_to_next_tier, -1);
    seg_loyalty_free(p);
}
END_TEST

START_TEST(score_errors_and_work)
{
    seg_loyalty *p = compile_ok(P0 "  tier a;\n}");
    seg_loyalty_txn h[3];
    h[0] = buy(TU_DAYN(2), 100, NULL, NULL, 0);
    h[1] = buy(TU_DAYN(1), 100, NULL, NULL, 0);
    seg_loyalty_status st = SEG_LOYALTY_STATUS_INIT;
    size_t bad = 0;
    ck_assert_int_eq(seg_loyalty_score(&st, p, h, 2, NULL, TU_DAYN(3), NULL, 0, &bad), SEG_EINVAL);
    ck_assert_uint_eq(bad, 1);                      /* out of time order */
    h[1] = ret(TU_DAYN(3), 100, 0);
    ck_assert_int_eq(seg_loyalty_score(&st, p, h, 2, NULL, TU_DAYN(3), NULL, 0, &bad), SEG_EINVAL);
    ck_assert_uint_eq(bad, 1);                      /* a refund with a positive amount */
    h[1] = redeem(TU_DAYN(3), 0);
    ck_assert_int_eq(seg_loyalty_score(&st, p, h, 2, NULL, TU_DAYN(3), NULL, 0, &bad), SEG_EINVAL);
    h[1] = buy(TU_DAYN(3), SEG_AMOUNT_MAX + 1, NULL, NULL, 0);
    ck_assert_int_eq(seg_loyalty_score(&st, p, h, 2, NULL, TU_DAYN(3), NULL, 0, &bad), SEG_ERANGE);
    h[1].kind = 99;
    ck_assert_int_eq(seg_loyalty_score(&st, p, h, 2, NULL, TU_DAYN(3), NULL, 0, &bad), SEG_EINVAL);
    ck_assert_int_eq(st.points, 0);
    ck_assert_ptr_null(st.tier_name);
    st.struct_size = 8;
    ck_assert_int_eq(seg_loyalty_score(&st, p, h, 1, NULL, TU_DAYN(3), NULL, 0, NULL), SEG_EVERSION);
    /* more than SEG_LOYALTY_STACK_TXNS entries need a work buffer */
    size_t n = SEG_LOYALTY_STACK_TXNS + 10;
    seg_loyalty_txn *big = calloc(n, sizeof *big);
    for (size_t k = 0; k < n; k++)
        big[k] = buy(TU_DAYN(0) + (int64_t)k, 100, NULL, NULL, 0);
    st = (seg_loyalty_status)SEG_LOYALTY_STATUS_INIT;
    ck_assert_int_eq(seg_loyalty_score(&st, p, big, n, NULL, TU_DAYN(1), NULL, 0, NULL), SEG_ELIMIT);
    size_t ws = seg_loyalty_work_size(n);
    ck_assert_uint_gt(ws, 0);
    ck_assert_uint_eq(seg_loyalty_work_size(3), 0);
    void *work = malloc(ws);
    ck_assert_int_eq(seg_loyalty_score(&st, p, big, n, NULL, TU_DAYN(1), work, ws, NULL), SEG_OK);
    ck_assert_int_eq(st.points, (int64_t)n);
    free(work);
    free(big);
    seg_loyalty_free(p);
}
END_TEST

START_TEST(score_allocates_nothing)
{
    tu_alloc ta;
    memset(&ta, 0, sizeof ta);
    ta.fail_after = -1;
    seg_allocator al = tu_allocator(&ta);
    seg_loyalty_options o = SEG_LOYALTY_OPTIONS_INIT;
    o.allocator = &al;
    char *src = read_file(SEG_SRCDIR "/examples/definitions/loyalty.seg");
    seg_loyalty *p = NULL;
    ck_assert_int_eq(seg_loyalty_compile(&p, src, strlen(src), &o), SEG_OK);
    free(src);
    ck_assert_int_gt(ta.live_blocks, 0);              /* the program lives in that allocator */
    unsigned long before = ta.mallocs + ta.reallocs;
    seg_loyalty_txn h[100];
    for (int k = 0; k < 100; k++)
        h[k] = buy(TU_DAYN(k), 1000 + 37 * k, k % 3 ? "books" : "home", k % 2 ? "app" : "web",
                   (uint32_t)k + 1);
    seg_loyalty_txn t = buy(TU_DAYN(100), 5000, "electronics", "web", 0);
    seg_loyalty_status st = SEG_LOYALTY_STATUS_INIT;
    for (int rep = 0; rep < 10; rep++)
        ck_assert_int_eq(seg_loyalty_score(&st, p, h, 100, &t, TU_DAYN(100), NULL, 0, NULL),
                         SEG_OK);
    ck_assert_uint_eq(ta.mallocs + ta.reallocs, before);
    ck_assert_int_gt(st.points, 0);
    /* the history spent 100 x 10.00 + 37 x (0 + ... + 99) = 2831.50 in the
     * year: gold, so 50.00 x 2 (electronics) x 1.25 */
    ck_assert_str_eq(st.tier_name, "gold");
    ck_assert_int_eq(st.purchase_points, 125);
    seg_loyalty_free(p);
    ck_assert_int_eq(ta.live_blocks, 0);
    /* and a compile that runs out of memory fails cleanly */
    src = read_file(SEG_SRCDIR "/examples/definitions/loyalty.seg");
    for (long k = 0; k < 40; k++) {
        memset(&ta, 0, sizeof ta);
        ta.fail_after = k;
        p = NULL;
        int rc = seg_loyalty_compile(&p, src, strlen(src), &o);
        ck_assert(rc == SEG_OK || rc == SEG_ENOMEM);
        seg_loyalty_free(p);
        ck_assert_int_eq(ta.live_blocks, 0);
    }
    free(src);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* A straightforward reference of the stateless score, written from
 * doc/loyalty.md without the engine's shortcuts (no window pointers, no
 * lot head, no precomputed rates): the tier at a time is simulated from
 * scratch over every change of the measure, the measure at a time is
 * summed over the whole history, points are computed from the rules as
 * written.  Random programs and histories must give the same figures as
 * seg_loyalty_score(). */

typedef struct ref_bonus {
    const char *cats[2], *chans[2];  /* NULL-terminated lists; none: any */
    int64_t mult;                    /* x 10^4 */
    int64_t flat;
} ref_bonus;

typedef struct ref_prog {
    int64_t pts4;            /* points earned x 10^4 ... */
    int64_t per;             /* ... per this many minor units */
    int rounding;            /* 0 down, 1 nearest, 2 up */
    int64_t min_spend;
    int expire;              /* 0 never, 1 after, 2 month, 3 quarter, 4 year */
    int64_t expire_after;
    int expire_plus;
    int qualify;             /* 0 spend, 1 points, 2 orders */
    int64_t window, grace;
    bool negative;
    int nbonus;
    ref_bonus bonus[3];
    int ntiers;
    int64_t from[4], tmult[4];
} ref_prog;

static const char *const ref_rounding[] = { "down", "nearest", "up" };
static const char *const ref_period[] = { "", "", "month", "quarter", "year" };
static const char *const ref_qualify[] = { "spend", "points", "orders" };

static void ref_text(const ref_prog *g, char *s, size_t cap)
{
    size_t n = 0;
#define REF_PUT(...) (n += (size_t)snprintf(s + n, cap - n, __VA_ARGS__))
    REF_PUT("program r {\n  earn %lld.%04lld points per %lld.%02lld;\n  rounding %s;\n",
            (long long)(g->pts4 / 10000), (long long)(g->pts4 % 10000),
            (long long)(g->per / 100), (long long)(g->per % 100), ref_rounding[g->rounding]);
    if (g->min_spend)
        REF_PUT("  minimum_spend %lld.%02lld;\n", (long long)(g->min_spend / 100),
                (long long)(g->min_spend % 100));
    if (g->expire == 1)
        REF_PUT("  expire after %llds;\n", (long long)g->expire_after);
    else if (g->expire >= 2)
        REF_PUT("  expire end of %s + %d;\n", ref_period[g->expire], g->expire_plus);
    REF_PUT("  qualify %s over %llds;\n", ref_qualify[g->qualify], (long long)g->window);
    if (g->grace)
        REF_PUT("  grace %llds;\n", (long long)g->grace);
    REF_PUT("  negative_balance %s;\n", g->negative ? "allowed" : "forbidden");
    for (int b = 0; b < g->nbonus; b++) {
        const ref_bonus *x = &g->bonus[b];
        REF_PUT("  bonus");
        for (int k = 0; k < 2 && x->cats[k]; k++)
            REF_PUT("%s \"%s\"", k ? "," : " category", x->cats[k]);
        for (int k = 0; k < 2 && x->chans[k]; k++)
            REF_PUT("%s \"%s\"", k ? "," : " channel", x->chans[k]);
        if (x->mult != 10000)
            REF_PUT(" multiplier %lld.%04lld", (long long)(x->mult / 10000),
                    (long long)(x->mult % 10000));
        if (x->flat || x->mult == 10000)
            REF_PUT(" points %lld", (long long)x->flat);
        REF_PUT(";\n");
    }
    for (int t = 0; t < g->ntiers; t++) {
        REF_PUT("  tier t%d", t);
        if (t)
            REF_PUT(" from %lld%s", g->qualify == 0 ? (long long)(g->from[t] / 100)
                                                    : (long long)g->from[t],
                    g->qualify == 0 ? "" : "");
        if (t && g->qualify == 0)
            REF_PUT(".%02lld", (long long)(g->from[t] % 100));
        REF_PUT(" multiplier %lld.%04lld;\n", (long long)(g->tmult[t] / 10000),
                (long long)(g->tmult[t] % 10000));
    }
    REF_PUT("}\n");
#undef REF_PUT
}

static bool ref_in(const char *const *list, const char *s)
{
    if (!list[0])
        return true;                  /* no filter */
    if (!s || !*s)
        return false;
    for (int k = 0; k < 2 && list[k]; k++)
        if (strcmp(list[k], s) == 0)
            return true;
    return false;
}

/* the bonus rule (index, -1: none) of a purchase */
static int ref_bonus_of(const ref_prog *g, const char *cat, const char *chan)
{
    for (int b = 0; b < g->nbonus; b++)
        if (ref_in(g->bonus[b].cats, cat) && ref_in(g->bonus[b].chans, chan))
            return b;
    return -1;
}

/* amount x the rate at tier t with bonus b, rounded as the program says */
static int64_t ref_rate(const ref_prog *g, int64_t amount, int t, int b)
{
    unsigned __int128 num = (unsigned __int128)(uint64_t)amount * (uint64_t)g->pts4 *
                            (uint64_t)g->tmult[t] * (uint64_t)(b >= 0 ? g->bonus[b].mult : 10000);
    unsigned __int128 den = (unsigned __int128)(uint64_t)g->per * 1000000000000u;
    unsigned __int128 q = num / den, r = num % den;
    if (g->rounding == 1 && 2 * r >= den)
        q++;
    else if (g->rounding == 2 && r)
        q++;
    return (int64_t)q;
}

static int64_t ref_points(const ref_prog *g, int64_t amount, int t, int b)
{
    if (amount <= 0 || amount < g->min_spend)
        return 0;
    return ref_rate(g, amount, t, b) + (b >= 0 ? g->bonus[b].flat : 0);
}

typedef struct ref_ent {
    int64_t pts;     /* purchase: earned; refund: points to reverse */
    int64_t rem;     /* purchase: left in the lot */
    int64_t delta;   /* change of the qualifying measure */
    int64_t exp;
} ref_ent;

typedef struct ref_run {
    const ref_prog *g;
    const seg_loyalty *p;        /* (for the period expiry dates only) */
    const seg_loyalty_txn *h;
    ref_ent *e;
    size_t n;                    /* entries processed */
    int64_t debt;
} ref_run;

static int ref_earned(const ref_prog *g, int64_t m)
{
    int t = 0;
    for (int k = 1; k < g->ntiers; k++)
        if (m >= g->from[k])
            t = k;
    return t;
}

/* the measure at time c: the entries with c - window <= ts < c */
static int64_t ref_measure(const ref_run *r, int64_t c)
{
    int64_t m = 0;
    for (size_t k = 0; k < r->n; k++)
        if (r->h[k].ts < c && r->h[k].ts >= c - r->g->window)
            m += r->e[k].delta;
    return m;
}

/* the tier held at T, simulated from the start; *below_out: grace start */
static int ref_tier(const ref_run *r, int64_t T, int64_t *below_out, int64_t *m_out)
{
    const ref_prog *g = r->g;
    int h = 0;
    int64_t below = -1, last = INT64_MIN;
    for (;;) {
        /* the next change point after `last`, at most T */
        int64_t c = INT64_MAX;
        for (size_t k = 0; k < r->n; k++) {
            int64_t a = r->h[k].ts + 1, b = r->h[k].ts + g->window + 1;
            if (a > last && a <= T && a < c)
                c = a;
            if (b > last && b <= T && b < c)
                c = b;
        }
        if (c == INT64_MAX)
            break;
        if (below >= 0 && below + g->grace < c) {
            h = ref_earned(g, ref_measure(r, below + g->grace));
            below = -1;
        }
        int et = ref_earned(g, ref_measure(r, c));
        if (et >= h) {
            h = et;
            below = -1;
        } else if (below < 0) {
            below = c;
        }
        last = c;
    }
    if (below >= 0 && below + g->grace <= T) {
        h = ref_earned(g, ref_measure(r, T));
        below = -1;
    }
    if (below_out)
        *below_out = below;
    if (m_out)
        *m_out = ref_measure(r, T);
    return h;
}

/* take up to `want` points from the lots alive at t, oldest first */
static int64_t ref_draw(ref_run *r, int64_t want, int64_t t)
{
    int64_t got = 0;
    for (size_t k = 0; k < r->n && got < want; k++) {
        ref_ent *x = &r->e[k];
        if (r->h[k].kind != SEG_LOYALTY_PURCHASE || x->rem <= 0 || x->exp <= t)
            continue;
        int64_t take = x->rem < want - got ? x->rem : want - got;
        x->rem -= take;
        got += take;
    }
    return got;
}

static int64_t ref_claw(ref_run *r, int64_t want, int64_t t)
{
    int64_t got = ref_draw(r, want, t);
    if (got < want && r->g->negative) {
        r->debt += want - got;
        got = want;
    }
    return got;
}

static int64_t ref_expiry(const ref_run *r, int64_t ts)
{
    if (r->g->expire == 0)
        return INT64_MAX;
    if (r->g->expire == 1)
        return ts + r->g->expire_after;
    return seg__loyalty_expiry(r->p, ts);    /* (tested on its own above) */
}

/* smallest spend, at least max(1, minimum spend), earning `need` points at
 * tier t without a bonus: a binary search over the amounts */
static int64_t ref_spend_for(const ref_prog *g, int t, int64_t need)
{
    int64_t lo = g->min_spend > 1 ? g->min_spend : 1, hi = SEG_AMOUNT_MAX;
    if (ref_points(g, hi, t, -1) < need)
        return -1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (ref_points(g, mid, t, -1) >= need)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static seg_loyalty_status ref_score(const ref_prog *g, const seg_loyalty *p,
                                    const seg_loyalty_txn *h, size_t n,
                                    const seg_loyalty_txn *purchase, int64_t now)
{
    seg_loyalty_status st = SEG_LOYALTY_STATUS_INIT;
    ref_ent *e = calloc(n + 1, sizeof *e);
    ref_run r = { g, p, h, e, 0, 0 };
    int64_t earned = 0, redeemed = 0, reversed = 0;
    bool counted_any = false;
    uint32_t counted_last = 0;
    for (size_t i = 0; i < n && h[i].ts < now; i++) {
        const seg_loyalty_txn *x = &h[i];
        int64_t t = x->ts;
        ref_ent *y = &e[i];
        r.n = i;                                  /* the entries before it */
        if (x->kind == SEG_LOYALTY_PURCHASE) {
            int tier = ref_tier(&r, t, NULL, NULL);
            y->pts = ref_points(g, x->amount, tier, ref_bonus_of(g, x->category, x->channel));
            y->rem = y->pts;
            y->exp = ref_expiry(&r, t);
            earned += y->pts;
            int64_t s = r.debt < y->rem ? r.debt : y->rem;
            y->rem -= s;
            r.debt -= s;
            if (g->qualify == 0) {
                y->delta = x->amount;
            } else if (g->qualify == 1) {
                y->delta = y->pts;
            } else {
                /* a new order: no order number, or not the last one counted */
                y->delta = x->amount > 0 &&
                           (x->order == 0 || !counted_any || x->order != counted_last);
                if (y->delta) {
                    counted_any = true;
                    counted_last = x->order;
                }
            }
        } else if (x->kind == SEG_LOYALTY_REFUND) {
            int64_t give = -x->amount, ordpts = 0, ordamt = 0, bamt = 0, bpts = 0, taken = 0;
            bool found = false;
            for (size_t k = 0; x->order && k < i; k++) {
                if (h[k].order != x->order)
                    continue;
                if (h[k].kind == SEG_LOYALTY_PURCHASE) {
                    found = true;
                    ordpts += e[k].pts;
                    ordamt += h[k].amount;
                } else if (h[k].kind == SEG_LOYALTY_REFUND) {
                    bamt += -h[k].amount;
                    bpts += e[k].pts;
                }
            }
            if (found) {
                y->pts = 0;
                if (ordamt > 0) {
                    int64_t after = bamt + give < ordamt ? bamt + give : ordamt;
                    unsigned __int128 num = (unsigned __int128)(uint64_t)ordpts * (uint64_t)after;
                    int64_t q = (int64_t)(num / (uint64_t)ordamt);
                    uint64_t rm = (uint64_t)(num % (uint64_t)ordamt);
                    if (g->rounding == 1 && 2 * (unsigned __int128)rm >= (uint64_t)ordamt)
                        q++;
                    else if (g->rounding == 2 && rm)
                        q++;
                    y->pts = q - bpts > 0 ? q - bpts : 0;
                }
                /* the order's own lots: alive ones, then expired ones */
                int64_t left = y->pts;
                for (int pass = 0; pass < 2; pass++)
                    for (size_t k = 0; k < i && left; k++) {
                        if (h[k].kind != SEG_LOYALTY_PURCHASE || h[k].order != x->order ||
                            e[k].rem <= 0 || (e[k].exp > t) != (pass == 0))
                            continue;
                        int64_t take = e[k].rem < left ? e[k].rem : left;
                        e[k].rem -= take;
                        left -= take;
                        taken += take;
                    }
                if (left)
                    taken += ref_claw(&r, left, t);
            } else {
                y->pts = ref_rate(g, give, ref_tier(&r, t, NULL, NULL), -1);
                taken = ref_claw(&r, y->pts, t);
            }
            reversed += taken;
            y->delta = g->qualify == 0 ? x->amount : g->qualify == 1 ? -y->pts : 0;
        } else {
            redeemed += ref_draw(&r, x->points, t);
        }
        r.n = i + 1;
    }
    int64_t below, m;
    int tier = ref_tier(&r, now, &below, &m);
    int64_t live = 0, dead = 0;
    for (size_t k = 0; k < r.n; k++)
        if (h[k].kind == SEG_LOYALTY_PURCHASE) {
            if (e[k].exp > now)
                live += e[k].rem;
            else
                dead += e[k].rem;
        }
    st.tier = tier;
    st.tier_name = seg_loyalty_tier_name(p, tier);
    st.points = live - r.debt;
    st.earned = earned;
    st.redeemed = redeemed;
    st.expired = dead;
    st.reversed = reversed;
    st.qualifying = m;
    st.downgrade_at = below >= 0 ? below + g->grace : -1;
    if (tier + 1 < g->ntiers) {
        st.next_tier = tier + 1;
        st.next_tier_name = seg_loyalty_tier_name(p, tier + 1);
        int64_t need = g->from[tier + 1] - (m > 0 ? m : 0);
        st.to_next_tier = need < 1 ? 1 : need;
        st.spend_to_next_tier = g->qualify == 0   ? st.to_next_tier
                                : g->qualify == 1 ? ref_spend_for(g, tier, st.to_next_tier)
                                                  : -1;
    } else {
        st.next_tier = -1;
        st.to_next_tier = -1;
        st.spend_to_next_tier = -1;
    }
    if (purchase)
        st.purchase_points = ref_points(g, purchase->amount, tier,
                                        ref_bonus_of(g, purchase->category, purchase->channel));
    free(e);
    return st;
}

/* names sharing their first bytes ("book", "books"; "toys", "toysrus")
 * exercise the compiled name lookup past its first 4 bytes */
#define REF_NCATS 10
static const char *const ref_cats[REF_NCATS] = { "books", "toys", "music", "garden", "food", "",
                                                 "book", "toysrus", "mus", "boo" };
static const char *const ref_chans[] = { "app", "web", "store", "" };

/* a random program of the shapes ref_prog describes */
static void ref_random_prog(ref_prog *g, uint64_t *rnd, bool coarse)
{
    static const int64_t pts4[] = { 10000, 20000, 25000, 5000, 12345, 30000 };
    static const int64_t pers[] = { 100, 1000, 500, 300, 250 };
    static const int64_t mults[] = { 10000, 12500, 15000, 20000, 30000, 11111 };
    memset(g, 0, sizeof *g);
    g->pts4 = pts4[tu_rand(rnd) % 6];
    g->per = pers[tu_rand(rnd) % 5];
    g->rounding = (int)(tu_rand(rnd) % 3);
    g->min_spend = tu_rand(rnd) % 2 ? 0 : (int64_t)(tu_rand(rnd) % 1000);
    g->expire = (int)(tu_rand(rnd) % 5);
    g->expire_after = (int64_t)(1 + tu_rand(rnd) % (90 * D));
    g->expire_plus = (int)(tu_rand(rnd) % 3);
    g->qualify = (int)(tu_rand(rnd) % 3);
    g->window = (int64_t)(1 + tu_rand(rnd) % (60 * D));
    g->grace = tu_rand(rnd) % 3 ? (int64_t)(tu_rand(rnd) % (30 * D)) : 0;
    if (coarse) {
        /* whole days: grace ends and window edges meet change points */
        g->expire_after = (g->expire_after / D + 1) * D;
        g->window = (g->window / D + 1) * D;
        g->grace = g->grace / D * D;
    }
    g->negative = tu_rand(rnd) % 2;
    /* bonus rules on disjoint categories: no two can overlap */
    g->nbonus = (int)(tu_rand(rnd) % 4);
    for (int b = 0; b < g->nbonus; b++) {
        ref_bonus *x = &g->bonus[b];
        x->cats[0] = ref_cats[b];
        if (b == 1)
            x->cats[1] = ref_cats[6];      /* "toys", "book" */
        if (b == 2)
            x->cats[1] = ref_cats[3];
        if (tu_rand(rnd) % 2)
            x->chans[0] = ref_chans[tu_rand(rnd) % 3];
        x->mult = mults[tu_rand(rnd) % 6];
        x->flat = tu_rand(rnd) % 2 ? 0 : (int64_t)(tu_rand(rnd) % 50);
    }
    g->ntiers = 1 + (int)(tu_rand(rnd) % 4);
    int64_t step = g->qualify == 0 ? 5000 : g->qualify == 1 ? 60 : 3;
    for (int t = 0; t < g->ntiers; t++) {
        g->from[t] = t ? g->from[t - 1] + 1 + (int64_t)(tu_rand(rnd) % (uint64_t)step) : 0;
        g->tmult[t] = mults[tu_rand(rnd) % 6];
    }
}

/* copies of the names at other addresses: matched by content */
static char ref_copies[REF_NCATS][16];

static const char *ref_name(const char *const *names, size_t n, uint64_t *rnd, bool copy)
{
    size_t k = tu_rand(rnd) % (n + 1);
    if (k == n)
        return NULL;
    if (copy && names == ref_cats) {
        snprintf(ref_copies[k], sizeof ref_copies[k], "%s", names[k]);
        return ref_copies[k];
    }
    return names[k];
}

START_TEST(score_matches_reference)
{
    uint64_t rnd = 0x5eed0000u + (uint64_t)_i;
    size_t cap = 300;
    seg_loyalty_txn *h = calloc(cap, sizeof *h);
    void *work = malloc(seg_loyalty_work_size(cap));
    char text[2048];
    for (int prog_no = 0; prog_no < 40; prog_no++) {
        /* coarse: times in whole days and amounts in whole units, so
         * that ties (grace ending at a change, exact halves) happen */
        bool coarse = prog_no % 2;
        int64_t tq = coarse ? D : 1, aq = coarse ? 100 : 1;
        ref_prog g;
        ref_random_prog(&g, &rnd, coarse);
        ref_text(&g, text, sizeof text);
        seg_loyalty *p = compile_ok(text);
        for (int hist_no = 0; hist_no < 12; hist_no++) {
            size_t n = tu_rand(&rnd) % 8 == 0 ? 0 : tu_rand(&rnd) % 60;
            if (prog_no == 0 && hist_no == 0)
                n = cap;                     /* one long history: the work buffer */
            /* gaps from 0 (several entries at one time) to over the window */
            int64_t t = TU_D0 + (int64_t)(tu_rand(&rnd) % 400) * D, spread = g.window / 4 + 1;
            uint32_t norders = 0;
            static int64_t line_amt[301];   /* [order]: the amount of its last line */
            for (size_t k = 0; k < n; k++) {
                uint64_t r = tu_rand(&rnd) % 100;
                if (r < 25)
                    t += 0;
                else if (r < 90)
                    t += (int64_t)(tu_rand(&rnd) % (uint64_t)spread) / tq * tq;
                else
                    t += (int64_t)(tu_rand(&rnd) % (uint64_t)(2 * g.window + 1)) / tq * tq;
                uint64_t kind = tu_rand(&rnd) % 100;
                if (k > 0 && kind < 18) {
                    /* a refund: of a known order, of none, of an unknown one */
                    uint64_t w = tu_rand(&rnd) % 10;
                    uint32_t o = w < 7 && norders ? 1 + (uint32_t)(tu_rand(&rnd) % norders)
                                 : w < 9 ? 0 : 1000 + (uint32_t)(tu_rand(&rnd) % 5);
                    int64_t amt = 1 + (int64_t)(tu_rand(&rnd) % 15000) / aq * aq;
                    if (o && o <= norders && line_amt[o] > 1 && tu_rand(&rnd) % 3 == 0)
                        amt = line_amt[o] / 2;       /* half an order: exact halves */
                    h[k] = ret(t, -amt, o);
                } else if (k > 0 && kind < 32) {
                    h[k] = redeem(t, 1 + (int64_t)(tu_rand(&rnd) % 400));
                    if (tu_rand(&rnd) % 4 == 0)
                        h[k].order = 1 + (uint32_t)(tu_rand(&rnd) % (norders + 1));
                } else {
                    /* a line of a new order, of the previous one, or of none */
                    uint64_t w = tu_rand(&rnd) % 10;
                    uint32_t o = w < 6 ? ++norders : w < 8 && norders ? norders : 0;
                    int64_t amt = tu_rand(&rnd) % 10 == 0 ? (int64_t)(tu_rand(&rnd) % 3)
                                                          : (int64_t)(tu_rand(&rnd) % 30000) / aq * aq;
                    h[k] = buy(t, amt, ref_name(ref_cats, REF_NCATS, &rnd, tu_rand(&rnd) % 2),
                               ref_name(ref_chans, 4, &rnd, false), o);
                    line_amt[o] = amt;
                }
            }
            seg_loyalty_txn basket = buy(0, (int64_t)(tu_rand(&rnd) % 20000),
                                         ref_name(ref_cats, REF_NCATS, &rnd, true),
                                         ref_name(ref_chans, 4, &rnd, false), 0);
            for (int w = 0; w < 4; w++) {
                /* now: before, inside or after the history, or far after */
                int64_t last = n ? h[n - 1].ts : TU_D0;
                int64_t now = w == 0   ? last + 1
                              : w == 1 ? (n ? h[tu_rand(&rnd) % n].ts : TU_D0) + (int64_t)(tu_rand(&rnd) % 3)
                              : w == 2 ? last + 1 + (int64_t)(tu_rand(&rnd) % (uint64_t)(2 * g.window + g.grace + 1)) / tq * tq
                                       : last + (int64_t)(tu_rand(&rnd) % (400 * D));
                basket.ts = now;
                seg_loyalty_txn *bp = w == 3 ? NULL : &basket;
                seg_loyalty_status a = SEG_LOYALTY_STATUS_INIT;
                size_t bad = 0;
                ck_assert_int_eq(seg_loyalty_score(&a, p, h, n, bp, now, work,
                                                   seg_loyalty_work_size(cap), &bad), SEG_OK);
                seg_loyalty_status b = ref_score(&g, p, h, n, bp, now);
                ck_assert_msg(a.tier == b.tier && a.points == b.points && a.earned == b.earned &&
                                  a.redeemed == b.redeemed && a.expired == b.expired &&
                                  a.reversed == b.reversed && a.qualifying == b.qualifying &&
                                  a.downgrade_at == b.downgrade_at &&
                                  a.next_tier == b.next_tier &&
                                  a.to_next_tier == b.to_next_tier &&
                                  a.spend_to_next_tier == b.spend_to_next_tier &&
                                  a.purchase_points == b.purchase_points &&
                                  a.tier_name == b.tier_name &&
                                  a.next_tier_name == b.next_tier_name,
                              "program %d, history %d (%zu entries), now %d:\n%s"
                              "score:     tier %d points %lld earned %lld redeemed %lld expired %lld "
                              "reversed %lld measure %lld downgrade %lld next %lld/%lld pp %lld\n"
                              "reference: tier %d points %lld earned %lld redeemed %lld expired %lld "
                              "reversed %lld measure %lld downgrade %lld next %lld/%lld pp %lld",
                              prog_no, hist_no, n, w, text, a.tier, (long long)a.points,
                              (long long)a.earned, (long long)a.redeemed, (long long)a.expired,
                              (long long)a.reversed, (long long)a.qualifying,
                              (long long)a.downgrade_at, (long long)a.to_next_tier,
                              (long long)a.spend_to_next_tier, (long long)a.purchase_points,
                              b.tier, (long long)b.points, (long long)b.earned,
                              (long long)b.redeemed, (long long)b.expired, (long long)b.reversed,
                              (long long)b.qualifying, (long long)b.downgrade_at,
                              (long long)b.to_next_tier, (long long)b.spend_to_next_tier,
                              (long long)b.purchase_points);
            }
        }
        seg_loyalty_free(p);
    }
    free(work);
    free(h);
}
END_TEST

/* ======================================================================== */
/* the ledger                                                                */
/* ======================================================================== */

static seg_db *db;
static seg_loyalty *prog;
static seg_loyalty_ledger *led;

static void setup(void)
{
    ck_assert_int_eq(seg_db_open(&db, ":memory:", NULL), SEG_OK);
    prog = compile_ok(P0 "  qualify spend over 30d;\n  grace 10d;\n  expire after 60d;\n"
                         "  negative_balance allowed;\n"
                         "  bonus category \"books\" multiplier 1.5;\n" TIERS3 "}");
    TU_OK(db, seg_loyalty_attach(&led, db, prog));
}

static void teardown(void)
{
    seg_loyalty_ledger_free(led);
    led = NULL;
    seg_loyalty_free(prog);
    prog = NULL;
    seg_db_close(db);
    db = NULL;
}

typedef struct hist {
    seg_loyalty_txn t[64];
    char order[64][16];
    bool refunded[64];
    size_t n;
} hist;

/* A random history of one customer, ingested in time order, and the same as
 * an array: the ledger and the stateless score must agree. */
START_TEST(ledger_matches_score)
{
    uint64_t rnd = 12345 + (uint64_t)_i;
    static hist hs[8];
    char cust[8][8];
    seg_event evs[8 * 64];
    size_t ne = 0;
    for (int c = 0; c < 8; c++) {
        snprintf(cust[c], sizeof cust[c], "c%d", c);
        hist *h = &hs[c];
        memset(h, 0, sizeof *h);
        int64_t t = TU_D0 + (int64_t)(tu_rand(&rnd) % 1000);
        for (int k = 0; k < 40; k++) {
            t += (int64_t)(tu_rand(&rnd) % (6 * D));
            seg_event e = SEG_EVENT_INIT;
            e.customer_id = cust[c];
            e.ts = t;
            if (k > 0 && tu_rand(&rnd) % 5 == 0) {
                /* refund part of an earlier order not refunded yet */
                size_t j = tu_rand(&rnd) % h->n;
                if (h->t[j].kind != SEG_LOYALTY_PURCHASE || h->refunded[j])
                    continue;
                int64_t amt = h->t[j].amount / 2 + 1;
                h->t[h->n] = ret(t, -amt, h->t[j].order);
                e.kind = SEG_EVENT_REFUND;
                e.amount = -amt;
                e.refund_of = h->order[j];
                h->refunded[j] = true;  /* once */
            } else {
                int64_t amt = 500 + (int64_t)(tu_rand(&rnd) % 20000);
                const char *cat = tu_rand(&rnd) % 3 ? "books" : "toys";
                snprintf(h->order[h->n], 16, "c%d-%d", c, k);
                h->t[h->n] = buy(t, amt, cat, NULL, (uint32_t)h->n + 1);
                e.kind = SEG_EVENT_PURCHASE;
                e.amount = amt;
                e.order_id = h->order[h->n];
                e.category = cat;
            }
            evs[ne++] = e;
            h->n++;
        }
    }
    /* one batch per customer */
    size_t at = 0;
    for (int c = 0; c < 8; c++) {
        size_t cnt = hs[c].n;
        TU_OK(db, seg_event_ingest_batch(db, evs + at, cnt, NULL, NULL));
        at += cnt;
    }
    for (int c = 0; c < 8; c++) {
        hist *h = &hs[c];
        int64_t nows[3] = { h->t[h->n / 2].ts, h->t[h->n - 1].ts + 1, h->t[h->n - 1].ts + 40 * D };
        for (int w = 0; w < 3; w++) {
            seg_loyalty_status a = SEG_LOYALTY_STATUS_INIT, b = score(prog, h->t, h->n, NULL, nows[w]);
            TU_OK(db, seg_loyalty_status_get(&a, led, cust[c], nows[w]));
            ck_assert_int_eq(a.tier, b.tier);
            ck_assert_int_eq(a.points, b.points);
            ck_assert_int_eq(a.earned, b.earned);
            ck_assert_int_eq(a.reversed, b.reversed);
            ck_assert_int_eq(a.expired, b.expired);
            ck_assert_int_eq(a.qualifying, b.qualifying);
            ck_assert_int_eq(a.spend_to_next_tier, b.spend_to_next_tier);
            ck_assert_int_eq(a.downgrade_at, b.downgrade_at);
        }
    }
}
END_TEST

typedef struct ent_list {
    seg_loyalty_entry e[64];
    uint32_t lots[64][8];
    int64_t pts[64][8];
    size_t n;
} ent_list;

static int collect(const seg_loyalty_entry *e, void *payload)
{
    ent_list *l = payload;
    l->e[l->n] = *e;
    for (size_t k = 0; k < e->ndraws && k < 8; k++) {
        l->lots[l->n][k] = e->draw_lots[k];
        l->pts[l->n][k] = e->draw_points[k];
    }
    l->e[l->n].order_id = NULL;
    l->e[l->n].draw_lots = NULL;
    l->e[l->n].draw_points = NULL;
    l->n++;
    return 0;
}

START_TEST(ledger_redeem)
{
    seg_event e[3] = {
        tu_purchase("e1", "ann", TU_DAYN(0), 4000, "o1"),   /* 40 points, lot seq 1 */
        tu_purchase("e2", "ann", TU_DAYN(1), 3000, "o2"),   /* 30, lot seq 2 */
        tu_purchase("e3", "bob", TU_DAYN(1), 1000, "o3"),
    };
    TU_OK(db, seg_event_ingest_batch(db, e, 3, NULL, NULL));
    ent_list before, after;
    memset(&before, 0, sizeof before);
    TU_OK(db, seg_loyalty_entries(led, "ann", collect, &before));
    ck_assert_uint_eq(before.n, 2);
    ck_assert_int_eq(before.e[0].points, 40);
    ck_assert_int_eq(before.e[0].expires, TU_DAYN(60));
    /* short: nothing changes */
    TU_RC(db, seg_loyalty_redeem(led, "ann", 71, TU_DAYN(2)), SEG_EINVAL);
    TU_MSG_HAS(db, "has 70 points");
    memset(&after, 0, sizeof after);
    TU_OK(db, seg_loyalty_entries(led, "ann", collect, &after));
    ck_assert_uint_eq(after.n, 2);
    TU_RC(db, seg_loyalty_redeem(led, "nobody", 1, TU_DAYN(2)), SEG_ENOTFOUND);
    TU_RC(db, seg_loyalty_redeem(led, "ann", 0, TU_DAYN(2)), SEG_EINVAL);
    /* 50: all of lot 1, 10 of lot 2 */
    TU_OK(db, seg_loyalty_redeem(led, "ann", 50, TU_DAYN(2)));
    memset(&after, 0, sizeof after);
    TU_OK(db, seg_loyalty_entries(led, "ann", collect, &after));
    ck_assert_uint_eq(after.n, 3);
    ck_assert_uint_eq(after.e[2].kind, SEG_LOYALTY_REDEMPTION);
    ck_assert_uint_eq(after.e[2].seq, 3);
    ck_assert_uint_eq(after.e[2].ndraws, 2);
    ck_assert_uint_eq(after.lots[2][0], 1);
    ck_assert_int_eq(after.pts[2][0], 40);
    ck_assert_uint_eq(after.lots[2][1], 2);
    ck_assert_int_eq(after.pts[2][1], 10);
    seg_loyalty_status st = SEG_LOYALTY_STATUS_INIT;
    TU_OK(db, seg_loyalty_status_get(&st, led, "ann", TU_DAYN(3)));
    ck_assert_int_eq(st.points, 20);
    ck_assert_int_eq(st.redeemed, 50);
    /* as of before the redemption, it did not happen yet */
    TU_OK(db, seg_loyalty_status_get(&st, led, "ann", TU_DAYN(2)));
    ck_assert_int_eq(st.points, 70);
    /* a refund of all of order 1 after its points were spent: 40 back,
     * 20 from lot 2, 20 owed (negative balance allowed) */
    seg_event r = tu_refund("r1", "ann", TU_DAYN(4), -4000, "o1");
    TU_OK(db, seg_event_ingest(db, &r));
    TU_OK(db, seg_loyalty_status_get(&st, led, "ann", TU_DAYN(5)));
    ck_assert_int_eq(st.points, -20);
    TU_RC(db, seg_loyalty_redeem(led, "ann", 1, TU_DAYN(5)), SEG_EINVAL);
}
END_TEST

START_TEST(ledger_batch_rollback)
{
    seg_event ok = tu_purchase("e1", "ann", TU_DAYN(0), 4000, "o1");
    TU_OK(db, seg_event_ingest(db, &ok));
    seg_event e[2] = {
        tu_purchase("e2", "ann", TU_DAYN(1), 3000, "o2"),
        tu_refund("e3", "ann", TU_DAYN(2), -99000, "o1"),    /* more than the order: refused */
    };
    TU_RC(db, seg_event_ingest_batch(db, e, 2, NULL, NULL), SEG_EINVAL);
    ent_list l;
    memset(&l, 0, sizeof l);
    TU_OK(db, seg_loyalty_entries(led, "ann", collect, &l));
    ck_assert_uint_eq(l.n, 1);
    /* the next entry gets the next number */
    TU_OK(db, seg_event_ingest(db, &e[0]));
    memset(&l, 0, sizeof l);
    TU_OK(db, seg_loyalty_entries(led, "ann", collect, &l));
    ck_assert_uint_eq(l.n, 2);
    ck_assert_uint_eq(l.e[1].seq, 2);
    /* an ingest of the same events again is a no-op for the ledger too */
    TU_OK(db, seg_event_ingest(db, &e[0]));
    memset(&l, 0, sizeof l);
    TU_OK(db, seg_loyalty_entries(led, "ann", collect, &l));
    ck_assert_uint_eq(l.n, 2);
}
END_TEST

static int count_cb(const seg_loyalty_status *s, void *payload)
{
    char *buf = payload;
    char line[128];
    snprintf(line, sizeof line, "%s,%s,%lld;", s->customer_id, s->tier_name, (long long)s->points);
    strcat(buf, line);
    return 0;
}

START_TEST(ledger_values_and_walk)
{
    /* cat: 120.00 -> gold (100.00); dan: 20.00 silver; eve: 350.00 in two
     * purchases: 200.00 (silver, 200 points) then 150.00 at gold (2x: 300) */
    seg_event e[4] = {
        tu_purchase("e1", "cat", TU_DAYN(0), 12000, "o1"),
        tu_purchase("e2", "dan", TU_DAYN(0), 2000, "o2"),
        tu_purchase("e3", "eve", TU_DAYN(0), 20000, "o3"),
        tu_purchase("e4", "eve", TU_DAYN(1), 15000, "o4"),
    };
    TU_OK(db, seg_event_ingest_batch(db, e, 4, NULL, NULL));
    seg_customer_add(db, "zed");  /* no ledger entry: left out of the walk */
    char buf[512] = "";
    TU_OK(db, seg_loyalty_foreach(led, TU_DAYN(2), SEG_LOYALTY_SORTED, count_cb, buf));
    ck_assert_str_eq(buf, "cat,gold,120;dan,silver,20;eve,plat,500;");
    const char *src = "segment golden: tier == \"gold\";\n"
                      "segment rich: points >= 400 and tier_rank >= 1;\n";
    seg_segdef *def = NULL;
    TU_OK(db, seg_segdef_compile(&def, db, src, strlen(src)));
    unsigned char m[2];
    TU_OK(db, seg_segdef_eval_customer(m, 2, def, "cat", TU_DAYN(2)));
    ck_assert(m[0] && !m[1]);
    TU_OK(db, seg_segdef_eval_customer(m, 2, def, "eve", TU_DAYN(2)));
    ck_assert(!m[0] && m[1]);
    TU_OK(db, seg_segdef_eval_customer(m, 2, def, "dan", TU_DAYN(2)));
    ck_assert(!m[0] && !m[1]);
    /* after a redemption the value follows */
    TU_OK(db, seg_loyalty_redeem(led, "eve", 200, TU_DAYN(2)));
    TU_OK(db, seg_segdef_eval_customer(m, 2, def, "eve", TU_DAYN(3)));
    ck_assert(!m[1]);
    /* without a ledger the values fail with a message */
    seg_loyalty_ledger_free(led);
    led = NULL;
    TU_RC(db, seg_segdef_eval_customer(m, 2, def, "eve", TU_DAYN(3)), SEG_EINVAL);
    TU_MSG_HAS(db, "no loyalty program is attached");
    seg_segdef_free(def);
    /* attaching again rebuilds from the events (the memory backend keeps no
     * records: the redemption is gone with the ledger) */
    TU_OK(db, seg_loyalty_attach(&led, db, prog));
    seg_loyalty_ledger *twice = NULL;
    TU_RC(db, seg_loyalty_attach(&twice, db, prog), SEG_EINVAL);
    ck_assert_ptr_null(twice);
    buf[0] = '\0';
    TU_OK(db, seg_loyalty_foreach(led, TU_DAYN(3), SEG_LOYALTY_SORTED, count_cb, buf));
    ck_assert_str_eq(buf, "cat,gold,120;dan,silver,20;eve,plat,500;");
    /* a program for another currency exponent is refused */
    seg_loyalty_options o = SEG_LOYALTY_OPTIONS_INIT;
    o.currency_exponent = 3;
    const char *s2 = "program other {\n  earn 1 point per 1.000;\n  tier a;\n}";
    seg_loyalty *p3 = NULL;
    ck_assert_int_eq(seg_loyalty_compile(&p3, s2, strlen(s2), &o), SEG_OK);
    TU_RC(db, seg_loyalty_attach(&twice, db, p3), SEG_EINVAL);
    TU_MSG_HAS(db, "currency exponent 3");
    seg_loyalty_free(p3);
}
END_TEST

#if SEG_HAVE_SQLITE
static char tmpdir[PATH_MAX];

static void sq_setup(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/segloyXXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void sq_teardown(void)
{
    char p[PATH_MAX + 32];
    const char *sfx[] = { "", "-wal", "-shm", "-journal" };
    for (int k = 0; k < 4; k++) {
        snprintf(p, sizeof p, "%s/l.db%s", tmpdir, sfx[k]);
        unlink(p);
    }
    rmdir(tmpdir);
}

static seg_db *sq_open(void)
{
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/l.db", tmpdir);
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    o.storage = seg_storage_sqlite();
    o.errbuf = errbuf;
    o.errbuf_size = sizeof errbuf;
    seg_db *d = NULL;
    ck_assert_msg(seg_db_open(&d, path, &o) == SEG_OK, "open: %s", errbuf);
    return d;
}

static int dump_cb(const seg_loyalty_status *s, void *payload)
{
    char *buf = payload;
    char line[200];
    snprintf(line, sizeof line, "%s,%s,%lld,%lld,%lld,%lld;", s->customer_id, s->tier_name,
             (long long)s->points, (long long)s->earned, (long long)s->redeemed,
             (long long)s->reversed);
    strcat(buf, line);
    return 0;
}

/* Erased: the ledger goes, from memory and the file.  Anonymized: the
 * ledger follows the events to the new id. */
START_TEST(sqlite_erase)
{
    seg_loyalty *p = compile_ok(P0 "  qualify spend over 30d;\n" TIERS3 "}");
    seg_db *d = sq_open();
    seg_loyalty_ledger *l = NULL;
    TU_OK(d, seg_loyalty_attach(&l, d, p));
    seg_event e[3] = {
        tu_purchase("x1", "ann", TU_DAYN(0), 15000, "xo1"),
        tu_purchase("x2", "bob", TU_DAYN(0), 1000, "xo2"),
        tu_purchase("x3", "cy", TU_DAYN(0), 2000, "xo3"),
    };
    TU_OK(d, seg_event_ingest_batch(d, e, 3, NULL, NULL));
    TU_OK(d, seg_loyalty_redeem(l, "ann", 20, TU_DAYN(1)));
    TU_OK(d, seg_customer_erase(d, "ann"));
    seg_loyalty_status st = SEG_LOYALTY_STATUS_INIT;
    ck_assert_int_ne(seg_loyalty_status_get(&st, l, "ann", TU_DAYN(2)), SEG_OK);
    char *nid = NULL;
    TU_OK(d, seg_customer_anonymize(d, "bob", &nid));
    char want[1024] = "", got[1024] = "";
    TU_OK(d, seg_loyalty_foreach(l, TU_DAYN(2), SEG_LOYALTY_SORTED, dump_cb, want));
    char expect[256];
    snprintf(expect, sizeof expect, "%s,silver,10,10,0,0;cy,silver,20,20,0,0;", nid);
    ck_assert_str_eq(want, expect);
    seg_loyalty_ledger_free(l);
    seg_db_close(d);
    /* the file holds neither ann's ledger nor bob's old one */
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/l.db", tmpdir);
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(h, "SELECT group_concat(key) FROM (SELECT key FROM "
                                           "seg_records WHERE tbl LIKE 'loyalty:%' ORDER BY key)",
                                        -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    snprintf(expect, sizeof expect, "%s,cy", nid);
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), expect);
    sqlite3_finalize(q);
    sqlite3_close(h);
    /* and after a reopen, the same ledgers */
    d = sq_open();
    TU_OK(d, seg_loyalty_attach(&l, d, p));
    TU_OK(d, seg_loyalty_foreach(l, TU_DAYN(2), SEG_LOYALTY_SORTED, dump_cb, got));
    ck_assert_str_eq(got, want);
    seg_loyalty_ledger_free(l);
    seg_db_close(d);
    seg_free(nid);
    seg_loyalty_free(p);
}
END_TEST

START_TEST(sqlite_reopen)
{
    seg_loyalty *p = compile_ok(P0 "  qualify spend over 30d;\n" TIERS3 "}");
    seg_db *d = sq_open();
    seg_loyalty_ledger *l = NULL;
    seg_event e[4] = {
        tu_purchase("e1", "ann", TU_DAYN(0), 15000, "o1"),   /* 150 at silver; gold after */
        tu_purchase("e2", "ann", TU_DAYN(1), 5000, "o2"),    /* 50 x 2 = 100 */
        tu_purchase("e3", "bo\"b", TU_DAYN(1), 1000, "o3"),
        tu_refund("e4", "ann", TU_DAYN(2), -2500, "o2"),      /* half of order 2: 50 */
    };
    TU_OK(d, seg_event_ingest_batch(d, e, 2, NULL, NULL));   /* before the program */
    TU_OK(d, seg_loyalty_attach(&l, d, p));
    TU_OK(d, seg_event_ingest_batch(d, e + 2, 2, NULL, NULL));
    TU_OK(d, seg_loyalty_redeem(l, "ann", 120, TU_DAYN(3)));
    char want[1024] = "", got[1024] = "";
    TU_OK(d, seg_loyalty_foreach(l, TU_DAYN(4), SEG_LOYALTY_SORTED, dump_cb, want));
    ck_assert_str_eq(want, "ann,gold,80,250,120,50;bo\"b,silver,10,10,0,0;");
    ent_list before;
    memset(&before, 0, sizeof before);
    TU_OK(d, seg_loyalty_entries(l, "ann", collect, &before));
    seg_loyalty_ledger_free(l);
    seg_db_close(d);

    /* an event ingested while no program is attached */
    d = sq_open();
    seg_event late = tu_purchase("e5", "bo\"b", TU_DAYN(3), 2000, "o5");
    TU_OK(d, seg_event_ingest(d, &late));
    seg_db_close(d);

    d = sq_open();
    TU_OK(d, seg_loyalty_attach(&l, d, p));
    TU_OK(d, seg_loyalty_foreach(l, TU_DAYN(4), SEG_LOYALTY_SORTED, dump_cb, got));
    ck_assert_str_eq(got, "ann,gold,80,250,120,50;bo\"b,silver,30,30,0,0;");
    ent_list after;
    memset(&after, 0, sizeof after);
    TU_OK(d, seg_loyalty_entries(l, "ann", collect, &after));
    ck_assert_uint_eq(after.n, before.n);
    for (size_t k = 0; k < after.n; k++) {
        ck_assert_uint_eq(after.e[k].seq, before.e[k].seq);
        ck_assert_int_eq(after.e[k].points, before.e[k].points);
        ck_assert_uint_eq(after.e[k].ndraws, before.e[k].ndraws);
        for (size_t j = 0; j < after.e[k].ndraws; j++) {
            ck_assert_uint_eq(after.lots[k][j], before.lots[k][j]);
            ck_assert_int_eq(after.pts[k][j], before.pts[k][j]);
        }
    }
    /* a redemption after reopen gets the next number */
    TU_OK(d, seg_loyalty_redeem(l, "ann", 5, TU_DAYN(5)));
    memset(&after, 0, sizeof after);
    TU_OK(d, seg_loyalty_entries(l, "ann", collect, &after));
    ck_assert_uint_eq(after.e[after.n - 1].seq, before.n + 1);
    seg_loyalty_ledger_free(l);
    seg_db_close(d);

    /* the readable view of doc/loyalty.md, as a TEMP view */
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/l.db", tmpdir);
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    char *doc = read_file(SEG_SRCDIR "/doc/loyalty.md");
    char *v = strstr(doc, "CREATE VIEW seg_loyalty_entries_v");
    ck_assert_ptr_nonnull(v);
    char *end = strstr(v, ";\n");
    ck_assert_ptr_nonnull(end);
    end[1] = '\0';
    /* the schema has it (tests/check_sqlite.c checks it is this text); as
     * a TEMP view too, so that the doc's own text is what is read here */
    char *msg = NULL, tv[4096];
    snprintf(tv, sizeof tv, "CREATE TEMP VIEW%s", v + strlen("CREATE VIEW"));
    ck_assert_msg(sqlite3_exec(h, tv, NULL, NULL, &msg) == SQLITE_OK, "view: %s", msg);
    sqlite3_stmt *q = NULL;
    const char *sql = "SELECT customer_id, seq, type, points, lot FROM temp.seg_loyalty_entries_v "
                      "WHERE program = 'p' AND customer_id = 'ann' ORDER BY seq, lot";
    ck_assert_int_eq(sqlite3_prepare_v2(h, sql, -1, &q, NULL), SQLITE_OK);
    char rows[1024] = "";
    while (sqlite3_step(q) == SQLITE_ROW) {
        char line[128];
        snprintf(line, sizeof line, "%s %d %s %s %s;", sqlite3_column_text(q, 0),
                 sqlite3_column_int(q, 1), sqlite3_column_text(q, 2),
                 sqlite3_column_type(q, 3) == SQLITE_NULL ? "-" : (const char *)sqlite3_column_text(q, 3),
                 sqlite3_column_type(q, 4) == SQLITE_NULL ? "-" : (const char *)sqlite3_column_text(q, 4));
        strcat(rows, line);
    }
    sqlite3_finalize(q);
    sqlite3_close(h);
    free(doc);
    /* purchases 150 and 100 points, the refund, the redemption of 120 from
     * lot 1 alone, the one of 5 from lot 1 */
    ck_assert_str_eq(rows, "ann 1 purchase 150 -;ann 2 purchase 100 -;ann 3 refund - -;"
                           "ann 4 redemption 120 1;ann 5 redemption 5 1;");
    seg_loyalty_free(p);
}
END_TEST
#endif

Suite *loyalty_suite(void);
Suite *loyalty_suite(void)
{
    Suite *s = suite_create("loyalty");
    TCase *tc = tcase_create("program");
    tcase_add_test(tc, bundled_program);
    tcase_add_loop_test(tc, compile_errors, 0, (int)(sizeof bads / sizeof bads[0]));
    tcase_add_test(tc, compile_options);
    suite_add_tcase(s, tc);

    tc = tcase_create("engine");
    tcase_add_test(tc, points_rounding_minimum_bonus);
    tcase_add_test(tc, expiry_and_fifo_redemption);
    tcase_add_test(tc, refunds_reverse_proportionally);
    tcase_add_test(tc, tiers_window_upgrade_grace);
    tcase_add_test(tc, score_errors_and_work);
    tcase_add_test(tc, score_allocates_nothing);
    tcase_add_loop_test(tc, score_matches_reference, 0, 4);
    suite_add_tcase(s, tc);

    tc = tcase_create("ledger");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, ledger_matches_score, 0, 4);
    tcase_add_test(tc, ledger_redeem);
    tcase_add_test(tc, ledger_batch_rollback);
    tcase_add_test(tc, ledger_values_and_walk);
    suite_add_tcase(s, tc);

#if SEG_HAVE_SQLITE
    tc = tcase_create("sqlite");
    tcase_add_checked_fixture(tc, sq_setup, sq_teardown);
    tcase_add_test(tc, sqlite_reopen);
    tcase_add_test(tc, sqlite_erase);
    suite_add_tcase(s, tc);
#endif
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(loyalty_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
