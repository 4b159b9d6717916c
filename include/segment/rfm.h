/*
 * libsegment: RFM scores (recency, frequency, monetary) and historic
 * customer value.
 *
 * Definitions (doc/rfm.md explains them with examples):
 *
 * - The reference time T (seg_rfm_options.as_of) defaults to the start
 *   (00:00:00 UTC) of the day after the UTC date of the last stored event.
 *   Only events with ts < T count, as in seg_customer_foreach_as_of().
 * - The window (seg_rfm_options.window, in seconds; 0 = none) restricts R, F
 *   and M to the events with T - window <= ts < T.
 * - A purchase is a purchase line with a positive amount.
 * - recency_days: calendar days (UTC) from the date of the customer's last
 *   purchase in the window to the date of T.  With the default T, a
 *   purchase on the last day of the data has recency 1.
 * - frequency: distinct orders with a purchase in the window.
 * - monetary: net revenue in the window (purchase lines plus refunds, the
 *   refunds counted at their own time), or with SEG_RFM_MONETARY_AOV that
 *   net revenue divided by frequency (the average order value, rounded half
 *   away from zero to minor units).
 * - A customer with no purchase in the window has no scores: status
 *   SEG_RFM_PROSPECT (no purchase before T at all) or SEG_RFM_LAPSED
 *   (purchases before the window only).  Customers whose events all come at
 *   or after T are not customers yet and are not visited.
 * - Scores are 1..bins per dimension, higher is better (recent, frequent,
 *   high value).  Thresholds are either fixed by the caller or calibrated on
 *   the active customers (quantile bins): customers with equal values always
 *   get equal scores; bins are cut only where the value changes, as equal
 *   in size as the ties allow (the least sum of squared bin sizes); with
 *   fewer distinct values than bins each value is a bin of its own, scored
 *   by its mid-rank percentile.  doc/rfm.md states the rule in full and how
 *   it differs from SQL's NTILE.
 * - Historic value looks at every event before T, whatever the window:
 *   orders, total value (net revenue), average order value, tenure (days
 *   from the date of the first purchase to the date of T) and purchase rate
 *   (orders per 365 days of tenure).
 */
#ifndef SEGMENT_RFM_H
#define SEGMENT_RFM_H

#include "segment/core.h"

SEG_BEGIN_DECLS

/** @defgroup rfm RFM and historic value
 *  @{ */

/** @name Dimensions (seg_rfm_score(), seg_rfm_thresholds_get()) */
/** @{ */
#define SEG_RFM_R 0u /**< recency: recency_days, fewer is better */
#define SEG_RFM_F 1u /**< frequency: orders in the window, more is better */
#define SEG_RFM_M 2u /**< monetary: minor units, more is better */
/** @} */

/** @name Status of a customer (seg_rfm_info.status) */
/** @{ */
#define SEG_RFM_ACTIVE   1u /**< a purchase in the window: scored */
#define SEG_RFM_LAPSED   2u /**< purchases before T, none in the window: no scores */
#define SEG_RFM_PROSPECT 3u /**< no purchase before T: no scores */
/** @} */

/** @name Monetary measure (seg_rfm_options.monetary) */
/** @{ */
#define SEG_RFM_MONETARY_TOTAL 0u /**< net revenue in the window */
#define SEG_RFM_MONETARY_AOV   1u /**< net revenue in the window / frequency */
/** @} */

/** Largest number of bins. @since 1.0 */
#define SEG_RFM_BINS_MAX 20
/** seg_rfm_options.as_of: the start of the day after the last event. @since 1.0 */
#define SEG_RFM_AS_OF_AUTO INT64_MIN

/** seg_rfm_foreach() flag: visit customers in byte order of customer_id
 *  (default: order of creation). @since 1.0 */
#define SEG_RFM_SORTED 0x1u

/**
 * Calibrated or imported thresholds: the number of bins, the monetary
 * measure, the window, and the bounds of each score per dimension.
 * Independent of the database once made (it keeps no pointer to it).
 * @since 1.0
 */
typedef struct seg_rfm_thresholds seg_rfm_thresholds;

/**
 * Options of an RFM computation.  Initialize with SEG_RFM_OPTIONS_INIT or
 * seg_rfm_options_init(); NULL options mean all defaults.
 *
 * Fixed thresholds (fixed_r, fixed_f, fixed_m): bins - 1 bounds, for the
 * scores 2, 3, ..., bins in that order; a value gets the highest score whose
 * bound it meets, and 1 when it meets none:
 * - fixed_r: the largest recency_days of each score (non-increasing),
 * - fixed_f: the least frequency of each score (non-decreasing),
 * - fixed_m: the least monetary of each score, minor units (non-decreasing).
 * @since 1.0
 */
typedef struct seg_rfm_options {
    size_t struct_size;     /**< sizeof(seg_rfm_options) as compiled by the caller */
    int64_t as_of;          /**< reference time T, or SEG_RFM_AS_OF_AUTO */
    int64_t window;         /**< look-back window in seconds; 0: every event before T */
    uint32_t bins;          /**< scores per dimension, 2..SEG_RFM_BINS_MAX (default 5) */
    uint32_t monetary;      /**< SEG_RFM_MONETARY_TOTAL or SEG_RFM_MONETARY_AOV */
    const int64_t *fixed_r; /**< NULL: calibrate recency bins; else bins - 1 bounds */
    const int64_t *fixed_f; /**< NULL: calibrate frequency bins; else bins - 1 bounds */
    const int64_t *fixed_m; /**< NULL: calibrate monetary bins; else bins - 1 bounds */
    /** NULL, or thresholds to score with (calibrated earlier or imported)
     *  instead of calibrating: their bins, monetary measure and window are
     *  used, and bins, monetary, window and fixed_* above must be left at
     *  their defaults (or equal the thresholds'). */
    const seg_rfm_thresholds *thresholds;
} seg_rfm_options;

/** Default options. @since 1.0 */
#define SEG_RFM_OPTIONS_INIT { sizeof(seg_rfm_options), SEG_RFM_AS_OF_AUTO, 0, 5, \
                               SEG_RFM_MONETARY_TOTAL, NULL, NULL, NULL, NULL }

/**
 * Write the default options into @p opts (for bindings).
 * @return SEG_OK, SEG_EINVAL (NULL) or SEG_EVERSION (size smaller than 1.0's).
 * @since 1.0
 */
SEG_API int seg_rfm_options_init(seg_rfm_options *opts, size_t struct_size);

/**
 * One customer's RFM values, scores and historic value.
 * @since 1.0
 */
typedef struct seg_rfm_info {
    size_t struct_size;      /**< set by the caller for seg_rfm_get(); the library's size in callbacks */
    const char *customer_id; /**< borrowed: valid during the callback, or until the next call on the db */
    uint32_t status;         /**< SEG_RFM_ACTIVE, SEG_RFM_LAPSED or SEG_RFM_PROSPECT */
    uint32_t r;              /**< recency score 1..bins; 0 unless active */
    uint32_t f;              /**< frequency score 1..bins; 0 unless active */
    uint32_t m;              /**< monetary score 1..bins; 0 unless active */
    int64_t as_of;           /**< the reference time T used */
    int64_t recency_days;    /**< days from the last purchase in the window to T; -1 unless active */
    uint64_t frequency;      /**< distinct orders with a purchase in the window */
    int64_t monetary;        /**< per the measure, minor units (net revenue in the window even when not active) */
    /* historic value: every event before T, whatever the window */
    uint64_t orders;             /**< distinct orders with a purchase before T */
    int64_t total_value;         /**< net revenue before T (purchases plus refunds) */
    int64_t average_order_value; /**< total_value / orders rounded half away from zero; 0 when orders is 0 */
    int64_t first_purchase;      /**< time of the first purchase; 0 when orders is 0 */
    int64_t last_purchase;       /**< time of the last purchase before T; 0 when orders is 0 */
    int64_t tenure_days;         /**< days from the date of the first purchase to the date of T; -1 when orders is 0 */
    double purchase_rate;        /**< orders per 365 days of tenure (tenure of 0 days counts as 1); 0 when orders is 0 */
} seg_rfm_info;

/** @since 1.0 */
#define SEG_RFM_INFO_INIT { sizeof(seg_rfm_info), NULL, 0, 0, 0, 0, 0, 0, 0, 0, \
                            0, 0, 0, 0, 0, 0, 0.0 }

/** Return non-zero to stop.  The info is valid during the call only.  The
 *  callback may read the db but not change it (SEG_EMISUSE).  @since 1.0 */
typedef int (*seg_rfm_cb)(const seg_rfm_info *customer, void *payload);

/**
 * Compute R, F, M and the historic value of every customer, calibrate the
 * thresholds (unless opts->thresholds is given or every dimension is
 * fixed), score every active customer, and call @p cb for each customer
 * (active, lapsed and prospect).
 *
 * Cost: with no window and T after every event, R, F and M come from the
 * customer aggregates the store keeps (no pass over the events); otherwise
 * one pass over the events.  Calibration is linear in the customers (a
 * counting or radix sort of each dimension).
 *
 * @param thresholds_out NULL, or receives the thresholds used (free with
 *        seg_rfm_thresholds_free()); NULL on failure.
 * @param opts  NULL for defaults.
 * @param flags 0 or SEG_RFM_SORTED.
 * @param cb    NULL: compute and calibrate only.
 * @return SEG_OK (also when cb stopped early), SEG_EINVAL (bad options, with
 *         a message naming the field), SEG_ERANGE (as_of out of range),
 *         SEG_EVERSION, SEG_ENOMEM, SEG_EMISUSE (called from a callback
 *         that may not).
 * @since 1.0
 */
SEG_API int seg_rfm_foreach(seg_rfm_thresholds **thresholds_out, seg_db *db,
                            const seg_rfm_options *opts, uint32_t flags,
                            seg_rfm_cb cb, void *payload);

/**
 * Calibrate thresholds on the customer base: seg_rfm_foreach() without a
 * callback.
 * @return as seg_rfm_foreach(); *out is NULL on failure.
 * @since 1.0
 */
SEG_API int seg_rfm_calibrate(seg_rfm_thresholds **out, seg_db *db,
                              const seg_rfm_options *opts);

/**
 * Compute and score one customer with given thresholds, without touching
 * the others: after a new event, this re-scores its customer.  Needs
 * opts->thresholds, or fixed bounds for all three dimensions.
 *
 * Cost: with an explicit as_of, no window and T after the customer's last
 * event, O(log bins) from the customer's aggregates; otherwise one walk of
 * the customer's events.  SEG_RFM_AS_OF_AUTO costs a pass over all
 * customers to find the last event.
 * @param out caller sets out->struct_size; receives the values.
 * @return SEG_OK, SEG_ENOTFOUND (no such customer, or none yet at T),
 *         SEG_EINVAL, SEG_ERANGE, SEG_EVERSION, SEG_ENOMEM.
 * @since 1.0
 */
SEG_API int seg_rfm_get(seg_rfm_info *out, seg_db *db, const seg_rfm_options *opts,
                        const char *customer_id);

/**
 * Score one value of one dimension: SEG_RFM_R with recency_days,
 * SEG_RFM_F with a frequency, SEG_RFM_M with a monetary value in minor
 * units.  A binary search over the bounds: O(log bins), no allocation.
 * @return the score 1..bins, or 0 when @p t is NULL or @p dim unknown.
 * @since 1.0
 */
SEG_API uint32_t seg_rfm_score(const seg_rfm_thresholds *t, uint32_t dim, int64_t value);

/** Number of bins of @p t (0 for NULL). @since 1.0 */
SEG_API uint32_t seg_rfm_thresholds_bins(const seg_rfm_thresholds *t);

/**
 * Read the bounds of one dimension: bins - 1 values for the scores 2..bins,
 * in the units of seg_rfm_options.fixed_r / fixed_f / fixed_m.
 * @param bounds_out room for @p n values; n must be at least bins - 1.
 * @return SEG_OK or SEG_EINVAL.
 * @since 1.0
 */
SEG_API int seg_rfm_thresholds_get(int64_t *bounds_out, size_t n,
                                   const seg_rfm_thresholds *t, uint32_t dim);

/** A buffer of this size holds any seg_rfm_thresholds_export() text. @since 1.0 */
#define SEG_RFM_THRESHOLDS_TEXT_MAX 8192

/**
 * Write thresholds as text (the format of doc/rfm.md, the one
 * `segment rfm --thresholds` prints): a second process or partition
 * imports it to score with the same cut-points.  Like snprintf: writes at
 * most @p size bytes including the terminating NUL (nothing when size is
 * 0), and returns the length of the whole text, so a return value >= size
 * means it was cut.  SEG_RFM_THRESHOLDS_TEXT_MAX bytes always suffice.
 * @return the length of the text, or 0 when @p t is NULL.
 * @since 1.0
 */
SEG_API size_t seg_rfm_thresholds_export(char *buf, size_t size, const seg_rfm_thresholds *t);

/**
 * Read thresholds written by seg_rfm_thresholds_export() (or by hand in
 * that format).  Money is read with the db's currency exponent, which must
 * be the one the text states.
 * @param db   the database whose customers will be scored (for its currency
 *             exponent, allocator and error message).
 * @param text UTF-8, @p len bytes.
 * @return SEG_OK, SEG_EPARSE ("line 3: ..."), SEG_EINVAL, SEG_ENOMEM.
 *         *out is NULL on failure.
 * @since 1.0
 */
SEG_API int seg_rfm_thresholds_import(seg_rfm_thresholds **out, seg_db *db,
                                      const char *text, size_t len);

/** Free thresholds.  NULL is a no-op. @since 1.0 */
SEG_API void seg_rfm_thresholds_free(seg_rfm_thresholds *t);

/** @} */

SEG_END_DECLS

#endif /* SEGMENT_RFM_H */
