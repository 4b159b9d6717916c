/*
 * The models' mathematics: log-likelihoods with analytic gradients, and the
 * per-customer predictions.
 *
 * BG/NBD and MBG/NBD share everything but one offset: after x repeat
 * purchases the posterior dropout probability is Beta(a, b + x + o) with
 * o = 0 (BG/NBD: no dropout at the first purchase) or o = 1 (MBG/NBD).
 *
 * Pareto/NBD's likelihood needs A0 = int_{t_x}^{T} (alpha+u)^-(r+x)
 * (beta+u)^-(s+1) du.  With P the larger of alpha and beta, Q the smaller
 * and y = 1/(P+u) it is G(y_t) - G(y_T) where G(y) = y^K H(K, m, (P-Q) y),
 * K = r + s + x, m the exponent of Q's factor, and
 *   H(K, m, z) = int_0^1 v^(K-1) (1 - z v)^-m dv = 2F1(m, K; K+1; z) / K,
 * a hypergeometric function whose argument z = (P-Q)/(P+u) tends to 1 when
 * the two scales differ a lot.  Its power series (all terms positive, so no
 * cancellation) is used while z <= 0.6; beyond, A0 and its derivatives are
 * integrated directly by Gauss-Legendre quadrature in v = log(Q + u), where
 * the integrand is smooth (analytic in a strip of half-width pi), after
 * cutting off the part beyond which it has decayed by e^-40.  Everything is
 * computed in logarithms, so large x, t_x and T neither overflow nor
 * underflow.
 */
#include "clv/clv-private.h"

/* ------------------------------------------------ BG/NBD and MBG/NBD */

static double bg_ll1(int o, const double *p, double x, double tx, double T, double *grad)
{
    double r = p[0], al = p[1], a = p[2], b = p[3];
    double k = r + x, lcT = log(al + T);
    double ll = seg__clv_lgratio(r, x) + r * log(al) - k * lcT + seg__clv_lgratio(b, x + o) -
                seg__clv_lgratio(a + b, x + o);
    double w = 0.0, lct = 0.0;
    if (x + o > 0) {
        lct = log(al + tx);
        double u = log(a) - log(b + x + o - 1) + k * (lcT - lct);
        ll += seg__clv_softplus(u);
        w = seg__clv_sigmoid(u);
    }
    if (grad) {
        grad[0] = seg__clv_psiratio(r, x) + log(al) - lcT + w * (lcT - lct);
        grad[1] = r / al - k / (al + T) + (w ? w * k * (1.0 / (al + T) - 1.0 / (al + tx)) : 0.0);
        double pab = seg__clv_psiratio(a + b, x + o);
        grad[2] = -pab + w / a;
        grad[3] = seg__clv_psiratio(b, x + o) - pab - (w ? w / (b + x + o - 1) : 0.0);
    }
    return ll;
}

/* ------------------------------------------------------- Pareto/NBD */

/* H(K, m, z) by its series: log H and d log H / dK, dm, dz.  false when the
 * series needs more than 3000 terms. */
static bool pnbd_h_series(double K, double m, double z, double *lh, double *dk, double *dm,
                          double *dz)
{
    double t = 1.0;          /* (m)_n z^n / n! */
    double tz = m;           /* n (m)_n z^(n-1) / n!, n >= 1 */
    double S = 0.0;          /* sum_{j<n} 1/(m+j) */
    double h = 1.0 / K, hk = -1.0 / (K * K), hm = 0.0, hz = 0.0;
    for (int n = 1; n < 3000; n++) {
        S += 1.0 / (m + n - 1);
        double ratio = (m + n - 1) * z / n;
        t *= ratio;
        double inv = 1.0 / (K + n);
        h += t * inv;
        hk -= t * inv * inv;
        hm += t * S * inv;
        hz += tz * inv;
        tz *= (m + n) * z / n;
        double next = (m + n) * z / (n + 1);
        if (next < 1.0 && t * inv <= 1e-17 * h * (1.0 - next) && tz * inv <= 1e-17 * hz * (1.0 - next))
            goto done;
        if (t == 0.0)
            goto done;
    }
    return false;
done:
    *lh = log(h);
    *dk = hk / h;
    *dm = hm / h;
    *dz = hz / h;
    return true;
}

/* grad: d log A0 / d (r, alpha, s, beta) */
static double pnbd_a0_series(const double *p, double x, double tx, double T, double *grad,
                             bool *ok)
{
    double r = p[0], al = p[1], s = p[2], be = p[3];
    bool p_is_alpha = al >= be;
    double P = p_is_alpha ? al : be, Q = p_is_alpha ? be : al;
    double m = p_is_alpha ? s + 1.0 : r + x;
    double K = r + s + x, D = P - Q;
    double y[2] = { 1.0 / (P + tx), 1.0 / (P + T) };
    double lg[2], dG[2][4]; /* d log G / d (K, m, P, Q) */
    for (int i = 0; i < 2; i++) {
        double z = D * y[i], lh, hk, hm, hz;
        if (!pnbd_h_series(K, m, z, &lh, &hk, &hm, &hz)) {
            *ok = false;
            return NAN;
        }
        lg[i] = K * log(y[i]) + lh;
        dG[i][0] = log(y[i]) + hk;
        dG[i][1] = hm;
        dG[i][2] = -K * y[i] + hz * y[i] * (1.0 - z);
        dG[i][3] = -y[i] * hz;
    }
    *ok = true;
    double d = lg[1] - lg[0]; /* <= 0: G grows with y */
    double la0 = lg[0] + log(-expm1(d));
    if (grad) {
        double rho = exp(d), den = 1.0 - rho, dl[4];
        for (int j = 0; j < 4; j++)
            dl[j] = (dG[0][j] - rho * dG[1][j]) / den;
        /* K = r + s + x; m = s + 1 when P is alpha, r + x when P is beta */
        grad[0] = dl[0] + (p_is_alpha ? 0.0 : dl[1]);
        grad[2] = dl[0] + (p_is_alpha ? dl[1] : 0.0);
        grad[1] = p_is_alpha ? dl[2] : dl[3];
        grad[3] = p_is_alpha ? dl[3] : dl[2];
    }
    return la0;
}

static double pnbd_a0_quad(const double *p, double x, double tx, double T, double *grad)
{
    double r = p[0], al = p[1], s = p[2], be = p[3];
    bool p_is_alpha = al >= be;
    double P = p_is_alpha ? al : be, Q = p_is_alpha ? be : al, D = P - Q;
    double kP = p_is_alpha ? r + x : s + 1.0, kQ = p_is_alpha ? s + 1.0 : r + x;
    /* v = log(Q + u); integrand in v: (e^v + D)^-kP e^{-(kQ - 1) v} */
    double v0 = log(Q + tx), v1 = log(Q + T);
    double e0 = Q + tx;
    double lf0 = -kP * log(e0 + D) - (kQ - 1.0) * v0;
    double rate = kP * e0 / (e0 + D) + kQ - 1.0; /* decay rate at v0, grows with v */
    if (rate > 0 && rate * (v1 - v0) > 40.0)
        v1 = v0 + 40.0 / rate;
    double mid = 0.5 * (v0 + v1), half = 0.5 * (v1 - v0);
    /* The integrand is analytic in |Im v| < pi; on a short interval with a
     * mild decay 16 points are exact to rounding, else 32. */
    const seg__clv_gl *gl = (v1 - v0) <= 3.0 && fabs(rate) * (v1 - v0) <= 12.0 ? &seg__clv_gl16
                                                                           : &seg__clv_gl32;
    double S = 0.0, Sg[4] = { 0, 0, 0, 0 };
    for (int i = 0; i < gl->n / 2; i++) {
        for (int sign = -1; sign <= 1; sign += 2) {
            double v = mid + sign * half * gl->x[i];
            double eq = exp(v), ep = eq + D; /* Q + u, P + u */
            double f = gl->w[i] * exp(-kP * log(ep) - (kQ - 1.0) * v - lf0);
            S += f;
            if (grad) {
                double la = p_is_alpha ? log(ep) : v, lb = p_is_alpha ? v : log(ep);
                double ia = 1.0 / (p_is_alpha ? ep : eq), ib = 1.0 / (p_is_alpha ? eq : ep);
                Sg[0] -= f * la;
                Sg[1] -= f * (r + x) * ia;
                Sg[2] -= f * lb;
                Sg[3] -= f * (s + 1.0) * ib;
            }
        }
    }
    if (grad)
        for (int j = 0; j < 4; j++)
            grad[j] = Sg[j] / S;
    return lf0 + log(S * half);
}

/* method: 0 automatic, 1 series, 2 quadrature (tests compare them) */
double seg__clv_pnbd_log_a0_method(const double *p, double x, double tx, double T,
                                   double *grad, int method);
double seg__clv_pnbd_log_a0_method(const double *p, double x, double tx, double T,
                                   double *grad, int method)
{
    if (!(tx < T)) {
        if (grad)
            grad[0] = grad[1] = grad[2] = grad[3] = 0.0;
        return -INFINITY;
    }
    double P = fmax(p[1], p[3]), Q = fmin(p[1], p[3]);
    double zt = (P - Q) / (P + tx);
    if (method == 1 || (method == 0 && zt <= 0.6)) {
        bool ok;
        double la = pnbd_a0_series(p, x, tx, T, grad, &ok);
        if (ok || method == 1)
            return la;
    }
    return pnbd_a0_quad(p, x, tx, T, grad);
}

double seg__clv_pnbd_log_a0(const double *p, double x, double tx, double T, double *grad)
{
    return seg__clv_pnbd_log_a0_method(p, x, tx, T, grad, 0);
}

/* l1 = log of the "alive at T" term, l2 = log of the "died in (t_x, T]" term */
static void pnbd_terms(const double *p, double x, double tx, double T, double *l1, double *l2,
                       double *g1, double *g2)
{
    double r = p[0], al = p[1], s = p[2], be = p[3];
    *l1 = -(r + x) * log(al + T) - s * log(be + T);
    double ga[4];
    double la0 = seg__clv_pnbd_log_a0(p, x, tx, T, g2 ? ga : NULL);
    *l2 = log(s) + la0;
    if (g1) {
        g1[0] = -log(al + T);
        g1[1] = -(r + x) / (al + T);
        g1[2] = -log(be + T);
        g1[3] = -s / (be + T);
    }
    if (g2) {
        g2[0] = ga[0];
        g2[1] = ga[1];
        g2[2] = 1.0 / s + ga[2];
        g2[3] = ga[3];
    }
}

static double pnbd_ll1(const double *p, double x, double tx, double T, double *grad)
{
    double r = p[0], al = p[1], s = p[2], be = p[3];
    double l1, l2, g1[4], g2[4];
    pnbd_terms(p, x, tx, T, &l1, &l2, grad ? g1 : NULL, grad ? g2 : NULL);
    double ll = seg__clv_lgratio(r, x) + r * log(al) + s * log(be) + seg__clv_logaddexp(l1, l2);
    if (grad) {
        double w1 = l2 == -INFINITY ? 1.0 : seg__clv_sigmoid(l1 - l2), w2 = 1.0 - w1;
        double c[4] = { seg__clv_psiratio(r, x) + log(al), r / al, log(be), s / be };
        for (int j = 0; j < 4; j++)
            grad[j] = c[j] + w1 * g1[j] + (w2 ? w2 * g2[j] : 0.0);
    }
    return ll;
}

/* ------------------------------------------------------- Gamma-Gamma */

double seg__clv_gg_ll1(const double *g, double x, double m, double *grad)
{
    double p = g[0], q = g[1], ga = g[2], px = p * x;
    double L1 = log1p(ga / (m * x)), L2 = log1p(m * x / ga);
    double ll = seg__clv_lngamma(px + q) - seg__clv_lngamma(px) - seg__clv_lngamma(q) - log(m) -
                px * L1 - q * L2;
    if (grad) {
        double pq = seg__clv_digamma(px + q);
        grad[0] = x * (pq - seg__clv_digamma(px) - L1);
        grad[1] = pq - seg__clv_digamma(q) - L2;
        grad[2] = q / ga - (px + q) / (ga + m * x);
    }
    return ll;
}

/* ------------------------------------------------------ dispatch */

double seg__clv_ll1(uint32_t kind, const double *p, double x, double tx, double T, double *grad)
{
    switch (kind) {
    case SEG_CLV_BGNBD: return bg_ll1(0, p, x, tx, T, grad);
    case SEG_CLV_MBGNBD: return bg_ll1(1, p, x, tx, T, grad);
    case SEG_CLV_PARETO: return pnbd_ll1(p, x, tx, T, grad);
    default: return NAN;
    }
}

/* ------------------------------------------------ grouped likelihood */

/* BG/NBD and MBG/NBD over groups: the parts that depend on x, T or t_x
 * alone are computed once per distinct value. */
static double bg_ll_groups(int o, const double *p, const seg__clv_groups *g, double *grad)
{
    double r = p[0], al = p[1], a = p[2], b = p[3];
    double *X = g->scratch;                    /* per x: 6 values */
    double *TT = X + 6 * g->nx;                /* per T: log(al+T), 1/(al+T) */
    double *TX = TT + 2 * g->nT;               /* per t_x */
    for (size_t i = 0; i < g->nx; i++) {
        double x = g->ux[i], *v = X + 6 * i;
        double pab = seg__clv_psiratio(a + b, x + o);
        v[0] = seg__clv_lgratio(r, x) + seg__clv_lgratio(b, x + o) - seg__clv_lgratio(a + b, x + o);
        v[1] = seg__clv_psiratio(r, x);
        v[2] = -pab;
        v[3] = seg__clv_psiratio(b, x + o) - pab;
        v[4] = x + o > 0 ? log(b + x + o - 1) : 0.0;
        v[5] = x + o > 0 ? 1.0 / (b + x + o - 1) : 0.0;
    }
    for (size_t i = 0; i < g->nT; i++) {
        TT[2 * i] = log(al + g->uT[i]);
        TT[2 * i + 1] = 1.0 / (al + g->uT[i]);
    }
    for (size_t i = 0; i < g->ntx; i++) {
        TX[2 * i] = log(al + g->utx[i]);
        TX[2 * i + 1] = 1.0 / (al + g->utx[i]);
    }
    double la = log(a), lal = log(al), ia = 1.0 / a;
    double ll = 0.0, gr = 0.0, gal = 0.0, ga = 0.0, gb = 0.0;
    for (size_t j = 0; j < g->n; j++) {
        const double *v = X + 6 * g->ix[j];
        double w = g->w[j], x = g->x[j], k = r + x;
        double lcT = TT[2 * g->iT[j]], icT = TT[2 * g->iT[j] + 1];
        double l = v[0] - k * lcT;
        double dr = v[1] - lcT, dal = -k * icT, da = v[2], db = v[3];
        if (x + o > 0) {
            double lct = TX[2 * g->itx[j]], ict = TX[2 * g->itx[j] + 1];
            double u = la - v[4] + k * (lcT - lct);
            double e = exp(-fabs(u));
            l += (u > 0 ? u : 0.0) + seg__clv_log1p_small(e);
            double s = u >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
            dr += s * (lcT - lct);
            dal += s * k * (icT - ict);
            da += s * ia;
            db -= s * v[5];
        }
        ll += w * l;
        gr += w * dr;
        gal += w * dal;
        ga += w * da;
        gb += w * db;
    }
    double W = g->customers;
    ll += W * r * lal;
    if (grad) {
        /* d/d log(theta) = theta d/d theta */
        grad[0] = r * (gr + W * lal);
        grad[1] = al * (gal + W * r / al);
        grad[2] = a * ga;
        grad[3] = b * gb;
    }
    return ll;
}

/* the grouped code's series reach; beyond, quadrature */
#define SERIES_MAX_Z 0.85

/* H and its derivatives at both ends of A0 from coefficient tables of one
 * x: with c_n = (m)_n / n! and S_n = sum_{j<n} 1/(m+j),
 *   A[n] = c_n/(K+n), B[n] = c_n/(K+n)^2, C[n] = c_n S_n/(K+n), D[n] = n c_n/(K+n),
 * H = sum A z^n, dH/dK = -sum B z^n, dH/dm = sum C z^n, dH/dz = sum D z^(n-1).
 * out[e] = H, d log H / dK, dm, dz.  false when the tables are too short. */
static bool pnbd_h2(const double *coef, int len, const double z[2], double out[2][4])
{
    const int NT = SEG__CLV_PNBD_NT;
    const double *A = coef, *B = coef + NT, *C = coef + 2 * NT, *D = coef + 3 * NT;
    double h0 = A[0], h1 = A[0], k0 = B[0], k1 = B[0], m0 = 0, m1 = 0, d0 = 0, d1 = 0;
    double p0 = 1.0, p1 = 1.0, z0 = z[0], z1 = z[1]; /* z^(n-1) */
    int n = 1;
    for (;;) {
        /* four terms per convergence test */
        for (int u = 0; u < 4; u++, n++) {
            d0 += D[n] * p0;
            d1 += D[n] * p1;
            p0 *= z0;
            p1 *= z1;
            h0 += A[n] * p0;
            h1 += A[n] * p1;
            k0 += B[n] * p0;
            k1 += B[n] * p1;
            m0 += C[n] * p0;
            m1 += C[n] * p1;
        }
        /* z0 >= z1: the first end converges last; D[n] >= A[n] n */
        if (D[n - 1] * p0 <= 1e-17 * (h0 < d0 ? h0 : d0) * (1.0 - z0) || p0 == 0.0)
            break;
        if (n + 4 >= len)
            return false;
    }
    out[0][0] = h0;
    out[1][0] = h1;
    out[0][1] = -k0 / h0;
    out[1][1] = -k1 / h1;
    out[0][2] = m0 / h0;
    out[1][2] = m1 / h1;
    out[0][3] = d0 / h0;
    out[1][3] = d1 / h1;
    return true;
}

/* Pareto/NBD over groups: per distinct x the series' coefficients, per
 * distinct T and t_x the logarithms; the general code (quadrature) where
 * the series would be long.  The tables hold as many terms as the largest
 * argument of this evaluation needs. */
static double pnbd_ll_groups(const double *p, const seg__clv_groups *g, double *grad)
{
    const int NT = SEG__CLV_PNBD_NT, XS = 8 + 4 * SEG__CLV_PNBD_NT;
    double r = p[0], al = p[1], s = p[2], be = p[3];
    bool pa = al >= be; /* P is alpha */
    double P = pa ? al : be, D = pa ? al - be : be - al;
    double *X = g->scratch;                         /* per x: XS */
    double *TT = X + g->nx * XS;                    /* per T: 6 */
    double *TX = TT + 6 * g->nT;                    /* per t_x: 4 */
    /* the largest argument of the series: at the smallest t_x */
    double zmax = g->ntx ? D / (P + g->utx[0]) : 0.0;
    if (zmax > SERIES_MAX_Z)
        zmax = SERIES_MAX_Z;
    for (size_t i = 0; i < g->nx; i++) {
        double x = g->ux[i], *v = X + i * XS;
        double K = r + s + x, m = pa ? s + 1.0 : r + x;
        v[0] = seg__clv_lgratio(r, x);
        v[1] = seg__clv_psiratio(r, x);
        v[2] = K;
        v[3] = m;
        /* terms needed at zmax: c_n zmax^n falls below 1e-18 of the largest */
        int len = 8;
        {
            double t = 1.0, top = 1.0;
            for (int n = 0; n < NT - 8; n++) {
                t *= (m + n) / (n + 1.0) * zmax;
                top = t > top ? t : top;
                len = n + 9;
                if (t < 1e-18 * top && (m + n + 1) * zmax < (n + 2))
                    break;
            }
        }
        v[4] = len;
        double *A = v + 8, *B = A + NT, *C = B + NT, *Dn = C + NT;
        double c = 1.0, S = 0.0;
        for (int n = 0; n < len; n++) {
            double ik = 1.0 / (K + n);
            A[n] = c * ik;
            B[n] = A[n] * ik;
            C[n] = A[n] * S;
            Dn[n] = n * A[n];
            S += 1.0 / (m + n);
            c *= (m + n) / (n + 1.0);
        }
    }
    for (size_t i = 0; i < g->nT; i++) {
        double T = g->uT[i], *v = TT + 6 * i;
        v[0] = log(al + T);
        v[1] = log(be + T);
        v[2] = 1.0 / (al + T);
        v[3] = 1.0 / (be + T);
        v[4] = 1.0 / (P + T);
        v[5] = -log(P + T);
    }
    for (size_t i = 0; i < g->ntx; i++) {
        double tx = g->utx[i], *v = TX + 4 * i;
        v[0] = 1.0 / (P + tx);
        v[1] = -log(P + tx);
    }
    double lal = log(al), lbe = log(be), ls = log(s);
    double ll = 0.0, gs[4] = { 0, 0, 0, 0 };
    for (size_t j = 0; j < g->n; j++) {
        const double *vx = X + g->ix[j] * XS, *vT = TT + 6 * g->iT[j], *vt = TX + 4 * g->itx[j];
        double x = g->x[j], w = g->w[j], k = r + x;
        double l1 = -k * vT[0] - s * vT[1];
        double g1[4] = { -vT[0], -k * vT[2], -vT[1], -s * vT[3] };
        double l, w1, w2 = 0.0, g2[4] = { 0, 0, 0, 0 };
        bool done = false;
        if (g->tx[j] >= g->T[j]) { /* A0 = 0: alive for sure */
            l = l1;
            w1 = 1.0;
            done = true;
        } else {
            double K = vx[2];
            double y[2] = { vt[0], vT[4] }, ly[2] = { vt[1], vT[5] };
            double z[2] = { D * y[0], D * y[1] }, H[2][4];
            double e1 = K * ly[0] - l1; /* log(y_t^K) - l1 */
            if (z[0] <= SERIES_MAX_Z && fabs(e1) < 600 && pnbd_h2(vx + 8, (int)vx[4], z, H)) {
                /* A0 = y_t^K H_t (1 - rho), rho = (y_T/y_t)^K H_T/H_t; the ratio of
                 * the terms of the likelihood q = s A0 / e^l1, and l = l1 + log(1 + q) */
                double rho = exp(K * (ly[1] - ly[0])) * (H[1][0] / H[0][0]), den = 1.0 - rho;
                double q = s * H[0][0] * den * exp(e1);
                l = l1 + log1p(q);
                w1 = 1.0 / (1.0 + q);
                w2 = q * w1;
                double dG[2][4], qd[4];
                for (int e = 0; e < 2; e++) {
                    dG[e][0] = ly[e] + H[e][1];
                    dG[e][1] = H[e][2];
                    dG[e][2] = -K * y[e] + H[e][3] * y[e] * (1.0 - z[e]);
                    dG[e][3] = -y[e] * H[e][3];
                }
                for (int i = 0; i < 4; i++)
                    qd[i] = (dG[0][i] - rho * dG[1][i]) / den;
                g2[0] = qd[0] + (pa ? 0.0 : qd[1]);
                g2[2] = 1.0 / s + qd[0] + (pa ? qd[1] : 0.0);
                g2[1] = pa ? qd[2] : qd[3];
                g2[3] = pa ? qd[3] : qd[2];
                done = true;
            }
        }
        if (!done) { /* the general code */
            double dl[4];
            double l2 = ls + seg__clv_pnbd_log_a0(p, x, g->tx[j], g->T[j], dl);
            double u = l1 - l2, e = exp(-fabs(u));
            l = (u > 0 ? l1 : l2) + seg__clv_log1p_small(e);
            w1 = u >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
            w2 = 1.0 - w1;
            g2[0] = dl[0];
            g2[1] = dl[1];
            g2[2] = 1.0 / s + dl[2];
            g2[3] = dl[3];
        }
        ll += w * (vx[0] + l);
        gs[0] += w * (vx[1] + w1 * g1[0] + w2 * g2[0]);
        gs[1] += w * (w1 * g1[1] + w2 * g2[1]);
        gs[2] += w * (w1 * g1[2] + w2 * g2[2]);
        gs[3] += w * (w1 * g1[3] + w2 * g2[3]);
    }
    double W = g->customers;
    ll += W * (r * lal + s * lbe);
    if (grad) {
        grad[0] = r * (gs[0] + W * lal);
        grad[1] = al * (gs[1] + W * r / al);
        grad[2] = s * (gs[2] + W * lbe);
        grad[3] = be * (gs[3] + W * s / be);
    }
    return ll;
}

/* Gamma-Gamma: groups hold x in g->x and the mean spend in g->tx */
static double gg_ll_groups(const double *pp, const seg__clv_groups *g, double *grad)
{
    double p = pp[0], q = pp[1], ga = pp[2];
    double *X = g->scratch; /* per x: lnG(px+q) - lnG(px), psi(px+q), psi(px) */
    for (size_t i = 0; i < g->nx; i++) {
        double px = p * g->ux[i];
        X[3 * i] = seg__clv_lngamma(px + q) - seg__clv_lngamma(px);
        X[3 * i + 1] = seg__clv_digamma(px + q);
        X[3 * i + 2] = seg__clv_digamma(px);
    }
    double lgq = seg__clv_lngamma(q), pq = seg__clv_digamma(q), lga = log(ga);
    double ll = 0.0, gp = 0.0, gq = 0.0, gg = 0.0;
    for (size_t j = 0; j < g->n; j++) {
        const double *v = X + 3 * g->ix[j];
        double w = g->w[j], x = g->x[j], m = g->tx[j], px = p * x, mx = m * x;
        double lmx = log(mx), lsum = log(ga + mx);
        double L1 = lsum - lmx, L2 = lsum - lga; /* log1p(ga/mx), log1p(mx/ga) */
        if (ga < mx)
            L1 = log1p(ga / mx);
        else
            L2 = log1p(mx / ga);
        ll += w * (v[0] - lgq - log(m) - px * L1 - q * L2);
        gp += w * x * (v[1] - v[2] - L1);
        gq += w * (v[1] - pq - L2);
        gg += w * (q / ga - (px + q) / (ga + mx));
    }
    if (grad) {
        grad[0] = p * gp;
        grad[1] = q * gq;
        grad[2] = ga * gg;
        grad[3] = 0.0;
    }
    return ll;
}

double seg__clv_ll_groups(uint32_t kind, const double *p, const seg__clv_groups *g,
                          double *grad_log)
{
    switch (kind) {
    case SEG_CLV_BGNBD: return bg_ll_groups(0, p, g, grad_log);
    case SEG_CLV_MBGNBD: return bg_ll_groups(1, p, g, grad_log);
    case SEG_CLV_PARETO: return pnbd_ll_groups(p, g, grad_log);
    case 0: return gg_ll_groups(p, g, grad_log);
    default: return NAN;
    }
}

/* ------------------------------------------------------ predictions */

double seg__clv_log_p_alive(uint32_t kind, const double *p, double x, double tx, double T)
{
    if (kind == SEG_CLV_PARETO) {
        double l1, l2;
        pnbd_terms(p, x, tx, T, &l1, &l2, NULL, NULL);
        if (l2 == -INFINITY)
            return 0.0;
        return -seg__clv_softplus(l2 - l1);
    }
    int o = kind == SEG_CLV_MBGNBD;
    if (x + o == 0)
        return 0.0;
    double r = p[0], al = p[1], a = p[2], b = p[3];
    double u = log(a) - log(b + x + o - 1) + (r + x) * (log(al + T) - log(al + tx));
    return -seg__clv_softplus(u);
}

typedef struct bgq_ctx {
    double a, bp, k, tau, lnorm;
} bgq_ctx;

static double bgq_fn(void *ctx, double t, double lt, double l1t)
{
    const bgq_ctx *c = ctx;
    double tt = t * c->tau, lf;
    if (tt < 1e-12) /* (1 - (1+tt)^-k) / t = k tau (1 - (k+1) tt / 2 + ...) */
        lf = log(c->k * c->tau) + log1p(-0.5 * (c->k + 1.0) * tt);
    else
        lf = log(-expm1(-c->k * log1p(tt))) - lt;
    return c->lnorm + (c->a - 1.0) * lt + (c->bp - 1.0) * l1t + lf;
}

double seg__clv_bg_expected_quad(double a, double bp, double k, double tau)
{
    if (tau == 0)
        return 0.0;
    bgq_ctx c = { a, bp, k, tau, 0.0 };
    c.lnorm = seg__clv_lngamma(a + bp) - seg__clv_lngamma(a) - seg__clv_lngamma(bp);
    return seg__clv_de01(bgq_fn, &c, a - 1.0, bp - 1.0);
}

#define BG_SERIES_MAX_Z 0.9

/*
 * BG/NBD and MBG/NBD: E[Y(t) | alive] at nt horizons t[] at once (their
 * series coefficients do not depend on t).  With z = t/(c+t), C = a+bp-1:
 *   E = C [ (1 - (1-z)^(a-1)) / (a-1)  -  (1-z)^(a-1) G(z) ],
 *   G(z) = sum_{n>=1} (C-k)_n (a)_(n-1) / ((C)_n n!) z^n,
 * the Euler transform of C/(a-1) [1 - (1-z)^k 2F1(k, bp; C; z)], which
 * stays exact at a = 1 and has no overflow.  Horizons with z > 0.9 use the
 * quadrature instead.
 */
static void bg_expected_many(const double *p, int o, double x, double T, const double *t,
                             double *out, int nt)
{
    double a = p[2], k = p[0] + x, c = p[1] + T, bp = p[3] + x + o, C = a + bp - 1.0;
    double z[64], pw[64], G[64], zmax = 0.0;
    int ns = 0;
    for (int j = 0; j < nt; j++) {
        double zj = t[j] / (c + t[j]);
        if (t[j] <= 0) {
            out[j] = 0.0;
            z[j] = -1.0;
        } else if (zj > BG_SERIES_MAX_Z) {
            out[j] = seg__clv_bg_expected_quad(a, bp, k, t[j] / c);
            z[j] = -1.0;
        } else {
            z[j] = zj;
            pw[j] = 1.0;
            G[j] = 0.0;
            ns++;
            if (zj > zmax)
                zmax = zj;
        }
    }
    if (!ns)
        return;
    double coef = 1.0; /* (C-k)_n (a)_(n-1) / ((C)_n n!) */
    double ap = C - k;
    for (int n = 1; n < 20000; n++) {
        coef *= (ap + n - 1) * (n == 1 ? 1.0 : a + n - 2) / ((C + n - 1) * n);
        double biggest = 0.0, sum_max = 0.0;
        for (int j = 0; j < nt; j++) {
            if (z[j] < 0)
                continue;
            pw[j] *= z[j];
            double term = coef * pw[j];
            G[j] += term;
            if (z[j] == zmax) {
                biggest = fabs(term);
                sum_max = fabs(G[j]);
            }
        }
        double next = fabs((ap + n) * (a + n - 1) / ((C + n) * (n + 1.0))) * zmax;
        if (coef == 0.0 || (next < 1.0 && biggest * next / (1.0 - next) <= 1e-17 * sum_max))
            break;
    }
    for (int j = 0; j < nt; j++) {
        if (z[j] < 0)
            continue;
        double L = log1p(-z[j]);
        out[j] = C * (seg__clv_expm1_ratio(a - 1.0, L) - exp((a - 1.0) * L) * G[j]);
    }
}

static double pnbd_expected_alive(const double *p, double x, double T, double t)
{
    double k = p[0] + x, c = p[1] + T, s = p[2], d = p[3] + T;
    return k * d / c * seg__clv_expm1_ratio(s - 1.0, -log1p(t / d));
}

double seg__clv_expected_alive(uint32_t kind, const double *p, double x, double T, double t)
{
    if (t <= 0)
        return 0.0;
    if (kind == SEG_CLV_PARETO)
        return pnbd_expected_alive(p, x, T, t);
    double out;
    bg_expected_many(p, kind == SEG_CLV_MBGNBD, x, T, &t, &out, 1);
    return out;
}

/*
 * int_0^H e^{-delta u} dE(u) = e^{-delta H} E(H) + delta int_0^H e^{-delta u} E(u) du,
 * the integral by 16-point Gauss-Legendre in w = log(1 + u/c), c = alpha + T
 * (beta + T for Pareto/NBD): E is analytic in a strip around [0, W] in w.
 */
double seg__clv_discounted_alive(uint32_t kind, const double *p, double x, double T, double H,
                                 double delta)
{
    if (H <= 0)
        return 0.0;
    if (delta == 0.0)
        return seg__clv_expected_alive(kind, p, x, T, H);
    double c = (kind == SEG_CLV_PARETO ? p[3] : p[1]) + T;
    double W = log1p(H / c), mid = 0.5 * W, half = 0.5 * W;
    const seg__clv_gl *gl = &seg__clv_gl16;
    double u[17], E[17];
    int n = 0;
    for (int i = 0; i < gl->n / 2; i++) {
        u[n++] = c * expm1(mid + half * gl->x[i]);
        u[n++] = c * expm1(mid - half * gl->x[i]);
    }
    u[n++] = H;
    if (kind == SEG_CLV_PARETO) {
        for (int j = 0; j < n; j++)
            E[j] = pnbd_expected_alive(p, x, T, u[j]);
    } else {
        bg_expected_many(p, kind == SEG_CLV_MBGNBD, x, T, u, E, n);
    }
    double integral = 0.0;
    for (int i = 0; i < gl->n / 2; i++)
        for (int sgn = 0; sgn < 2; sgn++) {
            int j = 2 * i + sgn;
            double du = u[j] + c; /* du/dw = c e^w = u + c */
            integral += gl->w[i] * exp(-delta * u[j]) * E[j] * du;
        }
    integral *= half;
    return exp(-delta * H) * E[n - 1] + delta * integral;
}

/* log of the negative binomial P(N = j) with shape k, success z: Gamma(k+j)
 * / (Gamma(k) j!) (1-z)^k z^j, given lz1 = log(1-z), lz = log z */
static double lnb(double k, double j, double lz1, double lz)
{
    return seg__clv_lgratio(k, j) - seg__clv_lngamma(j + 1.0) + k * lz1 + (j ? j * lz : 0.0);
}

/* P(N >= n) for that negative binomial */
static double nb_tail(double k, uint32_t n, double lz1, double lz)
{
    if (n == 0)
        return 1.0;
    double head = 0.0;
    for (uint32_t j = 0; j < n; j++)
        head += exp(lnb(k, j, lz1, lz));
    if (head < 0.5)
        return 1.0 - head;
    /* sum the tail itself: terms fall by ~z each once j > k z / (1-z) */
    double tail = 0.0, z = exp(lz);
    double term = exp(lnb(k, n, lz1, lz));
    for (uint32_t j = n; j < n + 100000; j++) {
        tail += term;
        double ratio = (k + j) / (j + 1.0) * z;
        term *= ratio;
        if (ratio < 1.0 && term <= 1e-17 * tail * (1.0 - ratio))
            break;
        if (term == 0.0)
            break;
    }
    return tail;
}

double seg__clv_prob_n(uint32_t kind, const double *p, double x, double tx, double T, double t,
                       uint32_t n)
{
    double palive = exp(seg__clv_log_p_alive(kind, p, x, tx, T));
    double dead = n == 0 ? 1.0 - palive : 0.0;
    if (t <= 0)
        return n == 0 ? 1.0 : 0.0;
    double k = p[0] + x, c = p[1] + T;
    if (kind != SEG_CLV_PARETO) {
        int o = kind == SEG_CLV_MBGNBD;
        double a = p[2], bp = p[3] + x + o;
        double lz1 = -log1p(t / c), lz = log(t / (c + t)); /* 1-z = c/(c+t) */
        /* alive after n purchases and no more: E[(1-p)^n] NB(n) */
        double v = exp(seg__clv_lgratio(bp, n) - seg__clv_lgratio(a + bp, n) + lnb(k, n, lz1, lz));
        if (n > 0) /* dropped out right after the n-th purchase, which came before t */
            v += exp(log(a) + seg__clv_lgratio(bp, n - 1.0) - seg__clv_lgratio(a + bp, n)) *
                 nb_tail(k, n, lz1, lz);
        return dead + palive * v;
    }
    /* Pareto/NBD: alive throughout, or dead at u in (0, t) having bought n by then */
    double s = p[2], d = p[3] + T;
    double v = exp(lnb(k, n, -log1p(t / c), log(t / (c + t))) - s * log1p(t / d));
    double m0 = fmin(c, d), W = log1p(t / m0);
    const seg__clv_gl *gl = &seg__clv_gl16;
    double integral = 0.0;
    for (int panel = 0; panel < 4; panel++) {
        double mid = (panel + 0.5) * W / 4, half = W / 8;
        for (int i = 0; i < gl->n / 2; i++)
            for (int sgn = -1; sgn <= 1; sgn += 2) {
                double w = mid + sgn * half * gl->x[i];
                double u = m0 * expm1(w), du = u + m0;
                double lv = log(s) - (s + 1.0) * log1p(u / d) - log(d) +
                            lnb(k, n, -log1p(u / c), log(u / (c + u)));
                integral += gl->w[i] * half * exp(lv) * du;
            }
    }
    return dead + palive * (v + integral);
}
