/*
 * Lifetime-value benchmark: fit and scoring times.
 *
 *   bench_clv [DATA_DIR] [CUSTOMERS] [SEED]
 *
 * 1. the CDNOW sample (DATA_DIR/cdnow_sample.csv, default ../shared/data;
 *    skipped when absent): fit times of BG/NBD, MBG/NBD, Pareto/NBD and
 *    Gamma-Gamma (from the summaries; each fit groups, runs 3 starting
 *    points and checks the Hessian), the best of several runs;
 * 2. CUSTOMERS (default 1,000,000) customers simulated from BG/NBD with
 *    CDNOW's parameters (bench/clvsim.h, seed SEED, default 42): first
 *    purchases over 12 weeks, whole days, a 39-week calibration period, time
 *    in weeks: the BG/NBD fit time, and the time to score every customer
 *    (P(alive), expected purchases over 52 weeks, expected spend and value
 *    discounted at 10% a year).
 *
 * One line per measurement:
 *   what=... customers=... cpu_ms=... [details]
 * Times are CPU time of this process (user + system): on a shared machine
 * wall time also counts other processes.  Targets (one core): BG/NBD < 5 ms
 * and Pareto/NBD < 30 ms on CDNOW, BG/NBD < 500 ms on 1M customers, scoring
 * 1M customers < 300 ms.
 */
#include <segment.h>

#include "clvsim.h"

#include <stdbool.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

static double cpu_ms(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return 1e3 * ((double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
                  (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6);
}

typedef struct cols {
    size_t n, cap;
    double *x, *tx, *T, *m;
} cols;

static void grow(cols *c, size_t n)
{
    if (n <= c->cap)
        return;
    c->cap = n;
    c->x = realloc(c->x, n * sizeof(double));
    c->tx = realloc(c->tx, n * sizeof(double));
    c->T = realloc(c->T, n * sizeof(double));
    c->m = realloc(c->m, n * sizeof(double));
    if (!c->x || !c->tx || !c->T || !c->m) {
        fprintf(stderr, "bench_clv: out of memory\n");
        exit(1);
    }
}

static int collect(const seg_clv_summary *s, void *p)
{
    cols *c = p;
    grow(c, c->n ? (c->n == c->cap ? 2 * c->cap : c->cap) : 4096);
    c->x[c->n] = s->frequency;
    c->tx[c->n] = s->recency;
    c->T[c->n] = s->age;
    c->m[c->n] = s->monetary;
    c->n++;
    return 0;
}

static seg_clv_columns columns(const cols *c)
{
    seg_clv_columns k = SEG_CLV_COLUMNS_INIT;
    k.n = c->n;
    k.frequency = c->x;
    k.recency = c->tx;
    k.age = c->T;
    k.monetary = c->m;
    return k;
}

/* best CPU time of `runs` fits; the last report in *r */
static double time_fit(uint32_t kind, bool spend, const seg_clv_columns *k, int runs,
                       seg_clv_fit_report *r)
{
    double best = 1e30;
    for (int i = 0; i < runs; i++) {
        seg_clv_model *m = NULL;
        seg_clv_model_new(&m, kind, SEG_CLV_WEEK, NULL);
        seg_clv_fit_report rep = SEG_CLV_FIT_REPORT_INIT;
        double t0 = cpu_ms();
        int rc = spend ? seg_clv_fit_spend(m, k, NULL, &rep) : seg_clv_fit(m, k, NULL, &rep);
        double t = cpu_ms() - t0;
        if (rc != SEG_OK) {
            fprintf(stderr, "bench_clv: fit failed: %s\n", seg_clv_model_errmsg(m));
            exit(1);
        }
        if (t < best)
            best = t;
        *r = rep;
        seg_clv_model_free(m);
    }
    return best;
}

static void print_fit(const char *what, size_t n, double ms, const seg_clv_fit_report *r, int dim)
{
    printf("what=%s customers=%zu cpu_ms=%.2f groups=%llu iterations=%u evaluations=%u ll=%.4f params=",
           what, n, ms, (unsigned long long)r->groups, (unsigned)r->iterations,
           (unsigned)r->evaluations, r->log_likelihood);
    for (int i = 0; i < dim; i++)
        printf("%s%.6g", i ? "," : "", r->params[i]);
    printf("\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "../shared/data";
    size_t n = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 1000000;
    uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 42;
    seg_clv_fit_report r;

    /* 1. CDNOW */
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/cdnow_sample.csv", dir);
    if (stat(path, &st) == 0) {
        seg_db *db = NULL;
        seg_db_open(&db, ":memory:", NULL);
        if (seg_event_import_csv_file(db, path, NULL, NULL) != SEG_OK) {
            fprintf(stderr, "bench_clv: %s\n", seg_errmsg(db));
            return 1;
        }
        cols c;
        memset(&c, 0, sizeof c);
        seg_clv_summary_options o = SEG_CLV_SUMMARY_OPTIONS_INIT;
        o.unit = SEG_CLV_WEEK;
        seg_time_parse(&o.calibration_end, "1997-09-30", 10);
        double t0 = cpu_ms();
        seg_clv_summary_foreach(db, &o, collect, &c, NULL);
        double ts = cpu_ms() - t0;
        seg_db_close(db);
        printf("what=cdnow_summaries customers=%zu cpu_ms=%.2f\n", c.n, ts);
        seg_clv_columns k = columns(&c);
        print_fit("cdnow_fit_bgnbd", c.n, time_fit(SEG_CLV_BGNBD, false, &k, 20, &r), &r, 4);
        print_fit("cdnow_fit_mbgnbd", c.n, time_fit(SEG_CLV_MBGNBD, false, &k, 20, &r), &r, 4);
        print_fit("cdnow_fit_pareto", c.n, time_fit(SEG_CLV_PARETO, false, &k, 10, &r), &r, 4);
        print_fit("cdnow_fit_gamma_gamma", c.n, time_fit(SEG_CLV_BGNBD, true, &k, 20, &r), &r, 3);
        free(c.x);
        free(c.tx);
        free(c.T);
        free(c.m);
    } else {
        printf("what=cdnow skipped: %s not found\n", path);
    }

    /* 2. a simulated population */
    clvsim_spec sp = { CLVSIM_BGNBD, { 0.243, 4.414, 0.793, 2.426 }, { 6.25, 3.74, 15.44 }, 12, 39, 0, 7 };
    cols c;
    memset(&c, 0, sizeof c);
    grow(&c, n ? n : 1);
    double t0 = cpu_ms();
    for (size_t i = 0; i < n; i++) {
        clvsim_customer cu;
        clvsim_one(&sp, seed, i, &cu);
        c.x[i] = cu.x;
        c.tx[i] = cu.tx;
        c.T[i] = cu.T;
        c.m[i] = cu.monetary;
    }
    c.n = n;
    printf("what=simulate_bgnbd customers=%zu cpu_ms=%.1f seed=%llu\n", n, cpu_ms() - t0,
           (unsigned long long)seed);
    seg_clv_columns k = columns(&c);
    print_fit("sim_fit_bgnbd", n, time_fit(SEG_CLV_BGNBD, false, &k, 3, &r), &r, 4);

    seg_clv_model *m = NULL;
    seg_clv_model_new(&m, SEG_CLV_BGNBD, SEG_CLV_WEEK, NULL);
    seg_clv_model_set_params(m, r.params, 4);
    seg_clv_fit_report rs;
    double tgg = time_fit(SEG_CLV_BGNBD, true, &k, 1, &rs);
    print_fit("sim_fit_gamma_gamma", n, tgg, &rs, 3);
    seg_clv_model_set_spend_params(m, rs.params, 3);
    double *pa = malloc(n * sizeof *pa), *ey = malloc(n * sizeof *ey), *es = malloc(n * sizeof *es),
           *cl = malloc(n * sizeof *cl);
    seg_clv_value_options vo = SEG_CLV_VALUE_OPTIONS_INIT;
    vo.horizon = 52;
    vo.discount_rate = 0.1;
    vo.discount_period = 52;
    double best = 1e30;
    for (int i = 0; i < 3; i++) {
        t0 = cpu_ms();
        if (seg_clv_predict(pa, ey, es, cl, m, &k, &vo) != SEG_OK) {
            fprintf(stderr, "bench_clv: %s\n", seg_clv_model_errmsg(m));
            return 1;
        }
        double t = cpu_ms() - t0;
        if (t < best)
            best = t;
    }
    double sum_e = 0, sum_v = 0;
    for (size_t i = 0; i < n; i++) {
        sum_e += ey[i];
        sum_v += cl[i];
    }
    printf("what=sim_score customers=%zu cpu_ms=%.1f outputs=p_alive,expected_purchases(52w),"
           "expected_spend,clv(52w,10%%/year) mean_expected=%.4f mean_clv=%.4f\n", n, best, sum_e / (double)n,
           sum_v / (double)n);
    seg_clv_model_free(m);
    free(pa);
    free(ey);
    free(es);
    free(cl);
    free(c.x);
    free(c.tx);
    free(c.T);
    free(c.m);
    return 0;
}
