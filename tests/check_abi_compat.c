/*
 * tests/check_abi_compat.c: an old caller.  Every struct a 1.0 program
 * hands to the library is declared here again with its 1.0 layout (and the
 * layout is pinned against the headers at compile time), then used through
 * casts, as a program compiled against 1.0 would use a later library:
 *   - seg_db_options of exactly the 1.0 size, and a later, longer one with
 *     a zero tail (accepted) or a non-zero tail (SEG_EVERSION);
 *   - events of the 1.0 layout, alone and in batches, and longer events
 *     (the batch stride is the first event's struct_size);
 *   - a storage backend written against version 1 of the vtable only: it
 *     keeps everything in a process-wide "disk", so closing and reopening a
 *     database restores it through load().
 * Public API only.
 */
#include "testutil.h"

Suite *abi_compat_suite(void);

static seg_db *db;

static void setup(void)
{
    db = NULL;
    ck_assert_int_eq(seg_db_open(&db, ":memory:", NULL), SEG_OK);
}

static void teardown(void)
{
    seg_db_close(db);
    db = NULL;
}

/* ======================================================================== */
/* the 1.0 layouts                                                           */
/* ======================================================================== */

typedef struct options_1_0 {
    size_t struct_size;
    uint32_t flags;
    int32_t currency_exponent;
    const void *storage;
    const void *allocator;
    char *errbuf;
    size_t errbuf_size;
} options_1_0;

typedef struct event_1_0 {
    size_t struct_size;
    uint32_t kind;
    int32_t quantity;
    const char *event_id;
    const char *customer_id;
    int64_t ts;
    int64_t amount;
    const char *order_id;
    const char *channel;
    const char *category;
    const char *sku;
    const char *refund_of;
    const char *name;
} event_1_0;

typedef struct methods_1_0 {
    int version;
    int (*open)(seg_storage *st, const char *uri, uint32_t flags, void *app_data);
    void (*close)(seg_storage *st);
    int (*load)(seg_storage *st, const seg_storage_sink *sink, void *ctx);
    int (*begin)(seg_storage *st);
    int (*commit)(seg_storage *st);
    int (*rollback)(seg_storage *st);
    int (*put_meta)(seg_storage *st, const char *key, const char *value);
    int (*put_events)(seg_storage *st, const seg_event_info *events, size_t n);
    int (*put_customer)(seg_storage *st, const char *customer_id);
    int (*put_attr)(seg_storage *st, const char *customer_id, const char *name,
                    const seg_value *value);
    int (*put_consent)(seg_storage *st, const char *customer_id, const char *channel, int state);
    int (*erase_customer)(seg_storage *st, const char *customer_id);
    int (*put_record)(seg_storage *st, const char *table, const char *key, const void *data,
                      size_t len);
} methods_1_0;

typedef struct backend_1_0 {
    int version;
    size_t storage_size;
    const char *name;
    const methods_1_0 *methods;
    void *app_data;
} backend_1_0;

/* The headers still have the 1.0 layouts (a failure here is an ABI break). */
#define SAME_FIELD(A, B, f) \
    _Static_assert(offsetof(A, f) == offsetof(B, f), #B "." #f " moved")

_Static_assert(sizeof(options_1_0) <= sizeof(seg_db_options), "seg_db_options shrank");
SAME_FIELD(options_1_0, seg_db_options, struct_size);
SAME_FIELD(options_1_0, seg_db_options, flags);
SAME_FIELD(options_1_0, seg_db_options, currency_exponent);
SAME_FIELD(options_1_0, seg_db_options, storage);
SAME_FIELD(options_1_0, seg_db_options, allocator);
SAME_FIELD(options_1_0, seg_db_options, errbuf);
SAME_FIELD(options_1_0, seg_db_options, errbuf_size);

_Static_assert(sizeof(event_1_0) <= sizeof(seg_event), "seg_event shrank");
SAME_FIELD(event_1_0, seg_event, struct_size);
SAME_FIELD(event_1_0, seg_event, kind);
SAME_FIELD(event_1_0, seg_event, quantity);
SAME_FIELD(event_1_0, seg_event, event_id);
SAME_FIELD(event_1_0, seg_event, customer_id);
SAME_FIELD(event_1_0, seg_event, ts);
SAME_FIELD(event_1_0, seg_event, amount);
SAME_FIELD(event_1_0, seg_event, order_id);
SAME_FIELD(event_1_0, seg_event, channel);
SAME_FIELD(event_1_0, seg_event, category);
SAME_FIELD(event_1_0, seg_event, sku);
SAME_FIELD(event_1_0, seg_event, refund_of);
SAME_FIELD(event_1_0, seg_event, name);

/* what the library hands back: the same fields in seg_event_info */
SAME_FIELD(event_1_0, seg_event_info, kind);
SAME_FIELD(event_1_0, seg_event_info, quantity);
SAME_FIELD(event_1_0, seg_event_info, event_id);
SAME_FIELD(event_1_0, seg_event_info, customer_id);
SAME_FIELD(event_1_0, seg_event_info, ts);
SAME_FIELD(event_1_0, seg_event_info, amount);
SAME_FIELD(event_1_0, seg_event_info, name);

_Static_assert(sizeof(methods_1_0) <= sizeof(seg_storage_methods), "methods shrank");
SAME_FIELD(methods_1_0, seg_storage_methods, version);
SAME_FIELD(methods_1_0, seg_storage_methods, open);
SAME_FIELD(methods_1_0, seg_storage_methods, close);
SAME_FIELD(methods_1_0, seg_storage_methods, load);
SAME_FIELD(methods_1_0, seg_storage_methods, begin);
SAME_FIELD(methods_1_0, seg_storage_methods, commit);
SAME_FIELD(methods_1_0, seg_storage_methods, rollback);
SAME_FIELD(methods_1_0, seg_storage_methods, put_meta);
SAME_FIELD(methods_1_0, seg_storage_methods, put_events);
SAME_FIELD(methods_1_0, seg_storage_methods, put_customer);
SAME_FIELD(methods_1_0, seg_storage_methods, put_attr);
SAME_FIELD(methods_1_0, seg_storage_methods, put_consent);
SAME_FIELD(methods_1_0, seg_storage_methods, erase_customer);
SAME_FIELD(methods_1_0, seg_storage_methods, put_record);

SAME_FIELD(backend_1_0, seg_storage_backend, version);
SAME_FIELD(backend_1_0, seg_storage_backend, storage_size);
SAME_FIELD(backend_1_0, seg_storage_backend, name);
SAME_FIELD(backend_1_0, seg_storage_backend, methods);
SAME_FIELD(backend_1_0, seg_storage_backend, app_data);

_Static_assert(SEG_OK == 0 && SEG_EINVAL == -2 && SEG_EVERSION == -7 && SEG_ELIMIT == -14,
               "status codes renumbered");
_Static_assert(SEG_EVENT_PURCHASE == 1 && SEG_EVENT_REFUND == 2 && SEG_EVENT_ENGAGEMENT == 3,
               "event kinds renumbered");
_Static_assert(SEG_STORAGE_METHODS_V1 == 1 && SEG_STORAGE_BACKEND_V1 == 1, "versions");

static const seg_db_options *as_options(const void *p)
{
    return (const seg_db_options *)p;
}

static const seg_event *as_events(const void *p)
{
    return (const seg_event *)p;
}

static event_1_0 old_event(uint32_t kind, const char *id, const char *cust, int64_t ts,
                           int64_t amount, const char *order, const char *refund_of,
                           const char *name)
{
    event_1_0 e;
    memset(&e, 0, sizeof e);
    e.struct_size = sizeof e;
    e.kind = kind;
    e.quantity = INT32_MIN; /* SEG_QUANTITY_DEFAULT in 1.0 */
    e.event_id = id;
    e.customer_id = cust;
    e.ts = ts;
    e.amount = amount;
    e.order_id = order;
    e.refund_of = refund_of;
    e.name = name;
    return e;
}

/* ======================================================================== */
/* versions                                                                  */
/* ======================================================================== */

START_TEST(loaded_library_is_compatible)
{
    /* a 1.0 program runs on any 1.x library */
    ck_assert_int_ge(seg_version(), 10000);
    ck_assert_int_lt(seg_version(), 20000);
    ck_assert_int_ge(seg_version(), SEG_VERSION_NUMBER);
}
END_TEST

/* ======================================================================== */
/* options                                                                   */
/* ======================================================================== */

START_TEST(old_options_exact_size)
{
    options_1_0 o;
    seg_db *d = NULL;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.flags = SEG_DB_CREATE;
    o.currency_exponent = 4;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", as_options(&o)), SEG_OK);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(seg_db_currency_exponent(d), 4);
    seg_db_close(d);
}
END_TEST

START_TEST(old_options_errbuf)
{
    options_1_0 o;
    char errbuf[200];
    seg_db *d = (seg_db *)&o;
    memset(&o, 0, sizeof o);
    memset(errbuf, 0, sizeof errbuf);
    o.struct_size = sizeof o;
    o.flags = SEG_DB_CREATE;
    o.currency_exponent = 9;
    o.errbuf = errbuf;
    o.errbuf_size = sizeof errbuf;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", as_options(&o)), SEG_EINVAL);
    ck_assert_ptr_null(d);
    TU_STR_HAS(errbuf, "currency_exponent");
}
END_TEST

START_TEST(old_options_init_function)
{
    /* a binding built against 1.0 asks for its own size */
    options_1_0 o;
    seg_db *d = NULL;
    memset(&o, 0x77, sizeof o);
    ck_assert_int_eq(seg_db_options_init((seg_db_options *)(void *)&o, sizeof o), SEG_OK);
    ck_assert_uint_eq(o.flags, SEG_DB_CREATE);
    ck_assert_int_eq(o.currency_exponent, 2);
    ck_assert_ptr_null(o.storage);
    ck_assert_ptr_null(o.allocator);
    ck_assert_ptr_null(o.errbuf);
    ck_assert_uint_eq(o.errbuf_size, 0);
    ck_assert_int_eq(seg_db_open(&d, ":memory:", as_options(&o)), SEG_OK);
    seg_db_close(d);
}
END_TEST

/* the options of a later release: 1.0 plus two fields */
typedef struct options_later {
    options_1_0 v10;
    uint32_t busy_timeout_ms;
    uint32_t more_flags;
    uint64_t reserved;
} options_later;

START_TEST(later_options_zero_tail)
{
    options_later o;
    seg_db *d = NULL;
    memset(&o, 0, sizeof o);
    o.v10.struct_size = sizeof o;
    o.v10.flags = SEG_DB_CREATE;
    o.v10.currency_exponent = 0;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", as_options(&o)), SEG_OK);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(seg_db_currency_exponent(d), 0);
    seg_db_close(d);
}
END_TEST

START_TEST(later_options_nonzero_tail)
{
    options_later o;
    char errbuf[200];
    seg_db *d = (seg_db *)&o;
    memset(&o, 0, sizeof o);
    memset(errbuf, 0, sizeof errbuf);
    o.v10.struct_size = sizeof o;
    o.v10.flags = SEG_DB_CREATE;
    o.v10.currency_exponent = 2;
    o.v10.errbuf = errbuf;
    o.v10.errbuf_size = sizeof errbuf;
    o.busy_timeout_ms = 5000;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", as_options(&o)), SEG_EVERSION);
    ck_assert_ptr_null(d);
    ck_assert_msg(errbuf[0] != '\0', "no message in errbuf");
    o.busy_timeout_ms = 0;
    o.reserved = 1;
    d = (seg_db *)&o;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", as_options(&o)), SEG_EVERSION);
    ck_assert_ptr_null(d);
}
END_TEST

/* ======================================================================== */
/* events                                                                    */
/* ======================================================================== */

START_TEST(old_event_single)
{
    event_1_0 e = old_event(SEG_EVENT_PURCHASE, "e1", "c1", TU_DAYN(1), 1250, "o1", NULL, NULL);
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    e.channel = "store";
    TU_OK(db, seg_event_ingest(db, as_events(&e)));
    TU_GET(db, "c1", &i);
    ck_assert_int_eq(i.revenue, 1250);
    ck_assert_int_eq(i.units, 1);
    /* idempotent for an old caller too */
    TU_OK(db, seg_event_ingest(db, as_events(&e)));
    ck_assert_uint_eq(seg_event_count(db), 1);
}
END_TEST

START_TEST(old_event_batch)
{
    event_1_0 ev[4];
    tu_ev_list l;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    memset(&l, 0, sizeof l);
    ev[0] = old_event(SEG_EVENT_PURCHASE, "e1", "c1", TU_DAYN(1), 1000, "o1", NULL, NULL);
    ev[1] = old_event(SEG_EVENT_PURCHASE, "e2", "c2", TU_DAYN(2), 200, NULL, NULL, NULL);
    ev[2] = old_event(SEG_EVENT_REFUND, "e3", "c1", TU_DAYN(3), -300, NULL, "o1", NULL);
    ev[3] = old_event(SEG_EVENT_ENGAGEMENT, NULL, "c2", TU_DAYN(4), 0, NULL, NULL, "push_open");
    TU_OK(db, seg_event_ingest_batch(db, as_events(ev), 4, NULL, &st));
    ck_assert_uint_eq(st.accepted, 4);
    TU_OK(db, seg_event_foreach(db, NULL, tu_ev_collect_cb, &l));
    ck_assert_uint_eq(l.n, 4);
    ck_assert_str_eq(l.e[0].event_id, "e1");
    ck_assert_int_eq(l.e[0].amount, 1000);
    ck_assert_str_eq(l.e[1].customer_id, "c2");
    ck_assert_int_eq(l.e[2].amount, -300);
    ck_assert_str_eq(l.e[2].refund_of, "o1");
    ck_assert_str_eq(l.e[3].name, "push_open");
    ck_assert_msg(tu_is_derived_id(l.e[3].event_id), "\"%s\"", l.e[3].event_id);
    tu_ev_list_free(&l);
}
END_TEST

/* the event of a later release: 1.0 plus fields */
typedef struct event_later {
    event_1_0 v10;
    const char *campaign;
    int64_t discount;
} event_later;

START_TEST(later_event_batch_stride)
{
    /* the library must step through the array by struct_size */
    event_later ev[3];
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    tu_ev_list l;
    size_t k;
    memset(ev, 0, sizeof ev);
    memset(&l, 0, sizeof l);
    ev[0].v10 = old_event(SEG_EVENT_PURCHASE, "L1", "lx", TU_DAYN(1), 100, "lo", NULL, NULL);
    ev[1].v10 = old_event(SEG_EVENT_PURCHASE, "L2", "ly", TU_DAYN(2), 200, NULL, NULL, NULL);
    ev[2].v10 = old_event(SEG_EVENT_REFUND, "L3", "lx", TU_DAYN(3), -50, NULL, "lo", NULL);
    for (k = 0; k < 3; k++)
        ev[k].v10.struct_size = sizeof ev[k];
    TU_OK(db, seg_event_ingest_batch(db, as_events(ev), 3, NULL, &st));
    ck_assert_uint_eq(st.accepted, 3);
    TU_GET(db, "lx", &i);
    ck_assert_int_eq(i.revenue, 100);
    ck_assert_int_eq(i.refunds, -50);
    TU_GET(db, "ly", &i);
    ck_assert_int_eq(i.revenue, 200);
    TU_OK(db, seg_event_foreach(db, NULL, tu_ev_collect_cb, &l));
    ck_assert_uint_eq(l.n, 3);
    ck_assert_str_eq(l.e[0].event_id, "L1");
    ck_assert_str_eq(l.e[1].event_id, "L2");
    ck_assert_str_eq(l.e[2].event_id, "L3");
    tu_ev_list_free(&l);
}
END_TEST

START_TEST(later_event_nonzero_tail)
{
    event_later ev[2];
    memset(ev, 0, sizeof ev);
    ev[0].v10 = old_event(SEG_EVENT_PURCHASE, "L1", "lx", TU_DAYN(1), 100, NULL, NULL, NULL);
    ev[0].v10.struct_size = sizeof ev[0];
    ev[0].campaign = "spring";
    TU_RC(db, seg_event_ingest(db, as_events(&ev[0])), SEG_EVERSION);
    /* in a batch, the second event's tail counts too */
    ev[0].campaign = NULL;
    ev[1].v10 = old_event(SEG_EVENT_PURCHASE, "L2", "lx", TU_DAYN(1), 100, NULL, NULL, NULL);
    ev[1].v10.struct_size = sizeof ev[1];
    ev[1].discount = 5;
    TU_RC(db, seg_event_ingest_batch(db, as_events(ev), 2, NULL, NULL), SEG_EVERSION);
    ck_assert_uint_eq(seg_event_count(db), 0);
    ck_assert_uint_eq(seg_customer_count(db), 0);
}
END_TEST

START_TEST(old_customer_info)
{
    /* a 1.0 caller's seg_customer_info has every field of today's */
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    event_1_0 e = old_event(SEG_EVENT_PURCHASE, "e1", "c1", TU_DAYN(1), 10, NULL, NULL, NULL);
    TU_OK(db, seg_event_ingest(db, as_events(&e)));
    memset(&i, 0, sizeof i);
    i.struct_size = offsetof(seg_customer_info, last_seen) + sizeof i.last_seen;
    TU_OK(db, seg_customer_get(&i, db, "c1"));
    ck_assert_int_eq(i.last_seen, TU_DAYN(1));
    ck_assert_uint_eq(i.orders, 1);
}
END_TEST

/* ======================================================================== */
/* a v1-only backend with a persistent "disk"                                */
/* ======================================================================== */

#define DISK_MAX 64
typedef struct disk_attr {
    char customer_id[SEG_ID_MAX + 1], name[SEG_ID_MAX + 1];
    seg_value value;
    char s[256];
} disk_attr;

typedef struct disk_consent {
    char customer_id[SEG_ID_MAX + 1], channel[SEG_ID_MAX + 1];
    int state;
} disk_consent;

typedef struct disk {
    char meta_key[8][64], meta_value[8][64];
    size_t n_meta;
    char customers[DISK_MAX][SEG_ID_MAX + 1];
    size_t n_customers;
    tu_ev_copy events[DISK_MAX];
    size_t n_events;
    disk_attr attrs[DISK_MAX];
    size_t n_attrs;
    disk_consent consents[DISK_MAX];
    size_t n_consents;
} disk;

static disk the_disk, txn_copy;
static int disk_opens, disk_closes, disk_in_txn, disk_commits, disk_rollbacks;

typedef struct disk_storage {
    seg_storage base;
    int opened;
} disk_storage;

static const methods_1_0 disk_methods;

static int disk_open(seg_storage *st, const char *uri, uint32_t flags, void *app_data)
{
    st->methods = (const seg_storage_methods *)(const void *)&disk_methods;
    ck_assert_ptr_eq(app_data, &the_disk);
    ck_assert_str_eq(uri, "disk:main");
    (void)flags;
    ((disk_storage *)st)->opened = 1;
    disk_opens++;
    return SEG_OK;
}

static void disk_close(seg_storage *st)
{
    (void)st;
    disk_closes++;
    ck_assert_msg(!disk_in_txn, "closed inside a transaction");
}

static int disk_load(seg_storage *st, const seg_storage_sink *sink, void *ctx)
{
    size_t k;
    int rc;
    (void)st;
    for (k = 0; k < the_disk.n_meta; k++)
        if ((rc = sink->meta(ctx, the_disk.meta_key[k], the_disk.meta_value[k])) != SEG_OK)
            return rc;
    for (k = 0; k < the_disk.n_customers; k++)
        if ((rc = sink->customer(ctx, the_disk.customers[k])) != SEG_OK)
            return rc;
    for (k = 0; k < the_disk.n_events; k++) {
        const tu_ev_copy *c = &the_disk.events[k];
        seg_event_info e;
        memset(&e, 0, sizeof e);
        e.struct_size = sizeof e;
        e.kind = c->kind;
        e.quantity = c->quantity;
        e.ts = c->ts;
        e.amount = c->amount;
        e.event_id = c->has[TU_H_EVENT_ID] ? c->event_id : NULL;
        e.customer_id = c->has[TU_H_CUSTOMER_ID] ? c->customer_id : NULL;
        e.order_id = c->has[TU_H_ORDER_ID] ? c->order_id : NULL;
        e.channel = c->has[TU_H_CHANNEL] ? c->channel : NULL;
        e.category = c->has[TU_H_CATEGORY] ? c->category : NULL;
        e.sku = c->has[TU_H_SKU] ? c->sku : NULL;
        e.refund_of = c->has[TU_H_REFUND_OF] ? c->refund_of : NULL;
        e.name = c->has[TU_H_NAME] ? c->name : NULL;
        if ((rc = sink->event(ctx, &e)) != SEG_OK)
            return rc;
    }
    for (k = 0; k < the_disk.n_attrs; k++)
        if ((rc = sink->attr(ctx, the_disk.attrs[k].customer_id, the_disk.attrs[k].name,
                             &the_disk.attrs[k].value)) != SEG_OK)
            return rc;
    for (k = 0; k < the_disk.n_consents; k++)
        if ((rc = sink->consent(ctx, the_disk.consents[k].customer_id,
                                the_disk.consents[k].channel, the_disk.consents[k].state)) != SEG_OK)
            return rc;
    return SEG_OK;
}

static int disk_begin(seg_storage *st)
{
    (void)st;
    ck_assert_msg(!disk_in_txn, "nested begin");
    txn_copy = the_disk;
    disk_in_txn = 1;
    return SEG_OK;
}

static int disk_commit(seg_storage *st)
{
    (void)st;
    ck_assert_msg(disk_in_txn, "commit without begin");
    disk_in_txn = 0;
    disk_commits++;
    return SEG_OK;
}

static int disk_rollback(seg_storage *st)
{
    (void)st;
    if (disk_in_txn)
        the_disk = txn_copy;
    disk_in_txn = 0;
    disk_rollbacks++;
    return SEG_OK;
}

static int disk_put_meta(seg_storage *st, const char *key, const char *value)
{
    size_t k;
    ck_assert_msg(disk_in_txn, "write outside a transaction");
    for (k = 0; k < the_disk.n_meta && strcmp(the_disk.meta_key[k], key) != 0; k++)
        ;
    if (k == the_disk.n_meta) {
        if (k == 8)
            return seg_storage_set_error(st, SEG_ESTORAGE, "meta full");
        the_disk.n_meta++;
    }
    snprintf(the_disk.meta_key[k], sizeof the_disk.meta_key[k], "%s", key);
    snprintf(the_disk.meta_value[k], sizeof the_disk.meta_value[k], "%s", value);
    return SEG_OK;
}

static int disk_put_events(seg_storage *st, const seg_event_info *events, size_t n)
{
    size_t k;
    ck_assert_msg(disk_in_txn, "write outside a transaction");
    for (k = 0; k < n; k++) {
        if (the_disk.n_events == DISK_MAX)
            return seg_storage_set_error(st, SEG_ESTORAGE, "disk full");
        ck_assert_ptr_nonnull(events[k].event_id);
        tu_ev_from_info(&the_disk.events[the_disk.n_events++], &events[k]);
    }
    return SEG_OK;
}

static int disk_put_customer(seg_storage *st, const char *customer_id)
{
    size_t k;
    ck_assert_msg(disk_in_txn, "write outside a transaction");
    for (k = 0; k < the_disk.n_customers; k++)
        if (strcmp(the_disk.customers[k], customer_id) == 0)
            return SEG_OK;
    if (the_disk.n_customers == DISK_MAX)
        return seg_storage_set_error(st, SEG_ESTORAGE, "disk full");
    snprintf(the_disk.customers[the_disk.n_customers++], SEG_ID_MAX + 1, "%s", customer_id);
    return SEG_OK;
}

static int disk_put_attr(seg_storage *st, const char *customer_id, const char *name,
                         const seg_value *value)
{
    size_t k;
    ck_assert_msg(disk_in_txn, "write outside a transaction");
    for (k = 0; k < the_disk.n_attrs; k++)
        if (strcmp(the_disk.attrs[k].customer_id, customer_id) == 0
            && strcmp(the_disk.attrs[k].name, name) == 0)
            break;
    if (value->type == SEG_TYPE_NULL) {
        if (k < the_disk.n_attrs) {
            the_disk.attrs[k] = the_disk.attrs[--the_disk.n_attrs];
            if (the_disk.attrs[k].value.type == SEG_TYPE_STRING)
                the_disk.attrs[k].value.s = the_disk.attrs[k].s;
        }
        return SEG_OK;
    }
    if (k == the_disk.n_attrs) {
        if (k == DISK_MAX)
            return seg_storage_set_error(st, SEG_ESTORAGE, "disk full");
        the_disk.n_attrs++;
    }
    snprintf(the_disk.attrs[k].customer_id, SEG_ID_MAX + 1, "%s", customer_id);
    snprintf(the_disk.attrs[k].name, SEG_ID_MAX + 1, "%s", name);
    the_disk.attrs[k].value = *value;
    if (value->type == SEG_TYPE_STRING) {
        snprintf(the_disk.attrs[k].s, sizeof the_disk.attrs[k].s, "%s", value->s);
        the_disk.attrs[k].value.s = the_disk.attrs[k].s;
    }
    return SEG_OK;
}

static int disk_put_consent(seg_storage *st, const char *customer_id, const char *channel,
                            int state)
{
    size_t k;
    ck_assert_msg(disk_in_txn, "write outside a transaction");
    for (k = 0; k < the_disk.n_consents; k++)
        if (strcmp(the_disk.consents[k].customer_id, customer_id) == 0
            && strcmp(the_disk.consents[k].channel, channel) == 0)
            break;
    if (state == SEG_CONSENT_UNKNOWN) {
        if (k < the_disk.n_consents)
            the_disk.consents[k] = the_disk.consents[--the_disk.n_consents];
        return SEG_OK;
    }
    if (k == the_disk.n_consents) {
        if (k == DISK_MAX)
            return seg_storage_set_error(st, SEG_ESTORAGE, "disk full");
        the_disk.n_consents++;
    }
    snprintf(the_disk.consents[k].customer_id, SEG_ID_MAX + 1, "%s", customer_id);
    snprintf(the_disk.consents[k].channel, SEG_ID_MAX + 1, "%s", channel);
    the_disk.consents[k].state = state;
    return SEG_OK;
}

static int disk_erase_customer(seg_storage *st, const char *customer_id)
{
    size_t k, j;
    (void)st;
    ck_assert_msg(disk_in_txn, "write outside a transaction");
    for (k = j = 0; k < the_disk.n_customers; k++)
        if (strcmp(the_disk.customers[k], customer_id) != 0)
            memmove(the_disk.customers[j++], the_disk.customers[k], SEG_ID_MAX + 1);
    the_disk.n_customers = j;
    for (k = j = 0; k < the_disk.n_events; k++)
        if (strcmp(the_disk.events[k].customer_id, customer_id) != 0)
            the_disk.events[j++] = the_disk.events[k];
    the_disk.n_events = j;
    for (k = j = 0; k < the_disk.n_attrs; k++)
        if (strcmp(the_disk.attrs[k].customer_id, customer_id) != 0) {
            the_disk.attrs[j] = the_disk.attrs[k];
            if (the_disk.attrs[j].value.type == SEG_TYPE_STRING)
                the_disk.attrs[j].value.s = the_disk.attrs[j].s;
            j++;
        }
    the_disk.n_attrs = j;
    for (k = j = 0; k < the_disk.n_consents; k++)
        if (strcmp(the_disk.consents[k].customer_id, customer_id) != 0)
            the_disk.consents[j++] = the_disk.consents[k];
    the_disk.n_consents = j;
    return SEG_OK;
}

static int disk_put_record(seg_storage *st, const char *table, const char *key,
                           const void *data, size_t len)
{
    (void)st;
    (void)table;
    (void)key;
    (void)data;
    (void)len;
    return SEG_OK;
}

static const methods_1_0 disk_methods = {
    1,
    disk_open, disk_close, disk_load, disk_begin, disk_commit, disk_rollback,
    disk_put_meta, disk_put_events, disk_put_customer, disk_put_attr, disk_put_consent,
    disk_erase_customer, disk_put_record,
};

static const backend_1_0 disk_backend = {
    1, sizeof(disk_storage), "disk", &disk_methods, &the_disk,
};

static seg_db *open_disk(int32_t exponent)
{
    options_1_0 o;
    seg_db *d = NULL;
    char errbuf[256] = "";
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.flags = SEG_DB_CREATE;
    o.currency_exponent = exponent;
    o.storage = &disk_backend;
    o.errbuf = errbuf;
    o.errbuf_size = sizeof errbuf;
    ck_assert_msg(seg_db_open(&d, "disk:main", as_options(&o)) == SEG_OK, "open: %s", errbuf);
    ck_assert_ptr_nonnull(d);
    return d;
}

static void disk_reset(void)
{
    memset(&the_disk, 0, sizeof the_disk);
    disk_opens = disk_closes = disk_in_txn = disk_commits = disk_rollbacks = 0;
}

START_TEST(v1_backend_round_trip)
{
    event_1_0 ev[7];
    seg_value v, got;
    seg_customer_info i = SEG_CUSTOMER_INFO_INIT;
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    tu_snapshot s1, s2;
    const char *why;
    char *anon = NULL, anon_id[64];
    seg_db *d;
    int cs;

    disk_reset();
    d = open_disk(3);
    ck_assert_int_eq(disk_opens, 1);
    ck_assert_int_eq(seg_db_currency_exponent(d), 3);

    ev[0] = old_event(SEG_EVENT_PURCHASE, "e1", "c1", TU_DAYN(1), 1000, "o1", NULL, NULL);
    ev[1] = old_event(SEG_EVENT_PURCHASE, "e2", "c1", TU_DAYN(1), 500, "o1", NULL, NULL);
    ev[2] = old_event(SEG_EVENT_REFUND, "e3", "c1", TU_DAYN(2), -300, NULL, "o1", NULL);
    ev[3] = old_event(SEG_EVENT_PURCHASE, "e4", "c2", TU_DAYN(3), 700, NULL, NULL, NULL);
    ev[4] = old_event(SEG_EVENT_ENGAGEMENT, NULL, "c2", TU_DAYN(4), 0, NULL, NULL, "email_open");
    ev[5] = old_event(SEG_EVENT_PURCHASE, "e6", "c3", TU_DAYN(5), 100, NULL, NULL, NULL);
    ev[6] = old_event(SEG_EVENT_ENGAGEMENT, NULL, "c1", TU_DAYN(6), 0, NULL, NULL, "store_visit");
    ev[0].channel = "web";
    ev[0].category = "shoes";
    ev[0].sku = "S-1";
    ev[0].quantity = 2;
    TU_OK(d, seg_event_ingest_batch(d, as_events(ev), 7, NULL, NULL));
    TU_OK(d, seg_customer_add(d, "lead"));
    memset(&v, 0, sizeof v);
    v.type = SEG_TYPE_STRING;
    v.s = "Oslo";
    TU_OK(d, seg_customer_set_attr(d, "c1", "city", &v));
    v.type = SEG_TYPE_NUMBER;
    v.d = 0.5;
    TU_OK(d, seg_customer_set_attr(d, "lead", "score", &v));
    TU_OK(d, seg_customer_set_consent(d, "c1", "email", SEG_CONSENT_GRANTED));
    TU_OK(d, seg_customer_set_consent(d, "lead", "sms", SEG_CONSENT_DENIED));
    TU_OK(d, seg_customer_erase(d, "c3"));
    TU_OK(d, seg_customer_anonymize(d, "c2", &anon));
    ck_assert_ptr_nonnull(anon);
    snprintf(anon_id, sizeof anon_id, "%s", anon);
    seg_free(anon);
    ck_assert_int_eq(disk_in_txn, 0);
    ck_assert_int_gt(disk_commits, 0);
    tu_snap_take(&s1, d, SEG_CUSTOMER_SORTED);
    seg_db_close(d);
    ck_assert_int_eq(disk_closes, 1);

    /* reopen: everything comes back from the disk (the exponent included,
     * though the caller now asks for 2) */
    d = open_disk(2);
    ck_assert_int_eq(disk_opens, 2);
    ck_assert_int_eq(seg_db_currency_exponent(d), 3);
    tu_snap_take(&s2, d, SEG_CUSTOMER_SORTED);
    why = tu_snap_diff(&s1, &s2, 2);
    ck_assert_msg(why == NULL, "after reopen: %s", why);
    TU_RC(d, seg_customer_get(&i, d, "c3"), SEG_ENOTFOUND);
    TU_RC(d, seg_customer_get(&i, d, "c2"), SEG_ENOTFOUND);
    TU_GET(d, anon_id, &i);
    ck_assert_int_eq(i.revenue, 700);
    ck_assert_uint_eq(i.engagements, 1);
    TU_GET(d, "c1", &i);
    ck_assert_int_eq(i.net_revenue, 1200);
    ck_assert_int_eq(i.units, 3);
    TU_OK(d, seg_customer_get_attr(&got, d, "c1", "city"));
    ck_assert_uint_eq(got.type, SEG_TYPE_STRING);
    ck_assert_str_eq(got.s, "Oslo");
    TU_OK(d, seg_customer_get_attr(&got, d, "lead", "score"));
    ck_assert(got.d == 0.5);
    TU_OK(d, seg_customer_get_attr(&got, d, anon_id, "city"));
    ck_assert_uint_eq(got.type, SEG_TYPE_NULL);
    TU_OK(d, seg_customer_get_consent(&cs, d, "c1", "email"));
    ck_assert_int_eq(cs, SEG_CONSENT_GRANTED);
    TU_OK(d, seg_customer_get_consent(&cs, d, "lead", "sms"));
    ck_assert_int_eq(cs, SEG_CONSENT_DENIED);

    /* after the reopen, c1's events are duplicates, c3's are new again */
    TU_OK(d, seg_event_ingest_batch(d, as_events(ev), 3, NULL, &st));
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_uint_eq(st.duplicates, 3);
    TU_OK(d, seg_event_ingest_batch(d, as_events(&ev[5]), 1, NULL, &st));
    ck_assert_uint_eq(st.accepted, 1);
    /* and refund limits survive: 1200 of o1 is left */
    {
        event_1_0 r = old_event(SEG_EVENT_REFUND, "e9", "c1", TU_DAYN(7), -1201, NULL, "o1", NULL);
        TU_RC(d, seg_event_ingest(d, as_events(&r)), SEG_EINVAL);
        r.amount = -1200;
        TU_OK(d, seg_event_ingest(d, as_events(&r)));
    }
    seg_db_close(d);
    ck_assert_int_eq(disk_closes, 2);
    tu_snap_free(&s1);
    tu_snap_free(&s2);
}
END_TEST

START_TEST(v1_backend_rollback_on_error)
{
    /* a bad batch leaves the disk as it was */
    event_1_0 ev[2];
    seg_db *d;
    size_t n;
    disk_reset();
    d = open_disk(2);
    ev[0] = old_event(SEG_EVENT_PURCHASE, "e1", "c1", TU_DAYN(1), 1000, NULL, NULL, NULL);
    TU_OK(d, seg_event_ingest(d, as_events(ev)));
    n = the_disk.n_events;
    ck_assert_uint_eq(n, 1);
    ev[0] = old_event(SEG_EVENT_PURCHASE, "e2", "c1", TU_DAYN(1), 1000, NULL, NULL, NULL);
    ev[1] = old_event(SEG_EVENT_PURCHASE, "e3", "c1", TU_DAYN(1), -1, NULL, NULL, NULL);
    TU_RC(d, seg_event_ingest_batch(d, as_events(ev), 2, NULL, NULL), SEG_EINVAL);
    ck_assert_uint_eq(the_disk.n_events, n);
    ck_assert_int_eq(disk_in_txn, 0);
    seg_db_close(d);
    d = open_disk(2);
    ck_assert_uint_eq(seg_event_count(d), 1);
    seg_db_close(d);
}
END_TEST

START_TEST(v1_backend_declared_type_survives_reopen)
{
    /* a declared attribute type is part of the database, like a value */
    seg_db *d;
    seg_value v;
    disk_reset();
    d = open_disk(2);
    TU_OK(d, seg_attr_declare(d, "ltv", SEG_TYPE_NUMBER));
    TU_OK(d, seg_customer_add(d, "c1"));
    seg_db_close(d);
    d = open_disk(2);
    ck_assert_uint_eq(seg_customer_count(d), 1);
    ck_assert_msg(seg_attr_type(d, "ltv") == SEG_TYPE_NUMBER,
                  "declared type lost on reopen: seg_attr_type = %u", seg_attr_type(d, "ltv"));
    memset(&v, 0, sizeof v);
    v.type = SEG_TYPE_INT;
    v.i = 3;
    TU_RC(d, seg_customer_set_attr(d, "c1", "ltv", &v), SEG_EINVAL);
    seg_db_close(d);
}
END_TEST

START_TEST(v1_backend_refund_with_own_order_id_survives_reopen)
{
    /* a refund whose order_id is its own event id keeps it across a reopen,
     * so ingesting it again is still a duplicate, not a conflict */
    seg_db *d;
    seg_event r = tu_refund("R1", "c1", TU_DAYN(1), -50, NULL);
    seg_ingest_stats st = SEG_INGEST_STATS_INIT;
    r.order_id = "R1";
    disk_reset();
    d = open_disk(2);
    TU_OK(d, seg_event_ingest(d, &r));
    seg_db_close(d);
    d = open_disk(2);
    TU_OK(d, seg_event_ingest_batch(d, &r, 1, NULL, &st));
    ck_assert_uint_eq(st.duplicates, 1);
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_uint_eq(seg_event_count(d), 1);
    seg_db_close(d);
}
END_TEST

/* ======================================================================== */

Suite *abi_compat_suite(void)
{
    Suite *s = suite_create("abi_compat");
    TCase *tc;

    tc = tcase_create("options");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, loaded_library_is_compatible);
    tcase_add_test(tc, old_options_exact_size);
    tcase_add_test(tc, old_options_errbuf);
    tcase_add_test(tc, old_options_init_function);
    tcase_add_test(tc, later_options_zero_tail);
    tcase_add_test(tc, later_options_nonzero_tail);
    suite_add_tcase(s, tc);

    tc = tcase_create("events");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, old_event_single);
    tcase_add_test(tc, old_event_batch);
    tcase_add_test(tc, later_event_batch_stride);
    tcase_add_test(tc, later_event_nonzero_tail);
    tcase_add_test(tc, old_customer_info);
    suite_add_tcase(s, tc);

    tc = tcase_create("backend_v1");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, v1_backend_round_trip);
    tcase_add_test(tc, v1_backend_rollback_on_error);
    tcase_add_test(tc, v1_backend_declared_type_survives_reopen);
    tcase_add_test(tc, v1_backend_refund_with_own_order_id_survives_reopen);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(abi_compat_suite());
    int failures;
    srunner_run_all(sr, CK_ENV);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures ? 1 : 0;
}
