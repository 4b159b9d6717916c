/*
 * The stack machine that runs one rule's program for one customer.
 *
 * Values are typed at compile time, so every instruction knows the
 * representation of its operands (int64, double or string).  Null: any
 * comparison, `in`, `between` or string test with a null operand is false;
 * arithmetic with a null operand, an overflow or a division by zero gives
 * null; a null condition counts as false.  Nothing here allocates.
 *
 * With GCC and clang each instruction jumps straight to the next one's
 * handler (a table of label addresses, "threaded code"), which the branch
 * predictor follows far better than one shared switch; other compilers get
 * the switch.  Comparisons are branch-free: a three-bit mask per operator
 * says which of "less", "equal", "greater" make it true.
 */
#include "segdef/segdef-private.h"

#include <math.h>

#if defined(__GNUC__)
#  define SEG__VM_THREADED 1
#endif

static void slot_compute(seg__run *run, seg__cctx *cc, uint32_t slot)
{
    const seg__slot *sl = &run->def->slots[slot];
    sl->prov->get(run, cc, sl, &run->vals[slot]);
    run->stamp[slot] = run->epoch;
}

static inline const seg__val *slot_val(seg__run *run, seg__cctx *cc, uint32_t slot)
{
    if (SEG_UNLIKELY(run->stamp[slot] != run->epoch))
        slot_compute(run, cc, slot);
    return &run->vals[slot];
}

const seg__val *seg__vm_slot(seg__run *run, seg__cctx *cc, uint32_t slot)
{
    return slot_val(run, cc, slot);
}

/* bit (c + 1) of mask[op] tells whether c (-1, 0, 1) satisfies op */
static const uint8_t op_mask[] = {
    [SEG__SOP_EQ] = 2, [SEG__SOP_NE] = 5, [SEG__SOP_LT] = 1,
    [SEG__SOP_LE] = 3, [SEG__SOP_GT] = 4, [SEG__SOP_GE] = 6,
};

static inline int cmp_i(int64_t a, int64_t b) { return (a > b) - (a < b); }
static inline int cmp_d(double a, double b) { return (a > b) - (a < b); }

static int cmp_s(const seg__val *a, const seg__val *b)
{
    size_t n = a->n < b->n ? a->n : b->n;
    int c = n ? memcmp(a->u.s, b->u.s, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return (a->n > b->n) - (a->n < b->n);
}

static inline bool test(int c, uint32_t op)
{
    return (op_mask[op] >> (c + 1)) & 1;
}

static inline void set_bool(seg__val *v, bool b)
{
    v->u.i = b;
    v->null = 0;
}

static bool str_find(const seg__val *h, const seg__val *nd, int where)
{
    if (nd->n > h->n)
        return false;
    if (where == 0)
        return memcmp(h->u.s, nd->u.s, nd->n) == 0;
    if (where == 1)
        return memcmp(h->u.s + h->n - nd->n, nd->u.s, nd->n) == 0;
    if (nd->n == 0)
        return true;
    for (size_t k = 0; k + nd->n <= h->n; k++)
        if (h->u.s[k] == nd->u.s[0] && memcmp(h->u.s + k, nd->u.s, nd->n) == 0)
            return true;
    return false;
}

static bool in_list(const seg__val *x, const seg__val *c, uint32_t n, int kind)
{
    for (uint32_t j = 0; j < n; j++)
        if (kind == 0 ? x->u.i == c[j].u.i : kind == 1 ? x->u.d == c[j].u.d : cmp_s(x, &c[j]) == 0)
            return true;
    return false;
}

static void arith_i(seg__val *a, const seg__val *b, int op)
{
    if (a->null || b->null) {
        a->null = 1;
        return;
    }
    int64_t r;
    bool ovf = op == 0 ? __builtin_add_overflow(a->u.i, b->u.i, &r)
               : op == 1 ? __builtin_sub_overflow(a->u.i, b->u.i, &r)
                         : __builtin_mul_overflow(a->u.i, b->u.i, &r);
    if (ovf)
        a->null = 1;
    else
        a->u.i = r;
}

static void arith_d(seg__val *a, const seg__val *b, int op)
{
    if (a->null || b->null) {
        a->null = 1;
        return;
    }
    double r = op == 0 ? a->u.d + b->u.d
               : op == 1 ? a->u.d - b->u.d
               : op == 2 ? a->u.d * b->u.d
               : (b->u.d == 0 ? NAN : a->u.d / b->u.d);
    if (!isfinite(r))
        a->null = 1;
    else
        a->u.d = r;
}

#ifdef SEG__VM_THREADED
#  define OP(x) L_##x:
#  define NEXT goto *tbl[*pc++]
#else
#  define OP(x) case x:
#  define NEXT break
#endif

bool seg__vm_exec(seg__run *run, seg__cctx *cc, const seg__prog *p)
{
    const uint32_t *code = p->code, *pc = code;
    const seg__val *consts = run->def->consts;
    seg__val *sp = run->stack; /* next free */
#ifdef SEG__VM_THREADED
    static const void *const tbl[] = {
        [SEG__BC_RET] = &&L_SEG__BC_RET, [SEG__BC_LOAD] = &&L_SEG__BC_LOAD,
        [SEG__BC_CONST] = &&L_SEG__BC_CONST, [SEG__BC_CMPI] = &&L_SEG__BC_CMPI,
        [SEG__BC_CMPD] = &&L_SEG__BC_CMPD, [SEG__BC_CMPS] = &&L_SEG__BC_CMPS,
        [SEG__BC_LCMPI] = &&L_SEG__BC_LCMPI, [SEG__BC_LCMPD] = &&L_SEG__BC_LCMPD,
        [SEG__BC_JFK] = &&L_SEG__BC_JFK, [SEG__BC_JTK] = &&L_SEG__BC_JTK,
        [SEG__BC_NOT] = &&L_SEG__BC_NOT, [SEG__BC_ISNULL] = &&L_SEG__BC_ISNULL,
        [SEG__BC_ADDI] = &&L_SEG__BC_ADDI, [SEG__BC_SUBI] = &&L_SEG__BC_SUBI,
        [SEG__BC_MULI] = &&L_SEG__BC_MULI, [SEG__BC_ADDD] = &&L_SEG__BC_ADDD,
        [SEG__BC_SUBD] = &&L_SEG__BC_SUBD, [SEG__BC_MULD] = &&L_SEG__BC_MULD,
        [SEG__BC_DIVD] = &&L_SEG__BC_DIVD, [SEG__BC_NEGI] = &&L_SEG__BC_NEGI,
        [SEG__BC_NEGD] = &&L_SEG__BC_NEGD, [SEG__BC_I2D] = &&L_SEG__BC_I2D,
        [SEG__BC_D2I] = &&L_SEG__BC_D2I, [SEG__BC_INI] = &&L_SEG__BC_INI,
        [SEG__BC_IND] = &&L_SEG__BC_IND, [SEG__BC_INS] = &&L_SEG__BC_INS,
        [SEG__BC_BETWEENI] = &&L_SEG__BC_BETWEENI, [SEG__BC_BETWEEND] = &&L_SEG__BC_BETWEEND,
        [SEG__BC_BETWEENS] = &&L_SEG__BC_BETWEENS, [SEG__BC_PREFIX] = &&L_SEG__BC_PREFIX,
        [SEG__BC_SUFFIX] = &&L_SEG__BC_SUFFIX, [SEG__BC_CONTAINS] = &&L_SEG__BC_CONTAINS,
        [SEG__BC_COALESCE] = &&L_SEG__BC_COALESCE, [SEG__BC_MEMBER] = &&L_SEG__BC_MEMBER,
        [SEG__BC_NOP] = &&L_SEG__BC_NOP, [SEG__BC_ALLI] = &&L_SEG__BC_ALLI,
        [SEG__BC_ANYI] = &&L_SEG__BC_ANYI, [SEG__BC_STORE] = &&L_SEG__BC_STORE,
        [SEG__BC_CLR] = &&L_SEG__BC_CLR, [SEG__BC_SET1] = &&L_SEG__BC_SET1,
        [SEG__BC_JPOPF] = &&L_SEG__BC_JPOPF, [SEG__BC_JMP] = &&L_SEG__BC_JMP,
        [SEG__BC_HALT] = &&L_SEG__BC_HALT,
    };
    NEXT;
#else
    for (;;) {
        switch (*pc++) {
#endif
    OP(SEG__BC_RET)
        return !sp[-1].null && sp[-1].u.i;
    OP(SEG__BC_LOAD)
        *sp++ = *slot_val(run, cc, *pc++);
        NEXT;
    OP(SEG__BC_CONST)
        *sp++ = consts[*pc++];
        NEXT;
    OP(SEG__BC_LCMPI) {
        const seg__val *v = slot_val(run, cc, pc[0]);
        set_bool(sp, !v->null && test(cmp_i(v->u.i, consts[pc[2]].u.i), pc[1]));
        sp++;
        pc += 3;
        NEXT;
    }
    OP(SEG__BC_LCMPD) {
        const seg__val *v = slot_val(run, cc, pc[0]);
        set_bool(sp, !v->null && test(cmp_d(v->u.d, consts[pc[2]].u.d), pc[1]));
        sp++;
        pc += 3;
        NEXT;
    }
    OP(SEG__BC_CMPI) {
        seg__val *b = --sp, *a = sp - 1;
        set_bool(a, !a->null && !b->null && test(cmp_i(a->u.i, b->u.i), *pc));
        pc++;
        NEXT;
    }
    OP(SEG__BC_CMPD) {
        seg__val *b = --sp, *a = sp - 1;
        set_bool(a, !a->null && !b->null && test(cmp_d(a->u.d, b->u.d), *pc));
        pc++;
        NEXT;
    }
    OP(SEG__BC_CMPS) {
        seg__val *b = --sp, *a = sp - 1;
        set_bool(a, !a->null && !b->null && test(cmp_s(a, b), *pc));
        pc++;
        NEXT;
    }
    OP(SEG__BC_JFK) {
        seg__val *t = sp - 1;
        if (t->null || !t->u.i) {
            set_bool(t, false);
            pc = code + *pc;
        } else {
            sp--;
            pc++;
        }
        NEXT;
    }
    OP(SEG__BC_JTK) {
        seg__val *t = sp - 1;
        if (!t->null && t->u.i) {
            pc = code + *pc;
        } else {
            sp--;
            pc++;
        }
        NEXT;
    }
    OP(SEG__BC_NOT) {
        seg__val *t = sp - 1;
        set_bool(t, t->null || !t->u.i);
        NEXT;
    }
    OP(SEG__BC_ISNULL) {
        seg__val *t = sp - 1;
        bool isnull = t->null;
        set_bool(t, *pc++ ? !isnull : isnull);
        NEXT;
    }
    OP(SEG__BC_ADDI)
        sp--;
        arith_i(sp - 1, sp, 0);
        NEXT;
    OP(SEG__BC_SUBI)
        sp--;
        arith_i(sp - 1, sp, 1);
        NEXT;
    OP(SEG__BC_MULI)
        sp--;
        arith_i(sp - 1, sp, 2);
        NEXT;
    OP(SEG__BC_ADDD)
        sp--;
        arith_d(sp - 1, sp, 0);
        NEXT;
    OP(SEG__BC_SUBD)
        sp--;
        arith_d(sp - 1, sp, 1);
        NEXT;
    OP(SEG__BC_MULD)
        sp--;
        arith_d(sp - 1, sp, 2);
        NEXT;
    OP(SEG__BC_DIVD)
        sp--;
        arith_d(sp - 1, sp, 3);
        NEXT;
    OP(SEG__BC_NEGI) {
        seg__val *t = sp - 1;
        if (!t->null) {
            if (t->u.i == INT64_MIN)
                t->null = 1;
            else
                t->u.i = -t->u.i;
        }
        NEXT;
    }
    OP(SEG__BC_NEGD) {
        seg__val *t = sp - 1;
        if (!t->null)
            t->u.d = -t->u.d;
        NEXT;
    }
    OP(SEG__BC_I2D) {
        seg__val *t = sp - 1 - *pc++;
        if (!t->null)
            t->u.d = (double)t->u.i;
        NEXT;
    }
    OP(SEG__BC_D2I) {
        seg__val *t = sp - 1;
        if (!t->null) {
            double r = round(t->u.d);
            if (!(r >= -9223372036854774784.0 && r <= 9223372036854774784.0))
                t->null = 1;
            else
                t->u.i = (int64_t)r;
        }
        NEXT;
    }
    OP(SEG__BC_INI)
    OP(SEG__BC_IND)
    OP(SEG__BC_INS) {
        uint32_t op = pc[-1], k = pc[0], n = pc[1], neg = pc[2];
        pc += 3;
        seg__val *x = sp - 1;
        if (x->null) {
            set_bool(x, false);
            NEXT;
        }
        bool found = in_list(x, &consts[k], n, op == SEG__BC_INI ? 0 : op == SEG__BC_IND ? 1 : 2);
        set_bool(x, found != (neg != 0));
        NEXT;
    }
    OP(SEG__BC_BETWEENI)
    OP(SEG__BC_BETWEEND)
    OP(SEG__BC_BETWEENS) {
        uint32_t op = pc[-1], neg = *pc++;
        seg__val *hi = sp - 1, *lo = sp - 2, *x = sp - 3;
        sp -= 2;
        if (x->null || lo->null || hi->null) {
            set_bool(x, false);
            NEXT;
        }
        bool in;
        if (op == SEG__BC_BETWEENI)
            in = lo->u.i <= x->u.i && x->u.i <= hi->u.i;
        else if (op == SEG__BC_BETWEEND)
            in = lo->u.d <= x->u.d && x->u.d <= hi->u.d;
        else
            in = cmp_s(lo, x) <= 0 && cmp_s(x, hi) <= 0;
        set_bool(x, in != (neg != 0));
        NEXT;
    }
    OP(SEG__BC_PREFIX)
    OP(SEG__BC_SUFFIX)
    OP(SEG__BC_CONTAINS) {
        uint32_t op = pc[-1];
        seg__val *b = --sp, *a = sp - 1;
        if (a->null || b->null) {
            set_bool(a, false);
            NEXT;
        }
        set_bool(a, str_find(a, b, op == SEG__BC_PREFIX ? 0 : op == SEG__BC_SUFFIX ? 1 : 2));
        NEXT;
    }
    OP(SEG__BC_COALESCE) {
        seg__val *b = --sp, *a = sp - 1;
        if (a->null)
            *a = *b;
        NEXT;
    }
    OP(SEG__BC_MEMBER)
        set_bool(sp, run->member[*pc++] != 0);
        sp++;
        NEXT;
    OP(SEG__BC_NOP)
        NEXT;
    OP(SEG__BC_ALLI) {
        uint32_t n = *pc++, r = 1;
        for (uint32_t j = 0; j < n; j++, pc += 3) {
            const seg__val *v = slot_val(run, cc, pc[0]);
            r &= (uint32_t)(!v->null) & (uint32_t)test(cmp_i(v->u.i, consts[pc[2]].u.i), pc[1]);
        }
        set_bool(sp, r);
        sp++;
        NEXT;
    }
    OP(SEG__BC_ANYI) {
        uint32_t n = *pc++, r = 0;
        for (uint32_t j = 0; j < n; j++, pc += 3) {
            const seg__val *v = slot_val(run, cc, pc[0]);
            r |= (uint32_t)(!v->null) & (uint32_t)test(cmp_i(v->u.i, consts[pc[2]].u.i), pc[1]);
        }
        set_bool(sp, r);
        sp++;
        NEXT;
    }
    OP(SEG__BC_STORE) {
        seg__val *t = --sp;
        run->member[*pc++] = !t->null && t->u.i;
        NEXT;
    }
    OP(SEG__BC_CLR)
        memset(run->member + pc[0], 0, pc[1]);
        pc += 2;
        NEXT;
    OP(SEG__BC_SET1)
        run->member[*pc++] = 1;
        NEXT;
    OP(SEG__BC_JPOPF) {
        seg__val *t = --sp;
        if (t->null || !t->u.i)
            pc = code + *pc;
        else
            pc++;
        NEXT;
    }
    OP(SEG__BC_JMP)
        pc = code + *pc;
        NEXT;
    OP(SEG__BC_HALT)
        return true;
#ifndef SEG__VM_THREADED
        default:
            /* the code is ours: this does not happen */
            return false;
        }
    }
#endif
}
