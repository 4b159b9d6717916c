/* Status codes and the last-error message of a handle. */
#include "core/core-private.h"

#include <stdio.h>

SEG_API const char *seg_errstr(int code)
{
    switch (code) {
    case SEG_OK:        return "no error";
    case SEG_ERROR:     return "error";
    case SEG_EINVAL:    return "invalid argument";
    case SEG_ENOMEM:    return "out of memory";
    case SEG_EBUSY:     return "database is busy";
    case SEG_ESTORAGE:  return "storage failure";
    case SEG_EPARSE:    return "parse error";
    case SEG_EVERSION:  return "unsupported struct version";
    case SEG_ENOTFOUND: return "not found";
    case SEG_ECONFLICT: return "conflicting content for the same id";
    case SEG_ERANGE:    return "value out of range";
    case SEG_EIO:       return "input/output error";
    case SEG_EMISUSE:   return "call not allowed in this state";
    case SEG_EREADONLY: return "database is read-only";
    case SEG_ELIMIT:    return "size limit exceeded";
    case SEG_ENOTSUP:   return "not supported by this build";
    default:            return "unknown error";
    }
}

SEG_API int seg_errcode(const seg_db *db)
{
    return db ? db->errcode : SEG_EINVAL;
}

SEG_API const char *seg_errmsg(const seg_db *db)
{
    if (!db)
        return "no database handle";
    if (db->errcode == SEG_OK || !db->errmsg)
        return db->errcode == SEG_OK ? "" : seg_errstr(db->errcode);
    return db->errmsg;
}

void seg__error_clear(seg_db *db)
{
    if (db) {
        db->errcode = SEG_OK;
        if (db->errmsg)
            db->errmsg[0] = '\0';
    }
}

static void set_msg(seg_db *db, const char *msg, size_t n)
{
    if (n + 1 > db->errcap) {
        size_t cap = n + 1 < 256 ? 256 : n + 1;
        char *p = seg__realloc(&db->alloc, db->errmsg, cap);
        if (!p) {
            /* keep what fits: the code is still right */
            if (!db->errcap)
                return;
            n = db->errcap - 1;
        } else {
            db->errmsg = p;
            db->errcap = cap;
        }
    }
    memcpy(db->errmsg, msg, n);
    db->errmsg[n] = '\0';
}

int seg__verror(seg_db *db, int code, const char *fmt, va_list ap)
{
    if (!db)
        return code;
    char buf[1024];
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    db->errcode = code;
    set_msg(db, buf, (size_t)n);
    return code;
}

int seg__error(seg_db *db, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    seg__verror(db, code, fmt, ap);
    va_end(ap);
    return code;
}

void seg__error_prefix(seg_db *db, const char *fmt, ...)
{
    if (!db)
        return;
    char buf[1536];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    const char *old = seg_errmsg(db);
    int m = snprintf(buf + n, sizeof buf - (size_t)n, "%s", old);
    if (m < 0)
        m = 0;
    size_t total = (size_t)n + (size_t)m;
    if (total >= sizeof buf)
        total = sizeof buf - 1;
    int code = db->errcode;
    set_msg(db, buf, total);
    db->errcode = code;
}
