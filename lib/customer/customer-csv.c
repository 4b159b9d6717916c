/*
 * Customer CSV import: customers, typed attributes and consent, applied as
 * one transaction through seg__customer_apply().
 *
 * Header: `customer_id` (exactly once) and any number of `NAME:TYPE`
 * (TYPE string, int, number, bool or time; split at the last ':') and
 * `consent:CHANNEL` columns.  A header name starting with "consent:" is
 * always a consent column.  Names match exactly (case-sensitive, no
 * trimming); a duplicate column is an error.
 *
 * Cells (an empty cell sets nothing):
 * - int: optional sign and decimal digits (int64, else SEG_ERANGE);
 * - number: decimal with optional fraction and exponent ("1.5", "-2e-3");
 *   no nan, inf, hex or spaces; locale-independent;
 * - bool: true/false, yes/no, 1/0 (ASCII case-insensitive);
 * - time: as seg_time_parse();
 * - string: any UTF-8 up to SEG_ATTR_VALUE_MAX bytes;
 * - consent: granted/denied, also yes/no, true/false, 1/0
 *   (case-insensitive).
 * The tokenizer (lib/event/csv.c) rules apply: empty lines are skipped, a
 * row with the wrong number of fields is SEG_EPARSE.
 */
#include "segment-private.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { COL_ID = 1, COL_ATTR, COL_CONSENT };

typedef struct cust_col {
    int kind;       /* COL_* */
    uint32_t type;  /* COL_ATTR: SEG_TYPE_* */
    seg__str name;  /* attribute name or channel (in the arena) */
} cust_col;

/* where an op came from, for messages */
typedef struct op_pos {
    const char *row;
    const char *at;
    uint64_t row_line;
} op_pos;

/* a bump allocator for copies of strings that must outlive their row */
typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    char data[];
} arena_block;

typedef struct cust_import {
    seg_db *db;
    const seg__alloc *a;
    const char *src;
    seg__csv tok;
    cust_col *cols;
    size_t ncols;
    size_t id_col;
    seg__custop *ops;
    op_pos *pos;
    size_t nops, capops;
    arena_block *arena;
    seg__time_cache tcache;
} cust_import;

static char *arena_copy(cust_import *im, const char *p, size_t n)
{
    arena_block *b = im->arena;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = seg__malloc(im->a, sizeof *b + cap);
        if (!b)
            return NULL;
        b->next = im->arena;
        b->used = 0;
        b->cap = cap;
        im->arena = b;
    }
    char *r = b->data + b->used;
    if (n)
        memcpy(r, p, n);
    b->used += n;
    return r;
}

static void arena_free(cust_import *im)
{
    while (im->arena) {
        arena_block *next = im->arena->next;
        seg__free(im->a, im->arena);
        im->arena = next;
    }
}

static int oom(cust_import *im)
{
    return seg__error(im->db, SEG_ENOMEM, "out of memory");
}

/* "SRC:LINE:COL: what 'value'" about a byte of the current row */
static int err_at(cust_import *im, int code, const char *at, const char *what,
                  const char *p, size_t n)
{
    uint64_t line, col;
    seg__csv_locate(im->tok.row, im->tok.row_line, at, &line, &col);
    if (!p)
        return seg__error(im->db, code, "%s:%" PRIu64 ":%" PRIu64 ": %s", im->src, line, col,
                          what);
    char ex[64];
    seg__csv_excerpt(ex, p, n);
    return seg__error(im->db, code, "%s:%" PRIu64 ":%" PRIu64 ": %s '%s'", im->src, line, col,
                      what, ex);
}

/* The value of a field as a string that lives until the import ends: the
 * input itself, or an arena copy of an unescaped "" field. */
static int stable(cust_import *im, const seg__csv_field *f, seg__str *out)
{
    out->n = f->n;
    if (f->p == f->raw || f->p == f->raw + 1 || f->n == 0) {
        out->p = f->p;
        return SEG_OK;
    }
    out->p = arena_copy(im, f->p, f->n);
    return out->p ? SEG_OK : oom(im);
}

static const struct {
    const char *name;
    uint32_t type;
} type_names[] = {
    { "string", SEG_TYPE_STRING }, { "int", SEG_TYPE_INT },   { "number", SEG_TYPE_NUMBER },
    { "bool", SEG_TYPE_BOOL },     { "time", SEG_TYPE_TIME },
};

static int read_header(cust_import *im)
{
    seg__csv *c = &im->tok;
    if (c->nfields > SEG__CSV_MAX_COLUMNS)
        return seg__error(im->db, SEG_EPARSE, "%s:%" PRIu64 ":1: more than %d columns",
                          im->src, c->row_line, SEG__CSV_MAX_COLUMNS);
    im->ncols = c->nfields;
    im->id_col = SIZE_MAX;
    im->cols = seg__calloc(im->a, im->ncols, sizeof *im->cols);
    if (!im->cols)
        return oom(im);
    for (size_t i = 0; i < im->ncols; i++) {
        const seg__csv_field *h = &c->fields[i];
        cust_col *cc = &im->cols[i];
        const char *p = h->p;
        size_t n = h->n;
        if (seg__str_eq((seg__str){ p, n }, "customer_id", 11)) {
            if (im->id_col != SIZE_MAX)
                return err_at(im, SEG_EINVAL, h->raw, "duplicate column", p, n);
            im->id_col = i;
            cc->kind = COL_ID;
            continue;
        }
        if (n >= 8 && memcmp(p, "consent:", 8) == 0) {
            if (n == 8)
                return err_at(im, SEG_EINVAL, h->raw, "consent column without a channel", p,
                              n);
            cc->kind = COL_CONSENT;
            cc->name.p = p + 8;
            cc->name.n = n - 8;
        } else {
            size_t k = n;
            while (k > 0 && p[k - 1] != ':')
                k--;
            if (k == 0)
                return err_at(im, SEG_EINVAL, h->raw,
                              "unknown column (expected customer_id, NAME:TYPE or "
                              "consent:CHANNEL)",
                              p, n);
            if (k == 1)
                return err_at(im, SEG_EINVAL, h->raw, "attribute column without a name", p, n);
            seg__str ty = { p + k, n - k };
            cc->kind = COL_ATTR;
            cc->name.p = p;
            cc->name.n = k - 1;
            for (size_t t = 0; t < sizeof type_names / sizeof type_names[0]; t++)
                if (seg__str_eq(ty, type_names[t].name, strlen(type_names[t].name)))
                    cc->type = type_names[t].type;
            if (!cc->type)
                return err_at(im, SEG_EINVAL, h->raw,
                              "unknown attribute type (string, int, number, bool, time)",
                              ty.p, ty.n);
        }
        for (size_t j = 0; j < i; j++) {
            const cust_col *o = &im->cols[j];
            if (o->kind == cc->kind && seg__str_eq(o->name, cc->name.p, cc->name.n))
                return err_at(im, SEG_EINVAL, h->raw, "duplicate column", p, n);
        }
        char *copy = arena_copy(im, cc->name.p, cc->name.n); /* the scratch is reused */
        if (!copy && cc->name.n)
            return oom(im);
        cc->name.p = copy;
    }
    if (im->id_col == SIZE_MAX)
        return seg__error(im->db, SEG_EINVAL, "%s:%" PRIu64 ":1: missing required column "
                          "'customer_id'", im->src, c->row_line);
    if (seg__csv_keep(c, im->ncols + 1) != SEG_OK || seg__csv_expect(c, im->ncols) != SEG_OK)
        return oom(im);
    return SEG_OK;
}

static bool word_eq(const char *p, size_t n, const char *w)
{
    size_t k = strlen(w);
    if (n != k)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if (ch != w[i])
            return false;
    }
    return true;
}

/* 1 for yes-words, 0 for no-words, -1 otherwise */
static int parse_yesno(const char *p, size_t n, const char *yes, const char *no)
{
    if (word_eq(p, n, yes) || word_eq(p, n, "true") || word_eq(p, n, "yes") ||
        word_eq(p, n, "1"))
        return 1;
    if (word_eq(p, n, no) || word_eq(p, n, "false") || word_eq(p, n, "no") ||
        word_eq(p, n, "0"))
        return 0;
    return -1;
}

#define NUM_MAX_DIGITS 800 /* more significant digits cannot change the rounding */

/* A finite decimal number, locale-independent. */
static int parse_number(const char *p, size_t n, double *out)
{
    char dig[NUM_MAX_DIGITS + 32];
    size_t nd = 0, i = 0;
    int64_t dexp = 0; /* value = digits * 10^dexp */
    bool neg = false, any = false;
    if (n && (p[0] == '-' || p[0] == '+')) {
        neg = p[0] == '-';
        i = 1;
    }
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
        any = true;
        if (nd == 0 && p[i] == '0')
            continue;
        if (nd < NUM_MAX_DIGITS)
            dig[nd++] = p[i];
        else
            dexp++;
    }
    if (i < n && p[i] == '.') {
        for (i++; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
            any = true;
            if (nd == 0 && p[i] == '0') {
                dexp--;
                continue;
            }
            if (nd < NUM_MAX_DIGITS) {
                dig[nd++] = p[i];
                dexp--;
            }
        }
    }
    if (!any)
        return SEG_EINVAL;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        bool eneg = false;
        int64_t e = 0;
        i++;
        if (i < n && (p[i] == '-' || p[i] == '+')) {
            eneg = p[i] == '-';
            i++;
        }
        if (i == n)
            return SEG_EINVAL;
        for (; i < n && p[i] >= '0' && p[i] <= '9'; i++)
            if (e < 100000)
                e = e * 10 + (p[i] - '0');
        dexp += eneg ? -e : e;
    }
    if (i != n)
        return SEG_EINVAL;
    double v;
    if (nd == 0) {
        v = 0.0;
    } else if (nd <= 15 && dexp >= -22 && dexp <= 22) {
        /* exact mantissa and power of ten: one correctly rounded operation */
        static const double pow10[23] = { 1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                          1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                          1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };
        int64_t m = 0;
        for (size_t k = 0; k < nd; k++)
            m = m * 10 + (dig[k] - '0');
        v = dexp >= 0 ? (double)m * pow10[dexp] : (double)m / pow10[-dexp];
    } else {
        /* digits and an exponent, no decimal point: the same in every locale */
        if (dexp > 1000000)
            dexp = 1000000;
        if (dexp < -1000000)
            dexp = -1000000;
        snprintf(dig + nd, sizeof dig - nd, "e%" PRId64, dexp);
        v = strtod(dig, NULL);
    }
    if (!isfinite(v))
        return SEG_ERANGE;
    *out = neg && nd ? -v : v;
    return SEG_OK;
}

static int push_op(cust_import *im, const seg__custop *op, const char *at)
{
    if (im->nops == im->capops) {
        size_t cap = im->capops ? im->capops * 2 : 256;
        seg__custop *ops = seg__realloc_array(im->a, im->ops, cap, sizeof *ops);
        if (!ops)
            return oom(im);
        im->ops = ops;
        op_pos *pos = seg__realloc_array(im->a, im->pos, cap, sizeof *pos);
        if (!pos)
            return oom(im);
        im->pos = pos;
        im->capops = cap;
    }
    im->ops[im->nops] = *op;
    op_pos *w = &im->pos[im->nops];
    w->row = im->tok.row;
    w->at = at;
    w->row_line = im->tok.row_line;
    im->nops++;
    return SEG_OK;
}

static int cell_err(cust_import *im, int code, const cust_col *cc, const seg__csv_field *f,
                    const char *what)
{
    char msg[SEG_ID_MAX + 64];
    snprintf(msg, sizeof msg, "%s%.*s: %s", cc->kind == COL_CONSENT ? "consent:" : "",
             (int)(cc->name.n > SEG_ID_MAX ? SEG_ID_MAX : cc->name.n), cc->name.p, what);
    return err_at(im, code, f->raw, msg, f->p, f->n);
}

static int read_row(cust_import *im)
{
    seg__csv *c = &im->tok;
    if (c->nfields != im->ncols) {
        const char *at = c->nfields > im->ncols ? c->fields[im->ncols].raw : c->row_end;
        uint64_t line, col;
        seg__csv_locate(c->row, c->row_line, at, &line, &col);
        return seg__error(im->db, SEG_EPARSE,
                          "%s:%" PRIu64 ":%" PRIu64 ": expected %zu fields, got %zu", im->src,
                          line, col, im->ncols, c->nfields);
    }
    seg__custop op;
    memset(&op, 0, sizeof op);
    const seg__csv_field *idf = &c->fields[im->id_col];
    seg__str id;
    int rc = stable(im, idf, &id);
    if (rc != SEG_OK)
        return rc;
    op.op = SEG__OP_ADD;
    op.customer_id = id;
    if ((rc = push_op(im, &op, idf->raw)) != SEG_OK)
        return rc;
    for (size_t i = 0; i < im->ncols; i++) {
        const cust_col *cc = &im->cols[i];
        const seg__csv_field *f = &c->fields[i];
        if (cc->kind == COL_ID || f->n == 0)
            continue;
        memset(&op, 0, sizeof op);
        op.customer_id = id;
        op.name = cc->name;
        if (cc->kind == COL_CONSENT) {
            int v = parse_yesno(f->p, f->n, "granted", "denied");
            if (v < 0)
                return cell_err(im, SEG_EINVAL, cc, f,
                                "invalid consent (granted, denied or empty)");
            op.op = SEG__OP_CONSENT;
            op.consent = v ? SEG_CONSENT_GRANTED : SEG_CONSENT_DENIED;
        } else {
            op.op = SEG__OP_ATTR;
            op.type = cc->type;
            switch (cc->type) {
            case SEG_TYPE_INT:
                rc = seg__parse_int64(f->p, f->n, &op.i);
                if (rc != SEG_OK)
                    return cell_err(im, rc, cc, f,
                                    rc == SEG_ERANGE ? "integer out of range"
                                                     : "invalid integer");
                break;
            case SEG_TYPE_NUMBER:
                rc = parse_number(f->p, f->n, &op.d);
                if (rc != SEG_OK)
                    return cell_err(im, rc, cc, f,
                                    rc == SEG_ERANGE ? "number out of range"
                                                     : "invalid number");
                break;
            case SEG_TYPE_BOOL: {
                int v = parse_yesno(f->p, f->n, "true", "false");
                if (v < 0)
                    return cell_err(im, SEG_EINVAL, cc, f,
                                    "invalid boolean (true/false, yes/no, 1/0)");
                op.i = v;
                break;
            }
            case SEG_TYPE_TIME:
                rc = seg__time_parse_cached(&im->tcache, &op.i, f->p, f->n);
                if (rc != SEG_OK)
                    return cell_err(im, rc, cc, f,
                                    rc == SEG_ERANGE ? "time out of range" : "invalid time");
                break;
            default: /* SEG_TYPE_STRING */
                if (f->n > SEG_ATTR_VALUE_MAX)
                    return err_at(im, SEG_EINVAL, f->raw,
                                  "string value longer than 4096 bytes", NULL, 0);
                if (!seg__utf8_valid(f->p, f->n))
                    return err_at(im, SEG_EINVAL, f->raw, "string value is not valid UTF-8",
                                  NULL, 0);
                if ((rc = stable(im, f, &op.s)) != SEG_OK)
                    return rc;
                break;
            }
        }
        if ((rc = push_op(im, &op, f->raw)) != SEG_OK)
            return rc;
    }
    return SEG_OK;
}

static int import(seg_db *db, const char *data, size_t len, const char *src)
{
    int rc0 = seg__db_writable(db);
    if (rc0 != SEG_OK)
        return rc0;
    cust_import im;
    memset(&im, 0, sizeof im);
    im.db = db;
    im.a = seg__db_alloc(db);
    im.src = src;
    seg__csv_init(&im.tok, im.a);
    seg__csv_feed(&im.tok, data, len, true);
    bool header = false;
    int rc;
    for (;;) {
        int r = seg__csv_next(&im.tok);
        if (r == SEG__CSV_ROW) {
            rc = header ? read_row(&im) : read_header(&im);
            header = true;
            if (rc != SEG_OK)
                break;
            continue;
        }
        if (r == SEG__CSV_END) {
            rc = SEG_OK;
        } else if (r == SEG_EPARSE) {
            rc = seg__error(db, SEG_EPARSE, "%s:%" PRIu64 ":%" PRIu64 ": %s", src,
                            im.tok.err_line, im.tok.err_col, im.tok.err_msg);
        } else {
            rc = oom(&im); /* SEG_ENOMEM (MORE cannot happen: the input is final) */
        }
        break;
    }
    if (rc == SEG_OK && im.nops) {
        size_t bad = (size_t)-1;
        rc = seg__customer_apply(db, im.ops, im.nops, &bad);
        if (rc != SEG_OK && bad < im.nops) {
            uint64_t line, col;
            seg__csv_locate(im.pos[bad].row, im.pos[bad].row_line, im.pos[bad].at, &line,
                            &col);
            seg__error_prefix(db, "%s:%" PRIu64 ":%" PRIu64 ": ", src, line, col);
        }
    }
    if (rc == SEG_OK)
        seg__error_clear(db);
    seg__free(im.a, im.ops);
    seg__free(im.a, im.pos);
    seg__free(im.a, im.cols);
    arena_free(&im);
    seg__csv_free(&im.tok);
    return rc;
}

SEG_API int seg_customer_import_csv(seg_db *db, const char *data, size_t len,
                                    const char *source_name)
{
    if (!db)
        return SEG_EINVAL;
    if (!data && len)
        return seg__error(db, SEG_EINVAL, "seg_customer_import_csv: data is NULL");
    return import(db, data, len, source_name ? source_name : "<buffer>");
}

SEG_API int seg_customer_import_csv_file(seg_db *db, const char *path)
{
    if (!db)
        return SEG_EINVAL;
    if (!path)
        return seg__error(db, SEG_EINVAL, "seg_customer_import_csv_file: path is NULL");
    char *buf;
    size_t len;
    int rc = seg__csv_read_file(db, path, &buf, &len);
    if (rc != SEG_OK)
        return rc;
    rc = import(db, buf, len, path);
    seg__free(seg__db_alloc(db), buf);
    return rc;
}
