/*
 * libsegment: the customer store: per-customer aggregates, typed attributes,
 * consent, erasure.
 */
#ifndef SEGMENT_CUSTOMER_H
#define SEGMENT_CUSTOMER_H

#include "segment/core.h"

SEG_BEGIN_DECLS

/** @defgroup customer Customers
 *  @{ */

/**
 * A customer's aggregates, kept incrementally as events arrive.
 * "Purchase" here means a purchase line with a positive amount.
 * @since 1.0
 */
typedef struct seg_customer_info {
    size_t struct_size;      /**< set by the caller: sizeof(seg_customer_info); fields past it are not written */
    const char *customer_id; /**< borrowed: valid until the next call on the db */
    uint64_t orders;         /**< distinct orders with at least one positive line */
    uint64_t purchase_days;  /**< distinct UTC calendar days with a purchase */
    int64_t first_purchase;  /**< time of the first purchase; 0 when orders == 0 */
    int64_t last_purchase;   /**< time of the last purchase; 0 when orders == 0 */
    int64_t revenue;         /**< sum of positive purchase amounts (minor units) */
    int64_t net_revenue;     /**< revenue plus refunds (refunds are negative) */
    int64_t refunds;         /**< sum of refund amounts (<= 0) */
    int64_t units;           /**< purchased units less returned units */
    uint64_t events;         /**< stored events of every kind */
    uint64_t engagements;    /**< stored engagement events */
    int64_t first_seen;      /**< time of the earliest event; 0 when events == 0 */
    int64_t last_seen;       /**< time of the latest event; 0 when events == 0 */
} seg_customer_info;

/** @since 1.0 */
#define SEG_CUSTOMER_INFO_INIT { sizeof(seg_customer_info), NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/**
 * Add a customer with no events (a prospect).  Adding an existing customer
 * is a no-op.
 * @return SEG_OK, SEG_EINVAL (bad id), SEG_ENOMEM, SEG_ESTORAGE, SEG_EREADONLY.
 * @since 1.0
 */
SEG_API int seg_customer_add(seg_db *db, const char *customer_id);

/**
 * Look a customer up by id.
 * @param out caller sets out->struct_size; receives the aggregates.
 * @return SEG_OK, SEG_ENOTFOUND, SEG_EINVAL, SEG_EVERSION.
 * @since 1.0
 */
SEG_API int seg_customer_get(seg_customer_info *out, seg_db *db, const char *customer_id);

/** Number of customers (prospects included). @since 1.0 */
SEG_API uint64_t seg_customer_count(const seg_db *db);

/** Return non-zero to stop. The info is valid during the call only.  The
 *  callback may read the db (get, get_attr, ...) but not change it: a
 *  change returns SEG_EMISUSE.  @since 1.0 */
typedef int (*seg_customer_cb)(const seg_customer_info *customer, void *payload);

/** @name seg_customer_foreach flags */
/** @{ */
#define SEG_CUSTOMER_SORTED 0x1u /**< visit in byte order of customer_id (default: order of creation) */
/** @} */

/**
 * Call @p cb for every customer.
 * @return SEG_OK (also when stopped early), SEG_EINVAL, SEG_ENOMEM.
 * @since 1.0
 */
SEG_API int seg_customer_foreach(seg_db *db, uint32_t flags, seg_customer_cb cb, void *payload);

/**
 * As seg_customer_foreach(), with every aggregate computed only over the
 * events with ts < @p as_of (the state of the database as of that instant).
 * Customers whose events all come at or after as_of are skipped; customers
 * with no events at all (prospects) are visited.  Costs one pass over the
 * events.
 * @since 1.0
 */
SEG_API int seg_customer_foreach_as_of(seg_db *db, int64_t as_of, uint32_t flags,
                                       seg_customer_cb cb, void *payload);

/** @name Attribute value types (seg_value.type) */
/** @{ */
#define SEG_TYPE_NULL   0u /**< absent */
#define SEG_TYPE_STRING 1u /**< UTF-8 text */
#define SEG_TYPE_INT    2u /**< int64_t */
#define SEG_TYPE_NUMBER 3u /**< finite double */
#define SEG_TYPE_BOOL   4u /**< 0 or 1 in i */
#define SEG_TYPE_TIME   5u /**< seconds since the epoch in i */
/** @} */

/**
 * A typed value.  Read the member the type names: s for STRING, d for
 * NUMBER, i for INT, BOOL and TIME.
 * @since 1.0
 */
typedef struct seg_value {
    uint32_t type;  /**< SEG_TYPE_* */
    int64_t i;      /**< INT, BOOL (0/1), TIME */
    double d;       /**< NUMBER */
    const char *s;  /**< STRING: NUL-terminated UTF-8 */
} seg_value;

/** Longest string attribute value in bytes. @since 1.0 */
#define SEG_ATTR_VALUE_MAX 4096

/**
 * Set a customer attribute; the customer is created if needed.  An
 * attribute name has one type in the whole database, fixed when it is first
 * set (or declared): setting another type is SEG_EINVAL.  The type is
 * stored with the database.  A value of type SEG_TYPE_NULL removes the
 * attribute.
 * @return SEG_OK, SEG_EINVAL, SEG_ERANGE (time out of range), SEG_ENOMEM,
 *         SEG_ESTORAGE, SEG_EREADONLY.
 * @since 1.0
 */
SEG_API int seg_customer_set_attr(seg_db *db, const char *customer_id,
                                  const char *name, const seg_value *value);

/**
 * Read a customer attribute.  A string value is borrowed from the db until
 * the next call on it.  A missing attribute on a known customer is SEG_OK
 * with out->type == SEG_TYPE_NULL.
 * @return SEG_OK, SEG_ENOTFOUND (no such customer), SEG_EINVAL.
 * @since 1.0
 */
SEG_API int seg_customer_get_attr(seg_value *out, seg_db *db, const char *customer_id,
                                  const char *name);

/**
 * Declare an attribute's type before any value is set.  Declaring the same
 * type again is a no-op; another type is SEG_EINVAL.
 * @since 1.0
 */
SEG_API int seg_attr_declare(seg_db *db, const char *name, uint32_t type);

/**
 * The declared type of an attribute name, or SEG_TYPE_NULL if unknown.
 * @since 1.0
 */
SEG_API uint32_t seg_attr_type(seg_db *db, const char *name);

/** @name Consent states */
/** @{ */
#define SEG_CONSENT_UNKNOWN 0 /**< never recorded */
#define SEG_CONSENT_GRANTED 1 /**< opted in */
#define SEG_CONSENT_DENIED  2 /**< opted out */
/** @} */

/**
 * Record a customer's consent for a channel ("email", "sms", "push", ...);
 * the customer is created if needed.
 * @param state SEG_CONSENT_GRANTED, SEG_CONSENT_DENIED or SEG_CONSENT_UNKNOWN (forget)
 * @return SEG_OK, SEG_EINVAL, SEG_ENOMEM, SEG_ESTORAGE, SEG_EREADONLY.
 * @since 1.0
 */
SEG_API int seg_customer_set_consent(seg_db *db, const char *customer_id,
                                     const char *channel, int state);

/**
 * Read a customer's consent for a channel into *out (SEG_CONSENT_*).
 * @return SEG_OK, SEG_ENOTFOUND (no such customer), SEG_EINVAL.
 * @since 1.0
 */
SEG_API int seg_customer_get_consent(int *out, seg_db *db, const char *customer_id,
                                     const char *channel);

/**
 * Right to erasure: remove the customer, every event, attribute, consent
 * and derived state of theirs.  Other customers are unaffected.  Their
 * events' ids are forgotten too, so importing the same events again would
 * store them again.  Costs one pass over all events.
 *
 * Module state goes in the same transaction: the customer's actions in the
 * outbox (pending or suppressed; their identities stay known, so nothing
 * is sent twice) and their frequency-cap counters.  A module attached to
 * the db (journeys, a loyalty program) forgets the customer as well; one
 * not attached at the time keeps its records until it is.
 * @return SEG_OK, SEG_ENOTFOUND, SEG_EINVAL, SEG_ESTORAGE, SEG_EREADONLY.
 * @since 1.0
 */
SEG_API int seg_customer_erase(seg_db *db, const char *customer_id);

/**
 * Anonymize: keep the customer's events for aggregate statistics under a new
 * random id ("anon-" and 32 hex digits, from the system's random source),
 * drop every attribute and consent.  Derived event ids change with the id.
 * Queued actions and cap counters of the old identity leave the outbox and
 * it leaves every journey of the open journey set, as with
 * seg_customer_erase() (the new id is a new customer there); the ledger of
 * an attached loyalty program follows the events to the new id.
 * @param new_id_out NULL, or receives the new id (free with seg_free()).
 * @return SEG_OK, SEG_ENOTFOUND, SEG_EINVAL, SEG_ENOMEM, SEG_ESTORAGE,
 *         SEG_EREADONLY, SEG_ERROR (no random source).
 * @since 1.0
 */
SEG_API int seg_customer_anonymize(seg_db *db, const char *customer_id, char **new_id_out);

/**
 * Import customers, attributes and consent from CSV text in memory.  The
 * header names `customer_id` and then any number of columns
 * `NAME:TYPE` (TYPE one of string, int, number, bool, time; an empty cell
 * leaves the attribute unset) and `consent:CHANNEL` (cells granted, denied
 * or empty).  Every customer named is created (a prospect when it has no
 * events).  The whole input is one transaction: any bad cell fails it with
 * "SOURCE:LINE:COLUMN: ..." and changes nothing.
 * @param source_name name used in messages, or NULL ("<buffer>")
 * @return SEG_OK, SEG_EPARSE, SEG_EINVAL, SEG_ERANGE, SEG_ENOMEM, SEG_ESTORAGE.
 * @since 1.0
 */
SEG_API int seg_customer_import_csv(seg_db *db, const char *data, size_t len,
                                    const char *source_name);

/**
 * As seg_customer_import_csv(), from a file.
 * @return also SEG_EIO when the file cannot be read.
 * @since 1.0
 */
SEG_API int seg_customer_import_csv_file(seg_db *db, const char *path);

/** @} */

SEG_END_DECLS

#endif /* SEGMENT_CUSTOMER_H */
