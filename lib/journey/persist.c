/*
 * Journey states as module records (table "journey"), JSON text so the
 * SQLite file can be read with json_extract (doc/journey.md has the view):
 *
 *   key "JOURNEY/CUSTOMER_ID":
 *     {"state":"offer5","run":2,"step":3,"since":1717200000,
 *      "variant":"bundle","converted":false,"exit":null}
 *     (out of the journey: "state":null and "exit":"done"|"rule"|"removed")
 *   key "JOURNEY" (the counters and the clock):
 *     {"clock":1717200000,"variants":{"bundle":[12,3],...},
 *      "states":{"offer5":[40,2],...}}     ([entered, converted])
 *
 * Names in the data are identifiers (states, variants, journeys), so the
 * text needs no escapes; the customer id is only in the key.  Records are
 * written inside the transaction that changed them.  At open, a record
 * whose state is gone from the definition exits the customer (reason
 * "removed"), rewritten at once; a record of a journey that is gone is
 * left as it is.
 */
#include "journey/journey-engine.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static const char *exit_name(int reason)
{
    switch (reason) {
    case SEG_JOURNEY_EXIT_DONE: return "done";
    case SEG_JOURNEY_EXIT_RULE: return "rule";
    case SEG_JOURNEY_EXIT_REMOVED: return "removed";
    default: return NULL;
    }
}

static int put_rec(seg_journey *j, uint32_t ri)
{
    const seg__jrec *r = seg__jr_rec(j, ri);
    const seg__jrj *J = &j->js[r->journey];
    char key[2 * SEG_ID_MAX + 4], data[3 * SEG_ID_MAX + 256];
    seg__str id = seg__cust_id(&j->db->store, r->ci);
    snprintf(key, sizeof key, "%s/%.*s", J->name, (int)id.n, id.p);
    bool split = J->ast->nvariants || J->ast->has_holdout;
    const char *ex = r->state == SEG__JR_OUT ? exit_name(r->reason) : NULL;
    int n = snprintf(data, sizeof data,
                     "{\"state\":%s%s%s,\"run\":%" PRIu32 ",\"step\":%" PRIu32
                     ",\"since\":%" PRId64 ",\"variant\":%s%s%s,\"converted\":%s,"
                     "\"exit\":%s%s%s}",
                     r->state == SEG__JR_OUT ? "" : "\"",
                     r->state == SEG__JR_OUT ? "null" : J->state_names[r->state],
                     r->state == SEG__JR_OUT ? "" : "\"", r->run, r->steps, r->since,
                     split ? "\"" : "", split ? J->variant_names[r->variant] : "null",
                     split ? "\"" : "", (r->flags & SEG__JRF_CONVERTED) ? "true" : "false",
                     ex ? "\"" : "", ex ? ex : "null", ex ? "\"" : "");
    return seg__st_put_record(j->db, "journey", key, data, (size_t)n);
}

static int put_stats(seg_journey *j, uint32_t x)
{
    const seg__jrj *J = &j->js[x];
    const seg__jrast *A = J->ast;
    size_t cap = 128 + (size_t)(A->nvariants + 1 + A->nstates) * (SEG_ID_MAX + 48), n = 0;
    char *b = seg__malloc(&j->db->alloc, cap);
    if (!b)
        return seg__error(j->db, SEG_ENOMEM, "out of memory");
    n += (size_t)snprintf(b + n, cap - n, "{\"clock\":");
    if (j->has_clock)
        n += (size_t)snprintf(b + n, cap - n, "%" PRId64, j->clock);
    else
        n += (size_t)snprintf(b + n, cap - n, "null");
    n += (size_t)snprintf(b + n, cap - n, ",\"variants\":{");
    for (uint32_t v = 0; v <= A->nvariants; v++)
        n += (size_t)snprintf(b + n, cap - n, "%s\"%s\":[%" PRIu64 ",%" PRIu64 "]",
                              v ? "," : "", J->variant_names[v], J->v_entered[v],
                              J->v_converted[v]);
    n += (size_t)snprintf(b + n, cap - n, "},\"states\":{");
    for (uint32_t s = 0; s < A->nstates; s++)
        n += (size_t)snprintf(b + n, cap - n, "%s\"%s\":[%" PRIu64 ",%" PRIu64 "]",
                              s ? "," : "", J->state_names[s], J->s_entered[s],
                              J->s_converted[s]);
    n += (size_t)snprintf(b + n, cap - n, "}}");
    int rc = seg__st_put_record(j->db, "journey", J->name, b, n);
    seg__free(&j->db->alloc, b);
    return rc;
}

int seg__jr_persist(seg_journey *j)
{
    if (!seg__st_wants_records(j->db))
        return SEG_OK;
    int rc = SEG_OK;
    size_t n = seg__jr_changed_count(j);
    for (size_t k = 0; k < n && rc == SEG_OK; k++)
        rc = put_rec(j, seg__jr_changed(j, k));
    for (uint32_t x = 0; x < j->nj && rc == SEG_OK; x++)
        rc = put_stats(j, x);
    return rc;
}

/* ---- reading ---- */

/* the value after "name": in a flat object; NULL when absent */
static const char *field(const char *d, size_t n, const char *name)
{
    char pat[64];
    int pn = snprintf(pat, sizeof pat, "\"%s\":", name);
    for (size_t k = 0; k + (size_t)pn <= n; k++)
        if (memcmp(d + k, pat, (size_t)pn) == 0)
            return d + k + pn;
    return NULL;
}

/* a quoted name at p: into out (NUL-terminated); false for null or junk */
static bool qname(const char *p, const char *end, char *out, size_t cap)
{
    if (!p || p >= end || *p != '"')
        return false;
    size_t k = 0;
    for (p++; p < end && *p != '"'; p++) {
        if (k + 1 >= cap)
            return false;
        out[k++] = *p;
    }
    out[k] = '\0';
    return p < end;
}

static bool num(const char *p, const char *end, int64_t *out)
{
    if (!p || p >= end)
        return false;
    const char *q = p;
    if (q < end && *q == '-')
        q++;
    while (q < end && *q >= '0' && *q <= '9')
        q++;
    if (q == p)
        return false;
    return seg__parse_int64(p, (size_t)(q - p), out) == SEG_OK;
}

typedef struct restore {
    seg_journey *j;
    int64_t clock;
    bool has_clock;
    uint32_t *rewrite;
    size_t nrewrite, caprewrite;
    int err;
} restore;

static int find_name(char *const *names, uint32_t n, const char *s)
{
    for (uint32_t k = 0; k < n; k++)
        if (strcmp(names[k], s) == 0)
            return (int)k;
    return -1;
}

static int bad(seg_journey *j, const char *key)
{
    return seg__error(j->db, SEG_ESTORAGE, "journey record '%s': malformed", key);
}

/* "name":[a,b] pairs of an object at p, into the counters */
static void load_pairs(const char *p, const char *end, char *const *names, uint32_t n,
                       uint64_t *a, uint64_t *b)
{
    if (!p || p >= end || *p != '{')
        return;
    p++;
    char nm[SEG_ID_MAX + 1];
    while (p < end && *p == '"') {
        if (!qname(p, end, nm, sizeof nm))
            return;
        p += strlen(nm) + 2;
        int64_t x = 0, y = 0;
        if (p + 1 >= end || p[0] != ':' || p[1] != '[' || !num(p + 2, end, &x))
            return;
        p += 2;
        while (p < end && *p != ',')
            p++;
        if (!num(p + 1, end, &y))
            return;
        while (p < end && *p != ']')
            p++;
        p++;
        int k = find_name(names, n, nm);
        if (k >= 0 && x >= 0 && y >= 0) {
            a[k] = (uint64_t)x;
            b[k] = (uint64_t)y;
        }
        if (p < end && *p == ',')
            p++;
    }
}

static int load_one(void *ctx, const char *key, const void *data, size_t len)
{
    restore *rs = ctx;
    seg_journey *j = rs->j;
    const char *d = data, *end = d + len;
    const char *slash = strchr(key, '/');
    size_t jn = slash ? (size_t)(slash - key) : strlen(key);
    uint32_t jx = SEG__NONE;
    for (uint32_t x = 0; x < j->nj; x++)
        if (strlen(j->js[x].name) == jn && memcmp(j->js[x].name, key, jn) == 0)
            jx = x;
    if (jx == SEG__NONE)
        return SEG_OK; /* a journey no longer defined: its records stay as they are */
    seg__jrj *J = &j->js[jx];
    if (!slash) {
        int64_t c;
        if (num(field(d, len, "clock"), end, &c) && (!rs->has_clock || c > rs->clock)) {
            rs->clock = c;
            rs->has_clock = true;
        }
        load_pairs(field(d, len, "variants"), end, J->variant_names, J->ast->nvariants + 1,
                   J->v_entered, J->v_converted);
        load_pairs(field(d, len, "states"), end, J->state_names, J->ast->nstates,
                   J->s_entered, J->s_converted);
        return SEG_OK;
    }
    seg__str id = seg__cstr(slash + 1);
    uint32_t ci = id.n ? seg__cust_find(&j->db->store, id) : SEG__NONE;
    if (ci == SEG__NONE)
        return SEG_OK; /* an erased customer */
    int64_t run, step, since;
    char st[SEG_ID_MAX + 1], var[SEG_ID_MAX + 1], ex[32];
    const char *conv = field(d, len, "converted");
    if (!num(field(d, len, "run"), end, &run) || !num(field(d, len, "step"), end, &step) ||
        !num(field(d, len, "since"), end, &since) || run < 1 || run > UINT32_MAX ||
        step < 0 || step > UINT32_MAX || since < SEG_TIME_MIN || since > SEG_TIME_MAX || !conv)
        return bad(j, key);
    bool in = qname(field(d, len, "state"), end, st, sizeof st);
    uint32_t ri;
    int rc = seg__jr_rec_add(j, ci, jx, &ri);
    if (rc != SEG_OK)
        return rc;
    seg__jrec *r = seg__jr_rec(j, ri);
    r->run = (uint32_t)run;
    r->steps = (uint32_t)step;
    r->since = since;
    r->flags = (uint8_t)(r->flags | (strncmp(conv, "true", 4) == 0 ? SEG__JRF_CONVERTED : 0));
    int v = qname(field(d, len, "variant"), end, var, sizeof var)
                ? find_name(J->variant_names, J->ast->nvariants + 1, var) : -1;
    r->variant = v >= 0 ? (uint8_t)v : seg__jr_pick_variant(j, jx, ci);
    if (in) {
        int s = find_name(J->state_names, J->ast->nstates, st);
        if (s >= 0) {
            r->state = (uint16_t)s;
            return seg__jr_arm(j, ri);
        }
        /* the state is gone: the customer leaves, and the record says why */
        r->state = SEG__JR_OUT;
        r->reason = SEG_JOURNEY_EXIT_REMOVED;
        if (rs->nrewrite == rs->caprewrite) {
            size_t cap = rs->caprewrite ? rs->caprewrite * 2 : 16;
            uint32_t *p = seg__realloc_array(&j->db->alloc, rs->rewrite, cap, sizeof *p);
            if (!p)
                return seg__error(j->db, SEG_ENOMEM, "out of memory");
            rs->rewrite = p;
            rs->caprewrite = cap;
        }
        rs->rewrite[rs->nrewrite++] = ri;
        return SEG_OK;
    }
    r->state = SEG__JR_OUT;
    r->reason = SEG_JOURNEY_EXIT_DONE;
    if (qname(field(d, len, "exit"), end, ex, sizeof ex))
        r->reason = strcmp(ex, "rule") == 0      ? SEG_JOURNEY_EXIT_RULE
                    : strcmp(ex, "removed") == 0 ? SEG_JOURNEY_EXIT_REMOVED
                                                 : SEG_JOURNEY_EXIT_DONE;
    return SEG_OK;
}

int seg__jr_restore(seg_journey *j)
{
    restore rs;
    memset(&rs, 0, sizeof rs);
    rs.j = j;
    int rc = seg__jr_begin(j);
    if (rc == SEG_OK)
        rc = seg__st_load_records(j->db, "journey", load_one, &rs);
    if (rc == SEG_OK) {
        j->clock = rs.clock;
        j->has_clock = rs.has_clock;
    }
    seg__jr_txn_end(j, true); /* what was read is the state: nothing to undo */
    if (rc == SEG_OK && rs.nrewrite && seg__st_wants_records(j->db)) {
        rc = seg__st_begin(j->db);
        for (size_t k = 0; k < rs.nrewrite && rc == SEG_OK; k++)
            rc = put_rec(j, rs.rewrite[k]);
        if (rc == SEG_OK)
            rc = seg__st_commit(j->db);
        else
            seg__st_rollback(j->db);
    }
    seg__free(&j->db->alloc, rs.rewrite);
    return rc;
}
