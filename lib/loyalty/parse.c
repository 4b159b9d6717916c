/*
 * The `program` item of the definition language, and its checks.
 *
 *   program  := 'program' NAME '{' stmt* '}'
 *   stmt     := 'earn' NUMBER ('point' | 'points') 'per' NUMBER ';'
 *             | 'rounding' ('down' | 'nearest' | 'up') ';'
 *             | 'minimum_spend' NUMBER ';'
 *             | 'expire' ('after' DURATION | 'end' 'of' PERIOD ['+' INTEGER] | 'never') ';'
 *             | 'qualify' ('spend' | 'points' | 'orders') 'over' DURATION ';'
 *             | 'grace' DURATION ';'
 *             | 'negative_balance' ('allowed' | 'forbidden') ';'
 *             | 'bonus' ['category' STRING (',' STRING)*] ['channel' STRING (',' STRING)*]
 *                       ['multiplier' NUMBER] ['points' INTEGER] ';'
 *             | 'tier' NAME ['from' NUMBER] ['multiplier' NUMBER] ';'
 *   PERIOD   := 'month' | 'quarter' | 'year'
 *
 * The segdef parser calls seg__loyalty_parse when an item starts with the
 * word `program`; the tokens are the language's (lib/segdef/lexer.c).
 * Numbers keep their literal form until seg__loyalty_build knows the
 * currency exponent.
 */
#include "loyalty/loyalty-private.h"

#include <stdio.h>

typedef struct lp {
    seg__lexer *lx;
    seg__tok *cur;
    seg__ast *ast;
    seg__sderr *err;
} lp;

static int lerr(seg__sderr *err, uint32_t line, uint32_t col, int code, const char *fmt, ...)
    SEG_PRINTF(5, 6);
static int lerr(seg__sderr *err, uint32_t line, uint32_t col, int code, const char *fmt, ...)
{
    if (err->code != SEG_OK)
        return err->code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
    err->line = line;
    err->col = col;
    return code;
}

static int next(lp *p)
{
    if (seg__lex_next(p->lx, p->cur) != SEG_OK)
        return lerr(p->err, p->lx->err_line, p->lx->err_col, p->lx->err, "%s", p->lx->msg);
    return SEG_OK;
}

static bool is_word(const lp *p, const char *w)
{
    return p->cur->kind == SEG__TK_IDENT && seg__str_eq((seg__str){ p->cur->p, p->cur->n }, w,
                                                        strlen(w));
}

static int expected(lp *p, const char *what)
{
    const seg__tok *t = p->cur;
    if (t->kind == SEG__TK_EOF)
        return lerr(p->err, t->line, t->col, SEG_EPARSE, "expected %s, found the end of the text",
                    what);
    if (t->kind == SEG__TK_STR)
        return lerr(p->err, t->line, t->col, SEG_EPARSE, "expected %s, found a string", what);
    return lerr(p->err, t->line, t->col, SEG_EPARSE, "expected %s, found '%.*s'", what,
                (int)(t->n > 40 ? 40 : t->n), t->p);
}

static int want_word(lp *p, const char *w, const char *what)
{
    if (!is_word(p, w))
        return expected(p, what);
    return next(p);
}

static int semi(lp *p, const char *stmt)
{
    if (p->cur->kind != SEG__TK_SEMI) {
        char what[80];
        snprintf(what, sizeof what, "';' after the '%s' rule", stmt);
        return expected(p, what);
    }
    return next(p);
}

static seg__str dup(lp *p, const char *s, size_t n)
{
    char *d = seg__pool_alloc(&p->ast->pool, n + 1);
    if (!d) {
        lerr(p->err, p->cur->line, p->cur->col, SEG_ENOMEM, "out of memory");
        return SEG__STR_NULL;
    }
    memcpy(d, s, n);
    d[n] = '\0';
    return (seg__str){ d, n };
}

/* ['-'] INTEGER | DECIMAL, kept as written */
static int number(lp *p, seg__lnum *out, const char *what)
{
    memset(out, 0, sizeof *out);
    out->line = p->cur->line;
    out->col = p->cur->col;
    if (p->cur->kind == SEG__TK_MINUS) {
        out->neg = true;
        int rc = next(p);
        if (rc != SEG_OK)
            return rc;
    }
    if (p->cur->kind != SEG__TK_INT && p->cur->kind != SEG__TK_DEC)
        return expected(p, what);
    out->set = true;
    out->kind = p->cur->kind;
    out->i = p->cur->i;
    out->scale = p->cur->kind == SEG__TK_DEC ? p->cur->scale : 0;
    return next(p);
}

/* a positive duration no longer than SEG__L_DUR_MAX */
static int duration(lp *p, int64_t *out, const char *what)
{
    uint32_t line = p->cur->line, col = p->cur->col;
    if (p->cur->kind == SEG__TK_MINUS)
        return lerr(p->err, line, col, SEG_EINVAL, "%s: a duration cannot be negative", what);
    if (p->cur->kind != SEG__TK_DUR) {
        char w[120];
        snprintf(w, sizeof w, "a duration for %s (30d, 12w, 24h)", what);
        return expected(p, w);
    }
    int64_t unit = seg__du_seconds[p->cur->unit], k = p->cur->i;
    if (k == 0)
        return lerr(p->err, line, col, SEG_EINVAL, "%s: the duration must be longer than 0",
                    what);
    if (k > SEG__L_DUR_MAX / unit)
        return lerr(p->err, line, col, SEG_ERANGE,
                    "%s: duration %.*s is too long (at most %lld days)", what,
                    (int)p->cur->n, p->cur->p, (long long)(SEG__L_DUR_MAX / 86400));
    *out = k * unit;
    return next(p);
}

static int once(lp *p, bool *seen, const char *stmt)
{
    if (*seen)
        return lerr(p->err, p->cur->line, p->cur->col, SEG_EINVAL,
                    "the '%s' rule is given twice in this program", stmt);
    *seen = true;
    return next(p);
}

/* STRING (',' STRING)* */
static int strings(lp *p, seg__str **out, uint32_t *n_out, const char *what)
{
    seg__str *v = NULL;
    uint32_t n = 0, cap = 0;
    for (;;) {
        if (p->cur->kind != SEG__TK_STR)
            return expected(p, what);
        if (p->cur->sn == 0)
            return lerr(p->err, p->cur->line, p->cur->col, SEG_EINVAL, "%s: empty name", what);
        if (n == SEG__L_BONUS_MAX * 64)
            return lerr(p->err, p->cur->line, p->cur->col, SEG_ELIMIT, "%s: too many names", what);
        if (n == cap) {
            uint32_t c2 = cap ? cap * 2 : 4;
            seg__str *v2 = seg__pool_alloc(&p->ast->pool, c2 * sizeof *v2);
            if (!v2)
                return lerr(p->err, p->cur->line, p->cur->col, SEG_ENOMEM, "out of memory");
            if (n)
                memcpy(v2, v, n * sizeof *v);
            v = v2;
            cap = c2;
        }
        v[n] = dup(p, p->cur->s, p->cur->sn);
        if (!v[n].p)
            return p->err->code;
        n++;
        int rc = next(p);
        if (rc != SEG_OK)
            return rc;
        if (p->cur->kind != SEG__TK_COMMA)
            break;
        if ((rc = next(p)) != SEG_OK)
            return rc;
    }
    *out = v;
    *n_out = n;
    return SEG_OK;
}

static int stmt_bonus(lp *p, seg__lprog_ast *g)
{
    seg__lbonus_ast *b = seg__pool_alloc(&p->ast->pool, sizeof *b);
    if (!b)
        return lerr(p->err, p->cur->line, p->cur->col, SEG_ENOMEM, "out of memory");
    b->line = p->cur->line;
    b->col = p->cur->col;
    int rc = next(p);
    if (rc == SEG_OK && is_word(p, "category") && (rc = next(p)) == SEG_OK)
        rc = strings(p, &b->cats, &b->ncats, "a category name (a string) after 'category'");
    if (rc == SEG_OK && is_word(p, "channel") && (rc = next(p)) == SEG_OK)
        rc = strings(p, &b->chans, &b->nchans, "a channel name (a string) after 'channel'");
    if (rc != SEG_OK)
        return rc;
    if (!b->cats && !b->chans)
        return expected(p, "'category' or 'channel' after 'bonus'");
    if (is_word(p, "multiplier") && (rc = next(p)) == SEG_OK)
        rc = number(p, &b->mult, "a number after 'multiplier'");
    if (rc == SEG_OK && is_word(p, "points") && (rc = next(p)) == SEG_OK)
        rc = number(p, &b->flat, "a number of points after 'points'");
    if (rc != SEG_OK)
        return rc;
    if (!b->mult.set && !b->flat.set)
        return expected(p, "'multiplier NUMBER' or 'points NUMBER' in the bonus rule");
    if ((rc = semi(p, "bonus")) != SEG_OK)
        return rc;
    if (g->nbonus == SEG__L_BONUS_MAX)
        return lerr(p->err, b->line, b->col, SEG_ELIMIT, "more than %d bonus rules",
                    SEG__L_BONUS_MAX);
    *g->bonus_tail = b;
    g->bonus_tail = &b->next;
    g->nbonus++;
    return SEG_OK;
}

static int stmt_tier(lp *p, seg__lprog_ast *g)
{
    seg__ltier_ast *t = seg__pool_alloc(&p->ast->pool, sizeof *t);
    if (!t)
        return lerr(p->err, p->cur->line, p->cur->col, SEG_ENOMEM, "out of memory");
    int rc = next(p);
    if (rc != SEG_OK)
        return rc;
    if (p->cur->kind != SEG__TK_IDENT || p->cur->n > SEG_ID_MAX)
        return expected(p, "the tier's name after 'tier'");
    t->line = p->cur->line;
    t->col = p->cur->col;
    for (seg__ltier_ast *o = g->tiers; o; o = o->next)
        if (seg__str_eq(o->name, p->cur->p, p->cur->n))
            return lerr(p->err, t->line, t->col, SEG_EINVAL,
                        "tier '%.*s' is already defined at %u:%u", (int)p->cur->n, p->cur->p,
                        (unsigned)o->line, (unsigned)o->col);
    t->name = dup(p, p->cur->p, p->cur->n);
    if (!t->name.p || (rc = next(p)) != SEG_OK)
        return p->err->code;
    if (is_word(p, "from") && (rc = next(p)) == SEG_OK)
        rc = number(p, &t->from, "the qualifying amount after 'from'");
    if (rc == SEG_OK && is_word(p, "multiplier") && (rc = next(p)) == SEG_OK)
        rc = number(p, &t->mult, "a number after 'multiplier'");
    if (rc == SEG_OK)
        rc = semi(p, "tier");
    if (rc != SEG_OK)
        return rc;
    if (g->ntiers == SEG__L_TIER_MAX)
        return lerr(p->err, t->line, t->col, SEG_ELIMIT, "more than %d tiers", SEG__L_TIER_MAX);
    *g->tier_tail = t;
    g->tier_tail = &t->next;
    g->ntiers++;
    return SEG_OK;
}

static int statement(lp *p, seg__lprog_ast *g, bool seen[8])
{
    int rc;
    if (is_word(p, "earn")) {
        g->earn_line = p->cur->line;
        g->earn_col = p->cur->col;
        if ((rc = once(p, &seen[0], "earn")) != SEG_OK ||
            (rc = number(p, &g->earn_points, "the points earned after 'earn' (earn 1 point "
                                             "per 1.00)")) != SEG_OK)
            return rc;
        if (!is_word(p, "point") && !is_word(p, "points"))
            return expected(p, "'points' (earn 1 point per 1.00)");
        if ((rc = next(p)) != SEG_OK || (rc = want_word(p, "per", "'per'")) != SEG_OK ||
            (rc = number(p, &g->earn_per, "an amount of money after 'per'")) != SEG_OK)
            return rc;
        return semi(p, "earn");
    }
    if (is_word(p, "rounding")) {
        if ((rc = once(p, &seen[1], "rounding")) != SEG_OK)
            return rc;
        if (is_word(p, "down"))
            g->rounding = SEG__LR_DOWN;
        else if (is_word(p, "nearest"))
            g->rounding = SEG__LR_NEAREST;
        else if (is_word(p, "up"))
            g->rounding = SEG__LR_UP;
        else
            return expected(p, "'down', 'nearest' or 'up' after 'rounding'");
        if ((rc = next(p)) != SEG_OK)
            return rc;
        return semi(p, "rounding");
    }
    if (is_word(p, "minimum_spend")) {
        if ((rc = once(p, &seen[2], "minimum_spend")) != SEG_OK ||
            (rc = number(p, &g->min_spend, "an amount of money after 'minimum_spend'")) != SEG_OK)
            return rc;
        return semi(p, "minimum_spend");
    }
    if (is_word(p, "expire")) {
        if ((rc = once(p, &seen[3], "expire")) != SEG_OK)
            return rc;
        if (is_word(p, "never")) {
            g->expire = SEG__LX_NEVER;
            rc = next(p);
        } else if (is_word(p, "after")) {
            g->expire = SEG__LX_AFTER;
            if ((rc = next(p)) == SEG_OK)
                rc = duration(p, &g->expire_after, "expire after");
        } else if (is_word(p, "end")) {
            if ((rc = next(p)) != SEG_OK || (rc = want_word(p, "of", "'of' after 'end'")) != SEG_OK)
                return rc;
            if (is_word(p, "month"))
                g->expire = SEG__LX_MONTH;
            else if (is_word(p, "quarter"))
                g->expire = SEG__LX_QUARTER;
            else if (is_word(p, "year"))
                g->expire = SEG__LX_YEAR;
            else
                return expected(p, "'month', 'quarter' or 'year' after 'end of'");
            if ((rc = next(p)) == SEG_OK && p->cur->kind == SEG__TK_PLUS &&
                (rc = next(p)) == SEG_OK) {
                if (p->cur->kind != SEG__TK_INT)
                    return expected(p, "a whole number of periods after '+'");
                if (p->cur->i > 1000)
                    return lerr(p->err, p->cur->line, p->cur->col, SEG_ERANGE,
                                "expire: at most 1000 more periods");
                g->expire_plus = p->cur->i;
                rc = next(p);
            }
        } else {
            return expected(p, "'after DURATION', 'end of month|quarter|year' or 'never' after "
                               "'expire'");
        }
        if (rc != SEG_OK)
            return rc;
        return semi(p, "expire");
    }
    if (is_word(p, "qualify")) {
        if ((rc = once(p, &seen[4], "qualify")) != SEG_OK)
            return rc;
        if (is_word(p, "spend"))
            g->qualify = SEG__LQ_SPEND;
        else if (is_word(p, "points"))
            g->qualify = SEG__LQ_POINTS;
        else if (is_word(p, "orders"))
            g->qualify = SEG__LQ_ORDERS;
        else
            return expected(p, "'spend', 'points' or 'orders' after 'qualify'");
        if ((rc = next(p)) != SEG_OK ||
            (rc = want_word(p, "over", "'over' and the window (qualify spend over 365d)")) != SEG_OK ||
            (rc = duration(p, &g->window, "the qualifying window")) != SEG_OK)
            return rc;
        return semi(p, "qualify");
    }
    if (is_word(p, "grace")) {
        if ((rc = once(p, &seen[5], "grace")) != SEG_OK ||
            (rc = duration(p, &g->grace, "the downgrade grace")) != SEG_OK)
            return rc;
        return semi(p, "grace");
    }
    if (is_word(p, "negative_balance")) {
        if ((rc = once(p, &seen[6], "negative_balance")) != SEG_OK)
            return rc;
        if (is_word(p, "allowed"))
            g->negative = true;
        else if (is_word(p, "forbidden"))
            g->negative = false;
        else
            return expected(p, "'allowed' or 'forbidden' after 'negative_balance'");
        if ((rc = next(p)) != SEG_OK)
            return rc;
        return semi(p, "negative_balance");
    }
    if (is_word(p, "bonus"))
        return stmt_bonus(p, g);
    if (is_word(p, "tier"))
        return stmt_tier(p, g);
    return expected(p, "a rule of the program (earn, rounding, minimum_spend, expire, qualify, "
                       "grace, negative_balance, bonus, tier) or '}'");
}

int seg__loyalty_parse(seg__lexer *lx, seg__tok *cur, seg__ast *ast, seg__sderr *err)
{
    lp p = { lx, cur, ast, err };
    seg__lprog_ast *g = seg__pool_alloc(&ast->pool, sizeof *g);
    if (!g)
        return lerr(err, cur->line, cur->col, SEG_ENOMEM, "out of memory");
    g->line = cur->line;
    g->col = cur->col;
    g->bonus_tail = &g->bonus;
    g->tier_tail = &g->tiers;
    int rc = next(&p);
    if (rc != SEG_OK)
        return rc;
    if (cur->kind != SEG__TK_IDENT || cur->n > SEG_ID_MAX)
        return expected(&p, "the program's name after 'program'");
    for (const seg__lprog_ast *o = ast->programs; o; o = o->next)
        if (seg__str_eq(o->name, cur->p, cur->n))
            return lerr(err, cur->line, cur->col, SEG_EINVAL,
                        "program '%.*s' is already defined at %u:%u", (int)cur->n, cur->p,
                        (unsigned)o->line, (unsigned)o->col);
    g->name = dup(&p, cur->p, cur->n);
    if (!g->name.p || (rc = next(&p)) != SEG_OK)
        return err->code;
    if (cur->kind != SEG__TK_LBRACE)
        return expected(&p, "'{' after the program's name");
    if ((rc = next(&p)) != SEG_OK)
        return rc;
    bool seen[8] = { false };
    while (cur->kind != SEG__TK_RBRACE) {
        if (cur->kind == SEG__TK_EOF)
            return expected(&p, "'}' at the end of the program");
        if ((rc = statement(&p, g, seen)) != SEG_OK)
            return rc;
    }
    if (!seen[0])
        return lerr(err, cur->line, cur->col, SEG_EINVAL,
                    "program '%s' has no 'earn' rule (earn 1 point per 1.00;)", g->name.p);
    if (!g->ntiers)
        return lerr(err, cur->line, cur->col, SEG_EINVAL,
                    "program '%s' has no tier: its first tier is the base tier (tier member;)",
                    g->name.p);
    if (!seen[4]) {
        g->qualify = SEG__LQ_SPEND;
        g->window = 365 * INT64_C(86400);
    }
    if ((rc = next(&p)) != SEG_OK)
        return rc;
    seg__lprog_ast **tail = &ast->programs;
    while (*tail)
        tail = &(*tail)->next;
    *tail = g;
    return SEG_OK;
}

/* ---------------------------------------------------------------- build */

static const int64_t pow10i[19] = {
    INT64_C(1), INT64_C(10), INT64_C(100), INT64_C(1000), INT64_C(10000), INT64_C(100000),
    INT64_C(1000000), INT64_C(10000000), INT64_C(100000000), INT64_C(1000000000),
    INT64_C(10000000000), INT64_C(100000000000), INT64_C(1000000000000),
    INT64_C(10000000000000), INT64_C(100000000000000), INT64_C(1000000000000000),
    INT64_C(10000000000000000), INT64_C(100000000000000000), INT64_C(1000000000000000000)
};

/* A literal as an integer with `decimals` decimals (money: the exponent;
 * multipliers: 4; counts: 0).  Errors name the literal. */
static int scaled(const seg__lnum *v, int decimals, int64_t max, const char *what,
                  seg__sderr *err, int64_t *out)
{
    if (v->neg)
        return lerr(err, v->line, v->col, SEG_EINVAL, "%s cannot be negative", what);
    int64_t m = v->i;
    int32_t sc = v->scale;
    while (sc > decimals && m % 10 == 0) {
        m /= 10;
        sc--;
    }
    if (sc > decimals)
        return decimals == 0
                   ? lerr(err, v->line, v->col, SEG_EINVAL, "%s must be a whole number", what)
                   : lerr(err, v->line, v->col, SEG_EINVAL,
                          "%s has more than %d decimals", what, decimals);
    int64_t f = pow10i[decimals - sc];
    if (m > max / f)
        return lerr(err, v->line, v->col, SEG_ERANGE, "%s is too large (at most %lld%s)", what,
                    (long long)(max / pow10i[decimals]),
                    decimals ? " in whole units" : "");
    *out = m * f;
    return SEG_OK;
}

static __int128 gcd64(__int128 a, __int128 b)
{
    while (b) {
        __int128 t = a % b;
        a = b;
        b = t;
    }
    return (int64_t)a;
}

static char *cdup(const seg__alloc *a, seg__str s)
{
    char *d = seg__malloc(a, s.n + 1);
    if (d) {
        memcpy(d, s.p, s.n);
        d[s.n] = '\0';
    }
    return d;
}

static void prog_free(seg_loyalty *p)
{
    const seg__alloc *a = &p->alloc;
    for (uint32_t i = 0; i < p->ntiers; i++)
        seg__free(a, p->tiers[i].name);
    for (uint32_t i = 0; i < p->ncats; i++)
        seg__free(a, p->cats[i].s);
    for (uint32_t i = 0; i < p->nchans; i++)
        seg__free(a, p->chans[i].s);
    seg__loyalty_free_index(p);
    seg__free(a, p->tiers);
    seg__free(a, p->bonus);
    seg__free(a, p->cats);
    seg__free(a, p->chans);
    seg__free(a, p->rates);
    seg__free(a, p->name);
    seg__alloc al = p->alloc;
    seg__free(&al, p);
}

void seg__loyalty_unref(seg_loyalty *p)
{
    if (p && --p->refs == 0)
        prog_free(p);
}

/* Add rule r to the names of a filter (one entry per distinct name). */
static int add_names(seg_loyalty *p, seg__lname **tab, uint32_t *n, const seg__str *v,
                     uint32_t nv, unsigned r)
{
    for (uint32_t k = 0; k < nv; k++) {
        uint32_t j = 0;
        while (j < *n && !((*tab)[j].n == v[k].n && memcmp((*tab)[j].s, v[k].p, v[k].n) == 0))
            j++;
        if (j == *n) {
            seg__lname *t = seg__realloc_array(&p->alloc, *tab, *n + 1, sizeof **tab);
            if (!t)
                return SEG_ENOMEM;
            *tab = t;
            t[j].s = cdup(&p->alloc, v[k]);
            t[j].n = v[k].n;
            t[j].mask = 0;
            if (!t[j].s)
                return SEG_ENOMEM;
            (*n)++;
        }
        (*tab)[j].mask |= UINT64_C(1) << r;
    }
    return SEG_OK;
}

static bool names_meet(const seg__str *a, uint32_t na, const seg__str *b, uint32_t nb,
                       seg__str *common)
{
    if (!a || !b) {
        *common = !a && !b ? SEG__STR_NULL : a ? a[0] : b[0];
        return true;
    }
    for (uint32_t i = 0; i < na; i++)
        for (uint32_t j = 0; j < nb; j++)
            if (a[i].n == b[j].n && memcmp(a[i].p, b[j].p, a[i].n) == 0) {
                *common = a[i];
                return true;
            }
    return false;
}

static int build(seg_loyalty *p, const seg__lprog_ast *g, seg__sderr *err)
{
    int rc;
    int ex = p->exponent;
    /* earn P points per U: rate P / U in points per minor unit */
    int64_t pts, per;
    if ((rc = scaled(&g->earn_points, 4, SEG_LOYALTY_POINTS_MAX, "the points earned", err,
                     &pts)) != SEG_OK ||
        (rc = scaled(&g->earn_per, ex, SEG_AMOUNT_MAX, "the amount after 'per'", err, &per)) !=
            SEG_OK)
        return rc;
    if (pts == 0)
        return lerr(err, g->earn_points.line, g->earn_points.col, SEG_EINVAL,
                    "the points earned must be more than 0");
    if (per == 0)
        return lerr(err, g->earn_per.line, g->earn_per.col, SEG_EINVAL,
                    "the amount after 'per' must be more than 0");
    p->rounding = g->rounding;
    p->min_spend = 0;
    if (g->min_spend.set &&
        (rc = scaled(&g->min_spend, ex, SEG_AMOUNT_MAX, "minimum_spend", err, &p->min_spend)) !=
            SEG_OK)
        return rc;
    p->expire = g->expire;
    p->expire_after = g->expire_after;
    p->expire_plus = g->expire_plus;
    p->qualify = g->qualify;
    p->window = g->window;
    p->grace = g->grace;
    p->negative = g->negative;
    /* tiers: strictly increasing thresholds, the first one 0 */
    p->tiers = seg__calloc(&p->alloc, g->ntiers, sizeof *p->tiers);
    if (!p->tiers)
        return lerr(err, g->line, g->col, SEG_ENOMEM, "out of memory");
    const char *unit = p->qualify == SEG__LQ_SPEND ? "spend" : p->qualify == SEG__LQ_POINTS
                                                                   ? "points" : "orders";
    const seg__ltier_ast *prev = NULL;
    for (const seg__ltier_ast *t = g->tiers; t; prev = t, t = t->next) {
        seg__ltier *o = &p->tiers[p->ntiers];
        if (!(o->name = cdup(&p->alloc, t->name)))
            return lerr(err, t->line, t->col, SEG_ENOMEM, "out of memory");
        p->ntiers++;
        o->mult = SEG__L_SCALE;
        if (t->mult.set) {
            if ((rc = scaled(&t->mult, 4, SEG__L_MULT_MAX, "the tier's multiplier", err,
                             &o->mult)) != SEG_OK)
                return rc;
            if (o->mult == 0)
                return lerr(err, t->mult.line, t->mult.col, SEG_EINVAL,
                            "the multiplier of tier '%s' must be more than 0", o->name);
        }
        if (!t->from.set) {
            if (prev)
                return lerr(err, t->line, t->col, SEG_EINVAL,
                            "tier '%s' needs 'from' (the %s that qualifies for it)", o->name,
                            unit);
            continue;
        }
        if (p->qualify == SEG__LQ_SPEND)
            rc = scaled(&t->from, ex, SEG_AMOUNT_MAX, "the tier's spend", err, &o->from);
        else
            rc = scaled(&t->from, 0, SEG_LOYALTY_POINTS_MAX,
                        p->qualify == SEG__LQ_POINTS ? "the tier's points" : "the tier's orders",
                        err, &o->from);
        if (rc != SEG_OK)
            return rc;
        if (!prev && o->from != 0)
            return lerr(err, t->from.line, t->from.col, SEG_EINVAL,
                        "the first tier ('%s') is the base tier everyone holds: it starts from 0",
                        o->name);
        if (prev && o->from <= p->tiers[p->ntiers - 2].from)
            return lerr(err, t->from.line, t->from.col, SEG_EINVAL,
                        "tiers are not in increasing order: tier '%s' needs no more %s than "
                        "tier '%s' before it (%u:%u)", o->name, unit,
                        p->tiers[p->ntiers - 2].name, (unsigned)prev->line, (unsigned)prev->col);
    }
    /* bonus rules: no purchase may match two */
    p->bonus = seg__calloc(&p->alloc, g->nbonus + 1, sizeof *p->bonus);
    if (!p->bonus)
        return lerr(err, g->line, g->col, SEG_ENOMEM, "out of memory");
    unsigned r = 0;
    for (const seg__lbonus_ast *b = g->bonus; b; b = b->next, r++) {
        for (const seg__lbonus_ast *o = g->bonus; o != b; o = o->next) {
            seg__str c1, c2;
            if (names_meet(o->cats, o->ncats, b->cats, b->ncats, &c1) &&
                names_meet(o->chans, o->nchans, b->chans, b->nchans, &c2)) {
                char what[300];
                snprintf(what, sizeof what, "%s%.*s%s%s%s%.*s%s",
                         c1.p ? "category \"" : "any category", (int)(c1.p ? c1.n : 0),
                         c1.p ? c1.p : "", c1.p ? "\"" : "", " and ",
                         c2.p ? "channel \"" : "any channel", (int)(c2.p ? c2.n : 0),
                         c2.p ? c2.p : "", c2.p ? "\"" : "");
                return lerr(err, b->line, b->col, SEG_EINVAL,
                            "bonus rules overlap: a purchase with %s matches both this rule "
                            "and the one at %u:%u", what, (unsigned)o->line, (unsigned)o->col);
            }
        }
        seg__lbonus *o = &p->bonus[r];
        o->mult = SEG__L_SCALE;
        if (b->mult.set) {
            if ((rc = scaled(&b->mult, 4, SEG__L_MULT_MAX, "the bonus multiplier", err,
                             &o->mult)) != SEG_OK)
                return rc;
            if (o->mult == 0)
                return lerr(err, b->mult.line, b->mult.col, SEG_EINVAL,
                            "the bonus multiplier must be more than 0");
        }
        if (b->flat.set &&
            (rc = scaled(&b->flat, 0, SEG_LOYALTY_POINTS_MAX, "the bonus points", err,
                         &o->flat)) != SEG_OK)
            return rc;
        if (b->cats) {
            if (add_names(p, &p->cats, &p->ncats, b->cats, b->ncats, r) != SEG_OK)
                return lerr(err, b->line, b->col, SEG_ENOMEM, "out of memory");
        } else {
            p->anycat |= UINT64_C(1) << r;
        }
        if (b->chans) {
            if (add_names(p, &p->chans, &p->nchans, b->chans, b->nchans, r) != SEG_OK)
                return lerr(err, b->line, b->col, SEG_ENOMEM, "out of memory");
        } else {
            p->anychan |= UINT64_C(1) << r;
        }
    }
    p->nbonus = r;
    if (seg__loyalty_index_names(p) != SEG_OK)
        return lerr(err, g->line, g->col, SEG_ENOMEM, "out of memory");
    /* rates: pts/10^4 points per `per` minor units, times the tier's and
     * the bonus's multipliers; a purchase of the largest amount must stay
     * within SEG_LOYALTY_POINTS_MAX */
    p->rates = seg__calloc(&p->alloc, (size_t)p->ntiers * (p->nbonus + 1), sizeof *p->rates);
    if (!p->rates)
        return lerr(err, g->line, g->col, SEG_ENOMEM, "out of memory");
    {
        __int128 n = pts, d = (__int128)per * SEG__L_SCALE;
        __int128 q = gcd64(n, d);
        p->base.n = (int64_t)(n / q);
        p->base.d = (int64_t)(d / q);
        p->base.m = UINT64_MAX / (uint64_t)p->base.d;
    }
    for (uint32_t t = 0; t < p->ntiers; t++)
        for (uint32_t b = 0; b <= p->nbonus; b++) {
            __int128 n = (__int128)pts * p->tiers[t].mult * (b ? p->bonus[b - 1].mult : SEG__L_SCALE);
            __int128 d = (__int128)per * SEG__L_SCALE * SEG__L_SCALE * SEG__L_SCALE;
            __int128 q = gcd64(n, d);
            n /= q;
            d /= q;
            __int128 most = d > INT64_MAX || n > INT64_MAX
                                ? (__int128)INT64_MAX
                                : (__int128)SEG_AMOUNT_MAX * n / d +
                                      (b ? p->bonus[b - 1].flat : 0);
            if (most > SEG_LOYALTY_POINTS_MAX) {
                uint32_t line = g->earn_line, col = g->earn_col;
                return lerr(err, line, col, SEG_ERANGE,
                            "points overflow: with tier '%s'%s a purchase of the largest amount "
                            "would earn more than %lld points", p->tiers[t].name,
                            b ? " and a bonus" : "", (long long)SEG_LOYALTY_POINTS_MAX);
            }
            seg__lrate *o = &p->rates[(size_t)t * (p->nbonus + 1) + b];
            o->n = (int64_t)n;
            o->d = (int64_t)d;
            o->m = UINT64_MAX / (uint64_t)d;
            /* down: + 0; up: + d - 1; nearest (half up): + d / 2 */
            o->bias = p->rounding == SEG__LR_UP        ? (uint64_t)d - 1
                      : p->rounding == SEG__LR_NEAREST ? (uint64_t)d / 2
                                                       : 0;
            o->flat = b ? p->bonus[b - 1].flat : 0;
        }
    return SEG_OK;
}

int seg__loyalty_build(seg_loyalty **out, const seg__lprog_ast *g, const seg__alloc *a,
                       int exponent, seg__sderr *err)
{
    *out = NULL;
    seg_loyalty *p = seg__calloc(a, 1, sizeof *p);
    if (!p)
        return lerr(err, g->line, g->col, SEG_ENOMEM, "out of memory");
    p->alloc = *a;
    p->refs = 1;
    p->exponent = exponent;
    p->name = cdup(a, g->name);
    int rc = p->name ? build(p, g, err) : lerr(err, g->line, g->col, SEG_ENOMEM, "out of memory");
    if (rc != SEG_OK) {
        prog_free(p);
        return rc;
    }
    *out = p;
    return SEG_OK;
}

/* ------------------------------------------------------------ public API */

#define OPTS_V1_SIZE sizeof(seg_loyalty_options)

SEG_API int seg_loyalty_options_init(seg_loyalty_options *opts, size_t struct_size)
{
    seg_loyalty_options d = SEG_LOYALTY_OPTIONS_INIT;
    return seg__options_init(opts, struct_size, &d, OPTS_V1_SIZE);
}

static int compile_fail(const seg_loyalty_options *o, int code, const char *fmt, ...)
    SEG_PRINTF(3, 4);
static int compile_fail(const seg_loyalty_options *o, int code, const char *fmt, ...)
{
    if (o->errbuf && o->errbuf_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(o->errbuf, o->errbuf_size, fmt, ap);
        va_end(ap);
    }
    return code;
}

SEG_API int seg_loyalty_compile(seg_loyalty **out, const char *src, size_t len,
                                const seg_loyalty_options *opts)
{
    seg_loyalty_options o = SEG_LOYALTY_OPTIONS_INIT;
    if (opts && opts->struct_size >= OPTS_V1_SIZE) {
        o.errbuf = opts->errbuf;
        o.errbuf_size = opts->errbuf_size;
    }
    if (out)
        *out = NULL;
    if (!out)
        return compile_fail(&o, SEG_EINVAL, "out: NULL");
    if (opts && seg__struct_in(&o, sizeof o, opts, opts->struct_size, OPTS_V1_SIZE) != SEG_OK)
        return compile_fail(&o, SEG_EVERSION, "seg_loyalty_options: unsupported struct_size %zu",
                            opts->struct_size);
    if (!src && len)
        return compile_fail(&o, SEG_EINVAL, "src: NULL");
    if (o.currency_exponent < 0 || o.currency_exponent > 6)
        return compile_fail(&o, SEG_EINVAL, "currency_exponent %d: must be 0..6",
                            (int)o.currency_exponent);
    seg__alloc a = seg__default_alloc;
    if (o.allocator) {
        const seg_allocator *h = o.allocator;
        if (h->struct_size < sizeof(seg_allocator) || !h->malloc || !h->realloc || !h->free)
            return compile_fail(&o, SEG_EINVAL,
                                "allocator: struct_size and all three functions are required");
        a.malloc = h->malloc;
        a.realloc = h->realloc;
        a.free = h->free;
        a.ud = h->ud;
    }
    seg__ast ast;
    memset(&ast, 0, sizeof ast);
    seg__pool_init(&ast.pool, &a);
    seg__sderr err;
    int rc = seg__sd_parse(&ast, src ? src : "", len, &err);
    if (rc == SEG_OK) {
        const seg__lprog_ast *g = NULL;
        if (o.name) {
            for (g = ast.programs; g && strcmp(g->name.p, o.name) != 0; g = g->next)
                ;
            if (!g)
                rc = compile_fail(&o, SEG_EINVAL, "no program '%s' in the text", o.name);
        } else if (!ast.programs) {
            rc = compile_fail(&o, SEG_EINVAL, "the text holds no program (program NAME { ... })");
        } else if (ast.programs->next) {
            rc = compile_fail(&o, SEG_EINVAL,
                              "the text holds several programs ('%s', '%s', ...): name one in "
                              "seg_loyalty_options.name", ast.programs->name.p,
                              ast.programs->next->name.p);
        } else {
            g = ast.programs;
        }
        if (g) {
            rc = seg__loyalty_build(out, g, &a, o.currency_exponent, &err);
            if (rc != SEG_OK)
                compile_fail(&o, rc, "%u:%u: %s", (unsigned)err.line, (unsigned)err.col, err.msg);
        }
    } else {
        compile_fail(&o, rc, "%u:%u: %s", (unsigned)err.line, (unsigned)err.col, err.msg);
    }
    seg__pool_free(&ast.pool);
    return rc;
}

SEG_API void seg_loyalty_free(seg_loyalty *prog)
{
    seg__loyalty_unref(prog);
}

SEG_API const char *seg_loyalty_name(const seg_loyalty *prog)
{
    return prog ? prog->name : NULL;
}

SEG_API int seg_loyalty_tier_count(const seg_loyalty *prog)
{
    return prog ? (int)prog->ntiers : 0;
}

SEG_API const char *seg_loyalty_tier_name(const seg_loyalty *prog, int tier)
{
    if (!prog || tier < 0 || (uint32_t)tier >= prog->ntiers)
        return NULL;
    return prog->tiers[tier].name;
}
