/*
 * libFuzzer target: the event CSV import (seg_event_import_csv).
 *
 * The first input byte picks the currency exponent (0..6); the rest is the
 * CSV.  It is imported atomically, then again per event with unknown
 * columns ignored; then every customer and event is walked and the event
 * count checked.  See tests/fuzz/README.md.
 */
#include <segment.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_events: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

static void on_reject(size_t index, int code, const char *reason, void *payload)
{
    (void)index;
    size_t *n = payload;
    if (code >= 0)
        fail("on_reject with a non-negative code", reason);
    if (!reason || !*reason)
        fail("on_reject with an empty message", NULL);
    (*n)++;
}

static int customer_cb(const seg_customer_info *c, void *payload)
{
    uint64_t *n = payload;
    if (!c->customer_id || !*c->customer_id)
        fail("customer without an id", NULL);
    if (c->engagements > c->events)
        fail("more engagements than events", c->customer_id);
    (*n)++;
    return 0;
}

static int event_cb(const seg_event_info *e, void *payload)
{
    uint64_t *n = payload;
    if (!e->event_id || !*e->event_id || !e->customer_id || !*e->customer_id)
        fail("event without an id or customer", NULL);
    if (e->kind < SEG_EVENT_PURCHASE || e->kind > SEG_EVENT_ENGAGEMENT)
        fail("event of an unknown kind", e->event_id);
    if (e->ts < SEG_TIME_MIN || e->ts > SEG_TIME_MAX)
        fail("event time out of range", e->event_id);
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

    seg_csv_options co = SEG_CSV_OPTIONS_INIT;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    int rc = seg_event_import_csv(db, csv, len, &co, &st);
    if (rc > 0)
        fail("positive status", NULL);
    if (rc != SEG_OK && !*seg_errmsg(db))
        fail("failed import without a message", seg_errstr(rc));
    if (rc != SEG_OK && seg_event_count(db) != 0)
        fail("failed atomic import stored events", seg_errmsg(db));
    if (rc == SEG_OK && st.rejected != 0)
        fail("atomic import rejected rows", NULL);

    size_t rejects = 0;
    seg_ingest_stats st2 = SEG_INGEST_STATS_INIT;
    co.flags = SEG_CSV_PER_EVENT | SEG_CSV_IGNORE_UNKNOWN;
    co.on_reject = on_reject;
    co.payload = &rejects;
    rc = seg_event_import_csv(db, csv, len, &co, &st2);
    if (rc > 0)
        fail("positive status", NULL);
    if (rc != SEG_OK && !*seg_errmsg(db))
        fail("failed import without a message", seg_errstr(rc));
    if (rc == SEG_OK && st2.rejected != rejects)
        fail("stats.rejected differs from the on_reject calls", NULL);

    uint64_t ncust = 0, nev = 0;
    if (seg_customer_foreach(db, 0, customer_cb, &ncust) != SEG_OK)
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
