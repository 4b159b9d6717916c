/*
 * CSV: the RFC 4180 tokenizer (shared with the customer import) and the
 * event import, from memory or from a file read in chunks.
 *
 * Decisions where the public contract is silent:
 * - A completely empty line (nothing, or only CR, before its LF) is
 *   skipped, everywhere, including before the header.  A line holding only
 *   "" is a row with one empty field.  An input with no row at all (empty,
 *   or only a BOM and empty lines) imports nothing and succeeds.
 * - Header names match exactly and case-sensitively, with no trimming.
 *   column_map is applied first; its targets must be known column names (or
 *   NULL / "" to ignore the column).
 * - Malformed structure (quoting, a row with the wrong number of fields)
 *   always fails the whole import with SEG_EPARSE after rolling the batch
 *   back, also in per-event mode: the rows around a broken quote cannot be
 *   trusted.  A bad cell (time, amount, type, quantity) or an event the
 *   batch refuses is an event error: rejected in per-event mode, fatal in
 *   atomic mode.
 * - Data row indexes (on_reject) count rows after the header, empty lines
 *   not counted.
 * - A header problem (unknown, duplicate or missing column) is SEG_EINVAL.
 * - SEG_ENOMEM, SEG_ELIMIT and SEG_ESTORAGE from the batch end the import in
 *   per-event mode too (as in seg_event_ingest_batch).
 */
#include "segment-private.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef O_CLOEXEC
#  define O_CLOEXEC 0
#endif

/* ================================================================ */
/* Tokenizer                                                        */
/* ================================================================ */

/* SEG_CSV_NO_SIMD / SEG_CSV_NO_SWAR select the portable fallbacks (tests) */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && !defined(SEG_CSV_NO_SWAR)
#  define CSV_SWAR 1
#else
#  define CSV_SWAR 0
#endif
#if (defined(__SSE2__) || defined(_M_X64)) && !defined(SEG_CSV_NO_SIMD)
#  include <emmintrin.h>
#  define CSV_SSE2 1
#else
#  define CSV_SSE2 0
#endif

/* bytes of the window indexed at a time by the fast path */
#define INDEX_SPAN 16384

#define ROW_SLOW 3 /* internal: the fast scanner hands the row to the slow one */

void seg__csv_init(seg__csv *c, const seg__alloc *a)
{
    memset(c, 0, sizeof *c);
    c->alloc = a;
    c->line = 1;
    c->keep = SEG__CSV_MAX_COLUMNS;
    c->buf = "";
}

void seg__csv_free(seg__csv *c)
{
    seg__free(c->alloc, c->fields);
    seg__free(c->alloc, c->scratch);
    seg__free(c->alloc, c->dpos);
    c->fields = NULL;
    c->scratch = NULL;
    c->dpos = NULL;
    c->cap = c->scratch_cap = 0;
}

static int grow_fields(seg__csv *c, size_t need)
{
    size_t cap = c->cap ? c->cap : 16;
    while (cap < need)
        cap *= 2;
    seg__csv_field *f = seg__realloc_array(c->alloc, c->fields, cap, sizeof *f);
    if (!f)
        return SEG_ENOMEM;
    c->fields = f;
    c->cap = cap;
    return SEG_OK;
}

int seg__csv_keep(seg__csv *c, size_t keep)
{
    c->keep = keep;
    return keep > c->cap ? grow_fields(c, keep) : SEG_OK;
}

int seg__csv_expect(seg__csv *c, size_t n)
{
    if (n > c->keep)
        n = 0;
    if (n && !c->dpos) {
        /* one entry per byte at most, plus the slack flatten() writes */
        c->dpos = seg__malloc(c->alloc, (INDEX_SPAN + 64) * sizeof *c->dpos);
        if (!c->dpos)
            return SEG_ENOMEM;
    }
    if (n > c->cap && grow_fields(c, n) != SEG_OK)
        return SEG_ENOMEM;
    c->expect = n;
    c->dn = c->di = 0;
    return SEG_OK;
}

void seg__csv_feed(seg__csv *c, const char *buf, size_t len, bool final)
{
    c->buf = buf ? buf : "";
    c->len = buf ? len : 0;
    c->pos = 0;
    c->final = final;
    c->dn = c->di = 0;
}

void seg__csv_locate(const char *row, uint64_t row_line, const char *at,
                     uint64_t *line_out, uint64_t *col_out)
{
    const char *ls = row;
    uint64_t line = row_line, col = 1;
    for (const char *p = row; p < at; p++) {
        if (*p == '\n') {
            line++;
            ls = p + 1;
        }
    }
    for (const char *p = ls; p < at; p++)
        col += ((unsigned char)*p & 0xC0u) != 0x80u; /* count UTF-8 lead bytes */
    *line_out = line;
    *col_out = col;
}

void seg__csv_excerpt(char out[64], const char *p, size_t n)
{
    size_t max = 40, k = n;
    bool cut = false;
    if (k > max) {
        k = max;
        while (k > 0 && ((unsigned char)p[k] & 0xC0u) == 0x80u)
            k--; /* do not split a UTF-8 sequence */
        cut = true;
    }
    size_t w = 0;
    for (size_t i = 0; i < k; i++) {
        unsigned char ch = (unsigned char)p[i];
        out[w++] = ch < 0x20u || ch == 0x7fu ? '?' : (char)ch;
    }
    if (cut) {
        memcpy(out + w, "...", 3);
        w += 3;
    }
    out[w] = '\0';
}

static int perr(seg__csv *c, const char *row, const char *at, const char *msg)
{
    c->err_msg = msg;
    seg__csv_locate(row, c->line, at, &c->err_line, &c->err_col);
    return SEG_EPARSE;
}

/* Store a field's value.  The importer reads {p, n} right away, and some
 * compilers read the pair as one 16-byte load: two 8-byte stores would then
 * stall store-to-load forwarding, so store the pair at once where we can. */
static inline void set_value(seg__csv_field *f, const char *p, size_t n)
{
#if CSV_SSE2 && (defined(__x86_64__) || defined(_M_X64)) /* 64-bit p and n */
    _mm_storeu_si128((__m128i *)(void *)f, _mm_set_epi64x((long long)n, (long long)(uintptr_t)p));
#else
    f->p = p;
    f->n = n;
#endif
}

static inline int put_field(seg__csv *c, size_t i, const char *p, size_t n, const char *raw)
{
    if (i < c->keep) {
        if (SEG_UNLIKELY(i >= c->cap) && grow_fields(c, i + 1) != SEG_OK)
            return SEG_ENOMEM;
        seg__csv_field *f = &c->fields[i];
        set_value(f, p, n);
        f->raw = raw;
    }
    return SEG_OK;
}

static int scratch_put(seg__csv *c, const char *p, size_t n)
{
    if (n > c->scratch_cap - c->scratch_len) {
        size_t cap = c->scratch_cap ? c->scratch_cap : 256;
        while (cap - c->scratch_len < n) {
            if (cap > SIZE_MAX / 2)
                return SEG_ENOMEM;
            cap *= 2;
        }
        char *s = seg__realloc(c->alloc, c->scratch, cap);
        if (!s)
            return SEG_ENOMEM;
        c->scratch = s;
        c->scratch_cap = cap;
    }
    memcpy(c->scratch + c->scratch_len, p, n);
    c->scratch_len += n;
    return SEG_OK;
}

static inline void row_done(seg__csv *c, const char *row, const char *row_end,
                            const char *next, size_t nf, uint64_t newlines)
{
    c->row = row;
    c->row_end = row_end;
    c->row_line = c->line;
    c->line += 1 + newlines;
    c->nfields = nf;
    c->pos = (size_t)(next - c->buf);
}

#if CSV_SWAR
static inline uint64_t load64(const char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

#define ONES UINT64_C(0x0101010101010101)
#define LOW7 UINT64_C(0x7f7f7f7f7f7f7f7f)

/* high bit set in every byte of w equal to the byte of pat (exact) */
static inline uint64_t byte_eq(uint64_t w, uint64_t pat)
{
    uint64_t x = w ^ pat;
    return ~(((x & LOW7) + LOW7) | x | LOW7);
}
#endif

/*
 * The common case: a row without quotes that ends with LF inside the
 * window.  Anything else (a quote, no LF before the window's end) goes to
 * row_slow, which starts the row over.
 */
static int row_fast(seg__csv *c)
{
    const char *const end = c->buf + c->len;
    const char *const row = c->buf + c->pos;
    const char *p = row, *fs = row;
    size_t nf = 0;
#if CSV_SWAR
    for (; end - p >= 8; p += 8) {
        uint64_t w = load64(p);
        uint64_t m = byte_eq(w, ONES * ',') | byte_eq(w, ONES * '\n') | byte_eq(w, ONES * '"');
        while (m) {
            const char *q = p + (__builtin_ctzll(m) >> 3);
            m &= m - 1;
            if (*q == ',') {
                if (put_field(c, nf++, fs, (size_t)(q - fs), fs) != SEG_OK)
                    return SEG_ENOMEM;
                fs = q + 1;
            } else if (*q == '\n') {
                const char *fe = q > fs && q[-1] == '\r' ? q - 1 : q;
                if (put_field(c, nf++, fs, (size_t)(fe - fs), fs) != SEG_OK)
                    return SEG_ENOMEM;
                row_done(c, row, fe, q + 1, nf, 0);
                return SEG__CSV_ROW;
            } else {
                return ROW_SLOW;
            }
        }
    }
#endif
    for (; p < end; p++) {
        char ch = *p;
        if (ch == ',') {
            if (put_field(c, nf++, fs, (size_t)(p - fs), fs) != SEG_OK)
                return SEG_ENOMEM;
            fs = p + 1;
        } else if (ch == '\n') {
            const char *fe = p > fs && p[-1] == '\r' ? p - 1 : p;
            if (put_field(c, nf++, fs, (size_t)(fe - fs), fs) != SEG_OK)
                return SEG_ENOMEM;
            row_done(c, row, fe, p + 1, nf, 0);
            return SEG__CSV_ROW;
        } else if (ch == '"') {
            return ROW_SLOW;
        }
    }
    return ROW_SLOW;
}

static uint64_t count_newlines(const char *p, const char *end)
{
    uint64_t k = 0;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        k++;
        p++;
    }
    return k;
}

/* The general state machine: quotes, the end of the window. */
static int row_slow(seg__csv *c)
{
    const char *const end = c->buf + c->len;
    const char *const row = c->buf + c->pos;
    const char *p = row, *row_end;
    uint64_t nl = 0;
    size_t nf = 0;
    bool any_esc = false;
    c->scratch_len = 0;
    for (;;) {
        const char *fs = p;
        if (p < end && *p == '"') {
            const char *v = ++p;
            bool esc = false;
            size_t soff = 0;
            for (;;) {
                const char *q = memchr(p, '"', (size_t)(end - p));
                if (!q) {
                    if (!c->final)
                        return SEG__CSV_MORE;
                    return perr(c, row, fs, "unterminated quoted field");
                }
                if (q + 1 == end && !c->final)
                    return SEG__CSV_MORE; /* "" or the closing quote? */
                if (q + 1 < end && q[1] == '"') {
                    if (!esc) {
                        esc = true;
                        soff = c->scratch_len;
                    }
                    if (scratch_put(c, p, (size_t)(q + 1 - p)) != SEG_OK)
                        return SEG_ENOMEM;
                    p = q + 2;
                    continue;
                }
                nl += count_newlines(v, q);
                if (esc) {
                    if (scratch_put(c, p, (size_t)(q - p)) != SEG_OK)
                        return SEG_ENOMEM;
                    if (put_field(c, nf, NULL, c->scratch_len - soff, fs) != SEG_OK)
                        return SEG_ENOMEM;
                    if (nf < c->keep)
                        c->fields[nf].soff = soff;
                    any_esc = true;
                } else if (put_field(c, nf, v, (size_t)(q - v), fs) != SEG_OK) {
                    return SEG_ENOMEM;
                }
                nf++;
                p = q + 1;
                break;
            }
            /* after the closing quote */
            if (p == end) { /* only when final */
                row_end = p;
                break;
            }
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p == '\n') {
                row_end = p++;
                break;
            }
            if (*p == '\r') {
                if (p + 1 == end) {
                    if (!c->final)
                        return SEG__CSV_MORE;
                    row_end = p++;
                    break;
                }
                if (p[1] == '\n') {
                    row_end = p;
                    p += 2;
                    break;
                }
            }
            return perr(c, row, p, "unexpected character after a closing quote");
        } else {
            while (p < end && *p != ',' && *p != '\n' && *p != '"')
                p++;
            if (p < end && *p == '"')
                return perr(c, row, p, "quote inside an unquoted field");
            if (p < end && *p == ',') {
                if (put_field(c, nf++, fs, (size_t)(p - fs), fs) != SEG_OK)
                    return SEG_ENOMEM;
                p++;
                continue;
            }
            if (p == end && !c->final)
                return SEG__CSV_MORE;
            const char *fe = p > fs && p[-1] == '\r' ? p - 1 : p;
            if (put_field(c, nf++, fs, (size_t)(fe - fs), fs) != SEG_OK)
                return SEG_ENOMEM;
            row_end = fe;
            if (p < end)
                p++; /* the LF */
            break;
        }
    }
    if (any_esc) {
        size_t kept = nf < c->keep ? nf : c->keep;
        for (size_t i = 0; i < kept; i++)
            if (!c->fields[i].p)
                c->fields[i].p = c->scratch + c->fields[i].soff;
    }
    row_done(c, row, row_end, p, nf, nl);
    return SEG__CSV_ROW;
}


/* ---- the indexed fast path for rows of a known number of fields ---- */

/* bit i set when p[i] is ',', LF or '"' (64 bytes at p) */
static inline uint64_t block_mask(const char *p)
{
#if CSV_SSE2
    const __m128i cm = _mm_set1_epi8(','), nl = _mm_set1_epi8('\n'), qu = _mm_set1_epi8('"');
#define CSV_MASK16(i) \
    ((uint64_t)(uint32_t)_mm_movemask_epi8(_mm_or_si128( \
         _mm_or_si128(_mm_cmpeq_epi8(v##i, cm), _mm_cmpeq_epi8(v##i, nl)), \
         _mm_cmpeq_epi8(v##i, qu))) << (16 * (i)))
    __m128i v0 = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i v1 = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));
    __m128i v2 = _mm_loadu_si128((const __m128i *)(const void *)(p + 32));
    __m128i v3 = _mm_loadu_si128((const __m128i *)(const void *)(p + 48));
    return CSV_MASK16(0) | CSV_MASK16(1) | CSV_MASK16(2) | CSV_MASK16(3);
#undef CSV_MASK16
#elif CSV_SWAR
    uint64_t m = 0;
    for (int i = 0; i < 8; i++) {
        uint64_t w = load64(p + 8 * i);
        uint64_t x = byte_eq(w, ONES * ',') | byte_eq(w, ONES * '\n') | byte_eq(w, ONES * '"');
        /* gather the high bit of each byte into 8 bits */
        uint64_t bits = ((x >> 7) * UINT64_C(0x0102040810204080)) >> 56;
        m |= bits << (8 * i);
    }
    return m;
#else
    uint64_t m = 0;
    for (int i = 0; i < 64; i++) {
        char ch = p[i];
        m |= (uint64_t)(ch == ',' || ch == '\n' || ch == '"') << i;
    }
    return m;
#endif
}

static inline unsigned ctz64(uint64_t m)
{
#if defined(__GNUC__)
    return (unsigned)__builtin_ctzll(m);
#else
    unsigned k = 0;
    while (!(m & 1)) {
        m >>= 1;
        k++;
    }
    return k;
#endif
}

static inline unsigned popcount64(uint64_t m)
{
#if defined(__GNUC__) && defined(__POPCNT__)
    return (unsigned)__builtin_popcountll(m);
#else
    /* without the instruction, the builtin is a library call */
    m = m - ((m >> 1) & UINT64_C(0x5555555555555555));
    m = (m & UINT64_C(0x3333333333333333)) + ((m >> 2) & UINT64_C(0x3333333333333333));
    m = (m + (m >> 4)) & UINT64_C(0x0f0f0f0f0f0f0f0f);
    return (unsigned)((m * UINT64_C(0x0101010101010101)) >> 56);
#endif
}

/* Append the offsets (base + bit) of the set bits of m.  Writes 8 entries
 * unconditionally (no unpredictable branch for the usual few), so `out`
 * needs 64 entries of room. */
static inline uint32_t *flatten(uint32_t *out, uint32_t base, uint64_t m)
{
    unsigned cnt = popcount64(m);
    const uint64_t top = UINT64_C(1) << 63; /* keeps ctz defined when m is 0 */
#define CSV_FLAT1(k) \
    out[k] = base + ctz64(m | top); \
    m &= m - 1
    CSV_FLAT1(0);
    CSV_FLAT1(1);
    CSV_FLAT1(2);
    CSV_FLAT1(3);
    CSV_FLAT1(4);
    CSV_FLAT1(5);
    CSV_FLAT1(6);
    CSV_FLAT1(7);
#undef CSV_FLAT1
    if (SEG_UNLIKELY(cnt > 8)) {
        for (unsigned k = 8; k < cnt; k++) {
            out[k] = base + ctz64(m);
            m &= m - 1;
        }
    }
    return out + cnt;
}

/* Index the delimiters of the next INDEX_SPAN bytes from pos. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void index_build(seg__csv *c)
{
    size_t n = c->len - c->pos;
    if (n > INDEX_SPAN)
        n = INDEX_SPAN;
    const char *p = c->buf + c->pos;
    uint32_t *out = c->dpos;
    size_t i = 0;
    for (; n - i >= 64; i += 64)
        out = flatten(out, (uint32_t)i, block_mask(p + i));
    if (i < n) {
        char tail[64];
        memset(tail, 0, sizeof tail);
        memcpy(tail, p + i, n - i);
        out = flatten(out, (uint32_t)i, block_mask(tail));
    }
    c->seg_base = c->pos;
    c->di = 0;
    c->dn = (size_t)(out - c->dpos);
}

/* A row of exactly `expect` fields without quotes, ending with LF inside
 * the indexed span; anything else goes to the general path. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int row_indexed(seg__csv *c)
{
    const size_t e = c->expect;
    if (c->dn - c->di < e) {
        index_build(c);
        if (c->dn - c->di < e)
            return ROW_SLOW;
    }
    const uint32_t *d = c->dpos + c->di;
    const char *const base = c->buf + c->seg_base;
    const char *const row = c->buf + c->pos;
    const char *const nl = base + d[e - 1];
    if (SEG_UNLIKELY(*nl != '\n'))
        return ROW_SLOW;
    seg__csv_field *f = c->fields;
    const char *fs = row;
    for (size_t k = 0; k + 1 < e; k++) {
        const char *q = base + d[k];
        if (SEG_UNLIKELY(*q != ','))
            return ROW_SLOW;
        set_value(&f[k], fs, (size_t)(q - fs));
        f[k].raw = fs;
        fs = q + 1;
    }
    const char *fe = nl > fs && nl[-1] == '\r' ? nl - 1 : nl;
    set_value(&f[e - 1], fs, (size_t)(fe - fs));
    f[e - 1].raw = fs;
    c->di += e;
    row_done(c, row, fe, nl + 1, e, 0);
    return SEG__CSV_ROW;
}

/* After a row read another way: skip the delimiters it used. */
static inline void index_resync(seg__csv *c)
{
    if (c->di < c->dn) {
        size_t rel = c->pos - c->seg_base;
        while (c->di < c->dn && c->dpos[c->di] < rel)
            c->di++;
    }
}

static int csv_next_general(seg__csv *c);

int seg__csv_next(seg__csv *c)
{
    return csv_next_general(c);
}

/* seg__csv_next() for the import loop: the common row inline */
static inline int csv_next(seg__csv *c)
{
    if (SEG_LIKELY(c->expect > 1 && c->pos < c->len && c->bom_done)) {
        int r = row_indexed(c);
        if (SEG_LIKELY(r == SEG__CSV_ROW))
            return r; /* never an empty line: it has expect > 1 fields */
    }
    return csv_next_general(c);
}

static int csv_next_general(seg__csv *c)
{
    if (SEG_UNLIKELY(!c->bom_done)) {
        static const char bom[3] = { '\xEF', '\xBB', '\xBF' };
        size_t have = c->len - c->pos;
        if (have < 3 && !c->final && memcmp(c->buf + c->pos, bom, have) == 0)
            return SEG__CSV_MORE;
        if (have >= 3 && memcmp(c->buf + c->pos, bom, 3) == 0)
            c->pos += 3;
        c->bom_done = true;
    }
    for (;;) {
        if (c->pos >= c->len)
            return c->final ? SEG__CSV_END : SEG__CSV_MORE;
        int r;
        if (c->expect) {
            r = row_indexed(c);
            if (r == ROW_SLOW) {
                r = row_slow(c);
                index_resync(c);
            }
        } else {
            r = row_fast(c);
            if (r == ROW_SLOW)
                r = row_slow(c);
        }
        if (r != SEG__CSV_ROW)
            return r;
        if (SEG_LIKELY(c->row_end != c->row))
            return r;
        /* an empty line: skip it */
    }
}

/* ================================================================ */
/* Files                                                            */
/* ================================================================ */

static int open_file(seg_db *db, const char *path, int *fd_out, uint64_t *size_out)
{
    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return seg__error(db, SEG_EIO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return seg__error(db, SEG_EIO, "cannot open '%s': %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return seg__error(db, SEG_EIO, "cannot open '%s': %s", path, strerror(EISDIR));
    }
#if defined(POSIX_FADV_SEQUENTIAL)
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL); /* a hint: more read-ahead */
#endif
    *fd_out = fd;
    *size_out = S_ISREG(st.st_mode) && st.st_size > 0 ? (uint64_t)st.st_size : 0;
    return SEG_OK;
}

/* Read until buf is full or the end of the file; *eof set at the end. */
static int read_full(seg_db *db, const char *path, int fd, char *buf, size_t cap,
                     size_t *have, bool *eof)
{
    while (*have < cap && !*eof) {
        ssize_t r = read(fd, buf + *have, cap - *have);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return seg__error(db, SEG_EIO, "cannot read '%s': %s", path, strerror(errno));
        }
        if (r == 0)
            *eof = true;
        *have += (size_t)r;
    }
    return SEG_OK;
}

int seg__csv_read_file(seg_db *db, const char *path, char **buf_out, size_t *len_out)
{
    const seg__alloc *a = seg__db_alloc(db);
    *buf_out = NULL;
    *len_out = 0;
    int fd;
    uint64_t size;
    int rc = open_file(db, path, &fd, &size);
    if (rc != SEG_OK)
        return rc;
    if (size >= SIZE_MAX) {
        close(fd);
        return seg__error(db, SEG_ENOMEM, "'%s': file too large", path);
    }
    size_t cap = (size_t)size + 1, have = 0; /* one spare byte to see the end */
    char *buf = seg__malloc(a, cap);
    bool eof = false;
    rc = buf ? SEG_OK : seg__error(db, SEG_ENOMEM, "out of memory");
    while (rc == SEG_OK) {
        rc = read_full(db, path, fd, buf, cap, &have, &eof);
        if (rc != SEG_OK || eof)
            break;
        /* the file grew, or its size was unknown */
        size_t ncap = cap < SIZE_MAX / 2 ? cap * 2 : 0;
        char *nb = ncap ? seg__realloc(a, buf, ncap) : NULL;
        if (!nb) {
            rc = seg__error(db, SEG_ENOMEM, "out of memory");
            break;
        }
        buf = nb;
        cap = ncap;
    }
    close(fd);
    if (rc != SEG_OK) {
        seg__free(a, buf);
        return rc;
    }
    *buf_out = buf;
    *len_out = have;
    return SEG_OK;
}

/* ================================================================ */
/* Event import                                                     */
/* ================================================================ */

#define NFIELDS (SEG__F_KIND + 1)
/* 1.0 layouts: never change these */
#define CSV_OPTIONS_V1_SIZE sizeof(seg_csv_options)
#define INGEST_STATS_V1_SIZE sizeof(seg_ingest_stats)
#define FILE_CHUNK ((size_t)1 << 20)

static const struct {
    const char *name;
    int field;
} known_columns[] = {
    { "customer_id", SEG__F_CUSTOMER_ID }, { "ts", SEG__F_TS },
    { "amount", SEG__F_AMOUNT },           { "event_id", SEG__F_EVENT_ID },
    { "order_id", SEG__F_ORDER_ID },       { "type", SEG__F_KIND },
    { "channel", SEG__F_CHANNEL },         { "category", SEG__F_CATEGORY },
    { "sku", SEG__F_SKU },                 { "quantity", SEG__F_QUANTITY },
    { "refund_of", SEG__F_REFUND_OF },     { "name", SEG__F_NAME },
};
#define NKNOWN (sizeof known_columns / sizeof known_columns[0])

static int known_field(const char *p, size_t n)
{
    for (size_t k = 0; k < NKNOWN; k++) {
        const char *name = known_columns[k].name;
        if (strlen(name) == n && memcmp(name, p, n) == 0)
            return known_columns[k].field;
    }
    return -1;
}

/* Rows are handed to the store in groups (seg__batch_add_many overlaps the
 * lookups of a group's rows before applying them).  A pending row
 * keeps what an error message needs: where the row and its fields are. */
#define PENDING 64
typedef struct pending_row {
    const char *row;
    uint64_t row_line;
    size_t row_index;
    const char *raw[NFIELDS];
} pending_row;

typedef struct csv_import {
    seg_db *db;
    seg_csv_options o;
    const char *src;
    seg__csv tok;
    seg__batch *batch;
    uint32_t batch_flags;
    bool have_header;
    size_t ncols;
    size_t col_of[NFIELDS]; /* SEG__F_* -> column; ncols (an empty cell) when absent */
    int exponent;
    seg__time_cache tcache;
    uint64_t accepted, duplicates, rejected;
    size_t row_index;
    uint64_t input_size;    /* bytes of the whole input, 0 when unknown */
    uint64_t window_offset; /* offset of the window in the input */
    size_t npending;        /* rows parsed, not yet given to the store */
    seg__ev pending_ev[PENDING];
    pending_row pending[PENDING];
} csv_import;

static int import_begin(csv_import *im, seg_db *db, const seg_csv_options *opts,
                        seg_ingest_stats *stats_out, const char *default_src)
{
    memset(im, 0, sizeof *im);
    im->db = db;
    seg_csv_options d = SEG_CSV_OPTIONS_INIT;
    im->o = d;
    if (stats_out && stats_out->struct_size < INGEST_STATS_V1_SIZE)
        return seg__error(db, SEG_EVERSION,
                          "seg_ingest_stats: unsupported struct_size %zu (1.0 layout is %zu)",
                          stats_out->struct_size, (size_t)INGEST_STATS_V1_SIZE);
    if (stats_out) {
        stats_out->accepted = stats_out->duplicates = stats_out->rejected = 0;
    }
    {
        /* refused up front, also for an input with no rows */
        int wrc = seg__db_writable(db);
        if (wrc != SEG_OK)
            return wrc;
    }
    if (opts && seg__struct_in(&im->o, sizeof im->o, opts, opts->struct_size,
                               CSV_OPTIONS_V1_SIZE) != SEG_OK)
        return seg__error(db, SEG_EVERSION,
                          "seg_csv_options: unsupported struct_size %zu (1.0 layout is %zu)",
                          opts->struct_size, (size_t)CSV_OPTIONS_V1_SIZE);
    if (im->o.flags & ~(SEG_CSV_PER_EVENT | SEG_CSV_IGNORE_UNKNOWN))
        return seg__error(db, SEG_EINVAL, "seg_csv_options: unknown flags 0x%x",
                          (unsigned)im->o.flags);
    if (im->o.column_map) {
        for (const char *const *m = im->o.column_map; *m; m += 2) {
            const char *to = m[1];
            if (to && *to && known_field(to, strlen(to)) < 0)
                return seg__error(db, SEG_EINVAL,
                                  "column_map: '%s' -> '%s': not a known column", m[0], to);
        }
    }
    im->src = im->o.source_name ? im->o.source_name : default_src;
    im->batch_flags = SEG__BATCH_COUNT_OCCURRENCES;
    im->exponent = seg__db_exponent(db);
    seg__csv_init(&im->tok, seg__db_alloc(db));
    return SEG_OK;
}

/* Where a message about field `f` of the current row points. */
static void field_pos(const csv_import *im, int f, uint64_t *line, uint64_t *col)
{
    const seg__csv *c = &im->tok;
    const char *at = c->row;
    if (f > SEG__F_NONE && f < NFIELDS && im->col_of[f] < im->ncols)
        at = c->fields[im->col_of[f]].raw;
    seg__csv_locate(c->row, c->row_line, at, line, col);
}

static int header_error(csv_import *im, int code, const char *at, const char *what,
                        const char *p, size_t n)
{
    uint64_t line, col;
    char ex[64];
    seg__csv_locate(im->tok.row, im->tok.row_line, at, &line, &col);
    seg__csv_excerpt(ex, p, n);
    return seg__error(im->db, code, "%s:%" PRIu64 ":%" PRIu64 ": %s '%s'", im->src, line,
                      col, what, ex);
}

static int read_header(csv_import *im)
{
    seg__csv *c = &im->tok;
    if (c->nfields > SEG__CSV_MAX_COLUMNS)
        return seg__error(im->db, SEG_EPARSE, "%s:%" PRIu64 ":1: more than %d columns",
                          im->src, c->row_line, SEG__CSV_MAX_COLUMNS);
    im->ncols = c->nfields;
    for (size_t f = 0; f < NFIELDS; f++)
        im->col_of[f] = SIZE_MAX;
    for (size_t i = 0; i < im->ncols; i++) {
        const seg__csv_field *h = &c->fields[i];
        const char *name = h->p;
        size_t n = h->n;
        bool ignore = false;
        if (im->o.column_map) {
            for (const char *const *m = im->o.column_map; *m; m += 2) {
                if (strlen(*m) == n && memcmp(*m, name, n) == 0) {
                    if (!m[1] || !*m[1]) {
                        ignore = true;
                    } else {
                        name = m[1];
                        n = strlen(name);
                    }
                    break;
                }
            }
        }
        if (ignore)
            continue;
        int f = known_field(name, n);
        if (f < 0) {
            if (im->o.flags & SEG_CSV_IGNORE_UNKNOWN)
                continue;
            return header_error(im, SEG_EINVAL, h->raw, "unknown column", h->p, h->n);
        }
        if (im->col_of[f] != SIZE_MAX)
            return header_error(im, SEG_EINVAL, h->raw, "duplicate column", name, n);
        im->col_of[f] = i;
    }
    static const int required[] = { SEG__F_CUSTOMER_ID, SEG__F_TS, SEG__F_AMOUNT };
    for (size_t k = 0; k < sizeof required / sizeof required[0]; k++) {
        if (im->col_of[required[k]] == SIZE_MAX) {
            const char *nm = "";
            for (size_t j = 0; j < NKNOWN; j++)
                if (known_columns[j].field == required[k])
                    nm = known_columns[j].name;
            return seg__error(im->db, SEG_EINVAL,
                              "%s:%" PRIu64 ":1: missing required column '%s'", im->src,
                              c->row_line, nm);
        }
    }
    for (size_t f = 0; f < NFIELDS; f++)
        if (im->col_of[f] == SIZE_MAX)
            im->col_of[f] = im->ncols; /* the empty cell after the last column */
    im->have_header = true;
    /* keep one field more than the header has, to point at the first extra
     * one; slot ncols doubles as the empty cell of absent columns */
    if (seg__csv_keep(c, im->ncols + 1) != SEG_OK || seg__csv_expect(c, im->ncols) != SEG_OK)
        return seg__error(im->db, SEG_ENOMEM, "out of memory");
    return SEG_OK;
}

/* A bad cell: set the message "SRC:LINE:COL: field: what 'value'". */
static int cell_error(csv_import *im, int code, int f, const char *what)
{
    const seg__csv_field *v = &im->tok.fields[im->col_of[f]];
    uint64_t line, col;
    char ex[64];
    field_pos(im, f, &line, &col);
    seg__csv_excerpt(ex, v->p, v->n);
    const char *fname = "type";
    for (size_t j = 0; j < NKNOWN; j++)
        if (known_columns[j].field == f)
            fname = known_columns[j].name;
    if (v->n)
        return seg__error(im->db, code, "%s:%" PRIu64 ":%" PRIu64 ": %s: %s '%s'", im->src,
                          line, col, fname, what, ex);
    return seg__error(im->db, code, "%s:%" PRIu64 ":%" PRIu64 ": %s: %s", im->src, line, col,
                      fname, what);
}

static int field_count_error(csv_import *im)
{
    const seg__csv *c = &im->tok;
    uint64_t line, col;
    const char *at = c->nfields > im->ncols ? c->fields[im->ncols].raw : c->row_end;
    seg__csv_locate(c->row, c->row_line, at, &line, &col);
    return seg__error(im->db, SEG_EPARSE,
                      "%s:%" PRIu64 ":%" PRIu64 ": expected %zu fields, got %zu", im->src,
                      line, col, im->ncols, c->nfields);
}

static inline seg__str cell(const seg__csv_field *f)
{
    seg__str s = { f->p, f->n };
    return s;
}

static int parse_quantity(const char *p, size_t n, int32_t *out)
{
    int64_t v;
    int rc = seg__parse_int64(p, n, &v);
    if (rc != SEG_OK)
        return rc;
    if (v > SEG_QUANTITY_MAX || v < -(int64_t)SEG_QUANTITY_MAX)
        return SEG_ERANGE;
    *out = (int32_t)v; /* a negative one is refused by the ingest, naming the field */
    return SEG_OK;
}

/* An event error: atomic mode stops, per-event mode reports and goes on.
 * Failures that are not the event's fault stop both (as in
 * seg_event_ingest_batch). */
static int reject_at(csv_import *im, int code, size_t row_index)
{
    if (!(im->o.flags & SEG_CSV_PER_EVENT) || seg__is_fatal(code))
        return code;
    im->rejected++;
    if (im->o.on_reject)
        im->o.on_reject(row_index, code, seg_errmsg(im->db), im->o.payload);
    return SEG_OK;
}

static int reject(csv_import *im, int code)
{
    return reject_at(im, code, im->row_index);
}

/* A bad cell: the pending rows go first, so errors come in row order. */
#define ROW_FAIL(code_expr)                      \
    do {                                         \
        int fr_ = flush_pending(im);             \
        if (fr_ != SEG_OK)                       \
            return fr_;                          \
        return reject(im, (code_expr));          \
    } while (0)

static int flush_pending(csv_import *im);

/* Give the pending rows to the store.  A row the store refuses gets its
 * message prefixed with its position and is rejected as a bad cell is. */
static int flush_pending(csv_import *im)
{
    size_t base = 0, n = im->npending;
    int rc = SEG_OK;
    while (base < n) {
        uint64_t acc0, dup0, acc1, dup1;
        size_t done = 0;
        int field = SEG__F_NONE;
        seg__batch_counts(im->batch, &acc0, &dup0);
        rc = seg__batch_add_many(im->batch, im->pending_ev + base, NULL, n - base, &done,
                                 &field);
        seg__batch_counts(im->batch, &acc1, &dup1);
        im->accepted += acc1 - acc0;
        im->duplicates += dup1 - dup0;
        if (rc == SEG_OK)
            break;
        const pending_row *pr = &im->pending[base + done];
        const char *at = pr->row;
        if (field > SEG__F_NONE && field < NFIELDS && im->col_of[field] < im->ncols)
            at = pr->raw[field];
        uint64_t line, colno;
        seg__csv_locate(pr->row, pr->row_line, at, &line, &colno);
        seg__error_prefix(im->db, "%s:%" PRIu64 ":%" PRIu64 ": ", im->src, line, colno);
        rc = reject_at(im, rc, pr->row_index);
        if (rc != SEG_OK)
            break;
        base += done + 1;
    }
    im->npending = 0;
    return rc;
}

static int begin_batch(csv_import *im)
{
    const seg__csv *c = &im->tok;
    size_t hint = 0;
    if (im->input_size) {
        uint64_t at = im->window_offset + (uint64_t)(c->row - c->buf);
        uint64_t rowlen = (uint64_t)(c->pos - (size_t)(c->row - c->buf));
        if (rowlen < 16)
            rowlen = 16;
        uint64_t est = at < im->input_size ? (im->input_size - at) / rowlen + 1 : 1;
        hint = est > SIZE_MAX ? SIZE_MAX : (size_t)est;
    }
    return seg__batch_begin(&im->batch, im->db, im->batch_flags, hint);
}

static int import_row(csv_import *im)
{
    seg__csv *c = &im->tok;
    if (SEG_UNLIKELY(c->nfields != im->ncols))
        return field_count_error(im);
    if (SEG_UNLIKELY(!im->batch)) {
        int rc = begin_batch(im);
        if (rc != SEG_OK)
            return rc;
    }
    seg__csv_field *f = c->fields;
    set_value(&f[im->ncols], "", 0);
    f[im->ncols].raw = c->row;
    const size_t *col = im->col_of;
    int rc;

    seg__ev ev;
    ev.quantity = SEG_QUANTITY_DEFAULT;
    ev.event_id = cell(&f[col[SEG__F_EVENT_ID]]);
    ev.customer_id = cell(&f[col[SEG__F_CUSTOMER_ID]]);
    ev.order_id = cell(&f[col[SEG__F_ORDER_ID]]);
    ev.channel = cell(&f[col[SEG__F_CHANNEL]]);
    ev.category = cell(&f[col[SEG__F_CATEGORY]]);
    ev.sku = cell(&f[col[SEG__F_SKU]]);
    ev.refund_of = cell(&f[col[SEG__F_REFUND_OF]]);
    ev.name = cell(&f[col[SEG__F_NAME]]);

    const seg__csv_field *ts = &f[col[SEG__F_TS]];
    if (SEG_UNLIKELY(ts->n == 0))
        ROW_FAIL(cell_error(im, SEG_EINVAL, SEG__F_TS, "missing time"));
    rc = seg__time_parse_cached(&im->tcache, &ev.ts, ts->p, ts->n);
    if (SEG_UNLIKELY(rc != SEG_OK))
        ROW_FAIL(cell_error(im, rc, SEG__F_TS,
                                     rc == SEG_ERANGE ? "time out of range" : "invalid time"));

    const seg__csv_field *am = &f[col[SEG__F_AMOUNT]];
    bool has_amount = am->n != 0;
    ev.amount = 0;
    if (has_amount) {
        rc = seg_money_parse(&ev.amount, am->p, am->n, im->exponent);
        if (SEG_UNLIKELY(rc != SEG_OK)) {
            char what[64];
            if (rc == SEG_ERANGE)
                snprintf(what, sizeof what, "amount out of range");
            else
                snprintf(what, sizeof what, "invalid amount (at most %d decimals)", im->exponent);
            ROW_FAIL(cell_error(im, rc, SEG__F_AMOUNT, what));
        }
    }

    const seg__csv_field *ty = &f[col[SEG__F_KIND]];
    uint32_t kind;
    if (ty->n == 0) {
        if (!has_amount && ev.name.n)
            kind = SEG_EVENT_ENGAGEMENT;
        else
            kind = ev.amount < 0 ? SEG_EVENT_REFUND : SEG_EVENT_PURCHASE;
    } else if (seg__str_eq(cell(ty), "purchase", 8)) {
        kind = SEG_EVENT_PURCHASE;
    } else if (seg__str_eq(cell(ty), "refund", 6)) {
        kind = SEG_EVENT_REFUND;
    } else if (seg__str_eq(cell(ty), "engagement", 10)) {
        kind = SEG_EVENT_ENGAGEMENT;
    } else {
        ROW_FAIL(cell_error(im, SEG_EINVAL, SEG__F_KIND, "unknown event type"));
    }
    switch (kind) {
    case SEG_EVENT_PURCHASE:
        if (!has_amount)
            ROW_FAIL(cell_error(im, SEG_EINVAL, SEG__F_AMOUNT,
                                         "missing amount (required for a purchase)"));
        if (ev.amount < 0)
            ROW_FAIL(cell_error(im, SEG_EINVAL, SEG__F_AMOUNT,
                                         "a purchase needs an amount >= 0"));
        break;
    case SEG_EVENT_REFUND:
        if (!has_amount)
            ROW_FAIL(cell_error(im, SEG_EINVAL, SEG__F_AMOUNT,
                                         "missing amount (required for a refund)"));
        if (ev.amount == 0)
            ROW_FAIL(cell_error(im, SEG_EINVAL, SEG__F_AMOUNT,
                                         "a refund needs a non-zero amount"));
        if (ev.amount > 0)
            ev.amount = -ev.amount; /* a refund is stored negative */
        break;
    default:
        if (ev.amount != 0)
            ROW_FAIL(cell_error(im, SEG_EINVAL, SEG__F_AMOUNT,
                                         "an engagement event has no amount"));
        break;
    }
    ev.kind = kind;

    const seg__csv_field *qt = &f[col[SEG__F_QUANTITY]];
    if (qt->n) {
        rc = parse_quantity(qt->p, qt->n, &ev.quantity);
        if (rc != SEG_OK)
            ROW_FAIL(cell_error(im, rc, SEG__F_QUANTITY,
                                         rc == SEG_ERANGE ? "quantity out of range"
                                                          : "invalid quantity"));
    }

    /* pending until the group is full, or at once when a field lives in
     * the tokenizer's scratch (reused by the next row) */
    pending_row *pr = &im->pending[im->npending];
    pr->row = c->row;
    pr->row_line = c->row_line;
    pr->row_index = im->row_index;
    for (int k = 0; k < NFIELDS; k++)
        pr->raw[k] = f[col[k]].raw;
    im->pending_ev[im->npending++] = ev;
    if (im->npending == PENDING || c->scratch_len)
        return flush_pending(im);
    return SEG_OK;
}

/* Read rows until the end of the window: SEG_OK at the end of the input,
 * SEG__CSV_MORE when the window ends inside a row, or an error. */
static int import_rows(csv_import *im)
{
    seg__csv *c = &im->tok;
    for (;;) {
        int r = csv_next(c);
        if (SEG_LIKELY(r == SEG__CSV_ROW)) {
            int rc;
            if (SEG_LIKELY(im->have_header)) {
                rc = import_row(im);
                im->row_index++;
            } else {
                rc = read_header(im);
            }
            if (rc != SEG_OK)
                return rc;
            continue;
        }
        if (r == SEG__CSV_END || r == SEG__CSV_MORE) {
            int rc = im->npending ? flush_pending(im) : SEG_OK;
            return rc != SEG_OK ? rc : (r == SEG__CSV_END ? SEG_OK : r);
        }
        if (r == SEG_EPARSE)
            return seg__error(im->db, SEG_EPARSE, "%s:%" PRIu64 ":%" PRIu64 ": %s", im->src,
                              c->err_line, c->err_col, c->err_msg);
        return seg__error(im->db, r, "out of memory");
    }
}

static int import_end(csv_import *im, int rc, seg_ingest_stats *stats_out)
{
    if (im->batch) {
        if (rc == SEG_OK) {
            rc = seg__batch_commit(im->batch);
        } else {
            seg__batch_rollback(im->batch);
        }
        im->batch = NULL;
    }
    seg__csv_free(&im->tok);
    if (rc == SEG_OK) {
        seg__error_clear(im->db);
        if (stats_out) {
            stats_out->accepted = im->accepted;
            stats_out->duplicates = im->duplicates;
            stats_out->rejected = im->rejected;
        }
    }
    return rc;
}

SEG_API int seg_csv_options_init(seg_csv_options *opts, size_t struct_size)
{
    seg_csv_options d = SEG_CSV_OPTIONS_INIT;
    return seg__options_init(opts, struct_size, &d, CSV_OPTIONS_V1_SIZE);
}

SEG_API int seg_event_import_csv(seg_db *db, const char *data, size_t len,
                                 const seg_csv_options *opts, seg_ingest_stats *stats_out)
{
    if (!db)
        return SEG_EINVAL;
    if (!data && len)
        return seg__error(db, SEG_EINVAL, "seg_event_import_csv: data is NULL");
    csv_import im;
    int rc = import_begin(&im, db, opts, stats_out, "<buffer>");
    if (rc != SEG_OK)
        return rc;
    im.input_size = len;
    seg__csv_feed(&im.tok, data, len, true);
    rc = import_rows(&im);
    return import_end(&im, rc, stats_out);
}

SEG_API int seg_event_import_csv_file(seg_db *db, const char *path,
                                      const seg_csv_options *opts, seg_ingest_stats *stats_out)
{
    if (!db)
        return SEG_EINVAL;
    if (!path)
        return seg__error(db, SEG_EINVAL, "seg_event_import_csv_file: path is NULL");
    csv_import im;
    int rc = import_begin(&im, db, opts, stats_out, path);
    if (rc != SEG_OK)
        return rc;
    int fd;
    uint64_t size;
    rc = open_file(db, path, &fd, &size);
    if (rc != SEG_OK) {
        seg__csv_free(&im.tok);
        return rc;
    }
    im.input_size = size;
    const seg__alloc *a = seg__db_alloc(db);
    size_t cap = FILE_CHUNK, have = 0;
    char *buf = seg__malloc(a, cap);
    bool eof = false;
    rc = buf ? SEG_OK : seg__error(db, SEG_ENOMEM, "out of memory");
    while (rc == SEG_OK) {
        rc = read_full(db, path, fd, buf, cap, &have, &eof);
        if (rc != SEG_OK)
            break;
        seg__csv_feed(&im.tok, buf, have, eof);
        rc = import_rows(&im);
        if (rc != SEG__CSV_MORE)
            break;
        rc = SEG_OK;
        size_t used = im.tok.pos;
        if (used == 0) {
            /* one row fills the whole buffer: make room */
            size_t ncap = cap <= SIZE_MAX / 2 ? cap * 2 : 0;
            char *nb = ncap ? seg__realloc(a, buf, ncap) : NULL;
            if (!nb) {
                rc = seg__error(db, SEG_ENOMEM, "out of memory");
                break;
            }
            buf = nb;
            cap = ncap;
        } else {
            /* carry the partial row over to the front */
            have -= used;
            memmove(buf, buf + used, have);
            im.window_offset += used;
        }
    }
    close(fd);
    rc = import_end(&im, rc, stats_out);
    seg__free(a, buf);
    return rc;
}
