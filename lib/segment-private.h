/*
 * Cross-module internals (seg__*).  Never installed, never exported.
 */
#ifndef SEGMENT_PRIVATE_H
#define SEGMENT_PRIVATE_H

#include "segment.h"

#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

#define SEG_UNUSED(x) ((void)(x))
#if defined(__GNUC__)
#  define SEG_LIKELY(x) __builtin_expect(!!(x), 1)
#  define SEG_UNLIKELY(x) __builtin_expect(!!(x), 0)
#  define SEG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define SEG_LIKELY(x) (x)
#  define SEG_UNLIKELY(x) (x)
#  define SEG_PRINTF(a, b)
#endif

/* ---- length-delimited strings ---- */
typedef struct seg__str {
    const char *p;
    size_t n;
} seg__str;

#define SEG__STR_NULL ((seg__str){ NULL, 0 })
static inline seg__str seg__cstr(const char *s) {
    seg__str r = { s, s ? strlen(s) : 0 };
    return r;
}
/* memcmp(a, b, n) == 0, inline for the short strings ids are */
static inline bool seg__mem_eq(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    uint64_t u, v, w, z;
    if (n >= 8 && n <= 16) {
        memcpy(&u, x, 8); memcpy(&v, y, 8);
        memcpy(&w, x + n - 8, 8); memcpy(&z, y + n - 8, 8);
        return ((u ^ v) | (w ^ z)) == 0;
    }
    if (n >= 4 && n < 8) {
        uint32_t p, q, r, t;
        memcpy(&p, x, 4); memcpy(&q, y, 4);
        memcpy(&r, x + n - 4, 4); memcpy(&t, y + n - 4, 4);
        return ((p ^ q) | (r ^ t)) == 0;
    }
    if (n < 4) {
        for (size_t k = 0; k < n; k++)
            if (x[k] != y[k])
                return false;
        return true;
    }
    return memcmp(a, b, n) == 0;
}
static inline bool seg__str_eq(seg__str a, const char *b, size_t bn) {
    return a.n == bn && seg__mem_eq(a.p, b, bn);
}

/* ---- memory (lib/core/alloc.c) ---- */
typedef struct seg__alloc {
    void *(*malloc)(size_t, void *);
    void *(*realloc)(void *, size_t, void *);
    void (*free)(void *, void *);
    void *ud;
} seg__alloc;

extern const seg__alloc seg__default_alloc;
void *seg__malloc(const seg__alloc *a, size_t n);
void *seg__calloc(const seg__alloc *a, size_t count, size_t size); /* overflow-checked */
void *seg__realloc(const seg__alloc *a, void *p, size_t n);
void *seg__realloc_array(const seg__alloc *a, void *p, size_t count, size_t size);
void seg__free(const seg__alloc *a, void *p);
/* memory given to the caller, freed by seg_free(): remembers its allocator */
void *seg__malloc_user(const seg__alloc *a, size_t n);
char *seg__strdup_user(const seg__alloc *a, const char *s, size_t n);

/* ---- errors (lib/core/error.c) ---- */
/* Set the db's last error; returns code.  A NULL db is allowed (no-op). */
int seg__error(seg_db *db, int code, const char *fmt, ...) SEG_PRINTF(3, 4);
int seg__verror(seg_db *db, int code, const char *fmt, va_list ap) SEG_PRINTF(3, 0);
void seg__error_clear(seg_db *db);
/* prefix the current message: "<prefix>: <old message>" */
void seg__error_prefix(seg_db *db, const char *fmt, ...) SEG_PRINTF(2, 3);

/* ---- versioned structs (lib/core/db.c) ----
 * Copy a caller's struct of size `given` (its first member the size) into
 * `dst` of `ours` bytes already holding the defaults: accepts any size from
 * `min` up; a tail beyond `ours` must be zero.  Returns SEG_OK/SEG_EVERSION. */
int seg__struct_in(void *dst, size_t ours, const void *src, size_t given, size_t min);
/* The *_options_init functions: defaults (`ours` bytes, the 1.0 layout)
 * into a caller's struct of struct_size bytes, zero tail. */
int seg__options_init(void *opts, size_t struct_size, const void *defaults, size_t ours);
/* Copy our filled struct out to a caller's of `given` bytes (given >= min). */
int seg__struct_out(void *dst, size_t given, const void *src, size_t ours, size_t min);

/* ---- hashing and text (lib/core/util.c) ---- */
/* A 64-bit hash of n bytes.  The same on every machine (derived event ids
 * are built from it, so it never changes); inline because it is on every
 * hot path.  Reads whole words, never past the end of the data. */
static inline uint64_t seg__rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}
static inline uint64_t seg__rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}
static inline uint64_t seg__fold(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}
static inline uint64_t seg__hash(const void *data, size_t n, uint64_t seed)
{
    const uint64_t k0 = UINT64_C(0x9e3779b97f4a7c15), k1 = UINT64_C(0xc2b2ae3d27d4eb4f),
                   k2 = UINT64_C(0x165667b19e3779f9), k3 = UINT64_C(0xd6e8feb86659fd93);
    const uint8_t *p = data;
    uint64_t h = seg__fold(seed ^ k0, (uint64_t)n ^ k1), a, b;
    while (n >= 16) {
        h = seg__fold(seg__rd64(p) ^ k2 ^ h, seg__rd64(p + 8) ^ k3);
        p += 16;
        n -= 16;
    }
    /* the last 0..15 bytes: two (possibly overlapping) words */
    if (n >= 8) {
        a = seg__rd64(p);
        b = seg__rd64(p + n - 8);
    } else if (n >= 4) {
        a = seg__rd32(p);
        b = seg__rd32(p + n - 4);
    } else if (n) {
        a = (uint64_t)p[0] | (uint64_t)p[n / 2] << 8 | (uint64_t)p[n - 1] << 16;
        b = 0;
    } else {
        a = b = 0;
    }
    h = seg__fold(a ^ k2 ^ h, b ^ k3 ^ n);
    return seg__fold(h ^ k1, h ^ k2 ^ seed);
}
/* true when [p, p+n) is valid UTF-8 without NUL bytes */
bool seg__utf8_valid(const char *p, size_t n);

/* A growing NUL-terminated text (lib/core/util.c).  Appends cannot fail one
 * by one: an allocation failure sets oom, later appends do nothing, and the
 * owner checks oom once at the end (then frees p).  Start from
 * { alloc, NULL, 0, 0, false }. */
typedef struct seg__text {
    const seg__alloc *a;
    char *p;
    size_t n, cap;
    bool oom;
} seg__text;
void seg__text_put(seg__text *t, const char *s, size_t n);
static inline void seg__text_puts(seg__text *t, const char *s) { seg__text_put(t, s, strlen(s)); }
void seg__text_printf(seg__text *t, const char *fmt, ...) SEG_PRINTF(2, 3);
/* validate an id: 1..SEG_ID_MAX bytes, valid UTF-8, no NUL, no control chars.
 * On failure sets the db error naming `what` and returns SEG_EINVAL. */
int seg__check_id(seg_db *db, const char *what, seg__str s);
/* days since the epoch of the UTC date of t (floor) */
static inline int64_t seg__day_of(int64_t t) {
    return t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
}

/* ---- ingestion of length-delimited events (lib/event/) ---- */
typedef struct seg__ev {
    uint32_t kind;        /* SEG_EVENT_* */
    int32_t quantity;     /* SEG_QUANTITY_DEFAULT allowed */
    seg__str event_id;    /* n == 0: derived */
    seg__str customer_id;
    int64_t ts;
    int64_t amount;
    seg__str order_id, channel, category, sku, refund_of, name; /* n == 0: absent */
} seg__ev;

/* The field an ingest error is about (for CSV line:column messages). */
enum {
    SEG__F_NONE = 0, SEG__F_EVENT_ID, SEG__F_CUSTOMER_ID, SEG__F_TS, SEG__F_AMOUNT,
    SEG__F_QUANTITY, SEG__F_ORDER_ID, SEG__F_CHANNEL, SEG__F_CATEGORY, SEG__F_SKU,
    SEG__F_REFUND_OF, SEG__F_NAME, SEG__F_KIND
};

typedef struct seg__batch seg__batch;

/* flags for seg__batch_begin (whether a bad event ends the batch is the
 * caller's choice: see seg__is_fatal) */
#define SEG__BATCH_COUNT_OCCURRENCES 0x2u /* derived ids count identical events within the batch (CSV) */
#define SEG__BATCH_LOAD 0x4u /* the backend's load: no undo log (a failed load fails the open) */

/* Start a batch (one storage transaction).  *out is NULL on failure. */
int seg__batch_begin(seg__batch **out, seg_db *db, uint32_t flags, size_t size_hint);
/* Add one event.  SEG_OK: accepted, or a duplicate when *dup_out is set.
 * Negative: rejected (message in the db, field in *field_out).  When the
 * code is not fatal (seg__is_fatal) nothing of this event changed and the
 * batch stays usable: the caller goes on (per-event mode) or rolls back
 * (atomic).  After a fatal code the caller must roll back. */
int seg__batch_add(seg__batch *b, const seg__ev *ev, bool *dup_out, int *field_out);
/* Add events evs[0..n) in order, faster than one by one (the lookups of
 * a group of events overlap).  occs: NULL, or the occurrence number of
 * each event's derived id (-1: count as the batch's flags say).  Returns
 * SEG_OK when all were added (accepted or duplicates); otherwise the status
 * of the first rejected event, whose index is stored in *done (the events
 * before it were added, it and those after it were not) and its field in
 * *field_out. */
int seg__batch_add_many(seg__batch *b, const seg__ev *evs, const int *occs, size_t n,
                        size_t *done, int *field_out);
/* The batch's counts so far: events accepted, duplicates skipped. */
void seg__batch_counts(const seg__batch *b, uint64_t *accepted, uint64_t *duplicates);
/* Commit: writes to storage; on failure everything of the batch is undone
 * and the batch is freed either way. */
int seg__batch_commit(seg__batch *b);
/* Undo everything of the batch and free it.  Keeps the db's error message. */
void seg__batch_rollback(seg__batch *b);

const char *seg__field_name(int field);

/* Failures that are not the event's fault (memory, limits, storage): they
 * end a batch even in per-event mode. */
static inline bool seg__is_fatal(int code)
{
    return code == SEG_ENOMEM || code == SEG_ELIMIT || code == SEG_ESTORAGE;
}


/* ---- customer operations applied atomically (lib/customer/) ---- */
enum { SEG__OP_ADD = 1, SEG__OP_ATTR = 2, SEG__OP_CONSENT = 3 };
typedef struct seg__custop {
    uint32_t op;          /* SEG__OP_* */
    seg__str customer_id;
    seg__str name;        /* ATTR: attribute name; CONSENT: channel */
    uint32_t type;        /* ATTR: SEG_TYPE_* (SEG_TYPE_NULL removes) */
    int64_t i;            /* ATTR INT, BOOL, TIME */
    double d;             /* ATTR NUMBER */
    seg__str s;           /* ATTR STRING */
    int consent;          /* CONSENT: SEG_CONSENT_* */
} seg__custop;
/* Validate and apply all ops as one transaction.  On failure nothing
 * changed, the db's message names the problem and *bad_index_out (if not
 * NULL) the op it is about ((size_t)-1 when no single op is to blame). */
int seg__customer_apply(seg_db *db, const seg__custop *ops, size_t n, size_t *bad_index_out);

/* An optionally signed decimal integer (lib/core/textfmt.c): SEG_OK,
 * SEG_EINVAL (not one), SEG_ERANGE (beyond int64). */
int seg__parse_int64(const char *p, size_t n, int64_t *out);

/* SEG_OK when the db may change now, else the error (read-only, a batch
 * open, inside a foreach) with its message set. */
int seg__db_writable(seg_db *db);

/* Currency exponent of a db (0..6). */
int seg__db_exponent(const seg_db *db);
/* The db's allocator. */
const seg__alloc *seg__db_alloc(const seg_db *db);
/* Children (seg_segdef ...) keep a reference on their db (lib/core/db.c):
 * seg_db_close() frees it only once no child is left. */
void seg__db_ref(seg_db *db);
void seg__db_unref(seg_db *db);

/* ==================================================================
 * CSV tokenizer (lib/event/csv.c)
 * Shared by lib/event/csv.c, lib/customer/customer-csv.c and
 * lib/core/textfmt.c.
 * ================================================================== */
#ifndef SEGMENT_PRIVATE_CSV_H
#define SEGMENT_PRIVATE_CSV_H

#include <stdint.h>

/* The last date seen by seg__time_parse_cached (lib/core/textfmt.c):
 * consecutive CSV rows usually share a date.  Zero-initialize it. */
typedef struct seg__time_cache {
    char date[10];   /* "YYYY-MM-DD" of the cached day; date[0] == 0: empty */
    int64_t day;     /* its day number (days since 1970-01-01) */
} seg__time_cache;

/* seg_time_parse() with a date cache (c may be NULL).  Same results. */
int seg__time_parse_cached(seg__time_cache *c, int64_t *out, const char *p, size_t n);

/* One field of the row last read. */
typedef struct seg__csv_field {
    const char *p;     /* the value, unescaped: into the input, or into the
                        * tokenizer's scratch when it had "" escapes (valid
                        * until the next row) */
    size_t n;
    const char *raw;   /* where the field starts in the input (its opening
                        * quote when quoted), for line:column messages */
    size_t soff;       /* internal */
} seg__csv_field;

/* RFC 4180 tokenizer over a window of the input: comma separator, LF or
 * CRLF line ends, "quoted" fields with "" escapes, commas and line breaks;
 * an optional UTF-8 BOM at the start; the last line may lack its line end;
 * completely empty lines are skipped.  Zero-copy except for escaped fields.
 * Never reads outside [buf, buf + len). */
typedef struct seg__csv {
    const seg__alloc *alloc;
    const char *buf;       /* the window */
    size_t len;
    size_t pos;            /* offset of the next row in the window */
    bool final;            /* the window ends the input */
    bool bom_done;         /* the start of the input was checked for a BOM */
    uint64_t line;         /* line number (1-based) at pos */
    /* the row last read */
    const char *row;       /* its first byte */
    const char *row_end;   /* the end of its last field (before the line end) */
    uint64_t row_line;     /* the line it starts on */
    size_t nfields;        /* its number of fields (may be more than kept) */
    size_t keep;           /* at most this many fields are stored */
    size_t cap;
    seg__csv_field *fields;
    char *scratch;
    size_t scratch_len, scratch_cap;
    /* rows of exactly `expect` fields (0: unknown) take a fast path through
     * an index of the delimiters of the next few KiB of the window */
    size_t expect;
    uint32_t *dpos;        /* delimiter offsets from seg_base */
    size_t dn, di;         /* delimiters indexed, next to use */
    size_t seg_base;       /* window offset the index starts at */
    /* after SEG_EPARSE: what and where */
    const char *err_msg;
    uint64_t err_line, err_col;
} seg__csv;

/* seg__csv_next results besides SEG_EPARSE and SEG_ENOMEM */
#define SEG__CSV_END 0   /* no more rows */
#define SEG__CSV_ROW 1   /* a row is in fields[0 .. min(nfields, keep)) */
#define SEG__CSV_MORE 2  /* the window ends inside a row: move buf[pos..len)
                          * to the front, append more input, feed again */
#define SEG__CSV_MAX_COLUMNS 4096 /* header rows longer than this are refused */

void seg__csv_init(seg__csv *c, const seg__alloc *a);
void seg__csv_free(seg__csv *c);
/* Store at most `keep` fields per row; reserve room for that many
 * (SEG_OK or SEG_ENOMEM). */
int seg__csv_keep(seg__csv *c, size_t keep);
/* Rows will mostly have `n` fields (n <= keep; 0: unknown): enables the
 * fast path for them (SEG_OK or SEG_ENOMEM).  Results are the same. */
int seg__csv_expect(seg__csv *c, size_t n);
/* Set the window; pos becomes 0 (line numbering continues). */
void seg__csv_feed(seg__csv *c, const char *buf, size_t len, bool final);
/* Read the next row: SEG__CSV_ROW, SEG__CSV_END, SEG__CSV_MORE,
 * SEG_EPARSE (err_msg, err_line, err_col set) or SEG_ENOMEM. */
int seg__csv_next(seg__csv *c);
/* Line and 1-based character column of `at`, a byte of the row starting at
 * `row` on line `row_line`. */
void seg__csv_locate(const char *row, uint64_t row_line, const char *at,
                     uint64_t *line_out, uint64_t *col_out);
/* Quote an excerpt of a value for a message: at most ~40 bytes, control
 * bytes as '?', "..." when cut; always NUL-terminated. */
void seg__csv_excerpt(char out[64], const char *p, size_t n);
/* Read a whole file into memory (for the customer import): SEG_OK, SEG_EIO
 * ("cannot open 'path': ...") or SEG_ENOMEM; free *buf_out with seg__free. */
int seg__csv_read_file(seg_db *db, const char *path, char **buf_out, size_t *len_out);

#endif /* SEGMENT_PRIVATE_CSV_H */

#endif /* SEGMENT_PRIVATE_H */
