/* Hashing, UTF-8 and id validation. */
#include "core/core-private.h"

#include <stdio.h>

/* Read 8 bytes as little-endian, so hashes (and the derived event ids
 * built from them) are the same on every machine. */
static inline uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

static inline uint64_t fold(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

#define K0 UINT64_C(0x9e3779b97f4a7c15)
#define K1 UINT64_C(0xc2b2ae3d27d4eb4f)
#define K2 UINT64_C(0x165667b19e3779f9)
#define K3 UINT64_C(0xd6e8feb86659fd93)

uint64_t seg__hash(const void *data, size_t n, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t h = fold(seed ^ K0, (uint64_t)n ^ K1);
    while (n >= 16) {
        h = fold(rd64(p) ^ K2 ^ h, rd64(p + 8) ^ K3);
        p += 16;
        n -= 16;
    }
    if (n >= 8) {
        h = fold(rd64(p) ^ K2 ^ h, K1);
        p += 8;
        n -= 8;
    }
    if (n) {
        uint8_t t[8] = { 0 };
        memcpy(t, p, n);
        h = fold(rd64(t) ^ K3 ^ h, K0 ^ (uint64_t)n);
    }
    return fold(h ^ K1, h ^ K2 ^ seed);
}

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
