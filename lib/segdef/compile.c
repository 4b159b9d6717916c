/*
 * Code generation: each rule's checked condition becomes a short program of
 * 32-bit words for the stack machine in vm.c.  `and`/`or` short-circuit
 * through jumps; a comparison of a value with a constant is one fused
 * instruction (the most common shape: orders >= 5).
 */
#include "segdef/segdef-private.h"

#include <stdio.h>

typedef struct gen {
    seg_segdef *def;
    seg__sderr *err;
    uint32_t *code;
    size_t n, cap;
    uint32_t nconsts, capconsts;
    uint32_t depth, max_depth;
    size_t prog_start;
    bool oom;
} gen;

static void emit(gen *g, uint32_t w)
{
    if (g->oom)
        return;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 256;
        uint32_t *p = seg__realloc_array(&g->def->db->alloc, g->code, cap, sizeof *p);
        if (!p) {
            g->oom = true;
            return;
        }
        g->code = p;
        g->cap = cap;
    }
    g->code[g->n++] = w;
}

static void push(gen *g, int k)
{
    g->depth = (uint32_t)((int)g->depth + k);
    if (g->depth > g->max_depth)
        g->max_depth = g->depth;
}

static uint32_t add_const(gen *g, const seg__val *v)
{
    seg_segdef *d = g->def;
    if (g->oom)
        return 0;
    if (d->nconsts == g->capconsts) {
        uint32_t cap = g->capconsts ? g->capconsts * 2 : 32;
        seg__val *p = seg__realloc_array(&d->db->alloc, d->consts, cap, sizeof *p);
        if (!p) {
            g->oom = true;
            return 0;
        }
        d->consts = p;
        g->capconsts = cap;
    }
    d->consts[d->nconsts] = *v;
    return d->nconsts++;
}

static seg__val const_of(const seg__node *n)
{
    seg__val v;
    memset(&v, 0, sizeof v);
    if (n->type == SEG__T_NUM) {
        v.u.d = n->cd;
    } else if (n->type == SEG__T_STR) {
        v.u.s = n->s.p;
        v.n = (uint32_t)n->s.n;
    } else {
        v.u.i = n->ci;
    }
    return v;
}

static bool is_value(const seg__node *n)
{
    return (n->kind == SEG__N_NAME || (n->kind == SEG__N_CALL && n->mode == SEG__FN_VALUE)) &&
           !n->conv;
}

static int swap_op(int op)
{
    switch (op) {
    case SEG__SOP_LT: return SEG__SOP_GT;
    case SEG__SOP_LE: return SEG__SOP_GE;
    case SEG__SOP_GT: return SEG__SOP_LT;
    case SEG__SOP_GE: return SEG__SOP_LE;
    default: return op;
    }
}

/* the type a node has on the stack (after its conversion) */
static int stack_type(const seg__node *n)
{
    return n->conv ? SEG__T_NUM : n->type;
}

static void gen_node(gen *g, const seg__node *n);

/* A rough cost of evaluating a node for one customer: reading an aggregate
 * or a membership is cheap, a windowed measure a little more, an attribute
 * or consent costs a lookup in the customer's attribute list (often a
 * cache miss).  The terms of `and`/`or` are emitted cheapest first: they
 * have no side effects and null counts as false, so the order does not
 * change the result, only how soon it is known. */
static uint32_t node_cost(const seg_segdef *d, const seg__node *n)
{
    if (n->isconst)
        return 0;
    uint32_t c = 0;
    switch (n->kind) {
    case SEG__N_NAME:
        return 1;
    case SEG__N_MEMBER:
        return 1;
    case SEG__N_CALL:
        if (n->mode == SEG__FN_VALUE) {
            uint32_t f = d->slots[n->slot].prov->flags;
            return (f & SEG__PV_ATTRS) ? 8 : (f & SEG__PV_EVENTS) ? 2 : 1;
        }
        c = 2;
        break;
    default:
        break;
    }
    for (uint32_t k = 0; k < n->nkids; k++) {
        uint32_t x = node_cost(d, n->kids[k]);
        c = c + x < c ? UINT32_MAX : c + x;
    }
    return c;
}

/* A term of a branch-free and/or: a cheap value (cost 1 or 2) compared
 * with a constant, as int64.  Fills up to two (slot, op, constant node)
 * triples (a `between` inside an `and` is two) and returns how many, or 0
 * when the node is not such a term. */
typedef struct term { uint32_t slot, op; const seg__node *k; } term;

static bool int_like(int t)
{
    return t == SEG__T_INT || t == SEG__T_MONEY || t == SEG__T_DUR || t == SEG__T_TIME ||
           t == SEG__T_BOOL;
}

static int simple_term(const gen *g, const seg__node *n, bool in_and, term out[2])
{
    if (n->kind == SEG__N_CMP) {
        const seg__node *a = n->kids[0], *b = n->kids[1];
        int op = n->op;
        if (a->isconst) {
            const seg__node *x = a;
            a = b;
            b = x;
            op = swap_op(op);
        }
        if (!is_value(a) || !b->isconst || !int_like(a->type) ||
            node_cost(g->def, a) > 2)
            return 0;
        out[0].slot = a->slot;
        out[0].op = (uint32_t)op;
        out[0].k = b;
        return 1;
    }
    if (n->kind == SEG__N_BETWEEN && in_and && !n->neg) {
        const seg__node *x = n->kids[0];
        if (!is_value(x) || !n->kids[1]->isconst || !n->kids[2]->isconst ||
            !int_like(x->type) || node_cost(g->def, x) > 2)
            return 0;
        out[0].slot = out[1].slot = x->slot;
        out[0].op = SEG__SOP_GE;
        out[0].k = n->kids[1];
        out[1].op = SEG__SOP_LE;
        out[1].k = n->kids[2];
        return 2;
    }
    return 0;
}

static void gen_kid(gen *g, const seg__node *n)
{
    gen_node(g, n);
}

static void gen_node(gen *g, const seg__node *n)
{
    if (n->isconst) {
        seg__val v = const_of(n);
        emit(g, SEG__BC_CONST);
        emit(g, add_const(g, &v));
        push(g, 1);
        return;
    }
    switch (n->kind) {
    case SEG__N_AND:
    case SEG__N_OR: {
        size_t *patch = NULL;
        uint32_t np = 0;
        const seg__alloc *a = &g->def->db->alloc;
        patch = seg__calloc(a, n->nkids, sizeof *patch);
        uint32_t *ord = seg__calloc(a, n->nkids, sizeof *ord);
        uint32_t *cost = seg__calloc(a, n->nkids, sizeof *cost);
        if (!patch || !ord || !cost) {
            seg__free(a, patch);
            seg__free(a, ord);
            seg__free(a, cost);
            g->oom = true;
            return;
        }
        for (uint32_t k = 0; k < n->nkids; k++) {
            cost[k] = node_cost(g->def, n->kids[k]);
            uint32_t j = k;
            while (j > 0 && cost[ord[j - 1]] > cost[k]) {
                ord[j] = ord[j - 1];
                j--;
            }
            ord[j] = k;
        }
        /* the cheap comparisons first, as one branch-free instruction */
        uint32_t first = 0, nterms = 0;
        term t2[2];
        while (first < n->nkids && simple_term(g, n->kids[ord[first]], n->kind == SEG__N_AND, t2))
            nterms += (uint32_t)simple_term(g, n->kids[ord[first++]], n->kind == SEG__N_AND, t2);
        if (first >= 2) {
            emit(g, n->kind == SEG__N_AND ? SEG__BC_ALLI : SEG__BC_ANYI);
            emit(g, nterms);
            for (uint32_t k = 0; k < first; k++) {
                int m = simple_term(g, n->kids[ord[k]], n->kind == SEG__N_AND, t2);
                for (int j = 0; j < m; j++) {
                    seg__val v = const_of(t2[j].k);
                    emit(g, t2[j].slot);
                    emit(g, t2[j].op);
                    emit(g, add_const(g, &v));
                }
            }
            push(g, 1);
            if (first < n->nkids) {
                emit(g, n->kind == SEG__N_AND ? SEG__BC_JFK : SEG__BC_JTK);
                patch[np++] = g->n;
                emit(g, 0);
                push(g, -1);
            }
        } else {
            first = 0;
        }
        for (uint32_t k = first; k < n->nkids; k++) {
            gen_kid(g, n->kids[ord[k]]);
            if (k + 1 < n->nkids) {
                emit(g, n->kind == SEG__N_AND ? SEG__BC_JFK : SEG__BC_JTK);
                patch[np++] = g->n;
                emit(g, 0);
                push(g, -1); /* when it falls through, the value is popped */
            }
        }
        for (uint32_t k = 0; k < np; k++)
            if (!g->oom)
                g->code[patch[k]] = (uint32_t)(g->n - g->prog_start);
        seg__free(a, patch);
        seg__free(a, ord);
        seg__free(a, cost);
        break;
    }
    case SEG__N_NOT:
        gen_kid(g, n->kids[0]);
        emit(g, SEG__BC_NOT);
        break;
    case SEG__N_CMP: {
        const seg__node *a = n->kids[0], *b = n->kids[1];
        int t = stack_type(a);
        int op = n->op;
        if (is_value(b) && b->isconst == 0 && a->isconst) {
            const seg__node *x = a;
            a = b;
            b = x;
            op = swap_op(op);
            t = stack_type(a);
        }
        if (is_value(a) && b->isconst && t != SEG__T_STR) {
            seg__val v = const_of(b);
            emit(g, t == SEG__T_NUM ? SEG__BC_LCMPD : SEG__BC_LCMPI);
            emit(g, a->slot);
            emit(g, (uint32_t)op);
            emit(g, add_const(g, &v));
            push(g, 1);
            break;
        }
        gen_kid(g, a);
        gen_kid(g, b);
        emit(g, t == SEG__T_NUM ? SEG__BC_CMPD : t == SEG__T_STR ? SEG__BC_CMPS : SEG__BC_CMPI);
        emit(g, (uint32_t)op);
        push(g, -1);
        break;
    }
    case SEG__N_IN: {
        gen_kid(g, n->kids[0]);
        int t = stack_type(n->kids[0]);
        uint32_t first = 0;
        for (uint32_t k = 1; k < n->nkids; k++) {
            seg__val v = const_of(n->kids[k]);
            uint32_t idx = add_const(g, &v);
            if (k == 1)
                first = idx;
        }
        emit(g, t == SEG__T_NUM ? SEG__BC_IND : t == SEG__T_STR ? SEG__BC_INS : SEG__BC_INI);
        emit(g, first);
        emit(g, n->nkids - 1);
        emit(g, n->neg);
        break;
    }
    case SEG__N_BETWEEN: {
        int t = stack_type(n->kids[0]);
        for (uint32_t k = 0; k < 3; k++)
            gen_kid(g, n->kids[k]);
        emit(g, t == SEG__T_NUM ? SEG__BC_BETWEEND
                : t == SEG__T_STR ? SEG__BC_BETWEENS : SEG__BC_BETWEENI);
        emit(g, n->neg);
        push(g, -2);
        break;
    }
    case SEG__N_ISNULL:
        gen_kid(g, n->kids[0]);
        emit(g, SEG__BC_ISNULL);
        emit(g, n->neg);
        break;
    case SEG__N_ARITH: {
        gen_kid(g, n->kids[0]);
        gen_kid(g, n->kids[1]);
        static const uint32_t iops[] = { SEG__BC_ADDI, SEG__BC_SUBI, SEG__BC_MULI, SEG__BC_NOP };
        static const uint32_t dops[] = { SEG__BC_ADDD, SEG__BC_SUBD, SEG__BC_MULD, SEG__BC_DIVD };
        uint32_t k = (uint32_t)(n->op - SEG__SOP_ADD);
        emit(g, n->mode == SEG__AM_I ? iops[k] : dops[k]);
        if (n->mode == SEG__AM_D2I)
            emit(g, SEG__BC_D2I);
        push(g, -1);
        break;
    }
    case SEG__N_NEG:
        gen_kid(g, n->kids[0]);
        emit(g, n->type == SEG__T_NUM ? SEG__BC_NEGD : SEG__BC_NEGI);
        break;
    case SEG__N_NAME:
        emit(g, SEG__BC_LOAD);
        emit(g, n->slot);
        push(g, 1);
        break;
    case SEG__N_CALL:
        switch (n->mode) {
        case SEG__FN_VALUE:
            emit(g, SEG__BC_LOAD);
            emit(g, n->slot);
            push(g, 1);
            break;
        case SEG__FN_STARTS:
        case SEG__FN_ENDS:
        case SEG__FN_CONTAINS:
            gen_kid(g, n->kids[0]);
            gen_kid(g, n->kids[1]);
            emit(g, n->mode == SEG__FN_STARTS ? SEG__BC_PREFIX
                    : n->mode == SEG__FN_ENDS ? SEG__BC_SUFFIX : SEG__BC_CONTAINS);
            push(g, -1);
            break;
        case SEG__FN_COALESCE:
            gen_kid(g, n->kids[0]);
            gen_kid(g, n->kids[1]);
            emit(g, SEG__BC_COALESCE);
            push(g, -1);
            break;
        default:
            break;
        }
        break;
    case SEG__N_MEMBER:
        emit(g, SEG__BC_MEMBER);
        emit(g, n->slot);
        push(g, 1);
        break;
    default:
        break;
    }
    if (n->conv) {
        emit(g, SEG__BC_I2D);
        emit(g, 0);
    }
}

int seg__sd_codegen(seg_segdef *d, seg__sderr *err)
{
    const seg__alloc *a = &d->db->alloc;
    gen g;
    memset(&g, 0, sizeof g);
    g.def = d;
    g.err = err;
    /* offsets first, pointers once the code array stops moving */
    size_t *starts = NULL;
    size_t nrules = 0;
    for (uint32_t i = 0; i < d->nitems; i++)
        nrules += d->items[i].nrules;
    starts = seg__calloc(a, nrules + 1, sizeof *starts);
    if (!starts)
        goto nomem;
    size_t r = 0;
    for (uint32_t i = 0; i < d->nitems; i++) {
        const seg__item *it = &d->ast.items[i];
        seg__citem *ci = &d->items[i];
        ci->progs = seg__calloc(a, ci->nrules + 1, sizeof *ci->progs);
        if (!ci->progs)
            goto nomem;
        for (uint32_t k = 0; k < it->nrules; k++, r++) {
            starts[r] = g.n;
            if (!it->rules[k].cond)
                continue;
            g.prog_start = g.n;
            g.depth = 0;
            gen_node(&g, it->rules[k].cond);
            emit(&g, SEG__BC_RET);
            ci->progs[k].n = (uint32_t)(g.n - g.prog_start);
        }
    }
    /* the customer program: every item in evaluation order */
    size_t cstart = g.n;
    g.prog_start = cstart;
    for (uint32_t o = 0; o < d->nitems; o++) {
        uint32_t i = d->order[o];
        const seg__item *it = &d->ast.items[i];
        const seg__citem *ci = &d->items[i];
        g.depth = 0;
        if (it->kind == SEG__ITEM_SEGMENT) {
            gen_node(&g, it->rules[0].cond);
            emit(&g, SEG__BC_STORE);
            emit(&g, ci->first_seg);
            continue;
        }
        emit(&g, SEG__BC_CLR);
        emit(&g, ci->first_seg);
        emit(&g, ci->nrules);
        size_t *to_end = seg__calloc(a, ci->nrules + 1, sizeof *to_end);
        if (!to_end)
            goto nomem;
        uint32_t nend = 0;
        for (uint32_t k = 0; k + 1 < it->nrules; k++) {
            g.depth = 0;
            gen_node(&g, it->rules[k].cond);
            emit(&g, SEG__BC_JPOPF);
            size_t next = g.n;
            emit(&g, 0);
            emit(&g, SEG__BC_SET1);
            emit(&g, ci->first_seg + k);
            emit(&g, SEG__BC_JMP);
            to_end[nend++] = g.n;
            emit(&g, 0);
            if (!g.oom)
                g.code[next] = (uint32_t)(g.n - cstart);
        }
        emit(&g, SEG__BC_SET1);
        emit(&g, ci->first_seg + ci->nrules - 1);
        for (uint32_t k = 0; k < nend && !g.oom; k++)
            g.code[to_end[k]] = (uint32_t)(g.n - cstart);
        seg__free(a, to_end);
    }
    emit(&g, SEG__BC_HALT);
    /* the block program: the same, with sets as lane masks */
    size_t bstart = g.n;
    g.prog_start = bstart;
    for (uint32_t o = 0; o < d->nitems; o++) {
        uint32_t i = d->order[o];
        const seg__item *it = &d->ast.items[i];
        const seg__citem *ci = &d->items[i];
        g.depth = 0;
        if (it->kind == SEG__ITEM_SEGMENT) {
            gen_node(&g, it->rules[0].cond);
            emit(&g, SEG__BC_STORE);
            emit(&g, ci->first_seg);
            continue;
        }
        emit(&g, SEG__BC_SETB_BEGIN);
        for (uint32_t k = 0; k + 1 < it->nrules; k++) {
            g.depth = 0;
            gen_node(&g, it->rules[k].cond);
            emit(&g, SEG__BC_SETB_RULE);
            emit(&g, ci->first_seg + k);
        }
        emit(&g, SEG__BC_SETB_ELSE);
        emit(&g, ci->first_seg + ci->nrules - 1);
    }
    emit(&g, SEG__BC_HALT);
    if (g.oom)
        goto nomem;
    d->code = g.code;
    d->ncode = g.n;
    d->max_stack = g.max_depth + 1;
    r = 0;
    for (uint32_t i = 0; i < d->nitems; i++)
        for (uint32_t k = 0; k < d->items[i].nrules; k++, r++)
            if (d->items[i].progs[k].n)
                d->items[i].progs[k].code = d->code + starts[r];
    d->cprog.code = d->code + cstart;
    d->cprog.n = (uint32_t)(bstart - cstart);
    d->bprog.code = d->code + bstart;
    d->bprog.n = (uint32_t)(g.n - bstart);
    seg__free(a, starts);
    return SEG_OK;
nomem:
    seg__free(a, starts);
    seg__free(a, g.code);
    err->code = SEG_ENOMEM;
    err->line = err->col = 1;
    snprintf(err->msg, sizeof err->msg, "out of memory");
    return SEG_ENOMEM;
}
