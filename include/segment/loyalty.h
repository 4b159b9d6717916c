/*
 * libsegment: loyalty programs: points earned per currency unit, tier
 * multipliers, category and channel bonuses, expiry, tiers qualified over a
 * rolling window with downgrade grace, a points ledger per customer kept as
 * lots, and stateless scoring at the till.
 *
 * A program is written in the definition language (doc/loyalty.md):
 *
 *     program rewards {
 *       earn 1 point per 1.00;
 *       qualify spend over 365d;
 *       tier silver;
 *       tier gold from 1000.00 multiplier 1.5;
 *     }
 *
 * Two ways to use it:
 * - at the till, with no database: seg_loyalty_score() scores one customer
 *   from a history array (tier, balance, the points a purchase would earn,
 *   the spend missing for the next tier) without allocating;
 * - on a database: seg_loyalty_attach() gives a ledger that follows every
 *   ingested purchase and refund, records redemptions (seg_loyalty_redeem()),
 *   is stored with the database's records (it survives reopen with the
 *   SQLite backend), and makes the values `tier` and `points` readable in
 *   segment definitions.
 *
 * Time is always given by the caller; points are int64 integers; money is
 * in minor units.
 */
#ifndef SEGMENT_LOYALTY_H
#define SEGMENT_LOYALTY_H

#include "segment/core.h"

SEG_BEGIN_DECLS

/** @defgroup loyalty Loyalty
 *  @{ */

/**
 * A compiled loyalty program.  Needs no database.  Immutable once
 * compiled: any number of threads may score with it at the same time.
 * @since 1.0
 */
typedef struct seg_loyalty seg_loyalty;

/**
 * A program's points ledger on one database (seg_loyalty_attach()).  Used
 * by one thread at a time, like its database; its errors are the db's
 * (seg_errmsg()).
 * @since 1.0
 */
typedef struct seg_loyalty_ledger seg_loyalty_ledger;

/** Largest points value of any balance, lot or rule (10^15). @since 1.0 */
#define SEG_LOYALTY_POINTS_MAX INT64_C(1000000000000000)

/**
 * Options of seg_loyalty_compile().  SEG_LOYALTY_OPTIONS_INIT or
 * seg_loyalty_options_init() gives the defaults; NULL means defaults.
 * @since 1.0
 */
typedef struct seg_loyalty_options {
    size_t struct_size;          /**< sizeof(seg_loyalty_options) as compiled by the caller */
    int32_t currency_exponent;   /**< decimals of money literals, 0..6 (2 = cents); seg_loyalty_attach() requires the db's */
    const char *name;            /**< the program to compile, or NULL for the text's only program */
    const seg_allocator *allocator; /**< NULL: the C library's malloc */
    char *errbuf;                /**< NULL, or receives the message when compiling fails ("3:17: ...") */
    size_t errbuf_size;          /**< size of errbuf in bytes */
} seg_loyalty_options;

/** Default options. @since 1.0 */
#define SEG_LOYALTY_OPTIONS_INIT { sizeof(seg_loyalty_options), 2, NULL, NULL, NULL, 0 }

/**
 * Write the default options into @p opts (for bindings).
 * @return SEG_OK, SEG_EINVAL (NULL) or SEG_EVERSION.
 * @since 1.0
 */
SEG_API int seg_loyalty_options_init(seg_loyalty_options *opts, size_t struct_size);

/**
 * Compile a loyalty program from definition text.  The text may hold
 * segments and other programs too (they are parsed, not compiled); the
 * program compiled is opts->name, or the only `program` of the text.
 * Errors name the line and column of the problem; a rule the issue calls
 * out as bad (negative or overflowing points, tiers out of order,
 * overlapping bonus rules, a zero or overflowing duration) is an error.
 * @param out  receives the program, or NULL on failure
 * @return SEG_OK, SEG_EPARSE (syntax), SEG_EINVAL (a bad rule, no such
 *         program, several programs and no name), SEG_ERANGE (a number
 *         out of range), SEG_EVERSION, SEG_ELIMIT, SEG_ENOMEM.
 * @since 1.0
 */
SEG_API int seg_loyalty_compile(seg_loyalty **out, const char *src, size_t len,
                                const seg_loyalty_options *opts);

/**
 * Free a program.  NULL is a no-op.  A ledger attached with it keeps the
 * program alive until the ledger is freed.
 * @since 1.0
 */
SEG_API void seg_loyalty_free(seg_loyalty *prog);

/** The program's name; owned by the program. @since 1.0 */
SEG_API const char *seg_loyalty_name(const seg_loyalty *prog);

/** Number of tiers (at least 1). @since 1.0 */
SEG_API int seg_loyalty_tier_count(const seg_loyalty *prog);

/** Name of tier @p tier (0 = the base tier), or NULL when out of range. @since 1.0 */
SEG_API const char *seg_loyalty_tier_name(const seg_loyalty *prog, int tier);

/** @name Kinds of seg_loyalty_txn */
/** @{ */
#define SEG_LOYALTY_PURCHASE   1u /**< a purchase (line): amount >= 0 */
#define SEG_LOYALTY_REFUND     2u /**< money given back: amount < 0 */
#define SEG_LOYALTY_REDEMPTION 3u /**< points spent: points > 0 */
/** @} */

/**
 * One entry of a customer's history for seg_loyalty_score().  All entries
 * of an array have the struct_size of the first.  Strings are borrowed for
 * the call only.
 * @since 1.0
 */
typedef struct seg_loyalty_txn {
    size_t struct_size;   /**< sizeof(seg_loyalty_txn) */
    uint32_t kind;        /**< SEG_LOYALTY_* */
    uint32_t order;       /**< purchase: its order (lines sharing a number are one order; 0: an order of its own); refund: the order refunded (0: none) */
    int64_t ts;           /**< seconds since the epoch, UTC */
    int64_t amount;       /**< purchase: >= 0; refund: < 0 (minor units) */
    int64_t points;       /**< redemption: the points spent (> 0); else 0 */
    const char *category; /**< purchase: category or NULL (for bonus rules) */
    const char *channel;  /**< purchase: channel or NULL */
} seg_loyalty_txn;

/** An empty entry. @since 1.0 */
#define SEG_LOYALTY_TXN_INIT { sizeof(seg_loyalty_txn), 0, 0, 0, 0, 0, NULL, NULL }

/**
 * A customer's loyalty state as of a time.  The caller sets struct_size;
 * the library fills the rest.  Strings are owned by the program.
 * @since 1.0
 */
typedef struct seg_loyalty_status {
    size_t struct_size;        /**< sizeof(seg_loyalty_status) */
    const char *customer_id;   /**< ledger walks: the customer; else NULL */
    int32_t tier;              /**< the tier held (0 = base) */
    int32_t next_tier;         /**< tier + 1, or -1 at the top */
    const char *tier_name;     /**< name of tier */
    const char *next_tier_name; /**< name of next_tier, or NULL */
    int64_t points;            /**< balance: points that can be redeemed (negative: owed) */
    int64_t earned;            /**< points earned, all time */
    int64_t redeemed;          /**< points redeemed */
    int64_t expired;           /**< points expired */
    int64_t reversed;          /**< points taken back by refunds */
    int64_t qualifying;        /**< the qualifying measure in the window (money, points or orders) */
    int64_t to_next_tier;      /**< qualifying measure missing for next_tier; -1 at the top */
    int64_t spend_to_next_tier; /**< money to spend for next_tier; -1 at the top or when orders qualify */
    int64_t downgrade_at;      /**< when the tier drops unless requalified (in grace); -1 when not in grace */
    int64_t purchase_points;   /**< seg_loyalty_score(): points the purchase scored would earn; else 0 */
} seg_loyalty_status;

/** @since 1.0 */
#define SEG_LOYALTY_STATUS_INIT { sizeof(seg_loyalty_status), NULL, 0, 0, NULL, NULL, \
                                  0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/** Entries of a history seg_loyalty_score() takes without a work buffer. @since 1.0 */
#define SEG_LOYALTY_STACK_TXNS 256

/**
 * Bytes of work buffer seg_loyalty_score() needs for a history of @p n
 * entries (0 when n <= SEG_LOYALTY_STACK_TXNS).
 * @since 1.0
 */
SEG_API size_t seg_loyalty_work_size(size_t n);

/**
 * Score one customer at the till: the tier, the balance, the spend missing
 * for the next tier as of @p now, and the points @p purchase would earn at
 * @p now.  Needs no database and allocates nothing.
 *
 * The history is the customer's purchases, refunds and redemptions in time
 * order (ts ascending); entries at or after @p now are ignored.  Points of
 * past purchases are computed with the program (the tier held at each
 * purchase's time).
 *
 * @param out      filled (its struct_size set by the caller)
 * @param purchase NULL, or a purchase to price at @p now (not added)
 * @param work     NULL when n <= SEG_LOYALTY_STACK_TXNS, else at least
 *                 seg_loyalty_work_size(n) bytes, 8-byte aligned
 * @param bad_out  NULL, or receives the index of the entry an SEG_EINVAL
 *                 is about ((size_t)-1: not an entry)
 * @return SEG_OK, SEG_EINVAL (NULL arguments, an entry of an unknown kind,
 *         a purchase with a negative amount, a refund with a non-negative
 *         one, a redemption without points, entries out of time order),
 *         SEG_ERANGE (an amount or time out of range, points beyond
 *         SEG_LOYALTY_POINTS_MAX), SEG_ELIMIT (work too small),
 *         SEG_EVERSION (struct sizes).  On failure *out is zeroed.
 * @since 1.0
 */
SEG_API int seg_loyalty_score(seg_loyalty_status *out, const seg_loyalty *prog,
                              const seg_loyalty_txn *history, size_t n,
                              const seg_loyalty_txn *purchase, int64_t now,
                              void *work, size_t work_size, size_t *bad_out);

/**
 * Attach a program to a database: the ledger follows every purchase and
 * refund ingested from now on, inside the batch's transaction, and writes
 * each changed customer's ledger as a record of the table
 * "loyalty:PROGRAM" (JSON, doc/loyalty.md).  Records stored by an earlier
 * session are restored; events the stored ledger has not seen (or all of
 * them, the first time) are applied in time order.  At most one ledger per
 * program name and database.
 * @param out  receives the ledger, or NULL on failure
 * @return SEG_OK, SEG_EINVAL (NULL, a currency exponent other than the
 *         db's, a program of that name already attached, a bad record),
 *         SEG_ELIMIT, SEG_ENOMEM, SEG_ESTORAGE, SEG_EMISUSE.
 * @since 1.0
 */
SEG_API int seg_loyalty_attach(seg_loyalty_ledger **out, seg_db *db, seg_loyalty *prog);

/**
 * Detach and free a ledger.  NULL is a no-op.  What it stored stays in the
 * database.
 * @since 1.0
 */
SEG_API void seg_loyalty_ledger_free(seg_loyalty_ledger *ledger);

/**
 * Spend @p points of a customer at @p now: drawn from the oldest lots that
 * have not expired, recorded with the lots drawn from, in a transaction of
 * its own.
 * @return SEG_OK; SEG_EINVAL when the balance at @p now is short (nothing
 *         changes; the message gives the balance), points <= 0 or beyond
 *         SEG_LOYALTY_POINTS_MAX; SEG_ENOTFOUND (no such customer),
 *         SEG_EREADONLY, SEG_EMISUSE, SEG_ESTORAGE, SEG_ENOMEM.
 * @since 1.0
 */
SEG_API int seg_loyalty_redeem(seg_loyalty_ledger *ledger, const char *customer_id,
                               int64_t points, int64_t now);

/**
 * A customer's state as of @p as_of (only ledger entries with ts < as_of
 * count).
 * @return SEG_OK, SEG_ENOTFOUND, SEG_EINVAL, SEG_EVERSION.
 * @since 1.0
 */
SEG_API int seg_loyalty_status_get(seg_loyalty_status *out, seg_loyalty_ledger *ledger,
                                   const char *customer_id, int64_t as_of);

/** Callback of seg_loyalty_foreach(); non-zero stops the walk. @since 1.0 */
typedef int (*seg_loyalty_cb)(const seg_loyalty_status *status, void *payload);

/** seg_loyalty_foreach() flag: in customer_id byte order. @since 1.0 */
#define SEG_LOYALTY_SORTED 0x1u

/**
 * Call @p cb with the state as of @p as_of of every customer with a ledger
 * entry before @p as_of (customers without one are left out).
 * @return SEG_OK (also when cb stopped), SEG_EINVAL, SEG_ENOMEM.
 * @since 1.0
 */
SEG_API int seg_loyalty_foreach(seg_loyalty_ledger *ledger, int64_t as_of, uint32_t flags,
                                seg_loyalty_cb cb, void *payload);

/**
 * One ledger entry (seg_loyalty_entries()).  Pointers are valid during
 * the callback only.
 * @since 1.0
 */
typedef struct seg_loyalty_entry {
    size_t struct_size;      /**< sizeof(seg_loyalty_entry) as known to the library */
    uint32_t kind;           /**< SEG_LOYALTY_* */
    uint32_t seq;            /**< the entry's number within the customer's ledger (1, 2, ...) */
    int64_t ts;              /**< its time */
    int64_t amount;          /**< purchase or refund: money */
    int64_t points;          /**< purchase: points earned (a lot); redemption: points spent */
    int64_t expires;         /**< purchase: when the lot's points expire (INT64_MAX: never) */
    const char *order_id;    /**< purchase or refund: the order, or NULL */
    size_t ndraws;           /**< redemption: the lots drawn from */
    const uint32_t *draw_lots;   /**< [ndraws]: seq of each lot drawn from */
    const int64_t *draw_points;  /**< [ndraws]: points drawn from it */
} seg_loyalty_entry;

/** Callback of seg_loyalty_entries(); non-zero stops. @since 1.0 */
typedef int (*seg_loyalty_entry_cb)(const seg_loyalty_entry *entry, void *payload);

/**
 * Call @p cb for each entry of a customer's ledger in time order.
 * @return SEG_OK, SEG_ENOTFOUND, SEG_EINVAL.
 * @since 1.0
 */
SEG_API int seg_loyalty_entries(seg_loyalty_ledger *ledger, const char *customer_id,
                                seg_loyalty_entry_cb cb, void *payload);

/** @} */

SEG_END_DECLS

#endif /* SEGMENT_LOYALTY_H */
