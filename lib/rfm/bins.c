/*
 * Quantile bins of one RFM dimension.
 *
 * 1. Grouping: the values are sorted into (distinct value, count) groups by
 *    a counting sort when their range is small (recency days, order counts)
 *    or an LSD radix sort on 11-bit digits otherwise (money), skipping the
 *    digits every value shares.  No comparison sort, no floating point.
 * 2. Cutting: bins are unions of whole groups (equal values, equal scores).
 *    With at least `bins` groups, the cut with the least sum of squared bin
 *    sizes: a dynamic program over the group boundaries, each layer solved
 *    by divide and conquer (the cost (S_j - S_i)^2 is Monge, so the leftmost
 *    best split moves right with j).  Only boundaries that an optimal cut
 *    can use are considered: in an optimum, moving one boundary group to the
 *    neighbouring bin does not help, so neighbouring bins differ by at most
 *    the largest group g, every bin is within (bins - 1) * g of n / bins, and
 *    cut k lies within min(k, bins - k) * (bins - 1) * g of k * n / bins.
 *    With small groups (money) that leaves a few boundaries around each
 *    quantile; with big groups there are few groups anyway.
 */
#include "rfm-private.h"

#include <stdlib.h>

void seg__rfm_groups_free(const seg__alloc *a, seg__rfm_groups *g)
{
    seg__free(a, g->val);
    seg__free(a, g->cnt);
    memset(g, 0, sizeof *g);
}

static int groups_alloc(const seg__alloc *a, seg__rfm_groups *g, size_t d)
{
    g->val = seg__malloc(a, (d ? d : 1) * sizeof *g->val);
    g->cnt = seg__malloc(a, (d ? d : 1) * sizeof *g->cnt);
    if (!g->val || !g->cnt) {
        seg__rfm_groups_free(a, g);
        return SEG_ENOMEM;
    }
    return SEG_OK;
}

#define RADIX_BITS 11
#define RADIX (1u << RADIX_BITS)
#define RADIX_PASSES 6 /* 6 * 11 >= 64 */

/* Sort keys[0..n) ascending (tmp: n more).  Returns the sorted array (keys
 * or tmp). */
static uint64_t *radix_sort(uint64_t *keys, uint64_t *tmp, size_t n, uint32_t (*hist)[RADIX])
{
    memset(hist, 0, RADIX_PASSES * sizeof *hist);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = keys[i];
        for (int p = 0; p < RADIX_PASSES; p++)
            hist[p][(k >> (p * RADIX_BITS)) & (RADIX - 1)]++;
    }
    uint64_t *src = keys, *dst = tmp;
    for (int p = 0; p < RADIX_PASSES; p++) {
        uint32_t *h = hist[p];
        uint32_t first = (uint32_t)((src[0] >> (p * RADIX_BITS)) & (RADIX - 1));
        if (h[first] == n)
            continue; /* every key has this digit */
        uint32_t sum = 0;
        for (uint32_t b = 0; b < RADIX; b++) {
            uint32_t c = h[b];
            h[b] = sum;
            sum += c;
        }
        int sh = p * RADIX_BITS;
        for (size_t i = 0; i < n; i++) {
            uint64_t k = src[i];
            dst[h[(k >> sh) & (RADIX - 1)]++] = k;
        }
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    return src;
}

int seg__rfm_group(const seg__alloc *a, const int64_t *v, size_t n, seg__rfm_groups *g)
{
    memset(g, 0, sizeof *g);
    if (n == 0)
        return groups_alloc(a, g, 0);
    int64_t mn = v[0], mx = v[0];
    for (size_t i = 1; i < n; i++) {
        if (v[i] < mn)
            mn = v[i];
        if (v[i] > mx)
            mx = v[i];
    }
    uint64_t range = (uint64_t)mx - (uint64_t)mn; /* no overflow in unsigned */
    g->n = n;
    if (range < (uint64_t)1 << 26 && range <= 2 * (uint64_t)n + 65536) {
        /* counting sort */
        uint32_t *cnt = seg__calloc(a, (size_t)range + 1, sizeof *cnt);
        if (!cnt)
            return SEG_ENOMEM;
        for (size_t i = 0; i < n; i++)
            cnt[(uint64_t)v[i] - (uint64_t)mn]++;
        size_t d = 0;
        for (uint64_t k = 0; k <= range; k++)
            d += cnt[k] != 0;
        if (groups_alloc(a, g, d) != SEG_OK) {
            seg__free(a, cnt);
            return SEG_ENOMEM;
        }
        g->n = n;
        size_t j = 0;
        for (uint64_t k = 0; k <= range; k++) {
            if (!cnt[k])
                continue;
            g->val[j] = (int64_t)((uint64_t)mn + k);
            g->cnt[j] = cnt[k];
            if (cnt[k] > g->max)
                g->max = cnt[k];
            j++;
        }
        g->d = d;
        seg__free(a, cnt);
        return SEG_OK;
    }
    /* radix sort of value - min */
    uint64_t *keys = seg__malloc(a, n * 2 * sizeof *keys);
    uint32_t (*hist)[RADIX] = seg__malloc(a, RADIX_PASSES * sizeof *hist);
    if (!keys || !hist) {
        seg__free(a, keys);
        seg__free(a, hist);
        return SEG_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        keys[i] = (uint64_t)v[i] - (uint64_t)mn;
    uint64_t *s = radix_sort(keys, keys + n, n, hist);
    seg__free(a, hist);
    size_t d = 1;
    for (size_t i = 1; i < n; i++)
        d += s[i] != s[i - 1];
    if (groups_alloc(a, g, d) != SEG_OK) {
        seg__free(a, keys);
        return SEG_ENOMEM;
    }
    g->n = n;
    size_t j = 0, start = 0;
    for (size_t i = 1; i <= n; i++) {
        if (i < n && s[i] == s[start])
            continue;
        g->val[j] = (int64_t)((uint64_t)mn + s[start]);
        g->cnt[j] = (uint32_t)(i - start);
        if (g->cnt[j] > g->max)
            g->max = g->cnt[j];
        j++;
        start = i;
    }
    g->d = d;
    seg__free(a, keys);
    return SEG_OK;
}

/* ---- the balanced cut ---- */

typedef struct dp_ctx {
    const uint64_t *pos;  /* cumulative count at each candidate boundary */
    const uint64_t *prev; /* layer k-1 */
    uint64_t *cur;        /* layer k */
    uint32_t *opt;        /* layer k's best split */
    size_t first_i;       /* smallest split allowed (k - 1) */
} dp_ctx;

/* cur[j] and opt[j] for j in [jl, jr], knowing the best split of each lies
 * in [il, ir]: the leftmost best split is monotone in j. */
static void dp_solve(dp_ctx *c, size_t jl, size_t jr, size_t il, size_t ir)
{
    while (jl <= jr) {
        size_t mid = jl + (jr - jl) / 2;
        size_t lo = il > c->first_i ? il : c->first_i;
        size_t hi = ir < mid - 1 ? ir : mid - 1;
        uint64_t best = UINT64_MAX;
        size_t bi = lo;
        uint64_t pj = c->pos[mid];
        for (size_t i = lo; i <= hi; i++) {
            uint64_t w = pj - c->pos[i];
            uint64_t v = c->prev[i] + w * w; /* <= pos[mid]^2 < 2^64 */
            if (v < best) {
                best = v;
                bi = i;
            }
        }
        c->cur[mid] = best;
        c->opt[mid] = (uint32_t)bi;
        if (mid > jl)
            dp_solve(c, jl, mid - 1, il, bi);
        /* the right half: iterate instead of recursing */
        jl = mid + 1;
        il = bi;
    }
}

int seg__rfm_partition(const seg__alloc *a, const seg__rfm_groups *g, uint32_t bins,
                       size_t *starts)
{
    size_t d = g->d;
    uint64_t n = g->n;
    uint32_t B = bins;
    /* prefix sums over the groups */
    uint64_t *pre = seg__malloc(a, (d + 1) * sizeof *pre);
    if (!pre)
        return SEG_ENOMEM;
    pre[0] = 0;
    for (size_t t = 0; t < d; t++)
        pre[t + 1] = pre[t] + g->cnt[t];

    /* candidate boundaries t in 1..d-1 (plus the ends 0 and d): for each
     * cut k, the ones with |B * pre[t] - k * n| <= B * w_k */
    size_t *cand = seg__malloc(a, (d + 1) * sizeof *cand);
    if (!cand) {
        seg__free(a, pre);
        return SEG_ENOMEM;
    }
    size_t m = 0;
    cand[m++] = 0;
    size_t done = 0; /* candidates are taken in increasing t: last t added */
    for (uint32_t k = 1; k < B; k++) {
        uint64_t span = (uint64_t)(k < B - k ? k : B - k) * (B - 1) * g->max;
        /* in units of 1/B customers: [k*n - B*span, k*n + B*span] */
        uint64_t c = (uint64_t)k * n, w = (uint64_t)B * span;
        uint64_t lo = c > w ? c - w : 0, hi = c + w;
        /* first t with B * pre[t] >= lo */
        size_t l = 1, h = d; /* search in [1, d) */
        while (l < h) {
            size_t mid = l + (h - l) / 2;
            if ((uint64_t)B * pre[mid] < lo)
                l = mid + 1;
            else
                h = mid;
        }
        /* cut k + 1 lies above cut k, so boundaries up to the last one
         * taken are either taken already or below every optimal cut k */
        for (size_t t = l > done ? l : done + 1; t < d && (uint64_t)B * pre[t] <= hi; t++) {
            cand[m++] = t;
            done = t;
        }
    }
    cand[m++] = d;
    /* every optimal cut vector lies in the windows, so there are at least
     * B - 1 inner candidates; should arithmetic say otherwise, take every
     * boundary */
    if (m < (size_t)B + 1) {
        m = 0;
        for (size_t t = 0; t <= d; t++)
            cand[m++] = t;
    }

    uint64_t *pos = seg__malloc(a, m * sizeof *pos);
    uint64_t *prev = seg__malloc(a, m * sizeof *prev);
    uint64_t *cur = seg__malloc(a, m * sizeof *cur);
    uint32_t *opt = seg__malloc(a, (size_t)B * m * sizeof *opt);
    if (!pos || !prev || !cur || !opt) {
        seg__free(a, pre);
        seg__free(a, cand);
        seg__free(a, pos);
        seg__free(a, prev);
        seg__free(a, cur);
        seg__free(a, opt);
        return SEG_ENOMEM;
    }
    for (size_t j = 0; j < m; j++)
        pos[j] = pre[cand[j]];
    /* layer 1: one bin [0, j) */
    prev[0] = UINT64_MAX;
    for (size_t j = 1; j < m; j++) {
        prev[j] = pos[j] * pos[j];
        opt[j] = 0;
    }
    for (uint32_t k = 2; k <= B; k++) {
        dp_ctx c = { pos, prev, cur, opt + (size_t)(k - 1) * m, k - 1 };
        /* layer k is defined for j >= k; only j = m - 1 matters in the last */
        size_t jl = k == B ? m - 1 : k;
        dp_solve(&c, jl, m - 1, k - 1, m - 2);
        for (size_t j = 0; j < jl; j++)
            cur[j] = UINT64_MAX;
        uint64_t *t = prev;
        prev = cur;
        cur = t;
    }
    /* walk back from the end */
    size_t j = m - 1;
    starts[B] = d;
    for (uint32_t k = B; k >= 2; k--) {
        j = opt[(size_t)(k - 1) * m + j];
        starts[k - 1] = cand[j];
    }
    starts[0] = 0;
    seg__free(a, pre);
    seg__free(a, cand);
    seg__free(a, pos);
    seg__free(a, prev);
    seg__free(a, cur);
    seg__free(a, opt);
    return SEG_OK;
}

int seg__rfm_cut(const seg__alloc *a, const seg__rfm_groups *g, uint32_t bins, int64_t *lo)
{
    uint32_t nb = bins - 1;
    if (g->d == 0) {
        for (uint32_t k = 0; k < nb; k++)
            lo[k] = INT64_MAX;
        return SEG_OK;
    }
    if (g->d >= bins) {
        size_t starts[SEG_RFM_BINS_MAX + 1];
        int rc = seg__rfm_partition(a, g, bins, starts);
        if (rc != SEG_OK)
            return rc;
        for (uint32_t k = 0; k < nb; k++)
            lo[k] = g->val[starts[k + 1]];
        return SEG_OK;
    }
    /* fewer distinct values than bins: each value its own score, by its
     * mid-rank percentile */
    uint32_t score[SEG_RFM_BINS_MAX];
    uint64_t below = 0;
    size_t d = g->d;
    for (size_t i = 0; i < d; i++) {
        /* 1 + floor(bins * (below + cnt / 2) / n) */
        uint64_t s = 1 + ((uint64_t)bins * (2 * below + g->cnt[i])) / (2 * g->n);
        if (s > bins)
            s = bins;
        if (i > 0 && s <= score[i - 1])
            s = score[i - 1] + 1;
        if (s > bins - (d - 1 - i))
            s = bins - (d - 1 - i);
        score[i] = (uint32_t)s;
        below += g->cnt[i];
    }
    int64_t top = g->val[d - 1] == INT64_MAX ? INT64_MAX : g->val[d - 1] + 1;
    size_t i = 0;
    for (uint32_t s = 2; s <= bins; s++) {
        while (i < d && score[i] < s)
            i++;
        lo[s - 2] = i < d ? g->val[i] : top;
    }
    /* scores below the lowest group's start at its value */
    return SEG_OK;
}
