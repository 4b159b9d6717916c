/*
 * The SQLite backend (meson -Dsqlite=auto|enabled).
 *
 * One file, WAL mode, one SQLite transaction per core transaction.  The
 * tables (doc/storage.md) are plain and readable, and compact: an event row
 * holds integers only (customer, dictionary ids for channel, category, sku
 * and engagement name) except the order id and the rare explicit event id.
 * A derived event id ("~" + 32 hex digits) is not stored: it is a hash of
 * the event's content and its occurrence number, so the row keeps the
 * occurrence (NULL for 0) and the id is recomputed on load.
 *
 * Ids of customers and dictionary values are kept in memory maps (text ->
 * id), built on load; new rows get the next id.  A transaction logs what it
 * adds to or removes from the maps, so a rollback restores them.
 *
 * Single writer: an flock() on FILE-seglock.  It is a separate file because
 * closing any descriptor of the database file would drop SQLite's own POSIX
 * locks on it.
 */
#include "storage/storage-private.h"

#include <stdio.h>
#include <stdlib.h>

#define SQ_OPTS_V1_SIZE sizeof(seg_storage_sqlite_options)

SEG_API int seg_storage_sqlite_options_init(seg_storage_sqlite_options *opts, size_t struct_size)
{
    seg_storage_sqlite_options d = SEG_STORAGE_SQLITE_OPTIONS_INIT;
    return seg__options_init(opts, struct_size, &d, SQ_OPTS_V1_SIZE);
}

/* A backend made by seg_storage_sqlite_new(): the options follow it. */
typedef struct sq_backend {
    seg_storage_backend be;
    seg_storage_sqlite_options opts;
} sq_backend;

static const seg_storage_methods sq_methods;

#if SEG_HAVE_SQLITE

#include <sqlite3.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ================================================================== maps */

enum { MAP_CUST, MAP_CHAN, MAP_CAT, MAP_SKU, MAP_NAME, MAP_ATTR, MAP_CONS, NMAPS };

#define SLOT_TOMB UINT64_MAX
#define ID_LIMIT (UINT32_MAX - 1)  /* ids are 1 .. ID_LIMIT - 1 */

/* text -> id and id -> text.  Texts are entries [id:4][len:2][bytes][NUL]
 * in one buffer; the hash slots point at the entries (one cache miss to
 * check a candidate), off[] maps ids to them. */
typedef struct sq_map {
    char *text;
    size_t tlen, tcap;
    uint32_t *off;      /* id -> offset + 1 of its entry; 0: no such id */
    uint32_t noff;      /* ids below noff have a cell in off */
    uint32_t nid;       /* next id to assign (1 + the largest ever used) */
    uint64_t *slots;    /* (hash tag << 32) | (entry offset + 1); 0 empty, SLOT_TOMB deleted */
    uint32_t cap, used; /* used counts tombstones too */
    uint8_t *type;      /* typed maps (MAP_ATTR): SEG_TYPE_* per id, noff cells */
    bool typed;
} sq_map;

#define ENTRY_HDR 6

static uint32_t map_tag(const char *p, size_t n)
{
    uint32_t t = (uint32_t)(seg__hash(p, n, UINT64_C(0x5345474d53514c31)) >> 32);
    return t == UINT32_MAX ? t - 1 : t; /* a slot is never SLOT_TOMB */
}

/* the home slot of a tag: its high bits scaled to the capacity */
static inline uint32_t home_of(uint32_t tag, uint32_t cap)
{
    return (uint32_t)(((uint64_t)tag * cap) >> 32);
}

static inline const unsigned char *entry_at(const sq_map *m, uint32_t off1)
{
    return (const unsigned char *)m->text + off1 - 1;
}

static inline size_t entry_len(const unsigned char *e)
{
    return (size_t)e[4] | (size_t)e[5] << 8;
}

static inline uint32_t entry_id(const unsigned char *e)
{
    uint32_t id;
    memcpy(&id, e, 4);
    return id;
}

static const char *map_text(const sq_map *m, uint32_t id, size_t *n)
{
    if (id == 0 || id >= m->noff || !m->off[id])
        return NULL;
    const unsigned char *e = entry_at(m, m->off[id]);
    if (n)
        *n = entry_len(e);
    return (const char *)e + ENTRY_HDR;
}

static uint32_t map_find_t(const sq_map *m, const char *p, size_t n, uint32_t tag)
{
    if (!m->cap)
        return 0;
    for (uint32_t i = home_of(tag, m->cap);; i = i + 1 == m->cap ? 0 : i + 1) {
        uint64_t s = m->slots[i];
        if (!s)
            return 0;
        if (s != SLOT_TOMB && (uint32_t)(s >> 32) == tag) {
            const unsigned char *e = entry_at(m, (uint32_t)s);
            if (entry_len(e) == n && memcmp(e + ENTRY_HDR, p, n) == 0)
                return entry_id(e);
        }
    }
}

static uint32_t map_find(const sq_map *m, const char *p, size_t n)
{
    return map_find_t(m, p, n, map_tag(p, n));
}

/* put a slot value (a free slot is known to exist) */
static void slot_put(uint64_t *slots, uint32_t cap, uint64_t v, uint32_t *used)
{
    for (uint32_t i = home_of((uint32_t)(v >> 32), cap);; i = i + 1 == cap ? 0 : i + 1) {
        if (!slots[i] || slots[i] == SLOT_TOMB) {
            if (!slots[i])
                (*used)++;
            slots[i] = v;
            return;
        }
    }
}

/* room for one more slot: below 70 % full (tombstones included) */
static int map_room(const seg__alloc *a, sq_map *m)
{
    if ((uint64_t)(m->used + 1) * 10 <= (uint64_t)m->cap * 7)
        return SEG_OK;
    uint64_t live = 0;
    for (uint32_t i = 0; i < m->cap; i++)
        live += m->slots[i] && m->slots[i] != SLOT_TOMB;
    uint64_t cap = m->cap ? m->cap : 8;
    while ((live + 1) * 10 > cap * 5)  /* at most half full after the rehash */
        cap *= 2;
    if (cap > UINT32_MAX / 2)
        return SEG_ELIMIT;
    uint64_t *ns = seg__calloc(a, (size_t)cap, sizeof *ns);
    if (!ns)
        return SEG_ENOMEM;
    uint32_t used = 0;
    for (uint32_t i = 0; i < m->cap; i++)
        if (m->slots[i] && m->slots[i] != SLOT_TOMB)
            slot_put(ns, (uint32_t)cap, m->slots[i], &used);
    seg__free(a, m->slots);
    m->slots = ns;
    m->cap = (uint32_t)cap;
    m->used = used;
    return SEG_OK;
}

/* Add text p[0..n) (not present) under id.  SEG_OK, SEG_ENOMEM, SEG_ELIMIT. */
static int map_add(const seg__alloc *a, sq_map *m, uint32_t id, const char *p, size_t n,
                   uint32_t tag)
{
    if (id == 0 || id >= ID_LIMIT || n > 0xffff)
        return SEG_ELIMIT;
    int rc = map_room(a, m);
    if (rc != SEG_OK)
        return rc;
    if (id >= m->noff) {
        uint64_t cap = m->noff ? m->noff : 64;
        while (cap <= id)
            cap *= 2;
        if (cap > ID_LIMIT)
            cap = ID_LIMIT;
        uint32_t *no = seg__realloc_array(a, m->off, (size_t)cap, sizeof *no);
        if (!no)
            return SEG_ENOMEM;
        memset(no + m->noff, 0, (size_t)(cap - m->noff) * sizeof *no);
        m->off = no;
        if (m->typed) {
            uint8_t *nt = seg__realloc(a, m->type, (size_t)cap);
            if (!nt)
                return SEG_ENOMEM;
            memset(nt + m->noff, 0, (size_t)(cap - m->noff));
            m->type = nt;
        }
        m->noff = (uint32_t)cap;
    }
    size_t need = m->tlen + ENTRY_HDR + n + 1;
    if (need > m->tcap) {
        size_t cap = m->tcap ? m->tcap : 1024;
        while (need > cap)
            cap *= 2;
        if (need > UINT32_MAX - 1)
            return SEG_ELIMIT;
        char *nt = seg__realloc(a, m->text, cap);
        if (!nt)
            return SEG_ENOMEM;
        m->text = nt;
        m->tcap = cap;
    }
    unsigned char *e = (unsigned char *)m->text + m->tlen;
    memcpy(e, &id, 4);
    e[4] = (unsigned char)(n & 0xff);
    e[5] = (unsigned char)(n >> 8);
    memcpy(e + ENTRY_HDR, p, n);
    e[ENTRY_HDR + n] = '\0';
    uint32_t off1 = (uint32_t)m->tlen + 1;
    m->off[id] = off1;
    m->tlen = need;
    slot_put(m->slots, m->cap, (uint64_t)tag << 32 | off1, &m->used);
    if (id >= m->nid)
        m->nid = id + 1;
    return SEG_OK;
}

/* Remove id from the text index (its entry stays in the buffer). */
static void map_unlink(sq_map *m, uint32_t id)
{
    size_t n = 0;
    const char *t = map_text(m, id, &n);
    if (!t)
        return;
    uint64_t want = (uint64_t)map_tag(t, n) << 32 | m->off[id];
    for (uint32_t i = home_of((uint32_t)(want >> 32), m->cap);; i = i + 1 == m->cap ? 0 : i + 1) {
        if (!m->slots[i])
            break;
        if (m->slots[i] == want) {
            m->slots[i] = SLOT_TOMB;
            break;
        }
    }
    m->off[id] = 0;
}

/* Put id back with its entry at offset off - 1 (undo of map_unlink; room is
 * there: the tombstone it left counts as used). */
static void map_relink(sq_map *m, uint32_t id, uint32_t off)
{
    m->off[id] = off;
    size_t n = 0;
    const char *t = map_text(m, id, &n);
    slot_put(m->slots, m->cap, (uint64_t)map_tag(t, n) << 32 | off, &m->used);
}

static void map_free(const seg__alloc *a, sq_map *m)
{
    bool typed = m->typed;
    seg__free(a, m->text);
    seg__free(a, m->off);
    seg__free(a, m->slots);
    seg__free(a, m->type);
    memset(m, 0, sizeof *m);
    m->typed = typed;
}

/* ============================================================ the storage */

/* Prepared statements, made on first use. */
enum {
    ST_EV1, ST_EVN, ST_CUST, ST_CHAN, ST_CAT, ST_SKU, ST_NAME, ST_ATTRNAME, ST_CONSCHAN,
    ST_ATTR_PUT, ST_ATTR_DEL, ST_CONS_PUT, ST_CONS_DEL, ST_META_PUT, ST_META_DEL,
    ST_REC_PUT, ST_REC_DEL, ST_EV_OF, ST_EV_DEL, ST_CUST_ATTRS_DEL, ST_CUST_CONS_DEL,
    ST_CUST_DEL, NST
};

#define EV_COLS 13
#define EV_ROWS 16 /* rows of one multi-row insert */

#define EV_INSERT "INSERT INTO seg_events(id, customer, ts, kind, amount, quantity, channel, " \
    "category, sku, order_id, refund_of, name, event_id) VALUES "
#define EV_VALUES "(?,?,?,?,?,?,?,?,?,?,?,?,?)"

static const char *const st_sql[NST] = {
    [ST_EV1] = EV_INSERT EV_VALUES,
    [ST_EVN] = NULL, /* EV_ROWS times EV_VALUES, built at run time */
    [ST_CUST] = "INSERT INTO seg_customers(id, customer_id) VALUES (?, ?)",
    [ST_CHAN] = "INSERT INTO seg_channels(id, name) VALUES (?, ?)",
    [ST_CAT] = "INSERT INTO seg_categories(id, name) VALUES (?, ?)",
    [ST_SKU] = "INSERT INTO seg_skus(id, name) VALUES (?, ?)",
    [ST_NAME] = "INSERT INTO seg_event_names(id, name) VALUES (?, ?)",
    [ST_ATTRNAME] = "INSERT INTO seg_attr_names(id, name, type) VALUES (?, ?, ?)",
    [ST_CONSCHAN] = "INSERT INTO seg_consent_channels(id, name) VALUES (?, ?)",
    [ST_ATTR_PUT] = "INSERT OR REPLACE INTO seg_attributes(customer, attr, value) VALUES (?, ?, ?)",
    [ST_ATTR_DEL] = "DELETE FROM seg_attributes WHERE customer = ? AND attr = ?",
    [ST_CONS_PUT] = "INSERT OR REPLACE INTO seg_consent(customer, channel, state) VALUES (?, ?, ?)",
    [ST_CONS_DEL] = "DELETE FROM seg_consent WHERE customer = ? AND channel = ?",
    [ST_META_PUT] = "INSERT OR REPLACE INTO seg_meta(key, value) VALUES (?, ?)",
    [ST_META_DEL] = "DELETE FROM seg_meta WHERE key = ?",
    [ST_REC_PUT] = "INSERT OR REPLACE INTO seg_records(tbl, key, data) VALUES (?, ?, ?)",
    [ST_REC_DEL] = "DELETE FROM seg_records WHERE tbl = ? AND key = ?",
    [ST_EV_OF] = "SELECT id FROM seg_events WHERE customer = ? ORDER BY id",
    [ST_EV_DEL] = "DELETE FROM seg_events WHERE id = ?",
    [ST_CUST_ATTRS_DEL] = "DELETE FROM seg_attributes WHERE customer = ?",
    [ST_CUST_CONS_DEL] = "DELETE FROM seg_consent WHERE customer = ?",
    [ST_CUST_DEL] = "DELETE FROM seg_customers WHERE id = ?",
};

/* the insert statement of each map's table */
static const int map_insert[NMAPS] = { ST_CUST, ST_CHAN, ST_CAT, ST_SKU, ST_NAME, ST_ATTRNAME,
                                       ST_CONSCHAN };
static const char *const map_what[NMAPS] = { "customer", "channel", "category", "sku",
                                             "event name", "attribute name",
                                             "consent channel" };

/* a change to a map inside the transaction */
typedef struct sq_undo {
    uint8_t map, added;  /* added: map_add (undo: unlink); else map_unlink (undo: relink) */
    uint32_t id, off;
} sq_undo;

/* One event row, as bound to an insert. */
typedef struct sq_row {
    int64_t id;          /* 0: the next rowid */
    int64_t cust, ts, kind, amount, qty, chan, cat, sku, name; /* 0 ids: NULL */
    const char *order, *refund_of, *eid;  /* eid NULL: derived, occurrence occ */
    int64_t occ;
} sq_row;

typedef struct sq_storage {
    seg_storage base;
    const seg__alloc *a;
    sqlite3 *db;
    bool owned;          /* opened here (else the host's connection) */
    bool readonly;
    bool maps_ready;     /* maps hold the stored ids */
    bool broken;         /* a rollback failed: nothing more is written */
    int lockfd;
    char name[512];      /* the file, for messages */
    sq_map map[NMAPS];
    sqlite3_stmt *st[NST];
    /* the transaction */
    bool in_txn, savepoint;
    uint32_t mark_nid[NMAPS];
    size_t mark_tlen[NMAPS];
    sq_undo *undo;
    size_t nundo, capundo;
    /* anonymization (erase, then put_customer and put_events under a new
     * id, in one transaction): the new customer takes the erased rows' ids,
     * so the order of customers and events is kept */
    uint32_t reuse_cust;   /* the erased customer's id, until put_customer takes it */
    uint32_t reuse_for;    /* the customer that takes the event ids */
    int64_t *reuse_ev;     /* the erased event ids, ascending */
    size_t nreuse, capreuse, reuse_pos;
    /* put_events */
    sq_row rows[EV_ROWS];
    size_t nrows;
    uint32_t last_cust;    /* the customer of the last event put (a cache) */
} sq_storage;

/* ---- errors ---- */

static int sq_fail(sq_storage *s, int code, const char *fmt, ...) SEG_PRINTF(3, 4);
static int sq_fail(sq_storage *s, int code, const char *fmt, ...)
{
    char buf[800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return seg_storage_set_error(&s->base, code, "%s", buf);
}

static int code_of(int sqlite_rc)
{
    switch (sqlite_rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return SEG_EBUSY;
    case SQLITE_NOMEM: return SEG_ENOMEM;
    default: return SEG_ESTORAGE;
    }
}

/* A failed SQLite call: "'FILE': WHAT: sqlite's message". */
static int sq_sqlfail(sq_storage *s, int rc, const char *what)
{
    const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    return sq_fail(s, code_of(rc), "'%s': %s: %s", s->name, what, msg);
}

static int sq_nomem(sq_storage *s, int rc, const char *what)
{
    if (rc == SEG_ELIMIT)
        return sq_fail(s, SEG_ELIMIT, "'%s': %s: too many distinct values", s->name, what);
    return sq_fail(s, SEG_ENOMEM, "'%s': %s: out of memory", s->name, what);
}

/* ---- statements ---- */

static int exec_sql(sq_storage *s, const char *sql, const char *what)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? SEG_OK : sq_sqlfail(s, rc, what);
}

static sqlite3_stmt *stmt(sq_storage *s, int which, int *rc_out)
{
    if (s->st[which]) {
        *rc_out = SEG_OK;
        return s->st[which];
    }
    char buf[sizeof EV_INSERT + EV_ROWS * (sizeof EV_VALUES + 1)];
    const char *sql = st_sql[which];
    if (which == ST_EVN) {
        size_t p = (size_t)snprintf(buf, sizeof buf, "%s", EV_INSERT);
        for (int k = 0; k < EV_ROWS; k++)
            p += (size_t)snprintf(buf + p, sizeof buf - p, "%s" EV_VALUES, k ? "," : "");
        sql = buf;
    }
    int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st[which], NULL);
    if (rc != SQLITE_OK) {
        s->st[which] = NULL;
        *rc_out = sq_sqlfail(s, rc, "prepare");
        return NULL;
    }
    *rc_out = SEG_OK;
    return s->st[which];
}

/* Step a write statement once and reset it. */
static int step_done(sq_storage *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st); /* every call binds every parameter again */
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return sq_sqlfail(s, rc, what);
    return SEG_OK;
}

static void bind_id(sqlite3_stmt *st, int col, int64_t id)
{
    if (id)
        sqlite3_bind_int64(st, col, id);
    else
        sqlite3_bind_null(st, col);
}

static void bind_text(sqlite3_stmt *st, int col, const char *t)
{
    if (t)
        sqlite3_bind_text(st, col, t, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, col);
}

/* ---- transactions ---- */

/* Room for one more undo entry (called before the change it records). */
static int txn_reserve(sq_storage *s)
{
    if (!s->in_txn || s->nundo < s->capundo)
        return SEG_OK;
    size_t cap = s->capundo ? s->capundo * 2 : 64;
    sq_undo *p = seg__realloc_array(s->a, s->undo, cap, sizeof *p);
    if (!p)
        return SEG_ENOMEM;
    s->undo = p;
    s->capundo = cap;
    return SEG_OK;
}

static void txn_log(sq_storage *s, int map, bool added, uint32_t id, uint32_t off)
{
    if (s->in_txn)
        s->undo[s->nundo++] = (sq_undo){ (uint8_t)map, added, id, off };
}

/* Undo the maps' changes of the transaction. */
static void maps_rollback(sq_storage *s)
{
    while (s->nundo) {
        sq_undo *u = &s->undo[--s->nundo];
        sq_map *m = &s->map[u->map];
        if (u->added)
            map_unlink(m, u->id);
        else
            map_relink(m, u->id, u->off);
    }
    for (int k = 0; k < NMAPS; k++) {
        s->map[k].nid = s->mark_nid[k];
        s->map[k].tlen = s->mark_tlen[k];
    }
    s->last_cust = 0;
}

static void reuse_clear(sq_storage *s)
{
    s->reuse_cust = s->reuse_for = 0;
    s->nreuse = s->reuse_pos = 0;
}

/* ---- ids ---- */

/* The id of text p in map k, added (to the map and its table) if absent.
 * New customers take the id of a customer erased in this transaction
 * (anonymization) when reuse is set. */
static int intern(sq_storage *s, int k, const char *p, uint32_t attr_type, bool reuse,
                  uint32_t *id_out)
{
    size_t n = strlen(p);
    sq_map *m = &s->map[k];
    uint32_t tag = map_tag(p, n);
    uint32_t id = map_find_t(m, p, n, tag);
    if (id) {
        if (k == MAP_ATTR && attr_type && m->type[id] != attr_type)
            return sq_fail(s, SEG_ESTORAGE, "'%s': attribute '%s' is stored with another type",
                           s->name, p);
        *id_out = id;
        return SEG_OK;
    }
    if (reuse && s->reuse_cust) {
        id = s->reuse_cust;
        s->reuse_for = id;
        s->reuse_cust = 0;
    } else {
        id = m->nid ? m->nid : 1;
    }
    int rc;
    sqlite3_stmt *st = stmt(s, map_insert[k], &rc);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, p, (int)n, SQLITE_STATIC);
    if (k == MAP_ATTR) {
        static const char *const tn[] = { "null", "string", "int", "number", "bool", "time" };
        sqlite3_bind_text(st, 3, attr_type <= SEG_TYPE_TIME ? tn[attr_type] : "?", -1,
                          SQLITE_STATIC);
    }
    char what[64];
    snprintf(what, sizeof what, "insert %s", map_what[k]);
    if ((rc = step_done(s, st, what)) != SEG_OK)
        return rc;
    if ((rc = txn_reserve(s)) != SEG_OK || (rc = map_add(s->a, m, id, p, n, tag)) != SEG_OK)
        return sq_nomem(s, rc, what);
    txn_log(s, k, true, id, 0);
    if (k == MAP_ATTR)
        m->type[id] = (uint8_t)attr_type;
    *id_out = id;
    return SEG_OK;
}

/* ---- derived event ids ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool parse_did(const char *s, seg__did *out)
{
    if (!s || s[0] != '~')
        return false;
    uint64_t h[2] = { 0, 0 };
    for (int k = 0; k < 32; k++) {
        int v = hexval(s[1 + k]);
        if (v < 0)
            return false;
        h[k / 16] = h[k / 16] << 4 | (uint64_t)v;
    }
    if (s[33])
        return false;
    out->h1 = h[0];
    out->h2 = h[1];
    return true;
}

/* The content of an event as its derived id hashes it: an order-less
 * purchase (order id = its own event id) has no order id. */
static void content_of(seg__ev *ev, const seg_event_info *e, const char *order)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = e->kind;
    ev->quantity = e->quantity;
    ev->customer_id = seg__cstr(e->customer_id);
    ev->ts = e->ts;
    ev->amount = e->amount;
    ev->order_id = seg__cstr(order);
    ev->channel = seg__cstr(e->channel);
    ev->category = seg__cstr(e->category);
    ev->sku = seg__cstr(e->sku);
    ev->refund_of = seg__cstr(e->refund_of);
    ev->name = seg__cstr(e->name);
}

/* Occurrence numbers searched when storing a derived id; an id found
 * further (a CSV file with more identical rows) is stored as text. */
#define OCC_SEARCH 64

/* The occurrence number of a derived id, or -1 (not derived, or not found). */
static int64_t occurrence_of(const seg_event_info *e, const char *order)
{
    seg__did want;
    if (!parse_did(e->event_id, &want))
        return -1;
    seg__ev ev;
    content_of(&ev, e, order);
    for (uint32_t k = 0; k < OCC_SEARCH; k++) {
        seg__did d = seg__derive_id(&ev, k);
        if (d.h1 == want.h1 && d.h2 == want.h2)
            return k;
    }
    return -1;
}

/* ---- begin, commit, rollback ---- */

static int maps_load(sq_storage *s, const seg_storage_sink *sink, void *ctx);

static int sq_begin(seg_storage *st)
{
    sq_storage *s = (sq_storage *)st;
    if (s->broken)
        return sq_fail(s, SEG_ESTORAGE, "'%s': an earlier rollback failed; close and reopen",
                       s->name);
    if (s->in_txn)
        return sq_fail(s, SEG_EMISUSE, "'%s': a transaction is already open", s->name);
    if (s->readonly)
        return sq_fail(s, SEG_EREADONLY, "'%s': opened read-only", s->name);
    int rc = maps_load(s, NULL, NULL);
    if (rc != SEG_OK)
        return rc;
    s->savepoint = !sqlite3_get_autocommit(s->db);
    rc = exec_sql(s, s->savepoint ? "SAVEPOINT seg_txn" : "BEGIN IMMEDIATE", "begin");
    if (rc != SEG_OK)
        return rc;
    s->in_txn = true;
    for (int k = 0; k < NMAPS; k++) {
        s->mark_nid[k] = s->map[k].nid;
        s->mark_tlen[k] = s->map[k].tlen;
    }
    s->nundo = 0;
    s->nrows = 0;
    reuse_clear(s);
    return SEG_OK;
}

static int sq_commit(seg_storage *st)
{
    sq_storage *s = (sq_storage *)st;
    if (!s->in_txn)
        return sq_fail(s, SEG_EMISUSE, "'%s': commit without a transaction", s->name);
    int rc = exec_sql(s, s->savepoint ? "RELEASE seg_txn" : "COMMIT", "commit");
    if (rc != SEG_OK)
        return rc; /* the core rolls back */
    s->in_txn = false;
    s->nundo = 0;
    reuse_clear(s);
    return SEG_OK;
}

static int sq_rollback(seg_storage *st)
{
    sq_storage *s = (sq_storage *)st;
    if (!s->in_txn)
        return SEG_OK;
    int rc = SQLITE_OK;
    if (s->savepoint)
        rc = sqlite3_exec(s->db, "ROLLBACK TO seg_txn; RELEASE seg_txn", NULL, NULL, NULL);
    else if (!sqlite3_get_autocommit(s->db)) /* SQLite may have rolled back already */
        rc = sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    maps_rollback(s);
    s->in_txn = false;
    s->nrows = 0;
    reuse_clear(s);
    if (rc != SQLITE_OK) {
        s->broken = true;
        return sq_sqlfail(s, rc, "rollback");
    }
    return SEG_OK;
}

static int in_txn(sq_storage *s, const char *what)
{
    if (s->in_txn)
        return SEG_OK;
    return sq_fail(s, SEG_EMISUSE, "'%s': %s outside a transaction", s->name, what);
}

/* ---- writes ---- */

static void bind_row(sqlite3_stmt *st, int b, const sq_row *r)
{
    bind_id(st, b + 1, r->id);
    sqlite3_bind_int64(st, b + 2, r->cust);
    sqlite3_bind_int64(st, b + 3, r->ts);
    sqlite3_bind_int64(st, b + 4, r->kind);
    sqlite3_bind_int64(st, b + 5, r->amount);
    sqlite3_bind_int64(st, b + 6, r->qty);
    bind_id(st, b + 7, r->chan);
    bind_id(st, b + 8, r->cat);
    bind_id(st, b + 9, r->sku);
    bind_text(st, b + 10, r->order);
    bind_text(st, b + 11, r->refund_of);
    bind_id(st, b + 12, r->name);
    if (r->eid)
        sqlite3_bind_text(st, b + 13, r->eid, -1, SQLITE_STATIC);
    else
        bind_id(st, b + 13, r->occ);
}

/* Insert the buffered rows: EV_ROWS at once, or one by one. */
static int flush_rows(sq_storage *s)
{
    int rc;
    size_t n = s->nrows;
    s->nrows = 0;
    if (n == EV_ROWS) {
        sqlite3_stmt *st = stmt(s, ST_EVN, &rc);
        if (!st)
            return rc;
        for (size_t k = 0; k < n; k++)
            bind_row(st, (int)k * EV_COLS, &s->rows[k]);
        return step_done(s, st, "insert events");
    }
    sqlite3_stmt *st = stmt(s, ST_EV1, &rc);
    if (!st)
        return rc;
    for (size_t k = 0; k < n; k++) {
        bind_row(st, 0, &s->rows[k]);
        if ((rc = step_done(s, st, "insert event")) != SEG_OK)
            return rc;
    }
    return SEG_OK;
}

static int dict_id(sq_storage *s, int k, const char *p, int64_t *out)
{
    *out = 0;
    if (!p)
        return SEG_OK;
    uint32_t id;
    int rc = intern(s, k, p, 0, false, &id);
    if (rc == SEG_OK)
        *out = id;
    return rc;
}

static int customer_id(sq_storage *s, const char *p, bool reuse, uint32_t *out)
{
    if (s->last_cust) {
        const char *t = map_text(&s->map[MAP_CUST], s->last_cust, NULL);
        if (t && strcmp(t, p) == 0) {
            *out = s->last_cust;
            return SEG_OK;
        }
    }
    int rc = intern(s, MAP_CUST, p, 0, reuse, out);
    if (rc == SEG_OK)
        s->last_cust = *out;
    return rc;
}

static int sq_put_events(seg_storage *st, const seg_event_info *events, size_t n)
{
    sq_storage *s = (sq_storage *)st;
    int rc = in_txn(s, "put_events");
    if (rc != SEG_OK)
        return rc;
    s->nrows = 0;
    for (size_t i = 0; i < n; i++) {
        const seg_event_info *e = &events[i];
        if (!e->customer_id || !e->event_id)
            return sq_fail(s, SEG_EINVAL, "'%s': put_events: event without id or customer",
                           s->name);
        sq_row *r = &s->rows[s->nrows];
        memset(r, 0, sizeof *r);
        uint32_t cid;
        if ((rc = customer_id(s, e->customer_id, false, &cid)) != SEG_OK)
            return rc;
        r->cust = cid;
        if (cid == s->reuse_for && s->reuse_pos < s->nreuse)
            r->id = s->reuse_ev[s->reuse_pos++];
        r->ts = e->ts;
        r->kind = e->kind;
        r->amount = e->amount;
        r->qty = e->quantity;
        if ((rc = dict_id(s, MAP_CHAN, e->channel, &r->chan)) != SEG_OK ||
            (rc = dict_id(s, MAP_CAT, e->category, &r->cat)) != SEG_OK ||
            (rc = dict_id(s, MAP_SKU, e->sku, &r->sku)) != SEG_OK ||
            (rc = dict_id(s, MAP_NAME, e->name, &r->name)) != SEG_OK)
            return rc;
        /* an order-less purchase carries its own event id as order id */
        r->order = e->order_id;
        if (e->kind == SEG_EVENT_PURCHASE && r->order && strcmp(r->order, e->event_id) == 0)
            r->order = NULL;
        r->refund_of = e->refund_of;
        int64_t occ = occurrence_of(e, r->order);
        if (occ >= 0)
            r->occ = occ;
        else
            r->eid = e->event_id;
        if (++s->nrows == EV_ROWS && (rc = flush_rows(s)) != SEG_OK)
            return rc;
    }
    return flush_rows(s);
}

static int sq_put_customer(seg_storage *st, const char *customer_id_)
{
    sq_storage *s = (sq_storage *)st;
    int rc = in_txn(s, "put_customer");
    if (rc != SEG_OK)
        return rc;
    if (!customer_id_)
        return sq_fail(s, SEG_EINVAL, "'%s': put_customer: no id", s->name);
    uint32_t id;
    return customer_id(s, customer_id_, true, &id);
}

static int sq_put_attr(seg_storage *st, const char *cust, const char *name, const seg_value *v)
{
    sq_storage *s = (sq_storage *)st;
    int rc = in_txn(s, "put_attr");
    if (rc != SEG_OK)
        return rc;
    if (!cust || !name || !v || v->type > SEG_TYPE_TIME ||
        (v->type == SEG_TYPE_STRING && !v->s))
        return sq_fail(s, SEG_EINVAL, "'%s': put_attr: incomplete attribute", s->name);
    uint32_t cid, aid;
    if ((rc = customer_id(s, cust, false, &cid)) != SEG_OK)
        return rc;
    sqlite3_stmt *q;
    if (v->type == SEG_TYPE_NULL) {
        aid = map_find(&s->map[MAP_ATTR], name, strlen(name));
        if (!aid)
            return SEG_OK;
        if (!(q = stmt(s, ST_ATTR_DEL, &rc)))
            return rc;
        sqlite3_bind_int64(q, 1, cid);
        sqlite3_bind_int64(q, 2, aid);
        return step_done(s, q, "delete attribute");
    }
    if ((rc = intern(s, MAP_ATTR, name, v->type, false, &aid)) != SEG_OK)
        return rc;
    if (!(q = stmt(s, ST_ATTR_PUT, &rc)))
        return rc;
    sqlite3_bind_int64(q, 1, cid);
    sqlite3_bind_int64(q, 2, aid);
    if (v->type == SEG_TYPE_STRING)
        sqlite3_bind_text(q, 3, v->s, -1, SQLITE_STATIC);
    else if (v->type == SEG_TYPE_NUMBER)
        sqlite3_bind_double(q, 3, v->d);
    else
        sqlite3_bind_int64(q, 3, v->i);
    return step_done(s, q, "store attribute");
}

static int sq_put_consent(seg_storage *st, const char *cust, const char *channel, int state)
{
    sq_storage *s = (sq_storage *)st;
    int rc = in_txn(s, "put_consent");
    if (rc != SEG_OK)
        return rc;
    if (!cust || !channel || state < SEG_CONSENT_UNKNOWN || state > SEG_CONSENT_DENIED)
        return sq_fail(s, SEG_EINVAL, "'%s': put_consent: incomplete consent", s->name);
    uint32_t cid, chid;
    if ((rc = customer_id(s, cust, false, &cid)) != SEG_OK)
        return rc;
    sqlite3_stmt *q;
    if (state == SEG_CONSENT_UNKNOWN) {
        chid = map_find(&s->map[MAP_CONS], channel, strlen(channel));
        if (!chid)
            return SEG_OK;
        if (!(q = stmt(s, ST_CONS_DEL, &rc)))
            return rc;
        sqlite3_bind_int64(q, 1, cid);
        sqlite3_bind_int64(q, 2, chid);
        return step_done(s, q, "delete consent");
    }
    if ((rc = intern(s, MAP_CONS, channel, 0, false, &chid)) != SEG_OK)
        return rc;
    if (!(q = stmt(s, ST_CONS_PUT, &rc)))
        return rc;
    sqlite3_bind_int64(q, 1, cid);
    sqlite3_bind_int64(q, 2, chid);
    sqlite3_bind_int64(q, 3, state);
    return step_done(s, q, "store consent");
}

static int by_customer(sq_storage *s, int which, uint32_t cid, const char *what)
{
    int rc;
    sqlite3_stmt *q = stmt(s, which, &rc);
    if (!q)
        return rc;
    sqlite3_bind_int64(q, 1, cid);
    return step_done(s, q, what);
}

static int sq_erase_customer(seg_storage *st, const char *cust)
{
    sq_storage *s = (sq_storage *)st;
    int rc = in_txn(s, "erase_customer");
    if (rc != SEG_OK)
        return rc;
    if (!cust)
        return sq_fail(s, SEG_EINVAL, "'%s': erase_customer: no id", s->name);
    uint32_t cid = map_find(&s->map[MAP_CUST], cust, strlen(cust));
    if (!cid)
        return SEG_OK; /* nothing stored */
    if ((rc = by_customer(s, ST_CUST_ATTRS_DEL, cid, "erase attributes")) != SEG_OK ||
        (rc = by_customer(s, ST_CUST_CONS_DEL, cid, "erase consent")) != SEG_OK)
        return rc;
    /* the customer's events (a scan of the table: no index on customer) */
    reuse_clear(s);
    sqlite3_stmt *q = stmt(s, ST_EV_OF, &rc);
    if (!q)
        return rc;
    sqlite3_bind_int64(q, 1, cid);
    int src;
    while ((src = sqlite3_step(q)) == SQLITE_ROW) {
        if (s->nreuse == s->capreuse) {
            size_t cap = s->capreuse ? s->capreuse * 2 : 64;
            int64_t *p = seg__realloc_array(s->a, s->reuse_ev, cap, sizeof *p);
            if (!p) {
                sqlite3_reset(q);
                return sq_nomem(s, SEG_ENOMEM, "erase");
            }
            s->reuse_ev = p;
            s->capreuse = cap;
        }
        s->reuse_ev[s->nreuse++] = sqlite3_column_int64(q, 0);
    }
    sqlite3_reset(q);
    if (src != SQLITE_DONE)
        return sq_sqlfail(s, src, "find the customer's events");
    if (!(q = stmt(s, ST_EV_DEL, &rc)))
        return rc;
    for (size_t k = 0; k < s->nreuse; k++) {
        sqlite3_bind_int64(q, 1, s->reuse_ev[k]);
        if ((rc = step_done(s, q, "erase event")) != SEG_OK)
            return rc;
    }
    if ((rc = by_customer(s, ST_CUST_DEL, cid, "erase customer")) != SEG_OK)
        return rc;
    if ((rc = txn_reserve(s)) != SEG_OK)
        return sq_nomem(s, rc, "erase");
    uint32_t off = s->map[MAP_CUST].off[cid];
    map_unlink(&s->map[MAP_CUST], cid);
    txn_log(s, MAP_CUST, false, cid, off);
    s->last_cust = 0;
    s->reuse_cust = cid;
    return SEG_OK;
}

static int sq_put_meta(seg_storage *st, const char *key, const char *value)
{
    sq_storage *s = (sq_storage *)st;
    int rc = in_txn(s, "put_meta");
    if (rc != SEG_OK)
        return rc;
    if (!key)
        return sq_fail(s, SEG_EINVAL, "'%s': put_meta: no key", s->name);
    sqlite3_stmt *q = stmt(s, value ? ST_META_PUT : ST_META_DEL, &rc);
    if (!q)
        return rc;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    if (value)
        sqlite3_bind_text(q, 2, value, -1, SQLITE_STATIC);
    return step_done(s, q, "store meta entry");
}

static int sq_put_record(seg_storage *st, const char *table, const char *key, const void *data,
                         size_t len)
{
    sq_storage *s = (sq_storage *)st;
    int rc = in_txn(s, "put_record");
    if (rc != SEG_OK)
        return rc;
    if (!table || !key)
        return sq_fail(s, SEG_EINVAL, "'%s': put_record: no table or key", s->name);
    if (len > (size_t)INT32_MAX)
        return sq_fail(s, SEG_ELIMIT, "'%s': put_record: %zu bytes is too large", s->name, len);
    sqlite3_stmt *q = stmt(s, data ? ST_REC_PUT : ST_REC_DEL, &rc);
    if (!q)
        return rc;
    sqlite3_bind_text(q, 1, table, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, key, -1, SQLITE_STATIC);
    if (data)
        sqlite3_bind_blob(q, 3, len ? data : "", (int)len, SQLITE_STATIC);
    return step_done(s, q, data ? "store record" : "delete record");
}

/* ================================================================ schema */

/* Version 1: the tables.  Version 2: the readable views.  Version 3: the
 * readable views of the modules' records (journey states, the outbox,
 * loyalty ledgers: JSON text read with json_extract; the same text as in
 * doc/journey.md, doc/outbox.md and doc/loyalty.md, which a test checks).
 * Append a version for every change; never edit one that was released. */
#define SCHEMA_LATEST 3
#define SCHEMA_MIN_READ 1 /* the oldest version load() reads as it is */

static const char *const migrations[SCHEMA_LATEST + 1] = {
    NULL,
    /* 1 */
    "CREATE TABLE seg_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE seg_customers(id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL);"
    "CREATE TABLE seg_channels(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE seg_categories(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE seg_skus(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE seg_event_names(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE seg_events("
    " id INTEGER PRIMARY KEY,"
    " customer INTEGER NOT NULL REFERENCES seg_customers(id),"
    " ts INTEGER NOT NULL,"
    " kind INTEGER NOT NULL,"
    " amount INTEGER NOT NULL,"
    " quantity INTEGER NOT NULL,"
    " channel INTEGER REFERENCES seg_channels(id),"
    " category INTEGER REFERENCES seg_categories(id),"
    " sku INTEGER REFERENCES seg_skus(id),"
    " order_id TEXT,"
    " refund_of TEXT,"
    " name INTEGER REFERENCES seg_event_names(id),"
    " event_id ANY);"
    "CREATE TABLE seg_attr_names(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " type TEXT NOT NULL);"
    "CREATE TABLE seg_attributes("
    " customer INTEGER NOT NULL REFERENCES seg_customers(id),"
    " attr INTEGER NOT NULL REFERENCES seg_attr_names(id),"
    " value ANY NOT NULL,"
    " PRIMARY KEY(customer, attr)) WITHOUT ROWID;"
    "CREATE TABLE seg_consent_channels(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE seg_consent("
    " customer INTEGER NOT NULL REFERENCES seg_customers(id),"
    " channel INTEGER NOT NULL REFERENCES seg_consent_channels(id),"
    " state INTEGER NOT NULL,"
    " PRIMARY KEY(customer, channel)) WITHOUT ROWID;"
    "CREATE TABLE seg_records(tbl TEXT NOT NULL, key TEXT NOT NULL, data BLOB NOT NULL,"
    " PRIMARY KEY(tbl, key)) WITHOUT ROWID;",
    /* 2 */
    "CREATE VIEW seg_events_v AS SELECT"
    " e.id AS seq, c.customer_id AS customer_id, e.ts AS ts,"
    " strftime('%Y-%m-%dT%H:%M:%SZ', e.ts, 'unixepoch') AS time,"
    " CASE e.kind WHEN 1 THEN 'purchase' WHEN 2 THEN 'refund' WHEN 3 THEN 'engagement' END"
    " AS type,"
    " e.amount AS amount, e.quantity AS quantity, e.order_id AS order_id,"
    " ch.name AS channel, ca.name AS category, sk.name AS sku, e.refund_of AS refund_of,"
    " n.name AS name,"
    " CASE WHEN typeof(e.event_id) = 'text' THEN e.event_id END AS event_id"
    " FROM seg_events e JOIN seg_customers c ON c.id = e.customer"
    " LEFT JOIN seg_channels ch ON ch.id = e.channel"
    " LEFT JOIN seg_categories ca ON ca.id = e.category"
    " LEFT JOIN seg_skus sk ON sk.id = e.sku"
    " LEFT JOIN seg_event_names n ON n.id = e.name;"
    "CREATE VIEW seg_attributes_v AS SELECT"
    " c.customer_id AS customer_id, n.name AS name, n.type AS type,"
    " CASE n.type WHEN 'time' THEN strftime('%Y-%m-%dT%H:%M:%SZ', a.value, 'unixepoch')"
    " WHEN 'bool' THEN CASE a.value WHEN 0 THEN 'false' ELSE 'true' END"
    " ELSE a.value END AS value"
    " FROM seg_attributes a JOIN seg_customers c ON c.id = a.customer"
    " JOIN seg_attr_names n ON n.id = a.attr;"
    "CREATE VIEW seg_consent_v AS SELECT"
    " c.customer_id AS customer_id, ch.name AS channel,"
    " CASE s.state WHEN 1 THEN 'granted' WHEN 2 THEN 'denied' END AS state"
    " FROM seg_consent s JOIN seg_customers c ON c.id = s.customer"
    " JOIN seg_consent_channels ch ON ch.id = s.channel;",
    /* 3 */
    "CREATE VIEW seg_journey_states_v AS\n"
    "  SELECT substr(key, 1, instr(key, '/') - 1) AS journey,\n"
    "         substr(key, instr(key, '/') + 1) AS customer_id,\n"
    "         json_extract(CAST(data AS TEXT), '$.state') AS state, json_extract(CAST(data AS TEXT), '$.run') AS run,\n"
    "         json_extract(CAST(data AS TEXT), '$.since') AS since, json_extract(CAST(data AS TEXT), '$.variant') AS variant,\n"
    "         json_extract(CAST(data AS TEXT), '$.converted') AS converted, json_extract(CAST(data AS TEXT), '$.exit') AS exit\n"
    "  FROM seg_records WHERE tbl = 'journey' AND instr(key, '/') > 0;"
    "CREATE VIEW seg_outbox_v AS\n"
    "SELECT json_extract(CAST(data AS TEXT), '$.seq') AS seq,\n"
    "       json_extract(CAST(data AS TEXT), '$.status') AS status,\n"
    "       json_extract(CAST(data AS TEXT), '$.due') AS due,\n"
    "       datetime(json_extract(CAST(data AS TEXT), '$.due'), 'unixepoch') AS due_time,\n"
    "       json_extract(CAST(data AS TEXT), '$.time') AS time,\n"
    "       json_extract(CAST(data AS TEXT), '$.customer') AS customer_id,\n"
    "       json_extract(CAST(data AS TEXT), '$.journey') AS journey,\n"
    "       json_extract(CAST(data AS TEXT), '$.run') AS run,\n"
    "       json_extract(CAST(data AS TEXT), '$.step') AS step,\n"
    "       json_extract(CAST(data AS TEXT), '$.state') AS state,\n"
    "       json_extract(CAST(data AS TEXT), '$.action') AS action,\n"
    "       json_extract(CAST(data AS TEXT), '$.channel') AS channel,\n"
    "       json_extract(CAST(data AS TEXT), '$.params') AS params,\n"
    "       json_extract(CAST(data AS TEXT), '$.variant') AS variant\n"
    "FROM seg_records\n"
    "WHERE tbl = 'outbox' AND key LIKE 'e:%';"
    "CREATE VIEW seg_loyalty_entries_v AS\n"
    "SELECT substr(r.tbl, 9) AS program,\n"
    "       r.key AS customer_id,\n"
    "       json_extract(e.value, '$.seq') AS seq,\n"
    "       json_extract(e.value, '$.type') AS type,\n"
    "       json_extract(e.value, '$.ts') AS ts,\n"
    "       json_extract(e.value, '$.order') AS order_id,\n"
    "       json_extract(e.value, '$.amount') AS amount,\n"
    "       json_extract(e.value, '$.points') AS points,\n"
    "       json_extract(e.value, '$.expires') AS expires,\n"
    "       json_extract(d.value, '$.lot') AS lot,\n"
    "       json_extract(d.value, '$.points') AS lot_points\n"
    "FROM seg_records AS r\n"
    "JOIN json_each(CAST(r.data AS TEXT), '$.entries') AS e\n"
    "LEFT JOIN json_each(e.value, '$.draws') AS d\n"
    "WHERE r.tbl LIKE 'loyalty:%';",
};

#define APPLICATION_ID 0x5345474d /* "SEGM" */

/* An integer from a one-row query, or def when it gives no row. */
static int query_int(sq_storage *s, const char *sql, int64_t def, int64_t *out)
{
    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &q, NULL);
    if (rc != SQLITE_OK)
        return sq_sqlfail(s, rc, "read the schema");
    rc = sqlite3_step(q);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : def;
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sq_sqlfail(s, rc, "read the schema");
    return SEG_OK;
}

/* Check the schema version; create or upgrade the schema when writable. */
static int schema(sq_storage *s)
{
    int64_t has, v = 0, other;
    int rc = query_int(s, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                          "name = 'seg_schema_version'", 0, &has);
    if (rc == SEG_OK && has)
        rc = query_int(s, "SELECT max(version) FROM seg_schema_version", 0, &v);
    if (rc == SEG_OK && !has)
        rc = query_int(s, "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
                       0, &other);
    if (rc != SEG_OK)
        return rc;
    if (!has && other && s->owned)
        return sq_fail(s, SEG_ESTORAGE,
                       "'%s' is an SQLite database of another application (it has tables, "
                       "but no seg_schema_version)", s->name);
    if (has && v < 1)
        return sq_fail(s, SEG_ESTORAGE, "'%s': seg_schema_version holds no valid version",
                       s->name);
    if (v > SCHEMA_LATEST)
        return sq_fail(s, SEG_EVERSION,
                       "'%s' has schema version %lld, newer than this libsegment %s knows "
                       "(%d): open it with a newer libsegment", s->name, (long long)v,
                       SEG_VERSION_STRING, SCHEMA_LATEST);
    if (v == SCHEMA_LATEST)
        return SEG_OK;
    if (s->readonly) {
        if (v >= SCHEMA_MIN_READ)
            return SEG_OK;
        return sq_fail(s, SEG_ESTORAGE,
                       "'%s' is not a libsegment database (no seg_schema_version table)",
                       s->name);
    }
    bool sp = !sqlite3_get_autocommit(s->db);
    if ((rc = exec_sql(s, sp ? "SAVEPOINT seg_schema" : "BEGIN IMMEDIATE", "begin")) != SEG_OK)
        return rc;
    char what[64];
    for (int64_t k = v + 1; k <= SCHEMA_LATEST && rc == SEG_OK; k++) {
        snprintf(what, sizeof what, "schema version %lld", (long long)k);
        rc = exec_sql(s, migrations[k], what);
    }
    if (rc == SEG_OK) {
        char sql[160];
        if (!has)
            rc = exec_sql(s, "CREATE TABLE seg_schema_version(version INTEGER NOT NULL)",
                          "schema version table");
        snprintf(sql, sizeof sql, "DELETE FROM seg_schema_version; "
                 "INSERT INTO seg_schema_version(version) VALUES (%d)", SCHEMA_LATEST);
        if (rc == SEG_OK)
            rc = exec_sql(s, sql, "schema version");
        if (rc == SEG_OK && !has && s->owned) {
            snprintf(sql, sizeof sql, "PRAGMA application_id = %d", APPLICATION_ID);
            rc = exec_sql(s, sql, "application id");
        }
    }
    if (rc == SEG_OK)
        rc = exec_sql(s, sp ? "RELEASE seg_schema" : "COMMIT", "commit the schema");
    if (rc != SEG_OK) {
        sqlite3_exec(s->db, sp ? "ROLLBACK TO seg_schema; RELEASE seg_schema" : "ROLLBACK",
                     NULL, NULL, NULL);
        seg_db *db = s->base.core ? s->base.core->db : NULL;
        if (db)
            seg__error_prefix(db, "%s the schema: ", has ? "upgrading" : "creating");
    }
    return rc;
}

/* ================================================================== load */

/* The core refused something stored (a sink call failed): the file holds
 * what this library cannot load. */
static int sink_fail(sq_storage *s, int rc)
{
    if (rc == SEG_ENOMEM || !s->base.core || !s->base.core->db)
        return rc;
    char msg[600];
    snprintf(msg, sizeof msg, "%s", seg_errmsg(s->base.core->db));
    return sq_fail(s, SEG_ESTORAGE, "'%s': %s (damaged database?)", s->name, msg);
}

static const char *const map_table[NMAPS] = {
    "SELECT id, customer_id FROM seg_customers ORDER BY id",
    "SELECT id, name FROM seg_channels",
    "SELECT id, name FROM seg_categories",
    "SELECT id, name FROM seg_skus",
    "SELECT id, name FROM seg_event_names",
    "SELECT id, name, type FROM seg_attr_names",
    "SELECT id, name FROM seg_consent_channels",
};

static uint32_t type_of(const char *t)
{
    static const char *const tn[] = { "string", "int", "number", "bool", "time" };
    for (uint32_t k = 0; t && k < 5; k++)
        if (strcmp(t, tn[k]) == 0)
            return k + 1;
    return SEG_TYPE_NULL;
}

/* Read map k from its table; customers go to the sink as they come. */
static int load_map(sq_storage *s, int k, const seg_storage_sink *sink, void *ctx)
{
    sq_map *m = &s->map[k];
    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2(s->db, map_table[k], -1, &q, NULL);
    if (rc != SQLITE_OK)
        return sq_sqlfail(s, rc, "load");
    int src;
    rc = SEG_OK;
    while (rc == SEG_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(q, 0);
        const char *t = (const char *)sqlite3_column_text(q, 1);
        size_t n = (size_t)sqlite3_column_bytes(q, 1);
        uint32_t type = k == MAP_ATTR ? type_of((const char *)sqlite3_column_text(q, 2)) : 0;
        uint32_t tag = t ? map_tag(t, n) : 0;
        if (id < 1 || id >= ID_LIMIT || !t || n == 0 || n > SEG_ID_MAX || strlen(t) != n ||
            (k == MAP_ATTR && !type)) {
            rc = sq_fail(s, SEG_ESTORAGE, "'%s': load: bad %s row (id %lld)", s->name,
                         map_what[k], (long long)id);
        } else if (map_find_t(m, t, n, tag) || map_text(m, (uint32_t)id, NULL)) {
            rc = sq_fail(s, SEG_ESTORAGE, "'%s': load: %s '%s' (id %lld) is stored twice",
                         s->name, map_what[k], t, (long long)id);
        } else if ((rc = map_add(s->a, m, (uint32_t)id, t, n, tag)) != SEG_OK) {
            rc = sq_nomem(s, rc, "load");
        } else {
            if (k == MAP_ATTR)
                m->type[id] = (uint8_t)type;
            if (k == MAP_CUST && sink && (rc = sink->customer(ctx, t)) != SEG_OK)
                rc = sink_fail(s, rc);
        }
    }
    sqlite3_finalize(q);
    if (rc == SEG_OK && src != SQLITE_DONE)
        rc = sq_sqlfail(s, src, "load");
    return rc;
}

/* Build the maps from the tables (once; load() does it while it streams). */
static int maps_load(sq_storage *s, const seg_storage_sink *sink, void *ctx)
{
    if (s->maps_ready)
        return SEG_OK;
    int rc = SEG_OK;
    for (int k = 0; k < NMAPS && rc == SEG_OK; k++)
        rc = load_map(s, k, sink, ctx);
    if (rc != SEG_OK) {
        for (int k = 0; k < NMAPS; k++)
            map_free(s->a, &s->map[k]);
        return rc;
    }
    s->maps_ready = true;
    return SEG_OK;
}

static int corrupt(sq_storage *s, const char *what, int64_t rowid)
{
    return sq_fail(s, SEG_ESTORAGE, "'%s': load: event %lld: %s (damaged database?)", s->name,
                   (long long)rowid, what);
}

static const char *dict_text(sq_storage *s, int k, sqlite3_stmt *q, int col, bool *bad)
{
    int64_t id = sqlite3_column_int64(q, col);
    if (!id)
        return NULL;
    const char *t = id > 0 && id < ID_LIMIT ? map_text(&s->map[k], (uint32_t)id, NULL) : NULL;
    if (!t)
        *bad = true;
    return t;
}

static int load_events(sq_storage *s, const seg_storage_sink *sink, void *ctx)
{
    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT id, customer, ts, kind, amount, quantity, channel, "
                                "category, sku, order_id, refund_of, name, event_id "
                                "FROM seg_events ORDER BY id", -1, &q, NULL);
    if (rc != SQLITE_OK)
        return sq_sqlfail(s, rc, "load events");
    char idbuf[34];
    int src;
    rc = SEG_OK;
    while (rc == SEG_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
        seg_event_info e;
        memset(&e, 0, sizeof e);
        e.struct_size = sizeof e;
        int64_t cust = sqlite3_column_int64(q, 1);
        e.customer_id = cust > 0 && cust < ID_LIMIT
                            ? map_text(&s->map[MAP_CUST], (uint32_t)cust, NULL) : NULL;
        if (!e.customer_id) {
            rc = corrupt(s, "no such customer", sqlite3_column_int64(q, 0));
            break;
        }
        e.ts = sqlite3_column_int64(q, 2);
        int64_t kind = sqlite3_column_int64(q, 3);
        e.kind = kind >= 0 && kind <= UINT32_MAX ? (uint32_t)kind : 0;
        e.amount = sqlite3_column_int64(q, 4);
        int64_t qty = sqlite3_column_int64(q, 5);
        if (qty < INT32_MIN + 1 || qty > INT32_MAX) {
            rc = corrupt(s, "quantity out of range", sqlite3_column_int64(q, 0));
            break;
        }
        e.quantity = (int32_t)qty;
        bool bad = false;
        e.channel = dict_text(s, MAP_CHAN, q, 6, &bad);
        e.category = dict_text(s, MAP_CAT, q, 7, &bad);
        e.sku = dict_text(s, MAP_SKU, q, 8, &bad);
        e.order_id = (const char *)sqlite3_column_text(q, 9);
        e.refund_of = (const char *)sqlite3_column_text(q, 10);
        e.name = dict_text(s, MAP_NAME, q, 11, &bad);
        if (bad) {
            rc = corrupt(s, "no such channel, category, sku or name", sqlite3_column_int64(q, 0));
            break;
        }
        int ct = sqlite3_column_type(q, 12);
        if (ct == SQLITE_TEXT) {
            e.event_id = (const char *)sqlite3_column_text(q, 12);
        } else if (ct != SQLITE_NULL) {
            /* a repeat of identical content: render its derived id (the
             * first occurrence goes without: the core derives it) */
            int64_t occ = sqlite3_column_int64(q, 12);
            if (ct != SQLITE_INTEGER || occ < 1 || occ > UINT32_MAX) {
                rc = corrupt(s, "bad occurrence number", sqlite3_column_int64(q, 0));
                break;
            }
            seg__ev ev;
            content_of(&ev, &e, e.order_id);
            seg__did_format(idbuf, seg__derive_id(&ev, (uint32_t)occ));
            e.event_id = idbuf;
        }
        if (sink && (rc = sink->event(ctx, &e)) != SEG_OK)
            rc = sink_fail(s, rc);
    }
    sqlite3_finalize(q);
    if (rc == SEG_OK && src != SQLITE_DONE)
        rc = sq_sqlfail(s, src, "load events");
    return rc;
}

static int load_attrs(sq_storage *s, const seg_storage_sink *sink, void *ctx)
{
    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2(s->db, "SELECT customer, attr, value FROM seg_attributes "
                                       "ORDER BY customer, attr", -1, &q, NULL);
    if (rc != SQLITE_OK)
        return sq_sqlfail(s, rc, "load attributes");
    int src;
    rc = SEG_OK;
    while (rc == SEG_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t c = sqlite3_column_int64(q, 0), a = sqlite3_column_int64(q, 1);
        const char *cust = c > 0 && c < ID_LIMIT ? map_text(&s->map[MAP_CUST], (uint32_t)c, NULL)
                                                 : NULL;
        const char *name = a > 0 && a < ID_LIMIT ? map_text(&s->map[MAP_ATTR], (uint32_t)a, NULL)
                                                 : NULL;
        seg_value v;
        memset(&v, 0, sizeof v);
        int ct = sqlite3_column_type(q, 2);
        if (cust && name) {
            v.type = s->map[MAP_ATTR].type[a];
            if (v.type == SEG_TYPE_STRING && ct == SQLITE_TEXT)
                v.s = (const char *)sqlite3_column_text(q, 2);
            else if (v.type == SEG_TYPE_NUMBER && (ct == SQLITE_FLOAT || ct == SQLITE_INTEGER))
                v.d = sqlite3_column_double(q, 2);
            else if (v.type != SEG_TYPE_STRING && v.type != SEG_TYPE_NUMBER &&
                     ct == SQLITE_INTEGER)
                v.i = sqlite3_column_int64(q, 2);
            else
                cust = NULL;
        }
        if (!cust || !name)
            rc = sq_fail(s, SEG_ESTORAGE, "'%s': load: bad attribute row (customer %lld, "
                         "attribute %lld)", s->name, (long long)c, (long long)a);
        else if (sink && (rc = sink->attr(ctx, cust, name, &v)) != SEG_OK)
            rc = sink_fail(s, rc);
    }
    sqlite3_finalize(q);
    if (rc == SEG_OK && src != SQLITE_DONE)
        rc = sq_sqlfail(s, src, "load attributes");
    return rc;
}

static int load_consent(sq_storage *s, const seg_storage_sink *sink, void *ctx)
{
    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2(s->db, "SELECT customer, channel, state FROM seg_consent "
                                       "ORDER BY customer, channel", -1, &q, NULL);
    if (rc != SQLITE_OK)
        return sq_sqlfail(s, rc, "load consent");
    int src;
    rc = SEG_OK;
    while (rc == SEG_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t c = sqlite3_column_int64(q, 0), ch = sqlite3_column_int64(q, 1);
        int64_t state = sqlite3_column_int64(q, 2);
        const char *cust = c > 0 && c < ID_LIMIT ? map_text(&s->map[MAP_CUST], (uint32_t)c, NULL)
                                                 : NULL;
        const char *chan = ch > 0 && ch < ID_LIMIT
                               ? map_text(&s->map[MAP_CONS], (uint32_t)ch, NULL) : NULL;
        if (!cust || !chan || (state != SEG_CONSENT_GRANTED && state != SEG_CONSENT_DENIED))
            rc = sq_fail(s, SEG_ESTORAGE, "'%s': load: bad consent row (customer %lld, "
                         "channel %lld)", s->name, (long long)c, (long long)ch);
        else if (sink && (rc = sink->consent(ctx, cust, chan, (int)state)) != SEG_OK)
            rc = sink_fail(s, rc);
    }
    sqlite3_finalize(q);
    if (rc == SEG_OK && src != SQLITE_DONE)
        rc = sq_sqlfail(s, src, "load consent");
    return rc;
}

/* Stream key/value rows (meta entries or records, of every table or of
 * table `only`) to the sink. */
static int load_pairs(sq_storage *s, bool meta, const char *only, const seg_storage_sink *sink,
                      void *ctx)
{
    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2(s->db, meta ? "SELECT key, value FROM seg_meta ORDER BY key"
                                       : only ? "SELECT tbl, key, data FROM seg_records "
                                                "WHERE tbl = ?1 ORDER BY key"
                                              : "SELECT tbl, key, data FROM seg_records "
                                                "ORDER BY tbl, key", -1, &q, NULL);
    if (rc != SQLITE_OK)
        return sq_sqlfail(s, rc, "load");
    if (only)
        sqlite3_bind_text(q, 1, only, -1, SQLITE_STATIC);
    int src;
    rc = SEG_OK;
    while (rc == SEG_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
        const char *a = (const char *)sqlite3_column_text(q, 0);
        const char *b = (const char *)sqlite3_column_text(q, 1);
        if (!a || !b) {
            rc = sq_fail(s, SEG_ESTORAGE, "'%s': load: %s without key", s->name,
                         meta ? "meta entry" : "record");
        } else if (meta) {
            if ((rc = sink->meta(ctx, a, b)) != SEG_OK)
                rc = sink_fail(s, rc);
        } else {
            const void *d = sqlite3_column_blob(q, 2);
            int n = sqlite3_column_bytes(q, 2);
            if ((rc = sink->record(ctx, a, b, d ? d : "", (size_t)n)) != SEG_OK)
                rc = sink_fail(s, rc);
        }
    }
    sqlite3_finalize(q);
    if (rc == SEG_OK && src != SQLITE_DONE)
        rc = sq_sqlfail(s, src, "load");
    return rc;
}

static int sq_load(seg_storage *st, const seg_storage_sink *sink, void *ctx)
{
    sq_storage *s = (sq_storage *)st;
    if (s->maps_ready) /* a second load: start over */
        for (int k = 0; k < NMAPS; k++)
            map_free(s->a, &s->map[k]);
    s->maps_ready = false;
    s->last_cust = 0;
    int rc = SEG_OK;
    /* one read transaction: every table as of the same moment */
    bool txn = sqlite3_get_autocommit(s->db);
    if (txn && (rc = exec_sql(s, "BEGIN", "load")) != SEG_OK)
        return rc;
    if (sink && (rc = load_pairs(s, true, NULL, sink, ctx)) != SEG_OK)
        goto out;
    if ((rc = maps_load(s, sink, ctx)) != SEG_OK)
        goto out;
    if (!sink)
        goto out;
    if ((rc = load_events(s, sink, ctx)) == SEG_OK &&
        (rc = load_attrs(s, sink, ctx)) == SEG_OK &&
        (rc = load_consent(s, sink, ctx)) == SEG_OK)
        rc = load_pairs(s, false, NULL, sink, ctx);
out:
    if (txn)
        sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    return rc;
}

/* ========================================================== open, close */

static void sq_close(seg_storage *st)
{
    sq_storage *s = (sq_storage *)st;
    if (s->db && s->in_txn)
        sq_rollback(st);
    for (int k = 0; k < NST; k++)
        if (s->st[k])
            sqlite3_finalize(s->st[k]);
    if (s->db && s->owned)
        sqlite3_close(s->db); /* the last connection checkpoints and removes the WAL */
    s->db = NULL;
    if (s->lockfd >= 0) /* after SQLite let go of the file */
        close(s->lockfd);
    s->lockfd = -1;
    for (int k = 0; k < NMAPS; k++)
        map_free(s->a, &s->map[k]);
    seg__free(s->a, s->undo);
    seg__free(s->a, s->reuse_ev);
    s->undo = NULL;
    s->reuse_ev = NULL;
}

/* The single-writer lock: flock() on FILE-seglock. */
static int take_lock(sq_storage *s)
{
    const char *path = sqlite3_db_filename(s->db, "main");
    if (!path || !*path)
        return SEG_OK; /* a temporary or in-memory database */
    size_t n = strlen(path);
    char *lp = seg__malloc(s->a, n + sizeof "-seglock");
    if (!lp)
        return sq_nomem(s, SEG_ENOMEM, "lock");
    memcpy(lp, path, n);
    memcpy(lp + n, "-seglock", sizeof "-seglock");
    int rc = SEG_OK;
    s->lockfd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lockfd < 0) {
        rc = sq_fail(s, SEG_ESTORAGE, "'%s': cannot create the lock file '%s': %s", s->name, lp,
                     strerror(errno));
    } else if (flock(s->lockfd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(s->lockfd);
        s->lockfd = -1;
        if (e == EWOULDBLOCK)
            rc = sq_fail(s, SEG_EBUSY,
                         "'%s' is open for writing by another handle, in this process or "
                         "another (lock file '%s'); only read-only opens are possible until it "
                         "is closed", s->name, lp);
        else
            rc = sq_fail(s, SEG_ESTORAGE, "'%s': cannot lock '%s': %s", s->name, lp,
                         strerror(e));
    }
    seg__free(s->a, lp);
    return rc;
}

static int open_file(sq_storage *s, const char *uri, uint32_t flags)
{
    if (!uri || !*uri || strcmp(uri, ":memory:") == 0)
        return sq_fail(s, SEG_EINVAL, "no database file given (the uri of seg_db_open() is the "
                       "file's path)");
    bool is_uri = strncmp(uri, "file:", 5) == 0;
    struct stat sb;
    if (!is_uri) {
        if (stat(uri, &sb) == 0) {
            if (S_ISDIR(sb.st_mode))
                return sq_fail(s, SEG_EINVAL, "'%s' is a directory, not a database file", uri);
        } else if (errno == ENOENT && (!(flags & SEG_DB_CREATE) || s->readonly)) {
            return sq_fail(s, SEG_ENOTFOUND, "no database file '%s'%s", uri,
                           s->readonly ? "" : " (SEG_DB_CREATE creates one)");
        } else if (errno == ENOENT) {
            /* to be created: say what stands in the way (SQLite's own
             * message would be about its fallback, a read-only open) */
            char dir[sizeof s->name];
            snprintf(dir, sizeof dir, "%s", uri);
            char *slash = strrchr(dir, '/');
            if (!slash)
                snprintf(dir, sizeof dir, ".");
            else if (slash == dir)
                dir[1] = '\0';
            else
                *slash = '\0';
            if (stat(dir, &sb) != 0)
                return sq_fail(s, SEG_ESTORAGE, "cannot create '%s': directory '%s': %s", uri,
                               dir, strerror(errno));
            if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0)
                return sq_fail(s, SEG_ESTORAGE, "cannot create '%s' in directory '%s': %s", uri,
                               dir, strerror(errno));
        }
    }
    int of = SQLITE_OPEN_NOMUTEX | (is_uri ? SQLITE_OPEN_URI : 0) |
             (s->readonly ? SQLITE_OPEN_READONLY
                          : SQLITE_OPEN_READWRITE | (flags & SEG_DB_CREATE ? SQLITE_OPEN_CREATE : 0));
    int rc = sqlite3_open_v2(uri, &s->db, of, NULL);
    if (rc != SQLITE_OK) {
        int e = s->db ? sqlite3_system_errno(s->db) : 0;
        sq_fail(s, code_of(rc), "cannot open '%s': %s%s%s", uri,
                s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc), e ? ": " : "",
                e ? strerror(e) : "");
        sqlite3_close(s->db);
        s->db = NULL;
        return rc == SQLITE_NOMEM ? SEG_ENOMEM : SEG_ESTORAGE;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, 5000);
    return SEG_OK;
}

/* A writable open that SQLite refuses as read-only: say which part is not
 * writable (the file, or its directory, where FILE-wal and FILE-shm go). */
static int explain_readonly(sq_storage *s)
{
    char dir[sizeof s->name];
    snprintf(dir, sizeof dir, "%s", s->name);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (faccessat(AT_FDCWD, s->name, W_OK, AT_EACCESS) != 0)
        return sq_fail(s, SEG_ESTORAGE, "'%s' cannot be opened for writing: %s", s->name,
                       strerror(errno));
    if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0)
        return sq_fail(s, SEG_ESTORAGE, "'%s' cannot be opened for writing: directory '%s' "
                       "(where its -wal and -shm files go): %s", s->name, dir, strerror(errno));
    return sq_fail(s, SEG_ESTORAGE, "'%s' cannot be opened for writing: %s", s->name,
                   sqlite3_errmsg(s->db));
}

/* Read-only in a directory where FILE-shm cannot be created: when no
 * FILE-wal exists (so none can hold newer data, and none can appear, the
 * directory being read-only), open the file as immutable. */
static int reopen_immutable(sq_storage *s, const char *uri)
{
    char wal[sizeof s->name + 8];
    snprintf(wal, sizeof wal, "%s-wal", s->name);
    struct stat sb;
    if (strncmp(uri, "file:", 5) == 0 || stat(wal, &sb) == 0 || errno != ENOENT)
        return sq_fail(s, SEG_ESTORAGE, "'%s': cannot read it: its WAL index (-shm file) "
                       "cannot be created or written here", s->name);
    /* file:PATH?immutable=1, the path percent-encoded */
    size_t n = strlen(uri);
    char *u = seg__malloc(s->a, 3 * n + 32);
    if (!u)
        return sq_nomem(s, SEG_ENOMEM, "open");
    size_t k = 0;
    memcpy(u, "file:", 5);
    k = 5;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)uri[i];
        if (c == '?' || c == '#' || c == '%' || c < 0x21 || c >= 0x7f) {
            u[k++] = '%';
            u[k++] = "0123456789ABCDEF"[c >> 4];
            u[k++] = "0123456789ABCDEF"[c & 15];
        } else {
            u[k++] = (char)c;
        }
    }
    memcpy(u + k, "?immutable=1", sizeof "?immutable=1");
    sqlite3_close(s->db);
    s->db = NULL;
    int rc = sqlite3_open_v2(u, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI |
                                            SQLITE_OPEN_NOMUTEX, NULL);
    seg__free(s->a, u);
    if (rc != SQLITE_OK)
        return sq_sqlfail(s, rc, "open read-only");
    sqlite3_extended_result_codes(s->db, 1);
    return SEG_OK;
}

static int sq_open(seg_storage *st, const char *uri, uint32_t flags, void *app_data)
{
    sq_storage *s = (sq_storage *)st;
    st->methods = &sq_methods;
    s->lockfd = -1;
    s->a = st->core && st->core->db ? &st->core->db->alloc : &seg__default_alloc;
    s->map[MAP_ATTR].typed = true;
    s->readonly = (flags & SEG_DB_READONLY) != 0;
    const seg_storage_sqlite_options *o = app_data;
    snprintf(s->name, sizeof s->name, "%s", uri ? uri : "");
    if (sqlite3_threadsafe() == 0)
        return sq_fail(s, SEG_ESTORAGE, "the SQLite library was built without thread support "
                       "(SQLITE_THREADSAFE=0)");
    int rc;
    if (o && o->connection) {
        s->db = o->connection;
        const char *f = sqlite3_db_filename(s->db, "main");
        snprintf(s->name, sizeof s->name, "%s", f && *f ? f : "host connection");
        if (!s->readonly && sqlite3_db_readonly(s->db, "main") == 1)
            return sq_fail(s, SEG_EREADONLY, "'%s': the host's connection is read-only "
                           "(open the db with SEG_DB_READONLY)", s->name);
    } else {
        if ((rc = open_file(s, uri, flags)) != SEG_OK)
            return rc;
        s->owned = true;
        const char *f = sqlite3_db_filename(s->db, "main");
        if (f && *f)
            snprintf(s->name, sizeof s->name, "%s", f);
    }
    /* the first read of the file: not SQLite, damaged, ... (before the
     * lock, so that a file that is none of ours gets no lock file) */
    int64_t n;
    rc = query_int(s, "SELECT count(*) FROM sqlite_master", 0, &n);
    if (rc != SEG_OK && s->owned && s->readonly &&
        (sqlite3_extended_errcode(s->db) & 0xff) == SQLITE_READONLY) {
        /* WAL needs FILE-shm, which cannot be made here (a read-only
         * directory): without a FILE-wal the file holds everything */
        if ((rc = reopen_immutable(s, uri)) == SEG_OK)
            rc = query_int(s, "SELECT count(*) FROM sqlite_master", 0, &n);
    }
    if (rc != SEG_OK) {
        int ec = sqlite3_extended_errcode(s->db);
        if ((ec & 0xff) == SQLITE_READONLY && s->owned && !s->readonly)
            return explain_readonly(s);
        if ((ec & 0xff) == SQLITE_NOTADB)
            return sq_fail(s, SEG_ESTORAGE, "'%s' is not an SQLite database", s->name);
        if ((ec & 0xff) == SQLITE_CORRUPT)
            return sq_fail(s, SEG_ESTORAGE, "'%s' is damaged: %s", s->name,
                           sqlite3_errmsg(s->db));
        return rc;
    }
    if (!s->readonly && (rc = take_lock(s)) != SEG_OK)
        return rc;
    if (s->owned && !s->readonly) {
        char sql[192];
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &q, NULL) != SQLITE_OK)
            return sq_sqlfail(s, sqlite3_errcode(s->db), "journal_mode");
        int src = sqlite3_step(q);
        bool wal = src == SQLITE_ROW &&
                   sqlite3_stricmp((const char *)sqlite3_column_text(q, 0), "wal") == 0;
        sqlite3_finalize(q);
        if (!wal)
            return src == SQLITE_ROW
                       ? sq_fail(s, SEG_ESTORAGE, "'%s': cannot switch to WAL mode", s->name)
                       : sq_sqlfail(s, src, "journal_mode");
        /* journal_size_limit: the WAL shrinks back after a large batch */
        snprintf(sql, sizeof sql,
                 "PRAGMA synchronous = %s; PRAGMA secure_delete = ON; PRAGMA cache_size = -32768; "
                 "PRAGMA journal_size_limit = 67108864",
                 o && (o->flags & SEG_STORAGE_SQLITE_SYNC_NORMAL) ? "NORMAL" : "FULL");
        if ((rc = exec_sql(s, sql, "settings")) != SEG_OK)
            return rc;
    }
    return schema(s);
}

static int sq_load_records(seg_storage *st, const char *table, const seg_storage_sink *sink,
                           void *ctx)
{
    sq_storage *s = (sq_storage *)st;
    if (!table)
        return sq_fail(s, SEG_EINVAL, "'%s': load_records: no table", s->name);
    return load_pairs(s, false, table, sink, ctx);
}

static const seg_storage_methods sq_methods = {
    SEG_STORAGE_METHODS_V2,
    sq_open, sq_close, sq_load, sq_begin, sq_commit, sq_rollback,
    sq_put_meta, sq_put_events, sq_put_customer, sq_put_attr, sq_put_consent,
    sq_erase_customer, sq_put_record, sq_load_records,
};

#define SQ_STORAGE_SIZE sizeof(sq_storage)

#else /* !SEG_HAVE_SQLITE */

typedef struct sq_storage {
    seg_storage base;
} sq_storage;

static int sq_open(seg_storage *st, const char *uri, uint32_t flags, void *app_data)
{
    SEG_UNUSED(uri); SEG_UNUSED(flags); SEG_UNUSED(app_data);
    st->methods = &sq_methods;
    return seg_storage_set_error(st, SEG_ENOTSUP,
                                 "this libsegment was built without SQLite "
                                 "(meson -Dsqlite=disabled, or no libsqlite3 found)");
}

static void sq_close(seg_storage *st) { SEG_UNUSED(st); }

static const seg_storage_methods sq_methods = {
    SEG_STORAGE_METHODS_V2, sq_open, sq_close,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
};

#define SQ_STORAGE_SIZE sizeof(sq_storage)

#endif /* SEG_HAVE_SQLITE */

/* ====================================================== public functions */

static const seg_storage_backend sq_backend_static = {
    SEG_STORAGE_BACKEND_V1, SQ_STORAGE_SIZE, "sqlite", &sq_methods, NULL,
};

SEG_API const seg_storage_backend *seg_storage_sqlite(void)
{
    return &sq_backend_static;
}

SEG_API int seg_storage_sqlite_new(seg_storage_backend **out, const seg_storage_sqlite_options *opts)
{
    if (!out)
        return SEG_EINVAL;
    *out = NULL;
    seg_storage_sqlite_options o = SEG_STORAGE_SQLITE_OPTIONS_INIT;
    if (opts && seg__struct_in(&o, sizeof o, opts, opts->struct_size, SQ_OPTS_V1_SIZE) != SEG_OK)
        return SEG_EVERSION;
    if (o.flags & ~SEG_STORAGE_SQLITE_SYNC_NORMAL)
        return SEG_EINVAL;
#if !SEG_HAVE_SQLITE
    return SEG_ENOTSUP;
#else
    sq_backend *b = seg__malloc(&seg__default_alloc, sizeof *b);
    if (!b)
        return SEG_ENOMEM;
    b->opts = o;
    b->be = sq_backend_static;
    b->be.app_data = &b->opts;
    *out = &b->be;
    return SEG_OK;
#endif
}

SEG_API void seg_storage_sqlite_free(seg_storage_backend *backend)
{
    if (!backend || backend == &sq_backend_static || backend->methods != &sq_methods)
        return;
    seg__free(&seg__default_alloc, (sq_backend *)backend);
}
