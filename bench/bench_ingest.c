/*
 * Ingestion benchmark: events per second and resident bytes per event,
 * through the C API (events generated in memory) or through the CSV import
 * (a file such as the one ../shared/bench/gen_events.py writes).
 *
 *   bench_ingest api N [SEED]    generate N events, ingest them in batches
 *                                of 10,000, then ingest them all again
 *                                (every one a duplicate: the idempotency check)
 *   bench_ingest csv FILE        import FILE, then import it again
 *
 * Each run prints one line per phase:
 *   phase=ingest events=... seconds=... events_per_s=... cpu_seconds=...
 *   events_per_cpu_s=... rss_bytes_per_event=...
 * Resident bytes per event = (RSS after the first ingest - RSS before the
 * database was opened) / events.  Single-threaded, like the library.
 */
#include <segment.h>
#include "bench-events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdbool.h>
#include <unistd.h>
#include <sys/resource.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* CPU time of this process (user + system): on a shared machine the wall
 * time also counts time the core spent on other processes */
static double cpu_s(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
           (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * sysconf(_SC_PAGESIZE);
}

static void die(seg_db *db, const char *what, int rc)
{
    fprintf(stderr, "bench_ingest: %s: %s (%s)\n", what, db ? seg_errmsg(db) : "", seg_errstr(rc));
    exit(1);
}

static void report(const char *phase, size_t events, double secs, double cpu, long rss_delta)
{
    printf("phase=%s events=%zu seconds=%.3f events_per_s=%.0f cpu_seconds=%.3f "
           "events_per_cpu_s=%.0f", phase, events, secs, (double)events / secs, cpu,
           (double)events / cpu);
    if (rss_delta >= 0)
        printf(" rss_bytes_per_event=%.1f", (double)rss_delta / (double)events);
    printf("\n");
    fflush(stdout);
}

static int run_api(size_t n, uint64_t seed)
{
    rng_state = seed;
    char *pool;
    seg_event *ev = generate(n, &pool);
    if (!ev)
        die(NULL, "generate", SEG_ENOMEM);
    long rss0 = rss_bytes();
    seg_db *db;
    int rc = seg_db_open(&db, ":memory:", NULL);
    if (rc)
        die(NULL, "open", rc);
    const size_t batch = 10000;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    for (int pass = 0; pass < 2; pass++) {
        uint64_t acc = 0, dup = 0;
        double t = now_s(), c = cpu_s();
        for (size_t i = 0; i < n; i += batch) {
            size_t m = n - i < batch ? n - i : batch;
            if ((rc = seg_event_ingest_batch(db, ev + i, m, NULL, &st)) != SEG_OK)
                die(db, "ingest", rc);
            acc += st.accepted;
            dup += st.duplicates;
        }
        t = now_s() - t;
        c = cpu_s() - c;
        if (pass == 0 && (acc != n || seg_event_count(db) != n)) {
            fprintf(stderr, "bench_ingest: accepted %llu of %zu\n", (unsigned long long)acc, n);
            return 1;
        }
        if (pass == 1 && dup != n) {
            fprintf(stderr, "bench_ingest: re-ingest found %llu duplicates of %zu\n",
                    (unsigned long long)dup, n);
            return 1;
        }
        report(pass == 0 ? "api_ingest" : "api_reingest_duplicates", n, t, c,
               pass == 0 ? rss_bytes() - rss0 : -1);
    }
    printf("customers=%llu events=%llu\n", (unsigned long long)seg_customer_count(db),
           (unsigned long long)seg_event_count(db));
    seg_db_close(db);
    free(ev);
    free(pool);
    return 0;
}

static int run_csv(const char *path)
{
    long rss0 = rss_bytes();
    seg_db *db;
    int rc = seg_db_open(&db, ":memory:", NULL);
    if (rc)
        die(NULL, "open", rc);
    for (int pass = 0; pass < 2; pass++) {
        seg_ingest_stats st = SEG_INGEST_STATS_INIT;
        double t = now_s(), c = cpu_s();
        if ((rc = seg_event_import_csv_file(db, path, NULL, &st)) != SEG_OK)
            die(db, "import", rc);
        t = now_s() - t;
        c = cpu_s() - c;
        size_t rows = (size_t)(st.accepted + st.duplicates);
        if (pass == 1 && st.accepted != 0) {
            fprintf(stderr, "bench_ingest: re-import stored %llu new events\n",
                    (unsigned long long)st.accepted);
            return 1;
        }
        report(pass == 0 ? "csv_import" : "csv_reimport_duplicates", rows, t, c,
               pass == 0 ? rss_bytes() - rss0 : -1);
    }
    printf("customers=%llu events=%llu\n", (unsigned long long)seg_customer_count(db),
           (unsigned long long)seg_event_count(db));
    seg_db_close(db);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "api") == 0)
        return run_api((size_t)strtoull(argv[2], NULL, 10),
                       argc > 3 ? strtoull(argv[3], NULL, 10) : 42);
    if (argc == 3 && strcmp(argv[1], "csv") == 0)
        return run_csv(argv[2]);
    fprintf(stderr, "usage: bench_ingest api N [SEED] | bench_ingest csv FILE\n");
    return 2;
}
