/*
 * Lifetime value: the public API.  The model handle and its parameters,
 * export and import as text, per-customer summaries (from the store or from
 * a caller's arrays), fitting, and scoring.
 */
#include "clv/clv-private.h"
#include "storage/storage-private.h"

#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------ basics */

int seg__clv_error(seg_clv_model *m, int code, const char *fmt, ...)
{
    if (!m)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->errmsg, sizeof m->errmsg, fmt, ap);
    va_end(ap);
    return code;
}

static void clear_error(seg_clv_model *m)
{
    m->errmsg[0] = '\0';
}

int64_t seg__clv_unit_seconds(uint32_t unit)
{
    return unit == SEG_CLV_DAY ? 86400 : unit == SEG_CLV_WEEK ? 7 * 86400 : 0;
}

const char *seg__clv_unit_name(uint32_t unit)
{
    return unit == SEG_CLV_DAY ? "day" : unit == SEG_CLV_WEEK ? "week" : "?";
}

const char *seg__clv_kind_name(uint32_t kind)
{
    switch (kind) {
    case SEG_CLV_BGNBD: return "bgnbd";
    case SEG_CLV_MBGNBD: return "mbgnbd";
    case SEG_CLV_PARETO: return "pareto";
    default: return "?";
    }
}

static const char *const bg_names[4] = { "r", "alpha", "a", "b" };
static const char *const pnbd_names[4] = { "r", "alpha", "s", "beta" };
const char *const seg__clv_spend_names[3] = { "p", "q", "gamma" };

const char *const *seg__clv_param_names(uint32_t kind)
{
    return kind == SEG_CLV_PARETO ? pnbd_names : bg_names;
}

static bool valid_kind(uint32_t k)
{
    return k == SEG_CLV_BGNBD || k == SEG_CLV_MBGNBD || k == SEG_CLV_PARETO;
}

/* ------------------------------------------------------------ handle */

SEG_API int seg_clv_model_new(seg_clv_model **out, uint32_t model, uint32_t unit,
                              const seg_allocator *allocator)
{
    if (!out)
        return SEG_EINVAL;
    *out = NULL;
    if (!valid_kind(model) || !seg__clv_unit_seconds(unit))
        return SEG_EINVAL;
    seg__alloc a = seg__default_alloc;
    if (allocator) {
        if (allocator->struct_size < sizeof(seg_allocator) || !allocator->malloc ||
            !allocator->realloc || !allocator->free)
            return SEG_EINVAL;
        a.malloc = allocator->malloc;
        a.realloc = allocator->realloc;
        a.free = allocator->free;
        a.ud = allocator->ud;
    }
    seg_clv_model *m = seg__calloc(&a, 1, sizeof *m);
    if (!m)
        return SEG_ENOMEM;
    m->alloc = a;
    m->kind = model;
    m->unit = unit;
    *out = m;
    return SEG_OK;
}

SEG_API void seg_clv_model_free(seg_clv_model *m)
{
    if (m) {
        seg__alloc a = m->alloc;
        seg__free(&a, m);
    }
}

SEG_API const char *seg_clv_model_errmsg(const seg_clv_model *m)
{
    return m ? m->errmsg : "no model handle";
}

SEG_API uint32_t seg_clv_model_kind(const seg_clv_model *m)
{
    return m ? m->kind : 0;
}

SEG_API uint32_t seg_clv_model_unit(const seg_clv_model *m)
{
    return m ? m->unit : 0;
}

static int check_params(seg_clv_model *m, const double *v, size_t n, size_t want,
                        const char *const *names)
{
    if (!v)
        return seg__clv_error(m, SEG_EINVAL, "params: NULL");
    if (n != want)
        return seg__clv_error(m, SEG_EINVAL, "params: %zu values given, %zu expected", n, want);
    for (size_t i = 0; i < n; i++)
        if (!(isfinite(v[i]) && v[i] > 0))
            return seg__clv_error(m, SEG_EINVAL, "params: %s = %g is not a finite number > 0",
                                  names[i], v[i]);
    return SEG_OK;
}

SEG_API int seg_clv_model_set_params(seg_clv_model *m, const double *params, size_t n)
{
    if (!m)
        return SEG_EINVAL;
    clear_error(m);
    int rc = check_params(m, params, n, 4, seg__clv_param_names(m->kind));
    if (rc != SEG_OK)
        return rc;
    memcpy(m->params, params, sizeof m->params);
    m->has_params = true;
    return SEG_OK;
}

SEG_API int seg_clv_model_set_spend_params(seg_clv_model *m, const double *params, size_t n)
{
    if (!m)
        return SEG_EINVAL;
    clear_error(m);
    int rc = check_params(m, params, n, 3, seg__clv_spend_names);
    if (rc != SEG_OK)
        return rc;
    memcpy(m->spend, params, sizeof m->spend);
    m->has_spend = true;
    return SEG_OK;
}

SEG_API int seg_clv_model_get_params(double *out, size_t n, seg_clv_model *m)
{
    if (!m)
        return SEG_EINVAL;
    clear_error(m);
    if (!out || n < 4)
        return seg__clv_error(m, SEG_EINVAL, "out: room for 4 parameters needed");
    if (!m->has_params)
        return seg__clv_error(m, SEG_ENOTFOUND, "the model has no parameters yet (fit or import)");
    memcpy(out, m->params, sizeof m->params);
    return SEG_OK;
}

SEG_API int seg_clv_model_get_spend_params(double *out, size_t n, seg_clv_model *m)
{
    if (!m)
        return SEG_EINVAL;
    clear_error(m);
    if (!out || n < 3)
        return seg__clv_error(m, SEG_EINVAL, "out: room for 3 parameters needed");
    if (!m->has_spend)
        return seg__clv_error(m, SEG_ENOTFOUND,
                              "the model has no spend parameters yet (fit or import p, q, gamma)");
    memcpy(out, m->spend, sizeof m->spend);
    return SEG_OK;
}

/* ------------------------------------------------------ export/import */

/* "%.17g" with '.' as the decimal point whatever the C locale says */
static int fmt_double(char *buf, size_t size, double v)
{
    int n = snprintf(buf, size, "%.17g", v);
    if (n < 0 || (size_t)n >= size)
        return -1;
    for (char *p = buf; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == 'e'))
            *p = '.';
    return n;
}

/* A decimal number ("0.25", "-1.5e-3"), locale independent: the digits
 * and a decimal exponent go to strtod without a decimal point. */
static bool parse_double(const char *p, size_t n, double *out)
{
    char dig[96];
    size_t nd = 0, i = 0;
    long dexp = 0;
    bool neg = false, any = false;
    if (i < n && (p[i] == '-' || p[i] == '+'))
        neg = p[i++] == '-';
    if (i < n && p[i] == '-')
        return false;
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
        any = true;
        if (nd < 40)
            dig[nd++] = p[i];
        else
            dexp++;
    }
    if (i < n && p[i] == '.') {
        for (i++; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
            any = true;
            if (nd < 40) {
                dig[nd++] = p[i];
                dexp--;
            }
        }
    }
    if (!any)
        return false;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        bool eneg = false;
        long e = 0;
        i++;
        if (i < n && (p[i] == '-' || p[i] == '+'))
            eneg = p[i++] == '-';
        if (i == n || p[i] < '0' || p[i] > '9')
            return false;
        for (; i < n && p[i] >= '0' && p[i] <= '9'; i++)
            if (e < 100000)
                e = e * 10 + (p[i] - '0');
        dexp += eneg ? -e : e;
    }
    if (i != n)
        return false;
    if (nd == 0)
        dig[nd++] = '0';
    snprintf(dig + nd, sizeof dig - nd, "e%ld", dexp);
    double v = strtod(dig, NULL);
    *out = neg ? -v : v;
    return true;
}

SEG_API int seg_clv_model_export(char **out, seg_clv_model *m)
{
    if (!m)
        return SEG_EINVAL;
    clear_error(m);
    if (!out)
        return seg__clv_error(m, SEG_EINVAL, "out: NULL");
    *out = NULL;
    if (!m->has_params && !m->has_spend)
        return seg__clv_error(m, SEG_ENOTFOUND, "the model has no parameters to export");
    char buf[1024], num[40];
    size_t len = (size_t)snprintf(buf, sizeof buf, "param,value\nmodel,%s\nunit,%s\n",
                                  seg__clv_kind_name(m->kind), seg__clv_unit_name(m->unit));
    const char *const *names = seg__clv_param_names(m->kind);
    for (int i = 0; m->has_params && i < 4; i++) {
        fmt_double(num, sizeof num, m->params[i]);
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s,%s\n", names[i], num);
    }
    for (int i = 0; m->has_spend && i < 3; i++) {
        fmt_double(num, sizeof num, m->spend[i]);
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s,%s\n", seg__clv_spend_names[i], num);
    }
    const seg__alloc *a = m->alloc.malloc == seg__default_alloc.malloc ? &seg__default_alloc : &m->alloc;
    char *s = seg__strdup_user(a, buf, len);
    if (!s)
        return seg__clv_error(m, SEG_ENOMEM, "out of memory");
    *out = s;
    return SEG_OK;
}

static size_t trim(const char **p, size_t n)
{
    while (n && (**p == ' ' || **p == '\t')) {
        (*p)++;
        n--;
    }
    while (n && ((*p)[n - 1] == ' ' || (*p)[n - 1] == '\t' || (*p)[n - 1] == '\r'))
        n--;
    return n;
}

static bool eq(const char *p, size_t n, const char *s)
{
    return strlen(s) == n && memcmp(p, s, n) == 0;
}

SEG_API int seg_clv_model_import(seg_clv_model *m, const char *text, size_t len)
{
    if (!m)
        return SEG_EINVAL;
    clear_error(m);
    if (!text && len)
        return seg__clv_error(m, SEG_EINVAL, "text: NULL");
    double pv[4], sv[3];
    bool pset[4] = { false, false, false, false }, sset[3] = { false, false, false };
    const char *const *names = seg__clv_param_names(m->kind);
    size_t pos = 0;
    for (unsigned line = 1; pos < len; line++) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + (nl ? 1 : 0);
        n = trim(&s, n);
        if (n == 0 || s[0] == '#')
            continue;
        const char *comma = memchr(s, ',', n);
        if (!comma)
            return seg__clv_error(m, SEG_EPARSE, "line %u: expected 'name,value'", line);
        const char *name = s, *val = comma + 1;
        size_t nn = trim(&name, (size_t)(comma - s)), nv = trim(&val, n - (size_t)(comma - s) - 1);
        if (eq(name, nn, "param") && eq(val, nv, "value"))
            continue;
        if (eq(name, nn, "model")) {
            if (!eq(val, nv, seg__clv_kind_name(m->kind)))
                return seg__clv_error(m, SEG_EINVAL, "line %u: model '%.*s' does not match this %s model",
                                      line, (int)(nv > 40 ? 40 : nv), val, seg__clv_kind_name(m->kind));
            continue;
        }
        if (eq(name, nn, "unit")) {
            if (!eq(val, nv, seg__clv_unit_name(m->unit)))
                return seg__clv_error(m, SEG_EINVAL,
                                      "line %u: unit '%.*s' does not match this model's unit (%s)",
                                      line, (int)(nv > 40 ? 40 : nv), val, seg__clv_unit_name(m->unit));
            continue;
        }
        double v;
        double *slot = NULL;
        bool *set = NULL;
        for (int i = 0; i < 4 && !slot; i++)
            if (eq(name, nn, names[i])) {
                slot = &pv[i];
                set = &pset[i];
            }
        for (int i = 0; i < 3 && !slot; i++)
            if (eq(name, nn, seg__clv_spend_names[i])) {
                slot = &sv[i];
                set = &sset[i];
            }
        if (!slot)
            return seg__clv_error(m, SEG_EINVAL, "line %u: unknown parameter '%.*s' for a %s model",
                                  line, (int)(nn > 40 ? 40 : nn), name, seg__clv_kind_name(m->kind));
        if (*set)
            return seg__clv_error(m, SEG_EINVAL, "line %u: '%.*s' given twice", line, (int)nn, name);
        if (!parse_double(val, nv, &v))
            return seg__clv_error(m, SEG_EINVAL, "line %u: %.*s: not a number: '%.*s'", line, (int)nn,
                                  name, (int)(nv > 40 ? 40 : nv), val);
        if (!(isfinite(v) && v > 0))
            return seg__clv_error(m, SEG_EINVAL, "line %u: %.*s = %g is not a finite number > 0", line,
                                  (int)nn, name, v);
        *slot = v;
        *set = true;
    }
    int np = 0, ns = 0;
    for (int i = 0; i < 4; i++)
        np += pset[i];
    for (int i = 0; i < 3; i++)
        ns += sset[i];
    if (np && np < 4)
        for (int i = 0; i < 4; i++)
            if (!pset[i])
                return seg__clv_error(m, SEG_EINVAL, "parameter '%s' is missing", names[i]);
    if (ns && ns < 3)
        for (int i = 0; i < 3; i++)
            if (!sset[i])
                return seg__clv_error(m, SEG_EINVAL, "parameter '%s' is missing", seg__clv_spend_names[i]);
    if (!np && !ns)
        return seg__clv_error(m, SEG_EINVAL, "no parameter given");
    if (np) {
        memcpy(m->params, pv, sizeof pv);
        m->has_params = true;
    }
    if (ns) {
        memcpy(m->spend, sv, sizeof sv);
        m->has_spend = true;
    }
    return SEG_OK;
}

/* ---------------------------------------------------------- summaries */

typedef struct txn {
    int64_t day, ts;
    double amount; /* minor units */
} txn;

static int cmp_txn(const void *a, const void *b)
{
    const txn *x = a, *y = b;
    return (x->day > y->day) - (x->day < y->day);
}

static void sort_txn(txn *v, size_t n)
{
    if (n < 24) {
        for (size_t i = 1; i < n; i++) {
            txn t = v[i];
            size_t j = i;
            while (j > 0 && v[j - 1].day > t.day) {
                v[j] = v[j - 1];
                j--;
            }
            v[j] = t;
        }
    } else {
        qsort(v, n, sizeof *v, cmp_txn);
    }
}

typedef struct sum_params {
    int64_t end_day, hold_day; /* hold_day INT64_MAX: no end */
    double unit_days, money_scale;
} sum_params;

/* Summarize transactions sorted by day.  Returns false when the first one
 * comes after the calibration end. */
static bool summarize_sorted(const txn *v, size_t n, const sum_params *sp, seg_clv_summary *o)
{
    int64_t d0 = v[0].day, last = d0;
    if (d0 > sp->end_day)
        return false;
    int64_t first_ts = v[0].ts;
    double x = 0.0, repeat_amount = 0.0, hold_amount = 0.0;
    uint64_t hold = 0;
    int64_t prev = d0;
    for (size_t i = 0; i < n; i++) {
        const txn *t = &v[i];
        if (t->day == d0 && t->ts < first_ts)
            first_ts = t->ts;
        if (t->day <= sp->end_day) {
            if (t->day != d0) {
                if (t->day != prev)
                    x += 1.0;
                repeat_amount += t->amount;
                last = t->day;
            }
        } else if (t->day <= sp->hold_day) {
            if (t->day != prev)
                hold++;
            hold_amount += t->amount;
        }
        prev = t->day;
    }
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->frequency = x;
    o->recency = x > 0 ? (double)(last - d0) / sp->unit_days : 0.0;
    o->age = (double)(sp->end_day - d0) / sp->unit_days;
    o->monetary = x > 0 ? repeat_amount / x / sp->money_scale : 0.0;
    o->first_purchase = first_ts;
    o->holdout_frequency = hold;
    o->holdout_amount = hold_amount / sp->money_scale;
    return true;
}

static double pow10i(int e)
{
    double s = 1.0;
    for (int i = 0; i < e; i++)
        s *= 10.0;
    return s;
}

#define SUMMARY_MIN_SIZE sizeof(seg_clv_summary)
#define SUMOPTS_MIN_SIZE sizeof(seg_clv_summary_options)
#define STATS_MIN_SIZE sizeof(seg_clv_summary_stats)

SEG_API int seg_clv_summarize(seg_clv_summary *out, seg_clv_model *m, const int64_t *ts,
                              const int64_t *amount, size_t n, int64_t calibration_end,
                              int currency_exponent)
{
    if (!m)
        return SEG_EINVAL;
    clear_error(m);
    if (!out)
        return seg__clv_error(m, SEG_EINVAL, "out: NULL");
    if (out->struct_size < SUMMARY_MIN_SIZE)
        return seg__clv_error(m, SEG_EVERSION, "seg_clv_summary: unsupported struct_size %zu",
                              out->struct_size);
    if (!ts || n == 0)
        return seg__clv_error(m, SEG_EINVAL, "no transaction given");
    if (currency_exponent < 0 || currency_exponent > 6)
        return seg__clv_error(m, SEG_EINVAL, "currency_exponent %d is not in 0..6", currency_exponent);
    if (calibration_end < SEG_TIME_MIN || calibration_end > SEG_TIME_MAX)
        return seg__clv_error(m, SEG_ERANGE, "calibration_end %lld is out of range",
                              (long long)calibration_end);
    bool sorted = true;
    for (size_t i = 0; i < n; i++) {
        if (ts[i] < SEG_TIME_MIN || ts[i] > SEG_TIME_MAX)
            return seg__clv_error(m, SEG_EINVAL, "ts[%zu] = %lld is out of range", i, (long long)ts[i]);
        if (amount && (amount[i] < 0 || amount[i] > SEG_AMOUNT_MAX))
            return seg__clv_error(m, SEG_EINVAL, "amount[%zu] = %lld is not in 0..%lld", i,
                                  (long long)amount[i], (long long)SEG_AMOUNT_MAX);
        if (i && ts[i] < ts[i - 1])
            sorted = false;
    }
    txn small[64], *v = small;
    if (!sorted && n > 64) {
        v = seg__calloc(&m->alloc, n, sizeof *v);
        if (!v)
            return seg__clv_error(m, SEG_ENOMEM, "out of memory");
    }
    sum_params sp = { seg__day_of(calibration_end), INT64_MAX,
                      (double)seg__clv_unit_seconds(m->unit) / 86400.0, pow10i(currency_exponent) };
    seg_clv_summary s;
    bool ok;
    if (sorted) {
        /* walk the caller's arrays in chunks through the small buffer */
        ok = true;
        int64_t d0 = seg__day_of(ts[0]);
        if (d0 > sp.end_day) {
            ok = false;
        } else {
            /* same result as summarize_sorted over all of it, without a copy */
            double x = 0.0, rep = 0.0;
            int64_t prev = d0, last = d0;
            for (size_t i = 0; i < n; i++) {
                int64_t d = seg__day_of(ts[i]);
                if (d > sp.end_day)
                    break;
                if (d != d0) {
                    if (d != prev)
                        x += 1.0;
                    rep += amount ? (double)amount[i] : 0.0;
                    last = d;
                }
                prev = d;
            }
            memset(&s, 0, sizeof s);
            s.struct_size = sizeof s;
            s.frequency = x;
            s.recency = x > 0 ? (double)(last - d0) / sp.unit_days : 0.0;
            s.age = (double)(sp.end_day - d0) / sp.unit_days;
            s.monetary = x > 0 ? rep / x / sp.money_scale : 0.0;
            s.first_purchase = ts[0];
            uint64_t hold = 0;
            double hold_amount = 0.0;
            prev = d0;
            for (size_t i = 0; i < n; i++) {
                int64_t d = seg__day_of(ts[i]);
                if (d > sp.end_day) {
                    if (d != prev)
                        hold++;
                    hold_amount += amount ? (double)amount[i] : 0.0;
                }
                prev = d;
            }
            s.holdout_frequency = hold;
            s.holdout_amount = hold_amount / sp.money_scale;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            v[i].day = seg__day_of(ts[i]);
            v[i].ts = ts[i];
            v[i].amount = amount ? (double)amount[i] : 0.0;
        }
        sort_txn(v, n);
        ok = summarize_sorted(v, n, &sp, &s);
        if (v != small)
            seg__free(&m->alloc, v);
    }
    if (!ok)
        return seg__clv_error(m, SEG_EINVAL, "no transaction up to the calibration end");
    s.customer_id = NULL;
    return seg__struct_out(out, out->struct_size, &s, sizeof s, SUMMARY_MIN_SIZE);
}


int seg__clv_scratch_reserve(const seg__alloc *a, seg__clv_scratch *scratch, size_t events)
{
    if (events <= scratch->cap)
        return SEG_OK;
    size_t nc = scratch->cap ? scratch->cap : 64;
    while (nc < events)
        nc *= 2;
    void *nv = seg__realloc_array(a, scratch->buf, nc, sizeof(txn));
    if (!nv)
        return SEG_ENOMEM;
    scratch->buf = nv;
    scratch->cap = nc;
    return SEG_OK;
}

static int customer_summary(const seg__alloc *a, const seg__store *s, uint32_t ci, int64_t as_of,
                            int64_t hold_day, uint32_t unit, int exponent, seg__clv_scratch *scratch,
                            seg_clv_summary *out)
{
    const seg__cust *c = &s->custs[ci];
    if (!c->id)
        return SEG_ENOTFOUND;
    if (seg__clv_scratch_reserve(a, scratch, c->events) != SEG_OK)
        return SEG_ENOMEM;
    txn *v = scratch->buf;
    size_t nt = 0;
    for (uint32_t j = c->head; j != SEG__NONE && nt < c->events; j = seg__ev_next(s, j)) {
        if (seg__ev_kind(s, j) != SEG_EVENT_PURCHASE)
            continue;
        int64_t ts = seg__ev_ts(s, j);
        v[nt].day = seg__day_of(ts);
        v[nt].ts = ts;
        v[nt].amount = (double)seg__ev_amount(s, j);
        nt++;
    }
    if (nt == 0)
        return SEG_ENOTFOUND;
    sort_txn(v, nt);
    sum_params sp = { seg__day_of(as_of), hold_day, (double)seg__clv_unit_seconds(unit) / 86400.0,
                      pow10i(exponent) };
    if (!summarize_sorted(v, nt, &sp, out))
        return SEG_ERANGE;
    return SEG_OK;
}

int seg__clv_customer_summary(const seg__alloc *a, const seg__store *s, uint32_t ci, int64_t as_of,
                              uint32_t unit, int exponent, seg__clv_scratch *scratch,
                              seg_clv_summary *out)
{
    int rc = customer_summary(a, s, ci, as_of, INT64_MAX, unit, exponent, scratch, out);
    return rc == SEG_ERANGE ? SEG_ENOTFOUND : rc;
}

SEG_API int seg_clv_summary_foreach(seg_db *db, const seg_clv_summary_options *opts,
                                    seg_clv_summary_cb cb, void *payload,
                                    seg_clv_summary_stats *stats_out)
{
    if (!db)
        return SEG_EINVAL;
    seg__error_clear(db);
    seg_clv_summary_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    if (stats_out) {
        if (stats_out->struct_size < STATS_MIN_SIZE)
            return seg__error(db, SEG_EVERSION, "seg_clv_summary_stats: unsupported struct_size %zu",
                              stats_out->struct_size);
        seg__struct_out(stats_out, stats_out->struct_size, &st, sizeof st, STATS_MIN_SIZE);
    }
    if (!opts)
        return seg__error(db, SEG_EINVAL, "opts: NULL (the unit and the calibration end are required)");
    if (!cb)
        return seg__error(db, SEG_EINVAL, "cb: NULL");
    seg_clv_summary_options o;
    memset(&o, 0, sizeof o);
    if (seg__struct_in(&o, sizeof o, opts, opts->struct_size, SUMOPTS_MIN_SIZE) != SEG_OK)
        return seg__error(db, SEG_EVERSION, "seg_clv_summary_options: unsupported struct_size %zu",
                          opts->struct_size);
    if (!seg__clv_unit_seconds(o.unit))
        return seg__error(db, SEG_EINVAL, "unit: %u is not SEG_CLV_DAY or SEG_CLV_WEEK", (unsigned)o.unit);
    if (o.flags & ~SEG_CUSTOMER_SORTED)
        return seg__error(db, SEG_EINVAL, "unknown flags 0x%x", (unsigned)o.flags);
    if (o.calibration_end < SEG_TIME_MIN || o.calibration_end > SEG_TIME_MAX ||
        o.holdout_end < SEG_TIME_MIN || o.holdout_end > SEG_TIME_MAX)
        return seg__error(db, SEG_EINVAL, "calibration_end or holdout_end is out of range");
    if (o.holdout_end && seg__day_of(o.holdout_end) < seg__day_of(o.calibration_end))
        return seg__error(db, SEG_EINVAL, "holdout_end is before calibration_end");

    seg__store *s = &db->store;
    const seg__alloc *a = &db->alloc;
    uint32_t *order = NULL;
    size_t n = s->ncusts;
    if (o.flags & SEG_CUSTOMER_SORTED) {
        order = seg__malloc(a, (size_t)s->ncusts * 2 * sizeof *order + 1);
        if (!order)
            return seg__error(db, SEG_ENOMEM, "out of memory");
        n = 0;
        for (uint32_t ci = 0; ci < s->ncusts; ci++)
            if (s->custs[ci].id)
                order[n++] = ci;
        seg__cust_sort_by_id(s, order, order + s->ncusts, n);
    }
    seg__clv_scratch scratch = { NULL, 0 };
    int64_t hold_day = o.holdout_end ? seg__day_of(o.holdout_end) : INT64_MAX;
    int exponent = seg__db_exponent(db);
    char idbuf[SEG_ID_MAX + 1];
    int rc = SEG_OK;
    bool was = db->iterating;
    db->iterating = true;
    for (size_t k = 0; k < n; k++) {
        uint32_t ci = order ? order[k] : (uint32_t)k;
        const seg__cust *c = &s->custs[ci];
        if (!c->id)
            continue;
        seg_clv_summary sum;
        int r = customer_summary(a, s, ci, o.calibration_end, hold_day, o.unit, exponent, &scratch, &sum);
        if (r == SEG_ENOMEM) {
            rc = seg__error(db, SEG_ENOMEM, "out of memory");
            break;
        }
        if (r == SEG_ENOTFOUND) {
            st.no_purchase++;
            continue;
        }
        if (r == SEG_ERANGE) {
            st.late++;
            continue;
        }
        seg__str id = seg__arena_str(&s->arena, c->id);
        memcpy(idbuf, id.p, id.n);
        idbuf[id.n] = '\0';
        sum.customer_id = idbuf;
        st.customers++;
        if (sum.frequency > 0)
            st.repeat_buyers++;
        if (cb(&sum, payload))
            break;
    }
    db->iterating = was;
    seg__free(a, scratch.buf);
    seg__free(a, order);
    if (rc == SEG_OK && stats_out)
        seg__struct_out(stats_out, stats_out->struct_size, &st, sizeof st, STATS_MIN_SIZE);
    return rc;
}

/* ------------------------------------------------------------ fitting */

int seg__clv_fit_impl(seg_clv_model *m, const seg_clv_columns *cols, const seg_clv_fit_options *o,
                      bool spend, seg_clv_fit_report *R);

#define COLS_MIN_SIZE sizeof(seg_clv_columns)
#define FITOPTS_MIN_SIZE sizeof(seg_clv_fit_options)
#define REPORT_MIN_SIZE sizeof(seg_clv_fit_report)
#define VALOPTS_MIN_SIZE sizeof(seg_clv_value_options)

static int read_columns(seg_clv_model *m, const seg_clv_columns *in, seg_clv_columns *c,
                        bool need_rt, bool need_monetary)
{
    if (!in)
        return seg__clv_error(m, SEG_EINVAL, "data: NULL");
    memset(c, 0, sizeof *c);
    if (seg__struct_in(c, sizeof *c, in, in->struct_size, COLS_MIN_SIZE) != SEG_OK)
        return seg__clv_error(m, SEG_EVERSION, "seg_clv_columns: unsupported struct_size %zu",
                              in->struct_size);
    if (c->n && !c->frequency)
        return seg__clv_error(m, SEG_EINVAL, "data: frequency is NULL");
    if (c->n && need_rt && (!c->recency || !c->age))
        return seg__clv_error(m, SEG_EINVAL, "data: %s is NULL", c->recency ? "age" : "recency");
    if (c->n && need_monetary && !c->monetary)
        return seg__clv_error(m, SEG_EINVAL, "data: monetary is NULL");
    return SEG_OK;
}

static int do_fit(seg_clv_model *m, const seg_clv_columns *data, const seg_clv_fit_options *opts,
                  seg_clv_fit_report *report, bool spend)
{
    if (!m)
        return SEG_EINVAL;
    clear_error(m);
    seg_clv_fit_report R;
    memset(&R, 0, sizeof R);
    R.struct_size = sizeof R;
    if (report) {
        if (report->struct_size < REPORT_MIN_SIZE)
            return seg__clv_error(m, SEG_EVERSION, "seg_clv_fit_report: unsupported struct_size %zu",
                                  report->struct_size);
        seg__struct_out(report, report->struct_size, &R, sizeof R, REPORT_MIN_SIZE);
    }
    seg_clv_fit_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    if (opts && seg__struct_in(&o, sizeof o, opts, opts->struct_size, FITOPTS_MIN_SIZE) != SEG_OK)
        return seg__clv_error(m, SEG_EVERSION, "seg_clv_fit_options: unsupported struct_size %zu",
                              opts->struct_size);
    seg_clv_columns c;
    int rc = read_columns(m, data, &c, !spend, spend);
    if (rc != SEG_OK)
        return rc;
    rc = seg__clv_fit_impl(m, &c, &o, spend, &R);
    if (report)
        seg__struct_out(report, report->struct_size, &R, sizeof R, REPORT_MIN_SIZE);
    return rc;
}

SEG_API int seg_clv_fit(seg_clv_model *m, const seg_clv_columns *data,
                        const seg_clv_fit_options *opts, seg_clv_fit_report *report)
{
    return do_fit(m, data, opts, report, false);
}

SEG_API int seg_clv_fit_spend(seg_clv_model *m, const seg_clv_columns *data,
                              const seg_clv_fit_options *opts, seg_clv_fit_report *report)
{
    return do_fit(m, data, opts, report, true);
}

static int need_params(seg_clv_model *m)
{
    if (!m->has_params)
        return seg__clv_error(m, SEG_ENOTFOUND, "the model has no parameters yet (fit or import)");
    return SEG_OK;
}

SEG_API int seg_clv_log_likelihood(double *out, seg_clv_model *m, const seg_clv_columns *data)
{
    if (!m)
        return SEG_EINVAL;
    clear_error(m);
    if (!out)
        return seg__clv_error(m, SEG_EINVAL, "out: NULL");
    *out = 0.0;
    int rc = need_params(m);
    if (rc != SEG_OK)
        return rc;
    seg_clv_columns c;
    rc = read_columns(m, data, &c, true, false);
    if (rc != SEG_OK)
        return rc;
    seg__clv_groups g;
    uint64_t excluded;
    rc = seg__clv_group(m, &c, false, &g, &excluded);
    if (rc != SEG_OK)
        return rc;
    *out = g.n ? seg__clv_ll_groups(m->kind, m->params, &g, NULL) : 0.0;
    seg__clv_groups_free(&m->alloc, &g);
    return SEG_OK;
}

/* ------------------------------------------------------------ scoring */

/* What every per-customer score checks first: the output, fitted
 * parameters and the summary (m is not NULL). */
static int score_begin(seg_clv_model *m, double *out, double frequency, double recency,
                       double age)
{
    clear_error(m);
    if (!out)
        return seg__clv_error(m, SEG_EINVAL, "out: NULL");
    *out = 0.0;
    int rc = need_params(m);
    return rc == SEG_OK ? seg__clv_check_summary(m, frequency, recency, age) : rc;
}

SEG_API int seg_clv_p_alive(double *out, seg_clv_model *m, double frequency, double recency,
                            double age)
{
    if (!m)
        return SEG_EINVAL;
    int rc = score_begin(m, out, frequency, recency, age);
    if (rc != SEG_OK)
        return rc;
    *out = exp(seg__clv_log_p_alive(m->kind, m->params, frequency, recency, age));
    return SEG_OK;
}

static int check_horizon(seg_clv_model *m, double t)
{
    if (!(isfinite(t) && t >= 0 && t <= 1e9))
        return seg__clv_error(m, SEG_EINVAL, "horizon %g is not a number of %ss in 0..1e9", t,
                              seg__clv_unit_name(m->unit));
    return SEG_OK;
}

SEG_API int seg_clv_expected_purchases(double *out, seg_clv_model *m, double frequency,
                                       double recency, double age, double t)
{
    if (!m)
        return SEG_EINVAL;
    int rc = score_begin(m, out, frequency, recency, age);
    if (rc == SEG_OK)
        rc = check_horizon(m, t);
    if (rc != SEG_OK)
        return rc;
    double la = seg__clv_log_p_alive(m->kind, m->params, frequency, recency, age);
    *out = exp(la) * seg__clv_expected_alive(m->kind, m->params, frequency, age, t);
    return SEG_OK;
}

SEG_API int seg_clv_purchase_probability(double *out, seg_clv_model *m, double frequency,
                                         double recency, double age, double t, uint32_t n)
{
    if (!m)
        return SEG_EINVAL;
    int rc = score_begin(m, out, frequency, recency, age);
    if (rc == SEG_OK)
        rc = check_horizon(m, t);
    if (rc != SEG_OK)
        return rc;
    *out = seg__clv_prob_n(m->kind, m->params, frequency, recency, age, t, n);
    return SEG_OK;
}

static int spend_of(seg_clv_model *m, double x, double mon, double *out)
{
    if (!m->has_spend)
        return seg__clv_error(m, SEG_ENOTFOUND,
                              "the model has no spend parameters yet (fit or import p, q, gamma)");
    double p = m->spend[0], q = m->spend[1], g = m->spend[2];
    if (x > 0 && !(isfinite(mon) && mon >= 0))
        return seg__clv_error(m, SEG_EINVAL, "monetary %g is not a finite number >= 0", mon);
    double den = p * x + q - 1.0;
    if (!(den > 0))
        return seg__clv_error(m, SEG_ERANGE,
                              "the expected spend is infinite: q = %g <= 1 and frequency %g", q, x);
    *out = p * (g + x * (x > 0 ? mon : 0.0)) / den;
    return SEG_OK;
}

SEG_API int seg_clv_expected_spend(double *out, seg_clv_model *m, double frequency, double monetary)
{
    if (!m)
        return SEG_EINVAL;
    clear_error(m);
    if (!out)
        return seg__clv_error(m, SEG_EINVAL, "out: NULL");
    *out = 0.0;
    if (!(isfinite(frequency) && frequency >= 0 && frequency == floor(frequency)))
        return seg__clv_error(m, SEG_EINVAL, "frequency %g is not a whole number >= 0", frequency);
    return spend_of(m, frequency, monetary, out);
}

static int read_value_options(seg_clv_model *m, const seg_clv_value_options *opts,
                              seg_clv_value_options *o, double *delta)
{
    if (!opts)
        return seg__clv_error(m, SEG_EINVAL, "opts: NULL (the horizon is required)");
    seg_clv_value_options d = SEG_CLV_VALUE_OPTIONS_INIT;
    *o = d;
    if (seg__struct_in(o, sizeof *o, opts, opts->struct_size, VALOPTS_MIN_SIZE) != SEG_OK)
        return seg__clv_error(m, SEG_EVERSION, "seg_clv_value_options: unsupported struct_size %zu",
                              opts->struct_size);
    if (!(isfinite(o->horizon) && o->horizon > 0 && o->horizon <= 1e9))
        return seg__clv_error(m, SEG_EINVAL, "horizon %g is not a number of %ss in (0, 1e9]",
                              o->horizon, seg__clv_unit_name(m->unit));
    if (!(isfinite(o->discount_rate) && o->discount_rate >= 0))
        return seg__clv_error(m, SEG_EINVAL, "discount_rate %g is not a finite number >= 0",
                              o->discount_rate);
    if (!(isfinite(o->discount_period) && o->discount_period > 0))
        return seg__clv_error(m, SEG_EINVAL, "discount_period %g is not a finite number > 0",
                              o->discount_period);
    if (!(isfinite(o->margin) && o->margin >= 0))
        return seg__clv_error(m, SEG_EINVAL, "margin %g is not a finite number >= 0", o->margin);
    *delta = log1p(o->discount_rate) / o->discount_period;
    return SEG_OK;
}

SEG_API int seg_clv_value(double *out, seg_clv_model *m, double frequency, double recency,
                          double age, double monetary, const seg_clv_value_options *opts)
{
    if (!m)
        return SEG_EINVAL;
    clear_error(m);
    if (!out)
        return seg__clv_error(m, SEG_EINVAL, "out: NULL");
    *out = 0.0;
    seg_clv_value_options o;
    double delta, spend;
    int rc = need_params(m);
    if (rc == SEG_OK)
        rc = read_value_options(m, opts, &o, &delta);
    if (rc == SEG_OK)
        rc = seg__clv_check_summary(m, frequency, recency, age);
    if (rc == SEG_OK)
        rc = spend_of(m, frequency, monetary, &spend);
    if (rc != SEG_OK)
        return rc;
    double pa = exp(seg__clv_log_p_alive(m->kind, m->params, frequency, recency, age));
    double dis = seg__clv_discounted_alive(m->kind, m->params, frequency, age, o.horizon, delta);
    *out = o.margin * spend * pa * dis;
    return SEG_OK;
}

/* A cache of per-key values for seg_clv_predict(): open addressing on
 * (a, b, c) with linear probing, grown at half load. */
typedef struct cache {
    uint32_t *slots;
    size_t cap, n, vcap;
    double *key;  /* 3 per entry */
    double *val;  /* 2 per entry */
} cache;

/* murmur3's finalizer: every input bit reaches the low bits (the index) */
static uint64_t fmix(uint64_t z)
{
    z ^= z >> 33;
    z *= UINT64_C(0xff51afd7ed558ccd);
    z ^= z >> 33;
    z *= UINT64_C(0xc4ceb9fe1a85ec53);
    return z ^ (z >> 33);
}

static uint64_t mix3(double a, double b, double c)
{
    uint64_t x, y, z;
    a += 0.0; /* -0.0 == 0.0: one key */
    b += 0.0;
    c += 0.0;
    memcpy(&x, &a, 8);
    memcpy(&y, &b, 8);
    memcpy(&z, &c, 8);
    return fmix(fmix(fmix(x) ^ y) ^ z);
}

static void cache_free(const seg__alloc *a, cache *c)
{
    seg__free(a, c->slots);
    seg__free(a, c->key);
    seg__free(a, c->val);
    memset(c, 0, sizeof *c);
}

/* index of the entry, *fresh when just added; SIZE_MAX on ENOMEM */
static size_t cache_get(const seg__alloc *al, cache *c, double a, double b, double d, bool *fresh)
{
    *fresh = false;
    if (2 * (c->n + 1) > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        uint32_t *s = seg__calloc(al, cap, sizeof *s);
        if (!s)
            return SIZE_MAX;
        for (size_t i = 0; i < c->n; i++) {
            size_t h = (size_t)mix3(c->key[3 * i], c->key[3 * i + 1], c->key[3 * i + 2]) & (cap - 1);
            while (s[h])
                h = (h + 1) & (cap - 1);
            s[h] = (uint32_t)(i + 1);
        }
        seg__free(al, c->slots);
        c->slots = s;
        c->cap = cap;
    }
    size_t h = (size_t)mix3(a, b, d) & (c->cap - 1);
    for (;;) {
        uint32_t s = c->slots[h];
        if (!s)
            break;
        const double *k = c->key + 3 * (s - 1);
        if (k[0] == a && k[1] == b && k[2] == d)
            return s - 1;
        h = (h + 1) & (c->cap - 1);
    }
    if (c->n == c->vcap) {
        size_t vc = c->vcap ? c->vcap * 2 : 512;
        double *k = seg__realloc_array(al, c->key, vc, 3 * sizeof *k);
        if (!k)
            return SIZE_MAX;
        c->key = k;
        double *v = seg__realloc_array(al, c->val, vc, 2 * sizeof *v);
        if (!v)
            return SIZE_MAX;
        c->val = v;
        c->vcap = vc;
    }
    size_t i = c->n++;
    c->key[3 * i] = a;
    c->key[3 * i + 1] = b;
    c->key[3 * i + 2] = d;
    c->slots[h] = (uint32_t)(i + 1);
    *fresh = true;
    return i;
}

SEG_API int seg_clv_predict(double *p_alive, double *expected_purchases, double *expected_spend,
                            double *clv, seg_clv_model *m, const seg_clv_columns *in,
                            const seg_clv_value_options *opts)
{
    if (!m)
        return SEG_EINVAL;
    clear_error(m);
    seg_clv_value_options o;
    seg_clv_columns c;
    double delta;
    bool want_spend = expected_spend || clv;
    int rc = need_params(m);
    if (rc == SEG_OK)
        rc = read_value_options(m, opts, &o, &delta);
    if (rc == SEG_OK)
        rc = read_columns(m, in, &c, true, want_spend);
    if (rc == SEG_OK && want_spend && !m->has_spend)
        rc = seg__clv_error(m, SEG_ENOTFOUND,
                            "the model has no spend parameters yet (fit or import p, q, gamma)");
    if (rc != SEG_OK)
        return rc;
    for (size_t i = 0; i < c.n; i++)
        if ((rc = seg__clv_check_summary(m, c.frequency[i], c.recency[i], c.age[i])) != SEG_OK) {
            char msg[sizeof m->errmsg];
            memcpy(msg, m->errmsg, sizeof msg);
            return seg__clv_error(m, rc, "row %zu: %s", i, msg);
        }
    const seg__alloc *al = &m->alloc;
    cache xt, full;
    memset(&xt, 0, sizeof xt);
    memset(&full, 0, sizeof full);
    bool pareto = m->kind == SEG_CLV_PARETO;
    for (size_t i = 0; i < c.n; i++) {
        double x = c.frequency[i], tx = c.recency[i], T = c.age[i], pa;
        bool fresh;
        if (pareto) { /* P(alive) needs a quadrature or series: once per summary */
            size_t k = cache_get(al, &full, x, tx, T, &fresh);
            if (k == SIZE_MAX)
                goto nomem;
            if (fresh)
                full.val[2 * k] = exp(seg__clv_log_p_alive(m->kind, m->params, x, tx, T));
            pa = full.val[2 * k];
        } else {
            pa = exp(seg__clv_log_p_alive(m->kind, m->params, x, tx, T));
        }
        /* E[Y | alive] and the discounted version depend on (x, T) only */
        size_t k = cache_get(al, &xt, x, T, 0.0, &fresh);
        if (k == SIZE_MAX)
            goto nomem;
        if (fresh) {
            xt.val[2 * k] = expected_purchases
                                ? seg__clv_expected_alive(m->kind, m->params, x, T, o.horizon)
                                : 0.0;
            xt.val[2 * k + 1] = clv ? seg__clv_discounted_alive(m->kind, m->params, x, T,
                                                                o.horizon, delta)
                                    : 0.0;
        }
        if (p_alive)
            p_alive[i] = pa;
        if (expected_purchases)
            expected_purchases[i] = pa * xt.val[2 * k];
        if (want_spend) {
            double sp;
            if ((rc = spend_of(m, x, c.monetary[i], &sp)) != SEG_OK) {
                char msg[sizeof m->errmsg];
                memcpy(msg, m->errmsg, sizeof msg);
                seg__clv_error(m, rc, "row %zu: %s", i, msg);
                goto out;
            }
            if (expected_spend)
                expected_spend[i] = sp;
            if (clv)
                clv[i] = o.margin * sp * pa * xt.val[2 * k + 1];
        }
    }
    rc = SEG_OK;
    goto out;
nomem:
    rc = seg__clv_error(m, SEG_ENOMEM, "out of memory");
out:
    cache_free(al, &xt);
    cache_free(al, &full);
    return rc;
}
