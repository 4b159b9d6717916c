/*
 * The journey language: `journey NAME { ... }` blocks of a definition.
 *
 *   journey   := 'journey' NAME '{' jstmt* '}'
 *   jstmt     := 'enter' 'when' expr ';'
 *              | 'exit' 'when' expr ';' | 'exit' 'on' event ';'
 *              | 'reenter' ('never' | 'always' | 'after' DURATION) ';'
 *              | 'variant' NAME INT ';' | 'holdout' INT ';'
 *              | 'goal' event ';'
 *              | 'state' NAME '{' sstmt* '}'
 *   sstmt     := 'do' action (',' action)* ';'
 *              | trigger ['for' NAME (',' NAME)*] '->' target
 *                ['do' action (',' action)*] ';'
 *   trigger   := 'on' event | 'after' DURATION ['since' ('entry' | 'last_purchase')]
 *              | 'when' expr | (nothing: at once)
 *   target    := NAME | 'exit'
 *   event     := ('purchase' | 'refund' | STRING) ['(' filter (',' filter)* ')']
 *   filter    := ('category' | 'channel' | 'sku') ':' STRING | 'min_amount' ':' NUMBER
 *   action    := STRING ['(' NAME ':' literal (',' NAME ':' literal)* ')']
 *                ['for' NAME (',' NAME)*]
 *
 * The words are not reserved: they mean something only where they stand.
 * The structure is checked here, with positions (unknown or unreachable
 * states, dead ends, durations, shares); the conditions are checked with
 * the rest of the definition (seg__jr_validate).
 */
#include "journey/journey-private.h"

#include <inttypes.h>
#include <stdio.h>

typedef seg__parser P;

static bool is_word(const seg__tok *t, const char *w)
{
    size_t n = strlen(w);
    return t->kind == SEG__TK_IDENT && t->n == n && memcmp(t->p, w, n) == 0;
}

static void *palloc(P *p, size_t n)
{
    void *r = seg__pool_alloc(&seg__sdp_ast(p)->pool, n);
    if (!r)
        seg__sdp_error(p, seg__sdp_cur(p)->line, seg__sdp_cur(p)->col, SEG_ENOMEM,
                       "out of memory");
    return r;
}

/* Make room for one more element of a pool array. */
static bool grow(P *p, void **arr, uint32_t n, uint32_t *cap, size_t size)
{
    if (n < *cap)
        return true;
    uint32_t c2 = *cap ? *cap * 2 : 4;
    void *v = palloc(p, (size_t)c2 * size);
    if (!v)
        return false;
    if (n)
        memcpy(v, *arr, (size_t)n * size);
    *arr = v;
    *cap = c2;
    return true;
}

static int next(P *p) { return seg__sdp_next(p); }

static int expect(P *p, int kind, const char *what)
{
    if (seg__sdp_cur(p)->kind != kind)
        return seg__sdp_expected(p, what);
    return next(p);
}

static int take_name(P *p, const char *what, seg__str *out, uint32_t *line, uint32_t *col)
{
    const seg__tok *t = seg__sdp_cur(p);
    if (t->kind != SEG__TK_IDENT)
        return seg__sdp_expected(p, what);
    if (line) {
        *line = t->line;
        *col = t->col;
    }
    *out = seg__sdp_str(p, t->p, t->n);
    if (!out->p)
        return SEG_ENOMEM;
    return next(p);
}

static int take_duration(P *p, const char *what, int64_t *count, uint8_t *unit, int64_t *secs)
{
    const seg__tok *t = seg__sdp_cur(p);
    if (t->kind != SEG__TK_DUR)
        return seg__sdp_expected(p, what);
    if (t->i <= 0)
        return seg__sdp_error(p, t->line, t->col, SEG_EINVAL,
                              "a duration of zero: waits are longer than zero");
    int64_t s = seg__du_seconds[t->unit];
    if (t->i > SEG__JR_DUR_MAX / s)
        return seg__sdp_error(p, t->line, t->col, SEG_ERANGE,
                              "duration too long (at most 100 years)");
    *count = t->i;
    *unit = (uint8_t)t->unit;
    *secs = t->i * s;
    return next(p);
}

/* A string literal naming something (an event, an action, a filter). */
static int take_string(P *p, const char *what, seg__str *out)
{
    const seg__tok *t = seg__sdp_cur(p);
    if (t->kind != SEG__TK_STR)
        return seg__sdp_expected(p, what);
    if (t->sn == 0 || t->sn > SEG_ID_MAX)
        return seg__sdp_error(p, t->line, t->col, SEG_EINVAL, "%s must be 1 to %d bytes", what,
                              SEG_ID_MAX);
    for (size_t k = 0; k < t->sn; k++)
        if ((unsigned char)t->s[k] < 0x20 || t->s[k] == 0x7f)
            return seg__sdp_error(p, t->line, t->col, SEG_EINVAL,
                                  "%s must not hold control characters", what);
    *out = seg__sdp_str(p, t->s, t->sn);
    if (!out->p)
        return SEG_ENOMEM;
    return next(p);
}

static bool is_number_literal(const seg__node *n)
{
    return n->kind == SEG__N_INT || n->kind == SEG__N_DEC;
}

static bool is_literal(const seg__node *n)
{
    if (n->kind == SEG__N_NEG)
        return is_number_literal(n->kids[0]);
    return is_number_literal(n) || n->kind == SEG__N_STR || n->kind == SEG__N_DUR ||
           n->kind == SEG__N_BOOL;
}

static int parse_event(P *p, seg__jr_event *ev)
{
    const seg__tok *t = seg__sdp_cur(p);
    int rc;
    memset(ev, 0, sizeof *ev);
    ev->line = t->line;
    ev->col = t->col;
    if (is_word(t, "purchase")) {
        ev->kind = SEG_EVENT_PURCHASE;
        rc = next(p);
    } else if (is_word(t, "refund")) {
        ev->kind = SEG_EVENT_REFUND;
        rc = next(p);
    } else if (t->kind == SEG__TK_STR) {
        ev->kind = SEG_EVENT_ENGAGEMENT;
        rc = take_string(p, "an event's name", &ev->name);
    } else {
        return seg__sdp_expected(p, "an event: purchase, refund or an engagement's name in "
                                    "quotes (\"email_click\")");
    }
    if (rc != SEG_OK || seg__sdp_cur(p)->kind != SEG__TK_LPAREN)
        return rc;
    if ((rc = next(p)) != SEG_OK)
        return rc;
    for (;;) {
        t = seg__sdp_cur(p);
        uint32_t line = t->line, col = t->col;
        seg__str *dst = is_word(t, "category") ? &ev->category
                        : is_word(t, "channel") ? &ev->channel
                        : is_word(t, "sku") ? &ev->sku : NULL;
        bool amount = is_word(t, "min_amount");
        if (!dst && !amount)
            return seg__sdp_expected(p, "an event filter (category:, channel:, sku:, "
                                        "min_amount:)");
        if ((dst && dst->p) || (amount && ev->min_amount))
            return seg__sdp_error(p, line, col, SEG_EPARSE, "filter '%.*s' given twice",
                                  (int)t->n, t->p);
        if ((rc = next(p)) != SEG_OK ||
            (rc = expect(p, SEG__TK_COLON, "':' after the filter's name")) != SEG_OK)
            return rc;
        if (dst) {
            if ((rc = take_string(p, "a filter's value", dst)) != SEG_OK)
                return rc;
        } else {
            seg__node *v = seg__sdp_expr(p);
            if (!v)
                return SEG_EPARSE;
            if (!is_number_literal(v))
                return seg__sdp_error(p, v->line, v->col, SEG_EINVAL,
                                      "min_amount: must be an amount (50 or 49.90)");
            ev->min_amount = v;
        }
        if (seg__sdp_cur(p)->kind == SEG__TK_COMMA) {
            if ((rc = next(p)) != SEG_OK)
                return rc;
            continue;
        }
        return expect(p, SEG__TK_RPAREN, "',' or ')' after an event filter");
    }
}

/* 'for' a, b: the caller has seen 'for'.  Stops before a ',' that is not
 * followed by a name (the next action of a 'do' list). */
static int parse_variants(P *p, seg__str **out, uint32_t *n)
{
    uint32_t cap = 0;
    int rc = next(p);
    for (;;) {
        if (rc != SEG_OK)
            return rc;
        if (!grow(p, (void **)out, *n, &cap, sizeof **out))
            return SEG_ENOMEM;
        if ((rc = take_name(p, "a variant's name after 'for'", &(*out)[*n], NULL, NULL)) !=
            SEG_OK)
            return rc;
        (*n)++;
        if (seg__sdp_cur(p)->kind != SEG__TK_COMMA)
            return SEG_OK;
        const seg__tok *nx;
        if ((rc = seg__sdp_peek(p, &nx)) != SEG_OK)
            return rc;
        if (nx->kind != SEG__TK_IDENT)
            return SEG_OK;
        rc = next(p);
    }
}

static int parse_action(P *p, seg__jr_action *a)
{
    const seg__tok *t = seg__sdp_cur(p);
    memset(a, 0, sizeof *a);
    a->line = t->line;
    a->col = t->col;
    int rc = take_string(p, "an action in quotes (\"email:discount_5\")", &a->name);
    if (rc != SEG_OK)
        return rc;
    if (seg__sdp_cur(p)->kind == SEG__TK_LPAREN) {
        uint32_t cap = 0;
        if ((rc = next(p)) != SEG_OK)
            return rc;
        for (;;) {
            seg__str key;
            uint32_t line, col;
            if ((rc = take_name(p, "a parameter's name", &key, &line, &col)) != SEG_OK ||
                (rc = expect(p, SEG__TK_COLON, "':' after the parameter's name")) != SEG_OK)
                return rc;
            seg__node *v = seg__sdp_expr(p);
            if (!v)
                return SEG_EPARSE;
            if (!is_literal(v))
                return seg__sdp_error(p, v->line, v->col, SEG_EINVAL,
                                      "parameter '%s': a value is a literal (5, 9.90, \"x\", "
                                      "14d, true)", key.p);
            /* sorted by key: one canonical form */
            uint32_t at = a->nparams;
            for (uint32_t k = 0; k < a->nparams; k++) {
                int c = strcmp(a->params[k].key.p, key.p);
                if (c == 0)
                    return seg__sdp_error(p, line, col, SEG_EPARSE,
                                          "parameter '%s' given twice", key.p);
                if (c > 0 && at == a->nparams)
                    at = k;
            }
            if (!grow(p, (void **)&a->params, a->nparams, &cap, sizeof *a->params))
                return SEG_ENOMEM;
            memmove(&a->params[at + 1], &a->params[at],
                    (a->nparams - at) * sizeof *a->params);
            a->params[at].key = key;
            a->params[at].value = v;
            a->nparams++;
            if (seg__sdp_cur(p)->kind == SEG__TK_COMMA) {
                if ((rc = next(p)) != SEG_OK)
                    return rc;
                continue;
            }
            if ((rc = expect(p, SEG__TK_RPAREN, "',' or ')' after a parameter")) != SEG_OK)
                return rc;
            break;
        }
    }
    if (is_word(seg__sdp_cur(p), "for"))
        return parse_variants(p, &a->variants, &a->nvariants);
    return SEG_OK;
}

/* 'do' a, b (cur is 'do'): appended to acts */
static int parse_do(P *p, seg__jr_action **acts, uint32_t *n, uint32_t *cap)
{
    int rc = next(p);
    for (;;) {
        if (rc != SEG_OK)
            return rc;
        if (!grow(p, (void **)acts, *n, cap, sizeof **acts))
            return SEG_ENOMEM;
        if ((rc = parse_action(p, &(*acts)[*n])) != SEG_OK)
            return rc;
        (*n)++;
        if (seg__sdp_cur(p)->kind != SEG__TK_COMMA)
            return SEG_OK;
        rc = next(p);
    }
}

static int parse_state(P *p, seg__jr_state *st)
{
    uint32_t acap = 0, tcap = 0;
    int rc = next(p);
    if (rc != SEG_OK ||
        (rc = take_name(p, "the state's name after 'state'", &st->name, &st->line,
                        &st->col)) != SEG_OK)
        return rc;
    if (seg__str_eq(st->name, "exit", 4))
        return seg__sdp_error(p, st->line, st->col, SEG_EPARSE,
                              "'exit' is not a state's name: '-> exit' leaves the journey");
    if ((rc = expect(p, SEG__TK_LBRACE, "'{' after the state's name")) != SEG_OK)
        return rc;
    for (;;) {
        const seg__tok *t = seg__sdp_cur(p);
        if (t->kind == SEG__TK_RBRACE)
            return next(p);
        if (is_word(t, "do")) {
            if ((rc = parse_do(p, &st->acts, &st->nacts, &acap)) != SEG_OK ||
                (rc = expect(p, SEG__TK_SEMI, "';' after the actions")) != SEG_OK)
                return rc;
            continue;
        }
        if (!grow(p, (void **)&st->trans, st->ntrans, &tcap, sizeof *st->trans))
            return SEG_ENOMEM;
        seg__jr_trans *tr = &st->trans[st->ntrans];
        memset(tr, 0, sizeof *tr);
        tr->line = t->line;
        tr->col = t->col;
        if (is_word(t, "on")) {
            tr->kind = SEG__JT_ON;
            if ((rc = next(p)) != SEG_OK || (rc = parse_event(p, &tr->ev)) != SEG_OK)
                return rc;
        } else if (is_word(t, "after")) {
            tr->kind = SEG__JT_AFTER;
            if ((rc = next(p)) != SEG_OK ||
                (rc = take_duration(p, "a duration after 'after' (14d)", &tr->count,
                                    &tr->unit, &tr->dur)) != SEG_OK)
                return rc;
            if (is_word(seg__sdp_cur(p), "since")) {
                if ((rc = next(p)) != SEG_OK)
                    return rc;
                t = seg__sdp_cur(p);
                if (is_word(t, "last_purchase"))
                    tr->since = SEG__JS_PURCHASE;
                else if (!is_word(t, "entry"))
                    return seg__sdp_expected(p, "'entry' or 'last_purchase' after 'since'");
                if ((rc = next(p)) != SEG_OK)
                    return rc;
            }
        } else if (is_word(t, "when")) {
            tr->kind = SEG__JT_WHEN;
            if ((rc = next(p)) != SEG_OK)
                return rc;
            if (!(tr->cond = seg__sdp_expr(p)))
                return SEG_EPARSE;
        } else if (t->kind == SEG__TK_ARROW) {
            tr->kind = SEG__JT_NOW;
        } else {
            return seg__sdp_expected(p, "'on', 'after', 'when', '->', 'do' or '}' in a state");
        }
        if (is_word(seg__sdp_cur(p), "for") &&
            (rc = parse_variants(p, &tr->variants, &tr->nvariants)) != SEG_OK)
            return rc;
        if ((rc = expect(p, SEG__TK_ARROW, "'->' and the next state")) != SEG_OK)
            return rc;
        t = seg__sdp_cur(p);
        tr->target_line = t->line;
        tr->target_col = t->col;
        if (is_word(t, "exit")) {
            tr->to_exit = 1;
            if ((rc = next(p)) != SEG_OK)
                return rc;
        } else if ((rc = take_name(p, "the next state's name (or 'exit') after '->'",
                                   &tr->target, NULL, NULL)) != SEG_OK) {
            return rc;
        }
        uint32_t cap = 0;
        if (is_word(seg__sdp_cur(p), "do") &&
            (rc = parse_do(p, &tr->acts, &tr->nacts, &cap)) != SEG_OK)
            return rc;
        if ((rc = expect(p, SEG__TK_SEMI, "';' after the transition")) != SEG_OK)
            return rc;
        st->ntrans++;
    }
}

static int find_state(const seg__jrast *j, seg__str name)
{
    for (uint32_t s = 0; s < j->nstates; s++)
        if (seg__str_eq(j->states[s].name, name.p, name.n))
            return (int)s;
    return -1;
}

static bool known_variant(const seg__jrast *j, seg__str v)
{
    if (seg__str_eq(v, "holdout", 7))
        return j->has_holdout;
    for (uint32_t k = 0; k < j->nvariants; k++)
        if (seg__str_eq(j->variants[k], v.p, v.n))
            return true;
    return false;
}

static int check_variants(P *p, const seg__jrast *j, const seg__str *v, uint32_t n,
                          uint32_t line, uint32_t col)
{
    for (uint32_t k = 0; k < n; k++)
        if (!known_variant(j, v[k]))
            return seg__sdp_error(p, line, col, SEG_EINVAL,
                                  "unknown variant '%s' in journey '%s' (declare it with "
                                  "'variant %s PERCENT;')", v[k].p, j->name.p, v[k].p);
    return SEG_OK;
}

/* The structure of a parsed journey. */
static int check_journey(P *p, seg__jrast *j)
{
    const seg__alloc *a = seg__sdp_ast(p)->pool.alloc;
    if (!j->enter)
        return seg__sdp_error(p, j->line, j->col, SEG_EINVAL,
                              "journey '%s' has no entry rule: add 'enter when CONDITION;'",
                              j->name.p);
    if (!j->nstates)
        return seg__sdp_error(p, j->line, j->col, SEG_EINVAL,
                              "journey '%s' has no state: add 'state NAME { ... }'", j->name.p);
    if (j->nvariants || j->has_holdout) {
        uint32_t sum = j->holdout;
        for (uint32_t k = 0; k < j->nvariants; k++)
            sum += j->shares[k];
        if (sum != 100)
            return seg__sdp_error(p, j->line, j->col, SEG_EINVAL,
                                  "the shares of journey '%s' add up to %u%%, not 100%% "
                                  "(variants and holdout)", j->name.p, sum);
    }
    for (uint32_t s = 0; s < j->nstates; s++) {
        const seg__jr_state *st = &j->states[s];
        if (find_state(j, st->name) != (int)s)
            return seg__sdp_error(p, st->line, st->col, SEG_EINVAL,
                                  "state '%s' defined twice in journey '%s'", st->name.p,
                                  j->name.p);
        for (uint32_t k = 0; k < st->nacts; k++) {
            const seg__jr_action *ac = &st->acts[k];
            int rc = check_variants(p, j, ac->variants, ac->nvariants, ac->line, ac->col);
            if (rc != SEG_OK)
                return rc;
        }
        for (uint32_t t = 0; t < st->ntrans; t++) {
            const seg__jr_trans *tr = &st->trans[t];
            if (!tr->to_exit && find_state(j, tr->target) < 0)
                return seg__sdp_error(p, tr->target_line, tr->target_col, SEG_EINVAL,
                                      "transition to unknown state '%s' in journey '%s'",
                                      tr->target.p, j->name.p);
            int rc = check_variants(p, j, tr->variants, tr->nvariants, tr->line, tr->col);
            for (uint32_t k = 0; k < tr->nacts && rc == SEG_OK; k++)
                rc = check_variants(p, j, tr->acts[k].variants, tr->acts[k].nvariants,
                                    tr->acts[k].line, tr->acts[k].col);
            if (rc != SEG_OK)
                return rc;
        }
        if (!st->ntrans && !j->nexits)
            return seg__sdp_error(p, st->line, st->col, SEG_EINVAL,
                                  "state '%s' of journey '%s' has no way out: add a "
                                  "transition, or an exit rule to the journey", st->name.p,
                                  j->name.p);
    }
    /* reachability from the first state, and no loop of '->' without a trigger */
    uint8_t *seen = seg__calloc(a, j->nstates, 1);
    uint32_t *stack = seg__calloc(a, (size_t)j->nstates + 1, sizeof *stack);
    int rc = SEG_OK;
    if (!seen || !stack) {
        rc = seg__sdp_error(p, j->line, j->col, SEG_ENOMEM, "out of memory");
        goto out;
    }
    uint32_t sp = 0;
    seen[0] = 1;
    stack[sp++] = 0;
    while (sp) {
        const seg__jr_state *st = &j->states[stack[--sp]];
        for (uint32_t t = 0; t < st->ntrans; t++) {
            if (st->trans[t].to_exit)
                continue;
            int to = find_state(j, st->trans[t].target);
            if (!seen[to]) {
                seen[to] = 1;
                stack[sp++] = (uint32_t)to;
            }
        }
    }
    for (uint32_t s = 0; s < j->nstates && rc == SEG_OK; s++)
        if (!seen[s])
            rc = seg__sdp_error(p, j->states[s].line, j->states[s].col, SEG_EINVAL,
                                "state '%s' of journey '%s' is unreachable: no transition "
                                "leads to it from '%s'", j->states[s].name.p, j->name.p,
                                j->states[0].name.p);
    /* '->' without a trigger: follow such edges from each state (at most
     * nstates steps without a cycle) */
    for (uint32_t s = 0; s < j->nstates && rc == SEG_OK; s++) {
        memset(seen, 0, j->nstates);
        uint32_t cur = s;
        sp = 0;
        stack[sp++] = s;
        while (sp && rc == SEG_OK) {
            cur = stack[--sp];
            const seg__jr_state *st = &j->states[cur];
            for (uint32_t t = 0; t < st->ntrans; t++) {
                const seg__jr_trans *tr = &st->trans[t];
                if (tr->kind != SEG__JT_NOW || tr->to_exit)
                    continue;
                uint32_t to = (uint32_t)find_state(j, tr->target);
                if (to == s) {
                    rc = seg__sdp_error(p, tr->line, tr->col, SEG_EINVAL,
                                        "journey '%s' loops back to state '%s' with no wait "
                                        "('->' without 'on', 'after' or 'when')", j->name.p,
                                        j->states[s].name.p);
                    break;
                }
                if (!seen[to]) {
                    seen[to] = 1;
                    stack[sp++] = to;
                }
            }
        }
    }
out:
    seg__free(a, seen);
    seg__free(a, stack);
    return rc;
}

int seg__jr_parse(seg__parser *p)
{
    seg__ast *ast = seg__sdp_ast(p);
    const seg__tok *t = seg__sdp_cur(p);
    if (ast->njourneys >= SEG__JR_JOURNEYS_MAX)
        return seg__sdp_error(p, t->line, t->col, SEG_ELIMIT, "more than %u journeys",
                              SEG__JR_JOURNEYS_MAX);
    if (!grow(p, (void **)&ast->journeys, ast->njourneys, &ast->capjourneys,
              sizeof *ast->journeys))
        return SEG_ENOMEM;
    seg__jrast *j = &ast->journeys[ast->njourneys];
    memset(j, 0, sizeof *j);
    j->line = t->line;
    j->col = t->col;
    uint32_t line, col, xcap = 0, vcap = 0, scap = 0;
    int rc = next(p);
    if (rc != SEG_OK ||
        (rc = take_name(p, "the journey's name after 'journey'", &j->name, &line, &col)) !=
            SEG_OK)
        return rc;
    for (uint32_t k = 0; k < ast->njourneys; k++)
        if (seg__str_eq(ast->journeys[k].name, j->name.p, j->name.n))
            return seg__sdp_error(p, line, col, SEG_EINVAL, "journey '%s' defined twice",
                                  j->name.p);
    if ((rc = expect(p, SEG__TK_LBRACE, "'{' after the journey's name")) != SEG_OK)
        return rc;
    for (;;) {
        t = seg__sdp_cur(p);
        line = t->line;
        col = t->col;
        if (t->kind == SEG__TK_RBRACE) {
            if ((rc = next(p)) != SEG_OK)
                return rc;
            break;
        }
        if (is_word(t, "enter")) {
            if (j->enter)
                return seg__sdp_error(p, line, col, SEG_EPARSE,
                                      "journey '%s' has two entry rules: join them with 'and' "
                                      "or 'or'", j->name.p);
            j->enter_line = line;
            j->enter_col = col;
            if ((rc = next(p)) != SEG_OK ||
                (rc = expect(p, SEG__TK_IDENT, "'when' after 'enter'")) != SEG_OK)
                return rc;
            if (!(j->enter = seg__sdp_expr(p)))
                return SEG_EPARSE;
        } else if (is_word(t, "exit")) {
            if (!grow(p, (void **)&j->exits, j->nexits, &xcap, sizeof *j->exits))
                return SEG_ENOMEM;
            seg__jr_exit *x = &j->exits[j->nexits];
            memset(x, 0, sizeof *x);
            x->line = line;
            x->col = col;
            if ((rc = next(p)) != SEG_OK)
                return rc;
            if (is_word(seg__sdp_cur(p), "when")) {
                x->kind = SEG__JX_WHEN;
                if ((rc = next(p)) != SEG_OK)
                    return rc;
                if (!(x->cond = seg__sdp_expr(p)))
                    return SEG_EPARSE;
            } else if (is_word(seg__sdp_cur(p), "on")) {
                x->kind = SEG__JX_ON;
                if ((rc = next(p)) != SEG_OK || (rc = parse_event(p, &x->ev)) != SEG_OK)
                    return rc;
            } else {
                return seg__sdp_expected(p, "'when' or 'on' after 'exit'");
            }
            j->nexits++;
        } else if (is_word(t, "reenter")) {
            if (j->has_reentry)
                return seg__sdp_error(p, line, col, SEG_EPARSE,
                                      "journey '%s' has two re-entry rules", j->name.p);
            j->has_reentry = true;
            if ((rc = next(p)) != SEG_OK)
                return rc;
            t = seg__sdp_cur(p);
            if (is_word(t, "never")) {
                j->reentry = SEG__JR_NEVER;
                rc = next(p);
            } else if (is_word(t, "always")) {
                j->reentry = SEG__JR_ALWAYS;
                rc = next(p);
            } else if (is_word(t, "after")) {
                j->reentry = SEG__JR_AFTER;
                if ((rc = next(p)) == SEG_OK)
                    rc = take_duration(p, "a duration after 'reenter after' (90d)",
                                       &j->reentry_count, &j->reentry_unit, &j->reentry_dur);
            } else {
                return seg__sdp_expected(p, "'never', 'always' or 'after DURATION' after "
                                            "'reenter'");
            }
            if (rc != SEG_OK)
                return rc;
        } else if (is_word(t, "variant")) {
            if (j->nvariants >= SEG__JR_VARIANTS_MAX)
                return seg__sdp_error(p, line, col, SEG_ELIMIT,
                                      "journey '%s' has more than %u variants", j->name.p,
                                      SEG__JR_VARIANTS_MAX);
            uint32_t c2 = vcap;
            if (!grow(p, (void **)&j->variants, j->nvariants, &vcap, sizeof *j->variants) ||
                !grow(p, (void **)&j->shares, j->nvariants, &c2, sizeof *j->shares))
                return SEG_ENOMEM;
            seg__str v;
            uint32_t vl, vc;
            if ((rc = next(p)) != SEG_OK ||
                (rc = take_name(p, "the variant's name after 'variant'", &v, &vl, &vc)) !=
                    SEG_OK)
                return rc;
            if (seg__str_eq(v, "holdout", 7))
                return seg__sdp_error(p, vl, vc, SEG_EPARSE,
                                      "'holdout' is not a variant's name: write 'holdout "
                                      "PERCENT;'");
            for (uint32_t k = 0; k < j->nvariants; k++)
                if (seg__str_eq(j->variants[k], v.p, v.n))
                    return seg__sdp_error(p, vl, vc, SEG_EINVAL,
                                          "variant '%s' declared twice in journey '%s'", v.p,
                                          j->name.p);
            t = seg__sdp_cur(p);
            if (t->kind != SEG__TK_INT)
                return seg__sdp_expected(p, "the variant's share in percent (45)");
            if (t->i < 1 || t->i > 100)
                return seg__sdp_error(p, t->line, t->col, SEG_EINVAL,
                                      "a share is 1 to 100 percent");
            j->variants[j->nvariants] = v;
            j->shares[j->nvariants] = (uint32_t)t->i;
            j->nvariants++;
            if ((rc = next(p)) != SEG_OK)
                return rc;
        } else if (is_word(t, "holdout")) {
            if (j->has_holdout)
                return seg__sdp_error(p, line, col, SEG_EPARSE,
                                      "journey '%s' has two holdout groups", j->name.p);
            if ((rc = next(p)) != SEG_OK)
                return rc;
            t = seg__sdp_cur(p);
            if (t->kind != SEG__TK_INT)
                return seg__sdp_expected(p, "the holdout group's share in percent (10)");
            if (t->i < 1 || t->i > 100)
                return seg__sdp_error(p, t->line, t->col, SEG_EINVAL,
                                      "a share is 1 to 100 percent");
            j->has_holdout = true;
            j->holdout = (uint32_t)t->i;
            if ((rc = next(p)) != SEG_OK)
                return rc;
        } else if (is_word(t, "goal")) {
            if (j->has_goal)
                return seg__sdp_error(p, line, col, SEG_EPARSE, "journey '%s' has two goals",
                                      j->name.p);
            j->has_goal = true;
            if ((rc = next(p)) != SEG_OK || (rc = parse_event(p, &j->goal)) != SEG_OK)
                return rc;
        } else if (is_word(t, "state")) {
            if (j->nstates >= SEG__JR_STATES_MAX)
                return seg__sdp_error(p, line, col, SEG_ELIMIT,
                                      "journey '%s' has more than %u states", j->name.p,
                                      SEG__JR_STATES_MAX);
            if (!grow(p, (void **)&j->states, j->nstates, &scap, sizeof *j->states))
                return SEG_ENOMEM;
            memset(&j->states[j->nstates], 0, sizeof *j->states);
            if ((rc = parse_state(p, &j->states[j->nstates])) != SEG_OK)
                return rc;
            j->nstates++;
            continue; /* a block: no ';' */
        } else if (t->kind == SEG__TK_EOF) {
            return seg__sdp_error(p, line, col, SEG_EPARSE,
                                  "journey '%s' is not closed: expected '}'", j->name.p);
        } else {
            return seg__sdp_expected(p, "'enter', 'exit', 'reenter', 'variant', 'holdout', "
                                        "'goal', 'state' or '}' in a journey");
        }
        if ((rc = expect(p, SEG__TK_SEMI, "';' at the end of the statement")) != SEG_OK)
            return rc;
    }
    if ((rc = check_journey(p, j)) != SEG_OK)
        return rc;
    ast->njourneys++;
    return SEG_OK;
}

/* ---- canonical text ---- */

typedef seg__text jbuf;

static void putstr(jbuf *b, seg__str s) { seg__text_put(b, s.p, s.n); }

static void put_expr(jbuf *b, const seg__node *n)
{
    char *t = seg__sd_print_expr(b->a, n);
    if (!t) {
        b->oom = true;
        return;
    }
    seg__text_puts(b, t);
    seg__free(b->a, t);
}

static void put_quoted(jbuf *b, seg__str s)
{
    seg__text_put(b, "\"", 1);
    for (size_t k = 0; k < s.n; k++) {
        unsigned char c = (unsigned char)s.p[k];
        char e[8];
        if (c == '"' || c == '\\') {
            e[0] = '\\';
            e[1] = (char)c;
            seg__text_put(b, e, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(e, sizeof e, "\\x%02X", c);
            seg__text_puts(b, e);
        } else {
            seg__text_put(b, (const char *)&c, 1);
        }
    }
    seg__text_put(b, "\"", 1);
}

static void put_dur(jbuf *b, int64_t count, int unit)
{
    char t[48];
    snprintf(t, sizeof t, "%" PRId64 "%s", count, seg__du_name[unit]);
    seg__text_puts(b, t);
}

static void put_event(jbuf *b, const seg__jr_event *ev)
{
    if (ev->kind == SEG_EVENT_PURCHASE)
        seg__text_puts(b, "purchase");
    else if (ev->kind == SEG_EVENT_REFUND)
        seg__text_puts(b, "refund");
    else
        put_quoted(b, ev->name);
    const char *sep = "(";
    if (ev->category.p) {
        seg__text_puts(b, sep);
        seg__text_puts(b, "category: ");
        put_quoted(b, ev->category);
        sep = ", ";
    }
    if (ev->channel.p) {
        seg__text_puts(b, sep);
        seg__text_puts(b, "channel: ");
        put_quoted(b, ev->channel);
        sep = ", ";
    }
    if (ev->min_amount) {
        seg__text_puts(b, sep);
        seg__text_puts(b, "min_amount: ");
        put_expr(b, ev->min_amount);
        sep = ", ";
    }
    if (ev->sku.p) {
        seg__text_puts(b, sep);
        seg__text_puts(b, "sku: ");
        put_quoted(b, ev->sku);
        sep = ", ";
    }
    if (sep[0] == ',')
        seg__text_put(b, ")", 1);
}

static void put_variants(jbuf *b, const seg__str *v, uint32_t n)
{
    for (uint32_t k = 0; k < n; k++) {
        seg__text_puts(b, k ? ", " : " for ");
        putstr(b, v[k]);
    }
}

static void put_actions(jbuf *b, const seg__jr_action *acts, uint32_t n)
{
    for (uint32_t k = 0; k < n; k++) {
        const seg__jr_action *a = &acts[k];
        seg__text_puts(b, k ? ", " : " do ");
        put_quoted(b, a->name);
        for (uint32_t q = 0; q < a->nparams; q++) {
            seg__text_puts(b, q ? ", " : "(");
            putstr(b, a->params[q].key);
            seg__text_puts(b, ": ");
            put_expr(b, a->params[q].value);
        }
        if (a->nparams)
            seg__text_put(b, ")", 1);
        put_variants(b, a->variants, a->nvariants);
    }
}

static void print_journey(jbuf *b, const seg__jrast *j)
{
    char t[64];
    seg__text_puts(b, "journey ");
    putstr(b, j->name);
    seg__text_puts(b, " {\n  enter when ");
    put_expr(b, j->enter);
    seg__text_puts(b, ";\n");
    for (uint32_t k = 0; k < j->nexits; k++) {
        if (j->exits[k].kind == SEG__JX_WHEN) {
            seg__text_puts(b, "  exit when ");
            put_expr(b, j->exits[k].cond);
        } else {
            seg__text_puts(b, "  exit on ");
            put_event(b, &j->exits[k].ev);
        }
        seg__text_puts(b, ";\n");
    }
    if (j->has_reentry) {
        seg__text_puts(b, j->reentry == SEG__JR_NEVER    ? "  reenter never"
                 : j->reentry == SEG__JR_ALWAYS ? "  reenter always"
                                                : "  reenter after ");
        if (j->reentry == SEG__JR_AFTER)
            put_dur(b, j->reentry_count, j->reentry_unit);
        seg__text_puts(b, ";\n");
    }
    for (uint32_t k = 0; k < j->nvariants; k++) {
        seg__text_puts(b, "  variant ");
        putstr(b, j->variants[k]);
        snprintf(t, sizeof t, " %u;\n", (unsigned)j->shares[k]);
        seg__text_puts(b, t);
    }
    if (j->has_holdout) {
        snprintf(t, sizeof t, "  holdout %u;\n", (unsigned)j->holdout);
        seg__text_puts(b, t);
    }
    if (j->has_goal) {
        seg__text_puts(b, "  goal ");
        put_event(b, &j->goal);
        seg__text_puts(b, ";\n");
    }
    for (uint32_t s = 0; s < j->nstates; s++) {
        const seg__jr_state *st = &j->states[s];
        seg__text_puts(b, "  state ");
        putstr(b, st->name);
        seg__text_puts(b, " {\n");
        if (st->nacts) {
            seg__text_puts(b, "   ");
            put_actions(b, st->acts, st->nacts);
            seg__text_puts(b, ";\n");
        }
        for (uint32_t k = 0; k < st->ntrans; k++) {
            const seg__jr_trans *tr = &st->trans[k];
            seg__text_puts(b, "    ");
            switch (tr->kind) {
            case SEG__JT_ON:
                seg__text_puts(b, "on ");
                put_event(b, &tr->ev);
                break;
            case SEG__JT_AFTER:
                seg__text_puts(b, "after ");
                put_dur(b, tr->count, tr->unit);
                if (tr->since == SEG__JS_PURCHASE)
                    seg__text_puts(b, " since last_purchase");
                break;
            case SEG__JT_WHEN:
                seg__text_puts(b, "when ");
                put_expr(b, tr->cond);
                break;
            default:
                break;
            }
            put_variants(b, tr->variants, tr->nvariants);
            seg__text_puts(b, tr->kind == SEG__JT_NOW ? "-> " : " -> ");
            if (tr->to_exit)
                seg__text_puts(b, "exit");
            else
                putstr(b, tr->target);
            put_actions(b, tr->acts, tr->nacts);
            seg__text_puts(b, ";\n");
        }
        seg__text_puts(b, "  }\n");
    }
    seg__text_puts(b, "}\n");
}

char *seg__jr_print(const seg__alloc *a, const seg__ast *ast, size_t *len_out)
{
    jbuf b = { a, NULL, 0, 0, false };
    seg__text_put(&b, "", 0);
    for (uint32_t k = 0; k < ast->njourneys; k++)
        print_journey(&b, &ast->journeys[k]);
    if (b.oom) {
        seg__free(a, b.p);
        return NULL;
    }
    if (len_out)
        *len_out = b.n;
    return b.p;
}

bool seg__jr_ast_equal(const seg__ast *a, const seg__ast *b)
{
    if (a->njourneys != b->njourneys)
        return false;
    if (!a->njourneys)
        return true;
    char *x = seg__jr_print(&seg__default_alloc, a, NULL);
    char *y = seg__jr_print(&seg__default_alloc, b, NULL);
    bool eq = x && y && strcmp(x, y) == 0;
    seg__free(&seg__default_alloc, x);
    seg__free(&seg__default_alloc, y);
    return eq;
}

/* ---- conditions as hidden segments ---- */

static int add_item(seg__ast *ast, uint32_t *cap, seg__node *cond, const seg__jrast *j,
                    uint32_t k, uint32_t *item_out, seg__sderr *err)
{
    if (ast->nitems == *cap) {
        uint32_t c2 = *cap ? *cap * 2 : 16;
        seg__item *v = seg__pool_alloc(&ast->pool, c2 * sizeof *v);
        if (!v)
            goto nomem;
        if (ast->nitems)
            memcpy(v, ast->items, ast->nitems * sizeof *v);
        ast->items = v;
        *cap = c2;
    }
    if (ast->nitems >= SEG__SD_SEG_MAX) {
        err->code = SEG_ELIMIT;
        err->line = cond->line;
        err->col = cond->col;
        snprintf(err->msg, sizeof err->msg, "more than %u segments and journey conditions",
                 SEG__SD_SEG_MAX);
        return SEG_ELIMIT;
    }
    char name[SEG_ID_MAX + 48];
    /* a name no definition can use (it has spaces) */
    int n = snprintf(name, sizeof name, "journey %.*s condition %u", (int)j->name.n, j->name.p,
                     (unsigned)k);
    char *s = seg__pool_alloc(&ast->pool, (size_t)n + 1);
    seg__rule *r = seg__pool_alloc(&ast->pool, sizeof *r);
    if (!s || !r)
        goto nomem;
    memcpy(s, name, (size_t)n + 1);
    seg__item *it = &ast->items[ast->nitems];
    memset(it, 0, sizeof *it);
    it->kind = SEG__ITEM_SEGMENT;
    it->name.p = s;
    it->name.n = (size_t)n;
    it->line = cond->line;
    it->col = cond->col;
    r->label = it->name;
    r->line = cond->line;
    r->col = cond->col;
    r->cond = cond;
    it->rules = r;
    it->nrules = 1;
    *item_out = ast->nitems++;
    return SEG_OK;
nomem:
    err->code = SEG_ENOMEM;
    err->line = err->col = 1;
    snprintf(err->msg, sizeof err->msg, "out of memory");
    return SEG_ENOMEM;
}

int seg__jr_add_conditions(seg__ast *ast, seg__sderr *err)
{
    uint32_t cap = ast->nitems; /* the items array is full: the next add copies it */
    for (uint32_t i = 0; i < ast->njourneys; i++) {
        seg__jrast *j = &ast->journeys[i];
        uint32_t k = 0;
        int rc = add_item(ast, &cap, j->enter, j, k++, &j->enter_item, err);
        for (uint32_t x = 0; x < j->nexits && rc == SEG_OK; x++)
            if (j->exits[x].kind == SEG__JX_WHEN)
                rc = add_item(ast, &cap, j->exits[x].cond, j, k++, &j->exits[x].cond_item, err);
        for (uint32_t s = 0; s < j->nstates && rc == SEG_OK; s++)
            for (uint32_t t = 0; t < j->states[s].ntrans && rc == SEG_OK; t++) {
                seg__jr_trans *tr = &j->states[s].trans[t];
                if (tr->kind == SEG__JT_WHEN)
                    rc = add_item(ast, &cap, tr->cond, j, k++, &tr->cond_item, err);
            }
        if (rc != SEG_OK)
            return rc;
    }
    return SEG_OK;
}

/* ---- checks that need the database: money in its currency ---- */

int seg__jr_money(const seg__node *n, int exponent, int64_t *out)
{
    int64_t v = n->i;
    int shift = exponent;
    if (n->kind == SEG__N_DEC) {
        int scale = n->scale;
        while (scale > exponent && v % 10 == 0) {
            v /= 10;
            scale--;
        }
        if (scale > exponent)
            return SEG_EINVAL;
        shift = exponent - scale;
    }
    for (int k = 0; k < shift; k++) {
        if (v > INT64_MAX / 10)
            return SEG_ERANGE;
        v *= 10;
    }
    *out = v;
    return SEG_OK;
}

static int check_money(const seg__jr_event *ev, int exponent, seg__sderr *err)
{
    int64_t v;
    if (!ev->min_amount || seg__jr_money(ev->min_amount, exponent, &v) == SEG_OK)
        return SEG_OK;
    err->code = SEG_EINVAL;
    err->line = ev->min_amount->line;
    err->col = ev->min_amount->col;
    snprintf(err->msg, sizeof err->msg,
             "min_amount: not an amount in the database's currency (%d decimals at most)",
             exponent);
    return SEG_EINVAL;
}

int seg__jr_validate(seg_segdef *def, const char *src, size_t len, seg__sderr *err)
{
    seg_segdef *c = NULL;
    int rc = seg__segdef_compile_conds(&c, def->db, src, len, def->extra, def->nextra, err);
    seg_segdef_free(c);
    const seg__ast *ast = &def->ast;
    for (uint32_t i = 0; i < ast->njourneys && rc == SEG_OK; i++) {
        const seg__jrast *j = &ast->journeys[i];
        if (j->has_goal)
            rc = check_money(&j->goal, def->exponent, err);
        for (uint32_t x = 0; x < j->nexits && rc == SEG_OK; x++)
            rc = check_money(&j->exits[x].ev, def->exponent, err);
        for (uint32_t s = 0; s < j->nstates && rc == SEG_OK; s++)
            for (uint32_t t = 0; t < j->states[s].ntrans && rc == SEG_OK; t++)
                rc = check_money(&j->states[s].trans[t].ev, def->exponent, err);
    }
    return rc;
}
