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
    ck_assert_uint_eq(s, 0);
    ck_assert_uint_eq(count(db, 0), 1);
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
    ck_assert_uint_eq(s, 0);
    ck_assert_uint_eq(count(db, SEG_OUTBOX_SUPPRESSED), 2);
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
    /* a transaction whose emits pruned the counter, rolled back: the old
     * counts are back */
    TU_OK(db, seg_outbox_set_cap(db, "sms", 5, 3600));
    seg__action three[3] = { act("bob", "a", 1, "a", TU_DAYN(0), "sms"),
                             act("bob", "b", 1, "a", TU_DAYN(0) + 10, "sms"),
                             act("bob", "c", 1, "a", TU_DAYN(0) + 20, "sms") };
    TU_OK(db, emit_n(db, three, 3, NULL, NULL));
    ck_assert_int_eq(seg__st_begin(db), SEG_OK);
    for (int k = 0; k < 3; k++) {
        char step[8];
        snprintf(step, sizeof step, "x%d", k);
        seg__action late = act("bob", "late", 1, step, TU_DAYN(1) + k, "sms");
        TU_OK(db, seg__outbox_emit(db, &late, &o, &s));
        ck_assert_int_eq(o, SEG__EMIT_QUEUED);
    }
    seg__st_rollback(db);
    seg__modules_txn_end(db, false);
    int outs[3];
    seg__action more[3] = { act("bob", "d", 1, "a", TU_DAYN(0) + 30, "sms"),
                            act("bob", "e", 1, "a", TU_DAYN(0) + 40, "sms"),
                            act("bob", "f", 1, "a", TU_DAYN(0) + 50, "sms") };
    TU_OK(db, emit_n(db, more, 3, outs, NULL));
    ck_assert_int_eq(outs[0], SEG__EMIT_QUEUED);
    ck_assert_int_eq(outs[1], SEG__EMIT_QUEUED);
    ck_assert_int_eq(outs[2], SEG__EMIT_SUPPRESSED);
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

/* Erasing or anonymizing a customer takes their queued actions and cap
 * counters with them, on disk too; their identities stay known. */
/* emits in one transaction through seg__outbox_emit_many; *done checked */
static int emit_many_txn(seg_db *d, const seg__action *a, size_t n, int *outcomes, size_t *done)
{
    int rc = seg__st_begin(d);
    if (rc == SEG_OK)
        rc = seg__outbox_emit_many(d, a, n, outcomes, done);
    if (rc == SEG_OK)
        rc = seg__st_commit(d);
    if (rc != SEG_OK)
        seg__st_rollback(d);
    seg__modules_txn_end(d, rc == SEG_OK);
    return rc;
}

static uint32_t ci_of(seg_db *d, const char *id)
{
    return seg__cust_find(&d->store, seg__cstr(id));
}

/* entries keep the store's customer or their own copy of the id; the
 * caller's index is a hint (a wrong one changes nothing); names given in a
 * rewritten buffer, or stable ones the outbox was told to forget, are read
 * again */
START_TEST(customers_and_names)
{
    open_mem();
    const char *custs[3] = { "alice", "bob", "a-customer-id-longer-than-ten" };
    for (int k = 0; k < 3; k++) {
        seg_event e = tu_engagement(NULL, custs[k], TU_DAYN(0), "email_open");
        TU_OK(db, seg_event_ingest(db, &e));
    }
    uint32_t alice = ci_of(db, "alice"), bob = ci_of(db, "bob");
    ck_assert_uint_ne(alice, SEG__NONE);
    ck_assert_uint_ne(bob, SEG__NONE);
    char state[32];
    seg__action a[6];
    a[0] = act("alice", "j", 1, "s0", TU_DAYN(1), "email");
    a[0].cust_index = alice + 1;                     /* right */
    a[1] = act("alice", "j", 1, "s1", TU_DAYN(1), "email");
    a[1].cust_index = bob + 1;                       /* wrong: ignored */
    a[2] = act("zed", "j", 1, "s2", TU_DAYN(1), "email");
    a[2].cust_index = 1u << 30;                      /* out of range, not a customer */
    a[3] = act("a-customer-id-longer-than-ten", "j", 1, "s3", TU_DAYN(1), NULL);
    a[4] = act("bob", "j", 1, "s4", TU_DAYN(1), NULL);
    a[4].cust_index = bob + 1;
    a[5] = act("zed", "j", 1, "s5", TU_DAYN(1), NULL);
    int o[6];
    for (int k = 0; k < 6; k++) {
        snprintf(state, sizeof state, "state%d", k);
        a[k].state = state; /* one buffer, new text each time */
        TU_OK(db, emit1(db, a[k], &o[k], NULL));
        ck_assert_int_eq(o[k], SEG__EMIT_QUEUED);
    }
    char *d = dump(db);
    const char *want[6] = { "1|P|", "2|P|", "3|P|", "4|P|", "5|P|", "6|P|" };
    for (int k = 0; k < 6; k++) {
        char line[256];
        snprintf(line, sizeof line, "%s%lld|%lld|%s|j|1|state%d|email:discount_5|", want[k],
                 (long long)TU_DAYN(1), (long long)TU_DAYN(1), a[k].customer_id, k);
        ck_assert_msg(strstr(d, line), "no line '%s' in:\n%s", line, d);
    }
    free(d);
    /* the same identities again: duplicates whatever the hint */
    a[2].cust_index = alice + 1;
    TU_OK(db, emit1(db, a[2], &o[2], NULL));
    ck_assert_int_eq(o[2], SEG__EMIT_DUPLICATE);
    /* stable names: known by address until forgotten */
    seg__action b = act("zed", "j", 1, "t1", TU_DAYN(1), NULL);
    b.stable_names = true;
    snprintf(state, sizeof state, "before");
    b.state = state;
    TU_OK(db, emit1(db, b, &o[0], NULL));
    seg__outbox_forget_names(db);
    snprintf(state, sizeof state, "after");
    b.step = "t2";
    uint64_t seq;
    TU_OK(db, emit1(db, b, &o[0], &seq));
    seg_outbox_item it = { sizeof it, 0, 0, 0, 0, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL };
    TU_OK(db, seg_outbox_get(&it, db, seq));
    ck_assert_str_eq(it.state, "after");
    ck_assert_str_eq(it.customer_id, "zed");
    TU_OK(db, seg_outbox_get(&it, db, 1));
    ck_assert_str_eq(it.state, "state0");
    ck_assert_str_eq(it.customer_id, "alice");
    /* acknowledging most entries compacts the queue: the rest stay whole */
    uint64_t first7[7] = { 1, 2, 3, 4, 5, 6, 7 };
    size_t acked;
    TU_OK(db, seg_outbox_ack(&acked, db, first7, 7));
    ck_assert_uint_eq(acked, 7);
    TU_OK(db, seg_outbox_get(&it, db, seq));
    ck_assert_str_eq(it.customer_id, "zed");
    ck_assert_str_eq(it.state, "after");
}
END_TEST

/* seg__outbox_emit_many does what one seg__outbox_emit after the other
 * does, duplicates inside the batch included, and stops at a bad action */
START_TEST(emit_many)
{
    enum { N = 300 };
    static seg__action a[N];
    static char ids[N][16], steps[N][16];
    static int o1[N], o2[N];
    seg_db *other = NULL;
    open_mem();
    ck_assert_int_eq(seg_db_open(&other, ":memory:", NULL), SEG_OK);
    for (int k = 0; k < 40; k++) {
        char id[16];
        snprintf(id, sizeof id, "c%d", k);
        seg_event e = tu_engagement(NULL, id, TU_DAYN(0), "email_open");
        TU_OK(db, seg_event_ingest(db, &e));
        TU_OK(other, seg_event_ingest(other, &e));
    }
    TU_OK(db, seg_outbox_set_cap(db, "sms", 2, TU_DAY));
    TU_OK(other, seg_outbox_set_cap(other, "sms", 2, TU_DAY));
    for (int k = 0; k < N; k++) {
        /* 40 customers, 20 not; the last 50 repeat identities of the first */
        snprintf(ids[k], sizeof ids[k], "c%d", (k % 250) % 60);
        snprintf(steps[k], sizeof steps[k], "s%d", k % 250);
        a[k] = act(ids[k], k % 250 % 2 ? "j" : "k", 1, steps[k], TU_DAYN(1) + k,
                   k % 3 ? "email" : "sms");
        a[k].stable_names = true;
        uint32_t ci = ci_of(db, ids[k]);
        a[k].cust_index = ci == SEG__NONE ? 0 : ci + 1;
    }
    TU_OK(db, emit_n(db, a, N, o1, NULL));
    size_t done = 0;
    TU_OK(other, emit_many_txn(other, a, N, o2, &done));
    ck_assert_uint_eq(done, N);
    int dups = 0;
    for (int k = 0; k < N; k++) {
        ck_assert_int_eq(o1[k], o2[k]);
        dups += o1[k] == SEG__EMIT_DUPLICATE;
    }
    ck_assert_int_eq(dups, 50);
    char *d1 = dump(db), *d2 = dump(other);
    ck_assert_str_eq(d1, d2);
    free(d1);
    free(d2);
    /* a bad action in the middle: the ones before are emitted, then rolled
     * back with the transaction */
    for (int k = 0; k < 10; k++)
        snprintf(steps[k], sizeof steps[k], "n%d", k);
    a[6].run = 0;
    d2 = dump(other);
    ck_assert_int_eq(emit_many_txn(other, a, 10, o2, &done), SEG_EINVAL);
    ck_assert_uint_eq(done, 6);
    ck_assert_ptr_nonnull(strstr(seg_errmsg(other), "run"));
    char *d3 = dump(other);
    ck_assert_str_eq(d2, d3);
    free(d2);
    free(d3);
    seg_db_close(other);
}
END_TEST

START_TEST(customer_erased)
{
    const char *path = P("erase.db");
    ck_assert_int_eq(open_sq(&db, path, SEG_DB_CREATE), SEG_OK);
    const char *custs[3] = { "alice", "bob", "carol" };
    for (int k = 0; k < 3; k++) {
        seg_event e = tu_engagement(NULL, custs[k], TU_DAYN(0), "email_open");
        TU_OK(db, seg_event_ingest(db, &e));
    }
    TU_OK(db, seg_outbox_set_cap(db, "email", 2, TU_DAY));
    int o;
    uint64_t s;
    TU_OK(db, emit1(db, act("alice", "j", 1, "a", TU_DAYN(1), "email"), &o, &s));
    TU_OK(db, emit1(db, act("alice", "k", 1, "a", TU_DAYN(1) + 60, "email"), &o, &s));
    TU_OK(db, emit1(db, act("bob", "j", 1, "a", TU_DAYN(1), "email"), &o, &s));
    TU_OK(db, emit1(db, act("carol", "j", 1, "a", TU_DAYN(1), NULL), &o, &s));
    ck_assert_uint_eq(count(db, SEG_OUTBOX_PENDING | SEG_OUTBOX_SUPPRESSED), 4);
    seg_db_close(db);
    db = NULL;
    /* a fresh open: the outbox is not loaded until the erase loads it */
    ck_assert_int_eq(open_sq(&db, path, 0), SEG_OK);
    TU_OK(db, seg_customer_erase(db, "alice"));
    ck_assert_uint_eq(count(db, SEG_OUTBOX_PENDING | SEG_OUTBOX_SUPPRESSED), 2);
    char *d = dump(db);
    ck_assert_ptr_null(strstr(d, "alice"));
    free(d);
    /* what was sent once is never sent again, even to a new "alice" */
    TU_OK(db, emit1(db, act("alice", "j", 1, "a", TU_DAYN(1), "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_DUPLICATE);
    /* anonymized: the actions queued for the old identity go too */
    char *nid = NULL;
    TU_OK(db, seg_customer_anonymize(db, "bob", &nid));
    seg_free(nid);
    ck_assert_uint_eq(count(db, SEG_OUTBOX_PENDING | SEG_OUTBOX_SUPPRESSED), 1);
    seg_db_close(db);
    db = NULL;
    /* the same after a reopen: nothing of alice or bob in the file */
    ck_assert_int_eq(open_sq(&db, path, 0), SEG_OK);
    ck_assert_uint_eq(count(db, SEG_OUTBOX_PENDING | SEG_OUTBOX_SUPPRESSED), 1);
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(h, "SELECT count(*) FROM seg_records WHERE tbl = "
                                        "'outbox' AND (key LIKE '%alice%' OR key LIKE '%bob%' "
                                        "OR CAST(data AS TEXT) LIKE '%alice%' OR "
                                        "CAST(data AS TEXT) LIKE '%\"bob\"%')", -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    /* the cap counts afresh for a new customer of the same id */
    TU_OK(db, seg_outbox_set_cap(db, "email", 2, TU_DAY));
    TU_OK(db, emit1(db, act("alice", "new", 1, "a", TU_DAYN(1) + 120, "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED);
    TU_OK(db, emit1(db, act("alice", "new2", 1, "a", TU_DAYN(1) + 180, "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED);
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
    /* the file's schema has the view itself (version 3; check_sqlite
     * checks its text is the doc's) */
    ck_assert_int_eq(sqlite3_prepare_v2(h, "SELECT count(*) FROM sqlite_schema WHERE name = "
                                        "'seg_outbox_v'", -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 1);
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

/* ======================================================================== */
/* time zones (check_outbox tz)                                              */
/* ======================================================================== */

static int64_t T(const char *iso)
{
    int64_t t;
    ck_assert_msg(seg_time_parse(&t, iso, strlen(iso)) == SEG_OK, "%s", iso);
    return t;
}

static int32_t off_of(const char *zone, const char *iso)
{
    int32_t off;
    TU_OK(db, seg_outbox_zone_offset(&off, db, zone, T(iso)));
    return off;
}

START_TEST(tz_known_offsets)
{
    open_mem();
    /* America/New_York: 2024-03-10 02:00 EST -> 03:00 EDT (07:00Z);
     * 2024-11-03 02:00 EDT -> 01:00 EST (06:00Z) */
    ck_assert_int_eq(off_of("America/New_York", "2024-03-10T06:59:59Z"), -5 * 3600);
    ck_assert_int_eq(off_of("America/New_York", "2024-03-10T07:00:00Z"), -4 * 3600);
    ck_assert_int_eq(off_of("America/New_York", "2024-11-03T05:59:59Z"), -4 * 3600);
    ck_assert_int_eq(off_of("America/New_York", "2024-11-03T06:00:00Z"), -5 * 3600);
    /* after the file's last transition: the footer's rule */
    ck_assert_int_eq(off_of("America/New_York", "2100-07-01T00:00:00Z"), -4 * 3600);
    ck_assert_int_eq(off_of("America/New_York", "2100-01-01T00:00:00Z"), -5 * 3600);
    ck_assert_int_eq(off_of("America/New_York", "2199-03-10T06:59:59Z"), -5 * 3600);
    /* Europe/London: BST from 2024-03-31T01:00Z to 2024-10-27T01:00Z */
    ck_assert_int_eq(off_of("Europe/London", "2024-03-31T00:59:59Z"), 0);
    ck_assert_int_eq(off_of("Europe/London", "2024-03-31T01:00:00Z"), 3600);
    ck_assert_int_eq(off_of("Europe/London", "2024-10-27T00:59:59Z"), 3600);
    ck_assert_int_eq(off_of("Europe/London", "2024-10-27T01:00:00Z"), 0);
    /* Australia/Lord_Howe: +10:30, half an hour of DST (+11) from the first
     * Sunday of October, 02:00 local, to the first Sunday of April, 02:00 */
    ck_assert_int_eq(off_of("Australia/Lord_Howe", "2024-04-06T14:59:59Z"), 11 * 3600);
    ck_assert_int_eq(off_of("Australia/Lord_Howe", "2024-04-06T15:00:00Z"), 10 * 3600 + 1800);
    ck_assert_int_eq(off_of("Australia/Lord_Howe", "2024-10-05T15:29:59Z"), 10 * 3600 + 1800);
    ck_assert_int_eq(off_of("Australia/Lord_Howe", "2024-10-05T15:30:00Z"), 11 * 3600);
    ck_assert_int_eq(off_of("Australia/Lord_Howe", "2150-01-01T00:00:00Z"), 11 * 3600);
    ck_assert_int_eq(off_of("Australia/Lord_Howe", "2150-07-01T00:00:00Z"), 10 * 3600 + 1800);
    /* Asia/Kolkata: +05:30, no DST */
    ck_assert_int_eq(off_of("Asia/Kolkata", "2024-01-01T00:00:00Z"), 5 * 3600 + 1800);
    ck_assert_int_eq(off_of("Asia/Kolkata", "2024-07-01T00:00:00Z"), 5 * 3600 + 1800);
    ck_assert_int_eq(off_of("Asia/Kolkata", "2300-07-01T00:00:00Z"), 5 * 3600 + 1800);
    ck_assert_int_eq(off_of("UTC", "2024-07-01T00:00:00Z"), 0);
    ck_assert_int_eq(off_of(NULL, "2024-07-01T00:00:00Z"), 0);
}
END_TEST

/* The C library reads the same files: an independent oracle (the test may
 * set the process's TZ; the library never reads it). */
static int32_t libc_offset(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    ck_assert_ptr_nonnull(localtime_r(&tt, &tm));
    return (int32_t)tm.tm_gmtoff;
}

START_TEST(tz_against_libc)
{
    static const char *const zones[] = {
        "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata",
        "Europe/Dublin",    "America/Sao_Paulo", "Pacific/Chatham", "Asia/Tehran",
        "America/Santiago", "Asia/Jerusalem", "America/Nuuk", "Antarctica/Troll",
        "Africa/Casablanca", "Pacific/Apia", "America/St_Johns", "Europe/Moscow",
    };
    open_mem();
    int checked = 0;
    for (size_t k = 0; k < sizeof zones / sizeof zones[0]; k++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", seg__tz_dir(), zones[k]);
        if (access(path, R_OK) != 0)
            continue; /* (an older tzdata may lack a name) */
        seg__tz *z;
        TU_OK(db, seg__tz_load(&z, db, zones[k]));
        ck_assert_int_eq(setenv("TZ", zones[k], 1), 0);
        tzset();
        /* every change of offset from 1900 to 2200, on both sides */
        int64_t t = T("1900-01-01T00:00:00Z"), end = T("2200-01-01T00:00:00Z");
        int changes = 0;
        while (t < end) {
            int64_t next;
            int32_t off = seg__tz_offset(z, t, &next);
            ck_assert_msg(off == libc_offset(t), "%s at %lld: %d, libc %d", zones[k],
                          (long long)t, off, libc_offset(t));
            ck_assert_int_gt(next, t);
            if (next >= end)
                break;
            ck_assert_msg(seg__tz_offset(z, next - 1, NULL) == off, "%s before %lld", zones[k],
                          (long long)next);
            t = next;
            changes++;
        }
        ck_assert_msg(changes > 0 || strcmp(zones[k], "Asia/Kolkata") != 0, "%s", zones[k]);
        /* and instants in between */
        uint64_t r = 88172645463325252u ^ k;
        for (int n = 0; n < 20000; n++) {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            int64_t u = T("1900-01-01T00:00:00Z") + (int64_t)(r % (uint64_t)(end - T("1900-01-01T00:00:00Z")));
            ck_assert_msg(seg__tz_offset(z, u, NULL) == libc_offset(u), "%s at %lld", zones[k],
                          (long long)u);
        }
        seg__tz_free(&seg__default_alloc, z);
        checked++;
    }
    ck_assert_int_ge(checked, 10);
}
END_TEST

START_TEST(tz_missing_zone)
{
    open_mem();
    int32_t off = 1;
    TU_RC(db, seg_outbox_zone_offset(&off, db, "Mars/Olympus_Mons", 0), SEG_ENOTFOUND);
    TU_MSG_HAS(db, "Mars/Olympus_Mons");
    ck_assert_int_eq(off, 0);
    TU_RC(db, seg_outbox_set_default_zone(db, "Mars/Olympus_Mons"), SEG_ENOTFOUND);
    /* again (from the cache of unknown names): the same error */
    TU_RC(db, seg_outbox_set_default_zone(db, "Mars/Olympus_Mons"), SEG_ENOTFOUND);
    TU_MSG_HAS(db, "Mars/Olympus_Mons");
    TU_RC(db, seg_outbox_set_default_zone(db, "America"), SEG_EIO); /* a directory */
    TU_MSG_HAS(db, "directory");
}
END_TEST

/* files that are not valid TZif: clean errors, never a crash */
static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s", path);
    unsigned char *b = malloc(1 << 20);
    *len = fread(b, 1, 1 << 20, f);
    fclose(f);
    return b;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

START_TEST(tz_bad_files)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/America/New_York", seg__tz_dir());
    size_t len;
    unsigned char *ny = slurp(path, &len);
    ck_assert_uint_gt(len, 100);
    seg__tz *z;
    char err[160];
    ck_assert_int_eq(seg__tz_parse(&z, &seg__default_alloc, ny, len, err, sizeof err), SEG_OK);
    seg__tz_free(&seg__default_alloc, z);
    /* every truncation */
    for (size_t n = 0; n < len; n++) {
        int rc = seg__tz_parse(&z, &seg__default_alloc, ny, n, err, sizeof err);
        ck_assert_msg(rc == SEG_EPARSE, "prefix %zu: %d", n, rc);
        ck_assert_ptr_null(z);
        ck_assert_msg(err[0], "prefix %zu: no message", n);
    }
    /* garbage, and garbage behind a plausible header */
    unsigned char *g = malloc(len);
    uint64_t r = 0x9e3779b97f4a7c15u;
    for (int round = 0; round < 3000; round++) {
        for (size_t k = 0; k < len; k++) {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            g[k] = (unsigned char)r;
        }
        if (round % 3 == 1) {
            memcpy(g, "TZif2", 5);
        } else if (round % 3 == 2) {
            /* the real file with a few bytes changed */
            memcpy(g, ny, len);
            for (int f = 0; f < 4; f++) {
                r ^= r << 13;
                r ^= r >> 7;
                r ^= r << 17;
                g[r % len] ^= (unsigned char)(1u << (r >> 60 & 7));
            }
        }
        int rc = seg__tz_parse(&z, &seg__default_alloc, g, len, err, sizeof err);
        ck_assert(rc == SEG_OK || rc == SEG_EPARSE);
        if (rc == SEG_OK) { /* usable, whatever it says */
            for (int64_t t = T("1800-01-01"); t < T("2300-01-01"); t += 86400 * 997) {
                int64_t next;
                int32_t off = seg__tz_offset(z, t, &next);
                ck_assert(off >= -89999 && off <= 93599 && next > t);
                int64_t due = seg__tz_window_due(z, t, 540, 600);
                ck_assert(due >= t);
            }
            seg__tz_free(&seg__default_alloc, z);
        } else {
            ck_assert_ptr_null(z);
        }
    }
    free(g);
    /* through $TZDIR: the db's calls name the file and the problem */
    const char *dir = P("zi");
    char sub[PATH_MAX];
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    snprintf(sub, sizeof sub, "%s/Bad", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof sub, "%s/Bad/Truncated", dir);
    write_file(sub, ny, 100);
    snprintf(sub, sizeof sub, "%s/Bad/Garbage", dir);
    write_file(sub, "this is not a zone\n", 19);
    snprintf(sub, sizeof sub, "%s/Bad/Footer", dir);
    unsigned char *bf = malloc(len + 8);
    memcpy(bf, ny, len);
    /* the footer ("\nEST5EDT,M3.2.0,M11.1.0\n"): damage the rule */
    unsigned char *comma = memchr(bf + len - 30, ',', 30);
    ck_assert_ptr_nonnull(comma);
    *comma = ';';
    write_file(sub, bf, len);
    free(bf);
    snprintf(sub, sizeof sub, "%s/Good", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof sub, "%s/Good/NY", dir);
    write_file(sub, ny, len);
    ck_assert_int_eq(setenv("TZDIR", dir, 1), 0);
    open_mem();
    int32_t off;
    TU_RC(db, seg_outbox_set_default_zone(db, "Bad/Truncated"), SEG_EPARSE);
    TU_MSG_HAS(db, "Bad/Truncated");
    TU_MSG_HAS(db, "truncated");
    /* unknown, then the file appears: found */
    TU_RC(db, seg_outbox_set_default_zone(db, "Good/Later"), SEG_ENOTFOUND);
    snprintf(sub, sizeof sub, "%s/Good/Later", dir);
    write_file(sub, ny, len);
    TU_OK(db, seg_outbox_set_default_zone(db, "Good/Later"));
    TU_OK(db, seg_outbox_zone_offset(&off, db, "Good/Later", T("2024-01-01")));
    ck_assert_int_eq(off, -5 * 3600);
    TU_RC(db, seg_outbox_set_default_zone(db, "Bad/Garbage"), SEG_EPARSE);
    TU_MSG_HAS(db, "not a TZif file");
    TU_RC(db, seg_outbox_set_default_zone(db, "Bad/Footer"), SEG_EPARSE);
    TU_MSG_HAS(db, "footer");
    TU_OK(db, seg_outbox_set_default_zone(db, "Good/NY"));
    TU_OK(db, seg_outbox_zone_offset(&off, db, "Good/NY", T("2024-07-01")));
    ck_assert_int_eq(off, -4 * 3600);
    /* a customer whose zone is a bad file gets the default zone */
    seg_value v = { SEG_TYPE_STRING, 0, 0, "Bad/Truncated" };
    TU_OK(db, seg_customer_set_attr(db, "alice", "timezone", &v));
    TU_OK(db, seg_outbox_set_window(db, "email", 9 * 60, 17 * 60));
    int o;
    uint64_t s;
    TU_OK(db, emit1(db, act("alice", "j", 1, "a", T("2024-07-01T00:00:00Z"), "email"), &o, &s));
    seg_outbox_item it = SEG_OUTBOX_ITEM_INIT;
    TU_OK(db, seg_outbox_get(&it, db, s));
    ck_assert_int_eq(it.due, T("2024-07-01T13:00:00Z")); /* 09:00 EDT */
    unsetenv("TZDIR");
    free(ny);
}
END_TEST

/* ---- synthetic TZif files: version 1 only, footer only, v3 rules ---- */

static size_t put_be(unsigned char *p, uint64_t v, int bytes)
{
    for (int k = 0; k < bytes; k++)
        p[k] = (unsigned char)(v >> (8 * (bytes - 1 - k)));
    return (size_t)bytes;
}

/* a TZif file: version 0 (v1 only), '2', '3' or '4'; types are (utoff,
 * isdst = utoff != the first type's) */
static size_t build_tzif(unsigned char *out, char version, const int64_t *times,
                         const uint8_t *idx, uint32_t n, const int32_t *offs, uint32_t ntypes,
                         const char *footer)
{
    size_t p = 0;
    for (int block = 0; block < (version ? 2 : 1); block++) {
        int tsize = block ? 8 : 4;
        memcpy(out + p, "TZif", 4);
        out[p + 4] = (unsigned char)version;
        memset(out + p + 5, 0, 15);
        p += 20;
        uint32_t counts[6] = { 0, 0, 0, n, ntypes, 4 };
        for (int k = 0; k < 6; k++)
            p += put_be(out + p, counts[k], 4);
        for (uint32_t k = 0; k < n; k++)
            p += put_be(out + p, (uint64_t)times[k], tsize);
        for (uint32_t k = 0; k < n; k++)
            out[p++] = idx[k];
        for (uint32_t k = 0; k < ntypes; k++) {
            p += put_be(out + p, (uint32_t)offs[k], 4);
            out[p++] = offs[k] != offs[0];
            out[p++] = 0;
        }
        memcpy(out + p, "XXX", 4);
        p += 4;
    }
    if (version) {
        out[p++] = '\n';
        size_t fl = strlen(footer);
        memcpy(out + p, footer, fl);
        p += fl;
        out[p++] = '\n';
    }
    return p;
}

static seg__tz *synth(char version, const int64_t *times, const uint8_t *idx, uint32_t n,
                      const int32_t *offs, uint32_t ntypes, const char *footer)
{
    static unsigned char buf[4096];
    size_t len = build_tzif(buf, version, times, idx, n, offs, ntypes, footer);
    seg__tz *z = NULL;
    char err[160];
    int rc = seg__tz_parse(&z, &seg__default_alloc, buf, len, err, sizeof err);
    ck_assert_msg(rc == SEG_OK, "%s: %s", footer ? footer : "(v1)", err);
    return z;
}

static int synth_rc(const char *footer)
{
    static unsigned char buf[4096];
    int32_t off = 0;
    size_t len = build_tzif(buf, '3', NULL, NULL, 0, &off, 1, footer);
    seg__tz *z = NULL;
    char err[160];
    int rc = seg__tz_parse(&z, &seg__default_alloc, buf, len, err, sizeof err);
    seg__tz_free(&seg__default_alloc, z);
    return rc;
}

START_TEST(tz_synthetic)
{
    /* version 1 only: no footer; after the last transition its type holds */
    int64_t times[2] = { T("2024-03-10T07:00:00Z"), T("2024-11-03T06:00:00Z") };
    uint8_t idx[2] = { 1, 0 };
    int32_t offs[2] = { -18000, -14400 };
    seg__tz *z = synth(0, times, idx, 2, offs, 2, NULL);
    int64_t next;
    ck_assert_int_eq(seg__tz_offset(z, T("2024-01-01"), &next), -18000);
    ck_assert_int_eq(next, times[0]);
    ck_assert_int_eq(seg__tz_offset(z, times[0], &next), -14400);
    ck_assert_int_eq(next, times[1]);
    ck_assert_int_eq(seg__tz_offset(z, times[1], &next), -18000);
    ck_assert_int_eq(next, INT64_MAX);
    ck_assert_int_eq(seg__tz_offset(z, T("2030-07-01"), NULL), -18000);
    seg__tz_free(&seg__default_alloc, z);
    /* the same in a version 2 file, whose footer takes over after 2024 */
    z = synth('2', times, idx, 2, offs, 2, "EST5EDT,M3.2.0,M11.1.0");
    ck_assert_int_eq(seg__tz_offset(z, T("2030-07-01"), NULL), -14400);
    ck_assert_int_eq(seg__tz_offset(z, T("2030-03-10T06:59:59Z"), NULL), -18000);
    ck_assert_int_eq(seg__tz_offset(z, T("2030-03-10T07:00:00Z"), NULL), -14400);
    seg__tz_free(&seg__default_alloc, z);
    /* footer only (no transitions) */
    int32_t est = -18000;
    z = synth('2', NULL, NULL, 0, &est, 1, "EST5EDT,M3.2.0,M11.1.0");
    ck_assert_int_eq(seg__tz_offset(z, T("2024-03-10T06:59:59Z"), &next), -18000);
    ck_assert_int_eq(next, T("2024-03-10T07:00:00Z"));
    ck_assert_int_eq(seg__tz_offset(z, T("2024-11-03T05:59:59Z"), &next), -14400);
    ck_assert_int_eq(next, T("2024-11-03T06:00:00Z"));
    /* a DST default: "EST5EDT" without a rule means the US rule */
    seg__tz_free(&seg__default_alloc, z);
    z = synth('2', NULL, NULL, 0, &est, 1, "EST5EDT");
    ck_assert_int_eq(seg__tz_offset(z, T("2024-07-01"), NULL), -14400);
    seg__tz_free(&seg__default_alloc, z);
    /* version 3: daylight time all year */
    z = synth('3', NULL, NULL, 0, &est, 1, "EST5EDT,0/0,J365/25");
    for (int64_t t = T("2020-01-01"); t < T("2030-01-01"); t += 86400 * 7 + 3607)
        ck_assert_int_eq(seg__tz_offset(z, t, NULL), -14400);
    ck_assert_int_eq(seg__tz_window_due(z, T("2024-01-01T12:00:00Z"), 9 * 60, 10 * 60),
                     T("2024-01-01T13:00:00Z"));
    seg__tz_free(&seg__default_alloc, z);
    /* version 3: a negative rule time (America/Nuuk from 2023) */
    int32_t m2 = -7200;
    z = synth('3', NULL, NULL, 0, &m2, 1, "<-02>2<-01>,M3.5.0/-1,M10.5.0/0");
    ck_assert_int_eq(seg__tz_offset(z, T("2024-03-31T00:59:59Z"), NULL), -7200);
    ck_assert_int_eq(seg__tz_offset(z, T("2024-03-31T01:00:00Z"), NULL), -3600);
    ck_assert_int_eq(seg__tz_offset(z, T("2024-10-27T00:59:59Z"), NULL), -3600);
    ck_assert_int_eq(seg__tz_offset(z, T("2024-10-27T01:00:00Z"), NULL), -7200);
    seg__tz_free(&seg__default_alloc, z);
    /* version 3: an hour past 24 (Asia/Jerusalem: Friday before the last
     * Sunday of March, 02:00 = Thursday 26:00) */
    int32_t two = 7200;
    z = synth('3', NULL, NULL, 0, &two, 1, "IST-2IDT,M3.4.4/26,M10.5.0");
    ck_assert_int_eq(seg__tz_offset(z, T("2024-03-28T23:59:59Z"), NULL), 7200);
    ck_assert_int_eq(seg__tz_offset(z, T("2024-03-29T00:00:00Z"), NULL), 10800);
    seg__tz_free(&seg__default_alloc, z);
    /* Jn (no Feb 29) and n (counting it), southern order (end before start) */
    int32_t m3 = -10800;
    z = synth('4', NULL, NULL, 0, &m3, 1, "XXX3YYY,J60/2,300/2");
    /* J60 is March 1 in leap and common years; day 300 is Oct 27 in 2024,
     * Oct 28 in 2023 */
    ck_assert_int_eq(seg__tz_offset(z, T("2024-03-01T04:59:59Z"), NULL), -10800);
    ck_assert_int_eq(seg__tz_offset(z, T("2024-03-01T05:00:00Z"), NULL), -7200);
    ck_assert_int_eq(seg__tz_offset(z, T("2024-10-27T03:59:59Z"), NULL), -7200);
    ck_assert_int_eq(seg__tz_offset(z, T("2024-10-27T04:00:00Z"), NULL), -10800);
    ck_assert_int_eq(seg__tz_offset(z, T("2023-03-01T05:00:00Z"), NULL), -7200);
    ck_assert_int_eq(seg__tz_offset(z, T("2023-10-28T03:59:59Z"), NULL), -7200);
    ck_assert_int_eq(seg__tz_offset(z, T("2023-10-28T04:00:00Z"), NULL), -10800);
    seg__tz_free(&seg__default_alloc, z);
    z = synth('3', NULL, NULL, 0, &two, 1, "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0");
    ck_assert_int_eq(seg__tz_offset(z, T("2024-10-05T15:29:59Z"), NULL), 37800);
    ck_assert_int_eq(seg__tz_offset(z, T("2024-10-05T15:30:00Z"), NULL), 39600);
    seg__tz_free(&seg__default_alloc, z);
    /* bad rules */
    static const char *const bad[] = {
        "EST5EDT,M13.1.0,M11.1.0", "ES5", "EST25", "EST5EDT,M3.2.0/168,M11.1.0",
        "EST5EDT,M3.2.0", "EST5EDT,M3.6.0,M11.1.0", "EST5EDT,J0,J365", "EST5EDT,366,1",
        "<+05", "EST5:60", "EST5EDT,M3.2.7,M11.1.0", "EST5 ", "EST",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        ck_assert_msg(synth_rc(bad[k]) == SEG_EPARSE, "%s", bad[k]);
    ck_assert_int_eq(synth_rc(""), SEG_OK); /* an empty footer: the last type holds */
}
END_TEST

/* ---- send windows ---- */

static void set_zone(const char *cust, const char *attr, const char *zone)
{
    seg_value v = { SEG_TYPE_STRING, 0, 0, zone };
    TU_OK(db, seg_customer_set_attr(db, cust, attr, &v));
}

static int64_t due_of(const char *cust, const char *channel, const char *iso)
{
    static int n;
    char step[16];
    snprintf(step, sizeof step, "s%d", n++);
    int o;
    uint64_t s;
    TU_OK(db, emit1(db, act(cust, "j", 1, step, T(iso), channel), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED);
    seg_outbox_item it = SEG_OUTBOX_ITEM_INIT;
    TU_OK(db, seg_outbox_get(&it, db, s));
    ck_assert_int_eq(it.time, T(iso));
    return it.due;
}

START_TEST(windows)
{
    open_mem();
    set_zone("ny", "timezone", "America/New_York");
    set_zone("ldn", "timezone", "Europe/London");
    set_zone("lhi", "timezone", "Australia/Lord_Howe");
    set_zone("kol", "timezone", "Asia/Kolkata");
    set_zone("mars", "timezone", "Mars/Olympus_Mons");
    TU_OK(db, seg_customer_add(db, "nozone"));
    seg_value num = { SEG_TYPE_INT, 5, 0, NULL };
    TU_OK(db, seg_customer_set_attr(db, "numzone", "tz3", &num));
    TU_OK(db, seg_outbox_set_window(db, "email", 9 * 60, 17 * 60));
    TU_OK(db, seg_outbox_set_window(db, "push", 22 * 60, 8 * 60));
    /* 03:00 EST waits for 09:00; inside: now; after the end: tomorrow */
    ck_assert_int_eq(due_of("ny", "email", "2024-01-15T08:00:00Z"), T("2024-01-15T14:00:00Z"));
    ck_assert_int_eq(due_of("ny", "email", "2024-01-15T15:00:00Z"), T("2024-01-15T15:00:00Z"));
    ck_assert_int_eq(due_of("ny", "email", "2024-01-15T22:00:00Z"), T("2024-01-16T14:00:00Z"));
    /* the end is excluded */
    ck_assert_int_eq(due_of("ny", "email", "2024-01-15T21:59:59Z"), T("2024-01-15T21:59:59Z"));
    /* summer time: 09:00 EDT is 13:00Z */
    ck_assert_int_eq(due_of("ny", "email", "2024-07-15T08:00:00Z"), T("2024-07-15T13:00:00Z"));
    /* across the spring switch: Saturday 22:00 EST -> Sunday 09:00 EDT */
    ck_assert_int_eq(due_of("ny", "email", "2024-03-10T03:00:00Z"), T("2024-03-10T13:00:00Z"));
    /* and the fall one: Saturday 18:00 EDT -> Sunday 09:00 EST */
    ck_assert_int_eq(due_of("ny", "email", "2024-11-02T22:00:00Z"), T("2024-11-03T14:00:00Z"));
    /* no window, no channel: at once */
    ck_assert_int_eq(due_of("ny", "sms", "2024-01-15T08:00:00Z"), T("2024-01-15T08:00:00Z"));
    ck_assert_int_eq(due_of("ny", NULL, "2024-01-15T08:00:00Z"), T("2024-01-15T08:00:00Z"));
    /* a window crossing midnight (London, BST) */
    ck_assert_int_eq(due_of("ldn", "push", "2024-06-01T12:00:00Z"), T("2024-06-01T21:00:00Z"));
    ck_assert_int_eq(due_of("ldn", "push", "2024-06-01T23:30:00Z"), T("2024-06-01T23:30:00Z"));
    ck_assert_int_eq(due_of("ldn", "push", "2024-06-02T06:59:59Z"), T("2024-06-02T06:59:59Z"));
    ck_assert_int_eq(due_of("ldn", "push", "2024-06-02T07:00:00Z"), T("2024-06-02T21:00:00Z"));
    /* Lord Howe: the morning after the half-hour switch (+11) */
    ck_assert_int_eq(due_of("lhi", "email", "2024-10-05T20:00:00Z"), T("2024-10-05T22:00:00Z"));
    ck_assert_int_eq(due_of("lhi", "email", "2024-07-05T20:00:00Z"), T("2024-07-05T22:30:00Z"));
    /* Kolkata: 05:30 IST -> 09:00 IST */
    ck_assert_int_eq(due_of("kol", "email", "2024-05-01T00:00:00Z"), T("2024-05-01T03:30:00Z"));
    /* a zone missing from the system, no zone, a zone of another type: the
     * default zone (UTC), then the one set */
    ck_assert_int_eq(due_of("mars", "email", "2024-05-01T00:00:00Z"), T("2024-05-01T09:00:00Z"));
    ck_assert_int_eq(due_of("nozone", "email", "2024-05-01T00:00:00Z"), T("2024-05-01T09:00:00Z"));
    ck_assert_int_eq(due_of("unknown_customer", "email", "2024-05-01T00:00:00Z"),
                     T("2024-05-01T09:00:00Z"));
    TU_OK(db, seg_outbox_set_default_zone(db, "Asia/Kolkata"));
    ck_assert_int_eq(due_of("mars", "email", "2024-05-01T00:00:00Z"), T("2024-05-01T03:30:00Z"));
    ck_assert_int_eq(due_of("nozone", "email", "2024-05-01T00:00:00Z"), T("2024-05-01T03:30:00Z"));
    /* another attribute name */
    TU_OK(db, seg_outbox_set_zone_attr(db, "tz2"));
    set_zone("ny2", "tz2", "America/New_York");
    ck_assert_int_eq(due_of("ny2", "email", "2024-01-15T08:00:00Z"), T("2024-01-15T14:00:00Z"));
    /* (ny's "timezone" is not read now: Kolkata, 13:30 IST, inside) */
    ck_assert_int_eq(due_of("ny", "email", "2024-01-15T08:00:00Z"), T("2024-01-15T08:00:00Z"));
    ck_assert_int_eq(due_of("ny", "email", "2024-01-15T13:00:00Z"), T("2024-01-16T03:30:00Z"));
    TU_OK(db, seg_outbox_set_zone_attr(db, "tz3"));
    ck_assert_int_eq(due_of("numzone", "email", "2024-05-01T00:00:00Z"), T("2024-05-01T03:30:00Z"));
    ck_assert_int_eq(due_of("ny2", "email", "2024-01-15T00:00:00Z"), T("2024-01-15T03:30:00Z"));
    /* removing the window */
    TU_OK(db, seg_outbox_set_window(db, "email", -1, -1));
    ck_assert_int_eq(due_of("ny2", "email", "2024-01-15T08:00:00Z"), T("2024-01-15T08:00:00Z"));
}
END_TEST

/* daylight-saving days in New York */
START_TEST(windows_dst)
{
    open_mem();
    set_zone("ny", "timezone", "America/New_York");
    /* spring: 02:00-03:00 does not exist on 2024-03-10 */
    TU_OK(db, seg_outbox_set_window(db, "a", 2 * 60 + 30, 5 * 60));
    /* 01:00 EST: the window "opens" at 02:30, which is 03:00 EDT */
    ck_assert_int_eq(due_of("ny", "a", "2024-03-10T06:00:00Z"), T("2024-03-10T07:00:00Z"));
    /* a window inside the gap is not open that day */
    TU_OK(db, seg_outbox_set_window(db, "b", 2 * 60, 2 * 60 + 45));
    ck_assert_int_eq(due_of("ny", "b", "2024-03-10T06:00:00Z"), T("2024-03-11T06:00:00Z"));
    /* fall: 01:00-02:00 happens twice on 2024-11-03 */
    TU_OK(db, seg_outbox_set_window(db, "c", 90, 3 * 60));
    /* 00:30 EDT: the first 01:30 (EDT) */
    ck_assert_int_eq(due_of("ny", "c", "2024-11-03T04:30:00Z"), T("2024-11-03T05:30:00Z"));
    /* 01:40 EDT is inside; so is 01:40 EST */
    ck_assert_int_eq(due_of("ny", "c", "2024-11-03T05:40:00Z"), T("2024-11-03T05:40:00Z"));
    ck_assert_int_eq(due_of("ny", "c", "2024-11-03T06:40:00Z"), T("2024-11-03T06:40:00Z"));
    /* 01:10 EST (the second 01:10): its own local time counts, 01:30 EST */
    ck_assert_int_eq(due_of("ny", "c", "2024-11-03T06:10:00Z"), T("2024-11-03T06:30:00Z"));
    /* a window crossing midnight on both switch days */
    TU_OK(db, seg_outbox_set_window(db, "d", 23 * 60, 60));
    ck_assert_int_eq(due_of("ny", "d", "2024-03-10T12:00:00Z"), T("2024-03-11T03:00:00Z"));
    ck_assert_int_eq(due_of("ny", "d", "2024-11-03T12:00:00Z"), T("2024-11-04T04:00:00Z"));
}
END_TEST

/* any zone, any window: the due time is the first instant in the window */
START_TEST(windows_property)
{
    static const char *const zones[] = { "America/New_York", "Europe/London",
                                         "Australia/Lord_Howe", "Asia/Kolkata",
                                         "America/St_Johns", "Pacific/Chatham" };
    open_mem();
    uint64_t r = 42;
    for (size_t k = 0; k < sizeof zones / sizeof zones[0]; k++) {
        seg__tz *z;
        TU_OK(db, seg__tz_load(&z, db, zones[k]));
        for (int n = 0; n < 300; n++) {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            int start = (int)(r % 1440), end = (int)((r >> 20) % 1440);
            if (start == end)
                continue;
            int64_t t = T("2024-01-01") + (int64_t)((r >> 32) % (366 * 86400));
            /* around the switches more often */
            if (n % 3 == 0)
                t = T("2024-03-09") + (int64_t)((r >> 32) % (3 * 86400));
            if (n % 3 == 1)
                t = T("2024-11-02") + (int64_t)((r >> 32) % (3 * 86400));
            int64_t due = seg__tz_window_due(z, t, start, end);
            ck_assert_int_ge(due, t);
            ck_assert_int_le(due - t, 2 * 86400);
            /* in the window at due, and at no whole minute before it */
            for (int64_t u = due; u >= t; u = (u == due ? (due - 1) / 60 * 60 : u - 60)) {
                int64_t local = u + seg__tz_offset(z, u, NULL);
                int64_t s = ((local % 86400) + 86400) % 86400;
                bool in = start < end ? s >= start * 60 && s < end * 60
                                      : s >= start * 60 || s < end * 60;
                ck_assert_msg(in == (u == due), "%s %d..%d t=%lld due=%lld u=%lld", zones[k],
                              start, end, (long long)t, (long long)due, (long long)u);
                if (u == t)
                    break;
            }
        }
        seg__tz_free(&seg__default_alloc, z);
    }
}
END_TEST

/* caps count at the due time: two actions of one night are due the same morning */
START_TEST(windows_and_caps)
{
    open_mem();
    set_zone("ny", "timezone", "America/New_York");
    TU_OK(db, seg_outbox_set_window(db, "email", 9 * 60, 17 * 60));
    TU_OK(db, seg_outbox_set_cap(db, "email", 1, 12 * 3600));
    int o;
    uint64_t s;
    TU_OK(db, emit1(db, act("ny", "j1", 1, "a", T("2024-01-14T17:00:00Z"), "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED); /* 12:00 EST on the 14th */
    TU_OK(db, emit1(db, act("ny", "j2", 1, "a", T("2024-01-15T03:00:00Z"), "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_QUEUED); /* 22:00 -> 09:00 on the 15th: 21 h later */
    TU_OK(db, emit1(db, act("ny", "j3", 1, "a", T("2024-01-15T05:00:00Z"), "email"), &o, &s));
    ck_assert_int_eq(o, SEG__EMIT_SUPPRESSED); /* also due 09:00 on the 15th */
}
END_TEST

static Suite *tz_suite(void)
{
    Suite *s = suite_create("outbox-tz");
    TCase *tc = tcase_create("tz");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, tz_known_offsets);
    tcase_add_test(tc, tz_against_libc);
    tcase_add_test(tc, tz_missing_zone);
    tcase_add_test(tc, tz_bad_files);
    tcase_add_test(tc, tz_synthetic);
    tcase_add_test(tc, windows);
    tcase_add_test(tc, windows_dst);
    tcase_add_test(tc, windows_property);
    tcase_add_test(tc, windows_and_caps);
    suite_add_tcase(s, tc);
    return s;
}

static Suite *core_suite(void)
{
    Suite *s = suite_create("outbox");
    TCase *tc = tcase_create("queue");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, emit_fetch_ack);
    tcase_add_test(tc, dedupe);
    tcase_add_test(tc, customers_and_names);
    tcase_add_test(tc, emit_many);
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
    tcase_add_test(tc, customer_erased);
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
    bool tz = argc > 1 && strcmp(argv[1], "tz") == 0;
    if (tz && access(seg__tz_dir(), R_OK | X_OK) != 0) {
        printf("SKIP: no zoneinfo directory at %s (install tzdata)\n", seg__tz_dir());
        return 77;
    }
    SRunner *sr = srunner_create(tz ? tz_suite() : core_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
