/*
 * bench/bench_outbox.c: the outbox's cost per action.
 *
 *   build/bench/bench_outbox [ACTIONS [CUSTOMERS]]        in memory
 *   build/bench/bench_outbox ACTIONS CUSTOMERS FILE.db    SQLite (synchronous=NORMAL)
 *   build/bench/bench_outbox ACTIONS CUSTOMERS journey    in memory, as the journey
 *                                                         engine emits (see below)
 *
 * Emits ACTIONS actions (default 1,000,000) for CUSTOMERS customers (default
 * 100,000, each with one of five IANA zones) in transactions of 10,000, as
 * a journey advance does: channel "email" with a 09:00-20:00 window and a
 * cap of 3 a day, every fourth action on "sms" without either.  Then
 * fetches everything, acknowledges everything (10,000 per call) and emits
 * everything again (all duplicates).  Prints the times and the bytes the
 * library holds (its allocator's count) per action queued, and per action
 * acknowledged (what deduplication keeps).  White-box: emits through
 * seg__outbox_emit.  With `journey` instead of a file: the customers exist
 * (one purchase each) and the actions come as the journey engine gives
 * them: seg__outbox_emit_many in groups of 64, the customer's index and
 * stable names passed, no cap, window or zone.
 */
#include "outbox/outbox-private.h"
#include "storage/storage-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if SEG_HAVE_SQLITE
#include <sqlite3.h>

/* one integer from a query on the file */
static long long q1(sqlite3 *h, const char *sql)
{
    sqlite3_stmt *st;
    long long v = -1;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* bytes of the outbox's records of each kind, and of the pages in use */
static void file_figures(const char *file, size_t n)
{
    sqlite3 *h;
    if (sqlite3_open_v2(file, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        return;
    long long d = q1(h, "SELECT sum(length(key) + length(data)) FROM seg_records "
                        "WHERE tbl = 'outbox' AND key LIKE 'd:%'");
    long long c = q1(h, "SELECT sum(length(key) + length(data)) FROM seg_records "
                        "WHERE tbl = 'outbox' AND key LIKE 'c:%'");
    long long used = q1(h, "SELECT (SELECT page_count FROM pragma_page_count) - "
                           "(SELECT freelist_count FROM pragma_freelist_count)") *
                     q1(h, "SELECT page_size FROM pragma_page_size");
    printf("  records after all acks: %.1f bytes per action of acknowledged identities (d:), "
           "%lld bytes of cap counters (c:); pages in use %lld bytes (customers included)\n",
           (double)d / (double)n, c, used);
    sqlite3_close(h);
}
#endif

static long long live, peak;

static void *c_malloc(size_t n, void *ud)
{
    (void)ud;
    size_t *p = malloc(n + 16);
    if (!p)
        return NULL;
    *p = n;
    live += (long long)n;
    if (live > peak)
        peak = live;
    return (char *)p + 16;
}
static void c_free(void *q, void *ud)
{
    (void)ud;
    if (!q)
        return;
    size_t *p = (size_t *)((char *)q - 16);
    live -= (long long)*p;
    free(p);
}
static void *c_realloc(void *q, size_t n, void *ud)
{
    if (!q)
        return c_malloc(n, ud);
    size_t *p = (size_t *)((char *)q - 16);
    size_t old = *p;
    size_t *r = realloc(p, n + 16);
    if (!r)
        return NULL;
    *r = n;
    live += (long long)n - (long long)old;
    if (live > peak)
        peak = live;
    return (char *)r + 16;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(seg_db *db, const char *what)
{
    fprintf(stderr, "bench_outbox: %s: %s\n", what, seg_errmsg(db));
    exit(1);
}

static int count_cb(const seg_outbox_item *it, void *payload)
{
    (void)it;
    ++*(size_t *)payload;
    return 0;
}

static bool journey_mode;
static char *jids;      /* journey mode: customer ids, 16 bytes each */
static uint32_t *jidx;  /* and their store indexes */

static size_t emit_all(seg_db *db, size_t n, size_t ncust, int want)
{
    if (journey_mode) {
        static seg__action q[64];
        static int outs[64];
        static const char *const jsteps[4] = { "1:wait>offer5#0", "2:offer5>offer10#0",
                                               "3:offer10>(exit)#0", "1:>vip#0" };
        size_t hits = 0, nq = 0;
        for (size_t k = 0; k < n;) {
            if (seg__st_begin(db) != SEG_OK)
                die(db, "begin");
            size_t end = k + 10000 < n ? k + 10000 : n;
            for (; k < end; k++) {
                seg__action *a = &q[nq];
                memset(a, 0, sizeof *a);
                /* (the engine knows the id and index: made before timing) */
                a->customer_id = jids + (k % ncust) * 16;
                a->cust_index = jidx[k % ncust] + 1;
                a->journey = (k / ncust) % 2 ? "core_reactivation" : "new_customers";
                a->run = 1 + k / (ncust * 2 * 4);
                a->step = jsteps[(k / (ncust * 2)) % 4];
                a->time = INT64_C(1704067200) + (int64_t)(k / ncust) * 3600 + (int64_t)(k % 3600);
                a->state = "offer5";
                a->action = "email:discount_5";
                a->channel = "email";
                a->params = "discount=5";
                a->stable_names = true;
                if (++nq == 64 || k + 1 == end) {
                    size_t done;
                    if (seg__outbox_emit_many(db, q, nq, outs, &done) != SEG_OK)
                        die(db, "emit");
                    for (size_t x = 0; x < nq; x++)
                        hits += outs[x] == want;
                    nq = 0;
                }
            }
            if (seg__st_commit(db) != SEG_OK)
                die(db, "commit");
            seg__modules_txn_end(db, true);
        }
        return hits;
    }
    static const char *const steps[] = { "wait>offer5", "offer5>offer10", "offer10:enter",
                                         "vip:invite" };
    size_t hits = 0;
    char cust[32];
    for (size_t k = 0; k < n;) {
        if (seg__st_begin(db) != SEG_OK)
            die(db, "begin");
        size_t end = k + 10000 < n ? k + 10000 : n;
        for (; k < end; k++) {
            seg__action a;
            memset(&a, 0, sizeof a);
            snprintf(cust, sizeof cust, "c%07zu", k % ncust);
            a.customer_id = cust;
            a.journey = (k / ncust) % 2 ? "core_reactivation" : "new_customers";
            a.run = 1 + k / (ncust * 2 * 4);
            a.step = steps[(k / (ncust * 2)) % 4];
            a.time = INT64_C(1704067200) + (int64_t)(k / ncust) * 3600 + (int64_t)(k % 3600);
            a.state = "offer5";
            a.action = "email:discount_5";
            a.channel = k % 4 == 3 ? "sms" : "email";
            a.params = "discount=5";
            int outcome;
            if (seg__outbox_emit(db, &a, &outcome, NULL) != SEG_OK)
                die(db, "emit");
            hits += outcome == want;
        }
        if (seg__st_commit(db) != SEG_OK)
            die(db, "commit");
        seg__modules_txn_end(db, true);
    }
    return hits;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    size_t ncust = argc > 2 ? strtoull(argv[2], NULL, 10) : 100000;
    const char *file = argc > 3 ? argv[3] : NULL;
    if (file && strcmp(file, "journey") == 0) {
        journey_mode = true;
        file = NULL;
    }
    if (!n || !ncust) {
        fprintf(stderr, "usage: bench_outbox [ACTIONS [CUSTOMERS [FILE.db]]]\n");
        return 2;
    }
    seg_allocator al = { sizeof al, c_malloc, c_realloc, c_free, NULL };
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    o.allocator = &al;
    seg_storage_backend *be = NULL;
    if (file) {
        seg_storage_sqlite_options so = SEG_STORAGE_SQLITE_OPTIONS_INIT;
        so.flags = SEG_STORAGE_SQLITE_SYNC_NORMAL;
        if (seg_storage_sqlite_new(&be, &so) != SEG_OK)
            return 1;
        o.storage = be;
        remove(file);
    }
    seg_db *db;
    if (seg_db_open(&db, file ? file : ":memory:", &o) != SEG_OK)
        return 1;
    static const char *const zones[] = { "America/New_York", "Europe/London",
                                         "Australia/Lord_Howe", "Asia/Kolkata", "UTC" };
    char cust[32];
    for (size_t c = 0; c < ncust && !journey_mode; c++) {
        snprintf(cust, sizeof cust, "c%07zu", c);
        seg_value v = { SEG_TYPE_STRING, 0, 0, zones[c % 5] };
        if (seg_customer_set_attr(db, cust, "timezone", &v) != SEG_OK)
            die(db, "attribute");
    }
    for (size_t c = 0; c < ncust && journey_mode; c++) {
        char oid[32];
        snprintf(cust, sizeof cust, "c%07zu", c);
        snprintf(oid, sizeof oid, "o%07zu", c);
        seg_event e = SEG_EVENT_INIT;
        e.kind = SEG_EVENT_PURCHASE;
        e.customer_id = cust;
        e.event_id = oid;
        e.order_id = oid;
        e.ts = INT64_C(1704067200) - 86400;
        e.amount = 1000;
        if (seg_event_ingest(db, &e) != SEG_OK)
            die(db, "ingest");
    }
    if (journey_mode) {
        if (ncust > 10000000) {
            fprintf(stderr, "bench_outbox: journey: at most 10,000,000 customers\n");
            return 2;
        }
        jids = malloc(ncust * 16);
        jidx = malloc(ncust * sizeof *jidx);
        if (!jids || !jidx)
            return 1;
        for (size_t c = 0; c < ncust; c++) {
            snprintf(jids + c * 16, 16, "c%07u", (unsigned)(c % 10000000));
            jidx[c] = seg__cust_find(&db->store, seg__cstr(jids + c * 16));
        }
    }
    if (!journey_mode && (seg_outbox_set_window(db, "email", 9 * 60, 20 * 60) != SEG_OK ||
                          seg_outbox_set_cap(db, "email", 3, 86400) != SEG_OK))
        die(db, "config");
    long long base = live;
    double t0 = now_s(), c0 = cpu_s();
    size_t suppressed = emit_all(db, n, ncust, SEG__EMIT_SUPPRESSED);
    double t1 = now_s(), c1 = cpu_s();
    long long queued_bytes = live - base;
    size_t seen = 0;
    if (seg_outbox_fetch(NULL, db, INT64_MAX, SEG_OUTBOX_PENDING | SEG_OUTBOX_SUPPRESSED, 0,
                         count_cb, &seen) != SEG_OK)
        die(db, "fetch");
    double t2 = now_s();
    uint64_t *seqs = malloc(10000 * sizeof *seqs);
    for (uint64_t s = 1; s <= n; s += 10000) {
        size_t m = 0;
        for (uint64_t q = s; q < s + 10000 && q <= n; q++)
            seqs[m++] = q;
        if (seg_outbox_ack(NULL, db, seqs, m) != SEG_OK)
            die(db, "ack");
    }
    free(seqs);
    double t3 = now_s(), c3 = cpu_s();
    long long acked_bytes = live - base;
    size_t dups = emit_all(db, n, ncust, SEG__EMIT_DUPLICATE);
    double t4 = now_s(), c4 = cpu_s();
    printf("outbox, %s: %zu actions, %zu customers (%zu suppressed by the cap)\n",
           file ? "SQLite" : journey_mode ? "in memory, as the journey engine emits"
                                          : "in memory", n, ncust, suppressed);
    printf("  emit (10k per transaction): %.3f s, %.0f ns/action (cpu %.0f ns/action)\n",
           t1 - t0, (t1 - t0) * 1e9 / (double)n, (c1 - c0) * 1e9 / (double)n);
    printf("  fetch all:                  %.3f s (%zu entries)\n", t2 - t1, seen);
    printf("  ack (10k per call):         %.3f s, %.0f ns/action\n", t3 - t2,
           (t3 - t2) * 1e9 / (double)n);
    printf("  emit again (duplicates):    %.3f s, %.0f ns/action (cpu %.0f; %zu duplicates)\n",
           t4 - t3, (t4 - t3) * 1e9 / (double)n, (c4 - c3) * 1e9 / (double)n, dups);
    printf("  library memory per queued action:       %.1f bytes\n",
           (double)queued_bytes / (double)n);
    printf("  library memory per acknowledged action: %.1f bytes (dedupe set, cap counters)\n",
           (double)acked_bytes / (double)n);
    seg_db_close(db);
    free(jids);
    free(jidx);
    if (file) {
        FILE *f = fopen(file, "rb");
        if (f) {
            fseek(f, 0, SEEK_END);
            printf("  file after all acks: %ld bytes (free pages of the deleted entries "
                   "included)\n", ftell(f));
            fclose(f);
        }
#if SEG_HAVE_SQLITE
        file_figures(file, n);
#endif
        seg_storage_sqlite_free(be);
    }
    return dups == n ? 0 : 1;
}
