/*
 * RFM internals: thresholds, the binning of a dimension, the scoring.
 *
 * Every dimension is kept in "goodness" space, where larger is better, so
 * one rule scores all three: frequency and monetary as they are, recency
 * as ~recency_days (= -recency_days - 1: an order-reversing bijection of
 * int64, so every bound has an exact image).
 */
#ifndef SEGMENT_RFM_PRIVATE_H
#define SEGMENT_RFM_PRIVATE_H

#include "segment-private.h"

#define SEG__RFM_DIMS 3

struct seg_rfm_thresholds {
    seg__alloc alloc;
    uint32_t bins;
    uint32_t monetary;       /* SEG_RFM_MONETARY_* */
    int64_t window;          /* seconds, 0 = none */
    int exponent;            /* currency exponent of the money bounds */
    uint32_t fixed_mask;     /* bit d: dimension d was given by the caller */
    int64_t as_of;           /* T of the calibration; SEG_RFM_AS_OF_AUTO: unknown (imported) */
    uint64_t active;         /* customers calibrated on (informational) */
    /* lo[d][k]: least goodness of score k + 2; non-decreasing in k.
     * score(g) = 1 + #{k : lo[d][k] <= g} */
    int64_t lo[SEG__RFM_DIMS][SEG_RFM_BINS_MAX - 1];
};

/* recency_days <-> goodness */
static inline int64_t seg__rfm_good(uint32_t dim, int64_t v) { return dim == SEG_RFM_R ? ~v : v; }

/* 1 + the number of bounds lo[0..nb) that are <= g (lo non-decreasing):
 * a binary search, O(log nb), without branches on the data (the halving
 * step is a conditional move). */
static inline uint32_t seg__rfm_score_lo(const int64_t *lo, uint32_t nb, int64_t g)
{
    if (nb == 0)
        return 1;
    const int64_t *b = lo;
    uint32_t n = nb;
    while (n > 1) {
        uint32_t h = n / 2;
        b = b[h] <= g ? b + h : b;
        n -= h;
    }
    return (uint32_t)(b - lo) + (*b <= g) + 1;
}

/* The distinct values of v[0..n) in increasing order, with their counts. */
typedef struct seg__rfm_groups {
    int64_t *val;
    uint32_t *cnt;
    size_t d;     /* number of distinct values */
    uint64_t n;   /* sum of cnt */
    uint32_t max; /* largest count */
} seg__rfm_groups;

/* Group v[0..n) (n < 2^32): a counting sort when the values span a small
 * range, else an LSD radix sort.  SEG_OK or SEG_ENOMEM. */
int seg__rfm_group(const seg__alloc *a, const int64_t *v, size_t n, seg__rfm_groups *g);
void seg__rfm_groups_free(const seg__alloc *a, seg__rfm_groups *g);

/* The bounds lo[0..bins-1) of quantile bins over the groups (doc/rfm.md):
 * - no groups: every bound INT64_MAX (everything scores 1);
 * - d >= bins: cut between groups into `bins` non-empty bins with the least
 *   sum of squared bin sizes; among equal ones, the cut nearest the top is
 *   the lowest possible, then the one below it, and so on;
 * - d < bins: each group a bin, scored 1 + floor(bins * midrank / n),
 *   raised to keep scores increasing and lowered to leave room above;
 *   scores no group has take the bound just above the largest value.
 * SEG_OK or SEG_ENOMEM. */
int seg__rfm_cut(const seg__alloc *a, const seg__rfm_groups *g, uint32_t bins, int64_t *lo);

/* Start indexes of the bins chosen for d >= bins groups (starts[0] = 0,
 * starts[bins] = d): exposed for the tests. */
int seg__rfm_partition(const seg__alloc *a, const seg__rfm_groups *g, uint32_t bins,
                       size_t *starts);

/* Thresholds from lo arrays (thresholds.c). */
seg_rfm_thresholds *seg__rfm_thresholds_new(const seg__alloc *a);

#endif /* SEGMENT_RFM_PRIVATE_H */
