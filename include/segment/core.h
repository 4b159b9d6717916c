/*
 * libsegment: core API: versions, status codes, the database handle, errors,
 * memory.
 *
 * Threads: libsegment has no mutable global state.  Separate seg_db handles
 * may be used on separate threads at the same time; one seg_db, with anything
 * created from it, is used by one thread at a time, and its error message is
 * read before the next call on that handle.
 *
 * Time is always int64_t seconds since the Unix epoch, UTC, and always given
 * by the caller: the library never reads the clock.  Money is int64_t minor
 * units (cents for a currency exponent of 2).
 */
#ifndef SEGMENT_CORE_H
#define SEGMENT_CORE_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(SEG_BUILDING_DLL)
#  define SEG_API __declspec(dllexport)
#elif defined(_WIN32) && !defined(SEG_STATIC)
#  define SEG_API __declspec(dllimport)
#elif defined(__GNUC__)
#  define SEG_API __attribute__((visibility("default")))
#else
#  define SEG_API
#endif

#ifdef __cplusplus
#  define SEG_BEGIN_DECLS extern "C" {
#  define SEG_END_DECLS }
#else
#  define SEG_BEGIN_DECLS
#  define SEG_END_DECLS
#endif

SEG_BEGIN_DECLS

/** @defgroup core Core
 *  @{ */

/** Major version of these headers. @since 1.0 */
#define SEG_VERSION_MAJOR 1
/** Minor version of these headers. @since 1.0 */
#define SEG_VERSION_MINOR 0
/** Patch version of these headers. @since 1.0 */
#define SEG_VERSION_PATCH 0
/** MAJOR*10000 + MINOR*100 + PATCH of these headers. @since 1.0 */
#define SEG_VERSION_NUMBER \
    (SEG_VERSION_MAJOR * 10000 + SEG_VERSION_MINOR * 100 + SEG_VERSION_PATCH)
/** The version as a string. @since 1.0 */
#define SEG_VERSION_STRING "1.0.0"
/** True when the headers are at least version a.b.c. @since 1.0 */
#define SEG_VERSION_AT_LEAST(a, b, c) \
    (SEG_VERSION_NUMBER >= ((a) * 10000 + (b) * 100 + (c)))

/** @name Status codes
 * Every fallible call returns SEG_OK (0) or one of these negative codes.
 * Codes never change number; treat an unknown negative code as SEG_ERROR.
 * @{ */
#define SEG_OK         0   /**< success */
#define SEG_ERROR     (-1) /**< generic error */
#define SEG_EINVAL    (-2) /**< invalid argument or invalid input data */
#define SEG_ENOMEM    (-3) /**< out of memory */
#define SEG_EBUSY     (-4) /**< the database is in use by another writer */
#define SEG_ESTORAGE  (-5) /**< the storage backend failed */
#define SEG_EPARSE    (-6) /**< text input could not be parsed */
#define SEG_EVERSION  (-7) /**< unknown struct version / non-zero unknown tail */
#define SEG_ENOTFOUND (-8) /**< no such customer, attribute, ... */
#define SEG_ECONFLICT (-9) /**< same id, different content */
#define SEG_ERANGE   (-10) /**< a number or time is out of the supported range */
#define SEG_EIO      (-11) /**< a file could not be read or written */
#define SEG_EMISUSE  (-12) /**< the call is not allowed in this state */
#define SEG_EREADONLY (-13) /**< the database was opened read-only */
#define SEG_ELIMIT   (-14) /**< a documented size limit was exceeded */
#define SEG_ENOTSUP  (-15) /**< not available in this build (an optional part was left out) */
/** @} */

/** @name Limits */
/** @{ */
#define SEG_ID_MAX 256          /**< longest id or name in bytes (event, customer, order, channel, ...) */
#define SEG_TIME_MIN (INT64_C(-62135596800)) /**< 0001-01-01T00:00:00Z */
#define SEG_TIME_MAX INT64_C(253402300799)  /**< 9999-12-31T23:59:59Z */
#define SEG_AMOUNT_MAX INT64_C(999999999999999) /**< largest |amount| of one event, in minor units */
#define SEG_QUANTITY_MAX 1000000000 /**< largest |quantity| of one event */
/** @} */

/** Opaque database handle. @since 1.0 */
typedef struct seg_db seg_db;

/* Defined in segment/storage.h. */
typedef struct seg_storage_backend seg_storage_backend;

/**
 * A host allocator.  All three functions are required.  @p realloc must
 * behave like C realloc (realloc(NULL, n) allocates); @p free ignores NULL.
 * @since 1.0
 */
typedef struct seg_allocator {
    size_t struct_size;                              /**< sizeof(seg_allocator) */
    void *(*malloc)(size_t size, void *ud);          /**< allocate */
    void *(*realloc)(void *ptr, size_t size, void *ud); /**< resize */
    void (*free)(void *ptr, void *ud);               /**< release */
    void *ud;                                        /**< passed to each call */
} seg_allocator;

/** @name seg_db_options.flags */
/** @{ */
#define SEG_DB_CREATE   0x1u /**< create the database if it does not exist */
#define SEG_DB_READONLY 0x2u /**< open read-only: every write returns SEG_EREADONLY */
/** @} */

/**
 * Options for seg_db_open().  Initialize with SEG_DB_OPTIONS_INIT or
 * seg_db_options_init(); NULL options mean all defaults.
 * @since 1.0
 */
typedef struct seg_db_options {
    size_t struct_size;          /**< sizeof(seg_db_options) as compiled by the caller */
    uint32_t flags;              /**< SEG_DB_CREATE | SEG_DB_READONLY */
    int32_t currency_exponent;   /**< decimal places of the currency, 0..6 (2 = cents); read when creating */
    const seg_storage_backend *storage; /**< NULL: chosen by the uri (":memory:") */
    const seg_allocator *allocator;     /**< NULL: the C library's malloc */
    char *errbuf;                /**< NULL, or receives the message when seg_db_open() fails */
    size_t errbuf_size;          /**< size of errbuf in bytes (the message is truncated to fit) */
} seg_db_options;

/** Default options. @since 1.0 */
#define SEG_DB_OPTIONS_INIT { sizeof(seg_db_options), SEG_DB_CREATE, 2, NULL, NULL, NULL, 0 }

/**
 * Write the default options into @p opts.
 * @param struct_size sizeof(seg_db_options) as the caller knows it.
 * @return SEG_OK, SEG_EINVAL (NULL) or SEG_EVERSION (size smaller than 1.0's).
 * @since 1.0
 */
SEG_API int seg_db_options_init(seg_db_options *opts, size_t struct_size);

/**
 * Open a database.
 * @param out  receives the handle, or NULL on failure.  As there is no handle
 *             to read it from, the message of a failed open is written to
 *             opts->errbuf when the caller gave one.
 * @param uri  ":memory:" (or NULL) for the in-memory store; a backend given in
 *             @p opts receives the uri as it is.
 * @param opts options or NULL for defaults.
 * @return SEG_OK, SEG_EINVAL, SEG_EVERSION, SEG_ENOMEM, SEG_ESTORAGE, SEG_EBUSY.
 * @since 1.0
 */
SEG_API int seg_db_open(seg_db **out, const char *uri, const seg_db_options *opts);

/**
 * Close a database and free everything it owns.  NULL is a no-op.  Never
 * fails.  An open transaction is rolled back.
 * @since 1.0
 */
SEG_API void seg_db_close(seg_db *db);

/** The currency exponent of the database (2 = cents). @since 1.0 */
SEG_API int seg_db_currency_exponent(const seg_db *db);

/** SEG_VERSION_NUMBER of the loaded library. @since 1.0 */
SEG_API int seg_version(void);

/** The loaded library's version as a string ("1.0.0"). @since 1.0 */
SEG_API const char *seg_version_string(void);

/**
 * Fixed English text for a status code; never NULL.
 * @since 1.0
 */
SEG_API const char *seg_errstr(int code);

/**
 * Status code of the last failed call on @p db, or SEG_OK if the last call
 * succeeded.  Reading it changes nothing.
 * @since 1.0
 */
SEG_API int seg_errcode(const seg_db *db);

/**
 * Message for the last failed call on @p db ("" after a success).  Owned by
 * the handle; valid until the next call on it.  For a NULL handle returns
 * a fixed text.
 * @since 1.0
 */
SEG_API const char *seg_errmsg(const seg_db *db);

/**
 * Free memory the library handed to the caller (for example the id returned
 * by seg_customer_anonymize()).  NULL is a no-op.  It may be called after
 * the handle the memory came from was closed (the memory goes back to that
 * handle's allocator, whose user data must still be valid).
 * @since 1.0
 */
SEG_API void seg_free(void *ptr);

/** @name Time and money text
 * Helpers shared by the CSV import, the tool and the bindings.
 * @{ */

/**
 * Parse a time: ISO-8601 UTC ("2024-03-01T10:00:00Z", "2024-03-01",
 * "2024-03-01 10:00:00", fractions of a second are dropped, a "+hh:mm" or
 * "-hh:mm" offset is applied) or integer epoch seconds ("1709287200").
 * @param text  UTF-8, @p len bytes (no NUL needed)
 * @return SEG_OK, SEG_EINVAL (not a time), SEG_ERANGE (outside
 *         SEG_TIME_MIN..SEG_TIME_MAX).  *out is 0 on failure.
 * @since 1.0
 */
SEG_API int seg_time_parse(int64_t *out, const char *text, size_t len);

/**
 * Format a time as "YYYY-MM-DDTHH:MM:SSZ" (20 characters plus NUL).
 * @return the length written (20), or 0 when @p size < 21 or t is out of range.
 * @since 1.0
 */
SEG_API size_t seg_time_format(char *buf, size_t size, int64_t t);

/**
 * Parse a decimal amount ("12.50", "-3", "+0.5") into minor units with
 * @p exponent decimal places (0..6).  More decimals than the exponent is
 * SEG_EINVAL unless they are zeros; no exponent notation, no thousands
 * separators.
 * @return SEG_OK, SEG_EINVAL, SEG_ERANGE (|value| > SEG_AMOUNT_MAX minor units).
 * @since 1.0
 */
SEG_API int seg_money_parse(int64_t *out, const char *text, size_t len, int exponent);

/** A buffer of this size holds any seg_money_format() output. @since 1.0 */
#define SEG_MONEY_BUFSIZE 32

/**
 * Format minor units as a decimal string with @p exponent decimals
 * ("-3.00").  @return the length written, or 0 if it does not fit.
 * @since 1.0
 */
SEG_API size_t seg_money_format(char *buf, size_t size, int64_t amount, int exponent);

/** @} */

/** @} */

SEG_END_DECLS

#endif /* SEGMENT_CORE_H */
