/*
 * examples/clv_holdout.c: the calibration/holdout check of a lifetime-value
 * model.  Fit on the purchases up to the calibration end, predict each
 * customer's purchases in the holdout period, and compare with what they
 * actually bought, per frequency bucket (the "conditional expectations"
 * table of Fader, Hardie and Lee 2005).
 *
 *   clv_holdout EVENTS.csv CALIBRATION_END HOLDOUT_END [bgnbd|mbgnbd|pareto] [day|week]
 *
 * for example, on the CDNOW sample (39 weeks, then 39 more):
 *
 *   clv_holdout cdnow_sample.csv 1997-09-30 1998-06-30 bgnbd week
 *
 * Both ends are inclusive UTC days.  Public API only.
 */
#include <segment.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 8 /* frequency 0 .. 6, then 7 and more */

typedef struct data {
    size_t n, cap;
    double *x, *tx, *T, *actual;
} data;

static int collect(const seg_clv_summary *s, void *payload)
{
    data *d = payload;
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 1024;
        double *x = realloc(d->x, cap * sizeof *x), *tx = realloc(d->tx, cap * sizeof *tx);
        double *T = realloc(d->T, cap * sizeof *T), *a = realloc(d->actual, cap * sizeof *a);
        if (x)
            d->x = x;
        if (tx)
            d->tx = tx;
        if (T)
            d->T = T;
        if (a)
            d->actual = a;
        if (!x || !tx || !T || !a)
            return 1; /* stop: out of memory, noticed below */
        d->cap = cap;
    }
    d->x[d->n] = s->frequency;
    d->tx[d->n] = s->recency;
    d->T[d->n] = s->age;
    d->actual[d->n] = (double)s->holdout_frequency;
    d->n++;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 6) {
        fprintf(stderr, "usage: %s EVENTS.csv CALIBRATION_END HOLDOUT_END [bgnbd|mbgnbd|pareto] [day|week]\n",
                argv[0]);
        return 2;
    }
    const char *model_name = argc > 4 ? argv[4] : "bgnbd", *unit_name = argc > 5 ? argv[5] : "week";
    uint32_t kind = strcmp(model_name, "pareto") == 0   ? SEG_CLV_PARETO
                    : strcmp(model_name, "mbgnbd") == 0 ? SEG_CLV_MBGNBD
                                                        : SEG_CLV_BGNBD;
    uint32_t unit = strcmp(unit_name, "day") == 0 ? SEG_CLV_DAY : SEG_CLV_WEEK;
    double unit_days = unit == SEG_CLV_DAY ? 1.0 : 7.0;

    seg_clv_summary_options o = SEG_CLV_SUMMARY_OPTIONS_INIT;
    o.unit = unit;
    if (seg_time_parse(&o.calibration_end, argv[2], strlen(argv[2])) != SEG_OK ||
        seg_time_parse(&o.holdout_end, argv[3], strlen(argv[3])) != SEG_OK) {
        fprintf(stderr, "clv_holdout: bad time (use 1997-09-30)\n");
        return 2;
    }
    /* the holdout's length in model units, whole days as the summaries count them */
    double days = (double)(o.holdout_end / 86400 - o.calibration_end / 86400);
    double horizon = days / unit_days;

    seg_db *db = NULL;
    if (seg_db_open(&db, ":memory:", NULL) != SEG_OK)
        return 1;
    if (seg_event_import_csv_file(db, argv[1], NULL, NULL) != SEG_OK) {
        fprintf(stderr, "clv_holdout: %s\n", seg_errmsg(db));
        seg_db_close(db);
        return 1;
    }
    data d;
    memset(&d, 0, sizeof d);
    seg_clv_summary_stats st = SEG_CLV_SUMMARY_STATS_INIT;
    int rc = seg_clv_summary_foreach(db, &o, collect, &d, &st);
    seg_db_close(db);
    if (rc != SEG_OK || d.n != st.customers) {
        fprintf(stderr, "clv_holdout: summaries failed\n");
        return 1;
    }

    seg_clv_model *m = NULL;
    seg_clv_model_new(&m, kind, unit, NULL);
    seg_clv_columns c = SEG_CLV_COLUMNS_INIT;
    c.n = d.n;
    c.frequency = d.x;
    c.recency = d.tx;
    c.age = d.T;
    seg_clv_fit_report r = SEG_CLV_FIT_REPORT_INIT;
    if (seg_clv_fit(m, &c, NULL, &r) != SEG_OK) {
        fprintf(stderr, "clv_holdout: %s\n", seg_clv_model_errmsg(m));
        seg_clv_model_free(m);
        return 1;
    }
    /* E[Y(horizon)] for every customer at once */
    double *pred = malloc((d.n + 1) * sizeof *pred);
    seg_clv_value_options vo = SEG_CLV_VALUE_OPTIONS_INIT;
    vo.horizon = horizon;
    if (!pred || seg_clv_predict(NULL, pred, NULL, NULL, m, &c, &vo) != SEG_OK) {
        fprintf(stderr, "clv_holdout: %s\n", pred ? seg_clv_model_errmsg(m) : "out of memory");
        return 1;
    }
    double n[BUCKETS] = { 0 }, act[BUCKETS] = { 0 }, exp_[BUCKETS] = { 0 }, ta = 0, tp = 0;
    for (size_t i = 0; i < d.n; i++) {
        int b = d.x[i] < BUCKETS - 1 ? (int)d.x[i] : BUCKETS - 1;
        n[b]++;
        act[b] += d.actual[i];
        exp_[b] += pred[i];
        ta += d.actual[i];
        tp += pred[i];
    }
    printf("%s fitted on %zu customers (%llu repeat buyers), log-likelihood %.4f\n", model_name, d.n,
           (unsigned long long)st.repeat_buyers, r.log_likelihood);
    printf("holdout: %.0f days (%g %ss); mean purchases per customer in it:\n", days, horizon, unit_name);
    printf("%-12s %9s %10s %10s\n", "frequency", "customers", "actual", "predicted");
    for (int b = 0; b < BUCKETS; b++) {
        if (!n[b])
            continue;
        char label[16];
        snprintf(label, sizeof label, b == BUCKETS - 1 ? "%d+" : "%d", b);
        printf("%-12s %9.0f %10.3f %10.3f\n", label, n[b], act[b] / n[b], exp_[b] / n[b]);
    }
    printf("%-12s %9zu %10.0f %10.1f  (total purchases)\n", "all", d.n, ta, tp);
    free(pred);
    free(d.x);
    free(d.tx);
    free(d.T);
    free(d.actual);
    seg_clv_model_free(m);
    return 0;
}
