/*
 * The registry of named values: everything a definition can read about a
 * customer.  Each row names a value, its type, the arguments it takes and a
 * function computing it for one customer (seg__provider in
 * segdef-private.h).  The checker resolves names through this table (after
 * any extra table given to seg__segdef_compile_ex), the VM calls `get`
 * lazily, at most once per customer and value.
 *
 * Adding a value from another module (RFM scores, CLV, P(alive), loyalty
 * tier and points, journey state) is one row here plus its get function,
 * and, when the value needs the module's state for the whole run (a model's
 * thresholds or parameters), a bind function that fetches it once and fails
 * with a message when the module has nothing to offer yet.
 */
#include "segdef/segdef-private.h"
#include "segment/rfm.h"
#include "loyalty/loyalty-private.h"

#include <math.h>

#define CONSENT_BIT 0x80000000u

static void set_i(seg__val *out, int64_t v)
{
    out->u.i = v;
    out->n = 0;
    out->null = 0;
}

static void set_null(seg__val *out)
{
    out->u.i = 0;
    out->n = 0;
    out->null = 1;
}

#define AGG_INT(fn, expr)                                                            \
    static void fn(const seg__run *run, seg__cctx *cc, const seg__slot *sl, seg__val *out) \
    {                                                                                \
        (void)run;                                                                   \
        (void)sl;                                                                    \
        set_i(out, (int64_t)(expr));                                                 \
    }

AGG_INT(get_orders, cc->agg.orders)
AGG_INT(get_purchase_days, cc->agg.days)
AGG_INT(get_revenue, cc->agg.revenue)
AGG_INT(get_net_revenue, cc->agg.revenue + cc->agg.refunds)
AGG_INT(get_refunds, cc->agg.refunds)
AGG_INT(get_units, cc->agg.units)
AGG_INT(get_events, cc->agg.events)
AGG_INT(get_engagements, cc->agg.engagements)
#undef AGG_INT

static void get_first_purchase(const seg__run *run, seg__cctx *cc, const seg__slot *sl,
                               seg__val *out)
{
    (void)run; (void)sl;
    if (cc->agg.days) set_i(out, cc->agg.first_purchase); else set_null(out);
}

static void get_last_purchase(const seg__run *run, seg__cctx *cc, const seg__slot *sl,
                              seg__val *out)
{
    (void)run; (void)sl;
    if (cc->agg.days) set_i(out, cc->agg.last_purchase); else set_null(out);
}

static void get_first_seen(const seg__run *run, seg__cctx *cc, const seg__slot *sl,
                           seg__val *out)
{
    (void)run; (void)sl;
    if (cc->agg.events) set_i(out, cc->agg.first_seen); else set_null(out);
}

static void get_last_seen(const seg__run *run, seg__cctx *cc, const seg__slot *sl,
                          seg__val *out)
{
    (void)run; (void)sl;
    if (cc->agg.events) set_i(out, cc->agg.last_seen); else set_null(out);
}

/* whole days from t to now (t < now: events at or after now do not count) */
static int64_t days_before(int64_t now, int64_t t)
{
    return (now - t) / 86400;
}

static void get_days_since_last(const seg__run *run, seg__cctx *cc, const seg__slot *sl,
                                seg__val *out)
{
    (void)sl;
    if (cc->agg.days) set_i(out, days_before(run->now, cc->agg.last_purchase)); else set_null(out);
}

static void get_days_since_first(const seg__run *run, seg__cctx *cc, const seg__slot *sl,
                                 seg__val *out)
{
    (void)sl;
    if (cc->agg.days) set_i(out, days_before(run->now, cc->agg.first_purchase)); else set_null(out);
}

static void get_tenure(const seg__run *run, seg__cctx *cc, const seg__slot *sl, seg__val *out)
{
    (void)sl;
    if (cc->agg.days) set_i(out, run->now - cc->agg.first_purchase); else set_null(out);
}

static void get_aov(const seg__run *run, seg__cctx *cc, const seg__slot *sl, seg__val *out)
{
    (void)run; (void)sl;
    if (!cc->agg.orders) {
        set_null(out);
        return;
    }
    /* revenue / orders, rounded half away from zero (revenue >= 0) */
    uint64_t o = cc->agg.orders;
    int64_t r = cc->agg.revenue;
    set_i(out, (int64_t)(((uint64_t)r + o / 2) / o));
}

static void get_now(const seg__run *run, seg__cctx *cc, const seg__slot *sl, seg__val *out)
{
    (void)cc; (void)sl;
    set_i(out, run->now);
}

static void get_feature(const seg__run *run, seg__cctx *cc, const seg__slot *sl, seg__val *out)
{
    if (cc->scan) {
        set_i(out, run->feat_vals[(size_t)cc->ci * run->feat_stride + sl->feat]);
        return;
    }
    if (run->featv_ci != cc->ci)
        seg__run_walk_features((seg__run *)run, cc);
    set_i(out, run->featv[sl->feat]);
}

static const seg__attrval *find_attr(const seg__run *run, const seg__cctx *cc, uint32_t key)
{
    uint32_t e = cc->cust->ext;
    if (!e || key == SEG__NONE)
        return NULL;
    const seg__custext *x = &run->store->exts[e - 1];
    for (uint32_t k = 0; k < x->n; k++)
        if (x->items[k].key == key)
            return &x->items[k];
    return NULL;
}

static void get_attr(const seg__run *run, seg__cctx *cc, const seg__slot *sl, seg__val *out)
{
    const seg__attrval *v = find_attr(run, cc, sl->key);
    if (!v) {
        set_null(out);
        return;
    }
    out->null = 0;
    out->n = 0;
    switch (v->type) {
    case SEG_TYPE_STRING:
        out->u.s = v->v.s;
        out->n = (uint32_t)strlen(v->v.s);
        break;
    case SEG_TYPE_NUMBER:
        out->u.d = v->v.d;
        break;
    default:
        out->u.i = v->v.i;
        break;
    }
}

static void get_consent(const seg__run *run, seg__cctx *cc, const seg__slot *sl, seg__val *out)
{
    const seg__attrval *v = find_attr(run, cc, sl->key);
    set_i(out, v && v->type == SEG_CONSENT_GRANTED);
}

/* Name lookups happen once per run: an attribute or channel the db does
 * not know yet matches nobody. */
static int bind_attr(seg__run *run, seg__slot *sl)
{
    const seg__store *s = run->store;
    sl->key = seg__dict_find(&s->arena, &s->attr_names, sl->arg);
    return SEG_OK;
}

static int bind_consent(seg__run *run, seg__slot *sl)
{
    const seg__store *s = run->store;
    uint32_t k = seg__dict_find(&s->arena, &s->consent_chans, sl->arg);
    sl->key = k == SEG__NONE ? SEG__NONE : (k | CONSENT_BIT);
    return SEG_OK;
}

/* ---- RFM (lib/rfm): values as of now, with no window, and scores from
 * quantile thresholds calibrated on the customer base as of now (5 bins,
 * net revenue), as `segment rfm --as-of NOW` computes them.  The
 * thresholds are calibrated once per run and kept on the definition while
 * now and the store stay the same. */
static int bind_rfm(seg__run *run, seg__slot *sl)
{
    seg_segdef *d = run->def;
    const seg__store *s = run->store;
    if (!d->rfm || d->rfm_now != run->now || d->rfm_nevents != s->nevents ||
        d->rfm_live != s->live_events || d->rfm_ncusts != s->ncusts) {
        seg_rfm_thresholds_free(d->rfm);
        d->rfm = NULL;
        seg_rfm_options o = SEG_RFM_OPTIONS_INIT;
        o.as_of = run->now;
        int rc = seg_rfm_calibrate(&d->rfm, run->db, &o);
        if (rc != SEG_OK) {
            seg__error_prefix(run->db, "%s: RFM thresholds: ", sl->prov->name);
            return rc;
        }
        d->rfm_now = run->now;
        d->rfm_nevents = s->nevents;
        d->rfm_live = s->live_events;
        d->rfm_ncusts = s->ncusts;
    }
    sl->bound = d->rfm;
    return SEG_OK;
}

static int64_t rfm_recency(const seg__run *run, const seg__cctx *cc)
{
    return seg__day_of(run->now) - seg__day_of(cc->agg.last_purchase);
}

static void get_recency_days(const seg__run *run, seg__cctx *cc, const seg__slot *sl,
                             seg__val *out)
{
    (void)sl;
    if (cc->agg.orders) set_i(out, rfm_recency(run, cc)); else set_null(out);
}

static void get_frequency(const seg__run *run, seg__cctx *cc, const seg__slot *sl, seg__val *out)
{
    (void)run; (void)sl;
    set_i(out, cc->agg.orders);
}

static void get_monetary(const seg__run *run, seg__cctx *cc, const seg__slot *sl, seg__val *out)
{
    (void)run; (void)sl;
    set_i(out, cc->agg.revenue + cc->agg.refunds);
}

/* the score of one dimension; null without a purchase (no scores) */
#define RFM_SCORE(fn, dim, value)                                                          \
    static void fn(const seg__run *run, seg__cctx *cc, const seg__slot *sl, seg__val *out) \
    {                                                                                      \
        (void)run;                                                                         \
        if (!cc->agg.orders)                                                               \
            set_null(out);                                                                 \
        else                                                                               \
            set_i(out, seg_rfm_score(sl->bound, dim, (value)));                            \
    }
RFM_SCORE(get_r, SEG_RFM_R, rfm_recency(run, cc))
RFM_SCORE(get_f, SEG_RFM_F, cc->agg.orders)
RFM_SCORE(get_m, SEG_RFM_M, cc->agg.revenue + cc->agg.refunds)
#undef RFM_SCORE

/* ---- CLV (lib/clv): the model given with seg_segdef_set_clv(), scoring
 * each customer's summary as of now (in the model's unit).  Null for a
 * customer without a purchase before now. */
static int bind_clv(seg__run *run, seg__slot *sl)
{
    seg_segdef *d = run->def;
    if (!d->clv)
        return seg__error(run->db, SEG_ENOTFOUND,
                          "%s: this definition has no CLV model (give it one with "
                          "seg_segdef_set_clv(), or `segment ... --clv PARAMS`)", sl->prov->name);
    if (strcmp(sl->prov->name, "clv") == 0 && !d->clv->has_spend)
        return seg__error(run->db, SEG_ENOTFOUND,
                          "clv: the CLV model has no spend (Gamma-Gamma) parameters");
    /* the summaries' scratch, as large as the largest customer, so that no
     * customer allocates */
    const seg__store *s = run->store;
    uint32_t maxev = 1;
    for (uint32_t ci = 0; ci < s->ncusts; ci++)
        if (s->custs[ci].events > maxev)
            maxev = s->custs[ci].events;
    if (seg__clv_scratch_reserve(&run->db->alloc, &d->clv_scratch, maxev) != SEG_OK)
        return seg__error(run->db, SEG_ENOMEM, "out of memory");
    d->clv_gen++;
    return SEG_OK;
}

/* the customer's summary as of now (cached for the customer last asked) */
static const seg_clv_summary *clv_summary(const seg__run *run, const seg__cctx *cc)
{
    seg_segdef *d = run->def;
    if (d->clv_sum_gen != d->clv_gen || d->clv_sum_ci != cc->ci) {
        d->clv_sum.struct_size = sizeof d->clv_sum;
        /* the calibration period ends with the day of the last second
         * before now (the models count purchase days) */
        d->clv_sum_rc = seg__clv_customer_summary(&run->db->alloc, run->store, cc->ci, run->now - 1,
                                                  d->clv->unit, run->def->exponent,
                                                  &d->clv_scratch, &d->clv_sum);
        d->clv_sum_gen = d->clv_gen;
        d->clv_sum_ci = cc->ci;
    }
    return d->clv_sum_rc == SEG_OK ? &d->clv_sum : NULL;
}

static void set_d(seg__val *out, int rc, double v)
{
    if (rc != SEG_OK || !isfinite(v)) {
        set_null(out);
        return;
    }
    out->u.d = v;
    out->n = 0;
    out->null = 0;
}

static double clv_horizon(const seg__run *run, const seg__slot *sl)
{
    return (double)sl->dur / (double)seg__clv_unit_seconds(run->def->clv->unit);
}

static void get_p_alive(const seg__run *run, seg__cctx *cc, const seg__slot *sl, seg__val *out)
{
    (void)sl;
    const seg_clv_summary *m = clv_summary(run, cc);
    double v = 0;
    int rc = m ? seg_clv_p_alive(&v, run->def->clv, m->frequency, m->recency, m->age)
               : SEG_ENOTFOUND;
    set_d(out, rc, v);
}

static void get_expected_purchases(const seg__run *run, seg__cctx *cc, const seg__slot *sl,
                                   seg__val *out)
{
    const seg_clv_summary *m = clv_summary(run, cc);
    double v = 0;
    int rc = m ? seg_clv_expected_purchases(&v, run->def->clv, m->frequency, m->recency, m->age,
                                            clv_horizon(run, sl))
               : SEG_ENOTFOUND;
    set_d(out, rc, v);
}

static void get_clv(const seg__run *run, seg__cctx *cc, const seg__slot *sl, seg__val *out)
{
    const seg_clv_summary *m = clv_summary(run, cc);
    double v = 0;
    seg_clv_value_options o = run->def->clv_opts;
    o.horizon = clv_horizon(run, sl);
    int rc = m ? seg_clv_value(&v, run->def->clv, m->frequency, m->recency, m->age,
                               m->monetary, &o)
               : SEG_ENOTFOUND;
    /* money: currency units to minor units, rounded */
    double minor = v;
    for (int e = 0; e < run->def->exponent; e++)
        minor *= 10;
    if (rc != SEG_OK || !(fabs(minor) < 9.0e18)) {
        set_null(out);
        return;
    }
    set_i(out, (int64_t)llround(minor));
}

/* ---- column versions for the block machine: the getters above, every
 * lane in one loop (no call per lane).  Lanes outside the block hold stale
 * but valid contexts, so every lane is computed and only the null mask is
 * cut to the valid ones. */
#define COL(fn, val, isnull)                                                          \
    static void fn(const seg__run *run, const seg__block *b, const seg__slot *sl,    \
                   seg__col *c)                                                      \
    {                                                                                 \
        (void)run;                                                                    \
        (void)sl;                                                                     \
        uint64_t null = 0;                                                            \
        for (uint32_t l = 0; l < b->nlanes; l++) {                                    \
            const seg__cctx *cc = &b->cc[l];                                          \
            bool nul_ = (isnull);                                                     \
            c->v[l].i = nul_ ? 0 : (int64_t)(val);                                    \
            c->n[l] = 0;                                                              \
            null |= (uint64_t)nul_ << l;                                              \
        }                                                                             \
        c->null = null & b->valid;                                                    \
    }
COL(col_orders, cc->agg.orders, false)
COL(col_purchase_days, cc->agg.days, false)
COL(col_revenue, cc->agg.revenue, false)
COL(col_net_revenue, cc->agg.revenue + cc->agg.refunds, false)
COL(col_refunds, cc->agg.refunds, false)
COL(col_units, cc->agg.units, false)
COL(col_events, cc->agg.events, false)
COL(col_engagements, cc->agg.engagements, false)
COL(col_first_purchase, cc->agg.first_purchase, !cc->agg.days)
COL(col_last_purchase, cc->agg.last_purchase, !cc->agg.days)
COL(col_first_seen, cc->agg.first_seen, !cc->agg.events)
COL(col_last_seen, cc->agg.last_seen, !cc->agg.events)
COL(col_days_since_last, days_before(run->now, cc->agg.last_purchase), !cc->agg.days)
COL(col_days_since_first, days_before(run->now, cc->agg.first_purchase), !cc->agg.days)
COL(col_tenure, run->now - cc->agg.first_purchase, !cc->agg.days)
COL(col_aov, ((uint64_t)cc->agg.revenue + cc->agg.orders / 2) / cc->agg.orders, !cc->agg.orders)
COL(col_frequency, cc->agg.orders, false)
COL(col_monetary, cc->agg.revenue + cc->agg.refunds, false)
COL(col_recency_days, rfm_recency(run, cc), !cc->agg.orders)
#undef COL

static void col_feature(const seg__run *run, const seg__block *b, const seg__slot *sl,
                        seg__col *c)
{
    const int64_t *vals = run->feat_vals;
    size_t stride = run->feat_stride;
    bool all_scan = vals != NULL;
    for (uint32_t l = 0; l < b->nlanes && all_scan; l++)
        all_scan = b->cc[l].scan || !((b->valid >> l) & 1);
    if (all_scan) {
        for (uint32_t l = 0; l < b->nlanes; l++) {
            c->v[l].i = vals[(size_t)b->cc[l].ci * stride + sl->feat];
            c->n[l] = 0;
        }
    } else {
        for (uint32_t l = 0; l < b->nlanes; l++) {
            seg__val v;
            v.u.i = 0;
            if ((b->valid >> l) & 1)
                get_feature(run, (seg__cctx *)&b->cc[l], sl, &v);
            c->v[l].i = v.u.i;
            c->n[l] = 0;
        }
    }
    c->null = 0;
}

static void col_consent(const seg__run *run, const seg__block *b, const seg__slot *sl,
                        seg__col *c)
{
    for (uint32_t l = 0; l < b->nlanes; l++) {
        const seg__attrval *v = (b->valid >> l) & 1 ? find_attr(run, &b->cc[l], sl->key) : NULL;
        c->v[l].i = v && v->type == SEG_CONSENT_GRANTED;
        c->n[l] = 0;
    }
    c->null = 0;
}

static void col_attr(const seg__run *run, const seg__block *b, const seg__slot *sl, seg__col *c)
{
    uint64_t null = 0;
    for (uint32_t l = 0; l < b->nlanes; l++) {
        const seg__attrval *v = (b->valid >> l) & 1 ? find_attr(run, &b->cc[l], sl->key) : NULL;
        c->n[l] = 0;
        c->v[l].i = 0;
        if (!v) {
            null |= UINT64_C(1) << l;
        } else if (v->type == SEG_TYPE_STRING) {
            c->v[l].s = v->v.s;
            c->n[l] = (uint32_t)strlen(v->v.s);
        } else if (v->type == SEG_TYPE_NUMBER) {
            c->v[l].d = v->v.d;
        } else {
            c->v[l].i = v->v.i;
        }
    }
    c->null = null & b->valid;
}

/* ---- journeys (lib/journey): the customer's state in a journey of the
 * journeys open on the db, null when not in it (or none is open) */
static int bind_journey(seg__run *run, seg__slot *sl)
{
    uint32_t k = SEG__NONE;
    sl->bound = (void *)seg__jr_lookup(run->db, sl->arg, &k);
    sl->key = k;
    return SEG_OK;
}

static void get_journey_state(const seg__run *run, seg__cctx *cc, const seg__slot *sl,
                              seg__val *out)
{
    (void)run;
    const char *st = sl->bound && sl->key != SEG__NONE
                         ? seg__jr_state_name(sl->bound, sl->key, cc->ci) : NULL;
    if (!st) {
        set_null(out);
        return;
    }
    out->u.s = st;
    out->n = (uint32_t)strlen(st);
    out->null = 0;
}

/* ---- loyalty (lib/loyalty): the tier and the points balance of the
 * program attached to the db (seg_loyalty_attach), as of now. */
static int bind_loyalty(seg__run *run, seg__slot *sl)
{
    seg__ledger *l = NULL;
    int rc = seg__loyalty_for_values(run->db, &l);
    if (rc != SEG_OK) {
        seg__error_prefix(run->db, "%s: ", sl->prov->name);
        return rc;
    }
    sl->bound = l;
    return SEG_OK;
}

static void get_tier(const seg__run *run, seg__cctx *cc, const seg__slot *sl, seg__val *out)
{
    const seg__lres *r = seg__loyalty_value(sl->bound, cc->ci, run->now);
    out->u.s = seg__loyalty_tier_str(sl->bound, r->tier);
    out->n = (uint32_t)strlen(out->u.s);
    out->null = 0;
}

static void get_tier_rank(const seg__run *run, seg__cctx *cc, const seg__slot *sl, seg__val *out)
{
    set_i(out, seg__loyalty_value(sl->bound, cc->ci, run->now)->tier);
}

static void get_points(const seg__run *run, seg__cctx *cc, const seg__slot *sl, seg__val *out)
{
    set_i(out, seg__loyalty_value(sl->bound, cc->ci, run->now)->balance);
}

#define T(x) SEG__T_##x
const seg__provider seg__sd_builtins[] = {
    /* aggregates (all time, as of now) */
    { "orders", T(INT), SEG__SIG_NONE, 0, 0, get_orders, NULL,
      "distinct orders with at least one line of positive amount", col_orders },
    { "purchase_days", T(INT), SEG__SIG_NONE, 0, 0, get_purchase_days, NULL,
      "distinct UTC days with a purchase", col_purchase_days },
    { "revenue", T(MONEY), SEG__SIG_NONE, 0, 0, get_revenue, NULL,
      "sum of the positive purchase amounts", col_revenue },
    { "net_revenue", T(MONEY), SEG__SIG_NONE, 0, 0, get_net_revenue, NULL,
      "revenue plus refunds", col_net_revenue },
    { "refunds", T(MONEY), SEG__SIG_NONE, 0, 0, get_refunds, NULL,
      "sum of the refunds (zero or negative)", col_refunds },
    { "units", T(INT), SEG__SIG_NONE, 0, 0, get_units, NULL,
      "units bought less units returned", col_units },
    { "events", T(INT), SEG__SIG_NONE, 0, 0, get_events, NULL, "events of every kind", col_events },
    { "engagements", T(INT), SEG__SIG_NONE, 0, 0, get_engagements, NULL,
      "engagement events", col_engagements },
    { "first_purchase", T(TIME), SEG__SIG_NONE, 0, 0, get_first_purchase, NULL,
      "time of the first purchase (null without one)", col_first_purchase },
    { "last_purchase", T(TIME), SEG__SIG_NONE, 0, 0, get_last_purchase, NULL,
      "time of the last purchase (null without one)", col_last_purchase },
    { "first_seen", T(TIME), SEG__SIG_NONE, 0, 0, get_first_seen, NULL,
      "time of the first event (null without one)", col_first_seen },
    { "last_seen", T(TIME), SEG__SIG_NONE, 0, 0, get_last_seen, NULL,
      "time of the last event (null without one)", col_last_seen },
    { "days_since_last_purchase", T(INT), SEG__SIG_NONE, SEG__PV_TIME, 0, get_days_since_last,
      NULL, "whole days from the last purchase to now (null without one)", col_days_since_last },
    { "days_since_first_purchase", T(INT), SEG__SIG_NONE, SEG__PV_TIME, 0,
      get_days_since_first, NULL,
      "whole days from the first purchase to now (null without one)", col_days_since_first },
    { "tenure", T(DUR), SEG__SIG_NONE, SEG__PV_TIME, 0, get_tenure, NULL,
      "time from the first purchase to now (null without one)", col_tenure },
    { "average_order_value", T(MONEY), SEG__SIG_NONE, 0, 0, get_aov, NULL,
      "revenue / orders, rounded (null without orders)", col_aov },
    { "now", T(TIME), SEG__SIG_NONE, SEG__PV_TIME, 0, get_now, NULL,
      "the evaluation's time" },
    /* windowed measures: [now - window, now) */
    { "spend", T(MONEY), SEG__SIG_WINDOW, SEG__PV_EVENTS | SEG__PV_TIME, SEG__F_SPEND,
      get_feature, NULL, "positive purchase amounts in the window", col_feature },
    { "net_spend", T(MONEY), SEG__SIG_WINDOW, SEG__PV_EVENTS | SEG__PV_TIME,
      SEG__F_NET_SPEND, get_feature, NULL, "purchases plus refunds in the window", col_feature },
    { "orders", T(INT), SEG__SIG_WINDOW, SEG__PV_EVENTS | SEG__PV_TIME, SEG__F_ORDERS,
      get_feature, NULL, "distinct orders with a positive line in the window", col_feature },
    { "count", T(INT), SEG__SIG_COUNT, SEG__PV_EVENTS, SEG__F_COUNT, get_feature, NULL,
      "engagement events of a name (in the window)", col_feature },
    /* RFM as of now (no window): values and scores 1..5 */
    { "recency_days", T(INT), SEG__SIG_NONE, SEG__PV_TIME, 0, get_recency_days, NULL,
      "RFM recency: UTC days from the last purchase's date to now's (null without one)", col_recency_days },
    { "frequency", T(INT), SEG__SIG_NONE, SEG__PV_TIME, 0, get_frequency, NULL,
      "RFM frequency: distinct orders with a purchase", col_frequency },
    { "monetary", T(MONEY), SEG__SIG_NONE, SEG__PV_TIME, 0, get_monetary, NULL,
      "RFM monetary: net revenue", col_monetary },
    { "r", T(INT), SEG__SIG_NONE, SEG__PV_TIME, 0, get_r, bind_rfm,
      "RFM recency score 1..5, higher is more recent (null without a purchase)" },
    { "f", T(INT), SEG__SIG_NONE, SEG__PV_TIME, 0, get_f, bind_rfm,
      "RFM frequency score 1..5 (null without a purchase)" },
    { "m", T(INT), SEG__SIG_NONE, SEG__PV_TIME, 0, get_m, bind_rfm,
      "RFM monetary score 1..5 (null without a purchase)" },
    /* CLV, from the model given with seg_segdef_set_clv(), as of now */
    { "p_alive", T(NUM), SEG__SIG_NONE, SEG__PV_TIME, 0, get_p_alive, bind_clv,
      "probability that the customer is still active (null without a purchase)" },
    { "expected_purchases", T(NUM), SEG__SIG_HORIZON, SEG__PV_TIME, 0, get_expected_purchases,
      bind_clv, "expected purchases in the horizon after now (null without a purchase)" },
    { "clv", T(MONEY), SEG__SIG_HORIZON, SEG__PV_TIME, 0, get_clv, bind_clv,
      "discounted value of the purchases expected in the horizon (null without a purchase)" },
    /* attributes and consent */
    { "attr", T(ERR), SEG__SIG_ATTR, SEG__PV_ATTRS, 0, get_attr, bind_attr,
      "a customer attribute, of its declared type (null when missing)", col_attr },
    { "consent", T(BOOL), SEG__SIG_CONSENT, SEG__PV_ATTRS, 0, get_consent, bind_consent,
      "true when consent for the channel is granted", col_consent },
    /* journeys: changes with every step, so evaluated like a value of time */
    { "journey_state", T(STR), SEG__SIG_NAME, SEG__PV_TIME, 0, get_journey_state, bind_journey,
      "the customer's state in the journey (null when not in it)" },
    /* loyalty: the program attached to the db, as of now */
    { "tier", T(STR), SEG__SIG_NONE, SEG__PV_TIME, 0, get_tier, bind_loyalty,
      "loyalty tier held (the attached program's tier name)" },
    { "tier_rank", T(INT), SEG__SIG_NONE, SEG__PV_TIME, 0, get_tier_rank, bind_loyalty,
      "loyalty tier held as its rank (0 = the base tier)" },
    { "points", T(INT), SEG__SIG_NONE, SEG__PV_TIME, 0, get_points, bind_loyalty,
      "loyalty points balance" },
};
#undef T
const size_t seg__sd_nbuiltins = sizeof seg__sd_builtins / sizeof seg__sd_builtins[0];

const seg__provider *seg__sd_find_provider(const seg_segdef *def, seg__str name, int has_args)
{
    for (int pass = 0; pass < 2; pass++) {
        const seg__provider *t = pass ? seg__sd_builtins : def->extra;
        size_t n = pass ? seg__sd_nbuiltins : def->nextra;
        for (size_t k = 0; k < n; k++)
            if (strlen(t[k].name) == name.n && memcmp(t[k].name, name.p, name.n) == 0 &&
                ((t[k].sig != SEG__SIG_NONE) == (has_args != 0)))
                return &t[k];
    }
    return NULL;
}
