/*
 * The definition language's parser: text to AST, by recursive descent.
 *
 *   file     := item*
 *   item     := 'segment' NAME ':' expr ';'
 *             | 'segment' 'set' NAME '{' (NAME ':' expr ';')* 'else' NAME ';' '}'
 *   expr     := and ('or' and)*
 *   and      := not ('and' not)*
 *   not      := 'not' not | cmp
 *   cmp      := add [ ('=='|'!='|'<'|'<='|'>'|'>=') add
 *                   | ['not'] 'in' '[' add (',' add)* ']'
 *                   | ['not'] 'between' add 'and' add
 *                   | 'is' ['not'] 'null' ]
 *   add      := mul (('+'|'-') mul)*
 *   mul      := unary (('*'|'/') unary)*
 *   unary    := '-' unary | primary
 *   primary  := INT | DECIMAL | DURATION | STRING | 'true' | 'false'
 *             | '(' expr ')' | 'in' '(' NAME ')' | NAME | NAME '(' args ')'
 *   args     := [arg (',' arg)*],  arg := expr | NAME ':' expr
 *
 * Items start with a keyword; new kinds of items (program, tier, journey)
 * will be recognized by their first word at the start of an item, so they
 * do not take names away from existing definitions.
 */
#include "segdef/segdef-private.h"

#include <stdio.h>

/* ---- pool ---- */

struct seg__pool_block {
    struct seg__pool_block *next;
    max_align_t align[];
};

void seg__pool_init(seg__pool *p, const seg__alloc *a)
{
    memset(p, 0, sizeof *p);
    p->alloc = a;
}

void *seg__pool_alloc(seg__pool *p, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    if (!p->blocks || p->cap - p->used < n) {
        size_t cap = n > 8192 ? n : 8192;
        struct seg__pool_block *b = seg__malloc(p->alloc, sizeof *b + cap);
        if (!b)
            return NULL;
        b->next = p->blocks;
        p->blocks = b;
        p->used = 0;
        p->cap = cap;
    }
    void *r = (char *)p->blocks->align + p->used;
    p->used += n;
    memset(r, 0, n);
    return r;
}

void seg__pool_free(seg__pool *p)
{
    struct seg__pool_block *b = p->blocks;
    while (b) {
        struct seg__pool_block *nx = b->next;
        seg__free(p->alloc, b);
        b = nx;
    }
    p->blocks = NULL;
    p->used = p->cap = 0;
}

/* ---- parser state ---- */

typedef struct seg__parser {
    seg__lexer lx;
    seg__tok cur, nxt;
    bool has_nxt;
    seg__ast *ast;
    seg__sderr *err;
    int depth;
} parser;

static int perr(parser *p, uint32_t line, uint32_t col, int code, const char *fmt, ...)
    SEG_PRINTF(5, 6);
static int perr(parser *p, uint32_t line, uint32_t col, int code, const char *fmt, ...)
{
    if (p->err->code != SEG_OK)
        return p->err->code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
    va_end(ap);
    p->err->code = code;
    p->err->line = line;
    p->err->col = col;
    return code;
}

static int lexfail(parser *p)
{
    return perr(p, p->lx.err_line, p->lx.err_col, p->lx.err, "%s", p->lx.msg);
}

static int advance(parser *p)
{
    if (p->has_nxt) {
        p->cur = p->nxt;
        p->has_nxt = false;
        return SEG_OK;
    }
    if (seg__lex_next(&p->lx, &p->cur) != SEG_OK)
        return lexfail(p);
    return SEG_OK;
}

/* The token after cur (read once). */
static int peek(parser *p, const seg__tok **out)
{
    if (!p->has_nxt) {
        if (p->cur.kind == SEG__TK_STR) {
            /* cur's text lives in the lexer's buffer, which the next string
             * would overwrite; no caller peeks past a string */
            *out = NULL;
            return perr(p, p->cur.line, p->cur.col, SEG_ERROR, "internal: peek past a string");
        }
        if (seg__lex_next(&p->lx, &p->nxt) != SEG_OK)
            return lexfail(p);
        p->has_nxt = true;
    }
    *out = &p->nxt;
    return SEG_OK;
}

/* How a token is named in messages. */
static void describe(const seg__tok *t, char *buf, size_t size)
{
    switch (t->kind) {
    case SEG__TK_EOF: snprintf(buf, size, "the end of the text"); break;
    case SEG__TK_STR: snprintf(buf, size, "a string"); break;
    default:
        snprintf(buf, size, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->p);
        break;
    }
}

static int expected(parser *p, const char *what)
{
    char found[64];
    describe(&p->cur, found, sizeof found);
    return perr(p, p->cur.line, p->cur.col, SEG_EPARSE, "expected %s, found %s", what, found);
}

static seg__str pool_str(parser *p, const char *s, size_t n)
{
    char *d = seg__pool_alloc(&p->ast->pool, n + 1);
    if (!d) {
        perr(p, p->cur.line, p->cur.col, SEG_ENOMEM, "out of memory");
        return SEG__STR_NULL;
    }
    memcpy(d, s, n);
    d[n] = '\0';
    seg__str r = { d, n };
    return r;
}

static seg__node *mknode(parser *p, int kind, uint32_t line, uint32_t col, uint32_t nkids)
{
    seg__node *n = seg__pool_alloc(&p->ast->pool, sizeof *n);
    if (n && nkids) {
        n->kids = seg__pool_alloc(&p->ast->pool, nkids * sizeof *n->kids);
        if (!n->kids)
            n = NULL;
    }
    if (!n) {
        perr(p, line, col, SEG_ENOMEM, "out of memory");
        return NULL;
    }
    n->kind = (uint8_t)kind;
    n->line = line;
    n->col = col;
    n->nkids = nkids;
    n->height = 1;
    return n;
}

/* Set a node's height from its kids; fails when too deep. */
static seg__node *finish(parser *p, seg__node *n)
{
    if (!n)
        return NULL;
    uint32_t h = 0;
    for (uint32_t k = 0; k < n->nkids; k++)
        if (n->kids[k]->height > h)
            h = n->kids[k]->height;
    n->height = h + 1;
    if (n->height > SEG__SD_DEPTH_MAX) {
        perr(p, n->line, n->col, SEG_ELIMIT,
             "expression nested too deeply (more than %d levels)", SEG__SD_DEPTH_MAX);
        return NULL;
    }
    return n;
}

static seg__node *binary(parser *p, int kind, int op, const seg__tok *at, seg__node *a,
                         seg__node *b)
{
    seg__node *n = mknode(p, kind, at->line, at->col, 2);
    if (!n)
        return NULL;
    n->op = (uint8_t)op;
    n->kids[0] = a;
    n->kids[1] = b;
    return finish(p, n);
}

/* A growing list of nodes, built in a pool-free temporary array. */
typedef struct nlist {
    seg__node **v;
    uint32_t n, cap;
    const seg__alloc *a;
} nlist;

static bool nlist_push(parser *p, nlist *l, seg__node *x)
{
    if (l->n == SEG__SD_LIST_MAX) {
        perr(p, x->line, x->col, SEG_ELIMIT, "more than %u elements in one list",
             SEG__SD_LIST_MAX);
        return false;
    }
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 8;
        seg__node **v = seg__realloc_array(l->a, l->v, cap, sizeof *v);
        if (!v) {
            perr(p, x->line, x->col, SEG_ENOMEM, "out of memory");
            return false;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return true;
}

static seg__node *from_list(parser *p, int kind, uint32_t line, uint32_t col, nlist *l)
{
    seg__node *n = mknode(p, kind, line, col, l->n);
    if (n)
        memcpy(n->kids, l->v, l->n * sizeof *l->v);
    seg__free(l->a, l->v);
    l->v = NULL;
    return finish(p, n);
}

static seg__node *parse_expr(parser *p);
static seg__node *parse_add(parser *p);

static bool enter(parser *p)
{
    if (++p->depth > SEG__SD_DEPTH_MAX) {
        perr(p, p->cur.line, p->cur.col, SEG_ELIMIT,
             "expression nested too deeply (more than %d levels)", SEG__SD_DEPTH_MAX);
        return false;
    }
    return true;
}

/* '(' args ')' after a function's name; cur is '(' */
static seg__node *parse_call(parser *p, const seg__tok *name)
{
    seg__node *call = NULL;
    nlist pos = { NULL, 0, 0, p->lx.alloc }, named = { NULL, 0, 0, p->lx.alloc };
    seg__str fname = pool_str(p, name->p, name->n);
    uint32_t line = name->line, col = name->col;
    if (!fname.p || advance(p) != SEG_OK)
        goto out;
    if (p->cur.kind != SEG__TK_RPAREN) {
        for (;;) {
            seg__str key = SEG__STR_NULL;
            uint32_t kline = p->cur.line, kcol = p->cur.col;
            if (p->cur.kind == SEG__TK_IDENT) {
                const seg__tok *nx;
                if (peek(p, &nx) != SEG_OK)
                    goto out;
                if (nx->kind == SEG__TK_COLON) {
                    key = pool_str(p, p->cur.p, p->cur.n);
                    if (!key.p || advance(p) != SEG_OK || advance(p) != SEG_OK)
                        goto out;
                    for (uint32_t k = 0; k < named.n; k++)
                        if (seg__str_eq(named.v[k]->key, key.p, key.n)) {
                            perr(p, kline, kcol, SEG_EPARSE,
                                 "argument '%s' given twice in %s(...)", key.p, fname.p);
                            goto out;
                        }
                }
            }
            if (!key.p && named.n) {
                perr(p, kline, kcol, SEG_EPARSE,
                     "in %s(...), arguments without a name come before named ones", fname.p);
                goto out;
            }
            seg__node *arg = parse_expr(p);
            if (!arg)
                goto out;
            if (key.p) {
                /* a named argument is kept as a node with its key */
                arg->key = key;
                if (!nlist_push(p, &named, arg))
                    goto out;
            } else if (!nlist_push(p, &pos, arg)) {
                goto out;
            }
            if (p->cur.kind == SEG__TK_COMMA) {
                if (advance(p) != SEG_OK)
                    goto out;
                continue;
            }
            if (p->cur.kind != SEG__TK_RPAREN) {
                char what[300];
                snprintf(what, sizeof what, "',' or ')' in the arguments of %s(...)", fname.p);
                expected(p, what);
                goto out;
            }
            break;
        }
    }
    if (advance(p) != SEG_OK)
        goto out;
    /* named arguments in the order of their keys: one canonical form */
    for (uint32_t i = 1; i < named.n; i++) {
        seg__node *x = named.v[i];
        uint32_t j = i;
        while (j > 0) {
            seg__str a = named.v[j - 1]->key;
            size_t m = a.n < x->key.n ? a.n : x->key.n;
            int c = memcmp(a.p, x->key.p, m);
            if (c < 0 || (c == 0 && a.n <= x->key.n))
                break;
            named.v[j] = named.v[j - 1];
            j--;
        }
        named.v[j] = x;
    }
    call = mknode(p, SEG__N_CALL, line, col, pos.n + named.n);
    if (call) {
        if (pos.n)
            memcpy(call->kids, pos.v, pos.n * sizeof *pos.v);
        if (named.n)
            memcpy(call->kids + pos.n, named.v, named.n * sizeof *named.v);
        call->npos = pos.n;
        call->s = fname;
        call = finish(p, call);
    }
out:
    seg__free(p->lx.alloc, pos.v);
    seg__free(p->lx.alloc, named.v);
    return call;
}

static seg__node *parse_primary(parser *p)
{
    seg__tok t = p->cur;
    seg__node *n = NULL;
    switch (t.kind) {
    case SEG__TK_INT:
    case SEG__TK_DEC:
    case SEG__TK_DUR:
        n = mknode(p, t.kind == SEG__TK_INT ? SEG__N_INT : t.kind == SEG__TK_DEC ? SEG__N_DEC
                                                                                 : SEG__N_DUR,
                   t.line, t.col, 0);
        if (!n)
            return NULL;
        n->i = t.i;
        n->scale = t.scale;
        n->unit = (uint8_t)t.unit;
        return advance(p) == SEG_OK ? n : NULL;
    case SEG__TK_STR:
        n = mknode(p, SEG__N_STR, t.line, t.col, 0);
        if (!n)
            return NULL;
        n->s = pool_str(p, t.s ? t.s : "", t.sn);
        if (!n->s.p)
            return NULL;
        return advance(p) == SEG_OK ? n : NULL;
    case SEG__TK_TRUE:
    case SEG__TK_FALSE:
        n = mknode(p, SEG__N_BOOL, t.line, t.col, 0);
        if (!n)
            return NULL;
        n->i = t.kind == SEG__TK_TRUE;
        return advance(p) == SEG_OK ? n : NULL;
    case SEG__TK_NULL:
        perr(p, t.line, t.col, SEG_EPARSE,
             "null is not a value here: test for it with 'is null' or 'is not null'");
        return NULL;
    case SEG__TK_LPAREN: {
        if (!enter(p) || advance(p) != SEG_OK)
            return NULL;
        n = parse_expr(p);
        p->depth--;
        if (!n)
            return NULL;
        if (p->cur.kind != SEG__TK_RPAREN) {
            expected(p, "')'");
            return NULL;
        }
        return advance(p) == SEG_OK ? n : NULL;
    }
    case SEG__TK_IN: {
        if (advance(p) != SEG_OK)
            return NULL;
        if (p->cur.kind != SEG__TK_LPAREN) {
            expected(p, "'(' after 'in' (membership of a segment is written in(NAME))");
            return NULL;
        }
        if (advance(p) != SEG_OK)
            return NULL;
        if (p->cur.kind != SEG__TK_IDENT) {
            expected(p, "a segment's name in in(...)");
            return NULL;
        }
        n = mknode(p, SEG__N_MEMBER, p->cur.line, p->cur.col, 0);
        if (!n)
            return NULL;
        n->s = pool_str(p, p->cur.p, p->cur.n);
        if (!n->s.p || advance(p) != SEG_OK)
            return NULL;
        if (p->cur.kind != SEG__TK_RPAREN) {
            expected(p, "')' after the segment's name in in(...)");
            return NULL;
        }
        return advance(p) == SEG_OK ? n : NULL;
    }
    case SEG__TK_IDENT: {
        const seg__tok *nx;
        if (peek(p, &nx) != SEG_OK)
            return NULL;
        if (nx->kind == SEG__TK_LPAREN) {
            if (!enter(p) || advance(p) != SEG_OK)
                return NULL;
            n = parse_call(p, &t);
            p->depth--;
            return n;
        }
        n = mknode(p, SEG__N_NAME, t.line, t.col, 0);
        if (!n)
            return NULL;
        n->s = pool_str(p, t.p, t.n);
        if (!n->s.p)
            return NULL;
        return advance(p) == SEG_OK ? n : NULL;
    }
    default:
        expected(p, "a value");
        return NULL;
    }
}

static seg__node *parse_unary(parser *p)
{
    if (p->cur.kind != SEG__TK_MINUS)
        return parse_primary(p);
    seg__tok t = p->cur;
    if (!enter(p) || advance(p) != SEG_OK)
        return NULL;
    seg__node *x = parse_unary(p);
    p->depth--;
    if (!x)
        return NULL;
    seg__node *n = mknode(p, SEG__N_NEG, t.line, t.col, 1);
    if (!n)
        return NULL;
    n->kids[0] = x;
    return finish(p, n);
}

static seg__node *parse_mul(parser *p)
{
    seg__node *a = parse_unary(p);
    while (a && (p->cur.kind == SEG__TK_STAR || p->cur.kind == SEG__TK_SLASH)) {
        seg__tok t = p->cur;
        if (advance(p) != SEG_OK)
            return NULL;
        seg__node *b = parse_unary(p);
        if (!b)
            return NULL;
        a = binary(p, SEG__N_ARITH, t.kind == SEG__TK_STAR ? SEG__SOP_MUL : SEG__SOP_DIV, &t, a, b);
    }
    return a;
}

static seg__node *parse_add(parser *p)
{
    seg__node *a = parse_mul(p);
    while (a && (p->cur.kind == SEG__TK_PLUS || p->cur.kind == SEG__TK_MINUS)) {
        seg__tok t = p->cur;
        if (advance(p) != SEG_OK)
            return NULL;
        seg__node *b = parse_mul(p);
        if (!b)
            return NULL;
        a = binary(p, SEG__N_ARITH, t.kind == SEG__TK_PLUS ? SEG__SOP_ADD : SEG__SOP_SUB, &t, a, b);
    }
    return a;
}

static int cmp_op(int tk)
{
    switch (tk) {
    case SEG__TK_EQ: return SEG__SOP_EQ;
    case SEG__TK_NE: return SEG__SOP_NE;
    case SEG__TK_LT: return SEG__SOP_LT;
    case SEG__TK_LE: return SEG__SOP_LE;
    case SEG__TK_GT: return SEG__SOP_GT;
    case SEG__TK_GE: return SEG__SOP_GE;
    default: return 0;
    }
}

static bool starts_comparison(int tk)
{
    return cmp_op(tk) || tk == SEG__TK_IN || tk == SEG__TK_BETWEEN || tk == SEG__TK_IS;
}

static seg__node *parse_cmp(parser *p)
{
    seg__node *a = parse_add(p);
    if (!a)
        return NULL;
    seg__tok t = p->cur;
    seg__node *n = NULL;
    bool neg = false;
    if (t.kind == SEG__TK_NOT) {
        const seg__tok *nx;
        if (peek(p, &nx) != SEG_OK)
            return NULL;
        if (nx->kind != SEG__TK_IN && nx->kind != SEG__TK_BETWEEN)
            return a; /* the caller reports what follows */
        neg = true;
        if (advance(p) != SEG_OK)
            return NULL;
    }
    int op = cmp_op(p->cur.kind);
    if (op) {
        if (advance(p) != SEG_OK)
            return NULL;
        seg__node *b = parse_add(p);
        if (!b)
            return NULL;
        n = binary(p, SEG__N_CMP, op, &t, a, b);
    } else if (p->cur.kind == SEG__TK_IN) {
        if (advance(p) != SEG_OK)
            return NULL;
        if (p->cur.kind != SEG__TK_LBRACK) {
            expected(p, "'[' after 'in' (a list is written [a, b, c])");
            return NULL;
        }
        if (!enter(p) || advance(p) != SEG_OK)
            return NULL;
        nlist l = { NULL, 0, 0, p->lx.alloc };
        if (!nlist_push(p, &l, a))
            return NULL;
        if (p->cur.kind == SEG__TK_RBRACK) {
            seg__free(l.a, l.v);
            perr(p, p->cur.line, p->cur.col, SEG_EPARSE, "empty list after 'in'");
            return NULL;
        }
        for (;;) {
            seg__node *x = parse_add(p);
            if (!x || !nlist_push(p, &l, x)) {
                seg__free(l.a, l.v);
                return NULL;
            }
            if (p->cur.kind == SEG__TK_COMMA) {
                if (advance(p) != SEG_OK) {
                    seg__free(l.a, l.v);
                    return NULL;
                }
                continue;
            }
            if (p->cur.kind != SEG__TK_RBRACK) {
                seg__free(l.a, l.v);
                expected(p, "',' or ']' in the list");
                return NULL;
            }
            break;
        }
        p->depth--;
        if (advance(p) != SEG_OK) {
            seg__free(l.a, l.v);
            return NULL;
        }
        n = from_list(p, SEG__N_IN, t.line, t.col, &l);
    } else if (p->cur.kind == SEG__TK_BETWEEN) {
        if (advance(p) != SEG_OK)
            return NULL;
        seg__node *lo = parse_add(p);
        if (!lo)
            return NULL;
        if (p->cur.kind != SEG__TK_AND) {
            expected(p, "'and' between the bounds of 'between'");
            return NULL;
        }
        if (advance(p) != SEG_OK)
            return NULL;
        seg__node *hi = parse_add(p);
        if (!hi)
            return NULL;
        n = mknode(p, SEG__N_BETWEEN, t.line, t.col, 3);
        if (!n)
            return NULL;
        n->kids[0] = a;
        n->kids[1] = lo;
        n->kids[2] = hi;
        n = finish(p, n);
    } else if (p->cur.kind == SEG__TK_IS) {
        if (advance(p) != SEG_OK)
            return NULL;
        if (p->cur.kind == SEG__TK_NOT) {
            neg = true;
            if (advance(p) != SEG_OK)
                return NULL;
        }
        if (p->cur.kind != SEG__TK_NULL) {
            expected(p, "'null' after 'is' (is null, is not null)");
            return NULL;
        }
        if (advance(p) != SEG_OK)
            return NULL;
        n = mknode(p, SEG__N_ISNULL, t.line, t.col, 1);
        if (!n)
            return NULL;
        n->kids[0] = a;
        n = finish(p, n);
    } else {
        return a;
    }
    if (!n)
        return NULL;
    n->neg = neg;
    bool chain = starts_comparison(p->cur.kind);
    if (p->cur.kind == SEG__TK_NOT) {
        const seg__tok *nx;
        if (peek(p, &nx) != SEG_OK)
            return NULL;
        chain = nx->kind == SEG__TK_IN || nx->kind == SEG__TK_BETWEEN;
    }
    if (chain) {
        perr(p, p->cur.line, p->cur.col, SEG_EPARSE,
             "comparisons do not chain: join them with 'and' (a < b and b < c), or "
             "use parentheses");
        return NULL;
    }
    return n;
}

static seg__node *parse_not(parser *p)
{
    if (p->cur.kind != SEG__TK_NOT)
        return parse_cmp(p);
    seg__tok t = p->cur;
    if (!enter(p) || advance(p) != SEG_OK)
        return NULL;
    seg__node *x = parse_not(p);
    p->depth--;
    if (!x)
        return NULL;
    seg__node *n = mknode(p, SEG__N_NOT, t.line, t.col, 1);
    if (!n)
        return NULL;
    n->kids[0] = x;
    return finish(p, n);
}

static seg__node *parse_chain(parser *p, int tk, int kind, seg__node *(*sub)(parser *))
{
    seg__tok first = p->cur;
    seg__node *a = sub(p);
    if (!a || p->cur.kind != tk)
        return a;
    nlist l = { NULL, 0, 0, p->lx.alloc };
    if (!nlist_push(p, &l, a))
        return NULL;
    while (p->cur.kind == tk) {
        if (advance(p) != SEG_OK) {
            seg__free(l.a, l.v);
            return NULL;
        }
        seg__node *b = sub(p);
        if (!b || !nlist_push(p, &l, b)) {
            seg__free(l.a, l.v);
            return NULL;
        }
    }
    return from_list(p, kind, first.line, first.col, &l);
}

static seg__node *parse_and(parser *p)
{
    return parse_chain(p, SEG__TK_AND, SEG__N_AND, parse_not);
}

/* Nesting is counted where it happens: parentheses, calls, lists, 'not'
 * and unary minus each add a level (and report at their own position). */
static seg__node *parse_expr(parser *p)
{
    return parse_chain(p, SEG__TK_OR, SEG__N_OR, parse_and);
}

/* After an expression: what may follow, or a message that helps. */
static int expect_end(parser *p, int tk, const char *what)
{
    if (p->cur.kind == tk)
        return advance(p);
    if (p->cur.kind == SEG__TK_NOT)
        return perr(p, p->cur.line, p->cur.col, SEG_EPARSE,
                    "'not' after a value must be followed by 'in' or 'between'");
    return expected(p, what);
}

/* ---- for the parsers of other modules' items (segdef-private.h) ---- */

const seg__tok *seg__sdp_cur(seg__parser *p) { return &p->cur; }
int seg__sdp_next(seg__parser *p) { return advance(p); }
int seg__sdp_peek(seg__parser *p, const seg__tok **out) { return peek(p, out); }
seg__node *seg__sdp_expr(seg__parser *p) { return parse_expr(p); }
int seg__sdp_expected(seg__parser *p, const char *what) { return expected(p, what); }
seg__ast *seg__sdp_ast(seg__parser *p) { return p->ast; }
seg__str seg__sdp_str(seg__parser *p, const char *s, size_t n) { return pool_str(p, s, n); }
int seg__sdp_error(seg__parser *p, uint32_t line, uint32_t col, int code, const char *fmt, ...)
{
    if (p->err->code != SEG_OK)
        return p->err->code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
    va_end(ap);
    p->err->code = code;
    p->err->line = line;
    p->err->col = col;
    return code;
}

static int parse_rule_cond(parser *p, seg__rule *r, const char *kind, const char *name)
{
    char what[400];
    r->cond = parse_expr(p);
    if (!r->cond)
        return p->err->code;
    snprintf(what, sizeof what, "';' after the condition of %s '%s'", kind, name);
    return expect_end(p, SEG__TK_SEMI, what);
}

static int parse_item(parser *p, seg__item *it)
{
    seg__tok kw = p->cur;
    it->line = kw.line;
    it->col = kw.col;
    int rc = advance(p);
    if (rc != SEG_OK)
        return rc;
    if (p->cur.kind == SEG__TK_SET) {
        it->kind = SEG__ITEM_SET;
        if ((rc = advance(p)) != SEG_OK)
            return rc;
        if (p->cur.kind != SEG__TK_IDENT)
            return expected(p, "the set's name after 'segment set'");
        it->name = pool_str(p, p->cur.p, p->cur.n);
        if (!it->name.p || (rc = advance(p)) != SEG_OK)
            return p->err->code;
        if (p->cur.kind != SEG__TK_LBRACE) {
            char what[400];
            snprintf(what, sizeof what, "'{' after the name of set '%s'", it->name.p);
            return expected(p, what);
        }
        if ((rc = advance(p)) != SEG_OK)
            return rc;
        seg__rule *rules = NULL;
        uint32_t n = 0, cap = 0;
        for (;;) {
            if (p->cur.kind == SEG__TK_RBRACE || p->cur.kind == SEG__TK_EOF) {
                rc = perr(p, p->cur.line, p->cur.col, SEG_EPARSE,
                          "set '%s' has no 'else' rule: a set gives every customer a label, so "
                          "its last rule is 'else LABEL;'", it->name.p);
                break;
            }
            if (n == cap) {
                uint32_t c2 = cap ? cap * 2 : 8;
                seg__rule *r2 = seg__pool_alloc(&p->ast->pool, c2 * sizeof *r2);
                if (!r2) {
                    rc = perr(p, p->cur.line, p->cur.col, SEG_ENOMEM, "out of memory");
                    break;
                }
                if (n)
                    memcpy(r2, rules, n * sizeof *r2);
                rules = r2;
                cap = c2;
            }
            if (n >= SEG__SD_SEG_MAX) {
                rc = perr(p, p->cur.line, p->cur.col, SEG_ELIMIT,
                          "set '%s' has more than %u rules", it->name.p, SEG__SD_SEG_MAX);
                break;
            }
            seg__rule *r = &rules[n++];
            bool is_else = p->cur.kind == SEG__TK_ELSE;
            if (is_else && (rc = advance(p)) != SEG_OK)
                break;
            if (p->cur.kind != SEG__TK_IDENT) {
                char what[400];
                snprintf(what, sizeof what, is_else ? "a label after 'else' in set '%s'"
                                                    : "a label (or 'else') in set '%s'",
                         it->name.p);
                rc = expected(p, what);
                break;
            }
            r->line = p->cur.line;
            r->col = p->cur.col;
            r->label = pool_str(p, p->cur.p, p->cur.n);
            if (!r->label.p || (rc = advance(p)) != SEG_OK) {
                rc = p->err->code;
                break;
            }
            if (is_else) {
                char what[400];
                snprintf(what, sizeof what, "';' after 'else %s'", r->label.p);
                if ((rc = expect_end(p, SEG__TK_SEMI, what)) != SEG_OK)
                    break;
                if (p->cur.kind != SEG__TK_RBRACE) {
                    rc = perr(p, p->cur.line, p->cur.col, SEG_EPARSE,
                              "the 'else' rule must be the last rule of set '%s' (expected "
                              "'}')", it->name.p);
                    break;
                }
                rc = advance(p);
                break;
            }
            if (p->cur.kind != SEG__TK_COLON) {
                char what[400];
                snprintf(what, sizeof what, "':' after the label '%s'", r->label.p);
                rc = expected(p, what);
                break;
            }
            if ((rc = advance(p)) != SEG_OK ||
                (rc = parse_rule_cond(p, r, "label", r->label.p)) != SEG_OK)
                break;
        }
        it->rules = rules;
        it->nrules = n;
        return rc;
    }
    it->kind = SEG__ITEM_SEGMENT;
    if (p->cur.kind != SEG__TK_IDENT)
        return expected(p, "the segment's name after 'segment'");
    it->name = pool_str(p, p->cur.p, p->cur.n);
    it->rules = seg__pool_alloc(&p->ast->pool, sizeof *it->rules);
    if (!it->name.p || !it->rules)
        return perr(p, p->cur.line, p->cur.col, SEG_ENOMEM, "out of memory");
    it->nrules = 1;
    it->rules[0].label = it->name;
    it->rules[0].line = p->cur.line;
    it->rules[0].col = p->cur.col;
    if ((rc = advance(p)) != SEG_OK)
        return rc;
    if (p->cur.kind != SEG__TK_COLON) {
        char what[400];
        snprintf(what, sizeof what, "':' after the segment's name '%s'", it->name.p);
        return expected(p, what);
    }
    if ((rc = advance(p)) != SEG_OK)
        return rc;
    return parse_rule_cond(p, &it->rules[0], "segment", it->name.p);
}

int seg__sd_parse(seg__ast *ast, const char *src, size_t len, seg__sderr *err)
{
    parser p;
    memset(&p, 0, sizeof p);
    memset(err, 0, sizeof *err);
    p.ast = ast;
    p.err = err;
    ast->items = NULL;
    ast->nitems = 0;
    ast->journeys = NULL;
    ast->njourneys = ast->capjourneys = 0;
    if (len > SEG__SD_SRC_MAX)
        return perr(&p, 1, 1, SEG_ELIMIT, "definition text longer than %u bytes",
                    SEG__SD_SRC_MAX);
    seg__lex_init(&p.lx, ast->pool.alloc, src, len);
    uint32_t cap = 0;
    int rc = advance(&p);
    while (rc == SEG_OK && p.cur.kind != SEG__TK_EOF) {
        if (p.cur.kind == SEG__TK_IDENT && seg__str_eq((seg__str){ p.cur.p, p.cur.n }, "journey", 7)) {
            rc = seg__jr_parse(&p); /* lib/journey/parse.c */
            continue;
        }
        if (p.cur.kind == SEG__TK_IDENT && !p.has_nxt &&
            seg__str_eq((seg__str){ p.cur.p, p.cur.n }, "program", 7)) {
            rc = seg__loyalty_parse(&p.lx, &p.cur, ast, err); /* a loyalty program */
            continue;
        }
        if (p.cur.kind != SEG__TK_SEGMENT) {
            if (p.cur.kind == SEG__TK_IDENT)
                rc = perr(&p, p.cur.line, p.cur.col, SEG_EPARSE,
                          "unknown item '%.*s': a definition holds items 'segment NAME: "
                          "CONDITION;', 'segment set NAME { ... }', 'journey NAME { ... }' and "
                          "'program NAME { ... }'",
                          (int)(p.cur.n > 40 ? 40 : p.cur.n), p.cur.p);
            else
                rc = expected(&p, "'segment' at the start of an item");
            break;
        }
        if (ast->nitems == cap) {
            uint32_t c2 = cap ? cap * 2 : 16;
            seg__item *v = seg__pool_alloc(&ast->pool, c2 * sizeof *v);
            if (!v) {
                rc = perr(&p, p.cur.line, p.cur.col, SEG_ENOMEM, "out of memory");
                break;
            }
            if (ast->nitems)
                memcpy(v, ast->items, ast->nitems * sizeof *v);
            ast->items = v;
            cap = c2;
        }
        if (ast->nitems >= SEG__SD_SEG_MAX) {
            rc = perr(&p, p.cur.line, p.cur.col, SEG_ELIMIT, "more than %u items",
                      SEG__SD_SEG_MAX);
            break;
        }
        rc = parse_item(&p, &ast->items[ast->nitems++]);
    }
    seg__lex_free(&p.lx);
    if (rc != SEG_OK && err->code == SEG_OK)
        perr(&p, p.cur.line, p.cur.col, rc, "%s", seg_errstr(rc));
    return rc == SEG_OK ? SEG_OK : err->code;
}

/* ---- equality ---- */

static bool str_same(seg__str a, seg__str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static bool node_equal(const seg__node *a, const seg__node *b)
{
    if (!a || !b)
        return a == b;
    if (a->kind != b->kind || a->op != b->op || a->neg != b->neg || a->nkids != b->nkids ||
        a->npos != b->npos || !str_same(a->key, b->key))
        return false;
    switch (a->kind) {
    case SEG__N_INT: case SEG__N_BOOL:
        if (a->i != b->i) return false;
        break;
    case SEG__N_DEC:
        if (a->i != b->i || a->scale != b->scale) return false;
        break;
    case SEG__N_DUR:
        if (a->i != b->i || a->unit != b->unit) return false;
        break;
    case SEG__N_STR: case SEG__N_NAME: case SEG__N_CALL: case SEG__N_MEMBER:
        if (!str_same(a->s, b->s)) return false;
        break;
    default:
        break;
    }
    for (uint32_t k = 0; k < a->nkids; k++)
        if (!node_equal(a->kids[k], b->kids[k]))
            return false;
    return true;
}

bool seg__sd_ast_equal(const seg__ast *a, const seg__ast *b)
{
    if (a->nitems != b->nitems || !seg__jr_ast_equal(a, b))
        return false;
    for (uint32_t i = 0; i < a->nitems; i++) {
        const seg__item *x = &a->items[i], *y = &b->items[i];
        if (x->kind != y->kind || !str_same(x->name, y->name) || x->nrules != y->nrules)
            return false;
        for (uint32_t r = 0; r < x->nrules; r++)
            if (!str_same(x->rules[r].label, y->rules[r].label) ||
                !node_equal(x->rules[r].cond, y->rules[r].cond))
                return false;
    }
    return true;
}
