/*
 * The canonical printer: AST to text that parses back to the same AST.
 *
 * One item per line (a set's rules on their own lines, indented by two
 * spaces), single spaces around binary operators, parentheses only where
 * the grammar needs them, literals as written (1000.00 keeps its two
 * decimals, 2w stays 2w), named arguments in the order of their names,
 * strings in double quotes with \" \\ \n \t \r and \xHH for other control
 * characters.  Comments are not kept.
 */
#include "segdef/segdef-private.h"

#include <inttypes.h>
#include <stdio.h>

typedef seg__text buf;

const char *seg__sd_op_text(int op)
{
    switch (op) {
    case SEG__SOP_EQ: return "==";
    case SEG__SOP_NE: return "!=";
    case SEG__SOP_LT: return "<";
    case SEG__SOP_LE: return "<=";
    case SEG__SOP_GT: return ">";
    case SEG__SOP_GE: return ">=";
    case SEG__SOP_ADD: return "+";
    case SEG__SOP_SUB: return "-";
    case SEG__SOP_MUL: return "*";
    case SEG__SOP_DIV: return "/";
    default: return "?";
    }
}

/* binding strength: higher binds tighter */
enum { P_OR = 1, P_AND, P_NOT, P_CMP, P_ADD, P_MUL, P_NEG, P_ATOM };

static int prec(const seg__node *n)
{
    switch (n->kind) {
    case SEG__N_OR: return P_OR;
    case SEG__N_AND: return P_AND;
    case SEG__N_NOT: return P_NOT;
    case SEG__N_CMP: case SEG__N_IN: case SEG__N_BETWEEN: case SEG__N_ISNULL: return P_CMP;
    case SEG__N_ARITH: return n->op == SEG__SOP_ADD || n->op == SEG__SOP_SUB ? P_ADD : P_MUL;
    case SEG__N_NEG: return P_NEG;
    default: return P_ATOM;
    }
}

static void put_string(buf *b, seg__str s)
{
    seg__text_put(b, "\"", 1);
    size_t start = 0;
    for (size_t k = 0; k < s.n; k++) {
        unsigned char c = (unsigned char)s.p[k];
        const char *esc = NULL;
        char hex[8];
        if (c == '"') esc = "\\\"";
        else if (c == '\\') esc = "\\\\";
        else if (c == '\n') esc = "\\n";
        else if (c == '\t') esc = "\\t";
        else if (c == '\r') esc = "\\r";
        else if (c < 0x20 || c == 0x7f) {
            snprintf(hex, sizeof hex, "\\x%02X", c);
            esc = hex;
        }
        if (esc) {
            seg__text_put(b, s.p + start, k - start);
            seg__text_puts(b, esc);
            start = k + 1;
        }
    }
    seg__text_put(b, s.p + start, s.n - start);
    seg__text_put(b, "\"", 1);
}

static void put_decimal(buf *b, int64_t mant, int scale)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%" PRId64, mant);
    if (n <= scale) {
        /* leading zeros: 0.005 */
        char z[64];
        int k = 0;
        z[k++] = '0';
        z[k++] = '.';
        for (int i = 0; i < scale - n; i++)
            z[k++] = '0';
        memcpy(z + k, digits, (size_t)n);
        k += n;
        seg__text_put(b, z, (size_t)k);
        return;
    }
    seg__text_put(b, digits, (size_t)(n - scale));
    seg__text_put(b, ".", 1);
    seg__text_put(b, digits + n - scale, (size_t)scale);
}

static void print_node(buf *b, const seg__node *n, int min);

static void print_kid(buf *b, const seg__node *n, int min)
{
    if (prec(n) < min) {
        seg__text_put(b, "(", 1);
        print_node(b, n, P_OR);
        seg__text_put(b, ")", 1);
    } else {
        print_node(b, n, min);
    }
}

static void print_node(buf *b, const seg__node *n, int min)
{
    (void)min;
    char tmp[64];
    switch (n->kind) {
    case SEG__N_OR:
    case SEG__N_AND:
        for (uint32_t k = 0; k < n->nkids; k++) {
            if (k)
                seg__text_puts(b, n->kind == SEG__N_OR ? " or " : " and ");
            print_kid(b, n->kids[k], n->kind == SEG__N_OR ? P_AND : P_NOT);
        }
        break;
    case SEG__N_NOT:
        seg__text_puts(b, "not ");
        print_kid(b, n->kids[0], P_NOT);
        break;
    case SEG__N_CMP:
        print_kid(b, n->kids[0], P_ADD);
        seg__text_put(b, " ", 1);
        seg__text_puts(b, seg__sd_op_text(n->op));
        seg__text_put(b, " ", 1);
        print_kid(b, n->kids[1], P_ADD);
        break;
    case SEG__N_IN:
        print_kid(b, n->kids[0], P_ADD);
        seg__text_puts(b, n->neg ? " not in [" : " in [");
        for (uint32_t k = 1; k < n->nkids; k++) {
            if (k > 1)
                seg__text_puts(b, ", ");
            print_kid(b, n->kids[k], P_ADD);
        }
        seg__text_put(b, "]", 1);
        break;
    case SEG__N_BETWEEN:
        print_kid(b, n->kids[0], P_ADD);
        seg__text_puts(b, n->neg ? " not between " : " between ");
        print_kid(b, n->kids[1], P_ADD);
        seg__text_puts(b, " and ");
        print_kid(b, n->kids[2], P_ADD);
        break;
    case SEG__N_ISNULL:
        print_kid(b, n->kids[0], P_ADD);
        seg__text_puts(b, n->neg ? " is not null" : " is null");
        break;
    case SEG__N_ARITH: {
        int p = prec(n);
        print_kid(b, n->kids[0], p);
        seg__text_put(b, " ", 1);
        seg__text_puts(b, seg__sd_op_text(n->op));
        seg__text_put(b, " ", 1);
        print_kid(b, n->kids[1], p + 1);
        break;
    }
    case SEG__N_NEG:
        seg__text_put(b, "-", 1);
        print_kid(b, n->kids[0], P_NEG);
        break;
    case SEG__N_INT:
        snprintf(tmp, sizeof tmp, "%" PRId64, n->i);
        seg__text_puts(b, tmp);
        break;
    case SEG__N_DEC:
        put_decimal(b, n->i, n->scale);
        break;
    case SEG__N_DUR:
        snprintf(tmp, sizeof tmp, "%" PRId64 "%s", n->i, seg__du_name[n->unit]);
        seg__text_puts(b, tmp);
        break;
    case SEG__N_STR:
        put_string(b, n->s);
        break;
    case SEG__N_BOOL:
        seg__text_puts(b, n->i ? "true" : "false");
        break;
    case SEG__N_NAME:
        seg__text_put(b, n->s.p, n->s.n);
        break;
    case SEG__N_MEMBER:
        seg__text_puts(b, "in(");
        seg__text_put(b, n->s.p, n->s.n);
        seg__text_put(b, ")", 1);
        break;
    case SEG__N_CALL:
        seg__text_put(b, n->s.p, n->s.n);
        seg__text_put(b, "(", 1);
        for (uint32_t k = 0; k < n->nkids; k++) {
            if (k)
                seg__text_puts(b, ", ");
            if (n->kids[k]->key.n) {
                seg__text_put(b, n->kids[k]->key.p, n->kids[k]->key.n);
                seg__text_puts(b, ": ");
            }
            print_kid(b, n->kids[k], P_OR);
        }
        seg__text_put(b, ")", 1);
        break;
    default:
        seg__text_puts(b, "?");
        break;
    }
}

char *seg__sd_print(const seg__alloc *a, const seg__ast *ast, size_t *len_out)
{
    buf b = { a, NULL, 0, 0, false };
    seg__text_put(&b, "", 0);
    for (uint32_t i = 0; i < ast->nitems; i++) {
        const seg__item *it = &ast->items[i];
        if (it->kind == SEG__ITEM_SEGMENT) {
            seg__text_puts(&b, "segment ");
            seg__text_put(&b, it->name.p, it->name.n);
            seg__text_puts(&b, ": ");
            print_node(&b, it->rules[0].cond, P_OR);
            seg__text_puts(&b, ";\n");
            continue;
        }
        seg__text_puts(&b, "segment set ");
        seg__text_put(&b, it->name.p, it->name.n);
        seg__text_puts(&b, " {\n");
        for (uint32_t r = 0; r < it->nrules; r++) {
            const seg__rule *ru = &it->rules[r];
            if (!ru->cond) {
                seg__text_puts(&b, "  else ");
                seg__text_put(&b, ru->label.p, ru->label.n);
                seg__text_puts(&b, ";\n");
            } else {
                seg__text_puts(&b, "  ");
                seg__text_put(&b, ru->label.p, ru->label.n);
                seg__text_puts(&b, ": ");
                print_node(&b, ru->cond, P_OR);
                seg__text_puts(&b, ";\n");
            }
        }
        seg__text_puts(&b, "}\n");
    }
    if (ast->njourneys) {
        size_t jn = 0;
        char *jt = seg__jr_print(a, ast, &jn); /* lib/journey/parse.c */
        if (!jt)
            b.oom = true;
        else
            seg__text_put(&b, jt, jn);
        seg__free(a, jt);
    }
    if (b.oom) {
        seg__free(a, b.p);
        return NULL;
    }
    if (len_out)
        *len_out = b.n;
    return b.p;
}

char *seg__sd_print_expr(const seg__alloc *a, const seg__node *n)
{
    buf b = { a, NULL, 0, 0, false };
    seg__text_put(&b, "", 0);
    print_node(&b, n, P_OR);
    if (b.oom) {
        seg__free(a, b.p);
        return NULL;
    }
    return b.p;
}
