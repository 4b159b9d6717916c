/*
 * The stack machine that runs one rule's program for one customer.
 *
 * Values are typed at compile time, so every instruction knows the
 * representation of its operands (int64, double or string).  Null: any
 * comparison, `in`, `between` or string test with a null operand is false;
 * arithmetic with a null operand, an overflow or a division by zero gives
 * null; a null condition counts as false.  Nothing here allocates.
 */
#include "segdef/segdef-private.h"

#include <math.h>

const seg__val *seg__vm_slot(seg__run *run, seg__cctx *cc, uint32_t slot)
{
    if (run->stamp[slot] != run->epoch) {
        const seg__slot *sl = &run->def->slots[slot];
        sl->prov->get(run, cc, sl, &run->vals[slot]);
        run->stamp[slot] = run->epoch;
    }
    return &run->vals[slot];
}

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
    switch (op) {
    case SEG__SOP_EQ: return c == 0;
    case SEG__SOP_NE: return c != 0;
    case SEG__SOP_LT: return c < 0;
    case SEG__SOP_LE: return c <= 0;
    case SEG__SOP_GT: return c > 0;
    case SEG__SOP_GE: return c >= 0;
    default: return false;
    }
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

bool seg__vm_exec(seg__run *run, seg__cctx *cc, const seg__prog *p)
{
    const uint32_t *code = p->code, *pc = code;
    const seg__val *consts = run->def->consts;
    seg__val *sp = run->stack; /* next free */
    for (;;) {
        switch (*pc++) {
        case SEG__BC_RET:
            return !sp[-1].null && sp[-1].u.i;
        case SEG__BC_LOAD:
            *sp++ = *seg__vm_slot(run, cc, *pc++);
            break;
        case SEG__BC_CONST:
            *sp++ = consts[*pc++];
            break;
        case SEG__BC_LCMPI: {
            const seg__val *v = seg__vm_slot(run, cc, pc[0]);
            set_bool(sp, !v->null && test(cmp_i(v->u.i, consts[pc[2]].u.i), pc[1]));
            sp++;
            pc += 3;
            break;
        }
        case SEG__BC_LCMPD: {
            const seg__val *v = seg__vm_slot(run, cc, pc[0]);
            set_bool(sp, !v->null && test(cmp_d(v->u.d, consts[pc[2]].u.d), pc[1]));
            sp++;
            pc += 3;
            break;
        }
        case SEG__BC_CMPI:
        case SEG__BC_CMPD:
        case SEG__BC_CMPS: {
            seg__val *b = --sp, *a = sp - 1;
            uint32_t op = *pc++;
            if (a->null || b->null) {
                set_bool(a, false);
                break;
            }
            int c = pc[-2] == SEG__BC_CMPI ? cmp_i(a->u.i, b->u.i)
                    : pc[-2] == SEG__BC_CMPD ? cmp_d(a->u.d, b->u.d) : cmp_s(a, b);
            set_bool(a, test(c, op));
            break;
        }
        case SEG__BC_JFK: {
            seg__val *t = sp - 1;
            if (t->null || !t->u.i) {
                set_bool(t, false);
                pc = code + *pc;
            } else {
                sp--;
                pc++;
            }
            break;
        }
        case SEG__BC_JTK: {
            seg__val *t = sp - 1;
            if (!t->null && t->u.i) {
                pc = code + *pc;
            } else {
                sp--;
                pc++;
            }
            break;
        }
        case SEG__BC_NOT: {
            seg__val *t = sp - 1;
            set_bool(t, t->null || !t->u.i);
            break;
        }
        case SEG__BC_ISNULL: {
            seg__val *t = sp - 1;
            bool isnull = t->null;
            set_bool(t, *pc++ ? !isnull : isnull);
            break;
        }
        case SEG__BC_ADDI:
        case SEG__BC_SUBI:
        case SEG__BC_MULI: {
            seg__val *b = --sp, *a = sp - 1;
            uint32_t op = pc[-1];
            if (a->null || b->null) {
                a->null = 1;
                break;
            }
            int64_t r;
            bool ovf = op == SEG__BC_ADDI ? __builtin_add_overflow(a->u.i, b->u.i, &r)
                       : op == SEG__BC_SUBI ? __builtin_sub_overflow(a->u.i, b->u.i, &r)
                                            : __builtin_mul_overflow(a->u.i, b->u.i, &r);
            if (ovf)
                a->null = 1;
            else
                a->u.i = r;
            break;
        }
        case SEG__BC_ADDD:
        case SEG__BC_SUBD:
        case SEG__BC_MULD:
        case SEG__BC_DIVD: {
            seg__val *b = --sp, *a = sp - 1;
            uint32_t op = pc[-1];
            if (a->null || b->null) {
                a->null = 1;
                break;
            }
            double r = op == SEG__BC_ADDD ? a->u.d + b->u.d
                       : op == SEG__BC_SUBD ? a->u.d - b->u.d
                       : op == SEG__BC_MULD ? a->u.d * b->u.d
                       : (b->u.d == 0 ? NAN : a->u.d / b->u.d);
            if (!isfinite(r))
                a->null = 1;
            else
                a->u.d = r;
            break;
        }
        case SEG__BC_NEGI: {
            seg__val *t = sp - 1;
            if (!t->null) {
                if (t->u.i == INT64_MIN)
                    t->null = 1;
                else
                    t->u.i = -t->u.i;
            }
            break;
        }
        case SEG__BC_NEGD: {
            seg__val *t = sp - 1;
            if (!t->null)
                t->u.d = -t->u.d;
            break;
        }
        case SEG__BC_I2D: {
            seg__val *t = sp - 1 - *pc++;
            if (!t->null)
                t->u.d = (double)t->u.i;
            break;
        }
        case SEG__BC_D2I: {
            seg__val *t = sp - 1;
            if (!t->null) {
                double r = round(t->u.d);
                if (!(r >= -9223372036854774784.0 && r <= 9223372036854774784.0))
                    t->null = 1;
                else
                    t->u.i = (int64_t)r;
            }
            break;
        }
        case SEG__BC_INI:
        case SEG__BC_IND:
        case SEG__BC_INS: {
            uint32_t op = pc[-1], k = pc[0], n = pc[1], neg = pc[2];
            pc += 3;
            seg__val *x = sp - 1;
            if (x->null) {
                set_bool(x, false);
                break;
            }
            bool found = false;
            for (uint32_t j = 0; j < n && !found; j++) {
                const seg__val *c = &consts[k + j];
                found = op == SEG__BC_INI ? x->u.i == c->u.i
                        : op == SEG__BC_IND ? x->u.d == c->u.d : cmp_s(x, c) == 0;
            }
            set_bool(x, found != (neg != 0));
            break;
        }
        case SEG__BC_BETWEENI:
        case SEG__BC_BETWEEND:
        case SEG__BC_BETWEENS: {
            uint32_t op = pc[-1], neg = *pc++;
            seg__val *hi = sp - 1, *lo = sp - 2, *x = sp - 3;
            sp -= 2;
            if (x->null || lo->null || hi->null) {
                set_bool(x, false);
                break;
            }
            bool in;
            if (op == SEG__BC_BETWEENI)
                in = lo->u.i <= x->u.i && x->u.i <= hi->u.i;
            else if (op == SEG__BC_BETWEEND)
                in = lo->u.d <= x->u.d && x->u.d <= hi->u.d;
            else
                in = cmp_s(lo, x) <= 0 && cmp_s(x, hi) <= 0;
            set_bool(x, in != (neg != 0));
            break;
        }
        case SEG__BC_PREFIX:
        case SEG__BC_SUFFIX:
        case SEG__BC_CONTAINS: {
            uint32_t op = pc[-1];
            seg__val *b = --sp, *a = sp - 1;
            if (a->null || b->null) {
                set_bool(a, false);
                break;
            }
            set_bool(a, str_find(a, b, op == SEG__BC_PREFIX ? 0 : op == SEG__BC_SUFFIX ? 1 : 2));
            break;
        }
        case SEG__BC_COALESCE: {
            seg__val *b = --sp, *a = sp - 1;
            if (a->null)
                *a = *b;
            break;
        }
        case SEG__BC_MEMBER:
            set_bool(sp, run->member[*pc++] != 0);
            sp++;
            break;
        default:
            /* SEG__BC_NOP and anything unknown: the code is ours, so this
             * does not happen; treat as false */
            return false;
        }
    }
}
