/*
 * Maximum-likelihood fitting: validation and grouping of the summaries,
 * BFGS on the log-parameters with a backtracking line search, several
 * starting points, and the checks that catch a fit gone wrong (a parameter
 * running to a boundary, a flat or non-finite likelihood, too few repeat
 * buyers, no convergence).
 */
#include "clv/clv-private.h"

#include <float.h>
#include <stdio.h>
#include <stdlib.h>

/* -------------------------------------------------------- validation */

#define row_error(m, i, fmt, ...) seg__clv_error(m, SEG_EINVAL, "row %zu: " fmt, i, __VA_ARGS__)

/* Check one row; *use is false for rows that do not enter the fit. */
static int check_row(seg_clv_model *m, const seg_clv_columns *c, size_t i, bool spend,
                     bool *use, uint64_t *excluded)
{
    double x = c->frequency[i], tx = c->recency ? c->recency[i] : 0.0,
           T = c->age ? c->age[i] : 0.0, w = c->weight ? c->weight[i] : 1.0;
    *use = true;
    if (!(isfinite(w) && w >= 0))
        return row_error(m, i, "weight %g is not a finite number >= 0", w);
    if (!(isfinite(x) && x >= 0 && x == floor(x) && x <= 1e9))
        return row_error(m, i, "frequency %g is not a whole number in 0..1e9", x);
    if (spend) {
        double mo = c->monetary[i];
        if (!(isfinite(mo) && mo >= 0))
            return row_error(m, i, "monetary %g is not a finite number >= 0", mo);
        if (x == 0 || mo == 0 || w == 0) {
            *use = false;
            if (w > 0)
                (*excluded)++;
        }
        return SEG_OK;
    }
    if (!(isfinite(T) && T >= 0 && T <= 1e9))
        return row_error(m, i, "age %g is not a number in 0..1e9", T);
    if (!(isfinite(tx) && tx >= 0))
        return row_error(m, i, "recency %g is not a finite number >= 0", tx);
    if (tx > T)
        return row_error(m, i, "recency %g is greater than age %g", tx, T);
    if (x == 0 && tx != 0)
        return row_error(m, i, "recency %g with frequency 0 (must be 0)", tx);
    if (w == 0)
        *use = false;
    return SEG_OK;
}

int seg__clv_check_summary(seg_clv_model *m, double x, double tx, double T)
{
    if (!(isfinite(x) && x >= 0 && x == floor(x) && x <= 1e9))
        return seg__clv_error(m, SEG_EINVAL, "frequency %g is not a whole number in 0..1e9", x);
    if (!(isfinite(T) && T >= 0 && T <= 1e9))
        return seg__clv_error(m, SEG_EINVAL, "age %g is not a number in 0..1e9", T);
    if (!(isfinite(tx) && tx >= 0 && tx <= T))
        return seg__clv_error(m, SEG_EINVAL, "recency %g is not a number in 0..age (%g)", tx, T);
    if (x == 0 && tx != 0)
        return seg__clv_error(m, SEG_EINVAL, "recency %g with frequency 0 (must be 0)", tx);
    return SEG_OK;
}

/* ---------------------------------------------------------- grouping */

static uint64_t dbits(double v)
{
    uint64_t u;
    v += 0.0; /* -0.0 -> 0.0 */
    memcpy(&u, &v, sizeof u);
    return u;
}

/* murmur3's finalizer: every input bit reaches the low bits (the table
 * index), which matters for doubles like 3.0 whose low bits are all zero */
static uint64_t fmix(uint64_t z)
{
    z ^= z >> 33;
    z *= UINT64_C(0xff51afd7ed558ccd);
    z ^= z >> 33;
    z *= UINT64_C(0xc4ceb9fe1a85ec53);
    return z ^ (z >> 33);
}

static uint64_t key_hash(double a, double b, double c)
{
    return fmix(fmix(fmix(dbits(a)) ^ dbits(b)) ^ dbits(c));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorted distinct values of v[0..n) into *u (allocated), their count in *nu,
 * and each v's index into idx.  The values are hashed (there are few distinct
 * ones: days, frequencies), and only the distinct ones sorted. */
static int distinct(const seg__alloc *al, const double *v, size_t n, double **u, size_t *nu,
                    uint32_t *idx)
{
    size_t cap = 64, k = 0, ucap = 32;
    uint32_t *slots = seg__calloc(al, cap, sizeof *slots);
    double *s = seg__malloc(al, ucap * sizeof *s);
    uint32_t *rank = NULL;
    if (!slots || !s)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        if (2 * (k + 1) > cap) {
            size_t ncap = 2 * cap;
            uint32_t *ns = seg__calloc(al, ncap, sizeof *ns);
            if (!ns)
                goto nomem;
            for (size_t j = 0; j < k; j++) {
                size_t h = (size_t)fmix(dbits(s[j])) & (ncap - 1);
                while (ns[h])
                    h = (h + 1) & (ncap - 1);
                ns[h] = (uint32_t)(j + 1);
            }
            seg__free(al, slots);
            slots = ns;
            cap = ncap;
        }
        size_t h = (size_t)fmix(dbits(v[i])) & (cap - 1);
        for (;;) {
            uint32_t e = slots[h];
            if (!e) {
                if (k == ucap) {
                    double *ns = seg__realloc_array(al, s, ucap * 2, sizeof *s);
                    if (!ns)
                        goto nomem;
                    s = ns;
                    ucap *= 2;
                }
                s[k] = v[i];
                slots[h] = (uint32_t)(++k);
                idx[i] = (uint32_t)(k - 1);
                break;
            }
            if (s[e - 1] == v[i]) {
                idx[i] = e - 1;
                break;
            }
            h = (h + 1) & (cap - 1);
        }
    }
    /* sort the distinct values and renumber: idx holds first-seen order */
    rank = seg__malloc(al, (k ? k : 1) * sizeof *rank);
    double *sorted = seg__malloc(al, (k ? k : 1) * sizeof *sorted);
    if (!rank || !sorted) {
        seg__free(al, sorted);
        goto nomem;
    }
    memcpy(sorted, s, k * sizeof *s);
    qsort(sorted, k, sizeof *sorted, cmp_double);
    for (size_t j = 0; j < k; j++) { /* the rank of s[j] in sorted */
        size_t lo = 0, hi = k;
        while (hi - lo > 1) {
            size_t mid = (lo + hi) / 2;
            if (sorted[mid] <= s[j])
                lo = mid;
            else
                hi = mid;
        }
        rank[j] = (uint32_t)lo;
    }
    for (size_t i = 0; i < n; i++)
        idx[i] = rank[idx[i]];
    seg__free(al, slots);
    seg__free(al, s);
    seg__free(al, rank);
    *u = sorted;
    *nu = k;
    return SEG_OK;
nomem:
    seg__free(al, slots);
    seg__free(al, s);
    seg__free(al, rank);
    return SEG_ENOMEM;
}

void seg__clv_groups_free(const seg__alloc *a, seg__clv_groups *g)
{
    seg__free(a, g->x);
    seg__free(a, g->tx);
    seg__free(a, g->T);
    seg__free(a, g->w);
    seg__free(a, g->ux);
    seg__free(a, g->utx);
    seg__free(a, g->uT);
    seg__free(a, g->ix);
    seg__free(a, g->itx);
    seg__free(a, g->iT);
    seg__free(a, g->scratch);
    memset(g, 0, sizeof *g);
}

int seg__clv_group(seg_clv_model *m, const seg_clv_columns *c, bool spend, seg__clv_groups *g,
                   uint64_t *excluded)
{
    const seg__alloc *al = &m->alloc;
    memset(g, 0, sizeof *g);
    *excluded = 0;
    size_t n = c->n;
    if (n > UINT32_MAX / 2)
        return seg__clv_error(m, SEG_EINVAL, "too many rows (%zu)", n);
    /* validate everything first */
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        bool use;
        int rc = check_row(m, c, i, spend, &use, excluded);
        if (rc != SEG_OK)
            return rc;
        used += use;
    }
    /* the table grows with the groups, not the rows: when many rows share
     * a summary it stays small enough for the caches */
    size_t cap = 1024;
    uint32_t *slots = seg__calloc(al, cap, sizeof *slots);
    size_t gcap = used ? used : 1;
    g->x = seg__calloc(al, gcap, sizeof *g->x);
    g->tx = seg__calloc(al, gcap, sizeof *g->tx);
    g->T = seg__calloc(al, gcap, sizeof *g->T);
    g->w = seg__calloc(al, gcap, sizeof *g->w);
    if (!slots || !g->x || !g->tx || !g->T || !g->w)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        double x = c->frequency[i], w = c->weight ? c->weight[i] : 1.0, tx, T;
        if (spend) {
            tx = c->monetary[i]; /* groups (x, mean spend) */
            T = 0.0;
            if (x == 0 || tx == 0 || w == 0)
                continue;
        } else {
            tx = c->recency ? c->recency[i] : 0.0;
            T = c->age ? c->age[i] : 0.0;
            if (w == 0)
                continue;
        }
        tx += 0.0;
        T += 0.0;
        if (2 * (g->n + 1) > cap) { /* grow at half load */
            size_t ncap = 2 * cap;
            uint32_t *ns = seg__calloc(al, ncap, sizeof *ns);
            if (!ns)
                goto nomem;
            for (size_t j = 0; j < g->n; j++) {
                size_t h = (size_t)key_hash(g->x[j], g->tx[j], g->T[j]) & (ncap - 1);
                while (ns[h])
                    h = (h + 1) & (ncap - 1);
                ns[h] = (uint32_t)(j + 1);
            }
            seg__free(al, slots);
            slots = ns;
            cap = ncap;
        }
        size_t h = (size_t)key_hash(x, tx, T) & (cap - 1);
        for (;;) {
            uint32_t s = slots[h];
            if (!s) {
                size_t j = g->n++;
                g->x[j] = x;
                g->tx[j] = tx;
                g->T[j] = T;
                g->w[j] = w;
                slots[h] = (uint32_t)(j + 1);
                break;
            }
            size_t j = s - 1;
            if (g->x[j] == x && g->tx[j] == tx && g->T[j] == T) {
                g->w[j] += w;
                break;
            }
            h = (h + 1) & (cap - 1);
        }
        g->customers += w;
        if (x > 0)
            g->repeat += w;
    }
    seg__free(al, slots);
    slots = NULL;
    size_t gn = g->n ? g->n : 1;
    g->ix = seg__calloc(al, gn, sizeof *g->ix);
    g->itx = seg__calloc(al, gn, sizeof *g->itx);
    g->iT = seg__calloc(al, gn, sizeof *g->iT);
    if (!g->ix || !g->itx || !g->iT)
        goto nomem;
    if (distinct(al, g->x, g->n, &g->ux, &g->nx, g->ix) != SEG_OK ||
        distinct(al, g->tx, g->n, &g->utx, &g->ntx, g->itx) != SEG_OK ||
        distinct(al, g->T, g->n, &g->uT, &g->nT, g->iT) != SEG_OK)
        goto nomem;
    g->scratch = seg__calloc(al, SEG__CLV_SCRATCH(g->nx, g->nT, g->ntx), sizeof *g->scratch);
    if (!g->scratch)
        goto nomem;
    return SEG_OK;
nomem:
    seg__free(al, slots);
    seg__clv_groups_free(al, g);
    return seg__clv_error(m, SEG_ENOMEM, "out of memory");
}

/* ------------------------------------------------------------- BFGS */

#define MAXDIM 4
#define THETA_LIMIT 30.0   /* |log param| beyond this during a run: a boundary */
#define THETA_FINAL 18.4   /* ... or at a converged point (1e-8 .. 1e8) */
#define MAX_STEP 4.0       /* largest change of a log-parameter per iteration */

typedef struct problem {
    uint32_t kind;          /* 0 = Gamma-Gamma */
    int dim;
    const seg__clv_groups *g;
    uint32_t evals;
} problem;

/* f = -LL / W and its gradient in log-parameters; false when not finite */
static bool objective(problem *P, const double *theta, double *f, double *grad)
{
    double p[MAXDIM] = { 0, 0, 0, 0 }, gl[MAXDIM] = { 0, 0, 0, 0 };
    for (int i = 0; i < P->dim; i++)
        p[i] = exp(theta[i]);
    double ll = seg__clv_ll_groups(P->kind, p, P->g, grad ? gl : NULL);
    P->evals++;
    double W = P->g->customers;
    if (!isfinite(ll))
        return false;
    *f = -ll / W;
    if (grad)
        for (int i = 0; i < P->dim; i++) {
            if (!isfinite(gl[i]))
                return false;
            grad[i] = -gl[i] / W;
        }
    return true;
}

enum { RUN_CONVERGED, RUN_MAX_ITER, RUN_BOUNDARY, RUN_NONFINITE, RUN_STALLED };

typedef struct run {
    int status;
    int boundary_param;     /* for RUN_BOUNDARY */
    bool merged;            /* stopped next to an optimum found before */
    double theta[MAXDIM], f, g[MAXDIM];
    uint32_t iters;
} run;

static double gmax(const double *g, int n)
{
    double m = 0.0;
    for (int i = 0; i < n; i++)
        m = fmax(m, fabs(g[i]));
    return m;
}

static int out_of_bounds(const double *theta, int n, double limit)
{
    for (int i = 0; i < n; i++)
        if (fabs(theta[i]) > limit)
            return i;
    return -1;
}

static bool invert(int n, double A[MAXDIM][MAXDIM], double inv[MAXDIM][MAXDIM]);
static bool pos_def(int n, double A[MAXDIM][MAXDIM]);

/* The starting inverse Hessian: the inverse of a finite-difference Hessian
 * when it is positive definite (then the first steps are Newton steps),
 * else the identity scaled by its diagonal. */
static void initial_h(problem *P, const double *x, const double *g, double H[MAXDIM][MAXDIM])
{
    int n = P->dim;
    double Hs[MAXDIM][MAXDIM];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            H[i][j] = i == j;
    /* forward differences of the gradient: n evaluations */
    for (int j = 0; j < n; j++) {
        double t[MAXDIM], gj[MAXDIM], f;
        memcpy(t, x, n * sizeof *t);
        t[j] += 1e-4;
        if (!objective(P, t, &f, gj))
            return;
        for (int i = 0; i < n; i++)
            Hs[i][j] = (gj[i] - g[i]) / 1e-4;
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            Hs[i][j] = Hs[j][i] = 0.5 * (Hs[i][j] + Hs[j][i]);
    if (pos_def(n, Hs) && invert(n, Hs, H))
        return;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            H[i][j] = i == j ? (Hs[i][i] > 0 ? 1.0 / Hs[i][i] : 1.0) : 0.0;
}

/* known: NULL, or an optimum found from an earlier start; a run that comes
 * within 1% of its parameters with a likelihood as high (to 1e-7) is in its
 * basin and stops as converged, marked `merged`. */
/* A parameter that has moved by a factor of e^9 (8,100) from its start,
 * which is scaled to the data, and keeps moving outward is running off to 0
 * or infinity (the likelihood approaches its supremum there, slowly, so the
 * gradient alone would take long to tell). */
#define DRIFT_EVERY 25
#define DRIFT_RANGE 9.0
static int drifting(const double *x, const double *start, const double *snap, int n)
{
    for (int i = 0; i < n; i++) {
        double d = x[i] - start[i], before = snap[i] - start[i];
        if (fabs(d) > DRIFT_RANGE && fabs(d) > fabs(before) + 0.25 && d * before >= 0)
            return i;
    }
    return -1;
}

static void bfgs(problem *P, const double *theta0, uint32_t max_iter, double tol, const run *known,
                 run *R)
{
    int n = P->dim;
    double H[MAXDIM][MAXDIM], x[MAXDIM], g[MAXDIM], f, snap[MAXDIM];
    memset(R, 0, sizeof *R);
    memcpy(x, theta0, n * sizeof *x);
    memcpy(snap, theta0, n * sizeof *snap);
    if (!objective(P, x, &f, g)) {
        R->status = RUN_NONFINITE;
        memcpy(R->theta, x, sizeof x);
        R->f = NAN;
        return;
    }
    initial_h(P, x, g, H);
    bool first = false;
    R->status = RUN_MAX_ITER;
    uint32_t it;
    for (it = 0; it < max_iter; it++) {
        if (gmax(g, n) <= tol) {
            R->status = RUN_CONVERGED;
            break;
        }
        if (known) {
            double d = 0.0;
            for (int i = 0; i < n; i++)
                d = fmax(d, fabs(x[i] - known->theta[i]));
            if (d < 1e-2 && f <= known->f + 1e-7 * fabs(known->f)) {
                R->status = RUN_CONVERGED;
                R->merged = true;
                break;
            }
        }
        double p[MAXDIM], gp = 0.0;
        for (int i = 0; i < n; i++) {
            p[i] = 0.0;
            for (int j = 0; j < n; j++)
                p[i] -= H[i][j] * g[j];
            gp += p[i] * g[i];
        }
        if (!(gp < 0)) { /* not a descent direction: restart from steepest descent */
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    H[i][j] = i == j;
            first = true;
            gp = 0.0;
            for (int i = 0; i < n; i++) {
                p[i] = -g[i];
                gp -= g[i] * g[i];
            }
        }
        /* -gp / 2 is the decrease a Newton step would bring: once it is
         * below the rounding of f, no step can show progress; with the
         * gradient near the tolerance that is convergence */
        if (gmax(g, n) <= 100.0 * tol && -gp <= 16.0 * DBL_EPSILON * fabs(f)) {
            R->status = RUN_CONVERGED;
            break;
        }
        double big = gmax(p, n);
        if (big > MAX_STEP) {
            for (int i = 0; i < n; i++)
                p[i] *= MAX_STEP / big;
            gp *= MAX_STEP / big;
        }
        /* backtracking line search (Armijo), quadratic interpolation */
        double step = 1.0, xn[MAXDIM], gn[MAXDIM], fn = 0.0;
        bool ok = false;
        for (int ls = 0; ls < 60; ls++) {
            for (int i = 0; i < n; i++)
                xn[i] = x[i] + step * p[i];
            if (objective(P, xn, &fn, gn)) {
                if (fn <= f + 1e-4 * step * gp) {
                    ok = true;
                    break;
                }
                /* Near the optimum the decrease drops below the rounding
                 * of f (about 1e-16 |f|) while the analytic gradient is
                 * still exact: accept a step that keeps f within its
                 * rounding and makes the gradient smaller. */
                if (fn <= f + 8.0 * DBL_EPSILON * fabs(f) && gmax(gn, n) < gmax(g, n)) {
                    ok = true;
                    break;
                }
            }
            double next = 0.1 * step;
            if (isfinite(fn)) {
                double den = 2.0 * (fn - f - step * gp);
                if (den > 0) {
                    double q = -gp * step * step / den;
                    next = fmin(fmax(q, 0.1 * step), 0.5 * step);
                }
            }
            step = next;
            fn = NAN;
        }
        if (!ok) {
            R->status = RUN_STALLED;
            break;
        }
        double s[MAXDIM], y[MAXDIM], sy = 0.0, yy = 0.0, ss = 0.0;
        for (int i = 0; i < n; i++) {
            s[i] = xn[i] - x[i];
            y[i] = gn[i] - g[i];
            sy += s[i] * y[i];
            yy += y[i] * y[i];
            ss += s[i] * s[i];
        }
        memcpy(x, xn, n * sizeof *x);
        memcpy(g, gn, n * sizeof *g);
        f = fn;
        int ob = out_of_bounds(x, n, THETA_LIMIT);
        if (ob < 0 && (it + 1) % DRIFT_EVERY == 0) {
            ob = drifting(x, theta0, snap, n);
            memcpy(snap, x, n * sizeof *snap);
        }
        if (ob >= 0) {
            R->status = RUN_BOUNDARY;
            R->boundary_param = ob;
            it++;
            break;
        }
        if (sy > 1e-12 * sqrt(ss * yy)) {
            if (first) {
                double scale = sy / yy;
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < n; j++)
                        H[i][j] = i == j ? scale : 0.0;
                first = false;
            }
            /* H = (I - rho s y') H (I - rho y s') + rho s s' */
            double rho = 1.0 / sy, Hy[MAXDIM], yHy = 0.0;
            for (int i = 0; i < n; i++) {
                Hy[i] = 0.0;
                for (int j = 0; j < n; j++)
                    Hy[i] += H[i][j] * y[j];
                yHy += y[i] * Hy[i];
            }
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    H[i][j] += rho * ((1.0 + rho * yHy) * s[i] * s[j] - Hy[i] * s[j] - s[i] * Hy[j]);
        }
    }
    if (R->status == RUN_MAX_ITER && gmax(g, n) <= tol)
        R->status = RUN_CONVERGED;
    if (R->status == RUN_MAX_ITER || R->status == RUN_STALLED) {
        for (int i = 0; i < n; i++)
            if (fabs(x[i] - theta0[i]) > DRIFT_RANGE) {
                R->status = RUN_BOUNDARY;
                R->boundary_param = i;
                break;
            }
    }
    R->iters = it;
    memcpy(R->theta, x, sizeof x);
    memcpy(R->g, g, sizeof g);
    R->f = f;
}

/* ---------------------------------------------------- Hessian checks */

/* Eigenvalues of a symmetric matrix (Jacobi rotations). */
static void sym_eigen(int n, double A[MAXDIM][MAXDIM], double *ev)
{
    double a[MAXDIM][MAXDIM];
    memcpy(a, A, sizeof a);
    for (int sweep = 0; sweep < 60; sweep++) {
        double off = 0.0;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
                off += a[i][j] * a[i][j];
        if (off < 1e-30)
            break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                if (a[p][q] == 0.0)
                    continue;
                double th = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                double t = (th >= 0 ? 1.0 : -1.0) / (fabs(th) + sqrt(th * th + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < n; k++) {
                    double akp = a[k][p], akq = a[k][q];
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) {
                    double apk = a[p][k], aqk = a[q][k];
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
            }
    }
    for (int i = 0; i < n; i++)
        ev[i] = a[i][i];
}

/* Cholesky test: is the symmetric matrix positive definite? */
static bool pos_def(int n, double A[MAXDIM][MAXDIM])
{
    double L[MAXDIM][MAXDIM];
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double sum = A[i][j];
            for (int k = 0; k < j; k++)
                sum -= L[i][k] * L[j][k];
            if (i == j) {
                if (!(sum > 0))
                    return false;
                L[i][i] = sqrt(sum);
            } else {
                L[i][j] = sum / L[j][j];
            }
        }
    return true;
}

/* Invert a symmetric positive definite matrix (Gauss-Jordan); false if singular. */
static bool invert(int n, double A[MAXDIM][MAXDIM], double inv[MAXDIM][MAXDIM])
{
    double a[MAXDIM][2 * MAXDIM];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 2 * n; j++)
            a[i][j] = j < n ? A[i][j] : (j - n == i);
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(a[r][c]) > fabs(a[piv][c]))
                piv = r;
        if (a[piv][c] == 0.0)
            return false;
        for (int j = 0; j < 2 * n; j++) {
            double t = a[c][j];
            a[c][j] = a[piv][j];
            a[piv][j] = t;
        }
        double d = a[c][c];
        for (int j = 0; j < 2 * n; j++)
            a[c][j] /= d;
        for (int r = 0; r < n; r++)
            if (r != c) {
                double f = a[r][c];
                for (int j = 0; j < 2 * n; j++)
                    a[r][j] -= f * a[c][j];
            }
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            inv[i][j] = a[i][j + n];
    return true;
}

/* Hessian of f at theta by central differences of the analytic gradient. */
static bool hessian(problem *P, const double *theta, double Hs[MAXDIM][MAXDIM])
{
    int n = P->dim;
    const double h = 1e-4;
    for (int j = 0; j < n; j++) {
        double tp[MAXDIM], tm[MAXDIM], gp[MAXDIM], gm[MAXDIM], f;
        memcpy(tp, theta, n * sizeof *tp);
        memcpy(tm, theta, n * sizeof *tm);
        tp[j] += h;
        tm[j] -= h;
        if (!objective(P, tp, &f, gp) || !objective(P, tm, &f, gm))
            return false;
        for (int i = 0; i < n; i++)
            Hs[i][j] = (gp[i] - gm[i]) / (2.0 * h);
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            Hs[i][j] = Hs[j][i] = 0.5 * (Hs[i][j] + Hs[j][i]);
    return true;
}

/* -------------------------------------------------------------- fit */

static const char *const gg_names[3] = { "p", "q", "gamma" };

static void starting_points(uint32_t kind, const seg__clv_groups *g, double st[3][MAXDIM])
{
    /* scales from the data: mean frequency, mean age; mean spend */
    double sx = 0.0, sT = 0.0, W = g->customers;
    for (size_t j = 0; j < g->n; j++) {
        sx += g->w[j] * g->x[j];
        sT += g->w[j] * (kind ? g->T[j] : g->tx[j]);
    }
    double mx = fmax(sx / W, 1e-3), mT = fmax(sT / W, 1e-3);
    if (kind == 0) { /* Gamma-Gamma: p gamma / (q - 1) = mean spend */
        double r0[3][3] = { { 1.0, 2.0, 1.0 }, { 5.0, 3.0, 0.4 }, { 0.5, 1.5, 0.25 } };
        for (int i = 0; i < 3; i++) {
            st[i][0] = log(r0[i][0]);
            st[i][1] = log(r0[i][1]);
            st[i][2] = log(r0[i][2] * mT);
            st[i][3] = 0.0;
        }
        return;
    }
    double alpha0 = mT / mx; /* r / alpha ~ purchases per unit */
    double r0[3][4] = { { 1.0, 1.0, 1.0, 1.0 }, { 0.3, 0.3, 0.5, 3.0 }, { 3.0, 3.0, 3.0, 10.0 } };
    for (int i = 0; i < 3; i++) {
        st[i][0] = log(r0[i][0]);
        st[i][1] = log(r0[i][1] * alpha0);
        if (kind == SEG_CLV_PARETO) { /* s, beta: lifetimes of the order of the ages */
            st[i][2] = log(r0[i][2]);
            st[i][3] = log(r0[i][2] * mT);
        } else {
            st[i][2] = log(r0[i][2]);
            st[i][3] = log(r0[i][3]);
        }
    }
}

static void report_init(seg_clv_fit_report *R)
{
    memset(R, 0, sizeof *R);
    R->struct_size = sizeof *R;
    for (int i = 0; i < 4; i++)
        R->log_param_se[i] = NAN;
    R->log_likelihood = NAN;
    R->gradient_norm = NAN;
}

int seg__clv_fit_impl(seg_clv_model *m, const seg_clv_columns *cols, const seg_clv_fit_options *o,
                      bool spend, seg_clv_fit_report *R);
int seg__clv_fit_impl(seg_clv_model *m, const seg_clv_columns *cols, const seg_clv_fit_options *o,
                      bool spend, seg_clv_fit_report *R)
{
    report_init(R);
    uint32_t kind = spend ? 0 : m->kind;
    int dim = spend ? 3 : 4;
    const char *const *names = spend ? gg_names : seg__clv_param_names(m->kind);
    uint32_t max_iter = o->max_iterations ? o->max_iterations : 500;
    uint32_t nstarts = o->starts ? o->starts : 3;
    double tol = o->tolerance > 0 ? o->tolerance : 1e-8;
    double min_repeat = o->min_repeat_buyers > 0 ? o->min_repeat_buyers : 10.0;
    if (nstarts > 8)
        return seg__clv_error(m, SEG_EINVAL, "starts: %u is more than 8", (unsigned)nstarts);
    if (!(tol > 0 && tol < 1 && isfinite(o->tolerance)))
        return seg__clv_error(m, SEG_EINVAL, "tolerance: %g is not in (0, 1)", o->tolerance);
    if (o->start)
        for (int i = 0; i < dim; i++)
            if (!(isfinite(o->start[i]) && o->start[i] > 0))
                return seg__clv_error(m, SEG_EINVAL, "start: %s = %g is not a finite number > 0",
                                      names[i], o->start[i]);

    seg__clv_groups g;
    uint64_t excluded = 0;
    int rc = seg__clv_group(m, cols, spend, &g, &excluded);
    if (rc != SEG_OK)
        return rc;
    R->customers = g.customers;
    R->repeat_buyers = g.repeat;
    R->groups = g.n;
    R->excluded = excluded;
    if (g.customers <= 0) {
        R->status = SEG_CLV_FIT_NO_DATA;
        rc = seg__clv_error(m, SEG_ERROR, "no customer to fit%s",
                            spend ? " (Gamma-Gamma needs rows with frequency > 0 and monetary > 0)" : "");
        goto out;
    }
    if (g.repeat < min_repeat) {
        R->status = SEG_CLV_FIT_TOO_FEW;
        rc = seg__clv_error(m, SEG_ERROR, "too few repeat buyers to fit: %g (at least %g needed)",
                            g.repeat, min_repeat);
        goto out;
    }
    if (g.repeat < 50)
        R->warnings |= SEG_CLV_WARN_FEW_REPEAT;

    problem P = { kind, dim, &g, 0 };
    double st[3][MAXDIM];
    starting_points(kind, &g, st);
    run best;
    memset(&best, 0, sizeof best);
    best.status = -1;
    run worst_boundary; /* the best of the starts that ran to a boundary */
    memset(&worst_boundary, 0, sizeof worst_boundary);
    worst_boundary.status = -1;
    double conv_f[8];
    int nconv = 0;
    bool any_finite = false;
    for (uint32_t k = 0; k < nstarts; k++) {
        double th[MAXDIM] = { 0, 0, 0, 0 };
        if (o->start && k == 0) {
            for (int i = 0; i < dim; i++)
                th[i] = log(o->start[i]);
        } else {
            uint32_t j = o->start ? k - 1 : k;
            /* beyond the 3 base points: mix them */
            for (int i = 0; i < dim; i++)
                th[i] = j < 3 ? st[j][i] : 0.5 * (st[j % 3][i] + st[(j + 1) % 3][i]) + 0.3 * (j - 2.0);
        }
        run r;
        bfgs(&P, th, max_iter, tol, best.status == RUN_CONVERGED ? &best : NULL, &r);
        R->starts++;
        if (r.status != RUN_NONFINITE)
            any_finite = true;
        if (r.status == RUN_CONVERGED) {
            int ob = out_of_bounds(r.theta, dim, THETA_FINAL);
            if (ob >= 0) { /* converged out where the likelihood no longer changes */
                r.status = RUN_BOUNDARY;
                r.boundary_param = ob;
            }
        }
        if (r.status == RUN_CONVERGED) {
            R->starts_converged++;
            conv_f[nconv++] = r.f;
            if (best.status != RUN_CONVERGED || (r.f < best.f && !r.merged))
                best = r;
        } else if (r.status == RUN_BOUNDARY) {
            if (worst_boundary.status < 0 || r.f < worst_boundary.f)
                worst_boundary = r;
        } else if (r.status != RUN_NONFINITE && best.status != RUN_CONVERGED) {
            if (best.status < 0 || r.f < best.f)
                best = r;
        }
    }
    R->evaluations = P.evals;
    double W = g.customers;
    if (best.status < 0 && worst_boundary.status < 0) {
        R->status = SEG_CLV_FIT_NONFINITE;
        rc = seg__clv_error(m, SEG_ERROR, "the log-likelihood is not finite at any starting point%s",
                            any_finite ? "" : " (check the data for extreme values)");
        goto out;
    }
    /* a boundary run that beats every interior point: the likelihood's
     * supremum is at the boundary */
    if (worst_boundary.status >= 0 &&
        (best.status < 0 || worst_boundary.f < best.f - 1e-9 * fabs(best.f))) {
        run *b = &worst_boundary;
        int i = b->boundary_param;
        R->status = SEG_CLV_FIT_BOUNDARY;
        R->iterations = b->iters;
        R->log_likelihood = -b->f * W;
        R->gradient_norm = gmax(b->g, dim);
        for (int j = 0; j < dim; j++)
            R->params[j] = exp(b->theta[j]);
        rc = seg__clv_error(m, SEG_ERROR,
                            "the fit does not converge: %s runs to %s (%s = %g after %u iterations); "
                            "the data do not determine the model",
                            names[i], b->theta[i] > 0 ? "infinity" : "0", names[i],
                            exp(b->theta[i]), (unsigned)b->iters);
        goto out;
    }
    if (worst_boundary.status >= 0)
        R->warnings |= SEG_CLV_WARN_BOUNDARY_START;
    R->iterations = best.iters;
    R->log_likelihood = -best.f * W;
    R->gradient_norm = gmax(best.g, dim);
    for (int j = 0; j < dim; j++)
        R->params[j] = exp(best.theta[j]);
    if (best.status != RUN_CONVERGED) {
        R->status = SEG_CLV_FIT_MAX_ITER;
        rc = seg__clv_error(m, SEG_ERROR,
                            best.status == RUN_STALLED
                                ? "the fit does not converge: the line search failed after %u iterations "
                                  "(gradient %.3g, tolerance %.3g)"
                                : "the fit does not converge in %u iterations (gradient %.3g, tolerance %.3g)",
                            (unsigned)best.iters, R->gradient_norm, tol);
        goto out;
    }
    for (int i = 0; i < nconv; i++)
        if ((conv_f[i] - best.f) * W > 1e-4)
            R->warnings |= SEG_CLV_WARN_STARTS_DISAGREE;
    /* curvature: a flat direction means a parameter is not determined */
    double Hs[MAXDIM][MAXDIM], ev[MAXDIM], inv[MAXDIM][MAXDIM];
    if (hessian(&P, best.theta, Hs)) {
        R->evaluations = P.evals;
        sym_eigen(dim, Hs, ev);
        double lo = ev[0], hi = ev[0];
        for (int i = 1; i < dim; i++) {
            lo = fmin(lo, ev[i]);
            hi = fmax(hi, ev[i]);
        }
        if (!(lo > 1e-10 * fmax(hi, 1e-300)) || !(hi > 0)) {
            R->status = SEG_CLV_FIT_FLAT;
            rc = seg__clv_error(m, SEG_ERROR,
                                "the likelihood is flat at its maximum (curvature %.3g): the data do "
                                "not determine the parameters", lo);
            goto out;
        }
        if (invert(dim, Hs, inv))
            for (int i = 0; i < dim; i++) {
                R->log_param_se[i] = inv[i][i] > 0 ? sqrt(inv[i][i] / W) : NAN;
                if (!(R->log_param_se[i] <= 1.0))
                    R->warnings |= SEG_CLV_WARN_WEAK;
            }
    }
    R->status = SEG_CLV_FIT_CONVERGED;
    if (spend) {
        memcpy(m->spend, R->params, 3 * sizeof(double));
        m->has_spend = true;
    } else {
        memcpy(m->params, R->params, 4 * sizeof(double));
        m->has_params = true;
    }
    rc = SEG_OK;
out:
    seg__clv_groups_free(&m->alloc, &g);
    return rc;
}
