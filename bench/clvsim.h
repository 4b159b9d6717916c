/*
 * bench/clvsim.h: a seeded simulator of customer populations that follow the
 * lifetime-value models exactly, for the CLV benchmark and for the tests
 * (parameter recovery).  Header-only, no library calls, the same output on
 * every machine for a seed (its own PRNG: xoshiro256** seeded by splitmix64).
 *
 * A customer's first purchase falls uniformly in the first `acq` units; then
 *   BG/NBD:    purchases at Poisson rate lambda ~ Gamma(r, alpha); after each
 *              repeat purchase the customer drops out with p ~ Beta(a, b);
 *   MBG/NBD:   the same, and may also drop out right after the first purchase;
 *   Pareto/NBD: rate lambda ~ Gamma(r, alpha) until a lifetime
 *              ~ Exponential(mu), mu ~ Gamma(s, beta);
 * and each transaction's amount is Gamma(p, nu), nu ~ Gamma(q, gamma)
 * (Gamma-Gamma).  Gamma(shape, rate) everywhere.  Time is in model units;
 * with `day_units` > 0 (the number of days in a unit), times are cut to
 * whole days and same-day purchases merge, as real summaries are.
 */
#ifndef SEG_CLVSIM_H
#define SEG_CLVSIM_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define CLVSIM_BGNBD 1
#define CLVSIM_MBGNBD 2
#define CLVSIM_PARETO 3

typedef struct clvsim_rng {
    uint64_t s[4];
} clvsim_rng;

static inline uint64_t clvsim_splitmix(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static inline void clvsim_seed(clvsim_rng *g, uint64_t seed)
{
    int i;
    for (i = 0; i < 4; i++)
        g->s[i] = clvsim_splitmix(&seed);
}

static inline uint64_t clvsim_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t clvsim_next(clvsim_rng *g)
{
    uint64_t *s = g->s;
    uint64_t r = clvsim_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = clvsim_rotl(s[3], 45);
    return r;
}

/* uniform in (0, 1) */
static inline double clvsim_unif(clvsim_rng *g)
{
    return ((double)(clvsim_next(g) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static inline double clvsim_normal(clvsim_rng *g)
{
    double u = clvsim_unif(g), v = clvsim_unif(g);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Gamma(shape, 1): Marsaglia and Tsang, boosted below shape 1 */
static inline double clvsim_gamma1(clvsim_rng *g, double shape)
{
    double boost = 1.0, d, c;
    if (shape < 1.0) {
        boost = pow(clvsim_unif(g), 1.0 / shape);
        shape += 1.0;
    }
    d = shape - 1.0 / 3.0;
    c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = clvsim_normal(g), v = 1.0 + c * x, u;
        if (v <= 0)
            continue;
        v = v * v * v;
        u = clvsim_unif(g);
        if (log(u) < 0.5 * x * x + d - d * v + d * log(v))
            return boost * d * v;
    }
}

/* Gamma(shape, rate) */
static inline double clvsim_gamma(clvsim_rng *g, double shape, double rate)
{
    return clvsim_gamma1(g, shape) / rate;
}

static inline double clvsim_beta(clvsim_rng *g, double a, double b)
{
    double x = clvsim_gamma1(g, a), y = clvsim_gamma1(g, b);
    return x / (x + y);
}

/* One customer's summary. */
typedef struct clvsim_customer {
    double x, tx, T;     /* frequency, recency, age in the calibration period */
    double monetary;     /* mean amount of the repeat transactions (0 when x is 0) */
    double holdout;      /* transactions (days) in the holdout period */
} clvsim_customer;

typedef struct clvsim_spec {
    int model;           /* CLVSIM_* */
    double p[4];         /* r, alpha, a, b  or  r, alpha, s, beta */
    double spend[3];     /* p, q, gamma; spend[0] == 0: no amounts */
    double acq;          /* first purchases uniform in [0, acq) units */
    double cal;          /* calibration end, units after time 0 */
    double hold;         /* holdout length in units after cal (0: none) */
    double day_units;    /* days per unit, or 0: continuous time */
} clvsim_spec;

/* Simulate customer i of a population (customers are independent: each has
 * its own stream, derived from the seed and i). */
static inline void clvsim_one(const clvsim_spec *sp, uint64_t seed, uint64_t i,
                              clvsim_customer *out)
{
    clvsim_rng g;
    double lambda, p = 0, mu = 0, nu = 0, t0, t, death = INFINITY, end;
    double last_day = -1, d0, x = 0, tx = 0, sum = 0, hold = 0;
    int alive = 1;
    clvsim_seed(&g, seed ^ (i * UINT64_C(0xd1342543de82ef95)));
    lambda = clvsim_gamma(&g, sp->p[0], sp->p[1]);
    if (sp->model == CLVSIM_PARETO) {
        mu = clvsim_gamma(&g, sp->p[2], sp->p[3]);
        death = -log(clvsim_unif(&g)) / mu;
    } else {
        p = clvsim_beta(&g, sp->p[2], sp->p[3]);
    }
    if (sp->spend[0] > 0)
        nu = clvsim_gamma(&g, sp->spend[1], sp->spend[2]);
    t0 = sp->acq * clvsim_unif(&g);
    if (sp->day_units > 0)
        t0 = floor(t0 * sp->day_units) / sp->day_units; /* first purchase on a whole day */
    end = sp->cal + sp->hold;
    d0 = sp->day_units > 0 ? floor(t0 * sp->day_units + 1e-9) : 0;
    last_day = d0;
    if (sp->model == CLVSIM_MBGNBD && clvsim_unif(&g) < p)
        alive = 0;
    t = t0;
    while (alive) {
        double amount;
        t += -log(clvsim_unif(&g)) / lambda;
        if (t - t0 > death || t > end)
            break;
        amount = sp->spend[0] > 0 ? clvsim_gamma(&g, sp->spend[0], nu) : 0.0;
        if (sp->day_units > 0) {
            double day = floor(t * sp->day_units), cal_day = floor(sp->cal * sp->day_units);
            if (day != last_day) {
                if (day <= cal_day) {
                    x += 1;
                    tx = (day - d0) / sp->day_units;
                    sum += amount;
                } else {
                    hold += 1;
                }
                last_day = day;
            } else if (day != d0 && day <= cal_day) {
                sum += amount; /* same day: one transaction, amounts add up */
            }
        } else if (t <= sp->cal) {
            x += 1;
            tx = t - t0;
            sum += amount;
        } else {
            hold += 1;
        }
        if (sp->model != CLVSIM_PARETO && clvsim_unif(&g) < p)
            alive = 0;
    }
    out->x = x;
    out->tx = x > 0 ? tx : 0.0;
    out->T = sp->cal - t0;
    if (sp->day_units > 0)
        out->T = (floor(sp->cal * sp->day_units) - d0) / sp->day_units;
    out->monetary = x > 0 ? sum / x : 0.0;
    out->holdout = hold;
}

#endif /* SEG_CLVSIM_H */
