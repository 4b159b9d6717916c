/*
 * demo: import the bundled sample and print a per-customer summary.
 *
 *   demo EVENTS.csv CUSTOMERS.csv
 *
 * A small program to copy from: open an in-memory database, import events
 * and customer attributes from CSV, walk the customers, read attributes and
 * consent, format money and times, and report errors from the handle.
 */
#include <segment.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One row of the table, copied out of the iteration callback: the info the
 * callback receives is only valid during the call. */
typedef struct row {
    char *id;
    uint64_t orders, days;
    int64_t first, last, revenue, net;
} row;

typedef struct table {
    row *rows;
    size_t n, cap;
    int failed;
} table;

static int collect(const seg_customer_info *c, void *payload)
{
    table *t = payload;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        row *r = realloc(t->rows, cap * sizeof *r);
        if (!r) {
            t->failed = 1;
            return 1; /* stop */
        }
        t->rows = r;
        t->cap = cap;
    }
    row *r = &t->rows[t->n];
    size_t len = strlen(c->customer_id);
    if (!(r->id = malloc(len + 1))) {
        t->failed = 1;
        return 1;
    }
    memcpy(r->id, c->customer_id, len + 1);
    r->orders = c->orders;
    r->days = c->purchase_days;
    r->first = c->first_purchase;
    r->last = c->last_purchase;
    r->revenue = c->revenue;
    r->net = c->net_revenue;
    t->n++;
    return 0;
}

/* "YYYY-MM-DD" of a time, or "-" */
static const char *date(char *buf, size_t size, int64_t t, int has)
{
    if (!has || seg_time_format(buf, size, t) == 0)
        return "-";
    buf[10] = '\0';
    return buf;
}

static const char *money(char *buf, size_t size, int64_t amount, int exponent)
{
    return seg_money_format(buf, size, amount, exponent) ? buf : "?";
}

static int fail(seg_db *db, const char *what)
{
    fprintf(stderr, "demo: %s: %s\n", what, seg_errmsg(db));
    seg_db_close(db);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: demo EVENTS.csv CUSTOMERS.csv\n");
        return 2;
    }
    const char *events_path = argv[1], *customers_path = argv[2];

    /* 1. open an in-memory database (SEG_DB_OPTIONS_INIT: cents) */
    char errbuf[256] = "";
    seg_db_options opts = SEG_DB_OPTIONS_INIT;
    opts.errbuf = errbuf;
    opts.errbuf_size = sizeof errbuf;
    seg_db *db = NULL;
    if (seg_db_open(&db, ":memory:", &opts) != SEG_OK) {
        fprintf(stderr, "demo: open: %s\n", errbuf);
        return 1;
    }
    int exponent = seg_db_currency_exponent(db);

    /* 2. import the events (one atomic batch), then the customer attributes */
    seg_ingest_stats stats = SEG_INGEST_STATS_INIT;
    if (seg_event_import_csv_file(db, events_path, NULL, &stats) != SEG_OK)
        return fail(db, "events");
    if (seg_customer_import_csv_file(db, customers_path) != SEG_OK)
        return fail(db, "customers");

    /* 3. walk the customers in id order, copying what we print */
    table t = { NULL, 0, 0, 0 };
    if (seg_customer_foreach(db, SEG_CUSTOMER_SORTED, collect, &t) != SEG_OK)
        return fail(db, "customers");
    if (t.failed) {
        fprintf(stderr, "demo: out of memory\n");
        return 1;
    }

    uint64_t prospects = 0;
    int64_t revenue = 0, net = 0;
    for (size_t i = 0; i < t.n; i++) {
        prospects += t.rows[i].orders == 0;
        revenue += t.rows[i].revenue;
        net += t.rows[i].net;
    }

    char a[48], b[48], c[48];
    printf("libsegment %s demo\n\n", seg_version_string());
    printf("events file     %s\n", events_path);
    printf("customers file  %s\n\n", customers_path);
    printf("customers       %10llu\n", (unsigned long long)seg_customer_count(db));
    printf("  buyers        %10llu\n", (unsigned long long)(t.n - prospects));
    printf("  prospects     %10llu   (no purchase yet)\n", (unsigned long long)prospects);
    printf("events          %10llu   (%llu imported, %llu duplicates)\n",
           (unsigned long long)seg_event_count(db), (unsigned long long)stats.accepted,
           (unsigned long long)stats.duplicates);
    printf("revenue         %13s\n", money(a, sizeof a, revenue, exponent));
    printf("refunds         %13s\n", money(b, sizeof b, net - revenue, exponent));
    printf("net revenue     %13s\n\n", money(c, sizeof c, net, exponent));

    printf("%-10s %6s %5s  %-10s  %-10s  %12s %12s  %-7s  %s\n", "customer", "orders", "days",
           "first", "last", "revenue", "net", "country", "email");
    for (size_t i = 0; i < t.n; i++) {
        const row *r = &t.rows[i];

        /* attributes and consent: a missing value is SEG_OK with SEG_TYPE_NULL */
        seg_value country;
        char country_buf[16] = "-";
        if (seg_customer_get_attr(&country, db, r->id, "country") != SEG_OK)
            return fail(db, "country");
        if (country.type == SEG_TYPE_STRING)
            snprintf(country_buf, sizeof country_buf, "%s", country.s);

        int consent = SEG_CONSENT_UNKNOWN;
        if (seg_customer_get_consent(&consent, db, r->id, "email") != SEG_OK)
            return fail(db, "consent");
        const char *email = consent == SEG_CONSENT_GRANTED  ? "granted"
                            : consent == SEG_CONSENT_DENIED ? "denied"
                                                            : "-";

        char d1[32], d2[32];
        printf("%-10s %6llu %5llu  %-10s  %-10s  %12s %12s  %-7s  %s\n", r->id,
               (unsigned long long)r->orders, (unsigned long long)r->days,
               date(d1, sizeof d1, r->first, r->orders > 0),
               date(d2, sizeof d2, r->last, r->orders > 0), money(a, sizeof a, r->revenue, exponent),
               money(b, sizeof b, r->net, exponent), country_buf, email);
    }

    for (size_t i = 0; i < t.n; i++)
        free(t.rows[i].id);
    free(t.rows);
    seg_db_close(db);
    return 0;
}
