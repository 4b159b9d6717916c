/*
 * Special functions for the lifetime-value models: log-gamma, digamma, the
 * Gauss hypergeometric function, Gauss-Legendre and double-exponential
 * quadrature.  Everything is pure: no global state (glibc's lgamma writes
 * the global signgam, so it is not used).
 */
#include "clv/clv-private.h"

#include <float.h>

#define EULER_GAMMA 0.57721566490153286061
#define LN_SQRT_2PI 0.91893853320467274178
#define PI 3.14159265358979323846

/* ------------------------------------------------------- log-gamma, psi */

/* Stirling's series: ln Gamma(x) = (x - 1/2) ln x - x + ln sqrt(2 pi) + stirling(x),
 * and psi(x) = ln x - 1/(2x) - psi_series(x); for x >= 10 the last term
 * kept is below 1e-15 */
static double stirling(double x)
{
    double f = 1.0 / (x * x);
    return (1.0 / 12 - f * (1.0 / 360 - f * (1.0 / 1260 - f * (1.0 / 1680 -
            f * (1.0 / 1188 - f * (691.0 / 360360 - f * (1.0 / 156))))))) / x;
}

static double psi_series(double x)
{
    double f = 1.0 / (x * x);
    return f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 -
           f * (1.0 / 132 - f * (691.0 / 32760 - f * (1.0 / 12)))))));
}

double seg__clv_lngamma(double x)
{
    if (!(x > 0))
        return NAN;
    if (x == INFINITY)
        return INFINITY;
    if (x < 1e-8) /* ln Gamma(x) = -ln x - gamma x + O(x^2) */
        return -log(x) - EULER_GAMMA * x;
    double shift = 0.0;
    if (x < 10.0) {
        double prod = 1.0;
        while (x < 10.0) {
            prod *= x;
            x += 1.0;
        }
        shift = log(prod);
    }
    return (x - 0.5) * log(x) - x + LN_SQRT_2PI + stirling(x) - shift;
}

double seg__clv_digamma(double x)
{
    if (!(x > 0))
        return NAN;
    if (x == INFINITY)
        return INFINITY;
    if (x < 1e-8) /* psi(x) = -1/x - gamma + (pi^2/6) x + O(x^2) */
        return -1.0 / x - EULER_GAMMA + 1.6449340668482264 * x;
    double r = 0.0;
    while (x < 10.0) {
        r -= 1.0 / x;
        x += 1.0;
    }
    return r + log(x) - 0.5 / x - psi_series(x);
}

static bool small_whole(double n)
{
    return n <= 16 && n == floor(n);
}

double seg__clv_lgratio(double a, double n)
{
    if (n == 0)
        return 0.0;
    if (small_whole(n)) {
        /* products of 4 factors stay far from overflow for a < 1e70 */
        double s = 0.0, prod = 1.0;
        int k = 0;
        for (double j = 0; j < n; j++) {
            prod *= a + j;
            if (++k == 4) {
                s += log(prod);
                prod = 1.0;
                k = 0;
            }
        }
        return s + log(prod);
    }
    if (a >= 10.0) /* the difference of Stirling's formulas, without cancellation */
        return (a - 0.5) * log1p(n / a) + n * (log(a + n) - 1.0) + stirling(a + n) - stirling(a);
    return seg__clv_lngamma(a + n) - seg__clv_lngamma(a);
}

double seg__clv_psiratio(double a, double n)
{
    if (n == 0)
        return 0.0;
    if (small_whole(n)) {
        double s = 0.0;
        for (double j = 0; j < n; j++)
            s += 1.0 / (a + j);
        return s;
    }
    if (a >= 10.0)
        return log1p(n / a) - 0.5 / (a + n) + 0.5 / a - psi_series(a + n) + psi_series(a);
    return seg__clv_digamma(a + n) - seg__clv_digamma(a);
}

double seg__clv_expm1_ratio(double e, double L)
{
    /* (1 - (1-z)^e) / e = -expm1(e L) / e */
    double y = e * L;
    if (fabs(y) < 1e-5)
        return -L * (1.0 + y * (0.5 + y * (1.0 / 6 + y / 24)));
    return -expm1(y) / e;
}

/* ---------------------------------------------- Gauss-Legendre tables */

static const double gl16_x[8] = {
    0.98940093499164993, 0.94457502307323258, 0.86563120238783174, 0.75540440835500303,
    0.61787624440264375, 0.45801677765722739, 0.28160355077925891, 0.09501250983763744,
};
static const double gl16_w[8] = {
    0.027152459411754095, 0.062253523938647893, 0.095158511682492785, 0.12462897125553387,
    0.14959598881657673, 0.16915651939500254, 0.18260341504492359, 0.1894506104550685,
};
static const double gl32_x[16] = {
    0.99726386184948156, 0.98561151154526834, 0.96476225558750643, 0.93490607593773969,
    0.89632115576605212, 0.84936761373256997, 0.79448379596794241, 0.73218211874028968,
    0.6630442669302152, 0.58771575724076233, 0.50689990893222939, 0.42135127613063535,
    0.33186860228212765, 0.23928736225213707, 0.14447196158279649, 0.048307665687738316,
};
static const double gl32_w[16] = {
    0.0070186100094700966, 0.016274394730905671, 0.025392065309262059, 0.034273862913021433,
    0.042835898022226681, 0.050998059262376176, 0.058684093478535547, 0.065822222776361847,
    0.072345794108848506, 0.078193895787070307, 0.083311924226946755, 0.087652093004403811,
    0.091173878695763885, 0.093844399080804566, 0.095638720079274859, 0.096540088514727801,
};

const seg__clv_gl seg__clv_gl16 = { 16, gl16_x, gl16_w };
const seg__clv_gl seg__clv_gl32 = { 32, gl32_x, gl32_w };

/* ------------------------------------- double-exponential quadrature */

/* log cosh(u) without overflow */
static double log_cosh(double u)
{
    u = fabs(u);
    return u + log1p(exp(-2.0 * u)) - 0.69314718055994531;
}

/* One DE node at s: adds exp(lf + log dt/ds) to *sum; returns the term. */
static double de_node(seg__clv_de_fn f, void *ctx, double s)
{
    double u = 0.5 * PI * sinh(s);
    /* t = 1 / (1 + e^{-2u}), 1 - t = 1 / (1 + e^{2u}) */
    double lt = -seg__clv_softplus(-2.0 * u), l1t = -seg__clv_softplus(2.0 * u);
    double t = exp(lt);
    double ljac = log(0.25 * PI) + log_cosh(s) - 2.0 * log_cosh(u);
    double lv = f(ctx, t, lt, l1t);
    if (isnan(lv))
        return NAN;
    return exp(lv + ljac);
}

double seg__clv_de01(seg__clv_de_fn f, void *ctx, double lo_exp, double hi_exp)
{
    /* Reach s_max where both ends are negligible: near t = 0 the integrand
     * is ~ t^lo_exp, and t ~ e^{-2u}: the tail beyond u is ~ e^{-2u(lo_exp+1)}. */
    double e = fmin(lo_exp, hi_exp) + 1.0;
    if (!(e > 0))
        return NAN;
    double u_need = 25.0 / e;
    double s_max = asinh(u_need / (0.5 * PI));
    if (s_max > 12.0)
        s_max = 12.0;
    if (s_max < 3.0)
        s_max = 3.0;
    double h = 0.5;
    double sum = de_node(f, ctx, 0.0);
    for (int k = 1; k * h <= s_max; k++)
        sum += de_node(f, ctx, k * h) + de_node(f, ctx, -k * h);
    double prev = sum * h;
    for (int level = 1; level <= 7; level++) {
        h *= 0.5;
        /* the new nodes are the odd multiples of h */
        for (int k = 1; k * h <= s_max; k += 2)
            sum += de_node(f, ctx, k * h) + de_node(f, ctx, -k * h);
        double cur = sum * h;
        if (isnan(cur))
            return NAN;
        if (level >= 3 && fabs(cur - prev) <= 4e-15 * fabs(cur))
            return cur;
        if (cur == 0 && prev == 0)
            return 0.0;
        prev = cur;
    }
    /* h = 1/256 and still moving in the 15th digit: rounding, keep it */
    return prev;
}

/* ------------------------------------------------------------ 2F1 */

/* The power series; NaN when it does not converge in maxn terms. */
static double hyp_series(double a, double b, double c, double z, long maxn)
{
    double term = 1.0, sum = 1.0;
    for (long n = 0; n < maxn; n++) {
        double ratio = (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        term *= ratio;
        sum += term;
        if (term == 0.0)
            return sum; /* a or b a non-positive whole number: a polynomial */
        if (!isfinite(sum))
            return NAN;
        double next = fabs((a + n + 1) * (b + n + 1) / ((c + n + 1) * (n + 2.0)) * z);
        if (next < 1.0 && fabs(term) * next / (1.0 - next) <= 1e-17 * fabs(sum))
            return sum;
    }
    return NAN;
}

typedef struct euler_ctx {
    double a, b, c, z, lnorm;
} euler_ctx;

static double euler_fn(void *p, double t, double lt, double l1t)
{
    const euler_ctx *e = p;
    /* 1 - z t = (1 - z) + z (1 - t): exact near t = 1 where 1 - t underflows */
    double l1zt = t > 0.5 ? log((1.0 - e->z) + e->z * exp(l1t)) : log1p(-e->z * t);
    return e->lnorm + (e->b - 1.0) * lt + (e->c - e->b - 1.0) * l1t - e->a * l1zt;
}

/* Euler's integral: Gamma(c) / (Gamma(b) Gamma(c-b)) int_0^1 t^{b-1}
 * (1-t)^{c-b-1} (1-zt)^{-a} dt, for c > b > 0 and z < 1. */
static double hyp_euler(double a, double b, double c, double z)
{
    euler_ctx e = { a, b, c, z, 0.0 };
    e.lnorm = seg__clv_lngamma(c) - seg__clv_lngamma(b) - seg__clv_lngamma(c - b);
    return seg__clv_de01(euler_fn, &e, b - 1.0, c - b - 1.0);
}

static bool euler_ok(double b, double c)
{
    return c > b && b > 0;
}

/* 2F1 for -0.5 <= z < 1 */
static double hyp_pos(double a, double b, double c, double z)
{
    if (z <= 0.5)
        return hyp_series(a, b, c, z, 100000);
    if (euler_ok(b, c))
        return hyp_euler(a, b, c, z);
    if (euler_ok(a, c))
        return hyp_euler(b, a, c, z);
    return hyp_series(a, b, c, z, 10000000);
}

static bool nonpositive_whole(double c)
{
    return c <= 0 && c == floor(c);
}

double seg__clv_hyp2f1(double a, double b, double c, double z)
{
    if (!isfinite(a) || !isfinite(b) || !isfinite(c) || !(z < 1.0) || nonpositive_whole(c))
        return NAN;
    if (z == 0.0 || a == 0.0 || b == 0.0)
        return 1.0;
    if (b == c)
        return pow(1.0 - z, -a);
    if (a == c)
        return pow(1.0 - z, -b);
    if (z > 0)
        return hyp_pos(a, b, c, z);
    /* z < 0: the series alternates and cancels; Pfaff's transformation
     *   2F1(a,b;c;z) = (1-z)^-a 2F1(a, c-b; c; w) = (1-z)^-b 2F1(c-a, b; c; w),
     * w = z / (z - 1) in (0, 1), gives terms of one sign when the new
     * parameters are >= 0.  Take that form, or the one Euler's integral can
     * do when w is large. */
    double w = z / (z - 1.0);
    bool one = a >= 0 && c - b >= 0, two = c - a >= 0 && b >= 0;
    if (w > 0.5) {
        one = euler_ok(c - b, c) || euler_ok(a, c);
        two = !one && (euler_ok(b, c) || euler_ok(c - a, c));
    }
    if (two && !one)
        return pow(1.0 - z, -b) * hyp_pos(c - a, b, c, w);
    return pow(1.0 - z, -a) * hyp_pos(a, c - b, c, w);
}
