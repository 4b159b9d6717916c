/*
 * examples/pos_score.c: loyalty at the till.  A point-of-sale program
 * compiles the loyalty program once at start-up, then scores each customer
 * from the purchase history it holds (an array, no database), and prices
 * the basket being rung up.  Links only libsegment; the scoring call
 * allocates nothing.
 *
 *   pos_score [PROGRAM.seg]     (default: the program below)
 */
#include <segment.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char default_program[] =
    "program till {\n"
    "  earn 1 point per 1.00;\n"
    "  minimum_spend 5.00;\n"
    "  expire after 730d;\n"
    "  qualify spend over 365d;\n"
    "  grace 90d;\n"
    "  bonus category \"electronics\" multiplier 2;\n"
    "  tier silver;\n"
    "  tier gold from 1000.00 multiplier 1.25;\n"
    "  tier platinum from 5000.00 multiplier 1.5;\n"
    "}\n";

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0, got;
    do {
        if (n + 4096 > cap) {
            char *b = realloc(buf, cap = (n + 4096) * 2);
            if (!b) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = b;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    size_t len = sizeof default_program - 1;
    char *text = NULL;
    if (argc > 1 && !(text = read_file(argv[1], &len))) {
        fprintf(stderr, "pos_score: cannot read %s\n", argv[1]);
        return 1;
    }
    /* once, at start-up */
    char err[512] = "";
    seg_loyalty_options o = SEG_LOYALTY_OPTIONS_INIT;
    o.errbuf = err;
    o.errbuf_size = sizeof err;
    seg_loyalty *prog = NULL;
    int rc = seg_loyalty_compile(&prog, text ? text : default_program, len, &o);
    free(text);
    if (rc != SEG_OK) {
        fprintf(stderr, "pos_score: %s: %s\n", argc > 1 ? argv[1] : "program", err);
        return 1;
    }

    /* the customer's history, as the till's own database keeps it */
    int64_t day = 86400, t0;
    seg_time_parse(&t0, "2024-01-10T12:00:00Z", 20);
    static const struct { int days; int64_t amount; const char *category; uint32_t order; }
        past[] = {
            { 0, 45000, "electronics", 1 },  /* 450.00 */
            { 30, 12000, "grocery", 2 },
            { 95, 38000, "furniture", 3 },
            { 140, 9000, "grocery", 4 },
            { 200, 16000, "electronics", 5 },
        };
    seg_loyalty_txn hist[6];
    size_t n = 0;
    for (size_t k = 0; k < sizeof past / sizeof past[0]; k++) {
        seg_loyalty_txn t = SEG_LOYALTY_TXN_INIT;
        t.kind = SEG_LOYALTY_PURCHASE;
        t.ts = t0 + past[k].days * day;
        t.amount = past[k].amount;
        t.category = past[k].category;
        t.order = past[k].order;
        hist[n++] = t;
    }
    seg_loyalty_txn r = SEG_LOYALTY_TXN_INIT; /* 40.00 of order 4 came back */
    r.kind = SEG_LOYALTY_REFUND;
    r.ts = t0 + 150 * day;
    r.amount = -4000;
    r.order = 4;
    /* the history is in time order: the refund goes after day 140 */
    hist[n++] = hist[4];
    hist[4] = r;

    /* the basket being rung up now */
    int64_t now = t0 + 210 * day;
    seg_loyalty_txn basket = SEG_LOYALTY_TXN_INIT;
    basket.kind = SEG_LOYALTY_PURCHASE;
    basket.amount = 24999;
    basket.category = "electronics";

    seg_loyalty_status st = SEG_LOYALTY_STATUS_INIT;
    size_t bad;
    rc = seg_loyalty_score(&st, prog, hist, n, &basket, now, NULL, 0, &bad);
    if (rc != SEG_OK) {
        fprintf(stderr, "pos_score: %s (history entry %zd)\n", seg_errstr(rc), (ssize_t)bad);
        seg_loyalty_free(prog);
        return 1;
    }
    char spend[SEG_MONEY_BUFSIZE] = "";
    if (st.spend_to_next_tier >= 0)
        seg_money_format(spend, sizeof spend, st.spend_to_next_tier, 2);
    printf("tier: %s\n", st.tier_name);
    printf("points: %lld (earned %lld, redeemed %lld, expired %lld, reversed %lld)\n",
           (long long)st.points, (long long)st.earned, (long long)st.redeemed,
           (long long)st.expired, (long long)st.reversed);
    printf("this basket earns: %lld points\n", (long long)st.purchase_points);
    if (st.next_tier_name)
        printf("spend %s more for %s\n", spend, st.next_tier_name);
    seg_loyalty_free(prog);
    return st.tier_name ? 0 : 1;
}
