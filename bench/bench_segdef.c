/*
 * Segment evaluation benchmark: 20 segments of realistic complexity over
 * N customers (default 1,000,000), through the C API.
 *
 *   bench_segdef [CUSTOMERS [SEED [REPEAT]]]
 *
 * The data is generated in memory and ingested through the API: about 10
 * events per customer over three years (purchases in multi-line orders with
 * categories and channels, 2 % refunds, engagement events), ~10 %
 * prospects, and per customer a country, a birth year and email/sms
 * consent (through seg_customer_import_csv).  The definitions are 20
 * segments: the six journey segments, four audiences with suppression, a
 * set of four labels, and six more (windows by category and channel,
 * engagement counts, attributes, arithmetic, membership).
 *
 * Prints one line per phase:
 *   phase=... customers=... seconds=... cpu_seconds=... [cpu_ns_per_customer=...]
 *         allocations=... alloc_bytes=...
 * allocations counts the host allocator's malloc/realloc calls during the
 * phase (seg_db_options.allocator); evaluation allocates a fixed number of
 * work tables per call, none per customer.  Single-threaded, like the
 * library; pin it to one core (taskset -c 0).
 */
#include <segment.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* CPU time of this thread: on a shared machine, less disturbed by other
 * processes than the wall clock (both are printed) */
static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}
static double cpu0;

/* ---- a counting host allocator ---- */
typedef struct counts {
    unsigned long calls;
    unsigned long long bytes;
} counts;

static void *c_malloc(size_t n, void *ud)
{
    counts *c = ud;
    c->calls++;
    c->bytes += n;
    return malloc(n);
}

static void *c_realloc(void *p, size_t n, void *ud)
{
    counts *c = ud;
    c->calls++;
    c->bytes += n;
    return realloc(p, n);
}

static void c_free(void *p, void *ud)
{
    (void)ud;
    free(p);
}

static void die(seg_db *db, const char *what, int rc)
{
    fprintf(stderr, "bench_segdef: %s: %s (%s)\n", what, db ? seg_errmsg(db) : "", seg_errstr(rc));
    exit(1);
}

/* splitmix64 */
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
static const char *const engagements[] = { "email_open", "email_click", "store_visit",
                                           "offer_redeemed", "app_open" };
static const char *const countries[] = { "US", "US", "US", "DE", "FR", "GB", "ES", "IT" };

#define T0 INT64_C(1640995200) /* 2022-01-01 */
#define SPAN (3 * 365 * INT64_C(86400))

/* Ingest about 10 events per customer, time-sorted, in batches. */
static void generate(seg_db *db, size_t ncust)
{
    size_t nev = ncust * 10, batch = 10000;
    seg_event *ev = calloc(batch, sizeof *ev);
    char (*ids)[24] = calloc(batch, sizeof *ids);
    char (*oids)[24] = calloc(batch, sizeof *oids);
    char *cust_ids = malloc(ncust * 24);
    if (!ev || !ids || !oids || !cust_ids)
        die(NULL, "generate", SEG_ENOMEM);
    for (size_t c = 0; c < ncust; c++)
        snprintf(cust_ids + c * 24, 24, "C%07zu", c);
    size_t order = 0, filled = 0;
    const char *last_cust = NULL, *last_chan = NULL;
    int64_t last_ts = 0, last_amt = 0;
    bool last_purchase = false;
    for (size_t i = 0; i < nev; i++) {
        seg_event e = SEG_EVENT_INIT;
        bool cont = i > 0 && last_purchase && unif() < 0.25;
        double u = unif();
        size_t c = (size_t)(u * u * (double)ncust);
        if (i < ncust)
            c = (i * 7919) % ncust; /* every customer appears */
        /* one customer in ten buys nothing */
        bool prospect = c % 10 == 9;
        e.customer_id = cont ? last_cust : cust_ids + c * 24;
        e.ts = cont ? last_ts : T0 + (int64_t)((double)SPAN * (double)i / (double)nev);
        snprintf(ids[filled], sizeof ids[0], "E%010zu", i);
        e.event_id = ids[filled];
        if (!cont && (prospect || unif() < 0.2)) {
            e.kind = SEG_EVENT_ENGAGEMENT;
            e.name = engagements[rnd() % 5];
            e.channel = prospect ? "email" : channels[rnd() % 4];
            last_purchase = false;
        } else if (!cont && unif() < 0.02) {
            e.kind = SEG_EVENT_REFUND;
            e.amount = -(int64_t)(100 + rnd() % 5000);
            e.channel = channels[rnd() % 4];
            e.category = categories[rnd() % 20];
            last_purchase = false;
        } else {
            e.kind = SEG_EVENT_PURCHASE;
            if (!cont)
                snprintf(oids[filled], sizeof oids[0], "O%010zu", order++);
            else
                memcpy(oids[filled], oids[filled ? filled - 1 : 0], sizeof oids[0]);
            e.order_id = oids[filled];
            e.amount = cont ? last_amt + 1 : (int64_t)(100 + rnd() % 15000);
            e.channel = cont ? last_chan : channels[rnd() % 4];
            e.category = categories[rnd() % 20];
            last_purchase = true;
        }
        last_cust = e.customer_id;
        last_ts = e.ts;
        last_amt = e.amount;
        last_chan = e.channel;
        ev[filled++] = e;
        if (filled == batch || i + 1 == nev) {
            int rc = seg_event_ingest_batch(db, ev, filled, NULL, NULL);
            if (rc != SEG_OK)
                die(db, "ingest", rc);
            /* an order continued across batches starts a new one */
            last_purchase = false;
            filled = 0;
        }
    }
    /* attributes and consent: one customer CSV import */
    size_t cap = ncust * 48 + 128, len = 0;
    char *csv = malloc(cap);
    if (!csv)
        die(NULL, "generate", SEG_ENOMEM);
    len += (size_t)snprintf(csv, cap, "customer_id,country:string,birth_year:int,consent:email,consent:sms\n");
    for (size_t c = 0; c < ncust; c++) {
        uint64_t r = rnd();
        len += (size_t)snprintf(csv + len, cap - len, "%s,%s,%d,%s,%s\n", cust_ids + c * 24,
                                countries[r % 8], 1950 + (int)(r >> 8) % 55,
                                (r >> 16) % 10 < 7 ? "granted" : "denied",
                                (r >> 24) % 10 < 3 ? "granted" : "");
    }
    int rc = seg_customer_import_csv(db, csv, len, "customers");
    if (rc != SEG_OK)
        die(db, "customers", rc);
    free(csv);
    free(cust_ids);
    free(ev);
    free(ids);
    free(oids);
}

static const char definitions[] =
    /* the six journey segments */
    "segment high_spending_active_loyal: days_since_first_purchase > 90 and orders >= 3\n"
    "  and days_since_last_purchase <= 90 and spend(365d) >= 300.00;\n"
    "segment low_spending_active_loyal: days_since_first_purchase > 90 and orders >= 3\n"
    "  and days_since_last_purchase <= 90 and spend(365d) < 300.00;\n"
    "segment high_spending_inactive_loyal: days_since_first_purchase > 90 and orders >= 3\n"
    "  and days_since_last_purchase between 91 and 180 and net_revenue >= 500.00;\n"
    "segment churned_regular: days_since_first_purchase > 90 and orders >= 2\n"
    "  and days_since_last_purchase > 180;\n"
    "segment high_spending_new: days_since_first_purchase <= 90 and net_revenue >= 200.00;\n"
    "segment regular_new: days_since_first_purchase <= 90 and net_revenue < 200.00;\n"
    /* audiences with suppression */
    "segment recently_redeemed: count(\"offer_redeemed\", 30d) >= 1;\n"
    "segment vip_thank_you: (in(high_spending_active_loyal) or in(high_spending_inactive_loyal))\n"
    "  and consent(\"email\") and not in(recently_redeemed);\n"
    "segment reactivation_offer: in(churned_regular) and consent(\"email\")\n"
    "  and not in(recently_redeemed) and not in(vip_thank_you);\n"
    "segment welcome_series: (in(high_spending_new) or in(regular_new)) and consent(\"email\")\n"
    "  and count(\"email_open\", 30d) >= 1;\n"
    /* a value set */
    "segment set value_tier {\n"
    "  gold: spend(365d) >= 1000.00 and orders(365d) >= 4;\n"
    "  silver: spend(365d) >= 250.00;\n"
    "  bronze: orders >= 1;\n"
    "  else prospect;\n"
    "}\n"
    /* and six more */
    "segment web_first: spend(180d, channel: \"web\") > spend(180d, channel: \"store\") and orders >= 2;\n"
    "segment grocery_regulars: orders(90d, category: \"grocery\") >= 2;\n"
    "segment big_baskets: average_order_value >= 100.00 and refunds > -50.00;\n"
    "segment us_millennials: attr(\"country\") == \"US\" and attr(\"birth_year\") between 1981 and 1996\n"
    "  and orders >= 1;\n"
    "segment sms_winback: days_since_last_purchase between 120 and 365 and net_revenue * 2 >= 300.00\n"
    "  and consent(\"sms\") and not in(vip_thank_you);\n"
    "segment one_time_buyers: orders == 1 and days_since_last_purchase > 60 and refunds == 0;\n";

static unsigned long members_total;

static int eval_cb(const char *id, const unsigned char *member, size_t n, void *payload)
{
    (void)id;
    (void)payload;
    for (size_t k = 0; k < n; k++)
        members_total += member[k];
    return 0;
}

static int delta_cb(const char *id, size_t seg, int entered, void *payload)
{
    (void)id;
    (void)seg;
    (void)entered;
    (*(unsigned long *)payload)++;
    return 0;
}

static void report(const char *phase, size_t customers, double secs, const counts *c,
                   const counts *before, bool per_customer)
{
    double cpu = cpu_s() - cpu0;
    printf("phase=%s customers=%zu seconds=%.4f cpu_seconds=%.4f", phase, customers, secs, cpu);
    if (per_customer)
        printf(" cpu_ns_per_customer=%.1f", cpu * 1e9 / (double)customers);
    printf(" allocations=%lu alloc_bytes=%llu\n", c->calls - before->calls,
           c->bytes - before->bytes);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    size_t ncust = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1000000;
    rng_state = argc > 2 ? strtoull(argv[2], NULL, 10) : 42;
    if (ncust < 10)
        ncust = 10;
    counts cnt = { 0, 0 };
    seg_allocator al = { sizeof(seg_allocator), c_malloc, c_realloc, c_free, &cnt };
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    o.allocator = &al;
    seg_db *db = NULL;
    int rc = seg_db_open(&db, ":memory:", &o);
    if (rc != SEG_OK)
        die(NULL, "open", rc);

    double t = now_s();
    cpu0 = cpu_s();
    counts c0 = cnt;
    generate(db, ncust);
    report("generate_and_ingest", (size_t)seg_customer_count(db), now_s() - t, &cnt, &c0, false);
    printf("events=%llu\n", (unsigned long long)seg_event_count(db));

    c0 = cnt;
    t = now_s();
    cpu0 = cpu_s();
    seg_segdef *def = NULL;
    rc = seg_segdef_compile(&def, db, definitions, strlen(definitions));
    if (rc != SEG_OK)
        die(db, "compile", rc);
    report("compile", 0, now_s() - t, &cnt, &c0, false);
    size_t nseg = seg_segdef_segment_count(def);
    printf("segments=%zu\n", nseg);

    int64_t now = T0 + SPAN + 1;
    size_t customers = (size_t)seg_customer_count(db);
    int repeat = argc > 3 ? atoi(argv[3]) : 3;
    for (int rep = 0; rep < repeat; rep++) {
        members_total = 0;
        c0 = cnt;
        t = now_s();
        cpu0 = cpu_s();
        if ((rc = seg_segdef_eval(def, now, 0, eval_cb, NULL)) != SEG_OK)
            die(db, "eval", rc);
        report("eval_all_segments", customers, now_s() - t, &cnt, &c0, true);
    }
    printf("memberships=%lu\n", members_total);

    c0 = cnt;
    t = now_s();
    cpu0 = cpu_s();
    if ((rc = seg_segdef_eval(def, now - 200 * 86400, 0, eval_cb, NULL)) != SEG_OK)
        die(db, "eval", rc);
    report("eval_as_of_200_days_earlier", customers, now_s() - t, &cnt, &c0, true);

    c0 = cnt;
    t = now_s();
    cpu0 = cpu_s();
    if ((rc = seg_segdef_eval(def, now, SEG_SEGDEF_SORTED, eval_cb, NULL)) != SEG_OK)
        die(db, "eval", rc);
    report("eval_sorted_by_id", customers, now_s() - t, &cnt, &c0, true);

    unsigned long changes = 0;
    c0 = cnt;
    t = now_s();
    cpu0 = cpu_s();
    if ((rc = seg_segdef_refresh(def, now, SEG_SEGDEF_FULL, delta_cb, &changes, NULL)) != SEG_OK)
        die(db, "refresh", rc);
    report("refresh_full", customers, now_s() - t, &cnt, &c0, true);

    /* 10,000 new events of 5,000 customers, then a refresh of those only */
    seg_event e = SEG_EVENT_INIT;
    char id[24], cid[24];
    for (int k = 0; k < 10000; k++) {
        snprintf(id, sizeof id, "N%07d", k);
        snprintf(cid, sizeof cid, "C%07zu", (size_t)(rnd() % (uint64_t)(ncust / 2)) * 2 % ncust);
        e.kind = SEG_EVENT_PURCHASE;
        e.event_id = id;
        e.customer_id = cid;
        e.ts = now - 3600;
        e.amount = 5000;
        e.order_id = NULL;
        if ((rc = seg_event_ingest(db, &e)) != SEG_OK)
            die(db, "ingest", rc);
    }
    seg_segdef_stats st = SEG_SEGDEF_STATS_INIT;
    changes = 0;
    c0 = cnt;
    t = now_s();
    cpu0 = cpu_s();
    if ((rc = seg_segdef_refresh(def, now, 0, delta_cb, &changes, &st)) != SEG_OK)
        die(db, "refresh", rc);
    report("refresh_touched", (size_t)st.evaluated, now_s() - t, &cnt, &c0, true);
    printf("touched_full=%u changes=%lu\n", st.full, changes);

    seg_segdef_report r = SEG_SEGDEF_REPORT_INIT;
    c0 = cnt;
    t = now_s();
    cpu0 = cpu_s();
    if ((rc = seg_segdef_report_get(&r, def, now)) != SEG_OK)
        die(db, "report", rc);
    report("report", customers, now_s() - t, &cnt, &c0, true);

    unsigned char m[64];
    c0 = cnt;
    t = now_s();
    cpu0 = cpu_s();
    int n1 = 100000;
    for (int k = 0; k < n1; k++) {
        snprintf(cid, sizeof cid, "C%07zu", (size_t)(rnd() % (uint64_t)ncust));
        if ((rc = seg_segdef_eval_customer(m, nseg, def, cid, now)) != SEG_OK)
            die(db, "eval_customer", rc);
    }
    report("eval_one_customer", (size_t)n1, now_s() - t, &cnt, &c0, true);

    seg_segdef_free(def);
    seg_db_close(db);
    return 0;
}
