/*
 * The block machine: the customer program run for up to 64 customers at
 * once (one "lane" each), used when every customer is evaluated.
 *
 * Each instruction works on whole columns (a value per lane and a mask of
 * null lanes), so dispatching an instruction, fetching its operands and
 * computing a value's column for all lanes (one provider call per lane in a
 * tight loop, always to the same function) cost once per block instead of
 * once per customer.  The results are the scalar machine's (vm.c), lane by
 * lane:
 *
 * - `and`/`or` evaluate every term for every lane (no side effects), and
 *   skip the rest only when every lane is decided; a pending entry per open
 *   chain remembers the lanes still undecided, and is applied where the
 *   chain's jumps land (the value there is the last term's, null included,
 *   on the undecided lanes, as in the scalar machine);
 * - a set's rules hand labels to the lanes that have none yet.
 *
 * Lanes outside the block's valid mask hold no customer: their values are
 * never looked at.
 */
#include "segdef/segdef-private.h"

#include <math.h>

/* ---- state ---- */

int seg__block_init(seg__run *run)
{
    const seg_segdef *d = run->def;
    const seg__alloc *a = &run->db->alloc;
    seg__block *b = seg__calloc(a, 1, sizeof *b);
    if (!b)
        return SEG_ENOMEM;
    run->blk = b;
    b->stack = seg__calloc(a, (size_t)d->max_stack + 1, sizeof *b->stack);
    b->sp = seg__calloc(a, (size_t)d->max_stack + 1, sizeof *b->sp);
    b->slots = seg__calloc(a, (size_t)d->nslots + 1, sizeof *b->slots);
    b->stamp = seg__calloc(a, (size_t)d->nslots + 1, sizeof *b->stamp);
    b->member = seg__calloc(a, (size_t)d->nsegs + 1, sizeof *b->member);
    b->bytes = seg__calloc(a, (size_t)d->nsegs * SEG__LANES + 1, 1);
    if (!b->stack || !b->sp || !b->slots || !b->stamp || !b->member || !b->bytes)
        return SEG_ENOMEM;
    b->epoch = 0;
    return SEG_OK;
}

void seg__block_free(seg__run *run)
{
    seg__block *b = run->blk;
    if (!b)
        return;
    const seg__alloc *a = &run->db->alloc;
    seg__free(a, b->stack);
    seg__free(a, b->sp);
    seg__free(a, b->slots);
    seg__free(a, b->stamp);
    seg__free(a, b->member);
    seg__free(a, b->bytes);
    seg__free(a, b);
    run->blk = NULL;
}

/* ---- columns ---- */

/* A value's column for this block: one provider call per valid lane. */
static const seg__col *slot_col(seg__run *run, seg__block *b, uint32_t slot)
{
    seg__col *c = &b->slots[slot];
    if (b->stamp[slot] == b->epoch)
        return c;
    const seg__slot *sl = &run->def->slots[slot];
    if (sl->prov->col) {
        sl->prov->col(run, b, sl, c);
        c->is_mask = 0;
        b->stamp[slot] = b->epoch;
        return c;
    }
    void (*get)(const seg__run *, seg__cctx *, const seg__slot *, seg__val *) = sl->prov->get;
    uint64_t null = 0;
    for (uint32_t l = 0; l < b->nlanes; l++) {
        if (!((b->valid >> l) & 1))
            continue;
        seg__val v;
        get(run, &b->cc[l], sl, &v);
        c->v[l].i = v.u.i;
        c->n[l] = v.n;
        null |= (uint64_t)(v.null != 0) << l;
    }
    c->null = null;
    c->is_mask = 0;
    b->stamp[slot] = b->epoch;
    return c;
}

/* lanes where a bool column is true (and not null) */
static inline uint64_t truth(const seg__block *b, const seg__col *c)
{
    if (c->is_mask)
        return c->mask & b->valid;
    uint64_t m = 0;
    for (uint32_t l = 0; l < b->nlanes; l++)
        m |= (uint64_t)(c->v[l].i != 0) << l;
    return m & ~c->null & b->valid;
}

/* a bool column held as a mask */
static inline void from_mask(const seg__block *b, seg__col *c, uint64_t m)
{
    (void)b;
    c->is_mask = 1;
    c->mask = m;
    c->null = 0;
}

/* the lanes' values of a column (a mask spelled out as 0/1) */
static inline const seg__col *lanes(const seg__block *b, seg__col *c)
{
    if (c->is_mask) {
        for (uint32_t l = 0; l < b->nlanes; l++)
            c->v[l].i = (int64_t)((c->mask >> l) & 1);
        c->null = 0;
        c->is_mask = 0;
    }
    return c;
}

static inline int cmp_i(int64_t a, int64_t b) { return (a > b) - (a < b); }
static inline int cmp_d(double a, double b) { return (a > b) - (a < b); }

static int cmp_s(const char *a, uint32_t an, const char *b, uint32_t bn)
{
    uint32_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return (an > bn) - (an < bn);
}

static const uint8_t op_mask[] = {
    [SEG__SOP_EQ] = 2, [SEG__SOP_NE] = 5, [SEG__SOP_LT] = 1,
    [SEG__SOP_LE] = 3, [SEG__SOP_GT] = 4, [SEG__SOP_GE] = 6,
};

static inline uint64_t test(int c, uint32_t op)
{
    return (op_mask[op] >> (c + 1)) & 1;
}

/* lanes where v op k holds (integers): one loop per operator, no jump per lane */
static inline uint64_t cmp_lanes_i(const seg__col *v, uint32_t nl, int64_t k, uint32_t op)
{
    uint64_t m = 0;
    switch (op) {
#define CASE(o, rel)                                        \
    case o:                                                 \
        for (uint32_t l = 0; l < nl; l++)                   \
            m |= (uint64_t)(v->v[l].i rel k) << l;          \
        break;
    CASE(SEG__SOP_EQ, ==)
    CASE(SEG__SOP_NE, !=)
    CASE(SEG__SOP_LT, <)
    CASE(SEG__SOP_LE, <=)
    CASE(SEG__SOP_GT, >)
    CASE(SEG__SOP_GE, >=)
#undef CASE
    default:
        break;
    }
    return m;
}

static bool str_find(const char *h, uint32_t hn, const char *nd, uint32_t nn, int where)
{
    if (nn > hn)
        return false;
    if (where == 0)
        return memcmp(h, nd, nn) == 0;
    if (where == 1)
        return memcmp(h + hn - nn, nd, nn) == 0;
    if (nn == 0)
        return true;
    for (uint32_t k = 0; k + nn <= hn; k++)
        if (h[k] == nd[0] && memcmp(h + k, nd, nn) == 0)
            return true;
    return false;
}

/* ---- the machine ---- */

typedef struct pend {
    uint32_t target;   /* where the chain's jumps land (offset in the program) */
    uint8_t is_and;
    uint64_t mask;     /* and: lanes still true; or: lanes already true */
} pend;

#define PEND_MAX (SEG__SD_DEPTH_MAX + 8)

void seg__vm_block(seg__run *run)
{
    const seg_segdef *d = run->def;
    seg__block *b = run->blk;
    const seg__prog *p = &d->bprog;
    const uint32_t *code = p->code, *pc = code;
    const seg__val *consts = d->consts;
    seg__col **st = b->sp;     /* st[0 .. sp) */
    uint32_t sp = 0, np = 0;
    pend pq[PEND_MAX];
    uint64_t remaining = 0;    /* the set being evaluated: lanes without a label */
    uint32_t nl = b->nlanes;
    if (++b->epoch == 0) {
        memset(b->stamp, 0, (size_t)d->nslots * sizeof *b->stamp);
        b->epoch = 1;
    }

#define TOP (st[sp - 1])
    /* a fresh column for stack entry k (its own scratch) */
#define OUT(k) (&b->stack[k])

    for (;;) {
        uint32_t here = (uint32_t)(pc - code);
        while (np && pq[np - 1].target == here) {
            /* a chain ends here: combine the last term with the lanes the
             * earlier terms decided */
            pend *q = &pq[--np];
            seg__col *t = TOP, *o = OUT(sp - 1);
            if (t->is_mask) {
                from_mask(b, o, q->is_and ? (t->mask & q->mask) : (t->mask | q->mask));
                st[sp - 1] = o;
                continue;
            }
            if (q->is_and) {
                for (uint32_t l = 0; l < nl; l++)
                    o->v[l].i = ((q->mask >> l) & 1) ? t->v[l].i : 0;
                o->null = t->null & q->mask;
                o->is_mask = 0;
            } else {
                for (uint32_t l = 0; l < nl; l++)
                    o->v[l].i = ((q->mask >> l) & 1) ? 1 : t->v[l].i;
                o->null = t->null & ~q->mask;
                o->is_mask = 0;
            }
            st[sp - 1] = o;
        }
        uint32_t op = *pc++;
        switch (op) {
        case SEG__BC_HALT:
            return;
        case SEG__BC_LOAD:
            st[sp++] = (seg__col *)slot_col(run, b, *pc++);
            break;
        case SEG__BC_CONST: {
            seg__col *o = OUT(sp);
            const seg__val *k = &consts[*pc++];
            for (uint32_t l = 0; l < nl; l++) {
                o->v[l].i = k->u.i;
                o->n[l] = k->n;
            }
            o->null = 0;
            o->is_mask = 0;
            st[sp++] = o;
            break;
        }
        case SEG__BC_LCMPI:
        case SEG__BC_LCMPD: {
            const seg__col *v = slot_col(run, b, pc[0]);
            uint32_t cop = pc[1];
            const seg__val *k = &consts[pc[2]];
            pc += 3;
            uint64_t m = 0;
            if (op == SEG__BC_LCMPI)
                m = cmp_lanes_i(v, nl, k->u.i, cop);
            else
                for (uint32_t l = 0; l < nl; l++)
                    m |= test(cmp_d(v->v[l].d, k->u.d), cop) << l;
            seg__col *o = OUT(sp);
            from_mask(b, o, m & ~v->null);
            st[sp++] = o;
            break;
        }
        case SEG__BC_ALLI:
        case SEG__BC_ANYI: {
            uint32_t n = *pc++;
            uint64_t m = op == SEG__BC_ALLI ? ~UINT64_C(0) : 0;
            for (uint32_t j = 0; j < n; j++, pc += 3) {
                const seg__col *v = slot_col(run, b, pc[0]);
                uint32_t cop = pc[1];
                uint64_t t = cmp_lanes_i(v, nl, consts[pc[2]].u.i, cop) & ~v->null;
                m = op == SEG__BC_ALLI ? m & t : m | t;
            }
            seg__col *o = OUT(sp);
            from_mask(b, o, m);
            st[sp++] = o;
            break;
        }
        case SEG__BC_CMPI:
        case SEG__BC_CMPD:
        case SEG__BC_CMPS: {
            const seg__col *y = lanes(b, st[--sp]), *x = lanes(b, TOP);
            uint32_t cop = *pc++;
            uint64_t m = 0;
            for (uint32_t l = 0; l < nl; l++) {
                int c = op == SEG__BC_CMPI ? cmp_i(x->v[l].i, y->v[l].i)
                        : op == SEG__BC_CMPD ? cmp_d(x->v[l].d, y->v[l].d)
                        : (((x->null | y->null) >> l) & 1)
                              ? 0 : cmp_s(x->v[l].s, x->n[l], y->v[l].s, y->n[l]);
                m |= test(c, cop) << l;
            }
            m &= ~(x->null | y->null);
            seg__col *o = OUT(sp - 1);
            from_mask(b, o, m);
            st[sp - 1] = o;
            break;
        }
        case SEG__BC_JFK:
        case SEG__BC_JTK: {
            uint32_t target = *pc++;
            bool is_and = op == SEG__BC_JFK;
            uint64_t t = truth(b, TOP);
            pend *q = np && pq[np - 1].target == target && pq[np - 1].is_and == is_and
                          ? &pq[np - 1] : NULL;
            if (is_and) {
                uint64_t acc = q ? q->mask & t : t;
                if (acc == 0) {
                    /* every lane is false: the chain's value */
                    if (q)
                        np--;
                    seg__col *o = OUT(sp - 1);
                    from_mask(b, o, 0);
                    st[sp - 1] = o;
                    pc = code + target;
                    break;
                }
                if (q) {
                    q->mask = acc;
                } else {
                    pq[np].target = target;
                    pq[np].is_and = 1;
                    pq[np].mask = acc;
                    np++;
                }
            } else {
                uint64_t acc = q ? q->mask | t : t;
                if (acc == b->valid) {
                    if (q)
                        np--;
                    seg__col *o = OUT(sp - 1);
                    from_mask(b, o, b->valid);
                    st[sp - 1] = o;
                    pc = code + target;
                    break;
                }
                if (q) {
                    q->mask = acc;
                } else {
                    pq[np].target = target;
                    pq[np].is_and = 0;
                    pq[np].mask = acc;
                    np++;
                }
            }
            sp--;
            break;
        }
        case SEG__BC_NOT: {
            seg__col *o = OUT(sp - 1);
            from_mask(b, o, ~truth(b, TOP) & b->valid);
            st[sp - 1] = o;
            break;
        }
        case SEG__BC_ISNULL: {
            uint32_t neg = *pc++;
            uint64_t nm = TOP->null;
            seg__col *o = OUT(sp - 1);
            from_mask(b, o, neg ? ~nm : nm);
            st[sp - 1] = o;
            break;
        }
        case SEG__BC_ADDI:
        case SEG__BC_SUBI:
        case SEG__BC_MULI: {
            const seg__col *y = st[--sp], *x = TOP;
            seg__col *o = OUT(sp - 1);
            uint64_t null = x->null | y->null;
            for (uint32_t l = 0; l < nl; l++) {
                int64_t r = 0;
                bool ovf = op == SEG__BC_ADDI ? __builtin_add_overflow(x->v[l].i, y->v[l].i, &r)
                           : op == SEG__BC_SUBI ? __builtin_sub_overflow(x->v[l].i, y->v[l].i, &r)
                                                : __builtin_mul_overflow(x->v[l].i, y->v[l].i, &r);
                null |= (uint64_t)ovf << l;
                o->v[l].i = r;
            }
            o->null = null;
            o->is_mask = 0;
            st[sp - 1] = o;
            break;
        }
        case SEG__BC_ADDD:
        case SEG__BC_SUBD:
        case SEG__BC_MULD:
        case SEG__BC_DIVD: {
            const seg__col *y = st[--sp], *x = TOP;
            seg__col *o = OUT(sp - 1);
            uint64_t null = x->null | y->null;
            for (uint32_t l = 0; l < nl; l++) {
                double u = x->v[l].d, w = y->v[l].d;
                double r = op == SEG__BC_ADDD ? u + w
                           : op == SEG__BC_SUBD ? u - w
                           : op == SEG__BC_MULD ? u * w
                           : (w == 0 ? NAN : u / w);
                null |= (uint64_t)!isfinite(r) << l;
                o->v[l].d = r;
            }
            o->null = null;
            o->is_mask = 0;
            st[sp - 1] = o;
            break;
        }
        case SEG__BC_NEGI:
        case SEG__BC_NEGD: {
            const seg__col *x = TOP;
            seg__col *o = OUT(sp - 1);
            uint64_t null = x->null;
            for (uint32_t l = 0; l < nl; l++) {
                if (op == SEG__BC_NEGD) {
                    o->v[l].d = -x->v[l].d;
                } else {
                    null |= (uint64_t)(x->v[l].i == INT64_MIN) << l;
                    o->v[l].i = x->v[l].i == INT64_MIN ? 0 : -x->v[l].i;
                }
            }
            o->null = null;
            o->is_mask = 0;
            st[sp - 1] = o;
            break;
        }
        case SEG__BC_I2D: {
            uint32_t depth = *pc++;
            const seg__col *x = st[sp - 1 - depth];
            seg__col *o = OUT(sp - 1 - depth);
            for (uint32_t l = 0; l < nl; l++)
                o->v[l].d = (double)x->v[l].i;
            o->null = x->null;
            o->is_mask = 0;
            memcpy(o->n, x->n, sizeof o->n);
            st[sp - 1 - depth] = o;
            break;
        }
        case SEG__BC_D2I: {
            const seg__col *x = TOP;
            seg__col *o = OUT(sp - 1);
            uint64_t null = x->null;
            for (uint32_t l = 0; l < nl; l++) {
                double r = round(x->v[l].d);
                bool ok = r >= -9223372036854774784.0 && r <= 9223372036854774784.0;
                null |= (uint64_t)!ok << l;
                o->v[l].i = ok ? (int64_t)r : 0;
            }
            o->null = null;
            o->is_mask = 0;
            st[sp - 1] = o;
            break;
        }
        case SEG__BC_INI:
        case SEG__BC_IND:
        case SEG__BC_INS: {
            uint32_t k = pc[0], n = pc[1], neg = pc[2];
            pc += 3;
            const seg__col *x = lanes(b, TOP);
            uint64_t m = 0;
            for (uint32_t l = 0; l < nl; l++) {
                if ((x->null >> l) & 1)
                    continue;
                bool found = false;
                for (uint32_t j = 0; j < n && !found; j++) {
                    const seg__val *c = &consts[k + j];
                    found = op == SEG__BC_INI ? x->v[l].i == c->u.i
                            : op == SEG__BC_IND ? x->v[l].d == c->u.d
                            : cmp_s(x->v[l].s, x->n[l], c->u.s, c->n) == 0;
                }
                m |= (uint64_t)(found != (neg != 0)) << l;
            }
            seg__col *o = OUT(sp - 1);
            from_mask(b, o, m & ~x->null);
            st[sp - 1] = o;
            break;
        }
        case SEG__BC_BETWEENI:
        case SEG__BC_BETWEEND:
        case SEG__BC_BETWEENS: {
            uint32_t neg = *pc++;
            const seg__col *hi = lanes(b, st[sp - 1]), *lo = lanes(b, st[sp - 2]),
                           *x = lanes(b, st[sp - 3]);
            sp -= 2;
            uint64_t null = x->null | lo->null | hi->null, m = 0;
            for (uint32_t l = 0; l < nl; l++) {
                if ((null >> l) & 1)
                    continue;
                bool in;
                if (op == SEG__BC_BETWEENI)
                    in = lo->v[l].i <= x->v[l].i && x->v[l].i <= hi->v[l].i;
                else if (op == SEG__BC_BETWEEND)
                    in = lo->v[l].d <= x->v[l].d && x->v[l].d <= hi->v[l].d;
                else
                    in = cmp_s(lo->v[l].s, lo->n[l], x->v[l].s, x->n[l]) <= 0 &&
                         cmp_s(x->v[l].s, x->n[l], hi->v[l].s, hi->n[l]) <= 0;
                m |= (uint64_t)(in != (neg != 0)) << l;
            }
            seg__col *o = OUT(sp - 1);
            from_mask(b, o, m & ~null);
            st[sp - 1] = o;
            break;
        }
        case SEG__BC_PREFIX:
        case SEG__BC_SUFFIX:
        case SEG__BC_CONTAINS: {
            const seg__col *y = st[--sp], *x = TOP;
            uint64_t null = x->null | y->null, m = 0;
            int where = op == SEG__BC_PREFIX ? 0 : op == SEG__BC_SUFFIX ? 1 : 2;
            for (uint32_t l = 0; l < nl; l++)
                if (!((null >> l) & 1))
                    m |= (uint64_t)str_find(x->v[l].s, x->n[l], y->v[l].s, y->n[l], where) << l;
            seg__col *o = OUT(sp - 1);
            from_mask(b, o, m);
            st[sp - 1] = o;
            break;
        }
        case SEG__BC_COALESCE: {
            const seg__col *y = lanes(b, st[--sp]), *x = lanes(b, TOP);
            seg__col *o = OUT(sp - 1);
            for (uint32_t l = 0; l < nl; l++) {
                bool use_y = (x->null >> l) & 1;
                o->v[l] = use_y ? y->v[l] : x->v[l];
                o->n[l] = use_y ? y->n[l] : x->n[l];
            }
            o->null = x->null & y->null;
            o->is_mask = 0;
            st[sp - 1] = o;
            break;
        }
        case SEG__BC_MEMBER: {
            seg__col *o = OUT(sp);
            from_mask(b, o, b->member[*pc++]);
            st[sp++] = o;
            break;
        }
        case SEG__BC_STORE:
            b->member[*pc++] = truth(b, st[--sp]);
            break;
        case SEG__BC_SETB_BEGIN:
            remaining = b->valid;
            break;
        case SEG__BC_SETB_RULE: {
            uint64_t m = truth(b, st[--sp]) & remaining;
            b->member[*pc++] = m;
            remaining &= ~m;
            break;
        }
        case SEG__BC_SETB_ELSE:
            b->member[*pc++] = remaining;
            break;
        default:
            /* NOP; the scalar program's own instructions never appear here */
            break;
        }
    }
#undef TOP
#undef OUT
}
