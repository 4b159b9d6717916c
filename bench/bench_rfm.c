/*
 * bench_rfm: the RFM step on events already in memory.
 *
 *   bench_rfm EVENTS.csv [RUNS [FIGURE]]
 *
 * Imports the CSV once (timed, for the record), then times, best of RUNS
 * (default 3):
 *   calibrate          seg_rfm_calibrate, defaults: values from the store's
 *                      aggregates, three quantile calibrations
 *   foreach            seg_rfm_foreach, creation order, a callback that
 *                      reads every row: values, calibration and scores
 *   foreach_sorted     the same in customer_id order (what `segment rfm`
 *                      does before formatting)
 *   foreach_window     --window 365d: one pass over the events
 *   foreach_past       as of 90 days before the default: one pass over the
 *                      events
 *   get                seg_rfm_get with the calibrated thresholds and an
 *                      explicit as_of, every customer once (re-scoring one
 *                      customer after an event): ns per call
 * Prints one line per figure, "name seconds [extra]", and the peak RSS.
 * With FIGURE, only that one (and the import) runs: for profiling.
 */
#include <segment.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(seg_db *db, const char *what, int rc)
{
    fprintf(stderr, "bench_rfm: %s: %s\n", what, db ? seg_errmsg(db) : seg_errstr(rc));
    exit(1);
}

typedef struct acc {
    uint64_t rows, active, sum;
} acc;

static int visit(const seg_rfm_info *c, void *payload)
{
    acc *a = payload;
    a->rows++;
    a->active += c->status == SEG_RFM_ACTIVE;
    a->sum += c->r + c->f * 7u + c->m * 49u + (uint64_t)c->frequency;
    return 0;
}

typedef struct ids {
    char **v;
    size_t n, cap;
} ids;

static int collect(const seg_customer_info *c, void *payload)
{
    ids *l = payload;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v)
            return 1;
    }
    l->v[l->n] = strdup(c->customer_id);
    if (!l->v[l->n])
        return 1;
    l->n++;
    return 0;
}

static double run_foreach(seg_db *db, const seg_rfm_options *o, uint32_t flags, int runs,
                          acc *out)
{
    double best = 1e30;
    for (int k = 0; k < runs; k++) {
        acc a = { 0, 0, 0 };
        double t = now();
        int rc = seg_rfm_foreach(NULL, db, o, flags, visit, &a);
        t = now() - t;
        if (rc != SEG_OK)
            die(db, "seg_rfm_foreach", rc);
        if (t < best)
            best = t;
        *out = a;
    }
    return best;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_rfm EVENTS.csv [RUNS [FIGURE]]\n");
        return 2;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 3;
    if (runs < 1)
        runs = 1;
    const char *only = argc > 3 ? argv[3] : NULL;
#define WANT(name) (!only || strcmp(only, name) == 0)
    seg_db *db = NULL;
    int rc = seg_db_open(&db, ":memory:", NULL);
    if (rc != SEG_OK)
        die(NULL, "seg_db_open", rc);
    double t = now();
    if ((rc = seg_event_import_csv_file(db, argv[1], NULL, NULL)) != SEG_OK)
        die(db, "import", rc);
    printf("import %.3f events=%llu customers=%llu\n", now() - t,
           (unsigned long long)seg_event_count(db), (unsigned long long)seg_customer_count(db));

    seg_rfm_options o = SEG_RFM_OPTIONS_INIT;
    seg_rfm_thresholds *th = NULL;
    double best = 1e30;
    for (int k = 0; k < (WANT("calibrate") || WANT("get") ? runs : 1); k++) {
        seg_rfm_thresholds_free(th);
        th = NULL;
        t = now();
        if ((rc = seg_rfm_calibrate(&th, db, &o)) != SEG_OK)
            die(db, "seg_rfm_calibrate", rc);
        t = now() - t;
        if (t < best)
            best = t;
    }
    if (WANT("calibrate"))
        printf("calibrate %.3f\n", best);

    acc a;
    if (WANT("foreach")) {
        t = run_foreach(db, &o, 0, runs, &a);
        printf("foreach %.3f rows=%llu active=%llu check=%llu\n", t, (unsigned long long)a.rows,
               (unsigned long long)a.active, (unsigned long long)a.sum);
    }
    if (WANT("foreach_sorted")) {
        t = run_foreach(db, &o, SEG_RFM_SORTED, runs, &a);
        printf("foreach_sorted %.3f rows=%llu\n", t, (unsigned long long)a.rows);
    }
    seg_rfm_options w = SEG_RFM_OPTIONS_INIT;
    w.window = 365 * INT64_C(86400);
    if (WANT("foreach_window")) {
        t = run_foreach(db, &w, 0, runs, &a);
        printf("foreach_window %.3f rows=%llu active=%llu\n", t, (unsigned long long)a.rows,
               (unsigned long long)a.active);
    }

    /* the default as_of, to go 90 days back from it */
    seg_rfm_info first = SEG_RFM_INFO_INIT;
    int64_t as_of = 0;
    {
        ids l = { NULL, 0, 0 };
        if (seg_customer_foreach(db, 0, collect, &l) != SEG_OK || l.n == 0)
            die(db, "seg_customer_foreach", SEG_ERROR);
        seg_rfm_options g = SEG_RFM_OPTIONS_INIT;
        g.thresholds = th;
        if ((rc = seg_rfm_get(&first, db, &g, l.v[0])) != SEG_OK)
            die(db, "seg_rfm_get", rc);
        as_of = first.as_of;
        g.as_of = as_of;
        best = 1e30;
        for (int k = 0; k < (WANT("get") ? runs : 0); k++) {
            uint64_t sum = 0;
            t = now();
            for (size_t i = 0; i < l.n; i++) {
                seg_rfm_info info = SEG_RFM_INFO_INIT;
                if ((rc = seg_rfm_get(&info, db, &g, l.v[i])) != SEG_OK)
                    die(db, "seg_rfm_get", rc);
                sum += info.r + info.f + info.m;
            }
            t = now() - t;
            if (t < best)
                best = t;
            if (sum == 0)
                printf("(no scores)\n");
        }
        if (WANT("get"))
            printf("get %.3f calls=%zu ns_per_call=%.0f\n", best, l.n, best * 1e9 / (double)l.n);
        for (size_t i = 0; i < l.n; i++)
            free(l.v[i]);
        free(l.v);
    }

    seg_rfm_options p = SEG_RFM_OPTIONS_INIT;
    p.as_of = as_of - 90 * INT64_C(86400);
    if (WANT("foreach_past")) {
        t = run_foreach(db, &p, 0, runs, &a);
        printf("foreach_past %.3f rows=%llu active=%llu\n", t, (unsigned long long)a.rows,
               (unsigned long long)a.active);
    }

    seg_rfm_thresholds_free(th);
    seg_db_close(db);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak_rss_mib %.0f\n", (double)ru.ru_maxrss / 1024.0);
    return 0;
}
