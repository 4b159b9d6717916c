/* Hashing, UTF-8 and id validation; growing texts. */
#include "core/core-private.h"

#include <stdarg.h>
#include <stdio.h>

bool seg__utf8_valid(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s, *e = p + n;
    while (p < e) {
        /* ASCII fast path, 8 bytes at a time */
        while (e - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (w & UINT64_C(0x8080808080808080))
                break;
            /* a NUL byte inside? */
            if ((w - UINT64_C(0x0101010101010101)) & ~w & UINT64_C(0x8080808080808080))
                return false;
            p += 8;
        }
        if (p >= e)
            break;
        uint8_t c = *p;
        if (c < 0x80) {
            if (c == 0)
                return false;
            p++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if ((size_t)(e - p) < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += len;
    }
    return true;
}

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Does the word hold a byte >= 0x80, < 0x20 or == 0x7f? */
static inline bool word_not_plain(uint64_t w)
{
    uint64_t del = w ^ (ONES * 0x7f);
    return ((w | ((w - ONES * 0x20) & ~w) | ((del - ONES) & ~del)) & HIGHS) != 0;
}

int seg__check_id(seg_db *db, const char *what, seg__str s)
{
    if (!s.p || s.n == 0)
        return seg__error(db, SEG_EINVAL, "%s: empty", what);
    if (s.n > SEG_ID_MAX)
        return seg__error(db, SEG_EINVAL, "%s: longer than %d bytes (%zu)", what, SEG_ID_MAX,
                          s.n);
    /* fast path: printable ASCII, 8 bytes at a time */
    size_t k = 0;
    bool plain = true;
    for (; k + 8 <= s.n && plain; k += 8) {
        uint64_t w;
        memcpy(&w, s.p + k, 8);
        plain = !word_not_plain(w);
    }
    if (plain && k < s.n) {
        uint64_t w = ONES * 'A';
        memcpy(&w, s.p + k, s.n - k);
        plain = !word_not_plain(w);
    }
    if (plain)
        return SEG_OK;
    for (k = 0; k < s.n; k++) {
        uint8_t c = (uint8_t)s.p[k];
        if (c < 0x20 || c == 0x7f)
            return seg__error(db, SEG_EINVAL, "%s: control character 0x%02x at byte %zu", what,
                              c, k + 1);
    }
    if (!seg__utf8_valid(s.p, s.n))
        return seg__error(db, SEG_EINVAL, "%s: invalid UTF-8", what);
    return SEG_OK;
}

void seg__text_put(seg__text *t, const char *s, size_t n)
{
    if (t->oom)
        return;
    if (t->cap - t->n < n + 1) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap - t->n < n + 1) {
            if (cap > SIZE_MAX / 2) {
                t->oom = true;
                return;
            }
            cap *= 2;
        }
        char *q = seg__realloc(t->a, t->p, cap);
        if (!q) {
            t->oom = true;
            return;
        }
        t->p = q;
        t->cap = cap;
    }
    memcpy(t->p + t->n, s, n);
    t->n += n;
    t->p[t->n] = '\0';
}

void seg__text_printf(seg__text *t, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->oom = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        seg__text_put(t, small, (size_t)n);
        return;
    }
    char *big = seg__malloc(t->a, (size_t)n + 1);
    if (!big) {
        t->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    seg__text_put(t, big, (size_t)n);
    seg__free(t->a, big);
}
