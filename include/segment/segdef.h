/*
 * libsegment: the definition language for segments and segment sets:
 * compile once, evaluate over every customer (or one), report membership
 * changes, sizes, revenue shares, overlap and coverage.
 *
 * The language is described in doc/segdef.md.  A short example:
 *
 *     segment vip_active: spend(365d) >= 1000.00 and days_since_last_purchase <= 60
 *                         and orders >= 5;
 *     segment set status {
 *       prospect: orders == 0;
 *       else customer;
 *     }
 *
 * A compiled definition (seg_segdef) names segments: every plain `segment`,
 * and every label of every `segment set` (a set assigns each customer exactly
 * one of its labels, so each label is a segment too).  Segments are numbered
 * 0 .. seg_segdef_segment_count() - 1 in the order the text defines them.
 *
 * Evaluation is "as of" the time `now` given by the caller (the library never
 * reads the clock): only events with ts < now count, and windows such as
 * spend(30d) cover [now - 30d, now).
 */
#ifndef SEGMENT_SEGDEF_H
#define SEGMENT_SEGDEF_H

#include "segment/core.h"
#include "segment/clv.h"

SEG_BEGIN_DECLS

/** @defgroup segdef Segment definitions
 *  @{ */

/**
 * A compiled definition text: its segments and segment sets, and the
 * membership of its last seg_segdef_refresh().  Keeps a reference on its
 * seg_db: the db's memory lives until both the caller has closed the db and
 * every definition compiled on it has been freed.  Used by one thread at a
 * time, like its db.  Between evaluations a definition keeps its work table
 * of windowed measures (spend(30d) ...: a cache line or less per customer),
 * so the next evaluation need not map fresh memory; seg_segdef_free()
 * releases it.
 * @since 1.0
 */
typedef struct seg_segdef seg_segdef;

/**
 * Compile definition text.
 *
 * Names are checked against the database: an attribute (`attr("name")`)
 * must have a type (seg_attr_declare(), or a value set before), money
 * literals must fit the currency exponent.  Errors name the line and the
 * column ("3:17: expected ';' after the condition of segment 'vip'").
 *
 * @param out  receives the definition, or NULL on failure
 * @param src  UTF-8 text of @p len bytes (no NUL needed)
 * @return SEG_OK, SEG_EPARSE (syntax), SEG_EINVAL (types, names, cycles
 *         between segments, NULL arguments), SEG_ELIMIT (more than 65535
 *         segments, text over 16 MiB, an expression nested too deeply),
 *         SEG_ENOMEM.
 * @since 1.0
 */
SEG_API int seg_segdef_compile(seg_segdef **out, seg_db *db, const char *src, size_t len);

/** Free a definition.  NULL is a no-op.  @since 1.0 */
SEG_API void seg_segdef_free(seg_segdef *def);

/** Number of segments (plain segments and set labels). @since 1.0 */
SEG_API size_t seg_segdef_segment_count(const seg_segdef *def);

/**
 * Name of segment @p i, or NULL when out of range.  Owned by @p def.
 * @since 1.0
 */
SEG_API const char *seg_segdef_segment_name(const seg_segdef *def, size_t i);

/**
 * The name of the set segment @p i is a label of, or NULL for a plain
 * segment (or @p i out of range).  Owned by @p def.
 * @since 1.0
 */
SEG_API const char *seg_segdef_segment_set(const seg_segdef *def, size_t i);

/**
 * Find a segment by name.
 * @return SEG_OK (*out set), SEG_ENOTFOUND, SEG_EINVAL.  *out is 0 on failure.
 * @since 1.0
 */
SEG_API int seg_segdef_find(size_t *out, seg_segdef *def, const char *name);

/**
 * The definition in canonical text: one item per line, set rules indented,
 * minimal parentheses, comments dropped.  Compiling the canonical text gives
 * the same definition, and printing that gives the same text.
 * @param out receives a NUL-terminated string; free it with seg_free().
 * @return SEG_OK, SEG_EINVAL, SEG_ENOMEM.
 * @since 1.0
 */
SEG_API int seg_segdef_print(char **out, seg_segdef *def);

/**
 * Give the definition a fitted CLV model for the values `p_alive`,
 * `expected_purchases(HORIZON)` and `clv(HORIZON)`.
 *
 * At evaluation as of `now`, each customer is summarized in the model's
 * unit as seg_clv_summary_foreach() does with calibration_end = now - 1:
 * the calibration period ends with the day of the last second before
 * `now` (the models count purchase days, so a purchase later that day
 * counts too; at midnight, the usual `now`, nothing after `now` does).  Then
 * `p_alive` is seg_clv_p_alive(), `expected_purchases(90d)` is
 * seg_clv_expected_purchases() over 90 days written in the model's unit
 * (90/7 weeks for a weekly model), and `clv(365d)` is seg_clv_value() over
 * that horizon with the discounting and margin of @p opts, in money (minor
 * units, rounded), so `clv(365d) >= 500.00` compares as money does.  A
 * customer without a purchase before `now` has null values (false in any
 * comparison).  Evaluating a definition that reads these values without a
 * model fails with SEG_ENOTFOUND, and `clv(...)` needs the model's spend
 * (Gamma-Gamma) parameters too.
 *
 * The definition keeps a copy of the parameters: @p model may be freed or
 * refitted afterwards.  The next seg_segdef_refresh() evaluates every
 * customer.
 *
 * @param model a model with parameters, or NULL to remove the model
 * @param opts  discount_rate, discount_period and margin for `clv(...)`
 *              (the horizon field is ignored: each `clv(...)` names its
 *              own); NULL: no discounting, margin 1
 * @return SEG_OK, SEG_EINVAL (def NULL, bad option values), SEG_ENOTFOUND
 *         (the model has no parameters), SEG_EVERSION (opts->struct_size),
 *         SEG_ENOMEM.  On failure the definition keeps its model.
 * @since 1.0
 */
SEG_API int seg_segdef_set_clv(seg_segdef *def, seg_clv_model *model,
                               const seg_clv_value_options *opts);

/** @name Flags of seg_segdef_eval() and seg_segdef_refresh() */
/** @{ */
#define SEG_SEGDEF_SORTED  0x1u /**< visit customers in byte order of their id (default: order of creation) */
#define SEG_SEGDEF_FULL    0x2u /**< refresh: evaluate every customer */
#define SEG_SEGDEF_TOUCHED 0x4u /**< refresh: evaluate only the customers touched since the last refresh */
/** @} */

/**
 * Called once per customer by seg_segdef_eval().
 * @param customer_id valid during the call only
 * @param member      member[i] is 1 when the customer is in segment i, else 0
 * @param n           seg_segdef_segment_count()
 * @return non-zero to stop.  The callback may read the db but not change it
 *         (SEG_EMISUSE).
 * @since 1.0
 */
typedef int (*seg_segdef_cb)(const char *customer_id, const unsigned char *member, size_t n,
                             void *payload);

/**
 * Evaluate every customer as of @p now.  Customers whose events all come at
 * or after @p now are not customers yet and are skipped; customers without
 * events (prospects) are visited.  Allocates a fixed number of blocks per
 * call (work tables of a few words per customer when windowed measures are
 * used, the visiting order), nothing per customer.
 * @param flags 0 or SEG_SEGDEF_SORTED
 * @return SEG_OK (also when cb stopped early), SEG_EINVAL, SEG_ERANGE (now
 *         out of range), SEG_ENOMEM.
 * @since 1.0
 */
SEG_API int seg_segdef_eval(seg_segdef *def, int64_t now, uint32_t flags, seg_segdef_cb cb,
                            void *payload);

/**
 * Evaluate one customer as of @p now.
 * @param out receives n bytes: out[i] is 1 when the customer is in segment i
 * @param n   must be seg_segdef_segment_count() (0 is allowed for an empty definition)
 * @return SEG_OK, SEG_ENOTFOUND (no such customer, or every event of theirs
 *         comes at or after now), SEG_EINVAL, SEG_ERANGE, SEG_ENOMEM (a
 *         reusable buffer grows when a customer has more events than any
 *         before).  On failure out is zeroed.
 * @since 1.0
 */
SEG_API int seg_segdef_eval_customer(unsigned char *out, size_t n, seg_segdef *def,
                                     const char *customer_id, int64_t now);

/**
 * Called by seg_segdef_refresh() for each membership change.
 * @param customer_id valid during the call only
 * @param segment     the segment's index
 * @param entered     1: the customer entered the segment; 0: left it
 * @return non-zero to stop: the refresh is abandoned and the remembered
 *         membership stays as it was, so the next refresh reports these
 *         changes again.
 * @since 1.0
 */
typedef int (*seg_segdef_delta_cb)(const char *customer_id, size_t segment, int entered,
                                   void *payload);

/**
 * What a refresh did.  Caller sets struct_size.
 * @since 1.0
 */
typedef struct seg_segdef_stats {
    size_t struct_size;   /**< sizeof(seg_segdef_stats) */
    uint64_t evaluated;   /**< customers evaluated */
    uint64_t entered;     /**< (customer, segment) entries reported */
    uint64_t exited;      /**< (customer, segment) exits reported */
    uint32_t full;        /**< 1 when every customer was evaluated, 0 when only touched ones */
} seg_segdef_stats;

/** @since 1.0 */
#define SEG_SEGDEF_STATS_INIT { sizeof(seg_segdef_stats), 0, 0, 0, 0 }

/**
 * Evaluate membership as of @p now, compare it with the membership the
 * definition remembers from its previous refresh, report every change to
 * @p cb, and remember the new membership.  The first refresh reports every
 * membership as an entry.
 *
 * Which customers are evaluated:
 * - SEG_SEGDEF_FULL: everyone.
 * - SEG_SEGDEF_TOUCHED: only customers with events ingested since the last
 *   refresh, and customers created since.  Untouched customers keep their
 *   remembered membership even where a time-dependent condition (a window,
 *   days_since_last_purchase ...) would now give another answer: a periodic
 *   full refresh brings them up to date.
 * - neither (0): touched customers only when that gives the same answer as
 *   a full evaluation (no earlier refresh is needed, now is the same as the
 *   last refresh's or no segment depends on time, and no attribute or
 *   consent changed when a segment reads them); everyone otherwise.
 *
 * Erased customers leave their segments without a report (their id is
 * gone; the host that erased them knows).  Customers are visited in order
 * of creation, or of id with SEG_SEGDEF_SORTED; within a customer, changes
 * come in segment order.
 * @param stats_out NULL, or receives the counts (zeros on failure)
 * @return SEG_OK (also when cb stopped), SEG_EINVAL, SEG_ERANGE, SEG_ENOMEM,
 *         SEG_EVERSION (stats struct_size).  On failure the remembered
 *         membership is unchanged.
 * @since 1.0
 */
SEG_API int seg_segdef_refresh(seg_segdef *def, int64_t now, uint32_t flags,
                               seg_segdef_delta_cb cb, void *payload,
                               seg_segdef_stats *stats_out);

/**
 * Membership remembered by the last seg_segdef_refresh().  A customer
 * created since is in no segment.
 * @param out 1 when the customer was in the segment, else 0
 * @return SEG_OK, SEG_ENOTFOUND (no such customer), SEG_EINVAL (segment out
 *         of range), SEG_EMISUSE (no refresh has run yet).
 * @since 1.0
 */
SEG_API int seg_segdef_member(int *out, seg_segdef *def, const char *customer_id,
                              size_t segment);

/**
 * Sizes, revenue, overlap and coverage of a definition's segments.  The
 * arrays are owned by the definition and valid until the next
 * seg_segdef_report_get() on it or its free.
 * @since 1.0
 */
typedef struct seg_segdef_report {
    size_t struct_size;      /**< sizeof(seg_segdef_report), set by the caller */
    size_t segments;         /**< n = seg_segdef_segment_count() */
    uint64_t customers;      /**< customers evaluated */
    uint64_t in_none;        /**< customers in none of the plain segments (set labels not counted) */
    uint64_t in_several;     /**< customers in two or more plain segments */
    int64_t net_revenue;     /**< net revenue of all customers evaluated (minor units) */
    const uint64_t *size;    /**< [n]: members of each segment */
    const int64_t *revenue;  /**< [n]: net revenue of each segment's members */
    const uint64_t *overlap; /**< [n * n]: overlap[i * n + j] = customers in both i and j */
} seg_segdef_report;

/** @since 1.0 */
#define SEG_SEGDEF_REPORT_INIT { sizeof(seg_segdef_report), 0, 0, 0, 0, 0, NULL, NULL, NULL }

/**
 * Evaluate every customer as of @p now and fill @p out.  A segment's revenue
 * share is out->revenue[i] / out->net_revenue.
 * @return SEG_OK, SEG_EINVAL, SEG_ERANGE, SEG_EVERSION, SEG_ENOMEM.
 * @since 1.0
 */
SEG_API int seg_segdef_report_get(seg_segdef_report *out, seg_segdef *def, int64_t now);

/** @} */

SEG_END_DECLS

#endif /* SEGMENT_SEGDEF_H */
