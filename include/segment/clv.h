/*
 * libsegment: predictive customer lifetime value.
 *
 * Models of the customer-base literature, fitted by maximum likelihood:
 * - purchase counts and churn: BG/NBD (Fader, Hardie and Lee 2005),
 *   MBG/NBD (Batislam, Denizel and Filiztekin 2007) and Pareto/NBD
 *   (Schmittlein, Morrison and Colombo 1987);
 * - spend per transaction: Gamma-Gamma (Fader, Hardie and Lee 2005).
 *
 * The work flow: summarize each customer's purchases as of a calibration end
 * (seg_clv_summary_foreach() from a database, seg_clv_summarize() from a
 * caller's array), fit a model on the summaries (seg_clv_fit(),
 * seg_clv_fit_spend()), then score customers: P(alive), expected purchases,
 * the probability of n purchases, expected spend and discounted value.  A
 * fitted model exports to text and imports again (seg_clv_model_export(),
 * seg_clv_model_import()), so a point-of-sale or another partition scores
 * without fitting and without a database.
 *
 * Time units are explicit.  Every model has a unit, SEG_CLV_DAY or
 * SEG_CLV_WEEK, chosen when it is created: recency, age, horizons and
 * discount periods are real numbers of that unit, and the parameters alpha
 * and beta are in that unit too (a model fitted in weeks has an alpha 7 times
 * smaller than the same model fitted in days).  Money is in currency units
 * (12.5 for 12.50), as doubles: amounts in minor units are divided by
 * 10^currency_exponent.
 *
 * A seg_clv_model is independent of any seg_db and keeps its own error
 * message (seg_clv_model_errmsg()).  Like a seg_db, one model is used by one
 * thread at a time; separate models share nothing.
 */
#ifndef SEGMENT_CLV_H
#define SEGMENT_CLV_H

#include "segment/core.h"

SEG_BEGIN_DECLS

/** @defgroup clv Lifetime value
 *  @{ */

/** @name Purchase models (seg_clv_model_new()) */
/** @{ */
#define SEG_CLV_BGNBD  1u /**< BG/NBD: parameters r, alpha, a, b */
#define SEG_CLV_MBGNBD 2u /**< MBG/NBD: parameters r, alpha, a, b */
#define SEG_CLV_PARETO 3u /**< Pareto/NBD: parameters r, alpha, s, beta */
/** @} */

/** @name Time units */
/** @{ */
#define SEG_CLV_DAY  1u /**< one day (86,400 s) */
#define SEG_CLV_WEEK 2u /**< one week (7 days) */
/** @} */

/** Opaque fitted (or imported) model. @since 1.0 */
typedef struct seg_clv_model seg_clv_model;

/* ------------------------------------------------------------------ */
/** @name Summaries
 * The statistics the models are fitted on, per customer, as the literature
 * defines them.  Summaries work in whole UTC days: a transaction is a
 * purchase event (any amount >= 0; refunds and engagement events are not
 * transactions), and all of a customer's transactions on one UTC calendar day
 * count as one.  With d0 the day of the first transaction, D the day of the
 * calibration end (inclusive: the calibration period holds the days up to and
 * including D) and dl the last transaction day up to D:
 * - frequency x: transaction days after d0 up to D (repeat purchases);
 * - recency t_x = (dl - d0) in the unit (0 when x is 0);
 * - age T = (D - d0) in the unit;
 * - monetary: the mean amount of the x repeat days (a day's amount is the sum
 *   of its purchase amounts; d0 is left out), 0 when x is 0.
 * @{ */

/**
 * Options of seg_clv_summary_foreach().  There are no defaults for the unit
 * and the calibration end: set both.
 * @since 1.0
 */
typedef struct seg_clv_summary_options {
    size_t struct_size;      /**< sizeof(seg_clv_summary_options) */
    uint32_t unit;           /**< SEG_CLV_DAY or SEG_CLV_WEEK (required) */
    uint32_t flags;          /**< SEG_CUSTOMER_SORTED: visit in byte order of customer_id */
    int64_t calibration_end; /**< a time in the last day of the calibration period */
    int64_t holdout_end;     /**< a time in the last day of the holdout period, or 0: no end */
} seg_clv_summary_options;

/** Unit and calibration end still to be set. @since 1.0 */
#define SEG_CLV_SUMMARY_OPTIONS_INIT { sizeof(seg_clv_summary_options), 0, 0, 0, 0 }

/**
 * One customer's summary.  Filled by the library (struct_size is the
 * library's size); strings are valid during the callback only.
 * @since 1.0
 */
typedef struct seg_clv_summary {
    size_t struct_size;         /**< sizeof(seg_clv_summary) as known to the library */
    const char *customer_id;    /**< the customer (NULL from seg_clv_summarize()) */
    double frequency;           /**< x: repeat transaction days in the calibration period */
    double recency;             /**< t_x, in the unit */
    double age;                 /**< T, in the unit */
    double monetary;            /**< mean amount of the repeat days, currency units; 0 when x is 0 */
    int64_t first_purchase;     /**< time of the first transaction */
    uint64_t holdout_frequency; /**< transaction days after the calibration end (up to holdout_end) */
    double holdout_amount;      /**< their total amount, currency units */
} seg_clv_summary;

/** An empty summary of the current layout. @since 1.0 */
#define SEG_CLV_SUMMARY_INIT { sizeof(seg_clv_summary), NULL, 0.0, 0.0, 0.0, 0.0, 0, 0, 0.0 }

/**
 * Counts of a seg_clv_summary_foreach() walk.  Caller sets struct_size.
 * @since 1.0
 */
typedef struct seg_clv_summary_stats {
    size_t struct_size;      /**< sizeof(seg_clv_summary_stats) */
    uint64_t customers;      /**< customers visited (first transaction in the calibration period) */
    uint64_t repeat_buyers;  /**< of those, customers with frequency > 0 */
    uint64_t late;           /**< customers left out: first transaction after the calibration end */
    uint64_t no_purchase;    /**< customers left out: no transaction at all */
} seg_clv_summary_stats;

/** @since 1.0 */
#define SEG_CLV_SUMMARY_STATS_INIT { sizeof(seg_clv_summary_stats), 0, 0, 0, 0 }

/** Return non-zero to stop.  May read the db, not change it. @since 1.0 */
typedef int (*seg_clv_summary_cb)(const seg_clv_summary *summary, void *payload);

/**
 * Call @p cb with the summary of every customer whose first transaction
 * falls in the calibration period.  Customers who first buy after it, and
 * customers with no transaction, are left out and counted in @p stats_out.
 * Transactions after the calibration end are counted in holdout_frequency
 * and holdout_amount only.
 * @param stats_out NULL, or receives the counts (zeros on failure).
 * @return SEG_OK (also when cb stopped early), SEG_EINVAL (bad options,
 *         with a message), SEG_EVERSION, SEG_ENOMEM.
 * @since 1.0
 */
SEG_API int seg_clv_summary_foreach(seg_db *db, const seg_clv_summary_options *opts,
                                    seg_clv_summary_cb cb, void *payload,
                                    seg_clv_summary_stats *stats_out);

/**
 * Summarize one customer's transactions given as arrays, with no database,
 * in the unit of @p m (the model only supplies the unit and keeps the error
 * message).  Transactions after the day of @p calibration_end count as
 * holdout.  Allocates nothing when @p ts is in ascending order.
 * @param out      caller sets out->struct_size; receives the summary.
 * @param ts       transaction times (seconds since the epoch, UTC), @p n > 0
 * @param amount   their amounts in minor units (>= 0), or NULL (monetary 0)
 * @param currency_exponent decimals of the minor unit, 0..6 (2 = cents)
 * @return SEG_OK, SEG_EINVAL (no transaction up to the calibration end, a
 *         negative amount, a time out of range ...), SEG_EVERSION, SEG_ENOMEM.
 * @since 1.0
 */
SEG_API int seg_clv_summarize(seg_clv_summary *out, seg_clv_model *m, const int64_t *ts,
                              const int64_t *amount, size_t n, int64_t calibration_end,
                              int currency_exponent);

/** @} */

/* ------------------------------------------------------------------ */
/** @name Models and parameters
 * Parameter order: BG/NBD and MBG/NBD r, alpha, a, b; Pareto/NBD r, alpha,
 * s, beta; Gamma-Gamma p, q, gamma.  Every parameter is finite and > 0.
 * @{ */

/**
 * Create a model with no parameters yet.
 * @param model     SEG_CLV_BGNBD, SEG_CLV_MBGNBD or SEG_CLV_PARETO
 * @param unit      SEG_CLV_DAY or SEG_CLV_WEEK
 * @param allocator NULL for the C library's malloc
 * @return SEG_OK, SEG_EINVAL, SEG_ENOMEM.  *out is NULL on failure.
 * @since 1.0
 */
SEG_API int seg_clv_model_new(seg_clv_model **out, uint32_t model, uint32_t unit,
                              const seg_allocator *allocator);

/** Free a model.  NULL is a no-op. @since 1.0 */
SEG_API void seg_clv_model_free(seg_clv_model *m);

/**
 * Message of the last failed call on @p m ("" after a success); owned by the
 * model, valid until the next call on it.
 * @since 1.0
 */
SEG_API const char *seg_clv_model_errmsg(const seg_clv_model *m);

/** The model's kind (SEG_CLV_BGNBD ...), 0 for NULL. @since 1.0 */
SEG_API uint32_t seg_clv_model_kind(const seg_clv_model *m);

/** The model's unit (SEG_CLV_DAY ...), 0 for NULL. @since 1.0 */
SEG_API uint32_t seg_clv_model_unit(const seg_clv_model *m);

/**
 * Set the purchase model's 4 parameters (see the order above).
 * @return SEG_OK, SEG_EINVAL (n is not 4, a value not finite or <= 0).
 * @since 1.0
 */
SEG_API int seg_clv_model_set_params(seg_clv_model *m, const double *params, size_t n);

/**
 * Read the purchase model's 4 parameters into out[0..4).
 * @return SEG_OK, SEG_EINVAL (n < 4), SEG_ENOTFOUND (not fitted or set).
 * @since 1.0
 */
SEG_API int seg_clv_model_get_params(double *out, size_t n, seg_clv_model *m);

/**
 * Set the Gamma-Gamma spend model's 3 parameters p, q, gamma (gamma in
 * currency units).  Expected spend needs q > 1.
 * @return SEG_OK, SEG_EINVAL.
 * @since 1.0
 */
SEG_API int seg_clv_model_set_spend_params(seg_clv_model *m, const double *params, size_t n);

/**
 * Read the spend model's 3 parameters into out[0..3).
 * @return SEG_OK, SEG_EINVAL (n < 3), SEG_ENOTFOUND (not fitted or set).
 * @since 1.0
 */
SEG_API int seg_clv_model_get_spend_params(double *out, size_t n, seg_clv_model *m);

/**
 * Write the model as text: a `param,value` header, then one `name,value`
 * line each for `model` (bgnbd, mbgnbd, pareto), `unit` (day, week) and
 * every parameter that is set, named as in the literature (r, alpha, a, b;
 * r, alpha, s, beta; p, q, gamma), values with 17 significant digits so that
 * an import gives back the same doubles.
 * @param out receives a NUL-terminated string; free it with seg_free()
 *            (with a host allocator, before freeing the model).
 * @return SEG_OK, SEG_ENOTFOUND (no parameter set), SEG_ENOMEM.
 * @since 1.0
 */
SEG_API int seg_clv_model_export(char **out, seg_clv_model *m);

/**
 * Read parameters written by seg_clv_model_export() (or by hand): lines
 * `name,value`; the header line, empty lines and lines starting with '#' are
 * skipped.  `model` and `unit`, when given, must match the model's.  Either
 * all 4 purchase parameters or none, and all 3 spend parameters or none; at
 * least one group.  On failure the model is unchanged and the message names
 * the line.
 * @return SEG_OK, SEG_EPARSE (malformed line), SEG_EINVAL (unknown name,
 *         bad value, mismatched model or unit, missing parameter).
 * @since 1.0
 */
SEG_API int seg_clv_model_import(seg_clv_model *m, const char *text, size_t len);

/** @} */

/* ------------------------------------------------------------------ */
/** @name Fitting
 * @{ */

/**
 * Summaries as columns (one array per statistic, all of length n), as the
 * fitters and seg_clv_predict() read them.
 * @since 1.0
 */
typedef struct seg_clv_columns {
    size_t struct_size;       /**< sizeof(seg_clv_columns) */
    size_t n;                 /**< rows */
    const double *frequency;  /**< x: whole numbers, 0 .. 1e9 */
    const double *recency;    /**< t_x: 0 <= t_x <= T, 0 when x is 0 */
    const double *age;        /**< T: 0 .. 1e9 units */
    const double *monetary;   /**< mean spend of the repeat days (> 0 when x > 0), or NULL */
    const double *weight;     /**< customers per row (>= 0), or NULL: 1 each */
} seg_clv_columns;

/** @since 1.0 */
#define SEG_CLV_COLUMNS_INIT { sizeof(seg_clv_columns), 0, NULL, NULL, NULL, NULL, NULL }

/**
 * Options of a fit; zeros mean the defaults.
 * @since 1.0
 */
typedef struct seg_clv_fit_options {
    size_t struct_size;        /**< sizeof(seg_clv_fit_options) */
    uint32_t max_iterations;   /**< per starting point; 0: 500 */
    uint32_t starts;           /**< starting points tried, 1..8; 0: 3 */
    double tolerance;          /**< convergence: largest |dLL/d ln(param)| / customers below it (or
                                    below 100 times it once a Newton step could not change the
                                    log-likelihood by more than its rounding); 0: 1e-8 */
    double min_repeat_buyers;  /**< fewer is an error (SEG_CLV_FIT_TOO_FEW); 0: 10 */
    const double *start;       /**< NULL, or a first starting point (4 or 3 parameters) */
} seg_clv_fit_options;

/** @since 1.0 */
#define SEG_CLV_FIT_OPTIONS_INIT { sizeof(seg_clv_fit_options), 0, 0, 0.0, 0.0, NULL }

/** @name seg_clv_fit_report.status */
/** @{ */
#define SEG_CLV_FIT_CONVERGED 0 /**< the gradient is below the tolerance (see seg_clv_fit_options) */
#define SEG_CLV_FIT_MAX_ITER  1 /**< not converged within max_iterations */
#define SEG_CLV_FIT_BOUNDARY  2 /**< a parameter runs off to 0 or to infinity */
#define SEG_CLV_FIT_FLAT      3 /**< the likelihood is flat: the data do not determine a parameter */
#define SEG_CLV_FIT_NONFINITE 4 /**< the likelihood is not finite at any starting point */
#define SEG_CLV_FIT_TOO_FEW   5 /**< too few repeat buyers (or customers) */
#define SEG_CLV_FIT_NO_DATA   6 /**< no row to fit (all weights 0) */
/** @} */

/** @name seg_clv_fit_report.warnings */
/** @{ */
#define SEG_CLV_WARN_STARTS_DISAGREE 0x1u /**< starting points converged to different optima (the best is kept) */
#define SEG_CLV_WARN_WEAK            0x2u /**< a parameter is weakly determined (standard error of its log > 1) */
#define SEG_CLV_WARN_FEW_REPEAT      0x4u /**< fewer than 50 repeat buyers */
#define SEG_CLV_WARN_BOUNDARY_START  0x8u /**< a starting point ran off to a boundary (discarded) */
/** @} */

/**
 * What a fit did.  Caller sets struct_size; the library fills the rest, also
 * when the fit fails (then params holds the best point found, which the
 * model does not take).
 * @since 1.0
 */
typedef struct seg_clv_fit_report {
    size_t struct_size;       /**< sizeof(seg_clv_fit_report) */
    int status;               /**< SEG_CLV_FIT_* */
    uint32_t warnings;        /**< SEG_CLV_WARN_* bits */
    uint32_t iterations;      /**< quasi-Newton iterations of the best start */
    uint32_t evaluations;     /**< likelihood evaluations over all starts */
    uint32_t starts;          /**< starting points tried */
    uint32_t starts_converged;/**< of those, how many converged */
    double log_likelihood;    /**< at params (natural log, summed over customers) */
    double gradient_norm;     /**< largest |dLL/d ln(param)| / customers at params */
    double params[4];         /**< the parameters (3 used by Gamma-Gamma) */
    double log_param_se[4];   /**< standard errors of ln(param) from the Hessian; NaN when unknown */
    double customers;         /**< customers fitted (sum of weights) */
    double repeat_buyers;     /**< of those with frequency > 0 */
    uint64_t groups;          /**< distinct summaries the likelihood was computed on */
    uint64_t excluded;        /**< rows left out (Gamma-Gamma: frequency 0 or monetary <= 0) */
} seg_clv_fit_report;

/** @since 1.0 */
#define SEG_CLV_FIT_REPORT_INIT { sizeof(seg_clv_fit_report), 0, 0, 0, 0, 0, 0, 0.0, 0.0, \
        { 0.0, 0.0, 0.0, 0.0 }, { 0.0, 0.0, 0.0, 0.0 }, 0.0, 0.0, 0, 0 }

/**
 * Fit the purchase model on frequency, recency and age by maximum
 * likelihood: a quasi-Newton method (BFGS with a line search) on the
 * log-parameters with analytic gradients, from several starting points,
 * keeping the best.  Identical summaries are grouped, so the cost depends on
 * the number of distinct (x, t_x, T), not on the number of customers.
 * On success the model takes the parameters.
 * @param opts   NULL for defaults
 * @param report NULL, or receives what happened
 * @return SEG_OK (converged; report->warnings may be set), SEG_EINVAL (bad
 *         data: the message names the row and the column), SEG_ERROR (the
 *         fit failed: report->status says why and the message explains),
 *         SEG_EVERSION, SEG_ENOMEM.  On failure the model is unchanged.
 * @since 1.0
 */
SEG_API int seg_clv_fit(seg_clv_model *m, const seg_clv_columns *data,
                        const seg_clv_fit_options *opts, seg_clv_fit_report *report);

/**
 * Fit the Gamma-Gamma spend model on frequency and monetary (rows with
 * frequency 0 or monetary <= 0 are left out and counted in
 * report->excluded), as seg_clv_fit().  Its parameters p, q, gamma are kept
 * next to the purchase model's.
 * @return as seg_clv_fit().
 * @since 1.0
 */
SEG_API int seg_clv_fit_spend(seg_clv_model *m, const seg_clv_columns *data,
                              const seg_clv_fit_options *opts, seg_clv_fit_report *report);

/**
 * Log-likelihood of the purchase model at its parameters, summed over the
 * rows (weighted).
 * @return SEG_OK, SEG_EINVAL (bad data), SEG_ENOTFOUND (no parameters).
 * @since 1.0
 */
SEG_API int seg_clv_log_likelihood(double *out, seg_clv_model *m, const seg_clv_columns *data);

/** @} */

/* ------------------------------------------------------------------ */
/** @name Scoring
 * Per customer, from its summary (frequency, recency, age in the model's
 * unit).  A customer not seen before (a new customer) is frequency 0,
 * recency 0, age 0: expected purchases are then the model's E[X(t)].
 * @{ */

/**
 * Probability that the customer is still active at the calibration end.
 * @return SEG_OK, SEG_EINVAL (bad summary), SEG_ENOTFOUND (no parameters).
 * @since 1.0
 */
SEG_API int seg_clv_p_alive(double *out, seg_clv_model *m, double frequency, double recency,
                            double age);

/**
 * Expected number of transactions in the @p t units after the calibration
 * end (E[Y(t) | x, t_x, T]).
 * @since 1.0
 */
SEG_API int seg_clv_expected_purchases(double *out, seg_clv_model *m, double frequency,
                                       double recency, double age, double t);

/**
 * Probability of exactly @p n transactions in the @p t units after the
 * calibration end (P(Y(t) = n | x, t_x, T)).
 * @since 1.0
 */
SEG_API int seg_clv_purchase_probability(double *out, seg_clv_model *m, double frequency,
                                         double recency, double age, double t, uint32_t n);

/**
 * Expected mean spend per future transaction (Gamma-Gamma E[M | x, mean]):
 * a weighted mean of the customer's own mean and the population mean
 * p gamma / (q - 1), the population mean alone when frequency is 0.
 * @return SEG_OK, SEG_EINVAL, SEG_ENOTFOUND (no spend parameters),
 *         SEG_ERANGE (q <= 1: the population mean is infinite).
 * @since 1.0
 */
SEG_API int seg_clv_expected_spend(double *out, seg_clv_model *m, double frequency,
                                   double monetary);

/**
 * Options of seg_clv_value() and seg_clv_predict(): the horizon and the
 * discounting, in the model's unit.  A transaction at time u after the
 * calibration end is worth margin * spend / (1 + discount_rate)^(u /
 * discount_period): discounting is continuous, so a transaction exactly one
 * period ahead is divided by (1 + discount_rate).
 * Example, weekly model: horizon 52 (one year), an annual rate of 10%:
 * discount_rate 0.1 with discount_period 52, or the same as a weekly rate,
 * discount_rate 1.1^(1/52) - 1 = 0.001835 with discount_period 1.
 * @since 1.0
 */
typedef struct seg_clv_value_options {
    size_t struct_size;      /**< sizeof(seg_clv_value_options) */
    double horizon;          /**< units after the calibration end, > 0 (required) */
    double discount_rate;    /**< per discount period, >= 0 (0: no discounting) */
    double discount_period;  /**< length of a discount period in units, > 0 (default 1) */
    double margin;           /**< share of spend that is value, >= 0 (default 1) */
} seg_clv_value_options;

/** Horizon still to be set; no discounting, margin 1. @since 1.0 */
#define SEG_CLV_VALUE_OPTIONS_INIT { sizeof(seg_clv_value_options), 0.0, 0.0, 1.0, 1.0 }

/**
 * Discounted value over the horizon: margin * E[M] * the discounted
 * expected transactions.  Needs the spend parameters.
 * @return SEG_OK, SEG_EINVAL, SEG_ENOTFOUND, SEG_ERANGE (q <= 1), SEG_EVERSION.
 * @since 1.0
 */
SEG_API int seg_clv_value(double *out, seg_clv_model *m, double frequency, double recency,
                          double age, double monetary, const seg_clv_value_options *opts);

/**
 * Score every row of @p in: any of the four output arrays (n doubles each)
 * may be NULL.  expected_purchases is over opts->horizon; expected_spend
 * and clv need the spend parameters and in->monetary.  Faster than one call
 * per row: the parts that depend on (x, T) only are computed once per
 * distinct pair.
 * @return SEG_OK, SEG_EINVAL (bad row: the message names it), SEG_ENOTFOUND,
 *         SEG_ERANGE, SEG_EVERSION, SEG_ENOMEM.  On failure the outputs are
 *         unspecified.
 * @since 1.0
 */
SEG_API int seg_clv_predict(double *p_alive, double *expected_purchases, double *expected_spend,
                            double *clv, seg_clv_model *m, const seg_clv_columns *in,
                            const seg_clv_value_options *opts);

/** @} */

/** @} */

SEG_END_DECLS

#endif /* SEGMENT_CLV_H */
