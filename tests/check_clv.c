/*
 * tests/check_clv.c: lifetime value.  White-box (links the internal
 * library): the special functions, the likelihoods and predictions are
 * checked against values computed independently here (closed forms,
 * identities, adaptive Simpson integration of the models' definitions in
 * long double), the fitter by parameter recovery on populations simulated
 * from known parameters (bench/clvsim.h), and the public API for its
 * summaries, errors, export and import.  Self-contained: needs no data
 * outside the repository (the CDNOW accuracy test is check_clv_cdnow.c).
 */
#include "testutil.h"

#include "clv/clv-private.h"
#include "core/core-private.h"
#include "clvsim.h"

#include <float.h>
#include <locale.h>
#include <math.h>

Suite *clv_suite(void);

/* ------------------------------------------------------------ helpers */

#define CLOSE(got, want, rel, what) do { \
        double g_ = (got), w_ = (want); \
        ck_assert_msg(fabs(g_ - w_) <= (rel) * fmax(1.0, fabs(w_)), \
                      "%s: got %.17g, want %.17g (diff %.3g)", (what), g_, w_, g_ - w_); \
    } while (0)

#define RELCLOSE(got, want, rel, what) do { \
        double g_ = (got), w_ = (want); \
        ck_assert_msg(fabs(g_ - w_) <= (rel) * fabs(w_), \
                      "%s: got %.17g, want %.17g (rel diff %.3g)", (what), g_, w_, \
                      (g_ - w_) / w_); \
    } while (0)

#define MOK(m, expr) do { \
        int rc_ = (expr); \
        ck_assert_msg(rc_ == SEG_OK, "%s returned %d (msg: %s)", #expr, rc_, seg_clv_model_errmsg(m)); \
    } while (0)

#define MRC(m, expr, code) do { \
        int rc_ = (expr); \
        ck_assert_msg(rc_ == (code), "%s returned %d, expected %d (msg: %s)", #expr, rc_, \
                      (int)(code), seg_clv_model_errmsg(m)); \
    } while (0)

/* adaptive Simpson in long double */
typedef long double (*fn1)(long double t, void *ctx);

static long double simpson_rec(fn1 f, void *c, long double a, long double b, long double fa,
                               long double fm, long double fb, long double whole,
                               long double eps, int depth)
{
    long double m = (a + b) / 2, lm = (a + m) / 2, rm = (m + b) / 2;
    long double flm = f(lm, c), frm = f(rm, c);
    long double left = (m - a) / 6 * (fa + 4 * flm + fm), right = (b - m) / 6 * (fm + 4 * frm + fb);
    long double d = left + right - whole;
    if (depth <= 0 || fabsl(d) <= 15 * eps)
        return left + right + d / 15;
    return simpson_rec(f, c, a, m, fa, flm, fm, left, eps / 2, depth - 1) +
           simpson_rec(f, c, m, b, fm, frm, fb, right, eps / 2, depth - 1);
}

/* int_a^b f over n equal panels, each adaptive, to a relative accuracy of
 * about rel (against a first estimate of the whole) */
static long double integrate(fn1 f, void *c, long double a, long double b, int panels, long double rel)
{
    long double h = (b - a) / panels, rough = 0;
    for (int i = 0; i < 4 * panels; i++) /* midpoints */
        rough += fabsl(f(a + (i + 0.5L) * h / 4, c)) * h / 4;
    long double eps = rel * (rough > 0 ? rough : 1) / panels, s = 0;
    for (int i = 0; i < panels; i++) {
        long double lo = a + i * h, hi = lo + h, m = (lo + hi) / 2;
        long double flo = f(lo, c), fm = f(m, c), fhi = f(hi, c);
        s += simpson_rec(f, c, lo, hi, flo, fm, fhi, (hi - lo) / 6 * (flo + 4 * fm + fhi), eps, 30);
    }
    return s;
}

static seg_clv_model *new_model(uint32_t kind, uint32_t unit, const double *p)
{
    seg_clv_model *m = NULL;
    ck_assert_int_eq(seg_clv_model_new(&m, kind, unit, NULL), SEG_OK);
    if (p)
        MOK(m, seg_clv_model_set_params(m, p, 4));
    return m;
}

/* ------------------------------------------------- special functions */

START_TEST(lngamma_matches_libm)
{
    const double xs[] = { 1e-12, 1e-6, 1e-3, 0.1, 0.5, 0.999, 1.0, 1.5, 2.0, 2.5, 3.7, 9.99,
                          10.0, 10.5, 50.0, 123.4, 1e4, 1e8, 1e15 };
    for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
        double want = (double)lgammal((long double)xs[i]);
        CLOSE(seg__clv_lngamma(xs[i]), want, 3e-15, "lngamma");
    }
    ck_assert(isnan(seg__clv_lngamma(0.0)));
    ck_assert(isnan(seg__clv_lngamma(-1.5)));
    ck_assert(isnan(seg__clv_lngamma(NAN)));
}
END_TEST

START_TEST(digamma_values)
{
    const double euler = 0.57721566490153286061;
    CLOSE(seg__clv_digamma(1.0), -euler, 1e-15, "psi(1)");
    CLOSE(seg__clv_digamma(0.5), -euler - 2 * log(2.0), 1e-15, "psi(1/2)");
    /* psi(n + 1) = H_n - gamma */
    double h = 0;
    for (int n = 1; n <= 40; n++) {
        h += 1.0 / n;
        CLOSE(seg__clv_digamma(n + 1.0), h - euler, 2e-15, "psi(n+1)");
    }
    /* the derivative of ln Gamma (central differences in long double) and
     * the recurrence psi(x+1) = psi(x) + 1/x */
    const double xs[] = { 1e-7, 1e-3, 0.03, 0.7, 2.2, 7.9, 10.1, 33.3, 1e3, 1e6 };
    for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
        long double x = xs[i], d = x * 1e-6L;
        long double num = (lgammal(x + d) - lgammal(x - d)) / (2 * d);
        CLOSE(seg__clv_digamma(xs[i]), (double)num, 1e-8, "psi vs d lnGamma");
        double y = seg__clv_digamma(xs[i]) + 1 / xs[i];
        ck_assert_msg(fabs(seg__clv_digamma(xs[i] + 1) - y) <= 1e-14 * fmax(1, 1 / xs[i]),
                      "recurrence at %g", xs[i]);
    }
}
END_TEST

START_TEST(gamma_ratios)
{
    const double as[] = { 1e-4, 0.243, 1.0, 7.5, 300.0, 1e7 };
    const double ns[] = { 0, 1, 2, 5, 16, 17, 40.5, 1000 };
    for (size_t i = 0; i < sizeof as / sizeof *as; i++)
        for (size_t j = 0; j < sizeof ns / sizeof *ns; j++) {
            long double a = as[i], n = ns[j], lg = 0, psi = 0, slack = 0;
            if (ns[j] == floor(ns[j])) { /* exact sums */
                for (long double k = 0; k < n; k++) {
                    lg += logl(a + k);
                    psi += 1 / (a + k);
                }
            } else { /* lgammal's own rounding grows with its value */
                lg = lgammal(a + n) - lgammal(a);
                psi = seg__clv_digamma(as[i] + ns[j]) - seg__clv_digamma(as[i]);
                slack = 1e-18L * fabsl(lgammal(a + n));
            }
            ck_assert_msg(fabsl(seg__clv_lgratio(as[i], ns[j]) - lg) <= 1e-13L * fmaxl(1, fabsl(lg)) + slack,
                          "lgratio(%g, %g) = %.17g, want %.17Lg", as[i], ns[j],
                          seg__clv_lgratio(as[i], ns[j]), lg);
            CLOSE(seg__clv_psiratio(as[i], ns[j]), (double)psi, 1e-12, "psiratio");
        }
}
END_TEST

/* long double reference: the 2F1 power series */
static long double series2f1(long double a, long double b, long double c, long double z)
{
    long double t = 1, s = 1;
    for (int n = 0; n < 200000; n++) {
        t *= (a + n) * (b + n) / ((c + n) * (n + 1)) * z;
        s += t;
        if (fabsl(t) < 1e-22L * fabsl(s) && n > 5)
            break;
    }
    return s;
}

/* Euler's integrand t^(b-1) (1-t)^(c-b-1) (1-zt)^(-a) (smooth for b, c-b >= 1) */
typedef struct euler_ref { long double a, b, c, z; } euler_ref;
static long double euler_f(long double t, void *p)
{
    const euler_ref *e = p;
    return powl(t, e->b - 1) * powl(1 - t, e->c - e->b - 1) * powl(1 - e->z * t, -e->a);
}

static double euler2f1(double a, double b, double c, double z)
{
    euler_ref e = { a, b, c, z };
    long double norm = expl(lgammal(c) - lgammal(b) - lgammal(c - b));
    /* panels crowd toward t = 1, where (1 - zt)^-a is steep */
    long double s = 0, lo = 0;
    const long double cuts[] = { 0.5L, 0.9L, 0.99L, 0.999L, 0.9999L, 1.0L };
    for (int i = 0; i < 6; i++) {
        s += integrate(euler_f, &e, lo, cuts[i], 8, 1e-15L);
        lo = cuts[i];
    }
    return (double)(norm * s);
}

START_TEST(hyp2f1_closed_forms)
{
    const double zs[] = { -50, -5, -1.2, -0.9, -0.3, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.9999 };
    for (size_t i = 0; i < sizeof zs / sizeof *zs; i++) {
        double z = zs[i];
        /* 2F1(1, 1; 2; z) = -log(1 - z) / z */
        RELCLOSE(seg__clv_hyp2f1(1, 1, 2, z), -log1p(-z) / z, 1e-13, "2F1(1,1;2;z)");
        /* 2F1(a, b; b; z) = (1 - z)^-a, through the general code (b + tiny) */
        RELCLOSE(seg__clv_hyp2f1(0.7, 2.0, 2.0, z), pow(1 - z, -0.7), 1e-14, "2F1(a,b;b;z)");
        if (z < 0) { /* 2F1(1/2, 1; 3/2; -y^2) = atan(y) / y */
            double y = sqrt(-z);
            RELCLOSE(seg__clv_hyp2f1(0.5, 1, 1.5, z), atan(y) / y, 1e-13, "atan");
        } else { /* 2F1(1/2, 1/2; 3/2; y^2) = asin(y) / y */
            double y = sqrt(z);
            RELCLOSE(seg__clv_hyp2f1(0.5, 0.5, 1.5, z), asin(y) / y, 1e-12, "asin");
        }
    }
    ck_assert_double_eq(seg__clv_hyp2f1(3, 4, 5, 0.0), 1.0);
    ck_assert(isnan(seg__clv_hyp2f1(1, 1, 2, 1.0)));
    ck_assert(isnan(seg__clv_hyp2f1(1, 1, -2, 0.5)));
    ck_assert(isnan(seg__clv_hyp2f1(NAN, 1, 2, 0.5)));
}
END_TEST

START_TEST(hyp2f1_against_references)
{
    /* the series in long double where it converges quickly (z >= 0: no
     * alternating terms; z < 0 is compared with Euler's integral below) */
    const double P[][3] = { { 0.243, 2.426, 2.219 }, { 26.24, 28.43, 28.22 }, { -2.5, 1.5, 3.1 },
                            { 5, 7, 13 }, { 0.55, 12.5, 2.2 } };
    const double zs[] = { 0.05, 0.3, 0.5, 0.62, 0.75 };
    for (size_t i = 0; i < sizeof P / sizeof *P; i++)
        for (size_t j = 0; j < sizeof zs / sizeof *zs; j++) {
            double want = (double)series2f1(P[i][0], P[i][1], P[i][2], zs[j]);
            RELCLOSE(seg__clv_hyp2f1(P[i][0], P[i][1], P[i][2], zs[j]), want, 2e-12, "vs series");
        }
    /* Euler's integral by adaptive Simpson, for large arguments */
    const double Q[][3] = { { 1.5, 2.0, 4.0 }, { 0.3, 1.2, 3.5 }, { 30, 2, 40 }, { 2.2, 1.0, 2.5 },
                            { 26.24, 28.43, 58.22 } };
    const double zq[] = { 0.6, 0.9, 0.99, 0.999, -0.49, -3, -40 };
    for (size_t i = 0; i < sizeof Q / sizeof *Q; i++)
        for (size_t j = 0; j < sizeof zq / sizeof *zq; j++) {
            double want = euler2f1(Q[i][0], Q[i][1], Q[i][2], zq[j]);
            RELCLOSE(seg__clv_hyp2f1(Q[i][0], Q[i][1], Q[i][2], zq[j]), want, 1e-10, "vs Euler");
        }
}
END_TEST

START_TEST(hyp2f1_contiguous_relation)
{
    /* Gauss: c(c-1)(z-1) F(c-1) + c[c-1-(2c-a-b-1)z] F(c) + (c-a)(c-b) z F(c+1) = 0,
     * an identity none of the code paths uses */
    const double P[][3] = { { 0.8, 2.4, 4.3 }, { 3.5, 1.5, 6.2 }, { 40, 2.5, 44 }, { 0.25, 0.6, 3.1 } };
    const double zs[] = { -30, -2, -0.7, 0.4, 0.8, 0.95, 0.995 };
    for (size_t i = 0; i < sizeof P / sizeof *P; i++)
        for (size_t j = 0; j < sizeof zs / sizeof *zs; j++) {
            double a = P[i][0], b = P[i][1], c = P[i][2], z = zs[j];
            double f0 = seg__clv_hyp2f1(a, b, c - 1, z), f1 = seg__clv_hyp2f1(a, b, c, z),
                   f2 = seg__clv_hyp2f1(a, b, c + 1, z);
            double t0 = c * (c - 1) * (z - 1) * f0, t1 = c * (c - 1 - (2 * c - a - b - 1) * z) * f1,
                   t2 = (c - a) * (c - b) * z * f2;
            double scale = fabs(t0) + fabs(t1) + fabs(t2);
            ck_assert_msg(isfinite(scale) && fabs(t0 + t1 + t2) <= 1e-11 * scale,
                          "a=%g b=%g c=%g z=%g: residual %g of %g", a, b, c, z, t0 + t1 + t2, scale);
        }
}
END_TEST

START_TEST(quadrature_rules)
{
    const seg__clv_gl *rules[2] = { &seg__clv_gl16, &seg__clv_gl32 };
    for (int r = 0; r < 2; r++) {
        const seg__clv_gl *gl = rules[r];
        for (int k = 0; k < 2 * gl->n; k += 2) { /* exact for degree < 2n */
            double s = 0;
            for (int i = 0; i < gl->n / 2; i++)
                s += 2 * gl->w[i] * pow(gl->x[i], k);
            CLOSE(s, 2.0 / (k + 1), 1e-14, "Gauss-Legendre moment");
        }
    }
}
END_TEST

typedef struct beta_ctx { double a, b; } beta_ctx;
static double beta_fn(void *p, double t, double lt, double l1t)
{
    const beta_ctx *c = p;
    (void)t;
    return (c->a - 1) * lt + (c->b - 1) * l1t;
}

START_TEST(double_exponential_rule)
{
    const double ab[][2] = { { 0.1, 0.1 }, { 0.5, 3 }, { 3, 0.05 }, { 2, 2 }, { 0.01, 5 } };
    for (size_t i = 0; i < sizeof ab / sizeof *ab; i++) {
        beta_ctx c = { ab[i][0], ab[i][1] };
        double want = exp((double)(lgammal(c.a) + lgammal(c.b) - lgammal(c.a + c.b)));
        RELCLOSE(seg__clv_de01(beta_fn, &c, c.a - 1, c.b - 1), want, 1e-13, "Beta(a,b)");
    }
}
END_TEST

/* ------------------------------------------------------ Pareto/NBD A0 */

double seg__clv_pnbd_log_a0_method(const double *p, double x, double tx, double T,
                                   double *grad, int method);

typedef struct a0_ref { long double r, al, s, be, x; } a0_ref;
static long double a0_f(long double u, void *p)
{
    const a0_ref *c = p;
    /* scaled by the value at 0 to stay in range */
    return expl(-(c->r + c->x) * logl((c->al + u) / c->al) - (c->s + 1) * logl((c->be + u) / c->be));
}

/* log int_tx^T (al+u)^-(r+x) (be+u)^-(s+1) du, by adaptive Simpson on a
 * log-spaced grid (the integrand falls fast for large x) */
static double ref_log_a0(const double *p, double x, double tx, double T)
{
    a0_ref c = { p[0], p[1], p[2], p[3], x };
    long double s = 0, lo = tx;
    for (int k = 1; k <= 40; k++) {
        long double hi = tx + (T - tx) * (expl(k * 0.25L) - 1) / (expl(10.0L) - 1);
        s += integrate(a0_f, &c, lo, hi, 2, 1e-15L);
        lo = hi;
    }
    return (double)(logl(s) - (c.r + c.x) * logl(c.al) - (c.s + 1) * logl(c.be));
}

START_TEST(pnbd_a0_against_integration)
{
    const double cases[][7] = {
        /* r, alpha, s, beta, x, t_x, T */
        { 0.553, 10.578, 0.606, 11.669, 0, 0, 38.86 },     /* z small, both sides */
        { 0.553, 10.578, 0.606, 11.669, 26, 30.86, 31 },
        { 0.553, 11.669, 0.606, 10.578, 5, 2, 38 },         /* alpha > beta */
        { 0.9, 300.0, 1.3, 2.0, 3, 1, 80 },                 /* z near 1: quadrature */
        { 0.9, 2.0, 1.3, 300.0, 3, 1, 80 },
        { 2.5, 1.0, 0.2, 50.0, 120, 100, 400 },             /* large x: steep */
        { 0.3, 7.0, 3.0, 7.0, 1, 0.5, 60 },                 /* alpha == beta */
        { 0.55, 10.58, 0.61, 11.67, 500, 1000, 2000 },      /* far beyond overflow */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const double *c = cases[i];
        double want = ref_log_a0(c, c[4], c[5], c[6]);
        double got = seg__clv_pnbd_log_a0(c, c[4], c[5], c[6], NULL);
        ck_assert_msg(fabs(got - want) <= 1e-11 * fmax(1, fabs(want)),
                      "case %zu: log A0 %.15g, want %.15g", i, got, want);
        double q = seg__clv_pnbd_log_a0_method(c, c[4], c[5], c[6], NULL, 2);
        ck_assert_msg(fabs(q - want) <= 1e-11 * fmax(1, fabs(want)),
                      "case %zu: quadrature %.15g, want %.15g", i, q, want);
    }
    const double p[4] = { 0.55, 10.58, 0.61, 11.67 };
    ck_assert(seg__clv_pnbd_log_a0(p, 132, 200, 200, NULL) == -INFINITY);
}
END_TEST

START_TEST(pnbd_a0_series_and_quadrature_agree)
{
    /* where both apply, with derivatives */
    uint64_t st = 12345;
    for (int k = 0; k < 200; k++) {
        double p[4];
        for (int i = 0; i < 4; i++)
            p[i] = exp(-2.0 + 4.0 * (double)(tu_rand(&st) % 10000) / 10000);
        double ratio = 1.0 + 1.2 * (double)(tu_rand(&st) % 1000) / 1000;
        if (k % 2)
            p[1] = p[3] * ratio;
        else
            p[3] = p[1] * ratio;
        double x = (double)(tu_rand(&st) % 40), T = 1 + (double)(tu_rand(&st) % 1000) / 10;
        double tx = x ? T * (double)(tu_rand(&st) % 1000) / 1000 : 0;
        double gs[4], gq[4];
        double s = seg__clv_pnbd_log_a0_method(p, x, tx, T, gs, 1);
        double q = seg__clv_pnbd_log_a0_method(p, x, tx, T, gq, 2);
        if (tx >= T)
            continue;
        ck_assert_msg(fabs(s - q) <= 1e-12 * fmax(1, fabs(s)), "k=%d: series %.16g quad %.16g", k, s, q);
        for (int i = 0; i < 4; i++)
            ck_assert_msg(fabs(gs[i] - gq[i]) <= 1e-9 * fmax(1, fabs(gs[i])),
                          "k=%d grad %d: %.16g vs %.16g", k, i, gs[i], gq[i]);
    }
}
END_TEST

START_TEST(pnbd_a0_gradient)
{
    const double cases[][7] = { { 0.553, 10.578, 0.606, 11.669, 2, 30.43, 38.86 },
                                { 0.9, 300.0, 1.3, 2.0, 3, 1, 80 },
                                { 0.9, 2.0, 1.3, 300.0, 0, 0, 80 } };
    for (size_t i = 0; i < 3; i++) {
        const double *c = cases[i];
        double g[4];
        seg__clv_pnbd_log_a0(c, c[4], c[5], c[6], g);
        for (int j = 0; j < 4; j++) {
            double q[4] = { c[0], c[1], c[2], c[3] }, h = 1e-5 * c[j];
            q[j] = c[j] + h;
            double fp = seg__clv_pnbd_log_a0(q, c[4], c[5], c[6], NULL);
            q[j] = c[j] - h;
            double fm = seg__clv_pnbd_log_a0(q, c[4], c[5], c[6], NULL);
            CLOSE(g[j], (fp - fm) / (2 * h), 1e-6, "d log A0");
        }
    }
}
END_TEST

/* -------------------------------------------------------- likelihoods */

/* BG/NBD and MBG/NBD likelihood from the model's definition, integrated
 * numerically over the dropout probability p (the purchase rate lambda
 * integrated numerically too):
 *   L = E[(1-p)^(x+o) lambda^x e^{-lambda T}] + [x+o > 0] E[p (1-p)^(x+o-1) lambda^x e^{-lambda t_x}] */
typedef struct bgdef { long double r, al, a, b, x, tx, T; int o, part; } bgdef;

static long double gamma_pdf(long double l, long double r, long double al)
{
    return expl(r * logl(al) + (r - 1) * logl(l) - al * l - lgammal(r));
}

static long double bg_lambda_f(long double v, void *c)
{
    /* lambda = e^v: the integrand spans many orders of magnitude */
    const bgdef *d = c;
    long double l = expl(v), t = d->part ? d->tx : d->T;
    return gamma_pdf(l, d->r, d->al) * l * powl(l, d->x) * expl(-l * t);
}

static long double bg_p_f(long double u, void *c)
{
    bgdef *d = c;
    /* p = u^k with k = 1/a removes the p^(a-1) singularity at 0 */
    long double k = 1 / d->a, p = powl(u, k);
    if (p <= 0 || p >= 1)
        return 0;
    /* p^(a-1) dp = u^(1-k) k u^(k-1) du = k du */
    long double dens = expl(lgammal(d->a + d->b) - lgammal(d->a) - lgammal(d->b)) *
                       powl(1 - p, d->b - 1) * k;
    long double w = d->part ? p * powl(1 - p, d->x + d->o - 1) : powl(1 - p, d->x + d->o);
    return dens * w;
}

static double bg_ll_def(int o, const double *P, double x, double tx, double T)
{
    bgdef d = { P[0], P[1], P[2], P[3], x, tx, T, o, 0 };
    long double total = 0;
    for (int part = 0; part < 2; part++) {
        if (part == 1 && x + o == 0)
            break;
        d.part = part;
        /* the two integrals separate: lambda and p are independent */
        long double li = integrate(bg_lambda_f, &d, -250, 8, 128, 1e-15L);
        long double pi = integrate(bg_p_f, &d, 0, 1, 64, 1e-15L);
        total += li * pi;
    }
    return (double)logl(total);
}

START_TEST(bg_likelihood_from_definition)
{
    /* b >= 1 keeps the reference integrand bounded at p = 1 */
    const double params[][4] = { { 0.243, 4.414, 0.793, 2.426 }, { 2.0, 0.5, 1.7, 1.4 } };
    const double data[][3] = { { 0, 0, 38.86 }, { 2, 30.43, 38.86 }, { 1, 0.5, 20 }, { 14, 10, 12 } };
    for (int o = 0; o < 2; o++)
        for (size_t i = 0; i < 2; i++)
            for (size_t j = 0; j < 4; j++) {
                const double *d = data[j];
                double want = bg_ll_def(o, params[i], d[0], d[1], d[2]);
                double got = seg__clv_ll1(o ? SEG_CLV_MBGNBD : SEG_CLV_BGNBD, params[i], d[0], d[1], d[2], NULL);
                ck_assert_msg(fabs(got - want) <= 1e-9 * fmax(1, fabs(want)),
                              "o=%d params %zu data %zu: %.14g vs %.14g", o, i, j, got, want);
            }
}
END_TEST

START_TEST(pnbd_likelihood_from_definition)
{
    /* L = C [ (al+T)^-(r+x) (be+T)^-s + s A0 ],  C = Gamma(r+x) al^r be^s / Gamma(r) */
    const double P[4] = { 0.553, 10.578, 0.606, 11.669 };
    const double data[][3] = { { 0, 0, 38.86 }, { 2, 30.43, 38.86 }, { 26, 30.86, 31 }, { 3, 3, 3 } };
    for (size_t j = 0; j < 4; j++) {
        const double *d = data[j];
        long double C = lgammal(P[0] + d[0]) - lgammal(P[0]) + P[0] * logl(P[1]) + P[2] * logl(P[3]);
        long double t1 = expl(-(P[0] + d[0]) * logl(P[1] + d[2]) - P[2] * logl(P[3] + d[2]));
        long double a0 = d[1] < d[2] ? expl(ref_log_a0(P, d[0], d[1], d[2])) : 0;
        double want = (double)(C + logl(t1 + P[2] * a0));
        CLOSE(seg__clv_ll1(SEG_CLV_PARETO, P, d[0], d[1], d[2], NULL), want, 1e-11, "Pareto LL");
    }
}
END_TEST

static void fd_check(uint32_t kind, const double *p, double x, double tx, double T)
{
    double g[4];
    if (kind)
        seg__clv_ll1(kind, p, x, tx, T, g);
    else
        seg__clv_gg_ll1(p, x, tx, g);
    for (int j = 0; j < (kind ? 4 : 3); j++) {
        double q[4] = { p[0], p[1], p[2], p[3] }, h = 1e-5 * p[j];
        q[j] = p[j] + h;
        double fp = kind ? seg__clv_ll1(kind, q, x, tx, T, NULL) : seg__clv_gg_ll1(q, x, tx, NULL);
        q[j] = p[j] - h;
        double fm = kind ? seg__clv_ll1(kind, q, x, tx, T, NULL) : seg__clv_gg_ll1(q, x, tx, NULL);
        double num = (fp - fm) / (2 * h);
        ck_assert_msg(fabs(g[j] - num) <= 1e-6 * fmax(1, fabs(num)),
                      "kind %u param %d at (%g,%g,%g): analytic %.12g, numeric %.12g", kind, j, x,
                      tx, T, g[j], num);
    }
}

START_TEST(gradients_match_finite_differences)
{
    const double bg[4] = { 0.243, 4.414, 0.793, 2.426 }, bg1[4] = { 3.0, 0.2, 1.0, 40.0 };
    const double pn[4] = { 0.553, 10.578, 0.606, 11.669 }, pn1[4] = { 1.5, 200.0, 2.2, 3.0 };
    const double gg[4] = { 6.25, 3.74, 15.44, 0 };
    const double data[][3] = { { 0, 0, 38.86 }, { 2, 30.43, 38.86 }, { 26, 30.86, 31 },
                               { 1, 0, 5 }, { 300, 290, 300 } };
    for (size_t j = 0; j < 5; j++) {
        const double *d = data[j];
        fd_check(SEG_CLV_BGNBD, bg, d[0], d[1], d[2]);
        fd_check(SEG_CLV_BGNBD, bg1, d[0], d[1], d[2]);
        fd_check(SEG_CLV_MBGNBD, bg, d[0], d[1], d[2]);
        fd_check(SEG_CLV_MBGNBD, bg1, d[0], d[1], d[2]);
        fd_check(SEG_CLV_PARETO, pn, d[0], d[1], d[2]);
        fd_check(SEG_CLV_PARETO, pn1, d[0], d[1], d[2]);
        if (d[0] > 0)
            fd_check(0, gg, d[0], 3.5 + j, 0);
    }
}
END_TEST

/* Gamma-Gamma density of a mean spend, from the definition: the mean of x
 * Gamma(p, nu) spends is Gamma(p x, nu x); nu ~ Gamma(q, gamma) integrated out */
typedef struct ggdef { long double p, q, g, x, m; } ggdef;
static long double gg_nu_f(long double v, void *c)
{
    const ggdef *d = c;
    long double nu = expl(v), px = d->p * d->x, rate = nu * d->x;
    long double dens_m = expl(px * logl(rate) + (px - 1) * logl(d->m) - rate * d->m - lgammal(px));
    return dens_m * gamma_pdf(nu, d->q, d->g) * nu;
}

START_TEST(gamma_gamma_from_definition)
{
    const double G[3] = { 6.25, 3.74, 15.44 };
    const double cases[][2] = { { 1, 22.3 }, { 2, 35.0 }, { 7, 12.5 }, { 25, 80.1 } };
    for (size_t i = 0; i < 4; i++) {
        ggdef d = { G[0], G[1], G[2], cases[i][0], cases[i][1] };
        double want = (double)logl(integrate(gg_nu_f, &d, -12, 6, 64, 1e-15L));
        CLOSE(seg__clv_gg_ll1(G, cases[i][0], cases[i][1], NULL), want, 1e-10, "Gamma-Gamma LL");
    }
}
END_TEST

static void fill_groups_random(uint64_t seed, size_t n, double *x, double *tx, double *T,
                               double *m, double *w)
{
    uint64_t st = seed;
    for (size_t i = 0; i < n; i++) {
        x[i] = (double)(tu_rand(&st) % 6);
        T[i] = (double)(1 + tu_rand(&st) % 12);
        tx[i] = x[i] ? (double)(tu_rand(&st) % ((uint64_t)T[i] + 1)) : 0.0;
        m[i] = 5.0 + (double)(tu_rand(&st) % 4);
        w[i] = (double)(1 + tu_rand(&st) % 3);
    }
}

START_TEST(grouped_likelihood_is_the_sum)
{
    enum { N = 400 };
    static double x[N], tx[N], T[N], m[N], w[N];
    fill_groups_random(7, N, x, tx, T, m, w);
    seg_clv_columns c = SEG_CLV_COLUMNS_INIT;
    c.n = N;
    c.frequency = x;
    c.recency = tx;
    c.age = T;
    c.monetary = m;
    c.weight = w;
    const double P[3][4] = { { 0.243, 4.414, 0.793, 2.426 }, { 0.6, 2.5, 0.9, 1.6 },
                             { 0.553, 10.578, 0.606, 11.669 } };
    const double G[4] = { 6.25, 3.74, 15.44, 0 };
    /* Pareto/NBD also where its series is long (z up to 0.8) and where the
     * quadrature takes over (z near 1), both ways round */
    const double Q[4][4] = { { 0.9, 20.0, 1.3, 4.0 }, { 0.9, 4.0, 1.3, 20.0 }, { 0.9, 300.0, 1.3, 2.0 },
                             { 0.9, 2.0, 1.3, 300.0 } };
    for (uint32_t kk = 0; kk <= 7; kk++) {
        uint32_t kind = kk > 3 ? SEG_CLV_PARETO : kk;
        seg_clv_model *mod = new_model(kind ? kind : SEG_CLV_BGNBD, SEG_CLV_WEEK, NULL);
        seg__clv_groups g;
        uint64_t excl;
        ck_assert_int_eq(seg__clv_group(mod, &c, kind == 0, &g, &excl), SEG_OK);
        ck_assert_uint_lt(g.n, N); /* duplicates were merged */
        const double *p = kk > 3 ? Q[kk - 4] : kind ? P[kind - 1] : G;
        double grad[4], ll = seg__clv_ll_groups(kind, p, &g, grad);
        long double want = 0, wg[4] = { 0, 0, 0, 0 };
        for (size_t i = 0; i < N; i++) {
            double gi[4] = { 0, 0, 0, 0 };
            double li = kind ? seg__clv_ll1(kind, p, x[i], tx[i], T[i], gi)
                             : (x[i] > 0 ? seg__clv_gg_ll1(p, x[i], m[i], gi) : 0.0);
            want += w[i] * li;
            for (int j = 0; j < 4; j++)
                wg[j] += w[i] * gi[j] * p[j]; /* d / d log(param) */
        }
        CLOSE(ll, (double)want, 1e-12, "grouped LL");
        for (int j = 0; j < (kind ? 4 : 3); j++)
            CLOSE(grad[j], (double)wg[j], 1e-10, "grouped gradient");
        seg__clv_groups_free(&mod->alloc, &g);
        seg_clv_model_free(mod);
    }
}
END_TEST

/* -------------------------------------------------------- predictions */

/* E[Y(t) | alive] for BG/NBD-type models from the definition: given the
 * dropout probability p and rate lambda, a customer alive at T buys at rate
 * lambda until dropping out after a purchase with probability p, so
 * E = (1 - e^{-lambda p t}) / p; averaged over lambda ~ Gamma(k, c) this is
 * (1 - (c / (c + p t))^k) / p, then over p ~ Beta(a, bp) numerically. */
typedef struct ey_ref { long double a, bp, k, c, t; } ey_ref;
static long double ey_f(long double u, void *ctx)
{
    const ey_ref *e = ctx;
    long double kk = 1 / e->a, p = powl(u, kk); /* p = u^(1/a) */
    if (p <= 0)
        return kk * e->k * e->t / e->c * expl(lgammal(e->a + e->bp) - lgammal(e->a) - lgammal(e->bp));
    if (p >= 1)
        return 0;
    long double f = -expm1l(-e->k * log1pl(p * e->t / e->c)) / p;
    return kk * powl(1 - p, e->bp - 1) * f * expl(lgammal(e->a + e->bp) - lgammal(e->a) - lgammal(e->bp));
}

START_TEST(bg_expected_against_definition)
{
    /* a < 1, a = 1 (the removable singularity of the series), a > 1 */
    const double P[][4] = { { 0.243, 4.414, 0.793, 2.426 }, { 0.6, 2.0, 1.0, 3.0 },
                            { 1.5, 10.0, 2.5, 1.2 } };
    /* x, T, t: z = t / (alpha + T + t) from 0.1 to 0.999 */
    const double cases[][3] = { { 0, 0, 0.5 }, { 2, 38.86, 39 }, { 26, 31, 52 },
                                { 0, 0, 500 }, { 3, 20, 2000 }, { 40, 60, 300 } };
    for (uint32_t kind = SEG_CLV_BGNBD; kind <= SEG_CLV_MBGNBD; kind++)
        for (size_t i = 0; i < sizeof P / sizeof *P; i++)
            for (size_t j = 0; j < sizeof cases / sizeof *cases; j++) {
                if ((i + j + kind) % 2) /* half of the grid each time is enough */
                    continue;
                const double *p = P[i], *c = cases[j];
                ey_ref e = { p[2], p[3] + c[0] + (kind == SEG_CLV_MBGNBD), p[0] + c[0], p[1] + c[1], c[2] };
                double want = (double)integrate(ey_f, &e, 0, 1, 32, 1e-14L);
                double got = seg__clv_expected_alive(kind, p, c[0], c[1], c[2]);
                ck_assert_msg(fabs(got - want) <= 1e-10 * fmax(1, want),
                              "kind %u params %zu case %zu: %.15g, want %.15g", kind, i, j, got, want);
                /* the quadrature path by itself, whatever z */
                double q = seg__clv_bg_expected_quad(e.a, e.bp, e.k, c[2] / e.c);
                ck_assert_msg(fabs(q - want) <= 1e-10 * fmax(1, want), "quad: %.15g vs %.15g", q, want);
            }
    /* large x, where the posterior of p is narrow: the series (z <= 0.9)
     * against the quadrature */
    for (size_t i = 0; i < sizeof P / sizeof *P; i++)
        for (double x = 50; x <= 5000; x *= 10) {
            const double *p = P[i];
            double T = 2 * x, t = 0.5 * T;
            double s = seg__clv_expected_alive(SEG_CLV_BGNBD, p, x, T, t);
            double q = seg__clv_bg_expected_quad(p[2], p[3] + x, p[0] + x, t / (p[1] + T));
            RELCLOSE(s, q, 1e-11, "large x: series vs quadrature");
        }
}
END_TEST

/* P(alive) from the definition: the share of the likelihood of "alive at T" */
START_TEST(p_alive_from_definition)
{
    const double P[4] = { 0.243, 4.414, 0.793, 2.426 };
    const double data[][3] = { { 2, 30.43, 38.86 }, { 26, 30.86, 31 }, { 10, 20, 39 }, { 1, 0, 9 } };
    for (int o = 0; o < 2; o++)
        for (size_t j = 0; j < 4; j++) {
            const double *d = data[j];
            bgdef b = { P[0], P[1], P[2], P[3], d[0], d[1], d[2], o, 0 };
            long double alive = integrate(bg_lambda_f, &b, -250, 8, 128, 1e-15L) *
                                integrate(bg_p_f, &b, 0, 1, 64, 1e-15L);
            double want = (double)(alive / expl(bg_ll_def(o, P, d[0], d[1], d[2])));
            double got = exp(seg__clv_log_p_alive(o ? SEG_CLV_MBGNBD : SEG_CLV_BGNBD, P, d[0], d[1], d[2]));
            CLOSE(got, want, 1e-9, "BG P(alive)");
        }
    /* Pareto/NBD: the same share, with the terms of the likelihood */
    const double Q[4] = { 0.553, 10.578, 0.606, 11.669 };
    for (size_t j = 0; j < 4; j++) {
        const double *d = data[j];
        long double t1 = expl(-(Q[0] + d[0]) * logl(Q[1] + d[2]) - Q[2] * logl(Q[3] + d[2]));
        long double a0 = expl(ref_log_a0(Q, d[0], d[1], d[2]));
        double want = (double)(t1 / (t1 + Q[2] * a0));
        CLOSE(exp(seg__clv_log_p_alive(SEG_CLV_PARETO, Q, d[0], d[1], d[2])), want, 1e-10, "Pareto P(alive)");
    }
}
END_TEST

/* Pareto/NBD: E[Y(t) | alive] = (k/c) E_mu[(1 - e^{-mu t}) / mu], mu ~ Gamma(s, d) */
typedef struct pey { long double s, d, t; } pey;
static long double pey_f(long double v, void *c)
{
    const pey *e = c;
    long double mu = expl(v);
    return gamma_pdf(mu, e->s, e->d) * mu * (-expm1l(-mu * e->t)) / mu;
}

START_TEST(pnbd_expected_against_definition)
{
    const double P[][4] = { { 0.553, 10.578, 0.606, 11.669 }, { 2.0, 3.0, 1.0, 5.0 }, { 0.5, 1.0, 3.0, 80.0 } };
    const double cases[][3] = { { 0, 0, 1 }, { 2, 38.86, 52 }, { 132, 200, 10 }, { 5, 10, 1000 } };
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 4; j++) {
            const double *p = P[i], *c = cases[j];
            pey e = { p[2], p[3] + c[1], c[2] };
            long double want = (p[0] + c[0]) / (p[1] + c[1]) * integrate(pey_f, &e, -60, 12, 128, 1e-15L);
            RELCLOSE(seg__clv_expected_alive(SEG_CLV_PARETO, p, c[0], c[1], c[2]), (double)want, 1e-10,
                     "Pareto E[Y|alive]");
        }
}
END_TEST

START_TEST(probabilities_sum_to_one_and_to_the_mean)
{
    const double P[3][4] = { { 0.243, 4.414, 0.793, 2.426 }, { 0.525, 6.183, 0.891, 1.614 },
                             { 0.553, 10.578, 0.606, 11.669 } };
    const double data[][4] = { { 0, 0, 38.86, 52 }, { 2, 30.43, 38.86, 39 }, { 7, 20, 30, 10 },
                               { 0, 0, 0, 78 } };
    for (uint32_t kind = 1; kind <= 3; kind++)
        for (size_t j = 0; j < 4; j++) {
            const double *d = data[j];
            double sum = 0, mean = 0;
            for (uint32_t n = 0; n < 400; n++) {
                double pn = seg__clv_prob_n(kind, P[kind - 1], d[0], d[1], d[2], d[3], n);
                ck_assert_msg(pn >= 0 && pn <= 1, "P(%u) = %g", n, pn);
                sum += pn;
                mean += n * pn;
            }
            double pa = exp(seg__clv_log_p_alive(kind, P[kind - 1], d[0], d[1], d[2]));
            double ey = pa * seg__clv_expected_alive(kind, P[kind - 1], d[0], d[2], d[3]);
            CLOSE(sum, 1.0, 1e-10, "sum of P(n)");
            CLOSE(mean, ey, 1e-9, "mean of P(n)");
        }
}
END_TEST

START_TEST(discounting_against_a_fine_sum)
{
    const double P[3][4] = { { 0.243, 4.414, 0.793, 2.426 }, { 0.525, 6.183, 0.891, 1.614 },
                             { 0.553, 10.578, 0.606, 11.669 } };
    const double cases[][4] = { /* x, T, H, delta */ { 0, 38.86, 52, 0.002 }, { 3, 20, 104, 0.05 },
                                { 0, 0, 520, 0.01 }, { 12, 39, 26, 0.3 } };
    for (uint32_t kind = 1; kind <= 3; kind++)
        for (size_t j = 0; j < 4; j++) {
            const double *c = cases[j];
            /* Riemann-Stieltjes sum of e^{-delta u} dE(u) on a fine grid */
            enum { N = 20000 };
            long double s = 0, prev = 0;
            for (int i = 1; i <= N; i++) {
                double u = c[2] * i / N, um = c[2] * (i - 0.5) / N;
                double e = seg__clv_expected_alive(kind, P[kind - 1], c[0], c[1], u);
                s += expl(-c[3] * um) * (e - prev);
                prev = e;
            }
            double got = seg__clv_discounted_alive(kind, P[kind - 1], c[0], c[1], c[2], c[3]);
            RELCLOSE(got, (double)s, 1e-7, "discounted purchases");
            ck_assert(got < prev); /* discounting lowers the value */
        }
}
END_TEST

START_TEST(public_scoring_calls)
{
    const double P[4] = { 0.243, 4.414, 0.793, 2.426 }, G[3] = { 6.25, 3.74, 15.44 };
    seg_clv_model *m = new_model(SEG_CLV_BGNBD, SEG_CLV_WEEK, P);
    double v;
    MOK(m, seg_clv_p_alive(&v, m, 0, 0, 10));
    ck_assert_double_eq(v, 1.0); /* BG/NBD: no dropout before a repeat purchase */
    MOK(m, seg_clv_p_alive(&v, m, 2, 30.43, 38.86));
    CLOSE(v, exp(seg__clv_log_p_alive(SEG_CLV_BGNBD, P, 2, 30.43, 38.86)), 1e-15, "p_alive");
    MOK(m, seg_clv_expected_purchases(&v, m, 0, 0, 0, 0));
    ck_assert_double_eq(v, 0.0);
    /* spend: the population mean for a new customer */
    MRC(m, seg_clv_expected_spend(&v, m, 0, 0), SEG_ENOTFOUND);
    MOK(m, seg_clv_model_set_spend_params(m, G, 3));
    MOK(m, seg_clv_expected_spend(&v, m, 0, 0));
    RELCLOSE(v, 6.25 * 15.44 / 2.74, 1e-14, "population mean");
    MOK(m, seg_clv_expected_spend(&v, m, 2, 22.345));
    RELCLOSE(v, 6.25 * (15.44 + 2 * 22.345) / (12.5 + 2.74), 1e-14, "E[M|x,m]");
    /* the posterior mean by integration over nu: E[p / nu | x, m] */
    {
        ggdef d = { G[0], G[1], G[2], 2, 22.345 };
        long double den = integrate(gg_nu_f, &d, -12, 6, 64, 1e-15L), num = 0;
        for (int k = 0; k < 20000; k++) { /* midpoint rule in v = log nu */
            long double v0 = -12 + 18.0L * (k + 0.5L) / 20000;
            num += gg_nu_f(v0, &d) * G[0] / expl(v0) * 18.0L / 20000;
        }
        RELCLOSE(v, (double)(num / den), 1e-8, "E[M] by integration");
    }
    /* value: margin x spend x P(alive) x discounted purchases */
    seg_clv_value_options o = SEG_CLV_VALUE_OPTIONS_INIT;
    o.horizon = 52;
    o.discount_rate = 0.1;
    o.discount_period = 52;
    o.margin = 0.3;
    MOK(m, seg_clv_value(&v, m, 2, 30.43, 38.86, 22.345, &o));
    double pa = exp(seg__clv_log_p_alive(SEG_CLV_BGNBD, P, 2, 30.43, 38.86));
    double dis = seg__clv_discounted_alive(SEG_CLV_BGNBD, P, 2, 38.86, 52, log(1.1) / 52);
    RELCLOSE(v, 0.3 * 6.25 * (15.44 + 2 * 22.345) / (12.5 + 2.74) * pa * dis, 1e-14, "clv");
    double e52;
    MOK(m, seg_clv_expected_purchases(&e52, m, 2, 30.43, 38.86, 52));
    ck_assert(dis * pa < e52);
    /* the public P(n) is the internal one; P(0..) sums to 1 and its mean is
     * the expected purchases */
    double psum = 0, pmean = 0;
    for (uint32_t n = 0; n < 400; n++) {
        double pn;
        MOK(m, seg_clv_purchase_probability(&pn, m, 2, 30.43, 38.86, 52, n));
        RELCLOSE(pn, seg__clv_prob_n(SEG_CLV_BGNBD, P, 2, 30.43, 38.86, 52, n), 1e-12, "P(n)");
        psum += pn;
        pmean += n * pn;
    }
    CLOSE(psum, 1.0, 1e-9, "sum of P(n)");
    RELCLOSE(pmean, e52, 1e-8, "mean of P(n)");
    MRC(m, seg_clv_purchase_probability(&v, m, 2, 30.43, 38.86, -1, 0), SEG_EINVAL);
    /* bad input */
    MRC(m, seg_clv_p_alive(&v, m, 1.5, 0, 3), SEG_EINVAL);
    TU_STR_HAS(seg_clv_model_errmsg(m), "frequency");
    MRC(m, seg_clv_p_alive(&v, m, 2, 5, 3), SEG_EINVAL);
    TU_STR_HAS(seg_clv_model_errmsg(m), "recency");
    MRC(m, seg_clv_p_alive(&v, m, 0, 1, 3), SEG_EINVAL);
    MRC(m, seg_clv_p_alive(&v, m, 1, 1, NAN), SEG_EINVAL);
    MRC(m, seg_clv_expected_purchases(&v, m, 1, 1, 3, -1), SEG_EINVAL);
    MRC(m, seg_clv_p_alive(NULL, m, 1, 1, 3), SEG_EINVAL);
    o.horizon = 0;
    MRC(m, seg_clv_value(&v, m, 2, 30.43, 38.86, 22.345, &o), SEG_EINVAL);
    TU_STR_HAS(seg_clv_model_errmsg(m), "horizon");
    o.horizon = 52;
    o.discount_period = 0;
    MRC(m, seg_clv_value(&v, m, 2, 30.43, 38.86, 22.345, &o), SEG_EINVAL);
    o.discount_period = 1;
    o.struct_size = 8;
    MRC(m, seg_clv_value(&v, m, 2, 30.43, 38.86, 22.345, &o), SEG_EVERSION);
    MRC(m, seg_clv_value(&v, m, 2, 30.43, 38.86, 22.345, NULL), SEG_EINVAL);
    /* q <= 1: the population mean is infinite */
    const double G1[3] = { 2, 0.8, 10 };
    MOK(m, seg_clv_model_set_spend_params(m, G1, 3));
    MRC(m, seg_clv_expected_spend(&v, m, 0, 0), SEG_ERANGE);
    MOK(m, seg_clv_expected_spend(&v, m, 3, 10)); /* p x + q > 1: finite */
    seg_clv_model_free(m);
    ck_assert_int_eq(seg_clv_p_alive(&v, NULL, 0, 0, 0), SEG_EINVAL);
}
END_TEST

START_TEST(extreme_summaries_stay_finite)
{
    const double P[3][4] = { { 0.243, 4.414, 0.793, 2.426 }, { 0.525, 6.183, 0.891, 1.614 },
                             { 0.55, 10.58, 0.61, 11.67 } };
    const double data[][3] = { { 132, 200, 200 }, { 133, 200, 200 }, { 5000, 9000, 10000 },
                               { 1e6, 1e6, 1e6 }, { 1, 0, 1e6 }, { 0, 0, 1e9 }, { 3, 1e-9, 2e-9 } };
    for (uint32_t kind = 1; kind <= 3; kind++)
        for (size_t j = 0; j < sizeof data / sizeof *data; j++) {
            const double *d = data[j];
            double g[4];
            double ll = seg__clv_ll1(kind, P[kind - 1], d[0], d[1], d[2], g);
            double la = seg__clv_log_p_alive(kind, P[kind - 1], d[0], d[1], d[2]);
            double e = seg__clv_expected_alive(kind, P[kind - 1], d[0], d[2], 52);
            double dis = seg__clv_discounted_alive(kind, P[kind - 1], d[0], d[2], 52, 0.01);
            ck_assert_msg(isfinite(ll) && isfinite(g[0]) && isfinite(g[1]) && isfinite(g[2]) &&
                              isfinite(g[3]) && la <= 0 && isfinite(la) && isfinite(e) && e >= 0 &&
                              isfinite(dis) && dis <= e,
                          "kind %u data %zu: ll %g la %g e %g dis %g", kind, j, ll, la, e, dis);
        }
}
END_TEST

START_TEST(predict_columns_match_single_calls)
{
    enum { N = 300 };
    static double x[N], tx[N], T[N], m[N], w[N];
    static double pa[N], ey[N], sp[N], cl[N];
    fill_groups_random(99, N, x, tx, T, m, w);
    const double P[3][4] = { { 0.243, 4.414, 0.793, 2.426 }, { 0.525, 6.183, 0.891, 1.614 },
                             { 0.553, 10.578, 0.606, 11.669 } };
    const double G[3] = { 6.25, 3.74, 15.44 };
    seg_clv_columns c = SEG_CLV_COLUMNS_INIT;
    c.n = N;
    c.frequency = x;
    c.recency = tx;
    c.age = T;
    c.monetary = m;
    seg_clv_value_options o = SEG_CLV_VALUE_OPTIONS_INIT;
    o.horizon = 26;
    o.discount_rate = 0.01;
    for (uint32_t kind = 1; kind <= 3; kind++) {
        seg_clv_model *mod = new_model(kind, SEG_CLV_WEEK, P[kind - 1]);
        MRC(mod, seg_clv_predict(pa, ey, sp, cl, mod, &c, &o), SEG_ENOTFOUND); /* no spend model */
        MOK(mod, seg_clv_predict(pa, ey, NULL, NULL, mod, &c, &o));
        MOK(mod, seg_clv_model_set_spend_params(mod, G, 3));
        MOK(mod, seg_clv_predict(pa, ey, sp, cl, mod, &c, &o));
        for (size_t i = 0; i < N; i++) {
            double v;
            MOK(mod, seg_clv_p_alive(&v, mod, x[i], tx[i], T[i]));
            ck_assert_double_eq(pa[i], v);
            MOK(mod, seg_clv_expected_purchases(&v, mod, x[i], tx[i], T[i], 26));
            CLOSE(ey[i], v, 1e-15, "expected");
            MOK(mod, seg_clv_expected_spend(&v, mod, x[i], m[i]));
            ck_assert_double_eq(sp[i], v);
            MOK(mod, seg_clv_value(&v, mod, x[i], tx[i], T[i], m[i], &o));
            CLOSE(cl[i], v, 1e-15, "clv");
        }
        /* a bad row is named */
        double keep = tx[17];
        tx[17] = T[17] + 1;
        MRC(mod, seg_clv_predict(pa, NULL, NULL, NULL, mod, &c, &o), SEG_EINVAL);
        TU_STR_HAS(seg_clv_model_errmsg(mod), "row 17");
        tx[17] = keep;
        seg_clv_model_free(mod);
    }
}
END_TEST

/* ---------------------------------------------------------- summaries */

static seg_db *db;

static void db_setup(void)
{
    db = NULL;
    ck_assert_int_eq(seg_db_open(&db, ":memory:", NULL), SEG_OK);
}

static void db_teardown(void)
{
    seg_db_close(db);
    db = NULL;
}

typedef struct sum_list {
    size_t n;
    char id[16][32];
    seg_clv_summary s[16];
} sum_list;

static int collect(const seg_clv_summary *s, void *p)
{
    sum_list *l = p;
    ck_assert_uint_lt(l->n, 16);
    snprintf(l->id[l->n], sizeof l->id[l->n], "%s", s->customer_id);
    l->s[l->n] = *s;
    l->n++;
    return 0;
}

static const seg_clv_summary *find_sum(const sum_list *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->id[i], id) == 0)
            return &l->s[i];
    return NULL;
}

static void ingest(seg_event e)
{
    TU_OK(db, seg_event_ingest(db, &e));
}

static void summary_fixture(void)
{
    /* alice: two purchases on day 0; day 3 twice; a free item on day 10; a
     * refund and an engagement (not transactions); holdout days 15 (twice) and 20 */
    ingest(tu_purchase("a1", "alice", TU_DAYN(0) + 3600, 1000, "oa1"));
    ingest(tu_purchase("a2", "alice", TU_DAYN(0) + 7200, 500, "oa2"));
    ingest(tu_purchase("a3", "alice", TU_DAYN(3) + 100, 2000, "oa3"));
    ingest(tu_purchase("a4", "alice", TU_DAYN(3) + 86000, 100, "oa4"));
    ingest(tu_purchase("a5", "alice", TU_DAYN(10), 0, "oa5"));
    ingest(tu_refund("a6", "alice", TU_DAYN(11), -500, "oa3"));
    ingest(tu_engagement("a7", "alice", TU_DAYN(12), "email_open"));
    ingest(tu_purchase("a8", "alice", TU_DAYN(15), 700, "oa8"));
    ingest(tu_purchase("a9", "alice", TU_DAYN(15) + 60, 300, "oa9"));
    ingest(tu_purchase("a10", "alice", TU_DAYN(20), 400, "oa10"));
    /* bob: first purchase late on the calibration end day: in */
    ingest(tu_purchase("b1", "bob", TU_DAYN(14) + 86399, 1500, "ob1"));
    /* carol: first purchase after the calibration end: left out */
    ingest(tu_purchase("c1", "carol", TU_DAYN(16), 900, "oc1"));
    /* dave: engagement only; erin: a prospect */
    ingest(tu_engagement("d1", "dave", TU_DAYN(2), "store_visit"));
    TU_OK(db, seg_customer_add(db, "erin"));
    /* fred: ingested out of time order */
    ingest(tu_purchase("f1", "fred", TU_DAYN(9), 100, "of1"));
    ingest(tu_purchase("f2", "fred", TU_DAYN(2), 200, "of2"));
    ingest(tu_purchase("f3", "fred", TU_DAYN(5), 300, "of3"));
}

START_TEST(summary_from_store)
{
    summary_fixture();
    seg_clv_summary_options o = SEG_CLV_SUMMARY_OPTIONS_INIT;
    o.unit = SEG_CLV_DAY;
    o.calibration_end = TU_DAYN(14) + 5; /* only the day counts */
    o.flags = SEG_CUSTOMER_SORTED;
    sum_list l;
    memset(&l, 0, sizeof l);
    seg_clv_summary_stats st = SEG_CLV_SUMMARY_STATS_INIT;
    TU_OK(db, seg_clv_summary_foreach(db, &o, collect, &l, &st));
    ck_assert_uint_eq(l.n, 3);
    ck_assert_str_eq(l.id[0], "alice");
    ck_assert_str_eq(l.id[1], "bob");
    ck_assert_str_eq(l.id[2], "fred");
    ck_assert_uint_eq(st.customers, 3);
    ck_assert_uint_eq(st.repeat_buyers, 2);
    ck_assert_uint_eq(st.late, 1);
    ck_assert_uint_eq(st.no_purchase, 2);
    const seg_clv_summary *a = find_sum(&l, "alice");
    ck_assert_double_eq(a->frequency, 2);
    ck_assert_double_eq(a->recency, 10);
    ck_assert_double_eq(a->age, 14);
    ck_assert_double_eq(a->monetary, 10.5); /* (20.00 + 1.00 + 0.00) / 2 days */
    ck_assert_int_eq(a->first_purchase, TU_DAYN(0) + 3600);
    ck_assert_uint_eq(a->holdout_frequency, 2);
    ck_assert_double_eq(a->holdout_amount, 14.0);
    const seg_clv_summary *b = find_sum(&l, "bob");
    ck_assert_double_eq(b->frequency, 0);
    ck_assert_double_eq(b->recency, 0);
    ck_assert_double_eq(b->age, 0);
    ck_assert_double_eq(b->monetary, 0);
    const seg_clv_summary *f = find_sum(&l, "fred");
    ck_assert_double_eq(f->frequency, 2);
    ck_assert_double_eq(f->recency, 7);
    ck_assert_double_eq(f->age, 12);
    ck_assert_double_eq(f->monetary, 2.0);

    /* weeks; a holdout end; unsorted visits every customer too */
    o.unit = SEG_CLV_WEEK;
    o.flags = 0;
    o.holdout_end = TU_DAYN(19);
    memset(&l, 0, sizeof l);
    TU_OK(db, seg_clv_summary_foreach(db, &o, collect, &l, NULL));
    ck_assert_uint_eq(l.n, 3);
    a = find_sum(&l, "alice");
    ck_assert_double_eq(a->recency, 10.0 / 7);
    ck_assert_double_eq(a->age, 2.0);
    ck_assert_uint_eq(a->holdout_frequency, 1); /* day 20 is past the holdout end */
    ck_assert_double_eq(a->holdout_amount, 10.0);

    /* an earlier calibration end: alice has one repeat day */
    o.calibration_end = TU_DAYN(3);
    o.holdout_end = 0;
    o.unit = SEG_CLV_DAY;
    memset(&l, 0, sizeof l);
    TU_OK(db, seg_clv_summary_foreach(db, &o, collect, &l, &st));
    a = find_sum(&l, "alice");
    ck_assert_double_eq(a->frequency, 1);
    ck_assert_double_eq(a->monetary, 21.0);
    ck_assert_uint_eq(a->holdout_frequency, 3); /* days 10, 15, 20 */
    ck_assert_ptr_null(find_sum(&l, "bob"));
    ck_assert_uint_eq(st.late, 2);
}
END_TEST

/* the helper the definition language scores with: the same summaries */
START_TEST(summary_of_one_customer)
{
    summary_fixture();
    seg_clv_summary_options o = SEG_CLV_SUMMARY_OPTIONS_INIT;
    o.unit = SEG_CLV_WEEK;
    o.calibration_end = TU_DAYN(14);
    sum_list l;
    memset(&l, 0, sizeof l);
    TU_OK(db, seg_clv_summary_foreach(db, &o, collect, &l, NULL));
    seg__clv_scratch scratch = { NULL, 0 };
    static const char *const ids[] = { "alice", "bob", "fred" };
    for (int i = 0; i < 3; i++) {
        uint32_t ci = seg__cust_find(&db->store, seg__cstr(ids[i]));
        seg_clv_summary one;
        ck_assert_int_eq(seg__clv_customer_summary(&db->alloc, &db->store, ci, TU_DAYN(14) + 100,
                                                   SEG_CLV_WEEK, 2, &scratch, &one), SEG_OK);
        const seg_clv_summary *f = find_sum(&l, ids[i]);
        ck_assert_double_eq(one.frequency, f->frequency);
        ck_assert_double_eq(one.recency, f->recency);
        ck_assert_double_eq(one.age, f->age);
        ck_assert_double_eq(one.monetary, f->monetary);
        ck_assert_uint_eq(one.holdout_frequency, f->holdout_frequency);
    }
    seg_clv_summary one;
    ck_assert_int_eq(seg__clv_customer_summary(&db->alloc, &db->store, seg__cust_find(&db->store, seg__cstr("carol")),
                                               TU_DAYN(14), SEG_CLV_WEEK, 2, &scratch, &one), SEG_ENOTFOUND);
    ck_assert_int_eq(seg__clv_customer_summary(&db->alloc, &db->store, seg__cust_find(&db->store, seg__cstr("dave")),
                                               TU_DAYN(14), SEG_CLV_WEEK, 2, &scratch, &one), SEG_ENOTFOUND);
    ck_assert_uint_ge(scratch.cap, 10);
    seg__free(&db->alloc, scratch.buf);
}
END_TEST

static int stop_first(const seg_clv_summary *s, void *p)
{
    (void)s;
    ++*(int *)p;
    return 1;
}

START_TEST(summary_foreach_errors)
{
    summary_fixture();
    seg_clv_summary_options o = SEG_CLV_SUMMARY_OPTIONS_INIT;
    o.calibration_end = TU_DAYN(14);
    TU_RC(db, seg_clv_summary_foreach(db, &o, collect, NULL, NULL), SEG_EINVAL);
    TU_MSG_HAS(db, "unit");
    o.unit = 7;
    TU_RC(db, seg_clv_summary_foreach(db, &o, collect, NULL, NULL), SEG_EINVAL);
    o.unit = SEG_CLV_DAY;
    TU_RC(db, seg_clv_summary_foreach(db, NULL, collect, NULL, NULL), SEG_EINVAL);
    TU_RC(db, seg_clv_summary_foreach(db, &o, NULL, NULL, NULL), SEG_EINVAL);
    o.flags = 0x100;
    TU_RC(db, seg_clv_summary_foreach(db, &o, collect, NULL, NULL), SEG_EINVAL);
    o.flags = 0;
    o.holdout_end = TU_DAYN(10);
    TU_RC(db, seg_clv_summary_foreach(db, &o, collect, NULL, NULL), SEG_EINVAL);
    TU_MSG_HAS(db, "holdout_end");
    o.holdout_end = 0;
    o.struct_size = 4;
    TU_RC(db, seg_clv_summary_foreach(db, &o, collect, NULL, NULL), SEG_EVERSION);
    o.struct_size = sizeof o;
    seg_clv_summary_stats st = SEG_CLV_SUMMARY_STATS_INIT;
    st.struct_size = 3;
    TU_RC(db, seg_clv_summary_foreach(db, &o, collect, NULL, &st), SEG_EVERSION);
    ck_assert_int_eq(seg_clv_summary_foreach(NULL, &o, collect, NULL, NULL), SEG_EINVAL);
    /* a callback may stop the walk */
    int calls = 0;
    TU_OK(db, seg_clv_summary_foreach(db, &o, stop_first, &calls, NULL));
    ck_assert_int_eq(calls, 1);
    /* and may not change the db */
}
END_TEST

static int try_write(const seg_clv_summary *s, void *p)
{
    (void)s;
    seg_event e = tu_purchase("zz", "zed", TU_DAYN(1), 100, "ozz");
    *(int *)p = seg_event_ingest(db, &e);
    return 1;
}

START_TEST(summary_callback_cannot_write)
{
    summary_fixture();
    seg_clv_summary_options o = SEG_CLV_SUMMARY_OPTIONS_INIT;
    o.unit = SEG_CLV_DAY;
    o.calibration_end = TU_DAYN(14);
    int rc = 0;
    TU_OK(db, seg_clv_summary_foreach(db, &o, try_write, &rc, NULL));
    ck_assert_int_eq(rc, SEG_EMISUSE);
}
END_TEST

START_TEST(summary_from_arrays)
{
    seg_clv_model *m = new_model(SEG_CLV_BGNBD, SEG_CLV_DAY, NULL);
    /* alice's transactions as in the store fixture, in both orders */
    int64_t ts[] = { TU_DAYN(0) + 3600, TU_DAYN(0) + 7200, TU_DAYN(3) + 100, TU_DAYN(3) + 86000,
                     TU_DAYN(10), TU_DAYN(15), TU_DAYN(15) + 60, TU_DAYN(20) };
    int64_t am[] = { 1000, 500, 2000, 100, 0, 700, 300, 400 };
    seg_clv_summary s = SEG_CLV_SUMMARY_INIT, u = SEG_CLV_SUMMARY_INIT;
    MOK(m, seg_clv_summarize(&s, m, ts, am, 8, TU_DAYN(14), 2));
    ck_assert_ptr_null(s.customer_id);
    ck_assert_double_eq(s.frequency, 2);
    ck_assert_double_eq(s.recency, 10);
    ck_assert_double_eq(s.age, 14);
    ck_assert_double_eq(s.monetary, 10.5);
    ck_assert_int_eq(s.first_purchase, TU_DAYN(0) + 3600);
    ck_assert_uint_eq(s.holdout_frequency, 2);
    ck_assert_double_eq(s.holdout_amount, 14.0);
    /* reversed: the same */
    int64_t rts[8], ram[8];
    for (int i = 0; i < 8; i++) {
        rts[i] = ts[7 - i];
        ram[i] = am[7 - i];
    }
    MOK(m, seg_clv_summarize(&u, m, rts, ram, 8, TU_DAYN(14), 2));
    ck_assert_double_eq(u.frequency, s.frequency);
    ck_assert_double_eq(u.recency, s.recency);
    ck_assert_double_eq(u.age, s.age);
    ck_assert_double_eq(u.monetary, s.monetary);
    ck_assert_int_eq(u.first_purchase, s.first_purchase);
    ck_assert_uint_eq(u.holdout_frequency, s.holdout_frequency);
    ck_assert_double_eq(u.holdout_amount, s.holdout_amount);
    /* a long unsorted history (beyond the stack buffer) */
    enum { N = 500 };
    static int64_t lts[N], lam[N];
    for (int i = 0; i < N; i++) {
        lts[i] = TU_DAYN((i * 37) % 250) + i;
        lam[i] = 100;
    }
    MOK(m, seg_clv_summarize(&u, m, lts, lam, N, TU_DAYN(199), 2));
    ck_assert_double_eq(u.frequency, 199); /* days 1..199 */
    ck_assert_double_eq(u.age, 199);
    ck_assert_uint_eq(u.holdout_frequency, 50);
    /* weeks, no amounts, exponent 0 */
    seg_clv_model *w = new_model(SEG_CLV_PARETO, SEG_CLV_WEEK, NULL);
    MOK(w, seg_clv_summarize(&u, w, ts, NULL, 8, TU_DAYN(14), 0));
    ck_assert_double_eq(u.recency, 10.0 / 7);
    ck_assert_double_eq(u.monetary, 0);
    MOK(w, seg_clv_summarize(&u, w, ts, am, 5, TU_DAYN(14), 0));
    ck_assert_double_eq(u.monetary, 1050.0);
    /* errors */
    MRC(m, seg_clv_summarize(&u, m, ts, am, 0, TU_DAYN(14), 2), SEG_EINVAL);
    MRC(m, seg_clv_summarize(&u, m, ts, am, 8, TU_DAYN(-1), 2), SEG_EINVAL);
    TU_STR_HAS(seg_clv_model_errmsg(m), "calibration end");
    MRC(m, seg_clv_summarize(&u, m, ts, am, 8, TU_DAYN(14), 7), SEG_EINVAL);
    am[2] = -5;
    MRC(m, seg_clv_summarize(&u, m, ts, am, 8, TU_DAYN(14), 2), SEG_EINVAL);
    TU_STR_HAS(seg_clv_model_errmsg(m), "amount[2]");
    am[2] = 2000;
    ts[1] = SEG_TIME_MAX + 1;
    MRC(m, seg_clv_summarize(&u, m, ts, am, 8, TU_DAYN(14), 2), SEG_EINVAL);
    ts[1] = TU_DAYN(0) + 7200;
    u.struct_size = 8;
    MRC(m, seg_clv_summarize(&u, m, ts, am, 8, TU_DAYN(14), 2), SEG_EVERSION);
    ck_assert_int_eq(seg_clv_summarize(&u, NULL, ts, am, 8, TU_DAYN(14), 2), SEG_EINVAL);
    seg_clv_model_free(m);
    seg_clv_model_free(w);
}
END_TEST

/* ---------------------------------------------------------- fitting */

typedef struct sim_data {
    size_t n;
    double *x, *tx, *T, *m, *h;
} sim_data;

static void simulate(sim_data *d, const clvsim_spec *sp, uint64_t seed, size_t n)
{
    d->n = n;
    d->x = calloc(n, sizeof(double));
    d->tx = calloc(n, sizeof(double));
    d->T = calloc(n, sizeof(double));
    d->m = calloc(n, sizeof(double));
    d->h = calloc(n, sizeof(double));
    ck_assert(d->x && d->tx && d->T && d->m && d->h);
    for (size_t i = 0; i < n; i++) {
        clvsim_customer c;
        clvsim_one(sp, seed, i, &c);
        d->x[i] = c.x;
        d->tx[i] = c.tx;
        d->T[i] = c.T;
        d->m[i] = c.monetary;
        d->h[i] = c.holdout;
    }
}

static void sim_free(sim_data *d)
{
    free(d->x);
    free(d->tx);
    free(d->T);
    free(d->m);
    free(d->h);
}

static seg_clv_columns sim_cols(const sim_data *d)
{
    seg_clv_columns c = SEG_CLV_COLUMNS_INIT;
    c.n = d->n;
    c.frequency = d->x;
    c.recency = d->tx;
    c.age = d->T;
    c.monetary = d->m;
    return c;
}

/* The fit recovers the simulation's parameters: each within 4 standard
 * errors, and the likelihood-ratio statistic 2 (LL(fit) - LL(truth)), which
 * is chi-squared with as many degrees of freedom as parameters, below 25. */
static void check_recovery(uint32_t kind, const double *truth, const seg_clv_fit_report *r,
                           double ll_truth, int dim)
{
    ck_assert_int_eq(r->status, SEG_CLV_FIT_CONVERGED);
    ck_assert_uint_ge(r->starts_converged, 1);
    ck_assert_uint_eq(r->starts, 3);
    ck_assert_uint_gt(r->iterations, 0);
    ck_assert_uint_ge(r->evaluations, r->iterations);
    ck_assert(r->gradient_norm <= 1e-6); /* the tolerance, or 100x when precision-limited */
    for (int i = 0; i < dim; i++) {
        double z = (log(r->params[i]) - log(truth[i])) / r->log_param_se[i];
        ck_assert_msg(isfinite(z) && fabs(z) < 4, "kind %u param %d: fit %g, truth %g, se(log) %g",
                      kind, i, r->params[i], truth[i], r->log_param_se[i]);
    }
    double lr = 2 * (r->log_likelihood - ll_truth);
    ck_assert_msg(lr >= -1e-6 && lr < 25, "kind %u: LR statistic %g", kind, lr);
}

START_TEST(fit_recovers_simulated_parameters)
{
    const double truth[3][4] = { { 0.25, 4.0, 0.8, 2.5 }, { 0.5, 6.0, 0.9, 1.6 }, { 0.55, 10.5, 0.6, 11.7 } };
    for (uint32_t kind = 1; kind <= 3; kind++) {
        clvsim_spec sp = { (int)kind, { truth[kind - 1][0], truth[kind - 1][1], truth[kind - 1][2],
                                        truth[kind - 1][3] },
                           { 0, 0, 0 }, 12, 39, 0, 0 };
        sim_data d;
        simulate(&d, &sp, 1000 + kind, 12000);
        seg_clv_columns c = sim_cols(&d);
        seg_clv_model *m = new_model(kind, SEG_CLV_WEEK, truth[kind - 1]);
        double ll_truth;
        MOK(m, seg_clv_log_likelihood(&ll_truth, m, &c));
        seg_clv_fit_report r = SEG_CLV_FIT_REPORT_INIT;
        MOK(m, seg_clv_fit(m, &c, NULL, &r));
        check_recovery(kind, truth[kind - 1], &r, ll_truth, 4);
        ck_assert_double_eq(r.customers, 12000);
        ck_assert_uint_eq(r.groups, 12000); /* continuous time: all distinct */
        double got[4], ll;
        MOK(m, seg_clv_model_get_params(got, 4, m));
        ck_assert_mem_eq(got, r.params, sizeof got);
        MOK(m, seg_clv_log_likelihood(&ll, m, &c));
        CLOSE(ll, r.log_likelihood, 1e-12, "report LL");
        /* the holdout: predicted purchases match the simulated ones */
        double pred = 0, act = 0;
        for (size_t i = 0; i < d.n; i++) {
            double e;
            MOK(m, seg_clv_expected_purchases(&e, m, d.x[i], d.tx[i], d.T[i], 39));
            pred += e;
        }
        sim_free(&d);
        sp.hold = 39;
        simulate(&d, &sp, 1000 + kind, 12000);
        for (size_t i = 0; i < d.n; i++)
            act += d.h[i];
        ck_assert_msg(fabs(pred - act) < 4 * sqrt(act) + 0.03 * act, "kind %u: holdout predicted %g, simulated %g",
                      kind, pred, act);
        sim_free(&d);
        seg_clv_model_free(m);
    }
}
END_TEST

START_TEST(fit_spend_recovers_simulated_parameters)
{
    const double truth[3] = { 6.0, 4.0, 15.0 };
    clvsim_spec sp = { CLVSIM_BGNBD, { 1.0, 2.0, 0.5, 3.0 }, { 6.0, 4.0, 15.0 }, 12, 39, 0, 0 };
    sim_data d;
    simulate(&d, &sp, 77, 8000);
    seg_clv_columns c = sim_cols(&d);
    seg_clv_model *m = new_model(SEG_CLV_BGNBD, SEG_CLV_WEEK, NULL);
    seg_clv_fit_report r = SEG_CLV_FIT_REPORT_INIT;
    MOK(m, seg_clv_fit_spend(m, &c, NULL, &r));
    /* LL at the truth, from the per-customer density */
    double ll_truth = 0, repeat = 0;
    for (size_t i = 0; i < d.n; i++)
        if (d.x[i] > 0) {
            ll_truth += seg__clv_gg_ll1(truth, d.x[i], d.m[i], NULL);
            repeat++;
        }
    check_recovery(0, truth, &r, ll_truth, 3);
    ck_assert_double_eq(r.customers, repeat);
    ck_assert_uint_eq(r.excluded, d.n - (size_t)repeat);
    double g[3];
    MRC(m, seg_clv_model_get_params(g, 4, m), SEG_ENOTFOUND); /* only the spend model */
    MOK(m, seg_clv_model_get_spend_params(g, 3, m));
    ck_assert_mem_eq(g, r.params, sizeof g);
    sim_free(&d);
    seg_clv_model_free(m);
}
END_TEST

START_TEST(fit_groups_identical_summaries)
{
    /* whole days in weeks: many customers share (x, t_x, T) */
    clvsim_spec sp = { CLVSIM_BGNBD, { 0.25, 4.0, 0.8, 2.5 }, { 0, 0, 0 }, 12, 39, 0, 7 };
    sim_data d;
    simulate(&d, &sp, 5, 30000);
    seg_clv_columns c = sim_cols(&d);
    seg_clv_model *m = new_model(SEG_CLV_BGNBD, SEG_CLV_WEEK, NULL);
    seg_clv_fit_report r = SEG_CLV_FIT_REPORT_INIT;
    MOK(m, seg_clv_fit(m, &c, NULL, &r));
    ck_assert_uint_lt(r.groups, 30000 / 2);
    /* the same rows, the first half given weight 2 and the rest dropped, fit the
     * same as the first half repeated twice */
    size_t h = d.n / 2;
    double *x2 = malloc(2 * h * sizeof(double)), *t2 = malloc(2 * h * sizeof(double)),
           *T2 = malloc(2 * h * sizeof(double)), *w = malloc(d.n * sizeof(double));
    for (size_t i = 0; i < h; i++) {
        x2[i] = x2[h + i] = d.x[i];
        t2[i] = t2[h + i] = d.tx[i];
        T2[i] = T2[h + i] = d.T[i];
    }
    for (size_t i = 0; i < d.n; i++)
        w[i] = i < h ? 2.0 : 0.0;
    seg_clv_columns cw = c, cd = SEG_CLV_COLUMNS_INIT;
    cw.weight = w;
    cd.n = 2 * h;
    cd.frequency = x2;
    cd.recency = t2;
    cd.age = T2;
    seg_clv_fit_report rw = SEG_CLV_FIT_REPORT_INIT, rd = SEG_CLV_FIT_REPORT_INIT;
    MOK(m, seg_clv_fit(m, &cw, NULL, &rw));
    MOK(m, seg_clv_fit(m, &cd, NULL, &rd));
    CLOSE(rw.log_likelihood, rd.log_likelihood, 1e-12, "weights = duplicates");
    for (int i = 0; i < 4; i++)
        RELCLOSE(rw.params[i], rd.params[i], 1e-6, "weights = duplicates: params");
    ck_assert_double_eq(rw.customers, (double)(2 * h));
    free(x2);
    free(t2);
    free(T2);
    free(w);
    sim_free(&d);
    seg_clv_model_free(m);
}
END_TEST

START_TEST(fit_failures_leave_the_model_unchanged)
{
    const double P[4] = { 0.3, 3.0, 0.7, 2.0 };
    seg_clv_model *m = new_model(SEG_CLV_BGNBD, SEG_CLV_WEEK, P);
    enum { N = 200 };
    static double x[N], tx[N], T[N], w[N];
    for (size_t i = 0; i < N; i++) {
        x[i] = i < 4 ? 1 : 0;
        tx[i] = i < 4 ? 2 : 0;
        T[i] = 10;
        w[i] = 1;
    }
    seg_clv_columns c = SEG_CLV_COLUMNS_INIT;
    c.n = N;
    c.frequency = x;
    c.recency = tx;
    c.age = T;
    seg_clv_fit_report r = SEG_CLV_FIT_REPORT_INIT;
    double got[4];
    /* too few repeat buyers */
    MRC(m, seg_clv_fit(m, &c, NULL, &r), SEG_ERROR);
    ck_assert_int_eq(r.status, SEG_CLV_FIT_TOO_FEW);
    ck_assert_double_eq(r.repeat_buyers, 4);
    TU_STR_HAS(seg_clv_model_errmsg(m), "repeat buyers");
    MOK(m, seg_clv_model_get_params(got, 4, m));
    ck_assert_mem_eq(got, P, sizeof got);
    /* ... unless the caller accepts them (then: a fit or a clear failure) */
    seg_clv_fit_options o = SEG_CLV_FIT_OPTIONS_INIT;
    o.min_repeat_buyers = 1;
    int rc = seg_clv_fit(m, &c, &o, &r);
    ck_assert(rc == SEG_OK || (rc == SEG_ERROR && r.status != SEG_CLV_FIT_TOO_FEW));
    /* no data */
    c.weight = w;
    for (size_t i = 0; i < N; i++)
        w[i] = 0;
    MOK(m, seg_clv_model_set_params(m, P, 4));
    MRC(m, seg_clv_fit(m, &c, NULL, &r), SEG_ERROR);
    ck_assert_int_eq(r.status, SEG_CLV_FIT_NO_DATA);
    MOK(m, seg_clv_model_get_params(got, 4, m));
    ck_assert_mem_eq(got, P, sizeof got);
    c.weight = NULL;
    /* bad rows name the row and the column */
    tx[7] = 11;
    MRC(m, seg_clv_fit(m, &c, NULL, &r), SEG_EINVAL);
    TU_STR_HAS(seg_clv_model_errmsg(m), "row 7");
    TU_STR_HAS(seg_clv_model_errmsg(m), "recency");
    tx[7] = 0;
    x[9] = 0.5;
    MRC(m, seg_clv_fit(m, &c, NULL, &r), SEG_EINVAL);
    TU_STR_HAS(seg_clv_model_errmsg(m), "row 9: frequency");
    x[9] = 0;
    tx[5] = 1;
    MRC(m, seg_clv_fit(m, &c, NULL, &r), SEG_EINVAL);
    TU_STR_HAS(seg_clv_model_errmsg(m), "frequency 0");
    tx[5] = 0;
    T[3] = -1;
    MRC(m, seg_clv_fit(m, &c, NULL, &r), SEG_EINVAL);
    T[3] = 10;
    c.recency = NULL;
    MRC(m, seg_clv_fit(m, &c, NULL, &r), SEG_EINVAL);
    c.recency = tx;
    MRC(m, seg_clv_fit_spend(m, &c, NULL, &r), SEG_EINVAL); /* no monetary column */
    TU_STR_HAS(seg_clv_model_errmsg(m), "monetary");
    MOK(m, seg_clv_model_get_params(got, 4, m));
    ck_assert_mem_eq(got, P, sizeof got);
    /* options and report versions */
    o = (seg_clv_fit_options)SEG_CLV_FIT_OPTIONS_INIT;
    o.starts = 9;
    MRC(m, seg_clv_fit(m, &c, &o, &r), SEG_EINVAL);
    o.starts = 0;
    o.tolerance = NAN;
    MRC(m, seg_clv_fit(m, &c, &o, &r), SEG_EINVAL);
    o.tolerance = 0;
    double bad_start[4] = { 1, 1, -1, 1 };
    o.start = bad_start;
    MRC(m, seg_clv_fit(m, &c, &o, &r), SEG_EINVAL);
    TU_STR_HAS(seg_clv_model_errmsg(m), "start: a");
    o.start = NULL;
    o.struct_size = 4;
    MRC(m, seg_clv_fit(m, &c, &o, &r), SEG_EVERSION);
    r.struct_size = 4;
    MRC(m, seg_clv_fit(m, &c, NULL, &r), SEG_EVERSION);
    seg_clv_columns c2 = c;
    c2.struct_size = 4;
    MRC(m, seg_clv_fit(m, &c2, NULL, NULL), SEG_EVERSION);
    MRC(m, seg_clv_fit(m, NULL, NULL, NULL), SEG_EINVAL);
    ck_assert_int_eq(seg_clv_fit(NULL, &c, NULL, NULL), SEG_EINVAL);
    MOK(m, seg_clv_model_get_params(got, 4, m));
    ck_assert_mem_eq(got, P, sizeof got);
    seg_clv_model_free(m);
}
END_TEST

START_TEST(fit_not_converging_is_an_error)
{
    clvsim_spec sp = { CLVSIM_BGNBD, { 0.25, 4.0, 0.8, 2.5 }, { 0, 0, 0 }, 12, 39, 0, 0 };
    sim_data d;
    simulate(&d, &sp, 9, 3000);
    seg_clv_columns c = sim_cols(&d);
    seg_clv_model *m = new_model(SEG_CLV_BGNBD, SEG_CLV_WEEK, NULL);
    seg_clv_fit_options o = SEG_CLV_FIT_OPTIONS_INIT;
    o.max_iterations = 2;
    seg_clv_fit_report r = SEG_CLV_FIT_REPORT_INIT;
    MRC(m, seg_clv_fit(m, &c, &o, &r), SEG_ERROR);
    ck_assert_int_eq(r.status, SEG_CLV_FIT_MAX_ITER);
    ck_assert(r.gradient_norm > 1e-8);
    ck_assert(isfinite(r.log_likelihood));
    TU_STR_HAS(seg_clv_model_errmsg(m), "does not converge");
    double got[4];
    MRC(m, seg_clv_model_get_params(got, 4, m), SEG_ENOTFOUND);
    sim_free(&d);
    seg_clv_model_free(m);
}
END_TEST

START_TEST(fit_degenerate_data_is_caught)
{
    /* every customer buys at the same rate and nobody drops out: no
     * heterogeneity for r, alpha and no dropout for a, b to describe */
    clvsim_spec sp = { CLVSIM_BGNBD, { 1e7, 1e7, 1e-7, 1e3 }, { 0, 0, 0 }, 12, 39, 0, 0 };
    sim_data d;
    simulate(&d, &sp, 3, 4000);
    seg_clv_columns c = sim_cols(&d);
    for (uint32_t kind = 1; kind <= 3; kind++) {
        seg_clv_model *m = new_model(kind, SEG_CLV_WEEK, NULL);
        seg_clv_fit_report r = SEG_CLV_FIT_REPORT_INIT;
        MRC(m, seg_clv_fit(m, &c, NULL, &r), SEG_ERROR);
        ck_assert_msg(r.status == SEG_CLV_FIT_BOUNDARY || r.status == SEG_CLV_FIT_FLAT,
                      "kind %u: status %d (%s)", kind, r.status, seg_clv_model_errmsg(m));
        double got[4];
        MRC(m, seg_clv_model_get_params(got, 4, m), SEG_ENOTFOUND);
        seg_clv_model_free(m);
    }
    /* Gamma-Gamma: every transaction costs the same, so the spend per
     * transaction has no variance: p runs to infinity */
    for (size_t i = 0; i < d.n; i++)
        d.m[i] = 25.0;
    seg_clv_model *m = new_model(SEG_CLV_BGNBD, SEG_CLV_WEEK, NULL);
    seg_clv_fit_report r = SEG_CLV_FIT_REPORT_INIT;
    MRC(m, seg_clv_fit_spend(m, &c, NULL, &r), SEG_ERROR);
    ck_assert_msg(r.status == SEG_CLV_FIT_BOUNDARY || r.status == SEG_CLV_FIT_FLAT, "GG: status %d (%s)",
                  r.status, seg_clv_model_errmsg(m));
    seg_clv_model_free(m);
    sim_free(&d);
}
END_TEST

START_TEST(fit_out_of_memory)
{
    clvsim_spec sp = { CLVSIM_PARETO, { 0.55, 10.5, 0.6, 11.7 }, { 0, 0, 0 }, 12, 39, 0, 7 };
    sim_data d;
    simulate(&d, &sp, 11, 2000);
    seg_clv_columns c = sim_cols(&d);
    tu_alloc ta;
    memset(&ta, 0, sizeof ta);
    ta.fail_after = -1;
    seg_allocator al = tu_allocator(&ta);
    seg_clv_model *m = NULL;
    ck_assert_int_eq(seg_clv_model_new(&m, SEG_CLV_PARETO, SEG_CLV_WEEK, &al), SEG_OK);
    seg_clv_value_options vo = SEG_CLV_VALUE_OPTIONS_INIT;
    vo.horizon = 52;
    static double pa[2000];
    bool fitted = false;
    for (long k = 1; k < 40 && !fitted; k++) {
        ta.fail_after = (long)ta.attempts + k;
        int rc = seg_clv_fit(m, &c, NULL, NULL);
        ck_assert_msg(rc == SEG_OK || rc == SEG_ENOMEM, "rc %d", rc);
        if (rc == SEG_OK)
            fitted = true;
        else
            TU_STR_HAS(seg_clv_model_errmsg(m), "memory");
    }
    ck_assert(fitted);
    for (long k = 1; k < 20; k++) {
        ta.fail_after = (long)ta.attempts + k;
        int rc = seg_clv_predict(pa, NULL, NULL, NULL, m, &c, &vo);
        ck_assert(rc == SEG_OK || rc == SEG_ENOMEM);
    }
    ta.fail_after = -1;
    seg_clv_model_free(m);
    ck_assert_int_eq(ta.live_blocks, 0);
    sim_free(&d);
}
END_TEST

/* --------------------------------------------------------- parameters */

START_TEST(export_import_round_trip)
{
    const double P[4] = { 0.1 + 0.2, 4.4136020507847924, 1e-7, 12345.678901234567 };
    const double G[3] = { 6.2495722654213912, 3.7442246699230117, 15.443520991463391 };
    seg_clv_model *m = new_model(SEG_CLV_PARETO, SEG_CLV_DAY, P);
    MOK(m, seg_clv_model_set_spend_params(m, G, 3));
    char *text = NULL;
    MOK(m, seg_clv_model_export(&text, m));
    ck_assert(strncmp(text, "param,value\nmodel,pareto\nunit,day\nr,", 36) == 0);
    TU_STR_HAS(text, "\nbeta,");
    TU_STR_HAS(text, "\ngamma,");
    seg_clv_model *n = new_model(SEG_CLV_PARETO, SEG_CLV_DAY, NULL);
    MOK(n, seg_clv_model_import(n, text, strlen(text)));
    double p[4], g[3];
    MOK(n, seg_clv_model_get_params(p, 4, n));
    MOK(n, seg_clv_model_get_spend_params(g, 3, n));
    ck_assert_mem_eq(p, P, sizeof p);
    ck_assert_mem_eq(g, G, sizeof g);
    seg_free(text);
    /* by hand: no header, CRLF, comments, spaces, exponents, one group only */
    const char *hand = "# fitted elsewhere\r\nr , 0.5\r\nalpha,1e1\r\n\r\ns,.25\nbeta,+2.5E+1\n";
    seg_clv_model *h = new_model(SEG_CLV_PARETO, SEG_CLV_WEEK, NULL);
    MOK(h, seg_clv_model_import(h, hand, strlen(hand)));
    MOK(h, seg_clv_model_get_params(p, 4, h));
    ck_assert_double_eq(p[0], 0.5);
    ck_assert_double_eq(p[1], 10);
    ck_assert_double_eq(p[2], 0.25);
    ck_assert_double_eq(p[3], 25);
    MRC(h, seg_clv_model_get_spend_params(g, 3, h), SEG_ENOTFOUND);
    seg_clv_model_free(h);
    seg_clv_model_free(m);
    seg_clv_model_free(n);
}
END_TEST

START_TEST(import_errors_leave_the_model_unchanged)
{
    const double P[4] = { 0.3, 3.0, 0.7, 2.0 };
    seg_clv_model *m = new_model(SEG_CLV_BGNBD, SEG_CLV_WEEK, P);
    static const struct { const char *text; int code; const char *msg; } cases[] = {
        { "model,pareto\nr,1\nalpha,1\na,1\nb,1\n", SEG_EINVAL, "line 1: model" },
        { "unit,day\nr,1\nalpha,1\na,1\nb,1\n", SEG_EINVAL, "unit" },
        { "r,1\nalpha,1\ns,1\nb,1\n", SEG_EINVAL, "line 3: unknown parameter 's'" },
        { "r,1\nalpha,1\na,1\n", SEG_EINVAL, "'b' is missing" },
        { "r,1\nalpha,1\na,1\nb,1\np,2\n", SEG_EINVAL, "'q' is missing" },
        { "r,1\nr,2\n", SEG_EINVAL, "line 2: 'r' given twice" },
        { "r,1,5\nalpha,1\na,1\nb,1\n", SEG_EINVAL, "not a number" },
        { "r,abc\n", SEG_EINVAL, "not a number" },
        { "r,1e\n", SEG_EINVAL, "not a number" },
        { "r,-1\nalpha,1\na,1\nb,1\n", SEG_EINVAL, "> 0" },
        { "r,0\n", SEG_EINVAL, "> 0" },
        { "r,1e999\n", SEG_EINVAL, "finite" },
        { "r 1\n", SEG_EPARSE, "line 1: expected 'name,value'" },
        { "param,value\n# nothing\n", SEG_EINVAL, "no parameter" },
        { "", SEG_EINVAL, "no parameter" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = seg_clv_model_import(m, cases[i].text, strlen(cases[i].text));
        ck_assert_msg(rc == cases[i].code, "case %zu: rc %d (%s)", i, rc, seg_clv_model_errmsg(m));
        TU_STR_HAS(seg_clv_model_errmsg(m), cases[i].msg);
        double got[4];
        MOK(m, seg_clv_model_get_params(got, 4, m));
        ck_assert_mem_eq(got, P, sizeof got);
        MRC(m, seg_clv_model_get_spend_params(got, 3, m), SEG_ENOTFOUND);
    }
    MRC(m, seg_clv_model_import(m, NULL, 3), SEG_EINVAL);
    seg_clv_model_free(m);
}
END_TEST

START_TEST(export_is_locale_independent)
{
    const double P[4] = { 0.25, 4.5, 0.75, 2.125 };
    seg_clv_model *m = new_model(SEG_CLV_BGNBD, SEG_CLV_WEEK, P);
    static const char *const locales[] = { "de_DE.UTF-8", "fr_FR.UTF-8", "de_DE", "C.UTF-8", "C" };
    for (size_t i = 0; i < sizeof locales / sizeof *locales; i++) {
        if (!setlocale(LC_NUMERIC, locales[i]))
            continue;
        char *text = NULL;
        MOK(m, seg_clv_model_export(&text, m));
        TU_STR_HAS(text, "\nalpha,4.5\n");
        TU_STR_HAS(text, "\nb,2.125\n");
        seg_clv_model *n = new_model(SEG_CLV_BGNBD, SEG_CLV_WEEK, NULL);
        MOK(n, seg_clv_model_import(n, text, strlen(text)));
        double p[4];
        MOK(n, seg_clv_model_get_params(p, 4, n));
        ck_assert_mem_eq(p, P, sizeof p);
        seg_clv_model_free(n);
        seg_free(text);
    }
    setlocale(LC_NUMERIC, "C");
    seg_clv_model_free(m);
}
END_TEST

START_TEST(model_handle_basics)
{
    seg_clv_model *m = (seg_clv_model *)1;
    ck_assert_int_eq(seg_clv_model_new(&m, 0, SEG_CLV_WEEK, NULL), SEG_EINVAL);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(seg_clv_model_new(&m, SEG_CLV_BGNBD, 9, NULL), SEG_EINVAL);
    ck_assert_int_eq(seg_clv_model_new(NULL, SEG_CLV_BGNBD, SEG_CLV_DAY, NULL), SEG_EINVAL);
    seg_allocator bad;
    memset(&bad, 0, sizeof bad);
    bad.struct_size = sizeof bad;
    ck_assert_int_eq(seg_clv_model_new(&m, SEG_CLV_BGNBD, SEG_CLV_DAY, &bad), SEG_EINVAL);
    m = new_model(SEG_CLV_MBGNBD, SEG_CLV_DAY, NULL);
    ck_assert_uint_eq(seg_clv_model_kind(m), SEG_CLV_MBGNBD);
    ck_assert_uint_eq(seg_clv_model_unit(m), SEG_CLV_DAY);
    ck_assert_uint_eq(seg_clv_model_kind(NULL), 0);
    ck_assert_str_eq(seg_clv_model_errmsg(m), "");
    double p[4];
    MRC(m, seg_clv_model_get_params(p, 4, m), SEG_ENOTFOUND);
    char *text = (char *)1;
    MRC(m, seg_clv_model_export(&text, m), SEG_ENOTFOUND);
    ck_assert_ptr_null(text);
    const double bad_p[4] = { 1, INFINITY, 1, 1 };
    MRC(m, seg_clv_model_set_params(m, bad_p, 4), SEG_EINVAL);
    TU_STR_HAS(seg_clv_model_errmsg(m), "alpha");
    MRC(m, seg_clv_model_set_params(m, bad_p, 3), SEG_EINVAL);
    MRC(m, seg_clv_model_set_spend_params(m, bad_p, 3), SEG_EINVAL);
    TU_STR_HAS(seg_clv_model_errmsg(m), "q =");
    MRC(m, seg_clv_model_get_params(p, 4, m), SEG_ENOTFOUND);
    MRC(m, seg_clv_model_get_params(p, 2, m), SEG_EINVAL);
    double v;
    MRC(m, seg_clv_p_alive(&v, m, 0, 0, 0), SEG_ENOTFOUND);
    TU_STR_HAS(seg_clv_model_errmsg(m), "no parameters");
    seg_clv_model_free(m);
    seg_clv_model_free(NULL);
    ck_assert_str_eq(seg_clv_model_errmsg(NULL), "no model handle");
}
END_TEST

Suite *clv_suite(void)
{
    Suite *s = suite_create("clv");
    TCase *tc = tcase_create("special");
    tcase_add_test(tc, lngamma_matches_libm);
    tcase_add_test(tc, digamma_values);
    tcase_add_test(tc, gamma_ratios);
    tcase_add_test(tc, hyp2f1_closed_forms);
    tcase_add_test(tc, hyp2f1_against_references);
    tcase_add_test(tc, hyp2f1_contiguous_relation);
    tcase_add_test(tc, quadrature_rules);
    tcase_add_test(tc, double_exponential_rule);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("likelihood");
    tcase_add_test(tc, pnbd_a0_against_integration);
    tcase_add_test(tc, pnbd_a0_series_and_quadrature_agree);
    tcase_add_test(tc, pnbd_a0_gradient);
    tcase_add_test(tc, bg_likelihood_from_definition);
    tcase_add_test(tc, pnbd_likelihood_from_definition);
    tcase_add_test(tc, gradients_match_finite_differences);
    tcase_add_test(tc, gamma_gamma_from_definition);
    tcase_add_test(tc, grouped_likelihood_is_the_sum);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("predictions");
    tcase_add_test(tc, bg_expected_against_definition);
    tcase_add_test(tc, p_alive_from_definition);
    tcase_add_test(tc, pnbd_expected_against_definition);
    tcase_add_test(tc, probabilities_sum_to_one_and_to_the_mean);
    tcase_add_test(tc, discounting_against_a_fine_sum);
    tcase_add_test(tc, public_scoring_calls);
    tcase_add_test(tc, extreme_summaries_stay_finite);
    tcase_add_test(tc, predict_columns_match_single_calls);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("summaries");
    tcase_add_checked_fixture(tc, db_setup, db_teardown);
    tcase_add_test(tc, summary_from_store);
    tcase_add_test(tc, summary_of_one_customer);
    tcase_add_test(tc, summary_foreach_errors);
    tcase_add_test(tc, summary_callback_cannot_write);
    tcase_add_test(tc, summary_from_arrays);
    suite_add_tcase(s, tc);

    tc = tcase_create("fit");
    tcase_add_test(tc, fit_recovers_simulated_parameters);
    tcase_add_test(tc, fit_spend_recovers_simulated_parameters);
    tcase_add_test(tc, fit_groups_identical_summaries);
    tcase_add_test(tc, fit_failures_leave_the_model_unchanged);
    tcase_add_test(tc, fit_not_converging_is_an_error);
    tcase_add_test(tc, fit_degenerate_data_is_caught);
    tcase_add_test(tc, fit_out_of_memory);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);

    tc = tcase_create("params");
    tcase_add_test(tc, export_import_round_trip);
    tcase_add_test(tc, import_errors_leave_the_model_unchanged);
    tcase_add_test(tc, export_is_locale_independent);
    tcase_add_test(tc, model_handle_basics);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(clv_suite());
    int failures;
    srunner_run_all(sr, CK_ENV);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures ? 1 : 0;
}
