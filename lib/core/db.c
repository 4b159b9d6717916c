/* The database handle: options, open, close, versions. */
#include "storage/storage-private.h"
#include "outbox/outbox-private.h"

#include <stdio.h>

SEG_API int seg_version(void) { return SEG_VERSION_NUMBER; }
SEG_API const char *seg_version_string(void) { return SEG_VERSION_STRING; }

int seg__struct_in(void *dst, size_t ours, const void *src, size_t given, size_t min)
{
    if (given < min)
        return SEG_EVERSION;
    if (given > ours) {
        const unsigned char *tail = (const unsigned char *)src + ours;
        for (size_t k = 0; k < given - ours; k++)
            if (tail[k])
                return SEG_EVERSION;
    }
    memcpy(dst, src, given < ours ? given : ours);
    /* the caller's size field stays as the caller gave it; callers read
     * fields only through the copy, so record ours */
    *(size_t *)dst = ours;
    return SEG_OK;
}

int seg__struct_out(void *dst, size_t given, const void *src, size_t ours, size_t min)
{
    if (given < min)
        return SEG_EVERSION;
    size_t n = given < ours ? given : ours;
    memcpy((char *)dst + sizeof(size_t), (const char *)src + sizeof(size_t), n - sizeof(size_t));
    if (given > ours)
        memset((char *)dst + ours, 0, given - ours);
    return SEG_OK;
}

#define OPTS_V1_SIZE sizeof(seg_db_options)

int seg__options_init(void *opts, size_t struct_size, const void *defaults, size_t ours)
{
    if (!opts)
        return SEG_EINVAL;
    if (struct_size < ours)
        return SEG_EVERSION;
    memset(opts, 0, struct_size);
    memcpy(opts, defaults, ours);
    *(size_t *)opts = struct_size;
    return SEG_OK;
}

SEG_API int seg_db_options_init(seg_db_options *opts, size_t struct_size)
{
    seg_db_options d = SEG_DB_OPTIONS_INIT;
    return seg__options_init(opts, struct_size, &d, OPTS_V1_SIZE);
}

static int open_fail(const seg_db_options *o, int code, const char *fmt, ...) SEG_PRINTF(3, 4);
static int open_fail(const seg_db_options *o, int code, const char *fmt, ...)
{
    if (o && o->errbuf && o->errbuf_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(o->errbuf, o->errbuf_size, fmt, ap);
        va_end(ap);
    }
    return code;
}

SEG_API int seg_db_open(seg_db **out, const char *uri, const seg_db_options *opts)
{
    if (!out)
        return SEG_EINVAL;
    *out = NULL;
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    if (opts) {
        /* errbuf first, so even a version error can be reported */
        if (opts->struct_size >= OPTS_V1_SIZE) {
            o.errbuf = opts->errbuf;
            o.errbuf_size = opts->errbuf_size;
        }
        if (seg__struct_in(&o, sizeof o, opts, opts->struct_size, OPTS_V1_SIZE) != SEG_OK)
            return open_fail(&o, SEG_EVERSION,
                             "seg_db_options: unsupported struct_size %zu (1.0 layout is %zu)",
                             opts->struct_size, (size_t)OPTS_V1_SIZE);
    }
    if (o.currency_exponent < 0 || o.currency_exponent > 6)
        return open_fail(&o, SEG_EINVAL, "currency_exponent %d: must be 0..6",
                         (int)o.currency_exponent);
    if (o.flags & ~(SEG_DB_CREATE | SEG_DB_READONLY))
        return open_fail(&o, SEG_EINVAL, "unknown flags 0x%x", (unsigned)o.flags);
    seg__alloc a = seg__default_alloc;
    if (o.allocator) {
        const seg_allocator *h = o.allocator;
        if (h->struct_size < sizeof(seg_allocator) || !h->malloc || !h->realloc || !h->free)
            return open_fail(&o, SEG_EINVAL,
                             "allocator: struct_size and all three functions are required");
        a.malloc = h->malloc;
        a.realloc = h->realloc;
        a.free = h->free;
        a.ud = h->ud;
    }
    const seg_storage_backend *be = o.storage ? o.storage : seg_storage_memory();
    if (!o.storage && uri && *uri && strcmp(uri, ":memory:") != 0)
        return open_fail(&o, SEG_EINVAL,
                         "uri '%s': only \":memory:\" is built in; pass a backend in "
                         "seg_db_options.storage for anything else", uri);

    seg_db *db = seg__calloc(&a, 1, sizeof *db);
    if (!db)
        return open_fail(&o, SEG_ENOMEM, "out of memory");
    db->alloc = a;
    db->exponent = o.currency_exponent;
    db->flags = o.flags;
    db->backend = be;
    int rc = seg__store_init(&db->alloc, &db->store);
    if (rc == SEG_OK)
        rc = seg__storage_open(db, uri ? uri : ":memory:");
    if (rc != SEG_OK) {
        open_fail(&o, rc, "%s", db->errcode != SEG_OK ? seg_errmsg(db) : seg_errstr(rc));
        seg_db_close(db);
        return rc;
    }
    seg__error_clear(db);
    *out = db;
    return SEG_OK;
}

static void db_free(seg_db *db)
{
    seg__outbox_free(db);
    seg__storage_close(db);
    seg__store_free(&db->alloc, &db->store);
    seg__alloc a = db->alloc;
    seg__free(&a, db->errmsg);
    seg__free(&a, db);
}

SEG_API void seg_db_close(seg_db *db)
{
    if (!db || db->closed)
        return;
    db->closed = true;
    if (db->children == 0)
        db_free(db);
}

void seg__db_ref(seg_db *db)
{
    db->children++;
}

void seg__db_unref(seg_db *db)
{
    if (--db->children == 0 && db->closed)
        db_free(db);
}

SEG_API int seg_db_currency_exponent(const seg_db *db)
{
    return db ? db->exponent : 2;
}

int seg__db_exponent(const seg_db *db) { return db->exponent; }

int seg__db_writable(seg_db *db)
{
    if ((db->flags & SEG_DB_READONLY) && !db->loading)
        return seg__error(db, SEG_EREADONLY, "the database was opened read-only");
    if (db->iterating)
        return seg__error(db, SEG_EMISUSE, "the database cannot change during a foreach");
    if (db->in_batch && !db->loading)
        return seg__error(db, SEG_EMISUSE, "a batch is already open on this handle");
    return SEG_OK;
}
const seg__alloc *seg__db_alloc(const seg_db *db) { return &db->alloc; }

