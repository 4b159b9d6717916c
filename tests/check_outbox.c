/*
 * tests/check_outbox.c: the outbox (lib/outbox/).
 *
 * White-box: actions are emitted through lib/outbox/outbox-private.h inside
 * seg__st_begin/commit + seg__modules_txn_end, as the journey engine does;
 * everything else through the public API (and SQLite's C API to read the
 * file).
 *
 *   check_outbox core   the queue, dedupe, caps, persistence, faults, views
 *   check_outbox tz     time zones and send windows (exit 77, skipped,
 *                       when the system has no zoneinfo directory)
 *
 * Environment: SEG_SOURCE_ROOT, the source tree (for doc/outbox.md).
 */
#define _XOPEN_SOURCE 700 /* nftw, setenv */
#include "testutil.h"

#include "core/core-private.h"
#include "outbox/outbox-private.h"
#include "storage/storage-private.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if SEG_HAVE_SQLITE
#include <sqlite3.h>
#endif

static seg_db *db;
static char tmpdir[PATH_MAX];
static char pbuf[4][PATH_MAX];
static int pnext;
static char open_err[512];

static const char *P(const char *name)
{
    char *b = pbuf[pnext++ & 3];
    size_t n = strlen(tmpdir), m = strlen(name);
    ck_assert_uint_lt(n + m + 2, PATH_MAX);
    memcpy(b, tmpdir, n);
    b[n] = '/';
    memcpy(b + n + 1, name, m + 1);
    return b;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/segoutboxXXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    db = NULL;
}

static void teardown(void)
{
    seg_db_close(db);
    db = NULL;
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int open_be(seg_db **out, const char *path, uint32_t flags, const seg_storage_backend *be)
{
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    o.flags = flags;
    o.storage = be;
    o.errbuf = open_err;
    o.errbuf_size = sizeof open_err;
    open_err[0] = '\0';
    return seg_db_open(out, path, &o);
}

static void open_mem(void)
{
    ck_assert_int_eq(seg_db_open(&db, ":memory:", NULL), SEG_OK);
}

/* ---- emitting as the journey engine does ---- */

static seg__action act(const char *cust, const char *journey, uint64_t run, const char *step,
                       int64_t t, const char *channel)
{
    seg__action a;
    memset(&a, 0, sizeof a);
    a.time = t;
    a.customer_id = cust;
    a.journey = journey;
    a.run = run;
    a.step = step;
    a.state = "offer5";
    a.action = "email:discount_5";
    a.channel = channel;
    a.params = "discount=5;channel=email";
    a.variant = NULL;
    return a;
}

/* one transaction emitting n actions; outcomes and seqs may be NULL */
static int emit_n(seg_db *d, const seg__action *a, size_t n, int *outcomes, uint64_t *seqs)
{
    int rc = seg__st_begin(d);
    for (size_t k = 0; k < n && rc == SEG_OK; k++) {
        int o;
        uint64_t s;
        rc = seg__outbox_emit(d, &a[k], &o, &s);
        if (outcomes)
            outcomes[k] = o;
        if (seqs)
            seqs[k] = s;
    }
    if (rc == SEG_OK)
        rc = seg__st_commit(d);
    if (rc != SEG_OK)
        seg__st_rollback(d);
    seg__modules_txn_end(d, rc == SEG_OK);
    return rc;
}

static int emit1(seg_db *d, seg__action a, int *outcome, uint64_t *seq)
{
    return emit_n(d, &a, 1, outcome, seq);
}

/* ---- reading the whole outbox as text ---- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) SEG_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->n + (size_t)need + 1 > b->cap) {
        b->cap = (b->n + (size_t)need + 1) * 2;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)need + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)need;
}

/* s with line feeds as "\n", in one of two rotating buffers */
static const char *esc_nl(const char *s)
{
    static char b[2][8192];
    static int w;
    char *o = b[w++ & 1], *p = o;
    for (; *s && p < o + sizeof b[0] - 3; s++) {
        if (*s == '\n') {
            *p++ = '\\';
            *p++ = 'n';
        } else {
            *p++ = *s;
        }
    }
    *p = '\0';
    return o;
}

static int dump_cb(const seg_outbox_item *it, void *payload)
{
    sb_printf(payload, "%llu|%s|%lld|%lld|%s|%s|%llu|%s|%s|%s|%s|%s\n",
              (unsigned long long)it->seq, it->status == SEG_OUTBOX_PENDING ? "P" : "S",
              (long long)it->due, (long long)it->time, it->customer_id, it->journey,
              (unsigned long long)it->run, it->state, it->action,
              it->channel ? it->channel : "-", esc_nl(it->params),
              it->variant ? it->variant : "-");
    return 0;
}

/* every entry, in seq order (fetch gives due order: sort the lines by seq) */
static char *dump(seg_db *d)
{
    sbuf b = { NULL, 0, 0 };
    sb_printf(&b, "%s", "");
    size_t n;
    TU_OK(d, seg_outbox_fetch(&n, d, INT64_MAX, SEG_OUTBOX_PENDING | SEG_OUTBOX_SUPPRESSED, 0,
                              dump_cb, &b));
    /* sort lines by their seq number */
    char **lines = calloc(n + 1, sizeof *lines);
    size_t k = 0;
    for (char *s = strtok(b.p, "\n"); s; s = strtok(NULL, "\n"))
        lines[k++] = s;
    ck_assert_uint_eq(k, n);
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0 && strtoull(lines[j - 1], NULL, 10) > strtoull(lines[j], NULL, 10);
             j--) {
            char *t = lines[j];
            lines[j] = lines[j - 1];
            lines[j - 1] = t;
        }
    sbuf o = { NULL, 0, 0 };
    sb_printf(&o, "%s", "");
    for (size_t i = 0; i < k; i++)
        sb_printf(&o, "%s\n", lines[i]);
    free(lines);
    free(b.p);
    return o.p;
}

typedef struct seqs {
    uint64_t s[64];
    size_t n;
} seqs;

static int seqs_cb(const seg_outbox_item *it, void *payload)
{
    seqs *q = payload;
    ck_assert_uint_lt(q->n, 64);
    q->s[q->n++] = it->seq;
    return 0;
}

static seqs fetch_seqs(seg_db *d, int64_t now, uint32_t flags)
{
    seqs q;
    memset(&q, 0, sizeof q);
    size_t n;
    TU_OK(d, seg_outbox_fetch(&n, d, now, flags, 0, seqs_cb, &q));
    ck_assert_uint_eq(n, q.n);
    return q;
}

static uint64_t count(seg_db *d, uint32_t flags)
{
    uint64_t n;
    TU_OK(d, seg_outbox_count(&n, d, flags));
    return n;
}

/* ======================================================================== */
/* the queue                                                                 */
/* ======================================================================== */

START_TEST(emit_fetch_ack)
{
    open_mem();
    int o;
    uint64_t s1, s2, s3;
    seg__action a = act("alice", "core_reactivation", 1, "wait>offer5", TU_DAYN(2), "email");
    a.variant = "B";
    TU_OK(db, emit1(db, a, &o, &s1));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED);
    ck_assert_uint_eq(s1, 1);
    TU_OK(db, emit1(db, act("bob", "core_reactivation", 1, "wait>offer5", TU_DAYN(1), NULL), &o,
                    &s2));
    TU_OK(db, emit1(db, act("carol", "vip", 1, "enter", TU_DAYN(5), "sms"), &o, &s3));
    ck_assert_uint_eq(s2, 2);
    ck_assert_uint_eq(s3, 3);
    ck_assert_uint_eq(count(db, 0), 3);
    /* due at or before now, by due time: bob (day 1) before alice (day 2) */
    seqs q = fetch_seqs(db, TU_DAYN(2), 0);
    ck_assert_uint_eq(q.n, 2);
    ck_assert_uint_eq(q.s[0], 2);
    ck_assert_uint_eq(q.s[1], 1);
    ck_assert_uint_eq(fetch_seqs(db, TU_DAYN(1) - 1, 0).n, 0);
    /* the fields */
    seg_outbox_item it = SEG_OUTBOX_ITEM_INIT;
    TU_OK(db, seg_outbox_get(&it, db, 1));
    ck_assert_uint_eq(it.seq, 1);
    ck_assert_uint_eq(it.status, SEG_OUTBOX_PENDING);
    ck_assert_int_eq(it.due, TU_DAYN(2));
    ck_assert_int_eq(it.time, TU_DAYN(2));
    ck_assert_str_eq(it.customer_id, "alice");
    ck_assert_str_eq(it.journey, "core_reactivation");
    ck_assert_uint_eq(it.run, 1);
    ck_assert_str_eq(it.state, "offer5");
    ck_assert_str_eq(it.action, "email:discount_5");
    ck_assert_str_eq(it.channel, "email");
    ck_assert_str_eq(it.params, "discount=5;channel=email");
    ck_assert_str_eq(it.variant, "B");
    TU_OK(db, seg_outbox_get(&it, db, 2));
    ck_assert_ptr_null(it.channel);
    ck_assert_ptr_null(it.variant);
    /* max */
    seqs m;
    memset(&m, 0, sizeof m);
    size_t n;
    TU_OK(db, seg_outbox_fetch(&n, db, INT64_MAX, 0, 1, seqs_cb, &m));
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(m.s[0], 2);
    /* ack: removed; a repeated ack is skipped; a never-issued seq refused */
    uint64_t ack[2] = { 2, 1 };
    size_t acked;
    TU_OK(db, seg_outbox_ack(&acked, db, ack, 2));
    ck_assert_uint_eq(acked, 2);
    TU_OK(db, seg_outbox_ack(&acked, db, ack, 2));
    ck_assert_uint_eq(acked, 0);
    ck_assert_uint_eq(count(db, 0), 1);
    TU_RC(db, seg_outbox_get(&it, db, 1), SEG_ENOTFOUND);
    TU_MSG_HAS(db, "seq 1");
    uint64_t bad[2] = { 3, 4 };
    TU_RC(db, seg_outbox_ack(&acked, db, bad, 2), SEG_EINVAL);
    TU_MSG_HAS(db, "seq 4 was never issued");
    ck_assert_uint_eq(count(db, 0), 1); /* seq 3 was not acknowledged */
    bad[0] = 0;
    TU_RC(db, seg_outbox_ack(NULL, db, bad, 1), SEG_EINVAL);
    /* sequence numbers are never reused */
    TU_OK(db, emit1(db, act("dave", "vip", 1, "enter", TU_DAYN(5), "sms"), &o, &s1));
    ck_assert_uint_eq(s1, 4);
}
END_TEST

START_TEST(dedupe)
{
    open_mem();
    int o;
    uint64_t s;
    seg__action a = act("alice", "j", 1, "wait>offer5", TU_DAYN(0), "email");
    TU_OK(db, emit1(db, a, &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED);
    /* the same identity: a duplicate, whatever else differs */
    a.time += 3600;
    a.action = "email:other";
    a.params = "x=1";
    TU_OK(db, emit1(db, a, &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_DUPLICATE);
    ck_assert_uint_eq(s, 1);
    /* within one transaction too */
    seg__action two[2] = { act("bob", "j", 1, "s", 0, NULL), act("bob", "j", 1, "s", 0, NULL) };
    int outs[2];
    TU_OK(db, emit_n(db, two, 2, outs, NULL));
    ck_assert_int_eq(outs[0], SEG__EMIT_QUEUED);
    ck_assert_int_eq(outs[1], SEG__EMIT_DUPLICATE);
    /* acknowledged: still remembered */
    uint64_t one = 1;
    TU_OK(db, seg_outbox_ack(NULL, db, &one, 1));
    TU_OK(db, emit1(db, a, &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_DUPLICATE);
    ck_assert_uint_eq(s, 0);
    /* another run, step, journey or customer is another action */
    const seg__action others[4] = {
        act("alice", "j", 2, "wait>offer5", 0, NULL), act("alice", "j", 1, "wait>offer10", 0, NULL),
        act("alice", "k", 1, "wait>offer5", 0, NULL), act("alicf", "j", 1, "wait>offer5", 0, NULL),
    };
    for (int k = 0; k < 4; k++) {
        TU_OK(db, emit1(db, others[k], &o, &s));
        ck_assert_int_eq(o, SEG__EMIT_QUEUED);
    }
    /* identities are not confused by where one string ends: ("ab","c") vs ("a","bc") */
    TU_OK(db, emit1(db, act("ab", "c", 1, "s", 0, NULL), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED);
    TU_OK(db, emit1(db, act("a", "bc", 1, "s", 0, NULL), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED);
}
END_TEST

START_TEST(rollback_discards)
{
    open_mem();
    int o;
    uint64_t s;
    TU_OK(db, emit1(db, act("alice", "j", 1, "a", 0, NULL), &o, &s));
    char *before = dump(db);
    /* emits of a transaction that rolls back leave nothing */
    ck_assert_int_eq(seg__st_begin(db), SEG_OK);
    seg__action zero;
    memset(&zero, 0, sizeof zero);
    TU_RC(db, seg__outbox_emit(db, &zero, &o, &s), SEG_EINVAL);
    seg__action a = act("bob", "j", 1, "a", 0, NULL);
    TU_OK(db, seg__outbox_emit(db, &a, &o, &s));
    ck_assert_uint_eq(s, 2);
    seg__st_rollback(db);
    seg__modules_txn_end(db, false);
    char *after = dump(db);
    ck_assert_str_eq(before, after);
    /* not remembered: queued again, with the same seq */
    TU_OK(db, emit1(db, a, &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED);
    ck_assert_uint_eq(s, 2);
    free(before);
    free(after);
}
END_TEST

START_TEST(bad_input)
{
    open_mem();
    int o;
    uint64_t s;
    TU_OK(db, emit1(db, act("alice", "j", 1, "a", 0, "email"), &o, &s));
    char *before = dump(db);
    struct {
        seg__action a;
        int code;
        const char *msg;
    } bad[] = {
        { act(NULL, "j", 1, "a", 0, NULL), SEG_EINVAL, "customer_id" },
        { act("", "j", 1, "a", 0, NULL), SEG_EINVAL, "customer_id: empty" },
        { act("x", NULL, 1, "a", 0, NULL), SEG_EINVAL, "journey" },
        { act("x", "j", 0, "a", 0, NULL), SEG_EINVAL, "run" },
        { act("x", "j", 1, NULL, 0, NULL), SEG_EINVAL, "step: NULL" },
        { act("x", "j", 1, "", 0, NULL), SEG_EINVAL, "step: empty" },
        { act("x", "j", 1, "a", 0, ""), SEG_EINVAL, "channel" },
        { act("x", "j", 1, "a", 0, "e\tmail"), SEG_EINVAL, "channel" },
        { act("x", "j", 1, "a", SEG_TIME_MAX + 1, NULL), SEG_ERANGE, "time" },
        { act("x", "j", 1, "a\xff", 0, NULL), SEG_EINVAL, "step: not valid UTF-8" },
    };
    bad[3].a.run = 0;
    seg__action noaction = act("x", "j", 1, "a", 0, NULL);
    noaction.action = NULL;
    seg__action badparams = act("x", "j", 1, "a", 0, NULL);
    badparams.params = "\xc3";
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        TU_RC(db, emit1(db, bad[k].a, &o, &s), bad[k].code);
        TU_MSG_HAS(db, bad[k].msg);
    }
    TU_RC(db, emit1(db, noaction, &o, &s), SEG_EINVAL);
    TU_MSG_HAS(db, "action: NULL");
    TU_RC(db, emit1(db, badparams, &o, &s), SEG_EINVAL);
    TU_MSG_HAS(db, "params");
    TU_RC(db, seg__outbox_emit(db, NULL, &o, &s), SEG_EINVAL);
    TU_RC(db, seg__outbox_emit(db, &noaction, NULL, &s), SEG_EINVAL);
    char *after = dump(db);
    ck_assert_str_eq(before, after);
    /* the public calls */
    TU_RC(db, seg_outbox_fetch(NULL, db, 0, 0, 0, NULL, NULL), SEG_EINVAL);
    TU_RC(db, seg_outbox_fetch(NULL, db, 0, 0x10, 0, dump_cb, NULL), SEG_EINVAL);
    TU_MSG_HAS(db, "unknown flags");
    TU_RC(db, seg_outbox_count(NULL, db, 0), SEG_EINVAL);
    TU_RC(db, seg_outbox_ack(NULL, db, NULL, 1), SEG_EINVAL);
    TU_OK(db, seg_outbox_ack(NULL, db, NULL, 0));
    seg_outbox_item it = SEG_OUTBOX_ITEM_INIT;
    it.struct_size = 8;
    TU_RC(db, seg_outbox_get(&it, db, 1), SEG_EVERSION);
    ck_assert_int_eq(seg_outbox_fetch(NULL, NULL, 0, 0, 0, dump_cb, NULL), SEG_EINVAL);
    ck_assert_int_eq(seg_outbox_ack(NULL, NULL, NULL, 0), SEG_EINVAL);
    ck_assert_int_eq(seg__outbox_emit(NULL, &noaction, &o, &s), SEG_EINVAL);
    TU_RC(db, seg_outbox_set_cap(db, "email", 1, 0), SEG_EINVAL);
    TU_MSG_HAS(db, "period");
    TU_RC(db, seg_outbox_set_cap(db, "email", 10001, 60), SEG_EINVAL);
    TU_RC(db, seg_outbox_set_cap(db, NULL, 1, 60), SEG_EINVAL);
    TU_RC(db, seg_outbox_set_window(db, "email", 600, 600), SEG_EINVAL);
    TU_RC(db, seg_outbox_set_window(db, "email", 0, 1440), SEG_EINVAL);
    TU_RC(db, seg_outbox_set_window(db, "email", 1440, 10), SEG_EINVAL);
    TU_RC(db, seg_outbox_set_window(db, "email", -1, 10), SEG_EINVAL);
    TU_MSG_HAS(db, "minutes of the local day");
    TU_RC(db, seg_outbox_set_zone_attr(db, ""), SEG_EINVAL);
    TU_RC(db, seg_outbox_set_default_zone(db, "../etc/passwd"), SEG_EINVAL);
    TU_MSG_HAS(db, "not a zone name");
    TU_RC(db, seg_outbox_set_default_zone(db, "/etc/passwd"), SEG_EINVAL);
    TU_RC(db, seg_outbox_deliver(NULL, db, 0), SEG_EMISUSE);
    TU_MSG_HAS(db, "no callback");
    free(before);
    free(after);
}
END_TEST

/* ack inside the fetch callback: the usual pull loop */
static int ack_each(const seg_outbox_item *it, void *payload)
{
    seg_db *d = payload;
    return seg_outbox_ack(NULL, d, &it->seq, 1) == SEG_OK ? 0 : 1;
}

START_TEST(ack_inside_fetch)
{
    open_mem();
    char id[32];
    seg__action a[200];
    char ids[200][16];
    for (int k = 0; k < 200; k++) {
        snprintf(ids[k], sizeof ids[k], "c%03d", k);
        a[k] = act(ids[k], "j", 1, "s", TU_DAYN(k % 7), NULL);
    }
    TU_OK(db, emit_n(db, a, 200, NULL, NULL));
    size_t n;
    TU_OK(db, seg_outbox_fetch(&n, db, TU_DAYN(3), 0, 0, ack_each, db));
    /* days 0..3 of 7 */
    uint64_t expect = 0;
    for (int k = 0; k < 200; k++)
        expect += k % 7 <= 3;
    ck_assert_uint_eq(n, expect);
    ck_assert_uint_eq(count(db, 0), 200 - expect);
    TU_OK(db, seg_outbox_fetch(&n, db, INT64_MAX, 0, 0, ack_each, db));
    ck_assert_uint_eq(count(db, 0), 0);
    snprintf(id, sizeof id, "c%03d", 5);
    int o;
    TU_OK(db, emit1(db, act(id, "j", 1, "s", 0, NULL), &o, NULL));
    ck_assert_int_eq(o, SEG__EMIT_DUPLICATE);
}
END_TEST

/* ---- push delivery ---- */

typedef struct dctx {
    seg_db *db;
    int calls;
    int fail_seq;   /* return 1 for this seq */
    int stop_seq;   /* return -1 for this seq */
    int nested_rc;
    uint64_t got[64];
} dctx;

static int deliver_cb(const seg_outbox_item *it, void *payload)
{
    dctx *c = payload;
    c->got[c->calls++] = it->seq;
    size_t n;
    c->nested_rc = seg_outbox_fetch(&n, c->db, 0, 0, 0, dump_cb, NULL);
    if ((int)it->seq == c->fail_seq)
        return 1;
    if ((int)it->seq == c->stop_seq)
        return -1;
    return 0;
}

START_TEST(push_delivery)
{
    open_mem();
    seg__action a[6];
    char ids[6][8];
    for (int k = 0; k < 6; k++) {
        snprintf(ids[k], sizeof ids[k], "c%d", k);
        a[k] = act(ids[k], "j", 1, "s", TU_DAYN(k), NULL);
    }
    TU_OK(db, emit_n(db, a, 6, NULL, NULL));
    dctx c;
    memset(&c, 0, sizeof c);
    c.db = db;
    c.fail_seq = 2;
    c.stop_seq = 4;
    TU_OK(db, seg_outbox_set_callback(db, deliver_cb, &c));
    size_t n;
    TU_OK(db, seg_outbox_deliver(&n, db, TU_DAYN(4)));
    /* 1 delivered, 2 failed (stays), 3 delivered, 4 stops the run (stays) */
    ck_assert_int_eq(c.calls, 4);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(c.nested_rc, SEG_EMISUSE);
    seqs q = fetch_seqs(db, INT64_MAX, 0);
    ck_assert_uint_eq(q.n, 4);
    ck_assert_uint_eq(q.s[0], 2);
    ck_assert_uint_eq(q.s[1], 4);
    ck_assert_uint_eq(q.s[2], 5);
    /* the next call offers the failed ones again */
    memset(&c, 0, sizeof c);
    c.db = db;
    TU_OK(db, seg_outbox_deliver(&n, db, INT64_MAX));
    ck_assert_int_eq(c.calls, 4);
    ck_assert_uint_eq(n, 4);
    ck_assert_uint_eq(count(db, 0), 0);
    TU_OK(db, seg_outbox_set_callback(db, NULL, NULL));
    TU_RC(db, seg_outbox_deliver(&n, db, INT64_MAX), SEG_EMISUSE);
}
END_TEST

/* ======================================================================== */
/* frequency caps                                                            */
/* ======================================================================== */

START_TEST(caps)
{
    open_mem();
    TU_OK(db, seg_outbox_set_cap(db, "email", 2, TU_DAY));
    TU_OK(db, seg_outbox_set_cap(db, "email", 3, 7 * TU_DAY));
    int o;
    uint64_t s;
    /* two a day across journeys; the third of the day is suppressed */
    TU_OK(db, emit1(db, act("alice", "j1", 1, "a", TU_DAYN(0) + 3600, "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED);
    TU_OK(db, emit1(db, act("alice", "j2", 1, "a", TU_DAYN(0) + 7200, "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED);
    TU_OK(db, emit1(db, act("alice", "j3", 1, "a", TU_DAYN(0) + 10800, "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_SUPPRESSED);
    ck_assert_uint_eq(s, 3);
    /* other customers and channels are not affected; no channel: no cap */
    TU_OK(db, emit1(db, act("bob", "j3", 1, "a", TU_DAYN(0) + 10800, "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED);
    TU_OK(db, emit1(db, act("alice", "j3", 1, "b", TU_DAYN(0) + 10800, "sms"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED);
    TU_OK(db, emit1(db, act("alice", "j3", 1, "c", TU_DAYN(0) + 10800, NULL), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED);
    /* a day after the first: the daily cap has room, the weekly one has 1 */
    TU_OK(db, emit1(db, act("alice", "j4", 1, "a", TU_DAYN(1) + 3600, "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED);
    TU_OK(db, emit1(db, act("alice", "j5", 1, "a", TU_DAYN(2) + 3600, "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_SUPPRESSED);
    /* a week later, room again */
    TU_OK(db, emit1(db, act("alice", "j6", 1, "a", TU_DAYN(7) + 3601, "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED);
    /* the suppressed ones are listed, never delivered, acknowledged like others */
    seqs q = fetch_seqs(db, INT64_MAX, SEG_OUTBOX_SUPPRESSED);
    ck_assert_uint_eq(q.n, 2);
    ck_assert_uint_eq(q.s[0], 3);
    ck_assert_uint_eq(count(db, SEG_OUTBOX_SUPPRESSED), 2);
    ck_assert_uint_eq(count(db, SEG_OUTBOX_PENDING | SEG_OUTBOX_SUPPRESSED), 9);
    seg_outbox_item it = SEG_OUTBOX_ITEM_INIT;
    TU_OK(db, seg_outbox_get(&it, db, 3));
    ck_assert_uint_eq(it.status, SEG_OUTBOX_SUPPRESSED);
    ck_assert_str_eq(it.journey, "j3");
    q = fetch_seqs(db, INT64_MAX, 0);
    for (size_t k = 0; k < q.n; k++)
        ck_assert_uint_ne(q.s[k], 3);
    /* a suppressed duplicate stays a duplicate */
    TU_OK(db, emit1(db, act("alice", "j3", 1, "a", TU_DAYN(9), "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_DUPLICATE);
    ck_assert_uint_eq(s, 3);
    /* removing the caps */
    TU_OK(db, seg_outbox_set_cap(db, "email", 0, TU_DAY));
    TU_OK(db, seg_outbox_set_cap(db, "email", 0, 7 * TU_DAY));
    TU_OK(db, emit1(db, act("alice", "j7", 1, "a", TU_DAYN(7) + 3602, "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED);
    /* at most 8 caps on a channel */
    for (int k = 1; k <= 8; k++)
        TU_OK(db, seg_outbox_set_cap(db, "push", 5, k * 60));
    TU_RC(db, seg_outbox_set_cap(db, "push", 5, 9 * 60), SEG_ELIMIT);
    TU_OK(db, seg_outbox_set_cap(db, "push", 6, 8 * 60)); /* replacing is fine */
}
END_TEST

/* a rolled-back transaction does not count against the caps */
START_TEST(caps_rollback)
{
    open_mem();
    TU_OK(db, seg_outbox_set_cap(db, "email", 1, TU_DAY));
    int o;
    uint64_t s;
    ck_assert_int_eq(seg__st_begin(db), SEG_OK);
    seg__action a = act("alice", "j1", 1, "a", TU_DAYN(0), "email");
    TU_OK(db, seg__outbox_emit(db, &a, &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED);
    seg__st_rollback(db);
    seg__modules_txn_end(db, false);
    TU_OK(db, emit1(db, act("alice", "j2", 1, "a", TU_DAYN(0), "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED);
    TU_OK(db, emit1(db, act("alice", "j3", 1, "a", TU_DAYN(0), "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_SUPPRESSED);
}
END_TEST

#if SEG_HAVE_SQLITE

/* ======================================================================== */
/* persistence with SQLite                                                   */
/* ======================================================================== */

static int open_sq(seg_db **out, const char *path, uint32_t flags)
{
    return open_be(out, path, flags, seg_storage_sqlite());
}

START_TEST(sqlite_reopen)
{
    const char *path = P("o.db");
    ck_assert_int_eq(open_sq(&db, path, SEG_DB_CREATE), SEG_OK);
    TU_OK(db, seg_outbox_set_cap(db, "email", 1, TU_DAY));
    int o;
    uint64_t s;
    seg__action a = act("alice", "j", 1, "a", TU_DAYN(0), "email");
    a.params = "quote=\"x\";back=\\;tab=\t;nl=\n;utf8=\xc3\xa9";
    a.variant = "holdout";
    TU_OK(db, emit1(db, a, &o, &s));
    TU_OK(db, emit1(db, act("bob", "j", 1, "a", TU_DAYN(1), NULL), &o, &s));
    TU_OK(db, emit1(db, act("carol", "j", 1, "a", TU_DAYN(2), NULL), &o, &s));
    TU_OK(db, emit1(db, act("alice", "k", 1, "a", TU_DAYN(0) + 60, "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_SUPPRESSED);
    uint64_t two = 2;
    TU_OK(db, seg_outbox_ack(NULL, db, &two, 1));
    char *before = dump(db);
    seg_db_close(db);
    db = NULL;
    ck_assert_int_eq(open_sq(&db, path, 0), SEG_OK);
    char *after = dump(db);
    ck_assert_str_eq(before, after);
    TU_STR_HAS(after, "quote=\"x\";back=\\;tab=\t;nl=\\n;utf8=\xc3\xa9");
    /* acknowledged: gone; the others still there */
    seg_outbox_item it = SEG_OUTBOX_ITEM_INIT;
    TU_RC(db, seg_outbox_get(&it, db, 2), SEG_ENOTFOUND);
    TU_OK(db, seg_outbox_get(&it, db, 1));
    ck_assert_str_eq(it.variant, "holdout");
    /* every identity remembered (acknowledged, pending, suppressed) */
    const char *custs[4] = { "alice", "bob", "carol", "alice" };
    const char *js[4] = { "j", "j", "j", "k" };
    for (int k = 0; k < 4; k++) {
        TU_OK(db, emit1(db, act(custs[k], js[k], 1, "a", TU_DAYN(3), NULL), &o, &s));
        ck_assert_int_eq(o, SEG__EMIT_DUPLICATE);
    }
    /* the cap counter survived (the cap itself is per open) */
    TU_OK(db, seg_outbox_set_cap(db, "email", 1, TU_DAY));
    TU_OK(db, emit1(db, act("alice", "m", 1, "a", TU_DAYN(0) + 120, "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_SUPPRESSED);
    ck_assert_uint_eq(s, 5);
    /* acknowledge everything: after a reopen, seqs go on */
    uint64_t all[5] = { 1, 2, 3, 4, 5 };
    TU_OK(db, seg_outbox_ack(NULL, db, all, 5));
    seg_db_close(db);
    db = NULL;
    ck_assert_int_eq(open_sq(&db, path, 0), SEG_OK);
    ck_assert_uint_eq(count(db, SEG_OUTBOX_PENDING | SEG_OUTBOX_SUPPRESSED), 0);
    TU_OK(db, emit1(db, act("dave", "j", 1, "a", TU_DAYN(3), NULL), &o, &s));
    ck_assert_uint_eq(s, 6);
    TU_OK(db, emit1(db, act("carol", "j", 1, "a", TU_DAYN(3), NULL), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_DUPLICATE);
    free(before);
    free(after);
}
END_TEST

/* many acknowledgements: several d: records; every identity remembered */
START_TEST(sqlite_many_acks)
{
    const char *path = P("m.db");
    ck_assert_int_eq(open_sq(&db, path, SEG_DB_CREATE), SEG_OK);
    enum { N = 700 };
    static char ids[N][12];
    static seg__action a[N];
    for (int k = 0; k < N; k++) {
        snprintf(ids[k], sizeof ids[k], "c%d", k);
        a[k] = act(ids[k], "j", 1, "s", TU_DAYN(0), NULL);
    }
    TU_OK(db, emit_n(db, a, N, NULL, NULL));
    /* acknowledge in three calls of different sizes */
    static uint64_t q[N];
    for (int k = 0; k < N; k++)
        q[k] = (uint64_t)k + 1;
    TU_OK(db, seg_outbox_ack(NULL, db, q, 100));
    TU_OK(db, seg_outbox_ack(NULL, db, q + 100, 300));
    TU_OK(db, seg_outbox_ack(NULL, db, q + 400, 250));
    seg_db_close(db);
    db = NULL;
    ck_assert_int_eq(open_sq(&db, path, 0), SEG_OK);
    ck_assert_uint_eq(count(db, 0), 50);
    int outs[N];
    TU_OK(db, emit_n(db, a, N, outs, NULL));
    for (int k = 0; k < N; k++)
        ck_assert_int_eq(outs[k], SEG__EMIT_DUPLICATE);
    /* ... the rest, then more */
    TU_OK(db, seg_outbox_ack(NULL, db, q + 650, 50));
    seg__action b = act("new", "j", 1, "s", 0, NULL);
    int o;
    uint64_t s;
    TU_OK(db, emit1(db, b, &o, &s));
    ck_assert_uint_eq(s, N + 1);
    seg_db_close(db);
    db = NULL;
    ck_assert_int_eq(open_sq(&db, path, 0), SEG_OK);
    TU_OK(db, emit_n(db, a, N, outs, NULL));
    for (int k = 0; k < N; k++)
        ck_assert_int_eq(outs[k], SEG__EMIT_DUPLICATE);
    /* the records: compact (not one per acknowledged action) */
    seg_db_close(db);
    db = NULL;
    sqlite3 *h;
    ck_assert_int_eq(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(h, "SELECT count(*) FROM seg_records WHERE tbl = "
                                        "'outbox' AND key LIKE 'd:%'", -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), (N + 255) / 256);
    sqlite3_finalize(st);
    sqlite3_close(h);
}
END_TEST

/* read-only: the outbox is readable, acknowledging is refused */
START_TEST(sqlite_readonly)
{
    const char *path = P("r.db");
    ck_assert_int_eq(open_sq(&db, path, SEG_DB_CREATE), SEG_OK);
    int o;
    uint64_t s;
    TU_OK(db, emit1(db, act("alice", "j", 1, "a", 0, NULL), &o, &s));
    seg_db_close(db);
    db = NULL;
    ck_assert_int_eq(open_sq(&db, path, SEG_DB_READONLY), SEG_OK);
    ck_assert_uint_eq(count(db, 0), 1);
    uint64_t one = 1;
    TU_RC(db, seg_outbox_ack(NULL, db, &one, 1), SEG_EREADONLY);
    TU_RC(db, emit1(db, act("bob", "j", 1, "a", 0, NULL), &o, &s), SEG_EREADONLY);
    ck_assert_uint_eq(count(db, 0), 1);
}
END_TEST

/* a crash (SIGKILL) between emit and ack loses nothing */
START_TEST(sqlite_crash)
{
    const char *path = P("k.db");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        seg_db *d;
        if (open_sq(&d, path, SEG_DB_CREATE) != SEG_OK)
            _exit(2);
        int o;
        uint64_t s;
        for (int k = 0; k < 3; k++) {
            char id[8];
            snprintf(id, sizeof id, "c%d", k);
            if (emit1(d, act(id, "j", 1, "a", k, NULL), &o, &s) != SEG_OK)
                _exit(3);
        }
        uint64_t one = 1;
        if (seg_outbox_ack(NULL, d, &one, 1) != SEG_OK)
            _exit(4);
        kill(getpid(), SIGKILL);
        _exit(5);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    ck_assert_int_eq(open_sq(&db, path, 0), SEG_OK);
    seqs q = fetch_seqs(db, INT64_MAX, 0);
    ck_assert_uint_eq(q.n, 2);
    ck_assert_uint_eq(q.s[0], 2);
    ck_assert_uint_eq(q.s[1], 3);
}
END_TEST

/* ---- the readable view of doc/outbox.md ---- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    sbuf b = { NULL, 0, 0 };
    char buf[4096];
    size_t n;
    sb_printf(&b, "%s", "");
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sb_printf(&b, "%.*s", (int)n, buf);
    fclose(f);
    return b.p;
}

/* the SQL block after the <!-- seg_outbox_v --> marker of doc/outbox.md */
static char *view_sql(void)
{
    const char *root = getenv("SEG_SOURCE_ROOT");
    ck_assert_msg(root != NULL, "SEG_SOURCE_ROOT not set");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/doc/outbox.md", root);
    char *doc = read_file(path);
    char *m = strstr(doc, "<!-- seg_outbox_v -->");
    ck_assert_ptr_nonnull(m);
    char *start = strstr(m, "```sql\n");
    ck_assert_ptr_nonnull(start);
    start += 7;
    char *end = strstr(start, "```");
    ck_assert_ptr_nonnull(end);
    *end = '\0';
    char *sql = strdup(start);
    free(doc);
    return sql;
}

START_TEST(sqlite_view)
{
    const char *path = P("v.db");
    ck_assert_int_eq(open_sq(&db, path, SEG_DB_CREATE), SEG_OK);
    TU_OK(db, seg_outbox_set_cap(db, "email", 1, TU_DAY));
    int o;
    uint64_t s;
    seg__action a = act("alice", "j", 1, "wait>offer5", TU_DAYN(0), "email");
    a.variant = "A";
    a.params = "d=\"5\"";
    TU_OK(db, emit1(db, a, &o, &s));
    TU_OK(db, emit1(db, act("bob", "k", 2, "enter", TU_DAYN(1), NULL), &o, &s));
    TU_OK(db, emit1(db, act("alice", "k", 1, "enter", TU_DAYN(0) + 5, "email"), &o, &s));
    TU_OK(db, emit1(db, act("carol", "k", 1, "enter", TU_DAYN(0) + 5, NULL), &o, &s));
    uint64_t four = 4;
    TU_OK(db, seg_outbox_ack(NULL, db, &four, 1));
    char *lib = dump(db);
    seg_db_close(db);
    db = NULL;
    /* the view over the file, as the library would list it */
    sqlite3 *h;
    ck_assert_int_eq(sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    char *sql = view_sql();
    TU_STR_HAS(sql, "CREATE VIEW seg_outbox_v");
    /* as a TEMP view: the file's schema stays as it is */
    sbuf tv = { NULL, 0, 0 };
    const char *cv = strstr(sql, "CREATE VIEW");
    sb_printf(&tv, "CREATE TEMP VIEW%s", cv + strlen("CREATE VIEW"));
    char *err = NULL;
    ck_assert_msg(sqlite3_exec(h, tv.p, NULL, NULL, &err) == SQLITE_OK, "%s", err);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(h, "SELECT seq, status, due, time, customer_id, journey, "
                                        "run, state, action, channel, params, variant, step, "
                                        "due_time FROM seg_outbox_v ORDER BY seq",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sbuf v = { NULL, 0, 0 };
    sb_printf(&v, "%s", "");
    int rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *ch = (const char *)sqlite3_column_text(st, 9);
        const char *var = (const char *)sqlite3_column_text(st, 11);
        const char *status = (const char *)sqlite3_column_text(st, 1);
        sb_printf(&v, "%lld|%s|%lld|%lld|%s|%s|%lld|%s|%s|%s|%s|%s\n",
                  sqlite3_column_int64(st, 0), strcmp(status, "pending") == 0 ? "P" : "S",
                  sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3),
                  sqlite3_column_text(st, 4), sqlite3_column_text(st, 5),
                  sqlite3_column_int64(st, 6), sqlite3_column_text(st, 7),
                  sqlite3_column_text(st, 8), ch ? ch : "-",
                  esc_nl((const char *)sqlite3_column_text(st, 10)),
                  var ? var : "-");
        /* the step and a readable due time */
        ck_assert_ptr_nonnull(sqlite3_column_text(st, 12));
        char iso[32];
        seg_time_format(iso, sizeof iso, sqlite3_column_int64(st, 2));
        iso[10] = ' ';
        iso[19] = '\0';
        ck_assert_str_eq((const char *)sqlite3_column_text(st, 13), iso);
        rows++;
    }
    sqlite3_finalize(st);
    ck_assert_int_eq(rows, 3);
    ck_assert_str_eq(v.p, lib);
    /* nothing was added to the file's schema */
    ck_assert_int_eq(sqlite3_prepare_v2(h, "SELECT count(*) FROM sqlite_schema WHERE name = "
                                        "'seg_outbox_v'", -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    free(v.p);
    free(tv.p);
    free(sql);
    free(lib);
}
END_TEST

/* ---- fault injection: fail the Nth storage call ---- */

typedef struct fi_env {
    long calls, fail_at, failures;
} fi_env;

typedef struct fi_storage {
    seg_storage base;
    fi_env *env;
    seg_storage *inner;
} fi_storage;

static fi_env fi;
static const seg_storage_methods fi_methods;

static int fi_count(seg_storage *st, const char *what)
{
    fi_env *e = ((fi_storage *)st)->env;
    if (++e->calls != e->fail_at)
        return SEG_OK;
    e->failures++;
    return seg_storage_set_error(st, SEG_ESTORAGE, "injected failure of call %ld (%s)",
                                 e->calls, what);
}

#define IN(st) (((fi_storage *)(st))->inner)
#define IM(st) (IN(st)->methods)

static int fi_open(seg_storage *st, const char *uri, uint32_t flags, void *app_data)
{
    fi_storage *f = (fi_storage *)st;
    st->methods = &fi_methods;
    f->env = app_data;
    int rc = fi_count(st, "open");
    if (rc != SEG_OK)
        return rc;
    const seg_storage_backend *ib = seg_storage_sqlite();
    f->inner = calloc(1, ib->storage_size);
    ck_assert_ptr_nonnull(f->inner);
    f->inner->core = st->core;
    return ib->methods->open(f->inner, uri, flags, ib->app_data);
}
static void fi_close(seg_storage *st)
{
    fi_storage *f = (fi_storage *)st;
    if (f->inner) {
        seg_storage_sqlite()->methods->close(f->inner);
        free(f->inner);
        f->inner = NULL;
    }
}
static int fi_load(seg_storage *st, const seg_storage_sink *sink, void *ctx)
{
    int rc = fi_count(st, "load");
    return rc ? rc : IM(st)->load(IN(st), sink, ctx);
}
static int fi_begin(seg_storage *st)
{
    int rc = fi_count(st, "begin");
    return rc ? rc : IM(st)->begin(IN(st));
}
static int fi_commit(seg_storage *st)
{
    int rc = fi_count(st, "commit");
    return rc ? rc : IM(st)->commit(IN(st));
}
static int fi_rollback(seg_storage *st) { return IM(st)->rollback(IN(st)); }
static int fi_put_meta(seg_storage *st, const char *k, const char *v)
{
    int rc = fi_count(st, "put_meta");
    return rc ? rc : IM(st)->put_meta(IN(st), k, v);
}
static int fi_put_record(seg_storage *st, const char *t, const char *k, const void *d, size_t n)
{
    int rc = fi_count(st, "put_record");
    return rc ? rc : IM(st)->put_record(IN(st), t, k, d, n);
}
static int fi_load_records(seg_storage *st, const char *t, const seg_storage_sink *sink,
                           void *ctx)
{
    int rc = fi_count(st, "load_records");
    return rc ? rc : IM(st)->load_records(IN(st), t, sink, ctx);
}

static const seg_storage_methods fi_methods = {
    SEG_STORAGE_METHODS_V2, fi_open, fi_close, fi_load, fi_begin, fi_commit, fi_rollback,
    fi_put_meta, NULL, NULL, NULL, NULL, NULL, fi_put_record, fi_load_records,
};
static const seg_storage_backend fi_backend = {
    SEG_STORAGE_BACKEND_V1, sizeof(fi_storage), "faulty", &fi_methods, &fi,
};

#define NSTEPS 6

/* one step of the workload: emits in a transaction, or acks */
static int step(seg_db *d, int k)
{
    seg__action a[3];
    switch (k) {
    case 0:
        a[0] = act("alice", "j", 1, "a", TU_DAYN(0), "email");
        a[1] = act("bob", "j", 1, "a", TU_DAYN(0), "email");
        return emit_n(d, a, 2, NULL, NULL);
    case 1:
        a[0] = act("alice", "k", 1, "a", TU_DAYN(0) + 60, "email"); /* suppressed */
        a[1] = act("carol", "k", 1, "a", TU_DAYN(1), NULL);
        a[2] = act("alice", "j", 1, "a", TU_DAYN(0), "email"); /* duplicate */
        return emit_n(d, a, 3, NULL, NULL);
    case 2: {
        uint64_t s[2] = { 1, 3 };
        return seg_outbox_ack(NULL, d, s, 2);
    }
    case 3:
        a[0] = act("alice", "m", 1, "a", TU_DAYN(0) + 120, "email"); /* suppressed */
        a[1] = act("alice", "n", 1, "a", TU_DAYN(2), "email");
        return emit_n(d, a, 2, NULL, NULL);
    case 4: {
        uint64_t s[2] = { 2, 4 };
        return seg_outbox_ack(NULL, d, s, 2);
    }
    default:
        a[0] = act("dave", "j", 1, "a", TU_DAYN(3), "email");
        return emit_n(d, a, 1, NULL, NULL);
    }
}

/* which identities the db remembers: emit each, then roll back */
static char *probe(seg_db *d)
{
    static const char *const ids[][2] = {
        { "alice", "j" }, { "bob", "j" }, { "alice", "k" }, { "carol", "k" },
        { "alice", "m" }, { "alice", "n" }, { "dave", "j" }, { "erin", "j" },
    };
    sbuf b = { NULL, 0, 0 };
    sb_printf(&b, "%s", "");
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        seg__action a = act(ids[k][0], ids[k][1], 1, "a", 0, NULL);
        int o = -1;
        ck_assert_int_eq(seg__st_begin(d), SEG_OK);
        ck_assert_int_eq(seg__outbox_emit(d, &a, &o, NULL), SEG_OK);
        seg__st_rollback(d);
        seg__modules_txn_end(d, false);
        sb_printf(&b, "%d", o);
    }
    return b.p;
}

static char *stored_state(const char *path)
{
    seg_db *r;
    ck_assert_int_eq(open_be(&r, path, SEG_DB_READONLY, seg_storage_sqlite()), SEG_OK);
    char *s = dump(r);
    seg_db_close(r);
    return s;
}

START_TEST(sqlite_faults)
{
    const char *path = P("f.db");
    /* the clean run */
    memset(&fi, 0, sizeof fi);
    ck_assert_int_eq(open_be(&db, path, SEG_DB_CREATE, &fi_backend), SEG_OK);
    TU_OK(db, seg_outbox_set_cap(db, "email", 1, TU_DAY));
    for (int k = 0; k < NSTEPS; k++)
        TU_OK(db, step(db, k));
    char *clean = dump(db);
    long total = fi.calls;
    seg_db_close(db);
    db = NULL;
    ck_assert_int_gt(total, 20);
    /* a fresh db for the probe of the clean run */
    ck_assert_int_eq(open_be(&db, path, 0, seg_storage_sqlite()), SEG_OK);
    char *clean_probe = probe(db);
    seg_db_close(db);
    db = NULL;
    for (long n = 1; n <= total; n++) {
        static const char *const suffix[] = { "", "-wal", "-shm", "-seglock" };
        for (int k = 0; k < 4; k++) {
            char p[PATH_MAX + 16];
            snprintf(p, sizeof p, "%s%s", path, suffix[k]);
            unlink(p);
        }
        memset(&fi, 0, sizeof fi);
        fi.fail_at = n;
        int rc = open_be(&db, path, SEG_DB_CREATE, &fi_backend);
        if (rc != SEG_OK) {
            ck_assert_int_eq(rc, SEG_ESTORAGE);
            ck_assert_int_eq(open_be(&db, path, SEG_DB_CREATE, &fi_backend), SEG_OK);
        }
        TU_OK(db, seg_outbox_set_cap(db, "email", 1, TU_DAY) == SEG_ESTORAGE
                      ? seg_outbox_set_cap(db, "email", 1, TU_DAY)
                      : SEG_OK);
        for (int k = 0; k < NSTEPS; k++) {
            long before = fi.failures;
            rc = step(db, k);
            if (fi.failures == before) {
                ck_assert_msg(rc == SEG_OK, "call %ld, step %d: %d %s", n, k, rc,
                              seg_errmsg(db));
                continue;
            }
            ck_assert_msg(rc == SEG_ESTORAGE, "call %ld, step %d: %d %s", n, k, rc,
                          seg_errmsg(db));
            TU_MSG_HAS(db, "injected failure");
            /* memory and file agree */
            char *mem = dump(db), *file = stored_state(path);
            ck_assert_msg(strcmp(mem, file) == 0, "call %ld step %d:\nmemory:\n%sfile:\n%s", n,
                          k, mem, file);
            free(mem);
            free(file);
            TU_OK(db, step(db, k));
        }
        ck_assert_int_eq(fi.failures, 1);
        char *end = dump(db);
        ck_assert_msg(strcmp(end, clean) == 0, "call %ld:\n%s\nclean:\n%s", n, end, clean);
        free(end);
        seg_db_close(db);
        db = NULL;
        /* and after a reopen: the same entries, the same identities */
        ck_assert_int_eq(open_be(&db, path, 0, seg_storage_sqlite()), SEG_OK);
        end = dump(db);
        ck_assert_str_eq(end, clean);
        char *pr = probe(db);
        ck_assert_str_eq(pr, clean_probe);
        free(pr);
        free(end);
        seg_db_close(db);
        db = NULL;
    }
    free(clean);
    free(clean_probe);
}
END_TEST

#endif /* SEG_HAVE_SQLITE */

/* the allocator fails: errors, no leak, nothing half-done */
static long am_calls, am_fail_at;
static void *am_malloc(size_t n, void *ud)
{
    (void)ud;
    if (++am_calls == am_fail_at)
        return NULL;
    return malloc(n);
}
static void *am_realloc(void *p, size_t n, void *ud)
{
    (void)ud;
    if (++am_calls == am_fail_at)
        return NULL;
    return realloc(p, n);
}
static void am_free(void *p, void *ud)
{
    (void)ud;
    free(p);
}

START_TEST(out_of_memory)
{
    seg_allocator al = { sizeof al, am_malloc, am_realloc, am_free, NULL };
    for (long n = 1;; n++) {
        am_calls = 0;
        am_fail_at = 0;
        seg_db_options o = SEG_DB_OPTIONS_INIT;
        o.allocator = &al;
        ck_assert_int_eq(seg_db_open(&db, ":memory:", &o), SEG_OK);
        am_calls = 0;
        am_fail_at = n;
        int rc = seg_outbox_set_cap(db, "email", 1, TU_DAY);
        int o1 = -1, o2 = -1;
        if (rc == SEG_OK)
            rc = emit1(db, act("alice", "j", 1, "a", 0, "email"), &o1, NULL);
        if (rc == SEG_OK)
            rc = emit1(db, act("alice", "k", 1, "a", 0, "email"), &o2, NULL);
        uint64_t one = 1;
        if (rc == SEG_OK)
            rc = seg_outbox_ack(NULL, db, &one, 1);
        bool failed = am_calls >= n;
        am_fail_at = 0;
        if (!failed) {
            ck_assert_int_eq(rc, SEG_OK);
            seg_db_close(db);
            db = NULL;
            break;
        }
        ck_assert_msg(rc == SEG_ENOMEM, "allocation %ld: %d %s", n, rc, seg_errmsg(db));
        /* consistent: a retry of everything works */
        TU_OK(db, seg_outbox_set_cap(db, "email", 1, TU_DAY));
        TU_OK(db, emit1(db, act("alice", "j", 1, "a", 0, "email"), &o1, NULL));
        TU_OK(db, emit1(db, act("alice", "k", 1, "a", 0, "email"), &o2, NULL));
        ck_assert_int_ne(o2, SEG__EMIT_QUEUED);
        seg_db_close(db);
        db = NULL;
    }
}
END_TEST

/* @@TZ@@ */

static Suite *core_suite(void)
{
    Suite *s = suite_create("outbox");
    TCase *tc = tcase_create("queue");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, emit_fetch_ack);
    tcase_add_test(tc, dedupe);
    tcase_add_test(tc, rollback_discards);
    tcase_add_test(tc, bad_input);
    tcase_add_test(tc, ack_inside_fetch);
    tcase_add_test(tc, push_delivery);
    tcase_add_test(tc, caps);
    tcase_add_test(tc, caps_rollback);
    tcase_add_test(tc, out_of_memory);
    suite_add_tcase(s, tc);
#if SEG_HAVE_SQLITE
    tc = tcase_create("sqlite");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, sqlite_reopen);
    tcase_add_test(tc, sqlite_many_acks);
    tcase_add_test(tc, sqlite_readonly);
    tcase_add_test(tc, sqlite_crash);
    tcase_add_test(tc, sqlite_view);
    tcase_add_test(tc, sqlite_faults);
    suite_add_tcase(s, tc);
#endif
    return s;
}

int main(int argc, char **argv)
{
    (void)argc; (void)argv;
    SRunner *sr = srunner_create(core_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
