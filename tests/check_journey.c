/*
 * Journeys: the language (parse, print, structural errors), the engine on
 * scripted timelines (events, timers, time-only conditions, exits,
 * re-entry, A/B splits and holdouts, conversions), no duplicate actions,
 * persistence in SQLite files, changed definitions, journey_state(), and
 * the shipped example journeys.  Expected values are worked out in the
 * comments from the definitions.
 */
#include "journey/journey-engine.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#if SEG_HAVE_SQLITE
#include <sqlite3.h>
#endif

#ifndef SEG_SRCDIR
#error "SEG_SRCDIR must name the source tree"
#endif

#define DAY 86400
#define T0 1704067200 /* 2024-01-01T00:00:00Z */

#define OK(db, call) ck_assert_msg((call) == SEG_OK, "%s: %s", #call, seg_errmsg(db))

static seg_db *db;
static seg_segdef *def;
static seg_journey *jr;

static void setup(void)
{
    ck_assert_int_eq(seg_db_open(&db, ":memory:", NULL), SEG_OK);
}

static void teardown(void)
{
    seg_journey_close(jr);
    jr = NULL;
    seg_segdef_free(def);
    def = NULL;
    seg_db_close(db);
    db = NULL;
}

static void purchase(const char *cust, int64_t ts, int64_t amount)
{
    static int n;
    char eid[32];
    snprintf(eid, sizeof eid, "p%d", ++n);
    seg_event e = SEG_EVENT_INIT;
    e.kind = SEG_EVENT_PURCHASE;
    e.event_id = eid;
    e.customer_id = cust;
    e.order_id = eid;
    e.ts = ts;
    e.amount = amount;
    OK(db, seg_event_ingest(db, &e));
}

static void engage(const char *cust, int64_t ts, const char *name)
{
    static int n;
    char eid[32];
    snprintf(eid, sizeof eid, "g%d", ++n);
    seg_event e = SEG_EVENT_INIT;
    e.kind = SEG_EVENT_ENGAGEMENT;
    e.event_id = eid;
    e.customer_id = cust;
    e.ts = ts;
    e.name = name;
    OK(db, seg_event_ingest(db, &e));
}

static void consent(const char *cust)
{
    OK(db, seg_customer_set_consent(db, cust, "email", SEG_CONSENT_GRANTED));
}

static void open_journeys(const char *src)
{
    OK(db, seg_segdef_compile(&def, db, src, strlen(src)));
    OK(db, seg_journey_open(&jr, def));
}

/* The actions in the outbox (pending and suppressed), in the order they
 * were emitted, one line each:
 * "TIME-T0 in days (or seconds) CUSTOMER JOURNEY STATE ACTION PARAMS VARIANT". */
typedef struct acts {
    size_t n;
    char line[256][200];
    char step[256][240];
    uint64_t run[256];
    uint64_t seq[256];
} acts;

static int collect_one(const seg_outbox_item *e, void *payload)
{
    acts *a = payload;
    ck_assert_uint_lt(a->n, 256);
    size_t i = a->n++;
    int64_t dt = e->time - T0;
    char when[32];
    if (dt % DAY == 0)
        snprintf(when, sizeof when, "d%lld", (long long)(dt / DAY));
    else
        snprintf(when, sizeof when, "s%lld", (long long)dt);
    snprintf(a->line[i], sizeof a->line[i], "%s %s %s %s %s %s %s", when, e->customer_id,
             e->journey, e->state && e->state[0] ? e->state : "-", e->action,
             e->params && e->params[0] ? e->params : "-", e->variant ? e->variant : "-");
    /* what makes an action distinct (the step's own identity stays inside
     * the outbox, which deduplicates on it) */
    snprintf(a->step[i], sizeof a->step[i], "%s/%s/%llu/%lld/%s/%s", e->customer_id, e->journey,
             (unsigned long long)e->run, (long long)e->time, e->state ? e->state : "",
             e->action);
    a->run[i] = e->run;
    a->seq[i] = e->seq;
    return 0;
}

static void collect_actions(acts *a)
{
    a->n = 0;
    OK(db, seg_outbox_fetch(NULL, db, INT64_MAX, SEG_OUTBOX_PENDING | SEG_OUTBOX_SUPPRESSED, 0,
                            collect_one, a));
    /* emission order: by sequence number */
    for (size_t i = 1; i < a->n; i++)
        for (size_t k = i; k > 0 && a->seq[k - 1] > a->seq[k]; k--) {
            char l[200], st[240];
            uint64_t r = a->run[k], q = a->seq[k];
            memcpy(l, a->line[k], sizeof l);
            memcpy(st, a->step[k], sizeof st);
            memcpy(a->line[k], a->line[k - 1], sizeof l);
            memcpy(a->step[k], a->step[k - 1], sizeof st);
            a->run[k] = a->run[k - 1];
            a->seq[k] = a->seq[k - 1];
            memcpy(a->line[k - 1], l, sizeof l);
            memcpy(a->step[k - 1], st, sizeof st);
            a->run[k - 1] = r;
            a->seq[k - 1] = q;
        }
}

/* acknowledge every action in the outbox */
static void ack_all(void)
{
    acts a;
    collect_actions(&a);
    size_t acked = 0;
    OK(db, seg_outbox_ack(&acked, db, a.seq, a.n));
    ck_assert_uint_eq(acked, a.n);
}

static void expect_actions(const char *const *want, size_t n)
{
    acts a;
    collect_actions(&a);
    if (getenv("JR_DEBUG"))
        for (size_t i = 0; i < a.n; i++)
            fprintf(stderr, "  %s\n", a.line[i]);
    for (size_t i = 0; i < a.n || i < n; i++) {
        const char *got = i < a.n ? a.line[i] : "(none)";
        const char *exp = i < n ? want[i] : "(none)";
        ck_assert_msg(strcmp(got, exp) == 0, "action %zu: got '%s', expected '%s'", i, got,
                      exp);
    }
    /* every step's identity is unique */
    for (size_t i = 0; i < a.n; i++)
        for (size_t k = i + 1; k < a.n; k++)
            ck_assert_msg(strcmp(a.step[i], a.step[k]) != 0, "step %s twice", a.step[i]);
}

static const char *state_of(const char *journey, const char *cust)
{
    seg_journey_status st = SEG_JOURNEY_STATUS_INIT;
    OK(db, seg_journey_status_get(&st, jr, journey, cust));
    return st.state ? st.state : "-";
}

/* ======================================================================== */
/* language                                                                  */
/* ======================================================================== */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(fread(b, 1, (size_t)n, f), n);
    b[n] = '\0';
    fclose(f);
    return b;
}

START_TEST(examples_print_and_parse_back)
{
    const char *files[] = { SEG_SRCDIR "/examples/definitions/journeys.seg",
                            SEG_SRCDIR "/examples/definitions/seasonal.seg" };
    for (size_t k = 0; k < 2; k++) {
        char *src = read_file(files[k]);
        seg_segdef *a = NULL, *b = NULL;
        OK(db, seg_segdef_compile(&a, db, src, strlen(src)));
        ck_assert_uint_gt(a->ast.njourneys, 0);
        char *t1 = NULL, *t2 = NULL;
        OK(db, seg_segdef_print(&t1, a));
        OK(db, seg_segdef_compile(&b, db, t1, strlen(t1)));
        OK(db, seg_segdef_print(&t2, b));
        ck_assert_str_eq(t1, t2);
        ck_assert(seg__sd_ast_equal(&a->ast, &b->ast));
        ck_assert(strstr(t1, "journey ") != NULL);
        seg_free(t1);
        seg_free(t2);
        seg_segdef_free(a);
        seg_segdef_free(b);
        free(src);
    }
    /* the six of journeys.seg, and a changed one is not equal */
    char *src = read_file(SEG_SRCDIR "/examples/definitions/journeys.seg");
    open_journeys(src);
    ck_assert_uint_eq(seg_journey_count(jr), 6);
    ck_assert_str_eq(seg_journey_name(jr, 3), "core_reactivation");
    ck_assert_ptr_null(seg_journey_name(jr, 6));
    free(src);
}
END_TEST

START_TEST(structural_errors)
{
    static const struct { const char *src; int code; const char *msg; } bad[] = {
        { "journey j { enter when true; state a { after 0h -> exit; } }", SEG_EINVAL,
          "1:46: a duration of zero" },
        { "journey j { enter when true; state a { -> a; } }", SEG_EINVAL, "1:40: journey 'j' "
          "loops back to state 'a'" },
        { "journey j { enter when true; variant a 60; variant b 60; state s { -> exit; } }",
          SEG_EINVAL, "1:1: the shares of journey 'j' add up to 120%" },
        { "journey j { enter when true; state s { -> exit; } }\njourney j { enter when true; "
          "state s { -> exit; } }", SEG_EINVAL, "2:9: journey 'j' defined twice" },
        { "journey j { enter when true; state exit { -> exit; } }", SEG_EPARSE,
          "1:36: 'exit' is not a state's name" },
        { "journey j { enter when true; goal purchase(color: \"red\"); state s { -> exit; } }",
          SEG_EPARSE, "1:44: expected an event filter" },
        { "journey j { enter when true; goal purchase(min_amount: 1.234); state s { -> exit; "
          "} }", SEG_EINVAL, "1:56: min_amount: not an amount" },
        { "journey j { enter when true; state s { after 14d -> exit do \"x\"(a: orders); } }",
          SEG_EINVAL, "1:68: parameter 'a': a value is a literal" },
        { "journey j { enter when true; state s { when orders -> exit; } }", SEG_EINVAL,
          "1:45: a journey's rule needs a condition" },
        { "journey j { enter when true; state s { after 2d -> t; } state t { on \"x\" -> s; } "
          "state u { -> s; } }", SEG_EINVAL, "1:88: state 'u' of journey 'j' is unreachable" },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        seg_segdef *d = (seg_segdef *)&d;
        ck_assert_int_eq(seg_segdef_compile(&d, db, bad[k].src, strlen(bad[k].src)),
                         bad[k].code);
        ck_assert_ptr_null(d);
        ck_assert_msg(strncmp(seg_errmsg(db), bad[k].msg, strlen(bad[k].msg)) == 0,
                      "%s: got '%s', expected '%s'", bad[k].src, seg_errmsg(db), bad[k].msg);
    }
    /* opening needs a journey, and one set of journeys per db */
    const char *seg = "segment s: true;";
    OK(db, seg_segdef_compile(&def, db, seg, strlen(seg)));
    seg_journey *x = (seg_journey *)&x;
    ck_assert_int_eq(seg_journey_open(&x, def), SEG_EINVAL);
    ck_assert_ptr_null(x);
    seg_segdef_free(def);
    def = NULL;
    open_journeys("journey j { enter when orders >= 1; state s { after 1d -> exit; } }");
    ck_assert_int_eq(seg_journey_open(&x, def), SEG_EBUSY);
    ck_assert_ptr_null(x);
}
END_TEST

/* ======================================================================== */
/* engine                                                                    */
/* ======================================================================== */

/* Reactivation: enter on the first purchase (orders >= 1); 60 days after
 * the last purchase an offer; ignored 14 days, a second; a purchase in
 * between wins. */
static const char *react =
    "journey r {\n"
    "  enter when orders >= 1;\n"
    "  goal purchase;\n"
    "  state wait { after 60d since last_purchase -> offer5 do \"email:discount\"(percent: 5); }\n"
    "  state offer5 { on purchase -> won; after 14d -> offer10 do \"email:discount\"(percent: 10); }\n"
    "  state offer10 { on purchase -> won; after 14d -> exit; }\n"
    "  state won { do \"tag:reactivated\"; -> exit; }\n"
    "}\n";

START_TEST(timers_in_time_order)
{
    open_journeys(react);
    purchase("ann", T0, 1000);             /* ann enters 'wait' at d0 */
    purchase("bob", T0 + 10 * DAY, 1000);  /* bob at d10 */
    purchase("ann", T0 + 20 * DAY, 500);   /* moves ann's timer: d20 + 60 = d80 */
    ck_assert_str_eq(state_of("r", "ann"), "wait");
    expect_actions(NULL, 0);
    /* one advance to d200: bob d70 offer5, d84 offer10, d98 exit; ann d80
     * offer5, d94 offer10, d108 exit: each at its own time, in time order */
    OK(db, seg_journey_advance(jr, T0 + 200 * DAY));
    static const char *const want[] = {
        "d70 bob r offer5 email:discount percent=5 -",
        "d80 ann r offer5 email:discount percent=5 -",
        "d84 bob r offer10 email:discount percent=10 -",
        "d94 ann r offer10 email:discount percent=10 -",
    };
    expect_actions(want, 4);
    ck_assert_str_eq(state_of("r", "ann"), "-");
    seg_journey_status st = SEG_JOURNEY_STATUS_INIT;
    OK(db, seg_journey_status_get(&st, jr, "r", "bob"));
    ck_assert_int_eq(st.exit_reason, SEG_JOURNEY_EXIT_DONE);
    ck_assert_int_eq(st.since, T0 + 98 * DAY);
    ck_assert_uint_eq(st.run, 1);
    /* the same now again, and an earlier one: nothing new */
    OK(db, seg_journey_advance(jr, T0 + 200 * DAY));
    expect_actions(want, 4);
    ck_assert_int_eq(seg_journey_advance(jr, T0 + 100 * DAY), SEG_ERANGE);
    /* re-ingesting the same events changes nothing either */
    seg_event e = SEG_EVENT_INIT;
    e.kind = SEG_EVENT_PURCHASE;
    e.event_id = "p1";
    e.customer_id = "ann";
    e.order_id = "p1";
    e.ts = T0;
    e.amount = 1000;
    OK(db, seg_event_ingest(db, &e));
    expect_actions(want, 4);
}
END_TEST

START_TEST(events_between_timers)
{
    open_journeys(react);
    purchase("ann", T0, 1000);
    OK(db, seg_journey_advance(jr, T0 + 65 * DAY)); /* d60: offer5 */
    ck_assert_str_eq(state_of("r", "ann"), "offer5");
    purchase("ann", T0 + 70 * DAY, 800);             /* won at d70, then exit */
    static const char *const want[] = {
        "d60 ann r offer5 email:discount percent=5 -",
        "d70 ann r won tag:reactivated - -",
    };
    expect_actions(want, 2);
    seg_journey_status st = SEG_JOURNEY_STATUS_INIT;
    OK(db, seg_journey_status_get(&st, jr, "r", "ann"));
    ck_assert_ptr_null(st.state);
    ck_assert_int_eq(st.converted, 1);
    /* reenter never (the default): no second run */
    purchase("ann", T0 + 300 * DAY, 100);
    OK(db, seg_journey_advance(jr, T0 + 500 * DAY));
    expect_actions(want, 2);
    /* an event whose timer is due: the timer first (an event at d100 after
     * a d60 timer never advanced): cat's offer5 at d60 (+60), then the
     * purchase wins at d100 */
    purchase("cat", T0 + 400 * DAY, 1000);
    purchase("cat", T0 + 470 * DAY, 1000);
    static const char *const want2[] = {
        "d60 ann r offer5 email:discount percent=5 -",
        "d70 ann r won tag:reactivated - -",
        "d460 cat r offer5 email:discount percent=5 -",
        "d470 cat r won tag:reactivated - -",
    };
    expect_actions(want2, 4);
}
END_TEST

START_TEST(time_only_condition_fires_when_true)
{
    /* 'when' with time alone: no purchase for 45 days, found at the second
     * it became true (last purchase + 45 days, rounded down to whole days:
     * days_since_last_purchase counts whole days) on one late advance */
    open_journeys("journey q {\n"
                  "  enter when orders >= 1;\n"
                  "  state active { when days_since_last_purchase >= 45 -> quiet "
                  "do \"email:miss_you\"; }\n"
                  "  state quiet { on purchase -> exit; }\n"
                  "}\n");
    purchase("ann", T0 + 3600, 1000); /* 01:00 on d0 */
    OK(db, seg_journey_advance(jr, T0 + DAY));
    expect_actions(NULL, 0);
    OK(db, seg_journey_advance(jr, T0 + 300 * DAY));
    static const char *const want[] = { "s3891600 ann q quiet email:miss_you - -" };
    /* 45 days after 01:00 = d45 01:00 = 3888000 + 3600 s */
    expect_actions(want, 1);
    seg_journey_status st = SEG_JOURNEY_STATUS_INIT;
    OK(db, seg_journey_status_get(&st, jr, "q", "ann"));
    ck_assert_int_eq(st.since, T0 + 45 * DAY + 3600);
}
END_TEST

START_TEST(entry_on_time_and_exit_rules)
{
    /* entry by a time-dependent segment: 30 days without a purchase; exit
     * on an engagement event and by a condition (orders >= 3) */
    open_journeys("segment lapsed: days_since_last_purchase >= 30;\n"
                  "journey l {\n"
                  "  enter when in(lapsed) and consent(\"email\");\n"
                  "  exit on \"unsubscribe\";\n"
                  "  exit when orders >= 3;\n"
                  "  reenter after 100d;\n"
                  "  state s { do \"email:hello\"; after 10d -> t do \"email:again\"; }\n"
                  "  state t { after 10d -> exit; }\n"
                  "}\n");
    consent("ann");
    consent("bob");
    purchase("ann", T0, 1000);
    purchase("bob", T0, 1000);
    purchase("dan", T0, 1000); /* no consent: never enters */
    OK(db, seg_journey_advance(jr, T0 + DAY));
    OK(db, seg_journey_advance(jr, T0 + 35 * DAY)); /* both entered at d30 */
    ck_assert_str_eq(state_of("l", "ann"), "s");
    ck_assert_str_eq(state_of("l", "dan"), "-");
    engage("ann", T0 + 36 * DAY, "unsubscribe");     /* ann leaves at d36 */
    purchase("bob", T0 + 37 * DAY, 100);
    purchase("bob", T0 + 38 * DAY, 100);             /* orders 3: bob leaves at d38 */
    OK(db, seg_journey_advance(jr, T0 + 60 * DAY));
    static const char *const want[] = {
        "d30 ann l s email:hello - -",
        "d30 bob l s email:hello - -",
    };
    expect_actions(want, 2);
    seg_journey_status st = SEG_JOURNEY_STATUS_INIT;
    OK(db, seg_journey_status_get(&st, jr, "l", "bob"));
    ck_assert_int_eq(st.exit_reason, SEG_JOURNEY_EXIT_RULE);
    ck_assert_int_eq(st.since, T0 + 38 * DAY);
    /* ann lapsed since d30 but may come back only 100 days after d36: run 2
     * at d136 */
    OK(db, seg_journey_advance(jr, T0 + 140 * DAY));
    OK(db, seg_journey_status_get(&st, jr, "l", "ann"));
    ck_assert_uint_eq(st.run, 2);
    ck_assert_int_eq(st.since, T0 + 136 * DAY);
    acts a;
    collect_actions(&a);
    if (getenv("JR_DEBUG"))
        for (size_t i = 0; i < a.n; i++)
            fprintf(stderr, "  %s\n", a.line[i]);
    /* bob too: lapsed from d68 (last purchase d38), back at d138 */
    ck_assert_uint_eq(a.n, 4);
    ck_assert_str_eq(a.line[2], "d136 ann l s email:hello - -");
    ck_assert_str_eq(a.line[3], "d138 bob l s email:hello - -");
    ck_assert_uint_eq(a.run[2], 2); /* a new run: a new identity */
}
END_TEST

static int count_variant(const seg_journey_row *row, void *payload)
{
    uint64_t *v = payload;
    if (row->kind == SEG_JOURNEY_ROW_VARIANT) {
        if (strcmp(row->name, "a") == 0) { v[0] = row->entered; v[1] = row->converted; }
        if (strcmp(row->name, "holdout") == 0) { v[2] = row->entered; v[3] = row->converted; }
    } else if (strcmp(row->name, "offer") == 0) {
        v[4] = row->converted;
        v[5] = row->active;
    }
    return 0;
}

/* what the action callback saw */
typedef struct seen {
    size_t n, held;
    char line[1024][96];
    int outcome[1024];
} seen;

static void seen_cb(const seg_journey_action *a, void *payload)
{
    seen *s = payload;
    ck_assert_uint_lt(s->n, 1024);
    ck_assert_uint_eq(a->struct_size, sizeof *a);
    snprintf(s->line[s->n], sizeof s->line[s->n], "%s %s %s %s %s", a->customer_id, a->journey,
             a->state && a->state[0] ? a->state : "-", a->action,
             a->variant ? a->variant : "-");
    s->outcome[s->n++] = a->outcome;
    s->held += a->outcome == SEG_JOURNEY_HELD_OUT;
}

/* the callback sees every action, in the order the outbox numbered them
 * (the held-out ones in between), also when a batch or an advance makes
 * many (the engine hands them over in groups) */
static void check_seen(const seen *sn, size_t from)
{
    acts a;
    collect_actions(&a);
    size_t i = 0;
    while (i < a.n && a.seq[i] <= from)
        i++;
    for (size_t k = 0; k < sn->n; k++) {
        if (sn->outcome[k] == SEG_JOURNEY_HELD_OUT) {
            ck_assert_ptr_nonnull(strstr(sn->line[k], " holdout"));
            continue;
        }
        ck_assert_int_eq(sn->outcome[k], SEG_JOURNEY_QUEUED);
        ck_assert_uint_lt(i, a.n);
        /* the outbox line: "WHEN CUSTOMER JOURNEY STATE ACTION PARAMS VARIANT" */
        char c[32], j[32], st[32], ac[32], pa[64], v[32], w[32];
        ck_assert_int_eq(sscanf(a.line[i], "%31s %31s %31s %31s %31s %63s %31s", w, c, j, st, ac,
                                pa, v), 7);
        char want[192];
        snprintf(want, sizeof want, "%s %s %s %s %s", c, j, st, ac, v);
        ck_assert_str_eq(sn->line[k], want);
        i++;
    }
    ck_assert_uint_eq(i, a.n);
}

START_TEST(action_callback_order)
{
    open_journeys("journey ab {\n"
                  "  enter when orders >= 1;\n"
                  "  variant a 50;\n"
                  "  variant b 30;\n"
                  "  holdout 20;\n"
                  "  state offer { do \"email:offer\" for a; do \"sms:offer\" for b; "
                  "after 10d -> last do \"email:last\"; }\n"
                  "  state last { after 1d -> exit; }\n"
                  "}\n");
    static seen sn;
    memset(&sn, 0, sizeof sn);
    OK(db, seg_journey_set_action_cb(jr, seen_cb, &sn));
    /* one batch of 120 customers: 120 actions in one transaction */
    enum { N = 120 };
    static seg_event ev[N];
    static char ids[N][16];
    for (int c = 0; c < N; c++) {
        snprintf(ids[c], sizeof ids[c], "c%03d", c);
        seg_event e = SEG_EVENT_INIT;
        e.kind = SEG_EVENT_PURCHASE;
        e.event_id = ids[c];
        e.customer_id = ids[c];
        e.order_id = ids[c];
        e.ts = T0 + c;
        e.amount = 100;
        ev[c] = e;
    }
    seg_ingest_options o = SEG_INGEST_OPTIONS_INIT;
    OK(db, seg_event_ingest_batch(db, ev, N, &o, NULL));
    ck_assert_uint_gt(sn.n, 64); /* (more than the engine's queue holds) */
    check_seen(&sn, 0);
    uint64_t before;
    OK(db, seg_outbox_count(&before, db, SEG_OUTBOX_PENDING | SEG_OUTBOX_SUPPRESSED));
    /* an advance: every customer takes the timer */
    memset(&sn, 0, sizeof sn);
    OK(db, seg_journey_advance(jr, T0 + 11 * DAY));
    ck_assert_uint_eq(sn.n, N); /* (the holdout's held out) */
    ck_assert_uint_gt(sn.held, 0);
    check_seen(&sn, before);
    /* the same advance again: nothing */
    memset(&sn, 0, sizeof sn);
    OK(db, seg_journey_advance(jr, T0 + 11 * DAY));
    ck_assert_uint_eq(sn.n, 0);
}
END_TEST

START_TEST(split_holdout_and_conversions)
{
    open_journeys("journey ab {\n"
                  "  enter when orders >= 1;\n"
                  "  variant a 50;\n"
                  "  variant b 30;\n"
                  "  holdout 20;\n"
                  "  goal \"booking\";\n"
                  "  state offer { do \"email:offer\" for a; do \"sms:offer\" for b; "
                  "after 10d -> exit; }\n"
                  "}\n");
    char id[16];
    for (int c = 0; c < 200; c++) {
        snprintf(id, sizeof id, "c%03d", c);
        purchase(id, T0 + c, 100);
    }
    /* every customer's variant is the hash bucket of id and journey:
     * compute it here the same way, and count the buckets */
    uint64_t seed = seg__hash("ab", 2, UINT64_C(0x6a0e7a11c0ffee00));
    int na = 0, nb = 0, nh = 0;
    acts a;
    collect_actions(&a);
    for (int c = 0; c < 200; c++) {
        snprintf(id, sizeof id, "c%03d", c);
        uint32_t bucket = (uint32_t)(seg__hash(id, strlen(id), seed) % 100);
        const char *want = bucket < 50 ? "a" : bucket < 80 ? "b" : "holdout";
        seg_journey_status st = SEG_JOURNEY_STATUS_INIT;
        OK(db, seg_journey_status_get(&st, jr, "ab", id));
        ck_assert_str_eq(st.variant, want);
        ck_assert_str_eq(st.state, "offer"); /* the holdout moves too */
        na += bucket < 50;
        nb += bucket >= 50 && bucket < 80;
        nh += bucket >= 80;
        /* the action of its variant, none for the holdout */
        int found = 0;
        for (size_t i = 0; i < a.n; i++)
            if (strstr(a.line[i], id)) {
                found++;
                ck_assert(strstr(a.line[i], bucket < 50 ? "email:offer" : "sms:offer"));
            }
        ck_assert_int_eq(found, bucket < 80 ? 1 : 0);
    }
    ck_assert_int_gt(na, 70); /* 50% of 200, with room for chance */
    ck_assert_int_gt(nh, 15);
    ck_assert_uint_eq(a.n, (size_t)(na + nb));
    /* conversions: the first 40 customers book (once counted, a second
     * booking adds nothing) */
    int conv_a = 0, conv_h = 0;
    for (int c = 0; c < 40; c++) {
        snprintf(id, sizeof id, "c%03d", c);
        engage(id, T0 + DAY, "booking");
        engage(id, T0 + 2 * DAY, "booking");
        uint32_t bucket = (uint32_t)(seg__hash(id, strlen(id), seed) % 100);
        conv_a += bucket < 50;
        conv_h += bucket >= 80;
    }
    uint64_t v[6] = { 0 };
    OK(db, seg_journey_report(jr, count_variant, v));
    ck_assert_uint_eq(v[0], (uint64_t)na);
    ck_assert_uint_eq(v[1], (uint64_t)conv_a);
    ck_assert_uint_eq(v[2], (uint64_t)nh);
    ck_assert_uint_eq(v[3], (uint64_t)conv_h);
    ck_assert_uint_eq(v[4], 40);
    ck_assert_uint_eq(v[5], 200);
}
END_TEST

START_TEST(journey_state_value)
{
    open_journeys(react);
    purchase("ann", T0, 1000);
    purchase("bob", T0 + 30 * DAY, 1000);
    OK(db, seg_journey_advance(jr, T0 + 65 * DAY)); /* ann offer5, bob wait */
    const char *src = "segment offered: journey_state(\"r\") == \"offer5\";\n"
                      "segment waiting: journey_state(\"r\") == \"wait\";\n"
                      "segment none: journey_state(\"nope\") is null;\n";
    seg_segdef *d = NULL;
    OK(db, seg_segdef_compile(&d, db, src, strlen(src)));
    unsigned char m[3];
    OK(db, seg_segdef_eval_customer(m, 3, d, "ann", T0 + 65 * DAY));
    ck_assert(m[0] == 1 && m[1] == 0 && m[2] == 1);
    OK(db, seg_segdef_eval_customer(m, 3, d, "bob", T0 + 65 * DAY));
    ck_assert(m[0] == 0 && m[1] == 1 && m[2] == 1);
    seg_segdef_free(d);
    /* with an argument that is not a name */
    const char *bad = "segment x: journey_state(r) == \"a\";";
    ck_assert_int_eq(seg_segdef_compile(&d, db, bad, strlen(bad)), SEG_EINVAL);
}
END_TEST

/* ======================================================================== */
/* persistence                                                               */
/* ======================================================================== */

static char dbpath[256];

static void reopen_file(void)
{
    seg_journey_close(jr);
    jr = NULL;
    seg_segdef_free(def);
    def = NULL;
    seg_db_close(db);
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    o.storage = seg_storage_sqlite();
    ck_assert_int_eq(seg_db_open(&db, dbpath, &o), SEG_OK);
}

/* The fixture's db replaced by a new SQLite file (dbpath) */
static void open_file_db(const char *tag)
{
    seg_db_close(db);
    snprintf(dbpath, sizeof dbpath, "/tmp/check_journey_%s%d.db", tag, (int)getpid());
    unlink(dbpath);
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    o.storage = seg_storage_sqlite();
    ck_assert_int_eq(seg_db_open(&db, dbpath, &o), SEG_OK);
}

/* Erased and anonymized customers leave every journey, in memory and in the
 * file; nothing of them is left in the states or the outbox. */
START_TEST(erase_leaves_journeys)
{
    if (!SEG_HAVE_SQLITE)
        return;
    open_file_db("e");
    open_journeys(react);
    purchase("ann", T0, 1000);
    purchase("bob", T0, 1000);
    purchase("cid", T0, 1000);
    OK(db, seg_journey_advance(jr, T0 + 62 * DAY)); /* all three in offer5 */
    ck_assert_str_eq(state_of("r", "ann"), "offer5");
    OK(db, seg_customer_erase(db, "ann"));
    seg_journey_status st = SEG_JOURNEY_STATUS_INIT;
    ck_assert_int_eq(seg_journey_status_get(&st, jr, "r", "ann"), SEG_ENOTFOUND);
    char *nid = NULL;
    OK(db, seg_customer_anonymize(db, "bob", &nid));
    /* the new identity is in no journey (as after a reopen) */
    OK(db, seg_journey_status_get(&st, jr, "r", nid));
    ck_assert_ptr_null(st.state);
    ck_assert_uint_eq(st.run, 0);
    ck_assert_str_eq(state_of("r", "cid"), "offer5");
    /* their timers are stale: the advance moves only cid on */
    OK(db, seg_journey_advance(jr, T0 + 80 * DAY));
    ck_assert_str_eq(state_of("r", "cid"), "offer10");
    acts a;
    collect_actions(&a);
    for (size_t i = 0; i < a.n; i++) {
        ck_assert_msg(strstr(a.line[i], " ann ") == NULL, "%s", a.line[i]);
        ck_assert_msg(strstr(a.line[i], " bob ") == NULL, "%s", a.line[i]);
    }
    /* cid's two offers; the anonymized identity is a new customer, who
     * enters afresh (this journey asks for no consent, which anonymization
     * drops) and is past its 60 days at once */
    ck_assert_uint_eq(a.n, 3);
    ck_assert_str_eq(a.line[0], "d60 cid r offer5 email:discount percent=5 -");
    ck_assert_str_eq(a.line[1], "d74 cid r offer10 email:discount percent=10 -");
    char want[200];
    snprintf(want, sizeof want, "d80 %s r offer5 email:discount percent=5 -", nid);
    ck_assert_str_eq(a.line[2], want);
#if SEG_HAVE_SQLITE
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open_v2(dbpath, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(h, "SELECT group_concat(customer_id || ':' || run) FROM "
                                           "(SELECT * FROM seg_journey_states_v ORDER BY "
                                           "customer_id)", -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    snprintf(want, sizeof want, "%s:1,cid:1", nid);
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), want);
    sqlite3_finalize(q);
    sqlite3_close(h);
#endif
    /* after a reopen the same */
    reopen_file();
    open_journeys(react);
    ck_assert_int_eq(seg_journey_status_get(&st, jr, "r", "ann"), SEG_ENOTFOUND);
    ck_assert_str_eq(state_of("r", nid), "offer5");
    ck_assert_str_eq(state_of("r", "cid"), "offer10");
    seg_free(nid);
    unlink(dbpath);
}
END_TEST

START_TEST(states_survive_reopen)
{
    if (!SEG_HAVE_SQLITE)
        return;
    open_file_db("");
    open_journeys(react);
    purchase("ann", T0, 1000);
    purchase("bob", T0 + 5 * DAY, 1000);
    OK(db, seg_journey_advance(jr, T0 + 62 * DAY)); /* ann offer5 (d60) */
    reopen_file();
    open_journeys(react);
    ck_assert_str_eq(state_of("r", "ann"), "offer5");
    ck_assert_str_eq(state_of("r", "bob"), "wait");
    /* the action emitted before the reopen is still in the outbox (never
     * acknowledged); the same advance again emits nothing */
    static const char *const before[] = { "d60 ann r offer5 email:discount percent=5 -" };
    expect_actions(before, 1);
    OK(db, seg_journey_advance(jr, T0 + 62 * DAY));
    expect_actions(before, 1);
    ack_all();
    /* on: ann d74 offer10, bob d65 offer5 */
    ck_assert_int_eq(seg_journey_advance(jr, T0 + 61 * DAY), SEG_ERANGE); /* the clock too */
    OK(db, seg_journey_advance(jr, T0 + 75 * DAY));
    static const char *const want[] = {
        "d65 bob r offer5 email:discount percent=5 -",
        "d74 ann r offer10 email:discount percent=10 -",
    };
    expect_actions(want, 2);
#if SEG_HAVE_SQLITE
    /* the readable view of the schema (doc/journey.md), read without the
     * library, says the same */
    {
        sqlite3 *h = NULL;
        ck_assert_int_eq(sqlite3_open_v2(dbpath, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        sqlite3_stmt *q = NULL;
        ck_assert_int_eq(sqlite3_prepare_v2(h, "SELECT group_concat(journey || ':' || customer_id "
                                               "|| ':' || state || ':' || run, ' ') FROM (SELECT * "
                                               "FROM seg_journey_states_v ORDER BY customer_id)",
                                            -1, &q, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
        ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), "r:ann:offer10:1 r:bob:offer5:1");
        sqlite3_finalize(q);
        sqlite3_close(h);
    }
#endif
    reopen_file();
    /* a changed definition: 'offer10' is gone (ann leaves, reason removed),
     * 'offer5' is still there (bob stays) */
    const char *changed =
        "journey r {\n"
        "  enter when orders >= 1;\n"
        "  state wait { after 60d since last_purchase -> offer5; }\n"
        "  state offer5 { on purchase -> exit; after 30d -> exit; }\n"
        "}\n";
    open_journeys(changed);
    seg_journey_status st = SEG_JOURNEY_STATUS_INIT;
    OK(db, seg_journey_status_get(&st, jr, "r", "ann"));
    ck_assert_ptr_null(st.state);
    ck_assert_int_eq(st.exit_reason, SEG_JOURNEY_EXIT_REMOVED);
    ck_assert_str_eq(state_of("r", "bob"), "offer5");
    reopen_file();
    open_journeys(changed); /* the exit was stored */
    OK(db, seg_journey_status_get(&st, jr, "r", "ann"));
    ck_assert_int_eq(st.exit_reason, SEG_JOURNEY_EXIT_REMOVED);
    OK(db, seg_journey_status_get(&st, jr, "r", "bob"));
    ck_assert_int_eq(st.since, T0 + 65 * DAY);
    unlink(dbpath);
}
END_TEST

/* ======================================================================== */
/* the shipped journeys on scripted timelines                                */
/* ======================================================================== */

START_TEST(shipped_journeys)
{
    char *src = read_file(SEG_SRCDIR "/examples/definitions/journeys.seg");
    open_journeys(src);
    free(src);
    consent("new1");
    consent("vip1");
    consent("lapsed1");
    /* new customers: first purchase (d0) -> welcome; 7 days on, a
     * discount for the 2nd; the 2nd (d10) -> bundle offer; 3rd (d20) ->
     * loyal, and out */
    purchase("new1", T0, 5000);
    ck_assert_str_eq(state_of("new_customers", "new1"), "welcome");
    OK(db, seg_journey_advance(jr, T0 + 8 * DAY));
    purchase("new1", T0 + 10 * DAY, 5000);
    purchase("new1", T0 + 20 * DAY, 5000);
    /* VIP nurturing: high spending active loyal (first purchase > 90 days
     * ago, 3 orders, spend(365d) >= 300.00): vip1 buys at d0, d30, d100
     * (200.00 each): on the third purchase the segment holds -> welcome,
     * 7 days on, upsell */
    purchase("vip1", T0, 20000);
    purchase("vip1", T0 + 30 * DAY, 20000);
    purchase("vip1", T0 + 100 * DAY, 20000);
    ck_assert_str_eq(state_of("vip_nurturing", "vip1"), "welcome");
    OK(db, seg_journey_advance(jr, T0 + 110 * DAY));
    ck_assert_str_eq(state_of("vip_nurturing", "vip1"), "upsell");
    /* core reactivation: churned regular (2 orders, last > 180 days ago):
     * lapsed1 buys at d0 and d10, churned from d191 (days_since > 180);
     * 'after 60d since last_purchase' is due at once: the first offer at
     * d191 too */
    purchase("lapsed1", T0, 3000);
    purchase("lapsed1", T0 + 10 * DAY, 3000);
    OK(db, seg_journey_advance(jr, T0 + 200 * DAY));
    seg_journey_status st = SEG_JOURNEY_STATUS_INIT;
    OK(db, seg_journey_status_get(&st, jr, "core_reactivation", "lapsed1"));
    bool held = strcmp(st.variant, "holdout") == 0;
    ck_assert_str_eq(st.state, "offer5");
    ck_assert_int_eq(st.since, T0 + 191 * DAY);
    acts a;
    collect_actions(&a);
    /* in emission order; besides what the comments above say: vip1's
     * first purchase (200.00) makes it a high spending new customer with
     * consent: potential_vip's invite at d0, the reminder 14 days on (sent
     * when the d30 purchase comes in: what was due first happens first);
     * lapsed1's first purchase (30.00, orders 1) makes it a regular new
     * customer: new_customers' welcome, then the 2nd-purchase discount at
     * d7 and the bundle offer on its 2nd purchase (d10); vip1, last
     * purchase d100, is a high spending inactive loyal customer from d191
     * (91 days): the account manager's call */
    const char *want[] = {
        "d0 new1 new_customers welcome email:welcome - -",
        "d7 new1 new_customers second email:second_purchase_discount percent=10 -",
        "d10 new1 new_customers third email:bundle_offer - -",
        "d20 new1 new_customers loyal tag:loyal - -",
        "d20 new1 new_customers loyal email:loyalty_welcome - -",
        "d0 vip1 potential_vip invite email:vip_invite - -",
        "d14 vip1 potential_vip reminder email:vip_invite_reminder - -",
        "d100 vip1 vip_nurturing welcome email:vip_thanks - -",
        "d107 vip1 vip_nurturing upsell email:upsell collection=premium -",
        "d0 lapsed1 new_customers welcome email:welcome - -",
        "d7 lapsed1 new_customers second email:second_purchase_discount percent=10 -",
        "d10 lapsed1 new_customers third email:bundle_offer - -",
        "d191 vip1 vip_reactivation call task:account_manager_call priority=high -",
    };
    size_t nw = sizeof want / sizeof want[0];
    if (getenv("JR_DEBUG"))
        for (size_t i = 0; i < a.n; i++)
            fprintf(stderr, "  %s\n", a.line[i]);
    ck_assert_uint_eq(a.n, nw + (held ? 0 : 1));
    for (size_t i = 0; i < nw; i++)
        ck_assert_str_eq(a.line[i], want[i]);
    if (!held) {
        char w[200];
        snprintf(w, sizeof w, "d191 lapsed1 core_reactivation offer5 email:discount percent=5 %s",
                 st.variant);
        ck_assert_str_eq(a.line[nw], w);
    }
}
END_TEST

START_TEST(seasonal_journey)
{
    /* a guest last seen in 2021 waits, dormant, for the booking season:
     * the offer at 2025-01-01, not when the guest went quiet */
    char *src = read_file(SEG_SRCDIR "/examples/definitions/seasonal.seg");
    open_journeys(src);
    free(src);
    consent("guest");
    int64_t t2021, t2024, t2025, t2026;
    OK(db, seg_time_parse(&t2021, "2021-07-01", 10));
    OK(db, seg_time_parse(&t2024, "2024-06-01", 10));
    OK(db, seg_time_parse(&t2025, "2025-01-01", 10));
    OK(db, seg_time_parse(&t2026, "2025-06-01", 10));
    purchase("guest", t2021, 90000);
    OK(db, seg_journey_advance(jr, t2024));
    ck_assert_str_eq(state_of("seasonal_reactivation", "guest"), "dormant_wait");
    /* advanced once a month (a condition that holds only between two
     * advances is not seen: doc/journey.md) */
    for (int64_t t = t2024; t < t2026; t += 30 * DAY)
        OK(db, seg_journey_advance(jr, t));
    OK(db, seg_journey_advance(jr, t2026));
    acts a;
    collect_actions(&a);
    ck_assert_uint_eq(a.n, 2);
    char w[200];
    snprintf(w, sizeof w, "d%lld guest seasonal_reactivation season_offer email:season_offer "
             "season=winter -", (long long)((t2025 - T0) / DAY));
    ck_assert_str_eq(a.line[0], w);
    snprintf(w, sizeof w, "d%lld guest seasonal_reactivation - email:season_last_call - -",
             (long long)((t2025 - T0) / DAY + 30));
    ck_assert_str_eq(a.line[1], w);
}
END_TEST

/* ======================================================================== */
/* failures: a batch or an advance that fails changes nothing                */
/* ======================================================================== */

static const char *rollback_defs =
    "journey a { enter when orders >= 1; variant x 50; holdout 50; goal purchase;\n"
    "  state s1 { do \"email:hi\"; after 2d -> s2 do \"email:two\"(n: 2); on purchase -> s3; }\n"
    "  state s2 { after 30h -> s3 do \"sms:three\"; after 50h for holdout -> exit; }\n"
    "  state s3 { after 20d since last_purchase -> exit do \"email:bye\"; } }\n"
    "journey b { enter when orders >= 2; reenter always;\n"
    "  state t { after 9h -> u do \"email:b\"; }\n"
    "  state u { after 1h -> v do \"email:c\"; }\n"
    "  state v { after 2h -> exit do \"email:d\"; } }\n";

#define RB_CUSTS 60

/* The counting allocator, refusing one allocation: the rb_fail_at-th from
 * rb_calls = 0 (0: none); what the rollback then allocates succeeds. */
static unsigned long rb_calls, rb_fail_at;

static int rb_refuse(void)
{
    return rb_fail_at && ++rb_calls == rb_fail_at;
}

static void *rb_malloc(size_t size, void *ud)
{
    return rb_refuse() ? NULL : tu_malloc(size, ud);
}

static void *rb_realloc(void *ptr, size_t size, void *ud)
{
    size_t old = 0;
    if (ptr)
        memcpy(&old, (unsigned char *)ptr - TU_HDR, sizeof old);
    if ((!ptr || size > old) && rb_refuse())
        return NULL;
    return tu_realloc(ptr, size, ud);
}

typedef struct rb_text {
    char *out;
    size_t n, cap;
} rb_text;

static int rb_item(const seg_outbox_item *e, void *payload)
{
    rb_text *t = payload;
    t->n += (size_t)snprintf(t->out + t->n, t->cap - t->n, "%llu %lld %s %s %llu %s %s %s;",
                             (unsigned long long)e->seq, (long long)e->time, e->customer_id,
                             e->journey, (unsigned long long)e->run, e->state, e->action,
                             e->params);
    ck_assert_uint_lt(t->n, t->cap);
    return 0;
}

/* Everything a customer-visible state holds: statuses, the report and the
 * actions in the outbox, as one text. */
static void rb_snapshot(seg_db *d, seg_journey *j, char *out, size_t cap)
{
    size_t n = 0;
    for (int c = 0; c < RB_CUSTS; c++) {
        char id[16];
        snprintf(id, sizeof id, "c%d", c);
        for (int x = 0; x < 2; x++) {
            seg_journey_status st = SEG_JOURNEY_STATUS_INIT;
            int rc = seg_journey_status_get(&st, j, x ? "b" : "a", id);
            if (rc == SEG_ENOTFOUND)
                continue;
            ck_assert_int_eq(rc, SEG_OK);
            n += (size_t)snprintf(out + n, cap - n, "%s/%d:%s,%u,%lld,%s,%d,%d;", id, x,
                                  st.state ? st.state : "-", (unsigned)st.run,
                                  (long long)st.since, st.variant ? st.variant : "-",
                                  st.converted, st.exit_reason);
            ck_assert_uint_lt(n, cap);
        }
    }
    rb_text t = { out, n, cap };
    ck_assert_int_eq(seg_outbox_fetch(NULL, d, INT64_MAX,
                                      SEG_OUTBOX_PENDING | SEG_OUTBOX_SUPPRESSED, 0, rb_item, &t),
                     SEG_OK);
}

static int rb_row(const seg_journey_row *r, void *payload)
{
    char *b = payload;
    size_t n = strlen(b);
    snprintf(b + n, 4096 - n, "%s %d %s %llu %llu %llu;", r->journey, r->kind, r->name,
             (unsigned long long)r->entered, (unsigned long long)r->converted,
             (unsigned long long)r->active);
    return 0;
}

static void rb_report(seg_journey *j, char *out)
{
    out[0] = '\0';
    ck_assert_int_eq(seg_journey_report(j, rb_row, out), SEG_OK);
}

/* the events of phase k (0: the first purchases, 1: a batch of second
 * purchases and new customers) */
static void rb_events(seg_event *ev, char ids[][2][16], int k, size_t *n)
{
    *n = 0;
    for (int c = 0; c < RB_CUSTS; c++) {
        if (k == 1 && c % 3 != 0)
            continue;
        seg_event e = SEG_EVENT_INIT;
        snprintf(ids[*n][0], 16, "c%d", c);
        snprintf(ids[*n][1], 16, "e%d.%d", k, c);
        e.kind = SEG_EVENT_PURCHASE;
        e.customer_id = ids[*n][0];
        e.event_id = ids[*n][1];
        e.order_id = ids[*n][1];
        e.ts = T0 + (k ? 3 * DAY : 0) + (int64_t)((c * 7919) % (2 * DAY));
        e.amount = 1000;
        ev[(*n)++] = e;
    }
    if (k == 1) { /* c1 enters b at d4 21:30: 'after 9h' at d5 06:30 in the first advance,
                   * then 'after 1h' due after it stops (d5 07:00), in the same bucket */
        seg_event e = SEG_EVENT_INIT;
        snprintf(ids[*n][0], 16, "c1");
        snprintf(ids[*n][1], 16, "g1");
        e.kind = SEG_EVENT_PURCHASE;
        e.customer_id = ids[*n][0];
        e.event_id = ids[*n][1];
        e.order_id = ids[*n][1];
        e.ts = T0 + 4 * DAY + 21 * 3600 + 1800;
        e.amount = 1000;
        ev[(*n)++] = e;
    }
    if (k == 1) /* and customers never seen before */
        for (int c = RB_CUSTS - 10; c < RB_CUSTS; c++) {
            seg_event e = SEG_EVENT_INIT;
            snprintf(ids[*n][0], 16, "c%d", c);
            snprintf(ids[*n][1], 16, "f%d", c);
            e.kind = SEG_EVENT_PURCHASE;
            e.customer_id = ids[*n][0];
            e.event_id = ids[*n][1];
            e.order_id = ids[*n][1];
            e.ts = T0 + 4 * DAY + c * 3600;
            e.amount = 2000;
            ev[(*n)++] = e;
        }
}

/* One trial: ingest phase 0 (customers c50.. come only in phase 1), then
 * phase 1 as a batch, then advances to day 5 + 7 h and to day 40; step
 * `fail_step` is
 * first tried with the allocator refusing its allocation number k + 1 (k <
 * 0: none).  A failure must leave the statuses, the report and the actions
 * as they were, and the step done again must succeed.  The statuses, report
 * and actions at the end go to out/rep_out; returns whether the refusal
 * happened. */
static bool rb_trial(int fail_step, long k, int *failed, char *out, size_t cap, char *rep_out)
{
    static char ids[2 * RB_CUSTS][2][16], before[65536], got[65536], rep[4096],
        rep_before[4096];
    seg_event ev[2 * RB_CUSTS];
    tu_alloc a;
    memset(&a, 0, sizeof a);
    a.fail_after = -1;
    seg_allocator al = tu_allocator(&a);
    al.malloc = rb_malloc;
    al.realloc = rb_realloc;
    rb_fail_at = 0;
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    o.allocator = &al;
    seg_db *d = NULL;
    seg_segdef *sd = NULL;
    seg_journey *j = NULL;
    bool reached = false;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_OK);
    OK(d, seg_segdef_compile(&sd, d, rollback_defs, strlen(rollback_defs)));
    OK(d, seg_journey_open(&j, sd));
    size_t n;
    rb_events(ev, ids, 0, &n);
    for (size_t i = 0; i < n; i++)
        if (atoi(ev[i].customer_id + 1) < RB_CUSTS - 10)
            OK(d, seg_event_ingest(d, &ev[i]));
    for (int step = 0; step < 3; step++)
        for (int attempt = 0; attempt < 2; attempt++) {
            bool fail = step == fail_step && attempt == 0 && k >= 0;
            if (fail) {
                rb_snapshot(d, j, before, sizeof before);
                rb_report(j, rep_before);
            }
            rb_calls = 0;
            rb_fail_at = fail ? (unsigned long)k + 1 : 0;
            int rc;
            if (step == 0) {
                rb_events(ev, ids, 1, &n);
                seg_ingest_options io = SEG_INGEST_OPTIONS_INIT;
                rc = seg_event_ingest_batch(d, ev, n, &io, NULL);
            } else { /* the first one stops in the middle of a bucket of timers */
                rc = seg_journey_advance(j, step == 1 ? T0 + 5 * DAY + 7 * 3600 : T0 + 40 * DAY);
            }
            reached |= fail && rb_calls >= rb_fail_at;
            rb_fail_at = 0;
            if (rc == SEG_OK)
                break; /* (a refusal it can do without must change no result) */
            ck_assert_msg(fail && rc == SEG_ENOMEM, "step %d, refusal %ld: %d (%s)", step, k,
                          rc, seg_errmsg(d));
            (*failed)++;
            rb_snapshot(d, j, got, sizeof got);
            ck_assert_msg(strcmp(got, before) == 0, "step %d, refusal %ld: the state changed",
                          step, k);
            rb_report(j, rep);
            ck_assert_str_eq(rep, rep_before);
        }
    rb_snapshot(d, j, out, cap);
    rb_report(j, rep_out);
    uint64_t queued = 0;
    ck_assert_int_eq(seg_outbox_count(&queued, d, SEG_OUTBOX_PENDING | SEG_OUTBOX_SUPPRESSED),
                     SEG_OK);
    ck_assert_uint_gt(queued, 50);
    seg_journey_close(j);
    seg_segdef_free(sd);
    seg_db_close(d);
    ck_assert_int_eq(a.live_blocks, 0);
    return reached;
}

/* A batch or an advance that fails (out of memory at its 1st, 2nd, 3rd,
 * 4th, 6th, 9th ... allocation) changes nothing, and done again, ends where
 * a run without failures does. */
START_TEST(failures_change_nothing)
{
    static char want[65536], got[65536], rep_want[4096], rep[4096];
    int failed = 0;
    rb_trial(-1, -1, &failed, want, sizeof want, rep_want);
    for (int step = 0; step < 3; step++) {
        failed = 0;
        for (long k = 0; rb_trial(step, k, &failed, got, sizeof got, rep);
             k = k < 3 ? k + 1 : k + k / 2) {
            ck_assert_msg(strcmp(got, want) == 0, "step %d, refusal %ld: not as without it",
                          step, k);
            ck_assert_str_eq(rep, rep_want);
        }
        ck_assert_msg(failed > 0, "step %d: no failure", step);
    }
}
END_TEST

static Suite *journey_suite(void)
{
    Suite *s = suite_create("journey");
    TCase *tc = tcase_create("language");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, examples_print_and_parse_back);
    tcase_add_test(tc, structural_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("engine");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, timers_in_time_order);
    tcase_add_test(tc, events_between_timers);
    tcase_add_test(tc, time_only_condition_fires_when_true);
    tcase_add_test(tc, entry_on_time_and_exit_rules);
    tcase_add_test(tc, split_holdout_and_conversions);
    tcase_add_test(tc, action_callback_order);
    tcase_add_test(tc, journey_state_value);
    tcase_add_test(tc, failures_change_nothing);
    suite_add_tcase(s, tc);
    tc = tcase_create("persistence");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, states_survive_reopen);
    tcase_add_test(tc, erase_leaves_journeys);
    suite_add_tcase(s, tc);
    tc = tcase_create("examples");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, shipped_journeys);
    tcase_add_test(tc, seasonal_journey);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(journey_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
