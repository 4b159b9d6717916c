/*
 * libFuzzer target: the customer CSV import (seg_customer_import_csv).
 *
 * The first input byte picks the currency exponent (0..6); the rest is the
 * CSV.  It is imported twice (the second import of the same input must
 * succeed when the first did), then every customer and event is walked and
 * the counts checked.  See tests/fuzz/README.md.
 */
#include <segment.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_customers: %s%s%s\n", what, detail ? ": " : "",
            detail ? detail : "");
    abort();
}

static int customer_cb(const seg_customer_info *c, void *payload)
{
    uint64_t *n = payload;
    if (!c->customer_id)
        fail("customer without an id", NULL);
    (*n)++;
    return 0;
}

static int event_cb(const seg_event_info *e, void *payload)
{
    uint64_t *n = payload;
    (void)e;
    (*n)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    o.currency_exponent = data[0] % 7;
    const char *csv = (const char *)data + 1;
    size_t len = size - 1;

    seg_db *db = NULL;
    if (seg_db_open(&db, ":memory:", &o) != SEG_OK)
        fail("seg_db_open", NULL);

    int rc = seg_customer_import_csv(db, csv, len, "fuzz.csv");
    if (rc > 0)
        fail("positive status", NULL);
    if (rc != SEG_OK && !*seg_errmsg(db))
        fail("failed import without a message", seg_errstr(rc));
    if (rc != SEG_OK && seg_customer_count(db) != 0)
        fail("failed import created customers", seg_errmsg(db));
    uint64_t first = seg_customer_count(db);

    int rc2 = seg_customer_import_csv(db, csv, len, NULL);
    if (rc2 > 0)
        fail("positive status", NULL);
    if (rc == SEG_OK && rc2 != SEG_OK)
        fail("second import of a good input failed", seg_errmsg(db));
    if (rc == SEG_OK && seg_customer_count(db) != first)
        fail("second import changed the customer count", NULL);

    uint64_t ncust = 0, nev = 0;
    if (seg_customer_foreach(db, SEG_CUSTOMER_SORTED, customer_cb, &ncust) != SEG_OK)
        fail("seg_customer_foreach", seg_errmsg(db));
    if (ncust != seg_customer_count(db))
        fail("customers visited != seg_customer_count", NULL);
    if (seg_event_foreach(db, NULL, event_cb, &nev) != SEG_OK)
        fail("seg_event_foreach", seg_errmsg(db));
    if (nev != seg_event_count(db))
        fail("events visited != seg_event_count", NULL);

    seg_db_close(db);
    return 0;
}
