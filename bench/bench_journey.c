/*
 * bench_journey: 1M customers in 5 journeys, one advance over a 30-day
 * step.
 *
 *   build/bench/bench_journey [CUSTOMERS [SEED [engine]]]
 *
 * Each customer makes one purchase at a random time in the 30 days before
 * T0 (ingested in batches of 100k: every customer enters the 5 journeys as
 * its purchase comes in).  The journeys are timer-driven, with waits of 3
 * to 40 days and actions on most steps, so the advance from T0 to T0 + 30
 * days takes a few steps for most customers.  Printed: the advance's time,
 * the steps and actions it made, and the engine's memory per
 * customer-in-journey (records, timers, per-customer heads: white-box, the
 * engine's own allocations: at rest, and the most it held at the end of a
 * transaction, undo logs included), and the process's peak RSS for
 * reference.  Times are wall clock and the process's cpu time.
 *
 * The actions go to seg__outbox_emit_many (the outbox: deduplication, caps,
 * send windows, the queue; with the memory backend).  With `engine` as
 * third argument they
 * go to a counter instead (a white-box swap of the engine's emit function),
 * which times the engine alone: every action is still built in full (step
 * identity, customer id, parameters) and passed on.
 *
 * Run it with `nice`; figures in doc/journey.md.
 */
#include "journey/journey-engine.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define DAY 86400
#define T0 1717200000 /* 2024-06-01 */

static const char *defs =
    "journey welcome { enter when orders >= 1;\n"
    "  state a { do \"email:welcome\"; after 3d -> b do \"email:tips\"; }\n"
    "  state b { after 10d -> c do \"email:offer\"(percent: 10); on purchase -> exit; }\n"
    "  state c { after 20d -> exit do \"email:last\"; } }\n"
    "journey nurture { enter when orders >= 1;\n"
    "  state a { after 7d -> b do \"email:n1\"; }\n"
    "  state b { after 7d -> c do \"email:n2\"; }\n"
    "  state c { after 7d -> exit do \"email:n3\"; } }\n"
    "journey winback { enter when orders >= 1; variant a 45; variant b 45; holdout 10;\n"
    "  state wait { after 25d since last_purchase -> offer do \"email:w\"(percent: 5) for a,"
    " \"sms:w\" for b; }\n"
    "  state offer { on purchase -> exit; after 14d -> exit; } }\n"
    "journey survey { enter when orders >= 1;\n"
    "  state s { after 5d -> exit do \"email:survey\"; } }\n"
    "journey longterm { enter when orders >= 1;\n"
    "  state s { after 40d -> t do \"email:anniversary\"; }\n"
    "  state t { after 300d -> exit; } }\n";

static uint64_t rs = 42;
static uint64_t rnd(void)
{
    uint64_t z = (rs += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static double secs(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static double cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* the engine-only outbox: counts the actions and reads their identity */
static size_t nemitted, idbytes;
static int count_emit(seg_db *db, const seg__action *a, size_t n, int *outcomes, size_t *done)
{
    (void)db;
    for (size_t k = 0; k < n; k++) {
        nemitted++;
        idbytes += strlen(a[k].customer_id) + strlen(a[k].step) + strlen(a[k].params);
        outcomes[k] = SEG__EMIT_QUEUED;
    }
    *done = n;
    return SEG_OK;
}

static size_t nacts;
static void count_action(const seg_journey_action *a, void *payload)
{
    (void)a;
    (void)payload;
    nacts++;
}

static void die(seg_db *db, const char *what)
{
    fprintf(stderr, "bench_journey: %s: %s\n", what, seg_errmsg(db));
    exit(1);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    if (argc > 2)
        rs = strtoull(argv[2], NULL, 10);
    bool engine_only = argc > 3 && strcmp(argv[3], "engine") == 0;
    seg_db *db = NULL;
    if (seg_db_open(&db, ":memory:", NULL) != SEG_OK)
        return 1;
    seg_segdef *def = NULL;
    seg_journey *j = NULL;
    if (seg_segdef_compile(&def, db, defs, strlen(defs)) != SEG_OK)
        die(db, "compile");
    if (seg_journey_open(&j, def) != SEG_OK)
        die(db, "open");
    if (engine_only)
        j->outbox_emit = count_emit;
    const size_t B = 100000;
    seg_event *ev = calloc(B, sizeof *ev);
    char *ids = malloc(B * 32);
    if (!ev || !ids)
        return 1;
    double t0 = secs();
    for (size_t k0 = 0; k0 < n; k0 += B) {
        size_t m = n - k0 < B ? n - k0 : B;
        for (size_t k = 0; k < m; k++) {
            char *id = ids + k * 32;
            snprintf(id, 16, "c%zu", k0 + k);
            snprintf(id + 16, 16, "o%zu", k0 + k);
            seg_event e = SEG_EVENT_INIT;
            e.kind = SEG_EVENT_PURCHASE;
            e.customer_id = id;
            e.event_id = id + 16;
            e.order_id = id + 16;
            e.ts = T0 - 30 * DAY + (int64_t)(rnd() % (30 * DAY));
            e.amount = 1000 + (int64_t)(rnd() % 10000);
            ev[k] = e;
        }
        seg_ingest_options o = SEG_INGEST_OPTIONS_INIT;
        if (seg_event_ingest_batch(db, ev, m, &o, NULL) != SEG_OK)
            die(db, "ingest");
    }
    double t1 = secs();
    /* the timers due before T0, so the measured step starts from rest */
    if (seg_journey_advance(j, T0) != SEG_OK)
        die(db, "advance");
    double t2 = secs();
    uint32_t steps0 = 0;
    for (uint32_t r = 0; r < j->nrecs; r++)
        steps0 += seg__jr_rec(j, r)->steps;
    seg_journey_set_action_cb(j, count_action, NULL);
    double a0 = secs(), c0 = cpu();
    if (seg_journey_advance(j, T0 + 30 * DAY) != SEG_OK)
        die(db, "advance");
    double a1 = secs(), c1 = cpu();
    uint32_t steps1 = 0;
    size_t in = 0;
    for (uint32_t r = 0; r < j->nrecs; r++) {
        steps1 += seg__jr_rec(j, r)->steps;
        in += seg__jr_rec(j, r)->state != SEG__JR_OUT;
    }
    size_t bytes = seg__jr_memory(j), peak = j->mem_peak > bytes ? j->mem_peak : bytes;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("customers %zu, journeys 5, customer-in-journey records %u (%zu still in)\n", n,
           j->nrecs, in);
    printf("ingest with journeys attached: %.2f s (%.0f ns/customer)\n", t1 - t0,
           (t1 - t0) * 1e9 / (double)n);
    printf("advance to T0 (timers due before): %.3f s\n", t2 - t1);
    uint32_t steps = steps1 - steps0 ? steps1 - steps0 : 1;
    printf("advance over 30 days (%s): %.3f s wall, %.3f s cpu, %u steps, %zu actions "
           "(%.0f ns/step wall, %.0f cpu)\n",
           engine_only ? "engine alone, actions counted" : "actions to the outbox",
           a1 - a0, c1 - c0, steps1 - steps0, nacts, (a1 - a0) * 1e9 / (double)steps,
           (c1 - c0) * 1e9 / (double)steps);
    printf("engine memory: %.1f MB, %.1f bytes per customer-in-journey at rest; at most "
           "%.1f MB, %.1f bytes during a transaction (record %zu B, timer %zu B)\n",
           (double)bytes / 1e6, (double)bytes / (double)j->nrecs, (double)peak / 1e6,
           (double)peak / (double)j->nrecs, sizeof(seg__jrec), sizeof(seg__jtimer));
    printf("peak RSS: %.0f MB\n", (double)ru.ru_maxrss / 1024.0);
    seg_journey_close(j);
    seg_segdef_free(def);
    seg_db_close(db);
    free(ev);
    free(ids);
    return 0;
}
