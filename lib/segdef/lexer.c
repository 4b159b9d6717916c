/*
 * The definition language's tokens.
 *
 * Identifiers [A-Za-z_][A-Za-z0-9_]* (at most SEG_ID_MAX bytes), keywords
 * (lowercase, reserved), integers, decimals (digits '.' digits), durations
 * (an integer with a unit: s, min, h, d, w), strings in double quotes with
 * the escapes \" \\ \n \t \r \xHH, punctuation, and comments from '#' to the
 * end of the line.  Positions are 1-based lines and character columns.
 */
#include "segdef/segdef-private.h"

#include <stdio.h>

const int64_t seg__du_seconds[5] = { 1, 60, 3600, 86400, 604800 };
const char *const seg__du_name[5] = { "s", "min", "h", "d", "w" };

static const struct { const char *w; int kind; } keywords[] = {
    { "segment", SEG__TK_SEGMENT }, { "set", SEG__TK_SET }, { "else", SEG__TK_ELSE },
    { "and", SEG__TK_AND }, { "or", SEG__TK_OR }, { "not", SEG__TK_NOT },
    { "in", SEG__TK_IN }, { "between", SEG__TK_BETWEEN }, { "is", SEG__TK_IS },
    { "null", SEG__TK_NULL }, { "true", SEG__TK_TRUE }, { "false", SEG__TK_FALSE },
};

int seg__sd_keyword(const char *p, size_t n)
{
    for (size_t k = 0; k < sizeof keywords / sizeof keywords[0]; k++)
        if (strlen(keywords[k].w) == n && memcmp(keywords[k].w, p, n) == 0)
            return keywords[k].kind;
    return SEG__TK_IDENT;
}

static bool is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }

bool seg__sd_is_ident(const char *p, size_t n)
{
    if (n == 0 || n > SEG_ID_MAX || !is_alpha((unsigned char)p[0]))
        return false;
    for (size_t k = 1; k < n; k++)
        if (!is_alpha((unsigned char)p[k]) && !is_digit((unsigned char)p[k]))
            return false;
    return seg__sd_keyword(p, n) == SEG__TK_IDENT;
}

void seg__lex_init(seg__lexer *lx, const seg__alloc *a, const char *src, size_t len)
{
    memset(lx, 0, sizeof *lx);
    lx->alloc = a;
    lx->src = lx->pos = lx->line_start = src;
    lx->end = src + len;
    lx->line = 1;
}

void seg__lex_free(seg__lexer *lx)
{
    seg__free(lx->alloc, lx->sbuf);
    lx->sbuf = NULL;
    lx->sbuf_cap = 0;
}

uint32_t seg__lex_col(const char *line_start, const char *p)
{
    uint32_t col = 1;
    for (const char *q = line_start; q < p; q++)
        if (((unsigned char)*q & 0xC0) != 0x80)
            col++;
    return col;
}

static int lex_error(seg__lexer *lx, const char *at, int code, const char *fmt, ...)
    SEG_PRINTF(4, 5);
static int lex_error(seg__lexer *lx, const char *at, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lx->msg, sizeof lx->msg, fmt, ap);
    va_end(ap);
    lx->err = code;
    lx->err_line = lx->line;
    lx->err_col = seg__lex_col(lx->line_start, at);
    return code;
}

/* A printable rendering of the byte at p for a message. */
static void show_char(char out[16], const char *p, const char *end)
{
    unsigned char c = (unsigned char)*p;
    if (c >= 0x21 && c < 0x7f && c != '\'')
        snprintf(out, 16, "'%c'", c);
    else if (c == '\'')
        snprintf(out, 16, "\"'\"");
    else if (c >= 0x80) {
        /* a whole UTF-8 character when it is one */
        size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (n > 1 && (size_t)(end - p) >= n && seg__utf8_valid(p, n)) {
            out[0] = '\'';
            memcpy(out + 1, p, n);
            out[n + 1] = '\'';
            out[n + 2] = '\0';
        } else {
            snprintf(out, 16, "byte 0x%02X", c);
        }
    } else {
        snprintf(out, 16, "byte 0x%02X", c);
    }
}

static int sbuf_put(seg__lexer *lx, size_t *n, char c)
{
    if (*n == lx->sbuf_cap) {
        size_t cap = lx->sbuf_cap ? lx->sbuf_cap * 2 : 64;
        char *p = seg__realloc(lx->alloc, lx->sbuf, cap);
        if (!p)
            return SEG_ENOMEM;
        lx->sbuf = p;
        lx->sbuf_cap = cap;
    }
    lx->sbuf[(*n)++] = c;
    return SEG_OK;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int lex_string(seg__lexer *lx, seg__tok *t)
{
    const char *start = lx->pos;
    const char *p = lx->pos + 1;
    size_t n = 0;
    for (;;) {
        if (p >= lx->end || *p == '\n' || *p == '\r')
            return lex_error(lx, start, SEG_EPARSE,
                             "unterminated string (a string ends with '\"' on the same line)");
        char c = *p;
        if (c == '"')
            break;
        if (c == '\\') {
            const char *esc = p;
            if (p + 1 >= lx->end)
                return lex_error(lx, esc, SEG_EPARSE, "unterminated string");
            char e = p[1];
            p += 2;
            switch (e) {
            case '"': c = '"'; break;
            case '\\': c = '\\'; break;
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'x': {
                int h = p < lx->end ? hexval((unsigned char)p[0]) : -1;
                int l = p + 1 < lx->end ? hexval((unsigned char)p[1]) : -1;
                if (h < 0 || l < 0)
                    return lex_error(lx, esc, SEG_EPARSE,
                                     "bad escape: \\x needs two hex digits");
                int v = h * 16 + l;
                if (v == 0 || v >= 0x80)
                    return lex_error(lx, esc, SEG_EPARSE,
                                     "bad escape \\x%c%c: only \\x01..\\x7F (write other "
                                     "characters as UTF-8 text)", p[0], p[1]);
                c = (char)v;
                p += 2;
                break;
            }
            default: {
                char shown[16];
                show_char(shown, p - 1, lx->end);
                return lex_error(lx, esc, SEG_EPARSE,
                                 "unknown escape '\\' followed by %s (use \\\" \\\\ \\n \\t \\r "
                                 "or \\xHH)", shown);
            }
            }
            if (sbuf_put(lx, &n, c) != SEG_OK)
                return lex_error(lx, start, SEG_ENOMEM, "out of memory");
        } else {
            if ((unsigned char)c < 0x20 && c != '\t')
                return lex_error(lx, p, SEG_EPARSE,
                                 "control character 0x%02X in a string (write it as \\xHH)",
                                 (unsigned char)c);
            if (sbuf_put(lx, &n, c) != SEG_OK)
                return lex_error(lx, start, SEG_ENOMEM, "out of memory");
            p++;
        }
        if (n > SEG_ATTR_VALUE_MAX)
            return lex_error(lx, start, SEG_ELIMIT, "string longer than %d bytes",
                             SEG_ATTR_VALUE_MAX);
    }
    if (!seg__utf8_valid(lx->sbuf ? lx->sbuf : "", n))
        return lex_error(lx, start, SEG_EPARSE, "string is not valid UTF-8");
    t->kind = SEG__TK_STR;
    t->s = lx->sbuf;
    t->sn = n;
    lx->pos = p + 1;
    t->n = (size_t)(lx->pos - start);
    return SEG_OK;
}

static int lex_number(seg__lexer *lx, seg__tok *t)
{
    const char *start = lx->pos, *p = lx->pos;
    int64_t v = 0;
    int digits = 0;
    for (; p < lx->end && is_digit((unsigned char)*p); p++, digits++) {
        int d = *p - '0';
        if (v > (INT64_MAX - d) / 10)
            return lex_error(lx, start, SEG_ERANGE,
                             "number too large (at most 9223372036854775807)");
        v = v * 10 + d;
    }
    (void)digits;
    if (p < lx->end && *p == '.') {
        if (p + 1 >= lx->end || !is_digit((unsigned char)p[1]))
            return lex_error(lx, p, SEG_EPARSE, "a decimal point must be followed by a digit");
        p++;
        int scale = 0;
        for (; p < lx->end && is_digit((unsigned char)*p); p++) {
            int d = *p - '0';
            if (scale >= 18 || v > (INT64_MAX - d) / 10)
                return lex_error(lx, start, SEG_ERANGE,
                                 "decimal number with too many digits (at most 18 "
                                 "significant digits and 18 decimals)");
            v = v * 10 + d;
            scale++;
        }
        if (p < lx->end && (is_alpha((unsigned char)*p) || *p == '.'))
            return lex_error(lx, p, SEG_EPARSE,
                             *p == '.' ? "a number has at most one decimal point"
                                       : "a duration is a whole number of a unit (write 36h, "
                                         "not 1.5d)");
        t->kind = SEG__TK_DEC;
        t->i = v;
        t->scale = scale;
    } else if (p < lx->end && is_alpha((unsigned char)*p)) {
        const char *u = p;
        while (p < lx->end && (is_alpha((unsigned char)*p) || is_digit((unsigned char)*p)))
            p++;
        size_t un = (size_t)(p - u);
        int unit = -1;
        for (int k = 0; k < 5; k++)
            if (strlen(seg__du_name[k]) == un && memcmp(seg__du_name[k], u, un) == 0)
                unit = k;
        if (unit < 0)
            return lex_error(lx, u, SEG_EPARSE,
                             "unknown duration unit '%.*s' (use s, min, h, d or w; a month or "
                             "a year is not a fixed duration: write 30d or 365d)",
                             (int)(un > 16 ? 16 : un), u);
        if (v > INT64_MAX / seg__du_seconds[unit] || v * seg__du_seconds[unit] > SEG_TIME_MAX - SEG_TIME_MIN)
            return lex_error(lx, start, SEG_ERANGE, "duration too long");
        t->kind = SEG__TK_DUR;
        t->i = v;
        t->unit = unit;
    } else {
        t->kind = SEG__TK_INT;
        t->i = v;
    }
    lx->pos = p;
    t->n = (size_t)(p - start);
    return SEG_OK;
}

int seg__lex_next(seg__lexer *lx, seg__tok *t)
{
    memset(t, 0, sizeof *t);
    /* blanks and comments */
    for (;;) {
        if (lx->pos >= lx->end)
            break;
        char c = *lx->pos;
        if (c == ' ' || c == '\t' || c == '\r') {
            lx->pos++;
        } else if (c == '\n') {
            lx->pos++;
            lx->line++;
            lx->line_start = lx->pos;
        } else if (c == '#') {
            while (lx->pos < lx->end && *lx->pos != '\n')
                lx->pos++;
        } else {
            break;
        }
    }
    t->line = lx->line;
    t->col = seg__lex_col(lx->line_start, lx->pos);
    t->p = lx->pos;
    if (lx->pos >= lx->end) {
        t->kind = SEG__TK_EOF;
        return SEG_OK;
    }
    const char *p = lx->pos;
    unsigned char c = (unsigned char)*p;
    if (is_alpha(c)) {
        const char *q = p;
        while (q < lx->end && (is_alpha((unsigned char)*q) || is_digit((unsigned char)*q)))
            q++;
        if ((size_t)(q - p) > SEG_ID_MAX)
            return lex_error(lx, p, SEG_ELIMIT, "name longer than %d bytes", SEG_ID_MAX);
        t->n = (size_t)(q - p);
        t->kind = seg__sd_keyword(p, t->n);
        lx->pos = q;
        return SEG_OK;
    }
    if (is_digit(c))
        return lex_number(lx, t);
    if (c == '"')
        return lex_string(lx, t);
    int kind = -1;
    size_t n = 1;
    char c2 = p + 1 < lx->end ? p[1] : '\0';
    switch (c) {
    case '(': kind = SEG__TK_LPAREN; break;
    case ')': kind = SEG__TK_RPAREN; break;
    case '[': kind = SEG__TK_LBRACK; break;
    case ']': kind = SEG__TK_RBRACK; break;
    case '{': kind = SEG__TK_LBRACE; break;
    case '}': kind = SEG__TK_RBRACE; break;
    case ',': kind = SEG__TK_COMMA; break;
    case ':': kind = SEG__TK_COLON; break;
    case ';': kind = SEG__TK_SEMI; break;
    case '+': kind = SEG__TK_PLUS; break;
    case '-':
        if (c2 == '>') { kind = SEG__TK_ARROW; n = 2; } else kind = SEG__TK_MINUS;
        break;
    case '*': kind = SEG__TK_STAR; break;
    case '/': kind = SEG__TK_SLASH; break;
    case '=':
        if (c2 == '=') { kind = SEG__TK_EQ; n = 2; }
        break;
    case '!':
        if (c2 == '=') { kind = SEG__TK_NE; n = 2; }
        break;
    case '<':
        if (c2 == '=') { kind = SEG__TK_LE; n = 2; } else kind = SEG__TK_LT;
        break;
    case '>':
        if (c2 == '=') { kind = SEG__TK_GE; n = 2; } else kind = SEG__TK_GT;
        break;
    default:
        break;
    }
    if (kind < 0) {
        if (c == '=')
            return lex_error(lx, p, SEG_EPARSE, "'=' is not an operator: compare with '=='");
        if (c == '!')
            return lex_error(lx, p, SEG_EPARSE, "'!' is not an operator: use 'not' or '!='");
        if (c == '&' || c == '|')
            return lex_error(lx, p, SEG_EPARSE, "'%c' is not an operator: use 'and' or 'or'", c);
        if (c == '\'')
            return lex_error(lx, p, SEG_EPARSE, "strings are written in double quotes");
        char shown[16];
        show_char(shown, p, lx->end);
        return lex_error(lx, p, SEG_EPARSE, "unexpected character %s", shown);
    }
    t->kind = kind;
    t->n = n;
    lx->pos = p + n;
    return SEG_OK;
}
