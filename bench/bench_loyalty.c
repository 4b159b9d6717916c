/*
 * bench/bench_loyalty.c: loyalty figures.
 *
 * 1. The stateless score at the till: one customer with a 100-purchase
 *    history (categories, channels, a few refunds and redemptions) and a
 *    basket to price, with examples/definitions/loyalty.seg's rules;
 *    nanoseconds per call over 64 different histories.
 * Times are CPU time of the process (the machine may be shared).
 * 2. A database of CUSTOMERS customers (about 10 events each, from
 *    bench-events.h): the time to attach the program (building every
 *    ledger from the stored events), then to score every customer
 *    (seg_loyalty_foreach: tier, points, next tier, spend to it).
 *
 *   nice build/bench/bench_loyalty [CUSTOMERS] [SEED]     (default 1000000, 42)
 */
#include "bench-events.h"

#include <string.h>
#include <time.h>

static const char program[] =
    "program rewards {\n"
    "  earn 1 point per 1.00;\n"
    "  rounding down;\n"
    "  minimum_spend 5.00;\n"
    "  expire after 730d;\n"
    "  qualify spend over 365d;\n"
    "  grace 90d;\n"
    "  negative_balance forbidden;\n"
    "  bonus category \"electronics\" multiplier 2;\n"
    "  bonus category \"books\", \"music\" multiplier 1.5;\n"
    "  bonus category \"home_garden\", \"toys\" channel \"app\" points 25;\n"
    "  tier silver;\n"
    "  tier gold from 1000.00 multiplier 1.25;\n"
    "  tier platinum from 5000.00 multiplier 1.5;\n"
    "}\n";

/* CPU time of the process: the machine may be shared, and wall time would
 * count the other processes' turns */
static double secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define HISTS 64
#define HLEN 100

static int count_cb(const seg_loyalty_status *s, void *payload)
{
    uint64_t *acc = payload;
    acc[0]++;
    acc[1] += (uint64_t)s->tier;
    acc[2] += (uint64_t)s->points;
    return 0;
}

int main(int argc, char **argv)
{
    size_t ncust = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1000000;
    rng_state = argc > 2 ? strtoull(argv[2], NULL, 10) : 42;
    seg_loyalty *prog = NULL;
    if (seg_loyalty_compile(&prog, program, sizeof program - 1, NULL) != SEG_OK)
        return 1;

    /* ---- 1. the stateless score ---- */
    static seg_loyalty_txn h[HISTS][HLEN];
    int64_t t0 = 1640995200;
    for (int k = 0; k < HISTS; k++) {
        int64_t t = t0;
        for (int j = 0; j < HLEN; j++) {
            seg_loyalty_txn x = SEG_LOYALTY_TXN_INIT;
            t += 3600 + (int64_t)(rnd() % (7 * 86400));
            x.ts = t;
            uint64_t r = rnd() % 100;
            if (j > 0 && r < 3) {
                x.kind = SEG_LOYALTY_REFUND;
                x.amount = -(int64_t)(100 + rnd() % 2000);
                x.order = (uint32_t)(1 + rnd() % (uint64_t)j);
            } else if (j > 10 && r < 6) {
                x.kind = SEG_LOYALTY_REDEMPTION;
                x.points = 1 + (int64_t)(rnd() % 50);
            } else {
                x.kind = SEG_LOYALTY_PURCHASE;
                x.amount = 100 + (int64_t)(rnd() % 30000);
                x.category = categories[rnd() % 20];
                x.channel = channels[rnd() % 4];
                x.order = (uint32_t)j + 1;
            }
            h[k][j] = x;
        }
    }
    seg_loyalty_txn basket = SEG_LOYALTY_TXN_INIT;
    basket.kind = SEG_LOYALTY_PURCHASE;
    basket.amount = 4999;
    basket.category = "electronics";
    basket.channel = "store";
    seg_loyalty_status st = SEG_LOYALTY_STATUS_INIT;
    int64_t sink = 0;
    size_t calls = 2000000;
    for (int warm = 0; warm < 2; warm++) {
        double a = secs();
        for (size_t i = 0; i < calls; i++) {
            const seg_loyalty_txn *hh = h[i % HISTS];
            if (seg_loyalty_score(&st, prog, hh, HLEN, &basket, hh[HLEN - 1].ts + 86400, NULL, 0,
                                  NULL) != SEG_OK)
                return 1;
            sink += st.points + st.purchase_points;
        }
        double b = secs();
        if (warm)
            printf("stateless score, %d-entry history + basket: %.0f ns per call (%zu calls, "
                   "checksum %lld)\n", HLEN, (b - a) * 1e9 / (double)calls, calls,
                   (long long)sink);
    }

    /* ---- 2. every customer of a database ---- */
    size_t nev = ncust * 10;
    char *pool = NULL;
    double a = secs();
    seg_event *ev = generate(nev, &pool);
    if (!ev)
        return 1;
    seg_db *db = NULL;
    if (seg_db_open(&db, ":memory:", NULL) != SEG_OK)
        return 1;
    for (size_t i = 0; i < nev; i += 100000) {
        size_t m = nev - i < 100000 ? nev - i : 100000;
        seg_ingest_options io = SEG_INGEST_OPTIONS_INIT;
        io.flags = SEG_INGEST_PER_EVENT;
        if (seg_event_ingest_batch(db, ev + i, m, &io, NULL) != SEG_OK) {
            fprintf(stderr, "ingest: %s\n", seg_errmsg(db));
            return 1;
        }
    }
    double b = secs();
    printf("generated and ingested %zu events of %zu customers in %.2f s\n", nev, ncust, b - a);
    int64_t now = ev[nev - 1].ts + 1;
    free(ev);
    free(pool);
    seg_loyalty_ledger *l = NULL;
    a = secs();
    if (seg_loyalty_attach(&l, db, prog) != SEG_OK) {
        fprintf(stderr, "attach: %s\n", seg_errmsg(db));
        return 1;
    }
    b = secs();
    printf("attach (every ledger built from the events): %.2f s\n", b - a);
    for (int sorted = 0; sorted < 2; sorted++) {
        uint64_t acc[3] = { 0, 0, 0 };
        a = secs();
        if (seg_loyalty_foreach(l, now, sorted ? SEG_LOYALTY_SORTED : 0, count_cb, acc) != SEG_OK)
            return 1;
        b = secs();
        printf("score every customer%s: %llu customers in %.3f s (%.0f ns each; tiers sum %llu, "
               "points sum %llu)\n", sorted ? " (sorted by id)" : "",
               (unsigned long long)acc[0], b - a, (b - a) * 1e9 / (double)acc[0],
               (unsigned long long)acc[1], (unsigned long long)acc[2]);
    }
    seg_loyalty_ledger_free(l);
    seg_db_close(db);
    seg_loyalty_free(prog);
    return sink == 42;
}
