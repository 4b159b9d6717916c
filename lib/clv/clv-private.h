/*
 * Lifetime value internals: special functions, the models' likelihoods and
 * predictions, the quasi-Newton fitter.
 *
 * Conventions: `k` is r + x (the shape of the posterior purchase rate), `c`
 * is alpha + T, `d` is beta + T (Pareto/NBD), `bp` ("b prime") is the second
 * shape of the posterior dropout probability of BG/NBD (b + x) and MBG/NBD
 * (b + x + 1).  Parameters are passed as double[4] in the order of
 * segment/clv.h; the fitter works on their logarithms.
 */
#ifndef SEGMENT_CLV_PRIVATE_H
#define SEGMENT_CLV_PRIVATE_H

#include "segment-private.h"

#include <math.h>

/* ------------------------------------------------------------ handle */

struct seg_clv_model {
    seg__alloc alloc;
    uint32_t kind, unit;
    bool has_params, has_spend;
    double params[4];
    double spend[3];
    char errmsg[512];
};

/* Set the model's message (printf style); returns code. */
int seg__clv_error(seg_clv_model *m, int code, const char *fmt, ...) SEG_PRINTF(3, 4);

/* Seconds per unit, 0 for an unknown unit. */
int64_t seg__clv_unit_seconds(uint32_t unit);
const char *seg__clv_unit_name(uint32_t unit);
const char *seg__clv_kind_name(uint32_t kind);
/* names of the 4 purchase parameters of a kind, and of the 3 spend ones */
const char *const *seg__clv_param_names(uint32_t kind);
extern const char *const seg__clv_spend_names[3];

/* ---------------------------------------------------- special functions */

/* ln Gamma(x) for x > 0 (no global state, unlike lgamma's signgam). */
double seg__clv_lngamma(double x);
/* digamma psi(x) for x > 0 */
double seg__clv_digamma(double x);
/* ln Gamma(a + n) - ln Gamma(a) and psi(a + n) - psi(a), a > 0, n >= 0:
 * exact sums for small whole n */
double seg__clv_lgratio(double a, double n);
double seg__clv_psiratio(double a, double n);
/* log(1 + e) for 0 <= e <= 1, absolute error below 1e-16: a short series
 * for small e, else log(1 + e) (cheaper than log1p) */
static inline double seg__clv_log1p_small(double e)
{
    if (e < 1e-4)
        return e * (1.0 - e * (0.5 - e * (1.0 / 3)));
    return log(1.0 + e);
}
/* log(1 + exp(u)) without overflow */
static inline double seg__clv_softplus(double u)
{
    return u > 0 ? u + log1p(exp(-u)) : log1p(exp(u));
}
/* 1 / (1 + exp(-u)) */
static inline double seg__clv_sigmoid(double u)
{
    if (u >= 0)
        return 1.0 / (1.0 + exp(-u));
    double e = exp(u);
    return e / (1.0 + e);
}
/* log(exp(a) + exp(b)) */
static inline double seg__clv_logaddexp(double a, double b)
{
    if (a == -INFINITY)
        return b;
    if (b == -INFINITY)
        return a;
    return a > b ? a + log1p(exp(b - a)) : b + log1p(exp(a - b));
}
/* -expm1(e * L) / e with its limit -L at e = 0 (L = log(1 - z) <= 0) */
double seg__clv_expm1_ratio(double e, double L);

/*
 * The Gauss hypergeometric function 2F1(a, b; c; z) for real a, b, c (c not
 * 0, -1, -2, ...) and real z < 1.  0 < z <= 0.5: the power series; z < 0:
 * Pfaff's transformation to z / (z - 1) in (0, 1) (no alternating series);
 * 0.5 < z < 1: Euler's integral by double-exponential quadrature when
 * c > b > 0 or c > a > 0, otherwise the power series.  NaN when the
 * arguments are outside that domain or the series does not converge.
 */
double seg__clv_hyp2f1(double a, double b, double c, double z);

/* Gauss-Legendre rules on [-1, 1] (n = 16 or 32 points): the nodes are
 * +x[i] and -x[i] with weight w[i], for i < n / 2. */
typedef struct seg__clv_gl {
    int n;
    const double *x, *w;
} seg__clv_gl;
/* int_lo^hi f over a rule: sum of w * f(mid +- half * x) * half */

/* Double-exponential (tanh-sinh) quadrature of int_0^1 exp(lf(t)) dt, where
 * the callback gets t, log t and log(1 - t) (accurate near both ends, where t
 * or 1 - t underflow) and returns the log of the integrand.  `lo_exp` and
 * `hi_exp` are the exponents of the integrand's power behaviour at 0 and 1
 * (t^lo_exp, (1-t)^hi_exp, > -1): they set how far the nodes reach.  Halves
 * the step until two results agree to ~1e-15.  NaN if they never do. */
typedef double (*seg__clv_de_fn)(void *ctx, double t, double lt, double l1t);
double seg__clv_de01(seg__clv_de_fn f, void *ctx, double lo_exp, double hi_exp);
extern const seg__clv_gl seg__clv_gl16, seg__clv_gl32;

/* ------------------------------------------------------------- models */

/* Pareto/NBD: the integral A0 = int_{t_x}^{T} (alpha+u)^-(r+x) (beta+u)^-(s+1) du
 * as its log (-INFINITY when t_x == T) and, when grad is not NULL, the
 * derivatives of log A0 with respect to r, alpha, s, beta. */
double seg__clv_pnbd_log_a0(const double *p, double x, double tx, double T, double *grad);

/* Per-customer log-likelihood and, when grad is not NULL, its gradient with
 * respect to the 4 natural parameters (used by tests and by the slow path). */
double seg__clv_ll1(uint32_t kind, const double *p, double x, double tx, double T, double *grad);
/* Gamma-Gamma log-density of a customer's mean spend m over x transactions
 * (gradient with respect to p, q, gamma) */
double seg__clv_gg_ll1(const double *g, double x, double m, double *grad);

/* log P(alive) */
double seg__clv_log_p_alive(uint32_t kind, const double *p, double x, double tx, double T);
/* E[Y(t) | alive at T] (depends on x and T only) */
double seg__clv_expected_alive(uint32_t kind, const double *p, double x, double T, double t);
/* discounted E[Y] given alive: int_0^H exp(-delta u) dE[Y(u) | alive] */
double seg__clv_discounted_alive(uint32_t kind, const double *p, double x, double T, double H,
                                 double delta);
/* P(Y(t) = n | x, t_x, T) */
double seg__clv_prob_n(uint32_t kind, const double *p, double x, double tx, double T, double t,
                       uint32_t n);
/* BG/NBD and MBG/NBD: E_p[(1 - (1 + p tau)^-k) / p] for p ~ Beta(a, bp),
 * the expectation behind E[Y(t) | alive], by double-exponential quadrature
 * (independent of the series; used for z > 0.9 and by the tests) */
double seg__clv_bg_expected_quad(double a, double bp, double k, double tau);

/* ------------------------------------------------------------- fitting */

/* Grouped data for the purchase models: distinct (x, t_x, T) with weights. */
typedef struct seg__clv_groups {
    size_t n;             /* groups */
    double *x, *tx, *T, *w;
    /* distinct values and each group's index into them */
    size_t nx, ntx, nT;
    double *ux, *utx, *uT;
    uint32_t *ix, *itx, *iT;
    double customers, repeat; /* sums of weights */
    /* work space for one evaluation */
    double *scratch;
} seg__clv_groups;

/* Terms of the Pareto/NBD series kept in tables per distinct x (beyond, the
 * general code takes over), and the scratch doubles an evaluation needs. */
#define SEG__CLV_PNBD_NT 256
#define SEG__CLV_SCRATCH(nx, nT, ntx) \
    ((nx) * (8 + 4 * SEG__CLV_PNBD_NT) + 6 * (nT) + 4 * (ntx) + 16)

/* Validate the columns and group them.  Returns SEG_OK, SEG_EINVAL (msg set
 * on m) or SEG_ENOMEM.  `spend`: group (x, monetary) of the rows with x > 0
 * and monetary > 0 instead (in x and tx), and count the others in *excluded. */
int seg__clv_group(seg_clv_model *m, const seg_clv_columns *cols, bool spend,
                   seg__clv_groups *g, uint64_t *excluded);
void seg__clv_groups_free(const seg__alloc *a, seg__clv_groups *g);

/* Total log-likelihood of grouped data and its gradient with respect to the
 * log-parameters (grad may be NULL).  kind 0 = Gamma-Gamma. */
double seg__clv_ll_groups(uint32_t kind, const double *p, const seg__clv_groups *g,
                          double *grad_log);

/* For the definition language: the summary of customer ci of a store as of
 * the UTC day of as_of (later transactions are its holdout), in `unit`, with
 * amounts of `exponent` decimals.  The scratch buffer grows as needed and is
 * reused across calls (free scratch->buf with seg__free), so scoring many
 * customers allocates only while it grows.  SEG_OK, SEG_ENOTFOUND (erased,
 * or no transaction up to as_of) or SEG_ENOMEM.  customer_id is not set.
 * Then: p_alive = exp(seg__clv_log_p_alive(...)), expected_purchases(t) =
 * seg_clv_expected_purchases(), clv(h) = seg_clv_value() with horizon h,
 * all in the model's unit. */
typedef struct seg__clv_scratch {
    void *buf;
    size_t cap;
} seg__clv_scratch;
/* Room for a customer of `events` events (SEG_OK or SEG_ENOMEM). */
int seg__clv_scratch_reserve(const seg__alloc *a, seg__clv_scratch *scratch, size_t events);
struct seg__store;
int seg__clv_customer_summary(const seg__alloc *a, const struct seg__store *s, uint32_t ci,
                              int64_t as_of, uint32_t unit, int exponent, seg__clv_scratch *scratch,
                              seg_clv_summary *out);

/* Validate the summary of one customer (message on m). */
int seg__clv_check_summary(seg_clv_model *m, double x, double tx, double T);

#endif /* SEGMENT_CLV_PRIVATE_H */
