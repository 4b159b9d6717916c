/*
 * RFM thresholds: scoring, reading the bounds, and the text format
 * (doc/rfm.md):
 *
 *   # comments and blank lines anywhere
 *   libsegment-rfm-thresholds 1
 *   bins 5
 *   monetary total            (or aov)
 *   window 0                  (seconds; 0 = none)
 *   exponent 2
 *   r 400 200 90 30           (largest recency_days of scores 2..bins)
 *   f 2 3 4 6                 (least frequency of scores 2..bins)
 *   m 25.00 60.00 120.00 300.00   (least monetary of scores 2..bins)
 *
 * The first line that is not a comment is the version line; every other key
 * appears exactly once, in any order.
 */
#include "core/core-private.h"
#include "rfm-private.h"

#include <stdio.h>

seg_rfm_thresholds *seg__rfm_thresholds_new(const seg__alloc *a)
{
    seg_rfm_thresholds *t = seg__calloc(a, 1, sizeof *t);
    if (t) {
        t->alloc = *a;
        t->as_of = SEG_RFM_AS_OF_AUTO;
    }
    return t;
}

SEG_API void seg_rfm_thresholds_free(seg_rfm_thresholds *t)
{
    if (!t)
        return;
    seg__alloc a = t->alloc;
    seg__free(&a, t);
}

SEG_API uint32_t seg_rfm_score(const seg_rfm_thresholds *t, uint32_t dim, int64_t value)
{
    if (!t || dim >= SEG__RFM_DIMS)
        return 0;
    return seg__rfm_score_lo(t->lo[dim], t->bins - 1, seg__rfm_good(dim, value));
}

SEG_API uint32_t seg_rfm_thresholds_bins(const seg_rfm_thresholds *t)
{
    return t ? t->bins : 0;
}

SEG_API int seg_rfm_thresholds_get(int64_t *bounds_out, size_t n, const seg_rfm_thresholds *t,
                                   uint32_t dim)
{
    if (!bounds_out || !t || dim >= SEG__RFM_DIMS || n < t->bins - 1)
        return SEG_EINVAL;
    for (uint32_t k = 0; k + 1 < t->bins; k++)
        bounds_out[k] = seg__rfm_good(dim, t->lo[dim][k]);
    return SEG_OK;
}

/* ---- export ---- */

typedef struct outbuf {
    char *p;
    size_t size, len; /* len: the whole text so far, even past size */
} outbuf;

static void out_add(outbuf *o, const char *s, size_t n)
{
    if (o->len < o->size) {
        size_t room = o->size - 1 - o->len; /* keep one byte for the NUL */
        memcpy(o->p + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void out_fmt(outbuf *o, const char *fmt, ...) SEG_PRINTF(2, 3);
static void out_fmt(outbuf *o, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        out_add(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static const char *const dim_key[SEG__RFM_DIMS] = { "r", "f", "m" };

SEG_API size_t seg_rfm_thresholds_export(char *buf, size_t size, const seg_rfm_thresholds *t)
{
    if (!t)
        return 0;
    outbuf o = { buf, buf ? size : 0, 0 };
    out_fmt(&o, "# libsegment RFM thresholds.  A value gets the highest score whose bound it\n"
                "# meets, and 1 when it meets none: recency_days at most the r bound,\n"
                "# frequency at least the f bound, monetary at least the m bound.\n");
    if (t->as_of != SEG_RFM_AS_OF_AUTO) {
        char when[32];
        if (seg_time_format(when, sizeof when, t->as_of) == 0)
            snprintf(when, sizeof when, "%lld", (long long)t->as_of);
        out_fmt(&o, "# Calibrated as of %s on %llu active customers", when,
                (unsigned long long)t->active);
        const char *sep = "; fixed by the caller:";
        for (int d = 0; d < SEG__RFM_DIMS; d++)
            if (t->fixed_mask & (1u << d)) {
                out_fmt(&o, "%s %s", sep, dim_key[d]);
                sep = ",";
            }
        out_fmt(&o, ".\n");
    }
    out_fmt(&o, "libsegment-rfm-thresholds 1\n");
    out_fmt(&o, "bins %u\n", (unsigned)t->bins);
    out_fmt(&o, "monetary %s\n", t->monetary == SEG_RFM_MONETARY_AOV ? "aov" : "total");
    out_fmt(&o, "window %lld\n", (long long)t->window);
    out_fmt(&o, "exponent %d\n", t->exponent);
    out_fmt(&o, "# bounds of the scores");
    for (uint32_t s = 2; s <= t->bins; s++)
        out_fmt(&o, " %u", (unsigned)s);
    out_fmt(&o, "\n");
    for (int d = 0; d < SEG__RFM_DIMS; d++) {
        out_fmt(&o, "%s", dim_key[d]);
        for (uint32_t k = 0; k + 1 < t->bins; k++) {
            int64_t v = seg__rfm_good((uint32_t)d, t->lo[d][k]);
            if (d == SEG_RFM_M) {
                char m[SEG_MONEY_BUFSIZE];
                seg_money_format(m, sizeof m, v, t->exponent);
                out_fmt(&o, " %s", m);
            } else {
                out_fmt(&o, " %lld", (long long)v);
            }
        }
        out_fmt(&o, "\n");
    }
    if (o.size)
        o.p[o.len < o.size ? o.len : o.size - 1] = '\0';
    return o.len;
}

/* ---- import ---- */

typedef struct tok {
    const char *p;
    size_t n;
} tok;

/* Next whitespace-separated token of [*p, end); n == 0 at the end. */
static tok next_tok(const char **p, const char *end)
{
    const char *s = *p;
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    const char *e = s;
    while (e < end && *e != ' ' && *e != '\t')
        e++;
    *p = e;
    tok t = { s, (size_t)(e - s) };
    return t;
}

static bool tok_is(tok t, const char *s)
{
    size_t n = strlen(s);
    return t.n == n && memcmp(t.p, s, n) == 0;
}

/* A decimal amount with at most `exponent` decimals, into minor units (the
 * whole int64 range, unlike seg_money_parse, since bounds are sums). */
static int parse_money(const char *p, size_t n, int exponent, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (p[i] == '-' || p[i] == '+'))
        neg = p[i++] == '-';
    uint64_t mag = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    size_t digits = 0;
    int decimals = -1;
    for (; i < n; i++) {
        if (p[i] == '.' && decimals < 0) {
            decimals = 0;
            continue;
        }
        if (p[i] < '0' || p[i] > '9')
            return SEG_EINVAL;
        if (decimals >= 0 && ++decimals > exponent)
            return SEG_EINVAL;
        unsigned dgt = (unsigned)(p[i] - '0');
        if (mag > (lim - dgt) / 10)
            return SEG_ERANGE;
        mag = mag * 10 + dgt;
        digits++;
    }
    if (!digits)
        return SEG_EINVAL;
    for (int k = decimals < 0 ? 0 : decimals; k < exponent; k++) {
        if (mag > lim / 10)
            return SEG_ERANGE;
        mag *= 10;
    }
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return SEG_OK;
}

typedef struct dimline {
    const char *p, *end; /* the values */
    unsigned line;       /* 0: absent */
} dimline;

SEG_API int seg_rfm_thresholds_import(seg_rfm_thresholds **out, seg_db *db, const char *text,
                                      size_t len)
{
    if (out)
        *out = NULL;
    if (!db)
        return SEG_EINVAL;
    seg__error_clear(db);
    if (!out)
        return seg__error(db, SEG_EINVAL, "out: NULL");
    if (!text && len)
        return seg__error(db, SEG_EINVAL, "text: NULL");
    seg_rfm_thresholds tmp;
    memset(&tmp, 0, sizeof tmp);
    bool have_version = false;
    unsigned seen_bins = 0, seen_monetary = 0, seen_window = 0, seen_exponent = 0;
    dimline dims[SEG__RFM_DIMS];
    memset(dims, 0, sizeof dims);
    const char *p = text, *end = text + len;
    unsigned line = 0;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        const char *next = eol ? eol + 1 : end;
        line++;
        if (le > p && le[-1] == '\r')
            le--;
        const char *q = p;
        tok key = next_tok(&q, le);
        p = next;
        if (key.n == 0 || key.p[0] == '#')
            continue;
        if (!have_version) {
            tok v = next_tok(&q, le);
            if (!tok_is(key, "libsegment-rfm-thresholds"))
                return seg__error(db, SEG_EPARSE,
                                  "line %u: expected 'libsegment-rfm-thresholds 1' first", line);
            if (!tok_is(v, "1") || next_tok(&q, le).n)
                return seg__error(db, SEG_EPARSE,
                                  "line %u: unsupported thresholds version '%.*s' (this library reads 1)",
                                  line, (int)(v.n > 20 ? 20 : v.n), v.p);
            have_version = true;
            continue;
        }
        int d = tok_is(key, "r") ? 0 : tok_is(key, "f") ? 1 : tok_is(key, "m") ? 2 : -1;
        if (d >= 0) {
            if (dims[d].line)
                return seg__error(db, SEG_EPARSE, "line %u: '%s' given twice (first on line %u)",
                                  line, dim_key[d], dims[d].line);
            dims[d].p = q;
            dims[d].end = le;
            dims[d].line = line;
            continue;
        }
        tok v = next_tok(&q, le);
        if (next_tok(&q, le).n)
            return seg__error(db, SEG_EPARSE, "line %u: '%.*s' takes one value", line,
                              (int)(key.n > 40 ? 40 : key.n), key.p);
        int64_t x = 0;
        unsigned *seen;
        if (tok_is(key, "bins")) {
            seen = &seen_bins;
            if (seg__parse_int64(v.p, v.n, &x) != SEG_OK || x < 2 || x > SEG_RFM_BINS_MAX)
                return seg__error(db, SEG_EPARSE, "line %u: bins must be 2..%d", line,
                                  SEG_RFM_BINS_MAX);
            tmp.bins = (uint32_t)x;
        } else if (tok_is(key, "monetary")) {
            seen = &seen_monetary;
            if (tok_is(v, "total"))
                tmp.monetary = SEG_RFM_MONETARY_TOTAL;
            else if (tok_is(v, "aov"))
                tmp.monetary = SEG_RFM_MONETARY_AOV;
            else
                return seg__error(db, SEG_EPARSE, "line %u: monetary must be 'total' or 'aov'",
                                  line);
        } else if (tok_is(key, "window")) {
            seen = &seen_window;
            if (seg__parse_int64(v.p, v.n, &x) != SEG_OK || x < 0 ||
                x > SEG_TIME_MAX - SEG_TIME_MIN)
                return seg__error(db, SEG_EPARSE,
                                  "line %u: window must be a number of seconds, 0 for none",
                                  line);
            tmp.window = x;
        } else if (tok_is(key, "exponent")) {
            seen = &seen_exponent;
            if (seg__parse_int64(v.p, v.n, &x) != SEG_OK || x < 0 || x > 6)
                return seg__error(db, SEG_EPARSE, "line %u: exponent must be 0..6", line);
            tmp.exponent = (int)x;
        } else {
            return seg__error(db, SEG_EPARSE, "line %u: unknown key '%.*s'", line,
                              (int)(key.n > 40 ? 40 : key.n), key.p);
        }
        if (*seen)
            return seg__error(db, SEG_EPARSE, "line %u: '%.*s' given twice (first on line %u)",
                              line, (int)key.n, key.p, *seen);
        *seen = line;
    }
    if (!have_version)
        return seg__error(db, SEG_EPARSE, "no 'libsegment-rfm-thresholds 1' line: not RFM thresholds");
    static const char *const need[] = { "bins", "monetary", "window", "exponent" };
    const unsigned *seen_all[] = { &seen_bins, &seen_monetary, &seen_window, &seen_exponent };
    for (int k = 0; k < 4; k++)
        if (!*seen_all[k])
            return seg__error(db, SEG_EPARSE, "missing '%s' line", need[k]);
    for (int d = 0; d < SEG__RFM_DIMS; d++)
        if (!dims[d].line)
            return seg__error(db, SEG_EPARSE, "missing '%s' line", dim_key[d]);
    if (tmp.exponent != db->exponent)
        return seg__error(db, SEG_EINVAL,
                          "line %u: the thresholds' money has %d decimals, the database's %d",
                          seen_exponent, tmp.exponent, db->exponent);
    for (int d = 0; d < SEG__RFM_DIMS; d++) {
        const char *q = dims[d].p;
        uint32_t k = 0;
        for (;;) {
            tok v = next_tok(&q, dims[d].end);
            if (!v.n)
                break;
            if (k + 1 >= tmp.bins)
                return seg__error(db, SEG_EPARSE, "line %u: %s: more than bins - 1 = %u bounds",
                                  dims[d].line, dim_key[d], (unsigned)(tmp.bins - 1));
            int64_t x;
            int rc = d == SEG_RFM_M ? parse_money(v.p, v.n, tmp.exponent, &x)
                                    : seg__parse_int64(v.p, v.n, &x);
            if (rc != SEG_OK)
                return seg__error(db, SEG_EPARSE, "line %u: %s: bound %u: not %s: '%.*s'",
                                  dims[d].line, dim_key[d], (unsigned)k + 2,
                                  d == SEG_RFM_M ? "an amount" : "an integer",
                                  (int)(v.n > 40 ? 40 : v.n), v.p);
            int64_t g = seg__rfm_good((uint32_t)d, x);
            if (k > 0 && g < tmp.lo[d][k - 1])
                return seg__error(db, SEG_EPARSE, "line %u: %s: bound %u: must be %s the one before",
                                  dims[d].line, dim_key[d], (unsigned)k + 2,
                                  d == SEG_RFM_R ? "at most" : "at least");
            tmp.lo[d][k++] = g;
        }
        if (k + 1 != tmp.bins)
            return seg__error(db, SEG_EPARSE, "line %u: %s: %u bounds, expected bins - 1 = %u",
                              dims[d].line, dim_key[d], (unsigned)k, (unsigned)(tmp.bins - 1));
    }
    seg_rfm_thresholds *t = seg__rfm_thresholds_new(&db->alloc);
    if (!t)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    tmp.alloc = t->alloc;
    tmp.as_of = SEG_RFM_AS_OF_AUTO;
    tmp.fixed_mask = 0;
    tmp.active = 0;
    *t = tmp;
    *out = t;
    return SEG_OK;
}
