/*
 * libFuzzer target: the definition language (seg_segdef_compile and what
 * follows a successful compile).
 *
 * The first input byte picks the currency exponent (byte % 7); the rest is
 * the definition text.  It is compiled against a small database (typed
 * attributes, consent, a few customers with purchases, refunds and
 * engagement events).  Then:
 * - a failed compile must leave no definition and a message starting with
 *   "LINE:COLUMN: ";
 * - a successful one is evaluated (every customer, sorted), each customer
 *   again on its own (the same answer), refreshed twice (the second time
 *   with nothing new: no change), reported on, and printed; the canonical
 *   text must compile and print to the same text.
 * See tests/fuzz/README.md.
 */
#include <segment.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_segdef: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

#define DAY 86400
#define T0 1709251200 /* 2024-03-01 */
#define NOW (T0 + 100 * DAY)
#define MAXSEG 4096

static void setup_db(seg_db *db)
{
    static const char *const cust[] = { "a", "b", "c", "d" };
    static const char *const cats[] = { "books", "toys", NULL };
    static const char *const chans[] = { "web", "store", NULL };
    char eid[16], oid[16];
    for (int k = 0; k < 24; k++) {
        seg_event e = SEG_EVENT_INIT;
        snprintf(eid, sizeof eid, "e%d", k);
        snprintf(oid, sizeof oid, "o%s%d", cust[k % 4], k / 8); /* two lines per order */
        e.event_id = eid;
        e.customer_id = cust[k % 4];
        e.ts = T0 + (int64_t)((k * 37) % 130) * DAY + k;
        if (k % 6 == 5) {
            e.kind = SEG_EVENT_ENGAGEMENT;
            e.name = k % 12 == 5 ? "email_open" : "store_visit";
        } else if (k % 7 == 6) {
            e.kind = SEG_EVENT_REFUND;
            e.amount = -100;
        } else {
            e.kind = SEG_EVENT_PURCHASE;
            e.amount = 1000 + k * 250;
            e.order_id = oid;
            e.category = cats[k % 3];
            e.channel = chans[k % 3];
        }
        if (seg_event_ingest(db, &e) != SEG_OK)
            fail("setup ingest", seg_errmsg(db));
    }
    seg_value v;
    memset(&v, 0, sizeof v);
    v.type = SEG_TYPE_STRING;
    v.s = "US";
    if (seg_customer_set_attr(db, "a", "country", &v) != SEG_OK)
        fail("setup attr", seg_errmsg(db));
    memset(&v, 0, sizeof v);
    v.type = SEG_TYPE_INT;
    v.i = 42;
    seg_customer_set_attr(db, "b", "age", &v);
    memset(&v, 0, sizeof v);
    v.type = SEG_TYPE_NUMBER;
    v.d = 2.5;
    seg_customer_set_attr(db, "c", "score", &v);
    seg_attr_declare(db, "verified", SEG_TYPE_BOOL);
    seg_attr_declare(db, "signup", SEG_TYPE_TIME);
    seg_customer_set_consent(db, "a", "email", SEG_CONSENT_GRANTED);
    seg_customer_set_consent(db, "b", "email", SEG_CONSENT_DENIED);
    seg_customer_add(db, "prospect");
}

typedef struct seen {
    size_t n;
    char ids[8][16];
    unsigned char m[8][MAXSEG];
} seen;

static int eval_cb(const char *id, const unsigned char *member, size_t n, void *payload)
{
    seen *s = payload;
    if (s->n >= 8 || n > MAXSEG || strlen(id) >= sizeof s->ids[0])
        fail("unexpected customer", id);
    strcpy(s->ids[s->n], id);
    for (size_t k = 0; k < n; k++)
        if (member[k] > 1)
            fail("membership not 0 or 1", id);
    memcpy(s->m[s->n], member, n);
    s->n++;
    return 0;
}

static int delta_cb(const char *id, size_t segment, int entered, void *payload)
{
    (void)id;
    (void)segment;
    (void)entered;
    (*(size_t *)payload)++;
    return 0;
}

static void check_position(const char *msg)
{
    unsigned line = 0, col = 0;
    int used = 0;
    if (sscanf(msg, "%u:%u: %n", &line, &col, &used) != 2 || line < 1 || col < 1 || used == 0)
        fail("error without LINE:COLUMN", msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    o.currency_exponent = data[0] % 7;
    const char *src = (const char *)data + 1;
    size_t len = size - 1;
    seg_db *db = NULL;
    if (seg_db_open(&db, ":memory:", &o) != SEG_OK)
        fail("seg_db_open", NULL);
    setup_db(db);

    /* loyalty: the input's program (when the text holds exactly one that
     * compiles) or a fixed one is attached, so `tier` and `points` evaluate */
    seg_loyalty *lp = NULL;
    seg_loyalty_ledger *ll = NULL;
    {
        char lerr[1024] = "";
        seg_loyalty_options lo = SEG_LOYALTY_OPTIONS_INIT;
        lo.currency_exponent = o.currency_exponent;
        lo.errbuf = lerr;
        lo.errbuf_size = sizeof lerr;
        int lrc = seg_loyalty_compile(&lp, src, len, &lo);
        if (lrc > 0)
            fail("positive status", NULL);
        if (lrc != SEG_OK) {
            if (lp)
                fail("failed loyalty compile left a program", NULL);
            if (strncmp(lerr, "the text holds", 14) != 0)
                check_position(lerr);
            static const char fixed[] = "program f {\n  earn 1 point per 10;\n  tier a;\n"
                                        "  tier b from 20 multiplier 2;\n}\n";
            if (seg_loyalty_compile(&lp, fixed, sizeof fixed - 1, &lo) != SEG_OK)
                fail("loyalty: the fixed program", lerr);
        }
        if (seg_loyalty_attach(&ll, db, lp) != SEG_OK)
            fail("loyalty attach", seg_errmsg(db));
    }

    seg_segdef *def = (seg_segdef *)&def;
    int rc = seg_segdef_compile(&def, db, src, len);
    if (rc > 0)
        fail("positive status", NULL);
    if (rc != SEG_OK) {
        if (def)
            fail("failed compile left a definition", NULL);
        check_position(seg_errmsg(db));
        seg_loyalty_ledger_free(ll);
        seg_loyalty_free(lp);
        seg_db_close(db);
        return 0;
    }
    size_t n = seg_segdef_segment_count(def);
    if (n <= MAXSEG) {
        static seen s;
        s.n = 0;
        if (seg_segdef_eval(def, NOW, SEG_SEGDEF_SORTED, eval_cb, &s) != SEG_OK)
            fail("eval", seg_errmsg(db));
        unsigned char one[MAXSEG];
        for (size_t k = 0; k < s.n; k++) {
            if (seg_segdef_eval_customer(one, n, def, s.ids[k], NOW) != SEG_OK)
                fail("eval_customer", seg_errmsg(db));
            if (memcmp(one, s.m[k], n) != 0)
                fail("eval_customer differs from eval", s.ids[k]);
        }
        size_t changes = 0;
        if (seg_segdef_refresh(def, NOW, 0, delta_cb, &changes, NULL) != SEG_OK)
            fail("refresh", seg_errmsg(db));
        changes = 0;
        if (seg_segdef_refresh(def, NOW, 0, delta_cb, &changes, NULL) != SEG_OK)
            fail("second refresh", seg_errmsg(db));
        if (changes)
            fail("a refresh with nothing new reported changes", NULL);
        seg_segdef_report r = SEG_SEGDEF_REPORT_INIT;
        if (seg_segdef_report_get(&r, def, NOW) != SEG_OK)
            fail("report", seg_errmsg(db));
        if (r.customers != s.n)
            fail("report and eval count different customers", NULL);
    }
    char *t1 = NULL, *t2 = NULL;
    if (seg_segdef_print(&t1, def) != SEG_OK)
        fail("print", seg_errmsg(db));
    seg_segdef *again = NULL;
    if (seg_segdef_compile(&again, db, t1, strlen(t1)) != SEG_OK)
        fail("the canonical text does not compile", seg_errmsg(db));
    if (seg_segdef_print(&t2, again) != SEG_OK)
        fail("print", seg_errmsg(db));
    if (strcmp(t1, t2) != 0)
        fail("printing the canonical text changes it", t1);
    seg_free(t1);
    seg_free(t2);
    seg_segdef_free(again);
    seg_segdef_free(def);
    seg_loyalty_ledger_free(ll);
    seg_loyalty_free(lp);
    seg_db_close(db);
    return 0;
}
