/*
 * bench/bench-events.h: the events the benchmarks ingest through the C API
 * (bench_ingest, bench_sqlite), generated in memory from a seed.  Included
 * by one source file each (static functions).
 */
#ifndef BENCH_EVENTS_H
#define BENCH_EVENTS_H

#include <segment.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* splitmix64: a small seeded generator */
static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}
static double unif(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

static const char *const channels[] = { "store", "web", "app", "call_centre" };
static const char *const categories[] = {
    "grocery", "bakery", "dairy", "produce", "meat", "seafood", "frozen", "beverages",
    "snacks", "household", "personal_care", "baby", "pet", "electronics", "apparel",
    "home_garden", "toys", "books", "health", "sports",
};

/* Events shaped like gen_events.py's: ~10 events per customer with a heavy
 * tail, 20 % of lines continuing an order, 2 % refunds, time-sorted. */
static seg_event *generate(size_t n, char **pool_out)
{
    size_t ncust = n / 10 ? n / 10 : 1;
    seg_event *ev = calloc(n, sizeof *ev);
    char *pool = malloc(n * 24 + ncust * 10);
    if (!ev || !pool)
        return NULL;
    char *cust_ids = pool + n * 24;
    for (size_t c = 0; c < ncust; c++)
        snprintf(cust_ids + c * 10, 10, "C%07zu", (c * 7919 + 13) % 10000000);
    int64_t t0 = 1640995200; /* 2022-01-01 */
    double span = 3.0 * 365 * 86400;
    size_t order = 1000000;
    const char *last_cust = NULL;
    for (size_t i = 0; i < n; i++) {
        seg_event e = SEG_EVENT_INIT;
        bool cont = i > 0 && unif() < 0.2 && ev[i - 1].kind == SEG_EVENT_PURCHASE;
        /* heavy tail: squared uniform favours low customer numbers */
        double u = unif();
        size_t c = (size_t)(u * u * u * (double)ncust);
        if (i < ncust)
            c = i; /* every customer appears */
        e.customer_id = cont ? last_cust : cust_ids + c * 10;
        e.ts = cont ? ev[i - 1].ts : t0 + (int64_t)(span * (double)i / (double)n);
        char *oid = pool + i * 24;
        if (cont) {
            e.order_id = ev[i - 1].order_id;
        } else {
            snprintf(oid, 24, "O%010zu", order++);
            e.order_id = oid;
        }
        if (!cont && i >= ncust && unif() < 0.02) {
            e.kind = SEG_EVENT_REFUND;
            e.amount = -(int64_t)(100 + rnd() % 5000);
        } else {
            e.kind = SEG_EVENT_PURCHASE;
            /* lines of one order differ in amount, so no two events have the
             * same content (identical content without an id is one event) */
            e.amount = cont ? ev[i - 1].amount + 1 : (int64_t)(1 + rnd() % 20000);
        }
        e.channel = cont ? ev[i - 1].channel : channels[rnd() % 4];
        e.category = categories[rnd() % 20];
        last_cust = e.customer_id;
        ev[i] = e;
    }
    *pool_out = pool;
    return ev;
}

#endif /* BENCH_EVENTS_H */
