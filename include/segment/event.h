/*
 * libsegment: events and their ingestion (one event, a batch, or CSV).
 */
#ifndef SEGMENT_EVENT_H
#define SEGMENT_EVENT_H

#include "segment/core.h"

SEG_BEGIN_DECLS

/** @defgroup event Events
 *  @{ */

/** @name Event kinds (seg_event.kind) */
/** @{ */
#define SEG_EVENT_PURCHASE   1u /**< one order line: amount >= 0 */
#define SEG_EVENT_REFUND     2u /**< money given back: amount < 0 */
#define SEG_EVENT_ENGAGEMENT 3u /**< a named engagement event ("email_open") */
/** @} */


/**
 * One event, as the caller hands it over.  Strings are UTF-8 and
 * NUL-terminated, 1..SEG_ID_MAX bytes, copied when kept; NULL means absent.
 * Initialize with SEG_EVENT_INIT and set what applies.
 *
 * - purchase: customer_id, ts, amount (>= 0), optional quantity (default 1),
 *   order_id (lines sharing an order id form one order; NULL: the event is an
 *   order of its own, its order id is its event id), channel, category, sku.
 * - refund: customer_id, ts, amount (< 0, the money given back), optional
 *   refund_of (the order id of a purchase of the same customer: the refund
 *   may not exceed that order's amount less its earlier refunds), quantity
 *   (units returned, default 0), order_id, channel, category, sku.
 * - engagement: customer_id, ts, name; amount 0.
 *
 * event_id: a unique id; NULL derives a stable id from the content
 * ("~" followed by 32 hex digits), so ingesting the same content twice is a
 * no-op.  Ids given by the caller may not start with '~'.
 *
 * Orders: an order id belongs to the customer whose event first used it; a
 * line or refund of another customer naming it is SEG_EINVAL.  A purchase
 * without order_id but with an event_id is the order named by that id (later
 * lines may join it, refunds may name it).  Quantities are 0..SEG_QUANTITY_MAX.
 *
 * Limits: a database holds at most 16,383 distinct channels and 65,535
 * distinct categories (SEG_ELIMIT beyond), and fewer than 2^32 events.
 *
 * Time order: events may arrive in any time order, with one exception: a
 * refund that names an order (refund_of) must come after that order's
 * purchase lines, since the refund is checked against them.
 * @since 1.0
 */
typedef struct seg_event {
    size_t struct_size;      /**< sizeof(seg_event) as compiled by the caller */
    uint32_t kind;           /**< SEG_EVENT_* */
    int32_t quantity;        /**< units; SEG_QUANTITY_DEFAULT for the kind's default */
    const char *event_id;    /**< unique event id, or NULL to derive it */
    const char *customer_id; /**< required */
    int64_t ts;              /**< seconds since the epoch, UTC, SEG_TIME_MIN..SEG_TIME_MAX */
    int64_t amount;          /**< minor units */
    const char *order_id;    /**< purchase or refund: the order it belongs to */
    const char *channel;     /**< "store", "web", ... or NULL */
    const char *category;    /**< product category or NULL */
    const char *sku;         /**< product id or NULL */
    const char *refund_of;   /**< refund: order id of the refunded purchase, or NULL */
    const char *name;        /**< engagement: the event's name ("email_open") */
} seg_event;

/** quantity value meaning "the default": 1 for a purchase, 0 otherwise. @since 1.0 */
#define SEG_QUANTITY_DEFAULT INT32_MIN

/** An empty event of the current layout. @since 1.0 */
#define SEG_EVENT_INIT { sizeof(seg_event), 0, SEG_QUANTITY_DEFAULT, NULL, NULL, \
                         0, 0, NULL, NULL, NULL, NULL, NULL, NULL }

/**
 * Called for each event of a batch that is not accepted, in per-event mode.
 * @param index  the event's position in the batch (for CSV: its data row,
 *               0 = first row after the header)
 * @param code   why: SEG_EINVAL, SEG_ECONFLICT, SEG_ERANGE, SEG_ENOTFOUND ...
 * @param reason a message naming the problem (for CSV with file, line and
 *               column); valid during the call only
 * @since 1.0
 */
typedef void (*seg_event_reject_cb)(size_t index, int code, const char *reason,
                                    void *payload);

/** @name seg_ingest_options.flags */
/** @{ */
/** Per-event mode: accept every valid event, report each rejected one
 *  through on_reject, and return SEG_OK.  Without it a batch is atomic:
 *  the first bad event fails the whole batch and changes nothing. */
#define SEG_INGEST_PER_EVENT 0x1u
/** @} */

/**
 * Options of a batch ingest.  SEG_INGEST_OPTIONS_INIT gives an atomic batch.
 * @since 1.0
 */
typedef struct seg_ingest_options {
    size_t struct_size;            /**< sizeof(seg_ingest_options) */
    uint32_t flags;                /**< SEG_INGEST_PER_EVENT */
    seg_event_reject_cb on_reject; /**< per-event mode: called for each rejected event, or NULL */
    void *payload;                 /**< passed to on_reject */
} seg_ingest_options;

/** Default: atomic. @since 1.0 */
#define SEG_INGEST_OPTIONS_INIT { sizeof(seg_ingest_options), 0, NULL, NULL }

/** What a batch did.  Caller sets struct_size; the library fills the rest. @since 1.0 */
typedef struct seg_ingest_stats {
    size_t struct_size;   /**< sizeof(seg_ingest_stats) */
    uint64_t accepted;    /**< new events stored */
    uint64_t duplicates;  /**< events already stored with the same content (no-ops) */
    uint64_t rejected;    /**< events refused (per-event mode only) */
} seg_ingest_stats;

/** @since 1.0 */
#define SEG_INGEST_STATS_INIT { sizeof(seg_ingest_stats), 0, 0, 0 }

/**
 * Write defaults into an options struct (for bindings).
 * @return SEG_OK, SEG_EINVAL or SEG_EVERSION.
 * @since 1.0
 */
SEG_API int seg_ingest_options_init(seg_ingest_options *opts, size_t struct_size);

/**
 * Ingest one event.  Idempotent: an event whose id is already stored with the
 * same content changes nothing and returns SEG_OK; the same id with different
 * content is SEG_ECONFLICT.  Events may arrive in any time order.
 * @return SEG_OK, SEG_EINVAL (bad event, with a message naming the field),
 *         SEG_ERANGE (time, amount, or a customer's revenue or refunds
 *         beyond int64), SEG_ECONFLICT, SEG_ENOTFOUND (refund of an unknown
 *         order), SEG_EVERSION (struct_size), SEG_ENOMEM, SEG_ESTORAGE,
 *         SEG_EREADONLY, SEG_ELIMIT, SEG_EMISUSE (called from a foreach
 *         callback).  On failure nothing changed.
 * @since 1.0
 */
SEG_API int seg_event_ingest(seg_db *db, const seg_event *event);

/**
 * Ingest @p n events as one batch (one storage transaction).
 * All events of the array have the struct_size of the first.
 * Atomic by default: any bad event fails the batch, nothing changes, and
 * the message names the event's index.  With SEG_INGEST_PER_EVENT every
 * valid event is kept and each bad one reported.
 * @param stats_out NULL, or receives the counts (also on failure: zeros).
 * @since 1.0
 */
SEG_API int seg_event_ingest_batch(seg_db *db, const seg_event *events, size_t n,
                                   const seg_ingest_options *opts,
                                   seg_ingest_stats *stats_out);

/** @name seg_csv_options.flags */
/** @{ */
#define SEG_CSV_PER_EVENT       0x1u /**< as SEG_INGEST_PER_EVENT: keep good rows, report bad ones */
#define SEG_CSV_IGNORE_UNKNOWN  0x2u /**< ignore columns the importer does not know */
/** @} */

/**
 * Options of a CSV import.
 *
 * The file has a header row naming its columns: customer_id, ts, amount
 * are required; event_id, order_id, type, channel, category, sku, quantity,
 * refund_of, name are optional, in any order.  An unknown column is an
 * error unless SEG_CSV_IGNORE_UNKNOWN is set or column_map maps it.
 * @since 1.0
 */
typedef struct seg_csv_options {
    size_t struct_size;            /**< sizeof(seg_csv_options) */
    uint32_t flags;                /**< SEG_CSV_* */
    /** NULL, or pairs {from, to, from, to, ..., NULL}: the header name
     *  `from` is read as column `to`; `to` NULL or "" ignores the column. */
    const char *const *column_map;
    const char *source_name;       /**< name used in messages; default: the path, or "<buffer>" */
    seg_event_reject_cb on_reject; /**< per-event mode: called for each bad row */
    void *payload;                 /**< passed to on_reject */
} seg_csv_options;

/** @since 1.0 */
#define SEG_CSV_OPTIONS_INIT { sizeof(seg_csv_options), 0, NULL, NULL, NULL, NULL }

/** Write defaults into @p opts (for bindings). @since 1.0 */
SEG_API int seg_csv_options_init(seg_csv_options *opts, size_t struct_size);

/**
 * Import events from CSV text in memory (RFC 4180).  The whole buffer is one
 * batch: atomic unless SEG_CSV_PER_EVENT.  Errors name the source, line and
 * column ("events.csv:12:25: amount: ...").
 *
 * Columns: `ts` is ISO-8601 UTC (2024-03-01T10:00:00Z, 2024-03-01,
 * fractions of a second and a +hh:mm offset accepted) or integer epoch
 * seconds; `amount` a decimal string (12.50, -3.00) with at most the
 * database's currency exponent of decimals, empty for engagement events;
 * `type` purchase, refund or engagement (default: purchase, or refund when
 * the amount is negative, or engagement when `name` is set and the amount
 * empty); a row without event_id gets a stable id derived from its content
 * and its occurrence among identical rows of the input, so importing the
 * same file twice is a no-op while repeated identical rows are all kept.
 *
 * In per-event mode a row with a bad cell is reported and skipped; a
 * broken CSV structure (bad quoting, a wrong number of fields) still fails
 * the whole import with SEG_EPARSE and changes nothing, as do SEG_ENOMEM,
 * SEG_ELIMIT and SEG_ESTORAGE.  Header names match exactly (case-sensitive);
 * completely empty lines are skipped.
 * @return SEG_OK, SEG_EPARSE (malformed CSV), SEG_EINVAL, SEG_ERANGE,
 *         SEG_ECONFLICT, SEG_ENOTFOUND, SEG_ENOMEM, SEG_ESTORAGE,
 *         SEG_EREADONLY, SEG_EMISUSE (from a foreach callback) ...
 * @since 1.0
 */
SEG_API int seg_event_import_csv(seg_db *db, const char *data, size_t len,
                                 const seg_csv_options *opts,
                                 seg_ingest_stats *stats_out);

/**
 * Import events from a CSV file; as seg_event_import_csv().
 * @return also SEG_EIO when the file cannot be read.
 * @since 1.0
 */
SEG_API int seg_event_import_csv_file(seg_db *db, const char *path,
                                      const seg_csv_options *opts,
                                      seg_ingest_stats *stats_out);

/**
 * One stored event as handed to seg_event_cb.  Every pointer is valid during
 * the callback only.  event_id is always set (derived ids are rendered).
 * @since 1.0
 */
typedef struct seg_event_info {
    size_t struct_size;      /**< sizeof(seg_event_info) as known to the library */
    uint32_t kind;           /**< SEG_EVENT_* */
    int32_t quantity;        /**< units */
    const char *event_id;    /**< the event's id */
    const char *customer_id; /**< owner */
    int64_t ts;              /**< time */
    int64_t amount;          /**< minor units */
    const char *order_id;    /**< NULL for engagement events */
    const char *channel;     /**< or NULL */
    const char *category;    /**< or NULL */
    const char *sku;         /**< or NULL */
    const char *refund_of;   /**< or NULL */
    const char *name;        /**< engagement name, or NULL */
} seg_event_info;

/** Return non-zero to stop the iteration.  The callback may read the db
 *  but not change it (SEG_EMISUSE).  @since 1.0 */
typedef int (*seg_event_cb)(const seg_event_info *event, void *payload);

/**
 * Call @p cb for each stored event of one customer (customer_id non-NULL) or
 * of every customer (NULL), in the order they were ingested.
 * @return SEG_OK (also when cb stopped early), SEG_ENOTFOUND, SEG_EINVAL.
 * @since 1.0
 */
SEG_API int seg_event_foreach(seg_db *db, const char *customer_id,
                              seg_event_cb cb, void *payload);

/** Number of stored events. @since 1.0 */
SEG_API uint64_t seg_event_count(const seg_db *db);

/** @} */

SEG_END_DECLS

#endif /* SEGMENT_EVENT_H */
