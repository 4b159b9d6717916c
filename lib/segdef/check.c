/*
 * The checker: resolves names (values, functions, segments), gives every
 * expression a type, settles untyped number literals by their context,
 * collects the distinct values and windowed measures a definition reads,
 * and orders the items so that in(x) is evaluated after x (a cycle is an
 * error).
 *
 * Number literals have no type of their own: compared with (or added to)
 * money, 1000 and 1000.00 are money in the database's currency; with an
 * int, 5 is an int and 2.5 turns both sides into numbers; with a number,
 * numbers.
 */
#include "segdef/segdef-private.h"

#include <math.h>
#include <stdio.h>

const char *seg__sd_type_name(int t)
{
    switch (t) {
    case SEG__T_BOOL: return "bool";
    case SEG__T_INT: return "int";
    case SEG__T_NUM: return "number";
    case SEG__T_MONEY: return "money";
    case SEG__T_DUR: return "duration";
    case SEG__T_TIME: return "time";
    case SEG__T_STR: return "string";
    case SEG__T_LITINT: return "integer literal";
    case SEG__T_LITDEC: return "decimal literal";
    default: return "?";
    }
}

/* ---- a small hash map from names to an index ---- */
typedef struct nmap {
    const seg__alloc *a;
    struct nment { seg__str key; uint32_t val; } *t;
    uint32_t cap, n;
} nmap;

static uint32_t nmap_slot(const nmap *m, seg__str k)
{
    uint64_t h = seg__hash(k.p, k.n, UINT64_C(0x6a09e667f3bcc908));
    uint32_t i = (uint32_t)h & (m->cap - 1);
    while (m->t[i].key.p && !(m->t[i].key.n == k.n && memcmp(m->t[i].key.p, k.p, k.n) == 0))
        i = (i + 1) & (m->cap - 1);
    return i;
}

static bool nmap_find(const nmap *m, seg__str k, uint32_t *val)
{
    if (!m->cap)
        return false;
    uint32_t i = nmap_slot(m, k);
    if (!m->t[i].key.p)
        return false;
    *val = m->t[i].val;
    return true;
}

static bool nmap_put(nmap *m, seg__str k, uint32_t val)
{
    if ((m->n + 1) * 2 > m->cap) {
        uint32_t cap = m->cap ? m->cap * 2 : 64;
        struct nment *old = m->t;
        uint32_t ocap = m->cap;
        m->t = seg__calloc(m->a, cap, sizeof *m->t);
        if (!m->t) {
            m->t = old;
            return false;
        }
        m->cap = cap;
        for (uint32_t i = 0; i < ocap; i++)
            if (old[i].key.p)
                m->t[nmap_slot(m, old[i].key)] = old[i];
        seg__free(m->a, old);
    }
    uint32_t i = nmap_slot(m, k);
    m->t[i].key = k;
    m->t[i].val = val;
    m->n++;
    return true;
}

/* ---- checker state ---- */

#define SETMARK 0x80000000u  /* nmap value: a set's item index */

typedef struct edge { uint32_t from, to; const seg__node *at; } edge;

typedef struct chk {
    seg_segdef *def;
    seg__sderr *err;
    nmap names;           /* segment name -> segment index, set name -> item | SETMARK */
    uint32_t item;        /* the item being checked */
    edge *edges;
    size_t nedges, capedges;
    uint32_t cap_slots, cap_feats;
    bool time_dep;
} chk;

static int cerr(chk *c, const seg__node *at, int code, const char *fmt, ...) SEG_PRINTF(4, 5);
static int cerr(chk *c, const seg__node *at, int code, const char *fmt, ...)
{
    if (c->err->code != SEG_OK)
        return c->err->code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err->msg, sizeof c->err->msg, fmt, ap);
    va_end(ap);
    c->err->code = code;
    c->err->line = at ? at->line : 1;
    c->err->col = at ? at->col : 1;
    return code;
}

static int oom(chk *c, const seg__node *at)
{
    return cerr(c, at, SEG_ENOMEM, "out of memory");
}

static bool untyped(const seg__node *n)
{
    return n->type == SEG__T_LITINT || n->type == SEG__T_LITDEC;
}

static const double pow10d[19] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
                                   1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18 };

/* Text of a literal for messages (a literal or a negated one). */
static void lit_text(const seg__node *n, char *buf, size_t size)
{
    int neg = 0;
    while (n->kind == SEG__N_NEG) {
        neg = !neg;
        n = n->kids[0];
    }
    if (n->kind == SEG__N_DEC) {
        char d[32];
        int len = snprintf(d, sizeof d, "%lld", (long long)n->i);
        if (len <= n->scale)
            snprintf(buf, size, "%s0.%0*lld", neg ? "-" : "", n->scale, (long long)n->i);
        else
            snprintf(buf, size, "%s%.*s.%s", neg ? "-" : "", len - n->scale, d,
                     d + len - n->scale);
    } else {
        snprintf(buf, size, "%s%lld", neg ? "-" : "", (long long)n->i);
    }
}

/* Give an untyped literal (or a negated one) the type t. */
static int settle(chk *c, seg__node *n, int t)
{
    char txt[64];
    if (n->kind == SEG__N_NEG) {
        int rc = settle(c, n->kids[0], t);
        if (rc != SEG_OK)
            return rc;
        seg__node *k = n->kids[0];
        if (t == SEG__T_NUM) {
            n->cd = -k->cd;
        } else {
            if (k->ci == INT64_MIN)
                return cerr(c, n, SEG_ERANGE, "number out of range");
            n->ci = -k->ci;
        }
        n->type = (uint8_t)t;
        n->isconst = 1;
        return SEG_OK;
    }
    lit_text(n, txt, sizeof txt);
    switch (t) {
    case SEG__T_INT:
        if (n->kind != SEG__N_INT)
            return cerr(c, n, SEG_EINVAL, "%s is not an integer", txt);
        n->ci = n->i;
        break;
    case SEG__T_NUM:
        n->cd = n->kind == SEG__N_INT ? (double)n->i : (double)n->i / pow10d[n->scale];
        break;
    case SEG__T_MONEY: {
        int e = c->def->exponent;
        int64_t v = n->i;
        int shift = e;
        if (n->kind == SEG__N_DEC) {
            int scale = n->scale;
            while (scale > e && v % 10 == 0) { /* 10.0 is fine in whole units */
                v /= 10;
                scale--;
            }
            if (scale > e)
                return cerr(c, n, SEG_EINVAL,
                            "money %s has more decimals than the currency (%d)", txt, e);
            shift = e - scale;
        }
        for (int k = 0; k < shift; k++) {
            if (v > INT64_MAX / 10)
                return cerr(c, n, SEG_ERANGE, "money %s out of range", txt);
            v *= 10;
        }
        n->ci = v;
        break;
    }
    case SEG__T_DUR:
        return cerr(c, n, SEG_EINVAL, "%s is a number, not a duration: write a unit (30d, "
                    "12h, 2w)", txt);
    case SEG__T_TIME:
        return cerr(c, n, SEG_EINVAL, "%s is a number, not a time: write date(\"2024-03-01\")",
                    txt);
    default:
        return cerr(c, n, SEG_EINVAL, "%s is a number, not a %s", txt, seg__sd_type_name(t));
    }
    n->type = (uint8_t)t;
    n->isconst = 1;
    return SEG_OK;
}

/* Bring nodes to one type for a comparison (or between, in, coalesce). */
static int unify(chk *c, seg__node **v, uint32_t n, const seg__node *at, const char *what)
{
    int t = SEG__T_ERR;
    bool any_dec = false, any_num = false, any_int = false;
    for (uint32_t k = 0; k < n; k++) {
        int tk = v[k]->type;
        if (tk == SEG__T_LITDEC) {
            any_dec = true;
            continue;
        }
        if (tk == SEG__T_LITINT)
            continue;
        if (tk == SEG__T_NUM) any_num = true;
        if (tk == SEG__T_INT) any_int = true;
        if (t == SEG__T_ERR) {
            t = tk;
        } else if (t != tk) {
            bool numeric = (t == SEG__T_INT || t == SEG__T_NUM) &&
                           (tk == SEG__T_INT || tk == SEG__T_NUM);
            if (!numeric)
                return cerr(c, at, SEG_EINVAL, "cannot %s %s with %s", what,
                            seg__sd_type_name(t), seg__sd_type_name(tk));
        }
    }
    if (t == SEG__T_ERR)
        t = any_dec ? SEG__T_NUM : SEG__T_INT;
    else if (any_num || (any_int && any_dec))
        t = (t == SEG__T_INT || t == SEG__T_NUM) ? SEG__T_NUM : t;
    for (uint32_t k = 0; k < n; k++) {
        if (untyped(v[k])) {
            int rc = settle(c, v[k], t);
            if (rc != SEG_OK)
                return rc;
        } else if (v[k]->type == SEG__T_INT && t == SEG__T_NUM) {
            v[k]->conv = 1;
        }
    }
    return SEG_OK;
}

static int tc(chk *c, seg__node *n);

static int need_bool(chk *c, seg__node *n, const char *where)
{
    int rc = tc(c, n);
    if (rc != SEG_OK)
        return rc;
    if (n->type != SEG__T_BOOL)
        return cerr(c, n, SEG_EINVAL, "%s needs a condition (a bool), not a %s", where,
                    seg__sd_type_name(n->type));
    return SEG_OK;
}

/* ---- slots and features ---- */

static bool str_same(seg__str a, seg__str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static int intern_feature(chk *c, const seg__node *at, const seg__feature *f, uint32_t *out)
{
    seg_segdef *d = c->def;
    for (uint32_t k = 0; k < d->nfeats; k++) {
        const seg__feature *g = &d->feats[k];
        if (g->kind == f->kind && g->window == f->window && str_same(g->name, f->name) &&
            str_same(g->category, f->category) && str_same(g->channel, f->channel)) {
            *out = k;
            return SEG_OK;
        }
    }
    if (d->nfeats == c->cap_feats) {
        uint32_t cap = c->cap_feats ? c->cap_feats * 2 : 8;
        seg__feature *p = seg__realloc_array(&d->db->alloc, d->feats, cap, sizeof *p);
        if (!p)
            return oom(c, at);
        d->feats = p;
        c->cap_feats = cap;
    }
    d->feats[d->nfeats] = *f;
    *out = d->nfeats++;
    return SEG_OK;
}

static int intern_slot(chk *c, seg__node *at, const seg__provider *pv, int type, uint32_t feat,
                       seg__str arg, int64_t dur)
{
    seg_segdef *d = c->def;
    for (uint32_t k = 0; k < d->nslots; k++) {
        const seg__slot *s = &d->slots[k];
        if (s->prov == pv && s->feat == feat && str_same(s->arg, arg) && s->dur == dur) {
            at->slot = k;
            return SEG_OK;
        }
    }
    if (d->nslots == c->cap_slots) {
        uint32_t cap = c->cap_slots ? c->cap_slots * 2 : 16;
        seg__slot *p = seg__realloc_array(&d->db->alloc, d->slots, cap, sizeof *p);
        if (!p)
            return oom(c, at);
        d->slots = p;
        c->cap_slots = cap;
    }
    seg__slot *s = &d->slots[d->nslots];
    memset(s, 0, sizeof *s);
    s->prov = pv;
    s->type = (uint8_t)type;
    s->feat = feat;
    s->arg = arg;
    s->dur = dur;
    s->key = SEG__NONE;
    at->slot = d->nslots++;
    d->pv_flags |= pv->flags;
    if (pv->flags & SEG__PV_TIME)
        c->time_dep = true;
    return SEG_OK;
}

/* A string literal argument that names something in the store. */
static int name_arg(chk *c, seg__node *a, const char *fn, const char *what, seg__str *out)
{
    if (a->kind != SEG__N_STR)
        return cerr(c, a, SEG_EINVAL, "%s(...): the %s must be a string literal (\"...\")", fn,
                    what);
    if (a->s.n == 0 || a->s.n > SEG_ID_MAX)
        return cerr(c, a, SEG_EINVAL, "%s(...): the %s must be 1 to %d bytes", fn, what,
                    SEG_ID_MAX);
    a->type = SEG__T_STR;
    a->isconst = 1;
    *out = a->s;
    return SEG_OK;
}

static int dur_arg(chk *c, seg__node *a, const char *fn, int64_t *out)
{
    if (a->kind != SEG__N_DUR)
        return cerr(c, a, SEG_EINVAL, "%s(...): the window must be a duration literal (30d, "
                    "12h, 2w)", fn);
    if (a->i <= 0)
        return cerr(c, a, SEG_EINVAL, "%s(...): the window must be longer than zero", fn);
    a->type = SEG__T_DUR;
    a->isconst = 1;
    a->ci = a->i * seg__du_seconds[a->unit];
    *out = a->ci;
    return SEG_OK;
}

static int check_value_call(chk *c, seg__node *n, const seg__provider *pv)
{
    const char *fn = pv->name;
    uint32_t npos = n->npos, nnamed = n->nkids - n->npos;
    seg__feature f;
    memset(&f, 0, sizeof f);
    f.kind = pv->feature;
    f.window = INT64_MAX;
    int rc;
    switch (pv->sig) {
    case SEG__SIG_WINDOW:
        if (npos != 1)
            return cerr(c, n, SEG_EINVAL, "%s(...) takes one window (%s(30d)), then optional "
                        "category: and channel:", fn, fn);
        if ((rc = dur_arg(c, n->kids[0], fn, &f.window)) != SEG_OK)
            return rc;
        for (uint32_t k = npos; k < n->nkids; k++) {
            seg__node *a = n->kids[k];
            if (seg__str_eq(a->key, "category", 8))
                rc = name_arg(c, a, fn, "category", &f.category);
            else if (seg__str_eq(a->key, "channel", 7))
                rc = name_arg(c, a, fn, "channel", &f.channel);
            else
                rc = cerr(c, a, SEG_EINVAL, "%s(...) has no argument '%s' (it takes "
                          "category: and channel:)", fn, a->key.p);
            if (rc != SEG_OK)
                return rc;
        }
        break;
    case SEG__SIG_COUNT:
        if (nnamed)
            return cerr(c, n->kids[npos], SEG_EINVAL, "%s(...) takes no named arguments", fn);
        if (npos < 1 || npos > 2)
            return cerr(c, n, SEG_EINVAL, "%s(...) takes an event name and an optional window: "
                        "%s(\"email_open\", 30d)", fn, fn);
        if ((rc = name_arg(c, n->kids[0], fn, "event name", &f.name)) != SEG_OK)
            return rc;
        if (npos == 2 && (rc = dur_arg(c, n->kids[1], fn, &f.window)) != SEG_OK)
            return rc;
        break;
    case SEG__SIG_ATTR:
    case SEG__SIG_CONSENT:
    case SEG__SIG_NAME: {
        if (nnamed)
            return cerr(c, n->kids[npos], SEG_EINVAL, "%s(...) takes no named arguments", fn);
        const char *what = pv->sig == SEG__SIG_ATTR ? "attribute name"
                           : pv->sig == SEG__SIG_NAME ? "name" : "channel";
        if (npos != 1)
            return cerr(c, n, SEG_EINVAL, "%s(...) takes one %s: %s(\"%s\")", fn, what, fn,
                        pv->sig == SEG__SIG_ATTR ? "country"
                        : pv->sig == SEG__SIG_NAME ? "core_reactivation" : "email");
        seg__str arg;
        if ((rc = name_arg(c, n->kids[0], fn, what, &arg)) != SEG_OK)
            return rc;
        int type = pv->type;
        if (pv->sig == SEG__SIG_ATTR) {
            char name[SEG_ID_MAX + 1];
            memcpy(name, arg.p, arg.n);
            name[arg.n] = '\0';
            switch (seg_attr_type(c->def->db, name)) {
            case SEG_TYPE_STRING: type = SEG__T_STR; break;
            case SEG_TYPE_INT: type = SEG__T_INT; break;
            case SEG_TYPE_NUMBER: type = SEG__T_NUM; break;
            case SEG_TYPE_BOOL: type = SEG__T_BOOL; break;
            case SEG_TYPE_TIME: type = SEG__T_TIME; break;
            default:
                return cerr(c, n->kids[0], SEG_EINVAL,
                            "attribute '%s' has no type in this database (declare it with "
                            "seg_attr_declare(), or import its values first)", name);
            }
        }
        n->type = (uint8_t)type;
        return intern_slot(c, n, pv, type, UINT32_MAX, arg, 0);
    }
    case SEG__SIG_HORIZON: {
        if (nnamed)
            return cerr(c, n->kids[npos], SEG_EINVAL, "%s(...) takes no named arguments", fn);
        if (npos != 1)
            return cerr(c, n, SEG_EINVAL, "%s(...) takes one horizon: %s(90d)", fn, fn);
        seg__node *a = n->kids[0];
        if (a->kind != SEG__N_DUR)
            return cerr(c, a, SEG_EINVAL, "%s(...): the horizon must be a duration literal "
                        "(90d, 52w)", fn);
        if (a->i <= 0)
            return cerr(c, a, SEG_EINVAL, "%s(...): the horizon must be longer than zero", fn);
        int64_t dur;
        if (__builtin_mul_overflow(a->i, seg__du_seconds[a->unit], &dur) ||
            dur > (int64_t)100 * 366 * 86400)
            return cerr(c, a, SEG_EINVAL, "%s(...): the horizon must be at most 100 years", fn);
        a->type = SEG__T_DUR;
        a->isconst = 1;
        a->ci = dur;
        n->type = pv->type;
        c->time_dep = true;
        return intern_slot(c, n, pv, pv->type, UINT32_MAX, SEG__STR_NULL, dur);
    }
    default:
        return cerr(c, n, SEG_EINVAL, "%s takes no arguments", fn);
    }
    uint32_t fi = 0;
    if ((rc = intern_feature(c, n, &f, &fi)) != SEG_OK)
        return rc;
    if (f.window != INT64_MAX)
        c->time_dep = true;
    n->type = pv->type;
    return intern_slot(c, n, pv, pv->type, fi, SEG__STR_NULL, 0);
}

static const struct { const char *name; int fn; } functions[] = {
    { "date", SEG__FN_DATE }, { "starts_with", SEG__FN_STARTS }, { "ends_with", SEG__FN_ENDS },
    { "contains", SEG__FN_CONTAINS }, { "coalesce", SEG__FN_COALESCE },
};

static int function_of(seg__str name)
{
    for (size_t k = 0; k < sizeof functions / sizeof functions[0]; k++)
        if (seg__str_eq(name, functions[k].name, strlen(functions[k].name)))
            return functions[k].fn;
    return -1;
}

static int check_call(chk *c, seg__node *n)
{
    int fn = function_of(n->s);
    if (fn < 0) {
        const seg__provider *pv = seg__sd_find_provider(c->def, n->s, 1);
        if (pv)
            return check_value_call(c, n, pv);
        if (seg__sd_find_provider(c->def, n->s, 0))
            return cerr(c, n, SEG_EINVAL, "'%s' takes no arguments (write %s without "
                        "parentheses%s)", n->s.p, n->s.p,
                        seg__str_eq(n->s, "revenue", 7) ? "; for a window use spend(30d)" : "");
        return cerr(c, n, SEG_EINVAL, "unknown function '%s'", n->s.p);
    }
    n->mode = (uint8_t)fn;
    const char *name = n->s.p;
    if (n->npos != n->nkids)
        return cerr(c, n->kids[n->npos], SEG_EINVAL, "%s(...) takes no named arguments", name);
    int rc;
    switch (fn) {
    case SEG__FN_DATE: {
        if (n->nkids != 1 || n->kids[0]->kind != SEG__N_STR)
            return cerr(c, n, SEG_EINVAL, "date(...) takes one string: date(\"2024-03-01\")");
        seg__node *a = n->kids[0];
        int64_t t;
        int r = seg_time_parse(&t, a->s.p, a->s.n);
        if (r != SEG_OK)
            return cerr(c, a, r == SEG_ERANGE ? SEG_ERANGE : SEG_EINVAL,
                        "date(\"%.*s\"): %s (write 2024-03-01 or 2024-03-01T10:00:00Z)",
                        (int)(a->s.n > 40 ? 40 : a->s.n), a->s.p,
                        r == SEG_ERANGE ? "out of range" : "not a time");
        a->type = SEG__T_STR;
        a->isconst = 1;
        n->type = SEG__T_TIME;
        n->ci = t;
        n->isconst = 1;
        return SEG_OK;
    }
    case SEG__FN_STARTS:
    case SEG__FN_ENDS:
    case SEG__FN_CONTAINS:
        if (n->nkids != 2)
            return cerr(c, n, SEG_EINVAL, "%s(...) takes two strings: %s(text, \"part\")", name,
                        name);
        for (int k = 0; k < 2; k++) {
            if ((rc = tc(c, n->kids[k])) != SEG_OK)
                return rc;
            if (n->kids[k]->type != SEG__T_STR)
                return cerr(c, n->kids[k], SEG_EINVAL, "%s(...) takes strings, not a %s", name,
                            seg__sd_type_name(n->kids[k]->type));
        }
        n->type = SEG__T_BOOL;
        return SEG_OK;
    case SEG__FN_COALESCE:
        if (n->nkids != 2)
            return cerr(c, n, SEG_EINVAL, "coalesce(...) takes two values: coalesce(value, "
                        "fallback)");
        for (int k = 0; k < 2; k++)
            if ((rc = tc(c, n->kids[k])) != SEG_OK)
                return rc;
        if ((rc = unify(c, n->kids, 2, n, "combine")) != SEG_OK)
            return rc;
        n->type = n->kids[1]->type == SEG__T_INT && n->kids[1]->conv ? SEG__T_NUM
                                                                      : n->kids[1]->type;
        if (n->kids[0]->type == SEG__T_NUM || n->kids[0]->conv)
            n->type = SEG__T_NUM;
        return SEG_OK;
    default:
        return cerr(c, n, SEG_ERROR, "internal: unknown function");
    }
}

static int check_arith(chk *c, seg__node *n)
{
    seg__node *a = n->kids[0], *b = n->kids[1];
    int rc;
    if ((rc = tc(c, a)) != SEG_OK || (rc = tc(c, b)) != SEG_OK)
        return rc;
    int op = n->op;
    const char *ops = seg__sd_op_text(op);
    bool additive = op == SEG__SOP_ADD || op == SEG__SOP_SUB;
    /* literals first: both untyped */
    if (untyped(a) && untyped(b)) {
        int t = (a->type == SEG__T_LITDEC || b->type == SEG__T_LITDEC || op == SEG__SOP_DIV)
                    ? SEG__T_NUM : SEG__T_INT;
        if ((rc = settle(c, a, t)) != SEG_OK || (rc = settle(c, b, t)) != SEG_OK)
            return rc;
    } else if (untyped(a) || untyped(b)) {
        seg__node *lit = untyped(a) ? a : b, *typed = untyped(a) ? b : a;
        int tt = typed->type, t;
        if (tt == SEG__T_MONEY)
            t = additive ? SEG__T_MONEY : (lit->type == SEG__T_LITINT ? SEG__T_INT : SEG__T_NUM);
        else if (tt == SEG__T_DUR && !additive)
            t = lit->type == SEG__T_LITINT ? SEG__T_INT : SEG__T_NUM;
        else if (tt == SEG__T_INT)
            t = lit->type == SEG__T_LITINT && op != SEG__SOP_DIV ? SEG__T_INT : SEG__T_NUM;
        else if (tt == SEG__T_NUM)
            t = SEG__T_NUM;
        else
            t = tt; /* settle() explains why not */
        if (tt == SEG__T_DUR && additive)
            return cerr(c, lit, SEG_EINVAL, "add a duration with a unit (30d, 12h), not a "
                        "plain number");
        if ((rc = settle(c, lit, t)) != SEG_OK)
            return rc;
        if (tt == SEG__T_INT && t == SEG__T_NUM)
            typed->conv = 1;
    }
    int ta = a->type, tb = b->type;
    if (a->conv) ta = SEG__T_NUM;
    if (b->conv) tb = SEG__T_NUM;
#define BOTH(x, y) (ta == SEG__T_##x && tb == SEG__T_##y)
#define EITHER(x, y) (BOTH(x, y) || BOTH(y, x))
    int res = SEG__T_ERR, mode = SEG__AM_I;
    switch (op) {
    case SEG__SOP_ADD:
    case SEG__SOP_SUB:
        if (BOTH(INT, INT) || BOTH(MONEY, MONEY) || BOTH(DUR, DUR))
            res = ta;
        else if (BOTH(NUM, NUM) || EITHER(INT, NUM))
            res = SEG__T_NUM, mode = SEG__AM_D;
        else if (BOTH(TIME, DUR))
            res = SEG__T_TIME;
        else if (op == SEG__SOP_ADD && BOTH(DUR, TIME))
            res = SEG__T_TIME;
        else if (op == SEG__SOP_SUB && BOTH(TIME, TIME))
            res = SEG__T_DUR;
        break;
    case SEG__SOP_MUL:
        if (BOTH(INT, INT) || EITHER(MONEY, INT) || EITHER(DUR, INT))
            res = BOTH(INT, INT) ? SEG__T_INT : (ta == SEG__T_INT ? tb : ta);
        else if (BOTH(NUM, NUM) || EITHER(INT, NUM))
            res = SEG__T_NUM, mode = SEG__AM_D;
        else if (EITHER(MONEY, NUM) || EITHER(DUR, NUM))
            res = ta == SEG__T_NUM ? tb : ta, mode = SEG__AM_D2I;
        break;
    case SEG__SOP_DIV:
        if (BOTH(INT, INT) || BOTH(NUM, NUM) || EITHER(INT, NUM) || BOTH(MONEY, MONEY) ||
            BOTH(DUR, DUR))
            res = SEG__T_NUM, mode = SEG__AM_D;
        else if (BOTH(MONEY, INT) || BOTH(MONEY, NUM) || BOTH(DUR, INT) || BOTH(DUR, NUM))
            res = ta, mode = SEG__AM_D2I;
        break;
    default:
        break;
    }
#undef BOTH
#undef EITHER
    if (res == SEG__T_ERR)
        return cerr(c, n, SEG_EINVAL, "cannot compute %s %s %s", seg__sd_type_name(a->type),
                    ops, seg__sd_type_name(b->type));
    if (mode != SEG__AM_I) {
        /* every int64 operand of a double operation is converted */
        if (ta != SEG__T_NUM) a->conv = 1;
        if (tb != SEG__T_NUM) b->conv = 1;
        if (a->isconst && a->conv) { a->cd = (double)a->ci; a->conv = 0; a->type = SEG__T_NUM; }
        if (b->isconst && b->conv) { b->cd = (double)b->ci; b->conv = 0; b->type = SEG__T_NUM; }
    }
    n->type = (uint8_t)res;
    n->mode = (uint8_t)mode;
    return SEG_OK;
}

static bool is_constant(const seg__node *n)
{
    return n->isconst;
}

static int check_member(chk *c, seg__node *n)
{
    uint32_t v;
    if (!nmap_find(&c->names, n->s, &v))
        return cerr(c, n, SEG_EINVAL, "unknown segment '%s' in in(...)", n->s.p);
    if (v & SETMARK)
        return cerr(c, n, SEG_EINVAL, "'%s' is a segment set: every customer is in it; name "
                    "one of its labels in in(...)", n->s.p);
    n->slot = v;
    n->type = SEG__T_BOOL;
    uint32_t to = c->def->segs[v].item;
    if (c->nedges == c->capedges) {
        size_t cap = c->capedges ? c->capedges * 2 : 16;
        edge *e = seg__realloc_array(&c->def->db->alloc, c->edges, cap, sizeof *e);
        if (!e)
            return oom(c, n);
        c->edges = e;
        c->capedges = cap;
    }
    c->edges[c->nedges].from = c->item;
    c->edges[c->nedges].to = to;
    c->edges[c->nedges].at = n;
    c->nedges++;
    return SEG_OK;
}

static int tc(chk *c, seg__node *n)
{
    int rc = SEG_OK;
    switch (n->kind) {
    case SEG__N_AND:
    case SEG__N_OR:
        for (uint32_t k = 0; k < n->nkids; k++)
            if ((rc = need_bool(c, n->kids[k], n->kind == SEG__N_AND ? "'and'" : "'or'")) != SEG_OK)
                return rc;
        n->type = SEG__T_BOOL;
        return SEG_OK;
    case SEG__N_NOT:
        if ((rc = need_bool(c, n->kids[0], "'not'")) != SEG_OK)
            return rc;
        n->type = SEG__T_BOOL;
        return SEG_OK;
    case SEG__N_CMP: {
        if ((rc = tc(c, n->kids[0])) != SEG_OK || (rc = tc(c, n->kids[1])) != SEG_OK)
            return rc;
        if ((rc = unify(c, n->kids, 2, n, "compare")) != SEG_OK)
            return rc;
        int t = n->kids[0]->conv ? SEG__T_NUM : n->kids[0]->type;
        if (t == SEG__T_BOOL && n->op != SEG__SOP_EQ && n->op != SEG__SOP_NE)
            return cerr(c, n, SEG_EINVAL, "bools compare only with == and !=");
        n->type = SEG__T_BOOL;
        return SEG_OK;
    }
    case SEG__N_IN:
    case SEG__N_BETWEEN:
        for (uint32_t k = 0; k < n->nkids; k++)
            if ((rc = tc(c, n->kids[k])) != SEG_OK)
                return rc;
        if (n->kind == SEG__N_IN) {
            for (uint32_t k = 1; k < n->nkids; k++)
                if (!untyped(n->kids[k]) && !is_constant(n->kids[k]))
                    return cerr(c, n->kids[k], SEG_EINVAL,
                                "the elements of an 'in' list must be constants");
        }
        if ((rc = unify(c, n->kids, n->nkids, n, "compare")) != SEG_OK)
            return rc;
        if (n->kind == SEG__N_BETWEEN && n->kids[0]->type == SEG__T_BOOL)
            return cerr(c, n, SEG_EINVAL, "'between' needs ordered values, not bools");
        n->type = SEG__T_BOOL;
        return SEG_OK;
    case SEG__N_ISNULL:
        if ((rc = tc(c, n->kids[0])) != SEG_OK)
            return rc;
        if (n->kids[0]->isconst || untyped(n->kids[0]))
            return cerr(c, n, SEG_EINVAL, "a constant is never null");
        n->type = SEG__T_BOOL;
        return SEG_OK;
    case SEG__N_ARITH:
        return check_arith(c, n);
    case SEG__N_NEG: {
        seg__node *k = n->kids[0];
        if ((rc = tc(c, k)) != SEG_OK)
            return rc;
        if (untyped(k)) {
            n->type = k->type;
            return SEG_OK;
        }
        if (k->type != SEG__T_INT && k->type != SEG__T_NUM && k->type != SEG__T_MONEY &&
            k->type != SEG__T_DUR)
            return cerr(c, n, SEG_EINVAL, "cannot negate a %s", seg__sd_type_name(k->type));
        n->type = k->type;
        return SEG_OK;
    }
    case SEG__N_INT:
        n->type = SEG__T_LITINT;
        return SEG_OK;
    case SEG__N_DEC:
        n->type = SEG__T_LITDEC;
        return SEG_OK;
    case SEG__N_DUR:
        n->type = SEG__T_DUR;
        n->ci = n->i * seg__du_seconds[n->unit];
        n->isconst = 1;
        return SEG_OK;
    case SEG__N_STR:
        n->type = SEG__T_STR;
        n->isconst = 1;
        return SEG_OK;
    case SEG__N_BOOL:
        n->type = SEG__T_BOOL;
        n->ci = n->i;
        n->isconst = 1;
        return SEG_OK;
    case SEG__N_NAME: {
        const seg__provider *pv = seg__sd_find_provider(c->def, n->s, 0);
        if (pv) {
            n->type = pv->type;
            return intern_slot(c, n, pv, pv->type, UINT32_MAX, SEG__STR_NULL, 0);
        }
        uint32_t v;
        if (seg__sd_find_provider(c->def, n->s, 1))
            return cerr(c, n, SEG_EINVAL, "'%s' needs arguments, e.g. %s", n->s.p,
                        seg__str_eq(n->s, "count", 5) ? "count(\"email_open\", 30d)"
                        : seg__str_eq(n->s, "attr", 4) ? "attr(\"country\")"
                        : seg__str_eq(n->s, "consent", 7) ? "consent(\"email\")" : "spend(30d)");
        if (function_of(n->s) >= 0)
            return cerr(c, n, SEG_EINVAL, "'%s' is a function: call it with (...)", n->s.p);
        if (nmap_find(&c->names, n->s, &v))
            return cerr(c, n, SEG_EINVAL, "'%s' is a %s: test membership with in(%s)", n->s.p,
                        (v & SETMARK) ? "segment set" : "segment", n->s.p);
        return cerr(c, n, SEG_EINVAL, "unknown value '%s'", n->s.p);
    }
    case SEG__N_CALL:
        return check_call(c, n);
    case SEG__N_MEMBER:
        return check_member(c, n);
    default:
        return cerr(c, n, SEG_ERROR, "internal: unknown node");
    }
}

/* ---- items, names, order ---- */

static char *dupstr(const seg__alloc *a, seg__str s)
{
    char *p = seg__malloc(a, s.n + 1);
    if (p) {
        memcpy(p, s.p, s.n);
        p[s.n] = '\0';
    }
    return p;
}

static int declare(chk *c, seg__str name, uint32_t line, uint32_t col, uint32_t val,
                   const char *what)
{
    uint32_t old;
    seg__node at;
    memset(&at, 0, sizeof at);
    at.line = line;
    at.col = col;
    if (nmap_find(&c->names, name, &old)) {
        const char *first = (old & SETMARK) ? "a segment set" : "a segment";
        return cerr(c, &at, SEG_EINVAL, "%s '%s' is already defined as %s (segment and set "
                    "names and labels share one namespace)", what, name.p, first);
    }
    if (!nmap_put(&c->names, name, val))
        return oom(c, &at);
    return SEG_OK;
}

static int order_items(chk *c)
{
    seg_segdef *d = c->def;
    const seg__alloc *a = &d->db->alloc;
    uint32_t n = d->nitems;
    uint32_t *deps = seg__calloc(a, (size_t)n + 1, sizeof *deps);   /* unresolved deps */
    uint32_t *start = seg__calloc(a, (size_t)n + 2, sizeof *start); /* reverse adjacency */
    uint32_t *rev = seg__calloc(a, c->nedges + 1, sizeof *rev);
    uint32_t *queue = seg__calloc(a, (size_t)n + 1, sizeof *queue);
    d->order = seg__calloc(a, (size_t)n + 1, sizeof *d->order);
    int rc = SEG_OK;
    if (!deps || !start || !rev || !queue || !d->order) {
        rc = oom(c, NULL);
        goto out;
    }
    for (size_t e = 0; e < c->nedges; e++) {
        deps[c->edges[e].from]++;
        start[c->edges[e].to + 1]++;
    }
    for (uint32_t i = 0; i < n; i++)
        start[i + 1] += start[i];
    {
        uint32_t *fill = queue; /* reuse as a cursor array before the queue is needed */
        memcpy(fill, start, n * sizeof *fill);
        for (size_t e = 0; e < c->nedges; e++)
            rev[fill[c->edges[e].to]++] = (uint32_t)e;
    }
    uint32_t head = 0, tail = 0, done = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!deps[i])
            queue[tail++] = i;
    while (head < tail) {
        uint32_t i = queue[head++];
        d->order[done++] = i;
        for (uint32_t k = start[i]; k < start[i + 1]; k++) {
            uint32_t from = c->edges[rev[k]].from;
            if (--deps[from] == 0)
                queue[tail++] = from;
        }
    }
    if (done < n) {
        /* a cycle: walk from an item left over along its edges to left-over
         * items until one repeats */
        uint32_t cur = UINT32_MAX;
        for (uint32_t i = 0; i < n && cur == UINT32_MAX; i++)
            if (deps[i])
                cur = i;
        uint32_t *seen = queue; /* step at which an item was visited + 1 */
        memset(seen, 0, (size_t)n * sizeof *seen);
        const edge **path = seg__calloc(a, (size_t)n + 1, sizeof *path);
        if (!path) {
            rc = oom(c, NULL);
            goto out;
        }
        uint32_t step = 0;
        while (!seen[cur]) {
            seen[cur] = ++step;
            const edge *next = NULL;
            for (size_t e = 0; e < c->nedges && !next; e++)
                if (c->edges[e].from == cur && deps[c->edges[e].to])
                    next = &c->edges[e];
            path[step - 1] = next;
            cur = next->to;
        }
        /* the cycle is path[seen[cur]-1 .. step-1] */
        char msg[400];
        size_t len = 0;
        uint32_t first = seen[cur] - 1;
        len += (size_t)snprintf(msg + len, sizeof msg - len, "%s", d->items[cur].name);
        for (uint32_t k = first; k < step && len < sizeof msg; k++)
            len += (size_t)snprintf(msg + len, sizeof msg - len, " -> %s",
                                    d->items[path[k]->to].name);
        const seg__node *at = path[step - 1]->at;
        if (first == step - 1)
            rc = cerr(c, at, SEG_EINVAL, "'%s' refers to itself through in(%s)",
                      d->items[cur].name, at->s.p);
        else
            rc = cerr(c, at, SEG_EINVAL, "cycle between segments: %s", msg);
        seg__free(a, path);
    }
out:
    seg__free(a, deps);
    seg__free(a, start);
    seg__free(a, rev);
    seg__free(a, queue);
    return rc;
}

int seg__sd_check(seg_segdef *d, seg__sderr *err)
{
    const seg__alloc *a = &d->db->alloc;
    chk c;
    memset(&c, 0, sizeof c);
    c.def = d;
    c.err = err;
    c.names.a = a;
    int rc = SEG_OK;
    const seg__ast *ast = &d->ast;
    size_t nsegs = 0;
    for (uint32_t i = 0; i < ast->nitems; i++)
        nsegs += ast->items[i].nrules;
    if (nsegs > SEG__SD_SEG_MAX) {
        seg__node at;
        memset(&at, 0, sizeof at);
        at.line = ast->items[ast->nitems - 1].line;
        at.col = ast->items[ast->nitems - 1].col;
        rc = cerr(&c, &at, SEG_ELIMIT, "more than %u segments", SEG__SD_SEG_MAX);
        goto out;
    }
    d->items = seg__calloc(a, ast->nitems + 1, sizeof *d->items);
    d->segs = seg__calloc(a, nsegs + 1, sizeof *d->segs);
    if (!d->items || !d->segs) {
        rc = oom(&c, NULL);
        goto out;
    }
    d->nitems = ast->nitems;
    /* names first: in(x) may name a segment defined further down */
    for (uint32_t i = 0; i < ast->nitems && rc == SEG_OK; i++) {
        const seg__item *it = &ast->items[i];
        seg__citem *ci = &d->items[i];
        ci->kind = it->kind;
        ci->first_seg = d->nsegs;
        ci->nrules = it->nrules;
        if (!(ci->name = dupstr(a, it->name))) {
            rc = oom(&c, NULL);
            break;
        }
        if (it->kind == SEG__ITEM_SET &&
            (rc = declare(&c, it->name, it->line, it->col, i | SETMARK, "set")) != SEG_OK)
            break;
        for (uint32_t r = 0; r < it->nrules && rc == SEG_OK; r++) {
            const seg__rule *ru = &it->rules[r];
            seg__segment *s = &d->segs[d->nsegs];
            s->item = i;
            s->rule = r;
            if (!(s->name = dupstr(a, ru->label))) {
                rc = oom(&c, NULL);
                break;
            }
            d->nsegs++;
            rc = declare(&c, ru->label, ru->line, ru->col, d->nsegs - 1,
                         it->kind == SEG__ITEM_SET ? "label" : "segment");
        }
    }
    for (uint32_t i = 0; i < ast->nitems && rc == SEG_OK; i++) {
        const seg__item *it = &ast->items[i];
        c.item = i;
        for (uint32_t r = 0; r < it->nrules && rc == SEG_OK; r++)
            if (it->rules[r].cond)
                rc = need_bool(&c, it->rules[r].cond,
                               it->kind == SEG__ITEM_SET ? "a set's rule"
                               /* the hidden segments of journeys have a space */
                               : memchr(it->name.p, ' ', it->name.n) ? "a journey's rule"
                                                                    : "a segment");
    }
    if (rc == SEG_OK)
        rc = order_items(&c);
    if (rc == SEG_OK && c.time_dep)
        d->pv_flags |= SEG__PV_TIME;
out:
    seg__free(a, c.names.t);
    seg__free(a, c.edges);
    return rc;
}
